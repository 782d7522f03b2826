//! `restore-from-hub` end to end with the real binaries: a plant whose disk died is rebuilt from the hub as a
//! new node of the same site, with every document and configuration file back; a token of another site is
//! refused; an interrupted restore can be run again.

use std::path::{Path, PathBuf};

use datum_tests::*;
use serde_json::Value;

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A captured file: asset, version, the original file.
struct Captured {
    asset: String,
    version: u64,
    file: PathBuf,
}

/// A plant with assets, captured field files (some in several versions), a baseline and a change, synced to
/// `hub` as site `site`.
fn plant_at_the_hub(hub: &Hub, site: &str, files: &[(&str, &str, &str)]) -> (Plant, Vec<Captured>) {
    let plant = Plant::new(site);
    let mut captured = Vec::new();
    for (asset, kind, rel) in files {
        if plant.run(&["asset", "show", asset]).code != 0 {
            plant.ok(&["asset", "add", asset, "--kind", kind, "--criticality", "high", "--zone", "cell-1"]);
        }
        let file = fixture(rel);
        let run = plant.ok(&["config", "capture", asset, path(&file), "--json"]);
        let version = run.json()["version"].as_u64().expect("version");
        captured.push(Captured { asset: asset.to_string(), version, file });
    }
    plant.ok(&["asset", "add", "hmi-1", "--kind", "hmi", "--criticality", "medium"]);
    plant.ok(&["baseline", "approve", files[0].0, "--version", "1", "--reason", "commissioning"]);
    plant.new_change(files[0].0, "low");
    let token = hub.add_site(site);
    let run = plant.enroll(hub, &token);
    assert_eq!(run.code, 0, "enroll: {}{}", run.stdout, run.stderr);
    let run = plant.sync("auto");
    assert_eq!(run.code, 0, "sync: {}{}\n{}", run.stdout, run.stderr, hub.log());
    (plant, captured)
}

fn restore_args<'a>(hub: &'a Hub, token: &'a str) -> Vec<&'a str> {
    vec!["restore-from-hub", "--hub", hub.addr(), "--token", token, "--fingerprint", &hub.fingerprint]
}

fn nodes_of(hub: &Hub, site: &str) -> Vec<Value> {
    hub.ok(&["site", "show", site, "--json"]).json()["nodes"].as_array().expect("nodes").clone()
}

/// Drift statuses by asset and slot (the report's order and texts, without times).
fn drift(plant: &Plant) -> (i32, Vec<(String, String, String)>) {
    let run = plant.run(&["drift", "--json"]);
    let entries = run.json().as_array().cloned().unwrap_or_default();
    let statuses =
        entries.iter().map(|e| (e["asset"].to_string(), e["slot"].to_string(), e["status"].to_string())).collect();
    (run.code, statuses)
}

#[test]
fn a_plant_whose_disk_died_is_rebuilt_from_the_hub_sqlite() {
    rebuilt_from_the_hub(Backend::Sqlite);
}

#[test]
fn a_plant_whose_disk_died_is_rebuilt_from_the_hub_postgres() {
    rebuilt_from_the_hub(Backend::Postgres);
}

