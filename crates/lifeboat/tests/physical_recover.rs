//! `lifeboat recover postgres --source NAME --before T` against a real
//! PostgreSQL 15 archiving through the built binary (`archive_command =
//! 'lifeboat --config C wal push %p'`, a key file), its server stopped and
//! started by `pg_ctl` as the source's `control` says (docs/physical.md,
//! "Recovering a source to a moment"): refusals that touch nothing (no
//! `pgdata`, a `pgdata` that is a copy of the server's cluster but not its
//! directory, a moment before every base backup, a moment to come, a
//! `TMPDIR` missing or closed to the server's user); a
//! failure after the stop (a verification query that fails on the
//! recovered data) putting the old directory back and running with every
//! row; Ctrl-C during the replay, the same; `kill -9` during the replay
//! (its private server left running; its repository lock, left too, is
//! judged stale by a prune), in the middle of the swap (`pgdata` moved
//! aside, a pause point between the renames) and after it (the recovered
//! cluster in place, not started: a pause point before the start): the
//! rerun refuses, naming what is left and what to do, and changes nothing,
//! and once that is done every row of the old data is there; then the recovery
//! itself, run again: the row committed before the moment is
//! there, the one after it is not, the old directory kept aside, the server
//! a writable primary on a new timeline, the writers stopped and back, the
//! record stored.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::archive::{Archive, chown_postgres, one, switch_and_archive};
use common::standby::SeededStandby;
use common::{poll, rt};
use lifeboat_postgres::{ClusterOptions, TempCluster};

/// The FIFO at `path` opened for writing, without blocking: it opens only
/// when some process is reading it. Held, that reader's read blocks until
/// it is dropped.
fn hold_fifo(path: &Path) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .ok()
}

/// Whether some process is reading the FIFO at `path`.
fn fifo_has_reader(path: &Path) -> bool {
    hold_fifo(path).is_some()
}

/// A FIFO of the test's own, owned by the server's user.
fn make_fifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) on a path of our own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0);
    chown_postgres(path);
}

/// A recovery stopped where its recovery server's `wal fetch` reads the
/// configuration (a FIFO): the process, its stderr, and the FIFO's writer,
/// held so that the `wal fetch` stays blocked until it is dropped.
struct InReplay {
    child: std::process::Child,
    stderr: std::io::BufReader<std::process::ChildStderr>,
    seen: String,
    fifo: PathBuf,
    writer: Option<std::fs::File>,
}

/// Starts `lifeboat --config <a's> ARGS` (a recovery) that stops at the
/// pause point `point` (`LIFEBOAT_TEST_RECOVER_PAUSE=<point>:<fifo>`) until
/// the test opens `fifo`; its stderr goes to `stderr`.
fn paused_recover(
    a: &Archive,
    args: &[&str],
    point: &str,
    fifo: &Path,
    stderr: &Path,
) -> std::process::Child {
    std::process::Command::new(common::bin())
        .arg("--config")
        .arg(&a.config)
        .args(args)
        .env_remove("LIFEBOAT_PASSWORD")
        .env_remove("LIFEBOAT_CONFIG")
        .env("PGPASSWORD", &a.password)
        .env(
            "LIFEBOAT_TEST_RECOVER_PAUSE",
            format!("{point}:{}", fifo.display()),
        )
        .current_dir(a.env.dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap()
}

/// kill -9 of a recovery held at its pause point (`writer` holds the FIFO
/// `pause` open); it must die by that signal. The FIFO is removed.
fn kill_at_pause(mut child: std::process::Child, writer: std::fs::File, pause: &Path) {
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    drop(writer);
    std::fs::remove_file(pause).unwrap();
}

/// Runs `lifeboat --config <a copy> ARGS` (a recovery) until its recovery
/// server's `wal fetch` blocks.
///
/// The pause point (as in physical_drill.rs): the command runs with a
/// configuration of its own, replaced by a FIFO once it has read it, so the
/// recovery server's `wal fetch` (which reads it again) blocks, and the test
/// sees it blocked (the FIFO has a reader).
fn in_replay(a: &Archive, args: &[&str]) -> InReplay {
    let own = a.env.path("recover.yaml");
    std::fs::copy(&a.config, &own).unwrap();
    chown_postgres(&own);
    let mut child = std::process::Command::new(common::bin())
        .arg("--config")
        .arg(&own)
        .args(args)
        .env_remove("LIFEBOAT_PASSWORD")
        .env_remove("LIFEBOAT_CONFIG")
        .env("PGPASSWORD", &a.password)
        .current_dir(a.env.dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        use std::io::BufRead;
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "ended early: {seen}"
        );
        seen.push_str(&line);
        if line.starts_with("check:") {
            break;
        }
    }
    let fifo = a.env.path("recover.fifo");
    make_fifo(&fifo);
    std::fs::rename(&fifo, &own).unwrap();
    let writer = poll(
        Duration::from_secs(120),
        "the recovery server's wal fetch waiting on the configuration",
        || hold_fifo(&own),
    );
    InReplay {
        child,
        stderr,
        seen,
        fifo: own,
        writer: Some(writer),
    }
}

impl InReplay {
    /// Sends `signal` to the recovery; its exit status and stderr.
    fn signal(&mut self, signal: libc::c_int) -> (std::process::ExitStatus, String) {
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
        let status = self.child.wait().unwrap();
        std::io::Read::read_to_string(&mut self.stderr, &mut self.seen).unwrap();
        (status, self.seen.clone())
    }

    /// Lets a `wal fetch` still waiting (if any) read end-of-file and exit;
    /// removes the FIFO.
    fn release(mut self) {
        drop(self.writer.take());
        fifo_has_reader(&self.fifo);
        std::fs::remove_file(&self.fifo).unwrap();
    }
}

/// Runs `lifeboat --config <a copy> ARGS` (a recovery) until its recovery
/// server's `wal fetch` blocks, calls `paused`, sends `signal` and returns
/// the exit code and stderr (the recovery's own handling of the signal).
fn interrupted(
    a: &Archive,
    args: &[&str],
    signal: libc::c_int,
    paused: impl FnOnce(),
) -> (Option<i32>, String) {
    let mut run = in_replay(a, args);
    // Opened and closed, as the test saw the reader.
    drop(run.writer.take());
    paused();
    let (status, seen) = run.signal(signal);
    run.release();
    (status.code(), seen)
}

