//! `failover:` (docs/failover.md): the etcd cluster that holds the
//! authority, the lease and fence timing, the fence method, and whether the
//! daemons fail over and rejoin on their own.

use std::path::PathBuf;
use std::time::Duration;

use chrono::TimeDelta;
use serde::Deserialize;

use crate::config::secrets::SecretRef;

/// Defaults of the timing (docs/failover.md, "The fence and its timing
/// argument").
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);
pub const DEFAULT_RENEW_INTERVAL: Duration = Duration::from_secs(2);
pub const DEFAULT_FENCE_GUARD: Duration = Duration::from_secs(3);
pub const DEFAULT_SAFETY_MARGIN: Duration = Duration::from_secs(2);
/// The etcd key prefix when none is given.
pub const DEFAULT_ETCD_PREFIX: &str = "/lifeboat";

/// `failover:`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverConfig {
    pub etcd: EtcdConfig,
    /// The TTL of every daemon's etcd lease. Default `10s`.
    #[serde(default, with = "lifeboat_repo::retention::opt_duration")]
    pub lease_ttl: Option<TimeDelta>,
    /// How often a daemon renews its lease. Default `2s`.
    #[serde(default, with = "lifeboat_repo::retention::opt_duration")]
    pub renew_interval: Option<TimeDelta>,
    /// How long before the lease could expire the primary's agent fences
    /// its server when it could not renew. Default `3s`.
    #[serde(default, with = "lifeboat_repo::retention::opt_duration")]
    pub fence_guard: Option<TimeDelta>,
    /// How long a promotion waits after the old primary's lease is gone.
    /// Default `2s`.
    #[serde(default, with = "lifeboat_repo::retention::opt_duration")]
    pub safety_margin: Option<TimeDelta>,
    /// `stop` (the default) or `{revoke_login: {roles: [...]}}`. With a
    /// `manager: patroni` region only `revoke_login` (applied on the Patroni
    /// leader) is accepted; without it no automatic failover leaves that
    /// region (docs/failover.md, "The Patroni fence").
    #[serde(default)]
    pub fence: Option<FenceConfig>,
    /// Whether the daemons fail over on a confirmed region failure. Default
    /// `true`; `false` leaves it to `lifeboat region failover --to R`.
    #[serde(default)]
    pub automatic: Option<bool>,
    /// Whether a returning old primary is made a standby of the new one by
    /// its daemon. Default `false` (`lifeboat region rejoin R`).
    #[serde(default)]
    pub auto_rejoin: bool,
    /// Vantage points that are not regions (a witness site running a
    /// daemon and an etcd member, no database), e.g. `[witness]`.
    #[serde(default)]
    pub witnesses: Vec<String>,
    /// What the primary's agent does when it cannot renew its lease
    /// because etcd does not answer: `fence` (the default) or
    /// `{keep_if_peers_agree: {peers: {<name>: http://host:port, …}}}`
    /// (docs/failover.md, "When etcd is unavailable").
    #[serde(default)]
    pub etcd_lost: EtcdLost,
}

/// `failover.etcd_lost`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum EtcdLost {
    /// Fence at the deadline, as for any lost lease: the only choice that
    /// is safe whatever cut etcd off.
    #[default]
    Fence,
    /// Keep serving while every other daemon vouches for the primary
    /// (Patroni's DCS failsafe mode, lifeboat_region::failsafe).
    KeepIfPeersAgree {
        /// Every daemon's API address by its name (each region's and each
        /// witness's, this daemon's own too: one list for all), plain
        /// `http://host:port`; the calls carry `serve.token`.
        peers: std::collections::BTreeMap<String, String>,
    },
}

/// `failover.etcd`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdConfig {
    /// e.g. `[https://etcd-0.lifeboat:2379, …]`: every member, so a client
    /// reaches the majority through any of them.
    pub endpoints: Vec<String>,
    /// Key prefix of everything Lifeboat keeps in etcd. Default `/lifeboat`.
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub tls: Option<EtcdTlsConfig>,
    /// etcd user (with `password`), when etcd has auth enabled.
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// The etcd member (its `--name`) that should lead etcd's raft, e.g. the
    /// witness's: the daemons hand the leadership to it whenever it answers
    /// and another member leads, so a region's failure never takes etcd's
    /// leader with it (a new leader extends every lease by a full TTL,
    /// delaying the failover; docs/failover.md, "etcd's own timing").
    #[serde(default)]
    pub leader: Option<String>,
}

/// `failover.etcd.tls`: files, never inline keys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdTlsConfig {
    pub ca: PathBuf,
    #[serde(default)]
    pub cert: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<PathBuf>,
}

/// `failover.fence`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FenceConfig {
    /// Stop the server (immediate shutdown).
    Stop,
    /// Revoke LOGIN from these roles and terminate their sessions.
    RevokeLogin { roles: Vec<String> },
}

fn std(d: Option<TimeDelta>, default: Duration) -> Duration {
    d.and_then(|d| d.to_std().ok()).unwrap_or(default)
}

