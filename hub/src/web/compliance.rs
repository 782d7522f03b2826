//! Compliance with the shared templates in the dashboard: per site × template the version assigned and what the
//! plant reports running, the counts of its latest evaluation (waived results apart), and a drill-down to the
//! failing (asset, rule) pairs. The rows are `datum-hub compliance`'s (`commands::templates::compliance_rows`),
//! kept to the person's scope.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use datum_host::web::{escape, shell, url_segment, Identity, WebError};
use datum_shared::identity::Action;
use datum_shared::rollout::Failing;

use super::{internal, App};
use crate::commands::templates::{compliance_rows, ComplianceRow};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/compliance", get(page))
        .route("/compliance/{site}/{template}", get(detail))
        .route("/api/v1/compliance", get(api))
}

/// The rows of the sites the person sees.
async fn rows(app: &App, who: &Identity) -> Result<Vec<ComplianceRow>, WebError> {
    let all = compliance_rows(&app.store, None, None).await.map_err(internal)?;
    Ok(all.into_iter().filter(|r| who.user.sees_site(&r.site)).collect())
}

async fn api(State(app): State<App>, headers: HeaderMap) -> Result<Response, Response> {
    let who = app.allow(&headers, &Method::GET, None, Action::Read).await.map_err(WebError::json)?;
    Ok(Json(rows(&app, &who).await.map_err(WebError::json)?).into_response())
}

fn state_text(r: &ComplianceRow) -> String {
    match (&r.state, &r.site_version, &r.running) {
        (Some(s), Some(v), Some(run)) if run != v => format!("{v} {s}, runs {run}"),
        (Some(s), Some(v), _) => format!("{v} {s}"),
        _ => "not reported yet".into(),
    }
}

#[derive(serde::Deserialize, Default)]
struct PageQuery {
    /// One site's rows only (the landing page's link).
    site: Option<String>,
}

async fn page(
    State(app): State<App>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<PageQuery>,
) -> Result<Response, Response> {
    let who = app.allow(&headers, &Method::GET, None, Action::Read).await.map_err(WebError::page)?;
    let mut list = rows(&app, &who).await.map_err(WebError::page)?;
    if let Some(site) = q.site.as_deref().filter(|s| !s.is_empty()) {
        list.retain(|r| r.site == site);
    }
    let table: String = list
        .iter()
        .map(|r| {
            let href = format!("/compliance/{}/{}", url_segment(&r.site), url_segment(&r.template));
            let link = |n: u64, bad: bool| {
                if n == 0 {
                    "0".to_string()
                } else {
                    format!("<a{} href=\"{href}\">{n}</a>", if bad { " class=\"bad\"" } else { "" })
                }
            };
            let verdict = match r.compliant {
                None => "-".to_string(),
                Some(true) => "<span class=\"good\">compliant</span>".into(),
                Some(false) => "<span class=\"bad\">non-compliant</span>".into(),
            };
            format!(
                "<tr><td><a href=\"/sites/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{verdict}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                url_segment(&r.site),
                escape(&r.site),
                escape(&r.template),
                escape(&r.assigned_version),
                escape(&state_text(r)),
                r.counts.compliant,
                link(r.counts.non_compliant, true),
                link(r.counts.error, true),
                link(r.counts.waived, false),
                r.counts.not_applicable,
            )
        })
        .collect();
    let body = if list.is_empty() {
        "<h1>Compliance</h1><p id=\"compliance-empty\">No template is assigned to the sites you see.</p>".to_string()
    } else {
        format!(
            "<h1>Compliance</h1><p class=\"small\">Per site and shared template: the version assigned, what the plant \
             reports, and its latest evaluation. Waived results (an approved, unexpired waiver at the plant) are \
             counted apart.</p><table id=\"compliance\"><thead><tr><th>Site</th><th>Template</th><th>Assigned</th>\
             <th>At the plant</th><th>Result</th><th>Compliant</th><th>Non-compliant</th><th>Errors</th>\
             <th>Waived</th><th>n/a</th></tr></thead><tbody>{table}</tbody></table>"
        )
    };
    Ok(Html(shell("Compliance", Some(&who), &body)).into_response())
}

fn failing_table(list: &[Failing], id: &str) -> String {
    if list.is_empty() {
        return format!("<p class=\"small\" id=\"{id}\">None.</p>");
    }
    let rows: String = list
        .iter()
        .map(|f| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                escape(&f.asset),
                escape(&f.rule),
                escape(f.config.as_deref().unwrap_or("-")),
                escape(&f.result),
                escape(&f.detail)
            )
        })
        .collect();
    format!(
        "<table id=\"{id}\"><thead><tr><th>Asset</th><th>Rule</th><th>Configuration</th><th>Result</th>\
         <th>Detail</th></tr></thead><tbody>{rows}</tbody></table>"
    )
}

async fn detail(
    State(app): State<App>,
    headers: HeaderMap,
    Path((site, template)): Path<(String, String)>,
) -> Result<Response, Response> {
    let who = app.allow(&headers, &Method::GET, None, Action::Read).await.map_err(WebError::page)?;
    let list = rows(&app, &who).await.map_err(WebError::page)?;
    let r = list.iter().find(|r| r.site == site && r.template == template).ok_or_else(|| {
        WebError::NotFound(format!("no template {template} is assigned to a site named {site}")).page()
    })?;
    let body = format!(
        "<h1>{} at <a href=\"/sites/{}\">{}</a></h1><p>Assigned {}; at the plant: {}; evaluated {} at {}.</p>\
         <h2>Failing ({}{})</h2>{}<h2>Waived ({})</h2>{}",
        escape(&r.template),
        url_segment(&r.site),
        escape(&r.site),
        escape(&r.assigned_version),
        escape(&state_text(r)),
        escape(r.evaluated_version.as_deref().unwrap_or("-")),
        escape(r.evaluated_at.as_deref().unwrap_or("-")),
        r.failing.len(),
        if r.unlisted > 0 { format!(", and {} more not listed", r.unlisted) } else { String::new() },
        failing_table(&r.failing, "failing"),
        r.waived.len(),
        failing_table(&r.waived, "waived"),
    );
    Ok(Html(shell("Compliance", Some(&who), &body)).into_response())
}
