//! One active daemon per repository: a lease document in the repository.
//!
//! The active daemon writes `serve/lease` (sealed like every repository
//! document) and renews it every third of the lease duration, bumping a
//! counter. A standby reads it as often; when the holder or counter has not
//! changed for a whole lease duration, measured on the standby's own
//! monotonic clock (so clocks of different machines never matter), the
//! lease has expired and the standby takes it: it writes its own lease,
//! waits a moment for a concurrent taker's write to land, and reads it back;
//! only the daemon that reads itself becomes active. An active daemon that
//! finds another holder, or cannot renew for a lease duration, steps down.
//! On SIGTERM the active daemon deletes its lease so a standby takes over at
//! its next read.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use lifeboat_repo::Repository;
use lifeboat_repo::format::{DOC_VERSION, seal_doc};
use tokio::sync::watch;

// The record and its reading live in the service layer (the status
// assessment reads it too); renewing, taking over and releasing live here.
use crate::lease::{LEASE_KEY, LeaseDoc, read};

use super::Role;
use super::metrics;

/// An identity for this process.
pub fn identity() -> String {
    let r = lifeboat_repo::crypto::random_array::<4>().unwrap_or_default();
    format!(
        "{}/{}/{}",
        lifeboat_repo::keys::hostname(),
        std::process::id(),
        r.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

async fn write(repo: &Repository, doc: &LeaseDoc) -> lifeboat_repo::Result<()> {
    let bytes = seal_doc(repo.key(), "lease", doc)?;
    repo.storage().put(LEASE_KEY, Bytes::from(bytes)).await?;
    Ok(())
}

/// What the loop decides from one read of the lease.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Ours: renew it.
    Renew,
    /// Free or expired: take it.
    Take,
    /// Someone else holds it and renews it.
    Wait { holder: String },
}

/// Watches another holder's lease: when did its (holder, renewals) last change.
#[derive(Debug, Default)]
pub struct Observer {
    seen: Option<(String, u64)>,
    since: Option<Instant>,
}

impl Observer {
    /// Pure decision from the lease read at `now`.
    pub fn decide(&mut self, me: &str, lease: Option<&LeaseDoc>, now: Instant) -> Decision {
        let Some(l) = lease else {
            self.seen = None;
            return Decision::Take;
        };
        if l.holder == me {
            self.seen = None;
            return Decision::Renew;
        }
        let key = (l.holder.clone(), l.renewals);
        if self.seen.as_ref() != Some(&key) {
            self.seen = Some(key);
            self.since = Some(now);
        }
        let unchanged_for = now.saturating_duration_since(self.since.unwrap_or(now));
        if unchanged_for >= Duration::from_secs(l.duration_seconds.max(1)) {
            Decision::Take
        } else {
            Decision::Wait {
                holder: l.holder.clone(),
            }
        }
    }
}

/// The lease could not be renewed for a whole lease `duration`: this
/// daemon becomes a standby so that another may take over; `holder` is
/// what the role shows while the lease's real holder is unknown.
fn step_down(role: &watch::Sender<Role>, duration: Duration, holder: &str) {
    tracing::error!(
        "could not renew the daemon lease for {} s: stepping down so that a standby may take over",
        duration.as_secs()
    );
    set_role(
        role,
        Role::Standby {
            holder: holder.into(),
        },
    );
}

/// Runs until `shutdown`, publishing the role; the caller releases the
/// lease after its work is done.
pub async fn run(
    repo: Repository,
    me: String,
    duration: Duration,
    role: Arc<watch::Sender<Role>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let every = (duration / 3).max(Duration::from_millis(500));
    let settle = (duration / 4).clamp(Duration::from_millis(200), Duration::from_secs(2));
    let mut observer = Observer::default();
    let mut last_renewed = Instant::now();
    loop {
        let active = matches!(*role.borrow(), Role::Active);
        match read(&repo).await {
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the daemon lease; retrying");
                if active && last_renewed.elapsed() >= duration {
                    step_down(&role, duration, "unknown (the repository is unreachable)");
                }
            }
            Ok(current) => match observer.decide(&me, current.as_ref(), Instant::now()) {
                // `decide` renews only a lease it was given.
                Decision::Renew => {
                    if let Some(mut d) = current {
                        d.renewals += 1;
                        d.duration_seconds = duration.as_secs().max(1);
                        match write(&repo, &d).await {
                            Ok(()) => {
                                last_renewed = Instant::now();
                                if !active {
                                    set_role(&role, Role::Active);
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot renew the daemon lease");
                                if active && last_renewed.elapsed() >= duration {
                                    step_down(
                                        &role,
                                        duration,
                                        "unknown (the lease cannot be renewed)",
                                    );
                                }
                            }
                        }
                    }
                }
                Decision::Take => {
                    if active {
                        // Our lease vanished or was taken and expired: re-take.
                        tracing::warn!("the daemon lease was gone; taking it again");
                    }
                    let d = LeaseDoc {
                        version: DOC_VERSION,
                        holder: me.clone(),
                        acquired: Utc::now(),
                        renewals: 0,
                        duration_seconds: duration.as_secs().max(1),
                    };
                    if let Err(e) = write(&repo, &d).await {
                        tracing::warn!(error = %e, "cannot write the daemon lease");
                    } else {
                        tokio::time::sleep(settle).await;
                        match read(&repo).await {
                            Ok(Some(back)) if back.holder == me => {
                                last_renewed = Instant::now();
                                set_role(&role, Role::Active);
                            }
                            Ok(other) => {
                                let holder = other.map(|o| o.holder).unwrap_or_default();
                                tracing::info!(%holder, "another daemon took the lease at the same time; standing by");
                                set_role(&role, Role::Standby { holder });
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot read the daemon lease back")
                            }
                        }
                    }
                }
                Decision::Wait { holder } => {
                    if active {
                        tracing::error!(%holder, "another daemon holds the lease now: stepping down to standby");
                    }
                    set_role(&role, Role::Standby { holder });
                }
            },
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = super::stopped(&mut shutdown) => break,
        }
    }
}

fn set_role(role: &watch::Sender<Role>, new: Role) {
    role.send_if_modified(|r| {
        if *r == new {
            return false;
        }
        match &new {
            Role::Active => tracing::info!(
                role = "active",
                "this daemon holds the repository lease and runs the schedules"
            ),
            Role::Standby { holder } => {
                tracing::info!(role = "standby", %holder, "another daemon is active; standing by")
            }
            _ => {}
        }
        metrics::lease_active(matches!(new, Role::Active));
        *r = new.clone();
        true
    });
}

/// Deletes the lease if it is ours, so a standby takes over at once.
pub async fn release(repo: &Repository, me: &str) {
    match read(repo).await {
        Ok(Some(l)) if l.holder == me => {
            if let Err(e) = repo.storage().delete(LEASE_KEY).await {
                tracing::warn!(error = %e, "could not release the daemon lease; a standby takes over when it expires");
            } else {
                tracing::info!("released the daemon lease");
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewals: u64) -> LeaseDoc {
        LeaseDoc {
            version: DOC_VERSION,
            holder: holder.into(),
            acquired: Utc::now(),
            renewals,
            duration_seconds: 10,
        }
    }

    #[test]
    fn free_lease_is_taken_own_is_renewed() {
        let mut o = Observer::default();
        let t = Instant::now();
        assert_eq!(o.decide("me", None, t), Decision::Take);
        assert_eq!(o.decide("me", Some(&lease("me", 3)), t), Decision::Renew);
    }

    #[test]
    fn another_holder_expires_only_after_a_whole_unchanged_duration() {
        let mut o = Observer::default();
        let t0 = Instant::now();
        let wait = Decision::Wait { holder: "a".into() };
        assert_eq!(o.decide("me", Some(&lease("a", 1)), t0), wait);
        assert_eq!(
            o.decide("me", Some(&lease("a", 1)), t0 + Duration::from_secs(9)),
            wait
        );
        // A renewal restarts the clock.
        assert_eq!(
            o.decide("me", Some(&lease("a", 2)), t0 + Duration::from_secs(9)),
            wait
        );
        assert_eq!(
            o.decide("me", Some(&lease("a", 2)), t0 + Duration::from_secs(18)),
            wait
        );
        assert_eq!(
            o.decide("me", Some(&lease("a", 2)), t0 + Duration::from_secs(19)),
            Decision::Take
        );
        // A new holder restarts it too.
        assert_eq!(
            o.decide("me", Some(&lease("b", 2)), t0 + Duration::from_secs(20)),
            Decision::Wait { holder: "b".into() }
        );
    }
}
