//! The regions as `status`, the status page and `/api/v1/assessment` show
//! them (issue 20, "Visible"): every region's role as its server says and as
//! the authority in etcd says, its lag, the authority (primary, epoch, lease
//! holders), a change of primary under way, and the last change measured
//! against the region-failure objective. Plain data gathered by
//! `lifeboat-ops::assess`; [`warnings`] is the pure judgement of what an
//! operator must look at.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Everything shown about the regions (`None` in the status without
/// `regions:`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionsOverview {
    /// In the configuration's order.
    pub regions: Vec<RegionRow>,
    /// `None` without `failover:` (no authority is kept).
    pub authority: Option<AuthorityOverview>,
    /// What an operator must look at ([`warnings`]), worst first.
    pub warnings: Vec<String>,
}

/// One region, observed now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionRow {
    pub name: String,
    /// `primary` or `standby`, as the configuration declares it (what it
    /// was set up as; the authority says what it is now).
    pub declared_role: String,
    /// `primary`, `standby` or `unreachable`, as its server answers.
    pub observed_role: String,
    /// Its primary lists it `streaming` (standbys only).
    pub streaming: bool,
    pub lag_seconds: Option<f64>,
    pub lag_bytes: Option<u64>,
    /// Age of the newest heartbeat it replayed: what a failover to it would
    /// lose now (standbys only).
    pub heartbeat_age_seconds: Option<f64>,
    /// Why it was not reached.
    pub reason: Option<String>,
}

