//! The plant's workspace in a real browser: Debian's Chromium, driven by its ChromeDriver over the W3C
//! WebDriver protocol, against the real `datum-edge serve` over HTTPS on loopback. Small and serial on purpose;
//! everything else is tested in process. Any console error or CSP violation on any page fails the test.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`apt-get install chromium chromium-driver`, done by
//! `.ci/run`); fails, never skips, without them.

mod webdriver;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use datum_tests::{bin, code_ahead, code_now, Backend, Hub, Plant, Run};
use webdriver::Browser;

const PASSWORD: &str = "browser test password";

fn os_login() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8(out.stdout).expect("utf-8").trim().to_string()
}

/// Runs datum-edge as the OS account (mapped to the site-admin), with a password on standard input.
fn admin(plant: &Plant, args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = plant.command(args);
    cmd.env_remove("DATUM_ACTOR").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("stdin");
    }
    drop(input);
    let run = Run::from(child.wait_with_output().expect("wait"));
    assert_eq!(run.code, 0, "datum-edge {args:?}: {}{}", run.stdout, run.stderr);
    run
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(plant: &Plant) -> (Server, String) {
    let config = plant.write("edge.toml", b"listen = \"127.0.0.1:0\"\n");
    let mut child = Command::new(bin("datum-edge"))
        .args(["serve", "--config", config.to_str().expect("utf-8")])
        .env("DATUM_DATA", &plant.data)
        .env_remove("DATUM_ACTOR")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let line =
        BufReader::new(child.stdout.take().expect("stdout")).lines().next().expect("serve printed").expect("read");
    let address = line.rsplit("://").next().expect("address").to_string();
    (Server(child), format!("https://{address}"))
}

/// Signs in; an account that must set up TOTP does it here. Returns the account's TOTP secret, if any.
fn sign_in(browser: &Browser, base: &str, name: &str, secret: Option<&str>) -> Option<String> {
    browser.go(&format!("{base}/login"));
    browser.find("input[name=name]").type_text(name);
    browser.find("input[name=password]").type_text(PASSWORD);
    browser.find("button[type=submit]").click();
    let url = browser.wait_for_url("the sign-in to answer", |u| !u.ends_with("/login"));
    if url.ends_with("/login/enroll") {
        let secret = browser.find("#totp-secret").text();
        browser.find("input[name=code]").type_text(&code_now(&secret));
        browser.find("button[type=submit]").click();
        assert_eq!(browser.find_all("#recovery-codes li").len(), 8, "recovery codes shown once");
        browser.find("main a").click();
        browser.wait_for_url("home", |u| u.ends_with('/'));
        return Some(secret);
    }
    if url.ends_with("/login/totp") {
        let secret = secret.expect("a second factor was set up before");
        browser.find("input[name=code]").type_text(&code_ahead(secret));
        browser.find("button[type=submit]").click();
        browser.wait_for_url("home", |u| u.ends_with('/'));
        return Some(secret.to_string());
    }
    None
}

fn sign_out(browser: &Browser) {
    browser.find("nav form button").click();
    browser.wait_for_url("the sign-in page", |u| u.ends_with("/login"));
}

