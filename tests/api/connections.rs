//! Every connection has a deadline, whatever it speaks, and there is a ceiling on how many are
//! open: no anonymous client can hold the server's sockets.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};

use crate::helpers::{spawn_app_with, TestApp, PATIENCE};

const DEADLINE: Duration = Duration::from_millis(400);

/// A server whose requests must arrive within [`DEADLINE`], on the fast path or through hyper
/// alone.
async fn strict_app(fast_path: bool) -> TestApp {
    spawn_app_with(|config| {
        config.request_timeout = DEADLINE;
        config.stream_fast_path = fast_path;
    })
    .await
}

/// Waits for the server to close `socket`, and returns how long after `since` it did.
async fn closed_after(mut socket: TcpStream, since: Instant) -> Duration {
    let mut rest = vec![];
    let closing = async {
        loop {
            match socket.read_buf(&mut rest).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(PATIENCE, closing).await.expect("the server closed the connection");
    since.elapsed()
}

/// Reads from `socket` into `seen` until it holds `wanted`: `Ok` then, or `Err` with what came
/// if the connection closed first.
async fn read_until(socket: &mut TcpStream, seen: &mut Vec<u8>, wanted: &str) -> Result<(), String> {
    while !String::from_utf8_lossy(seen).contains(wanted) {
        if socket.read_buf(seen).await.unwrap_or(0) == 0 {
            return Err(String::from_utf8_lossy(seen).into_owned());
        }
    }
    Ok(())
}

/// As [`read_until`], failing the test if `wanted` does not come within [`PATIENCE`].
async fn expect_within_patience(socket: &mut TcpStream, seen: &mut Vec<u8>, wanted: &str) {
    match tokio::time::timeout(PATIENCE, read_until(socket, seen, wanted)).await {
        Ok(Ok(())) => {}
        Ok(Err(got)) => panic!("closed before {wanted:?}: {got:?}"),
        Err(_) => panic!("no {wanted:?} within {PATIENCE:?}"),
    }
}

const HEALTHY: &str = "\"status\":\"ok\"";

/// Whether `waited` is the deadline: not before it, and not long after.
fn is_the_deadline(waited: Duration, deadline: Duration) -> bool {
    waited >= deadline - Duration::from_millis(50) && waited < deadline + Duration::from_secs(1)
}

#[tokio::test]
async fn connections_that_never_finish_their_first_request_are_closed_at_the_request_deadline() {
    let body_that_never_comes =
        b"POST /publish HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer test-publish-token\r\n\
        Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            .as_slice();
    for fast_path in [true, false] {
        let app = strict_app(fast_path).await;
        for (what, sent) in [
            ("a publish whose body never comes", body_that_never_comes),
            ("the HTTP/2 cleartext preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".as_slice()),
            ("half of that preface", b"PRI * HTTP/2".as_slice()),
            ("a head without its end", b"GET /healthz HTTP/1.1\r\nHost: h\r\n".as_slice()),
            ("nothing at all", b"".as_slice()),
        ] {
            let opened = Instant::now();
            let mut socket = TcpStream::connect(app.address).await.unwrap();
            socket.write_all(sent).await.unwrap();

            let waited = closed_after(socket, opened).await;
            let path = if fast_path { "fast path" } else { "hyper only" };
            if what.contains("preface") && waited < DEADLINE {
                continue; // refused as the malformed HTTP/1.1 it is, before any deadline
            }
            assert!(is_the_deadline(waited, DEADLINE), "{what} ({path}): closed after {waited:?}");
        }
    }
}

#[tokio::test]
async fn a_keep_alive_connection_left_idle_is_closed_after_the_idle_timeout() {
    let idle = Duration::from_millis(500);
    let app = spawn_app_with(|config| config.idle_timeout = idle).await;
    let mut socket = TcpStream::connect(app.address).await.unwrap();
    socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n").await.unwrap();
    expect_within_patience(&mut socket, &mut Vec::new(), HEALTHY).await;
    let answered = Instant::now();

    let waited = closed_after(socket, answered).await;
    assert!(is_the_deadline(waited, idle), "closed {waited:?} after the answer");
}

#[tokio::test]
async fn a_later_request_on_a_keep_alive_connection_is_served_within_the_idle_time() {
    let app = spawn_app_with(|config| config.idle_timeout = Duration::from_secs(10)).await;
    let mut socket = TcpStream::connect(app.address).await.unwrap();
    for _ in 1..=3 {
        socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n").await.unwrap();
        expect_within_patience(&mut socket, &mut Vec::new(), HEALTHY).await;
    }
}

/// Asks for `/healthz` on `socket`, keeping it open, and says whether the answer came within
/// `within`.
async fn answered_within(socket: &mut TcpStream, within: Duration) -> bool {
    socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n").await.unwrap();
    let answer = tokio::time::timeout(within, read_until(socket, &mut Vec::new(), HEALTHY)).await;
    answer.map(|read| read.expect("an answer, not a closed connection")).is_ok()
}

#[tokio::test]
async fn at_the_connection_ceiling_new_clients_wait_and_are_served_when_a_place_frees() {
    const CEILING: usize = 3;
    let app = spawn_app_with(|config| config.max_connections = Some(CEILING as u32)).await;
    // Connections are opened until one is not served: the harness's own client may hold a place.
    let mut held = Vec::new();
    let mut waiting = loop {
        let mut socket = TcpStream::connect(app.address).await.unwrap();
        if !answered_within(&mut socket, Duration::from_millis(300)).await {
            break socket;
        }
        held.push(socket);
        assert!(held.len() <= CEILING, "{} connections served past a ceiling of {CEILING}", held.len());
    };

    drop(held.pop().expect("at least one connection was served"));
    // The waiting client is served once a place frees.
    expect_within_patience(&mut waiting, &mut Vec::new(), HEALTHY).await;
}

#[tokio::test]
async fn a_stream_client_that_sends_bytes_after_its_request_is_closed_by_the_fast_path() {
    let app = spawn_app_with(|config| config.stream_fast_path = true).await;
    let mut socket = TcpStream::connect(app.address).await.unwrap();
    socket.write_all(b"GET /events?topic=a HTTP/1.1\r\nHost: h\r\n\r\n").await.unwrap();
    expect_within_patience(&mut socket, &mut Vec::new(), "retry:").await;

    socket.write_all(b"anything at all").await.unwrap();
    closed_after(socket, Instant::now()).await;
}

#[tokio::test]
async fn a_server_started_with_a_soft_open_file_limit_of_1024_serves_3000_streams() {
    use crate::helpers::{RunningBinary, TOKEN};
    const STREAMS: usize = 3000;

    // This test's own end of the streams needs the files too.
    rlimit::increase_nofile_limit(u64::MAX).unwrap();
    let server = RunningBinary::start_with_open_file_limit(
        env!("CARGO_BIN_EXE_herald"),
        &[
            ("LEPTOS_SITE_ADDR", "127.0.0.1:0"),
            ("HERALD_PUBLISH_TOKEN", TOKEN),
            ("HERALD_MAX_STREAMS_PER_CLIENT", "5000"),
        ],
        1024,
    )
    .await;
    let address = server.url.trim_start_matches("http://").to_owned();
    let mut streams = Vec::with_capacity(STREAMS);
    for _ in 0..STREAMS {
        let mut socket = TcpStream::connect(&address).await.expect("connected");
        socket.write_all(b"GET /events?topic=many HTTP/1.1\r\nHost: h\r\n\r\n").await.unwrap();
        streams.push(socket);
    }
    // Every stream is open before the event goes out.
    let mut opened = Vec::with_capacity(STREAMS);
    for mut socket in streams {
        let mut seen = Vec::new();
        expect_within_patience(&mut socket, &mut seen, "retry:").await;
        opened.push((socket, seen));
    }
    let published = reqwest::Client::new()
        .post(format!("{}/publish", server.url))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"topic": "many", "data": "to all 3000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 202);

    let mut reading = tokio::task::JoinSet::new();
    for (mut socket, mut seen) in opened {
        reading.spawn(async move { read_until(&mut socket, &mut seen, "data: to all 3000").await });
    }
    let mut served = 0;
    let collected = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(outcome) = reading.join_next().await {
            match outcome.unwrap() {
                Ok(()) => served += 1,
                Err(answer) => panic!("a stream was refused or closed: {answer:?}"),
            }
        }
    })
    .await;
    assert!(collected.is_ok(), "only {served} of {STREAMS} streams got the event");
    assert_eq!(served, STREAMS);
    assert!(!server.log().contains("cannot raise"), "{}", server.log());
}
