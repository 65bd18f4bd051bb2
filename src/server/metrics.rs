//! This instance's metrics: a prometheus-client registry per server (no global recorder, so the
//! many servers of one test process never mix their numbers), the series it holds, and the
//! middleware that counts refusals by status.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, info::Info},
    registry::Registry,
};

use super::hub::{HubStats, ReaderStats};
use super::redis::HealthSeries;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabel {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: u16,
}

/// The registry and the series that are not the hub's.
#[derive(Clone)]
pub(crate) struct Metrics {
    registry: Arc<Registry>,
    /// Set when scraped, from the stream limit and the hub.
    pub streams_open: Gauge,
    pub subscribers: Gauge,
    pub topics: Gauge,
    pub streams_by_route: Family<RouteLabel, Gauge>,
    pub connections_opened: Counter,
    pub connections_closed: Counter,
    rejections: Family<StatusLabel, Counter>,
    /// The statuses counted so far, so that the operator page can read every count (a family
    /// cannot list its members).
    rejected_statuses: Arc<parking_lot::Mutex<BTreeSet<u16>>>,
}

/// The series of the Redis backend, registered only when it is configured.
#[derive(Clone, Default)]
pub(crate) struct RedisSeries {
    pub health: HealthSeries,
    pub reader: ReaderStats,
}

impl Metrics {
    pub(crate) fn new(hub: &HubStats, redis: Option<&RedisSeries>) -> Self {
        let metrics = Self {
            registry: Arc::default(),
            streams_open: Gauge::default(),
            subscribers: Gauge::default(),
            topics: Gauge::default(),
            streams_by_route: Family::default(),
            connections_opened: Counter::default(),
            connections_closed: Counter::default(),
            rejections: Family::default(),
            rejected_statuses: Arc::default(),
        };
        let mut registry = Registry::default();
        registry.register(
            "herald_streams_open",
            "Open SSE streams (/remote and /events)",
            metrics.streams_open.clone(),
        );
        registry.register(
            "herald_subscribers",
            "Subscriptions registered in the hub",
            metrics.subscribers.clone(),
        );
        registry.register("herald_events_published", "Events published", hub.published.clone());
        registry.register(
            "herald_subscribers_lagged",
            "Subscribers dropped because their queue was full",
            hub.lagged.clone(),
        );
        registry.register(
            "herald_resets",
            "Streams opened with a reset instead of an exact replay",
            hub.resets.clone(),
        );
        registry.register(
            "herald_topics",
            "Topics the hub holds a history or subscribers for; idle ones are forgotten",
            metrics.topics.clone(),
        );
        registry.register(
            "herald_streams_open_by_route",
            "Open SSE streams by route",
            metrics.streams_by_route.clone(),
        );
        registry.register(
            "herald_connections_opened",
            "Connections accepted",
            metrics.connections_opened.clone(),
        );
        registry.register(
            "herald_connections_closed",
            "Connections closed",
            metrics.connections_closed.clone(),
        );
        registry.register(
            "herald_events_published_by_class",
            "Events published, by topic class (clock ticks, private session topics, public topics)",
            hub.published_by_class.clone(),
        );
        registry.register(
            "herald_events_delivered",
            "Live events handed to a subscriber's stream, by topic class",
            hub.delivered.clone(),
        );
        registry.register(
            "herald_resets_by_reason",
            "Streams opened with a reset, by reason",
            hub.resets_by_reason.clone(),
        );
        registry.register(
            "herald_rejections",
            "Answers with a 4xx or 5xx status, by status",
            metrics.rejections.clone(),
        );
        registry.register(
            "herald_publish_to_write_seconds",
            "From a publish to the subscriber's stream handing the event to its connection",
            hub.publish_to_write.clone(),
        );
        registry.register(
            "herald_history_bytes",
            "Bytes of SSE frames held by every topic's history",
            hub.history_bytes.clone(),
        );
        registry.register(
            "herald_history_evicted_for_bytes",
            "Events that left a topic's history for its byte bounds (per topic or in total)",
            hub.history_evicted_for_bytes.clone(),
        );
        if let Some(redis) = redis {
            registry.register(
                "herald_redis_up",
                "1 while Redis answers, 0 while it is unavailable (a refused or dropped connection, an error, or a late reply followed by an unanswered probe)",
                redis.health.up.clone(),
            );
            registry.register(
                "herald_redis_slow_replies",
                "Replies from Redis later than their timeout while it counted as up: that command failed, and a probe decided whether Redis is down",
                redis.health.slow_replies.clone(),
            );
            registry.register(
                "herald_redis_failovers",
                "Times the Sentinels named another Redis primary and every connection moved to it",
                redis.health.failovers.clone(),
            );
            registry.register(
                "herald_redis_reader_lag_milliseconds",
                "From Redis taking the latest event to this instance's reader reading it (includes any clock difference between the hosts)",
                redis.reader.lag_ms.clone(),
            );
        }
        registry.register(
            "herald_build",
            "This build of Herald",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        Self { registry: Arc::new(registry), ..metrics }
    }

    /// The answers with a 4xx or 5xx status so far, by status.
    pub(crate) fn rejections_by_status(&self) -> BTreeMap<u16, u64> {
        let statuses = self.rejected_statuses.lock().clone();
        statuses
            .into_iter()
            .map(|status| (status, self.rejections.get_or_create(&StatusLabel { status }).get()))
            .collect()
    }

    /// The OpenMetrics text of every series.
    pub(crate) fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String");
        text
    }
}

/// Middleware: counts every answer with a 4xx or 5xx status.
pub(crate) async fn count_rejections(
    State(metrics): State<Metrics>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if status.is_client_error() || status.is_server_error() {
        let status = status.as_u16();
        metrics.rejections.get_or_create(&StatusLabel { status }).inc();
        metrics.rejected_statuses.lock().insert(status);
    }
    response
}
