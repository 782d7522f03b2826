//! Federation end to end with the real binaries on loopback: a hub (SQLite and PostgreSQL) and edges that
//! enroll, work offline, sync over QUIC or TLS/TCP, and are refused when they should be.

use datum_tests::*;
use serde_json::Value;

fn plant_with_assets(site: &str, n: usize) -> Plant {
    let plant = Plant::new(site);
    for i in 0..n {
        plant.ok(&["asset", "add", &format!("plc-{i}"), "--kind", "plc", "--criticality", "high", "--zone", "cell-1"]);
    }
    plant
}

fn hub_assets(hub: &Hub, site: Option<&str>) -> Vec<Value> {
    let mut args = vec!["asset", "list", "--json"];
    if let Some(s) = site {
        args.extend(["--site", s]);
    }
    hub.ok(&args).json().as_array().expect("array").clone()
}

fn status_of(hub: &Hub, site: &str) -> Value {
    let run = hub.run(&["status", "--json"]);
    assert!(run.code == 0 || run.code == 1, "status failed: {}{}", run.stdout, run.stderr);
    run.json().as_array().expect("array").iter().find(|s| s["site"] == site).cloned().expect("site in status")
}

fn converge_offline_week(backend: Backend) {
    let mut hub = Hub::new(backend);
    hub.start(true);
    let plants: Vec<Plant> = ["north", "south", "east"].iter().map(|s| plant_with_assets(s, 3)).collect();
    for (plant, site) in plants.iter().zip(["north", "south", "east"]) {
        let token = hub.add_site(site);
        let run = plant.enroll(&hub, &token);
        assert_eq!(run.code, 0, "enroll {site}: {}{}", run.stdout, run.stderr);
        let cfg = plant.write("cfg.txt", format!("hostname {site}\ninterface Gi0/1\n description uplink\n").as_bytes());
        plant.ok(&["config", "capture", "plc-0", cfg.to_str().expect("utf-8 path")]);
        let run = plant.sync("auto");
        assert_eq!(run.code, 0, "sync {site}: {}{}\n{}", run.stdout, run.stderr, hub.log());
        assert_eq!(run.json()["files"], 1, "{}", run.stdout);
    }
    assert_eq!(hub_assets(&hub, None).len(), 9);
    assert_eq!(hub_assets(&hub, Some("south")).len(), 3);
    assert_eq!(hub_assets(&hub, Some("south"))[0]["site"], "south");

    // The WAN goes away for a week; every plant keeps working.
    hub.kill();
    for (day, plant) in plants.iter().enumerate() {
        plant.ok(&["asset", "add", "hmi-1", "--kind", "hmi", "--criticality", "medium"]);
        let cfg = plant.write("cfg.txt", format!("hostname x{day}\ninterface Gi0/1\n shutdown\n").as_bytes());
        plant.ok(&["config", "capture", "plc-0", cfg.to_str().expect("utf-8 path")]);
        let run = plant.sync("auto");
        assert_eq!(run.code, 1, "an unreachable hub is a finding, not an error: {}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains("unreachable") || run.stderr.contains("offline"), "{}", run.stderr);
    }

    // Back online, on the same address: everything arrives.
    hub.start(true);
    for plant in &plants {
        let run = plant.sync("auto");
        assert_eq!(run.code, 0, "{}{}\n{}", run.stdout, run.stderr, hub.log());
        assert_eq!(run.json()["files"], 1, "only the new file travels: {}", run.stdout);
    }
    assert_eq!(hub_assets(&hub, None).len(), 12);
    for site in ["north", "south", "east"] {
        let s = status_of(&hub, site);
        assert_eq!(s["in_sync"], true, "{s}");
        assert_eq!(s["assets"], 4, "{s}");
        assert_eq!(s["files_stored"], 2, "{s}");
        assert_eq!(s["files_missing"], 0, "{s}");
    }
    // A second pass has nothing to send and still confirms.
    let run = plants[0].sync("auto");
    assert_eq!(run.code, 0);
    assert_eq!(run.json()["files"], 0);
}

#[test]
fn three_edges_work_a_week_offline_then_converge_sqlite() {
    converge_offline_week(Backend::Sqlite);
}

#[test]
fn three_edges_work_a_week_offline_then_converge_postgres() {
    converge_offline_week(Backend::Postgres);
}

/// The hub's copy of a site holds every record of a large inventory, after a first sync (projected while the
/// files arrive, in statements of several hundred rows), and after records changed, left and arrived.
fn large_inventory_is_projected_whole(backend: Backend) {
    let mut hub = Hub::new(backend);
    hub.start(true);
    let plant = Plant::new("big");
    let n = 1_234;
    let csv = |from: usize, count: usize, criticality: &str| {
        let mut csv = String::from("name,kind,criticality,zone\n");
        for i in from..from + count {
            csv.push_str(&format!("dev-{i},plc,{criticality},zone-{}\n", i % 7));
        }
        plant.write("assets.csv", csv.as_bytes())
    };
    plant.ok(&["asset", "import", csv(0, n, "medium").to_str().expect("utf-8 path")]);
    let cfg = plant.write("cfg.txt", b"hostname big\ninterface Gi0/1\n description uplink\n");
    plant.ok(&["config", "capture", "dev-0", cfg.to_str().expect("utf-8 path")]);
    let token = hub.add_site("big");
    assert_eq!(plant.enroll(&hub, &token).code, 0);
    let run = plant.sync("auto");
    assert_eq!(run.code, 0, "{}{}\n{}", run.stdout, run.stderr, hub.log());
    assert_eq!(run.json()["files"], 1, "{}", run.stdout);
    let assets = hub_assets(&hub, Some("big"));
    assert_eq!(assets.len(), n);
    assert!(assets.iter().all(|a| a["criticality"] == "medium"), "{:?}", assets.first());
    let names: std::collections::BTreeSet<&str> = assets.iter().filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(names.len(), n);
    assert!(names.contains("dev-1233"));

    // Records change, leave and arrive; the projection follows.
    plant.ok(&["asset", "edit", "dev-5", "--criticality", "high"]);
    plant.ok(&["asset", "retire", "dev-6", "--reason", "replaced"]);
    plant.ok(&["asset", "import", csv(n, 66, "low").to_str().expect("utf-8 path")]);
    let run = plant.sync("auto");
    assert_eq!(run.code, 0, "{}{}\n{}", run.stdout, run.stderr, hub.log());
    let assets = hub_assets(&hub, Some("big"));
    assert_eq!(assets.len(), n + 66 - 1);
    let of = |name: &str| assets.iter().find(|a| a["name"] == name).cloned();
    assert_eq!(of("dev-5").expect("dev-5")["criticality"], "high");
    assert_eq!(of("dev-6"), None);
    assert_eq!(of("dev-1299").expect("dev-1299")["criticality"], "low");
}

#[test]
fn a_large_inventory_is_projected_whole_sqlite() {
    large_inventory_is_projected_whole(Backend::Sqlite);
}

#[test]
fn a_large_inventory_is_projected_whole_postgres() {
    large_inventory_is_projected_whole(Backend::Postgres);
}

#[test]
fn tcp_fallback_carries_the_sync_when_udp_is_blocked() {
    let mut hub = Hub::new(Backend::Sqlite);
    hub.start(false);
    let plant = plant_with_assets("west", 2);
    let token = hub.add_site("west");
    let run = plant.enroll(&hub, &token);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let run = plant.sync("auto");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json()["via"], "tcp");
    // QUIC only cannot work without UDP: reported as unreachable, not as success.
    assert_eq!(plant.sync("quic").code, 1);
    // A transport that does not exist is a usage error naming the choices.
    let run = plant.run(&["sync", "--once", "--transport", "udp"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("auto") && run.stderr.contains("tcp"), "{}", run.stderr);
    assert_eq!(hub_assets(&hub, Some("west")).len(), 2);
}

#[test]
fn enrollment_tokens_are_single_use_bound_and_expire_sqlite() {
    enrollment_tokens_are_single_use_bound_and_expire(Backend::Sqlite);
}

#[test]
fn enrollment_tokens_are_single_use_bound_and_expire_postgres() {
    enrollment_tokens_are_single_use_bound_and_expire(Backend::Postgres);
}

fn enrollment_tokens_are_single_use_bound_and_expire(backend: Backend) {
    let mut hub = Hub::new(backend);
    hub.start(true);
    let token = hub.add_site("north");
    let north = Plant::new("north");
    let south = Plant::new("south");
    // A token for north does not enroll south.
    let run = south.enroll(&hub, &token);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("for site north"), "{}", run.stderr);
    // Wrong fingerprint: the edge refuses the hub before sending the token.
    let wrong = "00".repeat(32);
    let run = north.run(&["enroll", "--hub", hub.addr(), "--token", &token, "--fingerprint", &wrong]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("not the hub"), "{}", run.stderr);
    assert_eq!(north.enroll(&hub, &token).code, 0);
    // Used once: a second node cannot use it.
    let north2 = Plant::new("north");
    let run = north2.enroll(&hub, &token);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("already used"), "{}", run.stderr);
    let run = hub.ok(&["site", "token", "north", "--json"]);
    let token2 = run.json()["token"].as_str().expect("token").to_string();
    // A new token for north does not let a different site id take the site over.
    let run = north2.enroll(&hub, &token2);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("another site id"), "{}", run.stderr);
    // Expired: the hub's clock is two days ahead.
    let token3 = hub.add_site("east");
    hub.kill();
    hub.now = Some((chrono_now_plus_hours(80)).to_string());
    hub.start(true);
    let east = Plant::new("east");
    let run = east.enroll(&hub, &token3);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("expired"), "{}", run.stderr);
}

