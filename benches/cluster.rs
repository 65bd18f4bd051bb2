//! Issue #10's performance questions for the Redis backend, asked of the real `herald` binary
//! (release build) with everything on loopback:
//!
//! 1. **Latency at 1,000 subscribers**: events published one at a time, each timed from its
//!    publish request to its arrival at every subscriber; p50, p99 and max over all deliveries.
//!    In memory: one instance with 1,000 subscribers. On Redis: two instances on one throwaway
//!    Redis with 500 subscribers each, the events published alternately on either, so half the
//!    deliveries cross instances. Target: Redis p99 within 2x of memory's.
//! 2. **Sustained publishing**: how many events per second `POST /publish` accepts with
//!    [`IN_FLIGHT`] requests in flight on keep-alive connections, while 20 subscribers (10 on
//!    each Redis instance) check that every event arrives once and in order. Target: 20,000
//!    events/s on Redis. Beside it, the CPU each process spent per event, to show where the time
//!    goes. Then the same on Redis with each request a batch of [`BATCH`] events (one JSON
//!    array, one script call): issue #19's target is 5x the events/s of single publishes, side
//!    by side in the same run.
//! 3. **What `--redis-wait-replicas 1` costs** (issue #20): two instances on a primary with one
//!    replica, once with the default and once with a publish acknowledged only when the replica
//!    holds it (`WAIT 1`): the time from a publish request to its 202, one at a time, and the
//!    sustained events per second of 2.
//!
//! Memory and Redis rounds alternate, so that a change in the machine's load hits both alike;
//! the figures are medians over the rounds, and the Redis ones are also given as a ratio to the
//! memory ones of the same run. The load generator (`loadgen`: HTTP/1.1 written by hand on raw
//! sockets) and the subscribers run in this process, on the same cores as the servers and Redis:
//! the times are what a client on the same machine sees. A lost, doubled or reordered event fails
//! the run.
//!
//! `make bench-cluster` (`cargo bench --features testing --bench cluster`); needs `redis-server`
//! (`make setup-test` installs it). It takes under a minute and stops by itself.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use herald::testing::{gauge, millis, RedisServer, RunningBinary, TOKEN};
use loadgen::{
    median,
    sse_load::{payload, Crowd, Order, Publish, PublishBody, Publisher, Subscribe, Target},
};
use tokio::task::JoinHandle;

/// Subscribers of the latency test, split evenly over the instances.
const LATENCY_SUBSCRIBERS: usize = 1_000;
/// Events per latency round, published one at a time.
const LATENCY_EVENTS: usize = 50;
/// Rounds per backend of either test; the report gives their medians.
const ROUNDS: usize = 5;
/// Events per throughput round.
const FLOOD_EVENTS: usize = 40_000;
/// Events per request in the batched throughput rounds: 100 events of 100 B make a body of about
/// 13 KB, within the default `--max-body` of 64 KiB.
const BATCH: usize = 100;
/// Publish requests in flight at once during a throughput round, each on its own connection.
const IN_FLIGHT: usize = 64;
/// Subscribers that check a throughput round's events, split evenly over the instances: as many
/// in memory as on Redis, so that both deliver every event the same number of times.
const FLOOD_SUBSCRIBERS: usize = 20;
/// Each subscriber's queue in the latency test: Herald's default. Events come one at a time there.
const LATENCY_QUEUE_LEN: &str = "256";
/// Each subscriber's queue in the throughput test, above the default 256. An instance on Redis
/// hands each read of the shared log (up to 1,000 entries) to the queues in one go, so a reader
/// 256 events behind fills every queue of a busy topic at once and drops all its subscribers,
/// however fast they read (docs/performance.md, "Cluster (Redis)"). The larger queue keeps
/// them, so that the test measures the rate at which events get through, not the drops.
const FLOOD_QUEUE_LEN: &str = "4096";
/// How long an event may take to reach every subscriber before it counts as lost.
const DELIVERY_LIMIT: Duration = Duration::from_secs(30);
/// Linux reports a process's CPU time in /proc in ticks of 1/100 s (USER_HZ) on every platform
/// Herald runs on.
const TICKS_PER_SECOND: f64 = 100.0;

