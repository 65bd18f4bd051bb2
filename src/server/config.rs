//! Herald's own settings: built-in defaults, overridden by `HERALD_*` environment variables,
//! overridden by command-line flags. The listening address and site folder are Leptos's
//! (`LEPTOS_SITE_ADDR`, `LEPTOS_SITE_ROOT`), so that `cargo leptos` drives them as usual.

use std::{net::SocketAddr, num::NonZeroU32, time::Duration};

use axum::http::HeaderValue;
use axum_extra::extract::cookie::Key;
use clap::Parser;
use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};

use super::{
    admin::AdminSettings,
    auth::{patterns::TopicPattern, tokens::PublicKey, AccessSettings},
    client::{ClientRate, TrustedProxies},
    hub::HubSettings,
    jobs::JobSettings,
    metrics::Metrics,
    open_files,
    redis::RedisUrl,
    routes::publish::PublishSettings,
    serve::ServeSettings,
    session::SessionSettings,
    signature::CallbackSettings,
    sse::StreamSettings,
};

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people: one line per event, with its span's fields.
    Text,
    /// For log collectors: one JSON object per line.
    Json,
}

/// Every setting of the server. Each service takes its own part, built by one method below.
#[derive(Clone, Debug, Parser)]
#[command(name = "herald", version, about = "Live events from server to browser over SSE")]
pub struct Config {
    /// Interval between keep-alive comments on an idle stream.
    #[arg(long, env = "HERALD_KEEP_ALIVE", default_value = "15s", value_parser = positive_duration)]
    pub keep_alive: Duration,

    /// Base reconnection delay suggested in a stream's `retry:` field; each connection gets it
    /// with ±50% jitter, so that a restart does not bring every client back at once.
    #[arg(long, env = "HERALD_RETRY", default_value = "3s", value_parser = positive_duration)]
    pub retry: Duration,

    /// How long open connections get to close after SIGTERM or Ctrl-C before the server exits anyway.
    #[arg(long, env = "HERALD_SHUTDOWN_GRACE", default_value = "5s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    /// How long a client may take to send a whole request, head and body, before its connection
    /// is closed: counted from the connection's opening for its first request, and from its head
    /// for a later one. Whatever a client speaks (a slow head, a body that never comes, an
    /// HTTP/2 preface, nothing at all), it holds a connection no longer than this.
    #[arg(long, env = "HERALD_REQUEST_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    pub request_timeout: Duration,

    /// How long a keep-alive connection may wait for its next request before it is closed.
    #[arg(long, env = "HERALD_IDLE_TIMEOUT", default_value = "30s", value_parser = positive_duration)]
    pub idle_timeout: Duration,

    /// How many connections may be open at once; past it, Herald stops accepting until one
    /// closes, and new clients wait in the listen backlog. Default: the open-file limit, less
    /// what Herald needs for everything else.
    #[arg(long, env = "HERALD_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,

    /// How long a connection may have output waiting that the client does not take before it is
    /// closed: a client that stops reading cannot hold its stream (and a stream slot) forever.
    #[arg(long, env = "HERALD_WRITE_TIMEOUT", default_value = "30s", value_parser = positive_duration)]
    pub write_timeout: Duration,

    /// Kernel send buffer of each connection, in bytes: what a client that stops reading can
    /// hold on the server before its queue fills and the hub drops it.
    #[arg(long, env = "HERALD_SEND_BUFFER", default_value_t = 256 * 1024)]
    pub send_buffer: usize,

    /// Serve plain HTTP/1.1 `GET /remote` and `GET /events` on the raw socket, which costs a
    /// fraction of hyper's memory per stream; `false` serves every request through hyper.
    #[arg(long, env = "HERALD_STREAM_FAST_PATH", default_value_t = true, action = clap::ArgAction::Set)]
    pub stream_fast_path: bool,

    /// Bearer token that `POST /publish` requires; publishing is disabled when it is unset.
    #[arg(long, env = "HERALD_PUBLISH_TOKEN", hide_env_values = true, value_parser = secret)]
    pub publish_token: Option<SecretString>,

