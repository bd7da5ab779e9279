//! The fence against real PostgreSQL servers (`TempCluster`): revoking the
//! application roles' LOGIN ends their sessions and refuses their logins
//! (as the server answers them, SQLSTATE 28000), and unfencing gives LOGIN
//! back to exactly the roles Lifeboat took it from; stopping the server
//! leaves nothing accepting connections. Orderings use pause points (the
//! writer reports its commits); no timing is asserted.

use std::time::Duration;

use lifeboat_postgres::conn::{ConnConfig, PgHost, Secret};
use lifeboat_postgres::{ClusterOptions, TempCluster};
use lifeboat_region::fence::postgres::{Evidence, process_running};
use lifeboat_region::fence::{FenceError, FenceMethod, fence, probe_fenced, unfence};
use lifeboat_region::replication::conf::rewrite_auto_conf;
use lifeboat_region::replication::target::{self, ServerControl, StandbyTarget};
use tokio::sync::mpsc;

const BOUND: Duration = Duration::from_secs(60);

fn cluster() -> TempCluster {
    TempCluster::start_with(ClusterOptions::default()).expect(
        "starting PostgreSQL; install postgresql-15 (scripts/test.sh does) if it is missing",
    )
}

/// The cluster as a target Lifeboat controls with `pg_ctl`.
fn target_of(p: &TempCluster) -> StandbyTarget {
    StandbyTarget {
        name: "us-east".into(),
        pgdata: p.data_dir(),
        bin_dir: p.bin_dir().to_path_buf(),
        os_user: None,
        conn: p.conn_config("postgres"),
        control: ServerControl::PgCtl {
            log_file: p.dir().join("pg_ctl.log"),
        },
        settings: Vec::new(),
        passfile: target::default_passfile(&p.data_dir()),
    }
}

fn login(p: &TempCluster, role: &str, password: &str) -> ConnConfig {
    ConnConfig::new(PgHost::Tcp("127.0.0.1".into()), p.port(), role, "postgres")
        .with_password(Secret::new(password))
}

/// A login as `conn` with `default_transaction_read_only = off` asked for
/// at connection time; the SQLSTATE the server refused it with, if it did.
async fn login_with_read_write(conn: &ConnConfig) -> Result<(), Option<String>> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host("127.0.0.1")
        .port(conn.port)
        .user(&conn.user)
        .dbname(&conn.dbname)
        .options("-c default_transaction_read_only=off")
        .password(conn.resolve_password().unwrap().unwrap().0.expose());
    match cfg.connect(tokio_postgres::NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(connection);
            client
                .batch_execute(
                    "SET default_transaction_read_only = off; INSERT INTO t DEFAULT VALUES",
                )
                .await
                .map_err(|e| e.code().map(|c| c.code().to_string()))
        }
        Err(e) => Err(e.code().map(|c| c.code().to_string())),
    }
}

