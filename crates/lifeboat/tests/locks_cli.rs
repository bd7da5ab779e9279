//! Locks through the `lifeboat` binary (issue 16): read-only work from a
//! repository that refuses every write (a read-only bind mount when running
//! as root, whom file modes do not stop; `chmod -R a-w` otherwise), SIGINT
//! during a backup removes its lock, and `--retry-lock` is a global flag.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// The repository, seen read-only at another path; undone on drop.
struct ReadOnlyView {
    path: PathBuf,
    mounted: bool,
    source: PathBuf,
}

impl ReadOnlyView {
    fn new(source: &Path, at: &Path) -> Self {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if root {
            std::fs::create_dir(at).unwrap();
            let st = Command::new("mount")
                .args(["--bind", "-o", "ro"])
                .arg(source)
                .arg(at)
                .status()
                .expect("run mount");
            assert!(st.success(), "mount --bind -o ro failed");
            ReadOnlyView {
                path: at.to_path_buf(),
                mounted: true,
                source: source.to_path_buf(),
            }
        } else {
            let st = Command::new("chmod")
                .args(["-R", "a-w"])
                .arg(source)
                .status()
                .unwrap();
            assert!(st.success());
            ReadOnlyView {
                path: source.to_path_buf(),
                mounted: false,
                source: source.to_path_buf(),
            }
        }
    }
}

impl Drop for ReadOnlyView {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.path).status();
            let _ = std::fs::remove_dir(&self.path);
        } else {
            let _ = Command::new("chmod")
                .args(["-R", "u+w"])
                .arg(&self.source)
                .status();
        }
    }
}

#[test]
fn snapshots_restore_and_check_work_from_a_read_only_repository() {
    let _alone = crate::alone::alone(module_path!());
    let mut e = Env::init();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let snap = e.backup_bytes("ro", &data);
    let id = snap["id"].as_str().unwrap().to_string();
    let view = ReadOnlyView::new(Path::new(&e.repo.clone()), &e.path("ro-view"));
    e.repo = view.path.display().to_string();
    // The view really refuses writes.
    assert!(std::fs::write(view.path.join("probe"), b"x").is_err());

    let snaps = e.snapshots();
    assert_eq!(snaps.len(), 1);
    let o = e.run(&["restore", "stream", &id]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "restore: {err}");
    assert!(o.stdout == data, "restored differently");
    assert!(err.contains("goes on without one"), "{err}");
    let (out, err) = e.exits_with(&["check", "--read-data"], 0);
    assert!(out.contains("no errors found"), "{out}");
    assert!(err.contains("could not be recorded"), "{err}");
    let (out, _) = e.exits_with(&["check", "--read-data-subset", "1/2"], 0);
    assert!(out.contains("subset 1/2"), "{out}");
    // Writing work still fails, as a storage error (exit 8).
    let err = e.fails(&["prune"], 8);
    assert!(err.contains("read-only"), "{err}");
    drop(view);
}

#[test]
fn sigint_during_a_backup_removes_its_lock() {
    let _alone = crate::alone::alone(module_path!());
    let e = Env::init();
    let mut child = e
        .cmd(&["backup", "stream", "--name", "interrupted"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&[7u8; 100_000]).unwrap();
    let locks = Path::new(&e.repo).join("locks");
    poll(Duration::from_secs(60), "the backup's lock", || {
        std::fs::read_dir(&locks)
            .ok()
            .and_then(|mut d| d.next())
            .map(|_| ())
    });
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(out.status.code(), Some(130));
    let left: Vec<_> = std::fs::read_dir(&locks).unwrap().flatten().collect();
    assert!(left.is_empty(), "locks left after SIGINT: {left:?}");
    assert!(e.snapshots().is_empty());
}

#[test]
fn retry_lock_is_a_global_flag_with_a_duration() {
    let _alone = crate::alone::alone(module_path!());
    let e = Env::init();
    e.ok(&["--retry-lock", "30s", "check"]);
    e.ok(&["check", "--retry-lock", "1m"]);
    let err = e.fails(&["--retry-lock", "soon", "check"], 2);
    assert!(err.contains("--retry-lock"), "{err}");
}

/// A drill of a PostgreSQL source whose repository refuses writes: it
/// restores and verifies, and only its record is skipped, with a warning.
#[test]
fn a_drill_passes_from_a_read_only_repository() {
    let _alone = crate::alone::alone(module_path!());
    let rt = rt();
    let (cluster, mut env) = setup(&rt);
    let cfg_path = env.path("lifeboat.yaml");
    let config = |repo: &str| {
        let text = format!(
            "repository:
  url: {repo}
  password: {{env: LIFEBOAT_PASSWORD}}
sources:
  db:
    kind: postgres
    postgres:
      url: \"{url}\"
",
            url = cluster.url("src"),
        );
        std::fs::write(&cfg_path, text).unwrap();
        cfg_path.clone()
    };
    let cfg = config(&env.repo);
    env.ok(&[
        "--config",
        cfg.to_str().unwrap(),
        "backup",
        "postgres",
        "--source",
        "db",
    ]);
    let view = ReadOnlyView::new(Path::new(&env.repo.clone()), &env.path("ro-view"));
    env.repo = view.path.display().to_string();
    let cfg = config(&env.repo);
    let (out, err) = env.exits_with(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--json",
            "drill",
            "--source",
            "db",
        ],
        0,
    );
    let d: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(d["ok"], true, "{d:#}");
    assert!(err.contains("could not be stored"), "{err}");
    drop(view);
}
