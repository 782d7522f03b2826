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

/// Rewrites a blob file's header so that it claims to be a delta of `base` (a hash). The compact layout
/// (`edge/src/blobs.rs`): `DBL2`, format (1 full, 2 delta), size as LEB128, for a delta depth and base hash.
fn make_delta_of(blob: &std::path::Path, base: &str) {
    let bytes = std::fs::read(blob).expect("blob");
    assert_eq!(&bytes[..4], b"DBL2", "a blob of the compact layout");
    let size_len = bytes[5..].iter().position(|b| b & 0x80 == 0).expect("LEB128 size") + 1;
    let after_size = 5 + size_len;
    let frame = match bytes[4] {
        1 => &bytes[after_size..],
        2 => &bytes[after_size + 33..],
        other => panic!("format {other}"),
    };
    let mut out = bytes[..after_size].to_vec();
    out[4] = 2;
    out.push(1);
    out.extend(hex::decode(base).expect("hash"));
    out.extend_from_slice(frame);
    std::fs::write(blob, &out).expect("write");
}

fn blob_named(plant: &Plant, hash: &str) -> std::path::PathBuf {
    plant.data.join("blobs").join(&hash[..2]).join(hash)
}

/// Every command that reads a stored file reports a looping delta chain as damage (exit 1), never crashes.
fn assert_loop_reported(plant: &Plant) {
    let verify = plant.expect_code(1, &["backup", "verify"]);
    assert!(verify.stdout.contains("loops back"), "{}{}", verify.stdout, verify.stderr);
    assert_named(&problems(plant), "loops back");
    let out = plant.path("restored.L5X");
    let export =
        plant.expect_code(1, &["config", "export", "PLC-01", "--version", "1", "--out", out.to_str().expect("utf-8")]);
    assert!(
        export.stderr.contains("PLC-01/plc-program v1") && export.stderr.contains("loops back"),
        "{}",
        export.stderr
    );
    assert!(!out.exists(), "nothing is written from a damaged copy");
    let diff = plant.expect_code(1, &["config", "diff", "PLC-01", "1", "2"]);
    assert!(diff.stderr.contains("loops back"), "{}", diff.stderr);
}

#[test]
fn a_blob_made_a_delta_of_itself_is_damage_not_a_crash() {
    let plant = site();
    let log = plant.ok(&["config", "log", "PLC-01", "--json"]).json();
    let v1 = log[0]["raw_hash"].as_str().expect("hash").to_string();
    make_delta_of(&blob_named(&plant, &v1), &v1);
    assert_loop_reported(&plant);
}

#[test]
fn two_blobs_made_deltas_of_each_other_are_damage_not_a_crash() {
    let plant = site();
    let log = plant.ok(&["config", "log", "PLC-01", "--json"]).json();
    let (v1, v2) = (log[0]["raw_hash"].as_str().expect("hash"), log[1]["raw_hash"].as_str().expect("hash"));
    make_delta_of(&blob_named(&plant, v1), v2);
    make_delta_of(&blob_named(&plant, v2), v1);
    assert_loop_reported(&plant);
}

#[test]
fn an_edited_audit_time_is_caught_and_hides_nothing() {
    let plant = site();
    // Move entry 2's indexed time a year back: `audit log --since` must still list it, and verify must say so.
    let n = tamper_sql(&plant.data, "UPDATE audit SET at = '2025-01-01T00:00:00.000000Z' WHERE seq = 2");
    assert_eq!(n, 1);
    let today = plant.ok(&["audit", "log", "--since", "2026-01-01", "--json"]).json();
    assert!(today.as_array().expect("array").iter().any(|e| e["seq"] == 2), "{today}");
    assert_named(&problems(&plant), "audit entry 2: its time column");
    // The subject and asset index too.
    let plant = site();
    tamper_sql(&plant.data, "UPDATE audit SET subject = 'nothing' WHERE seq = 2");
    tamper_sql(&plant.data, "DELETE FROM audit_assets WHERE seq = 2");
    let for_asset = plant.ok(&["audit", "log", "--asset", "PLC-01", "--json"]).json();
    assert!(for_asset.as_array().expect("array").iter().any(|e| e["seq"] == 2), "{for_asset}");
    let problems = problems(&plant);
    assert_named(&problems, "audit entry 2: its subject column");
    assert_named(&problems, "audit entry 2: its asset index");
}

