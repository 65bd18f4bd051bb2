//! The pub/sub hub, the one interface the routes and the job service publish and subscribe
//! through: ids from one log, a bounded history per topic, and fan-out to this instance's
//! subscribers through bounded queues. There is no HTTP in here.
//!
//! The log is either in this process's memory (the default, [`memory`]) or in Redis, shared by
//! every instance (`--redis-url`, [`redis`]); nothing outside this module knows which.
//!
//! Every event is framed into its SSE bytes once, when it is published, and subscribers share
//! those bytes. A subscriber joins the fan-out before its missed events are read, and live
//! events that the replay already holds are skipped by id, so replay and live events meet without
//! a gap or a duplicate. A publisher never waits: a subscriber whose queue is full is dropped
//! from the hub, its stream ends after what it already holds, and its client resumes with
//! `Last-Event-ID`.
//!
//! A replay is bounded (`max_replay_events`, `max_replay_bytes`: past them a
//! `replay-too-large` reset), and only `max_concurrent_replays` are read at once, so that a
//! crowd of resumes cannot crowd out publishing.

mod fanout;
mod memory;
mod queue;
mod rates;
mod redis;
mod stats;

use std::{
    collections::BTreeMap,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use futures::{future::BoxFuture, FutureExt, Stream};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

pub(crate) use self::fanout::TopicPresence;
pub(crate) use self::redis::{ReaderStats, SharedStats};
pub use self::stats::HubStats;
pub(crate) use self::stats::{ReasonLabel, TopicClass, LATENCY_BOUNDS};
use self::{
    fanout::{Fanout, LiveFrame},
    memory::MemoryLog,
    rates::Rates,
    redis::RedisLog,
};
use super::auth::patterns::{covers, TopicPattern};
use super::event::{self, EventId, EventName, IdempotencyKey, NewEvent, Topic};
use super::redis::{Backoff, Redis, Unavailable};
use crate::protocol::{ResetNotice, ResetReason, JOIN_EVENT, LEAVE_EVENT, RESET_EVENT};

#[derive(Clone, Debug)]
pub struct HubSettings {
    /// How many events each topic's history keeps for replay.
    pub history_len: usize,
    /// How old an event may grow before its topic's history forgets it; a topic with no event
    /// left and no subscriber is forgotten altogether.
    pub history_age: Duration,
    /// How many frame bytes each topic's history keeps at most; its newest event always stays.
    pub history_bytes: usize,
    /// How many frame bytes every history together keeps at most.
    pub history_total_bytes: usize,
    /// How many events one resume may replay before it gets a `replay-too-large` reset instead.
    pub max_replay_events: usize,
    /// How many frame bytes one resume may replay before it gets a `replay-too-large` reset.
    pub max_replay_bytes: usize,
    /// How many replays are read at once; the others wait.
    pub max_concurrent_replays: usize,
    /// How many frames may wait for one subscriber before it counts as too slow.
    pub queue_len: usize,
    /// The topics to which Herald publishes `join` and `leave` as subscribers with a token's
    /// `sub` open and close streams that follow them.
    pub presence_events: Vec<TopicPattern>,
}

/// What a publish did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    pub id: EventId,
    /// How many of this instance's subscribers the event was handed to.
    pub subscribers: usize,
    /// The idempotency key had been seen: nothing new was published and `id` is the first one's.
    pub duplicate: bool,
}

/// The idempotency key was used on this topic for a different event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeyReused {
    /// Which event of the request has it (0 for a single publish).
    pub index: usize,
    /// The id of the event the key published first.
    pub first: EventId,
}

/// Why a publish with an idempotency key stored nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PublishError {
    KeyReused(KeyReused),
    Unavailable,
    /// The Redis primary holds the events, but fewer replicas than `--redis-wait-replicas`
    /// confirmed them in time: a failover could lose them.
    Unconfirmed {
        confirmed: u32,
        wanted: u32,
    },
}

impl From<Unavailable> for PublishError {
    fn from(Unavailable: Unavailable) -> Self {
        Self::Unavailable
    }
}

/// An idempotency key and the digest of the event it first published.
pub(super) struct Once {
    key: IdempotencyKey,
    digest: [u8; 32],
}

/// The events a resuming subscriber missed, each with the index of its topic among those asked
/// for, and the top of the log when they were read.
struct Missed {
    frames: Vec<(usize, Bytes)>,
    top: EventId,
    /// Events past the bounds were left out ([`Past::Stop`] only).
    more: bool,
}

/// Where a read of the history starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    /// After this id, exactly, or a gap.
    After(EventId),
    /// At the oldest event the history holds, whatever was forgotten before it.
    Oldest,
}

/// How much one read of the history returns at most.
#[derive(Clone, Copy, Debug)]
struct Bounds {
    events: usize,
    bytes: usize,
    past: Past,
}

/// What a read that finds more than its bounds does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Past {
    /// Tells nothing: a `replay-too-large` gap (a resume, which must be all or nothing).
    Reset,
    /// Returns the first events, in id order, and says there are more (a page of one topic).
    Stop,
}

/// What `GET /topics/{topic}` answers: the topic across every instance.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TopicInfo {
    /// Its subscribers on every instance.
    pub subscribers: usize,
    /// The id of the newest event its history holds.
    pub newest: Option<EventId>,
    /// Its events in the last minute, as the answering instance counted them (see [`rates`]).
    pub events_last_minute: u64,
}

/// A page of one topic's history, as `GET /topics/{topic}/events` answers it.
#[derive(Debug)]
pub(crate) struct HistoryPage {
    /// The events' frames, in id order.
    pub frames: Vec<Bytes>,
    /// The page stopped at its limit: more events follow the last one.
    pub more: bool,
    /// The reason the page cannot start exactly where asked (then `frames` is empty).
    pub reset: Option<ResetReason>,
    /// The top of the log when the page was read: where to go on after a reset.
    pub top: EventId,
}

/// Why a resume cannot be exact, and the top of the log at that moment.
struct Gap {
    reason: ResetReason,
    top: EventId,
}

/// The busiest topics on one instance, most first.
pub(crate) struct Busiest {
    /// By subscribers here.
    pub by_subscribers: Vec<(Topic, usize)>,
    /// By events in the last minute, as this instance saw them go by.
    pub by_rate: Vec<(Topic, u64)>,
}

pub struct Hub {
    log: Log,
    fanout: Fanout,
    settings: HubSettings,
    /// Whether live events reach this instance's subscribers: at once in memory; with Redis, once
    /// the reader has found its place in the shared log.
    following: tokio::sync::watch::Sender<bool>,
    /// One permit per replay being read: resumes past `max_concurrent_replays` wait their turn,
    /// so that a crowd of them cannot crowd out publishing.
    replays: tokio::sync::Semaphore,
    /// Each topic's events in the last minute, as this instance saw them go by.
    rates: Rates,
    pub stats: HubStats,
}

