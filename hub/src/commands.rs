//! The hub's commands except `serve`: identity, sites and enrollment tokens, cross-site reports.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Duration, Utc};
use datum_shared::drift::DriftStatus;
use datum_shared::ids::NamedId;
use datum_shared::model::Asset;
use datum_shared::policy::Policy;
use datum_shared::sync::witness;
use datum_shared::view::View;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::cli::{AssetCommand, Command, SiteCommand};
use crate::identity::{self, display_fingerprint};
use crate::store::{SiteRow, Store};
use datum_host::exit::{user, Outcome};

pub struct Context {
    pub data: PathBuf,
    pub database: Option<String>,
    pub now: DateTime<Utc>,
}

const DB_FILE: &str = "hub.db";
const DATABASE_URL_FILE: &str = "identity/database-url";

impl Context {
    /// Opens the hub's database: `--database`, else the URL remembered by `init`, else the SQLite file.
    pub async fn store(&self) -> Result<Store> {
        let remembered = std::fs::read_to_string(self.data.join(DATABASE_URL_FILE)).ok().map(|s| s.trim().to_string());
        let url = self.database.clone().or(remembered);
        if url.is_none() && !self.data.join(DB_FILE).exists() {
            return Err(user(format!(
                "{} is not a hub data directory; run `datum-hub init` first",
                self.data.display()
            )));
        }
        let shown = match &url {
            Some(_) => "(PostgreSQL)".to_string(),
            None => self.data.join(DB_FILE).display().to_string(),
        };
        let store = match Store::open(url.as_deref(), &self.data.join(DB_FILE), false).await {
            Ok(store) => store,
            Err(e @ crate::store::StoreError::Damaged { .. }) => return Err(e.into()),
            Err(e) => {
                return Err(anyhow::Error::from(e).context("open the hub database"));
            }
        };
        store.check_holds_hub(&shown).await?;
        Ok(store)
    }
}

pub async fn run(ctx: Context, command: Command) -> Result<Outcome> {
    match command {
        Command::Init { name, id } => init(&ctx, &name, id.as_deref()).await,
        Command::Site { command } => site(&ctx, command).await,
        Command::Serve { listen, no_udp } => crate::serve::serve(&ctx, listen, !no_udp).await,
        Command::Asset { command: AssetCommand::List { site, all, json } } => asset_list(&ctx, site, all, json).await,
        Command::Status { json } => status(&ctx, json).await,
    }
}

async fn init(ctx: &Context, display: &str, id: Option<&str>) -> Result<Outcome> {
    let named = NamedId::new("hub", display, id).map_err(user)?;
    let name = named.id.as_str();
    let data = &ctx.data;
    if data.join(DB_FILE).exists() || data.join("identity/root.pem").exists() {
        return Err(user(format!("{} already holds a hub", data.display())));
    }
    std::fs::create_dir_all(data).with_context(|| format!("create {}", data.display()))?;
    // The database first: a wrong --database URL must fail before any key is made.
    let store = Store::open(ctx.database.as_deref(), &data.join(DB_FILE), true).await.context("create the database")?;
    if store.meta("hub_name").await?.is_some() {
        return Err(user("that database already belongs to a hub; give each hub its own database"));
    }
    let id = identity::create(data, name, ctx.now)?;
    if let Some(url) = &ctx.database {
        datum_host::fs::write_private(&data.join(DATABASE_URL_FILE), url.as_bytes())?;
    }
    store.set_meta("hub_name", name).await?;
    if let Some(display) = &named.display {
        store.set_meta("hub_display_name", display).await?;
    }
    store.set_meta("store_id", &hex::encode(rand::random::<[u8; 8]>())).await?;
    store.close().await;
    match &named.display {
        Some(display) => println!("hub {display} (identifier {name}) created in {}", data.display()),
        None => println!("hub {name} created in {}", data.display()),
    }
    println!("hub fingerprint: {}", display_fingerprint(&id.fingerprint));
    Ok(Outcome::Clean)
}

fn new_token() -> (String, String) {
    let token = hex::encode(rand::random::<[u8; 20]>());
    (token.clone(), token_hash(&token))
}

/// Tokens are stored only as their SHA-256: they are 160 random bits, so no slow hash is needed, and a
/// copy of the database does not let anyone enroll.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

async fn site(ctx: &Context, command: SiteCommand) -> Result<Outcome> {
    let store = ctx.store().await?;
    let result = site_command(ctx, &store, command).await;
    store.close().await;
    result
}

/// The identifier a site is known by, from its identifier or its name as people say it ("Werk Süd").
fn site_id_of(name: String) -> String {
    NamedId::new("site", &name, None).map(|n| n.id.to_string()).unwrap_or(name)
}

