//! Any `Last-Event-ID`: parsing never panics, an accepted id prints back to one that parses to
//! itself, and a hub resuming from it answers without panicking.
#![no_main]

use std::time::Duration;

use herald::testing::{EventId, Hub, HubSettings, NewEvent, Topic};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &str| {
    if let Ok(id) = raw.parse::<EventId>() {
        assert_eq!(id.to_string().parse::<EventId>(), Ok(id));
    }
    let hub = Hub::new(7, HubSettings { history_len: 4, history_age: Duration::from_secs(60), queue_len: 4 });
    let topic = Topic::parse("t").unwrap();
    for n in 0..6 {
        hub.publish(NewEvent::new(topic.clone(), n.to_string()));
    }
    let subscription = hub.subscribe(vec![topic], Some(raw));
    assert!(subscription.opening.len() <= 4);
});
