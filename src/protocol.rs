//! What Herald's streams tell a client, shared by the server that writes it and the page that
//! reads it, so the two cannot drift apart: the event names, a tick's wire format, a job's view,
//! and the `reset` and `shutdown` notices, decoded once into [`PageEvent`].

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// The event name of a job's change, on the session's private topic.
pub const JOB_EVENT: &str = "job";
/// The event name that opens a stream whose replay could not be exact.
pub const RESET_EVENT: &str = "reset";
/// The event name of a stream's last event when the server shuts down.
pub const SHUTDOWN_EVENT: &str = "shutdown";
/// The event names a publisher may not use (`POST /publish` answers 400): those Herald sends
/// itself, which a client must be able to trust, and those an `EventSource` gives a meaning of
/// its own (a named `error` or `open` event reaches the `onerror` and `onopen` handlers).
#[cfg_attr(not(feature = "ssr"), allow(dead_code))] // only the server checks them
/// (`token-expired` is the server's `auth::TOKEN_EXPIRED_EVENT`; a unit test there holds the two
/// the same.)
pub const RESERVED_EVENT_NAMES: [&str; 8] =
    [RESET_EVENT, SHUTDOWN_EVENT, JOB_EVENT, "token-expired", JOIN_EVENT, LEAVE_EVENT, "error", "open"];
/// The event names of a subscriber's arrival on a topic and its departure, which Herald
/// publishes to the topics `--presence-events` names.
#[cfg_attr(not(feature = "ssr"), allow(dead_code))]
pub const JOIN_EVENT: &str = "join";
#[cfg_attr(not(feature = "ssr"), allow(dead_code))]
pub const LEAVE_EVENT: &str = "leave";
/// Ticks are unnamed events, which an `EventSource` delivers as `message`.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))] // the server writes no name for ticks
pub const TICK_EVENT: &str = "message";

/// One reading of the server's clock: its UTC time, sent as RFC 3339 with milliseconds and a `Z`
/// suffix, for example `2026-11-25T17:30:01.000Z`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tick(pub DateTime<Utc>);

impl Tick {
    pub fn encode(self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// `None` when `data` is not RFC 3339.
    pub fn decode(data: &str) -> Option<Self> {
        DateTime::parse_from_rfc3339(data).ok().map(|instant| Self(instant.with_timezone(&Utc)))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Running,
    Done,
    Failed,
}

impl JobStatus {
    pub fn label(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    pub fn is_finished(self) -> bool {
        self != Self::Running
    }
}

/// A job as the page shows it: in the answers of the job server functions and in `job` events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    pub id: String,
    pub status: JobStatus,
    pub started_at: DateTime<Utc>,
    /// How long the job took, once it has finished.
    pub took_ms: Option<u64>,
    /// The worker's result as JSON text, once it has finished.
    pub result: Option<String>,
}

/// A session's jobs, newest first, and the id of the latest relayed event when they were read:
/// a stream opened with that id replays whatever changed after the listing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobListing {
    pub jobs: Vec<JobView>,
    pub as_of: String,
}

/// Why a resuming stream could not be given exactly what it missed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResetReason {
    /// The `Last-Event-ID` is not in the format of this server's ids.
    MalformedId,
    /// The id comes from another run of the server.
    OtherIncarnation,
    /// The id is from this run but ahead of anything published.
    UnknownId,
    /// Events after the id have already left the history.
    Expired,
    /// More events (or bytes) were missed than one replay may carry (`--max-replay-events`,
    /// `--max-replay-bytes`).
    ReplayTooLarge,
}

impl ResetReason {
    #[cfg_attr(not(feature = "ssr"), allow(dead_code))]
    pub const ALL: [Self; 5] =
        [Self::MalformedId, Self::OtherIncarnation, Self::UnknownId, Self::Expired, Self::ReplayTooLarge];

    /// The reason as it is written on the wire, e.g. `malformed-id`.
    #[cfg_attr(not(feature = "ssr"), allow(dead_code))]
    pub fn name(self) -> &'static str {
        match self {
            Self::MalformedId => "malformed-id",
            Self::OtherIncarnation => "other-incarnation",
            Self::UnknownId => "unknown-id",
            Self::Expired => "expired",
            Self::ReplayTooLarge => "replay-too-large",
        }
    }

    pub fn explanation(self) -> &'static str {
        match self {
            Self::MalformedId => "the Last-Event-ID is not an id this server issued",
            Self::OtherIncarnation => {
                "the Last-Event-ID comes from an earlier run of the server, or of its Redis log before it lost events"
            }
            Self::UnknownId => "the Last-Event-ID is ahead of every event published",
            Self::Expired => "events after the Last-Event-ID have left the history",
            Self::ReplayTooLarge => "more events were missed than one replay carries",
        }
    }
}

/// The data of a `reset` event: the client should refetch its state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetNotice {
    pub reason: ResetReason,
    pub message: String,
}

impl From<ResetReason> for ResetNotice {
    fn from(reason: ResetReason) -> Self {
        Self { reason, message: reason.explanation().to_owned() }
    }
}

/// The data of a `shutdown` event: the stream ends next, and a reconnect resumes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShutdownNotice {
    pub message: String,
}

