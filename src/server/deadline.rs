//! The deadlines of one connection that hyper serves: its first request must be in (head and
//! body) and answered within `--request-timeout` of the accept, a later one within
//! `--request-timeout` of its head, and a keep-alive connection may sit idle between requests
//! for `--idle-timeout` at most. Past a deadline the connection is closed.
//!
//! hyper alone bounds only the reading of a request head: a body that never comes, or a
//! connection that goes quiet after its first answer, would be held for as long as the client
//! likes, and a few hundred such sockets a second would use up the open-file limit.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{body::Body, response::Response};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use parking_lot::Mutex;
use tokio::{sync::Notify, time::Instant};

/// What the connection is doing, and until when it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No request yet, or none since the last answer ended: the next must come by `until`.
    Waiting { until: Instant, first: bool },
    /// A request is in and its answer has not begun: it must begin by `until`.
    Answering { until: Instant },
    /// An answer is being written. No deadline: the write timeout cuts off a client that does
    /// not read, and a stream may rightly last for hours.
    Responding,
}

/// The deadlines of one connection, shared by its service (which reports each request and
/// answer) and by [`ConnectionDeadlines::expired`], which the connection's task races against it.
#[derive(Clone, Debug)]
pub(crate) struct ConnectionDeadlines {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    phase: Mutex<Phase>,
    changed: Notify,
    request_timeout: Duration,
    idle_timeout: Duration,
}

impl ConnectionDeadlines {
    /// For a connection accepted at `accepted`: its first request must be answered within
    /// `request_timeout` of that moment.
    pub(crate) fn new(accepted: Instant, request_timeout: Duration, idle_timeout: Duration) -> Self {
        let phase = Phase::Waiting { until: accepted + request_timeout, first: true };
        Self {
            inner: Arc::new(Inner {
                phase: Mutex::new(phase),
                changed: Notify::new(),
                request_timeout,
                idle_timeout,
            }),
        }
    }

    /// A request's head is in: its answer must begin by the first request's deadline, or within
    /// the request timeout for a later one.
    pub(crate) fn request_arrived(&self) {
        self.set(|phase| match phase {
            Phase::Waiting { until, first: true } => Phase::Answering { until },
            _ => Phase::Answering { until: Instant::now() + self.inner.request_timeout },
        });
    }

    /// The answer has begun: no deadline until its body ends, which starts the idle one.
    pub(crate) fn answer_began(&self, response: Response) -> Response {
        self.set(|_| Phase::Responding);
        let ended = AnswerEnded(self.clone());
        response.map(|body| Body::new(Tracked { body, _ended: ended }))
    }

    fn answer_ended(&self) {
        self.set(|_| Phase::Waiting { until: Instant::now() + self.inner.idle_timeout, first: false });
    }

    fn set(&self, next: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.inner.phase.lock();
        *phase = next(*phase);
        drop(phase);
        self.inner.changed.notify_waiters();
    }

    /// Completes when the connection has missed a deadline; never while an answer is written.
    pub(crate) async fn expired(&self) {
        loop {
            // Registered before the phase is read, so that a change in between is not missed.
            let changed = self.inner.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            let phase = *self.inner.phase.lock();
            match phase {
                Phase::Waiting { until, .. } | Phase::Answering { until } => {
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => return,
                        () = changed => {}
                    }
                }
                Phase::Responding => changed.await,
            }
        }
    }
}

/// Dropped when an answer's body is finished with (sent whole, or abandoned): the connection
/// then waits for its next request.
#[derive(Debug)]
struct AnswerEnded(ConnectionDeadlines);

impl Drop for AnswerEnded {
    fn drop(&mut self) {
        self.0.answer_ended();
    }
}

/// An answer's body, unchanged, that reports its end.
struct Tracked {
    body: Body,
    _ended: AnswerEnded,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real time, in tenths of a second: tokio's paused clock would need its `test-util` feature,
    // which would compile tokio, and all that depends on it, twice.
    const REQUEST: Duration = Duration::from_millis(400);
    const IDLE: Duration = Duration::from_millis(600);
    const MARGIN: Duration = Duration::from_millis(100);

    /// Whether the deadlines expire within `within` of now.
    async fn expires_within(deadlines: &ConnectionDeadlines, within: Duration) -> bool {
        tokio::time::timeout(within, deadlines.expired()).await.is_ok()
    }

    #[tokio::test]
    async fn the_first_request_counts_from_the_accept_head_and_body_together() {
        let deadlines = ConnectionDeadlines::new(Instant::now(), REQUEST, IDLE);
        tokio::time::sleep(REQUEST / 2).await;
        deadlines.request_arrived();

        assert!(!expires_within(&deadlines, REQUEST / 2 - MARGIN).await);
        assert!(expires_within(&deadlines, 2 * MARGIN).await, "the head's time was forgotten");
    }

    #[tokio::test]
    async fn an_answer_being_written_has_no_deadline_and_its_end_starts_the_idle_one() {
        let deadlines = ConnectionDeadlines::new(Instant::now(), REQUEST, IDLE);
        deadlines.request_arrived();
        let answer = deadlines.answer_began(Response::new(Body::from("ok")));

        assert!(!expires_within(&deadlines, REQUEST + IDLE).await);
        drop(answer);
        assert!(!expires_within(&deadlines, IDLE - MARGIN).await);
        assert!(expires_within(&deadlines, 2 * MARGIN).await);
    }

    #[tokio::test]
    async fn a_later_request_gets_the_whole_request_timeout_from_its_head() {
        let deadlines = ConnectionDeadlines::new(Instant::now(), REQUEST, IDLE);
        deadlines.request_arrived();
        drop(deadlines.answer_began(Response::new(Body::empty())));
        tokio::time::sleep(IDLE / 2).await;
        deadlines.request_arrived();

        assert!(!expires_within(&deadlines, REQUEST - MARGIN).await);
        assert!(expires_within(&deadlines, 2 * MARGIN).await);
    }
}
