//! The connection to Redis that the hub, the job registry and the callback replay guard share
//! (`--redis-url`), and whether Redis answers: every failure turns into [`Unavailable`], and the
//! moments Redis is lost and restored are each logged once.
//!
//! Redis is one server, or the primary of a group that Sentinels watch
//! (`redis+sentinel://HOST:PORT,HOST:PORT/NAME`). With Sentinels, a task asks them for the
//! primary whenever Redis fails, and every second or two otherwise; when they name another one,
//! every connection moves to it at once (they are replaced, not retried at the old address), and
//! the hub's reader, which holds a connection of its own, reconnects within its next read.
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

use parking_lot::RwLock;
use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
use redis::{
    aio::ConnectionManager,
    sentinel::{Sentinel, SentinelNodeConnectionInfo},
    AsyncConnectionConfig, Client, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo, RedisError,
};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

/// How long one command may take before Redis counts as unavailable. A publish is a short Lua
/// script: a second without an answer means Redis is down, not busy.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long the probe that follows a late reply waits for its `PING`: past it, Redis is down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a resume's replay may take to read: a bounded script (`--max-replay-events`,
/// `--max-replay-bytes`), but its reply can be a megabyte or more.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a publish waits for `--redis-wait-replicas` replicas to confirm it (`WAIT`).
pub(crate) const WAIT_TIMEOUT: Duration = Duration::from_secs(1);

/// How often the Sentinels are asked for the primary while Redis answers: a failover whose old
/// primary still answers (as a replica, refusing writes) is noticed by the first write anyway.
const PRIMARY_CHECK: Duration = Duration::from_secs(2);

/// How often they are asked while Redis does not answer: a failover takes Sentinel a few
/// seconds, and the moment it names the new primary is the moment service can return.
const PRIMARY_CHECK_WHILE_DOWN: Duration = Duration::from_millis(200);

/// Redis did not answer in time, or answered with an error. Nothing was stored, unless a reply
/// came too late: then the command may have run, and a retry with the same idempotency key tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unavailable;

/// A handle on Redis (cheap to clone): the connections to the current primary, and whether it
/// answers.
#[derive(Clone)]
pub(crate) struct Redis {
    connections: Arc<RwLock<Option<Arc<Connections>>>>,
    /// Grows each time the connections move to another primary.
    generation: Arc<watch::Sender<u64>>,
    health: Arc<Health>,
    /// With Sentinels: whom to ask for the primary, and the failovers followed.
    sentinels: Option<Arc<Sentinels>>,
    /// Replicas that must hold a publish before it is acknowledged (`--redis-wait-replicas`).
    wait_replicas: u32,
}

/// The connections to one primary: a multiplexed connection that reconnects by itself, one for
/// replays, one for publishes, and a client to open the hub reader's own connection with.
struct Connections {
    /// Which primary these are for: the [`Redis::generation`] they were made in.
    generation: u64,
    client: Client,
    connection: ConnectionManager,
    /// Replays' own connection: a large reply queued on the shared one would hold up every
    /// publish behind it until their timeouts said Redis was down.
    replays: ConnectionManager,
    /// Publishes' connection: with `WAIT`, one of their own, since a publish holds it until
    /// replicas confirm and nothing else should queue behind it; else the shared one.
    publishes: ConnectionManager,
}

/// The Sentinels of a group, and what following its primary reports.
struct Sentinels {
    target: SentinelTarget,
    /// Primaries taken over from another since start (`herald_redis_failovers_total`).
    failovers: Counter,
    /// Woken when Redis stops answering, so that the Sentinels are asked at once.
    lost: Notify,
}

/// Whether Redis answers, mirrored in the `herald_redis_up` gauge, and when it last did.
struct Health {
    up: AtomicBool,
    /// Redis has answered since start: the first answer after the Sentinels name the primary
    /// is not a return.
    answered: AtomicBool,
    gauge: Gauge,
    /// A probe is on its way: late replies meanwhile start no other.
    probing: AtomicBool,
    /// Replies later than their timeouts while Redis counted as up.
    slow_replies: Counter,
}

/// What the connection reports, for the metrics: whether Redis answers, its slow replies, and
/// the failovers followed.
#[derive(Clone, Default)]
pub(crate) struct HealthSeries {
    /// 1 while Redis answers, 0 while it does not.
    pub up: Gauge,
    /// Replies that came later than their timeout while Redis counted as up.
    pub slow_replies: Counter,
    /// Times the Sentinels named another primary and every connection moved to it.
    pub failovers: Counter,
}

