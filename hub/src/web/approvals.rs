//! The inbox of central approvals (`commands::central`): the page and its form, and the API. Reading the inbox
//! is reading (any hub role, within scope); deciding is `security-officer`'s, with a fresh second factor
//! (never with an API token alone), and a CSRF check for a session.

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use datum_host::exit::UserError;
use datum_host::web::{csrf_field, escape, shell, url_segment, Directory as _, Identity, Peer, WebError};
use datum_shared::central::CentralDecision;
use datum_shared::identity::Action;
use serde::Deserialize;

use super::{internal, App};
use crate::commands::central::{self, Decision, InboxItem};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/approvals", get(inbox_page))
        .route("/approvals/{site}/{change}", post(decide_form))
        .route("/api/v1/approvals", get(inbox_api))
        .route("/api/v1/approvals/{site}/{change}/{verb}", post(decide_api))
}

/// A refusal of the domain is the person's to fix (409, or 404 for what does not exist); anything else 500.
fn domain(e: anyhow::Error) -> WebError {
    match e.downcast_ref::<UserError>() {
        Some(u) if u.0.contains("does not exist") => WebError::NotFound(u.0.clone()),
        Some(u) => WebError::Conflict(u.0.clone()),
        None => internal(e),
    }
}

async fn items(app: &App, who: &Identity) -> Result<Vec<InboxItem>, WebError> {
    let sites = app.sites(&who.user).await?;
    let key = app.signing.verifying_key();
    central::inbox(&app.store, &sites, &key, app.now()).await.map_err(internal)
}

async fn inbox_api(State(app): State<App>, headers: HeaderMap) -> Result<Response, Response> {
    let who = app.allow(&headers, &Method::GET, None, Action::Read).await.map_err(WebError::json)?;
    Ok(Json(items(&app, &who).await.map_err(WebError::json)?).into_response())
}

async fn inbox_page(State(app): State<App>, headers: HeaderMap) -> Result<Response, Response> {
    let who = app.allow(&headers, &Method::GET, None, Action::Read).await.map_err(WebError::page)?;
    let list = items(&app, &who).await.map_err(WebError::page)?;
    let may_decide = datum_shared::identity::authorize(&who.user, Action::DecideCentral).is_ok();
    let mut body = format!(
        "<h1>Central approvals ({})</h1><p class=\"small\">Changes and waivers the sites' policies send to the hub. \
         An approval covers the present content: an edit at the plant makes it stale.</p>",
        list.len()
    );
    if list.is_empty() {
        body.push_str("<p id=\"inbox-empty\">Nothing waits for a decision.</p>");
    }
    for item in &list {
        let site = url_segment(&item.site);
        let drift: String = item
            .drift
            .iter()
            .map(|d| {
                format!(
                    "<li class=\"bad\">{} {}: {}</li>",
                    escape(d.asset.as_str()),
                    escape(d.slot.as_ref().map(|s| s.as_str()).unwrap_or("-")),
                    escape(&d.detail)
                )
            })
            .collect();
        let failing: Vec<String> = item
            .compliance
            .iter()
            .map(|c| {
                format!("{} {} on {} ({})", escape(&c.template), escape(&c.rule), escape(&c.asset), escape(&c.result))
            })
            .collect();
        let why = format!(
            "<p class=\"small\">Why here: {}. Central state: {}. Content SHA-256 <code>{}</code></p>\
             <p class=\"small\">Standards on these assets, as the plant last reported: {}</p>",
            escape(&item.rule),
            item.state.as_str(),
            item.content,
            if failing.is_empty() { "nothing failing".to_string() } else { format!("failing {}", failing.join("; ")) }
        );
        if let Some(c) = &item.change {
            let approvals: Vec<String> = c.approvals.iter().map(|a| escape(&a.by)).collect();
            body.push_str(&format!(
                "<section class=\"card\" id=\"inbox-{site}-{id}\"><h2><a href=\"/sites/{site}/changes/{id}\">{}</a> {id} {}</h2>\
                 <p>{}{} · risk {} · {} · requested by {} · approved at the plant by {}</p>{why}\
                 <p>Assets: {}</p><ul>{drift}</ul>",
                escape(&item.site),
                escape(&c.draft.title),
                if c.draft.emergency { "<strong class=\"bad\">EMERGENCY</strong> · " } else { "" },
                escape(&c.draft.reason),
                c.draft.risk,
                c.state.as_str(),
                escape(&c.requester),
                if approvals.is_empty() { "nobody yet".to_string() } else { approvals.join(", ") },
                c.draft
                    .assets
                    .iter()
                    .map(|a| format!(
                        "<a href=\"/sites/{site}/assets/{}\">{}</a>",
                        url_segment(a.as_str()),
                        escape(a.as_str())
                    ))
                    .collect::<Vec<_>>()
                    .join(", "),
                id = c.id,
            ));
        } else if let Some(w) = &item.waiver {
            let asset = escape(w.asset.as_str());
            body.push_str(&format!(
                "<section class=\"card\" id=\"inbox-{site}-{id}\"><h2>{} waiver {id}: {} {} on \
                 <a href=\"/sites/{site}/assets/{}\">{asset}</a></h2>\
                 <p>{} · until {} · requested by {} · {} at the plant{}</p>{why}<ul>{drift}</ul>",
                escape(&item.site),
                escape(&w.template),
                escape(&w.rule),
                url_segment(w.asset.as_str()),
                escape(&w.reason),
                w.expires.format("%Y-%m-%d %H:%M UTC"),
                escape(&w.requester),
                w.state.as_str(),
                w.decided_by.as_deref().map(|b| format!(" by {}", escape(b))).unwrap_or_default(),
                id = escape(&item.id),
            ));
        }
        if may_decide {
            body.push_str(&format!(
                "<form method=\"post\" action=\"/approvals/{site}/{id}\" class=\"card\">{}\
                 <input type=\"hidden\" name=\"content\" value=\"{}\">\
                 <label>Reason <input name=\"reason\" required></label>\
                 <label>Your current TOTP code <input name=\"code\" autocomplete=\"one-time-code\" inputmode=\"numeric\" required></label>\
                 <button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button> \
                 <button type=\"submit\" name=\"decision\" value=\"reject\" class=\"secondary\">Reject</button></form>",
                csrf_field(&who),
                item.content,
                id = escape(&item.id),
            ));
        }
        body.push_str("</section>");
    }
    Ok(Html(shell("Central approvals", Some(&who), &body)).into_response())
}

