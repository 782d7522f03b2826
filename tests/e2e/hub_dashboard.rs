//! The corporate dashboard end to end: two plants sync over QUIC to a hub serving `--web` (HTTPS from the
//! hub's own CA, checked by curl against the hub's root), a security officer scoped to one plant sees only it
//! in every API answer, search and export, while a viewer of every site sees both with the plants' own counts;
//! downloads come from the hub's copy and are recorded. On SQLite and on PostgreSQL.

use std::process::Command;

use datum_tests::{Backend, Hub, Plant};

struct Web {
    root: std::path::PathBuf,
    port: String,
}

impl Web {
    fn of(hub: &Hub) -> Web {
        let url = hub.web.clone().expect("dashboard started");
        assert!(url.starts_with("https://127.0.0.1:"), "{url}");
        Web { root: hub.data.join("identity/root.pem"), port: url.rsplit(':').next().expect("port").to_string() }
    }

    /// GET as the bearer of `token`: (HTTP status, body). The certificate is checked against the hub's root
    /// under the name `localhost`.
    fn get(&self, token: Option<&str>, path: &str) -> (u16, String) {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "20", "--cacert"]).arg(&self.root).args([
            "--resolve",
            &format!("localhost:{}:127.0.0.1", self.port),
            "-w",
            "\n%{http_code}",
        ]);
        if let Some(token) = token {
            cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
        }
        let out = cmd.arg(format!("https://localhost:{}{path}", self.port)).output().expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "curl {path}: {}", String::from_utf8_lossy(&out.stderr));
        let (body, code) = text.rsplit_once('\n').expect("status line");
        (code.trim().parse().expect("status"), body.to_string())
    }

    fn json(&self, token: &str, path: &str) -> serde_json::Value {
        let (code, body) = self.get(Some(token), path);
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }
}

fn plant(hub: &Hub, site: &str, serial: &str, content: &str) -> Plant {
    let plant = Plant::new(site);
    plant.ok(&[
        "asset",
        "add",
        "plc-1",
        "--kind",
        "plc",
        "--criticality",
        "high",
        "--zone",
        "cell-1",
        "--serial",
        serial,
    ]);
    plant.ok(&["asset", "add", "sw-1", "--kind", "switch", "--criticality", "medium"]);
    let file = plant.write("main.cfg", content.as_bytes());
    plant.ok(&["config", "capture", "plc-1", file.to_str().expect("utf-8")]);
    plant.new_change("plc-1", "high");
    let token = hub.add_site(site);
    let run = plant.enroll(hub, &token);
    assert_eq!(run.code, 0, "enroll {site}: {}{}", run.stdout, run.stderr);
    let run = plant.sync("quic");
    assert_eq!(run.code, 0, "sync {site}: {}{}", run.stdout, run.stderr);
    plant
}

fn token(hub: &Hub, user: &str) -> String {
    hub.ok(&["token", "create", "--user", user, "--json"]).json()["token"].as_str().expect("token").to_string()
}

