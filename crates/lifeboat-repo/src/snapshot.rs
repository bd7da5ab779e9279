//! Snapshot documents: what one backup holds and the facts to verify it by.
//! A snapshot is written last, after its packs and index, so a snapshot that
//! exists is complete.
//!
//! A snapshot also says what part of its source it holds ([`Scope`]): the
//! whole source ("full"), or some tables, definitions only, or a narrower
//! Kubernetes selection. Only a full snapshot stands for its source: `latest`,
//! status, drills and retention go by [`Snapshot::scope`].

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Document version of a snapshot that carries a [`Scope`] (a partial one).
/// A full snapshot is written as version 1 without `scope`, readable by every
/// release; a partial one as version 2, which releases that do not know scopes
/// refuse instead of taking it for a full backup of its source.
pub const SCOPED_SNAPSHOT_VERSION: u64 = 2;

/// The item holding the configuration file a backup ran with (its text, as
/// written: secret references, never secret values), added after the
/// payload's own item(s) so that readers taking the first item are unchanged.
/// `lifeboat restore config` writes it out (`docs/regions/copy.md`).
pub const CONFIG_ITEM: &str = "lifeboat.yaml";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub version: u64,
    pub time: DateTime<Utc>,
    pub hostname: String,
    pub username: String,
    /// The configured source name (or `stream:<name>` for ad-hoc streams).
    pub source: String,
    /// What kind of payload: `stream`, `postgres`, `kube`.
    pub kind: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub items: Vec<Item>,
    pub stats: BackupStats,
    /// Payload-specific facts for verifying a restore (row counts, …).
    #[serde(default)]
    pub facts: serde_json::Value,
    /// The Lifeboat version that wrote it.
    pub program: String,
    /// What part of the source it holds; absent for a full snapshot and in
    /// snapshots written before scopes existed. Read it with
    /// [`Snapshot::scope`], which also reads those older snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
}

impl Snapshot {
    /// What part of its source this snapshot holds. Snapshots without a
    /// `scope` member are full, except PostgreSQL snapshots written before
    /// scopes existed, whose `facts.scope` (`{"tables": [{"schema", "name"}],
    /// "schema_only"}`) recorded a `--table` or `--schema-only` dump.
    pub fn scope(&self) -> Scope {
        if let Some(s) = &self.scope {
            return s.clone();
        }
        #[derive(Deserialize)]
        struct PgFactsScope {
            #[serde(default)]
            tables: Vec<TableRef>,
            #[serde(default)]
            schema_only: bool,
        }
        #[derive(Deserialize)]
        struct PgTableFact {
            table: TableRef,
            #[serde(default)]
            parent: Option<TableRef>,
        }
        if self.kind == "postgres"
            && let Some(v) = self.facts.get("scope")
            && let Ok(pg) = serde_json::from_value::<PgFactsScope>(v.clone())
        {
            let facts: Vec<PgTableFact> = self
                .facts
                .get("tables")
                .and_then(|t| serde_json::from_value(t.clone()).ok())
                .unwrap_or_default();
            return Scope {
                tables: pg.tables,
                schema_only: pg.schema_only,
                ..Scope::default()
            }
            .collapse_partitions(|t| {
                facts
                    .iter()
                    .find(|f| &f.table == t)
                    .and_then(|f| f.parent.clone())
            })
            .normalized();
        }
        Scope::default()
    }
}

/// What part of its source a snapshot holds. The default (every list empty,
/// `schema_only` false) is the whole source: a *full* snapshot. Anything else
/// is *partial*. Lists are kept sorted ([`Scope::normalized`]), so equal
/// scopes have equal [`Scope::key`]s.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// PostgreSQL: only these tables (`backup postgres --table`); a
    /// partitioned table stands for its partitions, which are not listed
    /// ([`Scope::collapse_partitions`]; the facts list every table dumped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<TableRef>,
    /// PostgreSQL: definitions only, no rows (`--schema-only`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub schema_only: bool,
    /// Kubernetes: the selection, when narrower than the configured source's
    /// own (flags given to `backup kube`). Namespaces, kinds and object names
    /// as given; the label selector as written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A table named in a [`Scope`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableRef {
    pub schema: String,
    pub name: String,
}

