//! This instance's subscribers: which topics each follows, and a bounded queue each, into which
//! published frames are handed without ever waiting.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, OnceLock},
    time::Instant,
};

use bytes::Bytes;
use parking_lot::Mutex;

use super::queue::{self, Receiver, Refused, Sender};
use crate::server::event::{self, EventId, Topic};

/// A frame on its way to its subscribers, shared by all of them: its id, to tell it from a
/// replayed one, and when it was published, for the latency histogram.
pub(super) struct Frame {
    pub bytes: Bytes,
    pub id: EventId,
    pub published: Instant,
    /// The topic it was published to; none for a notice to every subscriber.
    pub topic: Option<Topic>,
    /// The frame with its topic line, made by the first subscriber that asks for topics and
    /// shared by the others: subscribers that do not ask cost nothing.
    with_topic: OnceLock<Bytes>,
}

impl Frame {
    /// The frame as a subscriber that asked for topics gets it: see [`event::with_topic_line`].
    pub(super) fn with_topic(&self) -> Bytes {
        match &self.topic {
            None => self.bytes.clone(),
            Some(topic) => self.with_topic.get_or_init(|| event::with_topic_line(&self.bytes, topic)).clone(),
        }
    }
}

/// What one subscriber's queue holds: a pointer to the shared frame, eight bytes a slot, where
/// the frame itself would make a queue's buffer 8 times larger.
pub(super) type LiveFrame = Arc<Frame>;

/// The local subscribers (cheap to clone).
#[derive(Clone, Default)]
pub(super) struct Fanout(Arc<Mutex<Subscribers>>);

#[derive(Default)]
struct Subscribers {
    next_key: u64,
    /// Each subscriber's topics, to leave them when it goes, its queue, and who it is.
    members: HashMap<u64, Member>,
    /// Each topic's subscribers and their queues, side by side for a fast fan-out.
    by_topic: HashMap<Topic, Vec<(u64, Sender<LiveFrame>)>>,
    /// Grows with every join and leave: a presence snapshot taken at the same generation is
    /// still true.
    generation: u64,
}

struct Member {
    topics: Vec<Topic>,
    queue: Sender<LiveFrame>,
    /// The `sub` of the subscriber's token; `None` for an anonymous subscriber.
    who: Option<Arc<str>>,
}

/// Who follows one topic here: how many subscribers, and the connections of each `sub`
/// (anonymous subscribers are counted, not listed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TopicPresence {
    pub connections: usize,
    pub subs: BTreeMap<Arc<str>, usize>,
}

/// What one delivery did.
pub(super) struct Delivered {
    /// How many subscribers took the frame.
    pub taken: usize,
    /// How many were dropped for a full queue.
    pub too_slow: usize,
}

impl Fanout {
    /// Adds a subscriber of `topics` with a queue of `queue_len` frames; it receives every frame
    /// delivered to those topics from now on.
    pub(super) fn join(
        &self,
        topics: Vec<Topic>,
        who: Option<Arc<str>>,
        queue_len: usize,
    ) -> (u64, Receiver<LiveFrame>) {
        let (queue, receiver) = queue::queue(queue_len);
        let mut subscribers = self.0.lock();
        let key = subscribers.next_key;
        subscribers.next_key += 1;
        subscribers.generation += 1;
        for topic in &topics {
            subscribers.by_topic.entry(topic.clone()).or_default().push((key, queue.clone()));
        }
        subscribers.members.insert(key, Member { topics, queue, who });
        (key, receiver)
    }

    pub(super) fn leave(&self, key: u64) {
        self.0.lock().remove(key);
    }

    /// Hands `frame` to every subscriber of `topic` that has room; a subscriber whose queue is
    /// full is dropped, so that its stream ends and its client resumes with `Last-Event-ID`.
    pub(super) fn deliver(&self, topic: &Topic, id: EventId, bytes: &Bytes, published: Instant) -> Delivered {
        let mut subscribers = self.0.lock();
        let Some(queues) = subscribers.by_topic.get(topic) else {
            return Delivered { taken: 0, too_slow: 0 };
        };
        let frame = Arc::new(Frame {
            bytes: bytes.clone(),
            id,
            published,
            topic: Some(topic.clone()),
            with_topic: OnceLock::new(),
        });
        let mut taken = 0;
        let mut too_slow = vec![];
        for (key, queue) in queues {
            match queue.try_send(Arc::clone(&frame)) {
                Ok(()) => taken += 1,
                Err(Refused::Full) => too_slow.push(*key),
                // The stream is going away; its membership removes it in a moment.
                Err(Refused::Closed) => {}
            }
        }
        for key in &too_slow {
            tracing::debug!(subscriber = key, "queue full: dropping the subscriber");
            subscribers.remove(*key);
        }
        Delivered { taken, too_slow: too_slow.len() }
    }

