//! `POST /publish` with several events at once: a batch (a JSON array) and a broadcast (one
//! event, several `topics`), each all or nothing.

use serde_json::{json, Value};

use crate::helpers::{next_event, spawn_app, spawn_app_with, TestApp, TOKEN};
use crate::tokens::{spawn_private_app, token};

/// `POST /publish` of `body` with `bearer`; the status and the answer.
async fn publish_as(app: &TestApp, bearer: &str, body: &str) -> (u16, Value) {
    let response = app
        .http
        .post(app.url("/publish"))
        .bearer_auth(bearer)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or_default())
}

/// The `id`s of a list answer, in order.
fn ids(answer: &Value) -> Vec<String> {
    answer["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The sequence number of an event id (`<epoch>-<seq>`).
fn seq(id: &str) -> u64 {
    id.rsplit_once('-').unwrap().1.parse().unwrap()
}

#[tokio::test]
async fn a_batch_publishes_every_event_in_order_with_consecutive_ids_and_answers_each() {
    let app = spawn_app().await;
    let mut both = app.subscribe("/events?topic=a&topic=b").await;

    let (status, answer) = app
        .publish(json!([
            {"topic": "a", "event": "created", "data": {"n": 1}},
            {"topic": "b", "data": "two"},
            {"topic": "a", "data": "three", "idempotency_key": "k-3"},
        ]))
        .await;

    assert_eq!(status, 202, "{answer}");
    let ids = ids(&answer);
    assert_eq!(ids.iter().map(|id| seq(id)).collect::<Vec<_>>(), {
        let first = seq(&ids[0]);
        vec![first, first + 1, first + 2]
    });
    let topics: Vec<&str> =
        answer["events"].as_array().unwrap().iter().map(|e| e["topic"].as_str().unwrap()).collect();
    assert_eq!(topics, ["a", "b", "a"]);
    assert!(answer["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["subscribers"] == 1 && e["duplicate"] == false));
    for (id, (name, data)) in
        ids.iter().zip([("created", r#"{"n":1}"#), ("message", "two"), ("message", "three")])
    {
        let event = next_event(&mut both).await;
        assert_eq!((event.id.as_str(), event.event.as_str(), event.data.as_str()), (id.as_str(), name, data));
    }
}

#[tokio::test]
async fn a_broadcast_publishes_the_event_to_each_of_its_topics_with_an_id_each() {
    let app = spawn_app().await;
    let mut on_a = app.subscribe("/events?topic=user.1").await;
    let mut on_b = app.subscribe("/events?topic=user.2").await;

    let (status, answer) = app
        .publish(json!({"topics": ["user.1", "user.2"], "event": "notice", "data": "maintenance at 6"}))
        .await;

    assert_eq!(status, 202, "{answer}");
    let ids = ids(&answer);
    assert_eq!(seq(&ids[1]), seq(&ids[0]) + 1);
    for (stream, id) in [(&mut on_a, &ids[0]), (&mut on_b, &ids[1])] {
        let event = next_event(stream).await;
        assert_eq!(
            (&event.id, event.event.as_str(), event.data.as_str()),
            (id, "notice", "maintenance at 6")
        );
    }
}

#[tokio::test]
async fn a_batch_with_one_bad_event_publishes_none_and_names_the_event_at_fault() {
    let app = spawn_app_with(|config| config.max_publish_rate = 5_000).await;
    let mut events = app.subscribe("/events?topic=a").await;
    let before = app.publish_ok("a", "before").await;
    let good = json!({"topic": "a", "data": "would be lost"});
    let broadcast_to = |count: usize| {
        let topics: Vec<String> = (0..count).map(|n| format!("t{n}")).collect();
        json!({"topics": topics, "data": "x"})
    };

    for (what, bad, status, field) in [
        ("no data", json!({"topic": "a"}), 400, Some("data")),
        ("a bad topic", json!({"topic": "a b", "data": "x"}), 400, Some("topic")),
        ("neither topic nor topics", json!({"data": "x"}), 400, Some("topic")),
        ("topic and topics", json!({"topic": "a", "topics": ["b"], "data": "x"}), 400, Some("topics")),
        ("no topics", json!({"topics": [], "data": "x"}), 400, Some("topics")),
        ("a topic twice", json!({"topics": ["b", "b"], "data": "x"}), 400, Some("topics")),
        ("a reserved name", json!({"topic": "a", "event": "reset", "data": "x"}), 400, Some("event")),
        (
            "a bad key",
            json!({"topic": "a", "data": "x", "idempotency_key": "has space"}),
            400,
            Some("idempotency_key"),
        ),
        (
            "a session's topic",
            json!({"topic": format!("session.{}", "0".repeat(32)), "data": "x"}),
            403,
            None,
        ),
        ("an unknown field", json!({"topic": "a", "data": "x", "id": "7"}), 400, Some("body")),
        ("not an object", json!(["a", null, "x"]), 400, Some("body")),
        (
            "the same key twice on a topic",
            json!({"topics": ["a", "b"], "data": "y", "idempotency_key": "k"}),
            400,
            Some("idempotency_key"),
        ),
        ("past the most events a request publishes", broadcast_to(1_000), 400, Some("body")),
    ] {
        // The bad event second: the first, good one must not be published either.
        let mut batch = vec![good.clone(), bad];
        if what == "the same key twice on a topic" {
            batch[0] = json!({"topic": "a", "data": "x", "idempotency_key": "k"});
        }
        let (got, answer) = publish_as(&app, TOKEN, &Value::Array(batch).to_string()).await;
        assert_eq!(got, status, "{what}: {answer}");
        // The bound on a request's events is the request's, no event's.
        if what != "past the most events a request publishes" {
            assert_eq!(answer["index"], 1, "{what}: {answer}");
            assert!(
                answer["message"].as_str().unwrap().starts_with("event 1 of the batch: "),
                "{what}: {answer}"
            );
        }
        if let Some(field) = field {
            assert_eq!(answer["field"], field, "{what}: {answer}");
        }
    }
    for (what, body, field) in [
        ("an empty batch", "[]", "body"),
        ("broken JSON in a batch", r#"[{"topic": "a", "data": "x"}"#, "body"),
    ] {
        let (got, answer) = publish_as(&app, TOKEN, body).await;
        assert_eq!((got, answer["field"].as_str()), (400, Some(field)), "{what}: {answer}");
    }
    let response = app
        .http
        .post(app.url("/publish"))
        .bearer_auth(TOKEN)
        .header("idempotency-key", "k")
        .json(&json!([good]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400, "a batch with an Idempotency-Key header");

    let after = app.publish_ok("a", "after").await;
    assert_eq!(next_event(&mut events).await.id, before);
    assert_eq!(next_event(&mut events).await.id, after, "a refused batch published an event");
    assert_eq!(seq(&after), seq(&before) + 1, "a refused batch took an id");
}

#[tokio::test]
async fn a_batch_with_a_key_used_for_another_event_gets_422_naming_it_and_publishes_none() {
    let app = spawn_app().await;
    let mut events = app.subscribe("/events?topic=a").await;
    let (_, first) =
        app.publish(json!({"topic": "b", "data": "created", "idempotency_key": "order-7"})).await;

    let (status, refused) = app
        .publish(json!([
            {"topic": "a", "data": "would be lost", "idempotency_key": "fresh"},
            {"topic": "b", "data": "cancelled", "idempotency_key": "order-7"},
        ]))
        .await;

    assert_eq!((status, refused["index"].as_u64()), (422, Some(1)), "{refused}");
    assert_eq!(refused["error"], "idempotency-key-reused");
    assert!(refused["message"].as_str().unwrap().contains(first["id"].as_str().unwrap()), "{refused}");
    // The batch's fresh key was not taken: the same event publishes now, and is the first on a.
    let (status, fresh) =
        app.publish(json!({"topic": "a", "data": "would be lost", "idempotency_key": "fresh"})).await;
    assert_eq!((status, &fresh["duplicate"]), (202, &json!(false)), "{fresh}");
    assert_eq!(next_event(&mut events).await.id, fresh["id"].as_str().unwrap());
}

#[tokio::test]
async fn a_batch_retried_whole_answers_its_first_ids_as_duplicates_and_delivers_nothing_twice() {
    let app = spawn_app().await;
    let mut events = app.subscribe("/events?topic=a").await;
    let batch = json!([
        {"topic": "a", "data": "1", "idempotency_key": "export-1"},
        {"topics": ["a", "b"], "data": "2", "idempotency_key": "export-2"},
    ]);

    let (_, first) = app.publish(batch.clone()).await;
    let (status, again) = app.publish(batch).await;
    let after = app.publish_ok("a", "after").await;

    assert_eq!(status, 202, "{again}");
    assert_eq!(ids(&again), ids(&first));
    assert!(again["events"].as_array().unwrap().iter().all(|event| event["duplicate"] == true), "{again}");
    let first_ids = ids(&first);
    assert_eq!(next_event(&mut events).await.id, first_ids[0]);
    assert_eq!(next_event(&mut events).await.id, first_ids[1]);
    assert_eq!(next_event(&mut events).await.id, after, "the retry delivered again");
}

#[tokio::test]
async fn a_batch_takes_one_unit_of_the_publish_rate_per_event_and_one_larger_than_it_is_refused() {
    let app = spawn_app_with(|config| config.max_publish_rate = 3).await;
    let event = |n: u32| json!({"topic": "a", "data": n.to_string()});

    let (status, answer) = app.publish(json!([event(1), event(2), event(3), event(4)])).await;
    assert_eq!(status, 400, "more than the rate lets through at once: {answer}");
    assert!(answer["message"].as_str().unwrap().contains("HERALD_MAX_PUBLISH_RATE"), "{answer}");

    let (status, _) = app.publish(json!([event(1), event(2)])).await;
    assert_eq!(status, 202);
    let (status, answer) = app.publish(json!({"topics": ["a", "b"], "data": "x"})).await;
    assert_eq!(status, 503, "two more than the one left: {answer}");
}

#[tokio::test]
async fn a_publisher_token_must_cover_every_topic_of_a_batch() {
    let app = spawn_private_app().await;
    let orders = token(json!({"herald": {"publish": ["orders.**"]}}));
    let batch = json!([
        {"topic": "orders.1", "data": "x"},
        {"topics": ["orders.2", "user.42"], "data": "y"},
    ]);

    let (status, refused) = publish_as(&app, &orders, &batch.to_string()).await;
    assert_eq!((status, refused["index"].as_u64()), (403, Some(1)), "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("user.42"), "{refused}");

    let covered =
        json!([{"topic": "orders.1", "data": "x"}, {"topics": ["orders.2", "orders.3"], "data": "y"}]);
    let (status, answer) = publish_as(&app, &orders, &covered.to_string()).await;
    assert_eq!((status, ids(&answer).len()), (202, 3), "{answer}");
}
