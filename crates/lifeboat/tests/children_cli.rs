//! What child processes of the binary see, and what `restore postgres` and
//! `unquiesce` say about writers: quiesce commands read their environment
//! back (only the allow-list and the names their `env:` lists), their output
//! goes to stderr, "no writers configured" when there are none, `unquiesce`
//! of a source quiesced by commands prints them, a bad `env:` name is refused.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{rt, setup};

/// Secrets in Lifeboat's environment that no child may see unasked.
const SECRETS: &[(&str, &str)] = &[
    ("AWS_SECRET_ACCESS_KEY", "aws-secret-do-not-leak"),
    ("AWS_ACCESS_KEY_ID", "AKIADONOTLEAK"),
    ("LIFEBOAT_API_TOKEN", "api-token-do-not-leak"),
    ("KUBECONFIG", "/run/secret/kubeconfig"),
    ("HOME", "/home/lifeboat-test"),
];

/// A NUL-separated environment (as /proc/PID/environ) as a map.
fn read_environ(path: &Path) -> BTreeMap<String, String> {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("{} was not written: {e}", path.display()));
    String::from_utf8_lossy(&bytes)
        .split('\0')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn quiesce_commands_get_only_the_allow_list_and_their_declared_env() {
    let rt = rt();
    let (cluster, mut env) = setup(&rt);
    for (k, v) in SECRETS {
        env.envs.push((k.to_string(), v.to_string()));
    }
    env.envs.push(("TZ".into(), "Europe/Berlin".into()));
    let pre_env = env.path("pre.environ");
    let post_env = env.path("post.environ");
    // `cp /proc/self/environ`: the environment of cp itself, which is what
    // Lifeboat started (no shell in between). The second pre command prints
    // to its stdout, which must reach Lifeboat's stderr, not its stdout.
    let config = env.path("lifeboat.yaml");
    std::fs::write(
        &config,
        format!(
            "repository:\n  url: {repo}\n  password: {{env: LIFEBOAT_PASSWORD}}\nsources:\n  db:\n    kind: postgres\n    postgres:\n      url: {url}\n    quiesce:\n      commands:\n        pre:\n          - [cp, /proc/self/environ, {pre}]\n          - [echo, said-by-a-pre-command]\n        post:\n          - {{command: [cp, /proc/self/environ, {post}], env: [KUBECONFIG, HOME, NOT_SET_ANYWHERE]}}\n",
            repo = env.repo,
            url = cluster.url("src"),
            pre = pre_env.display(),
            post = post_env.display(),
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    env.ok(&["--config", cfg, "backup", "postgres", "--source", "db"]);
    let (stdout, stderr) = env.exits_with(
        &[
            "--config", cfg, "--json", "restore", "postgres", "latest", "--source", "db",
        ],
        0,
    );
    let result: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is one JSON document ({e}): {stdout}"));
    assert_eq!(result["writers"], "resumed", "{result:#}");
    assert!(!stdout.contains("said-by-a-pre-command"), "{stdout}");
    assert!(stderr.contains("said-by-a-pre-command"), "{stderr}");

    let pre = read_environ(&pre_env);
    let post = read_environ(&post_env);
    for (name, e) in [("pre", &pre), ("post", &post)] {
        assert!(!e.contains_key("LIFEBOAT_PASSWORD"), "{name}: {e:?}");
        assert!(!e.contains_key("PGPASSWORD"), "{name}: {e:?}");
        assert!(!e.contains_key("AWS_SECRET_ACCESS_KEY"), "{name}: {e:?}");
        assert!(!e.contains_key("AWS_ACCESS_KEY_ID"), "{name}: {e:?}");
        assert!(!e.contains_key("LIFEBOAT_API_TOKEN"), "{name}: {e:?}");
        assert!(
            !e.values().any(|v| v.contains(common::PASSWORD)
                || v.contains("aws-secret-do-not-leak")
                || v.contains("api-token-do-not-leak")),
            "{name}: {e:?}"
        );
        assert!(e.contains_key("PATH"), "{name}: {e:?}");
        assert_eq!(
            e.get("TZ").map(String::as_str),
            Some("Europe/Berlin"),
            "{name}"
        );
    }
    // Only the post command asked for KUBECONFIG and HOME.
    assert!(
        !pre.contains_key("KUBECONFIG") && !pre.contains_key("HOME"),
        "{pre:?}"
    );
    assert_eq!(post["KUBECONFIG"], "/run/secret/kubeconfig");
    assert_eq!(post["HOME"], "/home/lifeboat-test");
    assert!(!post.contains_key("NOT_SET_ANYWHERE"), "{post:?}");
    // Nothing else came through.
    for e in [&pre, &post] {
        for k in e.keys() {
            assert!(
                matches!(k.as_str(), "PATH" | "LANG" | "TZ" | "KUBECONFIG" | "HOME")
                    || k.starts_with("LC_"),
                "{k} is not on the allow-list: {e:?}"
            );
        }
    }
    assert!(pre.len() <= 3 + pre.keys().filter(|k| k.starts_with("LC_")).count());

    // unquiesce of a source quiesced by commands only: prints its post
    // commands and exits 0 (it does not run them).
    std::fs::remove_file(&post_env).unwrap();
    let (out, _) = env.exits_with(&["--config", cfg, "unquiesce", "--source", "db"], 0);
    assert!(
        out.contains(&format!("cp /proc/self/environ {}", post_env.display())),
        "{out}"
    );
    assert!(
        !post_env.exists(),
        "unquiesce must not run the post commands"
    );
    let (out, _) = env.exits_with(&["--config", cfg, "--json", "unquiesce"], 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("unquiesce json");
    assert_eq!(v["source"], "db", "{v:#}");
    assert_eq!(v["post_commands"][0][0], "cp", "{v:#}");
}

#[test]
fn a_restore_without_writers_says_none_are_configured() {
    let rt = rt();
    let (cluster, env) = setup(&rt);
    let url = cluster.url("src");
    let snap: serde_json::Value =
        serde_json::from_str(&env.ok(&["--json", "backup", "postgres", "--db", &url]))
            .expect("backup json");
    let id = snap["id"].as_str().unwrap();
    // Into another database of the server: nothing is quiesced.
    let target = cluster.url("copy");
    let out = env.ok(&["restore", "postgres", id, "--target", &target]);
    assert!(out.contains("no writers configured"), "{out}");
    assert!(!out.contains("writers resumed"), "{out}");
    let (out, _) = env.exits_with(
        &[
            "--json",
            "restore",
            "postgres",
            id,
            "--target",
            &target,
            "--clean-existing",
        ],
        0,
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("restore json");
    assert_eq!(v["writers"], "none", "{v:#}");
}

#[test]
fn a_quiesce_env_entry_that_is_no_name_is_refused() {
    let env = common::Env::init();
    let config = env.path("bad.yaml");
    std::fs::write(
        &config,
        format!(
            "repository:\n  url: {}\nsources:\n  db:\n    kind: postgres\n    postgres:\n      url: postgresql://u@localhost/d\n    quiesce:\n      commands:\n        post:\n          - {{command: [systemctl, start, app], env: [\"KUBECONFIG=/tmp/x\"]}}\n",
            env.repo
        ),
    )
    .unwrap();
    let stderr = env.fails(&["--config", config.to_str().unwrap(), "snapshots"], 2);
    assert!(
        stderr.contains("sources.db.quiesce.commands.post[0].env") && stderr.contains("names only"),
        "{stderr}"
    );
}
