//! WAL streaming by the daemon (`wal.streaming`, docs/physical.md
//! "Streaming") against a real PostgreSQL 15: `lifeboat serve` runs
//! `pg_receivewal` through a replication slot and stores what arrives in
//! the repository, the segment being received included (as partial
//! versions); `kill -9` of the daemon at a random point loses and
//! overwrites nothing; `check` names a missing segment and `check
//! --read-data` a flipped byte; `status` shows the archive. A second test
//! measures the archive's recovery point under `pgbench` (numbers printed,
//! never asserted; docs/physical.md).

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Daemon, Env, Rng, rt, walk};
use lifeboat_postgres::TempCluster;

/// A repository, a cluster, and a configuration streaming its WAL.
struct Setup {
    env: Env,
    cluster: TempCluster,
    config: PathBuf,
}

fn setup(rt: &tokio::runtime::Runtime, partial_interval: &str) -> Setup {
    let _ = rt;
    let cluster = TempCluster::start_with(lifeboat_postgres::ClusterOptions {
        settings: vec![
            ("wal_level".into(), "replica".into()),
            ("max_wal_senders".into(), "4".into()),
            // Keep the segments in pg_wal, to compare the archive's bytes
            // with the server's own.
            ("wal_keep_size".into(), "2GB".into()),
        ],
        ..Default::default()
    })
    .expect("start PostgreSQL 15 (run scripts/test.sh to install it)");
    let mut env = Env::init();
    env.envs
        .push(("PGPW".into(), cluster.password().expose().to_string()));
    let config = env.path("lifeboat.yaml");
    std::fs::write(
        &config,
        format!(
            "repository:\n  url: {repo}\n  password: {{env: LIFEBOAT_PASSWORD}}\n\
             sources:\n  main:\n    kind: postgres\n    postgres:\n      url: {url}\n      password: {{env: PGPW}}\n\
             objectives:\n  - {{scenario: database-corruption, rto: 30m, rpo: 1h}}\n\
             serve:\n  lease: 10s\n\
             wal:\n  spool_dir: {spool}\n  streaming:\n    main:\n      partial_interval: {partial_interval}\n",
            repo = env.repo,
            url = cluster.url("postgres"),
            spool = env.path("spool").display(),
        ),
    )
    .unwrap();
    Setup {
        env,
        cluster,
        config,
    }
}

impl Setup {
    fn sql<T>(
        &self,
        rt: &tokio::runtime::Runtime,
        f: impl AsyncFnOnce(&lifeboat_postgres::Client) -> T,
    ) -> T {
        rt.block_on(async {
            let c = self
                .cluster
                .conn_config("postgres")
                .connect()
                .await
                .unwrap();
            f(&c).await
        })
    }

    fn lsn(&self, rt: &tokio::runtime::Runtime, q: &str) -> u64 {
        let text: String = self.sql(rt, async |c| c.query_one(q, &[]).await.unwrap().get(0));
        parse_lsn(&text)
    }

    fn daemon(&self, tag: &str) -> Daemon {
        Daemon::start_active(&self.env, &self.config, tag)
    }

    fn ok_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--config", self.config.to_str().unwrap(), "--json"];
        a.extend_from_slice(args);
        self.env.ok_json(&a)
    }

    /// `lifeboat --config C ARGS`: (exit code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let mut a = vec!["--config", self.config.to_str().unwrap()];
        a.extend_from_slice(args);
        let o = self.env.run(&a);
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    fn repo(&self) -> PathBuf {
        PathBuf::from(&self.env.repo)
    }
}

fn parse_lsn(s: &str) -> u64 {
    lifeboat_postgres::lsn::Lsn::parse(s)
        .unwrap_or_else(|| panic!("not an LSN: {s:?}"))
        .0
}

