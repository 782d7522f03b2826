//! The web layer both workspaces share, written once: serving (HTTP on loopback, HTTPS otherwise), the
//! security headers (a strict CSP, no framing, no sniffing, no referrer), server-side sessions in a
//! `__Host-` cookie, CSRF checks, sign-in with password, TOTP and enrollment, bearer tokens, and the HTML
//! shell with its embedded style sheet (nothing from a CDN: plants are often isolated).
//!
//! A binary supplies its routes and a [`Directory`] (who the users are); every handler that needs a person
//! calls [`Auth::identify`] and authorizes with `datum_shared::identity::authorize`.

pub mod config;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Form, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use datum_shared::identity::{totp, AuthMethod, User};
use serde::Deserialize;

use crate::auth::{AuthStore, LoginRefused, SessionLimits, SessionRow, Stage};

/// The session cookie. `__Host-`: only set with `Secure`, path `/`, no domain (browsers treat loopback as a
/// secure context, so it works on plain HTTP there too).
pub const SESSION_COOKIE: &str = "__Host-datum-session";
/// The style sheet, embedded in the binary.
pub const STYLE: &str = include_str!("web/datum.css");
/// Largest request body accepted by default (uploads have their own route limit).
pub const MAX_BODY: usize = 64 * 1024;

/// The Content Security Policy of every response: nothing inline, nothing from another origin.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";

/// Who the users are (the site's documents at the edge, the hub's tables at the hub).
pub trait Directory: Clone + Send + Sync + 'static {
    fn user(&self, name: &str) -> impl Future<Output = anyhow::Result<Option<User>>> + Send;
    /// The product name shown in the page header ("Plant North 2").
    fn title(&self) -> String;
    /// The navigation links (label, path) shown to this person in the page header.
    fn links(&self, user: &User) -> Vec<(&'static str, &'static str)>;
}

/// The clock the web layer reads (a test moves it to check time-outs).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The peer address of a connection, put in each request's extensions by [`serve`].
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// Authentication state shared by every handler.
#[derive(Clone)]
pub struct Auth<D: Directory> {
    pub store: AuthStore,
    pub directory: D,
    pub limits: SessionLimits,
    pub clock: Clock,
}

/// An authenticated person, for one request.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user: User,
    pub auth: AuthMethod,
    /// The session's CSRF token (cookie sessions only).
    pub csrf: Option<String>,
    /// The header's navigation for this person ([`Directory::links`]).
    pub links: Vec<(&'static str, &'static str)>,
}

/// Why a request was refused, shown as JSON under `/api/` and as a page elsewhere.
#[derive(Debug)]
pub enum WebError {
    /// No valid session or token (401; pages redirect to the sign-in).
    Unauthenticated,
    /// Authenticated but not allowed (403), with the reason.
    Forbidden(String),
    /// The request itself is wrong (400).
    BadRequest(String),
    /// Nothing by that name (404).
    NotFound(String),
    /// A rule of the domain refused it (409): own change, second approval missing…
    Conflict(String),
    /// Too big (413).
    TooLarge(String),
    /// Our fault (500); the detail goes to the log only.
    Internal(String),
}

