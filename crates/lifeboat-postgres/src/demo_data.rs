//! The demo's dataset, part of the product: `lifeboat demo` generates it,
//! corrupts it, restores it and proves the restore by its hash chain. Tests
//! and benchmarks use it too, through [`crate::fixture`] (the `testing`
//! feature), which adds what only they need (churn, content hashes, catalog
//! objects, benchmark sizes).
//!
//! A Kubernaut-like database. Shape (see `KUBERNAUT.md`): extensions `uuid-ossp` and `pgcrypto`; goose's
//! `goose_db_version`; `audit_events` partitioned by range of `event_date` into
//! monthly partitions with **no default partition**, primary key
//! `(event_id, event_date)`, triggers (BEFORE INSERT sets `event_date` from
//! `event_timestamp`, BEFORE DELETE refuses rows under legal hold, BEFORE UPDATE
//! refuses every change) and a hash chain; `incident_embeddings` with 1536-float
//! `real[]` vectors (no pgvector needed) and JSONB metadata; `remediation_history`
//! and `workflow_catalog` with JSONB.
//!
//! The hash chain: events are ordered by `(event_timestamp, event_id)`;
//! `event_hash = hex(sha256(previous_event_hash || canonical content))` where the
//! canonical content is [`CANONICAL_EVENT_SQL`] and the first event's previous hash
//! is empty (NULL). It is computed in SQL with pgcrypto's `digest`. Verification
//! ([`verify_hash_chain`]) recomputes every hash with a window function, needing no
//! state and no fixture functions in the database.
//!
//! Generation is server-side (`INSERT … SELECT … FROM generate_series`, in batches,
//! two connections in parallel); the chain is threaded through the rows of a batch by
//! a temporary (`pg_temp`) function that keeps the head in a session setting, so the
//! generated database holds only Kubernaut-like objects. Secondary indexes, primary
//! keys and triggers are created after the bulk load, as a migration-then-import
//! would. Sizes go from [`FixtureSpec::tiny`] (a few thousand rows, under a second)
//! to `FixtureSpec::with_target_bytes` (testing feature; ≥ 1.5 GB for benchmarks).

use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::conn::{ConnConfig, ConnError};
use crate::facts::VerificationQuery;

/// Errors of the fixture generator.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error(transparent)]
    Conn(#[from] ConnError),
    #[error("{what}: {}", crate::conn::pg_message(source))]
    Sql {
        what: String,
        source: tokio_postgres::Error,
    },
}

pub(crate) fn sql_err(
    what: impl Into<String>,
) -> impl FnOnce(tokio_postgres::Error) -> FixtureError {
    let what = what.into();
    move |source| FixtureError::Sql { what, source }
}

/// How much to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixtureSpec {
    pub audit_events: u64,
    pub embeddings: u64,
    pub remediations: u64,
    /// Months covered by the audit events (one partition each, ending with the
    /// current month; two future months are created as well).
    pub months: u32,
}

impl FixtureSpec {
    /// A few thousand rows: for the demo and tests.
    pub fn tiny() -> Self {
        FixtureSpec {
            audit_events: 3000,
            embeddings: 60,
            remediations: 400,
            months: 4,
        }
    }
}

/// What [`generate`] made.
#[derive(Clone, Debug)]
pub struct GenerateReport {
    pub audit_events: u64,
    pub embeddings: u64,
    pub remediations: u64,
    pub partitions: Vec<String>,
    pub database_size_bytes: i64,
    pub elapsed: Duration,
    /// Wall time of each phase (the two loaders run in parallel).
    pub phases: Vec<(String, Duration)>,
}