    /// Shared secret of the HMAC signatures on `POST /callbacks/{job}`; callbacks are refused
    /// when it is unset.
    #[arg(long, env = "HERALD_CALLBACK_SECRET", hide_env_values = true, value_parser = secret)]
    pub callback_secret: Option<SecretString>,

    /// How far a callback's signature time may be from the server's clock.
    #[arg(long, env = "HERALD_CALLBACK_TOLERANCE", default_value = "5m", value_parser = positive_duration)]
    pub callback_tolerance: Duration,

    /// How many events each topic's history keeps for `Last-Event-ID` replay.
    #[arg(long, env = "HERALD_HISTORY_LEN", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub history_len: u32,

    /// How long an event stays in its topic's history; a topic with no event left and no
    /// subscriber is forgotten.
    #[arg(long, env = "HERALD_HISTORY_AGE", default_value = "10m", value_parser = positive_duration)]
    pub history_age: Duration,

    /// How many bytes (of SSE frames, as sent) each topic's history keeps at most; the oldest
    /// events leave first, and the newest one always stays.
    #[arg(long, env = "HERALD_HISTORY_BYTES", default_value_t = 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub history_bytes: u64,

    /// How many bytes every topic's history together keeps at most (in memory, or in Redis); past
    /// it, the oldest events leave first (in Redis, the topic published to longest ago).
    #[arg(long, env = "HERALD_HISTORY_TOTAL_BYTES", default_value_t = 256 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub history_total_bytes: u64,

    /// How many missed events one resume may replay; a resume that missed more opens with
    /// `event: reset` (`replay-too-large`) instead.
    #[arg(long, env = "HERALD_MAX_REPLAY_EVENTS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_replay_events: u32,

    /// How many bytes of missed events one resume may replay; past it, `event: reset`
    /// (`replay-too-large`) instead.
    #[arg(long, env = "HERALD_MAX_REPLAY_BYTES", default_value_t = 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_replay_bytes: u64,

    /// How many replays are read at once; more resumes wait their turn, so that thousands of
    /// clients resuming together cannot crowd out publishing.
    #[arg(long, env = "HERALD_MAX_CONCURRENT_REPLAYS", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_replays: u32,

    /// How many events may wait for one slow subscriber before it is disconnected.
    #[arg(long, env = "HERALD_QUEUE_LEN", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub queue_len: u32,

    /// How many event streams may be open at once; past it, `503` with `Retry-After`.
    #[arg(long, env = "HERALD_MAX_SUBSCRIBERS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_subscribers: u32,

    /// Proxies whose `X-Forwarded-For` names the client, comma-separated: CIDR ranges such as
    /// `172.28.0.0/16`, or single addresses. From them, the client is the rightmost forwarded
    /// address that is not itself a trusted proxy; from any other peer the header is ignored.
    /// None by default: behind a proxy, every client would otherwise count as the proxy.
    #[arg(long, env = "HERALD_TRUSTED_PROXIES", value_delimiter = ',', value_parser = proxy_range)]
    pub trusted_proxies: Vec<IpNet>,

    /// How many event streams one client may hold open at once; past it, `429` with
    /// `Retry-After`. Every per-client limit counts an IPv4 address, or an IPv6 /64.
    #[arg(long, env = "HERALD_MAX_STREAMS_PER_CLIENT", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams_per_client: u32,

    /// How many new sessions one client may be given a minute (and at once): a request without
    /// a session cookie gets one. Past it, `429` with `Retry-After`.
    #[arg(long, env = "HERALD_SESSION_MINT_RATE", default_value_t = 120, value_parser = clap::value_parser!(u32).range(1..))]
    pub session_mint_rate: u32,

    /// How many jobs one client may start a minute (and at once), whatever its sessions; past
    /// it, `Start job` answers `429` with `Retry-After`.
    #[arg(long, env = "HERALD_JOB_START_RATE", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..))]
    pub job_start_rate: u32,

    /// How many topics one `/events` connection may follow.
    #[arg(long, env = "HERALD_MAX_TOPICS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_topics: u32,