fn dashboard(backend: Backend) {
    let mut hub = Hub::new(backend);
    // No people yet: the dashboard is refused (anyone could read everything), the sync listener never starts.
    let refused = hub.run(&["serve", "--listen", "127.0.0.1:0", "--web", "127.0.0.1:0"]);
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("no people yet"), "{}", refused.stderr);
    hub.ok(&["user", "add", "olga", "--role", "hub-admin"]);
    // Plain HTTP off loopback: refused before listening.
    let config = hub.tmp.path().join("hub.toml");
    std::fs::write(&config, "plain_http = true\nweb = \"0.0.0.0:0\"\n").expect("write config");
    let refused = hub.run(&["serve", "--listen", "127.0.0.1:0", "--config", config.to_str().expect("utf-8")]);
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("loopback"), "{}", refused.stderr);

    hub.serve_args = vec!["--web".into(), "127.0.0.1:0".into()];
    hub.start(true);
    let web = Web::of(&hub);
    assert!(hub.log().contains("dashboard certificate fingerprint (SHA-256)"), "{}", hub.log());
    let north = plant(&hub, "North", "SN-4711-N", "hostname north\ninterface Gi0/1\n");
    let _south = plant(&hub, "South", "SN-0815-S", "hostname south-secret\ninterface Gi0/2\n");
    hub.ok(&["user", "add", "ana", "--role", "security-officer", "--sites", "north"]);
    hub.ok(&["user", "add", "vic", "--role", "viewer"]);
    let (ana, vic) = (token(&hub, "ana"), token(&hub, "vic"));

    // Anonymous: 401 from the API, the sign-in for pages.
    assert_eq!(web.get(None, "/api/v1/sites").0, 401);
    assert_eq!(web.get(None, "/").0, 303);

    // The viewer of every site sees both, with the plant's own counts.
    let sites = web.json(&vic, "/api/v1/sites");
    let names: Vec<&str> = sites.as_array().expect("list").iter().map(|s| s["site"].as_str().expect("site")).collect();
    assert_eq!(names, ["North", "South"]);
    let plant_assets = north.ok(&["asset", "list", "--json"]).json().as_array().expect("list").len();
    assert_eq!(sites[0]["assets"], plant_assets);
    assert_eq!(sites[0]["open_changes"], 1);
    assert_eq!(sites[0]["in_sync"], true);
    let found = web.json(&vic, "/api/v1/search?q=SN-0815-S");
    assert_eq!(found["assets"][0]["site"], "South");

    // Ana, scoped to North, learns nothing of South: not in the list, not by name, not by search, not in an export.
    let sites = web.json(&ana, "/api/v1/sites");
    assert_eq!(sites.as_array().map(Vec::len), Some(1), "{sites}");
    assert_eq!(sites[0]["site"], "North");
    assert_eq!(web.get(Some(&ana), "/api/v1/sites/South").0, 404);
    assert_eq!(web.get(Some(&ana), "/sites/South").0, 404);
    for path in [
        "/api/v1/search?q=SN-0815-S",
        "/api/v1/search?q=south-secret",
        "/api/v1/assets?site=South",
        "/assets?format=csv",
        "/assets?format=json",
        "/",
    ] {
        let (code, body) = web.get(Some(&ana), path);
        assert_eq!(code, 200, "{path}");
        assert!(!body.contains("SN-0815-S") && !body.contains("/sites/South"), "{path} leaks South: {body}");
    }
    let found = web.json(&ana, "/api/v1/search?q=sn-4711");
    assert_eq!(found["assets"][0]["name"], "plc-1");

    // North's configuration from the hub's copy: whole, and recorded with who took it.
    let (code, body) = web.get(Some(&ana), "/sites/North/assets/plc-1/versions/plc-program/1");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body, "hostname north\ninterface Gi0/1\n");
    let log = hub.ok(&["user", "log", "--json"]).json();
    let download = log.as_array().expect("list").iter().find(|e| e["action"] == "download").expect("download recorded");
    assert_eq!(download["actor"], "ana");
    assert_eq!(download["site"], "North");
    // Who did what at North, from the hub's copy of its documents; South's record is not Ana's to read.
    let (code, body) = web.get(Some(&ana), "/sites/North/audit");
    assert_eq!(code, 200, "{body}");
    let table = body.split("id=\"audit\"").nth(1).expect("audit table");
    assert!(table.contains("asset.add") && table.contains("plc-1") && table.contains("config.capture"), "{table}");
    assert!(body.contains("the hub witnessed: #"), "{body}");
    assert_eq!(web.get(Some(&ana), "/sites/South/audit").0, 404);
    let (code, body) = web.get(Some(&ana), "/sites/North/records");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("id=\"restore-tests\"") && body.contains("id=\"review-list\""), "{body}");
    hub.kill();
}

#[test]
fn the_dashboard_keeps_each_person_to_their_sites_on_sqlite() {
    dashboard(Backend::Sqlite);
}

#[test]
fn the_dashboard_keeps_each_person_to_their_sites_on_postgres() {
    dashboard(Backend::Postgres);
}

