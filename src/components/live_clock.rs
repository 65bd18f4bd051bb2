//! The live clock: the server's time as it arrives on `/remote`, with the most recent ticks.

use chrono::{DateTime, Datelike, Timelike, Utc};
use leptos::prelude::*;

use crate::protocol::Tick;

/// How many recent ticks the list keeps; older ones fall off so the page's memory stays flat.
pub(crate) const RECENT_TICKS: usize = 20;

/// A tick as the list holds it.
#[derive(Clone, Debug, PartialEq)]
struct ReceivedTick {
    /// Position in arrival order; the list's key, since two ticks may carry the same time.
    seq: u64,
    tick: Tick,
}

/// The ticks received so far: a count, and the most recent ones, newest first.
#[derive(Clone, Copy)]
pub(crate) struct ClockFeed {
    recent: RwSignal<Vec<ReceivedTick>>,
    received: RwSignal<u64>,
}

impl ClockFeed {
    pub(crate) fn new() -> Self {
        Self { recent: RwSignal::new(Vec::with_capacity(RECENT_TICKS)), received: RwSignal::new(0) }
    }

    pub(crate) fn push(&self, tick: Tick) {
        let seq = self.received.get_untracked() + 1;
        self.received.set(seq);
        self.recent.update(|ticks| remember(ticks, ReceivedTick { seq, tick }));
    }
}

/// Puts `tick` first and forgets whatever falls past [`RECENT_TICKS`].
fn remember(ticks: &mut Vec<ReceivedTick>, tick: ReceivedTick) {
    ticks.insert(0, tick);
    ticks.truncate(RECENT_TICKS);
}

#[component]
pub(crate) fn LiveClock(feed: ClockFeed) -> impl IntoView {
    let ClockFeed { recent, received } = feed;
    let latest = move || recent.with(|ticks| ticks.first().map(|received| received.tick.0));

    view! {
        <section class="card clock" aria-labelledby="clock-title">
            <header class="card-header">
                <h2 id="clock-title">"Server clock"</h2>
            </header>
            <p class="clock-time" data-testid="latest">
                {move || latest().map(time_of_day).unwrap_or_else(|| "--:--:--".into())}
            </p>
            <p class="clock-date">
                {move || {
                    latest()
                        .map(|at| format!("{} · UTC", long_date(at)))
                        .unwrap_or_else(|| "waiting for the first tick".into())
                }}
            </p>
            <p class="clock-count">"Events received: " <span data-testid="count">{received}</span></p>
            <h3 class="recent-title">"Recent ticks"</h3>
            <ol class="recent" data-testid="ticks">
                <For
                    each=move || recent.get()
                    key=|received| received.seq
                    children=|received| {
                        let (sent, datetime) = (received.tick.encode(), received.tick.encode());
                        view! {
                            <li data-ts=sent>
                                <time datetime=datetime>{time_of_day_millis(received.tick.0)}</time>
                            </li>
                        }
                    }
                />
            </ol>
        </section>
    }
}

// The human formats below are written out by hand rather than with `DateTime::format`: chrono's
// strftime machinery would add tens of kilobytes to the wasm bundle for three fixed layouts.

/// The time of day a person reads first, e.g. `17:30:01`.
fn time_of_day(instant: DateTime<Utc>) -> String {
    format!("{:02}:{:02}:{:02}", instant.hour(), instant.minute(), instant.second())
}

/// The time of day with milliseconds, e.g. `17:30:01.000`, for the list of recent ticks.
fn time_of_day_millis(instant: DateTime<Utc>) -> String {
    format!("{}.{:03}", time_of_day(instant), instant.timestamp_subsec_millis().min(999))
}

/// The calendar date in words, e.g. `Wednesday 25 November 2026`.
fn long_date(instant: DateTime<Utc>) -> String {
    const WEEKDAYS: [&str; 7] =
        ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    format!(
        "{} {} {} {}",
        WEEKDAYS[instant.weekday().num_days_from_monday() as usize],
        instant.day(),
        MONTHS[instant.month0() as usize],
        instant.year()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sample() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 17, 30, 1).unwrap() + chrono::Duration::milliseconds(7)
    }

    #[test]
    fn the_list_keeps_the_20_newest_ticks_newest_first() {
        let mut ticks = vec![];
        for seq in 1..=25 {
            remember(&mut ticks, ReceivedTick { seq, tick: Tick(sample()) });
        }

        let kept: Vec<u64> = ticks.iter().map(|received| received.seq).collect();
        assert_eq!(kept, (6..=25).rev().collect::<Vec<_>>());
    }

    #[test]
    fn human_formats_match_chronos_own_formatting() {
        let into_new_year = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap()
            + chrono::Duration::nanoseconds(1_500_000_000);
        for instant in [sample(), Utc.with_ymd_and_hms(2027, 1, 3, 0, 0, 0).unwrap(), into_new_year] {
            assert_eq!(time_of_day(instant), instant.format("%H:%M:%S").to_string());
            assert_eq!(long_date(instant), instant.format("%A %-d %B %Y").to_string());
        }
    }

    #[test]
    fn human_formats_read_naturally() {
        assert_eq!(time_of_day(sample()), "17:30:01");
        assert_eq!(time_of_day_millis(sample()), "17:30:01.007");
        assert_eq!(long_date(sample()), "Wednesday 25 November 2026");
    }
}
