//! `config …` and `baseline …`: versioned configuration records (backups, SR 7.3) and approved baselines.

use std::path::Path;

use anyhow::Result;
use datum_shared::change::{fold, ChangeEvent, ChangeRequest};
use datum_shared::document::month_period;
use datum_shared::model::{Asset, Baseline, ConfigCheck, ConfigVersion};
use datum_shared::normalize::{normalize, MAX_NORMALIZE_BYTES, NORMALIZER_VERSION};
use datum_shared::{ChangeId, SlotName};
use serde::Serialize;

use super::compare::{self, compare, Comparison};
use super::{find_asset, parse_version, required_text, resolve_slot, text_arg};
use crate::blobs::BlobError;
use crate::cli::{BaselineCmd, ConfigCmd, ExactVersion, VersionOf};
use crate::output::{out_target, print_json, print_table, OutTarget};
use crate::site::{Site, Write};
use datum_host::exit::{user, Damage, Outcome};

pub async fn run(site: &mut Site, cmd: ConfigCmd) -> Result<Outcome> {
    match cmd {
        ConfigCmd::Capture { asset, file, slot, note, change, json } => {
            let report = store_capture(site, &asset, &file, slot, note, change).await?;
            print_capture(&report, json)?;
            Ok(Outcome::Clean)
        }
        ConfigCmd::Log { asset, slot, json } => log(site, &asset, slot, json).await,
        ConfigCmd::Show { of: VersionOf { asset, slot, version }, json } => {
            show(site, &asset, slot, version, json).await
        }
        ConfigCmd::Export { of: ExactVersion { asset, slot, version }, out } => {
            export(site, &asset, slot, &version, &out).await
        }
        ConfigCmd::Diff { asset, from, to, slot, raw, json } => {
            let out = compare_versions(site, &asset, slot, from, to, raw).await?;
            print_diff(&out, json)?;
            Ok(Outcome::Clean)
        }
    }
}

pub async fn run_baseline(site: &mut Site, cmd: BaselineCmd) -> Result<Outcome> {
    match cmd {
        BaselineCmd::Approve { of: VersionOf { asset, slot, version }, reason } => {
            approve(site, &asset, slot, version, reason).await
        }
        BaselineCmd::Show { asset, json } => show_baseline(site, &asset, json).await,
    }
}

/// Versions of one asset, grouped per slot, oldest first.
pub async fn versions_of(site: &Site, asset: &Asset) -> Result<Vec<ConfigVersion>> {
    let mut versions: Vec<ConfigVersion> = site.list_for(ConfigVersion::COLLECTION, asset.name.as_str()).await?;
    versions.sort_by(|a, b| (a.slot.as_str(), a.version).cmp(&(b.slot.as_str(), b.version)));
    Ok(versions)
}

fn slots(versions: &[ConfigVersion]) -> Vec<&SlotName> {
    let mut slots: Vec<&SlotName> = versions.iter().map(|v| &v.slot).collect();
    slots.dedup();
    slots
}

pub fn version_key(v: &ConfigVersion) -> String {
    format!("{}/{}/{:06}", v.asset, v.slot, v.version)
}

/// Loads and folds one change request.
pub async fn load_change(site: &Site, id: ChangeId) -> Result<ChangeRequest> {
    let events: Vec<ChangeEvent> = site.list_for(ChangeEvent::COLLECTION, &id.to_string()).await?;
    let (state, _) = fold(&events);
    state.ok_or_else(|| user(format!("{id} does not exist (see `datum-edge change list`)")))
}

#[derive(Serialize)]
pub struct CaptureReport {
    pub asset: String,
    pub slot: String,
    pub version: u32,
    pub unchanged: bool,
    pub raw_hash: String,
    pub size: u64,
    pub stored_bytes: u64,
    pub delta_base: Option<String>,
    pub change: Option<ChangeId>,
    /// Detected format, when normalised.
    pub format: Option<String>,
    /// False when the new version differs from the previous one only in noise.
    pub significant: bool,
}

