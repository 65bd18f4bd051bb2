//! `GET /healthz`: liveness for load balancers and the container's HEALTHCHECK.

use axum::Json;
use serde_json::{json, Value};

pub(crate) async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}
