//! A plant's life from the command line: inventory, captures of real field files, baselines, drift,
//! change control, restores, reviews, dump and restore-dump.

use datum_tests::{fixture, sha256_file, Plant};

const INVENTORY: &str = "name,kind,vendor,model,serial,firmware,location,zone,ip,criticality,owner,in_scope,cabinet\n\
PLC-01,plc,Rockwell,1756-L83E,S1,33.11,Hall 1,cell-1,10.0.1.10,critical,joe,yes,CAB-1\n\
PLC-02,plc,Siemens,S7-300,S2,3.3,Hall 2,cell-2,10.0.2.10,high,joe,yes,CAB-2\n\
FW-01,firewall,Fortinet,FG-91G,,7.4.7,Server room,dmz,10.0.0.1,high,sec,yes,\n\
SW-01,router,MikroTik,CRS,,7.1,Hall 1,cell-1,10.0.1.2,medium,net,yes,\n\
WS-01,engineering-workstation,Dell,,,,Office,cell-1,10.0.1.50,medium,joe,yes,\n\
HIST-01,historian,OSIsoft,,,,Office,dmz,,low,it,no,\n";

fn setup() -> Plant {
    setup_at(None)
}

/// The site as `setup` makes it, on the drill clock from `now` on (time never goes backwards in the audit
/// trail, so a test of intervals starts its site in the past).
fn setup_at(now: Option<&str>) -> Plant {
    let mut plant = Plant::empty();
    plant.now = now.map(str::to_string);
    plant.ok(&["init", "--site", "plant-north"]);
    let csv = plant.write("inventory.csv", INVENTORY.as_bytes());
    let run = plant.ok(&["asset", "import", csv.to_str().expect("utf-8 path"), "--json"]);
    assert_eq!(run.json(), serde_json::json!({"added": 6, "updated": 0, "unchanged": 0}));
    plant
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn inventory_import_list_edit_retire_export() {
    let plant = setup();
    let list = plant.ok(&["asset", "list", "--json"]).json();
    assert_eq!(list.as_array().map(Vec::len), Some(6));
    let cell1 = plant.ok(&["asset", "list", "--zone", "cell-1", "--kind", "plc", "--json"]).json();
    assert_eq!(cell1[0]["name"], "PLC-01");
    assert_eq!(cell1[0]["custom"]["cabinet"], "CAB-1");
    assert_eq!(cell1.as_array().map(Vec::len), Some(1));

    plant.ok(&["asset", "edit", "PLC-01", "--firmware", "34.01", "--tag", "line-1", "--tag", "sil2"]);
    let shown = plant.ok(&["asset", "show", "PLC-01", "--json"]).json();
    assert_eq!(shown["firmware"], "34.01");
    assert_eq!(shown["tags"], serde_json::json!(["line-1", "sil2"]));
    assert_eq!(shown["updated_by"], "alice");

    plant.ok(&["asset", "add", "RTU-9", "--kind", "rtu", "--criticality", "high", "--ip", "10.9.0.1"]);
    let dup = plant.expect_code(2, &["asset", "add", "RTU-9", "--kind", "rtu"]);
    assert!(dup.stderr.contains("asset RTU-9 already exists"), "{}", dup.stderr);
    let bad_ip = plant.expect_code(2, &["asset", "add", "RTU-8", "--kind", "rtu", "--ip", "10.9.0.999"]);
    assert!(bad_ip.stderr.contains("is not an IPv4/IPv6 address"), "{}", bad_ip.stderr);
    let bad_kind = plant.expect_code(2, &["asset", "add", "X", "--kind", "toaster"]);
    assert!(bad_kind.stderr.contains("asset kind \"toaster\" is not one of"), "{}", bad_kind.stderr);

    plant.ok(&["asset", "retire", "RTU-9", "--reason", "decommissioned"]);
    let again = plant.expect_code(2, &["asset", "retire", "RTU-9", "--reason", "x"]);
    assert!(again.stderr.contains("already retired"), "{}", again.stderr);
    let active = plant.ok(&["asset", "list", "--json"]).json();
    assert!(!active.as_array().expect("array").iter().any(|a| a["name"] == "RTU-9"));
    let all = plant.ok(&["asset", "list", "--all", "--json"]).json();
    assert!(all
        .as_array()
        .expect("array")
        .iter()
        .any(|a| a["name"] == "RTU-9" && a["retired_reason"] == "decommissioned"));

    // Export then re-import into a fresh site gives the same inventory.
    let csv = plant.ok(&["asset", "export", "--csv"]).stdout;
    assert!(
        csv.starts_with(
            "name,kind,vendor,model,serial,firmware,location,zone,ip,criticality,owner,in_scope,tags,cabinet\n"
        ),
        "{csv}"
    );
    let other = Plant::new("copy");
    let file = other.write("export.csv", csv.as_bytes());
    other.ok(&["asset", "import", path(&file)]);
    let strip = |v: serde_json::Value| -> Vec<serde_json::Value> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|a| {
                let mut a = a.clone();
                for k in ["created_at", "created_by", "updated_at", "updated_by"] {
                    a.as_object_mut().expect("object").remove(k);
                }
                a
            })
            .collect()
    };
    assert_eq!(
        strip(other.ok(&["asset", "list", "--json"]).json()),
        strip(plant.ok(&["asset", "list", "--json"]).json())
    );
}

