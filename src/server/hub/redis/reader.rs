//! The reader: one per instance, following the shared log on a connection of its own and
//! handing each entry to this instance's subscribers.
//!
//! After a Redis failover the log may have lost its latest entries, as replication is
//! asynchronous, and the new primary numbers new events as the lost ones were. The reader
//! remembers what it delivered last ([`RECENT`] entries, by a fingerprint of each) and, when it
//! follows a new primary, tells apart a log that still holds them from one that lost some:
//! nothing is ever delivered twice under one id, or skipped without a reset.

use std::{
    collections::{HashMap, VecDeque},
    hash::{DefaultHasher, Hash, Hasher},
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use redis::aio::MultiplexedConnection;

use super::{number, ReaderStats, RedisLog, READ_BATCH, READ_BLOCK};
use crate::server::{
    event::{EventId, Topic},
    hub::{unix_millis, LocalSubscribers},
    redis::{keys, Backoff, Unavailable},
};

/// Follows the shared log from where this instance is, and delivers each entry to the local
/// subscribers of its topic, until `shutdown`. It reconnects with backoff, resumes after the last
/// entry it delivered, and tells its streams when it cannot: the log was trimmed past it (the
/// streams end, and their clients resume exactly from the topics' histories), or Redis lost its
/// data (every stream gets a reset).
pub(in crate::server::hub) fn spawn_reader(
    subscribers: Arc<dyn LocalSubscribers>,
    log: Arc<RedisLog>,
    stats: ReaderStats,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let slice = (subscribers.queue_len() / 2).max(1);
        let mut reader = Reader {
            subscribers,
            log,
            slice,
            stats,
            position: None,
            recent: VecDeque::with_capacity(RECENT),
            primary: None,
            backoff: Backoff::default(),
        };
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = reader.run() => {}
        }
    });
}

struct Reader {
    subscribers: Arc<dyn LocalSubscribers>,
    log: Arc<RedisLog>,
    /// How many entries go to the queues between two yields: half a subscriber's queue.
    slice: usize,
    stats: ReaderStats,
    /// The last entry delivered: its epoch and sequence number (`None` before the first read).
    position: Option<EventId>,
    /// The latest entries delivered, oldest first: each one's sequence number and fingerprint.
    recent: VecDeque<(u64, u64)>,
    /// The connections' generation this reader last read from: it grows when Redis fails over.
    primary: Option<u64>,
    backoff: Backoff,
}

/// What a reset does with the entries remembered: keep those up to where it is positioned (the
/// log holds them, as checked), or forget them all (the log may hold others under their ids).
enum Recent {
    KeepUpTo,
    Forget,
}

/// How many delivered entries the reader remembers to find, after a failover, the last one the
/// new primary holds too: more than replication lags behind by in any failover seen here.
const RECENT: usize = 256;

impl Reader {
    async fn run(&mut self) {
        let mut moves = self.log.redis.primary_moves();
        loop {
            moves.mark_unchanged();
            if let Err(Unavailable) = self.follow().await {
                // A failover's new primary is tried at once, not after the backoff.
                tokio::select! {
                    () = tokio::time::sleep(self.backoff.next()) => {}
                    _ = moves.changed() => {}
                }
            }
        }
    }

