//! Restoring chosen tables or schemas out of a whole-database archive: the
//! PostgreSQL-only pieces of `restore postgres --table/--schema [--as]`
//! (the flow itself is `lifeboat_ops::table_restore`).
//!
//! - [`read_toc`] lists the staged archive's table of contents with
//!   `pg_restore --list --verbose`, whose `; depends on:` lines give every
//!   entry's dependencies; [`parse_toc`] reads that text.
//! - [`select`] picks what belongs to the chosen tables (or schemas) by
//!   following those dependencies *downwards* from the `TABLE` (or `SCHEMA`)
//!   entries: its rows, owned sequences and their positions, defaults,
//!   indexes, constraints, triggers, comments, grants, policies — never
//!   another table, a view or a function. It also returns the *context*:
//!   what the selected entries depend on (types, functions, schemas,
//!   extensions), which a scratch database needs before the selected entries
//!   restore there. Dependencies, not names, decide: an index's TOC tag does
//!   not name its table.
//! - [`rename_plan`] and [`rename_sql`]: the new names of a table restored
//!   beside the live one (its indexes — and so its index-backed constraints —
//!   and owned sequences follow the table's new name, so that nothing
//!   collides with the live table's in the same schema).
//! - [`copy_database_objects`]: `pg_dump` of a table or schema from the
//!   scratch database piped straight into `pg_restore --single-transaction`
//!   on the target (two processes joined by a pipe, argument vectors only).
//!
//! Entries are matched on schema and tag as `pg_restore --list` prints them;
//! a schema name containing a space is not supported there (the list format
//! separates fields with spaces).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;

use tokio_postgres::Client;

use crate::conn::ConnConfig;
use crate::dump::{DumpError, StderrSink, status_text};
use crate::facts::{TableName, quote_ident};
use crate::tools::PgTools;

/// Most bytes of a PostgreSQL identifier (`NAMEDATALEN - 1`).
pub const MAX_IDENT: usize = 63;

/// One entry of an archive's table of contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TocEntry {
    /// The dump id (first field of the list line).
    pub id: i64,
    /// `TABLE`, `TABLE DATA`, `FK CONSTRAINT`, `SEQUENCE SET`, …
    pub desc: String,
    /// `None` for `-`.
    pub schema: Option<String>,
    /// The name as pg_restore prints it (`accounts`, `accounts accounts_pkey`
    /// for a constraint, `TABLE accounts` for a comment).
    pub tag: String,
    /// Dump ids this entry depends on.
    pub deps: Vec<i64>,
    /// The list line as printed, for a `--use-list` file.
    pub line: String,
    /// Its place in the archive's order (pg_restore restores a `--use-list`
    /// file in the file's order, which must stay the archive's).
    pub position: usize,
}

/// Descriptions of more than one word, longest first (the list line has no
/// other separator between description and schema).
const MULTI_WORD: &[&str] = &[
    "MATERIALIZED VIEW DATA",
    "SEQUENCE OWNED BY",
    "PUBLICATION TABLES IN SCHEMA",
    "PUBLICATION TABLE",
    "MATERIALIZED VIEW",
    "CHECK CONSTRAINT",
    "SERVER DEFINITION",
    "FOREIGN TABLE",
    "SECURITY LABEL",
    "FK CONSTRAINT",
    "STATISTICS DATA",
    "DEFAULT ACL",
    "ROW SECURITY",
    "SEQUENCE SET",
    "TABLE ATTACH",
    "INDEX ATTACH",
    "TABLE DATA",
    "BLOB METADATA",
    "LARGE OBJECT",
    "EVENT TRIGGER",
    "USER MAPPING",
    "TEXT SEARCH DICTIONARY",
    "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH PARSER",
    "TEXT SEARCH TEMPLATE",
    "FOREIGN DATA WRAPPER",
    "PROCEDURAL LANGUAGE",
    "OPERATOR CLASS",
    "OPERATOR FAMILY",
    "ACCESS METHOD",
];

/// Entries that set up the session (restored with every selection).
const SESSION: &[&str] = &["ENCODING", "STDSTRINGS", "SEARCHPATH"];

