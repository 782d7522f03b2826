//! The auditor's evidence pack on disk, one implementation for `datum-edge report` (from the site's own records)
//! and `datum-hub report` (from the hub's copy): the files of a site's pack, the signed manifest that seals a
//! pack, writing it whole or not at all, and `report verify`.
//!
//! A site's pack is a directory: `index.html` (readable and printable without script), `evidence.json` (one
//! entry per requirement, `datum_shared::evidence`), the CSV and JSON files the requirements point at, masked
//! diffs of every drifted configuration against its approved baseline (`diffs/`), the signer's Ed25519 public
//! key (`site-key.pub` or `hub-key.pub`), for an enrolled site `hub.pem`, then `manifest.json` (every other file,
//! nested ones included, with its SHA-256) and `manifest.sig` (the signer's signature over `manifest.json`). A
//! hub's pack of several sites holds one such pack per site under `sites/` (each verifiable alone) and a
//! cross-site summary, sealed again as a whole.
//!
//! Configuration contents enter a pack only as the located changes of a diff, after the same secret masking as
//! every other view.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use datum_shared::audit::SignedEntry;
use datum_shared::evidence::{Evidence, Inputs, Status, Trail};
use datum_shared::model::{ConfigVersion, DriftStatus};
use datum_shared::normalize::{normalize_pair, FingerprintKey, MAX_NORMALIZE_BYTES};
use datum_shared::view::View;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::exit::user;
use crate::web::escape;

/// At most this many diffs go into a pack (the drift list names every drifted configuration either way).
pub const MAX_DIFFS: usize = 500;

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

/// Who signs a pack's manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Signer {
    /// The site's audit key: the plant made the pack from its own records.
    #[default]
    Site,
    /// The hub's publishing key: the hub made the pack from its copy of the sites' records.
    Hub,
}

impl Signer {
    /// The file of the pack that holds the signer's public key (hex).
    pub fn key_file(self) -> &'static str {
        match self {
            Signer::Site => "site-key.pub",
            Signer::Hub => "hub-key.pub",
        }
    }
}

/// The manifest: every file of the pack but itself and its signature.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    /// The site the pack is about (for a hub's pack of several sites: `*`).
    site: String,
    generated_at: DateTime<Utc>,
    #[serde(default)]
    signer: Signer,
    /// The signer's key (hex), the same as its key file.
    key: String,
    files: Vec<ManifestFile>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ManifestFile {
    path: String,
    sha256: String,
    bytes: u64,
}

/// A pack in memory: its files (relative path, bytes) in manifest order, `manifest.json` and `manifest.sig` last.
pub struct Pack {
    pub files: Vec<(String, Vec<u8>)>,
    /// The verdict of each site in the pack.
    pub evidence: Vec<Evidence>,
}

impl Pack {
    /// Counts of (met, partly, not met) over every site in the pack.
    pub fn counts(&self) -> (usize, usize, usize) {
        let count = |s: Status| self.evidence.iter().flat_map(|e| &e.requirements).filter(|r| r.status == s).count();
        (count(Status::Met), count(Status::Partly), count(Status::NotMet))
    }
}

/// A drifted configuration whose diff against its approved baseline belongs in the pack.
pub struct Drifted<'a> {
    pub baseline: &'a ConfigVersion,
    pub latest: &'a ConfigVersion,
    pub status: DriftStatus,
    /// Where its diff goes in the pack.
    pub path: String,
}