fn print_capture(report: &CaptureReport, json: bool) -> Result<()> {
    if json {
        print_json(report)?;
    } else if report.unchanged {
        println!("{}/{}: unchanged since v{} (checked, recorded)", report.asset, report.slot, report.version);
    } else {
        println!(
            "{}/{}: stored v{} ({} bytes, sha256 {}, {}){}{}",
            report.asset,
            report.slot,
            report.version,
            report.size,
            report.raw_hash.get(..16).unwrap_or(&report.raw_hash),
            report.format.as_deref().unwrap_or("not normalised"),
            report.change.as_ref().map(|c| format!(" under {c}")).unwrap_or_default(),
            if report.significant || report.version == 1 {
                String::new()
            } else {
                format!("; no significant change since v{} (only noise differs)", report.version - 1)
            }
        );
    }
    Ok(())
}

/// Stores a capture of `file` (or records that it is unchanged) and says what happened.
pub async fn store_capture(
    site: &mut Site,
    asset: &str,
    file: &Path,
    slot: Option<String>,
    note: Option<String>,
    change: Option<String>,
) -> Result<CaptureReport> {
    let asset = find_asset(site, asset).await?;
    if !asset.is_active() {
        return Err(user(format!("asset {} is retired; captures are closed", asset.name)));
    }
    let note = text_arg("note", note, 4096)?;
    let versions = versions_of(site, &asset).await?;
    let slot = resolve_slot(&asset, &slots(&versions), slot.as_deref())?;
    let change = match change {
        None => None,
        Some(id) => {
            let id = ChangeId::parse(&id).map_err(|e| user(e.to_string()))?;
            let cr = load_change(site, id).await?;
            if !cr.draft.assets.contains(&asset.name) {
                return Err(user(format!(
                    "{id} does not cover asset {} (it covers {})",
                    asset.name,
                    join(&cr.draft.assets)
                )));
            }
            cr.accepts_captures().map_err(|e| user(e.to_string()))?;
            Some(id)
        }
    };
    let meta = std::fs::metadata(file).map_err(|e| user(format!("{}: {e}", file.display())))?;
    if !meta.is_file() {
        return Err(user(format!("{} is not a regular file", file.display())));
    }
    let latest = versions.iter().filter(|v| v.slot == slot).max_by_key(|v| v.version);
    let file_name = file.file_name().map(|n| n.to_string_lossy().to_string());
    let too_large = |e: BlobError| match e {
        BlobError::TooLarge { .. } => user(e.to_string()),
        other => anyhow::Error::from(other),
    };
    // Files small enough to normalise are read once: the bytes stored are the bytes normalised (the file may
    // change while we work). Larger ones are streamed into the store and keep their raw hash for drift.
    let (stored, normalized) = if meta.len() <= MAX_NORMALIZE_BYTES as u64 {
        let bytes = std::fs::read(file).map_err(|e| user(format!("{}: {e}", file.display())))?;
        // Only the hash and the format are kept: the normalised text is not held while the blob is compressed.
        let normalized = normalize(file_name.as_deref(), &bytes, &site.fingerprint_key())
            .ok()
            .map(|n| (n.hash(), n.format.as_str().to_string()));
        let format = normalized.as_ref().map(|(_, format)| format.as_str());
        let bases = delta_bases(site, &versions, &slot, format, bytes.len() as u64).await?;
        let bases: Vec<&str> = bases.iter().map(String::as_str).collect();
        (site.blobs.put_bytes(&bytes, &bases).map_err(too_large)?, normalized)
    } else {
        let bases: Vec<&str> = latest.map(|v| v.raw_hash.as_str()).into_iter().collect();
        (site.blobs.put_file(file, &bases).map_err(too_large)?, None)
    };
    let configs_doc = site.doc_id(&format!("configs/{}", month_period(site.now)));
    let report;
    match latest {
        Some(latest) if latest.raw_hash.as_str() == stored.hash => {
            let check = ConfigCheck {
                asset: asset.name.clone(),
                slot: slot.clone(),
                version: latest.version,
                checked_at: site.now,
                checked_by: site.actor.clone(),
                note,
                change,
            };
            let key = format!("{}/{}/{:06}/{}", asset.name, slot, latest.version, site.now.timestamp_micros());
            let mut w = Write::new("config.check", asset.name.as_str(), None).concerning([&asset.name]);
            w.put(&configs_doc, ConfigCheck::COLLECTION, &key, &check)?;
            site.apply(w, format!("{slot}: unchanged since v{}", latest.version)).await?;
            report = CaptureReport {
                asset: asset.name.to_string(),
                slot: slot.to_string(),
                version: latest.version,
                unchanged: true,
                raw_hash: stored.hash,
                size: stored.size,
                stored_bytes: 0,
                delta_base: None,
                change,
                format: latest.format.clone(),
                significant: false,
            };
        }
        _ => {
            let version = ConfigVersion {
                asset: asset.name.clone(),
                slot: slot.clone(),
                version: latest.map(|v| v.version + 1).unwrap_or(1),
                raw_hash: hash_of(&stored.hash)?,
                normalized_hash: hash_of(normalized.as_ref().map_or(&stored.hash, |(hash, _)| hash))?,
                normalizer: if normalized.is_some() { NORMALIZER_VERSION } else { 0 },
                format: normalized.as_ref().map(|(_, format)| format.clone()),
                size: stored.size,
                file_name,
                captured_at: site.now,
                captured_by: site.actor.clone(),
                note,
                change,
            };
            let mut w = Write::new("config.capture", asset.name.as_str(), None).concerning([&asset.name]);
            w.put(&configs_doc, ConfigVersion::COLLECTION, &version_key(&version), &version)?;
            site.apply(w, format!("{slot} v{} ({} bytes)", version.version, version.size)).await?;
            let significant = latest.is_none_or(|l| !l.same_content(&version));
            report = CaptureReport {
                format: version.format.clone(),
                significant,
                asset: asset.name.to_string(),
                slot: slot.to_string(),
                version: version.version,
                unchanged: false,
                raw_hash: stored.hash,
                size: stored.size,
                stored_bytes: stored.stored_bytes,
                delta_base: stored.delta_base,
                change,
            };
        }
    }
    Ok(report)
}

