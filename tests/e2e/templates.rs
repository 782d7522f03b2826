//! Shared templates end to end, with the real binaries over real QUIC: the hub publishes two standards and
//! assigns them to two plants with different parameters; the plants verify and evaluate them (one while the
//! hub is down) and the results reach the hub; a new version rolls out and the hub shows who runs which; a
//! template altered in the hub's database after signing is refused by the plant and the refusal reaches the
//! hub; one site never receives another's assignments.

use datum_tests::*;
use serde_json::Value;

fn example(name: &str) -> String {
    workspace_root().join("examples/templates").join(name).to_str().expect("utf-8").to_string()
}

fn kit(rel: &str) -> String {
    fixture(rel).to_str().expect("utf-8").to_string()
}

/// `datum-hub compliance --json` (exit 0 or 1), as rows keyed "site template".
fn hub_compliance(hub: &Hub) -> std::collections::BTreeMap<String, Value> {
    let run = hub.run(&["compliance", "--json"]);
    assert!(run.code == 0 || run.code == 1, "compliance failed: {}{}", run.stdout, run.stderr);
    run.json()
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (format!("{} {}", r["site"].as_str().expect("site"), r["template"].as_str().expect("template")), r.clone())
        })
        .collect()
}

fn synced(plant: &Plant, hub: &Hub) {
    let run = plant.sync("quic");
    assert_eq!(run.code, 0, "sync: {}{}\n{}", run.stdout, run.stderr, hub.log());
}

fn site_id(plant: &Plant) -> String {
    let url = plant.data.join("datum.db");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        use sqlx::Connection;
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}", url.display())).await.expect("open database");
        let id: String = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'site_id'")
            .fetch_one(&mut conn)
            .await
            .expect("site id");
        conn.close().await.expect("close");
        id
    })
}

