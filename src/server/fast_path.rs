//! The stream routes on the raw socket: a plain HTTP/1.1 `GET /remote` or `GET /events` goes
//! through the same router as any request, but its response is written straight to the socket
//! instead of through hyper's connection, which keeps a 16 KiB read buffer and an 8 KiB write
//! buffer for the life of every stream (docs/performance.md, "Memory per subscriber").
//!
//! Only what this module fully understands takes the fast path: `GET` of exactly those two paths
//! over HTTP/1.1, with no body, no `Upgrade`, no `Expect`, and nothing pipelined behind it.
//! Everything else goes to hyper untouched, with the bytes already read.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::Body,
    extract::ConnectInfo,
    http::{header, HeaderName, HeaderValue, Method, Request, StatusCode, Uri, Version},
    Router,
};
use bytes::{Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
use http_body_util::BodyExt;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::{tcp::OwnedWriteHalf, TcpStream},
};
use tower::ServiceExt;

/// The most of a request head read before deciding: a stream request with its cookies fits
/// easily; a longer head goes to hyper, which applies the real limit.
const MAX_FAST_HEAD: usize = 8 * 1024;

/// The most headers a fast-path request may have.
const MAX_HEADERS: usize = 64;

/// The most frames written in one system call.
const MAX_BATCH: usize = 64;

/// The largest non-stream answer (an error) the fast path writes; it is a small JSON body.
const MAX_ANSWER: usize = 64 * 1024;

/// What the start of a connection turned out to be.
pub(crate) enum Opening {
    /// A stream request, parsed: serve it with [`serve_stream`].
    Stream(Box<Request<Body>>),
    /// Anything else: hyper serves the connection, starting with these bytes.
    Other(Bytes),
    /// The client sent no complete head within the timeout: close.
    Silent,
}

/// Reads the request head, for at most `timeout`, and sorts the connection.
pub(crate) async fn read_opening(stream: &mut TcpStream, peer: SocketAddr, timeout: Duration) -> Opening {
    let mut head = BytesMut::with_capacity(1024);
    let reading = async {
        loop {
            match stream.read_buf(&mut head).await {
                // Closed or broken before a whole head: hyper says what it would say.
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            match parse(&head, peer) {
                Parsed::Complete(request) => return Some(request),
                Parsed::Partial if head.len() < MAX_FAST_HEAD => {}
                Parsed::Partial | Parsed::Invalid => return None,
            }
        }
    };
    // Boxed: the reading is over before any stream begins, so its timer and buffers are not
    // kept in the connection's future for the life of the stream.
    match Box::pin(tokio::time::timeout(timeout, reading)).await {
        Err(_) => Opening::Silent,
        Ok(Some(Some(request))) => Opening::Stream(request),
        Ok(_) => Opening::Other(head.freeze()),
    }
}

/// What the bytes read so far hold.
enum Parsed {
    /// A whole head: the request if the fast path serves it.
    Complete(Option<Box<Request<Body>>>),
    Partial,
    Invalid,
}

/// Parses a request head. A function of its own, so that the 2 KiB of header slots live on its
/// stack and not in every connection's future.
fn parse(head: &[u8], peer: SocketAddr) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(head) {
        Ok(httparse::Status::Complete(len)) => {
            Parsed::Complete(stream_request(&parsed, len == head.len(), peer).map(Box::new))
        }
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(_) => Parsed::Invalid,
    }
}

/// The request, when it is one the fast path serves: owned copies of its parts, so that nothing
/// of the read buffer outlives this call.
fn stream_request(
    parsed: &httparse::Request,
    nothing_behind: bool,
    peer: SocketAddr,
) -> Option<Request<Body>> {
    let path = parsed.path?;
    let route = path.split_once('?').map_or(path, |(route, _)| route);
    if parsed.method != Some("GET") || parsed.version != Some(1) || !matches!(route, "/remote" | "/events") {
        return None;
    }
    if !nothing_behind {
        return None;
    }
    let mut request =
        Request::builder().method(Method::GET).version(Version::HTTP_11).uri(Uri::try_from(path).ok()?);
    for field in parsed.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes()).ok()?;
        let has_body =
            (name == header::CONTENT_LENGTH && field.value != b"0") || name == header::TRANSFER_ENCODING;
        if has_body || name == header::UPGRADE || name == header::EXPECT {
            return None;
        }
        request = request.header(name, HeaderValue::from_bytes(field.value).ok()?);
    }
    let mut request = request.body(Body::empty()).ok()?;
    request.extensions_mut().insert(ConnectInfo(peer));
    Some(request)
}

