//! The JSON API under `/api/v1/`: the shapes of the command line's `--json`, described by
//! `/api/v1/openapi.json`. 401 without a person, 403 with the reason when the role does not allow it, 409 with
//! the reason when a rule of the domain refuses (own change, second approval missing).

use std::collections::BTreeMap;

use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use datum_shared::change::{ChangeAction, ChangeRequest};
use datum_shared::identity::Action;
use datum_shared::model::{Asset, Baseline, ConfigVersion};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::{domain, internal, App};
use crate::commands::changes::{self, NewArgs};
use crate::site::Site;
use datum_host::web::{Identity, WebError};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/assets", get(assets))
        .route("/api/v1/assets/{name}", get(asset))
        .route("/api/v1/drift", get(drift))
        .route("/api/v1/changes", get(change_list).post(change_new))
        .route("/api/v1/changes/{id}", get(change_show))
        .route("/api/v1/changes/{id}/{action}", axum::routing::post(change_act))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/restore-tests", get(restore_tests))
        .route("/api/v1/reviews", get(reviews).post(review_new))
        .route("/api/v1/evidence", axum::routing::post(evidence))
}

type ApiResult = Result<Response, Response>;

fn json_err(e: WebError) -> Response {
    e.json()
}

async fn openapi() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], include_str!("openapi.json")).into_response()
}

#[derive(Deserialize, Default)]
pub struct AssetQuery {
    /// Words that must all appear in the name, vendor, model, zone, location, IP or owner.
    #[serde(default)]
    pub q: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub zone: Option<String>,
}

/// Assets matching a query (active ones), by name.
pub fn filter_assets<'a>(assets: impl Iterator<Item = &'a Asset>, query: &AssetQuery) -> Vec<&'a Asset> {
    let words: Vec<String> = query.q.as_deref().unwrap_or("").split_whitespace().map(|w| w.to_lowercase()).collect();
    assets
        .filter(|a| a.is_active())
        .filter(|a| query.kind.as_deref().is_none_or(|k| k.is_empty() || a.kind.as_str() == k))
        .filter(|a| query.zone.as_deref().is_none_or(|z| z.is_empty() || a.zone.as_deref() == Some(z)))
        .filter(|a| {
            if words.is_empty() {
                return true;
            }
            let hay = [
                Some(a.name.as_str()),
                a.vendor.as_deref(),
                a.model.as_deref(),
                a.zone.as_deref(),
                a.location.as_deref(),
                a.ip.as_deref(),
                a.owner.as_deref(),
                a.firmware.as_deref(),
            ]
            .iter()
            .flatten()
            .map(|s| s.to_lowercase())
            .collect::<Vec<_>>()
            .join(" ");
            words.iter().all(|w| hay.contains(w.as_str()))
        })
        .collect()
}

/// Reads with the site closed whatever happens.
async fn reading<T>(app: &App, f: impl AsyncFnOnce(&mut Site) -> Result<T, WebError>) -> Result<T, WebError> {
    let mut site = app.read().await?;
    let result = f(&mut site).await;
    site.close().await;
    result
}

async fn assets(State(app): State<App>, headers: HeaderMap, Query(query): Query<AssetQuery>) -> ApiResult {
    app.allow(&headers, &Method::GET, None, Action::Read).await.map_err(json_err)?;
    let list = reading(&app, async |site| {
        let all: Vec<Asset> = site.list(Asset::COLLECTION).await.map_err(internal)?;
        Ok(filter_assets(all.iter(), &query).into_iter().cloned().collect::<Vec<_>>())
    })
    .await
    .map_err(json_err)?;
    Ok(Json(list).into_response())
}

#[derive(Serialize)]
pub struct AssetDetail {
    pub asset: Asset,
    pub versions: Vec<ConfigVersion>,
    pub baselines: Vec<Baseline>,
    pub drift: Vec<datum_shared::drift::DriftEntry>,
    /// Whether it meets each active template that applies to it (a question apart from drift).
    pub standards: Vec<crate::commands::compliance::Standing>,
    pub changes: Vec<ChangeRequest>,
}

