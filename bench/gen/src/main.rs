//! `dumpgen`: a fast, deterministic generator of data that looks like an
//! uncompressed PostgreSQL dump of a Kubernaut database, for Lifeboat's
//! benchmarks.
//!
//! The stream is a pg_dump-style preamble followed by sections of 2–16 MiB,
//! chosen by byte weight:
//!
//! | section                        | share | what a row holds                                   |
//! |--------------------------------|-------|----------------------------------------------------|
//! | `audit_events_YYYY_MM` COPY    | ~50 % | uuids, timestamps, ~1 KB `event_data` JSON, a      |
//! |                                |       | metadata JSON, a sha256 hash chain (hex)           |
//! | `incident_embeddings` COPY     | ~40 % | `real[]` of 1536 floats as text `{0.01234567,…}`   |
//! | `incident_attachments` COPY    | ~5 %  | `bytea` in hex (`\\x…`) of random bytes            |
//! | large objects                  | ~5 %  | raw random bytes (incompressible)                  |
//!
//! The same `--seed` always gives the same bytes, and a shorter `--size` is
//! a prefix of a longer one. `--mutate` gives the same stream with a fraction
//! of its bytes (default 1 %) replaced in many scattered, equal-length
//! regions (default 1,000) by other generated rows, without changing the
//! stream's length: what a mostly unchanged database looks like in the next
//! hourly dump, for dedup measurements.
//!
//! No dependencies; single-threaded; well above 500 MB/s on one core.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str = "\
usage: dumpgen [--size SIZE] [--seed N] [--output FILE]
               [--mutate] [--mutate-fraction F] [--mutate-regions N] [--mutate-seed N]
               [--stats]

  --size SIZE           bytes to write; suffixes K, M, G (binary: KiB, MiB, GiB)
                        [default 1G]
  --seed N              seed of the base data [default 1]
  --output FILE         write here instead of standard output
  --mutate              replace a fraction of the bytes in scattered regions
  --mutate-fraction F   fraction of bytes in mutated regions [default 0.01]
  --mutate-regions N    number of mutated regions [default 1000]
  --mutate-seed N       seed of the replacement content and region placement
                        [default 2]
  --stats               print bytes, time, MB/s (and bytes changed) to stderr
";

// ---------------------------------------------------------------- PRNG

/// xoshiro256++, seeded through splitmix64.
struct Rng {
    s: [u64; 4],
}