/// What belongs to a table when it depends on it: followed downwards by
/// [`select`]. A view, another table or a function never is.
const BELONGS: &[&str] = &[
    "TABLE DATA",
    "SEQUENCE",
    "SEQUENCE OWNED BY",
    "SEQUENCE SET",
    "DEFAULT",
    "INDEX",
    "CONSTRAINT",
    "CHECK CONSTRAINT",
    "FK CONSTRAINT",
    "TRIGGER",
    "COMMENT",
    "ACL",
    "SECURITY LABEL",
    "POLICY",
    "ROW SECURITY",
    "RULE",
    "STATISTICS",
    "STATISTICS DATA",
];

/// Entries holding data, never restored as context.
const DATA: &[&str] = &[
    "TABLE DATA",
    "SEQUENCE SET",
    "BLOB",
    "BLOBS",
    "BLOB METADATA",
    "LARGE OBJECT",
    "MATERIALIZED VIEW DATA",
    "DATABASE",
];

/// Parses `pg_restore --list --verbose` output. Lines that are not entries
/// (the header, blank lines) are skipped; a `;\tdepends on: …` line belongs
/// to the entry before it.
pub fn parse_toc(text: &str) -> Vec<TocEntry> {
    let mut out: Vec<TocEntry> = Vec::new();
    for line in text.lines() {
        if let Some(deps) = line
            .strip_prefix(';')
            .map(str::trim_start)
            .and_then(|l| l.strip_prefix("depends on:"))
        {
            if let Some(last) = out.last_mut() {
                last.deps.extend(
                    deps.split_whitespace()
                        .filter_map(|d| d.parse::<i64>().ok()),
                );
            }
            continue;
        }
        if line.starts_with(';') || line.trim().is_empty() {
            continue;
        }
        if let Some(mut e) = parse_line(line) {
            e.position = out.len();
            out.push(e);
        }
    }
    out
}

/// `3374; 0 16392 TABLE DATA public accounts postgres`.
fn parse_line(line: &str) -> Option<TocEntry> {
    let (id, rest) = line.split_once(';')?;
    let id = id.trim().parse::<i64>().ok()?;
    // Two catalog numbers, then the description.
    let rest = rest.trim_start();
    let (_, rest) = rest.split_once(' ')?;
    let (_, rest) = rest.split_once(' ')?;
    let desc = MULTI_WORD
        .iter()
        .find(|d| {
            rest.strip_prefix(**d)
                .is_some_and(|r| r.is_empty() || r.starts_with(' '))
        })
        .map(|d| d.to_string())
        .or_else(|| rest.split(' ').next().map(str::to_string))?;
    let rest = rest[desc.len()..].strip_prefix(' ').unwrap_or("");
    let (schema, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    // The owner is the last field (empty for session entries).
    let tag = match rest.rsplit_once(' ') {
        Some((tag, _owner)) => tag,
        None => rest,
    };
    Some(TocEntry {
        id,
        desc,
        schema: (schema != "-").then(|| schema.to_string()),
        tag: tag.to_string(),
        deps: Vec::new(),
        line: line.to_string(),
        position: 0,
    })
}

/// Lists the archive's table of contents with dependencies.
pub fn read_toc(tools: &PgTools, archive: &Path) -> Result<Vec<TocEntry>, DumpError> {
    let out = crate::tools::child_command(&tools.pg_restore)
        .arg("--list")
        .arg("--verbose")
        .arg(archive)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| DumpError::Spawn {
            program: tools.pg_restore.clone(),
            source: e,
        })?;
    if !out.status.success() {
        return Err(DumpError::Failed {
            program: "pg_restore".into(),
            status: status_text(out.status),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(parse_toc(&String::from_utf8_lossy(&out.stdout)))
}

/// What to take out of the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pick {
    Table(TableName),
    /// Every object of the schema (and the schema itself).
    Schema(String),
}

impl std::fmt::Display for Pick {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pick::Table(t) => write!(f, "table {t}"),
            Pick::Schema(s) => write!(f, "schema {s}"),
        }
    }
}

