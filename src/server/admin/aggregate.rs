//! From every instance's snapshot to one [`AdminFrame`]: totals become rates by comparing each
//! instance's snapshot with its previous one, the latency histogram's buckets are merged over
//! the last ten seconds into p50 and p99, and the busiest topics of each instance into the
//! cluster's.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::snapshot::{Snapshot, BUSIEST};
use crate::{
    admin::frame::{AdminFrame, InstanceRow, TopicRow},
    server::hub::LATENCY_BOUNDS,
};

/// How many frames the latency percentiles cover: ten seconds, so that a quiet second does not
/// blank the chart and a slow burst stays visible for a while.
const LATENCY_WINDOW: usize = 10;

/// Remembers what it needs of the previous frames.
#[derive(Default)]
pub(super) struct Aggregator {
    /// Each instance's previous snapshot and the rates computed from it.
    previous: HashMap<String, (Snapshot, Rates)>,
    /// The cluster's latency bucket counts gained in each of the last frames.
    latency: VecDeque<Vec<u64>>,
}

/// One instance's rates per second.
#[derive(Clone, Debug, Default)]
struct Rates {
    published: f64,
    delivered: f64,
    lagged: f64,
    resets: BTreeMap<String, f64>,
    rejections: BTreeMap<String, f64>,
}

impl Aggregator {
    /// The frame of this second. `snapshots` are every live instance's, the serving one first;
    /// `topics` is the cluster's topic count.
    pub(super) fn next(&mut self, backend: &str, snapshots: Vec<Snapshot>, topics: u64) -> AdminFrame {
        let mut gained = vec![0; LATENCY_BOUNDS.len() + 1];
        let mut previous = HashMap::with_capacity(snapshots.len());
        let mut frame = AdminFrame {
            at_ms: snapshots.first().map_or(0, |own| own.at_ms),
            backend: backend.to_owned(),
            topics,
            ..AdminFrame::default()
        };
        let (mut by_subscribers, mut by_rate) = (BTreeMap::new(), BTreeMap::new());
        for snapshot in snapshots {
            let rates = match self.previous.remove(&snapshot.id) {
                Some((before, rates)) if before.at_ms == snapshot.at_ms => rates,
                Some((before, _)) if before.at_ms < snapshot.at_ms => {
                    for (total, (now, then)) in
                        gained.iter_mut().zip(snapshot.latency.iter().zip(&before.latency))
                    {
                        *total += now.saturating_sub(*then);
                    }
                    Rates::between(&before, &snapshot)
                }
                // New, or restarted with a clock that went back: no rate until the next second.
                _ => Rates::default(),
            };
            frame.connections += snapshot.connections;
            for (route, open) in &snapshot.streams_by_route {
                *frame.streams_by_route.entry(route.clone()).or_default() += open;
            }
            frame.subscribers += snapshot.subscribers;
            frame.published_per_s += rates.published;
            frame.delivered_per_s += rates.delivered;
            frame.lagged_per_s += rates.lagged;
            add_all(&mut frame.resets_per_s, &rates.resets);
            add_all(&mut frame.rejections_per_s, &rates.rejections);
            for (topic, subscribers) in &snapshot.by_subscribers {
                *by_subscribers.entry(topic.clone()).or_insert(0) += subscribers;
            }
            // On Redis every instance's reader sees every event: the largest count is the
            // topic's, a sum would count it once per instance.
            for (topic, events) in &snapshot.by_rate {
                let known = by_rate.entry(topic.clone()).or_insert(0);
                *known = (*known).max(*events);
            }
            frame.instances.push(InstanceRow {
                id: snapshot.id.clone(),
                memory_bytes: snapshot.memory_bytes,
                connections: snapshot.connections,
                subscribers: snapshot.subscribers,
                published_per_s: rates.published,
                delivered_per_s: rates.delivered,
                redis_up: snapshot.redis_up,
                reader_lag_ms: snapshot.reader_lag_ms,
            });
            previous.insert(snapshot.id.clone(), (snapshot, rates));
        }
        // Instances that are gone are forgotten with their totals.
        self.previous = previous;
        self.latency.push_back(gained);
        if self.latency.len() > LATENCY_WINDOW {
            self.latency.pop_front();
        }
        let window: Vec<u64> = (0..=LATENCY_BOUNDS.len())
            .map(|bucket| self.latency.iter().map(|counts| counts[bucket]).sum())
            .collect();
        frame.latency_p50_ms = percentile(&window, 0.5).map(|seconds| seconds * 1e3);
        frame.latency_p99_ms = percentile(&window, 0.99).map(|seconds| seconds * 1e3);
        let rows = |ranked: Vec<(String, u64)>| -> Vec<TopicRow> {
            ranked
                .into_iter()
                .map(|(topic, _)| TopicRow {
                    subscribers: by_subscribers.get(&topic).copied().unwrap_or(0),
                    events_last_minute: by_rate.get(&topic).copied().unwrap_or(0),
                    topic,
                })
                .collect()
        };
        frame.top_by_subscribers = rows(busiest(&by_subscribers));
        frame.top_by_rate = rows(busiest(&by_rate));
        frame
    }
}

