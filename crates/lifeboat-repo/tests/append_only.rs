//! Append-only mode and S3 Object Lock (`docs/append-only.md`).
//!
//! - The client's promise, on local storage under a recording wrapper: in
//!   append-only mode a backup issues no delete outside `locks/` and no
//!   overwriting put (every put outside `locks/` is a conditional create);
//!   prune, repair index and key removal refuse; raw deletes and
//!   overwrites are refused; restore and check work.
//! - The storage's guarantee, against moto enforcing IAM: this test starts
//!   its own moto server (from `LIFEBOAT_TEST_VENV`, the virtualenv
//!   `scripts/test.sh` installs moto into) with
//!   `INITIAL_NO_AUTH_ACTION_COUNT`, so that after the setup requests every
//!   request is authorised against IAM users with the policies of
//!   `docs/append-only.md`. The backup credentials back up into an Object
//!   Lock bucket (retention set on every pack, index document, key slot and
//!   the snapshot) and cannot delete; the admin credentials forget and
//!   prune, and prune keeps the packs that Object Lock retains; in a bucket
//!   without Object Lock the admin's prune deletes them.
//!
//! Without `LIFEBOAT_TEST_VENV` the moto test fails saying so, unless
//! `LIFEBOAT_TEST_SKIP_S3=1`.

use crate::common;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use lifeboat_repo::backup::{BackupSession, Progress};
use lifeboat_repo::format::{DATA_PREFIX, SNAPSHOTS_PREFIX};
use lifeboat_repo::prune::{PruneOptions, prune};
use lifeboat_repo::restore::restore_item;
use lifeboat_repo::retain::ObjectLock;
use lifeboat_repo::storage::object::{ObjectStoreBackend, S3Settings};
use lifeboat_repo::storage::object_lock::{ObjectLockClient, RetentionMode, RetentionPolicy};
use lifeboat_repo::storage::{ObjectInfo, Storage, StorageResult};
use lifeboat_repo::{ErrorClass, InitOptions, RepoError, Repository, Secret};

use common::{SharedBuf, data, meta};

/// Records every mutating request that reaches the storage.
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn Storage>,
    log: Mutex<Vec<(&'static str, String)>>,
}