/// What [`select`] chose, each list in archive order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// The session entries (encoding, search_path) every list starts with.
    pub session: Vec<TocEntry>,
    /// The chosen objects and what belongs to them.
    pub entries: Vec<TocEntry>,
    /// What the chosen entries need that is not chosen (types, functions,
    /// schemas, extensions, other tables' definitions): for a scratch
    /// database only, never restored over live objects. Data entries never.
    pub context: Vec<TocEntry>,
}

impl Selection {
    /// List lines: the session entries, then `entries` (and `context`
    /// before them when `with_context`), in archive order.
    pub fn list_lines(&self, with_context: bool) -> Vec<String> {
        let mut chosen: Vec<&TocEntry> = self.entries.iter().collect();
        if with_context {
            chosen.extend(self.context.iter());
        }
        chosen.sort_by_key(|e| e.position);
        let mut order: Vec<&TocEntry> = self.session.iter().collect();
        order.extend(chosen);
        order.iter().map(|e| e.line.clone()).collect()
    }
}

/// Chooses the entries of `picks` in `toc`. `foreign_keys`: also the foreign
/// keys that point at a chosen table from another (restoring a table in
/// place must drop and re-add them) and the chosen tables' own (a copy
/// beside the live table leaves all of them out: its rows are the
/// snapshot's, the tables they would point at are live). Errors name a pick
/// the archive does not hold.
pub fn select(toc: &[TocEntry], picks: &[Pick], foreign_keys: bool) -> Result<Selection, Pick> {
    let mut chosen: BTreeSet<i64> = BTreeSet::new();
    for p in picks {
        let seeds: Vec<i64> = toc
            .iter()
            .filter(|e| match p {
                Pick::Table(t) => {
                    e.desc == "TABLE"
                        && e.schema.as_deref() == Some(t.schema.as_str())
                        && e.tag == t.name
                }
                Pick::Schema(s) => {
                    (e.desc == "SCHEMA" && e.schema.is_none() && e.tag == *s)
                        || (e.schema.as_deref() == Some(s.as_str())
                            && (foreign_keys || e.desc != "FK CONSTRAINT"))
                }
            })
            .map(|e| e.id)
            .collect();
        if seeds.is_empty() {
            return Err(p.clone());
        }
        chosen.extend(seeds);
    }
    // Downwards: what belongs to a chosen entry.
    loop {
        let before = chosen.len();
        for e in toc {
            if chosen.contains(&e.id) || !BELONGS.contains(&e.desc.as_str()) {
                continue;
            }
            if e.desc == "FK CONSTRAINT" && !foreign_keys {
                continue;
            }
            if e.deps.iter().any(|d| chosen.contains(d)) {
                chosen.insert(e.id);
            }
        }
        if chosen.len() == before {
            break;
        }
    }
    // Upwards: what the chosen entries need, for a scratch database.
    let by_id: std::collections::BTreeMap<i64, &TocEntry> = toc.iter().map(|e| (e.id, e)).collect();
    let mut context: BTreeSet<i64> = BTreeSet::new();
    let mut stack: Vec<i64> = chosen
        .iter()
        .filter_map(|id| by_id.get(id))
        .flat_map(|e| e.deps.iter().copied())
        .collect();
    // Extensions are always needed context: a table's defaults may call
    // their functions without the TOC recording it.
    stack.extend(toc.iter().filter(|e| e.desc == "EXTENSION").map(|e| e.id));
    while let Some(id) = stack.pop() {
        if chosen.contains(&id) || context.contains(&id) {
            continue;
        }
        let Some(e) = by_id.get(&id) else { continue };
        if DATA.contains(&e.desc.as_str()) || SESSION.contains(&e.desc.as_str()) {
            continue;
        }
        context.insert(id);
        stack.extend(e.deps.iter().copied());
    }
    let pick = |set: &BTreeSet<i64>| -> Vec<TocEntry> {
        toc.iter()
            .filter(|e| set.contains(&e.id))
            .cloned()
            .collect()
    };
    Ok(Selection {
        session: toc
            .iter()
            .filter(|e| SESSION.contains(&e.desc.as_str()))
            .cloned()
            .collect(),
        entries: pick(&chosen),
        context: pick(&context),
    })
}

