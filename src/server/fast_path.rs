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
use bytes::{Buf, Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
use http_body_util::BodyExt;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::{tcp::OwnedWriteHalf, TcpStream},
    time::Instant,
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

/// Reads the request head, until `deadline` at most, and sorts the connection.
pub(crate) async fn read_opening(stream: &mut TcpStream, peer: SocketAddr, deadline: Instant) -> Opening {
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
    match Box::pin(tokio::time::timeout_at(deadline, reading)).await {
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
/// A client that goes away is noticed at once (its end of the socket reads as closed), one that
/// stops reading is cut off after `write_timeout`, and one that sends anything after its request
/// is closed: an SSE client has nothing more to say, and reading and discarding whatever it sends
/// would let it keep the server busy for as long as it likes.
pub(crate) async fn serve_stream(
    stream: TcpStream,
    router: Router,
    request: Box<Request<Body>>,
    write_timeout: Duration,
) -> io::Result<()> {
    // Boxed: the router's future is large, and it is done before the stream begins; inline, its
    // size would stay in the connection's future for the life of the stream.
    let response =
        Box::pin(router.oneshot(unbox(request))).await.unwrap_or_else(|infallible| match infallible {});
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
    let mut probe = [0u8; 1];
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
            // The client closed its end, the socket broke, or the client sent bytes after its
            // request: either way the stream is over.
            _ = reader.read(&mut probe) => return Ok(()),
        }
    }
    writer.shutdown().await
}

/// The request out of its box, the box freed here: moved out with `*` inside the stream's
/// function, the box's 240 bytes would be freed only when that function ends, which is when the
/// stream does.
fn unbox(request: Box<Request<Body>>) -> Request<Body> {
    *request
}

/// Writes every frame of `batch` (and empties it), failing unless the client takes what did not
/// fit at once within `timeout`. Frames almost always fit in the socket's send buffer at once,
/// and then cost one system call for the batch and no timer: arming a timer per write per stream
/// is a cost a fan-out to thousands would pay on every event.
async fn write_all(writer: &mut OwnedWriteHalf, batch: &mut Vec<Bytes>, timeout: Duration) -> io::Result<()> {
    let written = try_write_now(writer, batch)?;
    skip_written(batch, written);
    if !batch.is_empty() {
        // The rare, slow path: what is left, in order, with the timeout armed. The frames are
        // shared, not copied: a client that stalls costs no more memory than the frames it holds.
        // Boxed: the timer is needed only here, and would otherwise sit in every stream's future.
        Box::pin(tokio::time::timeout(timeout, write_rest(writer, batch))).await.map_err(|_| {
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

/// Drops the first `written` bytes of `batch`: whole frames, then the start of a partly written
/// one (which keeps sharing its storage).
fn skip_written(batch: &mut Vec<Bytes>, mut written: usize) {
    let whole = batch.iter().take_while(|frame| {
        let sent = frame.len() <= written;
        if sent {
            written -= frame.len();
        }
        sent
    });
    let whole = whole.count();
    batch.drain(..whole);
    if let Some(first) = batch.first_mut() {
        first.advance(written);
    }
}

/// Writes the frames of `batch`, in order, waiting for the socket as long as it takes.
async fn write_rest(writer: &mut OwnedWriteHalf, batch: &mut Vec<Bytes>) -> io::Result<()> {
    while !batch.is_empty() {
        let written = {
            let slices: Vec<io::IoSlice<'_>> = batch.iter().map(|frame| io::IoSlice::new(frame)).collect();
            writer.write_vectored(&slices).await?
        };
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        skip_written(batch, written);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_stalled_write_keeps_is_the_rest_of_the_frames_themselves_not_a_copy() {
        let (first, second) = (Bytes::from_static(b"id: 1\ndata: a\n\n"), Bytes::from(vec![b'x'; 64 * 1024]));
        let mut batch = vec![first.clone(), second.clone()];

        skip_written(&mut batch, first.len() + 10);

        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].len(), second.len() - 10);
        assert_eq!(batch[0].as_ptr(), second[10..].as_ptr(), "the frame was copied");
    }

    #[test]
    fn skipping_what_was_written_keeps_the_order_and_drops_nothing_else() {
        let mut batch = vec![Bytes::from_static(b"abc"), Bytes::from_static(b"de"), Bytes::from_static(b"f")];
        skip_written(&mut batch, 4);
        assert_eq!(batch, [Bytes::from_static(b"e"), Bytes::from_static(b"f")]);
        skip_written(&mut batch, 0);
        assert_eq!(batch.len(), 2);
        skip_written(&mut batch, 2);
        assert!(batch.is_empty());
    }
}
