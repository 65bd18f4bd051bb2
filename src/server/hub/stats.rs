//! The hub's own series: what it counts as it publishes, delivers and resets. The hub updates
//! them; the metrics registry (`server::metrics`) only registers and reads them.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
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
#[derive(Debug)]
pub struct HubStats {
    pub published: Counter,
    pub(crate) published_by_class: Family<ClassLabel, Counter>,
    pub(crate) delivered: Family<ClassLabel, Counter>,
    pub lagged: Counter,
    pub resets: Counter,
    pub(crate) resets_by_reason: Family<ReasonLabel, Counter>,
    /// Seconds from a publish to the moment a subscriber's stream hands the event to its
    /// connection, for one delivery in 16 of each subscriber.
    pub(crate) publish_to_write: Histogram,
    /// Frame bytes held by every topic's history (in memory, or in Redis as this instance last
    /// saw it).
    pub history_bytes: Gauge,
    /// Events that left a history for its byte bounds (`--history-bytes`,
    /// `--history-total-bytes`) rather than its length or age.
    pub history_evicted_for_bytes: Counter,
}

impl Default for HubStats {
    fn default() -> Self {
        Self {
            published: Counter::default(),
            published_by_class: Family::default(),
            delivered: Family::default(),
            lagged: Counter::default(),
            resets: Counter::default(),
            resets_by_reason: Family::default(),
            // 50 µs to about 3.3 s, doubling.
            publish_to_write: Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.000_05, 2.0, 17,
            )),
            history_bytes: Gauge::default(),
            history_evicted_for_bytes: Counter::default(),
        }
    }
}

impl HubStats {
    pub(crate) fn published_as(&self, class: TopicClass) -> Counter {
        self.published_by_class.get_or_create(&ClassLabel { class: class.name() }).clone()
    }

    pub(crate) fn delivered_as(&self, class: TopicClass) -> Counter {
        self.delivered.get_or_create(&ClassLabel { class: class.name() }).clone()
    }
}
