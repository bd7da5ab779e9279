//! The test bed on this machine: real namespaces, real etcd and PostgreSQL.
//! Needs root (as CI runs) and scripts/test.sh's packages (iptables,
//! etcd-server, etcd-client, postgresql-15); without them it fails saying so.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lifeboat_testbed::{Bed, BedSpec, EtcdCluster, EtcdOptions, LatencyMechanism, PgOptions, Site};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SITES: [&str; 3] = ["us-east", "eu-west", "witness"];

async fn new_bed() -> Bed {
    Bed::create(BedSpec::new(SITES).netdelay_bin(env!("CARGO_BIN_EXE_lifeboat-netdelay")))
        .await
        .expect("creating the bed (run as root, via scripts/test.sh)")
}

/// An in-process echo server listening in `site`.
fn echo_server(site: &Site) -> SocketAddr {
    let l = site.listen(0).unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// A server in `site` that answers each connection with the peer's address.
fn whoami_server(site: &Site) -> SocketAddr {
    let l = site.listen(0).unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, peer)) = l.accept().await {
            let _ = s.write_all(peer.ip().to_string().as_bytes()).await;
        }
    });
    addr
}

/// One byte there and back.
async fn round_trip(s: &mut TcpStream) -> Duration {
    let t = Instant::now();
    s.write_all(b"x").await.unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await.unwrap();
    t.elapsed()
}

/// Whether `from` can open a connection to `to` within `limit`.
async fn reaches(from: &Site, to: SocketAddr, limit: Duration) -> bool {
    matches!(
        tokio::time::timeout(limit, from.connect(to)).await,
        Ok(Ok(_))
    )
}

