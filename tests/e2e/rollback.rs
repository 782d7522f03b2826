//! The hub as witness of a plant's audit trail, with the real binaries: a data directory put back from an
//! older copy (database, WAL and `identity/audit-head` together, which nothing local can tell) is refused at
//! the next sync and shown by `datum-hub status`; an old copy that then grew past the hub's head is caught by
//! the edge, which finds its trail differs from what the hub witnessed.

use std::path::{Path, PathBuf};

use datum_tests::*;
use serde_json::Value;

/// What an attacker copies and puts back: the database with its WAL files, and the audit head file.
const ROLLBACK_FILES: &[&str] = &["datum.db", "datum.db-wal", "datum.db-shm", "identity/audit-head"];

fn copy_aside(data: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("identity")).expect("create the copy's directory");
    for rel in ROLLBACK_FILES {
        if data.join(rel).exists() {
            std::fs::copy(data.join(rel), to.join(rel)).expect("copy aside");
        }
    }
}

fn put_back(copy: &Path, data: &Path) {
    for rel in ROLLBACK_FILES {
        if copy.join(rel).exists() {
            std::fs::copy(copy.join(rel), data.join(rel)).expect("put back");
        } else {
            let _ = std::fs::remove_file(data.join(rel));
        }
    }
}

fn add_assets(plant: &Plant, from: usize, n: usize) {
    for i in from..from + n {
        plant.ok(&["asset", "add", &format!("plc-{i}"), "--kind", "plc", "--criticality", "high", "--zone", "cell-1"]);
    }
}

fn site_status(hub: &Hub, site: &str) -> Value {
    let run = hub.run(&["status", "--json"]);
    assert!(run.code == 0 || run.code == 1, "status failed: {}{}", run.stdout, run.stderr);
    run.json().as_array().expect("array").iter().find(|s| s["site"] == site).cloned().expect("site in status")
}

#[test]
fn a_rolled_back_data_directory_is_refused_and_shown_sqlite() {
    a_rolled_back_data_directory_is_refused_and_shown(Backend::Sqlite);
}

#[test]
fn a_rolled_back_data_directory_is_refused_and_shown_postgres() {
    a_rolled_back_data_directory_is_refused_and_shown(Backend::Postgres);
}

fn a_rolled_back_data_directory_is_refused_and_shown(backend: Backend) {
    let mut hub = Hub::new(backend);
    hub.start(true);
    let plant = Plant::new("north");
    add_assets(&plant, 0, 2);
    let token = hub.add_site("north");
    assert_eq!(plant.enroll(&hub, &token).code, 0);
    assert_eq!(plant.sync("auto").code, 0, "{}", hub.log());
    // The "old backup", taken while nothing runs.
    let old: PathBuf = plant.tmp.path().join("old-copy");
    copy_aside(&plant.data, &old);
    add_assets(&plant, 2, 3);
    let run = plant.sync("auto");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let north = site_status(&hub, "north");
    assert!(north["history_rolled_back"].is_null() && north["violations"] == 0, "{north}");
    assert_eq!(north["in_sync"], true, "{north}");

    // The attacker puts the old copy back: locally consistent, so `audit verify` has nothing to say.
    put_back(&old, &plant.data);
    plant.ok(&["audit", "verify"]);
    let run = plant.sync("auto");
    assert_eq!(run.code, 2, "a rolled-back directory is refused: {}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("history rolled back: the hub holds audit entry"), "{}", run.stderr);
    let north = site_status(&hub, "north");
    let shown = north["history_rolled_back"].as_str().unwrap_or_default();
    assert!(shown.contains("history rolled back"), "{north}");
    assert_eq!(north["violations"], 1, "{north}");
    // Exit 1 counts any finding (the plant's uncaptured assets are overdue too), so look at the column.
    let run = hub.run(&["status"]);
    assert_eq!(run.code, 1, "a rollback is a finding: {}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("ROLLED BACK"), "{}", run.stdout);

    // The old copy grows past the hub's head: the hub cannot tell, the edge can (and tells the hub).
    add_assets(&plant, 10, 5);
    let run = plant.sync("auto");
    assert_eq!(run.code, 2, "a forked trail is refused: {}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("the local audit trail differs from what the hub witnessed at entry"),
        "{}",
        run.stderr
    );
    let north = site_status(&hub, "north");
    assert_eq!(north["violations"], 2, "{north}\n{}", hub.log());
    assert!(north["history_rolled_back"].as_str().unwrap_or_default().contains("differs"), "{north}");
    // Nothing of the forked history was taken: the hub still shows the five assets it had.
    let assets = hub.ok(&["asset", "list", "--site", "north", "--json"]).json();
    assert_eq!(assets.as_array().expect("array").len(), 5, "{assets}");
}
