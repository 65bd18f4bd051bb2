//! `GET /healthz` (alive) and `GET /readyz` (ready to take traffic), for load balancers and the
//! container's HEALTHCHECK.

use axum::{extract::State, http::StatusCode, Json};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::server::backend::Backend;

pub(crate) async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Whether this instance should get new traffic (a sub-state): not while it shuts down, nor
/// while its Redis (if it has one) does not answer.
#[derive(Clone)]
pub(crate) struct Readiness {
    shutdown: CancellationToken,
    backend: Backend,
}

impl Readiness {
    pub(crate) fn new(shutdown: CancellationToken, backend: Backend) -> Self {
        Self { shutdown, backend }
    }
}

/// 200 while serving; 503 once shutting down, so that a load balancer sends new clients
/// elsewhere while open streams drain, and 503 while Redis is unavailable, when this instance
/// could neither publish nor replay. Redis's state is the one its connection keeps: a probe sends
/// Redis nothing, however often it comes.
pub(crate) async fn ready(State(readiness): State<Readiness>) -> (StatusCode, Json<Value>) {
    if readiness.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "shutting-down" })));
    }
    if !readiness.backend.is_up() {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "redis-unavailable" })));
    }
    (StatusCode::OK, Json(json!({ "status": "ready" })))
}