impl fmt::Display for TableRef {
    /// `public.events`; a part that is not a plain lower-case identifier is
    /// double-quoted as in SQL (`"Ops Data"."Big Table"`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn part(s: &str) -> String {
            let plain = s
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if plain {
                s.to_string()
            } else {
                format!("\"{}\"", s.replace('"', "\"\""))
            }
        }
        write!(f, "{}.{}", part(&self.schema), part(&self.name))
    }
}

impl Scope {
    /// The whole source.
    pub fn full() -> Self {
        Scope::default()
    }

    pub fn is_full(&self) -> bool {
        *self == Scope::default()
    }

    /// Leaves out the tables whose partitioned parent (`parent_of`) is listed
    /// too: `--table audit_events` is recorded as `audit_events`, not as the
    /// partitions it had that day, so its snapshots stay one retention group
    /// when a new partition is added.
    pub fn collapse_partitions(
        mut self,
        parent_of: impl Fn(&TableRef) -> Option<TableRef>,
    ) -> Self {
        let listed = self.tables.clone();
        self.tables
            .retain(|t| parent_of(t).is_none_or(|p| !listed.contains(&p)));
        self
    }

    /// The same scope with its lists sorted and deduplicated.
    pub fn normalized(mut self) -> Self {
        for v in [&mut self.namespaces, &mut self.kinds, &mut self.names] {
            v.sort();
            v.dedup();
        }
        self.tables.sort();
        self.tables.dedup();
        self
    }

    /// What retention groups by and what `snapshots` shows: `full`,
    /// `tables: public.a, public.b`, `schema-only`, `schema-only; tables: …`,
    /// `namespaces: a; kinds: configmaps; selector: app=x`, …
    pub fn key(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_full() {
            return f.write_str("full");
        }
        let s = self.clone().normalized();
        let mut parts = Vec::new();
        if s.schema_only {
            parts.push("schema-only".to_string());
        }
        if !s.tables.is_empty() {
            let t: Vec<String> = s.tables.iter().map(|t| t.to_string()).collect();
            parts.push(format!("tables: {}", t.join(", ")));
        }
        for (what, list) in [
            ("namespaces", &s.namespaces),
            ("kinds", &s.kinds),
            ("names", &s.names),
        ] {
            if !list.is_empty() {
                parts.push(format!("{what}: {}", list.join(", ")));
            }
        }
        if let Some(sel) = &s.selector {
            parts.push(format!("selector: {sel}"));
        }
        f.write_str(&parts.join("; "))
    }
}

/// A [`Scope`] as command output shows it (`snapshots --json`, the daemon's
/// `/api/v1/snapshots`): every member always present, so the shape does not
/// depend on the snapshot's kind. `full` is what `latest`, status, drills and
/// retention go by; `label` is the text `lifeboat snapshots` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScopeView {
    pub full: bool,
    pub label: String,
    pub tables: Vec<TableRef>,
    pub schema_only: bool,
    pub namespaces: Vec<String>,
    pub kinds: Vec<String>,
    pub names: Vec<String>,
    pub selector: Option<String>,
}

impl From<&Scope> for ScopeView {
    fn from(s: &Scope) -> Self {
        let n = s.clone().normalized();
        ScopeView {
            full: n.is_full(),
            label: n.to_string(),
            tables: n.tables,
            schema_only: n.schema_only,
            namespaces: n.namespaces,
            kinds: n.kinds,
            names: n.names,
            selector: n.selector,
        }
    }
}

/// One stream in a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub name: String,
    pub size: u64,
    pub chunks: u64,
    /// Tree blob ids (hex) whose concatenated contents are the chunk id list.
    pub tree: Vec<String>,
    /// Keyed BLAKE3 of the concatenated chunk ids (hex), checked after a
    /// restore together with `size`.
    pub digest: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupStats {
    pub bytes_read: u64,
    /// Plaintext bytes of chunks not already in the repository.
    pub bytes_new: u64,
    /// Bytes this backup added to storage (packs and index).
    pub bytes_stored: u64,
    pub chunks: u64,
    pub new_chunks: u64,
    pub packs: u64,
    pub duration_seconds: f64,
}

/// A snapshot with its id (the storage name, hex).
#[derive(Debug, Clone)]
pub struct SnapshotRef {
    pub id: String,
    pub snapshot: Snapshot,
}

