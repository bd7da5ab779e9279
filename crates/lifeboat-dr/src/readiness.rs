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
    /// What the item checks, with the configured values it checks against.
    pub title: String,
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

/// What the daemon's lease says: whether a `lifeboat serve` runs the
/// schedules. It says nothing about Prometheus scraping the metrics or
/// alerts reaching anyone (the manual item `monitoring-alerting`).
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

/// A file that holds a secret or key material, as found on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileEvidence {
    /// What it is: `repository.password`, `keys/1a2b…`, `serve.token`.
    pub what: String,
    pub path: String,
    pub state: FileState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum FileState {
    /// No permission bit for group or others (mode given in octal).
    Private {
        mode: u32,
    },
    /// Group or others may read, write or enter it.
    Exposed {
        mode: u32,
    },
    /// A directory where a file was expected, a device, …
    NotAFile,
    /// Not on this host (a Kubernetes Secret mounted only in the daemon's
    /// pod, say): not judged here.
    Missing,
    Unreadable {
        error: String,
    },
}

/// A key slot of the repository, as its `keys/` listing says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotEvidence {
    pub id: String,
    /// `passphrase` or `key-file`.
    pub kind: String,
    /// The slot that opened the repository for this assessment.
    pub current: bool,
}

/// The evidence behind `repository-encrypted`: read from the repository
/// that was just opened, the configuration's secret files and, for a local
/// repository, its key files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Encryption {
    /// The cipher every object but the marker is sealed with.
    pub cipher: String,
    pub slots: Vec<SlotEvidence>,
    /// Slots whose MAC under the master key does not verify (tampered or
    /// damaged), or an error that kept them from being verified.
    pub damaged_slots: Vec<String>,
    /// Files the configuration names as secrets (`{file: …}`, `key_file`).
    pub secret_files: Vec<FileEvidence>,
    /// A local repository's `keys/` directory and key slot files; `None`
    /// for object storage, where the bucket's policy governs access.
    pub local_key_files: Option<Vec<FileEvidence>>,
}

pub struct Inputs<'a> {
    pub sources: &'a [SourceInput],
    pub status: &'a Status,
    pub checks: &'a [Stored<CheckRecord>],
    pub daemon: Daemon,
    pub encryption: Encryption,
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
        "monitoring-alerting",
        "Prometheus scrapes the daemon's /metrics and its alerts reach someone (deploy/servicemonitor.yaml, deploy/prometheusrule.yaml)",
        "Monitoring and alerting configured (Prometheus, Grafana)",
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
    title: String,
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
        daemon_active(i),
    ];
    for (id, title, seed) in MULTI_REGION {
        items.push(Item {
            id,
            title: title.to_string(),
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
            title: title.to_string(),
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
        // Physical base backups on the daemon's schedule are backups too.
        .filter(|s| s.schedule.is_none() && s.physical_schedule.is_none())
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
                "{} ({}, {}{})",
                s.name,
                s.kind,
                s.schedule.as_deref().unwrap_or("-"),
                s.physical_schedule
                    .as_deref()
                    .map(|p| format!(", physical {p}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    auto(
        "backups-scheduled",
        "Every source has a backup schedule".into(),
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
        "Every source has a recent successful backup (within its RPO objective)".into(),
        "Continuous monitoring of backup success/failure",
        fails,
        oks.join(", "),
    )
}

fn drills(i: &Inputs<'_>) -> Item {
    let max = secs(i.policy.drill_max_age);
    let mut fails = Vec::new();
    let mut oks = Vec::new();
    // Every expected kind of drill (logical, physical) of every source.
    for s in &i.status.sources {
        for k in &s.drill_kinds {
            let label = k.label(s.drill_kinds.len());
            let run = k.command(&s.source);
            match &k.last_successful_drill {
                None => fails.push(format!(
                    "{}: no successful {label}restore drill (run `{run}`)",
                    s.source
                )),
                Some(d) if d.age_seconds > max => fails.push(format!(
                    "{}: the last successful {label}drill is {} old, more than {} (run `{run}`)",
                    s.source,
                    human(d.age_seconds),
                    human(max),
                )),
                Some(d) => oks.push(format!(
                    "{} {label}drilled {} ago",
                    s.source,
                    human(d.age_seconds)
                )),
            }
        }
    }
    if i.sources.is_empty() {
        fails = no_sources();
    }
    auto(
        "restore-drills",
        format!(
            "A restore drill succeeded within {} (readiness.drill_max_age) for every source",
            human(max)
        ),
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
        for k in &s.drill_kinds {
            objectives_of(s, k, &mut fails, &mut oks);
        }
    }
    auto(
        "objectives",
        "Objectives are defined and the last drill of every source met them".into(),
        "Regular review of RTO/RPO targets; Disaster recovery plan documented and tested",
        fails,
        oks.join(", "),
    )
}

/// The objectives item for one kind of drill of a source (the rules of
/// logical drills, each kind on its own).
fn objectives_of(
    s: &crate::status::SourceStatus,
    k: &crate::status::KindDrills,
    fails: &mut Vec<String>,
    oks: &mut Vec<String>,
) {
    let label = k.label(s.drill_kinds.len());
    // "db" or "db (physical)".
    let who = match label.trim() {
        "" => s.source.clone(),
        l => format!("{} ({l})", s.source),
    };
    let Some(d) = &k.last_drill else {
        fails.push(format!("{who}: no drill has measured it"));
        return;
    };
    if !d.ok {
        fails.push(format!("{who}: the last drill failed"));
        return;
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
            "{who}: RTO {}, RPO {}",
            human(d.rto_seconds),
            human(d.rpo_seconds)
        ));
    } else {
        fails.push(format!(
            "{who}: the last drill missed {}",
            missed.join(" and ")
        ));
    }
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
                "{} ({p}): {} snapshot(s), all within policy",
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
        "Every source has a retention policy and the repository holds nothing it would forget"
            .into(),
        "Automated backups configured (PostgreSQL, ConfigMaps, Secrets): each with its retention (§1.1)",
        fails,
        oks.join(", "),
    )
}