/// The configurations that differ from their approved baseline, up to `MAX_DIFFS`, unauthorized first; the
/// caller reads both versions' bytes and hands them to `diff_text`.
pub fn drifted<'a>(view: &'a View, now: DateTime<Utc>, policy: &datum_shared::policy::Policy) -> Vec<Drifted<'a>> {
    let mut entries: Vec<_> = view
        .drift(now, policy, None)
        .into_iter()
        .filter(|d| matches!(d.status, DriftStatus::DriftUnauthorized | DriftStatus::DriftAuthorized))
        .collect();
    entries.sort_by_key(|d| (d.status != DriftStatus::DriftUnauthorized, d.asset.clone(), d.slot.clone()));
    let mut used = BTreeSet::new();
    let mut out = Vec::new();
    for d in entries {
        let (Some(slot), Some(from), Some(to)) = (&d.slot, d.baseline_version, d.latest_version) else {
            continue;
        };
        let (Some(baseline), Some(latest)) = (view.version(&d.asset, slot, from), view.version(&d.asset, slot, to))
        else {
            continue;
        };
        if out.len() == MAX_DIFFS {
            break;
        }
        let mut path = format!("diffs/{}--{}.diff", file_part(d.asset.as_str()), file_part(slot.as_str()));
        let mut n = 2;
        while !used.insert(path.clone()) {
            path = format!("diffs/{}--{}-{n}.diff", file_part(d.asset.as_str()), file_part(slot.as_str()));
            n += 1;
        }
        out.push(Drifted { baseline, latest, status: d.status, path });
    }
    out
}

/// A name made safe as one path segment of a pack (and of a ZIP): letters, digits, `.`, `_`, `-`.
pub fn file_part(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect();
    if s.is_empty() || s.chars().all(|c| c == '.') {
        format!("_{s}")
    } else {
        s
    }
}

/// A drifted configuration's diff file, as it goes into the pack (and is named in `drift.csv`).
pub struct DiffFile {
    pub asset: String,
    pub slot: String,
    pub path: String,
    pub text: String,
}

/// The masked, located diff of a drifted configuration (old = its baseline, new = its newest version), as its
/// file in the pack. Secrets are masked by the normaliser with `key`.
pub fn diff_file(d: &Drifted<'_>, old: Option<&[u8]>, new: Option<&[u8]>, key: &FingerprintKey) -> DiffFile {
    DiffFile {
        asset: d.latest.asset.to_string(),
        slot: d.latest.slot.to_string(),
        path: d.path.clone(),
        text: diff_text(d, old, new, key),
    }
}

fn diff_text(d: &Drifted<'_>, old: Option<&[u8]>, new: Option<&[u8]>, key: &FingerprintKey) -> String {
    let (b, l) = (d.baseline, d.latest);
    let mut out = format!(
        "{asset} / {slot}: approved baseline v{from} ({from_at}) against the newest capture v{to} ({to_at}, by {by}); \
         {status}. Located changes only; secret values are masked.\n\n",
        asset = l.asset,
        slot = l.slot,
        from = b.version,
        from_at = b.captured_at.format("%Y-%m-%d %H:%M UTC"),
        to = l.version,
        to_at = l.captured_at.format("%Y-%m-%d %H:%M UTC"),
        by = l.captured_by,
        status = d.status.as_str(),
    );
    let (Some(old), Some(new)) = (old, new) else {
        out.push_str("A stored copy of one of the versions is missing here: no diff (see integrity.json).\n");
        return out;
    };
    if old.len() > MAX_NORMALIZE_BYTES || new.len() > MAX_NORMALIZE_BYTES {
        out.push_str(&format!(
            "One of the versions is larger than {MAX_NORMALIZE_BYTES} bytes, the limit of comparisons: no diff.\n"
        ));
        return out;
    }
    match normalize_pair(l.file_name.as_deref(), old, new, key) {
        (Ok(a), Ok(b)) => out.push_str(&datum_shared::diff::render(&datum_shared::diff::diff(&a, &b, old == new))),
        (Err(e), _) | (_, Err(e)) => out.push_str(&format!("The versions could not be compared: {e}\n")),
    }
    out
}

/// What the maker of a site's pack says of itself on the first page.
pub struct Maker<'a> {
    /// "the site's signed records", "the hub ACME's copy of the site's records".
    pub from: &'a str,
    pub signer: Signer,
}