enum Log {
    /// Boxed: its settings and lock make it far larger than the other variant.
    Memory(Box<MemoryLog>),
    Redis(Arc<RedisLog>),
}

impl Hub {
    /// A hub on the in-memory log, whose ids start with `incarnation`: see
    /// [`Hub::new_incarnation`].
    pub fn new(incarnation: u64, settings: HubSettings) -> Arc<Self> {
        let stats = HubStats::default();
        let log = Log::Memory(Box::new(MemoryLog::new(
            incarnation,
            settings.clone(),
            stats.history_bytes.clone(),
            stats.history_evicted_for_bytes.clone(),
        )));
        let following = tokio::sync::watch::Sender::new(true);
        let replays = tokio::sync::Semaphore::new(settings.max_concurrent_replays);
        Arc::new(Self {
            log,
            fanout: Fanout::default(),
            settings,
            following,
            replays,
            rates: Rates::new(),
            stats,
        })
    }

    /// A hub on the log in Redis, with its reader following the shared log until `shutdown`.
    pub(crate) fn on_redis(
        redis: Redis,
        settings: HubSettings,
        reader: ReaderStats,
        shutdown: &CancellationToken,
    ) -> Arc<Self> {
        let stats = HubStats::default();
        let (log, publishes) = RedisLog::new(redis, settings.clone(), &stats);
        let log = Arc::new(log);
        redis::spawn_publisher(Arc::clone(&log), publishes, shutdown.clone());
        let fanout = Fanout::default();
        redis::spawn_presence(Arc::clone(&log), fanout.clone(), shutdown.clone());
        let hub = Arc::new(Self {
            log: Log::Redis(Arc::clone(&log)),
            fanout,
            following: tokio::sync::watch::Sender::new(false),
            replays: tokio::sync::Semaphore::new(settings.max_concurrent_replays),
            rates: Rates::new(),
            settings,
            stats,
        });
        redis::spawn_reader(Arc::clone(&hub) as Arc<dyn LocalSubscribers>, log, reader, shutdown.clone());
        hub
    }

    /// Publishes `event` (`join` or `leave`) with `{"sub": who}` to each of `topics`, in the
    /// background. An announcement Redis cannot take is lost, never retried late; presence
    /// itself (`GET /topics/{topic}/presence`) stays exact.
    fn announce(self: &Arc<Self>, event: &'static str, who: &str, topics: Vec<Topic>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let data = serde_json::json!({ "sub": who }).to_string();
        let hub = Arc::clone(self);
        runtime.spawn(async move {
            for topic in topics {
                let announcement = NewEvent::new(topic, data.clone()).named(EventName::known(event));
                if hub.publish(announcement).await.is_err() {
                    tracing::debug!(event, "a presence event was not published: Redis is unavailable");
                }
            }
        });
    }

    /// Waits, for at most `patience`, until live events reach this instance's subscribers: with
    /// Redis, until the reader has found its place in the shared log, so that no subscriber can
    /// join before it and miss what is published in between. Redis may be down: the server then
    /// starts anyway, and `/readyz` answers 503 until it is back.
    pub(crate) async fn following(&self, patience: Duration) {
        let mut following = self.following.subscribe();
        let _ = tokio::time::timeout(patience, following.wait_for(|following| *following)).await;
    }

    /// Tells this run's event ids from an earlier run's: the start time in milliseconds.
    pub(crate) fn new_incarnation() -> u64 {
        MemoryLog::new_incarnation()
    }

    /// Assigns the next id, frames the event once, keeps it in its topic's history, and hands it
    /// to every subscriber of its topic that has room, on every instance.
    pub async fn publish(&self, event: NewEvent) -> Result<Published, Unavailable> {
        match self.append(vec![(event, None)]).await {
            Ok(published) => Ok(published[0]),
            Err(PublishError::Unavailable | PublishError::Unconfirmed { .. }) => Err(Unavailable),
            Err(PublishError::KeyReused(_)) => unreachable!("a publish without a key reuses none"),
        }
    }

    /// Publishes `events` in order, all or nothing, in one step of the log (one script call on
    /// Redis): their ids follow one another, and no other publish comes between them. Each key
    /// publishes its event once per topic while the first event is in the history: a retry
    /// with the same event answers the first one's id as a duplicate. A key used for a different
    /// event refuses the batch, naming its index. The keys of one topic in a batch must differ.
    pub(crate) async fn publish_batch(
        &self,
        events: Vec<(NewEvent, Option<IdempotencyKey>)>,
    ) -> Result<Vec<Published>, PublishError> {
        let events = events
            .into_iter()
            .map(|(event, key)| {
                let once = key.map(|key| Once { key, digest: digest(&event) });
                (event, once)
            })
            .collect();
        self.append(events).await
    }

    async fn append(&self, events: Vec<(NewEvent, Option<Once>)>) -> Result<Vec<Published>, PublishError> {
        let classes: Vec<TopicClass> = events.iter().map(|(event, _)| TopicClass::of(&event.topic)).collect();
        let published = match &self.log {
            Log::Memory(log) => log
                .append(events, &self.fanout, |topic, id, frame| {
                    self.deliver(topic, id, frame, Instant::now())
                })
                .map_err(PublishError::KeyReused)?,
            Log::Redis(log) => {
                let followers: Vec<usize> =
                    events.iter().map(|(event, _)| self.fanout.followers(&event.topic)).collect();
                let ids = log.append(&events).await?;
                // This instance's reader delivers them, as every other instance's does.
                ids.into_iter()
                    .zip(followers)
                    .map(|((id, duplicate), followers)| Published {
                        id,
                        subscribers: if duplicate { 0 } else { followers },
                        duplicate,
                    })
                    .collect()
            }
        };
        for (published, class) in published.iter().zip(classes) {
            if !published.duplicate {
                self.stats.published.inc();
                self.stats.published_as(class).inc();
            }
        }
        Ok(published)
    }

    /// Hands a published frame to the local subscribers of `topic`; returns how many took it.
    fn deliver(&self, topic: &Topic, id: EventId, frame: &Bytes, published: Instant) -> usize {
        self.rates.count(topic, Instant::now());
        let delivered = self.fanout.deliver(topic, id, frame, published);
        self.stats.delivered_as(TopicClass::of(topic)).inc_by(delivered.taken as u64);
        self.stats.lagged.inc_by(delivered.too_slow as u64);
        delivered.taken
    }

