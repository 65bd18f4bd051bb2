//! `GET /events`: topics on one connection, replay with `Last-Event-ID`, resets on gaps, limits.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

use crate::helpers::{next_event, spawn_app, spawn_app_with, PATIENCE};

#[tokio::test]
async fn events_delivers_the_published_events_of_its_topics_in_order() {
    let app = spawn_app().await;
    let mut events = app.subscribe("/events?topic=a&topic=b").await;

    let first = app.publish_ok("a", "one").await;
    app.publish_ok("elsewhere", "not for us").await;
    let second = app.publish_ok("b", "two").await;

    let got = [next_event(&mut events).await, next_event(&mut events).await];
    assert_eq!((got[0].id.as_str(), got[0].data.as_str()), (first.as_str(), "one"));
    assert_eq!((got[1].id.as_str(), got[1].data.as_str()), (second.as_str(), "two"));
}

#[tokio::test]
async fn a_reconnect_with_last_event_id_replays_what_was_missed_then_goes_live() {
    let app = spawn_app().await;
    let mut events = app.subscribe("/events?topic=jobs").await;
    app.publish_ok("jobs", "seen").await;
    let seen = next_event(&mut events).await;
    drop(events);

    let missed = [app.publish_ok("jobs", "missed 1").await, app.publish_ok("jobs", "missed 2").await];
    let mut resumed = app.subscribe_with("/events?topic=jobs", &[("Last-Event-ID", &seen.id)]).await;
    let live = app.publish_ok("jobs", "live").await;

    for (id, data) in [(&missed[0], "missed 1"), (&missed[1], "missed 2"), (&live, "live")] {
        let event = next_event(&mut resumed).await;
        assert_eq!((event.id.as_str(), event.data.as_str()), (id.as_str(), data));
    }
}

#[tokio::test]
async fn the_last_event_id_query_parameter_resumes_a_first_connection() {
    let app = spawn_app().await;
    let first = app.publish_ok("a", "old").await;
    let second = app.publish_ok("a", "new").await;

    let mut events = app.subscribe(&format!("/events?topic=a&lastEventId={first}")).await;

    let event = next_event(&mut events).await;
    assert_eq!((event.id, event.data), (second, "new".to_owned()));
}

#[tokio::test]
async fn ids_that_cannot_be_resumed_open_the_stream_with_a_reset_that_says_why() {
    let app = spawn_app_with(|config| config.history_len = 2).await;
    let first = app.publish_ok("a", "1").await;
    let mut latest = first.clone();
    for n in 2..=4 {
        latest = app.publish_ok("a", &n.to_string()).await;
    }
    let incarnation = first.split('-').next().unwrap().to_owned();

    for (last_event_id, reason) in [
        ("not-an-id".to_owned(), "malformed-id"),
        ("1-1".to_owned(), "other-incarnation"),
        (format!("{incarnation}-999"), "unknown-id"),
        (first.clone(), "expired"),
    ] {
        let mut events = app.subscribe_with("/events?topic=a", &[("Last-Event-ID", &last_event_id)]).await;
        let reset = next_event(&mut events).await;
        assert_eq!(reset.event, "reset", "{last_event_id}");
        let data: Value = serde_json::from_str(&reset.data).unwrap();
        assert_eq!(data["reason"], reason, "{last_event_id}");
        assert_eq!(reset.id, latest, "the reset moves the client to the latest id");

        latest = app.publish_ok("a", "after the reset").await;
        assert_eq!(next_event(&mut events).await.id, latest, "{last_event_id}: live events follow the reset");
    }
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_is_cut_off_and_told_to_reset_when_it_returns() {
    let app = spawn_app_with(|config| {
        config.queue_len = 4;
        config.history_len = 8;
    })
    .await;
    let response = app.get("/events?topic=firehose").await;
    assert_eq!(response.status(), 200);

    // Far more than the socket buffers and the queue hold, while this client reads nothing.
    let chunk = "x".repeat(32 * 1024);
    for _ in 0..400 {
        app.publish_ok("firehose", &chunk).await;
    }

    let mut events = eventsource_stream::Eventsource::eventsource(response.bytes_stream());
    let mut last_id = String::new();
    let drained = tokio::time::timeout(PATIENCE, async {
        while let Some(event) = events.next().await {
            last_id = event.expect("well-formed events").id;
        }
    })
    .await;
    assert!(drained.is_ok(), "the slow stream was not ended");
    assert!(!last_id.is_empty(), "the slow stream got no event before it ended");

    let mut resumed = app.subscribe_with("/events?topic=firehose", &[("Last-Event-ID", &last_id)]).await;
    let reset = next_event(&mut resumed).await;
    assert_eq!(reset.event, "reset");
    assert!(reset.data.contains("expired"), "{}", reset.data);

    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("\nherald_subscribers_lagged_total 1\n"), "{metrics}");
    assert!(metrics.contains("\nherald_resets_total 1\n"), "{metrics}");
    assert!(metrics.contains("\nherald_events_published_total 400\n"), "{metrics}");
}

