//! `datum-edge diff` and the normalisation engine inside capture, drift and `config diff`.

use datum_tests::{fixture, Plant};

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn v(stem: &str, n: u32, ext: &str) -> std::path::PathBuf {
    fixture(&format!("versions/{stem}.v{n}.{ext}"))
}

#[test]
fn diff_exit_codes_follow_significance() {
    let plant = Plant::empty();
    let noise = plant.run(&[
        "diff",
        path(&v("scrapli_iosxr_get_config", 1, "txt")),
        path(&v("scrapli_iosxr_get_config", 2, "txt")),
        "--json",
    ]);
    assert_eq!(noise.code, 0, "{}{}", noise.stdout, noise.stderr);
    let report = noise.json();
    assert_eq!(report["format"], "cisco-ios-xr");
    assert_eq!(report["raw_identical"], false);
    assert_eq!(report["significant"], false);
    assert_eq!(report["changes"], serde_json::json!([]));

    let real = plant.run(&[
        "diff",
        path(&v("pybatfish_drift_as2dist1", 1, "cfg")),
        path(&v("pybatfish_drift_as2dist1", 2, "cfg")),
        "--json",
    ]);
    assert_eq!(real.code, 1, "{}", real.stderr);
    let report = real.json();
    assert_eq!(report["significant"], true);
    let changes = report["changes"].as_array().expect("changes");
    assert!(changes.iter().any(|c| c["location"] == "router bgp 2" && c["kind"] == "changed"), "{report}");
    assert_eq!(report["secrets_changed"], 0);

    let same = plant.run(&["diff", path(&v("step7_acme-001", 1, "awl")), path(&v("step7_acme-001", 1, "awl"))]);
    assert_eq!(same.code, 0);
    assert!(same.stdout.contains("identical bytes"), "{}", same.stdout);

    let missing = plant.run(&["diff", "/nonexistent/a.cfg", path(&v("step7_acme-001", 1, "awl"))]);
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("/nonexistent/a.cfg"), "{}", missing.stderr);
}

#[test]
fn a_changed_secret_is_reported_but_never_printed() {
    let plant = Plant::empty();
    let old = v("scale_delong-sw02_juniper", 3, "conf");
    let new = v("scale_delong-sw02_juniper", 4, "conf");
    for args in [
        vec!["diff", path(&old), path(&new)],
        vec!["diff", path(&old), path(&new), "--json"],
        vec!["diff", path(&old), path(&new), "--raw"],
    ] {
        let run = plant.run(&args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        for secret in ["$1$jLjmJdDw$uo3cF/AX5lBe94cTPPkyn.", "$1$MaaZPnhq$joHwbAF2NjWbNhvjRrPT01", "jLjmJdDw"] {
            assert!(!run.stdout.contains(secret), "{args:?} printed a secret:\n{}", run.stdout);
        }
    }
    let report = plant.run(&["diff", path(&old), path(&new), "--json"]).json();
    assert_eq!(report["secrets_changed"], 1);
    assert_eq!(report["changes"][0]["kind"], "secret-changed");
    assert_eq!(report["changes"][0]["location"], "system > root-authentication");
    let human = plant.run(&["diff", path(&old), path(&new)]);
    assert!(human.stdout.contains("@@ system > root-authentication (secret changed)"), "{}", human.stdout);
}

#[test]
fn noise_only_captures_stay_in_baseline_and_real_changes_drift() {
    let plant = Plant::new("p");
    plant.ok(&["asset", "add", "PLC-1", "--kind", "plc", "--criticality", "high"]);
    let first =
        plant.ok(&["config", "capture", "PLC-1", path(&v("TcUnit_FB_TcUnitRunner", 1, "TcPOU")), "--json"]).json();
    assert_eq!(first["format"], "twincat");
    plant.ok(&["baseline", "approve", "PLC-1", "--reason", "initial"]);
    // v2 only drops the ProductVersion attribute: a new backup, not a change.
    let second =
        plant.ok(&["config", "capture", "PLC-1", path(&v("TcUnit_FB_TcUnitRunner", 2, "TcPOU")), "--json"]).json();
    assert_eq!(second["version"], 2);
    assert_eq!(second["significant"], false);
    let drift = plant.ok(&["drift", "--json"]).json();
    assert_eq!(drift[0]["status"], "in-baseline", "{drift}");
    assert!(drift[0]["detail"].as_str().expect("detail").contains("only in noise"), "{drift}");
    let diff = plant.ok(&["config", "diff", "PLC-1", "--json"]).json();
    assert_eq!(
        (diff["from"].as_u64(), diff["to"].as_u64(), diff["significant"].as_bool()),
        (Some(1), Some(2), Some(false))
    );
    let raw = plant.ok(&["config", "diff", "PLC-1", "--raw", "--json"]).json();
    assert!(raw["raw_diff"].as_str().expect("raw").contains("ProductVersion"), "{raw}");
    // v3 changes code: unauthorized drift, located in the POU.
    plant.ok(&["config", "capture", "PLC-1", path(&v("TcUnit_FB_TcUnitRunner", 3, "TcPOU"))]);
    let drift = plant.expect_code(1, &["drift", "--json"]).json();
    assert_eq!(drift[0]["status"], "drift-unauthorized");
    let diff = plant.ok(&["config", "diff", "PLC-1", "--json"]).json();
    assert!(
        diff["changes"]
            .as_array()
            .expect("changes")
            .iter()
            .all(|c| c["location"].as_str().expect("loc").starts_with("TcPlcObject/POU[FB_TcUnitRunner]")),
        "{diff}"
    );
}
