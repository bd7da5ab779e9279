//! Restoring chosen tables or schemas from a full PostgreSQL snapshot: the
//! everyday repair that otherwise needs a whole-database restore
//! (`lifeboat restore postgres SNAPSHOT --table T [--as T_restored]`).
//!
//! Two ways, decided by whether new names are given:
//! - **beside** (`--as`): nothing live is touched and no writer is stopped.
//!   The chosen entries (and what they need: types, functions, extensions)
//!   are restored into a scratch database created on the target's server,
//!   renamed there (the table, its indexes and so its index-backed
//!   constraints, its owned sequences; a schema by `ALTER SCHEMA`), then
//!   copied into the target by one `pg_dump | pg_restore
//!   --single-transaction`. The scratch database is dropped on every path.
//!   Foreign keys are left out of a copy beside: its rows are the
//!   snapshot's, the tables they would point at are live.
//! - **in place**: the source's writers are quiesced as configured (when
//!   the target is the source's database), then `pg_restore --clean
//!   --if-exists --use-list --single-transaction --exit-on-error` replaces
//!   the chosen entries — with the foreign keys of other tables that point
//!   at them, dropped and added again — in one transaction: a failure
//!   (a view over the table, rows of another table that the restored rows
//!   no longer match) changes nothing and brings the writers back.
//!
//! Before anything is touched: the names are resolved against the
//! snapshot's facts (unknown name, partial snapshot lacking it, `--as`
//! name taken: exit 2), the archive is staged to a file (which
//! authenticates every blob) and its table of contents filtered
//! ([`lifeboat_postgres::selective`]). After: each restored table's row
//! count is checked against the snapshot's facts for the original name
//! (exit 7 on a difference; in place, the writers are then left stopped
//! unless `quiesce.resume_on_verify_failure`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use lifeboat_postgres::conn::ConnConfig;
use lifeboat_postgres::dump::{self, PgRestore, RestoreOptions};
use lifeboat_postgres::facts::{DiffKind, FactDiff, Facts, TableKind, TableName};
use lifeboat_postgres::identity::{self, Relation};
use lifeboat_postgres::selective::{self, Objects, Pick, Selection};
use lifeboat_postgres::tools::{self, Discovery, PgTools};
use lifeboat_repo::Repository;
use lifeboat_repo::backup::Progress;
use lifeboat_repo::restore::{Part, restore_item_part_to_file};
use lifeboat_repo::snapshot::SnapshotRef;
use serde::Serialize;

use crate::config::Quiesce;
use crate::context::Ctx;
use crate::error::{Context, Error, Kind, Result, error_with_hint, usage};
use crate::postgres::errors::{conn_err, dump_err};
use crate::postgres::source::{POSTGRES_KIND, PgSource, postgres_facts, snapshot_source};
use crate::quiesce::{self, NoQuiesce, Quiesced, Quiescer};

/// What to restore: a table or a schema, and its new name when it goes
/// beside the live one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chosen {
    pub what: ChosenKind,
    /// `--as`: restore beside the live object under this name.
    pub rename: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChosenKind {
    /// `name` or `schema.name`, as given.
    Table(String),
    Schema(String),
}

/// A table or schema restore, as the CLI (or a test) asks for it.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// Snapshot id, unique prefix or `latest`.
    pub snapshot: String,
    /// The configured source (with `latest`: its latest snapshot; without
    /// `target`: its database is the target and its quiesce settings apply).
    pub source: Option<String>,
    /// Another database to restore into (URL).
    pub target: Option<String>,
    pub chosen: Vec<Chosen>,
    /// In place: do not stop the writers.
    pub no_quiesce: bool,
    /// Do not check the restored tables against the snapshot's facts.
    pub no_verify: bool,
    /// Where the archive is staged [default: the system temp directory].
    pub staging_dir: Option<PathBuf>,
    /// The cluster of the writers to quiesce.
    pub cluster: lifeboat_kube::client::ClusterOptions,
}

