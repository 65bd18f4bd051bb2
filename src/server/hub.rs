//! The pub/sub hub: one log of ids, a bounded history per topic, and fan-out through bounded
//! queues.
//! There is no HTTP in here: routes turn requests into calls on [`Hub`].
//!
//! Every event is framed into its SSE bytes once, when it is published, and subscribers share
//! those bytes. Publishing and subscribing take one short lock, so a subscriber's replay and its
//! live events meet without a gap or a duplicate, and every queue receives events in id order.
//! A publisher never waits: a subscriber whose queue is full is dropped from the hub, its stream
//! ends after what it already holds, and its client resumes with `Last-Event-ID`.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use super::event::{self, EventId, EventName, IdempotencyKey, NewEvent, Topic};
pub use super::metrics::HubStats;
use super::metrics::{ReasonLabel, TopicClass};
use crate::protocol::{ResetNotice, ResetReason, RESET_EVENT};

#[derive(Clone, Debug)]
pub struct HubSettings {
    /// How many events each topic's history keeps for replay.
    pub history_len: usize,
    /// How old an event may grow before its topic's history forgets it; a topic with no event
    /// left and no subscriber is forgotten altogether.
    pub history_age: Duration,
    /// How many frames may wait for one subscriber before it counts as too slow.
    pub queue_len: usize,
}

/// What a publish did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    pub id: EventId,
    /// How many live subscribers the event was handed to.
    pub subscribers: usize,
    /// The idempotency key had been seen: nothing new was published and `id` is the first one's.
    pub duplicate: bool,
}

pub struct Hub {
    incarnation: u64,
    settings: HubSettings,
    state: Mutex<State>,
    pub stats: HubStats,
}

#[derive(Default)]
struct State {
    last_seq: u64,
    /// Each topic's recent events. A busy topic forgets its own old events, never another's.
    histories: HashMap<Topic, History>,
    /// The newest event of any topic forgotten altogether for being idle (0: none yet): a topic
    /// with no history may have had events up to here.
    idle_forgotten_through: u64,
    /// Idempotency keys are scoped per topic, as Stripe scopes them per account.
    idempotency: HashMap<(Topic, IdempotencyKey), Remembered>,
    next_subscriber: u64,
    /// Each subscriber's topics, to leave them when it goes.
    subscribers: HashMap<u64, Vec<Topic>>,
    /// Each topic's subscribers and their queues, side by side for a fast fan-out.
    by_topic: HashMap<Topic, Vec<(u64, mpsc::Sender<LiveFrame>)>>,
}

/// A frame on its way to one subscriber, with when it was published, for the latency histogram.
struct LiveFrame {
    bytes: Bytes,
    published: Instant,
}

/// One topic's recent events, oldest first.
#[derive(Default)]
struct History {
    events: VecDeque<Stored>,
    /// The newest of this topic's events that the history has forgotten (0: none yet).
    forgotten_through: u64,
}

struct Stored {
    seq: u64,
    at: Instant,
    frame: Bytes,
    idempotency_key: Option<IdempotencyKey>,
}

/// What an idempotency key published: its id, and a digest of its name and data, so that the
/// same key with another event is told apart from a retry.
struct Remembered {
    id: EventId,
    digest: [u8; 32],
}

/// The idempotency key was used on this topic for a different event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeyReused {
    /// The id of the event the key published first.
    pub first: EventId,
}

impl Hub {
    /// A hub whose ids start with `incarnation`, a value that differs between runs: see
    /// [`Hub::new_incarnation`].
    pub fn new(incarnation: u64, settings: HubSettings) -> Arc<Self> {
        Arc::new(Self { incarnation, settings, state: Mutex::default(), stats: HubStats::default() })
    }

