//! The publisher task: sends the waiting publishes to Redis in one script call per batch.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{number, RedisLog, LOG_LEN, PUBLISH_BATCH};
use crate::server::{
    event::{self, EventId, NewEvent, Topic},
    hub::{KeyReused, Once, PublishError},
    redis::{keys, Unavailable},
};

/// A publish waiting for the publisher task, and where its answer goes.
pub(in crate::server::hub) struct Pending {
    topic: Topic,
    /// The frame after its id line, which the script writes.
    rest: Bytes,
    once_key: String,
    digest: String,
    reply: oneshot::Sender<Result<(EventId, bool), PublishError>>,
}

impl RedisLog {
    /// Publishes `event`: the publisher task sends it to Redis with whatever else is waiting, in
    /// one script call. Redis makes it visible to every instance's reader; this instance
    /// delivers it to its own subscribers the same way.
    pub(in crate::server::hub) async fn append(
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
}

/// Sends the waiting publishes to Redis: as many as are waiting (up to [`PUBLISH_BATCH`]) in one
/// script call, so that under load Redis and the client pay their per-call costs once per batch,
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
