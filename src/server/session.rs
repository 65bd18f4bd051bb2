//! Browser sessions: a server-minted session id in a signed, HttpOnly, SameSite cookie, and the
//! private topic derived from it. Only the holder of the cookie can follow that topic, and only
//! the server can mint one: a cookie that is not signed with the session key (one the client
//! chose, or tampered with) is replaced by a fresh session, never answered with an error.

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use axum_extra::extract::cookie::{Cookie, Key, SameSite, SignedCookieJar};
use sha2::{Digest, Sha256};

use super::{client::ClientRate, event::Topic, random};

const COOKIE: &str = "herald_session";

/// What session cookies are made with (a sub-state).
#[derive(Clone)]
pub(crate) struct Sessions {
    key: Key,
    /// Mark cookies `Secure`: the public URL is https.
    secure: bool,
    /// How many sessions one client may be given a minute.
    mint_rate: ClientRate,
}

impl Sessions {
    pub(crate) fn new(key: Key, secure: bool, mint_rate: ClientRate) -> Self {
        Self { key, secure, mint_rate }
    }
}

/// One browser's session, found in its cookie (or issued on its first request).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Session {
    id: String,
}

impl Session {
    fn issue() -> Self {
        Self { id: random::hex_128() }
    }

    fn from_cookie(value: &str) -> Option<Self> {
        let well_formed =
            value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        well_formed.then(|| Self { id: value.to_owned() })
    }

    /// The session's private topic. It is a hash of the session id, so that the topic name,
    /// which may show up in logs, does not give the cookie away.
    pub(crate) fn topic(&self) -> Topic {
        let digest = Sha256::digest(self.id.as_bytes());
        Topic::parse(&format!("{}{}", Topic::PRIVATE_PREFIX, hex::encode(&digest[..16])))
            .expect("hex is a valid topic")
    }
}

/// Middleware: puts the caller's [`Session`] in the request extensions, issuing a new signed
/// cookie when the request brings none whose signature holds (429 for a client over its rate of
/// new sessions).
pub(crate) async fn ensure_session(
    State(sessions): State<Sessions>,
    mut request: Request,
    next: Next,
) -> Response {
    let jar = SignedCookieJar::from_headers(request.headers(), sessions.key.clone());
    if let Some(session) = jar.get(COOKIE).and_then(|cookie| Session::from_cookie(cookie.value())) {
        request.extensions_mut().insert(session);
        return next.run(request).await;
    }
    if let Err(refusal) = sessions.mint_rate.admit(&request) {
        return refusal.into_response();
    }
    let session = Session::issue();
    let cookie = Cookie::build((COOKIE, session.id.clone()))
        .path("/")
        .http_only(true)
        .secure(sessions.secure)
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
        assert_eq!(Session::from_cookie(&a.id), Some(a.clone()));
        assert!(a.topic().is_private());
        assert_ne!(a.topic(), b.topic());
        assert!(!a.topic().as_str().contains(&a.id));
    }

    #[test]
    fn malformed_session_ids_are_not_sessions() {
        for bad in ["", "abc", &"G".repeat(32), &"A".repeat(32), &"a".repeat(33)] {
            assert_eq!(Session::from_cookie(bad), None, "{bad:?}");
        }
    }
}
