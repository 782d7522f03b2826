//! `cargo bench -p datum-tests --bench federation`: the federation's speed targets with the real binaries on
//! loopback, each next to its comparison measured in the same run.
//!
//! 1. Three edges with 5,000 offline changes each, converging after the hub comes back (target: ≤ 5 s).
//! 2. First sync of a site with 10,000 assets and 1 GiB of configuration files, in MB/s, next to raw QUIC
//!    and TLS/TCP throughput of the same transport code with the same kind of certificates.
//! 3. A hub holding 200 concurrently connected (and synced) edges: its resident memory (target: < 512 MiB).
//!
//! `DATUM_BENCH_QUICK=1` runs smaller sizes; `DATUM_BENCH_ONLY=converge|first|many` runs one part.
//! Prints a Markdown table; docs/PERFORMANCE.md records a run.

use std::io::Write as _;
use std::time::{Duration, Instant};

use automerge::Automerge;
use datum_host::net::{pki, tls, transport};
use datum_shared::DocId;
use datum_tests::{bin, Backend, Hub, Plant};

#[path = "common/edges.rs"]
mod edges;
use edges::simulated_edge;

fn quick() -> bool {
    std::env::var("DATUM_BENCH_QUICK").is_ok_and(|v| !v.is_empty())
}

fn only(part: &str) -> bool {
    std::env::var("DATUM_BENCH_ONLY").map(|v| v.is_empty() || v == part).unwrap_or(true)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    println!("binaries: {} {}\n", bin("datum-edge").display(), bin("datum-hub").display());
    println!("| measurement | result | comparison (same run) |");
    println!("|---|---|---|");
    if only("converge") {
        converge_after_outage();
    }
    if only("first") {
        first_sync_throughput();
    }
    if only("many") {
        many_connected_edges();
    }
}

fn query(data: &std::path::Path, sql: &str) -> String {
    let url = format!("sqlite://{}", data.join("datum.db").display());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("open");
        let v: String = sqlx::query_scalar(sql).fetch_one(&mut conn).await.expect("query");
        conn.close().await.expect("close");
        v
    })
}

/// Makes `n` separate automerge changes (one field each) to a plant's inventory document, stored the way the
/// edge stores its writes (one incremental chunk per change). The CLI would take minutes for 15,000 writes;
/// the sync sees exactly what it would have written.
fn offline_changes(plant: &Plant, n: usize) {
    let site_id = query(&plant.data, "SELECT value FROM meta WHERE key = 'site_id'");
    let doc_id = DocId::site(&site_id, "inventory");
    let url = format!("sqlite://{}", plant.data.join("datum.db").display());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("open");
        let chunks: Vec<Vec<u8>> = sqlx::query_scalar("SELECT bytes FROM doc_chunks WHERE doc_id = ? ORDER BY seq")
            .bind(doc_id.as_str())
            .fetch_all(&mut conn)
            .await
            .expect("chunks");
        let mut doc = Automerge::load(&chunks.concat()).expect("load").with_actor(automerge::ActorId::random());
        let mut tx_db = conn.begin().await.expect("begin");
        let mut seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM doc_chunks WHERE doc_id = ?")
            .bind(doc_id.as_str())
            .fetch_one(&mut *tx_db)
            .await
            .expect("seq");
        for i in 0..n {
            let before = doc.get_heads();
            let mut tx = doc.transaction();
            let record = serde_json::json!({"name": format!("plc-{}", i % 50), "note": format!("offline edit {i}")});
            datum_shared::document::put_record(&mut tx, "bench_edits", &format!("e{}", i % 50), &record).expect("put");
            tx.commit();
            seq += 1;
            sqlx::query("INSERT INTO doc_chunks (doc_id, seq, kind, bytes) VALUES (?, ?, 'incremental', ?)")
                .bind(doc_id.as_str())
                .bind(seq)
                .bind(doc.save_after(&before))
                .execute(&mut *tx_db)
                .await
                .expect("insert");
        }
        tx_db.commit().await.expect("commit");
        conn.close().await.expect("close");
    });
}

fn converge_after_outage() {
    let n = if quick() { 500 } else { 5_000 };
    let mut hub = Hub::new(Backend::Sqlite);
    hub.start(true);
    let plants: Vec<Plant> = ["north", "south", "east"]
        .iter()
        .map(|site| {
            let plant = Plant::new(site);
            plant.ok(&["asset", "add", "plc-0", "--kind", "plc", "--criticality", "high"]);
            let token = hub.add_site(site);
            assert_eq!(plant.enroll(&hub, &token).code, 0);
            assert_eq!(plant.sync("auto").code, 0);
            plant
        })
        .collect();
    hub.kill();
    for plant in &plants {
        offline_changes(plant, n);
    }
    hub.start(true);
    let start = Instant::now();
    let children: Vec<_> = plants
        .iter()
        .map(|p| p.command(&["sync", "--once", "--json"]).stdout(std::process::Stdio::piped()).spawn().expect("spawn"))
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "sync failed: {}", String::from_utf8_lossy(&out.stdout));
    }
    let took = start.elapsed();
    println!(
        "| 3 edges × {n} offline changes converge after reconnecting (3 `sync --once` in parallel, hub SQLite) | {:.2} s | target ≤ 5 s |",
        took.as_secs_f64()
    );
}

fn noisy(mib: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(mib << 20);
    let mut x = seed | 1;
    while out.len() < mib << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let _ = writeln!(out, "set firewall rule {} action accept destination {:016x}", x % 9999, x);
    }
    out.truncate(mib << 20);
    out
}

