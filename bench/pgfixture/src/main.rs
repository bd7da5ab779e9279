//! Benchmark helper for bench/postgres.sh: generates the Kubernaut-like fixture in an
//! existing database, or applies one round of churn to it.
//!
//!   pgfixture gen   postgresql://USER@HOST:PORT/DB 1.6G
//!   pgfixture churn postgresql://USER@HOST:PORT/DB 0.01
//!   pgfixture gen-ratio postgresql://USER@HOST:PORT/DB 600M 8    (compresses ~8×; src/ratio.rs)
//!   pgfixture gen-small postgresql://USER@HOST:PORT/DB 2000 200  (tables, rows each)
//!
//! The password comes from PGPASSWORD.
use std::time::Instant;

mod ratio;

use lifeboat_postgres::ConnConfig;
use lifeboat_postgres::fixture::{self, FixtureSpec};

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
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        if args.len() == 5 && args[1] == "gen-ratio" {
            let cfg = ConnConfig::parse(&args[2])?;
            let bytes = parse_size(&args[3]).ok_or("size like 64M or 1.6G")?;
            let c = cfg.connect().await?;
            let n = ratio::gen_ratio(&c, bytes, args[4].parse()?).await?;
            println!("gen-ratio {}: {n} rows", args[4]);
            return Ok(());
        }
        if args.len() == 5 && args[1] == "gen-small" {
            let cfg = ConnConfig::parse(&args[2])?;
            let c = cfg.connect().await?;
            let n = ratio::gen_small(&c, args[3].parse()?, args[4].parse()?).await?;
            println!("gen-small {} tables: {n} rows", args[3]);
            return Ok(());
        }
        return Err(
            "usage: pgfixture gen|churn URL SIZE|FRACTION, gen-ratio URL SIZE RATIO, gen-small URL TABLES ROWS".into(),
        );
    }
    let cfg = ConnConfig::parse(&args[2])?;
    let t = Instant::now();
    match args[1].as_str() {
        "gen" => {
            let bytes = parse_size(&args[3]).ok_or("size like 64M or 1.6G")?;
            let spec = FixtureSpec::with_target_bytes(bytes);
            let rep = fixture::generate(&cfg, &spec).await?;
            println!(
                "generated in {:.1?}: database {} bytes ({:.2} GiB), {} partitions",
                t.elapsed(),
                rep.database_size_bytes,
                rep.database_size_bytes as f64 / (1u64 << 30) as f64,
                rep.partitions.len()
            );
        }
        "churn" => {
            let f: f64 = args[3].parse()?;
            let c = cfg.connect().await?;
            let rep = fixture::churn(&c, f).await?;
            println!("churn {f}: {:.1?} {rep:?}", t.elapsed());
        }
        _ => return Err("gen or churn".into()),
    }
    Ok(())
}
