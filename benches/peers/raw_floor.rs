//! The raw-write floor of `benches/compare.rs`: no HTTP and no SSE parsing, only the writes an
//! SSE server cannot avoid. Every event is one `write()` of one prebuilt frame to each
//! subscriber's socket, so whatever another server spends beyond this is its own overhead.
//!
//! It listens on a free loopback port and logs `listening on http://…` to stderr, as `herald`
//! does. The first connection it accepts is the control connection: each line the benchmark
//! writes there is an event's data, which it frames once (`data: …\n\n`), hands to the writer
//! threads and acknowledges with `ok\n`. Every later connection is a subscriber, greeted with an
//! SSE comment (`:\n\n`) once it will receive the next event. What subscribers send is never read.

use std::{
    io::{BufRead, BufReader, Write},
    net::{TcpListener, TcpStream},
    sync::{mpsc, Arc},
    thread,
};

/// What a writer thread is told, in order: a subscriber joining precedes any event it must get.
enum Work {
    Join(TcpStream),
    Send(Arc<[u8]>),
}

fn main() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    eprintln!("listening on http://{}", listener.local_addr().expect("a bound address"));
    let (control, _) = listener.accept().expect("the control connection");
    // One writer per core, as the servers it is held against use every core.
    let writers: Vec<mpsc::Sender<Work>> = (0..thread::available_parallelism().map_or(2, usize::from))
        .map(|_| {
            let (work, queue) = mpsc::channel();
            thread::spawn(move || write_frames(queue));
            work
        })
        .collect();
    let joins = writers.clone();
    thread::spawn(move || {
        for (subscriber, writer) in listener.incoming().zip(joins.iter().cycle()) {
            let Ok(subscriber) = subscriber else { continue };
            // Each frame goes out in one segment, as soon as it is written.
            let _ = subscriber.set_nodelay(true);
            if writer.send(Work::Join(subscriber)).is_err() {
                return;
            }
        }
    });
    relay_control(control, &writers);
}

/// Turns each line on the control connection into one frame for every writer, until it closes.
fn relay_control(control: TcpStream, writers: &[mpsc::Sender<Work>]) {
    let mut answers = control.try_clone().expect("a second handle on the control socket");
    for line in BufReader::new(control).lines() {
        let Ok(data) = line else { return };
        let frame: Arc<[u8]> = format!("data: {data}\n\n").into_bytes().into();
        for writer in writers {
            writer.send(Work::Send(Arc::clone(&frame))).expect("the writers outlive the control connection");
        }
        if answers.write_all(b"ok\n").is_err() {
            return;
        }
    }
}

/// One writer's share of the subscribers: greets each as it joins, writes each frame to all.
fn write_frames(queue: mpsc::Receiver<Work>) {
    let mut subscribers: Vec<TcpStream> = Vec::new();
    for work in queue {
        match work {
            Work::Join(mut subscriber) => {
                if subscriber.write_all(b":\n\n").is_ok() {
                    subscribers.push(subscriber);
                }
            }
            // A subscriber that hung up is dropped at its first failed write.
            Work::Send(frame) => subscribers.retain_mut(|subscriber| subscriber.write_all(&frame).is_ok()),
        }
    }
}