#[tokio::main]
async fn main() {
    println!(
        "1. latency: {LATENCY_EVENTS} events of 100 B published one at a time to {LATENCY_SUBSCRIBERS} subscribers; \
         percentiles over every delivery, medians of {ROUNDS} rounds"
    );
    let (memory, redis) = compare_latency().await;
    print_latency(&memory, &redis);

    println!();
    println!(
        "2. sustained publishing: {FLOOD_EVENTS} events of 100 B, {IN_FLIGHT} publishes in flight, \
         {FLOOD_SUBSCRIBERS} subscribers; medians of {ROUNDS} rounds"
    );
    let (memory, redis, batched) = compare_throughput().await;
    print_throughput(&memory, &redis, &batched);

    println!();
    println!(
        "3. --redis-wait-replicas: 2 instances on a primary with one replica; {WAIT_EVENTS} publishes one at a \
         time (request -> 202), then sustained as in 2; medians of {ROUNDS} rounds"
    );
    let (default, waiting) = compare_wait().await;
    print_wait(&default, &waiting);
}

// ---------------------------------------------------------------------------------------------
// The servers

/// Herald instances on one backend: one in memory, or several sharing a throwaway Redis.
struct Cluster {
    /// Before `redis`, so that the instances are killed before their Redis is.
    instances: Vec<RunningBinary>,
    addresses: Vec<SocketAddr>,
    redis: Option<RedisServer>,
    /// Held for as long as the cluster: the replica the primary sends every write to.
    _replica: Option<RedisServer>,
}

impl Cluster {
    async fn in_memory(queue_len: &str) -> Self {
        let instance = start_instance(None, queue_len, "0").await;
        Self {
            addresses: vec![address_of(&instance)],
            instances: vec![instance],
            redis: None,
            _replica: None,
        }
    }

    async fn on_redis(instances: usize, queue_len: &str) -> Self {
        Self::on_redis_with(instances, queue_len, None).await
    }

    /// On a primary with one replica, each publish acknowledged once `wait_replicas` of them
    /// hold it.
    async fn on_replicated_redis(instances: usize, queue_len: &str, wait_replicas: &str) -> Self {
        Self::on_redis_with(instances, queue_len, Some(wait_replicas)).await
    }

    async fn on_redis_with(instances: usize, queue_len: &str, replicated: Option<&str>) -> Self {
        let redis = RedisServer::start().await;
        let replica = match replicated {
            Some(_) => Some(RedisServer::start_replica_of(&redis).await),
            None => None,
        };
        let mut started = Vec::new();
        for _ in 0..instances {
            started.push(start_instance(Some(&redis.url()), queue_len, replicated.unwrap_or("0")).await);
        }
        Self {
            addresses: started.iter().map(address_of).collect(),
            instances: started,
            redis: Some(redis),
            _replica: replica,
        }
    }

    /// Instance `index`, as the load generator reaches it for `topic`.
    fn target(&self, index: usize, topic: &'static str) -> Target {
        Target {
            address: self.addresses[index],
            subscribe: Subscribe::Http { path: format!("/events?topic={topic}") },
            publish: Publish::Http {
                path: "/publish".to_owned(),
                bearer: Some(TOKEN.to_owned()),
                body: PublishBody::HeraldJson { topic, keyed: false },
            },
        }
    }

    /// How many subscribers the instances have dropped for a full queue, all told.
    async fn lagged(&self) -> u64 {
        let mut lagged = 0;
        for instance in &self.instances {
            lagged += gauge(&format!("{}/metrics", instance.url), "herald_subscribers_lagged_total").await;
        }
        lagged
    }

    /// CPU seconds used so far by each kind of process: the Herald instances together, Redis,
    /// and this process (the load generator and the subscribers).
    async fn cpu_seconds(&self) -> CpuSeconds {
        let herald = self.instances.iter().map(|instance| process_cpu_seconds(&instance.process)).sum();
        let redis = match &self.redis {
            Some(redis) => redis.cpu_seconds().await,
            None => 0.0,
        };
        CpuSeconds { herald, redis, bench: cpu_seconds_of("/proc/self/stat") }
    }
}