    /// Subscribes to `topics`. With `last_event_id`, the subscription opens with every missed
    /// event of those topics still in the history, or with an `event: reset` when that cannot be
    /// exact or would pass a replay's bounds; either way live events follow without a gap or a
    /// duplicate. The opening waits its turn among the replays being read, and while Redis is
    /// unavailable it waits for Redis; the stream stays open meanwhile.
    pub fn subscribe(self: &Arc<Self>, topics: Vec<Topic>, last_event_id: Option<&str>) -> Subscription {
        self.subscribe_as(None, topics, last_event_id)
    }

    /// [`Hub::subscribe`] for `who`, the `sub` of the subscriber's token, which presence lists.
    pub(crate) fn subscribe_as(
        self: &Arc<Self>,
        who: Option<Arc<str>>,
        topics: Vec<Topic>,
        last_event_id: Option<&str>,
    ) -> Subscription {
        let (key, receiver) = self.fanout.join(topics.clone(), who.clone(), self.settings.queue_len);
        // Those of the topics that tell of arrivals and departures, for a subscriber with a name.
        let announced = who.and_then(|who| {
            let announced: Vec<Topic> = topics
                .iter()
                .filter(|topic| covers(&self.settings.presence_events, topic))
                .cloned()
                .collect();
            (!announced.is_empty()).then_some((who, announced))
        });
        if let Some((who, announced)) = &announced {
            self.announce(JOIN_EVENT, who, announced.clone());
        }
        let membership = Membership { hub: Arc::clone(self), key, announced };
        let tagging = topics.clone();
        let opening = match last_event_id {
            None => async { Opening { frames: vec![], through: None } }.boxed(),
            Some(raw) => {
                let (hub, raw) = (Arc::clone(self), raw.to_owned());
                async move { hub.opening(&topics, &raw).await }.boxed()
            }
        };
        Subscription { opening, receiver, membership, topics: tagging, with_topics: false }
    }

    /// What a subscription resuming after `raw` opens with, retried until Redis answers; each
    /// attempt waits for a replay permit first.
    async fn opening(&self, topics: &[Topic], raw: &str) -> Opening {
        let mut backoff = Backoff::default();
        loop {
            let replayed = {
                let _permit = self.replays.acquire().await.expect("the semaphore is never closed");
                self.replay(topics, raw).await
            };
            match replayed {
                Ok(opening) => return opening,
                Err(Unavailable) => tokio::time::sleep(backoff.next()).await,
            }
        }
    }

    /// The missed events of `topics` after `raw`, or a reset that says why they cannot be told.
    async fn replay(&self, topics: &[Topic], raw: &str) -> Result<Opening, Unavailable> {
        let bounds = Bounds {
            events: self.settings.max_replay_events,
            bytes: self.settings.max_replay_bytes,
            past: Past::Reset,
        };
        Ok(match self.since(Some(raw), topics, bounds).await? {
            Ok(Missed { frames, top, .. }) => Opening {
                frames: frames.into_iter().map(|(index, frame)| (Some(index), frame)).collect(),
                through: Some(top),
            },
            Err(Gap { reason, top }) => {
                self.stats.resets.inc();
                self.stats.resets_by_reason.get_or_create(&ReasonLabel { reason: reason.name() }).inc();
                Opening { frames: vec![(None, self.reset_frame(reason, top))], through: Some(top) }
            }
        })
    }

    /// The events of `topics` after the id `after` (from the oldest held without one), within
    /// `bounds`, or why they cannot be told exactly: an id that does not parse is a
    /// `malformed-id` gap, positioned at the top of the log.
    async fn since(
        &self,
        after: Option<&str>,
        topics: &[Topic],
        bounds: Bounds,
    ) -> Result<Result<Missed, Gap>, Unavailable> {
        let start = match after.map(str::parse::<EventId>) {
            None => Start::Oldest,
            Some(Ok(id)) => Start::After(id),
            Some(Err(_)) => {
                return Ok(Err(Gap { reason: ResetReason::MalformedId, top: self.last_id().await? }))
            }
        };
        Ok(match &self.log {
            Log::Memory(log) => log.since(start, topics, bounds, &self.fanout),
            Log::Redis(log) => log.since(start, topics, bounds).await?,
        })
    }

    /// At most `limit` events of `topic` after `after` (from the oldest it holds without one),
    /// with the same resets as a resume whose `Last-Event-ID` is `after`; at most
    /// `max_replay_bytes` of frames, and at least one event when any follows. `limit` 0 reads
    /// only the top of the log. A read waits its turn among the replays, as a resume does.
    pub(crate) async fn history(
        &self,
        topic: &Topic,
        after: Option<&str>,
        limit: usize,
    ) -> Result<HistoryPage, Unavailable> {
        let bounds = Bounds { events: limit, bytes: self.settings.max_replay_bytes, past: Past::Stop };
        let read = {
            let _permit = self.replays.acquire().await.expect("the semaphore is never closed");
            self.since(after, std::slice::from_ref(topic), bounds).await?
        };
        Ok(match read {
            Ok(Missed { frames, top, more }) => HistoryPage {
                frames: frames.into_iter().map(|(_, frame)| frame).collect(),
                more,
                reset: None,
                top,
            },
            Err(Gap { reason, top }) => HistoryPage { frames: vec![], more: false, reset: Some(reason), top },
        })
    }

    /// Who follows `topic` on every instance: this one's subscribers as they are, and, with
    /// Redis, the others' as each last wrote them (every 2 s; an instance that stops writing is
    /// left out once its entries expire, 6 s after its last write: see `redis/presence.rs`).
    pub(crate) async fn presence(&self, topic: &Topic) -> Result<TopicPresence, Unavailable> {
        let mut presence = self.fanout.presence(topic);
        if let Log::Redis(log) = &self.log {
            log.add_others_presence(topic, &mut presence).await?;
        }
        Ok(presence)
    }

    /// `topic` across every instance: its subscribers, its newest event, its recent rate.
    pub(crate) async fn topic_info(&self, topic: &Topic) -> Result<TopicInfo, Unavailable> {
        let subscribers = self.presence(topic).await?.connections;
        let mut infos = self.infos(vec![(topic.clone(), subscribers)]).await?;
        Ok(infos.pop().expect("one topic asked, one answered").1)
    }

