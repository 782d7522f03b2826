//! People on the command line and the service: the first user, typed names refused once a site has users, the
//! OS account and API tokens as identities, roles enforced, secrets kept out of the documents and the dump, and
//! `serve` over a real loopback socket (plain HTTP only there, HTTPS with its own certificate elsewhere).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use datum_tests::{bin, Plant, Run};

const PASSWORD: &str = "plant password 2026";

/// The login name of this process's user (what the edge reads from the kernel's uid).
fn os_login() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8(out.stdout).expect("utf-8").trim().to_string()
}

/// Runs as the OS account (no typed name), optionally with an API token and standard input.
fn run_os(plant: &Plant, args: &[&str], token: Option<&str>, stdin: Option<&str>) -> Run {
    let mut cmd = plant.command(args);
    cmd.env_remove("DATUM_ACTOR").env_remove("DATUM_TOKEN");
    run_with(cmd, token, stdin)
}

/// Runs `cmd` with an optional API token and standard input.
fn run_with(mut cmd: Command, token: Option<&str>, stdin: Option<&str>) -> Run {
    if let Some(t) = token {
        cmd.env("DATUM_TOKEN", t);
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn datum-edge");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    Run::from(child.wait_with_output().expect("wait"))
}

fn ok(run: Run, what: &str) -> Run {
    assert_eq!(run.code, 0, "{what}: {}{}", run.stdout, run.stderr);
    run
}

fn refused(run: Run, what: &str, reason: &str) {
    assert_eq!(run.code, 2, "{what} should be refused: {}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains(reason), "{what}: expected {reason:?} in {}", run.stderr);
}

#[test]
fn a_site_gets_users_and_every_write_is_tied_to_one() {
    let plant = Plant::new("plant-id");
    let login = os_login();
    // A site without users works as before, under the typed name, unauthenticated.
    plant.ok(&["asset", "add", "plc1", "--kind", "plc"]);
    refused(plant.run(&["user", "add", "bob", "--role", "engineer"]), "a first user without site-admin", "site-admin");
    refused(
        run_os(&plant, &["user", "add", "admin", "--role", "site-admin", "--password-stdin"], None, Some("short\n")),
        "a short password",
        "at least 12",
    );
    let run = plant.command(&["user", "add", "admin", "--role", "site-admin", "--os-user", &login, "--password-stdin"]);
    let mut cmd = run;
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    child.stdin.take().expect("stdin").write_all(format!("{PASSWORD}\n").as_bytes()).expect("stdin");
    let out = Run::from(child.wait_with_output().expect("wait"));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);

    // Now a typed name may not write, and the OS account acts only within its roles.
    refused(plant.run(&["asset", "add", "plc2", "--kind", "plc"]), "a typed name", "refused for writes");
    refused(
        run_os(&plant, &["asset", "add", "plc2", "--kind", "plc"], None, None),
        "admin editing",
        "needs the role engineer",
    );
    ok(run_os(&plant, &["user", "roles", "admin", "--role", "site-admin,engineer"], None, None), "roles");
    ok(run_os(&plant, &["asset", "add", "plc2", "--kind", "plc"], None, None), "engineer work");
    // Reads under a typed name still answer (as the OS account's user).
    ok(plant.run(&["asset", "list"]), "a read");
    ok(run_os(&plant, &["user", "add", "eve", "--role", "approver", "--display", "Eve A."], None, None), "add eve");
    refused(run_os(&plant, &["user", "add", "eve", "--role", "viewer"], None, None), "a second eve", "already exists");
    refused(
        run_os(&plant, &["user", "disable", "admin"], None, None),
        "disabling the last admin",
        "last enabled site-admin",
    );
    refused(
        run_os(&plant, &["user", "roles", "admin", "--role", "engineer"], None, None),
        "dropping the last admin",
        "last enabled site-admin",
    );

    // Tokens act as their user, are refused for decisions, and stop when revoked.
    let made =
        ok(run_os(&plant, &["token", "create", "--user", "eve", "--expires", "30d", "--json"], None, None), "token");
    let made = made.json();
    let token = made["token"].as_str().expect("token").to_string();
    let id = made["id"].as_str().expect("id").to_string();
    let list = ok(run_os(&plant, &["asset", "list", "--json"], Some(&token), None), "read with token").json();
    assert_eq!(list.as_array().map(Vec::len), Some(2));
    let change = {
        let r = ok(
            run_os(
                &plant,
                &[
                    "change",
                    "new",
                    "--title",
                    "t",
                    "--reason",
                    "r",
                    "--asset",
                    "plc1",
                    "--risk",
                    "low",
                    "--impact",
                    "i",
                    "--rollback",
                    "b",
                    "--json",
                ],
                None,
                None,
            ),
            "change new",
        );
        r.json()["id"].as_str().expect("id").to_string()
    };
    ok(run_os(&plant, &["change", "submit", &change], None, None), "submit");
    refused(
        run_os(&plant, &["change", "approve", &change], Some(&token), None),
        "a token deciding",
        "API token may not",
    );
    refused(run_os(&plant, &["change", "approve", &change], None, None), "admin approving", "needs the role approver");
    ok(run_os(&plant, &["token", "revoke", &id], None, None), "revoke");
    refused(run_os(&plant, &["asset", "list"], Some(&token), None), "a revoked token", "not a valid token");

    // The audit trail names the account and how it authenticated; the site's first entries say unauthenticated.
    let log = ok(plant.run(&["audit", "log", "--json"]), "audit log").json();
    let entries = log.as_array().expect("entries");
    let first = entries.iter().find(|e| e["op"] == "asset.add").expect("first asset.add");
    assert_eq!(first["actor"], "alice");
    assert!(first.get("auth").is_none(), "{first}");
    let later = entries.iter().rev().find(|e| e["op"] == "asset.add").expect("second asset.add");
    assert_eq!((later["actor"].as_str(), later["auth"].as_str()), (Some("admin"), Some("os-account")));
    ok(plant.run(&["audit", "verify"]), "the chain verifies with the new field");

    // Users are records (synced, audited); what proves identity is not in the site's database nor in a dump.
    let users = ok(plant.run(&["user", "list", "--json"]), "user list").json();
    let admin = users.as_array().expect("users").iter().find(|u| u["name"] == "admin").expect("admin").clone();
    assert_eq!((admin["has_password"].as_bool(), admin["mfa_required"].as_bool()), (Some(true), Some(true)));
    let db = std::fs::read(plant.data.join("datum.db")).expect("read db");
    let hay = String::from_utf8_lossy(&db);
    assert!(!hay.contains("argon2") && !hay.contains(PASSWORD) && !hay.contains(&token), "a secret in datum.db");
    let auth_db =
        String::from_utf8_lossy(&std::fs::read(plant.data.join("auth.db")).expect("read auth.db")).into_owned();
    assert!(auth_db.contains("$argon2id$") && !auth_db.contains(PASSWORD));
    let dump = plant.path("site.dump");
    ok(plant.run(&["dump", "--out", dump.to_str().expect("utf-8")]), "dump as site-admin");
    let bytes = std::fs::read(&dump).expect("read dump");
    assert!(!String::from_utf8_lossy(&bytes).contains("$argon2id$"), "a password hash in the dump");
}

/// Starts `serve` and returns the child and the address it printed.
fn start(plant: &Plant, config: &str) -> (std::process::Child, String) {
    let file = plant.write("edge.toml", config.as_bytes());
    let mut child = Command::new(bin("datum-edge"))
        .args(["serve", "--config", file.to_str().expect("utf-8")])
        .env("DATUM_DATA", &plant.data)
        .env_remove("DATUM_ACTOR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = lines.next().expect("serve printed nothing").expect("read");
    let address = line.rsplit("://").next().expect("address").to_string();
    assert!(line.starts_with("serving "), "{line}");
    (child, address)
}

fn http_get(address: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connect");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
}

#[test]
fn serve_answers_on_loopback_and_refuses_unsafe_settings() {
    let plant = Plant::new("plant-serve");
    let login = os_login();
    // No users: refused (anyone could do anything).
    let file = plant.write("plain.toml", b"plain_http = true\nlisten = \"127.0.0.1:0\"\n");
    let run = Run::from(
        plant
            .command(&["serve", "--config", file.to_str().expect("utf-8")])
            .env_remove("DATUM_ACTOR")
            .output()
            .expect("run"),
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("no users"), "{}", run.stderr);
    ok(run_os(&plant, &["user", "add", "admin", "--role", "site-admin", "--os-user", &login], None, None), "admin");
    // Plain HTTP off loopback: refused before listening.
    let file = plant.write("open.toml", b"plain_http = true\nlisten = \"0.0.0.0:0\"\n");
    let run = Run::from(
        plant
            .command(&["serve", "--config", file.to_str().expect("utf-8")])
            .env_remove("DATUM_ACTOR")
            .output()
            .expect("run"),
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("loopback"), "{}", run.stderr);

    let (mut child, address) = start(&plant, "plain_http = true\nlisten = \"127.0.0.1:0\"\nunknown_key = 1\n");
    let health = http_get(&address, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200") && health.ends_with("ok"), "{health}");
    let api = http_get(&address, "/api/v1/assets");
    assert!(api.starts_with("HTTP/1.1 401"), "{api}");
    assert!(api.to_lowercase().contains("content-security-policy: default-src 'none'"), "{api}");
    let page = http_get(&address, "/assets");
    assert!(page.starts_with("HTTP/1.1 303") && page.to_lowercase().contains("location: /login"), "{page}");
    child.kill().expect("kill");
    let out = child.wait_with_output().expect("wait");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown key unknown_key"));

    // HTTPS by default: a certificate made on first start, its fingerprint printed, kept for the next start.
    let (mut child, address) = start(&plant, "listen = \"127.0.0.1:0\"\n");
    let cert = std::fs::read_to_string(plant.data.join("identity/web.crt")).expect("web certificate made");
    let curl = Command::new("curl")
        .args(["-sk", "--max-time", "10", &format!("https://{address}/healthz")])
        .output()
        .expect("run curl");
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "ok", "{}", String::from_utf8_lossy(&curl.stderr));
    // Plain HTTP on the HTTPS port gets no answer (the TLS handshake fails; the write may even be refused).
    let mut stream = TcpStream::connect(&address).expect("connect");
    let _ = write!(stream, "GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    let mut plain = String::new();
    let _ = stream.read_to_string(&mut plain);
    assert!(!plain.contains("200 OK"), "plain HTTP answered on the HTTPS port: {plain}");
    child.kill().expect("kill");
    let out = child.wait_with_output().expect("wait");
    assert!(String::from_utf8_lossy(&out.stderr).contains("fingerprint (SHA-256)"));
    let (mut child, _) = start(&plant, "listen = \"127.0.0.1:0\"\n");
    child.kill().expect("kill");
    child.wait().expect("wait");
    assert_eq!(
        std::fs::read_to_string(plant.data.join("identity/web.crt")).expect("cert"),
        cert,
        "the certificate is kept"
    );
}

/// Runs a command the way a person beside the installed service does: no data directory named, only the
/// service's socket, from a working directory of their own.
fn beside(
    socket: &std::path::Path,
    cwd: &std::path::Path,
    args: &[&str],
    token: Option<&str>,
    stdin: Option<&str>,
) -> Run {
    let mut cmd = Command::new(bin("datum-edge"));
    cmd.args(args)
        .current_dir(cwd)
        .env("DATUM_SOCKET", socket)
        .env_remove("DATUM_DATA")
        .env_remove("DATUM_ACTOR")
        .env_remove("DATUM_TOKEN")
        .env_remove("DATUM_NOW");
    run_with(cmd, token, stdin)
}

/// Sends one request frame by hand to the service's socket; returns what came back on standard error and
/// the exit code.
fn raw_request(socket: &std::path::Path, json: &str) -> (String, u8) {
    let mut stream = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    let mut frame = vec![1u8];
    frame.extend_from_slice(&(json.len() as u32).to_be_bytes());
    frame.extend_from_slice(json.as_bytes());
    stream.write_all(&frame).expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read");
    let (mut stderr, mut code) = (String::new(), None);
    let mut at = 0;
    while at + 5 <= answer.len() {
        let len = u32::from_be_bytes(answer[at + 1..at + 5].try_into().expect("4 bytes")) as usize;
        let payload = &answer[at + 5..at + 5 + len];
        match answer[at] {
            7 => stderr.push_str(&String::from_utf8_lossy(payload)),
            8 => code = Some(payload[0]),
            _ => {}
        }
        at += 5 + len;
    }
    (stderr, code.expect("an exit frame"))
}

/// Starts `serve` with a local socket and waits until it says it listens there.
fn start_with_socket(plant: &Plant, socket: &std::path::Path) -> std::process::Child {
    let config = format!("plain_http = true\nlisten = \"127.0.0.1:0\"\nsocket = \"{}\"\n", socket.display());
    let file = plant.write("edge-socket.toml", config.as_bytes());
    let mut child = Command::new(bin("datum-edge"))
        .args(["serve", "--config", file.to_str().expect("utf-8")])
        .env("DATUM_DATA", &plant.data)
        .env_remove("DATUM_ACTOR")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    for line in lines.by_ref() {
        if line.expect("read").starts_with("commands on this machine go through") {
            return child;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("serve ended without listening on its socket");
}

#[test]
fn the_command_line_beside_the_service_acts_as_the_callers_os_account() {
    let plant = Plant::new("plant-socket");
    let login = os_login();
    plant.ok(&["asset", "add", "plc1", "--kind", "plc"]);
    ok(run_os(&plant, &["user", "add", "admin", "--role", "site-admin", "--os-user", &login], None, None), "admin");
    let socket = plant.path("run/cli.sock");
    let work = plant.path("work");
    std::fs::create_dir_all(&work).expect("work dir");
    let mut service = start_with_socket(&plant, &socket);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).expect("socket").permissions());
    assert_eq!(mode & 0o777, 0o666, "every local account may connect; the kernel says who it is");

    // The service's site, though the caller names no data directory (its working directory has none).
    let list = ok(beside(&socket, &work, &["asset", "list"], None, None), "a read");
    assert!(list.stdout.contains("plc1"), "{}", list.stdout);
    assert!(!work.join("datum-data").exists());
    // The caller acts as the person its OS account is mapped to, within that person's roles.
    refused(beside(&socket, &work, &["asset", "add", "plc2", "--kind", "plc"], None, None), "admin", "role engineer");
    ok(beside(&socket, &work, &["user", "roles", "admin", "--role", "site-admin,engineer"], None, None), "roles");
    // A file named on the command line is read by the caller (here readable by its owner only) and sent.
    let export = work.join("plc1.cfg");
    std::fs::write(&export, "hostname plc1\n!\ninterface Gi0/1\n description uplink\n").expect("write");
    std::fs::set_permissions(&export, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
    ok(beside(&socket, &work, &["config", "capture", "plc1", "plc1.cfg"], None, None), "capture a relative path");
    let log = ok(beside(&socket, &work, &["audit", "log"], None, None), "audit");
    assert!(log.stdout.contains(&"admin (os-account)".to_string()), "{}", log.stdout);
    // Standard input reaches the command; its exit code comes back.
    ok(
        beside(&socket, &work, &["user", "passwd", "admin", "--password-stdin"], None, Some(&format!("{PASSWORD}\n"))),
        "passwd",
    );
    refused(beside(&socket, &work, &["asset", "show", "nosuch"], None, None), "an unknown asset", "nosuch");
    // An output file is written by the caller, in its own directory.
    ok(beside(&socket, &work, &["dump", "--out", "site.dump"], None, None), "dump");
    assert!(std::fs::metadata(work.join("site.dump")).expect("dump written").len() > 1000);
    // A template named on the command line is read by the caller (owner-only here) and sent.
    let standard = work.join("std.toml");
    std::fs::write(
        &standard,
        "[template]\nid = 'names'\nversion = '1.0.0'\ntitle = 'named'\n[[rule]]\nid = 'N1'\nrequire = '^hostname plc1$'\n",
    )
    .expect("write");
    std::fs::set_permissions(&standard, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
    let checked = ok(beside(&socket, &work, &["compliance", "--template", "std.toml"], None, None), "compliance");
    assert!(checked.stdout.contains("N1") && checked.stdout.contains("1 compliant"), "{}", checked.stdout);
    // The evidence pack: made by the service, sent as a ZIP, unpacked by the caller into its own directory.
    let made = ok(beside(&socket, &work, &["report", "--out", "pack", "--zip"], None, None), "report");
    assert!(made.stdout.contains("wrote pack and pack.zip"), "{}", made.stdout);
    let verified = Run::from(
        Command::new(bin("datum-edge")).args(["report", "verify"]).arg(work.join("pack")).output().expect("verify"),
    );
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
    assert!(work.join("pack.zip").exists() && work.join("pack/index.html").exists());
    refused(beside(&socket, &work, &["report", "--out", "pack"], None, None), "a pack over another", "exists");

    // From the attacker's side: a typed name, another data directory, a site-making command, a bad token.
    refused(
        beside(&socket, &work, &["--actor", "mallory", "asset", "add", "x", "--kind", "plc"], None, None),
        "--actor",
        "refused for writes",
    );
    // A hand-made request naming another data directory (the real client never sends one: with --data it
    // works directly, with the caller's own permissions).
    let (stderr, code) = raw_request(&socket, r#"{"args":["--data","/tmp/other","asset","list"],"files":[]}"#);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--data is not accepted"), "{stderr}");
    let (stderr, code) =
        raw_request(&socket, r#"{"args":["asset","list"],"files":[{"arg":1,"prefix":"","name":"../x"}]}"#);
    assert_eq!(code, 2, "{stderr}");
    refused(beside(&socket, &work, &["init", "--site", "Evil"], None, None), "init", "not run through the service");
    refused(
        beside(&socket, &work, &["asset", "list"], Some("datum_00_bogus"), None),
        "a bogus token",
        "not a valid token",
    );
    // kill -9 leaves the socket file behind; the next start replaces it.
    service.kill().expect("kill");
    service.wait().expect("wait");
    let down = beside(&socket, &work, &["asset", "list"], None, None);
    assert_eq!(down.code, 2, "{}", down.stderr);
    assert!(down.stderr.contains("does not answer"), "{}", down.stderr);
    let mut service = start_with_socket(&plant, &socket);
    ok(beside(&socket, &work, &["asset", "list"], None, None), "after a restart");
    // A stop (SIGTERM, as systemd sends) removes it.
    let term = Command::new("kill").args(["-TERM", &service.id().to_string()]).status().expect("kill -TERM");
    assert!(term.success());
    service.wait().expect("wait");
    assert!(!socket.exists(), "the socket is removed at a clean stop");
}