impl Rates {
    fn between(before: &Snapshot, now: &Snapshot) -> Self {
        let seconds = (now.at_ms - before.at_ms) as f64 / 1e3;
        let rate = |now: u64, then: u64| now.saturating_sub(then) as f64 / seconds;
        let rates = |now: &BTreeMap<String, u64>, then: &BTreeMap<String, u64>| {
            now.iter()
                .map(|(key, count)| (key.clone(), rate(*count, then.get(key).copied().unwrap_or(0))))
                .collect()
        };
        Self {
            published: rate(now.published, before.published),
            delivered: rate(now.delivered, before.delivered),
            lagged: rate(now.lagged, before.lagged),
            resets: rates(&now.resets, &before.resets),
            rejections: rates(&now.rejections, &before.rejections),
        }
    }
}

fn add_all(into: &mut BTreeMap<String, f64>, rates: &BTreeMap<String, f64>) {
    for (key, rate) in rates {
        *into.entry(key.clone()).or_default() += rate;
    }
}

/// The [`BUSIEST`] topics with the highest counts, highest first (ties by name); none with 0.
fn busiest(counts: &BTreeMap<String, u64>) -> Vec<(String, u64)> {
    let mut ranked: Vec<(String, u64)> = counts
        .iter()
        .filter(|(_, count)| **count > 0)
        .map(|(topic, count)| (topic.clone(), *count))
        .collect();
    ranked.sort_by(|(a, x), (b, y)| y.cmp(x).then_with(|| a.cmp(b)));
    ranked.truncate(BUSIEST);
    ranked
}

