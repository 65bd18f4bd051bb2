//! How many subscribers one instance holds, and what each one costs: the real `herald` binary
//! (release build) on loopback, N subscribers of one topic on raw sockets, events published one
//! at a time, through the one load generator (`loadgen`). The baseline is the same run with one
//! subscriber, in the same invocation; the report gives medians over the events and the ratio to
//! the baseline.
//!
//! The subscribers run in this process, so they share the 2 cores with the server: the times
//! are what a client on the same machine sees, not the server's alone.
//!
//! `cargo bench --features testing --bench capacity` (or `make bench-capacity`).

use std::time::Duration;

use loadgen::compare::{run, Binaries, Plan, System};

const CROWDS: [usize; 3] = [1, 1_000, 10_000];

fn main() {
    let plan = Plan {
        passes: 1,
        crowds: CROWDS.to_vec(),
        latency_events: 30,
        latency_deliveries: 0,
        burst_subscribers: 0,
        burst_rounds: 0,
        burst_events: 0,
        patience: Duration::from_secs(60),
    };
    let binaries = Binaries {
        herald: env!("CARGO_BIN_EXE_herald"),
        axum_sse: env!("CARGO_BIN_EXE_peer-axum-sse"),
        raw_floor: env!("CARGO_BIN_EXE_peer-raw-floor"),
    };
    let comparison = run(&plan, &[System::Herald], &binaries);
    let failures = comparison.failures();
    assert!(failures.is_empty(), "runs failed:\n{}", failures.join("\n"));

    println!(
        "{} events of 100 B to N subscribers of one topic; medians over the events",
        plan.latency_events
    );
    println!(
        "{:>11}  {:>9}  {:>13}  {:>22}  {:>22}  {:>22}",
        "subscribers",
        "opened in",
        "PSS / sub",
        "publish → p50 arrival",
        "publish → p99 arrival",
        "publish → last arrival"
    );
    let figures: Vec<_> =
        comparison.latency.iter().map(|run| run.figures.expect("a run that succeeded")).collect();
    let base = figures[0];
    for (run, measured) in comparison.latency.iter().zip(&figures) {
        let time = |ms: f64, base: f64| format!("{ms:.2} ms ({:.1}x)", ms / base);
        println!(
            "{:>11}  {:>9}  {:>13}  {:>22}  {:>22}  {:>22}",
            run.subscribers,
            format!("{:.2} s", measured.opened_in_s),
            if run.subscribers == 1 {
                "-".to_owned()
            } else {
                format!("{:.1} KiB", measured.bytes_per_subscriber / 1024.0)
            },
            time(measured.p50_ms, base.p50_ms),
            time(measured.p99_ms, base.p99_ms),
            time(measured.max_ms, base.max_ms),
        );
    }
}
