//! The event log in Redis (`--redis-url`), shared by every instance: one Lua script call per
//! batch of waiting publishes, a stream per topic for replay, and one shared log stream that each
//! instance's reader follows on a connection of its own to feed its local subscribers.
//!
//! Ids are `<epoch>-<seq>`: the epoch is set once in Redis, so an id means the same on every
//! instance, and a Redis that lost its data (and so its epoch) is noticed, never replayed from
//! zero. The layout and its costs are in docs/architecture.md.
//!
//! Every key expires: a topic's stream a minute after its history's age (the purge usually
//! forgets it first), the shared keys a day after the last instance touched them (each reader
//! renews them every idle second, so they never expire while Herald runs).

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
use redis::Script;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{
    unix_millis, Bounds, Gap, Hub, HubSettings, HubStats, KeyReused, Missed, Once, Past, PublishError, Start,
};
use crate::protocol::ResetReason;
use crate::server::{
    event::{self, EventId, NewEvent, Topic},
    redis::{keys, Backoff, Redis, Unavailable},
};

/// How many entries the shared log keeps (about: trimming is by whole nodes). A reader that
/// falls further behind than this ends its streams, and their clients resume from the topics'
/// own histories.
const LOG_LEN: u64 = 100_000;

/// How long the reader's blocking read waits before it checks the epoch again.
const READ_BLOCK: Duration = Duration::from_secs(1);

/// How many log entries one read takes at most.
const READ_BATCH: usize = 1_000;

/// How many waiting publishes go to Redis in one script call at most.
const PUBLISH_BATCH: usize = 64;

/// How many topics one purge script forgets at most, so that it holds Redis for milliseconds.
const PURGE_BATCH: usize = 1_000;

/// How many purge scripts one purge runs at most (a hundred thousand topics); whatever is left
/// expires by itself, and a resume notices that as it notices a purge.
const PURGE_ROUNDS: usize = 100;

/// How long a topic's stream outlives its history's age, unless the purge forgets it first.
const TOPIC_GRACE: Duration = Duration::from_secs(60);

/// How long the shared keys outlive the last instance that renewed them (at least as long as a
/// topic's stream, which they describe).
const SHARED_KEYS_LIVE: Duration = Duration::from_secs(24 * 3600);

pub(super) struct RedisLog {
    redis: Redis,
    settings: HubSettings,
    /// The hub's series: bytes held by every history in Redis (as the last script saw them),
    /// and events forgotten for a byte bound.
    history_bytes: Gauge,
    evicted_for_bytes: Counter,
    /// Publishes on their way to the publisher task.
    publishes: mpsc::Sender<Pending>,
    /// The epoch this instance last saw in Redis (0: not yet known).
    epoch: AtomicU64,
    scripts: Scripts,
}

struct Scripts {
    publish: Script,
    since: Script,
    purge: Script,
    claim_epoch: Script,
}

/// The keys, all under `herald:`.
/// What the reader reports, for the metrics.
#[derive(Clone, Default)]
pub(crate) struct ReaderStats {
    /// Milliseconds from Redis accepting the latest event to this reader taking it.
    pub lag_ms: Gauge,
}

/// A publish waiting for the publisher task, and where its answer goes.
pub(super) struct Pending {
    topic: Topic,
    /// The frame after its id line, which the script writes.
    rest: Bytes,
    once_key: String,
    digest: String,
    reply: oneshot::Sender<Result<(EventId, bool), PublishError>>,
}

impl RedisLog {
    /// The log, and the receiving end of its publishes for [`spawn_publisher`].
    pub(super) fn new(
        redis: Redis,
        settings: HubSettings,
        stats: &HubStats,
    ) -> (Self, mpsc::Receiver<Pending>) {
        let (publishes, waiting) = mpsc::channel(PUBLISH_BATCH * 4);
        let log = Self {
            redis,
            settings,
            history_bytes: stats.history_bytes.clone(),
            evicted_for_bytes: stats.history_evicted_for_bytes.clone(),
            publishes,
            epoch: AtomicU64::new(0),
            scripts: Scripts {
                publish: Script::new(include_str!("lua/publish.lua")),
                since: Script::new(include_str!("lua/since.lua")),
                purge: Script::new(include_str!("lua/purge.lua")),
                claim_epoch: Script::new(include_str!("lua/claim_epoch.lua")),
            },
        };
        (log, waiting)
    }

