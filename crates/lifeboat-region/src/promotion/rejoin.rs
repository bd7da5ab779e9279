//! Rejoin: an old primary made a standby of the current primary after a
//! change of primary (docs/failover.md, "Rejoin").
//!
//! The plan is pure ([`plan`], table-tested): from what the region's
//! server says now (a writable primary, a standby, down), what its data
//! directory's control file says (its system identifier, whether
//! `wal_log_hints` or data checksums are on) and the authority (the
//! primary region and epoch), it decides the steps: fence a server that
//! still accepts writes, stop one that must be rewound, then `pg_rewind`
//! when it can run (the same cluster, and `wal_log_hints` or checksums on)
//! or a fresh clone (the caller's `region replicate --replace` path)
//! otherwise; follow the new primary, verify, restore the DNS answer set.
//!
//! The IO here is the data directory's side: [`dir_facts`] reads
//! `pg_controldata`, [`rewind`] runs `pg_rewind` as the data directory's
//! owner, argument vector only, with the source's password in the child's
//! environment (never in its arguments).
//!
//! Epochs and rows: `lifeboat.authority` holds a row per epoch that
//! promoted a server. Epoch 1 is created from the declared primary without
//! a promotion, so it has no row; every later epoch has one, written by the
//! promotion. [`has_replayed`] is the one rule both rejoin and the daemon's
//! steering use for "this standby has replayed the current epoch".

use std::time::Duration;

use lifeboat_postgres::conn::{ConnConfig, pg_message};
use serde::Serialize;

use super::switchover::RewindReadiness;
use crate::replication::observe::{self, SystemId};
use crate::replication::retry::Retry;
use crate::replication::target::{self, StandbyTarget, TargetDir, TargetError};

/// The highest epoch row a server must hold to have replayed `epoch`
/// (`None`: no row is required, epoch 1 has none; see the module docs).
pub fn required_epoch(epoch: u64) -> Option<u64> {
    (epoch > 1).then_some(epoch)
}

/// Whether a server whose highest `lifeboat.authority` row is `row` has
/// replayed the authority's `epoch`.
pub fn has_replayed(row: Option<u64>, epoch: u64) -> bool {
    match required_epoch(epoch) {
        None => true,
        Some(e) => row.is_some_and(|r| r >= e),
    }
}

/// What the region's server says now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ServerState {
    /// It answers and is not in recovery: it accepts writes. `epoch`: the
    /// highest `lifeboat.authority` row it holds.
    Writable { epoch: Option<u64> },
    /// In recovery; `streaming`: the current primary lists it streaming in
    /// `pg_stat_replication`; `epoch`: the highest row it replayed.
    Standby { streaming: bool, epoch: Option<u64> },
    /// It does not answer; `running`: a live postmaster runs on its data
    /// directory anyway (hung, or listening elsewhere).
    Down { running: bool },
}

/// What the data directory's control file says; `None` in [`PlanInput`]
/// when it holds no cluster (missing, empty, foreign files).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DirFacts {
    pub system_identifier: Option<SystemId>,
    pub rewind: RewindReadiness,
}

/// How the data directory is brought onto the current primary's timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// `pg_rewind` from the current primary, then follow it.
    Rewind,
    /// A fresh base backup of the current primary (`region replicate
    /// --replace`), which also starts it and waits until it streams.
    Clone,
}

/// One step of a rejoin, in the order [`plan`] lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Stop the server at once (immediate shutdown): it accepts writes at an
    /// older epoch, or a postmaster runs that does not answer.
    Fence,
    /// Stop a standby that does not stream from the current primary.
    Stop,
    Rewind,
    Clone,
    /// `standby.signal`, `primary_conninfo` (passfile), the slot; start;
    /// wait until its WAL receiver streams.
    Follow,
    /// The current primary lists it streaming and it has replayed the
    /// current epoch's row.
    Verify,
    /// The steered name answers every eligible healthy region again.
    RestoreDns,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Fence => "fence",
            Step::Stop => "stop",
            Step::Rewind => "rewind",
            Step::Clone => "clone",
            Step::Follow => "follow",
            Step::Verify => "verify",
            Step::RestoreDns => "restore_dns",
        }
    }
}

