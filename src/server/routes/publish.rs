//! `POST /publish`: a backend hands Herald events for topics, with a bearer token.
//!
//! Body: `{"topic": "...", "event": "..."?, "data": ..., "idempotency_key": "..."?}`, or the same
//! with `"topics": [...]` (a broadcast: the event on each topic), or a batch: a JSON array of
//! such events, validated whole and published all or nothing, in one step of the log. `data` is
//! text; any other JSON value is sent as its compact JSON text. Answers `202 {"id",
//! "subscribers", "duplicate"}` for one topic, else `202 {"events": [{"topic", "id",
//! "subscribers", "duplicate"}]}` in order.

use std::{collections::HashSet, num::NonZeroU32, sync::Arc};

use axum::{
    extract::State,
    http::{request::Parts, HeaderMap, StatusCode},
    Json,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use serde_json::{json, value::RawValue, Value};

use crate::protocol::RESERVED_EVENT_NAMES;
use crate::server::{
    auth::{
        patterns::{covers, TopicPattern},
        tokens::{TokenError, Verifier},
        unix_seconds,
    },
    bearer::{bearer_token, check_bearer, BearerError},
    error::ApiError,
    event::{EventName, IdempotencyKey, InvalidField, NewEvent, Topic},
    extract::{decode_json, Admitted, Gate, JsonBytes},
    hub::{Hub, PublishError, Published},
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

    /// Takes `events` from the publish rate: 503 with `Retry-After` when it is used up for now,
    /// 400 for more than it allows at once.
    fn admit(&self, events: usize) -> Result<(), ApiError> {
        let too_many = || {
            ApiError::invalid(
                "body",
                format!(
                    "{events} events are more than HERALD_MAX_PUBLISH_RATE lets through at once; split the batch"
                ),
            )
        };
        let events = u32::try_from(events).ok().and_then(NonZeroU32::new).ok_or_else(too_many)?;
        match self.rate.check_n(events) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(ApiError::Busy {
                message: "the hub is over its publish rate (HERALD_MAX_PUBLISH_RATE); retry later".to_owned(),
                retry_after: not_until.wait_time_from(governor::clock::Clock::now(self.rate.clock())),
            }),
            Err(governor::InsufficientCapacity(_)) => Err(too_many()),
        }
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

/// One event of a publish request; deserialising it validates every field.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// Where it goes: one topic...
    #[serde(default)]
    pub topic: Option<Topic>,
    /// ... or several at once, a broadcast: the event is published to each, with an id each.
    #[serde(default)]
    pub topics: Option<Vec<Topic>>,
    #[serde(default)]
    pub event: Option<EventName>,
    #[serde(deserialize_with = "text_or_json")]
    pub data: String,
    /// The event's idempotency key on each of its topics (the `Idempotency-Key` header's, for
    /// an event of a batch).
    #[serde(default)]
    pub idempotency_key: Option<IdempotencyKey>,
}

/// Text as it is; any other JSON value as its compact JSON text.
fn text_or_json<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::String(text) => text,
        other => other.to_string(),
    })
}

/// The most events one request publishes, a broadcast's counted once per topic: a batch is one
/// script call on Redis, which holds Redis for its length (about 10 µs an event).
pub(crate) const MAX_BATCH: usize = 1_000;

/// What `POST /publish` was given: one event (a JSON object), or a batch (a JSON array of them).
#[derive(Debug)]
enum PublishBody {
    One(PublishRequest),
    Batch(Vec<PublishRequest>),
}

impl PublishBody {
    /// Reads a body, naming the event at fault in a batch.
    fn decode(body: &[u8]) -> Result<Self, ApiError> {
        if body.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'[') {
            return Ok(Self::One(decode_json(body)?));
        }
        let elements: Vec<&RawValue> = serde_json::from_slice(body).map_err(|err| {
            ApiError::Invalid(InvalidField::new("body", format!("is not valid JSON: {err}")))
        })?;
        if elements.is_empty() {
            return Err(ApiError::invalid("body", "a batch holds at least one event"));
        }
        let requests = elements
            .iter()
            .enumerate()
            .map(|(index, element)| {
                decode_json(element.get().as_bytes()).map_err(|err| ApiError::Invalid(err).in_batch(index))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self::Batch(requests))
    }
}

/// A request's events, each with its topic, validated whole before any is published.
struct Checked {
    events: Vec<(NewEvent, Option<IdempotencyKey>)>,
    /// For each of `events`, the index of the request's event it came from.
    origins: Vec<usize>,
}