pub async fn asset_detail(site: &mut Site, name: &str) -> Result<AssetDetail, WebError> {
    let asset = crate::commands::find_asset(site, name).await.map_err(domain)?;
    let view = crate::view::load(site).await.map_err(internal)?;
    let versions: Vec<ConfigVersion> =
        view.versions.iter().filter(|(k, _)| k.0 == asset.name).flat_map(|(_, v)| v.iter().cloned()).collect();
    let baselines: Vec<Baseline> =
        view.baselines.iter().filter(|(k, _)| k.0 == asset.name).map(|(_, b)| b.clone()).collect();
    let drift = view.drift(site.now, &site.policy, None).into_iter().filter(|d| d.asset == asset.name).collect();
    let changes = view.changes.values().filter(|c| c.draft.assets.contains(&asset.name)).cloned().collect();
    let standards = crate::commands::compliance::standing(site, &view, asset.name.as_str()).await.map_err(internal)?;
    Ok(AssetDetail { asset, versions, baselines, drift, standards, changes })
}

async fn asset(State(app): State<App>, headers: HeaderMap, Path(name): Path<String>) -> ApiResult {
    app.allow(&headers, &Method::GET, None, Action::Read).await.map_err(json_err)?;
    let detail = reading(&app, async |site| asset_detail(site, &name).await).await.map_err(json_err)?;
    Ok(Json(detail).into_response())
}

async fn drift(State(app): State<App>, headers: HeaderMap) -> ApiResult {
    app.allow(&headers, &Method::GET, None, Action::Read).await.map_err(json_err)?;
    let entries = reading(&app, async |site| {
        let view = crate::view::load(site).await.map_err(internal)?;
        Ok(view.drift(site.now, &site.policy, None))
    })
    .await
    .map_err(json_err)?;
    Ok(Json(entries).into_response())
}

#[derive(Serialize)]
pub struct ChangeEntry {
    #[serde(flatten)]
    pub change: ChangeRequest,
    pub flags: Vec<String>,
}

pub async fn change_entries(site: &Site) -> Result<Vec<ChangeEntry>, WebError> {
    let view = crate::view::load_changes(site).await.map_err(internal)?;
    Ok(view.changes.into_values().map(|c| ChangeEntry { flags: c.flags(site.now, &site.policy), change: c }).collect())
}

async fn change_list(State(app): State<App>, headers: HeaderMap) -> ApiResult {
    app.allow(&headers, &Method::GET, None, Action::Read).await.map_err(json_err)?;
    let list = reading(&app, async |site| change_entries(site).await).await.map_err(json_err)?;
    Ok(Json(list).into_response())
}

async fn change_show(State(app): State<App>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    app.allow(&headers, &Method::GET, None, Action::Read).await.map_err(json_err)?;
    let entry = reading(&app, async |site| {
        let id = datum_shared::ChangeId::parse(&id).map_err(|e| WebError::NotFound(e.to_string()))?;
        let change = crate::commands::configs::load_change(site, id).await.map_err(domain)?;
        Ok(ChangeEntry { flags: change.flags(site.now, &site.policy), change })
    })
    .await
    .map_err(json_err)?;
    Ok(Json(entry).into_response())
}

/// Writes as `who`, with the site closed whatever happens.
pub async fn writing<T>(
    app: &App,
    who: &Identity,
    f: impl AsyncFnOnce(&mut Site) -> Result<T, WebError>,
) -> Result<T, WebError> {
    let mut site = app.write(who).await?;
    let result = f(&mut site).await;
    site.close().await;
    result
}

async fn change_new(State(app): State<App>, headers: HeaderMap, Json(args): Json<NewArgs>) -> ApiResult {
    let who = app.allow(&headers, &Method::POST, None, Action::WorkOnChange).await.map_err(json_err)?;
    let change =
        writing(&app, &who, async |site| changes::create(site, args).await.map_err(domain)).await.map_err(json_err)?;
    Ok((StatusCode::CREATED, Json(change)).into_response())
}

/// The body of a change action: the text it takes and, for approve and reject, the TOTP code.
#[derive(Deserialize, Default)]
pub struct ActBody {
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub totp: Option<String>,
    #[serde(default)]
    pub csrf: Option<String>,
    /// `implement`: the implementer confirms the change's checklist done (a checkbox: any value).
    #[serde(default)]
    pub checklist_done: Option<String>,
}

/// The action a verb needs.
pub fn action_of_verb(verb: &str) -> Option<Action> {
    match verb {
        "submit" | "implement" | "verify" | "close" | "cancel" => Some(Action::WorkOnChange),
        "approve" | "reject" => Some(Action::DecideChange),
        _ => None,
    }
}

