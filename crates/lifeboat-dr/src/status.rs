//! `lifeboat status`: per source, how much data would be lost now (RPO
//! exposure) and how long recovery took in the last drill (RTO), against the
//! objectives, with a verdict. A pure function of the configuration, the
//! repository's snapshots and drill records, and the time it is evaluated at
//! (injected, so "what if it were tomorrow" is a test, not a sleep).
//!
//! The verdict is about the objectives as much as the sources: an objective
//! of the table that nothing measures (no source covers it, its RPO is 0,
//! no drill has measured it) puts the verdict at risk with that reason,
//! whatever its priority (P0 and P1 alike: the table is what the operator
//! promised), unless the configuration records what covers it elsewhere and
//! who attested that, when ([`crate::objectives::CoveredElsewhere`]).

use chrono::{DateTime, TimeDelta, Utc};
use lifeboat_repo::retention::{FULL_SCOPE, RetentionPolicy};
use serde::Serialize;

use crate::objectives::{self, Objective, SourceObjectives, Target};
use crate::record::{DrillKind, DrillRecord, Stored};

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
    /// A physical base backup (`backup physical`, or the daemon's
    /// `physical.schedule`). It counts as a backup of the source like any
    /// full snapshot, and is also shown on its own.
    pub physical: bool,
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
    /// `physical.schedule`: the daemon takes base backups of it.
    pub physical_schedule: Option<String>,
    pub drill_schedule: Option<String>,
    pub covers: Vec<String>,
    pub retention: Option<RetentionPolicy>,
    /// Oldest first, full and partial.
    pub snapshots: Vec<SnapshotInfo>,
    /// This source's drills, oldest first.
    pub drills: Vec<Stored<DrillRecord>>,
    /// The kinds of drill it must pass ([`crate::kinds::expected`]), each
    /// judged by its own drills; empty is read as logical only.
    pub drill_kinds: Vec<DrillKind>,
}

impl SourceInput {
    /// [`Self::drill_kinds`], logical when none is given.
    pub fn expected_drill_kinds(&self) -> Vec<DrillKind> {
        if self.drill_kinds.is_empty() {
            vec![DrillKind::Logical]
        } else {
            self.drill_kinds.clone()
        }
    }
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
    /// `logical` or `physical`.
    pub kind: DrillKind,
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
            kind: d.record.drill_kind(),
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
    /// `physical.schedule`, when the daemon takes base backups of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub physical_schedule: Option<String>,
    /// The newest physical base backup (also `last_backup` when it is the
    /// newest of all); absent while the source has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_physical_backup: Option<BackupView>,
    /// Physical base backups among `snapshots`.
    pub physical_snapshots: usize,
    pub objectives: SourceObjectives,
    /// The last drill and the last passed one of any expected kind.
    pub last_drill: Option<DrillView>,
    pub last_successful_drill: Option<DrillView>,
    /// Per expected kind of drill (logical, physical), its last drill and
    /// last passed one: each kind is judged on its own.
    pub drill_kinds: Vec<KindDrills>,
    pub verdict: Verdict,
    /// Why the verdict is not ok (empty when ok).
    pub reasons: Vec<String>,
}

/// The drills of one kind of a source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindDrills {
    pub kind: DrillKind,
    pub last_drill: Option<DrillView>,
    pub last_successful_drill: Option<DrillView>,
}

impl KindDrills {
    /// What messages call this kind's drills: nothing for a source drilled
    /// logically only (its messages read as before physical drills
    /// existed), else `logical ` or `physical `.
    pub fn label(&self, kinds: usize) -> String {
        if kinds == 1 && self.kind == DrillKind::Logical {
            String::new()
        } else {
            format!("{} ", self.kind)
        }
    }

    /// The command that drills this kind of `source`.
    pub fn command(&self, source: &str) -> String {
        match self.kind {
            DrillKind::Logical => format!("lifeboat drill --source {source}"),
            DrillKind::Physical => format!("lifeboat drill --physical --source {source}"),
        }
    }
}

