//! `GET /topics/{topic}` and `GET /topics/{topic}/presence`: a topic's subscribers, newest
//! event and rate, and who follows it, for the holders of the publish token or a covering
//! publisher token; across instances on Redis, where an instance that dies leaves the count
//! within the documented time.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};

use crate::helpers::{next_event, spawn_app, RedisServer, RunningBinary, TestApp, PATIENCE, TOKEN};
use crate::tokens::{spawn_private_app, subscriber, token};

/// `GET path` with `bearer`: the status and the JSON answer.
async fn get_as(app: &TestApp, bearer: &str, path: &str) -> (u16, Value) {
    let response = app.http.get(app.url(path)).bearer_auth(bearer).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or_default())
}

async fn get_ok(app: &TestApp, path: &str) -> Value {
    let (status, answer) = get_as(app, TOKEN, path).await;
    assert_eq!(status, 200, "{path}: {answer}");
    answer
}

/// Opens `/events?topic=…` with a subscriber token for `sub` that covers it, and waits until
/// the stream is open.
async fn follow_as(app: &TestApp, sub: &str, topic: &str) -> reqwest::Response {
    let token = token(json!({"sub": sub, "herald": {"subscribe": [topic]}}));
    let response =
        app.http.get(app.url(&format!("/events?topic={topic}"))).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response
}

#[tokio::test]
async fn a_topic_answers_its_subscribers_newest_event_and_events_of_the_last_minute() {
    let app = spawn_app().await;
    let mut first = app.subscribe("/events?topic=orders").await;
    let _second = app.subscribe("/events?topic=orders").await;
    let mut ids = vec![];
    for n in 0..3 {
        ids.push(app.publish_ok("orders", &n.to_string()).await);
    }
    app.publish_ok("elsewhere", "x").await;
    // Counted as they go by: once a subscriber has them all, so has the count.
    for id in &ids {
        assert_eq!(&next_event(&mut first).await.id, id);
    }

    let info = get_ok(&app, "/topics/orders").await;
    assert_eq!(
        info,
        json!({"topic": "orders", "subscribers": 2, "last_id": ids[2], "events_last_minute": 3})
    );
    let nothing = get_ok(&app, "/topics/never.seen").await;
    assert_eq!(
        nothing,
        json!({"topic": "never.seen", "subscribers": 0, "last_id": null, "events_last_minute": 0})
    );
}

#[tokio::test]
async fn presence_lists_each_sub_with_its_connections_and_counts_anonymous_ones_apart() {
    let app = spawn_private_app().await;
    let _streams = [
        follow_as(&app, "user-42", "user.42").await,
        follow_as(&app, "user-42", "user.42").await,
        follow_as(&app, "support", "user.42").await,
    ];
    let presence = get_ok(&app, "/topics/user.42/presence").await;
    assert_eq!(
        presence,
        json!({"topic": "user.42", "connections": 3, "anonymous": 0, "subs": [
            {"sub": "support", "connections": 1},
            {"sub": "user-42", "connections": 2},
        ]})
    );

    // A public topic needs no token: its subscribers are counted, never named.
    let _public =
        [app.subscribe("/events?topic=news.eu").await, app.subscribe("/events?topic=news.eu").await];
    let public = get_ok(&app, "/topics/news.eu/presence").await;
    assert_eq!(
        (&public["connections"], &public["anonymous"], &public["subs"]),
        (&json!(2), &json!(2), &json!([]))
    );
}

#[tokio::test]
async fn topic_routes_take_publisher_credentials_and_refuse_bad_requests() {
    let app = spawn_private_app().await;
    let orders = token(json!({"herald": {"publish": ["orders.**"]}}));
    for route in ["/topics/orders.eu", "/topics/orders.eu/presence"] {
        assert_eq!(get_as(&app, &orders, route).await.0, 200, "{route}");
        let no_token = app.http.get(app.url(route)).send().await.unwrap().status().as_u16();
        assert_eq!(no_token, 401, "{route}");
        let other = route.replace("orders.eu", "user.42");
        assert_eq!(get_as(&app, &orders, &other).await.0, 403, "{other}");
        assert_eq!(get_as(&app, &subscriber(&["**"]), route).await.0, 403, "a subscriber token: {route}");
        let (status, answer) = get_as(&app, TOKEN, &format!("{route}?limit=1")).await;
        assert_eq!((status, answer["field"].as_str()), (400, Some("query")), "{answer}");
    }
    let session = format!("/topics/session.{}", "0".repeat(32));
    assert_eq!(get_as(&app, TOKEN, &session).await.0, 403);
    let (status, answer) = get_as(&app, TOKEN, "/topics/a%20b/presence").await;
    assert_eq!((status, answer["field"].as_str()), (400, Some("topic")), "{answer}");
}