/// One step of a change request, by verb; the same functions as `datum-edge change …`.
pub async fn act(
    app: &App,
    headers: &HeaderMap,
    peer: std::net::IpAddr,
    id: &str,
    verb: &str,
    body: ActBody,
) -> Result<ChangeRequest, WebError> {
    let action = action_of_verb(verb).ok_or_else(|| WebError::NotFound(format!("no change action {verb:?}")))?;
    let who = app.allow(headers, &Method::POST, body.csrf.as_deref(), action).await?;
    if action.asks_mfa_again() {
        app.auth.confirm_second_factor(&who, body.totp.as_deref(), peer).await?;
    }
    let text = |field: &str, v: Option<String>| crate::commands::text_arg(field, v, 2048).map_err(domain);
    let required = |field: &str, v: Option<String>| {
        crate::commands::required_text(field, v.unwrap_or_default(), 2048)
            .map_err(|e| WebError::BadRequest(e.to_string()))
    };
    let step = match verb {
        "submit" => ChangeAction::Submit,
        "approve" => ChangeAction::Approve { comment: text("comment", body.comment)? },
        "reject" => ChangeAction::Reject { reason: required("reason", body.reason)? },
        "close" => ChangeAction::Close,
        "cancel" => ChangeAction::Cancel { reason: required("reason", body.reason)? },
        _ => ChangeAction::Close,
    };
    let id = id.to_string();
    let note = text("note", body.note)?;
    let checklist_done = body.checklist_done.is_some_and(|v| !v.is_empty() && v != "false");
    writing(app, &who, async |site| {
        let parsed = datum_shared::ChangeId::parse(&id).map_err(|e| WebError::NotFound(e.to_string()))?;
        crate::commands::configs::load_change(site, parsed).await.map_err(domain)?;
        let result = match verb {
            "implement" => changes::implement_change(site, &id, note, checklist_done).await.map(|(c, _)| c),
            "verify" => changes::verify_change(site, &id).await.map(|(c, _)| c),
            _ => changes::next_event(site, &id, step, |_| Vec::new()).await,
        };
        result.map_err(domain)
    })
    .await
}

async fn change_act(
    State(app): State<App>,
    peer: Option<axum::Extension<datum_host::web::Peer>>,
    headers: HeaderMap,
    Path((id, verb)): Path<(String, String)>,
    body: Option<Json<ActBody>>,
) -> ApiResult {
    let peer = datum_host::web::source(peer);
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let change = act(&app, &headers, peer, &id, &verb, body).await.map_err(json_err)?;
    Ok(Json(change).into_response())
}

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    #[serde(default)]
    pub asset: Option<String>,
    #[serde(default)]
    pub actor: Option<String>,
    /// RFC 3339 or YYYY-MM-DD.
    #[serde(default)]
    pub since: Option<String>,
    /// Newest first, at most this many (default 200, at most 5000).
    #[serde(default)]
    pub limit: Option<usize>,
}

pub async fn audit_entries(site: &Site, query: &AuditQuery) -> Result<Vec<datum_shared::audit::SignedEntry>, WebError> {
    let since = match query.since.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&chrono::Utc))
                .or_else(|_| {
                    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
                })
                .map_err(|_| WebError::BadRequest(format!("since {s:?} is not RFC 3339 or YYYY-MM-DD")))?,
        ),
    };
    let limit = query.limit.unwrap_or(200).clamp(1, 5000);
    let mut entries = site.store.audit().await.map_err(|e| internal(e.into()))?;
    entries.retain(|e| {
        query
            .asset
            .as_deref()
            .filter(|a| !a.is_empty())
            .is_none_or(|a| e.entry.subject == a || e.entry.assets.iter().any(|x| x == a))
            && query.actor.as_deref().filter(|a| !a.is_empty()).is_none_or(|a| e.entry.actor == a)
            && since.is_none_or(|s| e.entry.at >= s)
    });
    entries.reverse();
    entries.truncate(limit);
    Ok(entries)
}

async fn audit(State(app): State<App>, headers: HeaderMap, Query(query): Query<AuditQuery>) -> ApiResult {
    app.allow(&headers, &Method::GET, None, Action::Read).await.map_err(json_err)?;
    let entries = reading(&app, async |site| audit_entries(site, &query).await).await.map_err(json_err)?;
    Ok(Json(entries).into_response())
}

