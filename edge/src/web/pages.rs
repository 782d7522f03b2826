//! The plant's pages: server-rendered HTML, no script, every count a link to the list it counts.

use axum::extract::{Form, Multipart, Path, Query, State};
use axum::http::{HeaderMap, Method};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use datum_shared::change::ChangeState;
use datum_shared::identity::{authorize, Action, Role};
use datum_shared::model::Asset;

use super::api::{self, ActBody, AssetQuery, AuditQuery};
use super::{domain, internal, App};
use datum_host::web::{csrf_field, escape, shell, url_segment, Identity, Peer, WebError};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/", get(home))
        .route("/assets", get(assets))
        .route("/assets/{name}", get(asset))
        .route("/assets/{name}/diff", get(diff))
        .route("/assets/{name}/versions/{slot}/{version}/download", get(download))
        .route("/drift", get(drift))
        .route("/changes", get(changes).post(change_new))
        .route("/changes/new", get(change_form))
        .route("/changes/{id}", get(change))
        .route("/changes/{id}/{action}", axum::routing::post(change_act))
        .route("/audit", get(audit))
        .route("/backups", get(backups))
        .route("/reviews", get(reviews).post(post_review))
        .route("/assets/{name}/baseline", axum::routing::post(post_baseline))
        .route("/users", get(users).post(post_user_add))
        .route("/users/change", axum::routing::post(post_user_change))
        .route("/tokens", get(tokens).post(post_token))
        .route("/evidence", get(evidence_form).post(post_evidence))
        .route("/tokens/{id}/revoke", axum::routing::post(revoke_token))
}

type Page = Result<Response, Response>;

fn page(title: &str, who: &Identity, body: String) -> Response {
    Html(shell(title, Some(who), &body)).into_response()
}

fn opt(v: &Option<String>) -> String {
    escape(v.as_deref().unwrap_or("–"))
}

async fn read_page<T>(
    app: &App,
    f: impl AsyncFnOnce(&mut crate::site::Site) -> Result<T, WebError>,
) -> Result<T, Response> {
    let mut site = app.read().await.map_err(WebError::page)?;
    let result = f(&mut site).await;
    site.close().await;
    result.map_err(WebError::page)
}

async fn home(State(app): State<App>, headers: HeaderMap) -> Page {
    let who = app.allow(&headers, &Method::GET, None, Action::Read).await.map_err(WebError::page)?;
    let (drift, changes, n_assets, overdue) = read_page(&app, async |site| {
        let view = crate::view::load(site).await.map_err(internal)?;
        let drift = view.drift(site.now, &site.policy, None);
        let n_assets = view.assets.values().filter(|a| a.is_active()).count();
        let mut overdue = (0, 0, 0);
        for a in view.reported_assets() {
            let b = view.backup_state(a, site.now, &site.policy);
            overdue.0 += usize::from(b.backup_overdue);
            overdue.1 += usize::from(b.test_overdue);
            overdue.2 += usize::from(view.review_state(a, site.now, &site.policy).status.is_overdue());
        }
        Ok((drift, api::change_entries(site).await?, n_assets, overdue))
    })
    .await?;
    let n = |status: &str| drift.iter().filter(|d| d.status.as_str() == status).count();
    let me = &who.user;
    let waiting = changes
        .iter()
        .filter(|c| {
            c.change.state == ChangeState::Submitted
                && me.has(Role::Approver)
                && !me.disabled
                && c.change.requester != me.name
                && !c.change.approvals.iter().any(|a| a.by == me.name)
        })
        .count();
    let open = changes
        .iter()
        .filter(|c| !matches!(c.change.state, ChangeState::Closed | ChangeState::Rejected | ChangeState::Cancelled))
        .count();
    let count = |label: &str, n: usize, href: &str, class: &str| {
        format!("<a class=\"count {class}\" href=\"{href}\"><span class=\"n\">{n}</span>{}</a>", escape(label))
    };
    let admin_links = if authorize(me, Action::ManageUsers).is_ok() { " · <a href=\"/users\">Users</a>" } else { "" };
    let body = format!(
        "<h1>What needs attention</h1><div class=\"counts\">{}{}{}{}{}{}{}{}{}</div><p><a href=\"/backups\">Backups and restore tests</a> · \
         <a href=\"/reviews\">Reviews</a> · <a href=\"/tokens\">API tokens</a>{admin_links}</p>",
        count(
            "unauthorized drift",
            n("drift-unauthorized"),
            "/drift?status=drift-unauthorized",
            if n("drift-unauthorized") > 0 { "bad" } else { "" }
        ),
        count("stale captures", n("stale"), "/drift?status=stale", ""),
        count("without baseline", n("no-baseline"), "/drift?status=no-baseline", ""),
        count("overdue backups", overdue.0, "/backups?overdue=backup", if overdue.0 > 0 { "bad" } else { "" }),
        count("overdue restore tests", overdue.1, "/backups?overdue=restore-test", if overdue.1 > 0 { "bad" } else { "" }),
        count("overdue reviews", overdue.2, "/reviews?overdue=1", if overdue.2 > 0 { "bad" } else { "" }),
        count("changes waiting for me", waiting, "/changes?waiting=me", ""),
        count("open changes", open, "/changes?open=1", ""),
        count("assets", n_assets, "/assets", ""),
    );
    Ok(page("Home", &who, body))
}

fn asset_rows(assets: &[&Asset]) -> String {
    assets
        .iter()
        .map(|a| {
            format!(
                "<tr><td><a href=\"/assets/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                url_segment(a.name.as_str()),
                escape(a.name.as_str()),
                a.kind.as_str(),
                a.criticality.as_str(),
                opt(&a.zone),
                opt(&a.vendor),
                opt(&a.ip)
            )
        })
        .collect()
}

