//! The dashboard's pages: every site's state on one page, a site read-only from the hub's copy, the
//! cross-site inventory with its facets and exports, and search. Every count links to the list it counts,
//! and both come from the same `Findings` (or the same inventory query).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use datum_host::web::{escape, shell, url_segment, Identity, WebError};
use datum_shared::csv_import::{row_of, COLUMNS};
use datum_shared::identity::Action;
use datum_shared::model::Asset;
use serde::Deserialize;

use super::{internal, App, Filter};
use crate::commands::overview::{state_named, Findings, Health, Overview, SiteStatus};
use crate::store::HealthRow;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/", get(landing))
        .route("/sites/{site}", get(site_page))
        .route("/sites/{site}/drift", get(site_drift))
        .route("/sites/{site}/backups", get(site_backups))
        .route("/sites/{site}/reviews", get(site_reviews))
        .route("/sites/{site}/changes", get(site_changes))
        .route("/sites/{site}/changes/{id}", get(change_page))
        .route("/sites/{site}/violations", get(site_violations))
        .route("/sites/{site}/records", get(site_records))
        .route("/sites/{site}/audit", get(site_audit))
        .route("/sites/{site}/assets/{asset}", get(asset_page))
        .route("/sites/{site}/assets/{asset}/versions/{slot}/{n}", get(download))
        .route("/sites/{site}/assets/{asset}/diff/{slot}/{from}/{to}", get(diff_page))
        .route("/assets", get(inventory))
        .route("/search", get(search_page))
}

type PageResult = Result<Response, Response>;

async fn reader(app: &App, headers: &HeaderMap) -> Result<Identity, Response> {
    app.allow(headers, &Method::GET, None, Action::Read).await.map_err(WebError::page)
}

fn page(title: &str, who: &Identity, body: &str) -> Response {
    Html(shell(title, Some(who), body)).into_response()
}

fn site_href(site: &str) -> String {
    format!("/sites/{}", url_segment(site))
}

/// A count as a link to the list it counts (a zero is shown plainly).
fn count_link(n: usize, href: &str, bad: bool) -> String {
    if n == 0 {
        return "0".into();
    }
    let class = if bad { " class=\"bad\"" } else { "" };
    format!("<a{class} href=\"{}\">{n}</a>", escape(href))
}

/// Backup coverage: assets overdue (backup or restore test), and of what kind: never captured, restore test
/// failing; each count opens its list.
fn backup_cell(s: &SiteStatus, base: &str) -> String {
    let mut cell = count_link(s.overdue_backups, &format!("{base}/backups"), true);
    if s.backups_never > 0 || s.restores_failing > 0 {
        cell.push_str(&format!(
            " <span class=\"small\">({} never captured, {} restore failing)</span>",
            count_link(s.backups_never, &format!("{base}/backups?only=never"), true),
            count_link(s.restores_failing, &format!("{base}/backups?only=failing"), true),
        ));
    }
    cell
}

fn health_badge(s: &SiteStatus) -> String {
    format!(
        "<span class=\"health health-{h}\" title=\"{why}\">{h}</span>",
        h = s.health.as_str(),
        why = escape(&s.reasons.join("; "))
    )
}

/// A site's state over the last `days` days as an inline SVG (no script, nothing from elsewhere): one bar a
/// day, coloured by that day's worst state, grey where the hub has no record; each bar's title says the day.
fn trend(history: &[HealthRow], today: chrono::DateTime<chrono::Utc>, days: i64, id: &str) -> String {
    let (bar, step, height) = (4, 5, 14);
    let mut bars = String::new();
    for i in 0..days {
        let day = (today - chrono::Duration::days(days - 1 - i)).format("%Y-%m-%d").to_string();
        let (class, title) = match history.iter().find(|r| r.day == day) {
            Some(r) => {
                let h = Health::from_rank(r.health);
                (
                    h.as_str(),
                    format!(
                        "{day}: {}, {} unauthorized drift, {} backups and {} reviews overdue, {} open changes",
                        h.as_str(),
                        r.unauthorized_drift,
                        r.overdue_backups,
                        r.overdue_reviews,
                        r.open_changes
                    ),
                )
            }
            None => ("none", format!("{day}: no record")),
        };
        bars.push_str(&format!(
            "<rect x=\"{}\" y=\"0\" width=\"{bar}\" height=\"{height}\" class=\"trend-{class}\"><title>{}</title></rect>",
            i * step,
            escape(&title)
        ));
    }
    let width = days * step;
    format!(
        "<svg class=\"trend\" id=\"{id}\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" \
         role=\"img\" aria-label=\"state over the last {days} days\">{bars}</svg>"
    )
}

/// A stored time as people read it (`2026-12-05 08:33 UTC`), the exact value on hover.
fn when(stored: Option<&str>) -> String {
    match stored {
        None => "never".into(),
        Some(t) => match crate::store::parse_time(t) {
            Ok(at) => format!(
                "<time datetime=\"{}\" title=\"{}\">{}</time>",
                escape(t),
                escape(t),
                at.format("%Y-%m-%d %H:%M UTC")
            ),
            Err(_) => escape(t),
        },
    }
}

fn sync_text(s: &SiteStatus) -> &'static str {
    if s.revoked {
        "revoked"
    } else if !s.enrolled {
        "pending"
    } else if s.stale {
        "stale"
    } else if s.in_sync {
        "in sync"
    } else {
        "behind"
    }
}

