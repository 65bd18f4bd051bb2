//! Real servers for the tests: `spawn_app()` runs Herald in-process on 127.0.0.1 port 0,
//! `loadgen::RunningBinary` runs one of the package's binaries, and the readers wait for what they see.
//! `HERALD_TEST_BACKEND=redis` runs every `spawn_app` on its own throwaway Redis instead of memory,
//! and `HERALD_TEST_STREAMS=hyper` serves its streams through hyper instead of the fast path.

use std::{io, net::SocketAddr, time::Duration};

use eventsource_stream::{Event, EventStream, Eventsource};
use futures::{Stream, StreamExt};
use leptos::config::LeptosOptions;
use tokio::{sync::oneshot, task::JoinHandle};

use loadgen::{RedisServer, RunningBinary, PATIENCE};

use crate::protocol::JobView;
use crate::server::{Application, Config};

/// The publish token of every test server.
pub const TOKEN: &str = "test-publish-token";

pub struct TestApp {
    pub address: SocketAddr,
    /// Where `/metrics` is served when the test gave it a listener of its own (`metrics_addr`).
    pub metrics_address: Option<SocketAddr>,
    pub http: reqwest::Client,
    stop: oneshot::Sender<()>,
    server: JoinHandle<io::Result<()>>,
    /// The server's Redis under `HERALD_TEST_BACKEND=redis`. Last, so that it is dropped last;
    /// [`shut_down`](Self::shut_down) drops it only once the server has stopped.
    pub redis: Option<RedisServer>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a server whose defaults `adjust` may change first, on the backend that
/// `HERALD_TEST_BACKEND` names: `memory` (the default) or `redis`, a [`RedisServer`] of its own.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = Config::defaults();
    config.publish_token = Some(TOKEN.into());
    config.callback_secret = Some(CALLBACK_SECRET.into());
    config.worker_token = Some(WORKER_TOKEN.into());
    config.session_keys = vec![SESSION_KEY.into()];
    let redis = match std::env::var("HERALD_TEST_BACKEND").as_deref() {
        Err(std::env::VarError::NotPresent) | Ok("memory") => None,
        Ok("redis") => Some(RedisServer::start().await),
        other => panic!("HERALD_TEST_BACKEND is {other:?}: it must be unset, `memory` or `redis`"),
    };
    // Before `adjust`, so that a test can still choose another Redis, or none.
    if let Some(redis) = &redis {
        config.redis_url = Some(redis.url().parse().expect("a Redis URL"));
    }
    config.stream_fast_path = match std::env::var("HERALD_TEST_STREAMS").as_deref() {
        Err(std::env::VarError::NotPresent) | Ok("fast") => true,
        Ok("hyper") => false,
        other => panic!("HERALD_TEST_STREAMS is {other:?}: it must be unset, `fast` or `hyper`"),
    };
    adjust(&mut config);
    let options = LeptosOptions::builder()
        .output_name("herald")
        .site_root("target/site")
        .site_addr(SocketAddr::from(([127, 0, 0, 1], 0)))
        .build();
    let app = Application::build(config, options).await.expect("binds port 0");
    let address = app.local_addr().expect("a bound address");
    let metrics_address = app.metrics_addr().map(|bound| bound.expect("a bound metrics address"));
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let mut app = TestApp { address, metrics_address, http: reqwest::Client::new(), stop, server, redis };
    app.http = app.new_session().await;
    app
}

/// The session key of every test server.
pub const SESSION_KEY: &str = "the test servers' session key, 32 bytes or more";

/// The value of one gauge or counter on a server's `/metrics` page.
pub async fn gauge(metrics_url: &str, name: &str) -> u64 {
    let text = reqwest::get(metrics_url).await.unwrap().text().await.unwrap();
    let line = text.lines().find(|line| line.starts_with(&format!("{name} "))).expect("the metric");
    line[name.len() + 1..].parse().unwrap()
}

/// The secret of the callback signatures in the tests.
pub const CALLBACK_SECRET: &str = "test-callback-secret";

/// The token the test worker requires and the test servers send.
pub const WORKER_TOKEN: &str = "test-worker-token";

