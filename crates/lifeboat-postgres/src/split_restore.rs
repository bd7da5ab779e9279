//! Parallel restore of a staged archive that spreads the rows of its largest
//! tables over `jobs` connections.
//!
//! Why not just `pg_restore --jobs N`: it runs items in parallel, but one
//! table's `COPY` is one item on one connection. When one table holds most of
//! the rows' bytes (Kubernaut's `incident_embeddings`: 1536 floats a row, 1.7 of
//! a 2.5 GB archive), the restore takes as long as that one `COPY`, and the
//! other jobs sit idle once the rest is done. Loading that table over two
//! connections halves its time.
//!
//! pg_restore still runs every statement; Lifeboat only hands out the split
//! tables' rows ([`tables_to_split`] picks them by their size at backup):
//! 1. The drops that `--clean --if-exists` would run, read from pg_restore's own
//!    script output (`--clean --if-exists -f -` over the pre- and post-data
//!    items, so a large object's `lo_unlink` is among them) and run in its
//!    order, one statement at a time. A failing drop is tolerated as pg_restore
//!    tolerates it (see [`crate::dump::classify_restore_errors`]): if it mattered,
//!    the CREATE after it fails. (pg_restore cannot drop for a partial list:
//!    a table referenced by a foreign key it was not asked to drop stays.)
//! 2. `pg_restore --jobs N --use-list`: the pre-data section.
//! 3. At the same time:
//!    - `pg_restore --jobs N --use-list`: every other data item and the
//!      post-data items that do not touch a split table, in pg_restore's own
//!      order (a table's indexes right after its rows);
//!    - `pg_restore --data-only --use-list -f -` writes the split tables'
//!      `COPY … FROM stdin;` blocks. Lifeboat cuts the rows into batches of
//!      about 1 MiB at row ends, and N connections take batches as they become
//!      free, each running `COPY … FROM STDIN`. In COPY's text format a row
//!      ends with a newline and no row is `\.`, so cutting at newlines never
//!      splits a row.
//! 4. `pg_restore --jobs N --use-list`: the post-data items that touch a split
//!    table (`touching`: its indexes, constraints, triggers, foreign keys to
//!    it, and what names those indexes), after its rows are in.
//!
//! The result holds the same objects and rows as `pg_restore --jobs`; only the
//! physical order of a split table's rows differs. [`plan`] returns `None`
//! when the archive's items do not fall cleanly into the three sections or no
//! table qualifies; the caller then runs plain `pg_restore --jobs`.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::SinkExt;
use tokio::sync::{Mutex, mpsc};

use crate::archive::{ArchiveLayout, DataBlock, DataEvent, read_table_data};
use crate::conn::ConnConfig;
use crate::dump::{
    DumpError, KillOnDrop, PgRestore, RestoreErrorEntry, RestoreOptions, RestoreOutcome,
    StderrSink, enlarge_pipe, status_text,
};
use crate::facts::TableName;
use crate::selective::list_file;
use crate::tools::PgTools;

/// Rows are handed to the connections in batches of about this many bytes.
const BATCH_BYTES: usize = 1 << 20;

/// What a split restore runs, read from the archive by pg_restore itself.
#[derive(Debug)]
pub struct Plan {
    /// The session settings of pg_restore's script header (`SET …`, `SELECT
    /// pg_catalog.set_config(…)`), run on every connection that loads rows.
    session: Vec<String>,
    /// `--clean --if-exists`'s drop statements, in pg_restore's order.
    drops: Vec<String>,
    /// Pass 2: the pre-data section.
    pre: Vec<String>,
    /// Pass 3, by pg_restore: every other data item, and the post-data items
    /// that do not touch a split table.
    main: Vec<String>,
    /// Pass 3, by Lifeboat beside it: the TABLE DATA items of the split tables.
    split_data: Vec<String>,
    /// Pass 4: the post-data items that touch a split table (or whose
    /// statement could not be looked at: after all rows is always right).
    last: Vec<String>,
    /// The tables whose rows are spread over the jobs.
    split: Vec<TableName>,
}

impl Plan {
    /// The tables whose rows Lifeboat spreads over the jobs itself.
    pub fn split_tables(&self) -> &[TableName] {
        &self.split
    }

    /// The dump ids of the split tables' TABLE DATA items.
    pub fn split_dump_ids(&self) -> BTreeSet<i64> {
        self.split_data
            .iter()
            .filter_map(|l| item_id(l).parse().ok())
            .collect()
    }
}

