//! Issue #11's comparison, reported: Herald against Nchan, the idiomatic axum server, the seed's
//! Flask design and the raw-write floor, one after another in this one invocation and under the
//! same load generator (`loadgen::compare`, whose quick mode `make test` runs).
//!
//! For every crowd size, each server gets N subscribers on raw loopback sockets and events of
//! 100 B published one at a time; then each gets a burst to 1,000 subscribers, the publisher
//! waiting only for each answer. Every figure comes with its ratio to Nchan's and to the floor's
//! from the same run. Prints the tables, writes them with the raw figures to
//! `target/bench/compare.json` (and `.txt`), and plots p99 and memory against N to
//! `docs/bench/compare.svg`. A run that loses an event fails the benchmark, after the report.
//!
//! `make bench-compare` (`cargo bench --features testing --bench compare`); needs nginx with Nchan
//! and the Flask venv (`make setup-test` installs both). About 9 minutes on 2 cores. With
//! `-- --quick` it runs the quick plan instead and writes its report to `target/bench/` only; with
//! `-- --replot` it measures nothing and redraws the text and the plot from the last JSON report.

use std::{fmt::Write as _, path::Path};

use loadgen::compare::{run, Binaries, BurstRun, Comparison, LatencyRun, Plan, System};
use plotters::prelude::*;
use serde_json::{json, Value};

/// Where the report goes: the JSON, the text and the plot.
struct Outputs {
    json: &'static str,
    text: &'static str,
    plot: &'static str,
}

const FULL: Outputs = Outputs {
    json: concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench/compare.json"),
    text: concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench/compare.txt"),
    plot: concat!(env!("CARGO_MANIFEST_DIR"), "/docs/bench/compare.svg"),
};
/// The quick plan's report, kept away from the documented one.
const QUICK: Outputs = Outputs {
    json: concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench/compare-quick.json"),
    text: concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench/compare-quick.txt"),
    plot: concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench/compare-quick.svg"),
};
/// The crowd the issue asks to extrapolate to.
const LARGE_HOST_CROWD: f64 = 100_000.0;

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    let quick = arguments.iter().any(|argument| argument == "--quick");
    let outputs = if quick { QUICK } else { FULL };
    let comparison = if arguments.iter().any(|argument| argument == "--replot") {
        let json = std::fs::read_to_string(outputs.json).expect("a report of an earlier run to redraw");
        serde_json::from_str(&json).expect("a report this benchmark wrote")
    } else {
        let started = std::time::Instant::now();
        let binaries = Binaries {
            herald: env!("CARGO_BIN_EXE_herald"),
            axum_sse: env!("CARGO_BIN_EXE_peer-axum-sse"),
            raw_floor: env!("CARGO_BIN_EXE_peer-raw-floor"),
        };
        let plan = if quick { Plan::quick() } else { Plan::full() };
        let comparison = run(&plan, &System::ALL, &binaries);
        println!("the comparison took {:.0} s", started.elapsed().as_secs_f64());
        let json = serde_json::to_string_pretty(&json_report(&comparison)).expect("serialisable figures");
        write(outputs.json, &json);
        println!("wrote {}", outputs.json);
        comparison
    };

    let report = text_report(&comparison);
    print!("{report}");
    write(outputs.text, &report);
    plot(&comparison, outputs.plot).expect("the plot is drawn");
    println!("wrote {} and {}", outputs.text, outputs.plot);

    let failures = comparison.failures();
    if !failures.is_empty() {
        eprintln!("FAILED: these runs lost, doubled or reordered events, or could not connect everyone:");
        for failure in &failures {
            eprintln!("  {failure}");
        }
        std::process::exit(1);
    }
}

fn write(path: &str, contents: &str) {
    std::fs::create_dir_all(Path::new(path).parent().expect("a directory")).expect("a writable directory");
    std::fs::write(path, contents).unwrap_or_else(|err| panic!("cannot write {path}: {err}"));
}

