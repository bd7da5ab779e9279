//! Automatic region failover (issue 20; docs/failover.md, "Automatic
//! failover"): with `failover:`, every daemon (each region's and the
//! witness's) is a vantage point that votes on the primary region, and the
//! daemons outside the primary region confirm its failure and fail over.
//!
//! Every `renew_interval`:
//! 1. **Vote.** This vantage point's verdict on the authority's primary
//!    (its health checks of that region, per their thresholds, from
//!    `health.rs`) is put at `<prefix>/votes/<observer>`, attached to this
//!    daemon's region lease (the one `agent.rs` holds; found by its key's
//!    holder pid), so a dead observer's vote vanishes with its lease.
//! 2. **Resume.** An unfinished automatic change in etcd (its leader died)
//!    is resumed by whoever wins the election next.
//! 3. **Decide** (outside the primary region): the votes of the other
//!    vantage points (a vote of another epoch or older than `max_view_age`
//!    counts as none), the primary's lease, each standby's newest replayed
//!    heartbeat age and last byte lag → [`confirm::decide`]. The decision
//!    is logged when it changes, exported as `lifeboat_failover_decision`,
//!    and written to `<prefix>/decision` for `region authority`.
//! 4. **Act** on `Decision::Failover`: campaign in the election (a
//!    candidacy attached to the same lease; given up after `lease_ttl` and
//!    withdrawn, so a queued candidate nobody awaits never leads), and as
//!    leader run the driver with `Kind::Automatic`; it waits for the old
//!    lease to be gone plus `safety_margin`, bumps the epoch by CAS,
//!    promotes, switches DNS, verifies and records, each step kept in etcd.
//!    Then resign.
//!
//! Refusals (the lag guard, `automatic: false`) are never acted on: the
//! decision's detail names the command an operator can run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lifeboat_region::authority::{AuthorityRecord, AuthorityStore, DecisionRecord, VoteRecord};
use lifeboat_region::failover::confirm::{self, Candidate, Confirmation, Decision, Observation};
use lifeboat_region::failover::machine::Progress;
use lifeboat_region::failover::plan::Kind;
use lifeboat_region::health::{Verdict, region_verdict};
use lifeboat_region::replication::Role;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{WATCH_INTERVAL, metrics, pause, watch as observe};
use crate::config::{Config, FailoverConfig, REGION_FAILURE_SCENARIO};
use crate::daemon::Daemon;
use crate::region::failover::{self as driver, Automatic, Request, authority as auth};

/// Bound on each waiting step of an automatic change (the fence, the
/// promotion).
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// Failover records are read for the metrics every this many rounds.
const RECORDS_EVERY: u32 = 10;
/// The least time the candidates' observation may take (the bound is two
/// renew intervals): a standby across a 150 ms link answers well within it.
const CANDIDATES_MIN_BOUND: Duration = Duration::from_secs(2);
/// The least pause between two rounds (a round that took a whole interval
/// or more is followed by this one).
const MIN_PAUSE: Duration = Duration::from_millis(100);

/// Starts the loop when `failover:` is configured.
pub fn spawn(
    d: &Arc<Daemon>,
    config: &Config,
    own: &str,
    views: watch::Receiver<Vec<Verdict>>,
) -> Option<JoinHandle<()>> {
    let fo = config.failover.clone()?;
    metrics::describe_autofail();
    Some(tokio::spawn(run(Arc::clone(d), own.to_string(), fo, views)))
}

/// The vantage points outside `primary`: every region but it (file order),
/// then the witnesses.
pub fn vantage_points(config: &Config, primary: &str) -> Vec<String> {
    config
        .regions_in_file_order()
        .into_iter()
        .map(|(n, _)| n.to_string())
        .chain(
            config
                .failover
                .iter()
                .flat_map(|f| f.witnesses.iter().cloned()),
        )
        .filter(|n| n != primary)
        .collect()
}

/// The votes that count for `primary` at `epoch` (pure): a vote about
/// another primary or epoch, or written more than `max_age` before `now`,
/// is no vote.
pub fn tally(
    records: &[VoteRecord],
    primary: &str,
    epoch: u64,
    now: DateTime<Utc>,
    max_age: Duration,
) -> Vec<confirm::Vote> {
    let max_age = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
    records
        .iter()
        .map(|r| confirm::Vote {
            from: r.observer.clone(),
            primary_failed: (r.primary == primary && r.epoch == epoch && now - r.at <= max_age)
                .then_some(r.failed),
        })
        .collect()
}

