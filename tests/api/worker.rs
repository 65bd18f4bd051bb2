//! The `worker` binary, and Herald's client of it, at their edges: development secrets beyond
//! loopback, the token before the body, and redirects that would carry a signature or a token
//! somewhere else.

use std::net::SocketAddr;

use axum::{
    http::{header, HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
    Router,
};
use serde_json::json;
use tokio::sync::mpsc;

use crate::helpers::{spawn_app_with, spawn_worker, JobStatus, PATIENCE, WORKER_TOKEN};

/// A request a [`Redirector`] received: its path, and whether it carried the callback signature
/// or a bearer token.
#[derive(Debug, PartialEq, Eq)]
struct Received {
    path: String,
    signed: bool,
    bearer: bool,
}

/// An HTTP server on 127.0.0.1 port 0 that answers every path but `/elsewhere` with a 307 to
/// `/elsewhere` (which answers 200), and reports each request it gets.
struct Redirector {
    address: SocketAddr,
    received: mpsc::UnboundedReceiver<Received>,
}

impl Redirector {
    async fn start() -> Self {
        let (report, received) = mpsc::unbounded_channel();
        let app = Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
            let report = report.clone();
            async move {
                let path = uri.path().to_owned();
                let _ = report.send(Received {
                    path: path.clone(),
                    signed: headers.contains_key("herald-signature"),
                    bearer: headers.contains_key(header::AUTHORIZATION),
                });
                if path == "/elsewhere" {
                    return StatusCode::OK.into_response();
                }
                Response::builder()
                    .status(StatusCode::TEMPORARY_REDIRECT)
                    .header(header::LOCATION, "/elsewhere")
                    .body(axum::body::Body::empty())
                    .unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { address, received }
    }

    async fn next(&mut self) -> Received {
        tokio::time::timeout(PATIENCE, self.received.recv())
            .await
            .expect("a request within the patience")
            .expect("the redirector runs")
    }

    /// What arrived besides what [`next`](Self::next) took.
    fn rest(&mut self) -> Vec<Received> {
        std::iter::from_fn(|| self.received.try_recv().ok()).collect()
    }
}

#[tokio::test]
async fn a_worker_listening_beyond_loopback_with_a_development_secret_refuses_to_start_in_one_line() {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_worker"))
        .env_clear()
        .envs([
            ("HERALD_WORKER_ADDR", "0.0.0.0:0"),
            ("HERALD_WORKER_TOKEN", "dev-only-worker-token"),
            ("HERALD_CALLBACK_SECRET", "a secret of this deployment's own"),
        ])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(PATIENCE, run).await.expect("the worker exits").unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: HERALD_WORKER_TOKEN"), "{stderr}");
    assert!(stderr.contains("0.0.0.0:0"), "{stderr}");
}

#[tokio::test]
async fn a_caller_without_the_worker_token_gets_401_whatever_body_it_sends() {
    let worker = spawn_worker("1h", "1h").await;
    let http = reqwest::Client::new();

    // Neither JSON nor declared as such: the body would be refused (415) were it read first.
    let response = http.post(format!("{}/jobs", worker.url)).body("not json").send().await.unwrap();
    assert_eq!(response.status(), 401);
    let response = http
        .post(format!("{}/jobs", worker.url))
        .bearer_auth("guess")
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // With the token, the body is read, and refused as JSON's extractor refuses it.
    let response = http
        .post(format!("{}/jobs", worker.url))
        .bearer_auth(WORKER_TOKEN)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn the_worker_sends_a_callback_once_to_its_url_and_does_not_follow_a_redirect() {
    let worker = spawn_worker("10ms", "10ms").await;
    let mut target = Redirector::start().await;
    let job = json!({"job_id": "j", "callback_url": format!("http://{}/callbacks/j", target.address)});

    let taken = reqwest::Client::new()
        .post(format!("{}/jobs", worker.url))
        .bearer_auth(WORKER_TOKEN)
        .json(&job)
        .send()
        .await;
    assert_eq!(taken.unwrap().status(), 202);

    let first = target.next().await;
    assert_eq!(first, Received { path: "/callbacks/j".to_owned(), signed: true, bearer: false });
    // The worker logs its verdict on the answer: only then can nothing more be on its way.
    let verdict = async {
        loop {
            let log = worker.log();
            if log.contains("callback refused") || log.contains("called back") {
                break log;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    let log = tokio::time::timeout(PATIENCE, verdict).await.expect("the worker logs the callback's outcome");
    assert!(log.contains("callback refused"), "{log}");
    assert_eq!(target.rest(), vec![], "the redirect was followed, with the signature");
}

#[tokio::test]
async fn herald_does_not_follow_a_worker_that_redirects_and_the_job_fails_at_once() {
    let mut redirector = Redirector::start().await;
    let url = format!("http://{}", redirector.address);
    let app = spawn_app_with(move |config| config.worker_url = url).await;

    let job = app.start_job().await;

    assert_eq!(job.status, JobStatus::Failed);
    let first = redirector.next().await;
    assert_eq!(first, Received { path: "/jobs".to_owned(), signed: false, bearer: true });
    // The job's answer came after the worker's: anything followed would have arrived by now.
    assert_eq!(redirector.rest(), vec![], "the redirect was followed, with the worker token");
}
