//! Fuzz target: the sync frame decoder (`Frame::decode`, the first thing a peer's bytes meet) must refuse any
//! input it does not accept without panicking, and every frame it accepts must survive a round trip
//! (`decode(encode(frame)) == frame`) within the limits it checked.
//! Run: `cargo +nightly fuzz run sync_frame`, or as `.ci/run` does on stable (see there).
#![no_main]

use datum_shared::sync::wire::MAX_FRAME;
use datum_shared::sync::Frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = Frame::decode(data) else { return };
    let encoded = frame.encode();
    // Postcard may accept a longer spelling than the one it writes (trailing bytes), never a shorter one.
    assert!(encoded.len() <= data.len(), "re-encoding grew the frame: {} > {}", encoded.len(), data.len());
    assert!(encoded.len() <= MAX_FRAME);
    assert_eq!(Frame::decode(&encoded).as_ref(), Ok(&frame), "a decoded frame does not round-trip");
});
