//! `asset …`: the inventory (IEC 62443-3-3 SR 7.8).

use std::collections::BTreeSet;
use std::io::Write as _;

use anyhow::{Context as _, Result};
use datum_shared::csv_import::{self, COLUMNS};
use datum_shared::model::{Asset, AssetFields, AssetKind, Criticality};
use serde::Serialize;

use super::{find_asset, parse_asset_name, required_text};
use crate::cli::{AssetCmd, AssetFieldArgs};
use crate::output::{opt, print_json, print_table, spinner};
use crate::site::{Site, Write};
use datum_host::exit::{user, Outcome};

pub async fn run(site: &mut Site, cmd: AssetCmd) -> Result<Outcome> {
    match cmd {
        AssetCmd::Add { name, fields } => add(site, &name, fields).await,
        AssetCmd::Edit { name, fields } => edit(site, &name, fields).await,
        AssetCmd::Retire { name, reason } => retire(site, &name, reason).await,
        AssetCmd::Show { name, json } => show(site, &name, json).await,
        AssetCmd::List { zone, kind, all, json } => list(site, zone, kind, all, json).await,
        AssetCmd::Import { file, json } => import(site, &file, json).await,
        AssetCmd::Export { csv: _, all } => export(site, all).await,
    }
}

fn fields_from_args(args: AssetFieldArgs) -> Result<AssetFields> {
    let kind = args.kind.map(|k| k.parse::<AssetKind>()).transpose().map_err(|e| user(e.to_string()))?;
    let criticality =
        args.criticality.map(|c| c.parse::<Criticality>()).transpose().map_err(|e| user(e.to_string()))?;
    let in_scope = if args.in_scope {
        Some(true)
    } else if args.out_of_scope {
        Some(false)
    } else {
        None
    };
    let fields = AssetFields {
        kind,
        vendor: args.vendor,
        model: args.model,
        serial: args.serial,
        firmware: args.firmware,
        location: args.location,
        zone: args.zone,
        ip: args.ip,
        criticality,
        owner: args.owner,
        in_scope,
        // `--tag ""` clears the tags.
        tags: if args.tags.is_empty() { None } else { Some(args.tags.into_iter().filter(|t| !t.is_empty()).collect()) },
        custom: None,
    };
    fields.validate().map_err(user)?;
    Ok(fields)
}

fn new_asset(site: &Site, name: datum_shared::AssetName, fields: &AssetFields) -> Result<Asset> {
    let kind = fields.kind.ok_or_else(|| user(format!("asset {name}: --kind is required")))?;
    let mut asset = Asset::new(name, kind, Criticality::Medium, &site.actor, site.now);
    fields.apply_to(&mut asset);
    Ok(asset)
}

async fn add(site: &mut Site, name: &str, args: AssetFieldArgs) -> Result<Outcome> {
    let name = parse_asset_name(name)?;
    let fields = fields_from_args(args)?;
    if site.get::<Asset>(Asset::COLLECTION, name.as_str()).await?.is_some() {
        return Err(user(format!("asset {name} already exists (use `asset edit` to change it)")));
    }
    let asset = new_asset(site, name.clone(), &fields)?;
    let mut w = Write::new("asset.add", name.as_str(), None).concerning([&name]);
    w.put(&site.doc_id("inventory"), Asset::COLLECTION, name.as_str(), &asset)?;
    site.apply(w, format!("added {} {}", asset.kind, asset.name)).await?;
    println!("added asset {name} ({}, {})", asset.kind, asset.criticality);
    Ok(Outcome::Clean)
}

async fn edit(site: &mut Site, name: &str, args: AssetFieldArgs) -> Result<Outcome> {
    let mut asset = find_asset(site, name).await?;
    if !asset.is_active() {
        return Err(user(format!("asset {} is retired and cannot be edited", asset.name)));
    }
    let fields = fields_from_args(args)?;
    let before = asset.clone();
    if !fields.apply_to(&mut asset) {
        println!("asset {} unchanged", asset.name);
        return Ok(Outcome::Clean);
    }
    asset.updated_at = site.now;
    asset.updated_by = site.actor.clone();
    let changed = changed_fields(&before, &asset);
    let mut w = Write::new("asset.edit", asset.name.as_str(), None).concerning([&asset.name]);
    w.put(&site.doc_id("inventory"), Asset::COLLECTION, asset.name.as_str(), &asset)?;
    site.apply(w, format!("changed {}", changed.join(", "))).await?;
    println!("updated asset {}: {}", asset.name, changed.join(", "));
    Ok(Outcome::Clean)
}

