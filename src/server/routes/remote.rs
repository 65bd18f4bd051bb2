//! `GET /remote`: the page's one connection. The live clock (a tick right away, then one on
//! every wall-clock second, unnamed and without ids) and the caller's private session topic
//! (named events with ids, resumable with `Last-Event-ID` exactly as on `/events`). A client
//! without a session cookie (curl, say) gets the clock alone: only the page mints sessions.

use std::sync::Arc;

use axum::{extract::State, response::Response};
use futures::{future, stream, Stream, StreamExt};
use tokio_stream::wrappers::WatchStream;

use super::stream_request::StreamRequest;
use crate::server::{
    clock::{Clock, FramedTick},
    error::ApiError,
    hub::{Hub, TopicClass},
    sse::Streams,
};

pub(crate) async fn page_stream(
    State(streams): State<Streams>,
    State(hub): State<Arc<Hub>>,
    State(clock): State<Clock>,
    StreamRequest { session, client, resume, .. }: StreamRequest,
) -> Result<Response, ApiError> {
    let slot = streams.reserve(client)?;
    let session_events = match session {
        Some(session) => {
            future::Either::Left(hub.subscribe(vec![session.topic()], resume.as_deref()).into_stream())
        }
        // Never ends, so that the clock alone goes on.
        None => future::Either::Right(stream::pending()),
    };

    let ticks = WatchStream::from_changes(clock);
    let first = FramedTick::now();
    // A second boundary the clock stamped just before `first` may still be in flight; dropping
    // it keeps the ticks of every stream strictly increasing.
    let delivered = hub.stats.delivered_as(TopicClass::Clock);
    let later_ticks = ticks.filter(move |later| future::ready(later.tick > first.tick)).map(move |later| {
        delivered.inc();
        later.frame
    });
    let clock = stream::once(future::ready(first.frame)).chain(later_ticks);

    Ok(streams.respond(until_either_ends(clock, session_events), slot, "/remote"))
}

/// Interleaves two streams and ends as soon as either does: when the hub drops a slow subscriber
/// its session events end, and the whole stream must end with them so the browser resumes.
fn until_either_ends<T: Send + 'static>(
    a: impl Stream<Item = T> + Send + 'static,
    b: impl Stream<Item = T> + Send + 'static,
) -> impl Stream<Item = T> + Send + 'static {
    let end = || stream::once(future::ready(None));
    stream::select(a.map(Some).chain(end()), b.map(Some).chain(end()))
        .take_while(|item| future::ready(item.is_some()))
        .filter_map(future::ready)
}