/// Blobs a new version of `slot` may be stored as a delta of, best guess first. A slot with history offers
/// its last few versions (an export often returns to an earlier state). A new slot offers the latest versions
/// of other slots in the site with a size within a factor of four: first up to three of the same detected
/// format, closest in size first (sister devices and re-exports of one project under another name share most
/// of their text), then the closest in size of any format (an OPNsense export shares its XML with pfSense's, an
/// L5X project with PLCopen XML); files above 1 MiB only look at their own format, a trial costs a compression.
/// The blob store tries them and keeps the smallest result, or a full copy.
async fn delta_bases(
    site: &Site,
    versions: &[ConfigVersion],
    slot: &SlotName,
    format: Option<&str>,
    size: u64,
) -> Result<Vec<String>> {
    let mut in_slot: Vec<&ConfigVersion> = versions.iter().filter(|v| &v.slot == slot).collect();
    if !in_slot.is_empty() {
        in_slot.sort_by_key(|v| std::cmp::Reverse(v.version));
        let mut bases: Vec<String> = Vec::new();
        for v in in_slot {
            if bases.len() == SLOT_BASES {
                break;
            }
            if !bases.iter().any(|b| b == v.raw_hash.as_str()) {
                bases.push(v.raw_hash.to_string());
            }
        }
        return Ok(bases);
    }
    let all: Vec<ConfigVersion> = site.list(ConfigVersion::COLLECTION).await?;
    // The latest version of every other slot, by (asset, slot).
    let mut latest: std::collections::BTreeMap<(&str, &str), &ConfigVersion> = std::collections::BTreeMap::new();
    for v in &all {
        let entry = latest.entry((v.asset.as_str(), v.slot.as_str())).or_insert(v);
        if v.version > entry.version {
            *entry = v;
        }
    }
    let distance = |v: &ConfigVersion| (v.size.max(1) as f64 / size.max(1) as f64).ln().abs();
    let same_format = |v: &ConfigVersion| format.is_some() && v.format.as_deref() == format;
    let any_format = size <= CROSS_FORMAT_MAX_BYTES;
    let mut similar: Vec<&ConfigVersion> = latest
        .into_values()
        .filter(|v| {
            (any_format || same_format(v)) && v.size <= size.saturating_mul(4) && v.size.saturating_mul(4) >= size
        })
        .collect();
    similar.sort_by(|a, b| distance(a).total_cmp(&distance(b)).then_with(|| a.raw_hash.cmp(&b.raw_hash)));
    let mut bases: Vec<String> = Vec::new();
    let first = similar.iter().filter(|v| same_format(v)).take(SAME_FORMAT_BASES);
    for v in first.chain(similar.iter()) {
        if bases.len() == OTHER_SLOT_BASES {
            break;
        }
        if !bases.iter().any(|b| b == v.raw_hash.as_str()) {
            bases.push(v.raw_hash.to_string());
        }
    }
    Ok(bases)
}