/// Asks `path` of `app` until `done` holds of the answer, for at most `patience`; the answer and
/// how long it took. Presence across instances changes as each writes its own, every 2 s: there
/// is no event to wait for.
async fn until(
    app: &TestApp,
    path: &str,
    patience: Duration,
    done: impl Fn(&Value) -> bool,
) -> (Value, Duration) {
    let start = Instant::now();
    loop {
        let answer = get_ok(app, path).await;
        if done(&answer) || start.elapsed() > patience {
            return (answer, start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_subscriber_on_each_instance_counts_on_either_and_a_killed_instance_leaves_within_its_presence_life(
) {
    let redis = RedisServer::start().await;
    let a = crate::helpers::spawn_app_with({
        let url = redis.url();
        move |config| {
            config.redis_url = Some(url.parse().unwrap());
            config.jwt_secret = Some(crate::tokens::SECRET.into());
        }
    })
    .await;
    let b = RunningBinary::start(
        env!("CARGO_BIN_EXE_herald"),
        &[
            ("LEPTOS_SITE_ADDR", "127.0.0.1:0"),
            ("HERALD_REDIS_URL", &redis.url()),
            // Sessions play no part here; the key only has to be one (the suite's holds a comma).
            ("HERALD_SESSION_KEY", "the killed instance's session key of 32 bytes or more"),
            ("HERALD_JWT_SECRET", crate::tokens::SECRET),
        ],
    )
    .await;
    let _on_a = follow_as(&a, "alice", "room.1").await;
    let bob = token(json!({"sub": "bob", "herald": {"subscribe": ["room.1"]}}));
    let on_b = reqwest::Client::new()
        .get(format!("{}/events?topic=room.1", b.url))
        .bearer_auth(bob)
        .send()
        .await
        .unwrap();
    assert_eq!(on_b.status(), 200);
    let mut on_b = on_b.bytes_stream();
    assert!(on_b.next().await.is_some(), "B's stream opened");

    let (both, _) = until(&a, "/topics/room.1/presence", PATIENCE, |answer| answer["connections"] == 2).await;
    assert_eq!(
        both["subs"],
        json!([{"sub": "alice", "connections": 1}, {"sub": "bob", "connections": 1}]),
        "{both}"
    );
    assert_eq!(get_ok(&a, "/topics/room.1").await["subscribers"], 2);
    let listed = get_ok(&a, "/topics?prefix=room.").await;
    assert_eq!(
        (&listed["topics"][0]["topic"], &listed["topics"][0]["subscribers"]),
        (&json!("room.1"), &json!(2))
    );

    // B dies without a word: its presence expires 6 s after its last write, at most 2 s ago.
    let mut b = b;
    b.process.start_kill().unwrap();
    b.process.wait().await.unwrap();
    let (left, took) =
        until(&a, "/topics/room.1/presence", Duration::from_secs(12), |answer| answer["connections"] == 1)
            .await;
    assert_eq!(left["subs"], json!([{"sub": "alice", "connections": 1}]), "after {took:?}: {left}");
    assert!(took <= Duration::from_secs(7), "B's subscriber left after {took:?}, past its 6 s presence life");
}

#[tokio::test]
async fn live_topics_are_listed_by_name_a_page_at_a_time_and_only_those_the_publisher_reaches() {
    let app = spawn_private_app().await;
    let mut streams = vec![];
    for topic in ["news.b", "news.a", "news.c", "user.7"] {
        streams.push(follow_as(&app, "someone", topic).await);
    }
    // Herald's own page stream follows its session's topic, which no listing shows.
    streams.push(app.http.get(app.url("/remote")).send().await.unwrap());
    let names = |page: &Value| -> Vec<String> {
        page["topics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|topic| topic["topic"].as_str().unwrap().to_owned())
            .collect()
    };

    let first = get_ok(&app, "/topics?limit=2").await;
    assert_eq!(
        (names(&first), &first["next_cursor"]),
        (vec!["news.a".to_owned(), "news.b".into()], &json!("news.b"))
    );
    assert_eq!(
        first["topics"][0],
        json!({"topic": "news.a", "subscribers": 1, "last_id": null, "events_last_minute": 0})
    );
    let second = get_ok(&app, "/topics?limit=2&cursor=news.b").await;
    assert_eq!(
        (names(&second), &second["next_cursor"]),
        (vec!["news.c".to_owned(), "user.7".into()], &json!("user.7"))
    );
    let last = get_ok(&app, "/topics?limit=2&cursor=user.7").await;
    assert_eq!((names(&last), &last["next_cursor"]), (Vec::<String>::new(), &json!(null)));
    let news = get_ok(&app, "/topics?prefix=news.").await;
    assert_eq!((names(&news).len(), &news["next_cursor"]), (3, &json!(null)));

    // A publisher token lists the topics it covers, and no other.
    let (status, user) =
        get_as(&app, &token(json!({"herald": {"publish": ["user.*"]}})), "/topics?limit=1").await;
    assert_eq!((status, names(&user)), (200, vec!["user.7".to_owned()]), "{user}");

    for (query, field) in [
        ("limit=0", "limit"),
        ("prefix=a%20b", "prefix"),
        ("cursor=", "cursor"),
        ("sort=name", "query"),
        ("prefix=a&prefix=b", "prefix"),
    ] {
        let (status, answer) = get_as(&app, TOKEN, &format!("/topics?{query}")).await;
        assert_eq!((status, answer["field"].as_str()), (400, Some(field)), "{query}: {answer}");
    }
    assert_eq!(app.http.get(app.url("/topics")).send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn presence_events_tell_a_topic_of_each_named_arrival_and_departure_and_never_of_anonymous_ones() {
    let app = crate::helpers::spawn_app_with(|config| {
        config.jwt_secret = Some(crate::tokens::SECRET.into());
        config.public_topics = vec!["news.*".parse().unwrap()];
        config.presence_events = vec!["room.*".parse().unwrap(), "news.*".parse().unwrap()];
        // A closed stream is noticed at its next keep-alive on the hyper path.
        config.keep_alive = Duration::from_millis(100);
    })
    .await;
    let watcher = token(json!({"sub": "watcher", "herald": {"subscribe": ["room.1"]}}));
    let mut watching =
        app.subscribe_with("/events?topic=room.1", &[("Authorization", &format!("Bearer {watcher}"))]).await;
    let own = next_event(&mut watching).await;
    assert_eq!(
        (own.event.as_str(), own.data.as_str()),
        ("join", r#"{"sub":"watcher"}"#),
        "its own arrival first"
    );

    let bob = follow_as(&app, "bob", "room.1").await;
    let joined = next_event(&mut watching).await;
    assert_eq!((joined.event.as_str(), joined.data.as_str()), ("join", r#"{"sub":"bob"}"#));
    drop(bob);
    let left = next_event(&mut watching).await;
    assert_eq!((left.event.as_str(), left.data.as_str()), ("leave", r#"{"sub":"bob"}"#));
    // Both are events of the topic, with ids: a resume replays them like any other.
    assert!(!joined.id.is_empty() && !left.id.is_empty());

    // An anonymous stream on a public topic is counted, never announced.
    let mut news = app.subscribe("/events?topic=news.1").await;
    let _anonymous = app.subscribe("/events?topic=news.1").await;
    let marker = app.publish_ok("news.1", "after the anonymous arrivals").await;
    assert_eq!(next_event(&mut news).await.id, marker);

    // No publisher can speak for Herald.
    let (status, answer) = app.publish(json!({"topic": "room.1", "event": "join", "data": "{}"})).await;
    assert_eq!((status, answer["error"].as_str()), (400, Some("reserved-event-name")), "{answer}");
}

#[tokio::test]
async fn after_redis_loses_its_data_each_instance_writes_its_presence_again_within_a_refresh() {
    let redis = RedisServer::start().await;
    let on_redis = |url: String| {
        move |config: &mut crate::helpers::Config| config.redis_url = Some(url.parse().unwrap())
    };
    let a = crate::helpers::spawn_app_with(on_redis(redis.url())).await;
    let b = crate::helpers::spawn_app_with(on_redis(redis.url())).await;
    let _on_a = a.subscribe("/events?topic=room.9").await;
    let (seen, _) = until(&b, "/topics/room.9", PATIENCE, |answer| answer["subscribers"] == 1).await;
    assert_eq!(seen["subscribers"], 1, "{seen}");

    redis.command(&["FLUSHALL"]).await;
    // A's next renewal finds Redis without it, and writes everything again at once.
    let (back, took) = until(&b, "/topics/room.9", PATIENCE, |answer| answer["subscribers"] == 1).await;
    assert_eq!(back["subscribers"], 1, "after {took:?}: {back}");
    assert!(took <= Duration::from_secs(3), "A's presence came back after {took:?}, past one refresh");
}
