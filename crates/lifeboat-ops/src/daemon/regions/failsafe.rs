//! `failover.etcd_lost: keep_if_peers_agree` in the daemon (the rules and
//! why they are safe: `lifeboat_region::failsafe`; docs/failover.md, "When
//! etcd is unavailable").
//!
//! - Every daemon keeps a [`State`]: which authority it last read (the
//!   agent tells it), what it vouched for and what a change of primary
//!   froze. The API's `/api/v1/failsafe/vouch`
//!   and `/api/v1/failsafe/freeze` (the binary's `serve/http.rs`) answer
//!   from it.
//! - The primary's agent renews through [`Keeper::renew_or_vouch`]: etcd
//!   first; when etcd has not answered within a renew interval (or failed),
//!   every other daemon is asked at once to vouch, and the renewal counts
//!   when all of them did (the etcd renewal goes on meanwhile and wins if it
//!   answers).

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lifeboat_postgres::Secret;
use lifeboat_region::authority::AuthorityError;
use lifeboat_region::failsafe::peers::{self, Peer};
use lifeboat_region::failsafe::{FreezeAnswer, FreezeRequest, VouchAnswer, VouchRequest, Voucher};

use crate::config::{Config, DEFAULT_LEASE_TTL};
use crate::region::failover::failsafe::peers_except;

/// This daemon's side of the failsafe.
#[derive(Debug)]
pub struct State {
    voucher: Mutex<Voucher>,
}

impl State {
    pub fn new(config: &Config) -> Self {
        let ttl = config
            .failover
            .as_ref()
            .map_or(DEFAULT_LEASE_TTL, |f| f.lease_ttl());
        State {
            voucher: Mutex::new(Voucher::new(ttl, Instant::now())),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Voucher) -> T) -> T {
        let mut v = self
            .voucher
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut v)
    }

    /// This daemon read the authority: `primary` at `epoch`.
    pub fn authority_read(&self, primary: &str, epoch: u64) {
        self.with(|v| v.authority_read(primary, epoch));
    }

    pub fn vouch(&self, req: &VouchRequest) -> VouchAnswer {
        let a = self.with(|v| v.vouch(req, Instant::now()));
        if a.vouched {
            tracing::warn!(region = %req.region, epoch = req.epoch,
                "failsafe: vouched for the primary, whose agent gets no answer from etcd");
        } else {
            tracing::info!(region = %req.region, epoch = req.epoch, why = ?a.why,
                "failsafe: refused to vouch for the primary");
        }
        a
    }

    pub fn freeze(&self, req: &FreezeRequest) -> FreezeAnswer {
        let a = self.with(|v| v.freeze(req, Instant::now()));
        tracing::warn!(region = %req.region, epoch = req.epoch, last_vouch_age_ms = ?a.last_vouch_age_ms,
            "failsafe: a change of primary froze this daemon: no more vouching for that primary at that epoch");
        a
    }
}

/// The primary's side: asks the others to vouch when etcd does not answer.
pub struct Keeper {
    peers: Vec<Peer>,
    token: Secret,
    request: VouchRequest,
    /// How long etcd gets before the others are asked too.
    patience: Duration,
}

impl Keeper {
    /// `None` in `fence` mode, and (said in the log) without `serve.token`.
    pub fn new(
        config: &Config,
        token: Option<&str>,
        region: &str,
        epoch: u64,
        patience: Duration,
    ) -> Option<Self> {
        let peers = peers_except(config, region)?;
        let Some(token) = token else {
            tracing::error!(
                "failover.etcd_lost is keep_if_peers_agree, but serve.token is not set: the daemons cannot ask each other to vouch, so a primary that loses etcd is fenced as with etcd_lost: fence"
            );
            return None;
        };
        Some(Keeper {
            peers,
            token: Secret::new(token),
            request: VouchRequest {
                region: region.to_string(),
                epoch,
            },
            patience,
        })
    }

    /// `Ok` when every other daemon vouched; else who did not, and why.
    async fn vouched(&self) -> Result<(), String> {
        let answers = peers::vouch(&self.peers, &self.token, &self.request, self.patience).await;
        let missing: Vec<String> = answers
            .into_iter()
            .filter_map(|(name, a)| match a {
                Ok(a) if a.vouched => None,
                Ok(a) => Some(format!(
                    "{name} refused: {}",
                    a.why.unwrap_or_else(|| "no reason given".into())
                )),
                Err(e) => Some(format!("{name} did not answer: {e}")),
            })
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing.join("; "))
        }
    }

    /// Renews through `renewal` (etcd); when etcd has not answered within
    /// the patience, or failed other than "lease not found", the others
    /// are asked to vouch meanwhile. `Ok((ttl, true))` when the vouches
    /// carried it (the renewal counts from when it was sent, before the
    /// vouches: conservative).
    pub async fn renew_or_vouch<F>(
        &self,
        renewal: F,
        lease_ttl: Duration,
    ) -> Result<(Duration, bool), AuthorityError>
    where
        F: Future<Output = Result<Duration, AuthorityError>>,
    {
        tokio::pin!(renewal);
        let early = tokio::time::timeout(self.patience, &mut renewal).await;
        let etcd_failed = match early {
            Ok(Ok(ttl)) => return Ok((ttl, false)),
            Ok(Err(e @ AuthorityError::LeaseExpired { .. })) => return Err(e),
            Ok(Err(e)) => Some(e),
            Err(_) => None,
        };
        let vouches = self.vouched();
        tokio::pin!(vouches);
        let Some(e) = etcd_failed else {
            // etcd still may answer: whichever settles it first.
            return tokio::select! {
                r = &mut renewal => match r {
                    Ok(ttl) => Ok((ttl, false)),
                    Err(e @ AuthorityError::LeaseExpired { .. }) => Err(e),
                    Err(e) => self.settle(vouches.await, e, lease_ttl),
                },
                v = &mut vouches => match v {
                    Ok(()) => Ok((lease_ttl, true)),
                    Err(why) => {
                        tracing::warn!(region = %self.request.region, "failsafe: not every daemon vouched: {why}");
                        renewal.await.map(|ttl| (ttl, false))
                    }
                },
            };
        };
        self.settle(vouches.await, e, lease_ttl)
    }

    fn settle(
        &self,
        vouches: Result<(), String>,
        etcd_error: AuthorityError,
        lease_ttl: Duration,
    ) -> Result<(Duration, bool), AuthorityError> {
        match vouches {
            Ok(()) => Ok((lease_ttl, true)),
            Err(why) => {
                tracing::warn!(region = %self.request.region, "failsafe: not every daemon vouched: {why}");
                Err(etcd_error)
            }
        }
    }
}
