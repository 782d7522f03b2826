//! `restore-from-hub`: rebuilds a site whose disk died from the hub's copy, as a new node of the same site.
//!
//! What comes back: every document of the site (assets, configuration versions, baselines, changes,
//! reviews…) exactly as the hub holds them, every configuration file the hub holds (checked against its
//! SHA-256 name), the projection rebuilt from the documents, and the sync cursors. What does not: the site
//! key and the audit table lived only on the dead disk. The restored site gets a new site key, and its audit
//! chain starts again with one signed `site.restore` entry that adopts the documents' history as received
//! (each document's heads) and names the previous key; `audit verify` checks the history against it.
//!
//! Crash safety: everything is built in `.NAME.restoring` beside the target and renamed into place at the
//! end, so the target never holds a half-made site. The staging directory keeps the new node's enrollment
//! and what was received; running the command again resumes from there (the one-time token was spent by the
//! first run, so a rerun does not need it to be valid).

use std::fs;
use std::path::Path;

use anyhow::{anyhow, bail, Context as _, Result};
use datum_host::net::pki;
use datum_host::net::transport::Mode;
use datum_shared::audit::DocChange;
use datum_shared::ids::SiteId;
use datum_shared::sync::enrollment;
use datum_shared::sync::wire::Msg;
use serde::{Deserialize, Serialize};

use super::federation::{check_issued, enroll_exchange, run_pass, HubLink, PassReport, PassTarget};
use super::Context;
use crate::blobs::BlobStore;
use crate::output::print_json;
use crate::site::{load_doc_from, read_audit_head, write_audit_head, DirLock, Site};
use crate::store::{Batch, Store};
use datum_host::exit::{user, Outcome};
use datum_host::fs::{sync_dir, write_private};

/// The site this staging directory is being restored as (written with the enrollment, before `hub.json`).
const RESTORE_FILE: &str = "identity/restore.json";

pub struct RestoreArgs {
    pub hub: String,
    pub token: String,
    pub fingerprint: String,
    pub node: Option<String>,
    pub site: Option<String>,
    pub mode: Mode,
    pub json: bool,
}

#[derive(Serialize, Deserialize)]
struct RestoreIdentity {
    site_name: String,
    site_id: SiteId,
}

#[derive(Serialize)]
struct RestoreReport {
    site: String,
    site_id: SiteId,
    node: String,
    hub: String,
    documents: usize,
    records: usize,
    files: usize,
    adopted_heads: usize,
    files_missing: Vec<String>,
    /// What each missing file was (`fw-1/running-config v2`, `restore test #3 evidence`); not in the JSON,
    /// whose `files_missing` stays a list of hashes.
    #[serde(skip)]
    missing_what: Vec<String>,
    audit_key: String,
    /// The first audit entry's summary: where it came from, and the key of the lost chain.
    restore_entry: String,
}

