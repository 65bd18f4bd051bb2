//! Issue #19's scale run: Herald instances on one throwaway Redis, a [`Swarm`] of subscribers of
//! one topic spread evenly over them, events published on the first instance. It measures what
//! each delivery took (publish request → arrival, over every subscriber of every instance), what
//! each instance holds per subscriber, what Redis spent, and a burst's deliveries per second;
//! and it fails on a subscriber that could not connect, an event lost, doubled or reordered, or an
//! instance that logged Redis as unavailable (a slow reply taken for an outage).
//!
//! The same run can put Nchan under the swarm instead ([`ScalePlan::nchan`]): as many nginx
//! servers with `libnginx-mod-nchan`, sharing their channels through the same kind of Redis.
//!
//! `benches/scale.rs` runs [`ScalePlan::full`] beside [`ScalePlan::baseline`] (one instance in
//! memory) and [`ScalePlan::nchan`] in one invocation; `tests/load/scale.rs` runs
//! [`ScalePlan::quick`].

use std::{net::SocketAddr, path::Path, time::Duration};

use crate::{
    compare::start_nchan,
    raise_open_file_limit,
    sse_load::{payload, Publish, PublishBody, Publisher, Subscribe, Target},
    swarm::{monotonic_ns, share, Swarm, SwarmPlan},
    ProcessGroup, ProcessTree, RedisServer, RunningBinary,
};

/// The publish token of the instances the run starts.
const TOKEN: &str = "the scale run's publish token";
const TOPIC: &str = "scale";

/// The relay under the swarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleServer {
    Herald,
    /// nginx with Nchan (`benches/peers/nchan.conf`, two workers each), its channels in Redis.
    Nchan,
}

/// What one run puts together.
#[derive(Clone, Debug)]
pub struct ScalePlan {
    pub server: ScaleServer,
    pub instances: usize,
    /// Whether the instances share a Redis (else one instance, in memory).
    pub redis: bool,
    pub subscribers: usize,
    /// The swarm's processes (each holds at most [`crate::swarm::PER_WORKER`]).
    pub workers: usize,
    /// Events published one at a time, each once the previous has reached everyone.
    pub events: usize,
    /// Events then published in one batch request.
    pub burst: usize,
    pub patience: Duration,
}

impl ScalePlan {
    /// 100,000 subscribers over six instances on one Redis.
    pub fn full() -> Self {
        Self {
            server: ScaleServer::Herald,
            instances: 6,
            redis: true,
            subscribers: 100_000,
            workers: 7,
            events: 20,
            burst: 100,
            patience: Duration::from_secs(120),
        }
    }

    /// The baseline in the same invocation: one instance in memory with one worker's share.
    pub fn baseline() -> Self {
        Self { instances: 1, redis: false, subscribers: 10_000, workers: 1, ..Self::full() }
    }

    /// The full run with Nchan in Herald's place: six nginx servers on one Redis. Nchan takes
    /// one event a request, so the burst's events go one after another on one connection.
    pub fn nchan() -> Self {
        Self { server: ScaleServer::Nchan, ..Self::full() }
    }

    /// `make test`'s: two instances on Redis with 2,000 subscribers each, from two workers.
    pub fn quick() -> Self {
        Self {
            server: ScaleServer::Herald,
            instances: 2,
            redis: true,
            subscribers: 4_000,
            workers: 2,
            events: 5,
            burst: 20,
            patience: Duration::from_secs(30),
        }
    }
}

/// The binaries a run starts: a bench's or a test's `env!("CARGO_BIN_EXE_…")`.
pub struct ScaleBinaries {
    pub herald: &'static str,
    pub swarm_worker: &'static str,
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct ScaleReport {
    pub plan: ScalePlan,
    /// From the first worker's start until every stream was open.
    pub opened_in: Duration,
    /// Publish request → arrival over every delivery of the events published one at a time, in
    /// milliseconds: nearest-rank p50 and p99, and the slowest.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The same deliveries' percentiles 0 to 100, for a plot of their distribution.
    pub percentiles_ms: Vec<f64>,
    /// Each instance's subscribers, and the PSS each added per subscriber (KiB), once every
    /// subscriber had the first event.
    pub subscribers_per_instance: Vec<usize>,
    pub kib_per_subscriber: Vec<f64>,
    /// Redis's CPU seconds over the events and the burst, and its `used_memory` at the end.
    pub redis_cpu_seconds: Option<f64>,
    pub redis_used_memory: Option<u64>,
    /// The burst: deliveries to every subscriber per second, from its request to its last
    /// arrival anywhere.
    pub burst_deliveries_per_s: f64,
    /// Publishes answered `503` (a Redis reply later than its timeout) and sent again with their
    /// idempotency keys, and the instances that logged such a late reply.
    pub publish_retries: usize,
    pub instances_with_late_replies: usize,
}

/// One relay instance of a run.
enum Instance {
    Herald(RunningBinary),
    Nchan(ProcessGroup, SocketAddr),
}

impl Instance {
    fn address(&self) -> SocketAddr {
        match self {
            Self::Herald(herald) => {
                herald.url.trim_start_matches("http://").parse().expect("a loopback address")
            }
            Self::Nchan(_, address) => *address,
        }
    }

