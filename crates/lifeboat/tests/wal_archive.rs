//! `lifeboat wal push|fetch|list` against a real PostgreSQL 15 archiving
//! through the built binary (`archive_command = 'lifeboat --config C wal
//! push %p'`, run by the server as the `postgres` user), on a local
//! repository opened with a key file (docs/physical.md).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Env, bin, poll, rt, walk};
use lifeboat_postgres::{ClusterOptions, TempCluster};

/// A repository with a key file, readable and writable by the `postgres`
/// user (the archiver runs as it), and a configuration naming both.
struct Archive {
    env: Env,
    key_file: PathBuf,
    config: PathBuf,
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
            key_file,
            config,
        }
    }

    /// `lifeboat --config C ARGS` (the key file from the configuration; no
    /// passphrase in the environment).
    fn cmd(&self, args: &[&str]) -> Command {
        self.cmd_with(&self.config, args)
    }

    /// `lifeboat --config CONFIG ARGS`, the environment's secrets removed.
    fn cmd_with(&self, config: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("--config").arg(config).args(args);
        for v in [
            "LIFEBOAT_PASSWORD",
            "LIFEBOAT_REPO",
            "LIFEBOAT_CONFIG",
            "LIFEBOAT_KEY_FILE",
            "LIFEBOAT_PASSWORD_FILE",
        ] {
            c.env_remove(v);
        }
        c.current_dir(self.env.dir.path()).stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let o = self.cmd(args).output().expect("run lifeboat");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    fn ok_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let (code, out, err) = self.run(&a);
        assert_eq!(code, Some(0), "{args:?}\nstdout: {out}\nstderr: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    }

    fn fails(&self, args: &[&str], code: i32) -> String {
        let (got, out, err) = self.run(args);
        assert_eq!(got, Some(code), "{args:?}\nstdout: {out}\nstderr: {err}");
        err
    }

    fn archive_command(&self) -> String {
        format!(
            "{} --config {} wal push %p",
            bin().display(),
            self.config.display()
        )
    }

    fn repo(&self) -> PathBuf {
        PathBuf::from(&self.env.repo)
    }
}

fn archiving_cluster(a: &Archive) -> TempCluster {
    TempCluster::start_with(ClusterOptions {
        settings: vec![
            ("archive_mode".into(), "on".into()),
            ("archive_command".into(), a.archive_command()),
            ("wal_level".into(), "replica".into()),
            // Keep archived segments in pg_wal, to compare fetched bytes
            // with: a checkpoint (pg_backup_start makes one) would remove or
            // recycle them (the full suite saw segment 1 gone).
            ("wal_keep_size".into(), "1GB".into()),
        ],
        ..Default::default()
    })
    .expect("start PostgreSQL 15 (run scripts/test.sh to install it)")
}

/// Writes rows and switches to a new segment `n` times; returns the names
/// of the completed segments.
fn make_segments(rt: &tokio::runtime::Runtime, cluster: &TempCluster, n: usize) -> Vec<String> {
    rt.block_on(async {
        let c = cluster.conn_config("postgres").connect().await.unwrap();
        c.batch_execute("CREATE TABLE IF NOT EXISTS t (id serial, pad text)")
            .await
            .unwrap();
        let mut names = Vec::new();
        for _ in 0..n {
            c.batch_execute("INSERT INTO t (pad) SELECT repeat(md5(g::text), 20) FROM generate_series(1, 2000) g")
                .await
                .unwrap();
            let row = c
                .query_one("SELECT pg_walfile_name(pg_switch_wal())", &[])
                .await
                .unwrap();
            names.push(row.get::<_, String>(0));
        }
        names
    })
}

/// Waits until the archiver reports `last` archived; fails at once on an
/// archiving failure, with the server's log.
fn wait_archived(rt: &tokio::runtime::Runtime, cluster: &TempCluster, last: &str) {
    poll(
        Duration::from_secs(120),
        &format!("{last} archived"),
        || {
            let (archived, failed, failed_wal): (String, i64, String) = rt.block_on(async {
            let c = cluster.conn_config("postgres").connect().await.unwrap();
            let r = c
                .query_one(
                    "SELECT coalesce(last_archived_wal, ''), failed_count, coalesce(last_failed_wal, '') FROM pg_stat_archiver",
                    &[],
                )
                .await
                .unwrap();
            (r.get(0), r.get(1), r.get(2))
        });
            assert_eq!(
                failed,
                0,
                "archiving {failed_wal} failed; server log:\n{}",
                cluster.log_tail()
            );
            (archived.as_str() >= last).then_some(())
        },
    );
}

/// The segments the server marked archived (`pg_wal/archive_status/*.done`)
/// whose files are still in `pg_wal`.
fn archived_files(cluster: &TempCluster) -> Vec<(String, PathBuf)> {
    let wal = cluster.data_dir().join("pg_wal");
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(wal.join("archive_status"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            let base = name.strip_suffix(".done")?.to_string();
            let path = wal.join(&base);
            path.exists().then_some((base, path))
        })
        .collect();
    out.sort();
    out
}

fn wal_objects(repo: &Path) -> Vec<PathBuf> {
    let dir = repo.join("wal");
    if !dir.exists() {
        return Vec::new();
    }
    let mut v = walk(&dir);
    v.sort();
    v
}

fn object_path(repo: &Path, timeline: u32, name: &str, epoch: u64) -> PathBuf {
    repo.join(format!("wal/{timeline:08X}/{name}/{epoch}"))
}

#[test]
fn postgres_archives_through_wal_push_and_fetch_returns_the_same_bytes() {
    let rt = rt();
    let a = Archive::new();
    let cluster = archiving_cluster(&a);
    let names = make_segments(&rt, &cluster, 3);
    // a backup label (`.backup`) is archived too
    rt.block_on(async {
        let c = cluster.conn_config("postgres").connect().await.unwrap();
        c.batch_execute("SELECT pg_backup_start('wal-test', true); SELECT pg_backup_stop(false);")
            .await
            .unwrap();
    });
    let last = make_segments(&rt, &cluster, 1);
    wait_archived(&rt, &cluster, &last[0]);

    // every archived segment still in pg_wal comes back byte for byte
    let files = archived_files(&cluster);
    let segments: Vec<&(String, PathBuf)> = files.iter().filter(|(n, _)| n.len() == 24).collect();
    assert!(segments.len() >= 4, "archived segments: {files:?}");
    for n in names.iter().chain(&last) {
        assert!(files.iter().any(|(f, _)| f == n), "{n} not among {files:?}");
    }
    let out = a.env.path("fetched");
    for (name, path) in &files {
        let dest = out.with_file_name(format!("fetched-{name}"));
        let got = a.ok_json(&["wal", "fetch", name, dest.to_str().unwrap()]);
        assert_eq!(got["epoch"], 0);
        assert_eq!(
            std::fs::read(&dest).unwrap(),
            std::fs::read(path).unwrap(),
            "{name} differs from pg_wal's"
        );
    }
    let label = files
        .iter()
        .find(|(n, _)| n.ends_with(".backup"))
        .unwrap_or_else(|| panic!("no .backup label archived: {files:?}"));
    assert!(label.0.starts_with("00000001"));

    // the listing: timeline 1, epoch 0, no gap, the label
    let list = a.ok_json(&["wal", "list"]);
    let tl = &list["timelines"][0];
    assert_eq!(tl["timeline"], 1, "{list}");
    assert_eq!(tl["gaps"], serde_json::json!([]), "{list}");
    assert_eq!(tl["epochs"][0]["epoch"], 0);
    assert!(tl["segments"].as_u64().unwrap() >= segments.len() as u64);
    assert_eq!(tl["last"], last[0].as_str());
    assert!(
        tl["backup_labels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == label.0.as_str()),
        "{list}"
    );
    let (code, text, _) = a.run(&["wal", "list"]);
    assert_eq!(code, Some(0));
    assert!(text.contains(&last[0]), "{text}");

    // the same file again: accepted, nothing rewritten
    let (name, path) = segments[0];
    let object = object_path(&a.repo(), 1, name, 0);
    let stored = std::fs::read(&object).unwrap();
    let again = a.ok_json(&["wal", "push", path.to_str().unwrap()]);
    assert_eq!(again["outcome"], "already_stored");
    assert_eq!(std::fs::read(&object).unwrap(), stored);

    // other bytes under the same name: refused, the stored object unchanged
    let other_dir = a.env.path("other");
    std::fs::create_dir(&other_dir).unwrap();
    let other = other_dir.join(name);
    let mut bytes = std::fs::read(path).unwrap();
    bytes[1000] ^= 0xFF;
    std::fs::write(&other, &bytes).unwrap();
    let err = a.fails(&["wal", "push", other.to_str().unwrap()], 4);
    assert!(
        err.contains("different content") && err.contains("not overwritten"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    assert_eq!(std::fs::read(&object).unwrap(), stored);
    let dest = a.env.path("after-conflict");
    a.ok_json(&["wal", "fetch", name, dest.to_str().unwrap()]);
    assert_eq!(std::fs::read(&dest).unwrap(), std::fs::read(path).unwrap());

    // a name that is not there: exit 3, one short line, nothing written
    let missing = "0000000100000000000000FE";
    let dest = a.env.path("missing");
    let err = a.fails(&["wal", "fetch", missing, dest.to_str().unwrap()], 3);
    assert_eq!(
        err.trim(),
        format!("error: {missing} is not in the archive")
    );
    assert!(!dest.exists());
    // --fatal-errors (an archive recovery's restore_command) keeps exit 3
    // for a name not there: PostgreSQL ends recovery there as it should.
    a.fails(
        &[
            "wal",
            "fetch",
            "--fatal-errors",
            missing,
            dest.to_str().unwrap(),
        ],
        3,
    );
    // not a WAL name: a usage error
    a.fails(
        &["wal", "fetch", "../etc/passwd", dest.to_str().unwrap()],
        2,
    );

    // a flipped byte in a stored object: fetch refuses naming it
    let (name2, _) = segments[1];
    let object2 = object_path(&a.repo(), 1, name2, 0);
    let mut damaged = std::fs::read(&object2).unwrap();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0x01;
    std::fs::write(&object2, &damaged).unwrap();
    let dest = a.env.path("damaged");
    let err = a.fails(&["wal", "fetch", name2, dest.to_str().unwrap()], 4);
    assert!(
        err.contains(&format!("wal/00000001/{name2}/0")) && err.contains("integrity"),
        "{err}"
    );
    assert!(!dest.exists(), "no bytes handed over");
    // With --fatal-errors: 128 + 4, which PostgreSQL takes as fatal (the
    // recovery aborts instead of ending at the damaged segment).
    let err = a.fails(
        &[
            "wal",
            "fetch",
            "--fatal-errors",
            name2,
            dest.to_str().unwrap(),
        ],
        132,
    );
    assert!(err.contains("integrity"), "{err}");
    assert!(err.contains("fatal to PostgreSQL's recovery"), "{err}");
    assert!(!dest.exists(), "no bytes handed over");

    // check and prune leave WAL objects alone
    let before = wal_objects(&a.repo());
    let (code, out, err) = a.run(&["check"]);
    assert_eq!(code, Some(0), "check: {out}{err}");
    let (code, out, err) = a.run(&["prune", "--grace", "0s"]);
    assert_eq!(code, Some(0), "prune: {out}{err}");
    assert_eq!(
        wal_objects(&a.repo()),
        before,
        "prune kept every WAL object"
    );

    // a wrong key file: exit 6, said plainly
    let stranger = Env::init();
    let wrong = stranger.path("other.key");
    stranger.ok(&["key", "add", "--new-key-file", wrong.to_str().unwrap()]);
    let mut c = a.cmd(&["--repo", &a.env.repo, "--key-file"]);
    c.arg(&wrong)
        .args(["wal", "fetch", name, dest.to_str().unwrap()]);
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(6), "{err}");
    assert!(err.contains("key"), "{err}");
    drop(cluster);
}

#[test]
fn history_files_and_partial_segments_round_trip_and_a_passphrase_still_works() {
    let a = Archive::new();
    let dir = a.env.path("files");
    std::fs::create_dir(&dir).unwrap();
    let history = dir.join("00000002.history");
    std::fs::write(&history, "1\t0/3000000\tno recovery target specified\n").unwrap();
    let partial = dir.join("000000010000000000000003.partial");
    std::fs::write(&partial, vec![7u8; 1 << 20]).unwrap();
    for (file, timeline) in [(&history, 2), (&partial, 1)] {
        let got = a.ok_json(&["wal", "push", file.to_str().unwrap()]);
        assert_eq!(got["timeline"], timeline);
        assert_eq!(got["outcome"], "stored");
        let name = file.file_name().unwrap().to_str().unwrap();
        let dest = a.env.path(&format!("back-{name}"));
        a.ok_json(&["wal", "fetch", name, dest.to_str().unwrap()]);
        assert_eq!(std::fs::read(&dest).unwrap(), std::fs::read(file).unwrap());
    }
    // the history is on timeline 2, the partial segment on timeline 1
    assert!(object_path(&a.repo(), 2, "00000002.history", 0).exists());
    assert!(object_path(&a.repo(), 1, "000000010000000000000003.partial", 0).exists());
    // a partial segment is not its full segment
    let err = a.fails(
        &["wal", "fetch", "000000010000000000000003", "/tmp/x-never"],
        3,
    );
    assert!(err.contains("not in the archive"), "{err}");

    // a passphrase instead of the key file: works, and says it is slow
    let plain = a.env.path("plain.yaml");
    std::fs::write(
        &plain,
        format!(
            "repository:\n  url: {}\n  password: {{env: LIFEBOAT_PASSWORD}}\n",
            a.env.repo
        ),
    )
    .unwrap();
    let o = Command::new(bin())
        .args([
            "--config",
            plain.to_str().unwrap(),
            "wal",
            "fetch",
            "00000002.history",
        ])
        .arg(a.env.path("by-passphrase"))
        .env("LIFEBOAT_PASSWORD", common::PASSWORD)
        .env_remove("LIFEBOAT_KEY_FILE")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("Argon2id") && err.contains("key file"),
        "{err}"
    );
    // a file that is not WAL is refused before anything is read
    let junk = dir.join("notes.txt");
    std::fs::write(&junk, "x").unwrap();
    let err = a.fails(&["wal", "push", junk.to_str().unwrap()], 2);
    assert!(err.contains("not a WAL file name"), "{err}");
}

#[test]
fn a_push_killed_mid_way_leaves_nothing_and_the_next_push_stores_it() {
    let a = Archive::new();
    let dir = a.env.path("big");
    std::fs::create_dir(&dir).unwrap();
    let name = "000000090000000000000001";
    let file = dir.join(name);
    let mut data = vec![0u8; 128 << 20];
    common::Rng::new(9).fill(&mut data);
    std::fs::write(&file, &data).unwrap();
    let timeline_dir = a.repo().join("wal/00000009");

    let mut child = a
        .cmd(&["wal", "push", file.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // the pause point: the object's staging file exists (encoded, being
    // written), the object itself not yet
    let staging = loop {
        let found = walk(&timeline_dir)
            .into_iter()
            .find(|p| p.to_string_lossy().contains('#'));
        if let Some(p) = found {
            break p;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the push ended before its staging file was seen: the file is too small to catch it mid-way"
        );
        std::thread::yield_now();
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !object_path(&a.repo(), 9, name, 0).exists(),
        "nothing published"
    );

    // the listing sweeps the abandoned staging file and shows nothing
    let list = a.ok_json(&["wal", "list"]);
    assert_eq!(list["objects"], 0, "{list}");
    assert!(!staging.exists(), "{} left behind", staging.display());

    let again = a.ok_json(&["wal", "push", file.to_str().unwrap()]);
    assert_eq!(again["outcome"], "stored");
    let dest = a.env.path("back");
    a.ok_json(&["wal", "fetch", name, dest.to_str().unwrap()]);
    assert!(
        std::fs::read(&dest).unwrap() == data,
        "fetched bytes differ"
    );
}

/// With `failover:` configured the epoch comes from this region's
/// `lifeboat.authority`: 0 before any promotion, the recorded epoch after;
/// fetch reads the highest epoch's copy.
#[test]
fn the_epoch_comes_from_the_regions_server_and_fetch_prefers_the_highest() {
    let rt = rt();
    let a = Archive::new();
    let cluster = TempCluster::start().expect("start PostgreSQL 15 (run scripts/test.sh)");
    let config = a.env.path("failover.yaml");
    std::fs::write(
        &config,
        format!(
            r#"repository:
  url: {repo}
  key_file: {key}
regions:
  us-east:
    postgres:
      url: postgresql://{user}@127.0.0.1:{port}/postgres
      password: {{env: REGION_PG_PASSWORD}}
      role: primary
  eu-west:
    postgres:
      url: postgresql://{user}@127.0.0.1:1/postgres
      password: {{env: REGION_PG_PASSWORD}}
      role: standby
      replicates_from: us-east
replication:
  user: lifeboat_replication
  password: {{env: REGION_PG_PASSWORD}}
failover:
  etcd: {{endpoints: ["http://127.0.0.1:1"]}}
"#,
            repo = a.env.repo,
            key = a.key_file.display(),
            user = cluster.superuser(),
            port = cluster.port(),
        ),
    )
    .unwrap();
    let dir = a.env.path("epoch-files");
    std::fs::create_dir(&dir).unwrap();
    let name = "000000040000000000000007";
    let file = dir.join(name);
    let push = |region: Option<&str>| {
        let mut c = a.cmd_with(&config, &["--json", "wal", "push"]);
        if let Some(r) = region {
            c.args(["--region", r]);
        }
        c.arg(&file)
            .env("REGION_PG_PASSWORD", cluster.password().expose())
            .env_remove("LIFEBOAT_REGION")
            .output()
            .unwrap()
    };
    // no region named: refused, since the epoch cannot be known
    std::fs::write(&file, b"written before any promotion").unwrap();
    let o = push(None);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("serve.region"));
    // no lifeboat database yet: epoch 0
    let o = push(Some("us-east"));
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(got["epoch"]["epoch"], 0, "{got}");
    assert_eq!(got["epoch"]["source"], "server");
    // the server records epoch 3 (as a promotion by the authority does):
    // the same name with other content goes under epoch 3, not over epoch 0's
    rt.block_on(async {
        let c = cluster.conn_config("postgres").connect().await.unwrap();
        c.batch_execute("CREATE DATABASE lifeboat").await.unwrap();
        let l = cluster.conn_config("lifeboat").connect().await.unwrap();
        l.batch_execute(
            "CREATE SCHEMA lifeboat; CREATE TABLE lifeboat.authority (epoch bigint PRIMARY KEY, \
             region text NOT NULL, promoted_at timestamptz NOT NULL, lsn pg_lsn); \
             INSERT INTO lifeboat.authority VALUES (2, 'eu-west', now(), NULL), (3, 'us-east', now(), NULL)",
        )
        .await
        .unwrap();
    });
    std::fs::write(&file, b"written by the primary of epoch 3").unwrap();
    let o = push(Some("us-east"));
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(got["epoch"]["epoch"], 3, "{got}");
    assert_eq!(got["key"], format!("wal/00000004/{name}/3"));
    assert!(object_path(&a.repo(), 4, name, 0).exists());
    assert!(object_path(&a.repo(), 4, name, 3).exists());
    let dest = a.env.path("epoch-fetched");
    let f = a.ok_json(&["wal", "fetch", name, dest.to_str().unwrap()]);
    assert_eq!(f["epoch"], 3);
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        b"written by the primary of epoch 3"
    );
    // the server unreachable: the push fails rather than guess an epoch
    let o = push(Some("eu-west"));
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("authority epoch"));
}