pub async fn restore_from_hub(ctx: &Context, args: RestoreArgs) -> Result<Outcome> {
    let target = &ctx.data;
    if target.join("datum.db").exists()
        || (target.exists() && fs::read_dir(target).map(|mut d| d.next().is_some()).unwrap_or(true))
    {
        return Err(user(format!(
            "{} already exists and is not empty; restore into a new directory",
            target.display()
        )));
    }
    let fingerprint = pki::parse_fingerprint(&args.fingerprint).map_err(|e| user(format!("--fingerprint: {e}")))?;
    let parent = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    fs::create_dir_all(&parent).with_context(|| format!("create {}", parent.display()))?;
    let leaf = target.file_name().ok_or_else(|| user("--data must name a directory"))?.to_string_lossy().to_string();
    let staging = parent.join(format!(".{leaf}.restoring"));
    fs::create_dir_all(staging.join("identity")).with_context(|| format!("create {}", staging.display()))?;
    let lock = DirLock::acquire(&staging)?;

    let (link, identity) = enrollment(&staging, &args, &fingerprint).await?;
    let store = Store::open(&staging.join("datum.db"), true).await?;
    store.set_meta("site_id", identity.site_id.as_str()).await?;
    let blobs = BlobStore::open(staging.join("blobs"))?;
    let mut pass_report = None;
    if store.last_audit().await?.is_none() {
        // Not finished before: fetch everything (again: what an interrupted run stored is kept and resumed).
        let pass = PassTarget {
            dir: &staging,
            store: &store,
            blobs: &blobs,
            site_id: &identity.site_id,
            restoring: true,
            lock_writes: false,
        };
        let report = run_pass(&pass, args.mode, false, ctx.now)
            .await
            .map_err(|e| e.context("fetch the site from the hub (run the same command again to resume)"))?;
        let _ = fs::remove_dir_all(staging.join("tmp"));
        let adopted = rebuild_projection(&store).await?;
        if adopted.is_empty() {
            bail!("the hub sent no documents of site {}", identity.site_name);
        }
        store.close().await;
        let hub_name = link.hub_name.clone();
        let node = link.node.clone();
        let n_docs = adopted.len();
        let reason = format!("the previous node's disk was lost; rebuilt from hub {hub_name} as node {node}");
        Site::finish_restore(&staging, lock, &ctx.actor, ctx.now, adopted, reason, |info| {
            format!(
                "restored from hub {hub_name}: the history of {n_docs} document heads adopted; the previous audit \
                 chain, signed by key {}, was lost with the old disk",
                info.audit_key
            )
        })
        .await?;
        pass_report = Some(report);
    } else {
        // Finished before the rename: make sure the head file matches, then go live.
        if let Some((seq, hash)) = store.last_audit().await? {
            if read_audit_head(&staging).ok().flatten().is_none() {
                write_audit_head(&staging, seq, &hash)?;
            }
        }
        store.close().await;
        drop(lock);
    }

    // Open it like any site and prove it whole before it goes live.
    let site = Site::open(&staging, &ctx.actor, ctx.now).await?;
    let verify = super::audit::verify_site(&site, true).await?;
    let referenced = super::reports::referenced_blobs(&site).await?;
    let (files_missing, missing_what): (Vec<String>, Vec<String>) =
        referenced.into_iter().filter(|(h, _)| !site.blobs.contains(h)).map(|(h, what)| (h, what.join(", "))).unzip();
    let problems: Vec<&String> =
        verify.problems.iter().filter(|p| !files_missing.iter().any(|h| p.contains(h.as_str()))).collect();
    if !problems.is_empty() {
        let problems: Vec<&str> = problems.iter().map(|p| p.as_str()).collect();
        site.close().await;
        bail!(
            "the restored site does not verify (left in {} for inspection):\n  {}",
            staging.display(),
            problems.join("\n  ")
        );
    }
    let entries = site.store.audit().await?;
    let restore_entry = entries.first().ok_or_else(|| anyhow!("the restore audit entry is missing"))?;
    let report = RestoreReport {
        site: site.info.name.clone(),
        site_id: site.info.site_id.clone(),
        node: link.node.clone(),
        hub: link.hub_name.clone(),
        documents: site.store.doc_ids().await?.len(),
        records: site.store.all_records().await?.len(),
        files: site.blobs.list()?.len(),
        adopted_heads: restore_entry.entry.adopted.len(),
        files_missing,
        missing_what,
        audit_key: site.info.audit_key.clone(),
        restore_entry: restore_entry.entry.summary.clone(),
    };
    site.close().await;

    fs::rename(&staging, target).with_context(|| format!("move the restored site into {}", target.display()))?;
    sync_dir(&parent).ok();
    print_report(&report, pass_report.as_ref(), target, args.json)?;
    Ok(Outcome::from_findings(!report.files_missing.is_empty()))
}

