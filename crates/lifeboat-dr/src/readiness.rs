//! `lifeboat readiness`: the seed's §4 production checklist, each item
//! evaluated where a machine can judge it, from the same evidence as
//! [`crate::status`]. Items only a person can attest are listed as manual
//! with the attestation recorded in the configuration; items of the
//! multi-region work report "not configured" until it exists.

use chrono::{DateTime, NaiveDate, Utc};
use lifeboat_repo::retention::{self, Group, SnapshotSummary};
use serde::Serialize;

use crate::record::{CheckRecord, Stored};
use crate::status::{Policy, SourceInput, Status, human, secs};

/// How an item is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Automated,
    Manual,
    NotConfigured,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pass,
    Fail,
    /// A manual item with an attestation on record.
    Attested,
    /// A manual item nobody has attested.
    Unattested,
    NotConfigured,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pass => "pass",
            State::Fail => "FAIL",
            State::Attested => "attested",
            State::Unattested => "manual",
            State::NotConfigured => "not configured",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    /// Stable id, used by attestations in the configuration.
    pub id: &'static str,
    pub title: &'static str,
    /// The checklist line(s) of the seed this item answers.
    pub seed: &'static str,
    pub kind: Kind,
    pub state: State,
    pub detail: String,
}

/// A person's statement that a manual item holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attestation {
    pub by: String,
    pub date: NaiveDate,
    pub note: Option<String>,
}

/// What the daemon's lease says about metrics being served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Daemon {
    /// A daemon renewed the lease `age_seconds` ago, within its duration.
    Active {
        holder: String,
        age_seconds: i64,
    },
    /// The lease exists but has not been renewed within its duration.
    Stale {
        holder: String,
        age_seconds: i64,
    },
    Absent,
}

pub struct Inputs<'a> {
    pub sources: &'a [SourceInput],
    pub status: &'a Status,
    pub checks: &'a [Stored<CheckRecord>],
    pub daemon: Daemon,
    /// e.g. "AES-256-GCM, 2 key slots".
    pub encryption: String,
    pub attestation: &'a dyn Fn(&str) -> Option<Attestation>,
    pub policy: Policy,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Readiness {
    pub now: DateTime<Utc>,
    /// False when any automated item fails.
    pub ready: bool,
    pub items: Vec<Item>,
}

/// Manual items: (id, title, seed line).
pub const MANUAL: &[(&str, &str, &str)] = &[
    (
        "services-healthy",
        "All services deployed and healthy",
        "All services deployed and healthy",
    ),
    (
        "dr-plan",
        "Disaster recovery plan documented and tested",
        "Disaster recovery plan documented and tested",
    ),
    (
        "on-call",
        "On-call rotation and escalation procedures defined",
        "On-call rotation and escalation procedures defined",
    ),
    (
        "runbooks",
        "Runbooks created for common incidents",
        "Runbooks created for common incidents",
    ),
    (
        "security-audit",
        "Security audit completed (RBAC, secrets, network policies)",
        "Security audit completed (RBAC, secrets, network policies)",
    ),
    (
        "dr-exercises",
        "Quarterly disaster recovery exercises",
        "Quarterly disaster recovery exercises",
    ),
    (
        "objectives-review",
        "Regular review of RTO/RPO targets",
        "Regular review of RTO/RPO targets",
    ),
    (
        "capacity-review",
        "Capacity planning and scaling reviews",
        "Capacity planning and scaling reviews",
    ),
];

/// Items that belong to the multi-region work.
const MULTI_REGION: &[(&str, &str, &str)] = &[
    (
        "multi-region-replication",
        "PostgreSQL replicated to a second region",
        "Multi-region replication configured (if applicable)",
    ),
    (
        "global-load-balancer",
        "Global load balancer with health checks",
        "Global load balancer configured with health checks",
    ),
    (
        "failover-tests",
        "Annual multi-region failover tests",
        "Annual multi-region failover tests",
    ),
];