    /// The topics with a subscriber on any instance, by name, that start with `prefix` and come
    /// after `after`: the first `limit`, with their subscribers on every instance.
    pub(crate) async fn live_topics(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(Topic, usize)>, Unavailable> {
        let mut topics = self.fanout.topics_after(prefix, after, limit);
        if let Log::Redis(log) = &self.log {
            let mut all: BTreeMap<Topic, usize> = topics.into_iter().collect();
            for (topic, subscribers) in log.others_topics(prefix, after, limit).await? {
                *all.entry(topic).or_default() += subscribers;
            }
            topics = all.into_iter().take(limit).collect();
        }
        Ok(topics)
    }

    /// What `GET /topics` tells of each of `topics`, whose subscribers are known: their newest
    /// events (in one round trip to Redis) and their rates.
    pub(crate) async fn infos(
        &self,
        topics: Vec<(Topic, usize)>,
    ) -> Result<Vec<(Topic, TopicInfo)>, Unavailable> {
        let names: Vec<Topic> = topics.iter().map(|(topic, _)| topic.clone()).collect();
        let newest = match &self.log {
            Log::Memory(log) => names.iter().map(|topic| log.newest_of(topic)).collect(),
            Log::Redis(log) => log.newest_of_each(&names).await?,
        };
        let now = Instant::now();
        Ok(topics
            .into_iter()
            .zip(newest)
            .map(|((topic, subscribers), newest)| {
                let events_last_minute = self.rates.last_minute(&topic, now);
                (topic, TopicInfo { subscribers, newest, events_last_minute })
            })
            .collect())
    }

    /// This instance among the others that share its Redis (`local` in memory).
    pub(crate) fn instance(&self) -> &str {
        match &self.log {
            Log::Memory(_) => "local",
            Log::Redis(log) => log.instance(),
        }
    }

    /// The `n` busiest topics here, each way.
    pub(crate) fn busiest(&self, n: usize) -> Busiest {
        Busiest { by_subscribers: self.fanout.busiest(n), by_rate: self.rates.busiest(n, Instant::now()) }
    }

    /// Shares this instance's `snapshot` for the operator page and reads every live instance's,
    /// this one's first: in memory there are no others.
    pub(crate) async fn exchange_stats(&self, snapshot: Vec<u8>) -> Result<SharedStats, Unavailable> {
        match &self.log {
            Log::Memory(_) => Ok(SharedStats { topics: self.topics() as u64, snapshots: vec![snapshot] }),
            Log::Redis(log) => log.exchange_stats(&snapshot).await,
        }
    }

    /// How many subscriptions are open on this instance.
    pub fn subscribers(&self) -> usize {
        self.fanout.subscribers()
    }

    /// How many topics this instance holds a history (in memory) or subscribers for.
    pub(crate) fn topics(&self) -> usize {
        match &self.log {
            Log::Memory(log) => log.topics(&self.fanout),
            Log::Redis(_) => self.fanout.count_followed(|_| true),
        }
    }

    /// Forgets every event older than the history's age, and every topic left with no event
    /// and no subscriber, so that thousands of idle session topics do not each pin memory.
    pub(crate) async fn purge(&self) {
        self.rates.forget_idle(Instant::now());
        match &self.log {
            Log::Memory(log) => log.purge(&self.fanout),
            Log::Redis(log) => {
                // Unavailable is logged by the connection; the next purge catches up.
                let _ = log.purge().await;
            }
        }
    }

    /// The id of the latest event, or `<incarnation>-0` before the first.
    pub async fn last_id(&self) -> Result<EventId, Unavailable> {
        match &self.log {
            Log::Memory(log) => Ok(log.top()),
            Log::Redis(log) => log.top().await,
        }
    }

    /// The reset frame carries the current position as its id, so the client's next reconnect
    /// resumes from here instead of repeating the same reset.
    fn reset_frame(&self, reason: ResetReason, top: EventId) -> Bytes {
        let data = serde_json::to_string(&ResetNotice::from(reason)).expect("a notice serialises");
        event::frame(Some(top), Some(&EventName::known(RESET_EVENT)), &data)
    }
}

/// What the Redis reader may do to this instance's subscribers, and nothing more: hand them the
/// entries it reads, and tell them when it cannot (a reset for everyone when the log lost its
/// history, or the end of every stream when it skipped entries, so that clients resume exactly).
pub(super) trait LocalSubscribers: Send + Sync {
    /// How many frames may wait for one subscriber.
    fn queue_len(&self) -> usize;
    /// Hands a published frame to the subscribers of `topic`; returns how many took it.
    fn deliver(&self, topic: &Topic, id: EventId, frame: &Bytes, published: Instant) -> usize;
    /// Sends every subscriber a reset positioned at `top`.
    fn reset_all(&self, top: EventId);
    /// Ends every subscriber's stream after what it holds; returns how many there were.
    fn drop_all(&self) -> usize;
    /// The reader has found its place in the log: live events reach subscribers from now on.
    fn follow_live(&self);
}

impl LocalSubscribers for Hub {
    fn queue_len(&self) -> usize {
        self.settings.queue_len
    }

    fn deliver(&self, topic: &Topic, id: EventId, frame: &Bytes, published: Instant) -> usize {
        Hub::deliver(self, topic, id, frame, published)
    }

    fn reset_all(&self, top: EventId) {
        let frame = self.reset_frame(ResetReason::OtherIncarnation, top);
        self.fanout.deliver_to_all(top, &frame);
    }

    fn drop_all(&self) -> usize {
        self.fanout.drop_all()
    }

    fn follow_live(&self) {
        self.following.send_replace(true);
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
                _ = ticks.tick() => hub.purge().await,
            }
        }
    });
}

/// Now, in milliseconds since the Unix epoch (0 for a clock set before it): what the epochs of
/// ids are made of, and what the Redis log's publish times are compared with.
pub(crate) fn unix_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64)
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

/// One live delivery in this many, per subscriber, goes into the publish-to-write histogram
/// (each subscriber's first included). Observing locks the histogram: with every delivery
/// observed, one event to 10,000 subscribers cost 10,000 lock round trips (`benches/fanout.rs`).
const LATENCY_SAMPLE_EVERY: u32 = 16;

/// What a subscription sends before any live frame, each with the index of its topic (none for a
/// reset), and the position it reaches: live frames at or before it are already in the opening.
struct Opening {
    frames: Vec<(Option<usize>, Bytes)>,
    through: Option<EventId>,
}

/// One subscriber's view of the hub: an opening (replay or reset), then live frames.
pub struct Subscription {
    opening: BoxFuture<'static, Opening>,
    receiver: queue::Receiver<LiveFrame>,
    membership: Membership,
    /// The topics followed, to name them in frames when `with_topics` asks for it.
    topics: Vec<Topic>,
    with_topics: bool,
}

impl Subscription {
    /// Makes every event's data open with a line that names its topic (a reset, which is about
    /// every topic, stays as it is): for a connection that follows several topics.
    pub fn with_topics(self) -> Self {
        Self { with_topics: true, ..self }
    }