async fn wait_reaches(from: &Site, to: SocketAddr) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if reaches(from, to, Duration::from_secs(1)).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn host_ip(args: &[&str]) -> String {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("ip");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sites_reach_each_other_and_the_host_sees_nothing() {
    let bed = new_bed().await;
    for to in bed.sites() {
        let server = whoami_server(to);
        assert_eq!(server.ip(), to.addr());
        for from in bed.sites().iter().filter(|s| s.name() != to.name()) {
            let mut s = from.connect(server).await.unwrap();
            let mut seen = String::new();
            s.read_to_string(&mut seen).await.unwrap();
            assert_eq!(
                seen,
                from.addr().to_string(),
                "{} -> {}",
                from.name(),
                to.name()
            );
        }
    }
    let addrs = host_ip(&["-o", "addr"]);
    let links = host_ip(&["-o", "link"]);
    for s in bed.sites() {
        assert!(
            !addrs.contains(&format!("{}/", s.addr())),
            "host has {}: {addrs}",
            s.addr()
        );
        assert!(s.netns().starts_with(bed.prefix()));
    }
    assert!(
        !links.contains(" br0:"),
        "a bridge in the host's namespace: {links}"
    );
    let listed = host_ip(&["netns", "list"]);
    for ns in bed
        .sites()
        .iter()
        .map(|s| s.netns())
        .chain([bed.core_netns()])
    {
        assert!(listed.contains(ns), "{ns} not in {listed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_delays_what_a_site_sends_without_losing_packets() {
    let bed = new_bed().await;
    let (east, west) = (bed.site("us-east"), bed.site("eu-west"));
    let echo = echo_server(west);
    let mechanism = bed
        .set_latency("us-east", Duration::from_millis(100))
        .await
        .unwrap();
    println!("latency mechanism: {mechanism}");
    assert_eq!(bed.latency_mechanism(), Some(mechanism));
    let mut s = east.connect(echo).await.unwrap();
    let rtts: Vec<Duration> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(round_trip(&mut s).await);
        }
        v
    };
    println!("round trips us-east -> eu-west with 100 ms: {rtts:?}");
    for rtt in &rtts {
        assert!(
            *rtt >= Duration::from_millis(98),
            "round trip {rtt:?} below the injected 100 ms"
        );
    }

    // A pgbench-sized load: a bulk transfer and 16 connections of small
    // exchanges at once, all through the delayed site.
    let bulk = {
        let mut s = east.connect(echo).await.unwrap();
        tokio::spawn(async move {
            let data: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
            let (mut r, mut w) = s.split();
            let send = async {
                w.write_all(&data).await.unwrap();
                w.shutdown().await.unwrap();
            };
            let mut back = Vec::new();
            let recv = r.read_to_end(&mut back);
            let ((), got) = tokio::join!(send, recv);
            got.unwrap();
            assert!(back == data, "the echoed stream differs");
        })
    };
    let mut small = Vec::new();
    for _ in 0..16 {
        let mut s = east.connect(echo).await.unwrap();
        small.push(tokio::spawn(async move {
            for _ in 0..10 {
                assert!(round_trip(&mut s).await >= Duration::from_millis(98));
            }
        }));
    }
    bulk.await.unwrap();
    for t in small {
        t.await.unwrap();
    }
    if mechanism == LatencyMechanism::Nfqueue {
        let stats = bed
            .queue_stats("us-east")
            .await
            .unwrap()
            .expect("a queue for us-east");
        println!("NFQUEUE counters for us-east: {stats:?}");
        assert_eq!((stats.queue_dropped, stats.user_dropped), (0, 0));
        assert!(stats.queued_total > 300, "the load did not pass the queue");
    }

    // A changed delay, then none; the delay program goes away with it.
    bed.set_latency("us-east", Duration::from_millis(50))
        .await
        .unwrap();
    let rtt = round_trip(&mut s).await;
    assert!(rtt >= Duration::from_millis(48), "{rtt:?} below 50 ms");
    if mechanism == LatencyMechanism::Nfqueue {
        // No bypass: with the delay program gone, the site's packets are
        // dropped, never let through undelayed.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pids = host_ip(&["netns", "pids", bed.core_netns()]);
            if pids.trim().is_empty() {
                break;
            }
            for p in pids.split_whitespace() {
                let _ = std::process::Command::new("kill").args(["-9", p]).status();
            }
            assert!(Instant::now() < deadline, "the delay programs did not die");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            !reaches(east, echo, Duration::from_millis(1500)).await,
            "packets bypassed the dead delay program"
        );
    }
    bed.set_latency("us-east", Duration::ZERO).await.unwrap();
    println!("round trip without latency: {:?}", round_trip(&mut s).await);
    assert_eq!(bed.queue_stats("us-east").await.unwrap(), None);
    // The delay programs (in the core) release what they hold and exit.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = host_ip(&["netns", "pids", bed.core_netns()]);
        if left.trim().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "processes left in the core: {left}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bed.destroy().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_cut_sites_off_until_healed() {
    let bed = new_bed().await;
    let (east, west, witness) = (
        bed.site("us-east"),
        bed.site("eu-west"),
        bed.site("witness"),
    );
    let (to_east, to_west, to_witness) =
        (echo_server(east), echo_server(west), echo_server(witness));
    let mut open = east.connect(to_west).await.unwrap();
    round_trip(&mut open).await;
    let short = Duration::from_millis(1500);

    bed.partition("us-east").await.unwrap();
    assert!(!reaches(east, to_west, short).await);
    assert!(!reaches(west, to_east, short).await);
    assert!(!reaches(witness, to_east, short).await);
    assert!(
        reaches(west, to_witness, short).await,
        "the others still talk"
    );
    let mut s = east.connect(echo_server(east).to_owned()).await.unwrap();
    round_trip(&mut s).await; // the site still reaches itself
    assert!(
        tokio::time::timeout(short, round_trip(&mut open))
            .await
            .is_err(),
        "an open connection went through the partition"
    );
    bed.heal("us-east").await.unwrap();
    assert!(
        wait_reaches(east, to_west).await,
        "no connection after heal"
    );
    assert!(
        wait_reaches(witness, to_east).await,
        "no connection after heal"
    );
    round_trip(&mut open).await;

    bed.partition_between("us-east", "eu-west").await.unwrap();
    assert!(!reaches(east, to_west, short).await);
    assert!(!reaches(west, to_east, short).await);
    assert!(reaches(east, to_witness, short).await);
    assert!(reaches(west, to_witness, short).await);
    bed.heal_between("us-east", "eu-west").await.unwrap();
    assert!(wait_reaches(east, to_west).await);
    assert!(wait_reaches(west, to_east).await);
}

