//! Graceful shutdown: open streams end, and the server stops well inside its grace time.

use std::time::Duration;

use futures::StreamExt;
use tokio::process::Command;

use crate::helpers::{next_event, spawn_app, RunningBinary, PATIENCE};

#[tokio::test]
async fn shutdown_ends_open_streams_and_stops_within_2_s() {
    let app = spawn_app().await;
    let mut streams = vec![];
    for _ in 0..3 {
        let mut events = app.subscribe("/remote").await;
        next_event(&mut events).await;
        streams.push(events);
    }

    let took = app.shut_down().await;

    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    for mut events in streams {
        let rest = tokio::time::timeout(PATIENCE, async {
            let mut rest = vec![];
            while let Some(item) = events.next().await {
                rest.push(item);
            }
            rest
        })
        .await
        .expect("the stream ends");
        assert!(rest.iter().all(Result::is_ok), "the stream broke instead of ending: {rest:?}");
    }
}

#[tokio::test]
async fn the_binary_exits_promptly_on_sigterm_with_a_stream_open() {
    let RunningBinary { process: mut server, url: address } = RunningBinary::start(
        env!("CARGO_BIN_EXE_herald"),
        &[("LEPTOS_SITE_ADDR", "127.0.0.1:0"), ("RUST_LOG", "herald=info")],
    )
    .await;
    let response = reqwest::get(format!("{address}/remote")).await.unwrap();
    let mut events = eventsource_stream::Eventsource::eventsource(response.bytes_stream());
    next_event(&mut events).await;

    let started = tokio::time::Instant::now();
    let pid = server.id().expect("a running server").to_string();
    let kill = Command::new("kill").args(["-TERM", &pid]).status().await.unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(PATIENCE, server.wait()).await.expect("the server exits").unwrap();

    assert!(status.success(), "the server exited with {status}");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "SIGTERM took {took:?} to stop the server");
}