    /// How many events `/publish` accepts per second, across all publishers (and as a burst);
    /// past it, `503` with `Retry-After`, so a runaway publisher cannot swamp every subscriber.
    #[arg(long, env = "HERALD_MAX_PUBLISH_RATE", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_publish_rate: u32,

    /// The largest request body accepted by `/publish` and `/callbacks`, in bytes.
    #[arg(long, env = "HERALD_MAX_BODY", default_value_t = 64 * 1024)]
    pub max_body: usize,

    /// Where the job worker listens; `Start job` asks it to run jobs.
    #[arg(long, env = "HERALD_WORKER_URL", default_value = "http://127.0.0.1:3002")]
    pub worker_url: String,

    /// Bearer token the worker requires on `POST /jobs` (the worker's own HERALD_WORKER_TOKEN).
    #[arg(long, env = "HERALD_WORKER_TOKEN", hide_env_values = true, value_parser = secret)]
    pub worker_token: Option<SecretString>,

    /// How many jobs the server keeps in memory (running, or finished and still listed). When it
    /// is full, a new job takes the place of its own session's oldest finished one, never another
    /// session's; without one, `Start job` answers `503` with `Retry-After`. With Redis, how many
    /// may be running at once across the instances (finished ones expire there by themselves).
    #[arg(long, env = "HERALD_MAX_JOBS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_jobs: u32,

    /// How many jobs one browser session may have running at once; past it, `Start job` answers
    /// `429` with `Retry-After`.
    #[arg(long, env = "HERALD_MAX_JOBS_PER_SESSION", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_jobs_per_session: u32,

    /// How long a job may wait for its callback before it is marked failed.
    #[arg(long, env = "HERALD_JOB_TIMEOUT", default_value = "60s", value_parser = positive_duration)]
    pub job_timeout: Duration,

    /// Origins (such as `https://app.example`) whose pages may open `/events` across origins,
    /// comma-separated; none by default.
    #[arg(long, env = "HERALD_CORS_ALLOW_ORIGINS", value_delimiter = ',', value_parser = cors_origin)]
    pub cors_allow_origins: Vec<HeaderValue>,

    /// Secret of at least 32 bytes that subscriber and publisher tokens (JWTs) may be signed with,
    /// HS256. Once a JWT key is set, every topic but `session.*` and HERALD_PUBLIC_TOPICS needs a
    /// token whose `herald.subscribe` patterns cover it.
    #[arg(long, env = "HERALD_JWT_SECRET", hide_env_values = true, value_parser = session_key)]
    pub jwt_secret: Option<SecretString>,

    /// Path to a PEM public key that tokens may be signed for: RSA (RS256), P-256 (ES256) or
    /// Ed25519 (EdDSA). Herald then holds no secret that can mint a token.
    #[arg(long, env = "HERALD_JWT_PUBLIC_KEY", value_parser = PublicKey::load)]
    pub jwt_public_key: Option<PublicKey>,

    /// The audience tokens are for: a token with an `aud` claim must name it. Unset, a token
    /// with an `aud` claim is refused.
    #[arg(long, env = "HERALD_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Topic patterns anyone may follow without a token once a JWT key is set, comma-separated
    /// (`*` is one dot-separated segment, a final `**` the rest: `news.*,status.**`).
    #[arg(long, env = "HERALD_PUBLIC_TOPICS", value_delimiter = ',', value_parser = TopicPattern::parse)]
    pub public_topics: Vec<TopicPattern>,

    /// Topic patterns whose topics are told of arrivals and departures, comma-separated: when a
    /// stream with a token's `sub` opens (or closes) on such a topic, Herald publishes
    /// `event: join` (or `leave`) with `{"sub": …}` to it. Needs a JWT key. None by default.
    #[arg(long, env = "HERALD_PRESENCE_EVENTS", value_delimiter = ',', value_parser = TopicPattern::parse)]
    pub presence_events: Vec<TopicPattern>,

