//! `datum-hub site add|token|list|show|revoke`: sites, their one-time enrollment tokens, nodes and violations.

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::{DateTime, Duration, Utc};
use datum_host::cli::Json;
use datum_host::exit::{user, Outcome};
use datum_shared::ids::NamedId;
use serde::Serialize;
use serde_json::json;

use crate::cli::SiteCommand;
use crate::context::Context;
use crate::identity::{self, display_fingerprint, new_token};
use crate::store::{NodeRow, SiteRow, Store};

pub(super) async fn site(ctx: &Context, command: SiteCommand) -> Result<Outcome> {
    let store = ctx.store().await?;
    let result = site_command(ctx, &store, command).await;
    store.close().await;
    result
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
            let name = super::site_id_of(&name);
            let site = store.site(&name).await?.ok_or_else(|| user(format!("no site named {name}")))?;
            if site.revoked_at.is_some() {
                return Err(user(format!("site {name} is revoked")));
            }
            let (token, hash) = new_token();
            let expires = ctx.now + Duration::hours(i64::from(valid_hours.clamp(1, 24 * 30)));
            store.add_token(&name, &hash, ctx.now, expires).await?;
            print_token(ctx, &name, &token, expires, json)
        }
        SiteCommand::List(Json { json }) => {
            let sites = store.sites().await?;
            if json {
                let views: Vec<SiteView> = sites.iter().map(SiteView::from).collect();
                println!("{}", serde_json::to_string_pretty(&views)?);
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
            let name = super::site_id_of(&name);
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
                let nodes: Vec<NodeView> = nodes.iter().map(NodeView::from).collect();
                let v = json!({"site": SiteView::from(&site), "nodes": nodes, "documents": documents, "violations": violations.iter()
                    .map(|(at, node, reason)| json!({"at": at, "node": node, "reason": reason})).collect::<Vec<_>>()});
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "site {} (id {})",
                    site.name,
                    site.site_id.as_ref().map(|id| id.as_str()).unwrap_or("not enrolled yet")
                );
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
                    println!("node {} cert {} valid until {} ({state})", n.node, short(&n.fingerprint), n.not_after);
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
            let name = super::site_id_of(&name);
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

/// A site as `site list --json` and `site show --json` print it (a contract for scripts, apart from the
/// store's row).
#[derive(Serialize)]
struct SiteView<'a> {
    /// The identifier (in certificates and the edge's site record).
    name: &'a str,
    /// The name people use, when it differs from the identifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    display: Option<&'a str>,
    site_id: Option<&'a str>,
    created_at: &'a str,
    revoked_at: Option<&'a str>,
    last_contact: Option<&'a str>,
    last_synced: Option<&'a str>,
    last_result: Option<&'a str>,
}

impl<'a> From<&'a SiteRow> for SiteView<'a> {
    fn from(s: &'a SiteRow) -> Self {
        SiteView {
            name: &s.name,
            display: s.display.as_deref(),
            site_id: s.site_id.as_ref().map(|id| id.as_str()),
            created_at: &s.created_at,
            revoked_at: s.revoked_at.as_deref(),
            last_contact: s.last_contact.as_deref(),
            last_synced: s.last_synced.as_deref(),
            last_result: s.last_result.as_deref(),
        }
    }
}

/// A node of a site as `site show --json` prints it.
#[derive(Serialize)]
struct NodeView<'a> {
    /// SHA-256 of the node's certificate.
    fingerprint: &'a str,
    node: &'a str,
    site: &'a str,
    issued_at: &'a str,
    not_after: &'a str,
    /// The node that replaced this one (a restore), if any.
    replaced_by: Option<&'a str>,
}

impl<'a> From<&'a NodeRow> for NodeView<'a> {
    fn from(n: &'a NodeRow) -> Self {
        NodeView {
            fingerprint: &n.fingerprint,
            node: n.node.as_str(),
            site: &n.site,
            issued_at: &n.issued_at,
            not_after: &n.not_after,
            replaced_by: n.replaced_by.as_deref(),
        }
    }
}

/// The first 16 characters of a fingerprint, for a table (whatever the database holds: no slicing that can
/// panic).
fn short(fingerprint: &str) -> String {
    fingerprint.chars().take(16).collect()
}