#[test]
fn a_days_work_in_the_browser() {
    let plant = Plant::new("plant-browser");
    let login = os_login();
    plant.ok(&["asset", "add", "plc1", "--kind", "plc", "--zone", "cell-1", "--vendor", "Rockwell"]);
    plant.ok(&["asset", "add", "sw1", "--kind", "switch", "--vendor", "Cisco"]);
    let first =
        plant.write("sw1.cfg", b"hostname sw1\n!\ninterface Gi0/1\n description uplink\n switchport mode access\n!\n");
    plant.ok(&["config", "capture", "sw1", first.to_str().expect("utf-8")]);
    plant.ok(&["baseline", "approve", "sw1", "--version", "1", "--reason", "commissioning"]);
    let pw = format!("{PASSWORD}\n");
    admin(&plant, &["user", "add", "root-admin", "--role", "site-admin", "--os-user", &login], None);
    for (name, roles) in [("erin", "engineer"), ("paul", "engineer,approver"), ("ann", "approver"), ("bob", "approver")]
    {
        admin(&plant, &["user", "add", name, "--role", roles, "--password-stdin"], Some(&pw));
    }
    let (_server, base) = serve(&plant);
    let browser = Browser::start();

    // Erin, an engineer (password only): finds an asset, uploads a capture, sees the drift, opens the diff.
    assert!(sign_in(&browser, &base, "erin", None).is_none());
    assert!(browser.find("header .who").text().contains("erin"));
    browser.go(&format!("{base}/assets"));
    browser.find("#asset-search").type_text("cisco");
    browser.find("main form button[type=submit]").click();
    browser.wait_for_url("the search result", |u| u.contains("q=cisco"));
    assert_eq!(browser.wait_for_text("#asset-count", "1"), "1");
    browser.find("table a[href='/assets/sw1']").click();
    let changed = plant.write(
        "sw1-new.cfg",
        b"hostname sw1\n!\ninterface Gi0/1\n description uplink\n switchport mode trunk\n!\nusername admin secret 5 $1$abc$XYZ\n!\n",
    );
    browser.find("#capture-file").type_text(changed.to_str().expect("utf-8"));
    browser.find("#capture-submit").click();
    browser.wait_for_text("#asset-versions", "v2");
    assert!(browser.url().ends_with("/assets/sw1"), "{}", browser.url());
    assert!(browser.find("#asset-drift").text().contains("drift-unauthorized"));
    browser.go(&base);
    assert_eq!(browser.find("a.count[href='/drift?status=drift-unauthorized'] .n").text(), "1");
    browser.go(&format!("{base}/assets/sw1"));
    browser.find("a.diff-link").click();
    let diff = browser.wait_for_text("#diff", "switchport");
    assert!(diff.contains("interface Gi0/1") && diff.contains("switchport mode trunk"), "{diff}");
    assert!(!browser.source().contains("$1$abc$XYZ"), "a secret reached the page");
    browser.find("#show-noise").click();
    browser.wait_for_text("#raw-diff", "switchport mode access");
    sign_out(&browser);

    // Paul (engineer and approver) requests a high-risk change; approving his own is refused with the reason.
    let paul = sign_in(&browser, &base, "paul", None).expect("paul sets up TOTP");
    browser.go(&format!("{base}/changes/new"));
    browser.find("input[name=title]").type_text("Trunk on Gi0/1");
    browser.find("input[name=assets]").type_text("sw1");
    browser.find("select[name=risk] option:nth-child(3)").click();
    for field in ["reason", "impact", "rollback"] {
        browser.find(&format!("textarea[name={field}]")).type_text("as discussed");
    }
    browser.find("form.card button[type=submit]").click();
    let change_url = browser.wait_for_url("the new change", |u| u.contains("/changes/CR-"));
    browser.find("#form-submit button").click();
    browser.wait_for_text("#change-state", "submitted");
    browser.find("#form-approve input[name=totp]").type_text(&code_ahead(&paul));
    browser.find("#form-approve button").click();
    let refusal = browser.wait_for_text("p.error", "paul");
    assert!(refusal.contains("paul"), "the requester is told why: {refusal}");
    browser.go(&change_url);
    assert_eq!(browser.find("#change-state").text(), "submitted");
    sign_out(&browser);

    // Ann and Bob approve it, each with a fresh TOTP code.
    for approver in ["ann", "bob"] {
        let secret = sign_in(&browser, &base, approver, None).expect("approver sets up TOTP");
        browser.go(&change_url);
        browser.find("#form-approve input[name=totp]").type_text(&code_ahead(&secret));
        browser.find("#form-approve button").click();
        browser.wait_for_text("#approvals", approver);
        sign_out(&browser);
    }
    sign_in(&browser, &base, "erin", None);
    browser.go(&change_url);
    browser.wait_for_text("#change-state", "approved");
    assert_eq!(browser.find_all("#approvals li").len(), 2);
    browser.go(&format!("{base}/audit"));
    let audit = browser.find("#audit").text();
    assert!(audit.contains("change.approve") && audit.contains("password+totp"), "{audit}");

    // The one error expected: the browser logs the 409 of Paul's refused self-approval as a failed load.
    let (expected, problems): (Vec<String>, Vec<String>) = browser
        .console_problems()
        .into_iter()
        .partition(|m| m.contains("/approve - Failed to load resource") && m.contains("status of 409"));
    assert_eq!(expected.len(), 1, "the refused self-approval: {expected:#?}");
    assert!(problems.is_empty(), "console errors or CSP violations: {problems:#?}");
    browser.quit();
}

