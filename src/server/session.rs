//! Browser sessions: an HttpOnly, SameSite cookie holding 128 random bits, and the private topic
//! derived from it. Only the holder of the cookie can follow that topic.

use axum::{extract::Request, middleware::Next, response::IntoResponse, response::Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use sha2::{Digest, Sha256};

use super::{event::Topic, random};

const COOKIE: &str = "herald_session";

/// One browser's session, found in its cookie (or issued on its first request).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Session {
    secret: String,
}

impl Session {
    fn issue() -> Self {
        Self { secret: random::hex_128() }
    }

    fn from_cookie(value: &str) -> Option<Self> {
        let well_formed =
            value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        well_formed.then(|| Self { secret: value.to_owned() })
    }

    /// The session's private topic. It is a hash of the cookie, so that the topic name, which
    /// may show up in logs, does not give the cookie away.
    pub(crate) fn topic(&self) -> Topic {
        let digest = Sha256::digest(self.secret.as_bytes());
        Topic::parse(&format!("{}{}", Topic::PRIVATE_PREFIX, hex::encode(&digest[..16])))
            .expect("hex is a valid topic")
    }
}

/// Middleware: puts the caller's [`Session`] in the request extensions, issuing a new cookie
/// when the request brings none (or a malformed one).
pub(crate) async fn ensure_session(jar: CookieJar, mut request: Request, next: Next) -> Response {
    if let Some(session) = jar.get(COOKIE).and_then(|cookie| Session::from_cookie(cookie.value())) {
        request.extensions_mut().insert(session);
        return next.run(request).await;
    }
    let session = Session::issue();
    let cookie = Cookie::build((COOKIE, session.secret.clone()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .build();
    request.extensions_mut().insert(session);
    let response = next.run(request).await;
    (jar.add(cookie), response).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_sessions_are_unguessable_and_well_formed() {
        let (a, b) = (Session::issue(), Session::issue());
        assert_ne!(a, b);
        assert_eq!(Session::from_cookie(&a.secret), Some(a.clone()));
        assert!(a.topic().is_private());
        assert_ne!(a.topic(), b.topic());
        assert!(!a.topic().as_str().contains(&a.secret));
    }

    #[test]
    fn malformed_cookies_are_not_sessions() {
        for bad in ["", "abc", &"G".repeat(32), &"A".repeat(32), &"a".repeat(33)] {
            assert_eq!(Session::from_cookie(bad), None, "{bad:?}");
        }
    }
}
