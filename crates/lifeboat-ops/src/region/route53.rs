//! The `route53` traffic provider from the configuration
//! (docs/regions/route53.md): the weighted records and health checks that
//! `traffic:` and `regions:` describe, made and read through
//! `lifeboat_region::traffic::route53`, for `region traffic apply|status`
//! and readiness's `global-load-balancer` item.
//!
//! Route 53 is not steered per verdict: it runs the health checks itself
//! and leaves unhealthy regions out of its answers (all of them in when none
//! is healthy). So it does not implement `TrafficProvider` (whose `apply`
//! takes verdicts and whose changes are answers added and removed); what
//! Lifeboat does here is keep the records and checks as configured, and
//! show what Route 53 holds next to what the vantage points' health says.
//!
//! Credentials come only from the standard AWS chain (environment, profile,
//! web identity, container or instance role), never from flags or the
//! configuration; nothing here logs or prints them.

use std::collections::BTreeMap;

use chrono::Utc;
use lifeboat_region::topology::{CheckKind, CheckSpec, DnsAnswer};
use lifeboat_region::traffic::route53::{
    ApplyError, HealthCheckConfig, HealthCheckType, RecordStatus, RecordType, Route53Error,
    Route53Provider, Route53Settings, TrafficStatus, WeightedRecord, Zone,
};
use lifeboat_region::traffic::{
    Answer, AnswerSet, DesiredAnswers, RegionAnswer, Verdicts, desired_answer_set,
};
use serde::Serialize;

use super::traffic::{HealthBasis, config_of, health_basis, region_answers};
use super::verdicts;
use crate::config::{Config, Provider, TrafficConfig};
use crate::context::Ctx;
use crate::error::{Error, Kind, Result};

/// The records the configuration describes, and what the mapping had to
/// say about it (a region with several checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub records: Vec<WeightedRecord>,
    pub notes: Vec<String>,
}

/// The `traffic:` section when its provider is `route53`.
pub fn route53_traffic(config: &Config) -> Result<&TrafficConfig> {
    let traffic = config.traffic.as_ref().ok_or_else(|| {
        Error::usage("the configuration has no `traffic:` section: nothing steers DNS")
            .with_hint("add `traffic:` (provider, name, and the provider's section); see docs/regions/topology.md")
    })?;
    if traffic.provider() != Provider::Route53 {
        return Err(Error::usage(format!(
            "traffic.provider is {}, not route53",
            traffic.provider()
        )));
    }
    Ok(traffic)
}

/// `traffic.route53` as the provider's settings: the hosted zone and the
/// endpoint (moto, a VPC endpoint); credentials are the AWS chain's.
pub fn settings(config: &Config) -> Result<Route53Settings> {
    let traffic = route53_traffic(config)?;
    let r = traffic.route53.as_ref().map(|s| &s.value).ok_or_else(|| {
        Error::usage("traffic.provider is route53 but there is no traffic.route53 section")
            .with_hint("add `route53: {hosted_zone_id: Z…}` under traffic:")
    })?;
    let mut s = Route53Settings::new(r.hosted_zone_id.trim());
    s.endpoint = r.endpoint.clone();
    Ok(s)
}

/// The weighted records the configuration describes (pure): one per region
/// with a DNS answer, in file order, at `traffic.name`, set identifier the
/// region's name, its weight (default 100: the seed's active-active), TTL
/// `traffic.ttl`, and the region's first health check as the record's
/// Route 53 health check (a record carries one check; Lifeboat's own
/// vantage points use all of them, which is noted).
pub fn desired_records(config: &Config) -> Result<Desired> {
    let traffic = route53_traffic(config)?;
    let name = traffic.name().normalized();
    let mut records = Vec::new();
    let mut notes = Vec::new();
    for (region, r) in config.regions_in_file_order() {
        let Some(answer) = r.answer() else { continue };
        let (record_type, value) = match answer {
            DnsAnswer::Address(ip) if ip.is_ipv4() => (RecordType::A, ip.to_string()),
            DnsAnswer::Address(ip) => (RecordType::Aaaa, ip.to_string()),
            DnsAnswer::Target(t) => (
                RecordType::Cname,
                t.trim_end_matches('.').to_ascii_lowercase(),
            ),
        };
        let mut record = WeightedRecord::new(&name, record_type, region, &[value.as_str()]);
        record.weight = r.weight();
        record.ttl = traffic.ttl();
        let checks = r.check_specs();
        record.health_check = checks.first().map(health_check);
        match checks.as_slice() {
            [] => notes.push(format!(
                "region {region} has no health check: Route 53 always counts its record healthy"
            )),
            [_] => {}
            [first, rest @ ..] => notes.push(format!(
                "region {region} has {} health checks; its Route 53 record carries the first \
                 (`{}`), as a record takes one check (Lifeboat's daemons use all of them)",
                rest.len() + 1,
                first.name
            )),
        }
        records.push(record);
    }
    if records.is_empty() {
        return Err(Error::usage(
            "traffic.provider is route53 but no region has a DNS answer (regions.<r>.dns)",
        ));
    }
    Ok(Desired { records, notes })
}