/// A partitioned site under latency leaves the other sites talking: their
/// open connections and new ones keep working for longer than etcd's
/// election timeout. Packets us-east sends to eu-west are held in us-east's
/// delay queue when eu-west's port goes down; the kernel then drops them
/// and answers their verdicts with ENOENT, which once made the delay
/// program exit and cut us-east off too (found by the fault suite).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_under_latency_leaves_the_others_connected() {
    let bed = new_bed().await;
    for site in ["us-east", "eu-west"] {
        bed.set_latency(site, Duration::from_millis(50))
            .await
            .unwrap();
    }
    let (east, west, witness) = (
        bed.site("us-east"),
        bed.site("eu-west"),
        bed.site("witness"),
    );
    let (to_east, to_west, to_witness) =
        (echo_server(east), echo_server(west), echo_server(witness));
    // us-east streams to eu-west, so its queue holds packets for eu-west
    // when the partition starts.
    let mut stream = east.connect(to_west).await.unwrap();
    let streaming = tokio::spawn(async move {
        let chunk = [0u8; 1000];
        while stream.write_all(&chunk).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut east_to_witness = east.connect(to_witness).await.unwrap();
    let mut witness_to_east = witness.connect(to_east).await.unwrap();
    round_trip(&mut east_to_witness).await;
    round_trip(&mut witness_to_east).await;
    bed.partition("eu-west").await.unwrap();
    assert!(!reaches(west, to_witness, Duration::from_millis(1500)).await);
    let end = Instant::now() + Duration::from_secs(5);
    let mut worst = Duration::ZERO;
    while Instant::now() < end {
        for s in [&mut east_to_witness, &mut witness_to_east] {
            let rtt = tokio::time::timeout(Duration::from_secs(2), round_trip(s))
                .await
                .expect("an open connection between us-east and the witness stalled");
            worst = worst.max(rtt);
        }
        assert!(reaches(east, to_witness, Duration::from_secs(2)).await);
        assert!(reaches(witness, to_east, Duration::from_secs(2)).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("worst round trip between us-east and the witness: {worst:?}");
    streaming.abort();
    for site in ["us-east", "eu-west"] {
        let q = bed.queue_stats(site).await.unwrap();
        eprintln!("{site}: {q:?}");
    }
    bed.heal("eu-west").await.unwrap();
    bed.destroy().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_site_kills_and_reaps_every_process_of_the_site() {
    let bed = new_bed().await;
    let (east, west) = (bed.site("us-east"), bed.site("eu-west"));
    // The delay is the network's (in the core), not the site's: it survives.
    let mechanism = bed
        .set_latency("us-east", Duration::from_millis(20))
        .await
        .unwrap();
    let log = east.dir().join("sleep.log");
    let a = east.spawn("sleep", &["sleep", "600"], &log).unwrap();
    // `timeout` forks: its child is a grandchild of the bed's process.
    let b = east
        .spawn("timeout", &["timeout", "600", "sleep", "601"], &log)
        .unwrap();
    let mut untracked = east.command(["sleep", "602"]).spawn().unwrap();
    let other = west
        .spawn("sleep", &["sleep", "600"], &west.dir().join("sleep.log"))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while east.pids().len() < 4 {
        assert!(
            Instant::now() < deadline,
            "processes did not start: {:?}",
            east.pids()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = east.pids();

    let killed = bed.kill_site("us-east").await.unwrap();
    for p in &before {
        assert!(killed.contains(p), "{p} not killed: {killed:?}");
    }
    assert_eq!(east.pids(), Vec::<u32>::new(), "processes left in us-east");
    for p in [a.pid(), b.pid()] {
        assert!(
            !std::path::Path::new(&format!("/proc/{p}")).exists(),
            "{p} not reaped"
        );
    }
    assert!(a.exit_status().is_some() && b.exit_status().is_some());
    let st = untracked.wait().await.unwrap();
    assert!(!st.success());
    assert!(other.is_running(), "a process of another site died");
    // The site can run things again, through its (still delayed) network.
    let echo = echo_server(west);
    let mut s = east.connect(echo).await.unwrap();
    let rtt = round_trip(&mut s).await;
    assert!(
        rtt >= Duration::from_millis(19),
        "{rtt:?} with 20 ms ({mechanism})"
    );
}

fn etcdctl() -> String {
    for d in ["/usr/bin", "/usr/local/bin"] {
        let p = format!("{d}/etcdctl");
        if std::path::Path::new(&p).exists() {
            return p;
        }
    }
    panic!("etcdctl not found: run scripts/test.sh (it installs Debian's etcd-client)");
}

async fn etcdctl_in(site: &Site, endpoint: &str, args: &[&str]) -> String {
    let out = site
        .command([
            etcdctl().as_str(),
            "--dial-timeout=5s",
            "--command-timeout=10s",
        ])
        .arg(format!("--endpoints={endpoint}"))
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "etcdctl {args:?} in {}: {}",
        site.name(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Each of `sites` writes its key through its own member and reads every
/// site's key.
async fn put_get_everywhere(sites: &[&Site], etcd: &EtcdCluster, round: &str) {
    for site in sites {
        let ep = etcd.member(site.name()).unwrap().client_url();
        etcdctl_in(
            site,
            ep,
            &["put", &format!("/{round}/{}", site.name()), site.name()],
        )
        .await;
    }
    for site in sites {
        let ep = etcd.member(site.name()).unwrap().client_url();
        for other in sites {
            let key = format!("/{round}/{}", other.name());
            let got = etcdctl_in(site, ep, &["get", "--print-value-only", &key]).await;
            assert_eq!(
                got,
                other.name(),
                "{round}: {} reading {}",
                site.name(),
                other.name()
            );
        }
    }
}

/// The site whose member every running member names as leader.
async fn leader_site(from: &Site, etcd: &EtcdCluster) -> String {
    let running: Vec<String> = etcd
        .members()
        .iter()
        .filter(|m| m.is_running())
        .map(|m| m.client_url().to_string())
        .collect();
    let text = etcdctl_in(
        from,
        &running.join(","),
        &["endpoint", "status", "-w", "json"],
    )
    .await;
    let status: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(status.len(), running.len(), "{text}");
    let leader = status[0]["Status"]["leader"].as_u64().unwrap();
    assert!(leader != 0, "no leader: {text}");
    let mut leader_url = None;
    for s in &status {
        assert_eq!(
            s["Status"]["leader"].as_u64(),
            Some(leader),
            "no agreed leader: {text}"
        );
        if s["Status"]["header"]["member_id"].as_u64() == Some(leader) {
            leader_url = s["Endpoint"].as_str();
        }
    }
    let url = leader_url.unwrap_or_else(|| panic!("the leader is no running member: {text}"));
    let m = etcd
        .members()
        .iter()
        .find(|m| m.client_url() == url)
        .unwrap();
    m.site().name().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_across_sites_elects_and_serves_with_latency_too() {
    let bed = new_bed().await;
    let opts = EtcdOptions::for_rtt(Duration::from_millis(100));
    let mut etcd = bed.etcd(&SITES, opts).await.unwrap();
    let all: Vec<&Site> = bed.sites().iter().collect();
    let witness = bed.site("witness");
    println!("leader: {}", leader_site(witness, &etcd).await);
    put_get_everywhere(&all, &etcd, "plain").await;

    let mechanism = bed
        .set_latency("us-east", Duration::from_millis(100))
        .await
        .unwrap();
    println!("latency mechanism: {mechanism}");
    etcd.wait_healthy(Duration::from_secs(30)).await.unwrap();
    put_get_everywhere(&all, &etcd, "delayed").await;

    // The leader's site killed: the other two elect a leader, over the
    // delayed links, and serve; the member started again rejoins.
    let leader = leader_site(witness, &etcd).await;
    bed.kill_site(&leader).await.unwrap();
    let rest: Vec<&Site> = all.iter().copied().filter(|s| s.name() != leader).collect();
    etcd.wait_healthy(Duration::from_secs(30)).await.unwrap();
    let new_leader = leader_site(rest[0], &etcd).await;
    println!("leader {leader} killed, new leader {new_leader}");
    assert_ne!(new_leader, leader);
    put_get_everywhere(&rest, &etcd, "elected").await;
    etcd.restart(&leader).unwrap();
    etcd.wait_healthy(Duration::from_secs(30)).await.unwrap();
    put_get_everywhere(&all, &etcd, "rejoined").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_standby_streams_across_sites_and_a_killed_primary_starts_again() {
    let bed = new_bed().await;
    let (east, west, witness) = (
        bed.site("us-east"),
        bed.site("eu-west"),
        bed.site("witness"),
    );
    let mut primary = east.postgres(PgOptions::default()).await.unwrap();
    let standby = west
        .standby_of(&primary, PgOptions::default())
        .await
        .unwrap();
    assert!(primary.url("postgres").contains(&east.addr().to_string()));

    let p = primary.connect_from(witness, "postgres").await.unwrap();
    p.batch_execute("CREATE TABLE t (i int); INSERT INTO t SELECT generate_series(1, 100)")
        .await
        .unwrap();
    // The standby reports consistent before its WAL receiver has connected.
    let deadline = Instant::now() + Duration::from_secs(30);
    let sender = loop {
        let rows = p
            .query(
                "SELECT state, host(client_addr) FROM pg_stat_replication",
                &[],
            )
            .await
            .unwrap();
        if let Some(r) = rows.first()
            && r.get::<_, String>(0) == "streaming"
        {
            break r.get::<_, String>(1);
        }
        assert!(
            Instant::now() < deadline,
            "no streaming standby on the primary"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(sender, west.addr().to_string());

    let s = standby.connect_from(west, "postgres").await.unwrap();
    assert!(
        s.query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .unwrap()
            .get::<_, bool>(0)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n: i64 = s
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .map(|r| r.get(0))
            .unwrap_or(0);
        if n == 100 {
            break;
        }
        assert!(Instant::now() < deadline, "the standby has {n} of 100 rows");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // pgbench from the witness through a delayed us-east (the primary's
    // answers and its WAL to the standby wait 50 ms each): nothing dropped.
    let mechanism = bed
        .set_latency("us-east", Duration::from_millis(50))
        .await
        .unwrap();
    let pgbench = primary.bin_dir().join("pgbench");
    let host = east.addr().to_string();
    for args in [
        vec!["-i", "-s", "1", "-q"],
        vec!["-c", "8", "-j", "2", "-T", "3", "-n"],
    ] {
        let out = witness
            .command([pgbench.as_os_str()])
            .args(["-h", &host, "-U", primary.superuser()])
            .args(&args)
            .arg("postgres")
            .env("PGPASSWORD", primary.password().expose())
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "pgbench {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if args[0] == "-c" {
            let text = String::from_utf8_lossy(&out.stdout);
            println!("pgbench through 50 ms ({mechanism}):\n{text}");
        }
    }
    if mechanism == LatencyMechanism::Nfqueue {
        let stats = bed.queue_stats("us-east").await.unwrap().unwrap();
        println!("NFQUEUE counters for us-east after pgbench: {stats:?}");
        assert_eq!((stats.queue_dropped, stats.user_dropped), (0, 0));
    }

    // Killed with its site, the server starts again once its postmaster is reaped.
    drop(p);
    bed.kill_site("us-east").await.unwrap();
    assert!(!primary.is_running());
    primary.start().await.unwrap();
    let p = primary.connect_from(east, "postgres").await.unwrap();
    let n: i64 = p
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_and_destroy_remove_everything_and_create_removes_leftovers() {
    // A leftover of a dead process: a namespace with its prefix.
    let dead = {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    };
    let leftover = format!("lb{dead}-0-leftover");
    {
        // Another test binary's sweep would remove it while `ip` makes it.
        let _sweep = lifeboat_testbed::sweep_lock().unwrap();
        assert!(
            std::process::Command::new("ip")
                .args(["netns", "add", &leftover])
                .status()
                .unwrap()
                .success()
        );
    }

    let bed = new_bed().await;
    assert!(
        !host_ip(&["netns", "list"]).contains(&leftover),
        "the left-over bed stayed"
    );
    let site = bed.site("eu-west").clone();
    let p = site
        .spawn("sleep", &["sleep", "600"], &site.dir().join("s.log"))
        .unwrap();
    let (prefix, dir) = (bed.prefix().to_string(), bed.dir().to_path_buf());
    drop(bed);
    let listed = host_ip(&["netns", "list"]);
    assert!(
        !listed.lines().any(|l| l.starts_with(&prefix)),
        "namespaces left: {listed}"
    );
    assert!(!std::path::Path::new(&format!("/proc/{}", p.pid())).exists());
    assert!(!dir.exists());

    let bed = new_bed().await;
    let prefix = bed.prefix().to_string();
    bed.destroy().await.unwrap();
    assert!(
        !host_ip(&["netns", "list"])
            .lines()
            .any(|l| l.starts_with(&prefix))
    );
}
