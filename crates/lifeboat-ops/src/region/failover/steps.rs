//! The IO of each [`Action`] of the failover state machine. The promote
//! step dispatches on the target region's manager ([`super::promote`]);
//! the steps that stop, start or reconfigure a server (a switchover's and
//! a rollback's) are for regions whose PostgreSQL Lifeboat runs itself
//! (`manager: postgres`, agent mode): `super::check_request` refuses a
//! switchover to or from any other. Each step
//! returns the [`Event`] the machine expects, or `Failed` with whether a
//! retry may help; it never decides what comes next.

use std::time::{Duration, Instant};

use chrono::Utc;
use lifeboat_postgres::conn::ConnConfig;
use lifeboat_region::authority::{AuthorityError, AuthorityStore, ChangeReason};
use lifeboat_region::failover::machine::{Action, Event, Progress};
use lifeboat_region::failover::plan::Kind;
use lifeboat_region::failover::record::{FailoverRecord, Objectives, RpoEvidence, record};
use lifeboat_region::heartbeat::{self, Heartbeat};
use lifeboat_region::promotion::{authority_row, switchover};
use lifeboat_region::replication::observe::Server;
use lifeboat_region::replication::plan::slot_name;
use lifeboat_region::replication::replicate::{create_slot, primary_conninfo};
use lifeboat_region::replication::retry::Retry;
use lifeboat_region::replication::target::StandbyTarget;

use super::authority::authority_error;
use super::dns::DnsSwitch;
use super::failsafe;
use super::scale;
use crate::config::{Config, FailoverConfig, REGION_FAILURE_SCENARIO};
use crate::context::Ctx;
use crate::error::Result;
use crate::region::conn::region_conn;
use crate::region::replicate::{region, region_target, replication_password};

/// What a step reports besides its event, for the operator.
pub type StepNote = String;

/// The executor of one change of primary.
pub(super) struct Steps<'a> {
    pub ctx: &'a Ctx,
    pub config: &'a Config,
    pub failover: &'a FailoverConfig,
    pub store: &'a AuthorityStore,
    pub by: String,
    /// Bound on each waiting step (fence, replay, promotion, following).
    pub step_timeout: Duration,
    pub evidence: RpoEvidence,
    pub record: Option<FailoverRecord>,
    /// The traffic provider, when `traffic:` configures one.
    pub dns: Option<DnsSwitch>,
    /// Which leg of a rehearsal this change is (`there`, `back`), marked in
    /// its record; `None` for every other change.
    pub rehearsal: Option<String>,
    /// When the deciding daemon found the old primary's lease gone
    /// ([`super::Automatic::lease_gone_seen`]); taken by the first fence
    /// step that finds it gone too.
    pub lease_gone_seen: Option<Instant>,
}

fn failed(transient: bool, detail: impl Into<String>) -> Event {
    Event::Failed {
        transient,
        detail: detail.into(),
    }
}

