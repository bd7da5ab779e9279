//! The storage contract, run against a local directory and against a real
//! S3-compatible server (moto's server on loopback, started by
//! `scripts/test.sh`, which exports `LIFEBOAT_TEST_S3_ENDPOINT`).
//!
//! Without that variable the S3 tests fail, telling you to run the test
//! script, unless `LIFEBOAT_TEST_SKIP_S3=1` is set.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lifeboat_repo::storage::faulty::{Faulty, Op};
use lifeboat_repo::storage::object::{ObjectStoreBackend, S3Settings, open_url, open_url_create};
use lifeboat_repo::storage::retry::{RetryPolicy, Retrying};
use lifeboat_repo::storage::{Storage, StorageErrorKind};

const MIB: usize = 1024 * 1024;

/// The S3 test endpoint, or `None` when S3 tests are explicitly skipped.
fn s3_endpoint() -> Option<String> {
    match std::env::var("LIFEBOAT_TEST_S3_ENDPOINT") {
        Ok(e) if !e.is_empty() => Some(e),
        _ => {
            if std::env::var("LIFEBOAT_TEST_SKIP_S3").as_deref() == Ok("1") {
                eprintln!("LIFEBOAT_TEST_SKIP_S3=1: skipping the S3 part of this test");
                None
            } else {
                panic!(
                    "LIFEBOAT_TEST_S3_ENDPOINT is not set. Run the tests with scripts/test.sh, \
                     which starts an S3-compatible server (moto) on loopback and sets it; \
                     or set LIFEBOAT_TEST_SKIP_S3=1 to skip the S3 tests deliberately."
                )
            }
        }
    }
}

fn s3_settings(endpoint: &str) -> S3Settings {
    // Explicit credentials: never fall back to the instance metadata service.
    S3Settings {
        endpoint: Some(endpoint.to_string()),
        region: Some("us-east-1".into()),
        access_key_id: Some("lifeboat-test".into()),
        secret_access_key: Some("lifeboat-test-secret".into()),
        allow_http: true,
    }
}

/// A bucket name unique to this process and call.
fn unique_bucket(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "lifeboat-{tag}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Create `bucket` with a plain path-style `PUT /bucket` (moto accepts it
/// unsigned). Only loopback `http://host:port` endpoints are supported.
fn create_bucket(endpoint: &str, bucket: &str) {
    let hostport = endpoint
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("test endpoint must be http://host:port, got {endpoint}"))
        .trim_end_matches('/');
    let mut conn = std::net::TcpStream::connect(hostport)
        .unwrap_or_else(|e| panic!("cannot connect to the S3 test server at {endpoint}: {e}"));
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        conn,
        "PUT /{bucket} HTTP/1.1\r\nHost: {hostport}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    let status = response.lines().next().unwrap_or("");
    assert!(
        status.contains(" 200"),
        "creating bucket {bucket} failed: {response}"
    );
}

fn s3_backend(endpoint: &str, tag: &str, prefix: &str) -> ObjectStoreBackend {
    let bucket = unique_bucket(tag);
    create_bucket(endpoint, &bucket);
    ObjectStoreBackend::s3(&bucket, prefix, &s3_settings(endpoint)).expect("open s3 backend")
}

/// Deterministic pseudo-random bytes (incompressible, no dependencies).
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn keys(v: Vec<lifeboat_repo::storage::ObjectInfo>) -> Vec<String> {
    v.into_iter().map(|i| i.key).collect()
}

