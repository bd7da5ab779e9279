//! [`Config::validate`]'s part for `regions:`, `traffic:` and
//! `replication:`. Which topologies are impossible is decided by
//! `lifeboat_region::topology::problems` over the plain values; this module
//! finds the line and column of the value each problem is about, and checks
//! what is particular to the file (each manager's section, the control of
//! the server, the DNS answer, the provider's section). A problem whose
//! value has no place (a map key, a default) is reported at the nearest
//! one that has, else without a place.

use std::path::Path;

use lifeboat_region::topology::{self, CheckField, Problem, ProblemKind, Subject};

use super::*;

/// Problems found, with their place when known.
#[derive(Debug, Default)]
pub(super) struct Problems {
    pub plain: Vec<String>,
    pub located: Vec<LocatedProblem>,
}

impl Problems {
    /// A problem at `at` (line 0: unknown, reported without a place).
    fn at(&mut self, at: Location, message: String) {
        if at.line() == 0 {
            self.plain.push(message);
        } else {
            self.located.push(LocatedProblem {
                line: at.line(),
                column: at.column(),
                message,
                snippet: String::new(),
            });
        }
    }
}

impl Config {
    /// Everything wrong with the multi-region sections.
    pub(super) fn regions_problems(&self, out: &mut Problems) {
        for p in topology::problems(&self.region_specs(), self.traffic_provider()) {
            let (at, key) = self.locate(&p);
            out.at(at, format!("{key}: {p}"));
        }
        for (name, r) in self.regions_in_file_order() {
            r.problems(name, out);
        }
        if let Some(t) = &self.traffic {
            self.traffic_problems(t, out);
        }
        if let Some(r) = &self.replication {
            self.replication_problems(r, out);
        }
    }

    /// The place and the key's path of a topology problem.
    fn locate(&self, p: &Problem) -> (Location, String) {
        if p.kind == ProblemKind::NothingToSteer
            && let Some(t) = &self.traffic
        {
            return (t.provider.referenced, "traffic".to_string());
        }
        let Some(r) = self.regions.get(&p.region) else {
            // The specs come from the regions: unreachable, but harmless.
            return (Location::UNKNOWN, format!("regions.{}", p.region));
        };
        let at = format!("regions.{}", p.region);
        let pg = &r.postgres;
        match p.subject {
            Subject::Role => (pg.role.referenced, format!("{at}.postgres.role")),
            Subject::ReplicatesFrom => (
                pg.replicates_from
                    .as_ref()
                    .map_or(r.location(), |s| s.referenced),
                format!("{at}.postgres.replicates_from"),
            ),
            Subject::Dns => (
                r.dns.as_ref().map_or(r.location(), |d| d.referenced),
                format!("{at}.dns"),
            ),
            Subject::Check { index, field } => {
                let Some(c) = r.health_checks.get(index) else {
                    return (r.location(), format!("{at}.health_checks[{index}]"));
                };
                let at_value = match field {
                    CheckField::Name => Some(c.name.referenced),
                    CheckField::Kind => Some(c.kind.referenced),
                    CheckField::Port => c.port.as_ref().map(|v| v.referenced),
                    CheckField::Path => c.resource_path.as_ref().map(|v| v.referenced),
                    CheckField::Search => c.search_string.as_ref().map(|v| v.referenced),
                    CheckField::Interval => c.request_interval.as_ref().map(|v| v.referenced),
                    CheckField::Threshold => c.failure_threshold.as_ref().map(|v| v.referenced),
                };
                (
                    at_value.unwrap_or(c.name.referenced),
                    format!("{at}.health_checks[{index}].{}", field.key()),
                )
            }
        }
    }

