//! Secrets kept close (issue 17), through the `lifeboat` binary: every kind
//! of secret file with an open mode is one usage error (exit 2) with the
//! Kubernetes advice; a local repository is private (0600/0700); weak
//! passphrases and removing the key in use need a flag; key files are known
//! by their format, not their length; absurd KDF parameters in a slot are
//! refused at once; wrong secrets are reported without contradiction.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

fn write_mode(path: &Path, contents: &str, mode: u32) {
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn assert_mode_advice(err: &str, path: &Path) {
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("0644"), "{err}");
    assert!(
        err.contains(&format!("chmod 600 {}", path.display())),
        "{err}"
    );
    assert!(err.contains("defaultMode: 0400"), "{err}");
    assert!(err.contains("Kubernetes Secret"), "{err}");
    assert!(err.contains("fsGroup"), "{err}");
}

#[test]
fn every_secret_file_with_an_open_mode_exits_2_with_the_default_mode_hint() {
    let mut e = Env::init();
    let kf = e.path("ops.key");
    e.ok(&["key", "add", "--new-key-file", kf.to_str().unwrap()]);
    let pw = e.path("pw");
    write_mode(&pw, &format!("{PASSWORD}\n"), 0o600);
    e.envs.clear();
    // Both work while private.
    e.ok(&["--password-file", pw.to_str().unwrap(), "snapshots"]);
    e.ok(&["--key-file", kf.to_str().unwrap(), "snapshots"]);

    // --password-file and --key-file.
    chmod(&pw, 0o644);
    chmod(&kf, 0o644);
    let err = e.fails(&["--password-file", pw.to_str().unwrap(), "snapshots"], 2);
    assert_mode_advice(&err, &pw);
    let err = e.fails(&["--key-file", kf.to_str().unwrap(), "snapshots"], 2);
    assert_mode_advice(&err, &kf);
    // LIFEBOAT_KEY_FILE is the same flag.
    e.envs = vec![("LIFEBOAT_KEY_FILE".into(), kf.display().to_string())];
    let err = e.fails(&["snapshots"], 2);
    assert_mode_advice(&err, &kf);
    e.envs.clear();

    // The configuration's repository.key_file and repository.password {file}.
    let cfg = e.path("lifeboat.yaml");
    let with_config = |text: String| {
        std::fs::write(&cfg, text).unwrap();
        let mut c = std::process::Command::new(bin());
        c.arg("--config").arg(&cfg).args(["snapshots"]);
        for v in [
            "LIFEBOAT_PASSWORD",
            "LIFEBOAT_REPO",
            "LIFEBOAT_KEY_FILE",
            "LIFEBOAT_PASSWORD_FILE",
            "LIFEBOAT_CONFIG",
        ] {
            c.env_remove(v);
        }
        let o = c.output().unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err) = with_config(format!(
        "repository:\n  url: {}\n  key_file: {}\n",
        e.repo,
        kf.display()
    ));
    assert_eq!(code, Some(2), "{err}");
    assert_mode_advice(&err, &kf);
    let (code, err) = with_config(format!(
        "repository:\n  url: {}\n  password: {{file: {}}}\n",
        e.repo,
        pw.display()
    ));
    assert_eq!(code, Some(2), "{err}");
    assert_mode_advice(&err, &pw);

    // S3 credentials by file reference: refused before any request.
    chmod(&pw, 0o600);
    let s3_secret = e.path("s3-secret");
    write_mode(&s3_secret, "not-a-real-key\n", 0o644);
    let (code, err) = with_config(format!(
        "repository:\n  url: s3://no-such-bucket/repo\n  password: {{file: {}}}\n  s3:\n    endpoint: http://127.0.0.1:1\n    allow_http: true\n    secret_access_key: {{file: {}}}\n",
        pw.display(),
        s3_secret.display()
    ));
    assert_eq!(code, Some(2), "{err}");
    assert_mode_advice(&err, &s3_secret);

    // A source's password file: refused before any connection is tried.
    let src_pw = e.path("db-password");
    write_mode(&src_pw, "db-secret\n", 0o644);
    std::fs::write(
        &cfg,
        format!(
            "repository:\n  url: {}\n  password: {{file: {}}}\nsources:\n  db:\n    kind: postgres\n    postgres:\n      url: postgresql://u@127.0.0.1:1/d\n      password: {{file: {}}}\n",
            e.repo,
            pw.display(),
            src_pw.display()
        ),
    )
    .unwrap();
    let o = std::process::Command::new(bin())
        .arg("--config")
        .arg(&cfg)
        .args(["backup", "postgres", "--source", "db"])
        .env_remove("LIFEBOAT_PASSWORD")
        .env_remove("LIFEBOAT_REPO")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_mode_advice(&err, &src_pw);

    // The daemon's API token file.
    let token = e.path("token");
    write_mode(&token, "0123456789abcdef0123456789abcdef\n", 0o644);
    std::fs::write(
        &cfg,
        format!(
            "repository:\n  url: {}\n  password: {{file: {}}}\nserve:\n  listen: 127.0.0.1:{}\n  token: {{file: {}}}\n",
            e.repo,
            pw.display(),
            free_port(),
            token.display()
        ),
    )
    .unwrap();
    let o = std::process::Command::new(bin())
        .arg("--config")
        .arg(&cfg)
        .args(["serve"])
        .env_remove("LIFEBOAT_PASSWORD")
        .env_remove("LIFEBOAT_REPO")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_mode_advice(&err, &token);

    // A directory is not a secret file, and no chmod advice is given for it.
    let dir = e.path("a-dir");
    std::fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o755);
    for flag in ["--password-file", "--key-file"] {
        let err = e.fails(&[flag, dir.to_str().unwrap(), "snapshots"], 2);
        assert!(err.contains("not a regular file"), "{err}");
        assert!(!err.contains("chmod"), "{err}");
    }
}

