//! Issue 17, "configuration that is accepted does something", through the
//! built binary and a local repository:
//! 1. retention rules that keep nothing and schedules that never fire are
//!    refused when the configuration is loaded (exit 2, file:line:column),
//!    by every command including `serve`;
//! 2. a stream source's `stream.command` is run (argument vector, minimal
//!    environment) and its standard output backed up, by `backup stream
//!    --source` and by the daemon; a failing command leaves no snapshot and
//!    reports the failure (exit 1 / reason `command`, with its stderr);
//! 3. a `./lifeboat.yaml` picked up implicitly is named on stderr, with the
//!    repository it points to.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Daemon, Env, PASSWORD, TOKEN, bin, free_port, write_token};

/// A configuration with `sources` (YAML, indented by two) and the repository
/// of `env`.
fn write_config(env: &Env, name: &str, sources: &str, extra: &str) -> PathBuf {
    let path = env.path(name);
    std::fs::write(
        &path,
        format!(
            "repository:\n  url: {}\n  password: {{env: LIFEBOAT_PASSWORD}}\n  prune_grace: 0s\nsources:\n{sources}{extra}",
            env.repo
        ),
    )
    .unwrap();
    path
}

fn restore_bytes(env: &Env, snapshot: &str) -> Vec<u8> {
    let (code, out, err) = env.restore_to_file(snapshot);
    assert_eq!(code, Some(0), "{err}");
    std::fs::read(out).unwrap()
}

fn snapshots_of(env: &Env, source: &str) -> Vec<serde_json::Value> {
    env.snapshots()
        .into_iter()
        .filter(|s| s["source"] == source)
        .collect()
}

#[test]
fn retention_that_keeps_nothing_and_schedules_that_never_fire_are_refused_at_load() {
    let env = Env::init();
    for (sources, at, needle) in [
        (
            "  db:\n    kind: kube\n    kube: {}\n    retention:\n      keep_last: 0\n",
            ":10:18: ",
            "a retention count must be at least 1, not 0",
        ),
        (
            "  db:\n    kind: kube\n    kube: {}\n    retention: {keep_within_daily: 0s}\n",
            ":9:",
            "a retention window must be longer than 0s",
        ),
        (
            "  db:\n    kind: kube\n    kube: {}\n    schedule: \"0 0 31 2 *\"\n",
            ":9:15: ",
            "has no slot in the next 5 years",
        ),
    ] {
        let config = write_config(&env, "bad.yaml", sources, "");
        let c = config.to_str().unwrap();
        // Every command loads the configuration, the daemon included.
        for args in [
            vec!["--config", c, "snapshots"],
            vec!["--config", c, "forget", "--source", "db", "--dry-run"],
            vec![
                "--config",
                c,
                "serve",
                "--listen",
                &format!("127.0.0.1:{}", free_port()),
            ],
        ] {
            let err = env.fails(&args, 2);
            assert!(
                err.contains(&format!("{}{at}", config.display())),
                "{args:?}: {err}"
            );
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }
}

/// `backup stream --source NAME` runs the source's command: its output is
/// the snapshot, its environment is PATH plus `stream.env` and nothing else
/// (read back from the snapshot: the command prints it).
#[test]
fn backup_stream_source_runs_the_command_with_a_minimal_environment() {
    let env = Env::init();
    let config = write_config(
        &env,
        "stream.yaml",
        "  dump:
    kind: stream
    stream:
      command: [sh, -c, \"printf 'line %s\\\\n' one two three; env | sort\"]
      env: [STREAM_TEST_VISIBLE, STREAM_TEST_UNSET]
  piped:
    kind: stream
",
        "",
    );
    let c = config.to_str().unwrap();
    let out = env
        .cmd(&[
            "--config", c, "--json", "backup", "stream", "--source", "dump",
        ])
        .env("STREAM_TEST_VISIBLE", "yes")
        .env("STREAM_TEST_HIDDEN", "no")
        .env("AWS_SECRET_ACCESS_KEY", "not-for-children")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let snap: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snap["source"], "dump");
    let data = String::from_utf8(restore_bytes(&env, snap["id"].as_str().unwrap())).unwrap();
    let (lines, environ) = data.split_at(data.find("line three\n").unwrap() + 11);
    assert_eq!(lines, "line one\nline two\nline three\n");
    let names: Vec<&str> = environ
        .lines()
        .map(|l| l.split_once('=').map_or(l, |kv| kv.0))
        // What sh itself sets.
        .filter(|n| !matches!(*n, "PWD" | "SHLVL" | "_" | "OLDPWD"))
        // The allow-list every child gets when Lifeboat has them
        // (docs/postgres.md, "Child processes").
        .filter(|n| !matches!(*n, "LANG" | "TZ") && !n.starts_with("LC_"))
        .collect();
    assert_eq!(names, ["PATH", "STREAM_TEST_VISIBLE"], "{environ}");
    assert!(environ.contains("STREAM_TEST_VISIBLE=yes\n"), "{environ}");
    assert!(!environ.contains(PASSWORD), "{environ}");

    // A stream source without a command reads standard input.
    let input = env.path("piped-input");
    std::fs::write(&input, b"from stdin").unwrap();
    let out = env
        .cmd(&[
            "--config", c, "--json", "backup", "stream", "--source", "piped",
        ])
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snap: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snap["source"], "piped");
    assert_eq!(
        restore_bytes(&env, snap["id"].as_str().unwrap()),
        b"from stdin"
    );

    // Unknown source, and --name with --source: usage errors.
    let err = env.fails(&["--config", c, "backup", "stream", "--source", "nope"], 2);
    assert!(err.contains("dump, piped"), "{err}");
    env.fails(
        &[
            "--config", c, "backup", "stream", "--source", "dump", "--name", "x",
        ],
        2,
    );
}