/// When the failure began as the confirming votes saw it (pure): their
/// earliest first failed probe, else `now`.
pub fn failure_at(
    records: &[VoteRecord],
    confirmed_by: &[String],
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    records
        .iter()
        .filter(|r| confirmed_by.contains(&r.observer))
        .filter_map(|r| r.failing_since)
        .min()
        .map_or(now, |t| t.min(now))
}

/// This vantage point's vote on `primary` from its latest check verdicts
/// (pure). A region without checks is never voted failed. `failing_since`
/// estimates the first failed probe: the flip minus (threshold − 1)
/// intervals of the check.
pub fn own_vote(
    config: &Config,
    observer: &str,
    authority: &AuthorityRecord,
    views: &[Verdict],
    now: DateTime<Utc>,
) -> VoteRecord {
    let rv = region_verdict(&authority.primary, observer, views);
    let specs = config
        .region(&authority.primary)
        .map(|r| r.check_specs())
        .unwrap_or_default();
    let failing_since = views
        .iter()
        .filter(|v| v.region == authority.primary && v.observer == observer && !v.healthy)
        .map(|v| {
            let back = specs
                .iter()
                .find(|s| s.name == v.check)
                .map(|s| s.interval * s.threshold.saturating_sub(1))
                .unwrap_or_default();
            v.since - chrono::Duration::from_std(back).unwrap_or_default()
        })
        .min();
    VoteRecord {
        observer: observer.to_string(),
        primary: authority.primary.clone(),
        epoch: authority.epoch,
        failed: !rv.healthy,
        failed_checks: rv.unhealthy_checks,
        failing_since,
        at: now,
    }
}

/// The decision as `region authority` shows it (pure).
pub fn decision_record(
    d: &Decision,
    authority: &AuthorityRecord,
    decided_by: &str,
    at: DateTime<Utc>,
) -> DecisionRecord {
    let (word, failed_votes, needed, detail) = match d {
        Decision::Healthy {
            failed_votes,
            needed,
        } => (
            "healthy",
            *failed_votes,
            *needed,
            format!(
                "{failed_votes} of the {needed} votes needed see {} failed",
                authority.primary
            ),
        ),
        Decision::AwaitLease { confirmed_by } => (
            "await_lease",
            confirmed_by.len(),
            confirmed_by.len(),
            format!(
                "{} see {} failed, but its lease lives: its agent still reaches etcd, so nothing is promoted",
                confirmed_by.join(", "),
                authority.primary
            ),
        ),
        Decision::Failover {
            to, confirmed_by, ..
        } => (
            "failover",
            confirmed_by.len(),
            confirmed_by.len(),
            format!(
                "{} failed (confirmed by {}) and its lease is gone: promoting {to}",
                authority.primary,
                confirmed_by.join(", ")
            ),
        ),
        Decision::Refused { why } => ("refused", 0, 0, why.clone()),
    };
    DecisionRecord {
        decision: word.to_string(),
        primary: authority.primary.clone(),
        epoch: authority.epoch,
        failed_votes,
        needed,
        detail,
        decided_by: decided_by.to_string(),
        at,
    }
}

/// What the loop remembers between rounds.
struct Auto {
    d: Arc<Daemon>,
    own: String,
    fo: FailoverConfig,
    views: watch::Receiver<Vec<Verdict>>,
    /// The last decision written (word and detail), to write on change.
    last: Option<(String, String, u64)>,
    /// The last byte lag each standby reported (while its primary answered).
    byte_lags: BTreeMap<String, u64>,
    last_observed: Option<Instant>,
    /// The periodic look at every server (for the byte lags above), in a
    /// task of its own: a silent (partitioned) server costs it the whole
    /// observation bound, which must not delay a round's vote or decision.
    lag_look: Option<JoinHandle<observe::Round>>,
    rounds: u32,
    /// Where the current round's time went (logged after it).
    marks: Marks,
}

/// The time each part of a round took, for the round's debug line and the
/// warning about a slow round (a slow round delays the vote and the
/// decision: etcd calls stuck at an unreachable member, a slow observation).
#[derive(Default)]
struct Marks {
    since: Option<Instant>,
    parts: Vec<(&'static str, Duration)>,
}

impl Marks {
    fn start(&mut self) {
        self.since = Some(Instant::now());
        self.parts.clear();
    }