#[test]
fn a_new_local_repository_is_private() {
    let e = Env::init();
    e.backup_bytes("s", b"private data");
    let kf = e.path("k.key");
    e.ok(&["key", "add", "--new-key-file", kf.to_str().unwrap()]);
    e.ok(&["check"]);
    let root = Path::new(&e.repo);
    assert_eq!(root.metadata().unwrap().permissions().mode() & 0o777, 0o700);
    let mut files = 0;
    let mut dirs = 0;
    let mut keys = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            let mode = p.metadata().unwrap().permissions().mode() & 0o777;
            if p.is_dir() {
                assert_eq!(mode, 0o700, "{}", p.display());
                dirs += 1;
                stack.push(p);
            } else {
                assert_eq!(mode, 0o600, "{}", p.display());
                files += 1;
                keys += usize::from(p.parent().unwrap().ends_with("keys"));
            }
        }
    }
    assert_eq!(keys, 2, "both key slots were looked at");
    assert!(files >= 6 && dirs >= 4, "{files} files, {dirs} dirs");
}

#[test]
fn weak_passphrases_need_a_flag() {
    let mut e = Env::new();
    e.envs = vec![("LIFEBOAT_PASSWORD".into(), "x".into())];
    let err = e.fails(&["init"], 2);
    assert!(
        err.contains("too weak") && err.contains("--weak-passphrase"),
        "{err}"
    );
    assert!(
        !Path::new(&e.repo).join("lifeboat").exists(),
        "nothing was created"
    );
    let pw = e.path("pw");
    write_mode(&pw, "aaaaaaaaaaaaaaaaaaaa\n", 0o600);
    e.envs.clear();
    let err = e.fails(&["--password-file", pw.to_str().unwrap(), "init"], 2);
    assert!(err.contains("too weak"), "{err}");
    e.envs = vec![("LIFEBOAT_PASSWORD".into(), "x".into())];
    e.ok(&["init", "--weak-passphrase"]);
    e.ok(&["snapshots"]);

    // `key add` for a passphrase too.
    e.envs
        .push(("LIFEBOAT_NEW_PASSWORD".into(), "hunter2".into()));
    let err = e.fails(&["key", "add"], 2);
    assert!(
        err.contains("too weak") && !err.contains("hunter2"),
        "{err}"
    );
    e.ok(&["key", "add", "--weak-passphrase"]);
    e.envs.pop();
    e.envs
        .push(("LIFEBOAT_NEW_PASSWORD".into(), PASSWORD.into()));
    e.ok(&["key", "add"]);
    // A generated key file needs no flag.
    let kf = e.path("k.key");
    e.ok(&["key", "add", "--new-key-file", kf.to_str().unwrap()]);
}

#[test]
fn removing_the_key_in_use_needs_force() {
    let mut e = Env::init();
    let kf = e.path("k.key");
    e.ok(&["key", "add", "--new-key-file", kf.to_str().unwrap()]);
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&e.ok(&["--json", "key", "list"])).unwrap();
    let current = list.iter().find(|k| k["current"] == true).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        list.iter().find(|k| k["current"] == true).unwrap()["kind"],
        "passphrase"
    );
    let err = e.fails(&["key", "remove", &current[..8]], 2);
    assert!(
        err.contains("key in use") && err.contains("--force"),
        "{err}"
    );
    // Still there, still opens.
    assert_eq!(
        serde_json::from_str::<Vec<serde_json::Value>>(&e.ok(&["--json", "key", "list"]))
            .unwrap()
            .len(),
        2
    );
    let o = e.run(&["key", "remove", &current, "--force"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning") && err.contains("key in use"),
        "{err}"
    );
    e.fails(&["snapshots"], 6);
    e.envs.clear();
    e.ok(&["--key-file", kf.to_str().unwrap(), "snapshots"]);
}

