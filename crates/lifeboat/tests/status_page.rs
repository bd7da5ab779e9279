//! The daemon's status page at `/`, rendered by a real browser: headless
//! Chromium (`/usr/bin/chromium`, installed by scripts/test.sh) loads it from
//! a `lifeboat serve` over a real PostgreSQL backup, the DOM it built is
//! checked, and a screenshot is kept in `target/test-artifacts/` for people
//! to look at. The page is open (no token) and shows no secret; when the
//! repository's evidence cannot be read it is a 502 page saying so.

use crate::common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, Env, PASSWORD, TOKEN, rt, setup, write_token};

const CHROMIUM: &str = "/usr/bin/chromium";

/// The configuration of the page's scenario: one postgres source `db`
/// covering database-corruption (RTO 30m, RPO 1h), a yearly schedule (the
/// daemon backs nothing up by itself during the test), keep-last-5, and the
/// API token in a 0600 file.
fn write_config(env: &Env, db_url: &str) -> PathBuf {
    let token = write_token(env);
    let text = format!(
        "repository:
  url: {repo}
  password: {{env: LIFEBOAT_PASSWORD}}
sources:
  db:
    kind: postgres
    postgres:
      url: \"{db_url}\"
    schedule: \"0 0 1 1 *\"
    covers: [database-corruption]
    retention: {{keep_last: 5}}
objectives:
  - {{scenario: database-corruption, rto: 30m, rpo: 1h}}
serve:
  token: {{file: {token}}}
",
        repo = env.repo,
        token = token.display()
    );
    let path = env.path("lifeboat.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Fails (never skips) when the browser is missing.
fn require_chromium() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: the status page test needs headless Chromium. \
         Run scripts/test.sh, which installs Debian's `chromium` package \
         (or: apt-get install -y chromium)"
    );
}

/// Runs headless Chromium with a fresh profile and `extra` arguments;
/// kills it after two minutes.
fn chromium(extra: &[String]) -> Output {
    let profile = tempfile::tempdir().expect("profile dir");
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("--user-data-dir={}", profile.path().display()));
    args.extend(extra.iter().cloned());
    let mut child = Command::new(CHROMIUM)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {CHROMIUM}: {e}"));
    // Drain both pipes on threads so a chatty browser cannot block on them.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {extra:?} did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

#[test]
fn status_page_renders_in_headless_chromium() {
    require_chromium();
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let config = write_config(&env, &cluster.url("src"));
    let cfg = config.to_str().unwrap();
    env.ok(&["--config", cfg, "backup", "postgres", "--source", "db"]);
    let daemon = Daemon::start(&env, &config, "page");
    // Active (its lease written) before the page is judged.
    daemon.wait_active();

    // Open like /healthz: no token, an HTML document, not cached.
    let (code, head, body) = daemon.exchange("GET", "/", None).expect("GET /");
    assert_eq!(code, 200, "{body}\nlog:\n{}", daemon.log_text());
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(head.contains("cache-control: no-store"), "{head}");
    // Self-contained: nothing to fetch from anywhere.
    for external in [
        "<script src",
        "<link",
        "src=\"http",
        "href=\"http",
        "@import",
    ] {
        assert!(!body.contains(external), "{external:?} in the page");
    }

    // The DOM as Chromium built it.
    let out = chromium(&["--dump-dom".into(), daemon.url()]);
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && dom.contains("</html>"),
        "chromium --dump-dom failed ({:?}):\nstdout: {dom}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        // The source, its row in the sources table and its chart.
        "<strong>db</strong>",
        "aria-label=\"backup sizes and durations of db\"",
        // The objective scenario with its targets.
        "<strong>database-corruption</strong>",
        "30m 0s",
        "1h 0m",
        // The readiness checklist.
        "id=\"readiness\"",
        "Readiness checklist",
        "id=\"item-restore-drills\"",
        // No drill yet: at risk, and the drill column says never.
        "class=\"banner risk\"",
        "no restore drill has been run",
        ">never</span>",
        // The daemon runs, so the daemon-active item passes.
        "holds the lease",
    ] {
        assert!(
            dom.contains(needle),
            "{needle:?} missing from the DOM:\n{dom}"
        );
    }
    // No secret on an open page.
    for secret in [TOKEN, PASSWORD, cluster.password().expose()] {
        assert!(!dom.contains(secret), "a secret is on the status page");
    }

    // A screenshot for people to look at.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join("status-page.png");
    let _ = std::fs::remove_file(&png);
    let out = chromium(&[
        format!("--screenshot={}", png.display()),
        "--window-size=1280,1600".into(),
        daemon.url(),
    ]);
    assert!(
        out.status.success(),
        "chromium --screenshot failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes =
        std::fs::read(&png).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", png.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        png.display()
    );
    assert!(
        bytes.len() > 20_000,
        "the screenshot is only {} bytes: a blank page?",
        bytes.len()
    );
    eprintln!("status page screenshot: {}", png.display());

    // Evidence that cannot be read: a 502 page saying what failed.
    let drills = Path::new(&env.repo).join("drills");
    std::fs::create_dir_all(&drills).unwrap();
    std::fs::write(drills.join("0".repeat(64)), b"not a sealed document").unwrap();
    let (code, head, body) = daemon
        .exchange("GET", "/", None)
        .expect("GET / with a damaged record");
    assert_eq!(code, 502, "{body}");
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(
        body.contains("cannot read the repository&#39;s evidence"),
        "{body}"
    );
}

