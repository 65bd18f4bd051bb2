//! `GET /events?topic=a&topic=b`: any number of topics (up to the limit) on one SSE connection,
//! resumable with `Last-Event-ID` (header) or `lastEventId` (query). With `withTopic=1`, each
//! event's data opens with a line naming its topic. Private topics need a token
//! (see [`crate::server::auth`]), in `Authorization: Bearer` or `access_token`.

use std::sync::Arc;

use axum::{extract::State, http::HeaderMap, response::Response};

use super::stream_request::StreamRequest;
use crate::server::{auth::Access, error::ApiError, event::Topic, hub::Hub, sse::Streams};

pub(crate) async fn event_stream(
    State(streams): State<Streams>,
    State(hub): State<Arc<Hub>>,
    State(access): State<Access>,
    headers: HeaderMap,
    StreamRequest { session, client, query, resume }: StreamRequest,
) -> Result<Response, ApiError> {
    let topics = parse_topics(&query, streams.max_topics())?;
    if topics.is_empty() {
        return Err(ApiError::invalid("topic", "name at least one topic: /events?topic=NAME"));
    }
    let own = session.map(|session| session.topic());
    if let Some(foreign) = topics.iter().find(|topic| topic.is_private() && Some(*topic) != own.as_ref()) {
        return Err(ApiError::Forbidden(match own {
            Some(_) => format!("topic {foreign} belongs to another session"),
            None => format!("topic {foreign} is a session's: send that session's cookie"),
        }));
    }
    let grant = access.admit_subscriber(&headers, &query, &topics)?;

    let with_topic = with_topic(&query)?;

    let slot = streams.reserve(client)?;
    let subscription = hub.subscribe_as(grant.sub.clone(), topics, resume.as_deref());
    let subscription = if with_topic { subscription.with_topics() } else { subscription };
    Ok(streams.respond(access.until_expiry(subscription.into_stream(), &grant), slot, "/events"))
}

/// Whether the query asks for each event's data to open with a line naming its topic
/// (`withTopic=1` or `true`; `0`, `false` or no parameter leave the data as published).
fn with_topic(query: &str) -> Result<bool, ApiError> {
    match form_urlencoded::parse(query.as_bytes()).filter(|(key, _)| key == "withTopic").last() {
        None => Ok(false),
        Some((_, value)) => match value.as_ref() {
            "1" | "true" => Ok(true),
            "0" | "false" => Ok(false),
            _ => Err(ApiError::invalid("withTopic", "must be 1, true, 0 or false")),
        },
    }
}

/// The `topic` parameters of a query, each once, in order; other parameters are ignored.
fn parse_topics(query: &str, max_topics: usize) -> Result<Vec<Topic>, ApiError> {
    let mut topics = Vec::new();
    for (_, value) in form_urlencoded::parse(query.as_bytes()).filter(|(key, _)| key == "topic") {
        let topic = Topic::parse(&value)?;
        if !topics.contains(&topic) {
            if topics.len() == max_topics {
                return Err(ApiError::invalid(
                    "topic",
                    format!("at most {max_topics} topics fit on one connection"),
                ));
            }
            topics.push(topic);
        }
    }
    Ok(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(result: Result<Vec<Topic>, ApiError>) -> String {
        match result {
            Err(ApiError::Invalid(invalid)) => invalid.field.into_owned(),
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn repeated_topics_are_collected_once_each_in_order() {
        let query = "topic=b&topic=a&topic=b&lastEventId=1-2&other=x";
        let topics = parse_topics(query, 4).unwrap();
        let names: Vec<_> = topics.iter().map(Topic::as_str).collect();
        assert_eq!(names, ["b", "a"]);
    }

    #[test]
    fn more_topics_than_the_limit_are_refused_without_reading_them_all() {
        let many = (0..10_000).map(|n| format!("topic=t{n}")).collect::<Vec<_>>().join("&");
        assert_eq!(field_of(parse_topics(&many, 16)), "topic");
    }

    #[test]
    fn bad_topic_names_are_refused_even_when_percent_encoded() {
        for query in ["topic=", "topic=a%0Ab", "topic=%FF", "topic=a%20b"] {
            assert_eq!(field_of(parse_topics(query, 16)), "topic", "{query}");
        }
    }
}
