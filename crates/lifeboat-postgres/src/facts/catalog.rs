//! The facts read from the catalogs rather than by counting rows: large
//! objects, sequence positions and the definitions of functions, triggers,
//! views, constraints and indexes. A restore that lost any of these still has
//! every row, so row counts alone would call it whole.
//!
//! All of it is catalog reads (no table is scanned): `pg_largeobject_metadata`
//! and one `lo_lseek64` per large object, one `SELECT last_value, is_called`
//! per sequence, and the `pg_get_*def` deparsers. The definitions are
//! recorded as a list of (kind, name, hash of the definition) rather than one
//! digest, so a mismatch names what is missing, changed or extra.
//!
//! Stability across pg_dump/pg_restore: no OIDs are recorded except large
//! objects' (pg_dump keeps those); definitions are deparsed with
//! `search_path = pg_catalog` so every name in them is schema-qualified
//! whatever the session's path; objects PostgreSQL derives rather than
//! pg_dump creating them (triggers and foreign keys cloned onto partitions,
//! indexes attached to a partitioned index, indexes that back a constraint,
//! PostgreSQL 18's NOT NULL constraints) and extension members are left out.
//! Aggregates are left out (`pg_get_functiondef` does not deparse them).
//! A target of another major version may deparse the same definition
//! differently, so [`compare`] then checks only that each object exists.
//!
//! Sequences are not transactional: a sequence read in the snapshot
//! transaction shows its value *now*, not the snapshot's, and pg_dump reads
//! it at its own moment. The value is therefore read when the snapshot is
//! exported, before pg_dump can start, and what is checked is that the
//! sequence is not behind it — true after a restore (pg_dump's own reading
//! came later, so it is the same or ahead) and on a live database (a sequence
//! never goes back), and false for one set back to 5. An exact match cannot
//! be promised while writers run during the backup.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::{DiffKind, DumpScope, FactDiff, FactsError, TableName, sql_err};

/// At most this many large objects are recorded one by one (to name the one
/// that differs); above it only the count, total size and digest are kept.
pub const LARGE_OBJECTS_LISTED: usize = 1000;

/// Schemas that hold no user objects (a `WHERE` fragment over `n.nspname`).
const USER_SCHEMA: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'";

/// `NOT` a member of an extension (`{oid}` of catalog `{cat}`).
fn not_extension_member(oid: &str, cat: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{cat}'::regclass \
         AND d.objid = {oid} AND d.deptype = 'e')"
    )
}

/// Large objects of the database (`pg_largeobject_metadata`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LargeObjectsFact {
    pub count: i64,
    /// Sum of the sizes; `None` when they could not be read (see `unreadable`).
    pub total_bytes: Option<i64>,
    /// BLAKE3 of every `oid:size` line in OID order (size `?` when unreadable).
    pub digest: String,
    /// Each object, when there are at most [`LARGE_OBJECTS_LISTED`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<Vec<LargeObject>>,
    /// Why the sizes could not be read (the role lacks `SELECT` on a large
    /// object: then pg_dump cannot read it either). Count and OIDs are still
    /// checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LargeObject {
    pub oid: u32,
    pub size: Option<i64>,
}

/// A sequence's position when the snapshot was exported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceFact {
    pub sequence: TableName,
    pub last_value: i64,
    pub is_called: bool,
    pub increment: i64,
    /// The table column that owns it (`serial`, identity), if any: a `--table`
    /// dump holds the sequences of its tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned_by: Option<TableName>,
}

impl SequenceFact {
    /// The value `nextval` hands out next.
    pub fn next_value(&self) -> i64 {
        next_value(self.last_value, self.is_called, self.increment)
    }
}

fn next_value(last: i64, called: bool, inc: i64) -> i64 {
    if called {
        last.saturating_add(inc)
    } else {
        last
    }
}

