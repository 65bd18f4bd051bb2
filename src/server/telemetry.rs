//! Structured logs: `tracing` to stderr as text or JSON, filtered by `RUST_LOG` (default: Herald,
//! its worker and the request lines at info; nothing per event at that level).

use tracing_subscriber::EnvFilter;

pub use super::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("herald=info,worker=info,tower_http=info"));
    // Colours only on a terminal: a log file or collector would keep the escape codes.
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colours);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
}