    /// `traffic:`: regions to steer, the provider's section and no other,
    /// a steered name inside the RFC 2136 zone, a server with a port.
    fn traffic_problems(&self, t: &TrafficConfig, out: &mut Problems) {
        let provider_at = t.provider.referenced;
        if self.regions.is_empty() {
            out.at(
                provider_at,
                "traffic: there is no regions: section to steer between; add the regions or remove traffic:".into(),
            );
        }
        match t.provider() {
            Provider::Route53 => {
                if t.route53.is_none() {
                    out.at(
                        provider_at,
                        "traffic.provider is route53 but there is no traffic.route53 section (hosted_zone_id)".into(),
                    );
                }
                if let Some(r) = &t.rfc2136 {
                    out.at(
                        r.referenced,
                        "traffic.rfc2136 is for provider: rfc2136, and the provider is route53; remove it or change the provider".into(),
                    );
                }
            }
            Provider::Rfc2136 => {
                if t.rfc2136.is_none() {
                    out.at(
                        provider_at,
                        "traffic.provider is rfc2136 but there is no traffic.rfc2136 section (server, zone, tsig)".into(),
                    );
                }
                if let Some(r) = &t.route53 {
                    out.at(
                        r.referenced,
                        "traffic.route53 is for provider: route53, and the provider is rfc2136; remove it or change the provider".into(),
                    );
                }
            }
        }
        if let Some(r) = &t.route53
            && r.value.hosted_zone_id.trim().is_empty()
        {
            out.at(
                r.referenced,
                "traffic.route53.hosted_zone_id is empty; give the hosted zone's id (e.g. Z0123456789ABCDEFGHIJ)".into(),
            );
        }
        if let Some(r) = &t.rfc2136 {
            let rfc = &r.value;
            if !has_port(&rfc.server) {
                out.at(
                    r.referenced,
                    format!(
                        "traffic.rfc2136.server {:?} is not host:port, e.g. ns1.kubernaut.io:53, 192.0.2.53:53 or [2001:db8::53]:53",
                        rfc.server
                    ),
                );
            }
            if rfc.tsig.name.trim().is_empty() {
                out.at(
                    r.referenced,
                    "traffic.rfc2136.tsig.name is empty; give the key's name as the server knows it"
                        .into(),
                );
            }
            let name = t.name().normalized();
            let zone = rfc.zone.normalized();
            if !(name == zone || name.ends_with(&format!(".{zone}"))) {
                out.at(
                    t.name.referenced,
                    format!(
                        "traffic.name {} is not in the zone {} (traffic.rfc2136.zone) that the updates go to",
                        t.name(),
                        rfc.zone
                    ),
                );
            }
        }
        if t.ttl() > i32::MAX as u32 {
            out.at(
                provider_at,
                format!("traffic.ttl must be at most {}", i32::MAX),
            );
        }
    }

    /// `replication:`: regions to replicate between, a heartbeat of a
    /// second or more, a role name.
    fn replication_problems(&self, r: &ReplicationConfig, out: &mut Problems) {
        if self.regions.is_empty() {
            out.plain.push(
                "replication: there is no regions: section; add the regions or remove replication:"
                    .into(),
            );
        }
        if r.user.as_deref().is_some_and(|u| u.trim().is_empty()) {
            out.plain.push(
                "replication.user is empty; remove it (lifeboat_replication) or name the role"
                    .into(),
            );
        }
        if let Some(i) = r.heartbeat.as_ref().and_then(|h| h.interval.as_ref())
            && i.value.0 < chrono::TimeDelta::seconds(1)
        {
            out.at(
                i.referenced,
                "replication.heartbeat.interval must be at least 1s".into(),
            );
        }
    }
}

/// `host:port` with a port of 1 to 65535 (`[v6]:port` for IPv6).
fn has_port(server: &str) -> bool {
    server.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty()
            && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']')))
            && port.parse::<u16>().is_ok_and(|p| p > 0)
    })
}

/// A region's name: it becomes a Route 53 set identifier, a metric label
/// and part of slot and record names.
fn is_region_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl RegionConfig {
    /// A region's own sections: its name, the manager's section, how the
    /// server is controlled, the DNS answer, Deployments, repository.
    fn problems(&self, name: &str, out: &mut Problems) {
        let at = format!("regions.{name}");
        if !is_region_name(name) {
            out.at(
                self.location(),
                format!(
                    "{at}: a region's name is 1 to 63 letters, digits, - or _ (it names Route 53 records, metrics and replication slots)"
                ),
            );
        }
        self.postgres.problems(&at, out);
        for (i, c) in self.health_checks.iter().enumerate() {
            if c.name.value.trim().is_empty() {
                out.at(
                    c.name.referenced,
                    format!("{at}.health_checks[{i}].name is empty"),
                );
            }
        }
        if let Some(d) = &self.dns {
            let both = d.value.address.is_some() && d.value.target.is_some();
            let neither = d.value.address.is_none() && d.value.target.is_none();
            if both || neither {
                out.at(
                    d.referenced,
                    format!(
                        "{at}.dns: give exactly one of address (an IPv4 or IPv6 address) and target (a name), not {}",
                        if both { "both" } else { "neither" }
                    ),
                );
            }
        }
        if let Some(d) = &self.deployments {
            out.plain.extend(d.problems(&at));
        }
        if let Some(r) = &self.repository {
            out.plain.extend(r.problems(&at));
        }
    }
}

