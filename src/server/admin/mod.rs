//! The operator page's server side, on when `--admin-token` is set: who is signed in (a signed,
//! `HttpOnly`, `SameSite=Strict` cookie that the login form sets), and the frames of the stats
//! stream, made once a second by one task for every viewer. Every instance with the token
//! shares its numbers through the backend, so a page on any instance shows them all.

mod aggregate;
mod snapshot;

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::http::HeaderMap;
use axum_extra::extract::cookie::{Cookie, CookieJar, Key, SameSite, SignedCookieJar};
use bytes::Bytes;
use futures::Stream;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::watch;
use tokio_stream::{wrappers::WatchStream, StreamExt};
use tokio_util::sync::CancellationToken;

use self::{aggregate::Aggregator, snapshot::Snapshot};
use super::{
    backend::Backend,
    client::ClientRate,
    event::{self, EventName},
    hub::{unix_millis, Hub},
    metrics::Metrics,
};
use crate::admin::frame::STATS_EVENT;

/// How often the page's numbers are taken and sent.
const EVERY: Duration = Duration::from_secs(1);

/// How long a sign-in lasts.
pub(crate) const SIGNED_IN_FOR: Duration = Duration::from_secs(12 * 3600);

/// The cookie's name over plain http, and when it is `Secure` (see `session.rs` on `__Host-`).
const COOKIE: &str = "herald_admin";
const SECURE_COOKIE: &str = "__Host-herald_admin";

/// What the operator page is made with.
pub(crate) struct AdminSettings {
    pub token: SecretString,
    /// Mark the cookie `Secure`: the public origin is https.
    pub secure: bool,
    /// How many sign-in attempts one client may make a minute.
    pub login_rate: ClientRate,
}

/// The operator page's state (a sub-state; `None` when `--admin-token` is unset).
#[derive(Clone)]
pub(crate) struct Admin(Arc<Inner>);

struct Inner {
    token_digest: [u8; 32],
    /// Signs the cookie. Derived from the token, so that every instance with the same token
    /// accepts the same cookie, and changing the token signs everyone out.
    key: Key,
    secure: bool,
    login_rate: ClientRate,
    /// The latest frame, as an SSE event.
    frames: watch::Receiver<Option<Bytes>>,
}

impl Admin {
    /// The operator state, with its task sharing this instance's numbers and making the frames
    /// until `shutdown`.
    pub(crate) fn spawn(
        settings: AdminSettings,
        hub: Arc<Hub>,
        metrics: Metrics,
        backend: &Backend,
        shutdown: CancellationToken,
    ) -> Self {
        let token = settings.token.expose_secret().as_bytes();
        let mut derivation = Sha256::new_with_prefix(b"herald admin cookie\0");
        derivation.update(token);
        let (sender, frames) = watch::channel(None);
        let backend_name = match backend {
            Backend::Memory => "memory",
            Backend::Redis { .. } => "redis",
        };
        tokio::spawn(make_frames(hub, metrics, backend.clone(), backend_name, sender, shutdown));
        Self(Arc::new(Inner {
            token_digest: Sha256::digest(token).into(),
            key: Key::derive_from(&derivation.finalize()),
            secure: settings.secure,
            login_rate: settings.login_rate,
            frames,
        }))
    }

    /// Whether `token` is the admin token, compared in constant time.
    pub(crate) fn accepts(&self, token: &str) -> bool {
        Sha256::digest(token.as_bytes()).as_slice().ct_eq(&self.0.token_digest).into()
    }

    pub(crate) fn login_rate(&self) -> &ClientRate {
        &self.0.login_rate
    }

    fn cookie_name(&self) -> &'static str {
        if self.0.secure {
            SECURE_COOKIE
        } else {
            COOKIE
        }
    }

    /// Whether the request carries a sign-in cookie that this token signed, less than
    /// [`SIGNED_IN_FOR`] ago.
    pub(crate) fn signed_in(&self, headers: &HeaderMap) -> bool {
        let jar = SignedCookieJar::from_headers(headers, self.0.key.clone());
        let issued_at = jar.get(self.cookie_name()).and_then(|cookie| cookie.value().parse::<u64>().ok());
        issued_at.is_some_and(|issued_at| unix_seconds().saturating_sub(issued_at) < SIGNED_IN_FOR.as_secs())
    }

    /// The cookie jar that signs the browser in.
    pub(crate) fn sign_in(&self) -> SignedCookieJar {
        let cookie = Cookie::build((self.cookie_name(), unix_seconds().to_string()))
            .path("/")
            .http_only(true)
            .secure(self.0.secure)
            .same_site(SameSite::Strict)
            .max_age(cookie::time::Duration::seconds(SIGNED_IN_FOR.as_secs() as i64))
            .build();
        SignedCookieJar::from_headers(&HeaderMap::new(), self.0.key.clone()).add(cookie)
    }

    /// The cookie jar that signs the browser out: it expires the cookie at once. (A copy of
    /// the cookie taken before stays valid until [`SIGNED_IN_FOR`] has passed, or the token
    /// changes: the cookie is the whole sign-in, Herald keeps no list of them.)
    pub(crate) fn sign_out(&self) -> CookieJar {
        let mut cookie = Cookie::build((self.cookie_name(), "")).path("/").secure(self.0.secure).build();
        cookie.make_removal();
        CookieJar::new().add(cookie)
    }

    /// The stats events from the latest frame on, one a second.
    pub(crate) fn frames(&self) -> impl Stream<Item = Bytes> + Send + 'static {
        WatchStream::new(self.0.frames.clone()).filter_map(|frame| frame)
    }
}

fn unix_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs())
}

/// Once a second: takes this instance's snapshot, shares it and reads the others' (while Redis
/// does not answer, this instance's alone, which shows Redis down), and sends the frame.
async fn make_frames(
    hub: Arc<Hub>,
    metrics: Metrics,
    backend: Backend,
    backend_name: &'static str,
    frames: watch::Sender<Option<Bytes>>,
    shutdown: CancellationToken,
) {
    let mut aggregator = Aggregator::default();
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let name = EventName::known(STATS_EVENT);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let own = Snapshot::take(&hub, &metrics, &backend, unix_millis());
        let shared = tokio::select! {
            _ = shutdown.cancelled() => return,
            shared = hub.exchange_stats(serde_json::to_vec(&own).expect("a snapshot serialises")) => shared,
        };
        let (snapshots, topics) = match shared {
            Ok(shared) => {
                let snapshots =
                    shared.snapshots.iter().filter_map(|snapshot| match serde_json::from_slice(snapshot) {
                        Ok(snapshot) => Some(snapshot),
                        Err(err) => {
                            // Another version of Herald, most likely, during a rolling upgrade.
                            tracing::debug!(%err, "an instance's stats did not decode; left out");
                            None
                        }
                    });
                (snapshots.collect(), shared.topics)
            }
            Err(_) => (vec![own], hub.topics() as u64),
        };
        let frame = aggregator.next(backend_name, snapshots, topics);
        let data = serde_json::to_string(&frame).expect("a frame serialises");
        frames.send_replace(Some(event::frame(None, Some(&name), &data)));
    }
}
