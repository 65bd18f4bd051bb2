//! Hostile clients: slowloris connections, and requests that never finish.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};

use crate::helpers::{next_event, spawn_app_with, PATIENCE};

/// Opens a connection and sends the first line of a request, but never the end of its headers.
async fn trickle_headers(app: &crate::helpers::TestApp) -> TcpStream {
    let mut socket = TcpStream::connect(app.address).await.unwrap();
    socket.write_all(b"GET /events?topic=a HTTP/1.1\r\nHost: herald\r\n").await.unwrap();
    socket
}

#[tokio::test]
async fn a_client_that_trickles_its_headers_is_cut_off_after_the_header_read_timeout() {
    let app = spawn_app_with(|config| config.header_read_timeout = Duration::from_millis(300)).await;
    let mut socket = trickle_headers(&app).await;
    let started = Instant::now();

    // One more header line, well inside the timeout, must not extend it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    socket.write_all(b"X-Slow: 1\r\n").await.unwrap();
    let mut rest = vec![];
    let closed = tokio::time::timeout(PATIENCE, socket.read_to_end(&mut rest)).await;

    assert!(closed.is_ok(), "the connection stayed open for {PATIENCE:?}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250), "closed after only {waited:?}");
    assert!(waited < Duration::from_secs(2), "closed only after {waited:?}");
}

#[tokio::test]
async fn slowloris_connections_do_not_use_up_the_stream_limit() {
    let app = spawn_app_with(|config| {
        config.max_subscribers = 2;
        config.header_read_timeout = Duration::from_secs(30);
    })
    .await;
    let mut slow = vec![];
    for _ in 0..20 {
        slow.push(trickle_headers(&app).await);
    }

    let mut first = app.subscribe("/events?topic=a").await;
    let mut second = app.subscribe("/remote").await;
    let id = app.publish_ok("a", "still served").await;

    assert_eq!(next_event(&mut first).await.id, id);
    next_event(&mut second).await;
}