fn table(header: &[&str], rows: &[Vec<String>], id: &str) -> String {
    let head: String = header.iter().map(|h| format!("<th>{}</th>", escape(h))).collect();
    let body: String = rows
        .iter()
        .map(|r| format!("<tr>{}</tr>", r.iter().map(|c| format!("<td>{c}</td>")).collect::<String>()))
        .collect();
    if rows.is_empty() {
        return format!("<p class=\"small\" id=\"{id}\">None.</p>");
    }
    format!("<table id=\"{id}\"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
}

/// The landing page: one row per site the person sees, worst first.
async fn landing(State(app): State<App>, headers: HeaderMap) -> PageResult {
    let who = reader(&app, &headers).await?;
    let mut sites = app.sites(&who.user).await.map_err(WebError::page)?;
    sites.sort_by(|a, b| b.status.health.cmp(&a.status.health).then_with(|| a.row.name.cmp(&b.row.name)));
    let now = app.now();
    let standards = app.standards().await.map_err(|e| internal(e).page())?;
    let rows: Vec<Vec<String>> =
        sites.iter().map(|o| landing_row(o, now, standards.get(&o.row.name).copied())).collect();
    let header = [
        "Site",
        "State",
        "30 days",
        "Sync",
        "Last contact",
        "Assets",
        "Unauthorized drift",
        "Backups and restore tests overdue",
        "Reviews overdue",
        "Open changes",
        "Standards failing (waived)",
        "Audit trail",
        "Certificate",
        "Violations",
        "Files missing",
    ];
    let body = format!(
        "<h1>Sites</h1><p class=\"small\">{} sites; the state is the worst of each site's findings (hover for the \
         reasons). Every count opens the list it counts.</p>{}",
        sites.len(),
        table(&header, &rows, "sites")
    );
    Ok(page("Sites", &who, &body))
}

fn landing_row(o: &Overview, now: chrono::DateTime<chrono::Utc>, standards: Option<(u64, u64)>) -> Vec<String> {
    let s = &o.status;
    let base = site_href(&s.site);
    let name = s.display.as_deref().map(|d| format!(" <span class=\"small\">{}</span>", escape(d))).unwrap_or_default();
    let by_state: Vec<String> = s
        .changes_by_state
        .iter()
        .map(|(state, n)| format!("<a class=\"small\" href=\"{base}/changes?state={state}\">{n} {state}</a>"))
        .collect();
    let by_state = if by_state.is_empty() { String::new() } else { format!(" ({})", by_state.join(", ")) };
    vec![
        format!("<a href=\"{base}\">{}</a>{name}", escape(&s.site)),
        health_badge(s),
        trend(&o.history, now, 30, &format!("trend-{}", s.site)),
        sync_text(s).to_string(),
        when(s.last_contact.as_deref()),
        count_link(s.assets, &format!("/assets?site={}&scope=in", url_segment(&s.site)), false),
        count_link(s.unauthorized_drift, &format!("{base}/drift"), true),
        backup_cell(s, &base),
        count_link(s.overdue_reviews, &format!("{base}/reviews"), true),
        format!("{}{by_state}", count_link(s.open_changes, &format!("{base}/changes"), false)),
        match standards {
            None => "-".into(),
            Some((failing, waived)) => {
                let href = format!("/compliance?site={}", url_segment(&s.site));
                let failing = usize::try_from(failing).unwrap_or(usize::MAX);
                let waived = usize::try_from(waived).unwrap_or(usize::MAX);
                format!(
                    "{} <span class=\"small\">({} waived)</span>",
                    count_link(failing, &href, true),
                    count_link(waived, &href, false)
                )
            }
        },
        match (&s.history_rolled_back, s.audit_witnessed) {
            (Some(_), _) => format!("<a class=\"bad\" href=\"{base}/violations\">rolled back</a>"),
            (None, Some(seq)) => format!("<a href=\"{base}/audit\">#{seq} witnessed</a>"),
            (None, None) => "-".into(),
        },
        match (&s.cert_expires, s.cert_days_left) {
            (Some(at), Some(days)) => {
                let bad = days < crate::commands::overview::CERT_WARNING_DAYS;
                format!(
                    "<span{}>{}</span>",
                    if bad { " class=\"bad\"" } else { "" },
                    escape(at.get(..10).unwrap_or(at))
                )
            }
            _ => "-".into(),
        },
        count_link(s.violations, &format!("{base}/violations"), true),
        s.files_missing.to_string(),
    ]
}

fn findings_of(o: &Overview) -> Result<&Findings, WebError> {
    o.findings.as_ref().ok_or_else(|| match &o.status.unreadable {
        Some(why) => WebError::Conflict(format!("the hub cannot read site {}'s records: {why}", o.row.name)),
        None => WebError::NotFound(format!("site {} has not enrolled yet: the hub holds nothing of it", o.row.name)),
    })
}

/// A site, read-only from the hub's copy: its state, the counts as links, its assets and open changes.
async fn site_page(State(app): State<App>, headers: HeaderMap, Path(site): Path<String>) -> PageResult {
    let who = reader(&app, &headers).await?;
    let o = app.site(&who.user, &site).await.map_err(WebError::page)?;
    let s = &o.status;
    let base = site_href(&s.site);
    let reasons: String = s.reasons.iter().map(|r| format!("<li>{}</li>", escape(r))).collect();
    let mut body = format!(
        "<h1>{} {}</h1><p class=\"small\">{}Sync: {} · last contact {} · last sync {} · files held {} (missing {})</p><ul id=\"reasons\">{reasons}</ul>",
        escape(&s.site),
        health_badge(s),
        s.display.as_deref().map(|d| format!("{} · ", escape(d))).unwrap_or_default(),
        sync_text(s),
        when(s.last_contact.as_deref()),
        when(s.last_synced.as_deref()),
        s.files_stored,
        s.files_missing,
    );
    body.push_str(&format!(
        "<p>Last 90 days: {}</p>",
        trend(&o.history, app.now(), crate::commands::overview::HISTORY_DAYS, "trend-90")
    ));
    let count = |label: &str, n: usize, href: String| {
        format!("<a class=\"count\" href=\"{}\"><span class=\"n\">{n}</span>{}</a>", escape(&href), escape(label))
    };
    body.push_str(&format!(
        "<div class=\"counts\">{}{}{}{}{}{}</div>",
        count("assets", s.assets, format!("/assets?site={}&scope=in", url_segment(&s.site))),
        count("unauthorized drift", s.unauthorized_drift, format!("{base}/drift")),
        count("backups or restore tests overdue", s.overdue_backups, format!("{base}/backups")),
        count("reviews overdue", s.overdue_reviews, format!("{base}/reviews")),
        count("open changes", s.open_changes, format!("{base}/changes")),
        count("violations recorded", s.violations, format!("{base}/violations")),
    ));
    body.push_str(&format!(
        "<p><a href=\"{base}/records\" id=\"site-records\">Restore tests and reviews</a> · \
         <a href=\"{base}/audit\" id=\"site-audit\">Who did what</a></p>"
    ));
    if let Some(f) = &o.findings {
        // The first page here; the whole list, paged by key, is the inventory's for this site.
        body.push_str("<h2>Assets</h2>");
        let reported = f.view.reported_assets().count();
        let first = f.view.reported_assets().take(super::PAGE).map(|a| (s.site.as_str(), a));
        body.push_str(&asset_table(first, "site-assets"));
        if reported > super::PAGE {
            body.push_str(&format!(
                "<p><a id=\"site-assets-more\" href=\"/assets?site={}&amp;scope=in\">The first {} of {reported} \
                 assets are shown: all of them, {} a page, in the inventory</a></p>",
                url_segment(&s.site),
                super::PAGE,
                super::PAGE
            ));
        }
        body.push_str("<h2>Open changes</h2>");
        body.push_str(&change_table(&s.site, f, &f.open_changes));
    }
    Ok(page(&s.site, &who, &body))
}

fn asset_table<'a>(assets: impl Iterator<Item = (&'a str, &'a Asset)>, id: &str) -> String {
    let rows: Vec<Vec<String>> = assets
        .map(|(site, a)| {
            let opt = |v: &Option<String>| escape(v.as_deref().unwrap_or("-"));
            vec![
                escape(site),
                format!(
                    "<a href=\"{}/assets/{}\">{}</a>",
                    site_href(site),
                    url_segment(a.name.as_str()),
                    escape(a.name.as_str())
                ),
                a.kind.as_str().into(),
                opt(&a.vendor),
                opt(&a.model),
                opt(&a.serial),
                opt(&a.firmware),
                opt(&a.zone),
                a.criticality.as_str().into(),
                opt(&a.owner),
                if a.is_active() { "active".into() } else { "retired".into() },
            ]
        })
        .collect();
    table(
        &["Site", "Asset", "Kind", "Vendor", "Model", "Serial", "Firmware", "Zone", "Criticality", "Owner", "State"],
        &rows,
        id,
    )
}

