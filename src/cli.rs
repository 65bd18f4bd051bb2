//! The `herald` command line: with no command it serves (every setting of [`Config`]); its
//! commands `publish`, `token`, `sign` and `verify` are the client crate (`herald_client`) for
//! scripts and workers in any language, with exit codes they can act on.

use std::{
    io::{IsTerminal, Read},
    process::ExitCode,
    time::Duration,
};

use clap::{ArgGroup, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};

use crate::server::{
    auth::patterns::TopicPattern,
    config::{secret, session_key},
    Config,
};

/// Exit codes of the commands, for scripts (docs/cli.md lists them).
mod exit {
    /// Done: published, minted, signed, or the signature holds.
    pub const OK: u8 = 0;
    /// Herald refused the event (a 4xx), or the signature does not hold.
    pub const REFUSED: u8 = 1;
    /// The command line (or its input) is wrong; clap's own exit code for this too.
    pub const USAGE: u8 = 2;
    /// Herald did not take the event after every attempt (503, or no answer).
    pub const UNAVAILABLE: u8 = 3;
}

/// `herald [OPTIONS]` serves; `herald <COMMAND>` runs a command.
#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about = "Live events from server to browser over SSE",
    args_conflicts_with_subcommands = true,
    disable_help_subcommand = true,
    after_help = "With no command, Herald serves, with the options above. The commands help your backend \
                  and scripts: see `herald <COMMAND> --help` and docs/cli.md."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: Config,
}

