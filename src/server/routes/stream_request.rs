//! What both stream routes read from a request: the caller's session if it has one, the query
//! string, and the point the client asks to resume from.

use axum::{
    extract::{rejection::ExtensionRejection, FromRequestParts},
    http::{request::Parts, HeaderMap},
    Extension,
};

use crate::server::{client::ClientAddr, session::Session};

pub(crate) struct StreamRequest {
    /// `None` for a client without a session cookie (curl, say): it follows public topics only.
    pub session: Option<Session>,
    /// Who the request comes from, which the per-client stream limit counts.
    pub client: ClientAddr,
    pub query: String,
    /// The id after which the client wants events, if it named one.
    pub resume: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for StreamRequest {
    /// Only if the route was served without the client middleware, which resolves the client's
    /// address from the peer's that the accept loop records: a bug, answered with 500.
    type Rejection = ExtensionRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let session = parts.extensions.get::<Session>().cloned();
        let Extension(client) = Extension::<ClientAddr>::from_request_parts(parts, state).await?;
        let query = parts.uri.query().unwrap_or("").to_owned();
        let resume = resume_point(&parts.headers, &query);
        Ok(Self { session, client, query, resume })
    }
}

/// Where a client asks to resume: the `Last-Event-ID` header that browsers send on reconnect,
/// else the `lastEventId` query parameter of a first connection. An empty id means none.
/// A header that is not visible ASCII cannot be an id of ours, and resumes as a malformed id.
fn resume_point(headers: &HeaderMap, query: &str) -> Option<String> {
    let from_header = headers
        .get("last-event-id")
        .map(|value| value.to_str().map(str::to_owned).unwrap_or_else(|_| "\u{fffd}".to_owned()));
    let from_query = || {
        form_urlencoded::parse(query.as_bytes())
            .filter(|(key, _)| key == "lastEventId")
            .last()
            .map(|(_, value)| value.into_owned())
    };
    from_header.or_else(from_query).filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_wins_over_the_query_and_empty_means_none() {
        let mut headers = HeaderMap::new();
        assert_eq!(resume_point(&headers, "lastEventId=1-1"), Some("1-1".into()));
        assert_eq!(resume_point(&headers, "topic=a&lastEventId=1-2&other=x"), Some("1-2".into()));
        assert_eq!(resume_point(&headers, "lastEventId="), None);
        headers.insert("last-event-id", "1-2".parse().unwrap());
        assert_eq!(resume_point(&headers, "lastEventId=1-1"), Some("1-2".into()));
    }
}
