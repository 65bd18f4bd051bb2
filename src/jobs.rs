//! A job as the page shows it, shared by the server that tracks jobs and the page that lists
//! them; it travels as JSON in server-function answers and in `job` events.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Running,
    Done,
    Failed,
}

impl JobStatus {
    pub fn label(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    pub fn is_finished(self) -> bool {
        self != Self::Running
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    pub id: String,
    pub status: JobStatus,
    /// When the job started, RFC 3339 in UTC.
    pub started_at: String,
    /// How long the job took, once it has finished.
    pub took_ms: Option<u64>,
    /// The worker's result as JSON text, once it has finished.
    pub result: Option<String>,
}

/// The session's jobs, and the id of the latest relayed event when they were read: a stream
/// opened with that id replays whatever changed after the listing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobListing {
    pub jobs: Vec<JobView>,
    pub as_of: String,
}

/// Merges `update` into `jobs` (newest first): one entry per id, and a finished job never goes
/// back to running, whatever order a listing and an event arrive in.
pub fn merge(jobs: &mut Vec<JobView>, update: JobView) {
    match jobs.iter_mut().find(|job| job.id == update.id) {
        Some(known) if known.status.is_finished() && !update.status.is_finished() => {}
        Some(known) => *known = update,
        None => {
            jobs.push(update);
            jobs.sort_by(|a, b| b.started_at.cmp(&a.started_at));
        }
    }
}

/// Starts a job for the caller's session: registers it, hands it to the worker with a callback
/// URL, and answers at once. A job the worker cannot take is recorded as failed, and so is one
/// whose callback does not come within the job timeout.
#[server(endpoint = "jobs/start")]
pub async fn start_job() -> Result<JobView, ServerFnError> {
    use crate::server::jobs::{fail_unless_called_back, finish_and_announce};

    let (state, session) = caller().await?;
    let job = state
        .jobs
        .start(session.topic())
        .map_err(|_| ServerFnError::new("every job slot is busy; try again in a moment"))?;
    let callback_url = format!("{}/callbacks/{}", state.public_url, job.id);
    match state.worker.dispatch(&job.id, &callback_url).await {
        Ok(()) => {
            fail_unless_called_back(&state, job.id.clone());
            Ok(job)
        }
        Err(reason) => {
            tracing::warn!(job = %job.id, %reason, "the worker did not take the job");
            let result = serde_json::json!({ "error": reason }).to_string();
            finish_and_announce(&state.jobs, &state.hub, &job.id, JobStatus::Failed, result)
                .map(|(view, _)| view)
                .map_err(|_| ServerFnError::new("the job vanished"))
        }
    }
}

/// The caller's jobs, with the position to resume the event stream from.
#[server(endpoint = "jobs/list")]
pub async fn list_jobs() -> Result<JobListing, ServerFnError> {
    let (state, session) = caller().await?;
    // Read the position before the jobs: whatever finishes in between is both listed and
    // replayed, and `merge` makes that harmless; the other order could miss it.
    let as_of = state.hub.last_id().to_string();
    Ok(JobListing { jobs: state.jobs.of_session(&session.topic()), as_of })
}

/// The server's state and the calling browser's session, inside a server function.
#[cfg(feature = "ssr")]
async fn caller() -> Result<(crate::server::AppState, crate::server::session::Session), ServerFnError> {
    let state = expect_context::<crate::server::AppState>();
    let axum::Extension(session) = leptos_axum::extract().await?;
    Ok((state, session))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, status: JobStatus, started_at: &str) -> JobView {
        JobView { id: id.into(), status, started_at: started_at.into(), took_ms: None, result: None }
    }

    #[test]
    fn merge_keeps_one_entry_per_job_newest_first() {
        let mut jobs = vec![];
        merge(&mut jobs, job("a", JobStatus::Running, "2026-11-25T10:00:00.000Z"));
        merge(&mut jobs, job("b", JobStatus::Running, "2026-11-25T10:00:01.000Z"));
        merge(&mut jobs, job("a", JobStatus::Done, "2026-11-25T10:00:00.000Z"));
        merge(&mut jobs, job("a", JobStatus::Done, "2026-11-25T10:00:00.000Z"));

        let seen: Vec<_> = jobs.iter().map(|j| (j.id.as_str(), j.status)).collect();
        assert_eq!(seen, [("b", JobStatus::Running), ("a", JobStatus::Done)]);
    }

    #[test]
    fn a_stale_running_listing_does_not_undo_a_finished_job() {
        let mut jobs = vec![job("a", JobStatus::Failed, "t")];
        merge(&mut jobs, job("a", JobStatus::Running, "t"));
        assert_eq!(jobs[0].status, JobStatus::Failed);
    }

    #[test]
    fn job_views_travel_as_lowercase_json() {
        let text = serde_json::to_string(&job("a", JobStatus::Done, "t")).unwrap();
        assert!(text.contains(r#""status":"done""#), "{text}");
        assert_eq!(serde_json::from_str::<JobView>(&text).unwrap(), job("a", JobStatus::Done, "t"));
    }
}