    /// Tells this run's event ids from an earlier run's: the start time in milliseconds.
    pub(crate) fn new_incarnation() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64)
    }

    /// Assigns the next id, frames the event once, keeps it in the history, and hands it to every
    /// subscriber of its topic that has room.
    pub fn publish(&self, event: NewEvent) -> Published {
        let now = Instant::now();
        let mut state = self.state.lock();
        self.append(&mut state, event, now, None)
    }

    /// Publishes `event` once per `key` and topic while the first event is in the history: a
    /// retry with the same event answers the first one's id as a duplicate, and the same key
    /// with a different event is refused.
    pub(crate) fn publish_once(&self, event: NewEvent, key: IdempotencyKey) -> Result<Published, KeyReused> {
        let digest = digest(&event);
        let now = Instant::now();
        let mut state = self.state.lock();
        self.forget_old(&mut state, &event.topic, now);
        let scoped = (event.topic.clone(), key);
        if let Some(first) = state.idempotency.get(&scoped) {
            return match first.digest == digest {
                true => Ok(Published { id: first.id, subscribers: 0, duplicate: true }),
                false => Err(KeyReused { first: first.id }),
            };
        }
        let published = self.append(&mut state, event, now, Some(scoped.1.clone()));
        state.idempotency.insert(scoped, Remembered { id: published.id, digest });
        Ok(published)
    }

    fn append(
        &self,
        state: &mut State,
        event: NewEvent,
        now: Instant,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Published {
        let NewEvent { topic, name, data } = event;
        state.last_seq += 1;
        let id = self.id(state.last_seq);
        let frame = event::frame(Some(id), name.as_ref(), &data);
        let subscribers = self.fan_out(state, &topic, &frame, now);
        let class = TopicClass::of(&topic);
        let stored = Stored { seq: id.seq, at: now, frame, idempotency_key };
        state.histories.entry(topic.clone()).or_default().events.push_back(stored);
        self.forget_old(state, &topic, now);
        self.stats.published.inc();
        self.stats.published_as(class).inc();
        self.stats.delivered_as(class).inc_by(subscribers as u64);
        Published { id, subscribers, duplicate: false }
    }

    /// Subscribes to `topics`. With `last_event_id`, the subscription opens with every missed
    /// event of those topics still in the history, or with an `event: reset` when that cannot be
    /// exact; either way live events follow without a gap.
    pub fn subscribe(self: &Arc<Self>, topics: Vec<Topic>, last_event_id: Option<&str>) -> Subscription {
        let (queue, receiver) = mpsc::channel(self.settings.queue_len);
        let mut state = self.state.lock();
        let now = Instant::now();
        for topic in &topics {
            self.forget_old(&mut state, topic, now);
        }

        let opening = match last_event_id.map(|raw| self.missed_since(&state, raw, &topics)) {
            None => vec![],
            Some(Ok(missed)) => missed,
            Some(Err(reason)) => {
                self.stats.resets.inc();
                self.stats.resets_by_reason.get_or_create(&ReasonLabel { reason: reason.name() }).inc();
                vec![self.reset_frame(&state, reason)]
            }
        };

        let key = state.next_subscriber;
        state.next_subscriber += 1;
        for topic in &topics {
            state.by_topic.entry(topic.clone()).or_default().push((key, queue.clone()));
        }
        state.subscribers.insert(key, topics);
        drop(state);

        Subscription { opening, receiver, _membership: Membership { hub: Arc::clone(self), key } }
    }

    /// How many subscriptions are open.
    pub fn subscribers(&self) -> usize {
        self.state.lock().subscribers.len()
    }

    /// How many topics the hub holds a history or subscribers for.
    pub(crate) fn topics(&self) -> usize {
        let state = self.state.lock();
        let subscribed_only =
            state.by_topic.keys().filter(|topic| !state.histories.contains_key(*topic)).count();
        state.histories.len() + subscribed_only
    }

    /// Forgets every event older than the history's age, and every topic left with no event
    /// and no subscriber, so that thousands of idle session topics do not each pin memory.
    /// Publishing and subscribing trim the topics they touch; this trims the rest.
    pub(crate) fn purge(&self) {
        let now = Instant::now();
        let mut state = self.state.lock();
        let topics: Vec<Topic> = state.histories.keys().cloned().collect();
        for topic in topics {
            self.forget_old(&mut state, &topic, now);
        }
    }

    /// The id of the latest event, or `<incarnation>-0` before the first.
    pub fn last_id(&self) -> EventId {
        self.id(self.state.lock().last_seq)
    }

    fn id(&self, seq: u64) -> EventId {
        EventId { incarnation: self.incarnation, seq }
    }

    /// The frames of `topics` after `raw`, or why they cannot be told exactly.
    /// Exact when each of `topics` still holds every one of its events after the id; they come
    /// back merged in id order.
    fn missed_since(&self, state: &State, raw: &str, topics: &[Topic]) -> Result<Vec<Bytes>, ResetReason> {
        let id: EventId = raw.parse().map_err(|_| ResetReason::MalformedId)?;
        if id.incarnation != self.incarnation {
            return Err(ResetReason::OtherIncarnation);
        }
        if id.seq > state.last_seq {
            return Err(ResetReason::UnknownId);
        }
        let mut missed = vec![];
        for topic in topics {
            let forgotten_through = match state.histories.get(topic) {
                Some(history) => history.forgotten_through,
                None => state.idle_forgotten_through,
            };
            if id.seq < forgotten_through {
                return Err(ResetReason::Expired);
            }
            let events = state.histories.get(topic).map(|history| &history.events);
            missed.extend(events.into_iter().flatten().filter(|stored| stored.seq > id.seq));
        }
        missed.sort_unstable_by_key(|stored| stored.seq);
        Ok(missed.into_iter().map(|stored| stored.frame.clone()).collect())
    }

    /// The reset frame carries the current position as its id, so the client's next reconnect
    /// resumes from here instead of repeating the same reset.
    fn reset_frame(&self, state: &State, reason: ResetReason) -> Bytes {
        let data = serde_json::to_string(&ResetNotice::from(reason)).expect("a notice serialises");
        event::frame(Some(self.id(state.last_seq)), Some(&EventName::known(RESET_EVENT)), &data)
    }

    fn fan_out(&self, state: &mut State, topic: &Topic, frame: &Bytes, published: Instant) -> usize {
        let Some(queues) = state.by_topic.get(topic) else {
            return 0;
        };
        let mut delivered = 0;
        let mut too_slow = vec![];
        for (key, queue) in queues {
            match queue.try_send(LiveFrame { bytes: frame.clone(), published }) {
                Ok(()) => delivered += 1,
                Err(mpsc::error::TrySendError::Full(_)) => too_slow.push(*key),
                // The stream is going away; its membership removes it in a moment.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        for key in too_slow {
            self.stats.lagged.inc();
            tracing::debug!(subscriber = key, "queue full: dropping the subscriber");
            remove_subscriber(state, key);
        }
        delivered
    }

    /// Trims `topic`'s history to its length and age; a topic left with no event and no
    /// subscriber is forgotten, and remembered only as the hub's idle watermark.
    fn forget_old(&self, state: &mut State, topic: &Topic, now: Instant) {
        let Some(history) = state.histories.get_mut(topic) else {
            return;
        };
        while let Some(oldest) = history.events.front() {
            let too_many = history.events.len() > self.settings.history_len;
            let too_old = now.duration_since(oldest.at) > self.settings.history_age;
            if !(too_many || too_old) {
                break;
            }
            let oldest = history.events.pop_front().expect("a front element");
            history.forgotten_through = oldest.seq;
            if let Some(key) = oldest.idempotency_key {
                state.idempotency.remove(&(topic.clone(), key));
            }
        }
        if history.events.is_empty() && !state.by_topic.contains_key(topic) {
            let forgotten_through = history.forgotten_through;
            state.histories.remove(topic);
            state.idle_forgotten_through = state.idle_forgotten_through.max(forgotten_through);
        }
    }
}

/// Runs [`Hub::purge`] as often as the history's age allows an event to go stale, at least every
/// 30 s, until `shutdown` is cancelled.
pub(crate) fn spawn_purge(hub: Arc<Hub>, shutdown: CancellationToken) {
    let every = hub.settings.history_age.clamp(Duration::from_millis(100), Duration::from_secs(30));
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => hub.purge(),
            }
        }
    });
}

