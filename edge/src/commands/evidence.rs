//! `report`: the auditor's evidence pack, and `report verify`: the proof that a pack is as it was made.
//!
//! The pack is a directory: `index.html` (readable and printable without script), `evidence.json` (one entry per
//! requirement, `datum_shared::evidence`), the CSV and JSON files the requirements point at, `site-key.pub`
//! (the site's Ed25519 audit key), `hub.pem` for an enrolled site (the node's certificate chain from the hub),
//! `manifest.json` (every other file with its SHA-256) and `manifest.sig` (the site key's signature over
//! `manifest.json`). It is assembled in a temporary directory beside `--out` and renamed into place: a pack is
//! whole or absent. Configuration contents never enter it; the diffs it names are described by version
//! numbers, and the records it copies are those the masked views already show.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use datum_host::exit::{user, Outcome};
use datum_host::web::escape;
use datum_shared::audit::SignedEntry;
use datum_shared::evidence::{self, Evidence, HubAnchor, Status};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::output::print_json;
use crate::site::{Site, Write};

/// Where a confirmed sync pass records the newest audit entry the hub now holds.
pub const HUB_ANCHOR: &str = "identity/hub-anchor.json";

/// Written after a sync pass the hub confirmed: the hub holds the trail up to `seq`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Anchor {
    pub seq: u64,
    pub at: DateTime<Utc>,
}

/// Reads `--from`/`--to`: RFC 3339, or a date (its start for `--from`, its end for `--to`).
fn parse_time(flag: &str, value: &str, end_of_day: bool) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|_| user(format!("{flag} {value:?} is not YYYY-MM-DD or RFC 3339")))?;
    let start = day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
    Ok(if end_of_day { start + Duration::days(1) - Duration::nanoseconds(1) } else { start })
}

/// The manifest: every file of the pack but itself and its signature.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    site: String,
    generated_at: DateTime<Utc>,
    /// The site's audit key (hex), the same as `site-key.pub`.
    key: String,
    files: Vec<ManifestFile>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ManifestFile {
    path: String,
    sha256: String,
    bytes: u64,
}

/// A pack in memory: its files (name, bytes) in manifest order, `manifest.json` and `manifest.sig` last.
pub struct Pack {
    pub files: Vec<(String, Vec<u8>)>,
    pub evidence: Evidence,
}

/// The period from `--from`/`--to` (default: the year to now).
pub fn period(now: DateTime<Utc>, from: Option<&str>, to: Option<&str>) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    let to = match to.filter(|v| !v.trim().is_empty()) {
        Some(v) => parse_time("--to", v.trim(), true)?,
        None => now,
    };
    let from = match from.filter(|v| !v.trim().is_empty()) {
        Some(v) => parse_time("--from", v.trim(), false)?,
        None => to - Duration::days(365),
    };
    if from > to {
        return Err(user("the period starts after it ends (--from is after --to)"));
    }
    Ok((from, to))
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
        with_totp: &with_totp,
        audit: &audit,
        audit_problems: &verified.other_problems,
        blobs_checked: verified.blobs,
        blob_problems: &verified.blob_problems,
        hub,
    };
    let evidence = evidence::assess(&inputs);

    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("evidence.json".into(), serde_json::to_vec_pretty(&evidence)?),
        ("index.html".into(), html(&evidence).into_bytes()),
        ("inventory.csv".into(), inventory_csv(&view)?),
        ("backups.csv".into(), backups_csv(site, &view)?),
        ("restore-tests.csv".into(), restore_tests_csv(&view)?),
        ("drift.csv".into(), drift_csv(site, &view)?),
        ("changes.csv".into(), changes_csv(&view)?),
        ("reviews.csv".into(), reviews_csv(&view, from, to)?),
        ("users.csv".into(), users_csv(&users, &with_totp)?),
        ("audit.csv".into(), audit_csv(&audit, from, to)?),
        (
            "integrity.json".into(),
            serde_json::to_vec_pretty(&serde_json::json!({
                "checked_at": site.now,
                "audit_entries": audit.len(),
                "stored_files": verified.blobs,
                "audit_problems": verified.other_problems,
                "file_problems": verified.blob_problems,
            }))?,
        ),
        ("site-key.pub".into(), format!("{}\n", site.info.audit_key).into_bytes()),
    ];
    if let Some(link) = link {
        files.push(("hub.pem".into(), link.chain_pem.into_bytes()));
    }
    let mut manifest = Manifest {
        site: site.info.name.clone(),
        generated_at: site.now,
        key: site.info.audit_key.clone(),
        files: Vec::new(),
    };
    for (name, bytes) in &files {
        manifest.files.push(ManifestFile {
            path: name.clone(),
            sha256: hex::encode(Sha256::digest(bytes)),
            bytes: bytes.len() as u64,
        });
    }
    let manifest_bytes = serde_json::to_vec_pretty(&manifest)?;
    let signature = site.sign_bytes(&manifest_bytes);
    files.push(("manifest.json".into(), manifest_bytes));
    files.push(("manifest.sig".into(), format!("{signature}\n").into_bytes()));
    Ok(Pack { files, evidence })
}

