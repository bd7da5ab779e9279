//! The agent (issue 20, "Coordination and fencing"; docs/failover.md, "The
//! agent"): with `failover:` configured, this daemon holds its region's
//! etcd lease, and beside the authority's primary it fences its PostgreSQL
//! before that lease can expire.
//!
//! - Every region: connect to etcd (retried every `renew_interval` while
//!   it is unavailable: backups go on, `lifeboat_authority_reachable` says
//!   0), read the authority record (created from the declared primary when
//!   etcd has none), grant the region lease, renew it every
//!   `renew_interval`; a lease etcd no longer knows is granted again.
//! - Beside the primary, in agent mode (`pgdata` set, control `pg_ctl` or
//!   `systemd`; or a `manager: patroni` or `manager: cnpg` region with
//!   `failover.fence: revoke_login`, whose fence is
//!   `region::managed_fence`'s, on the Patroni leader or through the CNPG
//!   `-rw` Service; for CNPG the `Cluster`'s managed roles are checked when
//!   guarding starts, `region::cnpg_fence`): the renewals run through [`fence::run_guard`], the fence
//!   watchdog (`lifeboat fence-watchdog`) is started and fed every new
//!   deadline (plus [`watchdog_slack`], so that a live agent's configured
//!   fence comes first and the watchdog is the backstop for its death). At
//!   the deadline without a renewal, or as soon as etcd says the lease is
//!   gone, the configured fence runs (then the region's Deployments, when
//!   configured, are scaled to 0). The server then stays fenced, and
//!   while the authority names this region the agent takes no lease (so
//!   the other regions can fail over); it never unfences.
//! - A region the authority does not name, whose server is a writable
//!   primary at an older epoch than the authority's ([`stale_primary`]), is
//!   fenced at once.
//! - Without a lease (etcd unreachable when the daemon starts, a lease
//!   lost while holding, a grant refused): a writable primary here is
//!   fenced once the fence deadline after the last renewal (after the
//!   daemon's start when it never had one) has passed, whatever the
//!   authority says ([`Agent::guard_without_lease`]).
//! - SIGTERM beside the primary: the server is fenced (the configured
//!   method; the watchdog stops it if that fails) and the lease is NOT
//!   revoked, so nothing is promoted elsewhere before it expires. The
//!   server never outlives the agent's lease; the price is that restarting
//!   the daemon beside a primary fences it (adoption of a running watchdog
//!   by the next daemon is not built). Elsewhere the lease is revoked.

use std::ffi::OsString;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lifeboat_region::authority::{AuthorityError, AuthorityRecord, AuthorityStore, RegionLease};
use lifeboat_region::fence::{self, Feeder, FenceMethod, FenceTiming, GuardOutcome, Watchdog};
use lifeboat_region::replication::target::StandbyTarget;
use lifeboat_region::replication::{Retry, Role, Server, observe};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use super::failsafe::Keeper;
use super::rejoin::{self as auto, AutoRejoin, Finished, Seen};
use super::{metrics, named_standby, pause, server};
use crate::config::{Config, FailoverConfig, FenceConfig, PgManager, RegionConfig, ServerControl};
use crate::daemon::{Daemon, stopped};
use crate::region::failover::authority as auth;
use crate::region::managed_fence::{self, managed_fenced};

/// How long a fence (stop, or revoke and terminate) may take.
const FENCE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long scaling a fenced region's writers to 0 may take.
const WRITERS_TIMEOUT: Duration = Duration::from_secs(60);

/// How long starting a named standby that is down may take (`pg_ctl -w`).
const STANDBY_START_TIMEOUT: Duration = Duration::from_secs(60);

/// Observing the own server before deciding on a fence: brief.
const OBSERVE_RETRY: Retry = Retry {
    attempts: 2,
    first_delay: Duration::from_millis(100),
    max_delay: Duration::from_millis(500),
};

/// Whether the daemon of `region` must fence its server because the
/// authority names another region (pure): its server is a writable primary
/// and the authority's epoch is higher than the last epoch this region was
/// primary under (`own_epoch`: the highest seen in etcd naming it, or
/// written in its server's `lifeboat.authority`). Without any own epoch,
/// only an authority changed at least once (epoch > 1) makes a writable
/// server stale: at epoch 1 a writable server outside the declared primary
/// is a region being set up, not a returning primary.
pub fn stale_primary(
    region: &str,
    authority: &AuthorityRecord,
    own_epoch: Option<u64>,
    writable: bool,
) -> bool {
    if authority.primary == region || !writable {
        return false;
    }
    match own_epoch {
        Some(e) => authority.epoch > e,
        None => authority.epoch > 1,
    }
}

/// Whether a writable server in `region`, whose daemon holds no lease past
/// the fence deadline, must be fenced (pure): yes when it was promoted
/// under the authority for this region (its highest `lifeboat.authority`
/// row names it, `row_region`), or when the authority last read names this
/// region, or, before etcd answered once, when the configuration declares
/// it primary. A server of a region the authority names elsewhere that was
/// never promoted (a standby region being set up at epoch 1) is left
/// alone.
pub fn must_fence_without_lease(
    region: &str,
    known_primary: Option<&str>,
    declared_primary: bool,
    row_region: Option<&str>,
) -> bool {
    if row_region == Some(region) {
        return true;
    }
    match known_primary {
        Some(p) => p == region,
        None => declared_primary,
    }
}

/// What the watchdog's deadline adds to the agent's: half the fence guard
/// (at most 1 s), so the agent's own fence runs first while it lives and
/// the watchdog still stops the server well before the lease can expire.
pub fn watchdog_slack(timing: &FenceTiming) -> Duration {
    (timing.fence_guard / 2).min(Duration::from_secs(1))
}

/// `failover.fence` as the fence library's method.
pub fn fence_method(f: &FailoverConfig) -> FenceMethod {
    match &f.fence {
        None | Some(FenceConfig::Stop) => FenceMethod::Stop,
        Some(FenceConfig::RevokeLogin { roles }) => FenceMethod::RevokeLogin {
            roles: roles.clone(),
        },
    }
}

/// The timing of `failover:`.
pub fn timing(f: &FailoverConfig) -> FenceTiming {
    FenceTiming {
        lease_ttl: f.lease_ttl(),
        renew_interval: f.renew_interval(),
        fence_guard: f.fence_guard(),
    }
}

