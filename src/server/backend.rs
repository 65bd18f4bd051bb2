//! Where what the instances share lives: this process's memory (the default), or Redis
//! (`--redis-url`). Chosen once, from the settings, when the server is built; each service is
//! handed its part from here (the hub's log, the job registry, the callback replay guard,
//! readiness), and no service chooses again.

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use super::{
    config::Config,
    hub::{Hub, HubSettings},
    jobs::Registry,
    metrics::RedisSeries,
    redis::Redis,
    signature::Replays,
};

/// The backend, cheap to clone: a Redis handle is shared by every service that uses it.
#[derive(Clone)]
pub(crate) enum Backend {
    Memory,
    /// Boxed: its connections and series make it far larger than the other variant.
    Redis(Box<OnRedis>),
}

/// The Redis backend's connection and what it reports.
#[derive(Clone)]
pub(crate) struct OnRedis {
    redis: Redis,
    series: RedisSeries,
}

impl Backend {
    pub(crate) fn from_config(config: &Config) -> Self {
        match &config.redis_url {
            None => Self::Memory,
            Some(url) => {
                let series = RedisSeries::default();
                let redis = Redis::open(url, series.health.clone(), config.redis_wait_replicas);
                Self::Redis(Box::new(OnRedis { redis, series }))
            }
        }
    }

    /// The hub on this backend's log; with Redis, its publisher and reader run until `shutdown`.
    pub(crate) fn hub(&self, settings: HubSettings, shutdown: &CancellationToken) -> Arc<Hub> {
        match self {
            Self::Memory => Hub::new(Hub::new_incarnation(), settings),
            Self::Redis(on) => {
                // The one place the Redis connection's own task starts: with Sentinels, it
                // follows the primary until shutdown.
                on.redis.follow_primary(shutdown.clone());
                Hub::on_redis(on.redis.clone(), settings, on.series.reader.clone(), shutdown)
            }
        }
    }

    /// Where jobs are kept: which session owns which, how each ended.
    pub(crate) fn job_registry(
        &self,
        max_jobs: usize,
        max_per_session: usize,
        timeout: Duration,
    ) -> Registry {
        match self {
            Self::Memory => Registry::in_memory(max_jobs, max_per_session),
            Self::Redis(on) => Registry::in_redis(on.redis.clone(), max_jobs, max_per_session, timeout),
        }
    }

    /// Where accepted callback signatures are remembered, each for twice `tolerance`.
    pub(crate) fn replay_guard(&self, tolerance: Duration) -> Replays {
        match self {
            Self::Memory => Replays::in_memory(tolerance),
            Self::Redis(on) => Replays::in_redis(on.redis.clone(), tolerance),
        }
    }

    /// Whether the backend answers, as its connection last saw it (memory always does): a probe
    /// sends Redis nothing.
    pub(crate) fn is_up(&self) -> bool {
        match self {
            Self::Memory => true,
            Self::Redis(on) => on.redis.is_up(),
        }
    }

    /// The series only a Redis backend has, for the metrics registry.
    pub(crate) fn redis_series(&self) -> Option<&RedisSeries> {
        match self {
            Self::Memory => None,
            Self::Redis(on) => Some(&on.series),
        }
    }
}