/// The repository's encryption and how close its keys are kept: the
/// cipher (always on: the format has no plaintext mode), the slot that
/// opened it, every slot's MAC, the modes of the secret files the
/// configuration names and, on local storage, of the key slots (the wrapped
/// master key, open to an offline guessing attack when others can read it).
/// Evidence for the security audit, not the audit: that stays the manual
/// item `security-audit`.
fn encrypted(i: &Inputs<'_>) -> Item {
    let e = &i.encryption;
    let mut fails = Vec::new();
    let mut notes = Vec::new();
    match e.slots.iter().find(|s| s.current) {
        Some(c) => notes.push(format!(
            "{} with a random master key; opened with key slot {} ({}) of {}",
            e.cipher,
            &c.id[..c.id.len().min(8)],
            c.kind,
            e.slots.len()
        )),
        None => fails.push(format!(
            "the key slot that opened the repository is not among its {} listed slot(s): run `lifeboat check`",
            e.slots.len()
        )),
    }
    if e.damaged_slots.is_empty() {
        notes.push("every key slot's MAC verifies".into());
    } else {
        fails.push(format!(
            "key slot(s) failing their MAC under the master key: {} (damaged or tampered with: remove them with `lifeboat key remove` and add keys anew)",
            e.damaged_slots.join(", ")
        ));
    }
    let secret_fix = "`chmod 600` it (a Kubernetes Secret volume: `defaultMode: 0400`)";
    let private = judge_files(&e.secret_files, secret_fix, &mut fails, &mut notes);
    if private > 0 {
        notes.push(format!(
            "{private} secret file(s) of the configuration readable by their owner only"
        ));
    }
    match &e.local_key_files {
        None => notes.push("object storage: access to the key slots is the bucket policy's".into()),
        Some(files) => {
            let fix = "`chmod 700` the keys directory and `chmod 600` the files in it";
            if judge_files(files, fix, &mut fails, &mut notes) == files.len() {
                notes.push("local key slots readable by their owner only".into());
            }
        }
    }
    auto(
        "repository-encrypted",
        "The repository is encrypted, opened with a valid key slot, and its secrets are kept close"
            .into(),
        "§1.1 Secrets (API keys, credentials) are backed up: evidence for, not a substitute for, \"Security audit completed\" (the manual item security-audit)",
        fails,
        notes.join("; "),
    )
}

