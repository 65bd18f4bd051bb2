//! One of the workspace's binaries (Herald, its worker, the comparison's peers), started on a free
//! port as a child process that says where it listens, and killed when dropped.

use std::time::Duration;

/// How long any single expected event may take before a test fails instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// A binary of this package, started on a free port; killed when dropped.
pub struct RunningBinary {
    pub process: tokio::process::Child,
    pub url: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl RunningBinary {
    /// Starts `path` with `env` as its whole environment and waits until it logs
    /// `listening on http://…`.
    pub async fn start(path: &str, env: &[(&str, &str)]) -> Self {
        Self::start_command(Self::command(path, env)).await
    }

    /// As [`start`](Self::start), with the soft open-file limit most Linux users start with
    /// (1,024 on a desktop, a systemd service or a Docker container) set to `soft`.
    pub async fn start_with_open_file_limit(path: &str, env: &[(&str, &str)], soft: u64) -> Self {
        let mut command = Self::command(path, env);
        // SAFETY: between fork and exec the child only makes the setrlimit system call, which
        // is async-signal-safe, and allocates nothing.
        unsafe {
            command.pre_exec(move || {
                let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
                rlimit::setrlimit(rlimit::Resource::NOFILE, soft, hard)
            });
        }
        Self::start_command(command).await
    }

    fn command(path: &str, env: &[(&str, &str)]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(path);
        // Only what the test says: a HERALD_* variable of the caller's would change the server.
        command.env_clear().envs(env.iter().copied()).stderr(std::process::Stdio::piped()).kill_on_drop(true);
        // The suite's choice of stream path holds for the binaries it starts too.
        if std::env::var("HERALD_TEST_STREAMS").as_deref() == Ok("hyper") {
            command.env("HERALD_STREAM_FAST_PATH", "false");
        }
        command
    }

    async fn start_command(mut command: tokio::process::Command) -> Self {
        use tokio::io::{AsyncBufReadExt, BufReader};

        let path = command.as_std().get_program().to_string_lossy().into_owned();
        let mut process = command.spawn().unwrap_or_else(|err| panic!("{path} does not start: {err}"));
        let mut log = BufReader::new(process.stderr.take().unwrap()).lines();
        let url = tokio::time::timeout(PATIENCE, async {
            while let Some(line) = log.next_line().await.unwrap() {
                if let Some((_, url)) = line.split_once("listening on ") {
                    return url.trim().to_owned();
                }
            }
            panic!("{path} exited before listening");
        })
        .await
        .unwrap_or_else(|_| panic!("{path} did not log its address"));
        // Keeps reading the log, so that a full pipe never blocks the process.
        let kept = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let writer = std::sync::Arc::clone(&kept);
        tokio::spawn(async move {
            while let Ok(Some(line)) = log.next_line().await {
                let mut kept = writer.lock().unwrap();
                kept.push_str(&line);
                kept.push('\n');
            }
        });
        Self { process, url, log: kept }
    }

    /// What the process has logged to stderr so far, after its address.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}
