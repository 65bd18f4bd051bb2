//! The job registry in memory (the default): which session started which job, and how each
//! one ended.
//!
//! Bounded, and no session's jobs make room for another's: a finished job is forgotten
//! [`KEEP_FINISHED`] after it ends, and a session's new job forgets that session's own oldest
//! finished job when the session lists [`LISTED_PER_SESSION`] jobs, or when the registry holds
//! `max_jobs`; a session with no finished job to give up is refused while the registry is full.

use std::{
    collections::HashMap,
    fmt,
    time::{Duration, Instant},
};

use chrono::Utc;
use parking_lot::Mutex;

use crate::protocol::{JobStatus, JobView};
use crate::server::event::Topic;

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FinishError {
    Unknown,
    AlreadyFinished,
    /// Redis did not answer: nothing changed.
    Unavailable,
}

/// Why a job could not start.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StartError {
    /// Every job is running and the registry is full.
    Full,
    /// The session has its maximum of jobs running.
    SessionBusy { limit: usize },
    /// Redis did not answer: no job was started.
    Unavailable,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => f.write_str("every job slot is busy; try again in a moment"),
            Self::SessionBusy { limit } => {
                write!(f, "you have {limit} jobs running, the most one session may; wait for one to finish")
            }
            Self::Unavailable => f.write_str("jobs cannot be stored right now; try again in a moment"),
        }
    }
}

/// How long a finished job stays listed (in either registry).
pub(super) const KEEP_FINISHED: Duration = Duration::from_secs(3600);

/// How many jobs a session's list holds at most, newest first (in either registry).
pub(super) const LISTED_PER_SESSION: usize = 50;

/// A job that starts now, with a fresh random id: what either registry registers.
pub(crate) fn new_running_job() -> JobView {
    JobView {
        id: herald_client::random_id(),
        status: JobStatus::Running,
        started_at: Utc::now(),
        took_ms: None,
        result: None,
    }
}

pub(crate) struct MemoryRegistry {
    max_jobs: usize,
    max_per_session: usize,
    /// How long a finished job is kept: [`KEEP_FINISHED`], shorter in tests.
    keep_finished: Duration,
    jobs: Mutex<HashMap<String, Job>>,
}

struct Job {
    session: Topic,
    started: Instant,
    finished: Option<Instant>,
    view: JobView,
}

impl MemoryRegistry {
    pub(crate) fn new(max_jobs: usize, max_per_session: usize) -> Self {
        Self::keeping_finished_jobs_for(KEEP_FINISHED, max_jobs, max_per_session)
    }

    fn keeping_finished_jobs_for(keep_finished: Duration, max_jobs: usize, max_per_session: usize) -> Self {
        Self { max_jobs, max_per_session, keep_finished, jobs: Mutex::default() }
    }

    /// Registers a running job for the session whose private topic is `session`.
    pub(crate) fn start(&self, session: Topic) -> Result<JobView, StartError> {
        let mut jobs = self.jobs.lock();
        let (mut listed, mut running) = (0, 0);
        for job in jobs.values().filter(|job| job.session == session) {
            listed += 1;
            running += usize::from(!job.view.status.is_finished());
        }
        if running >= self.max_per_session {
            return Err(StartError::SessionBusy { limit: self.max_per_session });
        }
        if listed >= LISTED_PER_SESSION {
            forget_oldest_finished(&mut jobs, &session);
        }
        if jobs.len() >= self.max_jobs {
            let now = Instant::now();
            jobs.retain(|_, job| job.finished.is_none_or(|at| now.duration_since(at) < self.keep_finished));
        }
        if jobs.len() >= self.max_jobs && !forget_oldest_finished(&mut jobs, &session) {
            return Err(StartError::Full);
        }
        let view = new_running_job();
        jobs.insert(
            view.id.clone(),
            Job { session, started: Instant::now(), finished: None, view: view.clone() },
        );
        Ok(view)
    }

    /// Marks a running job finished; returns its session's topic and its final view.
    pub(crate) fn finish(
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
        let now = Instant::now();
        job.finished = Some(now);
        job.view.status = status;
        job.view.took_ms = Some(now.duration_since(job.started).as_millis() as u64);
        job.view.result = Some(result);
        Ok((job.session.clone(), job.view.clone()))
    }

