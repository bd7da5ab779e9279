//! The planned switchover's PostgreSQL steps, each its own function; the
//! caller (the failover machinery) orders them: writers quiesced →
//! [`stop_clean`] on the old primary → [`wait_replayed`] on the standby →
//! `promote` → [`follow`] on the old primary → DNS → writers back.
//!
//! Why no rewind is needed: a fast shutdown writes a shutdown checkpoint as
//! the old primary's last WAL record, and the walsenders send everything up
//! to it and wait for the standby to confirm it flushed it before they exit.
//! Once the standby has *replayed* that record, its WAL is the old
//! primary's WAL, complete. Promotion starts the new timeline at the end of
//! the last replayed record, i.e. right after the shutdown checkpoint; the
//! old primary's own WAL ends exactly there, so it holds nothing the new
//! timeline lacks and can follow it as it is (`recovery_target_timeline =
//! latest` fetches the timeline history and switches at that point).
//!
//! How far past the checkpoint location replay must be: `pg_controldata`'s
//! "Latest checkpoint location" is where the checkpoint record *starts*;
//! `pg_last_wal_replay_lsn()` is the *end* of the last record replayed. So
//! the record has been replayed exactly when the replay position is
//! *greater* than the checkpoint location (by the record's length, about
//! 114 bytes, more when it crosses a page header); equal is one record
//! short. [`wait_replayed`] waits for `replay > checkpoint`.

use std::time::{Duration, Instant};

use lifeboat_postgres::conn::{ConnConfig, ConnError, Secret, pg_message};
use serde::Serialize;
use tokio_postgres::Client;

use crate::replication::conf;
use crate::replication::lsn::{self, Lsn};
use crate::replication::observe::{self, WalReceiver};
use crate::replication::replicate::write_owned;
use crate::replication::retry::Retry;
use crate::replication::target::{self, StandbyTarget, TargetError};

/// Errors of the switchover steps.
#[derive(Debug, thiserror::Error)]
pub enum SwitchoverError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Conn(#[from] ConnError),
    #[error("{what} on {url}: {message}")]
    Sql {
        what: &'static str,
        url: String,
        message: String,
    },
    #[error(
        "pg_controldata of {pgdata} says the cluster is {state:?}, not \"shut down\": the \
         server did not stop cleanly, so its last WAL is not a shutdown checkpoint; start and \
         stop it again (fast), or fall back to a failover with rewind"
    )]
    NotShutDown { pgdata: String, state: String },
    #[error("reading pg_controldata of {pgdata}: {detail}")]
    ControlData { pgdata: String, detail: String },
    #[error(
        "the standby {url} replayed up to {got:?} within {waited:?}, not past the old primary's \
         shutdown checkpoint at {want}; check that it streams from the old primary (and its \
         slot), then run this step again"
    )]
    NotReplayed {
        url: String,
        want: Lsn,
        got: Option<Lsn>,
        waited: Duration,
    },
    #[error(
        "{url} does not stream from the new primary after {waited:?} (WAL receiver: {status}); \
         look at its server log (authentication, slot, timeline)"
    )]
    NotStreaming {
        url: String,
        status: String,
        waited: Duration,
    },
}

impl SwitchoverError {
    /// Whether running the step again may help.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SwitchoverError::Conn(ConnError::Unreachable { .. } | ConnError::Other { .. })
                | SwitchoverError::NotReplayed { .. }
                | SwitchoverError::NotStreaming { .. }
        )
    }
}

fn sql(
    what: &'static str,
    conn: &ConnConfig,
) -> impl FnOnce(tokio_postgres::Error) -> SwitchoverError {
    let url = conn.display_url();
    move |e| SwitchoverError::Sql {
        what,
        url,
        message: pg_message(&e),
    }
}

/// Where a cleanly stopped server's WAL ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FinalLsn {
    /// "Latest checkpoint location": the start of the shutdown checkpoint
    /// record, the last WAL record.
    pub checkpoint: Lsn,
    /// "Latest checkpoint's REDO location" (equal to `checkpoint` for a
    /// shutdown checkpoint).
    pub redo: Option<Lsn>,
    /// "Latest checkpoint's TimeLineID".
    pub timeline: Option<u32>,
    /// "Database cluster state".
    pub state: String,
}

