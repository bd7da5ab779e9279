//! Streaming replication against real PostgreSQL servers: a primary
//! `TempCluster`, a standby seeded by `replicate` into a directory of the
//! test's and started with `pg_ctl`. Conditions are polled with a bound,
//! never waited for with sleeps; no timing is asserted.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lifeboat_postgres::conn::{ConnConfig, PgHost, Secret};
use lifeboat_postgres::{ClusterOptions, TempCluster};
use lifeboat_region::heartbeat::{self, Heartbeat};
use lifeboat_region::replication::conf::rewrite_auto_conf;
use lifeboat_region::replication::lag::{
    LagBasis, lag_from_primary, lag_from_standby, standby_lag,
};
use lifeboat_region::replication::plan::Refusal;
use lifeboat_region::replication::target::{self, ServerControl, StandbyTarget};
use lifeboat_region::replication::{
    Lsn, Progress, ReplicateError, ReplicateRequest, Retry, Role, Server, Step, Timeouts, observe,
    replicate,
};

const REPL_USER: &str = "lifeboat_replication";
const REPL_PASSWORD: &str = "repl-Secret-7f3c:with\\odd'chars";

fn primary() -> TempCluster {
    TempCluster::start_with(ClusterOptions::default()).expect(
        "starting PostgreSQL; install postgresql-15 (scripts/test.sh does) if it is missing",
    )
}

/// A loopback port no other test process is handed while this one lives.
use lifeboat_test_ports::reserve as free_port;

/// A directory for the standby (owned by the server's OS user), its
/// `pg_ctl`-controlled server on a free port, stopped on drop.
struct Standby {
    dir: tempfile::TempDir,
    target: StandbyTarget,
}

impl Standby {
    fn new(p: &TempCluster, name: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("lifeboat-standby-")
            .tempdir()
            .unwrap();
        let owner = target::os_user(None).unwrap();
        let sock = dir.path().join("sock");
        std::fs::create_dir(&sock).unwrap();
        for d in [dir.path(), sock.as_path()] {
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::chown(d, Some(uid), Some(gid)).unwrap();
            }
        }
        let port = free_port();
        let pgdata = dir.path().join("data");
        let target = StandbyTarget {
            name: name.into(),
            passfile: target::default_passfile(&pgdata),
            pgdata,
            bin_dir: p.bin_dir().to_path_buf(),
            os_user: None,
            conn: ConnConfig::new(
                PgHost::Tcp("127.0.0.1".into()),
                port,
                p.superuser(),
                "postgres",
            )
            .with_password(p.password().clone()),
            control: ServerControl::PgCtl {
                log_file: dir.path().join("standby.log"),
            },
            settings: vec![
                ("port".into(), port.to_string()),
                ("listen_addresses".into(), "127.0.0.1".into()),
                ("unix_socket_directories".into(), sock.display().to_string()),
            ],
        };
        Standby { dir, target }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("standby.log")).unwrap_or_default()
    }
}

impl Drop for Standby {
    fn drop(&mut self) {
        if self.target.pgdata.join("postmaster.pid").exists() {
            let mut cmd = std::process::Command::new(self.target.bin_dir.join("pg_ctl"));
            cmd.arg("stop")
                .arg("-D")
                .arg(&self.target.pgdata)
                .args(["-m", "immediate", "-w"])
                .current_dir("/");
            if let Ok(Some((uid, gid))) = target::os_user(None) {
                cmd.uid(uid).gid(gid);
            }
            let _ = cmd.output();
        }
    }
}

fn request(p: &TempCluster, s: &Standby, replace: bool) -> ReplicateRequest {
    ReplicateRequest {
        primary: Server {
            name: "us-east".into(),
            conn: p.conn_config("postgres"),
        },
        primary_address: None,
        replication_user: REPL_USER.into(),
        replication_password: Secret::new(REPL_PASSWORD),
        target: s.target.clone(),
        replace,
        timeouts: Timeouts {
            streaming: Duration::from_secs(120),
            ..Timeouts::default()
        },
        retry: Retry::default(),
    }
}

/// Polls `check` until it returns `Some`, at most `bound`.
async fn poll<T, F, Fut>(what: &str, bound: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + bound;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "not within {bound:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every file under `dir` with its content hash: to prove nothing was written.
fn listing(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.insert(p.clone(), "dir".into());
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.insert(p, blake3_like(&bytes));
            }
        }
    }
    out
}

