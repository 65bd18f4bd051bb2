//! How many events each topic had in the last minute, as this instance saw them go by: every
//! event published here (memory), or read from the shared log (Redis, where every instance's
//! reader sees every event). Six buckets of ten seconds a topic, so the window is between 50 and
//! 60 seconds; an instance counts from its start.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use parking_lot::Mutex;

use crate::server::event::Topic;

const BUCKET: Duration = Duration::from_secs(10);
const BUCKETS: u64 = 6;

pub(super) struct Rates {
    start: Instant,
    topics: Mutex<HashMap<Topic, Buckets>>,
}

/// The counts of the last [`BUCKETS`] buckets, by bucket number modulo [`BUCKETS`].
#[derive(Default)]
struct Buckets {
    counts: [u64; BUCKETS as usize],
    /// The number of the newest bucket counted into.
    newest: u64,
}

impl Buckets {
    /// Moves the window to bucket `now`, emptying the buckets it passes.
    fn advance(&mut self, now: u64) {
        for passed in (self.newest + 1)..=now.min(self.newest + BUCKETS) {
            self.counts[(passed % BUCKETS) as usize] = 0;
        }
        self.newest = self.newest.max(now);
    }
}

impl Rates {
    pub(super) fn new() -> Self {
        Self { start: Instant::now(), topics: Mutex::default() }
    }

    fn bucket(&self, at: Instant) -> u64 {
        (at.saturating_duration_since(self.start).as_secs() / BUCKET.as_secs()) + BUCKETS
    }

    /// Counts one event of `topic` at `at`.
    pub(super) fn count(&self, topic: &Topic, at: Instant) {
        let bucket = self.bucket(at);
        let mut topics = self.topics.lock();
        let buckets = match topics.get_mut(topic) {
            Some(buckets) => buckets,
            None => topics
                .entry(topic.clone())
                .or_insert_with(|| Buckets { newest: bucket, ..Buckets::default() }),
        };
        buckets.advance(bucket);
        buckets.counts[(bucket % BUCKETS) as usize] += 1;
    }

    /// The events of `topic` in the minute before `at`.
    pub(super) fn last_minute(&self, topic: &Topic, at: Instant) -> u64 {
        let bucket = self.bucket(at);
        let mut topics = self.topics.lock();
        topics.get_mut(topic).map_or(0, |buckets| {
            buckets.advance(bucket);
            buckets.counts.iter().sum()
        })
    }

    /// The `n` topics with the most events in the minute before `at`, most first.
    pub(super) fn busiest(&self, n: usize, at: Instant) -> Vec<(Topic, u64)> {
        let bucket = self.bucket(at);
        let mut topics = self.topics.lock();
        let counts = topics.iter_mut().filter_map(|(topic, buckets)| {
            buckets.advance(bucket);
            let count: u64 = buckets.counts.iter().sum();
            (count > 0).then_some((topic, count))
        });
        let mut busiest: Vec<(Topic, u64)> =
            super::fanout::most(counts, n).into_iter().map(|(topic, count)| (topic.clone(), count)).collect();
        drop(topics);
        busiest.sort_unstable_by(|(a, x), (b, y)| y.cmp(x).then_with(|| a.cmp(b)));
        busiest
    }

    /// Forgets the topics with no event in the minute before `at`, so that a crowd of one-off
    /// topics pins no memory.
    pub(super) fn forget_idle(&self, at: Instant) {
        let bucket = self.bucket(at);
        self.topics.lock().retain(|_, buckets| buckets.newest + BUCKETS > bucket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str) -> Topic {
        Topic::parse(name).unwrap()
    }

    #[test]
    fn events_count_for_a_minute_then_leave_the_window_ten_seconds_at_a_time() {
        let rates = Rates::new();
        let t0 = rates.start;
        let (a, b) = (topic("a"), topic("b"));
        for _ in 0..3 {
            rates.count(&a, t0);
        }
        rates.count(&a, t0 + Duration::from_secs(25));
        rates.count(&b, t0 + Duration::from_secs(25));

        assert_eq!(rates.last_minute(&a, t0 + Duration::from_secs(30)), 4);
        assert_eq!(rates.last_minute(&b, t0 + Duration::from_secs(30)), 1);
        // The first bucket leaves the window once six newer ones have begun.
        assert_eq!(rates.last_minute(&a, t0 + Duration::from_secs(59)), 4);
        assert_eq!(rates.last_minute(&a, t0 + Duration::from_secs(60)), 1);
        assert_eq!(rates.last_minute(&a, t0 + Duration::from_secs(90)), 0);
        assert_eq!(rates.last_minute(&topic("never"), t0), 0);
    }

    #[test]
    fn a_topic_quiet_for_a_minute_is_forgotten_and_a_busy_one_kept() {
        let rates = Rates::new();
        let t0 = rates.start;
        rates.count(&topic("quiet"), t0);
        rates.count(&topic("busy"), t0 + Duration::from_secs(55));
        rates.forget_idle(t0 + Duration::from_secs(65));
        assert_eq!(rates.topics.lock().len(), 1);
        assert_eq!(rates.last_minute(&topic("busy"), t0 + Duration::from_secs(65)), 1);
    }

    #[test]
    fn the_busiest_topics_are_those_with_the_most_events_in_the_window() {
        let rates = Rates::new();
        let t0 = rates.start;
        for (name, events) in [("a", 3), ("b", 5), ("c", 1), ("d", 5)] {
            for _ in 0..events {
                rates.count(&topic(name), t0);
            }
        }
        rates.count(&topic("old"), t0);
        let busiest = rates.busiest(3, t0 + Duration::from_secs(5));
        assert_eq!(busiest, vec![(topic("b"), 5), (topic("d"), 5), (topic("a"), 3)]);
        // A minute later every count has left the window, and no topic is busy.
        assert_eq!(rates.busiest(3, t0 + Duration::from_secs(70)), vec![]);
    }

    #[test]
    fn a_long_silence_empties_every_bucket_without_walking_them_all() {
        let rates = Rates::new();
        let t0 = rates.start;
        rates.count(&topic("a"), t0);
        let much_later = t0 + Duration::from_secs(10 * 3600);
        rates.count(&topic("a"), much_later);
        assert_eq!(rates.last_minute(&topic("a"), much_later), 1);
    }
}