    /// Publishes `event`: the publisher task sends it to Redis with whatever else is waiting, in
    /// one script call. Redis makes it visible to every instance's reader; this instance
    /// delivers it to its own subscribers the same way.
    pub(super) async fn append(
        &self,
        event: &NewEvent,
        once: Option<&Once>,
    ) -> Result<(EventId, bool), PublishError> {
        let (once_key, digest) = match once {
            Some(once) => (keys::once(&event.topic, &once.key), hex::encode(once.digest)),
            None => (String::new(), String::new()),
        };
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            topic: event.topic.clone(),
            rest: event::frame(None, event.name.as_ref(), &event.data),
            once_key,
            digest,
            reply,
        };
        self.publishes.send(pending).await.map_err(|_| PublishError::Unavailable)?;
        answer.await.unwrap_or(Err(PublishError::Unavailable))
    }

    /// Runs the publish script for `batch`, in order; one answer per event.
    async fn append_batch(
        &self,
        batch: &[Pending],
    ) -> Result<Vec<Result<(EventId, bool), PublishError>>, Unavailable> {
        // A second try after adopting the epoch another instance has just set.
        for _ in 0..2 {
            let epoch = self.epoch().await?;
            let mut invocation = self.scripts.publish.key(keys::SHARED.as_slice());
            invocation.arg(epoch).arg(self.settings.history_len).arg(LOG_LEN);
            invocation.arg(self.settings.history_age.as_millis() as u64);
            invocation.arg(self.settings.history_bytes).arg(self.topic_life()).arg(self.shared_life());
            for pending in batch {
                invocation.key(keys::topic(&pending.topic)).key(&pending.once_key);
                invocation.arg(pending.topic.as_str()).arg(pending.rest.as_ref()).arg(&pending.digest);
            }
            let answer: Vec<String> = self.run(&invocation).await?;
            let id = |seq: &String| {
                Ok(EventId { incarnation: epoch, seq: number("an event's id", seq.as_bytes())? })
            };
            match answer.as_slice() {
                [status, total, evicted, answers @ ..]
                    if status == "ok" && answers.len() == 2 * batch.len() =>
                {
                    self.history_bytes.set(number("the history's bytes", total.as_bytes())? as i64);
                    self.evicted_for_bytes.inc_by(number("the evicted events", evicted.as_bytes())?);
                    return answers
                        .chunks_exact(2)
                        .map(|answer| {
                            Ok(match answer[0].as_str() {
                                "ok" => Ok((id(&answer[1])?, false)),
                                "duplicate" => Ok((id(&answer[1])?, true)),
                                _ => Err(PublishError::KeyReused(KeyReused { first: id(&answer[1])? })),
                            })
                        })
                        .collect();
                }
                [status, current] if status == "epoch" => drop(self.adopt(current)?),
                [status] if status == "lost" => drop(self.claim_epoch().await?),
                _ => return Err(Unavailable),
            }
        }
        Err(Unavailable)
    }

    /// The frames of `topics` after `since`, in id order, or why they cannot be told exactly,
    /// read on the replays' connection: however long that takes, it does not say Redis is down.
    pub(super) async fn since(
        &self,
        start: Start,
        topics: &[Topic],
        bounds: Bounds,
    ) -> Result<Result<Missed, Gap>, Unavailable> {
        // Without an id: no epoch to check, every event of the history after sequence 0.
        let (epoch, seq) = match start {
            Start::After(since) => (since.incarnation.to_string(), since.seq),
            Start::Oldest => (String::new(), 0),
        };
        loop {
            let mut invocation = self.scripts.since.key(keys::EPOCH);
            invocation.key(keys::SEQ).key(keys::IDLE_WATERMARK).key(keys::TOPICS);
            for topic in topics {
                invocation.key(keys::topic(topic));
            }
            invocation
                .arg(&epoch)
                .arg(seq)
                .arg(self.settings.history_age.as_millis() as u64)
                .arg(bounds.events)
                .arg(bounds.bytes)
                .arg(match bounds.past {
                    Past::Reset => "reset",
                    Past::Stop => "stop",
                });
            for topic in topics {
                invocation.arg(topic.as_str());
            }
            let answer: Vec<Vec<u8>> =
                invocation.invoke_async(&mut self.redis.replay_connection()).await.map_err(|err| {
                    tracing::debug!(%err, "a replay could not be read: the resume tries again");
                    Unavailable
                })?;
            let position = |epoch: &[u8], top: &[u8]| -> Result<EventId, Unavailable> {
                Ok(EventId {
                    incarnation: number("the epoch", epoch)?,
                    seq: number("the top of the log", top)?,
                })
            };
            match answer.as_slice() {
                [status] if status == b"lost" => {
                    self.claim_epoch().await?;
                }
                [status, epoch, top, reason] if status == b"gap" => {
                    let top = position(epoch, top)?;
                    let reason = match reason.as_slice() {
                        b"other-incarnation" => ResetReason::OtherIncarnation,
                        b"unknown-id" => ResetReason::UnknownId,
                        b"replay-too-large" => ResetReason::ReplayTooLarge,
                        _ => ResetReason::Expired,
                    };
                    return Ok(Err(Gap { reason, top }));
                }
                [status, epoch, top, entries @ ..]
                    if (status == b"ok" || status == b"more") && entries.len() % 3 == 0 =>
                {
                    let top = position(epoch, top)?;
                    // Each entry: its id, the index of its topic among `topics`, its frame.
                    let mut missed = entries
                        .chunks_exact(3)
                        .map(|entry| {
                            let index = number("a topic's index", &entry[1])? as usize;
                            if index >= topics.len() {
                                return Err(malformed("a topic's index", &entry[1]));
                            }
                            Ok((
                                number("an entry's id", &entry[0])?,
                                index,
                                Bytes::copy_from_slice(&entry[2]),
                            ))
                        })
                        .collect::<Result<Vec<(u64, usize, Bytes)>, Unavailable>>()?;
                    missed.sort_unstable_by_key(|(seq, _, _)| *seq);
                    return Ok(Ok(Missed {
                        frames: missed.into_iter().map(|(_, index, frame)| (index, frame)).collect(),
                        top,
                        more: status == b"more",
                    }));
                }
                _ => return Err(Unavailable),
            }
        }
    }

    /// The id of the latest event in Redis.
    pub(super) async fn top(&self) -> Result<EventId, Unavailable> {
        let epoch = self.epoch().await?;
        let seq: Option<u64> = self
            .redis
            .observe(redis::cmd("GET").arg(keys::SEQ).query_async(&mut self.redis.connection()).await)?;
        Ok(EventId { incarnation: epoch, seq: seq.unwrap_or(0) })
    }

    /// Forgets the topics idle for longer than the history's age, then, while every history
    /// together holds more than `history_total_bytes`, those published to longest ago: one batch
    /// after another until one comes back short, at most [`PURGE_ROUNDS`] of them.
    pub(super) async fn purge(&self) -> Result<(), Unavailable> {
        for _ in 0..PURGE_ROUNDS {
            let mut invocation = self.scripts.purge.key(keys::SEQ);
            invocation.key(keys::IDLE_WATERMARK).key(keys::TOPICS);
            invocation.key(keys::TOPIC_BYTES).key(keys::HISTORY_BYTES);
            invocation.arg(self.settings.history_age.as_millis() as u64).arg(keys::TOPIC_PREFIX);
            invocation.arg(PURGE_BATCH).arg(self.settings.history_total_bytes).arg(self.shared_life());
            let (forgotten, evicted, total): (usize, u64, i64) = self.run(&invocation).await?;
            self.evicted_for_bytes.inc_by(evicted);
            self.history_bytes.set(total);
            if forgotten < PURGE_BATCH {
                break;
            }
        }
        Ok(())
    }

    /// How long a topic's stream lives after its latest event, in milliseconds.
    fn topic_life(&self) -> u64 {
        (self.settings.history_age + TOPIC_GRACE).as_millis() as u64
    }

    /// How long the shared keys live after the latest script that renewed them, in milliseconds.
    fn shared_life(&self) -> u64 {
        SHARED_KEYS_LIVE.max(self.settings.history_age + TOPIC_GRACE).as_millis() as u64
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, Unavailable> {
        self.redis.observe(invocation.invoke_async(&mut self.redis.connection()).await)
    }

    /// The epoch this instance knows, claimed in Redis on first use.
    async fn epoch(&self) -> Result<u64, Unavailable> {
        match self.epoch.load(Ordering::Acquire) {
            0 => self.claim_epoch().await,
            epoch => Ok(epoch),
        }
    }

    /// Sets the epoch in Redis unless it is set, renews the shared keys' lives, and adopts
    /// whatever epoch is there: after Redis lost its data, the first instance to notice sets a
    /// new one and the others adopt it.
    async fn claim_epoch(&self) -> Result<u64, Unavailable> {
        // Never 0, which stands for "not known yet".
        let proposal = unix_millis().max(1);
        let current: String = self
            .run(self.scripts.claim_epoch.key(keys::SHARED.as_slice()).arg(proposal).arg(self.shared_life()))
            .await?;
        self.adopt(&current)
    }

    fn adopt(&self, current: &str) -> Result<u64, Unavailable> {
        let epoch = number("the epoch", current.as_bytes())?;
        let before = self.epoch.swap(epoch, Ordering::AcqRel);
        if before != 0 && before != epoch {
            tracing::error!(before, now = epoch, "Redis lost its data: events are numbered in a new epoch, and every stream is told with a reset");
        }
        Ok(epoch)
    }
}

