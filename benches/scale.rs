//! Issue #19's scale benchmark: 100,000 subscribers over six `herald` instances (release build)
//! on one throwaway `redis-server`, held by seven worker processes on their own loopback source
//! addresses (`loadgen::scale`), every event published on the first instance. Beside it, in the
//! same invocation, the baseline: one instance in memory with 10,000 subscribers from one worker,
//! the same events. Every figure comes with its ratio to the baseline's. Then the same 100,000
//! on Nchan: six nginx servers with two workers each, their channels in one throwaway Redis
//! (`nchan_use_redis`), compared with Herald's run.
//!
//! Prints the table and plots both runs' publish → arrival distributions to
//! `docs/bench/scale.svg`. A subscriber refused, an event lost, doubled or reordered, or an
//! instance that took Redis for unavailable fails the benchmark.
//!
//! `make bench-scale` (`cargo bench --features testing --bench scale`); needs `redis-server`
//! (`make setup-test` installs it) and about 3 GB of memory. A few minutes on 2 cores; it stops by
//! itself. `make test` runs its quick mode (`tests/load/scale.rs`).

use loadgen::scale::{run, ScaleBinaries, ScalePlan, ScaleReport, ScaleServer};
use plotters::prelude::*;

const PLOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/bench/scale.svg");

#[tokio::main]
async fn main() {
    let binaries = ScaleBinaries {
        herald: env!("CARGO_BIN_EXE_herald"),
        swarm_worker: env!("CARGO_BIN_EXE_swarm-worker"),
    };
    let mut reports = Vec::new();
    for plan in [ScalePlan::baseline(), ScalePlan::full()] {
        eprintln!("scale: {} subscribers over {} instance(s)…", plan.subscribers, plan.instances);
        let report =
            run(&plan, &binaries).await.unwrap_or_else(|problem| panic!("the run failed: {problem}"));
        reports.push(report);
    }
    let (baseline, full) = (&reports[0], &reports[1]);
    print_report(baseline, full);
    eprintln!("scale: the same on Nchan…");
    match run(&ScalePlan::nchan(), &binaries).await {
        Ok(nchan) => {
            print_nchan(full, &nchan);
            reports.push(nchan);
        }
        Err(problem) => {
            println!("\nNchan with 100,000 subscribers over six servers on Redis failed: {problem}")
        }
    }
    plot(&reports).expect("the plot is drawn");
    println!("wrote {PLOT}");
}

fn print_report(baseline: &ScaleReport, full: &ScaleReport) {
    let describe = |report: &ScaleReport| {
        let plan = &report.plan;
        format!(
            "{} subscribers, {} instance(s) {}, {} worker(s)",
            plan.subscribers,
            plan.instances,
            if plan.redis { "on Redis" } else { "in memory" },
            plan.workers
        )
    };
    println!("baseline: {}", describe(baseline));
    println!("scale:    {}", describe(full));
    println!(
        "{} events of 100 B published one at a time on the first instance, then {} in one batch\n",
        full.plan.events, full.plan.burst
    );
    print_side_by_side(("baseline", baseline), ("scale", full));
    for (index, (subscribers, kib)) in
        full.subscribers_per_instance.iter().zip(&full.kib_per_subscriber).enumerate()
    {
        println!("  instance {index}: {subscribers} subscribers, {kib:.2} KiB of PSS each");
    }
    if let (Some(cpu), Some(memory)) = (full.redis_cpu_seconds, full.redis_used_memory) {
        println!(
            "redis: {cpu:.2} s of CPU over the {} events and the burst, used_memory {:.1} MiB at the end",
            full.plan.events,
            memory as f64 / 1024.0 / 1024.0
        );
    }
    println!(
        "late Redis replies: {} publish(es) answered 503 and sent again with their keys; {} of {} instances logged a late reply",
        full.publish_retries, full.instances_with_late_replies, full.plan.instances
    );
    println!(
        "no subscriber refused, no event lost, doubled or reordered, no instance took Redis for unavailable"
    );
}

/// The figures of two runs in columns, and the second's over the first's.
fn print_side_by_side(
    (first_name, first): (&str, &ScaleReport),
    (second_name, second): (&str, &ScaleReport),
) {
    let ratio = format!("{second_name} / {first_name}");
    println!("{:<42} {first_name:>23} {second_name:>23} {ratio:>16}", "");
    let row = |what: &str, first: f64, second: f64, unit: &str| {
        println!("{what:<42} {first:>12.2} {unit:<10} {second:>12.2} {unit:<10} {:>15.2}x", second / first);
    };
    let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len() as f64;
    row("every stream open in", first.opened_in.as_secs_f64(), second.opened_in.as_secs_f64(), "s");
    row("publish → arrival p50", first.p50_ms, second.p50_ms, "ms");
    row("publish → arrival p99", first.p99_ms, second.p99_ms, "ms");
    row("publish → arrival max", first.max_ms, second.max_ms, "ms");
    row(
        "PSS per subscriber (mean of the instances)",
        mean(&first.kib_per_subscriber),
        mean(&second.kib_per_subscriber),
        "KiB",
    );
    row("burst: deliveries per second", first.burst_deliveries_per_s, second.burst_deliveries_per_s, "/s");
}

/// Nchan's figures beside Herald's at the same scale; a ratio below 1 is better for Herald.
fn print_nchan(herald: &ScaleReport, nchan: &ScaleReport) {
    println!();
    print_side_by_side(("Nchan", nchan), ("Herald", herald));
    if let (Some(cpu), Some(memory)) = (nchan.redis_cpu_seconds, nchan.redis_used_memory) {
        println!(
            "redis under Nchan: {cpu:.2} s of CPU over the events and the burst, used_memory {:.1} MiB",
            memory as f64 / 1024.0 / 1024.0
        );
    }
}

/// Every run's publish → arrival distributions: the percentile against the time, log scale.
fn plot(reports: &[ScaleReport]) -> Result<(), Box<dyn std::error::Error>> {
    let colours = [BLACK, RGBColor(0, 114, 178), RGBColor(213, 94, 0)];
    let highest = reports.iter().map(|report| report.max_ms).fold(1.0, f64::max);
    let lowest =
        reports.iter().flat_map(|report| report.percentiles_ms.first()).fold(f64::MAX, |a, &b| a.min(b));
    std::fs::create_dir_all(std::path::Path::new(PLOT).parent().expect("a directory"))?;
    let root = SVGBackend::new(PLOT, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("publish → arrival over every delivery", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((lowest.max(0.01) * 0.8..highest * 1.2).log_scale(), 0f64..100f64)?;
    chart.configure_mesh().x_desc("ms (log scale)").y_desc("percentile").draw()?;
    for (report, colour) in reports.iter().zip(colours) {
        let plan = &report.plan;
        let label = format!(
            "{}: {} subscribers, {} instance(s) {}",
            match plan.server {
                ScaleServer::Herald => "Herald",
                ScaleServer::Nchan => "Nchan",
            },
            plan.subscribers,
            plan.instances,
            if plan.redis { "on Redis" } else { "in memory" }
        );
        let points =
            report.percentiles_ms.iter().enumerate().map(|(percent, &ms)| (ms.max(0.01), percent as f64));
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}