/// Versions of the same slot offered as delta bases.
const SLOT_BASES: usize = 3;
/// Similar slots offered as delta bases for a new slot's first version, in all.
const OTHER_SLOT_BASES: usize = 4;
/// Of those, the ones of the same detected format offered first.
const SAME_FORMAT_BASES: usize = 3;
/// Above this size a new slot's first version only tries slots of its own format.
const CROSS_FORMAT_MAX_BYTES: u64 = 1024 * 1024;

/// A stored version that cannot be read back intact is damage to report (exit 1), naming the version.
fn stored_copy(v: &ConfigVersion, e: BlobError) -> anyhow::Error {
    match e {
        BlobError::Damaged { .. } | BlobError::Missing { .. } => {
            Damage(format!("{}/{} v{}: {e}; run `datum-edge backup verify`", v.asset, v.slot, v.version)).into()
        }
        other => other.into(),
    }
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

#[derive(Serialize)]
struct LogEntry<'a> {
    #[serde(flatten)]
    version: &'a ConfigVersion,
    baseline: bool,
    /// A version captured without a change, whose identical bytes were later captured again under one
    /// (`config capture --change`): authorized after the fact by that change.
    #[serde(skip_serializing_if = "Option::is_none")]
    authorized_after_the_fact: Option<ChangeId>,
}

