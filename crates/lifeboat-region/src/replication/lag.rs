//! Replication lag from observations: pure functions, in bytes and seconds.
//!
//! Definitions (also in `docs/regions/replication.md`):
//! - **bytes**: WAL the standby has not replayed yet: the primary's
//!   `pg_current_wal_lsn()` (or, seen from the standby alone, its received
//!   position) minus the replayed position.
//! - **seconds**, seen from the primary: `pg_stat_replication.replay_lag`.
//! - **seconds**, seen from the standby: its `now()` minus
//!   `pg_last_xact_replay_timestamp()`.
//!
//! An idle primary writes no transactions, so the last replayed commit grows
//! old while nothing is missing, and PostgreSQL sets `replay_lag` to NULL once
//! the standby has caught up. Both are read here as **no lag (0 s)** whenever
//! the byte lag is 0 and the reference position is trustworthy (the primary's,
//! or the standby's own while its WAL receiver streams); the basis then says
//! [`LagBasis::CaughtUp`]. With WAL outstanding, "now minus the last replayed
//! commit" can overstate the lag after an idle period; the heartbeat (a commit
//! every second, see [`crate::heartbeat`]) removes that ambiguity and gives the
//! seconds a failover would lose.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::lsn::Lsn;
use super::observe::{Observed, ReplicaRow, StandbyView};

/// How the seconds of a [`Lag`] were obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LagBasis {
    /// Measured by PostgreSQL with WAL outstanding.
    Measured,
    /// Nothing outstanding: 0 s, however old the last replayed commit is.
    CaughtUp,
    /// WAL is outstanding but no time is known (e.g. `replay_lag` NULL).
    Unknown,
    /// The standby does not stream (no or a non-streaming WAL receiver, or the
    /// sender is not in `streaming`/`catchup`); what it lacks grows unseen.
    NotStreaming,
}

/// A lag estimate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Lag {
    pub bytes: Option<u64>,
    pub seconds: Option<f64>,
    pub basis: LagBasis,
}

/// Lag of one standby as its primary sees it: `current` is the primary's
/// `pg_current_wal_lsn()`, `row` the standby's `pg_stat_replication` row.
pub fn lag_from_primary(current: Lsn, row: &ReplicaRow) -> Lag {
    let bytes = row.replay_lsn.map(|r| current.bytes_since(r));
    let streaming = matches!(row.state.as_str(), "streaming" | "catchup");
    let (seconds, basis) = match (bytes, row.replay_lag_seconds) {
        (Some(0), _) if streaming => (Some(0.0), LagBasis::CaughtUp),
        (_, Some(s)) if streaming => (Some(s.max(0.0)), LagBasis::Measured),
        (_, s) if !streaming => (s, LagBasis::NotStreaming),
        _ => (None, LagBasis::Unknown),
    };
    Lag {
        bytes,
        seconds,
        basis,
    }
}

/// Lag of a standby from its own view: `at` is the standby's `now()`;
/// `primary_lsn` the primary's current position when it was read too (else
/// the standby's received position is the reference).
pub fn lag_from_standby(view: &StandbyView, at: DateTime<Utc>, primary_lsn: Option<Lsn>) -> Lag {
    let streaming = view
        .wal_receiver
        .as_ref()
        .is_some_and(|w| w.status == "streaming");
    let reference = primary_lsn.or(view.receive_lsn);
    let bytes = match (reference, view.replay_lsn) {
        (Some(r), Some(p)) => Some(r.bytes_since(p)),
        _ => None,
    };
    let since_replay = view
        .last_replay_at
        .map(|t| ((at - t).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6).max(0.0));
    let trusted_reference = primary_lsn.is_some() || streaming;
    let (seconds, basis) = match bytes {
        Some(0) if trusted_reference => (Some(0.0), LagBasis::CaughtUp),
        _ if !streaming => (since_replay, LagBasis::NotStreaming),
        _ if since_replay.is_some() => (since_replay, LagBasis::Measured),
        _ => (None, LagBasis::Unknown),
    };
    Lag {
        bytes,
        seconds,
        basis,
    }
}