impl Cli {
    /// The command line. A command is read without the serving options' environment variables:
    /// a `HERALD_*` setting only the server reads (a bad one, or a key file of another machine)
    /// must not stop `herald token` or `herald sign`. Help, errors and serving come from the
    /// whole parser.
    pub fn from_command_line() -> Self {
        let commands_only = Self::command().mut_args(|arg| arg.env(None::<&str>));
        match commands_only.try_get_matches().map(|matches| Self::from_arg_matches(&matches)) {
            Ok(Ok(cli)) if cli.command.is_some() => cli,
            _ => Self::parse(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Publish(Publish),
    Token(Token),
    Sign(Sign),
    Verify(Verify),
}

/// Publish one event to a topic and print its id.
#[derive(Debug, Args)]
#[command(after_help = "\
Retries a 503 with Retry-After (and no answer at all) with the same Idempotency-Key, so the event \
is published once. Exit codes: 0 published (the id on stdout), 1 refused by Herald (4xx), 2 usage, \
3 unavailable after every attempt.

Examples:
  export HERALD_PUBLISH_TOKEN=dev-only-publish-token
  herald publish --url http://127.0.0.1:3000 --topic orders --event created '{\"id\":7}'
  herald publish --url http://127.0.0.1:3000 --topic user.42 --idempotency-key export-9-done - < result.json")]
pub struct Publish {
    /// Herald's base URL, http:// (its own address: this binary speaks no TLS).
    #[arg(long, env = "HERALD_URL", value_parser = http_url)]
    url: Url,
    /// The topic to publish to.
    #[arg(long)]
    topic: String,
    /// The event's name (its SSE `event:`); none sends a plain `message`.
    #[arg(long)]
    event: Option<String>,
    /// Publishes the event once whatever the retries, here or from another run; one is made if
    /// none is given.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// HERALD_PUBLISH_TOKEN, or a publisher token whose herald.publish covers the topic.
    #[arg(long, env = "HERALD_PUBLISH_TOKEN", hide_env_values = true, value_parser = secret)]
    token: SecretString,
    /// How many times to try in all.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    attempts: u32,
    /// The event's data, as text; `-` (or nothing, from a pipe) reads it from stdin.
    data: Option<String>,
}

/// Mint a subscriber or publisher token (an HS256 JWT) and print it.
#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("grants").required(true).multiple(true).args(["subscribe", "publish"])),
    after_help = "\
Patterns: `user.42`, `user.42.*` (one more segment), `orders.**` (one or more). Exit codes: 0 minted \
(the token on stdout), 2 usage (a bad pattern, a short secret).

Examples:
  export HERALD_JWT_SECRET=an-example-secret-of-32-bytes-or-more
  herald token --subscribe 'user.42' 'user.42.*' --sub user-42 --ttl 10m
  herald token --publish 'invoices.**' --sub billing --ttl 1h
  curl -N \"http://127.0.0.1:3000/events?topic=user.42&access_token=$(herald token --subscribe user.42)\""
)]
pub struct Token {
    /// Topic patterns the holder may follow.
    #[arg(long, num_args = 1.., value_parser = TopicPattern::parse)]
    subscribe: Vec<TopicPattern>,
    /// Topic patterns the holder may publish to.
    #[arg(long, num_args = 1.., value_parser = TopicPattern::parse)]
    publish: Vec<TopicPattern>,
    /// How long the token lasts; a stream opened with it ends then.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    ttl: Duration,
    /// Who the token is for (its `sub`, shown in Herald's request log).
    #[arg(long)]
    sub: Option<String>,
    /// The secret Herald verifies tokens with: HERALD_JWT_SECRET, 32 bytes or more.
    #[arg(long, env = "HERALD_JWT_SECRET", hide_env_values = true, value_parser = session_key)]
    secret: SecretString,
}

/// Sign a callback body for a job and print the Herald-Signature header value.
#[derive(Debug, Args)]
#[command(after_help = "\
The body is signed exactly as given, byte for byte (mind the newline `echo` adds). Exit codes: 0 \
signed (the header value on stdout), 2 usage.

Examples:
  export HERALD_CALLBACK_SECRET=dev-only-callback-secret
  herald sign --job \"$JOB\" '{\"status\":\"done\"}'
  herald sign --secret whsec_test --job job-1 --time 1700000000 '{}'")]
pub struct Sign {
    #[command(flatten)]
    callback: Callback,
    /// The signature's time, in seconds since the Unix epoch; now if not given.
    #[arg(long, value_parser = clap::value_parser!(i64).range(0..))]
    time: Option<i64>,
}

/// Check a Herald-Signature header against a callback body and job.
#[derive(Debug, Args)]
#[command(after_help = "\
Exit codes: 0 the signature holds, 1 it does not (the reason on stderr, in one line), 2 usage.

Examples:
  herald verify --job \"$JOB\" --signature \"$HERALD_SIGNATURE\" - < body.json
  herald verify --secret whsec_test --job job-1 --tolerance 100000000d \\
    --signature t=1700000000,v2=79a7d49d493cd22e5e2277cd78bf06dc59c7982b3f0d708abe0d45bdb1d5ec35 '{}'")]
pub struct Verify {
    #[command(flatten)]
    callback: Callback,
    /// The Herald-Signature header's value.
    #[arg(long)]
    signature: String,
    /// How far the signature's time may be from this machine's clock, either way.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    tolerance: Duration,
}

/// What `sign` and `verify` share: the secret, the job, the body.
#[derive(Debug, Args)]
pub struct Callback {
    /// The callback secret: HERALD_CALLBACK_SECRET.
    #[arg(long, env = "HERALD_CALLBACK_SECRET", hide_env_values = true, value_parser = secret)]
    secret: SecretString,
    /// The job the callback reports on (the id in /callbacks/{job}).
    #[arg(long)]
    job: String,
    /// The body, byte for byte; `-` (or nothing, from a pipe) reads it from stdin.
    body: Option<String>,
}

impl Command {
    /// Runs the command, printing its result on stdout and any failure on stderr in one line.
    pub async fn run(self) -> ExitCode {
        let outcome = match self {
            Self::Publish(publish) => publish.run().await,
            Self::Token(token) => token.run(),
            Self::Sign(sign) => sign.run(),
            Self::Verify(verify) => verify.run(),
        };
        match outcome {
            Ok(output) => {
                println!("{output}");
                ExitCode::from(exit::OK)
            }
            Err((code, problem)) => {
                eprintln!("error: {problem}");
                ExitCode::from(code)
            }
        }
    }
}

/// What a command prints, or its exit code and the line that says why.
type Outcome = Result<String, (u8, String)>;

impl Publish {
    async fn run(self) -> Outcome {
        let data = input(self.data)?;
        let data =
            String::from_utf8(data).map_err(|_| (exit::USAGE, "the data is not UTF-8 text".to_owned()))?;
        let event = herald_client::Event {
            topic: &self.topic,
            event: self.event.as_deref(),
            data: data.into(),
            idempotency_key: self.idempotency_key.as_deref(),
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|err| (exit::UNAVAILABLE, err.to_string()))?;
        match herald_client::publish(&client, &self.url, self.token.expose_secret(), &event, self.attempts)
            .await
        {
            Ok(published) => Ok(published.id),
            Err(err @ herald_client::PublishError::Refused { .. }) => Err((exit::REFUSED, err.to_string())),
            Err(
                err @ (herald_client::PublishError::NotHttp(_) | herald_client::PublishError::NotAHeader(_)),
            ) => Err((exit::USAGE, err.to_string())),
            Err(err @ herald_client::PublishError::Unavailable { .. }) => {
                Err((exit::UNAVAILABLE, err.to_string()))
            }
        }
    }
}

impl Token {
    fn run(self) -> Outcome {
        let subscribe: Vec<&str> = self.subscribe.iter().map(TopicPattern::as_str).collect();
        let publish: Vec<&str> = self.publish.iter().map(TopicPattern::as_str).collect();
        let grant = herald_client::Grant {
            subscribe: &subscribe,
            publish: &publish,
            sub: self.sub.as_deref(),
            ttl: self.ttl,
        };
        herald_client::mint_token(self.secret.expose_secret().as_bytes(), &grant)
            .map_err(|err| (exit::USAGE, format!("cannot mint the token: {err}")))
    }
}

impl Sign {
    fn run(self) -> Outcome {
        let Callback { secret, job, body } = self.callback;
        let body = input(body)?;
        let time = self.time.unwrap_or_else(|| chrono::Utc::now().timestamp());
        Ok(herald_client::signature::sign(secret.expose_secret().as_bytes(), time, &job, &body))
    }
}

impl Verify {
    fn run(self) -> Outcome {
        let Callback { secret, job, body } = self.callback;
        let body = input(body)?;
        herald_client::verify_signature(
            secret.expose_secret().as_bytes(),
            &self.signature,
            &job,
            &body,
            self.tolerance,
        )
        .map(|()| "the signature holds".to_owned())
        .map_err(|err| (exit::REFUSED, err.message().to_owned()))
    }
}

/// The argument's bytes; `-`, or no argument while stdin is not a terminal, reads stdin.
fn input(argument: Option<String>) -> Result<Vec<u8>, (u8, String)> {
    match argument.as_deref() {
        Some("-") => {}
        Some(text) => return Ok(text.as_bytes().to_vec()),
        None if std::io::stdin().is_terminal() => {
            return Err((
                exit::USAGE,
                "give the data as an argument, or `-` to read it from stdin".to_owned(),
            ))
        }
        None => {}
    }
    let mut bytes = vec![];
    std::io::stdin()
        .read_to_end(&mut bytes)
        .map_err(|err| (exit::USAGE, format!("cannot read stdin: {err}")))?;
    Ok(bytes)
}

/// An `http://` URL: this binary's HTTP client has no TLS (Herald builds none), so it reaches
/// Herald on its own address, as the worker does, not through an https proxy.
fn http_url(text: &str) -> Result<Url, String> {
    match Url::parse(text) {
        Ok(url) if url.scheme() == "http" => Ok(url),
        Ok(url) if url.scheme() == "https" => Err(format!(
            "{text:?}: herald speaks plain HTTP; give Herald's own address, such as http://127.0.0.1:3000"
        )),
        _ => Err(format!("{text:?} is not an http:// URL such as http://127.0.0.1:3000")),
    }
}
