//! The auditor's evidence pack, made from the kit's real exports: each requirement's status follows the records
//! (a missing restore test, unauthorized drift, unauthenticated entries), and `report verify` catches any change
//! to the folder, on a machine with no Datum data at all.

use std::path::{Path, PathBuf};
use std::process::Command;

use datum_tests::*;
use serde_json::Value;

fn version(name: &str) -> String {
    workspace_root().join("../shared/fixtures/versions").join(name).to_str().expect("utf-8").to_string()
}

/// `id: status` per requirement, in the pack's order (not met first).
fn statuses(pack: &Path) -> String {
    let e: Value =
        serde_json::from_slice(&std::fs::read(pack.join("evidence.json")).expect("evidence.json")).expect("json");
    e["requirements"]
        .as_array()
        .expect("requirements")
        .iter()
        .map(|r| {
            format!(
                "{} {}: {}\n",
                r["standard"].as_str().unwrap_or(""),
                r["id"].as_str().unwrap_or(""),
                r["status"].as_str().unwrap_or("")
            )
        })
        .collect()
}

fn reasons(pack: &Path, id: &str) -> String {
    let e: Value = serde_json::from_slice(&std::fs::read(pack.join("evidence.json")).expect("read")).expect("json");
    let r = e["requirements"].as_array().expect("list").iter().find(|r| r["id"] == id).expect("requirement").clone();
    r["reasons"].to_string()
}

/// `report verify` from an empty directory with no data directory around.
fn verify(pack: &Path) -> Run {
    let elsewhere = tempfile::tempdir().expect("tempdir");
    Run::from(
        Command::new(bin("datum-edge"))
            .args(["report", "verify"])
            .arg(pack)
            .current_dir(elsewhere.path())
            .env_remove("DATUM_DATA")
            .env_remove("DATUM_ACTOR")
            .output()
            .expect("run"),
    )
}

