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
    for file in files_under(from) {
        let target = to.join(file.strip_prefix(from).expect("inside"));
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&file, target).expect("copy");
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
    // The drifted ruleset's masked diff against its baseline is in the pack, named by the drift list.
    let drift = std::fs::read_to_string(pack.join("drift.csv")).expect("drift.csv");
    let diff_file = drift
        .lines()
        .find(|l| l.starts_with("FW-01,"))
        .and_then(|l| l.rsplit(',').next())
        .expect("FW-01's row")
        .to_string();
    assert!(diff_file.starts_with("diffs/FW-01--"), "{drift}");
    let diff = std::fs::read_to_string(pack.join(&diff_file)).expect("the diff");
    assert!(
        diff.contains("approved baseline v1") && diff.contains("v2") && diff.contains("drift-unauthorized"),
        "{diff}"
    );
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
    // Only auditors and site-admins export evidence: an engineer's or a viewer's token is refused, and nothing is
    // written.
    let as_admin = |args: &[&str]| {
        let run = Run::from(plant.command(args).env_remove("DATUM_ACTOR").output().expect("run"));
        assert_eq!(run.code, 0, "{args:?}: {}{}", run.stdout, run.stderr);
        run
    };
    for (name, role) in [("erik", "engineer"), ("vera", "viewer")] {
        as_admin(&["user", "add", name, "--role", role]);
        let token = as_admin(&["token", "create", "--user", name]).stdout.trim().to_string();
        let out = plant.path(&format!("pack-{name}"));
        let run = Run::from(
            plant
                .command(&["report", "--out", out.to_str().expect("utf-8")])
                .env_remove("DATUM_ACTOR")
                .env("DATUM_TOKEN", &token)
                .output()
                .expect("run"),
        );
        assert_eq!(run.code, 2, "{role}: {}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains("export evidence"), "{role}: {}", run.stderr);
        assert!(!out.exists(), "{role}: nothing written");
    }
    let audit = std::fs::read_to_string(pack3.join("audit.csv")).expect("audit.csv");
    assert!(
        audit.contains("evidence.export") && audit.contains("os-account"),
        "the export itself is recorded: {audit}"
    );

    // Tampering, each on a copy: one byte, a removed file, an added file, a forged signature.
    let root = tempfile::tempdir().expect("tempdir");
    type Tamper = fn(&Path);
    let cases: [(&str, Tamper); 6] = [
        ("ALTERED  inventory.csv", |p| {
            let mut bytes = std::fs::read(p.join("inventory.csv")).expect("read");
            let last = bytes.len() - 2;
            bytes[last] ^= 0x01;
            std::fs::write(p.join("inventory.csv"), bytes).expect("write");
        }),
        ("MISSING  drift.csv", |p| std::fs::remove_file(p.join("drift.csv")).expect("rm")),
        ("ADDED    diffs/extra.diff", |p| std::fs::write(p.join("diffs/extra.diff"), "more").expect("write")),
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

/// The hub's pack of a site, from its copy: the same requirements, the audit entries left at the plant (their head
/// witnessed), signed with the hub's key; and `--all`, one pack per site (each verifiable alone) under a summary.
#[test]
fn the_hub_makes_the_packs_from_its_copy_one_site_or_all() {
    hub_packs(Backend::Sqlite);
}

#[test]
fn the_hub_makes_the_packs_from_its_copy_on_postgres() {
    hub_packs(Backend::Postgres);
}

fn hub_packs(backend: Backend) {
    let mut hub = Hub::new(backend);
    hub.start(false);
    let north = Plant::new("north");
    let south = Plant::new("south");
    for (site, plant) in [("north", &north), ("south", &south)] {
        let token = hub.add_site(site);
        let run = plant.enroll(&hub, &token);
        assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
        plant.ok(&[
            "asset",
            "add",
            "R1",
            "--kind",
            "router",
            "--zone",
            "core",
            "--owner",
            "ops",
            "--criticality",
            "high",
        ]);
    }
    // North's router drifts, with a secret added that the diff must not show.
    let v1 = std::fs::read(version("pybatfish_drift_as2core1.v1.cfg")).expect("fixture");
    let mut v2 = std::fs::read(version("pybatfish_drift_as2core1.v2.cfg")).expect("fixture");
    v2.extend_from_slice(b"snmp-server community Qx7hubSecretCommunity RO\n");
    let (f1, f2) = (north.write("as2core1-v1.cfg", &v1), north.write("as2core1.cfg", &v2));
    north.ok(&["config", "capture", "R1", f1.to_str().expect("utf-8")]);
    north.ok(&["baseline", "approve", "R1", "--reason", "commissioning"]);
    north.ok(&["config", "capture", "R1", f2.to_str().expect("utf-8")]);
    south.ok(&["config", "capture", "R1", &version("pybatfish_drift_as2dist1.v1.cfg")]);
    for plant in [&north, &south] {
        let run = plant.sync("tcp");
        assert_eq!(run.code, 0, "{}{}\n{}", run.stdout, run.stderr, hub.log());
    }

    let one = hub.tmp.path().join("north-pack");
    let run = hub.ok(&["report", "--site", "north", "--out", one.to_str().expect("utf-8"), "--zip"]);
    assert!(run.stdout.contains("hub's publishing key"), "{}", run.stdout);
    assert!(hub.tmp.path().join("north-pack.zip").exists());
    let s = statuses(&one);
    for expected in ["SR 2.8: partly", "SR 3.9: met", "SR 1.1: not met", "SR 7.6: not met", "SR 7.8: met"] {
        assert!(s.contains(expected), "{expected}: {s}");
    }
    assert!(reasons(&one, "SR 2.8").contains("stay at the plant"), "{}", reasons(&one, "SR 2.8"));
    assert!(reasons(&one, "SR 3.9").contains("signature valid"), "{}", reasons(&one, "SR 3.9"));
    assert!(!one.join("audit.csv").exists() && one.join("hub-key.pub").exists() && !one.join("site-key.pub").exists());
    let index = std::fs::read_to_string(one.join("index.html")).expect("index.html");
    assert!(index.contains("copy of the site") && !index.contains("audit.csv"), "no link to a file not in the pack");
    let diffs: Vec<_> = files_under(&one).into_iter().filter(|f| f.extension().is_some_and(|e| e == "diff")).collect();
    assert_eq!(diffs.len(), 1, "{diffs:?}");
    let diff = std::fs::read_to_string(&diffs[0]).expect("diff");
    assert!(diff.contains("snmp-server community") && !diff.contains("Qx7hubSecretCommunity"), "{diff}");
    for verifier in ["datum-edge", "datum-hub"] {
        let run = Run::from(Command::new(bin(verifier)).args(["report", "verify"]).arg(&one).output().expect("run"));
        assert_eq!(run.code, 0, "{verifier}: {}{}", run.stdout, run.stderr);
        assert!(run.stdout.contains("signed by the hub's publishing key"), "{}", run.stdout);
    }

    let all = hub.tmp.path().join("all-packs");
    hub.ok(&["report", "--all", "--out", all.to_str().expect("utf-8")]);
    let summary: Value =
        serde_json::from_slice(&std::fs::read(all.join("summary.json")).expect("summary")).expect("json");
    let sites: Vec<&str> =
        summary["sites"].as_array().expect("sites").iter().filter_map(|s| s["site"].as_str()).collect();
    assert_eq!(sites.len(), 2, "{summary}");
    let index = std::fs::read_to_string(all.join("index.html")).expect("index.html");
    assert!(index.contains("href=\"sites/north/index.html\"") && index.contains("href=\"sites/south/index.html\""));
    assert_eq!(verify(&all).code, 0, "the whole folder verifies");
    assert_eq!(verify(&all.join("sites/south")).code, 0, "one site's folder verifies alone");
    // A change deep inside is named by the whole folder's check and by the site's own.
    let inventory = all.join("sites/south/inventory.csv");
    let mut bytes = std::fs::read(&inventory).expect("read");
    bytes.push(b'x');
    std::fs::write(&inventory, bytes).expect("write");
    for dir in [all.clone(), all.join("sites/south")] {
        let run = verify(&dir);
        assert_eq!(run.code, 1, "{}", run.stdout);
        assert!(run.stdout.contains("ALTERED") && run.stdout.contains("inventory.csv"), "{}", run.stdout);
    }

    // The hub's copy of a file altered on its disk: SR 3.4 is not met in the next pack.
    let blob = files_under(&hub.data.join("blobs"))
        .into_iter()
        .find(|f| f.file_name().is_some_and(|n| n.len() == 64))
        .expect("a stored file");
    let mut bytes = std::fs::read(&blob).expect("read");
    bytes[0] ^= 1;
    std::fs::write(&blob, bytes).expect("write");
    let both = hub.tmp.path().join("after-tamper");
    hub.ok(&["report", "--all", "--out", both.to_str().expect("utf-8")]);
    let mut not_met = 0;
    for site in ["north", "south"] {
        not_met += usize::from(statuses(&both.join("sites").join(site)).contains("SR 3.4: not met"));
    }
    assert_eq!(not_met, 1, "exactly the site holding the altered file");
    // Wrong names cost nothing.
    assert_eq!(hub.run(&["report", "--site", "nowhere", "--out", "/tmp/datum-nowhere-pack"]).code, 2);
    assert_eq!(hub.run(&["report", "--all", "--out", all.to_str().expect("utf-8")]).code, 2, "never written over");
    assert_eq!(hub.run(&["report", "--out", "/tmp/datum-x"]).code, 2, "--site or --all");
}