/// Checks every event of a request for `publisher`, and spreads each over its topics; the first
/// refusal names its event's index (`batch`: the body was an array).
fn check(
    requests: Vec<PublishRequest>,
    header_key: Option<IdempotencyKey>,
    batch: bool,
    publisher: &Publisher,
) -> Result<Checked, ApiError> {
    let mut checked = Checked { events: Vec::new(), origins: Vec::new() };
    let mut keys = HashSet::new();
    for (index, request) in requests.into_iter().enumerate() {
        let at = |error: ApiError| if batch { error.in_batch(index) } else { error };
        let PublishRequest { topic, topics, event: name, data, idempotency_key } = request;
        if let Some(reserved) = name.as_ref().filter(|name| RESERVED_EVENT_NAMES.contains(&name.as_str())) {
            return Err(at(ApiError::ReservedEventName(reserved.as_str().to_owned())));
        }
        let key = match (idempotency_key, &header_key) {
            (Some(_), Some(_)) => {
                return Err(at(ApiError::invalid(
                    "idempotency_key",
                    "is given twice, in the body and as the Idempotency-Key header: give it once",
                )))
            }
            (key, header) => key.or_else(|| header.clone()),
        };
        let topics = match (topic, topics) {
            (Some(topic), None) => vec![topic],
            (None, Some(topics)) if topics.is_empty() => {
                return Err(at(ApiError::invalid("topics", "must name at least one topic")))
            }
            (None, Some(topics)) => topics,
            (None, None) => return Err(at(ApiError::invalid("topic", "is missing (or give topics)"))),
            (Some(_), Some(_)) => {
                return Err(at(ApiError::invalid("topics", "give topic or topics, not both")))
            }
        };
        let mut seen = HashSet::new();
        for topic in topics {
            publisher.may_reach(&topic).map_err(at)?;
            if !seen.insert(topic.clone()) {
                return Err(at(ApiError::invalid("topics", format!("names {topic} twice"))));
            }
            if let Some(key) = &key {
                if !keys.insert((topic.clone(), key.clone())) {
                    return Err(at(ApiError::invalid(
                        "idempotency_key",
                        format!("is used twice on topic {topic} in this batch: one key, one event"),
                    )));
                }
            }
            if checked.events.len() == MAX_BATCH {
                return Err(ApiError::invalid(
                    "body",
                    format!("a request publishes at most {MAX_BATCH} events, a broadcast's counted once per topic"),
                ));
            }
            let event = NewEvent { topic, name: name.clone(), data: data.clone() };
            checked.events.push((event, key.clone()));
            checked.origins.push(index);
        }
    }
    Ok(checked)
}

pub(crate) async fn publish(
    Admitted(publisher): Admitted<Publishing>,
    State(publishing): State<Publishing>,
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    JsonBytes(body): JsonBytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let header_key =
        headers.get("idempotency-key").map(|value| IdempotencyKey::parse(value.as_bytes())).transpose()?;
    let (requests, batch) = match PublishBody::decode(&body)? {
        PublishBody::One(request) => (vec![request], false),
        PublishBody::Batch(_) if header_key.is_some() => {
            return Err(ApiError::invalid(
                "Idempotency-Key",
                "a batch takes no Idempotency-Key header: give each event its idempotency_key",
            ))
        }
        PublishBody::Batch(requests) => (requests, true),
    };
    // One topic, one answer, as before batches and broadcasts: the rest answer a list.
    let single = !batch && requests[0].topics.is_none();
    let Checked { events, origins } = check(requests, header_key, batch, &publisher)?;
    publishing.admit(events.len())?;

    let topics: Vec<Topic> = events.iter().map(|(event, _)| event.topic.clone()).collect();
    let published = hub.publish_batch(events).await.map_err(|err| match err {
        PublishError::KeyReused(reused) => {
            let refusal = ApiError::IdempotencyKeyReused(format!(
                "this idempotency key already published event {} on topic {}, with a different event",
                reused.first, topics[reused.index]
            ));
            if batch {
                refusal.in_batch(origins[reused.index])
            } else {
                refusal
            }
        }
        PublishError::Unavailable => ApiError::unavailable(),
        PublishError::Unconfirmed { confirmed, wanted } => ApiError::unconfirmed(confirmed, wanted),
    })?;
    let answer = |published: &Published| {
        json!({
            "id": published.id.to_string(),
            "subscribers": published.subscribers,
            "duplicate": published.duplicate,
        })
    };
    let body = if single {
        answer(&published[0])
    } else {
        let events = published.iter().zip(&topics).map(|(published, topic)| {
            let mut event = answer(published);
            event["topic"] = json!(topic.as_str());
            event
        });
        json!({ "events": events.collect::<Vec<_>>() })
    };
    Ok((StatusCode::ACCEPTED, Json(body)))
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

    /// The field a body is refused for, as one request of the publish token.
    fn refused_field(body: Value) -> String {
        let refusal = PublishBody::decode(body.to_string().as_bytes())
            .and_then(|body| match body {
                PublishBody::One(request) => check(vec![request], None, false, &Publisher::Any),
                PublishBody::Batch(requests) => check(requests, None, true, &Publisher::Any),
            })
            .err()
            .unwrap_or_else(|| panic!("{body} was taken"));
        match refusal {
            ApiError::Invalid(invalid) => invalid.field.into_owned(),
            ApiError::InBatch { error, .. } => match *error {
                ApiError::Invalid(invalid) => invalid.field.into_owned(),
                other => panic!("{body}: {other:?}"),
            },
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn each_bad_field_is_named() {
        for (body, field) in [
            (json!({"data": "x"}), "topic"),
            (json!({"topic": 7, "data": "x"}), "topic"),
            (json!({"topic": "a b", "data": "x"}), "topic"),
            (json!({"topics": ["a", 7], "data": "x"}), "topics[1]"),
            (json!({"topic": "a"}), "data"),
            (json!({"topic": "a", "event": "a\nb", "data": "x"}), "event"),
            (json!({"topic": "a", "event": 1, "data": "x"}), "event"),
            (json!({"topic": "a", "data": "x", "idempotency_key": ""}), "idempotency_key"),
            (json!({"topic": "a", "data": "x", "evnt": "typo"}), "body"),
            // The fields in order, as serde would take them for a tuple: still not an object,
            // whether it is the body or an event of a batch.
            (json!(["a", null, "x"]), "body"),
            (json!([["a", null, "x"]]), "body"),
            (json!([{"topic": "a", "data": "x"}, {"topic": "a"}]), "data"),
        ] {
            assert_eq!(refused_field(body.clone()), field, "{body}");
        }
    }
}
