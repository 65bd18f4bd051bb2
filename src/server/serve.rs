//! The accept loop: HTTP/1.1 through hyper, with a deadline on every request and on idle
//! connections ([`super::deadline`]), a write timeout, a ceiling on open connections, and a
//! graceful shutdown that ends after the grace time whatever the clients do. Stream requests take
//! the fast path on the raw socket ([`super::fast_path`]).
//!
//! axum's own `serve` gives hyper no timer, and so no header-read timeout: a client that
//! trickles its request headers (slowloris) would hold its connection for as long as it likes.
//!
//! Cleartext HTTP/2 (h2c) is not served. Browsers speak HTTP/2 only over TLS, which the proxy in
//! front of Herald terminates, and the proxies Herald is deployed behind (nginx, Envoy, a cloud
//! load balancer) speak HTTP/1.1 to their upstreams; h2c would only add a second protocol whose
//! idle connections need pings and timers of their own. An h2c preface is answered as the
//! malformed HTTP/1.1 request it is, and the connection closed.

use std::{io, sync::Arc, time::Duration};

use axum::{extract::ConnectInfo, http::Request, Router};
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use prometheus_client::metrics::counter::Counter;
use tokio::{net::TcpListener, sync::Semaphore, task::JoinSet, time::Instant};
use tokio_io_timeout::TimeoutStream;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::{
    deadline::ConnectionDeadlines,
    fast_path::{self, Opening, Rewound},
};

/// The most a request's line and headers may take; past it, hyper answers 431. Generous for any
/// real client (browsers stop near 16 KiB of cookies) and far below hyper's default of ~400 KiB.
const MAX_REQUEST_HEAD: usize = 64 * 1024;

/// How long to pause when `accept` fails (out of file descriptors, say) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

pub(crate) struct ServeSettings {
    pub connections_opened: Counter,
    pub connections_closed: Counter,
    /// How long a request may take to arrive whole, counted from the accept for a connection's
    /// first request.
    pub request_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
    /// How many connections may be open at once; past it, new ones wait in the kernel's
    /// backlog instead of being accepted and failing.
    pub max_connections: usize,
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
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.request_timeout)
        .max_buf_size(MAX_REQUEST_HEAD);
    // Shared: every connection's task holds it, and a copy each would sit in every stream's task.
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let open = Arc::new(Semaphore::new(settings.max_connections));

    loop {
        // A place is taken before accepting: at the ceiling, clients wait in the backlog and are
        // served as places free up, instead of `accept` failing for want of file descriptors.
        let place = tokio::select! {
            place = Arc::clone(&open).acquire_owned() => place.expect("the semaphore is never closed"),
            () = shutdown.cancelled() => break,
        };
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
        let accepted = Instant::now();
        // Left to autotuning, the kernel would buffer megabytes for a client that stopped
        // reading, per connection, before the hub's queue could notice it falling behind.
        if let Err(err) = socket2::SockRef::from(&stream).set_send_buffer_size(settings.send_buffer) {
            tracing::warn!(%err, "cannot size the send buffer");
        }
        while connections.try_join_next().is_some() {}
        settings.connections_opened.inc();
        let closed = settings.connections_closed.clone();
        let (router, builder, watcher) = (router.clone(), Arc::clone(&builder), graceful.watcher());
        let (request_timeout, idle_timeout) = (settings.request_timeout, settings.idle_timeout);
        let write_timeout = settings.write_timeout;
        let fast = settings.stream_fast_path;
        connections.spawn(async move {
            let _place = place;
            let mut stream = stream;
            let opening = match fast {
                true => fast_path::read_opening(&mut stream, peer, accepted + request_timeout).await,
                false => Opening::Other(bytes::Bytes::new()),
            };
            let served = match opening {
                Opening::Stream(request) => {
                    fast_path::serve_stream(stream, router, request, write_timeout).await
                }
                Opening::Other(read) => {
                    let deadlines = ConnectionDeadlines::new(accepted, request_timeout, idle_timeout);
                    let (arrived, began) = (deadlines.clone(), deadlines.clone());
                    // Handlers see the client's address as axum's `ConnectInfo`, as with
                    // `axum::serve`.
                    let service = router
                        .map_request(move |mut request: Request<_>| {
                            arrived.request_arrived();
                            request.extensions_mut().insert(ConnectInfo(peer));
                            request
                        })
                        .map_response(move |response| began.answer_began(response));
                    let service = TowerToHyperService::new(service);
                    // A stream's writes wait for as long as its client does not read; past the
                    // write timeout the connection fails, which drops the stream and gives back
                    // its slot.
                    let mut stream = TimeoutStream::new(stream);
                    stream.set_write_timeout(Some(write_timeout));
                    let io = TokioIo::new(Rewound::new(read, Box::pin(stream)));
                    let connection = builder.serve_connection(io, service);
                    // Boxed: hyper's connection future is large and would otherwise make every
                    // connection's task that large, fast-path streams included.
                    let served = Box::pin(watcher.watch(connection));
                    tokio::select! {
                        served = served => served.map_err(io::Error::other),
                        () = Box::pin(deadlines.expired()) => {
                            tracing::debug!("closing a connection past its request or idle deadline");
                            Ok(())
                        }
                    }
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
