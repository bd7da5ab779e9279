//! The daemon's scheduled copies into the regions' repositories (issue 19,
//! "The repository in the second region": "the daemon runs `copy` on a
//! schedule per region"; docs/regions/copy.md, "The daemon's scheduled
//! copies"). One configuration, three regions: eu-west's repository is a
//! Lifeboat repository with its own passphrase, ap-south's a directory
//! that is not a repository; both copied every second.
//!
//! - a backup held at a pause point (its command waits for a file the test
//!   creates) while the copy slots come: the copy says it waits for it,
//!   none completes meanwhile, and the first copy after it carries the new
//!   snapshot; `snapshots` of eu-west's repository lists it with its
//!   original time, and `/metrics` says so (copied, newest snapshot's time);
//! - ap-south's copies fail, are counted and logged with the reason, and
//!   its directory is left exactly as it was;
//! - a second daemon on the same repository (a standby on its lease) copies
//!   nothing while the active one copies;
//! - `promtool check metrics` finds nothing to say about the copy families.
//!
//! Conditions are polled with a bound; no timing is asserted.

use crate::common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{Daemon, Env, TOKEN, write_token};
use serde_json::Value;

const COPY_PASSWORD: &str = "eu-west's own passphrase, kept apart";
const LONG: Duration = Duration::from_secs(120);
const WAITS: &str = "the copy waits for the running backup(s) to finish";
const SUCCEEDED: &str = "copy succeeded";
const FAILED_PREFIX: &str = "copy failed";

/// The configuration: source `app` (a stream whose command waits for `go`
/// to exist), no backup schedule (backed up through the API); copies every
/// second into `west` (own passphrase) and `south`.
fn config(env: &Env, west: &str, south: &Path, go: &Path) -> PathBuf {
    let token = write_token(env);
    let yaml = format!(
        r#"repository:
  url: {repo}
  password: {{env: LIFEBOAT_PASSWORD}}
sources:
  app:
    kind: stream
    stream:
      command: [sh, -c, "while [ ! -e {go} ]; do sleep 0.05; done; echo rows of app"]
regions:
  us-east:
    postgres:
      url: postgresql://lifeboat@127.0.0.1:1/postgres
      role: primary
  eu-west:
    postgres:
      url: postgresql://lifeboat@127.0.0.1:2/postgres
      role: standby
      replicates_from: us-east
    repository:
      url: {west}
      password: {{env: LIFEBOAT_COPY_PASSWORD}}
      schedule: "* * * * * *"
  ap-south:
    postgres:
      url: postgresql://lifeboat@127.0.0.1:3/postgres
      role: standby
      replicates_from: us-east
    repository:
      url: {south}
      schedule: "* * * * * *"
serve:
  token: {{file: {token}}}
  lease: 3s
"#,
        repo = env.repo,
        go = go.display(),
        south = south.display(),
        token = token.display(),
    );
    let path = env.path("copies.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// The value of the series `series` (name with labels, exactly) in a scrape.
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|l| {
        let (s, v) = l.rsplit_once(' ')?;
        (s == series).then(|| v.parse().ok())?
    })
}

fn scrape(d: &Daemon) -> String {
    let (code, text) = d.get("/metrics", None);
    assert_eq!(code, 200, "{text}");
    text
}

fn metric(d: &Daemon, series: &str) -> Option<f64> {
    sample(&scrape(d), series)
}

fn message(l: &Value) -> &str {
    l["fields"]["message"].as_str().unwrap_or("")
}

/// Every file under `dir` with its bytes.
fn contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    common::walk(dir)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

fn time(snapshot: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(snapshot["time"].as_str().unwrap())
        .unwrap_or_else(|e| panic!("{snapshot}: {e}"))
        .with_timezone(&Utc)
}

/// `promtool` on PATH, or a failure saying how to get it.
fn promtool() -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("promtool"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "promtool is not on PATH: run the tests through scripts/test.sh, which \
                 installs Debian's `prometheus` package (it brings promtool)"
            )
        })
}