fn change_table(site: &str, f: &Findings, ids: &[datum_shared::ChangeId]) -> String {
    let rows: Vec<Vec<String>> = ids
        .iter()
        .filter_map(|id| f.view.changes.get(id))
        .map(|c| {
            vec![
                format!("<a href=\"{}/changes/{}\">{}</a>", site_href(site), c.id, c.id),
                escape(&c.draft.title),
                c.state.as_str().into(),
                c.draft.risk.to_string(),
                escape(&c.requester),
                format!("{}/{}", c.approvals.len(), c.required_approvals),
                if c.draft.emergency { "emergency".into() } else { String::new() },
            ]
        })
        .collect();
    table(&["Change", "Title", "State", "Risk", "Requested by", "Approvals", ""], &rows, "changes")
}

async fn site_drift(State(app): State<App>, headers: HeaderMap, Path(site): Path<String>) -> PageResult {
    let who = reader(&app, &headers).await?;
    let o = app.site(&who.user, &site).await.map_err(WebError::page)?;
    let f = findings_of(&o).map_err(WebError::page)?;
    let rows: Vec<Vec<String>> = f
        .unauthorized_drift
        .iter()
        .map(|e| {
            vec![
                format!(
                    "<a href=\"{}/assets/{}\">{}</a>",
                    site_href(&o.row.name),
                    url_segment(e.asset.as_str()),
                    escape(e.asset.as_str())
                ),
                escape(e.slot.as_ref().map(|s| s.as_str()).unwrap_or("-")),
                e.criticality.as_str().into(),
                e.baseline_version.map(|v| v.to_string()).unwrap_or_default(),
                e.latest_version.map(|v| v.to_string()).unwrap_or_default(),
                escape(&e.detail),
            ]
        })
        .collect();
    let body = format!(
        "<h1>{}: unauthorized drift ({})</h1><p class=\"small\">Configurations that differ from the approved baseline \
         with no change authorizing them.</p>{}",
        escape(&o.row.name),
        rows.len(),
        table(&["Asset", "Slot", "Criticality", "Baseline", "Latest", "Detail"], &rows, "drift")
    );
    Ok(page("Unauthorized drift", &who, &body))
}

#[derive(Deserialize, Default)]
struct BackupQuery {
    /// `never` (never captured) or `failing` (newest restore test failed); else every asset overdue.
    only: Option<String>,
}

async fn site_backups(
    State(app): State<App>,
    headers: HeaderMap,
    Path(site): Path<String>,
    Query(q): Query<BackupQuery>,
) -> PageResult {
    let who = reader(&app, &headers).await?;
    let o = app.site(&who.user, &site).await.map_err(WebError::page)?;
    let f = findings_of(&o).map_err(WebError::page)?;
    let policy = site_policy(&app, &o).await?;
    let now = app.now();
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into());
    let (list, title) = match q.only.as_deref() {
        Some("never") => (&f.backups_never, "assets never captured"),
        Some("failing") => (&f.restores_failing, "assets whose newest restore test failed"),
        None | Some("") => (&f.overdue_backups, "backups and restore tests overdue"),
        Some(other) => {
            return Err(WebError::BadRequest(format!("no list {other:?} (never or failing)")).page());
        }
    };
    let rows: Vec<Vec<String>> = list
        .iter()
        .filter_map(|n| f.view.assets.get(n))
        .map(|a| {
            let b = f.view.backup_state(a, now, &policy);
            vec![
                asset_link(&o.row.name, a),
                a.criticality.as_str().into(),
                format!(
                    "{}{}",
                    when(b.last_backup),
                    if b.backup_overdue { " <span class=\"bad\">overdue</span>" } else { "" }
                ),
                format!(
                    "{}{}",
                    when(b.last_test),
                    if b.test_overdue { " <span class=\"bad\">overdue</span>" } else { "" }
                ),
            ]
        })
        .collect();
    let body = format!(
        "<h1>{}: {title} ({})</h1>{}",
        escape(&o.row.name),
        rows.len(),
        table(&["Asset", "Criticality", "Last backup", "Last passing restore test"], &rows, "backups")
    );
    Ok(page("Backups overdue", &who, &body))
}

