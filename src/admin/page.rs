//! The operator page's body, which the browser hydrates: it follows `/admin/stats`, keeps the
//! last two minutes of frames, and charts them; tables list the instances and the busiest topics.

use std::collections::{BTreeSet, VecDeque};

use leptos::prelude::*;

use super::{
    chart::{LineChart, Series, WINDOW},
    frame::{AdminEvent, AdminFrame, InstanceRow, TopicRow},
};
use crate::{components::connection_status::ConnectionBadge, stream::use_events};

/// The frames on screen, oldest first.
type Frames = RwSignal<VecDeque<AdminFrame>>;

/// What a chart draws of one frame: each line's name and value.
type Pick = fn(&AdminFrame) -> Vec<(String, Option<f64>)>;

#[component]
pub(crate) fn AdminApp() -> impl IntoView {
    let frames: Frames = RwSignal::new(VecDeque::with_capacity(WINDOW));
    let state = use_events(
        || async { "/admin/stats".to_owned() },
        move |event| match event {
            AdminEvent::Stats(frame) => frames.update(|frames| {
                if frames.len() == WINDOW {
                    frames.pop_front();
                }
                frames.push_back(*frame);
            }),
            // The stream ends next; the browser reconnects to another instance, or this one
            // when it is back.
            AdminEvent::Shutdown(_) => {}
        },
    );
    let latest = move || frames.with(|frames| frames.back().cloned().unwrap_or_default());
    let chart = |pick: Pick| series(frames, pick);

    view! {
        <main class="admin">
            <header class="masthead">
                <div>
                    <h1>"Herald operator"</h1>
                    <p class="tagline">
                        {move || {
                            let frame = latest();
                            format!("{} instance(s) on {}, updated every second.", frame.instances.len(), backend_name(&frame))
                        }}
                    </p>
                </div>
                <div class="masthead-side">
                    <ConnectionBadge state/>
                    <form method="post" action="/admin/logout" class="sign-out">
                        <button type="submit">"Sign out"</button>
                    </form>
                </div>
            </header>
            <section class="charts" aria-label="Live charts">
                <LineChart name="instances" title="Instances" unit="" series=chart(|frame| vec![
                    ("instances".into(), Some(frame.instances.len() as f64)),
                    ("Redis up".into(), (frame.backend == "redis")
                        .then(|| frame.instances.iter().filter(|row| row.redis_up == Some(true)).count() as f64)),
                ])/>
                <LineChart name="connections" title="Connections and streams" unit="" series=chart(|frame| {
                    let mut lines = vec![("connections".to_owned(), Some(frame.connections as f64))];
                    lines.extend(frame.streams_by_route.iter().map(|(route, open)| (route.clone(), Some(*open as f64))));
                    lines
                })/>
                <LineChart name="subscribers" title="Subscribers and topics" unit="" series=chart(|frame| vec![
                    ("subscribers".into(), Some(frame.subscribers as f64)),
                    ("topics".into(), Some(frame.topics as f64)),
                ])/>
                <LineChart name="published" title="Events published" unit="/s" series=chart(|frame| vec![
                    ("published".into(), Some(frame.published_per_s)),
                ])/>
                <LineChart name="delivered" title="Events delivered" unit="/s" series=chart(|frame| vec![
                    ("delivered".into(), Some(frame.delivered_per_s)),
                ])/>
                <LineChart name="latency" title="Publish → write, last 10 s" unit=" ms" series=chart(|frame| vec![
                    ("p50".into(), frame.latency_p50_ms),
                    ("p99".into(), frame.latency_p99_ms),
                ])/>
                <LineChart name="trouble" title="Resets, lagged and rejections" unit="/s" series=chart(|frame| {
                    let mut lines = vec![("lagged".to_owned(), Some(frame.lagged_per_s))];
                    lines.extend(frame.resets_per_s.iter().map(|(reason, rate)| (format!("reset {reason}"), Some(*rate))));
                    lines.extend(frame.rejections_per_s.iter().map(|(status, rate)| (format!("HTTP {status}"), Some(*rate))));
                    lines
                })/>
                <LineChart name="reader-lag" title="Redis reader lag" unit=" ms" series=chart(|frame| {
                    frame.instances.iter().filter_map(|row| Some((short(&row.id), Some(row.reader_lag_ms? as f64)))).collect()
                })/>
                <LineChart name="memory" title="Memory per instance" unit=" MiB" series=chart(|frame| {
                    frame.instances.iter().map(|row| {
                        (short(&row.id), row.memory_bytes.map(|bytes| bytes as f64 / (1024.0 * 1024.0)))
                    }).collect()
                })/>
            </section>
            <section class="tables">
                <InstanceTable rows=Signal::derive(move || latest().instances)/>
                <TopicTable name="by-subscribers" title="Busiest topics by subscribers"
                    rows=Signal::derive(move || latest().top_by_subscribers)/>
                <TopicTable name="by-rate" title="Busiest topics by events"
                    rows=Signal::derive(move || latest().top_by_rate)/>
            </section>
        </main>
    }
}

