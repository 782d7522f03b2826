//! Templates that act at the plant, end to end over real QUIC: a `gate` template that asks for local
//! acceptance waits for a site approver, then blocks the verification of a change whose capture brings a new
//! non-compliance; a waiver requested and approved by the same person is refused, one approved by another
//! person lets the change through and shows as waived at the plant and at the hub; once expired, the
//! finding is a violation again; a policy template raises the approvals a change needs.

use std::process::Command;

use chrono::{Duration, Utc};
use datum_tests::*;

fn example(name: &str) -> String {
    std::fs::read_to_string(workspace_root().join("examples/templates").join(name)).expect("read example")
}

fn kit(rel: &str) -> String {
    fixture(rel).to_str().expect("utf-8").to_string()
}

fn synced(plant: &Plant, hub: &Hub) {
    let run = plant.sync("quic");
    assert_eq!(run.code, 0, "sync: {}{}\n{}", run.stdout, run.stderr, hub.log());
}

fn publish(hub: &Hub, name: &str, text: &str) {
    let file = hub.tmp.path().join(name);
    std::fs::write(&file, text).expect("write template");
    hub.ok(&["template", "add", file.to_str().expect("utf-8")]);
}

#[test]
fn gate_waivers_acceptance_and_policy() {
    let mut hub = Hub::new(Backend::Sqlite);
    hub.start(true);
    let mut plant = Plant::new("mill");
    plant.ok(&["asset", "add", "RTR-1", "--kind", "router", "--criticality", "high", "--owner", "ops"]);
    let asr920 = kit("cisco-ios/oxidized_ios_asr920_16.8.1b.cfg");
    plant.ok(&["config", "capture", "RTR-1", &asr920]);
    plant.ok(&["baseline", "approve", "RTR-1", "--version", "1", "--reason", "commissioned"]);
    let token = hub.add_site("mill");
    assert_eq!(plant.enroll(&hub, &token).code, 0);

    // The corporate standard as a gate, run only once the plant accepts it; and a policy template.
    let gate = example("ios-hardening.toml")
        .replace("id = \"ios-hardening\"", "id = \"ios-gate\"")
        .replace("enforcement = \"report\"", "enforcement = \"gate\"\nacceptance = \"local\"");
    publish(&hub, "gate.toml", &gate);
    publish(
        &hub,
        "policy.toml",
        "[template]\nid = \"corp-policy\"\nversion = \"1.0.0\"\ntitle = \"Company change policy\"\n\n[policy]\n\
         approvals = { low = 2 }\nreview_days = { high = 60 }\n\n[change]\nrequired = [\"test_plan\"]\n\
         checklist = [\"Running configuration backed up\"]\n",
    );
    for id in ["ios-gate", "corp-policy"] {
        hub.ok(&["template", "publish", id]);
    }
    hub.ok(&["template", "assign", "ios-gate", "--site", "mill", "--set", "syslog_host=111.111.111.111"]);
    hub.ok(&["template", "assign", "corp-policy", "--site", "mill"]);
    synced(&plant, &hub);

    // Verified, but waiting for a site approver; nothing evaluates it yet.
    let shown = plant.ok(&["template", "show", "ios-gate", "--json"]).json();
    assert_eq!(shown["state"], "verified", "{shown}");
    assert!(shown["reason"].as_str().expect("reason").contains("template accept"), "{shown}");
    let run = plant.ok(&["compliance", "--template", "corp-policy", "--json"]);
    assert_eq!(run.json().as_array().map(Vec::len), Some(1), "the policy template is active: {}", run.stdout);
    let run = plant.run(&["compliance", "--template", "ios-gate"]);
    assert_eq!(run.code, 2, "not active before acceptance: {}{}", run.stdout, run.stderr);
    let run = plant.run_as("carol", &["template", "accept", "ios-gate", "--comment", "read it"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let run = plant.run_as("carol", &["template", "accept", "ios-gate"]);
    assert_eq!(run.code, 2, "accepted twice: {}", run.stdout);
    assert!(run.stderr.contains("already accepted"), "{}", run.stderr);
    assert_eq!(plant.ok(&["template", "show", "ios-gate", "--json"]).json()["state"], "active");
    plant.ok(&["compliance", "--template", "ios-gate"]);

    // The policy template: a test plan is required, a low-risk change needs two approvers, and the checklist
    // is confirmed at implementation.
    let mut new = vec!["change", "new", "--title", "Move syslog", "--reason", "new server", "--asset", "RTR-1"];
    new.extend(["--risk", "low", "--impact", "none", "--rollback", "restore v1", "--json"]);
    let run = plant.run(&new);
    assert_eq!(run.code, 2, "no test plan: {}", run.stdout);
    assert!(run.stderr.contains("corp-policy 1.0.0 requires a test plan"), "{}", run.stderr);
    new.extend(["--test-plan", "show logging"]);
    let change = plant.ok(&new).json()["id"].as_str().expect("id").to_string();
    let shown = plant.ok(&["change", "show", &change, "--json"]).json();
    assert_eq!(shown["required_approvals"], 2, "{shown}");
    assert_eq!(shown["checklist"][0], "Running configuration backed up", "{shown}");
    plant.ok(&["change", "submit", &change]);
    let run = plant.run_as("bob", &["change", "approve", &change]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("1 of 2 approvals"), "{}", run.stdout);
    let run = plant.run_as("carol", &["change", "approve", &change]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);

    // The change drops the syslog host: a new non-compliance, which the gate refuses at verification.
    let changed = std::fs::read_to_string(&asr920).expect("read").replace("logging host 111.111.111.111\n", "");
    let file = plant.write("asr920-changed.cfg", changed.as_bytes());
    plant.ok(&["config", "capture", "RTR-1", file.to_str().expect("utf-8"), "--change", &change]);
    let run = plant.run(&["change", "implement", &change]);
    assert_eq!(run.code, 2, "checklist not confirmed: {}", run.stdout);
    assert!(run.stderr.contains("Running configuration backed up"), "{}", run.stderr);
    plant.ok(&["change", "implement", &change, "--checklist-done"]);
    let run = plant.run(&["change", "verify", &change]);
    assert_eq!(run.code, 2, "the gate refuses: {}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("ios-gate 1.0.0 IOS-03 on RTR-1/running-config v2"), "{}", run.stderr);
    assert!(run.stderr.contains("waiver request"), "{}", run.stderr);
    assert_eq!(plant.ok(&["change", "show", &change, "--json"]).json()["state"], "implemented");

    // A waiver: requested by alice, her own approval refused, bob's accepted.
    let expires = (Utc::now() + Duration::days(10)).format("%Y-%m-%d").to_string();
    let reason = "syslog server moves with CR in January; local buffer kept";
    let run = plant.run(
        &["waiver", "request", "--template", "ios-gate", "--rule", "IOS-99", "--asset", "RTR-1"]
            .into_iter()
            .chain(["--reason", reason, "--expires", &expires])
            .collect::<Vec<_>>(),
    );
    assert_eq!(run.code, 2, "an unknown rule: {}", run.stdout);
    assert!(run.stderr.contains("has no rule IOS-99"), "{}", run.stderr);
    let args = ["waiver", "request", "--template", "ios-gate", "--rule", "IOS-03", "--asset", "RTR-1", "--reason"];
    let run = plant.ok(&args.into_iter().chain([reason, "--expires", &expires, "--json"]).collect::<Vec<_>>());
    let waiver = run.json()["id"].as_str().expect("waiver id").to_string();
    assert_eq!(waiver, "W-0001");
    let run = plant.run(&["waiver", "approve", &waiver]);
    assert_eq!(run.code, 2, "the requester approving her own waiver: {}", run.stdout);
    assert!(run.stderr.contains("alice requested this waiver and cannot approve it"), "{}", run.stderr);
    let listed = plant.ok(&["waiver", "list", "--json"]).json();
    assert_eq!(listed[0]["status"], "requested", "{listed}");
    let run = plant.run_as("bob", &["waiver", "approve", &waiver, "--comment", "ok until the move"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(plant.ok(&["waiver", "list", "--json"]).json()[0]["status"], "active");

    // Covered now: the change verifies; compliance shows the rule waived, not failing.
    let run = plant.run(&["change", "verify", &change]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let run = plant.ok(&["compliance", "--template", "ios-gate", "--json"]);
    let rows = run.json()[0]["rows"].clone();
    let ios03 = rows.as_array().expect("rows").iter().find(|r| r["rule"] == "IOS-03").expect("IOS-03").clone();
    assert_eq!((ios03["result"].as_str(), ios03["waiver"].as_str()), (Some("waived"), Some("W-0001")), "{ios03}");
    let summary = plant.ok(&["compliance", "--template", "ios-gate", "--summary", "--json"]).json();
    assert_eq!(
        (summary[0]["counts"]["waived"].as_u64(), summary[0]["waived"][0]["rule"].as_str()),
        (Some(1), Some("IOS-03"))
    );

    // Two questions, both answered: the asset matches its new baseline and meets the standard, one rule waived.
    let shown = plant.ok(&["asset", "show", "RTR-1"]).stdout;
    assert!(shown.contains("baseline     running-config: in-baseline"), "{shown}");
    assert!(
        shown.contains("standard     ios-gate 1.0.0: meets it") && shown.contains("waived: IOS-03 (W-0001)"),
        "{shown}"
    );

    // The hub sees the waived pair apart from the failing ones.
    synced(&plant, &hub);
    let rows = hub.run(&["compliance", "--json"]);
    let row = rows.json().as_array().expect("rows").iter().find(|r| r["template"] == "ios-gate").expect("row").clone();
    assert_eq!((row["counts"]["waived"].as_u64(), row["compliant"].as_bool()), (Some(1), Some(true)), "{row}");
    assert_eq!(row["waived"][0]["rule"], "IOS-03", "{row}");
    assert!(row["failing"].as_array().expect("failing").is_empty(), "{row}");

    // The manual checklist item is answered at a review, and counts while the review is current (the policy
    // template sets 60 days for high-criticality assets).
    let man = |plant: &Plant| -> String {
        let run = plant.run(&["compliance", "--template", "ios-gate", "--json"]);
        let rows = run.json()[0]["rows"].clone();
        let row = rows.as_array().expect("rows").iter().find(|r| r["rule"] == "MAN-01").expect("MAN-01").clone();
        row["result"].as_str().expect("result").to_string()
    };
    assert_eq!(man(&plant), "manual");
    let run =
        plant.run(&["review", "record", "RTR-1", "--outcome", "ok", "--notes", "walked", "--answer", "MAN-99=yes"]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(run.stderr.contains("no template active here has a manual rule MAN-99"), "{}", run.stderr);
    plant.ok(&["review", "record", "RTR-1", "--outcome", "ok", "--notes", "cabinet locked", "--answer", "MAN-01=yes"]);
    assert_eq!(man(&plant), "compliant");

    // Eleven days on, the waiver has expired and the finding is a violation again, without anyone acting.
    plant.now = Some((Utc::now() + Duration::days(11)).to_rfc3339());
    let run = plant.expect_code(1, &["compliance", "--template", "ios-gate", "--json"]);
    let rows = run.json()[0]["rows"].clone();
    let ios03 = rows.as_array().expect("rows").iter().find(|r| r["rule"] == "IOS-03").expect("IOS-03").clone();
    assert_eq!(ios03["result"], "non-compliant", "{ios03}");
    assert_eq!(plant.ok(&["waiver", "list", "--json"]).json()[0]["status"], "expired");
    let shown = plant.ok(&["asset", "show", "RTR-1"]).stdout;
    assert!(shown.contains("standard     ios-gate 1.0.0: does NOT meet it: IOS-03"), "{shown}");
    assert_eq!(man(&plant), "compliant", "the review answer is 11 days old");
    // The next pass records it, and the hub shows the site non-compliant again.
    synced(&plant, &hub);
    let rows = hub.run(&["compliance", "--site", "mill", "--template", "ios-gate", "--json"]);
    assert_eq!(rows.code, 1, "{}{}", rows.stdout, rows.stderr);
    let row = rows.json()[0].clone();
    assert_eq!((row["counts"]["waived"].as_u64(), row["compliant"].as_bool()), (Some(0), Some(false)), "{row}");

    plant.now = Some((Utc::now() + Duration::days(61)).to_rfc3339());
    assert_eq!(man(&plant), "manual", "the answer lapsed with the review interval");

    // The gate blocks only what a change brings: a later change whose capture is the baseline itself (IOS-03
    // already failing there, its waiver expired) verifies.
    plant.now = Some((Utc::now() + Duration::days(62)).to_rfc3339());
    let mut new = vec!["change", "new", "--title", "Re-check", "--reason", "audit", "--asset", "RTR-1", "--risk"];
    new.extend(["low", "--impact", "none", "--rollback", "none", "--test-plan", "show run", "--json"]);
    let again = plant.ok(&new).json()["id"].as_str().expect("id").to_string();
    plant.ok(&["change", "submit", &again]);
    for approver in ["bob", "carol"] {
        let run = plant.run_as(approver, &["change", "approve", &again]);
        assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    }
    plant.ok(&["config", "capture", "RTR-1", file.to_str().expect("utf-8"), "--change", &again]);
    plant.ok(&["change", "implement", &again, "--checklist-done"]);
    let run = plant.run(&["change", "verify", &again]);
    assert_eq!(run.code, 0, "nothing new under the gate: {}{}", run.stdout, run.stderr);

    // The hub judges the site by the plant's policy: RTR-1 (high) was reviewed today; 75 days on, it is
    // overdue under the policy template's 60 days (the built-in interval is 90).
    hub.now = Some((Utc::now() + Duration::days(75)).to_rfc3339());
    let status = hub.run(&["status", "--json"]);
    let sites = status.json();
    let mill = sites.as_array().expect("sites").iter().find(|s| s["site"] == "mill").expect("mill").clone();
    assert_eq!(mill["overdue_reviews"], 1, "{mill}");
    hub.now = None;

    // Every step is in the site's audit trail.
    plant.now = None;
    let log = plant.ok(&["audit", "log", "--json"]).json();
    let ops: Vec<&str> = log.as_array().expect("entries").iter().filter_map(|e| e["op"].as_str()).collect();
    for op in ["template.accept", "waiver.request", "waiver.approve", "change.verify"] {
        assert!(ops.contains(&op), "{op} missing from {ops:?}");
    }

    // From the attacker's side, once the site has users: only an approver decides a waiver or accepts a
    // template; an engineer's API token may request one but never decide it.
    // (On the drill clock past the last sync pass's entries, dated 11 days ahead: the trail never goes back.)
    plant.now = Some((Utc::now() + Duration::days(62)).to_rfc3339());
    let expires = (Utc::now() + Duration::days(70)).format("%Y-%m-%d").to_string();
    let login = String::from_utf8(Command::new("id").arg("-un").output().expect("id").stdout).expect("utf-8");
    let os = |args: &[&str], token: Option<&str>| -> Run {
        let mut cmd = plant.command(args);
        cmd.env_remove("DATUM_ACTOR").env_remove("DATUM_TOKEN");
        if let Some(t) = token {
            cmd.env("DATUM_TOKEN", t);
        }
        Run::from(cmd.output().expect("run datum-edge"))
    };
    let run = os(&["user", "add", "admin", "--role", "site-admin", "--os-user", login.trim()], None);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(os(&["user", "add", "eng", "--role", "engineer"], None).code, 0);
    let token =
        os(&["token", "create", "--user", "eng", "--json"], None).json()["token"].as_str().expect("token").to_string();
    let mut request = vec!["waiver", "request", "--template", "ios-gate", "--rule", "IOS-02", "--asset", "RTR-1"];
    request.extend(["--reason", "vendor tool needs HTTP", "--expires", &expires]);
    let run = os(&request, Some(&token));
    assert_eq!(run.code, 0, "an engineer requests: {}{}", run.stdout, run.stderr);
    for (who, token) in [("the site admin", None), ("the engineer's token", Some(token.as_str()))] {
        for args in [vec!["waiver", "approve", "W-0002"], vec!["waiver", "revoke", "W-0001", "--reason", "x"]] {
            let run = os(&args, token);
            assert_eq!(run.code, 2, "{who} {args:?} must be refused: {}{}", run.stdout, run.stderr);
        }
        let run = os(&["template", "accept", "ios-gate"], token);
        assert_eq!(run.code, 2, "{who} accepting a template: {}{}", run.stdout, run.stderr);
    }
    let refused = os(&["waiver", "approve", "W-0002"], None);
    assert!(refused.stderr.contains("needs the role approver"), "{}", refused.stderr);
    let listed = os(&["waiver", "list", "--json"], None).json();
    assert_eq!(listed[1]["status"], "requested", "{listed}");
    assert_eq!(listed[0]["status"], "expired", "{listed}");
}