/// A region's health check as Route 53's: by IP address when the host is
/// one (no Host header then), else by name (Route 53 resolves it and sends
/// it as Host and, for HTTPS, SNI).
fn health_check(c: &CheckSpec) -> HealthCheckConfig {
    let ip = c.ip();
    HealthCheckConfig {
        check_type: match c.kind {
            CheckKind::Http => HealthCheckType::Http,
            CheckKind::Https => HealthCheckType::Https,
            CheckKind::Tcp => HealthCheckType::Tcp,
        },
        ip_address: ip,
        fqdn: ip
            .is_none()
            .then(|| c.host.trim_end_matches('.').to_ascii_lowercase()),
        port: Some(c.port),
        resource_path: c.path.clone(),
        search_string: c.search.clone(),
        request_interval: u32::try_from(c.interval.as_secs()).unwrap_or(u32::MAX),
        failure_threshold: c.threshold,
    }
}

/// A Route 53 error as a flow error: refused or missing credentials and
/// missing permissions are auth (exit 6), what the configuration or the
/// zone's other records make impossible usage (exit 2, nothing written),
/// the rest failures (exit 1; transport errors after the SDK's retries).
pub fn route53_error(cause: &Route53Error, message: String) -> Error {
    let (kind, hint) = match cause {
        Route53Error::CredentialsRefused { .. } | Route53Error::NoCredentials { .. } => (
            Kind::Auth,
            "Lifeboat reads AWS credentials from the standard chain only (AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws, web identity, container or instance \
             role), never from flags; fix them there and run again",
        ),
        Route53Error::AccessDenied { .. } => (
            Kind::Auth,
            "grant the IAM policy in docs/regions/route53.md to the identity Lifeboat runs as",
        ),
        Route53Error::Plan(_) | Route53Error::NoSuchHostedZone { .. } => (
            Kind::Usage,
            "fix traffic: / regions.<r>.dns in the configuration (or the record in the way in \
             the hosted zone) and run again; docs/regions/route53.md",
        ),
        Route53Error::Transport { .. } => (
            Kind::Failure,
            "check that the Route 53 endpoint (traffic.route53.endpoint, or AWS's) is reachable \
             from this host, then run again",
        ),
        _ => (
            Kind::Failure,
            "run `lifeboat region traffic status` to see what Route 53 holds, then apply again",
        ),
    };
    Error::new(kind, message).with_hint(hint)
}

fn apply_error(e: ApplyError) -> Error {
    let message = e.to_string();
    route53_error(&e.cause, message)
}

fn status_error(e: Route53Error) -> Error {
    let message = e.to_string();
    route53_error(&e, message)
}

/// `region traffic apply` with `route53`: the result.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    /// `route53`.
    pub provider: &'static str,
    /// The steered name.
    pub name: String,
    pub zone: Zone,
    pub dry_run: bool,
    /// Whether anything was changed in Route 53.
    pub written: bool,
    /// The changes planned (made unless `dry_run`), in order; empty when the
    /// zone already holds what the configuration says.
    pub changes: Vec<String>,
    /// Every call that changed something, in order (empty for a dry run).
    pub done: Vec<String>,
    /// Health checks created, by record.
    pub created_checks: BTreeMap<String, String>,
    /// The change batch's id, when records changed (waited for `INSYNC`).
    pub change_id: Option<String>,
    /// The configured records, as Route 53 is to hold them.
    pub records: Vec<String>,
    /// What the mapping and the plan noticed (a region's extra checks,
    /// foreign weighted records at the name).
    pub notes: Vec<String>,
}