/// The pack as a ZIP: its files under one folder named `folder`.
pub fn zip(pack: &Pack, folder: &str, at: DateTime<Utc>) -> Result<Vec<u8>> {
    let entries: Vec<(String, Vec<u8>)> =
        pack.files.iter().map(|(name, bytes)| (format!("{folder}/{name}"), bytes.clone())).collect();
    Ok(datum_host::zip::store(&entries, at)?)
}

pub async fn report(
    site: &mut Site,
    from: Option<String>,
    to: Option<String>,
    out: &Path,
    with_zip: bool,
) -> Result<Outcome> {
    let (from, to) = period(site.now, from.as_deref(), to.as_deref())?;
    if out.exists() {
        return Err(user(format!("{} exists: name a new directory for the pack", out.display())));
    }
    let folder = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "evidence".into());
    let zip_path = out.with_file_name(format!("{folder}.zip"));
    if with_zip && zip_path.exists() {
        return Err(user(format!("{} exists: name a new directory for the pack", zip_path.display())));
    }
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(user(format!("{} is not a directory", parent.display())));
    }
    let pack = build_pack(site, from, to).await?;
    let staging = tempfile::Builder::new().prefix(".datum-report-").tempdir_in(parent)?;
    for (name, bytes) in &pack.files {
        datum_host::fs::write_private(&staging.path().join(name), bytes)?;
    }
    if with_zip {
        datum_host::fs::write_private(&zip_path, &zip(&pack, &folder, site.now)?)?;
    }
    let kept = staging.keep();
    std::fs::rename(&kept, out).with_context(|| format!("move the pack to {}", out.display()))?;
    datum_host::fs::sync_dir(parent).ok();
    let count = |s: Status| pack.evidence.requirements.iter().filter(|r| r.status == s).count();
    println!(
        "wrote {}{} ({} files): {} met, {} partly, {} not met; open index.html, check with `datum-edge report verify {}`",
        out.display(),
        if with_zip { format!(" and {}", zip_path.display()) } else { String::new() },
        pack.files.len(),
        count(Status::Met),
        count(Status::Partly),
        count(Status::NotMet),
        out.display()
    );
    Ok(Outcome::Clean)
}

/// What `report verify` found.
#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
    pub intact: bool,
    pub site: Option<String>,
    /// The key that signed the manifest (compare it with the site's, e.g. at the hub).
    pub key: Option<String>,
    pub signature_ok: bool,
    pub altered: Vec<String>,
    pub missing: Vec<String>,
    pub added: Vec<String>,
    pub problems: Vec<String>,
}

