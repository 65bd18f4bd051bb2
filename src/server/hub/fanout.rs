//! This instance's subscribers: which topics each follows, and a bounded queue each, into which
//! published frames are handed without ever waiting.

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock},
    time::Instant,
};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;

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

/// What one subscriber's queue holds: a pointer to the shared frame. Eight bytes a slot keeps
/// each queue's first block (32 slots, allocated with the queue) at 256 bytes; the frame itself
/// would make it 2 KiB per subscriber.
pub(super) type LiveFrame = Arc<Frame>;

/// The local subscribers (cheap to clone).
#[derive(Clone, Default)]
pub(super) struct Fanout(Arc<Mutex<Subscribers>>);

#[derive(Default)]
struct Subscribers {
    next_key: u64,
    /// Each subscriber's topics, to leave them when it goes, and its queue.
    members: HashMap<u64, (Vec<Topic>, mpsc::Sender<LiveFrame>)>,
    /// Each topic's subscribers and their queues, side by side for a fast fan-out.
    by_topic: HashMap<Topic, Vec<(u64, mpsc::Sender<LiveFrame>)>>,
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
    pub(super) fn join(&self, topics: Vec<Topic>, queue_len: usize) -> (u64, mpsc::Receiver<LiveFrame>) {
        let (queue, receiver) = mpsc::channel(queue_len);
        let mut subscribers = self.0.lock();
        let key = subscribers.next_key;
        subscribers.next_key += 1;
        for topic in &topics {
            subscribers.by_topic.entry(topic.clone()).or_default().push((key, queue.clone()));
        }
        subscribers.members.insert(key, (topics, queue));
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
                Err(mpsc::error::TrySendError::Full(_)) => too_slow.push(*key),
                // The stream is going away; its membership removes it in a moment.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
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
            .filter(|(_, (_, queue))| queue.try_send(Arc::clone(&frame)).is_err())
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
        *subscribers = Subscribers { next_key: subscribers.next_key, ..Subscribers::default() };
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

    /// How many of the topics that have a subscriber here `count` says yes to.
    pub(super) fn count_followed(&self, count: impl Fn(&Topic) -> bool) -> usize {
        self.0.lock().by_topic.keys().filter(|topic| count(topic)).count()
    }
}

impl Subscribers {
    fn remove(&mut self, key: u64) {
        let Some((topics, _)) = self.members.remove(&key) else {
            return;
        };
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
