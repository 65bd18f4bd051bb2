//! What a backend can ask about one topic, across every instance, with the credentials it
//! publishes with (the publish token, or a publisher token that covers the topic):
//! `GET /topics/{topic}` (subscribers, newest event, rate), `GET /topics/{topic}/presence` (who
//! follows it) and `GET /topics/{topic}/events` (its history in pages, with the same resets as
//! a resume, so that a backend catches up without opening a stream).

use std::sync::Arc;

use axum::{
    extract::{RawQuery, State},
    Json,
};
use serde_json::{json, Value};

use crate::protocol::ResetNotice;
use crate::server::{
    error::ApiError,
    event::{self, Topic},
    extract::{Admitted, PathParams},
    hub::Hub,
    routes::publish::{Publisher, Publishing},
};

/// The events one page holds when the request names no `limit`, and at most.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// `?after=ID&limit=N`, both optional, each at most once, and nothing else.
#[derive(Debug, PartialEq, Eq)]
struct HistoryQuery {
    after: Option<String>,
    limit: usize,
}

impl HistoryQuery {
    fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let (mut after, mut limit) = (None, None);
        for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match &*name {
                "after" if after.is_none() => after = Some(value.into_owned()),
                "limit" if limit.is_none() => {
                    limit = Some(value.parse().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(
                        || {
                            ApiError::invalid(
                                "limit",
                                format!("must be a whole number from 1 to {MAX_LIMIT}"),
                            )
                        },
                    )?);
                }
                "after" => return Err(ApiError::invalid("after", "may be given once")),
                "limit" => return Err(ApiError::invalid("limit", "may be given once")),
                _ => {
                    return Err(ApiError::invalid(
                        "query",
                        format!("unknown parameter {name:.64}: only after and limit are read"),
                    ))
                }
            }
        }
        Ok(Self { after, limit: limit.unwrap_or(DEFAULT_LIMIT) })
    }
}

/// The topic of the path, for a publisher that may reach it, with no query parameter.
fn reached(publisher: &Publisher, topic: &str, query: Option<&str>) -> Result<Topic, ApiError> {
    let topic = Topic::parse(topic).map_err(ApiError::Invalid)?;
    if query.is_some_and(|query| !query.is_empty()) {
        return Err(ApiError::invalid("query", "this route takes no parameter"));
    }
    publisher.may_reach(&topic)?;
    Ok(topic)
}

pub(crate) async fn info(
    Admitted(publisher): Admitted<Publishing>,
    State(hub): State<Arc<Hub>>,
    PathParams(topic): PathParams<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let topic = reached(&publisher, &topic, query.as_deref())?;
    let info = hub.topic_info(&topic).await.map_err(|_| ApiError::unavailable())?;
    Ok(Json(json!({
        "topic": topic.as_str(),
        "subscribers": info.subscribers,
        "last_id": info.newest.map(|id| id.to_string()),
        "events_last_minute": info.events_last_minute,
    })))
}

pub(crate) async fn presence(
    Admitted(publisher): Admitted<Publishing>,
    State(hub): State<Arc<Hub>>,
    PathParams(topic): PathParams<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let topic = reached(&publisher, &topic, query.as_deref())?;
    let presence = hub.presence(&topic).await.map_err(|_| ApiError::unavailable())?;
    let listed: usize = presence.subs.values().sum();
    let subs: Vec<Value> = presence
        .subs
        .iter()
        .map(|(sub, connections)| json!({ "sub": &**sub, "connections": connections }))
        .collect();
    Ok(Json(json!({
        "topic": topic.as_str(),
        "connections": presence.connections,
        "anonymous": presence.connections.saturating_sub(listed),
        "subs": subs,
    })))
}

pub(crate) async fn history(
    Admitted(publisher): Admitted<Publishing>,
    State(hub): State<Arc<Hub>>,
    PathParams(topic): PathParams<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let topic = Topic::parse(&topic).map_err(ApiError::Invalid)?;
    let HistoryQuery { after, limit } = HistoryQuery::parse(query.as_deref())?;
    publisher.may_reach(&topic)?;
    let page = hub.history(&topic, after.as_deref(), limit).await.map_err(|_| ApiError::unavailable())?;
    let events: Vec<_> = page.frames.iter().map(|frame| event::unframe(frame)).collect();
    // Where to go on from: the last event handed over, or, with none, the top of the log (the
    // topic has nothing between the id asked after and there, or a reset says to start there).
    let next = events.last().map_or_else(|| page.top.to_string(), |last| last.id.clone());
    let mut answer = json!({ "topic": topic.as_str(), "events": events, "more": page.more, "next": next });
    if let Some(reason) = page.reset {
        answer["reset"] = json!(ResetNotice::from(reason));
    }
    Ok(Json(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<HistoryQuery, String> {
        HistoryQuery::parse(Some(query)).map_err(|err| format!("{err:?}"))
    }

    #[test]
    fn after_and_limit_are_both_optional() {
        assert_eq!(parse(""), Ok(HistoryQuery { after: None, limit: DEFAULT_LIMIT }));
        assert_eq!(
            parse("after=1800000000000-7&limit=5"),
            Ok(HistoryQuery { after: Some("1800000000000-7".to_owned()), limit: 5 })
        );
        assert_eq!(HistoryQuery::parse(None).unwrap().limit, DEFAULT_LIMIT);
    }

    #[test]
    fn a_limit_outside_one_to_the_most_a_repeated_or_an_unknown_parameter_is_refused() {
        for bad in [
            "limit=0",
            "limit=1001",
            "limit=-1",
            "limit=ten",
            "limit=",
            "after=a&after=b",
            "limit=1&limit=2",
            "from=3",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("limit=1000").is_ok());
    }
}
