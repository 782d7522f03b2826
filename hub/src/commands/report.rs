//! `datum-hub report --site S|--all`: the auditor's evidence pack from the hub's copy of the sites' records,
//! signed with the hub's publishing key. One site: the same pack as the plant's `datum-edge report`, made from
//! what the hub holds (the audit trail's entries stay at the plant; the hub shows the head it witnessed). All
//! sites: one such pack per site under `sites/` (each verifiable alone) and a cross-site summary, sealed again
//! as a whole. The pack's files and seal are `datum_host::evidence`, shared with the edge.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use datum_host::evidence::{self as pack, Maker, Signer, SiteSummary};
use datum_host::exit::{user, Outcome};
use datum_shared::evidence::{self, Evidence, HubAnchor, Trail, Witness};
use datum_shared::identity::User;
use datum_shared::model::{ConfigVersion, SiteInfo};
use datum_shared::normalize::{FingerprintKey, MAX_NORMALIZE_BYTES};
use ed25519_dalek::{Signature, SigningKey, Verifier, VerifyingKey};
use serde::Serialize;

use crate::context::Context;
use crate::store::{parse_time, SiteRow, Store};

/// One site's pack before it is sealed, and its verdict.
struct SitePack {
    files: Vec<(String, Vec<u8>)>,
    evidence: Evidence,
}

fn decode<T: serde::de::DeserializeOwned>(rows: Vec<(String, String, String)>, what: &str) -> Result<Vec<T>> {
    rows.into_iter()
        .map(|(_, key, json)| serde_json::from_str(&json).with_context(|| format!("decode {what} {key}")))
        .collect()
}

/// Gathers one site's records from the hub's copy and builds its (unsealed) pack.
async fn site_pack(
    store: &Store,
    hub_name: &str,
    signing: &SigningKey,
    site: &SiteRow,
    now: DateTime<Utc>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<SitePack> {
    let site_id = site.site_id.as_ref().ok_or_else(|| user(format!("site {} has not enrolled yet", site.name)))?;
    let view = super::overview::site_view(store, site_id).await.with_context(|| format!("site {}", site.name))?;
    let users: Vec<User> = decode(store.records(User::COLLECTION, Some(site_id)).await?, "user")?;
    let info: Option<SiteInfo> =
        decode::<SiteInfo>(store.records(SiteInfo::COLLECTION, Some(site_id)).await?, "site")?.into_iter().next();
    let audit_key = info.as_ref().and_then(|i| {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&i.audit_key, &mut bytes).ok().and_then(|_| VerifyingKey::from_bytes(&bytes).ok())
    });
    let witness = match store.audit_head(&site.name).await? {
        Some(head) => {
            let signature = {
                let mut bytes = [0u8; 64];
                hex::decode_to_slice(&head.signature, &mut bytes).ok().map(|_| Signature::from_bytes(&bytes))
            };
            let signature_ok = match (audit_key, signature) {
                (Some(key), Some(sig)) => key.verify(head.hash.as_bytes(), &sig).is_ok(),
                _ => false,
            };
            Some(Witness { seq: head.seq, at: parse_time(&head.at)?, signature_ok })
        }
        None => None,
    };
    // SR 3.4 from the hub's copy: every file the site references that the hub holds whole, re-hashed.
    let mut checked = 0usize;
    let mut incomplete = 0usize;
    let mut blob_problems = Vec::new();
    for (hash, complete) in store.site_blobs(site_id).await? {
        if !complete {
            incomplete += 1;
            continue;
        }
        checked += 1;
        match store.check_blob(&hash).await? {
            Some(true) => {}
            Some(false) => blob_problems.push(format!("stored file {hash}: its bytes no longer hash to its name")),
            None => blob_problems.push(format!("stored file {hash}: recorded complete, but its bytes are missing")),
        }
    }
    let policy = super::templates::site_policy(store, site_id).await?;
    let hub = HubAnchor {
        hub: hub_name.to_string(),
        last_sync: site.last_synced.as_deref().map(parse_time).transpose()?,
        witnessed_seq: witness.map(|w| w.seq),
    };
    let display = info
        .as_ref()
        .and_then(|i| i.display_name.clone())
        .or_else(|| site.display.clone())
        .unwrap_or_else(|| site.name.clone());
    let inputs = evidence::Inputs {
        site: &display,
        now,
        from,
        to,
        view: &view,
        policy: &policy,
        users: &users,
        with_totp: None,
        trail: Trail::Witnessed(witness),
        blobs_checked: checked,
        blob_problems: &blob_problems,
        hub: Some(hub),
    };
    let evidence = evidence::assess(&inputs);
    let key = FingerprintKey::of_hub_for_site(&signing.to_bytes(), site_id.as_str());
    let mut diffs = Vec::new();
    for d in pack::drifted(&view, now, &policy) {
        let old = read(store, d.baseline).await?;
        let new = read(store, d.latest).await?;
        diffs.push(pack::diff_file(&d, old.as_deref(), new.as_deref(), &key));
    }
    let integrity = serde_json::json!({
        "checked_at": now,
        "made_by": format!("hub {hub_name}"),
        "stored_files": checked,
        "files_not_yet_received": incomplete,
        "file_problems": blob_problems,
        "audit_head_witnessed": witness.map(|w| serde_json::json!({
            "seq": w.seq, "at": w.at, "signature_valid": w.signature_ok,
        })),
    });
    let from_text = format!("the hub {hub_name}'s copy of the site's records");
    let maker = Maker { from: &from_text, signer: Signer::Hub };
    let files = pack::site_files(&evidence, &inputs, &maker, diffs, integrity)?;
    Ok(SitePack { files, evidence })
}

