//! Reading and trimming the log in Redis: a resume's or a page's events, the top of the log,
//! and the purge of idle topics and of the oldest past the byte bound.

use bytes::Bytes;

use super::{malformed, number, RedisLog, PURGE_BATCH, PURGE_ROUNDS};
use crate::protocol::ResetReason;
use crate::server::{
    event::{EventId, Topic},
    hub::{Bounds, Gap, Missed, Past, Start},
    redis::{keys, Unavailable},
};

impl RedisLog {
    /// The frames of `topics` after `since`, in id order, or why they cannot be told exactly,
    /// read on the replays' connection: however long that takes, it does not say Redis is down.
    pub(in crate::server::hub) async fn since(
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
                invocation.invoke_async(&mut self.redis.replay_connection()?).await.map_err(|err| {
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
    pub(in crate::server::hub) async fn top(&self) -> Result<EventId, Unavailable> {
        let epoch = self.epoch().await?;
        let seq: Option<u64> = self
            .redis
            .observe(redis::cmd("GET").arg(keys::SEQ).query_async(&mut self.redis.connection()?).await)?;
        Ok(EventId { incarnation: epoch, seq: seq.unwrap_or(0) })
    }

    /// Forgets the topics idle for longer than the history's age, then, while every history
    /// together holds more than `history_total_bytes`, those published to longest ago: one batch
    /// after another until one comes back short, at most [`PURGE_ROUNDS`] of them.
    pub(in crate::server::hub) async fn purge(&self) -> Result<(), Unavailable> {
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
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use redis::Value;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::server::{
        event::NewEvent,
        hub::{Hub, HubSettings, ReaderStats},
        redis::Redis,
    };

    /// A purge once forgot at most 1,000 topics, so that topics made faster than that per purge
    /// piled up in Redis for ever.
    #[cfg(feature = "testing")]
    #[tokio::test]
    async fn one_purge_forgets_every_idle_topic_however_many_there_are() {
        let server = crate::testing::RedisServer::start().await;
        let redis = Redis::open(&server.url().parse().expect("a Redis URL"), Default::default(), 0);
        let shutdown = CancellationToken::new();
        let settings =
            HubSettings { history_age: Duration::from_millis(200), ..crate::server::hub::tests::settings() };
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
