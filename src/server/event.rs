//! The relayed event and its parts, validated once at the edge, and its SSE wire format.
//!
//! Handlers parse untrusted text into [`Topic`], [`EventName`], [`EventId`] and
//! [`IdempotencyKey`] (directly, or through serde, which validates the same way) and only then
//! build frames, so nothing downstream can emit a field that breaks the stream (axum's own
//! `Event` panics on CR or LF in an id or a name; these types make that state unrepresentable).
//!
//! Data is UTF-8 text. Its line breaks (CRLF, lone CR, lone LF) reach clients as LF: SSE has no
//! way to carry a CR inside data, since every one of them ends a line.

use std::{borrow::Cow, fmt, str::FromStr};

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;

/// Why a field was refused; the HTTP layer turns it into a 400 that names the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidField {
    pub field: Cow<'static, str>,
    pub reason: String,
}

impl InvalidField {
    pub fn new(field: impl Into<Cow<'static, str>>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }
}

/// The reason alone: serde puts it after the path of the field it refused.
impl fmt::Display for InvalidField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for InvalidField {}

/// A topic name: 1 to 128 characters from `A–Z a–z 0–9 - _ . :`, in segments separated by `.`
/// that topic patterns match one by one (see `server::auth::patterns`).
///
/// Topics that start with [`Topic::PRIVATE_PREFIX`] belong to one browser session each.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Topic(String);

impl Topic {
    pub const MAX_LEN: usize = 128;
    pub const PRIVATE_PREFIX: &'static str = "session.";

