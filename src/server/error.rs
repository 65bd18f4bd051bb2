//! Every refusal the HTTP API makes, as a status and a JSON body: `{"error", "message", "field"?,
//! "index"?}` (`index`: the event of a batch at fault).

use std::time::Duration;

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

use super::event::InvalidField;

#[derive(Debug)]
pub(crate) enum ApiError {
    /// 400: a field of the request is malformed.
    Invalid(InvalidField),
    /// 401: a missing or wrong bearer token; the answer names the scheme in `WWW-Authenticate`.
    Unauthorized(&'static str),
    /// 401 `token-required`: the topic is private and the request brought no token.
    TokenRequired(&'static str),
    /// 401 `invalid-token`: a token came but does not verify (malformed, expired, wrongly
    /// signed); the message says which.
    BadToken(String),
    /// 401: a missing, wrong or used callback signature. Not a bearer scheme, so no
    /// `WWW-Authenticate`.
    BadSignature(&'static str),
    /// 401: a browser call without a session: the page (`GET /`) sets the session cookie.
    /// Not a bearer scheme, so no `WWW-Authenticate`.
    NoSession,
    /// 401 `not-signed-in`: an operator request without the cookie that signing in at `/admin`
    /// sets. Not a bearer scheme, so no `WWW-Authenticate`.
    NotSignedIn,
    /// 400: an event name that Herald itself sends (or an `EventSource` gives a meaning), which
    /// a client could not tell from Herald's own.
    ReservedEventName(String),
    /// 403: the credentials are fine but do not reach this resource.
    Forbidden(String),
    /// 404.
    NotFound(String),
    /// 409: the request conflicts with what already happened.
    Conflict(String),
    /// 422: well-formed, but it contradicts an earlier request (an idempotency key reused for a
    /// different event).
    IdempotencyKeyReused(String),
    /// 413: the body is over the limit.
    TooLarge { limit: usize },
    /// 415: the body is not JSON.
    NotJson,
    /// 503: the feature is switched off by configuration.
    Disabled(&'static str),
    /// 503 with `Retry-After`: over capacity for now.
    Busy { message: String, retry_after: Duration },
    /// 429 with `Retry-After`: this client holds its share for now.
    TooMany { message: String, retry_after: Duration },
    /// The refusal of one event of a batch, which refuses the batch whole: the event's status,
    /// and its index in the body as `index`.
    InBatch { index: usize, error: Box<ApiError> },
}

impl ApiError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid(InvalidField::new(field, reason))
    }

    /// 503 with `Retry-After` while Redis does not answer in time.
    pub(crate) fn unavailable() -> Self {
        Self::Busy {
            message: "Redis did not answer in time; retry in a moment, with the same Idempotency-Key if you \
                      gave one (a late reply may mean it was stored after all)"
                .to_owned(),
            retry_after: Duration::from_secs(1),
        }
    }

    /// 503 with `Retry-After` for a publish the Redis primary holds but too few replicas
    /// confirmed (`--redis-wait-replicas`).
    pub(crate) fn unconfirmed(confirmed: u32, wanted: u32) -> Self {
        Self::Busy {
            message: format!(
                "Redis holds this publish, but {confirmed} of the {wanted} replicas asked for confirmed it within \
                 1 s, so a failover could lose it: retry in a moment with the same Idempotency-Key (without \
                 one, a retry may publish it twice)"
            ),
            retry_after: Duration::from_secs(1),
        }
    }

    /// Marks this refusal as the one of event `index` of a batch.
    pub(crate) fn in_batch(self, index: usize) -> Self {
        Self::InBatch { index, error: Box::new(self) }
    }

    /// The refusal itself, out of its batch.
    fn cause(&self) -> &Self {
        match self {
            Self::InBatch { error, .. } => error.cause(),
            error => error,
        }
    }

    fn status(&self) -> StatusCode {
        match self.cause() {
            Self::Invalid(_) | Self::ReservedEventName(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_)
            | Self::BadSignature(_)
            | Self::NoSession
            | Self::NotSignedIn
            | Self::TokenRequired(_)
            | Self::BadToken(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::IdempotencyKeyReused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Disabled(_) | Self::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooMany { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::InBatch { .. } => unreachable!("the cause of a refusal is never a batch's"),
        }
    }

    fn code(&self) -> &'static str {
        match self.cause() {
            Self::Invalid(_) => "invalid",
            Self::Unauthorized(_) | Self::BadSignature(_) => "unauthorized",
            Self::NoSession => "no-session",
            Self::NotSignedIn => "not-signed-in",
            Self::ReservedEventName(_) => "reserved-event-name",
            Self::TokenRequired(_) => "token-required",
            Self::BadToken(_) => "invalid-token",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not-found",
            Self::Conflict(_) => "conflict",
            Self::IdempotencyKeyReused(_) => "idempotency-key-reused",
            Self::TooLarge { .. } => "too-large",
            Self::NotJson => "not-json",
            Self::Disabled(_) => "disabled",
            Self::Busy { .. } => "busy",
            Self::TooMany { .. } => "too-many",
            Self::InBatch { .. } => unreachable!("the cause of a refusal is never a batch's"),
        }
    }

    fn message(&self) -> String {
        match self {
            Self::Invalid(invalid) => format!("{}: {}", invalid.field, invalid.reason),
            Self::NoSession => {
                "no session: load the page (GET /) first, which sets the session cookie".to_owned()
            }
            Self::NotSignedIn => "not signed in: sign in at /admin with the admin token first".to_owned(),
            Self::ReservedEventName(name) => format!(
                "event: {name:?} is a name Herald sends itself; choose another (docs/api.md lists the reserved names)"
            ),
            Self::Unauthorized(message)
            | Self::BadSignature(message)
            | Self::Disabled(message)
            | Self::TokenRequired(message) => (*message).to_owned(),
            Self::Forbidden(message)
            | Self::BadToken(message)
            | Self::NotFound(message)
            | Self::Conflict(message)
            | Self::IdempotencyKeyReused(message) => message.clone(),
            Self::TooLarge { limit } => format!("the body is over the limit of {limit} bytes"),
            Self::NotJson => "the body must be JSON (Content-Type: application/json)".to_owned(),
            Self::Busy { message, .. } | Self::TooMany { message, .. } => message.clone(),
            Self::InBatch { index, error } => format!("event {index} of the batch: {}", error.message()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code(), "message": self.message() });
        match self.cause() {
            Self::Invalid(invalid) => body["field"] = json!(invalid.field.as_ref()),
            Self::ReservedEventName(_) => body["field"] = json!("event"),
            _ => {}
        }
        if let Self::InBatch { index, .. } = &self {
            body["index"] = json!(index);
        }
        let mut response = (self.status(), Json(body)).into_response();
        let headers = response.headers_mut();
        match self.cause() {
            Self::Unauthorized(_) | Self::TokenRequired(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            // RFC 6750 §3.1: the error code that tells a client to get a new token.
            Self::BadToken(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                );
            }
            Self::Busy { retry_after, .. } | Self::TooMany { retry_after, .. } => {
                let seconds = retry_after.as_secs().max(1);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            _ => {}
        }
        response
    }
}

impl From<InvalidField> for ApiError {
    fn from(invalid: InvalidField) -> Self {
        Self::Invalid(invalid)
    }
}
