//! HTTP: `/healthz`, `/readyz` and `/metrics` are open; `/api/v1/…` needs
//! `Authorization: Bearer <serve.token>` (401 otherwise).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;

use lifeboat_ops::daemon::runner::Outcome;
use lifeboat_ops::daemon::{Daemon, Role, RunKind, SourceStatus, StartError, Trigger};
use lifeboat_ops::repo::snapshots::SnapshotRow;
use lifeboat_region::failsafe::peers;
use lifeboat_region::failsafe::{FreezeRequest, VouchRequest};

type D = State<Arc<Daemon>>;

pub fn router(d: Arc<Daemon>) -> Router {
    let api = Router::new()
        .route("/api/v1/status", get(status))
        .route("/api/v1/snapshots", get(snapshots))
        .route("/api/v1/drills", get(drills))
        .route("/api/v1/assessment", get(assessment))
        .route("/api/v1/sources/{name}/backup", post(backup))
        .route(peers::VOUCH_PATH, post(failsafe_vouch))
        .route(peers::FREEZE_PATH, post(failsafe_freeze))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&d), auth));
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(api)
        .with_state(d)
}

pub async fn serve(
    d: Arc<Daemon>,
    listener: tokio::net::TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    let app = router(d);
    let r = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = r {
        tracing::error!(error = %e, "the HTTP server failed");
    }
}

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, axum::Json(json!({ "error": message.into() }))).into_response()
}

/// Constant-time comparison of the bearer token.
fn token_matches(headers: &HeaderMap, expected: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), expected.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(State(d): D, req: Request, next: Next) -> Response {
    let ok = d
        .settings
        .token
        .as_deref()
        .is_some_and(|t| token_matches(req.headers(), t));
    if !ok {
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            if d.settings.token.is_none() {
                "the API is disabled: no serve.token is configured"
            } else {
                "missing or wrong bearer token: send Authorization: Bearer <the token of serve.token>"
            },
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"lifeboat\""),
        );
        return r;
    }
    next.run(req).await
}

#[derive(Serialize)]
struct Ready {
    ready: bool,
    #[serde(flatten)]
    role: Role,
    identity: String,
    shutting_down: bool,
    /// Why the repository cannot be used (moved, deleted, unreachable).
    #[serde(skip_serializing_if = "Option::is_none")]
    repository_error: Option<String>,
}

/// 200 when this daemon is the active one and its repository is still
/// there (marker and config id, read now); 503 as a standby, while
/// starting, while shutting down, or when the repository is missing or
/// unreachable. The body says which.
async fn readyz(State(d): D) -> Response {
    let role = d.role();
    let shutting_down = d.shutting_down();
    let repository_error = d.repository_problem().await;
    let ready = role == Role::Active && !shutting_down && repository_error.is_none();
    let body = Ready {
        ready,
        role,
        identity: d.identity.clone(),
        shutting_down,
        repository_error,
    };
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}

async fn metrics(State(d): D) -> Response {
    d.update_clock_gauges();
    d.metrics.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        lifeboat_ops::daemon::metrics::render(&d.metrics),
    )
        .into_response()
}

#[derive(Serialize)]
struct SourceView {
    name: String,
    kind: String,
    schedule: Option<String>,
    /// `physical.schedule`: the daemon's base backups of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    physical_schedule: Option<String>,
    timezone: String,
    retention: Option<String>,
    rpo_seconds: Option<f64>,
    rpo_objective_seconds: Option<i64>,
    #[serde(flatten)]
    status: SourceStatus,
}

async fn status(State(d): D) -> Response {
    let now = chrono::Utc::now();
    let sources: Vec<SourceView> = d
        .sources
        .values()
        .map(|s| {
            let status = s.status();
            SourceView {
                name: s.name.clone(),
                kind: s.kind.to_string(),
                schedule: s.schedule.as_ref().map(|c| c.to_string()),
                physical_schedule: s.physical.as_ref().map(|p| p.schedule.to_string()),
                timezone: s.tz.to_string(),
                retention: s.retention.as_ref().map(|r| r.to_string()),
                // From the newest backup of either kind.
                rpo_seconds: s
                    .newest_backup()
                    .map(|t| (now - t).num_milliseconds() as f64 / 1000.0),
                rpo_objective_seconds: s.rpo_objective.map(|r| r.num_seconds()),
                status,
            }
        })
        .collect();
    axum::Json(json!({
        "identity": d.identity,
        "role": d.role(),
        "shutting_down": d.shutting_down(),
        "repository": d.repo.location(),
        "time": now,
        "sources": sources,
    }))
    .into_response()
}

#[derive(Deserialize)]
/// `?source=NAME`: only that source's snapshots or drills.
struct SourceQuery {
    source: Option<String>,
}

async fn snapshots(State(d): D, Query(q): Query<SourceQuery>) -> Response {
    match lifeboat_ops::repo::snapshots::list(&d.repo, q.source.as_deref()).await {
        Ok(list) => {
            let rows: Vec<SnapshotRow> = list.iter().map(SnapshotRow::from).collect();
            axum::Json(rows).into_response()
        }
        Err(e) => error(
            StatusCode::BAD_GATEWAY,
            format!("cannot list the repository's snapshots: {e}"),
        ),
    }
}

