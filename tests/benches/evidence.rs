//! `cargo bench -p datum-tests --bench evidence`: the auditor's evidence pack (`datum-edge report`) for a site of
//! 10,000 assets and a year of records (target: ≤ 10 s), then the hub's pack of the same site from its copy
//! (`datum-hub report --site`).
//!
//! The year is made through the real command line under the drill clock (`DATUM_NOW`, moving forward a step at
//! a time from a year ago): the kit's real version series (`fixtures/versions`) captured and their first
//! versions approved; 500 assets captured every quarter from the same series (asset k follows series k, a
//! version a quarter; the first approved, so most drift and their real diffs go into the pack); 300 change
//! requests through their whole life (new, submit, approve, capture of a real export linked to the change,
//! implement, verify, close); 120 restore tests; 52 weekly zone reviews. `DATUM_BENCH_QUICK=1`: 1,000 assets and a tenth of the records.

use std::process::Command;
use std::time::Instant;

use chrono::{Duration, Utc};
use datum_tests::{bin, files_under, Backend, Hub, Plant};

fn quick() -> bool {
    std::env::var("DATUM_BENCH_QUICK").is_ok_and(|v| !v.is_empty())
}

/// The drill clock: a year ago, moved forward by `step` before every command.
struct Clock {
    at: chrono::DateTime<Utc>,
    step: Duration,
}

impl Clock {
    fn tick(&mut self) -> String {
        self.at += self.step;
        self.at.to_rfc3339()
    }
}