impl RegionPostgres {
    /// The manager's section and no other; a control that fits the
    /// manager and has what it needs.
    fn problems(&self, at: &str, out: &mut Problems) {
        let at = format!("{at}.postgres");
        let manager = self.manager();
        let manager_at = self
            .manager
            .as_ref()
            .map_or(self.role.referenced, |m| m.referenced);
        for (section, wanted, present) in [
            (
                PgManager::Patroni,
                "the REST API's url",
                self.patroni.as_ref().map(|s| s.referenced),
            ),
            (
                PgManager::Cnpg,
                "namespace and cluster",
                self.cnpg.as_ref().map(|s| s.referenced),
            ),
        ] {
            match present {
                None if manager == section => out.at(
                    manager_at,
                    format!(
                        "{at}.manager is {section} but there is no {at}.{section} section ({wanted})"
                    ),
                ),
                Some(loc) if manager != section => out.at(
                    loc,
                    format!(
                        "{at}.{section} is for manager: {section}, and the manager is {manager}; remove it or change the manager"
                    ),
                ),
                _ => {}
            }
        }
        if let Some(c) = &self.cnpg
            && (c.value.namespace.trim().is_empty() || c.value.cluster.trim().is_empty())
        {
            out.at(
                c.referenced,
                format!("{at}.cnpg: namespace and cluster must not be empty"),
            );
        }
        if let Some(p) = &self.pgdata
            && !p.value.is_absolute()
        {
            out.at(
                p.referenced,
                format!("{at}.pgdata {} is not an absolute path", p.value.display()),
            );
        }
        let Some(control) = &self.control else {
            return;
        };
        match &control.value {
            ServerControl::Manager if manager == PgManager::Postgres => out.at(
                control.referenced,
                format!(
                    "{at}.control is manager, but a plain postgres instance has no manager; use pg_ctl or systemd, or set manager: patroni or cnpg"
                ),
            ),
            ServerControl::PgCtl(p) => {
                if self.pgdata.is_none() {
                    out.at(
                        control.referenced,
                        format!("{at}.control is pg_ctl, which needs the data directory: add {at}.pgdata"),
                    );
                }
                if let Some(dir) = &p.bin_dir
                    && !Path::new(dir).is_absolute()
                {
                    out.at(
                        control.referenced,
                        format!(
                            "{at}.control.pg_ctl.bin_dir {} is not an absolute path",
                            dir.display()
                        ),
                    );
                }
            }
            ServerControl::Systemd(s) if s.unit.trim().is_empty() => out.at(
                control.referenced,
                format!("{at}.control.systemd.unit is empty; name the unit, e.g. postgresql@15-main.service"),
            ),
            _ => {}
        }
    }
}