/// What tells two events apart for an idempotency key: the name and the data. A name cannot hold
/// a line break, so the separator keeps the two unambiguous.
fn digest(event: &NewEvent) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(event.name.as_ref().map_or("", EventName::as_str));
    hasher.update("\n");
    hasher.update(&event.data);
    hasher.finalize().into()
}

fn remove_subscriber(state: &mut State, key: u64) {
    let Some(topics) = state.subscribers.remove(&key) else {
        return;
    };
    for topic in topics {
        if let Some(queues) = state.by_topic.get_mut(&topic) {
            queues.retain(|(k, _)| *k != key);
            if queues.is_empty() {
                state.by_topic.remove(&topic);
            }
        }
    }
}

/// One live delivery in this many, per subscriber, goes into the publish-to-write histogram
/// (each subscriber's first included). Observing locks the histogram: with every delivery
/// observed, one event to 10,000 subscribers cost 10,000 lock round trips (`benches/fanout.rs`).
const LATENCY_SAMPLE_EVERY: u32 = 16;

/// One subscriber's view of the hub: an opening (replay or reset), then live frames.
pub struct Subscription {
    /// Frames to send before any live one: missed events, or a single reset.
    pub opening: Vec<Bytes>,
    receiver: mpsc::Receiver<LiveFrame>,
    _membership: Membership,
}