async fn site_command(ctx: &Context, store: &Store, command: SiteCommand) -> Result<Outcome> {
    match command {
        SiteCommand::Add { name, id, valid_hours, json } => {
            let named = NamedId::new("site", &name, id.as_deref()).map_err(user)?;
            let name = named.id.to_string();
            let (token, hash) = new_token();
            let expires = ctx.now + Duration::hours(i64::from(valid_hours.clamp(1, 24 * 30)));
            if !store.add_site(&name, named.display.as_deref(), &hash, ctx.now, expires).await? {
                return Err(user(format!("site {name} exists; `datum-hub site token {name}` issues a new token")));
            }
            if let (Some(display), false) = (&named.display, json) {
                println!("site {display} has the identifier {name}");
            }
            print_token(ctx, &name, &token, expires, json)
        }
        SiteCommand::Token { name, valid_hours, json } => {
            let name = site_id_of(name);
            let site = store.site(&name).await?.ok_or_else(|| user(format!("no site named {name}")))?;
            if site.revoked_at.is_some() {
                return Err(user(format!("site {name} is revoked")));
            }
            let (token, hash) = new_token();
            let expires = ctx.now + Duration::hours(i64::from(valid_hours.clamp(1, 24 * 30)));
            store.add_token(&name, &hash, ctx.now, expires).await?;
            print_token(ctx, &name, &token, expires, json)
        }
        SiteCommand::List { json } => {
            let sites = store.sites().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&sites)?);
            } else {
                for s in &sites {
                    println!(
                        "{:<24} {:<8} last contact {}",
                        s.name,
                        if s.revoked_at.is_some() {
                            "REVOKED"
                        } else if s.site_id.is_some() {
                            "enrolled"
                        } else {
                            "pending"
                        },
                        s.last_contact.as_deref().unwrap_or("never")
                    );
                }
            }
            Ok(Outcome::Clean)
        }
        SiteCommand::Show { name, json } => {
            let name = site_id_of(name);
            let site = store.site(&name).await?.ok_or_else(|| user(format!("no site named {name}")))?;
            let nodes = store.nodes_of(&name).await?;
            let violations = store.violations(&name).await?;
            let mut documents = Vec::new();
            if let Some(site_id) = &site.site_id {
                for (doc, _) in store.doc_heads(site_id).await? {
                    if !doc.starts_with("site/") {
                        continue;
                    }
                    // Attribution: which node sent which change, and when.
                    let receipts = store.receipts(&doc).await?;
                    let last = receipts.iter().map(|(_, _, at)| at.clone()).max();
                    let mut by_node: BTreeMap<String, usize> = BTreeMap::new();
                    for (_, node, _) in &receipts {
                        *by_node.entry(node.clone()).or_default() += 1;
                    }
                    documents.push(json!({"doc": doc, "changes_received": receipts.len(), "by_node": by_node, "last_received": last}));
                }
            }
            if json {
                let v = json!({"site": site, "nodes": nodes, "documents": documents, "violations": violations.iter()
                    .map(|(at, node, reason)| json!({"at": at, "node": node, "reason": reason})).collect::<Vec<_>>()});
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("site {} (id {})", site.name, site.site_id.as_deref().unwrap_or("not enrolled yet"));
                println!(
                    "created {}, last contact {}",
                    site.created_at,
                    site.last_contact.as_deref().unwrap_or("never")
                );
                if let Some(r) = &site.revoked_at {
                    println!("REVOKED at {r}");
                }
                for n in &nodes {
                    let state = if n.replaced_by.is_some() { "replaced" } else { "current" };
                    println!("node {} cert {} valid until {} ({state})", n.node, &n.fingerprint[..16], n.not_after);
                }
                for d in &documents {
                    println!(
                        "document {} : {} changes received, last {}",
                        d["doc"], d["changes_received"], d["last_received"]
                    );
                }
                for (at, node, reason) in &violations {
                    println!("VIOLATION {at} node {node}: {reason}");
                }
            }
            Ok(Outcome::Clean)
        }
        SiteCommand::Revoke { name } => {
            let name = site_id_of(name);
            if store.site(&name).await?.is_none() {
                return Err(user(format!("no site named {name}")));
            }
            if store.revoke_site(&name, ctx.now).await? {
                println!(
                    "site {name} revoked: its nodes are refused from now on (live connections are cut within seconds)"
                );
            } else {
                println!("site {name} was already revoked");
            }
            Ok(Outcome::Clean)
        }
    }
}

fn print_token(ctx: &Context, site: &str, token: &str, expires: DateTime<Utc>, json: bool) -> Result<Outcome> {
    let id = identity::load(&ctx.data)?;
    if json {
        let v = json!({"site": site, "token": token, "expires_at": expires, "fingerprint": id.fingerprint});
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("site {site}: one-time enrollment token (valid until {}):", expires.to_rfc3339());
        println!("  {token}");
        println!("hub fingerprint: {}", display_fingerprint(&id.fingerprint));
        println!("on the plant's edge node:");
        println!("  datum-edge enroll --hub HUB-ADDRESS:7800 --token {token} --fingerprint {}", id.fingerprint);
    }
    Ok(Outcome::Clean)
}

#[derive(Serialize)]
struct AssetRow {
    site: String,
    #[serde(flatten)]
    asset: Asset,
}

async fn site_names(store: &Store) -> Result<BTreeMap<String, SiteRow>> {
    Ok(store.sites().await?.into_iter().filter_map(|s| s.site_id.clone().map(|id| (id, s))).collect())
}