async fn start_instance(redis_url: Option<&str>, queue_len: &str, wait_replicas: &str) -> RunningBinary {
    let mut env = vec![
        ("LEPTOS_SITE_ADDR", "127.0.0.1:0"),
        ("HERALD_PUBLISH_TOKEN", TOKEN),
        // Instances that share a Redis must share their session key too, or Herald refuses to start.
        ("HERALD_SESSION_KEY", "the benchmark's session key of 32 bytes or more"),
        ("HERALD_MAX_SUBSCRIBERS", "5000"),
        // Every subscriber comes from 127.0.0.1.
        ("HERALD_MAX_STREAMS_PER_CLIENT", "5000"),
        // The default 10,000 events/s is a guard for production; here it would be the limit.
        ("HERALD_MAX_PUBLISH_RATE", "1000000"),
        ("HERALD_QUEUE_LEN", queue_len),
        ("HERALD_REDIS_WAIT_REPLICAS", wait_replicas),
        // Herald's own lines (streams opened and closed) as in production; tower_http's line
        // per request is off, as in benches/capacity.rs.
        ("RUST_LOG", "herald=info"),
    ];
    if let Some(url) = redis_url {
        env.push(("HERALD_REDIS_URL", url));
    }
    RunningBinary::start(env!("CARGO_BIN_EXE_herald"), &env).await
}

fn address_of(instance: &RunningBinary) -> SocketAddr {
    instance.url.trim_start_matches("http://").parse().expect("a loopback address")
}

// ---------------------------------------------------------------------------------------------
// 1. Latency at 1,000 subscribers

/// Percentiles of one round's deliveries.
#[derive(Clone, Copy)]
struct Percentiles {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

/// One backend's latency: over all deliveries, and split by whether the event was published on
/// the subscriber's own instance (only the Redis cluster has both kinds).
struct Latency {
    all: Percentiles,
    same_instance: Option<Percentiles>,
    other_instance: Option<Percentiles>,
}

/// A cluster with the latency test's subscribers open, and a publisher on each instance.
struct LatencyCrowd {
    instances: usize,
    crowd: Crowd,
    publishers: Vec<Publisher>,
    /// When each event was published, by its number.
    sent: Vec<Instant>,
    /// Kept running until the crowd has finished.
    _cluster: Cluster,
}

const CROWD_TOPIC: &str = "crowd";

async fn compare_latency() -> (Latency, Latency) {
    let mut memory = LatencyCrowd::gather(Cluster::in_memory(LATENCY_QUEUE_LEN).await).await;
    let mut redis = LatencyCrowd::gather(Cluster::on_redis(2, LATENCY_QUEUE_LEN).await).await;
    for _ in 0..ROUNDS {
        memory.publish_round().await;
        redis.publish_round().await;
    }
    (median_latency(&memory.rounds().await), median_latency(&redis.rounds().await))
}

impl LatencyCrowd {
    /// Opens [`LATENCY_SUBSCRIBERS`] streams, spread evenly over the instances (subscriber `i` on
    /// instance `i % instances`), and warms up each instance's publish path with an event of its
    /// own (the first publish on Redis loads the script and the epoch).
    async fn gather(cluster: Cluster) -> Self {
        let instances = cluster.addresses.len();
        let events = instances + ROUNDS * LATENCY_EVENTS;
        let how = Subscribe::Http { path: format!("/events?topic={CROWD_TOPIC}") };
        let subscribers = LATENCY_SUBSCRIBERS / instances * instances;
        let crowd = Crowd::open(
            &cluster.addresses,
            &how,
            None,
            Order::Published,
            subscribers,
            events,
            DELIVERY_LIMIT,
        )
        .await
        .expect("every subscriber opens its stream");
        let mut latency =
            Self { instances, crowd, publishers: Vec::new(), sent: Vec::new(), _cluster: cluster };
        for index in 0..instances {
            let publisher = Publisher::connect(&latency._cluster.target(index, CROWD_TOPIC)).await;
            latency.publishers.push(publisher.expect("the instance takes a publisher"));
            latency.publish(index).await;
        }
        latency
    }

    /// Publishes event `seq` on instance `seq % instances` and waits until it has reached every
    /// subscriber; panics if any misses it, gets it twice, or out of order.
    async fn publish(&mut self, seq: usize) {
        self.sent.push(Instant::now());
        self.publishers[seq % self.instances].publish(&[payload(seq)]).await.expect("a publish is accepted");
        self.crowd.reached(seq, DELIVERY_LIMIT).await.unwrap_or_else(|problem| panic!("{problem}"));
    }