/// Agent mode: Lifeboat runs beside the server and may stop it (`pgdata`
/// set, control `pg_ctl` or `systemd`, not `manager`).
pub fn agent_mode(r: &RegionConfig) -> bool {
    r.postgres.pgdata().is_some() && !matches!(r.postgres.control(), Some(ServerControl::Manager))
}

/// Whether the agent guards region `r` as its primary: agent mode, or a
/// Patroni or CloudNativePG primary it fences with `revoke_login`
/// ([`managed_fenced`]).
pub fn guarded(r: &RegionConfig, f: &FailoverConfig) -> bool {
    agent_mode(r) || managed_fenced(r, f.fence.as_ref())
}

/// What the fence acts on.
#[derive(Clone)]
enum FenceTarget {
    /// The server this daemon runs beside (`pgdata`): the configured method.
    Local(Box<StandbyTarget>),
    /// Region `name`'s managed primary (Patroni or CloudNativePG):
    /// revoke_login on it (`region::managed_fence`).
    Managed { name: String },
}

/// Runs `method` on `target`.
async fn apply_fence(
    d: &Daemon,
    target: &FenceTarget,
    method: &FenceMethod,
    epoch: u64,
) -> Result<fence::FenceReport, String> {
    match target {
        FenceTarget::Local(t) => fence::fence(t, method, epoch, FENCE_TIMEOUT)
            .await
            .map_err(|e| e.to_string()),
        FenceTarget::Managed { name } => {
            let FenceMethod::RevokeLogin { roles } = method else {
                return Err(
                    "a Patroni or CloudNativePG primary is fenced with revoke_login only".into(),
                );
            };
            let r = d
                .ctx
                .config
                .as_ref()
                .ok_or("no configuration")?
                .region(name)
                .map_err(|e| e.to_string())?;
            managed_fence::fence(&d.ctx, name, r, roles, epoch, FENCE_TIMEOUT).await
        }
    }
}

/// The configuration file as an absolute path, for the watchdog (it runs
/// in `/`): the one given, else `./lifeboat.yaml`.
fn config_path(d: &Daemon) -> std::io::Result<std::path::PathBuf> {
    let p = d
        .ctx
        .global
        .config
        .clone()
        .unwrap_or_else(|| crate::context::DEFAULT_CONFIG.into());
    std::fs::canonicalize(p)
}

/// The watchdog's argument vector: this program, `fence-watchdog`, the data
/// directory, and for systemd control the unit's immediate stop. For a
/// Patroni or CloudNativePG region (no data directory here): the configuration file, the
/// region and the epoch; the watchdog reads the connection and the roles
/// from the file and the secrets from where it says (the environment it
/// inherits, files), never from the command line.
fn watchdog_argv(
    d: &Daemon,
    name: &str,
    r: &RegionConfig,
    epoch: u64,
) -> std::io::Result<Vec<OsString>> {
    let exe = std::env::current_exe()?;
    if !agent_mode(r) {
        return Ok(vec![
            exe.into(),
            "--config".into(),
            config_path(d)?.into(),
            "fence-watchdog".into(),
            "--region".into(),
            name.into(),
            "--epoch".into(),
            epoch.to_string().into(),
        ]);
    }
    let pgdata = r.postgres.pgdata().unwrap_or(std::path::Path::new("/"));
    let mut argv: Vec<OsString> = vec![
        exe.into(),
        "fence-watchdog".into(),
        "--pgdata".into(),
        pgdata.into(),
    ];
    if let Some(ServerControl::Systemd(s)) = r.postgres.control() {
        for a in ["--stop-command", "systemctl", "kill", "-s", "SIGQUIT"] {
            argv.push(a.into());
        }
        argv.push(s.unit.clone().into());
    }
    Ok(argv)
}

/// Starts the agent when `failover:` is configured.
pub fn spawn(d: &Arc<Daemon>, config: &Config, region: &str) -> Option<JoinHandle<()>> {
    config.failover.as_ref()?;
    metrics::describe_agent();
    metrics::agent_started(region);
    Some(tokio::spawn(run(Arc::clone(d), region.to_string())))
}

/// What the agent remembers across leases and etcd connections.
struct Agent {
    d: Arc<Daemon>,
    region: String,
    timing: FenceTiming,
    method: FenceMethod,
    /// The highest epoch under which etcd named this region primary.
    own_epoch: Option<u64>,
    /// This daemon fenced its server; it does not unfence.
    fenced: bool,
    /// The highest epoch naming this region when it was fenced: a later
    /// one naming it again means a change of primary promoted this
    /// region's server since (rejoined, then promoted), and the fence is
    /// over (see [`Agent::note`]).
    fenced_under: u64,
    /// The highest authority epoch read so far.
    latest_epoch: u64,
    /// The running watchdog; dropped only deliberately (a drop closes its
    /// pipe, and it stops the server at once).
    feeder: Arc<Mutex<Option<Feeder>>>,
    /// "agent mode is off" logged once.
    told_no_agent: bool,
    /// Whether the CloudNativePG `Cluster`'s managed roles were checked
    /// against the fence's roles (once, when guarding starts).
    cnpg_checked: bool,
    /// When the last successful grant or renewal of the current lease was
    /// sent: a guard's deadline counts from it.
    last_renewed: Arc<std::sync::Mutex<Instant>>,
    /// `failover.auto_rejoin`: a running rejoin, or when to look again.
    rejoin: AutoRejoin,
    /// The primary region of the authority record last read (`None`
    /// before etcd answered once).
    known_primary: Option<String>,
    /// "fenced, holding no lease" logged once.
    told_fenced_no_lease: bool,
    /// The task scaling the region's writers to 0 after a fence
    /// ([`Self::fence_writers`]): a rejoin waits for it first, so its
    /// capacity step brings them back after, never before, they went down.
    writers_down: Option<tokio::task::JoinHandle<()>>,
}

/// Why a phase with one lease ended.
enum End {
    Shutdown,
    /// etcd no longer knows the lease (or it could not be granted): grant again.
    LeaseLost,
    /// Re-decide between guarding and holding with the same lease.
    Again,
}