/// The facts [`plan`] decides from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanInput<'a> {
    pub region: &'a str,
    /// The authority's primary region and epoch (etcd).
    pub primary: &'a str,
    pub epoch: u64,
    pub server: ServerState,
    pub dir: Option<DirFacts>,
    /// The current primary's system identifier (from its server).
    pub primary_system_identifier: Option<SystemId>,
}

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RejoinPlan {
    pub steps: Vec<Step>,
    /// `None` when the server already follows the current primary.
    pub method: Option<Method>,
    /// Why this method (for the operator's lines).
    pub why: String,
}

/// Why a rejoin is refused before anything is done (exit 2).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "{region} is the authority's primary (epoch {epoch}): only a region that is not the \
         primary rejoins; see `lifeboat region authority`"
    )]
    IsPrimary { region: String, epoch: u64 },
    #[error(
        "{region}'s server records epoch {found} in lifeboat.authority, above the authority's \
         {epoch} in etcd: etcd is behind the data or this server belongs elsewhere; nothing was \
         changed, investigate before rejoining"
    )]
    AheadOfAuthority {
        region: String,
        found: u64,
        epoch: u64,
    },
}

/// The method for a data directory (see the module docs).
pub fn method(dir: Option<&DirFacts>, primary: Option<SystemId>) -> (Method, String) {
    match dir {
        None => (
            Method::Clone,
            "its data directory holds no cluster: a fresh clone".into(),
        ),
        Some(d) if d.system_identifier.is_none() || primary.is_none() => (
            Method::Clone,
            "the system identifiers could not be compared: a fresh clone".into(),
        ),
        Some(d) if d.system_identifier != primary => (
            Method::Clone,
            "its data directory holds another cluster (system identifier differs): a fresh clone"
                .into(),
        ),
        Some(d) if !d.rewind.possible() => (
            Method::Clone,
            "neither wal_log_hints nor data checksums are on in its control file, so pg_rewind \
             cannot run: a fresh clone"
                .into(),
        ),
        Some(d) => (
            Method::Rewind,
            format!(
                "pg_rewind ({} on)",
                if d.rewind.wal_log_hints {
                    "wal_log_hints"
                } else {
                    "data checksums"
                }
            ),
        ),
    }
}

/// The steps for `input`; see the module docs.
pub fn plan(input: &PlanInput<'_>) -> Result<RejoinPlan, Refusal> {
    if input.region == input.primary {
        return Err(Refusal::IsPrimary {
            region: input.region.to_string(),
            epoch: input.epoch,
        });
    }
    let row = match input.server {
        ServerState::Writable { epoch } | ServerState::Standby { epoch, .. } => epoch,
        ServerState::Down { .. } => None,
    };
    if let Some(found) = row
        && found > input.epoch
    {
        return Err(Refusal::AheadOfAuthority {
            region: input.region.to_string(),
            found,
            epoch: input.epoch,
        });
    }
    let first = match input.server {
        // Streaming from the current primary: it will replay the epoch.
        ServerState::Standby {
            streaming: true, ..
        } => {
            return Ok(RejoinPlan {
                steps: vec![Step::Verify, Step::RestoreDns],
                method: None,
                why: format!("already a standby streaming from {}", input.primary),
            });
        }
        ServerState::Writable { .. } | ServerState::Down { running: true } => Some(Step::Fence),
        ServerState::Standby {
            streaming: false, ..
        } => Some(Step::Stop),
        ServerState::Down { running: false } => None,
    };
    let (m, why) = method(input.dir.as_ref(), input.primary_system_identifier);
    let mut steps: Vec<Step> = first.into_iter().collect();
    match m {
        Method::Rewind => steps.extend([Step::Rewind, Step::Follow]),
        Method::Clone => steps.push(Step::Clone),
    }
    steps.extend([Step::Verify, Step::RestoreDns]);
    Ok(RejoinPlan {
        steps,
        method: Some(m),
        why,
    })
}

/// Errors of the data directory's side.
#[derive(Debug, thiserror::Error)]
pub enum RejoinError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("reading pg_controldata of {pgdata}: {detail}")]
    ControlData { pgdata: String, detail: String },
    #[error("CHECKPOINT on the source {url} before pg_rewind: {message}")]
    Checkpoint { url: String, message: String },
    #[error("{0}")]
    Conn(#[from] lifeboat_postgres::conn::ConnError),
}