/// Writes list lines into a temporary `--use-list` file.
pub fn list_file(lines: &[String]) -> Result<tempfile::NamedTempFile, DumpError> {
    use std::io::Write;
    let mut f = tempfile::Builder::new()
        .prefix("lifeboat-list-")
        .tempfile()
        .map_err(DumpError::ListFile)?;
    for l in lines {
        writeln!(f, "{l}").map_err(DumpError::ListFile)?;
    }
    f.flush().map_err(DumpError::ListFile)?;
    Ok(f)
}

/// The name of an object of table `old` once the table is called `new`:
/// `old`'s prefix replaced by `new` (`accounts_pkey` → `accounts_restored_pkey`),
/// else `new_` before the name; cut to [`MAX_IDENT`] bytes on a character
/// boundary, as PostgreSQL would.
pub fn derived_name(old: &str, new: &str, object: &str) -> String {
    let name = match object.strip_prefix(old) {
        Some(rest) => format!("{new}{rest}"),
        None => format!("{new}_{object}"),
    };
    truncate_ident(&name)
}

fn truncate_ident(s: &str) -> String {
    if s.len() <= MAX_IDENT {
        return s.to_string();
    }
    let mut end = MAX_IDENT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// One relation to rename in the scratch database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rename {
    /// `TABLE`, `INDEX` or `SEQUENCE` (the `ALTER` it takes).
    pub kind: &'static str,
    pub schema: String,
    pub from: String,
    pub to: String,
}

/// The relations of `table` in the database behind `client` (indexes, so
/// their constraints too, and owned sequences, serial or identity) and their
/// names once the table is called `new`; the table itself first.
pub async fn rename_plan(
    client: &Client,
    table: &TableName,
    new: &str,
) -> Result<Vec<Rename>, DumpError> {
    let rows = client
        .query(
            "SELECT c.relname::text, c.relkind::text FROM pg_index i
               JOIN pg_class c ON c.oid = i.indexrelid
              WHERE i.indrelid = $1::text::regclass
             UNION
             SELECT s.relname::text, s.relkind::text FROM pg_depend d
               JOIN pg_class s ON s.oid = d.objid
              WHERE d.classid = 'pg_class'::regclass AND d.refobjid = $1::text::regclass
                AND s.relkind = 'S' AND d.deptype IN ('a', 'i')
             ORDER BY 1",
            &[&table.quoted()],
        )
        .await
        .map_err(|e| DumpError::Sql {
            what: format!("listing the indexes and sequences of {table}"),
            source: e,
        })?;
    let mut out = vec![Rename {
        kind: "TABLE",
        schema: table.schema.clone(),
        from: table.name.clone(),
        to: new.to_string(),
    }];
    for r in rows {
        let name: String = r.get(0);
        let kind = if r.get::<_, String>(1) == "S" {
            "SEQUENCE"
        } else {
            "INDEX"
        };
        out.push(Rename {
            kind,
            to: derived_name(&table.name, new, &name),
            schema: table.schema.clone(),
            from: name,
        });
    }
    Ok(out)
}

/// The `ALTER … RENAME TO …` statements of `plan`, identifiers quoted.
pub fn rename_sql(plan: &[Rename]) -> String {
    plan.iter()
        .map(|r| {
            format!(
                "ALTER {} {}.{} RENAME TO {};\n",
                r.kind,
                quote_ident(&r.schema),
                quote_ident(&r.from),
                quote_ident(&r.to)
            )
        })
        .collect()
}

/// Of `names`, those that are relations of `schema` in the database behind
/// `client`.
pub async fn existing_relations(
    client: &Client,
    schema: &str,
    names: &[String],
) -> Result<Vec<String>, DumpError> {
    let rows = client
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND c.relname = ANY($2) ORDER BY 1",
            &[&schema, &names],
        )
        .await
        .map_err(|e| DumpError::Sql {
            what: format!("looking for {} in schema {schema}", names.join(", ")),
            source: e,
        })?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Whether schema `name` exists in the database behind `client`.
pub async fn schema_exists(client: &Client, name: &str) -> Result<bool, DumpError> {
    client
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&name])
        .await
        .map(|r| r.is_some())
        .map_err(|e| DumpError::Sql {
            what: format!("looking for schema {name}"),
            source: e,
        })
}