async fn run(d: Arc<Daemon>, region: String) {
    let Some(failover) = d.ctx.config.as_ref().and_then(|c| c.failover.clone()) else {
        return;
    };
    let mut a = Agent {
        timing: timing(&failover),
        method: fence_method(&failover),
        d,
        region,
        own_epoch: None,
        fenced: false,
        fenced_under: 0,
        latest_epoch: 0,
        feeder: Arc::new(Mutex::new(None)),
        told_no_agent: false,
        cnpg_checked: false,
        last_renewed: Arc::new(std::sync::Mutex::new(Instant::now())),
        rejoin: AutoRejoin::default(),
        known_primary: None,
        told_fenced_no_lease: false,
        writers_down: None,
    };
    tracing::info!(region = %a.region, fence = a.method.name(), lease_ttl = ?a.timing.lease_ttl,
        renew_interval = ?a.timing.renew_interval, fence_guard = ?a.timing.fence_guard,
        "failover agent: holding this region's etcd lease");
    let mut store: Option<AuthorityStore> = None;
    loop {
        if a.d.shutting_down() {
            return;
        }
        let s = match &store {
            Some(s) => s.clone(),
            None => match tokio::time::timeout_at(a.unleased_budget().into(), a.connect()).await {
                Ok(Some(s)) => {
                    store = Some(s.clone());
                    s
                }
                Ok(None) | Err(_) => {
                    a.guard_without_lease().await;
                    if pause(&a.d, a.timing.renew_interval).await {
                        return;
                    }
                    continue;
                }
            },
        };
        match a.with_lease(&s).await {
            End::Shutdown => return,
            End::LeaseLost | End::Again => {
                a.guard_without_lease().await;
                if pause(&a.d, a.timing.renew_interval).await {
                    return;
                }
            }
        }
    }
}

impl Agent {
    fn renewed_at(&self, sent: Instant) {
        if let Ok(mut t) = self.last_renewed.lock() {
            *t = sent;
        }
    }

    fn last_renewed(&self) -> Instant {
        self.last_renewed
            .lock()
            .map(|t| *t)
            .unwrap_or_else(|_| Instant::now() - self.timing.lease_ttl)
    }

    fn config(&self) -> &Config {
        self.d
            .ctx
            .config
            .as_ref()
            .expect("the agent runs with a configuration")
    }

    fn region_config(&self) -> Option<&RegionConfig> {
        self.config().region(&self.region).ok()
    }

    /// Whether this daemon guards its region's server as primary ([`guarded`]).
    fn guarded(&self) -> bool {
        match (self.region_config(), self.config().failover.as_ref()) {
            (Some(r), Some(f)) => guarded(r, f),
            _ => false,
        }
    }

    async fn connect(&self) -> Option<AuthorityStore> {
        match auth::connect(&self.d.ctx, self.config()).await {
            Ok(s) => {
                metrics::authority_reachable(true);
                Some(s)
            }
            Err(e) => {
                metrics::authority_reachable(false);
                tracing::error!(error = %e, "cannot reach etcd (failover.etcd): this daemon holds no region lease; backups go on, nothing is promoted anywhere without etcd; retrying");
                None
            }
        }
    }

    /// The authority record, read (or initialized); records the epoch.
    async fn authority(&mut self, store: &AuthorityStore) -> Option<AuthorityRecord> {
        let by = format!("daemon@{}", self.region);
        match auth::current(store, self.config(), &by).await {
            Ok(v) => {
                metrics::authority_reachable(true);
                self.note(&v.value);
                Some(v.value)
            }
            Err(e) => {
                metrics::authority_reachable(false);
                tracing::warn!(error = %e, "reading the authority record from etcd failed");
                None
            }
        }
    }

    fn note(&mut self, r: &AuthorityRecord) {
        metrics::authority_epoch(r.epoch);
        self.d.failsafe.authority_read(&r.primary, r.epoch);
        self.latest_epoch = self.latest_epoch.max(r.epoch);
        if self.rejoin.authority_seen(r.epoch) {
            tracing::warn!(region = %self.region, epoch = r.epoch,
                "auto_rejoin: the authority moved on while a rejoin ran; its last steps (verify, DNS) are abandoned and the server is looked at again");
        }
        self.known_primary = Some(r.primary.clone());
        if r.primary == self.region {
            // Its writers are looked at only while it is a standby.
            metrics::writers_held_down(&self.region, None);
            self.own_epoch = Some(self.own_epoch.map_or(r.epoch, |e| e.max(r.epoch)));
            if self.fenced && self.fenced_under == 0 {
                // Fenced before any authority was read (etcd down when the
                // daemon started): the fence counts as under this epoch.
                self.fenced_under = r.epoch;
            } else if self.fenced && r.epoch > self.fenced_under {
                // Promoted again by a change of primary (which promotes
                // only a standby): the server this daemon fenced was
                // rejoined since, and is the primary of this epoch. Without
                // this the agent held the new primary's lease unguarded (no
                // fence deadline, no watchdog) when the rejoin's outcome
                // had not reached it before the promotion (the fault suite).
                tracing::info!(region = %self.region, epoch = r.epoch, fenced_under = self.fenced_under,
                    "the authority names this region again at a newer epoch: its server was rejoined and promoted since; no longer fenced");
                self.fenced = false;
                self.told_fenced_no_lease = false;
                metrics::fenced(&self.region, false);
            }
        }
    }

    fn guards(&mut self, r: &AuthorityRecord) -> bool {
        if r.primary != self.region || self.fenced {
            return false;
        }
        let agent = self.guarded();
        if !agent && !self.told_no_agent {
            self.told_no_agent = true;
            tracing::warn!(region = %self.region, "this region is the authority's primary but not in agent mode (regions.<name>.postgres.pgdata with control pg_ctl or systemd; for manager: patroni or cnpg, failover.fence revoke_login): the daemon holds its lease but cannot fence its server or start the watchdog");
        }
        if agent && !self.cnpg_checked {
            self.cnpg_checked = true;
            self.check_cnpg_roles();
        }
        agent
    }

