//! `POST /publish`: a backend hands Herald an event for a topic, with a bearer token.
//!
//! Body: `{"topic": "...", "event": "..."?, "data": ...}`. `data` is text; any other JSON value
//! is sent as its compact JSON text. Answers `202 {"id", "subscribers"}`.

use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, State},
    http::{header, HeaderMap, StatusCode},
    Json,
};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::server::{
    error::{body_bytes, ApiError},
    event::{EventName, InvalidField, Topic},
    AppState,
};

pub async fn publish(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Some(token) = state.publish_token.as_deref() else {
        return Err(ApiError::Disabled("publishing is disabled: set HERALD_PUBLISH_TOKEN to enable it"));
    };
    authorize(&headers, token)?;
    require_json(&headers)?;
    let body = json_object(&body_bytes(body, state.max_body)?)?;
    let request = PublishRequest::from_object(&body)?;
    let idempotency_key = idempotency_key(&headers)?;
    if let Err(not_until) = state.publish_rate.check() {
        let retry_after = not_until.wait_time_from(governor::clock::Clock::now(state.publish_rate.clock()));
        return Err(ApiError::Busy {
            message: "the hub is over its publish rate (HERALD_MAX_PUBLISH_RATE); retry later".to_owned(),
            retry_after,
        });
    }

    let published = state.hub.publish(&request.topic, request.event.as_ref(), &request.data, idempotency_key);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "id": published.id.to_string(),
            "subscribers": published.subscribers,
            "duplicate": published.duplicate,
        })),
    ))
}

/// Checks `Authorization: Bearer <token>`. Both sides are hashed first, so the comparison takes
/// the same time whatever the length or content of the guess.
fn authorize(headers: &HeaderMap, token: &str) -> Result<(), ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized("send Authorization: Bearer <HERALD_PUBLISH_TOKEN>"))?;
    let matches: bool = Sha256::digest(presented.as_bytes()).ct_eq(&Sha256::digest(token.as_bytes())).into();
    if matches {
        Ok(())
    } else {
        Err(ApiError::Unauthorized("the bearer token is wrong"))
    }
}

/// 415 unless the request says its body is `application/json`.
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
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

/// The bytes of a body as a JSON object.
pub fn json_object(body: &[u8]) -> Result<Map<String, Value>, InvalidField> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(InvalidField::new("body", "must be a JSON object")),
        Err(err) => Err(InvalidField::new("body", format!("is not valid JSON: {err}"))),
    }
}

/// The optional `Idempotency-Key`: 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > 255 || !bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(ApiError::invalid("Idempotency-Key", "must be 1 to 255 visible ASCII characters"));
    }
    Ok(value.to_str().ok())
}

/// A publish request whose every field has been validated.
#[derive(Debug, PartialEq)]
pub struct PublishRequest {
    pub topic: Topic,
    pub event: Option<EventName>,
    pub data: String,
}

impl PublishRequest {
    /// Parses a raw body; what the fuzz target feeds arbitrary bytes to.
    pub fn from_json(body: &[u8]) -> Result<Self, InvalidField> {
        Self::from_object(&json_object(body)?)
    }

    fn from_object(body: &Map<String, Value>) -> Result<Self, InvalidField> {
        if let Some(unknown) = body.keys().find(|key| !matches!(key.as_str(), "topic" | "event" | "data")) {
            return Err(InvalidField::new("body", format!("has an unknown field {unknown:?}")));
        }
        let topic = match body.get("topic") {
            Some(Value::String(topic)) => Topic::parse(topic)?,
            Some(_) => return Err(InvalidField::new("topic", "must be a string")),
            None => return Err(InvalidField::new("topic", "is missing")),
        };
        let event = match body.get("event") {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) => Some(EventName::parse(name)?),
            Some(_) => return Err(InvalidField::new("event", "must be a string")),
        };
        let data = match body.get("data") {
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
            None => return Err(InvalidField::new("data", "is missing")),
        };
        Ok(Self { topic, event, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: Value) -> Result<PublishRequest, InvalidField> {
        let Value::Object(object) = body else { panic!("not an object") };
        PublishRequest::from_object(&object)
    }

    #[test]
    fn text_data_is_kept_as_is_and_json_data_as_compact_text() {
        assert_eq!(parse(json!({"topic": "a", "data": " x\ny"})).unwrap().data, " x\ny");
        assert_eq!(parse(json!({"topic": "a", "data": {"k": [1, 2]}})).unwrap().data, r#"{"k":[1,2]}"#);
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
        ] {
            assert_eq!(parse(body.clone()).unwrap_err().field, field, "{body}");
        }
    }
}
