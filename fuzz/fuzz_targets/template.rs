//! Fuzz target: a template file (from the hub, or typed by a person) must be refused or accepted without a
//! panic, and an accepted one must run its examples and evaluate a configuration without a panic either.
//! Run: `cargo +nightly fuzz run template` (CI runs it briefly, see .ci/run).
#![no_main]

use std::collections::BTreeMap;

use datum_shared::model::Asset;
use datum_shared::normalize::{normalize_as, FingerprintKey, Format};
use datum_shared::template::{evaluate_compiled, Template};
use libfuzzer_sys::fuzz_target;

const CONFIG: &str = "hostname r1\nservice password-encryption\n!\ninterface Gi0/1\n description uplink\n!\n\
line vty 0 4\n transport input ssh\n!\nlogging host 10.0.0.5\nend\n";

fuzz_target!(|data: &[u8]| {
    let Ok(template) = Template::parse(&String::from_utf8_lossy(data)) else { return };
    let key = FingerprintKey([5; 32]);
    let _ = template.check_snippets(&key);
    let Ok(params) = template.values(&BTreeMap::new()) else { return };
    let asset: Asset = serde_json::from_value(serde_json::json!({
        "name": "R1", "kind": "router", "criticality": "high", "in_scope": true, "owner": "ops",
        "firmware": "17.3.1",
        "created_at": "2026-12-01T00:00:00Z", "created_by": "f", "updated_at": "2026-12-01T00:00:00Z",
        "updated_by": "f",
    }))
    .expect("a valid asset");
    let lines = normalize_as(Format::CiscoIos, CONFIG, &key);
    let _ = template.applies_to(&asset, Some(Format::CiscoIos));
    for rule in &template.rules {
        if let Ok(compiled) = rule.compile(&params) {
            let _ = evaluate_compiled(&compiled, &asset, Some(&lines));
            let _ = evaluate_compiled(&compiled, &asset, None);
        }
    }
});
