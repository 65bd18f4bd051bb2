//! The axum server: builds the router around shared state, binds, and serves until told to stop.

pub mod clock;
pub mod config;
pub mod error;
pub mod event;
pub mod hub;
pub mod jobs;
pub mod routes;
pub mod serve;
pub mod session;
pub mod shutdown;
pub mod signature;
pub mod sse;
pub mod telemetry;
pub mod worker_client;

use std::{
    future::Future,
    io,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    extract::{DefaultBodyLimit, FromRef},
    middleware,
    routing::{get, on, post, MethodFilter},
    Router,
};
use leptos::{config::LeptosOptions, context::provide_context, server_fn::axum::server_fn_paths};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

use crate::app::{not_found, shell};
use config::Config;
use hub::Hub;

/// What every handler may reach.
#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub clock: clock::Ticks,
    pub hub: Arc<Hub>,
    pub streams: sse::Streams,
    pub publish_token: Option<Arc<str>>,
    pub publish_rate: Arc<governor::DefaultDirectRateLimiter>,
    pub callbacks: Option<Arc<signature::CallbackAuth>>,
    pub jobs: Arc<jobs::Jobs>,
    pub job_timeout: Duration,
    pub worker: worker_client::WorkerClient,
    /// This server's base URL as the worker calls it back.
    pub public_url: Arc<str>,
    pub max_topics: usize,
    pub max_body: usize,
    /// Cancelled when the server starts shutting down; every long-lived task watches it.
    pub shutdown: CancellationToken,
}

/// How many jobs the registry keeps (running, or finished and still listed).
const MAX_JOBS: usize = 10_000;

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

/// The whole HTTP surface: the SSE routes, the publish API, the Leptos pages, static assets,
/// and the 404 page.
pub fn router(state: AppState) -> Router {
    // Leptos renders and resolves resources on its global executor. Setting it again (one test
    // process builds many routers) is refused harmlessly.
    let _ = any_spawner::Executor::init_tokio();
    // Server functions and the page read the state from the Leptos context.
    let provide_state = {
        let state = state.clone();
        move || provide_context(state.clone())
    };
    let home = {
        let options = state.leptos_options.clone();
        move || shell(options.clone())
    };
    let body_limit = DefaultBodyLimit::max(state.max_body);
    // What a browser uses gets a session cookie; the server-to-server API and static files do not.
    let browser_routes = Router::new()
        .route("/remote", get(routes::remote::clock_stream))
        .route("/events", get(routes::events::event_stream))
        .route("/", get(leptos_axum::render_app_to_stream_with_context(provide_state.clone(), home)));
    // Each server function at its own path and method, so that any other path under /api is a
    // plain 404 like everywhere else.
    let browser_routes = server_fn_paths()
        .fold(browser_routes, |routes, (path, method)| {
            let provide_state = provide_state.clone();
            let handler = move |request| leptos_axum::handle_server_fns_with_context(provide_state, request);
            let method = MethodFilter::try_from(method).expect("server functions use standard methods");
            routes.route(path, on(method, handler))
        })
        .layer(middleware::from_fn(session::ensure_session));
    browser_routes
        .route("/publish", post(routes::publish::publish).layer(body_limit))
        .route("/callbacks/{job_id}", post(routes::callbacks::job_finished).layer(body_limit))
        .route("/healthz", get(routes::health::health))
        .route("/metrics", get(routes::metrics::metrics))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(not_found))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// A bound, ready-to-serve Herald.
pub struct Application {
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    serve_settings: serve::ServeSettings,
}

impl Application {
    /// Binds `leptos_options.site_addr` (port 0 picks a free port) and starts the clock.
    pub async fn build(config: Config, leptos_options: LeptosOptions) -> io::Result<Self> {
        let listener = TcpListener::bind(leptos_options.site_addr).await?;
        let public_url = match &config.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", listener.local_addr()?),
        };
        let shutdown = CancellationToken::new();
        let state = AppState {
            leptos_options,
            clock: clock::spawn(shutdown.clone()),
            hub: Hub::new(incarnation(), config.hub_settings()),
            streams: sse::Streams::new(&config, shutdown.clone()),
            publish_token: config.publish_token.as_deref().map(Arc::from),
            publish_rate: Arc::new(governor::RateLimiter::direct(governor::Quota::per_second(
                std::num::NonZeroU32::new(config.max_publish_rate).expect("clap keeps it above zero"),
            ))),
            callbacks: config
                .callback_secret
                .clone()
                .map(|secret| Arc::new(signature::CallbackAuth::new(secret, config.callback_tolerance))),
            jobs: Arc::new(jobs::Jobs::new(MAX_JOBS)),
            job_timeout: config.job_timeout,
            worker: worker_client::WorkerClient::new(&config.worker_url),
            public_url: public_url.into(),
            max_topics: config.max_topics as usize,
            max_body: config.max_body,
            shutdown: shutdown.clone(),
        };
        let serve_settings = serve::ServeSettings {
            header_read_timeout: config.header_read_timeout,
            write_timeout: config.write_timeout,
            shutdown_grace: config.shutdown_grace,
            send_buffer: config.send_buffer,
        };
        Ok(Self { listener, router: router(state), shutdown, serve_settings })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `stop` completes, then ends every stream and waits for open connections to
    /// finish, for at most the shutdown grace time.
    pub async fn run_until(self, stop: impl Future<Output = ()> + Send + 'static) -> io::Result<()> {
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            stop.await;
            tracing::info!("shutting down: ending every stream");
            shutdown.cancel();
        });
        serve::serve(self.listener, self.router, self.serve_settings, self.shutdown).await
    }
}

/// Tells this run's event ids from an earlier run's: the start time in milliseconds.
fn incarnation() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64)
}