    /// Token of at least 16 bytes that opens the operator page, `/admin`, through its login form.
    /// Unset, `/admin` answers 404. Set the same on every instance: each then shares its numbers
    /// with the page, and a sign-in holds on all of them.
    #[arg(long, env = "HERALD_ADMIN_TOKEN", hide_env_values = true, value_parser = admin_token)]
    pub admin_token: Option<SecretString>,

    /// How many sign-in attempts at `/admin` one client may make a minute; past it, `429`.
    #[arg(long, env = "HERALD_ADMIN_LOGIN_RATE", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub admin_login_rate: u32,

    /// How logs are written to stderr (filter them with RUST_LOG).
    #[arg(long, env = "HERALD_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// This server's address as the worker should call it back; defaults to the bound address.
    /// Often an internal address (`http://herald-1:8080`), unlike the public origin.
    #[arg(long, env = "HERALD_CALLBACK_URL")]
    pub callback_url: Option<String>,

    /// The origin browsers load the page from (such as `https://app.example`): server-function
    /// calls from any other origin are refused, and session cookies are `Secure` (named
    /// `__Host-herald_session`) when it is https. Unset, the request's own `Host` is the origin
    /// and cookies are not `Secure`.
    #[arg(long, env = "HERALD_PUBLIC_ORIGIN", value_parser = origin)]
    pub public_origin: Option<String>,

    /// Secrets of at least 32 bytes that sign session cookies, comma-separated: the first signs,
    /// every one verifies, so a key is rotated by putting the new one first. Unset, a random one
    /// is made at start: sessions then end with the process and are not shared between instances.
    #[arg(long = "session-key", env = "HERALD_SESSION_KEY", hide_env_values = true, value_delimiter = ',', value_parser = session_key)]
    pub session_keys: Vec<SecretString>,

    /// How long a session lasts from the page load that started it; an older session cookie is
    /// no session, and the next page load starts a new one.
    #[arg(long, env = "HERALD_SESSION_LIFETIME", default_value = "7days", value_parser = positive_duration)]
    pub session_lifetime: Duration,

    /// Serve `GET /metrics` on this address of its own (such as `127.0.0.1:9090`) instead of the
    /// main one, which then answers 404 there: a proxy in front of the main address cannot
    /// publish the metrics by mistake.
    #[arg(long, env = "HERALD_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Redis (`redis://[:password@]host:port/db` or `redis+unix:///path`) to share events,
    /// history, jobs and keys with other instances, or the Sentinels of a Redis group
    /// (`redis+sentinel://HOST:PORT,HOST:PORT/NAME[/db]`), whose primary Herald follows through a
    /// failover. Unset, all of it lives in this process.
    #[arg(long, env = "HERALD_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<RedisUrl>,

    /// Acknowledge a publish (202) only once this many Redis replicas hold it (`WAIT`), so that
    /// a failover cannot lose it; a publish they do not confirm within a second answers 503,
    /// and its retry with the same idempotency key is safe. 0: acknowledged once the primary
    /// holds it (docs/operations.md, "High availability", gives the cost of each).
    #[arg(long, env = "HERALD_REDIS_WAIT_REPLICAS", default_value_t = 0)]
    pub redis_wait_replicas: u32,
}

/// The development secrets `make run` sets all start with this: they are public.
const DEVELOPMENT_SECRET_PREFIX: &str = "dev-only-";

impl Config {
    /// The built-in defaults alone, whatever `HERALD_*` variables are set: what the tests start
    /// from, so that a developer's environment (or the Makefile's) cannot change what they test.
    #[cfg(any(test, feature = "testing"))]
    pub fn defaults() -> Self {
        use clap::{CommandFactory, FromArgMatches};

        let command = Self::command().mut_args(|arg| arg.env(None::<&str>));
        Self::from_arg_matches(&command.get_matches_from(["herald"])).expect("the defaults are valid")
    }