/// Issue 17: the page's texts come from the configuration, not Kubernaut's
/// defaults. A configuration with other names, retention, evidence ages and
/// objectives: the page shows those, none of Kubernaut's numbers, and the
/// attestation of an objective covered elsewhere (who, when). Read over
/// HTTP: the DOM test above covers the browser.
#[test]
fn status_page_texts_come_from_the_configuration() {
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let token = write_token(&env);
    let text = format!(
        "repository:
  url: {repo}
  password: {{env: LIFEBOAT_PASSWORD}}
sources:
  orders:
    kind: postgres
    postgres:
      url: \"{db_url}\"
    schedule: \"0 0 1 1 *\"
    covers: [bad-migration]
    retention: {{keep_last: 7}}
objectives:
  - {{scenario: bad-migration, rto: 20m, rpo: 2h, priority: P1}}
  - {{scenario: region-failure, rto: 15m, rpo: 5m, priority: P0,
     covered_by: \"CloudNativePG replica cluster in eu-west\", attested_by: alice,
     attested_at: 2026-11-30}}
readiness:
  drill_max_age: 14d
  check_max_age: 2d
serve:
  token: {{file: {token}}}
",
        repo = env.repo,
        db_url = cluster.url("src"),
        token = token.display()
    );
    let config = env.path("orders.yaml");
    std::fs::write(&config, text).unwrap();
    let cfg = config.to_str().unwrap();
    env.ok(&["--config", cfg, "backup", "postgres", "--source", "orders"]);
    let daemon = Daemon::start(&env, &config, "orders");
    daemon.wait_active();
    let (code, _, body) = daemon.exchange("GET", "/", None).expect("GET /");
    assert_eq!(code, 200, "{body}");
    for needle in [
        "<strong>orders</strong>",
        "<strong>bad-migration</strong>",
        "20m 0s",
        "2h 0m",
        // The configured policy and evidence ages.
        "orders (keep the last 7): 1 snapshot(s), all within policy",
        "within 14d 0h (readiness.drill_max_age)",
        "within 2d 0h (readiness.check_max_age)",
        // The objective covered elsewhere, with who attested it and when.
        "covered elsewhere</span>",
        "<em>CloudNativePG replica cluster in eu-west</em>",
        "covered elsewhere: CloudNativePG replica cluster in eu-west (attested by alice on 2026-11-30)",
        // Not drilled: the source and its objective are at risk, both said.
        "class=\"banner risk\"",
        "orders: no restore drill has been run",
        "objective bad-migration (P1) is not measured yet",
    ] {
        assert!(
            body.contains(needle),
            "{needle:?} missing from the page:\n{body}"
        );
    }
    for kubernaut in [
        "30 days",
        "90 days",
        "30d 0h",
        "7d 0h",
        "region-failure (P0) is",
    ] {
        assert!(
            !body.contains(kubernaut),
            "{kubernaut:?} on the page:\n{body}"
        );
    }
    assert!(!body.to_lowercase().contains("kubernaut"), "{body}");
}