impl RegionDeployments {
    /// A namespace, and Deployments with unique, non-empty names.
    fn problems(&self, at: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if self.namespace.trim().is_empty() {
            problems.push(format!("{at}.deployments.namespace is empty"));
        }
        if self.context.as_deref().is_some_and(|c| c.trim().is_empty()) {
            problems.push(format!(
                "{at}.deployments.context is empty; remove it (the kubernetes: context) or name one"
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for d in &self.items {
            if d.name.trim().is_empty() {
                problems.push(format!("{at}.deployments.items: a name is empty"));
            } else if !seen.insert(d.name.as_str()) {
                problems.push(format!(
                    "{at}.deployments.items: {:?} is listed twice",
                    d.name
                ));
            }
        }
        problems
    }
}

impl RegionRepository {
    /// Like `repository:`: S3 settings only with an S3 URL, one kind of
    /// secret.
    fn problems(&self, at: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if self.s3.is_some() && self.url.scheme() != "s3" {
            problems.push(format!(
                "{at}.repository.s3 is set but {at}.repository.url {} is not an s3:// URL",
                self.url
            ));
        }
        if self.password.is_some() && self.key_file.is_some() {
            problems.push(format!(
                "{at}.repository: give either password or key_file, not both"
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::TimeDelta;
    use lifeboat_region::topology::{CheckSpec, DnsAnswer};

    use crate::config::testing::*;
    use crate::config::*;

    /// Two regions; `eu_west` is the rest of eu-west's `postgres:` from
    /// line 10 on (6 spaces of indentation), `tail` what follows at the top
    /// level. Lines 1 to 9 are fixed: us-east's role is at 6:13.
    fn two(eu_west: &str, tail: &str) -> String {
        format!(
            "repository: {{url: /r}}
regions:
  us-east:
    postgres:
      url: postgresql://u@us-east/d
      role: primary
  eu-west:
    postgres:
      url: postgresql://u@eu-west/d
{eu_west}{tail}"
        )
    }

    #[test]
    fn two_regions_parse() {
        let c = parse(
            &two("      role: standby\n      replicates_from: us-east\n", ""),
            "test.yaml",
        )
        .unwrap();
        assert_eq!(c.primary_region(), Some("us-east"));
        assert_eq!(c.standbys_of("us-east"), ["eu-west"]);
        assert!(c.standbys_of("eu-west").is_empty());
        let specs = c.region_specs();
        // The file's order, not the names'.
        assert_eq!(specs[0].name, "us-east");
        assert_eq!(specs[1].replicates_from.as_deref(), Some("us-east"));
        assert_eq!(
            c.region("eu-west").unwrap().postgres.manager(),
            PgManager::Postgres
        );
        assert_eq!(c.region("eu-west").unwrap().postgres.control(), None);
        let e = c.region("us-west").unwrap_err().to_string();
        assert!(
            e.contains("\"us-west\"") && e.contains("eu-west, us-east"),
            "{e}"
        );
        assert_eq!(c.heartbeat_interval(), Duration::from_secs(1));
        assert_eq!(c.replication_user(), "lifeboat_replication");
        assert_eq!(c.lag_objective(), None);
        assert_eq!(c.traffic_provider(), None);
        // Without regions, none of it.
        let c = parse("repository: {url: /r}\n", "test.yaml").unwrap();
        assert!(c.regions().is_empty() && c.primary_region().is_none());
    }

    #[test]
    fn impossible_topologies_have_line_and_column() {
        // Two primaries: at the second one's role.
        assert_located(
            &two("      role: primary\n", ""),
            &[(
                10,
                13,
                "regions.eu-west.postgres.role: eu-west is declared primary, and so is us-east",
            )],
        );
        // From itself, from an unknown region: at replicates_from.
        assert_located(
            &two("      role: standby\n      replicates_from: eu-west\n", ""),
            &[(
                11,
                24,
                "regions.eu-west.postgres.replicates_from: eu-west replicates from itself",
            )],
        );
        assert_located(
            &two("      role: standby\n      replicates_from: us-west\n", ""),
            &[(
                11,
                24,
                "eu-west replicates from \"us-west\", which is no region here (regions: eu-west, us-east)",
            )],
        );
        // A standby without a source: at its role.
        assert_located(
            &two("      role: standby\n", ""),
            &[(
                10,
                13,
                "eu-west is declared standby but names no region to replicate from",
            )],
        );
        // A primary with a source.
        assert_located(
            &two("      role: primary\n      replicates_from: us-east\n", ""),
            &[
                (10, 13, "and so is us-east"),
                (11, 24, "a primary replicates from no one"),
            ],
        );
        // No primary at all (a circle of standbys): at the first region.
        let text = "repository: {url: /r}
regions:
  a:
    postgres: {url: \"postgresql://u@a/d\", role: standby, replicates_from: b}
  b:
    postgres: {url: \"postgresql://u@b/d\", role: standby, replicates_from: a}
";
        assert_located(
            text,
            &[
                (
                    4,
                    49,
                    "regions.a.postgres.role: no region is declared primary",
                ),
                (4, 75, "a replicates in a circle (a → b → a)"),
            ],
        );
    }

    /// The message reads like a parse error: `origin:line:column: message`
    /// and the line, marked.
    #[test]
    fn located_problems_render_like_parse_errors() {
        let e = parse_err(&two(
            "      role: standby\n      replicates_from: eu-west\n",
            "",
        ));
        let msg = e.to_string();
        assert!(
            msg.starts_with(
                "test.yaml:11:24: regions.eu-west.postgres.replicates_from: eu-west replicates from itself; name the primary region\n"
            ),
            "{msg}"
        );
        assert!(msg.contains("  --> test.yaml:11:24\n"), "{msg}");
        assert!(
            msg.contains("11 |       replicates_from: eu-west\n"),
            "{msg}"
        );
        assert!(msg.ends_with(&format!("   | {}^", " ".repeat(23))), "{msg}");
        // With problems that have no place too, both kinds are shown.
        let e = parse_err(&two(
            "      role: standby\n      replicates_from: eu-west\n",
            "replication: {user: \"\"}\n",
        ));
        let msg = e.to_string();
        assert!(msg.starts_with("test.yaml:11:24: "), "{msg}");
        assert!(
            msg.contains("test.yaml: invalid configuration:\n  - replication.user is empty"),
            "{msg}"
        );
    }

    fn with_check(check: &str, provider: &str) -> String {
        two(
            "      role: standby\n      replicates_from: us-east\n",
            &format!(
                "    health_checks:
      - name: gateway
{check}    dns: {{address: 192.0.2.2}}
traffic:
  provider: {provider}
  name: gateway.kubernaut.io
  route53: {{hosted_zone_id: Z123}}
  rfc2136:
    server: 127.0.0.1:5353
    zone: kubernaut.io
    tsig: {{name: k, secret: {{env: TSIG}}}}
"
            ),
        )
        // Only the provider's section may be there: drop the other.
        .replace(
            if provider == "route53" {
                "  rfc2136:\n    server: 127.0.0.1:5353\n    zone: kubernaut.io\n    tsig: {name: k, secret: {env: TSIG}}\n"
            } else {
                "  route53: {hosted_zone_id: Z123}\n"
            },
            "",
        )
    }

    /// Health checks follow Route 53's rules, each problem at its value
    /// (line 14 on: the check's keys, 8 spaces in).
    #[test]
    fn health_check_rules_have_line_and_column() {
        let https = "        type: https\n        host: gateway.eu-west.kubernaut.io\n";
        // 15s: fine for rfc2136, not for route53.
        let check = format!("{https}        request_interval: 15s\n");
        parse(&with_check(&check, "rfc2136"), "test.yaml").unwrap_or_else(|e| panic!("{e}"));
        assert_located(
            &with_check(&check, "route53"),
            &[(
                16,
                27,
                "regions.eu-west.health_checks[0].request_interval: 15s is not an interval Route 53 allows (traffic.provider is route53): use 10s or 30s",
            )],
        );
        assert_located(
            &with_check(
                &format!("{https}        failure_threshold: 11\n"),
                "route53",
            ),
            &[(16, 28, "failure_threshold: 11 is outside 1 to 10")],
        );
        assert_located(
            &with_check(&format!("{https}        failure_threshold: 0\n"), "rfc2136"),
            &[(16, 28, "0 is outside 1 to 10")],
        );
        let tcp = "        type: tcp\n        host: 192.0.2.7\n";
        assert_located(
            &with_check(
                &format!("{tcp}        port: 5432\n        search_string: ok\n"),
                "route53",
            ),
            &[(
                17,
                24,
                "health_checks[0].search_string: a tcp check reads no response",
            )],
        );
        // A tcp check without a port: at its type.
        assert_located(
            &with_check(tcp, "route53"),
            &[(14, 15, "health_checks[0].type: a tcp check needs a port")],
        );
        let long = "x".repeat(256);
        assert_located(
            &with_check(
                &format!("{https}        search_string: {long}\n"),
                "route53",
            ),
            &[(
                16,
                24,
                "is 256 characters long; Route 53 allows at most 255",
            )],
        );
        // Defaults: https on 443, path /, 30s, 3.
        let c = parse(&with_check(https, "route53"), "test.yaml").unwrap();
        assert_eq!(
            c.region("eu-west").unwrap().check_specs(),
            [CheckSpec {
                name: "gateway".into(),
                kind: CheckKind::Https,
                host: "gateway.eu-west.kubernaut.io".into(),
                port: 443,
                path: Some("/".into()),
                search: None,
                interval: Duration::from_secs(30),
                threshold: 3,
            }]
        );
        // Values checked where they are read.
        for (host, needle) in [
            ("https://gateway.kubernaut.io/healthz", "is a URL"),
            ("gateway.kubernaut.io:443", "give the port in port:"),
            ("gate way", "is not a DNS name"),
        ] {
            let e = parse_err(&with_check(
                &format!("        type: https\n        host: \"{host}\"\n"),
                "route53",
            ));
            assert_eq!(location(&e).0, 15, "{e}");
            assert!(e.to_string().contains(needle), "{e}");
        }
        let e = parse_err(&with_check(
            "        type: udp\n        host: h\n",
            "route53",
        ));
        assert_eq!(location(&e), (14, 15), "{e}");
    }

    #[test]
    fn unknown_keys_and_duplicate_regions_have_line_and_column() {
        let e = parse_err(&two(
            "      role: standby\n      replicates_from: us-east\n      replicate_from: us-east\n",
            "",
        ));
        assert_eq!(location(&e), (12, 7), "{e}");
        assert!(e.to_string().contains("replicate_from"), "{e}");
        let e = parse_err(&two(
            "      role: standby\n      replicates_from: us-east\n    healthchecks: []\n",
            "",
        ));
        assert_eq!(location(&e), (12, 5), "{e}");
        let e = parse_err(&two(
            "      role: standby\n      replicates_from: us-east\n",
            "  us-east:\n    postgres: {url: \"postgresql://u@x/d\", role: standby, replicates_from: eu-west}\n",
        ));
        assert_eq!(location(&e), (12, 3), "{e}");
        assert!(
            e.to_string().starts_with(
                "test.yaml:12:3: duplicate mapping key: us-east: this key is given twice"
            ),
            "{e}"
        );
        let e = parse_err(&two(
            "      role: standby\n      replicates_from: us-east\n",
            "    dns: {address: 192.0.2.1, weight: 256}\n",
        ));
        assert_eq!(location(&e), (12, 39), "{e}");
        assert!(
            e.to_string()
                .contains("weight 256 is not between 0 and 255"),
            "{e}"
        );
        let e = parse_err(&two(
            "      role: standby\n      replicates_from: us-east\n",
            "    health_checks: [{name: g, type: tcp, host: h, port: 0}]\n",
        ));
        assert_eq!(location(&e), (12, 57), "{e}");
        assert!(
            e.to_string().contains("port 0 is not between 1 and 65535"),
            "{e}"
        );
        let e = parse_err(&two(
            "      role: standby\n      replicates_from: us-east\n      control: {systemd: {unit: u}, pg_ctl: {}}\n",
            "",
        ));
        assert_eq!(location(&e).0, 12, "{e}");
        assert!(
            e.to_string()
                .contains("give one control, not both systemd and pg_ctl"),
            "{e}"
        );
        let e = parse_err(&two("      role: leader\n", ""));
        assert_eq!(location(&e), (10, 13), "{e}");
        let e = parse_err(&two(
            "      role: standby\n      replicates_from: us-east\n      manager: stolon\n",
            "",
        ));
        assert_eq!(location(&e), (12, 16), "{e}");
    }

    #[test]
    fn secrets_are_never_written_in_place() {
        let standby = "      role: standby\n      replicates_from: us-east\n";
        for (extra, secret) in [
            ("      password: hunter2\n", "hunter2"),
            (
                "      patroni: {url: \"http://admin:hunter2@p:8008\"}\n",
                "hunter2",
            ),
        ] {
            let e = parse_err(&two(&format!("{standby}{extra}"), ""));
            assert_eq!(location(&e).0, 12, "{e}");
            assert!(!e.to_string().contains(secret), "{e}");
        }
        for (section, secret) in [
            ("    redis: {url: \"redis://:hunter2@r:6379\"}\n", "hunter2"),
            (
                "    redis: {url: \"redis://r:6379\", password: hunter2}\n",
                "hunter2",
            ),
            (
                "    repository: {url: /copy, password: \"s3cr3t\"}\n",
                "s3cr3t",
            ),
        ] {
            let e = parse_err(&two(standby, section));
            assert_eq!(location(&e).0, 12, "{e}");
            let msg = e.to_string();
            assert!(
                msg.contains("password") || msg.contains("referenced"),
                "{msg}"
            );
            assert!(!msg.contains(secret), "{msg}");
        }
        let tail = "traffic:
  provider: rfc2136
  name: gateway.kubernaut.io
  rfc2136:
    server: 127.0.0.1:53
    zone: kubernaut.io
    tsig: {name: k, secret: c2VjcmV0c2VjcmV0}
";
        let e = parse_err(&two(standby, tail));
        assert_eq!(location(&e).0, 18, "{e}");
        assert!(!e.to_string().contains("c2VjcmV0"), "{e}");
    }

    #[test]
    fn sections_fit_the_manager_and_provider() {
        let standby = "      role: standby\n      replicates_from: us-east\n";
        assert_located(
            &two(&format!("{standby}      manager: patroni\n"), ""),
            &[(
                12,
                16,
                "postgres.manager is patroni but there is no regions.eu-west.postgres.patroni section",
            )],
        );
        assert_located(
            &two(
                &format!("{standby}      cnpg: {{namespace: n, cluster: c}}\n"),
                "",
            ),
            &[(
                12,
                13,
                "postgres.cnpg is for manager: cnpg, and the manager is postgres",
            )],
        );
        assert_located(
            &two(&format!("{standby}      control: manager\n"), ""),
            &[(12, 16, "a plain postgres instance has no manager")],
        );
        assert_located(
            &two(&format!("{standby}      control: {{pg_ctl: {{}}}}\n"), ""),
            &[(12, 16, "control is pg_ctl, which needs the data directory")],
        );
        assert_located(
            &two(&format!("{standby}      pgdata: data\n"), ""),
            &[(12, 15, "pgdata data is not an absolute path")],
        );
        assert_located(
            &two(
                standby,
                "    dns: {address: 192.0.2.1, target: g.example}\n",
            ),
            &[(12, 10, "regions.eu-west.dns: give exactly one of address")],
        );
        let c = parse(
            &two(
                &format!(
                    "{standby}      pgdata: /var/lib/postgresql/15/main\n      control: {{systemd: {{unit: postgresql@15-main.service}}}}\n"
                ),
                "",
            ),
            "test.yaml",
        )
        .unwrap();
        assert_eq!(
            c.region("eu-west").unwrap().postgres.control(),
            Some(ServerControl::Systemd(SystemdControl {
                unit: "postgresql@15-main.service".into()
            }))
        );
        // pg_ctl as a word, or with an empty or null section.
        for control in ["pg_ctl", "{pg_ctl: }", "{pg_ctl: {}}"] {
            let c = parse(
                &two(
                    &format!("{standby}      pgdata: /pg\n      control: {control}\n"),
                    "",
                ),
                "test.yaml",
            )
            .unwrap_or_else(|e| panic!("{control}: {e}"));
            assert_eq!(
                c.region("eu-west").unwrap().postgres.control(),
                Some(ServerControl::PgCtl(PgCtlControl { bin_dir: None })),
                "{control}"
            );
        }
        // pg_ctl is the default control with a data directory.
        let c = parse(
            &two(&format!("{standby}      pgdata: /pg\n"), ""),
            "test.yaml",
        )
        .unwrap();
        assert_eq!(
            c.region("eu-west").unwrap().postgres.control(),
            Some(ServerControl::PgCtl(PgCtlControl { bin_dir: None }))
        );
        // The provider's section, and no other; the name in the zone.
        let dns = "    dns: {address: 192.0.2.2}\n";
        assert_located(
            &two(
                standby,
                &format!(
                    "{dns}traffic: {{provider: route53, name: g.example, rfc2136: {{server: \"h:53\", zone: example, tsig: {{name: k, secret: {{env: T}}}}}}}}\n"
                ),
            ),
            &[
                (
                    13,
                    21,
                    "traffic.provider is route53 but there is no traffic.route53 section",
                ),
                (13, 56, "traffic.rfc2136 is for provider: rfc2136"),
            ],
        );
        assert_located(
            &two(
                standby,
                &format!(
                    "{dns}traffic: {{provider: rfc2136, name: g.example.org, rfc2136: {{server: ns1, zone: example.com, tsig: {{name: k, secret: {{env: T}}}}}}}}\n"
                ),
            ),
            &[
                (13, 60, "traffic.rfc2136.server \"ns1\" is not host:port"),
                (
                    13,
                    36,
                    "traffic.name g.example.org is not in the zone example.com",
                ),
            ],
        );
        // rfc2136 answers are addresses; route53's all of one kind.
        assert_located(
            &two(
                standby,
                "    dns: {target: eu.example.com}\ntraffic: {provider: rfc2136, name: g.example.com, rfc2136: {server: \"[::1]:53\", zone: example.com, tsig: {name: k, secret: {env: T}}}}\n",
            ),
            &[(
                12,
                10,
                "regions.eu-west.dns: eu-west answers with a target name (CNAME)",
            )],
        );
        assert_located(
            &two(
                standby,
                "traffic: {provider: route53, name: g.example.com, route53: {hosted_zone_id: Z1}}\n",
            ),
            &[(
                12,
                21,
                "traffic: traffic is configured but no region has a dns answer",
            )],
        );
        assert_located(
            &two(standby, "replication: {heartbeat: {interval: 0s}}\n"),
            &[(12, 37, "replication.heartbeat.interval must be at least 1s")],
        );
        // No regions: no traffic, no replication.
        let e = parse_err(
            "repository: {url: /r}\nreplication: {}\ntraffic: {provider: route53, name: g.example, route53: {hosted_zone_id: Z}}\n",
        );
        let msg = e.to_string();
        assert!(
            msg.contains("test.yaml:3:21: traffic: there is no regions: section"),
            "{msg}"
        );
        assert!(
            msg.contains("  - replication: there is no regions: section"),
            "{msg}"
        );
    }

    #[test]
    fn multi_region_example_holds_the_seed_settings() {
        let c = load(&examples_dir().join("kubernaut-multi-region.yaml")).unwrap();
        let names: Vec<&str> = c.regions_in_file_order().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["us-east", "eu-west"]);
        assert_eq!(c.primary_region(), Some("us-east"));
        assert_eq!(c.standbys_of("us-east"), ["eu-west"]);
        // The seed's §3.1: region failure RTO 15m, RPO 5m = the lag objective.
        assert_eq!(c.lag_objective(), Some(TimeDelta::minutes(5)));
        assert_eq!(
            c.objective("region-failure").unwrap().rto,
            TimeDelta::minutes(15)
        );
        assert_eq!(c.heartbeat_interval(), Duration::from_secs(1));
        // §2.3 and §2.5: Route 53, weighted 100/100, zone Z123.
        let t = c.traffic.as_ref().unwrap();
        assert_eq!(t.provider(), Provider::Route53);
        assert_eq!(t.name().as_str(), "gateway.kubernaut.io");
        assert_eq!(t.route53.as_ref().unwrap().value.hosted_zone_id, "Z123");
        for (name, cluster, context) in [
            ("us-east", "postgresql-primary", "us-east"),
            ("eu-west", "postgresql-secondary", "eu-west"),
        ] {
            let r = c.region(name).unwrap();
            // §2.2: CloudNativePG clusters in kubernaut-system.
            assert_eq!(r.postgres.manager(), PgManager::Cnpg);
            let cnpg = &r.postgres.cnpg.as_ref().unwrap().value;
            assert_eq!(
                (
                    cnpg.cluster.as_str(),
                    cnpg.namespace.as_str(),
                    cnpg.context.as_deref()
                ),
                (cluster, "kubernaut-system", Some(context))
            );
            assert_eq!(r.postgres.control(), Some(ServerControl::Manager));
            // §2.3: HTTPS /healthz on 443, every 30s, 3 failures.
            assert_eq!(
                r.check_specs(),
                [CheckSpec {
                    name: "gateway".into(),
                    kind: CheckKind::Https,
                    host: format!("gateway.{name}.kubernaut.io"),
                    port: 443,
                    path: Some("/healthz".into()),
                    search: None,
                    interval: Duration::from_secs(30),
                    threshold: 3,
                }]
            );
            assert_eq!(
                r.answer(),
                Some(DnsAnswer::Target(format!("gateway.{name}.kubernaut.io")))
            );
            assert_eq!(r.weight(), 100);
            // §2.1: Gateway (3), Context API (2), Data Storage (2).
            let d = r.deployments.as_ref().unwrap();
            assert_eq!(
                (d.namespace.as_str(), d.context.as_deref()),
                ("kubernaut-system", Some(context))
            );
            let counts: Vec<(&str, u32)> = d
                .items
                .iter()
                .map(|i| (i.name.as_str(), i.replicas))
                .collect();
            assert_eq!(
                counts,
                [("gateway", 3), ("context-api", 2), ("data-storage", 2)]
            );
            assert!(r.redis.is_some());
        }
        let eu = c.region("eu-west").unwrap();
        assert_eq!(eu.postgres.role(), DeclaredRole::Standby);
        assert_eq!(eu.postgres.replicates_from(), Some("us-east"));
        assert_eq!(
            eu.repository.as_ref().unwrap().url.as_str(),
            "s3://kubernaut-backups-eu-west/lifeboat"
        );
        let specs = c.region_specs();
        assert_eq!(specs.len(), 2);
        assert!(lifeboat_region::topology::problems(&specs, Some(Provider::Route53)).is_empty());
    }
}
