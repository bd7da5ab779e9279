//! A region's servers as the region flows reach them: its PostgreSQL
//! connection, its Redis endpoint and its repository copy's storage and
//! secret, with their passwords read from their references now (never
//! stored, never logged).

use lifeboat_postgres::Secret;
use lifeboat_postgres::conn::ConnConfig;
use lifeboat_region::redis::RedisEndpoint;

use std::sync::Arc;

use lifeboat_repo::storage::Storage;
use lifeboat_repo::storage::object::open_url;
use lifeboat_repo::storage::retry::{RetryPolicy, Retrying};

use crate::config::{RedisConfig, RegionConfig, RegionRepository};
use crate::context::Ctx;
use crate::error::{Error, Result};

/// The region's PostgreSQL (`regions.<r>.postgres.url` and `password`).
pub async fn region_conn(ctx: &Ctx, r: &RegionConfig) -> Result<ConnConfig> {
    crate::postgres::source::connection(ctx, &r.postgres.url, r.postgres.password.as_ref()).await
}

/// The region's Redis (`regions.<r>.redis`): host and port from the URL
/// (`redis://[user@]host[:port][/db]`, port 6379 by default), the password
/// from its reference.
pub async fn redis_endpoint(ctx: &Ctx, c: &RedisConfig) -> Result<RedisEndpoint> {
    let (username, host, port) = parse_redis_url(c.url.as_str())?;
    let password = match &c.password {
        Some(p) => Some(Secret::new(ctx.resolve(p).await?)),
        None => None,
    };
    Ok(RedisEndpoint {
        host,
        port,
        username,
        password,
    })
}

/// `(user, host, port)` of a Redis URL (pure).
pub fn parse_redis_url(url: &str) -> Result<(Option<String>, String, u16)> {
    let bad = || {
        Error::usage(format!(
            "the Redis url {url:?} is not redis://[user@]host[:port]"
        ))
    };
    let rest = url.split_once("://").map(|(_, r)| r).ok_or_else(bad)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u.to_string()).filter(|u| !u.is_empty()), h),
        None => (None, authority),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None => 6379,
        };
        (h.to_string(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad())?),
            None => (hostport.to_string(), 6379),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok((user, host, port))
}

/// The storage of the region's repository copy (`regions.<r>.repository`),
/// its S3 settings resolved as the main repository's, transient errors
/// retried.
pub async fn copy_storage(ctx: &Ctx, r: &RegionRepository) -> Result<Arc<dyn Storage>> {
    let s3 = ctx.resolve_s3(r.s3.as_ref()).await?;
    Ok(Retrying::wrap(
        open_url(r.url.as_str(), &s3)?,
        RetryPolicy::default(),
    ))
}

/// The secret of the region's repository copy: its `key_file`, else its
/// `password`, else the main repository's secret (as documented in
/// docs/regions/topology.md).
pub async fn copy_secret(ctx: &Ctx, r: &RegionRepository) -> Result<lifeboat_repo::Secret> {
    Ok(match (&r.key_file, &r.password) {
        (Some(p), _) => crate::secrets::key_from_file(p)?,
        (None, Some(p)) => lifeboat_repo::Secret::Passphrase(ctx.resolve(p).await?),
        (None, None) => ctx.secret().await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_url_table() {
        let ok: &[(&str, Option<&str>, &str, u16)] = &[
            ("redis://127.0.0.1:6380", None, "127.0.0.1", 6380),
            ("redis://cache.example", None, "cache.example", 6379),
            ("rediss://app@cache:7000/2", Some("app"), "cache", 7000),
            ("redis://[::1]:6390", None, "::1", 6390),
        ];
        for (url, user, host, port) in ok {
            let got = parse_redis_url(url).unwrap();
            assert_eq!(
                got,
                (user.map(String::from), host.to_string(), *port),
                "{url}"
            );
        }
        for url in ["redis://:x", "redis://h:notaport", "nourl"] {
            assert!(parse_redis_url(url).is_err(), "{url}");
        }
    }
}
