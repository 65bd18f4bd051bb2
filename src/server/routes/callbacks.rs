//! `POST /callbacks/{job_id}`: the external worker reports that a job has finished.
//!
//! Signed (see [`crate::server::signature`]); body `{"status": "done"|"failed", "result": …}`.
//! An adapter over the job service, which tells the job's session with a `job` event.

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{
    extract::State,
    http::{request::Parts, HeaderMap},
    Json,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::protocol::JobStatus;
use crate::server::{
    backend::Backend,
    error::ApiError,
    extract::{decode_json, require_json, Admitted, Gate, PathParams, RawBody},
    jobs::{FinishError, JobService},
    signature::{self, CallbackAuth, CallbackRefusal, CallbackSettings, SignatureError},
};

/// How callbacks are checked (a sub-state); `None` while callbacks are disabled.
#[derive(Clone)]
pub(crate) struct Callbacks(Option<Arc<CallbackAuth>>);

impl Callbacks {
    pub(crate) fn new(settings: Option<CallbackSettings>, backend: &Backend) -> Self {
        Self(settings.map(|settings| {
            let replays = backend.replay_guard(settings.tolerance);
            Arc::new(CallbackAuth::new(settings, replays))
        }))
    }
}

/// Hands out the signature checker: 503 while callbacks are disabled. (The signature covers the
/// body, so it is checked once the body is read.)
impl Gate for Callbacks {
    type Pass = Arc<CallbackAuth>;

    fn admit(&self, _: &Parts) -> Result<Self::Pass, ApiError> {
        self.0
            .clone()
            .ok_or(ApiError::Disabled("callbacks are disabled: set HERALD_CALLBACK_SECRET to enable them"))
    }
}

/// A callback's body; deserialising it validates it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallbackBody {
    status: Outcome,
    #[serde(default)]
    result: Value,
}

/// How a job may end.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Outcome {
    Done,
    Failed,
}

impl From<Outcome> for JobStatus {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Done => Self::Done,
            Outcome::Failed => Self::Failed,
        }
    }
}

pub(crate) async fn job_finished(
    Admitted(auth): Admitted<Callbacks>,
    State(jobs): State<JobService>,
    PathParams(job_id): PathParams<String>,
    headers: HeaderMap,
    RawBody(raw): RawBody,
) -> Result<Json<Value>, ApiError> {
    let header = headers.get(signature::HEADER).map(|value| value.to_str().unwrap_or("\u{fffd}"));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs() as i64);
    auth.check(header, &job_id, &raw, now).await.map_err(|refusal| match refusal {
        CallbackRefusal::Signature(err @ SignatureError::Malformed) => {
            ApiError::invalid("Herald-Signature", err.message())
        }
        CallbackRefusal::Signature(err) => ApiError::BadSignature(err.message()),
        CallbackRefusal::Unavailable => ApiError::unavailable(),
    })?;
    require_json(&headers)?;
    let body: CallbackBody = decode_json(&raw)?;

    let finished =
        jobs.finish(&job_id, body.status.into(), body.result.to_string()).await.map_err(|err| match err {
            FinishError::Unknown => ApiError::NotFound(format!("no job {job_id:.64} is known")),
            FinishError::AlreadyFinished => ApiError::Conflict(format!("job {job_id} has already finished")),
            FinishError::Unavailable => ApiError::unavailable(),
        })?;
    Ok(Json(json!({ "id": finished.event_id.to_string(), "job": finished.view })))
}
