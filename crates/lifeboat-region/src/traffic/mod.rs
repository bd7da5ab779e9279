//! DNS traffic steering: which answers the steered name should give for a set
//! of health verdicts (pure, tested with tables), and the providers that make
//! DNS give them ([`rfc2136`]: dynamic UPDATE with TSIG to an authoritative
//! server; [`route53`]: weighted records with health checks).
//!
//! The rule ([`desired_answer_set`]): the name answers with the healthy
//! regions' answers; when no region is healthy it answers with all of them.
//! That is Route 53's own rule for a group of records with health checks,
//! "If no record is healthy, all records are healthy" in *How Amazon Route 53
//! chooses records when health checking is configured*
//! (<https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/health-checks-how-route-53-chooses-records.html>):
//! with nothing healthy there is no criterion left to choose by, and an empty
//! answer would turn a health-check outage into a total outage. A region with
//! no verdict yet counts as healthy, as Route 53 treats a new health check
//! until it has enough data (*How Route 53 determines whether a health check
//! is healthy*); the health module decides when a verdict exists.
//!
//! `rfc2136` implements [`TrafficProvider`]: "the records the config
//! describes" are the provider's own (it is built from the regions and their
//! answers) and [`TrafficProvider::apply`] makes them so for a set of
//! verdicts; [`TrafficProvider::current`] says what the steered name answers
//! now. `rfc2136` keeps the answer set itself equal to the healthy regions'.
//! `route53` takes no verdicts and is not a [`TrafficProvider`]: it writes
//! every region's weighted record with its health check and lets Route 53
//! drop the unhealthy ones at query time (its own `apply` and `status`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub mod rfc2136;
pub mod route53;

/// One region's DNS answer, as the config gives it (`regions.<r>.dns.answer`):
/// an address (an `A` or `AAAA` record) or a target name (a `CNAME`).
///
/// A `CNAME` cannot be multi-valued (RFC 1034 §3.6.2: no other data at a
/// name that has a CNAME, and one CNAME per name), so a set of several
/// answers can only hold addresses; [`check_single_valued`] says so for a
/// provider that puts the whole set at one name (`rfc2136`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// An `A` record.
    Ipv4(Ipv4Addr),
    /// An `AAAA` record.
    Ipv6(Ipv6Addr),
    /// A `CNAME` record: a DNS name, lower case, without the trailing dot.
    Target(String),
}

impl Answer {
    /// Reads the config's spelling: an IPv4 or IPv6 address, else a DNS name
    /// (letters, digits, `-`, `_`, dots, not ending in an all-numeric label;
    /// a trailing dot is dropped and the name lower-cased, since DNS compares
    /// names without case).
    pub fn parse(text: &str) -> Result<Answer, TrafficError> {
        let text = text.trim();
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Answer::from(ip));
        }
        let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
        let valid_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        // An all-numeric last label is no top-level domain (RFC 3696 §2)
        // but a mistyped address, e.g. `10.0.0.256`.
        let numeric_tld = name
            .rsplit('.')
            .next()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
        if name.is_empty() || name.len() > 253 || !name.split('.').all(valid_label) || numeric_tld {
            return Err(TrafficError::Config(format!(
                "`{text}` is neither an IP address nor a DNS name; a region's DNS answer is \
                 an IPv4 address (A record), an IPv6 address (AAAA) or a target name (CNAME)"
            )));
        }
        Ok(Answer::Target(name))
    }

    /// The DNS record type this answer is published as.
    pub fn record_type(&self) -> &'static str {
        match self {
            Answer::Ipv4(_) => "A",
            Answer::Ipv6(_) => "AAAA",
            Answer::Target(_) => "CNAME",
        }
    }
}

impl From<IpAddr> for Answer {
    fn from(ip: IpAddr) -> Answer {
        match ip {
            IpAddr::V4(v4) => Answer::Ipv4(v4),
            IpAddr::V6(v6) => Answer::Ipv6(v6),
        }
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Ipv4(ip) => write!(f, "{ip}"),
            Answer::Ipv6(ip) => write!(f, "{ip}"),
            Answer::Target(name) => write!(f, "{name}."),
        }
    }
}

/// The answers a name gives, as a set: DNS has no order within an RRset.
pub type AnswerSet = BTreeSet<Answer>;

/// A region and its DNS answer (from the config).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionAnswer {
    /// The region's name in the config (`us-east`).
    pub region: String,
    /// What the steered name answers when this region serves.
    pub answer: Answer,
}

