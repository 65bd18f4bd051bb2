//! The page shell and the routes of the Leptos app, rendered on the server and hydrated in the browser.

use leptos::logging::{error, log};
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes, A},
    StaticSegment,
};

use crate::components::{
    connection_status::ConnectionBadge,
    jobs_panel::JobsPanel,
    live_clock::{ClockFeed, LiveClock},
};
use crate::jobs::{list_jobs, merge, JobView};
use crate::stream::use_event_stream;

/// The whole HTML document; the server renders it for every page request.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="description" content="Live server events over Server-Sent Events."/>
                <link rel="icon" type="image/svg+xml" href="/favicon.svg"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();

    view! {
        <Stylesheet id="leptos" href="/pkg/herald.css"/>
        <Title text="Herald"/>
        <Router>
            <main>
                <Routes fallback=NotFound>
                    <Route path=StaticSegment("") view=HomePage/>
                </Routes>
            </main>
        </Router>
    }
}

/// The clock and the jobs, fed by one connection to `/remote`: unnamed events are clock ticks,
/// `job` events are this session's jobs, and a `reset` means replay could not be exact.
#[component]
fn HomePage() -> impl IntoView {
    let clock = ClockFeed::new();
    let jobs = RwSignal::new(Vec::<JobView>::new());

    // Lists the jobs, then resumes the stream right after the listing, so that a job that
    // finishes in between is replayed rather than missed.
    let sync_jobs = move || async move {
        match list_jobs().await {
            Ok(listing) => {
                jobs.update(|known| listing.jobs.into_iter().for_each(|job| merge(known, job)));
                format!("/remote?lastEventId={}", listing.as_of)
            }
            Err(err) => {
                error!("herald: cannot list the jobs: {err}");
                "/remote".to_owned()
            }
        }
    };
    let state = use_event_stream(sync_jobs, &["message", "job", "reset"], move |kind, data| match kind {
        "message" => {
            log!("herald tick {data}");
            clock.push(data);
        }
        "job" => match serde_json::from_str::<JobView>(&data) {
            Ok(job) => jobs.update(|known| merge(known, job)),
            Err(err) => error!("herald: a job event did not parse ({err}): {data}"),
        },
        _ => {
            log!("herald reset {data}");
            leptos::task::spawn_local(async move {
                let _ = sync_jobs().await;
            });
        }
    });

    view! {
        <header class="masthead">
            <div>
                <h1>"Herald"</h1>
                <p class="tagline">"The server's clock and your jobs, pushed to this page over Server-Sent Events."</p>
            </div>
            <ConnectionBadge state/>
        </header>
        <div class="panels">
            <LiveClock feed=clock/>
            <JobsPanel jobs/>
        </div>
    }
}

/// Rendered for every unknown path; the server sends it with status 404.
#[component]
fn NotFound() -> impl IntoView {
    view! {
        <Title text="Not found · Herald"/>
        <section class="not-found">
            <h1>"Page not found"</h1>
            <p>"There is nothing at this address."</p>
            <A href="/">"Back to the live clock"</A>
        </section>
    }
}