/// A signed-in browser session through curl: a cookie jar, sign-in with password and TOTP set-up.
struct Session<'a> {
    web: &'a Web,
    jar: std::path::PathBuf,
    secret: String,
    /// The recovery codes shown once at the TOTP set-up (each a second factor once).
    recovery: Vec<String>,
}

impl<'a> Session<'a> {
    fn curl(&self, args: &[&str], path: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "20", "--cacert"])
            .arg(&self.web.root)
            .args(["--resolve", &format!("localhost:{}:127.0.0.1", self.web.port), "-w", "\n%{http_code}", "-b"])
            .arg(&self.jar)
            .arg("-c")
            .arg(&self.jar)
            .args(args)
            .arg(format!("https://localhost:{}{path}", self.web.port))
            .output()
            .expect("run curl");
        assert!(out.status.success(), "curl {path}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').expect("status line");
        (code.trim().parse().expect("status"), body.to_string())
    }

    /// Signs in as a person whose role needs a second factor, setting it up on the way.
    fn sign_in(web: &'a Web, dir: &std::path::Path, name: &str, password: &str) -> Session<'a> {
        let mut s =
            Session { web, jar: dir.join(format!("{name}.cookies")), secret: String::new(), recovery: Vec::new() };
        let (code, _) = s.curl(
            &["--data-urlencode", &format!("name={name}"), "--data-urlencode", &format!("password={password}")],
            "/login",
        );
        assert_eq!(code, 303);
        let (_, page) = s.curl(&[], "/login/enroll");
        s.secret = between(&page, "<code id=\"totp-secret\">", "</code>").to_string();
        let (code, page) =
            s.curl(&["--data-urlencode", &format!("code={}", datum_tests::code_now(&s.secret))], "/login/enroll");
        assert_eq!(code, 200, "{page}");
        let list = between(&page, "<ul id=\"recovery-codes\">", "</ul>");
        s.recovery =
            list.split("<code>").skip(1).map(|c| c.split("</code>").next().unwrap_or("").to_string()).collect();
        assert_eq!(s.recovery.len(), 8, "{page}");
        s
    }

    /// Approves a change from the inbox page's form, with `code` as the second factor.
    fn approve(&self, id: &str, code: &str) {
        let (status, page) = self.curl(&[], "/approvals");
        assert_eq!(status, 200);
        let form = between(&page, &format!("action=\"/approvals/North/{id}\""), "</form>");
        let csrf = between(form, "name=\"csrf\" value=\"", "\"");
        let content = between(form, "name=\"content\" value=\"", "\"");
        let (status, page) = self.curl(
            &[
                "--data-urlencode",
                &format!("csrf={csrf}"),
                "--data-urlencode",
                "decision=approve",
                "--data-urlencode",
                "reason=plan and rollback reviewed",
                "--data-urlencode",
                &format!("code={code}"),
                "--data-urlencode",
                &format!("content={content}"),
            ],
            &format!("/approvals/North/{id}"),
        );
        assert_eq!(status, 303, "{page}");
    }
}

fn between<'t>(text: &'t str, start: &str, end: &str) -> &'t str {
    let from = text.find(start).unwrap_or_else(|| panic!("{start} not in {text}")) + start.len();
    &text[from..from + text[from..].find(end).expect("end")]
}

const OFFICER_PASSWORD: &str = "officer pass phrase 42";

