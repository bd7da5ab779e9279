//! Promotion and the planned switchover against real PostgreSQL servers: a
//! primary `TempCluster` and a streaming standby seeded by `replicate` and
//! run with `pg_ctl`. The switchover runs through the step functions: clean
//! stop, wait for the replay of the shutdown checkpoint, promote under an
//! epoch, the old primary follows without a rewind. Conditions are polled
//! with a bound; no timing is asserted.

use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use lifeboat_postgres::conn::{ConnConfig, PgHost, Secret};
use lifeboat_postgres::{ClusterOptions, TempCluster};
use lifeboat_region::heartbeat;
use lifeboat_region::promotion::authority_row::{AuthorityError, read_epoch, write_epoch};
use lifeboat_region::promotion::switchover::{self, RewindReadiness};
use lifeboat_region::promotion::{PromoteError, follow, promote, stop_clean, wait_replayed};
use lifeboat_region::replication::replicate::{create_slot, primary_conninfo};
use lifeboat_region::replication::target::{self, ServerControl, StandbyTarget};
use lifeboat_region::replication::{
    ReplicateRequest, Retry, Role, Server, Timeouts, observe, replicate,
};

const REPL_USER: &str = "lifeboat_replication";
const REPL_PASSWORD: &str = "repl-Secret-2b7e";
const BOUND: Duration = Duration::from_secs(120);

fn primary() -> TempCluster {
    TempCluster::start_with(ClusterOptions::default()).expect(
        "starting PostgreSQL; install postgresql-15 (scripts/test.sh does) if it is missing",
    )
}

/// A loopback port no other test process is handed while this one lives.
use lifeboat_test_ports::reserve as free_port;

/// Stops a server started with `pg_ctl` on drop (immediate).
struct Stopper(StandbyTarget);

impl Drop for Stopper {
    fn drop(&mut self) {
        if self.0.pgdata.join("postmaster.pid").exists() {
            let mut cmd = std::process::Command::new(self.0.bin_dir.join("pg_ctl"));
            cmd.arg("stop")
                .arg("-D")
                .arg(&self.0.pgdata)
                .args(["-m", "immediate", "-w"])
                .current_dir("/");
            if let Ok(Some((uid, gid))) = target::os_user(None) {
                cmd.uid(uid).gid(gid);
            }
            let _ = cmd.output();
        }
    }
}

/// A standby of `p` in a directory of the test's, seeded and streaming.
struct Standby {
    _dir: tempfile::TempDir,
    target: StandbyTarget,
    _stop: Stopper,
}

async fn standby_of(p: &TempCluster, name: &str) -> Standby {
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
    let req = ReplicateRequest {
        primary: Server {
            name: "us-east".into(),
            conn: p.conn_config("postgres"),
        },
        primary_address: None,
        replication_user: REPL_USER.into(),
        replication_password: Secret::new(REPL_PASSWORD),
        target: target.clone(),
        replace: false,
        timeouts: Timeouts {
            streaming: BOUND,
            ..Timeouts::default()
        },
        retry: Retry::default(),
    };
    let stop = Stopper(target.clone());
    if let Err(e) = replicate(&req, |_| {}).await {
        panic!(
            "replicate: {e}\nstandby log:\n{}",
            std::fs::read_to_string(dir.path().join("standby.log")).unwrap_or_default()
        );
    }
    Standby {
        _dir: dir,
        target,
        _stop: stop,
    }
}

/// The primary `TempCluster` as a target Lifeboat controls with `pg_ctl`
/// (the port and socket it had on its command line become settings).
fn old_primary_target(p: &TempCluster) -> StandbyTarget {
    StandbyTarget {
        name: "us-east".into(),
        pgdata: p.data_dir(),
        bin_dir: p.bin_dir().to_path_buf(),
        os_user: None,
        conn: p.conn_config("postgres"),
        control: ServerControl::PgCtl {
            log_file: p.dir().join("pg_ctl.log"),
        },
        settings: vec![
            ("port".into(), p.port().to_string()),
            ("listen_addresses".into(), "127.0.0.1".into()),
            (
                "unix_socket_directories".into(),
                p.socket_dir().display().to_string(),
            ),
        ],
        passfile: p.dir().join("replication.pgpass"),
    }
}

/// Polls `check` until it returns `Some`, at most [`BOUND`].
async fn poll<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + BOUND;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "not within {BOUND:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn count(conn: &ConnConfig, sql: &str) -> Option<i64> {
    let c = conn.connect().await.ok()?;
    c.query_one(sql, &[]).await.ok().map(|r| r.get(0))
}

