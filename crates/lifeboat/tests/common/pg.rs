//! PostgreSQL helpers shared by the tests that drive `backup postgres` and
//! `restore postgres` (whole databases, chosen tables) through the built
//! binary: the test's own view of a database (content hashes, the fixture's
//! hash chain, names from the catalogue), SQL run on the side, and the
//! configuration whose quiesce commands log `pre`/`post` to a file.

use std::collections::BTreeMap;
use std::path::Path;

use lifeboat_postgres::TempCluster;
use lifeboat_postgres::conn::ConnConfig;
use lifeboat_postgres::fixture::{self, TableHash};

use super::Env;

/// Content hashes of every table of `cfg`'s database, computed by the test
/// itself (`fixture::content_hashes`), not by Lifeboat's facts.
pub fn hashes(rt: &tokio::runtime::Runtime, cfg: &ConnConfig) -> BTreeMap<String, TableHash> {
    rt.block_on(async {
        let c = cfg.connect().await.unwrap();
        fixture::content_hashes(&c).await.unwrap()
    })
}

/// Asserts the fixture's audit hash chain verifies; returns its length.
pub fn chain_ok(rt: &tokio::runtime::Runtime, cfg: &ConnConfig) -> i64 {
    rt.block_on(async {
        let c = cfg.connect().await.unwrap();
        let s = fixture::verify_hash_chain(&c).await.unwrap();
        assert!(s.is_ok(), "hash chain broken: {s:?}");
        s.events
    })
}

/// Runs `q` (one or more statements) on `cfg`'s database.
pub fn sql(rt: &tokio::runtime::Runtime, cfg: &ConnConfig, q: &str) {
    rt.block_on(async {
        let c = cfg.connect().await.unwrap();
        c.batch_execute(q).await.unwrap();
    })
}

/// `q` on `conn`: a `SELECT`'s rows, or any other statement(s) run (no
/// rows); a failure panics naming the statement.
pub fn rows(rt: &tokio::runtime::Runtime, conn: &ConnConfig, q: &str) -> Vec<tokio_postgres::Row> {
    rt.block_on(async {
        let c = conn.connect().await.expect("connect");
        if !q.starts_with("SELECT") {
            c.batch_execute(q)
                .await
                .unwrap_or_else(|e| panic!("{q}: {e:?}"));
            return Vec::new();
        }
        c.query(q, &[])
            .await
            .unwrap_or_else(|e| panic!("{q}: {e:?}"))
    })
}

/// The first column of a query's rows, as text.
pub fn names(rt: &tokio::runtime::Runtime, cfg: &ConnConfig, q: &str) -> Vec<String> {
    rt.block_on(async {
        let c = cfg.connect().await.unwrap();
        c.query(q, &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect()
    })
}

/// The databases of the cluster (to show that no scratch database is left).
pub fn databases(rt: &tokio::runtime::Runtime, cluster: &TempCluster) -> Vec<String> {
    names(
        rt,
        &cluster.conn_config("postgres"),
        "SELECT datname::text FROM pg_database WHERE NOT datistemplate ORDER BY 1",
    )
}

/// `--json backup postgres ARGS…`, asserted to succeed; its JSON result.
pub fn backup_json(env: &Env, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json", "backup", "postgres"];
    a.extend_from_slice(args);
    serde_json::from_str(&env.ok(&a)).expect("backup json")
}

/// Writes the configuration `lifeboat.yaml` with source `db` (the cluster's
/// `src`) whose writers are quiesced by commands that append `pre` and
/// `post` to `log`; returns its path.
pub fn quiesce_config(env: &Env, cluster: &TempCluster, log: &Path) -> String {
    quiesce_config_at(env, "lifeboat.yaml", &cluster.url("src"), log)
}

/// [`quiesce_config`] in the file `file` of the environment's directory,
/// with source `db` at `url` (another role, a server nobody listens on).
pub fn quiesce_config_at(env: &Env, file: &str, url: &str, log: &Path) -> String {
    let config = env.path(file);
    std::fs::write(
        &config,
        format!(
            "repository:\n  url: {repo}\nsources:\n  db:\n    kind: postgres\n    postgres:\n      url: {url}\n    quiesce:\n      commands:\n        pre: [[sh, -c, \"echo pre >> {l}\"]]\n        post: [[sh, -c, \"echo post >> {l}\"]]\n",
            repo = env.repo,
            l = log.display(),
        ),
    )
    .unwrap();
    config.display().to_string()
}

/// What the quiesce commands of [`quiesce_config`] logged (`""`: none ran).
pub fn read_log(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// Damages the fixture's data in `cfg`'s database (`fixture::corrupt`).
pub fn corrupt(rt: &tokio::runtime::Runtime, cfg: &ConnConfig) {
    rt.block_on(async {
        let c = cfg.connect().await.unwrap();
        fixture::corrupt(&c).await.unwrap();
    })
}

/// `pg_is_in_recovery()` of the server, `None` while it does not answer.
pub fn in_recovery(rt: &tokio::runtime::Runtime, conn: &ConnConfig) -> Option<bool> {
    rt.block_on(async {
        let c = conn.connect().await.ok()?;
        c.query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .ok()
            .map(|r| r.get(0))
    })
}

/// The newest epoch in the server's `lifeboat.authority` (database
/// `lifeboat`), `None` while it does not answer or has none.
pub fn authority_epoch(rt: &tokio::runtime::Runtime, conn: &ConnConfig) -> Option<i64> {
    let db = conn.with_dbname("lifeboat");
    rt.block_on(async {
        let c = db.connect().await.ok()?;
        c.query_one("SELECT max(epoch) FROM lifeboat.authority", &[])
            .await
            .ok()?
            .get(0)
    })
}
