//! The failsafe for a lost etcd (`failover.etcd_lost: keep_if_peers_agree`),
//! after Patroni's DCS failsafe mode: a primary whose agent cannot renew its
//! region lease keeps serving while **every** other daemon (each region's
//! and each witness's) vouches for it over the daemons' API, and is fenced
//! at the usual deadline as soon as one does not.
//!
//! Why it cannot make two primaries:
//! - A daemon vouches only for the primary and epoch of the authority it
//!   last read (one it never read since it started: no vouch). Whether it
//!   reaches etcd itself does not matter: a primary cut off from etcd alone
//!   (the others reach it, and its server) is not failed over
//!   automatically (the others' checks of it pass), and any change of
//!   primary freezes every vouching daemon first (below). A daemon cannot
//!   wait for etcd's silence to last a lease TTL before vouching either:
//!   it lost etcd when the primary did, and the primary's deadline comes
//!   `fence_guard` before a TTL.
//! - A change of primary (automatic or by the CLI), after the old
//!   primary's lease is gone, first **freezes** every other daemon for the
//!   old primary's epoch: from then on that daemon refuses to vouch for it,
//!   and answers how long ago it last vouched. The change then waits until
//!   a lease TTL and the safety margin have passed since the newest vouch.
//!   The old primary counts a vouch like a renewal sent when it asked (its
//!   fence deadline is `asked + lease_ttl - fence_guard`), and it needs all
//!   daemons, so once one is frozen its next deadline without a renewal
//!   fences it, and that deadline is before the wait ends.
//! - A daemon that restarted forgot its vouches: it answers a freeze as if
//!   it had vouched when it started. It forgot its freezes too, but it
//!   vouches again only after reading the authority, which by then names
//!   the new primary (or a higher epoch); until then it refuses.
//! - A daemon that cannot be asked to freeze holds the change up (retried
//!   until it answers): with this mode, a change of primary needs every
//!   daemon but the old primary's. With two regions and a witness that
//!   costs no availability (losing a second site loses etcd's majority,
//!   which stops every change anyway).
//!
//! Durations only, on each daemon's monotonic clock: a daemon reports the
//! *age* of its newest vouch, and the asker adds it to its own clock after
//! the answer arrived (later than the age was measured: conservative).
//!
//! - [`Voucher`]: one daemon's side, pure (the caller passes `now`).
//! - [`wait_after_freeze`]: how long a change waits after the freezes.
//! - [`peers`]: the HTTP calls between daemons.

pub mod peers;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// A primary's request: vouch for `region` as the primary at `epoch`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VouchRequest {
    pub region: String,
    pub epoch: u64,
}

/// The answer to a [`VouchRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VouchAnswer {
    pub vouched: bool,
    /// Why not, for the primary's log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// A change of primary's request: vouch no more for `region` at `epoch` or
/// below.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreezeRequest {
    pub region: String,
    pub epoch: u64,
}

/// The answer to a [`FreezeRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreezeAnswer {
    /// How long ago this daemon last vouched for the region (or started,
    /// whichever is later); `None`: it never vouched for it and started
    /// longer than a lease TTL ago.
    pub last_vouch_age_ms: Option<u64>,
}

/// One daemon's failsafe state.
#[derive(Clone, Debug)]
pub struct Voucher {
    lease_ttl: Duration,
    started: Instant,
    /// The authority this daemon last read: primary and epoch.
    authority: Option<(String, u64)>,
    /// Per region: the epoch and time of the newest vouch.
    vouched: BTreeMap<String, (u64, Instant)>,
    /// Per region: vouch no more at this epoch or below.
    frozen: BTreeMap<String, u64>,
}

impl Voucher {
    pub fn new(lease_ttl: Duration, now: Instant) -> Self {
        Voucher {
            lease_ttl,
            started: now,
            authority: None,
            vouched: BTreeMap::new(),
            frozen: BTreeMap::new(),
        }
    }

    /// This daemon read the authority: `primary` at `epoch`.
    pub fn authority_read(&mut self, primary: &str, epoch: u64) {
        if self.authority.as_ref().is_none_or(|(_, e)| epoch >= *e) {
            self.authority = Some((primary.to_string(), epoch));
        }
    }

    /// Whether this daemon vouches for `req` now (and records it when it does).
    pub fn vouch(&mut self, req: &VouchRequest, now: Instant) -> VouchAnswer {
        let refuse = |why: String| VouchAnswer {
            vouched: false,
            why: Some(why),
        };
        if let Some(&e) = self.frozen.get(&req.region)
            && req.epoch <= e
        {
            return refuse(format!(
                "a change of primary froze the failsafe for {} at epoch {e}",
                req.region
            ));
        }
        match &self.authority {
            None => {
                return refuse(
                    "this daemon has not read the authority since it started".to_string(),
                );
            }
            Some((p, e)) if *p != req.region || *e != req.epoch => {
                return refuse(format!(
                    "the authority this daemon last read names {p} at epoch {e}"
                ));
            }
            Some(_) => {}
        }
        self.vouched.insert(req.region.clone(), (req.epoch, now));
        VouchAnswer {
            vouched: true,
            why: None,
        }
    }

