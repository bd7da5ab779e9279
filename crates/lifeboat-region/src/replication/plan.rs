//! The replication plan: a pure function from what the primary, the target
//! data directory and the standby's URL say to the steps to run, or a refusal.
//!
//! Safety is decided by what the servers say, never by how their URLs are
//! spelled: the standby's URL "is the primary" when the server it reaches has
//! the primary's system identifier **and** postmaster start time
//! ([`Identity::same_server`]); the target data directory "is the primary's"
//! when a postmaster runs on it with the primary's system identifier, port and
//! start time (to the second, as `postmaster.pid` records it). Both are refused
//! even with `--replace`, and so is a server answering at the standby's URL
//! that cannot be identified while nothing runs on the target directory. A directory holding anything else than nothing, or
//! than a running standby of this primary, is refused unless `--replace`.

use serde::Serialize;

use super::observe::{Identity, Observed, Role, SystemId};
use super::target::{ClusterDir, TargetDir};

/// One step of seeding a standby, in execution order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Stop the server running on the target data directory.
    StopTarget,
    /// Remove everything inside the target data directory (the directory stays).
    ClearTarget,
    /// `CREATE ROLE ... REPLICATION LOGIN` (or `ALTER ROLE`) on the primary.
    CreateRole,
    /// `pg_create_physical_replication_slot` on the primary (kept when present).
    CreateSlot,
    /// `pg_basebackup -X stream -S <slot>` straight into the data directory.
    BaseBackup,
    /// `standby.signal`, `primary_conninfo`, `primary_slot_name`, the target's settings.
    WriteStandbyConfig,
    /// Start the standby's server.
    StartTarget,
    /// Wait for `streaming` in `pg_stat_replication` and a fresh heartbeat replayed.
    WaitStreaming,
}

impl Step {
    /// A short present-tense description for progress lines.
    pub fn describe(self) -> &'static str {
        match self {
            Step::StopTarget => "stopping the server on the target data directory",
            Step::ClearTarget => "removing the target data directory's contents",
            Step::CreateRole => "creating the replication role on the primary",
            Step::CreateSlot => "creating the physical replication slot on the primary",
            Step::BaseBackup => "seeding the standby with pg_basebackup",
            Step::WriteStandbyConfig => "writing standby.signal and the standby's settings",
            Step::StartTarget => "starting the standby",
            Step::WaitStreaming => "waiting until the standby streams and replays a heartbeat",
        }
    }
}

/// The replication slot as the primary has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SlotFacts {
    pub physical: bool,
    pub active: bool,
}

/// What the primary says that the plan needs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PrimaryFacts {
    pub observed: Observed,
    pub wal_level: String,
    pub max_wal_senders: i64,
    /// WAL senders running now (`pg_stat_replication` rows).
    pub wal_senders_in_use: i64,
    pub max_replication_slots: i64,
    pub slots_in_use: i64,
    /// The name of the slot this standby uses ([`slot_name`]).
    pub slot_name: String,
    /// That slot, when it exists.
    pub slot: Option<SlotFacts>,
}

/// The plan's input.
#[derive(Clone, Debug)]
pub struct PlanInput<'a> {
    pub primary: &'a PrimaryFacts,
    pub target_dir: &'a TargetDir,
    /// The server the standby's URL reaches now (usually unreachable before seeding).
    pub target_server: &'a Observed,
    pub replace: bool,
}

/// The plan: steps to run, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// The target already is a running standby of this primary (nothing to seed).
    pub already_standby: bool,
}

