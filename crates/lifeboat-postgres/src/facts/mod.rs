//! Facts about a database taken in exactly the snapshot that pg_dump dumps, and
//! checking a live database against them.
//!
//! [`SnapshotSession::begin`] opens a `REPEATABLE READ READ ONLY` transaction and
//! exports its snapshot (`pg_export_snapshot()`). While the session is open, pg_dump
//! started with `--snapshot=<id>` sees exactly what the session sees, so the row
//! counts taken by [`SnapshotSession::facts`] are the counts of the dump, even with
//! writers running. The transaction must stay open until pg_dump has *started*
//! (it imports the snapshot at its start); keeping it until pg_dump has finished is
//! simplest and is what the API suggests:
//!
//! ```no_run
//! # async fn f(cfg: lifeboat_postgres::conn::ConnConfig, tools: lifeboat_postgres::tools::PgTools)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use lifeboat_postgres::{facts::SnapshotSession, dump::PgDump};
//! let session = SnapshotSession::begin(&cfg).await?;
//! let scope = session.resolve_scope(&["audit_events".to_string()], false).await?;
//! let mut dump = PgDump::spawn(&tools, &cfg, Some(session.snapshot_id()), &scope)?;
//! let facts = session.facts(&scope, &[]).await?; // may run while the dump streams
//! // ... read `dump` (std::io::Read) into the repository ...
//! dump.wait()?;
//! session.finish().await?;
//! # Ok(()) }
//! ```
//!
//! Counting scans every table once (in the same snapshot, concurrently with pg_dump
//! when the caller overlaps them); a partitioned parent's count is the sum of its
//! leaf partitions' counts rather than a second scan.
//!
//! Verification queries are user SQL run with the simple query protocol, so every
//! value comes back as text whatever its type; each runs under a savepoint so a
//! failing query does not abort the snapshot transaction.
//!
//! The facts read from the catalogs (large objects, sequences, definitions)
//! are [`catalog`]'s, a part of this module (re-exported at the crate root
//! as `lifeboat_postgres::catalog`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::conn::{ConnConfig, ConnError};

pub mod catalog;

/// Version of the serialized [`Facts`] document.
pub const FACTS_FORMAT: u32 = 1;

/// Errors of taking or checking facts.
#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    #[error(transparent)]
    Conn(#[from] ConnError),
    #[error("{what}: {}", crate::conn::pg_message(source))]
    Sql {
        what: String,
        source: tokio_postgres::Error,
    },
    #[error("table {0} does not exist")]
    NoSuchTable(String),
    #[error("verification query {name:?} failed: {message}")]
    QueryFailed { name: String, message: String },
    #[error("verification query {name:?} returned {rows} rows; it must return at most one")]
    QueryRows { name: String, rows: usize },
    #[error("facts format version {0} is not supported (this build reads version {FACTS_FORMAT})")]
    UnsupportedFormat(u32),
}

pub(crate) fn sql_err(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> FactsError {
    let what = what.into();
    move |source| FactsError::Sql { what, source }
}

/// `"schema"."name"`, quoted so it is an exact match for SQL and for pg_dump's
/// `--table` patterns (inside double quotes pattern characters are literal).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TableName {
    pub schema: String,
    pub name: String,
}

impl TableName {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        TableName {
            schema: schema.into(),
            name: name.into(),
        }
    }
    /// The quoted, schema-qualified form.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// Quotes an SQL identifier (`"` doubled).
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// What a dump holds. An empty `tables` means the whole database.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpScope {
    /// Exact tables (partitions of a selected partitioned table included), as
    /// resolved by [`SnapshotSession::resolve_scope`].
    pub tables: Vec<TableName>,
    /// Definitions only, no rows.
    pub schema_only: bool,
}