fn changed_fields(before: &Asset, after: &Asset) -> Vec<String> {
    let a = serde_json::to_value(before).unwrap_or_default();
    let b = serde_json::to_value(after).unwrap_or_default();
    let keys: BTreeSet<&String> = a.as_object().into_iter().chain(b.as_object()).flat_map(|m| m.keys()).collect();
    keys.into_iter()
        .filter(|k| !matches!(k.as_str(), "updated_at" | "updated_by") && a.get(k.as_str()) != b.get(k.as_str()))
        .cloned()
        .collect()
}

async fn retire(site: &mut Site, name: &str, reason: String) -> Result<Outcome> {
    let reason = required_text("reason", reason, 1024)?;
    let mut asset = find_asset(site, name).await?;
    if let Some(at) = asset.retired_at {
        return Err(user(format!("asset {} was already retired on {}", asset.name, at.format("%Y-%m-%d"))));
    }
    asset.retired_at = Some(site.now);
    asset.retired_reason = Some(reason.clone());
    asset.updated_at = site.now;
    asset.updated_by = site.actor.clone();
    let mut w = Write::new("asset.retire", asset.name.as_str(), Some(reason)).concerning([&asset.name]);
    w.put(&site.doc_id("inventory"), Asset::COLLECTION, asset.name.as_str(), &asset)?;
    site.apply(w, "retired".into()).await?;
    println!("retired asset {}", asset.name);
    Ok(Outcome::Clean)
}

async fn show(site: &mut Site, name: &str, json: bool) -> Result<Outcome> {
    let asset = find_asset(site, name).await?;
    if json {
        print_json(&asset)?;
        return Ok(Outcome::Clean);
    }
    let rows: Vec<(&str, String)> = vec![
        ("name", asset.name.to_string()),
        ("kind", asset.kind.to_string()),
        ("criticality", asset.criticality.to_string()),
        ("in scope", if asset.in_scope { "yes".into() } else { "no".into() }),
        ("vendor", opt(&asset.vendor)),
        ("model", opt(&asset.model)),
        ("serial", opt(&asset.serial)),
        ("firmware", opt(&asset.firmware)),
        ("location", opt(&asset.location)),
        ("zone", opt(&asset.zone)),
        ("ip", opt(&asset.ip)),
        ("owner", opt(&asset.owner)),
        ("tags", if asset.tags.is_empty() { "-".into() } else { asset.tags.join(", ") }),
        ("created", format!("{} by {}", asset.created_at.to_rfc3339(), asset.created_by)),
        ("updated", format!("{} by {}", asset.updated_at.to_rfc3339(), asset.updated_by)),
    ];
    for (k, v) in rows {
        println!("{k:<12} {v}");
    }
    for (k, v) in &asset.custom {
        println!("{:<12} {v}", format!("{k}*"));
    }
    if let (Some(at), Some(reason)) = (asset.retired_at, &asset.retired_reason) {
        println!("{:<12} {} ({reason})", "retired", at.to_rfc3339());
    }
    // Two separate questions: does it match its approved baseline, and does it meet the standards?
    let view = crate::view::load(site).await?;
    for e in view.drift(site.now, &site.policy, None).iter().filter(|e| e.asset == asset.name) {
        let slot = e.slot.as_ref().map(|s| format!("{s}: ")).unwrap_or_default();
        println!("{:<12} {slot}{} ({})", "baseline", e.status.as_str(), e.detail);
    }
    for s in super::compliance::standing(site, &view, asset.name.as_str()).await? {
        println!("{:<12} {}", "standard", s.line());
    }
    Ok(Outcome::Clean)
}

async fn active_assets(site: &Site, all: bool) -> Result<Vec<Asset>> {
    Ok(site.list::<Asset>(Asset::COLLECTION).await?.into_iter().filter(|a| all || a.is_active()).collect())
}

