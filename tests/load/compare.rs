//! The quick mode of `benches/compare.rs`: every compared server, with the same harness and a
//! small crowd, must connect every subscriber and deliver every event once and in order. It
//! checks correctness only; the figures it produces are not looked at.

use loadgen::compare::{run, Binaries, Plan, System};

use crate::ONE_AT_A_TIME;

#[test]
fn every_compared_server_delivers_every_event_to_every_subscriber() {
    let _alone = ONE_AT_A_TIME.blocking_lock();
    let binaries = Binaries {
        herald: env!("CARGO_BIN_EXE_herald"),
        axum_sse: env!("CARGO_BIN_EXE_peer-axum-sse"),
        raw_floor: env!("CARGO_BIN_EXE_peer-raw-floor"),
    };
    let plan = Plan::quick();
    let comparison = run(&plan, &System::ALL, &binaries);
    let failures = comparison.failures();
    assert!(failures.is_empty(), "runs failed:\n{}", failures.join("\n"));
    assert_eq!(comparison.latency.len(), System::ALL.len() * plan.crowds.len());
    assert_eq!(comparison.burst.len(), System::ALL.len());
}