/// The fields of a capture upload besides the file.
#[derive(Default)]
pub struct Upload {
    pub file: Option<(tempfile::TempPath, String)>,
    pub fields: BTreeMap<String, String>,
}

/// Reads a multipart capture upload: the file goes to a temporary file in the data directory (never whole in
/// memory), the other fields (slot, note, change, csrf) are small texts.
pub async fn read_upload(app: &App, mut multipart: Multipart) -> Result<Upload, WebError> {
    let mut upload = Upload::default();
    let tmp_dir = app.data.join("tmp");
    std::fs::create_dir_all(&tmp_dir).map_err(|e| internal(e.into()))?;
    let bad = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            WebError::TooLarge(format!("the upload is larger than {} MiB", super::MAX_UPLOAD / (1024 * 1024)))
        } else {
            WebError::BadRequest(format!("the upload is not a valid form: {}", e.body_text()))
        }
    };
    while let Some(mut field) = multipart.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or("").to_string();
        if name == "file" || name == "evidence" {
            let file_name =
                field.file_name().unwrap_or("upload").rsplit(['/', '\\']).next().unwrap_or("upload").to_string();
            // A browser sends an empty part without a name for a file input left empty: no file.
            if file_name.is_empty() {
                while let Some(chunk) = field.chunk().await.map_err(bad)? {
                    if !chunk.is_empty() {
                        return Err(WebError::BadRequest("a file part without a file name".into()));
                    }
                }
                continue;
            }
            let temp =
                tempfile::Builder::new().prefix("upload-").tempfile_in(&tmp_dir).map_err(|e| internal(e.into()))?;
            let (file, path) = temp.into_parts();
            let mut file = tokio::fs::File::from_std(file);
            while let Some(chunk) = field.chunk().await.map_err(bad)? {
                file.write_all(&chunk).await.map_err(|e| internal(e.into()))?;
            }
            file.flush().await.map_err(|e| internal(e.into()))?;
            if file_name.is_empty() || file_name.len() > 255 {
                return Err(WebError::BadRequest("the file name is empty or too long".into()));
            }
            upload.file = Some((path, file_name));
        } else {
            let text = field.text().await.map_err(bad)?;
            if text.len() > 8192 {
                return Err(WebError::BadRequest(format!("the field {name} is too long")));
            }
            upload.fields.insert(name, text);
        }
    }
    Ok(upload)
}

/// Stores an uploaded capture as `who`.
pub async fn capture(
    app: &App,
    who: &Identity,
    asset: &str,
    upload: Upload,
) -> Result<crate::commands::configs::CaptureReport, WebError> {
    let (path, file_name) = upload.file.ok_or_else(|| WebError::BadRequest("the upload has no file field".into()))?;
    // The capture reads the file by its name (format detection uses the extension): give it the uploaded name.
    let named_dir =
        tempfile::Builder::new().prefix("upload-").tempdir_in(app.data.join("tmp")).map_err(|e| internal(e.into()))?;
    let named = named_dir.path().join(&file_name);
    std::fs::rename(&path, &named).map_err(|e| internal(e.into()))?;
    let field = |k: &str| upload.fields.get(k).filter(|v| !v.trim().is_empty()).cloned();
    let (slot, note, change) = (field("slot"), field("note"), field("change"));
    let asset = asset.to_string();
    writing(app, who, async |site| {
        crate::commands::configs::store_capture(site, &asset, &named, slot, note, change).await.map_err(domain)
    })
    .await
}

pub async fn post_capture(
    State(app): State<App>,
    headers: HeaderMap,
    Path(name): Path<String>,
    multipart: Multipart,
) -> ApiResult {
    // A token or a session (with the CSRF header): identify before reading the body.
    let who = app.allow(&headers, &Method::POST, None, Action::EditInventory).await.map_err(json_err)?;
    let upload = read_upload(&app, multipart).await.map_err(json_err)?;
    let report = capture(&app, &who, &name, upload).await.map_err(json_err)?;
    Ok((StatusCode::CREATED, Json(report)).into_response())
}

