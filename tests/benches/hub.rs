//! `cargo bench -p datum-tests --bench hub`: the corporate dashboard over 50 sites × 5,000 assets (targets:
//! landing and site page ≤ 300 ms at p95, search ≤ 300 ms, hub memory ≤ 512 MiB while serving).
//!
//! Every site is a real plant (`datum-edge init`, an inventory of 5,000 assets imported, changes) enrolled and
//! synced over QUIC to the real `datum-hub serve --web` (the bench profile, i.e. release), which serves the
//! dashboard with plain HTTP on loopback (the server's work, not TLS). Each route is requested one after
//! another by one client with an API token; the first request after the hub started, which computes every
//! site's overview, is reported apart, as is the first landing page after one site synced again. Prints a
//! Markdown table; docs/PERFORMANCE.md records a run. `DATUM_BENCH_BACKEND=postgres` runs the hub on
//! PostgreSQL; `DATUM_BENCH_QUICK=1`: 5 sites × 500 assets.

use std::time::{Duration, Instant};

use datum_tests::{http_get, percentile, proc_kib, Backend, Hub, Plant};

fn quick() -> bool {
    std::env::var("DATUM_BENCH_QUICK").is_ok_and(|v| !v.is_empty())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let (n_sites, n_assets, rounds) = if quick() { (5, 500, 10) } else { (50, 5_000, 30) };
    let backend = match std::env::var("DATUM_BENCH_BACKEND").as_deref() {
        Ok("postgres") => Backend::Postgres,
        _ => Backend::Sqlite,
    };
    let mut hub = Hub::new(backend);
    hub.ok(&["user", "add", "bench", "--role", "viewer"]);
    let token =
        hub.ok(&["token", "create", "--user", "bench", "--json"]).json()["token"].as_str().expect("token").to_string();
    let config = hub.tmp.path().join("hub.toml");
    std::fs::write(&config, "plain_http = true\n").expect("config");
    hub.serve_args =
        vec!["--web".into(), "127.0.0.1:0".into(), "--config".into(), config.to_str().expect("utf-8").into()];
    hub.start(true);
    let address = hub.web.clone().expect("dashboard").trim_start_matches("http://").to_string();

    let setup = Instant::now();
    let csv = datum_tests::bench_inventory_csv(n_assets);
    let mut plants = Vec::new();
    for i in 0..n_sites {
        let site = format!("site-{i:02}");
        let plant = Plant::new(&site);
        let file = plant.write("inventory.csv", csv.as_bytes());
        plant.ok(&["asset", "import", file.to_str().expect("utf-8")]);
        for _ in 0..10 {
            plant.new_change("A-00042", "medium");
        }
        let token = hub.add_site(&site);
        assert_eq!(plant.enroll(&hub, &token).code, 0);
        let run = plant.sync("quic");
        assert_eq!(run.code, 0, "{}", run.stderr);
        plants.push(plant);
    }
    let setup = setup.elapsed();
    let pid = hub.server.as_ref().expect("hub running").id();

    let time = |path: &str| {
        let start = Instant::now();
        let (status, bytes) = http_get(&address, path, &token);
        assert_eq!(status, 200, "{path}");
        (start.elapsed(), bytes)
    };
    let (cold, _) = time("/");
    println!(
        "{n_sites} sites × {n_assets} assets on {backend:?}, synced over QUIC in {:.0} s; first landing page (every \
         overview computed): {:.0} ms\n",
        setup.as_secs_f64(),
        ms(cold)
    );
    println!("| route | p50 ms | p95 ms | max ms | bytes |");
    println!("|---|---|---|---|---|");
    let (one, other) = (format!("site-{:02}", n_sites * 3 / 5), format!("site-{:02}", n_sites / 5));
    let asset = format!("A-{:05}", n_assets * 9 / 10 + 11);
    let routes = [
        "/".to_string(),
        "/api/v1/sites".into(),
        format!("/sites/{one}"),
        format!("/api/v1/sites/{one}"),
        "/assets".into(),
        "/assets?vendor=Siemens&kind=plc".into(),
        format!("/api/v1/assets?site={other}&kind=plc"),
        format!("/search?q={asset}"),
        format!("/api/v1/search?q={asset}"),
        "/api/v1/search?q=cell-7%20siemens".into(),
        "/approvals".into(),
    ];
    for route in &routes {
        let mut times = Vec::with_capacity(rounds);
        let mut bytes = 0;
        for _ in 0..rounds {
            let (t, n) = time(route.as_str());
            times.push(t);
            bytes = n;
        }
        times.sort();
        println!(
            "| `{route}` | {:.1} | {:.1} | {:.1} | {bytes} |",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.95)),
            ms(*times.last().expect("times"))
        );
    }
    // One site syncs again (a new asset): the next landing page computes that site's overview only.
    let plant = &plants[n_sites / 2];
    plant.ok(&["asset", "add", "new-one", "--kind", "plc"]);
    assert_eq!(plant.sync("quic").code, 0);
    let (after_sync, _) = time("/");
    println!("\nfirst landing page after one site synced again: {:.1} ms", ms(after_sync));
    println!(
        "hub resident memory: {:.0} MiB now, {:.0} MiB at its peak",
        proc_kib(pid, "VmRSS") as f64 / 1024.0,
        proc_kib(pid, "VmHWM") as f64 / 1024.0
    );
    hub.kill();
}