fn chrono_now_plus_hours(hours: i64) -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
    let t = secs + hours * 3600;
    // RFC 3339 from a Unix time without pulling chrono into the test crate.
    let days = t.div_euclid(86_400);
    let rem = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[test]
fn foreign_expired_and_revoked_certificates_are_refused() {
    let mut hub = Hub::new(Backend::Sqlite);
    hub.start(true);
    let mut other = Hub::new(Backend::Sqlite);
    other.start(true);

    // An edge enrolled with another hub (another CA) presents its certificate to ours.
    let stranger = Plant::new("north");
    let token = other.add_site("north");
    assert_eq!(stranger.enroll(&other, &token).code, 0);
    let ours: Value = {
        let local = Plant::new("south");
        let token = hub.add_site("south");
        assert_eq!(local.enroll(&hub, &token).code, 0);
        serde_json::from_slice(&std::fs::read(local.data.join("identity/hub.json")).expect("hub.json")).expect("json")
    };
    let path = stranger.data.join("identity/hub.json");
    let mut link: Value = serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    link["address"] = ours["address"].clone();
    link["root_pem"] = ours["root_pem"].clone();
    std::fs::write(&path, serde_json::to_vec(&link).expect("json")).expect("write");
    for transport in ["quic", "tcp"] {
        let run = stranger.sync(transport);
        assert_eq!(run.code, 2, "{transport}: {}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains("refused"), "{}", run.stderr);
    }

    // A certificate that expired: issued by a hub whose clock was 100 days behind.
    hub.kill();
    hub.now = Some(chrono_now_plus_hours(-24 * 100));
    hub.start(true);
    let late = Plant::new("west");
    let token = hub.add_site("west");
    assert_eq!(late.enroll(&hub, &token).code, 0);
    hub.kill();
    hub.now = None;
    hub.start(true);
    let run = late.sync("auto");
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);

    // Revoked: refused at the next handshake.
    let east = Plant::new("east");
    let token = hub.add_site("east");
    assert_eq!(east.enroll(&hub, &token).code, 0);
    assert_eq!(east.sync("auto").code, 0);
    hub.ok(&["site", "revoke", "east"]);
    let run = east.sync("auto");
    assert_ne!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("revoked"), "{}", run.stderr);
    assert_eq!(status_of(&hub, "east")["revoked"], true);
}

