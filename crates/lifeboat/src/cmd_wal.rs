//! `lifeboat wal push|fetch|list`: PostgreSQL's `archive_command` and
//! `restore_command`, and the archive's listing (docs/physical.md). The
//! flows are `lifeboat_ops::wal`. `push` and `fetch` print nothing on
//! success (PostgreSQL logs what they print, for every segment) unless
//! `--json` asks for their result; a failure is one `error:` line.

use clap::{Args, Subcommand};
use lifeboat_ops::error::{NOT_FOUND, OK, Result};
use lifeboat_ops::wal::{self, FetchRequest, ListRequest, PushRequest, WalListing};

use crate::context::Ctx;
use crate::output::{human_bytes, print_json};
use crate::table::{Align, Table};

#[derive(Subcommand, Debug)]
pub enum WalCommand {
    /// Archive one WAL file (archive_command = 'lifeboat wal push %p')
    Push(PushArgs),
    /// Restore one WAL file (restore_command = 'lifeboat wal fetch %f %p'); exit 3 when absent
    Fetch(FetchArgs),
    /// What the archive holds: timelines, epochs, first and last segment, gaps
    List(ListArgs),
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// The file (%p: a path relative to the data directory)
    pub path: std::path::PathBuf,
    /// This server's region, for the authority epoch when `failover:` is
    /// configured [default: serve.region]
    #[arg(long, value_name = "NAME", env = "LIFEBOAT_REGION")]
    pub region: Option<String>,
}

#[derive(Args, Debug)]
pub struct FetchArgs {
    /// The file name PostgreSQL asks for (%f)
    pub name: String,
    /// Where to write it (%p)
    pub dest: std::path::PathBuf,
    /// On any failure but "not in the archive", exit 128 + the usual code (e.g. 132 for a damaged
    /// copy, 134 for a wrong key, 136 for storage, 129 otherwise): PostgreSQL aborts the recovery
    /// on a status above 125 instead of taking the failure for the end of the archive. For an
    /// archive recovery (Lifeboat's own recovery servers use it); not for a standby's
    /// restore_command, which should ask again later
    #[arg(long)]
    pub fatal_errors: bool,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// The cluster's wal_segment_size, in MiB (gaps are counted in segments)
    #[arg(long, value_name = "MIB", default_value_t = 16)]
    pub segment_size_mib: u64,
}

pub async fn run(ctx: &Ctx, c: WalCommand) -> Result<i32> {
    match c {
        WalCommand::Push(a) => {
            let pushed = wal::push(
                ctx,
                PushRequest {
                    path: a.path,
                    region: a.region,
                },
            )
            .await?;
            if ctx.json() {
                print_json(&pushed)?;
            }
        }
        WalCommand::Fetch(a) => {
            let fetched = wal::fetch(
                ctx,
                FetchRequest {
                    name: a.name,
                    dest: a.dest,
                },
            )
            .await;
            let fetched = match fetched {
                Err(e) if a.fatal_errors && e.code() != NOT_FOUND => {
                    // PostgreSQL logs this line, then aborts the recovery.
                    eprintln!("error: {}", e.message);
                    eprintln!(
                        "hint: {} (exit {} = 128 + {}: fatal to PostgreSQL's recovery)",
                        e.hint(),
                        128 + e.code(),
                        e.code()
                    );
                    return Ok(128 + e.code());
                }
                r => r?,
            };
            if ctx.json() {
                print_json(&fetched)?;
            }
        }
        WalCommand::List(a) => {
            if !a.segment_size_mib.is_power_of_two() || a.segment_size_mib > 1024 {
                return Err(lifeboat_ops::error::usage(
                    "--segment-size-mib is a power of two from 1 to 1024 (PostgreSQL's wal_segment_size)",
                ));
            }
            let listing = wal::list(
                ctx,
                ListRequest {
                    segment_size: a.segment_size_mib * 1024 * 1024,
                },
            )
            .await?;
            if ctx.json() {
                print_json(&listing)?;
            } else {
                print!("{}", render(&listing));
            }
        }
    }
    Ok(OK)
}

fn render(l: &WalListing) -> String {
    if l.objects == 0 {
        return "the archive holds no WAL\n".into();
    }
    let mut t = Table::new(&[
        ("TIMELINE", Align::Right),
        ("EPOCH", Align::Right),
        ("SEGMENTS", Align::Right),
        ("FIRST", Align::Left),
        ("LAST", Align::Left),
    ]);
    for tl in &l.timelines {
        for e in &tl.epochs {
            t.row(vec![
                tl.timeline.to_string(),
                e.epoch.to_string(),
                e.segments.to_string(),
                e.first.clone().unwrap_or_default(),
                e.last.clone().unwrap_or_default(),
            ]);
        }
        let mut notes = Vec::new();
        if tl.history {
            notes.push(format!("{:08X}.history", tl.timeline));
        }
        notes.extend(tl.partial.iter().cloned());
        notes.extend(tl.backup_labels.iter().cloned());
        if !notes.is_empty() {
            t.note(format!(
                "  timeline {}: also {}",
                tl.timeline,
                notes.join(", ")
            ));
        }
        for g in &tl.gaps {
            t.note(format!(
                "  timeline {}: GAP of {} segment(s): {} .. {}",
                tl.timeline, g.count, g.first, g.last
            ));
        }
    }
    let mut out = t.render();
    out.push_str(&format!(
        "{} objects, {} stored\n",
        l.objects,
        human_bytes(l.stored_bytes)
    ));
    for u in &l.unknown {
        out.push_str(&format!("not a WAL file name: {u}\n"));
    }
    out
}