    /// For a `manager: cnpg` primary: the `Cluster`'s managed roles checked
    /// against the fence's roles, in the background (the Kubernetes API
    /// must not delay the guard), logged loudly when the operator would
    /// give a fenced role LOGIN back (`region::cnpg_fence`).
    fn check_cnpg_roles(&self) {
        let Some(r) = self.region_config() else {
            return;
        };
        if r.postgres.manager() != PgManager::Cnpg {
            return;
        }
        let FenceMethod::RevokeLogin { roles } = &self.method else {
            return;
        };
        let (d, name, r, roles) = (
            self.d.clone(),
            self.region.clone(),
            r.clone(),
            roles.clone(),
        );
        tokio::spawn(async move {
            crate::region::cnpg_fence::check(&d.ctx, &name, &r, &roles).await;
        });
    }

    /// One lease: grant it, then guard or hold until it is lost or the
    /// daemon stops.
    async fn with_lease(&mut self, store: &AuthorityStore) -> End {
        let budget = self.unleased_budget();
        let Ok(Some(mut record)) =
            tokio::time::timeout_at(budget.into(), self.authority(store)).await
        else {
            return End::LeaseLost;
        };
        // A fenced server in the region the authority names: holding a lease
        // would tell the other regions this primary lives, and no failover
        // would replace it. None is taken until the authority moves on.
        if self.fenced && record.primary == self.region {
            if !self.told_fenced_no_lease {
                self.told_fenced_no_lease = true;
                tracing::warn!(region = %self.region, "this region's server is fenced and the authority still names it: holding no region lease, so the other regions can fail over");
            }
            return End::LeaseLost;
        }
        let sent = Instant::now();
        let granted = tokio::time::timeout_at(
            budget.into(),
            store.grant(&self.region, self.timing.lease_ttl),
        )
        .await;
        let Ok(granted) = granted else {
            tracing::warn!(region = %self.region, "granting this region's lease did not answer in time; retrying");
            return End::LeaseLost;
        };
        let lease = match granted {
            Ok(l) => {
                metrics::authority_reachable(true);
                l
            }
            Err(e) => {
                if !matches!(e, AuthorityError::RegionTaken { .. }) {
                    metrics::authority_reachable(false);
                }
                tracing::warn!(error = %e, region = %self.region, "granting this region's lease failed; retrying");
                return End::LeaseLost;
            }
        };
        tracing::info!(region = %self.region, lease = format_args!("{:x}", lease.id()), ttl = ?lease.ttl(), "region lease granted");
        self.renewed_at(sent);
        let lease = Arc::new(Mutex::new(lease));
        loop {
            let end = if self.guards(&record) {
                let since = self.last_renewed();
                self.guard(store, &lease, since, &record).await
            } else {
                self.hold(store, &lease, &mut record).await
            };
            match end {
                End::Again => {
                    if let Some(r) = self.authority(store).await {
                        record = r;
                    }
                }
                End::Shutdown => {
                    if record.primary != self.region {
                        let l = Arc::try_unwrap(lease).map(Mutex::into_inner);
                        if let Ok(l) = l
                            && let Err(e) = l.revoke().await
                        {
                            tracing::warn!(error = %e, "revoking the region lease at shutdown failed; it expires after its TTL");
                        }
                    } else {
                        tracing::info!(region = %self.region, "shutdown beside the primary: the region lease is left to expire, so no region is promoted before it does");
                    }
                    return End::Shutdown;
                }
                End::LeaseLost => return End::LeaseLost,
            }
        }
    }

    /// Renews the lease without a fence deadline (a standby region, a
    /// fenced or non-agent primary); fences a stale primary at once.
    async fn hold(
        &mut self,
        store: &AuthorityStore,
        lease: &Arc<Mutex<RegionLease>>,
        record: &mut AuthorityRecord,
    ) -> End {
        metrics::fence_deadline(&self.region, None);
        loop {
            self.check_stale(record).await;
            self.auto_rejoin(record).await;
            if pause(&self.d, self.timing.renew_interval).await {
                return End::Shutdown;
            }
            let sent = Instant::now();
            let renewed = tokio::time::timeout(self.timing.lease_ttl, async {
                lease.lock().await.keep_alive().await
            })
            .await;
            match renewed {
                Ok(Ok(_)) => {
                    self.renewed_at(sent);
                    metrics::lease_renewed(&self.region);
                    metrics::authority_reachable(true);
                }
                Ok(Err(AuthorityError::LeaseExpired { .. })) => {
                    metrics::lease_renewal_failed(&self.region);
                    tracing::warn!(region = %self.region, "etcd no longer knows this region's lease: granting a new one");
                    return End::LeaseLost;
                }
                Ok(Err(e)) => {
                    metrics::lease_renewal_failed(&self.region);
                    metrics::authority_reachable(false);
                    tracing::warn!(error = %e, "renewing the region lease failed");
                    // Past the deadline the lease may be gone: a server
                    // here that takes writes (promoted while this daemon
                    // was cut off) must not outlive it.
                    self.guard_without_lease().await;
                    continue;
                }
                Err(_) => {
                    metrics::lease_renewal_failed(&self.region);
                    metrics::authority_reachable(false);
                    tracing::warn!("renewing the region lease did not answer within its TTL");
                    self.guard_without_lease().await;
                    continue;
                }
            }
            if let Some(r) = self.authority(store).await {
                *record = r;
                if self.guards(record) {
                    return End::Again;
                }
            }
        }
    }

    /// `Some` when this region's server answers as a writable primary, with
    /// the highest `lifeboat.authority` row it holds (`None` inside: no row,
    /// or not readable); `None` when it is not writable or not reached.
    async fn writable_own_server(
        &self,
    ) -> Option<Option<lifeboat_region::promotion::authority_row::AuthorityRow>> {
        let conn = server(&self.d.ctx, self.config(), &self.region)
            .await
            .ok()?;
        let own = Server {
            name: self.region.clone(),
            conn: conn.clone(),
        };
        if observe(&own, OBSERVE_RETRY).await.role != Role::Primary {
            return None;
        }
        Some(match conn.with_dbname("lifeboat").connect().await {
            Ok(c) => lifeboat_region::promotion::authority_row::read_epoch(&c)
                .await
                .ok()
                .flatten(),
            Err(_) => None,
        })
    }