/// Health verdicts by region name: `true` healthy, `false` unhealthy. A
/// region absent from the map has no verdict yet and counts as healthy (see
/// the module documentation).
pub type Verdicts = BTreeMap<String, bool>;

/// What the steered name should answer for a set of verdicts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredAnswers {
    /// The answers.
    pub answers: AnswerSet,
    /// The regions whose answers these are, in config order.
    pub regions: Vec<String>,
    /// True when no region is healthy and the set is therefore every
    /// region's answer (Route 53's "if no record is healthy, all records are
    /// healthy").
    pub all_unhealthy: bool,
}

/// The healthy regions' answers; every region's when none is healthy.
/// Two regions with the same answer give it once.
pub fn desired_answer_set(regions: &[RegionAnswer], verdicts: &Verdicts) -> DesiredAnswers {
    let healthy: Vec<&RegionAnswer> = regions
        .iter()
        .filter(|r| verdicts.get(&r.region).copied().unwrap_or(true))
        .collect();
    let all_unhealthy = healthy.is_empty() && !regions.is_empty();
    let serving: Vec<&RegionAnswer> = if all_unhealthy {
        regions.iter().collect()
    } else {
        healthy
    };
    DesiredAnswers {
        answers: serving.iter().map(|r| r.answer.clone()).collect(),
        regions: serving.iter().map(|r| r.region.clone()).collect(),
        all_unhealthy,
    }
}

/// One step from the current answer set to the desired one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op", content = "answer")]
pub enum Change {
    /// Stop answering with this.
    Remove(Answer),
    /// Start answering with this.
    Add(Answer),
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Remove(a) => write!(f, "remove {} {a}", a.record_type()),
            Change::Add(a) => write!(f, "add {} {a}", a.record_type()),
        }
    }
}

/// The plan from `current` to `desired`: removals first (so a name that
/// moves from addresses to a CNAME, or back, never holds both at once within
/// the one UPDATE), then additions, each in the set's order. Empty when the
/// two are equal: nothing to write.
pub fn changes(current: &AnswerSet, desired: &AnswerSet) -> Vec<Change> {
    let removals = current.difference(desired).cloned().map(Change::Remove);
    let additions = desired.difference(current).cloned().map(Change::Add);
    removals.chain(additions).collect()
}

/// For a provider that publishes the whole answer set at one name: refuses a
/// set of answers that would put a CNAME next to anything else. Checked
/// against every region's answer (the set when none is healthy), so a
/// config that could ever need it fails when the provider is built, not in
/// the middle of an outage.
pub fn check_single_valued(regions: &[RegionAnswer]) -> Result<(), TrafficError> {
    let distinct: AnswerSet = regions.iter().map(|r| r.answer.clone()).collect();
    if distinct.len() > 1
        && let Some(r) = regions
            .iter()
            .find(|r| matches!(r.answer, Answer::Target(_)))
    {
        return Err(TrafficError::Config(format!(
            "region `{}` answers with the target name {} (a CNAME), but {} regions share the \
             steered name and a CNAME cannot be multi-valued nor sit next to other records; \
             give each region an IPv4/IPv6 address, or steer with `route53` (one weighted \
             record per region)",
            r.region,
            r.answer,
            regions.len()
        )));
    }
    Ok(())
}

/// What [`TrafficProvider::apply`] did (or, with `dry_run`, would do).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// `rfc2136` or `route53`.
    pub provider: String,
    /// What the provider answered before.
    pub before: AnswerSet,
    /// What it is to answer.
    pub desired: DesiredAnswers,
    /// The changes made (or that would be made with `dry_run`); empty when
    /// the provider already matched.
    pub changes: Vec<Change>,
    /// Whether anything was written: false for a dry run and when nothing
    /// needed changing.
    pub written: bool,
    /// Plans made: 1, plus one per time another writer changed the records
    /// between this provider's read and its write (and it re-read).
    pub attempts: u32,
}

/// A DNS provider that steers the name the config describes.
///
/// Implementations are built from the config (the steered name, the regions
/// and their answers, the provider's credentials) and own those records:
/// `apply` creates or updates them, idempotently; `current` reads what the
/// name answers now, from the provider itself (an authoritative query, the
/// provider's API), never from what was last written.
#[async_trait]
pub trait TrafficProvider: Send + Sync {
    /// `rfc2136` or `route53`: for messages and `region traffic status`.
    fn provider(&self) -> &'static str;

    /// The steered name (fully qualified, without the trailing dot).
    fn record_name(&self) -> &str;

    /// What the steered name answers now.
    async fn current(&self) -> Result<AnswerSet, TrafficError>;

