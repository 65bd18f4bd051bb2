//! The `herald` binary: with no command, reads its settings, serves, and shuts down gracefully on
//! a signal; with one (`publish`, `token`, `sign`, `verify`), runs it and exits with its code.

use std::process::ExitCode;

use herald::{
    cli::Cli,
    server::{init_telemetry, settle_hash_files, shutdown_signal, Application},
};

#[tokio::main]
async fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let config = match Cli::from_command_line() {
        Cli { command: Some(command), .. } => return Ok(command.run().await),
        Cli { command: None, serve } => serve,
    };
    init_telemetry(config.log_format);
    let stop = shutdown_signal()?;
    let mut leptos_options = leptos::config::get_configuration(None)?.leptos_options;
    let settled = settle_hash_files(&mut leptos_options);
    if let Err(problem) = settled.and_then(|()| config.check(leptos_options.site_addr)) {
        // As clap does for a value it refuses: one line, exit code 2.
        eprintln!("error: {problem}");
        std::process::exit(2);
    }

    let app = Application::build(config, leptos_options).await?;
    tracing::info!("listening on http://{}", app.local_addr()?);
    if let Some(metrics) = app.metrics_addr() {
        tracing::info!("metrics on http://{}/metrics", metrics?);
    }
    app.run_until(stop).await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
