//! The etcd authority as the configuration describes it: the settings from
//! `failover.etcd` (the password read from its reference now, never kept
//! elsewhere), the current authority record (created at epoch 1 from the
//! region the configuration declares primary when etcd has none yet), and
//! the view `region authority` prints.

use std::time::Duration;

use lifeboat_region::authority::{
    AuthorityError, AuthorityRecord, AuthorityStore, EtcdSettings, EtcdTls, LeaseInfo, Versioned,
};
use lifeboat_region::failover::machine::Progress;
use lifeboat_region::failover::record::FailoverRecord;
use lifeboat_region::topology::DeclaredRole;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::config::{Config, FailoverConfig};
use crate::context::Ctx;
use crate::error::{Error, Kind, Result};

/// `failover:` or a usage error saying how to add it.
pub fn failover_config(config: &Config) -> Result<&FailoverConfig> {
    config.failover.as_ref().ok_or_else(|| {
        Error::usage(
            "the configuration has no `failover:` section: there is no authority to change",
        )
        .with_hint("add `failover: {etcd: {endpoints: [...]}}`; see docs/failover.md")
    })
}

/// The etcd settings of `failover.etcd`, its password resolved.
pub async fn settings(ctx: &Ctx, f: &FailoverConfig) -> Result<EtcdSettings> {
    let mut s = EtcdSettings::new(f.etcd.endpoints.clone());
    s.prefix = f.prefix().to_string();
    s.tls = f.etcd.tls.as_ref().map(|t| EtcdTls {
        ca: t.ca.clone(),
        cert: t.cert.clone(),
        key: t.key.clone(),
    });
    s.user = f.etcd.user.clone();
    if let Some(p) = &f.etcd.password {
        let p = ctx
            .resolve(p)
            .await
            .map_err(|e| e.context("failover.etcd.password"))?;
        s.password = Some(Zeroizing::new(p));
    }
    // An operation must end well inside the lease's lifetime.
    s.request_timeout = s
        .request_timeout
        .min(f.lease_ttl() / 2)
        .max(Duration::from_secs(1));
    Ok(s)
}

pub async fn connect(ctx: &Ctx, config: &Config) -> Result<AuthorityStore> {
    let f = failover_config(config)?;
    AuthorityStore::connect(settings(ctx, f).await?)
        .await
        .map_err(authority_error)
}

/// The region the configuration declares primary.
pub fn declared_primary(config: &Config) -> Result<String> {
    config
        .regions()
        .iter()
        .find(|(_, r)| r.postgres.role() == DeclaredRole::Primary)
        .map(|(n, _)| n.to_string())
        .ok_or_else(|| Error::usage("no region is declared `role: primary` in regions:"))
}

/// The authority record; created at epoch 1 naming the declared primary
/// when etcd holds none (idempotent: of two first callers one creates it).
pub async fn current(
    store: &AuthorityStore,
    config: &Config,
    by: &str,
) -> Result<Versioned<AuthorityRecord>> {
    if let Some(v) = store.authority().await.map_err(authority_error)? {
        return Ok(v);
    }
    let primary = declared_primary(config)?;
    store
        .initialize(&primary, by)
        .await
        .map_err(authority_error)
}

/// Who acts: `operator@<host>` for the CLI.
pub fn operator() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into());
    format!("operator@{host}")
}

/// An etcd failure as Lifeboat's error: unreachable or no quorum is a
/// failure (exit 1) saying no promotion can happen; refused credentials are
/// `Auth`; settings are usage.
pub fn authority_error(e: AuthorityError) -> Error {
    let kind = match &e {
        AuthorityError::Settings { .. } => Kind::Usage,
        AuthorityError::Unauthorized { .. } => Kind::Auth,
        _ => Kind::Failure,
    };
    let hint = match &e {
        AuthorityError::Unavailable { .. } => Some(
            "without a majority of etcd members nothing can be promoted; check the members \
             (`etcdctl endpoint health --cluster`) and the network between them",
        ),
        _ => None,
    };
    let err = Error::new(kind, e.to_string());
    match hint {
        Some(h) => err.with_hint(h),
        None => err,
    }
}

/// A live region lease.
#[derive(Debug, Serialize)]
pub struct LeaseView {
    pub region: String,
    pub lease_id: i64,
    pub ttl_remaining_seconds: u64,
    pub holder: Option<lifeboat_region::authority::LeaseHolder>,
}

impl From<LeaseInfo> for LeaseView {
    fn from(l: LeaseInfo) -> Self {
        LeaseView {
            region: l.region,
            lease_id: l.lease_id,
            ttl_remaining_seconds: l.ttl_remaining.as_secs(),
            holder: l.holder,
        }
    }
}

/// What `region authority` shows.
#[derive(Debug, Serialize)]
pub struct AuthorityView {
    pub endpoints: String,
    pub prefix: String,
    pub authority: Option<AuthorityRecord>,
    pub leases: Vec<LeaseView>,
    pub progress: Option<Progress>,
    pub failovers: Vec<FailoverRecord>,
    /// The latest automatic-failover decision a daemon wrote.
    pub decision: Option<lifeboat_region::authority::DecisionRecord>,
}

/// The authority, the live leases, a change under way and the last
/// failover records (newest first), read from etcd; nothing is created.
pub async fn view(ctx: &Ctx, records: usize) -> Result<AuthorityView> {
    let config = crate::region::traffic::config_of(ctx)?;
    let store = connect(ctx, config).await?;
    let authority = store
        .authority()
        .await
        .map_err(authority_error)?
        .map(|v| v.value);
    let leases = store
        .live_leases()
        .await
        .map_err(authority_error)?
        .into_iter()
        .map(LeaseView::from)
        .collect();
    let progress = store
        .progress::<Progress>()
        .await
        .map_err(authority_error)?
        .map(|v| v.value);
    let failovers = store
        .failover_records::<FailoverRecord>(records)
        .await
        .map_err(authority_error)?
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    let decision = store.decision().await.map_err(authority_error)?;
    Ok(AuthorityView {
        endpoints: store.settings().endpoint_list(),
        prefix: store.settings().prefix.clone(),
        authority,
        leases,
        progress,
        failovers,
        decision,
    })
}
