//! A line chart drawn as SVG by the component itself: each series a path over the last
//! [`WINDOW`] frames (newest on the right), scaled to a round top. No charting library: this
//! file is what the page needs of one.

use leptos::prelude::*;

/// How many frames a chart shows: two minutes at one a second.
pub(crate) const WINDOW: usize = 120;

/// The drawing's box; the SVG stretches it to the card, its lines keep their width.
const WIDTH: f64 = 300.0;
const HEIGHT: f64 = 100.0;

/// One line: its name and its values, oldest first; `None` leaves a gap.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Series {
    pub name: String,
    pub points: Vec<Option<f64>>,
}

impl Series {
    pub(crate) fn new(name: impl Into<String>, points: Vec<Option<f64>>) -> Self {
        Self { name: name.into(), points }
    }

    fn latest(&self) -> Option<f64> {
        self.points.last().copied().flatten()
    }
}

/// The smallest 1, 2 or 5 × 10ⁿ at or above `max` (1 when everything is 0), so that the
/// scale reads at a glance and does not jitter with every frame.
pub(crate) fn round_top(max: f64) -> f64 {
    if max.is_nan() || max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|step| step * magnitude)
        .find(|top| *top >= max)
        .unwrap_or(10.0 * magnitude)
}

/// The SVG path of `points` in the chart's box, the last point at the right edge and each
/// earlier one a `WINDOW`th further left; `None` breaks the line.
pub(crate) fn path(points: &[Option<f64>], top: f64) -> String {
    let step = WIDTH / (WINDOW - 1) as f64;
    let first_x = WIDTH - step * (points.len().saturating_sub(1)) as f64;
    let mut d = String::new();
    let mut drawing = false;
    for (i, point) in points.iter().enumerate() {
        match point {
            Some(value) => {
                let x = first_x + step * i as f64;
                let y = HEIGHT - (value / top).clamp(0.0, 1.0) * HEIGHT;
                d.push_str(&format!("{}{x:.1},{y:.1}", if drawing { " L" } else { " M" }));
                drawing = true;
            }
            None => drawing = false,
        }
    }
    d.trim_start().to_owned()
}

/// A value as the legend shows it: whole numbers whole, small ones with up to two decimals,
/// large ones in k or M.
pub(crate) fn figure(value: f64) -> String {
    match value.abs() {
        v if v >= 1e6 => format!("{:.1}M", value / 1e6),
        v if v >= 1e4 => format!("{:.1}k", value / 1e3),
        v if v.fract() == 0.0 => format!("{value:.0}"),
        v if v >= 10.0 => format!("{value:.1}"),
        _ => format!("{value:.2}"),
    }
}

/// A card with a title, the chart, and a legend with each series' latest value. `name` is the
/// chart's stable handle (`data-chart`), for tests and for styling.
#[component]
pub(crate) fn LineChart(
    name: &'static str,
    title: &'static str,
    /// After each value in the legend: ` ms`, `/s`, ` MiB`.
    unit: &'static str,
    series: Signal<Vec<Series>>,
) -> impl IntoView {
    let top = Memo::new(move |_| {
        let max = series.with(|all| {
            all.iter().flat_map(|line| line.points.iter().flatten().copied()).fold(0.0, f64::max)
        });
        round_top(max)
    });
    let lines = move || {
        series
            .get()
            .into_iter()
            .enumerate()
            .map(|(index, line)| {
                let d = path(&line.points, top.get());
                view! { <path class=format!("line line-{}", index % 6) d=d data-series=line.name.clone()></path> }
            })
            .collect_view()
    };
    let legend = move || {
        let series = series.get();
        if series.is_empty() {
            return view! { <li class="legend-empty">"Nothing to show yet."</li> }.into_any();
        }
        series
            .into_iter()
            .enumerate()
            .map(|(index, line)| {
                let latest = line.latest();
                view! {
                    <li class=format!("swatch-{}", index % 6) data-series=line.name.clone()
                        data-latest=latest.map(|value| value.to_string()).unwrap_or_default()>
                        <span class="legend-name">{line.name.clone()}</span>
                        " "
                        <b>{latest.map_or_else(|| "–".to_owned(), |value| format!("{}{unit}", figure(value)))}</b>
                    </li>
                }
            })
            .collect_view()
            .into_any()
    };
    view! {
        <figure class="chart" data-chart=name>
            <figcaption>{title}</figcaption>
            <div class="chart-plot">
                <span class="chart-top">{move || format!("{}{unit}", figure(top.get()))}</span>
                <svg viewBox=format!("0 0 {WIDTH} {HEIGHT}") preserveAspectRatio="none" aria-hidden="true">
                    <line class="chart-grid" x1="0" y1="50" x2=WIDTH.to_string() y2="50"></line>
                    {lines}
                </svg>
            </div>
            <ul class="legend">{legend}</ul>
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_is_the_next_round_figure_and_an_empty_chart_reads_one() {
        let tops: Vec<f64> =
            [0.0, 0.3, 1.0, 1.1, 3.0, 7.0, 42.0, 1999.0].into_iter().map(round_top).collect();
        assert_eq!(tops, vec![1.0, 0.5, 1.0, 2.0, 5.0, 10.0, 50.0, 2000.0]);
        assert_eq!(round_top(f64::NAN), 1.0);
    }

    #[test]
    fn the_newest_point_is_at_the_right_edge_and_a_gap_breaks_the_line() {
        let d = path(&[Some(0.0), Some(50.0), None, Some(100.0), Some(200.0)], 100.0);
        let step = WIDTH / (WINDOW - 1) as f64;
        let x = |from_right: f64| format!("{:.1}", WIDTH - step * from_right);
        // Values above the top are drawn at the top; the line starts again after the gap.
        assert_eq!(d, format!("M{},100.0 L{},50.0 M{},0.0 L300.0,0.0", x(4.0), x(3.0), x(1.0)));
        assert_eq!(path(&[], 1.0), "");
        assert_eq!(path(&[None, None], 1.0), "");
    }

    #[test]
    fn figures_read_as_a_person_would_write_them() {
        let figures: Vec<String> =
            [0.0, 3.0, 0.126, 12.34, 999.0, 12_345.0, 2_500_000.0].into_iter().map(figure).collect();
        assert_eq!(figures, ["0", "3", "0.13", "12.3", "999", "12.3k", "2.5M"]);
    }
}