/// Judges files that must be private: exposed, odd or unreadable ones are
/// failures (with `fix`), missing ones a note. Returns how many are private.
fn judge_files(
    files: &[FileEvidence],
    fix: &str,
    fails: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> usize {
    let mut private = 0;
    for f in files {
        match &f.state {
            FileState::Private { .. } => private += 1,
            FileState::Exposed { mode } => fails.push(format!(
                "{} {} is mode {mode:04o}: others on this host can read it; {fix}",
                f.what, f.path
            )),
            FileState::NotAFile => {
                fails.push(format!("{} {} is not a regular file", f.what, f.path))
            }
            FileState::Missing => notes.push(format!(
                "{} {} is not on this host (not judged)",
                f.what, f.path
            )),
            FileState::Unreadable { error } => {
                fails.push(format!("{} {} cannot be examined: {error}", f.what, f.path))
            }
        }
    }
    private
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
        format!(
            "A repository check passed within {} (readiness.check_max_age)",
            human(max)
        ),
        "Continuous monitoring of backup success/failure",
        fails,
        ok,
    )
}

/// Whether a daemon runs the schedules, from the lease it renews in the
/// repository. Named for what it checks: an active daemon serves
/// `/metrics`, but whether Prometheus scrapes it and alerts reach someone
/// Lifeboat cannot see, so that is the manual item `monitoring-alerting`.
fn daemon_active(i: &Inputs<'_>) -> Item {
    let (fails, ok) = match &i.daemon {
        Daemon::Active { holder, age_seconds } => (
            Vec::new(),
            format!(
                "`lifeboat serve` ({holder}) holds the lease, renewed {}s ago: it runs the schedules and serves /metrics",
                age_seconds
            ),
        ),
        Daemon::Stale { holder, age_seconds } => (
            vec![format!(
                "the daemon {holder} has not renewed its lease for {}: schedules and /metrics are down",
                human(*age_seconds as f64)
            )],
            String::new(),
        ),
        Daemon::Absent => (
            vec!["no `lifeboat serve` holds the repository's lease: nothing runs the schedules or serves /metrics (deploy/)".into()],
            String::new(),
        ),
    };
    auto(
        "daemon-active",
        "A daemon runs the schedules (`lifeboat serve` holds the repository's lease)".into(),
        "Continuous monitoring of backup success/failure (the daemon's metrics; scraping and alerts are monitoring-alerting)",
        fails,
        ok,
    )
}

/// What the multi-region items are judged from, gathered now by the caller
/// (`lifeboat_ops::assess`): the servers observed, the provider read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionsEvidence {
    /// The region-failure objective's RPO: the lag a standby may have.
    /// `None` without that objective (lag is then shown, not judged).
    pub lag_objective_seconds: Option<f64>,
    /// Every region the configuration declares a standby, as observed now.
    pub standbys: Vec<StandbyEvidence>,
    /// `None` without a `traffic:` section.
    pub traffic: Option<TrafficEvidence>,
}

/// A declared standby region, observed now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StandbyEvidence {
    pub region: String,
    /// `primary`, `standby` or `unreachable`, as the server says.
    pub observed_role: String,
    /// Its primary lists it `streaming` in `pg_stat_replication`.
    pub streaming: bool,
    pub lag_seconds: Option<f64>,
    pub heartbeat_age_seconds: Option<f64>,
    /// Why it was not reached, when it was not.
    pub reason: Option<String>,
}

/// The steered name: what the provider answers now next to what health
/// says it should answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrafficEvidence {
    /// `rfc2136` or `route53`.
    pub provider: String,
    pub name: String,
    /// The provider could not be built or read: why.
    pub error: Option<String>,
    /// What the name answers now (the provider's records), sorted.
    pub current: Vec<String>,
    /// What health says it should answer, sorted.
    pub desired: Vec<String>,
    /// Per steered region, in the configuration's order.
    pub regions: Vec<RegionTrafficEvidence>,
    /// No region is healthy, so every one is answered (Route 53's rule).
    pub all_unhealthy: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionTrafficEvidence {
    pub region: String,
    pub answer: String,
    /// Health checks configured for it.
    pub checks: usize,
    /// The verdict across fresh vantage points; `None`: no fresh verdict
    /// (nobody checks it now).
    pub healthy: Option<bool>,
    /// Vantage points with a fresh verdict saying unhealthy / all of them.
    pub unhealthy_observers: Vec<String>,
    pub observers: usize,
}

