//! A throwaway `redis-server` for the tests of the Redis backend: [`RedisServer`] owns the process,
//! its loopback port and its data directory, and removes both when dropped.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{ExitStatus, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    process::{Child, Command},
    time::Instant,
};

/// How long a start or restart may take before the test fails.
const STARTUP: Duration = Duration::from_secs(5);

/// Between two readiness probes: an external process gives no event to await.
const PROBE_EVERY: Duration = Duration::from_millis(10);

/// How long one probe waits for `+PONG`: Redis answers at once, even while loading, so a longer
/// silence is something else on the port, and the probe gives up to check the process again.
const PROBE_PATIENCE: Duration = Duration::from_millis(500);

/// A `redis-server` on 127.0.0.1 with its own data directory, killed and removed when dropped.
///
/// ```no_run
/// # async fn example() {
/// let mut redis = loadgen::RedisServer::start_persistent().await;
/// redis.command(&["SET", "greeting", "hello"]).await;
/// redis.stop().await; // a crash: SIGKILL
/// redis.restart().await; // same port, same data
/// assert_eq!(redis.command(&["GET", "greeting"]).await, redis::Value::BulkString(b"hello".to_vec()));
/// # }
/// ```
pub struct RedisServer {
    /// `None` between [`stop`](Self::stop) and [`restart`](Self::restart).
    process: Option<Child>,
    port: u16,
    dir: PathBuf,
    persistent: bool,
}

impl RedisServer {
    /// A server that keeps nothing on disk: a restart starts it empty.
    pub async fn start() -> Self {
        Self::launch(false).await
    }

    /// A server that writes every command to its append-only file before answering, so that
    /// [`restart`](Self::restart) after [`stop`](Self::stop) finds all the data again.
    pub async fn start_persistent() -> Self {
        Self::launch(true).await
    }

    async fn launch(persistent: bool) -> Self {
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let name = format!("herald-redis-{}-{}", std::process::id(), STARTED.fetch_add(1, Ordering::Relaxed));
        let dir = std::env::temp_dir().join(name);
        // A directory left by an earlier process with the same pid would hold its data.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|err| panic!("cannot create {}: {err}", dir.display()));
        let mut server = Self { process: None, port: free_port(), dir, persistent };
        server.boot(false).await;
        server
    }

    /// `redis://127.0.0.1:PORT/`, for `Config::redis_url` or a `redis::Client`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server with SIGKILL, as a crash would, and waits until it is gone.
    pub async fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            // An error means that it had exited already.
            let _ = process.kill().await;
        }
    }

    /// Starts the server again on the same port with the same directory and persistence, after
    /// killing it first if it still runs, and waits until it answers `PING`.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.boot(true).await;
    }

    /// A new connection to the server.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(self.url()).expect("a valid URL");
        // Long enough for a test's own `DEBUG SLEEP`; a test that hangs still fails.
        let config = redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(10)));
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .unwrap_or_else(|err| panic!("cannot connect to {}: {err}", self.url()))
    }

    /// Runs one command on a new connection, e.g. `&["CLIENT", "KILL", "TYPE", "normal"]`, and
    /// returns the reply, failing the test on an error reply.
    pub async fn command(&self, args: &[&str]) -> redis::Value {
        let (name, rest) = args.split_first().expect("a command name");
        let mut command = redis::cmd(name);
        command.arg(rest);
        command
            .query_async(&mut self.connection().await)
            .await
            .unwrap_or_else(|err| panic!("{} failed: {err}", args.join(" ")))
    }

    /// The text of `INFO section`.
    pub async fn info(&self, section: &str) -> String {
        match self.command(&["INFO", section]).await {
            redis::Value::BulkString(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            redis::Value::VerbatimString { text, .. } => text,
            other => panic!("INFO {section} answered {other:?}"),
        }
    }

    /// Redis's CPU time so far, as it reports it (`INFO cpu`: its main thread and its helpers).
    pub async fn cpu_seconds(&self) -> f64 {
        let info = self.info("cpu").await;
        ["used_cpu_sys:", "used_cpu_user:"].iter().map(|field| info_number(&info, field)).sum()
    }

    /// The memory Redis's allocator holds for its data and itself (`INFO memory`'s
    /// `used_memory`), in bytes.
    pub async fn used_memory(&self) -> u64 {
        info_number(&self.info("memory").await, "used_memory:") as u64
    }

    /// Spawns redis-server on `self.port` and waits until it answers `PING`. If it exits first
    /// (the port was taken in the meantime), tries again until [`STARTUP`] is over: on the same
    /// port when `same_port`, else on a new free one.
    async fn boot(&mut self, same_port: bool) {
        let deadline = Instant::now() + STARTUP;
        loop {
            let mut process = self.spawn();
            let outcome = wait_for_pong(&mut process, self.port, deadline).await;
            match outcome {
                Ok(()) => {
                    self.process = Some(process);
                    return;
                }
                Err(Some(_)) if Instant::now() < deadline => {
                    if !same_port {
                        self.port = free_port();
                    }
                    tokio::time::sleep(PROBE_EVERY).await;
                }
                Err(exited) => {
                    let _ = process.kill().await;
                    let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                    let lines: Vec<&str> = log.lines().collect();
                    let tail = &lines[lines.len().saturating_sub(10)..];
                    panic!(
                        "redis-server on port {} did not answer PING within {STARTUP:?} ({}); its log ends:\n{}",
                        self.port,
                        exited.map_or("it was still running".to_owned(), |status| format!("it exited: {status}")),
                        tail.join("\n"),
                    );
                }
            }
        }
    }

    fn spawn(&self) -> Child {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            // Its log in its directory, for the message of a failed start.
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .args(["--save", ""])
            // DEBUG SLEEP, from loopback only: a Redis that is busy, not gone.
            .args(["--enable-debug-command", "local"]);
        if self.persistent {
            command.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            command.args(["--appendonly", "no"]);
        }
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).kill_on_drop(true);
        command.spawn().unwrap_or_else(|err| {
            panic!(
                "redis-server does not start ({err}): `make setup-test` installs it (Debian's redis-server)"
            )
        })
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(process) = &mut self.process {
            let _ = process.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("a bound address").port()
}

/// Waits until the server on `port` answers `PING` with `+PONG` (while it loads its append-only
/// file it answers `-LOADING`); `Err(Some(status))` if it exits, `Err(None)` past `deadline`.
async fn wait_for_pong(process: &mut Child, port: u16, deadline: Instant) -> Result<(), Option<ExitStatus>> {
    loop {
        if let Ok(Some(status)) = process.try_wait() {
            return Err(Some(status));
        }
        let patience = PROBE_PATIENCE.min(deadline.saturating_duration_since(Instant::now()));
        if let Ok(true) = tokio::time::timeout(patience, answers_ping(port)).await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(None);
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

async fn answers_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else { return false };
    if stream.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut reply = [0; 7];
    stream.read_exact(&mut reply).await.is_ok() && &reply == b"+PONG\r\n"
}

/// The number after `name` (e.g. `used_memory:`) on its line of an `INFO` text.
fn info_number(info: &str, name: &str) -> f64 {
    info.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no number for {name} in INFO"))
}