fn rebuilt_from_the_hub(backend: Backend) {
    let mut hub = Hub::new(backend);
    hub.start(true);
    let files = [
        ("rtr-1", "router", "versions/GNS_MDF-RTR-1.v1.rsc"),
        ("rtr-1", "router", "versions/GNS_MDF-RTR-1.v2.rsc"),
        ("sw-1", "switch", "cisco-ios/oxidized_ios_C9200L-24P-4G_17.09.04a.cfg"),
        ("fw-1", "firewall", "fortigate/acidjunk_FGVM64_5.2_global.conf"),
        ("agg-1", "switch", "mikrotik/oxidized_routeros_CHR_7.10.1.rsc"),
    ];
    let (plant, captured) = plant_at_the_hub(&hub, "north", &files);
    // A restore test with its evidence file (SR 7.4): the file is the site's as much as its configurations.
    let evidence = plant.write("restore-photo.txt", b"bench restore of rtr-1 v1: checksums match\n");
    plant.ok(&[
        "restore-test",
        "record",
        "rtr-1",
        "--version",
        "1",
        "--result",
        "pass",
        "--method",
        "bench restore",
        "--evidence",
        path(&evidence),
    ]);
    let run = plant.sync("auto");
    assert_eq!(run.code, 0, "sync: {}{}\n{}", run.stdout, run.stderr, hub.log());
    let assets_before = plant.ok(&["asset", "list", "--json"]).json();
    let drift_before = drift(&plant);
    let old_node = nodes_of(&hub, "north")[0]["node"].as_str().expect("node").to_string();

    // The disk dies.
    std::fs::remove_dir_all(&plant.data).expect("remove the data directory");
    let token = hub.ok(&["site", "token", "north", "--json"]).json()["token"].as_str().expect("token").to_string();
    let rebuilt = Plant::empty();
    let mut args = restore_args(&hub, &token);
    args.extend(["--site", "north", "--node", "north-new"]);
    let run = rebuilt.run(&args);
    assert_eq!(run.code, 0, "restore: {}{}\n{}", run.stdout, run.stderr, hub.log());
    assert!(run.stdout.contains("restored site north"), "{}", run.stdout);
    assert!(!rebuilt.path(".data.restoring").exists(), "the staging directory is gone");

    // Everything is back: the inventory, every file byte for byte, the history, the drift report.
    assert_eq!(rebuilt.ok(&["asset", "list", "--json"]).json(), assets_before);
    for (i, c) in captured.iter().enumerate() {
        let out = rebuilt.path(&format!("export-{i}"));
        rebuilt.ok(&["config", "export", &c.asset, "--version", &c.version.to_string(), "--out", path(&out)]);
        assert_eq!(sha256_file(&out), sha256_file(&c.file), "{} v{} differs", c.asset, c.version);
    }
    let verify = rebuilt.ok(&["backup", "verify", "--json"]).json();
    let distinct: std::collections::BTreeSet<String> = captured.iter().map(|c| sha256_file(&c.file)).collect();
    assert_eq!(verify["blobs_checked"], distinct.len() + 1, "every file and the evidence are back: {verify}");
    assert_eq!(verify["problems"], serde_json::json!([]), "{verify}");
    let verify = rebuilt.ok(&["audit", "verify", "--json"]).json();
    assert_eq!(verify["intact"], true, "{verify}");
    let log = rebuilt.ok(&["audit", "log", "--json"]).json();
    let log = log.as_array().expect("entries");
    assert_eq!(log.len(), 1, "the new chain starts with the restore: {log:?}");
    assert_eq!(log[0]["op"], "site.restore");
    assert!(!log[0]["adopted"].as_array().expect("adopted heads").is_empty());
    assert_eq!(drift(&rebuilt), drift_before);

    // It is an ordinary enrolled edge of the same site now: it works and syncs.
    rebuilt.ok(&["asset", "add", "plc-9", "--kind", "plc", "--criticality", "low"]);
    let run = rebuilt.sync("auto");
    assert_eq!(run.code, 0, "sync after restore: {}{}\n{}", run.stdout, run.stderr, hub.log());
    let hub_assets = hub.ok(&["asset", "list", "--site", "north", "--json"]).json();
    assert_eq!(hub_assets.as_array().expect("array").len(), assets_before.as_array().expect("array").len() + 1);
    let nodes = nodes_of(&hub, "north");
    let state = |name: &str| nodes.iter().find(|n| n["node"] == name).map(|n| n["replaced_by"].is_null());
    assert_eq!(state("north-new"), Some(true), "the new node is current: {nodes:?}");
    assert_eq!(state(&old_node), Some(false), "the old node is replaced: {nodes:?}");
    // A second restore with the spent token changes nothing.
    let again = Plant::empty();
    let run = again.run(&restore_args(&hub, &token));
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("already used"), "{}", run.stderr);
    assert!(!again.data.exists());
}

#[test]
fn a_token_of_another_site_is_refused_and_nothing_is_made() {
    let mut hub = Hub::new(Backend::Sqlite);
    hub.start(true);
    let (_north, _) = plant_at_the_hub(&hub, "north", &[("sw-1", "switch", "cisco-ios/pybatfish_london.cfg")]);
    let (_south, _) = plant_at_the_hub(&hub, "south", &[("sw-1", "switch", "cisco-ios/pybatfish_tokyo.cfg")]);
    let south_token =
        hub.ok(&["site", "token", "south", "--json"]).json()["token"].as_str().expect("token").to_string();
    let nodes_before = nodes_of(&hub, "south");

    let rebuilt = Plant::empty();
    let mut args = restore_args(&hub, &south_token);
    args.extend(["--site", "north"]);
    let run = rebuilt.run(&args);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("this token is for site south, not north"), "{}", run.stderr);
    assert!(!rebuilt.data.exists(), "no data directory");
    assert_eq!(nodes_of(&hub, "south"), nodes_before, "the south node is untouched");

    // A site that never had an edge has nothing to restore.
    let token = hub.add_site("west");
    let run = Plant::empty().run(&restore_args(&hub, &token));
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("never been enrolled"), "{}", run.stderr);
}