/// Why replication is not set up. Messages say what to do next.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Refusal {
    #[error(
        "the source server is not a primary ({role}); replicate from the region whose server accepts writes"
    )]
    SourceNotPrimary { role: String },
    #[error(
        "the primary has wal_level={wal_level}; streaming replication needs wal_level=replica (or logical): \
         set it in postgresql.conf and restart the primary"
    )]
    WalLevel { wal_level: String },
    #[error(
        "the primary has max_wal_senders={max} with {in_use} in use; seeding needs 2 more (pg_basebackup's \
         backup and WAL streams) and the standby 1: raise max_wal_senders and restart the primary"
    )]
    WalSenders { max: i64, in_use: i64 },
    #[error(
        "the primary has max_replication_slots={max}, all in use; raise it and restart the primary, or drop \
         an unused slot"
    )]
    ReplicationSlots { max: i64 },
    #[error(
        "the replication slot {slot} on the primary is not a physical slot; drop it or choose another standby name"
    )]
    SlotNotPhysical { slot: String },
    #[error(
        "the replication slot {slot} on the primary is in use by another connection (another standby under \
         the same name?); stop that standby or drop the slot first"
    )]
    SlotActive { slot: String },
    #[error(
        "the standby's URL reaches the primary itself (same system identifier {system_identifier} and the same \
         postmaster start time): fix the standby's URL; --replace does not override this"
    )]
    TargetIsPrimary { system_identifier: SystemId },
    #[error(
        "the target data directory is the primary's own (a postmaster with the primary's system identifier, \
         port and start time runs on it): fix the standby's pgdata; --replace does not override this"
    )]
    TargetDirIsPrimary,
    #[error(
        "the standby's URL reaches a running server (system identifier {reached}) that is not the one in the \
         target data directory ({dir}): another server uses that address or the URL is wrong; fix it first"
    )]
    UrlReachesOtherServer { reached: SystemId, dir: String },
    #[error(
        "a server answers at the standby's URL but cannot be identified ({reason}), and no server of the \
         target data directory runs: it may be the primary or another server on that address. Fix the \
         standby's URL or credentials, or stop that server; --replace does not override this"
    )]
    UrlAnswersUnidentified { reason: String },
    #[error(
        "the target data directory holds another cluster (system identifier {target}, the primary's is \
         {primary}); nothing was changed. Rerun with --replace to delete it and seed a standby there"
    )]
    DifferentCluster { target: SystemId, primary: SystemId },
    #[error(
        "the target data directory holds {entries} entries but no PostgreSQL cluster; nothing was changed. \
         Rerun with --replace to delete them, or choose an empty directory"
    )]
    NotACluster { entries: usize },
    #[error(
        "the target data directory holds a cluster whose control file could not be read; nothing was changed. \
         Rerun with --replace to delete it"
    )]
    UnreadableCluster,
    #[error(
        "the target data directory holds a copy of the primary's cluster that is not a running standby of it \
         ({state}); it may hold writes the primary lacks (a former primary). Nothing was changed. Rerun with \
         --replace to delete it and seed afresh"
    )]
    StaleCopy { state: String },
}

const SEED: [Step; 6] = [
    Step::CreateRole,
    Step::CreateSlot,
    Step::BaseBackup,
    Step::WriteStandbyConfig,
    Step::StartTarget,
    Step::WaitStreaming,
];

fn seed(prefix: &[Step]) -> Plan {
    Plan {
        steps: prefix.iter().chain(SEED.iter()).copied().collect(),
        already_standby: false,
    }
}

const START_TOLERANCE_SECS: i64 = 5;

/// Whether a postmaster on the directory is the primary's (see module docs).
fn dir_runs_primary(dir: &ClusterDir, primary: &Identity) -> bool {
    let Some(pm) = &dir.postmaster else {
        return false;
    };
    dir.system_identifier == Some(primary.system_identifier)
        // postmaster.pid's start time (whole seconds) and pg_postmaster_start_time()
        // are taken a moment apart during startup: allow a few seconds.
        && (pm.start_epoch - primary.postmaster_start.timestamp()).abs() <= START_TOLERANCE_SECS
        && match (pm.port, primary.port) {
            (Some(a), Some(b)) => i32::from(a) == b,
            _ => true,
        }
}