/// Where the split tables' rows come from.
pub enum RowSource {
    /// `pg_restore --data-only` reads their blocks from the staged archive.
    Archive,
    /// Their data blocks' bytes, one block after another in the order of
    /// `blocks`, from `reader` (the repository, when the staged archive has
    /// holes where these blocks are). Read with `layout`.
    Blocks {
        reader: Box<dyn std::io::Read + Send>,
        layout: ArchiveLayout,
        blocks: Vec<DataBlock>,
    },
}

/// Which tables are worth splitting: those holding at least `1 / (jobs + 1)` of
/// all table bytes (with two jobs, a third). A smaller table finishes within
/// the time pg_restore's other jobs need anyway.
pub fn tables_to_split(sizes: &[(TableName, i64)], jobs: u32) -> Vec<TableName> {
    let total: i64 = sizes.iter().map(|(_, s)| (*s).max(0)).sum();
    if total <= 0 || jobs < 2 {
        return Vec::new();
    }
    sizes
        .iter()
        .filter(|(_, s)| (*s as i128) * (jobs as i128 + 1) >= total as i128)
        .map(|(t, _)| t.clone())
        .collect()
}

/// Reads the archive's table of contents and pg_restore's scripts into a
/// [`Plan`] that spreads the rows of `split` over the jobs, or `None` when a
/// split restore does not fit this archive (then run plain `pg_restore
/// --jobs`). Blocking: it runs pg_restore (without a connection) six times.
pub fn plan(
    tools: &PgTools,
    archive: &Path,
    split: &[TableName],
) -> Result<Option<Plan>, DumpError> {
    if split.is_empty() {
        return Ok(None);
    }
    let all = list_items(tools, archive, None)?;
    let pre = list_items(tools, archive, Some("pre-data"))?;
    let data = list_items(tools, archive, Some("data"))?;
    let post = list_items(tools, archive, Some("post-data"))?;
    fn ids(v: &[String]) -> BTreeSet<&str> {
        v.iter().map(|l| item_id(l)).collect()
    }
    let mut sectioned = ids(&pre);
    sectioned.extend(ids(&data));
    sectioned.extend(ids(&post));
    if sectioned != ids(&all) || pre.len() + data.len() + post.len() != all.len() {
        tracing::info!(
            "the archive's items do not split into pre-data, data and post-data; plain pg_restore --jobs"
        );
        return Ok(None);
    }
    // The split tables' data items, by dump id: read from the TOC itself,
    // because the list lines print names unquoted.
    let toc = std::fs::File::open(archive)
        .and_then(|f| crate::archive::table_data_ids(BufReader::new(f)))
        .map_err(|source| DumpError::ReadArchive {
            path: archive.to_path_buf(),
            source,
        })?;
    let Some(toc) = toc else {
        tracing::info!(
            "the archive's table of contents is not one Lifeboat reads; plain pg_restore --jobs"
        );
        return Ok(None);
    };
    let split_ids: Vec<(i64, &TableName)> = split
        .iter()
        .filter_map(|t| Some((*toc.get(&(t.schema.clone(), t.name.clone()))?, t)))
        .collect();
    let mut split_data = Vec::new();
    let mut main = Vec::new();
    let mut found = Vec::new();
    for l in data {
        let id = item_id(&l).parse::<i64>().ok();
        match split_ids
            .iter()
            .find(|(i, _)| Some(*i) == id)
            .map(|(_, t)| *t)
        {
            Some(t) => {
                found.push(t.clone());
                split_data.push(l);
            }
            None => main.push(l),
        }
    }
    if split_data.is_empty() {
        return Ok(None);
    }
    let script = run_pg_restore(
        tools,
        &[
            "--schema-only".as_ref(),
            "--section=post-data".as_ref(),
            "--file=-".as_ref(),
            archive.as_os_str(),
        ],
    )?;
    let blocks = script_blocks(&script);
    let touched = touching(&blocks, &found);
    let mut last = Vec::new();
    let post_items = post.clone();
    for l in post {
        let key = list_key(&l);
        let b = blocks.iter().position(|b| b.key == key);
        match b {
            Some(i) if !touched.contains(&i) => main.push(l),
            _ => last.push(l),
        }
    }
    // The drops of every item outside the data section. Not `--schema-only`:
    // up to PostgreSQL 16 pg_restore counts a large object's BLOB item (in
    // pre-data) as data, so `--schema-only` leaves out its `lo_unlink`, and
    // pass 2's `lo_create` then fails on a target that holds the object. A
    // list of the pre- and post-data items keeps the rows out of the script.
    let mut schema_items = pre.clone();
    schema_items.extend(post_items);
    let schema_list = list_file(&schema_items)?;
    let script = run_pg_restore(
        tools,
        &[
            "--clean".as_ref(),
            "--if-exists".as_ref(),
            "--use-list".as_ref(),
            schema_list.path().as_os_str(),
            "--file=-".as_ref(),
            archive.as_os_str(),
        ],
    )?;
    let (session, drops) = parse_clean_script(&script);
    Ok(Some(Plan {
        session,
        drops,
        pre,
        main,
        split_data,
        last,
        split: found,
    }))
}

