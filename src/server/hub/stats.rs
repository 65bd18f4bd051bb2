//! The hub's own series: what it counts as it publishes, delivers and resets. The hub updates
//! them; the metrics registry (`server::metrics`) only registers and reads them.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet},
    metrics::{counter::Counter, family::Family, gauge::Gauge, MetricType},
};

use crate::server::event::Topic;

/// Which kind of topic an event belongs to; never the topic itself (a private topic names a
/// session).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(crate) enum TopicClass {
    Clock,
    Private,
    Public,
}

impl TopicClass {
    pub(crate) fn of(topic: &Topic) -> Self {
        if topic.is_private() {
            Self::Private
        } else {
            Self::Public
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Clock => "clock",
            Self::Private => "private",
            Self::Public => "public",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ClassLabel {
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabel {
    pub reason: &'static str,
}

/// The hub's own series. The hub updates them; the registry reads them.
#[derive(Debug, Default)]
pub struct HubStats {
    pub published: Counter,
    pub(crate) published_by_class: Family<ClassLabel, Counter>,
    pub(crate) delivered: Family<ClassLabel, Counter>,
    pub lagged: Counter,
    pub resets: Counter,
    pub(crate) resets_by_reason: Family<ReasonLabel, Counter>,
    /// Seconds from a publish to the moment a subscriber's stream hands the event to its
    /// connection, for one delivery in 16 of each subscriber.
    pub(crate) publish_to_write: Latency,
    /// Frame bytes held by every topic's history (in memory, or in Redis as this instance last
    /// saw it).
    pub history_bytes: Gauge,
    /// Events that left a history for its byte bounds (`--history-bytes`,
    /// `--history-total-bytes`) rather than its length or age.
    pub history_evicted_for_bytes: Counter,
}

impl HubStats {
    pub(crate) fn published_as(&self, class: TopicClass) -> Counter {
        self.published_by_class.get_or_create(&ClassLabel { class: class.name() }).clone()
    }

    pub(crate) fn delivered_as(&self, class: TopicClass) -> Counter {
        self.delivered.get_or_create(&ClassLabel { class: class.name() }).clone()
    }
}

/// A histogram of seconds whose bucket counts can be read as well as encoded: the operator
/// stream (`/admin/stats`) computes percentiles from them, and prometheus-client's `Histogram`
/// keeps its buckets to itself. Its buckets run from 50 µs to about 3.3 s, doubling.
/// Cheap to clone: every clone counts into the same buckets.
#[derive(Clone, Debug)]
pub(crate) struct Latency(Arc<LatencyBuckets>);

#[derive(Debug)]
struct LatencyBuckets {
    /// Each bucket's count (not cumulative); the last is the `+Inf` bucket.
    counts: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    /// The sum of every observation, in nanoseconds.
    sum_nanos: AtomicU64,
}

/// The upper bounds of [`Latency`]'s buckets, in seconds.
pub(crate) const LATENCY_BOUNDS: [f64; 17] = {
    let mut bounds = [0.000_05; 17];
    let mut i = 1;
    while i < bounds.len() {
        bounds[i] = bounds[i - 1] * 2.0;
        i += 1;
    }
    bounds
};

impl Default for Latency {
    fn default() -> Self {
        Self(Arc::new(LatencyBuckets {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }))
    }
}

impl Latency {
    pub(crate) fn observe(&self, seconds: f64) {
        let bucket = LATENCY_BOUNDS.partition_point(|bound| *bound < seconds);
        self.0.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.0.sum_nanos.fetch_add((seconds * 1e9) as u64, Ordering::Relaxed);
    }

    /// Each bucket's count so far, `+Inf` last.
    pub(crate) fn counts(&self) -> Vec<u64> {
        self.0.counts.iter().map(|count| count.load(Ordering::Relaxed)).collect()
    }
}

impl EncodeMetric for Latency {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let counts = self.counts();
        let bounds = LATENCY_BOUNDS.iter().copied().chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds.zip(counts.iter().copied()).collect();
        let sum = self.0.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, counts.iter().sum(), &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::registry::Registry;

    use super::*;

    #[test]
    fn latency_counts_each_observation_in_the_first_bucket_that_holds_it() {
        let latency = Latency::default();
        for seconds in [0.000_01, 0.000_05, 0.000_06, 0.003, 10.0] {
            latency.observe(seconds);
        }
        let counts = latency.counts();
        assert_eq!(counts.len(), LATENCY_BOUNDS.len() + 1);
        // 50 µs holds 10 µs and 50 µs itself; 100 µs holds 60 µs; 3.2 ms holds 3 ms.
        assert_eq!((counts[0], counts[1], counts[6]), (2, 1, 1));
        assert_eq!(counts[LATENCY_BOUNDS.len()], 1, "10 s is past the last bound");
        assert!((LATENCY_BOUNDS[16] - 3.2768).abs() < 1e-9);
    }

    #[test]
    fn latency_encodes_as_a_prometheus_histogram_with_cumulative_buckets() {
        let latency = Latency::default();
        latency.observe(0.000_01);
        latency.observe(0.000_07);
        let mut registry = Registry::default();
        registry.register("lat_seconds", "latency", latency);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("# TYPE lat_seconds histogram"), "{text}");
        assert!(text.contains("lat_seconds_count 2"), "{text}");
        assert!(text.contains("lat_seconds_sum 0.00008"), "{text}");
        assert!(text.contains(r#"lat_seconds_bucket{le="0.00005"} 1"#), "{text}");
        assert!(text.contains(r#"lat_seconds_bucket{le="0.0001"} 2"#), "{text}");
        assert!(text.contains(r#"lat_seconds_bucket{le="+Inf"} 2"#), "{text}");
    }
}