async fn assets(State(app): State<App>, headers: HeaderMap, Query(query): Query<AssetQuery>) -> Page {
    let who = app.allow(&headers, &Method::GET, None, Action::Read).await.map_err(WebError::page)?;
    let all: Vec<Asset> = read_page(&app, async |site| site.list(Asset::COLLECTION).await.map_err(internal)).await?;
    let shown = api::filter_assets(all.iter(), &query);
    let q = escape(query.q.as_deref().unwrap_or(""));
    const LIMIT: usize = 500;
    let more = if shown.len() > LIMIT {
        format!("<p class=\"small\">Showing {LIMIT} of {}; narrow the search.</p>", shown.len())
    } else {
        String::new()
    };
    let body = format!(
        "<h1>Assets</h1><form method=\"get\" action=\"/assets\"><label>Search <input type=\"search\" name=\"q\" value=\"{q}\" \
         id=\"asset-search\"></label> <button type=\"submit\">Find</button></form><p><span id=\"asset-count\">{}</span> assets</p>{more}\
         <table><thead><tr><th>Name</th><th>Kind</th><th>Criticality</th><th>Zone</th><th>Vendor</th><th>IP</th></tr></thead><tbody>{}</tbody></table>",
        shown.len(),
        asset_rows(&shown[..shown.len().min(LIMIT)])
    );
    Ok(page("Assets", &who, body))
}

async fn asset(State(app): State<App>, headers: HeaderMap, Path(name): Path<String>) -> Page {
    let who = app.allow(&headers, &Method::GET, None, Action::Read).await.map_err(WebError::page)?;
    let d = read_page(&app, async |site| api::asset_detail(site, &name).await).await?;
    let a = &d.asset;
    let fields = [
        ("Kind", Some(a.kind.as_str().to_string())),
        ("Criticality", Some(a.criticality.as_str().to_string())),
        ("Vendor", a.vendor.clone()),
        ("Model", a.model.clone()),
        ("Serial", a.serial.clone()),
        ("Firmware", a.firmware.clone()),
        ("Zone", a.zone.clone()),
        ("Location", a.location.clone()),
        ("IP", a.ip.clone()),
        ("Owner", a.owner.clone()),
    ];
    let fields: String = fields.iter().map(|(k, v)| format!("<tr><th>{k}</th><td>{}</td></tr>", opt(v))).collect();
    let drift: String = d
        .drift
        .iter()
        .map(|e| {
            format!(
                "<tr><td>{}</td><td class=\"status-{}\">{}</td><td>{}</td></tr>",
                escape(e.slot.as_ref().map(|s| s.as_str()).unwrap_or("–")),
                e.status.as_str(),
                e.status.as_str(),
                escape(&e.detail)
            )
        })
        .collect();
    let standards: String = if d.standards.is_empty() {
        "<li>no template active here applies to this asset</li>".to_string()
    } else {
        d.standards
            .iter()
            .map(|s| format!("<li class=\"{}\">{}</li>", if s.meets { "ok" } else { "warn" }, escape(&s.line())))
            .collect()
    };
    let versions: String = d
        .versions
        .iter()
        .rev()
        .map(|v| {
            format!(
                "<tr><td>{}</td><td>v{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(v.slot.as_str()),
                v.version,
                v.captured_at.format("%Y-%m-%d %H:%M"),
                escape(&v.captured_by),
                v.size,
                escape(v.format.as_deref().unwrap_or("–")),
                if v.version > 1 {
                    format!(
                        "<a href=\"/assets/{}/diff?slot={}&amp;from={}&amp;to={}\" class=\"diff-link\">diff with v{}</a>",
                        url_segment(a.name.as_str()),
                        url_segment(v.slot.as_str()),
                        v.version - 1,
                        v.version,
                        v.version - 1
                    )
                } else {
                    String::new()
                }
            )
        })
        .collect();
    let changes: String = d
        .changes
        .iter()
        .map(|c| {
            format!("<li><a href=\"/changes/{}\">{}</a> {} — {}</li>", c.id, c.id, c.state, escape(&c.draft.title))
        })
        .collect();
    let upload = if authorize(&who.user, Action::EditInventory).is_ok() && a.is_active() {
        format!(
            "<h2>Upload a capture</h2><form method=\"post\" action=\"/assets/{}/captures\" enctype=\"multipart/form-data\" class=\"card\">{}\
             <label>Export file <input type=\"file\" name=\"file\" id=\"capture-file\" required></label>\
             <label>Slot (optional) <input name=\"slot\"></label><label>Under change (optional, e.g. CR-0001) <input name=\"change\"></label>\
             <label>Note <input name=\"note\"></label><button type=\"submit\" id=\"capture-submit\">Store capture</button></form>",
            url_segment(a.name.as_str()),
            csrf_field(&who)
        )
    } else {
        String::new()
    };
    let baseline = if authorize(&who.user, Action::ApproveBaseline).is_ok() && !d.versions.is_empty() && a.is_active() {
        format!(
            "<h2>Approve a baseline</h2><form method=\"post\" action=\"/assets/{}/baseline\" class=\"card\" id=\"baseline-approve\">{}\
             <label>Slot (optional when the asset has one) <input name=\"slot\"></label><label>Version <input name=\"version\" required></label>\
             <label>Reason <input name=\"reason\" required></label>{}<button type=\"submit\">Approve as baseline</button></form>",
            url_segment(a.name.as_str()),
            csrf_field(&who),
            totp_field()
        )
    } else {
        String::new()
    };
    let body = format!(
        "<h1>{}</h1><table class=\"fields\">{fields}</table><h2>Matches its baseline?</h2><table id=\"asset-drift\"><thead><tr><th>Slot</th><th>Status</th><th>Detail</th></tr></thead><tbody>{drift}</tbody></table>\
         <h2>Meets the standards?</h2><ul id=\"asset-standards\">{standards}</ul>\
         <h2>Versions</h2><table id=\"asset-versions\"><thead><tr><th>Slot</th><th>Version</th><th>Captured</th><th>By</th><th>Bytes</th><th>Format</th><th></th></tr></thead><tbody>{versions}</tbody></table>\
         <h2>Change requests</h2><ul>{changes}</ul>{upload}{baseline}",
        escape(a.name.as_str())
    );
    Ok(page(a.name.as_str(), &who, body))
}

async fn post_capture_inner(
    app: &App,
    headers: &HeaderMap,
    name: &str,
    multipart: Multipart,
) -> Result<Response, WebError> {
    // A form post carries its CSRF token in a field: read the fields first, then check it.
    let upload = api::read_upload(app, multipart).await?;
    let csrf = upload.fields.get("csrf").cloned();
    let who = app.allow(headers, &Method::POST, csrf.as_deref().or(Some("")), Action::EditInventory).await?;
    api::capture(app, &who, name, upload).await?;
    Ok(Redirect::to(&format!("/assets/{}", url_segment(name))).into_response())
}