/// One standby's replication state from whatever was observed: the
/// primary's view (its `pg_stat_replication` row), the standby's own view,
/// and the age of the newest heartbeat it replayed. For `region status` and
/// the metrics.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StandbyLag {
    /// The primary shows the standby `streaming`, or (primary not observed)
    /// the standby's WAL receiver says `streaming`.
    pub streaming: bool,
    pub from_primary: Option<Lag>,
    pub from_standby: Option<Lag>,
    pub heartbeat_age_seconds: Option<f64>,
}

impl StandbyLag {
    /// Bytes behind: the primary's view, else the standby's.
    pub fn bytes(&self) -> Option<u64> {
        self.from_primary
            .and_then(|l| l.bytes)
            .or_else(|| self.from_standby.and_then(|l| l.bytes))
    }

    /// Seconds behind: the heartbeat's age (what a failover would lose now),
    /// else the primary's view, else the standby's.
    pub fn seconds(&self) -> Option<f64> {
        self.heartbeat_age_seconds
            .or_else(|| self.from_primary.and_then(|l| l.seconds))
            .or_else(|| self.from_standby.and_then(|l| l.seconds))
    }
}

/// [`StandbyLag`] of the standby that streams as `application_name` (or,
/// when no sender has that name, through that region's slot:
/// [`ReplicaRow::serves`]), from an
/// observation of the primary (when reachable), of the standby, and the
/// age of the standby's newest replayed heartbeat (when read).
pub fn standby_lag(
    primary: Option<&Observed>,
    standby: &Observed,
    application_name: &str,
    heartbeat_age_seconds: Option<f64>,
) -> StandbyLag {
    let pview = primary.and_then(|p| p.primary.as_ref());
    let row = pview.and_then(|v| {
        v.replicas
            .iter()
            .find(|r| r.application_name == application_name)
            .or_else(|| v.replicas.iter().find(|r| r.serves(application_name)))
    });
    let from_primary = match (pview, row) {
        (Some(v), Some(r)) => Some(lag_from_primary(v.current_lsn, r)),
        _ => None,
    };
    let from_standby = match (&standby.standby, standby.at) {
        (Some(v), Some(at)) => Some(lag_from_standby(v, at, pview.map(|v| v.current_lsn))),
        _ => None,
    };
    let streaming = match (pview, row) {
        (Some(_), Some(r)) => r.state == "streaming",
        (Some(_), None) => false,
        (None, _) => standby
            .standby
            .as_ref()
            .and_then(|v| v.wal_receiver.as_ref())
            .is_some_and(|w| w.status == "streaming"),
    };
    StandbyLag {
        streaming,
        from_primary,
        from_standby,
        heartbeat_age_seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::super::observe::WalReceiver;
    use super::*;

    fn row(state: &str, replay: Option<u64>, replay_lag: Option<f64>) -> ReplicaRow {
        ReplicaRow {
            application_name: "eu-west".into(),
            client_addr: Some("127.0.0.1".into()),
            state: state.into(),
            sent_lsn: replay.map(Lsn),
            write_lsn: replay.map(Lsn),
            flush_lsn: replay.map(Lsn),
            replay_lsn: replay.map(Lsn),
            write_lag_seconds: None,
            flush_lag_seconds: None,
            replay_lag_seconds: replay_lag,
            sync_state: Some("async".into()),
            slot_name: Some("lifeboat_eu_west".into()),
        }
    }

    #[test]
    fn a_sender_is_found_by_name_or_by_the_regions_slot() {
        let mut patroni = row("streaming", Some(1000), None);
        patroni.application_name = "pg-eu-west-0".into();
        let cases: &[(&str, ReplicaRow, &str, bool)] = &[
            ("by name", row("streaming", Some(1), None), "eu-west", true),
            ("by the region's slot", patroni.clone(), "eu-west", true),
            ("neither", patroni.clone(), "ap-south", false),
            (
                "a base backup without a slot",
                {
                    let mut r = row("backup", None, None);
                    r.application_name = "lifeboat basebackup".into();
                    r.slot_name = None;
                    r
                },
                "eu-west",
                false,
            ),
        ];
        for (what, r, standby, want) in cases {
            assert_eq!(r.serves(standby), *want, "{what}");
        }
    }

    #[test]
    fn from_primary_table() {
        use LagBasis::*;
        let cases: &[(&str, ReplicaRow, Lag)] = &[
            (
                "idle primary, caught up, replay_lag NULL: no lag",
                row("streaming", Some(1000), None),
                Lag {
                    bytes: Some(0),
                    seconds: Some(0.0),
                    basis: CaughtUp,
                },
            ),
            (
                "caught up but a stale replay_lag still shown: still no lag",
                row("streaming", Some(1000), Some(0.4)),
                Lag {
                    bytes: Some(0),
                    seconds: Some(0.0),
                    basis: CaughtUp,
                },
            ),
            (
                "behind, measured",
                row("streaming", Some(400), Some(1.5)),
                Lag {
                    bytes: Some(600),
                    seconds: Some(1.5),
                    basis: Measured,
                },
            ),
            (
                "behind, no time measured yet",
                row("catchup", Some(400), None),
                Lag {
                    bytes: Some(600),
                    seconds: None,
                    basis: Unknown,
                },
            ),
            (
                "base backup sender: no replay position",
                row("backup", None, None),
                Lag {
                    bytes: None,
                    seconds: None,
                    basis: NotStreaming,
                },
            ),
            (
                "standby report ahead of the primary position read earlier",
                row("streaming", Some(1200), None),
                Lag {
                    bytes: Some(0),
                    seconds: Some(0.0),
                    basis: CaughtUp,
                },
            ),
        ];
        for (what, r, want) in cases {
            assert_eq!(lag_from_primary(Lsn(1000), r), *want, "{what}");
        }
    }

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn view(
        receive: Option<u64>,
        replay: Option<u64>,
        last: Option<i64>,
        recv: Option<&str>,
    ) -> StandbyView {
        StandbyView {
            receive_lsn: receive.map(Lsn),
            replay_lsn: replay.map(Lsn),
            last_replay_at: last.map(at),
            replay_paused: false,
            wal_receiver: recv.map(|status| WalReceiver {
                status: status.into(),
                received_tli: Some(1),
                flushed_lsn: receive.map(Lsn),
                latest_end_lsn: receive.map(Lsn),
                last_msg_receipt: Some(at(0)),
                sender_host: Some("127.0.0.1".into()),
                sender_port: Some(5432),
                slot_name: Some("lifeboat_eu_west".into()),
            }),
        }
    }

    #[test]
    fn from_standby_table() {
        use LagBasis::*;
        let now = at(3600);
        let cases: &[(&str, StandbyView, Option<u64>, Lag)] = &[
            (
                "idle primary: last commit an hour old, nothing outstanding: no lag",
                view(Some(500), Some(500), Some(0), Some("streaming")),
                None,
                Lag {
                    bytes: Some(0),
                    seconds: Some(0.0),
                    basis: CaughtUp,
                },
            ),
            (
                "idle, and the primary's position confirms it",
                view(Some(500), Some(500), Some(0), Some("streaming")),
                Some(500),
                Lag {
                    bytes: Some(0),
                    seconds: Some(0.0),
                    basis: CaughtUp,
                },
            ),
            (
                "received but not replayed: time since the last replayed commit",
                view(Some(900), Some(500), Some(3590), Some("streaming")),
                None,
                Lag {
                    bytes: Some(400),
                    seconds: Some(10.0),
                    basis: Measured,
                },
            ),
            (
                "the primary is further ahead than what was received",
                view(Some(900), Some(900), Some(3599), Some("streaming")),
                Some(1500),
                Lag {
                    bytes: Some(600),
                    seconds: Some(1.0),
                    basis: Measured,
                },
            ),
            (
                "receiver gone: its own positions prove nothing, time grows",
                view(Some(500), Some(500), Some(0), None),
                None,
                Lag {
                    bytes: Some(0),
                    seconds: Some(3600.0),
                    basis: NotStreaming,
                },
            ),
            (
                "receiver gone but the primary's position shows nothing missing",
                view(Some(500), Some(500), Some(0), Some("waiting")),
                Some(500),
                Lag {
                    bytes: Some(0),
                    seconds: Some(0.0),
                    basis: CaughtUp,
                },
            ),
            (
                "streaming, behind, no transaction replayed yet",
                view(Some(900), Some(500), None, Some("streaming")),
                None,
                Lag {
                    bytes: Some(400),
                    seconds: None,
                    basis: Unknown,
                },
            ),
            (
                "nothing received yet (just started)",
                view(None, Some(500), None, Some("starting")),
                None,
                Lag {
                    bytes: None,
                    seconds: None,
                    basis: NotStreaming,
                },
            ),
        ];
        for (what, v, primary, want) in cases {
            assert_eq!(lag_from_standby(v, now, primary.map(Lsn)), *want, "{what}");
        }
    }

    /// what, primary, standby, heartbeat age; expected streaming, bytes, seconds.
    type StandbyCase<'a> = (
        &'static str,
        Option<&'a Observed>,
        &'a Observed,
        Option<f64>,
        bool,
        Option<u64>,
        Option<f64>,
    );

    #[test]
    fn standby_lag_table() {
        use super::super::observe::{PrimaryView, Role};
        let obs =
            |role: Role, primary: Option<PrimaryView>, standby: Option<StandbyView>| Observed {
                server: "x".into(),
                role,
                identity: None,
                at: Some(at(3600)),
                primary,
                standby,
            };
        let primary = obs(
            Role::Primary,
            Some(PrimaryView {
                current_lsn: Lsn(1000),
                replicas: vec![row("streaming", Some(400), Some(2.0))],
            }),
            None,
        );
        let primary_without_row = obs(
            Role::Primary,
            Some(PrimaryView {
                current_lsn: Lsn(1000),
                replicas: vec![],
            }),
            None,
        );
        let standby = obs(
            Role::Standby,
            None,
            Some(view(Some(900), Some(400), Some(3590), Some("streaming"))),
        );
        let gone = obs(
            Role::Unreachable {
                reason: "refused".into(),
                answered: false,
            },
            None,
            None,
        );
        // (what, primary, standby, heartbeat age, streaming, bytes, seconds)
        let cases: &[StandbyCase] = &[
            (
                "both views and a heartbeat: heartbeat seconds, primary bytes",
                Some(&primary),
                &standby,
                Some(1.25),
                true,
                Some(600),
                Some(1.25),
            ),
            (
                "no heartbeat yet: the primary's replay_lag",
                Some(&primary),
                &standby,
                None,
                true,
                Some(600),
                Some(2.0),
            ),
            (
                "primary unreachable: the standby's own view",
                None,
                &standby,
                None,
                true,
                Some(500),
                Some(10.0),
            ),
            (
                "the primary has no row for it: not streaming",
                Some(&primary_without_row),
                &standby,
                None,
                false,
                Some(600),
                Some(10.0),
            ),
            (
                "standby unreachable: the primary's view only",
                Some(&primary),
                &gone,
                None,
                true,
                Some(600),
                Some(2.0),
            ),
            ("nothing observed", None, &gone, None, false, None, None),
        ];
        for (what, p, s, hb, streaming, bytes, seconds) in cases {
            let l = standby_lag(*p, s, "eu-west", *hb);
            assert_eq!(
                (l.streaming, l.bytes(), l.seconds()),
                (*streaming, *bytes, *seconds),
                "{what}"
            );
        }
    }
}
