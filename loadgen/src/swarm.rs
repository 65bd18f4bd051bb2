//! Subscribers by the hundred thousand: worker processes that each hold a share of the streams
//! (one process may have 20,000 open files here), each from a loopback source address of its own
//! (127.0.0.2, 127.0.0.3, …, so that no address runs out of ephemeral ports), spread over every
//! target instance; and the [`Swarm`] that starts them and hears from them.
//!
//! A worker speaks one line at a time on stdout: `open` once every one of its streams is open,
//! `reached N` once event N has reached all of them, then `arrivals N T T …` per event (the
//! arrival times on the machine's monotonic clock, in nanoseconds, which every process reads
//! alike), or `fail WHY` at the first problem. The events are [`sse_load::payload`]s, published
//! by whoever drives the swarm.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncBufReadExt, BufReader, Lines},
    process::{Child, ChildStdout, Command},
};

use crate::sse_load::{Crowd, Order, Subscribe};

/// The most streams one worker holds: below the 20,000 open files a process may have here, with
/// room for the runtime's own.
pub const PER_WORKER: usize = 16_000;

/// What a swarm holds, and for how long it waits.
#[derive(Clone, Debug)]
pub struct SwarmPlan {
    /// The instances, taken in turn.
    pub targets: Vec<SocketAddr>,
    /// The stream each subscriber asks for, e.g. `/events?topic=scale`.
    pub path: String,
    pub subscribers: usize,
    /// The processes that share them out, each at most [`PER_WORKER`].
    pub workers: usize,
    /// Events each subscriber must receive, from event 0.
    pub events: usize,
    /// The longest wait for the streams to open, or for one event to reach them all.
    pub patience: Duration,
}

/// The nanoseconds on the machine's monotonic clock (`CLOCK_MONOTONIC`), the same in every
/// process, which is what `Instant` reads on Linux.
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the struct it is given.
    let read = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    assert_eq!(read, 0, "clock_gettime(CLOCK_MONOTONIC)");
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// The running workers of one swarm; dropped, they are killed.
pub struct Swarm {
    workers: Vec<Worker>,
}

struct Worker {
    source: IpAddr,
    _process: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Swarm {
    /// Starts `plan`'s workers of `program` (a binary that runs [`worker_main`]), and returns
    /// once every stream of every one is open.
    pub async fn open(program: &Path, plan: &SwarmPlan) -> Result<Self, String> {
        let count = plan.workers;
        if count == 0 || plan.subscribers.div_ceil(count) > PER_WORKER {
            return Err(format!(
                "{} subscribers need 1 to {PER_WORKER} per worker, not {count} workers",
                plan.subscribers
            ));
        }
        let targets: Vec<String> = plan.targets.iter().map(SocketAddr::to_string).collect();
        let mut workers = Vec::with_capacity(count);
        for index in 0..count {
            let share = share(plan.subscribers, count, index);
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + index as u8));
            // Each worker starts at another target, so that the instances get even shares.
            let mut rotated = targets.clone();
            rotated.rotate_left(index % targets.len());
            let mut process = Command::new(program)
                .args(["--source", &source.to_string(), "--targets", &rotated.join(",")])
                .args(["--path", &plan.path, "--subscribers", &share.to_string()])
                .args(["--events", &plan.events.to_string(), "--patience-ms"])
                .arg(plan.patience.as_millis().to_string())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|err| format!("{} does not start: {err}", program.display()))?;
            let lines = BufReader::new(process.stdout.take().expect("a piped stdout")).lines();
            workers.push(Worker { source, _process: process, lines });
        }
        let mut swarm = Self { workers };
        let opening = plan.patience + Duration::from_millis(5) * (plan.subscribers / count) as u32;
        swarm.hear_from_all("open", opening).await?;
        Ok(swarm)
    }

    /// Waits until event `seq` (and every one before it) has reached every stream of every
    /// worker.
    pub async fn reached(&mut self, seq: usize, patience: Duration) -> Result<(), String> {
        for worker in &mut self.workers {
            loop {
                let line = worker.next_line(patience).await?;
                let reached = line.strip_prefix("reached ").and_then(|reached| reached.parse::<usize>().ok());
                match reached {
                    Some(reached) if reached == seq => break,
                    Some(reached) if reached < seq => continue,
                    _ => {
                        return Err(format!(
                            "worker {}: {line} (where \"reached {seq}\" was due)",
                            worker.source
                        ))
                    }
                }
            }
        }
        Ok(())
    }

    /// Every event's arrival times at every stream, on [`monotonic_ns`]'s clock, by event.
    pub async fn arrivals(mut self, events: usize, patience: Duration) -> Result<Vec<Vec<u64>>, String> {
        let mut arrivals = vec![Vec::new(); events];
        for worker in &mut self.workers {
            for (seq, arrivals) in arrivals.iter_mut().enumerate() {
                let line = worker.next_line(patience).await?;
                let mut fields = line.split(' ');
                if fields.next() != Some("arrivals") || fields.next() != Some(seq.to_string().as_str()) {
                    return Err(format!(
                        "worker {}: {line:?} where event {seq}'s arrivals were due",
                        worker.source
                    ));
                }
                for time in fields {
                    arrivals.push(time.parse().map_err(|_| format!("worker {}: {line:?}", worker.source))?);
                }
            }
        }
        Ok(arrivals)
    }

    async fn hear_from_all(&mut self, expected: &str, patience: Duration) -> Result<(), String> {
        for worker in &mut self.workers {
            let line = worker.next_line(patience).await?;
            if line != expected {
                return Err(format!("worker {}: {line} (where {expected:?} was due)", worker.source));
            }
        }
        Ok(())
    }
}

