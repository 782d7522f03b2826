//! The hub's JSON API (`/api/v1/…`): the same queries as the pages, under the same scope rules; errors as
//! `{"error", "status"}` with 401, 403, 404 as on the edge. Described at `/api/v1/openapi.json`.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use datum_host::web::{url_segment, Identity, WebError};
use datum_shared::identity::Action;
use datum_shared::model::DriftEntry;
use serde::Serialize;

use super::pages::{changes_in, json_assets, SearchQuery};
use super::{page_after, App, Filter, MAX_PAGE, PAGE};
use crate::commands::overview::SiteStatus;

/// The OpenAPI description, embedded.
const OPENAPI: &str = include_str!("openapi.json");

pub fn routes() -> Router<App> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/sites", get(sites))
        .route("/api/v1/sites/{site}", get(site))
        .route("/api/v1/assets", get(assets))
        .route("/api/v1/search", get(search_api))
}

async fn reader(app: &App, headers: &HeaderMap) -> Result<Identity, Response> {
    app.allow(headers, &Method::GET, None, Action::Read).await.map_err(WebError::json)
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn sites(State(app): State<App>, headers: HeaderMap) -> Result<Response, Response> {
    let who = reader(&app, &headers).await?;
    let list: Vec<SiteStatus> =
        app.sites(&who.user).await.map_err(WebError::json)?.iter().map(|o| o.status.clone()).collect();
    Ok(Json(list).into_response())
}

/// One site: its counts and the lists behind them.
#[derive(Serialize)]
struct SiteDetail<'a> {
    #[serde(flatten)]
    status: &'a SiteStatus,
    unauthorized_drift_list: &'a [DriftEntry],
    overdue_backups_list: Vec<&'a str>,
    overdue_reviews_list: Vec<&'a str>,
    open_changes_list: Vec<&'a datum_shared::change::ChangeRequest>,
}

async fn site(State(app): State<App>, headers: HeaderMap, Path(site): Path<String>) -> Result<Response, Response> {
    let who = reader(&app, &headers).await?;
    let o = app.site(&who.user, &site).await.map_err(WebError::json)?;
    let Some(f) = &o.findings else {
        return Ok(Json(SiteDetail {
            status: &o.status,
            unauthorized_drift_list: &[],
            overdue_backups_list: Vec::new(),
            overdue_reviews_list: Vec::new(),
            open_changes_list: Vec::new(),
        })
        .into_response());
    };
    let open = changes_in(f, None).map_err(WebError::json)?;
    Ok(Json(SiteDetail {
        status: &o.status,
        unauthorized_drift_list: &f.unauthorized_drift,
        overdue_backups_list: f.overdue_backups.iter().map(|n| n.as_str()).collect(),
        overdue_reviews_list: f.overdue_reviews.iter().map(|n| n.as_str()).collect(),
        open_changes_list: open.iter().filter_map(|id| f.view.changes.get(id)).collect(),
    })
    .into_response())
}

#[derive(serde::Deserialize, Default)]
struct Limit {
    limit: Option<usize>,
}

/// A page of the inventory (`limit`, default 500, at most 5,000), in site and asset order; when more follow,
/// a `Link: <…&after=KEY>; rel="next"` header gives the next page.
async fn assets(
    State(app): State<App>,
    headers: HeaderMap,
    Query(filter): Query<Filter>,
    Query(limit): Query<Limit>,
) -> Result<Response, Response> {
    let who = reader(&app, &headers).await?;
    let filter = filter.tidy();
    let sites = app.sites(&who.user).await.map_err(WebError::json)?;
    let list = super::inventory(&sites, &filter, app.now());
    let limit = limit.limit.unwrap_or(PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(WebError::BadRequest(format!("limit is from 1 to {MAX_PAGE}")).json());
    }
    let (range, next) = page_after(&list, filter.after.as_deref(), limit);
    let mut response = json_assets(&list[range]);
    if let Some(key) = next {
        let query = filter.query();
        let sep = if query.is_empty() { "" } else { "&" };
        let link = format!("</api/v1/assets?{query}{sep}limit={limit}&after={}>; rel=\"next\"", url_segment(&key));
        if let Ok(value) = header::HeaderValue::from_str(&link) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    Ok(response)
}

async fn search_api(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<SearchQuery>,
) -> Result<Response, Response> {
    let who = reader(&app, &headers).await?;
    if q.q.trim().is_empty() {
        return Err(WebError::BadRequest("give q, the words to search for".into()).json());
    }
    Ok(Json(super::search::search(&app, &who.user, &q.q).await.map_err(WebError::json)?).into_response())
}
