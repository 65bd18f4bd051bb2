//! `GET /metrics`: this instance's counters and gauges, in the Prometheus text format.
//!
//! The numbers live in the hub and the stream limiter, per instance; rendering five of them does
//! not need a global recorder, which would also mix up the many servers a test process runs.

use std::{
    fmt::Write,
    sync::{atomic::Ordering, Arc},
};

use axum::{extract::State, http::header, response::IntoResponse};

use crate::server::{hub::Hub, sse::Streams};

pub(crate) async fn metrics(
    State(hub): State<Arc<Hub>>,
    State(streams): State<Streams>,
) -> impl IntoResponse {
    let stats = &hub.stats;
    let mut text = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = write!(text, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n");
    };
    metric(
        "herald_streams_open",
        "gauge",
        "Open SSE streams (/remote and /events).",
        streams.open_count() as u64,
    );
    metric("herald_subscribers", "gauge", "Subscriptions registered in the hub.", hub.subscribers() as u64);
    metric(
        "herald_events_published_total",
        "counter",
        "Events published.",
        stats.published.load(Ordering::Relaxed),
    );
    metric(
        "herald_subscribers_lagged_total",
        "counter",
        "Subscribers dropped because their queue was full.",
        stats.lagged.load(Ordering::Relaxed),
    );
    metric(
        "herald_resets_total",
        "counter",
        "Streams opened with a reset instead of an exact replay.",
        stats.resets.load(Ordering::Relaxed),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