fn auto(
    id: &'static str,
    title: &'static str,
    seed: &'static str,
    fails: Vec<String>,
    ok: String,
) -> Item {
    Item {
        id,
        title,
        seed,
        kind: Kind::Automated,
        state: if fails.is_empty() {
            State::Pass
        } else {
            State::Fail
        },
        detail: if fails.is_empty() {
            ok
        } else {
            fails.join("; ")
        },
    }
}

/// Evaluates the checklist.
pub fn evaluate(i: &Inputs<'_>) -> Readiness {
    let mut items = vec![
        backups_scheduled(i),
        backups_recent(i),
        drills(i),
        objectives(i),
        retention_item(i),
        encrypted(i),
        checked(i),
        monitoring(i),
    ];
    for (id, title, seed) in MULTI_REGION {
        items.push(Item {
            id,
            title,
            seed,
            kind: Kind::NotConfigured,
            state: State::NotConfigured,
            detail: "belongs to the multi-region work, which is not configured".into(),
        });
    }
    for (id, title, seed) in MANUAL {
        let (state, detail) = match (i.attestation)(id) {
            Some(a) => (
                State::Attested,
                format!(
                    "attested by {} on {}{}",
                    a.by,
                    a.date,
                    a.note.map(|n| format!(": {n}")).unwrap_or_default()
                ),
            ),
            None => (
                State::Unattested,
                format!(
                    "only a person can attest this: add readiness.attestations.{id} {{by, date}} to the configuration"
                ),
            ),
        };
        items.push(Item {
            id,
            title,
            seed,
            kind: Kind::Manual,
            state,
            detail,
        });
    }
    let ready = !items.iter().any(|it| it.state == State::Fail);
    Readiness {
        now: i.now,
        ready,
        items,
    }
}

fn no_sources() -> Vec<String> {
    vec!["no sources are configured".into()]
}

fn backups_scheduled(i: &Inputs<'_>) -> Item {
    let mut fails: Vec<String> = i
        .sources
        .iter()
        .filter(|s| s.schedule.is_none())
        .map(|s| format!("{} has no schedule", s.name))
        .collect();
    if i.sources.is_empty() {
        fails = no_sources();
    }
    let kinds: Vec<String> = i
        .sources
        .iter()
        .map(|s| {
            format!(
                "{} ({}, {})",
                s.name,
                s.kind,
                s.schedule.as_deref().unwrap_or("-")
            )
        })
        .collect();
    auto(
        "backups-scheduled",
        "Every source has a backup schedule",
        "Automated backups configured (PostgreSQL, ConfigMaps, Secrets)",
        fails,
        kinds.join(", "),
    )
}

fn backups_recent(i: &Inputs<'_>) -> Item {
    let mut fails = Vec::new();
    let mut oks = Vec::new();
    for s in &i.status.sources {
        match (&s.last_backup, &s.objectives.rpo) {
            (None, _) => fails.push(format!("{} has no successful backup", s.source)),
            (Some(b), Some(t)) if b.age_seconds > t.seconds as f64 => fails.push(format!(
                "{}: last backup {} old, over its {} RPO",
                s.source,
                human(b.age_seconds),
                human(t.seconds as f64)
            )),
            (Some(b), _) => oks.push(format!("{} {} ago", s.source, human(b.age_seconds))),
        }
    }
    if i.sources.is_empty() {
        fails = no_sources();
    }
    auto(
        "backups-recent",
        "Every source has a recent successful backup (within its RPO)",
        "Continuous monitoring of backup success/failure",
        fails,
        oks.join(", "),
    )
}

fn drills(i: &Inputs<'_>) -> Item {
    let max = secs(i.policy.drill_max_age);
    let mut fails = Vec::new();
    let mut oks = Vec::new();
    for s in &i.status.sources {
        match &s.last_successful_drill {
            None => fails.push(format!("{}: no successful restore drill (run `lifeboat drill --source {}`)", s.source, s.source)),
            Some(d) if d.age_seconds > max => fails.push(format!(
                "{}: the last successful drill is {} old, more than {} (run `lifeboat drill --source {}`)",
                s.source,
                human(d.age_seconds),
                human(max),
                s.source
            )),
            Some(d) => oks.push(format!("{} drilled {} ago", s.source, human(d.age_seconds))),
        }
    }
    if i.sources.is_empty() {
        fails = no_sources();
    }
    auto(
        "restore-drills",
        "A restore drill succeeded within the drill period for every source",
        "Backup restoration tested successfully; Monthly backup restoration drills",
        fails,
        oks.join(", "),
    )
}

