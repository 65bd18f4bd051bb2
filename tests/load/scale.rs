//! The quick mode of `benches/scale.rs` (`make bench-scale`): two instances on one Redis, 2,000
//! subscribers each from two worker processes on their own source addresses. Every subscriber
//! connects, every event reaches every one of them once and in order, a batch of events too, and
//! no instance takes Redis for unavailable. It checks correctness only; its figures are printed,
//! not judged.

use loadgen::scale::{run, ScaleBinaries, ScalePlan};

use crate::ONE_AT_A_TIME;

#[tokio::test(flavor = "multi_thread")]
async fn every_subscriber_of_every_instance_connects_and_gets_every_event_once_in_order() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let binaries = ScaleBinaries {
        herald: env!("CARGO_BIN_EXE_herald"),
        swarm_worker: env!("CARGO_BIN_EXE_swarm-worker"),
    };
    let plan = ScalePlan::quick();

    let report =
        run(&plan, &binaries).await.unwrap_or_else(|problem| panic!("the quick scale run failed: {problem}"));

    assert_eq!(report.subscribers_per_instance, [2_000, 2_000]);
    eprintln!("{report:?}");
}