/// Checks a pack on its own (no data directory needed): the signature over the manifest with the key it
/// names (and `site-key.pub` must be that key), then every file's hash, then that no file was added.
pub fn verify_pack(dir: &Path) -> VerifyReport {
    let mut r = VerifyReport::default();
    let manifest_bytes = match std::fs::read(dir.join("manifest.json")) {
        Ok(b) => b,
        Err(e) => {
            r.problems.push(format!("manifest.json: {e}"));
            return r;
        }
    };
    let manifest: Manifest = match serde_json::from_slice(&manifest_bytes) {
        Ok(m) => m,
        Err(e) => {
            r.problems.push(format!("manifest.json is not a pack manifest: {e}"));
            return r;
        }
    };
    r.site = Some(manifest.site.clone());
    r.key = Some(manifest.key.clone());
    let key = {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&manifest.key, &mut bytes).ok().and_then(|_| VerifyingKey::from_bytes(&bytes).ok())
    };
    let signature = std::fs::read_to_string(dir.join("manifest.sig")).ok().and_then(|s| {
        let mut bytes = [0u8; 64];
        hex::decode_to_slice(s.trim(), &mut bytes).ok().map(|_| Signature::from_bytes(&bytes))
    });
    match (key, signature) {
        (Some(key), Some(sig)) => r.signature_ok = key.verify(&manifest_bytes, &sig).is_ok(),
        (None, _) => r.problems.push("manifest.json names no valid key".into()),
        (_, None) => r.problems.push("manifest.sig is missing or malformed".into()),
    }
    if !r.signature_ok {
        r.problems.push("the signature over manifest.json does not verify".into());
    }
    match std::fs::read_to_string(dir.join("site-key.pub")) {
        Ok(k) if k.trim() == manifest.key => {}
        Ok(_) => r.problems.push("site-key.pub is not the key the manifest names".into()),
        Err(_) => {}
    }
    let mut listed = BTreeSet::new();
    for f in &manifest.files {
        let safe = !f.path.is_empty() && !f.path.contains(['/', '\\']) && f.path != "." && f.path != "..";
        if !safe {
            r.problems.push(format!("the manifest names an unsafe path {:?}", f.path));
            continue;
        }
        listed.insert(f.path.clone());
        match std::fs::read(dir.join(&f.path)) {
            Ok(bytes) if hex::encode(Sha256::digest(&bytes)) == f.sha256 && bytes.len() as u64 == f.bytes => {}
            Ok(_) => r.altered.push(f.path.clone()),
            Err(_) => r.missing.push(f.path.clone()),
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name != "manifest.json" && name != "manifest.sig" && !listed.contains(&name) {
                r.added.push(name);
            }
        }
    }
    r.added.sort();
    r.intact =
        r.signature_ok && r.problems.is_empty() && r.altered.is_empty() && r.missing.is_empty() && r.added.is_empty();
    r
}

pub fn verify(dir: &Path, json: bool) -> Result<Outcome> {
    if !dir.is_dir() {
        return Err(user(format!("{} is not a directory", dir.display())));
    }
    let r = verify_pack(dir);
    if json {
        print_json(&r)?;
    } else {
        for p in &r.problems {
            println!("PROBLEM  {p}");
        }
        for (what, list) in [("ALTERED", &r.altered), ("MISSING", &r.missing), ("ADDED", &r.added)] {
            for f in list {
                println!("{what:<8} {f}");
            }
        }
        if r.intact {
            println!(
                "intact: every file as made, signed by the site key {} of {}",
                r.key.as_deref().unwrap_or("?"),
                r.site.as_deref().unwrap_or("?")
            );
        } else {
            println!("NOT intact: this pack was altered after it was made, or is not a Datum evidence pack");
        }
    }
    Ok(if r.intact { Outcome::Clean } else { Outcome::Findings })
}

fn csv_bytes(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header)?;
    for row in rows {
        w.write_record(row)?;
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("csv: {e}"))
}

fn day(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339()).unwrap_or_default()
}

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

fn inventory_csv(view: &datum_shared::view::View) -> Result<Vec<u8>> {
    csv_bytes(
        &[
            "name",
            "kind",
            "vendor",
            "model",
            "serial",
            "firmware",
            "zone",
            "owner",
            "criticality",
            "in_scope",
            "created_at",
            "retired_at",
        ],
        view.assets.values().map(|a| {
            vec![
                a.name.to_string(),
                a.kind.as_str().to_string(),
                opt(&a.vendor),
                opt(&a.model),
                opt(&a.serial),
                opt(&a.firmware),
                opt(&a.zone),
                opt(&a.owner),
                a.criticality.as_str().to_string(),
                a.in_scope.to_string(),
                a.created_at.to_rfc3339(),
                day(a.retired_at),
            ]
        }),
    )
}

fn backups_csv(site: &Site, view: &datum_shared::view::View) -> Result<Vec<u8>> {
    csv_bytes(
        &[
            "asset",
            "criticality",
            "last_backup",
            "backup_interval_days",
            "backup_overdue",
            "last_passed_restore_test",
            "restore_test_interval_days",
            "restore_test_overdue",
        ],
        view.reported_assets().map(|a| {
            let b = view.backup_state(a, site.now, &site.policy);
            vec![
                a.name.to_string(),
                a.criticality.as_str().to_string(),
                day(b.last_backup),
                b.backup_interval.num_days().to_string(),
                b.backup_overdue.to_string(),
                day(b.last_test),
                b.test_interval.num_days().to_string(),
                b.test_overdue.to_string(),
            ]
        }),
    )
}

