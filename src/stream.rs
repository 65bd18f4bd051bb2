//! The browser's end of a page's event stream: a gloo-net `EventSource` whose events are
//! decoded once into the page's [`StreamEvent`]s ([`PageEvent`](crate::protocol::PageEvent) for the home page), with the
//! connection state, a fresh start when the browser gives up, and cleanup when the component
//! unmounts.
//!
//! On the server this only hands out the initial state: effects never run during SSR, so the
//! server-rendered page and the first hydrated render agree.

use std::future::Future;

use leptos::prelude::*;

use crate::components::connection_status::ConnectionState;
use crate::protocol::StreamEvent;

/// Follows a page's event stream for as long as the calling component is mounted.
///
/// `prepare` runs in the browser before each opening (the first, and each fresh start after the
/// browser closed the stream for good) and returns the URL to open, so that the caller can
/// sync its state first and resume right after it. Each event goes to `on_event`, decoded; one
/// that does not decode is logged as an error.
pub(crate) fn use_events<Event, Prepare, Url>(
    prepare: Prepare,
    on_event: impl Fn(Event) + Clone + 'static,
) -> ReadSignal<ConnectionState>
where
    Event: StreamEvent,
    Prepare: Fn() -> Url + Clone + 'static,
    Url: Future<Output = String> + 'static,
{
    let (state, set_state) = signal(ConnectionState::Connecting);

    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let (task, handle) =
            futures::future::abortable(browser::follow(prepare.clone(), set_state, on_event.clone()));
        leptos::task::spawn_local(async move {
            // Aborted means unmounted: dropping the task closes its EventSource.
            let _ = task.await;
        });
        on_cleanup(move || handle.abort());
    });
    #[cfg(not(feature = "hydrate"))]
    let _ = (prepare, set_state, on_event);

    state
}

#[cfg(feature = "hydrate")]
mod browser {
    use std::future::Future;

    use futures::StreamExt;
    use gloo_net::eventsource::futures::EventSource;
    use gloo_timers::future::TimeoutFuture;
    use leptos::logging::error;
    use leptos::prelude::*;

    use crate::components::connection_status::ConnectionState;
    use crate::protocol::StreamEvent;

    /// How long to wait before opening a new `EventSource` after the browser closed one for good
    /// (after a non-200 answer, for example); plain network errors are retried by the browser.
    const RESTART_AFTER_MS: u32 = 3_000;

    pub(super) async fn follow<Event: StreamEvent, Url: Future<Output = String>>(
        prepare: impl Fn() -> Url,
        set_state: WriteSignal<ConnectionState>,
        on_event: impl Fn(Event),
    ) {
        loop {
            let url = prepare().await;
            let mut source = match EventSource::new(&url) {
                Ok(source) => source,
                Err(err) => {
                    error!("herald: cannot open an EventSource on {url}: {err}");
                    return;
                }
            };
            // gloo-net hides the `error` events of a browser that is reconnecting, but a
            // subscription to the event type `error` itself sees every one of them; `open`
            // says when the stream is back.
            let subscriptions =
                ["open", "error"].iter().chain(Event::NAMES).map(|kind| source.subscribe(*kind));
            let subscriptions = match subscriptions.collect::<Result<Vec<_>, _>>() {
                Ok(subscriptions) => subscriptions,
                Err(err) => {
                    error!("herald: cannot listen on {url}: {err}");
                    return;
                }
            };
            let mut events = futures::stream::select_all(subscriptions);
            while let Some(event) = events.next().await {
                match event {
                    Ok((kind, _)) if kind == "open" => set_state.set(ConnectionState::Live),
                    Ok((kind, _)) if kind == "error" => set_state.set(ConnectionState::Reconnecting),
                    Ok((kind, message)) => {
                        let data = message.data().as_string().unwrap_or_default();
                        match Event::decode(&kind, &data) {
                            Ok(event) => on_event(event),
                            Err(problem) => error!("herald: {problem}"),
                        }
                    }
                    // The browser closed the stream and will not retry it by itself.
                    Err(_) => break,
                }
            }
            set_state.set(ConnectionState::Reconnecting);
            drop(events);
            source.close();
            TimeoutFuture::new(RESTART_AFTER_MS).await;
        }
    }
}
