//! The operator's endpoints: `/metrics` on a listener of its own, and `/readyz` answered from the
//! state Herald keeps, without a round trip to Redis per probe.

use std::net::SocketAddr;

use crate::helpers::{spawn_app_with, RedisServer};

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
