//! The job service: the whole life of a job. Starting one registers it, hands it to the worker
//! with a callback URL and arms its timer; it finishes once, from the worker's callback or from
//! the timer, and its session hears of it as a `job` event; a session lists its own jobs.
//!
//! The server functions and `/callbacks` are adapters over this service.

mod redis_registry;
mod registry;
mod worker_client;

use std::{collections::HashMap, sync::Arc, time::Duration};

use parking_lot::Mutex;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use redis_registry::RedisRegistry;
use registry::MemoryRegistry;
pub(crate) use registry::{FinishError, StartError};
use worker_client::WorkerClient;

use crate::protocol::{JobListing, JobStatus, JobView, JOB_EVENT};
use crate::server::{
    backend::Backend,
    event::{EventId, EventName, NewEvent, Topic},
    hub::Hub,
    redis::{Backoff, Redis, Unavailable},
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
    pub worker_token: Option<SecretString>,
    /// This server's base URL as the worker calls it back.
    pub callback_base: String,
}

/// What a job the worker did not take says on the page (the log says why).
const NOT_TAKEN: &str = "no worker could take the job; try again in a moment";

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
    /// The timers of the jobs this instance started, each cancelled when its job finishes.
    timers: Mutex<HashMap<String, CancellationToken>>,
    /// Every job's timer is a child of it, so shutting down stops them all.
    shutdown: CancellationToken,
}

/// Where jobs are kept: in this process, or in Redis for every instance to see.
pub(crate) enum Registry {
    Memory(MemoryRegistry),
    Redis(Box<RedisRegistry>),
}

impl Registry {
    pub(crate) fn in_memory(max_jobs: usize, max_per_session: usize) -> Self {
        Self::Memory(MemoryRegistry::new(max_jobs, max_per_session))
    }

    pub(crate) fn in_redis(redis: Redis, max_jobs: usize, max_per_session: usize, timeout: Duration) -> Self {
        Self::Redis(Box::new(RedisRegistry::new(redis, max_jobs, max_per_session, timeout)))
    }
}

impl JobService {
    /// A job service keeping its jobs in Redis when `redis` is given, else in memory.
    pub(crate) fn new(
        settings: JobSettings,
        hub: Arc<Hub>,
        backend: &Backend,
        shutdown: CancellationToken,
    ) -> Self {
        let registry =
            backend.job_registry(settings.max_jobs, settings.max_jobs_per_session, settings.timeout);
        let service = Self(Arc::new(Inner {
            registry,
            hub,
            worker: WorkerClient::new(&settings.worker_url, settings.worker_token.clone()),
            settings,
            timers: Mutex::default(),
            shutdown,
        }));
        if let Registry::Redis(_) = service.0.registry {
            service.spawn_overdue_sweep();
        }
        service
    }

    /// Starts a job for the session whose private topic is `session`, and answers as soon as the
    /// worker has taken it. A job the worker cannot take comes back already failed.
    pub(crate) async fn start(&self, session: Topic) -> Result<JobView, StartError> {
        let job = match &self.0.registry {
            Registry::Memory(registry) => registry.start(session)?,
            Registry::Redis(registry) => registry.start(session).await?,
        };
        let timer = self.0.shutdown.child_token();
        self.0.timers.lock().insert(job.id.clone(), timer.clone());
        let callback_url = format!("{}/callbacks/{}", self.0.settings.callback_base, job.id);
        match self.0.worker.dispatch(&job.id, &callback_url).await {
            Ok(()) => {
                self.fail_unless_called_back(job.id.clone(), timer);
                Ok(job)
            }
            Err(reason) => {
                // The reason names the worker's internal address: it is for the log, not for
                // the visitor, whose page shows the neutral message.
                tracing::warn!(job = %job.id, %reason, "the worker did not take the job");
                let result = serde_json::json!({ "error": NOT_TAKEN }).to_string();
                Ok(self
                    .finish(&job.id, JobStatus::Failed, result)
                    .await
                    .map_or(job, |finished| finished.view))
            }
        }
    }

    /// Finishes a running job, stops its timer, and tells its session with a `job` event.
    pub(crate) async fn finish(
        &self,
        id: &str,
        status: JobStatus,
        result: String,
    ) -> Result<Finished, FinishError> {
        let (session, view) = match &self.0.registry {
            Registry::Memory(registry) => registry.finish(id, status, result)?,
            Registry::Redis(registry) => registry.finish(id, status, result).await?,
        };
        if let Some(timer) = self.0.timers.lock().remove(id) {
            timer.cancel();
        }
        let data = serde_json::to_string(&view).expect("a job view serialises");
        let event = NewEvent::new(session, data).named(EventName::known(JOB_EVENT));
        match self.0.hub.publish(event.clone()).await {
            Ok(published) => Ok(Finished { view, event_id: published.id }),
            Err(Unavailable) => {
                // Redis went away between the two writes: the job is finished (a retried
                // callback gets 409), so its event must still be told, as soon as Redis is back.
                self.publish_when_possible(event);
                Err(FinishError::Unavailable)
            }
        }
    }

    /// Retries publishing `event` with backoff until it is stored or the server shuts down.
    fn publish_when_possible(&self, event: NewEvent) {
        let (hub, shutdown) = (Arc::clone(&self.0.hub), self.0.shutdown.clone());
        tokio::spawn(async move {
            let mut backoff = Backoff::default();
            while hub.publish(event.clone()).await.is_err() {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff.next()) => {}
                }
            }
        });
    }

    /// The session's jobs, and the position to resume its stream from.
    pub(crate) async fn list(&self, session: &Topic) -> Result<JobListing, Unavailable> {
        // Read the position before the jobs: whatever finishes in between is both listed and
        // replayed, which the page's merge makes harmless; the other order could miss it.
        let as_of = self.0.hub.last_id().await?.to_string();
        let jobs = match &self.0.registry {
            Registry::Memory(registry) => registry.of_session(session),
            Registry::Redis(registry) => registry.of_session(session).await?,
        };
        Ok(JobListing { jobs, as_of })
    }

    /// With Redis, fails the jobs whose deadline has passed on any instance, every second: the
    /// instance that started a job may have died with its timer.
    fn spawn_overdue_sweep(&self) {
        let service = self.clone();
        let shutdown = self.0.shutdown.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = ticks.tick() => service.fail_overdue().await,
                }
            }
        });
    }

    async fn fail_overdue(&self) {
        let Registry::Redis(registry) = &self.0.registry else { return };
        // Unavailable is logged by the connection; the next sweep catches up.
        for id in registry.overdue().await.unwrap_or_default() {
            self.fail_for_silence(&id).await;
        }
    }

    async fn fail_for_silence(&self, id: &str) {
        let waited = humantime::format_duration(self.0.settings.timeout);
        let result = serde_json::json!({ "error": format!("no callback within {waited}") });
        if self.finish(id, JobStatus::Failed, result.to_string()).await.is_ok() {
            tracing::warn!(job = %id, %waited, "no callback: the job is marked failed");
        }
    }

    /// Fails the job unless a callback finishes it within the timeout: a worker that dies, or
    /// whose callbacks never get through, must not leave a job running forever on the page.
    /// The timer stops when the job finishes, or when the server shuts down.
    fn fail_unless_called_back(&self, id: String, timer: CancellationToken) {
        let service = self.clone();
        let timeout = self.0.settings.timeout;
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(timeout) => service.fail_for_silence(&id).await,
                () = timer.cancelled() => {}
            }
            service.0.timers.lock().remove(&id);
        });
    }
}