impl Default for ShutdownNotice {
    fn default() -> Self {
        Self { message: "the server is shutting down; reconnect to resume".to_owned() }
    }
}

/// Everything the page's stream (`/remote`) can carry, decoded. Only the browser decodes; the
/// server's tests check that it decodes what the server writes.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub enum PageEvent {
    Tick(Tick),
    Job(JobView),
    Reset(ResetNotice),
    Shutdown(ShutdownNotice),
}

/// What one page's stream carries, decoded.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub(crate) trait StreamEvent: Sized + 'static {
    /// The event names to listen for.
    const NAMES: &'static [&'static str];

    /// Decodes the data of an event named `name`; the error says what did not fit.
    fn decode(name: &str, data: &str) -> Result<Self, String>;
}

impl StreamEvent for PageEvent {
    const NAMES: &'static [&'static str] = &[TICK_EVENT, JOB_EVENT, RESET_EVENT, SHUTDOWN_EVENT];

    fn decode(name: &str, data: &str) -> Result<Self, String> {
        let json_error = |err: serde_json::Error| format!("a {name} event did not parse ({err}): {data}");
        match name {
            TICK_EVENT => Tick::decode(data).map(Self::Tick).ok_or_else(|| format!("not a tick: {data}")),
            JOB_EVENT => serde_json::from_str(data).map(Self::Job).map_err(json_error),
            RESET_EVENT => serde_json::from_str(data).map(Self::Reset).map_err(json_error),
            SHUTDOWN_EVENT => serde_json::from_str(data).map(Self::Shutdown).map_err(json_error),
            other => Err(format!("unexpected event {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "ssr")]
    #[test]
    fn publishers_cannot_send_the_token_expired_notice() {
        assert!(RESERVED_EVENT_NAMES.contains(&crate::server::auth::TOKEN_EXPIRED_EVENT));
    }
    use chrono::TimeZone;

    fn sample() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 17, 30, 1).unwrap() + chrono::Duration::milliseconds(7)
    }

    fn job(status: JobStatus) -> JobView {
        JobView { id: "a".into(), status, started_at: sample(), took_ms: None, result: None }
    }

    #[test]
    fn a_tick_is_rfc3339_with_milliseconds_in_utc() {
        assert_eq!(Tick(sample()).encode(), "2026-11-25T17:30:01.007Z");
    }

    #[test]
    fn a_tick_decodes_back_to_what_was_encoded() {
        assert_eq!(Tick::decode(&Tick(sample()).encode()), Some(Tick(sample())));
    }

    #[test]
    fn text_that_is_not_a_timestamp_is_not_a_tick() {
        assert_eq!(Tick::decode("not a time"), None);
        assert_eq!(Tick::decode(""), None);
    }

    #[test]
    fn job_views_travel_as_json_with_lowercase_statuses_and_real_timestamps() {
        let text = serde_json::to_string(&job(JobStatus::Done)).unwrap();
        assert!(text.contains(r#""status":"done""#), "{text}");
        assert!(text.contains(r#""started_at":"2026-11-25T17:30:01.007Z""#), "{text}");
        assert_eq!(serde_json::from_str::<JobView>(&text).unwrap(), job(JobStatus::Done));
    }

    #[test]
    fn reset_reasons_are_written_in_kebab_case() {
        let text = serde_json::to_string(&ResetNotice::from(ResetReason::MalformedId)).unwrap();
        assert!(text.starts_with(r#"{"reason":"malformed-id","message":"#), "{text}");
        for reason in [
            ResetReason::MalformedId,
            ResetReason::OtherIncarnation,
            ResetReason::UnknownId,
            ResetReason::Expired,
            ResetReason::ReplayTooLarge,
        ] {
            assert_eq!(serde_json::to_value(reason).unwrap(), reason.name());
        }
    }

    #[test]
    fn every_page_event_decodes_from_what_the_server_writes() {
        let tick = Tick(sample());
        let reset = ResetNotice::from(ResetReason::Expired);
        let shutdown = ShutdownNotice::default();
        for (name, data, expected) in [
            (TICK_EVENT, tick.encode(), PageEvent::Tick(tick)),
            (
                JOB_EVENT,
                serde_json::to_string(&job(JobStatus::Failed)).unwrap(),
                PageEvent::Job(job(JobStatus::Failed)),
            ),
            (RESET_EVENT, serde_json::to_string(&reset).unwrap(), PageEvent::Reset(reset.clone())),
            (
                SHUTDOWN_EVENT,
                serde_json::to_string(&shutdown).unwrap(),
                PageEvent::Shutdown(shutdown.clone()),
            ),
        ] {
            assert_eq!(PageEvent::decode(name, &data), Ok(expected), "{name}");
        }
    }

    #[test]
    fn what_does_not_fit_its_name_is_an_error_that_says_so() {
        for (name, data) in [(TICK_EVENT, "soon"), (JOB_EVENT, "{}"), (RESET_EVENT, "[]"), ("other", "x")] {
            let err = PageEvent::decode(name, data).unwrap_err();
            assert!(err.contains(data) || err.contains(name), "{name}: {err}");
        }
    }
}
