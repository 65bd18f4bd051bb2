//! The clock task: one tick per wall-clock second, framed once and shared by every `/remote`
//! subscriber.
//!
//! Each wait is computed afresh from the wall clock, so the ticks stay on the second: a late
//! wake-up delays that one tick and never shifts the ones after it.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::event;
use crate::protocol::Tick;

/// A tick and its SSE frame (unnamed, without an id: ticks are ephemeral), framed once for
/// every subscriber.
#[derive(Clone, Debug)]
pub(crate) struct FramedTick {
    pub tick: Tick,
    pub frame: Bytes,
}

impl FramedTick {
    pub(crate) fn now() -> Self {
        let tick = Tick(Utc::now());
        Self { tick, frame: event::frame(None, None, &tick.encode()) }
    }
}

/// The latest tick. A subscriber that misses one simply sees the next.
pub(crate) type Clock = watch::Receiver<FramedTick>;

/// Starts the clock, counting each tick in `ticks_sent`; it stops when `shutdown` is cancelled.
pub(crate) fn spawn(shutdown: CancellationToken, ticks_sent: Counter) -> Clock {
    let (sender, ticks) = watch::channel(FramedTick::now());
    tokio::spawn(async move {
        loop {
            let target = next_second(Utc::now());
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = sleep_until(target) => {}
            }
            if sender.send(FramedTick::now()).is_err() {
                return;
            }
            ticks_sent.inc();
        }
    });
    ticks
}

/// The first whole second strictly after `now`.
fn next_second(now: DateTime<Utc>) -> DateTime<Utc> {
    let second = TimeDelta::seconds(1);
    now.duration_trunc(second).expect("a second divides every instant") + second
}

/// Sleeps until the wall clock reads at least `target`; timers may fire a little early when the
/// wall clock is adjusted, and a tick must never carry the previous second.
async fn sleep_until(target: DateTime<Utc>) {
    loop {
        let left = target - Utc::now();
        if left <= TimeDelta::zero() {
            return;
        }
        tokio::time::sleep(left.to_std().unwrap_or(Duration::ZERO)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(seconds: u32, millis: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 17, 30, seconds).unwrap() + TimeDelta::milliseconds(millis)
    }

    #[test]
    fn next_second_rounds_up_to_the_coming_whole_second() {
        assert_eq!(next_second(at(1, 400)), at(2, 0));
        assert_eq!(next_second(at(1, 999)), at(2, 0));
    }

    #[test]
    fn next_second_after_an_exact_tick_is_one_full_second_later() {
        assert_eq!(next_second(at(1, 0)), at(2, 0));
    }

    #[test]
    fn a_late_tick_does_not_shift_the_ticks_after_it() {
        // Woken 1.7 s late: the next tick still lands on a whole second, not 1 s after the wake-up.
        assert_eq!(next_second(at(3, 700)), at(4, 0));
    }

    #[test]
    fn ticks_cross_minute_and_day_boundaries() {
        assert_eq!(next_second(at(59, 500)), Utc.with_ymd_and_hms(2026, 11, 25, 17, 31, 0).unwrap());
        let end_of_day = Utc.with_ymd_and_hms(2026, 11, 25, 23, 59, 59).unwrap();
        assert_eq!(next_second(end_of_day), Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap());
    }

    #[test]
    fn a_tick_is_framed_as_an_unnamed_event_without_an_id() {
        let framed = FramedTick::now();
        assert_eq!(framed.frame, Bytes::from(format!("data: {}\n\n", framed.tick.encode())));
    }

    #[tokio::test]
    async fn the_clock_ticks_on_whole_seconds_and_stops_on_shutdown() {
        let shutdown = CancellationToken::new();
        let mut ticks = spawn(shutdown.clone(), Counter::default());
        ticks.changed().await.unwrap();
        let tick = ticks.borrow_and_update().tick.0;
        assert!(tick.timestamp_subsec_millis() < 100, "tick at {tick} is not on the second");

        shutdown.cancel();
        assert!(ticks.changed().await.is_err(), "the clock kept running after shutdown");
    }
}