impl Steps<'_> {
    async fn conn(&self, name: &str) -> Result<ConnConfig> {
        region_conn(self.ctx, region(self.config, name)?).await
    }

    async fn target(&self, name: &str, reference: &str, why: &str) -> Result<StandbyTarget> {
        let reference = Server {
            name: reference.to_string(),
            conn: self.conn(reference).await?,
        };
        region_target(self.ctx, name, region(self.config, name)?, &reference, why).await
    }

    /// Runs `action`; returns its event and a line for the operator.
    pub async fn perform(&mut self, action: &Action, progress: &Progress) -> (Event, StepNote) {
        match self.try_perform(action, progress).await {
            Ok(done) => done,
            // Configuration and connection errors of Lifeboat's own are not
            // helped by retrying.
            Err(e) => (failed(false, e.to_string()), String::new()),
        }
    }

    async fn try_perform(
        &mut self,
        action: &Action,
        progress: &Progress,
    ) -> Result<(Event, StepNote)> {
        let plan = &progress.plan;
        Ok(match action {
            Action::Quiesce { region } => {
                match scale::quiesce(self.ctx, self.config, region, self.step_timeout).await {
                    Ok(note) => (Event::Quiesced, note),
                    Err((transient, detail)) => (failed(transient, detail), String::new()),
                }
            }
            Action::StopOld { region } => self.stop_old(region, &plan.to).await?,
            Action::AwaitReplay { region, lsn } => {
                let conn = self.conn(region).await?;
                match switchover::wait_replayed(&conn, *lsn, self.step_timeout).await {
                    Ok(got) => {
                        self.evidence.new_last_replayed_heartbeat =
                            newest_heartbeat(&conn, &plan.from).await;
                        (
                            Event::Replayed { lsn: got },
                            format!("{region} replayed {got} (the old primary ended at {lsn})"),
                        )
                    }
                    Err(e) => (failed(e.is_transient(), e.to_string()), String::new()),
                }
            }
            Action::AwaitFence { region } => self.await_fence(region, plan.epoch_before).await,
            Action::BumpEpoch {
                from,
                to,
                expected_epoch,
                require_lease_gone,
            } => {
                self.bump(
                    plan.kind,
                    from,
                    to,
                    *expected_epoch,
                    require_lease_gone.as_deref(),
                )
                .await
            }
            Action::Promote { region, epoch } => {
                let conn = self.conn(region).await?;
                // One connection for the evidence and the promotion.
                let lifeboat =
                    match lifeboat_region::promotion::promote::connect_lifeboat(&conn).await {
                        Ok(c) => c,
                        Err(e) => {
                            return Ok((
                                failed(
                                    e.is_transient(),
                                    format!("connecting to {region} to promote it: {e}"),
                                ),
                                String::new(),
                            ));
                        }
                    };
                if self.evidence.new_last_replayed_heartbeat.is_none() {
                    // The RPO's evidence, read before the promotion or never:
                    // a server that cannot answer now (still starting) is not
                    // promoted without it; the step is retried. No `lifeboat`
                    // database (no heartbeat ever) is an answer: none.
                    let seen = match &lifeboat {
                        Some(c) => heartbeat::newest(c, Some(&plan.from)).await,
                        None => Ok(None),
                    };
                    match seen {
                        Ok(seen) => {
                            self.evidence.new_last_replayed_heartbeat = seen.map(|s| s.beat.at)
                        }
                        Err(e) => {
                            return Ok((
                                failed(
                                    true,
                                    format!(
                                        "reading on {region} the newest heartbeat of {} it replayed (the RPO's evidence), before promoting it: {}",
                                        plan.from,
                                        lifeboat_postgres::conn::pg_message(&e)
                                    ),
                                ),
                                String::new(),
                            ));
                        }
                    }
                }
                // `region` names the region here; the lookup is the module's.
                let r = crate::region::replicate::region(self.config, region)?;
                match super::promote::promote(
                    self.ctx,
                    region,
                    r,
                    &conn,
                    lifeboat,
                    *epoch,
                    self.step_timeout,
                )
                .await
                {
                    Ok((p, manager)) => {
                        // A revoke_login fence on the old primary replicated
                        // its NOLOGIN to this server while it streamed: give
                        // the application its logins back here.
                        if matches!(
                            self.failover.fence,
                            Some(crate::config::FenceConfig::RevokeLogin { .. })
                        ) && let Err(e) =
                            lifeboat_region::fence::postgres::restore_login(&conn).await
                        {
                            return Ok((failed(e.is_transient(), e.to_string()), String::new()));
                        }
                        (
                            Event::Promoted { lsn: p.lsn },
                            format!(
                                "{region} is primary{} at {} (epoch {epoch} written in lifeboat.authority){}{}",
                                if p.already_primary {
                                    " (already was)"
                                } else {
                                    ""
                                },
                                p.lsn,
                                manager.map(|m| format!("; {m}")).unwrap_or_default(),
                                p.synchronous_cleared
                                    .as_ref()
                                    .map(|n| format!("; synchronous_standby_names {n:?} cleared: no standby follows it yet"))
                                    .unwrap_or_default()
                            ),
                        )
                    }
                    Err((transient, detail)) => (failed(transient, detail), String::new()),
                }
            }
            Action::FollowOld {
                region,
                new_primary,
            } => self.follow_old(region, new_primary).await?,
            Action::SwitchDns { to, epoch, .. } => match &self.dns {
                None => (
                    Event::DnsSwitched,
                    "no traffic: section, DNS left as it is".to_string(),
                ),
                Some(dns) => match dns.switch(to, *epoch).await {
                    Ok(note) => (Event::DnsSwitched, note),
                    Err((transient, detail)) => (failed(transient, detail), String::new()),
                },
            },
            Action::Scale { region, planned } => {
                let done = if *planned {
                    scale::bring_back(self.ctx, self.config, region).await
                } else {
                    scale::scale_for_failover(self.ctx, self.config, region).await
                };
                match done {
                    Ok(note) => (Event::Scaled, note),
                    Err((transient, detail)) => (failed(transient, detail), String::new()),
                }
            }
            Action::Verify { region, epoch } => self.verify(region, *epoch).await?,
            Action::Record => self.store_record(progress).await,
            Action::Rollback { region } => {
                // Repeatable: a server already running as the primary (the
                // quiesce failed before it was stopped, or an earlier
                // rollback started it) is not started again.
                let conn = self.conn(region).await?;
                let own = Server {
                    name: region.clone(),
                    conn,
                };
                let brief = Retry {
                    attempts: 2,
                    first_delay: Duration::from_millis(100),
                    max_delay: Duration::from_millis(500),
                };
                let running = lifeboat_region::replication::observe(&own, brief)
                    .await
                    .role
                    == lifeboat_region::replication::Role::Primary;
                let started = if running {
                    Ok(())
                } else {
                    self.target(region, &plan.to, "rolling back restarts the old primary")
                        .await?
                        .start(self.step_timeout)
                        .await
                };
                match started {
                    Ok(()) => match scale::bring_back(self.ctx, self.config, region).await {
                        Ok(note) => (
                            Event::RolledBack,
                            format!("{region} restarted as the primary; {note}"),
                        ),
                        Err((transient, detail)) => (
                            failed(
                                transient,
                                format!(
                                    "{region} restarted as the primary, but its writers are not back: {detail}"
                                ),
                            ),
                            String::new(),
                        ),
                    },
                    Err(e) => (failed(true, e.to_string()), String::new()),
                }
            }
            Action::WaitForOperator { .. } | Action::Nothing => {
                unreachable!("the driver does not perform {action:?}")
            }
        })
    }

    async fn stop_old(&mut self, region: &str, to: &str) -> Result<(Event, StepNote)> {
        let conn = self.conn(region).await?;
        self.evidence.old_last_heartbeat = heartbeat::read(&conn, Some(region))
            .await
            .ok()
            .flatten()
            .map(|s| s.beat.at);
        let target = self
            .target(region, to, "a switchover stops the old primary cleanly")
            .await?;
        Ok(
            match switchover::stop_clean(&target, self.step_timeout).await {
                Ok(f) => (
                    Event::OldStopped {
                        final_lsn: f.checkpoint,
                    },
                    format!(
                        "{region} stopped cleanly; its shutdown checkpoint is at {}",
                        f.checkpoint
                    ),
                ),
                Err(e) => (failed(e.is_transient(), e.to_string()), String::new()),
            },
        )
    }

    /// Waits (bounded) until `region`'s lease key is gone, then the safety
    /// margin (with `etcd_lost: keep_if_peers_agree`, also until the other
    /// daemons' vouches for it are a lease TTL and the margin old), and
    /// checks the key is still gone.
    async fn await_fence(&mut self, region: &str, epoch: u64) -> (Event, StepNote) {
        let started = Instant::now();
        loop {
            match self.store.lease_of(region).await {
                Ok(None) => {
                    // The margin counts from the earliest moment this
                    // change knows the lease gone (an etcd answer, so not
                    // before it expired); the read again after it proves
                    // that no lease came back meanwhile.
                    let margin = self.failover.safety_margin();
                    let gone_seen = self.lease_gone_seen.take();
                    let frozen = match failsafe::freeze_others(
                        self.ctx,
                        self.config,
                        self.failover,
                        region,
                        epoch,
                    )
                    .await
                    {
                        Ok(f) => f,
                        Err((transient, detail)) => {
                            self.lease_gone_seen = gone_seen;
                            return (failed(transient, detail), String::new());
                        }
                    };
                    let wait = gone_seen
                        .map_or(margin, |seen| margin.saturating_sub(seen.elapsed()))
                        .max(frozen.unwrap_or_default());
                    tokio::time::sleep(wait).await;
                    return match self.store.lease_of(region).await {
                        Ok(None) => (
                            Event::FenceHeld,
                            format!(
                                "{region}'s lease is gone; waited the safety margin of {}s",
                                self.failover.safety_margin().as_secs_f64()
                            ),
                        ),
                        Ok(Some(l)) => (
                            failed(
                                false,
                                format!(
                                    "{region}'s daemon took a lease again (lease {:x}) during the safety margin: it is alive and reaches etcd",
                                    l.lease_id
                                ),
                            ),
                            String::new(),
                        ),
                        Err(e) => (failed(e.is_transient(), e.to_string()), String::new()),
                    };
                }
                Ok(Some(lease)) => {
                    // Alive again since the decision saw it gone: that
                    // sighting no longer counts.
                    self.lease_gone_seen = None;
                    if started.elapsed() >= self.step_timeout {
                        return (
                            failed(
                                false,
                                format!(
                                    "{region}'s lease is still held ({}s left, renewed by {}): its daemon is alive and \
                                     reaches etcd, so promoting another region would make two primaries. If {region} \
                                     serves, use `lifeboat region switchover`; if it does not, stop its daemon \
                                     (its watchdog then stops the server) and run this again",
                                    lease.ttl_remaining.as_secs(),
                                    lease
                                        .holder
                                        .as_ref()
                                        .map(|h| h.to_string())
                                        .unwrap_or_else(|| "an unknown holder".into())
                                ),
                            ),
                            String::new(),
                        );
                    }
                    let wait = lease
                        .ttl_remaining
                        .clamp(Duration::from_millis(200), Duration::from_secs(1));
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return (failed(e.is_transient(), e.to_string()), String::new()),
            }
        }
    }

    async fn bump(
        &mut self,
        kind: Kind,
        from: &str,
        to: &str,
        expected: u64,
        require_lease_gone: Option<&str>,
    ) -> (Event, StepNote) {
        let current = match self.store.authority().await {
            Ok(Some(v)) => v,
            Ok(None) => {
                return (
                    failed(false, "etcd holds no authority record any more"),
                    String::new(),
                );
            }
            Err(e) => return (failed(e.is_transient(), e.to_string()), String::new()),
        };
        if current.value.epoch != expected || current.value.primary != from {
            return (
                Event::AuthorityIs {
                    primary: current.value.primary.clone(),
                    epoch: current.value.epoch,
                },
                format!(
                    "the authority reads {} at epoch {}",
                    current.value.primary, current.value.epoch
                ),
            );
        }
        let reason = match kind {
            Kind::Automatic => ChangeReason::Failover,
            Kind::Manual => ChangeReason::Manual,
            Kind::Switchover => ChangeReason::Switchover,
        };
        match self
            .store
            .bump(&current, to, &self.by, reason, require_lease_gone)
            .await
        {
            Ok(v) => (
                Event::EpochBumped {
                    epoch: v.value.epoch,
                },
                format!(
                    "epoch {} → {}: {to} is the primary",
                    expected, v.value.epoch
                ),
            ),
            Err(AuthorityError::Conflict { now, .. }) => match now {
                Some(now) => (
                    Event::AuthorityIs {
                        primary: now.primary.clone(),
                        epoch: now.epoch,
                    },
                    format!(
                        "the compare-and-swap was refused: {} is primary at epoch {}",
                        now.primary, now.epoch
                    ),
                ),
                None => (
                    failed(
                        false,
                        format!("the compare-and-swap was refused: {from}'s lease appeared again"),
                    ),
                    String::new(),
                ),
            },
            Err(e) => (
                failed(e.is_transient(), authority_error(e).to_string()),
                String::new(),
            ),
        }
    }

    async fn follow_old(&mut self, region: &str, new_primary: &str) -> Result<(Event, StepNote)> {
        let target = self
            .target(
                region,
                new_primary,
                "the old primary follows the new one from its data directory",
            )
            .await?;
        let primary = self.conn(new_primary).await?;
        let user = self.config.replication_user().to_string();
        let password = replication_password(self.ctx, self.config).await?;
        let slot = slot_name(region);
        if let Err(e) = create_slot(&primary, &slot, Retry::default()).await {
            return Ok((failed(true, e.to_string()), String::new()));
        }
        if let Err(e) = switchover::write_passfile(&target, &user, &password) {
            return Ok((failed(false, e.to_string()), String::new()));
        }
        let conninfo =
            primary_conninfo(&primary.host, primary.port, &user, region, &target.passfile);
        if let Err(e) = switchover::follow(&target, &conninfo, Some(&slot), self.step_timeout).await
        {
            return Ok((failed(e.is_transient(), e.to_string()), String::new()));
        }
        // The promotion cleared the new primary's synchronous standbys; the
        // old primary follows it now. A failure here is told, not a failed
        // step: retrying would start the following server again, and the
        // change is past its point of no return.
        let synchronous = match crate::region::replicate::name_synchronous_standbys(
            self.config,
            new_primary,
            &primary,
        )
        .await
        {
            Ok(names) => names
                .map(|n| format!("; {new_primary}'s synchronous_standby_names = {n}"))
                .unwrap_or_default(),
            Err(e) => {
                tracing::error!(error = %e, "naming {region} in {new_primary}'s synchronous_standby_names failed: commits do not wait for it; run `lifeboat region rejoin {region}`, which names it");
                format!(
                    "; naming it in {new_primary}'s synchronous_standby_names FAILED ({e}): run \
                     `lifeboat region rejoin {region}`"
                )
            }
        };
        Ok((
            Event::OldFollowing,
            format!(
                "{region} streams from {new_primary} (slot {slot}), no rewind needed{synchronous}"
            ),
        ))
    }

    /// A heartbeat commits through the new primary, its authority row holds
    /// the epoch, and DNS publishes it with the epoch's TXT record (rfc2136:
    /// the name answers it; route53: only its record carries weight).
    async fn verify(&mut self, region: &str, epoch: u64) -> Result<(Event, StepNote)> {
        let conn = self.conn(region).await?;
        let client = match heartbeat::ensure(&conn).await {
            Ok(c) => c,
            Err(e) => return Ok((failed(e.is_transient(), e.to_string()), String::new())),
        };
        let beat = match Heartbeat::new(region).beat(&client).await {
            Ok(b) => b,
            Err(e) => {
                return Ok((
                    failed(true, format!("the heartbeat did not commit: {e}")),
                    String::new(),
                ));
            }
        };
        match authority_row::read_epoch(&client).await {
            Ok(Some(row)) if row.epoch == epoch => {}
            Ok(row) => {
                return Ok((
                    failed(
                        false,
                        format!(
                            "{region}'s lifeboat.authority holds {:?}, not epoch {epoch}",
                            row.map(|r| r.epoch)
                        ),
                    ),
                    String::new(),
                ));
            }
            Err(e) => return Ok((failed(true, e.to_string()), String::new())),
        }
        let mut note = format!("heartbeat {} committed on {region}", beat.seq);
        if let Some(dns) = &self.dns {
            match dns.verify(self.config, region, epoch).await {
                Ok(said) => note.push_str(&format!("; {said}")),
                Err((transient, detail)) => return Ok((failed(transient, detail), String::new())),
            }
        }
        Ok((Event::Verified, note))
    }

    async fn store_record(&mut self, progress: &Progress) -> (Event, StepNote) {
        let objectives = self
            .config
            .objective(REGION_FAILURE_SCENARIO)
            .map(|o| Objectives {
                rto_seconds: o.rto.num_milliseconds() as f64 / 1000.0,
                rpo_seconds: o.rpo.num_milliseconds() as f64 / 1000.0,
            });
        let mut rec = record(progress, self.evidence.clone(), objectives);
        rec.rehearsal = self.rehearsal.clone();
        // The record is written once the change is done: its outcome is.
        if rec.outcome == "incomplete" {
            rec.outcome = "done".into();
        }
        match self.store.put_failover_record(rec.epoch, &rec).await {
            Ok(_) | Err(AuthorityError::AlreadyExists { .. }) => {}
            Err(e) => return (failed(e.is_transient(), e.to_string()), String::new()),
        }
        let note = match self.store_in_repository(&rec).await {
            Ok(id) => format!("failover record {id} stored in the repository and etcd"),
            Err(e) => format!(
                "failover record stored in etcd; NOT in the repository ({e}): `status` reads it from etcd"
            ),
        };
        self.record = Some(rec);
        (Event::Recorded, note)
    }

    async fn store_in_repository(&self, rec: &FailoverRecord) -> Result<String> {
        let repo = self.ctx.open().await?;
        Ok(lifeboat_dr::record::store_failover(&repo, rec).await?)
    }
}

/// The newest heartbeat of `region` that `conn`'s server holds (replayed,
/// on a standby); `None` when it cannot be read.
async fn newest_heartbeat(conn: &ConnConfig, region: &str) -> Option<chrono::DateTime<Utc>> {
    heartbeat::read(conn, Some(region))
        .await
        .ok()
        .flatten()
        .map(|s| s.beat.at)
}