async fn drills(State(d): D, Query(q): Query<SourceQuery>) -> Response {
    match lifeboat_dr::record::drills(&d.repo).await {
        Ok(list) => {
            let rows: Vec<_> = list
                .into_iter()
                .filter(|r| q.source.as_deref().is_none_or(|s| r.record.source == s))
                .collect();
            axum::Json(rows).into_response()
        }
        Err(e) => error(
            StatusCode::BAD_GATEWAY,
            format!("cannot read the repository's drill records: {e}"),
        ),
    }
}

/// Status and readiness, judged now from the repository's evidence.
async fn assessment(State(d): D) -> Response {
    let Some(cfg) = d.ctx.config.as_ref() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no configuration");
    };
    match lifeboat_ops::assess::gather(cfg, &d.repo, chrono::Utc::now()).await {
        Ok(a) => axum::Json(a).into_response(),
        Err(e) => error(
            StatusCode::BAD_GATEWAY,
            format!("cannot read the repository's evidence: {e:#}"),
        ),
    }
}

/// The status page: open like `/healthz` (it shows no secrets). 502 with an
/// HTML page saying what failed when the repository cannot be read.
async fn page(State(d): D) -> Response {
    let html = |code: StatusCode, body: String| {
        (
            code,
            [(header::CACHE_CONTROL, "no-store")],
            axum::response::Html(body),
        )
            .into_response()
    };
    let Some(cfg) = d.ctx.config.as_ref() else {
        return html(
            StatusCode::SERVICE_UNAVAILABLE,
            super::page::render_error("no configuration: the daemon was started without one"),
        );
    };
    // A repository moved away reads as an empty one: say so instead.
    if let Some(problem) = d.repository_problem().await {
        return html(
            StatusCode::BAD_GATEWAY,
            super::page::render_error(&format!("cannot read the repository: {problem}")),
        );
    }
    match lifeboat_ops::assess::gather(cfg, &d.repo, chrono::Utc::now()).await {
        Ok(a) => html(StatusCode::OK, super::page::render(&a)),
        Err(e) => html(
            StatusCode::BAD_GATEWAY,
            super::page::render_error(&format!("cannot read the repository's evidence: {e:#}")),
        ),
    }
}

#[derive(Deserialize)]
struct BackupQuery {
    /// Wait for the backup to end and answer with its outcome.
    #[serde(default)]
    wait: bool,
    /// A physical base backup (`backup physical --source`) instead of the
    /// source's backup.
    #[serde(default)]
    physical: bool,
}

async fn backup(State(d): D, Path(name): Path<String>, Query(q): Query<BackupQuery>) -> Response {
    let kind = if q.physical {
        RunKind::Physical
    } else {
        RunKind::Backup
    };
    match d.start_run_of(&name, kind, Trigger::Api) {
        Ok(handle) => {
            if !q.wait {
                return (
                    StatusCode::ACCEPTED,
                    axum::Json(json!({
                        "source": name,
                        "started": true,
                        "status": "/api/v1/status",
                    })),
                )
                    .into_response();
            }
            match handle.await {
                Ok(outcome @ Outcome::Succeeded { .. }) => {
                    (StatusCode::CREATED, axum::Json(outcome)).into_response()
                }
                Ok(outcome) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(outcome)).into_response()
                }
                Err(e) => error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("the run failed: {e}"),
                ),
            }
        }
        Err(e @ StartError::Unknown(_)) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e @ StartError::NotPostgres(_)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e @ StartError::Busy(..)) => error(StatusCode::CONFLICT, e.to_string()),
        Err(e @ (StartError::NotActive(_) | StartError::ShuttingDown)) => {
            error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
    }
}

/// `POST /api/v1/failsafe/vouch`: another region's primary, cut off from
/// etcd, asks this daemon to vouch for it (`failover.etcd_lost:
/// keep_if_peers_agree`; lifeboat_region::failsafe has the rules).
async fn failsafe_vouch(State(d): D, axum::Json(req): axum::Json<VouchRequest>) -> Response {
    axum::Json(d.failsafe.vouch(&req)).into_response()
}

/// `POST /api/v1/failsafe/freeze`: a change of primary tells this daemon
/// to vouch no more for the old primary; the answer says when it last did.
async fn failsafe_freeze(State(d): D, axum::Json(req): axum::Json<FreezeRequest>) -> Response {
    axum::Json(d.failsafe.freeze(&req)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_token_must_match_exactly() {
        let mut h = HeaderMap::new();
        assert!(!token_matches(&h, "0123456789abcdef"));
        h.insert(
            header::AUTHORIZATION,
            "Bearer 0123456789abcdef".parse().unwrap(),
        );
        assert!(token_matches(&h, "0123456789abcdef"));
        assert!(!token_matches(&h, "0123456789abcdeF"));
        assert!(!token_matches(&h, "0123456789abcde"));
        h.insert(
            header::AUTHORIZATION,
            "Basic 0123456789abcdef".parse().unwrap(),
        );
        assert!(!token_matches(&h, "0123456789abcdef"));
    }
}