fn run(plant: &Plant, clock: &mut Clock, actor: &str, args: &[&str]) -> String {
    let out = Command::new(bin("datum-edge"))
        .args(args)
        .env("DATUM_DATA", &plant.data)
        .env("DATUM_ACTOR", actor)
        .env("DATUM_NOW", clock.tick())
        .output()
        .expect("run datum-edge");
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn main() {
    let quick = quick();
    let n_assets = if quick { 1_000 } else { 10_000 };
    let scale = if quick { 10 } else { 1 };
    let (quarterly, changes, tests, reviews) = (500 / scale, 300 / scale, 120 / scale, 52 / scale.min(4));
    let plant = Plant::empty();
    let setup = Instant::now();
    // Commands for a year: spread evenly, so the records fall across the whole period (the site made first).
    let commands = 3 + 97 * 2 + quarterly * 5 + changes * 7 + tests + reviews;
    let step = Duration::seconds(364 * 86_400 / commands as i64);
    let mut clock = Clock { at: Utc::now() - Duration::days(365), step };
    run(&plant, &mut clock, "alice", &["init", "--site", "bench-evidence"]);
    let csv = plant.write("inventory.csv", datum_tests::bench_inventory_csv(n_assets).as_bytes());
    run(&plant, &mut clock, "alice", &["asset", "import", csv.to_str().expect("utf-8")]);

    // The kit's real series, one asset each.
    let series: Vec<Vec<std::path::PathBuf>> = datum_tests::kit_version_series().into_values().collect();
    let mut captures = 0;
    for (i, files) in series.iter().enumerate() {
        let asset = format!("A-{:05}", 100 + i);
        for (v, file) in files.iter().enumerate() {
            run(&plant, &mut clock, "alice", &["config", "capture", &asset, file.to_str().expect("utf-8")]);
            captures += 1;
            if v == 0 {
                run(&plant, &mut clock, "alice", &["baseline", "approve", &asset, "--reason", "commissioning"]);
            }
        }
    }
    // Quarterly captures of 500 more assets, from the same real series (asset k follows series k, one version a
    // quarter, staying on the newest): the first approved, so most drift from it and their diffs are real diffs.
    let path =
        |files: &[std::path::PathBuf], n: usize| files[n.min(files.len() - 1)].to_str().expect("utf-8").to_string();
    for quarter in 0..4 {
        for k in 0..quarterly {
            let asset = format!("A-{:05}", 200 + k * 7);
            let file = path(&series[k % series.len()], quarter);
            run(&plant, &mut clock, "alice", &["config", "capture", &asset, &file]);
            captures += 1;
            if quarter == 0 {
                run(&plant, &mut clock, "alice", &["baseline", "approve", &asset, "--reason", "commissioning"]);
            }
        }
    }
    // Change requests through their whole life, on assets of their own.
    for c in 0..changes {
        let asset = format!("A-{:05}", n_assets / 2 + c * 3);
        let out = run(
            &plant,
            &mut clock,
            "alice",
            &[
                "change",
                "new",
                "--title",
                "replace the switch's uplink",
                "--reason",
                "planned",
                "--asset",
                &asset,
                "--risk",
                "low",
                "--impact",
                "one cell offline 5 min",
                "--rollback",
                "restore the previous version",
                "--json",
            ],
        );
        let id: serde_json::Value = serde_json::from_str(&out).expect("json");
        let id = id["id"].as_str().expect("id").to_string();
        run(&plant, &mut clock, "alice", &["change", "submit", &id]);
        run(&plant, &mut clock, "bob", &["change", "approve", &id]);
        let file = path(&series[c % series.len()], usize::MAX);
        run(&plant, &mut clock, "alice", &["config", "capture", &asset, &file, "--change", &id]);
        captures += 1;
        run(&plant, &mut clock, "alice", &["change", "implement", &id]);
        run(&plant, &mut clock, "carol", &["change", "verify", &id]);
        run(&plant, &mut clock, "carol", &["change", "close", &id]);
    }
    for t in 0..tests {
        let asset = format!("A-{:05}", 200 + (t % quarterly) * 7);
        run(
            &plant,
            &mut clock,
            "dave",
            &["restore-test", "record", &asset, "--version", "1", "--result", "pass", "--method", "spare unit"],
        );
    }
    for r in 0..reviews {
        let zone = format!("cell-{}", r % 40);
        run(&plant, &mut clock, "erin", &["review", "record", "--zone", &zone, "--outcome", "ok", "--notes", "weekly"]);
    }
    let audit = run(&plant, &mut clock, "alice", &["audit", "log", "--json"]);
    let entries = serde_json::from_str::<serde_json::Value>(&audit).ok().and_then(|v| v.as_array().map(|a| a.len()));
    println!(
        "site: {n_assets} assets, {captures} captures, {changes} change requests, {tests} restore tests, {reviews} \
         reviews, {} audit entries; made in {:.0} s",
        entries.map(|n| n.to_string()).unwrap_or_else(|| "?".into()),
        setup.elapsed().as_secs_f64()
    );

    let mut edge_times = Vec::new();
    for attempt in 1..=3 {
        let pack = plant.path(&format!("evidence-{attempt}"));
        let start = Instant::now();
        let out = Command::new(bin("datum-edge"))
            .args(["report", "--out", pack.to_str().expect("utf-8")])
            .env("DATUM_DATA", &plant.data)
            .env("DATUM_ACTOR", "auditor")
            .output()
            .expect("report");
        let took = start.elapsed().as_secs_f64();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let files = files_under(&pack);
        let bytes: u64 = files.iter().map(|f| std::fs::metadata(f).expect("meta").len()).sum();
        println!("edge pack, run {attempt}: {took:.2} s, {} files, {bytes} bytes", files.len());
        edge_times.push(took);
    }

    // The same site at a hub, and the hub's pack from its copy.
    let mut hub = Hub::new(Backend::Sqlite);
    hub.start(false);
    let token = hub.add_site("bench-evidence");
    let out = plant.enroll(&hub, &token);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let out = plant.sync("tcp");
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    for attempt in 1..=3 {
        let pack = hub.tmp.path().join(format!("hub-evidence-{attempt}"));
        let start = Instant::now();
        hub.ok(&["report", "--site", "bench-evidence", "--out", pack.to_str().expect("utf-8")]);
        let took = start.elapsed().as_secs_f64();
        println!("hub pack, run {attempt}: {took:.2} s, {} files", files_under(&pack).len());
    }
    let best = edge_times.iter().cloned().fold(f64::MAX, f64::min);
    println!("\nedge pack for {n_assets} assets and a year of records: best {best:.2} s (target ≤ 10 s)");
}