/// Parses `pg_controldata` output (C locale) into the checkpoint fields.
pub fn parse_final(text: &str) -> Option<FinalLsn> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim_start().strip_prefix(':'))
            .map(|v| v.trim().to_string())
    };
    Some(FinalLsn {
        checkpoint: Lsn::parse(&field("Latest checkpoint location")?)?,
        redo: field("Latest checkpoint's REDO location").and_then(|v| Lsn::parse(&v)),
        timeline: field("Latest checkpoint's TimeLineID").and_then(|v| v.parse().ok()),
        state: field("Database cluster state")?,
    })
}

/// Reads `pg_controldata` of `target`'s data directory.
pub async fn controldata(target: &StandbyTarget) -> Result<FinalLsn, SwitchoverError> {
    let cmd = target::pg_command(target.bin_dir.join("pg_controldata"), None);
    let mut cmd = cmd;
    cmd.arg("-D").arg(&target.pgdata);
    let out = target::run(
        cmd,
        "pg_controldata",
        Duration::from_secs(30),
        "check the data directory",
    )
    .await?;
    parse_final(&out).ok_or_else(|| SwitchoverError::ControlData {
        pgdata: target.pgdata.display().to_string(),
        detail: format!("no checkpoint location or state in its output: {out}"),
    })
}

/// Stops the old primary with a fast shutdown and returns where its WAL
/// ends (its shutdown checkpoint), refusing when the cluster is not "shut
/// down" afterwards.
pub async fn stop_clean(
    target: &StandbyTarget,
    timeout: Duration,
) -> Result<FinalLsn, SwitchoverError> {
    target.stop(timeout).await?;
    let f = controldata(target).await?;
    if f.state != "shut down" {
        return Err(SwitchoverError::NotShutDown {
            pgdata: target.pgdata.display().to_string(),
            state: f.state,
        });
    }
    Ok(f)
}

/// Whether a standby that replayed up to `replayed` has replayed the
/// shutdown checkpoint record starting at `checkpoint` (see the module docs).
pub fn replayed_past(replayed: Option<Lsn>, checkpoint: Lsn) -> bool {
    replayed.is_some_and(|r| r > checkpoint)
}