/// The authority in etcd.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuthorityOverview {
    /// etcd could not be read: why (nothing below is known then).
    pub error: Option<String>,
    pub primary: Option<String>,
    pub epoch: Option<u64>,
    pub changed_at: Option<DateTime<Utc>>,
    pub changed_by: Option<String>,
    /// The live region leases (a region's daemon holds one).
    pub leases: Vec<LeaseRow>,
    /// A change of primary that has not ended.
    pub under_way: Option<ChangeUnderWay>,
    /// The newest change of primary that ended (failover, switchover or
    /// rehearsal), measured.
    pub last_change: Option<LastChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaseRow {
    pub region: String,
    /// `host pid N`, when the holder wrote it.
    pub holder: Option<String>,
    pub ttl_remaining_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeUnderWay {
    /// `automatic`, `manual` or `switchover`.
    pub kind: String,
    pub from: String,
    pub to: String,
    pub phase: String,
    pub started_at: DateTime<Utc>,
    /// Set when a step failed for good after the epoch changed: someone
    /// must resume it (the command again, or the next election holder).
    pub blocked: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastChange {
    pub kind: String,
    pub from: String,
    pub to: String,
    pub epoch: u64,
    /// `done`, `aborted` or `rolled-back`.
    pub outcome: String,
    pub started_at: DateTime<Utc>,
    /// To DNS answering the new primary (to writes accepted when DNS was
    /// not switched).
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<f64>,
    /// The RPO rests on the old primary's own last heartbeat (else it is an
    /// upper bound from the failure time).
    pub rpo_exact: bool,
    pub rto_objective_seconds: Option<f64>,
    pub rpo_objective_seconds: Option<f64>,
    /// Both within the objectives (`None`: unknown or no objective).
    pub met: Option<bool>,
}

/// What an operator must look at, decided from what the servers and etcd
/// say: more than one server answering as a primary, the authority's
/// primary not answering as one, the authority unreadable, a change under
/// way or blocked, the last change missing its objective.
pub fn warnings(regions: &[RegionRow], authority: Option<&AuthorityOverview>) -> Vec<String> {
    let mut out = Vec::new();
    let primaries: Vec<&str> = regions
        .iter()
        .filter(|r| r.observed_role == "primary")
        .map(|r| r.name.as_str())
        .collect();
    if primaries.len() > 1 {
        out.push(format!(
            "{} servers answer as a writable primary ({}): only the authority's may take writes; \
             see docs/failover.md, runbook",
            primaries.len(),
            primaries.join(", ")
        ));
    }
    let Some(a) = authority else {
        return out;
    };
    if let Some(e) = &a.error {
        out.push(format!(
            "the authority in etcd cannot be read ({e}): nothing can be promoted until it can"
        ));
        return out;
    }
    if let Some(c) = &a.under_way {
        out.push(match &c.blocked {
            Some(why) => format!(
                "the {} from {} to {} is blocked in phase {}: {why}; fix the cause and run \
                 `lifeboat region {} --to {}` again",
                c.kind,
                c.from,
                c.to,
                c.phase,
                if c.kind == "switchover" {
                    "switchover"
                } else {
                    "failover"
                },
                c.to
            ),
            None => format!(
                "a {} from {} to {} is under way (phase {}, started {})",
                c.kind,
                c.from,
                c.to,
                c.phase,
                c.started_at.format("%Y-%m-%d %H:%M:%S UTC")
            ),
        });
    }
    if let Some(p) = &a.primary {
        match regions.iter().find(|r| &r.name == p) {
            Some(r) if r.observed_role == "primary" => {}
            Some(r) => out.push(format!(
                "the authority names {p} primary (epoch {}), but its server answers as {}{}",
                a.epoch.unwrap_or_default(),
                r.observed_role,
                r.reason
                    .as_ref()
                    .map(|why| format!(" ({why})"))
                    .unwrap_or_default()
            )),
            None => out.push(format!(
                "the authority names {p} primary, but no such region is configured"
            )),
        }
        for r in regions {
            if &r.name != p && r.observed_role == "primary" {
                out.push(format!(
                    "{} answers as a writable primary at an older epoch: it must stay fenced until \
                     `lifeboat region rejoin {}`",
                    r.name, r.name
                ));
            }
        }
    }
    if let Some(l) = &a.last_change
        && l.met == Some(false)
    {
        out.push(format!(
            "the last {} ({} → {}, epoch {}) missed the region-failure objective: RTO {}, RPO {}",
            l.kind,
            l.from,
            l.to,
            l.epoch,
            l.rto_seconds
                .map(|s| format!("{s:.1}s"))
                .unwrap_or("unknown".into()),
            l.rpo_seconds
                .map(|s| format!("{s:.1}s"))
                .unwrap_or("unknown".into()),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, role: &str) -> RegionRow {
        RegionRow {
            name: name.into(),
            declared_role: "standby".into(),
            observed_role: role.into(),
            streaming: role == "standby",
            lag_seconds: None,
            lag_bytes: None,
            heartbeat_age_seconds: None,
            reason: (role == "unreachable").then(|| "connection refused".to_string()),
        }
    }

    fn authority(primary: &str) -> AuthorityOverview {
        AuthorityOverview {
            error: None,
            primary: Some(primary.into()),
            epoch: Some(2),
            changed_at: None,
            changed_by: None,
            leases: Vec::new(),
            under_way: None,
            last_change: None,
        }
    }

    #[test]
    fn what_warns_and_what_does_not() {
        let t0 = DateTime::parse_from_rfc3339("2026-12-06T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let under_way = |blocked: Option<&str>| {
            let mut a = authority("eu-west");
            a.under_way = Some(ChangeUnderWay {
                kind: "automatic".into(),
                from: "us-east".into(),
                to: "eu-west".into(),
                phase: "switch-dns".into(),
                started_at: t0,
                blocked: blocked.map(String::from),
            });
            a
        };
        let missed = {
            let mut a = authority("eu-west");
            a.last_change = Some(LastChange {
                kind: "automatic".into(),
                from: "us-east".into(),
                to: "eu-west".into(),
                epoch: 2,
                outcome: "done".into(),
                started_at: t0,
                rto_seconds: Some(1200.0),
                rpo_seconds: Some(3.0),
                rpo_exact: false,
                rto_objective_seconds: Some(900.0),
                rpo_objective_seconds: Some(300.0),
                met: Some(false),
            });
            a
        };
        let unreadable = AuthorityOverview {
            error: Some("etcd unavailable".into()),
            ..authority("x")
        };
        let healthy = [row("us-east", "primary"), row("eu-west", "standby")];
        let after = [row("us-east", "unreachable"), row("eu-west", "primary")];
        let split = [row("us-east", "primary"), row("eu-west", "primary")];
        // (regions, authority, expected substrings; empty: no warning)
        let cases: Vec<(&[RegionRow], Option<AuthorityOverview>, Vec<&str>)> = vec![
            (&healthy, None, vec![]),
            (&healthy, Some(authority("us-east")), vec![]),
            (&after, Some(authority("eu-west")), vec![]),
            (&split, None, vec!["2 servers answer as a writable primary"]),
            (
                &split,
                Some(authority("eu-west")),
                vec![
                    "2 servers answer as a writable primary",
                    "us-east answers as a writable primary at an older epoch",
                ],
            ),
            (
                &after,
                Some(authority("us-east")),
                vec![
                    "names us-east primary (epoch 2), but its server answers as unreachable (connection refused)",
                ],
            ),
            (&healthy, Some(unreadable), vec!["cannot be read"]),
            (
                &after,
                Some(under_way(None)),
                vec!["is under way (phase switch-dns"],
            ),
            (
                &after,
                Some(under_way(Some("BIND refused the update"))),
                vec![
                    "is blocked in phase switch-dns: BIND refused the update",
                    "`lifeboat region failover --to eu-west` again",
                ],
            ),
            (
                &after,
                Some(missed),
                vec!["missed the region-failure objective: RTO 1200.0s"],
            ),
        ];
        for (i, (regions, a, want)) in cases.into_iter().enumerate() {
            let got = warnings(regions, a.as_ref());
            if want.is_empty() {
                assert!(got.is_empty(), "case {i}: {got:?}");
            }
            for w in want {
                assert!(
                    got.iter().any(|g| g.contains(w)),
                    "case {i}: {w:?} not in {got:?}"
                );
            }
        }
    }
}
