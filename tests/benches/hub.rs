//! `cargo bench -p datum-tests --bench hub`: the corporate dashboard over 50 sites × 5,000 assets (targets:
//! landing and site page ≤ 300 ms at p95, search ≤ 300 ms, hub memory ≤ 512 MiB while serving).
//!
//! Every site is a real plant (`datum-edge init`, an inventory of 5,000 assets imported, changes) enrolled and
//! synced over QUIC to the real `datum-hub serve --web` (the bench profile, i.e. release), which serves the
//! dashboard with plain HTTP on loopback (the server's work, not TLS). Each route is requested one after
//! another by one client with an API token. Reported apart: the first landing page right after the hub
//! restarted (it waits for the overviews the hub computes at start) and once the hub is ready; the first
//! landing page right after one site synced again, and a moment later. Then 200 more sites connect as
//! simulated edges (a real enrollment and sync session each, over their own QUIC connection, `common/edges.rs`)
//! while the landing page is requested, and stay connected while the routes are timed again: the hub's memory
//! is read while it serves both. Prints Markdown tables; docs/PERFORMANCE.md records a run.
//! `DATUM_BENCH_BACKEND=postgres` runs the hub on PostgreSQL; `DATUM_BENCH_QUICK=1`: 5 sites × 500 assets and
//! 20 edges.

use std::time::{Duration, Instant};

use datum_tests::{http_get, percentile, proc_kib, Backend, Hub, Plant};

#[path = "common/edges.rs"]
mod edges;

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
    // Restarted, the hub computes every site's overview before anyone asks; a landing page at once waits for it.
    hub.kill();
    hub.start(true);
    let address = hub.web.clone().expect("dashboard").trim_start_matches("http://").to_string();
    let pid = hub.server.as_ref().expect("hub running").id();
    let time = |path: &str| {
        let start = Instant::now();
        let (status, bytes) = http_get(&address, path, &token);
        assert_eq!(status, 200, "{path}");
        (start.elapsed(), bytes)
    };
    let (cold, _) = time("/");
    std::thread::sleep(Duration::from_secs(3));
    let (ready, _) = time("/");
    println!(
        "{n_sites} sites × {n_assets} assets on {backend:?}, synced over QUIC in {:.0} s; first landing page right \
         after a restart: {:.0} ms; once the hub is ready: {:.1} ms\n",
        setup.as_secs_f64(),
        ms(cold),
        ms(ready)
    );
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
    let table = |routes: &[String]| {
        println!("| route | p50 ms | p95 ms | max ms | bytes |");
        println!("|---|---|---|---|---|");
        for route in routes {
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
    };
    table(&routes);
    // One site syncs again (a new asset): the landing page right away, and once the hub has caught up.
    let plant = &plants[n_sites / 2];
    plant.ok(&["asset", "add", "new-one", "--kind", "plc"]);
    assert_eq!(plant.sync("quic").code, 0);
    let (after_sync, _) = time("/");
    std::thread::sleep(Duration::from_secs(3));
    let (caught_up, _) = time("/");
    println!(
        "\nlanding page right after one site synced again: {:.1} ms; 3 s later: {:.1} ms",
        ms(after_sync),
        ms(caught_up)
    );
    let mib = |field: &str| proc_kib(pid, field) as f64 / 1024.0;
    println!("hub resident memory: {:.0} MiB now, {:.0} MiB at its peak", mib("VmRSS"), mib("VmHWM"));

    // 200 edges connect and sync while the landing page is requested, and stay connected.
    let n_edges = if quick() { 20 } else { 200 };
    let names: Vec<(String, String)> = (0..n_edges)
        .map(|i| {
            let name = format!("edge-{i:03}");
            let token = hub.add_site(&name);
            (name, token)
        })
        .collect();
    let (addr, fingerprint) = (hub.addr().to_string(), hub.fingerprint.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let started = Instant::now();
    let mut during = Vec::new();
    let tasks = runtime.block_on(async {
        let mut tasks = Vec::new();
        for (i, (name, token)) in names.into_iter().enumerate() {
            tasks.push(edges::simulated_edge(addr.clone(), token, fingerprint.clone(), name).await);
            if i % 10 == 9 {
                during.push(time("/").0);
            }
        }
        tasks
    });
    let connected = started.elapsed();
    datum_tests::wait_for("every edge in sync", Duration::from_secs(120), || {
        let status = hub.run(&["status", "--json"]);
        status.json().as_array().map(|a| a.iter().filter(|s| s["in_sync"] == true).count()) == Some(n_sites + n_edges)
    });
    std::thread::sleep(Duration::from_secs(3));
    during.sort();
    println!(
        "\n{n_edges} more edges enrolled and synced in {:.1} s; landing page meanwhile: p50 {:.0} ms, max {:.0} ms \
         ({} requests)\n",
        connected.as_secs_f64(),
        ms(percentile(&during, 0.5)),
        ms(*during.last().expect("times")),
        during.len()
    );
    println!("With the {n_edges} edges connected ({} sites):\n", n_sites + n_edges);
    table(&routes[..4]);
    println!(
        "hub resident memory while serving both: {:.0} MiB now, {:.0} MiB at its peak (target ≤ 512 MiB)",
        mib("VmRSS"),
        mib("VmHWM")
    );
    runtime.block_on(async {
        for t in tasks {
            t.abort();
        }
    });
    hub.kill();
}