/// Where Redis is (`HERALD_REDIS_URL`), parsed once at start: one server's URL
/// (`redis://[:password@]host:port/db`, `redis+unix:///path`), or the Sentinels of a group
/// (`redis+sentinel://[[user]:password@]HOST:PORT,HOST:PORT,…/NAME[/db]`, whose password and
/// database are the primary's). Its `Debug` says only which: the URL may hold a password.
#[derive(Clone)]
pub enum RedisUrl {
    Server(Client),
    Sentinels(SentinelTarget),
}

/// The Sentinels to ask, the name of the group they watch, and how to reach its primary.
#[derive(Clone)]
pub struct SentinelTarget {
    sentinels: Vec<ConnectionInfo>,
    name: String,
    /// The primary's password and database.
    primary: RedisConnectionInfo,
}

impl SentinelTarget {
    fn parse(rest: &str) -> Result<Self, String> {
        let (authority, path) = rest.split_once('/').ok_or("name the group after the Sentinels: /NAME")?;
        let (credentials, hosts) = match authority.rsplit_once('@') {
            Some((credentials, hosts)) => (Some(credentials), hosts),
            None => (None, authority),
        };
        let decode =
            |text: &str| percent_decode(text).ok_or_else(|| format!("{text:?} is not percent-encoded UTF-8"));
        let sentinels = hosts
            .split(',')
            .map(|host| {
                if host.is_empty() || !host.contains(':') {
                    return Err(format!("{host:?} is not HOST:PORT"));
                }
                format!("redis://{host}").into_connection_info().map_err(|err| format!("{host:?}: {err}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (name, db) = match path.split_once('/') {
            Some((name, db)) => {
                (name, db.parse::<i64>().map_err(|_| format!("the database {db:?} is not a number"))?)
            }
            None => (path, 0),
        };
        if name.is_empty() {
            return Err("name the group after the Sentinels: /NAME".to_owned());
        }
        let mut primary = RedisConnectionInfo::default().set_db(db);
        if let Some(credentials) = credentials {
            let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
            if !user.is_empty() {
                primary = primary.set_username(decode(user)?);
            }
            if !password.is_empty() {
                primary = primary.set_password(decode(password)?);
            }
        }
        Ok(Self { sentinels, name: decode(name)?, primary })
    }
}

/// `%XX` escapes decoded, as URLs write a password with `@` or `:` in it.
fn percent_decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'%' {
            let hex = tail.get(..2)?;
            bytes.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(first);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

impl std::str::FromStr for RedisUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.strip_prefix("redis+sentinel://") {
            Some(rest) => SentinelTarget::parse(rest).map(Self::Sentinels).map_err(|err| {
                format!("not a Sentinel URL (redis+sentinel://HOST:PORT,HOST:PORT/NAME): {err}")
            }),
            None => Client::open(text).map(Self::Server).map_err(|err| format!("not a Redis URL: {err}")),
        }
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Server(_) => "RedisUrl(..)",
            Self::Sentinels(_) => "RedisUrl(sentinels ..)",
        })
    }
}

impl Redis {
    /// Connects lazily: Herald starts (and answers `/readyz` with 503) while Redis is down, and
    /// the connection manager keeps trying in the background. With Sentinels, there is no
    /// connection until [`follow_primary`](Self::follow_primary) has asked them.
    pub(crate) fn open(url: &RedisUrl, series: HealthSeries, wait_replicas: u32) -> Self {
        // One server counts as up until a command says otherwise, so that the first failure is
        // logged; with Sentinels, Redis is unavailable until they name the primary.
        let up = matches!(url, RedisUrl::Server(_));
        series.up.set(i64::from(up));
        let health = Arc::new(Health {
            up: AtomicBool::new(up),
            answered: AtomicBool::new(up),
            gauge: series.up,
            probing: AtomicBool::new(false),
            slow_replies: series.slow_replies,
        });
        let (connections, sentinels) = match url {
            RedisUrl::Server(client) => {
                (Some(Arc::new(Connections::to(client.clone(), 0, wait_replicas > 0))), None)
            }
            RedisUrl::Sentinels(target) => (
                None,
                Some(Arc::new(Sentinels {
                    target: target.clone(),
                    failovers: series.failovers,
                    lost: Notify::new(),
                })),
            ),
        };
        Self {
            connections: Arc::new(RwLock::new(connections)),
            generation: Arc::new(watch::Sender::new(0)),
            health,
            sentinels,
            wait_replicas,
        }
    }

    /// The connections to the primary; none before the Sentinels have named it.
    fn current(&self) -> Result<Arc<Connections>, Unavailable> {
        self.connections.read().clone().ok_or(Unavailable)
    }