/// Parses `wal_log_hints setting` and `Data page checksum version` from
/// `pg_controldata` output (C locale).
pub fn parse_rewind_readiness(text: &str) -> Option<RewindReadiness> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim_start().strip_prefix(':'))
            .map(|v| v.trim().to_string())
    };
    Some(RewindReadiness {
        wal_log_hints: field("wal_log_hints setting")? == "on",
        data_checksums: field("Data page checksum version")?.parse::<u32>().ok()? > 0,
    })
}

/// What `target`'s data directory holds: `None` without a cluster.
pub async fn dir_facts(target: &StandbyTarget) -> Result<Option<DirFacts>, RejoinError> {
    match target::inspect(&target.pgdata, &target.bin_dir).await? {
        TargetDir::Cluster(_) => {}
        _ => return Ok(None),
    }
    let mut cmd = target::pg_command(target.bin_dir.join("pg_controldata"), None);
    cmd.arg("-D").arg(&target.pgdata);
    let out = target::run(
        cmd,
        "pg_controldata",
        Duration::from_secs(30),
        "check the data directory",
    )
    .await?;
    let (system_identifier, _) = target::parse_controldata(&out);
    let rewind = parse_rewind_readiness(&out).ok_or_else(|| RejoinError::ControlData {
        pgdata: target.pgdata.display().to_string(),
        detail: "no wal_log_hints or checksum line in its output".into(),
    })?;
    Ok(Some(DirFacts {
        system_identifier,
        rewind,
    }))
}