#[test]
fn bad_csv_is_rejected_whole_with_its_line() {
    let plant = setup();
    let before = plant.ok(&["asset", "list", "--json"]).stdout;
    let audit_before = plant.ok(&["audit", "log", "--json"]).stdout;
    let bad = plant.write("bad.csv", b"name,kind,criticality\nNEW-1,plc,high\nNEW-2,plc,extreme\nNEW-3,hmi,low\n");
    let run = plant.expect_code(2, &["asset", "import", path(&bad)]);
    assert!(run.stderr.contains("line 3: criticality: criticality \"extreme\" is not one of"), "{}", run.stderr);
    assert!(run.stderr.contains("nothing was imported"), "{}", run.stderr);
    assert_eq!(plant.ok(&["asset", "list", "--json"]).stdout, before);
    assert_eq!(plant.ok(&["audit", "log", "--json"]).stdout, audit_before);
    let missing = plant.expect_code(2, &["asset", "import", "/nonexistent/file.csv"]);
    assert!(missing.stderr.contains("/nonexistent/file.csv"), "{}", missing.stderr);
    let binary = plant
        .expect_code(2, &["asset", "import", path(&fixture("windows-hardening/WSHB_Win10_Computer_registry.pol"))]);
    assert!(binary.stderr.contains("nothing was imported"), "{}", binary.stderr);
}

#[test]
fn captures_of_real_files_restore_byte_for_byte() {
    let plant = setup();
    let files = [
        ("PLC-01", "rockwell-l5x", None),
        ("PLC-02", "siemens-tia/step7_bnt_modell.awl", Some("awl")),
        ("PLC-02", "siemens-tia/tia_Main.xml", Some("tia")),
        ("FW-01", "fortigate/oxidized_fortigate_FortiGate-91G_7.4.7.conf", None),
        ("SW-01", "mikrotik", None),
        ("WS-01", "windows-hardening/WSHB_Win10_Computer_GptTmpl.inf", Some("gpo-inf")),
        ("WS-01", "windows-hardening/WSHB_Win10_Computer_registry.pol", Some("gpo-pol")),
    ];
    let mut captured = Vec::new();
    for (asset, rel, slot) in files {
        let file = if rel.contains('.') { fixture(rel) } else { first_file(rel) };
        let mut args = vec!["config", "capture", asset, path(&file), "--json"];
        if let Some(slot) = slot {
            args.extend(["--slot", slot]);
        }
        let report = plant.ok(&args).json();
        assert_eq!(report["version"], 1);
        assert_eq!(report["unchanged"], false);
        assert_eq!(report["raw_hash"], sha256_file(&file));
        captured.push((asset, slot, file, report["slot"].as_str().expect("slot").to_string()));
    }
    for (asset, _, file, slot) in &captured {
        let out = plant.path(&format!("restored-{asset}-{slot}"));
        plant.ok(&["config", "export", asset, "--slot", slot, "--version", "1", "--out", path(&out)]);
        assert_eq!(std::fs::read(&out).expect("restored"), std::fs::read(file).expect("original"), "{asset}/{slot}");
    }
    // Default slots by kind.
    let log = plant.ok(&["config", "log", "PLC-01", "--json"]).json();
    assert_eq!(log[0]["slot"], "plc-program");
    // Several slots: commands that need one must be told which.
    let ambiguous = plant.expect_code(2, &["baseline", "approve", "WS-01", "--reason", "x"]);
    assert!(
        ambiguous.stderr.contains("has several slots (gpo-inf, gpo-pol); name one with --slot"),
        "{}",
        ambiguous.stderr
    );
    // Same bytes again: checked, not a new version.
    let again = plant.ok(&["config", "capture", "FW-01", path(&captured[3].2), "--json"]).json();
    assert_eq!(again["unchanged"], true);
    assert_eq!(again["version"], 1);
    let out = plant.path("exported.cfg");
    let missing = plant.expect_code(2, &["config", "export", "FW-01", "--version", "7", "--out", path(&out)]);
    assert!(missing.stderr.contains("FW-01/firewall-rules has no version 7"), "{}", missing.stderr);
    let unknown = plant.expect_code(2, &["config", "capture", "NOPE", path(&captured[3].2)]);
    assert!(unknown.stderr.contains("asset NOPE does not exist"), "{}", unknown.stderr);
    let backup = plant.ok(&["backup", "verify", "--json"]).json();
    assert_eq!(backup["problems"], serde_json::json!([]));
    assert_eq!(backup["blobs_checked"], 7);
}