/// The files of one site's pack, before sealing: the verdict, its first page, the records behind it and the diffs.
pub fn site_files(
    e: &Evidence,
    i: &Inputs<'_>,
    maker: &Maker<'_>,
    diffs: Vec<DiffFile>,
    integrity: serde_json::Value,
) -> Result<Vec<(String, Vec<u8>)>> {
    let mut e = e.clone();
    let mut present: BTreeSet<&str> = [
        "evidence.json",
        "index.html",
        "inventory.csv",
        "backups.csv",
        "restore-tests.csv",
        "drift.csv",
        "changes.csv",
        "reviews.csv",
        "users.csv",
        "integrity.json",
    ]
    .into();
    let audit = match i.trail {
        Trail::Kept { entries, .. } => {
            present.insert("audit.csv");
            Some(audit_csv(entries, i.from, i.to)?)
        }
        Trail::Witnessed(_) => None,
    };
    // A requirement points only at files this pack holds (the hub's pack has no audit entries).
    for r in &mut e.requirements {
        r.files.retain(|f| present.contains(f));
    }
    let diff_of: std::collections::BTreeMap<(&str, &str), &str> =
        diffs.iter().map(|d| ((d.asset.as_str(), d.slot.as_str()), d.path.as_str())).collect();
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("evidence.json".into(), serde_json::to_vec_pretty(&e)?),
        ("index.html".into(), html(&e, maker).into_bytes()),
        ("inventory.csv".into(), inventory_csv(i.view)?),
        ("backups.csv".into(), backups_csv(i)?),
        ("restore-tests.csv".into(), restore_tests_csv(i.view)?),
        ("drift.csv".into(), drift_csv(i, &diff_of)?),
        ("changes.csv".into(), changes_csv(i.view)?),
        ("reviews.csv".into(), reviews_csv(i.view, i.from, i.to)?),
        ("users.csv".into(), users_csv(i)?),
    ];
    if let Some(audit) = audit {
        files.push(("audit.csv".into(), audit));
    }
    files.push(("integrity.json".into(), serde_json::to_vec_pretty(&integrity)?));
    files.extend(diffs.into_iter().map(|d| (d.path, d.text.into_bytes())));
    Ok(files)
}

/// Adds the signer's key file, `manifest.json` over every file (in the order given) and `manifest.sig`.
pub fn seal(
    mut files: Vec<(String, Vec<u8>)>,
    site: &str,
    at: DateTime<Utc>,
    signer: Signer,
    key: &SigningKey,
) -> Result<Vec<(String, Vec<u8>)>> {
    let key_hex = hex::encode(key.verifying_key().to_bytes());
    files.push((signer.key_file().into(), format!("{key_hex}\n").into_bytes()));
    let manifest = Manifest {
        site: site.to_string(),
        generated_at: at,
        signer,
        key: key_hex,
        files: files
            .iter()
            .map(|(path, bytes)| ManifestFile {
                path: path.clone(),
                sha256: hex::encode(Sha256::digest(bytes)),
                bytes: bytes.len() as u64,
            })
            .collect(),
    };
    let manifest_bytes = serde_json::to_vec_pretty(&manifest)?;
    let signature = hex::encode(key.sign(&manifest_bytes).to_bytes());
    files.push(("manifest.json".into(), manifest_bytes));
    files.push(("manifest.sig".into(), format!("{signature}\n").into_bytes()));
    Ok(files)
}

/// The pack as a ZIP: its files under one folder named `folder`.
pub fn zip(files: &[(String, Vec<u8>)], folder: &str, at: DateTime<Utc>) -> Result<Vec<u8>> {
    let entries: Vec<(String, Vec<u8>)> =
        files.iter().map(|(name, bytes)| (format!("{folder}/{name}"), bytes.clone())).collect();
    Ok(crate::zip::store(&entries, at)?)
}

