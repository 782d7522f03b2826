//! The leak corpus (`tests/leaks/corpus.txt`) through the real binaries: every snippet is captured, approved,
//! captured again with its secrets changed, and then shown by every command that prints configuration content or
//! anything about it — `diff` (plain, `--raw`, `--json`), `config diff|show|log`, `audit log`, `drift`, a sync to a
//! hub and the hub's `asset list`, `status` and `serve` log, the hub's dashboard (site, asset and comparison
//! pages, search, audit, API), the edge's web pages (asset, diff, raw diff, drift,
//! audit…), its JSON API and its `serve` log, and every file of an evidence pack — all at `DATUM_LOG=debug`. No secret may appear.

// Shared with `shared/tests/leaks.rs`, which reads every field.
#[allow(dead_code)]
#[path = "../leaks/corpus.rs"]
mod corpus;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use corpus::Case;
use datum_tests::*;

/// One file of the site: the corpus cases of one format joined (line formats one after the other, XML under
/// one root, JSON in one array), in its first and its changed version.
struct Group {
    file_name: String,
    old: String,
    new: String,
}

fn groups(cases: &[Case]) -> Vec<Group> {
    let mut by_key: BTreeMap<String, Vec<&Case>> = BTreeMap::new();
    for case in cases.iter().filter(|c| !c.is_keep()) {
        let text = case.text.trim_start();
        let key = if text.starts_with('<') {
            format!("xml-{}-{}", root_element(text), case.file_name)
        } else if text.starts_with('{') || text.starts_with('[') {
            "json".to_string()
        } else {
            format!("text-{}", case.file_name)
        };
        by_key.entry(key).or_default().push(case);
    }
    by_key
        .into_iter()
        .map(|(key, members)| {
            let texts = |changed: bool| -> Vec<String> {
                members.iter().map(|c| if changed { c.changed().0 } else { c.text.clone() }).collect()
            };
            let join = |texts: Vec<String>| -> String {
                if key == "json" {
                    format!("[{}]\n", texts.iter().map(|t| t.trim()).collect::<Vec<_>>().join(",\n"))
                } else if key.starts_with("xml-") {
                    let root = root_element(members[0].text.trim_start());
                    let inner: Vec<&str> =
                        texts.iter().map(|t| t.trim().trim_start_matches(xml_declaration(t))).collect();
                    format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<{root}>\n{}\n</{root}>\n", inner.join("\n"))
                } else {
                    texts.concat()
                }
            };
            let file_name = if key == "json" { "corpus.json".to_string() } else { members[0].file_name.clone() };
            Group { file_name, old: join(texts(false)), new: join(texts(true)) }
        })
        .collect()
}

/// The `<?xml …?>` declaration a snippet starts with, if any.
fn xml_declaration(text: &str) -> &str {
    let text = text.trim();
    match (text.starts_with("<?xml"), text.find("?>")) {
        (true, Some(end)) => &text[..end + 2],
        _ => "",
    }
}

