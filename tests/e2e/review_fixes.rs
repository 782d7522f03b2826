//! Regression tests for defects found in review: separation of duties by name, blob repair, tampering that
//! must be a finding (exit 1) rather than a crash, truncated audit trails, ambiguous dumps, file modes.

use std::os::unix::fs::PermissionsExt;

use datum_tests::{fixture, tamper_sql, Plant};

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn the_requester_cannot_approve_under_another_spelling() {
    let plant = Plant::new("p");
    plant.ok(&["asset", "add", "FW-1", "--kind", "firewall"]);
    plant.new_change("FW-1", "low");
    plant.ok(&["change", "submit", "CR-1"]);
    let padded = plant.run_as("alice ", &["change", "approve", "CR-1"]);
    assert_eq!(padded.code, 2, "{}", padded.stderr);
    assert!(padded.stderr.contains("leading or trailing blanks"), "{}", padded.stderr);
    let upper = plant.run_as("ALICE", &["change", "approve", "CR-1"]);
    assert_eq!(upper.code, 2, "{}", upper.stderr);
    assert!(upper.stderr.contains("requested this change and cannot approve it"), "{}", upper.stderr);
}

#[test]
fn captures_after_implementation_are_refused() {
    let plant = Plant::new("p");
    plant.ok(&["asset", "add", "FW-1", "--kind", "firewall"]);
    plant.new_change("FW-1", "low");
    plant.ok(&["change", "submit", "CR-1"]);
    assert_eq!(plant.run_as("bob", &["change", "approve", "CR-1"]).code, 0);
    let v1 = fixture("versions/pybatfish_fcv_border1.v1.cfg");
    let v2 = fixture("versions/pybatfish_fcv_border1.v2.cfg");
    plant.ok(&["config", "capture", "FW-1", path(&v1), "--change", "CR-1"]);
    plant.ok(&["change", "implement", "CR-1"]);
    let late = plant.expect_code(2, &["config", "capture", "FW-1", path(&v2), "--change", "CR-1"]);
    assert!(late.stderr.contains("before `change implement`"), "{}", late.stderr);
}

#[test]
fn a_damaged_blob_is_repaired_by_capturing_the_same_bytes_and_does_not_block_new_captures() {
    let plant = Plant::new("p");
    plant.ok(&["asset", "add", "SW-1", "--kind", "switch"]);
    let v1 = fixture("versions/scale_br-mdf-01.v1.conf");
    let v2 = fixture("versions/scale_br-mdf-01.v2.conf");
    let first = plant.ok(&["config", "capture", "SW-1", path(&v1), "--json"]).json();
    let hash = first["raw_hash"].as_str().expect("hash").to_string();
    let blob = plant.data.join("blobs").join(&hash[..2]).join(&hash);
    let mut bytes = std::fs::read(&blob).expect("blob");
    let last = bytes.len() - 3;
    bytes[last] ^= 0x11;
    std::fs::write(&blob, &bytes).expect("write");
    plant.expect_code(1, &["backup", "verify"]);
    // A new version whose delta base is damaged is still stored (as a full copy).
    let second = plant.ok(&["config", "capture", "SW-1", path(&v2), "--json"]).json();
    assert_eq!(second["version"], 2);
    assert_eq!(second["delta_base"], serde_json::Value::Null);
    // Capturing v1's bytes again repairs the damaged copy.
    plant.ok(&["config", "capture", "SW-1", path(&v1)]);
    plant.ok(&["backup", "verify"]);
}

#[test]
fn edited_audit_json_and_a_truncated_trail_are_findings() {
    let plant = Plant::new("p");
    plant.ok(&["asset", "add", "A-1", "--kind", "plc"]);
    plant.ok(&["asset", "add", "A-2", "--kind", "plc"]);
    tamper_sql(&plant.data, "UPDATE audit SET entry = '{not json' WHERE seq = 2");
    let run = plant.expect_code(1, &["audit", "verify", "--json"]);
    assert!(run.json()["problems"].to_string().contains("audit entry 2 is not a valid entry"), "{}", run.stdout);

    let plant = Plant::new("q");
    plant.ok(&["asset", "add", "A-1", "--kind", "plc"]);
    plant.ok(&["asset", "add", "A-2", "--kind", "plc"]);
    // Remove the last operation completely: its audit entry, its document chunk and its projection row.
    tamper_sql(&plant.data, "DELETE FROM audit WHERE seq = 3");
    tamper_sql(&plant.data, "DELETE FROM doc_chunks WHERE doc_id LIKE '%/inventory' AND seq = 2");
    tamper_sql(&plant.data, "DELETE FROM records WHERE collection = 'assets' AND key = 'A-2'");
    let run = plant.expect_code(1, &["audit", "verify", "--json"]);
    assert!(run.json()["problems"].to_string().contains("audit trail truncated"), "{}", run.stdout);

    let plant = Plant::new("r");
    plant.ok(&["asset", "add", "A-1", "--kind", "plc"]);
    tamper_sql(&plant.data, "UPDATE records SET json = '{broken' WHERE collection = 'assets'");
    let run = plant.expect_code(1, &["audit", "verify", "--json"]);
    assert_eq!(run.json()["intact"], false);
}

