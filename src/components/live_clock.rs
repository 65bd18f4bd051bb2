//! The live clock: the server's time as it arrives on `/remote`, with the most recent ticks.

use leptos::prelude::*;

use crate::tick;

/// How many recent ticks the list keeps; older ones fall off so the page's memory stays flat.
pub const RECENT_TICKS: usize = 20;

#[derive(Clone, Debug, PartialEq)]
pub struct Tick {
    /// Position in arrival order; the list's key, since two ticks may carry the same text.
    seq: u64,
    raw: String,
}

/// The ticks received so far: a count, and the most recent ones, newest first.
#[derive(Clone, Copy)]
pub struct ClockFeed {
    recent: RwSignal<Vec<Tick>>,
    received: RwSignal<u64>,
}

impl ClockFeed {
    pub fn new() -> Self {
        Self { recent: RwSignal::new(Vec::with_capacity(RECENT_TICKS)), received: RwSignal::new(0) }
    }

    /// Takes the data of one clock event.
    pub fn push(&self, raw: String) {
        let seq = self.received.get_untracked() + 1;
        self.received.set(seq);
        self.recent.update(|ticks| remember(ticks, Tick { seq, raw }));
    }
}

impl Default for ClockFeed {
    fn default() -> Self {
        Self::new()
    }
}

/// Puts `tick` first and forgets whatever falls past [`RECENT_TICKS`].
fn remember(ticks: &mut Vec<Tick>, tick: Tick) {
    ticks.insert(0, tick);
    ticks.truncate(RECENT_TICKS);
}

#[component]
pub fn LiveClock(feed: ClockFeed) -> impl IntoView {
    let ClockFeed { recent, received } = feed;
    let latest = move || recent.with(|ticks| ticks.first().and_then(|t| tick::decode(&t.raw)));

    view! {
        <section class="card clock" aria-labelledby="clock-title">
            <header class="card-header">
                <h2 id="clock-title">"Server clock"</h2>
            </header>
            <p class="clock-time" data-testid="latest">
                {move || latest().map(tick::time_of_day).unwrap_or_else(|| "--:--:--".into())}
            </p>
            <p class="clock-date">
                {move || {
                    latest()
                        .map(|t| format!("{} · UTC", tick::long_date(t)))
                        .unwrap_or_else(|| "waiting for the first tick".into())
                }}
            </p>
            <p class="clock-count">"Events received: " <span data-testid="count">{received}</span></p>
            <h3 class="recent-title">"Recent ticks"</h3>
            <ol class="recent" data-testid="ticks">
                <For
                    each=move || recent.get()
                    key=|t| t.seq
                    children=|t| {
                        let shown = tick::decode(&t.raw).map(tick::time_of_day_millis).unwrap_or_else(|| t.raw.clone());
                        view! { <li data-ts=t.raw.clone()><time datetime=t.raw.clone()>{shown}</time></li> }
                    }
                />
            </ol>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_keeps_the_20_newest_ticks_newest_first() {
        let mut ticks = vec![];
        for seq in 1..=25 {
            remember(&mut ticks, Tick { seq, raw: format!("tick {seq}") });
        }

        let kept: Vec<u64> = ticks.iter().map(|tick| tick.seq).collect();
        assert_eq!(kept, (6..=25).rev().collect::<Vec<_>>());
    }
}
