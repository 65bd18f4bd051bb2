//! `POST /publish`: authentication, validation, limits and idempotency.

use serde_json::{json, Value};

use crate::helpers::{next_event, spawn_app, spawn_app_with, RESERVED_EVENT_NAMES, TOKEN};

#[tokio::test]
async fn publish_answers_202_with_the_id_and_the_number_of_live_subscribers() {
    let app = spawn_app().await;
    let mut events = app.subscribe("/events?topic=orders").await;

    let (status, answer) =
        app.publish(json!({"topic": "orders", "event": "created", "data": {"n": 1}})).await;

    assert_eq!(status, 202);
    assert_eq!(answer["subscribers"], 1);
    let event = next_event(&mut events).await;
    assert_eq!(answer["id"], event.id.as_str());
    assert_eq!((event.event.as_str(), event.data.as_str()), ("created", r#"{"n":1}"#));
}

#[tokio::test]
async fn publish_is_disabled_with_503_when_no_token_is_configured() {
    let app = spawn_app_with(|config| config.publish_token = None).await;

    let response =
        app.http.post(app.url("/publish")).json(&json!({"topic": "a", "data": "x"})).send().await.unwrap();

    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("HERALD_PUBLISH_TOKEN"), "{body}");
}

#[tokio::test]
async fn bad_publish_requests_get_their_documented_status_and_a_json_error() {
    let app = spawn_app_with(|config| config.max_body = 1024).await;
    let good = json!({"topic": "a", "data": "x"}).to_string();
    let bearer = format!("Bearer {TOKEN}");

    struct Case<'a> {
        what: &'a str,
        authorization: Option<&'a str>,
        content_type: &'a str,
        body: String,
        idempotency_key: Option<&'a str>,
        status: u16,
        field: Option<&'a str>,
    }
    let case = |what, body: &str, status, field| Case {
        what,
        authorization: Some(&bearer),
        content_type: "application/json",
        body: body.to_owned(),
        idempotency_key: None,
        status,
        field,
    };
    let cases = [
        Case { authorization: None, ..case("no token", &good, 401, None) },
        Case { authorization: Some("Bearer wrong"), ..case("a wrong token", &good, 401, None) },
        Case { authorization: Some(TOKEN), ..case("a token without Bearer", &good, 401, None) },
        Case { content_type: "text/plain", ..case("not JSON", &good, 415, None) },
        case(
            "a body over the limit",
            &json!({"topic": "a", "data": "x".repeat(2000)}).to_string(),
            413,
            None,
        ),
        case("broken JSON", "{\"topic\": ", 400, Some("body")),
        case(
            "invalid UTF-8",
            "{\"topic\": \"a\", \"data\": \"\u{0}\"}".replace('\u{0}', "\u{fffd}").as_str(),
            202,
            None,
        ),
        case("a JSON array", "[1]", 400, Some("body")),
        case("no topic", r#"{"data": "x"}"#, 400, Some("topic")),
        case("a bad topic", r#"{"topic": "a b", "data": "x"}"#, 400, Some("topic")),
        case("a browser session's private topic", r#"{"topic": "session.0a1b", "data": "x"}"#, 403, None),
        case("no data", r#"{"topic": "a"}"#, 400, Some("data")),
        case("CR in the event name", r#"{"topic": "a", "event": "x\ry", "data": "x"}"#, 400, Some("event")),
        case(
            "NUL in the event name",
            r#"{"topic": "a", "event": "x\u0000", "data": "x"}"#,
            400,
            Some("event"),
        ),
        case("a reserved event name", r#"{"topic": "a", "event": "reset", "data": "x"}"#, 400, Some("event")),
        case("an unknown field", r#"{"topic": "a", "data": "x", "id": "7"}"#, 400, Some("body")),
        Case {
            idempotency_key: Some("has space"),
            ..case("a bad Idempotency-Key", &good, 400, Some("Idempotency-Key"))
        },
    ];

    for case in cases {
        let mut request = app
            .http
            .post(app.url("/publish"))
            .header("content-type", case.content_type)
            .body(case.body.clone());
        if let Some(authorization) = case.authorization {
            request = request.header("authorization", authorization);
        }
        if let Some(key) = case.idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), case.status, "{}", case.what);
        if case.status == 401 {
            assert_eq!(response.headers()["www-authenticate"], "Bearer", "{}", case.what);
        }
        let body: Value = response.json().await.unwrap_or_else(|_| panic!("{}: not JSON", case.what));
        if case.status != 202 {
            assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{}: {body}", case.what);
        }
        if let Some(field) = case.field {
            assert_eq!(body["field"], field, "{}: {body}", case.what);
        }
    }
}

#[tokio::test]
async fn every_name_herald_sends_itself_is_refused_so_no_publisher_can_spoof_a_reset_or_a_shutdown() {
    let app = spawn_app().await;
    let mut events = app.subscribe("/events?topic=a").await;

    for name in ["reset", "shutdown", "job", "error", "open"] {
        assert!(RESERVED_EVENT_NAMES.contains(&name), "{name} is documented as reserved");
        let (status, answer) = app.publish(json!({"topic": "a", "event": name, "data": "spoofed"})).await;

        assert_eq!(status, 400, "{name}: {answer}");
        assert_eq!(
            (answer["error"].as_str(), answer["field"].as_str()),
            (Some("reserved-event-name"), Some("event"))
        );
        assert!(answer["message"].as_str().unwrap().contains(name), "{answer}");
    }
    // Nothing of them reached the subscriber; names that merely resemble them are ordinary.
    let (status, answer) = app.publish(json!({"topic": "a", "event": "Reset", "data": "ours"})).await;
    assert_eq!(status, 202, "{answer}");
    let event = next_event(&mut events).await;
    assert_eq!((event.id.as_str(), event.event.as_str()), (answer["id"].as_str().unwrap(), "Reset"));
}

#[tokio::test]
async fn a_body_that_is_not_utf8_is_refused_with_400() {
    let app = spawn_app().await;

    let mut body = br#"{"topic": "a", "data": ""#.to_vec();
    body.extend_from_slice(&[0xff, 0xfe]);
    body.extend_from_slice(br#""}"#);
    let response = app
        .http
        .post(app.url("/publish"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 400);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["field"], "body");
}

#[tokio::test]
async fn the_same_idempotency_key_twice_is_delivered_once_and_answers_the_first_id() {
    let app = spawn_app().await;
    let mut events = app.subscribe("/events?topic=a").await;
    let send = |data: &'static str| {
        app.http
            .post(app.url("/publish"))
            .bearer_auth(TOKEN)
            .header("idempotency-key", "job-42-done")
            .json(&json!({"topic": "a", "data": data}))
            .send()
    };

    let first: Value = send("once").await.unwrap().json().await.unwrap();
    let second = send("once").await.unwrap();
    assert_eq!(second.status(), 202);
    let second: Value = second.json().await.unwrap();
    let after = app.publish_ok("a", "next").await;

    assert_eq!(second["id"], first["id"]);
    assert_eq!(second["duplicate"], true);
    assert_eq!(next_event(&mut events).await.data, "once");
    assert_eq!(next_event(&mut events).await.id, after, "the duplicate was delivered");
}

#[tokio::test]
async fn publishing_past_the_rate_limit_gets_503_with_retry_after() {
    let app = spawn_app_with(|config| config.max_publish_rate = 2).await;
    app.publish_ok("a", "1").await;
    app.publish_ok("a", "2").await;

    let response = app
        .http
        .post(app.url("/publish"))
        .bearer_auth(TOKEN)
        .json(&json!({"topic": "a", "data": "3"}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 503);
    let retry_after = response.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap();
    assert!(retry_after >= 1, "Retry-After: {retry_after}");
    let body: Value = response.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("HERALD_MAX_PUBLISH_RATE"), "{body}");
}

/// `POST /publish` of `data` to `topic` with the Idempotency-Key `key`: the status and the answer.
async fn publish_with_key(app: &crate::helpers::TestApp, key: &str, topic: &str, data: &str) -> (u16, Value) {
    let response = app
        .http
        .post(app.url("/publish"))
        .bearer_auth(TOKEN)
        .header("idempotency-key", key)
        .json(&json!({"topic": topic, "data": data}))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn an_idempotency_key_belongs_to_its_topic_and_publishes_on_another_one_too() {
    let app = spawn_app().await;
    let mut on_b = app.subscribe("/events?topic=b").await;

    let (_, first) = publish_with_key(&app, "order-7", "a", "x").await;
    let (status, second) = publish_with_key(&app, "order-7", "b", "x").await;

    assert_eq!((status, &second["duplicate"]), (202, &json!(false)), "{second}");
    assert_ne!(second["id"], first["id"]);
    assert_eq!(next_event(&mut on_b).await.id, second["id"].as_str().unwrap());
}

#[tokio::test]
async fn an_idempotency_key_reused_for_a_different_event_gets_422_and_publishes_nothing() {
    let app = spawn_app().await;
    let mut events = app.subscribe("/events?topic=a").await;

    let (_, first) = publish_with_key(&app, "order-7", "a", "created").await;
    let (status, refused) = publish_with_key(&app, "order-7", "a", "cancelled").await;
    let after = app.publish_ok("a", "next").await;

    assert_eq!(status, 422, "{refused}");
    assert!(refused["message"].as_str().unwrap().contains(first["id"].as_str().unwrap()), "{refused}");
    assert_eq!(next_event(&mut events).await.data, "created");
    assert_eq!(next_event(&mut events).await.id, after, "the refused event was delivered");
}