/// Sends the waiting publishes to Redis: as many as are waiting (up to [`PUBLISH_BATCH`]) in one
/// script call, so that under load Redis and the client pay their per-call costs once per batch,
/// while a lone publish goes at once. Runs until `shutdown`.
pub(super) fn spawn_publisher(
    log: Arc<RedisLog>,
    mut waiting: mpsc::Receiver<Pending>,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(PUBLISH_BATCH);
        loop {
            let first = tokio::select! {
                () = shutdown.cancelled() => return,
                first = waiting.recv() => match first {
                    Some(first) => first,
                    None => return,
                },
            };
            batch.push(first);
            while batch.len() < PUBLISH_BATCH {
                match waiting.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let answers = log.append_batch(&batch).await;
            for (index, pending) in batch.drain(..).enumerate() {
                let answer = match &answers {
                    Ok(answers) => answers[index],
                    Err(Unavailable) => Err(PublishError::Unavailable),
                };
                // The publisher may have gone (its request was cancelled): nothing to tell.
                let _ = pending.reply.send(answer);
            }
            // Past the bound on every history together, the topics published to longest ago go
            // now, not at the next purge: the publishers have their answers already.
            if log.history_bytes.get() > log.settings.history_total_bytes as i64 {
                let _ = log.purge().await;
            }
        }
    });
}

