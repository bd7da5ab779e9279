//! Gathers the evidence `lifeboat status`, `lifeboat readiness` and the
//! daemon's status page judge: the configuration's sources and objectives,
//! the repository's snapshots, drill and check records, and the daemon's
//! lease, and for `repository-encrypted` the key slots and the modes of the
//! secret and key files on this host. The judging itself is
//! `lifeboat_dr::{status, readiness}`. Called by `lifeboat status`,
//! `lifeboat readiness` and the daemon's API and status page.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};
use lifeboat_dr::objectives::Objective;
use lifeboat_dr::readiness::{
    self, Attestation, Daemon, Encryption, FileEvidence, FileState, Readiness, SlotEvidence,
};
use lifeboat_dr::record::{self, CheckRecord, Stored};
use lifeboat_dr::status::{self, Policy, SnapshotInfo, SourceInput, Status};
use lifeboat_repo::Repository;
use serde::Serialize;

pub mod regions;

use crate::config::{Config, SecretRef};
use crate::error::Result;
use crate::lease;

/// Everything the verdicts were drawn from, and the verdicts.
#[derive(Debug, Clone, Serialize)]
pub struct Assessment {
    pub status: Status,
    pub readiness: Readiness,
    /// Per source, its snapshots (oldest first) for charts.
    #[serde(skip)]
    pub sources: Vec<SourceInput>,
}

pub fn policy(cfg: &Config) -> Policy {
    let d = Policy::default();
    let r = cfg.readiness.clone().unwrap_or_default();
    Policy {
        drill_max_age: r.drill_max_age.unwrap_or(d.drill_max_age),
        check_max_age: r.check_max_age.unwrap_or(d.check_max_age),
    }
}

/// The configured objectives as `lifeboat-dr` judges them
/// ([`Config::dr_objectives`]).
pub fn objectives(cfg: &Config) -> Vec<Objective> {
    cfg.dr_objectives()
}

/// The kinds of drill `name` must pass ([`lifeboat_dr::kinds::expected`]).
fn drill_kinds(
    cfg: &Config,
    name: &str,
    s: &crate::config::SourceConfig,
    snaps: &[lifeboat_repo::snapshot::SnapshotRef],
) -> Vec<lifeboat_dr::record::DrillKind> {
    let mine = || snaps.iter().filter(|x| x.snapshot.source == name);
    let physical =
        |x: &lifeboat_repo::snapshot::SnapshotRef| x.snapshot.kind == lifeboat_repo::physical::KIND;
    lifeboat_dr::kinds::expected(&lifeboat_dr::kinds::DrillEvidence {
        configured: s.drill.as_ref().and_then(|d| d.kinds.clone()),
        logical_snapshots: mine().any(|x| !physical(x)),
        physical_snapshots: mine().any(physical),
        wal_streaming: cfg
            .wal
            .as_ref()
            .is_some_and(|w| w.streaming.contains_key(name)),
        logical_schedule: s.schedule.is_some(),
        physical_schedule: s.physical.is_some(),
    })
}

