//! `lifeboat serve`: the daemon (docs/daemon.md). The daemon itself — its
//! state, runs, retention, schedules, lease, metrics, start-up and the
//! SIGTERM sequence, the drill loops — is `lifeboat_ops::daemon`; here are
//! its options from `serve:` and flags, and the HTTP server it serves its
//! state with.
//!
//! | module | owns |
//! |---|---|
//! | `mod.rs` | settings from `serve:` and flags; listening; HTTP around the daemon's life |
//! | `http.rs` | health, readiness, metrics and the JSON API |
//! | `page.rs` | the status page at `/`: one self-contained HTML page of the assessment |

pub mod http;
pub mod page;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use lifeboat_ops::config::ServeConfig;
use lifeboat_ops::daemon::{
    self, DEFAULT_GRACE, DEFAULT_LEASE, DEFAULT_LISTEN, DEFAULT_PRUNE_INTERVAL, Daemon, Settings,
    Tasks, drills,
};
use lifeboat_ops::error::{Context, Result, usage};
use tokio::sync::watch;

use crate::context::Ctx;
use crate::exit::OK;

/// The daemon's settings from `serve:` (defaults where unset) and the
/// `--listen` flag, which wins.
pub async fn settings(ctx: &Ctx, listen: Option<SocketAddr>) -> Result<Settings> {
    let conf = ctx
        .config
        .as_ref()
        .and_then(|c| c.serve.clone())
        .unwrap_or_default();
    let std = |d: Option<TimeDelta>, default: Duration| {
        d.and_then(|d| d.to_std().ok()).unwrap_or(default)
    };
    let listen = match listen {
        Some(l) => l,
        None => conf
            .listen
            .as_deref()
            .unwrap_or(DEFAULT_LISTEN)
            .parse()
            .map_err(|_| usage("serve.listen is not an address with a port"))?,
    };
    let token = resolve_token(ctx, &conf).await?;
    Ok(Settings {
        listen,
        token,
        lease: std(conf.lease, DEFAULT_LEASE),
        grace: std(conf.grace_period, DEFAULT_GRACE),
        prune_interval: std(conf.prune_interval, DEFAULT_PRUNE_INTERVAL),
        prune_grace: ctx.prune_grace().unwrap_or(Duration::from_secs(3600)),
    })
}

async fn resolve_token(ctx: &Ctx, conf: &ServeConfig) -> Result<Option<String>> {
    let Some(r) = &conf.token else {
        tracing::warn!(
            "serve.token is not set: the API (/api/v1/…) refuses every request with 401; \
             health endpoints and metrics are open"
        );
        return Ok(None);
    };
    let t = r.resolve(&ctx.secrets).await.map_err(|e| {
        usage(format!(
            "serve.token ({r}): {e}; the daemon does not start without the API token it was configured with"
        ))
    })?;
    let t = t.trim().to_string();
    if t.len() < 16 {
        return Err(usage(format!(
            "serve.token ({r}) is shorter than 16 characters; use a long random token, e.g. `openssl rand -hex 32`"
        )));
    }
    Ok(Some(t))
}

/// Builds the daemon from the configuration and runs it until SIGTERM:
/// start-up, HTTP, the daemon's tasks and the drill loops, then the
/// shutdown sequence with HTTP last.
pub async fn serve(ctx: Ctx, listen: Option<SocketAddr>) -> Result<i32> {
    let config = daemon::lifecycle::config(&ctx)?.clone();
    let settings = settings(&ctx, listen).await?;
    let daemon = daemon::build(ctx, settings).await?;
    let listener = listen_on(&daemon).await?;
    daemon::start(&daemon).await;
    drills::refresh(&daemon).await;
    let (http_stop, http_stop_rx) = watch::channel(false);
    let http = tokio::spawn(http::serve(Arc::clone(&daemon), listener, http_stop_rx));
    let tasks = Tasks::spawn(&daemon, drills::spawn(&daemon, &config));
    daemon::wait_for_termination().await;
    tasks.shut_down(&daemon).await;
    http_stop.send_replace(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), http).await;
    tracing::info!("lifeboat serve stopped");
    Ok(OK)
}

/// Binds the listening address (a bad one is a usage error) and says so.
async fn listen_on(daemon: &Daemon) -> Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind(daemon.settings.listen)
        .await
        .map_err(|e| {
            usage(format!(
                "cannot listen on {}: {e}; change serve.listen in the configuration or pass --listen",
                daemon.settings.listen
            ))
        })?;
    let addr = listener.local_addr().context("the listening address")?;
    tracing::info!(
        listen = %addr,
        identity = %daemon.identity,
        repository = %daemon.repo.location(),
        sources = daemon.sources.len(),
        "lifeboat serve started"
    );
    Ok(listener)
}
