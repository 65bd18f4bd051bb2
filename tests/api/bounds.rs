//! Replays and histories bounded on a real `redis-server`: a crowd of resumes leaves publishing
//! served, a replay past its bounds and a history past its bytes each say so with a reset, and
//! every key Herald writes in Redis expires.

use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use serde_json::{json, Value};

use crate::callbacks::{call_back, signed};
use crate::helpers::{
    next_event, spawn_app_with, spawn_worker, Config, RedisServer, TestApp, PATIENCE, TOKEN,
};

/// An instance on `redis`, with whatever `adjust` changes.
async fn on_redis(redis: &RedisServer, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let url = redis.url();
    spawn_app_with(move |config| {
        config.redis_url = Some(url.parse().unwrap());
        adjust(config);
    })
    .await
}

/// The reason of a stream's opening reset, failing the test if it opens with anything else.
async fn opening_reset(app: &TestApp, topics: &str, last_event_id: &str) -> String {
    let path = format!("/events?{topics}");
    let mut stream = app.subscribe_with(&path, &[("Last-Event-ID", last_event_id)]).await;
    let event = next_event(&mut stream).await;
    assert_eq!(event.event, "reset", "{event:?}");
    let notice: Value = serde_json::from_str(&event.data).unwrap();
    notice["reason"].as_str().unwrap().to_owned()
}

/// Publishes `count` events of `data` to `topic`, many at once; their ids, in publish order of
/// the requests (not of the ids).
async fn publish_many(app: &TestApp, topic: &str, data: &str, count: usize) -> Vec<String> {
    let mut ids = vec![];
    for chunk in (0..count).collect::<Vec<_>>().chunks(64) {
        ids.extend(futures::future::join_all(chunk.iter().map(|_| app.publish_ok(topic, data))).await);
    }
    ids
}

/// A reply of Redis as what it holds: a number, a list of keys.
fn parse<T: redis::FromRedisValue>(value: redis::Value) -> T {
    T::from_redis_value(value).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_of_resumes_of_a_full_history_on_redis_leaves_publishing_answering_202_within_a_second() {
    let redis = RedisServer::start().await;
    const RESUMES: usize = 500;
    let app = on_redis(&redis, |config| config.max_streams_per_client = 2 * RESUMES as u32).await;
    let before = app.publish_ok("warmup", "0").await;
    // A full default history (1,024 events), about 130 KB to replay to each resume.
    let history = publish_many(&app, "news", &"x".repeat(100), 1024).await;
    let first = history.iter().min_by_key(|id| id.rsplit('-').next().unwrap().parse::<u64>().unwrap());

    // The publisher's own keep-alive connection, open before the crowd: a new connection could
    // find the listen backlog full of resumes, and a dropped SYN costs a second whatever Herald does.
    let publisher = reqwest::Client::new();
    let warm = publisher.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(warm.status(), 200);
    let app = std::sync::Arc::new(app);
    let resumes: Vec<_> = (0..RESUMES)
        .map(|_| {
            let (app, before) = (std::sync::Arc::clone(&app), before.clone());
            tokio::spawn(async move {
                let mut stream =
                    app.subscribe_with("/events?topic=news", &[("Last-Event-ID", &before)]).await;
                // Resumes wait their turn for a replay: the last of them may wait for all others.
                let first = tokio::time::timeout(Duration::from_secs(60), stream.next()).await;
                first.expect("a replay within a minute").expect("an event").expect("a well-formed event")
            })
        })
        .collect();

    let mut slowest = Duration::ZERO;
    let mut published = 0;
    while resumes.iter().any(|resume| !resume.is_finished()) {
        let started = Instant::now();
        let publish = publisher.post(app.url("/publish")).bearer_auth(TOKEN);
        let answer = publish.json(&json!({ "topic": "elsewhere", "data": published })).send().await.unwrap();
        assert_eq!(answer.status(), 202, "publish #{published} during the crowd of resumes");
        slowest = slowest.max(started.elapsed());
        let ready = publisher.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200, "/readyz during the crowd of resumes");
        published += 1;
    }
    for resume in resumes {
        assert_eq!(Some(&resume.await.unwrap().id), first, "every resume replays the history");
    }
    assert!(published > 0);
    assert!(slowest < Duration::from_secs(1), "the slowest of {published} publishes took {slowest:?}");
}