/// Runs `request` through `router` and writes the answer to `stream`: a stream response frame by
/// frame as the body yields them, ending the connection when it ends; any other answer whole.
/// A client that goes away is noticed at once (its end of the socket reads as closed), and one
/// that stops reading is cut off after `write_timeout`.
pub(crate) async fn serve_stream(
    stream: TcpStream,
    router: Router,
    request: Box<Request<Body>>,
    write_timeout: Duration,
) -> io::Result<()> {
    // Boxed: the router's future is large, and it is done before the stream begins; inline, its
    // size would stay in the connection's future for the life of the stream.
    let response = Box::pin(router.oneshot(*request)).await.unwrap_or_else(|infallible| match infallible {});
    let (mut parts, body) = response.into_parts();
    let is_stream = parts.status == StatusCode::OK
        && parts.headers.get(header::CONTENT_TYPE).is_some_and(|value| value == "text/event-stream");
    // The body ends with the connection: no length, no chunking, nothing after it.
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts.headers.insert(header::CONNECTION, HeaderValue::from_static("close"));

    let (mut reader, mut writer) = stream.into_split();
    if !is_stream {
        let answer = body.collect().await.map(|collected| collected.to_bytes()).unwrap_or_default();
        let answer = if answer.len() > MAX_ANSWER { Bytes::new() } else { answer };
        let length = HeaderValue::from(answer.len());
        parts.headers.insert(header::CONTENT_LENGTH, length);
        write_all(&mut writer, &mut vec![head(&parts), answer], write_timeout).await?;
        return writer.shutdown().await;
    }

    write_all(&mut writer, &mut vec![head(&parts)], write_timeout).await?;
    // Nothing of the request or the response head is kept for the life of the stream.
    drop(parts);
    let mut frames = body.into_data_stream();
    let mut probe = [0u8; 64];
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            frame = frames.next() => match frame {
                Some(Ok(frame)) => {
                    // Whatever else the stream holds already goes in the same system call, as
                    // hyper's queued writes did: under a fast publisher, a write per frame costs
                    // the server and the client a system call each per event.
                    batch.push(frame);
                    let mut ended = false;
                    while batch.len() < MAX_BATCH {
                        match frames.next().now_or_never() {
                            Some(Some(Ok(frame))) => batch.push(frame),
                            Some(_) => {
                                ended = true;
                                break;
                            }
                            None => break,
                        }
                    }
                    write_all(&mut writer, &mut batch, write_timeout).await?;
                    if ended {
                        break;
                    }
                }
                _ => break,
            },
            read = reader.read(&mut probe) => match read {
                // The client closed its end (or the socket broke): the stream is over.
                Ok(0) | Err(_) => return Ok(()),
                // Bytes after a stream request mean nothing; the stream goes on.
                Ok(_) => {}
            },
        }
    }
    writer.shutdown().await
}

/// Writes every frame of `batch` (and empties it), failing unless the client takes what did not
/// fit at once within `timeout`. Frames almost always fit in the socket's send buffer at once,
/// and then cost one system call for the batch and no timer: arming a timer per write per stream
/// is a cost a fan-out to thousands would pay on every event.
async fn write_all(writer: &mut OwnedWriteHalf, batch: &mut Vec<Bytes>, timeout: Duration) -> io::Result<()> {
    let mut written = try_write_now(writer, batch)?;
    let total: usize = batch.iter().map(Bytes::len).sum();
    if written < total {
        // The rare, slow path: what is left, in order, with the timeout armed.
        let mut rest = Vec::with_capacity(total - written);
        for frame in batch.iter() {
            let skip = written.min(frame.len());
            rest.extend_from_slice(&frame[skip..]);
            written -= skip;
        }
        // Boxed: the timer is needed only here, and would otherwise sit in every stream's future.
        Box::pin(tokio::time::timeout(timeout, writer.write_all(&rest))).await.map_err(|_| {
            io::Error::new(io::ErrorKind::TimedOut, "the client took nothing within the write timeout")
        })??;
    }
    batch.clear();
    // A burst grows the batch; an idle stream should not keep that memory.
    if batch.capacity() > 4 {
        *batch = Vec::new();
    }
    Ok(())
}

/// Writes what of `batch` the socket takes without waiting, in one system call; returns how many
/// bytes. A function of its own, so that its 1 KiB of slices is not kept in the stream's future.
fn try_write_now(writer: &OwnedWriteHalf, batch: &[Bytes]) -> io::Result<usize> {
    let mut slices = [io::IoSlice::new(&[]); MAX_BATCH];
    for (slice, frame) in slices.iter_mut().zip(batch) {
        *slice = io::IoSlice::new(frame);
    }
    match writer.try_write_vectored(&slices[..batch.len().min(MAX_BATCH)]) {
        Ok(written) => Ok(written),
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(0),
        Err(err) => Err(err),
    }
}

/// The status line and the headers, as HTTP/1.1 writes them.
fn head(parts: &axum::http::response::Parts) -> Bytes {
    let mut head = Vec::with_capacity(256);
    let reason = parts.status.canonical_reason().unwrap_or("");
    head.extend_from_slice(format!("HTTP/1.1 {} {reason}\r\n", parts.status.as_str()).as_bytes());
    for (name, value) in &parts.headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head.into()
}

/// A connection whose first bytes were already read: hyper reads them first, then the socket.
pub(crate) struct Rewound<S> {
    read: Bytes,
    inner: S,
}

impl<S> Rewound<S> {
    pub(crate) fn new(read: Bytes, inner: S) -> Self {
        Self { read, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewound<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.read.is_empty() {
            let take = self.read.len().min(buf.remaining());
            let first = self.read.split_to(take);
            buf.put_slice(&first);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewound<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
