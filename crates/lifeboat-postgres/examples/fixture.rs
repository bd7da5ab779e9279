//! Generates a Kubernaut-like database of a given size in a throwaway cluster and
//! reports how long generation, a plain `pg_dump -Fc -Z0`, one churn round and
//! hash verification take. A sanity check of the fixture at benchmark scale:
//!
//! ```text
//! cargo run --release -p lifeboat-postgres --example fixture -- 1.6G
//! ```

use std::io::Read;
use std::time::Instant;

use lifeboat_postgres::dump::PgDump;
use lifeboat_postgres::facts::{DumpScope, SnapshotSession};
use lifeboat_postgres::fixture::{self, FixtureSpec};
use lifeboat_postgres::tools::{self, Discovery};
use lifeboat_postgres::{ClusterOptions, TempCluster};

fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1u64 << 10),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'G' | 'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    Some((num.parse::<f64>().ok()? * mult as f64) as u64)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "64M".into());
    let bytes = parse_size(&arg).ok_or("size like 64M or 1.6G")?;
    let spec = FixtureSpec::with_target_bytes(bytes);
    println!("spec: {spec:?}");
    let cluster = TempCluster::start_with(ClusterOptions {
        settings: vec![
            ("shared_buffers".into(), "512MB".into()),
            ("maintenance_work_mem".into(), "256MB".into()),
        ],
        ..Default::default()
    })?;
    let cfg = cluster.create_database("kubernaut").await?;
    let t = Instant::now();
    let rep = fixture::generate(&cfg, &spec).await?;
    println!(
        "generated in {:.1?}: database {:.2} GiB, {} partitions",
        t.elapsed(),
        rep.database_size_bytes as f64 / (1u64 << 30) as f64,
        rep.partitions.len()
    );
    for (phase, d) in &rep.phases {
        println!("  {phase}: {d:.1?}");
    }

    let tools = tools::discover(cluster.major(), &Discovery::default())?;
    let session = SnapshotSession::begin(&cfg).await?;
    let t = Instant::now();
    let mut dump = PgDump::spawn(
        &tools,
        &cfg,
        Some(session.snapshot_id()),
        &DumpScope::full(),
    )?;
    let mut out = dump.take_stdout().ok_or("no stdout")?;
    let reader = tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            match out.read(&mut buf) {
                Ok(0) => return Ok(total),
                Ok(n) => total += n as u64,
                Err(e) => return Err(e),
            }
        }
    });
    let facts = session
        .facts(
            &DumpScope::full(),
            &fixture::kubernaut_verification_queries(),
        )
        .await?;
    let facts_time = t.elapsed();
    let total = reader.await??;
    tokio::task::spawn_blocking(move || dump.wait()).await??;
    session.finish().await?;
    println!(
        "pg_dump -Fc -Z0 with facts in parallel: {:.1?} ({:.2} GiB archive; facts took {:.1?})",
        t.elapsed(),
        total as f64 / (1u64 << 30) as f64,
        facts_time
    );
    println!(
        "audit_events rows {:?}",
        facts.rows_of("public", "audit_events")
    );

    let c = cfg.connect().await?;
    let t = Instant::now();
    let churn = fixture::churn(&c, 0.01).await?;
    println!("churn 1 %: {:.1?} {churn:?}", t.elapsed());
    let t = Instant::now();
    let chain = fixture::verify_hash_chain(&c).await?;
    println!("hash chain: {chain:?} in {:.1?}", t.elapsed());
    Ok(())
}
