//! The job registry in Redis (`--redis-url`), shared by every instance: a job started on one
//! instance can be finished by a callback on another, exactly once, and listed on any.
//!
//! Keys: `herald:job:<id>` (a hash, kept for the timeout plus an hour, then an hour after it
//! finishes), `herald:session-jobs:<session>` (the session's newest jobs) and
//! `herald:jobs-running` (running jobs by deadline), the last two kept as long as the newest job
//! they list: every key expires.

use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::Script;

use super::registry::{new_running_job, FinishError, StartError, KEEP_FINISHED, LISTED_PER_SESSION};
use crate::protocol::{JobStatus, JobView};
use crate::server::{
    event::Topic,
    redis::{keys, Redis, Unavailable},
};

pub(crate) struct RedisRegistry {
    redis: Redis,
    max_jobs: usize,
    max_per_session: usize,
    timeout: Duration,
    start: Script,
    finish: Script,
    overdue: Script,
}

impl RedisRegistry {
    pub(crate) fn new(redis: Redis, max_jobs: usize, max_per_session: usize, timeout: Duration) -> Self {
        Self {
            redis,
            max_jobs,
            max_per_session,
            timeout,
            start: Script::new(include_str!("lua/start.lua")),
            finish: Script::new(include_str!("lua/finish.lua")),
            overdue: Script::new(include_str!("lua/overdue.lua")),
        }
    }

    /// Registers a running job for the session whose private topic is `session`.
    pub(crate) async fn start(&self, session: Topic) -> Result<JobView, StartError> {
        let view = new_running_job();
        let keep = self.timeout + KEEP_FINISHED;
        let mut connection = self.redis.connection().map_err(|Unavailable| StartError::Unavailable)?;
        let answer: String = self
            .redis
            .observe(
                self.start
                    .key(keys::job(&view.id))
                    .key(keys::session_jobs(&session))
                    .key(keys::JOBS_RUNNING)
                    .arg(&view.id)
                    .arg(session.as_str())
                    .arg(view.started_at.to_rfc3339())
                    .arg(self.max_jobs)
                    .arg(self.max_per_session)
                    .arg(self.timeout.as_millis() as u64)
                    .arg(keep.as_millis() as u64)
                    .arg(LISTED_PER_SESSION)
                    .arg(keys::JOB_PREFIX)
                    .invoke_async(&mut connection)
                    .await,
            )
            .map_err(|Unavailable| StartError::Unavailable)?;
        match answer.as_str() {
            "ok" => Ok(view),
            "session-busy" => Err(StartError::SessionBusy { limit: self.max_per_session }),
            _ => Err(StartError::Full),
        }
    }

    /// Marks a running job finished, once across every instance; returns its session's topic
    /// and its final view.
    pub(crate) async fn finish(
        &self,
        id: &str,
        status: JobStatus,
        result: String,
    ) -> Result<(Topic, JobView), FinishError> {
        let mut connection = self.redis.connection().map_err(|Unavailable| FinishError::Unavailable)?;
        let answer: Vec<String> = self
            .redis
            .observe(
                self.finish
                    .key(keys::job(id))
                    .key(keys::JOBS_RUNNING)
                    .arg(id)
                    .arg(status.label())
                    .arg(&result)
                    .arg(KEEP_FINISHED.as_millis() as u64)
                    .invoke_async(&mut connection)
                    .await,
            )
            .map_err(|Unavailable| FinishError::Unavailable)?;
        match answer.as_slice() {
            [ok, session, started_at, took_ms] if ok == "ok" => {
                let session = Topic::parse(session).map_err(|_| FinishError::Unknown)?;
                let view = JobView {
                    id: id.to_owned(),
                    status,
                    started_at: parse_time(started_at),
                    took_ms: took_ms.parse().ok(),
                    result: Some(result),
                };
                Ok((session, view))
            }
            [finished] if finished == "finished" => Err(FinishError::AlreadyFinished),
            _ => Err(FinishError::Unknown),
        }
    }

    /// The jobs of one session, newest first.
    pub(crate) async fn of_session(&self, session: &Topic) -> Result<Vec<JobView>, Unavailable> {
        let mut connection = self.redis.connection()?;
        let ids: Vec<String> = self.redis.observe(
            redis::cmd("ZREVRANGE")
                .arg(keys::session_jobs(session))
                .arg(0)
                .arg(-1)
                .query_async(&mut connection)
                .await,
        )?;
        if ids.is_empty() {
            // An empty pipeline is an error in the client, not a Redis that is down.
            return Ok(vec![]);
        }
        let mut fetch = redis::pipe();
        for id in &ids {
            fetch
                .cmd("HMGET")
                .arg(keys::job(id))
                .arg("status")
                .arg("started_at")
                .arg("took_ms")
                .arg("result");
        }
        type Fields = (Option<String>, Option<String>, Option<u64>, Option<String>);
        let jobs: Vec<Fields> = self.redis.observe(fetch.query_async(&mut connection).await)?;
        let mut views: Vec<JobView> = ids
            .into_iter()
            .zip(jobs)
            .filter_map(|(id, (status, started_at, took_ms, result))| {
                let status = serde_json::from_value(serde_json::Value::String(status?)).ok()?;
                Some(JobView { id, status, started_at: parse_time(&started_at?), took_ms, result })
            })
            .collect();
        views.sort_by_key(|view| std::cmp::Reverse(view.started_at));
        Ok(views)
    }

    /// The running jobs past their deadline, by Redis's clock (which set the deadlines): their
    /// instance may have died with their timer. At most 100 a call.
    pub(crate) async fn overdue(&self) -> Result<Vec<String>, Unavailable> {
        self.redis.observe(
            self.overdue.key(keys::JOBS_RUNNING).arg(100).invoke_async(&mut self.redis.connection()?).await,
        )
    }
}

fn parse_time(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).map_or_else(|_| Utc::now(), |time| time.with_timezone(&Utc))
}