impl WebError {
    pub fn status(&self) -> StatusCode {
        match self {
            WebError::Unauthenticated => StatusCode::UNAUTHORIZED,
            WebError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::Conflict(_) => StatusCode::CONFLICT,
            WebError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn message(&self) -> String {
        match self {
            WebError::Unauthenticated => "sign in first (a session, or an API token as `Authorization: Bearer`)".into(),
            WebError::Internal(_) => "internal error; the service log has the detail".into(),
            WebError::Forbidden(m)
            | WebError::BadRequest(m)
            | WebError::NotFound(m)
            | WebError::Conflict(m)
            | WebError::TooLarge(m) => m.clone(),
        }
    }

    /// As JSON (`{"error": ..., "status": ...}`), for the API.
    pub fn json(self) -> Response {
        if let WebError::Internal(detail) = &self {
            tracing::error!("request failed: {detail}");
        }
        let status = self.status();
        let body = serde_json::json!({ "error": self.message(), "status": status.as_u16() });
        (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
    }

    /// As a page; an unauthenticated page request goes to the sign-in.
    pub fn page(self) -> Response {
        if let WebError::Internal(detail) = &self {
            tracing::error!("request failed: {detail}");
        }
        if matches!(self, WebError::Unauthenticated) {
            return Redirect::to("/login").into_response();
        }
        let status = self.status();
        let body = format!(
            "<h1>{}</h1><p class=\"error\">{}</p><p><a href=\"/\">Home</a></p>",
            status,
            escape(&self.message())
        );
        (status, Html(shell("Refused", None, &body))).into_response()
    }
}

impl From<crate::auth::AuthError> for WebError {
    fn from(e: crate::auth::AuthError) -> Self {
        WebError::Internal(e.to_string())
    }
}

/// HTML-escapes text for an element or a quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a path segment.
pub fn url_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The page shell: header with navigation and the person signed in, the embedded style sheet, no script.
pub fn shell(title: &str, who: Option<&Identity>, body: &str) -> String {
    let nav = match who {
        Some(id) => format!(
            "<nav>{links}\
             <span class=\"who\">{} ({})</span>\
             <form method=\"post\" action=\"/logout\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button type=\"submit\">Sign out</button></form>\
             <form method=\"post\" action=\"/logout/all\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button type=\"submit\" class=\"secondary\" title=\"End every session of yours, on every computer\">Sign out everywhere</button></form></nav>",
            escape(&id.user.name),
            escape(&id.user.roles_text()),
            csrf = escape(id.csrf.as_deref().unwrap_or("")),
            links = id
                .links
                .iter()
                .map(|(label, path)| format!("<a href=\"{}\">{}</a> ", escape(path), escape(label)))
                .collect::<String>(),
        ),
        None => String::new(),
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><title>{} — Datum</title>\
         <link rel=\"stylesheet\" href=\"/static/datum.css\"><link rel=\"icon\" href=\"/favicon.ico\" type=\"image/svg+xml\"></head><body><header><span class=\"brand\">Datum</span>{nav}</header>\
         <main>{body}</main></body></html>",
        escape(title)
    )
}

/// The hidden CSRF field of a form.
/// The located changes of a comparison as a table (`id="diff"`): where, what kind, the lines before and after
/// (secrets already masked by the normaliser); a paragraph when only noise differs. The plant's and the hub's
/// diff pages both show it.
pub fn located_changes(report: &datum_shared::diff::DiffReport, from: u32, to: u32) -> String {
    if report.changes.is_empty() {
        return "<p id=\"no-changes\">No significant change (only noise differs, if anything).</p>".into();
    }
    let side = |lines: &[String], class: &str| {
        lines.iter().map(|l| format!("<div class=\"{class}\">{}</div>", escape(l))).collect::<String>()
    };
    let rows: String = report
        .changes
        .iter()
        .map(|c| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&c.location),
                escape(&format!("{:?}", c.kind).to_lowercase()),
                side(&c.removed, "del"),
                side(&c.added, "add")
            )
        })
        .collect();
    format!(
        "<table id=\"diff\"><thead><tr><th>Where</th><th>Change</th><th>v{from} (before)</th><th>v{to} (after)</th></tr></thead><tbody>{rows}</tbody></table>"
    )
}

pub fn csrf_field(id: &Identity) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", escape(id.csrf.as_deref().unwrap_or("")))
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn session_cookie(id: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("{SESSION_COOKIE}={id}; Path=/; Secure; HttpOnly; SameSite=Strict"))
        .expect("hex is a valid header value")
}

