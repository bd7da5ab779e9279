//! `lifeboat status`: per source, how much data would be lost now (RPO
//! exposure) and how long recovery took in the last drill (RTO), against the
//! objectives, with a verdict. A pure function of the configuration, the
//! repository's snapshots and drill records, and the time it is evaluated at
//! (injected, so "what if it were tomorrow" is a test, not a sleep).

use chrono::{DateTime, TimeDelta, Utc};
use lifeboat_repo::retention::{FULL_SCOPE, RetentionPolicy};
use serde::Serialize;

use crate::objectives::{self, Objective, SourceObjectives, Target};
use crate::record::{DrillRecord, Stored};

/// How old evidence may get before it no longer counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// A drill older than this does not prove today's backups (seed §4:
    /// monthly drills; 30 days by default).
    pub drill_max_age: TimeDelta,
    /// A repository check older than this does not count (7 days).
    pub check_max_age: TimeDelta,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            drill_max_age: TimeDelta::days(30),
            check_max_age: TimeDelta::days(7),
        }
    }
}

/// A snapshot as status sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotInfo {
    pub id: String,
    pub time: DateTime<Utc>,
    pub bytes_read: u64,
    pub bytes_stored: u64,
    pub duration_seconds: f64,
    /// The snapshot's scope key: [`FULL_SCOPE`], or what part of the source a
    /// partial snapshot holds (`tables: public.audit`). Only full snapshots
    /// count as the source's backups.
    pub scope: String,
}

impl SnapshotInfo {
    pub fn is_full(&self) -> bool {
        self.scope == FULL_SCOPE
    }
}

/// A configured source with its evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceInput {
    pub name: String,
    pub kind: String,
    pub schedule: Option<String>,
    pub drill_schedule: Option<String>,
    pub covers: Vec<String>,
    pub retention: Option<RetentionPolicy>,
    /// Oldest first, full and partial.
    pub snapshots: Vec<SnapshotInfo>,
    /// This source's drills, oldest first.
    pub drills: Vec<Stored<DrillRecord>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    AtRisk,
    Failing,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::AtRisk => "at risk",
            Verdict::Failing => "failing",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupView {
    pub snapshot: String,
    pub time: DateTime<Utc>,
    pub age_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillView {
    pub id: String,
    pub snapshot: String,
    pub started: DateTime<Utc>,
    pub age_seconds: f64,
    pub ok: bool,
    pub rto_seconds: f64,
    pub rpo_seconds: f64,
    pub failure: Option<String>,
}

impl DrillView {
    fn of(d: &Stored<DrillRecord>, now: DateTime<Utc>) -> Self {
        DrillView {
            id: d.id.clone(),
            snapshot: d.record.snapshot.clone(),
            started: d.record.started,
            age_seconds: secs(now - d.record.started),
            ok: d.record.ok,
            rto_seconds: d.record.rto_seconds,
            rpo_seconds: d.record.rpo_seconds,
            failure: d.record.failure.clone(),
        }
    }
}

/// One source's state against its objectives.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceStatus {
    pub source: String,
    pub kind: String,
    pub schedule: Option<String>,
    pub snapshots: usize,
    /// How many of `snapshots` are partial (some tables, schema only, a
    /// narrower selection): kept, shown, never counted as a backup.
    pub partial_snapshots: usize,
    /// The newest *full* snapshot: a partial one (some tables, schema only)
    /// would not bring the source back.
    pub last_backup: Option<BackupView>,
    /// Now minus the last full backup: what a disaster now would lose.
    pub rpo_exposure_seconds: Option<f64>,
    pub objectives: SourceObjectives,
    pub last_drill: Option<DrillView>,
    pub last_successful_drill: Option<DrillView>,
    pub verdict: Verdict,
    /// Why the verdict is not ok (empty when ok).
    pub reasons: Vec<String>,
}

/// An objective with the values measured against it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectiveStatus {
    #[serde(flatten)]
    pub objective: Objective,
    /// Sources covering this scenario.
    pub sources: Vec<String>,
    /// The worst RTO of those sources' latest drills.
    pub measured_rto_seconds: Option<f64>,
    /// The worst current RPO exposure of those sources.
    pub rpo_exposure_seconds: Option<f64>,
    /// `None`: nothing measured, or an RPO of 0 that backups cannot meet.
    pub met: Option<bool>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub now: DateTime<Utc>,
    pub verdict: Verdict,
    /// The first reason of the worst source, or "every source is ok".
    pub reason: String,
    pub sources: Vec<SourceStatus>,
    pub objectives: Vec<ObjectiveStatus>,
}

