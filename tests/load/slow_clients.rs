//! Slow clients: subscribers that never read cost the others nothing and the server little.

use tokio::{io::AsyncWriteExt, net::TcpSocket, time::Instant};

use herald::testing::{median, next_event, resident_kib, RunningBinary, TOKEN};

use crate::ONE_AT_A_TIME;

const SLOW_CLIENTS: usize = 200;
const SAMPLES: usize = 60;

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_subscribers_that_never_read_do_not_slow_a_fast_one_or_grow_memory_unbounded() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let server = RunningBinary::start(
        env!("CARGO_BIN_EXE_herald"),
        &[
            ("LEPTOS_SITE_ADDR", "127.0.0.1:0"),
            ("HERALD_PUBLISH_TOKEN", TOKEN),
            ("HERALD_QUEUE_LEN", "32"),
            // Each stream comes without a cookie, so each mints a session.
            ("HERALD_SESSION_MINT_RATE", "1000000"),
            ("RUST_LOG", "herald=info"),
        ],
    )
    .await;
    let pid = server.process.id().unwrap();
    let http = reqwest::Client::new();
    let publish = |data: String| {
        http.post(format!("{}/publish", server.url))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({ "topic": "load", "data": data }))
            .send()
    };
    let response = http.get(format!("{}/events?topic=load", server.url)).send().await.unwrap();
    let mut fast = eventsource_stream::Eventsource::eventsource(response.bytes_stream());
    let payload = "x".repeat(8 * 1024);

    // Publish → delivered to the fast subscriber, one event at a time.
    let mut latency = async |rounds: usize| {
        let mut samples = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let sent = Instant::now();
            assert_eq!(publish(payload.clone()).await.unwrap().status(), 202);
            next_event(&mut fast).await;
            samples.push(sent.elapsed());
        }
        samples
    };
    let unloaded = median(latency(SAMPLES).await);
    let baseline_kib = resident_kib(pid);

    let address: std::net::SocketAddr = server.url.trim_start_matches("http://").parse().unwrap();
    let mut slow = Vec::with_capacity(SLOW_CLIENTS);
    for _ in 0..SLOW_CLIENTS {
        // A small receive window, as on a stalled mobile link: otherwise loopback's autotuned
        // buffers would soak up megabytes for each client before the server could notice.
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut socket = socket.connect(address).await.unwrap();
        socket.write_all(b"GET /events?topic=load HTTP/1.1\r\nHost: herald\r\n\r\n").await.unwrap();
        slow.push(socket);
    }
    // Enough to fill every slow client's socket buffers and queue many times over.
    let loaded = median(latency(SAMPLES * 10).await);
    let loaded_kib = resident_kib(pid);
    let metrics = http.get(format!("{}/metrics", server.url)).send().await.unwrap().text().await.unwrap();

    eprintln!(
        "slow clients: median latency {unloaded:?} unloaded, {loaded:?} with {SLOW_CLIENTS} stalled; \
         RSS {baseline_kib} KiB -> {loaded_kib} KiB"
    );
    assert!(loaded <= unloaded * 2, "latency went from {unloaded:?} to {loaded:?}");
    assert!(
        metrics.contains(&format!("\nherald_subscribers_lagged_total {SLOW_CLIENTS}\n")),
        "not every stalled subscriber was dropped: {metrics}"
    );
    // Per stalled client: its queue (32 × 8 KiB) plus what the kernel buffers; far less than the
    // 5 MB each was sent.
    let grown_kib = loaded_kib.saturating_sub(baseline_kib);
    assert!(grown_kib < 100 * 1024, "RSS grew by {grown_kib} KiB");
    drop(slow);
}