impl DumpScope {
    /// The whole database, data included.
    pub fn full() -> Self {
        DumpScope::default()
    }
    pub fn is_full_database(&self) -> bool {
        self.tables.is_empty()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    /// An ordinary table.
    Table,
    /// A leaf partition (its rows are also counted in its parent).
    Partition,
    /// A partitioned parent; holds no rows itself, its count is the sum of its partitions.
    Partitioned,
}

/// One table and its exact row count in the snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableFact {
    pub table: TableName,
    pub kind: TableKind,
    /// The partitioned table this one is a partition of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<TableName>,
    /// Exact row count; `None` for schema-only dumps (a restore must then have the
    /// table, empty).
    pub rows: Option<i64>,
    /// `pg_table_size()` at snapshot time (heap and TOAST, no indexes), for
    /// tables that hold rows; a parallel restore spreads the rows of the large
    /// ones over its jobs ([`crate::split_restore`]). Not a verified fact.
    /// Absent in snapshots taken before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
}

/// A user verification query, e.g. `("latest_audit_event", "SELECT max(event_timestamp) FROM audit_events")`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationQuery {
    pub name: String,
    pub sql: String,
}

impl VerificationQuery {
    pub fn new(name: impl Into<String>, sql: impl Into<String>) -> Self {
        VerificationQuery {
            name: name.into(),
            sql: sql.into(),
        }
    }
}

/// The result of one verification query: the first row's columns as text, joined
/// with `|` when there are several; `None` for SQL NULL or no row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryFact {
    pub name: String,
    pub sql: String,
    pub value: Option<String>,
}

/// Everything recorded about the dumped snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    /// [`FACTS_FORMAT`].
    pub format: u32,
    pub snapshot_id: String,
    /// Start of the snapshot transaction, by the server's clock (the data-loss
    /// window of a restore is measured from here).
    pub taken_at: DateTime<Utc>,
    pub database: String,
    /// `server_version`, e.g. `15.14 (Debian 15.14-0+deb13u1)`.
    pub server_version: String,
    pub server_version_num: i64,
    /// Filled in by the caller that ran pg_dump (`pg_dump --version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pg_dump_version: Option<String>,
    /// `pg_database_size()` of the source at snapshot time.
    pub database_size_bytes: i64,
    /// Server encoding of the database (used when creating a restore target).
    pub encoding: String,
    pub scope: DumpScope,
    /// Sorted by name.
    pub tables: Vec<TableFact>,
    pub queries: Vec<QueryFact>,
    /// Where the archive's data blocks are, learnt while it streamed into the
    /// repository ([`crate::archive`]); a parallel restore uses it. Not a
    /// verified fact; absent in older snapshots and for archives the scanner
    /// does not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<crate::archive::ArchiveLayout>,
    /// Large objects: count, total size, digest (and each one when there are
    /// few). Whole-database dumps with data only (pg_dump leaves large objects
    /// out of the others); absent in snapshots taken before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub large_objects: Option<catalog::LargeObjectsFact>,
    /// Each sequence the dump restores, with its position when the snapshot was
    /// exported (a lower bound: see [`crate::catalog`]). Empty for
    /// `--schema-only`; absent in snapshots taken before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequences: Option<Vec<catalog::SequenceFact>>,
    /// Functions, triggers, views, constraints and indexes with a hash of each
    /// definition, sorted; for `--table` dumps those of the dumped tables.
    /// Absent in snapshots taken before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Vec<catalog::SchemaObject>>,
}

impl Facts {
    /// Refuses documents written by a newer format.
    pub fn check_format(&self) -> Result<(), FactsError> {
        if self.format != FACTS_FORMAT {
            return Err(FactsError::UnsupportedFormat(self.format));
        }
        Ok(())
    }
    /// What this snapshot's facts did not record (taken by an older Lifeboat)
    /// and a verification therefore cannot check: `["large objects",
    /// "sequences", "schema definitions"]` or a part of it. Large objects
    /// outside the scope (partial dumps hold none) are not listed.
    pub fn not_recorded(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.large_objects.is_none() && self.scope.is_full_database() && !self.scope.schema_only
        {
            v.push("large objects");
        }
        if self.sequences.is_none() {
            v.push("sequences");
        }
        if self.schema.is_none() {
            v.push("schema definitions");
        }
        v
    }

