//! Issue #11's side-by-side comparison: Herald and its baselines (Nchan, the idiomatic axum
//! server, the seed's Flask design and a raw-write floor), started one after another in one
//! invocation and put under the same load ([`crate::sse_load`]). `benches/compare.rs` runs the
//! full [`Plan`] and reports it; `tests/load/compare.rs` runs the quick one for correctness.
//!
//! Everything runs on loopback, on one current-thread runtime: the generator takes at most one
//! of the machine's cores, whatever the server does with the others.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use crate::{
    median, raise_open_file_limit,
    sse_load::{self, Load, Measured, Pace, Publish, PublishBody, Subscribe, Target},
    ProcessGroup, ProcessTree, RunningBinary, PATIENCE,
};

/// The publish token of the Herald the comparison starts.
const TOKEN: &str = "the comparison's publish token";

/// The compared servers, in the order each crowd meets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum System {
    RawFloor,
    Nchan,
    Herald,
    AxumSse,
    FlaskGevent,
}

impl System {
    pub const ALL: [System; 5] =
        [System::RawFloor, System::Nchan, System::Herald, System::AxumSse, System::FlaskGevent];

    pub fn label(self) -> &'static str {
        match self {
            System::RawFloor => "raw-write floor",
            System::Nchan => "Nchan",
            System::Herald => "Herald",
            System::AxumSse => "axum Sse",
            System::FlaskGevent => "Flask + gevent",
        }
    }
}

/// The binaries of this package the comparison runs: a bench's or a test's `env!("CARGO_BIN_EXE_…")`.
pub struct Binaries {
    pub herald: &'static str,
    pub axum_sse: &'static str,
    pub raw_floor: &'static str,
}

/// What to run, in each pass: a latency run per crowd size and system, then a burst run per system.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    /// How many times every run is repeated, the systems taking turns, so that a spell of other
    /// work on the machine skews one pass and not the medians.
    pub passes: usize,
    pub crowds: Vec<usize>,
    /// Events a latency run publishes one at a time: at least this many…
    pub latency_events: usize,
    /// …and enough for this many deliveries, so that the CPU time (counted in 10 ms ticks) is
    /// long enough to measure.
    pub latency_deliveries: usize,
    pub burst_subscribers: usize,
    /// 0: no burst runs.
    pub burst_rounds: usize,
    /// Below every server's per-subscriber backlog (Herald's queue holds 256, the axum server's
    /// channel 1,024), so that a subscriber that falls behind by a whole round loses nothing.
    pub burst_events: usize,
    #[serde(skip)]
    pub patience: Duration,
}

impl Plan {
    /// The benchmark: 1,000 to as many subscribers as the open-file limit allows.
    pub fn full() -> Self {
        let largest = largest_crowd(raise_open_file_limit());
        let mut crowds = vec![1_000, 5_000, 10_000];
        if largest > 10_000 {
            crowds.push(largest);
        }
        Self {
            passes: 3,
            crowds,
            latency_events: 20,
            latency_deliveries: 100_000,
            burst_subscribers: 1_000,
            burst_rounds: 5,
            burst_events: 200,
            patience: Duration::from_secs(60),
        }
    }

    /// The quick mode of `make test`: every system, every path, a few seconds each.
    pub fn quick() -> Self {
        Self {
            passes: 1,
            crowds: vec![200],
            latency_events: 3,
            latency_deliveries: 0,
            burst_subscribers: 200,
            burst_rounds: 1,
            burst_events: 20,
            patience: Duration::from_secs(20),
        }
    }

    fn latency_load(&self, subscribers: usize) -> Load {
        Load {
            subscribers,
            rounds: 1,
            events_per_round: self.latency_events.max(self.latency_deliveries / subscribers),
            pace: Pace::OneAtATime,
            patience: self.patience,
        }
    }

    fn burst_load(&self) -> Load {
        Load {
            subscribers: self.burst_subscribers,
            rounds: self.burst_rounds,
            events_per_round: self.burst_events,
            pace: Pace::Burst,
            patience: self.patience,
        }
    }
}