/// The restore tests recorded, newest first.
async fn restore_tests(State(app): State<App>, headers: HeaderMap) -> ApiResult {
    app.allow(&headers, &Method::GET, None, Action::Read).await.map_err(json_err)?;
    let view = reading(&app, async |site| crate::view::load(site).await.map_err(internal)).await.map_err(json_err)?;
    let mut tests = view.restore_tests;
    tests.sort_by_key(|t| std::cmp::Reverse(t.tested_at));
    Ok(Json(tests).into_response())
}

/// Records a restore test as `who` from a multipart form: asset, slot, version, result, method, notes and an
/// optional evidence file.
pub async fn record_restore_test(
    app: &App,
    who: &Identity,
    upload: Upload,
) -> Result<datum_shared::model::RestoreTest, WebError> {
    let field = |k: &str| upload.fields.get(k).cloned().unwrap_or_default();
    let evidence = upload.file.as_ref().map(|(path, name)| (path.to_path_buf(), Some(name.clone())));
    let args = crate::commands::reports::RestoreTestArgs {
        asset: field("asset"),
        slot: Some(field("slot")),
        version: field("version"),
        result: field("result"),
        method: field("method"),
        evidence,
        notes: Some(field("notes")),
    };
    let test =
        writing(app, who, async |site| crate::commands::reports::record_restore_test(site, args).await.map_err(domain))
            .await;
    drop(upload);
    test
}

pub async fn post_restore_test(State(app): State<App>, headers: HeaderMap, multipart: Multipart) -> ApiResult {
    let who = app.allow(&headers, &Method::POST, None, Action::RecordRestoreTest).await.map_err(json_err)?;
    let upload = read_upload(&app, multipart).await.map_err(json_err)?;
    let test = record_restore_test(&app, &who, upload).await.map_err(json_err)?;
    Ok((StatusCode::CREATED, Json(test)).into_response())
}

/// The periodic reviews recorded, newest first.
async fn reviews(State(app): State<App>, headers: HeaderMap) -> ApiResult {
    app.allow(&headers, &Method::GET, None, Action::Read).await.map_err(json_err)?;
    let view = reading(&app, async |site| crate::view::load(site).await.map_err(internal)).await.map_err(json_err)?;
    let mut reviews = view.reviews;
    reviews.sort_by_key(|r| std::cmp::Reverse(r.reviewed_at));
    Ok(Json(reviews).into_response())
}

/// A review recorded, with the number of drift findings it holds.
#[derive(serde::Serialize)]
pub struct ReviewRecorded {
    pub review: datum_shared::model::Review,
    pub drift_findings: usize,
}

async fn review_new(
    State(app): State<App>,
    headers: HeaderMap,
    Json(args): Json<crate::commands::reports::ReviewArgs>,
) -> ApiResult {
    let who = app.allow(&headers, &Method::POST, None, Action::RecordReview).await.map_err(json_err)?;
    let (review, drift_findings) =
        writing(&app, &who, async |site| crate::commands::reports::record_review(site, args).await.map_err(domain))
            .await
            .map_err(json_err)?;
    Ok((StatusCode::CREATED, Json(ReviewRecorded { review, drift_findings })).into_response())
}

/// Builds the evidence pack as `who` (recorded as `evidence.export`) and answers it as a ZIP download.
pub async fn evidence_zip(
    app: &App,
    who: &Identity,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Response, WebError> {
    let now = app.now();
    let (from, to) = datum_host::evidence::period(now, from, to).map_err(domain)?;
    let (zip, name) = writing(app, who, async |site| {
        let pack = crate::commands::evidence::build_pack(site, from, to).await.map_err(internal)?;
        let folder = format!("evidence-{}-{}", site.info.name, to.format("%Y%m%d"));
        let zip = datum_host::evidence::zip(&pack.files, &folder, site.now).map_err(internal)?;
        Ok((zip, folder))
    })
    .await?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "application/zip".to_string()),
            (axum::http::header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}.zip\"")),
        ],
        zip,
    )
        .into_response())
}

#[derive(Deserialize, Default)]
struct EvidenceBody {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

async fn evidence(State(app): State<App>, headers: HeaderMap, Json(body): Json<EvidenceBody>) -> ApiResult {
    let who = app.allow(&headers, &Method::POST, None, Action::ExportEvidence).await.map_err(json_err)?;
    evidence_zip(&app, &who, body.from.as_deref(), body.to.as_deref()).await.map_err(json_err)
}
