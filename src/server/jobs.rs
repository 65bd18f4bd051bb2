//! The job registry: which session started which job, and how each one ended.
//!
//! Bounded: past `max_jobs`, starting a job forgets the oldest finished one, and when every job
//! is still running a new one is refused.

use std::{collections::HashMap, time::Instant};

use chrono::Utc;
use parking_lot::Mutex;
use rand::RngCore;

use super::event::{EventId, EventName, Topic};
use super::hub::Hub;
use super::AppState;
use crate::jobs::{JobStatus, JobView};
use crate::tick;

#[derive(Debug, PartialEq, Eq)]
pub enum FinishError {
    Unknown,
    AlreadyFinished,
}

/// Every job is running and the registry is full.
#[derive(Debug, PartialEq, Eq)]
pub struct RegistryFull;

pub struct Jobs {
    max_jobs: usize,
    jobs: Mutex<HashMap<String, Job>>,
}

struct Job {
    session: Topic,
    started: Instant,
    view: JobView,
}

impl Jobs {
    pub fn new(max_jobs: usize) -> Self {
        Self { max_jobs, jobs: Mutex::default() }
    }

    /// Registers a running job for the session whose private topic is `session`.
    pub fn start(&self, session: Topic) -> Result<JobView, RegistryFull> {
        let mut jobs = self.jobs.lock();
        if jobs.len() >= self.max_jobs {
            let oldest_finished = jobs
                .iter()
                .filter(|(_, job)| job.view.status.is_finished())
                .min_by_key(|(_, job)| job.started)
                .map(|(id, _)| id.clone())
                .ok_or(RegistryFull)?;
            jobs.remove(&oldest_finished);
        }
        let mut bits = [0u8; 16];
        rand::rng().fill_bytes(&mut bits);
        let view = JobView {
            id: hex::encode(bits),
            status: JobStatus::Running,
            started_at: tick::encode(Utc::now()),
            took_ms: None,
            result: None,
        };
        jobs.insert(view.id.clone(), Job { session, started: Instant::now(), view: view.clone() });
        Ok(view)
    }

    /// Marks a running job finished; returns its session's topic and its final view.
    pub fn finish(
        &self,
        id: &str,
        status: JobStatus,
        result: String,
    ) -> Result<(Topic, JobView), FinishError> {
        let mut jobs = self.jobs.lock();
        let job = jobs.get_mut(id).ok_or(FinishError::Unknown)?;
        if job.view.status.is_finished() {
            return Err(FinishError::AlreadyFinished);
        }
        job.view.status = status;
        job.view.took_ms = Some(job.started.elapsed().as_millis() as u64);
        job.view.result = Some(result);
        Ok((job.session.clone(), job.view.clone()))
    }

    /// The jobs of one session, newest first.
    pub fn of_session(&self, session: &Topic) -> Vec<JobView> {
        let mut views: Vec<_> = self
            .jobs
            .lock()
            .values()
            .filter(|job| &job.session == session)
            .map(|job| job.view.clone())
            .collect();
        views.sort_by(|a, b| b.started_at.cmp(&a.started_at));
        views
    }
}

/// Finishes a job and tells its session with a `job` event carrying the final view.
pub fn finish_and_announce(
    jobs: &Jobs,
    hub: &Hub,
    id: &str,
    status: JobStatus,
    result: String,
) -> Result<(JobView, EventId), FinishError> {
    let (session, view) = jobs.finish(id, status, result)?;
    let data = serde_json::to_string(&view).expect("a job view serialises");
    let name = EventName::parse("job").expect("a valid name");
    let published = hub.publish(&session, Some(&name), &data, None);
    Ok((view, published.id))
}

/// Fails the job `id` unless a callback finishes it within the job timeout: a worker that dies,
/// or whose callbacks never get through, must not leave a job running forever on the page.
/// A callback that arrives later gets 409, as for any finished job.
pub fn fail_unless_called_back(state: &AppState, id: String) {
    let (jobs, hub, timeout, shutdown) =
        (state.jobs.clone(), state.hub.clone(), state.job_timeout, state.shutdown.clone());
    tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(timeout) => {
                let waited = humantime::format_duration(timeout);
                let result = serde_json::json!({ "error": format!("no callback within {waited}") });
                if finish_and_announce(&jobs, &hub, &id, JobStatus::Failed, result.to_string()).is_ok() {
                    tracing::warn!(job = %id, %waited, "no callback: the job is marked failed");
                }
            }
            () = shutdown.cancelled() => {}
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(name: &str) -> Topic {
        Topic::parse(&format!("session.{name}")).unwrap()
    }

    #[test]
    fn a_job_finishes_once_and_only_if_known() {
        let jobs = Jobs::new(10);
        let job = jobs.start(session("a")).unwrap();

        let (topic, done) = jobs.finish(&job.id, JobStatus::Done, "42".into()).unwrap();
        assert_eq!((topic, done.status, done.result.as_deref()), (session("a"), JobStatus::Done, Some("42")));
        assert!(done.took_ms.is_some());

        assert_eq!(
            jobs.finish(&job.id, JobStatus::Failed, "x".into()).unwrap_err(),
            FinishError::AlreadyFinished
        );
        assert_eq!(jobs.finish("nope", JobStatus::Done, "x".into()).unwrap_err(), FinishError::Unknown);
    }

    #[test]
    fn sessions_see_only_their_own_jobs() {
        let jobs = Jobs::new(10);
        let mine = jobs.start(session("a")).unwrap();
        jobs.start(session("b")).unwrap();
        assert_eq!(jobs.of_session(&session("a")), vec![mine]);
    }

    #[test]
    fn a_full_registry_forgets_the_oldest_finished_job_or_refuses() {
        let jobs = Jobs::new(2);
        let old = jobs.start(session("a")).unwrap();
        let running = jobs.start(session("a")).unwrap();
        jobs.finish(&old.id, JobStatus::Done, "ok".into()).unwrap();

        let new = jobs.start(session("a")).unwrap();
        let ids: Vec<_> = jobs.of_session(&session("a")).into_iter().map(|job| job.id).collect();
        assert!(ids.contains(&running.id) && ids.contains(&new.id) && !ids.contains(&old.id), "{ids:?}");
        assert_eq!(jobs.start(session("a")), Err(RegistryFull));
    }
}