/// The last drill and last passed drill among `drills` for which `keep`
/// holds.
fn last_drills(
    drills: &[Stored<DrillRecord>],
    keep: impl Fn(&DrillRecord) -> bool,
    now: DateTime<Utc>,
) -> (Option<DrillView>, Option<DrillView>) {
    let mine = || drills.iter().filter(|d| keep(&d.record));
    let last = mine()
        .max_by_key(|d| d.record.started)
        .map(|d| DrillView::of(d, now));
    let good = mine()
        .filter(|d| d.record.ok)
        .max_by_key(|d| d.record.started)
        .map(|d| DrillView::of(d, now));
    (last, good)
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
    /// Why this objective puts the verdict at risk; `None` when it is met
    /// or attested as covered elsewhere.
    pub risk: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub now: DateTime<Utc>,
    pub verdict: Verdict,
    /// The first of `reasons`, or what holds when there is none.
    pub reason: String,
    /// Every reason the verdict is not ok: the failing sources', the at-risk
    /// sources' (each prefixed with the source), then the objectives' (P0
    /// first).
    pub reasons: Vec<String>,
    pub sources: Vec<SourceStatus>,
    pub objectives: Vec<ObjectiveStatus>,
    /// The regions, their authority and the last change of primary
    /// (`None` without `regions:`); see [`with_regions`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regions: Option<crate::regions::RegionsOverview>,
    /// The WAL archive (`None` when the repository holds no WAL); see
    /// [`with_wal`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wal: Option<crate::wal::WalOverview>,
}

/// `st` with the regions shown: each of their warnings is a reason, after
/// the sources' and objectives', and puts an ok verdict at risk (a failing
/// one stays failing).
pub fn with_regions(mut st: Status, overview: crate::regions::RegionsOverview) -> Status {
    if !overview.warnings.is_empty() {
        let was_empty = st.reasons.is_empty();
        st.reasons
            .extend(overview.warnings.iter().map(|w| format!("regions: {w}")));
        if st.verdict == Verdict::Ok {
            st.verdict = Verdict::AtRisk;
        }
        if was_empty {
            st.reason = st.reasons[0].clone();
        }
    }
    st.regions = Some(overview);
    st
}

