//! The notice that the page's live view was reset: the stream could not replay exactly what the
//! page missed (`event: reset`), so the page fetched its jobs again, and says so with the reason.

use leptos::prelude::*;

use crate::protocol::ResetNotice;

/// A live region that is always in the page (empty until a reset), so that a screen reader
/// announces the notice when it appears; the notice stays until dismissed or the next reset
/// replaces it.
#[component]
pub(crate) fn ResetBanner(notice: RwSignal<Option<ResetNotice>>) -> impl IntoView {
    view! {
        <div class="notices" role="status" aria-live="polite">
            <Show when=move || notice.with(Option::is_some)>
                <p class="notice" data-testid="reset-notice">
                    <span>
                        "Some live updates could not be replayed ("
                        {move || notice.with(|notice| notice.as_ref().map(|notice| notice.message.clone()))}
                        "), so your jobs were fetched again."
                    </span>
                    <button
                        type="button"
                        class="notice-dismiss"
                        data-testid="dismiss-reset"
                        aria-label="Dismiss this notice"
                        on:click=move |_| notice.set(None)
                    >
                        "×"
                    </button>
                </p>
            </Show>
        </div>
    }
}
