//! `worker`: a stand-in for the external service that runs Herald's jobs. It takes a job over
//! HTTP, works on it for a random while, then calls Herald back with a signed HTTP callback.

use std::{net::SocketAddr, time::Duration};

use axum::{
    extract::{FromRequest, Request, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
    Json, Router,
};
use clap::Parser;
use herald::server::{
    check_bearer, init_telemetry, refuse_development_secrets, shutdown_signal, sign_callback, LogFormat,
    SIGNATURE_HEADER,
};
use rand::RngExt;
use serde::Deserialize;
use serde_json::json;

#[derive(Clone, Debug, Parser)]
#[command(name = "worker", about = "Runs Herald's jobs and calls back when each is done")]
struct WorkerConfig {
    /// Where to listen for jobs: loopback unless told otherwise, since whoever reaches `/jobs`
    /// with the token has callbacks signed.
    #[arg(long, env = "HERALD_WORKER_ADDR", default_value = "127.0.0.1:3002")]
    addr: SocketAddr,

    /// Bearer token that `POST /jobs` requires (Herald's HERALD_WORKER_TOKEN).
    #[arg(long, env = "HERALD_WORKER_TOKEN", hide_env_values = true)]
    token: String,

    /// The secret shared with Herald, to sign callbacks.
    #[arg(long, env = "HERALD_CALLBACK_SECRET", hide_env_values = true)]
    callback_secret: String,

    /// The shortest a job takes.
    #[arg(long, env = "HERALD_WORKER_MIN", default_value = "1s", value_parser = humantime::parse_duration)]
    min_work: Duration,

    /// The longest a job takes.
    #[arg(long, env = "HERALD_WORKER_MAX", default_value = "5s", value_parser = humantime::parse_duration)]
    max_work: Duration,
}

#[derive(Debug, Deserialize)]
struct JobRequest {
    job_id: String,
    callback_url: String,
}

/// How often a callback is tried before the worker gives up on it.
const CALLBACK_ATTEMPTS: u32 = 3;

/// How long a callback may take to connect, and to be answered in all: a callback target that
/// never answers must not hold a job's task forever.
const CALLBACK_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(10);

/// What the handler needs: the settings, and one HTTP client for every callback.
#[derive(Clone)]
struct Worker {
    config: WorkerConfig,
    http: reqwest::Client,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = WorkerConfig::parse();
    if config.min_work > config.max_work {
        return Err("--min-work must not be longer than --max-work".into());
    }
    let secrets = [
        ("HERALD_WORKER_TOKEN (--token)", Some(config.token.as_str())),
        ("HERALD_CALLBACK_SECRET (--callback-secret)", Some(config.callback_secret.as_str())),
    ];
    if let Err(problem) = refuse_development_secrets("the worker", config.addr, &secrets) {
        // As the server does, and as clap does for a value it refuses: one line, exit code 2.
        eprintln!("error: {problem}");
        std::process::exit(2);
    }
    init_telemetry(LogFormat::Text);
    let stop = shutdown_signal()?;

    // No redirects: a callback carries its signature, which must go to the URL Herald gave and
    // nowhere else; a redirect is a refusal.
    let http = reqwest::Client::builder()
        .connect_timeout(CALLBACK_CONNECT_TIMEOUT)
        .timeout(CALLBACK_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    tracing::info!("worker listening on http://{}", listener.local_addr()?);
    let app = Router::new().route("/jobs", post(take_job)).with_state(Worker { config, http });
    axum::serve(listener, app).with_graceful_shutdown(stop).await?;
    Ok(())
}

async fn take_job(State(worker): State<Worker>, request: Request) -> Response {
    // The worker signs a callback to whatever URL it is given: only Herald may ask, and nobody
    // else gets as far as having a body read and parsed.
    if check_bearer(request.headers(), &worker.config.token).is_err() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let job = match Json::<JobRequest>::from_request(request, &()).await {
        Ok(Json(job)) => job,
        Err(rejection) => return rejection.into_response(),
    };
    if !(job.callback_url.starts_with("http://") || job.callback_url.starts_with("https://")) {
        return StatusCode::UNPROCESSABLE_ENTITY.into_response();
    }
    let work = rand::rng().random_range(worker.config.min_work..=worker.config.max_work);
    tracing::info!(job = %job.job_id, ?work, "job taken");
    tokio::spawn(async move {
        tokio::time::sleep(work).await;
        call_back(&worker, &job, work).await;
    });
    StatusCode::ACCEPTED.into_response()
}

async fn call_back(Worker { config, http }: &Worker, job: &JobRequest, worked: Duration) {
    let body = json!({
        "status": "done",
        "result": { "worked_ms": worked.as_millis() as u64, "answer": 42 },
    })
    .to_string();
    for attempt in 1..=CALLBACK_ATTEMPTS {
        let now = chrono::Utc::now().timestamp();
        let response = http
            .post(&job.callback_url)
            .header("content-type", "application/json")
            .header(
                SIGNATURE_HEADER,
                sign_callback(config.callback_secret.as_bytes(), now, &job.job_id, body.as_bytes()),
            )
            .body(body.clone())
            .send()
            .await;
        match response {
            Ok(response) if response.status().is_success() => {
                tracing::info!(job = %job.job_id, "called back");
                return;
            }
            // The server answered: retrying the same callback cannot change its mind. A redirect
            // is not followed (the signature would go elsewhere), so it is a refusal too.
            Ok(response) if response.status().is_client_error() || response.status().is_redirection() => {
                tracing::warn!(job = %job.job_id, status = %response.status(), "callback refused");
                return;
            }
            outcome => {
                tracing::warn!(job = %job.job_id, attempt, ?outcome, "callback failed; retrying");
                tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
            }
        }
    }
    tracing::error!(job = %job.job_id, "gave up calling back");
}
