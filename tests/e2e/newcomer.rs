//! A newcomer's first hour: who is acting when nobody said, names that look alike, help for every command and
//! option, and listings that read as they should.

use datum_tests::{bin, Backend, Hub, Plant};

#[test]
fn without_user_the_os_account_of_the_uid_acts() {
    let plant = Plant::empty();
    let mut init = plant.command(&["init", "--site", "plant-west"]);
    init.env_remove("USER").env_remove("LOGNAME").env_remove("DATUM_ACTOR");
    let run = datum_tests::Run::from(init.output().expect("run"));
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let expected = std::process::Command::new("id").arg("-un").output().expect("id -un");
    let expected = String::from_utf8_lossy(&expected.stdout).trim().to_string();
    let log = plant.ok(&["audit", "log", "--json"]).json();
    assert_eq!(log[0]["actor"], expected.as_str(), "{log}");
}

#[test]
fn look_alike_names_are_refused_and_compared_by_their_normal_form() {
    let plant = Plant::new("plant-west");
    plant.ok(&["asset", "add", "FW-01", "--kind", "firewall"]);
    for name in ["\u{430}lice", "ali\u{200b}ce", "bob\u{202e}"] {
        let run = plant.run_as(name, &["asset", "edit", "FW-01", "--owner", "x"]);
        assert_eq!(run.code, 2, "{name:?} acted: {}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains("acting name"), "{}", run.stderr);
    }
    let id = plant.new_change("FW-01", "low");
    plant.ok(&["change", "submit", &id]);
    // The requester typed in full-width letters is still the requester.
    let own = plant.run_as("ａｌｉｃｅ", &["change", "approve", &id]);
    assert_eq!(own.code, 2, "{}{}", own.stdout, own.stderr);
    assert_eq!(plant.run_as("bob", &["change", "approve", &id]).code, 0);
}

#[test]
fn the_hub_lists_retired_assets_only_on_request() {
    let mut hub = Hub::new(Backend::Sqlite);
    hub.start(true);
    let plant = Plant::new("north");
    plant.ok(&["asset", "add", "PLC-LONG-NAME-01", "--kind", "plc", "--zone", "cell-1"]);
    plant.ok(&["asset", "add", "RTU-9", "--kind", "rtu"]);
    plant.ok(&["asset", "retire", "RTU-9", "--reason", "decommissioned"]);
    let token = hub.add_site("north");
    assert_eq!(plant.enroll(&hub, &token).code, 0);
    assert_eq!(plant.sync("auto").code, 0);
    let active = hub.ok(&["asset", "list", "--json"]).json();
    assert_eq!(active.as_array().map(Vec::len), Some(1), "{active}");
    let all = hub.ok(&["asset", "list", "--all", "--json"]).json();
    assert_eq!(all.as_array().map(Vec::len), Some(2), "{all}");
    let table = hub.ok(&["asset", "list", "--all"]).stdout;
    let lines: Vec<&str> = table.lines().take(3).collect();
    // Aligned: the kind column starts at the same place on every line.
    let kind_col = lines[0].find("KIND");
    assert!(kind_col.is_some() && lines[1].find("plc") == kind_col && lines[2].find("rtu") == kind_col, "{table}");
    assert!(table.contains("retired"), "{table}");
}

/// Every subcommand and every option of both binaries says what it is for in `--help`.
#[test]
fn every_command_and_option_has_help_text() {
    let mut missing = Vec::new();
    for binary in ["datum-edge", "datum-hub"] {
        walk_help(binary, &mut Vec::new(), &mut missing);
    }
    assert!(missing.is_empty(), "without help text:\n{}", missing.join("\n"));
}

fn walk_help(binary: &str, path: &mut Vec<String>, missing: &mut Vec<String>) {
    let mut cmd = std::process::Command::new(bin(binary));
    cmd.args(path.iter()).arg("--help").env_remove("DATUM_HUB_DATABASE");
    let out = cmd.output().expect("run --help");
    let help = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{binary} {path:?} --help failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut section = "";
    let mut subcommands = Vec::new();
    let lines: Vec<&str> = help.lines().collect();
    for (idx, line) in lines.iter().enumerate() {
        if !line.starts_with(' ') && line.ends_with(':') {
            section = line;
            continue;
        }
        let item = line.trim_start();
        if item.is_empty() || !line.starts_with("  ") || line.starts_with("          ") {
            continue;
        }
        // An item and its text are separated by at least two spaces, or the text is on the lines below it.
        let described = item.split_once("  ").is_some_and(|(_, text)| !text.trim().is_empty())
            || lines.get(idx + 1).is_some_and(|next| next.starts_with("          ") && !next.trim().is_empty());
        match section {
            "Commands:" => {
                let name = item.split_whitespace().next().unwrap_or_default().to_string();
                if name != "help" {
                    if !described {
                        missing.push(format!("{binary} {} {name}", path.join(" ")));
                    }
                    subcommands.push(name);
                }
            }
            "Options:" | "Arguments:"
                if !described && !item.starts_with("-h, --help") && !item.starts_with("-V, --version") =>
            {
                missing.push(format!("{binary} {}: {item}", path.join(" ")));
            }
            _ => {}
        }
    }
    for sub in subcommands {
        path.push(sub);
        walk_help(binary, path, missing);
        path.pop();
    }
}

/// Input mistakes are usage errors (exit 2) told in one message.
#[test]
fn input_mistakes_exit_2_with_one_message() {
    let plant = Plant::new("plant-west");
    plant.ok(&["asset", "add", "FW-01", "--kind", "firewall", "--zone", "dmz"]);
    let cfg = plant.write("fw.conf", b"config system global\n    set hostname fw\nend\n");
    plant.ok(&["config", "capture", "FW-01", cfg.to_str().expect("utf-8")]);
    let one_message = |args: &[&str], needle: &str| {
        let run = plant.expect_code(2, args);
        let lines: Vec<&str> = run.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(lines.len() <= 3 && run.stderr.contains(needle), "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("unreachable"), "{}", run.stderr);
    };
    one_message(&["dump", "--out", "/nonexistent-datum-dir/site.dump"], "does not exist");
    one_message(
        &["config", "export", "FW-01", "--version", "1", "--out", "/nonexistent-datum-dir/x"],
        "does not exist",
    );
    one_message(&["config", "export", "FW-01", "--version", "vv1", "--out", "x"], "not a version number");
    one_message(&["audit", "log", "--asset", "NOPE-1"], "asset NOPE-1 does not exist");
    one_message(&["drift", "--zone", "nowhere"], "zone \"nowhere\" has no assets");
    one_message(&["enroll", "--hub", "hub.example", "--token", "t", "--fingerprint", "f"], "has no port");
    one_message(&["enroll", "--hub", "hub.example:99999", "--token", "t", "--fingerprint", "f"], "port");
}

/// `--out` replaces only a regular file; devices, pipes and links are refused, and `-` is standard output.
#[test]
fn out_never_replaces_anything_but_a_regular_file() {
    let plant = Plant::new("plant-west");
    plant.ok(&["asset", "add", "FW-01", "--kind", "firewall"]);
    let cfg = plant.write("fw.conf", b"config system global\n    set hostname fw\nend\n");
    plant.ok(&["config", "capture", "FW-01", cfg.to_str().expect("utf-8")]);
    let link = plant.path("link.conf");
    std::os::unix::fs::symlink(&cfg, &link).expect("symlink");
    for target in ["/dev/null", "/dev/full", link.to_str().expect("utf-8")] {
        let run = plant.expect_code(2, &["config", "export", "FW-01", "--version", "1", "--out", target]);
        assert!(run.stderr.contains("not a regular file"), "{target}: {}", run.stderr);
        let run = plant.expect_code(2, &["dump", "--out", target]);
        assert!(run.stderr.contains("not a regular file"), "{target}: {}", run.stderr);
    }
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata("/dev/null").expect("stat").file_type().is_char_device());
    assert!(std::fs::symlink_metadata(&link).expect("stat").file_type().is_symlink());
    let out = plant.command(&["config", "export", "FW-01", "--version", "1", "--out", "-"]).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, std::fs::read(&cfg).expect("read"));
    let dump = plant.command(&["dump", "--out", "-"]).output().expect("run");
    assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
    let file = plant.path("from-stdout.dump");
    std::fs::write(&file, &dump.stdout).expect("write");
    let copy = Plant::empty();
    copy.ok(&["restore-dump", file.to_str().expect("utf-8")]);
    assert_eq!(copy.ok(&["audit", "verify", "--json"]).json()["intact"], true);
}