fn objectives(i: &Inputs<'_>) -> Item {
    let mut fails = Vec::new();
    let mut oks = Vec::new();
    if i.status.objectives.is_empty() {
        fails.push("no objectives are configured (objectives: scenario, rto, rpo)".into());
    }
    for s in &i.status.sources {
        if s.objectives.rto.is_none() && s.objectives.rpo.is_none() {
            fails.push(format!("{} covers no scenario (covers: […])", s.source));
            continue;
        }
        let Some(d) = &s.last_drill else {
            fails.push(format!("{}: no drill has measured it", s.source));
            continue;
        };
        if !d.ok {
            fails.push(format!("{}: the last drill failed", s.source));
            continue;
        }
        let mut missed = Vec::new();
        if let Some(t) = &s.objectives.rto
            && d.rto_seconds > t.seconds as f64
        {
            missed.push(format!(
                "RTO {} > {}",
                human(d.rto_seconds),
                human(t.seconds as f64)
            ));
        }
        if let Some(t) = &s.objectives.rpo
            && d.rpo_seconds > t.seconds as f64
        {
            missed.push(format!(
                "RPO {} > {}",
                human(d.rpo_seconds),
                human(t.seconds as f64)
            ));
        }
        if missed.is_empty() {
            oks.push(format!(
                "{}: RTO {}, RPO {}",
                s.source,
                human(d.rto_seconds),
                human(d.rpo_seconds)
            ));
        } else {
            fails.push(format!(
                "{}: the last drill missed {}",
                s.source,
                missed.join(" and ")
            ));
        }
    }
    auto(
        "objectives",
        "Objectives are defined and the last drill of every source met them",
        "Regular review of RTO/RPO targets; Disaster recovery plan documented and tested",
        fails,
        oks.join(", "),
    )
}

fn retention_item(i: &Inputs<'_>) -> Item {
    let mut fails = Vec::new();
    let mut oks = Vec::new();
    for s in i.sources {
        let Some(p) = s.retention.as_ref().filter(|p| !p.is_empty()) else {
            fails.push(format!("{} has no retention policy", s.name));
            continue;
        };
        // Grouped by scope, as `forget` plans: a partial snapshot is counted
        // apart from the full ones.
        let summaries = s.snapshots.iter().map(|x| {
            (
                Group::new(s.name.clone(), x.scope.clone()),
                SnapshotSummary {
                    id: x.id.clone(),
                    time: x.time,
                },
            )
        });
        let beyond: usize = retention::plan_grouped(summaries, p, i.now)
            .iter()
            .map(|(_, plan)| plan.forget.len())
            .sum();
        if beyond == 0 {
            oks.push(format!(
                "{}: {} snapshots, all within policy",
                s.name,
                s.snapshots.len()
            ));
        } else {
            fails.push(format!(
                "{}: {} snapshot(s) are beyond its retention policy and still stored (run `lifeboat forget --source {} --prune`, or check that the daemon runs)",
                s.name, beyond, s.name
            ));
        }
    }
    if i.sources.is_empty() {
        fails = no_sources();
    }
    auto(
        "retention",
        "Retention is configured and the repository holds what it says",
        "Automated backups configured (30 days database, 90 days configuration)",
        fails,
        oks.join(", "),
    )
}

fn encrypted(i: &Inputs<'_>) -> Item {
    auto(
        "repository-encrypted",
        "The repository is encrypted",
        "Security audit completed (RBAC, secrets, network policies)",
        Vec::new(),
        i.encryption.clone(),
    )
}