/// Makes the hosted zone hold the configured records and checks
/// (idempotent: nothing is written when it already does, or with
/// `dry_run`). Published health verdicts play no part: Route 53 decides by
/// its own checks.
pub async fn apply(ctx: &Ctx, dry_run: bool) -> Result<ApplyReport> {
    let config = config_of(ctx)?;
    let desired = desired_records(config)?;
    let provider = Route53Provider::connect(&settings(config)?).await;
    let report = provider
        .apply(&desired.records, dry_run)
        .await
        .map_err(apply_error)?;
    let mut notes = desired.notes;
    notes.extend(report.plan.notes.iter().cloned());
    Ok(ApplyReport {
        provider: "route53",
        name: route53_traffic(config)?.name().normalized(),
        zone: report.zone,
        dry_run,
        written: !dry_run && !report.plan.changes.is_empty(),
        changes: report
            .plan
            .changes
            .iter()
            .map(ToString::to_string)
            .collect(),
        done: report.done,
        created_checks: report.created_checks,
        change_id: report.change_id,
        records: desired.records.iter().map(describe).collect(),
        notes,
    })
}

/// One configured record as a line: the record set and its check.
fn describe(r: &WeightedRecord) -> String {
    let mut s = r.state(None).to_string();
    if let Some(hc) = &r.health_check {
        s.push_str(&format!("; health check {}", hc.settings()));
    }
    s
}

/// `region traffic status` with `route53`: the result.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// `route53`.
    pub provider: &'static str,
    pub name: String,
    pub zone: Zone,
    /// The zone holds every configured record and check exactly as the
    /// configuration says.
    pub in_sync: bool,
    /// What `region traffic apply` would change (empty when in sync).
    pub pending: Vec<String>,
    /// Per configured record: what the zone holds and its check's status
    /// as Route 53's checkers report it.
    pub records: Vec<RecordStatus>,
    /// What Route 53 answers by its own checkers' reports (a record whose
    /// check has no report counts as healthy, as Route 53 treats a new
    /// check).
    pub current: AnswerSet,
    /// What the published health verdicts of Lifeboat's vantage points say
    /// it should answer.
    pub desired: DesiredAnswers,
    pub health: HealthBasis,
    /// `current == desired.answers`: Route 53's checkers and Lifeboat's
    /// vantage points agree.
    pub agrees_with_health: bool,
    pub notes: Vec<String>,
}

/// What Route 53 holds for the configured records, next to what the
/// published health says.
pub async fn status(ctx: &Ctx) -> Result<StatusReport> {
    let config = config_of(ctx)?;
    let desired = desired_records(config)?;
    let provider = Route53Provider::connect(&settings(config)?).await;
    let st = provider
        .status(&desired.records)
        .await
        .map_err(status_error)?;
    let repo = ctx.open().await?;
    let views = verdicts::read_all(&repo).await?;
    let health = health_basis(config, &views, Utc::now());
    let answers = region_answers(config);
    let (current, _) = route53_answers(&st, &answers);
    let wanted = desired_answer_set(&answers, &health.verdicts);
    let mut notes = desired.notes;
    notes.extend(st.notes.iter().cloned());
    Ok(StatusReport {
        provider: "route53",
        name: route53_traffic(config)?.name().normalized(),
        zone: st.zone,
        in_sync: st.in_sync,
        pending: st.pending,
        agrees_with_health: current.answers == wanted.answers,
        records: st.records,
        current: current.answers,
        desired: wanted,
        health,
        notes,
    })
}

/// What Route 53 answers, by its own rule over what the zone holds (pure):
/// the records present for the configured regions, each healthy as its
/// check's reports say (no check or no report: healthy), all of them when
/// none is healthy. Also the verdicts it used, by region.
pub fn route53_answers(
    st: &TrafficStatus,
    configured: &[RegionAnswer],
) -> (DesiredAnswers, Verdicts) {
    let mut present = Vec::new();
    let mut verdicts = Verdicts::new();
    for r in &st.records {
        let Some(state) = &r.present else { continue };
        let Some(value) = state.values.first() else {
            continue;
        };
        let Ok(answer) = Answer::parse(value) else {
            continue;
        };
        let region = r.key.set_identifier.clone();
        if !configured.iter().any(|c| c.region == region) {
            continue;
        }
        if let Some(healthy) = r.health_check.as_ref().and_then(|c| c.healthy) {
            verdicts.insert(region.clone(), healthy);
        }
        present.push(RegionAnswer { region, answer });
    }
    // Config order, as the other provider reports it.
    present.sort_by_key(|p| configured.iter().position(|c| c.region == p.region));
    (desired_answer_set(&present, &verdicts), verdicts)
}

