//! Structured logs: `tracing` to stderr as text or JSON, filtered by `RUST_LOG` (default: Herald,
//! its worker and the request lines at info; nothing per event at that level).

use tracing_subscriber::EnvFilter;

pub use super::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("herald=info,worker=info,tower_http=info"));
    // Colours only on a terminal: a log file or collector would keep the escape codes.
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // A log line that cannot be written is lost, never a panic: by default the subscriber reports
    // the failed write with `eprintln!`, which panics when stderr is gone (a closed pipe), and a
    // panic in the signal task would leave the server unable to shut down.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colours)
        .log_internal_errors(false);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
}