    /// Fences this region's server now when the authority names another
    /// region at a higher epoch and the server is a writable primary.
    async fn check_stale(&mut self, record: &AuthorityRecord) {
        if record.primary == self.region {
            return;
        }
        let Some(row) = self.writable_own_server().await else {
            return;
        };
        // The epoch the server itself was promoted under, if any.
        let row = row.map(|r| r.epoch);
        let own_epoch = match (self.own_epoch, row) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if !stale_primary(&self.region, record, own_epoch, true) {
            return;
        }
        tracing::error!(region = %self.region, authority_primary = %record.primary, epoch = record.epoch,
            own_epoch = ?own_epoch, "the authority names another region at a higher epoch and this region's server accepts writes: fencing it now");
        self.fence_now(own_epoch.unwrap_or(0), "a stale primary")
            .await;
    }

    /// How long a call made while this daemon holds no lease may take: up
    /// to the fence deadline that [`Self::guard_without_lease`] keeps, so a
    /// hanging etcd call cannot delay it; once that deadline has passed, a
    /// lease TTL (the check is repeated after every attempt).
    fn unleased_budget(&self) -> Instant {
        let now = Instant::now();
        let deadline = self.timing.deadline(self.last_renewed());
        if deadline > now {
            deadline
        } else {
            now + self.timing.lease_ttl
        }
    }

    /// While this daemon holds no lease (etcd unreachable when it started,
    /// a lease lost while holding, a grant refused or unanswered), a
    /// writable primary here must not outlive the lease it may still be
    /// covered by (the previous daemon's, or the one last renewed): once
    /// the fence deadline after the last renewal has passed (after this
    /// daemon's start when it never had a lease), it is fenced with the
    /// configured method, whatever the authority says (etcd cannot tell).
    /// A server in recovery, stopped or unreachable is left alone. Agent
    /// mode only; a fenced server stays fenced.
    async fn guard_without_lease(&mut self) {
        if self.fenced || !self.guarded() {
            return;
        }
        if Instant::now() < self.timing.deadline(self.last_renewed()) {
            return;
        }
        let Some(row) = self.writable_own_server().await else {
            return;
        };
        let row_region = row.map(|r| r.region);
        let declared_primary = self
            .region_config()
            .is_some_and(|r| r.postgres.role() == crate::config::DeclaredRole::Primary);
        if !must_fence_without_lease(
            &self.region,
            self.known_primary.as_deref(),
            declared_primary,
            row_region.as_deref(),
        ) {
            return;
        }
        tracing::error!(region = %self.region,
            "this daemon holds no region lease (etcd unreachable, or the lease not granted) past the fence deadline, and this region's server accepts writes: fencing it, as a guarded primary is at its deadline (docs/failover.md, \"When etcd is unavailable\")");
        self.fence_now(self.own_epoch.unwrap_or(0), "no region lease")
            .await;
    }

    /// `failover.auto_rejoin` (`rejoin.rs`): in a region the authority does
    /// not name, a former primary that is down is made a standby of the
    /// current primary, in a task of its own; its outcome is taken here.
    async fn auto_rejoin(&mut self, record: &AuthorityRecord) {
        match self.rejoin.finished().await {
            Some(Finished::Rejoined(summary)) => {
                tracing::info!(region = %self.region, "auto_rejoin: {summary}");
                metrics::auto_rejoin(&self.region, "ok");
                // Its capacity step brought every held-down writer back.
                metrics::writers_held_down(&self.region, Some(0));
                // A standby under the current epoch now, no longer the
                // fenced old primary: should the authority name this
                // region again, the agent guards it.
                self.fenced = false;
                metrics::fenced(&self.region, false);
            }
            Some(Finished::CapacityFailed(e)) => {
                tracing::error!(region = %self.region, error = %e, "auto_rejoin: the server is a standby now, but the region's writers are not back; trying the capacity step again after a backoff (or run `lifeboat region rejoin` by hand)");
                metrics::auto_rejoin(&self.region, "capacity_failed");
                self.fenced = false;
                metrics::fenced(&self.region, false);
            }
            Some(Finished::Failed(e)) => {
                tracing::error!(region = %self.region, error = %e, "auto_rejoin failed; retrying after a backoff (or run `lifeboat region rejoin` by hand)");
                metrics::auto_rejoin(&self.region, "failed");
            }
            Some(Finished::Abandoned(e)) => {
                tracing::warn!(region = %self.region, error = %e, "auto_rejoin abandoned (the authority moved on); looking again now");
                metrics::auto_rejoin(&self.region, "abandoned");
            }
            Some(Finished::Looked {
                left: Some(why),
                held,
            }) => {
                tracing::warn!(region = %self.region, held = %held.join(", "), why = %why,
                    "auto_rejoin: this region's writers are still held down (lifeboat.io/original-replicas) and are left as they are; looking again after a backoff");
            }
            Some(Finished::Looked { left: None, .. }) => {}
            Some(Finished::Unread(e)) => {
                tracing::warn!(region = %self.region, error = %e,
                    "auto_rejoin: reading this region's writer Deployments failed (are they held down after a rejoin?); trying again after a backoff");
            }
            None => {}
        }
        if record.primary == self.region || !self.rejoin.due() {
            return;
        }
        let Some(r) = self.region_config() else {
            return;
        };
        if !agent_mode(r) {
            return;
        }
        let Ok(conn) = server(&self.d.ctx, self.config(), &self.region).await else {
            return;
        };
        let own = Server {
            name: self.region.clone(),
            conn,
        };
        let role = observe(&own, OBSERVE_RETRY).await.role;
        if role == Role::Standby && self.fenced {
            // It follows a primary now (rejoined by hand, or a rejoin whose
            // verification timed out): no longer the fenced old primary.
            tracing::info!(region = %self.region, "this region's server is a standby now: no longer counted as fenced");
            self.fenced = false;
            metrics::fenced(&self.region, false);
        }
        let auto_rejoin = self
            .config()
            .failover
            .as_ref()
            .is_some_and(|f| f.auto_rejoin);
        if !auto_rejoin {
            return;
        }
        let seen = match role {
            Role::Primary => Seen::Writable,
            Role::Standby => Seen::Standby,
            Role::Unreachable { answered: true, .. } => Seen::Unidentified,
            Role::Unreachable {
                answered: false, ..
            } => self.seen_down(&record.primary).await,
        };
        if seen == Seen::Standby {
            // A rejoin's capacity step may be unfinished (failed, or the
            // daemon restarted): read from the region's writers.
            let after = self.writers_down.take();
            self.rejoin
                .look(&self.d, &self.region, &record.primary, record.epoch, after);
            return;
        }
        let moved = auto::authority_moved(record.epoch, self.own_epoch);
        if let Some(why) = auto::wants_rejoin(&seen, self.fenced, moved) {
            let after = self.writers_down.take();
            self.rejoin
                .start(&self.d, &self.region, record.epoch, why, after);
        }
    }