/// A compromised edge: a real, enrolled node certificate, but a client that sends whatever it likes.
struct Forger {
    tx: datum_host::net::transport::FrameSender,
    rx: datum_host::net::transport::FrameReceiver,
    closer: datum_host::net::transport::Closer,
    seq: u64,
    /// The `datum-sync` version the handshake negotiated: the one its `Hello` must name.
    protocol: u32,
}

impl Forger {
    async fn connect(plant: &Plant) -> Forger {
        use datum_host::net::{tls, transport};
        let link: Value =
            serde_json::from_slice(&std::fs::read(plant.data.join("identity/hub.json")).expect("hub.json"))
                .expect("json");
        let s = |k: &str| link[k].as_str().expect("field").to_string();
        let config = tls::client_config(tls::HubTrust::Root(s("root_pem")), Some((&s("chain_pem"), &s("key_pem"))))
            .expect("client config");
        let conn =
            transport::connect(&s("address"), config, &transport::ConnectOpts::default()).await.expect("connect");
        let protocol = conn.protocol;
        let (tx, rx, closer) = conn.split();
        Forger { tx, rx, closer, seq: 0, protocol }
    }

    /// A `Hello` claiming to be a node of `site_id`, in the negotiated version.
    async fn hello(&mut self, site_id: &str) {
        let protocol = self.protocol;
        let site_id = Some(site_id.to_string());
        self.send(datum_shared::sync::wire::Msg::Hello { protocol, node: "n".into(), site_id, store: "x".into() })
            .await;
    }

    async fn send(&mut self, msg: datum_shared::sync::wire::Msg) {
        self.seq += 1;
        let frame = datum_shared::sync::wire::Frame { seq: self.seq, msg }.encode();
        let _ = self.tx.send(&frame).await;
    }

    /// Reads until the hub rejects us (returns its reason) or hangs up; then hangs up.
    async fn rejection(mut self) -> Option<String> {
        use datum_shared::sync::wire::{Frame, Msg};
        let reason = loop {
            match tokio::time::timeout(std::time::Duration::from_secs(20), self.rx.recv()).await {
                Ok(Ok(Some(bytes))) => {
                    if let Ok(Frame { msg: Msg::Reject { reason }, .. }) = Frame::decode(&bytes) {
                        break Some(reason);
                    }
                }
                _ => break None,
            }
        };
        self.closer.close(0, "bye");
        reason
    }
}

