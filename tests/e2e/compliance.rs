//! `datum-edge compliance --template FILE`: the example standards of `examples/templates/` tried on a plant
//! built from the kit's real exports; bad templates refused with every problem named; nothing recorded.

use datum_tests::*;

fn example(name: &str) -> String {
    workspace_root().join("examples/templates").join(name).to_str().expect("utf-8").to_string()
}

#[test]
fn a_standard_is_tried_on_the_plants_real_configurations() {
    let plant = Plant::new("compliance-plant");
    for (name, kind, crit, owner) in [
        ("RTR-1", "router", "high", Some("ops")),
        ("RTR-2", "router", "critical", None),
        ("SW-9", "switch", "low", Some("ops")),
        ("HIST-1", "server", "high", Some("it")),
    ] {
        let mut args = vec!["asset", "add", name, "--kind", kind, "--criticality", crit];
        if let Some(o) = owner {
            args.extend(["--owner", o]);
        }
        plant.ok(&args);
    }
    let kit = |rel: &str| fixture(rel).to_str().expect("utf-8").to_string();
    plant.ok(&["config", "capture", "RTR-1", &kit("cisco-ios/oxidized_ios_asr920_16.8.1b.cfg")]);
    plant.ok(&["config", "capture", "RTR-2", &kit("cisco-ios/pybatfish_london.cfg")]);
    plant.ok(&["config", "capture", "SW-9", &kit("cisco-ios/pybatfish_tokyo.cfg")]);
    plant.ok(&["config", "capture", "HIST-1", &kit("linux-hardening/azure-app-service_python_sshd_config")]);
    let audit_before = plant.ok(&["audit", "log", "--json"]).json().as_array().map(|a| a.len());

    let ios = plant.expect_code(
        1,
        &["compliance", "--template", &example("ios-hardening.toml"), "--set", "syslog_host=111.111.111.111"],
    );
    // Rows with their columns' padding collapsed.
    let table: String = ios.stdout.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") + "\n").collect();
    // RTR-1 (the ASR 920 export) meets every configuration rule; RTR-2 (london) misses three; SW-9 is low
    // criticality and HIST-1 a server: the standard does not apply to them.
    for expected in [
        "RTR-1 running-config v1 IOS-01 compliant",
        "RTR-1 running-config v1 IOS-04 compliant",
        "RTR-2 running-config v1 IOS-01 NON-COMPLIANT",
        "RTR-2 running-config v1 IOS-04 NON-COMPLIANT [line vty 0 4] no line matches",
        "RTR-2 - INV-01 NON-COMPLIANT [owner] owner is not recorded",
        "RTR-1 - MAN-01 manual",
    ] {
        assert!(table.contains(expected), "{expected:?} in:\n{table}");
    }
    assert!(!table.contains("SW-9") && !table.contains("HIST-1"), "{table}");

    let json = plant
        .expect_code(1, &["compliance", "--template", &example("ios-hardening.toml"), "--asset", "RTR-2", "--json"])
        .json();
    assert_eq!((json["template"].as_str(), json["version"].as_str()), (Some("ios-hardening"), Some("1.0.0")));
    let rows = json["rows"].as_array().expect("rows");
    assert!(rows.iter().all(|r| r["asset"] == "RTR-2"));
    let ios03 = rows.iter().find(|r| r["rule"] == "IOS-03").expect("IOS-03");
    assert_eq!(ios03["result"], "non-compliant", "{ios03}");
    assert!(
        ios03["findings"][0]["what"].as_str().unwrap_or("").contains("10\\.0\\.0\\.5"),
        "the default, escaped: {ios03}"
    );

    let ssh = plant.expect_code(1, &["compliance", "--template", &example("linux-ssh.toml")]);
    let ssh: String = ssh.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(ssh.contains("HIST-1 config v1 SSH-01 NON-COMPLIANT [global] permitrootlogin yes"), "{ssh}");

    // Bad templates and settings: refused (exit 2) with every problem named, before any work.
    let bad = plant.write(
        "bad.toml",
        b"[template]\nid = 'x y'\nversion = '1'\ntitle = 't'\n[[rule]]\nid = 'R'\nrequire = '^a('\n",
    );
    let run = plant.expect_code(2, &["compliance", "--template", bad.to_str().expect("utf-8")]);
    assert!(
        run.stderr.contains("template id") && run.stderr.contains("MAJOR.MINOR.PATCH") && run.stderr.contains("^a("),
        "{}",
        run.stderr
    );
    let wrong = std::fs::read_to_string(example("linux-ssh.toml"))
        .expect("read")
        .replace("fail = [\"PasswordAuthentication yes\\n\"]", "fail = [\"PasswordAuthentication no\\n\"]");
    let wrong = plant.write("wrong.toml", wrong.as_bytes());
    let run = plant.expect_code(2, &["compliance", "--template", wrong.to_str().expect("utf-8")]);
    assert!(run.stderr.contains("rule SSH-02: its fail example #1 is compliant"), "{}", run.stderr);
    let run = plant.expect_code(2, &["compliance", "--template", &example("ios-hardening.toml"), "--set", "nope=1"]);
    assert!(run.stderr.contains("nope is not a parameter"), "{}", run.stderr);
    plant.expect_code(2, &["compliance", "--template", &example("ios-hardening.toml"), "--asset", "NOPE"]);
    plant.expect_code(2, &["compliance", "--template", "/nonexistent.toml"]);

    // Reads only: the audit trail did not grow.
    assert_eq!(plant.ok(&["audit", "log", "--json"]).json().as_array().map(|a| a.len()), audit_before);
}
