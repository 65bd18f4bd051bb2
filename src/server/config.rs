//! Herald's own settings: built-in defaults, overridden by `HERALD_*` environment variables,
//! overridden by command-line flags. The listening address and site folder are Leptos's
//! (`LEPTOS_SITE_ADDR`, `LEPTOS_SITE_ROOT`), so that `cargo leptos` drives them as usual.

use std::time::Duration;

use clap::Parser;

#[derive(Clone, Debug, Parser)]
#[command(
    name = "herald",
    version,
    about = "Live events from server to browser over SSE"
)]
pub struct Config {
    /// Interval between keep-alive comments on an idle stream.
    #[arg(long, env = "HERALD_KEEP_ALIVE", default_value = "15s", value_parser = positive_duration)]
    pub keep_alive: Duration,

    /// Reconnection delay suggested to clients in the stream's `retry:` field.
    #[arg(long, env = "HERALD_RETRY", default_value = "3s", value_parser = positive_duration)]
    pub retry: Duration,

    /// How long open connections get to close after SIGTERM or Ctrl-C before the server exits anyway.
    #[arg(long, env = "HERALD_SHUTDOWN_GRACE", default_value = "5s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
}

/// A human duration such as `15s` or `250ms` that is not zero (a zero interval would spin).
fn positive_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if duration.is_zero() => Err("must be longer than zero".into()),
        Ok(duration) => Ok(duration),
        Err(err) => Err(err.to_string()),
    }
}
