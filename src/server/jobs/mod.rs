//! The job service: the whole life of a job. Starting one registers it, hands it to the worker
//! with a callback URL and arms its timer; it finishes once, from the worker's callback or from
//! the timer, and its session hears of it as a `job` event; a session lists its own jobs.
//!
//! The server functions and `/callbacks` are adapters over this service.

mod registry;
mod worker_client;

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use registry::Registry;
pub(crate) use registry::{FinishError, StartError};
use worker_client::WorkerClient;

use crate::protocol::{JobListing, JobStatus, JobView, JOB_EVENT};
use crate::server::{
    event::{EventId, EventName, NewEvent, Topic},
    hub::Hub,
};

/// What the job service is configured with.
#[derive(Clone, Debug)]
pub(crate) struct JobSettings {
    /// How many jobs the registry keeps (running, or finished and still listed).
    pub max_jobs: usize,
    /// How many jobs one session may have running.
    pub max_jobs_per_session: usize,
    /// How long a job may wait for its callback before it fails.
    pub timeout: Duration,
    /// Where the worker listens.
    pub worker_url: String,
    /// The bearer token the worker requires.
    pub worker_token: Option<String>,
    /// This server's base URL as the worker calls it back.
    pub callback_base: String,
}

/// A job that has just finished, and the id of the event that told its session.
#[derive(Debug)]
pub(crate) struct Finished {
    pub view: JobView,
    pub event_id: EventId,
}

#[derive(Clone)]
pub(crate) struct JobService(Arc<Inner>);

struct Inner {
    registry: Registry,
    hub: Arc<Hub>,
    worker: WorkerClient,
    settings: JobSettings,
    /// Every job's timer is a child of it, so shutting down stops them all.
    shutdown: CancellationToken,
}

impl JobService {
    pub(crate) fn new(settings: JobSettings, hub: Arc<Hub>, shutdown: CancellationToken) -> Self {
        Self(Arc::new(Inner {
            registry: Registry::new(settings.max_jobs, settings.max_jobs_per_session),
            hub,
            worker: WorkerClient::new(&settings.worker_url, settings.worker_token.clone()),
            settings,
            shutdown,
        }))
    }

    /// Starts a job for the session whose private topic is `session`, and answers as soon as the
    /// worker has taken it. A job the worker cannot take comes back already failed.
    pub(crate) async fn start(&self, session: Topic) -> Result<JobView, StartError> {
        let timer = self.0.shutdown.child_token();
        let job = self.0.registry.start(session, timer.clone())?;
        let callback_url = format!("{}/callbacks/{}", self.0.settings.callback_base, job.id);
        match self.0.worker.dispatch(&job.id, &callback_url).await {
            Ok(()) => {
                self.fail_unless_called_back(job.id.clone(), timer);
                Ok(job)
            }
            Err(reason) => {
                tracing::warn!(job = %job.id, %reason, "the worker did not take the job");
                let result = serde_json::json!({ "error": reason }).to_string();
                Ok(self.finish(&job.id, JobStatus::Failed, result).map_or(job, |finished| finished.view))
            }
        }
    }

    /// Finishes a running job, stops its timer, and tells its session with a `job` event.
    pub(crate) fn finish(
        &self,
        id: &str,
        status: JobStatus,
        result: String,
    ) -> Result<Finished, FinishError> {
        let (session, view) = self.0.registry.finish(id, status, result)?;
        let data = serde_json::to_string(&view).expect("a job view serialises");
        let published = self.0.hub.publish(NewEvent::new(session, data).named(EventName::known(JOB_EVENT)));
        Ok(Finished { view, event_id: published.id })
    }

    /// The session's jobs, and the position to resume its stream from.
    pub(crate) fn list(&self, session: &Topic) -> JobListing {
        // Read the position before the jobs: whatever finishes in between is both listed and
        // replayed, which the page's merge makes harmless; the other order could miss it.
        let as_of = self.0.hub.last_id().to_string();
        JobListing { jobs: self.0.registry.of_session(session), as_of }
    }

    /// Fails the job unless a callback finishes it within the timeout: a worker that dies, or
    /// whose callbacks never get through, must not leave a job running forever on the page.
    /// The timer stops when the job finishes, or when the server shuts down.
    fn fail_unless_called_back(&self, id: String, timer: CancellationToken) {
        let service = self.clone();
        let timeout = self.0.settings.timeout;
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(timeout) => {
                    let waited = humantime::format_duration(timeout);
                    let result = serde_json::json!({ "error": format!("no callback within {waited}") });
                    if service.finish(&id, JobStatus::Failed, result.to_string()).is_ok() {
                        tracing::warn!(job = %id, %waited, "no callback: the job is marked failed");
                    }
                }
                () = timer.cancelled() => {}
            }
        });
    }
}
