//! Retention of WAL by `prune` (docs/physical.md, "Retention") against a
//! real PostgreSQL 15 archiving through the built binary: segments
//! archived, base backup A, more segments, base backup B, a row after B.
//! `prune --dry-run` names what would go and deletes nothing; `prune` with
//! A kept deletes exactly the segments before A's start (nothing A needs);
//! `forget --keep-last 1 --prune` (A forgotten) deletes those before B's
//! start, keeps B's start segment, its backup label and everything after;
//! `check --read-data` passes with no gap; `restore physical latest
//! --to-latest` from B recovers the row written after B; a timeline's
//! history file pushed afterwards survives the next prune.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Env, bin, poll, rt};
use lifeboat_postgres::basebackup::Lsn;
use lifeboat_postgres::basebackup::server::RecoveryServer;
use lifeboat_postgres::{ClusterOptions, TempCluster};

struct Archive {
    env: Env,
    config: PathBuf,
    password: String,
}

fn chown_postgres(path: &Path) {
    let st = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(path)
        .status()
        .expect("chown");
    assert!(st.success(), "chown -R postgres {}", path.display());
}

impl Archive {
    fn new() -> Archive {
        let env = Env::init();
        let key_file = env.path("wal.key");
        env.ok(&["key", "add", "--new-key-file", key_file.to_str().unwrap()]);
        let config = env.path("lifeboat.yaml");
        std::fs::write(
            &config,
            format!(
                "repository:\n  url: {}\n  key_file: {}\n",
                env.repo,
                key_file.display()
            ),
        )
        .unwrap();
        chown_postgres(env.dir.path());
        Archive {
            env,
            config,
            password: String::new(),
        }
    }

    fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let mut c = Command::new(bin());
        c.arg("--config").arg(&self.config).args(args);
        for v in [
            "LIFEBOAT_PASSWORD",
            "LIFEBOAT_REPO",
            "LIFEBOAT_CONFIG",
            "LIFEBOAT_KEY_FILE",
            "LIFEBOAT_PASSWORD_FILE",
        ] {
            c.env_remove(v);
        }
        c.env("PGPASSWORD", &self.password);
        c.current_dir(self.env.dir.path()).stdin(Stdio::null());
        let o = c.output().expect("run lifeboat");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, Some(0), "{args:?}\nstdout: {out}\nstderr: {err}");
        out
    }

    fn ok_json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.ok(&[&["--json"][..], args].concat());
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    }

    fn archive_command(&self) -> String {
        format!(
            "{} --config {} wal push %p",
            bin().display(),
            self.config.display()
        )
    }

    /// The names stored under `wal/<timeline>/`, sorted (a name's
    /// directory may stay behind, empty, once its object is deleted).
    fn stored(&self, timeline: u32) -> Vec<String> {
        let dir = Path::new(&self.env.repo).join(format!("wal/{timeline:08X}"));
        let mut v: Vec<String> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .map(|e| e.unwrap())
                .filter(|e| std::fs::read_dir(e.path()).is_ok_and(|mut d| d.next().is_some()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        v.sort();
        v
    }
}

/// Runs `sql` and returns the first column of the first row as text.
fn one(rt: &tokio::runtime::Runtime, cluster: &TempCluster, sql: &str) -> String {
    rt.block_on(async {
        let c = cluster.conn_config("postgres").connect().await.unwrap();
        let rows = c.simple_query(sql).await.unwrap();
        rows.iter()
            .find_map(|m| match m {
                lifeboat_postgres::basebackup::SimpleQueryMessage::Row(r) => {
                    r.get(0).map(str::to_string)
                }
                _ => None,
            })
            .unwrap_or_default()
    })
}

fn wait_archived(rt: &tokio::runtime::Runtime, cluster: &TempCluster, last: &str) {
    poll(
        Duration::from_secs(120),
        &format!("{last} archived"),
        || {
            let failed = one(rt, cluster, "SELECT failed_count FROM pg_stat_archiver");
            assert_eq!(
                failed,
                "0",
                "archiving failed; server log:\n{}",
                cluster.log_tail()
            );
            let archived = one(
                rt,
                cluster,
                "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver",
            );
            (archived.as_str() >= last).then_some(())
        },
    );
}

/// Writes row `label`, switches to a new WAL segment and waits until the
/// one just completed is archived.
fn row_and_switch(rt: &tokio::runtime::Runtime, cluster: &TempCluster, label: &str) {
    one(
        rt,
        cluster,
        &format!("INSERT INTO kept (label) VALUES ('{label}') RETURNING id"),
    );
    let name = one(rt, cluster, "SELECT pg_walfile_name(pg_switch_wal())");
    wait_archived(rt, cluster, &name);
}

/// The labels in table `kept` of a restored data directory, read from a
/// server started on it as a primary.
fn labels(dir: &Path) -> Vec<String> {
    let server = RecoveryServer::start(Path::new("/usr/lib/postgresql/15/bin"), dir, &[])
        .expect("start a server on the restored directory");
    let rt = rt();
    let got = poll(Duration::from_secs(60), "the restored server", || {
        rt.block_on(async {
            let c = server
                .conn_config("lifeboat", "postgres")
                .connect()
                .await
                .ok()?;
            let rows = c
                .query("SELECT label FROM kept ORDER BY id", &[])
                .await
                .ok()?;
            Some(rows.iter().map(|r| r.get::<_, String>(0)).collect())
        })
    });
    let mut server = server;
    assert!(
        server.stop(Duration::from_secs(60)),
        "{}",
        server.log_tail()
    );
    got
}

/// The name of the segment a base backup's WAL starts in.
fn start_segment(backup: &serde_json::Value) -> String {
    let f = &backup["facts"];
    let lsn = Lsn::parse(f["start_lsn"].as_str().unwrap()).unwrap();
    let tl = f["timeline"].as_u64().unwrap() as u32;
    lsn.segment_name(tl, f["wal_segment_size"].as_u64().unwrap())
}

/// Stored names whose segment (their first 24 characters) is before `seg`.
fn before(names: &[String], seg: &str) -> Vec<String> {
    names
        .iter()
        .filter(|n| n.len() >= 24 && &n[..24] < seg)
        .cloned()
        .collect()
}

#[test]
fn prune_deletes_the_wal_no_kept_base_backup_needs() {
    let rt = rt();
    let mut a = Archive::new();
    let cluster = TempCluster::start_with(ClusterOptions {
        settings: vec![
            ("archive_mode".into(), "on".into()),
            ("archive_command".into(), a.archive_command()),
            ("wal_level".into(), "replica".into()),
        ],
        ..Default::default()
    })
    .expect("start PostgreSQL 15 (run scripts/test.sh to install it)");
    a.password = cluster.password().expose().to_string();
    let url = cluster.url("postgres");
    one(
        &rt,
        &cluster,
        "CREATE TABLE kept (id serial PRIMARY KEY, label text NOT NULL)",
    );
    for label in ["w1", "w2", "w3"] {
        row_and_switch(&rt, &cluster, label);
    }
    let backup_a = a.ok_json(&["backup", "physical", "--db", &url]);
    let a_start = start_segment(&backup_a);
    for label in ["w4", "w5"] {
        row_and_switch(&rt, &cluster, label);
    }
    let backup_b = a.ok_json(&["backup", "physical", "--db", &url]);
    let b_start = start_segment(&backup_b);
    row_and_switch(&rt, &cluster, "after-B");
    assert!(a_start < b_start, "{a_start} {b_start}");

    let all = a.stored(1);
    let before_a = before(&all, &a_start);
    let between = before(&all, &b_start)
        .into_iter()
        .filter(|n| !before_a.contains(n))
        .collect::<Vec<_>>();
    assert!(
        before_a.len() >= 3,
        "segments archived before A: {before_a:?}"
    );
    assert!(
        between.iter().any(|n| n.ends_with(".backup")),
        "A's backup label is in the archive: {all:?}"
    );
    assert!(all.contains(&b_start), "B's start is archived: {all:?}");

    // Dry run: names what would go, deletes nothing.
    let dry = a.ok_json(&["prune", "--dry-run", "--grace", "0s"]);
    assert_eq!(dry["wal"]["deleted"], before_a.len(), "{dry}");
    assert_eq!(dry["wal"]["kept_from"], a_start.as_str(), "{dry}");
    assert_eq!(dry["wal"]["oldest_base_backup"], backup_a["id"], "{dry}");
    assert_eq!(a.stored(1), all);

    // A kept: only what lies before A's start goes; everything A needs stays.
    let human = a.ok(&["prune", "--grace", "0s"]);
    assert!(
        human.contains(&format!(
            "WAL: deleted {} of {} objects",
            before_a.len(),
            all.len()
        )) && human.contains(&a_start),
        "{human}"
    );
    let after_first: Vec<String> = all
        .iter()
        .filter(|n| !before_a.contains(n))
        .cloned()
        .collect();
    assert_eq!(a.stored(1), after_first);

    // A forgotten (B is the newest): the segments before B's start go, A's
    // label with them; B's start, its label and everything after stay.
    let forgot = a.ok_json(&["forget", "--keep-last", "1", "--prune", "--grace", "0s"]);
    assert_eq!(forgot["groups"][0]["forget"][0], backup_a["id"], "{forgot}");
    let w = &forgot["prune"]["wal"];
    assert_eq!(w["deleted"], between.len(), "{forgot}");
    assert_eq!(w["kept_from"], b_start.as_str(), "{forgot}");
    assert!(w["deleted_bytes"].as_u64().unwrap() > 0, "{forgot}");
    let left = a.stored(1);
    assert!(before(&left, &b_start).is_empty(), "{left:?}");
    assert!(left.contains(&b_start), "{left:?}");
    assert!(
        left.iter()
            .any(|n| n.starts_with(&b_start) && n.ends_with(".backup")),
        "B's backup label stays: {left:?}"
    );
    assert_eq!(
        left,
        after_first
            .iter()
            .filter(|n| !between.contains(n))
            .cloned()
            .collect::<Vec<_>>()
    );

    // The archive now starts at B's start: no gap for check or status.
    let out = a.ok(&["check", "--read-data"]);
    assert!(!out.contains("gap"), "{out}");
    let listing = a.ok_json(&["wal", "list"]);
    assert_eq!(
        listing["timelines"][0]["first"],
        b_start.as_str(),
        "{listing}"
    );
    assert_eq!(
        listing["timelines"][0]["gaps"].as_array().unwrap().len(),
        0,
        "{listing}"
    );

    // B still recovers to the end of the archive.
    let dir = a.env.path("restored");
    let v = a.ok_json(&[
        "restore",
        "physical",
        "latest",
        "--to-latest",
        "--pgdata",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(v["snapshot"], backup_b["id"], "{v}");
    assert_eq!(
        labels(&dir),
        ["w1", "w2", "w3", "w4", "w5", "after-B"],
        "{v}"
    );

    // The promoted timeline's history file, pushed as docs/physical.md
    // says, is never deleted by position.
    let history = dir.join("pg_wal/00000002.history");
    a.ok(&["wal", "push", history.to_str().unwrap()]);
    let again = a.ok_json(&["prune", "--grace", "0s"]);
    assert_eq!(again["wal"]["deleted"], 0, "{again}");
    assert_eq!(a.stored(2), ["00000002.history"]);
    assert_eq!(a.stored(1), left);
    let out = a.ok(&["check", "--read-data"]);
    assert!(!out.contains("gap"), "{out}");
}