#[test]
fn an_interrupted_restore_can_be_run_again() {
    let mut hub = Hub::new(Backend::Sqlite);
    hub.start(true);
    let mut files = Vec::new();
    for (i, rel) in [
        "cisco-ios/oxidized_asa_5512_9.12-4-67_single-context.cfg",
        "cisco-ios/oxidized_ios_C9200L-24P-4G_17.09.04a.cfg",
        "cisco-ios/oxidized_ios_C9800-L-F-K9_17.06.05.cfg",
        "cisco-ios/oxidized_ios_asr920_16.8.1b.cfg",
        "cisco-ios/oxidized_nxos_N5548_7.3.13.cfg",
        "cisco-ios/pybatfish_exitgw.cfg",
        "fortigate/acidjunk_FGVM64_5.2_vdom.conf",
        "mikrotik/oxidized_routeros_L009UiGS_7.15.2.rsc",
        "mikrotik/oxidized_routeros_RB5009UPr_S__7.18.2.rsc",
    ]
    .iter()
    .enumerate()
    {
        files.push((format!("dev-{i}"), *rel));
    }
    let files: Vec<(&str, &str, &str)> = files.iter().map(|(a, rel)| (a.as_str(), "switch", *rel)).collect();
    let (plant, captured) = plant_at_the_hub(&hub, "north", &files);
    std::fs::remove_dir_all(&plant.data).expect("remove the data directory");
    let token = hub.ok(&["site", "token", "north", "--json"]).json()["token"].as_str().expect("token").to_string();

    // kill -9 once the new node is enrolled and the staging directory is being filled.
    let rebuilt = Plant::empty();
    let staging = rebuilt.path(".data.restoring");
    let mut child = rebuilt.command(&restore_args(&hub, &token)).spawn().expect("spawn restore");
    let started = std::time::Instant::now();
    while !staging.join("identity/hub.json").exists() {
        assert!(child.try_wait().expect("poll").is_none(), "the restore ended before it could be interrupted");
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "the restore never enrolled");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(!rebuilt.data.exists(), "nothing half-made at the target");

    // The same command again (its token is spent: the enrollment kept in the staging directory is used).
    let run = rebuilt.run(&restore_args(&hub, &token));
    assert_eq!(run.code, 0, "rerun: {}{}\n{}", run.stdout, run.stderr, hub.log());
    assert!(!staging.exists());
    for (i, c) in captured.iter().enumerate() {
        let out = rebuilt.path(&format!("export-{i}"));
        rebuilt.ok(&["config", "export", &c.asset, "--version", &c.version.to_string(), "--out", path(&out)]);
        assert_eq!(sha256_file(&out), sha256_file(&c.file), "{} differs", c.asset);
    }
    rebuilt.ok(&["audit", "verify"]);
    rebuilt.ok(&["backup", "verify"]);
    let run = rebuilt.sync("auto");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
}

/// A large file goes back to a node being restored piece by piece: the hub reads, hashes and queues a few pieces
/// at a time (before, it read the whole file from its database and queued every frame at once: twice the file's
/// size in memory).
#[test]
fn a_large_file_is_restored_without_the_hub_holding_it_in_memory() {
    const MIB: usize = 1 << 20;
    let mut hub = Hub::new(Backend::Sqlite);
    hub.start(true);
    let plant = Plant::new("big");
    plant.ok(&["asset", "add", "historian", "--kind", "server"]);
    // 96 MiB of text that zstd cannot shrink much (captured streamed, sent in 96 pieces).
    let mut content = Vec::with_capacity(96 * MIB);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    while content.len() < 96 * MIB {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        content.extend_from_slice(format!("tag {} value {:016x}\n", x % 99_991, x).as_bytes());
    }
    content.truncate(96 * MIB);
    let file = plant.write("historian.db", &content);
    drop(content);
    plant.ok(&["config", "capture", "historian", path(&file)]);
    let token = hub.add_site("big");
    assert_eq!(plant.enroll(&hub, &token).code, 0);
    let run = plant.sync("auto");
    assert_eq!(run.code, 0, "sync: {}{}\n{}", run.stdout, run.stderr, hub.log());
    std::fs::remove_dir_all(&plant.data).expect("remove the data directory");

    // The hub's peak resident memory from here on (`5` resets it, Linux 4.0+).
    let pid = hub.server.as_ref().expect("hub running").id();
    let status = |field: &str| -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("hub status");
        let line = text.lines().find(|l| l.starts_with(field)).expect("field");
        line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("KiB")
    };
    // Where /proc does not let us reset the peak, the restore may still not raise it past the sync's.
    let reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
    let before = status("VmRSS:");
    let limit = if reset { before + 48 * 1024 } else { status("VmHWM:").max(before + 48 * 1024) };
    let token = hub.ok(&["site", "token", "big", "--json"]).json()["token"].as_str().expect("token").to_string();
    let rebuilt = Plant::empty();
    let run = rebuilt.run(&restore_args(&hub, &token));
    assert_eq!(run.code, 0, "restore: {}{}\n{}", run.stdout, run.stderr, hub.log());
    let peak = status("VmHWM:");
    let out = rebuilt.path("historian.out");
    rebuilt.ok(&["config", "export", "historian", "--version", "1", "--out", path(&out)]);
    assert_eq!(sha256_file(&out), sha256_file(&file), "the file came back whole");
    assert!(
        peak < limit,
        "the hub's resident memory rose from {before} KiB to {peak} KiB while it sent a 96 MiB file (limit {limit})"
    );
}