/// The `worker` binary at `path` (a test's `env!("CARGO_BIN_EXE_worker")`), taking each job for
/// `min..=max` (e.g. `"100ms"`, `"1h"`).
pub async fn start_worker(path: &str, min: &str, max: &str) -> RunningBinary {
    RunningBinary::start(
        path,
        &[
            ("HERALD_WORKER_ADDR", "127.0.0.1:0"),
            ("HERALD_CALLBACK_SECRET", CALLBACK_SECRET),
            ("HERALD_WORKER_TOKEN", WORKER_TOKEN),
            ("HERALD_WORKER_MIN", min),
            ("HERALD_WORKER_MAX", max),
            ("RUST_LOG", "worker=info"),
        ],
    )
    .await
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// A client that has loaded the page, as a browser does before anything else: a cookie
    /// store holding the session the page minted. Each is a browser session of its own.
    pub async fn new_session(&self) -> reqwest::Client {
        let client = reqwest::Client::builder().cookie_store(true).build().unwrap();
        let page = client.get(self.url("/")).send().await.expect("the page loads");
        assert_eq!(page.status(), 200, "GET /");
        page.text().await.expect("the whole page");
        client
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("the request reaches the server")
    }

    /// Opens an SSE stream and parses it with an independent parser (`eventsource-stream`).
    pub async fn subscribe(
        &self,
        path: &str,
    ) -> EventStream<impl Stream<Item = reqwest::Result<bytes::Bytes>>> {
        self.subscribe_with(path, &[]).await
    }

    /// `POST /publish` with the right token; returns the status and the JSON answer.
    pub async fn publish(&self, body: serde_json::Value) -> (u16, serde_json::Value) {
        let response =
            self.http.post(self.url("/publish")).bearer_auth(TOKEN).json(&body).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    /// Publishes `data` to `topic` and returns the event id, failing the test on refusal.
    pub async fn publish_ok(&self, topic: &str, data: &str) -> String {
        let (status, answer) = self.publish(serde_json::json!({ "topic": topic, "data": data })).await;
        assert_eq!(status, 202, "publish refused: {answer}");
        answer["id"].as_str().expect("an id").to_owned()
    }

    /// Opens an SSE stream with extra request headers.
    pub async fn subscribe_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> EventStream<impl Stream<Item = reqwest::Result<bytes::Bytes>>> {
        let mut request = self.http.get(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("the request reaches the server");
        assert_eq!(response.status(), 200, "GET {path}");
        response.bytes_stream().eventsource()
    }

    /// Calls the `start_job` server function as the page does, in this client's session.
    pub async fn start_job(&self) -> JobView {
        let response =
            self.http.post(self.url("/api/jobs/start")).form(&[("", "")][..0]).send().await.unwrap();
        assert_eq!(response.status(), 200, "start_job");
        response.json().await.expect("a job view")
    }

    /// Calls the `list_jobs` server function as the page does, with `client`'s cookies (this
    /// app's own client is one browser session; another client is another session).
    pub async fn list_jobs_as(&self, client: &reqwest::Client) -> serde_json::Value {
        let response = client.post(self.url("/api/jobs/list")).form(&[("", "")][..0]).send().await.unwrap();
        assert_eq!(response.status(), 200, "list_jobs");
        response.json().await.expect("a job listing")
    }

    /// Signals shutdown as SIGTERM would, and returns how long the server took to stop.
    pub async fn shut_down(self) -> Duration {
        let started = tokio::time::Instant::now();
        self.stop.send(()).expect("the server is still running");
        tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .expect("the server stops")
            .expect("the server task did not panic")
            .expect("the server stopped without error");
        started.elapsed()
    }
}

/// The next event of `stream`, failing the test if none comes within [`PATIENCE`].
pub async fn next_event<S, E>(stream: &mut S) -> Event
where
    S: Stream<Item = Result<Event, E>> + Unpin,
    E: std::fmt::Debug,
{
    match tokio::time::timeout(PATIENCE, stream.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(err))) => panic!("the stream broke: {err:?}"),
        Ok(None) => panic!("the stream ended"),
        Err(_) => panic!("no event within {PATIENCE:?}"),
    }
}

/// The next `job` event of a `/remote` stream, skipping clock ticks, failing the test if none
/// comes within [`PATIENCE`] (ticks alone would otherwise keep the wait going forever).
pub async fn next_job_event<S, E>(stream: &mut S) -> Event
where
    S: Stream<Item = Result<Event, E>> + Unpin,
    E: std::fmt::Debug,
{
    let job = async {
        loop {
            let event = next_event(stream).await;
            if event.event == "job" {
                break event;
            }
        }
    };
    tokio::time::timeout(PATIENCE, job).await.unwrap_or_else(|_| panic!("no job event within {PATIENCE:?}"))
}

/// Reads the raw body of a stream until `enough` says so, failing the test after [`PATIENCE`].
pub async fn read_raw_until(response: reqwest::Response, enough: impl Fn(&str) -> bool) -> String {
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let reading = async {
        while !enough(&text) {
            match body.next().await {
                Some(Ok(chunk)) => text.push_str(std::str::from_utf8(&chunk).expect("UTF-8 frames")),
                other => panic!("the stream stopped early ({other:?}) after {text:?}"),
            }
        }
    };
    tokio::time::timeout(PATIENCE, reading)
        .await
        .unwrap_or_else(|_| panic!("not enough within {PATIENCE:?}: {text:?}"));
    text
}