/// The name of the first element of an XML snippet.
fn root_element(text: &str) -> String {
    let rest = text.trim().trim_start_matches(xml_declaration(text)).trim_start();
    rest.trim_start_matches('<').chars().take_while(|c| !c.is_whitespace() && *c != '>' && *c != '/').collect()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Runs `datum-edge` with debug logging; exit codes 0 and 1 (a finding) are both answers.
fn debug_run(plant: &Plant, args: &[&str]) -> Run {
    let run = Run::from(plant.command(args).env("DATUM_LOG", "debug").output().expect("run datum-edge"));
    assert!(run.code == 0 || run.code == 1, "datum-edge {args:?} failed: {}{}", run.stdout, run.stderr);
    run
}

/// Starts `datum-hub serve` like `Hub::start`, but logging at debug, with the dashboard on loopback (plain
/// HTTP); returns the dashboard's address.
fn start_hub_at_debug(hub: &mut Hub) -> String {
    let log = std::fs::File::create(hub.tmp.path().join("serve.log")).expect("log file");
    let config = hub.tmp.path().join("hub.toml");
    std::fs::write(&config, "plain_http = true\nweb = \"127.0.0.1:0\"\n").expect("hub.toml");
    let mut child = hub
        .command(&["serve", "--listen", "127.0.0.1:0", "--no-udp", "--config", path(&config)])
        .env("DATUM_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::from(log))
        .spawn()
        .expect("spawn datum-hub serve");
    let stdout = child.stdout.take().expect("stdout piped");
    let mut line = String::new();
    let mut reader = std::io::BufReader::new(stdout);
    reader.read_line(&mut line).expect("read the listening line");
    let mut web = String::new();
    reader.read_line(&mut web).expect("read the dashboard line");
    let web = web.trim().strip_prefix("dashboard on http://").unwrap_or_else(|| panic!("no dashboard: {web:?}"));
    let addr = line
        .split(" listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("hub did not start: {line:?} {}", hub.log()))
        .to_string();
    hub.addr = Some(addr);
    hub.server = Some(child);
    web.to_string()
}

#[test]
fn no_secret_of_the_corpus_reaches_any_command_output_or_log() {
    let cases = corpus::load(&workspace_root().join("tests/leaks/corpus.txt"));
    let mut secrets: Vec<String> = Vec::new();
    for case in cases.iter().filter(|c| !c.is_keep()) {
        secrets.extend(case.secrets.iter().cloned());
        secrets.extend(case.changed().1);
    }
    let groups = groups(&cases);
    assert!(groups.len() >= 20, "{} files", groups.len());

    let plant = Plant::new("leaks");
    let mut shown: Vec<(String, Run)> = Vec::new();
    std::fs::create_dir_all(plant.path("v1")).expect("mkdir");
    std::fs::create_dir_all(plant.path("v2")).expect("mkdir");
    let mut assets = Vec::new();
    for (idx, group) in groups.iter().enumerate() {
        let asset = format!("cfg-{idx:02}");
        let dir = plant.path(&format!("g{idx:02}"));
        std::fs::create_dir_all(dir.join("v1")).and_then(|_| std::fs::create_dir_all(dir.join("v2"))).expect("mkdir");
        let (old, new) = (dir.join("v1").join(&group.file_name), dir.join("v2").join(&group.file_name));
        std::fs::write(&old, &group.old).and_then(|_| std::fs::write(&new, &group.new)).expect("write");
        plant.ok(&["asset", "add", &asset, "--kind", "firewall", "--criticality", "high"]);
        shown.push((format!("capture v1 {asset}"), debug_run(&plant, &["config", "capture", &asset, path(&old)])));
        plant.ok(&["baseline", "approve", &asset, "--reason", "initial"]);
        shown.push((format!("capture v2 {asset}"), debug_run(&plant, &["config", "capture", &asset, path(&new)])));
        for mode in [None, Some("--raw"), Some("--json")] {
            let mut args = vec!["diff", path(&old), path(&new)];
            args.extend(mode);
            shown.push((format!("{args:?}"), debug_run(&plant, &args)));
        }
        assets.push(asset);
    }
    for asset in &assets {
        for args in [
            vec!["config", "diff", asset],
            vec!["config", "diff", asset, "--raw"],
            vec!["config", "diff", asset, "--json"],
            vec!["config", "diff", asset, "--raw", "--json"],
            vec!["config", "show", asset],
            vec!["config", "log", asset, "--json"],
        ] {
            shown.push((format!("{args:?}"), debug_run(&plant, &args)));
        }
    }
    for args in [
        vec!["config", "log", assets[0].as_str()],
        vec!["config", "show", assets[0].as_str(), "--json"],
        vec!["audit", "log"],
        vec!["audit", "log", "--json"],
        vec!["drift"],
        vec!["drift", "--json"],
    ] {
        shown.push((format!("{args:?}"), debug_run(&plant, &args)));
    }
    // A template that finds every line (its findings print the normalised lines, as a real standard's would).
    let probe = plant.write(
        "probe.toml",
        b"[template]\nid = 'probe'\nversion = '1.0.0'\ntitle = 'every line'\n\
          [[rule]]\nid = 'ALL'\nforbid = '.'\n[[rule]]\nid = 'PW'\nkey = 'password'\nmatches = '^$'\n",
    );
    for mode in [None, Some("--json")] {
        let mut args = vec!["compliance", "--template", path(&probe)];
        args.extend(mode);
        let run = debug_run(&plant, &args);
        assert_eq!(run.code, 1, "{args:?}: {}{}", run.stdout, run.stderr);
        shown.push((format!("{args:?}"), run));
    }
    // The secrets did change, and the diffs say so.
    let json_diff = debug_run(&plant, &["config", "diff", &assets[0], "--json"]).json();
    assert!(json_diff["secrets_changed"].as_u64().unwrap_or(0) > 0, "{json_diff}");

    // Through a hub.
    let mut hub = Hub::new(Backend::Sqlite);
    hub.ok(&["user", "add", "reader", "--role", "auditor"]);
    let hub_token =
        hub.ok(&["token", "create", "--user", "reader", "--json"]).json()["token"].as_str().expect("token").to_string();
    let dashboard = start_hub_at_debug(&mut hub);
    let token = hub.add_site("leaks");
    let enrolled = Run::from(
        plant
            .command(&["enroll", "--hub", hub.addr(), "--token", &token, "--fingerprint", &hub.fingerprint])
            .env("DATUM_LOG", "debug")
            .output()
            .expect("run datum-edge"),
    );
    assert_eq!(enrolled.code, 0, "{}{}", enrolled.stdout, enrolled.stderr);
    shown.push(("enroll".into(), enrolled));
    let synced = debug_run(&plant, &["sync", "--once", "--json", "--transport", "tcp"]);
    assert_eq!(synced.code, 0, "{}{}\n{}", synced.stdout, synced.stderr, hub.log());
    shown.push(("sync".into(), synced));
    // The same probe rolled out from the hub: the results the plant records for the hub, the hub's compliance
    // view and both sides' template views print the findings' lines.
    hub.ok(&["template", "add", path(&probe)]);
    hub.ok(&["template", "publish", "probe"]);
    hub.ok(&["template", "assign", "probe", "--site", "leaks"]);
    let synced = debug_run(&plant, &["sync", "--once", "--json", "--transport", "tcp"]);
    assert_eq!(synced.code, 0, "{}{}\n{}", synced.stdout, synced.stderr, hub.log());
    shown.push(("sync with a template".into(), synced));
    for args in [
        vec!["template", "show", "probe"],
        vec!["template", "show", "probe", "--json"],
        vec!["template", "list", "--json"],
        vec!["compliance"],
        vec!["compliance", "--json"],
        vec!["compliance", "--summary"],
        vec!["compliance", "--summary", "--json"],
        vec!["asset", "show", assets[0].as_str()],
    ] {
        shown.push((format!("{args:?}"), debug_run(&plant, &args)));
    }
    let mut listed_failures = 0;
    for args in [vec!["compliance"], vec!["compliance", "--json"], vec!["template", "show", "probe", "--json"]] {
        let run = Run::from(hub.command(&args).env("DATUM_LOG", "debug").output().expect("run datum-hub"));
        assert!(run.code == 0 || run.code == 1, "datum-hub {args:?}: {}{}", run.stdout, run.stderr);
        if args == ["compliance", "--json"] {
            listed_failures = run.json()[0]["failing"].as_array().map_or(0, Vec::len);
        }
        shown.push((format!("hub {args:?}"), run));
    }
    assert!(listed_failures >= assets.len(), "the hub lists the probe's findings: {listed_failures}");
    for args in [vec!["asset", "list"], vec!["asset", "list", "--json"], vec!["status"], vec!["status", "--json"]] {
        let run = Run::from(hub.command(&args).env("DATUM_LOG", "debug").output().expect("run datum-hub"));
        assert!(run.code == 0 || run.code == 1, "datum-hub {args:?}: {}{}", run.stdout, run.stderr);
        shown.push((format!("hub {args:?}"), run));
    }
    // The dashboard's pages over the hub's copy: the site, each asset, each comparison it links to (secrets
    // masked with the hub's key), search, the audit page, the API.
    let hub_get = |uri: &str| -> Run {
        Run::from(
            std::process::Command::new("curl")
                .args(["-s", "--max-time", "20", "-H", &format!("Authorization: Bearer {hub_token}")])
                .arg(format!("http://{dashboard}{uri}"))
                .output()
                .expect("run curl"),
        )
    };
    let mut compared = 0;
    for asset in &assets {
        let page = hub_get(&format!("/sites/leaks/assets/{asset}"));
        let diffs: Vec<String> = page
            .stdout
            .split("href=\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .filter(|href| href.contains("/diff/"))
            .map(str::to_string)
            .collect();
        for uri in &diffs {
            let run = hub_get(uri);
            assert!(
                run.stdout.contains("id=\"diff\"") || run.stdout.contains("id=\"no-changes\""),
                "GET {uri}: {}",
                run.stdout
            );
            compared += 1;
            shown.push((format!("hub GET {uri}"), run));
        }
        shown.push((format!("hub GET /sites/leaks/assets/{asset}"), page));
    }
    assert!(compared >= assets.len(), "every asset's two versions compared at the hub: {compared}");
    for uri in
        ["/", "/sites/leaks", "/sites/leaks/audit", "/sites/leaks/records", "/search?q=cfg", "/api/v1/sites/leaks"]
    {
        shown.push((format!("hub GET {uri}"), hub_get(uri)));
    }
    hub.kill();
    let serve_log = hub.log();
    assert!(!serve_log.is_empty(), "the hub logged nothing");

    // Through the web workspace and the API (the download of a version is the stored file itself, secrets
    // and all, by design: it is the backup; everything else is checked).
    let login = String::from_utf8(std::process::Command::new("id").arg("-un").output().expect("id").stdout)
        .expect("utf-8")
        .trim()
        .to_string();
    plant.ok(&["user", "add", "admin", "--role", "site-admin,engineer", "--os-user", &login]);
    let token = Run::from(
        plant.command(&["token", "create", "--user", "admin"]).env_remove("DATUM_ACTOR").output().expect("token"),
    );
    assert_eq!(token.code, 0, "{}", token.stderr);
    let token = token.stdout.trim().to_string();
    let config = plant.write("edge.toml", b"plain_http = true\nlisten = \"127.0.0.1:0\"\nsync = false\n");
    let web_log = plant.path("serve.log");
    let mut service = plant
        .command(&["serve", "--config", path(&config)])
        .env("DATUM_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&web_log).expect("log file"))
        .spawn()
        .expect("serve");
    let mut line = String::new();
    std::io::BufReader::new(service.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
    let address = line.trim().rsplit("://").next().expect("address").to_string();
    let get = |uri: &str| -> Run {
        Run::from(
            std::process::Command::new("curl")
                .args(["-s", "--max-time", "20", "-H", &format!("Authorization: Bearer {token}")])
                .arg(format!("http://{address}{uri}"))
                .output()
                .expect("run curl"),
        )
    };
    for asset in &assets {
        for uri in [
            format!("/assets/{asset}"),
            format!("/assets/{asset}/diff"),
            format!("/assets/{asset}/diff?raw=1"),
            format!("/assets/{asset}/diff?from=1&to=2&raw=1"),
            format!("/api/v1/assets/{asset}"),
        ] {
            let run = get(&uri);
            assert!(run.stdout.len() > 100, "GET {uri}: {}", run.stdout);
            shown.push((format!("GET {uri}"), run));
        }
    }
    for uri in
        ["/", "/assets", "/drift", "/audit", "/backups", "/reviews", "/api/v1/drift", "/api/v1/audit", "/api/v1/assets"]
    {
        shown.push((format!("GET {uri}"), get(uri)));
    }
    let raw_page = get(&format!("/assets/{}/diff?raw=1", assets[0]));
    assert!(raw_page.stdout.contains("secret"), "the raw page says where secrets were masked: {}", raw_page.stdout);
    service.kill().expect("kill");
    service.wait().expect("wait");
    let web_log = std::fs::read_to_string(&web_log).expect("serve log");
    shown.push(("the edge's serve log".into(), Run { code: 0, stdout: String::new(), stderr: web_log }));
    // The evidence pack, every file of it.
    let pack = plant.path("evidence-pack");
    let run = Run::from(
        plant
            .command(&["report", "--out", path(&pack)])
            .env_remove("DATUM_ACTOR")
            .env("DATUM_LOG", "debug")
            .output()
            .expect("report"),
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    shown.push(("report".into(), run));
    // The hub's pack of the same site, made from its copy (its diffs masked with the hub's key).
    let hub_pack = plant.path("hub-evidence-pack");
    let run = Run::from(
        hub.command(&["report", "--site", "leaks", "--out", path(&hub_pack)])
            .env("DATUM_LOG", "debug")
            .output()
            .expect("run datum-hub"),
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    shown.push(("hub report".into(), run));
    let mut diffs = 0;
    for (which, dir) in [("the pack's", &pack), ("the hub's pack's", &hub_pack)] {
        for file in files_under(dir) {
            diffs += usize::from(file.extension().is_some_and(|e| e == "diff"));
            let text = String::from_utf8_lossy(&std::fs::read(&file).expect("read")).into_owned();
            shown.push((
                format!("{which} {}", file.strip_prefix(dir).expect("inside").display()),
                Run { code: 0, stdout: text, stderr: String::new() },
            ));
        }
    }
    assert!(diffs >= 2 * assets.len(), "every drifted configuration has its diff in both packs: {diffs}");

    let mut leaks = Vec::new();
    for secret in &secrets {
        for (what, run) in &shown {
            for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
                if text.contains(secret.as_str()) {
                    leaks.push(format!("{what} {stream} shows {secret:?}:\n{text}"));
                }
            }
        }
        if serve_log.contains(secret.as_str()) {
            leaks.push(format!("the hub's serve log shows {secret:?}"));
        }
    }
    assert!(leaks.is_empty(), "{} leaks:\n{}", leaks.len(), leaks.join("\n"));
}