/// The most subscribers this machine can hold: the generator needs a descriptor per subscriber
/// and a loopback port per connection; a thousand of each stay spare.
fn largest_crowd(open_files: u64) -> usize {
    let ports = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| {
            let mut bounds = range.split_whitespace().map(|bound| bound.parse::<u64>().ok());
            Some(bounds.next()??.abs_diff(bounds.next()??) + 1)
        })
        .unwrap_or(28_232);
    let room = open_files.min(ports).saturating_sub(1_000);
    (room / 1_000 * 1_000) as usize
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Comparison {
    pub plan: Plan,
    pub open_file_limit: u64,
    pub latency: Vec<LatencyRun>,
    pub burst: Vec<BurstRun>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LatencyRun {
    pub system: System,
    pub subscribers: usize,
    pub events: usize,
    /// The medians over the passes, if every pass succeeded.
    pub figures: Option<LatencyFigures>,
    /// Why a pass failed: subscribers that never connected, or lost, doubled or reordered events.
    pub failure: Option<String>,
    /// Each successful pass's figures.
    pub passes: Vec<LatencyFigures>,
}

/// Publish → arrival times are medians over the events of each event's percentile over its
/// subscribers.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct LatencyFigures {
    pub opened_in_s: f64,
    /// PSS added per subscriber once each has had one event.
    pub bytes_per_subscriber: f64,
    /// The same before any event, every stream open.
    pub bytes_per_connected_subscriber: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub cpu_us_per_delivery: f64,
    /// The load generator's own CPU time per delivery: what the server shares the cores with.
    pub generator_cpu_us_per_delivery: f64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct BurstRun {
    pub system: System,
    pub subscribers: usize,
    pub rounds: usize,
    pub events_per_round: usize,
    /// The medians over the passes, if every pass succeeded.
    pub figures: Option<BurstFigures>,
    pub failure: Option<String>,
    /// Each successful pass's figures.
    pub passes: Vec<BurstFigures>,
}

/// Medians over a pass's rounds.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct BurstFigures {
    pub deliveries_per_s: f64,
    pub cpu_us_per_delivery: f64,
    pub generator_cpu_us_per_delivery: f64,
}

impl Comparison {
    /// Every failed run, as `system × subscribers: why`.
    pub fn failures(&self) -> Vec<String> {
        let latency = self.latency.iter().filter_map(|run| {
            let failure = run.failure.as_ref()?;
            Some(format!("{} x {}: {failure}", run.system.label(), run.subscribers))
        });
        let burst = self.burst.iter().filter_map(|run| {
            let failure = run.failure.as_ref()?;
            Some(format!("{} burst x {}: {failure}", run.system.label(), run.subscribers))
        });
        latency.chain(burst).collect()
    }
}

/// Runs `plan` for `systems`, one server at a time, reporting each run on stderr as it ends. A
/// failed run is recorded, and the others still run; a server that does not start panics.
pub fn run(plan: &Plan, systems: &[System], binaries: &Binaries) -> Comparison {
    let open_file_limit = raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let mut latency_outcomes: Vec<Vec<Result<LatencyFigures, String>>> =
            (0..plan.crowds.len() * systems.len()).map(|_| Vec::new()).collect();
        let mut burst_outcomes: Vec<Vec<Result<BurstFigures, String>>> =
            systems.iter().map(|_| Vec::new()).collect();
        for pass in 1..=plan.passes {
            for (crowd, &subscribers) in plan.crowds.iter().enumerate() {
                for (index, &system) in systems.iter().enumerate() {
                    let load = plan.latency_load(subscribers);
                    let outcome = measure(system, binaries, load, open_file_limit).await;
                    let outcome = outcome.map(|measured| latency_figures(&measured));
                    eprintln!(
                        "compare: pass {pass}/{}: {} x {subscribers}: {}",
                        plan.passes,
                        system.label(),
                        latency_summary(&outcome)
                    );
                    latency_outcomes[crowd * systems.len() + index].push(outcome);
                }
            }
            for (index, &system) in systems.iter().enumerate().filter(|_| plan.burst_rounds > 0) {
                let load = plan.burst_load();
                let outcome = measure(system, binaries, load, open_file_limit).await;
                let outcome = outcome.map(|measured| burst_figures(&measured));
                eprintln!(
                    "compare: pass {pass}/{}: {} burst x {}: {}",
                    plan.passes,
                    system.label(),
                    load.subscribers,
                    burst_summary(&outcome)
                );
                burst_outcomes[index].push(outcome);
            }
        }
        let mut latency = Vec::new();
        for (crowd, &subscribers) in plan.crowds.iter().enumerate() {
            for (index, &system) in systems.iter().enumerate() {
                let outcomes = std::mem::take(&mut latency_outcomes[crowd * systems.len() + index]);
                let (passes, failure) = split_outcomes(outcomes);
                latency.push(LatencyRun {
                    system,
                    subscribers,
                    events: plan.latency_load(subscribers).events_per_round,
                    figures: failure.is_none().then(|| LatencyFigures::median_of(&passes)),
                    failure,
                    passes,
                });
            }
        }
        let burst = systems
            .iter()
            .zip(burst_outcomes)
            .filter(|_| plan.burst_rounds > 0)
            .map(|(&system, outcomes)| {
                let (passes, failure) = split_outcomes(outcomes);
                BurstRun {
                    system,
                    subscribers: plan.burst_subscribers,
                    rounds: plan.burst_rounds,
                    events_per_round: plan.burst_events,
                    figures: failure.is_none().then(|| BurstFigures::median_of(&passes)),
                    failure,
                    passes,
                }
            })
            .collect();
        Comparison { plan: plan.clone(), open_file_limit, latency, burst }
    })
}

