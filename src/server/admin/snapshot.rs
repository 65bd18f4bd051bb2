//! One instance's numbers for the operator page: read from the hub, the metrics and the backend
//! once a second, and shared with the other instances as JSON. Counters are totals since the
//! instance started; the aggregator turns them into rates.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    protocol::ResetReason,
    server::{
        backend::Backend,
        hub::{Hub, ReasonLabel, TopicClass},
        metrics::{Metrics, RouteLabel},
    },
};

/// How many of its busiest topics each instance tells.
pub(super) const BUSIEST: usize = 10;

/// The stream routes whose open streams are counted.
pub(super) const STREAM_ROUTES: [&str; 3] = ["/remote", "/events", "/admin/stats"];

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Snapshot {
    pub id: String,
    /// When it was taken, by this instance's clock, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub memory_bytes: Option<u64>,
    pub connections: u64,
    pub streams_by_route: BTreeMap<String, u64>,
    pub subscribers: u64,
    pub topics: u64,
    pub published: u64,
    pub delivered: u64,
    pub lagged: u64,
    pub resets: BTreeMap<String, u64>,
    pub rejections: BTreeMap<String, u64>,
    /// The publish→write histogram's bucket counts (`hub::LATENCY_BOUNDS`, then `+Inf`).
    pub latency: Vec<u64>,
    pub redis_up: Option<bool>,
    pub reader_lag_ms: Option<i64>,
    /// The busiest topics here, by subscribers and by events in the last minute.
    pub by_subscribers: Vec<(String, u64)>,
    pub by_rate: Vec<(String, u64)>,
}

impl Snapshot {
    pub(super) fn take(hub: &Hub, metrics: &Metrics, backend: &Backend, at_ms: u64) -> Self {
        let stats = &hub.stats;
        let busiest = hub.busiest(BUSIEST);
        let redis = backend.redis_series();
        Self {
            id: hub.instance().to_owned(),
            at_ms,
            memory_bytes: resident_bytes(),
            connections: metrics.connections_opened.get().saturating_sub(metrics.connections_closed.get()),
            streams_by_route: STREAM_ROUTES
                .iter()
                .map(|&route| {
                    let open = metrics.streams_by_route.get_or_create(&RouteLabel { route }).get();
                    (route.to_owned(), open.max(0) as u64)
                })
                .collect(),
            subscribers: hub.subscribers() as u64,
            topics: hub.topics() as u64,
            published: stats.published.get(),
            delivered: [TopicClass::Clock, TopicClass::Private, TopicClass::Public]
                .into_iter()
                .map(|class| stats.delivered_as(class).get())
                .sum(),
            lagged: stats.lagged.get(),
            resets: ResetReason::ALL
                .into_iter()
                .map(|reason| {
                    let count =
                        stats.resets_by_reason.get_or_create(&ReasonLabel { reason: reason.name() }).get();
                    (reason.name().to_owned(), count)
                })
                .filter(|(_, count)| *count > 0)
                .collect(),
            rejections: metrics
                .rejections_by_status()
                .into_iter()
                .map(|(status, count)| (status.to_string(), count))
                .collect(),
            latency: stats.publish_to_write.counts(),
            redis_up: redis.map(|series| series.health.up.get() == 1),
            reader_lag_ms: redis.map(|series| series.reader.lag_ms.get()),
            by_subscribers: busiest
                .by_subscribers
                .into_iter()
                .map(|(topic, count)| (topic.as_str().to_owned(), count as u64))
                .collect(),
            by_rate: busiest
                .by_rate
                .into_iter()
                .map(|(topic, count)| (topic.as_str().to_owned(), count))
                .collect(),
        }
    }
}

/// This process's resident memory, from `/proc/self/status` (Linux); `None` elsewhere.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|line| line.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            let bytes = resident_bytes().expect("/proc/self/status has VmRSS");
            // This test process holds at least a megabyte and less than the machine.
            assert!((1 << 20..1 << 40).contains(&bytes), "{bytes}");
        }
    }
}
