//! `lifeboat demo`: prints what the demo flow (`lifeboat_ops::demo`) does as
//! it goes, on standard output unless `--quiet`, then its measurements, and
//! with `--json` the result document. Ctrl-C ends it with exit 130; the
//! throwaway PostgreSQL and the temporary files go with the flow's future.

use clap::Args;
use lifeboat_ops::demo::{self, DemoOutcome, Event, Stage};
use lifeboat_ops::error::Result;
use lifeboat_postgres::facts;

use crate::context::Ctx;
use crate::exit::{INTERRUPTED, OK};
use crate::output::{human_bytes, print_json};

#[derive(Args, Debug)]
pub struct DemoArgs {}

pub async fn run(ctx: &Ctx, _a: DemoArgs) -> Result<i32> {
    let quiet = ctx.global.quiet;
    step(
        quiet,
        "Lifeboat demo: back up a Kubernaut-like database, corrupt it, restore it, verify it.",
    );
    let outcome = tokio::select! {
        r = demo::run(|e| if !quiet { print_event(e) }) => r?,
        _ = tokio::signal::ctrl_c() => {
            return Err(lifeboat_ops::error::fail(
                INTERRUPTED,
                "interrupted: the throwaway PostgreSQL is stopped and the demo's files are removed",
            ));
        }
    };
    print_result(quiet, &outcome);
    if ctx.json() {
        print_json(&json_document(&outcome))
            .map_err(|e| lifeboat_ops::failure!("writing the JSON result: {e:#}"))?;
    }
    Ok(OK)
}

fn step(quiet: bool, s: impl AsRef<str>) {
    if !quiet {
        println!("{}", s.as_ref());
    }
}

/// The line that announces a stage.
fn stage_line(s: Stage) -> &'static str {
    match s {
        Stage::Cluster => "[1/6] starting a throwaway PostgreSQL",
        Stage::Repository => {
            "[2/6] creating a repository in a temporary directory (random passphrase)"
        }
        Stage::Backup => {
            "[3/6] backing up (pg_dump streamed into the repository, facts taken in the same snapshot)"
        }
        Stage::Corruption => {
            "[4/6] simulating the seed's corruption: an audit partition dropped, remediation rows scrambled"
        }
        Stage::Restore => {
            "[5/6] restoring: writer quiesced, pg_restore --clean from the repository, facts verified"
        }
    }
}

/// One event of the flow as the lines the demo always printed.
fn print_event(e: Event<'_>) {
    match e {
        Event::Begin(s) => println!("{}", stage_line(s)),
        Event::ClusterStarted(c) => println!(
            "      PostgreSQL {} on 127.0.0.1:{} in {}",
            c.major,
            c.port,
            c.dir.display()
        ),
        Event::Loaded(g) => println!(
            "      loaded {} audit events in {} monthly partitions (hash-chained), {} embeddings, {} remediations ({})",
            g.audit_events,
            g.partitions.len(),
            g.embeddings,
            g.remediations,
            human_bytes(g.database_size_bytes.max(0) as u64)
        ),
        Event::BackedUp(b) => println!(
            "      snapshot {}: {} dump, {} stored, {} tables, {} audit events, chain head {}",
            b.snapshot.short_id(),
            human_bytes(b.snapshot.snapshot.stats.bytes_read),
            human_bytes(b.snapshot.snapshot.stats.bytes_stored),
            b.facts.tables.len(),
            b.audit_events,
            b.chain_head
                .as_deref()
                .map(|h| &h[..h.len().min(12)])
                .unwrap_or("-")
        ),
        Event::Corrupted(c) => {
            println!(
                "      dropped {} ({} events), scrambled {} remediation rows; {} facts no longer hold:",
                c.report.dropped_partition.as_deref().unwrap_or("-"),
                c.report.dropped_events,
                c.report.scrambled_rows,
                c.broken.len()
            );
            for l in facts::diff_table(&c.broken).lines() {
                println!("        {l}");
            }
        }
        Event::Restored(r) => println!(
            "      every fact holds ({}); hash chain verifies ({} events); writer resumed",
            r.facts_checked, r.chain.events
        ),
    }
}

/// Step 6: the measurements.
fn print_result(quiet: bool, o: &DemoOutcome) {
    step(quiet, "[6/6] result");
    step(
        quiet,
        format!(
            "      time to recover (quiesce, restore, verify, resume): {:.1} s",
            o.restored.time_to_recover.as_secs_f64()
        ),
    );
    step(
        quiet,
        format!(
            "      data-loss window: {:.1} s (age of the snapshot when the corruption happened; \
             with hourly backups at most 1 h)",
            o.corruption.data_loss_window.as_secs_f64()
        ),
    );
    step(
        quiet,
        format!(
            "      the writer appended {} audit events during the demo; after the restore the chain still verifies ({} events, {} broken)",
            o.writer_appended_events, o.chain_after.events, o.chain_after.broken
        ),
    );
    step(
        quiet,
        format!(
            "done in {:.1} s; the throwaway PostgreSQL and the repository were removed",
            o.duration.as_secs_f64()
        ),
    );
}

/// The `--json` result (unchanged since the demo had one).
fn json_document(o: &DemoOutcome) -> serde_json::Value {
    serde_json::json!({
        "snapshot": o.backup.snapshot.id,
        "tables": o.backup.facts.tables.len(),
        "queries": o.backup.facts.queries.len(),
        "facts_broken_by_corruption": o.corruption.broken.len(),
        "restored_and_verified": true,
        "hash_chain_events": o.chain_after.events,
        "hash_chain_broken": o.chain_after.broken,
        "writer_appended_events": o.writer_appended_events,
        "time_to_recover_seconds": o.restored.time_to_recover.as_secs_f64(),
        "data_loss_window_seconds": o.corruption.data_loss_window.as_secs_f64(),
        "duration_seconds": o.duration.as_secs_f64(),
    })
}
