//! Region leases: every region's daemon holds an etcd lease whose key
//! `<prefix>/leases/<region>` lives exactly as long as the lease. The bump of
//! a failover requires the old primary's key to be gone.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Compare, CompareOp, GetOptions, KeyValue, PutOptions, Txn, TxnOp};

use super::call;
use super::error::{AuthorityError, Failure};
use super::members::Members;
use super::record::{LeaseHolder, LeaseInfo, encode};
use super::settings::EtcdSettings;
use super::store::{
    AuthorityStore, check_region, describe_holder, settles, to_error, transient, txn_get,
};

/// A lease this process holds for a region, with the region's key attached.
/// Dropping it does not revoke it: the lease then expires after its TTL
/// (call [`RegionLease::revoke`] on a clean shutdown).
pub struct RegionLease {
    members: Arc<Members>,
    settings: EtcdSettings,
    region: String,
    key: String,
    id: i64,
    ttl: Duration,
}

impl std::fmt::Debug for RegionLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionLease")
            .field("region", &self.region)
            .field("key", &self.key)
            .field("id", &format_args!("{:#x}", self.id))
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl RegionLease {
    pub fn id(&self) -> i64 {
        self.id
    }

    /// The TTL etcd granted (it may raise a very short TTL to its minimum).
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// `<prefix>/leases/<region>`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// One renewal (retried within the request timeout): etcd's leader resets
    /// the lease to its full TTL, which is returned. The fence deadline
    /// counts from when the caller *sent* this renewal (take the time before
    /// calling). [`AuthorityError::LeaseExpired`] when etcd no longer knows
    /// the lease: the daemon must fence and grant a new one.
    ///
    /// Each attempt sends the renewal to every etcd member at once, each on
    /// its own connection ([`Members::any`]; a renewal is idempotent): a
    /// member cut off by a partition still looks connected until its
    /// keep-alive pings time out, and a renewal given to it alone hung until
    /// the attempt was cut; twice in a row that outlasted a fast-profile
    /// fence deadline and fenced a healthy primary (the fault suite, a
    /// standby region partitioned).
    pub async fn keep_alive(&mut self) -> Result<Duration, AuthorityError> {
        let budget = call::Budget::new(self.settings.request_timeout);
        let id = self.id;
        // Opens a keep-alive stream, sends one request and reads its answer
        // (a TTL <= 0 is "lease not found"); the stream is then dropped, so
        // a late answer cannot be mistaken for a later one. An answer that
        // is not transient settles it ("lease not found": the lease is
        // gone; a refused credential), whatever the others would answer.
        let renew = |c: etcd_client::Client| async move {
            c.lease_client().keep_alive(id).await.map(|_| ())
        };
        let renew = &renew;
        let result = call::retried(budget, || self.members.any(renew, settles)).await;
        match result {
            Ok(()) => Ok(self.ttl),
            Err(Failure::LeaseNotFound(_)) => Err(self.expired()),
            Err(f) => Err(to_error(&self.settings, "renew the region lease", f)),
        }
    }

    /// Revokes the lease: its key is deleted at once (a clean shutdown or a
    /// planned handover). An already expired lease is not an error.
    pub async fn revoke(self) -> Result<(), AuthorityError> {
        revoke(&self.members, &self.settings, self.id).await
    }

    fn expired(&self) -> AuthorityError {
        AuthorityError::LeaseExpired {
            region: self.region.clone(),
            lease_id: self.id,
        }
    }
}

async fn revoke(members: &Members, settings: &EtcdSettings, id: i64) -> Result<(), AuthorityError> {
    let budget = call::Budget::new(settings.request_timeout);
    let once =
        |c: etcd_client::Client| async move { c.lease_client().revoke(id).await.map(|_| ()) };
    let once = &once;
    match call::retried(budget, || members.one(once, transient)).await {
        Ok(()) | Err(Failure::LeaseNotFound(_)) => Ok(()),
        Err(f) => Err(to_error(settings, "revoke the region lease", f)),
    }
}