async fn site_reviews(State(app): State<App>, headers: HeaderMap, Path(site): Path<String>) -> PageResult {
    let who = reader(&app, &headers).await?;
    let o = app.site(&who.user, &site).await.map_err(WebError::page)?;
    let f = findings_of(&o).map_err(WebError::page)?;
    let policy = site_policy(&app, &o).await?;
    let now = app.now();
    let rows: Vec<Vec<String>> = f
        .overdue_reviews
        .iter()
        .filter_map(|n| f.view.assets.get(n))
        .map(|a| {
            let r = f.view.review_state(a, now, &policy);
            vec![
                asset_link(&o.row.name, a),
                a.criticality.as_str().into(),
                r.last.map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into()),
                r.due_at.to_rfc3339(),
            ]
        })
        .collect();
    let body = format!(
        "<h1>{}: reviews overdue ({})</h1>{}",
        escape(&o.row.name),
        rows.len(),
        table(&["Asset", "Criticality", "Last review", "Due"], &rows, "reviews")
    );
    Ok(page("Reviews overdue", &who, &body))
}

/// The most rows of each table on the records and audit pages (the newest).
const RECORDS_SHOWN: usize = 500;

/// A site's restore tests and reviews, newest first, from the hub's copy.
async fn site_records(State(app): State<App>, headers: HeaderMap, Path(site): Path<String>) -> PageResult {
    let who = reader(&app, &headers).await?;
    let o = app.site(&who.user, &site).await.map_err(WebError::page)?;
    let f = findings_of(&o).map_err(WebError::page)?;
    let mut tests: Vec<_> = f.view.restore_tests.iter().collect();
    tests.sort_by_key(|t| std::cmp::Reverse(t.tested_at));
    let test_rows: Vec<Vec<String>> = tests
        .iter()
        .take(RECORDS_SHOWN)
        .map(|t| {
            vec![
                t.tested_at.to_rfc3339(),
                escape(t.asset.as_str()),
                format!("{} v{}", escape(t.slot.as_str()), t.version),
                format!("{:?}", t.result).to_lowercase(),
                escape(&t.method),
                escape(&t.tested_by),
                escape(t.notes.as_deref().unwrap_or("")),
            ]
        })
        .collect();
    let mut reviews: Vec<_> = f.view.reviews.iter().collect();
    reviews.sort_by_key(|r| std::cmp::Reverse(r.reviewed_at));
    let review_rows: Vec<Vec<String>> = reviews
        .iter()
        .take(RECORDS_SHOWN)
        .map(|r| {
            vec![
                r.reviewed_at.to_rfc3339(),
                escape(&r.assets.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ")),
                escape(r.zone.as_deref().unwrap_or("")),
                format!("{:?}", r.outcome).to_lowercase(),
                r.drift.len().to_string(),
                escape(&r.reviewed_by),
                escape(&r.notes),
            ]
        })
        .collect();
    let shown =
        |n: usize| if n > RECORDS_SHOWN { format!(" (the newest {RECORDS_SHOWN} of {n})") } else { String::new() };
    let body = format!(
        "<h1>{}: restore tests and reviews</h1><h2>Restore tests{}</h2>{}<h2>Reviews{}</h2>{}",
        escape(&o.row.name),
        shown(tests.len()),
        table(&["Tested", "Asset", "Version", "Result", "Method", "By", "Notes"], &test_rows, "restore-tests"),
        shown(reviews.len()),
        table(&["Reviewed", "Assets", "Zone", "Outcome", "Drift found", "By", "Notes"], &review_rows, "review-list"),
    );
    Ok(page("Restore tests and reviews", &who, &body))
}

/// A site's record of who did what, from the hub's copy of its documents: each change's operation, person,
/// subject and reason as the plant wrote them, newest first. The signed audit trail itself stays at the plant;
/// the hub shows the newest entry it witnessed.
async fn site_audit(State(app): State<App>, headers: HeaderMap, Path(site): Path<String>) -> PageResult {
    let who = reader(&app, &headers).await?;
    let o = app.site(&who.user, &site).await.map_err(WebError::page)?;
    let site_id = o.row.site_id.clone().ok_or_else(|| {
        WebError::NotFound(format!("site {} has not enrolled yet: the hub holds nothing of it", o.row.name)).page()
    })?;
    let entries = crate::commands::overview::site_history(&app.store, &site_id, RECORDS_SHOWN)
        .await
        .map_err(|e| internal(e).page())?;
    let head = app.store.audit_head(&o.row.name).await.map_err(|e| internal(e.into()).page())?;
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.at.to_rfc3339(),
                escape(&e.info.actor),
                escape(&e.info.op),
                escape(&e.info.subject),
                escape(e.info.reason.as_deref().unwrap_or("")),
                escape(&e.doc),
            ]
        })
        .collect();
    let witnessed = match head {
        Some(h) => format!(
            "The newest entry of the plant's signed audit trail the hub witnessed: #{} <code>{}</code> ({}).",
            h.seq,
            escape(&h.hash),
            escape(&h.at)
        ),
        None => "The hub has witnessed no entry of the plant's signed audit trail yet.".into(),
    };
    let body = format!(
        "<h1>{}: who did what (the newest {})</h1><p class=\"small\">{witnessed} The trail's entries stay at the \
         plant; this list is read from the hub's copy of the site's documents.</p>{}",
        escape(&o.row.name),
        rows.len(),
        table(&["When", "Who", "Operation", "Subject", "Reason", "Document"], &rows, "audit")
    );
    Ok(page("Who did what", &who, &body))
}