fn copy_pack(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read pack") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

#[test]
fn the_evidence_pack_follows_the_records_and_verifies_offline() {
    let plant = Plant::new("evidence-plant");
    for (name, kind, extra) in [
        ("PLC-01", "plc", vec!["--zone", "cell-1", "--owner", "anna", "--criticality", "high"]),
        ("FW-01", "firewall", vec!["--zone", "dmz", "--owner", "ben", "--criticality", "critical"]),
        ("SW-01", "switch", vec!["--criticality", "medium"]),
    ] {
        let mut args = vec!["asset", "add", name, "--kind", kind];
        args.extend(extra);
        plant.ok(&args);
    }
    for (asset, file) in [
        ("PLC-01", "L5Sharp_Test_project.v1.L5X"),
        ("FW-01", "pfsensible_pfsense_rule_config.v1.xml"),
        ("SW-01", "GNS_MDF-AGG-1.v1.rsc"),
    ] {
        plant.ok(&["config", "capture", asset, &version(file)]);
        plant.ok(&["baseline", "approve", asset, "--reason", "commissioning"]);
    }
    // The firewall's ruleset changes without a change request.
    plant.ok(&["config", "capture", "FW-01", &version("pfsensible_pfsense_rule_config.v2.xml")]);
    let pack = plant.path("pack1");
    let run = plant.ok(&["report", "--out", pack.to_str().expect("utf-8")]);
    assert!(run.stdout.contains("not met"), "{}", run.stdout);
    expect_test::expect![[r#"
        IEC 62443-3-3 SR 7.4: not met
        IEC 62443-3-3 SR 1.1: not met
        IEC 62443-3-3 SR 2.1: not met
        IEC 62443-2-4 SP.12: not met
        IEC 62443-3-3 SR 7.8: partly
        IEC 62443-3-3 SR 7.6: partly
        IEC 62443-3-3 SR 3.9: partly
        IEC 62443-2-4 SP.06: partly
        IEC 62443-3-3 SR 7.3: met
        IEC 62443-3-3 SR 7.3 RE1: met
        IEC 62443-3-3 SR 2.8: met
        IEC 62443-3-3 SR 2.9: met
        IEC 62443-3-3 SR 3.4: met
    "#]]
    .assert_eq(&statuses(&pack));
    assert!(reasons(&pack, "SR 7.8").contains("SW-01"), "the asset without owner and zone is named");
    assert!(reasons(&pack, "SR 7.6").contains("FW-01"), "the unauthorized drift is named");
    let index = std::fs::read_to_string(pack.join("index.html")).expect("index.html");
    assert!(index.contains("SR 7.4") && !index.contains("<script"), "readable without script");
    assert!(index.find("not met").expect("a not-met item") < index.find(">met<").unwrap_or(usize::MAX));
    let run = verify(&pack);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("intact"), "{}", run.stdout);
    // With --zip, the same files in one folder of DIR.zip.
    let zipped = plant.path("pack-z");
    plant.ok(&["report", "--out", zipped.to_str().expect("utf-8"), "--zip"]);
    let zip = std::fs::read(plant.path("pack-z.zip")).expect("pack-z.zip");
    assert!(zip.starts_with(b"PK\x03\x04"), "a ZIP archive");
    for name in ["evidence.json", "manifest.sig", "inventory.csv"] {
        let entry = format!("pack-z/{name}");
        assert!(zip.windows(entry.len()).any(|w| w == entry.as_bytes()), "{entry}");
    }
    assert_eq!(verify(&zipped).code, 0);
    // A pack is never written over.
    let again = plant.run(&["report", "--out", pack.to_str().expect("utf-8")]);
    assert_eq!(again.code, 2, "{}", again.stderr);

    // The records change, and the statuses with them: a restore test, a review, then people.
    plant.ok(&[
        "restore-test",
        "record",
        "PLC-01",
        "--version",
        "1",
        "--result",
        "pass",
        "--method",
        "loaded into the spare CPU",
    ]);
    plant.ok(&["review", "record", "--zone", "dmz", "--outcome", "findings", "--notes", "FW-01 drift raised as CR"]);
    let pack2 = plant.path("pack2");
    plant.ok(&["report", "--out", pack2.to_str().expect("utf-8")]);
    let s = statuses(&pack2);
    assert!(s.contains("SR 7.4: partly"), "one asset tested of three: {s}");
    assert!(s.contains("SP.06: met"), "a review in the period: {s}");
    let login = String::from_utf8(Command::new("id").arg("-un").output().expect("id").stdout).expect("utf-8");
    plant.ok(&["user", "add", "anna", "--role", "site-admin,auditor", "--os-user", login.trim()]);
    let pack3 = plant.path("pack3");
    let run = Run::from(
        plant
            .command(&["report", "--out", pack3.to_str().expect("utf-8")])
            .env_remove("DATUM_ACTOR")
            .output()
            .expect("run"),
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let s = statuses(&pack3);
    assert!(s.contains("SR 1.1: partly") && s.contains("SR 2.1: met"), "{s}");
    assert!(reasons(&pack3, "SR 1.1").contains("without an authenticated account"), "{}", reasons(&pack3, "SR 1.1"));
    let audit = std::fs::read_to_string(pack3.join("audit.csv")).expect("audit.csv");
    assert!(
        audit.contains("evidence.export") && audit.contains("os-account"),
        "the export itself is recorded: {audit}"
    );

    // Tampering, each on a copy: one byte, a removed file, an added file, a forged signature.
    let root = tempfile::tempdir().expect("tempdir");
    type Tamper = fn(&Path);
    let cases: [(&str, Tamper); 5] = [
        ("ALTERED  inventory.csv", |p| {
            let mut bytes = std::fs::read(p.join("inventory.csv")).expect("read");
            let last = bytes.len() - 2;
            bytes[last] ^= 0x01;
            std::fs::write(p.join("inventory.csv"), bytes).expect("write");
        }),
        ("MISSING  drift.csv", |p| std::fs::remove_file(p.join("drift.csv")).expect("rm")),
        ("ADDED    notes.txt", |p| std::fs::write(p.join("notes.txt"), "an extra file").expect("write")),
        ("does not verify", |p| {
            // A manifest edited to match a changed file: the signature no longer holds.
            std::fs::write(p.join("users.csv"), "name\nmallory\n").expect("write");
            let m = std::fs::read_to_string(p.join("manifest.json")).expect("read");
            let mut v: Value = serde_json::from_str(&m).expect("json");
            for f in v["files"].as_array_mut().expect("files") {
                if f["path"] == "users.csv" {
                    f["sha256"] = Value::from(sha256_file(&p.join("users.csv")));
                    f["bytes"] = Value::from(15);
                }
            }
            std::fs::write(p.join("manifest.json"), serde_json::to_vec_pretty(&v).expect("json")).expect("write");
        }),
        ("does not verify", |p| {
            std::fs::write(p.join("manifest.sig"), format!("{}\n", "ab".repeat(64))).expect("write")
        }),
    ];
    for (i, (expected, tamper)) in cases.into_iter().enumerate() {
        let copy: PathBuf = root.path().join(format!("case{i}"));
        copy_pack(&pack3, &copy);
        assert_eq!(verify(&copy).code, 0, "an untouched copy verifies");
        tamper(&copy);
        let run = verify(&copy);
        assert_eq!(run.code, 1, "{expected}: {}{}", run.stdout, run.stderr);
        assert!(run.stdout.contains(expected), "{expected}: {}", run.stdout);
        assert!(run.stdout.contains("NOT intact"), "{}", run.stdout);
    }
}
