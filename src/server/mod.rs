//! The axum server: builds the router around shared state, binds, and serves until told to stop.

pub mod clock;
pub mod config;
pub mod routes;
pub mod shutdown;
pub mod sse;
pub mod telemetry;

use std::{
    future::{Future, IntoFuture},
    io,
    net::SocketAddr,
    time::Duration,
};

use axum::{extract::FromRef, routing::get, Router};
use leptos::config::LeptosOptions;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

use crate::app::{shell, App};
use config::Config;

/// What every handler may reach.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub clock: clock::Ticks,
    pub streams: sse::StreamSettings,
    /// Cancelled once, when the server starts to shut down; every stream ends on it.
    pub shutdown: CancellationToken,
}

/// The whole HTTP surface: the SSE routes, the Leptos pages, static assets, and the 404 page.
pub fn router(state: AppState) -> Router {
    let pages = generate_route_list(App);
    Router::new()
        .route("/remote", get(routes::remote::clock_stream))
        .route("/healthz", get(routes::health::health))
        .leptos_routes(&state, pages, {
            let options = state.leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// A bound, ready-to-serve Herald.
pub struct Application {
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    shutdown_grace: Duration,
}

impl Application {
    /// Binds `leptos_options.site_addr` (port 0 picks a free port) and starts the clock.
    pub async fn build(config: Config, leptos_options: LeptosOptions) -> io::Result<Self> {
        let listener = TcpListener::bind(leptos_options.site_addr).await?;
        let shutdown = CancellationToken::new();
        let state = AppState {
            leptos_options,
            clock: clock::spawn(shutdown.clone()),
            streams: sse::StreamSettings::from(&config),
            shutdown: shutdown.clone(),
        };
        Ok(Self {
            listener,
            router: router(state),
            shutdown,
            shutdown_grace: config.shutdown_grace,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `stop` completes, then ends every stream and waits for open connections to
    /// finish, for at most the shutdown grace time.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let shutdown = self.shutdown;
        let server = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let mut server = tokio::spawn(server.into_future());

        tokio::select! {
            finished = &mut server => return finished.map_err(io::Error::other)?,
            () = stop => {}
        }
        tracing::info!(grace = ?self.shutdown_grace, "shutting down: ending every stream");
        shutdown.cancel();
        match tokio::time::timeout(self.shutdown_grace, &mut server).await {
            Ok(finished) => finished.map_err(io::Error::other)?,
            Err(_) => {
                tracing::warn!("connections still open after the grace time; closing them");
                server.abort();
                Ok(())
            }
        }
    }
}