pub(crate) fn secs(d: TimeDelta) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

/// "3h 12m", "45s": durations in messages.
pub fn human(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as i64;
    let (d, h, m, sec) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m {sec}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// Evaluates one source at `now`.
pub fn source_status(
    src: &SourceInput,
    objectives: &[Objective],
    policy: &Policy,
    now: DateTime<Utc>,
) -> SourceStatus {
    let binding = objectives::for_source(objectives, &src.covers);
    let last = src
        .snapshots
        .iter()
        .filter(|s| s.is_full())
        .max_by_key(|s| s.time);
    let last_backup = last.map(|s| BackupView {
        snapshot: s.id.clone(),
        time: s.time,
        age_seconds: secs(now - s.time),
    });
    let exposure = last_backup.as_ref().map(|b| b.age_seconds.max(0.0));
    let last_drill = src
        .drills
        .iter()
        .max_by_key(|d| d.record.started)
        .map(|d| DrillView::of(d, now));
    let last_good = src
        .drills
        .iter()
        .filter(|d| d.record.ok)
        .max_by_key(|d| d.record.started)
        .map(|d| DrillView::of(d, now));

    let mut failing = Vec::new();
    let mut at_risk = Vec::new();
    match (&exposure, &binding.rpo) {
        (None, _) => {
            let partial = src.snapshots.len();
            failing.push(if partial == 0 {
                "no backup has ever succeeded".to_string()
            } else {
                format!(
                    "no full backup has ever succeeded ({partial} partial snapshot(s) only, \
                     which would not bring the whole source back)"
                )
            })
        }
        (Some(e), Some(t)) if *e > t.seconds as f64 => at_risk.push(format!(
            "RPO exposure {} exceeds the {} objective of {} ({})",
            human(*e),
            human(t.seconds as f64),
            t.scenario,
            "the last backup is too old"
        )),
        _ => {}
    }
    match &last_drill {
        None => at_risk.push("no restore drill has been run".to_string()),
        Some(d) if !d.ok => failing.push(format!(
            "the last drill ({}) failed: {}",
            d.started.format("%Y-%m-%d %H:%M UTC"),
            d.failure.as_deref().unwrap_or("no reason recorded")
        )),
        Some(_) => {}
    }
    if let Some(g) = &last_good {
        if g.age_seconds > secs(policy.drill_max_age) {
            at_risk.push(format!(
                "the last successful drill is {} old (more than {})",
                human(g.age_seconds),
                human(secs(policy.drill_max_age))
            ));
        }
        if let Some(t) = &binding.rto
            && g.rto_seconds > t.seconds as f64
        {
            at_risk.push(format!(
                "the last successful drill took {} to recover, over the {} RTO of {}",
                human(g.rto_seconds),
                human(t.seconds as f64),
                t.scenario
            ));
        }
    }
    let verdict = if !failing.is_empty() {
        Verdict::Failing
    } else if !at_risk.is_empty() {
        Verdict::AtRisk
    } else {
        Verdict::Ok
    };
    failing.extend(at_risk);
    SourceStatus {
        source: src.name.clone(),
        kind: src.kind.clone(),
        schedule: src.schedule.clone(),
        snapshots: src.snapshots.len(),
        partial_snapshots: src.snapshots.iter().filter(|s| !s.is_full()).count(),
        last_backup,
        rpo_exposure_seconds: exposure,
        objectives: binding,
        last_drill,
        last_successful_drill: last_good,
        verdict,
        reasons: failing,
    }
}

/// Evaluates every source and the objectives table at `now`.
pub fn evaluate(
    sources: &[SourceInput],
    objectives: &[Objective],
    policy: &Policy,
    now: DateTime<Utc>,
) -> Status {
    let statuses: Vec<SourceStatus> = sources
        .iter()
        .map(|s| source_status(s, objectives, policy, now))
        .collect();
    let table = objectives
        .iter()
        .map(|o| objective_status(o, sources, &statuses))
        .collect();
    let worst = statuses.iter().max_by_key(|s| s.verdict);
    let (verdict, reason) = match worst {
        None => (
            Verdict::Failing,
            "no sources are configured: nothing is backed up".to_string(),
        ),
        Some(s) if s.verdict == Verdict::Ok => (Verdict::Ok, "every source is ok".to_string()),
        Some(s) => (
            s.verdict,
            format!(
                "{}: {}",
                s.source,
                s.reasons.first().map(String::as_str).unwrap_or("")
            ),
        ),
    };
    Status {
        now,
        verdict,
        reason,
        sources: statuses,
        objectives: table,
    }
}

fn objective_status(
    o: &Objective,
    inputs: &[SourceInput],
    statuses: &[SourceStatus],
) -> ObjectiveStatus {
    let covering: Vec<&SourceStatus> = inputs
        .iter()
        .zip(statuses)
        .filter(|(i, _)| i.covers.contains(&o.scenario))
        .map(|(_, s)| s)
        .collect();
    let worst = |f: &dyn Fn(&SourceStatus) -> Option<f64>| {
        covering
            .iter()
            .filter_map(|s| f(s))
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
    };
    let rto = worst(&|s| {
        s.last_drill
            .as_ref()
            .filter(|d| d.ok)
            .map(|d| d.rto_seconds)
    });
    let rpo = worst(&|s| s.rpo_exposure_seconds);
    let (met, note) = if covering.is_empty() {
        (None, Some("no source covers this scenario".to_string()))
    } else if o.rpo.num_seconds() <= 0 {
        (
            None,
            Some("RPO 0 needs replication (multi-region work), not backups".to_string()),
        )
    } else {
        match (rto, rpo) {
            (Some(t), Some(p)) => (
                Some(t <= o.rto.num_seconds() as f64 && p <= o.rpo.num_seconds() as f64),
                None,
            ),
            (None, _) => (
                None,
                Some("no successful drill has measured the RTO".into()),
            ),
            (_, None) => (None, Some("no backup yet".into())),
        }
    };
    ObjectiveStatus {
        objective: o.clone(),
        sources: covering.iter().map(|s| s.source.clone()).collect(),
        measured_rto_seconds: rto,
        rpo_exposure_seconds: rpo,
        met,
        note,
    }
}

/// A target's value for messages: "1h 0m (database-corruption)".
pub fn describe_target(t: &Option<Target>) -> String {
    match t {
        Some(t) => format!("{} ({})", human(t.seconds as f64), t.scenario),
        None => "none".into(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::objectives::seed_table;

    pub fn at(h: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + TimeDelta::hours(h)
    }

    pub fn snap(id: &str, t: DateTime<Utc>) -> SnapshotInfo {
        SnapshotInfo {
            id: id.into(),
            time: t,
            bytes_read: 100,
            bytes_stored: 10,
            duration_seconds: 1.0,
            scope: FULL_SCOPE.into(),
        }
    }

    /// A partial snapshot (`backup postgres --table audit`).
    pub fn partial(id: &str, t: DateTime<Utc>) -> SnapshotInfo {
        SnapshotInfo {
            scope: "tables: public.audit".into(),
            ..snap(id, t)
        }
    }

    pub fn drill(ok: bool, started: DateTime<Utc>, rto: f64) -> Stored<DrillRecord> {
        Stored {
            id: format!("d{}", started.timestamp()),
            record: DrillRecord {
                version: 1,
                source: "db".into(),
                kind: "postgres".into(),
                snapshot: "s1".into(),
                snapshot_time: started - TimeDelta::minutes(10),
                started,
                finished: started + TimeDelta::seconds(rto as i64),
                ok,
                failure: (!ok).then(|| "blob 1234 in pack data/ab/cd is corrupt".into()),
                rto_seconds: rto,
                rpo_seconds: 600.0,
                target: "throwaway PostgreSQL 15".into(),
                trigger: "cli".into(),
                hostname: "h".into(),
                program: "lifeboat".into(),
                steps: vec![],
                differences: vec![],
            },
        }
    }

    pub fn db(snaps: Vec<SnapshotInfo>, drills: Vec<Stored<DrillRecord>>) -> SourceInput {
        SourceInput {
            name: "db".into(),
            kind: "postgres".into(),
            schedule: Some("0 * * * *".into()),
            drill_schedule: None,
            covers: vec!["database-corruption".into(), "complete-outage".into()],
            retention: None,
            snapshots: snaps,
            drills,
        }
    }

    fn verdict(src: &SourceInput, now: DateTime<Utc>) -> (Verdict, Vec<String>) {
        let s = source_status(src, &seed_table(), &Policy::default(), now);
        (s.verdict, s.reasons)
    }

    #[test]
    fn fresh_backup_and_drill_is_ok_until_the_rpo_passes() {
        let src = db(vec![snap("s1", at(10))], vec![drill(true, at(10), 95.0)]);
        assert_eq!(
            verdict(&src, at(10) + TimeDelta::minutes(59)).0,
            Verdict::Ok
        );
        let (v, why) = verdict(&src, at(11) + TimeDelta::seconds(1));
        assert_eq!(v, Verdict::AtRisk);
        assert!(why[0].contains("RPO exposure 1h 0m exceeds"), "{why:?}");
        assert!(why[0].contains("database-corruption"), "{why:?}");
    }

    #[test]
    fn no_backup_or_a_failed_last_drill_is_failing() {
        assert_eq!(verdict(&db(vec![], vec![]), at(1)).0, Verdict::Failing);
        let src = db(
            vec![snap("s1", at(10))],
            vec![drill(true, at(5), 60.0), drill(false, at(10), 30.0)],
        );
        let (v, why) = verdict(&src, at(10));
        assert_eq!(v, Verdict::Failing);
        assert!(why[0].contains("data/ab/cd"), "{why:?}");
    }

    #[test]
    fn old_or_slow_or_missing_drills_are_at_risk() {
        let now = at(24 * 40);
        let snaps = vec![snap("s1", now - TimeDelta::minutes(5))];
        let (v, why) = verdict(&db(snaps.clone(), vec![]), now);
        assert_eq!(
            (v, why[0].as_str()),
            (Verdict::AtRisk, "no restore drill has been run")
        );
        let (v, why) = verdict(&db(snaps.clone(), vec![drill(true, at(0), 60.0)]), now);
        assert_eq!(v, Verdict::AtRisk);
        assert!(why[0].contains("40d 0h old"), "{why:?}");
        let (v, why) = verdict(&db(snaps, vec![drill(true, now, 3600.0)]), now);
        assert_eq!(v, Verdict::AtRisk);
        assert!(why[0].contains("over the 30m 0s RTO"), "{why:?}");
    }

    /// A `--table` snapshot after the full one is not the source's latest
    /// backup: the RPO exposure is the full snapshot's age.
    #[test]
    fn a_partial_snapshot_is_not_the_last_backup() {
        let src = db(
            vec![snap("full", at(10)), partial("part", at(12))],
            vec![drill(true, at(10), 95.0)],
        );
        let s = source_status(&src, &seed_table(), &Policy::default(), at(12));
        assert_eq!(s.last_backup.as_ref().unwrap().snapshot, "full");
        assert_eq!(s.rpo_exposure_seconds, Some(7200.0));
        assert_eq!(s.verdict, Verdict::AtRisk);
        assert_eq!((s.snapshots, s.partial_snapshots), (2, 1));
        // Only partial snapshots: no backup of the source at all.
        let only = db(vec![partial("part", at(12))], vec![]);
        let s = source_status(&only, &seed_table(), &Policy::default(), at(12));
        assert_eq!(s.last_backup, None);
        assert_eq!(s.verdict, Verdict::Failing);
        assert!(s.reasons[0].contains("no full backup"), "{:?}", s.reasons);
    }

    #[test]
    fn clock_skew_a_backup_from_the_future_is_no_exposure() {
        let src = db(vec![snap("s1", at(12))], vec![drill(true, at(10), 10.0)]);
        let s = source_status(&src, &seed_table(), &Policy::default(), at(11));
        assert_eq!(s.rpo_exposure_seconds, Some(0.0));
        assert_eq!(s.verdict, Verdict::Ok);
    }

    #[test]
    fn objectives_table_carries_the_worst_measurements() {
        let src = db(vec![snap("s1", at(10))], vec![drill(true, at(10), 95.0)]);
        let st = evaluate(
            &[src],
            &seed_table(),
            &Policy::default(),
            at(10) + TimeDelta::minutes(30),
        );
        let row = |s: &str| {
            st.objectives
                .iter()
                .find(|o| o.objective.scenario == s)
                .unwrap()
        };
        let dc = row("database-corruption");
        assert_eq!(dc.measured_rto_seconds, Some(95.0));
        assert_eq!(dc.rpo_exposure_seconds, Some(1800.0));
        assert_eq!(dc.met, Some(true));
        assert_eq!(row("single-pod-failure").met, None);
        assert!(
            row("region-failure")
                .note
                .as_deref()
                .unwrap()
                .contains("no source")
        );
        assert_eq!(st.verdict, Verdict::Ok);
    }

    #[test]
    fn no_sources_is_failing() {
        let st = evaluate(&[], &seed_table(), &Policy::default(), at(0));
        assert_eq!(st.verdict, Verdict::Failing);
    }
}