async fn site_policy(app: &App, o: &Overview) -> Result<datum_shared::policy::Policy, Response> {
    let Some(site_id) = &o.row.site_id else { return Ok(Default::default()) };
    crate::commands::templates::site_policy(&app.store, site_id).await.map_err(|e| internal(e).page())
}

fn asset_link(site: &str, a: &Asset) -> String {
    format!("<a href=\"{}/assets/{}\">{}</a>", site_href(site), url_segment(a.name.as_str()), escape(a.name.as_str()))
}

#[derive(Deserialize, Default)]
struct StateQuery {
    state: Option<String>,
}

/// A site's open changes, or those in one state (`?state=submitted`): the links of the landing page.
async fn site_changes(
    State(app): State<App>,
    headers: HeaderMap,
    Path(site): Path<String>,
    Query(q): Query<StateQuery>,
) -> PageResult {
    let who = reader(&app, &headers).await?;
    let o = app.site(&who.user, &site).await.map_err(WebError::page)?;
    let f = findings_of(&o).map_err(WebError::page)?;
    let ids = changes_in(f, q.state.as_deref()).map_err(WebError::page)?;
    let title = match &q.state {
        Some(s) => format!("changes {s}"),
        None => "open changes".to_string(),
    };
    let body = format!(
        "<h1>{}: {} ({})</h1>{}",
        escape(&o.row.name),
        escape(&title),
        ids.len(),
        change_table(&o.row.name, f, &ids)
    );
    Ok(page("Changes", &who, &body))
}

/// The open changes, or those in the state named (any state, open or not).
pub fn changes_in(f: &Findings, state: Option<&str>) -> Result<Vec<datum_shared::ChangeId>, WebError> {
    match state {
        None => Ok(f.open_changes.clone()),
        Some(name) => {
            let state =
                state_named(name).ok_or_else(|| WebError::BadRequest(format!("no change state named {name}")))?;
            Ok(f.view.changes.values().filter(|c| c.state == state).map(|c| c.id).collect())
        }
    }
}

async fn change_page(
    State(app): State<App>,
    headers: HeaderMap,
    Path((site, id)): Path<(String, String)>,
) -> PageResult {
    let who = reader(&app, &headers).await?;
    let o = app.site(&who.user, &site).await.map_err(WebError::page)?;
    let f = findings_of(&o).map_err(WebError::page)?;
    let missing = || WebError::NotFound(format!("no change {id} at {site}")).page();
    let cid: datum_shared::ChangeId = id.parse().map_err(|_| missing())?;
    let c = f.view.changes.get(&cid).ok_or_else(missing)?;
    let stamp = |s: &Option<datum_shared::change::Stamp>| {
        s.as_ref().map(|s| format!("{} by {}", s.at.to_rfc3339(), escape(&s.by))).unwrap_or_else(|| "-".into())
    };
    let approvals: String =
        c.approvals.iter().map(|a| format!("<li>{} by {}</li>", a.at.to_rfc3339(), escape(&a.by))).collect();
    let assets: String = c
        .draft
        .assets
        .iter()
        .map(|a| {
            format!(
                "<a href=\"{}/assets/{}\">{}</a> ",
                site_href(&o.row.name),
                url_segment(a.as_str()),
                escape(a.as_str())
            )
        })
        .collect();
    let body = format!(
        "<h1>{} {}</h1><table id=\"change\"><tbody>\
         <tr><th>State</th><td>{}</td></tr><tr><th>Risk</th><td>{}</td></tr><tr><th>Emergency</th><td>{}</td></tr>\
         <tr><th>Assets</th><td>{assets}</td></tr><tr><th>Reason</th><td>{}</td></tr><tr><th>Impact</th><td>{}</td></tr>\
         <tr><th>Rollback</th><td>{}</td></tr><tr><th>Requested</th><td>{} by {}</td></tr>\
         <tr><th>Submitted</th><td>{}</td></tr><tr><th>Approvals ({}/{})</th><td><ul>{approvals}</ul></td></tr>\
         <tr><th>Rejected</th><td>{}</td></tr><tr><th>Implemented</th><td>{}</td></tr>\
         <tr><th>Verified</th><td>{}</td></tr><tr><th>Closed</th><td>{}</td></tr></tbody></table>",
        c.id,
        escape(&c.draft.title),
        c.state.as_str(),
        c.draft.risk,
        if c.draft.emergency { "yes" } else { "no" },
        escape(&c.draft.reason),
        escape(&c.draft.impact),
        escape(&c.draft.rollback),
        c.created_at.to_rfc3339(),
        escape(&c.requester),
        stamp(&c.submitted),
        c.approvals.len(),
        c.required_approvals,
        stamp(&c.rejected),
        stamp(&c.implemented),
        stamp(&c.verified),
        stamp(&c.closed),
    );
    Ok(page(&format!("{} {}", o.row.name, c.id), &who, &body))
}

async fn site_violations(State(app): State<App>, headers: HeaderMap, Path(site): Path<String>) -> PageResult {
    let who = reader(&app, &headers).await?;
    let o = app.site(&who.user, &site).await.map_err(WebError::page)?;
    let list = app.store.violations(&o.row.name).await.map_err(|e| internal(e.into()).page())?;
    let rows: Vec<Vec<String>> =
        list.iter().rev().map(|(at, node, reason)| vec![escape(at), escape(node), escape(reason)]).collect();
    let body = format!(
        "<h1>{}: protocol violations ({})</h1><p class=\"small\">What the site's nodes sent that the hub refused, \
         newest first.</p>{}",
        escape(&o.row.name),
        rows.len(),
        table(&["At", "Node", "Reason"], &rows, "violations")
    );
    Ok(page("Violations", &who, &body))
}

