//! `POST /publish` with an idempotency key, retried while Herald asks for it: a 503 (or 429)
//! with `Retry-After` (over its publish rate, or its Redis away), or no answer at all. Every
//! attempt carries the same key, so Herald publishes the event once however many get through.

use std::{fmt, time::Duration};

use reqwest::{header, StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The longest `Retry-After` honoured as given; a longer one is waited this long.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The wait before retrying a request that got no answer.
const NO_ANSWER_WAIT: Duration = Duration::from_secs(1);

/// One event to publish.
#[derive(Clone, Debug, Serialize)]
pub struct Event<'a> {
    pub topic: &'a str,
    /// The SSE event name; `None` sends a plain `message`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<&'a str>,
    /// Text is sent as it is; any other JSON value as its compact JSON text.
    pub data: Value,
    /// Publishes the event once whatever the retries; `None` makes a random one for this call.
    #[serde(skip)]
    pub idempotency_key: Option<&'a str>,
}

/// What Herald answered.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Published {
    /// The event's id, as subscribers see it in `id:`.
    pub id: String,
    /// How many of this instance's subscribers it was sent to.
    pub subscribers: u64,
    /// Whether an earlier attempt with the same key had published it already.
    pub duplicate: bool,
    /// The key every attempt carried.
    #[serde(skip)]
    pub idempotency_key: String,
}

/// Why the event was not published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishError {
    /// Herald refused the event (a 4xx): sending it again would get the same answer.
    /// `error` and `message` are those of Herald's JSON error.
    Refused { status: u16, error: String, message: String },
    /// No answer that published it after `attempts` attempts, or an answer no retry can change
    /// (a 503 without `Retry-After`: publishing is disabled); `reason` is the last one.
    Unavailable { attempts: u32, reason: String },
    /// The URL given for Herald is not an `http://` or `https://` one.
    NotHttp(String),
    /// The token or the idempotency key (named) cannot be sent as an HTTP header value: it holds
    /// a line break or another control character.
    NotAHeader(&'static str),
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused { status, error, message } => write!(f, "refused ({status} {error}): {message}"),
            Self::Unavailable { attempts: 1, reason } => write!(f, "unavailable: {reason}"),
            Self::Unavailable { attempts, reason } => {
                write!(f, "unavailable after {attempts} attempts: {reason}")
            }
            Self::NotHttp(url) => write!(f, "{url} is not an http:// or https:// URL"),
            Self::NotAHeader(what) => write!(
                f,
                "the {what} cannot be sent in an HTTP header: it holds a line break or another control character"
            ),
        }
    }
}

impl std::error::Error for PublishError {}

/// What one attempt came to.
enum Attempt {
    Done(Published),
    Failed(PublishError),
    /// Worth another attempt after this wait.
    Retry {
        after: Duration,
        reason: String,
    },
}

/// Publishes `event` to the Herald at `herald` (its base URL, such as `http://127.0.0.1:3000`)
/// with `token` (`HERALD_PUBLISH_TOKEN` or a publisher token), making at most `attempts` attempts
/// (at least one).
pub async fn publish(
    client: &reqwest::Client,
    herald: &Url,
    token: &str,
    event: &Event<'_>,
    attempts: u32,
) -> Result<Published, PublishError> {
    let url = publish_url(herald)?;
    let key = event.idempotency_key.map_or_else(crate::random_id, str::to_owned);
    // Checked before sending: reqwest would fail each attempt before it is sent, which would
    // look like a Herald that does not answer, retried for nothing.
    for (what, value) in [("token", token), ("idempotency key", key.as_str())] {
        if header::HeaderValue::from_str(value).is_err() {
            return Err(PublishError::NotAHeader(what));
        }
    }
    let attempts = attempts.max(1);
    for attempt in 1..=attempts {
        let sent = client
            .post(url.clone())
            .bearer_auth(token)
            .header("idempotency-key", &key)
            .json(event)
            .send()
            .await;
        let outcome = match sent {
            Ok(response) => answer(response).await,
            // The URL is the caller's own, and says nothing about what failed.
            Err(err) => Attempt::Retry { after: NO_ANSWER_WAIT, reason: with_causes(&err.without_url()) },
        };
        match outcome {
            Attempt::Done(published) => return Ok(Published { idempotency_key: key, ..published }),
            Attempt::Failed(PublishError::Unavailable { reason, .. }) => {
                return Err(PublishError::Unavailable { attempts: attempt, reason })
            }
            Attempt::Failed(err) => return Err(err),
            Attempt::Retry { reason, .. } if attempt == attempts => {
                return Err(PublishError::Unavailable { attempts, reason })
            }
            Attempt::Retry { after, .. } => tokio::time::sleep(after).await,
        }
    }
    unreachable!("the last attempt returns")
}

/// `/publish` under Herald's base URL, whose path is kept (`https://example.com/herald`,
/// behind a proxy, publishes to `https://example.com/herald/publish`).
fn publish_url(herald: &Url) -> Result<Url, PublishError> {
    if !matches!(herald.scheme(), "http" | "https") {
        return Err(PublishError::NotHttp(herald.to_string()));
    }
    let mut url = herald.clone();
    url.path_segments_mut().expect("an http(s) URL has a path").pop_if_empty().push("publish");
    Ok(url)
}

