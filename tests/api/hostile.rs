//! Hostile clients: slowloris connections, readers that stall, and requests that never finish.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
    time::Instant,
};

use crate::helpers::{gauge, next_event, spawn_app_with, PATIENCE};

/// Opens a connection and sends the first line of a request, but never the end of its headers.
async fn trickle_headers(app: &crate::helpers::TestApp) -> TcpStream {
    let mut socket = TcpStream::connect(app.address).await.unwrap();
    socket.write_all(b"GET /events?topic=a HTTP/1.1\r\nHost: herald\r\n").await.unwrap();
    socket
}

#[tokio::test]
async fn a_client_that_trickles_its_headers_is_cut_off_after_the_request_timeout() {
    let app = spawn_app_with(|config| config.request_timeout = Duration::from_millis(300)).await;
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
        config.request_timeout = Duration::from_secs(30);
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

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_after_the_write_timeout_and_frees_its_slot() {
    let app = spawn_app_with(|config| {
        config.max_subscribers = 1;
        config.write_timeout = Duration::from_secs(1);
        config.send_buffer = 4096;
    })
    .await;
    // A small receive window, and after the stream opens, no more reading.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(app.address).await.unwrap();
    stalled.write_all(b"GET /events?topic=a HTTP/1.1\r\nHost: herald\r\n\r\n").await.unwrap();
    let mut opening = vec![0; 1024];
    let read = stalled.read(&mut opening).await.unwrap();
    assert!(String::from_utf8_lossy(&opening[..read]).starts_with("HTTP/1.1 200"));
    assert_eq!(app.get("/events?topic=b").await.status(), 503, "the stream holds the only slot");

    // Far more than the socket buffers take: the server's writes now wait on the client.
    for _ in 0..64 {
        app.publish_ok("a", &"x".repeat(32 * 1024)).await;
    }
    let freed = async {
        while gauge(&app.url("/metrics"), "herald_streams_open").await > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(PATIENCE, freed)
        .await
        .expect("the stalled stream is closed within the write timeout");
    assert_eq!(app.get("/events?topic=b").await.status(), 200, "its slot serves another client");
    let mut rest = vec![];
    tokio::time::timeout(PATIENCE, stalled.read_to_end(&mut rest)).await.unwrap().unwrap();
    assert!(!rest.ends_with(b"\r\n0\r\n\r\n"), "the connection was cut, not the stream ended");
}

/// Sends raw bytes as one request on a fresh connection; returns the status code.
async fn raw_status(address: &str, request: &[u8]) -> u16 {
    let mut socket = TcpStream::connect(address).await.unwrap();
    socket.write_all(request).await.unwrap();
    let mut head = vec![];
    let mut buffer = [0u8; 1024];
    while !head.windows(2).any(|w| w == b"\r\n") {
        let read =
            tokio::time::timeout(PATIENCE, socket.read(&mut buffer)).await.expect("an answer").unwrap();
        assert!(read > 0, "closed without an answer to {:?}", String::from_utf8_lossy(&request[..40]));
        head.extend_from_slice(&buffer[..read]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {line:?}"))
}

#[tokio::test]
async fn every_route_answers_bad_input_with_its_4xx_and_the_server_never_panics() {
    use crate::helpers::{RunningBinary, CALLBACK_SECRET, TOKEN};

    let server = RunningBinary::start(
        env!("CARGO_BIN_EXE_herald"),
        &[
            ("LEPTOS_SITE_ADDR", "127.0.0.1:0"),
            ("HERALD_PUBLISH_TOKEN", TOKEN),
            ("HERALD_CALLBACK_SECRET", CALLBACK_SECRET),
            ("RUST_LOG", "herald=info"),
        ],
    )
    .await;
    let address = server.url.trim_start_matches("http://").to_owned();
    let post = |path: &str, content_type: &str, body: &[u8], extra: &str| {
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: {content_type}\r\nContent-Length: {}\r\n{extra}\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        request
    };
    let json = |path: &str, body: &[u8], extra: &str| post(path, "application/json", body, extra);
    let get = |target: &[u8], extra: &[u8]| {
        let mut request = b"GET ".to_vec();
        request.extend_from_slice(target);
        request.extend_from_slice(b" HTTP/1.1\r\nHost: h\r\nConnection: close\r\n");
        request.extend_from_slice(extra);
        request.extend_from_slice(b"\r\n");
        request
    };
    let big = vec![b'x'; 70 * 1024];
    let mut oversized = br#"{"topic":"a","data":""#.to_vec();
    oversized.extend_from_slice(&big);
    oversized.extend_from_slice(b"\"}");

    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("publish: oversized body", json("/publish", &oversized, ""), 413),
        ("publish: invalid UTF-8", json("/publish", b"{\"topic\":\"a\",\"data\":\"\xff\"}", ""), 400),
        ("publish: wrong content type", post("/publish", "text/csv", b"{}", ""), 415),
        ("publish: LF in the topic", json("/publish", br#"{"topic":"a\nb","data":"x"}"#, ""), 400),
        (
            "publish: NUL in the event",
            json("/publish", br#"{"topic":"a","event":"\u0000","data":"x"}"#, ""),
            400,
        ),
        (
            "publish: CR in the event",
            json("/publish", br#"{"topic":"a","event":"a\rb","data":"x"}"#, ""),
            400,
        ),
        ("publish: a NUL in a header", json("/publish", b"{}", "Idempotency-Key: a\0b\r\n"), 400),
        (
            "publish: a bad Idempotency-Key",
            json("/publish", br#"{"topic":"a","data":"x"}"#, "Idempotency-Key: é\r\n"),
            400,
        ),
        ("callback: oversized body", json("/callbacks/x", &oversized, ""), 413),
        ("callback: no signature", json("/callbacks/x", b"{}", ""), 401),
        ("callback: a bad signature", json("/callbacks/x", b"{}", "Herald-Signature: t=1,v2=00\r\n"), 400),
        (
            "callback: an expired signature",
            json(
                "/callbacks/x",
                b"{}",
                &format!(
                    "Herald-Signature: {}\r\n",
                    herald::testing::sign(CALLBACK_SECRET.as_bytes(), 1_000_000_000, "x", b"{}")
                ),
            ),
            401,
        ),
        ("events: CR in a topic", get(b"/events?topic=a%0Db", b""), 400),
        ("events: NUL in a topic", get(b"/events?topic=a%00b", b""), 400),
        ("events: invalid UTF-8 in a topic", get(b"/events?topic=%C3%28", b""), 400),
        ("events: a raw CR in the request line", get(b"/events?topic=a\rb", b""), 400),
        ("events: a NUL in Last-Event-ID", get(b"/events?topic=a", b"Last-Event-ID: 1\x002\r\n"), 400),
        (
            "events: a 200 KB header",
            get(
                b"/events?topic=a",
                &[b"Last-Event-ID: ".as_slice(), &vec![b'9'; 200 * 1024], b"\r\n"].concat(),
            ),
            431,
        ),
        ("remote: POST", json("/remote", b"{}", ""), 405),
        ("page: DELETE", b"DELETE / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".to_vec(), 405),
        ("not HTTP at all", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(), 400),
    ];
    for (what, request, status) in cases {
        assert_eq!(raw_status(&address, &request).await, status, "{what}");
    }

    // Resuming from ids that are not ours is not an error: the stream opens with a reset.
    for last_event_id in [b"\xff\xfe".as_slice(), &vec![b'7'; 8 * 1024], b"1-2-3", b"-"] {
        let request =
            get(b"/events?topic=a", &[b"Last-Event-ID: ".as_slice(), last_event_id, b"\r\n"].concat());
        assert_eq!(
            raw_status(&address, &request).await,
            200,
            "{:.20?}",
            String::from_utf8_lossy(last_event_id)
        );
    }

    let log = server.log();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
}
