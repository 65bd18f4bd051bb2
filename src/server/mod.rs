//! The axum server (feature `ssr`): [`Application`] binds a listener, builds the state and the
//! router from a [`Config`], and serves until told to stop.

pub(crate) mod admin;
pub(crate) mod assets;
pub(crate) mod auth;
pub(crate) mod backend;
pub(crate) mod bearer;
pub(crate) mod client;
pub(crate) mod clock;
pub(crate) mod config;
pub(crate) mod csrf;
pub(crate) mod deadline;
pub(crate) mod error;
pub(crate) mod event;
pub(crate) mod extract;
pub(crate) mod fast_path;
pub(crate) mod hub;
pub(crate) mod jobs;
pub(crate) mod metrics;
pub(crate) mod open_files;
pub(crate) mod redis;
pub(crate) mod routes;
pub(crate) mod serve;
pub(crate) mod session;
pub(crate) mod shutdown;
pub(crate) mod signature;
pub(crate) mod sse;
pub(crate) mod state;
pub(crate) mod telemetry;

use std::{future::Future, io, net::SocketAddr};

use axum::Router;
use leptos::config::LeptosOptions;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use assets::settle_hash_files;
pub use bearer::{check_bearer, BearerError};
pub use config::{refuse_development_secrets, Config, LogFormat};
pub use herald_client::signature::{sign as sign_callback, HEADER as SIGNATURE_HEADER};
pub use redis::RedisUrl;
pub use shutdown::signal as shutdown_signal;
pub use telemetry::init as init_telemetry;

/// How long a starting server waits for its Redis reader before serving anyway.
const READER_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// A bound, ready-to-serve Herald.
pub struct Application {
    listener: TcpListener,
    router: Router,
    /// `--metrics-addr`: the listener of `/metrics` alone, its router and its settings.
    metrics: Option<(TcpListener, Router, serve::ServeSettings)>,
    /// The one shutdown signal: every stream, the clock and every job timer watch a clone of it.
    shutdown: CancellationToken,
    serve_settings: serve::ServeSettings,
}

impl Application {
    /// Raises the open-file limit, binds `leptos_options.site_addr` (port 0 picks a free port)
    /// and `--metrics-addr` if set,
    /// then builds the state and starts its background tasks.
    pub async fn build(config: Config, mut leptos_options: LeptosOptions) -> io::Result<Self> {
        config
            .check(leptos_options.site_addr)
            .map_err(|problem| io::Error::new(io::ErrorKind::InvalidInput, problem))?;
        let open_file_limit = open_files::raise_limit();
        if let Some(problem) =
            open_files::shortfall(open_file_limit, config.max_subscribers, config.max_connections)
        {
            tracing::warn!("{problem}");
        }
        let listener = TcpListener::bind(leptos_options.site_addr).await?;
        leptos_options.site_addr = listener.local_addr()?;
        let metrics_listener = match config.metrics_addr {
            Some(address) => Some(TcpListener::bind(address).await?),
            None => None,
        };
        let shutdown = CancellationToken::new();
        let state = state::AppState::new(&config, leptos_options, &shutdown);
        state.hub().following(READER_PATIENCE).await;
        let serve_settings = config.serve_settings(state.metrics(), open_file_limit);
        let metrics = metrics_listener.map(|listener| {
            // The same deadlines and shutdown as the main listener; its connections are not the
            // ones `herald_connections_*` count, and it has no streams for the fast path to take.
            let settings = serve::ServeSettings {
                connections_opened: Default::default(),
                connections_closed: Default::default(),
                stream_fast_path: false,
                ..config.serve_settings(state.metrics(), open_file_limit)
            };
            (listener, routes::metrics_router(state.clone()), settings)
        });
        Ok(Self { listener, router: routes::router(state), metrics, shutdown, serve_settings })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address `/metrics` is served on when it has a listener of its own.
    pub fn metrics_addr(&self) -> Option<io::Result<SocketAddr>> {
        self.metrics.as_ref().map(|(listener, ..)| listener.local_addr())
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
        let Some((metrics_listener, metrics_router, metrics_settings)) = self.metrics else {
            return serve::serve(self.listener, self.router, self.serve_settings, self.shutdown).await;
        };
        let (main, metrics) = tokio::join!(
            serve::serve(self.listener, self.router, self.serve_settings, self.shutdown.clone()),
            serve::serve(metrics_listener, metrics_router, metrics_settings, self.shutdown),
        );
        main.and(metrics)
    }
}