/// Reads Herald's answer to one attempt.
async fn answer(response: reqwest::Response) -> Attempt {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok()?.trim().parse::<u64>().ok())
        .map(|seconds| Duration::from_secs(seconds).min(MAX_RETRY_AFTER));
    let body = response.bytes().await.unwrap_or_default();
    if status.is_success() {
        return match serde_json::from_slice(&body) {
            Ok(published) => Attempt::Done(published),
            Err(err) => Attempt::Failed(PublishError::Unavailable {
                attempts: 1,
                reason: format!("{status} with an answer that is not Herald's: {err}"),
            }),
        };
    }
    let (error, message) = describe(&body);
    let reason = format!("{status} {error}: {message}");
    match (status, retry_after) {
        (StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS, Some(after)) => {
            Attempt::Retry { after, reason }
        }
        (status, _) if status.is_client_error() => {
            Attempt::Failed(PublishError::Refused { status: status.as_u16(), error, message })
        }
        _ => Attempt::Failed(PublishError::Unavailable { attempts: 1, reason }),
    }
}

/// The `error` and `message` of Herald's JSON error, or the start of whatever else came.
fn describe(body: &[u8]) -> (String, String) {
    #[derive(Deserialize)]
    struct ApiError {
        error: String,
        message: String,
    }
    match serde_json::from_slice::<ApiError>(body) {
        Ok(ApiError { error, message }) => (error, message),
        Err(_) => ("error".to_owned(), String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()),
    }
}

/// The error and each of its causes: reqwest's own words ("error sending request") alone do
/// not say that the connection was refused.
fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(inner) = cause {
        text = format!("{text}: {inner}");
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_body_is_the_event_without_its_key() {
        let event = Event {
            topic: "orders",
            event: Some("created"),
            data: json!({"id": 7}),
            idempotency_key: Some("k"),
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            json!({"topic": "orders", "event": "created", "data": {"id": 7}})
        );
        let unnamed = Event { event: None, data: json!("text"), ..event };
        assert_eq!(serde_json::to_value(&unnamed).unwrap(), json!({"topic": "orders", "data": "text"}));
    }

    #[test]
    fn publish_goes_under_the_base_url_whatever_its_trailing_slash() {
        let under = |base: &str| publish_url(&base.parse().unwrap()).map(String::from);
        assert_eq!(under("http://127.0.0.1:3000").unwrap(), "http://127.0.0.1:3000/publish");
        assert_eq!(under("https://example.com/herald").unwrap(), "https://example.com/herald/publish");
        assert_eq!(under("https://example.com/herald/").unwrap(), "https://example.com/herald/publish");
        assert_eq!(under("ftp://example.com"), Err(PublishError::NotHttp("ftp://example.com/".to_owned())));
    }

    #[tokio::test]
    async fn a_key_that_no_header_can_carry_is_refused_before_any_attempt() {
        // Nothing listens on port 1: were it sent, each attempt would fail and be waited on.
        let herald = "http://127.0.0.1:1".parse().unwrap();
        let event = Event { topic: "orders", event: None, data: json!("x"), idempotency_key: Some("a\nb") };
        let started = std::time::Instant::now();
        let refused = publish(&reqwest::Client::new(), &herald, "token", &event, 5).await;
        assert_eq!(refused, Err(PublishError::NotAHeader("idempotency key")));
        let no_key = Event { idempotency_key: None, ..event };
        let refused = publish(&reqwest::Client::new(), &herald, "tok\u{1}en", &no_key, 5).await;
        assert_eq!(refused, Err(PublishError::NotAHeader("token")));
        assert!(started.elapsed() < NO_ANSWER_WAIT, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn an_answer_no_retry_can_change_counts_the_attempts_made() {
        // A stand-in that asks for a retry, then fails as a proxy does.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let herald = format!("http://{}", listener.local_addr().unwrap()).parse().unwrap();
        tokio::spawn(async move {
            for answer in [
                "HTTP/1.1 503 Service Unavailable\r\nretry-after: 0\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                "HTTP/1.1 502 Bad Gateway\r\ncontent-length: 3\r\nconnection: close\r\n\r\nbad",
            ] {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = [0; 4096];
                let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut request).await;
                tokio::io::AsyncWriteExt::write_all(&mut socket, answer.as_bytes()).await.unwrap();
            }
        });
        let event = Event { topic: "orders", event: None, data: json!("x"), idempotency_key: None };
        let failed = publish(&reqwest::Client::new(), &herald, "token", &event, 5).await;
        assert_eq!(
            failed,
            Err(PublishError::Unavailable { attempts: 2, reason: "502 Bad Gateway error: bad".to_owned() })
        );
    }

    #[test]
    fn herald_errors_are_read_and_anything_else_is_shown_as_it_came() {
        assert_eq!(
            describe(br#"{"error":"forbidden","message":"topic session.x is private"}"#),
            ("forbidden".to_owned(), "topic session.x is private".to_owned())
        );
        assert_eq!(
            describe(b"<html>Bad Gateway</html>"),
            ("error".to_owned(), "<html>Bad Gateway</html>".to_owned())
        );
    }
}