#[test]
fn a_port_in_use_is_an_input_error() {
    let mut hub = Hub::new(Backend::Sqlite);
    hub.start(false);
    let run = hub.run(&["serve", "--listen", hub.addr(), "--no-udp"]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("cannot listen on") && run.stderr.lines().count() == 1, "{}", run.stderr);
}

/// Display names with spaces and in any language: the identifier is derived, or given with --id.
#[test]
fn sites_are_named_as_people_say_them() {
    let plant = Plant::empty();
    let run = plant.ok(&["init", "--site", "Plant North 2"]);
    assert!(run.stdout.contains("Plant North 2 (identifier plant-north-2)"), "{}", run.stdout);
    let log = plant.ok(&["audit", "log", "--json"]).json();
    assert_eq!(log[0]["subject"], "plant-north-2", "{log}");
    let south = Plant::empty();
    assert!(south.ok(&["init", "--site", "Werk Süd"]).stdout.contains("identifier werk-sud"));
    let kojo = Plant::empty();
    let refused = kojo.expect_code(2, &["init", "--site", "第二工場"]);
    assert!(refused.stderr.contains("--id"), "{}", refused.stderr);
    assert!(kojo.ok(&["init", "--site", "第二工場", "--id", "kojo-2"]).stdout.contains("identifier kojo-2"));
}

/// A hub and a plant named as people say them agree on the identifier: the plant enrolls with its token.
#[test]
fn hub_and_plant_derive_the_same_identifier() {
    let hub_dir = tempfile::tempdir().expect("tempdir");
    let init = std::process::Command::new(bin("datum-hub"))
        .args(["--data", hub_dir.path().join("hub").to_str().expect("utf-8"), "init", "--name", "ACME OT"])
        .env_remove("DATUM_HUB_DATABASE")
        .output()
        .expect("run");
    let shown = String::from_utf8_lossy(&init.stdout);
    assert!(init.status.success() && shown.contains("ACME OT (identifier acme-ot)"), "{shown}");

    let mut hub = Hub::new(Backend::Sqlite);
    hub.start(true);
    let added = hub.ok(&["site", "add", "Werk Süd", "--json"]).json();
    assert_eq!(added["site"], "werk-sud", "{added}");
    let listed = hub.ok(&["site", "list", "--json"]).json();
    assert!(listed.as_array().expect("array").iter().any(|s| s["name"] == "werk-sud" && s["display"] == "Werk Süd"));
    let plant = Plant::empty();
    plant.ok(&["init", "--site", "Werk Süd"]);
    let token = added["token"].as_str().expect("token");
    let run = plant.enroll(&hub, token);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(plant.sync("auto").code, 0);
    assert!(hub.ok(&["site", "show", "Werk Süd", "--json"]).json()["site"].is_object());
}