    /// Hands `frame` to every subscriber; those without room are dropped, which tells their
    /// clients as surely, once they reconnect.
    pub(super) fn deliver_to_all(&self, id: EventId, bytes: &Bytes) {
        let mut subscribers = self.0.lock();
        let frame = Arc::new(Frame {
            bytes: bytes.clone(),
            id,
            published: Instant::now(),
            topic: None,
            with_topic: OnceLock::new(),
        });
        let full: Vec<u64> = subscribers
            .members
            .iter()
            .filter(|(_, member)| member.queue.try_send(Arc::clone(&frame)).is_err())
            .map(|(key, _)| *key)
            .collect();
        for key in full {
            subscribers.remove(key);
        }
    }

    /// Drops every subscriber: each stream ends after what it holds, and each client resumes
    /// with its `Last-Event-ID` from the shared history.
    pub(super) fn drop_all(&self) -> usize {
        let mut subscribers = self.0.lock();
        let dropped = subscribers.members.len();
        *subscribers = Subscribers {
            next_key: subscribers.next_key,
            generation: subscribers.generation + 1,
            ..Subscribers::default()
        };
        dropped
    }

    pub(super) fn is_followed(&self, topic: &Topic) -> bool {
        self.0.lock().by_topic.contains_key(topic)
    }

    /// How many subscribers follow `topic`.
    pub(super) fn followers(&self, topic: &Topic) -> usize {
        self.0.lock().by_topic.get(topic).map_or(0, Vec::len)
    }

    pub(super) fn subscribers(&self) -> usize {
        self.0.lock().members.len()
    }

    /// Who follows `topic` here.
    pub(super) fn presence(&self, topic: &Topic) -> TopicPresence {
        self.0.lock().presence(topic)
    }

    /// Who follows each topic that has a subscriber here, and the generation it is true of.
    pub(super) fn snapshot(&self) -> (u64, Vec<(Topic, TopicPresence)>) {
        let subscribers = self.0.lock();
        let topics =
            subscribers.by_topic.keys().map(|topic| (topic.clone(), subscribers.presence(topic))).collect();
        (subscribers.generation, topics)
    }

    /// The topics that have a subscriber here, by name, that start with `prefix` and come after
    /// `after` (all of them without it), with their subscribers: the first `limit` of them.
    pub(super) fn topics_after(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Vec<(Topic, usize)> {
        let subscribers = self.0.lock();
        let mut topics: Vec<(Topic, usize)> = subscribers
            .by_topic
            .iter()
            .filter(|(topic, _)| {
                topic.as_str().starts_with(prefix) && after.is_none_or(|after| topic.as_str() > after)
            })
            .map(|(topic, queues)| (topic.clone(), queues.len()))
            .collect();
        drop(subscribers);
        topics.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
        topics.truncate(limit);
        topics
    }

    /// The `n` topics with the most subscribers here, most first, with their subscribers.
    pub(super) fn busiest(&self, n: usize) -> Vec<(Topic, usize)> {
        let subscribers = self.0.lock();
        let counts = subscribers.by_topic.iter().map(|(topic, queues)| (topic, queues.len()));
        let mut busiest: Vec<(Topic, usize)> =
            most(counts, n).into_iter().map(|(topic, count)| (topic.clone(), count)).collect();
        drop(subscribers);
        busiest.sort_unstable_by(|(a, x), (b, y)| y.cmp(x).then_with(|| a.cmp(b)));
        busiest
    }

    /// The generation of the subscribers: it grows with every join and leave.
    pub(super) fn generation(&self) -> u64 {
        self.0.lock().generation
    }

    /// How many of the topics that have a subscriber here `count` says yes to.
    pub(super) fn count_followed(&self, count: impl Fn(&Topic) -> bool) -> usize {
        self.0.lock().by_topic.keys().filter(|topic| count(topic)).count()
    }
}

/// The `n` items with the highest counts, in no order, without sorting them all: the busiest
/// topics of a hundred thousand are found in one pass.
pub(super) fn most<T, C: Ord + Copy>(items: impl Iterator<Item = (T, C)>, n: usize) -> Vec<(T, C)> {
    let mut items: Vec<(T, C)> = items.collect();
    if n == 0 {
        return vec![];
    }
    if items.len() > n {
        items.select_nth_unstable_by(n - 1, |(_, a), (_, b)| b.cmp(a));
        items.truncate(n);
    }
    items
}

impl Subscribers {
    /// Who follows `topic`: every subscriber counted, those with a `sub` also by it.
    fn presence(&self, topic: &Topic) -> TopicPresence {
        let mut presence = TopicPresence::default();
        for (key, _) in self.by_topic.get(topic).into_iter().flatten() {
            presence.connections += 1;
            if let Some(who) = self.members.get(key).and_then(|member| member.who.clone()) {
                *presence.subs.entry(who).or_default() += 1;
            }
        }
        presence
    }

