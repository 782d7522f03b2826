//! The workspace in process: every route × every role × anonymous, and the security rules from the attacker's
//! side (OWASP ASVS 5.0 level 2 where it applies): session fixation, cookie flags, CSRF, lockout, TOTP replay,
//! headers, time-outs, tokens, separation of duties, secrets in logs. Each case runs on its own copy of one
//! prepared site.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use chrono::{DateTime, Duration, Utc};
use clap::Parser;
use datum_host::auth::{AuthStore, SessionLimits, Stage};
use datum_shared::identity::{totp, AuthMethod};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::{app, router, App};
use crate::cli::Cli;
use crate::commands::{self, Context};

const PASSWORD: &str = "correct horse battery staple";
/// The roles of the matrix, each an account of the prepared site (`engineer2` requests the changes).
const ROLES: [&str; 5] = ["viewer", "engineer", "approver", "auditor", "site-admin"];

fn secret_of(user: &str) -> Vec<u8> {
    let mut s = user.as_bytes().to_vec();
    s.resize(20, b'#');
    s
}

async fn cli(dir: &Path, now: DateTime<Utc>, actor: &str, os: Option<&str>, args: &[&str]) {
    let mut full = vec!["datum-edge"];
    full.extend_from_slice(args);
    let parsed = Cli::try_parse_from(full).expect("valid command line");
    let ctx = Context {
        data: dir.to_path_buf(),
        actor: actor.into(),
        typed_actor: os.is_none(),
        os_login: os.map(str::to_string),
        token: None,
        now,
        drill: false,
    };
    commands::run(ctx, parsed.command).await.unwrap_or_else(|e| panic!("{args:?}: {e:#}"));
}

/// A site with two assets (plc1 captured), CR-0001 (draft), CR-0002 (submitted, medium risk) and CR-0003
/// (submitted, high risk, a title with markup) requested by engineer2, and one account per role plus
/// engineer2 and approver2; the approvers and the site-admin have TOTP set up.
async fn prepare(root: &Path, now: DateTime<Utc>) -> PathBuf {
    let dir = root.join("template");
    cli(&dir, now, "setup", None, &["init", "--site", "Plant Test"]).await;
    cli(&dir, now, "setup", None, &["asset", "add", "plc1", "--kind", "plc", "--zone", "cell-1"]).await;
    cli(&dir, now, "setup", None, &["asset", "add", "sw1", "--kind", "switch", "--vendor", "Cisco"]).await;
    let file = root.join("plc1.cfg");
    std::fs::write(&file, "hostname plc1\n!\ninterface Gi0/1\n description uplink\n").expect("write");
    cli(&dir, now, "setup", None, &["config", "capture", "plc1", file.to_str().expect("utf-8")]).await;
    for (title, risk) in [("first", "medium"), ("second", "medium"), ("third <script>alert(1)</script>", "high")] {
        cli(
            &dir,
            now,
            "engineer2",
            None,
            &[
                "change",
                "new",
                "--title",
                title,
                "--reason",
                "r",
                "--asset",
                "plc1",
                "--risk",
                risk,
                "--impact",
                "i",
                "--rollback",
                "b",
            ],
        )
        .await;
    }
    cli(&dir, now, "engineer2", None, &["change", "submit", "CR-0002"]).await;
    cli(&dir, now, "engineer2", None, &["change", "submit", "CR-0003"]).await;
    cli(&dir, now, "setup", None, &["user", "add", "site-admin", "--role", "site-admin", "--os-user", "tester"]).await;
    for (name, role) in [
        ("viewer", "viewer"),
        ("engineer", "engineer"),
        ("engineer2", "engineer"),
        ("approver", "approver"),
        ("approver2", "approver"),
        ("auditor", "auditor"),
    ] {
        cli(&dir, now, "", Some("tester"), &["user", "add", name, "--role", role]).await;
    }
    let store = AuthStore::open(&dir).await.expect("auth store");
    for name in ["viewer", "engineer", "engineer2", "approver", "approver2", "auditor", "site-admin"] {
        store.set_password(name, PASSWORD, now).await.expect("password");
    }
    for name in ["approver", "approver2", "site-admin"] {
        // Enrolled one step back, so a code of the current step is fresh.
        store.enroll_totp(name, &secret_of(name), totp::step_of(now.timestamp()) - 2, now).await.expect("totp");
    }
    store.close().await;
    dir
}

/// Copies the prepared site. SQLite removes a WAL file after its last connection checkpointed it, which can
/// happen just after the pool said it closed: a copy that saw a file vanish is made again.
fn copy_dir(from: &Path, to: &Path) {
    for _ in 0..100 {
        let _ = std::fs::remove_dir_all(to);
        if try_copy(from, to).is_ok() {
            return;
        }
        std::thread::yield_now();
    }
    panic!("could not copy {} (files kept vanishing)", from.display());
}

