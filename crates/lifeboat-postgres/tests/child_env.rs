//! The environment pg_dump and pg_restore are started with, read back: the
//! tools are wrapper scripts that write their environment to a file, then
//! exec the real tool. Lifeboat's own environment holds secrets a pg tool
//! must never see (the repository passphrase, the API token, cloud
//! credentials, a kubeconfig); the children get `PATH`/`LANG`/`LC_*`/`TZ`
//! and the `PG*` variables of their connection only.
//!
//! One test in its own binary: it sets variables in the test process's
//! environment, which no other test shares.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use lifeboat_postgres::TempCluster;
use lifeboat_postgres::dump::{PgDump, PgRestore, RestoreOptions};
use lifeboat_postgres::facts::{DumpScope, TableName};
use lifeboat_postgres::fixture::{self, FixtureSpec};
use lifeboat_postgres::split_restore::{self, RowSource};
use lifeboat_postgres::tools::{self, Discovery, PgTools};

/// Secrets set in the test's environment, as a daemon's would be.
const SECRETS: &[(&str, &str)] = &[
    ("LIFEBOAT_PASSWORD", "repository-passphrase-do-not-leak"),
    ("LIFEBOAT_API_TOKEN", "api-token-do-not-leak"),
    ("AWS_SECRET_ACCESS_KEY", "aws-secret-do-not-leak"),
    ("AWS_ACCESS_KEY_ID", "AKIADONOTLEAK"),
    ("KUBECONFIG", "/secret/kubeconfig-do-not-leak"),
];

/// A wrapper for `real` in `dir`: appends its environment (NUL-separated,
/// from /proc/self/environ of `cat`, which inherits it) to `log`, then
/// execs the real tool with the same arguments.
fn wrapper(dir: &Path, real: &Path, log: &Path) -> PathBuf {
    let name = real.file_name().unwrap();
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    writeln!(
        f,
        "#!/bin/sh\n/bin/cat /proc/self/environ >> '{}'\nprintf '\\n--end--\\n' >> '{}'\nexec '{}' \"$@\"",
        log.display(),
        log.display(),
        real.display()
    )
    .unwrap();
    drop(f);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Every environment the wrapper logged, as maps.
fn environments(log: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    text.split("\n--end--\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            e.split('\0')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

fn assert_clean(what: &str, env: &BTreeMap<String, String>, with_connection: bool) {
    for (k, v) in SECRETS {
        assert!(!env.contains_key(*k), "{what} got {k}: {env:?}");
        assert!(
            !env.values().any(|x| x.contains(v)),
            "{what} got the value of {k}: {env:?}"
        );
    }
    assert!(env.contains_key("PATH"), "{what} has no PATH: {env:?}");
    assert_eq!(
        env.get("TZ").map(String::as_str),
        Some("Europe/Berlin"),
        "{what}"
    );
    assert_eq!(
        env.get("LC_TIME").map(String::as_str),
        Some("C.UTF-8"),
        "{what}"
    );
    if with_connection {
        for k in ["PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD"] {
            assert!(env.contains_key(k), "{what} has no {k}: {env:?}");
        }
    }
    // Nothing beyond the allow-list and the connection's PG* variables.
    for k in env.keys() {
        let allowed = matches!(k.as_str(), "PATH" | "LANG" | "TZ" | "PWD" | "SHLVL" | "_")
            || k.starts_with("LC_")
            || k.starts_with("PG");
        assert!(
            allowed,
            "{what} got {k}, which is not on the allow-list: {env:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_tools_get_only_their_connection_and_the_allow_list() {
    // SAFETY: this binary's only test sets these before starting anything
    // that reads the environment on another thread.
    unsafe {
        for (k, v) in SECRETS {
            std::env::set_var(k, v);
        }
        std::env::set_var("TZ", "Europe/Berlin");
        std::env::set_var("LC_TIME", "C.UTF-8");
    }
    let cluster = TempCluster::start().unwrap();
    let src = cluster.create_database("src").await.unwrap();
    fixture::generate(&src, &FixtureSpec::tiny()).await.unwrap();
    let real = tools::discover(cluster.major(), &Discovery::default()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("env.log");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let wrapped = PgTools {
        dir: bin.clone(),
        pg_dump: wrapper(&bin, &real.pg_dump, &log),
        pg_restore: wrapper(&bin, &real.pg_restore, &log),
        psql: None,
        version: real.version.clone(),
    };

    // pg_dump, connected.
    let (t, s) = (wrapped.clone(), src.clone());
    let archive = tokio::task::spawn_blocking(move || {
        let mut d = PgDump::spawn(&t, &s, None, &DumpScope::full()).unwrap();
        let mut out = d.take_stdout().unwrap();
        let mut buf = Vec::new();
        out.read_to_end(&mut buf).unwrap();
        d.wait().unwrap();
        buf
    })
    .await
    .unwrap();
    let envs = environments(&log);
    assert_eq!(envs.len(), 1, "pg_dump ran once");
    assert_clean("pg_dump", &envs[0], true);
    assert_eq!(envs[0]["PGDATABASE"], "src");

    // pg_restore, connected, streamed.
    let target = cluster.create_database("restored").await.unwrap();
    let (t, c, a) = (wrapped.clone(), target.clone(), archive.clone());
    tokio::task::spawn_blocking(move || {
        let mut r = PgRestore::spawn_stream(&t, &c, &RestoreOptions::default()).unwrap();
        r.write_all(&a).unwrap();
        r.wait().unwrap();
    })
    .await
    .unwrap();
    let envs = environments(&log);
    assert_eq!(envs.len(), 2);
    assert_clean("pg_restore", &envs[1], true);
    assert_eq!(envs[1]["PGDATABASE"], "restored");

    // The split restore: pg_restore without a connection (TOC listings,
    // --data-only rows) and with one (the passes).
    let file = dir.path().join("archive.dump");
    std::fs::write(&file, &archive).unwrap();
    let split = vec![TableName::new("public", "incident_embeddings")];
    let (t, f, s) = (wrapped.clone(), file.clone(), split.clone());
    let plan = tokio::task::spawn_blocking(move || split_restore::plan(&t, &f, &s))
        .await
        .unwrap()
        .unwrap()
        .expect("the fixture's archive fits a split restore");
    let target2 = cluster.create_database("restored_split").await.unwrap();
    let opts = RestoreOptions {
        jobs: 2,
        ..Default::default()
    };
    split_restore::restore(&wrapped, &target2, &file, &opts, &plan, RowSource::Archive)
        .await
        .unwrap();
    let envs = environments(&log);
    assert!(
        envs.len() > 4,
        "the split restore ran pg_restore several times"
    );
    let mut connected = 0;
    for (i, e) in envs.iter().enumerate().skip(2) {
        let with_connection = e.contains_key("PGHOST");
        connected += usize::from(with_connection);
        assert_clean(
            &format!("split restore's pg_restore #{i}"),
            e,
            with_connection,
        );
    }
    assert!(
        connected > 0,
        "some of the split restore's pg_restore runs connect"
    );
}
