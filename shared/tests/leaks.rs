//! The leak corpus (`tests/leaks/corpus.txt`) through every output of the masking core: each snippet and a
//! version with its secrets changed are normalised (as the format detected and as plain text, the fallback for
//! malformed input), masked raw, and diffed (rendered, raw unified diff, JSON report). No secret may appear in any
//! of them, the diff must count the change, and the words of the `keep` cases must stay visible.

#[path = "../../tests/leaks/corpus.rs"]
mod corpus;

use std::collections::BTreeMap;
use std::path::Path;

use corpus::Case;
use datum_shared::diff::{diff, raw_unified, render};
use datum_shared::normalize::{mask_raw, normalize, normalize_as, FingerprintKey, Format, Normalized};

fn cases() -> Vec<Case> {
    corpus::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/leaks/corpus.txt"))
}

fn key() -> FingerprintKey {
    FingerprintKey([9; 32])
}

fn norm(case: &Case, text: &str) -> Normalized {
    normalize(Some(&case.file_name), text.as_bytes(), &key()).expect("normalize")
}

/// Every text the core produces for a case and its changed version, labelled by the output it stands for.
fn outputs(case: &Case) -> (Vec<(String, String)>, usize) {
    let (changed, _) = case.changed();
    let (old, new) = (norm(case, &case.text), norm(case, &changed));
    let mut out = Vec::new();
    for (side, n, text) in [("old", &old, &case.text), ("new", &new, &changed)] {
        let lines: Vec<String> = n.lines.iter().map(|l| format!("{} | {}", l.context, l.text)).collect();
        out.push((format!("normalised {side} ({})", n.format.as_str()), lines.join("\n")));
        let as_text: Vec<String> = normalize_as(Format::Text, text, &key())
            .into_iter()
            .map(|l| format!("{} | {}", l.context, l.text))
            .collect();
        out.push((format!("normalised {side} as text"), as_text.join("\n")));
        out.push((format!("raw {side}"), mask_raw(text, &key()).join("\n")));
    }
    let report = diff(&old, &new, false);
    out.push(("rendered diff".into(), render(&report)));
    out.push(("json diff".into(), serde_json::to_string(&report).expect("json")));
    out.push((
        "raw diff".into(),
        raw_unified("old", "new", &mask_raw(&case.text, &key()), &mask_raw(&changed, &key())),
    ));
    (out, report.secrets_changed)
}

#[test]
fn no_secret_of_the_corpus_reaches_any_output() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in cases().iter().filter(|c| !c.is_keep()) {
        let (_, changed_secrets) = case.changed();
        let (outputs, secrets_changed) = outputs(case);
        for (what, text) in &outputs {
            for secret in case.secrets.iter().chain(&changed_secrets) {
                if text.contains(secret.as_str()) {
                    failures.push(format!("{} ({}): {what} shows {secret:?}:\n{text}\n", case.id, case.vendor));
                }
            }
        }
        if !case.salted && secrets_changed == 0 {
            let rendered = outputs.iter().find(|(w, _)| w == "rendered diff").map(|(_, t)| t.as_str());
            failures.push(format!("{}: the changed secret is not counted:\n{}", case.id, rendered.unwrap_or("")));
        }
        checked += 1;
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} cases leak or miss a change:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn keep_cases_stay_visible() {
    let mut failures = Vec::new();
    for case in cases().iter().filter(|c| c.is_keep()) {
        let n = norm(case, &case.text);
        let normalised: Vec<String> = n.lines.iter().map(|l| l.text.to_ascii_lowercase()).collect();
        let raw = mask_raw(&case.text, &key()).join("\n").to_ascii_lowercase();
        for word in &case.visible {
            let word = word.to_ascii_lowercase();
            if !normalised.iter().any(|l| l.contains(&word)) {
                failures.push(format!("{}: {word:?} is masked in the normalised lines: {normalised:?}", case.id));
            }
            if !raw.contains(&word) {
                failures.push(format!("{}: {word:?} is masked in the raw text:\n{raw}", case.id));
            }
        }
    }
    assert!(failures.is_empty(), "over-masking:\n{}", failures.join("\n"));
}

#[test]
fn the_corpus_covers_the_vendors_and_syntaxes() {
    let cases = cases();
    let mut by_vendor: BTreeMap<&str, usize> = BTreeMap::new();
    for case in cases.iter().filter(|c| !c.is_keep()) {
        *by_vendor.entry(case.vendor.as_str()).or_default() += 1;
    }
    let total: usize = by_vendor.values().sum();
    assert!(total >= 150, "{total} secret cases: {by_vendor:?}");
    for vendor in [
        "cisco-ios",
        "cisco-nxos",
        "cisco-asa",
        "cisco-ios-xr",
        "arista-eos",
        "juniper",
        "fortigate",
        "pfsense",
        "opnsense",
        "mikrotik",
        "iptables",
        "nftables",
        "net-snmp",
        "strongswan",
        "aruba",
        "huawei",
        "hp-comware",
        "openwrt",
        "key-value",
        "windows",
        "dotnet",
        "json",
        "yaml",
        "rockwell-l5x",
        "siemens-tia",
        "plcopen",
        "twincat",
        "step7",
        "urls",
    ] {
        assert!(by_vendor.contains_key(vendor), "no case for {vendor}: {by_vendor:?}");
    }
    assert!(cases.iter().filter(|c| c.is_keep()).count() >= 10);
}

#[test]
fn rotating_a_secret_keeps_its_shape_and_changes_its_value() {
    assert_eq!(corpus::rotate_tail("Abc-9z1Z"), "Abc-0a2A");
    assert_eq!(corpus::rotate_tail("$9$x"), "$0$y");
    let case = &corpus::parse("=== a | v | f.cfg\nsecret: Secret99\n---\nkey Secret99\n")[0];
    assert_eq!(case.changed(), ("key Secrfu00\n".to_string(), vec!["Secrfu00".to_string()]));
}
