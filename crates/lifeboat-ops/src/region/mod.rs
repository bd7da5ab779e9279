//! The region flows (docs/regions.md): `region status`, `region replicate`,
//! `region traffic apply|status`, and the health verdicts the daemons
//! publish through the repository. The decisions and the IO against
//! PostgreSQL, DNS and Redis are `lifeboat_region`'s; here the configuration
//! becomes its inputs (secrets read where they are used) and its results
//! become typed reports.
//!
//! - [`verdicts`]: publishing and reading every vantage point's view.
//! - [`traffic`]: the configured provider; `traffic apply` and `status`.
//! - [`route53`]: the `route53` provider's records and checks from the config.
//! - [`status`]: `region status` and its overall verdict.
//! - [`replicate`]: `region replicate` for `postgres`-managed regions.
//! - [`managed_fence`]: the fence of a `manager: patroni` or `cnpg` primary (revoke_login on its primary).
//! - [`cnpg_fence`]: the CloudNativePG side of that fence (the `Cluster`'s managed roles).
//! - [`conn`]: a region's PostgreSQL and Redis as configured.
//! - [`steering`]: which regions steering may answer under the authority.
//! - [`failover`]: `region failover`, `region switchover`, `region authority`:
//!   the driver of the failover state machine.

pub mod cnpg;
pub mod cnpg_fence;
pub mod conn;
pub mod failover;
pub mod managed_fence;
pub mod patroni;
pub mod replicate;
pub mod route53;
pub mod status;
pub mod steering;
pub mod traffic;
pub mod verdicts;