    /// The shared connection, for one command or script.
    pub(crate) fn connection(&self) -> Result<ConnectionManager, Unavailable> {
        Ok(self.current()?.connection.clone())
    }

    /// The replays' connection. What happens on it is not [`observe`](Self::observe)d: a slow
    /// or failed replay says nothing about whether a publish would get through, and must not
    /// turn publishing and `/readyz` away.
    pub(crate) fn replay_connection(&self) -> Result<ConnectionManager, Unavailable> {
        Ok(self.current()?.replays.clone())
    }

    /// The publishes' connection: the publisher task is its only user.
    pub(crate) fn publish_connection(&self) -> Result<ConnectionManager, Unavailable> {
        Ok(self.current()?.publishes.clone())
    }

    /// How many replicas must confirm a publish before it is acknowledged (0: none, the default).
    pub(crate) fn wait_replicas(&self) -> u32 {
        self.wait_replicas
    }

    /// Grows each time the connections move to another primary: a holder of a connection of its
    /// own (the reader) compares it between reads, and reconnects when it grew.
    pub(crate) fn generation(&self) -> u64 {
        *self.generation.borrow()
    }

    /// Tells when the connections move to another primary, for a holder of a connection of its
    /// own that waits before trying again.
    pub(crate) fn primary_moves(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// A connection of its own, for a blocking read that must not stall everyone else's
    /// commands (redis-rs#1319), and the [`generation`](Self::generation) of the primary it
    /// reaches. `block` is the longest the read blocks for.
    pub(crate) async fn dedicated_connection(
        &self,
        block: Duration,
    ) -> Result<(redis::aio::MultiplexedConnection, u64), Unavailable> {
        let current = self.current()?;
        let (client, generation) = (current.client.clone(), current.generation);
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(RESPONSE_TIMEOUT))
            .set_response_timeout(Some(block + RESPONSE_TIMEOUT));
        let mut connection =
            self.observe(client.get_multiplexed_async_connection_with_config(&config).await)?;
        if self.sentinels.is_some() {
            // The old primary may be back as a replica at the same address before the Sentinels
            // are asked again: reading there would follow another history than the primary's.
            let role: redis::Value = self.observe(redis::cmd("ROLE").query_async(&mut connection).await)?;
            let primary = matches!(&role, redis::Value::Array(fields)
                if matches!(fields.first(), Some(redis::Value::BulkString(role)) if role == b"master"));
            if !primary {
                self.lost(None);
                return Err(Unavailable);
            }
        }
        Ok((connection, generation))
    }