/// Readiness's `global-load-balancer` evidence for `route53`: every
/// configured region's record and health check present as configured (the
/// status `in_sync`; otherwise the error says what is missing or differs),
/// and what Route 53 answers by its checkers next to what it should answer
/// with every configured record in place. Route 53's checkers are the
/// health here: they, not Lifeboat's vantage points, decide its answers.
pub async fn evidence(config: &Config) -> lifeboat_dr::readiness::TrafficEvidence {
    let name = config
        .traffic
        .as_ref()
        .map(|t| t.name().normalized())
        .unwrap_or_default();
    let answers = region_answers(config);
    let read = async {
        let desired = desired_records(config)?;
        let provider = Route53Provider::connect(&settings(config)?).await;
        provider
            .status(&desired.records)
            .await
            .map_err(status_error)
    };
    match read.await {
        Ok(st) => evidence_of(&name, &st, &answers, &checks_per_region(config)),
        Err(e) => lifeboat_dr::readiness::TrafficEvidence {
            provider: "route53".into(),
            name,
            error: Some(e.to_string()),
            current: Vec::new(),
            desired: Vec::new(),
            regions: answers
                .iter()
                .map(|a| region_evidence(a, &checks_per_region(config), None))
                .collect(),
            all_unhealthy: false,
        },
    }
}

fn checks_per_region(config: &Config) -> BTreeMap<String, usize> {
    config
        .regions()
        .iter()
        .map(|(n, r)| (n.clone(), r.health_checks.len()))
        .collect()
}

fn region_evidence(
    a: &RegionAnswer,
    checks: &BTreeMap<String, usize>,
    record: Option<&RecordStatus>,
) -> lifeboat_dr::readiness::RegionTrafficEvidence {
    let check = record.and_then(|r| r.health_check.as_ref());
    let observations = check.map(|c| c.observations.as_slice()).unwrap_or(&[]);
    lifeboat_dr::readiness::RegionTrafficEvidence {
        region: a.region.clone(),
        answer: a.answer.to_string(),
        checks: checks.get(&a.region).copied().unwrap_or(0),
        healthy: check.and_then(|c| c.healthy),
        unhealthy_observers: observations
            .iter()
            .filter(|o| !o.status.starts_with("Success"))
            .map(|o| format!("route53 checker {} ({})", o.region, o.ip_address))
            .collect(),
        observers: observations.len(),
    }
}

