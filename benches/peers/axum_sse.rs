//! The idiomatic axum SSE server, a baseline of `benches/compare.rs`: one `broadcast` channel,
//! each subscriber's `Sse` body turning every message into an `Event`, served by `axum::serve`.
//! It is written as the axum examples would have it, with nothing tuned.
//!
//! `GET /events` subscribes; `POST /publish` sends its body as the next event's data. It listens
//! on a free loopback port and logs `listening on http://…` to stderr, as `herald` does.

use std::convert::Infallible;

use axum::{
    extract::State,
    http::StatusCode,
    response::sse::{Event, KeepAlive, Sse},
    routing::{get, post},
    Router,
};
use futures::{Stream, StreamExt};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

/// Messages a subscriber may fall behind by before it misses some (the benchmark counts a miss
/// as a loss): the benchmark's bursts stay below it.
const BACKLOG: usize = 1024;

#[tokio::main]
async fn main() {
    let (events, _) = broadcast::channel::<String>(BACKLOG);
    let app =
        Router::new().route("/events", get(subscribe)).route("/publish", post(publish)).with_state(events);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free loopback port");
    eprintln!("listening on http://{}", listener.local_addr().expect("a bound address"));
    axum::serve(listener, app).await.expect("serves until killed");
}

async fn publish(State(events): State<broadcast::Sender<String>>, data: String) -> StatusCode {
    // No subscriber is not an error: the event simply reaches nobody.
    let _ = events.send(data);
    StatusCode::ACCEPTED
}

async fn subscribe(
    State(events): State<broadcast::Sender<String>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = BroadcastStream::new(events.subscribe())
        .filter_map(|message| async move { message.ok().map(|data| Ok(Event::default().data(data))) });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