/// One asset of a site: its fields and every stored version of each slot, each downloadable.
async fn asset_page(
    State(app): State<App>,
    headers: HeaderMap,
    Path((site, asset)): Path<(String, String)>,
) -> PageResult {
    let who = reader(&app, &headers).await?;
    let o = app.site(&who.user, &site).await.map_err(WebError::page)?;
    let f = findings_of(&o).map_err(WebError::page)?;
    let a = f
        .view
        .assets
        .values()
        .find(|a| a.name.as_str() == asset)
        .ok_or_else(|| WebError::NotFound(format!("no asset {asset} at {site}")).page())?;
    let mut body = format!("<h1>{} / {}</h1>", escape(&o.row.name), escape(a.name.as_str()));
    body.push_str(&asset_table(std::iter::once((o.row.name.as_str(), a)), "asset"));
    body.push_str("<h2>Versions</h2>");
    let mut rows = Vec::new();
    for ((an, slot), versions) in &f.view.versions {
        if an != &a.name {
            continue;
        }
        let baseline = f.view.baselines.get(&(an.clone(), slot.clone())).map(|b| b.version);
        let diff_href = |from: u32, to: u32| {
            format!(
                "{}/assets/{}/diff/{}/{from}/{to}",
                site_href(&o.row.name),
                url_segment(a.name.as_str()),
                url_segment(slot.as_str())
            )
        };
        for (i, v) in versions.iter().enumerate().rev() {
            let mut compare = Vec::new();
            if let Some(before) = i.checked_sub(1).map(|j| versions[j].version) {
                compare.push(format!("<a href=\"{}\">diff to v{before}</a>", diff_href(before, v.version)));
            }
            if let Some(b) =
                baseline.filter(|b| *b != v.version && i.checked_sub(1).map(|j| versions[j].version) != Some(*b))
            {
                compare.push(format!("<a href=\"{}\">diff to the baseline v{b}</a>", diff_href(b, v.version)));
            }
            rows.push(vec![
                escape(slot.as_str()),
                format!("{}{}", v.version, if baseline == Some(v.version) { " (baseline)" } else { "" }),
                escape(v.file_name.as_deref().unwrap_or("-")),
                format!("<code>{}</code>", escape(v.raw_hash.as_str())),
                v.size.to_string(),
                v.captured_at.to_rfc3339(),
                escape(&v.captured_by),
                format!(
                    "<a href=\"{}/assets/{}/versions/{}/{}\">download</a>",
                    site_href(&o.row.name),
                    url_segment(a.name.as_str()),
                    url_segment(slot.as_str()),
                    v.version
                ),
                compare.join(" · "),
            ]);
        }
    }
    body.push_str(&table(
        &["Slot", "Version", "File", "SHA-256", "Bytes", "Captured", "By", "", "Compare"],
        &rows,
        "versions",
    ));
    Ok(page(a.name.as_str(), &who, &body))
}

/// Two stored versions of one slot compared from the hub's copy: the located changes, noise hidden, secrets
/// masked by the normaliser (as on the plant's diff page; the raw text is not shown here).
async fn diff_page(
    State(app): State<App>,
    headers: HeaderMap,
    Path((site, asset, slot, from, to)): Path<(String, String, String, u32, u32)>,
) -> PageResult {
    use datum_shared::diff::compare_bytes;
    use datum_shared::normalize::{FingerprintKey, MAX_NORMALIZE_BYTES};
    let who = reader(&app, &headers).await?;
    let o = app.site(&who.user, &site).await.map_err(WebError::page)?;
    let f = findings_of(&o).map_err(WebError::page)?;
    let versions = f
        .view
        .versions
        .iter()
        .find(|((a, s), _)| a.as_str() == asset && s.as_str() == slot)
        .map(|(_, list)| list)
        .ok_or_else(|| WebError::NotFound(format!("no slot {slot} of {asset} at {site}")).page())?;
    let pick = |n: u32| versions.iter().find(|v| v.version == n);
    let (Some(old_v), Some(new_v)) = (pick(from), pick(to)) else {
        let n = if pick(from).is_none() { from } else { to };
        return Err(WebError::NotFound(format!("no version {n} of {asset} {slot} at {site}")).page());
    };
    let site_id = o.row.site_id.as_ref().ok_or_else(|| WebError::NotFound(format!("no site {site}")).page())?;
    let mut sides = Vec::new();
    for v in [old_v, new_v] {
        if v.size > MAX_NORMALIZE_BYTES as u64 {
            return Err(WebError::Conflict(format!(
                "v{} is {} bytes; comparisons are limited to {MAX_NORMALIZE_BYTES} bytes: download the versions instead",
                v.version, v.size
            ))
            .page());
        }
        let hash = v.raw_hash.as_str();
        let held = app.store.site_blob_size(site_id, hash).await.map_err(|e| internal(e.into()).page())?;
        let bytes = match held {
            Some(_) => {
                app.store.read_blob(hash, MAX_NORMALIZE_BYTES as u64).await.map_err(|e| internal(e.into()).page())?
            }
            None => None,
        };
        sides.push(bytes.ok_or_else(|| {
            WebError::Conflict(format!(
                "the hub does not hold v{} whole yet ({hash}); it arrives with the site's next sync",
                v.version
            ))
            .page()
        })?);
    }
    // The hub's own key for this site's secret fingerprints (the one its evidence packs use): a changed secret
    // shows as changed, never its value.
    let key = FingerprintKey::of_hub_for_site(&app.signing.to_bytes(), site_id.as_str());
    let name = new_v.file_name.clone();
    let (old, new) = (sides.remove(0), sides.remove(0));
    let report = tokio::task::spawn_blocking(move || compare_bytes(name.as_deref(), &old, &new, &key))
        .await
        .map_err(|e| internal(e.into()).page())?
        .map_err(|e| WebError::Conflict(e.to_string()).page())?;
    let download = |v: u32| {
        format!(
            "<a href=\"{}/assets/{}/versions/{}/{v}\">Download v{v}</a>",
            site_href(&site),
            url_segment(&asset),
            url_segment(&slot)
        )
    };
    let body = format!(
        "<h1>{} / {} / {}: v{from} → v{to}</h1><p>Format {}; {}{}. From the hub's copy.</p>{}<p>{} · {} (recorded)</p>",
        escape(&site),
        escape(&asset),
        escape(&slot),
        escape(&report.format),
        if report.significant { "significant difference" } else { "no significant difference" },
        if report.secrets_changed > 0 {
            format!("; {} secret(s) changed (values masked)", report.secrets_changed)
        } else {
            String::new()
        },
        datum_host::web::located_changes(&report, from, to),
        download(from),
        download(to),
    );
    Ok(page(&format!("{asset} v{from} → v{to}"), &who, &body))
}