/// Canonical content of an audit event (alias `e`) that the chain hashes: every
/// column except the two hash columns and `legal_hold` (a hold may be placed later),
/// rendered independently of session settings (timestamps as epoch microseconds,
/// JSONB in its normalised text form).
pub const CANONICAL_EVENT_SQL: &str = "concat_ws('|', e.event_id::text, e.event_version, \
    (extract(epoch FROM e.event_timestamp) * 1000000)::bigint::text, e.event_date::text, \
    e.event_type, e.event_category, e.event_action, e.event_outcome, e.actor_type, e.actor_id, \
    e.resource_type, e.resource_id, e.correlation_id, coalesce(e.parent_event_id::text, ''), \
    coalesce(e.namespace, ''), coalesce(e.cluster_id, ''), e.event_data::text, \
    coalesce(e.event_metadata::text, ''), e.retention_days::text)";

const SCHEMA_SQL: &str = r#"
CREATE EXTENSION IF NOT EXISTS "uuid-ossp";
CREATE EXTENSION IF NOT EXISTS pgcrypto;

CREATE TABLE goose_db_version (
    id serial PRIMARY KEY,
    version_id bigint NOT NULL,
    is_applied boolean NOT NULL,
    tstamp timestamp DEFAULT now()
);

CREATE TABLE audit_events (
    event_id uuid NOT NULL DEFAULT uuid_generate_v4(),
    event_version text NOT NULL DEFAULT '1.0',
    event_timestamp timestamptz NOT NULL DEFAULT now(),
    event_date date NOT NULL,
    event_type text NOT NULL,
    event_category text NOT NULL,
    event_action text NOT NULL,
    event_outcome text NOT NULL,
    actor_type text NOT NULL,
    actor_id text NOT NULL,
    resource_type text NOT NULL,
    resource_id text NOT NULL,
    correlation_id text NOT NULL,
    parent_event_id uuid,
    namespace text,
    cluster_id text,
    event_data jsonb NOT NULL DEFAULT '{}',
    event_metadata jsonb,
    retention_days integer NOT NULL DEFAULT 2555,
    event_hash text,
    previous_event_hash text,
    legal_hold boolean NOT NULL DEFAULT false
) PARTITION BY RANGE (event_date);

CREATE TABLE incident_embeddings (
    id uuid NOT NULL DEFAULT uuid_generate_v4(),
    incident_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    model text NOT NULL,
    embedding real[] NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}'
);
-- Per-element statistics of 1536-float arrays make ANALYZE take longer than the load.
ALTER TABLE incident_embeddings ALTER COLUMN embedding SET STATISTICS 0;