impl Recording {
    fn take(&self) -> Vec<(&'static str, String)> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
    fn note(&self, op: &'static str, key: &str) {
        self.log.lock().unwrap().push((op, key.to_string()));
    }
}

#[async_trait]
impl Storage for Recording {
    fn location(&self) -> String {
        self.inner.location()
    }
    async fn put(&self, key: &str, data: Bytes) -> StorageResult<()> {
        self.note("put", key);
        self.inner.put(key, data).await
    }
    async fn put_new(&self, key: &str, data: Bytes) -> StorageResult<bool> {
        self.note("put_new", key);
        self.inner.put_new(key, data).await
    }
    async fn get(&self, key: &str) -> StorageResult<Bytes> {
        self.inner.get(key).await
    }
    async fn get_range(&self, key: &str, range: Range<u64>) -> StorageResult<Bytes> {
        self.inner.get_range(key, range).await
    }
    async fn head(&self, key: &str) -> StorageResult<ObjectInfo> {
        self.inner.head(key).await
    }
    async fn list(&self, prefix: &str) -> StorageResult<Vec<ObjectInfo>> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> StorageResult<()> {
        self.note("delete", key);
        self.inner.delete(key).await
    }
}

async fn backup(repo: &Repository, bytes: Vec<u8>) -> Result<String, RepoError> {
    let mut s = BackupSession::start(repo, Arc::new(Progress::default())).await?;
    s.add_stream("stdin", std::io::Cursor::new(bytes)).await?;
    Ok(s.commit(meta("db")).await?.id)
}

async fn restore(repo: &Repository, id: &str) -> Vec<u8> {
    let snap = repo
        .snapshots()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.id == id)
        .unwrap();
    let out = SharedBuf::default();
    restore_item(
        repo,
        &snap,
        None,
        out.clone(),
        Arc::new(Progress::default()),
    )
    .await
    .unwrap();
    out.0.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_only_backup_never_deletes_or_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let local: Arc<dyn Storage> =
        Arc::new(ObjectStoreBackend::local(&dir.path().join("repo"), true).unwrap());
    let rec = Arc::new(Recording {
        inner: local,
        log: Mutex::new(Vec::new()),
    });
    let secret = Secret::key_file(Secret::generate_key_file().unwrap()).unwrap();
    Repository::init(
        rec.clone(),
        &secret,
        InitOptions {
            pack_size: 1024 * 1024,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let repo = Repository::open(rec.clone(), &secret)
        .await
        .unwrap()
        .with_append_only(true);
    assert!(repo.append_only());
    let first = data(3 * 1024 * 1024, 1);
    let mut second = first.clone();
    second.extend(data(2 * 1024 * 1024, 2));
    rec.take();

    let a = backup(&repo, first.clone()).await.unwrap();
    let b = backup(&repo, second.clone()).await.unwrap();
    let log = rec.take();
    assert!(
        log.iter()
            .any(|(op, k)| *op == "put_new" && k.starts_with(DATA_PREFIX)),
        "packs are written by conditional create: {log:?}"
    );
    for (op, key) in &log {
        let lock = key.starts_with("locks/");
        match *op {
            "put_new" => {}
            "put" | "delete" => assert!(lock, "{op} {key} in append-only mode: {log:?}"),
            _ => unreachable!(),
        }
    }

    // Reading works: restore both, check clean.
    assert_eq!(restore(&repo, &a).await, first);
    assert_eq!(restore(&repo, &b).await, second);
    let report = lifeboat_repo::check::check(&repo, true, Arc::new(Progress::default()))
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.errors);

    // What deletes refuses, saying what to do, exit class usage (2).
    let e = prune(&repo, &PruneOptions::default()).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Usage, "{e}");
    assert!(e.to_string().contains("append-only"), "{e}");
    assert!(e.to_string().contains("admin"), "{e}");
    let e = lifeboat_repo::repair::repair_index(&repo, Arc::new(Progress::default()))
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Usage, "{e}");
    let e = repo.remove_key("anything", true).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Usage, "{e}");
    // A raw delete or overwrite through the repository's storage.
    let snap_key = format!("{SNAPSHOTS_PREFIX}{a}");
    let e = repo.storage().delete(&snap_key).await.unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    let e = repo
        .storage()
        .put("config", Bytes::from_static(b"evil"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("replace"), "{e}");
    // A content-addressed object already there keeps its bytes.
    let before = repo.storage().get(&snap_key).await.unwrap();
    repo.storage()
        .put(&snap_key, Bytes::from_static(b"other bytes"))
        .await
        .unwrap();
    assert_eq!(repo.storage().get(&snap_key).await.unwrap(), before);
    let log = rec.take();
    assert!(
        log.iter()
            .all(|(op, k)| k.starts_with("locks/") || *op == "put_new"),
        "nothing refused reached the storage: {log:?}"
    );
    assert_eq!(repo.snapshots().await.unwrap().len(), 2);

    // The same repository opened normally prunes (nothing to delete here).
    let admin = Repository::open(rec.clone(), &secret).await.unwrap();
    prune(&admin, &PruneOptions::default()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_new_creates_once_locally() {
    let dir = tempfile::tempdir().unwrap();
    let s = ObjectStoreBackend::local(&dir.path().join("repo"), true).unwrap();
    assert!(
        s.put_new("data/ab/x", Bytes::from_static(b"one"))
            .await
            .unwrap()
    );
    assert!(
        !s.put_new("data/ab/x", Bytes::from_static(b"two"))
            .await
            .unwrap()
    );
    assert_eq!(
        s.get("data/ab/x").await.unwrap(),
        Bytes::from_static(b"one")
    );
    // No staging file is left behind.
    let names: Vec<String> = s
        .list("data/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(names, vec!["data/ab/x".to_string()]);
    let leftovers = std::fs::read_dir(dir.path().join("repo/data/ab"))
        .unwrap()
        .count();
    assert_eq!(leftovers, 1);
}

// ----- moto with IAM enforcement -----

/// A moto server of our own, stopped on drop.
struct Moto {
    child: std::process::Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn venv() -> Option<std::path::PathBuf> {
    match std::env::var("LIFEBOAT_TEST_VENV") {
        Ok(v) if !v.is_empty() => Some(v.into()),
        _ if std::env::var("LIFEBOAT_TEST_SKIP_S3").as_deref() == Ok("1") => None,
        _ => panic!(
            "LIFEBOAT_TEST_VENV is not set: run the tests with scripts/test.sh (it installs moto into a virtualenv and exports it), or set LIFEBOAT_TEST_SKIP_S3=1 to skip the S3 tests deliberately"
        ),
    }
}

/// The setup requests moto serves before it enforces IAM: keep equal to
/// the number of requests `SETUP` makes.
const SETUP_REQUESTS: u32 = 8;

/// Buckets `locked` (Object Lock) and `plain`; users `backup` (the
/// append-only policy of docs/append-only.md, both buckets) and `admin`
/// (everything). Prints their keys as JSON.
const SETUP: &str = r#"
import boto3, json, sys
ep = sys.argv[1]
def c(svc, ak="setup", sk="setup"):
    return boto3.client(svc, endpoint_url=ep, region_name="us-east-1",
                        aws_access_key_id=ak, aws_secret_access_key=sk)
s3, iam = c("s3"), c("iam")
s3.create_bucket(Bucket="locked", ObjectLockEnabledForBucket=True)
s3.create_bucket(Bucket="plain")
def arns(tail):
    return ["arn:aws:s3:::locked" + tail, "arn:aws:s3:::plain" + tail]
backup = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketObjectLockConfiguration"],
     "Resource": arns("")},
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:PutObjectRetention",
                                   "s3:GetObjectRetention"],
     "Resource": arns("/*")},
    {"Effect": "Allow", "Action": ["s3:DeleteObject"],
     "Resource": arns("/repo/locks/*") + arns("/repo/serve/*")},
]}
admin = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["s3:*"], "Resource": arns("") + arns("/*")}]}
keys = {}
for name, policy in (("backup", backup), ("admin", admin)):
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(policy))
    k = iam.create_access_key(UserName=name)["AccessKey"]
    keys[name] = [k["AccessKeyId"], k["SecretAccessKey"]]