/// The auditor's pack, made from the kit's real exports, renders in Chromium and prints to PDF with no script.
/// The screenshot and the PDF are kept in `target/test-artifacts/` for a person to look at.
#[test]
fn the_evidence_pack_renders_and_prints_in_chromium() {
    let plant = Plant::new("evidence-browser");
    let versions = datum_tests::workspace_root().join("../shared/fixtures/versions");
    let v = |name: &str| versions.join(name).to_str().expect("utf-8").to_string();
    plant.ok(&["asset", "add", "PLC-01", "--kind", "plc", "--zone", "cell-1", "--owner", "anna"]);
    plant.ok(&["asset", "add", "FW-01", "--kind", "firewall", "--criticality", "critical"]);
    plant.ok(&["config", "capture", "PLC-01", &v("L5Sharp_Test_project.v1.L5X")]);
    plant.ok(&["baseline", "approve", "PLC-01", "--reason", "commissioning"]);
    plant.ok(&["config", "capture", "PLC-01", &v("L5Sharp_Test_project.v2.L5X")]);
    plant.ok(&["config", "capture", "FW-01", &v("pfsensible_pfsense_rule_config.v1.xml")]);
    let pack = plant.path("pack");
    plant.ok(&["report", "--out", pack.to_str().expect("utf-8")]);

    let artifacts = datum_tests::workspace_root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let (png, pdf) = (artifacts.join("evidence-index.png"), artifacts.join("evidence-index.pdf"));
    let _ = std::fs::remove_file(&png);
    let _ = std::fs::remove_file(&pdf);
    let profile = tempfile::tempdir().expect("profile");
    let url = format!("file://{}", pack.join("index.html").display());
    for output in [format!("--screenshot={}", png.display()), format!("--print-to-pdf={}", pdf.display())] {
        let run = Run::from(
            Command::new("/usr/bin/chromium")
                .args(["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,1800"])
                .arg(format!("--user-data-dir={}", profile.path().display()))
                .args(["--no-pdf-header-footer", &output, &url])
                .output()
                .expect("run /usr/bin/chromium (apt-get install chromium)"),
        );
        assert_eq!(run.code, 0, "chromium {output}: {}{}", run.stdout, run.stderr);
    }
    let shot = std::fs::read(&png).expect("the screenshot");
    assert!(shot.starts_with(b"\x89PNG") && shot.len() > 20_000, "a rendered page, {} bytes", shot.len());
    let printed = std::fs::read(&pdf).expect("the PDF");
    assert!(printed.starts_with(b"%PDF") && printed.len() > 10_000, "a printed document, {} bytes", printed.len());
}

