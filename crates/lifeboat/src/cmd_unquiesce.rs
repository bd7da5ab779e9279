//! `lifeboat unquiesce`: brings writers back after a crashed restore. (Being built.)

use clap::Args;

use crate::context::Ctx;

#[derive(Args, Debug)]
pub struct UnquiesceArgs {}

pub async fn run(_ctx: &Ctx, _a: UnquiesceArgs) -> anyhow::Result<i32> {
    anyhow::bail!("unquiesce is not built yet")
}