/// A command that fails (exit code or signal) fails the backup: exit 1, the
/// end of its stderr in the message, no snapshot, and nothing left running.
#[test]
fn a_failing_stream_command_leaves_no_snapshot() {
    let env = Env::init();
    let config = write_config(
        &env,
        "stream.yaml",
        "  exits:
    kind: stream
    stream: {command: [sh, -c, \"echo half-written; echo 'tar: /data: Cannot open' >&2; exit 2\"]}
  killed:
    kind: stream
    stream: {command: [sh, -c, \"echo half-written; kill -9 $$\"]}
  missing:
    kind: stream
    stream: {command: [lifeboat-test-no-such-program]}
",
        "",
    );
    let c = config.to_str().unwrap();
    for (source, needles) in [
        ("exits", &["exit code 2", "tar: /data: Cannot open"][..]),
        ("killed", &["killed by signal 9"][..]),
        ("missing", &["lifeboat-test-no-such-program", "PATH"][..]),
    ] {
        let err = env.fails(&["--config", c, "backup", "stream", "--source", source], 1);
        for n in needles {
            assert!(err.contains(n), "{source}: missing {n:?} in {err}");
        }
        if source != "missing" {
            assert!(err.contains("nothing was committed"), "{source}: {err}");
        }
    }
    assert!(env.snapshots().is_empty(), "{:#?}", env.snapshots());
    // What the failed runs stored is unreferenced data, and the repository
    // is sound.
    env.ok(&["check"]);
}

/// The daemon runs stream sources: on a schedule (with retention) and
/// through the API; a failing command is a failed run with reason `command`,
/// the command's stderr in its message and the logs, counted in the
/// metrics, and no snapshot.
#[test]
fn the_daemon_runs_stream_commands_and_reports_their_failure() {
    let env = Env::init();
    let token = write_token(&env);
    let config = write_config(
        &env,
        "serve.yaml",
        "  good:
    kind: stream
    schedule: \"* * * * * *\"
    retention: {keep_last: 2}
    stream: {command: [printf, \"scheduled stream content\"]}
  bad:
    kind: stream
    stream: {command: [sh, -c, \"printf partial; echo 'pg_basebackup: could not connect' >&2; exit 7\"]}
",
        &format!(
            "serve:\n  token: {{file: {}}}\n  lease: 120s\n",
            token.display()
        ),
    );
    let d = Daemon::start_active(&env, &config, "stream");
    // Scheduled: snapshots appear, retention keeps two.
    d.poll(Duration::from_secs(60), "three scheduled runs", || {
        let m = d.get("/metrics", None).1;
        m.lines()
            .any(|l| {
                l.starts_with("lifeboat_backups_total{")
                    && l.contains("source=\"good\"")
                    && l.rsplit_once(' ')
                        .and_then(|(_, v)| v.parse::<f64>().ok())
                        .is_some_and(|v| v >= 3.0)
            })
            .then_some(())
    });
    // Through the API: the failure with its reason and the command's stderr.
    let (code, body) = d.post("/api/v1/sources/bad/backup?wait=true", Some(TOKEN));
    assert_eq!(code, 500, "{body}\n{}", d.log_text());
    let out: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(out["result"], "failed", "{body}");
    assert_eq!(out["reason"], "command", "{body}");
    let message = out["message"].as_str().unwrap();
    assert!(
        message.contains("exit code 7") && message.contains("pg_basebackup: could not connect"),
        "{body}"
    );
    assert!(snapshots_of(&env, "bad").is_empty());
    let metrics = d.get("/metrics", None).1;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("lifeboat_backup_failures_total{")
                && l.contains("source=\"bad\"")
                && l.contains("reason=\"command\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
    let logged = d.log_lines().into_iter().any(|l| {
        l["fields"]["message"] == "backup failed"
            && l["fields"]["reason"] == "command"
            && l["fields"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("pg_basebackup: could not connect"))
    });
    assert!(logged, "{}", d.log_text());

    // Stopped, so that retention forgets nothing while the test reads: at
    // most two scheduled snapshots, holding the command's output.
    assert_eq!(d.stop(), Some(0));
    let good = snapshots_of(&env, "good");
    assert!(!good.is_empty() && good.len() <= 2, "{good:#?}");
    for snap in &good {
        assert_eq!(
            restore_bytes(&env, snap["id"].as_str().unwrap()),
            b"scheduled stream content"
        );
    }
}

/// A stream source with a schedule but no command would never be backed up:
/// refused at load.
#[test]
fn a_scheduled_stream_source_without_a_command_is_refused() {
    let env = Env::init();
    let config = write_config(
        &env,
        "bad.yaml",
        "  s:\n    kind: stream\n    schedule: \"0 * * * *\"\n    stream: {env: [HOME, LIFEBOAT_PASSWORD]}\n",
        "",
    );
    let err = env.fails(&["--config", config.to_str().unwrap(), "snapshots"], 2);
    assert!(err.contains("sources.s.schedule"), "{err}");
    assert!(err.contains("backup stream --source s"), "{err}");
    assert!(
        err.contains("sources.s.stream.env: LIFEBOAT_PASSWORD is one of Lifeboat's own"),
        "{err}"
    );
}

/// `lifeboat` run where a `lifeboat.yaml` lies, without --config, --repo or
/// their environment variables.
fn run_in(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env_remove("LIFEBOAT_REPO")
        .env_remove("LIFEBOAT_CONFIG")
        .env_remove("LIFEBOAT_KEY_FILE")
        .env_remove("LIFEBOAT_PASSWORD_FILE")
        .env("LIFEBOAT_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn an_implicit_config_file_is_named_on_stderr_with_its_repository() {
    let env = Env::init();
    env.backup_bytes("x", b"something");
    let dir = env.path("workdir");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("lifeboat.yaml"),
        format!(
            "repository: {{url: {}, password: {{env: LIFEBOAT_PASSWORD}}}}\n",
            env.repo
        ),
    )
    .unwrap();
    let abs = std::fs::canonicalize(dir.join("lifeboat.yaml")).unwrap();
    let note = format!("using the configuration file {}", abs.display());
    for args in [
        &["snapshots"][..],
        &["--json", "snapshots"][..],
        &["--quiet", "snapshots"][..],
    ] {
        let o = run_in(&dir, args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
        assert_eq!(err.matches(&note).count(), 1, "{args:?}: {err}");
        assert!(
            err.contains(&format!("repository {}", env.repo)),
            "{args:?}: {err}"
        );
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(!out.contains("using the configuration"), "{args:?}: {out}");
        if args[0] == "--json" {
            let v: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(v.len(), 1);
        }
    }
    // --repo wins over the file, and the note says so.
    let other = env.path("other-repo");
    let o = run_in(&dir, &["--repo", other.to_str().unwrap(), "snapshots"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("repository {}", other.display()))
            && err.contains(&format!("repository.url {} is not used", env.repo)),
        "{err}"
    );
    // Named explicitly (flag or environment): no note.
    let o = run_in(&dir, &["--config", "lifeboat.yaml", "snapshots"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("using the configuration"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = Command::new(bin())
        .arg("snapshots")
        .current_dir(&dir)
        .env("LIFEBOAT_CONFIG", "lifeboat.yaml")
        .env("LIFEBOAT_PASSWORD", PASSWORD)
        .env_remove("LIFEBOAT_REPO")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("using the configuration"));
}
