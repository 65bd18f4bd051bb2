//! `POST /callbacks/{job}` and the job flow: the real worker, signatures, and the session topic.

use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};

use crate::helpers::{
    next_event, next_job_event, sign, spawn_app_with, spawn_worker, Config, JobStatus, JobView,
    RunningBinary, TestApp, CALLBACK_SECRET, WORKER_TOKEN,
};

/// A server whose worker takes an hour per job, so the test itself plays the worker's callback.
pub(crate) async fn app_with_idle_worker() -> (TestApp, RunningBinary) {
    app_with_idle_worker_and(|_| {}).await
}

/// The same, with other settings changed by `adjust`.
pub(crate) async fn app_with_idle_worker_and(
    adjust: impl FnOnce(&mut Config) + Send + 'static,
) -> (TestApp, RunningBinary) {
    let worker = spawn_worker("1h", "1h").await;
    let url = worker.url.clone();
    let app = spawn_app_with(move |config| {
        config.worker_url = url;
        adjust(config);
    })
    .await;
    (app, worker)
}

pub(crate) fn signed(job: &str, body: &str, at: i64) -> String {
    sign(CALLBACK_SECRET.as_bytes(), at, job, body.as_bytes())
}

pub(crate) async fn call_back(app: &TestApp, job: &str, body: &str, signature: Option<&str>) -> (u16, Value) {
    let mut request =
        app.http.post(app.url(&format!("/callbacks/{job}"))).header("content-type", "application/json");
    if let Some(signature) = signature {
        request = request.header("herald-signature", signature);
    }
    let response = request.body(body.to_owned()).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn the_real_worker_calls_back_and_the_session_hears_the_job_finish_on_remote() {
    let worker = spawn_worker("50ms", "200ms").await;
    let url = worker.url.clone();
    let app = spawn_app_with(move |config| config.worker_url = url).await;
    let mut remote = app.subscribe("/remote").await;

    let job = app.start_job().await;
    assert_eq!(job.status, JobStatus::Running);

    let finished = next_job_event(&mut remote).await;
    let view: JobView = serde_json::from_str(&finished.data).unwrap();
    assert_eq!((view.id.as_str(), view.status), (job.id.as_str(), JobStatus::Done));
    assert!(view.took_ms.is_some_and(|ms| ms >= 50), "{view:?}");
    let result: Value = serde_json::from_str(view.result.as_deref().unwrap()).unwrap();
    assert_eq!(result["answer"], 42);
    assert!(!finished.id.is_empty(), "job events carry ids, for replay");
}

/// What the page shows of a job the worker did not take: a neutral message, never the worker's
/// internal address or the client's error text (those are logged, with the job id).
fn assert_neutral_failure(job: &JobView) {
    assert_eq!(job.status, JobStatus::Failed);
    let result: Value = serde_json::from_str(job.result.as_deref().expect("a result")).unwrap();
    assert_eq!(result, json!({"error": "no worker could take the job; try again in a moment"}));
}

#[tokio::test]
async fn a_job_the_worker_cannot_take_is_reported_failed_at_once_without_the_workers_address() {
    let app = spawn_app_with(|config| config.worker_url = "http://127.0.0.1:9".to_owned()).await;

    let job = app.start_job().await;

    assert_neutral_failure(&job);
    let shown = job.result.unwrap();
    for internal in ["http://", "127.0.0.1", ":9", "unreachable", "error sending request"] {
        assert!(!shown.contains(internal), "{internal:?} shown to the visitor: {shown}");
    }
}

#[tokio::test]
async fn the_worker_takes_jobs_only_from_a_caller_with_its_token() {
    let worker = spawn_worker("1h", "1h").await;
    let http = reqwest::Client::new();
    let job = json!({"job_id": "j", "callback_url": "http://127.0.0.1:9/callbacks/j"});

    for (what, token, status) in [
        ("no token", None, 401),
        ("a wrong token", Some("guess"), 401),
        ("the token", Some(WORKER_TOKEN), 202),
    ] {
        let mut request = http.post(format!("{}/jobs", worker.url)).json(&job);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        assert_eq!(request.send().await.unwrap().status(), status, "{what}");
    }
}

#[tokio::test]
async fn a_server_without_the_worker_token_sees_its_jobs_fail_at_once() {
    let (app, _worker) = app_with_idle_worker_and(|config| config.worker_token = None).await;

    let job = app.start_job().await;

    assert_neutral_failure(&job);
}

#[tokio::test]
async fn another_session_neither_lists_nor_hears_my_jobs() {
    let (app, _worker) = app_with_idle_worker().await;
    let mine = app.start_job().await;
    let stranger = app.new_session().await;

    let listing = app.list_jobs_as(&stranger).await;
    assert_eq!(listing["jobs"], json!([]));

    let response = stranger.get(app.url("/remote")).send().await.unwrap();
    let mut stranger_events = eventsource_stream::Eventsource::eventsource(response.bytes_stream());
    let body = json!({"status": "done", "result": 1}).to_string();
    assert_eq!(
        call_back(&app, &mine.id, &body, Some(&signed(&mine.id, &body, Utc::now().timestamp()))).await.0,
        200
    );
    // The stranger's stream carries ticks only; two ticks later, no job event has come.
    for _ in 0..2 {
        let event = next_event(&mut stranger_events).await;
        assert_eq!(event.event, "message", "a stranger heard {event:?}");
    }
}

#[tokio::test]
async fn bad_callbacks_get_their_documented_status_and_a_json_error() {
    let (app, _worker) = app_with_idle_worker().await;
    let job = app.start_job().await;
    let now = Utc::now().timestamp();
    let body = json!({"status": "done", "result": {"n": 1}}).to_string();
    let wrong_secret = sign(b"not the secret", now, &job.id, body.as_bytes());

    for (what, job_id, body, signature, status) in [
        ("no signature", job.id.as_str(), body.clone(), None, 401),
        ("a malformed signature", &job.id, body.clone(), Some("t=abc,v1=zz".to_owned()), 400),
        ("the wrong secret", &job.id, body.clone(), Some(wrong_secret), 401),
        ("a signature 6 minutes old", &job.id, body.clone(), Some(signed(&job.id, &body, now - 360)), 401),
        ("a signature 6 minutes ahead", &job.id, body.clone(), Some(signed(&job.id, &body, now + 360)), 401),
        ("a signature of another body", &job.id, body.clone(), Some(signed(&job.id, "{}", now)), 401),
        (
            "a bad status",
            &job.id,
            r#"{"status":"meh"}"#.to_owned(),
            Some(signed(&job.id, r#"{"status":"meh"}"#, now)),
            400,
        ),
        ("broken JSON", &job.id, "{".to_owned(), Some(signed(&job.id, "{", now)), 400),
        (
            "an unknown job",
            "0123456789abcdef0123456789abcdef",
            body.clone(),
            Some(signed("0123456789abcdef0123456789abcdef", &body, now)),
            404,
        ),
    ] {
        let (got, answer) = call_back(&app, job_id, &body, signature.as_deref()).await;
        assert_eq!(got, status, "{what}: {answer}");
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {answer}");
    }
}

#[tokio::test]
async fn two_jobs_that_finish_with_the_same_body_in_the_same_second_both_succeed() {
    let (app, _worker) = app_with_idle_worker().await;
    let (first, second) = (app.start_job().await, app.start_job().await);
    let body = json!({"status": "done", "result": 42}).to_string();
    let now = Utc::now().timestamp();

    for job in [&first, &second] {
        let (status, answer) = call_back(&app, &job.id, &body, Some(&signed(&job.id, &body, now))).await;
        assert_eq!((status, &answer["job"]["status"]), (200, &json!("done")), "{}: {answer}", job.id);
    }
}

#[tokio::test]
async fn a_callback_signed_for_one_job_is_refused_at_another_jobs_url() {
    let (app, _worker) = app_with_idle_worker().await;
    let (signed_for, sent_to) = (app.start_job().await, app.start_job().await);
    let body = json!({"status": "done", "result": 1}).to_string();

    let signature = signed(&signed_for.id, &body, Utc::now().timestamp());
    let (status, answer) = call_back(&app, &sent_to.id, &body, Some(&signature)).await;

    assert_eq!(status, 401, "{answer}");
    let listing = app.http.post(app.url("/api/jobs/list")).form(&[("", "")][..0]).send().await.unwrap();
    let listing: Value = listing.json().await.unwrap();
    assert!(listing["jobs"].as_array().unwrap().iter().all(|job| job["status"] == "running"), "{listing}");
}

#[tokio::test]
async fn a_callback_signed_the_old_way_gets_a_401_that_says_how_to_sign_now() {
    let (app, _worker) = app_with_idle_worker().await;
    let job = app.start_job().await;
    let body = json!({"status": "done"}).to_string();
    let t = Utc::now().timestamp();
    let body_only = hmac_sha256_hex(CALLBACK_SECRET, &format!("{t}.{body}"));

    let (status, answer) = call_back(&app, &job.id, &body, Some(&format!("t={t},v1={body_only}"))).await;

    assert_eq!(status, 401, "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("<t>.<job id>.<body>"), "{answer}");
}

/// The old scheme, computed here independently of the server's code.
fn hmac_sha256_hex(secret: &str, text: &str) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(text.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn a_refused_signature_is_a_401_that_does_not_ask_for_a_bearer_token() {
    let (app, _worker) = app_with_idle_worker().await;
    let job = app.start_job().await;

    let response = app
        .http
        .post(app.url(&format!("/callbacks/{}", job.id)))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 401);
    assert!(response.headers().get("www-authenticate").is_none(), "{:?}", response.headers());
}

#[tokio::test]
async fn a_callback_counts_once_a_replay_is_refused_and_a_second_callback_conflicts() {
    let (app, _worker) = app_with_idle_worker().await;
    let job = app.start_job().await;
    let body = json!({"status": "failed", "result": "disk full"}).to_string();
    let signature = signed(&job.id, &body, Utc::now().timestamp());

    let (first, answer) = call_back(&app, &job.id, &body, Some(&signature)).await;
    assert_eq!(first, 200, "{answer}");
    assert_eq!(answer["job"]["status"], "failed");

    let (replayed, answer) = call_back(&app, &job.id, &body, Some(&signature)).await;
    assert_eq!(replayed, 401, "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("already used"), "{answer}");

    let again = json!({"status": "done", "result": "second thoughts"}).to_string();
    let (conflict, answer) =
        call_back(&app, &job.id, &again, Some(&signed(&job.id, &again, Utc::now().timestamp() + 1))).await;
    assert_eq!(conflict, 409, "{answer}");
}

#[tokio::test]
async fn a_job_not_called_back_within_the_timeout_fails_and_a_late_callback_conflicts() {
    let (app, _worker) =
        app_with_idle_worker_and(|config| config.job_timeout = Duration::from_millis(300)).await;
    let mut remote = app.subscribe("/remote").await;

    let job = app.start_job().await;
    let failed: JobView = serde_json::from_str(&next_job_event(&mut remote).await.data).unwrap();

    assert_eq!((failed.id.as_str(), failed.status), (job.id.as_str(), JobStatus::Failed));
    assert!(failed.result.as_deref().unwrap().contains("no callback within 300ms"), "{failed:?}");
    assert!(failed.took_ms.is_some_and(|ms| ms >= 300), "{failed:?}");
    let late = json!({"status": "done", "result": "finally"}).to_string();
    let (status, answer) =
        call_back(&app, &job.id, &late, Some(&signed(&job.id, &late, Utc::now().timestamp()))).await;
    assert_eq!(status, 409, "{answer}");
}

#[tokio::test]
async fn callbacks_are_refused_with_503_when_no_secret_is_configured() {
    let app = spawn_app_with(|config| config.callback_secret = None).await;
    let body = "{}";

    let (status, answer) =
        call_back(&app, "any", body, Some(&signed("any", body, Utc::now().timestamp()))).await;

    assert_eq!(status, 503);
    assert!(answer["message"].as_str().unwrap().contains("HERALD_CALLBACK_SECRET"), "{answer}");
}

#[tokio::test]
async fn a_callback_body_over_the_limit_gets_413() {
    let app = spawn_app_with(|config| config.max_body = 1024).await;
    let body = json!({"status": "done", "result": "x".repeat(4096)}).to_string();

    let (status, _) =
        call_back(&app, "any", &body, Some(&signed("any", &body, Utc::now().timestamp()))).await;

    assert_eq!(status, 413);
}

/// `Start job` as the page calls it, in `client`'s session: the status and `Retry-After`.
async fn try_start_job(app: &TestApp, client: &reqwest::Client) -> (u16, Option<String>) {
    let response = client.post(app.url("/api/jobs/start")).form(&[("", "")][..0]).send().await.unwrap();
    let retry_after = response.headers().get("retry-after").map(|value| value.to_str().unwrap().to_owned());
    (response.status().as_u16(), retry_after)
}

#[tokio::test]
async fn a_session_with_its_maximum_of_jobs_running_gets_429_and_other_sessions_do_not() {
    let (app, _worker) = app_with_idle_worker_and(|config| config.max_jobs_per_session = 2).await;
    app.start_job().await;
    app.start_job().await;

    let (status, retry_after) = try_start_job(&app, &app.http).await;
    assert_eq!((status, retry_after.is_some()), (429, true));

    let stranger = app.new_session().await;
    assert_eq!(try_start_job(&app, &stranger).await.0, 200);
}

#[tokio::test]
async fn a_server_whose_every_job_slot_is_running_answers_503_with_retry_after() {
    let (app, _worker) = app_with_idle_worker_and(|config| config.max_jobs = 1).await;
    app.start_job().await;

    let stranger = app.new_session().await;
    let (status, retry_after) = try_start_job(&app, &stranger).await;

    assert_eq!((status, retry_after.is_some()), (503, true));
}
