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
//!
//! Memory and Redis rounds alternate, so that a change in the machine's load hits both alike;
//! the figures are medians over the rounds, and the Redis ones are also given as a ratio to the
//! memory ones of the same run. The load generator (HTTP/1.1 written by hand on raw sockets) and
//! the subscribers run in this process, on the same cores as the servers and Redis: the times are
//! what a client on the same machine sees. A lost, doubled or reordered event fails the run.
//!
//! `make bench-cluster` (`cargo bench --features testing --bench cluster`); needs `redis-server`
//! (`make setup-test` installs it). It takes under a minute and stops by itself.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use herald::testing::{gauge, median, millis, RedisServer, RunningBinary, PATIENCE, TOKEN};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::mpsc,
    task::JoinHandle,
};

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
/// Every event's data: 100 bytes, as in `benches/capacity.rs`. Plain ASCII, so that it goes into
/// the JSON body without escaping.
const PAYLOAD: &str =
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
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
}

// ---------------------------------------------------------------------------------------------
// The servers

/// Herald instances on one backend: one in memory, or several sharing a throwaway Redis.
struct Cluster {
    /// Before `redis`, so that the instances are killed before their Redis is.
    instances: Vec<RunningBinary>,
    /// `host:port` of each instance.
    addresses: Vec<String>,
    redis: Option<RedisServer>,
}

impl Cluster {
    async fn in_memory(queue_len: &str) -> Self {
        let instance = start_instance(None, queue_len).await;
        Self { addresses: vec![address_of(&instance)], instances: vec![instance], redis: None }
    }

