//! How Herald speaks SSE over HTTP: the response headers, the opening `retry:` hint with jitter,
//! keep-alive comments on idle streams, the limit on open streams, and the end of every stream
//! when the server shuts down.
//!
//! Streams are bodies of pre-framed [`Bytes`] rather than axum's `Sse` of `Event`s: an event is
//! framed once by the hub and the same bytes go to every subscriber, where an `Event` would be
//! copied and re-serialised for each one.

use std::{
    collections::HashMap,
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::Body,
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use futures::Stream;
use http_body::Frame;
use parking_lot::Mutex;
use prometheus_client::metrics::{family::Family, gauge::Gauge};
use rand::RngExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::{
    client::{ClientAddr, ClientGroup},
    error::ApiError,
    event::{self, EventName},
    metrics::RouteLabel,
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
    /// How many of them one client (one [`ClientGroup`]) may hold.
    pub max_streams_per_client: usize,
    /// How many topics one `/events` connection may follow.
    pub max_topics: usize,
}

/// Everything an SSE route needs to open a stream (a sub-state).
#[derive(Clone, Debug)]
pub(crate) struct Streams {
    settings: StreamSettings,
    slots: Arc<Semaphore>,
    /// Open streams per client; a client leaves the map with its last stream.
    per_client: Arc<Mutex<HashMap<ClientGroup, usize>>>,
    /// Open streams by route, for the metrics.
    by_route: Family<RouteLabel, Gauge>,
    /// The last event of every stream when the server shuts down, framed once. It has no id, so
    /// the client's `Last-Event-ID` still names the last event it got and a reconnect resumes.
    farewell: Bytes,
    shutdown: CancellationToken,
}

/// A place among the open streams, and in its client's share of them, held for as long as the
/// stream lives.
#[derive(Debug)]
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
    _share: ClientShare,
}

/// One stream of one client, counted until dropped.
#[derive(Debug)]
struct ClientShare {
    per_client: Arc<Mutex<HashMap<ClientGroup, usize>>>,
    client: ClientGroup,
}

impl Drop for ClientShare {
    fn drop(&mut self) {
        let mut per_client = self.per_client.lock();
        if let Some(open) = per_client.get_mut(&self.client) {
            *open -= 1;
            if *open == 0 {
                per_client.remove(&self.client);
            }
        }
    }
}

impl Streams {
    pub(crate) fn new(
        settings: StreamSettings,
        by_route: Family<RouteLabel, Gauge>,
        shutdown: CancellationToken,
    ) -> Self {
        let notice = serde_json::to_string(&ShutdownNotice::default()).expect("a notice serialises");
        Self {
            slots: Arc::new(Semaphore::new(settings.max_streams)),
            per_client: Arc::default(),
            by_route,
            farewell: event::frame(None, Some(&EventName::known(SHUTDOWN_EVENT)), &notice),
            settings,
            shutdown,
        }
    }

    pub(crate) fn max_topics(&self) -> usize {
        self.settings.max_topics
    }

    /// Takes a place for one more stream of `client`: 429 when its group (its IPv4 address, or
    /// its IPv6 /64) holds its share, 503 when the server holds its maximum.
    pub(crate) fn reserve(&self, client: ClientAddr) -> Result<Slot, ApiError> {
        let share = self.take_share(client.group())?;
        let permit = Arc::clone(&self.slots).try_acquire_owned().map_err(|_| ApiError::Busy {
            message: format!("the server holds its maximum of {} streams", self.settings.max_streams),
            retry_after: RETRY_AFTER_FULL,
        })?;
        Ok(Slot { _permit: permit, _share: share })
    }

    fn take_share(&self, client: ClientGroup) -> Result<ClientShare, ApiError> {
        let mut per_client = self.per_client.lock();
        let open = per_client.entry(client).or_default();
        if *open >= self.settings.max_streams_per_client {
            return Err(ApiError::TooMany {
                message: format!(
                    "{client} holds its maximum of {} streams (HERALD_MAX_STREAMS_PER_CLIENT)",
                    self.settings.max_streams_per_client
                ),
                retry_after: RETRY_AFTER_FULL,
            });
        }
        *open += 1;
        Ok(ClientShare { per_client: Arc::clone(&self.per_client), client })
    }

    /// How many streams are open now.
    pub(crate) fn open_count(&self) -> usize {
        self.settings.max_streams - self.slots.available_permits()
    }

    /// The SSE response: a `retry:` hint, then `frames`, with a keep-alive comment whenever the
    /// stream has been idle for the keep-alive interval. It ends when `frames` ends, or with an
    /// `event: shutdown` when the server shuts down, and gives back its slot when it is dropped.
    pub(crate) fn respond(
        &self,
        frames: impl Stream<Item = Bytes> + Send + 'static,
        slot: Slot,
        route: &'static str,
    ) -> Response {
        let lifetime = Lifetime::begin(self.by_route.get_or_create(&RouteLabel { route }).clone());
        let mut ticks = tokio::time::interval_at(
            tokio::time::Instant::now() + self.settings.keep_alive,
            self.settings.keep_alive,
        );
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let body = EventStream {
            retry: Some(event::retry_frame(jittered(self.settings.retry))),
            frames,
            ticks,
            sent_since_tick: false,
            shutdown: self.shutdown.clone().cancelled_owned(),
            farewell: Some(self.farewell.clone()),
            ended: false,
            _held: (slot, lifetime),
        };
        (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream")),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                // nginx-style proxies would otherwise buffer events into bursts.
                (header::HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no")),
            ],
            Body::new(body),
        )
            .into_response()
    }
}

