//! The regions as plain values, and which topologies are impossible.
//!
//! `lifeboat-ops::config` reads the `regions:` and `traffic:` sections of
//! the configuration file (with their secret references and line and
//! column numbers) and hands this crate [`RegionSpec`]s: names, the
//! *declared* role, where a standby replicates from, the health checks
//! ([`CheckSpec`], defaults applied) and the DNS answer. The declared role is
//! what the operator wrote; `region status` observes the real one from the
//! servers (`pg_is_in_recovery()`), which after a failover differs.
//!
//! [`problems`] decides, as a pure function, what makes a topology
//! impossible; each [`Problem`] names the region and the [`Subject`] (which
//! value) it is about, so that the configuration can point at its line and
//! column.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Route 53 allows these request intervals only (seconds).
pub const ROUTE53_INTERVALS: [u64; 2] = [10, 30];
/// Route 53's `FailureThreshold` range.
pub const THRESHOLD_RANGE: std::ops::RangeInclusive<u32> = 1..=10;
/// Route 53's limit on `SearchString` and `ResourcePath` (characters).
pub const MAX_SEARCH_LEN: usize = 255;
pub const MAX_PATH_LEN: usize = 255;
/// The default request interval (Route 53's).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// The default failure threshold (Route 53's).
pub const DEFAULT_THRESHOLD: u32 = 3;
/// The default weight of a region's DNS answer (the seed's 100/100 split).
pub const DEFAULT_WEIGHT: u8 = 100;

/// The role the configuration declares for a region's PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeclaredRole {
    Primary,
    Standby,
}

impl fmt::Display for DeclaredRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeclaredRole::Primary => "primary",
            DeclaredRole::Standby => "standby",
        })
    }
}

/// Who steers traffic between the regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// AWS Route 53: weighted records with Route 53 health checks.
    Route53,
    /// Dynamic DNS updates (RFC 2136, TSIG) to an authoritative server; the
    /// daemons keep the answer set equal to the healthy regions.
    Rfc2136,
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Provider::Route53 => "route53",
            Provider::Rfc2136 => "rfc2136",
        })
    }
}

/// The protocol of a health check (Route 53's `Type`): the prober's own.
pub use crate::health::CheckKind;

/// One health check of a region, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    /// Unique within the region; names the check in metrics and status.
    pub name: String,
    pub kind: CheckKind,
    /// An IP address or a DNS name (for HTTPS also the name sent as SNI and
    /// `Host`).
    pub host: String,
    /// The configured port, else the kind's default; 0 when there is
    /// neither (a TCP check without a port: [`problems`] refuses it).
    pub port: u16,
    /// HTTP(S): the path requested (`/` when none is configured); `None`
    /// for TCP.
    pub path: Option<String>,
    /// HTTP(S): a string the first 5,120 bytes of the body must contain.
    pub search: Option<String>,
    pub interval: Duration,
    /// Consecutive results that flip the verdict, either way.
    pub threshold: u32,
}

impl CheckSpec {
    /// The check as the prober runs it (a path of `/` when none is
    /// configured).
    pub fn probe(&self) -> crate::health::CheckSpec {
        crate::health::CheckSpec {
            name: self.name.clone(),
            kind: self.kind,
            host: self.host.clone(),
            port: self.port,
            resource_path: self
                .path
                .clone()
                .unwrap_or_else(|| crate::health::spec::DEFAULT_RESOURCE_PATH.to_string()),
            search_string: self.search.clone(),
            request_interval: self.interval,
            failure_threshold: self.threshold,
        }
    }

    /// The host as an IP address, when it is one (else it is a name).
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

/// What DNS answers for a region.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DnsAnswer {
    /// An A (IPv4) or AAAA (IPv6) record.
    Address(IpAddr),
    /// A CNAME to this name.
    Target(String),
}

/// One region, as the configuration declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionSpec {
    pub name: String,
    pub role: DeclaredRole,
    /// The region a standby streams from (the primary, or another standby
    /// for cascading replication).
    pub replicates_from: Option<String>,
    pub checks: Vec<CheckSpec>,
    /// Its DNS answer; `None`: the region is not steered to.
    pub answer: Option<DnsAnswer>,
    /// Its share of the weighted answers (Route 53 `Weight`, 0–255).
    pub weight: u8,
}