fn cleared_cookie() -> HeaderValue {
    HeaderValue::from_static("__Host-datum-session=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compares two secrets in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl<D: Directory> Auth<D> {
    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// The person behind a request: a bearer token, or a signed-in session. For a session, a state-changing
    /// request must carry the session's CSRF token (`csrf` form field or `X-CSRF-Token` header), else 403.
    pub async fn identify(
        &self,
        headers: &HeaderMap,
        method: &Method,
        form_csrf: Option<&str>,
    ) -> Result<Identity, WebError> {
        let now = self.now();
        if let Some(token) = bearer(headers) {
            let name = self.store.token_user(token, now).await?.ok_or(WebError::Unauthenticated)?;
            let user = self.live_user(&name).await?.ok_or(WebError::Unauthenticated)?;
            let links = self.directory.links(&user);
            return Ok(Identity { user, auth: AuthMethod::Token, csrf: None, links });
        }
        let (_, session) = self.session(headers).await?.ok_or(WebError::Unauthenticated)?;
        if session.stage != Stage::Active {
            return Err(WebError::Unauthenticated);
        }
        let user = self.live_user(&session.user).await?.ok_or(WebError::Unauthenticated)?;
        if !matches!(*method, Method::GET | Method::HEAD) {
            let given = form_csrf.or_else(|| headers.get("x-csrf-token").and_then(|v| v.to_str().ok()));
            if !given.is_some_and(|g| same_secret(g, &session.csrf)) {
                return Err(WebError::Forbidden(
                    "the form is stale or did not come from this site (CSRF check); reload the page".into(),
                ));
            }
        }
        let links = self.directory.links(&user);
        Ok(Identity { user, auth: session.auth, csrf: Some(session.csrf), links })
    }

    /// Identifies the person ([`Auth::identify`]) and checks that they may take `action`, else 403.
    pub async fn allow(
        &self,
        headers: &HeaderMap,
        method: &Method,
        form_csrf: Option<&str>,
        action: datum_shared::identity::Action,
    ) -> Result<Identity, WebError> {
        let who = self.identify(headers, method, form_csrf).await?;
        datum_shared::identity::authorize(&who.user, action).map_err(|r| WebError::Forbidden(r.to_string()))?;
        Ok(who)
    }

    async fn live_user(&self, name: &str) -> Result<Option<User>, WebError> {
        let user = self.directory.user(name).await.map_err(|e| WebError::Internal(format!("{e:#}")))?;
        Ok(user.filter(|u| !u.disabled))
    }

    async fn session(&self, headers: &HeaderMap) -> Result<Option<(String, SessionRow)>, WebError> {
        let Some(id) = cookie(headers, SESSION_COOKIE) else { return Ok(None) };
        Ok(self.store.session(id, self.now(), self.limits).await?.map(|s| (id.to_string(), s)))
    }

    /// Asks the second factor again (approving, rejecting, approving a baseline, managing users): a session
    /// user must give a fresh TOTP code; a token may not do it at all.
    pub async fn confirm_second_factor(
        &self,
        who: &Identity,
        code: Option<&str>,
        source: IpAddr,
    ) -> Result<(), WebError> {
        if who.auth == AuthMethod::Token {
            return Err(WebError::Forbidden(
                "an API token may not do this: it needs the person, with their second factor".into(),
            ));
        }
        if !who.user.needs_mfa() && !self.store.has_totp(&who.user.name).await? {
            return Ok(());
        }
        let now = self.now();
        if let Some(wait) = self.store.lockout(&who.user.name, source, now).await? {
            return Err(WebError::Forbidden(LoginRefused::Locked(wait).message()));
        }
        let code = code
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| WebError::Forbidden("give your current TOTP code to confirm".into()))?;
        match self.store.check_second_factor(&who.user.name, code, now).await {
            Ok(()) => Ok(()),
            Err(refused) => {
                self.store.second_factor_failed(&who.user.name, source, now).await?;
                Err(WebError::Forbidden(refused.message()))
            }
        }
    }
}

/// Sets the security headers on every response.
pub async fn security_headers(request: Request<Body>, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    let set = |h: &mut HeaderMap, name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, HeaderName::from_static("cross-origin-opener-policy"), "same-origin");
    set(h, HeaderName::from_static("cross-origin-resource-policy"), "same-origin");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    response
}

#[derive(Deserialize)]
struct LoginForm {
    name: String,
    password: String,
}