/// One schema object and the hash of its definition.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SchemaObject {
    pub kind: ObjectKind,
    /// `public.f(integer)`, `trg on public.t`, `public.v`, `t_pkey on public.t`,
    /// `public.t_idx on public.t`, `c on domain public.d` (unquoted, like the
    /// table names of the other facts; the key a comparison matches on).
    pub name: String,
    /// The table it belongs to (triggers, constraints, indexes): a `--table`
    /// dump holds exactly these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableName>,
    /// First 16 hex digits of the BLAKE3 of the deparsed definition.
    pub hash: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Function,
    Trigger,
    View,
    MaterializedView,
    Constraint,
    Index,
}

impl ObjectKind {
    fn parse(s: &str) -> Self {
        match s {
            "function" => ObjectKind::Function,
            "trigger" => ObjectKind::Trigger,
            "view" => ObjectKind::View,
            "materialized view" => ObjectKind::MaterializedView,
            "constraint" => ObjectKind::Constraint,
            _ => ObjectKind::Index,
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            ObjectKind::Function => "function",
            ObjectKind::Trigger => "trigger",
            ObjectKind::View => "view",
            ObjectKind::MaterializedView => "materialized view",
            ObjectKind::Constraint => "constraint",
            ObjectKind::Index => "index",
        }
    }
}

fn short_hash(s: &str) -> String {
    blake3::hash(s.as_bytes()).to_hex()[..16].to_string()
}

// ------------------------------------------------------------ large objects

/// Every large object with its size, or with sizes `None` and the reason when
/// the role may not open one. The `lo_close` is a lateral after the seek, so
/// descriptors do not pile up in a long transaction.
const LARGE_OBJECT_SIZES: &str = "
SELECT s.oid, s.size
FROM (SELECT o.oid, o.fd, lo_lseek64(o.fd, 0, 2) AS size
      FROM (SELECT m.oid::int8 AS oid, lo_open(m.oid, 262144) AS fd
            FROM pg_largeobject_metadata m ORDER BY m.oid OFFSET 0) o
      OFFSET 0) s
CROSS JOIN LATERAL (SELECT lo_close(s.fd) AS closed, s.size AS after OFFSET 0) c";

async fn read_large_objects(client: &Client) -> Result<LargeObjectsFact, FactsError> {
    client
        .batch_execute("SAVEPOINT lifeboat_lo")
        .await
        .map_err(sql_err("savepoint"))?;
    let (objects, unreadable) = match client.query(LARGE_OBJECT_SIZES, &[]).await {
        Ok(rows) => {
            client
                .batch_execute("RELEASE SAVEPOINT lifeboat_lo")
                .await
                .map_err(sql_err("release savepoint"))?;
            let v: Vec<LargeObject> = rows
                .iter()
                .map(|r| LargeObject {
                    oid: r.get::<_, i64>(0) as u32,
                    size: Some(r.get(1)),
                })
                .collect();
            (v, None)
        }
        Err(e) => {
            client
                .batch_execute("ROLLBACK TO SAVEPOINT lifeboat_lo; RELEASE SAVEPOINT lifeboat_lo")
                .await
                .map_err(sql_err("rollback to savepoint"))?;
            let why = crate::conn::pg_message(&e);
            let rows = client
                .query(
                    "SELECT oid::int8 FROM pg_largeobject_metadata ORDER BY oid",
                    &[],
                )
                .await
                .map_err(sql_err("listing large objects"))?;
            let v = rows
                .iter()
                .map(|r| LargeObject {
                    oid: r.get::<_, i64>(0) as u32,
                    size: None,
                })
                .collect();
            (v, Some(why))
        }
    };
    Ok(summarize(objects, unreadable))
}

fn summarize(mut objects: Vec<LargeObject>, unreadable: Option<String>) -> LargeObjectsFact {
    objects.sort_by_key(|o| o.oid);
    let mut h = blake3::Hasher::new();
    let mut total = Some(0i64);
    for o in &objects {
        match o.size {
            Some(s) => {
                h.update(format!("{}:{s}\n", o.oid).as_bytes());
                total = total.map(|t| t + s);
            }
            None => {
                h.update(format!("{}:?\n", o.oid).as_bytes());
                total = None;
            }
        }
    }
    LargeObjectsFact {
        count: objects.len() as i64,
        total_bytes: total,
        digest: h.finalize().to_hex().to_string(),
        objects: (objects.len() <= LARGE_OBJECTS_LISTED).then_some(objects),
        unreadable,
    }
}