/// Which value of a region a [`Problem`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    /// `postgres.role`
    Role,
    /// `postgres.replicates_from`
    ReplicatesFrom,
    /// `health_checks[index]`, at one of its values.
    Check { index: usize, field: CheckField },
    /// `dns`
    Dns,
}

/// A value of a health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckField {
    Name,
    Kind,
    Port,
    Path,
    Search,
    Interval,
    Threshold,
}

impl CheckField {
    /// The key in the configuration file.
    pub fn key(self) -> &'static str {
        match self {
            CheckField::Name => "name",
            CheckField::Kind => "type",
            CheckField::Port => "port",
            CheckField::Path => "resource_path",
            CheckField::Search => "search_string",
            CheckField::Interval => "request_interval",
            CheckField::Threshold => "failure_threshold",
        }
    }
}

/// What is impossible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// No region is declared primary.
    NoPrimary,
    /// This region is declared primary, and so is `first`.
    SecondPrimary {
        first: String,
    },
    /// A standby that names no region to replicate from.
    StandbyWithoutSource,
    /// A primary that names a region to replicate from.
    PrimaryReplicates {
        from: String,
    },
    ReplicatesFromItself,
    ReplicatesFromUnknown {
        from: String,
        known: Vec<String>,
    },
    /// Following `replicates_from` from this standby never reaches the
    /// primary (a cycle among standbys).
    NoPathToPrimary {
        cycle: Vec<String>,
    },
    DuplicateCheckName {
        name: String,
    },
    /// An interval other than 10 s or 30 s while Route 53 steers traffic.
    IntervalNotRoute53 {
        seconds: u64,
    },
    /// An interval under one second.
    IntervalTooShort,
    ThresholdOutOfRange {
        threshold: u32,
    },
    SearchOnTcp,
    PathOnTcp,
    SearchTooLong {
        chars: usize,
    },
    PathTooLong {
        chars: usize,
    },
    PathNotAbsolute,
    /// Port 0, or a TCP check without a port.
    NoPort {
        kind: CheckKind,
    },
    /// A target name (CNAME) while RFC 2136 steers traffic: a name holds
    /// one CNAME only, so the answer set cannot list several regions.
    TargetWithRfc2136,
    /// Some regions answer with addresses and others with target names: the
    /// steered name cannot be both a CNAME and an A/AAAA record set.
    /// `target`: this region's answer is a target name (`first`'s is not).
    MixedAnswers {
        first: String,
        target: bool,
    },
    /// Traffic steering is configured but no region has a DNS answer.
    NothingToSteer,
}

/// One impossible thing about a topology: the region and the value it is
/// about, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub region: String,
    pub subject: Subject,
    pub kind: ProblemKind,
}