/// Polls `pg_last_wal_replay_lsn()` on `standby` until it is past
/// `checkpoint` ([`replayed_past`]); returns the replay position.
pub async fn wait_replayed(
    standby: &ConnConfig,
    checkpoint: Lsn,
    timeout: Duration,
) -> Result<Lsn, SwitchoverError> {
    let started = Instant::now();
    let mut client: Option<Client> = None;
    let mut got = None;
    loop {
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            client = observe::connect(standby, Retry::default()).await.ok();
        }
        if let Some(c) = &client {
            match c
                .query_one("SELECT pg_last_wal_replay_lsn()::text", &[])
                .await
            {
                Ok(r) => got = lsn::opt(r.get(0)),
                Err(e) => {
                    tracing::debug!(error = %pg_message(&e), "reading the standby's replay position");
                    client = None;
                }
            }
        }
        if replayed_past(got, checkpoint) {
            return Ok(got.unwrap_or(checkpoint));
        }
        if started.elapsed() >= timeout {
            return Err(SwitchoverError::NotReplayed {
                url: standby.display_url(),
                want: checkpoint,
                got,
                waited: timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes `target.passfile` (outside the data directory, owned by the
/// server's OS user, mode 0600) with the replication user's password, for
/// the `passfile=` of the conninfo given to [`follow`].
pub fn write_passfile(
    target: &StandbyTarget,
    user: &str,
    password: &Secret,
) -> Result<(), SwitchoverError> {
    let owner = target::os_user(target.os_user.as_deref())?;
    write_owned(
        &target.passfile,
        &conf::pgpass_line(user, password.expose()),
        owner,
    )?;
    Ok(())
}

/// Makes the stopped old primary `target` a standby of the new primary
/// without a rewind: `standby.signal`, `primary_conninfo = conninfo` and
/// `primary_slot_name` (empty without a slot) plus `target.settings` in
/// `postgresql.auto.conf`, start, then waits (bounded by `timeout`) until
/// its WAL receiver is `streaming`. `conninfo` names no password (see
/// [`crate::replication::replicate::primary_conninfo`] and [`write_passfile`]).
pub async fn follow(
    target: &StandbyTarget,
    conninfo: &str,
    slot: Option<&str>,
    timeout: Duration,
) -> Result<WalReceiver, SwitchoverError> {
    let owner = target::os_user(target.os_user.as_deref())?;
    write_owned(&target.pgdata.join("standby.signal"), "", owner)?;
    let mut settings = vec![
        ("primary_conninfo".to_string(), conninfo.to_string()),
        (
            "primary_slot_name".to_string(),
            slot.unwrap_or_default().to_string(),
        ),
    ];
    settings.extend(target.settings.iter().cloned());
    let auto = target.pgdata.join("postgresql.auto.conf");
    let existing = match std::fs::read_to_string(&auto) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(target::io("reading", &auto)(e).into()),
    };
    write_owned(&auto, &conf::rewrite_auto_conf(&existing, &settings), owner)?;
    let started = Instant::now();
    target.start(timeout).await?;
    let mut status = "no WAL receiver".to_string();
    loop {
        if let Ok(c) = observe::connect(&target.conn, Retry::ONCE).await {
            let view = observe::standby_view(&c)
                .await
                .map_err(sql("reading the WAL receiver", &target.conn))?;
            if let Some(w) = view.wal_receiver {
                if w.status == "streaming" {
                    return Ok(w);
                }
                status = w.status;
            }
        }
        if started.elapsed() >= timeout {
            return Err(SwitchoverError::NotStreaming {
                url: target.conn.display_url(),
                status,
                waited: timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What `pg_rewind` needs on a server: `wal_log_hints` or data checksums.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RewindReadiness {
    pub wal_log_hints: bool,
    pub data_checksums: bool,
}

impl RewindReadiness {
    /// Whether `pg_rewind` can run on this server's data directory.
    pub fn possible(&self) -> bool {
        self.wal_log_hints || self.data_checksums
    }
}

/// Reads `wal_log_hints` and `data_checksums` on the server behind `client`
/// (for status and readiness warnings: without either, a returning old
/// primary needs a fresh clone rather than a rewind).
pub async fn rewind_possible(client: &Client) -> Result<RewindReadiness, tokio_postgres::Error> {
    let r = client
        .query_one(
            "SELECT current_setting('wal_log_hints') = 'on', \
                    current_setting('data_checksums') = 'on'",
            &[],
        )
        .await?;
    Ok(RewindReadiness {
        wal_log_hints: r.get(0),
        data_checksums: r.get(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_lsn_from_controldata() {
        let text = "pg_control version number:            1300\n\
                    Database cluster state:               shut down\n\
                    Latest checkpoint location:           0/3000028\n\
                    Latest checkpoint's REDO location:    0/3000028\n\
                    Latest checkpoint's REDO WAL file:    000000010000000000000003\n\
                    Latest checkpoint's TimeLineID:       1\n\
                    Latest checkpoint's PrevTimeLineID:   1\n";
        assert_eq!(
            parse_final(text),
            Some(FinalLsn {
                checkpoint: Lsn(0x300_0028),
                redo: Some(Lsn(0x300_0028)),
                timeline: Some(1),
                state: "shut down".into(),
            })
        );
        assert_eq!(parse_final("Database cluster state: in production\n"), None);
    }

    #[test]
    fn replayed_past_table() {
        let c = Lsn(0x300_0028);
        for (replayed, want) in [
            (None, false),
            (Some(Lsn(0x300_0000)), false),
            // the end of the record before: one record short
            (Some(c), false),
            // the end of the checkpoint record (28 + 0x72 = 114 bytes)
            (Some(Lsn(0x300_00A0)), true),
        ] {
            assert_eq!(replayed_past(replayed, c), want, "{replayed:?}");
        }
    }
}