/// The `q` quantile of a histogram's bucket counts (`LATENCY_BOUNDS`, then `+Inf`), in seconds,
/// interpolated within its bucket as Prometheus's `histogram_quantile` does; a quantile in the
/// `+Inf` bucket is the last bound. `None` for an empty histogram.
fn percentile(counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0;
    for (bucket, &count) in counts.iter().enumerate() {
        if count > 0 && (below + count) as f64 >= rank {
            let Some(&upper) = LATENCY_BOUNDS.get(bucket) else {
                return LATENCY_BOUNDS.last().copied();
            };
            let lower = if bucket == 0 { 0.0 } else { LATENCY_BOUNDS[bucket - 1] };
            return Some(lower + (upper - lower) * (rank - below as f64) / count as f64);
        }
        below += count;
    }
    LATENCY_BOUNDS.last().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(id: &str, at_ms: u64, published: u64) -> Snapshot {
        Snapshot {
            id: id.to_owned(),
            at_ms,
            published,
            delivered: published * 10,
            latency: vec![0; LATENCY_BOUNDS.len() + 1],
            ..Snapshot::default()
        }
    }

    #[test]
    fn rates_come_from_each_instances_totals_over_its_own_interval_and_add_up() {
        let mut aggregator = Aggregator::default();
        let first = aggregator.next("redis", vec![snapshot("a", 1_000, 100), snapshot("b", 1_200, 7)], 3);
        assert_eq!(first.published_per_s, 0.0, "no rate before a second snapshot");
        assert_eq!((first.instances.len(), first.topics), (2, 3));

        let second = aggregator.next("redis", vec![snapshot("a", 2_000, 150), snapshot("b", 3_200, 27)], 3);
        // a: 50 in 1 s; b: 20 in 2 s.
        assert_eq!(second.published_per_s, 60.0);
        assert_eq!(second.delivered_per_s, 600.0);
        assert_eq!(second.instances[1].published_per_s, 10.0);
    }

    #[test]
    fn an_instance_that_did_not_write_again_keeps_its_rate_and_a_restarted_one_starts_over() {
        let mut aggregator = Aggregator::default();
        aggregator.next("redis", vec![snapshot("a", 1_000, 0)], 0);
        assert_eq!(aggregator.next("redis", vec![snapshot("a", 2_000, 10)], 0).published_per_s, 10.0);
        // The same snapshot read twice: the rate stands, nothing is counted twice.
        assert_eq!(aggregator.next("redis", vec![snapshot("a", 2_000, 10)], 0).published_per_s, 10.0);
        // Gone for a frame, then back: it starts over rather than rating from old totals.
        aggregator.next("redis", vec![], 0);
        assert_eq!(aggregator.next("redis", vec![snapshot("a", 9_000, 500)], 0).published_per_s, 0.0);
    }

    #[test]
    fn resets_and_rejections_are_rated_by_reason_and_status_across_instances() {
        let mut aggregator = Aggregator::default();
        let with = |id, at_ms, resets: u64, rejections: u64| Snapshot {
            resets: BTreeMap::from([("expired".to_owned(), resets)]),
            rejections: BTreeMap::from([("401".to_owned(), rejections)]),
            ..snapshot(id, at_ms, 0)
        };
        aggregator.next("redis", vec![with("a", 0, 1, 0), with("b", 0, 0, 5)], 0);
        let frame = aggregator.next("redis", vec![with("a", 1_000, 4, 2), with("b", 1_000, 1, 5)], 0);
        assert_eq!(frame.resets_per_s["expired"], 4.0);
        assert_eq!(frame.rejections_per_s["401"], 2.0);
    }

    #[test]
    fn latency_percentiles_merge_every_instances_new_observations_over_ten_seconds() {
        let mut aggregator = Aggregator::default();
        let with_latency = |id: &str, at_ms, fast: u64, slow: u64| {
            let mut snapshot = snapshot(id, at_ms, 0);
            snapshot.latency[0] = fast; // ≤ 50 µs
            snapshot.latency[10] = slow; // 25.6 to 51.2 ms
            snapshot
        };
        // Totals from before the page was watching are not counted.
        aggregator.next("redis", vec![with_latency("a", 0, 1_000, 1_000)], 0);
        let frame = aggregator.next("redis", vec![with_latency("a", 1_000, 1_098, 1_002)], 0);
        let (p50, p99) = (frame.latency_p50_ms.unwrap(), frame.latency_p99_ms.unwrap());
        assert!(p50 <= 0.05, "98 of 100 new observations are under 50 µs: p50 {p50} ms");
        assert!((25.6..=51.2).contains(&p99), "the slowest 2 are 25.6–51.2 ms: p99 {p99} ms");
        // Quiet seconds keep the window's figures until it has moved past them.
        for second in 2..=10 {
            let frame = aggregator.next("redis", vec![with_latency("a", second * 1_000, 1_098, 1_002)], 0);
            assert!(frame.latency_p99_ms.is_some(), "second {second}");
        }
        let frame = aggregator.next("redis", vec![with_latency("a", 11_000, 1_098, 1_002)], 0);
        assert_eq!(frame.latency_p99_ms, None);
    }

    #[test]
    fn the_busiest_topics_add_subscribers_across_instances_and_take_the_largest_event_count() {
        let mut aggregator = Aggregator::default();
        let busy = |id: &str, subscribers: Vec<(&str, u64)>, events: Vec<(&str, u64)>| Snapshot {
            by_subscribers: subscribers.into_iter().map(|(t, n)| (t.to_owned(), n)).collect(),
            by_rate: events.into_iter().map(|(t, n)| (t.to_owned(), n)).collect(),
            ..snapshot(id, 0, 0)
        };
        let frame = aggregator.next(
            "redis",
            vec![
                busy("a", vec![("news", 5), ("chat", 1)], vec![("chat", 90), ("news", 3)]),
                busy("b", vec![("chat", 7)], vec![("chat", 90), ("news", 4)]),
            ],
            2,
        );
        let top: Vec<_> =
            frame.top_by_subscribers.iter().map(|row| (row.topic.as_str(), row.subscribers)).collect();
        assert_eq!(top, vec![("chat", 8), ("news", 5)]);
        let top: Vec<_> =
            frame.top_by_rate.iter().map(|row| (row.topic.as_str(), row.events_last_minute)).collect();
        assert_eq!(top, vec![("chat", 90), ("news", 4)]);
    }

    #[test]
    fn a_percentile_is_interpolated_within_its_bucket_and_empty_is_none() {
        let mut counts = vec![0; LATENCY_BOUNDS.len() + 1];
        assert_eq!(percentile(&counts, 0.5), None);
        counts[1] = 4; // 50 to 100 µs
        let p50 = percentile(&counts, 0.5).unwrap();
        assert!((p50 - 0.000_075).abs() < 1e-9, "{p50}");
        counts[LATENCY_BOUNDS.len()] = 100; // past the last bound
        assert_eq!(percentile(&counts, 0.99), LATENCY_BOUNDS.last().copied());
    }
}