fn compare_large_objects(
    rec: &LargeObjectsFact,
    live: &LargeObjectsFact,
    diffs: &mut Vec<FactDiff>,
) {
    let show = |f: &LargeObjectsFact| match f.total_bytes {
        Some(b) => format!("{} objects, {b} bytes", f.count),
        None => format!("{} objects", f.count),
    };
    let mut push = |subject: String, expected: String, actual: String| {
        diffs.push(FactDiff {
            kind: DiffKind::LargeObject,
            subject,
            expected,
            actual,
        })
    };
    if rec.unreadable.is_none() && live.unreadable.is_some() {
        push(
            "large objects".into(),
            show(rec),
            format!(
                "sizes not readable: {}",
                live.unreadable.as_deref().unwrap_or("")
            ),
        );
    }
    let sizes_comparable = rec.unreadable.is_none() && live.unreadable.is_none();
    let same = if sizes_comparable {
        rec.digest == live.digest
    } else {
        let oids = |f: &LargeObjectsFact| {
            f.objects
                .as_ref()
                .map(|v| v.iter().map(|o| o.oid).collect::<Vec<_>>())
        };
        rec.count == live.count && oids(rec) == oids(live)
    };
    if same {
        return;
    }
    match (&rec.objects, &live.objects) {
        (Some(r), Some(l)) => {
            let lm: BTreeMap<u32, Option<i64>> = l.iter().map(|o| (o.oid, o.size)).collect();
            let rm: BTreeMap<u32, Option<i64>> = r.iter().map(|o| (o.oid, o.size)).collect();
            let bytes = |s: Option<i64>| s.map(|b| format!("{b} bytes")).unwrap_or_default();
            for o in r {
                match lm.get(&o.oid) {
                    None => push(
                        format!("large object {}", o.oid),
                        format!("present {}", bytes(o.size)).trim_end().to_string(),
                        "missing".into(),
                    ),
                    Some(ls) if sizes_comparable && *ls != o.size => {
                        push(format!("large object {}", o.oid), bytes(o.size), bytes(*ls))
                    }
                    _ => {}
                }
            }
            for o in l {
                if !rm.contains_key(&o.oid) {
                    push(
                        format!("large object {}", o.oid),
                        "absent".into(),
                        format!("present {}", bytes(o.size)).trim_end().to_string(),
                    );
                }
            }
        }
        _ => push("large objects".into(), show(rec), show(live)),
    }
}

// ---------------------------------------------------------------- sequences

/// User sequences, their increment, the table that owns them and whether the
/// role may read them.
const LIST_SEQUENCES: &str = "
SELECT n.nspname::text, c.relname::text, s.seqincrement, tn.nspname::text, tc.relname::text,
       has_sequence_privilege(c.oid, 'SELECT')
FROM pg_sequence s
JOIN pg_class c ON c.oid = s.seqrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
     AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
LEFT JOIN pg_class tc ON tc.oid = d.refobjid
LEFT JOIN pg_namespace tn ON tn.oid = tc.relnamespace
WHERE {user} AND {not_ext}
ORDER BY 1, 2";

struct LiveSequence {
    fact: SequenceFact,
    readable: bool,
}