/// Follows the shared log from where this instance is, and delivers each entry to the local
/// subscribers of its topic, until `shutdown`. It reconnects with backoff, resumes after the last
/// entry it delivered, and tells its streams when it cannot: the log was trimmed past it (the
/// streams end, and their clients resume exactly from the topics' histories), or Redis lost its
/// data (every stream gets a reset).
pub(super) fn spawn_reader(
    hub: Arc<Hub>,
    log: Arc<RedisLog>,
    stats: ReaderStats,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let slice = (hub.settings.queue_len / 2).max(1);
        let mut reader = Reader { hub, log, slice, stats, position: None, backoff: Backoff::default() };
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = reader.run() => {}
        }
    });
}

struct Reader {
    hub: Arc<Hub>,
    log: Arc<RedisLog>,
    /// How many entries go to the queues between two yields: half a subscriber's queue.
    slice: usize,
    stats: ReaderStats,
    /// The last entry delivered: its epoch and sequence number (`None` before the first read).
    position: Option<EventId>,
    backoff: Backoff,
}

impl Reader {
    async fn run(&mut self) {
        loop {
            if let Err(Unavailable) = self.follow().await {
                tokio::time::sleep(self.backoff.next()).await;
            }
        }
    }

    /// One connection's worth of reading; returns when Redis fails.
    async fn follow(&mut self) -> Result<(), Unavailable> {
        let log = Arc::clone(&self.log);
        let mut connection = log.redis.dedicated_connection(READ_BLOCK).await?;
        self.check_epoch().await?;
        if self.position.is_none() {
            let last: redis::streams::StreamRangeReply = log.redis.observe(
                redis::cmd("XREVRANGE")
                    .arg(keys::LOG)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1)
                    .query_async(&mut connection)
                    .await,
            )?;
            let seq =
                last.ids.first().map_or(Ok(0), |entry| number("the log's last id", entry.id.as_bytes()))?;
            self.position = Some(EventId { incarnation: log.epoch.load(Ordering::Acquire), seq });
            // Subscribers that joined while Redis was unreachable at startup may have missed
            // events published since: their streams end, and their clients resume exactly.
            self.hub.fanout.drop_all();
            self.hub.following.send_replace(true);
        }
        self.backoff = Backoff::default();
        loop {
            let after = self.position.map_or(0, |position| position.seq);
            let read: redis::Value = log.redis.observe(
                redis::cmd("XREAD")
                    .arg("COUNT")
                    .arg(READ_BATCH)
                    .arg("BLOCK")
                    .arg(READ_BLOCK.as_millis() as u64)
                    .arg("STREAMS")
                    .arg(keys::LOG)
                    .arg(format!("{after}-0"))
                    .query_async(&mut connection)
                    .await,
            )?;
            match read {
                redis::Value::Nil => self.check_epoch().await?,
                reply => {
                    // A read may hold a thousand entries, far more than a subscriber's queue:
                    // handed over in slices of half a queue, with the streams' tasks let run in
                    // between, a client that keeps up is never dropped for a full queue.
                    let entries = LogEntry::all_of(reply);
                    for slice in entries.chunks(self.slice) {
                        for entry in slice {
                            self.deliver(entry);
                        }
                        tokio::task::yield_now().await;
                    }
                }
            }
        }
    }

    /// Compares the epoch in Redis with the one delivered so far: a new one means Redis lost its
    /// data, and every local stream gets a reset positioned at the new top. Claiming it renews
    /// the shared keys' lives, which this does every idle second.
    async fn check_epoch(&mut self) -> Result<(), Unavailable> {
        let log = Arc::clone(&self.log);
        let epoch = log.claim_epoch().await?;
        if let Some(position) = self.position.filter(|position| position.incarnation != epoch) {
            let top = log.top().await?;
            tracing::warn!(
                before = position.incarnation,
                now = epoch,
                "the log's epoch changed: resetting every stream"
            );
            self.hub.reset_everyone(top);
            self.position = Some(top);
        }
        Ok(())
    }

    fn deliver(&mut self, entry: &LogEntry) {
        let seq = entry.seq;
        let position = self.position.expect("positioned before reading");
        if position.seq != 0 && seq != position.seq + 1 {
            let dropped = self.hub.fanout.drop_all();
            tracing::warn!(
                after = position.seq,
                next = seq,
                dropped,
                "the shared log skipped entries: streams end and resume from their topics' histories"
            );
        }
        self.position = Some(EventId { incarnation: position.incarnation, seq });
        let Some(topic) = std::str::from_utf8(&entry.topic).ok().and_then(|name| Topic::parse(name).ok())
        else {
            tracing::warn!(seq, "a log entry without a valid topic: skipped");
            return;
        };
        let lag = Duration::from_millis(unix_millis().saturating_sub(entry.at));
        self.stats.lag_ms.set(lag.as_millis() as i64);
        let published = Instant::now().checked_sub(lag).unwrap_or_else(Instant::now);
        self.hub.deliver(&topic, EventId { incarnation: position.incarnation, seq }, &entry.frame, published);
    }
}

