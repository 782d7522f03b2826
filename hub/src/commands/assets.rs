//! `datum-hub asset list`: every site's inventory, from the hub's copy of the records.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use datum_host::exit::{user, Outcome};
use datum_shared::model::Asset;
use serde::Serialize;

use crate::context::Context;
use crate::store::{SiteRow, Store};

#[derive(Serialize)]
struct AssetRow {
    site: String,
    #[serde(flatten)]
    asset: Asset,
}

async fn site_names(store: &Store) -> Result<BTreeMap<String, SiteRow>> {
    Ok(store.sites().await?.into_iter().filter_map(|s| s.site_id.clone().map(|id| (id.to_string(), s))).collect())
}

pub(super) async fn asset_list(ctx: &Context, site: Option<String>, all: bool, json: bool) -> Result<Outcome> {
    let store = ctx.store().await?;
    let names = site_names(&store).await?;
    let site_id = match &site {
        Some(name) => {
            let row = store.site(name).await?.ok_or_else(|| user(format!("no site named {name}")))?;
            Some(row.site_id.ok_or_else(|| user(format!("site {name} has not enrolled yet")))?)
        }
        None => None,
    };
    let mut rows = Vec::new();
    for (sid, key, text) in store.records(Asset::COLLECTION, site_id.as_ref()).await? {
        let asset: Asset = serde_json::from_str(&text).with_context(|| format!("decode asset {key} of {sid}"))?;
        // Retired assets stay in the history, and in this list only on request (as on the edge).
        if !all && !asset.is_active() {
            continue;
        }
        let site = names.get(&sid).map(|s| s.name.clone()).unwrap_or(sid);
        rows.push(AssetRow { site, asset });
    }
    store.close().await;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let a = &r.asset;
                let mut row = vec![
                    r.site.clone(),
                    a.name.to_string(),
                    a.kind.to_string(),
                    a.criticality.to_string(),
                    a.zone.clone().unwrap_or_else(|| "-".into()),
                ];
                if all {
                    row.push(if a.is_active() { "active".into() } else { "retired".into() });
                }
                row
            })
            .collect();
        let mut header = vec!["SITE", "ASSET", "KIND", "CRITICALITY", "ZONE"];
        if all {
            header.push("STATE");
        }
        print!("{}", datum_shared::text::table(&header, &table));
        println!("\n{} assets", rows.len());
    }
    Ok(Outcome::Clean)
}