/// Rewinds `target`'s stopped data directory onto the timeline of the
/// server behind `source` (a superuser connection to the current primary):
/// a `CHECKPOINT` on the source first (its control file then names the
/// timeline it promoted to), then `pg_rewind --target-pgdata
/// --source-server` as the data directory's owner. The connection's host,
/// port, user and password reach `pg_rewind` through its environment
/// (`PGHOST`, `PGPASSWORD`, ...); the conninfo argument holds only the
/// database and an application name. A target that was not shut down
/// cleanly (fenced by an immediate stop) is first brought to a consistent
/// state by `pg_rewind` itself (single-user crash recovery, PostgreSQL 13+).
/// Returns `pg_rewind`'s last line.
pub async fn rewind(
    target: &StandbyTarget,
    source: &ConnConfig,
    timeout: Duration,
) -> Result<String, RejoinError> {
    let client = observe::connect(source, Retry::default()).await?;
    client
        .batch_execute("CHECKPOINT")
        .await
        .map_err(|e| RejoinError::Checkpoint {
            url: source.display_url(),
            message: pg_message(&e),
        })?;
    drop(client);
    let owner = target::os_user(target.os_user.as_deref())?;
    let mut cmd = target::pg_command(target.bin_dir.join("pg_rewind"), owner);
    source.apply_to_command(&mut cmd)?;
    cmd.arg("--target-pgdata")
        .arg(&target.pgdata)
        .arg(format!(
            "--source-server=dbname={} application_name=lifeboat_rewind",
            crate::replication::conf::conninfo_quote(&source.dbname)
        ))
        .arg("--no-sync");
    let out = target::run(
        cmd,
        "pg_rewind",
        timeout,
        "raise --step-timeout, or rejoin with a fresh clone",
    )
    .await?;
    Ok(out
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("done")
        .trim()
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYS: SystemId = SystemId(7_300_000_000_000_000_001);

    fn dir(hints: bool, checksums: bool, sys: Option<SystemId>) -> Option<DirFacts> {
        Some(DirFacts {
            system_identifier: sys,
            rewind: RewindReadiness {
                wal_log_hints: hints,
                data_checksums: checksums,
            },
        })
    }

    #[test]
    fn replayed_rule() {
        for (row, epoch, want) in [
            (None, 1, true),
            (Some(1), 1, true),
            (None, 2, false),
            (Some(1), 2, false),
            (Some(2), 2, true),
            (Some(3), 2, true),
            (Some(2), 3, false),
        ] {
            assert_eq!(has_replayed(row, epoch), want, "{row:?} {epoch}");
        }
    }

    // A table of inputs and expectations, spelt out in place.
    #[allow(clippy::type_complexity)]
    #[test]
    fn plan_table() {
        use Step::*;
        let rewindable = dir(true, false, Some(SYS));
        let cases: Vec<(
            &str,
            &str,
            ServerState,
            Option<DirFacts>,
            Result<Vec<Step>, &str>,
        )> = vec![
            (
                "the primary itself: refused",
                "eu-west",
                ServerState::Standby {
                    streaming: true,
                    epoch: Some(3),
                },
                rewindable,
                Err("is the authority's primary"),
            ),
            (
                "a server recording a higher epoch than etcd: refused",
                "us-east",
                ServerState::Writable { epoch: Some(4) },
                rewindable,
                Err("above the authority's 3"),
            ),
            (
                "returned writable at an older epoch: fenced first, rewound",
                "us-east",
                ServerState::Writable { epoch: Some(2) },
                rewindable,
                Ok(vec![Fence, Rewind, Follow, Verify, RestoreDns]),
            ),
            (
                "stopped, checksums on: rewound",
                "us-east",
                ServerState::Down { running: false },
                dir(false, true, Some(SYS)),
                Ok(vec![Rewind, Follow, Verify, RestoreDns]),
            ),
            (
                "stopped, neither wal_log_hints nor checksums: cloned",
                "us-east",
                ServerState::Down { running: false },
                dir(false, false, Some(SYS)),
                Ok(vec![Clone, Verify, RestoreDns]),
            ),
            (
                "a postmaster that does not answer: fenced, then cloned (another cluster)",
                "us-east",
                ServerState::Down { running: true },
                dir(true, true, Some(SystemId(1))),
                Ok(vec![Fence, Clone, Verify, RestoreDns]),
            ),
            (
                "an empty data directory: cloned",
                "us-east",
                ServerState::Down { running: false },
                None,
                Ok(vec![Clone, Verify, RestoreDns]),
            ),
            (
                "a standby not streaming from the primary: stopped, rewound",
                "us-east",
                ServerState::Standby {
                    streaming: false,
                    epoch: Some(2),
                },
                rewindable,
                Ok(vec![Stop, Rewind, Follow, Verify, RestoreDns]),
            ),
            (
                "already streaming from the primary: verified only",
                "us-east",
                ServerState::Standby {
                    streaming: true,
                    epoch: Some(3),
                },
                rewindable,
                Ok(vec![Verify, RestoreDns]),
            ),
        ];
        for (what, region, server, d, want) in cases {
            let got = plan(&PlanInput {
                region,
                primary: "eu-west",
                epoch: 3,
                server,
                dir: d,
                primary_system_identifier: Some(SYS),
            });
            match (got, want) {
                (Ok(p), Ok(steps)) => assert_eq!(p.steps, steps, "{what}"),
                (Err(e), Err(text)) => assert!(e.to_string().contains(text), "{what}: {e}"),
                (got, want) => panic!("{what}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn method_says_why() {
        let (m, why) = method(dir(false, false, Some(SYS)).as_ref(), Some(SYS));
        assert_eq!(m, Method::Clone);
        assert!(
            why.contains("neither wal_log_hints nor data checksums"),
            "{why}"
        );
        let (m, why) = method(dir(true, false, Some(SYS)).as_ref(), Some(SYS));
        assert_eq!(
            (m, why.as_str()),
            (Method::Rewind, "pg_rewind (wal_log_hints on)")
        );
        let (m, _) = method(dir(true, true, None).as_ref(), Some(SYS));
        assert_eq!(m, Method::Clone);
    }

    #[test]
    fn readiness_from_controldata() {
        let text = "Database cluster state:               in production\n\
                    wal_log_hints setting:                off\n\
                    max_connections setting:              100\n\
                    Data page checksum version:           1\n";
        assert_eq!(
            parse_rewind_readiness(text),
            Some(RewindReadiness {
                wal_log_hints: false,
                data_checksums: true
            })
        );
        let text = "wal_log_hints setting:                on\n\
                    Data page checksum version:           0\n";
        assert_eq!(
            parse_rewind_readiness(text),
            Some(RewindReadiness {
                wal_log_hints: true,
                data_checksums: false
            })
        );
        assert_eq!(parse_rewind_readiness("nothing"), None);
    }
}
