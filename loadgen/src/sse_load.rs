//! The load generator of `benches/compare.rs` and its quick mode: N subscribers on raw loopback
//! sockets and one publisher, the same for every server. It reads only what it must (the status
//! line, chunked framing, `data:` lines), timestamps each event on arrival, and checks that every
//! subscriber gets every event once and in order.
//!
//! Every event's data is 100 bytes: its sequence number in 8 digits, then filler. Event 0 warms
//! the servers up (and is when memory is read); the timed events follow, as one batch or several
//! rounds, one at a time or in a burst (see [`Pace`]).

use std::{
    cell::RefCell,
    net::{IpAddr, SocketAddr},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
    sync::{Notify, Semaphore},
    task::JoinSet,
};

use crate::{this_process_cpu_seconds, ProcessTree};

/// The length of every event's data, framing excluded.
pub const PAYLOAD_LEN: usize = 100;
/// Subscribers connecting at once: more would overflow the servers' listen backlogs, and a
/// dropped SYN costs a second.
const OPENING_AT_ONCE: usize = 128;
/// A publisher's keep-alive connection idle this long is replaced before the next event, as
/// some servers time idle connections out (gunicorn after a few seconds).
const PUBLISHER_IDLE: Duration = Duration::from_secs(1);
/// How long a subscriber that has every event keeps reading, so that a doubled one is noticed.
const DOUBLES_WINDOW: Duration = Duration::from_millis(50);

/// How a server is reached: where, how one subscribes, how one publishes.
#[derive(Clone)]
pub struct Target {
    pub address: SocketAddr,
    pub subscribe: Subscribe,
    pub publish: Publish,
}

#[derive(Clone)]
pub enum Subscribe {
    /// `GET path` over HTTP/1.1; the stream is open once a `200` head has arrived.
    Http { path: String },
    /// No request: the server writes SSE at once, and the stream is open at its first bytes.
    Raw,
}

#[derive(Clone)]
pub enum Publish {
    /// `POST path` over a keep-alive HTTP/1.1 connection; any 2xx answer is an acceptance.
    Http { path: String, bearer: Option<String>, body: PublishBody },
    /// One line per event on a connection that must be the first the server accepts; the
    /// server answers each with a line.
    ControlLine,
}

#[derive(Clone, Copy)]
pub enum PublishBody {
    /// The data itself.
    Raw,
    /// Herald's `{"topic": …, "data": …}`; `keyed`: each event with its data as its idempotency
    /// key, and a `503` retried after its `Retry-After`, as a backend that must not lose an event
    /// publishes.
    HeraldJson { topic: &'static str, keyed: bool },
}

/// How the timed events are published.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub enum Pace {
    /// Each event once the previous one has reached every subscriber: latency without queueing.
    OneAtATime,
    /// A round's events back to back, each once the server has answered the previous publish;
    /// the next round once the whole round has arrived.
    Burst,
}

#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub subscribers: usize,
    pub rounds: usize,
    pub events_per_round: usize,
    pub pace: Pace,
    /// The longest wait for every subscriber to connect, or for an event to reach them all,
    /// before the run fails.
    pub patience: Duration,
}

/// What one run measured. Times are per delivery (one event reaching one subscriber).
#[derive(Clone, Debug)]
pub struct Measured {
    pub opened_in: Duration,
    /// Proportional set size added per subscriber, in bytes, once each has had the warm-up event…
    pub bytes_per_subscriber: f64,
    /// …and before, with every stream open but no event sent yet.
    pub bytes_per_connected_subscriber: f64,
    /// Publish → arrival percentiles of each timed event, over its subscribers.
    pub per_event: Vec<Percentiles>,
    /// Per round: the deliveries and how long they took, from the round's first publish to its
    /// last arrival, and the CPU seconds spent over the same span.
    pub rounds: Vec<Round>,
}