    /// The opening frames, then live frames until the hub drops this subscriber.
    pub fn into_stream(self) -> SubscriptionStream {
        let Self { opening, receiver, membership, topics, with_topics } = self;
        SubscriptionStream {
            opening: Some(opening),
            replayed: Vec::new().into_iter(),
            through: None,
            receiver,
            membership,
            // Kept for the life of the stream only when needed: most streams do not ask for topics.
            topics: if with_topics { topics } else { Vec::new() },
            with_topics,
            delivered: 0,
        }
    }
}

/// The frames of one subscription: the opening's (a replay or a reset), then live ones until the
/// hub drops this subscriber, who leaves the hub exactly when the stream is dropped, however it
/// ends. One state machine rather than a chain of stream combinators, because every open stream
/// holds one: the chain (once, flatten, chain, filter, map) cost about 300 bytes a stream more.
pub struct SubscriptionStream {
    /// Until it completes.
    opening: Option<BoxFuture<'static, Opening>>,
    replayed: std::vec::IntoIter<(Option<usize>, Bytes)>,
    /// The last event the opening replayed, which the live frames may repeat.
    through: Option<EventId>,
    receiver: queue::Receiver<LiveFrame>,
    membership: Membership,
    topics: Vec<Topic>,
    with_topics: bool,
    delivered: u32,
}

impl Stream for SubscriptionStream {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let this = &mut *self;
        if let Some(opening) = &mut this.opening {
            let Opening { frames, through } = ready!(opening.as_mut().poll(cx));
            (this.opening, this.replayed, this.through) = (None, frames.into_iter(), through);
        }
        if let Some((index, frame)) = this.replayed.next() {
            return Poll::Ready(Some(match index {
                Some(index) if this.with_topics => event::with_topic_line(&frame, &this.topics[index]),
                _ => frame,
            }));
        }
        loop {
            let Some(frame) = ready!(this.receiver.poll_recv(cx)) else {
                return Poll::Ready(None);
            };
            let replayed = this.through.is_some_and(|through| {
                frame.id.incarnation == through.incarnation && frame.id.seq <= through.seq
            });
            if replayed {
                continue;
            }
            if this.delivered.is_multiple_of(LATENCY_SAMPLE_EVERY) {
                this.membership.hub.stats.publish_to_write.observe(frame.published.elapsed().as_secs_f64());
            }
            this.delivered = this.delivered.wrapping_add(1);
            return Poll::Ready(Some(if this.with_topics {
                frame.with_topic()
            } else {
                frame.bytes.clone()
            }));
        }
    }
}

