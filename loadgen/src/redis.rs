//! A throwaway `redis-server` for the tests of the Redis backend: [`RedisServer`] owns the process,
//! its loopback port and its data directory, and removes both when dropped. It can be a primary,
//! a replica of one, or a Sentinel watching one ([`SentinelGroup`] puts the three together).

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
    role: Role,
}

/// What a server is started as.
#[derive(Clone)]
enum Role {
    Primary,
    /// A replica of the primary on this port.
    Replica(u16),
    /// A Sentinel watching the primary on this port, under this group name, with this quorum.
    Sentinel {
        primary: u16,
        name: String,
        quorum: u32,
    },
}

impl RedisServer {
    /// A server that keeps nothing on disk: a restart starts it empty.
    pub async fn start() -> Self {
        Self::launch(false, Role::Primary).await
    }

    /// A replica of `primary`, keeping nothing on disk either.
    pub async fn start_replica_of(primary: &RedisServer) -> Self {
        Self::launch(false, Role::Replica(primary.port)).await
    }

    /// A Sentinel watching `primary` as the group `name`, taking it for down after 2 s of
    /// silence when `quorum` Sentinels agree. (With 1 s, on two loaded cores, a Sentinel took
    /// the new primary for down right after a failover and failed over again, to a replica that
    /// held nothing yet.)
    pub async fn start_sentinel(primary: &RedisServer, name: &str, quorum: u32) -> Self {
        Self::launch(false, Role::Sentinel { primary: primary.port, name: name.to_owned(), quorum }).await
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A server that writes every command to its append-only file before answering, so that
    /// [`restart`](Self::restart) after [`stop`](Self::stop) finds all the data again.
    pub async fn start_persistent() -> Self {
        Self::launch(true, Role::Primary).await
    }

    async fn launch(persistent: bool, role: Role) -> Self {
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let name = format!("herald-redis-{}-{}", std::process::id(), STARTED.fetch_add(1, Ordering::Relaxed));
        let dir = std::env::temp_dir().join(name);
        // A directory left by an earlier process with the same pid would hold its data.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|err| panic!("cannot create {}: {err}", dir.display()));
        let mut server = Self { process: None, port: free_port(), dir, persistent, role };
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

    /// Starts the server again on the same port as a replica of the server on `primary`, as an
    /// operator brings a failed primary back after a failover.
    pub async fn restart_as_replica_of(&mut self, primary: u16) {
        self.role = Role::Replica(primary);
        self.restart().await;
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
        if let Role::Sentinel { primary, name, quorum } = &self.role {
            // A Sentinel rewrites its configuration file, so it gets one of its own.
            let config = self.dir.join("sentinel.conf");
            let text = format!(
                "sentinel monitor {name} 127.0.0.1 {primary} {quorum}\n\
                 sentinel down-after-milliseconds {name} 2000\n\
                 sentinel failover-timeout {name} 10000\n"
            );
            std::fs::write(&config, text)
                .unwrap_or_else(|err| panic!("cannot write {}: {err}", config.display()));
            command.arg(&config).arg("--sentinel");
        }
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            // Its log in its directory, for the message of a failed start.
            .arg("--logfile")
            .arg(self.dir.join("redis.log"));
        if !matches!(self.role, Role::Sentinel { .. }) {
            // DEBUG SLEEP, from loopback only: a Redis that is busy, not gone.
            command.args(["--save", ""]).args(["--enable-debug-command", "local"]);
            // A replica that (re)joins gets its copy at once, not after the default 5 s that
            // gathers replicas into one transfer: until then it holds nothing.
            command.args(["--repl-diskless-sync-delay", "0"]);
        }
        match (&self.role, self.persistent) {
            (Role::Sentinel { .. }, _) => {}
            (_, true) => {
                command.args(["--appendonly", "yes", "--appendfsync", "always"]);
            }
            (_, false) => {
                command.args(["--appendonly", "no"]);
            }
        }
        if let Role::Replica(primary) = self.role {
            command.args(["--replicaof", "127.0.0.1", &primary.to_string()]);
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
        if std::env::var_os("KEEP_REDIS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
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

/// A Redis group as operators run it: a primary, one replica and three Sentinels (quorum 2),
/// all throwaway, on free loopback ports.
pub struct SentinelGroup {
    pub primary: RedisServer,
    pub replica: RedisServer,
    pub sentinels: Vec<RedisServer>,
    pub name: &'static str,
}

impl SentinelGroup {
    /// Starts the group and waits until every Sentinel knows the replica and the other Sentinels,
    /// so that a failover can happen from then on.
    pub async fn start() -> Self {
        let name = "herald";
        let primary = RedisServer::start().await;
        let replica = RedisServer::start_replica_of(&primary).await;
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            sentinels.push(RedisServer::start_sentinel(&primary, name, 2).await);
        }
        let group = Self { primary, replica, sentinels, name };
        group.wait_until_ready().await;
        group
    }

    /// `redis+sentinel://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/herald`, for `Config::redis_url`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> =
            self.sentinels.iter().map(|sentinel| format!("127.0.0.1:{}", sentinel.port)).collect();
        format!("redis+sentinel://{}/{}", hosts.join(","), self.name)
    }

    /// The port of the server the Sentinels name as the primary now.
    pub async fn primary_port(&self) -> Option<u16> {
        let reply = self.sentinels[0].command(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.name]).await;
        match reply {
            redis::Value::Array(address) => match address.get(1) {
                Some(redis::Value::BulkString(port)) => std::str::from_utf8(port).ok()?.parse().ok(),
                _ => None,
            },
            _ => None,
        }
    }

    /// Waits until the replica is in sync and every Sentinel sees it and two other Sentinels:
    /// Sentinels find replicas and each other through the primary, in their own time (a hello
    /// every 2 s), so this polls what they report.
    async fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut ready = self.replica.info("replication").await.contains("master_link_status:up");
            for sentinel in &self.sentinels {
                let primary = sentinel.command(&["SENTINEL", "MASTER", self.name]).await;
                let field = |name: &str| -> u64 {
                    let redis::Value::Array(fields) = &primary else { return 0 };
                    let mut pairs = fields.chunks_exact(2);
                    pairs
                        .find(|pair| matches!(&pair[0], redis::Value::BulkString(key) if key == name.as_bytes()))
                        .and_then(|pair| match &pair[1] {
                            redis::Value::BulkString(value) => std::str::from_utf8(value).ok()?.parse().ok(),
                            _ => None,
                        })
                        .unwrap_or(0)
                };
                ready &= field("num-slaves") >= 1 && field("num-other-sentinels") >= 2;
            }
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "the Sentinel group was not ready within 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