async fn asset_list(ctx: &Context, site: Option<String>, all: bool, json: bool) -> Result<Outcome> {
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
    for (sid, key, text) in store.records("assets", site_id.as_deref()).await? {
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

#[derive(Serialize)]
struct SiteStatus {
    site: String,
    enrolled: bool,
    revoked: bool,
    last_contact: Option<String>,
    last_synced: Option<String>,
    last_result: Option<String>,
    in_sync: bool,
    assets: usize,
    open_changes: usize,
    /// Slots whose configuration differs from the approved baseline with no change authorizing it.
    unauthorized_drift: usize,
    /// Assets whose backup (capture) or passing restore test is older than their criticality allows.
    overdue_backups: usize,
    /// Assets whose periodic review is overdue.
    overdue_reviews: usize,
    files_stored: i64,
    files_missing: i64,
    violations: usize,
    /// The newest recorded violation that says the site's audit trail went back or differs from what the hub
    /// witnessed (`datum_shared::sync::witness`); `null` when there is none.
    history_rolled_back: Option<String>,
}

async fn status(ctx: &Context, json: bool) -> Result<Outcome> {
    let store = ctx.store().await?;
    let mut out = Vec::new();
    for site in store.sites().await? {
        let violations = store.violations(&site.name).await?;
        let history_rolled_back = violations
            .iter()
            .rev()
            .find(|(_, _, reason)| reason.starts_with(witness::ROLLED_BACK) || reason.starts_with(witness::DIVERGED))
            .map(|(at, node, reason)| format!("{at} node {node}: {reason}"));
        let mut s = SiteStatus {
            site: site.name.clone(),
            enrolled: site.site_id.is_some(),
            revoked: site.revoked_at.is_some(),
            last_contact: site.last_contact.clone(),
            last_synced: site.last_synced.clone(),
            last_result: site.last_result.clone(),
            in_sync: false,
            assets: 0,
            open_changes: 0,
            unauthorized_drift: 0,
            overdue_backups: 0,
            overdue_reviews: 0,
            files_stored: 0,
            files_missing: 0,
            violations: violations.len(),
            history_rolled_back,
        };
        if let Some(site_id) = &site.site_id {
            // The same view and rules as the edge's reports, over the hub's copy of the site's records.
            let mut rows = BTreeMap::new();
            for collection in datum_shared::view::COLLECTIONS {
                let list: Vec<(String, String)> =
                    store.records(collection, Some(site_id)).await?.into_iter().map(|(_, k, j)| (k, j)).collect();
                rows.insert(collection, list);
            }
            let view = View::from_rows(|c| rows.get(c).cloned().unwrap_or_default())
                .with_context(|| format!("site {}", site.name))?;
            let policy = Policy::default();
            s.assets = view.reported_assets().count();
            s.open_changes = view.changes.values().filter(|c| c.state.is_open()).count();
            s.unauthorized_drift = view
                .drift(ctx.now, &policy, None)
                .iter()
                .filter(|e| e.status == DriftStatus::DriftUnauthorized)
                .count();
            for asset in view.reported_assets() {
                let b = view.backup_state(asset, ctx.now, &policy);
                s.overdue_backups += usize::from(b.backup_overdue || b.test_overdue);
                s.overdue_reviews += usize::from(view.review_state(asset, ctx.now, &policy).status.is_overdue());
            }
            let (stored, missing, _) = store.blob_counts(site_id).await?;
            s.files_stored = stored;
            s.files_missing = missing;
            s.in_sync = site.last_result.as_deref() == Some("synced") && missing == 0;
        }
        out.push(s);
    }
    store.close().await;
    let findings = out.iter().any(|s| {
        s.violations > 0
            || s.history_rolled_back.is_some()
            || (s.enrolled && !s.in_sync)
            || s.unauthorized_drift > 0
            || s.overdue_backups > 0
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let mut table: Vec<Vec<String>> = Vec::new();
        for s in &out {
            let sync = if s.revoked {
                "revoked"
            } else if !s.enrolled {
                "pending"
            } else if s.in_sync {
                "in sync"
            } else {
                "BEHIND"
            };
            table.push(vec![
                s.site.clone(),
                sync.to_string(),
                s.last_contact.clone().unwrap_or_else(|| "never".into()),
                s.assets.to_string(),
                s.open_changes.to_string(),
                s.unauthorized_drift.to_string(),
                s.overdue_backups.to_string(),
                s.overdue_reviews.to_string(),
                s.files_stored.to_string(),
                s.files_missing.to_string(),
                s.violations.to_string(),
                if s.history_rolled_back.is_some() { "ROLLED BACK" } else { "ok" }.to_string(),
            ]);
        }
        let header = [
            "SITE",
            "SYNC",
            "LAST CONTACT",
            "ASSETS",
            "OPEN",
            "DRIFT",
            "BACKUPS",
            "REVIEWS",
            "FILES",
            "MISSING",
            "VIOL",
            "HISTORY",
        ];
        print!("{}", datum_shared::text::table(&header, &table));
    }
    Ok(Outcome::from_findings(findings))
}