/// Exact row counts of `tables` (`None`: the table does not exist).
pub async fn count_rows(
    client: &Client,
    tables: &[TableName],
) -> Result<Vec<Option<i64>>, DumpError> {
    let mut out = Vec::new();
    for t in tables {
        let exists = client
            .query_opt("SELECT to_regclass($1::text)::text", &[&t.quoted()])
            .await
            .map_err(|e| DumpError::Sql {
                what: format!("looking up {t}"),
                source: e,
            })?
            .and_then(|r| r.get::<_, Option<String>>(0))
            .is_some();
        if !exists {
            out.push(None);
            continue;
        }
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM ONLY {}", t.quoted()), &[])
            .await
            .map_err(|e| DumpError::Sql {
                what: format!("counting the rows of {t}"),
                source: e,
            })?
            .get(0);
        out.push(Some(n));
    }
    Ok(out)
}

/// Drops database `cfg.dbname` (its sessions ended first), connecting to
/// `maintenance_db` on the same server. Missing is fine.
pub async fn drop_database(cfg: &ConnConfig, maintenance_db: &str) -> Result<(), DumpError> {
    let admin = cfg.with_dbname(maintenance_db).connect().await?;
    admin
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(&cfg.dbname)
        ))
        .await
        .map_err(|e| DumpError::Sql {
            what: format!("dropping the scratch database {}", cfg.dbname),
            source: e,
        })
}

/// What [`copy_database_objects`] copies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Objects {
    /// A table with its indexes, constraints, triggers and owned sequences.
    Table(TableName),
    /// A schema and everything in it.
    Schema(String),
}