async fn log(site: &mut Site, asset: &str, slot: Option<String>, json: bool) -> Result<Outcome> {
    let asset = find_asset(site, asset).await?;
    let slot = slot.map(|s| SlotName::new(&s).map_err(|e| user(e.to_string()))).transpose()?;
    let baselines: Vec<Baseline> = site.list_for(Baseline::COLLECTION, asset.name.as_str()).await?;
    let versions: Vec<ConfigVersion> =
        versions_of(site, &asset).await?.into_iter().filter(|v| slot.as_ref().is_none_or(|s| &v.slot == s)).collect();
    let is_baseline = |v: &ConfigVersion| baselines.iter().any(|b| b.slot == v.slot && b.version == v.version);
    let checks: Vec<ConfigCheck> = site.list_for(ConfigCheck::COLLECTION, asset.name.as_str()).await?;
    let after_the_fact = |v: &ConfigVersion| -> Option<ChangeId> {
        if v.change.is_some() {
            return None;
        }
        checks.iter().filter(|c| c.slot == v.slot && c.version == v.version).find_map(|c| c.change)
    };
    if json {
        let entries: Vec<LogEntry<'_>> = versions
            .iter()
            .map(|v| LogEntry { version: v, baseline: is_baseline(v), authorized_after_the_fact: after_the_fact(v) })
            .collect();
        print_json(&entries)?;
        return Ok(Outcome::Clean);
    }
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|v| {
            vec![
                v.slot.to_string(),
                format!("v{}{}", v.version, if is_baseline(v) { " *" } else { "" }),
                v.captured_at.format("%Y-%m-%d %H:%M").to_string(),
                v.captured_by.clone(),
                v.size.to_string(),
                v.raw_hash.as_str()[..12].to_string(),
                match (v.change, after_the_fact(v)) {
                    (Some(c), _) => c.to_string(),
                    (None, Some(c)) => format!("{c} (after the fact)"),
                    (None, None) => "-".into(),
                },
                v.note.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print_table(&["SLOT", "VERSION", "CAPTURED", "BY", "BYTES", "SHA256", "CHANGE", "NOTE"], &rows);
    if !rows.is_empty() {
        println!("(* = approved baseline)");
    }
    Ok(Outcome::Clean)
}

/// Finds the version a command names: `--version V` or the latest of the resolved slot.
pub async fn pick_version(
    site: &Site,
    asset: &Asset,
    slot: Option<String>,
    version: Option<&str>,
) -> Result<ConfigVersion> {
    let versions = versions_of(site, asset).await?;
    let slot = resolve_slot(asset, &slots(&versions), slot.as_deref())?;
    let in_slot: Vec<&ConfigVersion> = versions.iter().filter(|v| v.slot == slot).collect();
    let found = match version {
        Some(v) => {
            let n = parse_version(v)?;
            in_slot.into_iter().find(|c| c.version == n)
        }
        None => in_slot.into_iter().max_by_key(|c| c.version),
    };
    found.cloned().ok_or_else(|| {
        user(match version {
            Some(v) => format!("{}/{slot} has no version {v} (see `datum-edge config log {}`)", asset.name, asset.name),
            None => format!("{}/{slot} has no captured versions", asset.name),
        })
    })
}

async fn show(
    site: &mut Site,
    asset: &str,
    slot: Option<String>,
    version: Option<String>,
    json: bool,
) -> Result<Outcome> {
    let asset = find_asset(site, asset).await?;
    let v = pick_version(site, &asset, slot, version.as_deref()).await?;
    if json {
        print_json(&v)?;
        return Ok(Outcome::Clean);
    }
    println!("{}/{} v{}", v.asset, v.slot, v.version);
    println!("captured   {} by {}", v.captured_at.to_rfc3339(), v.captured_by);
    println!("size       {} bytes", v.size);
    println!("sha256     {}", v.raw_hash);
    if let Some(name) = &v.file_name {
        // A file name is whatever the file system allowed: shown escaped.
        println!("file       {}", datum_shared::text::shown(name));
    }
    if let Some(c) = v.change {
        println!("change     {c}");
    }
    if let Some(note) = &v.note {
        println!("note       {}", datum_shared::text::shown(note));
    }
    Ok(Outcome::Clean)
}

async fn export(site: &mut Site, asset: &str, slot: Option<String>, version: &str, out: &Path) -> Result<Outcome> {
    let target = out_target(out)?;
    let asset = find_asset(site, asset).await?;
    let v = pick_version(site, &asset, slot, Some(version)).await?;
    match target {
        OutTarget::File(path) => {
            let written = site.blobs.export(v.raw_hash.as_str(), &path).map_err(|e| stored_copy(&v, e))?;
            println!(
                "wrote {}/{} v{} to {} ({written} bytes, sha256 verified)",
                v.asset,
                v.slot,
                v.version,
                datum_shared::text::shown(&path.display().to_string())
            );
        }
        OutTarget::Stdout => {
            // Verified whole before a byte reaches standard output: a damaged copy must not half-print.
            let tmp_dir = site.dir.join("tmp");
            std::fs::create_dir_all(&tmp_dir)?;
            let (_, tmp) = datum_host::fs::tempfile_in(&tmp_dir)?;
            let result =
                site.blobs.export(v.raw_hash.as_str(), &tmp).map_err(|e| stored_copy(&v, e)).and_then(|written| {
                    let mut file = std::fs::File::open(&tmp)?;
                    std::io::copy(&mut file, &mut std::io::stdout().lock())?;
                    Ok(written)
                });
            let _ = std::fs::remove_file(&tmp);
            let written = result?;
            eprintln!("wrote {}/{} v{} ({written} bytes, sha256 verified)", v.asset, v.slot, v.version);
        }
    }
    Ok(Outcome::Clean)
}

#[derive(Serialize)]
pub struct ConfigDiff {
    pub asset: String,
    pub slot: String,
    pub from: u32,
    pub to: u32,
    #[serde(flatten)]
    pub comparison: Comparison,
}

fn print_diff(out: &ConfigDiff, json: bool) -> Result<()> {
    if json {
        return print_json(out);
    }
    println!("{}/{} v{} .. {}/{} v{}", out.asset, out.slot, out.from, out.asset, out.slot, out.to);
    compare::print(&out.comparison, false)?;
    Ok(())
}

/// Compares two stored versions of a slot (`from` defaults to the approved baseline, `to` to the newest).
pub async fn compare_versions(
    site: &mut Site,
    asset: &str,
    slot: Option<String>,
    from: Option<String>,
    to: Option<String>,
    raw: bool,
) -> Result<ConfigDiff> {
    let asset = find_asset(site, asset).await?;
    let versions = versions_of(site, &asset).await?;
    let slot = resolve_slot(&asset, &slots(&versions), slot.as_deref())?;
    let to_v = pick_version(site, &asset, Some(slot.to_string()), to.as_deref()).await?;
    let from_v = match from {
        Some(f) => pick_version(site, &asset, Some(slot.to_string()), Some(&f)).await?,
        None => {
            let baseline: Option<Baseline> =
                site.get(Baseline::COLLECTION, &format!("{}/{}", asset.name, slot)).await?;
            match baseline {
                Some(b) => pick_version(site, &asset, Some(slot.to_string()), Some(&b.version.to_string())).await?,
                None => {
                    return Err(user(format!(
                        "{}/{slot} has no approved baseline; name the versions: `config diff {} FROM TO`",
                        asset.name, asset.name
                    )))
                }
            }
        }
    };
    for v in [&from_v, &to_v] {
        if v.size > MAX_NORMALIZE_BYTES as u64 {
            return Err(user(format!(
                "{}/{} v{} is {} bytes; comparisons are limited to {MAX_NORMALIZE_BYTES} bytes: export the versions instead",
                v.asset, v.slot, v.version, v.size
            )));
        }
    }
    let old = site.blobs.read(from_v.raw_hash.as_str()).map_err(|e| stored_copy(&from_v, e))?;
    let new = site.blobs.read(to_v.raw_hash.as_str()).map_err(|e| stored_copy(&to_v, e))?;
    let label = |v: &ConfigVersion| format!("{}/{} v{}", v.asset, v.slot, v.version);
    let name = to_v.file_name.clone();
    let comparison =
        compare(name.as_deref(), &label(&from_v), &old, &label(&to_v), &new, &site.fingerprint_key(), raw)?;
    Ok(ConfigDiff {
        asset: asset.name.to_string(),
        slot: slot.to_string(),
        from: from_v.version,
        to: to_v.version,
        comparison,
    })
}

async fn approve(
    site: &mut Site,
    asset: &str,
    slot: Option<String>,
    version: Option<String>,
    reason: String,
) -> Result<Outcome> {
    let (baseline, changed) = approve_baseline(site, asset, slot, version, reason).await?;
    let key = format!("{}/{}", baseline.asset, baseline.slot);
    if changed {
        println!("{key}: baseline is now v{}", baseline.version);
    } else {
        println!("{key}: v{} is already the baseline", baseline.version);
    }
    Ok(Outcome::Clean)
}

/// Approves a version as its slot's baseline; false when it already was.
pub async fn approve_baseline(
    site: &mut Site,
    asset: &str,
    slot: Option<String>,
    version: Option<String>,
    reason: String,
) -> Result<(Baseline, bool)> {
    let reason = required_text("reason", reason, 1024)?;
    let asset = find_asset(site, asset).await?;
    if !asset.is_active() {
        return Err(user(format!("asset {} is retired", asset.name)));
    }
    let v = pick_version(site, &asset, slot, version.as_deref()).await?;
    let baseline = Baseline {
        asset: asset.name.clone(),
        slot: v.slot.clone(),
        version: v.version,
        approved_at: site.now,
        approved_by: site.actor.clone(),
        reason: reason.clone(),
        change: None,
    };
    let key = format!("{}/{}", asset.name, v.slot);
    let current: Option<Baseline> = site.get(Baseline::COLLECTION, &key).await?;
    if current.as_ref().is_some_and(|c| c.version == v.version) {
        return Ok((baseline, false));
    }
    put_baseline(site, &baseline, "baseline.approve", Some(reason)).await?;
    Ok((baseline, true))
}

/// Writes a baseline and its history entry.
pub fn baseline_puts(site: &Site, w: &mut Write, baseline: &Baseline) -> Result<()> {
    let doc = site.doc_id("baselines");
    let key = format!("{}/{}", baseline.asset, baseline.slot);
    w.put(&doc, Baseline::COLLECTION, &key, baseline)?;
    // The history grows with every approval, so it goes to the month's configuration document (bounded), not
    // to the baselines document (one record per slot).
    let history_key = format!("{key}/{:06}/{}", baseline.version, baseline.approved_at.timestamp_micros());
    let history_doc = site.doc_id(&format!("configs/{}", month_period(baseline.approved_at)));
    w.put(&history_doc, "baseline_history", &history_key, baseline)?;
    Ok(())
}

async fn put_baseline(site: &mut Site, baseline: &Baseline, op: &str, reason: Option<String>) -> Result<()> {
    let mut w = Write::new(op, baseline.asset.as_str(), reason).concerning([&baseline.asset]);
    baseline_puts(site, &mut w, baseline)?;
    site.apply(w, format!("{} baseline v{}", baseline.slot, baseline.version)).await?;
    Ok(())
}

#[derive(Serialize)]
struct BaselineView {
    slot: String,
    baseline: Option<Baseline>,
    latest_version: Option<u32>,
    matches_latest: Option<bool>,
}

async fn show_baseline(site: &mut Site, asset: &str, json: bool) -> Result<Outcome> {
    let asset = find_asset(site, asset).await?;
    let versions = versions_of(site, &asset).await?;
    let baselines: Vec<Baseline> = site.list_for(Baseline::COLLECTION, asset.name.as_str()).await?;
    let mut out = Vec::new();
    for slot in slots(&versions) {
        let latest = versions.iter().filter(|v| &v.slot == slot).max_by_key(|v| v.version);
        let baseline = baselines.iter().find(|b| &b.slot == slot).cloned();
        let matches = match (&baseline, latest) {
            (Some(b), Some(l)) => {
                versions.iter().find(|v| &v.slot == slot && v.version == b.version).map(|bv| bv.same_content(l))
            }
            _ => None,
        };
        out.push(BaselineView {
            slot: slot.to_string(),
            baseline,
            latest_version: latest.map(|l| l.version),
            matches_latest: matches,
        });
    }
    if json {
        print_json(&out)?;
        return Ok(Outcome::Clean);
    }
    if out.is_empty() {
        println!("{}: nothing captured yet", asset.name);
    }
    for b in &out {
        match &b.baseline {
            Some(base) => println!(
                "{}/{}: baseline v{} approved {} by {} ({}){}; latest v{}{}",
                asset.name,
                b.slot,
                base.version,
                base.approved_at.format("%Y-%m-%d"),
                base.approved_by,
                base.reason,
                base.change.map(|c| format!(" via {c}")).unwrap_or_default(),
                b.latest_version.unwrap_or(0),
                if b.matches_latest == Some(true) { " (matches)" } else { " (differs)" }
            ),
            None => {
                println!("{}/{}: no baseline approved; latest v{}", asset.name, b.slot, b.latest_version.unwrap_or(0))
            }
        }
    }
    Ok(Outcome::Clean)
}

/// A SHA-256 the blob store or the normaliser computed, as the model's type (it is always well formed; a
/// failure here is a bug, reported as an internal error).
pub fn hash_of(hex: &str) -> Result<datum_shared::model::BlobHash> {
    datum_shared::model::BlobHash::new(hex).map_err(|e| anyhow::anyhow!("internal: {e}"))
}

/// Records in the audit trail that a stored version was handed out (a download from the web workspace).
pub async fn record_download(site: &mut Site, v: &ConfigVersion) -> Result<()> {
    #[derive(Serialize)]
    struct Download<'a> {
        asset: &'a str,
        slot: &'a str,
        version: u32,
        raw_hash: &'a str,
        by: &'a str,
        at: chrono::DateTime<chrono::Utc>,
    }
    let record = Download {
        asset: v.asset.as_str(),
        slot: v.slot.as_str(),
        version: v.version,
        raw_hash: v.raw_hash.as_str(),
        by: &site.actor,
        at: site.now,
    };
    let key = format!("{}/{}/{:06}/{}", v.asset, v.slot, v.version, site.now.timestamp_micros());
    let doc = site.doc_id(&format!("records/{}", datum_shared::document::year_period(site.now)));
    let mut w = Write::new("config.download", v.asset.as_str(), None).concerning([&v.asset]);
    w.put(&doc, "downloads", &key, &record)?;
    site.apply(w, format!("{} v{} downloaded", v.slot, v.version)).await?;
    Ok(())
}