/// A stored version from the hub's copy (the off-site backup, usable from the dashboard); recorded in the hub's
/// own record with who took it.
async fn download(
    State(app): State<App>,
    headers: HeaderMap,
    Path((site, asset, slot, n)): Path<(String, String, String, u32)>,
) -> PageResult {
    let who = reader(&app, &headers).await?;
    let o = app.site(&who.user, &site).await.map_err(WebError::page)?;
    let f = findings_of(&o).map_err(WebError::page)?;
    let missing = || WebError::NotFound(format!("no version {n} of {asset} {slot} at {site}")).page();
    let v = f
        .view
        .versions
        .iter()
        .find(|((a, s), _)| a.as_str() == asset && s.as_str() == slot)
        .and_then(|(_, list)| list.iter().find(|v| v.version == n))
        .ok_or_else(missing)?;
    let site_id = o.row.site_id.as_ref().ok_or_else(missing)?;
    let hash = v.raw_hash.as_str().to_string();
    let size =
        app.store.site_blob_size(site_id, &hash).await.map_err(|e| internal(e.into()).page())?.ok_or_else(|| {
            WebError::Conflict(format!(
                "the hub does not hold this file whole yet ({hash}); it arrives with the site's next sync"
            ))
            .page()
        })?;
    app.store
        .record_event(
            app.now(),
            &who.user.name,
            "download",
            Some(&o.row.name),
            &format!("{asset} {slot} v{n} sha256 {hash} ({size} bytes)"),
        )
        .await
        .map_err(|e| internal(e.into()).page())?;
    let name = v.file_name.clone().unwrap_or_else(|| format!("{asset}-{slot}-v{n}"));
    let safe: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || ".-_".contains(c) { c } else { '_' }).collect();
    let store = app.store.clone();
    let stream = futures_util::stream::unfold((store, hash, 0u64, false), |(store, hash, pos, done)| async move {
        if done {
            return None;
        }
        match store.blob_piece(&hash, pos).await {
            Ok(Some(piece)) if !piece.is_empty() => {
                let next = pos + piece.len() as u64;
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(piece)), (store, hash, next, false)))
            }
            Ok(_) => None,
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), (store, hash, pos, true))),
        }
    });
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, size.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{safe}\"")),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

#[derive(Deserialize, Default)]
pub struct Format {
    pub format: Option<String>,
}

/// The cross-site inventory: filters, facets (counts per value under the other filters), CSV and JSON.
async fn inventory(
    State(app): State<App>,
    headers: HeaderMap,
    Query(filter): Query<Filter>,
    Query(format): Query<Format>,
) -> PageResult {
    let who = reader(&app, &headers).await?;
    let filter = filter.tidy();
    let sites = app.sites(&who.user).await.map_err(WebError::page)?;
    let assets = super::inventory(&sites, &filter, app.now());
    match format.format.as_deref() {
        Some("csv") => return Ok(csv_response(&assets)),
        Some("json") => return Ok(json_assets(&assets)),
        Some(other) => return Err(WebError::BadRequest(format!("no format {other} (csv or json)")).page()),
        None => {}
    }
    let facets = facets(&sites, &filter, app.now());
    let query = filter.query();
    let sep = if query.is_empty() { "" } else { "&" };
    let (range, next) = super::page_after(&assets, filter.after.as_deref(), super::PAGE);
    let position = if range.len() < assets.len() {
        format!(" <span class=\"small\" id=\"page\">{}–{} of {}</span>", range.start + 1, range.end, assets.len())
    } else {
        String::new()
    };
    let shown = &assets[range];
    let next_link = next
        .map(|key| {
            format!(
                "<p><a id=\"next-page\" href=\"/assets?{query}{sep}after={}\">Next {} assets</a></p>",
                url_segment(&key),
                super::PAGE
            )
        })
        .unwrap_or_default();
    let body = format!(
        "<h1>Inventory ({}){position}</h1>{}<p><a href=\"/assets?{query}{sep}format=csv\" id=\"csv\">CSV</a> · \
         <a href=\"/assets?{query}{sep}format=json\" id=\"json\">JSON</a> · \
         <a href=\"/assets?missing=owner\">without owner</a> · <a href=\"/assets?missing=zone\">without zone</a> · \
         <a href=\"/assets?recent=new\">new in 7 days</a> · <a href=\"/assets?recent=retired\">retired in 7 days</a></p>{}{}{next_link}",
        assets.len(),
        filter_form(&filter),
        facets,
        asset_table(shown.iter().copied(), "assets")
    );
    Ok(page("Inventory", &who, &body))
}

fn filter_form(f: &Filter) -> String {
    let field = |name: &str, value: &Option<String>| {
        format!("<label>{name} <input name=\"{name}\" value=\"{}\"></label>", escape(value.as_deref().unwrap_or("")))
    };
    format!(
        "<form method=\"get\" action=\"/assets\" class=\"card\" id=\"filter\">{}{}{}{}{}{}{}{}<button type=\"submit\">Filter</button></form>",
        field("q", &f.q),
        field("site", &f.site),
        field("kind", &f.kind),
        field("vendor", &f.vendor),
        field("model", &f.model),
        field("firmware", &f.firmware),
        field("zone", &f.zone),
        field("criticality", &f.criticality),
    )
}