    /// What clap cannot check alone: a public URL that is not http(s), and the public
    /// development secrets on an address other than loopback. The error names the setting.
    pub fn check(&self, listen: SocketAddr) -> Result<(), String> {
        if let Some(url) = &self.callback_url {
            if !(url.starts_with("http://") || url.starts_with("https://"))
                || url.contains(char::is_whitespace)
            {
                return Err(format!(
                    "HERALD_CALLBACK_URL (--callback-url) must be an http:// or https:// URL, not {url:?}"
                ));
            }
        }
        if self.redis_url.is_some() && self.session_keys.is_empty() {
            return Err("HERALD_REDIS_URL (--redis-url) shares sessions between instances: set HERALD_SESSION_KEY (--session-key) too, the same on every instance".to_owned());
        }
        // Without a key nothing is private but `session.*`: these would silently do nothing.
        let no_key = self.jwt_secret.is_none() && self.jwt_public_key.is_none();
        if no_key && (!self.public_topics.is_empty() || self.jwt_audience.is_some()) {
            return Err("HERALD_PUBLIC_TOPICS and HERALD_JWT_AUDIENCE only apply to tokens: set HERALD_JWT_SECRET or HERALD_JWT_PUBLIC_KEY too".to_owned());
        }
        if no_key && !self.presence_events.is_empty() {
            return Err("HERALD_PRESENCE_EVENTS announces the subscribers of tokens, by their sub: set HERALD_JWT_SECRET or HERALD_JWT_PUBLIC_KEY too".to_owned());
        }
        let secrets = [
            ("HERALD_PUBLISH_TOKEN (--publish-token)", self.publish_token.as_ref()),
            ("HERALD_CALLBACK_SECRET (--callback-secret)", self.callback_secret.as_ref()),
            ("HERALD_WORKER_TOKEN (--worker-token)", self.worker_token.as_ref()),
            ("HERALD_JWT_SECRET (--jwt-secret)", self.jwt_secret.as_ref()),
            ("HERALD_ADMIN_TOKEN (--admin-token)", self.admin_token.as_ref()),
        ]
        .into_iter()
        .chain(self.session_keys.iter().map(|key| ("HERALD_SESSION_KEY (--session-key)", Some(key))))
        .map(|(setting, value)| (setting, value.map(|secret| secret.expose_secret())))
        .collect::<Vec<_>>();
        refuse_development_secrets("Herald", listen, &secrets)
    }

    pub(crate) fn hub_settings(&self) -> HubSettings {
        HubSettings {
            history_len: self.history_len as usize,
            history_age: self.history_age,
            history_bytes: self.history_bytes as usize,
            history_total_bytes: self.history_total_bytes as usize,
            max_replay_events: self.max_replay_events as usize,
            max_replay_bytes: self.max_replay_bytes as usize,
            max_concurrent_replays: self.max_concurrent_replays as usize,
            queue_len: self.queue_len as usize,
            presence_events: self.presence_events.clone(),
        }
    }

    pub(crate) fn stream_settings(&self) -> StreamSettings {
        StreamSettings {
            keep_alive: self.keep_alive,
            retry: self.retry,
            max_streams: self.max_subscribers as usize,
            max_streams_per_client: self.max_streams_per_client as usize,
            max_topics: self.max_topics as usize,
        }
    }

    /// `metrics` counts the connections; `open_file_limit` is the process's open-file limit, which
    /// bounds the connections when `--max-connections` is unset.
    pub(crate) fn serve_settings(&self, metrics: &Metrics, open_file_limit: u64) -> ServeSettings {
        ServeSettings {
            connections_opened: metrics.connections_opened.clone(),
            connections_closed: metrics.connections_closed.clone(),
            request_timeout: self.request_timeout,
            idle_timeout: self.idle_timeout,
            write_timeout: self.write_timeout,
            max_connections: match self.max_connections {
                Some(max) => max as usize,
                None => open_files::connection_budget(open_file_limit),
            },
            shutdown_grace: self.shutdown_grace,
            send_buffer: self.send_buffer,
            stream_fast_path: self.stream_fast_path,
        }
    }

    pub(crate) fn publish_settings(&self) -> PublishSettings {
        PublishSettings {
            token: self.publish_token.clone(),
            max_rate: NonZeroU32::new(self.max_publish_rate).expect("clap keeps it above zero"),
        }
    }

