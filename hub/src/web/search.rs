//! The global search over assets, change requests, file names and content hashes of the sites a person sees,
//! and the hub's published templates. The sites' things are found in the database's index
//! (`store::search`: FTS5 on SQLite, full-text search on PostgreSQL), which [`index`] rebuilds for a site after
//! it synced (`App::indexed`, from the refresher or before a search); the templates, a short list, are matched in memory by the same rule:
//! every word of the query begins a word of the text.

use anyhow::Result;
use datum_host::web::WebError;
use datum_shared::identity::User;
use datum_shared::model::Asset;
use serde::{Deserialize, Serialize};

use super::{internal, App};
use crate::commands::overview::Overview;
use crate::store::{words_of, SearchRow, Store};

/// The most hits of each kind a search returns.
const MAX_HITS: usize = 200;

#[derive(Serialize, Default)]
pub struct Found {
    pub assets: Vec<AssetHit>,
    pub changes: Vec<ChangeHit>,
    pub files: Vec<FileHit>,
    pub templates: Vec<TemplateHit>,
    /// True when a kind had more than [`MAX_HITS`] hits (the rest are left out).
    pub truncated: bool,
}

#[derive(Serialize, Deserialize)]
pub struct AssetHit {
    pub site: String,
    pub name: String,
    /// The asset's kind and the fields it is found by.
    pub detail: String,
}

#[derive(Serialize, Deserialize)]
pub struct ChangeHit {
    pub site: String,
    pub id: String,
    pub title: String,
    pub state: String,
}

#[derive(Serialize, Deserialize)]
pub struct FileHit {
    pub site: String,
    pub asset: String,
    pub slot: String,
    pub version: u32,
    pub file_name: Option<String>,
    pub sha256: String,
}

#[derive(Serialize)]
pub struct TemplateHit {
    pub id: String,
    pub name: String,
    pub versions: Vec<String>,
}

/// What a site's overview holds to be found: one row per asset, change request and version of a file.
pub fn rows_of(o: &Overview) -> Vec<SearchRow> {
    let Some(f) = &o.findings else { return Vec::new() };
    let site = &o.row.name;
    fn json<T: Serialize>(hit: &T) -> String {
        serde_json::to_string(hit).unwrap_or_default()
    }
    let row = |kind: &'static str, hit: String, text: &str| SearchRow { kind, hit, body: words_of(text) };
    let mut out = Vec::with_capacity(f.view.assets.len() * 2 + f.view.changes.len());
    for a in f.view.assets.values() {
        let hit = AssetHit { site: site.clone(), name: a.name.to_string(), detail: describe(a) };
        out.push(row("asset", json(&hit), &super::asset_text(a)));
    }
    for c in f.view.changes.values() {
        let hit = ChangeHit {
            site: site.clone(),
            id: c.id.to_string(),
            title: c.draft.title.clone(),
            state: c.state.as_str().into(),
        };
        out.push(row("change", json(&hit), &format!("{} {} {} {}", c.id, c.draft.title, c.draft.reason, c.requester)));
    }
    for versions in f.view.versions.values() {
        for v in versions {
            let hit = FileHit {
                site: site.clone(),
                asset: v.asset.to_string(),
                slot: v.slot.to_string(),
                version: v.version,
                file_name: v.file_name.clone(),
                sha256: v.raw_hash.as_str().to_string(),
            };
            let text = format!(
                "{} {} {}",
                v.file_name.as_deref().unwrap_or(""),
                v.raw_hash.as_str(),
                v.normalized_hash.as_str()
            );
            out.push(row("file", json(&hit), &text));
        }
    }
    out
}

/// Rebuilds the site's rows of the index when they are of an earlier sync than `o` (a site that never synced
/// has nothing to find).
pub async fn index(store: &Store, o: &Overview) -> Result<bool> {
    let Some(synced) = o.row.last_synced.as_deref() else { return Ok(false) };
    if store.search_synced(&o.row.name).await?.as_deref() == Some(synced) {
        return Ok(false);
    }
    store.replace_search_rows(&o.row.name, synced, &rows_of(o)).await?;
    Ok(true)
}

/// Every word of `q` in assets, change requests, file names and content hashes of the sites the person sees,
/// and in the hub's published templates.
pub async fn search(app: &App, who: &User, q: &str) -> Result<Found, WebError> {
    // The overviews of the sites in scope, computed (and indexed) when a sync moved them on.
    let sites = app.sites(who).await?;
    for o in &sites {
        app.indexed(o).await.map_err(internal)?;
    }
    let names: Vec<&str> = sites.iter().filter(|o| o.findings.is_some()).map(|o| o.row.name.as_str()).collect();
    let mut found = Found::default();
    let limit = MAX_HITS as i64 + 1;
    let hits = |kind: &'static str| app.store.search(q, kind, &names, limit);
    let (assets, changes, files) = (hits("asset").await, hits("change").await, hits("file").await);
    found.assets = read(assets)?;
    found.changes = read(changes)?;
    found.files = read(files)?;
    let mut truncated = false;
    for len in [found.assets.len(), found.changes.len(), found.files.len()] {
        truncated |= len > MAX_HITS;
    }
    found.assets.truncate(MAX_HITS);
    found.changes.truncate(MAX_HITS);
    found.files.truncate(MAX_HITS);
    let words = words_of(q);
    let published = crate::commands::templates::published(&app.store).await.map_err(internal)?;
    for (id, versions) in &published {
        let title = versions.last().map(|p| p.title.clone()).unwrap_or_default();
        if begins_words(&words, &words_of(&format!("{id} {title}"))) {
            if found.templates.len() == MAX_HITS {
                truncated = true;
                break;
            }
            found.templates.push(TemplateHit {
                id: id.clone(),
                name: title,
                versions: versions.iter().map(|p| p.version.clone()).collect(),
            });
        }
    }
    found.truncated = truncated;
    Ok(found)
}

fn read<T: serde::de::DeserializeOwned>(
    rows: Result<Vec<String>, crate::store::StoreError>,
) -> Result<Vec<T>, WebError> {
    rows.map_err(|e| internal(e.into()))?
        .iter()
        .map(|json| serde_json::from_str(json).map_err(|e| internal(e.into())))
        .collect()
}

/// Whether every word of `query` begins a word of `text` (both as [`words_of`] gives them), as the index
/// matches.
fn begins_words(query: &str, text: &str) -> bool {
    !query.is_empty() && query.split(' ').all(|q| text.split(' ').any(|w| w.starts_with(q)))
}

/// A short description of an asset for a search hit.
fn describe(a: &Asset) -> String {
    let mut parts = vec![a.kind.as_str().to_string()];
    for (label, v) in
        [("vendor", &a.vendor), ("model", &a.model), ("serial", &a.serial), ("firmware", &a.firmware), ("ip", &a.ip)]
    {
        if let Some(v) = v {
            parts.push(format!("{label} {v}"));
        }
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_of_the_query_must_begin_a_word_of_the_text() {
        assert!(begins_words("ios hard", "ios hardening cisco ios hardening"));
        assert!(!begins_words("arden", "ios hardening"));
        assert!(!begins_words("", "ios hardening"));
    }
}