fn restore_tests_csv(view: &datum_shared::view::View) -> Result<Vec<u8>> {
    csv_bytes(
        &[
            "id",
            "tested_at",
            "tested_by",
            "asset",
            "slot",
            "version",
            "result",
            "method",
            "evidence_file",
            "evidence_sha256",
            "notes",
        ],
        view.restore_tests.iter().map(|t| {
            vec![
                t.id.to_string(),
                t.tested_at.to_rfc3339(),
                t.tested_by.clone(),
                t.asset.to_string(),
                t.slot.to_string(),
                t.version.to_string(),
                format!("{:?}", t.result).to_lowercase(),
                t.method.clone(),
                opt(&t.evidence_name),
                t.evidence_hash.as_ref().map(|h| h.to_string()).unwrap_or_default(),
                opt(&t.notes),
            ]
        }),
    )
}

fn drift_csv(site: &Site, view: &datum_shared::view::View) -> Result<Vec<u8>> {
    csv_bytes(
        &[
            "asset",
            "slot",
            "criticality",
            "status",
            "baseline_version",
            "latest_version",
            "last_capture_at",
            "change",
            "detail",
        ],
        view.drift(site.now, &site.policy, None).into_iter().map(|d| {
            vec![
                d.asset.to_string(),
                d.slot.map(|s| s.to_string()).unwrap_or_default(),
                d.criticality.as_str().to_string(),
                d.status.as_str().to_string(),
                d.baseline_version.map(|v| v.to_string()).unwrap_or_default(),
                d.latest_version.map(|v| v.to_string()).unwrap_or_default(),
                day(d.last_capture_at),
                d.change.map(|c| c.to_string()).unwrap_or_default(),
                d.detail,
            ]
        }),
    )
}

fn changes_csv(view: &datum_shared::view::View) -> Result<Vec<u8>> {
    let stamp = |s: &Option<datum_shared::change::Stamp>| {
        s.as_ref().map(|s| format!("{} {}", s.by, s.at.to_rfc3339())).unwrap_or_default()
    };
    csv_bytes(
        &[
            "id",
            "title",
            "state",
            "risk",
            "emergency",
            "requester",
            "created_at",
            "reason",
            "impact",
            "rollback",
            "approvals",
            "implemented",
            "verified",
            "closed",
            "rejected",
            "cancelled",
        ],
        view.changes.values().map(|c| {
            vec![
                c.id.to_string(),
                c.draft.title.clone(),
                c.state.as_str().to_string(),
                c.draft.risk.to_string(),
                c.draft.emergency.to_string(),
                c.requester.clone(),
                c.created_at.to_rfc3339(),
                c.draft.reason.clone(),
                c.draft.impact.clone(),
                c.draft.rollback.clone(),
                c.approvals.iter().map(|a| format!("{} {}", a.by, a.at.to_rfc3339())).collect::<Vec<_>>().join("; "),
                stamp(&c.implemented),
                stamp(&c.verified),
                stamp(&c.closed),
                stamp(&c.rejected),
                stamp(&c.cancelled),
            ]
        }),
    )
}