/// Judges `multi-region-replication` and `global-load-balancer` from
/// `ev` (replacing their "not configured"), and `ready` again.
pub fn judge_regions(r: &mut Readiness, ev: &RegionsEvidence) {
    let items = [replication_item(ev), load_balancer_item(ev)];
    for new in items {
        if let Some(it) = r.items.iter_mut().find(|i| i.id == new.id) {
            *it = new;
        }
    }
    r.ready = !r.items.iter().any(|it| it.state == State::Fail);
}

fn multi_region(id: &str) -> (&'static str, &'static str, &'static str) {
    *MULTI_REGION
        .iter()
        .find(|m| m.0 == id)
        .expect("a multi-region item")
}

fn replication_item(ev: &RegionsEvidence) -> Item {
    let (id, title, seed) = multi_region("multi-region-replication");
    let objective = ev.lag_objective_seconds;
    let mut fails = Vec::new();
    let mut oks = Vec::new();
    if ev.standbys.is_empty() {
        fails.push("no region is declared a standby (regions.<r>.postgres.role: standby with replicates_from)".to_string());
    }
    for s in &ev.standbys {
        // The heartbeat's age is what a failover would lose now; without a
        // heartbeat, the replay lag.
        let lag = s.heartbeat_age_seconds.or(s.lag_seconds);
        let lag_text = lag
            .map(|l| format!("{l:.1}s behind"))
            .unwrap_or_else(|| "lag unknown".into());
        if s.observed_role != "standby" {
            fails.push(match &s.reason {
                Some(r) => format!("{}: not reached ({r})", s.region),
                None => format!(
                    "{}: observed {}, not a standby (run `lifeboat region replicate --to {}`)",
                    s.region, s.observed_role, s.region
                ),
            });
        } else if !s.streaming {
            fails.push(format!("{}: a standby, but its primary does not list it streaming in pg_stat_replication ({lag_text}); check its log and `lifeboat region status`", s.region));
        } else {
            match (lag, objective) {
                (Some(l), Some(o)) if l > o => fails.push(format!(
                    "{}: streaming but {lag_text}, over the region-failure RPO of {}",
                    s.region,
                    human(o)
                )),
                (None, Some(_)) => fails.push(format!(
                    "{}: streaming but its lag is unknown (no heartbeat replayed: is a daemon with serve.region running in the primary's region?)",
                    s.region
                )),
                (_, Some(o)) => oks.push(format!("{}: streaming, {lag_text} (objective {})", s.region, human(o))),
                (_, None) => oks.push(format!("{}: streaming, {lag_text} (no region-failure objective: lag not judged)", s.region)),
            }
        }
    }
    auto(id, title.to_string(), seed, fails, oks.join("; "))
}

