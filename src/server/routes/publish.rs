//! `POST /publish`: a backend hands Herald an event for a topic, with a bearer token.
//!
//! Body: `{"topic": "...", "event": "..."?, "data": ...}`. `data` is text; any other JSON value
//! is sent as its compact JSON text. Answers `202 {"id", "subscribers", "duplicate"}`.

use std::{num::NonZeroU32, sync::Arc};

use axum::{
    extract::State,
    http::{request::Parts, HeaderMap, StatusCode},
    Json,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

use crate::protocol::RESERVED_EVENT_NAMES;
use crate::server::{
    auth::{
        patterns::{covers, TopicPattern},
        tokens::{TokenError, Verifier},
        unix_seconds,
    },
    bearer::{bearer_token, check_bearer, BearerError},
    error::ApiError,
    event::{EventName, IdempotencyKey, NewEvent, Topic},
    extract::{Admitted, Gate, JsonBody},
    hub::{Hub, PublishError},
    redis::Unavailable,
};

/// What publishing is configured with.
#[derive(Clone, Debug)]
pub(crate) struct PublishSettings {
    /// The bearer token publishers present; publishing is disabled without one.
    pub token: Option<SecretString>,
    /// Events accepted per second across all publishers, and as a burst.
    pub max_rate: NonZeroU32,
}

/// Who may publish, and how fast (a sub-state).
#[derive(Clone)]
pub(crate) struct Publishing {
    token: Option<Arc<str>>,
    /// Checks publisher tokens (JWTs) while a JWT key is configured.
    verifier: Option<Arc<Verifier>>,
    rate: Arc<governor::DefaultDirectRateLimiter>,
}

impl Publishing {
    pub(crate) fn new(settings: PublishSettings, verifier: Option<Arc<Verifier>>) -> Self {
        Self {
            token: settings.token.map(|token| Arc::from(token.expose_secret())),
            verifier,
            rate: Arc::new(governor::RateLimiter::direct(governor::Quota::per_second(settings.max_rate))),
        }
    }

    /// 503 with `Retry-After` when the publish rate is used up for now.
    fn admit(&self) -> Result<(), ApiError> {
        self.rate.check().map_err(|not_until| ApiError::Busy {
            message: "the hub is over its publish rate (HERALD_MAX_PUBLISH_RATE); retry later".to_owned(),
            retry_after: not_until.wait_time_from(governor::clock::Clock::now(self.rate.clock())),
        })
    }
}

/// Who a publisher is: the holder of the publish token, or of a publisher token (a JWT).
#[derive(Debug)]
pub(crate) enum Publisher {
    /// `HERALD_PUBLISH_TOKEN`: every topic but `session.*`.
    Any,
    /// A token: the topics its `herald.publish` patterns cover.
    Covering(Vec<TopicPattern>),
}

impl Publisher {
    /// 403 unless this publisher may publish to `topic`, or read its history: never a browser
    /// session's own topic, and with a token only the topics its `herald.publish` covers.
    pub(crate) fn may_reach(&self, topic: &Topic) -> Result<(), ApiError> {
        if topic.is_private() {
            return Err(ApiError::Forbidden(format!(
                "topic {topic} is private to a browser session: only Herald's own job flow publishes there"
            )));
        }
        match self {
            Self::Covering(patterns) if !covers(patterns, topic) => Err(ApiError::Forbidden(format!(
                "the token does not cover topic {topic}: no pattern of its herald.publish matches it"
            ))),
            _ => Ok(()),
        }
    }
}

/// Lets through callers that present the publish token, or a publisher token while a JWT key is
/// configured: 503 while publishing is disabled, 401 without a token that holds.
impl Gate for Publishing {
    type Pass = Publisher;

    fn admit(&self, head: &Parts) -> Result<Publisher, ApiError> {
        let Some(verifier) = &self.verifier else {
            let Some(token) = self.token.as_deref() else {
                return Err(ApiError::Disabled(
                    "publishing is disabled: set HERALD_PUBLISH_TOKEN to enable it",
                ));
            };
            return check_bearer(&head.headers, token).map(|()| Publisher::Any).map_err(|err| match err {
                BearerError::Missing => {
                    ApiError::Unauthorized("send Authorization: Bearer <HERALD_PUBLISH_TOKEN>")
                }
                BearerError::Wrong => ApiError::Unauthorized("the bearer token is wrong"),
            });
        };
        if self.token.as_deref().is_some_and(|token| check_bearer(&head.headers, token).is_ok()) {
            return Ok(Publisher::Any);
        }
        let presented = bearer_token(&head.headers).ok_or(ApiError::Unauthorized(
            "send Authorization: Bearer with HERALD_PUBLISH_TOKEN or a publisher token",
        ))?;
        let claims = verifier.verify(presented, unix_seconds()).map_err(|err| match err {
            // Not even shaped as a JWT: most likely a mistyped publish token, which a message
            // about base64url parts would not point to.
            TokenError::Malformed(_) if self.token.is_some() && presented.split('.').count() != 3 => {
                ApiError::Unauthorized(
                    "the bearer token is neither HERALD_PUBLISH_TOKEN nor a publisher token (a JWT)",
                )
            }
            err => ApiError::BadToken(err.message()),
        })?;
        if let Some(subject) = &claims.sub {
            tracing::Span::current().record("sub", subject.as_str());
        }
        Ok(Publisher::Covering(claims.herald.publish))
    }
}

/// A publish request; deserialising it validates every field.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    pub topic: Topic,
    #[serde(default)]
    pub event: Option<EventName>,
    #[serde(deserialize_with = "text_or_json")]
    pub data: String,
}

