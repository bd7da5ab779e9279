//! The fence of a primary region whose PostgreSQL another manager runs
//! (issue 20; docs/failover.md, "Managers"): `manager: patroni` or
//! `manager: cnpg` (CloudNativePG), fenced with `revoke_login`.
//!
//! Patroni and CloudNativePG both start again a server Lifeboat stops, so a
//! `stop` fence cannot hold there (the configuration refuses it). This fence
//! leaves the server running and locks the application out instead: `ALTER
//! ROLE … NOLOGIN` for `failover.fence.revoke_login.roles`, then their
//! sessions terminated ([`lifeboat_region::fence::revoke_login_on`]), on the
//! region's primary, as `postgres.url`'s user and password. The role change
//! is WAL-logged: every member replays it, so a failover inside the region
//! promotes a server whose roles are NOLOGIN too. Both the agent beside the
//! region (`daemon/regions/agent.rs`) and its watchdog (`lifeboat
//! fence-watchdog --region`) call [`fence`].
//!
//! Where the primary is, the only manager-specific part ([`primary_conn`]):
//! - Patroni: `GET /cluster`'s member with role `leader`, at its connect
//!   address; when Patroni's REST API does not answer, the `postgres.url`
//!   server is tried (often a service address that follows the leader).
//! - CloudNativePG: `postgres.url` itself, which for CNPG is the
//!   `<cluster>-rw` Service: the operator points it at the current primary,
//!   so no lookup is needed (the `Cluster`'s `status.currentPrimary` is
//!   logged by the agent when it starts guarding, `region::cnpg_fence`).
//!   CloudNativePG does reconcile roles it manages declaratively
//!   (`spec.managed.roles`); `region::cnpg_fence` checks for that hazard.
//!
//! Retried until `timeout`: the primary can change under the fence (`ALTER
//! ROLE` on a just-demoted primary fails), so each attempt looks it up again.

use std::time::{Duration, Instant};

use lifeboat_postgres::conn::{ConnConfig, PgHost};
use lifeboat_region::fence::{FenceReport, revoke_login_on};
use lifeboat_region::managers::patroni::{ClusterView, MemberRole, Retry};

use crate::config::{FenceConfig, PgManager, RegionConfig};
use crate::context::Ctx;

/// How long one REST call or one connection of the fence may take: a fence
/// has seconds.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether Lifeboat can fence region `r` as a managed primary: it is
/// `manager: patroni` or `manager: cnpg` and the fence is `revoke_login`
/// (pure).
pub fn managed_fenced(r: &RegionConfig, fence: Option<&FenceConfig>) -> bool {
    matches!(r.postgres.manager(), PgManager::Patroni | PgManager::Cnpg)
        && matches!(fence, Some(FenceConfig::RevokeLogin { .. }))
}

/// What the region's manager calls its primary, for messages.
fn primary_noun(r: &RegionConfig) -> &'static str {
    match r.postgres.manager() {
        PgManager::Patroni => "Patroni leader",
        PgManager::Cnpg => "CloudNativePG primary (postgres.url, the <cluster>-rw Service)",
        PgManager::Postgres => "primary",
    }
}

/// Where the fence connects: for Patroni, the leader ([`leader_conn`]); for
/// CloudNativePG (and anything else), `base` (`postgres.url`, the `-rw`
/// Service that follows the primary).
async fn primary_conn(ctx: &Ctx, name: &str, r: &RegionConfig, base: &ConnConfig) -> ConnConfig {
    match r.postgres.manager() {
        PgManager::Patroni => leader_conn(ctx, name, r, base).await,
        PgManager::Cnpg | PgManager::Postgres => base.clone(),
    }
}

/// The running leader's connect address in `GET /cluster` (pure): a member
/// with role `leader` (never `standby_leader`: a standby cluster takes no
/// writes) that says `running` and gives its host and port.
pub fn leader_address(view: &ClusterView) -> Option<(String, u16)> {
    view.members
        .iter()
        .find(|m| m.role == MemberRole::Leader && m.state == "running")
        .and_then(|m| Some((m.host.clone()?, m.port?)))
}

/// Where the fence connects: the leader's address from Patroni's REST API
/// with `base`'s user, password and database; `base` itself when the API
/// does not answer or names no running leader.
async fn leader_conn(ctx: &Ctx, name: &str, r: &RegionConfig, base: &ConnConfig) -> ConnConfig {
    let api = match super::patroni::api_of(ctx, name, r).await {
        Ok(a) => a.with_timeout(CALL_TIMEOUT).with_retry(Retry {
            attempts: 1,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(100),
        }),
        Err(e) => {
            tracing::warn!(region = name, error = %e, "the fence cannot use Patroni's REST API; trying postgres.url");
            return base.clone();
        }
    };
    match api.cluster().await {
        Ok(view) => match leader_address(&view) {
            Some((host, port)) => {
                let mut c = base.clone();
                c.host = PgHost::Tcp(host);
                c.port = port;
                c
            }
            None => {
                tracing::warn!(
                    region = name,
                    "Patroni's /cluster names no running leader; the fence tries postgres.url"
                );
                base.clone()
            }
        },
        Err(e) => {
            tracing::warn!(region = name, error = %e, "Patroni's /cluster did not answer; the fence tries postgres.url");
            base.clone()
        }
    }
}