pin_project_lite::pin_project! {
    /// The body of one SSE response, written out as one state machine rather than a chain of
    /// stream combinators: every open stream holds one, and the chain (once, chain, select,
    /// take-while, filter-map, take-until, map, each with its own pending item) took 1,024 bytes
    /// a stream where this takes about half (heaptrack at 10,000 streams, docs/performance.md).
    ///
    /// Frames are sent as they come. The keep-alive ticks run whatever the stream sends, so a
    /// frame costs no timer work (re-arming a timer on every frame of every stream is what a
    /// fan-out to thousands would pay for a "since the last frame" rule); a tick that finds the
    /// stream has sent nothing since the tick before sends a comment, so a stream is never
    /// silent for two intervals.
    struct EventStream<S> {
        retry: Option<Bytes>,
        #[pin]
        frames: S,
        ticks: tokio::time::Interval,
        sent_since_tick: bool,
        #[pin]
        shutdown: WaitForCancellationFutureOwned,
        // Sent once, when the server shuts down (also when `frames` ends because it does).
        farewell: Option<Bytes>,
        ended: bool,
        // Released when the stream is dropped: its place among the streams, and its gauge and log.
        _held: (Slot, Lifetime),
    }
}

impl<S: Stream<Item = Bytes>> http_body::Body for EventStream<S> {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let mut this = self.project();
        if *this.ended {
            return Poll::Ready(None);
        }
        if let Some(retry) = this.retry.take() {
            return Poll::Ready(Some(Ok(Frame::data(retry))));
        }
        if this.shutdown.as_mut().poll(cx).is_ready() {
            *this.ended = true;
            return Poll::Ready(this.farewell.take().map(|farewell| Ok(Frame::data(farewell))));
        }
        match this.frames.poll_next(cx) {
            Poll::Ready(Some(frame)) => {
                *this.sent_since_tick = true;
                return Poll::Ready(Some(Ok(Frame::data(frame))));
            }
            Poll::Ready(None) => {
                *this.ended = true;
                // Frames may end because the server is shutting down: the farewell still says so.
                let shutting_down = this.shutdown.as_mut().poll(cx).is_ready();
                let farewell = this.farewell.take().filter(|_| shutting_down);
                return Poll::Ready(farewell.map(|farewell| Ok(Frame::data(farewell))));
            }
            Poll::Pending => {}
        }
        // A tick after frames were sent only restarts the count, and the next tick is polled at
        // once so that its timer holds this task's waker.
        while this.ticks.poll_tick(cx).is_ready() {
            if !std::mem::take(this.sent_since_tick) {
                return Poll::Ready(Some(Ok(Frame::data(event::KEEP_ALIVE))));
            }
        }
        Poll::Pending
    }
}

/// Logs a stream's opening, and its closing with how long it was open, in the span of the
/// request that opened it (which names the route and the request id).
/// It also counts the stream in its route's gauge while it is open.
struct Lifetime {
    opened: std::time::Instant,
    span: tracing::Span,
    open_on_route: Gauge,
}

impl Lifetime {
    fn begin(open_on_route: Gauge) -> Self {
        tracing::info!("stream opened");
        open_on_route.inc();
        Self { opened: std::time::Instant::now(), span: tracing::Span::current(), open_on_route }
    }
}

impl Drop for Lifetime {
    fn drop(&mut self) {
        self.open_on_route.dec();
        let seconds = self.opened.elapsed().as_secs_f64();
        self.span.in_scope(|| tracing::info!(seconds = format_args!("{seconds:.3}"), "stream closed"));
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

    fn streams(max_streams: usize, max_streams_per_client: usize) -> Streams {
        let settings = StreamSettings {
            keep_alive: Duration::from_secs(15),
            retry: Duration::from_secs(3),
            max_streams,
            max_streams_per_client,
            max_topics: 16,
        };
        Streams::new(settings, Family::default(), CancellationToken::new())
    }

    /// What a client would get: an open stream, or the status of the refusal.
    fn outcome(result: &Result<Slot, ApiError>) -> &'static str {
        match result {
            Ok(_) => "open",
            Err(ApiError::TooMany { .. }) => "429",
            Err(ApiError::Busy { .. }) => "503",
            Err(other) => panic!("unexpected refusal {other:?}"),
        }
    }

    #[test]
    fn a_client_holds_at_most_its_share_of_streams_and_a_closed_one_frees_its_place() {
        let streams = streams(10, 2);
        let (one, two) = (ClientAddr([127, 0, 0, 1].into()), ClientAddr([127, 0, 0, 2].into()));
        let first = streams.reserve(one);
        let _second = streams.reserve(one);

        assert_eq!(outcome(&streams.reserve(one)), "429");
        assert_eq!(outcome(&streams.reserve(two)), "open");
        drop(first);
        assert_eq!(outcome(&streams.reserve(one)), "open");
    }

    #[test]
    fn the_server_wide_limit_answers_503_and_frees_the_clients_share() {
        let streams = streams(1, 5);
        let client = ClientAddr([127, 0, 0, 1].into());
        let _held = streams.reserve(client);

        assert_eq!(outcome(&streams.reserve(client)), "503");
        assert_eq!(
            streams.per_client.lock().get(&client.group()),
            Some(&1),
            "the refused stream kept its share"
        );
    }

    #[test]
    fn retry_jitter_stays_within_half_the_base_either_way() {
        let draws: Vec<u64> = (0..1000).map(|_| jittered(Duration::from_secs(3))).collect();
        assert!(draws.iter().all(|ms| (1500..=4500).contains(ms)));
        assert!(draws.iter().any(|ms| *ms < 2500) && draws.iter().any(|ms| *ms > 3500), "no spread");
    }
}