    /// The own server does not answer: what its data directory says,
    /// described with the authority's primary `primary` as the reference
    /// (the own server cannot tell its version while down). A postmaster
    /// that still runs there is not down: unidentified.
    async fn seen_down(&self, primary: &str) -> Seen {
        let Some(r) = self.region_config() else {
            return Seen::Down { state: None };
        };
        let Ok(conn) = server(&self.d.ctx, self.config(), primary).await else {
            return Seen::Down { state: None };
        };
        let reference = Server {
            name: primary.to_string(),
            conn,
        };
        let target = match crate::region::replicate::region_target(
            &self.d.ctx,
            &self.region,
            r,
            &reference,
            "auto_rejoin reads the data directory's control file",
        )
        .await
        {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "auto_rejoin: describing this region's data directory failed");
                return Seen::Down { state: None };
            }
        };
        match lifeboat_region::replication::target::inspect(&target.pgdata, &target.bin_dir).await {
            Ok(lifeboat_region::replication::target::TargetDir::Cluster(c)) => {
                if c.postmaster.as_ref().is_some_and(|p| p.alive) {
                    Seen::Unidentified
                } else {
                    Seen::Down { state: c.state }
                }
            }
            _ => Seen::Down { state: None },
        }
    }

    /// The region's server as a fence target (agent mode, or a Patroni or
    /// CloudNativePG primary fenced with revoke_login).
    async fn target(&self) -> Option<FenceTarget> {
        let r = self.region_config()?;
        if !agent_mode(r) {
            if self.guarded() {
                return Some(FenceTarget::Managed {
                    name: self.region.clone(),
                });
            }
            tracing::error!(region = %self.region, "cannot fence this region's server: it is not in agent mode (set regions.<name>.postgres.pgdata and control pg_ctl or systemd; for manager: patroni or cnpg, failover.fence revoke_login); fence it by hand");
            return None;
        }
        let conn = server(&self.d.ctx, self.config(), &self.region)
            .await
            .ok()?;
        let own = Server {
            name: self.region.clone(),
            conn,
        };
        match crate::region::replicate::region_target(
            &self.d.ctx,
            &self.region,
            r,
            &own,
            "the fence stops or restricts the server",
        )
        .await
        {
            Ok(t) => Some(FenceTarget::Local(Box::new(t))),
            Err(e) => {
                tracing::error!(error = %e, "describing this region's server for the fence failed");
                None
            }
        }
    }

    /// Runs the configured fence; on success releases the watchdog (nothing
    /// left for it to do), on failure closes its pipe so it stops the
    /// server at once. Returns whether the server is fenced.
    async fn fence_now(&mut self, epoch: u64, why: &str) -> bool {
        let result = match self.target().await {
            Some(t) => apply_fence(&self.d, &t, &self.method, epoch).await,
            None => Err("no fence target".to_string()),
        };
        self.after_fence(result, why).await
    }

    async fn after_fence(&mut self, result: Result<fence::FenceReport, String>, why: &str) -> bool {
        let feeder = self.feeder.lock().await.take();
        let ok = match result {
            Ok(report) => {
                tracing::error!(region = %self.region, why, method = report.method.name(),
                    stopped = report.stopped, roles_revoked = ?report.roles_revoked,
                    sessions_terminated = report.sessions_terminated,
                    "PostgreSQL fenced; it stays fenced until an operator unfences it");
                if let Some(f) = feeder
                    && let Err(e) = f.release(Duration::from_secs(5)).await
                {
                    tracing::warn!(error = %e, "releasing the fence watchdog");
                }
                true
            }
            Err(e) => match feeder {
                Some(mut f) => {
                    tracing::error!(error = %e, why, "the fence failed: closing the watchdog's pipe, so it stops PostgreSQL now");
                    f.close();
                    let st = f.wait_exit(FENCE_TIMEOUT + Duration::from_secs(10)).await;
                    st.is_some_and(|s| s.success())
                }
                None => {
                    tracing::error!(error = %e, why, "the fence failed and no watchdog runs: stop this region's PostgreSQL by hand");
                    false
                }
            },
        };
        if ok {
            self.fenced = true;
            self.fenced_under = self.latest_epoch;
            metrics::fenced(&self.region, true);
            self.fence_writers();
        }
        ok
    }

    /// The region's writers (`regions.<name>.deployments`) scaled to 0
    /// after its server was fenced, in a task of its own (the fence does
    /// not wait for Kubernetes; it is the server's fence that keeps writes
    /// out).
    fn fence_writers(&mut self) {
        let d = Arc::clone(&self.d);
        let region = self.region.clone();
        self.writers_down = Some(tokio::spawn(async move {
            let Some(config) = d.ctx.config.as_ref() else {
                return;
            };
            match crate::region::failover::scale::fence_writers(
                &d.ctx,
                config,
                &region,
                WRITERS_TIMEOUT,
            )
            .await
            {
                Ok(note) => tracing::warn!(region = %region, "fenced: {note}"),
                Err((_, e)) => tracing::error!(region = %region, error = %e,
                    "fenced, but scaling the region's writers to 0 failed: scale them down by hand (the server refuses their writes meanwhile)"),
            }
        }));
    }

    /// Starts the watchdog when none runs.
    async fn ensure_watchdog(&self, epoch: u64) -> bool {
        let mut slot = self.feeder.lock().await;
        if slot.is_some() {
            return true;
        }
        let Some(r) = self.region_config() else {
            return false;
        };
        let argv = match watchdog_argv(&self.d, &self.region, r, epoch) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "cannot find this program to start the fence watchdog");
                return false;
            }
        };
        match Watchdog::spawn(&argv) {
            Ok(f) => {
                tracing::info!(pid = ?f.pid(), "fence watchdog started");
                *slot = Some(f);
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "starting the fence watchdog failed");
                false
            }
        }
    }

    /// Guards the primary: renewals through [`fence::run_guard`], the
    /// watchdog fed every deadline; fences at the deadline, when etcd
    /// says the lease is gone, at shutdown, or when the authority moves.
    async fn guard(
        &mut self,
        store: &AuthorityStore,
        lease: &Arc<Mutex<RegionLease>>,
        lease_sent: Instant,
        record: &AuthorityRecord,
    ) -> End {
        let Some(target) = self.target().await else {
            // Cannot guard what cannot be fenced: renew once and try again.
            return self.hold_once(lease).await.unwrap_or(End::Again);
        };
        let epoch = self.own_epoch.unwrap_or(record.epoch);
        let slack = watchdog_slack(&self.timing);
        let first = self
            .timing
            .deadline_with_ttl(lease_sent, lease.lock().await.ttl());
        if self.ensure_watchdog(epoch).await
            && let Some(f) = self.feeder.lock().await.as_mut()
            && let Err(e) = f.feed(first + slack).await
        {
            tracing::error!(error = %e, "feeding the fence watchdog");
        }
        tracing::info!(region = %self.region, epoch, "guarding the primary: renewing the lease, fencing at the deadline");
        // Named but not promoted yet, and down: started again under the
        // watchdog armed above (named_standby.rs says why).
        // (A Patroni or CloudNativePG primary is started by its manager.)
        let starter = match &target {
            FenceTarget::Local(t) => tokio::spawn(named_standby::keep_started(
                t.as_ref().clone(),
                self.timing.renew_interval,
                STANDBY_START_TIMEOUT,
            )),
            FenceTarget::Managed { .. } => tokio::spawn(async {}),
        };
        let deadline = Arc::new(std::sync::Mutex::new(Some(first)));
        let (expired_tx, mut expired_rx) = watch::channel(false);
        // The authority, read every renew interval while guarding.
        let (moved_tx, mut moved_rx) = watch::channel::<Option<AuthorityRecord>>(None);
        let moved_seen = moved_tx.subscribe();
        let poller = {
            let store = store.clone();
            let region = self.region.clone();
            let every = self.timing.renew_interval;
            let d = Arc::clone(&self.d);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    if let Ok(Some(v)) = store.authority().await {
                        metrics::authority_epoch(v.value.epoch);
                        d.failsafe.authority_read(&v.value.primary, v.value.epoch);
                        if v.value.primary != region {
                            let _ = moved_tx.send(Some(v.value));
                            return;
                        }
                    }
                }
            })
        };
        let ticker = {
            let deadline = Arc::clone(&deadline);
            let region = self.region.clone();
            tokio::spawn(async move {
                loop {
                    let left = deadline
                        .lock()
                        .ok()
                        .and_then(|d| *d)
                        .map(|d| signed_secs(d, Instant::now()));
                    metrics::fence_deadline(&region, left);
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            })
        };
        // failover.etcd_lost: keep_if_peers_agree: the others vouch when
        // etcd does not answer (failsafe.rs).
        let keeper = Keeper::new(
            self.config(),
            self.d.settings.token.as_deref(),
            &self.region,
            record.epoch,
            self.timing.renew_interval,
        )
        .map(Arc::new);
        let renew = {
            let (lease, feeder, deadline, last) = (
                Arc::clone(lease),
                Arc::clone(&self.feeder),
                Arc::clone(&deadline),
                Arc::clone(&self.last_renewed),
            );
            let (region, timing, expired_tx) =
                (self.region.clone(), self.timing, expired_tx.clone());
            let argv = self
                .region_config()
                .and_then(|r| watchdog_argv(&self.d, &self.region, r, epoch).ok());
            move || {
                let (lease, feeder, deadline, last, region, expired_tx, argv, keeper) = (
                    Arc::clone(&lease),
                    Arc::clone(&feeder),
                    Arc::clone(&deadline),
                    Arc::clone(&last),
                    region.clone(),
                    expired_tx.clone(),
                    argv.clone(),
                    keeper.clone(),
                );
                async move {
                    let sent = Instant::now();
                    let renewal = async { lease.lock().await.keep_alive().await };
                    let renewed = match &keeper {
                        Some(k) => k.renew_or_vouch(renewal, timing.lease_ttl).await,
                        None => renewal.await.map(|ttl| (ttl, false)),
                    };
                    let ttl = match renewed {
                        Ok((t, by_vouches)) => {
                            if by_vouches {
                                tracing::warn!(region = %region, "failsafe: etcd does not answer; every other daemon vouched for this primary, which keeps serving");
                            } else {
                                metrics::lease_renewed(&region);
                                metrics::authority_reachable(true);
                            }
                            metrics::failsafe(&region, by_vouches);
                            t
                        }
                        Err(e) => {
                            metrics::failsafe(&region, false);
                            metrics::lease_renewal_failed(&region);
                            metrics::authority_reachable(false);
                            if matches!(e, AuthorityError::LeaseExpired { .. }) {
                                let _ = expired_tx.send(true);
                            }
                            return Err(e);
                        }
                    };
                    if let Ok(mut t) = last.lock() {
                        *t = sent;
                    }
                    let next = timing.deadline_with_ttl(sent, ttl);
                    if let Ok(mut d) = deadline.lock() {
                        *d = Some(next);
                    }
                    let mut slot = feeder.lock().await;
                    if slot.is_none()
                        && let Some(argv) = &argv
                    {
                        match Watchdog::spawn(argv) {
                            Ok(f) => *slot = Some(f),
                            Err(e) => {
                                tracing::error!(error = %e, "starting the fence watchdog failed")
                            }
                        }
                    }
                    if let Some(f) = slot.as_mut()
                        && let Err(e) = f.feed(next + slack).await
                    {
                        tracing::error!(error = %e, "feeding the fence watchdog failed; starting a new one at the next renewal");
                        *slot = None;
                    }
                    Ok(ttl)
                }
            }
        };
        let method = self.method.clone();
        let fence_target = target.clone();
        let fence_d = Arc::clone(&self.d);
        let d = Arc::clone(&self.d);
        let cancel = async move {
            let mut rx = d.shutdown.subscribe();
            tokio::select! {
                _ = stopped(&mut rx) => {}
                _ = expired_rx.wait_for(|e| *e) => {}
                _ = moved_rx.wait_for(Option::is_some) => {}
            }
        };
        // Read before the call: a guard taken in the argument list would be
        // a temporary of this whole statement, held across `run_guard` while
        // every renewal waits for the same lock (each one then timed out at
        // the fence deadline).
        let ttl = lease.lock().await.ttl();
        let outcome = fence::run_guard(
            self.timing,
            lease_sent,
            ttl,
            renew,
            move || async move { apply_fence(&fence_d, &fence_target, &method, epoch).await },
            cancel,
        )
        .await;
        poller.abort();
        ticker.abort();
        starter.abort();
        metrics::fence_deadline(&self.region, None);
        match outcome {
            GuardOutcome::Fenced {
                failures,
                last_error,
                fence: result,
                ..
            } => {
                tracing::error!(region = %self.region, failures, last_error = ?last_error,
                    "the region lease was not renewed before the fence deadline");
                self.after_fence(result, "the lease could not be renewed")
                    .await;
                End::LeaseLost
            }
            GuardOutcome::Cancelled { .. } => {
                if self.d.shutting_down() {
                    self.fence_now(epoch, "the daemon shuts down beside the primary")
                        .await;
                    return End::Shutdown;
                }
                if *expired_tx.borrow() {
                    tracing::error!(region = %self.region, "etcd no longer knows this region's lease: fencing now");
                    self.fence_now(epoch, "the lease expired").await;
                    return End::LeaseLost;
                }
                let moved = moved_seen.borrow().clone();
                if let Some(r) = moved {
                    tracing::warn!(region = %self.region, authority_primary = %r.primary, epoch = r.epoch,
                        "the authority names another region now");
                    self.note(&r);
                    self.check_stale(&r).await;
                    // Not guarding any more: the watchdog has nothing to
                    // watch (a fence above released it already).
                    if let Some(f) = self.feeder.lock().await.take()
                        && let Err(e) = f.release(Duration::from_secs(5)).await
                    {
                        tracing::warn!(error = %e, "releasing the fence watchdog");
                    }
                }
                End::Again
            }
        }
    }

    /// One renewal after a pause, when a guard cannot start.
    async fn hold_once(&mut self, lease: &Arc<Mutex<RegionLease>>) -> Option<End> {
        if pause(&self.d, self.timing.renew_interval).await {
            return Some(End::Shutdown);
        }
        let sent = Instant::now();
        match lease.lock().await.keep_alive().await {
            Ok(_) => {
                self.renewed_at(sent);
                metrics::lease_renewed(&self.region);
                None
            }
            Err(AuthorityError::LeaseExpired { .. }) => Some(End::LeaseLost),
            Err(e) => {
                metrics::lease_renewal_failed(&self.region);
                tracing::warn!(error = %e, "renewing the region lease failed");
                None
            }
        }
    }
}