/// The evidence from a status read (pure).
pub fn evidence_of(
    name: &str,
    st: &TrafficStatus,
    configured: &[RegionAnswer],
    checks: &BTreeMap<String, usize>,
) -> lifeboat_dr::readiness::TrafficEvidence {
    let (current, verdicts) = route53_answers(st, configured);
    let desired = desired_answer_set(configured, &verdicts);
    let error = (!st.in_sync).then(|| {
        format!(
            "hosted zone {} does not hold the records and health checks the configuration \
             describes: {}; run `lifeboat region traffic apply`",
            st.zone.name,
            st.pending.join("; ")
        )
    });
    let text = |set: &AnswerSet| set.iter().map(ToString::to_string).collect::<Vec<_>>();
    lifeboat_dr::readiness::TrafficEvidence {
        provider: "route53".into(),
        name: name.to_string(),
        error,
        current: text(&current.answers),
        desired: text(&desired.answers),
        regions: configured
            .iter()
            .map(|a| {
                let record = st.records.iter().find(|r| r.key.set_identifier == a.region);
                region_evidence(a, checks, record)
            })
            .collect(),
        all_unhealthy: desired.all_unhealthy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_region::traffic::route53::{
        CheckStatus, HealthCheckSettings, Observation, RecordKey, RecordSetState,
    };

    fn config(yaml: &str) -> Config {
        crate::config::parse(yaml, "test.yaml").unwrap()
    }

    const BASE: &str = r#"repository:
  url: /tmp/r
regions:
  us-east:
    postgres: {url: "postgresql://a@127.0.0.1:1/p", role: primary}
    health_checks:
      - {name: gateway, type: https, host: gateway.us-east.kubernaut.io, resource_path: /healthz}
      - {name: api, type: tcp, host: 192.0.2.7, port: 8443}
    dns: {target: Gateway.US-East.kubernaut.io.}
  eu-west:
    postgres: {url: "postgresql://a@127.0.0.1:1/p", role: standby, replicates_from: us-east}
    health_checks:
      - {name: gateway, type: http, host: 198.51.100.20, port: 8080, search_string: ok, request_interval: 10s, failure_threshold: 5}
    dns: {target: gateway.eu-west.kubernaut.io, weight: 50}
  ap-south:
    postgres: {url: "postgresql://a@127.0.0.1:1/p", role: standby, replicates_from: us-east}
traffic:
  provider: route53
  name: Gateway.kubernaut.io
  ttl: 30
  route53: {hosted_zone_id: Z0123, endpoint: "http://127.0.0.1:5000"}
"#;

    #[test]
    fn records_from_the_configuration() {
        let c = config(BASE);
        let d = desired_records(&c).unwrap();
        assert_eq!(d.records.len(), 2, "ap-south has no dns: not steered");
        let us = &d.records[0];
        assert_eq!(
            (
                us.name.as_str(),
                us.record_type,
                us.set_identifier.as_str(),
                us.weight,
                us.ttl
            ),
            (
                "gateway.kubernaut.io",
                RecordType::Cname,
                "us-east",
                100,
                30
            )
        );
        assert_eq!(us.values, vec!["gateway.us-east.kubernaut.io".to_string()]);
        let hc = us.health_check.as_ref().unwrap();
        assert_eq!(
            hc.settings(),
            HealthCheckSettings {
                api_type: "HTTPS".into(),
                ip_address: None,
                fqdn: Some("gateway.us-east.kubernaut.io".into()),
                port: 443,
                resource_path: Some("/healthz".into()),
                search_string: None,
                request_interval: 30,
                failure_threshold: 3,
                enable_sni: true,
            }
        );
        let eu = &d.records[1];
        assert_eq!(eu.weight, 50);
        assert_eq!(
            eu.health_check.as_ref().unwrap().settings(),
            HealthCheckSettings {
                api_type: "HTTP_STR_MATCH".into(),
                ip_address: Some("198.51.100.20".parse().unwrap()),
                fqdn: None,
                port: 8080,
                resource_path: Some("/".into()),
                search_string: Some("ok".into()),
                request_interval: 10,
                failure_threshold: 5,
                enable_sni: false,
            }
        );
        assert_eq!(d.notes.len(), 1, "{:?}", d.notes);
        assert!(
            d.notes[0].contains("us-east has 2 health checks"),
            "{:?}",
            d.notes
        );
        let s = settings(&c).unwrap();
        assert_eq!(s.hosted_zone_id, "Z0123");
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
    }

    #[test]
    fn addresses_become_a_and_aaaa_records() {
        let yaml = BASE
            .replace(
                "dns: {target: Gateway.US-East.kubernaut.io.}",
                "dns: {address: 192.0.2.10}",
            )
            .replace(
                "dns: {target: gateway.eu-west.kubernaut.io, weight: 50}",
                "dns: {address: \"2001:db8::20\"}",
            );
        let d = desired_records(&config(&yaml)).unwrap();
        let kinds: Vec<(RecordType, String)> = d
            .records
            .iter()
            .map(|r| (r.record_type, r.values[0].clone()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (RecordType::A, "192.0.2.10".to_string()),
                (RecordType::Aaaa, "2001:db8::20".to_string())
            ]
        );
        let tcp_first = yaml.replace(
            "      - {name: gateway, type: https, host: gateway.us-east.kubernaut.io, resource_path: /healthz}\n",
            "",
        );
        let d = desired_records(&config(&tcp_first)).unwrap();
        let hc = d.records[0].health_check.as_ref().unwrap().settings();
        assert_eq!(
            (
                hc.api_type.as_str(),
                hc.port,
                hc.resource_path,
                hc.ip_address
            ),
            ("TCP", 8443, None, Some("192.0.2.7".parse().unwrap()))
        );
    }

    #[test]
    fn other_providers_are_refused() {
        let table = [
            (
                "repository:\n  url: /tmp/r\n".to_string(),
                "no `traffic:` section",
            ),
            (
                BASE.replace(
                    "  route53: {hosted_zone_id: Z0123, endpoint: \"http://127.0.0.1:5000\"}\n",
                    "",
                ),
                "no traffic.route53 section",
            ),
        ];
        for (yaml, want) in table {
            let e = match crate::config::parse(&yaml, "test.yaml") {
                Ok(c) => settings(&c)
                    .and_then(|_| desired_records(&c).map(|_| ()))
                    .unwrap_err()
                    .to_string(),
                Err(e) => e.to_string(),
            };
            assert!(e.contains(want), "{e} should say {want}");
        }
    }

    fn record(region: &str, value: &str, healthy: Option<Option<bool>>) -> RecordStatus {
        let key = RecordKey {
            name: "gateway.kubernaut.io.".into(),
            record_type: RecordType::A,
            set_identifier: region.into(),
        };
        RecordStatus {
            present: Some(RecordSetState {
                key: key.clone(),
                weight: 100,
                ttl: 60,
                values: vec![value.into()],
                health_check_id: healthy.map(|_| format!("hc-{region}")),
            }),
            health_check: healthy.map(|h| CheckStatus {
                id: format!("hc-{region}"),
                settings: None,
                observations: h
                    .map(|ok| {
                        vec![Observation {
                            region: "us-east-1".into(),
                            ip_address: "15.177.2.1".into(),
                            status: if ok {
                                "Success: 200"
                            } else {
                                "Failure: timeout"
                            }
                            .into(),
                            checked_at: None,
                        }]
                    })
                    .unwrap_or_default(),
                healthy: h,
            }),
            key,
        }
    }

    fn missing(region: &str) -> RecordStatus {
        RecordStatus {
            present: None,
            health_check: None,
            ..record(region, "192.0.2.1", None)
        }
    }

    fn st(records: Vec<RecordStatus>, pending: &[&str]) -> TrafficStatus {
        TrafficStatus {
            zone: Zone {
                id: "Z0123".into(),
                name: "kubernaut.io.".into(),
            },
            records,
            in_sync: pending.is_empty(),
            pending: pending.iter().map(|s| s.to_string()).collect(),
            notes: vec![],
        }
    }

    #[test]
    fn readiness_evidence_from_what_route53_holds() {
        let configured = vec![
            RegionAnswer {
                region: "us-east".into(),
                answer: Answer::parse("192.0.2.10").unwrap(),
            },
            RegionAnswer {
                region: "eu-west".into(),
                answer: Answer::parse("192.0.2.20").unwrap(),
            },
        ];
        let checks: BTreeMap<String, usize> =
            [("us-east".to_string(), 1), ("eu-west".to_string(), 1)].into();
        let both = "192.0.2.10, 192.0.2.20";
        // (what, status, error expected, current, desired)
        let table: Vec<(&str, TrafficStatus, bool, &str, &str)> = vec![
            (
                "both present, checks report healthy",
                st(
                    vec![
                        record("us-east", "192.0.2.10", Some(Some(true))),
                        record("eu-west", "192.0.2.20", Some(Some(true))),
                    ],
                    &[],
                ),
                false,
                both,
                both,
            ),
            (
                "no reports yet: healthy, as Route 53 treats a new check",
                st(
                    vec![
                        record("us-east", "192.0.2.10", Some(None)),
                        record("eu-west", "192.0.2.20", Some(None)),
                    ],
                    &[],
                ),
                false,
                both,
                both,
            ),
            (
                "eu-west's checkers report failure: Route 53 leaves it out",
                st(
                    vec![
                        record("us-east", "192.0.2.10", Some(Some(true))),
                        record("eu-west", "192.0.2.20", Some(Some(false))),
                    ],
                    &[],
                ),
                false,
                "192.0.2.10",
                "192.0.2.10",
            ),
            (
                "eu-west's record missing",
                st(
                    vec![
                        record("us-east", "192.0.2.10", Some(Some(true))),
                        missing("eu-west"),
                    ],
                    &["upsert gateway.kubernaut.io. A [eu-west]"],
                ),
                true,
                "192.0.2.10",
                both,
            ),
        ];
        for (what, status, error, current, desired) in table {
            let ev = evidence_of("gateway.kubernaut.io", &status, &configured, &checks);
            assert_eq!(ev.error.is_some(), error, "{what}: {:?}", ev.error);
            if let Some(e) = &ev.error {
                assert!(e.contains("[eu-west]"), "{what}: says what is missing: {e}");
            }
            assert_eq!(ev.current.join(", "), current, "{what}");
            assert_eq!(ev.desired.join(", "), desired, "{what}");
            assert_eq!(ev.regions.len(), 2, "{what}");
        }
    }
}
