//! How Herald speaks SSE over HTTP: the response headers, the opening `retry:` hint, keep-alive
//! comments, and the end of every stream when the server shuts down.

use std::{convert::Infallible, time::Duration};

use axum::{
    http::{header::HeaderName, HeaderValue},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse,
    },
};
use futures::{future, stream, Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use super::config::Config;

/// Tells nginx-style proxies not to buffer the stream, or events arrive in bursts.
const NO_PROXY_BUFFERING: (HeaderName, HeaderValue) = (
    HeaderName::from_static("x-accel-buffering"),
    HeaderValue::from_static("no"),
);

/// The per-stream settings taken from the configuration.
#[derive(Clone, Debug)]
pub struct StreamSettings {
    pub keep_alive: Duration,
    pub retry: Duration,
}

impl From<&Config> for StreamSettings {
    fn from(config: &Config) -> Self {
        Self {
            keep_alive: config.keep_alive,
            retry: config.retry,
        }
    }
}

/// Wraps `events` as an SSE response that opens with a `retry:` hint, sends keep-alive comments
/// while idle, and ends when `shutdown` is cancelled.
pub fn respond(
    events: impl Stream<Item = Event> + Send + 'static,
    settings: &StreamSettings,
    shutdown: &CancellationToken,
) -> impl IntoResponse {
    let retry_hint = stream::once(future::ready(Event::default().retry(settings.retry)));
    let body = retry_hint
        .chain(events)
        .take_until(shutdown.clone().cancelled_owned())
        .map(Ok::<_, Infallible>);
    (
        [NO_PROXY_BUFFERING],
        Sse::new(body).keep_alive(KeepAlive::new().interval(settings.keep_alive)),
    )
}