pub async fn post_capture(
    State(app): State<App>,
    headers: HeaderMap,
    Path(name): Path<String>,
    multipart: Multipart,
) -> Page {
    // Anonymous posts are refused before anything is read from the body.
    app.auth.identify(&headers, &Method::GET, None).await.map_err(WebError::page)?;
    post_capture_inner(&app, &headers, &name, multipart).await.map_err(WebError::page)
}

#[derive(serde::Deserialize, Default)]
struct DriftQuery {
    #[serde(default)]
    status: Option<String>,
}

async fn drift(State(app): State<App>, headers: HeaderMap, Query(query): Query<DriftQuery>) -> Page {
    let who = app.allow(&headers, &Method::GET, None, Action::Read).await.map_err(WebError::page)?;
    let entries = read_page(&app, async |site| {
        let view = crate::view::load(site).await.map_err(internal)?;
        Ok(view.drift(site.now, &site.policy, None))
    })
    .await?;
    let status = query.status.filter(|s| !s.is_empty());
    let rows: String = entries
        .iter()
        .filter(|e| status.as_deref().is_none_or(|s| e.status.as_str() == s))
        .map(|e| {
            format!(
                "<tr><td><a href=\"/assets/{}\">{}</a></td><td>{}</td><td class=\"status-{}\">{}</td><td>{}</td></tr>",
                url_segment(e.asset.as_str()),
                escape(e.asset.as_str()),
                escape(e.slot.as_ref().map(|s| s.as_str()).unwrap_or("–")),
                e.status.as_str(),
                e.status.as_str(),
                escape(&e.detail)
            )
        })
        .collect();
    let body = format!(
        "<h1>Drift{}</h1><table id=\"drift\"><thead><tr><th>Asset</th><th>Slot</th><th>Status</th><th>Detail</th></tr></thead><tbody>{rows}</tbody></table>",
        status.map(|s| format!(": {}", escape(&s))).unwrap_or_default()
    );
    Ok(page("Drift", &who, body))
}

#[derive(serde::Deserialize, Default)]
struct ChangeQuery {
    #[serde(default)]
    waiting: Option<String>,
    #[serde(default)]
    open: Option<String>,
}

async fn changes(State(app): State<App>, headers: HeaderMap, Query(query): Query<ChangeQuery>) -> Page {
    let who = app.allow(&headers, &Method::GET, None, Action::Read).await.map_err(WebError::page)?;
    let entries = read_page(&app, async |site| api::change_entries(site).await).await?;
    let me = &who.user;
    let rows: String = entries
        .iter()
        .filter(|c| {
            query.waiting.is_none()
                || (c.change.state == ChangeState::Submitted
                    && me.has(Role::Approver)
                    && c.change.requester != me.name
                    && !c.change.approvals.iter().any(|a| a.by == me.name))
        })
        .filter(|c| {
            query.open.is_none()
                || !matches!(c.change.state, ChangeState::Closed | ChangeState::Rejected | ChangeState::Cancelled)
        })
        .map(|c| {
            format!(
                "<tr><td><a href=\"/changes/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}/{}</td><td>{}</td></tr>",
                c.change.id,
                c.change.id,
                c.change.state,
                c.change.draft.risk,
                escape(&c.change.requester),
                c.change.approvals.len(),
                c.change.required_approvals,
                escape(&c.change.draft.title)
            )
        })
        .collect();
    let new = if authorize(me, Action::WorkOnChange).is_ok() {
        "<p><a href=\"/changes/new\">New change request</a></p>"
    } else {
        ""
    };
    let body = format!(
        "<h1>Change requests</h1>{new}<table id=\"changes\"><thead><tr><th>Id</th><th>State</th><th>Risk</th><th>Requester</th><th>Approvals</th><th>Title</th></tr></thead><tbody>{rows}</tbody></table>"
    );
    Ok(page("Change requests", &who, body))
}

async fn change_form(State(app): State<App>, headers: HeaderMap) -> Page {
    let who = app.allow(&headers, &Method::GET, None, Action::WorkOnChange).await.map_err(WebError::page)?;
    let body = format!(
        "<h1>New change request</h1><form method=\"post\" action=\"/changes\" class=\"card\">{}\
         <label>Title <input name=\"title\" required></label><label>Assets (comma-separated) <input name=\"assets\" required></label>\
         <label>Risk <select name=\"risk\"><option>low</option><option selected>medium</option><option>high</option></select></label>\
         <label>Reason <textarea name=\"reason\" required></textarea></label><label>Impact <textarea name=\"impact\" required></textarea></label>\
         <label>Rollback <textarea name=\"rollback\" required></textarea></label><label>Test plan <textarea name=\"test_plan\"></textarea></label>\
         <button type=\"submit\">Create</button></form>",
        csrf_field(&who)
    );
    Ok(page("New change request", &who, body))
}

#[derive(serde::Deserialize)]
struct NewChangeForm {
    #[serde(default)]
    csrf: String,
    title: String,
    assets: String,
    risk: String,
    reason: String,
    impact: String,
    rollback: String,
    #[serde(default)]
    test_plan: Option<String>,
}

async fn change_new(State(app): State<App>, headers: HeaderMap, Form(form): Form<NewChangeForm>) -> Page {
    let who =
        app.allow(&headers, &Method::POST, Some(&form.csrf), Action::WorkOnChange).await.map_err(WebError::page)?;
    let args = crate::commands::changes::NewArgs {
        title: form.title,
        reason: form.reason,
        assets: form.assets.split(',').map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).collect(),
        risk: form.risk,
        impact: form.impact,
        rollback: form.rollback,
        test_plan: form.test_plan.filter(|t| !t.trim().is_empty()),
        window: None,
        emergency: false,
    };
    let created =
        api::writing(&app, &who, async |site| crate::commands::changes::create(site, args).await.map_err(domain))
            .await
            .map_err(WebError::page)?;
    Ok(Redirect::to(&format!("/changes/{}", created.id)).into_response())
}