impl fmt::Display for Problem {
    /// The message, without the key's path (the configuration adds it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.region;
        match &self.kind {
            ProblemKind::NoPrimary => f.write_str(
                "no region is declared primary; declare the one whose PostgreSQL accepts writes with role: primary",
            ),
            ProblemKind::SecondPrimary { first } => write!(
                f,
                "{r} is declared primary, and so is {first}: only one region is primary; make the other a standby (role: standby, replicates_from: …)"
            ),
            ProblemKind::StandbyWithoutSource => write!(
                f,
                "{r} is declared standby but names no region to replicate from; add replicates_from: <the primary region>"
            ),
            ProblemKind::PrimaryReplicates { from } => write!(
                f,
                "{r} is declared primary but replicates_from names {from}: a primary replicates from no one; remove replicates_from or declare {r} a standby"
            ),
            ProblemKind::ReplicatesFromItself => {
                write!(f, "{r} replicates from itself; name the primary region")
            }
            ProblemKind::ReplicatesFromUnknown { from, known } => write!(
                f,
                "{r} replicates from {from:?}, which is no region here (regions: {})",
                known.join(", ")
            ),
            ProblemKind::NoPathToPrimary { cycle } => write!(
                f,
                "{r} replicates in a circle ({}) that never reaches the primary; one of them must replicate from the primary",
                cycle.join(" → ")
            ),
            ProblemKind::DuplicateCheckName { name } => write!(
                f,
                "two health checks of {r} are called {name:?}; every check of a region needs its own name"
            ),
            ProblemKind::IntervalNotRoute53 { seconds } => write!(
                f,
                "{seconds}s is not an interval Route 53 allows (traffic.provider is route53): use 10s or 30s"
            ),
            ProblemKind::IntervalTooShort => f.write_str("must be at least 1s"),
            ProblemKind::ThresholdOutOfRange { threshold } => write!(
                f,
                "{threshold} is outside 1 to 10 (Route 53's range of consecutive results that flip a verdict)"
            ),
            ProblemKind::SearchOnTcp => f.write_str(
                "a tcp check reads no response, so it has no search_string; remove it or make the check http or https",
            ),
            ProblemKind::PathOnTcp => f.write_str(
                "a tcp check sends no request, so it has no resource_path; remove it or make the check http or https",
            ),
            ProblemKind::SearchTooLong { chars } => write!(
                f,
                "is {chars} characters long; Route 53 allows at most {MAX_SEARCH_LEN}"
            ),
            ProblemKind::PathTooLong { chars } => write!(
                f,
                "is {chars} characters long; Route 53 allows at most {MAX_PATH_LEN}"
            ),
            ProblemKind::PathNotAbsolute => f.write_str("must start with /, e.g. /healthz"),
            ProblemKind::NoPort { kind } => match kind {
                CheckKind::Tcp => f.write_str("a tcp check needs a port (1 to 65535)"),
                _ => f.write_str("port must be between 1 and 65535"),
            },
            ProblemKind::TargetWithRfc2136 => write!(
                f,
                "{r} answers with a target name (CNAME), but with rfc2136 the steered name lists the healthy regions, and a name holds only one CNAME; give the region an address"
            ),
            ProblemKind::MixedAnswers { first, target } => {
                let (mine, theirs) = if *target {
                    ("a target name", "an address")
                } else {
                    ("an address", "a target name")
                };
                write!(
                    f,
                    "{r} answers with {mine} but {first} with {theirs}; the steered name is either a CNAME or addresses, so give every region the same kind"
                )
            }
            ProblemKind::NothingToSteer => f.write_str(
                "traffic is configured but no region has a dns answer; give each region that serves traffic dns: {address: …} or {target: …}",
            ),
        }
    }
}

/// Everything impossible about `regions` (in the order the configuration
/// lists them: a second primary is reported at the later one) when
/// `provider` steers traffic (`None`: no steering). Empty: possible.
pub fn problems(regions: &[RegionSpec], provider: Option<Provider>) -> Vec<Problem> {
    let mut out = Vec::new();
    if regions.is_empty() {
        return out;
    }
    out.extend(role_problems(regions));
    for r in regions {
        out.extend(check_problems(r, provider));
    }
    if let Some(p) = provider {
        out.extend(answer_problems(regions, p));
    }
    out
}

fn problem(region: &str, subject: Subject, kind: ProblemKind) -> Problem {
    Problem {
        region: region.to_string(),
        subject,
        kind,
    }
}

