//! The `kube-double` binary as the benchmarks run it: seeded with 20,000
//! ConfigMaps of 2 KB, listed page by page with the real client, stopped
//! with SIGTERM.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use kube::{Client, Config};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn binary_seeds_20000_configmaps_serves_pages_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let kc_path = dir.path().join("kubeconfig");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kube-double"))
        .args(["--listen", "127.0.0.1:0", "--kubeconfig-out"])
        .arg(&kc_path)
        .args([
            "--seed-configmaps",
            "20000",
            "--namespace",
            "bench",
            "--size",
            "2048",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    assert!(line.starts_with("listening on http://127.0.0.1:"), "{line}");
    let seeded = started.elapsed();

    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&kc_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let kc = kube::config::Kubeconfig::read_from(&kc_path).unwrap();
    let client = Client::try_from(
        Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap(),
    )
    .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, "bench");

    let listing = Instant::now();
    let mut lp = ListParams::default().limit(500);
    let mut n = 0usize;
    let mut pages = 0usize;
    let mut bytes = 0usize;
    loop {
        let page = cms.list(&lp).await.unwrap();
        pages += 1;
        for c in &page.items {
            bytes += c
                .data
                .as_ref()
                .map_or(0, |d| d.values().map(String::len).sum());
        }
        n += page.items.len();
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    let listed = listing.elapsed();
    let rss = rss_kib(child.id());
    eprintln!(
        "kube-double binary: seeded 20000 x 2 KiB in {seeded:?}; listed {n} in {pages} pages in {listed:?}; RSS {} MiB",
        rss / 1024
    );
    assert_eq!(n, 20_001, "20,000 plus kube-root-ca.crt");
    assert_eq!(pages, 41);
    assert!(bytes >= 20_000 * 2048);
    // Compact storage: well under what 20,000 parsed JSON trees would take.
    assert!(rss < 256 * 1024, "RSS {rss} KiB");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "{st:?}");
            break;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn binary_rejects_bad_arguments() {
    let out = Command::new(env!("CARGO_BIN_EXE_kube-double"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown argument --bogus"));
}