/// An automerge sync message that carries one new change to a document with one record.
fn sync_message_with_changes() -> Vec<u8> {
    use automerge::sync::SyncDoc;
    let mut doc = automerge::Automerge::new();
    let mut tx = doc.transaction();
    datum_shared::document::put_record(&mut tx, "assets", "evil", &serde_json::json!({"name": "evil"})).expect("put");
    tx.commit();
    let empty = automerge::Automerge::new();
    let mut their_state = automerge::sync::State::new();
    let first = empty.generate_sync_message(&mut their_state).expect("first message");
    let mut state = automerge::sync::State::new();
    doc.receive_sync_message(&mut state, first).expect("receive");
    let msg = doc.generate_sync_message(&mut state).expect("message with changes");
    assert!(!msg.changes.is_empty());
    msg.encode()
}

#[test]
fn an_edge_writing_another_sites_or_the_hubs_documents_is_rejected_and_recorded_sqlite() {
    an_edge_writing_another_sites_or_the_hubs_documents_is_rejected_and_recorded(Backend::Sqlite);
}

#[test]
fn an_edge_writing_another_sites_or_the_hubs_documents_is_rejected_and_recorded_postgres() {
    an_edge_writing_another_sites_or_the_hubs_documents_is_rejected_and_recorded(Backend::Postgres);
}

fn an_edge_writing_another_sites_or_the_hubs_documents_is_rejected_and_recorded(backend: Backend) {
    use datum_shared::sync::wire::{DocHeads, Msg};
    use datum_shared::DocId;
    let mut hub = Hub::new(backend);
    hub.start(true);
    let north = plant_with_assets("north", 1);
    let south = plant_with_assets("south", 1);
    for (plant, site) in [(&north, "north"), (&south, "south")] {
        let token = hub.add_site(site);
        assert_eq!(plant.enroll(&hub, &token).code, 0);
        assert_eq!(plant.sync("auto").code, 0);
    }
    let south_site_id = query_string(&south.data, "SELECT value FROM meta WHERE key = 'site_id'");
    let north_site_id = query_string(&north.data, "SELECT value FROM meta WHERE key = 'site_id'");
    let south_inventory = DocId::site(&south_site_id, "inventory");
    let templates = DocId::parse("hub/templates").expect("id");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let reasons = runtime.block_on(async {
        let mut reasons = Vec::new();
        // 1. Offers south's inventory in its manifest.
        let mut f = Forger::connect(&north).await;
        f.hello(&north_site_id).await;
        f.send(Msg::Manifest { docs: vec![DocHeads { doc: south_inventory.clone(), heads: vec![[1; 32]] }] }).await;
        reasons.push(f.rejection().await);
        // 2. Sends changes to south's inventory without offering it.
        let mut f = Forger::connect(&north).await;
        f.hello(&north_site_id).await;
        f.send(Msg::Manifest { docs: vec![] }).await;
        f.send(Msg::Sync { doc: south_inventory.clone(), data: sync_message_with_changes() }).await;
        reasons.push(f.rejection().await);
        // 3. Writes a hub-owned document.
        let mut f = Forger::connect(&north).await;
        f.hello(&north_site_id).await;
        f.send(Msg::Manifest { docs: vec![DocHeads { doc: templates.clone(), heads: vec![[2; 32]] }] }).await;
        f.send(Msg::Sync { doc: templates.clone(), data: sync_message_with_changes() }).await;
        reasons.push(f.rejection().await);
        // 4. Writes the hub's document addressed to its own site (its template assignments).
        let own = DocId::hub_for(&north_site_id, "templates");
        let mut f = Forger::connect(&north).await;
        f.hello(&north_site_id).await;
        f.send(Msg::Manifest { docs: vec![DocHeads { doc: own.clone(), heads: vec![[3; 32]] }] }).await;
        f.send(Msg::Sync { doc: own.clone(), data: sync_message_with_changes() }).await;
        reasons.push(f.rejection().await);
        // 5. Claims to be south.
        let mut f = Forger::connect(&north).await;
        f.hello(&south_site_id).await;
        reasons.push(f.rejection().await);
        reasons
    });
    for (i, reason) in reasons.iter().enumerate() {
        assert!(reason.is_some(), "attack {i} was not rejected: {reasons:?}\n{}", hub.log());
    }
    let shown = hub.ok(&["site", "show", "north", "--json"]).json();
    let violations = shown["violations"].as_array().expect("violations");
    assert_eq!(violations.len(), 5, "every attempt is recorded: {shown}");
    assert!(violations.iter().any(|v| v["reason"].as_str().expect("reason").contains("hub/templates")), "{shown}");
    // South's data at the hub is untouched and north still syncs honestly.
    let south_assets = hub_assets(&hub, Some("south"));
    assert_eq!(south_assets.len(), 1);
    assert_eq!(south_assets[0]["name"], "plc-0");
    assert_eq!(north.sync("auto").code, 0);
    assert_eq!(status_of(&hub, "north")["violations"], 5);
}

fn query_string(data: &std::path::Path, sql: &str) -> String {
    let url = format!("sqlite://{}", data.join("datum.db").display());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("open database");
        let v: String = sqlx::query_scalar(sql).fetch_one(&mut conn).await.expect("query");
        conn.close().await.expect("close");
        v
    })
}