    pub(crate) fn trusted_proxies(&self) -> TrustedProxies {
        TrustedProxies::new(&self.trusted_proxies)
    }

    pub(crate) fn session_mint_rate(&self) -> ClientRate {
        let rate = NonZeroU32::new(self.session_mint_rate).expect("clap keeps it above zero");
        ClientRate::per_minute(rate, "new sessions", "HERALD_SESSION_MINT_RATE")
    }

    pub(crate) fn job_start_rate(&self) -> ClientRate {
        let rate = NonZeroU32::new(self.job_start_rate).expect("clap keeps it above zero");
        ClientRate::per_minute(rate, "job starts", "HERALD_JOB_START_RATE")
    }

    pub(crate) fn access_settings(&self) -> AccessSettings {
        AccessSettings {
            secret: self.jwt_secret.clone(),
            public_key: self.jwt_public_key.clone(),
            audience: self.jwt_audience.clone(),
            public_topics: self.public_topics.clone(),
        }
    }

    /// `None` while no callback secret is set: callbacks are disabled.
    pub(crate) fn callback_settings(&self) -> Option<CallbackSettings> {
        let secret = self.callback_secret.clone()?;
        Some(CallbackSettings { secret, tolerance: self.callback_tolerance })
    }

    /// What session cookies are made with: the keys derived from `--session-key` (or a random
    /// one), the first of which signs; their lifetime; and whether they are `Secure`.
    pub(crate) fn session_settings(&self) -> SessionSettings {
        let keys = match self.session_keys.as_slice() {
            [] => {
                tracing::warn!("HERALD_SESSION_KEY is unset: sessions end when this process does");
                vec![Key::generate()]
            }
            secrets => {
                secrets.iter().map(|secret| Key::derive_from(secret.expose_secret().as_bytes())).collect()
            }
        };
        SessionSettings {
            keys,
            lifetime: self.session_lifetime,
            secure: self.public_origin.as_deref().is_some_and(|origin| origin.starts_with("https://")),
            mint_rate: self.session_mint_rate(),
        }
    }

    /// What the operator page is made with, when `--admin-token` is set.
    pub(crate) fn admin_settings(&self) -> Option<AdminSettings> {
        let rate = NonZeroU32::new(self.admin_login_rate).expect("clap keeps it above zero");
        Some(AdminSettings {
            token: self.admin_token.clone()?,
            secure: self.public_origin.as_deref().is_some_and(|origin| origin.starts_with("https://")),
            login_rate: ClientRate::per_minute(rate, "sign-in attempts", "HERALD_ADMIN_LOGIN_RATE"),
        })
    }

    /// `callback_base` is this server's URL as the worker reaches it.
    pub(crate) fn job_settings(&self, callback_base: String) -> JobSettings {
        JobSettings {
            max_jobs: self.max_jobs as usize,
            max_jobs_per_session: self.max_jobs_per_session as usize,
            timeout: self.job_timeout,
            worker_url: self.worker_url.clone(),
            worker_token: self.worker_token.clone(),
            callback_base,
        }
    }
}

/// Refuses the public development secrets (those of the Makefile) when `who` listens on `listen`
/// beyond loopback, where anyone who has read the Makefile could use them. `secrets` are each
/// setting's name and value; the error names the first one that is public. The server and the
/// worker both check their settings with it.
pub fn refuse_development_secrets(
    who: &str,
    listen: SocketAddr,
    secrets: &[(&str, Option<&str>)],
) -> Result<(), String> {
    if listen.ip().is_loopback() {
        return Ok(());
    }
    match secrets.iter().find(|(_, value)| value.is_some_and(|v| v.starts_with(DEVELOPMENT_SECRET_PREFIX))) {
        Some((setting, _)) => Err(format!(
            "{setting} is a public development secret, and {who} listens on {listen}, beyond loopback: set your own"
        )),
        None => Ok(()),
    }
}

/// A session key long enough to derive a signing key from (HKDF wants 32 bytes or more), or a
/// JWT secret as long as HS256's hash (RFC 7518 §3.2).
pub(crate) fn session_key(text: &str) -> Result<SecretString, String> {
    match text.len() {
        32.. => Ok(text.into()),
        short => Err(format!("must be at least 32 bytes long (got {short})")),
    }
}