/// Reads the evidence from the repository and judges it at `now`.
pub async fn gather(cfg: &Config, repo: &Repository, now: DateTime<Utc>) -> Result<Assessment> {
    let snaps = repo.snapshots().await?;
    let drills = record::drills(repo).await?;
    let checks: Vec<Stored<CheckRecord>> = record::checks(repo).await?;
    let sources: Vec<SourceInput> = cfg
        .sources
        .iter()
        .map(|(name, s)| SourceInput {
            name: name.clone(),
            kind: s.kind.to_string(),
            schedule: s.schedule.as_ref().map(|c| c.as_str().to_string()),
            physical_schedule: s.physical.as_ref().map(|p| p.schedule.as_str().to_string()),
            drill_schedule: s
                .drill
                .as_ref()
                .and_then(|d| d.schedule.as_ref())
                .map(|c| c.as_str().to_string()),
            covers: s.covers.clone(),
            retention: s.retention.clone(),
            snapshots: snaps
                .iter()
                .filter(|x| &x.snapshot.source == name)
                .map(|x| SnapshotInfo {
                    id: x.id.clone(),
                    time: x.snapshot.time,
                    bytes_read: x.snapshot.stats.bytes_read,
                    bytes_stored: x.snapshot.stats.bytes_stored,
                    duration_seconds: x.snapshot.stats.duration_seconds,
                    scope: x.snapshot.scope().key(),
                    physical: x.snapshot.kind == lifeboat_repo::physical::KIND,
                })
                .collect(),
            drills: drills
                .iter()
                .filter(|d| &d.record.source == name)
                .cloned()
                .collect(),
            drill_kinds: drill_kinds(cfg, name, s, &snaps),
        })
        .collect();
    let objectives = objectives(cfg);
    let policy = policy(cfg);
    let mut st = status::evaluate(&sources, &objectives, &policy, now);
    // The WAL archive: newest segment, its age, gaps (one listing).
    match crate::wal::check::archive(repo, now).await {
        Ok(Some(a)) => st = status::with_wal(st, a.overview),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cannot list the WAL archive for the status"),
    }
    let daemon = daemon_state(repo, now).await;
    let encryption = encryption(cfg, repo).await?;
    let attestations = cfg.readiness.clone().unwrap_or_default().attestations;
    let attest = move |id: &str| {
        attestations.get(id).map(|a| Attestation {
            by: a.by.clone(),
            date: a.date,
            note: a.note.clone(),
        })
    };
    let mut ready = readiness::evaluate(&readiness::Inputs {
        sources: &sources,
        status: &st,
        checks: &checks,
        daemon,
        encryption,
        attestation: &attest,
        policy,
        now,
    });
    if !cfg.regions().is_empty() {
        let ctx = crate::context::Ctx::with_config(
            crate::context::Options::default(),
            std::sync::Arc::new(crate::report::Log),
            Some(cfg.clone()),
        );
        let round = crate::daemon::regions::watch::observe_all(&ctx, cfg).await;
        let ev = regions_evidence(&ctx, cfg, repo, &round, now).await;
        readiness::judge_regions(&mut ready, &ev);
        let overview = regions::gather(&ctx, cfg, &round).await;
        st = status::with_regions(st, overview);
    }
    if cfg.failover.is_some() {
        // failover-tests: the newest rehearsal in etcd (docs/failover.md).
        let ctx = crate::context::Ctx::with_config(
            crate::context::Options::default(),
            std::sync::Arc::new(crate::report::Log),
            Some(cfg.clone()),
        );
        crate::region::failover::rehearse::judge(&mut ready, &ctx, cfg, now).await;
        crate::region::failover::rehearse::annotate_status(&mut st, &ctx, cfg).await;
    }
    Ok(Assessment {
        status: st,
        readiness: ready,
        sources,
    })
}