#[test]
fn revocation_cuts_a_live_connection_and_the_daemon_pushes_changes_promptly() {
    use datum_shared::sync::wire::Msg;
    let mut hub = Hub::new(Backend::Sqlite);
    hub.start(true);
    let north = plant_with_assets("north", 1);
    let token = hub.add_site("north");
    assert_eq!(north.enroll(&hub, &token).code, 0);

    // The continuous mode: a change made at the plant reaches the hub within seconds, while the plant's
    // commands keep working (they wait for a sync pass instead of failing on the lock).
    let mut daemon = north
        .command(&["sync", "--interval", "1"])
        .env("DATUM_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn sync daemon");
    wait_for("the first pass", std::time::Duration::from_secs(30), || hub_assets(&hub, Some("north")).len() == 1);
    for i in 0..3 {
        north.ok(&["asset", "add", &format!("hmi-{i}"), "--kind", "hmi", "--criticality", "low"]);
    }
    let pushed = std::time::Instant::now();
    wait_for("the daemon to push the new assets", std::time::Duration::from_secs(30), || {
        hub_assets(&hub, Some("north")).len() == 4
    });
    eprintln!("changes reached the hub {:?} after the last command", pushed.elapsed());
    let _ = daemon.kill();
    let _ = daemon.wait();

    // A connection that is open when the site is revoked is cut.
    let north_site_id = query_string(&north.data, "SELECT value FROM meta WHERE key = 'site_id'");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut f = Forger::connect(&north).await;
        f.hello(&north_site_id).await;
        f.send(Msg::Manifest { docs: vec![] }).await;
        // The hub answers (hello, manifest…); the connection stays open while we say nothing more.
        let first = tokio::time::timeout(std::time::Duration::from_secs(10), f.rx.recv()).await;
        assert!(matches!(first, Ok(Ok(Some(_)))), "{first:?}");
        hub.ok(&["site", "revoke", "north"]);
        let start = std::time::Instant::now();
        let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while let Ok(Some(_)) = f.rx.recv().await {}
        })
        .await;
        assert!(ended.is_ok(), "the live connection was not cut");
        eprintln!("revocation cut the live connection after {:?}", start.elapsed());
    });
}

#[test]
fn node_certificates_are_renewed_over_the_sync_channel() {
    let mut hub = Hub::new(Backend::Sqlite);
    hub.start(true);
    let north = plant_with_assets("north", 1);
    let token = hub.add_site("north");
    assert_eq!(north.enroll(&hub, &token).code, 0);
    let before: Value =
        serde_json::from_slice(&std::fs::read(north.data.join("identity/hub.json")).expect("read")).expect("json");
    let run = north.sync("auto");
    assert_eq!(run.json()["renewed"], false, "a fresh certificate is not renewed");
    // 70 days later (certificates last 90): renewed during the sync, no one acts.
    let mut later = north.command(&["sync", "--once", "--json"]);
    later.env("DATUM_NOW", chrono_now_plus_hours(24 * 70));
    let out = later.output().expect("run");
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["renewed"], true, "{report} {}", String::from_utf8_lossy(&out.stderr));
    let after: Value =
        serde_json::from_slice(&std::fs::read(north.data.join("identity/hub.json")).expect("read")).expect("json");
    assert_ne!(before["chain_pem"], after["chain_pem"]);
    assert_ne!(before["key_pem"], after["key_pem"], "a new key with the new certificate");
    // The new certificate works, and the hub knows both (the old one superseded).
    assert_eq!(north.sync("auto").code, 0);
    let shown = hub.ok(&["site", "show", "north", "--json"]).json();
    let nodes = shown["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 2, "{shown}");
    assert!(nodes[0]["replaced_by"].is_string() && nodes[1]["replaced_by"].is_null(), "{shown}");
}

/// Pseudo-random text that zstd cannot shrink much, so transfers take measurable time.
fn noisy_config(seed: u64, bytes: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(bytes + 64);
    while out.len() < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(format!("set value {:016x}\n", x).as_bytes());
    }
    out
}

fn hub_count(hub: &Hub, sql: &str) -> i64 {
    let url = format!("sqlite://{}?mode=ro", hub.data.join("hub.db").display());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        use sqlx::Connection;
        let Ok(mut conn) = sqlx::SqliteConnection::connect(&url).await else { return 0 };
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap_or(0);
        let _ = conn.close().await;
        n
    })
}