async fn list(site: &mut Site, zone: Option<String>, kind: Option<String>, all: bool, json: bool) -> Result<Outcome> {
    let kind = kind.map(|k| k.parse::<AssetKind>()).transpose().map_err(|e| user(e.to_string()))?;
    let assets: Vec<Asset> = active_assets(site, all)
        .await?
        .into_iter()
        .filter(|a| zone.is_none() || a.zone == zone)
        .filter(|a| kind.is_none() || Some(a.kind) == kind)
        .collect();
    if json {
        print_json(&assets)?;
        return Ok(Outcome::Clean);
    }
    let rows: Vec<Vec<String>> = assets
        .iter()
        .map(|a| {
            vec![
                a.name.to_string(),
                a.kind.to_string(),
                a.criticality.to_string(),
                opt(&a.zone),
                opt(&a.ip),
                opt(&a.vendor),
                if !a.is_active() {
                    "retired".into()
                } else if a.in_scope {
                    "in scope".into()
                } else {
                    "out of scope".into()
                },
            ]
        })
        .collect();
    print_table(&["NAME", "KIND", "CRITICALITY", "ZONE", "IP", "VENDOR", "STATUS"], &rows);
    Ok(Outcome::Clean)
}

#[derive(Serialize)]
struct ImportReport {
    added: usize,
    updated: usize,
    unchanged: usize,
}

async fn import(site: &mut Site, file: &std::path::Path, json: bool) -> Result<Outcome> {
    let shown = file.display().to_string();
    let size = std::fs::metadata(file).map_err(|e| user(format!("{shown}: {e}")))?.len();
    if size as usize > csv_import::MAX_CSV_BYTES {
        return Err(user(format!("{shown}: file is {size} bytes; the limit is {}", csv_import::MAX_CSV_BYTES)));
    }
    let bytes = std::fs::read(file).map_err(|e| user(format!("{shown}: {e}")))?;
    let rows = csv_import::parse(&bytes).map_err(|e| user(format!("{shown}: {e}; nothing was imported")))?;
    let existing: std::collections::HashMap<_, _> =
        active_assets(site, true).await?.into_iter().map(|a| (a.name.clone(), a)).collect();
    let doc = site.doc_id("inventory");
    let mut touched = Vec::new();
    let mut puts = Vec::new();
    let mut report = ImportReport { added: 0, updated: 0, unchanged: 0 };
    for row in &rows {
        let asset = match existing.get(&row.name) {
            Some(current) if !current.is_active() => {
                return Err(user(format!(
                    "{shown}: line {}: asset {} is retired and cannot be re-imported; nothing was imported",
                    row.line, row.name
                )));
            }
            Some(current) => {
                let mut asset = current.clone();
                if !row.fields.apply_to(&mut asset) {
                    report.unchanged += 1;
                    continue;
                }
                asset.updated_at = site.now;
                asset.updated_by = site.actor.clone();
                report.updated += 1;
                asset
            }
            None => {
                report.added += 1;
                new_asset(site, row.name.clone(), &row.fields)?
            }
        };
        touched.push(asset.name.clone());
        puts.push(asset);
    }
    let mut w = Write::new("asset.import", shown.as_str(), None).concerning(&touched);
    for asset in &puts {
        w.put(&doc, Asset::COLLECTION, asset.name.as_str(), asset)?;
    }
    let bar = spinner(&format!("importing {} assets", rows.len()), json);
    let summary = format!("added {}, updated {}, unchanged {}", report.added, report.updated, report.unchanged);
    site.apply(w, summary.clone()).await.with_context(|| format!("import {shown}"))?;
    bar.finish_and_clear();
    if json {
        print_json(&report)?;
    } else {
        println!("imported {shown}: {summary}");
    }
    Ok(Outcome::Clean)
}

async fn export(site: &mut Site, all: bool) -> Result<Outcome> {
    let assets = active_assets(site, all).await?;
    let custom: BTreeSet<String> = assets.iter().flat_map(|a| a.custom.keys().cloned()).collect();
    let stdout = std::io::stdout();
    let mut writer = csv::Writer::from_writer(stdout.lock());
    let mut header: Vec<String> = COLUMNS.iter().map(|c| c.to_string()).collect();
    header.push("tags".into());
    header.extend(custom.iter().cloned());
    writer.write_record(&header)?;
    for a in &assets {
        let mut row = csv_import::row_of(a).to_vec();
        row.push(a.tags.join(";"));
        row.extend(custom.iter().map(|k| a.custom.get(k).cloned().unwrap_or_default()));
        writer.write_record(&row)?;
    }
    writer.flush()?;
    std::io::stdout().flush()?;
    Ok(Outcome::Clean)
}