#[derive(Clone, Copy, Debug)]
pub struct Percentiles {
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

#[derive(Clone, Copy, Debug)]
pub struct Round {
    pub deliveries: usize,
    pub took: Duration,
    /// By the server's processes.
    pub cpu_seconds: f64,
    /// By this process: the generator, the same for every server.
    pub generator_cpu_seconds: f64,
}

/// Runs `load` against the server at `target`, whose processes are `server`. An error says which
/// subscribers did not connect or which deliveries were lost, doubled or reordered.
pub async fn run(target: &Target, server: ProcessTree, load: Load) -> Result<Measured, String> {
    let mut publisher = Publisher::connect(target).await?;
    // Once with nobody listening, so that the idle figure includes the publish path.
    publisher.publish(&[String::from("idle")]).await?;
    let idle_kib = server.pss_kib();

    let events = 1 + load.rounds * load.events_per_round;
    let started = Instant::now();
    let crowd = Crowd::open(
        &[target.address],
        &target.subscribe,
        None,
        Order::Published,
        load.subscribers,
        events,
        load.patience,
    )
    .await?;
    let opened_in = started.elapsed();
    let per_subscriber = |kib: u64| kib.saturating_sub(idle_kib) as f64 * 1024.0 / load.subscribers as f64;
    let bytes_per_connected_subscriber = per_subscriber(server.pss_kib());

    let mut sent = Vec::with_capacity(events);
    let mut deliver = async |seq: usize, sent: &mut Vec<Instant>| -> Result<(), String> {
        sent.push(Instant::now());
        publisher.publish(&[payload(seq)]).await
    };
    deliver(0, &mut sent).await?;
    crowd.reached(0, load.patience).await?;
    let bytes_per_subscriber = per_subscriber(server.pss_kib());

    let mut cpu = Vec::with_capacity(load.rounds);
    for round in 0..load.rounds {
        let first = 1 + round * load.events_per_round;
        let last = first + load.events_per_round - 1;
        let (server_before, generator_before) = (server.cpu_seconds(), this_process_cpu_seconds());
        for seq in first..=last {
            deliver(seq, &mut sent).await?;
            if let Pace::OneAtATime = load.pace {
                crowd.reached(seq, load.patience).await?;
            }
        }
        crowd.reached(last, load.patience).await?;
        cpu.push((server.cpu_seconds() - server_before, this_process_cpu_seconds() - generator_before));
    }

    let arrivals = crowd.finish().await?;
    Ok(Measured {
        opened_in,
        bytes_per_subscriber,
        bytes_per_connected_subscriber,
        per_event: (1..events).map(|seq| percentiles(&arrivals, seq, sent[seq])).collect(),
        rounds: cpu
            .into_iter()
            .enumerate()
            .map(|(round, (cpu_seconds, generator_cpu_seconds))| {
                let first = 1 + round * load.events_per_round;
                let last = first + load.events_per_round - 1;
                let last_arrival = arrivals.iter().map(|times| times[last]).max().expect("subscribers");
                Round {
                    deliveries: load.events_per_round * load.subscribers,
                    took: last_arrival - sent[first],
                    cpu_seconds,
                    generator_cpu_seconds,
                }
            })
            .collect(),
    })
}

/// Subscribers that each expect the same `events` events (see [`payload`]), and what they have
/// received so far. Dropped early, it aborts every subscriber still running.
pub struct Crowd {
    subscribers: JoinSet<(usize, Result<Vec<Instant>, String>)>,
    size: usize,
    progress: Arc<Progress>,
}

impl Crowd {
    /// Opens `size` subscribers spread over the servers at `addresses` in turn, each from
    /// `source` if given (a loopback address of its own gives a process its own ephemeral
    /// ports), each expecting the events in `order`, and returns once every stream is open; an
    /// error if one cannot open within `patience` (and 5 ms a subscriber).
    pub async fn open(
        addresses: &[SocketAddr],
        how: &Subscribe,
        source: Option<IpAddr>,
        order: Order,
        size: usize,
        events: usize,
        patience: Duration,
    ) -> Result<Self, String> {
        let progress = Arc::new(Progress::default());
        let opening = Arc::new(Semaphore::new(OPENING_AT_ONCE));
        let mut subscribers = JoinSet::new();
        for index in 0..size {
            let (address, how) = (addresses[index % addresses.len()], how.clone());
            let (progress, opening) = (Arc::clone(&progress), Arc::clone(&opening));
            subscribers.spawn(async move {
                let outcome = subscribe(address, &how, source, order, events, &progress, &opening).await;
                if let Err(problem) = &outcome {
                    progress.fail(problem);
                }
                (index, outcome)
            });
        }
        let crowd = Self { subscribers, size, progress };
        let opened_by = Instant::now() + patience + Duration::from_millis(5) * size as u32;
        crowd.progress.wait(&crowd.progress.opened, size, opened_by).await.map_err(|opened| {
            format!("{opened} of {size} subscribers connected{}", crowd.progress.failure())
        })?;
        Ok(crowd)
    }