/// A sample's value from a scrape: `family{source="main"} value`.
fn metric(text: &str, family: &str) -> Option<f64> {
    let prefix = format!("{family}{{source=\"main\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

fn scrape(d: &Daemon) -> String {
    d.get("/metrics", None).1
}

/// Waits until the daemon reports the archive at or past `lsn`.
fn wait_archived(d: &Daemon, lsn: u64, what: &str) {
    d.poll(Duration::from_secs(120), what, || {
        metric(&scrape(d), "lifeboat_wal_last_archived_lsn").filter(|&a| a >= lsn as f64)
    });
}

/// Writes rows and switches segments `n` times.
fn make_segments(s: &Setup, rt: &tokio::runtime::Runtime, n: usize) {
    s.sql(rt, async |c| {
        c.batch_execute("CREATE TABLE IF NOT EXISTS t (id serial, pad text)")
            .await
            .unwrap();
        for _ in 0..n {
            c.batch_execute(
                "INSERT INTO t (pad) SELECT repeat(md5(g::text), 20) FROM generate_series(1, 3000) g",
            )
            .await
            .unwrap();
            c.batch_execute("SELECT pg_switch_wal()").await.unwrap();
        }
    });
}

/// Every stored object under `dir` of the repository: path → bytes.
fn objects(repo: &Path, dir: &str) -> BTreeMap<PathBuf, Vec<u8>> {
    let root = repo.join(dir);
    if !root.exists() {
        return BTreeMap::new();
    }
    walk(&root)
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains('#'))
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

#[test]
fn streaming_archives_seconds_behind_survives_kill_9_and_check_finds_damage() {
    let _alone = crate::alone::alone(module_path!());
    let rt = rt();
    let s = setup(&rt, "1s");
    let d = s.daemon("a");

    // A row, then the archive holds the WAL that carries it: the segment
    // being received, served by `wal fetch` from its partial version.
    let marker = format!("row-marker-{}", common::rand_suffix());
    s.sql(&rt, async |c| {
        c.batch_execute("CREATE TABLE marked (v text)")
            .await
            .unwrap();
        c.execute("INSERT INTO marked VALUES ($1)", &[&marker])
            .await
            .unwrap();
    });
    let committed = s.lsn(&rt, "SELECT pg_current_wal_lsn()::text");
    wait_archived(&d, committed, "the row's commit archived");
    let segment: String = s.sql(&rt, async |c| {
        c.query_one(
            "SELECT pg_walfile_name($1::text::pg_lsn)",
            &[&format!(
                "{:X}/{:X}",
                committed >> 32,
                committed & 0xFFFF_FFFF
            )],
        )
        .await
        .unwrap()
        .get(0)
    });
    let fetched = s.env.path("fetched");
    let f = s.ok_json(&["wal", "fetch", &segment, fetched.to_str().unwrap()]);
    assert_eq!(f["partial"], true, "{f}");
    let bytes = std::fs::read(&fetched).unwrap();
    assert_eq!(bytes.len(), 16 << 20, "a partial is served segment-sized");
    assert!(
        bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
        "the fetched partial segment holds the row"
    );
    // The metrics: streaming up, a lag, the archive's recovery point.
    let m = scrape(&d);
    assert_eq!(metric(&m, "lifeboat_wal_streaming_up"), Some(1.0), "{m}");
    let lag = metric(&m, "lifeboat_wal_lag_bytes").expect("lag reported");
    assert!(lag >= 0.0, "{m}");
    assert!(
        metric(&m, "lifeboat_wal_last_archived_timestamp_seconds").is_some(),
        "{m}"
    );
    assert!(
        metric(&m, "lifeboat_wal_archived_bytes_total").is_some_and(|b| b > 0.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "lifeboat_wal_rpo_objective_seconds"),
        Some(3600.0),
        "{m}"
    );

    // Complete segments, then kill -9 at a random point of a second burst.
    make_segments(&s, &rt, 3);
    let switched = s.lsn(&rt, "SELECT pg_current_wal_lsn()::text");
    wait_archived(&d, switched, "three switched segments archived");
    let before = objects(&s.repo(), "wal");
    assert!(before.len() >= 3, "{:?}", before.keys());
    let mut rng = Rng::new(std::process::id() as u64 ^ 0x5eed);
    let delay = Duration::from_millis(rng.below(2500));
    std::thread::scope(|sc| {
        sc.spawn(|| make_segments(&s, &rt, 4));
        std::thread::sleep(delay);
        d.signal(libc::SIGKILL);
    });
    drop(d);
    make_segments(&s, &rt, 2);
    let d = s.daemon("b");
    let end = s.lsn(&rt, "SELECT pg_current_wal_lsn()::text");
    wait_archived(&d, end, "everything archived after the restart");
    // Nothing stored before the kill was rewritten.
    let after = objects(&s.repo(), "wal");
    for (p, b) in &before {
        assert_eq!(after.get(p), Some(b), "{} changed or vanished", p.display());
    }
    // Every complete segment stored is the server's own, and none is
    // missing from the first streamed to the last.
    let listing = s.ok_json(&["wal", "list"]);
    let tl = &listing["timelines"][0];
    assert_eq!(tl["gaps"], serde_json::json!([]), "{listing}");
    let first = tl["first"].as_str().unwrap().to_string();
    let last = tl["last"].as_str().unwrap().to_string();
    assert!(tl["segments"].as_u64().unwrap() >= 9, "{listing}");
    let pg_wal = s.cluster.data_dir().join("pg_wal");
    for p in after.keys() {
        let name = p.parent().unwrap().file_name().unwrap().to_str().unwrap();
        if name.len() != 24 {
            continue;
        }
        let dest = s.env.path("cmp");
        s.ok_json(&["wal", "fetch", name, dest.to_str().unwrap()]);
        let server = pg_wal.join(name);
        if server.exists() {
            assert!(
                std::fs::read(&dest).unwrap() == std::fs::read(&server).unwrap(),
                "{name} differs from the server's"
            );
        }
    }
    let (code, out, err) = s.run(&["check", "--read-data"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("WAL: "), "{out}");
    // The status shows the archive.
    // (exit 1: the source was never backed up; the archive is shown anyway)
    let (_, out, err) = s.run(&["--json", "status"]);
    let st: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    assert_eq!(st["wal"]["gaps"], serde_json::json!([]), "{st}");
    assert!(st["wal"]["newest_segment"].is_string(), "{st}");
    let d_log = d.log_text();
    drop(d);

    // A flipped byte in one stored segment: check --read-data names it;
    // check without reading data does not see it.
    let victim = after
        .keys()
        .find(|p| p.to_string_lossy().contains(&first))
        .unwrap()
        .clone();
    let mut b = std::fs::read(&victim).unwrap();
    let i = b.len() / 2;
    b[i] ^= 0x01;
    std::fs::write(&victim, &b).unwrap();
    let (code, out, _) = s.run(&["check"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out, err) = s.run(&["check", "--read-data"]);
    assert_eq!(code, Some(4), "{out}\n{err}");
    assert!(
        out.contains(&format!("ERROR wal/00000001/{first}/0")),
        "{out}"
    );

    // A deleted segment between the first and the last: check names the gap.
    let names: Vec<String> = after
        .keys()
        .filter_map(|p| {
            let n = p.parent()?.file_name()?.to_str()?.to_string();
            (n.len() == 24 && n != first && n != last).then_some(n)
        })
        .collect();
    let gone = &names[names.len() / 2];
    let gone_path = after
        .keys()
        .find(|p| p.to_string_lossy().contains(gone.as_str()))
        .unwrap();
    std::fs::remove_file(gone_path).unwrap();
    let (code, out, err) = s.run(&["check"]);
    assert_eq!(code, Some(4), "{out}\n{err}\ndaemon: {d_log}");
    assert!(
        out.contains(&format!(
            "ERROR wal/00000001/{gone}: a gap in the WAL archive"
        )),
        "{out}"
    );
    let (code, out, _) = s.run(&["status"]);
    assert_ne!(code, Some(0), "{out}");
    assert!(
        out.contains("GAPS: timeline 1:") && out.contains(gone.as_str()),
        "{out}"
    );
}

/// The archive's recovery point under pgbench load: sampled every 250 ms
/// from /metrics as now − lifeboat_wal_last_archived_timestamp_seconds.
/// Prints the distribution (docs/physical.md); asserts only that the
/// archive advanced under the load.
#[test]
fn recovery_point_under_pgbench() {
    let _alone = crate::alone::alone(module_path!());
    let rt = rt();
    for interval in ["5s", "1s"] {
        let s = setup(&rt, interval);
        let bin = s.cluster.bin_dir().to_path_buf();
        let pgbench = |args: &[&str]| {
            let out = std::process::Command::new(bin.join("pgbench"))
                .args(args)
                .args(["-h", "127.0.0.1", "-p", &s.cluster.port().to_string()])
                .args(["-U", s.cluster.superuser(), "postgres"])
                .env("PGPASSWORD", s.cluster.password().expose())
                .output()
                .expect("run pgbench (run scripts/test.sh to install PostgreSQL 15)");
            assert!(
                out.status.success(),
                "pgbench {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        pgbench(&["-i", "-s", "10", "-q"]);
        let d = s.daemon(interval);
        let start = s.lsn(&rt, "SELECT pg_current_wal_lsn()::text");
        wait_archived(&d, start, "the initial load archived");
        let seconds = 30;
        let mut samples: Vec<f64> = Vec::new();
        let mut lags: Vec<f64> = Vec::new();
        let out = std::thread::scope(|sc| {
            let run =
                sc.spawn(|| pgbench(&["-c", "4", "-j", "2", "-T", &seconds.to_string(), "-N"]));
            let t0 = Instant::now();
            std::thread::sleep(Duration::from_secs(3));
            while t0.elapsed() < Duration::from_secs(seconds - 1) {
                let m = scrape(&d);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs_f64();
                if let Some(t) = metric(&m, "lifeboat_wal_last_archived_timestamp_seconds") {
                    samples.push(now - t);
                }
                if let Some(l) = metric(&m, "lifeboat_wal_lag_bytes") {
                    lags.push(l);
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            run.join().unwrap()
        });
        let end = s.lsn(&rt, "SELECT pg_current_wal_lsn()::text");
        assert!(end > start);
        wait_archived(&d, end, "the load archived");
        samples.sort_by(f64::total_cmp);
        lags.sort_by(f64::total_cmp);
        assert!(!samples.is_empty());
        let q = |v: &[f64], p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        let tps = out
            .lines()
            .find(|l| l.starts_with("tps"))
            .unwrap_or("tps = ?")
            .to_string();
        println!(
            "RPO partial_interval={interval}: {} samples, median {:.1} s, p95 {:.1} s, max {:.1} s; lag median {:.0} KiB, max {:.0} KiB; WAL {:.1} MiB in {seconds} s; pgbench {tps}",
            samples.len(),
            q(&samples, 0.5),
            q(&samples, 0.95),
            samples[samples.len() - 1],
            q(&lags, 0.5) / 1024.0,
            lags[lags.len() - 1] / 1024.0,
            (end - start) as f64 / 1048576.0,
        );
        drop(d);
    }
}

/// The daemon streams from a standby (the source's URL names it), which is
/// then promoted: `pg_receivewal` follows it onto timeline 2 and what the
/// daemon stores follows too (the history file, timeline 2's segments),
/// `check` finds no gap, and a base backup taken from the standby before
/// the promotion restores to the latest point through both timelines,
/// holding rows written on each (by their values).
#[test]
fn streaming_follows_a_promoted_standby_onto_its_new_timeline() {
    use common::archive::{Archive, labels, one};
    let rt = rt();
    let mut a = Archive::new();
    let primary = TempCluster::start_with(lifeboat_postgres::ClusterOptions {
        settings: vec![
            ("wal_level".into(), "replica".into()),
            ("max_wal_senders".into(), "4".into()),
            // A base backup taken on a standby needs the primary's
            // full-page writes.
            ("full_page_writes".into(), "on".into()),
        ],
        ..Default::default()
    })
    .expect("start PostgreSQL 15 (run scripts/test.sh to install it)");
    a.password = primary.password().expose().to_string();
    a.env.envs.push(("PGPASSWORD".into(), a.password.clone()));
    one(
        &rt,
        &primary,
        "CREATE TABLE pitr (id serial PRIMARY KEY, label text NOT NULL); \
         INSERT INTO pitr (label) VALUES ('before'); CHECKPOINT; SELECT 1",
    );
    let standby = primary
        .streaming_standby(&[("max_wal_senders".into(), "4".into())])
        .expect("start a streaming standby of the primary");
    // Whether `c` holds the row labelled `label`.
    let replayed = |c: &TempCluster, label: &str| {
        one(
            &rt,
            c,
            "SELECT coalesce(string_agg(label, ',' ORDER BY id), '') FROM pitr",
        )
        .split(',')
        .any(|l| l == label)
    };
    common::poll(
        Duration::from_secs(60),
        "the standby to replay 'before'",
        || replayed(&standby, "before").then_some(()),
    );
    let mut yaml = std::fs::read_to_string(&a.config).unwrap();
    yaml.push_str(&format!(
        "sources:\n  main:\n    kind: postgres\n    postgres:\n      url: {url}\n\
         serve:\n  lease: 10s\n\
         wal:\n  spool_dir: {spool}\n  streaming:\n    main:\n      partial_interval: 1s\n",
        url = standby.url("postgres"),
        spool = a.env.path("spool").display(),
    ));
    std::fs::write(&a.config, yaml).unwrap();
    let d = Daemon::start_active(&a.env, &a.config, "timeline");
    // A base backup of a standby starts at its last restartpoint, which may
    // be older than the slot the streamer made: `backup physical` says at
    // once that such a backup cannot be recovered, once the archive holds
    // anything (here the segment being streamed, as partial versions).
    let partial = PathBuf::from(&a.env.repo).join("wal-partial");
    d.poll(
        Duration::from_secs(60),
        "the streamer to store something",
        || walk(&partial).into_iter().next().map(|_| ()),
    );
    let early = a.ok_json(&["backup", "physical", "--source", "main"]);
    let warning = early["archive_warning"].as_str().unwrap_or_default();
    assert!(
        warning.contains("this base backup cannot be recovered"),
        "{early:#}"
    );
    // As the warning says: a checkpoint on the primary, replayed and made
    // the standby's restartpoint, then another base backup (the early one
    // forgotten, or `check` would name it unrecoverable).
    one(
        &rt,
        &primary,
        "CHECKPOINT; SELECT pg_current_wal_lsn()::text",
    );
    let at = parse_lsn(&one(&rt, &primary, "SELECT pg_current_wal_lsn()::text"));
    common::poll(
        Duration::from_secs(60),
        "the standby to replay the checkpoint",
        || {
            (parse_lsn(&one(&rt, &standby, "SELECT pg_last_wal_replay_lsn()::text")) >= at)
                .then_some(())
        },
    );
    one(&rt, &standby, "CHECKPOINT; SELECT 1");
    let backup = a.ok_json(&["backup", "physical", "--source", "main"]);
    assert!(backup["archive_warning"].is_null(), "{backup:#}");
    a.ok(&["forget", "--source", "main", "--keep-last", "1"]);
    assert_eq!(backup["facts"]["from_standby"], true, "{backup:#}");
    assert_eq!(backup["facts"]["timeline"], 1, "{backup:#}");

    // Timeline 1: a row, a segment switch on the primary, archived through
    // the standby's walsender.
    one(
        &rt,
        &primary,
        "INSERT INTO pitr (label) VALUES ('on-1'); SELECT pg_switch_wal()::text",
    );
    common::poll(
        Duration::from_secs(60),
        "the standby to replay 'on-1'",
        || replayed(&standby, "on-1").then_some(()),
    );
    let lsn = parse_lsn(&one(&rt, &standby, "SELECT pg_last_wal_replay_lsn()::text"));
    wait_archived(&d, lsn, "timeline 1 archived through the standby");

    // The standby promoted (its primary gone), then written to.
    drop(primary);
    assert_eq!(
        one(&rt, &standby, "SELECT pg_promote(true, 60)::text"),
        "true"
    );
    assert_eq!(
        one(&rt, &standby, "SELECT pg_is_in_recovery()::text"),
        "false"
    );
    one(
        &rt,
        &standby,
        "INSERT INTO pitr (label) VALUES ('on-2'); SELECT pg_switch_wal()::text",
    );
    let lsn = parse_lsn(&one(&rt, &standby, "SELECT pg_current_wal_lsn()::text"));
    wait_archived(&d, lsn, "timeline 2 archived after the promotion");

    // The repository: the history file, and timeline 2's segments.
    let wal = objects(&PathBuf::from(&a.env.repo), "wal");
    // Every component of every object's key (a name, its epoch…).
    let names: Vec<String> = wal
        .keys()
        .flat_map(|p| p.iter().map(|c| c.to_string_lossy().into_owned()))
        .collect();
    assert!(
        names.iter().any(|n| n == "00000002.history"),
        "{names:?}\n{}",
        d.log_text()
    );
    assert!(
        names
            .iter()
            .any(|n| n.len() == 24 && n.starts_with("00000002")),
        "{names:?}"
    );
    // No gap: `check` and `wal list` agree.
    let (code, out, err) = a.run(&["check"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(!out.contains("GAPS"), "{out}");
    let listing = a.ok_json(&["wal", "list"]);
    let timelines = listing["timelines"].as_array().unwrap();
    let numbers: Vec<i64> = timelines
        .iter()
        .map(|t| t["timeline"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2], "{listing:#}");
    for t in timelines {
        assert_eq!(t["gaps"], serde_json::json!([]), "{listing:#}");
    }
    assert_eq!(timelines[1]["history"], true, "{listing:#}");

    // A recovery from the base backup (timeline 1) to the latest point
    // crosses onto timeline 2 and holds the rows written on both.
    drop(d);
    let restore = |dir: &Path| {
        a.run(&[
            "--json",
            "restore",
            "physical",
            "latest",
            "--pgdata",
            dir.to_str().unwrap(),
            "--to-latest",
            "--timeout",
            "5m",
        ])
    };
    // First, the recovery server (run as `postgres`) cannot read what the
    // daemon (run as root here) stored: its `wal fetch` fails, and the
    // recovery is aborted with that error instead of ending at the base
    // backup as if the archive were empty there.
    let dir = a.env.path("restored-unreadable");
    let (code, out, err) = restore(&dir);
    assert_eq!(code, Some(7), "{out}\n{err}");
    assert!(
        err.contains("fetching WAL from the repository failed"),
        "{err}"
    );
    // Readable by the server's user, as a deployment must make it.
    common::archive::chown_postgres(Path::new(&a.env.repo));
    let dir = a.env.path("restored");
    let (code, out, err) = restore(&dir);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // The end of the archive is on timeline 2: its segment 4 complete, or
    // segment 5 being streamed (partial versions count).
    let last = v["last_archived"].as_str().unwrap_or_default();
    assert!(
        last == "000000020000000000000004" || last == "000000020000000000000005",
        "the end of the archive is on timeline 2: {v}"
    );
    assert_eq!(labels(&dir, "pitr"), ["before", "on-1", "on-2"], "{v}");
    assert_eq!(v["timeline"], 3, "promoted past timeline 2: {v}");
}