/// Whether process `pid` is a live one whose command line names `what`
/// (a zombie's is empty).
fn runs_on(pid: u32, what: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(what))
}

/// The postmaster's pid in `dir/postmaster.pid`.
fn postmaster_pid(dir: &Path) -> u32 {
    let t = std::fs::read_to_string(dir.join("postmaster.pid")).unwrap();
    t.lines().next().unwrap().trim().parse().unwrap()
}

/// `pg_ctl start -w` on `pgdata` as the server's user, its output in
/// `<pgdata>.log` (what the source's `control: {pg_ctl: …}` does): an
/// operator starting the server by hand.
fn pg_ctl_start(bin: &Path, pgdata: &Path) {
    use std::os::unix::process::CommandExt;
    let log = pgdata.with_extension("log");
    let mut cmd = std::process::Command::new(bin.join("pg_ctl"));
    cmd.arg("start")
        .arg("-D")
        .arg(pgdata)
        .arg("-l")
        .arg(&log)
        .arg("-w")
        .current_dir("/")
        .stdin(std::process::Stdio::null());
    if let Some((uid, gid)) = lifeboat_region::replication::target::os_user(None).unwrap() {
        cmd.uid(uid).gid(gid);
    }
    let out = cmd.output().expect("pg_ctl start");
    assert!(
        out.status.success(),
        "pg_ctl start: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// The labels of `pitr` on the running source, by id.
fn live_labels(rt: &tokio::runtime::Runtime, c: &TempCluster) -> Vec<String> {
    rt.block_on(async {
        let client = c.conn_config("postgres").connect().await.unwrap();
        client
            .query("SELECT label FROM pitr ORDER BY id", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect()
    })
}

/// Names beside the data directory other than `data` itself and the
/// cluster's own files (`data.replaced-…`, `data.recovering-…`).
fn siblings(c: &TempCluster) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(c.dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("data.re"))
        .collect();
    v.sort();
    v
}

fn source(
    name: &str,
    url: &str,
    pgdata: Option<&Path>,
    bin: &Path,
    log: &Path,
    extra_query: &str,
) -> String {
    let pgdata = pgdata
        .map(|p| {
            format!(
                "      pgdata: {}\n      control: {{pg_ctl: {{bin_dir: {}}}}}\n",
                p.display(),
                bin.display()
            )
        })
        .unwrap_or_default();
    format!(
        r#"  {name}:
    kind: postgres
    postgres:
      url: {url}
{pgdata}      verify_queries:
        - {{name: labels, sql: "SELECT string_agg(label, ',' ORDER BY id) FROM pitr"}}
{extra_query}    quiesce:
      commands:
        pre: [[sh, -c, "echo pre >> {log}"]]
        post: [[sh, -c, "echo post >> {log}"]]
"#,
        log = log.display()
    )
}

#[test]
fn recover_in_place_to_just_before_a_moment() {
    let rt = rt();
    let mut a = Archive::new();
    let cluster = TempCluster::start_with(ClusterOptions {
        settings: vec![
            ("archive_mode".into(), "on".into()),
            ("archive_command".into(), a.archive_command()),
            ("wal_level".into(), "replica".into()),
            ("full_page_writes".into(), "on".into()),
        ],
        ..Default::default()
    })
    .expect("start PostgreSQL 15 (run scripts/test.sh to install it)");
    // Once `recover` has stopped it, the server runs under pg_ctl: stopped
    // when the test ends, however it ends.
    let _pg_ctl = SeededStandby {
        bin: cluster.bin_dir().to_path_buf(),
        pgdata: cluster.data_dir(),
    };
    a.password = cluster.password().expose().to_string();
    let url = cluster.url("postgres");
    // TempCluster passes its settings on the command line; a server that
    // pg_ctl starts on the directory (and on a base backup of it) reads
    // them from postgresql.auto.conf.
    rt.block_on(async {
        let c = cluster.conn_config("postgres").connect().await.unwrap();
        for (k, v) in [
            ("port", cluster.port().to_string()),
            ("listen_addresses", "127.0.0.1".into()),
            (
                "unix_socket_directories",
                cluster.socket_dir().display().to_string(),
            ),
            ("archive_mode", "on".into()),
            ("archive_command", a.archive_command()),
            ("wal_level", "replica".into()),
            ("full_page_writes", "on".into()),
        ] {
            c.execute(&format!("ALTER SYSTEM SET {k} = '{v}'"), &[])
                .await
                .unwrap();
        }
        c.batch_execute(
            "CREATE TABLE pitr (id serial PRIMARY KEY, label text NOT NULL);
             INSERT INTO pitr (label) VALUES ('base');
             CHECKPOINT;",
        )
        .await
        .unwrap();
    });
    let backup = a.ok_json(&["backup", "physical", "--db", &url]);
    let backup_start = backup["facts"]["start_time"].as_str().unwrap().to_string();

    // A, the moment, B strictly after it (the server's clock moved on).
    one(
        &rt,
        &cluster,
        "INSERT INTO pitr (label) VALUES ('A') RETURNING id",
    );
    let moment = one(
        &rt,
        &cluster,
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    );
    poll(Duration::from_secs(10), "the clock to move", || {
        let later = one(
            &rt,
            &cluster,
            &format!("SELECT clock_timestamp() > '{moment}'::timestamptz"),
        );
        (later == "t").then_some(())
    });
    one(
        &rt,
        &cluster,
        "INSERT INTO pitr (label) VALUES ('B') RETURNING id",
    );
    switch_and_archive(&rt, &cluster);
    let all = vec!["base".to_string(), "A".into(), "B".into()];
    assert_eq!(live_labels(&rt, &cluster), all);

    // The configuration: `main` as it should be, and sources that must be
    // refused or fail.
    let copy = cluster.physical_copy().expect("a physical copy");
    let log = a.env.path("quiesce.log");
    let bin = cluster.bin_dir().to_path_buf();
    let data = cluster.data_dir();
    let key = a.env.path("wal.key");
    let yaml = format!(
        "repository:\n  url: {}\n  key_file: {}\nsources:\n{}{}{}{}",
        a.env.repo,
        key.display(),
        source("main", &url, Some(&data), &bin, &log, ""),
        source("nopgdata", &url, None, &bin, &log, ""),
        source("copy", &url, Some(&copy.data_dir()), &bin, &log, ""),
        source(
            "failing",
            &url,
            Some(&data),
            &bin,
            &log,
            "        - {name: b_there, sql: \"SELECT 1 / (SELECT count(*) FROM pitr WHERE label = 'B')::int\"}\n",
        ),
    );
    std::fs::write(&a.config, yaml).unwrap();
    chown_postgres(&a.config);
    // With --json: exactly one document on stdout, its error's exit code
    // the process's.
    let recover = |name: &str, before: &str| {
        let (code, out, err) = a.run(&[
            "--json", "recover", "postgres", "--source", name, "--before", before,
        ]);
        let doc: serde_json::Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("one JSON document ({e}): {out}\n{err}"));
        if code != Some(0) {
            assert_eq!(
                doc["error"]["exit_code"].as_i64(),
                code.map(i64::from),
                "{doc}"
            );
        }
        (code, out, err)
    };
    let start_time = || one(&rt, &cluster, "SELECT pg_postmaster_start_time()::text");
    let started = start_time();
    let untouched = |what: &str| {
        assert_eq!(live_labels(&rt, &cluster), all, "{what}");
        assert_eq!(
            start_time(),
            started,
            "{what}: the server was not restarted"
        );
        assert!(!log.exists(), "{what}: no writer was stopped");
        assert!(
            siblings(&cluster).is_empty(),
            "{what}: {:?}",
            siblings(&cluster)
        );
    };

    // --- refusals: exit 2 (3: no base backup reaches it), nothing touched ---
    let (code, out, err) = recover("nopgdata", &moment);
    assert_eq!(code, Some(2), "{out}\n{err}");
    assert!(err.contains("pgdata is not set"), "{err}");
    untouched("no pgdata");
    let (code, out, err) = recover("copy", &moment);
    assert_eq!(code, Some(2), "{out}\n{err}");
    assert!(err.contains("not on the configured pgdata"), "{err}");
    untouched("a copy's directory");
    let early =
        chrono::DateTime::parse_from_rfc3339(&backup_start).unwrap() - chrono::Duration::hours(1);
    let (code, out, err) = recover("main", &early.to_rfc3339());
    assert_eq!(code, Some(3), "{out}\n{err}");
    assert!(err.contains("can reach"), "{err}");
    untouched("a moment before every base backup");
    let (code, out, err) = recover("main", "2999-01-01T00:00:00Z");
    assert_eq!(code, Some(2), "{out}\n{err}");
    assert!(err.contains("not in the past"), "{err}");
    untouched("a moment to come");
    // A TMPDIR the recovery server's run directory (socket, log) cannot be
    // made in, or that the server's user cannot enter (root's, mode 0700):
    // refused before the writers or the server are touched, which then
    // still takes writes.
    let missing = a.env.path("no-such-tmp");
    let closed = a.env.path("closed-tmp");
    std::fs::create_dir(&closed).unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    for (tmp, what, why) in [
        (&missing, "a missing TMPDIR", "No such file or directory"),
        (
            &closed,
            "a TMPDIR the server's user cannot enter",
            "the server's operating-system user cannot enter",
        ),
    ] {
        let (code, out, err) = a.run_env(
            &[
                "recover", "postgres", "--source", "main", "--before", &moment,
            ],
            &[("TMPDIR", tmp.as_os_str())],
        );
        assert_eq!(code, Some(2), "{what}: {out}\n{err}");
        assert!(
            err.contains(&format!("made in TMPDIR {}", tmp.display()))
                && err.contains(why)
                && err.contains("Nothing was changed; set TMPDIR to an existing directory"),
            "{what}: {err}"
        );
        untouched(what);
        let probe = one(
            &rt,
            &cluster,
            "CREATE TABLE IF NOT EXISTS tmpdir_probe (n int); \
             INSERT INTO tmpdir_probe VALUES (1) RETURNING n",
        );
        assert_eq!(probe, "1", "{what}: the server takes writes");
    }
    assert!(!missing.exists());
    assert!(
        std::fs::read_dir(&closed).unwrap().next().is_none(),
        "nothing left in TMPDIR"
    );
    // What a `kill -9` before the swap leaves (a partial restore beside the
    // data directory): named, with what to do, and left alone.
    let leftover = {
        let d = cluster.data_dir();
        let name = d.file_name().unwrap().to_string_lossy().into_owned();
        d.with_file_name(format!("{name}.recovering-20261204T104703Z"))
    };
    std::fs::create_dir(&leftover).unwrap();
    let (code, out, err) = recover("main", &moment);
    assert_eq!(code, Some(2), "{out}\n{err}");
    assert!(
        err.contains(&format!("rm -rf {}", leftover.display())),
        "{err}"
    );
    assert!(leftover.is_dir(), "the leftover is the user's to remove");
    std::fs::remove_dir(&leftover).unwrap();
    untouched("a leftover of a killed recovery");
    drop(copy);

    // --- a failure after the stop: the old directory back, running -------
    let (code, out, err) = recover("failing", &moment);
    assert_eq!(code, Some(7), "{out}\n{err}");
    assert!(err.contains("b_there"), "the failing query named: {err}");
    assert!(err.contains("put back"), "{err}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "pre\npost\n");
    assert_ne!(start_time(), started, "stopped, then started again");
    assert_eq!(live_labels(&rt, &cluster), all, "every row, B too");
    assert!(siblings(&cluster).is_empty(), "{:?}", siblings(&cluster));
    let records = || -> Vec<PathBuf> {
        std::fs::read_dir(PathBuf::from(&a.env.repo).join("recoveries"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    assert_eq!(records().len(), 1, "the failed recovery is recorded");

    // --- Ctrl-C during the recovery: the old directory back, running ------
    let (code, stderr) = interrupted(
        &a,
        &[
            "recover", "postgres", "--source", "main", "--before", &moment,
        ],
        libc::SIGINT,
        || {
            assert_eq!(
                siblings(&cluster).len(),
                1,
                "recovering beside the data directory: {:?}",
                siblings(&cluster)
            )
        },
    );
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("put back"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "pre\npost\npre\npost\n"
    );
    assert_eq!(live_labels(&rt, &cluster), all, "every row, B too");
    assert!(siblings(&cluster).is_empty(), "{:?}", siblings(&cluster));
    assert_eq!(records().len(), 2, "the interrupted recovery is recorded");

    // --- kill -9 while the recovered directory replays beside the data
    // directory (the server stopped, the writers quiesced): nothing can put
    // anything back, and the recovery's private server is left running
    // (blocked in its `wal fetch`, as when the replay is long).
    let writers_log = || std::fs::read_to_string(&log).unwrap();
    let recover_main = [
        "recover", "postgres", "--source", "main", "--before", &moment,
    ];
    let mut run = in_replay(&a, &recover_main);
    let left = siblings(&cluster);
    assert!(
        left.len() == 1 && left[0].starts_with("data.recovering-"),
        "{left:?}"
    );
    let recovering = data.with_file_name(&left[0]);
    let private = postmaster_pid(&recovering);
    let killed = run.child.id();
    let (status, stderr) = run.signal(libc::SIGKILL);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL),
        "{stderr}"
    );
    assert!(
        stderr.contains("if this recovery is killed, start the server on"),
        "what to do after a kill was printed before the writers stopped: {stderr}"
    );
    let after_kill = format!("{}pre\n", "pre\npost\n".repeat(2));
    let killed_state = |what: &str| {
        assert_eq!(siblings(&cluster), left, "{what}");
        assert!(
            runs_on(private, &left[0]),
            "{what}: the killed recovery's private server runs on"
        );
        assert!(
            !data.join("postmaster.pid").exists(),
            "{what}: the source's server is stopped"
        );
        assert_eq!(writers_log(), after_kill, "{what}: the writers are stopped");
    };
    killed_state("killed during the replay");
    // The rerun refuses before touching anything, naming the partial
    // restore, the server still running on it, and what to do.
    let (code, out, err) = recover("main", &moment);
    assert_eq!(code, Some(2), "{out}\n{err}");
    let (stop, remove) = (
        err.find(&format!("kill -QUIT {private}")),
        err.find(&format!("rm -rf {}", recovering.display())),
    );
    assert!(
        stop.is_some() && remove.is_some() && stop < remove,
        "the private server stopped, then its directory removed: {err}"
    );
    assert!(
        err.contains("start it and bring the writers back") && err.contains("unquiesce"),
        "{err}"
    );
    killed_state("the rerun changed nothing");
    assert_eq!(records().len(), 2, "a kill -9 leaves no record");
    // The killed recovery's shared lock is left in the repository. Its
    // process is gone on this very kernel and PID namespace: an exclusive
    // operation (prune) judges it stale at once, removes it and proceeds,
    // holding back nothing for it.
    let locks = || -> Vec<PathBuf> {
        std::fs::read_dir(PathBuf::from(&a.env.repo).join("locks"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    assert_eq!(locks().len(), 1, "the killed recovery's lock is left");
    let (code, out, err) = a.run_env(&["prune"], &[("LIFEBOAT_LOG", "info".as_ref())]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        err.contains(&format!(
            "removing stale lock: shared lock for recover postgres held by pid {killed}"
        )),
        "{err}"
    );
    assert!(
        !out.contains("recover postgres"),
        "nothing waits for it: {out}"
    );
    assert!(locks().is_empty(), "{:?}", locks());
    killed_state("prune touched nothing of the recovery");
    // The instructions, followed: every row of the old data is there.
    // SAFETY: kill(2) on the server the killed recovery started.
    assert_eq!(unsafe { libc::kill(private as i32, libc::SIGQUIT) }, 0);
    poll(
        Duration::from_secs(60),
        "the private server to stop",
        || (!runs_on(private, &left[0])).then_some(()),
    );
    run.release();
    // Brings the writers back as `unquiesce` says: for commands, it names
    // the post commands, which the operator runs.
    let unquiesce = || {
        let (code, out, err) = a.run(&["unquiesce", "--source", "main"]);
        assert_eq!(code, Some(0), "{out}\n{err}");
        assert!(
            out.contains(&format!("echo post >> {}", log.display())),
            "{out}"
        );
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(b"post\n").unwrap();
    };
    std::fs::remove_dir_all(&recovering).unwrap();
    pg_ctl_start(&bin, &data);
    unquiesce();
    assert_eq!(live_labels(&rt, &cluster), all, "every row, B too");
    assert!(siblings(&cluster).is_empty(), "{:?}", siblings(&cluster));

    // --- kill -9 in the middle of the swap: pgdata moved aside, the
    // recovered directory not yet in its place (a pause point between the
    // two renames, `LIFEBOAT_TEST_RECOVER_PAUSE`).
    let pause = a.env.path("swap.fifo");
    make_fifo(&pause);
    let swap_err = a.env.path("swap.stderr");
    let mut child = paused_recover(&a, &recover_main, "swap", &pause, &swap_err);
    let writer = poll(Duration::from_secs(180), "the recovery in its swap", || {
        if let Some(s) = child.try_wait().unwrap() {
            panic!(
                "ended before its swap ({s}): {}",
                std::fs::read_to_string(&swap_err).unwrap()
            );
        }
        hold_fifo(&pause)
    });
    assert!(!data.exists(), "pgdata moved aside");
    let left = siblings(&cluster);
    assert_eq!(left.len(), 2, "{left:?}");
    let (recovered, aside) = (data.with_file_name(&left[0]), data.with_file_name(&left[1]));
    assert!(
        left[0].starts_with("data.recovering-") && left[1].starts_with("data.replaced-"),
        "{left:?}"
    );
    kill_at_pause(child, writer, &pause);
    let after_kill = format!("{}pre\n", "pre\npost\n".repeat(3));
    let killed_state = |what: &str| {
        assert!(!data.exists(), "{what}");
        assert_eq!(siblings(&cluster), left, "{what}");
        assert_eq!(writers_log(), after_kill, "{what}: the writers are stopped");
    };
    killed_state("killed during the swap");
    let (code, out, err) = recover("main", &moment);
    assert_eq!(code, Some(2), "{out}\n{err}");
    assert!(
        err.contains(&format!("mv {} {}", aside.display(), data.display()))
            && err.contains(&format!("rm -rf {}", recovered.display()))
            && err.contains("unquiesce"),
        "{err}"
    );
    killed_state("the rerun changed nothing");
    assert_eq!(records().len(), 2, "a kill -9 leaves no record");
    // The old directory, moved back as the message says, has every row.
    std::fs::rename(&aside, &data).unwrap();
    std::fs::remove_dir_all(&recovered).unwrap();
    pg_ctl_start(&bin, &data);
    unquiesce();
    assert_eq!(live_labels(&rt, &cluster), all, "every row, B too");
    assert!(siblings(&cluster).is_empty(), "{:?}", siblings(&cluster));

    // --- kill -9 after the swap, before the server starts: the recovered
    // cluster is in pgdata, the old one beside it (the pause point
    // `swapped`, both renames done and synced).
    let pause = a.env.path("swapped.fifo");
    make_fifo(&pause);
    let swapped_err = a.env.path("swapped.stderr");
    let mut child = paused_recover(&a, &recover_main, "swapped", &pause, &swapped_err);
    let writer = poll(
        Duration::from_secs(180),
        "the recovery past its swap",
        || {
            if let Some(s) = child.try_wait().unwrap() {
                panic!(
                    "ended before its swap ({s}): {}",
                    std::fs::read_to_string(&swapped_err).unwrap()
                );
            }
            hold_fifo(&pause)
        },
    );
    let left = siblings(&cluster);
    assert!(
        left.len() == 1 && left[0].starts_with("data.replaced-"),
        "{left:?}"
    );
    let aside = data.with_file_name(&left[0]);
    assert!(
        data.join("PG_VERSION").exists() && !data.join("postmaster.pid").exists(),
        "the recovered cluster in pgdata, not started"
    );
    kill_at_pause(child, writer, &pause);
    let after_kill = format!("{}pre\n", "pre\npost\n".repeat(4));
    let killed_state = |what: &str| {
        assert_eq!(siblings(&cluster), left, "{what}");
        assert!(!data.join("postmaster.pid").exists(), "{what}: not started");
        assert_eq!(writers_log(), after_kill, "{what}: the writers are stopped");
    };
    killed_state("killed after the swap");
    // The rerun names the kept-aside directory as the pre-recovery data
    // directory and says what to do with each, and changes nothing.
    let (code, out, err) = recover("main", &moment);
    assert_eq!(code, Some(2), "{out}\n{err}");
    let (d, o) = (data.display(), aside.display());
    assert!(
        err.contains(&format!("{d} holds the recovered cluster"))
            && err.contains(&format!("{o} is the pre-recovery data directory"))
            && err.contains(&format!("keep {o} until the recovered server is verified"))
            && err.contains(&format!("rm -rf {o}"))
            && err.contains(&format!("mv {d} {d}.not-recovered && mv {o} {d}"))
            && err.contains("lifeboat unquiesce --source main")
            && err.contains("Nothing was changed"),
        "{err}"
    );
    killed_state("the rerun changed nothing");
    assert_eq!(records().len(), 2, "a kill -9 leaves no record");
    // What each directory holds, as the message says: pgdata the cluster
    // just before the moment (A, not B), the kept-aside one every row
    // (read by a private server each, archiving off).
    assert_eq!(
        common::archive::labels(&data, "pitr"),
        vec!["base".to_string(), "A".into()]
    );
    assert_eq!(common::archive::labels(&aside, "pitr"), all);
    // The way back, followed as printed: every row, B too.
    let not_recovered = data.with_file_name("data.not-recovered");
    std::fs::rename(&data, &not_recovered).unwrap();
    std::fs::rename(&aside, &data).unwrap();
    pg_ctl_start(&bin, &data);
    unquiesce();
    assert_eq!(live_labels(&rt, &cluster), all, "every row, B too");
    std::fs::remove_dir_all(&not_recovered).unwrap();
    assert!(siblings(&cluster).is_empty(), "{:?}", siblings(&cluster));

    // --- the recovery, run again after the kills --------------------------------
    let (code, out, err) = recover("main", &moment);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        live_labels(&rt, &cluster),
        vec!["base".to_string(), "A".into()],
        "A (before the moment) is there, B (after it) is not: {v}"
    );
    assert_eq!(v["queries"][0]["value"], "base,A", "{v}");
    assert_eq!(v["timeline"], 2, "{v}");
    assert_eq!(v["writers"], "resumed");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "pre\npost\n".repeat(6),
        "the failure, Ctrl-C, the three kills (writers brought back by hand), the recovery"
    );
    let replay = v["replay_time"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(replay).unwrap()
            < chrono::DateTime::parse_from_rfc3339(&moment).unwrap(),
        "{v}"
    );
    assert!(v["rpo_seconds"].as_f64().unwrap() >= 0.0, "{v}");
    assert!(v["rto_seconds"].as_f64().unwrap() > 0.0, "{v}");
    // The old directory, kept aside whole: its own server still has B.
    let aside = PathBuf::from(v["replaced"].as_str().unwrap());
    assert_eq!(
        siblings(&cluster),
        vec![aside.file_name().unwrap().to_string_lossy().into_owned()]
    );
    assert!(aside.join("PG_VERSION").exists() && aside.join("global/pg_control").exists());
    assert_eq!(common::archive::labels(&aside, "pitr"), all);
    // A writable primary, archiving into the repository on its timeline.
    assert_eq!(
        one(&rt, &cluster, "SELECT pg_is_in_recovery()::text"),
        "false"
    );
    one(
        &rt,
        &cluster,
        "INSERT INTO pitr (label) VALUES ('C') RETURNING id",
    );
    let seg = one(&rt, &cluster, "SELECT pg_walfile_name(pg_switch_wal())");
    poll(Duration::from_secs(120), "C's segment archived", || {
        let (failed, archived) = (
            one(&rt, &cluster, "SELECT failed_count FROM pg_stat_archiver"),
            one(
                &rt,
                &cluster,
                "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver",
            ),
        );
        assert_eq!(
            failed,
            "0",
            "archiving failed; the server's log:\n{}",
            std::fs::read_to_string(cluster.dir().join("data.log")).unwrap_or_default()
        );
        (archived >= seg).then_some(())
    });
    assert!(seg.starts_with("00000002"), "{seg}");
    assert!(
        PathBuf::from(&a.env.repo)
            .join("wal/00000002/00000002.history")
            .exists(),
        "the new timeline's history file is archived"
    );
    assert_eq!(records().len(), 3, "the recovery is recorded");
    assert!(
        records()
            .iter()
            .any(|p| p.file_name().unwrap().to_string_lossy() == v["record"].as_str().unwrap()),
        "{v}"
    );

    // --- a later recovery, from the server on timeline 2, dropping what
    // was kept aside: the same moment again (C, written on timeline 2
    // after it, goes), through the history file archived above.
    let (code, out, err) = a.run(&[
        "--json",
        "recover",
        "postgres",
        "--source",
        "main",
        "--before",
        &moment,
        "--drop-replaced",
    ]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let w: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        live_labels(&rt, &cluster),
        vec!["base".to_string(), "A".into()],
        "{w}"
    );
    assert_eq!(w["timeline"], 3, "{w}");
    assert_eq!(
        w["dropped"].as_array().unwrap().len(),
        2,
        "both kept-aside directories: {w}"
    );
    assert!(siblings(&cluster).is_empty(), "{:?}", siblings(&cluster));
    assert_eq!(records().len(), 4);

    // --- `recover list`: the four records, oldest first, as stored.
    let listed = a.ok_json(&["recover", "list"]);
    let listed = listed.as_array().unwrap();
    let oks: Vec<bool> = listed.iter().map(|r| r["ok"].as_bool().unwrap()).collect();
    assert_eq!(
        oks,
        [false, false, true, true],
        "the injected failure, the interruption, two recoveries: {listed:?}"
    );
    assert!(listed.iter().all(|r| r["mode"] == "replace"));
    assert_eq!(listed[3]["id"], w["record"], "{listed:?}");
    assert_eq!(listed[3]["timeline"], 3);
    let (code, out, err) = a.run(&["recover", "list"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 5, "a header and four rows: {out}");
    assert_eq!(out.matches("FAILED").count(), 2, "{out}");
    assert_eq!(out.matches("whole server").count(), 4, "{out}");
    let (code, out, err) = a.run(&["recover", "list", "--source", "elsewhere"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("no recoveries recorded for source elsewhere"),
        "{out}"
    );
}

/// The labels of `pitr` in database `db` of the running server, by id.
fn labels_in(rt: &tokio::runtime::Runtime, c: &TempCluster, db: &str) -> Vec<String> {
    rt.block_on(async {
        let client = c.conn_config(db).connect().await.unwrap();
        client
            .query("SELECT label FROM pitr ORDER BY id", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect()
    })
}

/// Runs `sql` in database `db` (one statement, its first value as text).
fn one_in(rt: &tokio::runtime::Runtime, c: &TempCluster, db: &str, sql: &str) -> String {
    rt.block_on(async {
        let client = c.conn_config(db).connect().await.unwrap();
        let rows = client.simple_query(sql).await.unwrap();
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

/// `recover postgres --database`: a server with two databases, `alpha`
/// (the source) and `beta`, rows committed in both before and after the
/// moment. `alpha` goes back to just before the moment through a side
/// server; `beta`, rows written after the moment included, is untouched,
/// and the server is never restarted. Refusals first, each changing
/// nothing: `--database` not the source's database (exit 2), a source
/// whose database was created after the moment (exit 3, after the side
/// server found it missing), a `--side-dir` or `TMPDIR` the server's user
/// cannot enter (exit 2 in the checks, nothing written); then a side server
/// PostgreSQL refuses to start (too low an open-files limit: exit 1 after
/// the base backup was written, the source untouched).
#[test]
fn recover_one_database_through_a_side_server() {
    let rt = rt();
    let mut a = Archive::new();
    let cluster = TempCluster::start_with(ClusterOptions {
        settings: vec![
            ("archive_mode".into(), "on".into()),
            ("archive_command".into(), a.archive_command()),
            ("wal_level".into(), "replica".into()),
            ("full_page_writes".into(), "on".into()),
        ],
        ..Default::default()
    })
    .expect("start PostgreSQL 15 (run scripts/test.sh to install it)");
    a.password = cluster.password().expose().to_string();
    let url = cluster.url("postgres");
    rt.block_on(async {
        let c = cluster.conn_config("postgres").connect().await.unwrap();
        // One statement each: CREATE DATABASE cannot run in a transaction block.
        c.batch_execute("CREATE DATABASE alpha").await.unwrap();
        c.batch_execute("CREATE DATABASE beta").await.unwrap();
        for db in ["alpha", "beta"] {
            let c = cluster.conn_config(db).connect().await.unwrap();
            c.batch_execute(
                "CREATE TABLE pitr (id serial PRIMARY KEY, label text NOT NULL);
                 INSERT INTO pitr (label) VALUES ('base');",
            )
            .await
            .unwrap();
        }
        c.batch_execute("CHECKPOINT").await.unwrap();
    });
    a.ok_json(&["backup", "physical", "--db", &url]);

    // A1 and B1, the moment, then A2 and B2 strictly after it (the
    // server's clock moved on), and a database created after it.
    let insert = |db: &str, label: &str| {
        one_in(
            &rt,
            &cluster,
            db,
            &format!("INSERT INTO pitr (label) VALUES ('{label}') RETURNING id"),
        )
    };
    insert("alpha", "A1");
    insert("beta", "B1");
    let moment = one(
        &rt,
        &cluster,
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    );
    poll(Duration::from_secs(10), "the clock to move", || {
        let later = one(
            &rt,
            &cluster,
            &format!("SELECT clock_timestamp() > '{moment}'::timestamptz"),
        );
        (later == "t").then_some(())
    });
    insert("alpha", "A2");
    insert("beta", "B2");
    one(&rt, &cluster, "CREATE DATABASE late");
    switch_and_archive(&rt, &cluster);
    let alpha_all = vec!["base".to_string(), "A1".into(), "A2".into()];
    let beta_all = vec!["base".to_string(), "B1".into(), "B2".into()];
    assert_eq!(labels_in(&rt, &cluster, "alpha"), alpha_all);
    assert_eq!(labels_in(&rt, &cluster, "beta"), beta_all);

    // No pgdata, no control: this mode never stops the server.
    let log = a.env.path("quiesce.log");
    let bin = cluster.bin_dir().to_path_buf();
    let key = a.env.path("wal.key");
    let yaml = format!(
        "repository:\n  url: {}\n  key_file: {}\nsources:\n{}{}",
        a.env.repo,
        key.display(),
        source("alpha", &cluster.url("alpha"), None, &bin, &log, ""),
        source("late", &cluster.url("late"), None, &bin, &log, ""),
    );
    std::fs::write(&a.config, yaml).unwrap();
    chown_postgres(&a.config);
    let side = a.env.path("side");
    std::fs::create_dir(&side).unwrap();
    chown_postgres(&side);
    let recover = |name: &str, db: &str| {
        let (code, out, err) = a.run(&[
            "--json",
            "recover",
            "postgres",
            "--source",
            name,
            "--before",
            &moment,
            "--database",
            db,
            "--side-dir",
            side.to_str().unwrap(),
        ]);
        let doc: serde_json::Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("one JSON document ({e}): {out}\n{err}"));
        if code != Some(0) {
            assert_eq!(
                doc["error"]["exit_code"].as_i64(),
                code.map(i64::from),
                "{doc}"
            );
        }
        (code, doc, err)
    };
    let start_time = || one(&rt, &cluster, "SELECT pg_postmaster_start_time()::text");
    let started = start_time();
    let side_left = || -> Vec<PathBuf> {
        std::fs::read_dir(&side)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect()
    };
    let records = || -> Vec<PathBuf> {
        std::fs::read_dir(PathBuf::from(&a.env.repo).join("recoveries"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    let untouched = |what: &str| {
        assert_eq!(labels_in(&rt, &cluster, "alpha"), alpha_all, "{what}");
        assert_eq!(labels_in(&rt, &cluster, "beta"), beta_all, "{what}");
        assert_eq!(
            start_time(),
            started,
            "{what}: the server was not restarted"
        );
        assert!(!log.exists(), "{what}: no writer was stopped");
        assert!(side_left().is_empty(), "{what}: {:?}", side_left());
    };

    // --- refusals ------------------------------------------------------------
    let (code, doc, err) = recover("alpha", "beta");
    assert_eq!(code, Some(2), "{doc}\n{err}");
    assert!(err.contains("must be the source's"), "{err}");
    untouched("--database not the source's");
    assert!(
        records().is_empty(),
        "nothing recorded before the checks pass"
    );
    // A --side-dir without room for the base backup's files (a 16 MiB
    // tmpfs, mounted by the test as root): refused before anything runs.
    let small = a.env.path("small");
    std::fs::create_dir(&small).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", "lifeboat-test-small"])
        .arg(&small)
        .status()
        .expect("mount");
    assert!(
        mounted.success(),
        "mounting a small tmpfs (the tests run as root)"
    );
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let unmount = Unmount(small.clone());
    chown_postgres(&small);
    let (code, out, err) = a.run(&alpha_into(&moment, small.to_str().unwrap()));
    assert_eq!(code, Some(2), "{out}\n{err}");
    assert!(
        err.contains("not enough free space") && err.contains("pass --side-dir DIR"),
        "{err}"
    );
    assert!(
        std::fs::read_dir(&small).unwrap().next().is_none(),
        "nothing written in the small directory"
    );
    drop(unmount);
    untouched("a --side-dir without room");
    assert!(records().is_empty(), "nothing recorded");
    let (code, doc, err) = recover("late", "late");
    assert_eq!(code, Some(3), "{doc}\n{err}");
    assert!(
        err.contains("database late does not exist in the cluster as it was just before"),
        "{err}"
    );
    assert!(
        err.contains("alpha, beta"),
        "the databases there named: {err}"
    );
    assert!(err.contains("nothing was changed on the source"), "{err}");
    untouched("a database created after the moment");
    assert_eq!(records().len(), 1, "the failed recovery is recorded");

    // --- side servers that fail to start: the source untouched, the
    // writers never stopped, nothing left behind.
    let no_side_server = |what: &str, dir: &Path| {
        let running: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains(dir.to_str().unwrap()) && c.contains("postgres"))
            .collect();
        assert!(running.is_empty(), "{what}: still running: {running:?}");
    };
    // A directory the server's user cannot enter (root's, mode 0700).
    let closed = a.env.path("closed");
    std::fs::create_dir(&closed).unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    // (1) --side-dir inside it.
    let unreachable = closed.join("side");
    std::fs::create_dir(&unreachable).unwrap();
    chown_postgres(&unreachable);
    let (code, out, err) = a.run(&alpha_into(&moment, unreachable.to_str().unwrap()));
    assert_eq!(code, Some(2), "{out}\n{err}");
    assert!(
        err.contains(&format!(
            "the server's operating-system user cannot enter {}",
            unreachable.display()
        )) && err.contains("Nothing was changed; pass --side-dir DIR that user can enter"),
        "{err}"
    );
    assert!(
        std::fs::read_dir(&unreachable).unwrap().next().is_none(),
        "nothing left in the side directory"
    );
    no_side_server("--side-dir the server cannot enter", &unreachable);
    untouched("--side-dir the server cannot enter");
    assert_eq!(records().len(), 1, "refused in the checks: no record");
    // (2) TMPDIR, where the side server's socket and log directory is
    // made (--side-dir reachable): refused in the checks, before the base
    // backup is written, naming TMPDIR.
    let (code, out, err) = a.run_env(
        &alpha_into(&moment, side.to_str().unwrap()),
        &[("TMPDIR", closed.as_os_str())],
    );
    assert_eq!(code, Some(2), "{out}\n{err}");
    assert!(
        err.contains(&format!("made in TMPDIR {}", closed.display()))
            && err.contains("the server's operating-system user cannot enter")
            && err.contains("Nothing was changed; set TMPDIR to an existing directory"),
        "{err}"
    );
    assert!(side_left().is_empty(), "nothing written: {:?}", side_left());
    no_side_server("TMPDIR the server cannot enter", &side);
    no_side_server("TMPDIR the server cannot enter", &closed);
    untouched("TMPDIR the server cannot enter");
    let in_tmpdir: Vec<PathBuf> = std::fs::read_dir(&closed)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(
        in_tmpdir,
        std::slice::from_ref(&unreachable),
        "nothing left in TMPDIR"
    );
    assert_eq!(records().len(), 1, "refused in the checks: no record");
    // (3) An open-files limit too low for PostgreSQL (as systemd's
    // LimitNOFILE=50 would set, inherited by the side server), which no
    // check foresees: PostgreSQL itself refuses to start, after the base
    // backup was written into the side directory.
    let tmp = a.env.path("tmp-nofile");
    std::fs::create_dir(&tmp).unwrap();
    let (code, out, err) = {
        use std::os::unix::process::CommandExt;
        let mut c = std::process::Command::new(common::bin());
        c.arg("--config")
            .arg(&a.config)
            .args([
                "recover",
                "postgres",
                "--source",
                "alpha",
                "--before",
                &moment,
                "--database",
                "alpha",
                "--side-dir",
                side.to_str().unwrap(),
            ])
            .env_remove("LIFEBOAT_PASSWORD")
            .env_remove("LIFEBOAT_CONFIG")
            .env("PGPASSWORD", &a.password)
            .env("TMPDIR", &tmp)
            .current_dir(a.env.dir.path())
            .stdin(std::process::Stdio::null());
        // SAFETY: setrlimit is async-signal-safe; nothing else runs
        // between fork and exec.
        unsafe {
            c.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: 50,
                    rlim_max: 50,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let o = c.output().unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    assert_eq!(
        code,
        Some(1),
        "the server's failure, not a target missed: {out}\n{err}"
    );
    assert!(
        err.contains("the recovery server stopped before recovery ended (it did not start")
            && err.contains("insufficient file descriptors available to start server process"),
        "the server's log, its FATAL line: {err}"
    );
    assert!(err.contains("nothing was changed on the source"), "{err}");
    assert!(
        err.contains("the temporary data directory") && err.contains("was removed"),
        "{err}"
    );
    assert!(side_left().is_empty(), "{:?}", side_left());
    no_side_server("an open-files limit too low", &side);
    no_side_server("an open-files limit too low", &tmp);
    untouched("an open-files limit too low");
    assert!(
        std::fs::read_dir(&tmp).unwrap().next().is_none(),
        "nothing left in TMPDIR"
    );
    assert_eq!(records().len(), 2, "the failed recovery is recorded");

    // --- SIGTERM (what systemd and Kubernetes send) while the side server
    // replays: it is stopped, its directory removed, the source untouched.
    let side_arg = side.to_str().unwrap();
    let (code, stderr) = interrupted(&a, &alpha_into(&moment, side_arg), libc::SIGTERM, || {
        assert_eq!(side_left().len(), 1, "the side server's directory")
    });
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("the source was not touched"), "{stderr}");
    untouched("SIGTERM on the side server");
    let side_servers: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(side_arg) && c.contains("postgres"))
        .collect();
    assert!(side_servers.is_empty(), "still running: {side_servers:?}");
    assert_eq!(records().len(), 3, "the interrupted recovery is recorded");

    // --- the recovery ----------------------------------------------------------
    let (code, v, err) = recover("alpha", "alpha");
    assert_eq!(code, Some(0), "{v}\n{err}");
    assert_eq!(
        labels_in(&rt, &cluster, "alpha"),
        vec!["base".to_string(), "A1".into()],
        "A1 (before the moment) is there, A2 (after it) is not: {v}"
    );
    assert_eq!(
        labels_in(&rt, &cluster, "beta"),
        beta_all,
        "beta untouched, B2 (after the moment) too"
    );
    assert_eq!(start_time(), started, "the server was never restarted");
    assert_eq!(
        one(&rt, &cluster, "SELECT pg_is_in_recovery()::text"),
        "false"
    );
    assert_eq!(v["mode"], "database", "{v}");
    assert_eq!(v["database"], "alpha", "{v}");
    assert_eq!(v["queries"][0]["value"], "base,A1", "{v}");
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(v["writers"], "resumed", "{v}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "pre\npost\n");
    let replay = v["replay_time"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(replay).unwrap()
            < chrono::DateTime::parse_from_rfc3339(&moment).unwrap(),
        "{v}"
    );
    assert!(v["rpo_seconds"].as_f64().unwrap() >= 0.0, "{v}");
    assert!(v["rto_seconds"].as_f64().unwrap() > 0.0, "{v}");
    assert!(
        side_left().is_empty(),
        "side directory removed: {:?}",
        side_left()
    );
    assert_eq!(records().len(), 4, "the recovery is recorded");
    assert!(
        records()
            .iter()
            .any(|p| p.file_name().unwrap().to_string_lossy() == v["record"].as_str().unwrap()),
        "{v}"
    );
    // The recovered database is a logical snapshot of the source in the
    // repository, restorable again by id.
    let snaps = a.ok_json(&["snapshots", "--source", "alpha"]);
    let dump = v["dump_snapshot"].as_str().unwrap();
    assert!(
        snaps.to_string().contains(dump),
        "{dump} listed among the source's snapshots: {snaps}"
    );
    // The database takes writes again.
    insert("alpha", "C");
    assert_eq!(
        labels_in(&rt, &cluster, "alpha"),
        vec!["base".to_string(), "A1".into(), "C".into()]
    );

    // --- a database dropped by mistake: the server is asked through
    // `postgres`, the database created again and recovered.
    one(&rt, &cluster, "DROP DATABASE alpha WITH (FORCE)");
    let (code, w, err) = recover("alpha", "alpha");
    assert_eq!(code, Some(0), "{w}\n{err}");
    assert!(
        err.contains("asking the server through database postgres"),
        "{err}"
    );
    assert_eq!(
        labels_in(&rt, &cluster, "alpha"),
        vec!["base".to_string(), "A1".into()],
        "{w}"
    );
    assert_eq!(labels_in(&rt, &cluster, "beta"), beta_all);
    assert_eq!(start_time(), started, "the server was never restarted");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "pre\npost\npre\npost\n"
    );
    assert!(side_left().is_empty(), "{:?}", side_left());
    assert_eq!(records().len(), 5);
    let listed = a.ok_json(&["recover", "list", "--source", "alpha"]);
    let dbs: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["ok"] == true)
        .map(|r| r["database"].as_str().unwrap())
        .collect();
    assert_eq!(dbs, ["alpha", "alpha"], "{listed}");
    let (code, out, err) = a.run(&["recover", "list"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out.matches("database alpha").count(),
        4,
        "the side server that did not start, SIGTERM, two recoveries: {out}"
    );
}

/// `recover postgres` of source alpha's database alpha as it was before
/// `moment`, through a side server in `side`.
fn alpha_into<'a>(moment: &'a str, side: &'a str) -> [&'a str; 10] {
    [
        "recover",
        "postgres",
        "--source",
        "alpha",
        "--before",
        moment,
        "--database",
        "alpha",
        "--side-dir",
        side,
    ]
}