async fn change(State(app): State<App>, headers: HeaderMap, Path(id): Path<String>) -> Page {
    let who = app.allow(&headers, &Method::GET, None, Action::Read).await.map_err(WebError::page)?;
    let (c, flags) = read_page(&app, async |site| {
        let id = datum_shared::ChangeId::parse(&id).map_err(|e| WebError::NotFound(e.to_string()))?;
        let c = crate::commands::configs::load_change(site, id).await.map_err(domain)?;
        let flags = c.flags(site.now, &site.policy);
        Ok((c, flags))
    })
    .await?;
    let d = &c.draft;
    let approvals: String = c
        .approvals
        .iter()
        .map(|a| format!("<li>{} at {}</li>", escape(&a.by), a.at.format("%Y-%m-%d %H:%M")))
        .collect();
    let flags: String = flags.iter().map(|f| format!("<li class=\"warn\">{}</li>", escape(f))).collect();
    let mut actions = String::new();
    let form = |verb: &str, label: &str, extra: &str| {
        format!(
            "<form method=\"post\" action=\"/changes/{}/{verb}\" class=\"card\" id=\"form-{verb}\">{}{extra}<button type=\"submit\">{label}</button></form>",
            c.id,
            csrf_field(&who)
        )
    };
    let totp =
        "<label>TOTP code <input name=\"totp\" autocomplete=\"one-time-code\" inputmode=\"numeric\" required></label>";
    if authorize(&who.user, Action::DecideChange).is_ok() && c.state == ChangeState::Submitted {
        actions.push_str(&form(
            "approve",
            "Approve",
            &format!("<label>Comment <input name=\"comment\"></label>{totp}"),
        ));
        actions.push_str(&form(
            "reject",
            "Reject",
            &format!("<label>Reason <input name=\"reason\" required></label>{totp}"),
        ));
    }
    if authorize(&who.user, Action::WorkOnChange).is_ok() {
        match c.state {
            ChangeState::Draft => actions.push_str(&form("submit", "Submit for approval", "")),
            ChangeState::Approved => {
                let checklist = if c.draft.checklist.is_empty() {
                    String::new()
                } else {
                    let items: String = c.draft.checklist.iter().map(|i| format!("<li>{}</li>", escape(i))).collect();
                    format!(
                        "<p>Checklist (the site's change-request template):</p><ul id=\"checklist\">{items}</ul>\
                         <label><input type=\"checkbox\" name=\"checklist_done\" value=\"yes\" required> every item \
                         above is done</label>"
                    )
                };
                actions.push_str(&form(
                    "implement",
                    "Record implementation",
                    &format!("<label>Note <input name=\"note\"></label>{checklist}"),
                ))
            }
            ChangeState::Implemented => actions.push_str(&form("verify", "Verify", "")),
            ChangeState::Verified => actions.push_str(&form("close", "Close", "")),
            _ => {}
        }
    }
    let body = format!(
        "<h1>{} {}</h1><table class=\"fields\"><tr><th>State</th><td id=\"change-state\">{}</td></tr><tr><th>Requester</th><td>{}</td></tr>\
         <tr><th>Assets</th><td>{}</td></tr><tr><th>Risk</th><td>{} ({} approval(s) needed)</td></tr><tr><th>Reason</th><td>{}</td></tr>\
         <tr><th>Impact</th><td>{}</td></tr><tr><th>Rollback</th><td>{}</td></tr></table><h2>Approvals</h2><ul id=\"approvals\">{approvals}</ul>\
         <ul>{flags}</ul>{actions}",
        c.id,
        escape(&d.title),
        c.state,
        escape(&c.requester),
        d.assets.iter().map(|a| format!("<a href=\"/assets/{}\">{}</a>", url_segment(a.as_str()), escape(a.as_str()))).collect::<Vec<_>>().join(", "),
        d.risk,
        c.required_approvals,
        escape(&d.reason),
        escape(&d.impact),
        escape(&d.rollback)
    );
    Ok(page(&c.id.to_string(), &who, body))
}

async fn change_act(
    State(app): State<App>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    Path((id, verb)): Path<(String, String)>,
    Form(body): Form<ActBody>,
) -> Page {
    let peer = datum_host::web::source(peer);
    api::act(&app, &headers, peer, &id, &verb, body).await.map_err(WebError::page)?;
    Ok(Redirect::to(&format!("/changes/{}", url_segment(&id))).into_response())
}

async fn audit(State(app): State<App>, headers: HeaderMap, Query(query): Query<AuditQuery>) -> Page {
    let who = app.allow(&headers, &Method::GET, None, Action::Read).await.map_err(WebError::page)?;
    let entries = read_page(&app, async |site| api::audit_entries(site, &query).await).await?;
    let rows: String = entries
        .iter()
        .map(|e| {
            let e = &e.entry;
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                e.seq,
                e.at.format("%Y-%m-%d %H:%M:%S"),
                escape(&e.actor),
                e.auth.map(|a| a.as_str()).unwrap_or("unauthenticated"),
                escape(&e.op),
                escape(&e.summary)
            )
        })
        .collect();
    let body = format!(
        "<h1>Audit log</h1><form method=\"get\" action=\"/audit\"><label>Asset <input name=\"asset\" value=\"{}\"></label> \
         <label>Person <input name=\"actor\" value=\"{}\"></label> <label>Since <input name=\"since\" value=\"{}\" placeholder=\"YYYY-MM-DD\"></label> \
         <button type=\"submit\">Filter</button></form><table id=\"audit\"><thead><tr><th>#</th><th>When</th><th>Who</th><th>How</th><th>What</th><th>Summary</th></tr></thead><tbody>{rows}</tbody></table>",
        escape(query.asset.as_deref().unwrap_or("")),
        escape(query.actor.as_deref().unwrap_or("")),
        escape(query.since.as_deref().unwrap_or(""))
    );
    Ok(page("Audit log", &who, body))
}

#[derive(serde::Deserialize, Default)]
struct DiffQuery {
    #[serde(default)]
    slot: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    /// Show every line (noise included) as a masked unified diff.
    #[serde(default)]
    raw: Option<String>,
}

