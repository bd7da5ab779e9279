//! `lifeboat drill --physical` through the built binary, against a real
//! PostgreSQL 15 archiving into the repository (`archive_command =
//! 'lifeboat --config C wal push %p'`, a key file; set up as in
//! physical_pitr.rs), docs/physical.md "Drills of physical backups": no
//! base backup yet (exit 3, nothing recorded); no server binaries of the
//! backup's major version (exit 2, nothing written); a drill after a base
//! backup and two archived segments passes, its record says physical, the
//! rows committed after the base backup are in the verification query's
//! value, recovery reached the last archived segment, and the temporary
//! data directory is gone; one archived segment deleted from the
//! repository: the drill fails (exit 7) with a record naming the missing
//! segment; `drills` lists both as physical, `status` judges the source by
//! its physical drills.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Env, bin, poll, rt};
use lifeboat_postgres::{ClusterOptions, TempCluster};

/// A repository opened with a key file, a configuration naming it and the
/// source `db`, readable by the `postgres` user (the server runs `wal push`
/// and, in the drill's throwaway server, `wal fetch` as that user).
struct Archive {
    env: Env,
    config: PathBuf,
    key_file: PathBuf,
    /// `TMPDIR` of every command: where a drill's temporary data directory
    /// goes, so the test can see it is removed.
    tmp: PathBuf,
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
        let tmp = env.path("tmp");
        std::fs::create_dir(&tmp).unwrap();
        chown_postgres(env.dir.path());
        Archive {
            config: env.path("lifeboat.yaml"),
            env,
            key_file,
            tmp,
            password: String::new(),
        }
    }

    /// The configuration: source `db` at `url` with a verification query
    /// listing table `pitr`'s labels; `bin_dir` when given.
    fn write_config(&self, path: &Path, url: &str, bin_dir: Option<&Path>) {
        let bin_dir = bin_dir
            .map(|d| format!("      bin_dir: {}\n", d.display()))
            .unwrap_or_default();
        std::fs::write(
            path,
            format!(
                "repository:
  url: {repo}
  key_file: {key}
sources:
  db:
    kind: postgres
    postgres:
      url: \"{url}\"
{bin_dir}      verify_queries:
        - name: labels
          sql: SELECT string_agg(label, ',' ORDER BY id) FROM pitr
",
                repo = self.env.repo,
                key = self.key_file.display(),
            ),
        )
        .unwrap();
        chown_postgres(path);
    }

    fn run_with(&self, config: &Path, args: &[&str]) -> (Option<i32>, String, String) {
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
        c.env("PGPASSWORD", &self.password).env("TMPDIR", &self.tmp);
        c.current_dir(self.env.dir.path()).stdin(Stdio::null());
        let o = c.output().expect("run lifeboat");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        self.run_with(&self.config, args)
    }

    /// `--json` `args`, expecting exit `code`: stdout as JSON.
    fn json(&self, args: &[&str], code: i32) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let (got, out, err) = self.run(&a);
        assert_eq!(got, Some(code), "{args:?}\nstdout: {out}\nstderr: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}\n{err}"))
    }

    fn archive_command(&self) -> String {
        format!(
            "{} --config {} wal push %p",
            bin().display(),
            self.config.display()
        )
    }

    /// What is left in `TMPDIR`: nothing, after every drill.
    fn leftovers(&self) -> Vec<String> {
        std::fs::read_dir(&self.tmp)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
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

/// Switches to a new WAL segment and waits until the one just completed
/// is archived; returns its name.
fn switch_and_archive(rt: &tokio::runtime::Runtime, cluster: &TempCluster) -> String {
    let name = one(rt, cluster, "SELECT pg_walfile_name(pg_switch_wal())");
    poll(
        Duration::from_secs(120),
        &format!("{name} archived"),
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
            (archived >= name).then_some(())
        },
    );
    name
}

fn step<'a>(record: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    record["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name}: {record}"))
}