/// Every user sequence with its position (`last_value`, `is_called`); the
/// ones the role may not read have position 0 and `readable: false`.
async fn read_sequences(client: &Client) -> Result<Vec<LiveSequence>, FactsError> {
    let sql = LIST_SEQUENCES
        .replace("{user}", USER_SCHEMA)
        .replace("{not_ext}", &not_extension_member("c.oid", "pg_class"));
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(sql_err("listing sequences"))?;
    let mut out: Vec<LiveSequence> = rows
        .iter()
        .map(|r| LiveSequence {
            fact: SequenceFact {
                sequence: TableName::new(r.get::<_, String>(0), r.get::<_, String>(1)),
                last_value: 0,
                is_called: false,
                increment: r.get(2),
                owned_by: match (r.get::<_, Option<String>>(3), r.get::<_, Option<String>>(4)) {
                    (Some(s), Some(t)) => Some(TableName::new(s, t)),
                    _ => None,
                },
            },
            readable: r.get(5),
        })
        .collect();
    // One statement per 200 sequences (UNION ALL of `SELECT i, last_value, is_called FROM seq`).
    let readable: Vec<usize> = (0..out.len()).filter(|&i| out[i].readable).collect();
    for chunk in readable.chunks(200) {
        let sql = chunk
            .iter()
            .map(|&i| {
                format!(
                    "SELECT {i}::int8, last_value, is_called FROM {}",
                    out[i].fact.sequence.quoted()
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let rows = client
            .query(&sql, &[])
            .await
            .map_err(sql_err("reading sequence values"))?;
        for r in rows {
            let i = r.get::<_, i64>(0) as usize;
            out[i].fact.last_value = r.get(1);
            out[i].fact.is_called = r.get(2);
        }
    }
    Ok(out)
}

/// The sequences a dump of `scope` restores: all of them for the whole
/// database, those owned by a dumped table for `--table`; none for
/// `--schema-only` (it restores no values).
pub(crate) fn sequences_in_scope(all: &[SequenceFact], scope: &DumpScope) -> Vec<SequenceFact> {
    if scope.schema_only {
        return Vec::new();
    }
    if scope.is_full_database() {
        return all.to_vec();
    }
    let wanted: BTreeSet<&TableName> = scope.tables.iter().collect();
    all.iter()
        .filter(|s| s.owned_by.as_ref().is_some_and(|t| wanted.contains(t)))
        .cloned()
        .collect()
}

/// Positions of every readable sequence, read when the snapshot is exported
/// (see the module docs).
pub(crate) async fn sequence_positions(client: &Client) -> Result<Vec<SequenceFact>, FactsError> {
    Ok(read_sequences(client)
        .await?
        .into_iter()
        .filter(|s| s.readable)
        .map(|s| s.fact)
        .collect())
}

fn compare_sequences(rec: &[SequenceFact], live: &[LiveSequence], diffs: &mut Vec<FactDiff>) {
    let by_name: BTreeMap<&TableName, &LiveSequence> =
        live.iter().map(|s| (&s.fact.sequence, s)).collect();
    for s in rec {
        let subject = format!("sequence {}", s.sequence);
        let expected = if s.increment >= 0 {
            format!("next value ≥ {}", s.next_value())
        } else {
            format!("next value ≤ {}", s.next_value())
        };
        let actual = match by_name.get(&s.sequence) {
            None => "missing".to_string(),
            Some(l) if !l.readable => "not readable (no SELECT privilege)".to_string(),
            Some(l) => {
                let next = l.fact.next_value();
                let behind = if s.increment >= 0 {
                    next < s.next_value()
                } else {
                    next > s.next_value()
                };
                if !behind {
                    continue;
                }
                format!("next value {next}")
            }
        };
        diffs.push(FactDiff {
            kind: DiffKind::Sequence,
            subject,
            expected,
            actual,
        });
    }
}

// ------------------------------------------------------------------ schema

/// (kind, schema, table or owner, name, definition) of every user function,
/// trigger, view, constraint and index. `{tgparent}` is `AND t.tgparentid = 0`
/// from PostgreSQL 13 (before, cloned triggers are internal).
const LIST_SCHEMA: &str = "
SELECT 'function', n.nspname::text, NULL::text,
       p.proname::text || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       pg_get_functiondef(p.oid)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE p.prokind <> 'a' AND {user} AND {proc_not_ext}
UNION ALL
SELECT 'trigger', n.nspname::text, c.relname::text, t.tgname::text, pg_get_triggerdef(t.oid)
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT t.tgisinternal {tgparent} AND {user} AND {class_not_ext}
UNION ALL
SELECT CASE c.relkind WHEN 'v' THEN 'view' ELSE 'materialized view' END, n.nspname::text, NULL::text,
       c.relname::text, pg_get_viewdef(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v', 'm') AND {user} AND {class_not_ext}
UNION ALL
SELECT 'constraint', n.nspname::text,
       coalesce(c.relname::text, 'domain ' || n.nspname || '.' || ty.typname),
       k.conname::text, pg_get_constraintdef(k.oid)
FROM pg_constraint k
JOIN pg_namespace n ON n.oid = k.connamespace
LEFT JOIN pg_class c ON c.oid = k.conrelid AND k.conrelid <> 0
LEFT JOIN pg_type ty ON ty.oid = k.contypid AND k.contypid <> 0
WHERE k.contype <> 'n' AND k.conparentid = 0 AND k.conislocal
  AND (c.oid IS NOT NULL OR ty.oid IS NOT NULL) AND {user}
  AND (c.oid IS NULL OR c.relkind IN ('r', 'p', 'm', 'f'))
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.deptype = 'e'
                  AND ((d.classid = 'pg_class'::regclass AND d.objid = k.conrelid)
                    OR (d.classid = 'pg_type'::regclass AND d.objid = k.contypid)))
UNION ALL
SELECT 'index', n.nspname::text, c.relname::text, ic.relname::text, pg_get_indexdef(i.indexrelid)
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm') AND NOT ic.relispartition AND {user} AND {class_not_ext}
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid
                  AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x'))";

/// Reads the schema objects, deparsed with `search_path = pg_catalog` (set
/// under a savepoint that is rolled back, so the session's own path — which
/// verification queries rely on — is untouched).
pub(crate) async fn schema_objects(
    client: &Client,
    server_version_num: i64,
) -> Result<Vec<SchemaObject>, FactsError> {
    let sql = LIST_SCHEMA
        .replace("{user}", USER_SCHEMA)
        .replace("{proc_not_ext}", &not_extension_member("p.oid", "pg_proc"))
        .replace(
            "{class_not_ext}",
            &not_extension_member("c.oid", "pg_class"),
        )
        .replace(
            "{tgparent}",
            if server_version_num >= 130000 {
                "AND t.tgparentid = 0"
            } else {
                ""
            },
        );
    client
        .batch_execute("SAVEPOINT lifeboat_schema; SET LOCAL search_path = pg_catalog")
        .await
        .map_err(sql_err("savepoint"))?;
    let res = client.query(&sql, &[]).await;
    client
        .batch_execute("ROLLBACK TO SAVEPOINT lifeboat_schema; RELEASE SAVEPOINT lifeboat_schema")
        .await
        .map_err(sql_err("rollback to savepoint"))?;
    let rows = res.map_err(sql_err("reading schema definitions"))?;
    let mut out: Vec<SchemaObject> = rows
        .iter()
        .map(|r| {
            let kind = ObjectKind::parse(&r.get::<_, String>(0));
            let schema: String = r.get(1);
            let owner: Option<String> = r.get(2);
            let name: String = r.get(3);
            let def: Option<String> = r.get(4);
            let table = match (kind, &owner) {
                (ObjectKind::Trigger | ObjectKind::Constraint | ObjectKind::Index, Some(o))
                    if !o.starts_with("domain ") =>
                {
                    Some(TableName::new(schema.clone(), o.clone()))
                }
                _ => None,
            };
            let qualified = |n: &str| format!("{schema}.{n}");
            let display = match kind {
                ObjectKind::Function | ObjectKind::View | ObjectKind::MaterializedView => {
                    qualified(&name)
                }
                ObjectKind::Index => {
                    format!(
                        "{} on {}",
                        qualified(&name),
                        qualified(owner.as_deref().unwrap_or(""))
                    )
                }
                ObjectKind::Trigger | ObjectKind::Constraint => match &owner {
                    Some(o) if o.starts_with("domain ") => format!("{name} on {o}"),
                    Some(o) => format!("{name} on {}", qualified(o)),
                    None => name.clone(),
                },
            };
            SchemaObject {
                kind,
                name: display,
                table,
                hash: short_hash(def.as_deref().unwrap_or("")),
            }
        })
        .collect();
    out.sort();
    out.dedup_by(|a, b| a.kind == b.kind && a.name == b.name);
    Ok(out)
}

/// The objects a dump of `scope` holds: all for the whole database, those of
/// the dumped tables for `--table`.
pub(crate) fn schema_in_scope(all: Vec<SchemaObject>, scope: &DumpScope) -> Vec<SchemaObject> {
    if scope.is_full_database() {
        return all;
    }
    let wanted: BTreeSet<&TableName> = scope.tables.iter().collect();
    all.into_iter()
        .filter(|o| o.table.as_ref().is_some_and(|t| wanted.contains(t)))
        .collect()
}

fn compare_schema(
    rec: &[SchemaObject],
    live: &[SchemaObject],
    definitions: bool,
    unexpected: bool,
    diffs: &mut Vec<FactDiff>,
) {
    let key = |o: &SchemaObject| (o.kind, o.name.clone());
    let lm: BTreeMap<_, &SchemaObject> = live.iter().map(|o| (key(o), o)).collect();
    let rm: BTreeMap<_, &SchemaObject> = rec.iter().map(|o| (key(o), o)).collect();
    for o in rec {
        let subject = format!("{} {}", o.kind.label(), o.name);
        match lm.get(&key(o)) {
            None => diffs.push(FactDiff {
                kind: DiffKind::MissingObject,
                subject,
                expected: "present".into(),
                actual: "missing".into(),
            }),
            Some(l) if definitions && l.hash != o.hash => diffs.push(FactDiff {
                kind: DiffKind::ChangedObject,
                subject,
                expected: format!("definition {}", o.hash),
                actual: format!("changed: {}", l.hash),
            }),
            _ => {}
        }
    }
    if unexpected {
        for o in live {
            if !rm.contains_key(&key(o)) {
                diffs.push(FactDiff {
                    kind: DiffKind::UnexpectedObject,
                    subject: format!("{} {}", o.kind.label(), o.name),
                    expected: "absent".into(),
                    actual: "present".into(),
                });
            }
        }
    }
}

// ------------------------------------------------------------------ facade

/// What [`record`] reads in the snapshot (sequences are read earlier, at
/// [`crate::facts::SnapshotSession::begin`]).
pub(crate) struct CatalogFacts {
    pub large_objects: Option<LargeObjectsFact>,
    pub schema: Vec<SchemaObject>,
}

/// Large objects (whole-database dumps with data only: pg_dump leaves them out
/// of `--table` and `--schema-only` dumps) and schema objects of `scope`.
pub(crate) async fn record(
    client: &Client,
    scope: &DumpScope,
    server_version_num: i64,
) -> Result<CatalogFacts, FactsError> {
    let large_objects = if scope.is_full_database() && !scope.schema_only {
        Some(read_large_objects(client).await?)
    } else {
        None
    };
    let schema = schema_in_scope(schema_objects(client, server_version_num).await?, scope);
    Ok(CatalogFacts {
        large_objects,
        schema,
    })
}

/// Compares what was recorded with `client`'s database (inside the
/// verification transaction); members recorded as `None` (older snapshots,
/// or not in the scope) are skipped.
pub(crate) async fn compare(
    facts: &super::Facts,
    client: &Client,
) -> Result<Vec<FactDiff>, FactsError> {
    let mut diffs = Vec::new();
    if let Some(rec) = &facts.large_objects {
        let live = read_large_objects(client).await?;
        compare_large_objects(rec, &live, &mut diffs);
    }
    if let Some(rec) = facts.sequences.as_ref().filter(|s| !s.is_empty()) {
        let live = read_sequences(client).await?;
        compare_sequences(rec, &live, &mut diffs);
    }
    if let Some(rec) = &facts.schema {
        let num: i64 = client
            .query_one("SELECT current_setting('server_version_num')::int8", &[])
            .await
            .map_err(sql_err("reading server_version_num"))?
            .get(0);
        let live = schema_in_scope(schema_objects(client, num).await?, &facts.scope);
        let same_major = num / 10000 == facts.server_version_num / 10000;
        compare_schema(
            rec,
            &live,
            same_major,
            facts.scope.is_full_database(),
            &mut diffs,
        );
    }
    Ok(diffs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(kind: ObjectKind, name: &str, hash: &str) -> SchemaObject {
        SchemaObject {
            kind,
            name: name.into(),
            table: None,
            hash: hash.into(),
        }
    }

    #[test]
    fn schema_differences_name_the_object() {
        let rec = vec![
            obj(ObjectKind::Function, "public.f(integer)", "aa"),
            obj(ObjectKind::View, "public.v", "bb"),
            obj(ObjectKind::Trigger, "t on public.x", "cc"),
        ];
        let live = vec![
            obj(ObjectKind::View, "public.v", "b2"),
            obj(ObjectKind::Trigger, "t on public.x", "cc"),
            obj(ObjectKind::Index, "public.i on public.x", "dd"),
        ];
        let mut d = Vec::new();
        compare_schema(&rec, &live, true, true, &mut d);
        let subjects: Vec<_> = d
            .iter()
            .map(|d| (d.kind.clone(), d.subject.as_str()))
            .collect();
        assert_eq!(
            subjects,
            vec![
                (DiffKind::MissingObject, "function public.f(integer)"),
                (DiffKind::ChangedObject, "view public.v"),
                (DiffKind::UnexpectedObject, "index public.i on public.x"),
            ]
        );
        // Another major version: existence only; a partial scope: no extras.
        let mut d = Vec::new();
        compare_schema(&rec, &live, false, false, &mut d);
        assert_eq!(d.len(), 1, "{d:?}");
    }

    #[test]
    fn sequences_may_be_ahead_never_behind() {
        let s = |last, called, inc| SequenceFact {
            sequence: TableName::new("public", "s"),
            last_value: last,
            is_called: called,
            increment: inc,
            owned_by: None,
        };
        let live = |f: SequenceFact| LiveSequence {
            fact: f,
            readable: true,
        };
        let mut d = Vec::new();
        compare_sequences(&[s(25, true, 1)], &[live(s(25, true, 1))], &mut d);
        compare_sequences(&[s(25, true, 1)], &[live(s(40, true, 1))], &mut d);
        compare_sequences(&[s(25, true, 1)], &[live(s(26, false, 1))], &mut d);
        compare_sequences(&[s(-5, true, -1)], &[live(s(-9, true, -1))], &mut d);
        assert!(d.is_empty(), "{d:?}");
        compare_sequences(&[s(25, true, 1)], &[live(s(5, true, 1))], &mut d);
        compare_sequences(&[s(25, true, 1)], &[live(s(25, false, 1))], &mut d);
        compare_sequences(&[s(25, true, 1)], &[], &mut d);
        let actual: Vec<_> = d.iter().map(|d| d.actual.as_str()).collect();
        assert_eq!(actual, vec!["next value 6", "next value 25", "missing"]);
        assert_eq!(d[0].expected, "next value ≥ 26");
    }

    #[test]
    fn large_objects_name_the_one_that_differs() {
        let lo = |oid, size| LargeObject {
            oid,
            size: Some(size),
        };
        let rec = summarize(vec![lo(1, 10), lo(2, 20), lo(3, 30)], None);
        assert_eq!((rec.count, rec.total_bytes), (3, Some(60)));
        let same = summarize(vec![lo(1, 10), lo(2, 20), lo(3, 30)], None);
        let mut d = Vec::new();
        compare_large_objects(&rec, &same, &mut d);
        assert!(d.is_empty());
        let live = summarize(vec![lo(1, 10), lo(3, 31), lo(4, 1)], None);
        compare_large_objects(&rec, &live, &mut d);
        let rows: Vec<_> = d
            .iter()
            .map(|d| format!("{} | {} | {}", d.subject, d.expected, d.actual))
            .collect();
        assert_eq!(
            rows,
            vec![
                "large object 2 | present 20 bytes | missing",
                "large object 3 | 30 bytes | 31 bytes",
                "large object 4 | absent | present 1 bytes",
            ]
        );
        // Unlisted (many objects): one summary row.
        let mut big = rec.clone();
        big.objects = None;
        let mut d = Vec::new();
        compare_large_objects(&big, &live, &mut d);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].expected, "3 objects, 60 bytes");
    }
}
