//! A standby the authority names, found stopped, is started again.
//!
//! When the authority names this region but its server is still a standby
//! (a change of primary bumped the epoch and has not promoted it yet), the
//! agent guards it as the primary-to-be: its watchdog runs. Should the
//! agent die there (the fault suite kills the leader of a failover at its
//! pause point before promoting, and that leader can be this region's own
//! daemon), the watchdog stops the server, as it must: it cannot tell that
//! the server is still in recovery, and a promotion by another daemon could
//! come at any moment. The change of primary then waits on a server that is
//! down, and nothing else starts it: the next holder of the election retries
//! the promotion until an operator does.
//!
//! So the next agent, once it guards the region again (its watchdog armed
//! and fed first, so the started server is covered from its first second),
//! starts the server when the data directory is a standby's
//! (`standby.signal`) and no postmaster runs there. Only a standby is ever
//! started: it comes up in recovery and accepts no writes until the
//! change's promotion step promotes it. A fenced old primary (no
//! `standby.signal`) stays down, and a server that a postmaster still holds
//! (one not yet reaped) is waited for. The watch ends once the data
//! directory is no standby's any more (promoted), or with the guard.

use std::time::Duration;

use lifeboat_region::replication::target::{StandbyTarget, TargetDir, inspect};

/// What the data directory says about starting its server (pure).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Look {
    /// A standby's data directory with no live postmaster: start it.
    StartIt,
    /// A standby's, with a postmaster running (or not yet reaped): look again later.
    Running,
    /// Not a standby's data directory (promoted, a fenced old primary,
    /// missing, unreadable): never started here; the watch ends.
    NotAStandby,
}

/// Decides from what [`inspect`] found.
pub fn look(dir: &TargetDir) -> Look {
    match dir {
        TargetDir::Cluster(c) if c.standby_signal => {
            if c.postmaster.as_ref().is_some_and(|p| p.alive) {
                Look::Running
            } else {
                Look::StartIt
            }
        }
        _ => Look::NotAStandby,
    }
}

/// Watches the data directory every `every` and starts the standby when
/// [`look`] says so; returns when it is no standby's any more. Run it in a
/// task of its own beside the guard, and abort it when the guard ends.
pub async fn keep_started(target: StandbyTarget, every: Duration, start_timeout: Duration) {
    loop {
        let found = match inspect(&target.pgdata, &target.bin_dir).await {
            Ok(d) => look(&d),
            Err(e) => {
                tracing::warn!(region = %target.name, error = %e, "reading this region's data directory failed; looking again");
                Look::Running
            }
        };
        match found {
            Look::NotAStandby => return,
            Look::Running => {}
            Look::StartIt => {
                tracing::warn!(region = %target.name, pgdata = %target.pgdata.display(),
                    "the authority names this region and its standby is down (stopped by the previous daemon's watchdog, or crashed): starting it in recovery, so the change of primary can promote it");
                match target.start(start_timeout).await {
                    Ok(()) => {
                        tracing::info!(region = %target.name, "this region's standby started")
                    }
                    Err(e) => {
                        tracing::error!(region = %target.name, error = %e, "starting this region's standby failed; trying again")
                    }
                }
            }
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use lifeboat_region::replication::target::{ClusterDir, PostmasterPid};

    use super::*;

    fn cluster(standby_signal: bool, postmaster: Option<bool>) -> TargetDir {
        TargetDir::Cluster(ClusterDir {
            system_identifier: None,
            state: Some("shut down in recovery".into()),
            standby_signal,
            postmaster: postmaster.map(|alive| PostmasterPid {
                pid: 4242,
                start_epoch: 0,
                port: Some(5432),
                status: Some("standby".into()),
                alive,
            }),
        })
    }

    #[test]
    fn only_a_standby_without_a_live_postmaster_is_started() {
        assert_eq!(look(&cluster(true, None)), Look::StartIt);
        assert_eq!(look(&cluster(true, Some(false))), Look::StartIt);
        assert_eq!(look(&cluster(true, Some(true))), Look::Running);
        // A fenced old primary or a promoted server: never started here.
        assert_eq!(look(&cluster(false, None)), Look::NotAStandby);
        assert_eq!(look(&cluster(false, Some(true))), Look::NotAStandby);
        assert_eq!(look(&TargetDir::Missing), Look::NotAStandby);
        assert_eq!(look(&TargetDir::Empty), Look::NotAStandby);
        assert_eq!(
            look(&TargetDir::NotACluster { entries: 3 }),
            Look::NotAStandby
        );
    }
}