/// Runs the passes of the module docs into `cfg`'s database.
pub async fn restore(
    tools: &PgTools,
    cfg: &ConnConfig,
    archive: &Path,
    opts: &RestoreOptions,
    plan: &Plan,
    rows: RowSource,
) -> Result<RestoreOutcome, DumpError> {
    let jobs = opts.jobs.max(1) as usize;
    let mut outcome = RestoreOutcome {
        split_tables: plan.split.iter().map(|t| t.to_string()).collect(),
        ..RestoreOutcome::default()
    };
    let t = std::time::Instant::now();

    // 1. drops
    let client = cfg.connect().await?;
    client
        .batch_execute(&plan.session.join("\n"))
        .await
        .map_err(sql("setting up the session for the drops"))?;
    for stmt in &plan.drops {
        if let Err(e) = client.batch_execute(stmt).await {
            if e.as_db_error().is_none() {
                return Err(sql(format!("dropping old objects ({stmt})"))(e));
            }
            tracing::info!(error = %crate::conn::pg_message(&e), command = %stmt, "tolerated error while dropping old objects");
            outcome.tolerated_errors.push(RestoreErrorEntry {
                message: crate::conn::pg_message(&e),
                command: stmt.clone(),
                clean_phase: true,
            });
        }
    }
    drop(client);
    tracing::info!(
        seconds = t.elapsed().as_secs_f64(),
        statements = plan.drops.len(),
        "split restore: drops done"
    );

    // 2. pre-data
    pass(tools, cfg, archive, opts, &plan.pre, &mut outcome).await?;
    tracing::info!(
        seconds = t.elapsed().as_secs_f64(),
        "split restore: pre-data done"
    );

    // 3. pg_restore's share beside the split tables' rows
    let list_rows = list_file(&plan.split_data)?;
    let mut share = RestoreOutcome::default();
    tokio::try_join!(
        pass(tools, cfg, archive, opts, &plan.main, &mut share),
        load_rows(tools, cfg, archive, &plan.session, &list_rows, rows, jobs),
    )?;
    outcome.tolerated_errors.extend(share.tolerated_errors);
    tracing::info!(
        seconds = t.elapsed().as_secs_f64(),
        "split restore: rows loaded"
    );

    // 4. what touches the split tables
    pass(tools, cfg, archive, opts, &plan.last, &mut outcome).await?;
    tracing::info!(
        seconds = t.elapsed().as_secs_f64(),
        "split restore: post-data done"
    );
    Ok(outcome)
}

/// One object's statements in a pg_restore script, under its `-- Name: …;
/// Type: …; Schema: …; Owner: …` comment.
struct Block {
    /// The comment's fields as in a `--list` line: `desc schema tag owner`,
    /// whitespace-normalised (see [`list_key`]).
    key: String,
    /// `Type:`.
    desc: String,
    /// `Name:` (the tag; an index's name for an INDEX).
    tag: String,
    sql: String,
}

/// Splits a `--schema-only` script into its object blocks.
fn script_blocks(script: &str) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::new();
    for line in script.lines() {
        let header = line
            .strip_prefix("-- Name: ")
            .and_then(|rest| parse_header(rest));
        if let Some((tag, desc, schema, owner)) = header {
            let key = normalise(&format!("{desc} {schema} {tag} {owner}"));
            out.push(Block {
                key,
                desc: desc.to_string(),
                tag: tag.to_string(),
                sql: String::new(),
            });
        } else if let Some(b) = out.last_mut()
            && !line.starts_with("--")
        {
            b.sql.push_str(line);
            b.sql.push('\n');
        }
    }
    out
}

/// `tag; Type: desc; Schema: ns; Owner: owner` → its four fields.
fn parse_header(rest: &str) -> Option<(&str, &str, &str, &str)> {
    let (tag, rest) = rest.split_once("; Type: ")?;
    let (desc, rest) = rest.split_once("; Schema: ")?;
    let (schema, owner) = rest.split_once("; Owner:")?;
    Some((tag, desc, schema, owner.trim()))
}