    /// What a verification of these facts checks, for a report:
    /// `12 tables, 2 queries, 3 sequences, 4 large objects, 31 schema objects`,
    /// then `; not recorded in this snapshot: …` when [`Facts::not_recorded`]
    /// is not empty.
    pub fn checked_summary(&self) -> String {
        let mut parts = vec![
            format!("{} tables", self.tables.len()),
            format!("{} queries", self.queries.len()),
        ];
        if let Some(s) = &self.sequences {
            parts.push(format!("{} sequences", s.len()));
        }
        if let Some(l) = &self.large_objects {
            parts.push(format!("{} large objects", l.count));
        }
        if let Some(s) = &self.schema {
            parts.push(format!("{} schema objects", s.len()));
        }
        let mut out = parts.join(", ");
        let missing = self.not_recorded();
        if !missing.is_empty() {
            out.push_str(&format!(
                "; not recorded in this snapshot (an older Lifeboat took it), so not checked: {}",
                missing.join(", ")
            ));
        }
        out
    }

    /// Rows of one table, if recorded.
    pub fn rows_of(&self, schema: &str, name: &str) -> Option<i64> {
        self.tables
            .iter()
            .find(|t| t.table.schema == schema && t.table.name == name)
            .and_then(|t| t.rows)
    }
}

/// An open snapshot transaction whose snapshot can be handed to pg_dump.
pub struct SnapshotSession {
    client: Client,
    snapshot_id: String,
    /// Every readable sequence's position, read right after the snapshot was
    /// exported, before pg_dump can have read them ([`crate::catalog`]).
    sequences: Vec<catalog::SequenceFact>,
}

/// Tables of the current database as (oid, name, relkind, parent), excluding
/// system schemas and tables that belong to extensions (pg_dump leaves those out
/// unless the extension marks them with `pg_extension_config_dump`).
const LIST_TABLES: &str = "
SELECT c.oid::int8, n.nspname::text, c.relname::text, c.relkind::text,
       pn.nspname::text, pc.relname::text, c.relispartition, pg_table_size(c.oid)::int8
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_inherits i ON i.inhrelid = c.oid AND c.relispartition
LEFT JOIN pg_class pc ON pc.oid = i.inhparent
LEFT JOIN pg_namespace pn ON pn.oid = pc.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 2, 3";

#[derive(Clone, Debug)]
struct RelInfo {
    oid: i64,
    table: TableName,
    relkind: String,
    parent: Option<TableName>,
    is_partition: bool,
    size_bytes: i64,
}

async fn list_tables(client: &Client) -> Result<Vec<RelInfo>, FactsError> {
    let rows = client
        .query(LIST_TABLES, &[])
        .await
        .map_err(sql_err("listing tables"))?;
    Ok(rows
        .iter()
        .map(|r| {
            let parent = match (r.get::<_, Option<String>>(4), r.get::<_, Option<String>>(5)) {
                (Some(s), Some(n)) => Some(TableName::new(s, n)),
                _ => None,
            };
            RelInfo {
                oid: r.get(0),
                table: TableName::new(r.get::<_, String>(1), r.get::<_, String>(2)),
                relkind: r.get(3),
                parent,
                is_partition: r.get(6),
                size_bytes: r.get(7),
            }
        })
        .collect())
}

fn kind_of(r: &RelInfo) -> TableKind {
    if r.relkind == "p" {
        TableKind::Partitioned
    } else if r.is_partition {
        TableKind::Partition
    } else {
        TableKind::Table
    }
}