/// The multi-region items' evidence from `round` (every region observed
/// once, shared with the status's overview): every declared standby's server (role, streaming,
/// lag, heartbeat age), and the steered name as the provider answers it
/// next to what the published health verdicts say it should answer (with
/// `route53`: the records and checks Route 53 holds against the
/// configuration, and its answers by its own checkers).
/// Bounded by the connect timeouts and the provider's retries.
async fn regions_evidence(
    ctx: &crate::context::Ctx,
    cfg: &Config,
    repo: &Repository,
    round: &crate::daemon::regions::watch::Round,
    now: DateTime<Utc>,
) -> readiness::RegionsEvidence {
    use lifeboat_region::replication::Role;
    use lifeboat_region::topology::DeclaredRole;
    let points = round.standbys();
    let standbys = cfg
        .regions_in_file_order()
        .into_iter()
        .filter(|(_, r)| r.postgres.role() == DeclaredRole::Standby)
        .map(|(name, _)| {
            let p = points.iter().find(|p| p.region == name);
            let (role, reason) = match round.role(name) {
                Some(Role::Primary) => ("primary", None),
                Some(Role::Standby) => ("standby", None),
                Some(Role::Unreachable { reason, .. }) => ("unreachable", Some(reason.clone())),
                None => ("unreachable", Some("not observed".to_string())),
            };
            readiness::StandbyEvidence {
                region: name.to_string(),
                observed_role: role.to_string(),
                streaming: p.is_some_and(|p| p.streaming),
                lag_seconds: p.and_then(|p| p.lag_seconds),
                heartbeat_age_seconds: p.and_then(|p| p.heartbeat_age_seconds),
                reason,
            }
        })
        .collect();
    let traffic = match &cfg.traffic {
        None => None,
        // Route 53 answers by its own checkers: the evidence is the zone
        // holding every configured record and check (docs/regions/route53.md).
        Some(t) if t.provider() == lifeboat_region::topology::Provider::Route53 => {
            Some(crate::region::route53::evidence(cfg).await)
        }
        Some(t) => {
            let published = crate::region::verdicts::read_all(repo)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "cannot read the published health verdicts");
                    Vec::new()
                });
            let names: Vec<String> = cfg
                .regions_in_file_order()
                .into_iter()
                .map(|(n, _)| n.to_string())
                .collect();
            let max_age = crate::region::traffic::max_view_age(cfg);
            let (verdicts, by_region) =
                crate::region::verdicts::steering(&published, &names, now, max_age);
            let answers = crate::region::traffic::region_answers(cfg);
            let desired = lifeboat_region::traffic::desired_answer_set(&answers, &verdicts);
            let (current, error) = match crate::region::traffic::provider(ctx, cfg).await {
                Ok(p) => match p.current().await {
                    Ok(c) => (c, None),
                    Err(e) => (Default::default(), Some(e.to_string())),
                },
                Err(e) => (Default::default(), Some(e.to_string())),
            };
            let text = |set: &lifeboat_region::traffic::AnswerSet| {
                set.iter().map(ToString::to_string).collect::<Vec<_>>()
            };
            Some(readiness::TrafficEvidence {
                provider: t.provider().to_string(),
                name: t.name().normalized(),
                error,
                current: text(&current),
                desired: text(&desired.answers),
                regions: answers
                    .iter()
                    .map(|a| {
                        let consensus = by_region.get(&a.region);
                        readiness::RegionTrafficEvidence {
                            region: a.region.clone(),
                            answer: a.answer.to_string(),
                            checks: cfg
                                .regions()
                                .get(&a.region)
                                .map_or(0, |r| r.health_checks.len()),
                            healthy: verdicts.get(&a.region).copied(),
                            unhealthy_observers: consensus
                                .map(|c| c.unhealthy_observers.clone())
                                .unwrap_or_default(),
                            observers: consensus.map_or(0, |c| {
                                c.healthy_observers.len() + c.unhealthy_observers.len()
                            }),
                        }
                    })
                    .collect(),
                all_unhealthy: desired.all_unhealthy,
            })
        }
    };
    readiness::RegionsEvidence {
        lag_objective_seconds: cfg
            .lag_objective()
            .map(|t| t.num_milliseconds() as f64 / 1000.0),
        standbys,
        traffic,
    }
}

/// Whether a daemon holds the repository's lease: renewed (the object
/// rewritten) within the lease's duration, judged at `now`.
async fn daemon_state(repo: &Repository, now: DateTime<Utc>) -> Daemon {
    let (Ok(Some(doc)), Ok(info)) = (
        lease::read(repo).await,
        repo.storage().head(lease::LEASE_KEY).await,
    ) else {
        return Daemon::Absent;
    };
    let age = (now - info.last_modified).max(TimeDelta::zero());
    if age.num_seconds() <= doc.duration_seconds as i64 {
        Daemon::Active {
            holder: doc.holder,
            age_seconds: age.num_seconds(),
        }
    } else {
        Daemon::Stale {
            holder: doc.holder,
            age_seconds: age.num_seconds(),
        }
    }
}

