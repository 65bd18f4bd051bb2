//! Any body sent to `POST /publish`: parsing never panics, and whatever it accepts frames into
//! well-formed SSE (no CR on the wire, one blank line at the end, the name on one line).
#![no_main]

use herald::testing::{decode_json, frame, PublishRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(request) = decode_json::<PublishRequest>(body) {
        let frame = frame(None, request.event.as_ref(), &request.data);
        let text = std::str::from_utf8(&frame).expect("frames are UTF-8");
        assert!(!text.contains('\r'));
        assert!(text.ends_with("\n\n") && !text[..text.len() - 2].contains("\n\n"));
        if let Some(name) = &request.event {
            assert!(text.starts_with(&format!("event: {}\n", name.as_str())));
        }
    }
});