CREATE TABLE remediation_history (
    id bigserial,
    remediation_id uuid NOT NULL DEFAULT uuid_generate_v4(),
    signal_name text NOT NULL,
    namespace text NOT NULL,
    target_resource text NOT NULL,
    workflow_id text NOT NULL,
    status text NOT NULL,
    started_at timestamptz NOT NULL,
    completed_at timestamptz,
    details jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE workflow_catalog (
    workflow_id text PRIMARY KEY,
    name text NOT NULL,
    version text NOT NULL,
    spec jsonb NOT NULL,
    labels jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO goose_db_version (version_id, is_applied, tstamp)
SELECT v, true, timestamp '2025-01-01' + v * interval '3 days' FROM generate_series(0, 24) v;

INSERT INTO workflow_catalog (workflow_id, name, version, spec, labels, created_at)
SELECT 'wf-' || i, 'workflow ' || i, '1.' || i,
       jsonb_build_object('steps', jsonb_build_array(
            jsonb_build_object('action', 'scale', 'replicas', i % 5 + 1),
            jsonb_build_object('action', 'restart', 'grace', i * 10)),
          'description', 'Remediation workflow number ' || i),
       jsonb_build_object('signal', 'Signal' || (i % 4), 'severity', CASE WHEN i % 3 = 0 THEN 'critical' ELSE 'warning' END),
       timestamptz '2025-01-01 00:00:00+00' + i * interval '1 hour'
FROM generate_series(0, 11) i;
"#;

const FINISH_SQL: &str = r#"
ALTER TABLE audit_events ADD PRIMARY KEY (event_id, event_date);
CREATE INDEX audit_events_timestamp_idx ON audit_events (event_timestamp);
CREATE INDEX audit_events_correlation_idx ON audit_events (correlation_id, event_timestamp);
CREATE INDEX audit_events_event_data_gin ON audit_events USING gin (event_data jsonb_path_ops);

CREATE FUNCTION audit_events_set_event_date() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.event_date := (NEW.event_timestamp AT TIME ZONE 'UTC')::date;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_events_set_event_date BEFORE INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_set_event_date();

CREATE FUNCTION audit_events_prevent_legal_hold_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.legal_hold THEN
        RAISE EXCEPTION 'audit event % is under legal hold and cannot be deleted', OLD.event_id;
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER audit_events_prevent_legal_hold_delete BEFORE DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_prevent_legal_hold_delete();

CREATE FUNCTION audit_events_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are immutable (event %)', OLD.event_id;
END $$;
CREATE TRIGGER audit_events_immutable BEFORE UPDATE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_immutable();
"#;

const FINISH_OTHERS_SQL: &str = r#"
ALTER TABLE incident_embeddings ADD PRIMARY KEY (id);
CREATE INDEX incident_embeddings_incident_idx ON incident_embeddings (incident_id);
ALTER TABLE remediation_history ADD PRIMARY KEY (id);
CREATE INDEX remediation_history_started_idx ON remediation_history (started_at);
CREATE INDEX remediation_history_details_gin ON remediation_history USING gin (details jsonb_path_ops);

"#;

/// The session function that threads the chain through an `INSERT … SELECT`: it
/// returns `{previous_hash, hash}` and remembers the new head in `lifeboat.chain_head`.
const CHAIN_FN_SQL: &str = r#"
CREATE OR REPLACE FUNCTION pg_temp.lifeboat_chain(content text) RETURNS text[]
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    prev text := nullif(current_setting('lifeboat.chain_head', true), '');
    h text;
BEGIN
    h := encode(digest(coalesce(prev, '') || content, 'sha256'), 'hex');
    PERFORM set_config('lifeboat.chain_head', h, false);
    RETURN ARRAY[prev, h];
END $$;
"#;

/// `INSERT` of audit events `$1 .. $1+$2-1` at `$3 + i*$4 µs`, chained in order.
/// The innermost subquery sorts only the integers; subqueries with ORDER BY or a
/// volatile target list are not flattened by the planner, so the chain function
/// sees the rows in index order.
fn audit_insert_sql() -> String {
    format!(
        r#"
INSERT INTO audit_events (event_id, event_version, event_timestamp, event_date, event_type,
    event_category, event_action, event_outcome, actor_type, actor_id, resource_type, resource_id,
    correlation_id, parent_event_id, namespace, cluster_id, event_data, event_metadata,
    retention_days, legal_hold, previous_event_hash, event_hash)
SELECT x.event_id, x.event_version, x.event_timestamp, x.event_date, x.event_type,
    x.event_category, x.event_action, x.event_outcome, x.actor_type, x.actor_id, x.resource_type,
    x.resource_id, x.correlation_id, x.parent_event_id, x.namespace, x.cluster_id, x.event_data,
    x.event_metadata, x.retention_days, x.legal_hold, x.ch[1], x.ch[2]
FROM (
  SELECT e.*, pg_temp.lifeboat_chain({canonical}) AS ch
  FROM (
    SELECT gen_random_uuid() AS event_id, '1.0'::text AS event_version, ts AS event_timestamp,
      (ts AT TIME ZONE 'UTC')::date AS event_date,
      (ARRAY['gateway.signal.received','orchestrator.remediation.created','aianalysis.analysis.completed',
             'workflowexecution.step.completed','notification.message.sent','effectiveness.assessment.completed'])[1 + i % 6] AS event_type,
      (ARRAY['gateway','orchestration','analysis','execution','notification','assessment'])[1 + i % 6] AS event_category,
      (ARRAY['received','created','completed','executed','sent','assessed'])[1 + i % 6] AS event_action,
      CASE WHEN i % 17 = 0 THEN 'failure' ELSE 'success' END AS event_outcome,
      'service'::text AS actor_type,
      'kubernaut-' || (ARRAY['gateway','remediationorchestrator','aianalysis','workflowexecution','notification','effectivenessmonitor'])[1 + i % 6] AS actor_id,
      'RemediationRequest'::text AS resource_type,
      'rr-' || (i / 6) AS resource_id,
      md5('corr' || (i / 6)) AS correlation_id,
      NULL::uuid AS parent_event_id,
      'prod-' || (i % 23) AS namespace,
      'cluster-' || (i % 3) AS cluster_id,
      jsonb_build_object(
        'signal', jsonb_build_object('name', (ARRAY['HighMemoryUsage','PodCrashLooping','NodeNotReady','HighLatency'])[1 + i % 4],
                                     'fingerprint', md5(i::text), 'severity', CASE WHEN i % 5 = 0 THEN 'critical' ELSE 'warning' END,
                                     'labels', jsonb_build_object('app', 'svc-' || (i % 50), 'pod', 'svc-' || (i % 50) || '-' || substr(md5((i % 977)::text), 1, 10))),
        'analysis', jsonb_build_object('root_cause', 'memory leak in container ' || (i % 97) || ' after deployment ' || substr(md5((i / 100)::text), 1, 8),
                                       'confidence', round(((i % 100) / 100.0)::numeric, 2),
                                       'evidence', jsonb_build_array(md5(('a' || i)::text), md5(('b' || i)::text), md5(('c' || i)::text))),
        'workflow', jsonb_build_object('id', 'wf-' || (i % 12), 'step', i % 7, 'parameters', jsonb_build_object('replicas', i % 5 + 1, 'timeout', '30s')),
        'notes', repeat(md5(('n' || i)::text), 14),
        'sequence', i) AS event_data,
      jsonb_build_object('source', 'lifeboat-fixture', 'schema_version', 3, 'trace_id', md5(('t' || i)::text)) AS event_metadata,
      2555 AS retention_days,
      (i % 500 = 0) AS legal_hold
    FROM (SELECT i, $3::timestamptz + (i * $4::int8) * interval '1 microsecond' AS ts
          FROM (SELECT g AS i FROM generate_series($1::int8, $1::int8 + $2::int8 - 1) g ORDER BY g) o) s
  ) e
) x"#,
        canonical = CANONICAL_EVENT_SQL
    )
}

pub(crate) const EMBEDDING_INSERT_SQL: &str = r#"
INSERT INTO incident_embeddings (id, incident_id, created_at, model, embedding, metadata)
SELECT gen_random_uuid(), 'incident-' || g, $3::timestamptz + (g - $1::int8) * interval '1 second', 'text-embedding-3-small',
       array(SELECT (random() * 2 - 1)::real FROM generate_series(1, 1536) WHERE g IS NOT NULL),
       jsonb_build_object('namespace', 'prod-' || (g % 23), 'signal', (ARRAY['HighMemoryUsage','PodCrashLooping','NodeNotReady','HighLatency'])[1 + g % 4],
                          'summary', 'incident ' || g || ' resolved by workflow wf-' || (g % 12), 'tokens', 200 + g % 300)
FROM generate_series($1::int8, $1::int8 + $2::int8 - 1) g"#;

pub(crate) const REMEDIATION_INSERT_SQL: &str = r#"
INSERT INTO remediation_history (remediation_id, signal_name, namespace, target_resource, workflow_id, status,
                                 started_at, completed_at, details, updated_at)
SELECT gen_random_uuid(), (ARRAY['HighMemoryUsage','PodCrashLooping','NodeNotReady','HighLatency'])[1 + g % 4],
       'prod-' || (g % 23), 'deployment/svc-' || (g % 50), 'wf-' || (g % 12),
       CASE WHEN g % 13 = 0 THEN 'failed' WHEN g % 29 = 0 THEN 'running' ELSE 'completed' END,
       $3::timestamptz + (g - $1::int8) * interval '1 minute', $3::timestamptz + (g - $1::int8) * interval '1 minute' + interval '90 seconds',
       jsonb_build_object('attempts', g % 3 + 1, 'actions', jsonb_build_array('scale', 'restart'),
                          'result', jsonb_build_object('healthy', g % 13 <> 0, 'latency_ms', g % 1000),
                          'log', repeat(md5(('r' || g)::text), 6)),
       $3::timestamptz + (g - $1::int8) * interval '1 minute'
FROM generate_series($1::int8, $1::int8 + $2::int8 - 1) g"#;

pub(crate) const BATCH: u64 = 20_000;

pub(crate) async fn exec(client: &Client, what: &str, sql: &str) -> Result<(), FixtureError> {
    client.batch_execute(sql).await.map_err(sql_err(what))
}

/// Builds the whole fixture in `cfg`'s (empty) database. Uses two connections in
/// parallel. Requires the right to create the two extensions (superuser or, as they
/// are trusted extensions, the database owner).
pub async fn generate(
    cfg: &ConnConfig,
    spec: &FixtureSpec,
) -> Result<GenerateReport, FixtureError> {
    let started = Instant::now();
    let a = cfg.connect().await?;
    let b = cfg.connect().await?;
    exec(
        &a,
        "setting up the session",
        "SET TimeZone = 'UTC'; SET work_mem = '64MB'",
    )
    .await?;
    exec(
        &b,
        "setting up the session",
        "SET TimeZone = 'UTC'; SET work_mem = '64MB'",
    )
    .await?;
    exec(&a, "creating the fixture schema", SCHEMA_SQL).await?;

    // Time range: from the first day of (months-1) months ago until now.
    let row = a
        .query_one(
            "SELECT date_trunc('month', now()) - make_interval(months => $1::int4 - 1),
                    (extract(epoch FROM now() - (date_trunc('month', now()) - make_interval(months => $1::int4 - 1))) * 1000000)::int8",
            &[&(spec.months.max(1) as i32)],
        )
        .await
        .map_err(sql_err("computing the time range"))?;
    let base: chrono::DateTime<chrono::Utc> = row.get(0);
    let span_us: i64 = row.get(1);
    let step_us = (span_us / spec.audit_events.max(1) as i64).max(1);

    let mut partitions = Vec::new();
    for m in 0..spec.months.max(1) + 2 {
        let r = a
            .query_one(
                "SELECT to_char(d, 'YYYY_MM'), d::date::text, (d + interval '1 month')::date::text
                 FROM (SELECT date_trunc('month', $1::timestamptz AT TIME ZONE 'UTC') + make_interval(months => $2::int4) AS d) s",
                &[&base, &(m as i32)],
            )
            .await
            .map_err(sql_err("computing partition bounds"))?;
        let name = format!("audit_events_{}", r.get::<_, String>(0));
        let sql = format!(
            "CREATE TABLE {name} PARTITION OF audit_events FOR VALUES FROM ('{}') TO ('{}')",
            r.get::<_, String>(1),
            r.get::<_, String>(2)
        );
        exec(&a, "creating a partition", &sql).await?;
        partitions.push(name);
    }

    let phases = std::sync::Mutex::new(Vec::new());
    let mark = |name: &str, since: Instant| {
        if let Ok(mut p) = phases.lock() {
            p.push((name.to_string(), since.elapsed()));
        }
    };
    let audit = async {
        let t = Instant::now();
        exec(&a, "creating the chain function", CHAIN_FN_SQL).await?;
        exec(
            &a,
            "resetting the chain",
            "SELECT set_config('lifeboat.chain_head', '', false)",
        )
        .await?;
        let sql = audit_insert_sql();
        let stmt = a
            .prepare(&sql)
            .await
            .map_err(sql_err("preparing the audit insert"))?;
        let mut i = 0u64;
        while i < spec.audit_events {
            let n = BATCH.min(spec.audit_events - i) as i64;
            a.execute(&stmt, &[&(i as i64), &n, &base, &step_us])
                .await
                .map_err(sql_err("inserting audit events"))?;
            i += n as u64;
        }
        mark("load audit_events", t);
        let t = Instant::now();
        exec(&a, "indexing audit_events", FINISH_SQL).await?;
        mark("index audit_events", t);
        Ok::<(), FixtureError>(())
    };
    let others = async {
        let t = Instant::now();
        let mut i = 0u64;
        while i < spec.embeddings {
            let n = (BATCH / 10).min(spec.embeddings - i) as i64;
            b.execute(EMBEDDING_INSERT_SQL, &[&(i as i64), &n, &base])
                .await
                .map_err(sql_err("inserting embeddings"))?;
            i += n as u64;
        }
        mark("load incident_embeddings", t);
        let t = Instant::now();
        let mut i = 0u64;
        while i < spec.remediations {
            let n = BATCH.min(spec.remediations - i) as i64;
            b.execute(REMEDIATION_INSERT_SQL, &[&(i as i64), &n, &base])
                .await
                .map_err(sql_err("inserting remediation history"))?;
            i += n as u64;
        }
        mark("load remediation_history", t);
        let t = Instant::now();
        exec(&b, "indexing the other tables", FINISH_OTHERS_SQL).await?;
        mark("index the other tables", t);
        Ok::<(), FixtureError>(())
    };
    tokio::try_join!(audit, others)?;
    let t = Instant::now();
    exec(&a, "analyzing", "ANALYZE").await?;
    mark("analyze", t);
    let size: i64 = a
        .query_one("SELECT pg_database_size(current_database())", &[])
        .await
        .map_err(sql_err("measuring the database"))?
        .get(0);
    Ok(GenerateReport {
        audit_events: spec.audit_events,
        embeddings: spec.embeddings,
        remediations: spec.remediations,
        partitions,
        database_size_bytes: size,
        elapsed: started.elapsed(),
        phases: phases.into_inner().unwrap_or_default(),
    })
}

/// Appends `n` chained audit events after the current head, as a writer would.
/// Safe to call from several connections at once: appends are serialized by an
/// advisory lock. Timestamps are `max(now, head + 1 µs)` plus 1 µs per event.
/// The client must not be in a transaction.
pub async fn append_audit_events(client: &Client, n: u64) -> Result<(), FixtureError> {
    if n == 0 {
        return Ok(());
    }
    exec(client, "creating the chain function", CHAIN_FN_SQL).await?;
    exec(client, "beginning", "BEGIN").await?;
    let res = async {
        exec(client, "locking the chain", "SELECT pg_advisory_xact_lock(7262011)").await?;
        let head = client
            .query_opt(
                "SELECT event_hash, event_timestamp FROM audit_events
                 ORDER BY event_timestamp DESC, event_id DESC LIMIT 1",
                &[],
            )
            .await
            .map_err(sql_err("reading the chain head"))?;
        let (hash, ts): (String, Option<chrono::DateTime<chrono::Utc>>) = match head {
            Some(r) => (r.get::<_, Option<String>>(0).unwrap_or_default(), Some(r.get(1))),
            None => (String::new(), None),
        };
        client
            .execute("SELECT set_config('lifeboat.chain_head', $1, false)", &[&hash])
            .await
            .map_err(sql_err("setting the chain head"))?;
        let base: chrono::DateTime<chrono::Utc> = client
            .query_one(
                "SELECT greatest(clock_timestamp(), coalesce($1::timestamptz, '-infinity') + interval '1 microsecond')",
                &[&ts],
            )
            .await
            .map_err(sql_err("choosing timestamps"))?
            .get(0);
        // Event numbers continue from a per-call random offset so content differs between calls.
        let first: i64 = client
            .query_one("SELECT (random() * 1e12)::int8", &[])
            .await
            .map_err(sql_err("numbering events"))?
            .get(0);
        // The generated timestamps are base + (i * 1 µs) with i from `first`: shift base back.
        let base = base - chrono::Duration::microseconds(first);
        client
            .execute(&audit_insert_sql(), &[&first, &(n as i64), &base, &1i64])
            .await
            .map_err(sql_err("appending audit events"))?;
        Ok(())
    }
    .await;
    match res {
        Ok(()) => exec(client, "committing", "COMMIT").await,
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

/// What [`corrupt`] did.
#[derive(Clone, Debug, Default)]
pub struct CorruptionReport {
    /// The dropped audit partition and how many events it held.
    pub dropped_partition: Option<String>,
    pub dropped_events: i64,
    /// Remediation history rows overwritten with garbage.
    pub scrambled_rows: u64,
}

/// The seed's "database corruption" scenario: drops the oldest non-empty audit
/// partition (the chain then breaks where it was) and scrambles every 7th row of
/// remediation history.
pub async fn corrupt(client: &Client) -> Result<CorruptionReport, FixtureError> {
    let parts = client
        .query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'audit_events'::regclass ORDER BY c.relname",
            &[],
        )
        .await
        .map_err(sql_err("listing audit partitions"))?;
    let mut report = CorruptionReport::default();
    for p in parts {
        let name: String = p.get(0);
        let quoted = crate::facts::quote_ident(&name);
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM {quoted}"), &[])
            .await
            .map_err(sql_err("counting a partition"))?
            .get(0);
        if n > 0 {
            exec(
                client,
                "dropping a partition",
                &format!("DROP TABLE {quoted}"),
            )
            .await?;
            report.dropped_partition = Some(name);
            report.dropped_events = n;
            break;
        }
    }
    report.scrambled_rows = client
        .execute(
            "UPDATE remediation_history SET status = 'scrambled', workflow_id = md5(random()::text),
                    details = jsonb_build_object('garbage', md5(random()::text))
             WHERE id % 7 = 0",
            &[],
        )
        .await
        .map_err(sql_err("scrambling remediation history"))?;
    Ok(report)
}

/// Result of [`verify_hash_chain`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainStatus {
    pub events: i64,
    /// Events whose hash or link to the previous event does not verify.
    pub broken: i64,
    /// The first broken event in chain order.
    pub first_broken: Option<String>,
}

impl ChainStatus {
    pub fn is_ok(&self) -> bool {
        self.broken == 0
    }
}

/// SQL that checks the whole audit hash chain; one row: events, broken events,
/// first broken event id. Self-contained (needs only pgcrypto), so it runs on any
/// restored copy.
pub fn verify_hash_chain_sql() -> String {
    format!(
        "SELECT count(*)::int8, count(*) FILTER (WHERE NOT ok)::int8,
                (array_agg(event_id::text ORDER BY n) FILTER (WHERE NOT ok))[1]
         FROM (SELECT e.event_id, row_number() OVER w AS n,
                      (e.previous_event_hash IS NOT DISTINCT FROM lag(e.event_hash) OVER w)
                      AND e.event_hash IS NOT DISTINCT FROM
                          encode(digest(coalesce(e.previous_event_hash, '') || {CANONICAL_EVENT_SQL}, 'sha256'), 'hex') AS ok
               FROM audit_events e
               WINDOW w AS (ORDER BY e.event_timestamp, e.event_id)) s"
    )
}

/// Recomputes and checks the audit hash chain.
pub async fn verify_hash_chain(client: &Client) -> Result<ChainStatus, FixtureError> {
    let r = client
        .query_one(&verify_hash_chain_sql(), &[])
        .await
        .map_err(sql_err("verifying the hash chain"))?;
    Ok(ChainStatus {
        events: r.get(0),
        broken: r.get(1),
        first_broken: r.get(2),
    })
}

/// Verification queries for a Kubernaut profile: time of the latest audit event
/// and the hash-chain head. Meant as the default `verify:` of a Kubernaut source.
pub fn kubernaut_verification_queries() -> Vec<VerificationQuery> {
    vec![
        VerificationQuery::new(
            "latest_audit_event",
            "SELECT max(event_timestamp) FROM audit_events",
        ),
        VerificationQuery::new(
            "audit_chain_head",
            "SELECT event_hash FROM audit_events ORDER BY event_timestamp DESC, event_id DESC LIMIT 1",
        ),
    ]
}
