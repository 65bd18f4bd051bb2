//! The operator's endpoints: `/metrics` on a listener of its own, and `/readyz` answered from the
//! state Herald keeps, without a round trip to Redis per probe, telling a busy Redis from a gone one.

use std::{net::SocketAddr, time::Duration};

use serde_json::json;

use crate::helpers::{gauge, spawn_app_with, RedisServer, TestApp, PATIENCE};

#[tokio::test]
async fn metrics_are_served_on_their_own_listener_and_the_main_one_answers_404() {
    let app =
        spawn_app_with(|config| config.metrics_addr = Some(SocketAddr::from(([127, 0, 0, 1], 0)))).await;
    let metrics = app.metrics_address.expect("a metrics listener");

    let scraped = reqwest::get(format!("http://{metrics}/metrics")).await.unwrap();
    assert_eq!(scraped.status(), 200);
    assert!(scraped.text().await.unwrap().contains("herald_streams_open 0"));
    assert_eq!(app.get("/metrics").await.status(), 404);
    assert_eq!(reqwest::get(format!("http://{metrics}/")).await.unwrap().status(), 404, "nothing else there");

    app.shut_down().await;
    assert!(
        tokio::net::TcpStream::connect(metrics).await.is_err(),
        "the metrics listener stops with the server"
    );
}

/// How many times Redis has run `command` (`INFO commandstats`), and every command in all.
async fn commands_run(redis: &RedisServer, command: &str) -> (u64, u64) {
    let info = |section: &'static str| async move {
        redis::from_redis_value::<String>(redis.command(&["INFO", section]).await).expect("INFO is text")
    };
    let field = |text: &str, prefix: &str| -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix(prefix))
            .map_or(0, |rest| rest.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap())
    };
    let stats = info("commandstats").await;
    let total = info("stats").await;
    (field(&stats, &format!("cmdstat_{command}:calls=")), field(&total, "total_commands_processed:"))
}

#[tokio::test]
async fn readyz_sends_redis_no_command() {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let app = spawn_app_with(move |config| config.redis_url = Some(url.parse().unwrap())).await;

    let (pings, total) = commands_run(&redis, "ping").await;
    for _ in 0..50 {
        assert_eq!(app.get("/readyz").await.status(), 200);
    }
    let (pings_after, total_after) = commands_run(&redis, "ping").await;

    assert_eq!(pings_after - pings, 0, "PINGs during 50 probes");
    // The hub's reader polls on its own (a blocking read a second, and an epoch check), and the
    // INFO calls count too: far fewer than one per probe.
    assert!(total_after - total < 50, "{} commands during 50 probes", total_after - total);
}

/// Waits until Redis has taken a command that holds it (`DEBUG SLEEP`): a `PING` gets no answer
/// within 100 ms. An external process gives no event to await.
async fn until_redis_is_held(redis: &RedisServer) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while tokio::time::timeout(Duration::from_millis(100), redis.command(&["PING"])).await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "Redis never took the DEBUG SLEEP");
    }
}

/// The value of `name` on the metrics listener of `app`.
async fn metric(app: &TestApp, name: &str) -> u64 {
    gauge(&format!("http://{}/metrics", app.metrics_address.expect("a metrics listener")), name).await
}

#[tokio::test]
async fn a_redis_busy_for_two_seconds_fails_the_late_command_but_is_not_taken_for_down_and_a_silent_one_is() {
    let redis = std::sync::Arc::new(RedisServer::start().await);
    let url = redis.url();
    let app = spawn_app_with(move |config| {
        config.redis_url = Some(url.parse().unwrap());
        config.metrics_addr = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await;
    app.publish_ok("t", "before").await;

    // Busy: one command held for 2 s, while Redis answered just before.
    let held = tokio::spawn({
        let redis = std::sync::Arc::clone(&redis);
        async move { redis.command(&["DEBUG", "SLEEP", "2"]).await }
    });
    until_redis_is_held(&redis).await;
    let (status, answer) = app.publish(json!({"topic": "t", "data": "late"})).await;
    assert_eq!(status, 503, "a publish whose reply is late fails: {answer}");
    assert_eq!(app.get("/readyz").await.status(), 200, "busy is not down");
    assert_eq!(metric(&app, "herald_redis_up").await, 1);
    held.await.unwrap();
    app.publish_ok("t", "after").await;
    assert!(metric(&app, "herald_redis_slow_replies_total").await >= 1);
    assert_eq!(app.get("/readyz").await.status(), 200);

    // Silent: a late reply, then a probe unanswered for 3 s, is down (about 4 s after the
    // command), and up again once Redis answers.
    let held = tokio::spawn({
        let redis = std::sync::Arc::clone(&redis);
        async move { redis.command(&["DEBUG", "SLEEP", "8"]).await }
    });
    until_redis_is_held(&redis).await;
    let (status, _) = app.publish(json!({"topic": "t", "data": "late again"})).await;
    assert_eq!(status, 503);
    let deadline = std::time::Instant::now() + PATIENCE;
    while app.get("/readyz").await.status() == 200 {
        assert!(std::time::Instant::now() < deadline, "a Redis silent for 8 s never counted as down");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(metric(&app, "herald_redis_up").await, 0);
    held.await.unwrap();
    app.publish_ok("t", "back").await;
    assert_eq!(app.get("/readyz").await.status(), 200);
}