/// A key file of 32 bytes or more that is a human passphrase goes through
/// Argon2id: the slot made from it is a passphrase slot, opens with that
/// file and nothing else; a generated (formatted) key file still works; a
/// key file of the old format (64 hex digits, no header) still opens its
/// old slot (tested in lifeboat-repo's keys.rs, where such a slot can be made).
#[test]
fn a_long_passphrase_key_file_goes_through_the_kdf() {
    let mut e = Env::init();
    let phrase = e.path("phrase.key");
    write_mode(
        &phrase,
        "my long and very human passphrase, well over 32 bytes\n",
        0o600,
    );
    let out = e.ok(&["key", "add", "--new-key-file", phrase.to_str().unwrap()]);
    assert!(
        out.contains("(passphrase)") && out.contains("not in the Lifeboat key-file format"),
        "{out}"
    );
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&e.ok(&["--json", "key", "list"])).unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|k| k["kind"] == "passphrase"), "{list:?}");

    let gen_key = e.path("gen.key");
    e.ok(&["key", "add", "--new-key-file", gen_key.to_str().unwrap()]);
    let text = std::fs::read_to_string(&gen_key).unwrap();
    assert!(text.starts_with("lifeboat-key-v1\n"), "{text}");
    e.envs.clear();
    e.ok(&["--key-file", phrase.to_str().unwrap(), "snapshots"]);
    e.ok(&["--key-file", gen_key.to_str().unwrap(), "snapshots"]);
    // The same text as a password file opens the same slot.
    let pw = e.path("phrase.pw");
    write_mode(
        &pw,
        "my long and very human passphrase, well over 32 bytes\n",
        0o600,
    );
    e.ok(&["--password-file", pw.to_str().unwrap(), "snapshots"]);
    // Another long text does not.
    let other = e.path("other.key");
    write_mode(
        &other,
        "my long and very human passphrase, well over 32 bytez\n",
        0o600,
    );
    let err = e.fails(&["--key-file", other.to_str().unwrap(), "snapshots"], 6);
    assert!(err.contains("wrong key file"), "{err}");
    assert!(err.contains("not in the Lifeboat key-file format"), "{err}");
    assert!(!err.contains("no slot matches"), "{err}");
}

#[test]
fn wrong_secrets_say_what_was_tried_and_what_to_do() {
    let mut e = Env::init();
    let kf = e.path("ops.key");
    e.ok(&["key", "add", "--new-key-file", kf.to_str().unwrap()]);
    e.envs.clear();
    // Another generated key file: no slot has its fingerprint.
    let other = Env::new();
    let other_kf = e.path("other.key");
    other.ok(&["init"]);
    other.ok(&["key", "add", "--new-key-file", other_kf.to_str().unwrap()]);
    let err = e.fails(&["--key-file", other_kf.to_str().unwrap(), "snapshots"], 6);
    assert!(err.contains("wrong key file"), "{err}");
    assert!(
        err.contains("no key-file slot was made from this key file"),
        "{err}"
    );
    assert!(err.contains("--key-file"), "{err}");
    assert!(!err.contains("tried no slot"), "{err}");
    assert!(!err.contains("no slot matches"), "{err}");

    // Wrong passphrase: names the passphrase slots tried and the key-file alternative.
    e.envs = vec![("LIFEBOAT_PASSWORD".into(), "not the passphrase".into())];
    let err = e.fails(&["snapshots"], 6);
    assert!(err.contains("wrong passphrase"), "{err}");
    assert!(
        err.contains("tried on every passphrase slot (keys/"),
        "{err}"
    );
    assert!(err.contains("LIFEBOAT_PASSWORD"), "{err}");
    assert!(err.contains("1 key-file slot"), "{err}");

    // Only key-file slots left: a passphrase has nothing to try.
    e.envs.clear();
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&e.ok(&["--key-file", kf.to_str().unwrap(), "--json", "key", "list"]))
            .unwrap();
    let pass = list.iter().find(|k| k["kind"] == "passphrase").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    e.ok(&["--key-file", kf.to_str().unwrap(), "key", "remove", &pass]);
    e.envs = vec![("LIFEBOAT_PASSWORD".into(), PASSWORD.into())];
    let err = e.fails(&["snapshots"], 6);
    assert!(err.contains("no passphrase slot"), "{err}");
    assert!(err.contains("--key-file"), "{err}");
}

#[test]
fn a_slot_with_absurd_kdf_parameters_is_refused_quickly() {
    let e = Env::init();
    let keys = Path::new(&e.repo).join("keys");
    let slot_path = std::fs::read_dir(&keys)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut slot: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&slot_path).unwrap()).unwrap();
    slot["kdf"]["memory_kib"] = serde_json::json!(u32::MAX);
    slot["kdf"]["iterations"] = serde_json::json!(u32::MAX);
    std::fs::write(&slot_path, serde_json::to_vec(&slot).unwrap()).unwrap();
    let t0 = Instant::now();
    let err = e.fails(&["snapshots"], 4);
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert!(err.contains("memory_kib"), "{err}");
    assert!(err.contains("altered or damaged"), "{err}");
}