impl FailoverConfig {
    pub fn lease_ttl(&self) -> Duration {
        std(self.lease_ttl, DEFAULT_LEASE_TTL)
    }
    pub fn renew_interval(&self) -> Duration {
        std(self.renew_interval, DEFAULT_RENEW_INTERVAL)
    }
    pub fn fence_guard(&self) -> Duration {
        std(self.fence_guard, DEFAULT_FENCE_GUARD)
    }
    pub fn safety_margin(&self) -> Duration {
        std(self.safety_margin, DEFAULT_SAFETY_MARGIN)
    }
    pub fn automatic(&self) -> bool {
        self.automatic.unwrap_or(true)
    }
    pub fn prefix(&self) -> &str {
        self.etcd.prefix.as_deref().unwrap_or(DEFAULT_ETCD_PREFIX)
    }

    /// What spans several keys: the timing's order, the etcd section, and
    /// witness names that collide with regions.
    pub fn problems(&self, regions: &[&str]) -> Vec<String> {
        let mut p = Vec::new();
        let (ttl, renew, guard) = (self.lease_ttl(), self.renew_interval(), self.fence_guard());
        for (key, d) in [
            ("lease_ttl", self.lease_ttl),
            ("renew_interval", self.renew_interval),
            ("fence_guard", self.fence_guard),
            ("safety_margin", self.safety_margin),
        ] {
            if d.is_some_and(|d| d <= TimeDelta::zero()) {
                p.push(format!("failover.{key} must be positive"));
            }
        }
        if ttl < Duration::from_secs(2) {
            p.push(format!(
                "failover.lease_ttl {}s is below etcd's minimum lease TTL of 2s",
                ttl.as_secs_f64()
            ));
        }
        if guard >= ttl {
            p.push(format!(
                "failover.fence_guard ({}s) must be shorter than failover.lease_ttl ({}s)",
                guard.as_secs_f64(),
                ttl.as_secs_f64()
            ));
        } else if renew.saturating_mul(2) > ttl - guard {
            p.push(format!(
                "failover.renew_interval ({}s) leaves fewer than two renewals before the fence deadline (lease_ttl − fence_guard = {}s): lower renew_interval or raise lease_ttl",
                renew.as_secs_f64(),
                (ttl - guard).as_secs_f64()
            ));
        }
        if self.etcd.endpoints.is_empty() {
            p.push("failover.etcd.endpoints is empty: list every etcd member".into());
        }
        for e in &self.etcd.endpoints {
            let ok = ["http://", "https://"].iter().any(|s| {
                e.strip_prefix(s).is_some_and(|rest| {
                    rest.rsplit_once(':')
                        .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok())
                })
            });
            if !ok {
                p.push(format!(
                    "failover.etcd.endpoints: {e:?} is not http(s)://host:port"
                ));
            } else if e.starts_with("https://") && self.etcd.tls.is_none() {
                p.push(format!(
                    "failover.etcd.endpoints: {e} is https but failover.etcd.tls is not set (give at least its ca)"
                ));
            }
        }
        if !self.prefix().starts_with('/') {
            p.push(format!(
                "failover.etcd.prefix {:?} must start with /",
                self.prefix()
            ));
        }
        if self.etcd.user.is_some() != self.etcd.password.is_some() {
            p.push("failover.etcd: give user and password together".into());
        }
        if let Some(tls) = &self.etcd.tls
            && tls.cert.is_some() != tls.key.is_some()
        {
            p.push("failover.etcd.tls: give cert and key together".into());
        }
        if let Some(FenceConfig::RevokeLogin { roles }) = &self.fence
            && roles.is_empty()
        {
            p.push("failover.fence.revoke_login.roles is empty: name the application roles to fence, or use fence: stop".into());
        }
        if let EtcdLost::KeepIfPeersAgree { peers } = &self.etcd_lost {
            for (name, url) in peers {
                if lifeboat_region::http1::host_port(url).is_none() {
                    p.push(format!(
                        "failover.etcd_lost.keep_if_peers_agree.peers.{name}: {url:?} is not http://host:port (the daemon's serve.listen)"
                    ));
                }
            }
            for name in regions
                .iter()
                .copied()
                .chain(self.witnesses.iter().map(String::as_str))
            {
                if !peers.contains_key(name) {
                    p.push(format!(
                        "failover.etcd_lost.keep_if_peers_agree.peers lacks {name}: list every region's and witness's daemon (a primary keeps serving only while all of them vouch)"
                    ));
                }
            }
            for name in peers.keys() {
                if !regions.contains(&name.as_str()) && !self.witnesses.contains(name) {
                    p.push(format!(
                        "failover.etcd_lost.keep_if_peers_agree.peers.{name} is neither a region nor a witness"
                    ));
                }
            }
        }
        for w in &self.witnesses {
            if regions.contains(&w.as_str()) {
                p.push(format!(
                    "failover.witnesses: {w} is also a region; a witness is a vantage point without a database"
                ));
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> FailoverConfig {
        serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"))
    }

    #[test]
    fn defaults() {
        let c = parse("etcd: {endpoints: [http://127.0.0.1:2379]}\n");
        assert_eq!(c.lease_ttl(), DEFAULT_LEASE_TTL);
        assert_eq!(c.renew_interval(), DEFAULT_RENEW_INTERVAL);
        assert_eq!(c.fence_guard(), DEFAULT_FENCE_GUARD);
        assert_eq!(c.safety_margin(), DEFAULT_SAFETY_MARGIN);
        assert!(c.automatic());
        assert!(!c.auto_rejoin);
        assert_eq!(c.prefix(), "/lifeboat");
        assert_eq!(c.fence, None);
        assert!(c.problems(&["us-east"]).is_empty(), "{:?}", c.problems(&[]));
    }

    #[test]
    fn etcd_lost_forms_and_problems() {
        let base = "etcd: {endpoints: [http://a:1]}\nwitnesses: [witness]\n";
        assert_eq!(parse(base).etcd_lost, EtcdLost::Fence);
        assert_eq!(
            parse(&format!("{base}etcd_lost: fence\n")).etcd_lost,
            EtcdLost::Fence
        );
        let keep = parse(&format!(
            "{base}etcd_lost:\n  keep_if_peers_agree:\n    peers: {{us-east: 'http://10.0.1.2:8080', eu-west: 'http://10.0.2.2:8080', witness: 'http://10.0.3.2:8080'}}\n"
        ));
        assert!(
            matches!(&keep.etcd_lost, EtcdLost::KeepIfPeersAgree { peers } if peers.len() == 3)
        );
        assert!(
            keep.problems(&["us-east", "eu-west"]).is_empty(),
            "{:?}",
            keep.problems(&["us-east", "eu-west"])
        );
        let p = keep.problems(&["us-east", "eu-west", "ap-south"]);
        assert!(p.iter().any(|m| m.contains("lacks ap-south")), "{p:?}");
        let bad = parse(&format!(
            "{base}etcd_lost:\n  keep_if_peers_agree:\n    peers: {{us-east: 'https://x:1', eu-west: 'http://b:2', witness: 'http://c:3', mars: 'http://d:4'}}\n"
        ));
        let p = bad.problems(&["us-east", "eu-west"]);
        assert!(
            p.iter()
                .any(|m| m.contains("peers.us-east") && m.contains("not http://host:port")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|m| m.contains("peers.mars is neither")),
            "{p:?}"
        );
        assert!(
            serde_saphyr::from_str::<FailoverConfig>(&format!("{base}etcd_lost: keep\n")).is_err()
        );
    }

    #[test]
    fn fence_forms() {
        assert_eq!(
            parse("etcd: {endpoints: [http://a:1]}\nfence: stop\n").fence,
            Some(FenceConfig::Stop)
        );
        assert_eq!(
            parse("etcd: {endpoints: [http://a:1]}\nfence: {revoke_login: {roles: [kubernaut]}}\n")
                .fence,
            Some(FenceConfig::RevokeLogin {
                roles: vec!["kubernaut".into()]
            })
        );
    }

    #[test]
    fn problems_table() {
        let rows: &[(&str, &str)] = &[
            ("lease_ttl: 1s\n", "below etcd's minimum"),
            ("lease_ttl: 5s\nfence_guard: 5s\n", "must be shorter"),
            (
                "lease_ttl: 10s\nrenew_interval: 4s\n",
                "fewer than two renewals",
            ),
            ("fence_guard: 0s\n", "must be positive"),
            ("fence: {revoke_login: {roles: []}}\n", "roles is empty"),
            ("witnesses: [us-east]\n", "also a region"),
        ];
        for (extra, want) in rows {
            let c = parse(&format!(
                "etcd: {{endpoints: [http://127.0.0.1:2379]}}\n{extra}"
            ));
            let p = c.problems(&["us-east"]).join("\n");
            assert!(p.contains(want), "{extra}: {p}");
        }
        let etcd_rows: &[(&str, &str)] = &[
            ("{endpoints: []}", "endpoints is empty"),
            (
                "{endpoints: [127.0.0.1:2379]}",
                "is not http(s)://host:port",
            ),
            ("{endpoints: [https://e:2379]}", "tls is not set"),
            (
                "{endpoints: [http://e:2379], prefix: lifeboat}",
                "must start with /",
            ),
            (
                "{endpoints: [http://e:2379], user: lifeboat}",
                "user and password together",
            ),
            (
                "{endpoints: [https://e:2379], tls: {ca: /ca.pem, cert: /c.pem}}",
                "cert and key together",
            ),
        ];
        for (etcd, want) in etcd_rows {
            let c = parse(&format!("etcd: {etcd}\n"));
            let p = c.problems(&[]).join("\n");
            assert!(p.contains(want), "{etcd}: {p}");
        }
    }
}