/// The blocks (indexes into `blocks`) that mention a split table, or an index
/// of one, found transitively: an ATTACH or COMMENT names the index, not its table.
///
/// Deliberately coarse: a block "mentions" a name when the name appears
/// anywhere in its statements, unqualified and as a plain substring. A block
/// taken for touching when it does not only waits for the split tables' rows;
/// one missed would run too early (a trigger would fire on the loaded rows).
fn touching(blocks: &[Block], tables: &[TableName]) -> BTreeSet<usize> {
    let mut names: Vec<String> = tables.iter().flat_map(|t| spellings(&t.name)).collect();
    let mut hit = BTreeSet::new();
    loop {
        let before = hit.len();
        for (i, b) in blocks.iter().enumerate() {
            if hit.contains(&i) || !names.iter().any(|n| b.sql.contains(n.as_str())) {
                continue;
            }
            hit.insert(i);
            if b.desc == "INDEX" {
                names.extend(spellings(&b.tag));
            }
        }
        if hit.len() == before {
            return hit;
        }
    }
}

/// An identifier as it can appear in pg_dump's SQL: as is, and with inner
/// double quotes doubled (inside a quoted identifier).
fn spellings(name: &str) -> Vec<String> {
    let mut v = vec![name.to_string()];
    if name.contains('"') {
        v.push(name.replace('"', "\"\""));
    }
    v
}

/// One `pg_restore --jobs --use-list` pass over `items`, without `--clean`
/// (the drops were run); its tolerated errors go into `outcome`.
async fn pass(
    tools: &PgTools,
    cfg: &ConnConfig,
    archive: &Path,
    opts: &RestoreOptions,
    items: &[String],
    outcome: &mut RestoreOutcome,
) -> Result<(), DumpError> {
    let list = list_file(items)?;
    let o = RestoreOptions {
        clean: false,
        list: Some(list.path().to_path_buf()),
        ..opts.clone()
    };
    let done = PgRestore::spawn_file(tools, cfg, archive, &o)?
        .wait_async()
        .await?;
    outcome.tolerated_errors.extend(done.tolerated_errors);
    Ok(())
}

/// One batch of rows of one table.
struct Batch {
    /// Index of the table in pg_restore's output (a new COPY starts when it changes).
    table: usize,
    /// `COPY … FROM stdin` without the semicolon.
    copy: Arc<str>,
    rows: Bytes,
}

/// Pass 3: the split tables' rows, cut into batches by a reader thread (from
/// `pg_restore --data-only` over `list`, or from the blocks of `rows`), loaded
/// by `jobs` connections.
async fn load_rows(
    tools: &PgTools,
    cfg: &ConnConfig,
    archive: &Path,
    session: &[String],
    list: &tempfile::NamedTempFile,
    rows: RowSource,
    jobs: usize,
) -> Result<(), DumpError> {
    let (tx, rx) = mpsc::channel::<Batch>(2 * jobs);
    let rx = Arc::new(Mutex::new(rx));
    let session = session.join("\n");
    let load = || async {
        let workers = (0..jobs).map(|_| copy_worker(cfg, &session, Arc::clone(&rx)));
        let loaded = futures_util::future::try_join_all(workers).await;
        // On an error the other workers were dropped with their connections
        // (the server aborts their COPY); closing the channel stops the reader.
        rx.lock().await.close();
        loaded
    };
    let (blocks_reader, layout, blocks) = match rows {
        RowSource::Blocks {
            reader,
            layout,
            blocks,
        } => (reader, layout, blocks),
        RowSource::Archive => {
            return load_rows_from_pg_restore(tools, archive, list.path(), tx, load).await;
        }
    };
    let reader = std::thread::Builder::new()
        .name("lifeboat-rows".into())
        .spawn(move || {
            let mut r = blocks_reader;
            for (i, b) in blocks.iter().enumerate() {
                block_batches(&mut r, &layout, b, i + 1, BATCH_BYTES, |batch| {
                    tx.blocking_send(batch).is_ok()
                })?;
                if tx.is_closed() {
                    break;
                }
            }
            Ok::<(), String>(())
        })
        .map_err(|e| DumpError::Spawn {
            program: "a row reader thread".into(),
            source: e,
        })?;
    let loaded = load().await;
    let read = tokio::task::spawn_blocking(move || reader.join())
        .await
        .map_err(|e| DumpError::Failed {
            program: "the row reader".into(),
            status: e.to_string(),
            stderr: String::new(),
        })?
        .unwrap_or_else(|_| Err("the row reader panicked".into()));
    loaded?;
    read.map_err(|e| DumpError::Failed {
        program: "reading rows from the repository".into(),
        status: "its data could not be read".into(),
        stderr: format!(
            "{e}; restore with --whole-tables (plain pg_restore --jobs) and report this"
        ),
    })?;
    Ok(())
}