    /// The jobs of one session, newest first.
    pub(crate) fn of_session(&self, session: &Topic) -> Vec<JobView> {
        let mut views: Vec<_> = self
            .jobs
            .lock()
            .values()
            .filter(|job| &job.session == session)
            .map(|job| job.view.clone())
            .collect();
        views.sort_by_key(|view| std::cmp::Reverse(view.started_at));
        views
    }
}

/// Forgets the oldest finished job of `session`; false when it has none.
fn forget_oldest_finished(jobs: &mut HashMap<String, Job>, session: &Topic) -> bool {
    let oldest = jobs
        .iter()
        .filter(|(_, job)| &job.session == session && job.view.status.is_finished())
        .min_by_key(|(_, job)| job.started)
        .map(|(id, _)| id.clone());
    oldest.is_some_and(|id| jobs.remove(&id).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(name: &str) -> Topic {
        Topic::parse(&format!("session.{name}")).unwrap()
    }

    fn start(jobs: &MemoryRegistry, session: Topic) -> Result<JobView, StartError> {
        jobs.start(session)
    }

    #[test]
    fn a_job_finishes_once_and_only_if_known() {
        let jobs = MemoryRegistry::new(10, 10);
        let job = start(&jobs, session("a")).unwrap();

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
        let jobs = MemoryRegistry::new(10, 10);
        let mine = start(&jobs, session("a")).unwrap();
        start(&jobs, session("b")).unwrap();
        assert_eq!(jobs.of_session(&session("a")), vec![mine]);
    }

    fn ids(jobs: &MemoryRegistry, of: &str) -> Vec<String> {
        jobs.of_session(&session(of)).into_iter().map(|job| job.id).collect()
    }

    #[test]
    fn a_full_registry_forgets_the_sessions_own_oldest_finished_job_or_refuses() {
        let jobs = MemoryRegistry::new(2, 10);
        let old = start(&jobs, session("a")).unwrap();
        let running = start(&jobs, session("a")).unwrap();
        jobs.finish(&old.id, JobStatus::Done, "ok".into()).unwrap();

        let new = start(&jobs, session("a")).unwrap();
        let ids = ids(&jobs, "a");
        assert!(ids.contains(&running.id) && ids.contains(&new.id) && !ids.contains(&old.id), "{ids:?}");
        assert_eq!(start(&jobs, session("b")), Err(StartError::Full));
    }

    #[test]
    fn ten_thousand_starts_of_one_session_leave_another_sessions_finished_jobs_listed() {
        let jobs = MemoryRegistry::new(100, 5);
        let theirs = start(&jobs, session("victim")).unwrap();
        jobs.finish(&theirs.id, JobStatus::Done, "mine".into()).unwrap();

        for _ in 0..10_000 {
            let job = start(&jobs, session("flood")).expect("the flood makes room with its own jobs");
            jobs.finish(&job.id, JobStatus::Done, "x".into()).unwrap();
        }

        assert_eq!(ids(&jobs, "victim"), vec![theirs.id]);
        assert_eq!(ids(&jobs, "flood").len(), LISTED_PER_SESSION);
    }

    #[test]
    fn a_registry_full_of_other_sessions_finished_jobs_refuses_until_their_time_is_up() {
        let jobs = MemoryRegistry::new(2, 5);
        for _ in 0..2 {
            let job = start(&jobs, session("a")).unwrap();
            jobs.finish(&job.id, JobStatus::Done, "ok".into()).unwrap();
        }
        assert_eq!(start(&jobs, session("b")), Err(StartError::Full));

        let expiring = MemoryRegistry::keeping_finished_jobs_for(Duration::ZERO, 2, 5);
        for _ in 0..2 {
            let job = start(&expiring, session("a")).unwrap();
            expiring.finish(&job.id, JobStatus::Done, "ok".into()).unwrap();
        }
        start(&expiring, session("b")).expect("finished jobs whose time is up make room for anyone");
        assert_eq!(ids(&expiring, "a"), Vec::<String>::new());
    }

    #[test]
    fn a_session_may_have_only_so_many_jobs_running() {
        let jobs = MemoryRegistry::new(10, 2);
        let first = start(&jobs, session("a")).unwrap();
        start(&jobs, session("a")).unwrap();

        assert_eq!(start(&jobs, session("a")), Err(StartError::SessionBusy { limit: 2 }));
        start(&jobs, session("b")).expect("another session is not held back");
        jobs.finish(&first.id, JobStatus::Done, "ok".into()).unwrap();
        start(&jobs, session("a")).expect("a finished job frees its place");
    }
}