fn rollout(backend: Backend) {
    let mut hub = Hub::new(backend);
    hub.start(true);
    // Two plants from the kit's real exports: north meets the IOS standard, south misses three rules.
    let north = Plant::new("north");
    north.ok(&["asset", "add", "RTR-1", "--kind", "router", "--criticality", "high", "--owner", "ops"]);
    north.ok(&["config", "capture", "RTR-1", &kit("cisco-ios/oxidized_ios_asr920_16.8.1b.cfg")]);
    north.ok(&["asset", "add", "HIST-1", "--kind", "server", "--criticality", "high", "--owner", "it"]);
    north.ok(&["config", "capture", "HIST-1", &kit("linux-hardening/azure-app-service_python_sshd_config")]);
    let south = Plant::new("south");
    south.ok(&["asset", "add", "RTR-2", "--kind", "router", "--criticality", "critical"]);
    south.ok(&["config", "capture", "RTR-2", &kit("cisco-ios/pybatfish_london.cfg")]);
    for (plant, site) in [(&north, "north"), (&south, "south")] {
        let token = hub.add_site(site);
        let run = plant.enroll(&hub, &token);
        assert_eq!(run.code, 0, "enroll {site}: {}{}", run.stdout, run.stderr);
        synced(plant, &hub);
    }

    // Written once at the hub: drafts validated, then signed and published.
    for file in ["ios-hardening.toml", "linux-ssh.toml"] {
        hub.ok(&["template", "add", &example(file)]);
    }
    let list = hub.ok(&["template", "list", "--json"]).json();
    assert_eq!(list[0]["drafts"][0], "1.0.0", "{list}");
    // A draft with wrong examples is refused, naming the rule.
    let wrong = std::fs::read_to_string(example("linux-ssh.toml"))
        .expect("read")
        .replace("fail = [\"PasswordAuthentication yes\\n\"]", "fail = [\"PasswordAuthentication no\\n\"]");
    let wrong_file = hub.tmp.path().join("wrong.toml");
    std::fs::write(&wrong_file, wrong).expect("write");
    let run = hub.run(&["template", "add", wrong_file.to_str().expect("utf-8")]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("rule SSH-02"), "{}", run.stderr);
    // Not published yet: cannot be assigned.
    let run = hub.run(&["template", "assign", "ios-hardening", "--all"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("not published"), "{}", run.stderr);
    hub.ok(&["template", "publish", "ios-hardening"]);
    hub.ok(&["template", "publish", "linux-ssh"]);
    // Published versions never change.
    let run = hub.run(&["template", "add", &example("linux-ssh.toml")]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("published already"), "{}", run.stderr);

    // Each site with its own parameters; an unknown parameter is refused for every site, nothing written.
    let run = hub.run(&["template", "assign", "ios-hardening", "--all", "--set", "nope=1"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    hub.ok(&["template", "assign", "ios-hardening", "--site", "north", "--set", "syslog_host=111.111.111.111"]);
    hub.ok(&["template", "assign", "ios-hardening", "--site", "south", "--set", "syslog_host=10.9.9.9"]);
    hub.ok(&["template", "assign", "linux-ssh", "--all"]);

    // North receives both, verifies them against the key pinned at enrollment, evaluates, reports.
    synced(&north, &hub);
    let listed = north.run(&["template", "list", "--json"]);
    assert_eq!(listed.code, 0, "{}{}", listed.stdout, listed.stderr);
    let listed = listed.json();
    let states: Vec<(String, String)> = listed
        .as_array()
        .expect("templates")
        .iter()
        .map(|t| (t["template"].as_str().expect("id").to_string(), t["state"].as_str().expect("state").to_string()))
        .collect();
    assert_eq!(
        states,
        [("ios-hardening".to_string(), "active".to_string()), ("linux-ssh".to_string(), "active".to_string())]
    );
    let shown = north.ok(&["template", "show", "ios-hardening", "--json"]).json();
    assert_eq!(shown["parameters"]["syslog_host"], "111.111.111.111", "{shown}");
    // `compliance` evaluates what is active (exit 1: HIST-1 allows root logins).
    let run = north.expect_code(1, &["compliance", "--json"]);
    let reports = run.json();
    assert_eq!(reports.as_array().map(Vec::len), Some(2), "{reports}");

    // South gets them, then the WAN goes: it keeps evaluating offline at each capture.
    synced(&south, &hub);
    hub.kill();
    south.ok(&["config", "capture", "RTR-2", &kit("cisco-ios/pybatfish_tokyo.cfg")]);
    let shown = south.ok(&["template", "list", "--json"]).json();
    assert!(
        shown[0]["compliance"]["failing"]
            .as_array()
            .expect("failing")
            .iter()
            .any(|f| f["config"] == "running-config v2"),
        "evaluated offline at the capture: {shown}"
    );
    hub.start(true);
    synced(&south, &hub);

    // The hub shows per site the version active there and the counts.
    let rows = hub_compliance(&hub);
    let n = &rows["north ios-hardening"];
    assert_eq!((n["state"].as_str(), n["site_version"].as_str()), (Some("active"), Some("1.0.0")), "{n}");
    assert_eq!(n["compliant"], true, "{n}");
    let s = &rows["south ios-hardening"];
    assert_eq!(s["compliant"], false, "{s}");
    assert!(
        s["failing"].as_array().expect("failing").iter().any(|f| f["rule"] == "IOS-03" && f["asset"] == "RTR-2"),
        "{s}"
    );
    assert_eq!(rows["north linux-ssh"]["compliant"], false, "root login allowed on HIST-1");
    assert_eq!(rows["south linux-ssh"]["assets"], 0, "no Linux host in the south");
    assert_eq!(hub.run(&["compliance", "--site", "south"]).code, 1, "non-compliant: exit 1");
    assert_eq!(hub.run(&["compliance", "--site", "north", "--template", "ios-hardening"]).code, 0);

    // A new version rolls out to every site it is assigned to, with their parameters.
    let v2 = std::fs::read_to_string(example("ios-hardening.toml"))
        .expect("read")
        .replace("version = \"1.0.0\"", "version = \"1.1.0\"");
    let v2_file = hub.tmp.path().join("ios-v2.toml");
    std::fs::write(&v2_file, v2).expect("write");
    hub.ok(&["template", "add", v2_file.to_str().expect("utf-8")]);
    let published = hub.ok(&["template", "publish", "ios-hardening"]);
    assert!(published.stdout.contains("rolled out to site north"), "{}", published.stdout);
    synced(&north, &hub);
    let rows = hub_compliance(&hub);
    assert_eq!(rows["north ios-hardening"]["site_version"], "1.1.0");
    assert_eq!(rows["north ios-hardening"]["evaluated_version"], "1.1.0");
    assert_eq!(rows["south ios-hardening"]["assigned_version"], "1.1.0");
    assert_eq!(rows["south ios-hardening"]["site_version"], "1.0.0", "south has not synced since");
    let shown = hub.ok(&["template", "show", "ios-hardening", "--json"]).json();
    assert_eq!(shown["versions"].as_array().map(Vec::len), Some(2), "{shown}");

    // One site never holds another's assignments.
    let north_id = site_id(&north);
    let south_id = site_id(&south);
    for (plant, own, other) in [(&north, &north_id, &south_id), (&south, &south_id, &north_id)] {
        let docs = doc_ids(&plant.data);
        assert!(docs.contains(&format!("hub/to/{own}/templates")), "{docs:?}");
        assert!(!docs.iter().any(|d| d.contains(other.as_str())), "{docs:?}");
    }

    if backend == Backend::Sqlite {
        altered_after_signing_is_refused(&hub, &south);
    }
}

/// The IDs of the documents a node holds.
fn doc_ids(data: &std::path::Path) -> Vec<String> {
    let url = format!("sqlite://{}", data.join("datum.db").display());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("open database");
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT doc_id FROM doc_chunks").fetch_all(&mut conn).await.expect("docs");
        conn.close().await.expect("close");
        ids
    })
}

/// Someone with write access to the hub's database relaxes a published rule, keeping its hash and signature:
/// the plant refuses the version, keeps reporting, and the refusal reaches the hub.
fn altered_after_signing_is_refused(hub: &Hub, plant: &Plant) {
    use automerge::Automerge;
    use datum_shared::rollout::Published;
    let db = hub.data.join("hub.db");
    let url = format!("sqlite://{}", db.display());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        use sqlx::{Connection, Row};
        let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("open hub database");
        let rows = sqlx::query("SELECT bytes FROM doc_chunks WHERE doc_id = 'hub/templates' ORDER BY seq")
            .fetch_all(&mut conn)
            .await
            .expect("chunks");
        let bytes: Vec<u8> = rows.iter().flat_map(|r| r.get::<Vec<u8>, _>(0)).collect();
        let mut doc = Automerge::load(&bytes).expect("load");
        let key = Published::key("ios-hardening", "1.1.0");
        let mut p: Published =
            datum_shared::document::get_record(&doc, Published::COLLECTION, &key).expect("read").expect("published");
        p.body = p.body.replace("^ip http server$", "^never matches$");
        let before = doc.get_heads();
        let mut tx = doc.transaction();
        datum_shared::document::put_record(&mut tx, Published::COLLECTION, &key, &p).expect("put");
        tx.commit();
        let piece = doc.save_after(&before);
        let heads: Vec<String> = doc.get_heads().iter().map(|h| h.to_string()).collect();
        let n: i64 = sqlx::query_scalar("SELECT n_chunks FROM docs WHERE doc_id = 'hub/templates'")
            .fetch_one(&mut conn)
            .await
            .expect("n_chunks");
        sqlx::query("INSERT INTO doc_chunks (doc_id, seq, bytes) VALUES ('hub/templates', ?, ?)")
            .bind(n + 1)
            .bind(piece)
            .execute(&mut conn)
            .await
            .expect("insert");
        sqlx::query("UPDATE docs SET heads = ?, n_chunks = ? WHERE doc_id = 'hub/templates'")
            .bind(heads.join(","))
            .bind(n + 1)
            .execute(&mut conn)
            .await
            .expect("update");
        conn.close().await.expect("close");
    });
    synced(plant, hub);
    let listed = plant.expect_code(1, &["template", "list", "--json"]).json();
    let ios = listed.as_array().expect("list").iter().find(|t| t["template"] == "ios-hardening").expect("ios").clone();
    assert_eq!(ios["state"], "rejected", "{ios}");
    assert!(ios["reason"].as_str().expect("reason").contains("altered after signing"), "{ios}");
    let rows = hub_compliance(hub);
    let s = &rows["south ios-hardening"];
    assert_eq!((s["state"].as_str(), s["site_version"].as_str()), (Some("rejected"), Some("1.1.0")), "{s}");
    assert!(s["reason"].as_str().expect("reason").contains("altered after signing"), "{s}");
    // The version verified before goes on running until a good one arrives.
    assert_eq!((s["running"].as_str(), s["evaluated_version"].as_str()), (Some("1.0.0"), Some("1.0.0")), "{s}");
    let run = plant.expect_code(1, &["compliance", "--template", "ios-hardening", "--json"]);
    assert_eq!(run.json()[0]["version"], "1.0.0", "{}", run.stdout);
    // The refusal is in the plant's audit trail.
    let log = plant.ok(&["audit", "log", "--json"]).json();
    assert!(
        log.as_array().expect("log").iter().any(|e| e["op"] == "template.state"
            && e["summary"].as_str().unwrap_or("").contains("ios-hardening@1.1.0 rejected")),
        "{log}"
    );
}

#[test]
fn templates_roll_out_are_checked_offline_and_reported_sqlite() {
    rollout(Backend::Sqlite);
}

#[test]
fn templates_roll_out_are_checked_offline_and_reported_postgres() {
    rollout(Backend::Postgres);
}