fn first_sync_throughput() {
    let (n_assets, n_files, mib_each) = if quick() { (1_000, 4, 16) } else { (10_000, 16, 64) };
    let mut hub = Hub::new(Backend::Sqlite);
    hub.start(true);
    let plant = Plant::new("big");
    let mut csv = String::from("name,kind,criticality,zone\n");
    for i in 0..n_assets {
        csv.push_str(&format!("dev-{i},plc,medium,zone-{}\n", i % 20));
    }
    let csv_path = plant.write("assets.csv", csv.as_bytes());
    plant.ok(&["asset", "import", csv_path.to_str().expect("utf-8")]);
    let mut total = 0u64;
    for i in 0..n_files {
        let bytes = noisy(mib_each, 1000 + i as u64);
        total += bytes.len() as u64;
        let path = plant.write("cfg.bin", &bytes);
        plant.ok(&["config", "capture", &format!("dev-{i}"), path.to_str().expect("utf-8")]);
    }
    let token = hub.add_site("big");
    assert_eq!(plant.enroll(&hub, &token).code, 0);
    let start = Instant::now();
    let run = plant.sync("auto");
    let took = start.elapsed();
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let via = run.json()["via"].as_str().unwrap_or("?").to_string();
    println!(
        "| first sync via {via}: {n_assets} assets, {n_files} files = {} MiB (`sync --once`, hub SQLite) | {:.1} s, {:.0} MB/s | raw transport below |",
        total >> 20,
        took.as_secs_f64(),
        total as f64 / 1e6 / took.as_secs_f64()
    );
    raw_transport_throughput();
}

fn raw_transport_throughput() {
    let mib = if quick() { 64 } else { 512 };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    runtime.block_on(async {
        let now = chrono::Utc::now();
        let ca = pki::new_ca("bench", now - chrono::Duration::hours(1), now + chrono::Duration::days(1)).expect("ca");
        let issuer = pki::Issuer::load(&ca.issuing_cert_pem, &ca.issuing_key_pem, &ca.root_cert_pem).expect("issuer");
        let (chain, key) =
            issuer.server_cert("bench", now - chrono::Duration::hours(1), now + chrono::Duration::days(1)).expect("cert");
        let (node_key, csr) = pki::new_node_key().expect("key");
        let node = issuer
            .sign_node_csr(&csr, "site", "node", now - chrono::Duration::hours(1), now + chrono::Duration::days(1))
            .expect("node cert");
        let server = tls::server_config(&chain, &key, &ca.root_cert_pem).expect("server config");
        let listener = transport::Listener::bind("127.0.0.1:0".parse().expect("addr"), server, true, true)
            .await
            .expect("bind");
        let addr = listener.local_addr();
        tokio::spawn(async move {
            while let Some(incoming) = listener.accept().await {
                tokio::spawn(async move {
                    let Ok(conn) = incoming.handshake().await else { return };
                    let (_tx, mut rx, _closer) = conn.split();
                    while let Ok(Some(_)) = rx.recv().await {}
                });
            }
        });
        for (name, mode) in [("QUIC", transport::Mode::QuicOnly), ("TLS/TCP", transport::Mode::TcpOnly)] {
            let client =
                tls::client_config(tls::HubTrust::Root(ca.root_cert_pem.clone()), Some((&node.chain_pem, &node_key)))
                    .expect("client config");
            let opts = transport::ConnectOpts { mode, ..Default::default() };
            let conn = transport::connect(&addr.to_string(), client, &opts).await.expect("connect");
            let (mut tx, _rx, closer) = conn.split();
            let frame = vec![0x5au8; 1 << 20];
            let start = Instant::now();
            for _ in 0..mib {
                tx.send(&frame).await.expect("send");
            }
            tx.finish().await;
            let took = start.elapsed();
            closer.close(0, "done");
            println!(
                "| raw {name} throughput, 1 MiB frames, {mib} MiB (same transport code, in process) | {:.0} MB/s | hardware/transport limit |",
                (mib as f64 * 1.048_576) / took.as_secs_f64()
            );
        }
    });
}

fn rss_kib(pid: u32, field: &str) -> i64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1)
}

fn many_connected_edges() {
    let n = if quick() { 20 } else { 200 };
    let mut hub = Hub::new(Backend::Sqlite);
    hub.start(true);
    let tokens: Vec<(String, String)> = (0..n)
        .map(|i| {
            let name = format!("site-{i:03}");
            let token = hub.add_site(&name);
            (name, token)
        })
        .collect();
    let pid = hub.server.as_ref().expect("running").id();
    let idle = rss_kib(pid, "VmRSS:");
    let addr = hub.addr().to_string();
    let fingerprint = hub.fingerprint.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let start = Instant::now();
    let (rss, hwm) = runtime.block_on(async {
        let mut tasks = Vec::new();
        for (name, token) in tokens {
            tasks.push(simulated_edge(addr.clone(), token, fingerprint.clone(), name).await);
        }
        // Every edge is connected and synced once its session has ended its first cycle; give the hub a moment
        // of steady state with all of them connected, then read its memory.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let status = hub.run(&["status", "--json"]);
            let synced = status.json().as_array().map(|a| a.iter().filter(|s| s["in_sync"] == true).count());
            if synced == Some(n) || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let rss = rss_kib(pid, "VmRSS:");
        let hwm = rss_kib(pid, "VmHWM:");
        for t in tasks {
            t.abort();
        }
        (rss, hwm)
    });
    println!(
        "| hub with {n} simulated edges connected and synced ({:.1} s to enroll and sync all) | {} MiB resident, peak {} MiB | target < 512 MiB; idle hub {} MiB |",
        start.elapsed().as_secs_f64(),
        rss / 1024,
        hwm / 1024,
        idle / 1024
    );
}