#[test]
fn a_new_slot_is_stored_as_a_delta_of_a_similar_file_of_another_asset_and_restores() {
    let plant = setup();
    for (asset, kind) in [("R-1", "router"), ("R-2", "router"), ("FW-A", "firewall"), ("FW-B", "firewall")] {
        plant.ok(&["asset", "add", asset, "--kind", kind]);
    }
    let capture = |asset: &str, rel: &str| {
        let file = fixture(rel);
        let report = plant.ok(&["config", "capture", asset, path(&file), "--json"]).json();
        assert_eq!(report["version"], 1, "{report}");
        (file, report)
    };
    // Sister routers: the second router's first version is a small delta of the first router's file.
    let (_, r1) = capture("R-1", "versions/pybatfish_fcv_border1.v2.cfg");
    let (r2_file, r2) = capture("R-2", "versions/pybatfish_drift_as3border1.v1.cfg");
    assert_eq!(r2["delta_base"], r1["raw_hash"], "{r2}");
    // (zstd -19 alone makes 1,042 bytes of its 3,473; the delta about 360 with its header.)
    assert!(r2["stored_bytes"].as_u64().expect("bytes") < r2["size"].as_u64().expect("size") / 5, "{r2}");
    // Another format sharing most of its text: a pfSense export against an OPNsense one.
    let (_, a) = capture("FW-A", "versions/oxidized_opnsense_nano.v1.xml");
    let (b_file, b) = capture("FW-B", "versions/pfsensible_pfsense_openvpn_config.v1.xml");
    assert_ne!(a["format"], b["format"], "{a} {b}");
    assert_eq!(b["delta_base"], a["raw_hash"], "{b}");
    for (asset, file) in [("R-2", &r2_file), ("FW-B", &b_file)] {
        let out = plant.path(&format!("{asset}.out"));
        plant.ok(&["config", "export", asset, "--version", "1", "--out", path(&out)]);
        assert_eq!(std::fs::read(&out).expect("exported"), std::fs::read(file).expect("original"), "{asset}");
    }
    let backup = plant.ok(&["backup", "verify", "--json"]).json();
    assert_eq!(backup["problems"], serde_json::json!([]));
}

