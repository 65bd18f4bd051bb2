//! The pages' HTML documents and the app the browser hydrates.
//!
//! There are two interactive pages, the home page (`/`) and the operator page (`/admin`), and no
//! client-side router: the server's route table serves each, every unknown path gets a static
//! 404 document, and the wasm bundle hydrates the body that matches its path (leptos_router and
//! leptos_meta cost 90 KB of gzipped wasm).

use leptos::logging::{error, log};
use leptos::prelude::*;

#[cfg(feature = "ssr")]
use crate::admin::page::AdminApp;
use crate::components::{
    connection_status::ConnectionBadge,
    jobs_panel::{merge, JobsPanel},
    live_clock::{ClockFeed, LiveClock},
    reset_notice::ResetBanner,
};
use crate::jobs::list_jobs;
use crate::protocol::{JobView, PageEvent, ResetNotice};
use crate::stream::use_events;

/// The home page's document: the server renders it, and the wasm bundle hydrates its body.
#[cfg(feature = "ssr")]
pub(crate) fn shell(options: LeptosOptions) -> impl IntoView {
    hydrated_document(options, "Herald", view! { <App/> })
}

/// The operator page's document for a signed-in operator, hydrated like the home page.
#[cfg(feature = "ssr")]
pub(crate) fn admin_shell(options: LeptosOptions) -> impl IntoView {
    hydrated_document(options, "Operator · Herald", view! { <AdminApp/> })
}

/// The Content-Security-Policy of the operator's sign-in form: no script at all, and the form
/// posts to this origin only.
#[cfg(feature = "ssr")]
pub(crate) const SIGN_IN_POLICY: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The operator page's sign-in form, as HTML; `failed` says the last token was wrong. It needs
/// no script: the form posts the token to `/admin/login`, which sets the cookie and comes back
/// to `/admin`. Rendered to a string, not streamed, so that nothing is appended to it.
#[cfg(feature = "ssr")]
pub(crate) fn admin_sign_in(options: &LeptosOptions, failed: bool) -> String {
    let page = document(
        options,
        "Sign in · Herald operator",
        (),
        view! {
            <main>
                <section class="sign-in">
                    <h1>"Herald operator"</h1>
                    <form method="post" action="/admin/login">
                        <label for="admin-token">"Admin token"</label>
                        <input id="admin-token" name="token" type="password" autocomplete="current-password" required autofocus/>
                        <button type="submit">"Sign in"</button>
                    </form>
                    {failed.then(|| view! {
                        <p class="sign-in-failed" role="alert">"That is not the admin token (HERALD_ADMIN_TOKEN)."</p>
                    })}
                </section>
            </main>
        },
    );
    leptos::reactive::owner::Owner::new().with(|| page.to_html())
}