/// The corporate dashboard in Chromium, against the real `datum-hub serve --web` with two plants synced over QUIC:
/// a security officer signs in (setting up TOTP), the landing page shows both sites with the plants' counts, a
/// count opens the list it counts, search finds an asset by serial number, and a change waiting for a central
/// approval is approved from the inbox. Screenshots of each page are kept in `target/test-artifacts/` (those in
/// docs/hub.md were taken by this test).
#[test]
fn the_corporate_dashboard_in_chromium() {
    let mut hub = Hub::new(Backend::Sqlite);
    let template = datum_tests::workspace_root().join("examples/templates/central-approval.toml");
    hub.ok(&["template", "add", template.to_str().expect("utf-8")]);
    hub.ok(&["template", "publish", "central-approval"]);
    let added = hub.run_with_stdin(
        &["user", "add", "sec", "--role", "security-officer", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(added.code, 0, "{}", added.stderr);
    hub.serve_args = vec!["--web".into(), "127.0.0.1:0".into()];
    hub.start(true);
    let base = hub.web.clone().expect("dashboard address");
    let mut plants = Vec::new();
    for (site, serial, assets) in [("North", "SN-4711-N", 2), ("South", "SN-0815-S", 3)] {
        let plant = Plant::new(site);
        for i in 0..assets {
            plant.ok(&[
                "asset",
                "add",
                &format!("plc-{i}"),
                "--kind",
                "plc",
                "--criticality",
                "high",
                "--serial",
                &format!("{serial}-{i}"),
            ]);
        }
        let token = hub.add_site(site);
        assert_eq!(plant.enroll(&hub, &token).code, 0);
        plants.push(plant);
    }
    hub.ok(&["template", "assign", "central-approval", "--site", "North"]);
    let north = &plants[0];
    for plant in &plants {
        assert_eq!(plant.sync("quic").code, 0);
    }
    let id = north
        .ok(&[
            "change",
            "new",
            "--title",
            "Firmware 3.1 on plc-0",
            "--reason",
            "vendor advisory SSA-2026-113",
            "--asset",
            "plc-0",
            "--risk",
            "high",
            "--impact",
            "line 2 stops for 20 minutes",
            "--rollback",
            "reload firmware 2.9 from the backup",
            "--json",
        ])
        .json()["id"]
        .as_str()
        .expect("change id")
        .to_string();
    north.ok(&["change", "submit", &id]);
    for plant in &plants {
        assert_eq!(plant.sync("quic").code, 0);
    }

    let artifacts = datum_tests::workspace_root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let browser = Browser::start();
    let secret = sign_in(&browser, &base, "sec", None).expect("a security officer sets up TOTP");
    // The landing page: both sites, each count the plant's own.
    browser.go(&base);
    let row = |site: &str| browser.find(&format!("#sites a[href='/sites/{site}']")).text();
    assert_eq!((row("North"), row("South")), ("North".to_string(), "South".to_string()));
    let south_assets = browser.find("#sites a[href='/assets?site=South&scope=in']").text();
    assert_eq!(south_assets, "3");
    browser.screenshot(&artifacts.join("hub-landing.png"));
    // A count opens the list it counts.
    browser.find("#sites a[href='/assets?site=South&scope=in']").click();
    browser.wait_for_url("the inventory", |u| u.contains("/assets?site=South"));
    assert_eq!(browser.find_all("#assets tbody tr").len(), 3);
    browser.screenshot(&artifacts.join("hub-inventory.png"));
    // Search by serial number.
    browser.go(&format!("{base}/search"));
    browser.find("#search input[name=q]").type_text("SN-4711-N-1");
    browser.find("#search button").click();
    let found = browser.wait_for_text("#found-assets", "plc-1");
    assert!(found.contains("North") && !found.contains("South"), "{found}");
    // The inbox: approve with a fresh code.
    browser.go(&format!("{base}/approvals"));
    browser.find(&format!("#inbox-North-{id}"));
    browser.screenshot(&artifacts.join("hub-approvals.png"));
    browser.find(&format!("#inbox-North-{id} input[name=reason]")).type_text("plan and rollback reviewed");
    browser.find(&format!("#inbox-North-{id} input[name=code]")).type_text(&code_ahead(&secret));
    browser.find(&format!("#inbox-North-{id} button[value=approve]")).click();
    browser.wait_for_text("#inbox-empty", "Nothing waits");
    let problems = browser.console_problems();
    assert!(problems.is_empty(), "console errors or CSP violations: {problems:#?}");
    browser.quit();
    // The decision reaches the plant.
    assert_eq!(north.sync("quic").code, 0);
    assert_eq!(north.ok(&["change", "show", &id, "--json"]).json()["central"]["state"], "approved");
}
