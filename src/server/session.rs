//! Browser sessions: a server-minted session id and its issue time in a signed, HttpOnly,
//! SameSite cookie, and the private topic derived from it. Only the holder of the cookie can
//! follow that topic, and only the server can mint one, and only for a page load: a cookie that
//! is not signed with a session key (one the client chose, or tampered with) or has outlived
//! `--session-lifetime` is no session, never answered with an error of its own.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    extract::{Request, State},
    http::HeaderMap,
    middleware::Next,
    response::{IntoResponse, Response},
};
use axum_extra::extract::cookie::{Cookie, Key, SameSite, SignedCookieJar};
use sha2::{Digest, Sha256};

use super::{client::ClientRate, error::ApiError, event::Topic};

/// The cookie's name over plain http.
const COOKIE: &str = "herald_session";
/// Its name when it is `Secure`: browsers keep a `__Host-` cookie only if it is `Secure`, has
/// `Path=/` and no `Domain`, so a sibling subdomain or a plain-http page cannot plant one.
const SECURE_COOKIE: &str = "__Host-herald_session";

/// What session cookies are made with.
#[derive(Clone)]
pub(crate) struct SessionSettings {
    /// The first signs; every one verifies.
    pub keys: Vec<Key>,
    pub lifetime: Duration,
    /// Mark cookies `Secure` (and name them with `__Host-`): the public origin is https.
    pub secure: bool,
    /// How many sessions one client may be given a minute.
    pub mint_rate: ClientRate,
}

/// What session cookies are made with (a sub-state).
#[derive(Clone)]
pub(crate) struct Sessions(Arc<SessionSettings>);

impl Sessions {
    pub(crate) fn new(settings: SessionSettings) -> Self {
        assert!(!settings.keys.is_empty(), "Config::session_settings always gives a key");
        Self(Arc::new(settings))
    }

    fn cookie_name(&self) -> &'static str {
        if self.0.secure {
            SECURE_COOKIE
        } else {
            COOKIE
        }
    }

    /// The session a request's cookie holds, if its signature holds under one of the keys and
    /// it has not expired, and whether the answer sets its cookie again: when an older key
    /// signed it, so that it is signed with the first.
    fn read(&self, headers: &HeaderMap, now: SystemTime) -> Option<(Session, SetCookie)> {
        self.0.keys.iter().enumerate().find_map(|(index, key)| {
            let jar = SignedCookieJar::from_headers(headers, key.clone());
            let session = Session::from_cookie(jar.get(self.cookie_name())?.value())?;
            let set_cookie = if index == 0 { SetCookie::No } else { SetCookie::Yes };
            (!session.expired(self.0.lifetime, now)).then_some((session, set_cookie))
        })
    }

    /// Runs the request with `session` in its extensions, and sets the session's cookie on the
    /// answer if told to.
    async fn serve(
        &self,
        (session, set_cookie): (Session, SetCookie),
        mut request: Request,
        next: Next,
        now: SystemTime,
    ) -> Response {
        request.extensions_mut().insert(session.clone());
        let response = next.run(request).await;
        match set_cookie {
            SetCookie::No => response,
            SetCookie::Yes => self.with_cookie(&session, response, now),
        }
    }

    /// A response that also sets `session`'s cookie, signed with the first key, for as long as
    /// the session has left.
    fn with_cookie(&self, session: &Session, response: Response, now: SystemTime) -> Response {
        let left = self.0.lifetime.saturating_sub(session.age(now));
        let cookie = Cookie::build((self.cookie_name(), session.to_cookie()))
            .path("/")
            .http_only(true)
            .secure(self.0.secure)
            .same_site(SameSite::Lax)
            .max_age(cookie::time::Duration::seconds(left.as_secs() as i64))
            .build();
        let jar = SignedCookieJar::from_headers(&HeaderMap::new(), self.0.keys[0].clone());
        (jar.add(cookie), response).into_response()
    }
}

/// Whether the answer sets the session's cookie: for a new session, or one that an older key
/// signed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SetCookie {
    No,
    Yes,
}

/// One browser's session, found in its cookie (or issued on a page load).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Session {
    id: String,
    /// Seconds since the Unix epoch when the session was minted; signed with the id, so a client
    /// cannot extend its session.
    issued_at: u64,
}

impl Session {
    fn issue(now: SystemTime) -> Self {
        Self { id: herald_client::random_id(), issued_at: unix_seconds(now) }
    }

    /// `ISSUED_AT.ID`: the signed value of the cookie.
    fn to_cookie(&self) -> String {
        format!("{}.{}", self.issued_at, self.id)
    }

