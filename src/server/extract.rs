//! The extractors of the JSON API. Each turns every rejection into the API's JSON error body
//! ([`ApiError`]), as axum's `customize-extractor-error` example does, so no handler sees a
//! rejection and no client gets a plain-text error.

use axum::{
    body::Bytes,
    extract::{rejection::PathRejection, FromRef, FromRequest, FromRequestParts, Request},
    http::{header, request::Parts, HeaderMap},
};
use serde::de::DeserializeOwned;

use super::{error::ApiError, event::InvalidField};

/// The largest request body the JSON API reads, in bytes (a sub-state of the app's state).
#[derive(Clone, Copy, Debug)]
pub(crate) struct BodyLimit(pub usize);

/// A body of at most [`BodyLimit`] bytes: 413 over it, 400 when it cannot be read. It reads the
/// body itself with that limit, so axum's `DefaultBodyLimit` plays no part.
pub(crate) struct RawBody(pub Bytes);

impl<S> FromRequest<S> for RawBody
where
    S: Send + Sync,
    BodyLimit: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let BodyLimit(limit) = BodyLimit::from_ref(state);
        let body = axum::body::to_bytes(request.into_body(), limit).await;
        body.map(Self).map_err(|err| {
            let too_large = std::error::Error::source(&err)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            if too_large {
                ApiError::TooLarge { limit }
            } else {
                ApiError::invalid("body", format!("could not be read: {err}"))
            }
        })
    }
}

/// A JSON body's bytes, which the route decodes with [`decode_json`]: 415 unless it is declared
/// `application/json`, then as [`RawBody`].
pub(crate) struct JsonBytes(pub Bytes);

impl<S> FromRequest<S> for JsonBytes
where
    S: Send + Sync,
    BodyLimit: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        require_json(request.headers())?;
        let RawBody(bytes) = RawBody::from_request(request, state).await?;
        Ok(Self(bytes))
    }
}

/// A sub-state that decides from a request's head whether its route may go on: a route that is
/// switched off, or a caller without credentials, is refused before any body is read.
pub(crate) trait Gate {
    /// What the route gets when the gate lets it through.
    type Pass;

    fn admit(&self, head: &Parts) -> Result<Self::Pass, ApiError>;
}

/// What a [`Gate`] let through. As an extractor it runs before the body extractors.
pub(crate) struct Admitted<G: Gate>(pub G::Pass);

impl<S, G> FromRequestParts<S> for Admitted<G>
where
    S: Send + Sync,
    G: Gate + FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        G::from_ref(state).admit(parts).map(Self)
    }
}

/// Path parameters, refused with the JSON error body (a segment that is not UTF-8, say).
pub(crate) struct PathParams<T>(pub T);

impl<S, T> FromRequestParts<S> for PathParams<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(params)| Self(params))
            .map_err(|rejection: PathRejection| ApiError::invalid("path", rejection.body_text()))
    }
}

/// 415 unless the request says its body is `application/json`.
pub(crate) fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if is_json {
        Ok(())
    } else {
        Err(ApiError::NotJson)
    }
}

/// Deserialises a JSON object into `T`, whose fields validate themselves. A refusal names the
/// field at fault: the one serde was reading, the one missing, or `body` for the document as a
/// whole (not JSON, not an object, an unknown field).
pub fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, InvalidField> {
    // serde's derived structs would also take an array of their fields in order; requests are
    // objects with named fields, nothing else.
    if body.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
        return Err(InvalidField::new("body", "must be a JSON object"));
    }
    let not_json = |err: serde_json::Error| InvalidField::new("body", format!("is not valid JSON: {err}"));
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let err = err.into_inner();
        if !err.is_data() {
            return not_json(err);
        }
        let message = err.to_string();
        if let Some(field) = message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next()) {
            InvalidField::new(field.to_owned(), "is missing")
        } else if path == "." || message.starts_with("unknown field") {
            InvalidField::new("body", message)
        } else {
            InvalidField::new(path, message)
        }
    })?;
    deserializer.end().map_err(not_json)?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Example {
        name: crate::server::event::Topic,
        count: Option<u8>,
    }

    #[test]
    fn each_refusal_names_the_field_at_fault() {
        for (body, field) in [
            (r#"{"name": "a", "count": 1}"#, None),
            (r#"{"name": "a"} trailing"#, Some("body")),
            (r#"{"name": "#, Some("body")),
            ("[1]", Some("body")),
            (r#"["a", 1]"#, Some("body")),
            ("", Some("body")),
            (r#"{"count": 1}"#, Some("name")),
            (r#"{"name": "a b"}"#, Some("name")),
            (r#"{"name": 7}"#, Some("name")),
            (r#"{"name": "a", "count": -1}"#, Some("count")),
            (r#"{"name": "a", "other": 1}"#, Some("body")),
        ] {
            let refused = decode_json::<Example>(body.as_bytes()).err();
            assert_eq!(refused.as_ref().map(|invalid| invalid.field.as_ref()), field, "{body}: {refused:?}");
        }
    }
}