/// One entry of the shared log, read by position from `XREAD`'s reply: the crate's
/// `StreamReadReply` builds a map of owned strings per entry and copies the frame out of it,
/// which cost a fifth of Herald's CPU per event on Redis (benches/cluster.rs, perf).
struct LogEntry {
    seq: u64,
    topic: Vec<u8>,
    /// When Redis took the event, in its clock's milliseconds.
    at: u64,
    frame: Bytes,
}

impl LogEntry {
    /// The entries of a reply `[[key, [[id, [field, value, …]], …]]]`; an entry that is not
    /// `t`, `a`, `f` as `publish.lua` writes it is skipped.
    fn all_of(reply: redis::Value) -> Vec<LogEntry> {
        let redis::Value::Array(streams) = reply else { return vec![] };
        let entries = streams.into_iter().filter_map(|stream| match stream {
            redis::Value::Array(mut key_and_entries) if key_and_entries.len() == 2 => {
                match key_and_entries.pop() {
                    Some(redis::Value::Array(entries)) => Some(entries),
                    _ => None,
                }
            }
            _ => None,
        });
        entries.flatten().filter_map(Self::from_entry).collect()
    }

    fn from_entry(entry: redis::Value) -> Option<LogEntry> {
        let redis::Value::Array(mut id_and_fields) = entry else { return None };
        let (Some(redis::Value::Array(fields)), Some(redis::Value::BulkString(id))) =
            (id_and_fields.pop(), id_and_fields.pop())
        else {
            return None;
        };
        let mut fields = fields.into_iter();
        let mut next = || match (fields.next(), fields.next()) {
            (Some(redis::Value::BulkString(name)), Some(redis::Value::BulkString(value))) => {
                Some((name, value))
            }
            _ => None,
        };
        let (topic, at, frame) = (next()?, next()?, next()?);
        if (topic.0.as_slice(), at.0.as_slice(), frame.0.as_slice()) != (b"t", b"a", b"f") {
            return None;
        }
        Some(LogEntry {
            seq: number("a log entry's id", &id).ok()?,
            topic: topic.1,
            at: std::str::from_utf8(&at.1).ok()?.parse().ok()?,
            frame: Bytes::from(frame.1),
        })
    }
}