/// The plan for `input` (see the module docs for the rules).
pub fn plan(input: &PlanInput<'_>) -> Result<Plan, Refusal> {
    let p = input.primary;
    let identity = match (&p.observed.role, &p.observed.identity) {
        (Role::Primary, Some(id)) => id,
        (role, _) => {
            return Err(Refusal::SourceNotPrimary {
                role: match role {
                    Role::Primary => "no identity read".into(),
                    Role::Standby => "it is in recovery: a standby".into(),
                    Role::Unreachable { reason, .. } => format!("unreachable: {reason}"),
                },
            });
        }
    };
    let reached = input.target_server.identity.as_ref();
    if let Some(t) = reached
        && t.same_server(identity)
    {
        return Err(Refusal::TargetIsPrimary {
            system_identifier: t.system_identifier,
        });
    }
    if let TargetDir::Cluster(dir) = input.target_dir
        && dir_runs_primary(dir, identity)
    {
        return Err(Refusal::TargetDirIsPrimary);
    }

    // Something answers at the standby's address but could not be identified:
    // acceptable only when it is the server running on the target directory.
    let unidentified = match &input.target_server.role {
        Role::Unreachable {
            reason,
            answered: true,
        } => Some(reason.clone()),
        _ => None,
    };
    let dir_has_postmaster = matches!(input.target_dir, TargetDir::Cluster(d) if d.postmaster.as_ref().is_some_and(|p| p.alive));
    if let Some(reason) = unidentified
        && !dir_has_postmaster
    {
        return Err(Refusal::UrlAnswersUnidentified { reason });
    }

    let mut prefix: Vec<Step> = Vec::new();
    let mut already = false;
    // The target is a running standby of this primary that streams through
    // our slot: the slot being active is then its doing.
    let mut slot_used_by_target = false;
    match input.target_dir {
        TargetDir::Missing | TargetDir::Empty => {
            if let Some(t) = reached {
                return Err(Refusal::UrlReachesOtherServer {
                    reached: t.system_identifier,
                    dir: "empty".into(),
                });
            }
        }
        TargetDir::NotACluster { entries } => {
            if let Some(t) = reached {
                return Err(Refusal::UrlReachesOtherServer {
                    reached: t.system_identifier,
                    dir: "no cluster".into(),
                });
            }
            if !input.replace {
                return Err(Refusal::NotACluster { entries: *entries });
            }
            prefix.push(Step::ClearTarget);
        }
        TargetDir::Cluster(dir) => {
            let pid_alive = dir.postmaster.as_ref().is_some_and(|pm| pm.alive);
            // A postmaster in another PID namespace (a sidecar) is not visible
            // as a process; the URL reaching this cluster shows it runs.
            let url_on_dir =
                reached.is_some_and(|t| Some(t.system_identifier) == dir.system_identifier);
            if let Some(t) = reached
                && !url_on_dir
            {
                return Err(Refusal::UrlReachesOtherServer {
                    reached: t.system_identifier,
                    dir: dir
                        .system_identifier
                        .map(|s| format!("system identifier {s}"))
                        .unwrap_or_else(|| "unreadable".into()),
                });
            }
            let running = pid_alive || (dir.postmaster.is_some() && url_on_dir);
            let running_standby = url_on_dir && input.target_server.role == Role::Standby;
            slot_used_by_target = running_standby
                && dir.system_identifier == Some(identity.system_identifier)
                && input
                    .target_server
                    .standby
                    .as_ref()
                    .and_then(|v| v.wal_receiver.as_ref())
                    .and_then(|w| w.slot_name.as_deref())
                    == Some(p.slot_name.as_str());
            let refusal = match dir.system_identifier {
                None => Some(Refusal::UnreadableCluster),
                Some(s) if s != identity.system_identifier => Some(Refusal::DifferentCluster {
                    target: s,
                    primary: identity.system_identifier,
                }),
                Some(_) if running_standby && !input.replace => {
                    already = true;
                    None
                }
                Some(_) => Some(Refusal::StaleCopy {
                    state: match (running, &dir.state) {
                        (true, _) if reached.is_some() => "running, not in recovery".into(),
                        (true, _) => "running, not reachable at the standby's URL".into(),
                        (false, Some(s)) => format!("stopped, {s}"),
                        (false, None) => "stopped".into(),
                    },
                }),
            };
            if let Some(r) = refusal {
                if !input.replace {
                    return Err(r);
                }
                if running {
                    prefix.push(Step::StopTarget);
                }
                prefix.push(Step::ClearTarget);
            }
        }
    }

    if !matches!(p.wal_level.as_str(), "replica" | "logical") {
        return Err(Refusal::WalLevel {
            wal_level: p.wal_level.clone(),
        });
    }
    let slot_name = p.slot_name.clone();
    if let Some(slot) = p.slot {
        if !slot.physical {
            return Err(Refusal::SlotNotPhysical { slot: slot_name });
        }
        if slot.active && !slot_used_by_target {
            return Err(Refusal::SlotActive { slot: slot_name });
        }
    }
    if already {
        return Ok(Plan {
            steps: vec![Step::WaitStreaming],
            already_standby: true,
        });
    }
    if p.max_wal_senders - p.wal_senders_in_use < 2 {
        return Err(Refusal::WalSenders {
            max: p.max_wal_senders,
            in_use: p.wal_senders_in_use,
        });
    }
    if p.slot.is_none() && p.slots_in_use >= p.max_replication_slots {
        return Err(Refusal::ReplicationSlots {
            max: p.max_replication_slots,
        });
    }
    Ok(seed(&prefix))
}