#[derive(Deserialize)]
struct DecideForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    content: String,
}

/// One decision asked for, from the form or the API.
struct Ask<'a> {
    site: &'a str,
    change: &'a str,
    approve: bool,
    reason: &'a str,
    code: Option<&'a str>,
    content: Option<&'a str>,
}

/// Decides for the person: authorized, second factor confirmed, site within scope, the domain's rules.
async fn decide(
    app: &App,
    who: &Identity,
    peer: Option<axum::Extension<Peer>>,
    ask: Ask<'_>,
) -> Result<CentralDecision, WebError> {
    let overview = app.site(&who.user, ask.site).await?;
    let decision = Decision {
        subject: ask.change,
        approve: ask.approve,
        reason: ask.reason,
        content: ask.content,
        by: &who.user.name,
        now: app.now(),
    };
    let checked = central::check(&app.store, &overview, decision).await.map_err(domain)?;
    // The second factor last: a decision the rules refuse does not use up a code.
    app.auth.confirm_second_factor(who, ask.code, datum_host::web::source(peer)).await?;
    central::record(&app.store, &app.signing, &app.auth.directory.title(), &overview, checked).await.map_err(domain)
}

async fn decide_form(
    State(app): State<App>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    Path((site, change)): Path<(String, String)>,
    Form(form): Form<DecideForm>,
) -> Result<Response, Response> {
    let who =
        app.allow(&headers, &Method::POST, Some(&form.csrf), Action::DecideCentral).await.map_err(WebError::page)?;
    let approve = match form.decision.as_str() {
        "approve" => true,
        "reject" => false,
        other => return Err(WebError::BadRequest(format!("no decision {other:?} (approve or reject)")).page()),
    };
    let content = Some(form.content.as_str()).filter(|c| !c.is_empty());
    let ask = Ask { site: &site, change: &change, approve, reason: &form.reason, code: Some(&form.code), content };
    decide(&app, &who, peer, ask).await.map_err(WebError::page)?;
    Ok(Redirect::to("/approvals").into_response())
}

#[derive(Deserialize, Default)]
struct DecideBody {
    #[serde(default)]
    reason: String,
    /// The current TOTP code (or a recovery code).
    #[serde(default)]
    totp: Option<String>,
    /// The content hash seen in the inbox; refused when the change moved on since.
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    csrf: Option<String>,
}

async fn decide_api(
    State(app): State<App>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    Path((site, change, verb)): Path<(String, String, String)>,
    body: Option<Json<DecideBody>>,
) -> Result<Response, Response> {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let who = app
        .allow(&headers, &Method::POST, body.csrf.as_deref(), Action::DecideCentral)
        .await
        .map_err(WebError::json)?;
    let approve = match verb.as_str() {
        "approve" => true,
        "reject" => false,
        _ => return Err(WebError::NotFound(format!("no decision {verb:?} (approve or reject)")).json()),
    };
    let ask = Ask {
        site: &site,
        change: &change,
        approve,
        reason: &body.reason,
        code: body.totp.as_deref(),
        content: body.content.as_deref(),
    };
    let decision = decide(&app, &who, peer, ask).await.map_err(WebError::json)?;
    Ok(Json(decision).into_response())
}