fn checked(i: &Inputs<'_>) -> Item {
    let max = secs(i.policy.check_max_age);
    let last_ok = i
        .checks
        .iter()
        .filter(|c| c.record.ok)
        .max_by_key(|c| c.record.time);
    let last = i.checks.iter().max_by_key(|c| c.record.time);
    let mut fails = Vec::new();
    let mut ok = String::new();
    match (last, last_ok) {
        (None, _) => fails.push("no `lifeboat check` has been recorded".into()),
        (Some(l), _) if !l.record.ok => fails.push(format!(
            "the last check ({}) found {} problem(s): run `lifeboat check --read-data`",
            l.record.time.format("%Y-%m-%d %H:%M UTC"),
            l.record.problems
        )),
        (_, Some(g)) => {
            let age = secs(i.now - g.record.time);
            if age > max {
                fails.push(format!(
                    "the last passed check is {} old, more than {}",
                    human(age),
                    human(max)
                ));
            } else {
                ok = format!(
                    "check{} passed {} ago",
                    if g.record.read_data {
                        " --read-data"
                    } else {
                        ""
                    },
                    human(age)
                );
            }
        }
        (Some(_), None) => fails.push("no check has passed".into()),
    }
    auto(
        "repository-checked",
        "A repository check passed recently",
        "Continuous monitoring of backup success/failure",
        fails,
        ok,
    )
}

