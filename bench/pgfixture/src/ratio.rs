//! Databases of a chosen compressibility, for the restore memory benchmark
//! (bench/restore-memory.sh). The Kubernaut fixture is what it is; these
//! set how much a dump stream shrinks under zstd, which is what decides how
//! many decoded bytes one compressed read of a restore turns into.
//!
//! `gen_ratio`: a large table `events` (~80 % of the bytes) and a smaller
//! `notes` (~20 %), each row `id`, a short key and a ~1000-byte payload
//! made of random printable ASCII (94 symbols, ~6.6 bits a byte: about 1.2×
//! under zstd) followed by a fixed filler (which compresses to almost
//! nothing). The random share is 1/RATIO of the row's length scaled by
//! 0.82, so the dump compresses by about RATIO; the benchmark reports the
//! ratio it measured (bytes read ÷ bytes stored by `backup postgres`).
//! RATIO 1 means all random: the least compressible a COPY text stream
//! gets (~1.2×).
//!
//! `gen_small`: many small tables (`TABLES` of `ROWS` rows each), for the
//! per-table overheads of a restore.
use bytes::Bytes;
use futures_util::SinkExt;
use lifeboat_postgres::Client;

/// Length of one payload.
const ROW: usize = 1000;
/// Rows per COPY batch sent.
const BATCH: usize = 2000;

/// xorshift64*: fast, deterministic, good enough for filler that should not compress.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn printable(&mut self, out: &mut Vec<u8>, n: usize) {
        for _ in 0..n {
            // 94 printable symbols, without backslash (COPY's escape).
            let mut c = b'!' + (self.next() % 94) as u8;
            if c == b'\\' {
                c = b'~';
            }
            out.push(c);
        }
    }
}

/// The payload's random share for a wanted ratio.
fn random_len(ratio: f64) -> usize {
    if ratio <= 1.0 {
        return ROW;
    }
    ((ROW as f64 / ratio) * 0.82).round().clamp(1.0, ROW as f64) as usize
}

async fn fill(
    c: &Client,
    table: &str,
    bytes: u64,
    rng: &mut Rng,
    ratio: f64,
) -> Result<u64, Box<dyn std::error::Error>> {
    let rand = random_len(ratio);
    let filler: Vec<u8> = b"lifeboat restore memory benchmark filler; "
        .iter()
        .copied()
        .cycle()
        .take(ROW - rand)
        .collect();
    let rows = bytes / ROW as u64;
    let sink = c
        .copy_in(&format!("COPY {table} (id, k, payload) FROM STDIN"))
        .await?;
    futures_util::pin_mut!(sink);
    let mut buf = Vec::with_capacity(BATCH * (ROW + 40));
    for id in 1..=rows {
        buf.extend_from_slice(format!("{id}\tk{}\t", rng.next() % 100_000).as_bytes());
        rng.printable(&mut buf, rand);
        buf.extend_from_slice(&filler);
        buf.push(b'\n');
        if id % BATCH as u64 == 0 {
            sink.send(Bytes::from(std::mem::take(&mut buf))).await?;
            buf.reserve(BATCH * (ROW + 40));
        }
    }
    if !buf.is_empty() {
        sink.send(Bytes::from(buf)).await?;
    }
    Ok(sink.finish().await?)
}

/// `events` and `notes`, about `bytes` of rows together, compressing by about `ratio`.
pub async fn gen_ratio(
    c: &Client,
    bytes: u64,
    ratio: f64,
) -> Result<u64, Box<dyn std::error::Error>> {
    c.batch_execute(
        "CREATE TABLE events (id bigint PRIMARY KEY, k text NOT NULL, payload text NOT NULL);
         CREATE TABLE notes (id bigint PRIMARY KEY, k text NOT NULL, payload text NOT NULL);
         CREATE INDEX events_k ON events (k);",
    )
    .await?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ratio.to_bits());
    let mut n = fill(c, "events", bytes / 10 * 8, &mut rng, ratio).await?;
    n += fill(c, "notes", bytes / 10 * 2, &mut rng, ratio).await?;
    Ok(n)
}

/// `tables` tables `t_00001`… of `rows` rows each (payloads 8× compressible).
pub async fn gen_small(
    c: &Client,
    tables: u32,
    rows: u64,
) -> Result<u64, Box<dyn std::error::Error>> {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut n = 0;
    for t in 1..=tables {
        let name = format!("t_{t:05}");
        c.batch_execute(&format!(
            "CREATE TABLE {name} (id bigint PRIMARY KEY, k text NOT NULL, payload text NOT NULL)"
        ))
        .await?;
        n += fill(c, &name, rows * ROW as u64, &mut rng, 8.0).await?;
    }
    Ok(n)
}