fn splitmix64(z: &mut u64) -> u64 {
    *z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut x = *z;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Rng {
    fn new(seed: u64) -> Self {
        let mut z = seed;
        let mut s = [0u64; 4];
        for x in &mut s {
            *x = splitmix64(&mut z);
        }
        Rng { s }
    }

    #[inline(always)]
    fn next(&mut self) -> u64 {
        let s = &mut self.s;
        let r = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        r
    }

    /// Uniform in `0..n` (n < 2^32; multiply-shift, bias irrelevant here).
    #[inline(always)]
    fn below(&mut self, n: u64) -> u64 {
        ((self.next() >> 32) * n) >> 32
    }

    #[inline(always)]
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    #[inline(always)]
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }

    #[inline(always)]
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

// ---------------------------------------------------------------- formatting

const HEX: &[u8; 16] = b"0123456789abcdef";

const fn digit_pairs() -> [u8; 200] {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
}
static PAIRS: [u8; 200] = digit_pairs();

#[inline(always)]
fn pair(n: u64) -> [u8; 2] {
    let i = (n as usize) * 2;
    [PAIRS[i], PAIRS[i + 1]]
}

fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

fn push_2(buf: &mut Vec<u8>, n: u64) {
    buf.extend_from_slice(&pair(n % 100));
}

const fn hex_pairs() -> [u8; 512] {
    let mut t = [0u8; 512];
    let mut i = 0;
    while i < 256 {
        t[2 * i] = HEX[i >> 4];
        t[2 * i + 1] = HEX[i & 15];
        i += 1;
    }
    t
}
static HEX_PAIRS: [u8; 512] = hex_pairs();

/// `nbytes` random bytes as lowercase hex.
fn push_hex(buf: &mut Vec<u8>, rng: &mut Rng, nbytes: usize) {
    let start = buf.len();
    // Room for whole 8-byte groups; truncated to the exact length below.
    buf.resize(start + nbytes.div_ceil(8) * 16, 0);
    for out in buf[start..].chunks_exact_mut(16) {
        let r = rng.next().to_le_bytes();
        for (k, b) in r.iter().enumerate() {
            let j = *b as usize * 2;
            out[2 * k] = HEX_PAIRS[j];
            out[2 * k + 1] = HEX_PAIRS[j + 1];
        }
    }
    buf.truncate(start + nbytes * 2);
}

fn push_uuid(buf: &mut Vec<u8>, rng: &mut Rng) {
    let a = rng.next();
    let b = rng.next();
    let mut s = [0u8; 36];
    let nib = |k: usize| -> u8 {
        let v = if k < 16 { a >> (4 * k) } else { b >> (4 * (k - 16)) };
        HEX[(v & 15) as usize]
    };
    let mut k = 0;
    for (i, c) in s.iter_mut().enumerate() {
        *c = match i {
            8 | 13 | 18 | 23 => b'-',
            14 => b'4',
            _ => {
                k += 1;
                nib(k - 1)
            }
        };
    }
    buf.extend_from_slice(&s);
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u64, u64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u64;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u64;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn push_date(buf: &mut Vec<u8>, micros: i64) {
    let (y, m, d) = civil_from_days(micros.div_euclid(86_400_000_000));
    push_u64(buf, y as u64);
    buf.push(b'-');
    push_2(buf, m);
    buf.push(b'-');
    push_2(buf, d);
}

/// `YYYY-MM-DD HH:MM:SS.ffffff+00`, as PostgreSQL prints a timestamptz in UTC.
fn push_ts(buf: &mut Vec<u8>, micros: i64) {
    push_date(buf, micros);
    let us = micros.rem_euclid(86_400_000_000) as u64;
    let secs = us / 1_000_000;
    buf.push(b' ');
    push_2(buf, secs / 3600);
    buf.push(b':');
    push_2(buf, secs / 60 % 60);
    buf.push(b':');
    push_2(buf, secs % 60);
    buf.push(b'.');
    let frac = us % 1_000_000;
    push_2(buf, frac / 10_000);
    push_2(buf, frac / 100 % 100);
    push_2(buf, frac % 100);
    buf.extend_from_slice(b"+00");
}

/// A `real[]` of `n` floats as PostgreSQL prints it (shortest round-trip
/// form): `{0.012345678,-0.0034567891,…}`, values like a normalised
/// 1536-dimension embedding.
fn push_float_array(buf: &mut Vec<u8>, rng: &mut Rng, n: usize) {
    let start = buf.len();
    buf.resize(start + n * 14 + 2, 0);
    let out = &mut buf[start..];
    out[0] = b'{';
    let mut i = 1;
    for k in 0..n {
        // Unconditional writes, conditional advances: no branches per float.
        out[i] = b',';
        i += (k > 0) as usize;
        let r = rng.next();
        out[i] = b'-';
        i += (r & 1) as usize;
        // Magnitude class: mostly 0.0xxxxxxxx, some 0.00xxxxxxxx, some 0.1xxxxxxx;
        // class 7 prints one digit less (shortest output drops trailing zeros).
        let class = ((r >> 1) & 7) as usize;
        const PREFIX: [(&[u8; 4], usize); 8] = [
            (b"0.0?", 3),
            (b"0.0?", 3),
            (b"0.0?", 3),
            (b"0.0?", 3),
            (b"0.0?", 3),
            (b"0.00", 4),
            (b"0.1?", 3),
            (b"0.0?", 3),
        ];
        let (p, plen) = PREFIX[class];
        out[i..i + 4].copy_from_slice(p);
        i += plen;
        // 8 significant digits (the first non-zero) from 4 x 12 random bits.
        let first = 10 + (((r >> 4) & 0xfff) * 90 >> 12);
        let mut digits = [0u8; 8];
        digits[0..2].copy_from_slice(&pair(first));
        digits[2..4].copy_from_slice(&pair(((r >> 16) & 0xfff) * 100 >> 12));
        digits[4..6].copy_from_slice(&pair(((r >> 28) & 0xfff) * 100 >> 12));
        digits[6..8].copy_from_slice(&pair(((r >> 40) & 0xfff) * 100 >> 12));
        out[i..i + 8].copy_from_slice(&digits);
        i += 8 - (class == 7) as usize;
    }
    out[i] = b'}';
    i += 1;
    buf.truncate(start + i);
}

fn push_random(buf: &mut Vec<u8>, rng: &mut Rng, n: usize) {
    let start = buf.len();
    buf.resize(start + n, 0);
    let out = &mut buf[start..];
    let mut chunks = out.chunks_exact_mut(8);
    for c in &mut chunks {
        c.copy_from_slice(&rng.next().to_le_bytes());
    }
    let rest = chunks.into_remainder();
    let r = rng.next().to_le_bytes();
    let len = rest.len();
    rest.copy_from_slice(&r[..len]);
}

// ---------------------------------------------------------------- vocabularies

const EVENT_TYPES: &[&str] = &[
    "gateway.signal.received",
    "gateway.signal.deduplicated",
    "remediationorchestrator.lifecycle.started",
    "remediationorchestrator.lifecycle.completed",
    "signalprocessing.enrichment.completed",
    "aianalysis.analysis.completed",
    "aianalysis.approval.requested",
    "workflowexecution.workflow.started",
    "workflowexecution.step.completed",
    "workflowexecution.workflow.completed",
    "notification.message.sent",
    "effectivenessmonitor.assessment.completed",
    "datastorage.workflow.searched",
];
const CATEGORIES: &[&str] = &[
    "gateway",
    "orchestration",
    "signalprocessing",
    "analysis",
    "workflow",
    "notification",
    "effectiveness",
];
const ACTOR_TYPES: &[&str] = &["service", "service", "service", "user", "system"];
const ACTORS: &[&str] = &[
    "gateway",
    "remediation-orchestrator",
    "signalprocessing-controller",
    "aianalysis-controller",
    "workflowexecution-controller",
    "holmesgpt-api",
    "notification-controller",
    "effectiveness-monitor",
    "data-storage",
];
const RESOURCE_TYPES: &[&str] = &[
    "RemediationRequest",
    "SignalProcessing",
    "AIAnalysis",
    "WorkflowExecution",
    "NotificationRequest",
];
const NAMESPACES: &[&str] = &[
    "production",
    "payments",
    "checkout",
    "search",
    "kubernaut-system",
    "monitoring",
    "staging",
    "default",
    "data-platform",
    "identity",
];
const CLUSTERS: &[&str] = &["prod-eu-west-1", "prod-us-east-1", "prod-ap-south-1", "staging-eu-west-1"];
const ALERTS: &[&str] = &[
    "KubePodCrashLooping",
    "KubePodNotReady",
    "HighMemoryUsage",
    "NodeNotReady",
    "PodOOMKilled",
    "KubeDeploymentReplicasMismatch",
    "CPUThrottlingHigh",
    "KubePersistentVolumeFillingUp",
    "ContainerRestartingFrequently",
    "HTTPErrorRateHigh",
    "PostgresReplicationLagHigh",
];
const SEVERITIES: &[&str] = &["critical", "warning", "warning", "info"];
const PHASES: &[&str] = &["Pending", "Analyzing", "AwaitingApproval", "Executing", "Completed", "Failed"];
const STEP_NAMES: &[&str] = &[
    "collect-diagnostics",
    "scale-down",
    "restart-pod",
    "rollback-deployment",
    "increase-memory-limit",
    "cordon-node",
    "drain-node",
    "verify-health",
    "notify-oncall",
    "expand-pvc",
];
const STEP_STATUS: &[&str] = &["Succeeded", "Succeeded", "Succeeded", "Failed", "Skipped"];
const MODELS: &[&str] = &["claude-sonnet-4", "gpt-4o-2024-08-06", "llama-3.1-70b-instruct"];
const WORDS: &[&str] = &[
    "the", "pod", "container", "memory", "limit", "was", "exceeded", "after", "deployment", "rollout",
    "of", "version", "caused", "restart", "loop", "node", "pressure", "eviction", "due", "to",
    "leak", "in", "connection", "pool", "database", "latency", "increased", "replica", "lag", "queue",
    "backlog", "garbage", "collection", "pauses", "upstream", "timeout", "retry", "storm", "certificate",
    "expired", "config", "map", "change", "rolled", "back", "cpu", "throttling", "readiness", "probe",
    "failed", "liveness", "disk", "volume", "filling", "up", "log", "rotation", "misconfigured",
    "recommend", "increasing", "and", "scaling", "horizontally", "within", "minutes",
];

fn push_words(buf: &mut Vec<u8>, rng: &mut Rng, n: u64) {
    for i in 0..n {
        if i > 0 {
            buf.push(b' ');
        }
        buf.extend_from_slice(rng.pick(WORDS).as_bytes());
    }
}

fn push_pod_name(buf: &mut Vec<u8>, rng: &mut Rng) {
    buf.extend_from_slice(rng.pick(&["checkout", "api", "worker", "web", "ledger", "search-indexer"]).as_bytes());
    buf.push(b'-');
    push_hex(buf, rng, 5);
    buf.push(b'-');
    push_hex(buf, rng, 3);
}

// ---------------------------------------------------------------- the dump

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Audit,
    Embeddings,
    Attachments,
    LargeObjects,
}

const AUDIT_COLUMNS: &str = "event_id, event_timestamp, event_date, event_type, event_category, actor_type, actor_id, resource_type, resource_id, correlation_id, parent_event_id, namespace, cluster_id, event_data, event_metadata, retention_days, event_hash, previous_event_hash, legal_hold";

const PREAMBLE: &str = "--
-- PostgreSQL database dump
--

-- Dumped from database version 16.4 (Debian 16.4-1.pgdg120+1)
-- Dumped by pg_dump version 16.4 (Debian 16.4-1.pgdg120+1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

";

struct Gen {
    rng: Rng,
    now_us: i64,
    prev_hash: [u8; 64],
    kind: Kind,
    /// Bytes left in the current section; 0 = open a new one.
    left: usize,
    lo_oid: u64,
}

impl Gen {
    fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let mut prev_hash = [0u8; 64];
        for b in &mut prev_hash {
            *b = HEX[rng.below(16) as usize];
        }
        Gen {
            rng,
            // 2024-01-01T00:00:00Z
            now_us: 1_704_067_200_000_000,
            prev_hash,
            kind: Kind::Audit,
            left: 0,
            lo_oid: 16_384,
        }
    }

    /// Appends the next piece of the dump (a row, or a section boundary).
    fn step(&mut self, buf: &mut Vec<u8>) {
        if self.left == 0 {
            self.open_section(buf);
            return;
        }
        let before = buf.len();
        match self.kind {
            Kind::Audit => self.audit_row(buf),
            Kind::Embeddings => self.embedding_row(buf),
            Kind::Attachments => self.attachment_row(buf),
            Kind::LargeObjects => self.large_object(buf),
        }
        let n = buf.len() - before;
        if n >= self.left {
            self.left = 0;
            if self.kind != Kind::LargeObjects {
                buf.extend_from_slice(b"\\.\n\n\n");
            }
        } else {
            self.left -= n;
        }
    }

    fn open_section(&mut self, buf: &mut Vec<u8>) {
        let w = self.rng.below(100);
        self.kind = match w {
            0..=49 => Kind::Audit,
            50..=89 => Kind::Embeddings,
            90..=94 => Kind::Attachments,
            _ => Kind::LargeObjects,
        };
        self.left = match self.kind {
            Kind::LargeObjects => self.rng.range(1 << 20, 4 << 20),
            _ => self.rng.range(2 << 20, 16 << 20),
        } as usize;
        let table: Vec<u8> = match self.kind {
            Kind::Audit => {
                let mut t = b"audit_events_".to_vec();
                let (y, m, _) = civil_from_days(self.now_us.div_euclid(86_400_000_000));
                push_u64(&mut t, y as u64);
                t.push(b'_');
                push_2(&mut t, m);
                t
            }
            Kind::Embeddings => b"incident_embeddings".to_vec(),
            Kind::Attachments => b"incident_attachments".to_vec(),
            Kind::LargeObjects => {
                buf.extend_from_slice(b"--\n-- Data for Name: BLOBS; Type: BLOBS; Schema: -; Owner: -\n--\n\n");
                return;
            }
        };
        buf.extend_from_slice(b"--\n-- Data for Name: ");
        buf.extend_from_slice(&table);
        buf.extend_from_slice(b"; Type: TABLE DATA; Schema: public; Owner: kubernaut\n--\n\nCOPY public.");
        buf.extend_from_slice(&table);
        buf.extend_from_slice(b" (");
        buf.extend_from_slice(match self.kind {
            Kind::Audit => AUDIT_COLUMNS.as_bytes(),
            Kind::Embeddings => b"id, incident_id, model, created_at, embedding",
            _ => b"id, incident_id, filename, content_type, created_at, data",
        });
        buf.extend_from_slice(b") FROM stdin;\n");
    }

    fn audit_row(&mut self, buf: &mut Vec<u8>) {
        let r = &mut self.rng;
        self.now_us += r.below(14_400_000) as i64; // ~12,000 events a day
        let now = self.now_us;
        push_uuid(buf, r);
        buf.push(b'\t');
        push_ts(buf, now);
        buf.push(b'\t');
        push_date(buf, now);
        buf.push(b'\t');
        let et = r.below(EVENT_TYPES.len() as u64) as usize;
        buf.extend_from_slice(EVENT_TYPES[et].as_bytes());
        buf.push(b'\t');
        buf.extend_from_slice(CATEGORIES[et % CATEGORIES.len()].as_bytes());
        buf.push(b'\t');
        buf.extend_from_slice(r.pick(ACTOR_TYPES).as_bytes());
        buf.push(b'\t');
        buf.extend_from_slice(r.pick(ACTORS).as_bytes());
        buf.push(b'\t');
        buf.extend_from_slice(r.pick(RESOURCE_TYPES).as_bytes());
        buf.push(b'\t');
        buf.extend_from_slice(b"rr-");
        push_hex(buf, r, 6);
        buf.push(b'\t');
        push_uuid(buf, r);
        buf.push(b'\t');
        if r.chance(300) {
            buf.extend_from_slice(b"\\N");
        } else {
            push_uuid(buf, r);
        }
        buf.push(b'\t');
        let ns = r.pick(NAMESPACES);
        buf.extend_from_slice(ns.as_bytes());
        buf.push(b'\t');
        buf.extend_from_slice(r.pick(CLUSTERS).as_bytes());
        buf.push(b'\t');
        self.event_data(buf, ns, now);
        let r = &mut self.rng;
        buf.push(b'\t');
        buf.extend_from_slice(b"{\"span_id\": \"");
        push_hex(buf, r, 8);
        buf.extend_from_slice(b"\", \"trace_id\": \"");
        push_hex(buf, r, 16);
        buf.extend_from_slice(b"\", \"hostname\": \"data-storage-");
        push_hex(buf, r, 4);
        buf.extend_from_slice(b"\", \"schema_version\": \"1.");
        push_u64(buf, r.below(4));
        buf.extend_from_slice(b"\"}\t2555\t");
        let mut hash = [0u8; 64];
        for b in &mut hash {
            *b = HEX[r.below(16) as usize];
        }
        buf.extend_from_slice(&hash);
        buf.push(b'\t');
        buf.extend_from_slice(&self.prev_hash);
        self.prev_hash = hash;
        buf.extend_from_slice(if self.rng.chance(20) { b"\tt\n" } else { b"\tf\n" });
    }

    /// `event_data` jsonb, ~0.6–1.4 KB (jsonb output: `"key": value`, keys sorted by length).
    fn event_data(&mut self, buf: &mut Vec<u8>, ns: &str, now: i64) {
        let r = &mut self.rng;
        buf.extend_from_slice(b"{\"signal\": {\"name\": \"");
        buf.extend_from_slice(r.pick(ALERTS).as_bytes());
        buf.extend_from_slice(b"\", \"labels\": {\"pod\": \"");
        push_pod_name(buf, r);
        buf.extend_from_slice(b"\", \"team\": \"team-");
        push_u64(buf, r.below(40));
        buf.extend_from_slice(b"\", \"namespace\": \"");
        buf.extend_from_slice(ns.as_bytes());
        buf.extend_from_slice(b"\", \"container\": \"app\"}, \"source\": \"prometheus\", \"severity\": \"");
        buf.extend_from_slice(r.pick(SEVERITIES).as_bytes());
        buf.extend_from_slice(b"\", \"fingerprint\": \"");
        push_hex(buf, r, 8);
        buf.extend_from_slice(b"\"}, \"analysis\": {\"model\": \"");
        buf.extend_from_slice(r.pick(MODELS).as_bytes());
        buf.extend_from_slice(b"\", \"tokens_in\": ");
        push_u64(buf, r.range(800, 12_000));
        buf.extend_from_slice(b", \"confidence\": 0.");
        push_u64(buf, r.range(100, 999));
        buf.extend_from_slice(b", \"root_cause\": \"");
        let n = r.range(15, 60);
        push_words(buf, r, n);
        buf.extend_from_slice(b"\", \"tokens_out\": ");
        push_u64(buf, r.range(50, 2000));
        buf.extend_from_slice(b", \"recommendations\": [");
        for i in 0..r.range(1, 4) {
            if i > 0 {
                buf.extend_from_slice(b", ");
            }
            buf.push(b'"');
            let n = r.range(5, 14);
            push_words(buf, r, n);
            buf.push(b'"');
        }
        buf.extend_from_slice(b"]}, \"remediation\": {\"id\": \"rr-");
        push_hex(buf, r, 6);
        buf.extend_from_slice(b"\", \"phase\": \"");
        buf.extend_from_slice(r.pick(PHASES).as_bytes());
        buf.extend_from_slice(b"\", \"steps\": [");
        for i in 0..r.range(1, 6) {
            if i > 0 {
                buf.extend_from_slice(b", ");
            }
            buf.extend_from_slice(b"{\"name\": \"");
            buf.extend_from_slice(r.pick(STEP_NAMES).as_bytes());
            buf.extend_from_slice(b"\", \"status\": \"");
            buf.extend_from_slice(r.pick(STEP_STATUS).as_bytes());
            buf.extend_from_slice(b"\", \"duration_ms\": ");
            push_u64(buf, r.range(5, 120_000));
            buf.push(b'}');
        }
        buf.extend_from_slice(b"], \"attempt\": ");
        push_u64(buf, r.range(1, 3));
        buf.extend_from_slice(b", \"workflow_id\": \"wf-");
        buf.extend_from_slice(r.pick(STEP_NAMES).as_bytes());
        buf.extend_from_slice(b"-v");
        push_u64(buf, r.range(1, 9));
        buf.extend_from_slice(b"\"}, \"timestamps\": {\"decided\": \"");
        push_ts(buf, now + r.below(60_000_000) as i64);
        buf.extend_from_slice(b"\", \"received\": \"");
        push_ts(buf, now - r.below(5_000_000) as i64);
        buf.extend_from_slice(b"\"}}");
    }

    fn embedding_row(&mut self, buf: &mut Vec<u8>) {
        let r = &mut self.rng;
        self.now_us += r.below(60_000_000) as i64;
        push_uuid(buf, r);
        buf.push(b'\t');
        push_uuid(buf, r);
        buf.extend_from_slice(b"\ttext-embedding-3-small\t");
        push_ts(buf, self.now_us);
        buf.push(b'\t');
        push_float_array(buf, r, 1536);
        buf.push(b'\n');
    }

    fn attachment_row(&mut self, buf: &mut Vec<u8>) {
        let r = &mut self.rng;
        push_uuid(buf, r);
        buf.push(b'\t');
        push_uuid(buf, r);
        buf.extend_from_slice(b"\tdiagnostics-");
        push_hex(buf, r, 4);
        buf.extend_from_slice(b".tar.gz\tapplication/gzip\t");
        push_ts(buf, self.now_us);
        buf.extend_from_slice(b"\t\\\\x");
        let n = r.range(2 << 10, 64 << 10) as usize;
        push_hex(buf, r, n);
        buf.push(b'\n');
    }

    fn large_object(&mut self, buf: &mut Vec<u8>) {
        let n = self.rng.range(64 << 10, 2 << 20) as usize;
        self.lo_oid += 1;
        buf.extend_from_slice(b"\n-- large object ");
        push_u64(buf, self.lo_oid);
        buf.push(b'\n');
        push_random(buf, &mut self.rng, n);
    }
}

/// A generator read as a byte stream.
struct Source {
    gen: Gen,
    pending: Vec<u8>,
}

impl Source {
    fn new(seed: u64, preamble: bool) -> Self {
        let mut pending = Vec::with_capacity(8 << 20);
        if preamble {
            pending.extend_from_slice(PREAMBLE.as_bytes());
        }
        Source {
            gen: Gen::new(seed),
            pending,
        }
    }

    /// Makes at least `n` bytes available at the front of `pending`.
    fn ensure(&mut self, n: usize) -> &mut [u8] {
        while self.pending.len() < n {
            self.gen.step(&mut self.pending);
        }
        &mut self.pending[..n]
    }

    /// Drops the first `n` bytes (after they were used).
    fn consume(&mut self, n: usize) {
        self.pending.drain(..n);
    }

    fn fill(&mut self, out: &mut [u8]) {
        let n = out.len();
        out.copy_from_slice(self.ensure(n));
        self.consume(n);
    }
}

// ---------------------------------------------------------------- main

struct Opts {
    size: u64,
    seed: u64,
    output: Option<String>,
    mutate: bool,
    fraction: f64,
    regions: u64,
    mutate_seed: u64,
    stats: bool,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suf) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("bad size {s:?}"))?;
    let mult: u64 = match suf.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        _ => return Err(format!("bad size suffix in {s:?} (use K, M, G)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("size {s:?} too large"))
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        size: 1 << 30,
        seed: 1,
        output: None,
        mutate: false,
        fraction: 0.01,
        regions: 1000,
        mutate_seed: 2,
        stats: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--size" => o.size = parse_size(&val("--size")?)?,
            "--seed" => o.seed = val("--seed")?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--output" | "-o" => o.output = Some(val("--output")?),
            "--mutate" => o.mutate = true,
            "--mutate-fraction" => {
                o.fraction = val("--mutate-fraction")?
                    .parse()
                    .map_err(|e| format!("--mutate-fraction: {e}"))?
            }
            "--mutate-regions" => {
                o.regions = val("--mutate-regions")?
                    .parse()
                    .map_err(|e| format!("--mutate-regions: {e}"))?
            }
            "--mutate-seed" => {
                o.mutate_seed = val("--mutate-seed")?
                    .parse()
                    .map_err(|e| format!("--mutate-seed: {e}"))?
            }
            "--stats" => o.stats = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if !(0.0..=1.0).contains(&o.fraction) {
        return Err("--mutate-fraction must be within 0..1".into());
    }
    if o.mutate && o.regions == 0 {
        return Err("--mutate-regions must be at least 1".into());
    }
    Ok(o)
}

/// Mutated regions: one per stratum of `size / n` bytes, placed at random
/// inside it, so they never overlap and are spread over the whole stream.
fn plan_regions(o: &Opts) -> Vec<(u64, u64)> {
    if !o.mutate || o.size == 0 {
        return Vec::new();
    }
    let n = o.regions.min(o.size);
    let len = ((o.size as f64 * o.fraction) / n as f64).round() as u64;
    let stratum = o.size / n;
    let len = len.min(stratum);
    if len == 0 {
        return Vec::new();
    }
    let mut rng = Rng::new(o.mutate_seed ^ 0x6d75_7461_7465);
    (0..n)
        .map(|i| {
            let slack = stratum - len;
            let off = if slack == 0 { 0 } else { rng.next() % (slack + 1) };
            (i * stratum + off, len)
        })
        .collect()
}

fn run(o: &Opts) -> io::Result<()> {
    let started = Instant::now();
    let mut out: Box<dyn Write> = match &o.output {
        Some(p) => Box::new(std::fs::File::create(p)?),
        None => Box::new(io::stdout().lock()),
    };
    let regions = plan_regions(o);
    let mut next_region = 0usize;
    // The region being replaced: (start, replacement bytes).
    let mut current: Option<(u64, Vec<u8>)> = None;
    let mut changed = 0u64;

    let mut src = Source::new(o.seed, true);
    const BLOCK: usize = 4 << 20;
    let mut pos = 0u64;
    while pos < o.size {
        let n = ((o.size - pos) as usize).min(BLOCK);
        let block = src.ensure(n);
        let end = pos + n as u64;
        // Apply every region that overlaps [pos, end).
        loop {
            if current.is_none() {
                match regions.get(next_region) {
                    Some(&(start, len)) if start < end => {
                        let mut alt = Source::new(o.mutate_seed.wrapping_mul(1_000_003) ^ (next_region as u64 + 1), false);
                        let mut bytes = vec![0u8; len as usize];
                        alt.fill(&mut bytes);
                        current = Some((start, bytes));
                        next_region += 1;
                    }
                    _ => break,
                }
            }
            let (start, bytes) = current.as_ref().expect("set above");
            let r_end = start + bytes.len() as u64;
            let from = (*start).max(pos);
            let to = r_end.min(end);
            for i in from..to {
                let b = bytes[(i - start) as usize];
                let slot = &mut block[(i - pos) as usize];
                if *slot != b {
                    changed += 1;
                    *slot = b;
                }
            }
            if r_end <= end {
                current = None;
            } else {
                break;
            }
        }
        out.write_all(block)?;
        src.consume(n);
        pos = end;
    }
    out.flush()?;
    if o.stats {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "dumpgen: {} bytes in {:.2} s ({:.0} MB/s), seed {}{}",
            o.size,
            secs,
            o.size as f64 / secs / 1e6,
            o.seed,
            if o.mutate {
                format!(
                    ", mutated: {} regions, {} bytes changed ({:.3} %)",
                    regions.len(),
                    changed,
                    changed as f64 * 100.0 / o.size.max(1) as f64
                )
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("dumpgen: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&o) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (e.g. `| head`) is not an error worth a message.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dumpgen: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gen(seed: u64, n: usize) -> Vec<u8> {
        let mut s = Source::new(seed, true);
        let mut v = vec![0u8; n];
        s.fill(&mut v);
        v
    }

    #[test]
    fn deterministic_and_prefix_stable() {
        let a = gen(7, 3 << 20);
        let b = gen(7, 5 << 20);
        assert_eq!(a[..], b[..3 << 20]);
        assert_ne!(gen(8, 1 << 20), a[..1 << 20]);
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn regions_are_disjoint_and_sized() {
        let o = Opts {
            size: 1 << 30,
            seed: 1,
            output: None,
            mutate: true,
            fraction: 0.01,
            regions: 1000,
            mutate_seed: 2,
            stats: false,
        };
        let r = plan_regions(&o);
        assert_eq!(r.len(), 1000);
        let total: u64 = r.iter().map(|x| x.1).sum();
        assert!((total as f64 - 0.01 * (1u64 << 30) as f64).abs() < 1000.0);
        for w in r.windows(2) {
            assert!(w[0].0 + w[0].1 <= w[1].0);
        }
    }
}