/// Copies `what` from database `from` into `to` (same server or not): one
/// `pg_dump --format=custom` piped into `pg_restore --single-transaction
/// --exit-on-error` (no `--clean`: the objects must not exist in `to`; all
/// of them or nothing). Blocking: call it from a blocking thread.
pub fn copy_database_objects(
    tools: &PgTools,
    from: &ConnConfig,
    to: &ConnConfig,
    what: &[Objects],
) -> Result<(), DumpError> {
    let mut dump = crate::tools::child_command(&tools.pg_dump);
    from.apply_to_command(&mut dump)?;
    dump.args([
        "--format=custom",
        "--compress=0",
        "--no-password",
        "--strict-names",
    ]);
    for w in what {
        match w {
            Objects::Table(t) => dump.arg(format!("--table={}", t.quoted())),
            Objects::Schema(s) => dump.arg(format!("--schema={}", quote_ident(s))),
        };
    }
    // The database comes in PGDATABASE.
    dump.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut dump = dump.spawn().map_err(|e| DumpError::Spawn {
        program: tools.pg_dump.clone(),
        source: e,
    })?;
    let mut dump_err = StderrSink::start(dump.stderr.take().expect("stderr is piped"));
    let archive = dump.stdout.take().expect("stdout is piped");
    let mut restore = crate::tools::child_command(&tools.pg_restore);
    let prepared = to.apply_to_command(&mut restore);
    if let Err(e) = prepared {
        let _ = dump.kill();
        let _ = dump.wait();
        return Err(e.into());
    }
    restore
        .arg("--dbname")
        .arg(&to.dbname)
        .args(["--no-password", "--single-transaction", "--exit-on-error"])
        .stdin(Stdio::from(archive))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let restored = restore.spawn().map_err(|e| DumpError::Spawn {
        program: tools.pg_restore.clone(),
        source: e,
    });
    let mut restore = match restored {
        Ok(r) => r,
        Err(e) => {
            let _ = dump.kill();
            let _ = dump.wait();
            return Err(e);
        }
    };
    let mut restore_err = StderrSink::start(restore.stderr.take().expect("stderr is piped"));
    let restored = restore.wait();
    let dumped = dump.wait();
    let (dump_stderr, restore_stderr) = (dump_err.finish(), restore_err.finish());
    let wait = |program: &str, e: std::io::Error| DumpError::Wait {
        program: program.into(),
        source: e,
    };
    let restored = restored.map_err(|e| wait("pg_restore", e))?;
    let dumped = dumped.map_err(|e| wait("pg_dump", e))?;
    if !dumped.success() {
        return Err(DumpError::Failed {
            program: "pg_dump".into(),
            status: status_text(dumped),
            stderr: dump_stderr,
        });
    }
    if !restored.success() {
        return Err(DumpError::Failed {
            program: "pg_restore".into(),
            status: status_text(restored),
            stderr: restore_stderr,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pg_restore --list --verbose` of a database with a serial table
    /// (`accounts`: a comment, a grant, an index, a trigger, a view over it
    /// and a foreign key from `orders`), another table and a schema.
    const TOC: &str = ";
; Archive created at 2026-12-06 00:54:48 UTC
;     dbname: postgres
;
; Selected TOC Entries:
;
3380; 0 0 ENCODING - ENCODING 
3381; 0 0 STDSTRINGS - STDSTRINGS 
3382; 0 0 SEARCHPATH - SEARCHPATH 
3383; 1262 5 DATABASE - postgres postgres
6; 2615 16420 SCHEMA - app postgres
845; 1247 16385 TYPE public mood postgres
222; 1255 16389 FUNCTION public trgf() postgres
221; 1259 16421 TABLE app t postgres
;\tdepends on: 6
217; 1259 16392 TABLE public accounts postgres
;\tdepends on: 845 845
3385; 0 0 COMMENT public TABLE accounts postgres
;\tdepends on: 217
3386; 0 0 ACL public TABLE accounts postgres
;\tdepends on: 217
216; 1259 16391 SEQUENCE public accounts_created_seq postgres
;\tdepends on: 217
215; 1259 16390 SEQUENCE public accounts_id_seq postgres
;\tdepends on: 217
3387; 0 0 SEQUENCE OWNED BY public accounts_id_seq postgres
;\tdepends on: 215
219; 1259 16406 TABLE public orders postgres
218; 1259 16405 SEQUENCE public orders_id_seq postgres
;\tdepends on: 219
220; 1259 16416 VIEW public v postgres
;\tdepends on: 217 217 217 217 845
3216; 2604 16395 DEFAULT public accounts id postgres
;\tdepends on: 215 217 217
3377; 0 16421 TABLE DATA app t postgres
;\tdepends on: 221
3374; 0 16392 TABLE DATA public accounts postgres
;\tdepends on: 217
3376; 0 16406 TABLE DATA public orders postgres
;\tdepends on: 219
3388; 0 0 SEQUENCE SET public accounts_created_seq postgres
;\tdepends on: 216
3389; 0 0 SEQUENCE SET public accounts_id_seq postgres
;\tdepends on: 215
3390; 0 0 SEQUENCE SET public orders_id_seq postgres
;\tdepends on: 218
3226; 2606 16425 CONSTRAINT app t t_pkey postgres
;\tdepends on: 221
3219; 2606 16402 CONSTRAINT public accounts accounts_email_key postgres
;\tdepends on: 217
3222; 2606 16400 CONSTRAINT public accounts accounts_pkey postgres
;\tdepends on: 217
3224; 2606 16410 CONSTRAINT public orders orders_pkey postgres
;\tdepends on: 219
3220; 1259 16403 INDEX public accounts_m_idx postgres
;\tdepends on: 217
3228; 2620 16404 TRIGGER public accounts trg postgres
;\tdepends on: 222 217
3227; 2606 16411 FK CONSTRAINT public orders orders_account_id_fkey postgres
;\tdepends on: 217 3222 219
";

    fn ids(v: &[TocEntry]) -> Vec<i64> {
        v.iter().map(|e| e.id).collect()
    }

    #[test]
    fn parses_descriptions_schemas_tags_and_dependencies() {
        let toc = parse_toc(TOC);
        assert_eq!(toc.len(), 31);
        let e = toc.iter().find(|e| e.id == 3227).unwrap();
        assert_eq!(e.desc, "FK CONSTRAINT");
        assert_eq!(e.schema.as_deref(), Some("public"));
        assert_eq!(e.tag, "orders orders_account_id_fkey");
        assert_eq!(e.deps, vec![217, 3222, 219]);
        let e = toc.iter().find(|e| e.id == 3387).unwrap();
        assert_eq!(
            (e.desc.as_str(), e.tag.as_str()),
            ("SEQUENCE OWNED BY", "accounts_id_seq")
        );
        let e = toc.iter().find(|e| e.id == 3380).unwrap();
        assert_eq!((e.desc.as_str(), e.schema.as_deref()), ("ENCODING", None));
        let e = toc.iter().find(|e| e.id == 6).unwrap();
        assert_eq!((e.desc.as_str(), e.tag.as_str()), ("SCHEMA", "app"));
        let e = toc.iter().find(|e| e.id == 3374).unwrap();
        assert_eq!(e.line, "3374; 0 16392 TABLE DATA public accounts postgres");
    }

    #[test]
    fn a_table_in_place_takes_what_belongs_to_it_and_the_foreign_keys_pointing_at_it() {
        let toc = parse_toc(TOC);
        let s = select(
            &toc,
            &[Pick::Table(TableName::new("public", "accounts"))],
            true,
        )
        .unwrap();
        assert_eq!(
            ids(&s.entries),
            vec![
                217, 3385, 3386, 216, 215, 3387, 3216, 3374, 3388, 3389, 3219, 3222, 3220, 3228,
                3227
            ]
        );
        // Not the view over it, not the other table or its data.
        assert!(!ids(&s.entries).contains(&220));
        assert!(!ids(&s.entries).contains(&3376));
        assert_eq!(ids(&s.session), vec![3380, 3381, 3382]);
        // What it needs: the type and the trigger's function; the FK's
        // other table too (its definition), never data.
        assert_eq!(ids(&s.context), vec![845, 222, 219]);
    }

    #[test]
    fn a_table_beside_leaves_every_foreign_key_out() {
        let toc = parse_toc(TOC);
        let s = select(
            &toc,
            &[Pick::Table(TableName::new("public", "accounts"))],
            false,
        )
        .unwrap();
        assert!(!ids(&s.entries).contains(&3227));
        assert_eq!(ids(&s.context), vec![845, 222]);
        let lines = s.list_lines(true);
        assert_eq!(lines[0], "3380; 0 0 ENCODING - ENCODING ");
        assert_eq!(lines.len(), 3 + 14 + 2);
    }

    #[test]
    fn a_schema_takes_its_objects_and_the_schema() {
        let toc = parse_toc(TOC);
        let s = select(&toc, &[Pick::Schema("app".into())], true).unwrap();
        assert_eq!(ids(&s.entries), vec![6, 221, 3377, 3226]);
        assert!(s.context.is_empty());
    }

    #[test]
    fn a_pick_the_archive_lacks_is_named() {
        let toc = parse_toc(TOC);
        let missing = Pick::Table(TableName::new("public", "nope"));
        assert_eq!(
            select(&toc, std::slice::from_ref(&missing), true).unwrap_err(),
            missing
        );
        // A view is not a table.
        let view = Pick::Table(TableName::new("public", "v"));
        assert_eq!(
            select(&toc, std::slice::from_ref(&view), true).unwrap_err(),
            view
        );
        assert_eq!(
            select(&toc, &[Pick::Schema("other".into())], true).unwrap_err(),
            Pick::Schema("other".into())
        );
    }

    #[test]
    fn derived_names_follow_the_table_and_fit() {
        assert_eq!(
            derived_name("accounts", "accounts_restored", "accounts_pkey"),
            "accounts_restored_pkey"
        );
        assert_eq!(
            derived_name("accounts", "old_accounts", "email_unique"),
            "old_accounts_email_unique"
        );
        let long = "t".repeat(60);
        let d = derived_name("accounts", &long, "accounts_id_seq");
        assert_eq!(d.len(), MAX_IDENT);
        // Cut on a character boundary.
        let d = derived_name("a", &format!("{}é", "x".repeat(61)), "a_pkey");
        assert!(d.len() <= MAX_IDENT && d.is_char_boundary(d.len()));
    }

    #[test]
    fn rename_statements_quote_identifiers() {
        let sql = rename_sql(&[Rename {
            kind: "INDEX",
            schema: "my schema".into(),
            from: "a\"b".into(),
            to: "c".into(),
        }]);
        assert_eq!(
            sql,
            "ALTER INDEX \"my schema\".\"a\"\"b\" RENAME TO \"c\";\n"
        );
    }
}