/// The diff viewer: located changes side by side (noise hidden), or the whole masked raw diff.
async fn diff(
    State(app): State<App>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(query): Query<DiffQuery>,
) -> Page {
    let who = app.allow(&headers, &Method::GET, None, Action::Read).await.map_err(WebError::page)?;
    let raw = query.raw.as_deref().is_some_and(|r| r == "1");
    let blank = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let (slot, from, to) = (blank(query.slot), blank(query.from), blank(query.to));
    let d = read_page(&app, async |site| {
        crate::commands::configs::compare_versions(site, &name, slot, from, to, raw).await.map_err(domain)
    })
    .await?;
    let base =
        format!("/assets/{}/diff?slot={}&from={}&to={}", url_segment(&d.asset), url_segment(&d.slot), d.from, d.to);
    let r = &d.comparison.report;
    let toggle = if raw {
        format!("<a href=\"{}\" id=\"hide-noise\">Hide noise (located changes only)</a>", escape(&base))
    } else {
        format!("<a href=\"{}&raw=1\" id=\"show-noise\">Show everything (raw diff, secrets masked)</a>", escape(&base))
    };
    let content = match (&d.comparison.raw_diff, raw) {
        (Some(text), true) => {
            let lines: String = text
                .lines()
                .map(|l| {
                    let class = if l.starts_with('+') && !l.starts_with("+++") {
                        "add"
                    } else if l.starts_with('-') && !l.starts_with("---") {
                        "del"
                    } else {
                        ""
                    };
                    format!("<span class=\"{class}\">{}</span>\n", escape(l))
                })
                .collect();
            format!("<pre class=\"diff\" id=\"raw-diff\">{lines}</pre>")
        }
        _ => datum_host::web::located_changes(r, d.from, d.to),
    };
    let body = format!(
        "<h1>{} / {}: v{} → v{}</h1><p>Format {}; {}{}. {toggle}</p>{content}\
         <p><a href=\"/assets/{}/versions/{}/{}/download\">Download v{}</a> · <a href=\"/assets/{}/versions/{}/{}/download\">Download v{}</a> (recorded in the audit log)</p>",
        escape(&d.asset),
        escape(&d.slot),
        d.from,
        d.to,
        escape(&r.format),
        if r.significant { "significant difference" } else { "no significant difference" },
        if r.secrets_changed > 0 { format!("; {} secret(s) changed (values masked)", r.secrets_changed) } else { String::new() },
        url_segment(&d.asset),
        url_segment(&d.slot),
        d.from,
        d.from,
        url_segment(&d.asset),
        url_segment(&d.slot),
        d.to,
        d.to
    );
    Ok(page("Diff", &who, body))
}

/// A stored version's bytes, verified against their hash, as a download; recorded in the audit log.
async fn download(
    State(app): State<App>,
    headers: HeaderMap,
    Path((name, slot, version)): Path<(String, String, String)>,
) -> Page {
    let who = app.allow(&headers, &Method::GET, None, Action::Read).await.map_err(WebError::page)?;
    let (file, v) = api::writing(&app, &who, async |site| {
        let asset = crate::commands::find_asset(site, &name).await.map_err(domain)?;
        let v =
            crate::commands::configs::pick_version(site, &asset, Some(slot), Some(&version)).await.map_err(domain)?;
        let tmp_dir = site.dir.join("tmp");
        std::fs::create_dir_all(&tmp_dir).map_err(|e| internal(e.into()))?;
        let temp =
            tempfile::Builder::new().prefix("download-").tempfile_in(&tmp_dir).map_err(|e| internal(e.into()))?;
        site.blobs.export(v.raw_hash.as_str(), temp.path()).map_err(|e| internal(anyhow::anyhow!("{e}")))?;
        let file = temp.reopen().map_err(|e| internal(e.into()))?;
        // The open file stays readable after its name is gone: nothing is left behind in tmp/.
        drop(temp);
        crate::commands::configs::record_download(site, &v).await.map_err(internal)?;
        Ok((file, v))
    })
    .await
    .map_err(WebError::page)?;
    let file_name = v.file_name.clone().unwrap_or_else(|| format!("{}-{}-v{}", v.asset, v.slot, v.version));
    let safe: String =
        file_name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    let body = axum::body::Body::new(super::FileBody::new(tokio::fs::File::from_std(file)));
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (axum::http::header::CONTENT_DISPOSITION, format!("attachment; filename=\"{safe}\"")),
        ],
        body,
    )
        .into_response())
}

fn totp_field() -> &'static str {
    "<label>Your TOTP code <input name=\"totp\" autocomplete=\"one-time-code\" inputmode=\"numeric\"></label>"
}

#[derive(serde::Deserialize)]
struct BaselineForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    slot: Option<String>,
    version: String,
    reason: String,
    #[serde(default)]
    totp: Option<String>,
}

/// Approves a version as the baseline of its slot (approvers, with the second factor again).
async fn post_baseline(
    State(app): State<App>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<BaselineForm>,
) -> Page {
    let peer = datum_host::web::source(peer);
    let who =
        app.allow(&headers, &Method::POST, Some(&form.csrf), Action::ApproveBaseline).await.map_err(WebError::page)?;
    app.auth.confirm_second_factor(&who, form.totp.as_deref(), peer).await.map_err(WebError::page)?;
    let slot = form.slot.filter(|s| !s.trim().is_empty());
    api::writing(&app, &who, async |site| {
        crate::commands::configs::approve_baseline(site, &name, slot, Some(form.version), form.reason)
            .await
            .map_err(domain)
    })
    .await
    .map_err(WebError::page)?;
    Ok(Redirect::to(&format!("/assets/{}", url_segment(&name))).into_response())
}