/// Pairs `--table` and `--schema` values with `--as` values: none (all
/// restored in place) or one per table, then per schema, in the order given.
pub fn pair(tables: &[String], schemas: &[String], renames: &[String]) -> Result<Vec<Chosen>> {
    let wanted = tables.len() + schemas.len();
    if wanted == 0 {
        return Err(usage(
            "name what to restore: --table T (repeatable) or --schema S",
        ));
    }
    if !renames.is_empty() && renames.len() != wanted {
        return Err(usage(format!(
            "{} --as for {} --table/--schema: give one --as per --table (in the same order), \
             then one per --schema, or none to restore them in place",
            renames.len(),
            wanted
        )));
    }
    let kinds = tables
        .iter()
        .map(|t| ChosenKind::Table(t.clone()))
        .chain(schemas.iter().map(|s| ChosenKind::Schema(s.clone())));
    let mut out = Vec::new();
    for (i, what) in kinds.enumerate() {
        let rename = renames.get(i).cloned();
        if let Some(r) = &rename {
            check_new_name(r)?;
        }
        out.push(Chosen { what, rename });
    }
    Ok(out)
}

fn check_new_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > selective::MAX_IDENT {
        return Err(usage(format!(
            "--as {name:?}: a name of 1 to {} bytes",
            selective::MAX_IDENT
        )));
    }
    if name.contains('.') {
        return Err(usage(format!(
            "--as {name}: give a name without a schema; a table restored beside stays in its \
             schema (restore a whole schema beside with --schema S --as NEW_SCHEMA)"
        )));
    }
    Ok(())
}

/// Whether the chosen objects went beside the live ones or over them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Beside,
    InPlace,
}

/// One restored table: its name in the snapshot, where it is now, and its
/// row count then and now.
#[derive(Clone, Debug, Serialize)]
pub struct RestoredTable {
    pub from: String,
    pub to: String,
    pub expected_rows: Option<i64>,
    pub rows: Option<i64>,
}

/// What a table restore did.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub snapshot: String,
    pub source: String,
    pub target: String,
    pub mode: Mode,
    pub tables: Vec<RestoredTable>,
    /// Schemas restored whole (`from` → `to`).
    pub schemas: Vec<(String, String)>,
    /// Staging the archive (authenticating every blob), before anything
    /// was touched.
    pub staging_seconds: f64,
    /// From the writers stopped (in place) or the scratch database created
    /// (beside) to the objects restored, not verified yet.
    pub restore_seconds: f64,
    /// `None`: `--no-verify`.
    pub verified: Option<bool>,
    pub differences: Vec<FactDiff>,
    /// `resumed`, `left_stopped` (verification failed), `none` (nothing
    /// stops writers of this target, or beside), `not_stopped` (--no-quiesce).
    pub writers: &'static str,
}

impl Outcome {
    /// The exit-7 error of a restore whose tables differ from the snapshot.
    pub fn failure(&self) -> Option<Error> {
        if self.differences.is_empty() {
            return None;
        }
        let writers = match self.writers {
            "left_stopped" => {
                " THE WRITERS ARE LEFT STOPPED: the restored tables do not match the snapshot. \
                 Investigate, restore again, or bring them back yourself"
            }
            _ => "",
        };
        Some(Error::new(
            Kind::VerifyFailed,
            format!(
                "the restored tables differ from snapshot {} in {} fact(s) (table above).{writers}",
                &self.snapshot[..self.snapshot.len().min(8)],
                self.differences.len()
            ),
        ))
    }
}

/// A chosen object resolved against the snapshot.
#[derive(Clone, Debug)]
struct Resolved {
    pick: Pick,
    rename: Option<String>,
}

