//! `cargo bench -p datum-tests --bench web`: the workspace's pages and API with 10,000 assets (target: every
//! page ≤ 150 ms at p95 on this machine) and the service's memory when idle (target: under 100 MiB). (The
//! evidence pack has its own bench, `--bench evidence`.)
//!
//! Runs the real `datum-edge serve` (the profile of the bench, i.e. release) on loopback with plain HTTP (the
//! server's work, not TLS), requests each route one after another from one client with an API token, and
//! prints a Markdown table. The inventory is generated; the configurations are the kit's real version series
//! (`fixtures/versions`), the largest one's diff pages measured. docs/PERFORMANCE.md records a run. `DATUM_BENCH_QUICK=1`: 1,000 assets, fewer
//! requests.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use datum_tests::{bin, http_get as get, percentile, rss_kib, Plant};

fn quick() -> bool {
    std::env::var("DATUM_BENCH_QUICK").is_ok_and(|v| !v.is_empty())
}

fn main() {
    let n_assets = if quick() { 1_000 } else { 10_000 };
    let rounds = if quick() { 20 } else { 100 };
    let plant = Plant::new("bench-web");
    let csv = datum_tests::bench_inventory_csv(n_assets);
    let file = plant.write("inventory.csv", csv.as_bytes());
    plant.ok(&["asset", "import", file.to_str().expect("utf-8")]);
    // A few captures, a baseline and changes, so drift and the asset page have content.
    let cfg = plant.write("a.cfg", b"hostname a\n!\ninterface Gi0/1\n description x\n!\n");
    plant.ok(&["config", "capture", "A-00042", cfg.to_str().expect("utf-8")]);
    plant.ok(&["baseline", "approve", "A-00042", "--reason", "bench"]);
    for _ in 0..20 {
        plant.new_change("A-00042", "low");
    }
    // The kit's real version series (PLC projects, firewall and switch configurations, hardening exports): one
    // asset each, every version captured and the first approved, so drift, asset pages and diffs show real
    // shapes. The largest series' diff is measured below.
    let series = datum_tests::kit_version_series();
    let mut largest = (0u64, String::new());
    for (i, (_, files)) in series.into_iter().enumerate() {
        let asset = format!("A-{:05}", 100 + i);
        for (v, file) in files.iter().enumerate() {
            plant.ok(&["config", "capture", &asset, file.to_str().expect("utf-8")]);
            if v == 0 {
                plant.ok(&["baseline", "approve", &asset, "--reason", "bench"]);
            }
        }
        let size = files.iter().map(|f| std::fs::metadata(f).expect("size").len()).sum();
        if size > largest.0 {
            largest = (size, asset);
        }
    }
    let big = largest.1;
    let login = String::from_utf8(Command::new("id").arg("-un").output().expect("id").stdout).expect("utf-8");
    let mut add = plant.command(&["user", "add", "bench", "--role", "site-admin,engineer", "--os-user", login.trim()]);
    add.env_remove("DATUM_ACTOR");
    assert!(add.status().expect("user add").success());
    let mut token = plant.command(&["token", "create", "--user", "bench"]);
    token.env_remove("DATUM_ACTOR");
    let token = String::from_utf8(token.output().expect("token").stdout).expect("utf-8").trim().to_string();

    let config = plant.write("edge.toml", b"plain_http = true\nlisten = \"127.0.0.1:0\"\n");
    let mut child = Command::new(bin("datum-edge"))
        .args(["serve", "--config", config.to_str().expect("utf-8")])
        .env("DATUM_DATA", &plant.data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let line = BufReader::new(child.stdout.take().expect("stdout")).lines().next().expect("line").expect("read");
    let address = line.rsplit("://").next().expect("address").to_string();
    let started_rss = rss_kib(child.id());

    let (big_page, big_diff, big_raw, big_api) = (
        format!("/assets/{big}"),
        format!("/assets/{big}/diff?from=1&to=3"),
        format!("/assets/{big}/diff?from=1&to=3&raw=1"),
        format!("/api/v1/assets/{big}"),
    );
    let routes = [
        "/",
        "/assets",
        "/assets?q=siemens+cell-7",
        "/assets/A-00042",
        big_page.as_str(),
        big_diff.as_str(),
        big_raw.as_str(),
        big_api.as_str(),
        "/backups",
        "/reviews",
        "/drift",
        "/changes",
        "/changes/CR-0007",
        "/audit",
        "/api/v1/assets",
        "/api/v1/assets?q=cisco",
        "/api/v1/drift",
        "/api/v1/changes",
    ];
    println!("| route ({n_assets} assets) | p50 ms | p95 ms | max ms | bytes |");
    println!("|---|---|---|---|---|");
    for route in routes {
        let (status, _) = get(&address, route, &token);
        assert_eq!(status, 200, "{route}");
        let mut times = Vec::with_capacity(rounds);
        let mut bytes = 0;
        for _ in 0..rounds {
            let start = Instant::now();
            let (status, n) = get(&address, route, &token);
            times.push(start.elapsed());
            assert_eq!(status, 200);
            bytes = n;
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "| `{route}` | {:.1} | {:.1} | {:.1} | {bytes} |",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.95)),
            ms(*times.last().expect("times"))
        );
    }
    let busy_rss = rss_kib(child.id());
    std::thread::sleep(Duration::from_secs(2));
    let idle_rss = rss_kib(child.id());
    println!(
        "\nservice resident memory: {:.1} MiB after start, {:.1} MiB right after the requests, {:.1} MiB idle 2 s later",
        started_rss as f64 / 1024.0,
        busy_rss as f64 / 1024.0,
        idle_rss as f64 / 1024.0
    );
    let _ = child.kill();
    let _ = child.wait();
}