#[test]
fn kill_9_of_hub_and_edge_during_sync_then_converge_without_repair() {
    let mut hub = Hub::new(Backend::Sqlite);
    hub.start(true);
    let north = plant_with_assets("north", 2);
    let token = hub.add_site("north");
    assert_eq!(north.enroll(&hub, &token).code, 0);
    for i in 0..8 {
        let file = north.write(&format!("cfg-{i}.txt"), &noisy_config(i, 3 << 20));
        north.ok(&["config", "capture", "plc-0", file.to_str().expect("utf-8"), "--slot", &format!("s{i}")]);
    }

    // The hub dies in the middle of receiving files.
    let mut sync = north.command(&["sync", "--once"]).stdout(std::process::Stdio::null()).spawn().expect("spawn");
    wait_for("the hub to receive part of a file", std::time::Duration::from_secs(60), || {
        hub_count(&hub, "SELECT COALESCE(SUM(received), 0) FROM blobs") > 0
    });
    hub.kill();
    let status = sync.wait().expect("wait");
    assert_eq!(status.code(), Some(1), "an interrupted sync is reported as not in sync");
    hub.start(true);

    // The edge dies in the middle of sending, twice.
    for _ in 0..2 {
        let before = hub_count(&hub, "SELECT COALESCE(SUM(received), 0) FROM blobs");
        let complete = hub_count(&hub, "SELECT COUNT(*) FROM blobs WHERE complete = 1");
        if complete == 8 {
            break;
        }
        let mut sync = north.command(&["sync", "--once"]).stdout(std::process::Stdio::null()).spawn().expect("spawn");
        wait_for("more pieces at the hub", std::time::Duration::from_secs(60), || {
            hub_count(&hub, "SELECT COALESCE(SUM(received), 0) FROM blobs") > before
        });
        let _ = sync.kill();
        let _ = sync.wait();
    }

    // Both come back: no repair step, the next pass completes, nothing is lost or damaged.
    let run = north.sync("auto");
    assert_eq!(run.code, 0, "{}{}\n{}", run.stdout, run.stderr, hub.log());
    north.ok(&["audit", "verify"]);
    north.ok(&["backup", "verify"]);
    let s = status_of(&hub, "north");
    assert_eq!(s["files_stored"], 8, "{s}");
    assert_eq!(s["files_missing"], 0, "{s}");
    assert_eq!(s["in_sync"], true, "{s}");
    assert_eq!(hub_count(&hub, "SELECT COUNT(*) FROM blobs WHERE complete = 1 AND size = received"), 8);
    let partial = hub.data.join("blobs/partial");
    assert_eq!(std::fs::read_dir(&partial).expect("partial").count(), 0, "every file moved into place");
}

/// A UDP relay between an edge and the hub that drops a share of the datagrams in both directions.
fn lossy_udp_proxy(upstream: std::net::SocketAddr, loss_percent: u64) -> std::net::SocketAddr {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind proxy");
    let addr = socket.local_addr().expect("addr");
    let to_hub = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind proxy upstream side");
    to_hub.connect(upstream).expect("connect upstream");
    let client: std::sync::Arc<std::sync::Mutex<Option<std::net::SocketAddr>>> = Default::default();
    let (a, b) = (socket.try_clone().expect("clone"), to_hub.try_clone().expect("clone"));
    let c = client.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        while let Ok((n, from)) = a.recv_from(&mut buf) {
            *c.lock().expect("lock") = Some(from);
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 100 >= loss_percent {
                let _ = b.send(&buf[..n]);
            }
        }
    });
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        while let Ok(n) = to_hub.recv(&mut buf) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let to = *client.lock().expect("lock");
            if let (Some(to), true) = (to, x % 100 >= loss_percent) {
                let _ = socket.send_to(&buf[..n], to);
            }
        }
    });
    addr
}

#[test]
fn quic_sync_survives_5_to_20_percent_packet_loss() {
    let mut hub = Hub::new(Backend::Sqlite);
    hub.start(true);
    for (i, loss) in [5u64, 10, 20].into_iter().enumerate() {
        let site = format!("plant-{loss}");
        let plant = plant_with_assets(&site, 3);
        let token = hub.add_site(&site);
        assert_eq!(plant.enroll(&hub, &token).code, 0);
        for j in 0..2 {
            let file = plant.write(&format!("cfg-{j}.txt"), &noisy_config(100 + i as u64 * 10 + j, 1 << 20));
            plant.ok(&["config", "capture", "plc-0", file.to_str().expect("utf-8"), "--slot", &format!("s{j}")]);
        }
        let proxy = lossy_udp_proxy(hub.addr().parse().expect("hub address"), loss);
        let path = plant.data.join("identity/hub.json");
        let mut link: Value = serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        link["address"] = Value::String(proxy.to_string());
        std::fs::write(&path, serde_json::to_vec(&link).expect("json")).expect("write");
        let start = std::time::Instant::now();
        let run = plant.sync("quic");
        assert_eq!(run.code, 0, "{loss}% loss: {}{}", run.stdout, run.stderr);
        assert_eq!(run.json()["via"], "quic");
        eprintln!("{loss}% loss: 2 MiB synced over QUIC in {:?}", start.elapsed());
        let s = status_of(&hub, &site);
        assert_eq!((s["files_stored"].as_i64(), s["assets"].as_i64()), (Some(2), Some(3)), "{s}");
    }
}

