//! The vantage points' votes on the primary region, the latest failover
//! decision, and candidacies withdrawn from the election (issue 20,
//! "Automatic region failover").
//!
//! Votes live in etcd, not in the repository: the repository may be in the
//! failed region. Each daemon with `failover:` puts its verdict on the
//! primary region under `<prefix>/votes/<observer>`, attached to its own
//! region lease, so a dead observer's vote vanishes with its lease. The
//! latest decision (`<prefix>/decision`) is a plain key any deciding daemon
//! overwrites, for `region authority` and the status to show.

use chrono::{DateTime, Utc};
use etcd_client::{DeleteOptions, GetOptions, PutOptions};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::AuthorityError;
use super::record::{decode, encode};
use super::store::{AuthorityStore, check_region};

/// One vantage point's verdict on the primary region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteRecord {
    /// The vantage point (a region's daemon, or a witness).
    pub observer: String,
    /// The region judged: the authority's primary when the vote was cast.
    pub primary: String,
    /// The authority's epoch the vote was cast under; a vote of another
    /// epoch is about another primary and does not count.
    pub epoch: u64,
    /// Its health checks of `primary` failed, per their thresholds.
    pub failed: bool,
    /// The failed checks, sorted.
    #[serde(default)]
    pub failed_checks: Vec<String>,
    /// The earliest first failed probe of a failed check, as this vantage
    /// point estimates it (the flip minus threshold − 1 intervals).
    #[serde(default)]
    pub failing_since: Option<DateTime<Utc>>,
    /// When the vote was (re)written, on the observer's clock.
    pub at: DateTime<Utc>,
}

impl AuthorityStore {
    /// Puts `vote` at `<prefix>/votes/<observer>`, attached to `lease_id`
    /// (the observer's region lease). A plain put: idempotent, retried.
    pub async fn put_vote(&self, lease_id: i64, vote: &VoteRecord) -> Result<(), AuthorityError> {
        check_region(&vote.observer)?;
        let key = self.keys.vote(&vote.observer);
        let bytes = encode(vote)?;
        self.read_either("write this vantage point's vote", |c| {
            let mut kv = c.kv_client();
            let (key, bytes) = (key.clone(), bytes.clone());
            async move {
                kv.put(key, bytes, Some(PutOptions::new().with_lease(lease_id)))
                    .await
                    .map(|_| ())
            }
        })
        .await
        .map_err(|e| match e {
            AuthorityError::Etcd { detail, .. } if detail.contains("lease not found") => {
                AuthorityError::LeaseExpired {
                    region: vote.observer.clone(),
                    lease_id,
                }
            }
            e => e,
        })
    }

    /// Every vote in etcd (live observers only: the keys die with their
    /// leases), by observer name.
    pub async fn votes(&self) -> Result<Vec<VoteRecord>, AuthorityError> {
        let prefix = self.keys.votes();
        let mut resp = self
            .read_either("read the votes", |c| {
                let mut kv = c.kv_client();
                let prefix = prefix.clone();
                async move { kv.get(prefix, Some(GetOptions::new().with_prefix())).await }
            })
            .await?;
        let mut out = Vec::new();
        for kv in resp.take_kvs() {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            out.push(decode(&key, kv.value())?);
        }
        Ok(out)
    }

    /// Overwrites `<prefix>/decision` with the latest failover decision.
    pub async fn put_decision<T: Serialize>(&self, value: &T) -> Result<(), AuthorityError> {
        let key = self.keys.decision();
        let bytes = encode(value)?;
        self.read_either("write the failover decision", |c| {
            let mut kv = c.kv_client();
            let (key, bytes) = (key.clone(), bytes.clone());
            async move { kv.put(key, bytes, None).await.map(|_| ()) }
        })
        .await
    }

    /// The latest failover decision, if any daemon wrote one.
    pub async fn decision<T: DeserializeOwned>(&self) -> Result<Option<T>, AuthorityError> {
        let key = self.keys.decision();
        self.get_kv(&key, "read the failover decision")
            .await?
            .map(|kv| decode(&key, kv.value()))
            .transpose()
    }

    /// How many failover records etcd holds (a count, no values read).
    pub async fn failover_record_count(&self) -> Result<u64, AuthorityError> {
        let prefix = self.keys.failovers();
        let resp = self
            .read_either("count the failover records", |c| {
                let mut kv = c.kv_client();
                let prefix = prefix.clone();
                async move {
                    kv.get(
                        prefix,
                        Some(GetOptions::new().with_prefix().with_count_only()),
                    )
                    .await
                }
            })
            .await?;
        Ok(u64::try_from(resp.count()).unwrap_or(0))
    }

    /// Withdraws the candidacy of `lease_id` from the election (its key
    /// `<prefix>/election/<lease id in hex>`), after a campaign that was
    /// given up waiting: a queued candidate that nobody awaits must not
    /// become a leader that does nothing. Absent is not an error.
    pub async fn withdraw(&self, lease_id: i64) -> Result<(), AuthorityError> {
        let key = format!("{}/{lease_id:x}", self.keys.election());
        self.read("withdraw from the election", |c| {
            let mut kv = c.kv_client();
            let key = key.clone();
            async move { kv.delete(key, None::<DeleteOptions>).await.map(|_| ()) }
        })
        .await
    }
}

/// The latest failover decision, as `region authority` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// `healthy`, `await_lease`, `failover`, `refused` or `change_under_way`.
    pub decision: String,
    /// The primary region judged, and the authority's epoch.
    pub primary: String,
    pub epoch: u64,
    /// Votes saying the primary failed, and how many make a majority.
    pub failed_votes: usize,
    pub needed: usize,
    /// What it means and, for a refusal, what an operator can run.
    pub detail: String,
    /// The daemon that decided (`daemon@<observer>`).
    pub decided_by: String,
    pub at: DateTime<Utc>,
}