/// A version's bytes from the hub's copy, when held whole and small enough to compare.
async fn read(store: &Store, v: &ConfigVersion) -> Result<Option<Vec<u8>>> {
    if v.size > MAX_NORMALIZE_BYTES as u64 {
        return Ok(None);
    }
    Ok(store.read_blob(v.raw_hash.as_str(), MAX_NORMALIZE_BYTES as u64).await?)
}

/// One row of `summary.json`.
#[derive(Serialize)]
struct SummaryRow<'a> {
    site: &'a str,
    folder: &'a str,
    met: usize,
    partly: usize,
    not_met: usize,
    statuses: Vec<(&'static str, &'static str)>,
}

pub(super) async fn report(
    ctx: &Context,
    site: Option<String>,
    from: Option<&str>,
    to: Option<&str>,
    out: &Path,
    with_zip: bool,
) -> Result<Outcome> {
    let (from, to) = pack::period(ctx.now, from, to)?;
    let target = pack::target(out, with_zip)?;
    let identity = crate::identity::load(&ctx.data)?;
    let signing = crate::identity::signing_key(&ctx.data)?;
    let store = ctx.store().await?;
    let sites: Vec<SiteRow> = match &site {
        Some(name) => vec![store.site(name).await?.ok_or_else(|| user(format!("no site named {name}")))?],
        None => store.sites().await?.into_iter().filter(|s| s.site_id.is_some()).collect(),
    };
    if sites.is_empty() {
        store.close().await;
        return Err(user("no site has enrolled yet: there is nothing to report"));
    }
    let mut packs = Vec::new();
    let mut failed = None;
    for s in &sites {
        match site_pack(&store, &identity.name, &signing, s, ctx.now, from, to).await {
            Ok(p) => packs.push((s, p)),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    store.close().await;
    if let Some(e) = failed {
        return Err(e);
    }
    let (files, evidence) = if site.is_some() {
        let (s, p) = packs.pop().expect("one site");
        (pack::seal(p.files, &s.name, ctx.now, Signer::Hub, &signing)?, vec![p.evidence])
    } else {
        let mut files = Vec::new();
        let mut used = BTreeSet::new();
        let mut sealed_sites = Vec::new();
        for (s, p) in packs {
            let mut folder = format!("sites/{}", pack::file_part(&s.name));
            let mut n = 2;
            while !used.insert(folder.clone()) {
                folder = format!("sites/{}-{n}", pack::file_part(&s.name));
                n += 1;
            }
            let sealed = pack::seal(p.files, &s.name, ctx.now, Signer::Hub, &signing)?;
            files.extend(sealed.into_iter().map(|(name, bytes)| (format!("{folder}/{name}"), bytes)));
            sealed_sites.push((folder, p.evidence));
        }
        // Sites with the most `not met` first.
        let count = |e: &Evidence, st| e.requirements.iter().filter(|r| r.status == st).count();
        sealed_sites.sort_by_key(|(_, e)| std::cmp::Reverse(count(e, evidence::Status::NotMet)));
        let rows: Vec<SummaryRow<'_>> = sealed_sites
            .iter()
            .map(|(folder, e)| SummaryRow {
                site: &e.site,
                folder,
                met: count(e, evidence::Status::Met),
                partly: count(e, evidence::Status::Partly),
                not_met: count(e, evidence::Status::NotMet),
                statuses: e.requirements.iter().map(|r| (r.id, r.status.as_str())).collect(),
            })
            .collect();
        let json = serde_json::to_vec_pretty(&serde_json::json!({
            "hub": identity.name,
            "generated_at": ctx.now,
            "period": { "from": from, "to": to },
            "sites": rows,
        }))?;
        let summaries: Vec<SiteSummary<'_>> =
            sealed_sites.iter().map(|(folder, e)| SiteSummary { folder, evidence: e }).collect();
        let html = pack::summary_html(&identity.name, ctx.now, &summaries);
        let mut top = vec![("index.html".to_string(), html.into_bytes()), ("summary.json".to_string(), json)];
        top.append(&mut files);
        (pack::seal(top, "*", ctx.now, Signer::Hub, &signing)?, sealed_sites.into_iter().map(|(_, e)| e).collect())
    };
    let sealed = pack::Pack { files, evidence };
    pack::write(&sealed.files, &target, ctx.now)?;
    let (met, partly, not_met) = sealed.counts();
    println!(
        "wrote {}{} ({} files, {} site(s)): {met} met, {partly} partly, {not_met} not met; signed with the hub's \
         publishing key {}; open index.html, check with `datum-hub report verify {}`",
        out.display(),
        target.zip.as_ref().map(|z| format!(" and {}", z.display())).unwrap_or_default(),
        sealed.files.len(),
        sealed.evidence.len(),
        hex::encode(signing.verifying_key().to_bytes()),
        out.display()
    );
    Ok(Outcome::Clean)
}