fn signed_secs(deadline: Instant, now: Instant) -> f64 {
    if deadline >= now {
        (deadline - now).as_secs_f64()
    } else {
        -(now - deadline).as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use lifeboat_region::authority::ChangeReason;

    fn rec(primary: &str, epoch: u64) -> AuthorityRecord {
        AuthorityRecord {
            primary: primary.into(),
            epoch,
            changed_at: Utc::now(),
            changed_by: "test".into(),
            reason: if epoch == 1 {
                ChangeReason::Initial
            } else {
                ChangeReason::Failover
            },
        }
    }

    #[test]
    fn who_is_fenced_without_a_lease() {
        // (known primary, declared primary, row region) → fence us-east?
        let table = [
            (Some("us-east"), true, None, true),
            (Some("us-east"), false, None, true),
            (Some("eu-west"), false, None, false),
            (Some("eu-west"), true, None, false),
            (Some("eu-west"), false, Some("us-east"), true),
            (Some("eu-west"), false, Some("eu-west"), false),
            (None, true, None, true),
            (None, false, None, false),
            (None, false, Some("us-east"), true),
        ];
        for (known, declared, row, want) in table {
            assert_eq!(
                must_fence_without_lease("us-east", known, declared, row),
                want,
                "known {known:?} declared {declared} row {row:?}"
            );
        }
    }

    #[test]
    fn stale_primary_table() {
        // (authority primary, epoch, own epoch, writable) → fence?
        let rows: &[(&str, u64, Option<u64>, bool, bool)] = &[
            // the authority names us: never
            ("us-east", 5, Some(5), true, false),
            ("us-east", 5, None, true, false),
            // another region at a higher epoch, our server writable: fence
            ("eu-west", 2, Some(1), true, true),
            ("eu-west", 7, Some(3), true, true),
            // ... not writable (standby, stopped, unreachable): nothing to fence
            ("eu-west", 2, Some(1), false, false),
            // not higher than our own: the authority is older than what we saw
            ("eu-west", 3, Some(3), true, false),
            ("eu-west", 2, Some(3), true, false),
            // no own epoch known: only an authority changed since its start
            ("eu-west", 1, None, true, false),
            ("eu-west", 2, None, true, true),
            ("eu-west", 2, None, false, false),
        ];
        for &(primary, epoch, own, writable, want) in rows {
            assert_eq!(
                stale_primary("us-east", &rec(primary, epoch), own, writable),
                want,
                "{primary} {epoch} {own:?} {writable}"
            );
        }
    }

    #[test]
    fn the_watchdog_acts_after_the_agent_and_before_the_expiry() {
        for (ttl, renew, guard) in [(10, 2, 3), (6, 1, 2), (3, 1, 1), (30, 5, 10)] {
            let t = FenceTiming {
                lease_ttl: Duration::from_secs(ttl),
                renew_interval: Duration::from_secs(renew),
                fence_guard: Duration::from_secs(guard),
            };
            let s = watchdog_slack(&t);
            assert!(!s.is_zero());
            assert!(s < t.fence_guard, "{t:?}");
        }
    }
}