fn central(backend: Backend) {
    let mut hub = Hub::new(backend);
    let template = datum_tests::workspace_root().join("examples/templates/central-approval.toml");
    hub.ok(&["template", "add", template.to_str().expect("utf-8")]);
    hub.ok(&["template", "publish", "central-approval"]);
    let basics = hub.tmp.path().join("asset-basics.toml");
    std::fs::write(&basics, ASSET_BASICS).expect("write template");
    hub.ok(&["template", "add", basics.to_str().expect("utf-8")]);
    hub.ok(&["template", "publish", "asset-basics"]);
    let added = hub.run_with_stdin(
        &["user", "add", "sec", "--role", "security-officer", "--password-stdin"],
        &format!("{OFFICER_PASSWORD}\n"),
    );
    assert_eq!(added.code, 0, "{}", added.stderr);
    hub.serve_args = vec!["--web".into(), "127.0.0.1:0".into()];
    hub.start(true);
    let web = Web::of(&hub);

    let north = Plant::new("North");
    north.ok(&["asset", "add", "plc-1", "--kind", "plc", "--criticality", "high"]);
    let token = hub.add_site("North");
    assert_eq!(north.enroll(&hub, &token).code, 0);
    hub.ok(&["template", "assign", "central-approval", "--site", "North"]);
    hub.ok(&["template", "assign", "asset-basics", "--site", "North"]);
    for _ in 0..2 {
        // The first sync brings the template; the second reports it running.
        assert_eq!(north.sync("quic").code, 0);
    }
    // Two high-risk changes, each approved at the plant by two people: the plant still refuses to implement them.
    let plant_approved = |title: &str| {
        let id = north
            .ok(&[
                "change",
                "new",
                "--title",
                title,
                "--reason",
                "r",
                "--asset",
                "plc-1",
                "--risk",
                "high",
                "--impact",
                "i",
                "--rollback",
                "r",
                "--json",
            ])
            .json()["id"]
            .as_str()
            .expect("id")
            .to_string();
        north.ok(&["change", "submit", &id]);
        for approver in ["bob", "carol"] {
            let run = north.run_as(approver, &["change", "approve", &id]);
            assert_eq!(run.code, 0, "{}", run.stderr);
        }
        id
    };
    let (first, second) = (plant_approved("new firmware"), plant_approved("new ruleset"));
    let refused = north.run(&["change", "implement", &first]);
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("needs a central approval from the hub"), "{}", refused.stderr);
    // An emergency change goes first, flagged as waiting for the hub.
    let emergency = north
        .ok(&[
            "change",
            "new",
            "--title",
            "valve stuck",
            "--reason",
            "r",
            "--asset",
            "plc-1",
            "--risk",
            "high",
            "--impact",
            "i",
            "--rollback",
            "r",
            "--emergency",
            "--json",
        ])
        .json()["id"]
        .as_str()
        .expect("id")
        .to_string();
    north.ok(&["change", "implement", &emergency]);
    let shown = north.ok(&["change", "show", &emergency, "--json"]).json();
    assert_eq!(shown["central"]["state"], "pending", "{shown}");
    assert_eq!(north.sync("quic").code, 0);

    // The hub's inbox holds all three; the officer signs in and approves the two planned ones, each with a fresh
    // second factor (a TOTP code, then a recovery code).
    let officer = Session::sign_in(&web, hub.tmp.path(), "sec", OFFICER_PASSWORD);
    let (_, page) = officer.curl(&[], "/approvals");
    for id in [&first, &second, &emergency] {
        assert!(page.contains(&format!("id=\"inbox-North-{id}\"")), "{id} not in the inbox: {page}");
    }
    officer.approve(&first, &datum_tests::code_ahead(&officer.secret));
    officer.approve(&second, &officer.recovery[0]);
    let (_, page) = officer.curl(&[], "/approvals");
    assert!(!page.contains(&format!("id=\"inbox-North-{first}\"")), "{page}");

    // The decisions reach the plant with the next sync: it implements the first.
    assert_eq!(north.sync("quic").code, 0);
    let shown = north.ok(&["change", "show", &first, "--json"]).json();
    assert_eq!(shown["central"]["state"], "approved", "{shown}");
    assert_eq!(shown["central"]["by"], "sec");
    north.ok(&["change", "implement", &first]);
    // The second is edited after its approval: approved again at the plant, the hub's approval is stale.
    north.ok(&["change", "amend", &second, "--rollback", "restore the saved ruleset"]);
    north.ok(&["change", "submit", &second]);
    for approver in ["bob", "carol"] {
        assert_eq!(north.run_as(approver, &["change", "approve", &second]).code, 0);
    }
    let refused = north.run(&["change", "implement", &second]);
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("needs a new central approval"), "{}", refused.stderr);
    // Back in the hub's inbox, as stale.
    assert_eq!(north.sync("quic").code, 0);
    let (_, page) = officer.curl(&[], "/approvals");
    let item = between(&page, &format!("id=\"inbox-North-{second}\""), "</section>");
    assert!(item.contains("Central state: stale"), "{item}");

    // A waiver: the policy marks every waiver as central. Approved at the plant, it covers nothing yet.
    let expires = (chrono::Utc::now() + chrono::Duration::days(30)).format("%Y-%m-%d").to_string();
    let waiver = north
        .ok(&[
            "waiver",
            "request",
            "--template",
            "asset-basics",
            "--rule",
            "OWN-01",
            "--asset",
            "plc-1",
            "--reason",
            "the owner is named when the line is handed over",
            "--expires",
            &expires,
            "--json",
        ])
        .json()["id"]
        .as_str()
        .expect("id")
        .to_string();
    let approved = north.run_as("bob", &["waiver", "approve", &waiver]);
    assert_eq!(approved.code, 0, "{}", approved.stderr);
    assert!(approved.stdout.contains("covers nothing until the hub approves it centrally"), "{}", approved.stdout);
    let listed = north.ok(&["waiver", "list", "--json"]).json();
    assert_eq!(
        (listed[0]["status"].as_str(), listed[0]["central"]["state"].as_str()),
        (Some("active"), Some("pending"))
    );
    let own01 = |north: &Plant| {
        let run = north.run(&["compliance", "--template", "asset-basics", "--json"]);
        let rows = run.json()[0]["rows"].clone();
        rows.as_array().expect("rows").iter().find(|r| r["rule"] == "OWN-01").expect("OWN-01").clone()
    };
    assert_eq!(own01(&north)["result"], "non-compliant", "not waived before the hub's approval");
    assert_eq!(north.sync("quic").code, 0);
    // In the hub's inbox as a waiver; bob, who approved it at the plant, could not approve it centrally, and the
    // officer approves it with a fresh second factor.
    let (_, page) = officer.curl(&[], "/approvals");
    let item = between(&page, &format!("id=\"inbox-North-{waiver}\""), "</section>");
    assert!(item.contains("asset-basics OWN-01") && item.contains("every waiver"), "{item}");
    // With what the plant last reported failing on its asset: the rule the waiver would excuse (reported by the
    // sync pass, which must apply the site's policy: before, it counted the waiver as in force).
    assert!(item.contains("failing asset-basics OWN-01 on plc-1 (non-compliant)"), "{item}");
    let api = officer.curl(&[], "/api/v1/approvals").1;
    let inbox: serde_json::Value = serde_json::from_str(&api).expect("json");
    let w = inbox.as_array().expect("list").iter().find(|i| i["id"] == waiver.as_str()).expect("waiver").clone();
    assert_eq!((w["waiver"]["rule"].as_str(), w.get("change")), (Some("OWN-01"), None), "{w}");
    officer.approve(&waiver, &officer.recovery[1]);
    let (_, page) = officer.curl(&[], "/approvals");
    assert!(!page.contains(&format!("id=\"inbox-North-{waiver}\"")), "{page}");
    // With the next sync the plant holds the hub's signed approval: the waiver covers the rule.
    assert_eq!(north.sync("quic").code, 0);
    let listed = north.ok(&["waiver", "list", "--json"]).json();
    assert_eq!(listed[0]["central"]["state"], "approved", "{listed}");
    assert_eq!(
        (own01(&north)["result"].as_str(), own01(&north)["waiver"].as_str()),
        (Some("waived"), Some(waiver.as_str()))
    );
    hub.kill();
}

/// A standard every asset fails until it has an owner.
const ASSET_BASICS: &str = r#"[template]
id = "asset-basics"
version = "1.0.0"
title = "Every asset has an owner"
enforcement = "report"
references = ["IEC 62443-2-1 4.2.3.4"]

[[rule]]
id = "OWN-01"
title = "The asset has an owner"
field = "owner"
required = true
"#;

#[test]
fn a_central_approval_goes_from_the_plant_to_the_hubs_inbox_and_back_on_sqlite() {
    central(Backend::Sqlite);
}

#[test]
fn a_central_approval_goes_from_the_plant_to_the_hubs_inbox_and_back_on_postgres() {
    central(Backend::Postgres);
}