    /// Waits until event `seq` and every one before it have reached every subscriber; an error
    /// names how many deliveries are missing after `patience`, or the first subscriber's failure.
    pub async fn reached(&self, seq: usize, patience: Duration) -> Result<(), String> {
        let due = (seq + 1) * self.size;
        let progress = &self.progress;
        progress.wait(&progress.delivered, due, Instant::now() + patience).await.map_err(|delivered| {
            format!(
                "{} of the {due} deliveries due by event {seq} never arrived: lost{}",
                due - delivered,
                progress.failure()
            )
        })
    }

    /// Waits for every subscriber to finish (each keeps reading for a moment after its last event,
    /// so that a doubled one is noticed); each one's arrival time of every event, by subscriber.
    pub async fn finish(mut self) -> Result<Vec<Vec<Instant>>, String> {
        let mut arrivals = vec![Vec::new(); self.size];
        while let Some(finished) = self.subscribers.join_next().await {
            let (index, outcome) = finished.map_err(|err| format!("a subscriber panicked: {err}"))?;
            arrivals[index] = outcome?;
        }
        Ok(arrivals)
    }
}

/// Event `seq`'s data: its number, then filler up to [`PAYLOAD_LEN`] (plain ASCII, so that it
/// needs no escaping in JSON).
pub fn payload(seq: usize) -> String {
    format!("{seq:08}{}", "x".repeat(PAYLOAD_LEN - 8))
}

/// The number of an event from its data, if the data is one of [`payload`]'s.
fn sequence_number(data: &[u8]) -> Option<usize> {
    if data.len() != PAYLOAD_LEN || data[8..].iter().any(|&byte| byte != b'x') {
        return None;
    }
    std::str::from_utf8(&data[..8]).ok()?.parse().ok()
}

/// The nearest-rank percentiles of the time event `seq` took to reach each subscriber.
fn percentiles(arrivals: &[Vec<Instant>], seq: usize, sent: Instant) -> Percentiles {
    let mut times: Vec<Duration> =
        arrivals.iter().map(|times| times[seq].saturating_duration_since(sent)).collect();
    times.sort_unstable();
    let rank = |percent: usize| times[(times.len() * percent).div_ceil(100).max(1) - 1];
    Percentiles { p50: rank(50), p99: rank(99), max: times[times.len() - 1] }
}

/// What the subscribers report to the run, which waits on it.
#[derive(Default)]
struct Progress {
    opened: AtomicUsize,
    delivered: AtomicUsize,
    first_failure: Mutex<Option<String>>,
    changed: Notify,
}

impl Progress {
    fn count(&self, counter: &AtomicUsize, by: usize) {
        if by > 0 {
            counter.fetch_add(by, Ordering::SeqCst);
            self.changed.notify_one();
        }
    }

    fn fail(&self, problem: &str) {
        self.first_failure.lock().unwrap().get_or_insert_with(|| problem.to_owned());
        self.changed.notify_one();
    }

    /// `: ` and the first subscriber's failure, or nothing.
    fn failure(&self) -> String {
        self.first_failure.lock().unwrap().as_ref().map(|problem| format!(": {problem}")).unwrap_or_default()
    }

    /// Waits until `counter` reaches `target`; gives its value if `deadline` or a failure comes first.
    async fn wait(&self, counter: &AtomicUsize, target: usize, deadline: Instant) -> Result<(), usize> {
        loop {
            let value = counter.load(Ordering::SeqCst);
            if value >= target {
                return Ok(());
            }
            if self.first_failure.lock().unwrap().is_some() {
                return Err(value);
            }
            let deadline = tokio::time::Instant::from_std(deadline);
            if tokio::time::timeout_at(deadline, self.changed.notified()).await.is_err() {
                return Err(counter.load(Ordering::SeqCst));
            }
        }
    }
}

thread_local! {
    /// The subscribers' one read buffer: they all run on the generator's thread, and none holds
    /// it across an await.
    static READ_BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; 64 * 1024]);
}