/// Removes its subscriber from the hub when dropped, however the stream ends.
struct Membership {
    hub: Arc<Hub>,
    key: u64,
    /// Who the subscriber is, and the topics told of its departure.
    announced: Option<(Arc<str>, Vec<Topic>)>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.hub.fanout.leave(self.key);
        if let Some((who, topics)) = self.announced.take() {
            self.hub.announce(LEAVE_EVENT, &who, topics);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    pub(super) fn settings() -> HubSettings {
        HubSettings {
            history_len: 100,
            history_age: Duration::from_secs(600),
            history_bytes: 1 << 20,
            history_total_bytes: 1 << 30,
            max_replay_events: 1000,
            max_replay_bytes: 1 << 20,
            max_concurrent_replays: 4,
            queue_len: 16,
            presence_events: vec![],
        }
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

    async fn publish(hub: &Hub, topic_name: &str, data: &str) -> Published {
        hub.publish(NewEvent::new(topic(topic_name), data)).await.unwrap()
    }

    async fn publish_once(hub: &Hub, event: NewEvent, key_text: &str) -> Result<Published, PublishError> {
        Ok(hub.publish_batch(vec![(event, Some(key(key_text)))]).await?[0])
    }

    /// What a subscription of `topics` resuming after `last_event_id` opens with.
    async fn opening(hub: &Hub, topics: &[&str], last_event_id: &str) -> Vec<String> {
        let topics: Vec<Topic> = topics.iter().map(|name| topic(name)).collect();
        hub.replay(&topics, last_event_id)
            .await
            .unwrap()
            .frames
            .iter()
            .map(|(_, frame)| text(frame))
            .collect()
    }

    async fn next(subscription: &mut Subscription) -> String {
        text(&subscription.receiver.recv().await.expect("a live frame").bytes)
    }

    #[tokio::test]
    async fn events_older_than_the_maximum_age_leave_the_history() {
        let hub = Hub::new(1, HubSettings { history_age: Duration::ZERO, ..settings() });
        publish(&hub, "a", "old").await;
        publish(&hub, "a", "newer").await;
        let opening = opening(&hub, &["a"], "1-1").await;
        assert!(opening[0].contains("expired"));
    }

    #[tokio::test]
    async fn a_full_queue_drops_that_subscriber_without_slowing_the_publisher_or_others() {
        let hub = Hub::new(1, HubSettings { queue_len: 2, ..settings() });
        let slow = hub.subscribe(vec![topic("a")], None);
        let mut fast = hub.subscribe(vec![topic("a")], None);

        for n in 0..3 {
            publish(&hub, "a", &n.to_string()).await;
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

    #[tokio::test]
    async fn an_idempotency_key_publishes_once_while_its_event_is_in_the_history() {
        let hub = Hub::new(1, HubSettings { history_len: 1, ..settings() });
        let first = publish_once(&hub, NewEvent::new(topic("a"), "x"), "key-1").await.unwrap();
        let again = publish_once(&hub, NewEvent::new(topic("a"), "x"), "key-1").await.unwrap();
        assert_eq!((again.id, again.duplicate), (first.id, true));
        assert_eq!(hub.last_id().await.unwrap(), first.id);

        publish(&hub, "a", "pushes key-1 out").await;
        assert!(!publish_once(&hub, NewEvent::new(topic("a"), "x"), "key-1").await.unwrap().duplicate);
    }

    #[tokio::test]
    async fn idle_topics_are_forgotten_and_a_resume_from_before_them_is_told_so() {
        let hub = Hub::new(1, HubSettings { history_age: Duration::ZERO, ..settings() });
        publish(&hub, "x", "old news").await;
        let watching = hub.subscribe(vec![topic("y")], None);
        assert_eq!(hub.topics(), 2);

        hub.purge().await;
        assert_eq!(hub.topics(), 1, "only the subscribed topic is left");
        drop(watching);
        hub.purge().await;
        assert_eq!(hub.topics(), 0);

        let opening_x = opening(&hub, &["x"], "1-0").await;
        assert!(opening_x[0].contains("\"reason\":\"expired\""), "{opening_x:?}");
        assert!(opening(&hub, &["x"], "1-1").await.is_empty(), "nothing after the last id");
    }

    #[tokio::test]
    async fn a_topic_forgotten_while_idle_and_then_published_to_again_still_tells_of_its_gap() {
        let hub = Hub::new(
            1,
            HubSettings { history_len: 100, history_age: Duration::from_millis(50), ..settings() },
        );
        publish(&hub, "x", "missed, then forgotten with its idle topic").await;
        tokio::time::sleep(Duration::from_millis(60)).await;
        hub.purge().await;
        publish(&hub, "x", "the topic is back").await;

        let opening = opening(&hub, &["x"], "1-0").await;
        assert!(opening[0].contains("\"reason\":\"expired\""), "{opening:?}");
    }

    #[tokio::test]
    async fn a_resume_that_missed_more_than_one_replay_carries_opens_with_a_reset_that_says_so() {
        // Three events of 17 bytes each ("id: 1-n\ndata: x\n\n").
        let hub = Hub::new(1, HubSettings { max_replay_events: 2, max_replay_bytes: 100, ..settings() });
        for _ in 0..3 {
            publish(&hub, "a", "x").await;
        }
        assert_eq!(opening(&hub, &["a"], "1-1").await.len(), 2, "two events are within the bound");
        let too_many = opening(&hub, &["a"], "1-0").await;
        assert!(too_many[0].starts_with("id: 1-3\nevent: reset\n"), "{too_many:?}");
        assert!(too_many[0].contains("\"reason\":\"replay-too-large\""), "{too_many:?}");

        assert_eq!(hub.stats.resets.get(), 1);

        let hub = Hub::new(1, HubSettings { max_replay_bytes: 33, ..settings() });
        for _ in 0..2 {
            publish(&hub, "a", "x").await;
        }
        let too_big = opening(&hub, &["a"], "1-0").await;
        assert!(too_big[0].contains("\"reason\":\"replay-too-large\""), "34 bytes: {too_big:?}");
        assert_eq!(opening(&hub, &["a"], "1-1").await.len(), 1);
    }

    #[tokio::test]
    async fn a_topic_keeps_no_more_bytes_than_its_bound_and_always_its_newest_event() {
        // Each frame is 24 bytes ("id: 1-n\ndata: 12345678\n\n").
        let hub = Hub::new(1, HubSettings { history_bytes: 50, ..settings() });
        for _ in 0..4 {
            publish(&hub, "a", "12345678").await;
        }
        let kept = opening(&hub, &["a"], "1-2").await;
        assert_eq!(kept.len(), 2, "two 24-byte frames fit in 50 bytes, not three");
        assert!(opening(&hub, &["a"], "1-1").await[0].contains("\"reason\":\"expired\""));
        assert_eq!(hub.stats.history_bytes.get(), 48);
        assert_eq!(hub.stats.history_evicted_for_bytes.get(), 2);

        let large = "x".repeat(100);
        let newest = publish(&hub, "a", &large).await.id;
        assert_eq!(opening(&hub, &["a"], "1-4").await.len(), 1, "an event over the bound stays alone");
        assert_eq!(opening(&hub, &["a"], &newest.to_string()).await.len(), 0);
    }

    #[tokio::test]
    async fn a_history_counts_an_event_at_the_size_it_is_sent_with_each_line_break_framed() {
        let hub = Hub::new(1, settings());
        // 100 line breaks are 101 `data: ` lines of 7 bytes, after `id: 1-1\n` and before `\n`.
        publish(&hub, "a", &"\n".repeat(100)).await;
        assert_eq!(hub.stats.history_bytes.get(), 8 + 101 * 7 + 1);
    }

    #[tokio::test]
    async fn past_the_bound_on_every_history_together_the_oldest_events_of_any_topic_go_first() {
        // Each frame is 24 bytes; the bound holds four.
        let hub = Hub::new(1, HubSettings { history_total_bytes: 100, ..settings() });
        publish(&hub, "quiet", "12345678").await;
        for _ in 0..2 {
            publish(&hub, "busy", "12345678").await;
        }
        publish(&hub, "other", "12345678").await;
        assert_eq!(hub.stats.history_bytes.get(), 96);
        assert_eq!(opening(&hub, &["quiet"], "1-0").await.len(), 1);

        publish(&hub, "busy", "12345678").await;
        assert_eq!(hub.stats.history_bytes.get(), 96);
        assert_eq!(hub.stats.history_evicted_for_bytes.get(), 1);
        let quiet = opening(&hub, &["quiet"], "1-0").await;
        assert!(quiet[0].contains("\"reason\":\"expired\""), "the oldest event went: {quiet:?}");
        assert_eq!(opening(&hub, &["busy", "other"], "1-1").await.len(), 4, "the others stay");
        assert_eq!(hub.topics(), 2, "a topic left empty and unwatched is forgotten");
    }

    /// The hub's promises on each backend: every test here runs in memory and on a throwaway
    /// `redis-server`, with ids written relative to the backend's epoch.
    mod contract {
        use tokio_util::sync::CancellationToken;

        use super::*;

        /// A hub on one backend, and what keeps the backend alive.
        pub(super) struct OnBackend {
            hub: Arc<Hub>,
            epoch: u64,
            shutdown: CancellationToken,
            #[cfg(feature = "testing")]
            _redis: Option<crate::testing::RedisServer>,
        }

        impl OnBackend {
            pub(super) fn in_memory(settings: HubSettings) -> Self {
                Self {
                    hub: Hub::new(1, settings),
                    epoch: 1,
                    shutdown: CancellationToken::new(),
                    #[cfg(feature = "testing")]
                    _redis: None,
                }
            }

            #[cfg(feature = "testing")]
            pub(super) async fn on_redis(settings: HubSettings) -> Self {
                let server = crate::testing::RedisServer::start().await;
                let redis = Redis::open(&server.url().parse().expect("a Redis URL"), Default::default(), 0);
                let shutdown = CancellationToken::new();
                let hub = Hub::on_redis(redis, settings, ReaderStats::default(), &shutdown);
                hub.following(Duration::from_secs(5)).await;
                let epoch = hub.last_id().await.expect("Redis answers").incarnation;
                Self { hub, epoch, shutdown, _redis: Some(server) }
            }

            /// The id of the `seq`th event since the backend started.
            fn id(&self, seq: u64) -> String {
                EventId { incarnation: self.epoch, seq }.to_string()
            }

            /// The frame of an unnamed event.
            fn frame(&self, seq: u64, data: &str) -> String {
                format!("id: {}\ndata: {data}\n\n", self.id(seq))
            }
        }

        impl Drop for OnBackend {
            fn drop(&mut self) {
                self.shutdown.cancel();
            }
        }

        /// `contract!(name, settings, |backend| body)`: the test `name::in_memory`, and
        /// `name::on_redis` where a `redis-server` can be started (feature `testing`).
        macro_rules! contract {
            ($name:ident, $settings:expr, |$backend:ident| $body:block) => {
                mod $name {
                    use super::*;

                    async fn holds($backend: &OnBackend) $body

                    #[tokio::test]
                    async fn in_memory() {
                        holds(&OnBackend::in_memory($settings)).await;
                    }

                    #[cfg(feature = "testing")]
                    #[tokio::test]
                    async fn on_redis() {
                        holds(&OnBackend::on_redis($settings).await).await;
                    }
                }
            };
        }

        contract!(ids_grow_by_one_across_all_topics, settings(), |backend| {
            let hub = &backend.hub;
            let a = publish(hub, "a", "1").await;
            let b = publish(hub, "b", "2").await;
            assert_eq!((a.id.to_string(), b.id.to_string()), (backend.id(1), backend.id(2)));
            assert_eq!(hub.last_id().await.unwrap().to_string(), backend.id(2));
        });

        contract!(subscribers_get_only_their_topics_in_publish_order, settings(), |backend| {
            let hub = &backend.hub;
            let mut both = hub.subscribe(vec![topic("a"), topic("b")], None);
            let mut only_b = hub.subscribe(vec![topic("b")], None);

            assert_eq!(publish(hub, "a", "one").await.subscribers, 1);
            assert_eq!(publish(hub, "c", "nobody").await.subscribers, 0);
            assert_eq!(publish(hub, "b", "two").await.subscribers, 2);

            assert_eq!(next(&mut both).await, backend.frame(1, "one"));
            assert_eq!(next(&mut both).await, backend.frame(3, "two"));
            assert_eq!(next(&mut only_b).await, backend.frame(3, "two"));
        });

        contract!(resuming_replays_missed_events_of_its_topics_then_goes_live, settings(), |backend| {
            let hub = &backend.hub;
            let seen = publish(hub, "a", "seen").await.id;
            publish(hub, "a", "missed").await;
            publish(hub, "other", "not mine").await;

            let resumed = hub.subscribe(vec![topic("a")], Some(&seen.to_string()));
            publish(hub, "a", "live").await;

            let frames: Vec<_> = resumed.into_stream().take(2).map(|frame| text(&frame)).collect().await;
            assert_eq!(frames, [backend.frame(2, "missed"), backend.frame(4, "live")]);
        });

        contract!(an_event_published_while_a_resume_is_read_comes_once, settings(), |backend| {
            let hub = &backend.hub;
            publish(hub, "a", "seen").await;
            // Joined, but its replay not read yet: the next event is both queued and in the history.
            let resumed = hub.subscribe(vec![topic("a")], Some(&backend.id(1)));
            publish(hub, "a", "during").await;
            publish(hub, "a", "after").await;

            let frames: Vec<_> = resumed.into_stream().take(2).map(|frame| text(&frame)).collect().await;
            assert_eq!(frames, [backend.frame(2, "during"), backend.frame(3, "after")]);
        });

        contract!(resuming_from_the_latest_id_replays_nothing, settings(), |backend| {
            let latest = publish(&backend.hub, "a", "x").await.id;
            assert!(opening(&backend.hub, &["a"], &latest.to_string()).await.is_empty());
        });

        contract!(
            ids_that_cannot_be_resumed_open_with_a_reset_that_says_why,
            HubSettings { history_len: 2, ..settings() },
            |backend| {
                let hub = &backend.hub;
                for n in 0..4 {
                    publish(hub, "a", &n.to_string()).await;
                }
                let other_incarnation = EventId { incarnation: backend.epoch - 1, seq: 1 }.to_string();
                for (last_event_id, reason) in [
                    ("garbage".to_owned(), "malformed-id"),
                    (other_incarnation, "other-incarnation"),
                    (backend.id(99), "unknown-id"),
                    (backend.id(1), "expired"),
                ] {
                    let opening = opening(hub, &["a"], &last_event_id).await;
                    assert_eq!(opening.len(), 1, "{last_event_id}");
                    let frame = &opening[0];
                    let reset = format!("id: {}\nevent: reset\ndata: {{", backend.id(4));
                    assert!(frame.starts_with(&reset), "{last_event_id}: {frame}");
                    assert!(frame.contains(&format!("\"reason\":\"{reason}\"")), "{last_event_id}: {frame}");
                }
                assert_eq!(hub.stats.resets.get(), 4);
                // The oldest id still in the history resumes exactly.
                assert_eq!(opening(hub, &["a"], &backend.id(2)).await.len(), 2);
            }
        );

        contract!(an_idempotency_key_publishes_once_and_belongs_to_its_topic, settings(), |backend| {
            let hub = &backend.hub;
            let first = publish_once(hub, NewEvent::new(topic("a"), "x"), "k").await.unwrap();
            let again = publish_once(hub, NewEvent::new(topic("a"), "x"), "k").await.unwrap();
            assert_eq!((again.id, again.duplicate), (first.id, true));
            assert_eq!(hub.last_id().await.unwrap(), first.id, "the duplicate published nothing");
            let on_b = publish_once(hub, NewEvent::new(topic("b"), "x"), "k").await.unwrap();
            assert!(!on_b.duplicate);
            assert_ne!(first.id, on_b.id);
        });

        contract!(an_idempotency_key_reused_for_another_event_is_refused, settings(), |backend| {
            let hub = &backend.hub;
            let first = publish_once(hub, NewEvent::new(topic("a"), "x"), "k").await.unwrap();
            let other_data = publish_once(hub, NewEvent::new(topic("a"), "y"), "k").await;
            let named = NewEvent::new(topic("a"), "x").named(EventName::parse("n").unwrap());
            let other_name = publish_once(hub, named, "k").await;
            let reused = Err(PublishError::KeyReused(KeyReused { index: 0, first: first.id }));
            assert_eq!(other_data, reused);
            assert_eq!(other_name, reused);
            assert_eq!(hub.last_id().await.unwrap(), first.id, "a refused publish published nothing");
        });

        contract!(a_batch_takes_consecutive_ids_in_order_and_reaches_each_topic, settings(), |backend| {
            let hub = &backend.hub;
            let mut a = hub.subscribe(vec![topic("a")], None);
            let mut b = hub.subscribe(vec![topic("b")], None);
            let batch = vec![
                (NewEvent::new(topic("a"), "1"), None),
                (NewEvent::new(topic("b"), "2"), Some(key("k"))),
                (NewEvent::new(topic("a"), "3"), None),
            ];
            let published = hub.publish_batch(batch).await.unwrap();
            let ids: Vec<String> = published.iter().map(|published| published.id.to_string()).collect();
            assert_eq!(ids, [backend.id(1), backend.id(2), backend.id(3)]);
            assert!(published.iter().all(|published| published.subscribers == 1 && !published.duplicate));
            assert_eq!(next(&mut a).await, backend.frame(1, "1"));
            assert_eq!(next(&mut a).await, backend.frame(3, "3"));
            assert_eq!(next(&mut b).await, backend.frame(2, "2"));
        });

        contract!(a_batch_with_a_reused_key_publishes_none_of_its_events, settings(), |backend| {
            let hub = &backend.hub;
            let first = publish_once(hub, NewEvent::new(topic("b"), "x"), "k").await.unwrap();
            let batch = vec![
                (NewEvent::new(topic("a"), "1"), None),
                (NewEvent::new(topic("a"), "2"), Some(key("fresh"))),
                (NewEvent::new(topic("b"), "not x"), Some(key("k"))),
            ];
            let refused = hub.publish_batch(batch).await;
            assert_eq!(refused, Err(PublishError::KeyReused(KeyReused { index: 2, first: first.id })));
            assert_eq!(hub.last_id().await.unwrap(), first.id, "the refused batch published nothing");
            // Its fresh key was not taken either: it publishes now.
            let fresh = publish_once(hub, NewEvent::new(topic("a"), "2"), "fresh").await.unwrap();
            assert!(!fresh.duplicate);
        });

        contract!(a_batch_retried_whole_answers_the_first_ids_as_duplicates, settings(), |backend| {
            let hub = &backend.hub;
            let batch = || {
                vec![
                    (NewEvent::new(topic("a"), "1"), Some(key("one"))),
                    (NewEvent::new(topic("b"), "2"), Some(key("two"))),
                ]
            };
            let first = hub.publish_batch(batch()).await.unwrap();
            let again = hub.publish_batch(batch()).await.unwrap();
            assert_eq!(
                again.iter().map(|p| (p.id, p.duplicate)).collect::<Vec<_>>(),
                [(first[0].id, true), (first[1].id, true)]
            );
            assert_eq!(hub.last_id().await.unwrap(), first[1].id);
        });

        contract!(
            a_busy_topic_does_not_push_a_quiet_topics_events_out_of_its_history,
            HubSettings { history_len: 2, ..settings() },
            |backend| {
                publish(&backend.hub, "quiet", "the one event").await;
                for n in 0..5 {
                    publish(&backend.hub, "busy", &n.to_string()).await;
                }
                let quiet = opening(&backend.hub, &["quiet"], &backend.id(0)).await;
                assert_eq!(quiet, [backend.frame(1, "the one event")]);
            }
        );

        contract!(
            a_resume_across_topics_replays_in_id_order_or_resets_if_any_topic_lost_events,
            HubSettings { history_len: 2, ..settings() },
            |backend| {
                let hub = &backend.hub;
                publish(hub, "a", "1").await;
                publish(hub, "b", "2").await;
                publish(hub, "a", "3").await;

                let replayed = opening(hub, &["b", "a"], &backend.id(0)).await;
                let ids: Vec<_> =
                    replayed.iter().map(|frame| frame.lines().next().unwrap().to_owned()).collect();
                let expected: Vec<_> = (1..=3).map(|seq| format!("id: {}", backend.id(seq))).collect();
                assert_eq!(ids, expected);

                publish(hub, "a", "4").await;
                let opening_both = opening(hub, &["b", "a"], &backend.id(0)).await;
                assert!(opening_both[0].contains("\"reason\":\"expired\""), "{opening_both:?}");
                assert_eq!(opening(hub, &["b"], &backend.id(0)).await.len(), 1, "b alone lost nothing");
            }
        );

        contract!(
            a_resume_past_the_replay_bounds_opens_with_a_reset_that_says_so,
            HubSettings { max_replay_events: 2, ..settings() },
            |backend| {
                let hub = &backend.hub;
                for _ in 0..3 {
                    publish(hub, "a", "x").await;
                }
                assert_eq!(
                    opening(hub, &["a"], &backend.id(1)).await.len(),
                    2,
                    "two events are within the bound"
                );
                let too_many = opening(hub, &["a"], &backend.id(0)).await;
                assert!(
                    too_many[0].starts_with(&format!("id: {}\nevent: reset\n", backend.id(3))),
                    "{too_many:?}"
                );
                assert!(too_many[0].contains("\"reason\":\"replay-too-large\""), "{too_many:?}");
                assert_eq!(hub.stats.resets.get(), 1);
            }
        );

        contract!(
            resumes_past_the_concurrent_replay_limit_wait_their_turn_and_are_not_refused,
            HubSettings { max_concurrent_replays: 1, ..settings() },
            |backend| {
                let hub = &backend.hub;
                publish(hub, "a", "missed").await;
                let busy = hub.replays.acquire().await.unwrap();

                let mut waiting =
                    Box::pin(hub.subscribe(vec![topic("a")], Some(&backend.id(0))).into_stream());
                let waited = tokio::time::timeout(Duration::from_millis(50), waiting.next()).await;
                assert!(waited.is_err(), "the resume waits while every replay permit is taken");

                drop(busy);
                assert_eq!(text(&waiting.next().await.unwrap()), backend.frame(1, "missed"));
            }
        );

        contract!(
            a_page_of_history_stops_at_its_limit_and_resets_where_a_resume_would,
            HubSettings { history_len: 3, ..settings() },
            |backend| {
                let hub = &backend.hub;
                for n in 1..=5 {
                    publish(hub, "a", &n.to_string()).await;
                }
                publish(hub, "b", "elsewhere").await;
                let first = hub.history(&topic("a"), None, 2).await.unwrap();
                assert_eq!(
                    first.frames.iter().map(text).collect::<Vec<_>>(),
                    [backend.frame(3, "3"), backend.frame(4, "4")]
                );
                assert!(first.more && first.reset.is_none());
                let rest = hub.history(&topic("a"), Some(&backend.id(4)), 2).await.unwrap();
                assert_eq!(rest.frames.iter().map(text).collect::<Vec<_>>(), [backend.frame(5, "5")]);
                assert!(!rest.more);
                assert_eq!(rest.top.to_string(), backend.id(6));
                let trimmed = hub.history(&topic("a"), Some(&backend.id(1)), 2).await.unwrap();
                assert_eq!((trimmed.frames.len(), trimmed.reset), (0, Some(ResetReason::Expired)));
            }
        );

        contract!(dropping_a_subscription_leaves_the_hub, settings(), |backend| {
            let hub = &backend.hub;
            let subscription = hub.subscribe(vec![topic("a"), topic("b")], None);
            assert_eq!(hub.subscribers(), 1);
            drop(subscription);
            assert_eq!(hub.subscribers(), 0);
            assert_eq!(publish(hub, "a", "x").await.subscribers, 0);
        });
    }
}