fn blake3_like(bytes: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    format!("{}:{:016x}", bytes.len(), h.finish())
}

/// `initdb` of another cluster into `pgdata` (never started).
/// `initdb` of another cluster (same superuser name, trust authentication)
/// into `pgdata`; not started.
fn initdb_other(bin: &Path, pgdata: &Path, superuser: &str) {
    let mut cmd = std::process::Command::new(bin.join("initdb"));
    cmd.arg("-D")
        .arg(pgdata)
        .args([
            "-U",
            superuser,
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ])
        .current_dir("/")
        .env("LC_ALL", "C");
    if let Some((uid, gid)) = target::os_user(None).unwrap() {
        cmd.uid(uid).gid(gid);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The age of the newest heartbeat the standby replayed.
async fn seen_paused_age(s: &Standby) -> f64 {
    heartbeat::read(&s.target.conn, Some("us-east"))
        .await
        .unwrap()
        .expect("a heartbeat was replayed before the pause")
        .age_seconds
}

async fn nothing_created_on(p: &TempCluster) {
    let c = p.conn_config("postgres").connect().await.unwrap();
    let roles: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname = $1",
            &[&REPL_USER],
        )
        .await
        .unwrap()
        .get(0);
    let slots: i64 = c
        .query_one("SELECT count(*) FROM pg_replication_slots", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!((roles, slots), (0, 0), "a refusal created a role or a slot");
}

#[tokio::test(flavor = "multi_thread")]
async fn replicate_streams_rows_and_heartbeats_and_lag_agrees() {
    let p = primary();
    let app = p.create_database("app").await.unwrap();
    let app_client = app.connect().await.unwrap();
    app_client
        .batch_execute("CREATE TABLE orders (id int PRIMARY KEY, note text); INSERT INTO orders SELECT g, 'before' FROM generate_series(1, 1000) g")
        .await
        .unwrap();
    let s = Standby::new(&p, "eu-west");
    let req = request(&p, &s, false);

    let mut events: Vec<Progress> = Vec::new();
    let out = match replicate(&req, |e| events.push(e.clone())).await {
        Ok(o) => o,
        Err(e) => panic!(
            "replicate: {e}\nstandby log:\n{}\nprimary log:\n{}",
            s.log(),
            p.log_tail()
        ),
    };
    assert_eq!(out.replica.state, "streaming");
    assert_eq!(out.replica.application_name, "eu-west");
    assert_eq!(out.replica.slot_name.as_deref(), Some("lifeboat_eu_west"));
    assert_eq!(out.slot, "lifeboat_eu_west");
    assert!(!out.plan.already_standby);
    let started: Vec<Step> = events
        .iter()
        .filter_map(|e| match e {
            Progress::StepStarted { step, .. } => Some(*step),
            _ => None,
        })
        .collect();
    assert_eq!(
        started,
        vec![
            Step::CreateRole,
            Step::CreateSlot,
            Step::BaseBackup,
            Step::WriteStandbyConfig,
            Step::StartTarget,
            Step::WaitStreaming
        ]
    );
    // The password is in no progress event, not in the data directory's
    // configuration, and only in the password file outside it.
    let json = serde_json::to_string(&events).unwrap();
    assert!(!json.contains("repl-Secret"), "{json}");
    assert!(!format!("{req:?}").contains("repl-Secret"));
    let auto = std::fs::read_to_string(s.target.pgdata.join("postgresql.auto.conf")).unwrap();
    assert!(!auto.contains("repl-Secret"), "{auto}");
    assert!(
        auto.contains("primary_slot_name = 'lifeboat_eu_west'"),
        "{auto}"
    );
    assert!(s.target.pgdata.join("standby.signal").exists());
    assert!(!s.target.passfile.starts_with(&s.target.pgdata));
    assert!(
        std::fs::read_to_string(&s.target.passfile)
            .unwrap()
            .contains("repl-Secret")
    );

    // Roles as the servers say them.
    let po = observe(&req.primary, Retry::default()).await;
    let so = observe(
        &Server {
            name: "eu-west".into(),
            conn: s.target.conn.clone(),
        },
        Retry::default(),
    )
    .await;
    assert_eq!(po.role, Role::Primary);
    assert_eq!(so.role, Role::Standby, "{so:?}");
    let (pid, sid) = (po.identity.clone().unwrap(), so.identity.clone().unwrap());
    assert_eq!(pid.system_identifier, sid.system_identifier);
    assert!(!pid.same_server(&sid));
    assert_eq!(
        so.standby
            .as_ref()
            .unwrap()
            .wal_receiver
            .as_ref()
            .unwrap()
            .status,
        "streaming"
    );

    // Rows written on the primary arrive on the standby.
    let standby_app = &s.target.conn.with_dbname("app");
    let standby_conn = &s.target.conn;
    let primary_server = &req.primary;
    app_client
        .batch_execute("INSERT INTO orders SELECT g, 'after' FROM generate_series(1001, 1500) g")
        .await
        .unwrap();
    poll(
        "rows replayed on the standby",
        Duration::from_secs(60),
        || async move {
            let c = standby_app.connect().await.ok()?;
            let n: i64 = c
                .query_one("SELECT count(*) FROM orders", &[])
                .await
                .ok()?
                .get(0);
            (n == 1500).then_some(())
        },
    )
    .await;

    // The heartbeat loop writes on the primary; the standby replays them.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let conn = req.primary.conn.clone();
    let writer = tokio::spawn(async move {
        Heartbeat::new("us-east")
            .run(
                &conn,
                Duration::from_millis(100),
                async {
                    let _ = stop_rx.await;
                },
                |r| {
                    let _ = tx.send(r.map(|b| b.seq).map_err(|e| e.to_string()));
                },
            )
            .await
    });
    let mut last_seq = 0;
    for _ in 0..3 {
        last_seq = rx.recv().await.unwrap().expect("heartbeat write");
    }
    stop_tx.send(()).unwrap();
    let written = writer.await.unwrap();
    while let Ok(r) = rx.try_recv() {
        last_seq = r.unwrap();
    }
    assert!(written >= 3);
    let seen = poll(
        "heartbeat replayed",
        Duration::from_secs(60),
        || async move {
            heartbeat::read(standby_conn, Some("us-east"))
                .await
                .ok()
                .flatten()
                .filter(|seen| seen.beat.seq >= last_seq)
        },
    )
    .await;
    assert_eq!(seen.beat.seq, last_seq);
    assert!(seen.age_seconds >= 0.0);
    // Never in the protected database.
    let in_app: i64 = app_client
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'lifeboat'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(in_app, 0);
    // The writer refuses a standby.
    let standby_lb = heartbeat::lifeboat_db(&s.target.conn)
        .connect()
        .await
        .unwrap();
    assert!(Heartbeat::new("x").beat(&standby_lb).await.is_err());

    // Lag: pause replay on the standby, write, and compare the functions with
    // what PostgreSQL computes from the same positions.
    let sc = s.target.conn.connect().await.unwrap();
    sc.batch_execute("SELECT pg_wal_replay_pause()")
        .await
        .unwrap();
    app_client
        .batch_execute("INSERT INTO orders SELECT g, 'paused' FROM generate_series(1501, 3000) g")
        .await
        .unwrap();
    let hb_client = heartbeat::ensure(&req.primary.conn).await.unwrap();
    let paused_beat = Heartbeat::new("us-east").beat(&hb_client).await.unwrap();
    let pc = req.primary.conn.connect().await.unwrap();
    let target_lsn: String = pc
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    let target_lsn = Lsn::parse(&target_lsn).unwrap();
    // Wait until the standby has received that WAL, replay is paused and the
    // primary's row reports the standby's (paused) replay position.
    let (po, so) = poll(
        "paused standby's position reported",
        Duration::from_secs(60),
        || async move {
            let so = observe(
                &Server {
                    name: "eu-west".into(),
                    conn: standby_conn.clone(),
                },
                Retry::ONCE,
            )
            .await;
            let v = so.standby.clone()?;
            if !v.replay_paused || v.receive_lsn? < target_lsn {
                return None;
            }
            let po = observe(primary_server, Retry::ONCE).await;
            let row = po
                .primary
                .as_ref()?
                .replicas
                .iter()
                .find(|r| r.application_name == "eu-west")?
                .clone();
            (row.replay_lsn == v.replay_lsn && row.flush_lsn? >= target_lsn).then_some((po, so))
        },
    )
    .await;
    let pv = po.primary.as_ref().unwrap();
    let row = pv
        .replicas
        .iter()
        .find(|r| r.application_name == "eu-west")
        .unwrap();
    let from_primary = lag_from_primary(pv.current_lsn, row);
    let server_diff: i64 = pc
        .query_one(
            "SELECT pg_wal_lsn_diff($1::text::pg_lsn, $2::text::pg_lsn)::int8",
            &[
                &pv.current_lsn.to_string(),
                &row.replay_lsn.unwrap().to_string(),
            ],
        )
        .await
        .unwrap()
        .get(0);
    assert!(server_diff > 0, "replay is paused behind the writes");
    assert_eq!(from_primary.bytes, Some(server_diff as u64));
    let sv = so.standby.as_ref().unwrap();
    let from_standby = lag_from_standby(sv, so.at.unwrap(), Some(pv.current_lsn));
    assert_eq!(from_standby.bytes, from_primary.bytes);
    let combined = standby_lag(Some(&po), &so, "eu-west", Some(seen_paused_age(&s).await));
    assert!(combined.streaming);
    assert_eq!(combined.bytes(), Some(server_diff as u64));
    assert_eq!(combined.seconds(), combined.heartbeat_age_seconds);
    assert_eq!(from_standby.basis, LagBasis::Measured);
    assert!(from_standby.seconds.unwrap() >= 0.0);
    // The standby's own view (received minus replayed) also sees the backlog.
    assert!(lag_from_standby(sv, so.at.unwrap(), None).bytes.unwrap() > 0);
    // The heartbeat written during the pause is not replayed.
    let seen = heartbeat::read(&s.target.conn, Some("us-east"))
        .await
        .unwrap()
        .unwrap();
    assert!(seen.beat.seq < paused_beat.seq);

    // Resume: caught up, no lag, the heartbeat arrives.
    sc.batch_execute("SELECT pg_wal_replay_resume()")
        .await
        .unwrap();
    poll(
        "caught up after resume",
        Duration::from_secs(60),
        || async move {
            let po = observe(primary_server, Retry::ONCE).await;
            let pv = po.primary.as_ref()?;
            let row = pv
                .replicas
                .iter()
                .find(|r| r.application_name == "eu-west")?;
            let lag = lag_from_primary(pv.current_lsn, row);
            (lag.bytes == Some(0) && lag.basis == LagBasis::CaughtUp && lag.seconds == Some(0.0))
                .then_some(())
        },
    )
    .await;
    poll(
        "paused heartbeat replayed",
        Duration::from_secs(60),
        || async move {
            heartbeat::read(standby_conn, Some("us-east"))
                .await
                .ok()
                .flatten()
                .filter(|seen| seen.beat.seq >= paused_beat.seq)
        },
    )
    .await;

    // Running replicate again on the running standby only checks it.
    let again = replicate(&req, |_| {}).await.unwrap();
    assert!(again.plan.already_standby);
    assert_eq!(again.plan.steps, vec![Step::WaitStreaming]);

    // --replace on it: stopped (letting go of the slot), cleared, seeded again.
    let replaced = match replicate(&request(&p, &s, true), |_| {}).await {
        Ok(o) => o,
        Err(e) => panic!("replicate --replace: {e}\nstandby log:\n{}", s.log()),
    };
    assert_eq!(
        replaced.plan.steps[..2],
        [Step::StopTarget, Step::ClearTarget]
    );
    assert_eq!(replaced.replica.state, "streaming");
    poll(
        "rows on the re-seeded standby",
        Duration::from_secs(60),
        || async move {
            let c = standby_app.connect().await.ok()?;
            let n: i64 = c
                .query_one("SELECT count(*) FROM orders", &[])
                .await
                .ok()?
                .get(0);
            (n == 3000).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_a_target_holding_another_cluster_and_replaces_it_when_asked() {
    let p = primary();
    let s = Standby::new(&p, "eu-west");
    initdb_other(&s.target.bin_dir, &s.target.pgdata, p.superuser());
    let before = listing(&s.target.pgdata);
    let err = replicate(&request(&p, &s, false), |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ReplicateError::Refused(Refusal::DifferentCluster { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("--replace"), "{err}");
    assert_eq!(
        listing(&s.target.pgdata),
        before,
        "the refused target was changed"
    );
    assert!(!s.target.passfile.exists());
    nothing_created_on(&p).await;

    // The other cluster running on the target: refused as well, left running.
    let auto = s.target.pgdata.join("postgresql.auto.conf");
    let text = std::fs::read_to_string(&auto).unwrap();
    std::fs::write(&auto, rewrite_auto_conf(&text, &s.target.settings)).unwrap();
    s.target.start(Duration::from_secs(60)).await.unwrap();
    let other = s.target.conn.clone();
    let other_id = observe(
        &Server {
            name: "eu-west".into(),
            conn: other.clone(),
        },
        Retry::default(),
    )
    .await
    .identity
    .expect("the other cluster answers");
    let err = replicate(&request(&p, &s, false), |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ReplicateError::Refused(Refusal::DifferentCluster { .. })
        ),
        "{err}"
    );
    let still = observe(
        &Server {
            name: "eu-west".into(),
            conn: other,
        },
        Retry::default(),
    )
    .await;
    assert!(still.identity.is_some_and(|i| i.same_server(&other_id)));
    nothing_created_on(&p).await;

    // --replace: stopped, cleared, seeded.
    let t0 = Instant::now();
    let out = match replicate(&request(&p, &s, true), |e| {
        eprintln!(
            "{:>6.2?} {}",
            t0.elapsed(),
            serde_json::to_string(e).unwrap()
        )
    })
    .await
    {
        Ok(o) => o,
        Err(e) => panic!("replicate --replace: {e}\nstandby log:\n{}", s.log()),
    };
    assert_eq!(out.plan.steps[..2], [Step::StopTarget, Step::ClearTarget]);
    let so = observe(
        &Server {
            name: "eu-west".into(),
            conn: s.target.conn.clone(),
        },
        Retry::default(),
    )
    .await;
    let po = observe(
        &Server {
            name: "us-east".into(),
            conn: p.conn_config("postgres"),
        },
        Retry::default(),
    )
    .await;
    assert_eq!(so.role, Role::Standby);
    assert_eq!(
        so.identity.unwrap().system_identifier,
        po.identity.unwrap().system_identifier
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_a_standby_that_is_the_primary() {
    let p = primary();
    // The standby's URL reaches the primary through its Unix socket: another
    // spelling, the same server.
    let mut s = Standby::new(&p, "eu-west");
    s.target.conn = ConnConfig::new(
        PgHost::Unix(p.socket_dir()),
        p.port(),
        p.superuser(),
        "postgres",
    )
    .with_password(p.password().clone());
    for replace in [false, true] {
        let err = replicate(&request(&p, &s, replace), |_| {})
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ReplicateError::Refused(Refusal::TargetIsPrimary { .. })
            ),
            "replace={replace}: {err}"
        );
    }
    assert!(!s.target.pgdata.exists(), "the refused target was created");
    nothing_created_on(&p).await;

    // The same with a wrong password: the server answers but cannot be
    // identified, so it might be the primary: refused as well.
    s.target.conn = s
        .target
        .conn
        .clone()
        .with_password(Secret::new("pw-not-this-one"));
    let err = replicate(&request(&p, &s, true), |_| {}).await.unwrap_err();
    assert!(
        matches!(
            err,
            ReplicateError::Refused(Refusal::UrlAnswersUnidentified { .. })
        ),
        "{err}"
    );
    assert!(!err.to_string().contains("pw-not-this-one"), "{err}");
    assert!(!s.target.pgdata.exists(), "the refused target was created");
    nothing_created_on(&p).await;

    // The target data directory is the primary's own, even with --replace.
    let mut s2 = Standby::new(&p, "eu-west");
    s2.target.pgdata = p.data_dir();
    let before: Vec<PathBuf> = {
        let mut v: Vec<PathBuf> = std::fs::read_dir(p.data_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    };
    let err = replicate(&request(&p, &s2, true), |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, ReplicateError::Refused(Refusal::TargetDirIsPrimary)),
        "{err}"
    );
    let mut after: Vec<PathBuf> = std::fs::read_dir(p.data_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    after.sort();
    assert_eq!(before, after);
    // The primary still answers.
    let c = p.conn_config("postgres").connect().await.unwrap();
    c.simple_query("SELECT 1").await.unwrap();
    nothing_created_on(&p).await;
    // s2's Drop must not stop the primary: point it back at its own (empty) directory.
    s2.target.pgdata = s2.dir.path().join("data");
}

#[tokio::test(flavor = "multi_thread")]
async fn heartbeat_database_is_created_once_under_a_race_and_read_per_region() {
    let p = primary();
    let conn = p.conn_config("postgres");
    // Before anything exists: nothing to read, no error.
    assert_eq!(heartbeat::read(&conn, None).await.unwrap(), None);
    let racers: Vec<_> = (0..4)
        .map(|_| {
            let conn = conn.clone();
            tokio::spawn(async move { heartbeat::ensure(&conn).await.map(|_| ()) })
        })
        .collect();
    for r in racers {
        r.await.unwrap().expect("ensure under a race");
    }
    let client = heartbeat::ensure(&conn).await.unwrap();
    let a1 = Heartbeat::new("us-east").beat(&client).await.unwrap();
    let a2 = Heartbeat::new("us-east").beat(&client).await.unwrap();
    let b1 = Heartbeat::new("eu-west").beat(&client).await.unwrap();
    assert_eq!((a1.seq, a2.seq, b1.seq), (1, 2, 1));
    assert!(a2.at >= a1.at);
    let east = heartbeat::read(&conn, Some("us-east"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(east.beat, a2);
    let newest = heartbeat::read(&conn, None).await.unwrap().unwrap();
    assert_eq!(newest.beat, b1);
    assert_eq!(
        heartbeat::read(&conn, Some("ap-south")).await.unwrap(),
        None
    );
    // Lifeboat's database, not the one the connection named.
    let c = conn.connect().await.unwrap();
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'lifeboat'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

/// Reloads the primary's configuration and waits until a new backend runs
/// with it (the postmaster reloads `pg_hba.conf` before it forks the next one).
async fn reload(p: &TempCluster) {
    let conn = p.conn_config("postgres");
    let c = conn.connect().await.unwrap();
    let loaded = |c: tokio_postgres::Client| async move {
        let t: f64 = c
            .query_one(
                "SELECT extract(epoch FROM pg_conf_load_time())::float8",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        t
    };
    let before = loaded(c).await;
    let c = conn.connect().await.unwrap();
    c.batch_execute("SELECT pg_reload_conf()").await.unwrap();
    let conn = &conn;
    poll(
        "configuration reloaded",
        Duration::from_secs(30),
        || async move {
            let c = conn.connect().await.ok()?;
            (loaded(c).await > before).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_base_backup_refused_by_pg_hba_says_what_to_add_and_a_rerun_succeeds() {
    let p = primary();
    let s = Standby::new(&p, "eu-west");
    let hba = p.data_dir().join("pg_hba.conf");
    let original = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!("host replication {REPL_USER} 127.0.0.1/32 reject\n{original}"),
    )
    .unwrap();
    reload(&p).await;
    let err = replicate(&request(&p, &s, false), |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, ReplicateError::BaseBackup { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "host replication {REPL_USER} <standby address>/32"
        )),
        "{msg}"
    );
    assert!(!msg.contains("repl-Secret"), "{msg}");
    assert!(
        listing(&s.target.pgdata).is_empty(),
        "a failed base backup left files"
    );

    std::fs::write(&hba, original).unwrap();
    reload(&p).await;
    let mut details = Vec::new();
    let out = replicate(&request(&p, &s, false), |e| {
        if let Progress::StepFinished { step, detail } = e {
            details.push((*step, detail.clone()));
        }
    })
    .await
    .unwrap_or_else(|e| panic!("rerun: {e}\nstandby log:\n{}", s.log()));
    assert_eq!(out.replica.state, "streaming");
    // The role and the slot from the failed run are reused.
    assert!(
        details.contains(&(Step::CreateSlot, "slot lifeboat_eu_west exists".into())),
        "{details:?}"
    );
    assert!(
        details
            .iter()
            .any(|(st, d)| *st == Step::CreateRole && d.contains("exists")),
        "{details:?}"
    );
}
