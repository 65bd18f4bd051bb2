//! `GET /metrics`: this instance's series in the OpenMetrics text format, which Prometheus reads.

use std::sync::Arc;

use axum::{extract::State, http::header, response::IntoResponse};

use crate::server::{hub::Hub, metrics::Metrics, sse::Streams};

pub(crate) async fn metrics(
    State(metrics): State<Metrics>,
    State(hub): State<Arc<Hub>>,
    State(streams): State<Streams>,
) -> impl IntoResponse {
    // These gauges are read from their sources when scraped, so they are never stale.
    metrics.streams_open.set(streams.open_count() as i64);
    metrics.subscribers.set(hub.subscribers() as i64);
    metrics.topics.set(hub.topics() as i64);
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], metrics.render())
}
