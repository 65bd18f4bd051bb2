//! The connection to Redis that the hub, the job registry and the callback replay guard share
//! (`--redis-url`), and whether Redis answers: every failure turns into [`Unavailable`], and the
//! moments Redis is lost and restored are each logged once.
//!
//! Busy is not down. A reply later than its timeout fails that one command, but only a probe
//! decides whether Redis is down: a `PING` from a thread of its own, given [`PROBE_TIMEOUT`].
//! On a loaded machine (100,000 streams connecting to six instances on two cores) a process can
//! be starved for seconds, so that replies sit unread past their timeouts, every pending one at
//! once; taking that for an outage turned `/readyz` to 503 and logged an outage that never was.
//! A refused or dropped connection or an error reply is down at once.

pub(crate) mod keys;

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
use redis::{aio::ConnectionManager, AsyncConnectionConfig, Client, RedisError};

/// How long one command may take before Redis counts as unavailable. A publish is a short Lua
/// script: a second without an answer means Redis is down, not busy.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long the probe that follows a late reply waits for its `PING`: past it, Redis is down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a resume's replay may take to read: a bounded script (`--max-replay-events`,
/// `--max-replay-bytes`), but its reply can be a megabyte or more.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(5);

/// Redis did not answer in time, or answered with an error. Nothing was stored, unless a reply
/// came too late: then the command may have run, and a retry with the same idempotency key tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unavailable;

/// A handle on Redis (cheap to clone): a multiplexed connection that reconnects by itself, one
/// more for replays, and a client to open the hub reader's own connection with.
#[derive(Clone)]
pub(crate) struct Redis {
    client: Client,
    connection: ConnectionManager,
    /// Replays' own connection: a large reply queued on the shared one would hold up every
    /// publish behind it until their timeouts said Redis was down.
    replays: ConnectionManager,
    health: Arc<Health>,
}

/// Whether Redis answers, mirrored in the `herald_redis_up` gauge, and when it last did.
struct Health {
    up: AtomicBool,
    gauge: Gauge,
    /// A probe is on its way: late replies meanwhile start no other.
    probing: AtomicBool,
    /// Replies later than their timeouts while Redis counted as up.
    slow_replies: Counter,
}

/// What the connection reports, for the metrics: whether Redis answers, and its slow replies.
#[derive(Clone, Default)]
pub(crate) struct HealthSeries {
    /// 1 while Redis answers, 0 while it does not.
    pub up: Gauge,
    /// Replies that came later than their timeout while Redis counted as up.
    pub slow_replies: Counter,
}

/// A Redis URL (`HERALD_REDIS_URL`), parsed once at start into the client it opens. Its `Debug`
/// says only that it is set: the URL may hold a password.
#[derive(Clone)]
pub struct RedisUrl(Client);

impl std::str::FromStr for RedisUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Client::open(text).map(Self).map_err(|err| format!("not a Redis URL: {err}"))
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisUrl(..)")
    }
}

impl Redis {
    /// Connects lazily: Herald starts (and answers `/readyz` with 503) while Redis is down, and
    /// the connection manager keeps trying in the background.
    pub(crate) fn open(RedisUrl(client): &RedisUrl, series: HealthSeries) -> Self {
        let client = client.clone();
        let manager = |response_timeout| {
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_response_timeout(Some(response_timeout))
                .set_connection_timeout(Some(RESPONSE_TIMEOUT))
                .set_max_delay(Duration::from_secs(2))
                // A request while Redis is down gets its 503 at once (after one retry, 100 ms),
                // not after the manager's default six retries (about 3 s); the next command tries
                // again.
                .set_number_of_retries(1);
            // A lazy manager fails only for a resubscription without a push channel, which
            // this configuration does not ask for.
            ConnectionManager::new_lazy_with_config(client.clone(), config)
                .expect("a lazy connection manager without resubscription")
        };
        let (connection, replays) = (manager(RESPONSE_TIMEOUT), manager(REPLAY_TIMEOUT));
        // Counted as up until a command says otherwise, so that the first failure is logged.
        series.up.set(1);
        let health = Arc::new(Health {
            up: AtomicBool::new(true),
            gauge: series.up,
            probing: AtomicBool::new(false),
            slow_replies: series.slow_replies,
        });
        Self { client, connection, replays, health }
    }

    /// The shared connection, for one command or script.
    pub(crate) fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// The replays' connection. What happens on it is not [`observe`](Self::observe)d: a slow
    /// or failed replay says nothing about whether a publish would get through, and must not
    /// turn publishing and `/readyz` away.
    pub(crate) fn replay_connection(&self) -> ConnectionManager {
        self.replays.clone()
    }

