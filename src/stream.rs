//! The browser's end of an SSE stream: a gloo-net `EventSource` feeding Leptos signals, with the
//! connection state, a restart when the browser gives up, and cleanup when the component unmounts.
//!
//! On the server this only hands out the initial state: effects never run during SSR, so the
//! server-rendered page and the first hydrated render agree.

use leptos::prelude::*;

use crate::components::connection_status::ConnectionState;

/// Follows the SSE stream at `url` for as long as the calling component is mounted, handing the
/// data of every unnamed (`message`) event to `on_message`; returns the connection state.
pub fn use_event_stream(
    url: &'static str,
    on_message: impl Fn(String) + Clone + 'static,
) -> ReadSignal<ConnectionState> {
    let (state, set_state) = signal(ConnectionState::Connecting);

    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let (task, handle) =
            futures::future::abortable(browser::follow(url, set_state, on_message.clone()));
        leptos::task::spawn_local(async move {
            // Aborted means unmounted: dropping the task closes its EventSource.
            let _ = task.await;
        });
        on_cleanup(move || handle.abort());
    });
    #[cfg(not(feature = "hydrate"))]
    let _ = (url, set_state, on_message);

    state
}

#[cfg(feature = "hydrate")]
mod browser {
    use futures::StreamExt;
    use gloo_net::eventsource::futures::EventSource;
    use gloo_timers::future::TimeoutFuture;
    use leptos::logging::error;
    use leptos::prelude::*;

    use crate::components::connection_status::ConnectionState;

    /// How long to wait before opening a new `EventSource` after the browser closed one for good
    /// (after a non-200 answer, for example); plain network errors are retried by the browser.
    const RESTART_AFTER_MS: u32 = 3_000;

    pub(super) async fn follow(
        url: &'static str,
        set_state: WriteSignal<ConnectionState>,
        on_message: impl Fn(String),
    ) {
        loop {
            let mut source = match EventSource::new(url) {
                Ok(source) => source,
                Err(err) => {
                    error!("herald: cannot open an EventSource on {url}: {err}");
                    return;
                }
            };
            // gloo-net hides the `error` events of a browser that is reconnecting, but a
            // subscription to the event type `error` itself sees every one of them; `open`
            // says when the stream is back.
            let subscriptions = ["message", "open", "error"].map(|kind| source.subscribe(kind));
            let subscriptions = match subscriptions.into_iter().collect::<Result<Vec<_>, _>>() {
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
                    Ok((kind, _)) if kind == "error" => {
                        set_state.set(ConnectionState::Reconnecting)
                    }
                    Ok((_, message)) => match message.data().as_string() {
                        Some(data) => on_message(data),
                        None => error!("herald: an event on {url} carried no text"),
                    },
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
