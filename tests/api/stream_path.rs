//! What reaches the raw-socket fast path for streams and what goes to hyper: whichever path a
//! request takes, the client gets the same answer, and bytes the fast path read are never lost.

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{spawn_app, TestApp, PATIENCE};

/// Sends `parts` one write at a time on a new connection, and reads until `enough` is in the
/// answer (or the connection closes), failing after [`PATIENCE`].
async fn exchange(app: &TestApp, parts: &[&[u8]], enough: &str) -> String {
    let mut socket = TcpStream::connect(app.address).await.unwrap();
    for part in parts {
        socket.write_all(part).await.unwrap();
        socket.flush().await.unwrap();
        // A separate segment each: the server sees the head arrive in pieces.
        tokio::task::yield_now().await;
    }
    let mut answer = Vec::new();
    let reading = async {
        let mut chunk = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains(enough) {
            match socket.read(&mut chunk).await.unwrap() {
                0 => break,
                n => answer.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(PATIENCE, reading).await.expect("an answer in time");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn stream_requests_of_every_shape_open_a_stream_whichever_path_serves_them() {
    let app = spawn_app().await;
    let long_header = format!("X-Padding: {}\r\n", "p".repeat(10_000));
    for (shape, request) in [
        ("plain HTTP/1.1", "GET /events?topic=a HTTP/1.1\r\nHost: h\r\n\r\n".to_owned()),
        ("HTTP/1.0", "GET /events?topic=a HTTP/1.0\r\nHost: h\r\n\r\n".to_owned()),
        (
            "a head longer than the fast path reads",
            format!("GET /events?topic=a HTTP/1.1\r\nHost: h\r\n{long_header}\r\n"),
        ),
        (
            "Expect: 100-continue",
            "GET /events?topic=a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n".to_owned(),
        ),
        ("a zero Content-Length", "GET /remote HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n".to_owned()),
    ] {
        let answer = exchange(&app, &[request.as_bytes()], "retry:").await;
        assert!(answer.starts_with("HTTP/1."), "{shape}: {answer:?}");
        assert!(answer.contains(" 200 OK\r\n"), "{shape}: {answer:?}");
        assert!(
            answer.to_ascii_lowercase().contains("content-type: text/event-stream"),
            "{shape}: {answer:?}"
        );
    }
}

#[tokio::test]
async fn a_request_head_that_arrives_in_pieces_loses_none_of_them() {
    let app = spawn_app().await;
    for (path, expected) in [("/healthz", "\"status\":\"ok\""), ("/events?topic=a", "retry:")] {
        let (first, rest) = path.split_at(4);
        let last = format!("{rest} HTTP/1.1\r\nHost: h\r\n\r\n");
        let answer = exchange(&app, &[b"GET ", first.as_bytes(), last.as_bytes()], expected).await;
        assert!(answer.contains(" 200 OK\r\n") && answer.contains(expected), "{path}: {answer:?}");
    }
}

#[tokio::test]
async fn a_refused_stream_request_gets_the_api_error_whole() {
    let app = spawn_app().await;

    let answer = exchange(&app, &[b"GET /events HTTP/1.1\r\nHost: h\r\n\r\n"], "\"field\":\"topic\"").await;

    assert!(answer.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{answer:?}");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let length: usize = head
        .lines()
        .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
        .expect("a content length")
        .parse()
        .unwrap();
    assert_eq!(length, body.len(), "{answer:?}");
}

#[tokio::test]
async fn requests_pipelined_on_one_write_go_to_hyper_whole() {
    let app = spawn_app().await;
    let health_then_stream =
        b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\nGET /events?topic=a HTTP/1.1\r\nHost: h\r\n\r\n";
    let stream_then_health =
        b"GET /events?topic=a HTTP/1.1\r\nHost: h\r\n\r\nGET /healthz HTTP/1.1\r\nHost: h\r\n\r\n";

    let answer = exchange(&app, &[health_then_stream], "retry:").await;
    assert!(answer.contains("\"status\":\"ok\"") && answer.contains("retry:"), "{answer:?}");
    let answer = exchange(&app, &[stream_then_health], "retry:").await;
    assert!(answer.contains(" 200 OK\r\n") && answer.contains("retry:"), "{answer:?}");
}