    /// One connection's worth of reading; returns when Redis fails, or fails over.
    async fn follow(&mut self) -> Result<(), Unavailable> {
        let log = Arc::clone(&self.log);
        let (mut connection, generation) = log.redis.dedicated_connection(READ_BLOCK).await?;
        let failed_over = self.primary.is_some_and(|before| before != generation);
        if failed_over && self.position.is_some() {
            self.after_failover(&mut connection).await?;
        }
        // Only once handled: a failover whose handling failed is handled on the next connection.
        self.primary = Some(generation);
        self.check_epoch(&mut connection).await?;
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
            self.subscribers.drop_all();
            self.subscribers.follow_live();
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
            if log.redis.generation() != generation {
                // Another primary: what this read brought may be from the old one, which the
                // new one may not hold; the next connection starts from what was delivered.
                return Ok(());
            }
            match read {
                redis::Value::Nil => self.check_epoch(&mut connection).await?,
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

    /// Compares the epoch in Redis with the one delivered so far. A new one means Redis lost its
    /// data, or another instance moved the log on after a failover: the streams keep going if
    /// the log still holds what this reader delivered, else they get a reset. Claiming the epoch
    /// renews the shared keys' lives, which this does every idle second.
    async fn check_epoch(&mut self, connection: &mut MultiplexedConnection) -> Result<(), Unavailable> {
        let epoch = self.log.claim_epoch().await?;
        if self.position.is_some_and(|position| position.incarnation != epoch) {
            self.check_continuity(connection, epoch).await?;
        }
        Ok(())
    }

    /// Redis failed over. Without `--redis-wait-replicas`, nothing proves the new primary holds
    /// every event acknowledged, nor every one this reader delivered: the log moves to a new epoch
    /// (so that no earlier id resumes against it) and every stream gets a reset. With it, every
    /// acknowledged event is there, and only entries delivered before their replicas confirmed
    /// them may be gone: [`check_continuity`](Self::check_continuity) tells.
    async fn after_failover(&mut self, connection: &mut MultiplexedConnection) -> Result<(), Unavailable> {
        let position = self.position.expect("checked by the caller");
        if self.log.redis.wait_replicas() == 0 {
            let epoch = self.log.fence(position.incarnation).await?;
            let top = self.log.top().await?;
            tracing::warn!(
                epoch,
                "Redis failed over, and without --redis-wait-replicas the new primary may lack acknowledged events: every stream is reset"
            );
            self.reset_at(EventId { incarnation: epoch, ..top }, Recent::Forget);
            return Ok(());
        }
        self.check_continuity(connection, position.incarnation).await
    }

    /// Whether the log still holds the last entries this reader delivered. If it does, reading
    /// goes on (under `epoch`, which the log may have moved to). If it lost some, the log moves to
    /// a new epoch and the streams get a reset positioned at the last entry both hold, from which
    /// reading goes on, so that the events the new primary took since reach them all the same.
    /// If it holds none of them (Redis lost its data), the streams are reset at the top.
    async fn check_continuity(
        &mut self,
        connection: &mut MultiplexedConnection,
        epoch: u64,
    ) -> Result<(), Unavailable> {
        let (Some(&(oldest, _)), Some(&(last, _))) = (self.recent.front(), self.recent.back()) else {
            let top = self.log.top().await?;
            if self.position.is_some_and(|position| position.incarnation != top.incarnation) {
                tracing::warn!(now = top.incarnation, "the log's epoch changed: resetting every stream");
                self.reset_at(top, Recent::Forget);
            }
            return Ok(());
        };
        let held: redis::Value = self.log.redis.observe(
            redis::cmd("XRANGE")
                .arg(keys::LOG)
                .arg(format!("{oldest}-0"))
                .arg(format!("{last}-0"))
                .query_async(connection)
                .await,
        )?;
        let held: HashMap<u64, u64> =
            LogEntry::in_range(held).iter().map(|entry| (entry.seq, entry.fingerprint())).collect();
        let common = self.recent.iter().rev().find(|(seq, fingerprint)| held.get(seq) == Some(fingerprint));
        match common.map(|&(seq, _)| seq) {
            Some(seq) if seq == last => {
                self.position = Some(EventId { incarnation: epoch, seq });
            }
            Some(seq) => {
                let lost = self.recent.iter().filter(|(delivered, _)| *delivered > seq).count();
                let epoch = self.log.fence(epoch).await?;
                tracing::warn!(
                    lost,
                    from = seq,
                    epoch,
                    "the log no longer holds entries this instance delivered (they were not on the replica that took over): every stream is reset, and reading goes on from the last entry the log holds"
                );
                self.reset_at(EventId { incarnation: epoch, seq }, Recent::KeepUpTo);
            }
            None => {
                let top = self.log.top().await?;
                tracing::warn!(
                    now = top.incarnation,
                    "the log holds none of the entries this instance delivered last: resetting every stream"
                );
                self.reset_at(top, Recent::Forget);
            }
        }
        Ok(())
    }

    /// Tells every local stream to reset, positioned at `at`, from which reading goes on.
    fn reset_at(&mut self, at: EventId, recent: Recent) {
        self.subscribers.reset_all(at);
        self.position = Some(at);
        match recent {
            Recent::KeepUpTo => self.recent.retain(|(seq, _)| *seq <= at.seq),
            Recent::Forget => self.recent.clear(),
        }
    }

    fn deliver(&mut self, entry: &LogEntry) {
        let seq = entry.seq;
        let position = self.position.expect("positioned before reading");
        if position.seq != 0 && seq != position.seq + 1 {
            let dropped = self.subscribers.drop_all();
            tracing::warn!(
                after = position.seq,
                next = seq,
                dropped,
                "the shared log skipped entries: streams end and resume from their topics' histories"
            );
        }
        self.position = Some(EventId { incarnation: position.incarnation, seq });
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((seq, entry.fingerprint()));
        let Some(topic) = std::str::from_utf8(&entry.topic).ok().and_then(|name| Topic::parse(name).ok())
        else {
            tracing::warn!(seq, "a log entry without a valid topic: skipped");
            return;
        };
        let lag = Duration::from_millis(unix_millis().saturating_sub(entry.at));
        self.stats.lag_ms.set(lag.as_millis() as i64);
        let published = Instant::now().checked_sub(lag).unwrap_or_else(Instant::now);
        self.subscribers.deliver(
            &topic,
            EventId { incarnation: position.incarnation, seq },
            &entry.frame,
            published,
        );
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
    /// What tells this entry from another that a new primary numbered the same: its publish
    /// time, topic and frame, hashed.
    fn fingerprint(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        (self.at, &self.topic, self.frame.as_ref()).hash(&mut hasher);
        hasher.finish()
    }

    /// The entries of an `XRANGE` reply `[[id, [field, value, …]], …]`.
    fn in_range(reply: redis::Value) -> Vec<LogEntry> {
        let redis::Value::Array(entries) = reply else { return vec![] };
        entries.into_iter().filter_map(Self::from_entry).collect()
    }

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

#[cfg(test)]
mod tests {
    use redis::Value;

    use super::*;

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
}