/// The contract every backend must meet.
async fn contract(s: &dyn Storage) {
    // put / get, overwrite, empty objects.
    s.put("config", Bytes::from_static(b"config v1"))
        .await
        .unwrap();
    assert_eq!(s.get("config").await.unwrap(), "config v1");
    s.put("config", Bytes::from_static(b"config v2!"))
        .await
        .unwrap();
    assert_eq!(s.get("config").await.unwrap(), "config v2!");
    s.put("keys/empty", Bytes::new()).await.unwrap();
    assert_eq!(s.get("keys/empty").await.unwrap().len(), 0);
    assert_eq!(s.head("keys/empty").await.unwrap().size, 0);

    // head.
    let info = s.head("config").await.unwrap();
    assert_eq!(info.key, "config");
    assert_eq!(info.size, 10);
    let age = chrono::Utc::now() - info.last_modified;
    assert!(
        age.num_seconds().abs() < 3600,
        "last_modified {} is far from now",
        info.last_modified
    );

    // get_range.
    let blob = pseudo_random(100_000, 1);
    s.put("data/ab/ab01", Bytes::from(blob.clone()))
        .await
        .unwrap();
    assert_eq!(
        s.get_range("data/ab/ab01", 0..10).await.unwrap(),
        blob[0..10]
    );
    assert_eq!(
        s.get_range("data/ab/ab01", 4096..70_000).await.unwrap(),
        blob[4096..70_000]
    );
    assert_eq!(
        s.get_range("data/ab/ab01", 99_990..100_000).await.unwrap(),
        blob[99_990..]
    );
    assert_eq!(s.get_range("data/ab/ab01", 5..5).await.unwrap().len(), 0);
    let past_end = s.get_range("data/ab/ab01", 99_990..100_010).await;
    assert!(
        past_end.is_err(),
        "a range past the end must not be returned short"
    );

    // list: recursive, keys relative to the root, by string prefix.
    s.put("data/ac/ac02", Bytes::from_static(b"x"))
        .await
        .unwrap();
    s.put("snapshots/s1", Bytes::from_static(b"s"))
        .await
        .unwrap();
    assert_eq!(
        keys(s.list("").await.unwrap()),
        [
            "config",
            "data/ab/ab01",
            "data/ac/ac02",
            "keys/empty",
            "snapshots/s1"
        ]
    );
    assert_eq!(
        keys(s.list("data/").await.unwrap()),
        ["data/ab/ab01", "data/ac/ac02"]
    );
    assert_eq!(keys(s.list("data/ab/").await.unwrap()), ["data/ab/ab01"]);
    assert_eq!(keys(s.list("data/a").await.unwrap()).len(), 2);
    assert_eq!(keys(s.list("snap").await.unwrap()), ["snapshots/s1"]);
    assert!(s.list("locks/").await.unwrap().is_empty());
    let listed = s.list("data/ab/").await.unwrap();
    assert_eq!(listed[0].size, 100_000);

    // Not found.
    for e in [
        s.get("data/zz/missing").await.unwrap_err(),
        s.head("data/zz/missing").await.unwrap_err(),
        s.get_range("data/zz/missing", 0..4).await.unwrap_err(),
    ] {
        assert_eq!(e.kind, StorageErrorKind::NotFound, "{e}");
        assert!(e.to_string().contains("data/zz/missing"), "{e}");
    }

    // Delete; deleting a missing object is fine.
    s.delete("data/ac/ac02").await.unwrap();
    assert!(s.get("data/ac/ac02").await.unwrap_err().is_not_found());
    s.delete("data/ac/ac02").await.unwrap();
    s.delete("never/existed").await.unwrap();
    assert_eq!(keys(s.list("data/").await.unwrap()), ["data/ab/ab01"]);

    // A large object (multipart upload: > 8 MiB, parts of 8 MiB, a short
    // last part).
    let big = pseudo_random(20 * MIB + 12_345, 2);
    s.put("data/big/pack", Bytes::from(big.clone()))
        .await
        .unwrap();
    assert_eq!(
        s.head("data/big/pack").await.unwrap().size,
        big.len() as u64
    );
    let got = s.get("data/big/pack").await.unwrap();
    assert!(got == big, "large object differs after the round trip");
    let r = 8 * MIB as u64 - 100..16 * MIB as u64 + 100;
    assert_eq!(
        s.get_range("data/big/pack", r.clone()).await.unwrap(),
        big[r.start as usize..r.end as usize]
    );
    // Overwriting a large object with a small one.
    s.put("data/big/pack", Bytes::from_static(b"small"))
        .await
        .unwrap();
    assert_eq!(s.get("data/big/pack").await.unwrap(), "small");

    // Concurrent puts and gets.
    let puts = (0..16).map(|i| async move {
        s.put(
            &format!("data/c/{i:02}"),
            Bytes::from(pseudo_random(300_000, i)),
        )
        .await
    });
    futures::future::try_join_all(puts).await.unwrap();
    let gets = (0..16).map(|i| async move {
        let got = s.get(&format!("data/c/{i:02}")).await?;
        assert!(got == pseudo_random(300_000, i));
        Ok::<_, lifeboat_repo::storage::StorageError>(())
    });
    futures::future::try_join_all(gets).await.unwrap();
    assert_eq!(s.list("data/c/").await.unwrap().len(), 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_directory_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let backend = ObjectStoreBackend::local(dir.path(), false).unwrap();
    contract(&backend).await;
    // Nothing but the objects is left behind (no staging files).
    let mut stray = Vec::new();
    for entry in walk(dir.path()) {
        if entry.to_string_lossy().contains('#') {
            stray.push(entry);
        }
    }
    assert!(stray.is_empty(), "staging files left: {stray:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_urls_open_and_create() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let url = format!("file://{}", repo.display());
    let e = open_url(&url, &S3Settings::default()).unwrap_err();
    assert_eq!(e.kind, StorageErrorKind::NotFound);
    assert!(e.to_string().contains(&repo.display().to_string()), "{e}");
    let s = open_url_create(&url, &S3Settings::default()).unwrap();
    s.put("config", Bytes::from_static(b"c")).await.unwrap();
    let again = open_url(&repo.display().to_string(), &S3Settings::default()).unwrap();
    assert_eq!(again.get("config").await.unwrap(), "c");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_meets_the_contract() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let backend = s3_backend(&endpoint, "contract", "repos/one");
    assert!(backend.location().starts_with("s3://lifeboat-contract-"));
    contract(&backend).await;
    assert!(
        backend.multipart_uploads() >= 1,
        "the 20 MiB object should have gone as a multipart upload"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_prefixes_keep_repositories_apart_and_urls_work() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let bucket = unique_bucket("prefix");
    create_bucket(&endpoint, &bucket);
    let settings = s3_settings(&endpoint);
    let a = open_url(&format!("s3://{bucket}/team/a"), &settings).unwrap();
    let b = open_url(&format!("s3://{bucket}/team/ab/"), &settings).unwrap();
    let root = open_url(&format!("s3://{bucket}"), &settings).unwrap();
    assert_eq!(a.location(), format!("s3://{bucket}/team/a"));
    a.put("config", Bytes::from_static(b"a")).await.unwrap();
    b.put("config", Bytes::from_static(b"b")).await.unwrap();
    assert_eq!(keys(a.list("").await.unwrap()), ["config"]);
    assert_eq!(a.get("config").await.unwrap(), "a");
    assert_eq!(b.get("config").await.unwrap(), "b");
    assert_eq!(
        keys(root.list("").await.unwrap()),
        ["team/a/config", "team/ab/config"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_missing_bucket_is_a_permanent_error() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let s =
        ObjectStoreBackend::s3(&unique_bucket("missing"), "p", &s3_settings(&endpoint)).unwrap();
    let e = s.put("config", Bytes::from_static(b"x")).await.unwrap_err();
    assert_eq!(e.kind, StorageErrorKind::Permanent, "{e}");
    assert!(e.message.contains("bucket does not exist"), "{e}");
    assert!(!e.to_string().contains("lifeboat-test-secret"), "{e}");
    let e = s.list("").await.unwrap_err();
    assert_eq!(e.kind, StorageErrorKind::Permanent, "{e}");
}

fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 8,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(20),
    }
}

/// 200 operations through Retrying over Faulty (10 % transient failures):
/// all succeed with the right results, and failures were really injected.
async fn retrying_survives_transient_failures(inner: Arc<dyn Storage>) {
    let faulty = Arc::new(Faulty::new(inner, 2024).with_transient_failures(0.10));
    let s = Retrying::new(faulty.clone(), fast_policy());
    for i in 0..80u64 {
        let data = pseudo_random(1000 + i as usize * 37, i);
        s.put(&format!("data/{i:03}"), Bytes::from(data))
            .await
            .unwrap();
    }
    for i in 0..80u64 {
        let got = s.get(&format!("data/{i:03}")).await.unwrap();
        assert!(
            got == pseudo_random(1000 + i as usize * 37, i),
            "object {i}"
        );
    }
    for i in 0..20u64 {
        let info = s.head(&format!("data/{i:03}")).await.unwrap();
        assert_eq!(info.size, 1000 + i * 37);
    }
    for _ in 0..10 {
        assert_eq!(s.list("data/").await.unwrap().len(), 80);
    }
    for i in 0..10u64 {
        s.delete(&format!("data/{i:03}")).await.unwrap();
    }
    assert_eq!(s.list("data/").await.unwrap().len(), 70);
    let c = faulty.counts();
    assert!(
        faulty.injected_failures() >= 5,
        "expected injected failures, got {} in {} requests",
        faulty.injected_failures(),
        c.total()
    );
    assert_eq!(c.total(), 201 + faulty.injected_failures());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrying_over_faulty_local() {
    let dir = tempfile::tempdir().unwrap();
    let inner: Arc<dyn Storage> = Arc::new(ObjectStoreBackend::local(dir.path(), false).unwrap());
    retrying_survives_transient_failures(inner).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrying_over_faulty_s3() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let inner: Arc<dyn Storage> = Arc::new(s3_backend(&endpoint, "faulty", "r"));
    retrying_survives_transient_failures(inner).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_errors_fail_fast() {
    let dir = tempfile::tempdir().unwrap();
    let inner: Arc<dyn Storage> = Arc::new(ObjectStoreBackend::local(dir.path(), false).unwrap());
    let faulty = Arc::new(Faulty::counting(inner));
    let s = Retrying::new(faulty.clone(), RetryPolicy::default());
    faulty.set_fail_permanently(true);
    let started = std::time::Instant::now();
    let e = s.put("config", Bytes::from_static(b"x")).await.unwrap_err();
    assert_eq!(e.kind, StorageErrorKind::Permanent);
    assert_eq!(
        faulty.counts().get(Op::Put),
        1,
        "a permanent error must not be retried"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    faulty.set_fail_permanently(false);
    let e = s.get("missing").await.unwrap_err();
    assert!(e.is_not_found());
    assert_eq!(
        faulty.counts().get(Op::Get),
        1,
        "not found must not be retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_retried_then_reported() {
    // Nothing listens on port 1 of loopback: connection refused, transient.
    let settings = S3Settings {
        endpoint: Some("http://127.0.0.1:1".into()),
        ..s3_settings("http://127.0.0.1:1")
    };
    let inner: Arc<dyn Storage> =
        Arc::new(ObjectStoreBackend::s3("bucket", "", &settings).unwrap());
    let faulty = Arc::new(Faulty::counting(inner));
    let policy = RetryPolicy {
        max_attempts: 3,
        ..fast_policy()
    };
    let s = Retrying::new(faulty.clone(), policy);
    let e = s.get("config").await.unwrap_err();
    assert_eq!(e.kind, StorageErrorKind::Transient, "{e}");
    assert!(e.message.contains("gave up after 3 attempts"), "{e}");
    assert_eq!(faulty.counts().get(Op::Get), 3);
}