/// Counts rows of `rels` (exactly, `count(*)` on each leaf with `ONLY`), summing
/// partitioned parents from their leaves. Missing tables give `None`.
async fn count_rows(
    client: &Client,
    rels: &[RelInfo],
) -> Result<BTreeMap<TableName, i64>, FactsError> {
    let mut counts = BTreeMap::new();
    for r in rels.iter().filter(|r| r.relkind == "r") {
        let sql = format!("SELECT count(*) FROM ONLY {}", r.table.quoted());
        let row = client
            .query_one(&sql, &[])
            .await
            .map_err(sql_err(format!("counting rows of {}", r.table)))?;
        counts.insert(r.table.clone(), row.get::<_, i64>(0));
    }
    // Parents: sum of all descendants that are leaves.
    for r in rels.iter().filter(|r| r.relkind == "p") {
        let leaves = client
            .query(
                "SELECT n.nspname::text, c.relname::text FROM pg_partition_tree($1::int8::oid) t
                 JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE t.isleaf AND c.relkind = 'r'",
                &[&r.oid],
            )
            .await
            .map_err(sql_err(format!("listing partitions of {}", r.table)))?;
        let mut sum = 0i64;
        for l in leaves {
            let t = TableName::new(l.get::<_, String>(0), l.get::<_, String>(1));
            let n = match counts.get(&t) {
                Some(n) => *n,
                None => client
                    .query_one(&format!("SELECT count(*) FROM ONLY {}", t.quoted()), &[])
                    .await
                    .map_err(sql_err(format!("counting rows of {t}")))?
                    .get::<_, i64>(0),
            };
            sum += n;
        }
        counts.insert(r.table.clone(), sum);
    }
    Ok(counts)
}

/// Runs one verification query under a savepoint (so the transaction survives a
/// failure) and renders its result as text.
async fn run_query(client: &Client, q: &VerificationQuery) -> Result<Option<String>, FactsError> {
    client
        .batch_execute("SAVEPOINT lifeboat_verify")
        .await
        .map_err(sql_err("savepoint"))?;
    let res = client.simple_query(&q.sql).await;
    match res {
        Ok(msgs) => {
            client
                .batch_execute("RELEASE SAVEPOINT lifeboat_verify")
                .await
                .map_err(sql_err("release savepoint"))?;
            let rows: Vec<_> = msgs
                .iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::Row(r) => Some(r),
                    _ => None,
                })
                .collect();
            if rows.len() > 1 {
                return Err(FactsError::QueryRows {
                    name: q.name.clone(),
                    rows: rows.len(),
                });
            }
            Ok(rows.first().and_then(|r| {
                let vals: Vec<Option<&str>> = (0..r.len()).map(|i| r.get(i)).collect();
                if vals.len() == 1 {
                    vals[0].map(str::to_string)
                } else {
                    Some(
                        vals.iter()
                            .map(|v| v.unwrap_or("NULL"))
                            .collect::<Vec<_>>()
                            .join("|"),
                    )
                }
            }))
        }
        Err(e) => {
            let _ = client
                .batch_execute("ROLLBACK TO SAVEPOINT lifeboat_verify")
                .await;
            let message = e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string());
            Err(FactsError::QueryFailed {
                name: q.name.clone(),
                message,
            })
        }
    }
}

impl SnapshotSession {
    /// Connects, opens the snapshot transaction and exports its snapshot.
    pub async fn begin(cfg: &ConnConfig) -> Result<Self, FactsError> {
        let client = cfg.connect().await?;
        client
            .batch_execute(
                "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET LOCAL TimeZone = 'UTC'",
            )
            .await
            .map_err(sql_err("opening the snapshot transaction"))?;
        let row = client
            .query_one("SELECT pg_export_snapshot()", &[])
            .await
            .map_err(sql_err("exporting the snapshot"))?;
        let snapshot_id = row.get(0);
        let sequences = catalog::sequence_positions(&client).await?;
        Ok(SnapshotSession {
            client,
            snapshot_id,
            sequences,
        })
    }

    /// The id to pass to `pg_dump --snapshot`.
    pub fn snapshot_id(&self) -> &str {
        &self.snapshot_id
    }