fn check_metrics(text: &str) {
    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success() && o.stdout.is_empty() && o.stderr.is_empty(),
        "promtool check metrics has something to say:\n{}{}\n/metrics:\n{text}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn the_lease_holder_copies_each_region_on_its_schedule_after_the_backups() {
    let _alone = crate::alone::alone(module_path!());
    // Fail before starting anything when promtool is missing.
    promtool();
    let mut env = Env::init();
    env.envs
        .push(("LIFEBOAT_COPY_PASSWORD".into(), COPY_PASSWORD.into()));
    // eu-west: a repository of its own (own parameters: re-chunked copies).
    let mut west = Env::new();
    west.envs = vec![("LIFEBOAT_PASSWORD".into(), COPY_PASSWORD.into())];
    west.ok(&["init"]);
    // ap-south: a directory with a file, no repository.
    let south = env.path("not-a-repository");
    std::fs::create_dir(&south).unwrap();
    std::fs::write(south.join("notes.txt"), "kept as it is\n").unwrap();
    let south_before = contents(&south);
    let go = env.path("go");
    let cfg = config(&env, &west.repo, &south, &go);

    let d = Daemon::start_active(&env, &cfg, "copies");
    let west_success = "lifeboat_copy_last_success_timestamp_seconds{region=\"eu-west\"}";
    let south_failures = "lifeboat_copy_failures_total{region=\"ap-south\"}";
    // The slots come: eu-west copies (nothing yet), ap-south fails.
    d.poll(
        LONG,
        "a first copy to eu-west and a failed one to ap-south",
        || {
            let m = scrape(&d);
            (sample(&m, west_success).is_some() && sample(&m, south_failures) >= Some(1.0))
                .then_some(())
        },
    );
    assert!(west.snapshots().is_empty());

    // A standby on the same repository copies nothing.
    let standby = Daemon::start(&env, &cfg, "standby");
    let (code, role) = standby.role();
    assert_eq!(code, 503, "{role}");

    // A backup held at its pause point while copy slots pass.
    let (code, body) = d.post("/api/v1/sources/app/backup", Some(TOKEN));
    assert_eq!(code, 202, "{body}");
    d.poll(LONG, "the eu-west copy to wait for the backup", || {
        d.log_lines()
            .iter()
            .any(|l| message(l) == WAITS && l["fields"]["region"] == "eu-west")
            .then_some(())
    });
    std::fs::write(&go, "").unwrap();

    let copied = d.poll(LONG, "the snapshot in eu-west's repository", || {
        let s = west.snapshots();
        (!s.is_empty()).then_some(s)
    });
    let originals = env.snapshots();
    assert_eq!(originals.len(), 1, "{originals:?}");
    assert_eq!(copied.len(), 1, "{copied:?}");
    let (orig, copy) = (&originals[0], &copied[0]);
    assert_eq!(time(copy), time(orig), "{copy}\n{orig}");
    for k in ["source", "kind", "hostname", "tags", "size", "config"] {
        assert_eq!(copy[k], orig[k], "{k}: {copy}\n{orig}");
    }

    // The log: from the wait to the backup's end no copy to eu-west
    // completed, and the first one after it carried the snapshot.
    let lines = d.log_lines();
    let west_line = |l: &Value| l["fields"]["region"] == "eu-west";
    let waited = lines
        .iter()
        .position(|l| message(l) == WAITS && west_line(l))
        .unwrap();
    let backed_up = lines
        .iter()
        .position(|l| message(l) == "backup succeeded")
        .unwrap_or_else(|| panic!("no backup succeeded line: {lines:#?}"));
    assert!(waited < backed_up, "{lines:#?}");
    assert!(
        !lines[waited..backed_up]
            .iter()
            .any(|l| message(l) == SUCCEEDED && west_line(l)),
        "a copy to eu-west completed while the backup ran: {lines:#?}"
    );
    let first_after = lines[backed_up..]
        .iter()
        .find(|l| message(l) == SUCCEEDED && west_line(l))
        .unwrap_or_else(|| panic!("no copy after the backup: {lines:#?}"));
    assert_eq!(first_after["fields"]["copied"], 1, "{first_after}");
    assert!(
        first_after["fields"]["objects_verified"].as_u64() >= Some(1),
        "{first_after}"
    );

    // The metrics say the same.
    let m = d.poll(LONG, "the copy's metrics", || {
        let m = scrape(&d);
        (sample(&m, "lifeboat_copy_snapshots_total{region=\"eu-west\"}") == Some(1.0)).then_some(m)
    });
    let newest = sample(
        &m,
        "lifeboat_copy_newest_snapshot_timestamp_seconds{region=\"eu-west\"}",
    )
    .unwrap_or_else(|| panic!("no newest snapshot time:\n{m}"));
    let want = time(orig).timestamp_micros() as f64 / 1e6;
    assert!((newest - want).abs() < 0.001, "{newest} vs {want}");
    for family in [
        "lifeboat_copy_blobs_sent_total",
        "lifeboat_copy_bytes_sent_total",
        "lifeboat_copy_bytes_stored_total",
    ] {
        let v = sample(&m, &format!("{family}{{region=\"eu-west\"}}"));
        assert!(v >= Some(1.0), "{family}: {v:?}\n{m}");
    }
    assert_eq!(
        sample(&m, "lifeboat_copy_failures_total{region=\"eu-west\"}"),
        Some(0.0),
        "{m}"
    );

    // ap-south: counted, logged with the reason, left as it was, never a
    // success.
    assert!(sample(&m, south_failures) >= Some(1.0), "{m}");
    assert_eq!(
        sample(
            &m,
            "lifeboat_copy_last_success_timestamp_seconds{region=\"ap-south\"}"
        ),
        None,
        "{m}"
    );
    let failure = lines
        .iter()
        .find(|l| message(l).starts_with(FAILED_PREFIX) && l["fields"]["region"] == "ap-south")
        .unwrap_or_else(|| panic!("no failure logged: {lines:#?}"));
    let error = failure["fields"]["error"].as_str().unwrap_or("");
    assert!(
        error.contains("not a Lifeboat repository") && error.contains("ap-south"),
        "{failure}"
    );
    assert_eq!(contents(&south), south_before);

    // The standby: the active daemon failed ap-south's copy at least three
    // more times since the standby started (one slot a second), while the
    // standby, still a standby, counted none and copied nothing.
    let before = metric(&d, south_failures).unwrap();
    d.poll(
        LONG,
        "three more ap-south slots on the active daemon",
        || (metric(&d, south_failures)? >= before + 3.0).then_some(()),
    );
    let s = scrape(&standby);
    assert_eq!(standby.role().0, 503);
    assert_eq!(sample(&s, south_failures), Some(0.0), "{s}");
    assert_eq!(sample(&s, west_success), None, "{s}");
    assert!(
        !standby
            .log_lines()
            .iter()
            .any(|l| message(l) == SUCCEEDED || message(l).starts_with(FAILED_PREFIX)),
        "{}",
        standby.log_text()
    );

    check_metrics(&m);
    assert_eq!(standby.stop(), Some(0));
    assert_eq!(d.stop(), Some(0));
}