    /// Vouch no more for `req.region` at `req.epoch` or below; answers how
    /// long ago this daemon last vouched for it (its start counts as a
    /// vouch for a lease TTL: a restarted daemon forgot its vouches).
    pub fn freeze(&mut self, req: &FreezeRequest, now: Instant) -> FreezeAnswer {
        let e = self.frozen.entry(req.region.clone()).or_insert(req.epoch);
        *e = (*e).max(req.epoch);
        let last = self
            .vouched
            .get(&req.region)
            .filter(|(epoch, _)| *epoch <= req.epoch)
            .map(|(_, at)| *at);
        let since_start = now.saturating_duration_since(self.started);
        let start_counts = since_start < self.lease_ttl;
        let age = match (last, start_counts) {
            (Some(at), true) => Some(now.saturating_duration_since(at).min(since_start)),
            (Some(at), false) => Some(now.saturating_duration_since(at)),
            (None, true) => Some(since_start),
            (None, false) => None,
        };
        FreezeAnswer {
            last_vouch_age_ms: age.map(|a| u64::try_from(a.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

/// How long a change of primary waits after every daemon answered its
/// freeze: until a lease TTL plus the safety margin have passed since the
/// newest vouch (zero when none vouched).
pub fn wait_after_freeze(
    answers: &[FreezeAnswer],
    lease_ttl: Duration,
    margin: Duration,
) -> Duration {
    answers
        .iter()
        .filter_map(|a| a.last_vouch_age_ms)
        .map(|age| (lease_ttl + margin).saturating_sub(Duration::from_millis(age)))
        .max()
        .unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(6);

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }
    fn ask(region: &str, epoch: u64) -> VouchRequest {
        VouchRequest {
            region: region.into(),
            epoch,
        }
    }
    fn freeze(region: &str, epoch: u64) -> FreezeRequest {
        FreezeRequest {
            region: region.into(),
            epoch,
        }
    }

    /// A daemon started at t0 that read the authority (us-east, 3).
    fn cut_off(t0: Instant) -> Voucher {
        let mut v = Voucher::new(TTL, t0);
        v.authority_read("us-east", 3);
        v
    }

    #[test]
    fn vouches_only_for_the_authority_it_read() {
        let t0 = Instant::now();
        let mut v = cut_off(t0);
        assert!(v.vouch(&ask("us-east", 3), t0 + s(1)).vouched);
        // Another region, another epoch: refused.
        for req in [ask("eu-west", 3), ask("us-east", 2), ask("us-east", 4)] {
            let a = v.vouch(&req, t0 + s(2));
            assert!(!a.vouched, "{req:?}");
            assert!(a.why.unwrap().contains("names us-east at epoch 3"));
        }
        // The authority moved on (read again): no more vouching for us-east.
        v.authority_read("eu-west", 4);
        assert!(!v.vouch(&ask("us-east", 3), t0 + s(3)).vouched);
    }

    #[test]
    fn a_daemon_that_never_read_the_authority_does_not_vouch() {
        let t0 = Instant::now();
        let mut v = Voucher::new(TTL, t0);
        let a = v.vouch(&ask("us-east", 3), t0 + s(60));
        assert!(!a.vouched && a.why.unwrap().contains("has not read the authority"));
        // An older epoch read later does not replace a newer one.
        v.authority_read("eu-west", 4);
        v.authority_read("us-east", 3);
        assert!(!v.vouch(&ask("us-east", 3), t0 + s(60)).vouched);
        assert!(v.vouch(&ask("eu-west", 4), t0 + s(60)).vouched);
    }

    #[test]
    fn a_freeze_stops_vouching_at_that_epoch_and_reports_the_newest_vouch() {
        let t0 = Instant::now();
        let mut v = cut_off(t0);
        assert!(v.vouch(&ask("us-east", 3), t0 + s(10)).vouched);
        let f = v.freeze(&freeze("us-east", 3), t0 + s(12));
        assert_eq!(f.last_vouch_age_ms, Some(2000));
        let a = v.vouch(&ask("us-east", 3), t0 + s(13));
        assert!(!a.vouched && a.why.unwrap().contains("froze"));
        // A freeze at a lower epoch does not lower it.
        v.freeze(&freeze("us-east", 1), t0 + s(14));
        assert!(!v.vouch(&ask("us-east", 2), t0 + s(14)).vouched);
        // The region primary again at a later epoch: vouched for again.
        v.authority_read("us-east", 5);
        assert!(v.vouch(&ask("us-east", 5), t0 + s(15)).vouched);
    }

    #[test]
    fn a_daemon_started_within_a_ttl_answers_as_if_it_had_vouched_at_its_start() {
        let t0 = Instant::now();
        let mut v = Voucher::new(TTL, t0);
        assert_eq!(
            v.freeze(&freeze("us-east", 3), t0 + s(2)).last_vouch_age_ms,
            Some(2000)
        );
        assert_eq!(
            v.freeze(&freeze("us-east", 3), t0 + s(7)).last_vouch_age_ms,
            None,
            "a TTL after its start, it never vouched"
        );
        // A vouch younger than the start wins.
        let mut v = cut_off(t0);
        assert!(v.vouch(&ask("us-east", 3), t0 + s(3)).vouched);
        assert_eq!(
            v.freeze(&freeze("us-east", 3), t0 + s(4)).last_vouch_age_ms,
            Some(1000)
        );
    }

    #[test]
    fn the_wait_covers_a_ttl_and_the_margin_after_the_newest_vouch() {
        let a = |ms| FreezeAnswer {
            last_vouch_age_ms: ms,
        };
        assert_eq!(wait_after_freeze(&[], TTL, s(1)), Duration::ZERO);
        assert_eq!(wait_after_freeze(&[a(None)], TTL, s(1)), Duration::ZERO);
        assert_eq!(
            wait_after_freeze(&[a(Some(5000)), a(None), a(Some(2000))], TTL, s(1)),
            s(5)
        );
        assert_eq!(
            wait_after_freeze(&[a(Some(60_000))], TTL, s(1)),
            Duration::ZERO
        );
    }
}
