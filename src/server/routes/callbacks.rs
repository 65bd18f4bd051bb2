//! `POST /callbacks/{job_id}`: the external worker reports that a job has finished.
//!
//! Signed (see [`crate::server::signature`]); body `{"status": "done"|"failed", "result": …}`.
//! The job's session hears of it as a `job` event on its private topic.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, Path, State},
    http::{HeaderMap, StatusCode},
    Json,
};
use serde_json::{json, Value};

use super::publish::{json_object, require_json};
use crate::jobs::JobStatus;
use crate::server::{
    error::{body_bytes, ApiError},
    jobs::{finish_and_announce, FinishError},
    signature::{self, SignatureError},
    AppState,
};

pub async fn job_finished(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Some(callbacks) = state.callbacks.as_deref() else {
        return Err(ApiError::Disabled("callbacks are disabled: set HERALD_CALLBACK_SECRET to enable them"));
    };
    let raw = body_bytes(body, state.max_body)?;
    let header = headers.get(signature::HEADER).map(|value| value.to_str().unwrap_or("\u{fffd}"));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs() as i64);
    let verified = signature::verify(callbacks.secret.as_bytes(), header, &raw, now, callbacks.tolerance)
        .and_then(|signature| callbacks.replays.first_use(signature));
    match verified {
        Ok(()) => {}
        Err(SignatureError::Malformed) => {
            return Err(ApiError::invalid("Herald-Signature", SignatureError::Malformed.message()))
        }
        Err(err) => return Err(ApiError::Unauthorized(err.message())),
    }

    require_json(&headers)?;
    let body = json_object(&raw)?;
    let status = match body.get("status").and_then(Value::as_str) {
        Some("done") => JobStatus::Done,
        Some("failed") => JobStatus::Failed,
        _ => return Err(ApiError::invalid("status", "must be \"done\" or \"failed\"")),
    };
    let result = body.get("result").cloned().unwrap_or(Value::Null).to_string();

    let (view, id) =
        finish_and_announce(&state.jobs, &state.hub, &job_id, status, result).map_err(|err| match err {
            FinishError::Unknown => ApiError::NotFound(format!("no job {job_id:.64} is known")),
            FinishError::AlreadyFinished => ApiError::Conflict(format!("job {job_id} has already finished")),
        })?;
    Ok((StatusCode::OK, Json(json!({ "id": id.to_string(), "job": view }))))
}