#[tokio::test]
async fn bad_event_stream_requests_are_refused_with_a_json_error_naming_the_field() {
    let app = spawn_app_with(|config| config.max_topics = 3).await;
    // 5,000 distinct topics: about as many as fit in the longest URI the HTTP stack parses.
    let many = (0..5_000).map(|n| format!("topic={n}")).collect::<Vec<_>>().join("&");

    for (query, status, field) in [
        ("".to_owned(), 400, Some("topic")),
        ("topic=".to_owned(), 400, Some("topic")),
        ("topic=a%0Ab".to_owned(), 400, Some("topic")),
        ("topic=%FF".to_owned(), 400, Some("topic")),
        (format!("topic={}", "x".repeat(129)), 400, Some("topic")),
        ("topic=a&topic=b&topic=c&topic=d".to_owned(), 400, Some("topic")),
        (many, 400, Some("topic")),
        (format!("topic=session.{}", "0".repeat(32)), 403, None),
    ] {
        let response = app.get(&format!("/events?{query}")).await;
        assert_eq!(response.status(), status, "/events?{query:.60}");
        let body: Value = response.json().await.unwrap();
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
        if let Some(field) = field {
            assert_eq!(body["field"], field, "/events?{query:.60}");
        }
    }
}

#[tokio::test]
async fn streams_past_the_limit_get_503_with_retry_after() {
    let app = spawn_app_with(|config| config.max_subscribers = 2).await;
    let _first = app.subscribe("/events?topic=a").await;
    let _second = app.subscribe("/remote").await;

    for path in ["/events?topic=a", "/remote"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 503, "{path}");
        let retry_after =
            response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert!(retry_after.is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n > 0)), "{path}");
    }
}

#[tokio::test]
async fn heartbeats_are_comments_at_the_configured_interval() {
    let app = spawn_app_with(|config| config.keep_alive = Duration::from_millis(100)).await;

    let raw = crate::helpers::read_raw_until(app.get("/events?topic=quiet").await, |text| {
        text.matches("\n:\n").count() >= 2
    })
    .await;

    assert!(raw.starts_with("retry: "), "{raw:?}");
    assert!(raw.lines().all(|line| line.is_empty() || line.starts_with("retry: ") || line == ":"), "{raw:?}");
}

#[tokio::test]
async fn ten_thousand_topic_parameters_get_a_4xx_not_a_hang() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = spawn_app().await;
    // Longer than any URI the HTTP stack parses, so it is sent over a raw socket.
    let query = (0..10_000).map(|n| format!("topic={n}")).collect::<Vec<_>>().join("&");
    let mut socket = tokio::net::TcpStream::connect(app.address).await.unwrap();
    let request = format!("GET /events?{query} HTTP/1.1\r\nHost: herald\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();

    let mut answer = vec![];
    tokio::time::timeout(PATIENCE, socket.read_to_end(&mut answer)).await.expect("an answer").unwrap();
    let status_line = String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_owned();
    assert!(status_line.starts_with("HTTP/1.1 4"), "10,000 topics were answered with {status_line:?}");
}

#[tokio::test]
async fn a_client_address_past_its_stream_limit_gets_429_while_other_addresses_are_served() {
    let app = spawn_app_with(|config| config.max_streams_per_client = 2).await;
    let _first = app.subscribe("/events?topic=a").await;
    let _second = app.subscribe("/remote").await;

    let refused = app.get("/events?topic=a").await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("HERALD_MAX_STREAMS_PER_CLIENT"), "{body}");

    // Another loopback address is another client.
    let elsewhere =
        reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, 2])).build().unwrap();
    assert_eq!(elsewhere.get(app.url("/events?topic=a")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_busy_topic_does_not_reset_a_quiet_one() {
    let app = spawn_app_with(|config| config.history_len = 4).await;
    let before = app.publish_ok("warmup", "-").await;
    let quiet = app.publish_ok("quiet", "the one event").await;
    for n in 0..20 {
        app.publish_ok("busy", &n.to_string()).await;
    }

    let mut resumed = app.subscribe_with("/events?topic=quiet", &[("last-event-id", &before)]).await;

    let event = next_event(&mut resumed).await;
    assert_eq!(
        (event.event.as_str(), event.id.as_str(), event.data.as_str()),
        ("message", quiet.as_str(), "the one event")
    );
}
