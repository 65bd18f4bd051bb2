//! What the operator stream (`/admin/stats`) sends once a second: one `stats` event whose data
//! is an [`AdminFrame`], the whole cluster as the serving instance sees it. Shared by the server
//! that writes it and the page that charts it, so the two cannot drift apart.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::protocol::{ShutdownNotice, StreamEvent, SHUTDOWN_EVENT};

/// The event name of each frame.
pub const STATS_EVENT: &str = "stats";

/// The cluster in one second. Rates are per second over the second before the frame; the
/// latency percentiles cover the ten seconds before it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AdminFrame {
    /// When the serving instance made the frame, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// `memory` or `redis`.
    pub backend: String,
    /// Every live instance, the serving one first.
    pub instances: Vec<InstanceRow>,
    pub connections: u64,
    /// Open streams by route (`/remote`, `/events`, `/admin/stats`).
    pub streams_by_route: BTreeMap<String, u64>,
    pub subscribers: u64,
    /// Topics with a history (in Redis), or with a history or a subscriber (in memory).
    pub topics: u64,
    pub published_per_s: f64,
    pub delivered_per_s: f64,
    /// From a publish to the subscriber's stream writing it, in milliseconds; `None` while no
    /// event was delivered in the window.
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    /// Streams opened with a reset, by reason.
    pub resets_per_s: BTreeMap<String, f64>,
    /// Subscribers dropped for a full queue.
    pub lagged_per_s: f64,
    /// Answers with a 4xx or 5xx status, by status.
    pub rejections_per_s: BTreeMap<String, f64>,
    pub top_by_subscribers: Vec<TopicRow>,
    pub top_by_rate: Vec<TopicRow>,
}

/// One instance's line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceRow {
    pub id: String,
    /// Resident memory; `None` where the system does not say (outside Linux).
    pub memory_bytes: Option<u64>,
    pub connections: u64,
    pub subscribers: u64,
    pub published_per_s: f64,
    pub delivered_per_s: f64,
    /// Whether Redis answered its last command, and how far behind the shared log its reader
    /// is; `None` on memory.
    pub redis_up: Option<bool>,
    pub reader_lag_ms: Option<i64>,
}

/// A busy topic: subscribers on every instance, and events in the last minute.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRow {
    pub topic: String,
    pub subscribers: u64,
    pub events_last_minute: u64,
}

/// Everything the operator stream can carry, decoded.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub enum AdminEvent {
    Stats(Box<AdminFrame>),
    Shutdown(ShutdownNotice),
}

impl StreamEvent for AdminEvent {
    const NAMES: &'static [&'static str] = &[STATS_EVENT, SHUTDOWN_EVENT];

    fn decode(name: &str, data: &str) -> Result<Self, String> {
        let json_error = |err: serde_json::Error| format!("a {name} event did not parse ({err}): {data}");
        match name {
            STATS_EVENT => serde_json::from_str(data).map(Self::Stats).map_err(json_error),
            SHUTDOWN_EVENT => serde_json::from_str(data).map(Self::Shutdown).map_err(json_error),
            other => Err(format!("unexpected event {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_decodes_from_what_the_server_writes_and_anything_else_says_what_did_not_fit() {
        let frame = AdminFrame {
            backend: "redis".into(),
            latency_p99_ms: Some(1.5),
            top_by_rate: vec![TopicRow { topic: "news".into(), subscribers: 2, events_last_minute: 9 }],
            ..AdminFrame::default()
        };
        let data = serde_json::to_string(&frame).unwrap();
        assert_eq!(AdminEvent::decode(STATS_EVENT, &data), Ok(AdminEvent::Stats(Box::new(frame))));
        let shutdown = serde_json::to_string(&ShutdownNotice::default()).unwrap();
        assert_eq!(
            AdminEvent::decode(SHUTDOWN_EVENT, &shutdown),
            Ok(AdminEvent::Shutdown(ShutdownNotice::default()))
        );
        assert!(AdminEvent::decode(STATS_EVENT, "{}").unwrap_err().contains("did not parse"));
        assert!(AdminEvent::decode("tick", "x").unwrap_err().contains("unexpected event tick"));
    }
}
