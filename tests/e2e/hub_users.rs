//! The hub's people (`datum-hub user …`, `token …`): roles of the hub only, a scope of known sites, passwords
//! and tokens kept out of the hub database, every bad input refused without a half-made account; on SQLite and
//! on PostgreSQL.

use datum_tests::{files_under, Backend, Hub, Run};

const PASSWORD: &str = "hub password of ana 7";

fn with_stdin(hub: &Hub, args: &[&str], stdin: &str) -> Run {
    hub.run_with_stdin(args, stdin)
}

fn refused(run: Run, what: &str, reason: &str) {
    assert_eq!(run.code, 2, "{what} should be refused (exit 2): {}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains(reason), "{what}: the reason should say {reason:?}: {}", run.stderr);
}

fn people(hub: &Hub) -> Vec<serde_json::Value> {
    hub.ok(&["user", "list", "--json"]).json().as_array().expect("a list").clone()
}

fn hub_people(backend: Backend) {
    let hub = Hub::new(backend);
    hub.add_site("North");
    hub.add_site("South");

    let added = with_stdin(
        &hub,
        &["user", "add", "ana", "--role", "security-officer", "--sites", "north", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(added.code, 0, "{}{}", added.stdout, added.stderr);
    assert!(added.stdout.contains("ana added as security-officer for North"), "{}", added.stdout);
    hub.ok(&["user", "add", "olga", "--role", "hub-admin,viewer", "--display", "Olga K."]);

    // Refused, each with its reason, and nothing made: a plant's role, an unknown site, a taken name, a short
    // password, an empty scope.
    refused(
        hub.run(&["user", "add", "eve", "--role", "engineer"]),
        "a plant role",
        "security-officer, auditor, hub-admin",
    );
    refused(
        hub.run(&["user", "add", "eve", "--role", "viewer", "--sites", "north,west"]),
        "an unknown site",
        "no site named west",
    );
    refused(hub.run(&["user", "add", "eve", "--role", "viewer", "--sites", " , "]), "an empty scope", "names no site");
    refused(
        hub.run(&["user", "add", "ANA", "--role", "viewer"]),
        "a taken name (another spelling)",
        "already has an account",
    );
    refused(
        with_stdin(&hub, &["user", "add", "eve", "--role", "viewer", "--password-stdin"], "short\n"),
        "a short password",
        "at least 12 characters",
    );
    refused(hub.run(&["user", "passwd", "olga"]), "a password as an argument", "--password-stdin");
    let list = people(&hub);
    let names: Vec<&str> = list.iter().map(|u| u["name"].as_str().expect("name")).collect();
    assert_eq!(names, ["ana", "olga"], "no half-made account: {list:?}");
    assert_eq!(list[0]["sites"], serde_json::json!(["North"]));
    assert_eq!(list[0]["roles"], serde_json::json!(["security-officer"]));
    assert_eq!(list[0]["has_password"], true);
    assert_eq!(list[1]["sites"], serde_json::Value::Null, "no --sites is every site");
    assert_eq!(list[1]["roles"], serde_json::json!(["viewer", "hub-admin"]));
    assert_eq!(list[1]["has_password"], false);
    let shown = hub.ok(&["user", "show", "ana"]).stdout;
    assert!(shown.contains("sites:      North") && shown.contains("password:   set"), "{shown}");
    assert!(hub.ok(&["user", "show", "olga"]).stdout.contains("sites:      all sites"));

    // Another spelling of a site's name (the same identifier) is that site; the scope keeps the hub's name.
    hub.ok(&["user", "add", "ivo", "--role", "auditor", "--sites", "south,NORTH"]);
    assert_eq!(people(&hub)[1]["sites"], serde_json::json!(["North", "South"]));

    // Tokens: shown once, listed without their secret, only for a live account.
    let token = hub.ok(&["token", "create", "--user", "ana", "--json"]).json();
    let (id, secret) = (token["id"].as_str().expect("id"), token["token"].as_str().expect("token"));
    let listed = hub.ok(&["token", "list", "--json"]).stdout;
    assert!(listed.contains(id) && !listed.contains(secret), "{listed}");
    refused(hub.run(&["token", "create", "--user", "nobody"]), "a token for nobody", "no account named nobody");
    refused(hub.run(&["token", "create", "--user", "ana", "--expires", "soon"]), "a bad lifetime", "not a lifetime");
    hub.ok(&["token", "revoke", id]);
    refused(hub.run(&["token", "revoke", id]), "revoking twice", "no active token");

    // Disabled: no new token.
    hub.ok(&["user", "disable", "ana"]);
    assert_eq!(people(&hub)[0]["disabled"], true);
    refused(hub.run(&["token", "create", "--user", "ana"]), "a token for a disabled account", "disabled");
    refused(hub.run(&["user", "disable", "ana"]), "disabling twice", "no active account");

    // The hub's own record names each act and who did it (the operator's login).
    let log = hub.ok(&["user", "log", "--json"]).json();
    let actions: Vec<&str> =
        log.as_array().expect("list").iter().map(|e| e["action"].as_str().expect("action")).collect();
    assert_eq!(actions, ["user.disable", "token.revoke", "token.create", "user.add", "user.add", "user.add"]);
    assert!(log[0]["actor"].as_str().expect("actor").starts_with("cli:"), "{log}");

    // The password is nowhere in the clear: not in the hub's data directory (the hub database, `auth.db`),
    // not in what the commands printed.
    for file in files_under(&hub.data) {
        let bytes = std::fs::read(&file).expect("read");
        assert!(
            !bytes.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes()),
            "{} holds the password",
            file.display()
        );
    }
    assert!(!hub.ok(&["user", "show", "ana", "--json"]).stdout.contains(PASSWORD));
}

#[test]
fn hub_people_have_hub_roles_and_a_scope_of_sites_sqlite() {
    hub_people(Backend::Sqlite);
}

#[test]
fn hub_people_have_hub_roles_and_a_scope_of_sites_postgres() {
    hub_people(Backend::Postgres);
}