/// The admin token: long enough that guessing it at the login's rate takes forever.
fn admin_token(text: &str) -> Result<SecretString, String> {
    match text.len() {
        16.. => Ok(text.into()),
        short => Err(format!("must be at least 16 bytes long (got {short})")),
    }
}

/// An origin as browsers send it in `Origin`: `http` or `https`, a host, perhaps a port, and
/// nothing else. Kept as the browser would write it: lower case, without a default port.
fn origin(text: &str) -> Result<String, String> {
    let uri: axum::http::Uri =
        text.parse().map_err(|_| format!("{text:?} is not an origin such as https://app.example"))?;
    let scheme = uri.scheme_str().filter(|scheme| matches!(*scheme, "http" | "https"));
    let (Some(scheme), Some(authority)) = (scheme, uri.authority()) else {
        return Err(format!("{text:?} is not an http:// or https:// origin such as https://app.example"));
    };
    if uri.path_and_query().is_some_and(|rest| rest != "/") || authority.as_str().contains('@') {
        return Err(format!("{text:?} has more than an origin: give only scheme://host[:port]"));
    }
    let default_port = if scheme == "https" { 443 } else { 80 };
    let host = authority.host().to_ascii_lowercase();
    Ok(match authority.port_u16().filter(|port| *port != default_port) {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
}

/// An origin that may open `/events` across origins, as the CORS answer will carry it.
fn cors_origin(text: &str) -> Result<HeaderValue, String> {
    match HeaderValue::from_str(text) {
        Ok(value) if text.contains("://") => Ok(value),
        _ => Err(format!("{text:?} is not an origin such as https://app.example")),
    }
}

/// A trusted proxy: a CIDR range, or a single address (a range of one).
fn proxy_range(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is neither a CIDR range (such as 10.0.0.0/8) nor an address"))
}

/// Any other secret, as typed: clap wraps it at once, so that `Debug` never shows it.
pub(crate) fn secret(text: &str) -> Result<SecretString, String> {
    Ok(text.into())
}

/// A human duration such as `15s` or `250ms` that is not zero (a zero interval would spin).
fn positive_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if duration.is_zero() => Err("must be longer than zero".into()),
        Ok(duration) => Ok(duration),
        Err(err) => Err(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_defaults_ignore_herald_variables_that_the_makefile_or_a_developer_set() {
        // No other test reads this variable: the router tests start from `Config::defaults()`.
        std::env::set_var("HERALD_MAX_TOPICS", "3");
        let (defaults, parsed) = (Config::defaults(), Config::try_parse_from(["herald"]).unwrap());
        std::env::remove_var("HERALD_MAX_TOPICS");

        assert_eq!((defaults.max_topics, parsed.max_topics), (16, 3));
    }

    #[test]
    fn development_secrets_are_refused_beyond_loopback_and_accepted_on_it() {
        let mut config = Config::defaults();
        config.callback_secret = Some("dev-only-callback-secret".into());

        assert_eq!(config.check(([127, 0, 0, 1], 3000).into()), Ok(()));
        let refused = config.check(([0, 0, 0, 0], 3000).into()).unwrap_err();
        assert!(refused.starts_with("HERALD_CALLBACK_SECRET"), "{refused}");
    }

    #[test]
    fn a_development_session_key_is_refused_beyond_loopback_wherever_it_stands_in_the_list() {
        let mut config = Config::defaults();
        config.session_keys = vec![
            "a real key of at least thirty-two bytes".into(),
            "dev-only-session-key-that-is-long".into(),
        ];

        let refused = config.check(([0, 0, 0, 0], 3000).into()).unwrap_err();
        assert!(refused.starts_with("HERALD_SESSION_KEY"), "{refused}");
    }

    #[test]
    fn session_keys_are_a_comma_separated_list_each_long_enough() {
        let keys = |value: &str| {
            Config::try_parse_from(["herald", "--session-key", value]).map(|config| {
                config.session_keys.iter().map(|key| key.expose_secret().to_owned()).collect::<Vec<_>>()
            })
        };
        let (new, old) = ("n".repeat(32), "o".repeat(40));

        assert_eq!(keys(&format!("{new},{old}")).unwrap(), [new.clone(), old]);
        assert!(keys(&format!("{new},short")).is_err());
    }

    #[test]
    fn the_public_origin_is_kept_as_browsers_write_an_origin_and_anything_more_is_refused() {
        assert_eq!(origin("https://App.Example").unwrap(), "https://app.example");
        assert_eq!(origin("https://app.example:443/").unwrap(), "https://app.example");
        assert_eq!(origin("http://127.0.0.1:8080").unwrap(), "http://127.0.0.1:8080");
        for bad in
            ["app.example", "ftp://app.example", "https://app.example/path", "https://user@app.example", ""]
        {
            assert!(origin(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn token_settings_without_a_key_are_refused_rather_than_ignored() {
        let mut config = Config::defaults();
        config.public_topics = vec!["news.*".parse().unwrap()];
        let refused = config.check(([127, 0, 0, 1], 3000).into()).unwrap_err();
        assert!(refused.contains("HERALD_JWT_SECRET"), "{refused}");
        config.jwt_secret = Some("a secret of thirty-two bytes or more".into());
        assert_eq!(config.check(([127, 0, 0, 1], 3000).into()), Ok(()));

        let mut config = Config::defaults();
        config.presence_events = vec!["room.*".parse().unwrap()];
        let refused = config.check(([127, 0, 0, 1], 3000).into()).unwrap_err();
        assert!(refused.contains("HERALD_PRESENCE_EVENTS"), "{refused}");
    }

    #[test]
    fn a_bad_pattern_or_key_file_or_short_secret_is_refused_at_parse_time_naming_it() {
        for args in [
            ["herald", "--public-topics", "news.*,user*"],
            ["herald", "--jwt-public-key", "/nonexistent/key.pem"],
            ["herald", "--jwt-secret", "too short"],
        ] {
            let err = Config::try_parse_from(args).unwrap_err().to_string();
            assert!(err.contains(args[1]), "{args:?}: {err}");
        }
    }

    #[test]
    fn trusted_proxies_are_ranges_or_single_addresses_and_anything_else_is_refused() {
        let parsed =
            Config::try_parse_from(["herald", "--trusted-proxies", "172.28.0.0/16, 10.0.0.1,fd00::/8"])
                .unwrap()
                .trusted_proxies;
        let expected: Vec<IpNet> =
            ["172.28.0.0/16", "10.0.0.1/32", "fd00::/8"].iter().map(|range| range.parse().unwrap()).collect();
        assert_eq!(parsed, expected);

        for bad in ["10.0.0.0/33", "nginx", "10.0.0.0/8;", ""] {
            let refused =
                Config::try_parse_from(["herald", "--trusted-proxies", bad]).unwrap_err().to_string();
            assert!(refused.contains("neither a CIDR range"), "{bad:?}: {refused}");
        }
    }

    #[tokio::test]
    async fn the_settings_and_each_services_part_of_them_never_print_their_secrets() {
        let config = Config::try_parse_from([
            "herald",
            "--publish-token=publish-secret",
            "--callback-secret=callback-secret",
            "--worker-token=worker-secret",
            "--session-key=session-secret-of-thirty-two-bytes!",
            "--jwt-secret=jwt-secret-of-thirty-two-bytes-or-more",
            "--redis-url=redis://:redis-secret@127.0.0.1:6379/0",
        ])
        .unwrap();
        let printed = format!(
            "{config:?} {:?} {:?} {:?} {:?}",
            config.access_settings(),
            config.publish_settings(),
            config.callback_settings(),
            config.job_settings("http://127.0.0.1:3000".to_owned()),
        );
        for secret in [
            "publish-secret",
            "callback-secret",
            "worker-secret",
            "session-secret",
            "jwt-secret",
            "redis-secret",
        ] {
            assert!(!printed.contains(secret), "{secret} is printed: {printed}");
        }
    }
}