/// One subscriber: connects, then reads until it has all `events` and [`DOUBLES_WINDOW`] has
/// passed without more, returning the arrival time of each event.
async fn subscribe(
    address: SocketAddr,
    how: &Subscribe,
    source: Option<IpAddr>,
    order: Order,
    events: usize,
    progress: &Progress,
    opening: &Semaphore,
) -> Result<Vec<Instant>, String> {
    let permit = opening.acquire().await.expect("the semaphore stays open");
    let mut socket = connect(address, source).await.map_err(|err| format!("connect: {err}"))?;
    let (framing, read_with_head) = match how {
        Subscribe::Http { path } => {
            let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n");
            socket.write_all(request.as_bytes()).await.map_err(|err| format!("request: {err}"))?;
            read_stream_head(&mut socket).await?
        }
        Subscribe::Raw => {
            let mut first = vec![0; 512];
            let read = socket.read(&mut first).await.map_err(|err| format!("read: {err}"))?;
            if read == 0 {
                return Err("the server hung up before its first bytes".to_owned());
            }
            first.truncate(read);
            (Body::Identity, first)
        }
    };
    drop(permit);
    progress.count(&progress.opened, 1);

    let mut reader = Reader::new(framing, order, events);
    progress.count(&progress.delivered, reader.take(&read_with_head, Instant::now())?);
    loop {
        let readable = if reader.received < events {
            socket.readable().await
        } else {
            match tokio::time::timeout(DOUBLES_WINDOW, socket.readable()).await {
                Ok(readable) => readable,
                Err(_quiet) => return Ok(reader.into_arrivals()),
            }
        };
        readable.map_err(|err| format!("poll: {err}"))?;
        let delivered = READ_BUFFER.with_borrow_mut(|buffer| match socket.try_read(buffer) {
            Ok(0) => Err("the server closed the stream".to_owned()),
            Ok(read) => reader.take(&buffer[..read], Instant::now()),
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
            Err(err) => Err(format!("read: {err}")),
        });
        let delivered =
            delivered.map_err(|problem| format!("{problem} after {} of {events} events", reader.received))?;
        progress.count(&progress.delivered, delivered);
    }
}

/// A connection to `address`, from `source` (any free port of it) if given.
async fn connect(address: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    use std::os::fd::AsRawFd;

    let Some(source) = source else { return TcpStream::connect(address).await };
    let socket = TcpSocket::new_v4()?;
    // The port is chosen at connect, for this destination, instead of at bind among every port of
    // the address: with thousands bound, bind's search made opening 100,000 streams take a minute.
    let yes: libc::c_int = 1;
    // SAFETY: setsockopt reads an int of the size given from a live local.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&yes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if set != 0 {
        return Err(std::io::Error::last_os_error());
    }
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(address).await
}

/// In which order a subscriber must receive the events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// In the order of their data's numbers: one publisher, one request at a time.
    Published,
    /// Each once, in the order of their SSE ids, whatever their numbers: publishers side by side,
    /// whose events the server puts in order.
    ById,
}

/// A subscriber's stream as it arrives: its body framing, its partial line, and when each event
/// came, by sequence number.
struct Reader {
    body: Body,
    lines: Lines,
    order: Order,
    /// When each event arrived, by its number (`None`: not yet).
    arrivals: Vec<Option<Instant>>,
    received: usize,
    /// The sequence number of the `id:` line of the event being read, and of the last event.
    id: Option<u64>,
    last_id: u64,
}

impl Reader {
    fn new(body: Body, order: Order, events: usize) -> Self {
        Self {
            body,
            lines: Lines::default(),
            order,
            arrivals: vec![None; events],
            received: 0,
            id: None,
            last_id: 0,
        }
    }

