//! `GET /topics/{topic}/events`: a topic's history in pages, with the resets of a resume, for
//! the holders of the publish token or of a publisher token that covers the topic.

use serde_json::{json, Value};

use crate::helpers::{next_event, spawn_app, spawn_app_with, TestApp, TOKEN};
use crate::tokens::{spawn_private_app, subscriber, token};

/// `GET /topics/{topic}/events?{query}` with `bearer`: the status and the JSON answer.
async fn history_as(app: &TestApp, bearer: Option<&str>, topic: &str, query: &str) -> (u16, Value) {
    let mut request = app.http.get(app.url(&format!("/topics/{topic}/events?{query}")));
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or_default())
}

/// The answer to a history read with the publish token, failing the test on anything but 200.
async fn history(app: &TestApp, topic: &str, query: &str) -> Value {
    let (status, answer) = history_as(app, Some(TOKEN), topic, query).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

fn ids(page: &Value) -> Vec<&str> {
    page["events"].as_array().unwrap().iter().map(|event| event["id"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_backend_reads_a_topics_history_in_pages_then_is_caught_up() {
    let app = spawn_app().await;
    let mut published = vec![];
    for (event, data) in
        [(Some("created"), "1"), (None, "2"), (Some("paid"), "3\r\nthree"), (None, "4"), (None, "5")]
    {
        let mut body = json!({"topic": "orders", "data": data});
        if let Some(event) = event {
            body["event"] = json!(event);
        }
        let (status, answer) = app.publish(body).await;
        assert_eq!(status, 202, "{answer}");
        published.push(answer["id"].as_str().unwrap().to_owned());
        app.publish_ok("elsewhere", "not in the orders' history").await;
    }

    let first = history(&app, "orders", "limit=2").await;
    assert_eq!(ids(&first), [&published[0], &published[1]]);
    assert_eq!(first["events"][0], json!({"id": published[0], "event": "created", "data": "1"}));
    assert_eq!(first["events"][1]["event"], "message", "an unnamed event is a message, as in a browser");
    assert_eq!(
        (&first["more"], &first["next"], &first["topic"]),
        (&json!(true), &json!(published[1]), &json!("orders"))
    );
    assert!(first.get("reset").is_none(), "{first}");

    let second = history(&app, "orders", &format!("after={}&limit=2", published[1])).await;
    assert_eq!(ids(&second), [&published[2], &published[3]]);
    assert_eq!(second["events"][0]["data"], "3\nthree", "line breaks as subscribers get them");
    let last = history(&app, "orders", &format!("after={}&limit=2", published[3])).await;
    assert_eq!((ids(&last), &last["more"]), (vec![published[4].as_str()], &json!(false)));

    // Caught up: nothing after the last event, and `next` moves to the top of the log, past the
    // other topic's event published after it.
    let caught_up = history(&app, "orders", &format!("after={}", published[4])).await;
    assert_eq!((ids(&caught_up), &caught_up["more"]), (vec![], &json!(false)));
    let top = app.publish_ok("elsewhere", "after everything").await;
    let after_top = history(&app, "orders", &format!("after={}", published[4])).await;
    assert_eq!(after_top["next"], top);
    // Without `limit`, a page holds up to 100 events: all five here.
    assert_eq!(
        ids(&history(&app, "orders", "").await),
        published.iter().map(String::as_str).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_topic_with_no_history_answers_an_empty_page_positioned_at_the_top_of_the_log() {
    let app = spawn_app().await;
    let top = app.publish_ok("elsewhere", "x").await;
    let page = history(&app, "never.published", "").await;
    assert_eq!(page, json!({"topic": "never.published", "events": [], "more": false, "next": top}));
}

#[tokio::test]
async fn a_history_read_resets_exactly_where_a_resume_would_and_says_where_to_go_on() {
    let app = spawn_app_with(|config| config.history_len = 2).await;
    let ids_published: Vec<String> = {
        let mut ids = vec![];
        for n in 0..4 {
            ids.push(app.publish_ok("busy", &n.to_string()).await);
        }
        ids
    };
    let top = ids_published.last().unwrap();
    let (epoch, seq) = top.split_once('-').unwrap();
    let ahead = format!("{epoch}-{}", seq.parse::<u64>().unwrap() + 100);
    for (after, reason) in [
        (ids_published[0].as_str(), "expired"),
        ("1-1", "other-incarnation"),
        (ahead.as_str(), "unknown-id"),
        ("not-an-id", "malformed-id"),
    ] {
        let page = history(&app, "busy", &format!("after={after}")).await;
        assert_eq!(page["reset"]["reason"], reason, "after {after}: {page}");
        assert!(page["reset"]["message"].as_str().is_some_and(|message| !message.is_empty()), "{page}");
        assert_eq!((ids(&page), &page["next"]), (vec![], &json!(top)), "after {after}");

        // A stream resuming from the same id is told the same.
        let mut stream = app.subscribe_with("/events?topic=busy", &[("Last-Event-ID", after)]).await;
        let opening = next_event(&mut stream).await;
        assert_eq!(opening.event, "reset");
        assert_eq!(serde_json::from_str::<Value>(&opening.data).unwrap()["reason"], reason);
    }
    // Without an id, the page starts at the oldest event the history still holds.
    assert_eq!(ids(&history(&app, "busy", "").await), [&ids_published[2], &ids_published[3]]);
}

#[tokio::test]
async fn the_history_is_for_the_publish_token_and_publisher_tokens_that_cover_the_topic() {
    let app = spawn_app().await;
    app.publish_ok("orders", "x").await;
    assert_eq!(history_as(&app, None, "orders", "").await.0, 401);
    assert_eq!(history_as(&app, Some("wrong"), "orders", "").await.0, 401);
    let session = format!("session.{}", "0".repeat(32));
    let (status, answer) = history_as(&app, Some(TOKEN), &session, "").await;
    assert_eq!((status, answer["error"].as_str()), (403, Some("forbidden")), "{answer}");

    let private = spawn_private_app().await;
    private.publish_ok("orders.eu", "x").await;
    let orders = token(json!({"herald": {"publish": ["orders.**"]}}));
    assert_eq!(history_as(&private, Some(&orders), "orders.eu", "").await.0, 200);
    for (bearer, topic, status, error) in [
        (orders.as_str(), "user.42", 403, "forbidden"),
        // A subscriber's token follows the topic's stream; it does not read it as a backend.
        (&subscriber(&["**"]), "orders.eu", 403, "forbidden"),
        ("a.b.c", "orders.eu", 401, "invalid-token"),
    ] {
        let (got, answer) = history_as(&private, Some(bearer), topic, "").await;
        assert_eq!((got, answer["error"].as_str()), (status, Some(error)), "{topic}: {answer}");
    }
}

#[tokio::test]
async fn bad_history_requests_are_refused_with_400_naming_the_field() {
    let app = spawn_app().await;
    for (topic, query, field) in [
        ("orders", "limit=0", "limit"),
        ("orders", "limit=1001", "limit"),
        ("orders", "limit=ten", "limit"),
        ("orders", "limit=1&limit=2", "limit"),
        ("orders", "after=a&after=b", "after"),
        ("orders", "from=3", "query"),
        ("a%20b", "", "topic"),
        ("%C3%A9", "", "topic"),
    ] {
        let (status, answer) = history_as(&app, Some(TOKEN), topic, query).await;
        assert_eq!((status, answer["field"].as_str()), (400, Some(field)), "{topic}?{query}: {answer}");
        assert_eq!(answer["error"], "invalid", "{answer}");
    }
}

#[tokio::test]
async fn a_page_stops_at_the_replay_byte_bound_yet_always_holds_one_event() {
    // Each frame here is about 330 bytes: two fit in 700, and a third would not.
    let app = spawn_app_with(|config| config.max_replay_bytes = 700).await;
    let published = [
        app.publish_ok("big", &"a".repeat(300)).await,
        app.publish_ok("big", &"b".repeat(300)).await,
        app.publish_ok("big", &"c".repeat(300)).await,
        app.publish_ok("big", &"d".repeat(1000)).await,
    ];
    let first = history(&app, "big", "").await;
    assert_eq!((ids(&first), &first["more"]), (vec![published[0].as_str(), &published[1]], &json!(true)));
    let second = history(&app, "big", &format!("after={}", first["next"].as_str().unwrap())).await;
    assert_eq!((ids(&second), &second["more"]), (vec![published[2].as_str()], &json!(true)));
    // The last event alone is over the bound: the page holds it, and says nothing follows.
    let last = history(&app, "big", &format!("after={}", second["next"].as_str().unwrap())).await;
    assert_eq!((ids(&last), &last["more"]), (vec![published[3].as_str()], &json!(false)));
}