/// Where `write` puts a pack: `out` must not exist, its parent must; with `--zip` also `<out>.zip`.
pub struct Target {
    pub out: PathBuf,
    pub zip: Option<PathBuf>,
    folder: String,
    parent: PathBuf,
}

/// Checks `--out` before any work is done, so that a wrong name costs nothing.
pub fn target(out: &Path, with_zip: bool) -> Result<Target> {
    if out.exists() {
        return Err(user(format!("{} exists: name a new directory for the pack", out.display())));
    }
    let folder = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "evidence".into());
    let zip = with_zip.then(|| out.with_file_name(format!("{folder}.zip")));
    if let Some(zip) = zip.as_ref().filter(|z| z.exists()) {
        return Err(user(format!("{} exists: name a new directory for the pack", zip.display())));
    }
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    if !parent.is_dir() {
        return Err(user(format!("{} is not a directory", parent.display())));
    }
    Ok(Target { out: out.to_path_buf(), zip, folder, parent })
}

/// Writes a sealed pack: assembled in a temporary directory beside the target and renamed into place, so a pack
/// is whole or absent (files private to the user).
pub fn write(files: &[(String, Vec<u8>)], target: &Target, at: DateTime<Utc>) -> Result<()> {
    let staging = tempfile::Builder::new().prefix(".datum-report-").tempdir_in(&target.parent)?;
    for (name, bytes) in files {
        let path = staging.path().join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        crate::fs::write_private(&path, bytes)?;
    }
    if let Some(zip_path) = &target.zip {
        crate::fs::write_private(zip_path, &zip(files, &target.folder, at)?)?;
    }
    let kept = staging.keep();
    std::fs::rename(&kept, &target.out).with_context(|| format!("move the pack to {}", target.out.display()))?;
    crate::fs::sync_dir(&target.parent).ok();
    Ok(())
}

/// What `report verify` found.
#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
    pub intact: bool,
    pub site: Option<String>,
    pub signer: Signer,
    /// The key that signed the manifest (compare it with the site's, or the hub's).
    pub key: Option<String>,
    pub signature_ok: bool,
    pub altered: Vec<String>,
    pub missing: Vec<String>,
    pub added: Vec<String>,
    pub problems: Vec<String>,
}

/// A relative path of a manifest that stays inside the pack: `/`-separated plain names, no `.`/`..`.
pub fn safe_path(path: &str) -> bool {
    !path.is_empty()
        && !path.contains('\\')
        && !path.contains('\0')
        && path.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

/// Every file under `dir` as a `/`-separated relative path (symbolic links are reported as files, not followed).
fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(&entry.path(), &rel, out),
            _ => out.push(rel),
        }
    }
}

/// Checks a pack on its own (no data directory needed): the signature over the manifest with the key it names
/// (and the signer's key file must be that key), then every file's hash, then that no file was added.
pub fn verify(dir: &Path) -> VerifyReport {
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
    r.signer = manifest.signer;
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
    let key_file = manifest.signer.key_file();
    match std::fs::read_to_string(dir.join(key_file)) {
        Ok(k) if k.trim() == manifest.key => {}
        Ok(_) => r.problems.push(format!("{key_file} is not the key the manifest names")),
        Err(_) => {}
    }
    let mut listed = BTreeSet::new();
    for f in &manifest.files {
        if !safe_path(&f.path) {
            r.problems.push(format!("the manifest names an unsafe path {:?}", f.path));
            continue;
        }
        listed.insert(f.path.clone());
        let path = dir.join(&f.path);
        // A symbolic link could make a listed name read a file outside the pack.
        let is_file = std::fs::symlink_metadata(&path).map(|m| m.file_type().is_file()).unwrap_or(false);
        match std::fs::read(&path) {
            Ok(bytes)
                if is_file && hex::encode(Sha256::digest(&bytes)) == f.sha256 && bytes.len() as u64 == f.bytes => {}
            Ok(_) => r.altered.push(f.path.clone()),
            Err(_) => r.missing.push(f.path.clone()),
        }
    }
    let mut present = Vec::new();
    walk(dir, "", &mut present);
    r.added = present
        .into_iter()
        .filter(|name| name != "manifest.json" && name != "manifest.sig" && !listed.contains(name))
        .collect();
    r.added.sort();
    r.intact =
        r.signature_ok && r.problems.is_empty() && r.altered.is_empty() && r.missing.is_empty() && r.added.is_empty();
    r
}