/// The evidence behind `repository-encrypted`: the key slots (which one
/// opened the repository, whose MAC verifies), the configuration's secret
/// files and, on local storage, the key slot files.
async fn encryption(cfg: &Config, repo: &Repository) -> Result<Encryption> {
    let slots = repo
        .list_keys()
        .await?
        .into_iter()
        .map(|k| SlotEvidence {
            id: k.id,
            kind: k.kind,
            current: k.current,
        })
        .collect();
    let damaged_slots = match repo.verify_key_slots().await {
        Ok(bad) => bad,
        Err(e) => vec![format!("(the slots could not be verified: {e})")],
    };
    let local_key_files = repo
        .location()
        .strip_prefix("file://")
        .map(|root| local_key_files(Path::new(root)));
    Ok(Encryption {
        // The format's only cipher (docs/format.md): there is no plaintext mode.
        cipher: "AES-256-GCM".into(),
        slots,
        damaged_slots,
        secret_files: secret_files(cfg),
        local_key_files,
    })
}

/// Every file the configuration names as a secret, with its mode here.
fn secret_files(cfg: &Config) -> Vec<FileEvidence> {
    let mut named: Vec<(String, std::path::PathBuf)> = Vec::new();
    let mut add = |what: String, r: &Option<SecretRef>| {
        if let Some(SecretRef::File(p)) = r {
            named.push((what, p.clone()));
        }
    };
    let repo = &cfg.repository;
    add("repository.password".into(), &repo.password);
    if let Some(s3) = &repo.s3 {
        add("repository.s3.access_key_id".into(), &s3.access_key_id);
        add(
            "repository.s3.secret_access_key".into(),
            &s3.secret_access_key,
        );
    }
    if let Some(serve) = &cfg.serve {
        add("serve.token".into(), &serve.token);
    }
    for (name, s) in &cfg.sources {
        if let Some(pg) = &s.postgres {
            add(format!("sources.{name}.postgres.password"), &pg.password);
        }
        if let Some(scratch) = s.drill.as_ref().and_then(|d| d.scratch.as_ref()) {
            add(
                format!("sources.{name}.drill.scratch.password"),
                &scratch.password,
            );
        }
    }
    if let Some(k) = &repo.key_file {
        named.push(("repository.key_file".into(), k.clone()));
    }
    named
        .into_iter()
        .map(|(what, path)| FileEvidence {
            what,
            path: path.display().to_string(),
            state: file_state(&path, true),
        })
        .collect()
}

/// A local repository's `keys/` directory and its key slot files: each
/// holds the master key wrapped by a passphrase, which anyone who can read
/// it may try to guess offline.
fn local_key_files(root: &Path) -> Vec<FileEvidence> {
    let dir = root.join("keys");
    let mut out = vec![FileEvidence {
        what: "the key slot directory".into(),
        path: dir.display().to_string(),
        state: file_state(&dir, false),
    }];
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push(FileEvidence {
                what: format!("key slot keys/{}", &name[..name.len().min(8)]),
                path: p.display().to_string(),
                state: file_state(&p, true),
            });
        }
    }
    out
}

/// The mode of `path` (symbolic links followed, as a Kubernetes Secret
/// volume's are): private when neither group nor others have any bit.
fn file_state(path: &Path, regular: bool) -> FileState {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileState::Missing,
        Err(e) => FileState::Unreadable {
            error: e.to_string(),
        },
        Ok(m) if regular && !m.is_file() => FileState::NotAFile,
        Ok(m) if !regular && !m.is_dir() => FileState::NotAFile,
        Ok(m) => {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o077 == 0 {
                FileState::Private { mode }
            } else {
                FileState::Exposed { mode }
            }
        }
    }
}