fn monitoring(i: &Inputs<'_>) -> Item {
    let (fails, ok) = match &i.daemon {
        Daemon::Active { holder, age_seconds } => (
            Vec::new(),
            format!("`lifeboat serve` ({holder}) holds the lease, renewed {}s ago: metrics and alerts are served", age_seconds),
        ),
        Daemon::Stale { holder, age_seconds } => (
            vec![format!(
                "the daemon {holder} has not renewed its lease for {}: schedules, metrics and alerts are down",
                human(*age_seconds as f64)
            )],
            String::new(),
        ),
        Daemon::Absent => (
            vec!["no `lifeboat serve` holds the repository's lease: nothing runs the schedules or serves metrics (deploy/)".into()],
            String::new(),
        ),
    };
    auto(
        "monitoring",
        "The daemon runs and serves metrics",
        "Monitoring and alerting configured (Prometheus, Grafana)",
        fails,
        ok,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objectives::seed_table;
    use crate::status::tests::{at, db, drill, snap};
    use crate::status::{self};
    use chrono::TimeDelta;
    use lifeboat_repo::retention::RetentionPolicy;

    fn check(ok: bool, t: DateTime<Utc>) -> Stored<CheckRecord> {
        Stored {
            id: "c".into(),
            record: CheckRecord {
                version: 1,
                time: t,
                read_data: true,
                ok,
                problems: if ok { 0 } else { 2 },
                hostname: "h".into(),
                program: "lifeboat".into(),
                read_data_subset: None,
            },
        }
    }

    fn run(
        src: SourceInput,
        checks: &[Stored<CheckRecord>],
        daemon: Daemon,
        now: DateTime<Utc>,
    ) -> Readiness {
        let sources = [src];
        let st = status::evaluate(&sources, &seed_table(), &Policy::default(), now);
        let none = |_: &str| None;
        let attested = |id: &str| {
            (id == "on-call").then(|| Attestation {
                by: "Jane Roe".into(),
                date: NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
                note: None,
            })
        };
        let f: &dyn Fn(&str) -> Option<Attestation> =
            if checks.is_empty() { &none } else { &attested };
        evaluate(&Inputs {
            sources: &sources,
            status: &st,
            checks,
            daemon,
            encryption: "AES-256-GCM".into(),
            attestation: f,
            policy: Policy::default(),
            now,
        })
    }

    fn state(r: &Readiness, id: &str) -> State {
        r.items.iter().find(|i| i.id == id).unwrap().state
    }

    use crate::status::SourceInput;

    fn good_source(now: DateTime<Utc>, drill_at: DateTime<Utc>) -> SourceInput {
        let mut s = db(
            vec![snap("s1", now - TimeDelta::minutes(10))],
            vec![drill(true, drill_at, 120.0)],
        );
        s.retention = Some(RetentionPolicy {
            keep_last: Some(5),
            ..Default::default()
        });
        s
    }

    fn active() -> Daemon {
        Daemon::Active {
            holder: "pod/1".into(),
            age_seconds: 5,
        }
    }

    #[test]
    fn ready_with_fresh_evidence_and_manual_items_do_not_fail() {
        let now = at(24 * 60);
        let r = run(
            good_source(now, now - TimeDelta::days(2)),
            &[check(true, now - TimeDelta::days(1))],
            active(),
            now,
        );
        assert!(r.ready, "{:#?}", r.items);
        assert_eq!(state(&r, "on-call"), State::Attested);
        assert_eq!(state(&r, "runbooks"), State::Unattested);
        assert_eq!(state(&r, "multi-region-replication"), State::NotConfigured);
    }

    #[test]
    fn a_drill_older_than_30_days_fails_readiness() {
        let now = at(24 * 60);
        let r = run(
            good_source(now, now - TimeDelta::days(31)),
            &[check(true, now)],
            active(),
            now,
        );
        assert!(!r.ready);
        assert_eq!(state(&r, "restore-drills"), State::Fail);
        let d = &r
            .items
            .iter()
            .find(|i| i.id == "restore-drills")
            .unwrap()
            .detail;
        assert!(d.contains("31d 0h old"), "{d}");
    }

    #[test]
    fn missing_check_failed_check_and_absent_daemon_fail() {
        let now = at(24 * 60);
        let r = run(good_source(now, now), &[], Daemon::Absent, now);
        assert_eq!(state(&r, "repository-checked"), State::Fail);
        assert_eq!(state(&r, "monitoring"), State::Fail);
        let r = run(
            good_source(now, now),
            &[check(true, now - TimeDelta::days(2)), check(false, now)],
            active(),
            now,
        );
        assert_eq!(state(&r, "repository-checked"), State::Fail);
        let r = run(
            good_source(now, now),
            &[check(true, now - TimeDelta::days(8))],
            active(),
            now,
        );
        assert_eq!(state(&r, "repository-checked"), State::Fail);
    }

    #[test]
    fn retention_beyond_policy_or_missing_fails() {
        let now = at(24 * 60);
        let mut s = good_source(now, now);
        s.snapshots = (0..8)
            .map(|h| snap(&format!("s{h}"), now - TimeDelta::hours(h)))
            .collect();
        let r = run(s.clone(), &[check(true, now)], active(), now);
        assert_eq!(state(&r, "retention"), State::Fail);
        s.retention = None;
        let r = run(s, &[check(true, now)], active(), now);
        assert_eq!(state(&r, "retention"), State::Fail);
    }

    /// `keep_last: 1` over a full and a newer partial snapshot keeps both:
    /// each scope is its own group, as `forget` counts them.
    #[test]
    fn retention_counts_partial_snapshots_apart() {
        let now = at(24 * 60);
        let mut s = good_source(now, now);
        s.retention = Some(RetentionPolicy {
            keep_last: Some(1),
            ..Default::default()
        });
        s.snapshots = vec![
            snap("full", now - TimeDelta::hours(2)),
            crate::status::tests::partial("part", now - TimeDelta::hours(1)),
        ];
        let r = run(s.clone(), &[check(true, now)], active(), now);
        assert_eq!(state(&r, "retention"), State::Pass);
        s.snapshots.push(snap("older", now - TimeDelta::hours(3)));
        let r = run(s, &[check(true, now)], active(), now);
        assert_eq!(state(&r, "retention"), State::Fail);
    }

    #[test]
    fn a_slow_last_drill_misses_the_objectives() {
        let now = at(24 * 60);
        let mut s = good_source(now, now);
        s.drills = vec![drill(true, now, 2400.0)];
        let r = run(s, &[check(true, now)], active(), now);
        assert_eq!(state(&r, "objectives"), State::Fail);
        assert!(!r.ready);
    }
}
