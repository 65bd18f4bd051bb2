//! Who may follow which topics: the gate of `GET /events`. Without a JWT key every topic is
//! public except `session.*`, which belongs to the browser whose cookie names it. With a key
//! (`HERALD_JWT_SECRET`, `HERALD_JWT_PUBLIC_KEY`), every other topic is private unless it
//! matches `HERALD_PUBLIC_TOPICS`, and a private topic is followed only with a token whose
//! `herald.subscribe` patterns cover it; the stream then ends at the token's `exp`.
//!
//! A token comes in `Authorization: Bearer`, or, since a browser's `EventSource` cannot set
//! headers, in the `access_token` query parameter (RFC 6750 §2.3). The request log records the
//! path alone, never the query, so the token is in no log line and no metric.

pub(crate) mod patterns;
pub(crate) mod tokens;

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::http::HeaderMap;
use bytes::Bytes;
use futures::Stream;
use secrecy::{ExposeSecret, SecretString};

use self::{
    patterns::{covers, TopicPattern},
    tokens::{PublicKey, Verifier},
};
use super::{
    bearer::bearer_token,
    error::ApiError,
    event::{self, EventName, Topic},
};

/// The event name of a stream's last event when the token it was opened with expires: the
/// client should come back with a fresh token and its last event id. (The page's own stream
/// needs no token, so this name is the server's alone, not in `protocol`.)
pub(crate) const TOKEN_EXPIRED_EVENT: &str = "token-expired";

/// The query parameter that carries a token where no header can (RFC 6750 §2.3).
const ACCESS_TOKEN_PARAMETER: &str = "access_token";

/// What the token checks are configured with.
#[derive(Clone, Debug)]
pub(crate) struct AccessSettings {
    pub secret: Option<SecretString>,
    pub public_key: Option<PublicKey>,
    pub audience: Option<String>,
    pub public_topics: Vec<TopicPattern>,
}

/// The token checks (a sub-state).
#[derive(Clone)]
pub(crate) struct Access {
    /// `None` while no JWT key is configured: every topic but `session.*` is then public.
    verifier: Option<Arc<Verifier>>,
    public_topics: Arc<[TopicPattern]>,
    /// The last event of a stream whose token expired, framed once. It has no id, so the
    /// client's `Last-Event-ID` still names the last event it got.
    expired: Bytes,
}

/// What a subscriber was let in with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Grant {
    /// The `exp` of the token the stream needed, in seconds since the Unix epoch.
    pub expires: Option<u64>,
    /// The `sub` of that token, which presence lists.
    pub sub: Option<Arc<str>>,
}

impl Access {
    pub(crate) fn new(settings: AccessSettings) -> Self {
        let verifier = Verifier::new(
            settings.secret.as_ref().map(ExposeSecret::expose_secret),
            settings.public_key.as_ref(),
            settings.audience.as_deref(),
        );
        let notice = serde_json::json!({
            "message": "the token has expired: reconnect with a fresh token and the last event id"
        });
        Self {
            verifier: verifier.map(Arc::new),
            public_topics: settings.public_topics.into(),
            expired: event::frame(None, Some(&EventName::known(TOKEN_EXPIRED_EVENT)), &notice.to_string()),
        }
    }

    /// The token checker, for the publishers' gate; `None` while no JWT key is configured.
    pub(crate) fn verifier(&self) -> Option<Arc<Verifier>> {
        self.verifier.clone()
    }

    /// Lets a subscriber follow `topics` (each `session.*` among them already found to be the
    /// caller's own): 401 `token-required` when one needs a token and none came, 401
    /// `invalid-token` when the token does not verify, 403 naming the first topic it does not
    /// cover. A token is read only when some topic needs one.
    pub(crate) fn admit_subscriber(
        &self,
        headers: &HeaderMap,
        query: &str,
        topics: &[Topic],
    ) -> Result<Grant, ApiError> {
        let Some(verifier) = &self.verifier else {
            return Ok(Grant::default());
        };
        let private: Vec<&Topic> = topics
            .iter()
            .filter(|topic| !topic.is_private() && !covers(&self.public_topics, topic))
            .collect();
        if private.is_empty() {
            return Ok(Grant::default());
        }
        let query_token = || {
            form_urlencoded::parse(query.as_bytes())
                .find(|(key, _)| key == ACCESS_TOKEN_PARAMETER)
                .map(|(_, value)| value.into_owned())
        };
        let token =
            bearer_token(headers).map(str::to_owned).or_else(query_token).ok_or(ApiError::TokenRequired(
                "this topic is private: send a token in Authorization: Bearer or ?access_token=",
            ))?;
        let claims =
            verifier.verify(&token, unix_seconds()).map_err(|err| ApiError::BadToken(err.message()))?;
        if let Some(subject) = &claims.sub {
            tracing::Span::current().record("sub", subject.as_str());
        }
        if let Some(uncovered) = private.iter().find(|topic| !covers(&claims.herald.subscribe, topic)) {
            return Err(ApiError::Forbidden(format!(
                "the token does not cover topic {uncovered}: no pattern of its herald.subscribe matches it"
            )));
        }
        Ok(Grant { expires: Some(claims.exp), sub: claims.sub.map(Arc::from) })
    }

    /// `frames`, ended at the grant's expiry with a `token-expired` event; unchanged when the
    /// grant never expires.
    pub(crate) fn until_expiry<S: Stream<Item = Bytes>>(&self, frames: S, grant: &Grant) -> UntilExpiry<S> {
        let deadline = grant.expires.map(|exp| {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            let left = Duration::from_secs(exp).saturating_sub(now);
            Box::pin(tokio::time::sleep(left))
        });
        UntilExpiry { frames, deadline, expired: Some(self.expired.clone()), ended: false }
    }
}

pin_project_lite::pin_project! {
    /// The frames of a stream whose token may expire. The deadline's timer is boxed, and only
    /// there when the token has an `exp`: every open stream holds one of these, and most
    /// streams have no token.
    pub(crate) struct UntilExpiry<S> {
        #[pin]
        frames: S,
        deadline: Option<Pin<Box<tokio::time::Sleep>>>,
        expired: Option<Bytes>,
        ended: bool,
    }
}

impl<S: Stream<Item = Bytes>> Stream for UntilExpiry<S> {
    type Item = Bytes;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let this = self.project();
        if *this.ended {
            return Poll::Ready(None);
        }
        if let Some(deadline) = this.deadline {
            if deadline.as_mut().poll(cx).is_ready() {
                *this.ended = true;
                return Poll::Ready(this.expired.take());
            }
        }
        let frame = ready!(this.frames.poll_next(cx));
        if frame.is_none() {
            *this.ended = true;
            // Ended by the deadline, not by the hub (which ends a slow subscriber's stream):
            // only then is the token the reason.
            let expired = this.deadline.as_ref().is_some_and(|deadline| deadline.is_elapsed());
            return Poll::Ready(this.expired.take().filter(|_| expired));
        }
        Poll::Ready(frame)
    }
}

/// Now, in whole seconds since the Unix epoch, as JWT times are written.
pub(crate) fn unix_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs())
}