    pub fn parse(text: &str) -> Result<Self, InvalidField> {
        if text.is_empty() || text.len() > Self::MAX_LEN {
            return Err(InvalidField::new(
                "topic",
                format!("must be 1 to {} characters long", Self::MAX_LEN),
            ));
        }
        // `/` is refused rather than read as a second separator: patterns split on `.` alone,
        // so `orders/42` and `orders.42` cannot both exist and mean different things to `orders.*`.
        if text.contains('/') {
            return Err(InvalidField::new(
                "topic",
                "may not hold '/': segments are separated by '.', so write orders.42, not orders/42",
            ));
        }
        if let Some(bad) =
            text.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
        {
            return Err(InvalidField::new(
                "topic",
                format!("may only hold letters, digits, '-', '_', '.' and ':' (found {bad:?})"),
            ));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn is_private(&self) -> bool {
        self.0.starts_with(Self::PRIVATE_PREFIX)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Topic {
    type Error = InvalidField;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An event name (the SSE `event:` field): 1 to 128 characters, none of them CR, LF or NUL.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct EventName(String);

impl EventName {
    pub const MAX_LEN: usize = 128;

    pub fn parse(text: &str) -> Result<Self, InvalidField> {
        if text.is_empty() || text.len() > Self::MAX_LEN {
            return Err(InvalidField::new("event", format!("must be 1 to {} bytes long", Self::MAX_LEN)));
        }
        if text.contains(['\r', '\n', '\0']) {
            return Err(InvalidField::new("event", "must not contain CR, LF or NUL"));
        }
        Ok(Self(text.to_owned()))
    }

    /// One of the server's own names, such as [`crate::protocol::JOB_EVENT`].
    pub fn known(name: &'static str) -> Self {
        Self::parse(name).expect("the server's own event names are valid")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EventName {
    type Error = InvalidField;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

/// An `Idempotency-Key`: 1 to 255 visible ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct IdempotencyKey(String);

impl TryFrom<String> for IdempotencyKey {
    type Error = InvalidField;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(text.as_bytes())
    }
}

impl IdempotencyKey {
    pub fn parse(bytes: &[u8]) -> Result<Self, InvalidField> {
        if bytes.is_empty() || bytes.len() > 255 || !bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
            return Err(InvalidField::new("Idempotency-Key", "must be 1 to 255 visible ASCII characters"));
        }
        Ok(Self(String::from_utf8(bytes.to_vec()).expect("visible ASCII is UTF-8")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An event to publish: where it goes, what it is called, and what it says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    pub topic: Topic,
    pub name: Option<EventName>,
    pub data: String,
}

impl NewEvent {
    /// An unnamed event: a `message` to an `EventSource`.
    pub fn new(topic: Topic, data: impl Into<String>) -> Self {
        Self { topic, name: None, data: data.into() }
    }

    pub fn named(self, name: EventName) -> Self {
        Self { name: Some(name), ..self }
    }
}

/// An event id: the hub's incarnation and a sequence number, written `<incarnation>-<seq>`.
///
/// Sequence numbers grow by one per event across all topics, so an id names one position in one
/// log; the incarnation tells ids of this hub from those of an earlier run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId {
    pub incarnation: u64,
    pub seq: u64,
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.incarnation, self.seq)
    }
}

impl FromStr for EventId {
    type Err = InvalidField;

    /// Parses a `Last-Event-ID`. At most 41 bytes: two `u64`s and a dash.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let malformed = || InvalidField::new("Last-Event-ID", "is not an id this server issued");
        if text.len() > 41 {
            return Err(malformed());
        }
        let (incarnation, seq) = text.split_once('-').ok_or_else(malformed)?;
        let number = |part: &str| {
            (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse::<u64>().ok())
                .flatten()
                .ok_or_else(malformed)
        };
        Ok(Self { incarnation: number(incarnation)?, seq: number(seq)? })
    }
}

/// Frames one event as SSE bytes, once, to be shared by every subscriber.
///
/// `id:` and `event:` are written only when given; every line of `data` becomes a `data:` line,
/// so empty data still fires an event (`data: ` alone), and the frame ends with a blank line.
pub fn frame(id: Option<EventId>, event: Option<&EventName>, data: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 64);
    if let Some(id) = id {
        out.put_slice(b"id: ");
        out.put_slice(id.to_string().as_bytes());
        out.put_u8(b'\n');
    }
    if let Some(event) = event {
        out.put_slice(b"event: ");
        out.put_slice(event.as_str().as_bytes());
        out.put_u8(b'\n');
    }
    for line in data_lines(data) {
        out.put_slice(b"data: ");
        out.put_slice(line.as_bytes());
        out.put_u8(b'\n');
    }
    out.put_u8(b'\n');
    out.freeze()
}

/// An event read back from the frame [`frame`] wrote: what the history API answers with.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FramedEvent {
    pub id: String,
    /// `message` for an event published without a name, as an `EventSource` names it.
    pub event: String,
    /// The data, its line breaks as LF (as subscribers get it).
    pub data: String,
}

/// Reads back one of this server's own frames: `id: `, `event: ` and `data: ` lines, as
/// [`frame`] writes them (any other line is skipped).
pub fn unframe(frame: &[u8]) -> FramedEvent {
    let text = String::from_utf8_lossy(frame);
    let (mut id, mut event, mut data) = (String::new(), None, None::<String>);
    for line in text.split('\n') {
        if let Some(value) = line.strip_prefix("id: ") {
            id = value.to_owned();
        } else if let Some(value) = line.strip_prefix("event: ") {
            event = Some(value.to_owned());
        } else if let Some(value) = line.strip_prefix("data: ") {
            data = Some(match data {
                None => value.to_owned(),
                Some(before) => before + "\n" + value,
            });
        }
    }
    FramedEvent { id, event: event.unwrap_or_else(|| "message".to_owned()), data: data.unwrap_or_default() }
}

/// `frame` with a first data line that names `topic`, so the event's data reads
/// `<topic>\n<data>`: what a subscriber that asked for topics gets. A topic holds no line break,
/// so the first line of the data is always the whole topic.
pub fn with_topic_line(frame: &Bytes, topic: &Topic) -> Bytes {
    // The `id:` and `event:` lines come first and hold no line break: the data starts at the
    // first line that begins with `data: `.
    let start = if frame.starts_with(b"data: ") {
        0
    } else {
        frame.windows(7).position(|window| window == b"\ndata: ").map_or(frame.len(), |at| at + 1)
    };
    let mut out = BytesMut::with_capacity(frame.len() + topic.as_str().len() + 7);
    out.put_slice(&frame[..start]);
    out.put_slice(b"data: ");
    out.put_slice(topic.as_str().as_bytes());
    out.put_u8(b'\n');
    out.put_slice(&frame[start..]);
    out.freeze()
}

/// The `retry:` field that opens a stream: all digits, in milliseconds.
pub fn retry_frame(millis: u64) -> Bytes {
    Bytes::from(format!("retry: {millis}\n\n"))
}

/// A comment line: ignored by clients, it keeps proxies from timing an idle stream out.
pub const KEEP_ALIVE: Bytes = Bytes::from_static(b":\n\n");

/// Splits on CRLF, lone CR and lone LF alike, as an SSE parser will.
fn data_lines(data: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let text = rest?;
        match text.find(['\r', '\n']) {
            None => {
                rest = None;
                Some(text)
            }
            Some(at) => {
                let skip = if text[at..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&text[at + skip..]);
                Some(&text[..at])
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn a_frame_reads_back_as_the_event_it_framed(
            seq in 1u64..u64::MAX,
            name in proptest::option::of("[a-z][a-z0-9._-]{0,20}"),
            data in "(\\PC|\r|\n){0,64}",
        ) {
            let id = EventId { incarnation: 1_800_000_000_000, seq };
            let name = name.map(|name| EventName::parse(&name).unwrap());
            let read = unframe(&frame(Some(id), name.as_ref(), &data));
            prop_assert_eq!(read.id, id.to_string());
            prop_assert_eq!(read.event, name.map_or("message".to_owned(), |name| name.as_str().to_owned()));
            prop_assert_eq!(read.data, data_lines(&data).collect::<Vec<_>>().join("\n"));
        }
    }

    fn text(bytes: Bytes) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn topics_accept_the_documented_safe_set() {
        for ok in ["a", "jobs", "orders.eu-1:created_v2", &"x".repeat(128)] {
            assert!(Topic::parse(ok).is_ok(), "{ok:?} was refused");
        }
    }

    #[test]
    fn topics_refuse_empty_long_and_unsafe_names() {
        for bad in ["", &"x".repeat(129), "a b", "a/b", "a\nb", "é", "a\0", "a,b", "*"] {
            let err = Topic::parse(bad).unwrap_err();
            assert_eq!(err.field, "topic", "{bad:?}");
        }
    }

    #[test]
    fn a_slash_is_refused_with_the_dotted_name_to_write_instead() {
        let err = Topic::parse("orders/42").unwrap_err();
        assert!(err.reason.contains("orders.42"), "{err:?}");
    }

    #[test]
    fn private_topics_are_recognised_by_their_prefix() {
        assert!(Topic::parse("session.abc").unwrap().is_private());
        assert!(!Topic::parse("sessions").unwrap().is_private());
    }

    #[test]
    fn event_names_refuse_line_breaks_and_nul() {
        for bad in ["", "a\nb", "a\rb", "a\0b", &"e".repeat(129)] {
            assert_eq!(EventName::parse(bad).unwrap_err().field, "event", "{bad:?}");
        }
        assert!(EventName::parse("job done: ✓").is_ok());
    }

    #[test]
    fn names_deserialize_through_the_same_validation() {
        assert_eq!(serde_json::from_str::<Topic>(r#""orders""#).unwrap(), Topic::parse("orders").unwrap());
        for bad in [r#""a b""#, r#""""#, "7"] {
            assert!(serde_json::from_str::<Topic>(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<EventName>(r#""a\nb""#).is_err());
    }

    #[test]
    fn idempotency_keys_are_visible_ascii_of_bounded_length() {
        assert!(IdempotencyKey::parse(b"order-7-created").is_ok());
        for bad in [&b""[..], b"has space", b"tab\t", "é".as_bytes(), &[b'k'; 256]] {
            assert_eq!(IdempotencyKey::parse(bad).unwrap_err().field, "Idempotency-Key", "{bad:?}");
        }
    }

    #[test]
    fn event_ids_round_trip_and_refuse_anything_else() {
        let id = EventId { incarnation: 1_764_000_000_000, seq: 42 };
        assert_eq!(id.to_string().parse::<EventId>(), Ok(id));
        for bad in [
            "",
            "-",
            "1-",
            "-1",
            "1",
            "a-1",
            "1-a",
            "1-2-3",
            "+1-2",
            "1- 2",
            "99999999999999999999-1",
            &"1".repeat(60),
        ] {
            assert!(bad.parse::<EventId>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn a_frame_carries_id_name_and_one_data_line_per_line() {
        let id = EventId { incarnation: 7, seq: 3 };
        let name = EventName::parse("job").unwrap();
        assert_eq!(
            text(frame(Some(id), Some(&name), "a\r\nb\rc\nd")),
            "id: 7-3\nevent: job\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
        );
    }

    #[test]
    fn empty_data_still_makes_an_event() {
        assert_eq!(text(frame(None, None, "")), "data: \n\n");
    }

    #[test]
    fn trailing_and_doubled_line_breaks_are_kept_as_empty_lines() {
        assert_eq!(text(frame(None, None, "a\n\nb\n")), "data: a\ndata: \ndata: b\ndata: \n\n");
    }

    #[test]
    fn leading_spaces_and_colons_survive_because_a_space_follows_every_field_colon() {
        assert_eq!(text(frame(None, None, " x: y")), "data:  x: y\n\n");
    }

    #[test]
    fn a_topic_line_opens_the_data_of_named_unnamed_and_empty_events() {
        let topic = Topic::parse("user.42").unwrap();
        let name = EventName::parse("data: not a data line").unwrap();
        let id = EventId { incarnation: 1, seq: 2 };
        for (framed, expected) in [
            (
                frame(Some(id), Some(&name), "a\nb"),
                "id: 1-2\nevent: data: not a data line\ndata: user.42\ndata: a\ndata: b\n\n",
            ),
            (frame(Some(id), None, ""), "id: 1-2\ndata: user.42\ndata: \n\n"),
            (frame(None, None, "x"), "data: user.42\ndata: x\n\n"),
        ] {
            assert_eq!(text(with_topic_line(&framed, &topic)), expected);
        }
    }

    #[test]
    fn retry_is_all_digits() {
        assert_eq!(text(retry_frame(2500)), "retry: 2500\n\n");
    }
}