    async fn on_redis(instances: usize, queue_len: &str) -> Self {
        let redis = RedisServer::start().await;
        let mut started = Vec::new();
        for _ in 0..instances {
            started.push(start_instance(Some(&redis.url()), queue_len).await);
        }
        Self { addresses: started.iter().map(address_of).collect(), instances: started, redis: Some(redis) }
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

async fn start_instance(redis_url: Option<&str>, queue_len: &str) -> RunningBinary {
    let mut env = vec![
        ("LEPTOS_SITE_ADDR", "127.0.0.1:0"),
        ("HERALD_PUBLISH_TOKEN", TOKEN),
        // Instances that share a Redis must share their session key too, or Herald refuses to start.
        ("HERALD_SESSION_KEY", "the benchmark's session key, 32 bytes or more"),
        ("HERALD_MAX_SUBSCRIBERS", "5000"),
        // Every subscriber comes from 127.0.0.1.
        ("HERALD_MAX_STREAMS_PER_CLIENT", "5000"),
        // The default 10,000 events/s is a guard for production; here it would be the limit.
        ("HERALD_MAX_PUBLISH_RATE", "1000000"),
        ("HERALD_QUEUE_LEN", queue_len),
        // Herald's own lines (streams opened and closed) as in production; tower_http's line
        // per request is off, as in benches/capacity.rs.
        ("RUST_LOG", "herald=info"),
    ];
    if let Some(url) = redis_url {
        env.push(("HERALD_REDIS_URL", url));
    }
    RunningBinary::start(env!("CARGO_BIN_EXE_herald"), &env).await
}

fn address_of(instance: &RunningBinary) -> String {
    instance.url.trim_start_matches("http://").to_owned()
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

/// A subscriber's report of one event.
struct Arrival {
    instance: usize,
    seq: u64,
    at: Instant,
}

/// A cluster with the latency test's subscribers open, and a publisher on each instance.
struct Crowd {
    cluster: Cluster,
    publishers: Vec<Publisher>,
    arrivals: mpsc::UnboundedReceiver<Arrival>,
}

const CROWD_TOPIC: &str = "crowd";

async fn compare_latency() -> (Latency, Latency) {
    let mut memory = Crowd::gather(Cluster::in_memory(LATENCY_QUEUE_LEN).await).await;
    let mut redis = Crowd::gather(Cluster::on_redis(2, LATENCY_QUEUE_LEN).await).await;
    let (mut memory_rounds, mut redis_rounds) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        memory_rounds.push(memory.time_deliveries().await);
        redis_rounds.push(redis.time_deliveries().await);
    }
    (median_latency(&memory_rounds), median_latency(&redis_rounds))
}

impl Crowd {
    /// Opens [`LATENCY_SUBSCRIBERS`] streams, spread evenly over the instances, and warms up
    /// each instance's publish path (the first publish on Redis loads the script and the epoch).
    async fn gather(cluster: Cluster) -> Self {
        let (report, arrivals) = mpsc::unbounded_channel();
        let (opened, mut open) = mpsc::unbounded_channel();
        let per_instance = LATENCY_SUBSCRIBERS / cluster.addresses.len();
        for (instance, address) in cluster.addresses.iter().enumerate() {
            for _ in 0..per_instance {
                let (address, report, opened) = (address.clone(), report.clone(), opened.clone());
                tokio::spawn(async move {
                    let mut stream = RawStream::open(&address, CROWD_TOPIC).await;
                    let _ = opened.send(());
                    report_arrivals(&mut stream, instance, &report).await;
                });
            }
        }
        for _ in 0..per_instance * cluster.addresses.len() {
            tokio::time::timeout(PATIENCE * 6, open.recv())
                .await
                .ok()
                .flatten()
                .expect("not every subscriber could open its stream");
        }
        let mut publishers = Vec::new();
        for address in &cluster.addresses {
            let mut publisher = Publisher::connect(address).await;
            publisher.publish("warm-up", PAYLOAD, 1).await;
            publishers.push(publisher);
        }
        Self { cluster, publishers, arrivals }
    }

    /// Publishes [`LATENCY_EVENTS`] events one at a time, alternating between the instances,
    /// and times each one's arrival at every subscriber. Panics if any subscriber misses one,
    /// gets one twice, or gets them out of order.
    async fn time_deliveries(&mut self) -> Latency {
        let instances = self.cluster.addresses.len();
        let subscribers = LATENCY_SUBSCRIBERS / instances * instances;
        let (mut all, mut same, mut other) = (Vec::new(), Vec::new(), Vec::new());
        for event in 0..LATENCY_EVENTS {
            let on = event % instances;
            let sent = Instant::now();
            let seq = self.publishers[on].publish(CROWD_TOPIC, PAYLOAD, 1).await[0];
            // Arrivals may come before the publish answer (the in-memory hub delivers first);
            // the channel keeps them.
            for reached in 0..subscribers {
                let arrival = match tokio::time::timeout(DELIVERY_LIMIT, self.arrivals.recv()).await {
                    Ok(Some(arrival)) => arrival,
                    _ => panic!("event {seq} reached {reached} of {subscribers} subscribers within {DELIVERY_LIMIT:?}: events were lost"),
                };
                assert_eq!(
                    arrival.seq, seq,
                    "a subscriber on instance {} got event {} while every subscriber was still owed event {seq}: \
                     an event was lost, doubled or reordered",
                    arrival.instance, arrival.seq,
                );
                let took = arrival.at - sent;
                all.push(took);
                if arrival.instance == on {
                    same.push(took)
                } else {
                    other.push(took)
                }
            }
        }
        // A doubled last event would arrive after the count was complete.
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(extra) = self.arrivals.try_recv() {
            panic!("event {} arrived once more than there are subscribers: doubled", extra.seq);
        }
        let split = instances > 1;
        Latency {
            all: percentiles(all),
            same_instance: split.then(|| percentiles(same)),
            other_instance: split.then(|| percentiles(other)),
        }
    }
}

/// Reports every event `stream` receives, until it ends.
async fn report_arrivals(stream: &mut RawStream, instance: usize, report: &mpsc::UnboundedSender<Arrival>) {
    let mut seqs = Vec::new();
    while stream.read_ids(&mut seqs).await {
        let at = Instant::now();
        for seq in seqs.drain(..) {
            if report.send(Arrival { instance, seq, at }).is_err() {
                return;
            }
        }
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
        memory_rounds.push(flood(&memory, &format!("flood-{round}"), 1).await);
        redis_rounds.push(flood(&redis, &format!("flood-{round}"), 1).await);
        batched_rounds.push(flood(&redis, &format!("batched-{round}"), BATCH).await);
    }
    (median_throughput(&memory_rounds), median_throughput(&redis_rounds), median_throughput(&batched_rounds))
}

/// Publishes [`FLOOD_EVENTS`] events to `topic` as fast as `/publish` takes them, `batch` events
/// a request and [`IN_FLIGHT`] requests at a time spread over the instances, and checks that each
/// subscriber got exactly the accepted events, in the order of their ids. A topic per round, so
/// that no earlier round's events are in the way.
async fn flood(cluster: &Cluster, topic: &str, batch: usize) -> Throughput {
    let topic = topic.to_owned();
    let mut subscribers = Vec::new();
    for (instance, address) in cluster.addresses.iter().enumerate() {
        for _ in 0..FLOOD_SUBSCRIBERS / cluster.addresses.len() {
            let stream = RawStream::open(address, &topic).await;
            subscribers.push((instance, Subscriber::spawn(stream, FLOOD_EVENTS)));
        }
    }
    let mut publishers = Vec::new();
    for slot in 0..IN_FLIGHT {
        let mut publisher = Publisher::connect(&cluster.addresses[slot % cluster.addresses.len()]).await;
        // Each connection's first request is not part of the measure.
        publisher.publish("warm-up", PAYLOAD, 1).await;
        publishers.push(publisher);
    }
    if let Some(redis) = &cluster.redis {
        redis.command(&["CONFIG", "RESETSTAT"]).await;
    }

    let cpu_before = cluster.cpu_seconds().await;
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let senders: Vec<JoinHandle<Vec<u64>>> = publishers
        .into_iter()
        .map(|mut publisher| {
            let (next, topic) = (Arc::clone(&next), topic.clone());
            tokio::spawn(async move {
                let mut seqs = Vec::with_capacity(FLOOD_EVENTS / IN_FLIGHT + 1);
                while next.fetch_add(batch, Ordering::Relaxed) < FLOOD_EVENTS {
                    seqs.extend(publisher.publish(&topic, PAYLOAD, batch).await);
                }
                seqs
            })
        })
        .collect();
    let mut accepted = Vec::with_capacity(FLOOD_EVENTS);
    for sender in senders {
        accepted.extend(sender.await.expect("a publisher panicked"));
    }
    let accepted_in = started.elapsed();

    let mut last_arrival = started;
    let mut received = Vec::new();
    for (index, (instance, subscriber)) in subscribers.into_iter().enumerate() {
        let (seqs, last) = subscriber.finish(&format!("subscriber {index} (instance {instance})")).await;
        last_arrival = last_arrival.max(last);
        received.push((index, instance, seqs));
    }
    let cpu_after = cluster.cpu_seconds().await;
    let script_micros = match &cluster.redis {
        Some(redis) => publish_script_micros(redis).await,
        None => None,
    };

    // The order every subscriber must see: each accepted event once, by id.
    accepted.sort_unstable();
    if let Some(pair) = accepted.windows(2).find(|pair| pair[0] == pair[1]) {
        panic!("two publishes were answered with the same id {}", pair[0]);
    }
    let lagged = cluster.lagged().await;
    assert_eq!(lagged, 0, "the instances dropped {lagged} subscribers for a full queue (HERALD_QUEUE_LEN)");
    for (index, instance, seqs) in &received {
        check_received(&format!("subscriber {index} (instance {instance})"), seqs, &accepted);
    }

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

/// Panics with the first difference if `received` is not exactly `expected`.
fn check_received(who: &str, received: &[u64], expected: &[u64]) {
    if let Some(at) = received.iter().zip(expected).position(|(got, wanted)| got != wanted) {
        panic!(
            "{who}: its event #{at} was {} where {} was due: events were lost, doubled or reordered",
            received[at], expected[at]
        );
    }
    assert_eq!(
        received.len(),
        expected.len(),
        "{who}: received {} of {} events",
        received.len(),
        expected.len()
    );
}

/// A throughput subscriber: collects the ids its stream brings until it has as many as expected.
struct Subscriber {
    task: JoinHandle<(Vec<u64>, Instant)>,
    /// How many it has so far, for the message when some never come.
    progress: Arc<AtomicUsize>,
}

impl Subscriber {
    fn spawn(mut stream: RawStream, expected: usize) -> Self {
        let progress = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&progress);
        let task = tokio::spawn(async move {
            let mut seqs = Vec::with_capacity(expected);
            let mut last = Instant::now();
            while seqs.len() < expected && stream.read_ids(&mut seqs).await {
                last = Instant::now();
                counter.store(seqs.len(), Ordering::Relaxed);
            }
            // Anything after the last expected event would be a doubled one: the check sees it.
            let _ = tokio::time::timeout(Duration::from_millis(100), stream.read_ids(&mut seqs)).await;
            (seqs, last)
        });
        Self { task, progress }
    }

    /// Its ids and when the last came; panics if they do not all come within [`DELIVERY_LIMIT`].
    async fn finish(self, who: &str) -> (Vec<u64>, Instant) {
        match tokio::time::timeout(DELIVERY_LIMIT, self.task).await {
            Ok(done) => done.expect("a subscriber panicked"),
            Err(_) => panic!(
                "{who} received {} of {FLOOD_EVENTS} events within {DELIVERY_LIMIT:?} of the last publish: events were lost",
                self.progress.load(Ordering::Relaxed)
            ),
        }
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

// ---------------------------------------------------------------------------------------------
// The clients, by hand on raw sockets: the load generator and a thousand subscribers share the
// two cores with the servers, so they should take as little of them as they can.

/// A publisher on one keep-alive connection, one `POST /publish` at a time.
struct Publisher {
    socket: TcpStream,
    buffer: Vec<u8>,
}

impl Publisher {
    async fn connect(address: &str) -> Self {
        let socket = TcpStream::connect(address).await.expect("the server accepts");
        // Each request is one write: nothing to gain from Nagle's algorithm, only delays.
        socket.set_nodelay(true).unwrap();
        Self { socket, buffer: Vec::with_capacity(1024) }
    }

    /// Publishes `data` on `topic` `count` times in one request (a batch when `count` > 1) and
    /// returns the sequence numbers of the events' ids; panics unless the answer is `202`.
    async fn publish(&mut self, topic: &str, data: &str, count: usize) -> Vec<u64> {
        let event = format!(r#"{{"topic":"{topic}","data":"{data}"}}"#);
        let body = if count == 1 { event } else { format!("[{}]", vec![event; count].join(",")) };
        let request = format!(
            "POST /publish HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.socket.write_all(request.as_bytes()).await.expect("the server takes the request");
        let (status, answer) = self.read_answer().await;
        assert_eq!(status, 202, "publish answered {status}: {answer}");
        // {"duplicate":false,"id":"<epoch>-<seq>","subscribers":…}, or {"events":[that, …]}
        let seqs: Vec<u64> = answer
            .split(r#""id":""#)
            .skip(1)
            .map(|rest| rest.split('"').next().and_then(seq_of_id))
            .collect::<Option<_>>()
            .unwrap_or_else(|| panic!("an unreadable event id in the answer {answer}"));
        assert_eq!(seqs.len(), count, "{count} events published, answered: {answer}");
        seqs
    }

    /// Reads one response: its status and its body (always sized by `content-length` here).
    async fn read_answer(&mut self) -> (u16, String) {
        self.buffer.clear();
        let head_end = loop {
            if let Some(at) = find(&self.buffer, b"\r\n\r\n") {
                break at + 4;
            }
            self.read_more().await;
        };
        let head = String::from_utf8_lossy(&self.buffer[..head_end]).into_owned();
        let status = head.get(9..12).and_then(|code| code.parse().ok()).expect("a status line");
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse().ok())?
            })
            .unwrap_or_else(|| panic!("an answer without content-length: {head}"));
        while self.buffer.len() < head_end + length {
            self.read_more().await;
        }
        (status, String::from_utf8_lossy(&self.buffer[head_end..head_end + length]).into_owned())
    }

    async fn read_more(&mut self) {
        let mut chunk = [0; 4096];
        let read = self.socket.read(&mut chunk).await.expect("the server answers");
        assert!(read > 0, "the server closed a publish connection");
        self.buffer.extend_from_slice(&chunk[..read]);
    }
}

/// One subscriber's `GET /events` on a raw socket, its body's framing undone and its `id:` lines
/// picked out: the sequence numbers are all that the checks need.
struct RawStream {
    socket: TcpStream,
    body: BodyFraming,
    /// Decoded body not yet scanned: the start of a line whose end has not come yet.
    text: Vec<u8>,
}

impl RawStream {
    /// Opens the stream and returns once its opening `retry:` line has arrived, so that the
    /// subscription is in place before anything is published.
    async fn open(address: &str, topic: &str) -> Self {
        let mut socket = TcpStream::connect(address).await.expect("the server accepts");
        let request = format!("GET /events?topic={topic} HTTP/1.1\r\nHost: herald\r\n\r\n");
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        let mut buffer = [0; 4096];
        let head_end = loop {
            if let Some(at) = find(&head, b"\r\n\r\n") {
                break at + 4;
            }
            let read = socket.read(&mut buffer).await.unwrap();
            assert!(read > 0, "the server hung up: {}", String::from_utf8_lossy(&head));
            head.extend_from_slice(&buffer[..read]);
        };
        let head_text = String::from_utf8_lossy(&head[..head_end]).to_ascii_lowercase();
        assert!(head_text.starts_with("http/1.1 200"), "GET /events answered {head_text}");
        // hyper sends a stream chunked; a server that writes it to the socket itself may instead
        // send it as is and mark its end by closing the connection.
        let body = match head_text.contains("transfer-encoding: chunked") {
            true => BodyFraming::Chunked(Chunked::default()),
            false if head_text.contains("connection: close") && !head_text.contains("content-length") => {
                BodyFraming::UntilClose
            }
            false => panic!("a stream neither chunked nor ended by closing: {head_text}"),
        };
        let mut stream = Self { socket, body, text: Vec::new() };
        let mut opened = stream.take(&head[head_end..], &mut Vec::new());
        while !opened {
            let read = stream.socket.read(&mut buffer).await.unwrap();
            assert!(read > 0, "the server hung up before the stream opened");
            opened = stream.take(&buffer[..read], &mut Vec::new());
        }
        stream
    }

    /// Reads what has arrived and appends the sequence numbers of the events in it to `seqs`;
    /// false once the stream has ended.
    async fn read_ids(&mut self, seqs: &mut Vec<u64>) -> bool {
        let mut buffer = [0; 16 * 1024];
        match self.socket.read(&mut buffer).await {
            Ok(0) | Err(_) => false,
            Ok(read) => {
                self.take(&buffer[..read], seqs);
                !matches!(&self.body, BodyFraming::Chunked(chunks) if chunks.ended)
            }
        }
    }

    /// Decodes `bytes` and scans every complete line: `id:` lines go to `seqs`; true if the
    /// `retry:` line that opens a stream was among them.
    fn take(&mut self, bytes: &[u8], seqs: &mut Vec<u64>) -> bool {
        match &mut self.body {
            BodyFraming::Chunked(chunks) => chunks.decode(bytes, &mut self.text),
            BodyFraming::UntilClose => self.text.extend_from_slice(bytes),
        }
        let mut opened = false;
        let mut start = 0;
        while let Some(end) = self.text[start..].iter().position(|&byte| byte == b'\n') {
            let line = &self.text[start..start + end];
            if let Some(id) = line.strip_prefix(b"id: ") {
                let id = std::str::from_utf8(id).ok().and_then(seq_of_id);
                seqs.push(
                    id.unwrap_or_else(|| panic!("a malformed id line {:?}", String::from_utf8_lossy(line))),
                );
            } else if line.starts_with(b"retry: ") {
                opened = true;
            }
            start += end + 1;
        }
        self.text.drain(..start);
        opened
    }
}

/// How a stream's body is framed on the wire.
enum BodyFraming {
    Chunked(Chunked),
    /// The bytes as they are, until the server closes the connection.
    UntilClose,
}

/// Undoes HTTP/1.1 chunked transfer coding as the bytes come: a size line or the end of a chunk
/// may be split between two reads like anything else.
#[derive(Default)]
struct Chunked {
    /// Bytes received but not decoded yet: an incomplete size line.
    pending: Vec<u8>,
    /// What is left of the current chunk's data.
    left: usize,
    /// The last (empty) chunk has come.
    ended: bool,
}

impl Chunked {
    fn decode(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        self.pending.extend_from_slice(bytes);
        let mut at = 0;
        while at < self.pending.len() && !self.ended {
            if self.left > 0 {
                let take = self.left.min(self.pending.len() - at);
                out.extend_from_slice(&self.pending[at..at + take]);
                (self.left, at) = (self.left - take, at + take);
                continue;
            }
            let Some(end) = find(&self.pending[at..], b"\r\n") else { break };
            let line = &self.pending[at..at + end];
            at += end + 2;
            // The line break that closes a chunk's data.
            if line.is_empty() {
                continue;
            }
            let size = std::str::from_utf8(line)
                .ok()
                .and_then(|line| usize::from_str_radix(line.split(';').next()?.trim(), 16).ok())
                .unwrap_or_else(|| panic!("a malformed chunk size line {:?}", String::from_utf8_lossy(line)));
            self.ended = size == 0;
            self.left = size;
        }
        self.pending.drain(..at);
    }
}

/// The sequence number of an event id `<epoch>-<seq>`.
fn seq_of_id(id: &str) -> Option<u64> {
    id.rsplit_once('-')?.1.parse().ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}