/// Hubs before 2026-12-03 kept received files in their database (`blob_chunks`); such a file still goes back
/// to a node being restored.
#[test]
fn a_file_an_older_hub_kept_in_its_database_is_restored() {
    let mut hub = Hub::new(Backend::Sqlite);
    hub.start(true);
    let (plant, captured) =
        plant_at_the_hub(&hub, "north", &[("fw-1", "firewall", "fortigate/acidjunk_FGVM64_5.2_global.conf")]);
    let hash = sha256_file(&captured[0].file);
    let stored = hub.data.join("blobs").join(&hash[..2]).join(&hash);
    let bytes = std::fs::read(&stored).expect("the hub's copy");
    std::fs::remove_file(&stored).expect("remove the file");
    let n = tamper_db(
        &hub.data.join("hub.db"),
        &format!("INSERT INTO blob_chunks (hash, pos, bytes) VALUES ('{hash}', 0, X'{}')", hex::encode(&bytes)),
    );
    assert_eq!(n, 1);
    std::fs::remove_dir_all(&plant.data).expect("remove the data directory");
    let token = hub.ok(&["site", "token", "north", "--json"]).json()["token"].as_str().expect("token").to_string();
    let rebuilt = Plant::empty();
    let run = rebuilt.run(&restore_args(&hub, &token));
    assert_eq!(run.code, 0, "restore: {}{}\n{}", run.stdout, run.stderr, hub.log());
    let out = rebuilt.path("export");
    rebuilt.ok(&["config", "export", "fw-1", "--version", &captured[0].version.to_string(), "--out", path(&out)]);
    assert_eq!(sha256_file(&out), hash);
}

/// Identical files at two sites are stored once at the hub but belong to both: each site counts them and gets
/// them back. A file whose copy at the hub is damaged is named in the restore, which still finishes (exit 1)
/// instead of failing on every retry.
#[test]
fn shared_files_belong_to_both_sites_and_a_damaged_copy_is_named() {
    let mut hub = Hub::new(Backend::Sqlite);
    hub.start(true);
    let common = "cisco-ios/pybatfish_london.cfg";
    let (_north, _) = plant_at_the_hub(&hub, "north", &[("sw-1", "switch", common)]);
    let (south, captured) = plant_at_the_hub(
        &hub,
        "south",
        &[("sw-1", "switch", common), ("fw-1", "firewall", "fortigate/acidjunk_FGVM64_5.2_global.conf")],
    );
    let status = hub.run(&["status", "--json"]).json();
    let files = |site: &str| {
        status.as_array().expect("sites").iter().find(|s| s["site"] == site).expect("site")["files_stored"].clone()
    };
    assert_eq!(files("north"), 1, "{status}");
    assert_eq!(files("south"), 2, "the file north sent first is south's too: {status}");

    // The hub's copy of south's own file is damaged on its disk.
    let damaged = sha256_file(&captured[1].file);
    let stored = hub.data.join("blobs").join(&damaged[..2]).join(&damaged);
    let mut bytes = std::fs::read(&stored).expect("the hub's copy");
    bytes[0] ^= 0x01;
    std::fs::write(&stored, &bytes).expect("damage the hub's copy");
    std::fs::remove_dir_all(&south.data).expect("remove the data directory");
    let token = hub.ok(&["site", "token", "south", "--json"]).json()["token"].as_str().expect("token").to_string();
    let rebuilt = Plant::empty();
    let run = rebuilt.run(&restore_args(&hub, &token));
    assert_eq!(run.code, 1, "restore: {}{}\n{}", run.stdout, run.stderr, hub.log());
    // Named by what it was, then by its hash.
    let what = format!(" v{}: file {damaged} ", captured[1].version);
    assert!(run.stdout.lines().any(|l| l.starts_with("NOT RECOVERED: fw-1/") && l.contains(&what)), "{}", run.stdout);
    assert!(hub.log().contains("damaged"), "the hub names its damaged copy: {}", hub.log());
    // The shared file came back although north sent it first.
    let out = rebuilt.path("export-common");
    let version = captured[0].version.to_string();
    rebuilt.ok(&["config", "export", "sw-1", "--version", &version, "--out", path(&out)]);
    assert_eq!(sha256_file(&out), sha256_file(&captured[0].file));
    // What is lost is reported, not hidden: backup verify names the missing file.
    let run = rebuilt.run(&["backup", "verify"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains(&damaged), "{}", run.stdout);
}