#[test]
fn an_entry_dated_before_its_predecessor_is_refused() {
    let mut plant = site();
    // An approval backdated with the drill clock before the version it approves existed.
    plant.now = Some("2020-01-01T00:00:00Z".into());
    let run = plant.expect_code(2, &["baseline", "approve", "PLC-01", "--version", "2", "--reason", "backdated"]);
    assert!(run.stderr.contains("time never goes backwards"), "{}", run.stderr);
    assert!(run.stderr.contains("DATUM_NOW is set"), "{}", run.stderr);
    // Forward with the drill clock is allowed, and recorded as a drill.
    plant.now = Some("2099-01-01T00:00:00Z".into());
    plant.ok(&["baseline", "approve", "PLC-01", "--version", "2", "--reason", "drill"]);
    let log = plant.ok(&["audit", "log", "--json"]).json();
    let last = log.as_array().expect("array").last().expect("entry").clone();
    assert_eq!(last["drill"], true, "{last}");
    assert!(plant.ok(&["audit", "log"]).stdout.contains("[drill clock]"));
    assert_eq!(plant.ok(&["audit", "verify", "--json"]).json()["intact"], true);
    // An entry whose time was edited backwards in the signed entry itself breaks its hash and the order.
    tamper_sql(&plant.data, "UPDATE audit SET entry = json_set(entry, '$.at', '2000-01-01T00:00:00Z') WHERE seq = 3");
    let problems = problems(&plant);
    assert_named(&problems, "audit entry 3: content does not match its hash");
    assert_named(&problems, "time went backwards");
}

/// A hub whose database file was emptied, cut short or overwritten says so at once (exit 3), never serves an
/// empty hub and never waits for a pool time-out.
#[test]
fn a_damaged_hub_database_is_named_at_once() {
    use datum_tests::{Backend, Hub};
    let hub = Hub::new(Backend::Sqlite);
    hub.ok(&["site", "add", "north"]);
    let db = hub.data.join("hub.db");
    let intact = std::fs::read(&db).expect("hub.db");
    let damages: [(&str, Vec<u8>); 3] = [
        ("emptied", Vec::new()),
        ("cut short", intact[..intact.len() / 2].to_vec()),
        ("overwritten", b"this is not a database at all\n".repeat(200)),
    ];
    for (what, bytes) in damages {
        std::fs::write(&db, &bytes).expect("damage hub.db");
        for args in [&["status"][..], &["site", "list"], &["asset", "list"]] {
            let started = std::time::Instant::now();
            let run = hub.run(args);
            let took = started.elapsed();
            assert_eq!(run.code, 3, "{what}: datum-hub {args:?}: {}{}", run.stdout, run.stderr);
            assert!(run.stderr.contains("damaged"), "{what}: {}", run.stderr);
            assert!(took < std::time::Duration::from_secs(5), "{what}: took {took:?}");
        }
        let serve = hub.run(&["serve", "--listen", "127.0.0.1:0"]);
        assert_eq!(serve.code, 3, "{what}: serve must not start: {}{}", serve.stdout, serve.stderr);
        assert!(!serve.stdout.contains("listening"), "{what}: {}", serve.stdout);
    }
    std::fs::write(&db, &intact).expect("restore hub.db");
    assert!(hub.ok(&["site", "list"]).stdout.contains("north"));
}

/// A dump rewritten consistently (an audit entry edited and the manifest's hashes redone to match) is bad
/// input: restore-dump refuses it with exit 2 and writes nothing.
#[test]
fn a_rewritten_dump_is_bad_input() {
    use sha2::Digest;
    let plant = site();
    let dump = plant.path("site.dump");
    plant.ok(&["dump", "--out", dump.to_str().expect("utf-8")]);
    let mut members: Vec<(String, Vec<u8>)> = Vec::new();
    let mut archive = tar::Archive::new(std::fs::File::open(&dump).expect("dump"));
    for entry in archive.entries().expect("tar") {
        let mut entry = entry.expect("entry");
        let path = entry.path().expect("path").to_string_lossy().to_string();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).expect("read");
        members.push((path, bytes));
    }
    let forged = |bytes: &[u8]| String::from_utf8_lossy(bytes).replace("\"actor\":\"alice\"", "\"actor\":\"mallory\"");
    let mut new_hashes = std::collections::HashMap::new();
    for (path, bytes) in members.iter_mut() {
        if path.ends_with("audit.jsonl") {
            *bytes = forged(bytes).into_bytes();
            let rel = path.split_once('/').expect("root").1.to_string();
            new_hashes.insert(rel, (hex::encode(sha2::Sha256::digest(&bytes)), bytes.len()));
        }
    }
    for (path, bytes) in members.iter_mut() {
        if path.ends_with("manifest.json") {
            let mut manifest: serde_json::Value = serde_json::from_slice(bytes).expect("manifest");
            for m in manifest["members"].as_array_mut().expect("members") {
                if let Some((hash, size)) = new_hashes.get(m["path"].as_str().expect("path")) {
                    m["sha256"] = hash.clone().into();
                    m["size"] = (*size).into();
                }
            }
            *bytes = serde_json::to_vec(&manifest).expect("json");
        }
    }
    let rewritten = plant.path("rewritten.dump");
    let mut builder = tar::Builder::new(std::fs::File::create(&rewritten).expect("create"));
    for (path, bytes) in &members {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_cksum();
        builder.append_data(&mut header, path, bytes.as_slice()).expect("append");
    }
    builder.finish().expect("finish");
    drop(builder);
    let copy = Plant::empty();
    let run = copy.expect_code(2, &["restore-dump", rewritten.to_str().expect("utf-8")]);
    assert!(run.stderr.contains("does not verify") || run.stderr.contains("intact"), "{}", run.stderr);
    assert!(!copy.data.exists(), "nothing is written");
}
