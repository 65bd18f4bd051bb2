//! The suite's helpers: everything from `herald::testing`, and the worker binary of this build.

pub use herald::testing::*;

/// The real `worker` binary, taking each job for `min..=max` (e.g. `"100ms"`, `"1h"`).
pub async fn spawn_worker(min: &str, max: &str) -> RunningBinary {
    start_worker(env!("CARGO_BIN_EXE_worker"), min, max).await
}