/// Fences the managed primary of region `name`: LOGIN of `roles` revoked
/// and their sessions terminated on its primary ([`primary_conn`]), retried
/// (the primary looked up again each time) until `timeout`. The error says what failed last and
/// what to do.
pub async fn fence(
    ctx: &Ctx,
    name: &str,
    r: &RegionConfig,
    roles: &[String],
    epoch: u64,
    timeout: Duration,
) -> Result<FenceReport, String> {
    let until = Instant::now() + timeout;
    let mut base =
        crate::postgres::source::connection(ctx, &r.postgres.url, r.postgres.password.as_ref())
            .await
            .map_err(|e| format!("regions.{name}.postgres: {e}"))?;
    base.connect_timeout = CALL_TIMEOUT;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let conn = primary_conn(ctx, name, r, &base).await;
        let left = until
            .saturating_duration_since(Instant::now())
            .max(CALL_TIMEOUT);
        match revoke_login_on(&conn, roles, epoch, left).await {
            Ok(report) => {
                if r.postgres.manager() == PgManager::Cnpg {
                    cnpg_roles(ctx, name, r, roles).await;
                }
                return Ok(report);
            }
            Err(e) => {
                if Instant::now() >= until {
                    return Err(format!(
                        "revoking LOGIN of {roles:?} on {name}'s {} ({}) failed after \
                         {attempts} attempt(s): {e}; lock the application out by hand (ALTER ROLE \
                         … NOLOGIN on the primary, then pg_terminate_backend of their sessions)",
                        primary_noun(r),
                        conn.display_url()
                    ));
                }
                tracing::warn!(region = name, error = %e, "revoking LOGIN on the primary failed; looking it up again and retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// After a CloudNativePG fence: `login: false` on the fence roles the
/// `Cluster` manages, so that the operator does not give LOGIN back
/// (`region::cnpg_fence`). Logged, never failing the fence: the roles are
/// NOLOGIN on the primary already.
async fn cnpg_roles(ctx: &Ctx, name: &str, r: &RegionConfig, roles: &[String]) {
    match super::cnpg_fence::patch_roles(ctx, name, r, roles).await {
        Ok(patched) if patched.is_empty() => {}
        Ok(patched) => {
            tracing::warn!(region = name, roles = ?patched, "set login: false on the fenced roles in the CloudNativePG Cluster's spec.managed.roles (the operator enforces it now; set it back to true when the region is rejoined)")
        }
        Err(e) => {
            tracing::error!(region = name, error = %e, "could not check or patch the CloudNativePG Cluster's spec.managed.roles after the fence: if it manages a fenced role with login: true, the operator gives that role LOGIN back; set login: false there by hand")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_region::managers::patroni::Member;

    fn member(role: MemberRole, state: &str, port: Option<u16>) -> Member {
        Member {
            name: "m".into(),
            role,
            state: state.into(),
            host: Some("10.0.0.1".into()),
            port,
            timeline: None,
            lag_bytes: None,
        }
    }

    #[test]
    fn the_leader_is_the_running_leader_with_an_address() {
        let cases = [
            (
                vec![member(MemberRole::Leader, "running", Some(5432))],
                Some(5432),
            ),
            (
                vec![
                    member(MemberRole::Replica, "streaming", Some(5433)),
                    member(MemberRole::Leader, "running", Some(5434)),
                ],
                Some(5434),
            ),
            // a standby cluster's leader takes no writes
            (
                vec![member(MemberRole::StandbyLeader, "running", Some(5432))],
                None,
            ),
            (
                vec![member(MemberRole::Leader, "stopped", Some(5432))],
                None,
            ),
            (vec![member(MemberRole::Leader, "running", None)], None),
            (vec![], None),
        ];
        for (members, want) in cases {
            let view = ClusterView {
                members: members.clone(),
                paused: false,
            };
            assert_eq!(leader_address(&view).map(|(_, p)| p), want, "{members:?}");
        }
    }

    #[test]
    fn only_a_patroni_or_cnpg_region_with_revoke_login_is_fenced_as_managed() {
        let region = |extra: &str| {
            let yaml = format!(
                "repository: {{url: /tmp/r}}\nregions:\n  us-east:\n    postgres: {{url: \"postgresql://u@h/d\", role: primary{extra}}}\n  eu-west:\n    postgres: {{url: \"postgresql://u@h2/d\", role: standby, replicates_from: us-east}}\n"
            );
            let c = crate::config::parse(&yaml, "t.yaml").unwrap();
            c.region("us-east").unwrap().clone()
        };
        let patroni = region(", manager: patroni, patroni: {url: \"http://p:8008\"}");
        let cnpg = region(", manager: cnpg, cnpg: {namespace: db, cluster: pg}");
        let plain = region("");
        let revoke = FenceConfig::RevokeLogin {
            roles: vec!["app".into()],
        };
        let cases = [
            (&patroni, Some(&revoke), true),
            (&patroni, Some(&FenceConfig::Stop), false),
            (&patroni, None, false),
            (&cnpg, Some(&revoke), true),
            (&cnpg, Some(&FenceConfig::Stop), false),
            (&cnpg, None, false),
            (&plain, Some(&revoke), false),
        ];
        for (r, f, want) in cases {
            assert_eq!(
                managed_fenced(r, f),
                want,
                "{:?} {f:?}",
                r.postgres.manager()
            );
        }
    }
}
