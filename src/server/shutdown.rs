//! The process signals that start a graceful shutdown.

use std::{future::Future, io};

/// Listens for SIGINT (Ctrl-C) and SIGTERM from this call on, and returns a future that
/// completes on the first of them. Listening starts before the server binds, so a signal that
/// arrives during start-up is a graceful stop rather than the default abrupt exit.
#[cfg(unix)]
pub fn signal() -> io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};

    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("received SIGINT"),
            _ = terminate.recv() => tracing::info!("received SIGTERM"),
        }
    })
}

#[cfg(not(unix))]
pub fn signal() -> io::Result<impl Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
