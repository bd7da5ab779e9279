//! Where a PostgreSQL flow's database is: a configured source (its URL,
//! password reference, client tools and verification queries) or a bare
//! URL; and the facts a PostgreSQL snapshot carries.

use lifeboat_postgres::VerificationQuery;
use lifeboat_postgres::conn::{ConnConfig, Secret};
use lifeboat_postgres::facts::Facts;
use lifeboat_postgres::tools::Discovery;
use lifeboat_repo::snapshot::SnapshotRef;

use super::errors::conn_err;
use crate::config::{PgUrl, SecretRef, SourceConfig, SourceKind};
use crate::context::Ctx;
use crate::error::{Context, INCOMPATIBLE, Result, fail, usage};

/// A configured PostgreSQL source: its connection, discovery and queries.
pub struct PgSource {
    pub name: String,
    pub conn: ConnConfig,
    pub discovery: Discovery,
    pub queries: Vec<VerificationQuery>,
    pub config: Option<SourceConfig>,
}

/// A configured database: its URL with the password its reference resolves
/// to now (read at each call).
pub async fn connection(
    ctx: &Ctx,
    url: &PgUrl,
    password: Option<&SecretRef>,
) -> Result<ConnConfig> {
    let conn = ConnConfig::parse(url.as_str()).map_err(conn_err)?;
    Ok(match password {
        Some(p) => {
            let secret = ctx.resolve(p).await?;
            conn.with_password(Secret::new(secret))
        }
        None => conn,
    })
}

/// The configured source a restore of `snap` belongs to: `explicit`
/// (`--source`), else the snapshot's own source when the configuration has
/// it; its name and its settings. `(None, None)` without either.
pub async fn snapshot_source(
    ctx: &Ctx,
    explicit: Option<&str>,
    snap: &SnapshotRef,
) -> Result<(Option<String>, Option<PgSource>)> {
    let name = explicit.map(str::to_string).or_else(|| {
        ctx.config
            .as_ref()
            .filter(|c| c.sources.contains_key(&snap.snapshot.source))
            .map(|_| snap.snapshot.source.clone())
    });
    let source = match name.as_deref() {
        Some(n) => Some(configured_source(ctx, n).await?),
        None => None,
    };
    Ok((name, source))
}

pub async fn configured_source(ctx: &Ctx, name: &str) -> Result<PgSource> {
    let cfg = ctx.config.as_ref().ok_or_else(|| {
        usage(format!(
            "--source {name} needs a configuration file: pass --config FILE, set LIFEBOAT_CONFIG, \
             or use --db URL"
        ))
    })?;
    let src = cfg.source(name).map_err(|e| usage(e.to_string()))?;
    if src.kind != SourceKind::Postgres {
        return Err(usage(format!(
            "source {name} is a {} source, not postgres",
            src.kind
        )));
    }
    let pg = src
        .postgres
        .as_ref()
        .ok_or_else(|| usage(format!("source {name} has no postgres: section")))?;
    let conn = connection(ctx, &pg.url, pg.password.as_ref()).await?;
    Ok(PgSource {
        name: name.to_string(),
        conn,
        discovery: Discovery {
            configured_dir: pg.bin_dir.clone(),
            ..Discovery::default()
        },
        queries: pg
            .verify_queries
            .iter()
            .map(|q| VerificationQuery::new(&q.name, &q.sql))
            .collect(),
        config: Some(src.clone()),
    })
}

pub fn url_source(url: &str) -> Result<PgSource> {
    let conn = ConnConfig::parse(url).map_err(conn_err)?;
    Ok(PgSource {
        name: conn.display_url(),
        conn,
        discovery: Discovery::default(),
        queries: Vec::new(),
        config: None,
    })
}

/// The snapshot kind of a logical PostgreSQL backup (`backup postgres`).
pub const POSTGRES_KIND: &str = "postgres";

/// The facts of a PostgreSQL snapshot; any other kind is a usage error.
pub fn postgres_facts(snap: &SnapshotRef) -> Result<Facts> {
    let kind = snap.snapshot.kind.as_str();
    if kind != POSTGRES_KIND {
        return Err(usage(format!(
            "snapshot {} is a {kind} snapshot (source {}), not a PostgreSQL one; nothing was \
             changed. Restore it with `lifeboat restore {kind} {}`, or pick a PostgreSQL snapshot \
             from `lifeboat snapshots`",
            snap.short_id(),
            snap.snapshot.source,
            snap.short_id()
        )));
    }
    let facts: Facts = serde_json::from_value(snap.snapshot.facts.clone()).with_context(|| {
        format!(
            "snapshot {} carries unreadable PostgreSQL facts",
            snap.short_id()
        )
    })?;
    facts
        .check_format()
        .map_err(|e| fail(INCOMPATIBLE, e.to_string()))?;
    Ok(facts)
}