fn reviews_csv(view: &datum_shared::view::View, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<u8>> {
    csv_bytes(
        &["id", "reviewed_at", "reviewed_by", "zone", "assets", "outcome", "drift_findings", "notes"],
        view.reviews.iter().filter(|r| r.reviewed_at >= from && r.reviewed_at <= to).map(|r| {
            vec![
                r.id.to_string(),
                r.reviewed_at.to_rfc3339(),
                r.reviewed_by.clone(),
                opt(&r.zone),
                r.assets.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(" "),
                format!("{:?}", r.outcome).to_lowercase(),
                r.drift.iter().filter(|d| d.status.is_finding()).count().to_string(),
                r.notes.clone(),
            ]
        }),
    )
}

fn users_csv(users: &[datum_shared::identity::User], with_totp: &BTreeSet<String>) -> Result<Vec<u8>> {
    csv_bytes(
        &["name", "display", "roles", "enabled", "second_factor", "os_user"],
        users.iter().map(|u| {
            vec![
                u.name.clone(),
                opt(&u.display),
                u.roles_text(),
                (!u.disabled).to_string(),
                if with_totp.contains(&u.name) { "totp".into() } else { String::new() },
                opt(&u.os_user),
            ]
        }),
    )
}

fn audit_csv(audit: &[SignedEntry], from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<u8>> {
    csv_bytes(
        &["seq", "at", "actor", "auth", "op", "subject", "summary", "reason", "drill", "hash", "signature"],
        audit.iter().filter(|s| s.entry.at >= from && s.entry.at <= to).map(|s| {
            let e = &s.entry;
            vec![
                e.seq.to_string(),
                e.at.to_rfc3339(),
                e.actor.clone(),
                e.auth.map(|a| a.as_str().to_string()).unwrap_or_else(|| "unauthenticated".into()),
                e.op.clone(),
                e.subject.clone(),
                e.summary.clone(),
                opt(&e.reason),
                e.drill.to_string(),
                s.hash.clone(),
                s.signature.clone(),
            ]
        }),
    )
}

/// The pack's first page: scope, period, freshness, every requirement (not met first) with its reasons and
/// files. Print styles keep a requirement on one page; no script.
fn html(e: &Evidence) -> String {
    let mut reqs = String::new();
    for r in &e.requirements {
        let reasons: String = r.reasons.iter().map(|x| format!("<li>{}</li>", escape(x))).collect();
        let files: String = r.files.iter().map(|f| format!("<a href=\"{f}\">{f}</a>")).collect::<Vec<_>>().join(", ");
        reqs.push_str(&format!(
            "<section class=\"req {cls}\"><h2><span class=\"id\">{std} {id}</span> {title} <span class=\"status\">{status}</span></h2>\
             <ul>{reasons}</ul><p class=\"files\">Evidence: {files}</p></section>",
            cls = r.status.as_str().replace(' ', "-"),
            std = escape(r.standard),
            id = escape(r.id),
            title = escape(r.title),
            status = r.status.as_str(),
        ));
    }
    let count = |s: Status| e.requirements.iter().filter(|r| r.status == s).count();
    let hub = match &e.freshness.hub {
        Some(h) => format!(
            "enrolled with the hub {}; last confirmed sync {}",
            escape(&h.hub),
            h.last_sync.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_else(|| "never".into())
        ),
        None => "not enrolled with a hub".into(),
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Evidence — {site}</title><style>{CSS}</style></head><body>\
         <header><h1>IEC 62443 evidence — {site}</h1>\
         <p>Period {from} to {to}; made {made} by Datum from the site's signed records. \
         Verify this folder with <code>datum-edge report verify DIR</code>.</p></header>\
         <section class=\"summary\"><h2>Summary</h2><p><b>{not_met}</b> not met, <b>{partly}</b> partly, <b>{met}</b> met, {na} not applicable.</p>\
         <p>Scope: {in_scope} asset(s) in scope, {out} out of scope, {retired} retired — {why}.</p>\
         <p>Freshness: {never} asset(s) never captured; oldest last capture {oldest}; {hub}.</p></section>{reqs}\
         <footer><p>Files: <a href=\"evidence.json\">evidence.json</a> (machine-readable), <a href=\"manifest.json\">manifest.json</a> \
         (SHA-256 of every file, signed in manifest.sig with the key in site-key.pub).</p></footer></body></html>",
        site = escape(&e.site),
        from = e.period.from.format("%Y-%m-%d"),
        to = e.period.to.format("%Y-%m-%d"),
        made = e.generated_at.format("%Y-%m-%d %H:%M UTC"),
        not_met = count(Status::NotMet),
        partly = count(Status::Partly),
        met = count(Status::Met),
        na = count(Status::NotApplicable),
        in_scope = e.scope.assets_in_scope,
        out = e.scope.assets_out_of_scope,
        retired = e.scope.assets_retired,
        why = escape(&e.scope.why),
        never = e.freshness.never_captured,
        oldest = e.freshness.oldest_last_capture.map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_else(|| "–".into()),
    )
}

const CSS: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#111}\
h1{font-size:1.5rem}h2{font-size:1.1rem;margin:.2rem 0}.req{border-left:6px solid #999;padding:.4rem .8rem;margin:1rem 0}\
.req.met{border-color:#2a7d2a}.req.partly{border-color:#c98a00}.req.not-met{border-color:#b00020}\
.status{float:right;font-weight:bold;text-transform:uppercase;font-size:.85rem}.not-met .status{color:#b00020}\
.partly .status{color:#8a5d00}.met .status{color:#2a7d2a}.id{color:#555;font-weight:normal}.files{color:#444;font-size:.9rem}\
code{background:#f3f3f3;padding:0 .2rem}@media print{body{margin:0;max-width:none}.req{break-inside:avoid}\
a{color:inherit;text-decoration:none}header{break-after:avoid}}";
