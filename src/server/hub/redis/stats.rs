//! The operator page's numbers across instances: each instance writes a snapshot of its own
//! every second with a life of [`STATS_LIFE`], and reads the snapshots of the other live
//! instances (those presence lists) in the same script call.

use std::time::Duration;

use super::{malformed, number, RedisLog};
use crate::server::redis::{keys, Unavailable};

/// How long an instance's snapshot outlives its write: three of the page's seconds, so that one
/// late write does not make an instance vanish from the page, and a dead one leaves it soon.
const STATS_LIFE: Duration = Duration::from_secs(3);

/// What every live instance wrote.
pub(crate) struct SharedStats {
    /// The topics with a history in Redis.
    pub(crate) topics: u64,
    /// The snapshots, this instance's first.
    pub(crate) snapshots: Vec<Vec<u8>>,
}

impl RedisLog {
    /// Writes this instance's `snapshot` and reads every live instance's.
    pub(in crate::server::hub) async fn exchange_stats(
        &self,
        snapshot: &[u8],
    ) -> Result<SharedStats, Unavailable> {
        let answer: Vec<Vec<u8>> = self
            .run(
                self.scripts
                    .stats_exchange
                    .key(keys::INSTANCES)
                    .key(keys::TOPICS)
                    .arg(&self.instance)
                    .arg(keys::STATS_PREFIX)
                    .arg(STATS_LIFE.as_millis() as u64)
                    .arg(snapshot),
            )
            .await?;
        let mut answer = answer.into_iter();
        let topics = answer.next().ok_or_else(|| malformed("the stats", b"an empty reply"))?;
        Ok(SharedStats { topics: number("the topics with a history", &topics)?, snapshots: answer.collect() })
    }
}