async fn users(State(app): State<App>, headers: HeaderMap) -> Page {
    let who = app.allow(&headers, &Method::GET, None, Action::ManageUsers).await.map_err(WebError::page)?;
    let all = read_page(&app, async |site| crate::commands::users::users(site).await.map_err(internal)).await?;
    let mut rows = String::new();
    for u in &all {
        let has_password = app.auth.store.has_password(&u.name).await.map_err(|e| WebError::from(e).page())?;
        let has_totp = app.auth.store.has_totp(&u.name).await.map_err(|e| WebError::from(e).page())?;
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&u.name),
            opt(&u.display),
            escape(&u.roles_text()),
            opt(&u.os_user),
            if u.disabled { "disabled" } else { "enabled" },
            if has_password { "set" } else { "not set" },
            match (has_totp, u.needs_mfa()) {
                (true, _) => "totp",
                (false, true) => "required, not set up",
                (false, false) => "–",
            }
        ));
    }
    let csrf = csrf_field(&who);
    let totp = totp_field();
    let body = format!(
        "<h1>Users</h1><table id=\"users\"><thead><tr><th>Name</th><th>Display</th><th>Roles</th><th>OS user</th><th>State</th>\
         <th>Password</th><th>2nd factor</th></tr></thead><tbody>{rows}</tbody></table>\
         <h2>Add a person</h2><form method=\"post\" action=\"/users\" class=\"card\" id=\"user-add\">{csrf}\
         <label>Account name <input name=\"name\" required></label><label>Display name <input name=\"display\"></label>\
         <label>Roles (comma-separated: viewer, engineer, approver, auditor, site-admin) <input name=\"role\" required></label>\
         <label>Initial password (at least 12 characters) <input name=\"password\" type=\"password\" autocomplete=\"new-password\" required></label>\
         {totp}<button type=\"submit\">Add</button></form>\
         <h2>Change an account</h2><form method=\"post\" action=\"/users/change\" class=\"card\" id=\"user-change\">{csrf}\
         <label>Account name <input name=\"name\" required></label>\
         <label>Action <select name=\"op\"><option value=\"roles\">set roles</option><option value=\"disable\">disable</option>\
         <option value=\"enable\">enable</option><option value=\"passwd\">set password</option><option value=\"mfa-reset\">reset second factor</option></select></label>\
         <label>Roles (for set roles) <input name=\"role\"></label><label>Password (for set password) <input name=\"password\" type=\"password\" autocomplete=\"new-password\"></label>\
         {totp}<button type=\"submit\">Apply</button></form>"
    );
    Ok(page("Users", &who, body))
}

#[derive(serde::Deserialize)]
struct UserForm {
    #[serde(default)]
    csrf: String,
    name: String,
    #[serde(default)]
    op: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    display: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    totp: Option<String>,
}

async fn post_user_add(
    State(app): State<App>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    Form(form): Form<UserForm>,
) -> Page {
    post_user(app, peer, headers, false, form).await
}

async fn post_user_change(
    State(app): State<App>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    Form(form): Form<UserForm>,
) -> Page {
    post_user(app, peer, headers, true, form).await
}

async fn post_user(
    app: App,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    change: bool,
    form: UserForm,
) -> Page {
    let peer = datum_host::web::source(peer);
    let who =
        app.allow(&headers, &Method::POST, Some(&form.csrf), Action::ManageUsers).await.map_err(WebError::page)?;
    app.auth.confirm_second_factor(&who, form.totp.as_deref(), peer).await.map_err(WebError::page)?;
    use crate::commands::users as u;
    let op = if change { form.op.clone().unwrap_or_default() } else { "add".to_string() };
    api::writing(&app, &who, async |site| {
        let all = u::users(site).await.map_err(internal)?;
        let name = form.name.trim().to_string();
        let role = form.role.clone().unwrap_or_default();
        let password = form.password.clone().filter(|p| !p.is_empty());
        let done = match op.as_str() {
            "add" => u::add_user(
                site,
                &all,
                u::NewUser { name, role, display: form.display.clone(), os_user: None, password },
            )
            .await
            .map(|_| ()),
            "roles" => u::set_roles(site, &all, &name, &role).await.map(|_| ()),
            "disable" => u::set_disabled(site, &all, &name, true).await.map(|_| ()),
            "enable" => u::set_disabled(site, &all, &name, false).await.map(|_| ()),
            "passwd" => match password {
                Some(p) => u::set_password(site, &all, &name, &p).await,
                None => return Err(WebError::BadRequest("give the new password".into())),
            },
            "mfa-reset" => u::reset_mfa(site, &all, &name).await,
            other => return Err(WebError::BadRequest(format!("no user action {other:?}"))),
        };
        done.map_err(domain)
    })
    .await
    .map_err(WebError::page)?;
    Ok(Redirect::to("/users").into_response())
}

async fn tokens(State(app): State<App>, headers: HeaderMap) -> Page {
    let who = app.allow(&headers, &Method::GET, None, Action::Read).await.map_err(WebError::page)?;
    let admin = authorize(&who.user, Action::ManageUsers).is_ok();
    let list = app
        .auth
        .store
        .tokens(if admin { None } else { Some(&who.user.name) })
        .await
        .map_err(|e| WebError::from(e).page())?;
    let csrf = csrf_field(&who);
    let rows: String = list
        .iter()
        .map(|t| {
            let revoke = if t.revoked_at.is_none() {
                format!(
                    "<form method=\"post\" action=\"/tokens/{}/revoke\" class=\"inline\">{csrf}<button type=\"submit\">Revoke</button></form>",
                    escape(&t.id)
                )
            } else {
                String::new()
            };
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{revoke}</td></tr>",
                escape(&t.id),
                escape(&t.user),
                escape(&t.created_at),
                escape(t.expires_at.as_deref().unwrap_or("never")),
                escape(t.revoked_at.as_deref().map(|r| r.to_string()).as_deref().unwrap_or("active")),
                escape(t.last_used_at.as_deref().unwrap_or("–"))
            )
        })
        .collect();
    let body = format!(
        "<h1>API tokens</h1><table id=\"tokens\"><thead><tr><th>Id</th><th>User</th><th>Created</th><th>Expires</th><th>State</th>\
         <th>Last used</th><th></th></tr></thead><tbody>{rows}</tbody></table><h2>New token for {}</h2>\
         <form method=\"post\" action=\"/tokens\" class=\"card\">{csrf}<label>Lifetime (e.g. 30d, 12h, never) <input name=\"expires\" value=\"90d\"></label>\
         <button type=\"submit\">Create</button></form>",
        escape(&who.user.name)
    );
    Ok(page("API tokens", &who, body))
}

#[derive(serde::Deserialize)]
struct TokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    expires: Option<String>,
}

