//! How many subscribers one instance holds, and what each one costs: the real `herald` binary
//! (release build) on loopback, N subscribers of one topic on raw sockets, events published one
//! at a time. The baseline is the same run with one subscriber, in the same process; the report
//! gives medians over the events and the ratio to the baseline.
//!
//! The subscribers run in this process, so they share the 2 cores with the server: the times
//! are what a client on the same machine sees, not the server's alone.
//!
//! `cargo bench --features ssr --bench capacity` (or `make bench-capacity`).

use std::time::{Duration, Instant};

use herald::testing::{median, millis, resident_kib, RunningBinary, PATIENCE, TOKEN};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::mpsc,
};

const EVENTS: usize = 30;
const CROWDS: [usize; 3] = [1, 1_000, 10_000];
/// How long to wait for every subscriber to get one event before calling it lost.
const DELIVERY_LIMIT: Duration = Duration::from_secs(30);

enum Report {
    Open,
    Received { event: usize, at: Instant },
}

#[derive(Clone, Copy)]
struct Measured {
    subscribers: usize,
    opened_in: Duration,
    kib_per_subscriber: f64,
    median_delivery: Duration,
    last_delivery: Duration,
}

#[tokio::main]
async fn main() {
    println!("{EVENTS} events of 100 B to N subscribers of one topic; medians over the events");
    println!(
        "{:>11}  {:>9}  {:>13}  {:>25}  {:>25}",
        "subscribers", "opened in", "RSS / sub", "publish → median arrival", "publish → last arrival"
    );
    let mut baseline: Option<Measured> = None;
    for subscribers in CROWDS {
        let measured = measure(subscribers).await;
        let base = *baseline.get_or_insert(measured);
        let ratio = |time: Duration, base: Duration| time.as_secs_f64() / base.as_secs_f64();
        println!(
            "{:>11}  {:>9}  {:>13}  {:>25}  {:>25}",
            measured.subscribers,
            format!("{:.2} s", measured.opened_in.as_secs_f64()),
            if subscribers == 1 { "-".to_owned() } else { format!("{:.1} KiB", measured.kib_per_subscriber) },
            format!(
                "{:.2} ms ({:.1}x)",
                millis(measured.median_delivery),
                ratio(measured.median_delivery, base.median_delivery)
            ),
            format!(
                "{:.2} ms ({:.1}x)",
                millis(measured.last_delivery),
                ratio(measured.last_delivery, base.last_delivery)
            ),
        );
    }
}

async fn measure(subscribers: usize) -> Measured {
    let server = RunningBinary::start(
        env!("CARGO_BIN_EXE_herald"),
        &[
            ("LEPTOS_SITE_ADDR", "127.0.0.1:0"),
            ("HERALD_PUBLISH_TOKEN", TOKEN),
            ("HERALD_MAX_SUBSCRIBERS", "20000"),
            // Every subscriber comes from 127.0.0.1.
            ("HERALD_MAX_STREAMS_PER_CLIENT", "20000"),
            // Each stream comes without a cookie, so each mints a session.
            ("HERALD_SESSION_MINT_RATE", "1000000"),
            ("RUST_LOG", "herald=info"),
        ],
    )
    .await;
    let pid = server.process.id().expect("a running server");
    let address = server.url.trim_start_matches("http://").to_owned();
    let idle_kib = resident_kib(pid);

    let started = Instant::now();
    let (reports, mut received) = mpsc::unbounded_channel();
    for _ in 0..subscribers {
        tokio::spawn(subscribe(address.clone(), reports.clone()));
    }
    drop(reports);
    for _ in 0..subscribers {
        match tokio::time::timeout(PATIENCE * 6, received.recv()).await {
            Ok(Some(Report::Open)) => {}
            _ => panic!("not every subscriber could open its stream"),
        }
    }
    let opened_in = started.elapsed();
    let kib_per_subscriber = resident_kib(pid).saturating_sub(idle_kib) as f64 / subscribers as f64;

    let http = reqwest::Client::new();
    let payload = "x".repeat(100);
    let (mut medians, mut lasts) = (Vec::new(), Vec::new());
    for event in 0..EVENTS {
        let sent = Instant::now();
        let response = http
            .post(format!("{}/publish", server.url))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({ "topic": "crowd", "data": payload }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let mut arrivals = Vec::with_capacity(subscribers);
        while arrivals.len() < subscribers {
            match tokio::time::timeout(DELIVERY_LIMIT, received.recv()).await {
                Ok(Some(Report::Received { event: got, at })) => {
                    assert_eq!(got, event, "events arrive once each, in order");
                    arrivals.push(at - sent);
                }
                _ => panic!("event {event} reached {} of {subscribers} subscribers", arrivals.len()),
            }
        }
        arrivals.sort();
        medians.push(arrivals[arrivals.len() / 2]);
        lasts.push(arrivals[arrivals.len() - 1]);
    }
    Measured {
        subscribers,
        opened_in,
        kib_per_subscriber,
        median_delivery: median(medians),
        last_delivery: median(lasts),
    }
}

/// One subscriber on a raw socket: reports when its stream is open, then each event it gets.
async fn subscribe(address: String, reports: mpsc::UnboundedSender<Report>) {
    let mut socket = TcpStream::connect(&address).await.expect("the server accepts");
    socket.write_all(b"GET /events?topic=crowd HTTP/1.1\r\nHost: herald\r\n\r\n").await.unwrap();
    let mut buffer = vec![0; 16 * 1024];
    let mut seen = Vec::new();
    while !seen.windows(7).any(|window| window == b"retry: ") {
        let read = socket.read(&mut buffer).await.unwrap();
        assert!(read > 0, "the server hung up: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buffer[..read]);
    }
    let _ = reports.send(Report::Open);
    // Counts `id: ` lines, the start of every relayed event, across reads that may split one.
    let mut events = 0;
    let mut carry = Vec::new();
    loop {
        let read = match socket.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        let at = Instant::now();
        carry.extend_from_slice(&buffer[..read]);
        let found = carry.windows(4).filter(|window| window == b"id: ").count();
        for _ in 0..found {
            if reports.send(Report::Received { event: events, at }).is_err() {
                return;
            }
            events += 1;
        }
        carry.drain(..carry.len().saturating_sub(3));
    }
}
