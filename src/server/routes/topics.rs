//! What a backend can ask about one topic, across every instance, with the credentials it
//! publishes with (the publish token, or a publisher token that covers the topic):
//! `GET /topics/{topic}` (subscribers, newest event, rate), `GET /topics/{topic}/presence` (who
//! follows it) and `GET /topics/{topic}/events` (its history in pages, with the same resets as
//! a resume, so that a backend catches up without opening a stream).

use std::sync::Arc;

use axum::{
    extract::{FromRef, FromRequestParts, RawQuery, State},
    http::request::Parts,
    Json,
};
use serde_json::{json, Value};

use crate::protocol::ResetNotice;
use crate::server::{
    error::ApiError,
    event::{self, Topic},
    extract::{Admitted, PathParams},
    hub::{Hub, TopicInfo},
    routes::publish::Publishing,
};

/// The events or topics one page holds when the request names no `limit`, and at most.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// How many reads one `GET /topics` makes at most to fill a page with topics the publisher may
/// reach; past them, the page comes back short with a cursor to go on from.
const MAX_LIST_ROUNDS: usize = 8;

/// A query's parameters, each of `known` at most once and nothing else: the value of each, in
/// the order of `known`.
fn parameters<const N: usize>(
    query: Option<&str>,
    known: [&'static str; N],
) -> Result<[Option<String>; N], ApiError> {
    let mut values = [const { None }; N];
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let Some(index) = known.iter().position(|known| *known == name) else {
            return Err(ApiError::invalid(
                "query",
                format!("unknown parameter {name:.64}: only {} are read", known.join(", ")),
            ));
        };
        if values[index].replace(value.into_owned()).is_some() {
            return Err(ApiError::invalid(known[index], "may be given once"));
        }
    }
    Ok(values)
}

/// `limit`, from 1 to [`MAX_LIMIT`]; [`DEFAULT_LIMIT`] when not given.
fn limit(value: Option<String>) -> Result<usize, ApiError> {
    value.map_or(Ok(DEFAULT_LIMIT), |value| {
        value.parse().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| {
            ApiError::invalid("limit", format!("must be a whole number from 1 to {MAX_LIMIT}"))
        })
    })
}

/// `?after=ID&limit=N`, both optional, each at most once, and nothing else.
#[derive(Debug, PartialEq, Eq)]
struct HistoryQuery {
    after: Option<String>,
    limit: usize,
}

impl HistoryQuery {
    fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let [after, limit_given] = parameters(query, ["after", "limit"])?;
        Ok(Self { after, limit: limit(limit_given)? })
    }
}

/// `?prefix=P&cursor=TOPIC&limit=N`, each optional, at most once, and nothing else.
#[derive(Debug, PartialEq, Eq)]
struct ListQuery {
    prefix: String,
    cursor: Option<Topic>,
    limit: usize,
}

impl ListQuery {
    fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let [prefix, cursor, limit_given] = parameters(query, ["prefix", "cursor", "limit"])?;
        let prefix = prefix.unwrap_or_default();
        // A prefix is the start of a topic name: what would make a name `Topic` refuses is refused.
        if !prefix.is_empty() {
            Topic::parse(&prefix).map_err(|err| ApiError::invalid("prefix", err.reason))?;
        }
        let cursor = cursor
            .map(|cursor| Topic::parse(&cursor).map_err(|err| ApiError::invalid("cursor", err.reason)))
            .transpose()?;
        Ok(Self { prefix, cursor, limit: limit(limit_given)? })
    }
}

/// `GET /topics?prefix=&cursor=&limit=`: the topics with a subscriber on any instance that the
/// publisher may reach, by name, a page at a time.
pub(crate) async fn list(
    Admitted(publisher): Admitted<Publishing>,
    State(hub): State<Arc<Hub>>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let ListQuery { prefix, cursor, limit } = ListQuery::parse(query.as_deref())?;
    let unavailable = |_| ApiError::unavailable();
    let (mut page, mut after, mut more) = (vec![], cursor.map(|cursor| cursor.as_str().to_owned()), true);
    'rounds: for _ in 0..MAX_LIST_ROUNDS {
        let read = hub.live_topics(&prefix, after.as_deref(), limit).await.map_err(unavailable)?;
        let whole = read.len() == limit;
        for (topic, subscribers) in read {
            after = Some(topic.as_str().to_owned());
            if publisher.may_reach(&topic).is_ok() {
                page.push((topic, subscribers));
                if page.len() == limit {
                    break 'rounds;
                }
            }
        }
        if !whole {
            more = false;
            break;
        }
    }
    let topics: Vec<Value> = hub
        .infos(page)
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|(topic, info)| described(&topic, &info))
        .collect();
    Ok(Json(json!({ "topics": topics, "next_cursor": if more { after } else { None } })))
}

/// The topic of the path, with no query parameter, for a publisher that may reach it: what
/// `GET /topics/{topic}` and its presence take.
pub(crate) struct ReachedTopic(Topic);

impl<S> FromRequestParts<S> for ReachedTopic
where
    S: Send + Sync,
    Publishing: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Admitted(publisher) = Admitted::<Publishing>::from_request_parts(parts, state).await?;
        let PathParams(topic) = PathParams::<String>::from_request_parts(parts, state).await?;
        let topic = Topic::parse(&topic).map_err(ApiError::Invalid)?;
        if parts.uri.query().is_some_and(|query| !query.is_empty()) {
            return Err(ApiError::invalid("query", "this route takes no parameter"));
        }
        publisher.may_reach(&topic)?;
        Ok(Self(topic))
    }
}

pub(crate) async fn info(
    ReachedTopic(topic): ReachedTopic,
    State(hub): State<Arc<Hub>>,
) -> Result<Json<Value>, ApiError> {
    let info = hub.topic_info(&topic).await.map_err(|_| ApiError::unavailable())?;
    Ok(Json(described(&topic, &info)))
}

/// A topic as `GET /topics/{topic}` and each entry of `GET /topics` show it.
fn described(topic: &Topic, info: &TopicInfo) -> Value {
    json!({
        "topic": topic.as_str(),
        "subscribers": info.subscribers,
        "last_id": info.newest.map(|id| id.to_string()),
        "events_last_minute": info.events_last_minute,
    })
}

pub(crate) async fn presence(
    ReachedTopic(topic): ReachedTopic,
    State(hub): State<Arc<Hub>>,
) -> Result<Json<Value>, ApiError> {
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
    fn a_list_takes_a_prefix_a_cursor_and_a_limit_each_once() {
        let query = ListQuery::parse(Some("prefix=user.&cursor=user.7&limit=5")).unwrap();
        assert_eq!(
            query,
            ListQuery { prefix: "user.".into(), cursor: Some(Topic::parse("user.7").unwrap()), limit: 5 }
        );
        assert_eq!(
            ListQuery::parse(None).unwrap(),
            ListQuery { prefix: String::new(), cursor: None, limit: DEFAULT_LIMIT }
        );
        for bad in ["prefix=a/b", "cursor=", "cursor=a%20b", "limit=0", "prefix=a&prefix=b", "after=1-1"] {
            assert!(ListQuery::parse(Some(bad)).is_err(), "{bad}");
        }
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