/// `st` with the WAL archive shown; each of its warnings
/// ([`crate::wal::warnings`]) is a reason (prefixed `wal:`) and puts an ok
/// verdict at risk.
pub fn with_wal(mut st: Status, overview: crate::wal::WalOverview) -> Status {
    let warn = crate::wal::warnings(&overview);
    if !warn.is_empty() {
        let was_empty = st.reasons.is_empty();
        st.reasons.extend(warn.iter().map(|w| format!("wal: {w}")));
        if st.verdict == Verdict::Ok {
            st.verdict = Verdict::AtRisk;
        }
        if was_empty {
            st.reason = st.reasons[0].clone();
        }
    }
    st.wal = Some(overview);
    st
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
    let last_physical_backup = src
        .snapshots
        .iter()
        .filter(|s| s.physical)
        .max_by_key(|s| s.time)
        .map(|s| BackupView {
            snapshot: s.id.clone(),
            time: s.time,
            age_seconds: secs(now - s.time),
        });
    let kinds = src.expected_drill_kinds();
    let (last_drill, last_good) =
        last_drills(&src.drills, |r| kinds.contains(&r.drill_kind()), now);
    let by_kind: Vec<KindDrills> = kinds
        .iter()
        .map(|&kind| {
            let (last_drill, last_successful_drill) =
                last_drills(&src.drills, |r| r.drill_kind() == kind, now);
            KindDrills {
                kind,
                last_drill,
                last_successful_drill,
            }
        })
        .collect();

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
    // Base backups on the daemon's schedule that have never been taken:
    // the physical drill and point-in-time recovery have nothing to start
    // from.
    if src.physical_schedule.is_some() && last_physical_backup.is_none() {
        at_risk.push(
            "no physical base backup has succeeded yet (physical.schedule is set): \
             point-in-time recovery has no base backup to start from"
                .to_string(),
        );
    }
    // The same rules for each kind of drill, each on its own drills.
    for k in &by_kind {
        let label = k.label(by_kind.len());
        match &k.last_drill {
            None => at_risk.push(format!("no {label}restore drill has been run")),
            Some(d) if !d.ok => failing.push(format!(
                "the last {label}drill ({}) failed: {}",
                d.started.format("%Y-%m-%d %H:%M UTC"),
                d.failure.as_deref().unwrap_or("no reason recorded")
            )),
            Some(_) => {}
        }
        if let Some(g) = &k.last_successful_drill {
            if g.age_seconds > secs(policy.drill_max_age) {
                at_risk.push(format!(
                    "the last successful {label}drill is {} old (more than {})",
                    human(g.age_seconds),
                    human(secs(policy.drill_max_age))
                ));
            }
            if let Some(t) = &binding.rto
                && g.rto_seconds > t.seconds as f64
            {
                at_risk.push(format!(
                    "the last successful {label}drill took {} to recover, over the {} RTO of {}",
                    human(g.rto_seconds),
                    human(t.seconds as f64),
                    t.scenario
                ));
            }
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
        physical_schedule: src.physical_schedule.clone(),
        physical_snapshots: src.snapshots.iter().filter(|s| s.physical).count(),
        last_physical_backup,
        objectives: binding,
        last_drill,
        last_successful_drill: last_good,
        drill_kinds: by_kind,
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
    let table: Vec<ObjectiveStatus> = objectives
        .iter()
        .map(|o| objective_status(o, sources, &statuses))
        .collect();
    let mut reasons = Vec::new();
    for v in [Verdict::Failing, Verdict::AtRisk] {
        for s in statuses.iter().filter(|s| s.verdict == v) {
            reasons.extend(s.reasons.iter().map(|r| format!("{}: {r}", s.source)));
        }
    }
    let mut risky: Vec<&ObjectiveStatus> = table.iter().filter(|o| o.risk.is_some()).collect();
    // P0 first; an objective without a priority after the prioritised ones.
    risky.sort_by_key(|o| o.objective.priority.clone().unwrap_or_else(|| "~".into()));
    reasons.extend(risky.iter().filter_map(|o| o.risk.clone()));
    let worst = statuses.iter().map(|s| s.verdict).max();
    let verdict = match worst {
        None => Verdict::Failing,
        Some(v) if v == Verdict::Ok && !risky.is_empty() => Verdict::AtRisk,
        Some(v) => v,
    };
    let reason = if statuses.is_empty() {
        reasons.insert(
            0,
            "no sources are configured: nothing is backed up".to_string(),
        );
        reasons[0].clone()
    } else if let Some(first) = reasons.first() {
        first.clone()
    } else if table
        .iter()
        .any(|o| o.objective.covered_elsewhere.is_some())
    {
        "every source is ok; every objective is met or attested as covered elsewhere".to_string()
    } else {
        "every source is ok; every objective is met".to_string()
    };
    Status {
        now,
        verdict,
        reason,
        reasons,
        sources: statuses,
        objectives: table,
        regions: None,
        wal: None,
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
    // Each kind's last drill, if it passed: the slowest restore path.
    let rto = worst(&|s| {
        s.drill_kinds
            .iter()
            .filter_map(|k| k.last_drill.as_ref().filter(|d| d.ok))
            .map(|d| d.rto_seconds)
            .reduce(f64::max)
    });
    let rpo = worst(&|s| s.rpo_exposure_seconds);
    let zero_rpo = o.rpo.num_seconds() <= 0;
    let (met, note) = if covering.is_empty() {
        (None, Some("no source covers this scenario".to_string()))
    } else if zero_rpo {
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
    let what = match &o.priority {
        Some(p) => format!("objective {} ({p})", o.scenario),
        None => format!("objective {}", o.scenario),
    };
    // An attestation stands for what Lifeboat cannot measure at all (no
    // covering source, RPO 0); a scenario a source covers is measured by
    // that source's backups and drills, and no statement replaces them.
    let measurable = !covering.is_empty() && !zero_rpo;
    let (note, risk) = match (met, &o.covered_elsewhere) {
        (Some(true), _) => (note, None),
        (Some(false), _) => (
            note,
            Some(format!(
                "{what} is missed: RTO {} of {}, RPO exposure {} of {}",
                rto.map(human).unwrap_or_else(|| "-".into()),
                human(o.rto.num_seconds() as f64),
                rpo.map(human).unwrap_or_else(|| "-".into()),
                human(o.rpo.num_seconds() as f64)
            )),
        ),
        (None, Some(c)) if !measurable => {
            (Some(format!("covered elsewhere: {}", c.describe())), None)
        }
        (None, _) if measurable => (
            note.clone(),
            Some(format!(
                "{what} is not measured yet: {} (run `lifeboat drill` for {})",
                note.as_deref().unwrap_or("nothing measured it"),
                covering
                    .iter()
                    .map(|s| s.source.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        ),
        (None, _) => (
            note.clone(),
            Some(format!(
                "{what} is covered by nothing Lifeboat measures: {}; cover it with a source \
                 (`covers`) or record what covers it elsewhere and who attested it \
                 (objectives: covered_by, attested_by, attested_at)",
                note.as_deref().unwrap_or("not measured")
            )),
        ),
    };
    ObjectiveStatus {
        objective: o.clone(),
        sources: covering.iter().map(|s| s.source.clone()).collect(),
        measured_rto_seconds: rto,
        rpo_exposure_seconds: rpo,
        met,
        note,
        risk,
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
            physical: false,
        }
    }

    /// A physical base backup.
    pub fn base_backup(id: &str, t: DateTime<Utc>) -> SnapshotInfo {
        SnapshotInfo {
            physical: true,
            ..snap(id, t)
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
            physical_schedule: None,
            drill_schedule: None,
            covers: vec!["database-corruption".into(), "complete-outage".into()],
            retention: None,
            snapshots: snaps,
            drills,
            drill_kinds: vec![],
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
    fn physical_base_backups_are_shown_on_their_own() {
        // A logical backup at 10:00, a base backup at 10:30: the base
        // backup is the last backup (the RPO counts from it) and the last
        // physical one.
        let src = db(
            vec![
                snap("logical", at(10)),
                base_backup("base", at(10) + TimeDelta::minutes(30)),
            ],
            vec![drill(true, at(10), 95.0)],
        );
        let s = source_status(&src, &seed_table(), &Policy::default(), at(11));
        assert_eq!(s.last_backup.as_ref().unwrap().snapshot, "base");
        assert_eq!(s.last_physical_backup.as_ref().unwrap().snapshot, "base");
        assert_eq!(s.last_physical_backup.as_ref().unwrap().age_seconds, 1800.0);
        assert_eq!((s.snapshots, s.physical_snapshots), (2, 1));
        assert_eq!(s.verdict, Verdict::Ok, "{:?}", s.reasons);
        // Without base backups: none shown, nothing said.
        let src = db(
            vec![snap("logical", at(10))],
            vec![drill(true, at(10), 95.0)],
        );
        let s = source_status(&src, &seed_table(), &Policy::default(), at(10));
        assert_eq!(s.last_physical_backup, None);
        assert_eq!(s.verdict, Verdict::Ok, "{:?}", s.reasons);
        // `physical.schedule` set and no base backup yet: at risk, saying so.
        let mut src = src;
        src.physical_schedule = Some("0 3 * * *".into());
        let s = source_status(&src, &seed_table(), &Policy::default(), at(10));
        assert_eq!(s.verdict, Verdict::AtRisk);
        assert!(
            s.reasons
                .iter()
                .any(|r| r.contains("no physical base backup")),
            "{:?}",
            s.reasons
        );
        assert_eq!(s.physical_schedule.as_deref(), Some("0 3 * * *"));
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
        // The source is ok, but three P0 objectives are covered by nothing
        // Lifeboat measures and nobody attested what covers them: at risk,
        // region-failure named, and every one of them listed.
        assert_eq!(st.sources[0].verdict, Verdict::Ok);
        assert_eq!(st.verdict, Verdict::AtRisk);
        assert!(st.reason.contains("objective "), "{}", st.reason);
        let all = st.reasons.join("\n");
        for s in [
            "single-pod-failure (P0)",
            "service-failure (P0)",
            "region-failure (P0)",
        ] {
            assert!(all.contains(s), "{s} missing in {all}");
        }
        assert!(
            all.contains("covered_by, attested_by, attested_at"),
            "{all}"
        );
        assert_eq!(st.reasons.len(), 3, "{all}");
        assert!(row("region-failure").risk.is_some());
        assert!(dc.risk.is_none());
    }

    fn attested(o: &mut Objective, by: &str) {
        o.covered_elsewhere = Some(crate::objectives::CoveredElsewhere {
            covered_by: by.into(),
            attested_by: "Jane Roe".into(),
            attested_at: chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
        });
    }

    /// What Kubernetes itself handles (a pod, a service) and a region
    /// failover run elsewhere, attested in the configuration: the verdict is
    /// ok again, and the table carries who attested what, when.
    #[test]
    fn attested_objectives_are_covered_elsewhere() {
        let src = db(vec![snap("s1", at(10))], vec![drill(true, at(10), 95.0)]);
        let mut table = seed_table();
        for o in table.iter_mut() {
            match o.scenario.as_str() {
                "single-pod-failure" | "service-failure" => {
                    attested(o, "Kubernetes restarts pods (Deployment replicas)")
                }
                "region-failure" => attested(o, "CloudNativePG replica cluster in eu-west"),
                _ => {}
            }
        }
        let now = at(10) + TimeDelta::minutes(30);
        let st = evaluate(std::slice::from_ref(&src), &table, &Policy::default(), now);
        assert_eq!(st.verdict, Verdict::Ok, "{:?}", st.reasons);
        assert!(st.reasons.is_empty());
        assert!(
            st.reason.contains("attested as covered elsewhere"),
            "{}",
            st.reason
        );
        let region = st
            .objectives
            .iter()
            .find(|o| o.objective.scenario == "region-failure")
            .unwrap();
        assert_eq!(region.risk, None);
        assert_eq!(
            region.note.as_deref(),
            Some(
                "covered elsewhere: CloudNativePG replica cluster in eu-west \
                 (attested by Jane Roe on 2026-11-30)"
            )
        );
        // An attestation does not stand in for a measurement: a covered
        // scenario without a drill is still not measured.
        let mut table2 = table.clone();
        attested(&mut table2[2], "someone else");
        let undrilled = db(vec![snap("s1", at(10))], vec![]);
        let st = evaluate(&[undrilled], &table2, &Policy::default(), now);
        assert_eq!(st.verdict, Verdict::AtRisk);
        let dc = &st.objectives[2];
        assert!(
            dc.risk
                .as_deref()
                .unwrap()
                .contains("objective database-corruption (P1) is not measured yet"),
            "{dc:?}"
        );
    }

    /// P1 is treated like P0: an uncovered complete-outage objective puts
    /// the verdict at risk too. Reasons list P0 before P1, and a late backup
    /// (a source's reason) before both.
    #[test]
    fn an_uncovered_p1_objective_is_at_risk_too_and_source_reasons_come_first() {
        let mut src = db(vec![snap("s1", at(10))], vec![drill(true, at(10), 95.0)]);
        src.covers = vec!["database-corruption".into()];
        let table: Vec<Objective> = seed_table()
            .into_iter()
            .filter(|o| ["database-corruption", "complete-outage"].contains(&o.scenario.as_str()))
            .collect();
        let st = evaluate(
            std::slice::from_ref(&src),
            &table,
            &Policy::default(),
            at(10),
        );
        assert_eq!(st.verdict, Verdict::AtRisk);
        assert!(
            st.reason
                .starts_with("objective complete-outage (P1) is covered by nothing"),
            "{}",
            st.reason
        );
        let mut all = seed_table();
        attested(&mut all[0], "k8s");
        attested(&mut all[1], "k8s");
        let st = evaluate(&[src], &all, &Policy::default(), at(12));
        assert!(
            st.reasons[0].starts_with("db: RPO exposure"),
            "{:?}",
            st.reasons
        );
        assert!(
            st.reasons[1].contains("region-failure (P0)"),
            "{:?}",
            st.reasons
        );
        assert!(
            st.reasons[2].contains(
                "database-corruption (P1) is missed: RTO 1m 35s of 30m 0s, RPO exposure 2h 0m of 1h 0m"
            ),
            "{:?}",
            st.reasons
        );
        assert!(
            st.reasons[3].contains("complete-outage (P1)"),
            "{:?}",
            st.reasons
        );
        assert_eq!(st.reasons.len(), 4);
    }

    /// `drill` of a physical base backup.
    pub fn physical(mut d: Stored<DrillRecord>) -> Stored<DrillRecord> {
        d.id = format!("p{}", d.record.started.timestamp());
        d.record.kind = crate::record::PHYSICAL_KIND.into();
        d
    }

    /// Each expected kind is judged by its own drills, with the rules of
    /// logical drills; a source drilled logically only reads as before.
    #[test]
    fn each_expected_kind_of_drill_is_judged_on_its_own() {
        use DrillKind::{Logical, Physical};
        let now = at(10) + TimeDelta::minutes(30);
        let both = |drills: Vec<Stored<DrillRecord>>, kinds: Vec<DrillKind>| {
            let mut s = db(vec![snap("s1", at(10))], drills);
            s.drill_kinds = kinds;
            source_status(&s, &seed_table(), &Policy::default(), now)
        };
        // A passed logical drill; a physical one is expected too.
        let s = both(vec![drill(true, at(10), 95.0)], vec![Logical, Physical]);
        assert_eq!(s.verdict, Verdict::AtRisk);
        assert_eq!(s.reasons, ["no physical restore drill has been run"]);
        assert_eq!(s.drill_kinds.len(), 2);
        // A failed physical drill after a passed logical one: failing.
        let s = both(
            vec![
                drill(true, at(9), 95.0),
                physical(drill(false, at(10), 30.0)),
            ],
            vec![Logical, Physical],
        );
        assert_eq!(s.verdict, Verdict::Failing);
        assert!(
            s.reasons[0].starts_with("the last physical drill (2026-11-01 10:00 UTC) failed"),
            "{:?}",
            s.reasons
        );
        assert_eq!(s.last_drill.as_ref().unwrap().kind, Physical);
        // A later passed logical drill does not hide the failed physical one.
        let s = both(
            vec![
                physical(drill(false, at(9), 30.0)),
                drill(true, at(10), 95.0),
            ],
            vec![Logical, Physical],
        );
        assert_eq!(s.verdict, Verdict::Failing, "{:?}", s.reasons);
        // Both passed: ok; the objective's RTO is the slower kind's.
        let drills = vec![
            drill(true, at(9), 95.0),
            physical(drill(true, at(10), 300.0)),
        ];
        let s = both(drills.clone(), vec![Logical, Physical]);
        assert_eq!(s.verdict, Verdict::Ok, "{:?}", s.reasons);
        let mut src = db(vec![snap("s1", at(10))], drills);
        src.drill_kinds = vec![Logical, Physical];
        let st = evaluate(&[src], &seed_table(), &Policy::default(), now);
        let dc = st
            .objectives
            .iter()
            .find(|o| o.objective.scenario == "database-corruption")
            .unwrap();
        assert_eq!(dc.measured_rto_seconds, Some(300.0));
        // Physical backups only: the physical drill alone counts.
        let s = both(vec![physical(drill(true, at(10), 300.0))], vec![Physical]);
        assert_eq!(s.verdict, Verdict::Ok, "{:?}", s.reasons);
        let s = both(vec![], vec![Physical]);
        assert_eq!(s.reasons, ["no physical restore drill has been run"]);
        // Logical only (no physical backups): a physical drill on record
        // does not stand in for the logical one, and the messages are as
        // before.
        let s = both(vec![physical(drill(true, at(10), 60.0))], vec![]);
        assert_eq!(s.reasons, ["no restore drill has been run"]);
        assert_eq!(s.last_drill, None);
        let s = both(vec![drill(false, at(10), 60.0)], vec![Logical]);
        assert!(
            s.reasons[0].starts_with("the last drill (2026-11-01 10:00 UTC) failed"),
            "{:?}",
            s.reasons
        );
    }

    #[test]
    fn no_sources_is_failing() {
        let st = evaluate(&[], &seed_table(), &Policy::default(), at(0));
        assert_eq!(st.verdict, Verdict::Failing);
    }

    /// A region warning is a reason and puts an ok verdict at risk; a
    /// failing verdict stays failing; no warning changes nothing.
    #[test]
    fn region_warnings_put_an_ok_status_at_risk() {
        use crate::regions::RegionsOverview;
        let src = db(vec![snap("s1", at(10))], vec![drill(true, at(10), 95.0)]);
        let now = at(10) + TimeDelta::minutes(30);
        let ok = evaluate(std::slice::from_ref(&src), &[], &Policy::default(), now);
        assert_eq!(ok.verdict, Verdict::Ok, "{:?}", ok.reasons);
        let overview = |w: &[&str]| RegionsOverview {
            regions: Vec::new(),
            authority: None,
            warnings: w.iter().map(|s| s.to_string()).collect(),
        };
        let quiet = with_regions(ok.clone(), overview(&[]));
        assert_eq!(quiet.verdict, Verdict::Ok);
        assert_eq!(quiet.reason, ok.reason);
        assert!(quiet.regions.is_some());
        let warned = with_regions(
            ok.clone(),
            overview(&["2 servers answer as a writable primary"]),
        );
        assert_eq!(warned.verdict, Verdict::AtRisk);
        assert_eq!(
            warned.reason,
            "regions: 2 servers answer as a writable primary"
        );
        let failing = evaluate(&[], &[], &Policy::default(), now);
        let still = with_regions(failing.clone(), overview(&["x"]));
        assert_eq!(still.verdict, Verdict::Failing);
        assert_eq!(still.reason, failing.reason);
        assert_eq!(still.reasons.last().unwrap(), "regions: x");
    }
}