    /// A connection of its own, for a blocking read that must not stall everyone else's
    /// commands (redis-rs#1319). `block` is the longest the read blocks for.
    pub(crate) async fn dedicated_connection(
        &self,
        block: Duration,
    ) -> Result<redis::aio::MultiplexedConnection, Unavailable> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(RESPONSE_TIMEOUT))
            .set_response_timeout(Some(block + RESPONSE_TIMEOUT));
        let connection = self.client.get_multiplexed_async_connection_with_config(&config).await;
        self.observe(connection)
    }

    /// Passes `result` through, noting whether Redis answered; a failure becomes [`Unavailable`].
    /// A reply later than its timeout fails its command and leaves the verdict to a probe.
    pub(crate) fn observe<T>(&self, result: Result<T, RedisError>) -> Result<T, Unavailable> {
        match result {
            Ok(value) => {
                self.health.set(true, None);
                Ok(value)
            }
            Err(err) if err.is_timeout() && self.health.is_up() => {
                self.health.slow_replies.inc();
                self.probe(err);
                Err(Unavailable)
            }
            Err(err) => {
                self.health.set(false, Some(&err));
                Err(Unavailable)
            }
        }
    }

    /// Asks Redis for a `PING` ([`answers_ping`]), unless a probe is on its way already:
    /// an answer within [`PROBE_TIMEOUT`] keeps Redis up (the late reply is logged, once a probe),
    /// none makes it down.
    fn probe(&self, late: RedisError) {
        if self.health.probing.swap(true, Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (client, health) = (self.client.clone(), Arc::clone(&self.health));
        runtime.spawn(async move {
            match answers_ping(&client).await {
                Ok(()) => tracing::warn!(
                    err = %late,
                    "a Redis reply came later than its timeout: that command failed; Redis answered a probe, so it counts as up"
                ),
                Err(err) => health.set(false, Some(&err)),
            }
            health.probing.store(false, Ordering::Relaxed);
        });
    }

    /// Whether the last command reached Redis: what `/readyz` reports. The hub's reader talks
    /// to Redis every second or two even when nothing happens, so this is never older than that,
    /// and a probe costs Redis nothing.
    pub(crate) fn is_up(&self) -> bool {
        self.health.is_up()
    }
}

/// Whether Redis answers a `PING` within [`PROBE_TIMEOUT`] (anything at all: `-NOAUTH` is an
/// answer too). Asked from a thread of the blocking pool with a plain socket: a busy runtime
/// can leave a reply unread past its timeout (its I/O driver has not looked yet when the timer
/// fires), where a thread the kernel schedules reads it as soon as it comes. TLS is left to the
/// client.
async fn answers_ping(client: &Client) -> Result<(), RedisError> {
    fn exchange(mut socket: impl std::io::Read + std::io::Write) -> std::io::Result<()> {
        socket.write_all(b"*1\r\n$4\r\nPING\r\n")?;
        match socket.read(&mut [0; 64])? {
            0 => Err(std::io::ErrorKind::UnexpectedEof.into()),
            _ => Ok(()),
        }
    }
    let ask: Box<dyn FnOnce() -> std::io::Result<()> + Send> = match client.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(host, port) => {
            let (host, port) = (host.clone(), *port);
            Box::new(move || {
                let address = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))?
                    .next()
                    .ok_or(std::io::ErrorKind::NotFound)?;
                let socket = std::net::TcpStream::connect_timeout(&address, PROBE_TIMEOUT)?;
                socket.set_read_timeout(Some(PROBE_TIMEOUT))?;
                socket.set_write_timeout(Some(PROBE_TIMEOUT))?;
                exchange(socket)
            })
        }
        redis::ConnectionAddr::Unix(path) => {
            let path = path.clone();
            Box::new(move || {
                let socket = std::os::unix::net::UnixStream::connect(path)?;
                socket.set_read_timeout(Some(PROBE_TIMEOUT))?;
                socket.set_write_timeout(Some(PROBE_TIMEOUT))?;
                exchange(socket)
            })
        }
        _ => {
            let mut connection = client.get_multiplexed_async_connection().await?;
            return redis::cmd("PING").query_async::<()>(&mut connection).await;
        }
    };
    match tokio::task::spawn_blocking(ask).await {
        Ok(answer) => Ok(answer?),
        Err(_) => Err(std::io::Error::other("the probe's thread failed").into()),
    }
}

impl Health {
    fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Logs only the transitions, so that a Redis that stays down is not logged once per request.
    fn set(&self, up: bool, err: Option<&RedisError>) {
        if self.up.swap(up, Ordering::Relaxed) != up {
            self.gauge.set(i64::from(up));
            match err {
                Some(err) => {
                    tracing::error!(%err, "Redis is unavailable: publishing, callbacks and new jobs answer 503 until it is back")
                }
                None => tracing::warn!("Redis is available again"),
            }
        }
    }
}

/// The wait between two attempts to reach Redis: 100 ms, doubling to at most 2 s.
pub(crate) struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Self(Duration::from_millis(100))
    }
}

impl Backoff {
    /// How long to wait before the next attempt.
    pub(crate) fn next(&mut self) -> Duration {
        let wait = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(2));
        wait
    }
}