#[tokio::test]
async fn a_resume_past_the_replay_bounds_on_redis_opens_with_a_reset_that_says_so() {
    let redis = RedisServer::start().await;
    let app = on_redis(&redis, |config| {
        config.max_replay_events = 3;
        config.max_replay_bytes = 200;
    })
    .await;
    let before = app.publish_ok("warmup", "0").await;
    let ids = publish_many(&app, "a", "x", 4).await;
    let mut sorted = ids.clone();
    sorted.sort_by_key(|id| id.rsplit('-').next().unwrap().parse::<u64>().unwrap());

    assert_eq!(opening_reset(&app, "topic=a", &before).await, "replay-too-large", "4 events");
    let mut three = app.subscribe_with("/events?topic=a", &[("Last-Event-ID", &sorted[0])]).await;
    assert_eq!(next_event(&mut three).await.id, sorted[1], "three events replay");

    // Two frames of about 175 bytes each: two events, but over 200 bytes.
    let after = app.publish_ok("elsewhere", "0").await;
    let large = "y".repeat(150);
    let mut b = app.subscribe_with("/events?topic=b", &[("Last-Event-ID", &after)]).await;
    let one = app.publish_ok("b", &large).await;
    assert_eq!(next_event(&mut b).await.id, one, "one frame is within the bounds");
    app.publish_ok("b", &large).await;
    assert_eq!(opening_reset(&app, "topic=b", &after).await, "replay-too-large", "over 200 bytes");
}

#[tokio::test]
async fn a_topic_in_redis_keeps_no_more_bytes_than_its_bound_and_all_of_them_no_more_than_theirs() {
    let redis = RedisServer::start().await;
    let app = on_redis(&redis, |config| {
        config.history_bytes = 520;
        config.history_total_bytes = 2_000;
    })
    .await;
    let before = app.publish_ok("warmup", "0").await;
    // Frames of 128 bytes: four fit in 520.
    let mut ids = vec![];
    for _ in 0..6 {
        ids.push(app.publish_ok("a", &"x".repeat(100)).await);
    }
    assert_eq!(opening_reset(&app, "topic=a", &before).await, "expired");
    let mut kept = app.subscribe_with("/events?topic=a", &[("Last-Event-ID", &ids[1])]).await;
    assert_eq!(next_event(&mut kept).await.id, ids[2], "the newest four stay");
    let held: i64 = parse(redis.command(&["HGET", "herald:topic-bytes", "a"]).await);
    assert_eq!(held, 4 * 128, "topic a holds its newest four frames");

    // Twenty topics of 128 bytes each pass the 2,000 bytes of every history together: the topics
    // published to longest ago are forgotten, and a resume into them is told so.
    let mut ids = vec![];
    for n in 0..20 {
        ids.push(app.publish_ok(&format!("t{n}"), &"x".repeat(100)).await);
    }
    let deadline = Instant::now() + PATIENCE;
    loop {
        let total: i64 = parse(redis.command(&["GET", "herald:history-bytes"]).await);
        if total <= 2_000 {
            break;
        }
        assert!(Instant::now() < deadline, "still {total} bytes in every history after {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(opening_reset(&app, "topic=t0", &before).await, "expired");
    let mut newest = app.subscribe_with("/events?topic=t19", &[("Last-Event-ID", &ids[18])]).await;
    assert_eq!(next_event(&mut newest).await.id, ids[19], "the newest topic stays");
}

#[tokio::test]
async fn every_key_herald_writes_in_redis_expires() {
    let redis = RedisServer::start().await;
    let worker = spawn_worker("1h", "1h").await;
    let worker_url = worker.url.clone();
    let app = on_redis(&redis, move |config| config.worker_url = worker_url).await;
    for n in 0..50 {
        app.publish_ok(&format!("topic-{n}"), "x").await;
    }
    let keyed = app
        .http
        .post(app.url("/publish"))
        .bearer_auth(TOKEN)
        .header("idempotency-key", "k-1")
        .json(&json!({ "topic": "orders", "data": "paid" }))
        .send()
        .await
        .unwrap();
    assert_eq!(keyed.status(), 202);
    let finished = app.start_job().await;
    app.start_job().await;
    let body = json!({"status": "done", "result": 1}).to_string();
    let signature = signed(&finished.id, &body, Utc::now().timestamp());
    assert_eq!(call_back(&app, &finished.id, &body, Some(&signature)).await.0, 200);
    let mut resumed = app.subscribe_with("/events?topic=topic-1", &[("Last-Event-ID", "1-0")]).await;
    assert_eq!(next_event(&mut resumed).await.event, "reset");

    let keys: Vec<String> = parse(redis.command(&["KEYS", "*"]).await);
    for prefix in
        ["herald:topic:", "herald:once:", "herald:signature:", "herald:job:", "herald:session-jobs:"]
    {
        assert!(keys.iter().any(|key| key.starts_with(prefix)), "no {prefix}* key among {keys:?}");
    }
    for key in &keys {
        let ttl: i64 = parse(redis.command(&["PTTL", key]).await);
        assert_ne!(ttl, -1, "{key} never expires");
    }
}

#[tokio::test]
async fn a_topic_whose_stream_expired_before_the_purge_still_resets_a_resume_from_before_it() {
    let redis = RedisServer::start().await;
    let app = on_redis(&redis, |_| {}).await;
    let before = app.publish_ok("warmup", "0").await;
    app.publish_ok("a", "missed, then expired with its stream").await;
    // As if no purge had run for the history's age and a minute: the stream's own expiry.
    redis.command(&["DEL", "herald:topic:a"]).await;

    assert_eq!(opening_reset(&app, "topic=a", &before).await, "expired");
}