    fn from_cookie(value: &str) -> Option<Self> {
        let (issued_at, id) = value.split_once('.')?;
        let well_formed =
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        let issued_at = issued_at.parse().ok().filter(|_| well_formed)?;
        Some(Self { id: id.to_owned(), issued_at })
    }

    /// How old the session is; one issued "later" than `now` (another instance's clock runs
    /// ahead) is new.
    fn age(&self, now: SystemTime) -> Duration {
        Duration::from_secs(unix_seconds(now).saturating_sub(self.issued_at))
    }

    fn expired(&self, lifetime: Duration, now: SystemTime) -> bool {
        self.age(now) >= lifetime
    }

    /// The session's private topic. It is a hash of the session id, so that the topic name,
    /// which may show up in logs, does not give the cookie away.
    pub(crate) fn topic(&self) -> Topic {
        let digest = Sha256::digest(self.id.as_bytes());
        Topic::parse(&format!("{}{}", Topic::PRIVATE_PREFIX, hex::encode(&digest[..16])))
            .expect("hex is a valid topic")
    }
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs())
}

/// Middleware of the page: puts the caller's [`Session`] in the request extensions, issuing a
/// new signed cookie when the request brings none that holds. Only a page load mints a session,
/// so a request from another site (which arrives without the cookie) cannot replace a
/// visitor's session with one of its own.
pub(crate) async fn ensure_session(
    State(sessions): State<Sessions>,
    request: Request,
    next: Next,
) -> Response {
    let now = SystemTime::now();
    if let Some(found) = sessions.read(request.headers(), now) {
        return sessions.serve(found, request, next, now).await;
    }
    if let Err(refusal) = sessions.0.mint_rate.admit(&request) {
        return refusal.into_response();
    }
    let session = Session::issue(now);
    sessions.serve((session, SetCookie::Yes), request, next, now).await
}

/// Middleware of the streams and server functions: puts the caller's [`Session`] in the request
/// extensions when its cookie holds (signing it again when an older key signed it), and never
/// mints one.
pub(crate) async fn find_session(State(sessions): State<Sessions>, request: Request, next: Next) -> Response {
    let now = SystemTime::now();
    match sessions.read(request.headers(), now) {
        Some(found) => sessions.serve(found, request, next, now).await,
        None => next.run(request).await,
    }
}

/// Middleware of the server functions, inside [`find_session`]: a call without a session gets
/// 401, and no cookie.
pub(crate) async fn require_session(request: Request, next: Next) -> Response {
    if request.extensions().get::<Session>().is_none() {
        return ApiError::NoSession.into_response();
    }
    next.run(request).await
}

/// A session cookie as the server would set it, signed with `key`: for tests of what the
/// server does with expired cookies and rotated keys.
#[cfg(any(test, feature = "testing"))]
pub fn forge_cookie(key: &str, issued_at: SystemTime) -> String {
    let jar = SignedCookieJar::from_headers(&HeaderMap::new(), Key::derive_from(key.as_bytes()))
        .add(Cookie::new(COOKIE, Session::issue(issued_at).to_cookie()));
    // The jar signs on the way out: its `Set-Cookie` header holds the signed `name=value`.
    let response = (jar, ()).into_response();
    let set = response.headers()[axum::http::header::SET_COOKIE].to_str().expect("ASCII");
    set.split(';').next().expect("name=value").to_owned()
}

#[cfg(test)]
mod tests {
    use axum::{http::header, routing::get, Router};
    use tower::ServiceExt;

    use super::*;
    use crate::server::config::Config;

    const OLD_KEY: &str = "the key that signed sessions until today";
    const NEW_KEY: &str = "the key that signs sessions from today on";

    fn sessions(keys: &[&str], lifetime: Duration) -> Sessions {
        sessions_marked(keys, lifetime, false)
    }

    fn sessions_marked(keys: &[&str], lifetime: Duration, secure: bool) -> Sessions {
        Sessions::new(SessionSettings {
            keys: keys.iter().map(|key| Key::derive_from(key.as_bytes())).collect(),
            lifetime,
            secure,
            mint_rate: Config::defaults().session_mint_rate(),
        })
    }

    /// What `ensure_session` or `find_session` make of a request with `cookie`: the session the
    /// handler saw, and the cookie set on the answer.
    async fn through(sessions: Sessions, mints: bool, cookie: &str) -> (Option<Session>, Option<String>) {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        let handler = {
            let seen = std::sync::Arc::clone(&seen);
            move |request: Request| async move {
                *seen.lock().unwrap() = request.extensions().get::<Session>().cloned();
            }
        };
        let route = Router::new().route("/", get(handler));
        let router = match mints {
            true => route.layer(axum::middleware::from_fn_with_state(sessions, ensure_session)),
            false => route.layer(axum::middleware::from_fn_with_state(sessions, find_session)),
        };
        let request =
            Request::get("/").header(header::COOKIE, cookie).body(axum::body::Body::empty()).unwrap();
        let response = router.oneshot(request).await.unwrap();
        let set = response.headers().get(header::SET_COOKIE).map(|value| value.to_str().unwrap().to_owned());
        let seen = seen.lock().unwrap().clone();
        (seen, set)
    }

