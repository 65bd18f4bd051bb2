//! SSE conformance: whatever `/publish` accepts comes back equal through an independent parser
//! (`eventsource-stream`), and the bytes on the wire keep the WHATWG framing rules.

use futures::Stream;
use proptest::{prelude::*, test_runner::TestRunner};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::helpers::{next_event, read_raw_until, spawn_app, TestApp, RESERVED_EVENT_NAMES};

#[derive(Debug, Deserialize)]
struct Corpus {
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    event: Option<String>,
    data: String,
}

fn corpus() -> Vec<Case> {
    let text = include_str!("../fixtures/sse-corpus.json");
    serde_json::from_str::<Corpus>(text).expect("the corpus parses").cases
}

/// What a client must see: every CRLF and lone CR arrives as LF (as documented).
fn as_delivered(data: &str) -> String {
    data.replace("\r\n", "\n").replace('\r', "\n")
}

/// Publishes one payload; `Ok(id)` when accepted, `Err((status, answer))` when refused.
async fn publish(app: &TestApp, event: Option<&str>, data: &str) -> Result<String, (u16, Value)> {
    let mut body = json!({ "topic": "conformance", "data": data });
    if let Some(event) = event {
        body["event"] = json!(event);
    }
    match app.publish(body).await {
        (202, answer) => Ok(answer["id"].as_str().expect("an id").to_owned()),
        refused => Err(refused),
    }
}

async fn expect_round_trip<S, E>(app: &TestApp, events: &mut S, what: &str, event: Option<&str>, data: &str)
where
    S: Stream<Item = Result<eventsource_stream::Event, E>> + Unpin,
    E: std::fmt::Debug,
{
    let id = publish(app, event, data).await.unwrap_or_else(|refused| panic!("{what}: refused {refused:?}"));
    let got = next_event(events).await;
    assert_eq!(got.data, as_delivered(data), "{what}: data");
    assert_eq!(got.event, event.unwrap_or("message"), "{what}: event name");
    assert_eq!(got.id, id, "{what}: id");
}

#[tokio::test]
async fn every_payload_of_the_corpus_parses_back_equal() {
    let app = spawn_app().await;
    let mut events = app.subscribe("/events?topic=conformance").await;

    for case in corpus() {
        expect_round_trip(&app, &mut events, &case.name, case.event.as_deref(), &case.data).await;
    }
}

#[tokio::test]
async fn the_wire_keeps_the_framing_rules() {
    let app = spawn_app().await;
    let response = app.get("/events?topic=conformance").await;
    let cases = corpus();
    for case in &cases {
        publish(&app, case.event.as_deref(), &case.data).await.expect("the corpus is accepted");
    }

    let raw = read_raw_until(response, |text| {
        text.matches("\nid: ").count() == cases.len() && text.ends_with("\n\n")
    })
    .await;

    assert!(!raw.starts_with('\u{feff}'), "the stream starts with a BOM");
    assert!(!raw.contains('\r'), "a CR reached the wire, where it would end a line");
    assert!(raw.ends_with("\n\n"), "the last event does not end with a blank line");
    for line in raw.split('\n') {
        if let Some(retry) = line.strip_prefix("retry: ") {
            assert!(!retry.is_empty() && retry.bytes().all(|b| b.is_ascii_digit()), "retry {retry:?}");
        } else if let Some(id) = line.strip_prefix("id: ") {
            assert!(!id.is_empty() && !id.contains('\0'), "id {id:?}");
        } else {
            let known =
                line.is_empty() || line == ":" || line.starts_with("data: ") || line.starts_with("event: ");
            assert!(known, "unexpected line {line:.80?}");
        }
    }
}

/// Text that leans on what SSE framing finds hard: line breaks, NUL, BOM, spaces and colons.
fn tricky_text(max: usize) -> impl Strategy<Value = String> {
    let tricky = prop_oneof![
        4 => any::<char>(),
        1 => Just('\r'),
        1 => Just('\n'),
        1 => Just('\0'),
        1 => Just('\u{feff}'),
        1 => Just(' '),
        1 => Just(':'),
    ];
    prop::collection::vec(tricky, 0..max).prop_map(String::from_iter)
}

#[tokio::test(flavor = "multi_thread")]
async fn arbitrary_payloads_parse_back_equal_or_are_refused_with_400() {
    let app = spawn_app().await;
    // The runner takes a `Fn`; the stream is only ever used by one case at a time.
    let events = tokio::sync::Mutex::new(app.subscribe("/events?topic=conformance").await);
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(ProptestConfig { cases: 512, ..ProptestConfig::default() });

    let outcome = runner.run(&(prop::option::of(tricky_text(12)), tricky_text(256)), |(event, data)| {
        tokio::task::block_in_place(|| {
            handle.block_on(async {
                let valid_name = event.as_deref().is_none_or(|name| {
                    (1..=128).contains(&name.len())
                        && !name.contains(['\r', '\n', '\0'])
                        && !RESERVED_EVENT_NAMES.contains(&name)
                });
                if valid_name {
                    let mut events = events.lock().await;
                    expect_round_trip(&app, &mut *events, "a generated payload", event.as_deref(), &data)
                        .await;
                } else {
                    let (status, answer) = publish(&app, event.as_deref(), &data).await.expect_err("refused");
                    assert_eq!((status, answer["field"].as_str()), (400, Some("event")), "{event:?}");
                }
            })
        });
        Ok(())
    });
    outcome.unwrap();
}
