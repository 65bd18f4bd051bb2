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
//!
//! Here: the log's handle and its epoch. Its three jobs each have a module: [`publisher`] (the
//! task that sends waiting publishes in batches), [`log`] (resumes, pages, the top, the purge)
//! and [`reader`] (following the shared log for this instance's subscribers, which it reaches
//! only through [`super::LocalSubscribers`]).

mod log;
mod presence;
mod publisher;
mod reader;
mod stats;

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
use redis::Script;
use tokio::sync::mpsc;

pub(super) use self::presence::spawn_presence;
pub(super) use self::publisher::spawn_publisher;
use self::publisher::Pending;
pub(super) use self::reader::spawn_reader;
pub(crate) use self::stats::SharedStats;
use super::{unix_millis, HubSettings, HubStats};
use crate::server::redis::{keys, Redis, Unavailable};

/// How many entries the shared log keeps (about: trimming is by whole nodes). A reader that
/// falls further behind than this ends its streams, and their clients resume from the topics'
/// own histories.
const LOG_LEN: u64 = 100_000;

/// How long the reader's blocking read waits before it checks the epoch again.
const READ_BLOCK: Duration = Duration::from_secs(1);

/// How many log entries one read takes at most.
const READ_BATCH: usize = 1_000;

/// How many waiting events go to Redis in one script call, about: a request is never split, so
/// the last one taken, or one batch published whole, may carry more.
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
    /// This instance among the others, for presence: random, new with every start.
    instance: String,
    scripts: Scripts,
}

struct Scripts {
    publish: Script,
    since: Script,
    purge: Script,
    claim_epoch: Script,
    fence: Script,
    presence_put: Script,
    presence_get: Script,
    presence_list: Script,
    stats_exchange: Script,
}

/// What the reader reports, for the metrics.
#[derive(Clone, Default)]
pub(crate) struct ReaderStats {
    /// Milliseconds from Redis accepting the latest event to this reader taking it.
    pub lag_ms: Gauge,
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
            instance: herald_client::random_id()[..16].to_owned(),
            scripts: Scripts {
                publish: Script::new(include_str!("lua/publish.lua")),
                since: Script::new(include_str!("lua/since.lua")),
                purge: Script::new(include_str!("lua/purge.lua")),
                claim_epoch: Script::new(include_str!("lua/claim_epoch.lua")),
                fence: Script::new(include_str!("lua/fence.lua")),
                presence_put: Script::new(include_str!("lua/presence_put.lua")),
                presence_get: Script::new(include_str!("lua/presence_get.lua")),
                presence_list: Script::new(include_str!("lua/presence_list.lua")),
                stats_exchange: Script::new(include_str!("lua/stats_exchange.lua")),
            },
        };
        (log, waiting)
    }

    /// This instance among the others, as presence and the stats name it.
    pub(super) fn instance(&self) -> &str {
        &self.instance
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
        self.redis.observe(invocation.invoke_async(&mut self.redis.connection()?).await)
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

    /// Moves the log from epoch `from` to a new one, unless another instance did already, and
    /// adopts whichever is there: after a failover that may have lost events, so that no id of
    /// the old epoch can resume against a log that may number other events the same.
    async fn fence(&self, from: u64) -> Result<u64, Unavailable> {
        let proposal = unix_millis().max(from + 1);
        let current: Option<String> =
            self.run(self.scripts.fence.key(keys::EPOCH).arg(from).arg(proposal)).await?;
        match current {
            Some(current) => self.adopt(&current),
            None => self.claim_epoch().await,
        }
    }

    fn adopt(&self, current: &str) -> Result<u64, Unavailable> {
        let epoch = number("the epoch", current.as_bytes())?;
        let before = self.epoch.swap(epoch, Ordering::AcqRel);
        if before != 0 && before != epoch {
            tracing::error!(before, now = epoch, "the log's epoch changed (Redis lost its data, or failed over and may have lost events): events are numbered in the new one");
        }
        Ok(epoch)
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
    use super::*;

    #[test]
    fn numbers_and_entry_ids_are_read_and_anything_else_is_reported_never_taken_for_0() {
        assert_eq!(number("a count", b"42"), Ok(42));
        assert_eq!(number("an entry's id", b"42-0"), Ok(42));
        for bad in [&b""[..], b"-0", b"4x", b"42-1", b"-5", b"nil", b"\xff"] {
            assert_eq!(number("a count", bad), Err(Unavailable), "{bad:?}");
        }
    }
}