    /// `part` took the time since the previous mark.
    fn mark(&mut self, part: &'static str) {
        let now = Instant::now();
        if let Some(t) = self.since.replace(now) {
            self.parts.push((part, now - t));
        }
    }

    fn describe(&self) -> String {
        self.parts
            .iter()
            .map(|(p, d)| format!("{p} {} ms", d.as_millis()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

async fn run(
    d: Arc<Daemon>,
    own: String,
    fo: FailoverConfig,
    views: watch::Receiver<Vec<Verdict>>,
) {
    let every = fo.renew_interval();
    tracing::info!(observer = %own, automatic = fo.automatic(), "failover votes: this daemon is a vantage point on the primary region");
    let mut a = Auto {
        d,
        own,
        fo,
        views,
        last: None,
        byte_lags: BTreeMap::new(),
        last_observed: None,
        lag_look: None,
        rounds: 0,
        marks: Marks::default(),
    };
    let mut store: Option<AuthorityStore> = None;
    loop {
        if store.is_none() {
            // agent.rs reports etcd's reachability; here only a debug line.
            match auth::connect(&a.d.ctx, a.config()).await {
                Ok(s) => store = Some(s),
                Err(e) => tracing::debug!(error = %e, "failover votes: etcd not reached"),
            }
        }
        // Rounds start every `every` (not `every` after the previous one
        // ended): a round's etcd calls and observation take time, and the
        // vote's freshness and the decision's reaction time count from here.
        let started = Instant::now();
        a.marks.start();
        if let Some(s) = &store
            && let Err(e) = a.round(s).await
        {
            tracing::warn!(error = %e, "failover votes: a round failed; trying again");
        }
        let took = started.elapsed();
        if took > every * 2 {
            tracing::warn!(observer = %a.own, took_ms = took.as_millis() as u64, parts = %a.marks.describe(),
                "failover votes: a slow round (the vote and the decision wait on it)");
        } else {
            tracing::debug!(observer = %a.own, took_ms = took.as_millis() as u64, parts = %a.marks.describe(), "failover votes: round");
        }
        let rest = every.saturating_sub(started.elapsed()).max(MIN_PAUSE);
        if pause(&a.d, rest).await {
            return;
        }
    }
}

impl Auto {
    fn config(&self) -> &Config {
        self.d
            .ctx
            .config
            .as_ref()
            .expect("the region tasks run with a configuration")
    }

    fn by(&self) -> String {
        format!("daemon@{}", self.own)
    }

    /// This daemon's region lease id: the key `<prefix>/leases/<own>` when
    /// this process holds it (the agent grants it; `None` until it has).
    async fn own_lease(&self, store: &AuthorityStore) -> Option<i64> {
        match store.lease_of(&self.own).await {
            Ok(Some(l))
                if l.holder
                    .as_ref()
                    .is_some_and(|h| h.pid == std::process::id()) =>
            {
                Some(l.lease_id)
            }
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(error = %e, "reading this daemon's lease");
                None
            }
        }
    }

    async fn round(&mut self, store: &AuthorityStore) -> Result<(), String> {
        let e = |e: lifeboat_region::authority::AuthorityError| e.to_string();
        self.rounds = self.rounds.wrapping_add(1);
        if self.rounds % RECORDS_EVERY == 1 {
            self.record_metrics(store).await;
        }
        // Independent reads, sent together: each is a round trip to etcd's
        // leader, across the regions' latency.
        let (authority, lease) = tokio::join!(store.authority(), self.own_lease(store));
        self.marks.mark("authority+lease");
        let Some(authority) = authority.map_err(e)?.map(|v| v.value) else {
            return Ok(());
        };
        let now = Utc::now();
        let vote = {
            let views = self.views.borrow();
            own_vote(self.config(), &self.own, &authority, &views, now)
        };
        if let Some(id) = lease {
            store.put_vote(id, &vote).await.map_err(e)?;
            self.marks.mark("vote");
        }
        // An unfinished automatic change (its leader died): resume it,
        // from any region (after the bump the new primary's daemon too).
        let progress = store.progress::<Progress>().await.map_err(e)?;
        self.marks.mark("progress");
        if let Some(p) = progress
            && !p.value.phase.is_terminal()
        {
            if p.value.plan.kind == Kind::Automatic {
                if let Some(id) = lease {
                    let req = request(&p.value.plan.to);
                    let auto = Automatic {
                        by: self.by(),
                        lease_gone_seen: None,
                        failure_at: p.value.plan.failure_at,
                        confirmation: p.value.confirmation.clone().unwrap_or(Confirmation {
                            confirmed_by: Vec::new(),
                            confirmed_at: now,
                            heartbeat_age_ms: 0,
                            byte_lag: None,
                            decided_by: self.by(),
                        }),
                    };
                    self.lead_and_drive(store, id, &req, &auto).await;
                }
            } else {
                let detail = format!(
                    "a {} from {} to {} is under way (phase {}): the daemons do not act until it ends",
                    p.value.plan.kind.as_str(),
                    p.value.plan.from,
                    p.value.plan.to,
                    p.value.phase.as_str()
                );
                let rec = DecisionRecord {
                    decision: "change_under_way".into(),
                    primary: authority.primary.clone(),
                    epoch: authority.epoch,
                    failed_votes: 0,
                    needed: 0,
                    detail,
                    decided_by: self.by(),
                    at: now,
                };
                self.publish(store, rec).await;
            }
            return Ok(());
        }
        if authority.primary == self.own {
            // The primary region does not judge itself.
            metrics::failover_decision(None);
            return Ok(());
        }
        let (records, primary_lease) =
            tokio::join!(store.votes(), store.lease_of(&authority.primary));
        self.marks.mark("votes+primary lease");
        let records = records.map_err(e)?;
        let primary_lease_alive = primary_lease.map_err(e)?.is_some();
        // Read back, so no earlier than etcd's answer: the moment from
        // which the driver may count the safety margin.
        let lease_gone_seen = (!primary_lease_alive).then(Instant::now);
        let max_age = crate::region::traffic::max_view_age(self.config());
        let votes = tally(&records, &authority.primary, authority.epoch, now, max_age);
        let vps = vantage_points(self.config(), &authority.primary);
        metrics::failover_votes(&votes, &vps);
        let mut o = Observation {
            primary: authority.primary.clone(),
            vantage_points: vps,
            votes,
            primary_lease_alive,
            candidates: Vec::new(),
            rpo_objective: self
                .config()
                .objective(REGION_FAILURE_SCENARIO)
                .and_then(|o| o.rpo.to_std().ok())
                .unwrap_or(Duration::from_secs(300)),
            automatic: self.fo.automatic(),
        };
        let mut decision = confirm::decide(&o);
        let confirmed = !matches!(
            decision,
            Decision::Healthy { .. } | Decision::AwaitLease { .. }
        );
        self.look_for_lags().await;
        if confirmed {
            // The candidates now; the failed primary is not looked at: a
            // silent (partitioned) one would cost the whole bound.
            o.candidates = self.candidates(&authority.primary).await;
            self.marks.mark("candidates");
            decision = unfenceable(self.config(), &authority.primary, confirm::decide(&o));
        }
        let rec = decision_record(&decision, &authority, &self.by(), now);
        self.publish(store, rec).await;
        self.marks.mark("decision");
        if let Decision::Failover {
            to,
            confirmed_by,
            heartbeat_age,
            byte_lag,
        } = decision
        {
            let Some(id) = lease else {
                tracing::warn!(observer = %self.own, "the failure is confirmed, but this daemon holds no region lease yet: it cannot campaign");
                return Ok(());
            };
            let auto = Automatic {
                by: self.by(),
                lease_gone_seen,
                failure_at: failure_at(&records, &confirmed_by, now),
                confirmation: Confirmation {
                    confirmed_by,
                    confirmed_at: now,
                    heartbeat_age_ms: u64::try_from(heartbeat_age.as_millis()).unwrap_or(u64::MAX),
                    byte_lag,
                    decided_by: self.by(),
                },
            };
            self.lead_and_drive(store, id, &request(&to), &auto).await;
        }
        Ok(())
    }

    /// The bound on one observation of the servers.
    fn observation_bound(&self) -> Duration {
        (self.fo.renew_interval() * 2).max(CANDIDATES_MIN_BOUND)
    }

    /// Takes a finished periodic look (its byte lags, reported while the
    /// primary answered), and starts the next one every [`WATCH_INTERVAL`]
    /// in a task of its own.
    async fn look_for_lags(&mut self) {
        if self.lag_look.as_ref().is_some_and(JoinHandle::is_finished)
            && let Some(look) = self.lag_look.take()
            && let Ok(round) = look.await
        {
            for p in round.standbys() {
                if let Some(b) = p.lag_bytes {
                    self.byte_lags.insert(p.region.clone(), b);
                }
            }
        }
        let due = self
            .last_observed
            .is_none_or(|t| t.elapsed() >= WATCH_INTERVAL);
        if due && self.lag_look.is_none() {
            self.last_observed = Some(Instant::now());
            let (d, bound) = (Arc::clone(&self.d), self.observation_bound());
            self.lag_look = Some(tokio::spawn(async move {
                let config = d
                    .ctx
                    .config
                    .as_ref()
                    .expect("the region tasks run with a configuration");
                observe::observe_within(&d.ctx, config, Some(bound)).await
            }));
        }
    }

    /// Every standby candidate (file order, the primary left out), observed
    /// now, with the byte lags last reported while the primary answered.
    async fn candidates(&mut self, primary: &str) -> Vec<Candidate> {
        // Bounded: a candidate may be unreachable by silence too.
        let names: Vec<String> = self
            .config()
            .regions_in_file_order()
            .into_iter()
            .map(|(n, _)| n.to_string())
            .filter(|n| n != primary)
            .collect();
        let round = observe::observe_regions_within(
            &self.d.ctx,
            self.config(),
            &names,
            Some(self.observation_bound()),
        )
        .await;
        round
            .observed
            .iter()
            .filter(|(n, _)| n != primary)
            .map(|(n, o)| Candidate {
                region: n.clone(),
                reachable: o.role == Role::Standby,
                heartbeat_age: round
                    .heartbeats
                    .get(n)
                    .map(|a| Duration::from_secs_f64(a.max(0.0))),
                byte_lag: self.byte_lags.get(n).copied(),
            })
            .collect()
    }

    /// Logs, exports and writes the decision when it changed.
    async fn publish(&mut self, store: &AuthorityStore, rec: DecisionRecord) {
        metrics::failover_decision(Some(&rec.decision));
        let key = (rec.decision.clone(), rec.detail.clone(), rec.epoch);
        if self.last.as_ref() == Some(&key) {
            return;
        }
        match rec.decision.as_str() {
            "healthy" => {
                tracing::info!(observer = %self.own, primary = %rec.primary, detail = %rec.detail, "failover decision: healthy")
            }
            "refused" => {
                tracing::error!(observer = %self.own, primary = %rec.primary, detail = %rec.detail, "failover decision: the primary region failed, but nothing may be promoted automatically")
            }
            word => {
                tracing::warn!(observer = %self.own, primary = %rec.primary, detail = %rec.detail, "failover decision: {word}")
            }
        }
        match store.put_decision(&rec).await {
            Ok(()) => self.last = Some(key),
            Err(e) => tracing::warn!(error = %e, "writing the failover decision to etcd failed"),
        }
    }

    /// Campaigns; as leader, runs (or resumes) the automatic change and
    /// resigns. A campaign not won within `lease_ttl` is withdrawn (the
    /// leader is busy with it, or will be found next round).
    async fn lead_and_drive(
        &mut self,
        store: &AuthorityStore,
        lease: i64,
        req: &Request,
        auto: &Automatic,
    ) {
        let candidate = format!("{}/pid {}", self.by(), std::process::id());
        let campaign_started = Instant::now();
        let won = tokio::time::timeout(
            self.fo.lease_ttl(),
            store.campaign_with(&candidate, lease, &self.own),
        )
        .await;
        let leadership = match won {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "campaigning in the failover election failed");
                return;
            }
            Err(_) => {
                let leader = store.leader().await.ok().flatten();
                tracing::info!(leader = ?leader, "another daemon leads the failover election");
                if let Err(e) = store.withdraw(lease).await {
                    tracing::warn!(error = %e, "withdrawing from the election failed; the candidacy ends with this daemon's lease");
                }
                return;
            }
        };
        tracing::warn!(observer = %self.own, to = %req.to, campaign_ms = campaign_started.elapsed().as_millis() as u64,
            "leading the failover election: driving the automatic failover");
        let own = self.own.clone();
        let result = driver::run_automatic(&self.d.ctx, req, auto, |n| {
            if n.ok {
                tracing::info!(observer = %own, phase = n.phase.as_str(), "failover step: {}", n.text);
            } else {
                tracing::warn!(observer = %own, phase = n.phase.as_str(), "failover step failed: {}", n.text);
            }
        })
        .await;
        match &result {
            Ok(r) => {
                tracing::warn!(from = %r.from, to = %r.to, epoch = r.epoch, resumed = r.resumed,
                rto_writes_seconds = ?r.record.as_ref().and_then(|x| x.rto_writes_seconds),
                rto_dns_seconds = ?r.record.as_ref().and_then(|x| x.rto_dns_seconds),
                "automatic failover done")
            }
            Err(e) => {
                tracing::error!(error = %e, "the automatic failover did not finish; its state is in etcd (`lifeboat region authority`)")
            }
        }
        if let Err(e) = leadership.resign().await {
            tracing::warn!(error = %e, "resigning from the failover election failed; the leadership ends with this daemon's lease");
        }
        self.record_metrics(store).await;
    }

    /// `lifeboat_failovers_total`.
    async fn record_metrics(&self, store: &AuthorityStore) {
        match store.failover_record_count().await {
            Ok(n) => metrics::failover_records(n),
            Err(e) => tracing::debug!(error = %e, "reading the failover records for the metrics"),
        }
    }
}

/// A failover decided from a primary region its agent cannot fence
/// (`manager: patroni` or `cnpg` without `failover.fence: revoke_login`)
/// is refused here, with the driver's own words
/// ([`driver::manager_guard`]), so that no daemon campaigns for a change
/// the driver would refuse, and the decision says what to do.
fn unfenceable(config: &Config, primary: &str, decision: Decision) -> Decision {
    let Decision::Failover { to, .. } = &decision else {
        return decision;
    };
    let manager = |name: &str| {
        crate::region::replicate::region(config, name)
            .map(|r| r.postgres.manager())
            .unwrap_or_default()
    };
    let fenced = crate::region::replicate::region(config, primary).is_ok_and(|r| {
        crate::region::managed_fence::managed_fenced(
            r,
            config.failover.as_ref().and_then(|f| f.fence.as_ref()),
        )
    });
    match driver::manager_guard(
        Kind::Automatic,
        primary,
        manager(primary),
        fenced,
        to,
        manager(to),
    ) {
        Ok(()) => decision,
        Err(e) => Decision::Refused {
            why: match &e.hint {
                Some(h) => format!("{}: {h}", e.message),
                None => e.message.clone(),
            },
        },
    }
}

/// An automatic change to `to`.
fn request(to: &str) -> Request {
    Request {
        to: to.to_string(),
        kind: Kind::Automatic,
        accept_data_loss: false,
        step_timeout: STEP_TIMEOUT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_796_000_000 + s, 0).unwrap()
    }