    /// `server_version_num` of the server (for tool discovery).
    pub async fn server_version_num(&self) -> Result<i64, FactsError> {
        let row = self
            .client
            .query_one("SELECT current_setting('server_version_num')::int8", &[])
            .await
            .map_err(sql_err("reading server_version_num"))?;
        Ok(row.get(0))
    }

    /// Turns user table names (`name` or `schema.name`, resolved by the server's
    /// `search_path` like SQL would, quoted parts allowed) into exact names, and adds
    /// all partitions of a selected partitioned table: PostgreSQL 15's pg_dump
    /// `--table parent` would dump the parent's definition without any rows.
    /// An unknown table is an error here, before anything is dumped.
    pub async fn resolve_scope(
        &self,
        tables: &[String],
        schema_only: bool,
    ) -> Result<DumpScope, FactsError> {
        let mut out: BTreeSet<TableName> = BTreeSet::new();
        for t in tables {
            self.client
                .batch_execute("SAVEPOINT lifeboat_resolve")
                .await
                .map_err(sql_err("savepoint"))?;
            let row = self
                .client
                .query_opt(
                    "SELECT c.oid::int8, n.nspname::text, c.relname::text, c.relkind::text
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE c.oid = to_regclass($1)",
                    &[t],
                )
                .await;
            let row = match row {
                Ok(Some(r)) => r,
                Ok(None) => return Err(FactsError::NoSuchTable(t.clone())),
                Err(e) => {
                    // to_regclass raises only for a malformed name; keep the snapshot alive.
                    let _ = self
                        .client
                        .batch_execute("ROLLBACK TO SAVEPOINT lifeboat_resolve")
                        .await;
                    let why = e
                        .as_db_error()
                        .map(|d| d.message().to_string())
                        .unwrap_or_else(|| e.to_string());
                    return Err(FactsError::NoSuchTable(format!("{t} ({why})")));
                }
            };
            let kind: String = row.get(3);
            if kind != "r" && kind != "p" {
                return Err(FactsError::NoSuchTable(format!("{t} (not a table)")));
            }
            out.insert(TableName::new(
                row.get::<_, String>(1),
                row.get::<_, String>(2),
            ));
            if kind == "p" {
                let oid: i64 = row.get(0);
                let parts = self
                    .client
                    .query(
                        "SELECT n.nspname::text, c.relname::text FROM pg_partition_tree($1::int8::oid) t
                         JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace",
                        &[&oid],
                    )
                    .await
                    .map_err(sql_err(format!("listing partitions of {t}")))?;
                for p in parts {
                    out.insert(TableName::new(p.get::<_, String>(0), p.get::<_, String>(1)));
                }
            }
        }
        Ok(DumpScope {
            tables: out.into_iter().collect(),
            schema_only,
        })
    }

    /// Collects the facts of `scope` in the snapshot. Safe to call while pg_dump
    /// runs on the same snapshot.
    pub async fn facts(
        &self,
        scope: &DumpScope,
        queries: &[VerificationQuery],
    ) -> Result<Facts, FactsError> {
        let c = &self.client;
        let row = c
            .query_one(
                "SELECT now(), current_database()::text, current_setting('server_version'),
                        current_setting('server_version_num')::int8,
                        pg_database_size(current_database()),
                        pg_encoding_to_char(encoding)::text
                 FROM pg_database WHERE datname = current_database()",
                &[],
            )
            .await
            .map_err(sql_err("reading server facts"))?;
        let mut rels = list_tables(c).await?;
        if !scope.is_full_database() {
            let wanted: BTreeSet<&TableName> = scope.tables.iter().collect();
            rels.retain(|r| wanted.contains(&r.table));
        }
        let counts = if scope.schema_only {
            BTreeMap::new()
        } else {
            count_rows(c, &rels).await?
        };
        let tables = rels
            .iter()
            .map(|r| TableFact {
                table: r.table.clone(),
                kind: kind_of(r),
                parent: r.parent.clone(),
                rows: counts.get(&r.table).copied(),
                size_bytes: (r.relkind == "r").then_some(r.size_bytes),
            })
            .collect();
        let server_version_num: i64 = row.get(3);
        let catalog = catalog::record(c, scope, server_version_num).await?;
        let mut qfacts = Vec::with_capacity(queries.len());
        for q in queries {
            qfacts.push(QueryFact {
                name: q.name.clone(),
                sql: q.sql.clone(),
                value: run_query(c, q).await?,
            });
        }
        Ok(Facts {
            format: FACTS_FORMAT,
            snapshot_id: self.snapshot_id.clone(),
            taken_at: row.get(0),
            database: row.get(1),
            server_version: row.get(2),
            server_version_num: row.get(3),
            pg_dump_version: None,
            database_size_bytes: row.get(4),
            encoding: row.get(5),
            scope: scope.clone(),
            tables,
            queries: qfacts,
            archive: None,
            large_objects: catalog.large_objects,
            sequences: Some(catalog::sequences_in_scope(&self.sequences, scope)),
            schema: Some(catalog.schema),
        })
    }