/// `report verify DIR [--json]` of both binaries: exit 0 when intact, 1 naming every problem.
pub fn verify_command(dir: &Path, json: bool) -> Result<crate::exit::Outcome> {
    if !dir.is_dir() {
        return Err(user(format!("{} is not a directory", dir.display())));
    }
    let r = verify(dir);
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
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
            let signer = match r.signer {
                Signer::Site => "the site key",
                Signer::Hub => "the hub's publishing key",
            };
            println!(
                "intact: every file as made, signed by {signer} {} ({})",
                r.key.as_deref().unwrap_or("?"),
                match r.site.as_deref() {
                    Some("*") | None => "all sites".to_string(),
                    Some(site) => format!("site {site}"),
                }
            );
        } else {
            println!("NOT intact: this pack was altered after it was made, or is not a Datum evidence pack");
        }
    }
    Ok(if r.intact { crate::exit::Outcome::Clean } else { crate::exit::Outcome::Findings })
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

fn inventory_csv(view: &View) -> Result<Vec<u8>> {
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

fn backups_csv(i: &Inputs<'_>) -> Result<Vec<u8>> {
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
        i.view.reported_assets().map(|a| {
            let b = i.view.backup_state(a, i.now, i.policy);
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

fn restore_tests_csv(view: &View) -> Result<Vec<u8>> {
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

fn drift_csv(i: &Inputs<'_>, diff_of: &std::collections::BTreeMap<(&str, &str), &str>) -> Result<Vec<u8>> {
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
            "diff_file",
        ],
        i.view.drift(i.now, i.policy, None).into_iter().map(|d| {
            let slot = d.slot.map(|s| s.to_string()).unwrap_or_default();
            let diff = diff_of.get(&(d.asset.as_str(), slot.as_str())).copied().unwrap_or_default().to_string();
            vec![
                d.asset.to_string(),
                slot,
                d.criticality.as_str().to_string(),
                d.status.as_str().to_string(),
                d.baseline_version.map(|v| v.to_string()).unwrap_or_default(),
                d.latest_version.map(|v| v.to_string()).unwrap_or_default(),
                day(d.last_capture_at),
                d.change.map(|c| c.to_string()).unwrap_or_default(),
                d.detail,
                diff,
            ]
        }),
    )
}

fn changes_csv(view: &View) -> Result<Vec<u8>> {
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

fn reviews_csv(view: &View, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<u8>> {
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

fn users_csv(i: &Inputs<'_>) -> Result<Vec<u8>> {
    csv_bytes(
        &["name", "display", "roles", "enabled", "second_factor", "os_user"],
        i.users.iter().map(|u| {
            vec![
                u.name.clone(),
                opt(&u.display),
                u.roles_text(),
                (!u.disabled).to_string(),
                match i.with_totp {
                    Some(set) if set.contains(&u.name) => "totp".into(),
                    Some(_) => String::new(),
                    None => "not known here".into(),
                },
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

fn links(files: &[&str]) -> String {
    files.iter().map(|f| format!("<a href=\"{f}\">{f}</a>")).collect::<Vec<_>>().join(", ")
}

/// A site pack's first page: scope, period, freshness, every requirement (not met first) with its reasons and
/// files. Print styles keep a requirement on one page; no script.
fn html(e: &Evidence, maker: &Maker<'_>) -> String {
    let mut reqs = String::new();
    for r in &e.requirements {
        let reasons: String = r.reasons.iter().map(|x| format!("<li>{}</li>", escape(x))).collect();
        let files = if r.files.is_empty() {
            String::new()
        } else {
            format!("<p class=\"files\">Evidence: {}</p>", links(&r.files))
        };
        reqs.push_str(&format!(
            "<section class=\"req {cls}\"><h2><span class=\"id\">{std} {id}</span> {title} <span class=\"status\">{status}</span></h2>\
             <ul>{reasons}</ul>{files}</section>",
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
         <p>Period {from} to {to}; made {made} by Datum from {maker}. \
         Verify this folder with <code>datum-edge report verify DIR</code>.</p></header>\
         <section class=\"summary\"><h2>Summary</h2><p><b>{not_met}</b> not met, <b>{partly}</b> partly, <b>{met}</b> met, {na} not applicable.</p>\
         <p>Scope: {in_scope} asset(s) in scope, {out} out of scope, {retired} retired — {why}.</p>\
         <p>Freshness: {never} asset(s) never captured; oldest last capture {oldest}; {hub}.</p></section>{reqs}\
         <footer><p>Files: <a href=\"evidence.json\">evidence.json</a> (machine-readable), <a href=\"drift.csv\">drift.csv</a> \
         (each drifted configuration with its masked diff under diffs/), <a href=\"manifest.json\">manifest.json</a> \
         (SHA-256 of every file, signed in manifest.sig with the key in {key_file}).</p></footer></body></html>",
        site = escape(&e.site),
        from = e.period.from.format("%Y-%m-%d"),
        to = e.period.to.format("%Y-%m-%d"),
        made = e.generated_at.format("%Y-%m-%d %H:%M UTC"),
        maker = escape(maker.from),
        key_file = maker.signer.key_file(),
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

/// One site of a cross-site summary: its folder in the pack and its verdict.
pub struct SiteSummary<'a> {
    pub folder: &'a str,
    pub evidence: &'a Evidence,
}

/// The cross-site summary's first page: one row per site, one column per requirement, each cell the status
/// linking to the site's pack; sites with the most `not met` first.
pub fn summary_html(hub: &str, made: DateTime<Utc>, sites: &[SiteSummary<'_>]) -> String {
    let ids: Vec<&str> = {
        let mut seen = BTreeSet::new();
        let mut ids = Vec::new();
        for r in sites.iter().flat_map(|s| &s.evidence.requirements) {
            if seen.insert(r.id) {
                ids.push(r.id);
            }
        }
        ids.sort_by_key(|id| order(id));
        ids
    };
    let head: String = ids.iter().map(|id| format!("<th>{}</th>", escape(id))).collect();
    let mut rows = String::new();
    for s in sites {
        let e = s.evidence;
        let not_met = e.requirements.iter().filter(|r| r.status == Status::NotMet).count();
        let cells: String = ids
            .iter()
            .map(|id| match e.requirements.iter().find(|r| r.id == *id) {
                Some(r) => {
                    format!("<td class=\"{}\">{}</td>", r.status.as_str().replace(' ', "-"), escape(r.status.as_str()))
                }
                None => "<td>–</td>".into(),
            })
            .collect();
        rows.push_str(&format!(
            "<tr><th><a href=\"{folder}/index.html\">{site}</a></th><td>{not_met}</td><td>{assets}</td>{cells}</tr>",
            folder = escape(s.folder),
            site = escape(&e.site),
            assets = e.scope.assets_in_scope,
        ));
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Evidence — all sites</title><style>{CSS}{SUMMARY_CSS}</style></head><body>\
         <header><h1>IEC 62443 evidence — all sites of {hub}</h1>\
         <p>Made {made} by the hub from its copy of each site's records; one pack per site below (each verifiable \
         alone). Verify the whole folder with <code>datum-edge report verify DIR</code>.</p></header>\
         <table id=\"summary\"><thead><tr><th>Site</th><th>Not met</th><th>Assets in scope</th>{head}</tr></thead>\
         <tbody>{rows}</tbody></table>\
         <footer><p>Files: <a href=\"summary.json\">summary.json</a> (machine-readable), <a href=\"manifest.json\">manifest.json</a> \
         (SHA-256 of every file, signed in manifest.sig with the key in hub-key.pub).</p></footer></body></html>",
        hub = escape(hub),
        made = made.format("%Y-%m-%d %H:%M UTC"),
    )
}

/// Requirements in the order the standard lists them (3-3 by number, then 2-4).
fn order(id: &str) -> (u8, Vec<u32>) {
    let nums: Vec<u32> = id.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect();
    (u8::from(id.starts_with("SP")), nums)
}

const CSS: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#111}\
h1{font-size:1.5rem}h2{font-size:1.1rem;margin:.2rem 0}.req{border-left:6px solid #999;padding:.4rem .8rem;margin:1rem 0}\
.req.met{border-color:#2a7d2a}.req.partly{border-color:#c98a00}.req.not-met{border-color:#b00020}\
.status{float:right;font-weight:bold;text-transform:uppercase;font-size:.85rem}.not-met .status{color:#b00020}\
.partly .status{color:#8a5d00}.met .status{color:#2a7d2a}.id{color:#555;font-weight:normal}.files{color:#444;font-size:.9rem}\
code{background:#f3f3f3;padding:0 .2rem}@media print{body{margin:0;max-width:none}.req{break-inside:avoid}\
a{color:inherit;text-decoration:none}header{break-after:avoid}}";

const SUMMARY_CSS: &str = "body{max-width:none;margin:2rem}table{border-collapse:collapse;font-size:.85rem}\
th,td{border:1px solid #ccc;padding:.2rem .4rem;text-align:left}td.met{color:#2a7d2a}td.partly{color:#8a5d00}\
td.not-met{color:#b00020;font-weight:bold}@media print{body{margin:0}tr{break-inside:avoid}}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_a_manifest_stay_inside_the_pack() {
        for ok in ["index.html", "diffs/plc-1--main.diff", "sites/a/manifest.json"] {
            assert!(safe_path(ok), "{ok}");
        }
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "a//b", "a\\b", "./a", "a/", "a\0b"] {
            assert!(!safe_path(bad), "{bad:?}");
        }
    }

    #[test]
    fn file_parts_are_one_plain_segment() {
        assert_eq!(file_part("PLC 1/main"), "PLC_1_main");
        assert_eq!(file_part(".."), "_..");
        assert_eq!(file_part(""), "_");
        assert_eq!(file_part("fw-01.cfg"), "fw-01.cfg");
    }

    #[test]
    fn a_sealed_pack_verifies_and_any_change_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let at = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap().with_timezone(&Utc);
        let files = vec![("a.txt".to_string(), b"one".to_vec()), ("sub/b.txt".to_string(), b"two".to_vec())];
        let sealed = seal(files, "plant", at, Signer::Hub, &key).unwrap();
        let target = target(&dir.path().join("pack"), false).unwrap();
        write(&sealed, &target, at).unwrap();
        let r = verify(&target.out);
        assert!(r.intact, "{r:?}");
        assert_eq!(r.signer, Signer::Hub);
        std::fs::write(target.out.join("sub/b.txt"), b"tw0").unwrap();
        std::fs::write(target.out.join("sub/c.txt"), b"new").unwrap();
        std::fs::remove_file(target.out.join("a.txt")).unwrap();
        let r = verify(&target.out);
        assert!(!r.intact);
        assert_eq!(
            (r.altered, r.missing, r.added),
            (vec!["sub/b.txt".into()], vec!["a.txt".into()], vec!["sub/c.txt".into()])
        );
    }
}