/// Cuts one TABLE DATA block's rows into batches of about `batch_bytes`,
/// ending at row ends (a raw newline ends a row in COPY's text format), and
/// calls `send` with each; `table` numbers the block. Stops, without error,
/// when `send` returns false.
fn block_batches(
    r: &mut dyn std::io::Read,
    layout: &ArchiveLayout,
    block: &DataBlock,
    table: usize,
    batch_bytes: usize,
    mut send: impl FnMut(Batch) -> bool,
) -> Result<(), String> {
    let copy = block
        .copy
        .as_deref()
        .map(str::trim_end)
        .and_then(|c| c.strip_suffix(" FROM stdin;"))
        .ok_or_else(|| {
            format!(
                "the data of {}.{} has no COPY statement in the archive",
                block.schema, block.tag
            )
        })?;
    let copy: Arc<str> = format!("{copy} FROM STDIN").into();
    let mut rows: Vec<u8> = Vec::with_capacity(batch_bytes + (64 << 10));
    let mut open = true;
    read_table_data(r, layout, block, |e| {
        let end = match e {
            DataEvent::Rows(b) => {
                rows.extend_from_slice(b);
                false
            }
            DataEvent::End => true,
        };
        let cut = if end {
            rows.len()
        } else if rows.len() >= batch_bytes {
            match rows.iter().rposition(|&c| c == b'\n') {
                Some(i) => i + 1,
                None => return true,
            }
        } else {
            return true;
        };
        if cut == 0 {
            return true;
        }
        let rest = rows.split_off(cut);
        let full = std::mem::replace(&mut rows, {
            let mut v = Vec::with_capacity(batch_bytes + (64 << 10));
            v.extend_from_slice(&rest);
            v
        });
        open = send(Batch {
            table,
            copy: Arc::clone(&copy),
            rows: Bytes::from(full),
        });
        open
    })?;
    if open && !rows.is_empty() {
        return Err(format!(
            "the data of {}.{} ends inside a row",
            block.schema, block.tag
        ));
    }
    Ok(())
}

/// Pass 3 with the rows from `pg_restore --data-only --use-list list -f -`.
async fn load_rows_from_pg_restore<F, Fut>(
    tools: &PgTools,
    archive: &Path,
    list: &Path,
    tx: mpsc::Sender<Batch>,
    load: F,
) -> Result<(), DumpError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<()>, DumpError>>,
{
    let mut cmd = crate::tools::child_command(&tools.pg_restore);
    cmd.arg("--data-only")
        .arg("--use-list")
        .arg(list)
        .arg("--file=-")
        .arg(archive)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| DumpError::Spawn {
        program: tools.pg_restore.clone(),
        source: e,
    })?;
    let mut kill = KillOnDrop::new(child.id());
    let mut stderr = StderrSink::start(child.stderr.take().expect("stderr is piped"));
    let stdout = child.stdout.take().expect("stdout is piped");
    {
        use std::os::fd::AsRawFd;
        enlarge_pipe(stdout.as_raw_fd());
    }
    let reader = std::thread::Builder::new()
        .name("lifeboat-rows".into())
        .spawn(move || split_copy_blocks(stdout, BATCH_BYTES, |b| tx.blocking_send(b).is_ok()))
        .map_err(|e| DumpError::Spawn {
            program: "a row reader thread".into(),
            source: e,
        })?;
    let loaded = load().await;
    if loaded.is_err() {
        let _ = child.kill();
    }
    let read = tokio::task::spawn_blocking(move || reader.join())
        .await
        .map_err(|e| DumpError::Failed {
            program: "the row reader".into(),
            status: e.to_string(),
            stderr: String::new(),
        })?
        .unwrap_or_else(|_| Err("the row reader panicked".into()));
    if read.is_err() {
        // The reader stopped reading: pg_restore may be blocked on a full pipe.
        let _ = child.kill();
    }
    let status = child.wait().map_err(|e| DumpError::Wait {
        program: "pg_restore".into(),
        source: e,
    })?;
    kill.disarm();
    let stderr = stderr.finish();
    loaded?;
    read.map_err(|e| DumpError::Failed {
        program: "pg_restore --data-only".into(),
        status: "its output could not be read".into(),
        stderr: format!(
            "{e}; restore with --whole-tables (plain pg_restore --jobs) and report this"
        ),
    })?;
    if !status.success() {
        return Err(DumpError::Failed {
            program: "pg_restore --data-only".into(),
            status: status_text(status),
            stderr,
        });
    }
    Ok(())
}