/// One primary; every standby streams, directly or through other standbys,
/// from it; no primary streams from anyone.
fn role_problems(regions: &[RegionSpec]) -> Vec<Problem> {
    let mut out = Vec::new();
    let names: BTreeSet<&str> = regions.iter().map(|r| r.name.as_str()).collect();
    let known = || names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let mut primary: Option<&str> = None;
    for r in regions {
        if r.role == DeclaredRole::Primary {
            match primary {
                None => primary = Some(r.name.as_str()),
                Some(first) => out.push(problem(
                    &r.name,
                    Subject::Role,
                    ProblemKind::SecondPrimary {
                        first: first.to_string(),
                    },
                )),
            }
        }
    }
    if primary.is_none() {
        out.push(problem(
            &regions[0].name,
            Subject::Role,
            ProblemKind::NoPrimary,
        ));
    }
    // Each region's source, for the ones whose source is a known other
    // region (the rest are reported below and end every walk).
    let mut source: BTreeMap<&str, &str> = BTreeMap::new();
    for r in regions {
        match (r.role, r.replicates_from.as_deref()) {
            (DeclaredRole::Standby, None) => out.push(problem(
                &r.name,
                Subject::Role,
                ProblemKind::StandbyWithoutSource,
            )),
            (DeclaredRole::Primary, Some(from)) => out.push(problem(
                &r.name,
                Subject::ReplicatesFrom,
                ProblemKind::PrimaryReplicates {
                    from: from.to_string(),
                },
            )),
            (DeclaredRole::Standby, Some(from)) if from == r.name => out.push(problem(
                &r.name,
                Subject::ReplicatesFrom,
                ProblemKind::ReplicatesFromItself,
            )),
            (DeclaredRole::Standby, Some(from)) if !names.contains(from) => out.push(problem(
                &r.name,
                Subject::ReplicatesFrom,
                ProblemKind::ReplicatesFromUnknown {
                    from: from.to_string(),
                    known: known(),
                },
            )),
            (DeclaredRole::Standby, Some(from)) => {
                source.insert(&r.name, from);
            }
            (DeclaredRole::Primary, None) => {}
        }
    }
    // A walk from a standby ends at a primary, at a region already
    // reported, or comes back to a region it passed: a cycle, reported once
    // at its first region in the configuration's order.
    let mut in_reported_cycle: BTreeSet<&str> = BTreeSet::new();
    for r in regions {
        if !source.contains_key(r.name.as_str()) || in_reported_cycle.contains(r.name.as_str()) {
            continue;
        }
        let mut path = vec![r.name.as_str()];
        let mut at = r.name.as_str();
        while let Some(&next) = source.get(at) {
            if let Some(i) = path.iter().position(|p| *p == next) {
                let cycle = &path[i..];
                if cycle.contains(&r.name.as_str()) {
                    in_reported_cycle.extend(cycle.iter().copied());
                    let mut shown: Vec<String> = cycle.iter().map(|s| s.to_string()).collect();
                    shown.push(r.name.clone());
                    out.push(problem(
                        &r.name,
                        Subject::ReplicatesFrom,
                        ProblemKind::NoPathToPrimary { cycle: shown },
                    ));
                }
                break;
            }
            path.push(next);
            at = next;
        }
    }
    out
}

/// Route 53's rules for one region's checks, and unique names.
fn check_problems(r: &RegionSpec, provider: Option<Provider>) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let at = |index, field| Subject::Check { index, field };
    for (i, c) in r.checks.iter().enumerate() {
        let mut push = |field, kind| out.push(problem(&r.name, at(i, field), kind));
        if !seen.insert(c.name.as_str()) {
            push(
                CheckField::Name,
                ProblemKind::DuplicateCheckName {
                    name: c.name.clone(),
                },
            );
        }
        if c.interval < Duration::from_secs(1) {
            push(CheckField::Interval, ProblemKind::IntervalTooShort);
        } else if provider == Some(Provider::Route53)
            && (c.interval.subsec_nanos() != 0
                || !ROUTE53_INTERVALS.contains(&c.interval.as_secs()))
        {
            push(
                CheckField::Interval,
                ProblemKind::IntervalNotRoute53 {
                    seconds: c.interval.as_secs(),
                },
            );
        }
        if !THRESHOLD_RANGE.contains(&c.threshold) {
            push(
                CheckField::Threshold,
                ProblemKind::ThresholdOutOfRange {
                    threshold: c.threshold,
                },
            );
        }
        if c.port == 0 {
            let field = if c.kind == CheckKind::Tcp {
                CheckField::Kind
            } else {
                CheckField::Port
            };
            push(field, ProblemKind::NoPort { kind: c.kind });
        }
        if let Some(s) = &c.search {
            if c.kind == CheckKind::Tcp {
                push(CheckField::Search, ProblemKind::SearchOnTcp);
            } else if s.chars().count() > MAX_SEARCH_LEN {
                push(
                    CheckField::Search,
                    ProblemKind::SearchTooLong {
                        chars: s.chars().count(),
                    },
                );
            }
        }
        if let Some(p) = &c.path {
            if c.kind == CheckKind::Tcp {
                push(CheckField::Path, ProblemKind::PathOnTcp);
            } else if !p.starts_with('/') {
                push(CheckField::Path, ProblemKind::PathNotAbsolute);
            } else if p.chars().count() > MAX_PATH_LEN {
                push(
                    CheckField::Path,
                    ProblemKind::PathTooLong {
                        chars: p.chars().count(),
                    },
                );
            }
        }
    }
    out
}