    /// Makes the records the config describes steer by `verdicts`; with
    /// `dry_run`, reads and plans but writes nothing.
    async fn apply(&self, verdicts: &Verdicts, dry_run: bool) -> Result<Applied, TrafficError>;
}

/// Why steering failed. Each message says what to do next; none carries a
/// secret.
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    /// The configuration cannot be steered as written.
    #[error("traffic steering configuration: {0}")]
    Config(String),
    /// The server rejected the credentials (TSIG key, API keys). Not retried.
    #[error(
        "{provider}: the server at {server} rejected Lifeboat's credentials: {detail}. Check the \
         key name, secret and algorithm in the server's configuration and in Lifeboat's"
    )]
    Credentials {
        /// `rfc2136` / `route53`.
        provider: &'static str,
        /// Where the request went.
        server: String,
        /// What the server said (e.g. `NOTAUTH, TSIG error BADSIG`).
        detail: String,
    },
    /// The server understood the request and refused it (e.g. REFUSED: no
    /// `allow-update` / `update-policy` grants the key this name). Not
    /// retried.
    #[error("{provider}: the server at {server} refused the change: {detail}")]
    Refused {
        /// `rfc2136` / `route53`.
        provider: &'static str,
        /// Where the request went.
        server: String,
        /// What the server said and what to check.
        detail: String,
    },
    /// The server could not be reached or did not answer, after retries.
    #[error(
        "{provider}: no answer from {server} after {attempts} attempts: {detail}. Check that the \
         server runs and is reachable from this host"
    )]
    Unreachable {
        /// `rfc2136` / `route53`.
        provider: &'static str,
        /// Where the request went.
        server: String,
        /// Attempts made.
        attempts: u32,
        /// The last transport error.
        detail: String,
    },
    /// Another writer kept changing the records between this provider's read
    /// and its write (every write's prerequisite failed).
    #[error(
        "{provider}: the records of {name} changed under every one of {attempts} attempts (another \
         writer: a second daemon or a person); nothing was overwritten. Find the other writer; \
         the next apply re-reads and re-plans"
    )]
    Contended {
        /// `rfc2136` / `route53`.
        provider: &'static str,
        /// The steered name.
        name: String,
        /// Plans made.
        attempts: u32,
    },
    /// Anything else the provider's server answered.
    #[error("{provider}: {detail}")]
    Provider {
        /// `rfc2136` / `route53`.
        provider: &'static str,
        /// What happened and what to do next.
        detail: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> Answer {
        Answer::Ipv4(s.parse().unwrap())
    }

    fn regions(list: &[(&str, &str)]) -> Vec<RegionAnswer> {
        list.iter()
            .map(|(r, a)| RegionAnswer {
                region: r.to_string(),
                answer: Answer::parse(a).unwrap(),
            })
            .collect()
    }

    fn set(list: &[&str]) -> AnswerSet {
        list.iter().map(|a| Answer::parse(a).unwrap()).collect()
    }

    #[test]
    fn answer_parse_table() {
        let table: &[(&str, Option<Answer>)] = &[
            ("192.0.2.1", Some(v4("192.0.2.1"))),
            (" 192.0.2.1 ", Some(v4("192.0.2.1"))),
            (
                "2001:db8::1",
                Some(Answer::Ipv6("2001:db8::1".parse().unwrap())),
            ),
            (
                "LB.eu-west.Example.com.",
                Some(Answer::Target("lb.eu-west.example.com".into())),
            ),
            (
                "lb.example.com",
                Some(Answer::Target("lb.example.com".into())),
            ),
            ("", None),
            (".", None),
            ("a..b", None),
            ("has space.example", None),
            ("http://x.example", None),
            ("10.0.0.256", None),
            ("999.1.1.1", None),
            ("lb.1x", Some(Answer::Target("lb.1x".into()))),
        ];
        for (text, want) in table {
            assert_eq!(Answer::parse(text).ok(), *want, "{text:?}");
        }
        assert_eq!(v4("192.0.2.1").record_type(), "A");
        assert_eq!(Answer::parse("::1").unwrap().record_type(), "AAAA");
        assert_eq!(Answer::parse("a.example").unwrap().record_type(), "CNAME");
        assert_eq!(
            Answer::parse("a.example").unwrap().to_string(),
            "a.example."
        );
    }

    #[test]
    fn desired_answer_set_table() {
        let two = regions(&[("us-east", "192.0.2.1"), ("eu-west", "198.51.100.1")]);
        // (verdicts, answers, regions, all_unhealthy)
        type Row<'a> = (&'a [(&'a str, bool)], &'a [&'a str], &'a [&'a str], bool);
        let table: &[Row] = &[
            (
                &[("us-east", true), ("eu-west", true)],
                &["192.0.2.1", "198.51.100.1"],
                &["us-east", "eu-west"],
                false,
            ),
            (
                &[("us-east", false), ("eu-west", true)],
                &["198.51.100.1"],
                &["eu-west"],
                false,
            ),
            (
                &[("us-east", true), ("eu-west", false)],
                &["192.0.2.1"],
                &["us-east"],
                false,
            ),
            // None healthy: all of them (Route 53's rule).
            (
                &[("us-east", false), ("eu-west", false)],
                &["192.0.2.1", "198.51.100.1"],
                &["us-east", "eu-west"],
                true,
            ),
            // No verdict yet counts as healthy.
            (
                &[],
                &["192.0.2.1", "198.51.100.1"],
                &["us-east", "eu-west"],
                false,
            ),
            (
                &[("us-east", false)],
                &["198.51.100.1"],
                &["eu-west"],
                false,
            ),
            // A verdict for a region the config does not have changes nothing.
            (
                &[("us-east", false), ("eu-west", false), ("ap-south", true)],
                &["192.0.2.1", "198.51.100.1"],
                &["us-east", "eu-west"],
                true,
            ),
        ];
        for (verdicts, answers, names, all_unhealthy) in table {
            let verdicts: Verdicts = verdicts.iter().map(|(r, h)| (r.to_string(), *h)).collect();
            let got = desired_answer_set(&two, &verdicts);
            assert_eq!(got.answers, set(answers), "{verdicts:?}");
            assert_eq!(got.regions, *names, "{verdicts:?}");
            assert_eq!(got.all_unhealthy, *all_unhealthy, "{verdicts:?}");
        }

        // Shared answers collapse; no regions at all answer nothing.
        let shared = regions(&[("a", "192.0.2.1"), ("b", "192.0.2.1")]);
        assert_eq!(
            desired_answer_set(&shared, &Verdicts::new()).answers,
            set(&["192.0.2.1"])
        );
        let none = desired_answer_set(&[], &Verdicts::new());
        assert!(none.answers.is_empty() && !none.all_unhealthy);
    }

    #[test]
    fn changes_table() {
        let a = "192.0.2.1";
        let b = "198.51.100.1";
        let c = "2001:db8::1";
        let t = "lb.example.com";
        // (current, desired, plan)
        type Row<'a> = (&'a [&'a str], &'a [&'a str], &'a [(&'a str, &'a str)]);
        let table: &[Row] = &[
            (&[], &[], &[]),
            (&[a, b], &[a, b], &[]),
            (&[], &[a, b], &[("add", a), ("add", b)]),
            (&[a, b], &[a], &[("remove", b)]),
            (&[a], &[a, b], &[("add", b)]),
            (&[a, c], &[b], &[("remove", a), ("remove", c), ("add", b)]),
            (&[a, b], &[], &[("remove", a), ("remove", b)]),
            // Addresses to a CNAME: removals come first.
            (&[a], &[t], &[("remove", a), ("add", t)]),
            (&[t], &[a], &[("remove", t), ("add", a)]),
        ];
        for (current, desired, plan) in table {
            let want: Vec<Change> = plan
                .iter()
                .map(|(op, x)| {
                    let x = Answer::parse(x).unwrap();
                    if *op == "add" {
                        Change::Add(x)
                    } else {
                        Change::Remove(x)
                    }
                })
                .collect();
            assert_eq!(
                changes(&set(current), &set(desired)),
                want,
                "{current:?} -> {desired:?}"
            );
        }
    }

    #[test]
    fn single_valued_table() {
        let table: &[(&[(&str, &str)], bool)] = &[
            (&[("a", "192.0.2.1"), ("b", "198.51.100.1")], true),
            (&[("a", "192.0.2.1"), ("b", "2001:db8::1")], true),
            (&[("a", "lb.example.com")], true),
            (&[("a", "lb.example.com"), ("b", "lb.example.com")], true),
            (
                &[("a", "lb-a.example.com"), ("b", "lb-b.example.com")],
                false,
            ),
            (&[("a", "192.0.2.1"), ("b", "lb-b.example.com")], false),
            (&[], true),
        ];
        for (list, ok) in table {
            let got = check_single_valued(&regions(list));
            assert_eq!(got.is_ok(), *ok, "{list:?}: {got:?}");
            if let Err(e) = got {
                let msg = e.to_string();
                assert!(msg.contains("CNAME") && msg.contains("route53"), "{msg}");
            }
        }
    }
}