    /// Takes bytes read at `at`; returns how many events they completed, or what was wrong
    /// with them (an event out of order or twice, or data the generator never sent).
    fn take(&mut self, wire: &[u8], at: Instant) -> Result<usize, String> {
        let Self { body, lines, order, arrivals, received, id, last_id } = self;
        let before = *received;
        let mut problem = None;
        body.decode(wire, |decoded| {
            lines.feed(decoded, |line| {
                if let Some(text) = line.strip_prefix(b"id:") {
                    *id = std::str::from_utf8(text)
                        .ok()
                        .and_then(|text| text.trim().rsplit_once('-')?.1.parse().ok());
                    return;
                }
                let Some(data) = line.strip_prefix(b"data:") else { return };
                let data = data.strip_prefix(b" ").unwrap_or(data);
                let due = match (sequence_number(data), *order) {
                    (None, _) => Err(format!("unexpected data: {:?}", String::from_utf8_lossy(data))),
                    (Some(seq), Order::Published) if seq != *received => {
                        Err(format!("event {seq} arrived where event {received} was due"))
                    }
                    (Some(seq), _) if arrivals.get(seq).is_none_or(Option::is_some) => {
                        Err(format!("event {seq} arrived twice, or was never sent"))
                    }
                    (Some(seq), Order::ById) => match id.take() {
                        Some(this) if this > *last_id => {
                            *last_id = this;
                            Ok(seq)
                        }
                        Some(this) => Err(format!("event id {this} came after id {last_id}")),
                        None => Err(format!("event {seq} came without an id")),
                    },
                    (Some(seq), Order::Published) => Ok(seq),
                };
                match due {
                    Ok(seq) => {
                        arrivals[seq] = Some(at);
                        *received += 1;
                    }
                    Err(found) => {
                        problem.get_or_insert(found);
                    }
                }
            })
        })?;
        match problem {
            Some(problem) => Err(problem),
            None => Ok(*received - before),
        }
    }

    /// When each event arrived, once all have.
    fn into_arrivals(self) -> Vec<Instant> {
        self.arrivals.into_iter().map(|at| at.expect("every event arrived")).collect()
    }
}

/// Reads a stream's response head; returns how its body is framed and the body bytes read with it.
async fn read_stream_head(socket: &mut TcpStream) -> Result<(Body, Vec<u8>), String> {
    let (head, rest) = read_head(socket).await?;
    let status = status_code(&head)?;
    if status != 200 {
        return Err(format!("the stream was refused with {status}: {head}"));
    }
    let body =
        if header(&head, "transfer-encoding").is_some_and(|value| value.eq_ignore_ascii_case("chunked")) {
            Body::Chunked(Chunked::Size(0))
        } else {
            Body::Identity
        };
    Ok((body, rest))
}

/// Reads up to the blank line that ends a response head; returns the head and what followed it.
async fn read_head(socket: &mut TcpStream) -> Result<(String, Vec<u8>), String> {
    let mut seen = Vec::with_capacity(1024);
    let mut buffer = [0u8; 1024];
    loop {
        if let Some(end) = seen.windows(4).position(|window| window == b"\r\n\r\n") {
            let rest = seen.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&seen).into_owned(), rest));
        }
        let read = socket.read(&mut buffer).await.map_err(|err| format!("read: {err}"))?;
        if read == 0 {
            return Err(format!("the server hung up mid-head: {:?}", String::from_utf8_lossy(&seen)));
        }
        seen.extend_from_slice(&buffer[..read]);
    }
}

fn status_code(head: &str) -> Result<u16, String> {
    head.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status: {head:?}"))
}

/// The value of the first header `name` (lower case) in `head`.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// How a response body is framed on the wire.
enum Body {
    /// As is, until the connection closes.
    Identity,
    Chunked(Chunked),
}

/// Where a chunked decoder is: in a size line (its value so far), in a chunk's data (bytes left),
/// or in the CRLF after it.
enum Chunked {
    Size(usize),
    /// A size line's extension or its `\r`, up to its `\n`: the size is known.
    SizeEnd(usize),
    Data(usize),
    DataEnd,
}