/// The slot name for a standby: `lifeboat_` and the name in lower case with
/// every character outside `[a-z0-9_]` as `_`, at most 63 bytes (PostgreSQL's
/// limit for slot names).
pub fn slot_name(standby: &str) -> String {
    let mut s: String = std::iter::once("lifeboat_".to_string())
        .chain(standby.chars().map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c.to_string()
            } else {
                "_".to_string()
            }
        }))
        .collect();
    s.truncate(63);
    s
}

#[cfg(test)]
mod tests {
    use super::super::observe::{PrimaryView, StandbyView};
    use super::super::target::PostmasterPid;
    use super::*;
    use chrono::{DateTime, Utc};

    const SYS: SystemId = SystemId(7_000_000_000_000_000_001);
    const OTHER: SystemId = SystemId(7_000_000_000_000_000_002);

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 123_456_000).unwrap()
    }

    fn ident(sys: SystemId, start: i64, port: i32) -> Identity {
        Identity {
            system_identifier: sys,
            postmaster_start: t(start),
            port: Some(port),
            server_version_num: 150000,
            timeline: Some(1),
        }
    }

    fn observed(role: Role, id: Option<Identity>) -> Observed {
        Observed {
            server: "x".into(),
            primary: (role == Role::Primary).then(|| PrimaryView {
                current_lsn: super::super::lsn::Lsn(100),
                replicas: vec![],
            }),
            standby: (role == Role::Standby).then_some(StandbyView {
                receive_lsn: None,
                replay_lsn: None,
                last_replay_at: None,
                replay_paused: false,
                wal_receiver: None,
            }),
            role,
            identity: id,
            at: Some(t(100)),
        }
    }

    fn unreachable() -> Observed {
        observed(
            Role::Unreachable {
                reason: "connection refused".into(),
                answered: false,
            },
            None,
        )
    }

    fn answered_unidentified() -> Observed {
        observed(
            Role::Unreachable {
                reason: "authentication failed".into(),
                answered: true,
            },
            None,
        )
    }

    fn primary() -> PrimaryFacts {
        PrimaryFacts {
            observed: observed(Role::Primary, Some(ident(SYS, 0, 5432))),
            wal_level: "replica".into(),
            max_wal_senders: 10,
            wal_senders_in_use: 0,
            max_replication_slots: 10,
            slots_in_use: 0,
            slot_name: "lifeboat_eu_west".into(),
            slot: None,
        }
    }

    fn cluster(sys: Option<SystemId>, pm: Option<(i64, u16, bool)>, state: &str) -> TargetDir {
        TargetDir::Cluster(ClusterDir {
            system_identifier: sys,
            state: Some(state.into()),
            standby_signal: false,
            postmaster: pm.map(|(start, port, alive)| PostmasterPid {
                pid: 99,
                start_epoch: t(start).timestamp(),
                port: Some(port),
                status: Some("ready".into()),
                alive,
            }),
        })
    }

    const FULL: [Step; 6] = SEED;

    /// what, target directory, what the standby's URL reaches, --replace, expected.
    type PlanCase = (
        &'static str,
        TargetDir,
        Observed,
        bool,
        Result<Plan, Refusal>,
    );
    /// what, change to the primary's facts, expected.
    type PrimaryCase = (&'static str, fn(&mut PrimaryFacts), Result<(), Refusal>);

    fn steps(prefix: &[Step]) -> Result<Plan, Refusal> {
        Ok(seed(prefix))
    }

    #[test]
    fn plan_table() {
        use Step::*;
        let p = primary();
        let standby_at_5433 = observed(Role::Standby, Some(ident(SYS, 50, 5433)));
        let mut our_standby = standby_at_5433.clone();
        our_standby.standby = Some(StandbyView {
            receive_lsn: None,
            replay_lsn: None,
            last_replay_at: None,
            replay_paused: false,
            wal_receiver: Some(super::super::observe::WalReceiver {
                status: "streaming".into(),
                received_tli: Some(1),
                flushed_lsn: None,
                latest_end_lsn: None,
                last_msg_receipt: None,
                sender_host: None,
                sender_port: None,
                slot_name: Some("lifeboat_eu_west".into()),
            }),
        });
        let other_primary = observed(Role::Primary, Some(ident(OTHER, 50, 5433)));
        let copy_primary = observed(Role::Primary, Some(ident(SYS, 50, 5433)));
        let the_primary = observed(Role::Primary, Some(ident(SYS, 0, 5432)));
        let cases: Vec<PlanCase> = vec![
            (
                "missing dir: seed",
                TargetDir::Missing,
                unreachable(),
                false,
                Ok(seed(&[])),
            ),
            (
                "empty dir: seed",
                TargetDir::Empty,
                unreachable(),
                false,
                Ok(seed(&[])),
            ),
            (
                "standby URL reaches the primary (another spelling): refused",
                TargetDir::Empty,
                the_primary.clone(),
                false,
                Err(Refusal::TargetIsPrimary {
                    system_identifier: SYS,
                }),
            ),
            (
                "... and --replace does not override it",
                cluster(Some(SYS), Some((0, 5432, true)), "in production"),
                the_primary.clone(),
                true,
                Err(Refusal::TargetIsPrimary {
                    system_identifier: SYS,
                }),
            ),
            (
                "target dir is the primary's running data directory, URL elsewhere: refused even with --replace",
                cluster(Some(SYS), Some((0, 5432, true)), "in production"),
                unreachable(),
                true,
                Err(Refusal::TargetDirIsPrimary),
            ),
            (
                "empty dir but the URL reaches some server: refused",
                TargetDir::Empty,
                other_primary.clone(),
                true,
                Err(Refusal::UrlReachesOtherServer {
                    reached: OTHER,
                    dir: "empty".into(),
                }),
            ),
            (
                "empty dir, something answers at the URL but cannot be identified: refused",
                TargetDir::Empty,
                answered_unidentified(),
                true,
                Err(Refusal::UrlAnswersUnidentified {
                    reason: "authentication failed".into(),
                }),
            ),
            (
                "stopped cluster, something unidentified answers: refused",
                cluster(Some(OTHER), None, "shut down"),
                answered_unidentified(),
                true,
                Err(Refusal::UrlAnswersUnidentified {
                    reason: "authentication failed".into(),
                }),
            ),
            (
                "running other cluster with other credentials: --replace stops it",
                cluster(Some(OTHER), Some((50, 5433, true)), "in production"),
                answered_unidentified(),
                true,
                steps(&[StopTarget, ClearTarget]),
            ),
            (
                "foreign files: refused",
                TargetDir::NotACluster { entries: 3 },
                unreachable(),
                false,
                Err(Refusal::NotACluster { entries: 3 }),
            ),
            (
                "foreign files with --replace: cleared, seeded",
                TargetDir::NotACluster { entries: 3 },
                unreachable(),
                true,
                steps(&[ClearTarget]),
            ),
            (
                "another cluster, stopped: refused",
                cluster(Some(OTHER), None, "shut down"),
                unreachable(),
                false,
                Err(Refusal::DifferentCluster {
                    target: OTHER,
                    primary: SYS,
                }),
            ),
            (
                "another cluster, stopped, --replace: cleared, seeded",
                cluster(Some(OTHER), None, "shut down"),
                unreachable(),
                true,
                steps(&[ClearTarget]),
            ),
            (
                "another cluster, running, --replace: stopped, cleared, seeded",
                cluster(Some(OTHER), Some((50, 5433, true)), "in production"),
                other_primary.clone(),
                true,
                steps(&[StopTarget, ClearTarget]),
            ),
            (
                "another cluster, running elsewhere (sidecar: pid not visible), URL shows it: stopped",
                cluster(Some(OTHER), Some((50, 5433, false)), "in production"),
                other_primary.clone(),
                true,
                steps(&[StopTarget, ClearTarget]),
            ),
            (
                "stale postmaster.pid, nothing answers: not stopped",
                cluster(Some(OTHER), Some((50, 5433, false)), "in production"),
                unreachable(),
                true,
                steps(&[ClearTarget]),
            ),
            (
                "dir of one cluster, URL reaches another: refused",
                cluster(Some(OTHER), Some((50, 5433, true)), "in production"),
                copy_primary.clone(),
                true,
                Err(Refusal::UrlReachesOtherServer {
                    reached: SYS,
                    dir: format!("system identifier {OTHER}"),
                }),
            ),
            (
                "unreadable control file: refused",
                cluster(None, None, "?"),
                unreachable(),
                false,
                Err(Refusal::UnreadableCluster),
            ),
            (
                "running standby of this primary: only wait",
                cluster(Some(SYS), Some((50, 5433, true)), "in archive recovery"),
                standby_at_5433.clone(),
                false,
                Ok(Plan {
                    steps: vec![WaitStreaming],
                    already_standby: true,
                }),
            ),
            (
                "running standby of this primary, --replace: re-seeded",
                cluster(Some(SYS), Some((50, 5433, true)), "in archive recovery"),
                standby_at_5433.clone(),
                true,
                steps(&[StopTarget, ClearTarget]),
            ),
            (
                "stopped copy of this cluster (former primary?): refused",
                cluster(Some(SYS), None, "shut down"),
                unreachable(),
                false,
                Err(Refusal::StaleCopy {
                    state: "stopped, shut down".into(),
                }),
            ),
            (
                "promoted copy of this cluster running: refused",
                cluster(Some(SYS), Some((50, 5433, true)), "in production"),
                copy_primary.clone(),
                false,
                Err(Refusal::StaleCopy {
                    state: "running, not in recovery".into(),
                }),
            ),
            (
                "promoted copy of this cluster, --replace: re-seeded",
                cluster(Some(SYS), Some((50, 5433, true)), "in production"),
                copy_primary.clone(),
                true,
                steps(&[StopTarget, ClearTarget]),
            ),
        ];
        // The slot is active because the target streams through it: fine
        // (re-seeding stops the standby first); another user of it is not.
        let mut p_active = primary();
        p_active.slot = Some(SlotFacts {
            physical: true,
            active: true,
        });
        let running_ours = cluster(Some(SYS), Some((50, 5433, true)), "in archive recovery");
        let active_cases: Vec<(&str, &Observed, bool, Result<Plan, Refusal>)> = vec![
            (
                "our running standby holds the slot: wait only",
                &our_standby,
                false,
                Ok(Plan {
                    steps: vec![WaitStreaming],
                    already_standby: true,
                }),
            ),
            (
                "our running standby holds the slot, --replace: re-seeded",
                &our_standby,
                true,
                steps(&[StopTarget, ClearTarget]),
            ),
            (
                "a standby streaming without our slot while the slot is active: refused",
                &standby_at_5433,
                true,
                Err(Refusal::SlotActive {
                    slot: "lifeboat_eu_west".into(),
                }),
            ),
        ];
        for (what, server, replace, want) in active_cases {
            let got = plan(&PlanInput {
                primary: &p_active,
                target_dir: &running_ours,
                target_server: server,
                replace,
            });
            assert_eq!(got, want, "{what}");
        }
        for (what, dir, server, replace, want) in cases {
            let got = plan(&PlanInput {
                primary: &p,
                target_dir: &dir,
                target_server: &server,
                replace,
            });
            assert_eq!(got, want, "{what}");
        }
        assert_eq!(seed(&[]).steps, FULL.to_vec());
    }

    #[test]
    fn primary_side_refusals() {
        let run = |p: &PrimaryFacts| {
            plan(&PlanInput {
                primary: p,
                target_dir: &TargetDir::Empty,
                target_server: &unreachable(),
                replace: false,
            })
        };
        let mut p = primary();
        p.observed = observed(Role::Standby, Some(ident(SYS, 0, 5432)));
        assert!(matches!(run(&p), Err(Refusal::SourceNotPrimary { .. })));
        p.observed = unreachable();
        assert!(
            matches!(run(&p), Err(Refusal::SourceNotPrimary { role }) if role.contains("connection refused"))
        );

        let cases: Vec<PrimaryCase> = vec![
            ("defaults", |_| {}, Ok(())),
            (
                "logical is enough",
                |p| p.wal_level = "logical".into(),
                Ok(()),
            ),
            (
                "minimal",
                |p| p.wal_level = "minimal".into(),
                Err(Refusal::WalLevel {
                    wal_level: "minimal".into(),
                }),
            ),
            (
                "one free sender is not enough for pg_basebackup -X stream",
                |p| p.wal_senders_in_use = 9,
                Err(Refusal::WalSenders { max: 10, in_use: 9 }),
            ),
            ("two free senders", |p| p.wal_senders_in_use = 8, Ok(())),
            (
                "slots full",
                |p| p.slots_in_use = 10,
                Err(Refusal::ReplicationSlots { max: 10 }),
            ),
            (
                "slots full but ours exists",
                |p| {
                    p.slots_in_use = 10;
                    p.slot = Some(SlotFacts {
                        physical: true,
                        active: false,
                    })
                },
                Ok(()),
            ),
            (
                "our slot name is a logical slot",
                |p| {
                    p.slot = Some(SlotFacts {
                        physical: false,
                        active: false,
                    })
                },
                Err(Refusal::SlotNotPhysical {
                    slot: "lifeboat_eu_west".into(),
                }),
            ),
            (
                "our slot is used by someone else",
                |p| {
                    p.slot = Some(SlotFacts {
                        physical: true,
                        active: true,
                    })
                },
                Err(Refusal::SlotActive {
                    slot: "lifeboat_eu_west".into(),
                }),
            ),
        ];
        for (what, change, want) in cases {
            let mut p = primary();
            change(&mut p);
            assert_eq!(run(&p).map(|_| ()), want, "{what}");
        }
    }

    #[test]
    fn slot_names() {
        let cases = [
            ("eu-west", "lifeboat_eu_west"),
            ("EU West 2", "lifeboat_eu_west_2"),
            ("ü", "lifeboat__"),
        ];
        for (name, want) in cases {
            assert_eq!(slot_name(name), want);
        }
        assert_eq!(slot_name(&"x".repeat(100)).len(), 63);
    }
}