    /// Ends the transaction (the exported snapshot stops being importable).
    pub async fn finish(self) -> Result<(), FactsError> {
        self.client
            .batch_execute("COMMIT")
            .await
            .map_err(sql_err("closing the snapshot transaction"))
    }
}

/// What a difference is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    RowCount,
    MissingTable,
    /// A table in the database that the (full-database) snapshot did not have.
    UnexpectedTable,
    QueryResult,
    QueryFailed,
    /// A sequence missing, unreadable or behind its recorded position.
    Sequence,
    /// A large object missing, extra or of another size (or their count and
    /// total size, when there were too many to list).
    LargeObject,
    /// A function, trigger, view, constraint or index that the snapshot had.
    MissingObject,
    /// Its definition differs from the snapshot's.
    ChangedObject,
    /// One the (full-database) snapshot did not have.
    UnexpectedObject,
}

/// One fact that does not hold in the live database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactDiff {
    pub kind: DiffKind,
    /// `table public.audit_events`, `query latest_event`, `sequence public.s`,
    /// `large object 16390`, `trigger t on public.x`, `function public.f(integer)`.
    pub subject: String,
    pub expected: String,
    pub actual: String,
}

/// Checks a live database against facts: every table's existence and exact row
/// count (tables of a schema-only snapshot must exist and be empty), no extra
/// tables when the snapshot was of the whole database, every verification
/// query's result, and what [`crate::catalog`] recorded: large objects, no
/// sequence behind its recorded position, and every function, trigger, view,
/// constraint and index with its definition (no extra ones for a
/// whole-database snapshot). Members an older snapshot lacks are skipped
/// ([`Facts::not_recorded`] says which). The same check serves a restore, a
/// drill and `verify` of a live database. Runs in one `REPEATABLE READ READ ONLY` transaction so the
/// counts are mutually consistent. An empty result means every fact holds.
pub async fn verify(facts: &Facts, client: &mut Client) -> Result<Vec<FactDiff>, FactsError> {
    facts.check_format()?;
    client
        .batch_execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET LOCAL TimeZone = 'UTC'",
        )
        .await
        .map_err(sql_err("opening the verification transaction"))?;
    let res = verify_in_tx(facts, client).await;
    let _ = client.batch_execute("COMMIT").await;
    res
}