#[test]
fn hub_status_reports_the_same_drift_and_overdue_evidence_as_the_edge() {
    let mut hub = Hub::new(Backend::Sqlite);
    hub.start(true);
    let plant = plant_with_assets("north", 2);
    let v1 = plant.write("v1.cfg", b"hostname fw\ninterface Gi0/1\n ip address 10.0.0.1 255.255.255.0\n");
    let v2 = plant.write("v2.cfg", b"hostname fw\ninterface Gi0/1\n ip address 10.0.0.9 255.255.255.0\n");
    plant.ok(&["config", "capture", "plc-0", v1.to_str().expect("utf-8")]);
    plant.ok(&["baseline", "approve", "plc-0", "--reason", "commissioning"]);
    plant.ok(&["config", "capture", "plc-0", v2.to_str().expect("utf-8")]);
    plant.ok(&["config", "capture", "plc-1", v1.to_str().expect("utf-8")]);
    plant.ok(&["restore-test", "record", "plc-1", "--version", "1", "--result", "pass", "--method", "lab"]);
    let token = hub.add_site("north");
    assert_eq!(plant.enroll(&hub, &token).code, 0);
    assert_eq!(plant.sync("auto").code, 0);

    let edge_drift = plant.run(&["drift", "--json"]).json();
    let edge_unauthorized =
        edge_drift.as_array().expect("array").iter().filter(|e| e["status"] == "drift-unauthorized").count();
    let edge_backups = plant.run(&["backup", "status", "--json"]).json();
    let edge_overdue = edge_backups
        .as_array()
        .expect("array")
        .iter()
        .filter(|b| b["backup_overdue"] == true || b["restore_test_overdue"] == true)
        .count();
    assert_eq!(edge_unauthorized, 1, "{edge_drift}");
    assert_eq!(edge_overdue, 1, "plc-0 has no restore test: {edge_backups}");

    let s = status_of(&hub, "north");
    assert_eq!(s["unauthorized_drift"], edge_unauthorized, "{s}");
    assert_eq!(s["overdue_backups"], edge_overdue, "{s}");
    assert_eq!(s["overdue_reviews"], 0, "{s}");
    assert_eq!(hub.run(&["status"]).code, 1, "drift at a site is a finding at the hub");
}

