//! The phases the Patroni and CloudNativePG fence tests share
//! (`region_patroni.rs`, `fence_cnpg.rs`): us-east a managed primary whose
//! agent holds its lease in the authority's etcd at `authority_url`, the
//! application logging in on `port`; eu-west a standby of it.

use std::path::Path;
use std::time::Duration;

use lifeboat_postgres::conn::ConnConfig;

use super::app_role::{self, AppRole};
use super::{Daemon, Env};

/// Bound on every wait of the fence phases.
pub const FENCE_BOUND: Duration = Duration::from_secs(60);
/// Bound on the automatic failover's waits.
pub const WAIT: Duration = Duration::from_secs(90);

pub struct FenceBed<'a> {
    pub rt: &'a tokio::runtime::Runtime,
    pub env: &'a Env,
    pub authority_url: String,
    /// The port the application logs in on (us-east's primary).
    pub port: u16,
    pub app: &'a AppRole,
    /// The primary as the messages name it ("the Patroni leader").
    pub what: &'static str,
}

impl FenceBed<'_> {
    /// us-east's lease in the authority's etcd (`None`: none, or etcd down).
    pub fn east_lease(&self) -> Option<i64> {
        let store = self
            .rt
            .block_on(lifeboat_region::authority::AuthorityStore::connect(
                lifeboat_region::authority::EtcdSettings::new(vec![self.authority_url.clone()]),
            ))
            .ok()?;
        self.rt
            .block_on(store.lease_of("us-east"))
            .ok()
            .flatten()
            .map(|l| l.lease_id)
    }

    /// Waits until `d` holds us-east's lease and guards it (a finite fence
    /// deadline); the lease's id.
    pub fn guarding(&self, d: &Daemon) -> i64 {
        let id = d.poll(FENCE_BOUND, "us-east's lease in etcd", || self.east_lease());
        d.poll(
            FENCE_BOUND,
            &format!("the agent to guard {}", self.what),
            || {
                d.metric("lifeboat_fence_deadline_seconds{region=\"us-east\"}")
                    .filter(|v| v.is_finite())
            },
        );
        id
    }

    /// (a) After the agent `d` lost etcd: it locks the application's open
    /// `session` out at its fence deadline, reports itself fenced, and its
    /// log names the deadline and the fence.
    pub fn agent_locked_out(&self, d: &Daemon, session: &tokio_postgres::Client) {
        d.poll(
            FENCE_BOUND,
            &format!("the application locked out of {}", self.what),
            || {
                self.app
                    .locked_out(self.rt, self.port, session)
                    .then_some(())
            },
        );
        d.poll(FENCE_BOUND, "lifeboat_fenced 1", || {
            d.metric("lifeboat_fenced{region=\"us-east\"}")
                .filter(|v| *v == 1.0)
        });
        let log = d.log_text();
        assert!(
            log.contains("fence deadline") && log.contains("revoke_login"),
            "{log}"
        );
    }

    /// (b) `d`, guarding under lease `id` while the application's
    /// `session` is open, is SIGKILLed: its watchdog locks the application
    /// out while the lease key still exists (no promotion could have come
    /// first: it waits for the key to be gone), says so on the stderr it
    /// shares with the dead agent, and the lease then expires.
    pub fn watchdog_fences(&self, d: &Daemon, id: i64, session: &tokio_postgres::Client) {
        d.signal(libc::SIGKILL);
        super::poll(
            FENCE_BOUND,
            "the watchdog to lock the application out",
            || {
                self.app
                    .locked_out(self.rt, self.port, session)
                    .then_some(())
            },
        );
        assert_eq!(
            self.east_lease(),
            Some(id),
            "us-east's lease expired before the watchdog fenced {}",
            self.what
        );
        d.poll(FENCE_BOUND, "the watchdog's own word", || {
            d.log_text()
                .contains("fence watchdog: LOGIN revoked for [\"app\"] on us-east's primary")
                .then_some(())
        });
        super::poll(FENCE_BOUND, "us-east's lease to expire", || {
            self.east_lease().is_none().then_some(())
        });
    }

    /// (c) eu-west's daemon (config `west_cfg`, started as `name`) decides
    /// and does the automatic failover from the fenced primary: the
    /// authority names eu-west at epoch 2 (never a refused decision), and
    /// eu-west's server `west` is out of recovery with epoch 2's row. The
    /// daemon, still running.
    pub fn fails_over_to_west(&self, west_cfg: &Path, west: &ConnConfig, name: &str) -> Daemon {
        let d = Daemon::start(self.env, west_cfg, name);
        d.poll(WAIT, "eu-west promoted by the automatic failover", || {
            let view = self.env.ok_json(&[
                "--config",
                west_cfg.to_str().unwrap(),
                "--json",
                "region",
                "authority",
            ]);
            assert_ne!(
                view["decision"]["decision"], "refused",
                "the failover from {} was refused: {view}",
                self.what
            );
            (view["authority"]["primary"] == "eu-west" && view["authority"]["epoch"] == 2)
                .then_some(view)
        });
        // The epoch is bumped before the promotion: the change then finishes.
        d.poll(WAIT, "eu-west promoted with epoch 2's row", || {
            (super::pg::in_recovery(self.rt, west) == Some(false)
                && super::pg::authority_epoch(self.rt, west) == Some(2))
            .then_some(())
        });
        d
    }

    /// The application logs in on eu-west's server at `west_port` and
    /// writes there, and is still refused on the fenced primary.
    pub fn app_moved_to(&self, d: &Daemon, west_port: u16) {
        let on_west = d.poll(WAIT, "the application to log in on the new primary", || {
            self.app.login(self.rt, west_port).ok()
        });
        assert!(app_role::writes(self.rt, &on_west));
        assert_eq!(
            self.app.login(self.rt, self.port).err(),
            Some(Some("28000".into()))
        );
    }
}
