//! `GET /remote`: the live clock. One tick right away, then one on every wall-clock second.
//!
//! Ticks carry no `id`: a missed tick is worth nothing on reconnect, and an event without an id
//! leaves the browser's last event id alone for the relayed events that do carry one.

use axum::{
    extract::State,
    response::{sse::Event, IntoResponse},
};
use chrono::Utc;
use futures::{future, stream, StreamExt};
use tokio_stream::wrappers::WatchStream;

use crate::server::{sse, AppState};
use crate::tick;

pub async fn clock_stream(State(state): State<AppState>) -> impl IntoResponse {
    let ticks = WatchStream::from_changes(state.clock.clone());
    let now = Utc::now();
    // A second boundary the clock task stamped just before `now` may still be in flight;
    // dropping it keeps every stream strictly increasing.
    let later_ticks = ticks.filter(move |tick| future::ready(*tick > now));
    let events = stream::once(future::ready(now))
        .chain(later_ticks)
        .map(|instant| Event::default().data(tick::encode(instant)));
    sse::respond(events, &state.streams, &state.shutdown)
}