/// The edge streams a stored file while it decompresses it, so damage at its end is found after the first
/// pieces went out: the last piece is held back, the hub is told, and no damaged file is ever complete there.
#[test]
fn a_stored_copy_found_damaged_while_it_is_sent_never_reaches_the_hub_complete() {
    let mut hub = Hub::new(Backend::Sqlite);
    hub.start(true);
    let north = plant_with_assets("north", 1);
    let token = hub.add_site("north");
    assert_eq!(north.enroll(&hub, &token).code, 0);
    let file = north.write("cfg.txt", &noisy_config(7, 3 << 20));
    north.ok(&["config", "capture", "plc-0", file.to_str().expect("utf-8")]);
    let mut blobs = Vec::new();
    for dir in std::fs::read_dir(north.data.join("blobs")).expect("blobs").flatten() {
        if dir.file_name() != "tmp" && dir.path().is_dir() {
            blobs.extend(std::fs::read_dir(dir.path()).expect("dir").flatten().map(|f| f.path()));
        }
    }
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    let mut bytes = std::fs::read(&blobs[0]).expect("blob");
    let near_end = bytes.len() - 64;
    bytes[near_end] ^= 0x55;
    std::fs::write(&blobs[0], &bytes).expect("write");

    let run = north.sync("auto");
    assert_eq!(run.code, 1, "a file that could not be sent is a finding: {}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("could not be sent") && run.stderr.contains("backup verify"), "{}", run.stderr);
    let not_sent = run.json()["files_not_sent"].as_array().expect("files not sent").clone();
    assert!(not_sent.len() == 1 && not_sent[0].as_str().is_some_and(|s| s.contains("damaged")), "{not_sent:?}");
    wait_for("the hub to record why", std::time::Duration::from_secs(30), || {
        hub.log().contains("stored copy is damaged")
    });
    // Pieces before the damage went out (the file is streamed), the whole never completed.
    wait_for("the first pieces at the hub", std::time::Duration::from_secs(30), || {
        hub_count(&hub, "SELECT COALESCE(SUM(received), 0) FROM blobs") > 0
    });
    assert_eq!(hub_count(&hub, "SELECT COUNT(*) FROM blobs WHERE complete = 1"), 0);
    let size = std::fs::metadata(&file).expect("captured file").len() as i64;
    let received = hub_count(&hub, "SELECT MAX(received) FROM blobs");
    assert!(received > 0 && received < size, "{received} of {size} bytes");
    let s = status_of(&hub, "north");
    assert_eq!(s["files_stored"], 0, "{s}");
    assert_eq!(s["in_sync"], false, "{s}");
}

/// `curl` to the edge's workspace under a name, trusting only the hub's root: (exit code, body).
fn curl_as(name: &str, port: &str, root: &std::path::Path) -> (i32, String) {
    let out = std::process::Command::new("curl")
        .args(["-s", "--max-time", "10", "--cacert"])
        .arg(root)
        .args(["--resolve", &format!("{name}:{port}:127.0.0.1"), &format!("https://{name}:{port}/healthz")])
        .output()
        .expect("run curl");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn the_hub_issues_the_edges_web_certificate_from_its_ca_and_the_service_picks_it_up() {
    use std::io::BufRead;
    let mut hub = Hub::new(Backend::Sqlite);
    hub.start(true);
    let plant = Plant::new("north");
    let token = hub.add_site("north");
    let run = plant.enroll(&hub, &token);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    // A hub without a web domain issues none; the sync goes on and the edge asks again a day later.
    let run = plant.sync("auto");
    assert_eq!(run.code, 0, "{}{}\n{}", run.stdout, run.stderr, hub.log());
    assert!(!plant.data.join("identity/web-hub.crt").exists());
    let refused = plant.data.join("identity/web-hub.refused");
    assert!(refused.exists(), "the refusal is remembered");
    hub.kill();
    hub.serve_args = vec!["--web-domain".into(), "plants.example.com".into()];
    hub.start(true);
    std::fs::remove_file(&refused).expect("a day later");

    // The service runs with its own certificate: a browser trusting only the company CA refuses it.
    plant.ok(&["user", "add", "admin", "--role", "site-admin"]);
    let config = plant.write("edge.toml", b"listen = \"127.0.0.1:0\"\nsync = false\n");
    let mut service = plant
        .command(&["serve", "--config", config.to_str().expect("utf-8")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve");
    let mut line = String::new();
    std::io::BufReader::new(service.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
    let port = line.trim().rsplit(':').next().expect("port").to_string();
    let root = hub.data.join("identity/root.pem");
    let name = "north.plants.example.com";
    assert_ne!(curl_as(name, &port, &root).0, 0, "the self-made certificate is not trusted by the company CA");

    // A sync brings the hub's certificate; the running service serves it within seconds, no restart.
    let run = plant.sync("auto");
    assert_eq!(run.code, 0, "{}{}\n{}", run.stdout, run.stderr, hub.log());
    assert_eq!(run.json()["web_cert"], true, "{}", run.stdout);
    wait_for("the hub's web certificate served", std::time::Duration::from_secs(30), || {
        curl_as(name, &port, &root) == (0, "ok".to_string())
    });
    // Issued for the site's name only: another plant's name does not verify.
    assert_ne!(curl_as("south.plants.example.com", &port, &root).0, 0);
    // Kept while it is fresh: the next pass does not ask again.
    let run = plant.sync("auto");
    assert_eq!(run.code, 0);
    assert!(run.json().get("web_cert").is_none(), "{}", run.stdout);
    service.kill().expect("kill");
    service.wait().expect("wait");
}

#[test]
fn the_service_keeps_the_plant_in_sync_and_fetches_its_web_certificate_itself() {
    use std::io::BufRead;
    let mut hub = Hub::new(Backend::Sqlite);
    hub.serve_args = vec!["--web-domain".into(), "plants.example.com".into()];
    hub.start(true);
    let plant = Plant::new("west");
    let token = hub.add_site("west");
    let run = plant.enroll(&hub, &token);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let login = String::from_utf8(std::process::Command::new("id").arg("-un").output().expect("id").stdout)
        .expect("utf-8")
        .trim()
        .to_string();
    plant.ok(&["user", "add", "admin", "--role", "site-admin,engineer", "--os-user", &login]);
    // The installed configuration: HTTPS, continuous sync inside the service (the default).
    let config = plant.write("edge.toml", b"listen = \"127.0.0.1:0\"\n");
    let log_path = plant.path("serve.log");
    let mut service = plant
        .command(&["serve", "--config", config.to_str().expect("utf-8")])
        .env("DATUM_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log_path).expect("log"))
        .spawn()
        .expect("serve");
    let mut line = String::new();
    std::io::BufReader::new(service.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
    let port = line.trim().rsplit(':').next().expect("port").to_string();
    // Work done on the command line while the service runs reaches the hub without a sync command.
    let run = Run::from(
        plant.command(&["asset", "add", "PLC-W1", "--kind", "plc"]).env_remove("DATUM_ACTOR").output().expect("run"),
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let started = std::time::Instant::now();
    let deadline = started + std::time::Duration::from_secs(60);
    while !hub_assets(&hub, Some("west")).iter().any(|a| a["name"] == "PLC-W1") {
        assert!(
            std::time::Instant::now() < deadline,
            "the new asset did not reach the hub in 60 s; the service's log:\n{}\nthe hub's:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default(),
            hub.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    // The service's own sync asked for the web certificate, and the service serves it.
    let root = hub.data.join("identity/root.pem");
    wait_for("the hub's web certificate served", std::time::Duration::from_secs(60), || {
        curl_as("west.plants.example.com", &port, &root) == (0, "ok".to_string())
    });
    service.kill().expect("kill");
    service.wait().expect("wait");
}
