//! What the daemon says: `/metrics` holds every family `docs/daemon.md` and
//! `docs/drills.md` list from its start (but those documented as absent
//! until something happened), in the same order at every scrape; and its
//! log going nowhere (stderr a pipe whose reader is gone, as with
//! `lifeboat serve 2>&1 | head -1`) neither kills it nor keeps it from
//! releasing its lease on SIGTERM.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{Daemon, Env, TOKEN, free_port, poll, write_token};

/// A configuration whose one source, `db`, is a PostgreSQL database that
/// does not answer (port 1), scheduled once a year: the daemon starts, and
/// a backup triggered through the API fails (and logs).
fn write_config(env: &Env) -> PathBuf {
    let token = write_token(env);
    let path = env.path("serve.yaml");
    std::fs::write(
        &path,
        format!(
            "repository:\n  url: {repo}\n  password: {{env: LIFEBOAT_PASSWORD}}\nsources:\n  db:\n    kind: postgres\n    postgres:\n      url: \"postgresql://lifeboat@127.0.0.1:1/db\"\n    schedule: \"0 0 1 1 *\"\nserve:\n  token: {{file: {token}}}\n  lease: 3s\n",
            repo = env.repo,
            token = token.display()
        ),
    )
    .unwrap();
    path
}

/// (metric name, documented as present from start) for every metric named
/// in the first column of the metric tables of `doc`; names with `*` are
/// pointers to another table and are left out.
fn documented(doc: &Path) -> Vec<(String, bool)> {
    let text = std::fs::read_to_string(doc).unwrap();
    let mut out = Vec::new();
    let mut at_start: Option<usize> = None;
    for line in text.lines() {
        if !line.starts_with('|') {
            at_start = None;
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells.first() == Some(&"metric") {
            at_start = cells.iter().position(|c| *c == "at start");
            continue;
        }
        if !cells[0].starts_with("`lifeboat_") {
            continue;
        }
        let col = at_start.unwrap_or_else(|| {
            panic!(
                "{}: a metric table without an \"at start\" column",
                doc.display()
            )
        });
        let when = cells[col];
        let present = !(when.starts_with("absent") || when.starts_with("see "));
        for name in cells[0].split('`').skip(1).step_by(2) {
            let name = name.split('{').next().unwrap();
            if name.starts_with("lifeboat_") && !name.contains('*') {
                out.push((name.to_string(), present));
            }
        }
    }
    out
}

fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

/// The scrape without values: `# HELP`/`# TYPE` lines and series names with
/// labels, in order.
fn shape(scrape: &str) -> Vec<String> {
    scrape
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            if l.starts_with('#') {
                l.to_string()
            } else {
                l.rsplit_once(' ')
                    .map(|(s, _)| s.to_string())
                    .unwrap_or_default()
            }
        })
        .collect()
}

fn families(scrape: &str) -> Vec<String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

#[test]
fn every_documented_metric_is_there_from_start_in_a_stable_order() {
    let env = Env::init();
    let config = write_config(&env);
    let d = Daemon::start_active(&env, &config, "metrics");
    let (code, first) = d.get("/metrics", None);
    assert_eq!(code, 200, "{first}");
    let (_, second) = d.get("/metrics", None);

    let present = families(&first);
    let mut documented_names = Vec::new();
    for doc in ["daemon.md", "drills.md"] {
        for (name, from_start) in documented(&docs_dir().join(doc)) {
            if from_start {
                assert!(
                    present.contains(&name),
                    "{name} is documented in docs/{doc} as present from start but is not \
                     scraped:\n{first}"
                );
            }
            documented_names.push(name);
        }
    }
    assert!(documented_names.len() >= 25, "{documented_names:?}");
    // And nothing is scraped that the docs do not name.
    for f in &present {
        assert!(
            documented_names.contains(f),
            "{f} is exported but not documented in docs/daemon.md or docs/drills.md"
        );
    }
    // The counters a dashboard rates start at 0.
    for series in [
        "lifeboat_backups_total{source=\"db\"} 0",
        "lifeboat_retention_forgotten_total{source=\"db\"} 0",
        "lifeboat_prune_failures_total 0",
        "lifeboat_drills_total{source=\"db\",result=\"passed\"} 0",
        "lifeboat_backup_running{source=\"db\"} 0",
    ] {
        assert!(
            first.lines().any(|l| l == series),
            "no {series} in:\n{first}"
        );
    }

    // The same order twice, and that order sorted by family.
    assert_eq!(shape(&first), shape(&second));
    let mut sorted = present.clone();
    sorted.sort();
    assert_eq!(present, sorted);
    d.stop();
}

#[test]
fn a_closed_log_pipe_neither_kills_the_daemon_nor_keeps_its_lease() {
    let env = Env::init();
    let config = write_config(&env);
    let port = free_port();
    let mut child = env
        .cmd(&[
            "--config",
            config.to_str().unwrap(),
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lifeboat serve");
    // The reader goes away: every later write to stdout or stderr is EPIPE.
    drop(child.stdout.take());
    drop(child.stderr.take());
    let get = |path: &str, method: &str, token: Option<&str>| -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(120))).ok()?;
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        let code = head.split_whitespace().nth(1)?.parse().ok()?;
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            common::dechunk(body)
        } else {
            body.to_string()
        };
        Some((code, body))
    };
    poll(Duration::from_secs(60), "the daemon to be active", || {
        assert!(child.try_wait().unwrap().is_none(), "the daemon died");
        get("/readyz", "GET", None).filter(|r| r.0 == 200)
    });
    let failures = || -> f64 {
        let (_, metrics) = get("/metrics", "GET", None).expect("metrics");
        metrics
            .lines()
            .filter(|l| l.starts_with("lifeboat_backup_failures_total{"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    };
    // Two failing backups, each logging several lines into the closed pipe
    // (the source was never backed up: the daemon may be running one of
    // its own when the API asks, then it answers 409 and is asked again).
    for _ in 0..2 {
        let before = failures();
        let (code, body) = poll(Duration::from_secs(60), "a backup through the API", || {
            get("/api/v1/sources/db/backup?wait=true", "POST", Some(TOKEN)).filter(|r| r.0 != 409)
        });
        assert_eq!(code, 500, "{body}");
        let outcome: serde_json::Value = serde_json::from_str(&body).expect("an outcome");
        assert!(
            outcome["reason"].is_string(),
            "the run itself must end: {body}"
        );
        assert!(failures() > before, "the failure was recorded");
    }
    assert!(child.try_wait().unwrap().is_none(), "the daemon died");
    assert_eq!(get("/healthz", "GET", None).map(|r| r.0), Some(200));
    let lease = Path::new(&env.repo).join("serve/lease");
    assert!(lease.exists(), "the active daemon holds the lease");

    // SIGTERM: it logs (into the closed pipe), releases the lease, exits 0.
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = poll(Duration::from_secs(60), "the daemon to exit", || {
        child.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(!lease.exists(), "the lease was not released");
}