async fn post_token(State(app): State<App>, headers: HeaderMap, Form(form): Form<TokenForm>) -> Page {
    let who = app.allow(&headers, &Method::POST, Some(&form.csrf), Action::Read).await.map_err(WebError::page)?;
    let expires = datum_host::auth::parse_lifetime(form.expires.as_deref().unwrap_or("90d"), app.now())
        .map_err(|e| WebError::BadRequest(e.to_string()).page())?;
    let made = app
        .auth
        .store
        .create_token(&who.user.name, &who.user.name, app.now(), expires)
        .await
        .map_err(|e| WebError::from(e).page())?;
    let id = made.id.clone();
    api::writing(&app, &who, async |site| {
        crate::commands::users::audit_only(
            site,
            "token.create",
            &who.user.name,
            format!("token {id} made for {}", who.user.name),
        )
        .await
        .map_err(internal)
    })
    .await
    .map_err(WebError::page)?;
    let body = format!(
        "<h1>Token created</h1><p>Copy it now: it is not shown again. Use it as <code>Authorization: Bearer …</code> or \
         <code>DATUM_TOKEN</code>.</p><p><code id=\"new-token\">{}</code></p><p><a href=\"/tokens\">Back to tokens</a></p>",
        escape(&made.token)
    );
    Ok(page("Token created", &who, body))
}

async fn revoke_token(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<TokenForm>,
) -> Page {
    let who = app.allow(&headers, &Method::POST, Some(&form.csrf), Action::Read).await.map_err(WebError::page)?;
    let admin = authorize(&who.user, Action::ManageUsers).is_ok();
    let all = app.auth.store.tokens(None).await.map_err(|e| WebError::from(e).page())?;
    let token = all.iter().find(|t| t.id == id).ok_or_else(|| WebError::NotFound(format!("no token {id}")).page())?;
    if token.user != who.user.name && !admin {
        return Err(WebError::Forbidden(format!("{} may only revoke their own tokens", who.user.name)).page());
    }
    if app.auth.store.revoke_token(&id, app.now()).await.map_err(|e| WebError::from(e).page())? {
        let owner = token.user.clone();
        api::writing(&app, &who, async |site| {
            crate::commands::users::audit_only(site, "token.revoke", &owner, format!("token {id} of {owner} revoked"))
                .await
                .map_err(internal)
        })
        .await
        .map_err(WebError::page)?;
    }
    Ok(Redirect::to("/tokens").into_response())
}

fn day(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_else(|| "never".into())
}

#[derive(serde::Deserialize, Default)]
struct OverdueQuery {
    #[serde(default)]
    overdue: Option<String>,
}

/// Backups and restore tests per asset against the intervals its criticality requires, and the tests recorded.
async fn backups(State(app): State<App>, headers: HeaderMap, Query(query): Query<OverdueQuery>) -> Page {
    let who = app.allow(&headers, &Method::GET, None, Action::Read).await.map_err(WebError::page)?;
    let (rows, tests) = read_page(&app, async |site| {
        let view = crate::view::load(site).await.map_err(internal)?;
        let rows: Vec<(Asset, datum_shared::view::BackupState)> =
            view.reported_assets().map(|a| (a.clone(), view.backup_state(a, site.now, &site.policy))).collect();
        let mut tests = view.restore_tests.clone();
        tests.sort_by_key(|t| std::cmp::Reverse(t.tested_at));
        Ok((rows, tests))
    })
    .await?;
    let only = query.overdue.as_deref().filter(|s| !s.is_empty());
    let flag = |overdue: bool| if overdue { "<span class=\"bad\">overdue</span>" } else { "ok" };
    let table: String = rows
        .iter()
        .filter(|(_, b)| match only {
            Some("backup") => b.backup_overdue,
            Some("restore-test") => b.test_overdue,
            _ => true,
        })
        .map(|(a, b)| {
            format!(
                "<tr><td><a href=\"/assets/{}\">{}</a></td><td>{}</td><td>{}</td><td>{} (every {} d)</td><td>{}</td><td>{} (every {} d)</td></tr>",
                url_segment(a.name.as_str()),
                escape(a.name.as_str()),
                a.criticality.as_str(),
                day(b.last_backup),
                flag(b.backup_overdue),
                b.backup_interval.num_days(),
                day(b.last_test),
                flag(b.test_overdue),
                b.test_interval.num_days()
            )
        })
        .collect();
    let tests: String = tests
        .iter()
        .take(500)
        .map(|t| {
            format!(
                "<tr><td>{}</td><td><a href=\"/assets/{}\">{}</a></td><td>{} v{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                t.tested_at.format("%Y-%m-%d %H:%M"),
                url_segment(t.asset.as_str()),
                escape(t.asset.as_str()),
                escape(t.slot.as_str()),
                t.version,
                escape(&format!("{:?}", t.result).to_lowercase()),
                escape(&t.tested_by),
                escape(&t.method)
            )
        })
        .collect();
    let form = if authorize(&who.user, Action::RecordRestoreTest).is_ok() {
        format!(
            "<h2>Record a restore test</h2><form method=\"post\" action=\"/backups\" enctype=\"multipart/form-data\" \
             class=\"card\" id=\"restore-test-record\">{}<label>Asset <input name=\"asset\" required></label>\
             <label>Slot (optional when the asset has one) <input name=\"slot\"></label>\
             <label>Version <input name=\"version\" required></label><label>Result <select name=\"result\">\
             <option value=\"pass\">pass</option><option value=\"fail\">fail</option></select></label>\
             <label>Method <input name=\"method\" required placeholder=\"restored to the spare CPU, compared online\"></label>\
             <label>Notes <input name=\"notes\"></label><label>Evidence file (optional) <input type=\"file\" name=\"evidence\"></label>\
             <button type=\"submit\">Record restore test</button></form>",
            csrf_field(&who)
        )
    } else {
        String::new()
    };
    let body = format!(
        "<h1>Backups and restore tests</h1><p><a href=\"/backups?overdue=backup\">Overdue backups</a> · \
         <a href=\"/backups?overdue=restore-test\">Overdue restore tests</a> · <a href=\"/backups\">All</a></p>\
         <table id=\"backups\"><thead><tr><th>Asset</th><th>Criticality</th><th>Last backup</th><th>Backup</th><th>Last passed restore test</th>\
         <th>Restore test</th></tr></thead><tbody>{table}</tbody></table><h2>Restore tests recorded</h2>\
         <table id=\"restore-tests\"><thead><tr><th>When</th><th>Asset</th><th>Version</th><th>Result</th><th>By</th><th>Method</th></tr></thead>\
         <tbody>{tests}</tbody></table>{form}"
    );
    Ok(page("Backups", &who, body))
}