/// Per facet, each value with the number of assets that have it under the other filters, as links.
fn facets(sites: &[Arc<Overview>], filter: &Filter, now: chrono::DateTime<chrono::Utc>) -> String {
    // One pass: an asset that passes every filter counts in every facet; one that fails exactly one facet's
    // filter counts in that facet only (its values are what choosing another value there would show).
    let wanted = filter.facets();
    let mut counts: [BTreeMap<&str, usize>; 6] = Default::default();
    for o in sites {
        if filter.site.as_deref().is_some_and(|s| s != o.row.name) {
            continue;
        }
        let Some(f) = &o.findings else { continue };
        for a in f.view.assets.values().filter(|a| filter.matches_base(a, now)) {
            let values = super::facet_values(a);
            let mut missed = values
                .iter()
                .zip(&wanted)
                .enumerate()
                .filter(|(_, (have, want))| want.is_some_and(|w| **have != Some(w)));
            match (missed.next(), missed.next()) {
                (None, _) => {
                    for (i, v) in values.iter().enumerate() {
                        if let Some(v) = v {
                            *counts[i].entry(v).or_default() += 1;
                        }
                    }
                }
                (Some((i, (Some(v), _))), None) => *counts[i].entry(v).or_default() += 1,
                _ => {}
            }
        }
    }
    let mut out = String::from("<div class=\"facets\" id=\"facets\">");
    for (i, name) in super::FACETS.iter().enumerate() {
        if counts[i].is_empty() {
            continue;
        }
        let mut others = filter.clone();
        match i {
            0 => others.kind = None,
            1 => others.vendor = None,
            2 => others.model = None,
            3 => others.firmware = None,
            4 => others.zone = None,
            _ => others.criticality = None,
        }
        let base = others.query();
        let sep = if base.is_empty() { "" } else { "&" };
        let values: String = counts[i]
            .iter()
            .take(30)
            .map(|(v, n)| {
                let chosen = wanted[i] == Some(*v);
                format!(
                    "<a href=\"/assets?{base}{sep}{name}={}\"{}>{} ({n})</a> ",
                    url_segment(v),
                    if chosen { " class=\"good\"" } else { "" },
                    escape(v)
                )
            })
            .collect();
        out.push_str(&format!("<p><strong>{name}</strong>: {values}</p>"));
    }
    out.push_str("</div>");
    out
}

/// The list as CSV (a cell that a spreadsheet would run as a formula is prefixed with `'`).
pub fn csv_response(assets: &[(&str, &Asset)]) -> Response {
    let mut w = csv::Writer::from_writer(Vec::new());
    let cell = |v: &str| if v.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{v}") } else { v.to_string() };
    let header = std::iter::once("site").chain(COLUMNS).chain(["state"]);
    let _ = w.write_record(header);
    for (site, a) in assets {
        let state = if a.is_active() { "active" } else { "retired" };
        let row = std::iter::once(site.to_string()).chain(row_of(a)).chain([state.to_string()]);
        let _ = w.write_record(row.map(|v| cell(&v)));
    }
    let bytes = w.into_inner().unwrap_or_default();
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"inventory.csv\""),
        ],
        bytes,
    )
        .into_response()
}

#[derive(serde::Serialize)]
pub struct SiteAsset<'a> {
    pub site: &'a str,
    #[serde(flatten)]
    pub asset: &'a Asset,
}

pub fn json_assets(assets: &[(&str, &Asset)]) -> Response {
    let list: Vec<SiteAsset<'_>> = assets.iter().map(|(site, asset)| SiteAsset { site, asset }).collect();
    axum::Json(list).into_response()
}

#[derive(Deserialize, Default)]
pub struct SearchQuery {
    #[serde(default)]
    pub q: String,
}

async fn search_page(State(app): State<App>, headers: HeaderMap, Query(q): Query<SearchQuery>) -> PageResult {
    let who = reader(&app, &headers).await?;
    let form = format!(
        "<form method=\"get\" action=\"/search\" class=\"card\" id=\"search\"><label>Search assets, changes, templates, \
         file names and content hashes <input name=\"q\" value=\"{}\" autofocus></label><button type=\"submit\">Search</button></form>",
        escape(&q.q)
    );
    if q.q.trim().is_empty() {
        return Ok(page("Search", &who, &format!("<h1>Search</h1>{form}")));
    }
    let found = super::search::search(&app, &who.user, &q.q).await.map_err(WebError::page)?;
    let assets: Vec<Vec<String>> = found
        .assets
        .iter()
        .map(|h| {
            vec![
                escape(&h.site),
                format!("<a href=\"{}/assets/{}\">{}</a>", site_href(&h.site), url_segment(&h.name), escape(&h.name)),
                escape(&h.detail),
            ]
        })
        .collect();
    let changes: Vec<Vec<String>> = found
        .changes
        .iter()
        .map(|h| {
            vec![
                escape(&h.site),
                format!("<a href=\"{}/changes/{}\">{}</a>", site_href(&h.site), escape(&h.id), escape(&h.id)),
                escape(&h.title),
                escape(&h.state),
            ]
        })
        .collect();
    let files: Vec<Vec<String>> = found
        .files
        .iter()
        .map(|h| {
            vec![
                escape(&h.site),
                format!("<a href=\"{}/assets/{}\">{}</a>", site_href(&h.site), url_segment(&h.asset), escape(&h.asset)),
                escape(&h.slot),
                h.version.to_string(),
                escape(h.file_name.as_deref().unwrap_or("-")),
                format!("<code>{}</code>", escape(&h.sha256)),
            ]
        })
        .collect();
    let templates: Vec<Vec<String>> =
        found.templates.iter().map(|t| vec![escape(&t.id), escape(&t.name), escape(&t.versions.join(", "))]).collect();
    let body = format!(
        "<h1>Search</h1>{form}<h2>Assets ({})</h2>{}<h2>Changes ({})</h2>{}<h2>Files ({})</h2>{}<h2>Templates ({})</h2>{}",
        assets.len(),
        table(&["Site", "Asset", "Matched"], &assets, "found-assets"),
        changes.len(),
        table(&["Site", "Change", "Title", "State"], &changes, "found-changes"),
        files.len(),
        table(&["Site", "Asset", "Slot", "Version", "File", "SHA-256"], &files, "found-files"),
        templates.len(),
        table(&["Template", "Name", "Versions"], &templates, "found-templates"),
    );
    Ok(page("Search", &who, &body))
}
