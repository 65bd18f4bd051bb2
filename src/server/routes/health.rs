//! `GET /healthz` (alive) and `GET /readyz` (ready to take traffic), for load balancers and the
//! container's HEALTHCHECK.

use axum::{extract::State, http::StatusCode, Json};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

pub(crate) async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Whether this instance should get new traffic (a sub-state): not while it shuts down.
#[derive(Clone)]
pub(crate) struct Readiness {
    shutdown: CancellationToken,
}

impl Readiness {
    pub(crate) fn new(shutdown: CancellationToken) -> Self {
        Self { shutdown }
    }
}

/// 200 while serving; 503 once shutting down, so that a load balancer sends new clients
/// elsewhere while open streams drain.
pub(crate) async fn ready(State(readiness): State<Readiness>) -> (StatusCode, Json<Value>) {
    if readiness.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "shutting-down" })))
    } else {
        (StatusCode::OK, Json(json!({ "status": "ready" })))
    }
}