fn first_file(dir: &str) -> std::path::PathBuf {
    let root = fixture(&format!("{dir}/SOURCES.md"));
    let mut files: Vec<_> = std::fs::read_dir(root.parent().expect("dir"))
        .expect("fixture dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n != "SOURCES.md"))
        .collect();
    files.sort();
    files.remove(0)
}

fn drift_of(plant: &Plant, asset: &str) -> serde_json::Value {
    let run = plant.run(&["drift", "--json"]);
    assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
    run.json().as_array().expect("array").iter().find(|e| e["asset"] == asset).cloned().expect("asset in drift")
}

#[test]
fn baselines_drift_and_a_change_through_approval() {
    let plant = setup();
    let v = |n: u32| fixture(&format!("versions/GNS_MDF-RTR-1.v{n}.rsc"));
    plant.ok(&["config", "capture", "SW-01", path(&v(1))]);
    assert_eq!(drift_of(&plant, "SW-01")["status"], "no-baseline");
    plant.ok(&["baseline", "approve", "SW-01", "--reason", "commissioning"]);
    assert_eq!(drift_of(&plant, "SW-01")["status"], "in-baseline");

    // Someone changes the router without a change request.
    plant.ok(&["config", "capture", "SW-01", path(&v(2))]);
    let drift = drift_of(&plant, "SW-01");
    assert_eq!(drift["status"], "drift-unauthorized");
    assert_eq!(drift["detail"], "v2 differs from baseline v1 and no change covers it");
    assert_eq!(plant.run(&["drift"]).code, 1);
    let diff = plant.ok(&["config", "diff", "SW-01", "--json"]).json();
    assert_eq!((diff["from"].as_u64(), diff["to"].as_u64()), (Some(1), Some(2)));
    assert_eq!(diff["significant"], true);
    assert!(
        diff["changes"]
            .as_array()
            .expect("changes")
            .iter()
            .all(|c| c["location"].as_str().expect("loc").starts_with('/')),
        "{diff}"
    );

    // A proper change: high risk, two approvers, never the requester.
    let cr = plant
        .ok(&[
            "change",
            "new",
            "--title",
            "Firewall rules for new VLAN",
            "--reason",
            "line 3 extension",
            "--asset",
            "SW-01",
            "--risk",
            "high",
            "--impact",
            "cell-1 traffic",
            "--rollback",
            "re-apply v1 export",
            "--window",
            "2099-01-01T20:00..2099-01-01T22:00",
            "--json",
        ])
        .json();
    assert_eq!(cr["id"], "CR-0001");
    assert_eq!(cr["state"], "draft");
    let early = plant.expect_code(2, &["config", "capture", "SW-01", path(&v(3)), "--change", "CR-0001"]);
    assert!(early.stderr.contains("captures link only to approved changes"), "{}", early.stderr);
    plant.ok(&["change", "submit", "CR-0001"]);
    let own = plant.expect_code(2, &["change", "approve", "CR-0001"]);
    assert!(own.stderr.contains("alice requested this change and cannot approve it"), "{}", own.stderr);
    plant.run_as("bob", &["change", "approve", "CR-0001", "--comment", "ok"]);
    let twice = plant.run_as("bob", &["change", "approve", "CR-0001"]);
    assert_eq!(twice.code, 2, "{}", twice.stderr);
    let too_early = plant.expect_code(2, &["change", "implement", "CR-0001"]);
    assert!(too_early.stderr.contains("approvals incomplete (1 of 2)"), "{}", too_early.stderr);
    assert_eq!(plant.run_as("carol", &["change", "approve", "CR-0001"]).code, 0);

    plant.ok(&["config", "capture", "SW-01", path(&v(3)), "--change", "CR-0001"]);
    let drift = drift_of(&plant, "SW-01");
    assert_eq!(drift["status"], "drift-authorized");
    assert_eq!(drift["change"], "CR-0001");
    plant.ok(&["change", "implement", "CR-0001", "--note", "applied at 20:15"]);

    // Someone touches it again before verification: verify refuses.
    plant.ok(&["config", "capture", "SW-01", path(&v(4))]);
    let refused = plant.expect_code(2, &["change", "verify", "CR-0001"]);
    assert!(refused.stderr.contains("the newest capture (v4) differs from the implemented v3"), "{}", refused.stderr);
    // Put back what was implemented; now verification makes v5 (same content as v3) the baseline.
    plant.ok(&["config", "capture", "SW-01", path(&v(3))]);
    plant.ok(&["change", "verify", "CR-0001"]);
    let base = plant.ok(&["baseline", "show", "SW-01", "--json"]).json();
    assert_eq!(base[0]["baseline"]["version"], 5);
    assert_eq!(base[0]["baseline"]["change"], "CR-0001");
    assert_eq!(drift_of(&plant, "SW-01")["status"], "in-baseline");
    plant.ok(&["change", "close", "CR-0001"]);
    let shown = plant.ok(&["change", "show", "CR-0001", "--json"]).json();
    assert_eq!(shown["state"], "closed");
    let approvers: Vec<&str> =
        shown["approvals"].as_array().expect("array").iter().map(|a| a["by"].as_str().expect("by")).collect();
    assert_eq!(approvers, ["bob", "carol"]);
    assert_eq!(shown["events"].as_array().map(Vec::len), Some(7));

    // Rejected changes stay rejected.
    plant.new_change("FW-01", "low");
    plant.ok(&["change", "submit", "CR-0002"]);
    assert_eq!(plant.run_as("bob", &["change", "reject", "CR-0002", "--reason", "no window"]).code, 0);
    let after = plant.run_as("carol", &["change", "approve", "CR-0002"]);
    assert_eq!(after.code, 2);
    assert!(after.stderr.contains("was rejected by bob"), "{}", after.stderr);
    let list = plant.ok(&["change", "list", "--state", "rejected", "--json"]).json();
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    // The audit log tells who did what and why.
    let audit = plant.ok(&["audit", "log", "--json"]).json();
    assert!(audit
        .as_array()
        .expect("array")
        .iter()
        .any(|e| e["op"] == "change.reject" && e["actor"] == "bob" && e["reason"] == "no window"));
    let for_asset = plant.ok(&["audit", "log", "--asset", "SW-01", "--json"]).json();
    let for_asset = for_asset.as_array().expect("array");
    assert!(for_asset
        .iter()
        .all(|e| e["subject"] == "SW-01" || e["assets"].as_array().is_some_and(|a| a.contains(&"SW-01".into()))));
    assert!(
        for_asset.iter().any(|e| e["op"] == "change.approve" && e["subject"] == "CR-0001"),
        "change steps show up per asset"
    );
    assert!(!for_asset.iter().any(|e| e["subject"] == "CR-0002"), "CR-0002 concerns FW-01 only");
    assert_eq!(plant.ok(&["audit", "verify", "--json"]).json()["intact"], true);
}

#[test]
fn emergency_change_is_flagged_until_approved_in_time() {
    let mut plant = setup_at(Some("2026-03-02T10:00:00Z"));
    let v = |n: u32| fixture(&format!("versions/pybatfish_filters_rtr-with-acl.v{n}.cfg"));
    plant.ok(&["config", "capture", "FW-01", path(&v(1))]);
    plant.ok(&["baseline", "approve", "FW-01", "--reason", "initial"]);
    plant.ok(&[
        "change",
        "new",
        "--title",
        "Block worm port",
        "--reason",
        "active incident",
        "--asset",
        "FW-01",
        "--risk",
        "medium",
        "--impact",
        "blocks 445",
        "--rollback",
        "remove rule",
        "--emergency",
    ]);
    plant.ok(&["config", "capture", "FW-01", path(&v(2)), "--change", "CR-0001"]);
    plant.ok(&["change", "implement", "CR-0001"]);
    let drift = drift_of(&plant, "FW-01");
    assert_eq!(drift["status"], "drift-authorized");
    assert!(drift["detail"].as_str().expect("detail").contains("awaiting retrospective approval"));
    // 73 hours later without approval: the drift is unauthorized and the change is flagged.
    plant.now = Some("2026-03-05T11:00:00Z".into());
    assert_eq!(drift_of(&plant, "FW-01")["status"], "drift-unauthorized");
    let list = plant.ok(&["change", "list", "--json"]).json();
    assert!(list[0]["flags"][0].as_str().expect("flag").starts_with("emergency change not approved retrospectively"));
    // Late approval still records; verification then moves the baseline.
    assert_eq!(plant.run_as("bob", &["change", "approve", "CR-0001"]).code, 0);
    plant.ok(&["change", "verify", "CR-0001"]);
    assert_eq!(drift_of(&plant, "FW-01")["status"], "in-baseline");
}

#[test]
fn backups_restore_tests_and_reviews_follow_criticality() {
    let mut plant = setup_at(Some("2026-01-01T00:00:00Z"));
    let file = fixture("versions/konstruktoid_sysctl.conf.v1.conf");
    for asset in ["PLC-01", "PLC-02", "FW-01", "SW-01", "WS-01"] {
        plant.ok(&["config", "capture", asset, path(&file)]);
    }
    let status = plant.run(&["backup", "status", "--json"]);
    assert_eq!(status.code, 1, "restore tests are missing");
    let rows = status.json();
    assert_eq!(rows.as_array().map(Vec::len), Some(5), "out-of-scope HIST-01 is not listed");
    assert!(rows
        .as_array()
        .expect("array")
        .iter()
        .all(|r| r["backup_overdue"] == false && r["restore_test_overdue"] == true));
    let evidence = plant.write("evidence.txt", b"restored to spare CPU, checksums match\n");
    for asset in ["PLC-01", "PLC-02", "FW-01", "SW-01", "WS-01"] {
        plant.ok(&[
            "restore-test",
            "record",
            asset,
            "--version",
            "1",
            "--result",
            "pass",
            "--method",
            "spare hardware",
            "--evidence",
            path(&evidence),
        ]);
    }
    plant.ok(&["backup", "status"]);
    let bad = plant
        .expect_code(2, &["restore-test", "record", "PLC-01", "--version", "9", "--result", "pass", "--method", "m"]);
    assert!(bad.stderr.contains("has no version 9"), "{}", bad.stderr);
    // Eight days later the critical PLC's backup is overdue, and its capture is stale for drift.
    plant.now = Some("2026-01-09T00:00:00Z".into());
    let rows = plant.expect_code(1, &["backup", "status", "--json"]).json();
    let plc = rows.as_array().expect("array").iter().find(|r| r["asset"] == "PLC-01").expect("PLC-01").clone();
    assert_eq!(plc["backup_overdue"], true);
    assert_eq!(drift_of(&plant, "PLC-01")["status"], "stale");
    // A capture of identical bytes is a fresh backup.
    plant.ok(&["config", "capture", "PLC-01", path(&file)]);
    let rows = plant.run(&["backup", "status", "--json"]).json();
    assert!(rows.as_array().expect("array").iter().any(|r| r["asset"] == "PLC-01" && r["backup_overdue"] == false));

    // Reviews: critical assets are due every 30 days.
    plant.now = Some("2099-01-01T00:00:00Z".into());
    let due = plant.expect_code(1, &["review", "due", "--json"]).json();
    assert_eq!(due.as_array().map(Vec::len), Some(5));
    plant.ok(&["review", "record", "--zone", "cell-1", "--outcome", "findings", "--notes", "SW-01 capture old"]);
    plant.ok(&["review", "record", "PLC-02", "--outcome", "ok", "--notes", "matches"]);
    let due = plant.expect_code(1, &["review", "due", "--json"]).json();
    let names: Vec<&str> = due.as_array().expect("array").iter().map(|r| r["asset"].as_str().expect("name")).collect();
    assert_eq!(names, ["FW-01"]);
    let bad_zone = plant.expect_code(2, &["review", "record", "--zone", "nowhere", "--outcome", "ok", "--notes", "x"]);
    assert!(bad_zone.stderr.contains("zone \"nowhere\" has no active assets"), "{}", bad_zone.stderr);
}

#[test]
fn dump_and_restore_dump_give_the_same_answers() {
    let plant = setup();
    for n in 1..=4 {
        plant.ok(&[
            "config",
            "capture",
            "WS-01",
            path(&fixture(&format!("versions/WSHB_Win10_Computer_GptTmpl.v{n}.inf"))),
        ]);
    }
    plant.ok(&["baseline", "approve", "WS-01", "--version", "2", "--reason", "hardening v2"]);
    // UTF-16LE security templates are compared as text, located by section.
    let diff = plant.ok(&["config", "diff", "WS-01", "1", "2", "--json"]).json();
    assert_eq!(diff["format"], "windows-inf");
    assert!(
        diff["changes"]
            .as_array()
            .expect("changes")
            .iter()
            .any(|c| c["location"].as_str().expect("loc").starts_with('[')),
        "{diff}"
    );
    plant.new_change("WS-01", "low");
    let dump = plant.path("site.dump");
    plant.ok(&["dump", "--out", path(&dump)]);
    let restored = plant.path("restored");
    let run = plant.ok(&["restore-dump", path(&dump), "--data", path(&restored)]);
    assert!(run.stdout.contains("history verified intact"), "{}", run.stdout);
    let original_data = plant.data.clone();
    let mut copy = Plant::empty();
    copy.data = restored.clone();
    for args in [
        vec!["asset", "list", "--json"],
        vec!["drift", "--json"],
        vec!["config", "log", "WS-01", "--json"],
        vec!["change", "list", "--json"],
        vec!["audit", "log", "--json"],
        vec!["baseline", "show", "WS-01", "--json"],
    ] {
        let a = plant.run(&args);
        let b = copy.run(&args);
        assert_eq!((a.code, &a.stdout), (b.code, &b.stdout), "{args:?} differs after restore-dump");
    }
    for n in 1..=4 {
        let v = n.to_string();
        let out = plant.path(&format!("v{n}"));
        copy.ok(&["config", "export", "WS-01", "--version", &v, "--out", path(&out)]);
        assert_eq!(sha256_file(&out), sha256_file(&fixture(&format!("versions/WSHB_Win10_Computer_GptTmpl.v{n}.inf"))));
    }
    assert_eq!(copy.ok(&["audit", "verify", "--json"]).json()["intact"], true);
    // The restored site keeps working and stays verifiable.
    copy.ok(&["asset", "add", "NEW-1", "--kind", "hmi"]);
    assert_eq!(copy.ok(&["audit", "verify", "--json"]).json()["intact"], true);
    // Refusals: a non-empty target, and a damaged dump.
    let busy = plant.expect_code(2, &["restore-dump", path(&dump), "--data", path(&original_data)]);
    assert!(busy.stderr.contains("already exists and is not empty"), "{}", busy.stderr);
    let mut bytes = std::fs::read(&dump).expect("dump");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    let damaged = plant.write("damaged.dump", &bytes);
    let target = plant.path("never");
    let run = plant.expect_code(2, &["restore-dump", path(&damaged), "--data", path(&target)]);
    assert!(run.stderr.contains("does not match the manifest") || run.stderr.contains("damaged"), "{}", run.stderr);
    assert!(!target.exists(), "a failed restore must leave nothing behind");
}

#[test]
fn usage_errors_exit_2_and_name_the_problem() {
    let plant = Plant::empty();
    let run = plant.expect_code(2, &["asset", "list"]);
    assert!(run.stderr.contains("is not a Datum data directory"), "{}", run.stderr);
    let plant = Plant::new("p1");
    let again = plant.expect_code(2, &["init", "--site", "p1"]);
    assert!(again.stderr.contains("already holds a site"), "{}", again.stderr);
    plant.expect_code(2, &["asset", "frobnicate"]);
    // A display name is fine ("Plant North 2" derives plant-north-2); a bad identifier is not.
    let bad_name = Plant::empty().expect_code(2, &["init", "--site", "North", "--id", "bad name"]);
    assert!(bad_name.stderr.contains("site name \"bad name\""), "{}", bad_name.stderr);
    let mut timed = Plant::new("p2");
    timed.now = Some("yesterday".into());
    let run = timed.expect_code(2, &["asset", "list"]);
    assert!(run.stderr.contains("DATUM_NOW"), "{}", run.stderr);
}

/// A version captured without a change and later covered by a change request whose capture has identical bytes
/// is shown as authorized after the fact, naming the change, in its history, in drift and in a review.
#[test]
fn an_unauthorized_capture_covered_later_is_authorized_after_the_fact() {
    let plant = setup();
    let v = |n: u32| fixture(&format!("versions/pybatfish_filters_rtr-with-acl.v{n}.cfg"));
    plant.ok(&["config", "capture", "FW-01", path(&v(1))]);
    plant.ok(&["baseline", "approve", "FW-01", "--reason", "initial"]);
    plant.ok(&["config", "capture", "FW-01", path(&v(2))]);
    assert_eq!(drift_of(&plant, "FW-01")["status"], "drift-unauthorized");
    let id = plant.new_change("FW-01", "low");
    plant.ok(&["change", "submit", &id]);
    assert_eq!(plant.run_as("bob", &["change", "approve", &id]).code, 0);
    let again = plant.ok(&["config", "capture", "FW-01", path(&v(2)), "--change", &id, "--json"]).json();
    assert_eq!(again["unchanged"], true, "{again}");
    let drift = drift_of(&plant, "FW-01");
    assert_eq!(drift["status"], "drift-authorized", "{drift}");
    assert_eq!(drift["change"], id.as_str());
    let log = plant.ok(&["config", "log", "FW-01", "--json"]).json();
    assert_eq!(log[1]["authorized_after_the_fact"], id.as_str(), "{log}");
    assert!(log[0].get("authorized_after_the_fact").is_none(), "{log}");
    let text = plant.ok(&["config", "log", "FW-01"]).stdout;
    assert!(text.contains(&format!("{id} (after the fact)")), "{text}");
    plant.ok(&["review", "record", "FW-01", "--outcome", "ok", "--notes", "covered by the change"]);
    let entries = plant.ok(&["audit", "log", "--asset", "FW-01", "--json"]).json();
    let review = entries.as_array().expect("array").iter().rev().find(|e| e["op"] == "review.record").expect("review");
    assert!(review["summary"].as_str().expect("summary").contains("0 drift finding(s)"), "{review}");
}
