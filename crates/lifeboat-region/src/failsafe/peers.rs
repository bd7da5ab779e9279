//! The failsafe's calls between daemons: `POST /api/v1/failsafe/vouch` and
//! `POST /api/v1/failsafe/freeze` on every other daemon at once, with the
//! daemons' bearer token (`serve.token`, the same for all of them).

use std::time::Duration;

use hyper::header::AUTHORIZATION;
use lifeboat_postgres::Secret;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{FreezeAnswer, FreezeRequest, VouchAnswer, VouchRequest};
use crate::http1;

pub const VOUCH_PATH: &str = "/api/v1/failsafe/vouch";
pub const FREEZE_PATH: &str = "/api/v1/failsafe/freeze";

/// Another daemon: its name (a region or a witness) and API address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    pub url: String,
}

/// Asks every peer at once to vouch; each peer's answer or why there is none.
pub async fn vouch(
    peers: &[Peer],
    token: &Secret,
    req: &VouchRequest,
    timeout: Duration,
) -> Vec<(String, Result<VouchAnswer, String>)> {
    ask_all(peers, token, VOUCH_PATH, req, timeout, 1).await
}

/// Asks every peer at once to freeze (retried within `timeout`: a freeze
/// is idempotent); each peer's answer or why there is none.
pub async fn freeze(
    peers: &[Peer],
    token: &Secret,
    req: &FreezeRequest,
    timeout: Duration,
) -> Vec<(String, Result<FreezeAnswer, String>)> {
    ask_all(peers, token, FREEZE_PATH, req, timeout, 3).await
}

async fn ask_all<Q: Serialize, A: DeserializeOwned>(
    peers: &[Peer],
    token: &Secret,
    path: &str,
    req: &Q,
    timeout: Duration,
    attempts: u32,
) -> Vec<(String, Result<A, String>)> {
    let body = match serde_json::to_vec(req) {
        Ok(b) => b,
        Err(e) => {
            let why = format!("encoding the request: {e}");
            return peers
                .iter()
                .map(|p| (p.name.clone(), Err(why.clone())))
                .collect();
        }
    };
    let asks = peers.iter().map(|p| {
        let body = body.clone();
        async move {
            let r = ask_one(p, token, path, body, timeout, attempts).await;
            (p.name.clone(), r)
        }
    });
    futures_util::future::join_all(asks).await
}

async fn ask_one<A: DeserializeOwned>(
    peer: &Peer,
    token: &Secret,
    path: &str,
    body: Vec<u8>,
    timeout: Duration,
    attempts: u32,
) -> Result<A, String> {
    let Some((host, port)) = http1::host_port(&peer.url) else {
        return Err(format!("{}: not an http://host:port address", peer.url));
    };
    let per_attempt = timeout / attempts.max(1);
    let auth = [(AUTHORIZATION, format!("Bearer {}", token.expose()))];
    let mut last = String::new();
    for attempt in 1..=attempts.max(1) {
        match http1::post_json((&host, port), path, &auth, body.clone(), per_attempt).await {
            Ok((200, bytes)) => {
                return serde_json::from_slice(&bytes)
                    .map_err(|e| format!("{}{path}: an answer that is not ours: {e}", peer.url));
            }
            Ok((status @ (401 | 403), _)) => {
                return Err(format!(
                    "{}{path}: HTTP {status}: the daemons' serve.token differ",
                    peer.url
                ));
            }
            Ok((status, bytes)) => {
                last = format!(
                    "{}{path}: HTTP {status}: {}",
                    peer.url,
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                );
            }
            Err(e) => last = format!("{}{path}: {e}", peer.url),
        }
        if attempt < attempts {
            tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
        }
    }
    Err(last)
}