/// Takes batches until there are none and loads them, one COPY per run of
/// batches of the same table.
async fn copy_worker(
    cfg: &ConnConfig,
    session: &str,
    rx: Arc<Mutex<mpsc::Receiver<Batch>>>,
) -> Result<(), DumpError> {
    let client = cfg.connect().await?;
    client
        .batch_execute(session)
        .await
        .map_err(sql("setting up a loading session"))?;
    let mut current: Option<(usize, Arc<str>, _)> = None;
    loop {
        let next = rx.lock().await.recv().await;
        let Some(b) = next else { break };
        if current.as_ref().map(|c| c.0) != Some(b.table) {
            if let Some((_, copy, sink)) = current.take() {
                finish(sink, &copy).await?;
            }
            let sink = client
                .copy_in::<_, Bytes>(&*b.copy)
                .await
                .map_err(sql(format!("starting {}", b.copy)))?;
            current = Some((b.table, Arc::clone(&b.copy), Box::pin(sink)));
        }
        let (_, copy, sink) = current.as_mut().expect("a COPY was started");
        sink.send(b.rows)
            .await
            .map_err(sql(format!("loading rows ({copy})")))?;
    }
    if let Some((_, copy, sink)) = current.take() {
        finish(sink, &copy).await?;
    }
    Ok(())
}

async fn finish(
    mut sink: std::pin::Pin<Box<tokio_postgres::CopyInSink<Bytes>>>,
    copy: &str,
) -> Result<(), DumpError> {
    sink.as_mut()
        .finish()
        .await
        .map(|_| ())
        .map_err(sql(format!("finishing {copy}")))
}

/// Reads pg_restore's plain-format data output and calls `send` with batches of
/// whole rows (about `batch_bytes` each) per COPY block. Stops early when
/// `send` returns false (the loaders are gone). Anything but comments, session
/// settings and COPY blocks is an error: this reader must not skip a statement.
fn split_copy_blocks(
    out: impl std::io::Read,
    batch_bytes: usize,
    mut send: impl FnMut(Batch) -> bool,
) -> Result<(), String> {
    let mut r = BufReader::with_capacity(1 << 20, out);
    let mut line = Vec::new();
    let mut table = 0usize;
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).map_err(|e| e.to_string())? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let t = text.trim_end_matches('\n');
        if let Some(copy) = t
            .strip_prefix("COPY ")
            .and_then(|_| t.strip_suffix(" FROM stdin;"))
        {
            let copy: Arc<str> = format!("{copy} FROM STDIN").into();
            table += 1;
            let mut rows = Vec::with_capacity(batch_bytes + (64 << 10));
            loop {
                let start = rows.len();
                let n = r.read_until(b'\n', &mut rows).map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err(format!("{copy}: the output ended inside its rows"));
                }
                let end = &rows[start..] == b"\\.\n";
                if end {
                    rows.truncate(start);
                }
                if (end && !rows.is_empty()) || rows.len() >= batch_bytes {
                    let full =
                        std::mem::replace(&mut rows, Vec::with_capacity(batch_bytes + (64 << 10)));
                    let b = Batch {
                        table,
                        copy: Arc::clone(&copy),
                        rows: Bytes::from(full),
                    };
                    if !send(b) {
                        return Ok(());
                    }
                }
                if end {
                    break;
                }
            }
        } else if t.is_empty()
            || t.starts_with("--")
            || t.starts_with('\\')
            || is_session_setting(t)
        {
            continue;
        } else {
            return Err(format!("unexpected statement in the data output: {t}"));
        }
    }
}

/// A line of pg_restore's script header that sets up the session (`SET …`,
/// `SELECT pg_catalog.set_config(…)`).
fn is_session_setting(line: &str) -> bool {
    line.starts_with("SET ") || line.starts_with("SELECT pg_catalog.set_config(")
}

/// Splits pg_restore's `--clean --if-exists` script into its session header
/// and its drop statements (everything from the header to the first object
/// comment `--`). psql meta-commands (`\restrict`) are left out.
fn parse_clean_script(script: &str) -> (Vec<String>, Vec<String>) {
    let mut session = Vec::new();
    let mut drops = Vec::new();
    let mut stmt = String::new();
    let mut in_drops = false;
    for line in script.lines() {
        if !in_drops {
            if is_session_setting(line) {
                session.push(line.to_string());
                continue;
            }
            if line.is_empty() || line.starts_with('\\') {
                continue;
            }
            if line.starts_with("--") {
                if session.is_empty() {
                    continue;
                }
                break;
            }
            in_drops = true;
        }
        if stmt.is_empty() && (line == "--" || line.starts_with("-- ")) {
            break;
        }
        if stmt.is_empty() && line.is_empty() {
            continue;
        }
        if !stmt.is_empty() {
            stmt.push('\n');
        }
        stmt.push_str(line);
        if line.trim_end().ends_with(';') {
            drops.push(std::mem::take(&mut stmt));
        }
    }
    if !stmt.trim().is_empty() {
        drops.push(stmt);
    }
    (session, drops)
}