/// The successful passes' figures, and the first failure if any pass failed.
fn split_outcomes<T>(outcomes: Vec<Result<T, String>>) -> (Vec<T>, Option<String>) {
    let mut passes = Vec::new();
    let mut failure = None;
    for outcome in outcomes {
        match outcome {
            Ok(figures) => passes.push(figures),
            Err(problem) => {
                failure.get_or_insert(problem);
            }
        }
    }
    (passes, failure)
}

fn burst_summary(outcome: &Result<BurstFigures, String>) -> String {
    match outcome {
        Ok(figures) => format!(
            "{:.0} deliveries/s, {:.2} us CPU per delivery (generator {:.2})",
            figures.deliveries_per_s, figures.cpu_us_per_delivery, figures.generator_cpu_us_per_delivery
        ),
        Err(failure) => format!("FAILED: {failure}"),
    }
}

fn latency_summary(outcome: &Result<LatencyFigures, String>) -> String {
    match outcome {
        Ok(figures) => format!(
            "{:.2} KiB each ({:.2} before any event), p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, \
             {:.2} us CPU per delivery (generator {:.2}), all connected in {:.2} s",
            figures.bytes_per_subscriber / 1024.0,
            figures.bytes_per_connected_subscriber / 1024.0,
            figures.p50_ms,
            figures.p99_ms,
            figures.max_ms,
            figures.cpu_us_per_delivery,
            figures.generator_cpu_us_per_delivery,
            figures.opened_in_s,
        ),
        Err(failure) => format!("FAILED: {failure}"),
    }
}

/// Starts `system`, puts `load` on it, and stops it.
async fn measure(
    system: System,
    binaries: &Binaries,
    load: Load,
    open_files: u64,
) -> Result<Measured, String> {
    let server = Server::start(system, binaries, open_files).await;
    let measured = sse_load::run(&server.target, server.tree, load).await;
    server.stop().await;
    measured
}

fn latency_figures(measured: &Measured) -> LatencyFigures {
    let median_ms = |pick: fn(&sse_load::Percentiles) -> Duration| {
        median(measured.per_event.iter().map(|event| pick(event).as_secs_f64() * 1e3).collect())
    };
    let deliveries: usize = measured.rounds.iter().map(|round| round.deliveries).sum();
    let per_delivery = |pick: fn(&sse_load::Round) -> f64| {
        measured.rounds.iter().map(pick).sum::<f64>() / deliveries as f64 * 1e6
    };
    LatencyFigures {
        opened_in_s: measured.opened_in.as_secs_f64(),
        bytes_per_subscriber: measured.bytes_per_subscriber,
        bytes_per_connected_subscriber: measured.bytes_per_connected_subscriber,
        p50_ms: median_ms(|event| event.p50),
        p99_ms: median_ms(|event| event.p99),
        max_ms: median_ms(|event| event.max),
        cpu_us_per_delivery: per_delivery(|round| round.cpu_seconds),
        generator_cpu_us_per_delivery: per_delivery(|round| round.generator_cpu_seconds),
    }
}