    /// Publishes [`LATENCY_EVENTS`] events one at a time, alternating between the instances.
    async fn publish_round(&mut self) {
        for _ in 0..LATENCY_EVENTS {
            self.publish(self.sent.len()).await;
        }
    }

    /// Each round's deliveries, timed from each event's publish request to its arrival.
    async fn rounds(self) -> Vec<Latency> {
        let arrivals = self.crowd.finish().await.unwrap_or_else(|problem| panic!("{problem}"));
        let split = self.instances > 1;
        (0..ROUNDS)
            .map(|round| {
                let (mut all, mut same, mut other) = (Vec::new(), Vec::new(), Vec::new());
                for seq in
                    self.instances + round * LATENCY_EVENTS..self.instances + (round + 1) * LATENCY_EVENTS
                {
                    for (subscriber, times) in arrivals.iter().enumerate() {
                        let took = times[seq] - self.sent[seq];
                        all.push(took);
                        match subscriber % self.instances == seq % self.instances {
                            true => same.push(took),
                            false => other.push(took),
                        }
                    }
                }
                Latency {
                    all: percentiles(all),
                    same_instance: split.then(|| percentiles(same)),
                    other_instance: split.then(|| percentiles(other)),
                }
            })
            .collect()
    }
}

fn percentiles(mut times: Vec<Duration>) -> Percentiles {
    times.sort_unstable();
    // The nearest-rank percentile: the smallest time that `percent`% of the deliveries beat or equal.
    let rank = |percent: usize| times[(times.len() * percent).div_ceil(100).max(1) - 1];
    Percentiles { p50: rank(50), p99: rank(99), max: times[times.len() - 1] }
}

fn median_latency(rounds: &[Latency]) -> Latency {
    let median_of = |pick: &dyn Fn(&Latency) -> Option<Percentiles>| {
        let picked: Vec<Percentiles> = rounds.iter().filter_map(pick).collect();
        (!picked.is_empty()).then(|| Percentiles {
            p50: median(picked.iter().map(|p| p.p50).collect()),
            p99: median(picked.iter().map(|p| p.p99).collect()),
            max: median(picked.iter().map(|p| p.max).collect()),
        })
    };
    Latency {
        all: median_of(&|round| Some(round.all)).expect("at least one round"),
        same_instance: median_of(&|round| round.same_instance),
        other_instance: median_of(&|round| round.other_instance),
    }
}

fn print_latency(memory: &Latency, redis: &Latency) {
    println!("{:<44}  {:>16}  {:>16}  {:>16}", "", "p50", "p99", "max");
    let row = |name: &str, of: Percentiles, base: Option<Percentiles>| {
        let cell = |time: Duration, base: Option<Duration>| match base {
            None => format!("{:.2} ms", millis(time)),
            Some(base) => format!("{:.2} ms ({:.2}x)", millis(time), time.as_secs_f64() / base.as_secs_f64()),
        };
        println!(
            "{name:<44}  {:>16}  {:>16}  {:>16}",
            cell(of.p50, base.map(|b| b.p50)),
            cell(of.p99, base.map(|b| b.p99)),
            cell(of.max, base.map(|b| b.max)),
        );
    };
    row(&format!("memory, 1 instance x {LATENCY_SUBSCRIBERS}"), memory.all, None);
    row(&format!("redis, 2 instances x {}", LATENCY_SUBSCRIBERS / 2), redis.all, Some(memory.all));
    if let (Some(same), Some(other)) = (redis.same_instance, redis.other_instance) {
        row("  published on the subscriber's instance", same, Some(memory.all));
        row("  published on the other instance", other, Some(memory.all));
    }
    let verdict = redis.all.p99.as_secs_f64() / memory.all.p99.as_secs_f64();
    println!(
        "target: redis p99 within 2x of memory: {:.2}x, {}",
        verdict,
        if verdict <= 2.0 { "met" } else { "MISSED" }
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Sustained publishing

/// One throughput round.
#[derive(Clone, Copy)]
struct Throughput {
    /// Events per second that `/publish` accepted, from the first request to the last answer.
    accepted_per_second: f64,
    /// Events per second until the last one reached every subscriber.
    delivered_per_second: f64,
    /// CPU microseconds each kind of process spent per event over the round.
    cpu_per_event: CpuSeconds,
    /// Microseconds Redis spent per publish script, from its own command statistics.
    script_micros: Option<f64>,
}

/// CPU time of the processes involved, in seconds (or per event, in microseconds).
#[derive(Clone, Copy)]
struct CpuSeconds {
    herald: f64,
    redis: f64,
    bench: f64,
}

/// Memory, Redis, and Redis with batches of [`BATCH`], their rounds interleaved.
async fn compare_throughput() -> (Throughput, Throughput, Throughput) {
    let memory = Cluster::in_memory(FLOOD_QUEUE_LEN).await;
    let redis = Cluster::on_redis(2, FLOOD_QUEUE_LEN).await;
    let (mut memory_rounds, mut redis_rounds, mut batched_rounds) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // A topic per round, so that no earlier round's events are in the way.
        let topic = |kind: &str| -> &'static str { format!("{kind}-{round}").leak() };
        memory_rounds.push(flood(&memory, topic("flood"), 1).await);
        redis_rounds.push(flood(&redis, topic("flood"), 1).await);
        batched_rounds.push(flood(&redis, topic("batched"), BATCH).await);
    }
    (median_throughput(&memory_rounds), median_throughput(&redis_rounds), median_throughput(&batched_rounds))
}

/// Publishes [`FLOOD_EVENTS`] events to `topic` as fast as `/publish` takes them, `batch` events
/// a request and [`IN_FLIGHT`] requests at a time spread over the instances, while
/// [`FLOOD_SUBSCRIBERS`] check that each gets every event once, in the order of their ids.
async fn flood(cluster: &Cluster, topic: &'static str, batch: usize) -> Throughput {
    let how = Subscribe::Http { path: format!("/events?topic={topic}") };
    let subscribers = Crowd::open(
        &cluster.addresses,
        &how,
        None,
        Order::ById,
        FLOOD_SUBSCRIBERS,
        FLOOD_EVENTS,
        DELIVERY_LIMIT,
    )
    .await
    .expect("every subscriber opens its stream");
    let mut publishers = Vec::new();
    for slot in 0..IN_FLIGHT {
        let publisher = Publisher::connect(&cluster.target(slot % cluster.addresses.len(), topic)).await;
        publishers.push(publisher.expect("the instance takes a publisher"));
    }
    if let Some(redis) = &cluster.redis {
        redis.command(&["CONFIG", "RESETSTAT"]).await;
    }

    let cpu_before = cluster.cpu_seconds().await;
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let senders: Vec<JoinHandle<()>> = publishers
        .into_iter()
        .map(|mut publisher| {
            let next = Arc::clone(&next);
            tokio::spawn(async move {
                loop {
                    let first = next.fetch_add(batch, Ordering::Relaxed);
                    if first >= FLOOD_EVENTS {
                        return;
                    }
                    let events: Vec<String> =
                        (first..(first + batch).min(FLOOD_EVENTS)).map(payload).collect();
                    publisher.publish(&events).await.expect("a publish is accepted");
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.expect("a publisher panicked");
    }
    let accepted_in = started.elapsed();
    subscribers.reached(FLOOD_EVENTS - 1, DELIVERY_LIMIT).await.unwrap_or_else(|problem| panic!("{problem}"));
    let arrivals = subscribers.finish().await.unwrap_or_else(|problem| panic!("{problem}"));
    let last_arrival = arrivals.iter().flatten().max().copied().expect("arrivals");
    let cpu_after = cluster.cpu_seconds().await;
    let script_micros = match &cluster.redis {
        Some(redis) => publish_script_micros(redis).await,
        None => None,
    };
    let lagged = cluster.lagged().await;
    assert_eq!(lagged, 0, "the instances dropped {lagged} subscribers for a full queue (HERALD_QUEUE_LEN)");

    let per_event = |spent: f64| spent / FLOOD_EVENTS as f64 * 1e6;
    Throughput {
        accepted_per_second: FLOOD_EVENTS as f64 / accepted_in.as_secs_f64(),
        delivered_per_second: FLOOD_EVENTS as f64 / (last_arrival - started).as_secs_f64(),
        cpu_per_event: CpuSeconds {
            herald: per_event(cpu_after.herald - cpu_before.herald),
            redis: per_event(cpu_after.redis - cpu_before.redis),
            bench: per_event(cpu_after.bench - cpu_before.bench),
        },
        script_micros,
    }
}

fn median_throughput(rounds: &[Throughput]) -> Throughput {
    let median_of = |pick: &dyn Fn(&Throughput) -> f64| {
        let mut values: Vec<f64> = rounds.iter().map(pick).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    Throughput {
        accepted_per_second: median_of(&|round| round.accepted_per_second),
        delivered_per_second: median_of(&|round| round.delivered_per_second),
        cpu_per_event: CpuSeconds {
            herald: median_of(&|round| round.cpu_per_event.herald),
            redis: median_of(&|round| round.cpu_per_event.redis),
            bench: median_of(&|round| round.cpu_per_event.bench),
        },
        script_micros: rounds[0]
            .script_micros
            .map(|_| median_of(&|round| round.script_micros.unwrap_or(0.0))),
    }
}

fn print_throughput(memory: &Throughput, redis: &Throughput, batched: &Throughput) {
    println!(
        "{:<24}  {:>20}  {:>20}  {:>31}",
        "", "accepted", "delivered to all", "CPU per event: herald/redis/this"
    );
    let row = |name: &str, of: &Throughput, base: Option<&Throughput>| {
        let cell = |rate: f64, base: Option<f64>| match base {
            None => format!("{rate:.0} /s"),
            Some(base) => format!("{rate:.0} /s ({:.2}x)", rate / base),
        };
        let cpu = of.cpu_per_event;
        println!(
            "{name:<24}  {:>20}  {:>20}  {:>31}",
            cell(of.accepted_per_second, base.map(|b| b.accepted_per_second)),
            cell(of.delivered_per_second, base.map(|b| b.delivered_per_second)),
            format!("{:.1} / {:.1} / {:.1} us", cpu.herald, cpu.redis, cpu.bench),
        );
    };
    row("memory, 1 instance", memory, None);
    row("redis, 2 instances", redis, Some(memory));
    row(&format!("redis, batches of {BATCH}"), batched, Some(redis));
    for (what, of) in [("a publish script", redis), ("a script of batches", batched)] {
        if let Some(micros) = of.script_micros {
            println!("redis's own time per call of {what} (INFO commandstats): {micros:.1} us");
        }
    }
    let ratio = batched.accepted_per_second / redis.accepted_per_second;
    println!(
        "target: batches on redis >= 5x single publishes on redis: {ratio:.2}x, {}",
        if ratio >= 5.0 { "met" } else { "MISSED" }
    );
}

// ---------------------------------------------------------------------------------------------
// 3. What waiting for a replica costs

/// How many publishes are timed one at a time in each round.
const WAIT_EVENTS: usize = 500;

struct WaitCost {
    /// Request -> 202, one publish at a time.
    publish: Percentiles,
    sustained: Throughput,
}

/// The default and `--redis-wait-replicas 1`, each on its own primary with one replica, rounds
/// alternating.
async fn compare_wait() -> (WaitCost, WaitCost) {
    let default = Cluster::on_replicated_redis(2, FLOOD_QUEUE_LEN, "0").await;
    let waiting = Cluster::on_replicated_redis(2, FLOOD_QUEUE_LEN, "1").await;
    let (mut default_rounds, mut waiting_rounds) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let topic = |kind: &str| -> &'static str { format!("{kind}-{round}").leak() };
        for (cluster, rounds) in [(&default, &mut default_rounds), (&waiting, &mut waiting_rounds)] {
            let publish = publish_one_at_a_time(cluster, topic("single")).await;
            let sustained = flood(cluster, topic("flood"), 1).await;
            rounds.push(WaitCost { publish, sustained });
        }
    }
    let median_of = |rounds: &[WaitCost]| {
        let pick = |of: fn(&Percentiles) -> Duration| {
            median(rounds.iter().map(|round| of(&round.publish)).collect())
        };
        let sustained: Vec<Throughput> = rounds.iter().map(|round| round.sustained).collect();
        WaitCost {
            publish: Percentiles { p50: pick(|p| p.p50), p99: pick(|p| p.p99), max: pick(|p| p.max) },
            sustained: median_throughput(&sustained),
        }
    };
    (median_of(&default_rounds), median_of(&waiting_rounds))
}

/// Times [`WAIT_EVENTS`] publishes on the first instance, each sent once the previous one has
/// its 202.
async fn publish_one_at_a_time(cluster: &Cluster, topic: &'static str) -> Percentiles {
    let mut publisher =
        Publisher::connect(&cluster.target(0, topic)).await.expect("the instance takes a publisher");
    let mut times = Vec::with_capacity(WAIT_EVENTS);
    for number in 0..WAIT_EVENTS {
        let started = Instant::now();
        publisher.publish(&[payload(number)]).await.expect("a publish is accepted");
        times.push(started.elapsed());
    }
    percentiles(times)
}

fn print_wait(default: &WaitCost, waiting: &WaitCost) {
    println!("{:<26}  {:>18}  {:>18}  {:>18}  {:>16}", "", "publish -> 202 p50", "p99", "max", "sustained");
    for (name, of) in [("default (primary holds it)", default), ("--redis-wait-replicas 1", waiting)] {
        let ratio = |value: Duration, base: Duration| value.as_secs_f64() / base.as_secs_f64();
        println!(
            "{name:<26}  {:>18}  {:>18}  {:>18}  {:>16}",
            format!("{:.3} ms ({:.2}x)", millis(of.publish.p50), ratio(of.publish.p50, default.publish.p50)),
            format!("{:.3} ms ({:.2}x)", millis(of.publish.p99), ratio(of.publish.p99, default.publish.p99)),
            format!("{:.3} ms ({:.2}x)", millis(of.publish.max), ratio(of.publish.max, default.publish.max)),
            format!(
                "{:.0} /s ({:.2}x)",
                of.sustained.accepted_per_second,
                of.sustained.accepted_per_second / default.sustained.accepted_per_second
            ),
        );
    }
    let extra = millis(waiting.publish.p50) - millis(default.publish.p50);
    println!("WAIT adds {extra:.3} ms to a publish at p50");
}

// ---------------------------------------------------------------------------------------------
// Where the time goes

/// User and system CPU time of a child process so far.
fn process_cpu_seconds(process: &tokio::process::Child) -> f64 {
    let pid = process.id().expect("a running instance");
    cpu_seconds_of(&format!("/proc/{pid}/stat"))
}

/// User plus system time (`utime` and `stime`, the 14th and 15th fields) of every thread of the
/// process whose `/proc/…/stat` is at `path`.
fn cpu_seconds_of(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_else(|err| panic!("cannot read {path}: {err}"));
    // The command name in parentheses may hold spaces; the fields after it are plain numbers,
    // starting with the 3rd (state).
    let fields: Vec<&str> = stat[stat.rfind(')').expect("a command name") + 1..].split_whitespace().collect();
    let ticks = |field: usize| fields[field - 3].parse::<f64>().expect("a number of ticks");
    (ticks(14) + ticks(15)) / TICKS_PER_SECOND
}

/// Microseconds per call of the publish script (`EVALSHA`, or `EVAL` after a `NOSCRIPT`) since
/// the last `CONFIG RESETSTAT`.
async fn publish_script_micros(redis: &RedisServer) -> Option<f64> {
    let info = redis.info("commandstats").await;
    let (mut calls, mut micros) = (0.0, 0.0);
    for line in
        info.lines().filter(|line| line.starts_with("cmdstat_evalsha:") || line.starts_with("cmdstat_eval:"))
    {
        // cmdstat_evalsha:calls=40000,usec=1234567,usec_per_call=30.86,…
        let stat = |name: &str| {
            line.split([':', ','])
                .find_map(|pair| pair.strip_prefix(name))
                .and_then(|value| value.parse::<f64>().ok())
        };
        calls += stat("calls=").unwrap_or(0.0);
        micros += stat("usec=").unwrap_or(0.0);
    }
    (calls > 0.0).then(|| micros / calls)
}
