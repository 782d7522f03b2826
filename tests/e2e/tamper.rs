//! Tampering with a site's files, as someone with disk access might: `audit verify` and `backup verify` must
//! notice and say what is wrong.

use datum_tests::{fixture, tamper_sql, Plant};

fn site() -> Plant {
    let plant = Plant::new("plant-south");
    plant.ok(&["asset", "add", "PLC-01", "--kind", "plc", "--criticality", "critical"]);
    plant.ok(&["asset", "add", "FW-01", "--kind", "firewall"]);
    let file = fixture("versions/LogixLibraries_Num_IPv4toStr_AOI.v1.L5X");
    plant.ok(&["config", "capture", "PLC-01", file.to_str().expect("utf-8")]);
    let file = fixture("versions/LogixLibraries_Num_IPv4toStr_AOI.v2.L5X");
    plant.ok(&["config", "capture", "PLC-01", file.to_str().expect("utf-8")]);
    plant.ok(&["baseline", "approve", "PLC-01", "--version", "1", "--reason", "initial"]);
    assert_eq!(plant.ok(&["audit", "verify", "--json"]).json()["intact"], true);
    plant
}

fn problems(plant: &Plant) -> Vec<String> {
    let run = plant.expect_code(1, &["audit", "verify", "--json"]);
    let report = run.json();
    assert_eq!(report["intact"], false);
    report["problems"].as_array().expect("array").iter().map(|p| p.as_str().expect("text").to_string()).collect()
}

fn assert_named(problems: &[String], needle: &str) {
    assert!(problems.iter().any(|p| p.contains(needle)), "no problem mentions {needle:?}: {problems:#?}");
}

#[test]
fn edited_projection_is_caught() {
    let plant = site();
    let n = tamper_sql(&plant.data, "UPDATE records SET json = replace(json, '\"critical\"', '\"low\"') WHERE collection = 'assets' AND key = 'PLC-01'");
    assert_eq!(n, 1);
    assert_named(&problems(&plant), "record assets/PLC-01 in the database differs from document");
}

#[test]
fn moved_baseline_is_caught() {
    let plant = site();
    tamper_sql(
        &plant.data,
        "UPDATE records SET json = replace(json, '\"version\":1', '\"version\":2') WHERE collection = 'baselines'",
    );
    assert_named(&problems(&plant), "record baselines/PLC-01/plc-program in the database differs");
}

#[test]
fn removed_audit_entry_is_caught() {
    let plant = site();
    assert_eq!(tamper_sql(&plant.data, "DELETE FROM audit WHERE seq = 3"), 1);
    let problems = problems(&plant);
    assert_named(&problems, "audit entry 4: expected sequence number 3");
    assert_named(&problems, "has no audit entry");
}

#[test]
fn edited_audit_entry_is_caught() {
    let plant = site();
    tamper_sql(
        &plant.data,
        "UPDATE audit SET entry = replace(entry, '\"actor\":\"alice\"', '\"actor\":\"mallory\"') WHERE seq = 2",
    );
    assert_named(&problems(&plant), "audit entry 2: content does not match its hash");
}

#[test]
fn damaged_document_is_caught() {
    let plant = site();
    // Flip one byte in the middle of the first chunk of the inventory document.
    tamper_sql(
        &plant.data,
        "UPDATE doc_chunks SET bytes = substr(bytes, 1, 40) || char((unicode(substr(bytes, 41, 1)) + 1) % 256) || substr(bytes, 42) \
         WHERE doc_id LIKE '%/inventory' AND seq = 1",
    );
    assert_named(&problems(&plant), "/inventory is damaged");
}

#[test]
fn damaged_and_missing_blobs_are_caught() {
    let plant = site();
    let blobs: Vec<std::path::PathBuf> = walk(&plant.data.join("blobs"));
    assert_eq!(blobs.len(), 2);
    let mut bytes = std::fs::read(&blobs[0]).expect("blob");
    let last = bytes.len() - 2;
    bytes[last] ^= 0x20;
    std::fs::write(&blobs[0], &bytes).expect("write");
    let run = plant.expect_code(1, &["backup", "verify", "--json"]);
    let report = run.json();
    assert!(!report["problems"].as_array().expect("problems").is_empty(), "{report}");
    assert!(
        report["problems"][0]["used_by"][0].as_str().expect("user").starts_with("PLC-01/plc-program v"),
        "{report}"
    );
    assert_named(&problems(&plant), "is damaged");
    std::fs::remove_file(&blobs[1]).expect("rm");
    let human = plant.expect_code(1, &["backup", "verify"]);
    assert!(human.stdout.contains("DAMAGED"), "{}", human.stdout);
    assert_named(&problems(&plant), "is missing from the store");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        let path = entry.path();
        if path.is_dir() && path.file_name().is_some_and(|n| n != "tmp") {
            out.extend(walk(&path));
        } else if path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    out
}