impl Body {
    /// Hands the body bytes in `wire` to `out`, in order, without copying them.
    fn decode(&mut self, mut wire: &[u8], mut out: impl FnMut(&[u8])) -> Result<(), String> {
        let Body::Chunked(state) = self else {
            out(wire);
            return Ok(());
        };
        while !wire.is_empty() {
            match *state {
                Chunked::Size(size) => {
                    let byte = wire[0];
                    wire = &wire[1..];
                    *state = match (byte as char).to_digit(16) {
                        Some(digit) => Chunked::Size(size * 16 + digit as usize),
                        None if byte == b'\n' => Chunked::Data(size),
                        None => Chunked::SizeEnd(size),
                    };
                    if let Chunked::Data(0) = state {
                        return Err("the server ended the stream".to_owned());
                    }
                }
                Chunked::SizeEnd(size) => {
                    let byte = wire[0];
                    wire = &wire[1..];
                    if byte == b'\n' {
                        if size == 0 {
                            return Err("the server ended the stream".to_owned());
                        }
                        *state = Chunked::Data(size);
                    }
                }
                Chunked::Data(left) => {
                    let take = left.min(wire.len());
                    out(&wire[..take]);
                    wire = &wire[take..];
                    *state = if take == left { Chunked::DataEnd } else { Chunked::Data(left - take) };
                }
                Chunked::DataEnd => {
                    let byte = wire[0];
                    wire = &wire[1..];
                    if byte == b'\n' {
                        *state = Chunked::Size(0);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Splits a body into lines across reads, without their `\n` or `\r\n`.
#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    fn feed(&mut self, mut bytes: &[u8], mut line: impl FnMut(&[u8])) {
        while let Some(end) = bytes.iter().position(|&byte| byte == b'\n') {
            let whole = if self.partial.is_empty() {
                &bytes[..end]
            } else {
                self.partial.extend_from_slice(&bytes[..end]);
                &self.partial[..]
            };
            line(whole.strip_suffix(b"\r").unwrap_or(whole));
            self.partial.clear();
            bytes = &bytes[end + 1..];
        }
        self.partial.extend_from_slice(bytes);
    }
}

/// Why a publish request failed.
enum Refusal {
    /// `503` with `Retry-After`: worth sending again after it.
    Busy {
        retry_after: Duration,
    },
    Other(String),
}

impl From<String> for Refusal {
    fn from(problem: String) -> Self {
        Self::Other(problem)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Busy { retry_after } => {
                write!(f, "refused with 503, Retry-After {}", retry_after.as_secs())
            }
            Self::Other(problem) => f.write_str(problem),
        }
    }
}

/// A publisher on its own keep-alive connection, one request at a time.
pub struct Publisher {
    target: Target,
    socket: TcpStream,
    last_used: Instant,
    /// The server's last answer said `Connection: close` (nginx does after 1,000 requests).
    closing: bool,
    /// Requests answered `503` and sent again (keyed Herald publishes only).
    pub retried: usize,
}

/// How many times a keyed publish is sent again after a `503`.
const RETRIES: usize = 5;

impl Publisher {
    pub async fn connect(target: &Target) -> Result<Self, String> {
        let socket = Self::open(target.address).await?;
        Ok(Self { target: target.clone(), socket, last_used: Instant::now(), closing: false, retried: 0 })
    }

    async fn open(address: SocketAddr) -> Result<TcpStream, String> {
        let socket = TcpStream::connect(address).await.map_err(|err| format!("publisher: {err}"))?;
        socket.set_nodelay(true).map_err(|err| format!("publisher: {err}"))?;
        Ok(socket)
    }

    /// Publishes `data` (several events at once as a batch, where the server takes JSON) and
    /// waits for the server's answer.
    pub async fn publish(&mut self, data: &[String]) -> Result<(), String> {
        let target = self.target.clone();
        let outcome = match &target.publish {
            Publish::Http { path, bearer, body } => {
                let (content_type, body, retries) = match body {
                    PublishBody::Raw => match data {
                        [one] => ("text/plain", one.clone(), 0),
                        _ => return Err("publish: this server takes one event a request".to_owned()),
                    },
                    PublishBody::HeraldJson { topic, keyed } => {
                        let event = |data: &String| match keyed {
                            true => {
                                format!(r#"{{"topic":"{topic}","data":"{data}","idempotency_key":"{data}"}}"#)
                            }
                            false => format!(r#"{{"topic":"{topic}","data":"{data}"}}"#),
                        };
                        let body = match data {
                            [one] => event(one),
                            many => format!("[{}]", many.iter().map(event).collect::<Vec<_>>().join(",")),
                        };
                        ("application/json", body, if *keyed { RETRIES } else { 0 })
                    }
                };
                let auth = bearer
                    .as_ref()
                    .map(|token| format!("Authorization: Bearer {token}\r\n"))
                    .unwrap_or_default();
                let request = format!(
                    "POST {path} HTTP/1.1\r\nHost: bench\r\n{auth}Content-Type: {content_type}\r\n\
                     Content-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let mut attempt = 0;
                loop {
                    if self.closing || self.last_used.elapsed() > PUBLISHER_IDLE {
                        self.socket = Self::open(self.target.address).await?;
                        self.closing = false;
                    }
                    let outcome = self.http_exchange(&request).await;
                    self.last_used = Instant::now();
                    match outcome {
                        Err(Refusal::Busy { retry_after }) if attempt < retries => {
                            attempt += 1;
                            self.retried += 1;
                            tokio::time::sleep(retry_after).await;
                        }
                        outcome => break outcome.map_err(|refusal| refusal.to_string()),
                    }
                }
            }
            Publish::ControlLine => match data {
                [one] => self.line_exchange(one).await,
                _ => Err("this server takes one event a request".to_owned()),
            },
        };
        self.last_used = Instant::now();
        outcome.map_err(|problem| format!("publish: {problem}"))
    }

    async fn http_exchange(&mut self, request: &str) -> Result<(), Refusal> {
        self.socket.write_all(request.as_bytes()).await.map_err(|err| err.to_string())?;
        let (head, mut body) = read_head(&mut self.socket).await?;
        let status = status_code(&head)?;
        self.closing = header(&head, "connection").is_some_and(|value| value.eq_ignore_ascii_case("close"));
        let chunked =
            header(&head, "transfer-encoding").is_some_and(|value| value.eq_ignore_ascii_case("chunked"));
        let length: usize = header(&head, "content-length").and_then(|value| value.parse().ok()).unwrap_or(0);
        let complete = |body: &[u8]| {
            if chunked {
                body.ends_with(b"0\r\n\r\n")
            } else {
                body.len() >= length
            }
        };
        let mut buffer = [0u8; 1024];
        while !complete(&body) {
            let read = self.socket.read(&mut buffer).await.map_err(|err| err.to_string())?;
            if read == 0 {
                return Err(Refusal::Other("the server hung up mid-answer".to_owned()));
            }
            body.extend_from_slice(&buffer[..read]);
        }
        match status {
            200..300 => Ok(()),
            503 if header(&head, "retry-after").is_some() => Err(Refusal::Busy {
                retry_after: Duration::from_secs(
                    header(&head, "retry-after").and_then(|seconds| seconds.parse().ok()).unwrap_or(1),
                ),
            }),
            _ => Err(Refusal::Other(format!("refused with {status}: {}", String::from_utf8_lossy(&body)))),
        }
    }

    async fn line_exchange(&mut self, data: &str) -> Result<(), String> {
        self.socket.write_all(format!("{data}\n").as_bytes()).await.map_err(|err| err.to_string())?;
        let mut answer = [0u8; 3];
        self.socket.read_exact(&mut answer).await.map_err(|err| err.to_string())?;
        if &answer == b"ok\n" {
            Ok(())
        } else {
            Err(format!("answered {:?}", String::from_utf8_lossy(&answer)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_decode_across_any_split() {
        let wire = b"6\r\nabc\nde\r\n3;ext=1\r\nf\n\n\r\n";
        for split in 0..wire.len() {
            let mut body = Body::Chunked(Chunked::Size(0));
            let mut decoded = Vec::new();
            body.decode(&wire[..split], |bytes| decoded.extend_from_slice(bytes)).unwrap();
            body.decode(&wire[split..], |bytes| decoded.extend_from_slice(bytes)).unwrap();
            assert_eq!(decoded, b"abc\ndef\n\n", "split at {split}");
        }
    }

    #[test]
    fn lines_join_across_reads_and_lose_their_line_ends() {
        let mut lines = Lines::default();
        let mut seen = Vec::new();
        for piece in [&b"data: 1\r"[..], b"\ndata: ", b"2\n\n"] {
            lines.feed(piece, |line| seen.push(String::from_utf8(line.to_vec()).unwrap()));
        }
        assert_eq!(seen, ["data: 1", "data: 2", ""]);
    }

    #[test]
    fn only_the_generator_s_own_payloads_have_a_sequence_number() {
        assert_eq!(sequence_number(payload(42).as_bytes()), Some(42));
        assert_eq!(sequence_number(b"idle"), None);
        assert_eq!(sequence_number(format!("{}y", &payload(1)[..PAYLOAD_LEN - 1]).as_bytes()), None);
    }
}