impl Worker {
    async fn next_line(&mut self, patience: Duration) -> Result<String, String> {
        match tokio::time::timeout(patience, self.lines.next_line()).await {
            Ok(Ok(Some(line))) => Ok(line),
            Ok(Ok(None)) => Err(format!("worker {} exited", self.source)),
            Ok(Err(err)) => Err(format!("worker {}: {err}", self.source)),
            Err(_) => Err(format!("worker {} said nothing within {patience:?}", self.source)),
        }
    }
}

/// How many of `subscribers` worker `index` of `workers` holds.
pub(crate) fn share(subscribers: usize, workers: usize, index: usize) -> usize {
    subscribers / workers + usize::from(index < subscribers % workers)
}

/// A worker's whole life, from its command line (see [`Swarm::open`]): holds its streams and
/// reports on stdout until it has told every arrival. Exits 1 after a `fail` line.
pub fn worker_main() {
    crate::raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    if let Err(problem) = runtime.block_on(work(std::env::args().skip(1).collect())) {
        println!("fail {problem}");
        std::process::exit(1);
    }
}

async fn work(arguments: Vec<String>) -> Result<(), String> {
    let argument = |name: &str| {
        let at = arguments.iter().position(|argument| argument == name).ok_or(format!("no {name}"))?;
        arguments.get(at + 1).cloned().ok_or(format!("no value for {name}"))
    };
    let number = |name: &str| argument(name)?.parse::<usize>().map_err(|_| format!("{name} is not a number"));
    let source: IpAddr = argument("--source")?.parse().map_err(|_| "--source is not an address")?;
    let targets = argument("--targets")?
        .split(',')
        .map(|target| target.parse::<SocketAddr>().map_err(|_| format!("{target} is not an address")))
        .collect::<Result<Vec<_>, _>>()?;
    let (subscribers, events) = (number("--subscribers")?, number("--events")?);
    let patience = Duration::from_millis(number("--patience-ms")? as u64);
    let how = Subscribe::Http { path: argument("--path")? };

    // Where this process's `Instant`s sit on the shared clock.
    let (base, base_ns) = (Instant::now(), monotonic_ns());
    let crowd =
        Crowd::open(&targets, &how, Some(source), Order::Published, subscribers, events, patience).await?;
    println!("open");
    for seq in 0..events {
        crowd.reached(seq, patience).await?;
        println!("reached {seq}");
    }
    let arrivals = crowd.finish().await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for seq in 0..events {
        use std::io::Write;
        let line = arrivals.iter().fold(format!("arrivals {seq}"), |mut line, times| {
            let at = base_ns + times[seq].saturating_duration_since(base).as_nanos() as u64;
            line.push(' ');
            line.push_str(&at.to_string());
            line
        });
        writeln!(out, "{line}").map_err(|err| format!("stdout: {err}"))?;
    }
    Ok(())
}
