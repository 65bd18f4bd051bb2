//! Presence across instances: each instance writes who follows which topic on it to Redis every
//! [`PRESENCE_REFRESH`] (everything when its subscribers changed, else only a renewal), with a
//! life of [`PRESENCE_LIFE`], so that an instance that dies takes its presence with it within
//! that time; and it reads the others' entries for one topic on demand.

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use super::{malformed, number, RedisLog};
use crate::server::{
    event::{EventId, Topic},
    hub::{fanout::Fanout, TopicPresence},
    redis::{keys, Unavailable},
};

/// How often an instance writes its presence.
pub(in crate::server::hub) const PRESENCE_REFRESH: Duration = Duration::from_secs(2);

/// How long an instance's presence outlives its last write: three refreshes, so that one late
/// write under load does not make its subscribers vanish.
pub(in crate::server::hub) const PRESENCE_LIFE: Duration = Duration::from_secs(6);

/// What one write does.
enum Write<'a> {
    /// Only renews the life of what was written before.
    Renew,
    /// Replaces everything with this snapshot.
    Replace(&'a [(Topic, TopicPresence)]),
    /// Removes the instance: it is shutting down.
    Leave,
}

impl RedisLog {
    /// Adds who follows `topic` on the other live instances to `presence`.
    pub(in crate::server::hub) async fn add_others_presence(
        &self,
        topic: &Topic,
        presence: &mut TopicPresence,
    ) -> Result<(), Unavailable> {
        let answer: Vec<Vec<u8>> = self
            .run(
                self.scripts
                    .presence_get
                    .key(keys::INSTANCES)
                    .arg(&self.instance)
                    .arg(topic.as_str())
                    .arg(keys::PRESENCE_PREFIX),
            )
            .await?;
        let Some((connections, subs)) = answer.split_first() else {
            return Err(malformed("a presence", b"an empty reply"));
        };
        if !subs.len().is_multiple_of(2) {
            return Err(malformed("a presence", b"an odd number of values"));
        }
        presence.connections += number("a topic's connections", connections)? as usize;
        for pair in subs.chunks_exact(2) {
            let sub: Arc<str> = String::from_utf8_lossy(&pair[0]).into();
            *presence.subs.entry(sub).or_default() += number("a sub's connections", &pair[1])? as usize;
        }
        Ok(())
    }

    /// The topics that have subscribers on the other live instances, by name, that start with
    /// `prefix` and come after `after`: the first `limit`, with their connections.
    pub(in crate::server::hub) async fn others_topics(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(Topic, usize)>, Unavailable> {
        // Names are compared by bytes; a member is `<topic>\0<connections>`, and a topic holds
        // only ASCII below DEL, so `<after>\x01` starts right after `after`'s own member and
        // `<prefix>\x7f` ends past every name that starts with the prefix.
        let from_prefix = format!("[{prefix}");
        let from = match after {
            Some(after) if format!("{after}\u{1}").as_str() > prefix => format!("[{after}\u{1}"),
            _ if prefix.is_empty() => "-".to_owned(),
            _ => from_prefix,
        };
        let to = if prefix.is_empty() { "+".to_owned() } else { format!("({prefix}\u{7f}") };
        let answer: Vec<Vec<u8>> = self
            .run(
                self.scripts
                    .presence_list
                    .key(keys::INSTANCES)
                    .arg(&self.instance)
                    .arg(keys::PRESENCE_PREFIX)
                    .arg(from)
                    .arg(to)
                    .arg(limit),
            )
            .await?;
        if !answer.len().is_multiple_of(2) {
            return Err(malformed("a topic list", b"an odd number of values"));
        }
        answer
            .chunks_exact(2)
            .map(|pair| {
                let topic = std::str::from_utf8(&pair[0]).ok().and_then(|name| Topic::parse(name).ok());
                let topic = topic.ok_or_else(|| malformed("a topic's name", &pair[0]))?;
                Ok((topic, number("a topic's connections", &pair[1])? as usize))
            })
            .collect()
    }

    /// The id of the newest event each of `topics`' histories holds in Redis, in one round trip.
    pub(in crate::server::hub) async fn newest_of_each(
        &self,
        topics: &[Topic],
    ) -> Result<Vec<Option<EventId>>, Unavailable> {
        if topics.is_empty() {
            return Ok(vec![]);
        }
        let epoch = self.epoch().await?;
        let mut pipeline = redis::pipe();
        for topic in topics {
            pipeline.cmd("XREVRANGE").arg(keys::topic(topic)).arg("+").arg("-").arg("COUNT").arg(1);
        }
        let replies: Vec<redis::streams::StreamRangeReply> =
            self.redis.observe(pipeline.query_async(&mut self.redis.connection()?).await)?;
        replies
            .iter()
            .map(|reply| {
                reply
                    .ids
                    .first()
                    .map(|entry| {
                        Ok(EventId { incarnation: epoch, seq: number("an entry's id", entry.id.as_bytes())? })
                    })
                    .transpose()
            })
            .collect()
    }

    /// Writes this instance's presence; `Ok(false)` when Redis no longer knew it, so that the
    /// next write must replace everything.
    async fn write_presence(&self, write: Write<'_>) -> Result<bool, Unavailable> {
        let mut invocation = self.scripts.presence_put.key(keys::INSTANCES);
        invocation.key(keys::presence_topics(&self.instance)).key(keys::presence_subs(&self.instance));
        invocation.arg(&self.instance).arg(PRESENCE_LIFE.as_millis() as u64);
        match write {
            Write::Renew => invocation.arg("renew").arg(0),
            Write::Leave => invocation.arg("leave").arg(0),
            Write::Replace(snapshot) => {
                invocation.arg("replace").arg(snapshot.len());
                for (topic, presence) in snapshot {
                    invocation.arg(format!("{topic}\0{}", presence.connections));
                }
                for (topic, presence) in snapshot {
                    for (sub, connections) in &presence.subs {
                        // A NUL would end the name early: a sub holds none as written.
                        invocation.arg(format!("{topic}\0{}\0{connections}", sub.replace('\0', "\u{fffd}")));
                    }
                }
                &mut invocation
            }
        };
        let answer: String = self.run(&invocation).await?;
        Ok(answer == "ok")
    }
}

/// Writes this instance's presence every [`PRESENCE_REFRESH`] until `shutdown`, then removes it.
pub(in crate::server::hub) fn spawn_presence(
    log: Arc<RedisLog>,
    fanout: Fanout,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(PRESENCE_REFRESH);
        // The generation of the subscribers that Redis holds; `None`: it must be written.
        let mut written = None;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    // Unavailable is logged by the connection; the entries expire by themselves.
                    let _ = log.write_presence(Write::Leave).await;
                    return;
                }
                _ = ticks.tick() => {}
            }
            written = if written == Some(fanout.generation()) {
                match log.write_presence(Write::Renew).await {
                    Ok(true) => written,
                    // Redis forgot this instance (it lost its data): everything again, at once.
                    Ok(false) => {
                        ticks.reset_immediately();
                        None
                    }
                    // Unreachable: everything again at the next tick, not in a tight loop.
                    Err(Unavailable) => None,
                }
            } else {
                let (generation, snapshot) = fanout.snapshot();
                log.write_presence(Write::Replace(&snapshot)).await.ok().map(|_| generation)
            };
        }
    });
}