/// `pg_restore --list` lines (comments dropped) of the whole archive or one section.
fn list_items(
    tools: &PgTools,
    archive: &Path,
    section: Option<&str>,
) -> Result<Vec<String>, DumpError> {
    let section = section.map(|s| format!("--section={s}"));
    let mut args: Vec<&std::ffi::OsStr> = vec!["--list".as_ref()];
    if let Some(s) = &section {
        args.push(s.as_ref());
    }
    args.push(archive.as_os_str());
    let out = run_pg_restore(tools, &args)?;
    Ok(out
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
        .map(str::to_string)
        .collect())
}

fn run_pg_restore(tools: &PgTools, args: &[&std::ffi::OsStr]) -> Result<String, DumpError> {
    let out = crate::tools::child_command(&tools.pg_restore)
        .args(args)
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
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The dump id of a list line (`3626; 0 16435 TABLE DATA public t owner`).
fn item_id(line: &str) -> &str {
    line.split(';').next().unwrap_or("").trim()
}

/// A list line without its id and catalog ids (`desc schema tag owner`), as
/// [`Block::key`] has it.
fn list_key(line: &str) -> String {
    normalise(
        &line
            .split_whitespace()
            .skip(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

fn normalise(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Writes list lines into a temporary `--use-list` file.
fn sql(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> DumpError {
    let what = what.into();
    move |source| DumpError::Sql { what, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_worth_splitting_hold_a_share_of_the_bytes() {
        let t = |n: &str| TableName::new("public", n);
        let sizes = |v: &[(&str, i64)]| v.iter().map(|(n, s)| (t(n), *s)).collect::<Vec<_>>();
        type Case<'a> = (&'a [(&'a str, i64)], u32, &'a [&'a str]);
        let cases: &[Case] = &[
            // Kubernaut-like: the embeddings dominate.
            (
                &[("emb", 700), ("a1", 100), ("a2", 100), ("h", 50)],
                2,
                &["emb"],
            ),
            // Evenly spread: nothing to gain, plain pg_restore --jobs.
            (&[("a", 100), ("b", 100), ("c", 100), ("d", 100)], 2, &[]),
            // Exactly a third with two jobs counts; more jobs lower the bar.
            (&[("a", 100), ("b", 200)], 2, &["a", "b"]),
            (&[("a", 100), ("b", 100), ("c", 100), ("d", 300)], 4, &["d"]),
            (&[("a", 100), ("b", 100), ("c", 100), ("d", 300)], 1, &[]),
            (&[("a", 0), ("b", 0)], 2, &[]),
            (&[], 2, &[]),
        ];
        for (v, jobs, want) in cases {
            let got: Vec<String> = tables_to_split(&sizes(v), *jobs)
                .into_iter()
                .map(|t| t.name)
                .collect();
            assert_eq!(got, want.to_vec(), "{v:?} with {jobs} jobs");
        }
    }

    #[test]
    fn blocks_touching_a_table_include_its_indexes_attachments() {
        let script = "--\n-- Name: big big_pkey; Type: CONSTRAINT; Schema: public; Owner: o\n--\n\n\
                      ALTER TABLE ONLY public.big\n    ADD CONSTRAINT big_pkey PRIMARY KEY (id);\n\n\
                      --\n-- Name: big_x_idx; Type: INDEX; Schema: public; Owner: o\n--\n\n\
                      CREATE INDEX big_x_idx ON public.big USING btree (x);\n\n\
                      --\n-- Name: bigger_x_idx; Type: INDEX; Schema: public; Owner: o\n--\n\n\
                      CREATE INDEX bigger_x_idx ON public.bigger USING btree (x);\n\n\
                      --\n-- Name: parent_x_idx_big; Type: INDEX ATTACH; Schema: public; Owner: -\n--\n\n\
                      ALTER INDEX public.parent_x_idx ATTACH PARTITION public.big_x_idx;\n\n\
                      --\n-- Name: small fk; Type: FK CONSTRAINT; Schema: public; Owner: o\n--\n\n\
                      ALTER TABLE ONLY public.small\n    ADD CONSTRAINT fk FOREIGN KEY (b) REFERENCES public.big(id);\n";
        let blocks = script_blocks(script);
        assert_eq!(blocks.len(), 5);
        assert_eq!(blocks[0].key, "CONSTRAINT public big big_pkey o");
        assert_eq!(
            list_key("3391; 2606 16441 CONSTRAINT public big big_pkey o"),
            blocks[0].key
        );
        assert_eq!(blocks[3].key, "INDEX ATTACH public parent_x_idx_big -");
        let hit = touching(&blocks, &[TableName::new("public", "big")]);
        // Coarse on purpose: `public.bigger`'s index waits too.
        assert_eq!(hit.into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        let hit = touching(&blocks, &[TableName::new("public", "small")]);
        assert_eq!(hit.into_iter().collect::<Vec<_>>(), vec![4]);
        assert_eq!(spellings("a\"b"), vec!["a\"b", "a\"\"b"]);
    }

    #[test]
    fn copy_blocks_are_cut_at_row_ends_and_ended_at_the_terminator() {
        let out = "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\n\nSET client_encoding = 'UTF8';\n\
                   SELECT pg_catalog.set_config('search_path', '', false);\n\n\
                   --\n-- Data for Name: a; Type: TABLE DATA; Schema: public; Owner: o\n--\n\n\
                   COPY public.a (x, y) FROM stdin;\n1\tone\n2\ttwo\n3\tthree\n\\.\n\n\n\
                   COPY public.empty (x) FROM stdin;\n\\.\n\n\
                   COPY public.b (z) FROM stdin;\n\\\\.\n\\.\n\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abc\n";
        let mut got = Vec::new();
        split_copy_blocks(out.as_bytes(), 8, |b| {
            got.push((b.table, b.copy.to_string(), b.rows.to_vec()));
            true
        })
        .unwrap();
        let a = "COPY public.a (x, y) FROM STDIN".to_string();
        assert_eq!(
            got,
            vec![
                (1, a.clone(), b"1\tone\n2\ttwo\n".to_vec()),
                (1, a, b"3\tthree\n".to_vec()),
                (
                    3,
                    "COPY public.b (z) FROM STDIN".into(),
                    b"\\\\.\n".to_vec()
                ),
            ]
        );
    }

    #[test]
    fn unknown_statements_and_truncated_blocks_are_errors() {
        let e = split_copy_blocks(
            "SELECT pg_catalog.setval('s', 3, true);\n".as_bytes(),
            8,
            |_| true,
        );
        assert!(e.unwrap_err().contains("unexpected statement"));
        let e = split_copy_blocks("COPY public.a (x) FROM stdin;\n1\n".as_bytes(), 8, |_| true);
        assert!(e.unwrap_err().contains("ended inside"));
    }

    #[test]
    fn clean_script_gives_session_and_drops_in_order() {
        let script = "--\n-- PostgreSQL database dump\n--\n\n\\restrict k\n\n-- Dumped from database version 15\n\n\
                      SET statement_timeout = 0;\nSET client_encoding = 'UTF8';\n\
                      SELECT pg_catalog.set_config('search_path', '', false);\n\n\
                      DROP TRIGGER IF EXISTS t ON public.a;\nALTER TABLE IF EXISTS ONLY public.a DROP CONSTRAINT IF EXISTS a_pkey;\n\
                      DROP TABLE IF EXISTS public.a;\nDROP EXTENSION IF EXISTS pgcrypto;\n\
                      --\n-- Name: pgcrypto; Type: EXTENSION; Schema: -; Owner: -\n--\n\nCREATE EXTENSION IF NOT EXISTS pgcrypto;\n";
        let (session, drops) = parse_clean_script(script);
        assert_eq!(
            session,
            vec![
                "SET statement_timeout = 0;",
                "SET client_encoding = 'UTF8';",
                "SELECT pg_catalog.set_config('search_path', '', false);"
            ]
        );
        assert_eq!(
            drops,
            vec![
                "DROP TRIGGER IF EXISTS t ON public.a;",
                "ALTER TABLE IF EXISTS ONLY public.a DROP CONSTRAINT IF EXISTS a_pkey;",
                "DROP TABLE IF EXISTS public.a;",
                "DROP EXTENSION IF EXISTS pgcrypto;"
            ]
        );
        // Nothing to drop: the first object comment ends the header.
        let (s, d) = parse_clean_script("SET a = 1;\n\n--\n-- Name: x\n--\nCREATE TABLE x ();\n");
        assert_eq!((s.len(), d.len()), (1, 0));
    }

    #[test]
    fn list_lines() {
        let l = "3626; 0 16435 TABLE DATA public incident_embeddings bench";
        assert_eq!(item_id(l), "3626");
        assert_eq!(
            list_key(
                "3391; 2606 16441 CONSTRAINT public incident_embeddings incident_embeddings_pkey bench"
            ),
            "CONSTRAINT public incident_embeddings incident_embeddings_pkey bench"
        );
    }
}