    #[test]
    fn issued_sessions_are_unguessable_and_well_formed() {
        let now = SystemTime::now();
        let (a, b) = (Session::issue(now), Session::issue(now));
        assert_ne!(a, b);
        assert_eq!(Session::from_cookie(&a.to_cookie()), Some(a.clone()));
        assert!(a.topic().is_private());
        assert_ne!(a.topic(), b.topic());
        assert!(!a.topic().as_str().contains(&a.id));
    }

    #[test]
    fn malformed_session_values_are_not_sessions() {
        let id = "a".repeat(32);
        for bad in [
            String::new(),
            id.clone(),
            format!("1.{}", "abc"),
            format!("1.{}", "G".repeat(32)),
            format!("1.{}", "A".repeat(32)),
            format!("1.{}", "a".repeat(33)),
            format!("x.{id}"),
            format!("-1.{id}"),
            format!(".{id}"),
        ] {
            assert_eq!(Session::from_cookie(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_session_expires_once_it_is_as_old_as_its_lifetime_and_not_before() {
        let issued = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let session = Session::issue(issued);
        let lifetime = Duration::from_secs(60);

        assert!(!session.expired(lifetime, issued + Duration::from_secs(59)));
        assert!(session.expired(lifetime, issued + Duration::from_secs(60)));
        assert!(!session.expired(lifetime, issued - Duration::from_secs(5)), "a clock behind the issuer's");
    }

    #[tokio::test]
    async fn an_expired_cookie_is_no_session_and_only_the_page_mints_a_new_one() {
        let lifetime = Duration::from_secs(3600);
        let expired = forge_cookie(NEW_KEY, SystemTime::now() - lifetime);

        let (seen, set) = through(sessions(&[NEW_KEY], lifetime), false, &expired).await;
        assert_eq!((seen, set), (None, None), "an API request gets neither a session nor a cookie");

        let (seen, set) = through(sessions(&[NEW_KEY], lifetime), true, &expired).await;
        let (seen, set) = (seen.expect("a fresh session"), set.expect("its cookie"));
        assert!(!expired.contains(&seen.id) && set.contains(&seen.id), "{expired} then {set}");
        assert!(set.contains("Max-Age=3600"), "{set}");
    }

    #[tokio::test]
    async fn a_cookie_signed_with_an_older_key_is_accepted_and_signed_again_with_the_first() {
        let issued = SystemTime::now() - Duration::from_secs(100);
        let old = forge_cookie(OLD_KEY, issued);
        let lifetime = Duration::from_secs(3600);

        for mints in [true, false] {
            let (seen, set) = through(sessions(&[NEW_KEY, OLD_KEY], lifetime), mints, &old).await;
            let (seen, set) = (seen.expect("the old session"), set.expect("a re-signed cookie"));
            assert!(old.contains(&seen.to_cookie()), "the same session, issue time and all: {old} {seen:?}");
            let resigned = set.split(';').next().unwrap();
            assert_ne!(resigned, old);
            assert!(set.contains("Max-Age=3500") || set.contains("Max-Age=3499"), "what is left: {set}");

            let (under_new_key, again) = through(sessions(&[NEW_KEY], lifetime), mints, resigned).await;
            assert_eq!((under_new_key, again), (Some(seen), None), "signed with the new key, kept as it is");
        }
        let (gone, _) = through(sessions(&[NEW_KEY], lifetime), false, &old).await;
        assert_eq!(gone, None, "once the old key is dropped, its cookies are no sessions");
    }

    #[tokio::test]
    async fn a_secure_cookie_is_named_with_the_host_prefix() {
        let sessions = sessions_marked(&[NEW_KEY], Duration::from_secs(60), true);
        let (_, set) = through(sessions.clone(), true, "").await;
        let set = set.expect("a cookie");
        assert!(set.starts_with("__Host-herald_session="), "{set}");
        for attribute in ["Secure", "Path=/", "HttpOnly"] {
            assert!(set.split("; ").any(|a| a == attribute), "{set} lacks {attribute}");
        }
        assert!(!set.contains("Domain"), "{set}");
        let cookie = set.split(';').next().unwrap();
        assert!(through(sessions, false, cookie).await.0.is_some(), "read back under its own name");
    }
}
