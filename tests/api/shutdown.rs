//! Graceful shutdown: open streams end, and the server stops well inside its grace time.

use std::time::Duration;

use futures::StreamExt;
use tokio::process::Command;

use crate::helpers::{next_event, spawn_app, spawn_app_with, RunningBinary, PATIENCE, TOKEN};

#[tokio::test]
async fn shutdown_ends_open_streams_with_a_shutdown_event_and_stops_within_2_s() {
    let app = spawn_app().await;
    let mut streams = vec![];
    for path in ["/remote", "/remote", "/events?topic=a", "/events?topic=a&topic=b"] {
        streams.push((path, app.subscribe(path).await));
    }
    let published = app.publish_ok("a", "before shutdown").await;
    for (_, events) in &mut streams {
        next_event(events).await;
    }

    let took = app.shut_down().await;

    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    for (path, mut events) in streams {
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
        let last = rest.last().and_then(|last| last.as_ref().ok()).expect("a last event");
        assert_eq!(last.event, "shutdown", "the stream did not say goodbye: {rest:?}");
        // The parser reports the last event id seen: the farewell, without an id, leaves it as it was.
        let resume_point = if path.starts_with("/events") { published.as_str() } else { "" };
        assert_eq!(last.id, resume_point, "{path}: the farewell moved the resume point");
    }
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_request_cannot_hold_shutdown_past_the_grace_time() {
    use tokio::io::AsyncWriteExt;

    let app = spawn_app_with(|config| config.shutdown_grace = Duration::from_millis(500)).await;
    let mut stuck = tokio::net::TcpStream::connect(app.address).await.unwrap();
    // Authorised, so the server waits for the body it was promised (an unauthorised request is
    // refused before its body is read).
    let head = format!(
        "POST /publish HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    stuck.write_all(head.as_bytes()).await.unwrap();
    // Connections are accepted in order: once a later one is answered, the stuck one is in.
    assert_eq!(app.get("/healthz").await.status(), 200);

    let took = app.shut_down().await;

    assert!(took >= Duration::from_millis(400), "shutdown did not wait for the request in flight: {took:?}");
    assert!(took < Duration::from_millis(1500), "shutdown took {took:?} with a 500 ms grace time");
}

#[tokio::test]
async fn the_binary_exits_promptly_on_sigterm_with_a_stream_open() {
    let RunningBinary { process: mut server, url: address, .. } = RunningBinary::start(
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

/// Runs the real binary with `env` (and nothing else of this process's environment) until it
/// exits by itself: its exit code and what it wrote to stderr.
async fn refused_start(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .env_clear()
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(PATIENCE, run).await.expect("the server exits by itself").unwrap();
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test]
async fn a_bad_setting_stops_the_server_with_exit_code_2_and_one_line_naming_it() {
    for (what, env, names) in [
        ("a zero keep-alive", vec![("HERALD_KEEP_ALIVE", "0s")], "--keep-alive"),
        ("a short session key", vec![("HERALD_SESSION_KEY", "short")], "--session-key"),
        (
            "a callback URL that is not http",
            vec![("HERALD_CALLBACK_URL", "ftp://herald")],
            "HERALD_CALLBACK_URL",
        ),
        (
            "a public origin with a path",
            vec![("HERALD_PUBLIC_ORIGIN", "https://app.example/app")],
            "--public-origin",
        ),
        (
            "a short key among the session keys",
            vec![("HERALD_SESSION_KEY", "a signing key that is long enough to sign,short")],
            "--session-key",
        ),
        ("a metrics address that is not one", vec![("HERALD_METRICS_ADDR", "localhost")], "--metrics-addr"),
        (
            "a development secret beyond loopback",
            vec![("LEPTOS_SITE_ADDR", "0.0.0.0:0"), ("HERALD_PUBLISH_TOKEN", "dev-only-publish-token")],
            "HERALD_PUBLISH_TOKEN",
        ),
    ] {
        let (code, stderr) = refused_start(&env).await;
        assert_eq!(code, Some(2), "{what}: {stderr}");
        let lines: Vec<_> = stderr.lines().filter(|line| line.starts_with("error:")).collect();
        assert_eq!(lines.len(), 1, "{what}: {stderr}");
        assert!(lines[0].contains(names), "{what}: {stderr}");
    }
}

#[tokio::test]
async fn development_secrets_are_fine_on_loopback() {
    let server = RunningBinary::start(
        env!("CARGO_BIN_EXE_herald"),
        &[("LEPTOS_SITE_ADDR", "127.0.0.1:0"), ("HERALD_PUBLISH_TOKEN", "dev-only-publish-token")],
    )
    .await;
    assert!(server.url.starts_with("http://127.0.0.1:"));
}

#[tokio::test]
async fn a_server_whose_log_reader_has_gone_still_answers_and_still_stops_on_sigterm() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let mut server = Command::new(env!("CARGO_BIN_EXE_herald"))
        .env_clear()
        .envs([("LEPTOS_SITE_ADDR", "127.0.0.1:0"), ("RUST_LOG", "herald=info,tower_http=info")])
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut log = BufReader::new(server.stderr.take().unwrap()).lines();
    let url = tokio::time::timeout(PATIENCE, async {
        loop {
            let line = log.next_line().await.unwrap().expect("the server logs its address");
            if let Some((_, url)) = line.split_once("listening on ") {
                break url.trim().to_owned();
            }
        }
    })
    .await
    .expect("the server starts");
    // Whoever read the logs (a terminal, a pipe to a collector) is gone.
    drop(log);

    let health = reqwest::get(format!("{url}/healthz")).await.expect("an answer, not a closed connection");
    assert_eq!(health.status(), 200);
    let pid = server.id().expect("a running server").to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().await.unwrap().success());
    let status =
        tokio::time::timeout(PATIENCE, server.wait()).await.expect("the server exits on SIGTERM").unwrap();
    assert!(status.success(), "the server exited with {status}");
}
