//! Churn: many short-lived subscribers leave nothing behind, in the real binary.

use std::time::Duration;

use futures::{stream, StreamExt};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use herald::testing::{gauge, resident_kib, RunningBinary};

use crate::ONE_AT_A_TIME;

const CYCLES: usize = 20_000;
const AT_ONCE: usize = 64;

/// Connects, waits for the stream to open (its `retry:` hint), and hangs up.
async fn connect_and_leave(address: &str) {
    let mut socket = TcpStream::connect(address).await.expect("the server accepts");
    socket.write_all(b"GET /events?topic=churn HTTP/1.1\r\nHost: herald\r\n\r\n").await.unwrap();
    let mut seen = Vec::with_capacity(512);
    let mut buffer = [0u8; 512];
    while !seen.windows(7).any(|window| window == b"retry: ") {
        let read = socket.read(&mut buffer).await.expect("the stream opens");
        assert!(read > 0, "the server hung up first: {:?}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buffer[..read]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_thousand_connect_disconnect_cycles_leave_no_subscriber_and_no_growth() {
    // A short keep-alive makes the server notice hung-up clients quickly: it learns of a closed
    // connection when it next writes to it.
    let _alone = ONE_AT_A_TIME.lock().await;
    let server = RunningBinary::start(
        env!("CARGO_BIN_EXE_herald"),
        &[
            ("LEPTOS_SITE_ADDR", "127.0.0.1:0"),
            ("HERALD_KEEP_ALIVE", "100ms"),
            // Every cycle comes from 127.0.0.1, and a hung-up stream counts until the next
            // keep-alive finds it gone: the per-client cap is not what this test measures.
            ("HERALD_MAX_STREAMS_PER_CLIENT", "20000"),
            // Each stream comes without a cookie, so each mints a session.
            ("HERALD_SESSION_MINT_RATE", "1000000"),
            ("RUST_LOG", "herald=info"),
            // One malloc arena: with one per thread, glibc's RSS steps by up to 10% as arenas
            // grow, which would hide a leak or fake one. A leak grows with cycles either way.
            ("MALLOC_ARENA_MAX", "1"),
        ],
    )
    .await;
    let address = server.url.trim_start_matches("http://").to_owned();
    let metrics = format!("{}/metrics", server.url);
    let pid = server.process.id().expect("a running server");
    let churn = |cycles: usize| {
        let address = address.clone();
        stream::iter(0..cycles).for_each_concurrent(AT_ONCE, move |_| {
            let address = address.clone();
            async move { connect_and_leave(&address).await }
        })
    };

    // Warm up first, so that the baseline holds the allocator's high-water mark for this many
    // connections at once: RSS climbs by up to 12% over the first cycles. Measured here after the
    // warm-up, six runs of 20,000 more cycles moved RSS by -0.9% to +5.2%. Growth past 10% is
    // what a leak would show.
    churn(CYCLES).await;
    let settled = |name: &'static str| {
        let metrics = metrics.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(10), async {
                while gauge(&metrics, name).await != 0 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
            .await
            .unwrap_or_else(|_| panic!("{name} did not return to 0"));
        }
    };
    settled("herald_streams_open").await;
    let before = resident_kib(pid);

    churn(CYCLES).await;

    settled("herald_streams_open").await;
    settled("herald_subscribers").await;
    let after = resident_kib(pid);
    eprintln!("churn: RSS {before} KiB before, {after} KiB after {CYCLES} cycles");
    assert!(after * 10 <= before * 11, "RSS grew from {before} KiB to {after} KiB over {CYCLES} cycles");
}
