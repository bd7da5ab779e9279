//! `lifeboat fence-watchdog` against a real PostgreSQL (`TempCluster`): the
//! server never outlives the agent's lease. (a) The process feeding the
//! watchdog is SIGKILLed → the watchdog stops the server, nobody else
//! acting; the same when the agent's handle to the pipe is dropped.
//! (b) Feeding stops while the pipe stays open → stopped once the deadline
//! passes. (c) `release` → the server keeps running. No timing is asserted.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lifeboat_postgres::{ClusterOptions, TempCluster};
use lifeboat_region::fence::watchdog::{Watchdog, instant_to_monotonic_ms};

const BOUND: Duration = Duration::from_secs(60);

fn cluster() -> TempCluster {
    TempCluster::start_with(ClusterOptions::default()).expect(
        "starting PostgreSQL; install postgresql-15 (scripts/test.sh does) if it is missing",
    )
}

fn argv(p: &TempCluster) -> Vec<OsString> {
    vec![
        env!("CARGO_BIN_EXE_lifeboat").into(),
        "fence-watchdog".into(),
        "--pgdata".into(),
        p.data_dir().into(),
    ]
}

async fn accepts(p: &TempCluster) -> bool {
    match p.conn_config("postgres").connect().await {
        Ok(c) => c.batch_execute("SELECT 1").await.is_ok(),
        Err(_) => false,
    }
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

/// Waits for `child` to exit, at most [`BOUND`].
fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let until = Instant::now() + BOUND;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < until, "the watchdog did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_feeder_gets_the_server_stopped() {
    let _alone = crate::alone::alone(module_path!());
    let p = cluster();
    // The feeder: `cat`, relaying what the test writes to the watchdog. Only
    // cat holds the write end of the watchdog's input.
    let mut feeder = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let relay = feeder.stdout.take().unwrap();
    let a = argv(&p);
    let mut watchdog = Command::new(&a[0])
        .args(&a[1..])
        .stdin(Stdio::from(relay))
        .current_dir("/")
        .process_group(0)
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let stdin = feeder.stdin.as_mut().unwrap();
        writeln!(stdin, "deadline {}", instant_to_monotonic_ms(far())).unwrap();
        stdin.flush().unwrap();
    }
    assert!(accepts(&p).await);
    // The agent dies: SIGKILL, nothing else.
    feeder.kill().unwrap();
    feeder.wait().unwrap();
    let status = wait_exit(&mut watchdog);
    assert!(status.success(), "{status}");
    assert!(!accepts(&p).await, "the server still accepts connections");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_feeder_gets_the_server_stopped() {
    let _alone = crate::alone::alone(module_path!());
    let p = cluster();
    let mut feeder = Watchdog::spawn(&argv(&p)).unwrap();
    feeder.feed(far()).await.unwrap();
    assert!(accepts(&p).await);
    // The agent's handle to the pipe goes, without release.
    feeder.close();
    let status = feeder.wait_exit(BOUND).await.expect("the watchdog exited");
    assert!(status.success(), "{status}");
    assert!(!accepts(&p).await, "the server still accepts connections");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_passed_deadline_gets_the_server_stopped_while_the_pipe_stays_open() {
    let _alone = crate::alone::alone(module_path!());
    let p = cluster();
    let mut feeder = Watchdog::spawn(&argv(&p)).unwrap();
    feeder.feed(far()).await.unwrap();
    // A nearer deadline replaces the far one; then nothing more is fed.
    feeder
        .feed(Instant::now() + Duration::from_millis(500))
        .await
        .unwrap();
    let status = feeder.wait_exit(BOUND).await.expect("the watchdog exited");
    assert!(status.success(), "{status}");
    assert!(!accepts(&p).await, "the server still accepts connections");
    // The pipe was open all along: writing to it now fails (the reader is gone).
    assert!(feeder.feed(far()).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn release_leaves_the_server_running() {
    let _alone = crate::alone::alone(module_path!());
    let p = cluster();
    let mut feeder = Watchdog::spawn(&argv(&p)).unwrap();
    for _ in 0..3 {
        feeder.feed(far()).await.unwrap();
    }
    let status = feeder
        .release(BOUND)
        .await
        .unwrap()
        .expect("the watchdog exited after release");
    assert!(status.success(), "{status}");
    assert!(accepts(&p).await, "the server was stopped after release");
}