impl AuthorityStore {
    /// Grants a lease of `ttl` (whole seconds, rounded up) and puts
    /// `<prefix>/leases/<region>` attached to it, only if the key is absent
    /// (or already ours). Another live lease holding it is
    /// [`AuthorityError::RegionTaken`] (two daemons for one region); the new
    /// lease is then revoked.
    pub async fn grant(&self, region: &str, ttl: Duration) -> Result<RegionLease, AuthorityError> {
        check_region(region)?;
        let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let secs = i64::try_from(secs.max(1)).unwrap_or(i64::MAX);
        let granted = self
            .read("grant a region lease", |c| {
                let mut leases = c.lease_client();
                async move { leases.grant(secs, None).await }
            })
            .await?;
        let id = granted.id();
        let lease = RegionLease {
            members: self.members.clone(),
            settings: self.settings.clone(),
            region: region.to_string(),
            key: self.keys.lease(region),
            id,
            ttl: Duration::from_secs(u64::try_from(granted.ttl()).unwrap_or(0)),
        };
        match self.attach(&lease).await {
            Ok(()) => Ok(lease),
            Err(e) => {
                // Best effort: an orphan lease holds no key and expires anyway.
                let _ = revoke(&self.members, &self.settings, id).await;
                Err(e)
            }
        }
    }

    /// Puts the region's key with the lease if absent; sending it twice is
    /// safe (the second finds the key held by the same lease).
    async fn attach(&self, lease: &RegionLease) -> Result<(), AuthorityError> {
        let bytes = encode(&LeaseHolder::this_process(&lease.region))?;
        let key = lease.key.clone();
        let id = lease.id;
        let resp = self
            .read("take the region's lease key", |c| {
                let mut kv = c.kv_client();
                let txn = Txn::new()
                    .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(
                        key.clone(),
                        bytes.clone(),
                        Some(PutOptions::new().with_lease(id)),
                    )])
                    .or_else([TxnOp::get(key.clone(), None)]);
                async move { kv.txn(txn).await }
            })
            .await
            .map_err(|e| match e {
                AuthorityError::Etcd { detail, .. } if detail.contains("lease not found") => {
                    lease.expired()
                }
                e => e,
            })?;
        if resp.succeeded() {
            return Ok(());
        }
        match txn_get(&resp, 0) {
            Some(kv) if kv.lease() == id => Ok(()),
            Some(kv) => Err(AuthorityError::RegionTaken {
                region: lease.region.clone(),
                holder: describe_holder(&lease.region, &kv),
            }),
            None => Err(AuthorityError::Etcd {
                what: "take the region's lease key".to_string(),
                detail: "the key vanished within the transaction".to_string(),
            }),
        }
    }

    /// The region's live lease, if its key exists, with the TTL left.
    pub async fn lease_of(&self, region: &str) -> Result<Option<LeaseInfo>, AuthorityError> {
        check_region(region)?;
        let key = self.keys.lease(region);
        match self.get_kv(&key, "read a region's lease").await? {
            None => Ok(None),
            Some(kv) => Ok(Some(self.lease_info(region, &kv).await?)),
        }
    }

    /// Every region's live lease, by region name.
    pub async fn live_leases(&self) -> Result<Vec<LeaseInfo>, AuthorityError> {
        let prefix = self.keys.leases();
        let mut resp = self
            .read_either("list the region leases", |c| {
                let mut kv = c.kv_client();
                let prefix = prefix.clone();
                async move { kv.get(prefix, Some(GetOptions::new().with_prefix())).await }
            })
            .await?;
        let mut out = Vec::new();
        for kv in resp.take_kvs() {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let Some(region) = self.keys.region_of_lease_key(&key) else {
                continue;
            };
            out.push(self.lease_info(region, &kv).await?);
        }
        Ok(out)
    }

    /// A lease key's holder and its lease's remaining TTL (LeaseTimeToLive;
    /// zero when the lease has just expired and the key not yet gone).
    async fn lease_info(&self, region: &str, kv: &KeyValue) -> Result<LeaseInfo, AuthorityError> {
        let id = kv.lease();
        let ttl = self
            .read_either("read a lease's time to live", |c| {
                let mut leases = c.lease_client();
                async move { leases.time_to_live(id, None).await }
            })
            .await?
            .ttl();
        Ok(LeaseInfo {
            region: region.to_string(),
            lease_id: id,
            ttl_remaining: Duration::from_secs(u64::try_from(ttl).unwrap_or(0)),
            holder: serde_json::from_slice(kv.value()).ok(),
        })
    }
}