async fn verify_in_tx(facts: &Facts, client: &Client) -> Result<Vec<FactDiff>, FactsError> {
    let live = list_tables(client).await?;
    let live_by_name: BTreeMap<&TableName, &RelInfo> = live.iter().map(|r| (&r.table, r)).collect();
    let mut diffs = Vec::new();
    let mut present = Vec::new();
    for t in &facts.tables {
        match live_by_name.get(&t.table) {
            Some(r) => present.push((*r).clone()),
            None => diffs.push(FactDiff {
                kind: DiffKind::MissingTable,
                subject: format!("table {}", t.table),
                expected: match t.rows {
                    Some(n) => format!("present, {n} rows"),
                    None => "present".into(),
                },
                actual: "missing".into(),
            }),
        }
    }
    let counts = count_rows(client, &present).await?;
    for t in &facts.tables {
        let Some(actual) = counts.get(&t.table) else {
            continue;
        };
        let expected = t.rows.unwrap_or(0);
        if *actual != expected {
            diffs.push(FactDiff {
                kind: DiffKind::RowCount,
                subject: format!("table {}", t.table),
                expected: format!("{expected} rows"),
                actual: format!("{actual} rows"),
            });
        }
    }
    if facts.scope.is_full_database() {
        let known: BTreeSet<&TableName> = facts.tables.iter().map(|t| &t.table).collect();
        for r in &live {
            if !known.contains(&r.table) {
                diffs.push(FactDiff {
                    kind: DiffKind::UnexpectedTable,
                    subject: format!("table {}", r.table),
                    expected: "absent".into(),
                    actual: "present".into(),
                });
            }
        }
    }
    for q in &facts.queries {
        let vq = VerificationQuery::new(&q.name, &q.sql);
        match run_query(client, &vq).await {
            Ok(v) if v == q.value => {}
            Ok(v) => diffs.push(FactDiff {
                kind: DiffKind::QueryResult,
                subject: format!("query {}", q.name),
                expected: show(&q.value),
                actual: show(&v),
            }),
            Err(FactsError::QueryFailed { message, .. }) => diffs.push(FactDiff {
                kind: DiffKind::QueryFailed,
                subject: format!("query {}", q.name),
                expected: show(&q.value),
                actual: format!("error: {message}"),
            }),
            Err(FactsError::QueryRows { rows, .. }) => diffs.push(FactDiff {
                kind: DiffKind::QueryFailed,
                subject: format!("query {}", q.name),
                expected: show(&q.value),
                actual: format!("{rows} rows"),
            }),
            Err(e) => return Err(e),
        }
    }
    diffs.extend(catalog::compare(facts, client).await?);
    Ok(diffs)
}

fn show(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "NULL".into())
}

/// Renders differences as an aligned plain-text table (empty string for none):
///
/// ```text
/// WHAT                       EXPECTED     ACTUAL
/// table public.audit_events  1200 rows    1100 rows
/// ```
pub fn diff_table(diffs: &[FactDiff]) -> String {
    if diffs.is_empty() {
        return String::new();
    }
    let clip = |s: &str| -> String {
        if s.chars().count() > 60 {
            format!("{}…", s.chars().take(59).collect::<String>())
        } else {
            s.to_string()
        }
    };
    let rows: Vec<[String; 3]> = diffs
        .iter()
        // The subject is never clipped: it names what differs.
        .map(|d| [d.subject.clone(), clip(&d.expected), clip(&d.actual)])
        .collect();
    let head = [
        "WHAT".to_string(),
        "EXPECTED".to_string(),
        "ACTUAL".to_string(),
    ];
    let w = |i: usize| {
        rows.iter()
            .chain(std::iter::once(&head))
            .map(|r| r[i].chars().count())
            .max()
            .unwrap_or(0)
    };
    let (w0, w1) = (w(0), w(1));
    let mut out = String::new();
    for r in std::iter::once(&head).chain(rows.iter()) {
        out.push_str(&format!("{:<w0$}  {:<w1$}  {}\n", r[0], r[1], r[2]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_table() {
        assert_eq!(
            TableName::new("public", "a\"b").quoted(),
            "\"public\".\"a\"\"b\""
        );
        let t = diff_table(&[FactDiff {
            kind: DiffKind::RowCount,
            subject: "table public.audit_events".into(),
            expected: "10 rows".into(),
            actual: "9 rows".into(),
        }]);
        assert!(t.starts_with("WHAT "));
        assert!(
            t.contains("table public.audit_events  10 rows   9 rows"),
            "{t}"
        );
        assert_eq!(diff_table(&[]), "");
    }
}