#[derive(Deserialize)]
struct CodeForm {
    code: String,
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

fn login_page(error: Option<&str>) -> Html<String> {
    let error = error.map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e))).unwrap_or_default();
    Html(shell(
        "Sign in",
        None,
        &format!(
            "<h1>Sign in</h1>{error}<form method=\"post\" action=\"/login\" class=\"card\">\
             <label>Name <input name=\"name\" autocomplete=\"username\" required autofocus></label>\
             <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
             <button type=\"submit\">Sign in</button></form>"
        ),
    ))
}

fn code_page(error: Option<&str>) -> Html<String> {
    let error = error.map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e))).unwrap_or_default();
    Html(shell(
        "Second factor",
        None,
        &format!(
            "<h1>Second factor</h1>{error}<form method=\"post\" action=\"/login/totp\" class=\"card\">\
             <label>Code from your authenticator app (or a recovery code) \
             <input name=\"code\" autocomplete=\"one-time-code\" inputmode=\"numeric\" required autofocus></label>\
             <button type=\"submit\">Continue</button></form>"
        ),
    ))
}

fn enroll_page(title: &str, account: &str, secret: &[u8], error: Option<&str>) -> Html<String> {
    let error = error.map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e))).unwrap_or_default();
    let uri = totp::otpauth_uri(&format!("Datum {title}"), account, secret);
    Html(shell(
        "Set up your second factor",
        None,
        &format!(
            "<h1>Set up your second factor</h1>{error}<p>Your role needs a second factor. Add this key to an \
             authenticator app (TOTP, 6 digits, 30 s), then give the code it shows.</p>\
             <p>Key: <code id=\"totp-secret\">{}</code></p><p class=\"small\">Or as an address: <code id=\"totp-uri\">{}</code></p>\
             <form method=\"post\" action=\"/login/enroll\" class=\"card\">\
             <label>Code <input name=\"code\" autocomplete=\"one-time-code\" inputmode=\"numeric\" required autofocus></label>\
             <button type=\"submit\">Confirm</button></form>",
            totp::base32(secret),
            escape(&uri)
        ),
    ))
}

fn with_cookie(mut response: Response, value: HeaderValue) -> Response {
    response.headers_mut().append(header::SET_COOKIE, value);
    response
}