#[test]
fn physical_drill_recovers_the_archive_and_fails_on_a_gap() {
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
    a.write_config(&a.config, &cluster.url("postgres"), None);
    rt.block_on(async {
        let c = cluster.conn_config("postgres").connect().await.unwrap();
        c.batch_execute(
            "CREATE TABLE pitr (id serial PRIMARY KEY, label text NOT NULL);
             INSERT INTO pitr (label) VALUES ('base');
             CHECKPOINT;",
        )
        .await
        .unwrap();
    });

    // No base backup yet: nothing to drill, as a logical drill without a
    // snapshot (exit 3), and nothing recorded.
    let (code, _, err) = a.run(&["drill", "--physical", "--source", "db"]);
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("no physical base backup of db")
            && err.contains("lifeboat backup physical --source db"),
        "{err}"
    );
    assert_eq!(a.json(&["drills"], 0), serde_json::json!([]));

    let base = a.json(&["backup", "physical", "--source", "db"], 0);
    let base_id = base["id"].as_str().unwrap().to_string();

    // No server of the backup's major version where the source says its
    // binaries are: a usage error before anything is written or recorded.
    let empty_bin = a.env.path("no-postgres-here");
    std::fs::create_dir(&empty_bin).unwrap();
    let other = a.env.path("bin-dir.yaml");
    a.write_config(&other, &cluster.url("postgres"), Some(&empty_bin));
    let (code, _, err) = a.run_with(&other, &["drill", "--physical", "--source", "db"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("PostgreSQL 15") && err.contains("no postgres server binary"),
        "{err}"
    );
    assert!(a.leftovers().is_empty(), "{:?}", a.leftovers());

    // Two segments after the base backup, each with a row of its own.
    one(
        &rt,
        &cluster,
        "INSERT INTO pitr (label) VALUES ('A') RETURNING id",
    );
    let seg_a = switch_and_archive(&rt, &cluster);
    one(
        &rt,
        &cluster,
        "INSERT INTO pitr (label) VALUES ('B') RETURNING id",
    );
    let seg_b = switch_and_archive(&rt, &cluster);

    let report = a.env.path("drill.md");
    let passed = a.json(
        &[
            "drill",
            "--physical",
            "--source",
            "db",
            "--report",
            report.to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(passed["ok"], true, "{passed}");
    assert_eq!(passed["kind"], "physical", "{passed}");
    assert_eq!(passed["snapshot"], base_id.as_str(), "{passed}");
    assert_eq!(passed["trigger"], "cli");
    // Both rows written after the base backup came back through the WAL.
    let verify = step(&passed, "verify");
    assert_eq!(verify["ok"], true, "{passed}");
    assert!(
        verify["detail"]
            .as_str()
            .unwrap()
            .contains("labels = base,A,B"),
        "{passed}"
    );
    // Recovery reached the last archived segment.
    let recover = step(&passed, "recover")["detail"].as_str().unwrap();
    assert!(
        recover.contains(&format!("into the last archived segment {seg_b}")),
        "{recover}"
    );
    assert!(
        step(&passed, "archive")["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("up to {seg_b}")),
        "{passed}"
    );
    assert!(
        step(&passed, "cleanup")["detail"]
            .as_str()
            .unwrap()
            .contains("was removed"),
        "{passed}"
    );
    assert!(passed["rto_seconds"].as_f64().unwrap() > 0.0);
    assert!(passed["rpo_seconds"].as_f64().unwrap() >= 0.0);
    assert!(a.leftovers().is_empty(), "{:?}", a.leftovers());
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(
        md.starts_with("# Physical restore drill of `db`: passed"),
        "{md}"
    );
    assert!(
        md.contains("RPO (last recovered commit's age at start)"),
        "{md}"
    );

    // One archived segment gone from the repository: the drill fails with
    // a record naming it, and restores nothing.
    let object = PathBuf::from(&a.env.repo)
        .join("wal/00000001")
        .join(&seg_a)
        .join("0");
    std::fs::remove_file(&object).unwrap();
    let failed = a.json(&["drill", "--physical", "--source", "db"], 7);
    assert_eq!(failed["ok"], false, "{failed}");
    assert_eq!(failed["kind"], "physical", "{failed}");
    let why = failed["failure"].as_str().unwrap();
    assert!(why.contains(&seg_a) && why.contains("gap"), "{why}");
    let archive = step(&failed, "archive");
    assert_eq!(archive["ok"], false, "{failed}");
    assert_eq!(failed["steps"].as_array().unwrap().len(), 1, "{failed}");
    assert!(a.leftovers().is_empty(), "{:?}", a.leftovers());

    // `drills` lists both, as physical.
    let drills = a.json(&["drills"], 0);
    let list = drills.as_array().unwrap();
    assert_eq!(list.len(), 2, "{drills}");
    assert_eq!(list[0]["id"], passed["id"]);
    assert_eq!(list[1]["id"], failed["id"]);
    assert!(list.iter().all(|d| d["kind"] == "physical"), "{drills}");
    assert_eq!(
        (&list[0]["ok"], &list[1]["ok"]),
        (&true.into(), &false.into())
    );
    let (code, text, err) = a.run(&["drills"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(text.matches(" physical ").count(), 2, "{text}");

    // `status`: a source with physical backups only is judged by its
    // physical drills, and the last one failed.
    let (_, out, err) = a.run(&["--json", "status"]);
    let st: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    let db = &st["sources"][0];
    let kinds: Vec<&str> = db["drill_kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["physical"], "{st}");
    assert_eq!(db["verdict"], "failing", "{st}");
    assert!(
        db["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("the last physical drill"),
        "{st}"
    );
    assert_eq!(
        db["drill_kinds"][0]["last_successful_drill"]["id"], passed["id"],
        "{st}"
    );
}

/// Whether some process is reading the FIFO at `path` (opening it for
/// writing without blocking succeeds only then).
fn fifo_has_reader(path: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .is_ok()
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) {
            found.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
        }
    }
    found
}

/// Ctrl-C while the throwaway server recovers: the drill ends with exit
/// 130, records nothing, and leaves neither its data directory nor a
/// server behind. The pause point: the drill's configuration is replaced by
/// a FIFO once the drill has read it (its first line on stderr), so the
/// server's `wal fetch` (which reads it again) blocks until the test is
/// done, and the test sees it blocked (the FIFO has a reader).
#[test]
fn an_interrupted_physical_drill_leaves_nothing_behind() {
    use std::io::BufRead;
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
    a.write_config(&a.config, &cluster.url("postgres"), None);
    one(
        &rt,
        &cluster,
        "CREATE TABLE pitr (id serial PRIMARY KEY, label text NOT NULL); SELECT 1",
    );
    a.json(&["backup", "physical", "--source", "db"], 0);
    one(
        &rt,
        &cluster,
        "INSERT INTO pitr (label) VALUES ('A') RETURNING id",
    );
    switch_and_archive(&rt, &cluster);

    // The drill runs with a configuration of its own, which becomes the
    // FIFO; the archiving server keeps the real one.
    let drill_config = a.env.path("drill.yaml");
    a.write_config(&drill_config, &cluster.url("postgres"), None);
    let mut child = Command::new(bin())
        .arg("--config")
        .arg(&drill_config)
        .args(["drill", "--physical", "--source", "db"])
        .env_remove("LIFEBOAT_PASSWORD")
        .env_remove("LIFEBOAT_CONFIG")
        .env("PGPASSWORD", &a.password)
        .env("TMPDIR", &a.tmp)
        .current_dir(a.env.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    assert!(first.contains("drilling the latest base backup"), "{first}");
    let fifo = a.env.path("drill.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) on a path of our own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0);
    chown_postgres(&fifo);
    std::fs::rename(&fifo, &drill_config).unwrap();
    poll(
        Duration::from_secs(120),
        "the recovery server's wal fetch waiting on the configuration",
        || fifo_has_reader(&drill_config).then_some(()),
    );
    let scratch: Vec<String> = a.leftovers();
    assert!(
        scratch.iter().any(|n| n.starts_with("lifeboat-drill-")),
        "{scratch:?}"
    );
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert_eq!(status.code(), Some(130), "{rest}");
    // Let a `wal fetch` still waiting (if any) read end-of-file and exit.
    fifo_has_reader(&drill_config);
    assert!(a.leftovers().is_empty(), "{:?}", a.leftovers());
    let left = processes_mentioning(a.tmp.to_str().unwrap());
    assert!(left.is_empty(), "left running: {left:?}");
    assert_eq!(a.json(&["drills"], 0), serde_json::json!([]));
}
