//! The publisher task: sends the waiting publishes to Redis in one script call per batch.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{number, RedisLog, LOG_LEN, PUBLISH_BATCH};
use crate::server::{
    event::{self, EventId, NewEvent, Topic},
    hub::{KeyReused, Once, PublishError},
    redis::{keys, Unavailable, WAIT_TIMEOUT},
};

/// A publish request waiting for the publisher task (one event, or a batch that goes to Redis
/// whole, in one script call), and where its answer goes.
pub(in crate::server::hub) struct Pending {
    events: Vec<PendingEvent>,
    reply: oneshot::Sender<Result<Vec<(EventId, bool)>, PublishError>>,
}

struct PendingEvent {
    topic: Topic,
    /// The frame after its id line, which the script writes.
    rest: Bytes,
    once_key: String,
    digest: String,
}

impl RedisLog {
    /// Publishes `events`, all or none: the publisher task sends them to Redis with whatever else
    /// is waiting, in one script call. Redis makes them visible to every instance's reader; this
    /// instance delivers them to its own subscribers the same way. Answers each event's id, and
    /// whether its key had published it already.
    pub(in crate::server::hub) async fn append(
        &self,
        events: &[(NewEvent, Option<Once>)],
    ) -> Result<Vec<(EventId, bool)>, PublishError> {
        let events = events
            .iter()
            .map(|(event, once)| {
                let (once_key, digest) = match once {
                    Some(once) => (keys::once(&event.topic, &once.key), hex::encode(once.digest)),
                    None => (String::new(), String::new()),
                };
                PendingEvent {
                    topic: event.topic.clone(),
                    rest: event::frame(None, event.name.as_ref(), &event.data),
                    once_key,
                    digest,
                }
            })
            .collect();
        let (reply, answer) = oneshot::channel();
        self.publishes.send(Pending { events, reply }).await.map_err(|_| PublishError::Unavailable)?;
        answer.await.unwrap_or(Err(PublishError::Unavailable))
    }

    /// Runs the publish script for `batch`, in order; one answer per request.
    async fn append_batch(
        &self,
        batch: &[Pending],
    ) -> Result<Vec<Result<Vec<(EventId, bool)>, PublishError>>, Unavailable> {
        let events: usize = batch.iter().map(|pending| pending.events.len()).sum();
        // A second try after adopting the epoch another instance has just set.
        for _ in 0..2 {
            let epoch = self.epoch().await?;
            let mut invocation = self.scripts.publish.key(keys::SHARED.as_slice());
            invocation.arg(epoch).arg(self.settings.history_len).arg(LOG_LEN);
            invocation.arg(self.settings.history_age.as_millis() as u64);
            invocation.arg(self.settings.history_bytes).arg(self.topic_life()).arg(self.shared_life());
            for pending in batch {
                for (index, event) in pending.events.iter().enumerate() {
                    let group = if index == 0 { pending.events.len() } else { 0 };
                    invocation.key(keys::topic(&event.topic)).key(&event.once_key);
                    invocation
                        .arg(event.topic.as_str())
                        .arg(event.rest.as_ref())
                        .arg(&event.digest)
                        .arg(group);
                }
            }
            // On the publishes' connection: with `WAIT`, their own, which it holds until replicas confirm.
            let mut connection = self.redis.publish_connection()?;
            let answer: Vec<String> = self.redis.observe(invocation.invoke_async(&mut connection).await)?;
            match answer.as_slice() {
                [status, total, evicted, answers @ ..] if status == "ok" && answers.len() == 2 * events => {
                    let wanted = self.redis.wait_replicas();
                    if wanted > 0 {
                        // Every write of this connection so far, this script's included.
                        let confirmed: u32 = self.redis.observe(
                            redis::cmd("WAIT")
                                .arg(wanted)
                                .arg(WAIT_TIMEOUT.as_millis() as u64)
                                .query_async(&mut connection)
                                .await,
                        )?;
                        if confirmed < wanted {
                            return Ok(batch
                                .iter()
                                .map(|_| Err(PublishError::Unconfirmed { confirmed, wanted }))
                                .collect());
                        }
                    }
                    self.history_bytes.set(number("the history's bytes", total.as_bytes())? as i64);
                    self.evicted_for_bytes.inc_by(number("the evicted events", evicted.as_bytes())?);
                    let mut answers = answers.chunks_exact(2);
                    return batch
                        .iter()
                        .map(|pending| {
                            let group = answers.by_ref().take(pending.events.len());
                            read_group(epoch, group.map(|answer| (answer[0].as_str(), answer[1].as_bytes())))
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
}

/// One request's answers from the publish script: each event's id and whether it was a
/// duplicate, or the index of the event whose key was reused (the script then wrote none).
fn read_group<'a>(
    epoch: u64,
    answers: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> Result<Result<Vec<(EventId, bool)>, PublishError>, Unavailable> {
    let id = |seq: &[u8]| Ok(EventId { incarnation: epoch, seq: number("an event's id", seq)? });
    let mut published = Vec::new();
    let mut reused = None;
    for (index, (status, seq)) in answers.enumerate() {
        match status {
            "ok" => published.push((id(seq)?, false)),
            "duplicate" => published.push((id(seq)?, true)),
            "reused" => reused = Some(KeyReused { index, first: id(seq)? }),
            "refused" => {}
            _ => {
                tracing::error!(status, "the publish script answered a status Herald does not know");
                return Err(Unavailable);
            }
        }
    }
    Ok(match reused {
        Some(reused) => Err(PublishError::KeyReused(reused)),
        None => Ok(published),
    })
}

/// Sends the waiting publishes to Redis: as many requests as are waiting (up to [`PUBLISH_BATCH`]
/// events, or one larger request whole) in one script call, so that under load Redis and the client pay their per-call costs once per batch,
/// while a lone publish goes at once. Runs until `shutdown`.
pub(in crate::server::hub) fn spawn_publisher(
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
            let mut events = first.events.len();
            batch.push(first);
            // A request is never split: one larger than a batch goes alone.
            while events < PUBLISH_BATCH {
                match waiting.try_recv() {
                    Ok(next) => {
                        events += next.events.len();
                        batch.push(next);
                    }
                    Err(_) => break,
                }
            }
            let mut answers = log.append_batch(&batch).await.map(Vec::into_iter);
            for pending in batch.drain(..) {
                let answer = match &mut answers {
                    Ok(answers) => answers.next().expect("one answer per request"),
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
