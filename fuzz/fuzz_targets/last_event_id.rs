//! Any `Last-Event-ID`: parsing never panics, an accepted id prints back to one that parses to
//! itself, and a hub resuming from it answers without panicking.
#![no_main]

use std::time::Duration;

use futures::{executor::block_on, FutureExt, StreamExt};
use herald::testing::{EventId, Hub, HubSettings, NewEvent, Topic};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &str| {
    if let Ok(id) = raw.parse::<EventId>() {
        assert_eq!(id.to_string().parse::<EventId>(), Ok(id));
    }
    let hub = Hub::new(7, HubSettings { history_len: 4, history_age: Duration::from_secs(60), queue_len: 4 });
    let topic = Topic::parse("t").unwrap();
    for n in 0..6 {
        block_on(hub.publish(NewEvent::new(topic.clone(), n.to_string()))).expect("stored in memory");
    }
    // Nothing is published after subscribing, so whatever the stream holds now is its opening:
    // a replay of at most the history, or one reset.
    let mut stream = Box::pin(hub.subscribe(vec![topic], Some(raw)).into_stream());
    let mut opening = 0;
    while let Some(Some(_)) = stream.next().now_or_never() {
        opening += 1;
    }
    assert!(opening <= 4);
});