#[tokio::test(flavor = "multi_thread")]
async fn switchover_end_to_end_without_rewind() {
    let p = primary();
    heartbeat::ensure(&p.conn_config("postgres")).await.unwrap();
    let app = p.create_database("app").await.unwrap();
    let a = app.connect().await.unwrap();
    a.batch_execute(
        "CREATE TABLE orders (id int PRIMARY KEY, note text); \
         INSERT INTO orders SELECT g, 'before the standby' FROM generate_series(1, 500) g",
    )
    .await
    .unwrap();
    let s = standby_of(&p, "eu-west").await;
    // Writes up to the last moment: every one must reach the new primary.
    a.batch_execute("INSERT INTO orders SELECT g, 'streamed' FROM generate_series(501, 2000) g")
        .await
        .unwrap();
    drop(a);

    // 1. The old primary stops cleanly; its WAL ends with the shutdown checkpoint.
    let old = old_primary_target(&p);
    let _old_stop = Stopper(old.clone());
    let last = stop_clean(&old, BOUND).await.unwrap();
    assert_eq!(last.state, "shut down");
    assert_eq!(
        last.redo,
        Some(last.checkpoint),
        "a shutdown checkpoint's redo is itself"
    );

    // 2. The standby replays past it.
    let replayed = wait_replayed(&s.target.conn, last.checkpoint, BOUND)
        .await
        .unwrap();
    assert!(replayed > last.checkpoint);

    // 3. Promotion under epoch 2.
    let promoted = promote(&s.target.conn, "eu-west", 2, BOUND).await.unwrap();
    assert!(!promoted.already_primary);
    assert_eq!(promoted.row.epoch, 2);
    assert_eq!(promoted.row.region, "eu-west");
    assert_eq!(promoted.timeline, Some(last.timeline.unwrap() + 1));
    assert!(promoted.lsn >= replayed);

    // Every row written before the switchover is on the new primary.
    let new_app = s.target.conn.with_dbname("app");
    assert_eq!(
        count(&new_app, "SELECT count(*) FROM orders").await,
        Some(2000)
    );

    // 4. The old primary follows the new one, as it is (no pg_rewind).
    create_slot(&s.target.conn, "lifeboat_us_east", Retry::default())
        .await
        .unwrap();
    switchover::write_passfile(&old, REPL_USER, &Secret::new(REPL_PASSWORD)).unwrap();
    let conninfo = primary_conninfo(
        &PgHost::Tcp("127.0.0.1".into()),
        s.target.conn.port,
        REPL_USER,
        "us-east",
        &old.passfile,
    );
    let receiver = match follow(&old, &conninfo, Some("lifeboat_us_east"), BOUND).await {
        Ok(w) => w,
        Err(e) => panic!(
            "follow: {e}\nold primary's log:\n{}",
            std::fs::read_to_string(p.dir().join("pg_ctl.log")).unwrap_or_default()
        ),
    };
    assert_eq!(receiver.status, "streaming");
    assert_eq!(receiver.slot_name.as_deref(), Some("lifeboat_us_east"));
    // It may stream the old timeline's tail first, then switches to the new one.
    poll("the old primary streams on the new timeline", || {
        let c = old.conn.clone();
        let want = promoted.timeline;
        async move {
            let client = c.connect().await.ok()?;
            let v = lifeboat_region::replication::observe::standby_view(&client)
                .await
                .ok()?;
            let w = v.wal_receiver?;
            (w.status == "streaming" && w.received_tli == want).then_some(())
        }
    })
    .await;
    let seen = observe(
        &Server {
            name: "us-east".into(),
            conn: old.conn.clone(),
        },
        Retry::default(),
    )
    .await;
    assert_eq!(seen.role, Role::Standby, "{seen:?}");

    // The new primary writes; the old one replays it, and the epoch's row.
    let n = new_app.connect().await.unwrap();
    n.batch_execute("INSERT INTO orders VALUES (2001, 'after the switchover')")
        .await
        .unwrap();
    let old_app = old.conn.with_dbname("app");
    poll("the old primary replays the new primary's write", || {
        let c = old_app.clone();
        async move { (count(&c, "SELECT count(*) FROM orders").await == Some(2001)).then_some(()) }
    })
    .await;
    let row = poll("the epoch's row replicated to the old primary", || {
        let c = heartbeat::lifeboat_db(&old.conn);
        async move {
            let client = c.connect().await.ok()?;
            read_epoch(&client).await.ok().flatten()
        }
    })
    .await;
    assert_eq!(row, promoted.row);

    // Readiness facts for a later rejoin: the throwaway clusters have neither.
    let rc = s.target.conn.connect().await.unwrap();
    assert_eq!(
        switchover::rewind_possible(&rc).await.unwrap(),
        RewindReadiness {
            wal_log_hints: false,
            data_checksums: false
        }
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn promote_is_idempotent_and_stale_epochs_are_refused() {
    let p = primary();
    heartbeat::ensure(&p.conn_config("postgres")).await.unwrap();
    let s = standby_of(&p, "eu-west").await;

    let first = promote(&s.target.conn, "eu-west", 5, BOUND).await.unwrap();
    assert!(!first.already_primary);
    // A resumed failover promotes again: nothing changes.
    let second = promote(&s.target.conn, "eu-west", 5, BOUND).await.unwrap();
    assert!(second.already_primary);
    assert_eq!(second.row, first.row);

    let lb = heartbeat::lifeboat_db(&s.target.conn);
    let mut client = lb.connect().await.unwrap();
    // A lower epoch, or the same epoch for another region: refused by the data.
    for (epoch, region) in [(4, "us-east"), (1, "eu-west"), (5, "us-east")] {
        match write_epoch(&mut client, epoch, region, None).await {
            Err(AuthorityError::Stale { highest, .. }) => assert_eq!(highest, 5),
            other => panic!("epoch {epoch} for {region}: {other:?}"),
        }
    }
    assert_eq!(read_epoch(&client).await.unwrap(), Some(first.row.clone()));
    // A higher epoch is accepted; then the promoter of epoch 5 is stale.
    let six = write_epoch(&mut client, 6, "us-east", None).await.unwrap();
    assert_eq!(
        (six.epoch, six.region.as_str(), six.lsn),
        (6, "us-east", None)
    );
    match promote(&s.target.conn, "eu-west", 5, BOUND).await {
        Err(PromoteError::HigherEpoch { found, ours, .. }) => assert_eq!((found, ours), (6, 5)),
        other => panic!("{other:?}"),
    }
    // The old primary (not a standby of anyone) never took part: it has no row.
    let old = p.conn_config("lifeboat").connect().await.unwrap();
    assert_eq!(read_epoch(&old).await.unwrap(), None);
}

/// A standby whose configuration names synchronous standbys (copied from a
/// primary that had them, as a base backup taken after they were set
/// does) is promoted: its own standbys are gone, so every commit would
/// wait for ever. The promotion clears the setting, writes the epoch's
/// row, and an application's commit goes through.
#[tokio::test(flavor = "multi_thread")]
async fn promotion_clears_synchronous_standby_names_so_writes_go_through() {
    let p = primary();
    heartbeat::ensure(&p.conn_config("postgres")).await.unwrap();
    let s = standby_of(&p, "eu-west").await;
    // Synchronous replication on the primary: commits wait for eu-west.
    let pc = p.conn_config("postgres").connect().await.unwrap();
    // (ALTER SYSTEM refuses a transaction block: one statement per call)
    pc.batch_execute("ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 (\"eu-west\")'")
        .await
        .unwrap();
    pc.batch_execute("SELECT pg_reload_conf()").await.unwrap();
    poll("eu-west to be a synchronous standby", || async {
        let c = p.conn_config("postgres").connect().await.ok()?;
        let r = c
            .query_opt(
                "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'eu-west'",
                &[],
            )
            .await
            .ok()??;
        (r.get::<_, String>(0) == "quorum").then_some(())
    })
    .await;
    // (TempCluster runs with synchronous_commit = off; the default `on`
    // makes this commit wait until eu-west has flushed it)
    pc.batch_execute(
        "SET synchronous_commit = on; CREATE TABLE t (id int); INSERT INTO t VALUES (1)",
    )
    .await
    .unwrap();
    // The standby's own configuration names the old primary as its
    // synchronous standby (what it would hold after a switchover's
    // preparation or a base backup of a primary configured so).
    let sc = s.target.conn.connect().await.unwrap();
    sc.batch_execute("ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 (\"us-east\")'")
        .await
        .unwrap();
    sc.batch_execute("SELECT pg_reload_conf()").await.unwrap();
    drop((pc, sc));
    drop(p); // the old primary is gone

    let promoted = tokio::time::timeout(BOUND, promote(&s.target.conn, "eu-west", 2, BOUND))
        .await
        .expect("the promotion hung (a commit waiting for a synchronous standby?)")
        .unwrap();
    assert_eq!(
        promoted.synchronous_cleared.as_deref(),
        Some("ANY 1 (\"us-east\")")
    );
    let c = s.target.conn.connect().await.unwrap();
    tokio::time::timeout(BOUND, c.batch_execute("INSERT INTO t VALUES (2)"))
        .await
        .expect("an application commit on the promoted server hung")
        .unwrap();
    assert_eq!(
        count(&s.target.conn, "SELECT count(*) FROM t").await,
        Some(2)
    );
    let now: String = c
        .query_one("SELECT current_setting('synchronous_standby_names')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(now, "");
    // Promoting again (a resumed failover) finds nothing to clear.
    let again = promote(&s.target.conn, "eu-west", 2, BOUND).await.unwrap();
    assert!(again.already_primary);
    assert_eq!(again.synchronous_cleared, None);
}