/// A number in a reply of Herald's own scripts or streams, such as a sequence number, a byte
/// count or an epoch; a stream entry id `<seq>-0` reads as its sequence number. Anything else is
/// not Herald's writing (another program's keys, or a bug): it is logged and reported as Redis
/// being unavailable, never read as 0, which would renumber events or resume from the start.
fn number(what: &'static str, reply: &[u8]) -> Result<u64, Unavailable> {
    let text = std::str::from_utf8(reply).unwrap_or_default();
    let digits = text.strip_suffix("-0").unwrap_or(text);
    digits.parse().map_err(|_| malformed(what, reply))
}

/// Logs a reply that is not what Herald's scripts answer, and reports it as Redis unavailable.
fn malformed(what: &'static str, reply: &[u8]) -> Unavailable {
    let reply = String::from_utf8_lossy(&reply[..reply.len().min(64)]);
    tracing::error!(what, %reply, "Redis answered something Herald did not write");
    Unavailable
}

#[cfg(test)]
mod tests {
    use redis::Value;

    use super::*;

    #[test]
    fn numbers_and_entry_ids_are_read_and_anything_else_is_reported_never_taken_for_0() {
        assert_eq!(number("a count", b"42"), Ok(42));
        assert_eq!(number("an entry's id", b"42-0"), Ok(42));
        for bad in [&b""[..], b"-0", b"4x", b"42-1", b"-5", b"nil", b"\xff"] {
            assert_eq!(number("a count", bad), Err(Unavailable), "{bad:?}");
        }
    }

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    fn entry(id: &str, fields: &[&str]) -> Value {
        Value::Array(vec![bulk(id), Value::Array(fields.iter().map(|field| bulk(field)).collect())])
    }

    #[test]
    fn log_entries_are_read_by_position_and_odd_ones_skipped() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk(keys::LOG),
            Value::Array(vec![
                entry("7-0", &["t", "news", "a", "1700000000000", "f", "id: 1-7\ndata: x\n\n"]),
                entry("8-0", &["t", "news", "f", "no time"]),
                entry("9-0", &["t", "news", "a", "1700000000001", "f", "id: 1-9\ndata: y\n\n"]),
            ]),
        ])]);

        let entries = LogEntry::all_of(reply);

        let read: Vec<_> =
            entries.iter().map(|entry| (entry.seq, entry.topic.as_slice(), entry.at)).collect();
        assert_eq!(
            read,
            [(7, b"news".as_slice(), 1_700_000_000_000), (9, b"news".as_slice(), 1_700_000_000_001)]
        );
        assert_eq!(entries[1].frame, "id: 1-9\ndata: y\n\n");
        assert!(LogEntry::all_of(Value::Nil).is_empty());
    }

    /// A purge once forgot at most 1,000 topics, so that topics made faster than that per purge
    /// piled up in Redis for ever.
    #[cfg(feature = "testing")]
    #[tokio::test]
    async fn one_purge_forgets_every_idle_topic_however_many_there_are() {
        let server = crate::testing::RedisServer::start().await;
        let redis = Redis::open(&server.url().parse().expect("a Redis URL"), Gauge::default());
        let shutdown = CancellationToken::new();
        let settings =
            HubSettings { history_age: Duration::from_millis(200), ..super::super::tests::settings() };
        let hub = Hub::on_redis(redis, settings, ReaderStats::default(), &shutdown);
        let topics: Vec<Topic> = (0..2_500).map(|n| Topic::parse(&format!("t{n}")).unwrap()).collect();
        for chunk in topics.chunks(250) {
            let publishes = chunk.iter().map(|topic| hub.publish(NewEvent::new(topic.clone(), "x")));
            for published in futures::future::join_all(publishes).await {
                published.unwrap();
            }
        }
        // The clock is what is tested: the topics must grow older than the history's age.
        tokio::time::sleep(Duration::from_millis(250)).await;

        hub.purge().await;

        assert_eq!(server.command(&["ZCARD", keys::TOPICS]).await, Value::Int(0));
        let left = server.command(&["KEYS", &format!("{}*", keys::TOPIC_PREFIX)]).await;
        assert_eq!(left, Value::Array(vec![]), "every topic's stream is gone");
        shutdown.cancel();
    }
}