/// The lines a chart draws from every frame on screen: `pick` names each line's value in one
/// frame. A line that appears later (a new instance, a new status) has gaps before it.
fn series(frames: Frames, pick: Pick) -> Signal<Vec<Series>> {
    Signal::derive(move || {
        frames.with(|frames| {
            let picked: Vec<Vec<(String, Option<f64>)>> = frames.iter().map(pick).collect();
            let mut names: Vec<String> = vec![];
            let mut seen = BTreeSet::new();
            for (name, _) in picked.iter().flatten() {
                if seen.insert(name.clone()) {
                    names.push(name.clone());
                }
            }
            names
                .into_iter()
                .map(|name| {
                    let points = picked
                        .iter()
                        .map(|lines| {
                            lines.iter().find(|(line, _)| *line == name).and_then(|(_, value)| *value)
                        })
                        .collect();
                    Series::new(name, points)
                })
                .collect()
        })
    })
}

fn backend_name(frame: &AdminFrame) -> &'static str {
    match frame.backend.as_str() {
        "redis" => "Redis",
        "memory" => "memory",
        _ => "…",
    }
}

/// An instance's id as the charts label it.
fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

#[component]
fn InstanceTable(rows: Signal<Vec<InstanceRow>>) -> impl IntoView {
    let cell = |value: Option<String>| value.unwrap_or_else(|| "–".to_owned());
    view! {
        <figure class="table-card" data-table="instances">
            <figcaption>"Instances"</figcaption>
            <table>
                <thead>
                    <tr>
                        <th scope="col">"Instance"</th>
                        <th scope="col">"Memory"</th>
                        <th scope="col">"Connections"</th>
                        <th scope="col">"Subscribers"</th>
                        <th scope="col">"Published/s"</th>
                        <th scope="col">"Delivered/s"</th>
                        <th scope="col">"Redis"</th>
                    </tr>
                </thead>
                <tbody>
                    {move || rows.get().into_iter().map(|row| view! {
                        <tr>
                            <th scope="row">{short(&row.id)}</th>
                            <td>{cell(row.memory_bytes.map(|bytes| format!("{:.1} MiB", bytes as f64 / 1048576.0)))}</td>
                            <td>{row.connections}</td>
                            <td>{row.subscribers}</td>
                            <td>{super::chart::figure(row.published_per_s)}</td>
                            <td>{super::chart::figure(row.delivered_per_s)}</td>
                            <td>{cell(row.redis_up.map(|up| match (up, row.reader_lag_ms) {
                                (true, Some(lag)) => format!("up, {lag} ms behind"),
                                (true, None) => "up".to_owned(),
                                (false, _) => "down".to_owned(),
                            }))}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </figure>
    }
}

#[component]
fn TopicTable(name: &'static str, title: &'static str, rows: Signal<Vec<TopicRow>>) -> impl IntoView {
    view! {
        <figure class="table-card" data-table=name>
            <figcaption>{title}</figcaption>
            <table>
                <thead>
                    <tr>
                        <th scope="col">"Topic"</th>
                        <th scope="col">"Subscribers"</th>
                        <th scope="col">"Events, last minute"</th>
                    </tr>
                </thead>
                <tbody>
                    {move || {
                        let rows = rows.get();
                        if rows.is_empty() {
                            return view! { <tr><td colspan="3" class="empty">"No busy topic yet."</td></tr> }.into_any();
                        }
                        rows.into_iter().map(|row| view! {
                            <tr>
                                <th scope="row">{row.topic}</th>
                                <td>{row.subscribers}</td>
                                <td>{row.events_last_minute}</td>
                            </tr>
                        }).collect_view().into_any()
                    }}
                </tbody>
            </table>
        </figure>
    }
}
