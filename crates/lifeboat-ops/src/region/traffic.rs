//! Traffic steering from the configuration: the provider `traffic:` names,
//! built with its secrets read where they are used, and the two flows
//! `region traffic apply` and `region traffic status`, for `rfc2136` here
//! and handed to [`super::route53`] for `route53` (one report type per
//! provider, one JSON document per command).
//!
//! Which answers the steered name should give comes from the published
//! health verdicts ([`super::verdicts`]): per region, the consensus of the
//! vantage points whose view is fresh; a region nobody has a fresh verdict
//! on counts as healthy (Route 53's rule for a new check), and so does every
//! region when nobody published at all (said in the result).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeboat_region::health::Consensus;
use lifeboat_region::topology::DnsAnswer;
use lifeboat_region::traffic::rfc2136::{Rfc2136Config, Rfc2136Provider, TsigKey};
use lifeboat_region::traffic::{
    Answer, AnswerSet, Applied, DesiredAnswers, RegionAnswer, TrafficError, TrafficProvider,
    Verdicts, desired_answer_set,
};
use serde::Serialize;

use super::route53;
use super::verdicts::{self, ObserverView};
use crate::config::{Config, Provider, TsigAlgorithm};
use crate::context::Ctx;
use crate::error::{Error, Kind, Result};

/// How old a vantage point's view may be and still count: three times the
/// longest check interval (a daemon that missed two publishes in a row is
/// not trusted), at least 90 s.
pub fn max_view_age(config: &Config) -> Duration {
    let longest = config
        .regions()
        .values()
        .flat_map(|r| r.check_specs())
        .map(|c| c.interval)
        .max()
        .unwrap_or(Duration::from_secs(30));
    (longest * 3).max(Duration::from_secs(90))
}

/// The regions' DNS answers in file order (regions without `dns:` are not
/// steered to).
pub fn region_answers(config: &Config) -> Vec<RegionAnswer> {
    config
        .regions_in_file_order()
        .into_iter()
        .filter_map(|(name, r)| {
            r.answer().map(|a| RegionAnswer {
                region: name.to_string(),
                answer: match a {
                    DnsAnswer::Address(ip) => Answer::from(ip),
                    DnsAnswer::Target(t) => {
                        Answer::Target(t.trim_end_matches('.').to_ascii_lowercase())
                    }
                },
            })
        })
        .collect()
}

/// The per-verdict provider `traffic:` configures: `rfc2136`, whose answer
/// set Lifeboat keeps equal to the healthy regions' (the TSIG secret is read
/// now, never logged). `route53` is no such provider: Route 53 runs the
/// health checks and picks the answers itself, so its flows are
/// [`super::route53`]'s and asking for it here is refused.
pub async fn provider(ctx: &Ctx, config: &Config) -> Result<Box<dyn TrafficProvider>> {
    let traffic = config.traffic.as_ref().ok_or_else(|| {
        Error::usage("the configuration has no `traffic:` section: nothing steers DNS")
            .with_hint("add `traffic:` (provider, name, and the provider's section); see docs/regions/topology.md")
    })?;
    match traffic.provider() {
        Provider::Route53 => Err(Error::usage(
            "traffic.provider route53 is not steered per health verdict: Route 53 runs the \
             health checks and answers by them",
        )
        .with_hint("`lifeboat region traffic apply` writes its records and health checks; docs/regions/route53.md")),
        Provider::Rfc2136 => Ok(Box::new(build_rfc2136(ctx, config, traffic).await?)),
    }
}

/// The `rfc2136` provider when `traffic:` configures one (`None` without a
/// `traffic:` section or with `route53`), for the failover's DNS switch.
pub async fn rfc2136_provider(ctx: &Ctx, config: &Config) -> Result<Option<Rfc2136Provider>> {
    match &config.traffic {
        Some(t) if t.provider() == Provider::Rfc2136 => {
            Ok(Some(build_rfc2136(ctx, config, t).await?))
        }
        _ => Ok(None),
    }
}