    fn vote(observer: &str, primary: &str, epoch: u64, failed: bool, written: i64) -> VoteRecord {
        VoteRecord {
            observer: observer.into(),
            primary: primary.into(),
            epoch,
            failed,
            failed_checks: Vec::new(),
            failing_since: failed.then(|| at(written - 5)),
            at: at(written),
        }
    }

    #[test]
    fn tally_table() {
        let max = Duration::from_secs(90);
        // (vote, counts as)
        let rows: Vec<(VoteRecord, Option<bool>)> = vec![
            (vote("eu-west", "us-east", 1, true, 100), Some(true)),
            (vote("eu-west", "us-east", 1, false, 100), Some(false)),
            // about another primary or epoch: no vote
            (vote("eu-west", "eu-west", 1, true, 100), None),
            (vote("eu-west", "us-east", 2, true, 100), None),
            // exactly max_age old counts; older does not
            (vote("eu-west", "us-east", 1, true, 10), Some(true)),
            (vote("eu-west", "us-east", 1, true, 9), None),
        ];
        for (v, want) in rows {
            let got = tally(std::slice::from_ref(&v), "us-east", 1, at(100), max);
            assert_eq!(got[0].primary_failed, want, "{v:?}");
            assert_eq!(got[0].from, v.observer);
        }
    }

