//! `report`: the auditor's evidence pack from the site's own records. The pack's files, its seal, its writing
//! (whole or not at all) and `report verify` are `datum_host::evidence` (shared with the hub's `report`); this
//! file gathers the site's records for it.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Result;
use chrono::{DateTime, Utc};
use datum_host::evidence::{self as pack, Maker, Pack, Signer};
use datum_host::exit::Outcome;
use datum_shared::audit::SignedEntry;
use datum_shared::evidence::{self, HubAnchor, Trail};
use serde::{Deserialize, Serialize};

use crate::site::{Site, Write};

/// Where a confirmed sync pass records the newest audit entry the hub now holds.
pub const HUB_ANCHOR: &str = "identity/hub-anchor.json";

/// Written after a sync pass the hub confirmed: the hub holds the trail up to `seq`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Anchor {
    pub seq: u64,
    pub at: DateTime<Utc>,
}

/// Records the export in the audit trail, then gathers the records and builds the pack (the CLI writes it to
/// a directory, the web UI sends it as a ZIP).
pub async fn build_pack(site: &mut Site, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Pack> {
    // The export is itself evidence: recorded before the records are read, so the pack shows it.
    let mut w = Write::new("evidence.export", site.info.name.as_str(), None);
    w.put(
        &site.doc_id(&format!("records/{}", datum_shared::document::year_period(site.now))),
        "exports",
        &format!("{}", site.now.timestamp_micros()),
        &serde_json::json!({ "by": site.actor, "at": site.now, "from": from, "to": to }),
    )?;
    site.apply(w, format!("evidence pack for {} to {}", from.format("%Y-%m-%d"), to.format("%Y-%m-%d"))).await?;
    let view = crate::view::load(site).await?;
    let users = super::users::users(site).await?;
    let store = datum_host::auth::AuthStore::open(&site.dir).await?;
    let mut with_totp = BTreeSet::new();
    for u in &users {
        if store.has_totp(&u.name).await? {
            with_totp.insert(u.name.clone());
        }
    }
    store.close().await;
    let audit: Vec<SignedEntry> = site.store.audit().await?;
    let verified = super::audit::verify_site(site, true).await?;
    let link = super::federation::HubLink::load(&site.dir)?;
    let hub = match &link {
        Some(link) => {
            let anchor: Option<Anchor> =
                std::fs::read(site.dir.join(HUB_ANCHOR)).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok());
            Some(HubAnchor {
                hub: link.hub_name.clone(),
                last_sync: anchor.as_ref().map(|a| a.at),
                witnessed_seq: anchor.map(|a| a.seq),
            })
        }
        None => None,
    };
    let inputs = evidence::Inputs {
        site: site.info.display_name.as_deref().unwrap_or(&site.info.name),
        now: site.now,
        from,
        to,
        view: &view,
        policy: &site.policy,
        users: &users,
        with_totp: Some(&with_totp),
        trail: Trail::Kept { entries: &audit, problems: &verified.other_problems },
        blobs_checked: verified.blobs,
        blob_problems: &verified.blob_problems,
        hub,
    };
    let evidence = evidence::assess(&inputs);

    let key = site.fingerprint_key();
    let mut diffs = Vec::new();
    for d in pack::drifted(&view, site.now, &site.policy) {
        let read = |v: &datum_shared::model::ConfigVersion| {
            (v.size <= datum_shared::normalize::MAX_NORMALIZE_BYTES as u64)
                .then(|| site.blobs.read(v.raw_hash.as_str()).ok())
                .flatten()
        };
        let (old, new) = (read(d.baseline), read(d.latest));
        diffs.push(pack::diff_file(&d, old.as_deref(), new.as_deref(), &key));
    }
    let integrity = serde_json::json!({
        "checked_at": site.now,
        "audit_entries": audit.len(),
        "stored_files": verified.blobs,
        "audit_problems": verified.other_problems,
        "file_problems": verified.blob_problems,
    });
    let maker = Maker { from: "the site's signed records", signer: Signer::Site };
    let mut files = pack::site_files(&evidence, &inputs, &maker, diffs, integrity)?;
    if let Some(link) = link {
        files.push(("hub.pem".into(), link.chain_pem.into_bytes()));
    }
    let files = pack::seal(files, &site.info.name, site.now, Signer::Site, site.signing_key())?;
    Ok(Pack { files, evidence: vec![evidence] })
}

pub async fn report(
    site: &mut Site,
    from: Option<String>,
    to: Option<String>,
    out: &Path,
    with_zip: bool,
) -> Result<Outcome> {
    let (from, to) = pack::period(site.now, from.as_deref(), to.as_deref())?;
    if out.as_os_str() == "-" {
        // The pack as a ZIP on standard output: how the command line beside the service receives it
        // (`broker`), which unpacks it into the caller's directory.
        let pack = build_pack(site, from, to).await?;
        let folder = format!("evidence-{}-{}", site.info.name, to.format("%Y%m%d"));
        let bytes = pack::zip(&pack.files, &folder, site.now)?;
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&bytes)?;
        stdout.flush()?;
        let (met, partly, not_met) = pack.counts();
        eprintln!("evidence pack of {} files: {met} met, {partly} partly, {not_met} not met", pack.files.len());
        return Ok(Outcome::Clean);
    }
    let target = pack::target(out, with_zip)?;
    let pack = build_pack(site, from, to).await?;
    pack::write(&pack.files, &target, site.now)?;
    let (met, partly, not_met) = pack.counts();
    println!(
        "wrote {}{} ({} files): {met} met, {partly} partly, {not_met} not met; open index.html, check with `datum-edge report verify {}`",
        out.display(),
        target.zip.as_ref().map(|z| format!(" and {}", z.display())).unwrap_or_default(),
        pack.files.len(),
        out.display()
    );
    Ok(Outcome::Clean)
}
