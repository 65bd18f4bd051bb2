//! HTTP hygiene: request ids, the request and stream log lines, compression (never of a stream),
//! the page's security headers, and CORS for `/events`.

use std::time::Duration;

use crate::helpers::{next_event, read_raw_until, spawn_app, spawn_app_with, RunningBinary, PATIENCE};

#[tokio::test]
async fn a_request_id_is_echoed_back_or_made_up() {
    let app = spawn_app().await;

    let given = app.http.get(app.url("/healthz")).header("x-request-id", "trace-7f3a").send().await.unwrap();
    let made = app.get("/healthz").await;

    assert_eq!(given.headers()["x-request-id"], "trace-7f3a");
    let made = made.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(made.len(), 36, "a UUID: {made}");
}

#[tokio::test]
async fn pages_are_compressed_and_streams_are_not() {
    let app = spawn_app().await;
    let gzip = |path: &str| app.http.get(app.url(path)).header("accept-encoding", "gzip").send();

    let page = gzip("/").await.unwrap();
    assert_eq!(page.headers().get("content-encoding").map(|v| v.to_str().unwrap()), Some("gzip"));

    let stream = gzip("/remote").await.unwrap();
    assert_eq!(stream.headers().get("content-encoding"), None);
    let opening = read_raw_until(stream, |text| text.contains("\n\ndata: ")).await;
    assert!(opening.starts_with("retry: "), "a compressed or held-back stream: {opening:?}");
}

#[tokio::test]
async fn the_page_allows_only_its_own_scripts_its_nonce_and_wasm() {
    let app = spawn_app().await;

    let page = app.get("/").await;
    let header =
        |name: &str| page.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let (policy, nosniff, referrer, cache) = (
        header("content-security-policy"),
        header("x-content-type-options"),
        header("referrer-policy"),
        header("cache-control"),
    );
    let html = page.text().await.unwrap();

    assert!(policy.contains("script-src 'self' 'wasm-unsafe-eval' 'nonce-"), "{policy}");
    assert!(policy.contains("default-src 'self'") && policy.contains("object-src 'none'"), "{policy}");
    let nonce = policy.split("'nonce-").nth(1).and_then(|rest| rest.split('\'').next()).unwrap();
    assert!(
        html.contains(&format!(r#"<script type="module" nonce="{nonce}""#)),
        "the hydration script lacks the nonce: {html}"
    );
    assert_eq!((nosniff.as_str(), referrer.as_str(), cache.as_str()), ("nosniff", "no-referrer", "no-cache"));

    let other = app.get("/").await.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert_ne!(other, policy, "a nonce is for one response only");
}

#[tokio::test]
async fn events_allow_no_other_origin_by_default_and_exactly_the_listed_ones_when_set() {
    let origin_allowed = |app: &crate::helpers::TestApp, origin: &'static str| {
        let request = app.http.get(app.url("/events?topic=a")).header("origin", origin).send();
        async move {
            let response = request.await.unwrap();
            response.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_owned())
        }
    };
    let closed = spawn_app().await;
    assert_eq!(origin_allowed(&closed, "https://app.example").await, None);

    let open =
        spawn_app_with(|config| config.cors_allow_origins = vec!["https://app.example".parse().unwrap()])
            .await;
    assert_eq!(origin_allowed(&open, "https://app.example").await.as_deref(), Some("https://app.example"));
    assert_eq!(origin_allowed(&open, "https://evil.example").await, None);
}

/// The log filter the image runs with: the Dockerfile's `RUST_LOG`, if it sets one.
fn image_log_filter() -> Option<String> {
    let dockerfile = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    dockerfile.lines().filter(|line| !line.trim_start().starts_with('#')).find_map(|line| {
        let (_, value) = line.split_once("RUST_LOG=")?;
        Some(value.split([' ', '\\']).next()?.trim_matches('"').to_owned())
    })
}

#[tokio::test]
async fn each_request_logs_one_line_with_its_id_and_client_and_each_stream_its_open_and_close() {
    // As the image runs it: the documented lines must come with its log filter.
    let filter = image_log_filter();
    let mut env = vec![
        ("LEPTOS_SITE_ADDR", "127.0.0.1:0"),
        ("HERALD_KEEP_ALIVE", "100ms"),
        ("HERALD_TRUSTED_PROXIES", "127.0.0.1"),
    ];
    env.extend(filter.as_deref().map(|filter| ("RUST_LOG", filter)));
    let server = RunningBinary::start(env!("CARGO_BIN_EXE_herald"), &env).await;
    let http = reqwest::Client::new();
    http.get(format!("{}/healthz", server.url))
        .header("x-request-id", "ping-1")
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    let stream =
        http.get(format!("{}/remote", server.url)).header("x-request-id", "stream-1").send().await.unwrap();
    let mut events = eventsource_stream::Eventsource::eventsource(stream.bytes_stream());
    next_event(&mut events).await;
    drop(events);

    let closed = async {
        while !server.log().contains("stream closed") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(PATIENCE, closed).await.expect("the stream's close is logged");
    let log = server.log();
    let lines = |needle: &str| log.lines().filter(|line| line.contains(needle)).collect::<Vec<_>>();

    let ping = lines("id=ping-1");
    assert_eq!(ping.len(), 1, "one line for the request: {log}");
    assert!(
        ping[0].contains("path=/healthz") && ping[0].contains("status=200") && ping[0].contains("latency="),
        "{log}"
    );
    assert!(ping[0].contains("client=203.0.113.9"), "the forwarded client is logged: {log}");
    let stream = lines("id=stream-1");
    assert!(stream.iter().all(|line| line.contains("client=127.0.0.1")), "{log}");
    assert!(stream.iter().any(|line| line.contains("stream opened")), "{log}");
    assert!(stream.iter().any(|line| line.contains("stream closed") && line.contains("seconds=")), "{log}");
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .env_clear()
        .envs([("LEPTOS_SITE_ADDR", "127.0.0.1:0"), ("HERALD_LOG_FORMAT", "json")])
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();

    let listening = async {
        loop {
            let text = lines.next_line().await.unwrap().expect("the server logs until it listens");
            let line: serde_json::Value =
                serde_json::from_str(&text).unwrap_or_else(|err| panic!("{err}: {text}"));
            if line["fields"]["message"].as_str().is_some_and(|m| m.starts_with("listening on http://")) {
                break line;
            }
        }
    };
    let line = tokio::time::timeout(PATIENCE, listening).await.expect("a JSON line saying where it listens");
    assert_eq!(line["level"], "INFO");
}
