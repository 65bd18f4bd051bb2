//! `GET /remote`: the live clock stream, as an SSE client sees it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::helpers::{next_event, read_raw_until, spawn_app, spawn_app_with, Tick};

fn tick_time(data: &str) -> DateTime<Utc> {
    Tick::decode(data).unwrap_or_else(|| panic!("{data:?} is not an RFC 3339 tick")).0
}

#[tokio::test]
async fn remote_answers_with_event_stream_headers() {
    let app = spawn_app().await;

    let response = app.get("/remote").await;

    assert_eq!(response.status(), 200);
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(header("content-type").as_deref(), Some("text/event-stream"));
    assert_eq!(header("cache-control").as_deref(), Some("no-cache"));
    assert_eq!(header("x-accel-buffering").as_deref(), Some("no"));
}

#[tokio::test]
async fn remote_sends_its_first_tick_within_200_ms_of_connecting() {
    let app = spawn_app().await;

    let started = Instant::now();
    let mut events = app.subscribe("/remote").await;
    let first = next_event(&mut events).await;
    let waited = started.elapsed();

    assert!(waited < Duration::from_millis(200), "first tick after {waited:?}");
    let sent_at = tick_time(&first.data);
    let age = Utc::now() - sent_at;
    assert!(
        age < chrono::TimeDelta::milliseconds(200),
        "the first tick {sent_at} is {age} old: not the current time"
    );
}

#[tokio::test]
async fn remote_ticks_arrive_one_second_apart_on_whole_seconds() {
    let app = spawn_app().await;
    let mut events = app.subscribe("/remote").await;
    // The first tick is immediate; the wall-clock cadence starts with the second.
    let first = tick_time(&next_event(&mut events).await.data);

    let mut ticks = vec![];
    for _ in 0..3 {
        let event = next_event(&mut events).await;
        ticks.push((Instant::now(), tick_time(&event.data)));
    }

    assert!(ticks[0].1 > first, "ticks go back in time: {first} then {}", ticks[0].1);
    for (_, sent) in &ticks {
        assert!(sent.timestamp_subsec_millis() < 150, "tick {sent} is not on the second");
    }
    for pair in ticks.windows(2) {
        let arrived_apart = pair[1].0 - pair[0].0;
        let stamped_apart = (pair[1].1 - pair[0].1).to_std().expect("increasing ticks");
        for gap in [arrived_apart, stamped_apart] {
            assert!(
                gap > Duration::from_millis(850) && gap < Duration::from_millis(1150),
                "ticks {} and {} are {gap:?} apart",
                pair[0].1,
                pair[1].1
            );
        }
    }
}

#[tokio::test]
async fn remote_ticks_are_unnamed_messages_without_ids() {
    let app = spawn_app().await;
    let mut events = app.subscribe("/remote").await;

    for _ in 0..2 {
        let event = next_event(&mut events).await;
        assert_eq!(event.event, "message");
        assert_eq!(event.id, "", "a tick set the last event id");
        tick_time(&event.data);
    }
}

#[tokio::test]
async fn remote_opens_with_a_retry_hint_and_keeps_idle_streams_alive_with_comments() {
    let app = spawn_app_with(|config| {
        config.retry = Duration::from_millis(2500);
        config.keep_alive = Duration::from_millis(100);
    })
    .await;

    let raw = read_raw_until(app.get("/remote").await, |text| text.contains("\n\n:\n\n")).await;

    let (opening, rest) = raw.split_once("\n\n").expect("a first block");
    let retry: u64 = opening
        .strip_prefix("retry: ")
        .and_then(|millis| millis.parse().ok())
        .unwrap_or_else(|| panic!("the stream opened with {opening:?}"));
    assert!((1250..=3750).contains(&retry), "retry {retry} is not 2500 ms ± 50%");
    let first_tick = rest.split("\n\n").next().unwrap();
    assert!(first_tick.starts_with("data: "), "the first event is {first_tick:?}");
    assert!(!raw.lines().any(|line| line.starts_with("id:")), "a tick carried an id: {raw:?}");
}

#[tokio::test]
async fn remote_ignores_query_parameters_it_does_not_know() {
    let app = spawn_app().await;

    let mut events = app.subscribe("/remote?topic=jobs&x=%0A&y").await;

    tick_time(&next_event(&mut events).await.data);
}

#[tokio::test]
async fn remote_refuses_other_methods_with_405() {
    let app = spawn_app().await;

    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = app.http.request(method.clone(), app.url("/remote")).send().await.unwrap();
        assert_eq!(response.status(), 405, "{method} /remote");
        let allow = response.headers().get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(allow.contains("GET"), "{method} /remote allows {allow:?}");
    }
}