    #[test]
    fn failure_at_is_the_earliest_of_the_confirming_votes() {
        let records = vec![
            vote("eu-west", "us-east", 1, true, 100),
            vote("witness", "us-east", 1, true, 98),
            vote("ap-south", "us-east", 1, true, 50),
        ];
        let by = vec!["eu-west".to_string(), "witness".to_string()];
        // ap-south did not confirm: its earlier time is not used.
        assert_eq!(failure_at(&records, &by, at(200)), at(93));
        assert_eq!(failure_at(&records, &[], at(200)), at(200));
        // Never later than now.
        assert_eq!(failure_at(&records, &by, at(90)), at(90));
    }

    #[test]
    fn decision_records_say_what_they_mean() {
        let auth = AuthorityRecord {
            primary: "us-east".into(),
            epoch: 3,
            changed_at: at(0),
            changed_by: "t".into(),
            reason: lifeboat_region::authority::ChangeReason::Initial,
        };
        let rows = [
            (
                Decision::Healthy {
                    failed_votes: 1,
                    needed: 2,
                },
                "healthy",
                "1 of the 2 votes needed",
            ),
            (
                Decision::AwaitLease {
                    confirmed_by: vec!["eu-west".into(), "witness".into()],
                },
                "await_lease",
                "its lease lives",
            ),
            (
                Decision::Failover {
                    to: "eu-west".into(),
                    confirmed_by: vec!["eu-west".into(), "witness".into()],
                    heartbeat_age: Duration::from_secs(2),
                    byte_lag: None,
                },
                "failover",
                "promoting eu-west",
            ),
            (
                Decision::Refused {
                    why: "run: lifeboat region failover --to eu-west --accept-data-loss".into(),
                },
                "refused",
                "--accept-data-loss",
            ),
        ];
        for (d, word, text) in rows {
            let r = decision_record(&d, &auth, "daemon@witness", at(1));
            assert_eq!(r.decision, word);
            assert!(r.detail.contains(text), "{}", r.detail);
            assert_eq!((r.primary.as_str(), r.epoch), ("us-east", 3));
        }
    }

