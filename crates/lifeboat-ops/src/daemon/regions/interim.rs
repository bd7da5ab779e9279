//! INTERIM, until r-cli's `crate::region::{verdicts, traffic}` is merged:
//! the rfc2136 provider built from the config, and verdict publishing that
//! keeps nothing (each daemon steers by its own view).

use lifeboat_region::traffic::rfc2136::{Rfc2136Config, Rfc2136Provider, TsigKey};
use lifeboat_region::traffic::TrafficProvider;
use lifeboat_repo::Repository;

use super::decide::View;
use crate::config::Config;
use crate::context::Ctx;
use crate::error::{Result, usage};

pub async fn publish(
    _repo: &Repository,
    _observer: &str,
    _verdicts: &[lifeboat_region::health::Verdict],
) -> Result<()> {
    Ok(())
}

pub async fn read_all(_repo: &Repository) -> Result<Vec<View>> {
    Ok(Vec::new())
}

pub async fn provider(ctx: &Ctx, config: &Config) -> Result<Box<dyn TrafficProvider>> {
    let t = config.traffic.as_ref().ok_or_else(|| usage("no traffic:"))?;
    let r = t.rfc2136.as_ref().ok_or_else(|| usage("no traffic.rfc2136"))?;
    let secret = ctx.resolve(&r.value.tsig.secret).await?;
    let key = TsigKey::from_base64(&r.value.tsig.name, &secret).map_err(|e| usage(e.to_string()))?;
    let server = tokio::net::lookup_host(&r.value.server)
        .await
        .map_err(|e| usage(e.to_string()))?
        .next()
        .ok_or_else(|| usage("no address"))?;
    let mut c = Rfc2136Config::new(server, r.value.zone.as_str(), &t.name().normalized(), key);
    c.ttl = t.ttl();
    let regions = super::region_answers(config);
    Ok(Box::new(
        Rfc2136Provider::new(c, regions).map_err(|e| usage(e.to_string()))?,
    ))
}
