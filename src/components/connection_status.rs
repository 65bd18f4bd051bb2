//! The state of the page's event stream, and the badge that shows it.

use leptos::prelude::*;

/// Where the browser's `EventSource` stands, as a person would describe it. The server only ever
/// renders the first state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub(crate) enum ConnectionState {
    /// The first connection is being made (also what the server renders).
    Connecting,
    /// The stream is open and events flow.
    Live,
    /// The stream broke and the browser is connecting again.
    Reconnecting,
}

impl ConnectionState {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Live => "live",
            Self::Reconnecting => "reconnecting",
        }
    }
}

#[component]
pub(crate) fn ConnectionBadge(state: ReadSignal<ConnectionState>) -> impl IntoView {
    let label = move || state.get().label();
    view! {
        <span class="connection" data-state=label role="status" aria-live="polite">
            <span class="connection-dot" aria-hidden="true"></span>
            <span data-testid="connection-state">{label}</span>
        </span>
    }
}