    /// A confirmed failover from a primary its agent cannot fence is
    /// refused with what to do; to a managed region it stands; from a
    /// Patroni or CloudNativePG primary it stands only with the
    /// revoke_login fence.
    #[test]
    fn unfenceable_primary_table() {
        let yaml = |us: &str, eu: &str, failover: &str| {
            format!(
                "repository: {{url: /tmp/r}}\nregions:\n  us-east:\n    postgres: {{url: \"postgresql://u@h/d\", role: primary{us}}}\n  eu-west:\n    postgres: {{url: \"postgresql://u@h2/d\", role: standby, replicates_from: us-east{eu}}}\n{failover}"
            )
        };
        let patroni = ", manager: patroni, patroni: {url: \"http://p:8008\"}";
        let cnpg = ", manager: cnpg, cnpg: {namespace: db, cluster: pg}";
        let revoke = "failover:\n  etcd: {endpoints: [\"http://127.0.0.1:2379\"]}\n  fence: {revoke_login: {roles: [app]}}\n";
        let default_fence = "failover:\n  etcd: {endpoints: [\"http://127.0.0.1:2379\"]}\n";
        let failover = || Decision::Failover {
            to: "eu-west".into(),
            confirmed_by: vec!["witness".into()],
            heartbeat_age: Duration::from_secs(1),
            byte_lag: None,
        };
        for (us, eu, fo, refused) in [
            ("", "", "", false),
            ("", patroni, "", false),
            ("", cnpg, "", false),
            (patroni, "", "", true),
            (patroni, "", default_fence, true),
            (cnpg, patroni, "", true),
            // the Patroni primary's agent revokes LOGIN on its leader
            (patroni, "", revoke, false),
            (patroni, patroni, revoke, false),
            (cnpg, "", default_fence, true),
            // the CloudNativePG primary's agent revokes LOGIN through its -rw Service
            (cnpg, "", revoke, false),
            (cnpg, patroni, revoke, false),
        ] {
            let config = crate::config::parse(&yaml(us, eu, fo), "test.yaml").unwrap();
            match unfenceable(&config, "us-east", failover()) {
                Decision::Refused { why } => {
                    assert!(refused, "{us} → {eu} ({fo}): {why}");
                    assert!(why.contains("cannot fence"), "{why}");
                    assert!(
                        why.contains("lifeboat region failover --to eu-west"),
                        "{why}"
                    );
                }
                Decision::Failover { .. } => assert!(!refused, "{us} → {eu} ({fo})"),
                other => panic!("{other:?}"),
            }
        }
        // Other decisions pass through.
        let config = crate::config::parse(&yaml(patroni, "", ""), "test.yaml").unwrap();
        assert!(matches!(
            unfenceable(
                &config,
                "us-east",
                Decision::Healthy {
                    failed_votes: 0,
                    needed: 1
                }
            ),
            Decision::Healthy { .. }
        ));
    }
}