    /// With Sentinels, asks them for the primary until `shutdown`: at once when Redis stops
    /// answering, then every [`PRIMARY_CHECK_WHILE_DOWN`] until it answers again, and every
    /// [`PRIMARY_CHECK`] meanwhile. When they name another server, every connection moves to it.
    /// Without Sentinels there is nothing to follow.
    pub(crate) fn follow_primary(&self, shutdown: CancellationToken) {
        let Some(sentinels) = self.sentinels.clone() else { return };
        let redis = self.clone();
        tokio::spawn(async move {
            let target = &sentinels.target;
            let mut sentinel = match Sentinel::build(target.sentinels.clone()) {
                Ok(sentinel) => sentinel,
                Err(err) => {
                    tracing::error!(%err, "the Sentinels' addresses cannot be used: Redis stays unavailable");
                    return;
                }
            };
            let primary =
                SentinelNodeConnectionInfo::default().set_redis_connection_info(target.primary.clone());
            let mut asked_in_vain = false;
            loop {
                match sentinel.async_master_for(&target.name, Some(&primary)).await {
                    Ok(client) => {
                        asked_in_vain = false;
                        redis.move_to(client, &sentinels.failovers);
                    }
                    Err(err) => {
                        if !std::mem::replace(&mut asked_in_vain, true) {
                            tracing::warn!(%err, name = %target.name, "the Sentinels do not name a primary yet: asking again");
                        }
                        redis.health.set(false, Some(&err));
                    }
                }
                let wait =
                    if redis.is_up() && !asked_in_vain { PRIMARY_CHECK } else { PRIMARY_CHECK_WHILE_DOWN };
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = sentinels.lost.notified() => {}
                    () = tokio::time::sleep(wait) => {}
                }
            }
        });
    }

    /// Replaces the connections with ones to `client`'s server, unless they go there already.
    fn move_to(&self, client: Client, failovers: &Counter) {
        let address = client.get_connection_info().addr().clone();
        let mut connections = self.connections.write();
        let before = connections.as_ref().map(|current| current.client.get_connection_info().addr().clone());
        if before.as_ref() == Some(&address) {
            return;
        }
        // Under the lock, so that the generation a holder compares with is never older than
        // the connections it got.
        let generation = *self.generation.borrow() + 1;
        *connections = Some(Arc::new(Connections::to(client, generation, self.wait_replicas > 0)));
        self.generation.send_replace(generation);
        drop(connections);
        match before {
            None => tracing::info!(primary = %address, "the Sentinels name the Redis primary"),
            Some(before) => {
                failovers.inc();
                tracing::warn!(primary = %address, %before, "the Sentinels name another Redis primary: every connection moves to it");
            }
        }
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
                self.lost(Some(&err));
                Err(Unavailable)
            }
        }
    }

    /// Redis is unavailable (`err` says why, if it said anything): with Sentinels, they are asked
    /// for the primary at once.
    fn lost(&self, err: Option<&RedisError>) {
        self.health.set(false, err);
        if let Some(sentinels) = &self.sentinels {
            sentinels.lost.notify_one();
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
        let Ok(current) = self.current() else { return };
        let (client, health) = (current.client.clone(), Arc::clone(&self.health));
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

impl Connections {
    /// Lazy connections to `client`'s server, for `generation`; `waits` when a publish waits for
    /// replicas too.
    fn to(client: Client, generation: u64, waits: bool) -> Self {
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
        let connection = manager(RESPONSE_TIMEOUT);
        // A publish that waits for replicas holds a connection of its own, which allows for
        // `WAIT`'s timeout on top of the reply's. Otherwise publishes share the connection: a
        // publish that gets through then also says the other commands will, where a connection
        // of its own could be back while the shared one still fails, and `/readyz` would flap.
        let publishes = match waits {
            true => manager(RESPONSE_TIMEOUT + WAIT_TIMEOUT),
            false => connection.clone(),
        };
        Self { generation, connection, replays: manager(REPLAY_TIMEOUT), publishes, client }
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
            match (up, err) {
                (false, Some(err)) => {
                    tracing::error!(%err, "Redis is unavailable: publishing, callbacks and new jobs answer 503 until it is back")
                }
                (false, None) => {
                    tracing::error!("Redis is unavailable (not the primary): publishing, callbacks and new jobs answer 503 until it is back")
                }
                (true, _) if self.answered.swap(true, Ordering::Relaxed) => {
                    tracing::warn!("Redis is available again")
                }
                (true, _) => tracing::info!("Redis is available"),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sentinels(url: &str) -> Result<SentinelTarget, String> {
        match url.parse::<RedisUrl>()? {
            RedisUrl::Sentinels(target) => Ok(target),
            RedisUrl::Server(_) => panic!("{url} was read as one server"),
        }
    }

    #[test]
    fn a_sentinel_url_names_every_sentinel_the_group_and_the_primary_s_password_and_database() {
        let target = sentinels("redis+sentinel://:p%40ss@10.0.0.1:26379,sentinel-b:26380/main/2").unwrap();

        let hosts: Vec<String> = target.sentinels.iter().map(|info| info.addr().to_string()).collect();
        assert_eq!(hosts, ["10.0.0.1:26379", "sentinel-b:26380"]);
        assert_eq!(target.name, "main");
        let primary = &target.primary;
        assert_eq!(primary.db(), 2);
        assert_eq!(primary.password(), Some("p@ss"));
        assert_eq!(primary.username(), None);
        assert_eq!(sentinels("redis+sentinel://127.0.0.1:26379/main").unwrap().primary.db(), 0);
    }

    #[test]
    fn a_sentinel_url_without_a_group_a_port_or_a_numeric_database_is_refused_with_the_reason() {
        for (url, reason) in [
            ("redis+sentinel://127.0.0.1:26379", "name the group"),
            ("redis+sentinel://127.0.0.1:26379/", "name the group"),
            ("redis+sentinel://127.0.0.1/main", "is not HOST:PORT"),
            ("redis+sentinel://127.0.0.1:26379,/main", "is not HOST:PORT"),
            ("redis+sentinel://127.0.0.1:26379/main/zero", "is not a number"),
            ("redis+sentinel://:%zz@127.0.0.1:26379/main", "percent-encoded"),
        ] {
            let err = sentinels(url).err().unwrap_or_else(|| panic!("{url} was accepted"));
            assert!(err.contains(reason), "{url}: {err}");
        }
    }

    #[test]
    fn neither_kind_of_url_prints_its_password() {
        for url in ["redis://:secret@127.0.0.1:6379/0", "redis+sentinel://:secret@127.0.0.1:26379/main"] {
            let printed = format!("{:?}", url.parse::<RedisUrl>().unwrap());
            assert!(!printed.contains("secret"), "{printed}");
        }
    }
}