/// The latency run of `system` with `subscribers`, if it succeeded.
fn latency_of(comparison: &Comparison, system: System, subscribers: usize) -> Option<&LatencyRun> {
    comparison
        .latency
        .iter()
        .find(|run| run.system == system && run.subscribers == subscribers && run.figures.is_some())
}

fn burst_of(comparison: &Comparison, system: System) -> Option<&BurstRun> {
    comparison.burst.iter().find(|run| run.system == system && run.figures.is_some())
}

/// The table's heading for each of [`latency_values`].
const LATENCY_COLUMNS: [&str; 6] =
    ["KiB / subscriber", "KiB before events", "p50 ms", "p99 ms", "max ms", "CPU us / delivery"];

/// The latency figures by name, as the table shows them (memory in KiB), for the table and the
/// ratios in the JSON alike.
fn latency_values(run: &LatencyRun) -> Option<[(&'static str, f64); 6]> {
    let figures = run.figures?;
    Some([
        ("kib_per_subscriber", figures.bytes_per_subscriber / 1024.0),
        ("kib_per_subscriber_before_events", figures.bytes_per_connected_subscriber / 1024.0),
        ("p50_ms", figures.p50_ms),
        ("p99_ms", figures.p99_ms),
        ("max_ms", figures.max_ms),
        ("cpu_us_per_delivery", figures.cpu_us_per_delivery),
    ])
}

fn burst_values(run: &BurstRun) -> Option<[(&'static str, f64); 2]> {
    let figures = run.figures?;
    Some([
        ("deliveries_per_s", figures.deliveries_per_s),
        ("cpu_us_per_delivery", figures.cpu_us_per_delivery),
    ])
}

/// `value / reference`, or nothing where the reference is missing or zero (the floor's CPU time
/// can be below one 10 ms tick).
fn ratio(value: f64, reference: Option<f64>) -> Option<f64> {
    reference.filter(|reference| *reference > 0.0).map(|reference| value / reference)
}

/// One table cell: the figure, then its ratio to Nchan's and to the floor's.
fn cell(value: f64, decimals: usize, to_nchan: Option<f64>, to_floor: Option<f64>) -> String {
    let show = |ratio: Option<f64>| match ratio {
        Some(ratio) if ratio >= 100.0 => format!("{ratio:.0}"),
        Some(ratio) => format!("{ratio:.2}"),
        None => "-".to_owned(),
    };
    format!("{value:.decimals$} ({}|{})", show(to_nchan), show(to_floor))
}

fn text_report(comparison: &Comparison) -> String {
    let plan = &comparison.plan;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nEach cell: the figure, then (its ratio to Nchan's | to the raw-write floor's) in the same run;\n\
         a ratio below 1 is better, except for deliveries / s. Latency runs: events of 100 B published\n\
         one at a time; publish -> arrival percentiles over the subscribers of each event, medians over\n\
         the events, then over {} passes (the systems taking turns). Memory: PSS added per subscriber\n\
         over all of the server's processes, once every subscriber has had one event, and before any.\n\
         CPU: the server's user + system time per delivery.",
        plan.passes
    );
    for &subscribers in &plan.crowds {
        let events =
            comparison.latency.iter().find(|run| run.subscribers == subscribers).map_or(0, |run| run.events);
        let _ = writeln!(out, "\n{subscribers} subscribers, {events} events");
        let _ = write!(out, "{:<16}", "");
        for column in LATENCY_COLUMNS {
            let _ = write!(out, "{column:>22}");
        }
        let _ = writeln!(out);
        let reference = |system| latency_of(comparison, system, subscribers).and_then(latency_values);
        let (nchan, floor) = (reference(System::Nchan), reference(System::RawFloor));
        for system in System::ALL {
            let run =
                comparison.latency.iter().find(|run| run.system == system && run.subscribers == subscribers);
            let _ = write!(out, "{:<16}", system.label());
            match run.and_then(latency_values) {
                Some(values) => {
                    for (index, (_, value)) in values.into_iter().enumerate() {
                        let to = |of: Option<[(&str, f64); 6]>| ratio(value, of.map(|of| of[index].1));
                        let _ = write!(out, "{:>22}", cell(value, 2, to(nchan), to(floor)));
                    }
                    let _ = writeln!(out);
                }
                None => {
                    let failure =
                        run.and_then(|run| run.failure.clone()).unwrap_or_else(|| "not run".to_owned());
                    let _ = writeln!(out, "  FAILED: {failure}");
                }
            }
        }
    }

    let _ = writeln!(
        out,
        "\nBurst: {} rounds of {} events to {} subscribers, each publish once the previous one is\n\
         answered; medians over the rounds, then over the passes.",
        plan.burst_rounds, plan.burst_events, plan.burst_subscribers
    );
    let _ = writeln!(out, "{:<16}{:>26}{:>22}", "", "deliveries / s", "CPU us / delivery");
    let reference = |system| burst_of(comparison, system).and_then(burst_values);
    let (nchan, floor) = (reference(System::Nchan), reference(System::RawFloor));
    for system in System::ALL {
        let run = comparison.burst.iter().find(|run| run.system == system);
        let _ = write!(out, "{:<16}", system.label());
        match run.and_then(burst_values) {
            Some(values) => {
                let to = |of: Option<[(&str, f64); 2]>, index: usize| {
                    ratio(values[index].1, of.map(|of| of[index].1))
                };
                let _ = writeln!(
                    out,
                    "{:>26}{:>22}",
                    cell(values[0].1, 0, to(nchan, 0), to(floor, 0)),
                    cell(values[1].1, 2, to(nchan, 1), to(floor, 1))
                );
            }
            None => {
                let failure = run.and_then(|run| run.failure.clone()).unwrap_or_else(|| "not run".to_owned());
                let _ = writeln!(out, "  FAILED: {failure}");
            }
        }
    }

    if let Some(&largest) = plan.crowds.last() {
        let _ = writeln!(
            out,
            "\n{LARGE_HOST_CROWD:.0} subscribers on a bigger host, from the cost per subscriber at {largest}:\n\
             memory, and the CPU one event costs (split over the cores the server uses)"
        );
        for system in System::ALL {
            if let Some(figures) = latency_of(comparison, system, largest).and_then(|run| run.figures) {
                let _ = writeln!(
                    out,
                    "{:<16}{:>10.0} MB{:>10.0} ms of CPU per event",
                    system.label(),
                    figures.bytes_per_subscriber * LARGE_HOST_CROWD / 1e6,
                    figures.cpu_us_per_delivery * LARGE_HOST_CROWD / 1e3
                );
            }
        }
    }
    out
}

/// The comparison's own figures, each successful run with its ratios to Nchan and the floor.
fn json_report(comparison: &Comparison) -> Value {
    let mut report = serde_json::to_value(comparison).expect("serialisable figures");
    let ratios = |values: &[(&str, f64)], reference: Option<&[(&str, f64)]>| -> Value {
        reference
            .map(|reference| {
                values
                    .iter()
                    .zip(reference)
                    .map(|((name, value), (_, of))| (name.to_string(), json!(ratio(*value, Some(*of)))))
                    .collect::<serde_json::Map<_, _>>()
                    .into()
            })
            .unwrap_or(Value::Null)
    };
    for (index, run) in comparison.latency.iter().enumerate() {
        let Some(values) = latency_values(run) else { continue };
        let of = |system| latency_of(comparison, system, run.subscribers).and_then(latency_values);
        report["latency"][index]["vs_nchan"] = ratios(&values, of(System::Nchan).as_ref().map(|of| &of[..]));
        report["latency"][index]["vs_floor"] =
            ratios(&values, of(System::RawFloor).as_ref().map(|of| &of[..]));
    }
    for (index, run) in comparison.burst.iter().enumerate() {
        let Some(values) = burst_values(run) else { continue };
        let of = |system| burst_of(comparison, system).and_then(burst_values);
        report["burst"][index]["vs_nchan"] = ratios(&values, of(System::Nchan).as_ref().map(|of| &of[..]));
        report["burst"][index]["vs_floor"] = ratios(&values, of(System::RawFloor).as_ref().map(|of| &of[..]));
    }
    report["measured_at"] = json!(chrono::Utc::now().to_rfc3339());
    report["cores"] = json!(std::thread::available_parallelism().map_or(0, usize::from));
    report
}

/// p99 (log scale) and KiB per subscriber against N, a line per system.
fn plot(comparison: &Comparison, path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let colours =
        [BLACK, RGBColor(0, 114, 178), RGBColor(213, 94, 0), RGBColor(0, 158, 115), RGBColor(204, 121, 167)];
    let series = |pick: fn(&LatencyRun) -> Option<f64>| -> Vec<(System, Vec<(f64, f64)>)> {
        System::ALL
            .iter()
            .map(|&system| {
                let points = comparison
                    .latency
                    .iter()
                    .filter(|run| run.system == system)
                    .filter_map(|run| Some((run.subscribers as f64, pick(run)?)))
                    .collect();
                (system, points)
            })
            .collect()
    };
    let p99 = series(|run| Some(run.figures?.p99_ms));
    let memory = series(|run| Some(run.figures?.bytes_per_subscriber / 1024.0));
    let largest_crowd = comparison.plan.crowds.iter().copied().max().unwrap_or(1) as f64 * 1.05;
    let extent = |series: &[(System, Vec<(f64, f64)>)]| {
        let values = series.iter().flat_map(|(_, points)| points.iter().map(|point| point.1));
        values.fold((f64::MAX, 0f64), |(low, high), value| (low.min(value), high.max(value)))
    };

    std::fs::create_dir_all(Path::new(path).parent().expect("a directory"))?;
    let root = SVGBackend::new(path, (1200, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(600);

    let (low, high) = extent(&p99);
    let mut chart = ChartBuilder::on(&left)
        .caption("p99 publish → arrival (ms, log scale)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            0f64..largest_crowd,
            (whole_decade_below(low)..whole_decade_above(high)).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("subscribers")
        .x_label_formatter(&|n| format!("{n:.0}"))
        .y_desc("ms")
        .y_label_formatter(&|&ms| if ms >= 10.0 { format!("{ms:.0}") } else { format!("{ms:.1}") })
        .draw()?;
    // p99 grows with N, so the lower right is empty.
    draw_lines(&mut chart, &p99, &colours, SeriesLabelPosition::LowerRight)?;

    let (_, high) = extent(&memory);
    let mut chart = ChartBuilder::on(&right)
        .caption("memory per subscriber (KiB of PSS)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        // Room above the lines for the legend: memory per subscriber is flat in N.
        .build_cartesian_2d(0f64..largest_crowd, 0f64..high * 1.7)?;
    chart
        .configure_mesh()
        .x_desc("subscribers")
        .x_label_formatter(&|n| format!("{n:.0}"))
        .y_desc("KiB")
        .y_label_formatter(&|kib| format!("{kib:.0}"))
        .draw()?;
    draw_lines(&mut chart, &memory, &colours, SeriesLabelPosition::UpperRight)?;

    root.present()?;
    Ok(())
}

/// The power of ten at or below `value`: a log axis labels the decades it spans.
fn whole_decade_below(value: f64) -> f64 {
    10f64.powf(value.max(0.01).log10().floor())
}

fn whole_decade_above(value: f64) -> f64 {
    10f64.powf(value.max(0.01).log10().ceil())
}

fn draw_lines<'a, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    series: &[(System, Vec<(f64, f64)>)],
    colours: &[RGBColor],
    legend: SeriesLabelPosition,
) -> Result<(), Box<dyn std::error::Error>> {
    for ((system, points), &colour) in series.iter().zip(colours) {
        chart
            .draw_series(LineSeries::new(points.iter().copied(), colour.stroke_width(2)))?
            .label(system.label())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        chart.draw_series(points.iter().map(|&point| Circle::new(point, 3, colour.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(legend)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .draw()?;
    Ok(())
}