/// The answers can be steered: some region has one; with RFC 2136 only
/// addresses; never addresses and target names mixed.
fn answer_problems(regions: &[RegionSpec], provider: Provider) -> Vec<Problem> {
    let mut out = Vec::new();
    let answering: Vec<(&RegionSpec, &DnsAnswer)> = regions
        .iter()
        .filter_map(|r| r.answer.as_ref().map(|a| (r, a)))
        .collect();
    let Some(&(first, first_answer)) = answering.first() else {
        out.push(problem(
            &regions[0].name,
            Subject::Dns,
            ProblemKind::NothingToSteer,
        ));
        return out;
    };
    let is_target = |a: &DnsAnswer| matches!(a, DnsAnswer::Target(_));
    for &(r, a) in &answering {
        if provider == Provider::Rfc2136 && is_target(a) {
            out.push(problem(
                &r.name,
                Subject::Dns,
                ProblemKind::TargetWithRfc2136,
            ));
        } else if provider == Provider::Route53 && is_target(a) != is_target(first_answer) {
            out.push(problem(
                &r.name,
                Subject::Dns,
                ProblemKind::MixedAnswers {
                    first: first.name.clone(),
                    target: is_target(a),
                },
            ));
        }
    }
    out
}

#[cfg(test)]
// Table tests: each row is a tuple of inputs and expected problems, spelt out in place.
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;

    fn check(name: &str, kind: CheckKind) -> CheckSpec {
        CheckSpec {
            name: name.into(),
            kind,
            host: "gateway.us-east.kubernaut.io".into(),
            port: kind.default_port().unwrap_or(0),
            path: (kind != CheckKind::Tcp).then(|| "/healthz".to_string()),
            search: None,
            interval: DEFAULT_INTERVAL,
            threshold: DEFAULT_THRESHOLD,
        }
    }

    fn region(name: &str, role: DeclaredRole, from: Option<&str>) -> RegionSpec {
        RegionSpec {
            name: name.into(),
            role,
            replicates_from: from.map(String::from),
            checks: vec![check("gateway", CheckKind::Https)],
            answer: Some(DnsAnswer::Target(format!("gateway.{name}.kubernaut.io"))),
            weight: DEFAULT_WEIGHT,
        }
    }

    use DeclaredRole::{Primary, Standby};

    fn p(name: &str) -> RegionSpec {
        region(name, Primary, None)
    }
    fn s(name: &str, from: &str) -> RegionSpec {
        region(name, Standby, Some(from))
    }

    /// (topology, expected problems as (region, subject, kind)).
    #[test]
    fn roles_and_sources() {
        use ProblemKind::*;
        use Subject::{ReplicatesFrom, Role};
        let known = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: Vec<(Vec<RegionSpec>, Vec<(&str, Subject, ProblemKind)>)> = vec![
            // The seed's pair.
            (vec![p("us-east"), s("eu-west", "us-east")], vec![]),
            // One region alone is a topology too.
            (vec![p("us-east")], vec![]),
            // Cascading: a standby of a standby of the primary.
            (vec![p("a"), s("b", "a"), s("c", "b")], vec![]),
            (
                vec![p("us-east"), p("eu-west")],
                vec![(
                    "eu-west",
                    Role,
                    SecondPrimary {
                        first: "us-east".into(),
                    },
                )],
            ),
            (
                vec![p("a"), p("b"), p("c")],
                vec![
                    ("b", Role, SecondPrimary { first: "a".into() }),
                    ("c", Role, SecondPrimary { first: "a".into() }),
                ],
            ),
            (
                vec![s("a", "b"), s("b", "a")],
                vec![
                    ("a", Role, NoPrimary),
                    (
                        "a",
                        ReplicatesFrom,
                        NoPathToPrimary {
                            cycle: known(&["a", "b", "a"]),
                        },
                    ),
                ],
            ),
            (
                vec![p("us-east"), s("eu-west", "eu-west")],
                vec![("eu-west", ReplicatesFrom, ReplicatesFromItself)],
            ),
            (
                vec![p("us-east"), s("eu-west", "us-west")],
                vec![(
                    "eu-west",
                    ReplicatesFrom,
                    ReplicatesFromUnknown {
                        from: "us-west".into(),
                        known: known(&["eu-west", "us-east"]),
                    },
                )],
            ),
            (
                vec![p("us-east"), region("eu-west", Standby, None)],
                vec![("eu-west", Role, StandbyWithoutSource)],
            ),
            (
                vec![
                    region("us-east", Primary, Some("eu-west")),
                    s("eu-west", "us-east"),
                ],
                vec![(
                    "us-east",
                    ReplicatesFrom,
                    PrimaryReplicates {
                        from: "eu-west".into(),
                    },
                )],
            ),
            // A cycle behind a standby that feeds from it: the cycle is
            // reported once, the standby hanging off it is not.
            (
                vec![p("a"), s("b", "c"), s("c", "b"), s("d", "b")],
                vec![(
                    "b",
                    ReplicatesFrom,
                    NoPathToPrimary {
                        cycle: known(&["b", "c", "b"]),
                    },
                )],
            ),
            // A chain ending in an unknown region is reported there only.
            (
                vec![p("a"), s("b", "c"), s("c", "x")],
                vec![(
                    "c",
                    ReplicatesFrom,
                    ReplicatesFromUnknown {
                        from: "x".into(),
                        known: known(&["a", "b", "c"]),
                    },
                )],
            ),
            (vec![], vec![]),
        ];
        for (regions, want) in cases {
            let got = problems(&regions, None);
            let got: Vec<(&str, Subject, ProblemKind)> = got
                .iter()
                .map(|p| (p.region.as_str(), p.subject, p.kind.clone()))
                .collect();
            let names: Vec<&str> = regions.iter().map(|r| r.name.as_str()).collect();
            assert_eq!(got, want, "{names:?}");
        }
    }

    #[test]
    fn health_checks_follow_route53() {
        use CheckKind::*;
        use ProblemKind::*;
        type Edit = fn(&mut CheckSpec);
        // (kind, edit, provider, expected (field, problem))
        let cases: Vec<(
            CheckKind,
            Edit,
            Option<Provider>,
            Vec<(CheckField, ProblemKind)>,
        )> = vec![
            (Https, |_| {}, Some(Provider::Route53), vec![]),
            (
                Http,
                |c| c.interval = Duration::from_secs(10),
                Some(Provider::Route53),
                vec![],
            ),
            (
                Https,
                |c| c.interval = Duration::from_secs(15),
                Some(Provider::Route53),
                vec![(CheckField::Interval, IntervalNotRoute53 { seconds: 15 })],
            ),
            (
                Https,
                |c| c.interval = Duration::from_millis(10_500),
                Some(Provider::Route53),
                vec![(CheckField::Interval, IntervalNotRoute53 { seconds: 10 })],
            ),
            // Any interval of a second or more without Route 53.
            (
                Https,
                |c| c.interval = Duration::from_secs(15),
                Some(Provider::Rfc2136),
                vec![],
            ),
            (Https, |c| c.interval = Duration::from_secs(1), None, vec![]),
            (
                Https,
                |c| c.interval = Duration::from_millis(500),
                None,
                vec![(CheckField::Interval, IntervalTooShort)],
            ),
            (Https, |c| c.threshold = 1, None, vec![]),
            (Https, |c| c.threshold = 10, None, vec![]),
            (
                Https,
                |c| c.threshold = 0,
                None,
                vec![(CheckField::Threshold, ThresholdOutOfRange { threshold: 0 })],
            ),
            (
                Https,
                |c| c.threshold = 11,
                None,
                vec![(CheckField::Threshold, ThresholdOutOfRange { threshold: 11 })],
            ),
            (Tcp, |c| c.port = 5432, None, vec![]),
            (
                Tcp,
                |_| {},
                None,
                vec![(CheckField::Kind, NoPort { kind: Tcp })],
            ),
            (
                Http,
                |c| c.port = 0,
                None,
                vec![(CheckField::Port, NoPort { kind: Http })],
            ),
            (
                Tcp,
                |c| {
                    c.port = 5432;
                    c.search = Some("ok".into());
                    c.path = Some("/".into());
                },
                None,
                vec![
                    (CheckField::Search, SearchOnTcp),
                    (CheckField::Path, PathOnTcp),
                ],
            ),
            (Https, |c| c.search = Some("é".repeat(255)), None, vec![]),
            (
                Https,
                |c| c.search = Some("x".repeat(256)),
                None,
                vec![(CheckField::Search, SearchTooLong { chars: 256 })],
            ),
            (
                Http,
                |c| c.path = Some("healthz".into()),
                None,
                vec![(CheckField::Path, PathNotAbsolute)],
            ),
            (
                Http,
                |c| c.path = Some(format!("/{}", "x".repeat(255))),
                None,
                vec![(CheckField::Path, PathTooLong { chars: 256 })],
            ),
        ];
        for (i, (kind, edit, provider, want)) in cases.into_iter().enumerate() {
            let mut c = check("gateway", kind);
            edit(&mut c);
            let mut r = p("us-east");
            r.checks = vec![c];
            // An answer every provider takes.
            r.answer = Some(DnsAnswer::Address("192.0.2.1".parse().unwrap()));
            let got: Vec<(CheckField, ProblemKind)> = problems(&[r], provider)
                .into_iter()
                .map(|p| match p.subject {
                    Subject::Check { index: 0, field } => (field, p.kind),
                    other => panic!("case {i}: {other:?}"),
                })
                .collect();
            assert_eq!(got, want, "case {i}");
        }
    }

    #[test]
    fn duplicate_check_names_are_refused_per_region() {
        let mut a = p("us-east");
        a.checks = vec![
            check("gateway", CheckKind::Https),
            check("gateway", CheckKind::Http),
        ];
        // The same name in another region is fine.
        let b = s("eu-west", "us-east");
        let got = problems(&[a, b], None);
        assert_eq!(
            got,
            [Problem {
                region: "us-east".into(),
                subject: Subject::Check {
                    index: 1,
                    field: CheckField::Name
                },
                kind: ProblemKind::DuplicateCheckName {
                    name: "gateway".into()
                },
            }]
        );
    }

    #[test]
    fn answers_fit_the_provider() {
        use ProblemKind::*;
        let addr = |s: &str| Some(DnsAnswer::Address(s.parse().unwrap()));
        let target = |s: &str| Some(DnsAnswer::Target(s.into()));
        // (answers of us-east and eu-west, provider, expected (region, problem))
        let cases: Vec<(
            [Option<DnsAnswer>; 2],
            Option<Provider>,
            Vec<(&str, ProblemKind)>,
        )> = vec![
            (
                [target("a.example"), target("b.example")],
                Some(Provider::Route53),
                vec![],
            ),
            (
                [addr("192.0.2.1"), addr("2001:db8::1")],
                Some(Provider::Route53),
                vec![],
            ),
            (
                [addr("192.0.2.1"), addr("192.0.2.2")],
                Some(Provider::Rfc2136),
                vec![],
            ),
            // A region without an answer is not steered to.
            ([addr("192.0.2.1"), None], Some(Provider::Rfc2136), vec![]),
            // Without steering, answers are not looked at.
            ([target("a.example"), None], None, vec![]),
            ([None, None], None, vec![]),
            (
                [None, None],
                Some(Provider::Route53),
                vec![("us-east", NothingToSteer)],
            ),
            (
                [addr("192.0.2.1"), target("b.example")],
                Some(Provider::Route53),
                vec![(
                    "eu-west",
                    MixedAnswers {
                        first: "us-east".into(),
                        target: true,
                    },
                )],
            ),
            (
                [target("a.example"), addr("192.0.2.2")],
                Some(Provider::Rfc2136),
                vec![("us-east", TargetWithRfc2136)],
            ),
        ];
        for (i, ([a, b], provider, want)) in cases.into_iter().enumerate() {
            let mut ra = p("us-east");
            ra.answer = a;
            let mut rb = s("eu-west", "us-east");
            rb.answer = b;
            let got: Vec<(String, ProblemKind)> = problems(&[ra, rb], provider)
                .into_iter()
                .map(|p| {
                    assert_eq!(p.subject, Subject::Dns, "case {i}");
                    (p.region, p.kind)
                })
                .collect();
            let want: Vec<(String, ProblemKind)> =
                want.into_iter().map(|(r, k)| (r.to_string(), k)).collect();
            assert_eq!(got, want, "case {i}");
        }
    }

    #[test]
    fn messages_say_what_to_do() {
        let got = problems(&[p("us-east"), p("eu-west")], None);
        assert_eq!(
            got[0].to_string(),
            "eu-west is declared primary, and so is us-east: only one region is primary; make the other a standby (role: standby, replicates_from: …)"
        );
        let mut r = p("us-east");
        r.checks[0].interval = Duration::from_secs(60);
        let got = problems(&[r], Some(Provider::Route53));
        assert_eq!(
            got[0].to_string(),
            "60s is not an interval Route 53 allows (traffic.provider is route53): use 10s or 30s"
        );
    }
}
