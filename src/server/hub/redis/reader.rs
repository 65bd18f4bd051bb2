//! The reader: one per instance, following the shared log on a connection of its own and
//! handing each entry to this instance's subscribers.

use std::{
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

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
        let mut reader =
            Reader { subscribers, log, slice, stats, position: None, backoff: Backoff::default() };
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
            self.subscribers.reset_all(top);
            self.position = Some(top);
        }
        Ok(())
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
