//! Test support for driving the built `lifeboat` binary against real
//! repositories in temporary directories, and a `lifeboat serve` daemon
//! over raw HTTP.
#![allow(dead_code)]

pub mod app_role;
pub mod archive;
pub mod cnpg;
pub mod endpoint;
pub mod gateways;
pub mod managed_fence;
pub mod pg;
pub mod standby;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "correct horse battery staple";

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lifeboat"))
}

/// A temp dir with a repository path inside it.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub repo: String,
    pub envs: Vec<(String, String)>,
}

impl Env {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo").display().to_string();
        Env {
            dir,
            repo,
            envs: vec![("LIFEBOAT_PASSWORD".into(), PASSWORD.into())],
        }
    }

    /// A fresh environment with an initialised local repository.
    pub fn init() -> Self {
        let e = Self::new();
        e.ok(&["init"]);
        e
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("--repo").arg(&self.repo);
        c.args(args);
        c.env_remove("LIFEBOAT_PASSWORD")
            .env_remove("LIFEBOAT_REPO")
            .env_remove("LIFEBOAT_CONFIG")
            .env_remove("LIFEBOAT_KEY_FILE")
            .env_remove("LIFEBOAT_PASSWORD_FILE");
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        c.current_dir(self.dir.path());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args)
            .stdin(Stdio::null())
            .output()
            .expect("run lifeboat")
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "lifeboat {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs and asserts success; returns stdout read as JSON (for `--json`).
    pub fn ok_json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
    }

    /// Runs expecting a specific exit code; returns stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let o = self.run(args);
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(
            o.status.code(),
            Some(code),
            "lifeboat {args:?}: expected exit {code}\nstdout: {}\nstderr: {stderr}",
            String::from_utf8_lossy(&o.stdout)
        );
        stderr
    }

    /// Runs expecting exit `code`; returns (stdout, stderr).
    pub fn exits_with(&self, args: &[&str], code: i32) -> (String, String) {
        let o = self.run(args);
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(
            o.status.code(),
            Some(code),
            "{args:?}\nstdout: {stdout}\nstderr: {stderr}"
        );
        (stdout, stderr)
    }

    /// `backup stream --name NAME` fed from a file; returns the snapshot JSON.
    pub fn backup_file(&self, name: &str, input: &Path) -> serde_json::Value {
        let f = std::fs::File::open(input).expect("open input");
        let o = self
            .cmd(&["--json", "backup", "stream", "--name", name])
            .stdin(f)
            .output()
            .expect("run backup");
        assert!(
            o.status.success(),
            "backup failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).expect("backup json")
    }

    pub fn backup_bytes(&self, name: &str, data: &[u8]) -> serde_json::Value {
        let p = self.path(&format!("in-{}", rand_suffix()));
        std::fs::write(&p, data).unwrap();
        let v = self.backup_file(name, &p);
        std::fs::remove_file(&p).unwrap();
        v
    }

    /// Spawns a backup reading from `input`, for kill and concurrency tests.
    pub fn spawn_backup(&self, name: &str, input: &Path) -> Child {
        let f = std::fs::File::open(input).expect("open input");
        self.cmd(&["--json", "backup", "stream", "--name", name])
            .stdin(f)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn backup")
    }

    /// Restores `snapshot` to a file; returns (exit code, file path).
    pub fn restore_to_file(&self, snapshot: &str) -> (Option<i32>, PathBuf, String) {
        let out = self.path(&format!("restored-{}", rand_suffix()));
        let o = self
            .cmd(&[
                "restore",
                "stream",
                snapshot,
                "--output",
                out.to_str().unwrap(),
            ])
            .output()
            .expect("run restore");
        (
            o.status.code(),
            out,
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    pub fn snapshots(&self) -> Vec<serde_json::Value> {
        let s = self.ok(&["--json", "snapshots"]);
        serde_json::from_str::<Vec<serde_json::Value>>(&s).expect("snapshots json")
    }

    /// Total bytes of every file in the repository.
    pub fn repo_size(&self) -> u64 {
        walk(Path::new(&self.repo))
            .iter()
            .map(|p| p.metadata().unwrap().len())
            .sum()
    }

    pub fn repo_files(&self) -> Vec<PathBuf> {
        walk(Path::new(&self.repo))
    }
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

pub fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Deterministic fast PRNG (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

const WORDS: &[&str] = &[
    "remediation",
    "alert",
    "kubernaut-system",
    "pod",
    "restart",
    "OOMKilled",
    "namespace",
    "workflow",
    "audit",
    "event",
    "\"severity\": \"critical\"",
    "{\"cluster\": \"prod-eu-1\"}",
    "2026-11-25T13:14:15Z",
    "data-storage",
    "context-api",
    "signal",
    "\t",
    "\n",
    "0.8213",
    "-1.5e-3",
];

/// Writes `size` bytes of mixed data: runs of text-like rows (compressible)
/// alternating with runs of random bytes (incompressible), deterministically.
pub fn write_mixed(path: &Path, size: u64, seed: u64) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    let mut rng = Rng::new(seed);
    let mut written = 0u64;
    let mut buf = vec![0u8; 2 << 20];
    while written < size {
        let run = (64 * 1024 + rng.below(1 << 20)).min(size - written) as usize;
        if rng.below(3) == 0 {
            rng.fill(&mut buf[..run]);
        } else {
            let mut n = 0;
            while n < run {
                let w = WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes();
                let k = w.len().min(run - n);
                buf[n..n + k].copy_from_slice(&w[..k]);
                n += k;
                if n < run {
                    buf[n] = b' ';
                    n += 1;
                }
                if n + 16 < run && rng.below(8) == 0 {
                    let num = format!("{}", rng.next());
                    let k = num.len().min(run - n);
                    buf[n..n + k].copy_from_slice(&num.as_bytes()[..k]);
                    n += k;
                }
            }
        }
        w.write_all(&buf[..run]).unwrap();
        written += run as u64;
    }
    w.flush().unwrap();
}

/// BLAKE3 of a file, streaming.
pub fn hash_file(path: &Path) -> String {
    let mut h = blake3::Hasher::new();
    let mut f = std::fs::File::open(path).unwrap();
    std::io::copy(&mut f, &mut h).unwrap();
    h.finalize().to_hex().to_string()
}

/// Copies `src` to `dst`, then changes about `fraction` of its bytes in
/// `regions` scattered places. Returns the number of bytes changed.
pub fn mutate_copy(src: &Path, dst: &Path, fraction: f64, regions: u64, seed: u64) -> u64 {
    std::fs::copy(src, dst).unwrap();
    let size = dst.metadata().unwrap().len();
    let total = (size as f64 * fraction) as u64;
    let per = (total / regions).max(1);
    let mut rng = Rng::new(seed);
    let f = std::fs::OpenOptions::new().write(true).open(dst).unwrap();
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; per as usize];
    let mut changed = 0;
    for i in 0..regions {
        // Spread regions evenly with jitter so they are truly scattered.
        let slot = size / regions;
        let off = i * slot + rng.below(slot.saturating_sub(per).max(1));
        rng.fill(&mut buf);
        f.write_all_at(&buf, off).unwrap();
        changed += per;
    }
    changed
}

/// One shared large input per test binary (generating 1 GiB takes seconds).
pub fn shared_input(size: u64, seed: u64) -> PathBuf {
    use std::sync::Mutex;
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap();
    // Kept between runs (under target/) so the suite does not regenerate it.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("inputs");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(format!("mixed-{size}-{seed}"));
    if !p.exists() {
        let tmp = dir.join(format!("mixed-{size}-{seed}.tmp"));
        write_mixed(&tmp, size, seed);
        std::fs::rename(&tmp, &p).unwrap();
    }
    p
}

/// A multi-thread runtime for the async parts of a test.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A throwaway PostgreSQL cluster with the tiny Kubernaut fixture in database
/// `src`, and a repository environment whose commands get the cluster's
/// password in PGPASSWORD.
pub fn setup(rt: &tokio::runtime::Runtime) -> (lifeboat_postgres::TempCluster, Env) {
    use lifeboat_postgres::fixture::{self, FixtureSpec};
    let cluster = lifeboat_postgres::TempCluster::start().expect("start PostgreSQL");
    let cfg = rt.block_on(cluster.create_database("src")).unwrap();
    rt.block_on(fixture::generate(&cfg, &FixtureSpec::tiny()))
        .expect("fixture");
    let mut env = Env::init();
    env.envs
        .push(("PGPASSWORD".into(), cluster.password().expose().to_string()));
    (cluster, env)
}

/// The daemon's API token, as `write_token` stores it.
pub const TOKEN: &str = "0123456789abcdef0123456789abcdef";

/// Writes `TOKEN` (with a trailing newline) to the 0600 file `api-token`
/// in the environment's directory; returns its path, for `serve.token`.
/// Grows the fixture's `incident_embeddings` until it holds at least half of
/// the bytes of `public`'s tables, as in Kubernaut's real database, so that
/// a `--jobs 2` restore spreads its rows (split_restore).
pub fn make_embeddings_dominate(
    rt: &tokio::runtime::Runtime,
    db: &lifeboat_postgres::conn::ConnConfig,
) {
    rt.block_on(async {
        let c = db.connect().await.unwrap();
        for _ in 0..8 {
            let share: f64 = c
                .query_one(
                    "SELECT pg_table_size('incident_embeddings')::float8 / sum(pg_table_size(c.oid))::float8
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE c.relkind = 'r' AND n.nspname = 'public'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if share >= 0.5 {
                return;
            }
            c.batch_execute(
                "INSERT INTO incident_embeddings (incident_id, created_at, model, embedding, metadata)
                 SELECT incident_id || '-again', created_at, model, embedding, metadata FROM incident_embeddings",
            )
            .await
            .unwrap();
        }
        panic!("the embeddings do not dominate the fixture");
    });
}

pub fn write_token(env: &Env) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let token = env.path("api-token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    token
}

/// A loopback port (TCP and UDP) free now that no other test process is
/// handed while this one lives: for a server started on it later, or as a
/// port nobody listens on.
pub use lifeboat_test_ports::reserve as free_port;

/// Polls `f` until it returns Some, or panics after `timeout` with `what`.
pub fn poll<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running `lifeboat --config CONFIG serve` on a free local port, its log
/// (stderr) and standard output kept in files of the environment's
/// directory; killed on drop.
pub struct Daemon {
    child: Option<Child>,
    pub port: u16,
    pub log: PathBuf,
    /// Its standard output (the log is on stderr).
    pub out: PathBuf,
}

impl Daemon {
    /// Starts the daemon and waits (60 s at most) until /healthz answers
    /// 200. `tag` names its files: `serve-TAG.log`, `serve-TAG.out`.
    pub fn start(env: &Env, config: &Path, tag: &str) -> Daemon {
        Daemon::start_on(env, config, tag, free_port(), &[])
    }

    /// [`Daemon::start`] on a given port, with more arguments after
    /// `serve` (e.g. `--region eu-west`).
    pub fn start_on(env: &Env, config: &Path, tag: &str, port: u16, extra: &[&str]) -> Daemon {
        let log = env.path(&format!("serve-{tag}.log"));
        let out = env.path(&format!("serve-{tag}.out"));
        let listen = format!("127.0.0.1:{port}");
        let mut argv = vec![
            "--config",
            config.to_str().unwrap(),
            "serve",
            "--listen",
            &listen,
        ];
        argv.extend_from_slice(extra);
        let child = env
            .cmd(&argv)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn lifeboat serve");
        let d = Daemon {
            child: Some(child),
            port,
            log,
            out,
        };
        d.poll(Duration::from_secs(60), "the daemon's /healthz", || {
            d.try_get("/healthz", None).filter(|r| r.0 == 200)
        });
        d
    }

    /// `start`, then `wait_active`.
    pub fn start_active(env: &Env, config: &Path, tag: &str) -> Daemon {
        let d = Daemon::start(env, config, tag);
        d.wait_active();
        d
    }

    /// Waits (60 s at most) until the daemon is active: /readyz answers 200,
    /// which needs it to hold the repository's lease.
    pub fn wait_active(&self) {
        self.poll(Duration::from_secs(60), "the daemon to be active", || {
            self.try_get("/readyz", None).filter(|r| r.0 == 200)
        });
    }

    /// `poll`, with the daemon's log in the panic.
    pub fn poll<T>(&self, timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// One HTTP/1.1 request, with `token` as the bearer token if given:
    /// (status, head in lower case, body with any chunked encoding undone),
    /// or None when the daemon does not answer.
    pub fn exchange(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
    ) -> Option<(u16, String, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
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
        let code: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
        let head = head.to_ascii_lowercase();
        let body = if head.contains("transfer-encoding: chunked") {
            dechunk(body)
        } else {
            body.to_string()
        };
        Some((code, head, body))
    }

    /// `exchange` without the head: (status, body).
    pub fn request(&self, method: &str, path: &str, token: Option<&str>) -> Option<(u16, String)> {
        self.exchange(method, path, token)
            .map(|(code, _, body)| (code, body))
    }

    pub fn try_get(&self, path: &str, token: Option<&str>) -> Option<(u16, String)> {
        self.request("GET", path, token)
    }

    /// The value of `series` (name with labels, exactly as exported) in
    /// the daemon's `/metrics`; `None` while it does not answer 200.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (code, text) = self.try_get("/metrics", None)?;
        (code == 200).then(|| sample(&text, series))?
    }

    /// GET; panics with the daemon's log when it does not answer.
    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        self.try_get(path, token)
            .unwrap_or_else(|| panic!("GET {path} failed; log:\n{}", self.log_text()))
    }

    /// POST; panics with the daemon's log when it does not answer.
    pub fn post(&self, path: &str, token: Option<&str>) -> (u16, String) {
        self.request("POST", path, token)
            .unwrap_or_else(|| panic!("POST {path} failed; log:\n{}", self.log_text()))
    }

    /// /readyz: (status, its JSON body).
    pub fn role(&self) -> (u16, serde_json::Value) {
        let (code, body) = self.get("/readyz", None);
        (code, serde_json::from_str(&body).expect("readyz json"))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// JSON log lines.
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        self.log_text()
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"))
            })
            .collect()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }

    /// Waits for the exit; returns the exit code. Kills the daemon and
    /// panics with its log after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the daemon did not exit within {timeout:?}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, as Kubernetes stops a pod (the daemon releases its lease);
    /// waits up to 60 s for the exit and returns its code.
    pub fn stop(mut self) -> Option<i32> {
        self.signal(libc::SIGTERM);
        self.wait(Duration::from_secs(60))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Undoes HTTP/1.1 chunked transfer encoding.
pub fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// The value of `series` (name with labels, exactly) in a Prometheus scrape.
pub fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|l| {
        let (s, v) = l.rsplit_once(' ')?;
        (s == series).then(|| v.parse().ok())?
    })
}