/// Periodic reviews: when each asset is due, and the reviews recorded.
async fn reviews(State(app): State<App>, headers: HeaderMap, Query(query): Query<OverdueQuery>) -> Page {
    let who = app.allow(&headers, &Method::GET, None, Action::Read).await.map_err(WebError::page)?;
    let (rows, done) = read_page(&app, async |site| {
        let view = crate::view::load(site).await.map_err(internal)?;
        let rows: Vec<(Asset, datum_shared::view::ReviewState)> =
            view.reported_assets().map(|a| (a.clone(), view.review_state(a, site.now, &site.policy))).collect();
        let mut done = view.reviews.clone();
        done.sort_by_key(|r| std::cmp::Reverse(r.reviewed_at));
        Ok((rows, done))
    })
    .await?;
    let only_overdue = query.overdue.as_deref().is_some_and(|s| !s.is_empty());
    let table: String = rows
        .iter()
        .filter(|(_, r)| !only_overdue || r.status.is_overdue())
        .map(|(a, r)| {
            format!(
                "<tr><td><a href=\"/assets/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
                url_segment(a.name.as_str()),
                escape(a.name.as_str()),
                a.criticality.as_str(),
                day(r.last),
                r.due_at.format("%Y-%m-%d"),
                if r.status.is_overdue() { "bad" } else { "" },
                r.status.as_str()
            )
        })
        .collect();
    let done: String = done
        .iter()
        .take(200)
        .map(|r| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                r.reviewed_at.format("%Y-%m-%d %H:%M"),
                escape(&r.reviewed_by),
                escape(&format!("{:?}", r.outcome).to_lowercase()),
                escape(&r.assets.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ")),
                escape(&r.notes)
            )
        })
        .collect();
    let form = if authorize(&who.user, Action::RecordReview).is_ok() {
        format!(
            "<h2>Record a review</h2><form method=\"post\" action=\"/reviews\" class=\"card\" id=\"review-record\">{}\
             <label>Asset <input name=\"asset\"></label><label>or a whole zone <input name=\"zone\"></label>\
             <label>Outcome <select name=\"outcome\"><option value=\"ok\">ok</option>\
             <option value=\"findings\">findings</option></select></label>\
             <label>Notes <input name=\"notes\" required></label><button type=\"submit\">Record review</button></form>",
            csrf_field(&who)
        )
    } else {
        String::new()
    };
    let body = format!(
        "<h1>Periodic reviews</h1><p><a href=\"/reviews?overdue=1\">Overdue only</a> · <a href=\"/reviews\">All</a></p>\
         <table id=\"review-due\"><thead><tr><th>Asset</th><th>Criticality</th><th>Last review</th><th>Due</th><th>Status</th></tr></thead>\
         <tbody>{table}</tbody></table><h2>Reviews recorded</h2><table id=\"reviews\"><thead><tr><th>When</th><th>By</th><th>Outcome</th>\
         <th>Assets</th><th>Notes</th></tr></thead><tbody>{done}</tbody></table>\
{form}"
    );
    Ok(page("Reviews", &who, body))
}

/// Records a restore test from the form on the backups page (multipart: the evidence file is optional).
pub async fn post_restore_test(State(app): State<App>, headers: HeaderMap, multipart: Multipart) -> Page {
    // Anonymous posts are refused before anything is read from the body.
    app.auth.identify(&headers, &Method::GET, None).await.map_err(WebError::page)?;
    let upload = api::read_upload(&app, multipart).await.map_err(WebError::page)?;
    let csrf = upload.fields.get("csrf").cloned();
    let who = app
        .allow(&headers, &Method::POST, csrf.as_deref().or(Some("")), Action::RecordRestoreTest)
        .await
        .map_err(WebError::page)?;
    api::record_restore_test(&app, &who, upload).await.map_err(WebError::page)?;
    Ok(Redirect::to("/backups").into_response())
}

#[derive(serde::Deserialize)]
struct ReviewForm {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    args: crate::commands::reports::ReviewArgs,
}

/// Records a review of an asset or a zone from the form on the reviews page.
async fn post_review(State(app): State<App>, headers: HeaderMap, Form(form): Form<ReviewForm>) -> Page {
    let who =
        app.allow(&headers, &Method::POST, Some(&form.csrf), Action::RecordReview).await.map_err(WebError::page)?;
    api::writing(&app, &who, async |site| {
        crate::commands::reports::record_review(site, form.args).await.map_err(domain)
    })
    .await
    .map_err(WebError::page)?;
    Ok(Redirect::to("/reviews").into_response())
}

/// The auditor's evidence pack: the period, then a ZIP to download (the same pack as `datum-edge report`).
async fn evidence_form(State(app): State<App>, headers: HeaderMap) -> Page {
    let who = app.allow(&headers, &Method::GET, None, Action::ExportEvidence).await.map_err(WebError::page)?;
    let body = format!(
        "<h1>Evidence pack</h1><p>Every IEC 62443 requirement Datum keeps records for, with its status, the reasons \
         and the files behind it, signed with the site key. Check it anywhere with <code>datum-edge report verify \
         DIR</code> after unpacking. Making one is recorded in the audit trail.</p>\
         <form method=\"post\" action=\"/evidence\" class=\"card\" id=\"evidence-form\">{}\
         <label>From (YYYY-MM-DD, default: a year before the end) <input name=\"from\"></label>\
         <label>To (YYYY-MM-DD, default: now) <input name=\"to\"></label>\
         <button type=\"submit\">Download the pack (ZIP)</button></form>",
        csrf_field(&who)
    );
    Ok(page("Evidence", &who, body))
}

#[derive(serde::Deserialize)]
struct EvidenceForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

async fn post_evidence(State(app): State<App>, headers: HeaderMap, Form(form): Form<EvidenceForm>) -> Page {
    let who =
        app.allow(&headers, &Method::POST, Some(&form.csrf), Action::ExportEvidence).await.map_err(WebError::page)?;
    api::evidence_zip(&app, &who, form.from.as_deref(), form.to.as_deref()).await.map_err(WebError::page)
}
