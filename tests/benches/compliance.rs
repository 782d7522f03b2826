//! `cargo bench -p datum-tests --bench compliance`: shared templates at their real scale, with the real
//! binaries (release), one hub and many plants over QUIC on loopback.
//!
//! - **Edge**: one plant with 10,000 assets, 300 of them with a capture (the kit's real exports, cycled), and 20
//!   templates × 50 rules assigned by the hub (18 configuration standards, one per format captured, and 2
//!   inventory standards for every asset). Measured: the whole `datum-edge compliance --json` (open the site,
//!   verify the 20 signed templates, read the view, normalise the 300 captures, evaluate, print). Target ≤ 1 s.
//! - **Hub**: 50 sites reporting their results for the same 20 templates (49 small plants next to the large
//!   one). Measured: `datum-hub compliance --json` over every site × template. Target ≤ 300 ms.
//!
//! Prints a Markdown table; docs/PERFORMANCE.md records a run. `DATUM_BENCH_QUICK=1`: 1,000 assets, 30
//! captures, 10 sites. `DATUM_BENCH_KEEP=1` leaves the large plant's data directory behind for profiling.

#[path = "../../shared/benches/common/templates.rs"]
mod bench_templates;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use datum_shared::normalize::{normalize, FingerprintKey};
use datum_tests::{bench_inventory_csv, files_under, Backend, Hub, Plant};

fn quick() -> bool {
    std::env::var("DATUM_BENCH_QUICK").is_ok_and(|v| !v.is_empty())
}

/// Wall time of each run of `cmd` (its exit code must be 0 or 1: a finding is not a failure here).
fn times(runs: usize, mut cmd: impl FnMut() -> Command) -> Vec<Duration> {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            let (code, _) = datum_tests::run_measured(&mut cmd());
            assert!(code == 0 || code == 1, "exit {code}");
            start.elapsed()
        })
        .collect()
}

fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d[d.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// The kit's real exports (not the version series), with the format each is read as.
fn kit_files() -> Vec<(std::path::PathBuf, String)> {
    let key = FingerprintKey([9; 32]);
    let mut out = Vec::new();
    for f in files_under(&datum_tests::workspace_root().join("../shared/fixtures")) {
        if f.components().any(|c| c.as_os_str() == "versions") || f.extension().is_some_and(|e| e == "md") {
            continue;
        }
        let Ok(bytes) = std::fs::read(&f) else { continue };
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
        if let Ok(n) = normalize(name.as_deref(), &bytes, &key) {
            out.push((f, n.format.as_str().to_string()));
        }
    }
    out.sort();
    out
}

fn main() {
    let (n_assets, n_captures, n_sites) = if quick() { (1_000, 30, 10) } else { (10_000, 300, 50) };
    let files = kit_files();
    let mut hub = Hub::new(Backend::Sqlite);
    hub.start(true);
    let setup = Instant::now();

    // The large plant: its inventory, and the kit's exports captured on its first assets.
    let plant = Plant::new("large");
    let csv = plant.write("inventory.csv", bench_inventory_csv(n_assets).as_bytes());
    plant.ok(&["asset", "import", csv.to_str().expect("utf-8")]);
    let mut by_format: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..n_captures {
        let (file, format) = &files[i % files.len()];
        *by_format.entry(format.clone()).or_default() += 1;
        plant.ok(&["config", "capture", &format!("A-{i:05}"), file.to_str().expect("utf-8")]);
    }
    let mut formats: Vec<(usize, String)> = by_format.into_iter().map(|(f, n)| (n, f)).collect();
    formats.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let formats: Vec<String> = formats.into_iter().map(|(_, f)| f).collect();

    // Twenty templates published and assigned to every site.
    for t in 0..20 {
        let (id, text) = (format!("t{t}"), bench_templates::template_text(t, &formats[t % formats.len()]));
        let file = hub.tmp.path().join(format!("{id}.toml"));
        std::fs::write(&file, text).expect("write template");
        hub.ok(&["template", "add", file.to_str().expect("utf-8")]);
        hub.ok(&["template", "publish", &id]);
    }
    let token = hub.add_site("large");
    assert_eq!(plant.enroll(&hub, &token).code, 0, "enroll");
    // The small plants: 100 assets each, three captures.
    let mut small = Vec::new();
    for s in 1..n_sites {
        let p = Plant::new(&format!("site-{s:02}"));
        let csv = p.write("inventory.csv", bench_inventory_csv(100).as_bytes());
        p.ok(&["asset", "import", csv.to_str().expect("utf-8")]);
        for c in 0..3 {
            let (file, _) = &files[(s * 3 + c) % files.len()];
            p.ok(&["config", "capture", &format!("A-{c:05}"), file.to_str().expect("utf-8")]);
        }
        let token = hub.add_site(&format!("site-{s:02}"));
        assert_eq!(p.enroll(&hub, &token).code, 0, "enroll site {s}");
        small.push(p);
    }
    for id in (0..20).map(|t| format!("t{t}")) {
        hub.ok(&["template", "assign", &id, "--all"]);
    }
    for p in std::iter::once(&plant).chain(&small) {
        let run = p.sync("quic");
        assert_eq!(run.code, 0, "sync: {}{}", run.stdout, run.stderr);
    }
    let rows = hub.run(&["compliance", "--json"]).json();
    let reported = rows.as_array().expect("rows").iter().filter(|r| !r["evaluated_at"].is_null()).count();
    assert_eq!(reported, 20 * n_sites, "every site reported every template");
    let setup = setup.elapsed();

    let edge = times(5, || plant.command(&["compliance", "--summary", "--json"]));
    let edge_all = times(3, || plant.command(&["compliance", "--json"]));
    let output_bytes = plant.command(&["compliance", "--json"]).output().expect("run").stdout.len();
    let evaluations: u64 = {
        let out = plant.command(&["compliance", "--json"]).output().expect("run");
        let reports: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        reports.as_array().expect("reports").iter().map(|r| r["rows"].as_array().map_or(0, |a| a.len() as u64)).sum()
    };
    let hub_view = times(5, || hub.command(&["compliance", "--json"]));
    let hub_site = times(5, || hub.command(&["compliance", "--site", "large", "--json"]));

    println!(
        "setup (import, captures, 20 templates, {n_sites} sites enrolled and synced): {:.0} s",
        setup.as_secs_f64()
    );
    println!();
    println!("| measurement | median | runs | target |");
    println!("|---|---|---|---|");
    let runs = |d: &[Duration]| d.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(", ");
    println!(
        "| `datum-edge compliance --summary --json`: 20 templates × 50 rules over {n_assets} assets ({n_captures} \
         captures, {} formats), {evaluations} results evaluated, per template the counts and failing pairs printed \
         | **{}** | {} | ≤ 1 s |",
        formats.len(),
        ms(median(edge.clone())),
        runs(&edge)
    );
    println!(
        "| `datum-edge compliance --json`: the same, every result printed ({:.0} MB of JSON) | {} | {} | |",
        output_bytes as f64 / 1e6,
        ms(median(edge_all.clone())),
        runs(&edge_all)
    );
    println!(
        "| `datum-hub compliance --json`: {n_sites} sites × 20 templates | **{}** | {} | ≤ 300 ms |",
        ms(median(hub_view.clone())),
        runs(&hub_view)
    );
    println!(
        "| `datum-hub compliance --site large --json` | {} | {} | |",
        ms(median(hub_site.clone())),
        runs(&hub_site)
    );
    hub.kill();
    // `DATUM_BENCH_KEEP=1`: leave the large plant's data directory for profiling (its path is printed).
    if std::env::var("DATUM_BENCH_KEEP").is_ok_and(|v| !v.is_empty()) {
        println!("kept: {}", plant.data.display());
        std::mem::forget(plant);
    }
}