async fn build_rfc2136(
    ctx: &Ctx,
    config: &Config,
    traffic: &crate::config::TrafficConfig,
) -> Result<Rfc2136Provider> {
    {
        {
            let c = traffic.rfc2136.as_ref().map(|s| &s.value).ok_or_else(|| {
                Error::usage("traffic.provider is rfc2136 but there is no traffic.rfc2136 section")
            })?;
            if c.tsig.algorithm != TsigAlgorithm::HmacSha256 {
                return Err(Error::usage(format!(
                    "traffic.rfc2136.tsig.algorithm: Lifeboat signs with hmac-sha256 only; \
                     generate the key with `tsig-keygen -a hmac-sha256 {}`",
                    c.tsig.name
                )));
            }
            let server = resolve_server(&c.server).await?;
            let secret = zeroize::Zeroizing::new(
                ctx.resolve(&c.tsig.secret)
                    .await
                    .map_err(|e| e.context("traffic.rfc2136.tsig.secret"))?,
            );
            let key = TsigKey::from_base64(&c.tsig.name, &secret).map_err(traffic_error)?;
            let mut rc = Rfc2136Config::new(
                server,
                &c.zone.normalized(),
                &traffic.name().normalized(),
                key,
            );
            rc.ttl = traffic.ttl();
            Rfc2136Provider::new(rc, region_answers(config)).map_err(traffic_error)
        }
    }
}

/// `host:port` (port 53 when missing) to one address.
async fn resolve_server(server: &str) -> Result<SocketAddr> {
    if let Ok(a) = server.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = server.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    let with_port = if server
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        server.to_string()
    } else {
        format!("{server}:53")
    };
    let mut found = tokio::net::lookup_host(&with_port).await.map_err(|e| {
        Error::usage(format!(
            "traffic.rfc2136.server {server:?}: cannot resolve it: {e}; give `address:port` or a name this host resolves"
        ))
    })?;
    found.next().ok_or_else(|| {
        Error::usage(format!(
            "traffic.rfc2136.server {server:?} resolves to no address"
        ))
    })
}

/// A provider's error as a flow error: configuration problems are usage
/// (exit 2), refused credentials auth (exit 6), the rest failures (exit 1).
pub fn traffic_error(e: TrafficError) -> Error {
    let kind = match &e {
        TrafficError::Config(_) => Kind::Usage,
        TrafficError::Credentials { .. } => Kind::Auth,
        _ => Kind::Failure,
    };
    Error::new(kind, e.to_string())
}

/// What health says, from the published views.
#[derive(Debug, Clone, Serialize)]
pub struct HealthBasis {
    /// The vantage points that published, with when.
    pub observers: Vec<ObserverSeen>,
    /// How old a view may be to count, in seconds.
    pub max_view_age_seconds: u64,
    /// Per region, the consensus of the fresh views.
    pub regions: BTreeMap<String, Consensus>,
    /// No vantage point has published: every region counts as healthy.
    pub none_published: bool,
    /// The verdicts the answer set is made from (a region absent: healthy).
    pub verdicts: Verdicts,
}

#[derive(Debug, Clone, Serialize)]
pub struct ObserverSeen {
    pub observer: String,
    pub published_at: DateTime<Utc>,
}

/// The health basis from `views` at `now` (pure).
pub fn health_basis(config: &Config, views: &[ObserverView], now: DateTime<Utc>) -> HealthBasis {
    let regions: Vec<String> = config.regions().keys().cloned().collect();
    let max_age = max_view_age(config);
    let (steering, by_region) = verdicts::steering(views, &regions, now, max_age);
    HealthBasis {
        observers: views
            .iter()
            .map(|v| ObserverSeen {
                observer: v.observer.clone(),
                published_at: v.published_at,
            })
            .collect(),
        max_view_age_seconds: max_age.as_secs(),
        verdicts: steering,
        regions: by_region,
        none_published: views.is_empty(),
    }
}