impl Subscription {
    /// The opening frames, then live frames until the hub drops this subscriber.
    pub fn into_stream(self) -> impl Stream<Item = Bytes> + Send + 'static {
        let Self { opening, receiver, _membership: membership } = self;
        // The closure owns the membership, so the subscriber leaves the hub exactly when the
        // stream is dropped, however it ends.
        let mut delivered = 0u32;
        let live = ReceiverStream::new(receiver).map(move |frame| {
            if delivered.is_multiple_of(LATENCY_SAMPLE_EVERY) {
                membership.hub.stats.publish_to_write.observe(frame.published.elapsed().as_secs_f64());
            }
            delivered = delivered.wrapping_add(1);
            frame.bytes
        });
        futures::stream::iter(opening).chain(live)
    }
}

/// Removes its subscriber from the hub when dropped, however the stream ends.
struct Membership {
    hub: Arc<Hub>,
    key: u64,
}

impl Drop for Membership {
    fn drop(&mut self) {
        remove_subscriber(&mut self.hub.state.lock(), self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> HubSettings {
        HubSettings { history_len: 100, history_age: Duration::from_secs(600), queue_len: 16 }
    }

    fn topic(name: &str) -> Topic {
        Topic::parse(name).unwrap()
    }

    fn key(text: &str) -> IdempotencyKey {
        IdempotencyKey::parse(text.as_bytes()).unwrap()
    }

    fn text(frame: &Bytes) -> String {
        String::from_utf8(frame.to_vec()).unwrap()
    }

    async fn next(subscription: &mut Subscription) -> String {
        text(&subscription.receiver.recv().await.expect("a live frame").bytes)
    }

    #[test]
    fn ids_grow_by_one_across_all_topics() {
        let hub = Hub::new(9, settings());
        let a = hub.publish(NewEvent::new(topic("a"), "1"));
        let b = hub.publish(NewEvent::new(topic("b"), "2"));
        assert_eq!((a.id.to_string(), b.id.to_string()), ("9-1".into(), "9-2".into()));
        assert_eq!(hub.last_id().to_string(), "9-2");
    }

    #[tokio::test]
    async fn subscribers_get_only_their_topics_in_publish_order() {
        let hub = Hub::new(1, settings());
        let mut both = hub.subscribe(vec![topic("a"), topic("b")], None);
        let mut only_b = hub.subscribe(vec![topic("b")], None);

        assert_eq!(hub.publish(NewEvent::new(topic("a"), "one")).subscribers, 1);
        assert_eq!(hub.publish(NewEvent::new(topic("c"), "nobody")).subscribers, 0);
        assert_eq!(hub.publish(NewEvent::new(topic("b"), "two")).subscribers, 2);

        assert_eq!(next(&mut both).await, "id: 1-1\ndata: one\n\n");
        assert_eq!(next(&mut both).await, "id: 1-3\ndata: two\n\n");
        assert_eq!(next(&mut only_b).await, "id: 1-3\ndata: two\n\n");
    }

    #[tokio::test]
    async fn resuming_replays_missed_events_of_its_topics_then_goes_live() {
        let hub = Hub::new(1, settings());
        let seen = hub.publish(NewEvent::new(topic("a"), "seen")).id;
        hub.publish(NewEvent::new(topic("a"), "missed"));
        hub.publish(NewEvent::new(topic("other"), "not mine"));

        let mut resumed = hub.subscribe(vec![topic("a")], Some(&seen.to_string()));
        hub.publish(NewEvent::new(topic("a"), "live"));

        assert_eq!(resumed.opening.iter().map(text).collect::<Vec<_>>(), ["id: 1-2\ndata: missed\n\n"]);
        assert_eq!(next(&mut resumed).await, "id: 1-4\ndata: live\n\n");
    }

    #[test]
    fn resuming_from_the_latest_id_replays_nothing() {
        let hub = Hub::new(1, settings());
        let latest = hub.publish(NewEvent::new(topic("a"), "x")).id;
        assert!(hub.subscribe(vec![topic("a")], Some(&latest.to_string())).opening.is_empty());
    }

    #[test]
    fn ids_that_cannot_be_resumed_open_with_a_reset_that_says_why() {
        let hub = Hub::new(5, HubSettings { history_len: 2, ..settings() });
        for n in 0..4 {
            hub.publish(NewEvent::new(topic("a"), n.to_string()));
        }
        for (last_event_id, reason) in [
            ("garbage", "malformed-id"),
            ("4-1", "other-incarnation"),
            ("5-99", "unknown-id"),
            ("5-1", "expired"),
        ] {
            let opening = hub.subscribe(vec![topic("a")], Some(last_event_id)).opening;
            assert_eq!(opening.len(), 1, "{last_event_id}");
            let frame = text(&opening[0]);
            assert!(frame.starts_with("id: 5-4\nevent: reset\ndata: {"), "{last_event_id}: {frame}");
            assert!(frame.contains(&format!("\"reason\":\"{reason}\"")), "{last_event_id}: {frame}");
        }
        assert_eq!(hub.stats.resets.get(), 4);
        // The oldest id still in the history resumes exactly.
        assert_eq!(hub.subscribe(vec![topic("a")], Some("5-2")).opening.len(), 2);
    }

    #[test]
    fn events_older_than_the_maximum_age_leave_the_history() {
        let hub = Hub::new(1, HubSettings { history_age: Duration::ZERO, ..settings() });
        hub.publish(NewEvent::new(topic("a"), "old"));
        hub.publish(NewEvent::new(topic("a"), "newer"));
        let opening = hub.subscribe(vec![topic("a")], Some("1-1")).opening;
        assert!(text(&opening[0]).contains("expired"));
    }

    #[tokio::test]
    async fn a_full_queue_drops_that_subscriber_without_slowing_the_publisher_or_others() {
        let hub = Hub::new(1, HubSettings { queue_len: 2, ..settings() });
        let slow = hub.subscribe(vec![topic("a")], None);
        let mut fast = hub.subscribe(vec![topic("a")], None);

        for n in 0..3 {
            hub.publish(NewEvent::new(topic("a"), n.to_string()));
            next(&mut fast).await;
        }

        assert_eq!(hub.stats.lagged.get(), 1);
        assert_eq!(hub.subscribers(), 1);
        // The slow stream keeps what it had queued, then ends: its client resumes from there.
        let kept: Vec<_> = slow.into_stream().collect().await;
        assert_eq!(
            kept.iter().map(text).collect::<Vec<_>>(),
            ["id: 1-1\ndata: 0\n\n", "id: 1-2\ndata: 1\n\n"]
        );
    }

    #[test]
    fn an_idempotency_key_publishes_once_while_its_event_is_in_the_history() {
        let hub = Hub::new(1, HubSettings { history_len: 1, ..settings() });
        let first = hub.publish_once(NewEvent::new(topic("a"), "x"), key("key-1")).unwrap();
        let again = hub.publish_once(NewEvent::new(topic("a"), "x"), key("key-1")).unwrap();
        assert_eq!((again.id, again.duplicate), (first.id, true));
        assert_eq!(hub.last_id(), first.id);

        hub.publish(NewEvent::new(topic("a"), "pushes key-1 out"));
        assert!(!hub.publish_once(NewEvent::new(topic("a"), "x"), key("key-1")).unwrap().duplicate);
    }

    #[test]
    fn an_idempotency_key_belongs_to_its_topic() {
        let hub = Hub::new(1, settings());
        let on_a = hub.publish_once(NewEvent::new(topic("a"), "x"), key("k")).unwrap();
        let on_b = hub.publish_once(NewEvent::new(topic("b"), "x"), key("k")).unwrap();
        assert!(!on_b.duplicate);
        assert_ne!(on_a.id, on_b.id);
    }

    #[test]
    fn an_idempotency_key_reused_for_another_event_is_refused() {
        let hub = Hub::new(1, settings());
        let first = hub.publish_once(NewEvent::new(topic("a"), "x"), key("k")).unwrap();
        let other_data = hub.publish_once(NewEvent::new(topic("a"), "y"), key("k"));
        let other_name =
            hub.publish_once(NewEvent::new(topic("a"), "x").named(EventName::parse("n").unwrap()), key("k"));
        assert_eq!(other_data, Err(KeyReused { first: first.id }));
        assert_eq!(other_name, Err(KeyReused { first: first.id }));
        assert_eq!(hub.last_id(), first.id, "a refused publish published nothing");
    }

    #[test]
    fn a_busy_topic_does_not_push_a_quiet_topics_events_out_of_its_history() {
        let hub = Hub::new(1, HubSettings { history_len: 2, ..settings() });
        hub.publish(NewEvent::new(topic("quiet"), "the one event"));
        for n in 0..5 {
            hub.publish(NewEvent::new(topic("busy"), n.to_string()));
        }

        let opening = hub.subscribe(vec![topic("quiet")], Some("1-0")).opening;

        assert_eq!(opening.iter().map(text).collect::<Vec<_>>(), ["id: 1-1\ndata: the one event\n\n"]);
    }

    #[test]
    fn a_resume_across_topics_replays_in_id_order_or_resets_if_any_topic_lost_events() {
        let hub = Hub::new(1, HubSettings { history_len: 2, ..settings() });
        hub.publish(NewEvent::new(topic("a"), "1"));
        hub.publish(NewEvent::new(topic("b"), "2"));
        hub.publish(NewEvent::new(topic("a"), "3"));

        let replayed = hub.subscribe(vec![topic("b"), topic("a")], Some("1-0")).opening;
        let ids: Vec<_> =
            replayed.iter().map(|frame| text(frame).lines().next().unwrap().to_owned()).collect();
        assert_eq!(ids, ["id: 1-1", "id: 1-2", "id: 1-3"]);

        hub.publish(NewEvent::new(topic("a"), "4"));
        let opening = hub.subscribe(vec![topic("b"), topic("a")], Some("1-0")).opening;
        assert!(text(&opening[0]).contains("\"reason\":\"expired\""), "{:?}", text(&opening[0]));
        assert_eq!(hub.subscribe(vec![topic("b")], Some("1-0")).opening.len(), 1, "b alone lost nothing");
    }

    #[test]
    fn idle_topics_are_forgotten_and_a_resume_from_before_them_is_told_so() {
        let hub = Hub::new(1, HubSettings { history_age: Duration::ZERO, ..settings() });
        hub.publish(NewEvent::new(topic("x"), "old news"));
        let watching = hub.subscribe(vec![topic("y")], None);
        assert_eq!(hub.topics(), 2);

        hub.purge();
        assert_eq!(hub.topics(), 1, "only the subscribed topic is left");
        drop(watching);
        hub.purge();
        assert_eq!(hub.topics(), 0);

        let opening = hub.subscribe(vec![topic("x")], Some("1-0")).opening;
        assert!(text(&opening[0]).contains("\"reason\":\"expired\""), "{:?}", text(&opening[0]));
        assert!(hub.subscribe(vec![topic("x")], Some("1-1")).opening.is_empty(), "nothing after the last id");
    }

    #[test]
    fn dropping_a_subscription_leaves_the_hub() {
        let hub = Hub::new(1, settings());
        let subscription = hub.subscribe(vec![topic("a"), topic("b")], None);
        assert_eq!(hub.subscribers(), 1);
        drop(subscription);
        assert_eq!(hub.subscribers(), 0);
        assert_eq!(hub.publish(NewEvent::new(topic("a"), "x")).subscribers, 0);
    }
}
