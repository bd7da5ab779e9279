//! Ctrl-C (SIGINT) for the whole process: one listener, started by `main`
//! before any command runs, that every interested party observes.
//!
//! `main` ends an ordinary command at the first Ctrl-C (exit 130). A command
//! that must decide for itself what an interruption means (`restore
//! postgres`: before or after the target was touched, writers brought back or
//! left stopped) is not pre-empted: `main` leaves it running and the command
//! selects on [`requested`]. Two listeners racing for the same signal (as
//! `main` and such a command once did, each with its own
//! `tokio::signal::ctrl_c()`) let the first one to be polled win, so the
//! command's own handling could be skipped.

use std::sync::OnceLock;

use tokio::sync::watch;

static REQUESTED: OnceLock<watch::Receiver<bool>> = OnceLock::new();

/// Starts listening for Ctrl-C. Call once, on the runtime, before the
/// command starts; later calls do nothing.
pub fn listen() {
    if REQUESTED.get().is_some() {
        return;
    }
    let (tx, rx) = watch::channel(false);
    if REQUESTED.set(rx).is_err() {
        return;
    }
    tokio::spawn(async move {
        match tokio::signal::ctrl_c().await {
            Ok(()) => {
                let _ = tx.send(true);
                // Keep the sender: a dropped sender reads as "no more
                // interrupts", not as a second one.
                std::future::pending::<()>().await
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await
            }
        }
    });
}

/// Resolves once Ctrl-C has been pressed (at once if it already was); never
/// when it cannot be watched. Without [`listen`] (not in the binary's normal
/// path), it waits for the signal itself.
pub async fn requested() {
    match REQUESTED.get() {
        Some(rx) => {
            let mut rx = rx.clone();
            if rx.wait_for(|&v| v).await.is_err() {
                std::future::pending::<()>().await
            }
        }
        None => {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await
            }
        }
    }
}