/// `region traffic apply`'s result: one document per provider.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ApplyReport {
    Rfc2136(Rfc2136Apply),
    Route53(route53::ApplyReport),
}

/// `region traffic apply` with `rfc2136`.
#[derive(Debug, Clone, Serialize)]
pub struct Rfc2136Apply {
    /// `rfc2136`.
    pub provider: &'static str,
    /// The steered name.
    pub name: String,
    pub health: HealthBasis,
    pub applied: Applied,
}

/// `region traffic apply [--dry-run]`: with `rfc2136`, makes the steered
/// name answer as the published health says; with `route53`, makes the
/// hosted zone hold the configured weighted records and health checks
/// (Route 53 then answers by its checks). Idempotent; nothing written when
/// the provider already matches or with `dry_run`.
pub async fn apply(ctx: &Ctx, dry_run: bool) -> Result<ApplyReport> {
    let config = config_of(ctx)?;
    if config.traffic_provider() == Some(Provider::Route53) {
        return route53::apply(ctx, dry_run).await.map(ApplyReport::Route53);
    }
    let provider = provider(ctx, config).await?;
    let repo = ctx.open().await?;
    let views = verdicts::read_all(&repo).await?;
    let health = health_basis(config, &views, Utc::now());
    if health.none_published {
        ctx.reporter().note(
            "no vantage point has published health verdicts yet (no daemon runs health checks): \
             every region counts as healthy",
        );
    }
    let applied = provider
        .apply(&health.verdicts, dry_run)
        .await
        .map_err(traffic_error)?;
    if applied.desired.all_unhealthy {
        ctx.reporter().note(
            "every region is unhealthy: the name answers with every region (as Route 53 does when \
             no record is healthy)",
        );
    }
    Ok(ApplyReport::Rfc2136(Rfc2136Apply {
        provider: "rfc2136",
        name: provider.record_name().to_string(),
        health,
        applied,
    }))
}

/// `region traffic status`'s result: one document per provider.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum StatusReport {
    Rfc2136(Rfc2136Status),
    Route53(route53::StatusReport),
}

/// `region traffic status` with `rfc2136`.
#[derive(Debug, Clone, Serialize)]
pub struct Rfc2136Status {
    pub provider: String,
    pub name: String,
    /// What the authoritative server answers now.
    pub current: AnswerSet,
    /// What health says it should answer.
    pub desired: DesiredAnswers,
    pub health: HealthBasis,
    /// `current == desired.answers`.
    pub in_sync: bool,
}

/// `region traffic status`: what DNS answers now next to what health says
/// (with `route53`, also every record and check as Route 53 holds them).
pub async fn status(ctx: &Ctx) -> Result<StatusReport> {
    let config = config_of(ctx)?;
    if config.traffic_provider() == Some(Provider::Route53) {
        return route53::status(ctx).await.map(StatusReport::Route53);
    }
    let provider = provider(ctx, config).await?;
    let repo = ctx.open().await?;
    let views = verdicts::read_all(&repo).await?;
    let health = health_basis(config, &views, Utc::now());
    let current = provider.current().await.map_err(traffic_error)?;
    let desired = desired_answer_set(&region_answers(config), &health.verdicts);
    Ok(StatusReport::Rfc2136(Rfc2136Status {
        provider: provider.provider().to_string(),
        name: provider.record_name().to_string(),
        in_sync: current == desired.answers,
        current,
        desired,
        health,
    }))
}

/// The configuration, required by every region flow.
pub(crate) fn config_of(ctx: &Ctx) -> Result<&Config> {
    ctx.config.as_ref().ok_or_else(|| {
        Error::usage(
            "region commands read the `regions:` section of the configuration: pass --config FILE \
             or set LIFEBOAT_CONFIG",
        )
    })
}
