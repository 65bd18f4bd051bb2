//! How Herald speaks SSE over HTTP: the response headers, the opening `retry:` hint with jitter,
//! keep-alive comments on idle streams, the limit on open streams, and the end of every stream
//! when the server shuts down.
//!
//! Streams are bodies of pre-framed [`Bytes`] rather than axum's `Sse` of `Event`s: an event is
//! framed once by the hub and the same bytes go to every subscriber, where an `Event` would be
//! copied and re-serialised for each one.

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{
    body::Body,
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use futures::{future, stream, Stream, StreamExt};
use rand::Rng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::{
    error::ApiError,
    event::{self, EventName},
};
use crate::protocol::{ShutdownNotice, SHUTDOWN_EVENT};

/// How long a client turned away by the stream limit should wait before trying again.
const RETRY_AFTER_FULL: Duration = Duration::from_secs(5);

/// What the stream routes are configured with.
#[derive(Clone, Debug)]
pub(crate) struct StreamSettings {
    /// Interval between keep-alive comments on an idle stream.
    pub keep_alive: Duration,
    /// Base delay of the `retry:` hint, sent with ±50% jitter.
    pub retry: Duration,
    /// How many streams may be open at once.
    pub max_streams: usize,
    /// How many topics one `/events` connection may follow.
    pub max_topics: usize,
}

/// Everything an SSE route needs to open a stream (a sub-state).
#[derive(Clone, Debug)]
pub(crate) struct Streams {
    settings: StreamSettings,
    slots: Arc<Semaphore>,
    /// The last event of every stream when the server shuts down, framed once. It has no id, so
    /// the client's `Last-Event-ID` still names the last event it got and a reconnect resumes.
    farewell: Bytes,
    shutdown: CancellationToken,
}

/// A place among the open streams, held for as long as the stream lives.
#[derive(Debug)]
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
}

impl Streams {
    pub(crate) fn new(settings: StreamSettings, shutdown: CancellationToken) -> Self {
        let notice = serde_json::to_string(&ShutdownNotice::default()).expect("a notice serialises");
        Self {
            slots: Arc::new(Semaphore::new(settings.max_streams)),
            farewell: event::frame(None, Some(&EventName::known(SHUTDOWN_EVENT)), &notice),
            settings,
            shutdown,
        }
    }

    pub(crate) fn max_topics(&self) -> usize {
        self.settings.max_topics
    }

    /// Takes a place for one more stream, or refuses with 503 when all are taken.
    pub(crate) fn reserve(&self) -> Result<Slot, ApiError> {
        Arc::clone(&self.slots).try_acquire_owned().map(|permit| Slot { _permit: permit }).map_err(|_| {
            ApiError::Busy {
                message: format!("the server holds its maximum of {} streams", self.settings.max_streams),
                retry_after: RETRY_AFTER_FULL,
            }
        })
    }

    /// How many streams are open now.
    pub(crate) fn open_count(&self) -> usize {
        self.settings.max_streams - self.slots.available_permits()
    }

    /// The SSE response: a `retry:` hint, then `frames`, with a keep-alive comment whenever the
    /// stream has been idle for the keep-alive interval. It ends when `frames` ends, or with an
    /// `event: shutdown` when the server shuts down, and gives back its slot when it is dropped.
    pub(crate) fn respond(&self, frames: impl Stream<Item = Bytes> + Send + 'static, slot: Slot) -> Response {
        let idle = self.settings.keep_alive;
        let keep_alive = tokio::time::interval_at(tokio::time::Instant::now() + idle, idle);
        let body = stream::once(future::ready(event::retry_frame(jittered(self.settings.retry))))
            .chain(frames)
            .map(move |frame| {
                let _ = &slot;
                frame
            });
        let (shutdown, farewell) = (self.shutdown.clone(), self.farewell.clone());
        let farewell = stream::once(future::lazy(move |_| shutdown.is_cancelled().then_some(farewell)));
        let body = tokio_stream::StreamExt::timeout_repeating(body, keep_alive)
            .map(|frame| frame.unwrap_or(event::KEEP_ALIVE))
            .take_until(self.shutdown.clone().cancelled_owned())
            .chain(farewell.filter_map(future::ready))
            .map(Ok::<_, Infallible>);
        (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream")),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                // nginx-style proxies would otherwise buffer events into bursts.
                (header::HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no")),
            ],
            Body::from_stream(body),
        )
            .into_response()
    }
}

/// The base delay ±50%, in whole milliseconds, drawn afresh for each connection.
fn jittered(base: Duration) -> u64 {
    let base = base.as_millis().min(u64::MAX as u128) as u64;
    rand::rng().random_range(base / 2..=base.saturating_add(base / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_jitter_stays_within_half_the_base_either_way() {
        let draws: Vec<u64> = (0..1000).map(|_| jittered(Duration::from_secs(3))).collect();
        assert!(draws.iter().all(|ms| (1500..=4500).contains(ms)));
        assert!(draws.iter().any(|ms| *ms < 2500) && draws.iter().any(|ms| *ms > 3500), "no spread");
    }
}
