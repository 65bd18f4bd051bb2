//! Herald's own settings: built-in defaults, overridden by `HERALD_*` environment variables,
//! overridden by command-line flags. The listening address and site folder are Leptos's
//! (`LEPTOS_SITE_ADDR`, `LEPTOS_SITE_ROOT`), so that `cargo leptos` drives them as usual.

use std::{net::SocketAddr, num::NonZeroU32, time::Duration};

use axum_extra::extract::cookie::Key;
use clap::Parser;

use super::{
    hub::HubSettings, jobs::JobSettings, metrics::Metrics, routes::publish::PublishSettings,
    serve::ServeSettings, signature::CallbackSettings, sse::StreamSettings,
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

    /// How long a client may take to send its request headers before the connection is closed.
    #[arg(long, env = "HERALD_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    pub header_read_timeout: Duration,

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
    #[arg(long, env = "HERALD_PUBLISH_TOKEN", hide_env_values = true)]
    pub publish_token: Option<String>,

    /// Shared secret of the HMAC signatures on `POST /callbacks/{job}`; callbacks are refused
    /// when it is unset.
    #[arg(long, env = "HERALD_CALLBACK_SECRET", hide_env_values = true)]
    pub callback_secret: Option<String>,

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

    /// How many events may wait for one slow subscriber before it is disconnected.
    #[arg(long, env = "HERALD_QUEUE_LEN", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub queue_len: u32,

    /// How many event streams may be open at once; past it, `503` with `Retry-After`.
    #[arg(long, env = "HERALD_MAX_SUBSCRIBERS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_subscribers: u32,

    /// How many event streams one client address may hold open at once; past it, `429` with
    /// `Retry-After`. Behind a proxy every client has the proxy's address: raise it there.
    #[arg(long, env = "HERALD_MAX_STREAMS_PER_CLIENT", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams_per_client: u32,

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
    #[arg(long, env = "HERALD_WORKER_TOKEN", hide_env_values = true)]
    pub worker_token: Option<String>,

    /// How many jobs the server keeps (running, or finished and still listed); when all are
    /// running, `Start job` answers `503` with `Retry-After`.
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
    #[arg(long, env = "HERALD_CORS_ALLOW_ORIGINS", value_delimiter = ',')]
    pub cors_allow_origins: Vec<String>,

    /// How logs are written to stderr (filter them with RUST_LOG).
    #[arg(long, env = "HERALD_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// This server's address as the worker should call it back; defaults to the bound address.
    /// Session cookies are marked `Secure` when it is https.
    #[arg(long, env = "HERALD_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Secret of at least 32 bytes that signs session cookies. Unset, a random one is made at
    /// start: sessions then end with the process and are not shared between instances.
    #[arg(long, env = "HERALD_SESSION_KEY", hide_env_values = true, value_parser = session_key)]
    pub session_key: Option<String>,

    /// Redis (`redis://[:password@]host:port/db` or `redis+unix:///path`) to share events,
    /// history, jobs and keys with other instances. Unset, all of it lives in this process.
    #[arg(long, env = "HERALD_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
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
        if let Some(url) = &self.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://"))
                || url.contains(char::is_whitespace)
            {
                return Err(format!(
                    "HERALD_PUBLIC_URL (--public-url) must be an http:// or https:// URL, not {url:?}"
                ));
            }
        }
        if let Some(url) = &self.redis_url {
            if let Err(err) = redis::Client::open(url.as_str()) {
                return Err(format!("HERALD_REDIS_URL (--redis-url) is not a Redis URL: {err}"));
            }
            if self.session_key.is_none() {
                return Err("HERALD_REDIS_URL (--redis-url) shares sessions between instances: set HERALD_SESSION_KEY (--session-key) too, the same on every instance".to_owned());
            }
        }
        let secrets = [
            ("HERALD_PUBLISH_TOKEN (--publish-token)", self.publish_token.as_deref()),
            ("HERALD_CALLBACK_SECRET (--callback-secret)", self.callback_secret.as_deref()),
            ("HERALD_WORKER_TOKEN (--worker-token)", self.worker_token.as_deref()),
            ("HERALD_SESSION_KEY (--session-key)", self.session_key.as_deref()),
        ];
        if let Some(bad) = self
            .cors_allow_origins
            .iter()
            .find(|origin| axum::http::HeaderValue::from_str(origin).is_err() || !origin.contains("://"))
        {
            return Err(format!("HERALD_CORS_ALLOW_ORIGINS (--cors-allow-origins) holds {bad:?}, which is not an origin such as https://app.example"));
        }
        refuse_development_secrets("Herald", listen, &secrets)
    }

    pub(crate) fn hub_settings(&self) -> HubSettings {
        HubSettings {
            history_len: self.history_len as usize,
            history_age: self.history_age,
            queue_len: self.queue_len as usize,
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

    /// `metrics` counts the connections.
    pub(crate) fn serve_settings(&self, metrics: &Metrics) -> ServeSettings {
        ServeSettings {
            connections_opened: metrics.connections_opened.clone(),
            connections_closed: metrics.connections_closed.clone(),
            header_read_timeout: self.header_read_timeout,
            write_timeout: self.write_timeout,
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

    /// `None` while no callback secret is set: callbacks are disabled.
    pub(crate) fn callback_settings(&self) -> Option<CallbackSettings> {
        let secret = self.callback_secret.clone()?;
        Some(CallbackSettings { secret, tolerance: self.callback_tolerance })
    }

    /// The key that signs session cookies: derived from `--session-key`, or random.
    pub(crate) fn session_key(&self) -> Key {
        match &self.session_key {
            Some(secret) => Key::derive_from(secret.as_bytes()),
            None => {
                tracing::warn!("HERALD_SESSION_KEY is unset: sessions end when this process does");
                Key::generate()
            }
        }
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

/// A session key long enough to derive a signing key from (HKDF wants 32 bytes or more).
fn session_key(text: &str) -> Result<String, String> {
    match text.len() {
        32.. => Ok(text.to_owned()),
        short => Err(format!("must be at least 32 bytes long (got {short})")),
    }
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
        config.callback_secret = Some("dev-only-callback-secret".to_owned());

        assert_eq!(config.check(([127, 0, 0, 1], 3000).into()), Ok(()));
        let refused = config.check(([0, 0, 0, 0], 3000).into()).unwrap_err();
        assert!(refused.starts_with("HERALD_CALLBACK_SECRET"), "{refused}");
    }
}