/// The source address of a request (for the lockout per address); unspecified when served without [`serve`].
pub fn source(peer: Option<axum::Extension<Peer>>) -> IpAddr {
    peer.map(|p| p.0 .0.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

async fn get_login() -> Html<String> {
    login_page(None)
}

async fn post_login<D: Directory>(
    State(auth): State<Auth<D>>,
    peer: Option<axum::Extension<Peer>>,
    Form(form): Form<LoginForm>,
) -> Result<Response, Response> {
    let now = auth.now();
    let source = source(peer);
    let name = form.name.trim().to_string();
    let user = auth.live_user(&name).await.map_err(WebError::page)?;
    let checked = auth
        .store
        .check_password(&name, user.as_ref(), &form.password, source, now)
        .await
        .map_err(|e| WebError::from(e).page())?;
    if let Err(refused) = checked {
        tracing::info!(account = %name, %source, "sign-in refused: {}", match refused { LoginRefused::Locked(_) => "locked out", _ => "wrong name or password" });
        return Ok((StatusCode::UNAUTHORIZED, login_page(Some(&refused.message()))).into_response());
    }
    let user = user.expect("a password matched, so the account exists");
    let has_totp = auth.store.has_totp(&user.name).await.map_err(|e| WebError::from(e).page())?;
    let (stage, next) = if has_totp {
        (Stage::Password, "/login/totp")
    } else if user.needs_mfa() {
        (Stage::Enroll, "/login/enroll")
    } else {
        (Stage::Active, "/")
    };
    let method = if stage == Stage::Active { AuthMethod::Password } else { AuthMethod::PasswordTotp };
    let id = auth.store.start_session(&user.name, stage, method, now).await.map_err(|e| WebError::from(e).page())?;
    if stage == Stage::Active {
        tracing::info!(account = %user.name, %source, "signed in");
    }
    Ok(with_cookie(Redirect::to(next).into_response(), session_cookie(&id)))
}

async fn get_totp<D: Directory>(State(auth): State<Auth<D>>, headers: HeaderMap) -> Response {
    match auth.session(&headers).await {
        Ok(Some((_, s))) if s.stage == Stage::Password => code_page(None).into_response(),
        _ => Redirect::to("/login").into_response(),
    }
}

/// Replaces a half-signed-in session by a new, active one (a new id at every step: no fixation).
async fn promote<D: Directory>(auth: &Auth<D>, old_id: &str, user: &str) -> Result<Response, WebError> {
    auth.store.end_session(old_id).await?;
    let id = auth.store.start_session(user, Stage::Active, AuthMethod::PasswordTotp, auth.now()).await?;
    Ok(with_cookie(Redirect::to("/").into_response(), session_cookie(&id)))
}

async fn post_totp<D: Directory>(
    State(auth): State<Auth<D>>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Result<Response, Response> {
    let Some((id, session)) = auth.session(&headers).await.map_err(WebError::page)? else {
        return Ok(Redirect::to("/login").into_response());
    };
    if session.stage != Stage::Password {
        return Ok(Redirect::to("/login").into_response());
    }
    let now = auth.now();
    let source = source(peer);
    if let Some(wait) = auth.store.lockout(&session.user, source, now).await.map_err(|e| WebError::from(e).page())? {
        return Ok((StatusCode::UNAUTHORIZED, code_page(Some(&LoginRefused::Locked(wait).message()))).into_response());
    }
    if let Err(refused) = auth.store.check_second_factor(&session.user, &form.code, now).await {
        auth.store.second_factor_failed(&session.user, source, now).await.map_err(|e| WebError::from(e).page())?;
        return Ok((StatusCode::UNAUTHORIZED, code_page(Some(&refused.message()))).into_response());
    }
    tracing::info!(account = %session.user, %source, "signed in with a second factor");
    promote(&auth, &id, &session.user).await.map_err(WebError::page)
}

async fn get_enroll<D: Directory>(State(auth): State<Auth<D>>, headers: HeaderMap) -> Result<Response, Response> {
    let Some((id, session)) = auth.session(&headers).await.map_err(WebError::page)? else {
        return Ok(Redirect::to("/login").into_response());
    };
    if session.stage != Stage::Enroll {
        return Ok(Redirect::to("/login").into_response());
    }
    let secret = match session.pending_secret {
        Some(s) => s,
        None => {
            let s = crate::auth::new_totp_secret();
            auth.store.set_pending_secret(&id, &s).await.map_err(|e| WebError::from(e).page())?;
            s
        }
    };
    Ok(enroll_page(&auth.directory.title(), &session.user, &secret, None).into_response())
}

async fn post_enroll<D: Directory>(
    State(auth): State<Auth<D>>,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Result<Response, Response> {
    let Some((id, session)) = auth.session(&headers).await.map_err(WebError::page)? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let (Stage::Enroll, Some(secret)) = (session.stage, session.pending_secret.clone()) else {
        return Ok(Redirect::to("/login").into_response());
    };
    let now = auth.now();
    let step = match totp::verify(&secret, &form.code, now.timestamp(), None) {
        Ok(step) => step,
        Err(e) => {
            return Ok((
                StatusCode::UNAUTHORIZED,
                enroll_page(&auth.directory.title(), &session.user, &secret, Some(&e.to_string())),
            )
                .into_response())
        }
    };
    let codes =
        auth.store.enroll_totp(&session.user, &secret, step, now).await.map_err(|e| WebError::from(e).page())?;
    tracing::info!(account = %session.user, "second factor set up");
    auth.store.end_session(&id).await.map_err(|e| WebError::from(e).page())?;
    let new_id = auth
        .store
        .start_session(&session.user, Stage::Active, AuthMethod::PasswordTotp, now)
        .await
        .map_err(|e| WebError::from(e).page())?;
    let list: String = codes.iter().map(|c| format!("<li><code>{}</code></li>", escape(c))).collect();
    let body = format!(
        "<h1>Second factor set up</h1><p>Keep these recovery codes somewhere safe: each signs you in once if \
         your authenticator is lost. They are not shown again.</p><ul id=\"recovery-codes\">{list}</ul>\
         <p><a href=\"/\">Continue</a></p>"
    );
    Ok(with_cookie(Html(shell("Recovery codes", None, &body)).into_response(), session_cookie(&new_id)))
}

async fn post_logout<D: Directory>(
    State(auth): State<Auth<D>>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, Response> {
    let who = auth.identify(&headers, &Method::POST, Some(&form.csrf)).await.map_err(WebError::page)?;
    if let Some((id, _)) = auth.session(&headers).await.map_err(WebError::page)? {
        auth.store.end_session(&id).await.map_err(|e| WebError::from(e).page())?;
    }
    tracing::info!(account = %who.user.name, "signed out");
    Ok(with_cookie(Redirect::to("/login").into_response(), cleared_cookie()))
}

async fn post_logout_all<D: Directory>(
    State(auth): State<Auth<D>>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, Response> {
    let who = auth.identify(&headers, &Method::POST, Some(&form.csrf)).await.map_err(WebError::page)?;
    auth.store.end_sessions_of(&who.user.name).await.map_err(|e| WebError::from(e).page())?;
    tracing::info!(account = %who.user.name, "signed out everywhere");
    Ok(with_cookie(Redirect::to("/login").into_response(), cleared_cookie()))
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], STYLE)
        .into_response()
}

/// The tab icon, embedded (a browser asks for it on every site; a 404 would be a console error).
const FAVICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\"><rect width=\"16\" height=\"16\" rx=\"3\" fill=\"#0b5cad\"/><path d=\"M4 3h4a5 5 0 0 1 0 10H4z\" fill=\"#fff\"/></svg>";

async fn favicon() -> Response {
    ([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "max-age=86400")], FAVICON).into_response()
}

async fn healthz() -> &'static str {
    "ok"
}

/// The routes every workspace has: sign-in, second factor, enrollment, sign-out, the style sheet, `/healthz`.
pub fn auth_routes<D: Directory>() -> Router<Auth<D>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/static/datum.css", get(style))
        .route("/favicon.ico", get(favicon))
        .route("/login", get(get_login).post(post_login::<D>))
        .route("/login/totp", get(get_totp::<D>).post(post_totp::<D>))
        .route("/login/enroll", get(get_enroll::<D>).post(post_enroll::<D>))
        .route("/logout", axum::routing::post(post_logout::<D>))
        .route("/logout/all", axum::routing::post(post_logout_all::<D>))
}

/// Whether plain HTTP may be served on this address: loopback only (tests, a reverse proxy on the box).
pub fn plain_http_allowed(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// Refuses plain HTTP off loopback, saying what to do instead (a user error, before anything listens).
pub fn check_plain_http(addr: &SocketAddr) -> anyhow::Result<()> {
    if plain_http_allowed(addr) {
        return Ok(());
    }
    Err(crate::exit::user(format!(
        "plain HTTP is only served on a loopback address; {addr} is not one (remove plain_http, or listen on \
         127.0.0.1 behind a reverse proxy)"
    )))
}

/// Serves a router on a listener until `shutdown` completes: TLS when `tls` is given, plain HTTP otherwise.
/// Each request carries its connection's [`Peer`]. Connections are served on their own tasks; a failing
/// connection (a bad handshake, a reset) is logged and never stops the server.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    use tower::ServiceExt;

    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let router = router.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(Peer(peer));
                router.clone().oneshot(request.map(Body::new))
            });
            let builder = Builder::new(TokioExecutor::new());
            let result = match acceptor {
                Some(acceptor) => {
                    match tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => builder.serve_connection(TokioIo::new(tls), service).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, "TLS handshake failed: {e}");
                            return;
                        }
                        Err(_) => return,
                    }
                }
                None => builder.serve_connection(TokioIo::new(stream), service).await,
            };
            if let Err(e) = result {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(url_segment("plc 1/ä"), "plc%201%2F%C3%A4");
    }

    #[test]
    fn cookies_and_bearer_are_read_exactly() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; __Host-datum-session=abc; b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "__Host-datum"), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer  tok "));
        assert_eq!(bearer(&h), Some("tok"));
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("abc", "ab"));
    }
}