/// A document whose body the wasm bundle hydrates (`crate::hydrate` picks the component by path).
#[cfg(feature = "ssr")]
fn hydrated_document(options: LeptosOptions, title: &'static str, body: impl IntoView) -> impl IntoView {
    // Scripts run only from this origin, or inline with this response's nonce (the hydration
    // script); wasm may compile; the stream and the server functions are same-origin.
    let nonce = leptos::nonce::use_nonce().map(|nonce| format!(" 'nonce-{nonce}'")).unwrap_or_default();
    // `cargo leptos watch` reloads the page over a websocket to its reload port.
    let reload = std::env::var_os("LEPTOS_WATCH")
        .map(|_| format!(" ws://{}:{}", options.site_addr.ip(), options.reload_port))
        .unwrap_or_default();
    page_headers(&format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'{nonce}; connect-src 'self'{reload}; \
         img-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    ));
    document(
        &options.clone(),
        title,
        view! {
            <AutoReload options=options.clone()/>
            <HydrationScripts options/>
        },
        body,
    )
}

/// The document for every unknown path, sent with status 404. Nothing on it needs wasm.
#[cfg(feature = "ssr")]
pub(crate) fn not_found(options: LeptosOptions) -> impl IntoView {
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    page_headers(
        "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'",
    );
    document(
        &options,
        "Not found · Herald",
        (),
        view! {
            <main>
                <section class="not-found">
                    <h1>"Page not found"</h1>
                    <p>"There is nothing at this address."</p>
                    <a href="/">"Back to the live clock"</a>
                </section>
            </main>
        },
    )
}

/// The stylesheet's URL: with its content hash when cargo-leptos hashed the site's files (read
/// from the same `hash.txt` beside the binary that Leptos reads for the scripts), so that it can
/// be cached for good; otherwise its plain name.
#[cfg(feature = "ssr")]
fn stylesheet_href(options: &LeptosOptions) -> String {
    let hash = || {
        let hashes = std::env::current_exe().ok()?.parent()?.join(options.hash_file.as_ref());
        let hashes = std::fs::read_to_string(hashes).ok()?;
        hashes.lines().find_map(|line| Some(line.trim().strip_prefix("css:")?.trim().to_owned()))
    };
    let (pkg, name) = (&options.site_pkg_dir, &options.output_name);
    match options.hash_files.then(hash).flatten() {
        Some(hash) => format!("/{pkg}/{name}.{hash}.css"),
        None => format!("/{pkg}/{name}.css"),
    }
}

/// The headers of an HTML page: its Content-Security-Policy, and no caching, so that a new
/// deployment's page (and the assets it names) is fetched at once.
#[cfg(feature = "ssr")]
fn page_headers(policy: &str) {
    use axum::http::{header, HeaderValue};

    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        let policy = HeaderValue::from_str(policy).expect("the policy is visible ASCII");
        response.insert_header(header::CONTENT_SECURITY_POLICY, policy);
        response.insert_header(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
}

#[cfg(feature = "ssr")]
fn document(
    options: &LeptosOptions,
    title: &'static str,
    scripts: impl IntoView,
    body: impl IntoView,
) -> impl IntoView {
    let stylesheet = stylesheet_href(options);
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="description" content="Live server events over Server-Sent Events."/>
                <title>{title}</title>
                <link rel="icon" type="image/svg+xml" href="/favicon.svg"/>
                <link rel="stylesheet" href=stylesheet/>
                {scripts}
            </head>
            <body>{body}</body>
        </html>
    }
}

/// What the wasm bundle hydrates: the body of the home page.
#[component]
pub(crate) fn App() -> impl IntoView {
    view! {
        <main>
            <HomePage/>
        </main>
    }
}

/// The clock and the jobs, fed by one connection to `/remote`: unnamed events are clock ticks,
/// `job` events are this session's jobs, a `reset` means replay could not be exact, and a
/// `shutdown` comes just before the server closes the stream.
#[component]
fn HomePage() -> impl IntoView {
    let clock = ClockFeed::new();
    let jobs = RwSignal::new(Vec::<JobView>::new());
    let reset = RwSignal::new(None::<ResetNotice>);

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
    let state = use_events(sync_jobs, move |event| match event {
        PageEvent::Tick(tick) => {
            log!("herald tick {}", tick.encode());
            clock.push(tick);
        }
        PageEvent::Job(job) => jobs.update(|known| merge(known, job)),
        PageEvent::Reset(notice) => {
            log!("herald reset {:?}: {}", notice.reason, notice.message);
            reset.set(Some(notice));
            leptos::task::spawn_local(async move {
                let _ = sync_jobs().await;
            });
        }
        // The stream ends next; the browser reconnects and resumes where it was.
        PageEvent::Shutdown(notice) => log!("herald: the server is shutting down ({})", notice.message),
    });

    view! {
        <header class="masthead">
            <div>
                <h1>"Herald"</h1>
                <p class="tagline">"The server's clock and your jobs, pushed to this page over Server-Sent Events."</p>
            </div>
            <ConnectionBadge state/>
        </header>
        <ResetBanner notice=reset/>
        <div class="panels">
            <LiveClock feed=clock/>
            <JobsPanel jobs/>
        </div>
    }
}