/// Resolves `name` (`name` or `schema.name`) among the snapshot's tables:
/// an unqualified name is `public`'s, else the only table of that name.
pub fn resolve_table(facts: &Facts, short_id: &str, name: &str) -> Result<TableName> {
    let candidates: Vec<&TableName> = match name.split_once('.') {
        Some((s, n)) => facts
            .tables
            .iter()
            .map(|t| &t.table)
            .filter(|t| t.schema == s && t.name == n)
            .collect(),
        None => {
            let all: Vec<&TableName> = facts
                .tables
                .iter()
                .map(|t| &t.table)
                .filter(|t| t.name == name)
                .collect();
            match all.iter().find(|t| t.schema == "public") {
                Some(p) => vec![*p],
                None => all,
            }
        }
    };
    match candidates.as_slice() {
        [one] => {
            let fact = facts.tables.iter().find(|t| &t.table == *one);
            if fact.is_some_and(|f| f.kind != TableKind::Table) {
                return Err(usage(format!(
                    "{one} is a partitioned table or a partition: restoring it alone is not \
                     supported; restore the whole database into another target instead"
                )));
            }
            Ok((*one).clone())
        }
        [] if !facts.scope.tables.is_empty() => Err(usage(format!(
            "snapshot {short_id} is a partial snapshot (of {}) and does not hold table {name}; \
             nothing was changed. Pick a full snapshot from `lifeboat snapshots`",
            facts
                .scope
                .tables
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        [] => Err(usage(format!(
            "snapshot {short_id} has no table {name}; nothing was changed. Its tables: {}",
            table_listing(facts)
        ))),
        many => Err(usage(format!(
            "table {name} is in more than one schema of snapshot {short_id} ({}); write \
             schema.name; nothing was changed",
            many.iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn table_listing(facts: &Facts) -> String {
    let names: Vec<String> = facts
        .tables
        .iter()
        .filter(|t| t.kind != TableKind::Partition)
        .map(|t| t.table.to_string())
        .collect();
    if names.len() > 20 {
        format!("{}, … ({} in all)", names[..20].join(", "), names.len())
    } else {
        names.join(", ")
    }
}

fn resolve(facts: &Facts, short_id: &str, chosen: &[Chosen]) -> Result<Vec<Resolved>> {
    let mut out = Vec::new();
    for c in chosen {
        let pick = match &c.what {
            ChosenKind::Table(t) => Pick::Table(resolve_table(facts, short_id, t)?),
            ChosenKind::Schema(s) => Pick::Schema(s.clone()),
        };
        if let (Pick::Table(t), Some(r)) = (&pick, &c.rename)
            && *r == t.name
        {
            return Err(usage(format!(
                "--as {r} is the table's own name; to restore it in place leave out --as"
            )));
        }
        out.push(Resolved {
            pick,
            rename: c.rename.clone(),
        });
    }
    let beside = out.iter().filter(|r| r.rename.is_some()).count();
    if beside != 0 && beside != out.len() {
        return Err(usage(
            "give --as for every --table/--schema (beside) or for none (in place)",
        ));
    }
    Ok(out)
}

// ------------------------------------------------------------ where

/// Where the restore goes and who writes there.
struct Where {
    target: ConnConfig,
    discovery: Discovery,
    /// The source's quiesce settings, when the target is its database.
    quiesce: Option<Quiesce>,
    /// The configured source's name, for the quiescer.
    source_name: Option<String>,
}

/// Decides the target: `--target`, else the configured source's database.
/// The source's writers are quiesced (in place) only when the target is its
/// database on the same running server, as the servers say
/// ([`identity::relation`]), never by comparing URLs.
async fn choose(ctx: &Ctx, req: &Request, snap: &SnapshotRef) -> Result<Where> {
    let (src_name, source) = snapshot_source(ctx, req.source.as_deref(), snap).await?;
    let discovery = source
        .as_ref()
        .map(|s| s.discovery.clone())
        .unwrap_or_default();
    let Some(url) = &req.target else {
        let Some(PgSource {
            conn,
            config: Some(src),
            ..
        }) = source
        else {
            return Err(usage(format!(
                "where to restore the tables of snapshot {}? pass --target \
                 postgresql://user@host:port/db, or --source NAME of a configured PostgreSQL source",
                snap.short_id()
            )));
        };
        return Ok(Where {
            target: conn,
            discovery,
            quiesce: src.quiesce.clone(),
            source_name: src_name,
        });
    };
    let target = ConnConfig::parse(url).map_err(conn_err)?;
    let mut quiesce = None;
    if let Some(PgSource {
        conn,
        config: Some(src),
        name,
        ..
    }) = &source
    {
        // Whether the target is the source's database is asked of both
        // servers; when either cannot answer, nobody knows whether the
        // writers must stop, so nothing is done (as `restore postgres`
        // refuses without --source-unreachable). A refused target: exit 2,
        // as docs/exit-codes.md says for an identity that cannot be read.
        let (s, t) = tokio::join!(identity::read(conn), identity::read(&target));
        let (s, t) = match (s, t) {
            (Ok(s), Ok(t)) => (s, t),
            (Err(e), _) | (_, Err(e)) => {
                return Err(error_with_hint(
                    Kind::Usage,
                    format!(
                        "cannot tell whether {} is source {name}'s database (its server identity \
                         cannot be read: {e}); nothing was changed",
                        target.display_url()
                    ),
                    "make both servers reachable and pg_control_system() executable for the \
                     restoring role, then run the command again",
                ));
            }
        };
        if matches!(identity::relation(&s, &t), Relation::SameServer { .. }) {
            quiesce = src.quiesce.clone();
        }
    }
    Ok(Where {
        target,
        discovery,
        quiesce,
        source_name: src_name,
    })
}

// ------------------------------------------------------------ the flow

/// Restores the chosen tables or schemas of `req.snapshot`. Resolves when
/// done, or when `cancel` resolves first (exit 130; in place, the one
/// transaction is rolled back by pg_restore's end and the writers come
/// back; beside, the scratch database is dropped). Verification
/// differences are in the outcome ([`Outcome::failure`]), not an error, so
/// that the caller can show them.
pub async fn restore_tables(
    ctx: &Ctx,
    req: &Request,
    cancel: impl std::future::Future<Output = ()>,
) -> Result<Outcome> {
    // Several steps select on it; it is polled to completion at most once
    // (the flow returns when it fires).
    tokio::pin!(cancel);
    let repo = ctx.open().await?;
    let snap = repo
        // `latest`: the newest logical snapshot, not a newer base backup.
        .find_snapshot_of(&req.snapshot, req.source.as_deref(), Some(POSTGRES_KIND))
        .await?;
    let facts = postgres_facts(&snap)?;
    let chosen = resolve(&facts, snap.short_id(), &req.chosen)?;
    let place = choose(ctx, req, &snap).await?;
    let beside = chosen.iter().all(|c| c.rename.is_some());

    let client = place.target.connect().await.map_err(conn_err)?;
    let num = lifeboat_postgres::conn::server_version_num(&client)
        .await
        .map_err(|e| Error::failure(lifeboat_postgres::conn::pg_message(&e)))?;
    let tools = tools::discover(tools::server_major(num), &place.discovery)
        .map_err(|e| usage(e.to_string()))?;
    if beside {
        refuse_taken_names(&client, &chosen, &place.target).await?;
    }
    drop(client);

    let staging = req.staging_dir.clone().unwrap_or_else(std::env::temp_dir);
    let size = snap.snapshot.items.first().map(|i| i.size).unwrap_or(0);
    dump::check_staging_space(&staging, size).map_err(dump_err)?;
    let started = Instant::now();
    let staged = tokio::select! {
        r = stage(ctx, &repo, &snap, &staging) => r?,
        _ = &mut cancel => return Err(interrupted("while staging the archive")),
    };
    let staging_seconds = started.elapsed().as_secs_f64();
    let toc = selective::read_toc(&tools, staged.path()).map_err(dump_err)?;
    let picks: Vec<Pick> = chosen.iter().map(|c| c.pick.clone()).collect();
    let selection = selective::select(&toc, &picks, !beside).map_err(|p| {
        usage(format!(
            "the archive of snapshot {} holds no {p}; nothing was changed",
            snap.short_id()
        ))
    })?;
    let shown = place.target.display_url();
    let mut outcome = Outcome {
        snapshot: snap.id.clone(),
        source: snap.snapshot.source.clone(),
        target: shown.clone(),
        mode: if beside { Mode::Beside } else { Mode::InPlace },
        tables: planned_tables(&facts, &chosen),
        schemas: chosen
            .iter()
            .filter_map(|c| match &c.pick {
                Pick::Schema(s) => Some((s.clone(), c.rename.clone().unwrap_or(s.clone()))),
                Pick::Table(_) => None,
            })
            .collect(),
        staging_seconds,
        restore_seconds: 0.0,
        verified: None,
        differences: Vec::new(),
        writers: "none",
    };
    let ctx_run = Run {
        ctx,
        req,
        tools: &tools,
        place: &place,
        staged: staged.path().to_path_buf(),
        selection: &selection,
        chosen: &chosen,
        encoding: &facts.encoding,
    };
    let started = Instant::now();
    if beside {
        tokio::select! {
            r = ctx_run.beside() => r?,
            _ = &mut cancel => {
                // The scratch database was left by the dropped future.
                drop_scratch_by_prefix(&place.target).await;
                return Err(interrupted("during the restore; nothing live was touched"));
            }
        }
        outcome.restore_seconds = started.elapsed().as_secs_f64();
        verify(&place.target, &mut outcome, req.no_verify).await?;
        return Ok(outcome);
    }
    let guard = tokio::select! {
        r = ctx_run.quiesce(&mut outcome) => r?,
        _ = &mut cancel => return Err(interrupted("while stopping the writers: nothing was restored")),
    };
    let restored = tokio::select! {
        r = ctx_run.in_place() => r,
        _ = &mut cancel => Err(interrupted("during the restore; its one transaction was rolled back, nothing was changed")),
    };
    if let Err(e) = restored {
        let how = match guard.resume().await {
            Ok(()) if outcome.writers == "resumed" => "; the writers were brought back",
            Ok(()) => "",
            Err(_) => "; bringing the writers back failed too",
        };
        return Err(e.context(format!(
            "restoring into {shown} failed in one transaction, so nothing was changed{how}"
        )));
    }
    outcome.restore_seconds = started.elapsed().as_secs_f64();
    verify_then_resume(ctx, &place, guard, &mut outcome, req.no_verify).await?;
    Ok(outcome)
}

/// In place, once restored: verifies, then brings the writers back, or
/// leaves them stopped when the tables differ from the snapshot (unless
/// `quiesce.resume_on_verify_failure`) or could not be checked.
async fn verify_then_resume(
    ctx: &Ctx,
    place: &Where,
    guard: Quiesced,
    outcome: &mut Outcome,
    no_verify: bool,
) -> Result<()> {
    let checked = verify(&place.target, outcome, no_verify).await;
    let resume_anyway = place
        .quiesce
        .as_ref()
        .is_some_and(|q| q.resume_on_verify_failure);
    match checked {
        Ok(()) if outcome.differences.is_empty() || resume_anyway => {
            guard
                .resume()
                .await
                .context("the tables were restored, but bringing the writers back failed")?;
        }
        Ok(()) => {
            if outcome.writers == "resumed" {
                outcome.writers = "left_stopped";
            }
            let hint = guard.leave_down();
            ctx.reporter()
                .note(&format!("to bring the writers back yourself: {hint}"));
        }
        Err(e) => {
            if outcome.writers == "resumed" {
                outcome.writers = "left_stopped";
            }
            let hint = guard.leave_down();
            return Err(e.context(format!(
                "the tables were restored but could not be checked; the writers are left \
                 stopped ({hint})"
            )));
        }
    }
    Ok(())
}

fn interrupted(what: &str) -> Error {
    Error::new(Kind::Interrupted, format!("interrupted {what}"))
}

/// The scratch databases of this process start with this (and its pid).
fn scratch_prefix() -> String {
    format!("lifeboat_scratch_{}_", std::process::id())
}

/// Drops this process's scratch databases (after a cancelled restore).
async fn drop_scratch_by_prefix(target: &ConnConfig) {
    let Ok(admin) = target.with_dbname("postgres").connect().await else {
        return;
    };
    let Ok(rows) = admin
        .query(
            "SELECT datname::text FROM pg_database WHERE starts_with(datname, $1)",
            &[&scratch_prefix()],
        )
        .await
    else {
        return;
    };
    for r in rows {
        let name: String = r.get(0);
        let _ = selective::drop_database(&target.with_dbname(name), "postgres").await;
    }
}

/// The tables restored and their names afterwards, with the row counts the
/// snapshot recorded for them.
fn planned_tables(facts: &Facts, chosen: &[Resolved]) -> Vec<RestoredTable> {
    let mut out = Vec::new();
    for c in chosen {
        let tables: Vec<&TableName> = match &c.pick {
            Pick::Table(t) => vec![t],
            Pick::Schema(s) => facts
                .tables
                .iter()
                .filter(|t| &t.table.schema == s && t.kind != TableKind::Partitioned)
                .map(|t| &t.table)
                .collect(),
        };
        for t in tables {
            let to = match (&c.pick, &c.rename) {
                (Pick::Table(_), Some(r)) => TableName::new(&t.schema, r),
                (Pick::Schema(_), Some(r)) => TableName::new(r, &t.name),
                (_, None) => t.clone(),
            };
            out.push(RestoredTable {
                from: t.to_string(),
                to: to.to_string(),
                expected_rows: facts.rows_of(&t.schema, &t.name),
                rows: None,
            });
        }
    }
    out
}

/// Refuses `--as` names that exist in the target: tables in their schema,
/// schemas by name.
async fn refuse_taken_names(
    client: &lifeboat_postgres::Client,
    chosen: &[Resolved],
    target: &ConnConfig,
) -> Result<()> {
    for c in chosen {
        let Some(new) = &c.rename else { continue };
        let taken = match &c.pick {
            Pick::Table(t) => {
                !selective::existing_relations(client, &t.schema, std::slice::from_ref(new))
                    .await
                    .map_err(dump_err)?
                    .is_empty()
            }
            Pick::Schema(_) => selective::schema_exists(client, new)
                .await
                .map_err(dump_err)?,
        };
        if taken {
            let what = match &c.pick {
                Pick::Table(t) => format!("{}.{new}", t.schema),
                Pick::Schema(_) => format!("schema {new}"),
            };
            return Err(error_with_hint(
                Kind::Usage,
                format!(
                    "--as {new}: {what} already exists in {}; nothing was changed",
                    target.display_url()
                ),
                "choose another name with --as, or drop the old copy first",
            ));
        }
    }
    Ok(())
}

/// Stages the whole archive into a temporary file (authenticating every
/// blob on the way): `pg_restore --list` and `--use-list` need a file.
async fn stage(
    ctx: &Ctx,
    repo: &Repository,
    snap: &SnapshotRef,
    staging: &std::path::Path,
) -> Result<tempfile::NamedTempFile> {
    let tmp = tempfile::Builder::new()
        .prefix("lifeboat-tables-")
        .suffix(".pgdump")
        .tempfile_in(staging)
        .with_context(|| format!("creating a staging file in {}", staging.display()))?;
    let f = tmp.reopen()?;
    let progress = Arc::new(Progress::default());
    let display = ctx
        .reporter()
        .progress(Arc::clone(&progress), "staging", false);
    let r = restore_item_part_to_file(repo, snap, None, &Part::All, f, progress).await;
    drop(display);
    r.with_context(|| {
        format!(
            "staging the archive of snapshot {} in {}; nothing was changed",
            snap.short_id(),
            staging.display()
        )
    })?;
    Ok(tmp)
}

/// What the two ways share once the archive is staged and filtered.
struct Run<'a> {
    ctx: &'a Ctx,
    req: &'a Request,
    tools: &'a PgTools,
    place: &'a Where,
    staged: PathBuf,
    selection: &'a Selection,
    chosen: &'a [Resolved],
    encoding: &'a str,
}

impl Run<'_> {
    /// pg_restore of the selection (`with_context`: and what it needs) into
    /// `into`.
    async fn pg_restore(
        &self,
        into: &ConnConfig,
        with_context: bool,
        opts: RestoreOptions,
    ) -> Result<()> {
        let list =
            selective::list_file(&self.selection.list_lines(with_context)).map_err(dump_err)?;
        let opts = RestoreOptions {
            list: Some(list.path().to_path_buf()),
            ..opts
        };
        let pr = PgRestore::spawn_file(self.tools, into, &self.staged, &opts).map_err(dump_err)?;
        pr.wait_async().await.map_err(dump_err)?;
        Ok(())
    }

    /// Beside: scratch database, rename, copy, drop the scratch database.
    async fn beside(&self) -> Result<()> {
        let name = format!(
            "{}{}",
            scratch_prefix(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        let scratch = self.place.target.with_dbname(name);
        dump::create_database_with(&scratch, "postgres", Some(self.encoding))
            .await
            .map_err(dump_err)
            .context("creating the scratch database")?;
        self.ctx.reporter().note(&format!(
            "restoring into the scratch database {} first",
            scratch.dbname
        ));
        let r = self.beside_in(&scratch).await;
        let dropped = selective::drop_database(&scratch, "postgres").await;
        match (r, dropped) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(e), Ok(())) => Err(e),
            (Ok(()), Err(d)) => Err(dump_err(d).context(format!(
                "the tables were restored, but dropping the scratch database {} failed: drop it yourself",
                scratch.dbname
            ))),
            (Err(e), Err(d)) => Err(e.context(format!(
                "(dropping the scratch database {} failed too: {d}; drop it yourself)",
                scratch.dbname
            ))),
        }
    }

    async fn beside_in(&self, scratch: &ConnConfig) -> Result<()> {
        self.pg_restore(
            scratch,
            true,
            RestoreOptions {
                clean: false,
                exit_on_error: true,
                ..RestoreOptions::default()
            },
        )
        .await
        .context("restoring the chosen tables into the scratch database")?;
        let client = scratch.connect().await.map_err(conn_err)?;
        let target = self.place.target.connect().await.map_err(conn_err)?;
        let mut sql = String::new();
        let mut copies = Vec::new();
        for c in self.chosen {
            let new = c.rename.as_deref().expect("beside: every pick is renamed");
            match &c.pick {
                Pick::Table(t) => {
                    let plan = selective::rename_plan(&client, t, new)
                        .await
                        .map_err(dump_err)?;
                    let names: Vec<String> = plan.iter().map(|r| r.to.clone()).collect();
                    let taken = selective::existing_relations(&target, &t.schema, &names)
                        .await
                        .map_err(dump_err)?;
                    if !taken.is_empty() {
                        return Err(error_with_hint(
                            Kind::Usage,
                            format!(
                                "restoring {t} as {new} would name its indexes or sequences {}, \
                                 which exist in schema {} of the target; nothing was changed",
                                taken.join(", "),
                                t.schema
                            ),
                            "choose another --as name",
                        ));
                    }
                    sql.push_str(&selective::rename_sql(&plan));
                    copies.push(Objects::Table(TableName::new(&t.schema, new)));
                }
                Pick::Schema(s) => {
                    sql.push_str(&format!(
                        "ALTER SCHEMA {} RENAME TO {};\n",
                        lifeboat_postgres::facts::quote_ident(s),
                        lifeboat_postgres::facts::quote_ident(new)
                    ));
                    copies.push(Objects::Schema(new.to_string()));
                }
            }
        }
        client
            .batch_execute(&sql)
            .await
            .map_err(|e| Error::failure(lifeboat_postgres::conn::pg_message(&e)))
            .context("renaming in the scratch database")?;
        drop(client);
        let (tools, from, to) = (
            self.tools.clone(),
            scratch.clone(),
            self.place.target.clone(),
        );
        tokio::task::spawn_blocking(move || {
            selective::copy_database_objects(&tools, &from, &to, &copies)
        })
        .await?
        .map_err(dump_err)
        .context("copying the renamed objects into the target (one transaction: nothing was added)")
    }

    /// The writers of the target, stopped (in place).
    async fn quiesce(&self, outcome: &mut Outcome) -> Result<Quiesced> {
        let q: Box<dyn Quiescer> = if self.req.no_quiesce {
            outcome.writers = "not_stopped";
            self.ctx.reporter().note(
                "WARNING: --no-quiesce: writers are NOT stopped; they keep writing into the tables being replaced",
            );
            Box::new(NoQuiesce)
        } else {
            quiesce::from_config(
                self.place.quiesce.as_ref(),
                self.place
                    .source_name
                    .as_deref()
                    .unwrap_or(outcome.source.as_str()),
                self.req.cluster.clone(),
                quiesce::stderr_notify(self.ctx.global.quiet),
            )?
        };
        if q.stops_writers() {
            outcome.writers = "resumed";
            self.ctx.reporter().note(&format!(
                "stopping the writers ({}); if this restore is killed, bring them back yourself: {}",
                q.describe(),
                q.manual_resume_hint()
            ));
        }
        Quiesced::stop(q).await
    }

    /// In place: the selection replaces the live objects in one transaction.
    async fn in_place(&self) -> Result<()> {
        self.pg_restore(
            &self.place.target,
            false,
            RestoreOptions {
                clean: true,
                single_transaction: true,
                exit_on_error: true,
                ..RestoreOptions::default()
            },
        )
        .await
    }
}

/// Checks each restored table's row count against the snapshot's facts
/// (for its name in the snapshot).
async fn verify(target: &ConnConfig, outcome: &mut Outcome, skip: bool) -> Result<()> {
    if skip {
        return Ok(());
    }
    let client = target.connect().await.map_err(conn_err)?;
    let names: Vec<TableName> = outcome
        .tables
        .iter()
        .map(|t| {
            let (s, n) = t.to.split_once('.').unwrap_or(("public", &t.to));
            TableName::new(s, n)
        })
        .collect();
    let counts = selective::count_rows(&client, &names)
        .await
        .map_err(dump_err)?;
    let mut diffs = Vec::new();
    for (t, n) in outcome.tables.iter_mut().zip(counts) {
        t.rows = n;
        match (t.expected_rows, n) {
            (_, None) => diffs.push(FactDiff {
                kind: DiffKind::MissingTable,
                subject: format!("table {} (from {})", t.to, t.from),
                expected: "present".into(),
                actual: "missing".into(),
            }),
            (Some(e), Some(a)) if e != a => diffs.push(FactDiff {
                kind: DiffKind::RowCount,
                subject: format!("table {} (from {})", t.to, t.from),
                expected: format!("{e} rows"),
                actual: format!("{a} rows"),
            }),
            _ => {}
        }
    }
    outcome.verified = Some(diffs.is_empty());
    outcome.differences = diffs;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn as_pairs_with_table_then_schema_in_order() {
        type Case<'a> = (
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
            Option<Vec<Chosen>>,
        );
        let t = |n: &str, r: Option<&str>| Chosen {
            what: ChosenKind::Table(n.into()),
            rename: r.map(str::to_string),
        };
        let sc = |n: &str, r: Option<&str>| Chosen {
            what: ChosenKind::Schema(n.into()),
            rename: r.map(str::to_string),
        };
        let cases: Vec<Case> = vec![
            (
                &["a", "b"],
                &[],
                &[],
                Some(vec![t("a", None), t("b", None)]),
            ),
            (
                &["a", "b"],
                &[],
                &["a2", "b2"],
                Some(vec![t("a", Some("a2")), t("b", Some("b2"))]),
            ),
            (
                &["a"],
                &["app"],
                &["a2", "app2"],
                Some(vec![t("a", Some("a2")), sc("app", Some("app2"))]),
            ),
            (&["a", "b"], &[], &["a2"], None),
            (&[], &[], &[], None),
            (&["a"], &[], &["x.y"], None),
            (&["a"], &[], &[""], None),
        ];
        for (tables, schemas, renames, want) in cases {
            let got = pair(&s(tables), &s(schemas), &s(renames));
            match want {
                Some(w) => assert_eq!(got.unwrap(), w, "{tables:?} {schemas:?} {renames:?}"),
                None => assert_eq!(
                    got.unwrap_err().kind,
                    Kind::Usage,
                    "{tables:?} {schemas:?} {renames:?}"
                ),
            }
        }
    }

    fn facts(tables: &[(&str, &str, TableKind)], partial: bool) -> Facts {
        let doc = serde_json::json!({
            "format": 1, "snapshot_id": "x", "taken_at": "2026-01-01T00:00:00Z",
            "database": "d", "server_version": "15", "server_version_num": 150000,
            "database_size_bytes": 1, "encoding": "UTF8",
            "scope": {"tables": if partial { serde_json::json!([{"schema": "public", "name": "a"}]) } else { serde_json::json!([]) }, "schema_only": false},
            "tables": tables.iter().map(|(s, n, k)| serde_json::json!({
                "table": {"schema": s, "name": n}, "kind": k, "rows": 3
            })).collect::<Vec<_>>(),
            "queries": [],
        });
        serde_json::from_value(doc).unwrap()
    }

    #[test]
    fn names_resolve_against_the_snapshot() {
        let f = facts(
            &[
                ("app", "a", TableKind::Table),
                ("public", "a", TableKind::Table),
                ("app", "b", TableKind::Table),
                ("x", "b", TableKind::Table),
                ("public", "p", TableKind::Partitioned),
            ],
            false,
        );
        assert_eq!(
            resolve_table(&f, "s", "a").unwrap(),
            TableName::new("public", "a")
        );
        assert_eq!(
            resolve_table(&f, "s", "app.a").unwrap(),
            TableName::new("app", "a")
        );
        for bad in ["b", "nope", "public.b", "p"] {
            let e = resolve_table(&f, "s", bad).unwrap_err();
            assert_eq!(e.kind, Kind::Usage, "{bad}");
        }
        assert!(
            resolve_table(&f, "s", "b")
                .unwrap_err()
                .message
                .contains("more than one schema")
        );
        let partial = facts(&[("public", "a", TableKind::Table)], true);
        let e = resolve_table(&partial, "s", "c").unwrap_err();
        assert!(e.message.contains("partial snapshot"), "{}", e.message);
    }
}
