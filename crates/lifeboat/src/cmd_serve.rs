//! `lifeboat serve`: the daemon. See `serve/`, `lifeboat_ops::daemon` and
//! docs/daemon.md.

use std::net::SocketAddr;

use clap::Args;
use lifeboat_ops::error::{Error, Result};

use crate::context::Ctx;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address of the HTTP server [default: serve.listen, else 0.0.0.0:8080]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// The region (a key of `regions:`) this daemon runs in [default:
    /// serve.region]; see docs/daemon.md, "Regions"
    #[arg(long, value_name = "NAME", env = "LIFEBOAT_REGION")]
    pub region: Option<String>,
}

pub async fn run(ctx: &Ctx, a: ServeArgs) -> Result<i32> {
    // `--region` / LIFEBOAT_REGION win over `serve.region`: the daemon reads
    // its region from the configuration it runs with.
    let mut config = ctx.config.clone();
    if let (Some(region), Some(c)) = (a.region, config.as_mut()) {
        c.serve.get_or_insert_with(Default::default).region = Some(region);
    }
    let ctx = Ctx::with_config(
        ctx.global.clone(),
        std::sync::Arc::new(lifeboat_ops::report::Log),
        config,
    );
    let code = crate::serve::serve(ctx, a.listen).await?;
    // `--json`: the daemon's result is that it stopped (its log is on stderr).
    if crate::output::json_mode() {
        crate::output::print_json(&serde_json::json!({"stopped": true}))
            .map_err(|e| Error::failure(format!("{e:#}")))?;
    }
    Ok(code)
}