impl SnapshotRef {
    pub fn short_id(&self) -> &str {
        &self.id[..8.min(self.id.len())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(kind: &str, facts: serde_json::Value, scope: Option<serde_json::Value>) -> Snapshot {
        let mut v = serde_json::json!({
            "version": 1, "time": "2026-01-01T00:00:00Z", "hostname": "h", "username": "u",
            "source": "db", "kind": kind, "tags": [], "items": [],
            "stats": { "bytes_read": 0, "bytes_new": 0, "bytes_stored": 0, "chunks": 0,
                       "new_chunks": 0, "packs": 0, "duration_seconds": 0.0 },
            "facts": facts, "program": "lifeboat 0.1.0"
        });
        if let Some(s) = scope {
            v["version"] = 2.into();
            v["scope"] = s;
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn full_is_the_default_and_keys_as_full() {
        assert!(Scope::full().is_full());
        assert_eq!(Scope::full().key(), crate::retention::FULL_SCOPE);
        assert_eq!(serde_json::to_string(&Scope::full()).unwrap(), "{}");
    }

    /// Snapshots written before scopes existed: a postgres one reads its
    /// scope from `facts.scope`; anything else is full.
    #[test]
    fn older_snapshots_read_facts_scope() {
        let pg = |scope| {
            doc(
                "postgres",
                serde_json::json!({ "format": 1, "scope": scope }),
                None,
            )
        };
        assert!(
            pg(serde_json::json!({"tables": [], "schema_only": false}))
                .scope()
                .is_full()
        );
        let tables = pg(serde_json::json!({
            "tables": [{"schema": "public", "name": "t2"}, {"schema": "Ops Data", "name": "a"}],
            "schema_only": false
        }))
        .scope();
        assert!(!tables.is_full());
        assert_eq!(tables.key(), r#"tables: "Ops Data".a, public.t2"#);
        // A partitioned table stands for its partitions.
        let parted = doc(
            "postgres",
            serde_json::json!({ "format": 1,
            "scope": {"tables": [{"schema": "public", "name": "ev"},
                                 {"schema": "public", "name": "ev_1"}], "schema_only": false},
            "tables": [
                {"table": {"schema": "public", "name": "ev"}, "kind": "partitioned", "rows": 1},
                {"table": {"schema": "public", "name": "ev_1"}, "kind": "partition",
                 "parent": {"schema": "public", "name": "ev"}, "rows": 1}
            ]}),
            None,
        );
        assert_eq!(parted.scope().key(), "tables: public.ev");
        let schema = pg(serde_json::json!({"tables": [], "schema_only": true})).scope();
        assert_eq!(schema.key(), "schema-only");
        // No facts (streams) and kube facts: full.
        assert!(
            doc("stream", serde_json::Value::Null, None)
                .scope()
                .is_full()
        );
        assert!(
            doc("kube", serde_json::json!({"kube": {"names": ["x"]}}), None)
                .scope()
                .is_full()
        );
    }

    #[test]
    fn the_scope_member_wins_and_round_trips() {
        let s = doc(
            "kube",
            serde_json::json!({}),
            Some(serde_json::json!({"kinds": ["secrets", "configmaps"], "selector": "app=x"})),
        );
        let scope = s.scope();
        assert_eq!(scope.key(), "kinds: configmaps, secrets; selector: app=x");
        let back: Snapshot = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back.scope(), scope);
        // Unknown members of a scope are refused like any other.
        let bad = serde_json::from_value::<Scope>(serde_json::json!({"tablez": []}));
        assert!(bad.is_err());
    }

    #[test]
    fn the_view_has_every_member() {
        let v = serde_json::to_value(ScopeView::from(&Scope::full())).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"full": true, "label": "full", "tables": [], "schema_only": false,
                "namespaces": [], "kinds": [], "names": [], "selector": null})
        );
        let part = Scope {
            tables: vec![TableRef {
                schema: "public".into(),
                name: "audit".into(),
            }],
            ..Scope::default()
        };
        let v = serde_json::to_value(ScopeView::from(&part)).unwrap();
        assert_eq!(v["full"], false);
        assert_eq!(v["label"], "tables: public.audit");
        assert_eq!(v["tables"][0]["name"], "audit");
    }
}
