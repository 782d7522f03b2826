//! `cargo bench -p datum-shared --bench templates`: the template rule engine alone — 20 templates × 50 rules
//! over 10,000 assets, 300 of them with a captured configuration (the kit's real exports, cycled), each template
//! applying to the assets of one configuration format (as a real standard does: "Cisco IOS hardening").
//! Prints the time to normalise the 300 captures (what an edge pays when it re-reads its stored versions) and
//! the time to evaluate every applicable asset × rule with patterns compiled once per template. Target (issue
//! 11, for the whole `datum-edge compliance`): ≤ 1 s. `DATUM_BENCH_QUICK=1`: 1,000 assets, 30 captures.

// A bench measures time: the pure core's rule against reading the clock does not apply to it.
#![allow(clippy::disallowed_methods)]

#[path = "common/templates.rs"]
mod bench_templates;

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::DateTime;
use datum_shared::model::Asset;
use datum_shared::normalize::{normalize, FingerprintKey, Format, NormLine};
use datum_shared::template::{evaluate_compiled, Outcome, Template};

fn main() {
    let quick = std::env::var("DATUM_BENCH_QUICK").is_ok_and(|v| !v.is_empty());
    let (n_assets, n_captures) = if quick { (1_000, 30) } else { (10_000, 300) };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
    let mut files = Vec::new();
    for dir in std::fs::read_dir(&root).expect("kit fixtures") {
        let dir = dir.expect("entry").path();
        if !dir.is_dir() || dir.ends_with("versions") {
            continue;
        }
        for f in std::fs::read_dir(&dir).expect("fixture dir") {
            let f = f.expect("entry").path();
            if f.extension().is_some_and(|e| e != "md") {
                files.push(f);
            }
        }
    }
    files.sort();
    let key = FingerprintKey([9; 32]);
    let start = Instant::now();
    let mut captures: Vec<(Format, Vec<NormLine>)> = Vec::new();
    let mut lines_total = 0;
    for i in 0..n_captures {
        let f = &files[i % files.len()];
        let bytes = std::fs::read(f).expect("read");
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
        if let Ok(n) = normalize(name.as_deref(), &bytes, &key) {
            lines_total += n.lines.len();
            captures.push((n.format, n.lines));
        }
    }
    let normalise = start.elapsed();
    // The formats captured, most frequent first: one template each, in turn.
    let mut counts: BTreeMap<&str, (usize, Format)> = BTreeMap::new();
    for (f, _) in &captures {
        counts.entry(f.as_str()).or_insert((0, *f)).0 += 1;
    }
    let mut formats: Vec<(usize, Format)> = counts.into_values().collect();
    formats.sort_by_key(|f| std::cmp::Reverse(f.0));
    let mut templates = Vec::new();
    for t in 0..20 {
        let text = bench_templates::template_text(t, formats[t % formats.len()].1.as_str());
        templates.push(Template::parse(&text).expect("valid template"));
    }
    let at = DateTime::from_timestamp(1_764_547_200, 0).expect("time");
    let assets: Vec<Asset> = (0..n_assets)
        .map(|i| {
            serde_json::from_value(serde_json::json!({
                "name": format!("A-{i:05}"), "kind": "switch", "criticality": "high", "in_scope": true,
                "owner": if i % 3 == 0 { None } else { Some("ops") },
                "firmware": format!("{}.{}", i % 60, i % 7),
                "created_at": at, "created_by": "b", "updated_at": at, "updated_by": "b",
            }))
            .expect("asset")
        })
        .collect();
    let start = Instant::now();
    let params = BTreeMap::new();
    let compiled: Vec<_> = templates
        .iter()
        .map(|t| (t, t.rules.iter().map(|r| r.compile(&params).expect("compiled")).collect::<Vec<_>>()))
        .collect();
    let (mut evaluated, mut failing) = (0usize, 0usize);
    for (i, asset) in assets.iter().enumerate() {
        let capture = (i < captures.len()).then(|| &captures[i]);
        for (t, rules) in &compiled {
            if !t.applies_to(asset, capture.map(|c| c.0)) || capture.is_none() && !t.applies.format.is_empty() {
                continue;
            }
            for rule in rules {
                let o = evaluate_compiled(rule, asset, capture.map(|c| c.1.as_slice()));
                evaluated += 1;
                failing += usize::from(matches!(o, Outcome::NonCompliant { .. }));
            }
        }
    }
    let evaluate = start.elapsed();
    println!(
        "{} captures ({lines_total} normalised lines, {} formats) normalised in {:.0} ms",
        captures.len(),
        formats.len(),
        normalise.as_secs_f64() * 1000.0
    );
    println!(
        "20 templates x 50 rules (2 inventory standards) over {n_assets} assets: {evaluated} evaluations ({failing} non-compliant) in {:.0} ms",
        evaluate.as_secs_f64() * 1000.0
    );
}