/// Text as it is; any other JSON value as its compact JSON text.
fn text_or_json<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::String(text) => text,
        other => other.to_string(),
    })
}

pub(crate) async fn publish(
    Admitted(publisher): Admitted<Publishing>,
    State(publishing): State<Publishing>,
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<PublishRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let idempotency_key =
        headers.get("idempotency-key").map(|value| IdempotencyKey::parse(value.as_bytes())).transpose()?;
    if let Some(reserved) =
        request.event.as_ref().filter(|name| RESERVED_EVENT_NAMES.contains(&name.as_str()))
    {
        return Err(ApiError::ReservedEventName(reserved.as_str().to_owned()));
    }
    publishing.admit()?;

    let PublishRequest { topic, event: name, data } = request;
    publisher.may_reach(&topic)?;
    let event = NewEvent { topic, name, data };
    let published = match idempotency_key {
        None => hub.publish(event).await.map_err(|Unavailable| ApiError::unavailable())?,
        Some(key) => hub.publish_once(event, key).await.map_err(|err| match err {
            PublishError::KeyReused(reused) => ApiError::IdempotencyKeyReused(format!(
                "this Idempotency-Key already published event {} on this topic, with a different event",
                reused.first
            )),
            PublishError::Unavailable => ApiError::unavailable(),
        })?,
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "id": published.id.to_string(),
            "subscribers": published.subscribers,
            "duplicate": published.duplicate,
        })),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::extract::decode_json;

    fn parse(body: Value) -> Result<PublishRequest, crate::server::event::InvalidField> {
        decode_json(body.to_string().as_bytes())
    }

    #[test]
    fn text_data_is_kept_as_is_and_json_data_as_compact_text() {
        assert_eq!(parse(json!({"topic": "a", "data": " x\ny"})).unwrap().data, " x\ny");
        assert_eq!(parse(json!({"topic": "a", "data": {"k": [1, 2]}})).unwrap().data, r#"{"k":[1,2]}"#);
        assert_eq!(parse(json!({"topic": "a", "data": null})).unwrap().data, "null");
    }

    #[test]
    fn each_bad_field_is_named() {
        for (body, field) in [
            (json!({"data": "x"}), "topic"),
            (json!({"topic": 7, "data": "x"}), "topic"),
            (json!({"topic": "a b", "data": "x"}), "topic"),
            (json!({"topic": "a"}), "data"),
            (json!({"topic": "a", "event": "a\nb", "data": "x"}), "event"),
            (json!({"topic": "a", "event": 1, "data": "x"}), "event"),
            (json!({"topic": "a", "data": "x", "evnt": "typo"}), "body"),
            // The fields in order, as serde would take them for a tuple: still not an object.
            (json!(["a", null, "x"]), "body"),
        ] {
            assert_eq!(parse(body.clone()).unwrap_err().field, field, "{body}");
        }
    }
}