print(json.dumps(keys))
"#;

/// A loopback port no other test process is handed while this one lives.
use lifeboat_test_ports::reserve as free_port;

fn start_moto(venv: &std::path::Path) -> (Moto, HashMap<String, (String, String)>) {
    let port = free_port();
    let log =
        std::fs::File::create(std::env::temp_dir().join(format!("moto-iam-{port}.log"))).unwrap();
    let child = std::process::Command::new(venv.join("bin/moto_server"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("INITIAL_NO_AUTH_ACTION_COUNT", SETUP_REQUESTS.to_string())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("moto_server from LIFEBOAT_TEST_VENV");
    let moto = Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    // Wait until it accepts connections (not an ordering sleep: readiness).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "moto_server did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = std::process::Command::new(venv.join("bin/python"))
        .args(["-c", SETUP, &moto.endpoint])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "moto setup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys: HashMap<String, Vec<String>> = serde_json::from_slice(&out.stdout).unwrap();
    let keys = keys
        .into_iter()
        .map(|(k, v)| (k, (v[0].clone(), v[1].clone())))
        .collect();
    (moto, keys)
}

fn settings(endpoint: &str, keys: &(String, String)) -> S3Settings {
    S3Settings {
        endpoint: Some(endpoint.to_string()),
        region: Some("us-east-1".into()),
        access_key_id: Some(keys.0.clone()),
        secret_access_key: Some(keys.1.clone()),
        allow_http: true,
    }
}

fn storage(bucket: &str, s3: &S3Settings) -> Arc<dyn Storage> {
    Arc::new(ObjectStoreBackend::s3(bucket, "repo", s3).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_only_credentials_and_object_lock_on_moto() {
    let Some(venv) = venv() else { return };
    let (moto, keys) = start_moto(&venv);
    let backup_s3 = settings(&moto.endpoint, &keys["backup"]);
    let admin_s3 = settings(&moto.endpoint, &keys["admin"]);
    let secret = Secret::key_file(Secret::generate_key_file().unwrap()).unwrap();
    let policy = RetentionPolicy {
        mode: RetentionMode::Governance,
        days: 3,
    };

    for bucket in ["locked", "plain"] {
        // The administrator creates the repository.
        Repository::init(
            storage(bucket, &admin_s3),
            &secret,
            InitOptions {
                pack_size: 1024 * 1024,
                ..Default::default()
            },
        )
        .await
        .unwrap();

        // Backups with the append-only credentials.
        let lock_client = ObjectLockClient::new(bucket, "repo", &backup_s3).unwrap();
        let bucket_lock = lock_client.bucket_lock().await.unwrap();
        assert_eq!(bucket_lock.is_some(), bucket == "locked", "{bucket}");
        let object_lock = bucket_lock.map(|_| ObjectLock {
            client: lock_client.clone(),
            policy,
        });
        let repo = Repository::open(storage(bucket, &backup_s3), &secret)
            .await
            .unwrap()
            .with_append_only(true)
            .with_object_lock(object_lock.clone());
        let first = data(2 * 1024 * 1024 + 5, 7);
        let a = backup(&repo, first.clone()).await.unwrap();
        let mut more = first.clone();
        more.extend(data(1024 * 1024, 8));
        let b = backup(&repo, more.clone()).await.unwrap();
        assert_eq!(restore(&repo, &a).await, first);

        // The backup credentials cannot delete, even bypassing the client's
        // refusal: the storage says no.
        let bare = storage(bucket, &backup_s3);
        let packs = bare.list(DATA_PREFIX).await.unwrap();
        assert!(!packs.is_empty());
        for key in [format!("{SNAPSHOTS_PREFIX}{a}"), packs[0].key.clone()] {
            let e = bare.delete(&key).await.unwrap_err();
            assert!(e.write_refused, "{bucket}: {e}");
            assert!(e.message.contains("access denied"), "{bucket}: {e}");
            bare.head(&key).await.unwrap();
        }
        // …and the client refuses before asking.
        let e = prune(&repo, &PruneOptions::default()).await.unwrap_err();
        assert!(matches!(e, RepoError::AppendOnly(_)), "{e}");

        if let Some(lock) = &object_lock {
            // Everything the snapshots need is retained for ≥ `days`.
            let needed = Utc::now() + chrono::Duration::days(i64::from(policy.days));
            let mut keys: Vec<String> = packs.iter().map(|o| o.key.clone()).collect();
            keys.push(format!("{SNAPSHOTS_PREFIX}{a}"));
            keys.push(format!("{SNAPSHOTS_PREFIX}{b}"));
            keys.push("config".into());
            keys.extend(
                bare.list("index/")
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|o| o.key),
            );
            keys.extend(bare.list("keys/").await.unwrap().into_iter().map(|o| o.key));
            for k in &keys {
                let until = lock.client.retention(k).await.unwrap();
                assert!(
                    until.is_some_and(|u| u > needed - chrono::Duration::minutes(5)),
                    "{k} retained until {until:?}"
                );
            }
        }

        // The administrator forgets the first snapshot, then the second,
        // and prunes with no grace period.
        let admin_lock = object_lock.as_ref().map(|l| ObjectLock {
            client: ObjectLockClient::new(bucket, "repo", &admin_s3).unwrap(),
            policy: l.policy,
        });
        let admin = Repository::open(storage(bucket, &admin_s3), &secret)
            .await
            .unwrap()
            .with_object_lock(admin_lock);
        for id in [&a, &b] {
            admin
                .storage()
                .delete(&format!("{SNAPSHOTS_PREFIX}{id}"))
                .await
                .unwrap();
        }
        let opts = PruneOptions {
            grace: Duration::ZERO,
            dry_run: false,
        };
        let r = prune(&admin, &opts).await.unwrap();
        let left = admin.storage().list(DATA_PREFIX).await.unwrap();
        if bucket == "locked" {
            // Retained: kept, counted, said; nothing hidden behind a delete
            // marker, and they stay condemned for a later prune.
            assert_eq!(r.deleted_packs, 0, "{r:?}");
            assert_eq!(r.retained, packs.len(), "{r:?}");
            assert!(r.retained_until.is_some(), "{r:?}");
            assert!(
                r.waiting_reasons.iter().any(|w| w.contains("Object Lock")),
                "{r:?}"
            );
            assert_eq!(left.len(), packs.len());
            assert_eq!(admin.condemned_packs().await.unwrap().len(), packs.len());
            let again = prune(&admin, &opts).await.unwrap();
            assert_eq!(again.deleted_packs, 0, "{again:?}");
            assert_eq!(again.retained, packs.len(), "{again:?}");
            let report = lifeboat_repo::check::check(&admin, true, Arc::new(Progress::default()))
                .await
                .unwrap();
            assert!(report.ok(), "{:?}", report.errors);
        } else {
            assert_eq!(r.deleted_packs, packs.len(), "{r:?}");
            assert_eq!(r.retained, 0);
            assert!(left.is_empty(), "{left:?}");
        }
    }
    drop(moto);
}
