//! Fuzz target: format detection and every parser must survive any input without panicking.
//! Run: `cargo +nightly fuzz run normalize` (CI runs it briefly, see .ci/run).
#![no_main]

use datum_shared::diff::diff;
use datum_shared::normalize::{normalize, normalize_as, FingerprintKey, ALL_FORMATS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = FingerprintKey([5; 32]);
    // Detection on raw bytes, then a self-diff.
    if let Ok(a) = normalize(Some("fuzz.cfg"), data, &key) {
        let b = normalize(Some("fuzz.cfg"), data, &key).expect("same input, same result");
        assert!(!diff(&a, &b, true).significant);
    }
    // Each parser directly: the first byte picks one.
    if let Some((&pick, rest)) = data.split_first() {
        let format = ALL_FORMATS[pick as usize % ALL_FORMATS.len()];
        let _ = normalize_as(format, &String::from_utf8_lossy(rest), &key);
    }
});