fn try_copy(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            try_copy(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

struct Harness {
    _root: tempfile::TempDir,
    dir: PathBuf,
    app: App,
    router: Router,
    clock: Arc<Mutex<DateTime<Utc>>>,
}

impl Harness {
    async fn new(template: &Path, now: DateTime<Utc>) -> Harness {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("site");
        copy_dir(template, &dir);
        let clock = Arc::new(Mutex::new(now));
        let c = clock.clone();
        let app =
            app(&dir, SessionLimits::default(), Arc::new(move || *c.lock().expect("clock")), false).await.expect("app");
        Harness { router: router(app.clone()), app, clock, dir, _root: root }
    }

    fn now(&self) -> DateTime<Utc> {
        *self.clock.lock().expect("clock")
    }

    fn advance(&self, by: Duration) {
        *self.clock.lock().expect("clock") += by;
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, HeaderMap, String) {
        let response = self.router.clone().oneshot(request).await.expect("infallible");
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        (parts.status, parts.headers, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// A signed-in session of `user` (as after password and TOTP): (cookie header, CSRF token).
    async fn session(&self, user: &str) -> (String, String) {
        let id = self
            .app
            .auth
            .store
            .start_session(user, Stage::Active, AuthMethod::PasswordTotp, self.now())
            .await
            .expect("session");
        let row =
            self.app.auth.store.session(&id, self.now(), SessionLimits::default()).await.expect("read").expect("live");
        (format!("__Host-datum-session={id}"), row.csrf)
    }

    fn code(&self, user: &str) -> String {
        format!("{:06}", totp::code_at_step(&secret_of(user), totp::step_of(self.now().timestamp())))
    }

    /// Signs in through the forms: password, then TOTP when the account has one. Returns the final cookie.
    async fn login(&self, user: &str, password: &str) -> (StatusCode, Option<String>, String) {
        let (status, headers, body) =
            self.send(form("/login", None, &format!("name={user}&password={}", password.replace(' ', "+")))).await;
        let cookie = set_cookie(&headers);
        if status != StatusCode::SEE_OTHER || location(&headers) != "/login/totp" {
            return (status, cookie, body);
        }
        let code = self.code(user);
        let (status, headers, body) = self.send(form("/login/totp", cookie.as_deref(), &format!("code={code}"))).await;
        (status, set_cookie(&headers), body)
    }
}

fn set_cookie(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::SET_COOKIE)?.to_str().ok()?;
    v.split(';').next().map(str::to_string).filter(|c| !c.ends_with('='))
}

fn location(headers: &HeaderMap) -> &str {
    headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn form(uri: &str, cookie: Option<&str>, body: &str) -> Request<Body> {
    let mut b = Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::from(body.to_string())).expect("request")
}

fn get(uri: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::get(uri);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::empty()).expect("request")
}

fn bearer(uri: &str, token: &str) -> Request<Body> {
    Request::get(uri).header(header::AUTHORIZATION, format!("Bearer {token}")).body(Body::empty()).expect("request")
}

fn multipart(uri: &str, cookie: Option<&str>, csrf_header: Option<&str>, csrf_field: Option<&str>) -> Request<Body> {
    let boundary = "XdatumBoundary";
    let mut body = String::new();
    if let Some(c) = csrf_field {
        body.push_str(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{c}\r\n"));
    }
    body.push_str(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"plc1.cfg\"\r\nContent-Type: text/plain\r\n\r\n\
         hostname plc1\n!\ninterface Gi0/1\n description changed\n\r\n--{boundary}--\r\n"
    ));
    let mut b = Request::post(uri).header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={boundary}"));
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    if let Some(t) = csrf_header {
        b = b.header("x-csrf-token", t);
    }
    b.body(Body::from(body)).expect("request")
}

/// A multipart form with text fields and an optional file part (field name, file name, content).
fn multipart_form(
    uri: &str,
    cookie: Option<&str>,
    csrf_header: Option<&str>,
    fields: &[(&str, &str)],
    file: Option<(&str, &str, &str)>,
) -> Request<Body> {
    let boundary = "XdatumBoundary";
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"));
    }
    if let Some((name, file_name, content)) = file {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n{content}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    let mut b = Request::post(uri).header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={boundary}"));
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    if let Some(t) = csrf_header {
        b = b.header("x-csrf-token", t);
    }
    b.body(Body::from(body)).expect("request")
}

const RESTORE_TEST: [(&str, &str); 4] =
    [("asset", "plc1"), ("version", "1"), ("result", "pass"), ("method", "loaded into the spare CPU")];

fn json_post(uri: &str, cookie: Option<&str>, csrf: &str, body: &str) -> Request<Body> {
    let mut b = Request::post(uri).header(header::CONTENT_TYPE, "application/json").header("x-csrf-token", csrf);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::from(body.to_string())).expect("request")
}

/// One route of the matrix: its request for a caller with (cookie, CSRF token, TOTP code), or anonymous.
struct Route {
    name: &'static str,
    make: fn(Option<&str>, &str, &str) -> Request<Body>,
}

const NEW_CHANGE: &str = r#"{"title":"t","reason":"r","assets":["plc1"],"risk":"low","impact":"i","rollback":"b"}"#;

fn routes() -> Vec<Route> {
    vec![
        Route { name: "GET /healthz", make: |c, _, _| get("/healthz", c) },
        Route { name: "GET /static/datum.css", make: |c, _, _| get("/static/datum.css", c) },
        Route { name: "GET /api/v1/openapi.json", make: |c, _, _| get("/api/v1/openapi.json", c) },
        Route { name: "GET /", make: |c, _, _| get("/", c) },
        Route { name: "GET /assets", make: |c, _, _| get("/assets?q=plc", c) },
        Route { name: "GET /assets/plc1", make: |c, _, _| get("/assets/plc1", c) },
        Route { name: "GET /drift", make: |c, _, _| get("/drift", c) },
        Route { name: "GET /changes", make: |c, _, _| get("/changes", c) },
        Route { name: "GET /changes/new", make: |c, _, _| get("/changes/new", c) },
        Route { name: "GET /changes/CR-0002", make: |c, _, _| get("/changes/CR-0002", c) },
        Route { name: "GET /audit", make: |c, _, _| get("/audit", c) },
        Route { name: "GET /backups", make: |c, _, _| get("/backups?overdue=backup", c) },
        Route { name: "GET /reviews", make: |c, _, _| get("/reviews", c) },
        Route { name: "GET /api/v1/assets", make: |c, _, _| get("/api/v1/assets", c) },
        Route { name: "GET /api/v1/assets/plc1", make: |c, _, _| get("/api/v1/assets/plc1", c) },
        Route { name: "GET /api/v1/drift", make: |c, _, _| get("/api/v1/drift", c) },
        Route { name: "GET /api/v1/changes", make: |c, _, _| get("/api/v1/changes", c) },
        Route { name: "GET /api/v1/changes/CR-0002", make: |c, _, _| get("/api/v1/changes/CR-0002", c) },
        Route { name: "GET /api/v1/audit", make: |c, _, _| get("/api/v1/audit?limit=5", c) },
        Route { name: "POST /api/v1/changes", make: |c, t, _| json_post("/api/v1/changes", c, t, NEW_CHANGE) },
        Route {
            name: "POST /api/v1/changes/CR-0001/submit",
            make: |c, t, _| json_post("/api/v1/changes/CR-0001/submit", c, t, "{}"),
        },
        Route {
            name: "POST /api/v1/changes/CR-0002/approve",
            make: |c, t, code| json_post("/api/v1/changes/CR-0002/approve", c, t, &format!(r#"{{"totp":"{code}"}}"#)),
        },
        Route {
            name: "POST /api/v1/changes/CR-0002/reject",
            make: |c, t, code| {
                json_post("/api/v1/changes/CR-0002/reject", c, t, &format!(r#"{{"reason":"no","totp":"{code}"}}"#))
            },
        },
        Route {
            name: "POST /api/v1/changes/CR-0001/cancel",
            make: |c, t, _| json_post("/api/v1/changes/CR-0001/cancel", c, t, r#"{"reason":"x"}"#),
        },
        Route {
            name: "POST /api/v1/assets/plc1/captures",
            make: |c, t, _| multipart("/api/v1/assets/plc1/captures", c, Some(t), None),
        },
        Route {
            name: "POST /changes (form)",
            make: |c, t, _| {
                form("/changes", c, &format!("csrf={t}&title=t&assets=plc1&risk=low&reason=r&impact=i&rollback=b"))
            },
        },
        Route {
            name: "POST /changes/CR-0001/submit (form)",
            make: |c, t, _| form("/changes/CR-0001/submit", c, &format!("csrf={t}")),
        },
        Route {
            name: "POST /changes/CR-0002/approve (form)",
            make: |c, t, code| form("/changes/CR-0002/approve", c, &format!("csrf={t}&totp={code}")),
        },
        Route {
            name: "POST /assets/plc1/captures (form)",
            make: |c, t, _| multipart("/assets/plc1/captures", c, None, Some(t)),
        },
        Route {
            name: "POST /assets/plc1/baseline (form)",
            make: |c, t, code| form("/assets/plc1/baseline", c, &format!("csrf={t}&version=1&reason=ok&totp={code}")),
        },
        Route { name: "GET /api/v1/restore-tests", make: |c, _, _| get("/api/v1/restore-tests", c) },
        Route {
            name: "POST /api/v1/restore-tests",
            make: |c, t, _| multipart_form("/api/v1/restore-tests", c, Some(t), &RESTORE_TEST, None),
        },
        Route {
            name: "POST /backups (form)",
            make: |c, t, _| {
                let mut fields = RESTORE_TEST.to_vec();
                fields.push(("csrf", t));
                multipart_form("/backups", c, None, &fields, Some(("evidence", "", "")))
            },
        },
        Route { name: "GET /api/v1/reviews", make: |c, _, _| get("/api/v1/reviews", c) },
        Route {
            name: "POST /api/v1/reviews",
            make: |c, t, _| json_post("/api/v1/reviews", c, t, r#"{"asset":"plc1","outcome":"ok","notes":"n"}"#),
        },
        Route {
            name: "POST /reviews (form)",
            make: |c, t, _| form("/reviews", c, &format!("csrf={t}&zone=cell-1&outcome=findings&notes=n")),
        },
        Route { name: "GET /evidence", make: |c, _, _| get("/evidence", c) },
        Route { name: "POST /evidence (form)", make: |c, t, _| form("/evidence", c, &format!("csrf={t}&from=&to=")) },
        Route { name: "POST /api/v1/evidence", make: |c, t, _| json_post("/api/v1/evidence", c, t, "{}") },
        Route { name: "GET /users", make: |c, _, _| get("/users", c) },
        Route {
            name: "POST /users (form)",
            make: |c, t, code| {
                form("/users", c, &format!("csrf={t}&name=newbie&role=viewer&password=long+enough+pass&totp={code}"))
            },
        },
        Route {
            name: "POST /users/change (form)",
            make: |c, t, code| form("/users/change", c, &format!("csrf={t}&name=viewer&op=disable&totp={code}")),
        },
        Route { name: "GET /tokens", make: |c, _, _| get("/tokens", c) },
        Route { name: "POST /tokens (form)", make: |c, t, _| form("/tokens", c, &format!("csrf={t}&expires=1d")) },
        Route { name: "POST /logout", make: |c, t, _| form("/logout", c, &format!("csrf={t}")) },
        Route { name: "POST /logout/all", make: |c, t, _| form("/logout/all", c, &format!("csrf={t}")) },
    ]
}

#[tokio::test]
async fn authorization_matrix_every_route_every_role_and_anonymous() {
    let root = tempfile::tempdir().expect("tempdir");
    let now = Utc::now();
    let template = prepare(root.path(), now).await;
    let mut table = format!("{:<42} {:>5}", "route", "anon");
    for role in ROLES {
        table.push_str(&format!(" {role:>10}"));
    }
    table.push('\n');
    for route in routes() {
        let mut line = format!("{:<42}", route.name);
        let h = Harness::new(&template, now).await;
        let (status, _, _) = h.send((route.make)(None, "", "")).await;
        line.push_str(&format!(" {:>5}", status.as_u16()));
        for role in ROLES {
            // A fresh copy of the site per cell: one role's write does not change another's answer.
            let h = Harness::new(&template, now).await;
            let (cookie, csrf) = h.session(role).await;
            let (status, _, body) = h.send((route.make)(Some(&cookie), &csrf, &h.code(role))).await;
            assert!(!status.is_server_error(), "{} as {role}: {status} {body}", route.name);
            line.push_str(&format!(" {:>10}", status.as_u16()));
        }
        table.push_str(line.trim_end());
        table.push('\n');
    }
    // 303: a page form that worked redirects to its result; an anonymous page request redirects to the sign-in.
    expect_test::expect![[r#"
        route                                       anon     viewer   engineer   approver    auditor site-admin
        GET /healthz                                 200        200        200        200        200        200
        GET /static/datum.css                        200        200        200        200        200        200
        GET /api/v1/openapi.json                     200        200        200        200        200        200
        GET /                                        303        200        200        200        200        200
        GET /assets                                  303        200        200        200        200        200
        GET /assets/plc1                             303        200        200        200        200        200
        GET /drift                                   303        200        200        200        200        200
        GET /changes                                 303        200        200        200        200        200
        GET /changes/new                             303        403        200        403        403        403
        GET /changes/CR-0002                         303        200        200        200        200        200
        GET /audit                                   303        200        200        200        200        200
        GET /backups                                 303        200        200        200        200        200
        GET /reviews                                 303        200        200        200        200        200
        GET /api/v1/assets                           401        200        200        200        200        200
        GET /api/v1/assets/plc1                      401        200        200        200        200        200
        GET /api/v1/drift                            401        200        200        200        200        200
        GET /api/v1/changes                          401        200        200        200        200        200
        GET /api/v1/changes/CR-0002                  401        200        200        200        200        200
        GET /api/v1/audit                            401        200        200        200        200        200
        POST /api/v1/changes                         401        403        201        403        403        403
        POST /api/v1/changes/CR-0001/submit          401        403        200        403        403        403
        POST /api/v1/changes/CR-0002/approve         401        403        403        200        403        403
        POST /api/v1/changes/CR-0002/reject          401        403        403        200        403        403
        POST /api/v1/changes/CR-0001/cancel          401        403        200        403        403        403
        POST /api/v1/assets/plc1/captures            401        403        201        403        403        403
        POST /changes (form)                         303        403        303        403        403        403
        POST /changes/CR-0001/submit (form)          303        403        303        403        403        403
        POST /changes/CR-0002/approve (form)         303        403        403        303        403        403
        POST /assets/plc1/captures (form)            303        403        303        403        403        403
        POST /assets/plc1/baseline (form)            303        403        403        303        403        403
        GET /api/v1/restore-tests                    401        200        200        200        200        200
        POST /api/v1/restore-tests                   401        403        201        403        403        403
        POST /backups (form)                         303        403        303        403        403        403
        GET /api/v1/reviews                          401        200        200        200        200        200
        POST /api/v1/reviews                         401        403        201        201        403        403
        POST /reviews (form)                         303        403        303        303        403        403
        GET /evidence                                303        403        403        403        200        200
        POST /evidence (form)                        303        403        403        403        200        200
        POST /api/v1/evidence                        401        403        403        403        200        200
        GET /users                                   303        403        403        403        403        200
        POST /users (form)                           303        403        403        403        403        303
        POST /users/change (form)                    303        403        403        403        403        303
        GET /tokens                                  303        200        200        200        200        200
        POST /tokens (form)                          303        200        200        200        200        200
        POST /logout                                 303        303        303        303        303        303
        POST /logout/all                             303        303        303        303        303        303
    "#]]
    .assert_eq(&table);
}

#[tokio::test]
async fn sign_in_makes_a_new_session_with_strict_cookie_flags_and_ends_it() {
    let root = tempfile::tempdir().expect("tempdir");
    let now = Utc::now();
    let template = prepare(root.path(), now).await;
    let h = Harness::new(&template, now).await;
    // An attacker plants a session id before the victim signs in: the sign-in ignores it and makes a new one.
    let planted = format!("__Host-datum-session={}", "ab".repeat(32));
    let (status, headers, _) =
        h.send(form("/login", Some(&planted), &format!("name=engineer&password={}", PASSWORD.replace(' ', "+")))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/");
    let raw = headers.get(header::SET_COOKIE).expect("cookie").to_str().expect("ascii").to_string();
    for flag in ["__Host-datum-session=", "Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(raw.contains(flag), "{flag} missing in {raw}");
    }
    assert!(!raw.contains("Domain"), "{raw}");
    let cookie = set_cookie(&headers).expect("session cookie");
    assert_ne!(cookie, planted);
    let (status, _, body) = h.send(get("/", Some(&cookie))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("engineer (engineer)"), "{body}");
    // The planted id is worth nothing.
    assert_eq!(h.send(get("/api/v1/assets", Some(&planted))).await.0, StatusCode::UNAUTHORIZED);
    // With a second factor, the id changes again after the code: the half-signed-in id is dead.
    let (status, headers, _) =
        h.send(form("/login", None, &format!("name=approver&password={}", PASSWORD.replace(' ', "+")))).await;
    assert_eq!((status, location(&headers)), (StatusCode::SEE_OTHER, "/login/totp"));
    let half = set_cookie(&headers).expect("cookie");
    assert_eq!(h.send(get("/api/v1/assets", Some(&half))).await.0, StatusCode::UNAUTHORIZED, "no access before TOTP");
    let (status, headers, _) = h.send(form("/login/totp", Some(&half), &format!("code={}", h.code("approver")))).await;
    assert_eq!((status, location(&headers)), (StatusCode::SEE_OTHER, "/"));
    let full = set_cookie(&headers).expect("cookie");
    assert_ne!(full, half);
    assert_eq!(h.send(get("/api/v1/assets", Some(&half))).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(h.send(get("/api/v1/assets", Some(&full))).await.0, StatusCode::OK);
    // Sign-out ends the session on the server, not only in the browser.
    let row = h.app.auth.store.session(full.split('=').nth(1).expect("id"), h.now(), SessionLimits::default()).await;
    let csrf = row.expect("read").expect("live").csrf;
    let (status, headers, _) = h.send(form("/logout", Some(&full), &format!("csrf={csrf}"))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(headers.get(header::SET_COOKIE).expect("cleared").to_str().expect("ascii").contains("Max-Age=0"));
    assert_eq!(h.send(get("/api/v1/assets", Some(&full))).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn state_changes_without_the_session_csrf_token_are_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let now = Utc::now();
    let template = prepare(root.path(), now).await;
    let h = Harness::new(&template, now).await;
    let (cookie, csrf) = h.session("engineer").await;
    let (other_cookie, other_csrf) = h.session("engineer2").await;
    let _ = other_cookie;
    for token in ["", "0000", other_csrf.as_str()] {
        let (status, _, body) = h.send(json_post("/api/v1/changes", Some(&cookie), token, NEW_CHANGE)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "token {token:?}: {body}");
        assert!(body.contains("CSRF"), "{body}");
        let (status, _, _) = h.send(form("/changes/CR-0001/submit", Some(&cookie), &format!("csrf={token}"))).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _, _) = h.send(multipart("/assets/plc1/captures", Some(&cookie), None, Some(token))).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    // Nothing was written by the refused requests.
    let (_, _, body) = h.send(get("/api/v1/changes/CR-0001", Some(&cookie))).await;
    assert!(body.contains("\"state\":\"draft\""), "{body}");
    let (_, _, body) = h.send(get("/api/v1/assets/plc1", Some(&cookie))).await;
    assert_eq!(body.matches("\"version\":").count(), 1, "{body}");
    // The right token works.
    let (status, _, _) = h.send(form("/changes/CR-0001/submit", Some(&cookie), &format!("csrf={csrf}"))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn repeated_failures_lock_the_account_and_the_address_with_back_off() {
    let root = tempfile::tempdir().expect("tempdir");
    let now = Utc::now();
    let template = prepare(root.path(), now).await;
    let h = Harness::new(&template, now).await;
    for _ in 0..5 {
        let (status, _, body) = h.login("engineer", "wrong password here").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("wrong name or password"), "{body}");
    }
    // Now even the right password is refused, with the wait stated.
    let (status, _, body) = h.login("engineer", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("too many failed sign-ins"), "{body}");
    // The address is locked too: another account from the same address waits as well.
    let (status, _, body) = h.login("viewer", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("too many failed sign-ins"), "{body}");
    // After the back-off (30 s after five failures) the right password works and clears the count.
    h.advance(Duration::seconds(31));
    let (status, cookie, _) = h.login("engineer", PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(cookie.is_some());
    // An unknown account answers like a wrong password (no account enumeration).
    let (status, _, body) = h.login("nobody", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("wrong name or password"), "{body}");
}

#[tokio::test]
async fn a_totp_code_is_good_once_and_decisions_ask_for_a_fresh_one() {
    let root = tempfile::tempdir().expect("tempdir");
    let now = Utc::now();
    let template = prepare(root.path(), now).await;
    let h = Harness::new(&template, now).await;
    let (status, cookie, _) = h.login("approver", PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = cookie.expect("signed in");
    // The same code again, from a second sign-in in the same 30 s: refused as a replay.
    let (status, headers, _) =
        h.send(form("/login", None, &format!("name=approver&password={}", PASSWORD.replace(' ', "+")))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let half = set_cookie(&headers);
    let (status, _, body) = h.send(form("/login/totp", half.as_deref(), &format!("code={}", h.code("approver")))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("already used"), "{body}");
    // Approving asks for a code: none, or the one already used, is refused; nothing is written.
    let id = cookie.split('=').nth(1).expect("id").to_string();
    let csrf =
        h.app.auth.store.session(&id, h.now(), SessionLimits::default()).await.expect("read").expect("live").csrf;
    let (status, _, body) = h.send(json_post("/api/v1/changes/CR-0002/approve", Some(&cookie), &csrf, "{}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let replay = format!(r#"{{"totp":"{}"}}"#, h.code("approver"));
    let (status, _, body) = h.send(json_post("/api/v1/changes/CR-0002/approve", Some(&cookie), &csrf, &replay)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("already used"), "{body}");
    // The next step's code works once.
    h.advance(Duration::seconds(30));
    let fresh = format!(r#"{{"totp":"{}"}}"#, h.code("approver"));
    let (status, _, body) = h.send(json_post("/api/v1/changes/CR-0002/approve", Some(&cookie), &csrf, &fresh)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("\"state\":\"approved\""), "{body}");
}

#[tokio::test]
async fn separation_of_duties_holds_by_account_and_high_risk_needs_two_approvers() {
    let root = tempfile::tempdir().expect("tempdir");
    let now = Utc::now();
    let template = prepare(root.path(), now).await;
    let h = Harness::new(&template, now).await;
    // An approver who is also an engineer requests a change and may not approve it: 409 with the reason.
    cli(&h.dir, now, "", Some("tester"), &["user", "roles", "approver", "--role", "approver,engineer"]).await;
    let (cookie, csrf) = h.session("approver").await;
    let (status, _, body) = h.send(json_post("/api/v1/changes", Some(&cookie), &csrf, NEW_CHANGE)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _, _) = h.send(json_post("/api/v1/changes/CR-0004/submit", Some(&cookie), &csrf, "{}")).await;
    assert_eq!(status, StatusCode::OK);
    let approve = |code: String| format!(r#"{{"totp":"{code}"}}"#);
    let (status, _, body) =
        h.send(json_post("/api/v1/changes/CR-0004/approve", Some(&cookie), &csrf, &approve(h.code("approver")))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("approver"), "{body}");
    // High risk: the first approval leaves it submitted, the second (another person) approves it.
    h.advance(Duration::seconds(30));
    let (status, _, body) =
        h.send(json_post("/api/v1/changes/CR-0003/approve", Some(&cookie), &csrf, &approve(h.code("approver")))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("\"state\":\"submitted\""), "{body}");
    // The same person twice does not count twice.
    h.advance(Duration::seconds(30));
    let (status, _, body) =
        h.send(json_post("/api/v1/changes/CR-0003/approve", Some(&cookie), &csrf, &approve(h.code("approver")))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (cookie2, csrf2) = h.session("approver2").await;
    let (status, _, body) = h
        .send(json_post("/api/v1/changes/CR-0003/approve", Some(&cookie2), &csrf2, &approve(h.code("approver2"))))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("\"state\":\"approved\""), "{body}");
    // Every entry names the account and how it authenticated.
    let (_, _, body) = h.send(get("/api/v1/audit?limit=3", Some(&cookie2))).await;
    let entries: Vec<serde_json::Value> = serde_json::from_str(&body).expect("json");
    assert_eq!(entries[0]["actor"], "approver2");
    assert_eq!(entries[0]["auth"], "password+totp");
    assert_eq!(entries[0]["op"], "change.approve");
}

#[tokio::test]
async fn tokens_act_as_their_user_but_never_decide_and_stop_when_revoked_or_disabled() {
    let root = tempfile::tempdir().expect("tempdir");
    let now = Utc::now();
    let template = prepare(root.path(), now).await;
    let h = Harness::new(&template, now).await;
    let store = &h.app.auth.store;
    let approver = store.create_token("approver", "site-admin", now, None).await.expect("token");
    let (status, _, _) = h.send(bearer("/api/v1/assets", &approver.token)).await;
    assert_eq!(status, StatusCode::OK);
    let decide = Request::post("/api/v1/changes/CR-0002/approve")
        .header(header::AUTHORIZATION, format!("Bearer {}", approver.token))
        .body(Body::empty())
        .expect("request");
    let (status, _, body) = h.send(decide).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("token"), "{body}");
    // A token needs no CSRF token (no cookie is involved) and writes as its user.
    let engineer =
        store.create_token("engineer", "site-admin", now, Some(now + Duration::days(1))).await.expect("token");
    let post = Request::post("/api/v1/changes")
        .header(header::AUTHORIZATION, format!("Bearer {}", engineer.token))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(NEW_CHANGE))
        .expect("request");
    let (status, _, body) = h.send(post).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body.contains("\"requester\":\"engineer\""), "{body}");
    // Expired, revoked, tampered or a disabled user's: 401.
    h.advance(Duration::days(2));
    assert_eq!(h.send(bearer("/api/v1/assets", &engineer.token)).await.0, StatusCode::UNAUTHORIZED);
    assert!(store.revoke_token(&approver.id, h.now()).await.expect("revoke"));
    assert_eq!(h.send(bearer("/api/v1/assets", &approver.token)).await.0, StatusCode::UNAUTHORIZED);
    let viewer = store.create_token("viewer", "site-admin", h.now(), None).await.expect("token");
    let mut tampered = viewer.token.clone();
    tampered.pop();
    tampered.push(if viewer.token.ends_with('0') { '1' } else { '0' });
    assert_eq!(h.send(bearer("/api/v1/assets", &tampered)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(h.send(bearer("/api/v1/assets", &viewer.token)).await.0, StatusCode::OK);
    cli(&h.dir, h.now(), "", Some("tester"), &["user", "disable", "viewer"]).await;
    assert_eq!(h.send(bearer("/api/v1/assets", &viewer.token)).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sessions_time_out_when_idle_and_absolutely() {
    let root = tempfile::tempdir().expect("tempdir");
    let now = Utc::now();
    let template = prepare(root.path(), now).await;
    let h = Harness::new(&template, now).await;
    let (cookie, _) = h.session("viewer").await;
    h.advance(Duration::minutes(14));
    assert_eq!(h.send(get("/api/v1/assets", Some(&cookie))).await.0, StatusCode::OK);
    h.advance(Duration::minutes(16));
    assert_eq!(h.send(get("/api/v1/assets", Some(&cookie))).await.0, StatusCode::UNAUTHORIZED, "idle 16 min");
    // Kept busy, a session still ends after 8 hours.
    let (cookie, _) = h.session("viewer").await;
    let start = h.now();
    while h.now() + Duration::minutes(14) - start < Duration::hours(8) {
        h.advance(Duration::minutes(14));
        assert_eq!(h.send(get("/api/v1/assets", Some(&cookie))).await.0, StatusCode::OK);
    }
    h.advance(Duration::minutes(14));
    assert_eq!(h.send(get("/api/v1/assets", Some(&cookie))).await.0, StatusCode::UNAUTHORIZED, "absolute 8 h");
}

#[tokio::test]
async fn every_response_carries_the_security_headers_and_markup_is_escaped() {
    let root = tempfile::tempdir().expect("tempdir");
    let now = Utc::now();
    let template = prepare(root.path(), now).await;
    let h = Harness::new(&template, now).await;
    let (cookie, _) = h.session("viewer").await;
    for uri in ["/login", "/", "/changes/CR-0003", "/api/v1/assets", "/healthz", "/static/datum.css", "/nowhere"] {
        let (_, headers, body) = h.send(get(uri, Some(&cookie))).await;
        let csp = headers.get(header::CONTENT_SECURITY_POLICY).expect("csp").to_str().expect("ascii");
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{uri}: {csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("http"), "{uri}: {csp}");
        assert_eq!(headers.get(header::X_CONTENT_TYPE_OPTIONS).expect("nosniff"), "nosniff");
        assert_eq!(headers.get(header::REFERRER_POLICY).expect("referrer"), "no-referrer");
        assert_eq!(headers.get(header::X_FRAME_OPTIONS).expect("frame"), "DENY");
        assert!(!body.contains("<script"), "{uri}: a script element in {body}");
    }
    let (_, _, body) = h.send(get("/changes/CR-0003", Some(&cookie))).await;
    assert!(body.contains("third &lt;script&gt;alert(1)&lt;/script&gt;"), "{body}");
}

#[tokio::test]
async fn no_password_code_or_token_reaches_the_log() {
    use std::io::Write;
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let root = tempfile::tempdir().expect("tempdir");
    let now = Utc::now();
    let template = prepare(root.path(), now).await;
    let h = Harness::new(&template, now).await;
    let code = h.code("approver");
    h.login("approver", PASSWORD).await;
    h.login("engineer", "a wrong password 123").await;
    let token = h.app.auth.store.create_token("viewer", "site-admin", now, None).await.expect("token");
    h.send(bearer("/api/v1/assets", &token.token)).await;
    h.send(bearer("/api/v1/assets", "datum_0123456789abcdef_deadbeef")).await;
    let log = String::from_utf8(buffer.0.lock().expect("log").clone()).expect("utf-8");
    assert!(log.contains("signed in"), "the log is captured: {log}");
    for secret in [PASSWORD, "a wrong password 123", code.as_str(), token.token.as_str(), "deadbeef"] {
        assert!(!log.contains(secret), "{secret:?} in the log:\n{log}");
    }
}

#[tokio::test]
async fn restore_tests_and_reviews_are_recorded_from_the_browser_and_the_api_as_the_person() {
    let root = tempfile::tempdir().expect("tempdir");
    let now = Utc::now();
    let template = prepare(root.path(), now).await;
    let h = Harness::new(&template, now).await;
    let (cookie, csrf) = h.session("engineer").await;
    // The form is offered to those who may use it, and only to them.
    let (_, _, body) = h.send(get("/backups", Some(&cookie))).await;
    assert!(body.contains("id=\"restore-test-record\"") && body.contains("enctype=\"multipart/form-data\""), "{body}");
    let (viewer, _) = h.session("viewer").await;
    assert!(!h.send(get("/backups", Some(&viewer))).await.2.contains("restore-test-record"));
    assert!(!h.send(get("/reviews", Some(&viewer))).await.2.contains("review-record"));

    // With an evidence file: stored as a blob, named as uploaded.
    let mut fields = RESTORE_TEST.to_vec();
    fields.push(("csrf", &csrf));
    fields.push(("notes", "all 14 blocks compared equal"));
    let (status, headers, body) = h
        .send(multipart_form("/backups", Some(&cookie), None, &fields, Some(("evidence", "compare.log", "OK 14/14\n"))))
        .await;
    assert_eq!((status, location(&headers)), (StatusCode::SEE_OTHER, "/backups"), "{body}");
    let (_, _, page) = h.send(get("/backups", Some(&cookie))).await;
    assert!(page.contains("loaded into the spare CPU") && page.contains("<td>engineer</td>"), "{page}");
    let (_, _, json) = h.send(get("/api/v1/restore-tests", Some(&cookie))).await;
    let tests: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(tests[0]["tested_by"], "engineer", "{json}");
    assert_eq!(tests[0]["evidence_name"], "compare.log", "{json}");
    assert!(tests[0]["evidence_hash"].as_str().is_some_and(|h| !h.is_empty()), "{json}");

    // A bad value is the person's to fix: the reason, nothing written.
    let mut bad = vec![("asset", "plc1"), ("version", "9"), ("result", "pass"), ("method", "m")];
    bad.push(("csrf", &csrf));
    let (status, _, body) = h.send(multipart_form("/backups", Some(&cookie), None, &bad, None)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("has no version 9"), "{body}");
    let bad = [("asset", "plc1"), ("version", "1"), ("result", "maybe"), ("method", "m")];
    let (status, _, body) =
        h.send(multipart_form("/api/v1/restore-tests", Some(&cookie), Some(&csrf), &bad, None)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // Without the session's CSRF token in the form: refused, nothing recorded.
    let (status, _, _) = h.send(multipart_form("/backups", Some(&cookie), None, &RESTORE_TEST, None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, _, json) = h.send(get("/api/v1/restore-tests", Some(&cookie))).await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&json).expect("json").as_array().map(Vec::len), Some(1));

    // A review of a zone by an approver, through the form; one of an asset through the API.
    let (approver, approver_csrf) = h.session("approver").await;
    let (status, headers, body) = h
        .send(form(
            "/reviews",
            Some(&approver),
            &format!("csrf={approver_csrf}&asset=&zone=cell-1&outcome=findings&notes=HMI+password+on+a+sticker"),
        ))
        .await;
    assert_eq!((status, location(&headers)), (StatusCode::SEE_OTHER, "/reviews"), "{body}");
    let (status, _, body) = h
        .send(json_post("/api/v1/reviews", Some(&cookie), &csrf, r#"{"asset":"sw1","outcome":"ok","notes":"fine"}"#))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body.contains("\"reviewed_by\":\"engineer\""), "{body}");
    let (status, _, body) = h
        .send(json_post("/api/v1/reviews", Some(&cookie), &csrf, r#"{"zone":"nowhere","outcome":"ok","notes":"x"}"#))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (_, _, page) = h.send(get("/reviews", Some(&cookie))).await;
    assert!(page.contains("HMI password on a sticker") && page.contains("<td>approver</td>"), "{page}");
    // Every one of them is in the audit trail with the person and how they signed in.
    let (_, _, audit) = h.send(get("/api/v1/audit?limit=10", Some(&cookie))).await;
    let entries: Vec<serde_json::Value> = serde_json::from_str(&audit).expect("json");
    for (op, actor) in
        [("restore-test.record", "engineer"), ("review.record", "approver"), ("review.record", "engineer")]
    {
        assert!(
            entries.iter().any(|e| e["op"] == op && e["actor"] == actor && e["auth"] == "password+totp"),
            "{op} by {actor}: {audit}"
        );
    }
}

#[tokio::test]
async fn sign_out_everywhere_ends_every_session_of_the_person_and_only_theirs() {
    let root = tempfile::tempdir().expect("tempdir");
    let now = Utc::now();
    let template = prepare(root.path(), now).await;
    let h = Harness::new(&template, now).await;
    let (desk, desk_csrf) = h.session("engineer").await;
    let (laptop, _) = h.session("engineer").await;
    let (other, _) = h.session("viewer").await;
    let (_, _, page) = h.send(get("/", Some(&desk))).await;
    assert!(page.contains("action=\"/logout/all\""), "the button is on every page: {page}");
    // Not without the CSRF token.
    assert_eq!(h.send(form("/logout/all", Some(&desk), "csrf=")).await.0, StatusCode::FORBIDDEN);
    assert_eq!(h.send(get("/api/v1/assets", Some(&laptop))).await.0, StatusCode::OK);
    let (status, headers, _) = h.send(form("/logout/all", Some(&desk), &format!("csrf={desk_csrf}"))).await;
    assert_eq!((status, location(&headers)), (StatusCode::SEE_OTHER, "/login"));
    assert_eq!(h.send(get("/api/v1/assets", Some(&desk))).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(h.send(get("/api/v1/assets", Some(&laptop))).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(h.send(get("/api/v1/assets", Some(&other))).await.0, StatusCode::OK);
}

#[tokio::test]
async fn an_auditor_downloads_the_evidence_pack_and_the_download_is_recorded() {
    let root = tempfile::tempdir().expect("tempdir");
    let now = Utc::now();
    let template = prepare(root.path(), now).await;
    let h = Harness::new(&template, now).await;
    let (cookie, csrf) = h.session("auditor").await;
    let (_, _, page) = h.send(get("/", Some(&cookie))).await;
    assert!(page.contains("href=\"/evidence\""), "the auditor's navigation offers the pack");
    let (engineer, _) = h.session("engineer").await;
    assert!(!h.send(get("/", Some(&engineer))).await.2.contains("href=\"/evidence\""));
    let (status, headers, body) =
        h.send(form("/evidence", Some(&cookie), &format!("csrf={csrf}&from=2020-01-01&to="))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), Some("application/zip"));
    let disposition = headers.get(header::CONTENT_DISPOSITION).and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(disposition.starts_with("attachment; filename=\"evidence-plant-test-"), "{disposition}");
    assert!(body.starts_with("PK"), "a ZIP archive");
    for name in ["evidence.json", "index.html", "manifest.json", "manifest.sig", "inventory.csv", "audit.csv"] {
        assert!(body.contains(&format!("/{name}")), "{name} in the archive");
    }
    assert!(body.contains("\"SR 7.8\"") && body.contains("\"SP.12\""), "the requirements, stored uncompressed");
    // A period that ends before it starts is the person's to fix.
    let (status, _, body) =
        h.send(form("/evidence", Some(&cookie), &format!("csrf={csrf}&from=2026-12-31&to=2026-01-01"))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (_, _, audit) = h.send(get("/api/v1/audit?limit=3", Some(&cookie))).await;
    let entries: Vec<serde_json::Value> = serde_json::from_str(&audit).expect("json");
    assert!(
        entries.iter().any(|e| e["op"] == "evidence.export" && e["actor"] == "auditor" && e["auth"] == "password+totp"),
        "{audit}"
    );
}