/// The new node's enrollment: made now, or kept from an interrupted run in `staging`.
async fn enrollment(staging: &Path, args: &RestoreArgs, fingerprint: &str) -> Result<(HubLink, RestoreIdentity)> {
    let saved = fs::read(staging.join(RESTORE_FILE)).ok().and_then(|b| serde_json::from_slice(&b).ok());
    if let (Some(link), Some(identity)) = (HubLink::load(staging)?, saved) {
        let identity: RestoreIdentity = identity;
        if link.address != args.hub || link.fingerprint != fingerprint {
            return Err(user(format!(
                "{} holds an interrupted restore from hub {} at {}; run it again with that hub, or remove the \
                 directory to start over",
                staging.display(),
                link.hub_name,
                link.address
            )));
        }
        if args.site.as_ref().is_some_and(|s| *s != identity.site_name) {
            return Err(user(format!(
                "{} holds an interrupted restore of site {}, not {}",
                staging.display(),
                identity.site_name,
                args.site.as_deref().unwrap_or_default()
            )));
        }
        eprintln!("resuming the interrupted restore of site {} as node {}", identity.site_name, link.node);
        return Ok((link, identity));
    }
    let node = match &args.node {
        Some(n) => n.clone(),
        None => format!("{}-{}", args.site.as_deref().unwrap_or("restored"), hex::encode(rand::random::<[u8; 2]>())),
    };
    datum_shared::ids::SiteName::new(&node).map_err(|e| user(format!("--node: {e}")))?;
    let (key_pem, csr) = pki::new_node_key()?;
    let request = Msg::EnrollForRestore {
        token: args.token.trim().to_string(),
        site_name: args.site.clone(),
        node: node.clone(),
        csr,
    };
    let (chain_pem, root_pem, hub_name, site_name, site_id, publishing_key) =
        match enroll_exchange(&args.hub, fingerprint, args.mode, request).await? {
            (Msg::EnrolledForRestore { chain_pem, root_pem, hub_name, site_name, site_id }, key) => {
                (chain_pem, root_pem, hub_name, site_name, site_id, key)
            }
            (other, _) => return Err(anyhow!("unexpected answer from the hub: {other:?}")),
        };
    let issued = check_issued(&root_pem, &chain_pem, fingerprint)?;
    if issued.site != site_name {
        bail!("the hub issued a certificate for {}/{} but answered for site {site_name}", issued.site, issued.node);
    }
    let site_id = enrollment::check_answer(args.site.as_deref(), &node, &issued.site, &issued.node, &site_id)
        .map_err(|e| anyhow!(e))?;
    let identity = RestoreIdentity { site_name, site_id };
    write_private(&staging.join(RESTORE_FILE), &serde_json::to_vec_pretty(&identity)?)?;
    let link = HubLink {
        address: args.hub.clone(),
        hub_name,
        node,
        fingerprint: fingerprint.to_string(),
        root_pem,
        chain_pem,
        key_pem,
        publishing_key,
    };
    link.save(staging)?;
    Ok((link, identity))
}

/// Writes the projection of every received document; returns every document's heads (the history the new
/// audit chain adopts).
async fn rebuild_projection(store: &Store) -> Result<Vec<DocChange>> {
    let mut records = Vec::new();
    let mut adopted = Vec::new();
    for id in store.doc_ids().await? {
        let doc = load_doc_from(store, &id).await?;
        for head in doc.get_heads() {
            adopted.push(DocChange { doc: id.to_string(), change: head.to_string() });
        }
        records.extend(crate::site::projection_rows(&id, &doc)?);
    }
    store.commit(Batch { records, ..Batch::default() }).await?;
    Ok(adopted)
}

fn print_report(report: &RestoreReport, pass: Option<&PassReport>, target: &Path, json: bool) -> Result<()> {
    if json {
        return print_json(report);
    }
    println!(
        "restored site {} (id {}) into {} as node {} of hub {}: {} documents, {} records, {} configuration files{}",
        report.site,
        report.site_id,
        target.display(),
        report.node,
        report.hub,
        report.documents,
        report.records,
        report.files,
        pass.map(|p| format!(" ({} received now)", p.files_received)).unwrap_or_default()
    );
    println!(
        "new site key {}: the audit chain starts again with a signed site.restore entry: {}",
        short(&report.audit_key),
        report.restore_entry
    );
    for (hash, what) in report.files_missing.iter().zip(&report.missing_what) {
        println!("NOT RECOVERED: {what}: file {hash} (the hub holds no good copy)");
    }
    Ok(())
}

fn short(key: &str) -> &str {
    &key[..key.len().min(16)]
}