impl LatencyFigures {
    /// Each figure's median over `passes`.
    fn median_of(passes: &[LatencyFigures]) -> Self {
        let of = |figure: fn(&LatencyFigures) -> f64| median(passes.iter().map(figure).collect());
        Self {
            opened_in_s: of(|pass| pass.opened_in_s),
            bytes_per_subscriber: of(|pass| pass.bytes_per_subscriber),
            bytes_per_connected_subscriber: of(|pass| pass.bytes_per_connected_subscriber),
            p50_ms: of(|pass| pass.p50_ms),
            p99_ms: of(|pass| pass.p99_ms),
            max_ms: of(|pass| pass.max_ms),
            cpu_us_per_delivery: of(|pass| pass.cpu_us_per_delivery),
            generator_cpu_us_per_delivery: of(|pass| pass.generator_cpu_us_per_delivery),
        }
    }
}

impl BurstFigures {
    /// Each figure's median over `passes`.
    fn median_of(passes: &[BurstFigures]) -> Self {
        let of = |figure: fn(&BurstFigures) -> f64| median(passes.iter().map(figure).collect());
        Self {
            deliveries_per_s: of(|pass| pass.deliveries_per_s),
            cpu_us_per_delivery: of(|pass| pass.cpu_us_per_delivery),
            generator_cpu_us_per_delivery: of(|pass| pass.generator_cpu_us_per_delivery),
        }
    }
}

fn burst_figures(measured: &Measured) -> BurstFigures {
    let median_over_rounds =
        |per_round: fn(&sse_load::Round) -> f64| median(measured.rounds.iter().map(per_round).collect());
    BurstFigures {
        deliveries_per_s: median_over_rounds(|round| round.deliveries as f64 / round.took.as_secs_f64()),
        cpu_us_per_delivery: median_over_rounds(|round| round.cpu_seconds / round.deliveries as f64 * 1e6),
        generator_cpu_us_per_delivery: median_over_rounds(|round| {
            round.generator_cpu_seconds / round.deliveries as f64 * 1e6
        }),
    }
}

/// A started server: how the generator reaches it, and its processes.
struct Server {
    target: Target,
    tree: ProcessTree,
    process: Process,
}

enum Process {
    Binary(RunningBinary),
    Group(ProcessGroup),
}

/// The one topic (or channel) of every run.
const TOPIC: &str = "bench";

impl Server {
    async fn start(system: System, binaries: &Binaries, open_files: u64) -> Self {
        let http = |process: Process, address: SocketAddr, events_path: &str, body: PublishBody| {
            let bearer = matches!(system, System::Herald).then(|| TOKEN.to_owned());
            let tree = ProcessTree::new(match &process {
                Process::Binary(binary) => binary.process.id().expect("a running server"),
                Process::Group(group) => group.pid(),
            });
            Server {
                target: Target {
                    address,
                    subscribe: Subscribe::Http { path: events_path.to_owned() },
                    publish: Publish::Http { path: "/publish".to_owned(), bearer, body },
                },
                tree,
                process,
            }
        };
        match system {
            System::RawFloor => {
                let floor = RunningBinary::start(binaries.raw_floor, &[]).await;
                let address = address_of(&floor);
                let tree = ProcessTree::new(floor.process.id().expect("a running floor"));
                let target = Target { address, subscribe: Subscribe::Raw, publish: Publish::ControlLine };
                Server { target, tree, process: Process::Binary(floor) }
            }
            System::Herald => {
                let herald = RunningBinary::start(
                    binaries.herald,
                    &[
                        ("LEPTOS_SITE_ADDR", "127.0.0.1:0"),
                        ("HERALD_PUBLISH_TOKEN", TOKEN),
                        // The limits are guards for production; here they would be the ceiling.
                        ("HERALD_MAX_SUBSCRIBERS", "1000000"),
                        // Every subscriber comes from 127.0.0.1.
                        ("HERALD_MAX_STREAMS_PER_CLIENT", "1000000"),
                        ("HERALD_MAX_PUBLISH_RATE", "1000000"),
                        // Herald's own lines (streams opened and closed), as in production.
                        ("RUST_LOG", "herald=info"),
                    ],
                )
                .await;
                let address = address_of(&herald);
                http(
                    Process::Binary(herald),
                    address,
                    &format!("/events?topic={TOPIC}"),
                    PublishBody::HeraldJson { topic: TOPIC, keyed: false },
                )
            }
            System::AxumSse => {
                let axum = RunningBinary::start(binaries.axum_sse, &[]).await;
                let address = address_of(&axum);
                http(Process::Binary(axum), address, "/events", PublishBody::Raw)
            }
            System::Nchan => {
                let (group, address) = start_nchan(open_files, None).await;
                http(Process::Group(group), address, "/events", PublishBody::Raw)
            }
            System::FlaskGevent => {
                let gunicorn = repository().join("target/peers/flask-venv/bin/gunicorn");
                assert!(
                    gunicorn.exists(),
                    "{} is missing: `scripts/setup.sh --test` (or `make setup-test`) installs it",
                    gunicorn.display()
                );
                let (address, scratch) = scratch_for("flask");
                let mut command = Command::new(gunicorn);
                command.current_dir(peers_dir()).args([
                    "--bind",
                    &address.to_string(),
                    "--worker-class",
                    "gevent",
                    // One process: a publish reaches the queues of that process's subscribers only.
                    "--workers",
                    "1",
                    "--worker-connections",
                    &open_files.to_string(),
                    "--keep-alive",
                    "10",
                    "--no-control-socket",
                    "--log-level",
                    "warning",
                    "flask_app:app",
                ]);
                let group = accepting(ProcessGroup::start(command, scratch), address).await;
                http(Process::Group(group), address, "/events", PublishBody::Raw)
            }
        }
    }