/// Inserts rows as the application in a loop, reporting each commit, until
/// an error ends the session; returns the number committed and the error.
async fn writer(conn: ConnConfig, commits: mpsc::UnboundedSender<u64>) -> (u64, String) {
    let client = conn.connect().await.expect("the application logs in");
    let mut n = 0u64;
    loop {
        match client.batch_execute("INSERT INTO t DEFAULT VALUES").await {
            Ok(()) => {
                n += 1;
                let _ = commits.send(n);
            }
            Err(e) => {
                return (
                    n,
                    e.code()
                        .map(|c| c.code().to_string())
                        .unwrap_or_else(|| e.to_string()),
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn revoke_login_ends_sessions_refuses_logins_and_unfences_exactly_those_roles() {
    let _alone = crate::alone::alone(module_path!());
    let p = cluster();
    let admin = p.conn_config("postgres").connect().await.unwrap();
    admin
        .batch_execute(
            "CREATE ROLE app LOGIN PASSWORD 'app-pw'; \
             CREATE ROLE dormant NOLOGIN PASSWORD 'dormant-pw'; \
             CREATE TABLE t (id bigserial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp()); \
             GRANT INSERT, SELECT ON t TO app; GRANT USAGE ON SEQUENCE t_id_seq TO app",
        )
        .await
        .unwrap();
    let target = target_of(&p);
    let app = login(&p, "app", "app-pw");
    let method = FenceMethod::RevokeLogin {
        roles: vec!["app".into(), "dormant".into(), "ghost".into()],
    };

    // Lifeboat's own role is never fenced: it could not undo it.
    let own = FenceMethod::RevokeLogin {
        roles: vec![p.superuser().to_string()],
    };
    assert!(matches!(
        fence(&target, &own, 7, BOUND).await,
        Err(FenceError::OwnRole { .. })
    ));

    // Before: the probe sees the application log in.
    let before = probe_fenced(&target, &method, std::slice::from_ref(&app))
        .await
        .unwrap();
    assert!(!before.fenced, "{before:?}");

    // The application writes in a loop; fence once it has committed rows.
    let (tx, mut commits) = mpsc::unbounded_channel();
    let writing = tokio::spawn(writer(app.clone(), tx));
    while commits.recv().await.expect("the writer commits") < 20 {}

    let report = fence(&target, &method, 7, BOUND).await.unwrap();
    assert_eq!(report.roles_revoked, vec!["app".to_string()]);
    assert_eq!(report.roles_already_nologin, vec!["dormant".to_string()]);
    assert_eq!(report.roles_missing, vec!["ghost".to_string()]);
    assert!(report.sessions_terminated >= 1, "{report:?}");
    assert!(!report.stopped);

    // Its open session is gone: the loop ended with the termination.
    let (acknowledged, error) = tokio::time::timeout(BOUND, writing)
        .await
        .expect("the writer's session ended")
        .unwrap();
    assert!(
        error == "57P01" || error.contains("closed"),
        "the session ended otherwise: {error}"
    );
    // Every acknowledged row is there, and nothing after.
    let rows: i64 = admin
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows as u64, acknowledged);

    // A new login is refused by the server, whatever it asks for.
    assert_eq!(
        login_with_read_write(&app).await,
        Err(Some("28000".to_string()))
    );
    let probe = probe_fenced(&target, &method, std::slice::from_ref(&app))
        .await
        .unwrap();
    assert!(probe.fenced, "{probe:?}");
    assert!(matches!(&probe.evidence[0], Evidence::LoginRefused { role, .. } if role == "app"));
    assert!(matches!(
        &probe.evidence[1],
        Evidence::Catalog { role, can_login: Some(false), sessions: 0 } if role == "dormant"
    ));
    // The superuser still works (the fence covers the listed roles only).
    admin.batch_execute("SELECT 1").await.unwrap();

    // Lifeboat remembers what it revoked, with the epoch.
    let lb = p.conn_config("lifeboat").connect().await.unwrap();
    let remembered: Vec<(String, i64)> = lb
        .query("SELECT role, epoch FROM lifeboat.fence ORDER BY role", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(remembered, vec![("app".to_string(), 7)]);

    // Fencing again changes nothing.
    let again = fence(&target, &method, 7, BOUND).await.unwrap();
    assert_eq!(again.roles_revoked, vec!["app".to_string()]);
    assert_eq!(again.sessions_terminated, 0);

    // Unfence: LOGIN back for app only; dormant stays NOLOGIN.
    let un = unfence(&target, &method, BOUND).await.unwrap();
    assert_eq!(un.roles_restored, vec!["app".to_string()]);
    let can: Vec<(String, bool)> = admin
        .query(
            "SELECT rolname::text, rolcanlogin FROM pg_roles WHERE rolname IN ('app', 'dormant') ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        can,
        vec![("app".to_string(), true), ("dormant".to_string(), false)]
    );
    let client = app.connect().await.expect("app logs in after unfence");
    client
        .batch_execute("INSERT INTO t DEFAULT VALUES")
        .await
        .unwrap();
    let left: i64 = lb
        .query_one("SELECT count(*) FROM lifeboat.fence", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    assert_eq!(
        unfence(&target, &method, BOUND)
            .await
            .unwrap()
            .roles_restored,
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_refuses_connections_and_the_postmaster_is_gone() {
    let _alone = crate::alone::alone(module_path!());
    let p = cluster();
    let target = target_of(&p);
    let session = p.conn_config("postgres").connect().await.unwrap();
    session.batch_execute("SELECT 1").await.unwrap();
    let pid: i32 = std::fs::read_to_string(p.data_dir().join("postmaster.pid"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(process_running(pid));

    let report = fence(&target, &FenceMethod::Stop, 3, BOUND).await.unwrap();
    assert!(report.stopped, "{report:?}");
    // Gone (it may linger as an unreaped zombie: this test's process is its parent).
    assert!(!process_running(pid));
    assert!(session.batch_execute("SELECT 1").await.is_err());
    let probe = probe_fenced(&target, &FenceMethod::Stop, &[])
        .await
        .unwrap();
    assert!(probe.fenced, "{probe:?}");
    assert!(matches!(&probe.evidence[0], Evidence::NoServer { .. }));
    assert!(p.conn_config("postgres").connect().await.is_err());

    // Idempotent: nothing runs, nothing to stop.
    let again = fence(&target, &FenceMethod::Stop, 3, BOUND).await.unwrap();
    assert!(!again.stopped);

    // Unfence starts it again (with pg_ctl: the port and socket the
    // throwaway cluster had on its command line go to postgresql.auto.conf).
    let auto = p.data_dir().join("postgresql.auto.conf");
    let text = rewrite_auto_conf(
        &std::fs::read_to_string(&auto).unwrap_or_default(),
        &[
            ("port".into(), p.port().to_string()),
            ("listen_addresses".into(), "127.0.0.1".into()),
            (
                "unix_socket_directories".into(),
                p.socket_dir().display().to_string(),
            ),
        ],
    );
    std::fs::write(&auto, text).unwrap();
    let _stop_on_drop = Stopper(target.clone());
    let un = unfence(&target, &FenceMethod::Stop, BOUND).await.unwrap();
    assert!(un.started);
    let probe = probe_fenced(&target, &FenceMethod::Stop, &[])
        .await
        .unwrap();
    assert!(!probe.fenced, "{probe:?}");
    p.conn_config("postgres")
        .connect()
        .await
        .unwrap()
        .batch_execute("SELECT 1")
        .await
        .unwrap();
    fence(&target, &FenceMethod::Stop, 3, BOUND).await.unwrap();
}

/// Stops a server started with `pg_ctl` (not the test's child) on drop.
struct Stopper(StandbyTarget);

impl Drop for Stopper {
    fn drop(&mut self) {
        if self.0.pgdata.join("postmaster.pid").exists() {
            use std::os::unix::process::CommandExt;
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