    fn pid(&self) -> u32 {
        match self {
            Self::Herald(herald) => herald.process.id().expect("running"),
            Self::Nchan(nginx, _) => nginx.pid(),
        }
    }
}

/// Runs `plan`; an error says what failed (the first problem any process saw).
pub async fn run(plan: &ScalePlan, binaries: &ScaleBinaries) -> Result<ScaleReport, String> {
    let open_files = raise_open_file_limit();
    let redis = match plan.redis {
        true => Some(RedisServer::start().await),
        false => None,
    };
    let mut instances = Vec::with_capacity(plan.instances);
    for _ in 0..plan.instances {
        let redis_url = redis.as_ref().map(RedisServer::url);
        instances.push(match plan.server {
            ScaleServer::Herald => Instance::Herald(start_instance(binaries.herald, redis_url).await),
            ScaleServer::Nchan => {
                let (nginx, address) = start_nchan(open_files, redis_url.as_deref()).await;
                Instance::Nchan(nginx, address)
            }
        });
    }
    let addresses: Vec<SocketAddr> = instances.iter().map(Instance::address).collect();
    let trees: Vec<ProcessTree> = instances.iter().map(|instance| ProcessTree::new(instance.pid())).collect();
    let path = match plan.server {
        ScaleServer::Herald => format!("/events?topic={TOPIC}"),
        ScaleServer::Nchan => "/events".to_owned(),
    };
    let target = Target {
        address: addresses[0],
        subscribe: Subscribe::Http { path: path.clone() },
        publish: Publish::Http {
            path: "/publish".to_owned(),
            bearer: (plan.server == ScaleServer::Herald).then(|| TOKEN.to_owned()),
            body: match plan.server {
                ScaleServer::Herald => PublishBody::HeraldJson { topic: TOPIC, keyed: true },
                ScaleServer::Nchan => PublishBody::Raw,
            },
        },
    };
    let mut publisher = Publisher::connect(&target).await?;
    // Once with nobody listening, so that the idle figure includes the publish path.
    publisher.publish(&[String::from("idle")]).await?;
    let idle_kib: Vec<u64> = trees.iter().map(ProcessTree::pss_kib).collect();

    let events = 1 + plan.events + plan.burst;
    let swarm_plan = SwarmPlan {
        targets: addresses.clone(),
        path,
        subscribers: plan.subscribers,
        workers: plan.workers,
        events,
        patience: plan.patience,
    };
    let opening = std::time::Instant::now();
    eprintln!("scale: opening {} streams from {} workers", plan.subscribers, plan.workers);
    let mut swarm = Swarm::open(Path::new(binaries.swarm_worker), &swarm_plan).await?;
    let opened_in = opening.elapsed();
    eprintln!("scale: every stream open after {opened_in:?}; publishing");

    let mut sent = Vec::with_capacity(events);
    sent.push(monotonic_ns());
    publisher.publish(&[payload(0)]).await?;
    swarm.reached(0, plan.patience).await?;
    let subscribers_per_instance = per_instance(plan.subscribers, plan.workers, plan.instances);
    let kib_per_subscriber = trees
        .iter()
        .zip(&idle_kib)
        .zip(&subscribers_per_instance)
        .map(|((tree, idle), subscribers)| tree.pss_kib().saturating_sub(*idle) as f64 / *subscribers as f64)
        .collect();

    let redis_cpu_before = match &redis {
        Some(redis) => Some(redis.cpu_seconds().await),
        None => None,
    };
    for seq in 1..=plan.events {
        sent.push(monotonic_ns());
        publisher.publish(&[payload(seq)]).await?;
        swarm.reached(seq, plan.patience).await?;
    }
    let burst: Vec<String> = (plan.events + 1..events).map(payload).collect();
    let burst_sent = monotonic_ns();
    if !burst.is_empty() {
        match plan.server {
            ScaleServer::Herald => publisher.publish(&burst).await?,
            ScaleServer::Nchan => {
                for event in &burst {
                    publisher.publish(std::slice::from_ref(event)).await?;
                }
            }
        }
        swarm.reached(events - 1, plan.patience).await?;
    }
    let (redis_cpu_seconds, redis_used_memory) = match (&redis, redis_cpu_before) {
        (Some(redis), Some(before)) => {
            (Some(redis.cpu_seconds().await - before), Some(redis.used_memory().await))
        }
        _ => (None, None),
    };

    let arrivals = swarm.arrivals(events, plan.patience).await?;
    for (seq, times) in arrivals.iter().enumerate() {
        if times.len() != plan.subscribers {
            return Err(format!(
                "event {seq} has {} arrivals for {} subscribers",
                times.len(),
                plan.subscribers
            ));
        }
    }
    let mut took: Vec<u64> = (1..=plan.events)
        .flat_map(|seq| {
            let sent = sent[seq];
            arrivals[seq].iter().map(move |at| at.saturating_sub(sent))
        })
        .collect();
    took.sort_unstable();
    let rank = |percent: usize| took[(took.len() * percent).div_ceil(100).max(1) - 1] as f64 / 1e6;
    let burst_deliveries_per_s = match arrivals[plan.events + 1..].iter().flatten().max() {
        Some(last) => (plan.burst * plan.subscribers) as f64 / ((last - burst_sent) as f64 / 1e9),
        None => 0.0,
    };

    let heralds: Vec<&RunningBinary> = instances
        .iter()
        .filter_map(|instance| match instance {
            Instance::Herald(herald) => Some(herald),
            Instance::Nchan(..) => None,
        })
        .collect();
    for (index, instance) in heralds.iter().enumerate() {
        if let Some(line) = instance.log().lines().find(|line| line.contains("Redis is unavailable")) {
            let kept = std::env::temp_dir().join(format!("herald-scale-instance-{index}.log"));
            let _ = std::fs::write(&kept, instance.log());
            return Err(format!("instance {index} took Redis for unavailable ({}): {line}", kept.display()));
        }
    }
    let instances_with_late_replies = heralds
        .iter()
        .filter(|instance| instance.log().contains("a Redis reply came later than its timeout"))
        .count();
    Ok(ScaleReport {
        plan: plan.clone(),
        opened_in,
        p50_ms: rank(50),
        p99_ms: rank(99),
        max_ms: took.last().copied().unwrap_or(0) as f64 / 1e6,
        percentiles_ms: (0..=100).map(|percent| rank(percent.max(1))).collect(),
        subscribers_per_instance,
        kib_per_subscriber,
        redis_cpu_seconds,
        redis_used_memory,
        burst_deliveries_per_s,
        publish_retries: publisher.retried,
        instances_with_late_replies,
    })
}

/// How many subscribers each instance gets: each worker deals its share out in turn, starting
/// at an instance of its own (see [`Swarm::open`]).
fn per_instance(subscribers: usize, workers: usize, instances: usize) -> Vec<usize> {
    let mut counts = vec![0; instances];
    for worker in 0..workers {
        for index in 0..share(subscribers, workers, worker) {
            counts[(index + worker) % instances] += 1;
        }
    }
    counts
}

async fn start_instance(herald: &str, redis_url: Option<String>) -> RunningBinary {
    let mut env = vec![
        ("LEPTOS_SITE_ADDR", "127.0.0.1:0".to_owned()),
        ("HERALD_PUBLISH_TOKEN", TOKEN.to_owned()),
        // Instances that share a Redis must share their session key too.
        ("HERALD_SESSION_KEY", "the scale run's session key of 32 bytes or more".to_owned()),
        // The limits are guards for production; here they would be the ceiling.
        ("HERALD_MAX_SUBSCRIBERS", "1000000".to_owned()),
        ("HERALD_MAX_STREAMS_PER_CLIENT", "1000000".to_owned()),
        ("HERALD_MAX_PUBLISH_RATE", "1000000".to_owned()),
        // Herald's own lines (a stream opened and closed) as in production, which is where an
        // instance that takes Redis for unavailable says so.
        ("RUST_LOG", "herald=info".to_owned()),
    ];
    if let Some(url) = redis_url {
        env.push(("HERALD_REDIS_URL", url));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(name, value)| (*name, value.as_str())).collect();
    RunningBinary::start(herald, &env).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workers_deal_their_subscribers_out_evenly_over_the_instances() {
        let full = per_instance(100_000, 7, 6);
        assert_eq!(full.iter().sum::<usize>(), 100_000);
        assert!(full.iter().all(|&count| (16_666..=16_667).contains(&count)), "{full:?}");
        assert_eq!(per_instance(4_000, 2, 2), [2_000, 2_000]);
        assert_eq!(per_instance(10_000, 1, 1), [10_000]);
    }
}