    fn remove(&mut self, key: u64) {
        let Some(Member { topics, .. }) = self.members.remove(&key) else {
            return;
        };
        self.generation += 1;
        for topic in topics {
            if let Some(queues) = self.by_topic.get_mut(&topic) {
                queues.retain(|(k, _)| *k != key);
                if queues.is_empty() {
                    self.by_topic.remove(&topic);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str) -> Topic {
        Topic::parse(name).unwrap()
    }

    #[test]
    fn the_busiest_topics_come_most_subscribers_first_and_ties_by_name() {
        let fanout = Fanout::default();
        let _held: Vec<_> = [vec!["a", "b", "c"], vec!["b", "c"], vec!["c"], vec!["d", "b"]]
            .into_iter()
            .map(|topics| fanout.join(topics.into_iter().map(topic).collect(), None, 4))
            .collect();
        assert_eq!(fanout.busiest(2), vec![(topic("b"), 3), (topic("c"), 3)]);
        assert_eq!(fanout.busiest(10).len(), 4);
        assert_eq!(fanout.busiest(0), vec![]);
    }

    #[test]
    fn presence_counts_every_subscriber_and_names_those_with_a_sub() {
        let fanout = Fanout::default();
        let alice: Arc<str> = Arc::from("alice");
        let _first = fanout.join(vec![topic("a"), topic("b")], Some(Arc::clone(&alice)), 4);
        let _second = fanout.join(vec![topic("a")], Some(alice), 4);
        let (anonymous, _) = fanout.join(vec![topic("a")], None, 4);

        let on_a = fanout.presence(&topic("a"));
        assert_eq!(on_a.connections, 3);
        assert_eq!(on_a.subs.into_iter().collect::<Vec<_>>(), [(Arc::from("alice"), 2)]);
        let (generation, mut snapshot) = fanout.snapshot();
        snapshot.sort_by(|(x, _), (y, _)| x.cmp(y));
        let counts: Vec<_> =
            snapshot.iter().map(|(topic, presence)| (topic.as_str(), presence.connections)).collect();
        assert_eq!(counts, [("a", 3), ("b", 1)]);

        fanout.leave(anonymous);
        assert!(fanout.generation() > generation, "a departure changes the generation");
        assert_eq!(fanout.presence(&topic("a")).connections, 2);
        assert_eq!(fanout.presence(&topic("nobody")), TopicPresence::default());
    }

    #[test]
    fn topics_are_listed_by_name_after_a_cursor_within_a_prefix() {
        let fanout = Fanout::default();
        let _members: Vec<_> = ["b.2", "a.1", "b.1", "b.10", "c"]
            .iter()
            .map(|name| fanout.join(vec![topic(name)], None, 4))
            .collect();
        let names = |prefix, after, limit| -> Vec<String> {
            fanout
                .topics_after(prefix, after, limit)
                .into_iter()
                .map(|(topic, _)| topic.as_str().to_owned())
                .collect()
        };
        assert_eq!(names("", None, 10), ["a.1", "b.1", "b.10", "b.2", "c"]);
        assert_eq!(names("b.", None, 2), ["b.1", "b.10"]);
        assert_eq!(names("b.", Some("b.10"), 10), ["b.2"]);
        assert_eq!(names("", Some("c"), 10), Vec::<String>::new());
    }
}
