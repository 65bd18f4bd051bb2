//! `GET /metrics`, read by an independent Prometheus text parser.

use prometheus_parse::{Sample, Scrape, Value};

use crate::helpers::{next_event, spawn_app, TestApp};

async fn scrape(app: &TestApp) -> Scrape {
    let text = app.get("/metrics").await.text().await.unwrap();
    Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).unwrap_or_else(|err| panic!("{err}: {text}"))
}

/// The value of the sample `name` whose labels include `labels` (0 when there is none yet).
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let matches = |sample: &&Sample| {
        sample.metric == name && labels.iter().all(|(key, value)| sample.labels.get(key) == Some(*value))
    };
    match scrape.samples.iter().find(matches).map(|sample| &sample.value) {
        Some(Value::Counter(value) | Value::Gauge(value) | Value::Untyped(value)) => *value,
        Some(other) => panic!("{name} is not a number: {other:?}"),
        None => 0.0,
    }
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_move_with_a_subscribe_a_publish_and_a_refusal() {
    let app = spawn_app().await;
    let before = scrape(&app).await;
    assert_eq!(value(&before, "herald_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);

    let mut events = app.subscribe("/events?topic=orders").await;
    app.publish_ok("orders", "placed").await;
    next_event(&mut events).await;
    assert_eq!(app.get("/events").await.status(), 400);
    let after = scrape(&app).await;

    let moved =
        |name: &str, labels: &[(&str, &str)]| value(&after, name, labels) - value(&before, name, labels);
    assert_eq!(moved("herald_events_published_total", &[]), 1.0);
    assert_eq!(moved("herald_events_published_by_class_total", &[("class", "public")]), 1.0);
    assert_eq!(moved("herald_events_delivered_total", &[("class", "public")]), 1.0);
    assert_eq!(moved("herald_publish_to_write_seconds_count", &[]), 1.0);
    assert!(moved("herald_publish_to_write_seconds_sum", &[]) > 0.0);
    assert_eq!(value(&after, "herald_streams_open", &[]), 1.0);
    assert_eq!(value(&after, "herald_streams_open_by_route", &[("route", "/events")]), 1.0);
    assert_eq!(moved("herald_rejections_total", &[("status", "400")]), 1.0);
    assert!(moved("herald_connections_opened_total", &[]) >= 1.0);
    assert!(
        after.samples.iter().all(|sample| !sample.labels.values().any(|label| label.starts_with("session."))),
        "a private topic leaked into a label"
    );
}