fn load_balancer_item(ev: &RegionsEvidence) -> Item {
    let (id, title, seed) = multi_region("global-load-balancer");
    let Some(t) = &ev.traffic else {
        return auto(
            id,
            title.to_string(),
            seed,
            vec!["no traffic: section: nothing steers DNS between the regions (docs/regions/traffic.md)".into()],
            String::new(),
        );
    };
    let mut fails = Vec::new();
    if let Some(e) = &t.error {
        fails.push(format!("{} for {}: {e}", t.provider, t.name));
    }
    for r in &t.regions {
        if r.checks == 0 {
            fails.push(format!("{}: no health checks (regions.{}.health_checks): DNS cannot leave it out when it fails", r.region, r.region));
        } else if r.healthy.is_none() && t.provider == "rfc2136" {
            fails.push(format!("{}: no fresh health verdict from any vantage point: is a daemon with serve.region running?", r.region));
        }
    }
    if t.error.is_none() && t.current != t.desired {
        fails.push(format!(
            "{} answers [{}] but health says [{}]{}",
            t.name,
            t.current.join(", "),
            t.desired.join(", "),
            if t.provider == "rfc2136" {
                ": is a daemon with serve.region running the steering loop? (`lifeboat region traffic apply` corrects it once)"
            } else {
                ": run `lifeboat region traffic apply`"
            }
        ));
    }
    let unhealthy: Vec<String> = t
        .regions
        .iter()
        .filter(|r| r.healthy == Some(false))
        .map(|r| {
            format!(
                "{} unhealthy for {} of {} vantage points",
                r.region,
                r.unhealthy_observers.len(),
                r.observers
            )
        })
        .collect();
    let ok = format!(
        "{} ({}) answers [{}] as health says{}{}",
        t.name,
        t.provider,
        t.current.join(", "),
        if unhealthy.is_empty() {
            String::new()
        } else {
            format!("; left out: {}", unhealthy.join(", "))
        },
        if t.all_unhealthy {
            "; no region is healthy, so every region is answered"
        } else {
            ""
        }
    );
    if !fails.is_empty() && !unhealthy.is_empty() {
        fails.push(unhealthy.join(", "));
    }
    auto(id, title.to_string(), seed, fails, ok)
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

    /// A local repository opened with its one passphrase slot, a 0600
    /// password file and 0600 key slots in a 0700 directory.
    fn tight() -> Encryption {
        let f = |what: &str, path: &str, mode: u32| FileEvidence {
            what: what.into(),
            path: path.into(),
            state: FileState::Private { mode },
        };
        Encryption {
            cipher: "AES-256-GCM".into(),
            slots: vec![SlotEvidence {
                id: "1a2b3c4d5e6f".into(),
                kind: "passphrase".into(),
                current: true,
            }],
            damaged_slots: vec![],
            secret_files: vec![f("repository.password", "/etc/lifeboat/pw", 0o600)],
            local_key_files: Some(vec![
                f("the key slot directory", "/r/keys", 0o700),
                f("key slot keys/1a2b3c4d", "/r/keys/1a2b3c4d5e6f", 0o600),
            ]),
        }
    }

    fn run(
        src: SourceInput,
        checks: &[Stored<CheckRecord>],
        daemon: Daemon,
        now: DateTime<Utc>,
    ) -> Readiness {
        run_with(src, checks, daemon, tight(), now)
    }

    fn run_with(
        src: SourceInput,
        checks: &[Stored<CheckRecord>],
        daemon: Daemon,
        encryption: Encryption,
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
            encryption,
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
        // What a machine cannot see stays with a person.
        assert_eq!(state(&r, "monitoring-alerting"), State::Unattested);
        assert_eq!(state(&r, "security-audit"), State::Unattested);
        let enc = item(&r, "repository-encrypted");
        assert_eq!(enc.state, State::Pass);
        assert!(
            enc.detail
                .contains("opened with key slot 1a2b3c4d (passphrase) of 1"),
            "{}",
            enc.detail
        );
        assert!(!enc.seed.starts_with("Security audit"), "{}", enc.seed);
        // The configured periods, not defaults, are in the titles.
        assert!(item(&r, "restore-drills").title.contains("30d 0h"));
        assert!(item(&r, "repository-checked").title.contains("7d 0h"));
    }

    fn item<'a>(r: &'a Readiness, id: &str) -> &'a Item {
        r.items.iter().find(|i| i.id == id).unwrap()
    }

    /// A source backed up by physical base backups on the daemon's
    /// schedule only has a backup schedule; one with neither has none.
    #[test]
    fn a_physical_schedule_is_a_backup_schedule() {
        let now = at(24 * 60);
        let judge = |schedule: Option<&str>, physical: Option<&str>| {
            let mut s = good_source(now, now - TimeDelta::days(2));
            s.schedule = schedule.map(str::to_string);
            s.physical_schedule = physical.map(str::to_string);
            let r = run(s, &[check(true, now - TimeDelta::days(1))], active(), now);
            let it = item(&r, "backups-scheduled").clone();
            (it.state, it.detail)
        };
        let (st, d) = judge(None, Some("30 2 * * *"));
        assert_eq!(st, State::Pass, "{d}");
        assert!(d.contains("db (postgres, -, physical 30 2 * * *)"), "{d}");
        let (st, d) = judge(Some("0 * * * *"), Some("30 2 * * *"));
        assert_eq!(st, State::Pass, "{d}");
        assert!(
            d.contains("db (postgres, 0 * * * *, physical 30 2 * * *)"),
            "{d}"
        );
        let (st, d) = judge(None, None);
        assert_eq!(st, State::Fail);
        assert!(d.contains("db has no schedule"), "{d}");
    }

    /// `repository-encrypted` reads evidence: a key slot or secret file
    /// others can read, a slot failing its MAC, or an opening slot that is
    /// not listed each fail it, naming the file or slot; a secret file that
    /// is not on this host is only noted.
    #[test]
    fn repository_encrypted_fails_on_exposed_keys_and_bad_slots() {
        let now = at(24 * 60);
        let judge = |e: Encryption| {
            let r = run_with(good_source(now, now), &[check(true, now)], active(), e, now);
            let it = item(&r, "repository-encrypted").clone();
            (it.state, it.detail)
        };
        let mut e = tight();
        e.local_key_files.as_mut().unwrap()[1].state = FileState::Exposed { mode: 0o644 };
        let (st, d) = judge(e);
        assert_eq!(st, State::Fail);
        assert!(
            d.contains("key slot keys/1a2b3c4d /r/keys/1a2b3c4d5e6f is mode 0644"),
            "{d}"
        );
        assert!(d.contains("chmod 600"), "{d}");

        let mut e = tight();
        e.local_key_files.as_mut().unwrap()[0].state = FileState::Exposed { mode: 0o755 };
        let (st, d) = judge(e);
        assert_eq!(st, State::Fail);
        assert!(d.contains("/r/keys is mode 0755"), "{d}");

        let mut e = tight();
        e.secret_files[0].state = FileState::Exposed { mode: 0o640 };
        let (st, d) = judge(e);
        assert_eq!(st, State::Fail);
        assert!(
            d.contains("repository.password /etc/lifeboat/pw is mode 0640"),
            "{d}"
        );
        assert!(d.contains("defaultMode: 0400"), "{d}");

        let mut e = tight();
        e.secret_files[0].state = FileState::NotAFile;
        assert_eq!(judge(e).0, State::Fail);

        let mut e = tight();
        e.damaged_slots = vec!["keys/ffff".into()];
        let (st, d) = judge(e);
        assert_eq!(st, State::Fail);
        assert!(d.contains("keys/ffff"), "{d}");

        let mut e = tight();
        e.slots[0].current = false;
        assert_eq!(judge(e).0, State::Fail);

        // Not on this host (a Secret mounted only in the daemon's pod).
        let mut e = tight();
        e.secret_files[0].state = FileState::Missing;
        let (st, d) = judge(e);
        assert_eq!(st, State::Pass);
        assert!(d.contains("is not on this host (not judged)"), "{d}");

        // Object storage: no local files to judge, said so.
        let mut e = tight();
        e.local_key_files = None;
        let (st, d) = judge(e);
        assert_eq!(st, State::Pass);
        assert!(d.contains("bucket policy"), "{d}");
    }

    /// The retention item shows each source's configured policy, whatever
    /// it is: no Kubernaut number is built in.
    #[test]
    fn retention_detail_is_the_configured_policy() {
        let now = at(24 * 60);
        let mut s = good_source(now, now);
        s.name = "orders".into();
        s.retention = Some(RetentionPolicy {
            keep_last: Some(7),
            ..Default::default()
        });
        let r = run(s, &[check(true, now)], active(), now);
        let it = item(&r, "retention");
        assert_eq!(it.state, State::Pass);
        assert!(
            it.detail.starts_with("orders (keep the last 7)"),
            "{}",
            it.detail
        );
        for kubernaut in ["30 days", "90 days", "30d", "90d"] {
            assert!(!it.seed.contains(kubernaut), "{}", it.seed);
            assert!(!it.title.contains(kubernaut), "{}", it.title);
            assert!(!it.detail.contains(kubernaut), "{}", it.detail);
        }
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

    /// A source with physical backups needs a passed physical drill too;
    /// with both, the items name each kind.
    #[test]
    fn a_physical_drill_is_due_where_physical_backups_are() {
        use crate::record::DrillKind::{Logical, Physical};
        use crate::status::tests::physical;
        let now = at(24 * 60);
        let mut src = good_source(now, now);
        src.drill_kinds = vec![Logical, Physical];
        let r = run(src.clone(), &[check(true, now)], active(), now);
        assert_eq!(state(&r, "restore-drills"), State::Fail);
        let d = &item(&r, "restore-drills").detail;
        assert!(
            d.contains(
                "db: no successful physical restore drill (run `lifeboat drill --physical --source db`)"
            ),
            "{d}"
        );
        src.drills.push(physical(drill(true, now, 300.0)));
        let r = run(src.clone(), &[check(true, now)], active(), now);
        assert_eq!(state(&r, "restore-drills"), State::Pass, "{r:?}");
        assert!(
            item(&r, "restore-drills")
                .detail
                .contains("db physical drilled"),
            "{r:?}"
        );
        assert!(
            item(&r, "objectives")
                .detail
                .contains("db (physical): RTO 5m 0s"),
            "{r:?}"
        );
        // Physical backups only: the physical drill alone.
        src.drills.remove(0);
        src.drill_kinds = vec![Physical];
        let r = run(src, &[check(true, now)], active(), now);
        assert_eq!(state(&r, "restore-drills"), State::Pass, "{r:?}");
    }

    #[test]
    fn missing_check_failed_check_and_absent_daemon_fail() {
        let now = at(24 * 60);
        let r = run(good_source(now, now), &[], Daemon::Absent, now);
        assert_eq!(state(&r, "repository-checked"), State::Fail);
        assert_eq!(state(&r, "daemon-active"), State::Fail);
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

    fn standby(role: &str, streaming: bool, hb: Option<f64>) -> StandbyEvidence {
        StandbyEvidence {
            region: "eu-west".into(),
            observed_role: role.into(),
            streaming,
            lag_seconds: Some(0.5),
            heartbeat_age_seconds: hb,
            reason: (role == "unreachable").then(|| "connection refused".to_string()),
        }
    }

    fn traffic(
        current: &[&str],
        desired: &[&str],
        eu: Option<bool>,
        checks: usize,
    ) -> TrafficEvidence {
        TrafficEvidence {
            provider: "rfc2136".into(),
            name: "app.kubernaut.test".into(),
            error: None,
            current: current.iter().map(|s| s.to_string()).collect(),
            desired: desired.iter().map(|s| s.to_string()).collect(),
            regions: vec![
                RegionTrafficEvidence {
                    region: "us-east".into(),
                    answer: "192.0.2.1".into(),
                    checks,
                    healthy: Some(true),
                    unhealthy_observers: vec![],
                    observers: 2,
                },
                RegionTrafficEvidence {
                    region: "eu-west".into(),
                    answer: "198.51.100.1".into(),
                    checks,
                    healthy: eu,
                    unhealthy_observers: if eu == Some(false) {
                        vec!["us-east".into(), "eu-west".into()]
                    } else {
                        vec![]
                    },
                    observers: if eu.is_some() { 2 } else { 0 },
                },
            ],
            all_unhealthy: false,
        }
    }

    #[test]
    fn multi_region_items_pass_only_on_evidence() {
        let now = at(24 * 60);
        let both = ["192.0.2.1", "198.51.100.1"];
        let us = ["192.0.2.1"];
        // (standbys, traffic, replication passes, load balancer passes, detail word)
        type Row = (
            Vec<StandbyEvidence>,
            Option<TrafficEvidence>,
            State,
            State,
            &'static str,
        );
        let table: Vec<Row> = vec![
            (
                vec![standby("standby", true, Some(1.2))],
                Some(traffic(&both, &both, Some(true), 1)),
                State::Pass,
                State::Pass,
                "as health says",
            ),
            // Lag over the 300 s objective.
            (
                vec![standby("standby", true, Some(400.0))],
                Some(traffic(&both, &both, Some(true), 1)),
                State::Fail,
                State::Pass,
                "over the region-failure RPO",
            ),
            // Not streaming, not a standby, not reached, none declared.
            (
                vec![standby("standby", false, Some(1.0))],
                None,
                State::Fail,
                State::Fail,
                "does not list it streaming",
            ),
            (
                vec![standby("primary", false, None)],
                None,
                State::Fail,
                State::Fail,
                "not a standby",
            ),
            (
                vec![standby("unreachable", false, None)],
                None,
                State::Fail,
                State::Fail,
                "not reached",
            ),
            (
                vec![],
                None,
                State::Fail,
                State::Fail,
                "no region is declared a standby",
            ),
            // Streaming, lag unknown (no heartbeat and no replay lag).
            (
                vec![StandbyEvidence {
                    lag_seconds: None,
                    ..standby("standby", true, None)
                }],
                None,
                State::Fail,
                State::Fail,
                "lag is unknown",
            ),
            // DNS left an unhealthy region out, as health says: passes and says so.
            (
                vec![standby("standby", true, Some(1.0))],
                Some(traffic(&us, &us, Some(false), 1)),
                State::Pass,
                State::Pass,
                "left out: eu-west unhealthy for 2 of 2",
            ),
            // DNS still answers an unhealthy region.
            (
                vec![standby("standby", true, Some(1.0))],
                Some(traffic(&both, &us, Some(false), 1)),
                State::Pass,
                State::Fail,
                "but health says",
            ),
            // No fresh verdict, no checks.
            (
                vec![standby("standby", true, Some(1.0))],
                Some(traffic(&both, &both, None, 1)),
                State::Pass,
                State::Fail,
                "no fresh health verdict",
            ),
            (
                vec![standby("standby", true, Some(1.0))],
                Some(traffic(&both, &both, Some(true), 0)),
                State::Pass,
                State::Fail,
                "no health checks",
            ),
        ];
        for (standbys, t, repl, lb, word) in table {
            let mut r = run(
                good_source(now, now - TimeDelta::days(3)),
                &[check(true, now - TimeDelta::days(1))],
                active(),
                now,
            );
            assert_eq!(state(&r, "multi-region-replication"), State::NotConfigured);
            let ev = RegionsEvidence {
                lag_objective_seconds: Some(300.0),
                standbys,
                traffic: t,
            };
            judge_regions(&mut r, &ev);
            assert_eq!(state(&r, "multi-region-replication"), repl, "{ev:?}");
            assert_eq!(state(&r, "global-load-balancer"), lb, "{ev:?}");
            let details: String = r
                .items
                .iter()
                .filter(|i| i.id == "multi-region-replication" || i.id == "global-load-balancer")
                .map(|i| i.detail.clone())
                .collect::<Vec<_>>()
                .join(" | ");
            assert!(details.contains(word), "{word:?} not in {details}");
            assert_eq!(r.ready, !r.items.iter().any(|i| i.state == State::Fail));
            if repl == State::Fail || lb == State::Fail {
                assert!(!r.ready);
            }
        }
        // Error reading the provider fails the item with the provider's words.
        let mut r = run(
            good_source(now, now - TimeDelta::days(3)),
            &[check(true, now - TimeDelta::days(1))],
            active(),
            now,
        );
        let mut t = traffic(&[], &both, Some(true), 1);
        t.error = Some("rfc2136: no answer from 127.0.0.1:53".into());
        judge_regions(
            &mut r,
            &RegionsEvidence {
                lag_objective_seconds: None,
                standbys: vec![standby("standby", true, None)],
                traffic: Some(t),
            },
        );
        assert_eq!(state(&r, "global-load-balancer"), State::Fail);
        assert!(
            item(&r, "global-load-balancer")
                .detail
                .contains("no answer from")
        );
        // Without an objective the lag is shown, not judged.
        assert_eq!(state(&r, "multi-region-replication"), State::Pass);
        assert!(
            item(&r, "multi-region-replication")
                .detail
                .contains("not judged")
        );
    }
}
