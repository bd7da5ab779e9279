//! Test and benchmark fixtures on top of the demo's dataset
//! ([`crate::demo_data`], re-exported here so tests name it `fixture::…`):
//! benchmark sizes ([`FixtureSpec::with_target_bytes`]), an hour of activity
//! ([`churn`]), content hashes of every table ([`content_hashes`]) and the
//! catalog objects ([`CATALOG_OBJECTS_SQL`]). Behind the `testing` feature:
//! not in release builds.

use std::collections::BTreeMap;

use tokio_postgres::Client;

pub use crate::demo_data::*;
use crate::demo_data::{BATCH, EMBEDDING_INSERT_SQL, REMEDIATION_INSERT_SQL, exec, sql_err};
use crate::facts::TableName;

impl FixtureSpec {
    /// Roughly `bytes` of database (`pg_database_size`, within ~10 %), split like a
    /// Kubernaut installation: ~55 % audit trail, ~40 % embeddings, the rest
    /// remediation history. Measured: 2.07 GiB took 165 s to generate on 2 busy
    /// cores (before this calibration; now that is `with_target_bytes(2 << 30)`),
    /// and its `pg_dump -Fc -Z0` archive is ~1.2× the database size.
    pub fn with_target_bytes(bytes: u64) -> Self {
        let audit_events = (bytes as f64 * 0.55 / 2200.0) as u64;
        FixtureSpec {
            audit_events: audit_events.max(100),
            embeddings: ((bytes as f64 * 0.40 / 8500.0) as u64).max(10),
            remediations: ((bytes as f64 * 0.05 / 900.0) as u64).max(10),
            months: (audit_events / 60_000).clamp(3, 24) as u32,
        }
    }
}

/// A function, a view, and a large object (a runbook) that tests of the
/// catalog facts ([`crate::catalog`]) add to a generated fixture, so that
/// each kind has one object to lose. Not part of [`generate`]: a `--jobs`
/// restore over an existing database holding them fails in the split
/// restore (found by issue 17's work, not yet fixed; see the helper report).
pub const CATALOG_OBJECTS_SQL: &str = r#"
-- What the catalog facts check besides rows (a function, a view, the
-- fixture's two serial sequences, and a large object): a restore that lost one of
-- them must not verify.
CREATE FUNCTION workflow_success_rate(p_workflow_id text) RETURNS numeric
LANGUAGE sql STABLE AS $$
    SELECT round(avg((status = 'completed')::int), 3) FROM remediation_history
    WHERE workflow_id = p_workflow_id
$$;
-- (Over goose_db_version, which no test restores with --table: a view over a
-- table makes pg_restore --clean of that table alone fail.)
CREATE VIEW schema_version AS
    SELECT max(version_id) AS version_id, count(*) AS migrations
    FROM goose_db_version WHERE is_applied;
-- A runbook attachment kept as a large object.
SELECT lo_from_bytea(0, convert_to(repeat('runbook: cordon the node, drain it, restart the pod; ', 40), 'UTF8'));
"#;

/// What [`churn`] changed.
#[derive(Clone, Debug, Default)]
pub struct ChurnReport {
    pub audit_events_added: u64,
    pub embeddings_added: u64,
    pub remediations_added: u64,
    pub remediations_updated: u64,
}

/// One "hour" of activity: `fraction` (e.g. 0.01) of the audit events and of the
/// embeddings as new rows, and the same fraction of remediation history updated
/// (and added). For benchmarks of incremental backups.
pub async fn churn(client: &Client, fraction: f64) -> Result<ChurnReport, FixtureError> {
    let count = |t: &'static str| async move {
        client
            .query_one(&format!("SELECT count(*) FROM {t}"), &[])
            .await
            .map(|r| r.get::<_, i64>(0))
            .map_err(sql_err(format!("counting {t}")))
    };
    let of = |n: i64| ((n as f64 * fraction).round() as u64).max(1);
    let audit = of(count("audit_events").await?);
    let emb = of(count("incident_embeddings").await?);
    let rem = of(count("remediation_history").await?);
    exec(client, "setting up the session", "SET TimeZone = 'UTC'").await?;
    append_audit_events(client, audit).await?;
    let start: i64 = client
        .query_one("SELECT (random() * 1e12)::int8", &[])
        .await
        .map_err(sql_err("numbering rows"))?
        .get(0);
    let now = chrono::Utc::now();
    let mut i = 0u64;
    while i < emb {
        let n = (BATCH / 10).min(emb - i) as i64;
        client
            .execute(EMBEDDING_INSERT_SQL, &[&(start + i as i64), &n, &now])
            .await
            .map_err(sql_err("adding embeddings"))?;
        i += n as u64;
    }
    let updated = client
        .execute(
            "UPDATE remediation_history
             SET status = CASE WHEN status = 'running' THEN 'completed' ELSE 'reopened' END,
                 details = details || jsonb_build_object('churned_at', now()::text, 'note', md5(random()::text)),
                 updated_at = now()
             WHERE id IN (SELECT id FROM remediation_history TABLESAMPLE BERNOULLI ($1::float8 * 100))",
            &[&fraction],
        )
        .await
        .map_err(sql_err("updating remediation history"))?;
    client
        .execute(REMEDIATION_INSERT_SQL, &[&start, &(rem as i64), &now])
        .await
        .map_err(sql_err("adding remediation history"))?;
    Ok(ChurnReport {
        audit_events_added: audit,
        embeddings_added: emb,
        remediations_added: rem,
        remediations_updated: updated,
    })
}

/// A table's content fingerprint: row count and the md5 of the sorted md5s of
/// every row's text form, so it does not depend on physical row order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableHash {
    pub rows: i64,
    pub md5: String,
}

/// Content hashes of every ordinary table and leaf partition outside the system
/// schemas, keyed by `schema.name`. Sets `TimeZone`, `DateStyle` and
/// `extra_float_digits` on the session so both sides of a comparison render alike.
pub async fn content_hashes(client: &Client) -> Result<BTreeMap<String, TableHash>, FixtureError> {
    exec(
        client,
        "setting up the session",
        "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 1; SET IntervalStyle = 'postgres'",
    )
    .await?;
    let tables = client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(sql_err("listing tables"))?;
    let mut out = BTreeMap::new();
    for t in tables {
        let name = TableName::new(t.get::<_, String>(0), t.get::<_, String>(1));
        let r = client
            .query_one(
                &format!(
                    "SELECT count(*), coalesce(md5(string_agg(h, '' ORDER BY h)), '')
                     FROM (SELECT md5(t::text) AS h FROM ONLY {} t) s",
                    name.quoted()
                ),
                &[],
            )
            .await
            .map_err(sql_err(format!("hashing {name}")))?;
        out.insert(
            name.to_string(),
            TableHash {
                rows: r.get(0),
                md5: r.get(1),
            },
        );
    }
    Ok(out)
}