#[test]
fn a_foreign_site_key_is_refused() {
    let plant = Plant::new("p");
    let other = Plant::new("o");
    std::fs::copy(other.data.join("identity/site.key"), plant.data.join("identity/site.key")).expect("copy");
    let run = plant.run(&["asset", "list"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("is not this site's key"), "{}", run.stderr);
}

#[test]
fn a_dump_with_a_duplicated_member_is_refused() {
    let plant = Plant::new("p");
    plant.ok(&["asset", "add", "A-1", "--kind", "plc"]);
    let dump = plant.path("site.dump");
    plant.ok(&["dump", "--out", path(&dump)]);
    // Rebuild the archive with a second `identity/site.key` holding another key.
    let mut archive = tar::Archive::new(std::fs::File::open(&dump).expect("open"));
    let mut builder = tar::Builder::new(Vec::new());
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let mut header = entry.header().clone();
        let name = entry.path().expect("path").to_path_buf();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).expect("read");
        builder.append_data(&mut header, &name, data.as_slice()).expect("append");
        if name.ends_with("identity/site.key") {
            let forged = b"00".repeat(32);
            let mut h = tar::Header::new_gnu();
            h.set_size(forged.len() as u64);
            h.set_mode(0o600);
            builder.append_data(&mut h, &name, forged.as_slice()).expect("append");
        }
    }
    let forged = plant.write("forged.dump", &builder.into_inner().expect("tar"));
    let target = plant.path("restored");
    let run = plant.expect_code(2, &["restore-dump", path(&forged), "--data", path(&target)]);
    assert!(run.stderr.contains("twice"), "{}", run.stderr);
    assert!(!target.exists());
    let not_tar = plant.expect_code(2, &["restore-dump", "/etc/passwd", "--data", path(&target)]);
    assert!(!not_tar.stderr.contains("root:"), "file contents leaked into the error: {}", not_tar.stderr);
}

#[test]
fn files_are_private_and_outputs_to_directories_are_refused() {
    let plant = Plant::new("p");
    plant.ok(&["asset", "add", "A-1", "--kind", "plc"]);
    plant.ok(&["config", "capture", "A-1", path(&fixture("versions/konstruktoid_sysctl.conf.v1.conf"))]);
    for rel in ["datum.db", "identity/site.key", "identity/audit-head"] {
        let mode = std::fs::metadata(plant.data.join(rel)).expect(rel).permissions().mode();
        assert_eq!(mode & 0o077, 0, "{rel} is readable by others: {mode:o}");
    }
    let dump = plant.path("d.dump");
    plant.ok(&["dump", "--out", path(&dump)]);
    assert_eq!(std::fs::metadata(&dump).expect("dump").permissions().mode() & 0o077, 0);
    let dir = plant.path("outdir");
    std::fs::create_dir(&dir).expect("mkdir");
    let run = plant.expect_code(2, &["config", "export", "A-1", "--version", "1", "--out", path(&dir)]);
    assert!(run.stderr.contains("is a directory"), "{}", run.stderr);
    plant.expect_code(2, &["dump", "--out", path(&dir)]);
    assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 0, "temporary files left behind");
    let file = plant.write("plain-file", b"x");
    let init = Plant::empty();
    let run = init.run(&["--data", path(&file), "init", "--site", "x"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
}

#[test]
fn imports_merge_custom_fields_and_show_up_in_the_asset_audit_log() {
    let plant = Plant::new("p");
    let a = plant.write("a.csv", b"name,kind,cabinet\nA1,plc,C1\n");
    let b = plant.write("b.csv", b"name,kind,room\nA1,plc,R1\n");
    plant.ok(&["asset", "import", path(&a)]);
    plant.ok(&["asset", "import", path(&b)]);
    let shown = plant.ok(&["asset", "show", "A1", "--json"]).json();
    assert_eq!(shown["custom"], serde_json::json!({"cabinet": "C1", "room": "R1"}));
    let log = plant.ok(&["audit", "log", "--asset", "A1", "--json"]).json();
    let ops: Vec<&str> = log.as_array().expect("array").iter().map(|e| e["op"].as_str().expect("op")).collect();
    assert_eq!(ops, ["asset.import", "asset.import"]);
    plant.ok(&["asset", "retire", "A1", "--reason", "gone"]);
    let run = plant.expect_code(2, &["review", "record", "A1", "--outcome", "ok", "--notes", "n"]);
    assert!(run.stderr.contains("is retired"), "{}", run.stderr);
}
