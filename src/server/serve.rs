//! The accept loop: HTTP/1 and HTTP/2 through hyper, with a header-read timeout, a write
//! timeout, and a graceful shutdown that ends after the grace time whatever the clients do.
//! Stream requests take the fast path on the raw socket ([`super::fast_path`]).
//!
//! axum's own `serve` gives hyper no timer, and so no header-read timeout: a client that
//! trickles its request headers (slowloris) would hold its connection for as long as it likes.

use std::{io, sync::Arc, time::Duration};

use axum::{extract::ConnectInfo, http::Request, Router};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto::Builder, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use prometheus_client::metrics::counter::Counter;
use tokio::{net::TcpListener, task::JoinSet};
use tokio_io_timeout::TimeoutStream;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::fast_path::{self, Opening, Rewound};

/// The most a request's line and headers may take; past it, hyper answers 431. Generous for any
/// real client (browsers stop near 16 KiB of cookies) and far below hyper's default of ~400 KiB.
const MAX_REQUEST_HEAD: usize = 64 * 1024;

/// How long to pause when `accept` fails (out of file descriptors, say) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

pub(crate) struct ServeSettings {
    pub connections_opened: Counter,
    pub connections_closed: Counter,
    pub header_read_timeout: Duration,
    pub write_timeout: Duration,
    pub shutdown_grace: Duration,
    /// The kernel send buffer of each connection, in bytes.
    pub send_buffer: usize,
    /// Whether stream requests take [`fast_path`].
    pub stream_fast_path: bool,
}

/// Serves `router` on `listener` until `shutdown` is cancelled; then stops accepting, lets the
/// open connections finish for at most the grace time, and closes whatever is left.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ServeSettings,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(MAX_REQUEST_HEAD);
    // Shared: every connection's task holds it, and a copy each would sit in every stream's task.
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        // Left to autotuning, the kernel would buffer megabytes for a client that stopped
        // reading, per connection, before the hub's queue could notice it falling behind.
        if let Err(err) = socket2::SockRef::from(&stream).set_send_buffer_size(settings.send_buffer) {
            tracing::warn!(%err, "cannot size the send buffer");
        }
        while connections.try_join_next().is_some() {}
        settings.connections_opened.inc();
        let closed = settings.connections_closed.clone();
        let (router, builder, watcher) = (router.clone(), Arc::clone(&builder), graceful.watcher());
        let (header_read_timeout, write_timeout) = (settings.header_read_timeout, settings.write_timeout);
        let fast = settings.stream_fast_path;
        connections.spawn(async move {
            let mut stream = stream;
            let opening = match fast {
                true => fast_path::read_opening(&mut stream, peer, header_read_timeout).await,
                false => Opening::Other(bytes::Bytes::new()),
            };
            let served = match opening {
                Opening::Stream(request) => {
                    fast_path::serve_stream(stream, router, request, write_timeout).await
                }
                Opening::Other(read) => {
                    // Handlers see the client's address as axum's `ConnectInfo`, as with
                    // `axum::serve`.
                    let service =
                        TowerToHyperService::new(router.map_request(move |mut request: Request<_>| {
                            request.extensions_mut().insert(ConnectInfo(peer));
                            request
                        }));
                    // A stream's writes wait for as long as its client does not read; past the
                    // write timeout the connection fails, which drops the stream and gives back
                    // its slot.
                    let mut stream = TimeoutStream::new(stream);
                    stream.set_write_timeout(Some(write_timeout));
                    let io = TokioIo::new(Rewound::new(read, Box::pin(stream)));
                    let connection = builder.serve_connection_with_upgrades(io, service).into_owned();
                    // Boxed: hyper's connection future is sized for HTTP/2 and would otherwise
                    // make every connection's task that large, fast-path streams included.
                    Box::pin(watcher.watch(connection)).await.map_err(io::Error::other)
                }
                Opening::Silent => Ok(()),
            };
            if let Err(err) = served {
                tracing::debug!(%err, "connection closed with an error");
            }
            closed.inc();
        });
    }
    drop(listener);

    tracing::info!(grace = ?settings.shutdown_grace, open = connections.len(), "draining connections");
    // Streams end by themselves on shutdown (each with its farewell); hyper's connections are
    // told to finish their requests.
    let drained = async {
        graceful.shutdown().await;
        while connections.join_next().await.is_some() {}
    };
    if tokio::time::timeout(settings.shutdown_grace, drained).await.is_err() {
        tracing::warn!(open = connections.len(), "connections still open after the grace time; closing them");
    }
    connections.shutdown().await;
    Ok(())
}
