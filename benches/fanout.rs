//! Fan-out cost of one event: Herald's hub (framed once, shared `Bytes`) against the idiomatic
//! axum design (a `broadcast` channel, each subscriber's `Sse` body turning it into an `Event`).
//!
//! One round publishes one event and reads it from every subscriber's response body, on one
//! thread, so a round's time is the CPU the server spends to deliver that event to everyone.
//! Both sides run in the same process, round after round; the report gives medians and the
//! ratio baseline / Herald (above 1 means Herald is cheaper).
//!
//! `cargo bench --features ssr --bench fanout` (or `make bench-fanout`).

use std::{
    convert::Infallible,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    body::{Body, BodyDataStream},
    response::{
        sse::{Event, Sse},
        IntoResponse,
    },
};
use bytes::Bytes;
use futures::StreamExt;
use herald::testing::{frame, median, millis, EventId, EventName, Hub, HubSettings, NewEvent, Topic};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

const ROUNDS: usize = 41;
const WARM_UP: usize = 5;

/// What one subscriber receives, as the baseline broadcasts it.
#[derive(Clone)]
struct Message {
    id: u64,
    event: &'static str,
    data: Arc<str>,
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    println!("fan-out of one event to every subscriber, median of {ROUNDS} rounds (lower is better)");
    println!(
        "{:>11}  {:>8}  {:>21}  {:>21}  {:>21}",
        "subscribers", "payload", "axum Sse, Event/sub", "broadcast, framed 1x", "herald hub"
    );
    for subscribers in [1_000, 10_000] {
        for payload in [64, 1024, 16 * 1024] {
            let data: Arc<str> = "x".repeat(payload).into();
            let [baseline, ring, herald] = runtime.block_on(compare(subscribers, data));
            let cell = |time: Duration| {
                format!("{:.3} ms ({:.1}x)", millis(time), baseline.as_secs_f64() / time.as_secs_f64())
            };
            println!(
                "{subscribers:>11}  {:>8}  {:>21}  {:>21}  {:>21}",
                size(payload),
                format!("{:.3} ms", millis(baseline)),
                cell(ring),
                cell(herald)
            );
        }
    }
}

/// Medians of the three designs, measured in alternating rounds so that whatever else
/// the machine does weighs on both alike.
async fn compare(subscribers: usize, data: Arc<str>) -> [Duration; 3] {
    let mut baseline = axum_fan_out(subscribers);
    let mut ring = framed_broadcast(subscribers);
    let mut herald = HeraldFanOut::new(subscribers);
    let mut times: [Vec<Duration>; 3] = Default::default();
    for round in 0..WARM_UP + ROUNDS {
        let round_times = [baseline.round(&data).await, ring.round(&data).await, herald.round(&data).await];
        if round >= WARM_UP {
            for (all, time) in times.iter_mut().zip(round_times) {
                all.push(time);
            }
        }
    }
    times.map(median)
}

/// One broadcast channel, and one response body per subscriber made from its receiver.
struct BroadcastFanOut<T> {
    sender: broadcast::Sender<T>,
    bodies: Vec<BodyDataStream>,
    next_id: u64,
    message: fn(u64, &Arc<str>) -> T,
}

impl<T: Clone + Send + 'static> BroadcastFanOut<T> {
    fn new(
        subscribers: usize,
        message: fn(u64, &Arc<str>) -> T,
        body: impl Fn(BroadcastStream<T>) -> BodyDataStream,
    ) -> Self {
        let (sender, _) = broadcast::channel(16);
        let bodies = (0..subscribers).map(|_| body(BroadcastStream::new(sender.subscribe()))).collect();
        Self { sender, bodies, next_id: 0, message }
    }

    async fn round(&mut self, data: &Arc<str>) -> Duration {
        let started = Instant::now();
        self.next_id += 1;
        assert!(self.sender.send((self.message)(self.next_id, data)).is_ok(), "every subscriber listens");
        read_one_frame_each(&mut self.bodies).await;
        started.elapsed()
    }
}

/// The axum way: every subscriber's body is an `Sse` stream that builds an `Event` from each
/// message, and axum serialises each `Event` into that body.
fn axum_fan_out(subscribers: usize) -> BroadcastFanOut<Message> {
    BroadcastFanOut::new(
        subscribers,
        |id, data| Message { id, event: "job", data: data.clone() },
        |messages| {
            let events = messages.filter_map(|message| async move {
                let message = message.ok()?;
                let event =
                    Event::default().id(message.id.to_string()).event(message.event).data(&*message.data);
                Some(Ok::<_, Infallible>(event))
            });
            Sse::new(events).into_response().into_body().into_data_stream()
        },
    )
}

/// A shared ring of pre-framed bytes: the baseline's broadcast channel, with the framing done
/// once as Herald does it. It tells the cost of the queues apart from that of framing.
fn framed_broadcast(subscribers: usize) -> BroadcastFanOut<Bytes> {
    BroadcastFanOut::new(
        subscribers,
        |seq, data| {
            let name = EventName::parse("job").unwrap();
            frame(Some(EventId { incarnation: 1, seq }), Some(&name), data)
        },
        |frames| {
            let frames = frames.filter_map(|frame| async move { frame.ok().map(Ok::<_, Infallible>) });
            Body::from_stream(frames).into_data_stream()
        },
    )
}

/// Herald's way: the hub frames the event once and every subscriber's body is the shared bytes.
struct HeraldFanOut {
    hub: Arc<Hub>,
    topic: Topic,
    event: EventName,
    bodies: Vec<BodyDataStream>,
}

impl HeraldFanOut {
    fn new(subscribers: usize) -> Self {
        let settings = HubSettings {
            history_len: 16,
            history_age: Duration::from_secs(600),
            history_bytes: 1 << 20,
            history_total_bytes: 1 << 30,
            max_replay_events: 1024,
            max_replay_bytes: 1 << 20,
            max_concurrent_replays: 4,
            queue_len: 16,
            presence_events: vec![],
        };
        let hub = Hub::new(1, settings);
        let topic = Topic::parse("bench").unwrap();
        let bodies = (0..subscribers)
            .map(|_| {
                let frames = hub.subscribe(vec![topic.clone()], None).into_stream();
                Body::from_stream(frames.map(Ok::<_, Infallible>)).into_data_stream()
            })
            .collect();
        Self { hub, topic, event: EventName::parse("job").unwrap(), bodies }
    }

    async fn round(&mut self, data: &Arc<str>) -> Duration {
        let event = NewEvent::new(self.topic.clone(), data.to_string()).named(self.event.clone());
        let started = Instant::now();
        self.hub.publish(event).await.expect("the in-memory hub always stores an event");
        read_one_frame_each(&mut self.bodies).await;
        started.elapsed()
    }
}

/// Reads the next chunk of every body, checking that it is a whole event.
async fn read_one_frame_each(bodies: &mut [BodyDataStream]) {
    for body in bodies {
        let frame = body.next().await.expect("the body goes on").expect("a readable body");
        assert!(frame.ends_with(b"\n\n"), "one whole event per chunk");
    }
}

fn size(bytes: usize) -> String {
    if bytes >= 1024 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}
