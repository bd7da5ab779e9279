//! `restore postgres SNAPSHOT --table T [--as NEW]` / `--schema S`: the
//! flags turned into a [`table_restore::Request`], the flow run
//! (`lifeboat_ops::table_restore`, cancelled by Ctrl-C), the outcome
//! printed. `main` sends `restore postgres` here when tables or schemas are
//! named ([`RestorePostgresArgs::names_tables`]); the flags are
//! `cmd_postgres`'s, this module only reads them.

use lifeboat_ops::table_restore::{self, Mode, Outcome, Request};
use lifeboat_postgres::facts;

use crate::cmd_postgres::RestorePostgresArgs;
use crate::context::Ctx;
use crate::output::print_json;
use lifeboat_ops::error::{OK, Result, usage};

pub async fn restore(ctx: &Ctx, a: RestorePostgresArgs) -> Result<i32> {
    let unsupported = [
        (a.jobs_flag.is_some(), "--jobs"),
        (a.whole_tables, "--whole-tables"),
        (a.clean_existing, "--clean-existing"),
        (a.source_unreachable, "--source-unreachable"),
    ];
    if let Some((_, flag)) = unsupported.iter().find(|(set, _)| *set) {
        return Err(usage(format!(
            "{flag} is for a whole-database restore; leave it out with --table/--schema"
        )));
    }
    let chosen = table_restore::pair(&a.tables, &a.schemas, &a.as_names)?;
    let req = Request {
        snapshot: a.snapshot,
        source: a.source,
        target: a.target,
        chosen,
        no_quiesce: a.no_quiesce,
        no_verify: a.no_verify,
        staging_dir: a.staging_dir,
        cluster: ctx.cluster_options(
            a.cluster.kubeconfig.as_deref(),
            a.cluster.context.as_deref(),
        ),
    };
    let outcome = table_restore::restore_tables(ctx, &req, crate::interrupt::requested()).await?;
    if let Some(e) = outcome.failure() {
        if ctx.json() {
            print_json(&outcome)?;
        } else {
            print!("{}", facts::diff_table(&outcome.differences));
        }
        return Err(e);
    }
    report(ctx, &outcome)?;
    Ok(OK)
}

fn report(ctx: &Ctx, o: &Outcome) -> Result<()> {
    if ctx.json() {
        return print_json(o);
    }
    let what: Vec<String> = o
        .tables
        .iter()
        .map(|t| {
            let rows = t.rows.map(|n| format!(", {n} rows")).unwrap_or_default();
            if t.from == t.to {
                format!("{}{rows}", t.to)
            } else {
                format!("{} as {}{rows}", t.from, t.to)
            }
        })
        .collect();
    let verified = match o.verified {
        Some(true) => "row counts verified",
        Some(false) => "verification FAILED",
        None => "not verified",
    };
    let how = match o.mode {
        Mode::Beside => "beside the live tables",
        Mode::InPlace => "in place",
    };
    let writers = match o.writers {
        "resumed" => "; writers resumed",
        "not_stopped" => "; writers not stopped (--no-quiesce)",
        "left_stopped" => "; writers left stopped",
        _ => "",
    };
    println!(
        "restored {} from snapshot {} into {} {how} in {:.1} s; {verified}{writers}",
        what.join(", "),
        &o.snapshot[..o.snapshot.len().min(8)],
        o.target,
        o.restore_seconds,
    );
    Ok(())
}