    /// Kills the server and waits until it is gone, so that the next one has the machine.
    async fn stop(self) {
        match self.process {
            Process::Binary(mut binary) => {
                let _ = binary.process.kill().await;
            }
            Process::Group(group) => drop(group),
        }
    }
}

fn address_of(binary: &RunningBinary) -> SocketAddr {
    binary.url.trim_start_matches("http://").parse().expect("a loopback address")
}

/// The workspace's root, above this crate's directory.
fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("loadgen sits in the workspace")
}

fn peers_dir() -> PathBuf {
    repository().join("benches/peers")
}

/// Nchan (`benches/peers/nchan.conf`) on a free loopback port, its workers allowed `open_files`
/// each; its channels in the Redis at `redis_url` if given (`nchan_use_redis`), so that several
/// such servers share them, else in nginx's shared memory. `GET /events` subscribes, `POST
/// /publish` publishes its body.
pub(crate) async fn start_nchan(open_files: u64, redis_url: Option<&str>) -> (ProcessGroup, SocketAddr) {
    let (address, scratch) = scratch_for("nchan");
    let redis = match redis_url {
        Some(url) => format!("nchan_redis_url \"{url}\";\n    nchan_use_redis on;"),
        None => String::new(),
    };
    let config = std::fs::read_to_string(peers_dir().join("nchan.conf"))
        .expect("benches/peers/nchan.conf")
        .replace("{{dir}}", &scratch.display().to_string())
        .replace("{{port}}", &address.port().to_string())
        .replace("{{max_files}}", &open_files.to_string())
        .replace("{{redis}}", &redis);
    let config_path = scratch.join("nginx.conf");
    std::fs::write(&config_path, config).expect("the scratch directory is writable");
    let mut nginx = Command::new(nginx_binary());
    nginx.arg("-p").arg(&scratch).arg("-c").arg(&config_path).args(["-e", "stderr"]);
    let group = ProcessGroup::start(nginx, scratch);
    (accepting(group, address).await, address)
}

/// Debian installs nginx in /usr/sbin, which is not on every user's PATH.
fn nginx_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.exists());
    let nginx = on_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx"));
    assert!(nginx.exists(), "nginx is missing: `scripts/setup.sh --test` (or `make setup-test`) installs it");
    nginx
}

/// A free loopback address for a server that cannot bind port 0 and say which it got, and an
/// empty scratch directory for its files, which any user may enter (nginx's workers run as
/// `nobody` when the benchmark runs as root).
fn scratch_for(name: &str) -> (SocketAddr, PathBuf) {
    use std::os::unix::fs::PermissionsExt;

    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port");
    let scratch =
        std::env::temp_dir().join(format!("herald-compare-{name}-{}-{}", std::process::id(), address.port()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).expect("a scratch directory");
    std::fs::set_permissions(&scratch, std::fs::Permissions::from_mode(0o755)).expect("a scratch directory");
    (address, scratch)
}

/// Waits until `group`'s server accepts connections at `address`; panics with its output if it
/// exits or does not come up within [`PATIENCE`] (gunicorn takes a second to import gevent).
async fn accepting(mut group: ProcessGroup, address: SocketAddr) -> ProcessGroup {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if !group.running() {
            break;
        }
        if tokio::net::TcpStream::connect(address).await.is_ok() {
            return group;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "the server in {} did not come up at {address}:\n{}",
        group.scratch().display(),
        group.output_tail()
    );
}
