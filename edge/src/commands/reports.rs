//! `drift`, `restore-test`, `backup …`, `review …`: the periodic checks and their evidence.

use std::collections::BTreeSet;

use anyhow::Result;
use chrono::{DateTime, Utc};
use datum_shared::document::year_period;
use datum_shared::drift::DriftEntry;
use datum_shared::model::{Answer, Asset, Criticality, ManualAnswer, RestoreTest, Review, ReviewOutcome, TestResult};
use datum_shared::view::ReviewStatus;
use datum_shared::AssetName;
use serde::Serialize;

use super::{find_asset, parse_version, required_text, resolve_slot, text_arg};
use crate::blobs::BlobError;
use crate::cli::{BackupCmd, ExactVersion, RestoreTestCmd, ReviewCmd};
use crate::output::{age_days, print_json, print_table, progress};
use crate::site::{Site, Write};
use datum_host::cli::Json;
use datum_host::exit::{user, Outcome};

pub async fn drift(site: &mut Site, json: bool, zone: Option<&str>) -> Result<Outcome> {
    let view = crate::view::load(site).await?;
    if let Some(zone) = zone {
        if !view.assets.values().any(|a| a.zone.as_deref() == Some(zone)) {
            return Err(user(format!("zone {zone:?} has no assets (see `datum-edge asset list`)")));
        }
    }
    let entries = view.drift(site.now, &site.policy, zone);
    let findings = entries.iter().any(|e| e.status.is_finding());
    if json {
        print_json(&entries)?;
    } else {
        print_drift(&entries);
    }
    Ok(Outcome::from_findings(findings))
}

fn print_drift(entries: &[DriftEntry]) {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.asset.to_string(),
                e.slot.as_ref().map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                e.status.as_str().to_string(),
                e.detail.clone(),
            ]
        })
        .collect();
    print_table(&["ASSET", "SLOT", "STATUS", "DETAIL"], &rows);
    let n = |s: &str| entries.iter().filter(|e| e.status.as_str() == s).count();
    println!(
        "\n{} in baseline, {} authorized drift, {} UNAUTHORIZED drift, {} no baseline, {} stale",
        n("in-baseline"),
        n("drift-authorized"),
        n("drift-unauthorized"),
        n("no-baseline"),
        n("stale")
    );
}

pub async fn restore_test(site: &mut Site, cmd: RestoreTestCmd) -> Result<Outcome> {
    let RestoreTestCmd::Record { of: ExactVersion { asset, slot, version }, result, method, evidence, notes } = cmd;
    let evidence = match evidence {
        None => None,
        Some(path) => {
            let name = path.file_name().map(|n| n.to_string_lossy().to_string());
            Some((path, name))
        }
    };
    let test =
        record_restore_test(site, RestoreTestArgs { asset, slot, version, result, method, evidence, notes }).await?;
    let result_text = if test.result == TestResult::Pass { "pass" } else { "FAIL" };
    println!("recorded restore test #{} of {}/{} v{}: {result_text}", test.id, test.asset, test.slot, test.version);
    Ok(Outcome::Clean)
}

/// What a restore test record is made of, as typed at the command line or in the web form.
#[derive(Debug, Default, serde::Deserialize)]
pub struct RestoreTestArgs {
    pub asset: String,
    #[serde(default)]
    pub slot: Option<String>,
    pub version: String,
    pub result: String,
    pub method: String,
    /// A stored file kept as evidence, and the name it is recorded under.
    #[serde(skip)]
    pub evidence: Option<(std::path::PathBuf, Option<String>)>,
    #[serde(default)]
    pub notes: Option<String>,
}

/// Records a restore test of a stored version as the site's actor (CLI, web and API).
pub async fn record_restore_test(site: &mut Site, args: RestoreTestArgs) -> Result<RestoreTest> {
    let RestoreTestArgs { asset, slot, version, result, method, evidence, notes } = args;
    let asset = find_asset(site, &asset).await?;
    let result: TestResult = result.parse().map_err(|e: datum_shared::model::ParseEnumError| user(e.to_string()))?;
    let method = required_text("method", method, 1024)?;
    let notes = text_arg("notes", notes.filter(|n| !n.trim().is_empty()), 4096)?;
    let view = crate::view::load(site).await?;
    let slot = resolve_slot(&asset, &view.slots_of(&asset.name), slot.as_deref().filter(|s| !s.trim().is_empty()))?;
    let n = parse_version(&version)?;
    let v = view
        .version(&asset.name, &slot, n)
        .ok_or_else(|| user(format!("{}/{slot} has no version {n}", asset.name)))?
        .clone();
    let (evidence_hash, evidence_name) = match &evidence {
        None => (None, None),
        Some((path, name)) => {
            if !path.is_file() {
                return Err(user(format!("evidence {} is not a readable file", path.display())));
            }
            let stored = site.blobs.put_file(path, &[]).map_err(|e| match e {
                BlobError::TooLarge { .. } => user(e.to_string()),
                other => other.into(),
            })?;
            (Some(super::configs::hash_of(&stored.hash)?), name.clone())
        }
    };
    let id = view.restore_tests.iter().map(|t| t.id).max().unwrap_or(0) + 1;
    let test = RestoreTest {
        id,
        asset: asset.name.clone(),
        slot: slot.clone(),
        version: v.version,
        result,
        method,
        evidence_hash,
        evidence_name,
        notes,
        tested_at: site.now,
        tested_by: site.actor.clone(),
    };
    let doc = site.doc_id(&format!("records/{}", year_period(site.now)));
    let mut w = Write::new("restore-test.record", asset.name.as_str(), None).concerning([&asset.name]);
    w.put(&doc, RestoreTest::COLLECTION, &format!("{id:06}"), &test)?;
    let result_text = if result == TestResult::Pass { "pass" } else { "FAIL" };
    site.apply(w, format!("{slot} v{} restore test: {result_text}", v.version)).await?;
    Ok(test)
}

pub async fn backup(site: &mut Site, cmd: BackupCmd) -> Result<Outcome> {
    match cmd {
        BackupCmd::Status(Json { json }) => backup_status(site, json).await,
        BackupCmd::Verify(Json { json }) => backup_verify(site, json).await,
    }
}

#[derive(Serialize)]
struct BackupStatus {
    asset: AssetName,
    criticality: Criticality,
    last_backup_at: Option<DateTime<Utc>>,
    backup_interval_days: i64,
    backup_overdue: bool,
    last_restore_test_at: Option<DateTime<Utc>>,
    restore_test_interval_days: i64,
    restore_test_overdue: bool,
}

async fn backup_status(site: &mut Site, json: bool) -> Result<Outcome> {
    let view = crate::view::load(site).await?;
    let mut out = Vec::new();
    for asset in view.reported_assets() {
        let b = view.backup_state(asset, site.now, &site.policy);
        out.push(BackupStatus {
            asset: asset.name.clone(),
            criticality: asset.criticality,
            last_backup_at: b.last_backup,
            backup_interval_days: b.backup_interval.num_days(),
            backup_overdue: b.backup_overdue,
            last_restore_test_at: b.last_test,
            restore_test_interval_days: b.test_interval.num_days(),
            restore_test_overdue: b.test_overdue,
        });
    }
    let findings = out.iter().any(|s| s.backup_overdue || s.restore_test_overdue);
    if json {
        print_json(&out)?;
    } else {
        let flag = |overdue: bool| if overdue { "OVERDUE" } else { "ok" };
        let rows: Vec<Vec<String>> = out
            .iter()
            .map(|s| {
                vec![
                    s.asset.to_string(),
                    s.criticality.to_string(),
                    age_days(site.now, s.last_backup_at),
                    format!("{} (every {}d)", flag(s.backup_overdue), s.backup_interval_days),
                    age_days(site.now, s.last_restore_test_at),
                    format!("{} (every {}d)", flag(s.restore_test_overdue), s.restore_test_interval_days),
                ]
            })
            .collect();
        print_table(&["ASSET", "CRITICALITY", "BACKUP AGE", "BACKUP", "RESTORE TEST AGE", "RESTORE TEST"], &rows);
    }
    Ok(Outcome::from_findings(findings))
}

#[derive(Serialize)]
pub struct BlobProblem {
    pub hash: String,
    pub problem: String,
    pub used_by: Vec<String>,
}

#[derive(Serialize)]
struct VerifyReport {
    blobs_checked: usize,
    bytes_checked: u64,
    problems: Vec<BlobProblem>,
}

/// Every blob hash the records reference, with who references it.
pub async fn referenced_blobs(site: &Site) -> Result<std::collections::BTreeMap<String, Vec<String>>> {
    let view = crate::view::load(site).await?;
    let mut refs: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for v in view.versions.values().flatten() {
        refs.entry(v.raw_hash.to_string()).or_default().push(format!("{}/{} v{}", v.asset, v.slot, v.version));
    }
    for t in &view.restore_tests {
        if let Some(h) = &t.evidence_hash {
            refs.entry(h.to_string()).or_default().push(format!("restore test #{} evidence", t.id));
        }
    }
    Ok(refs)
}

/// Re-hashes every blob (referenced and stored); reports damaged and missing ones.
pub async fn check_blobs(site: &Site, json: bool) -> Result<(usize, u64, Vec<BlobProblem>)> {
    let refs = referenced_blobs(site).await?;
    let stored: BTreeSet<String> = site.blobs.list()?.into_iter().collect();
    let all: BTreeSet<&String> = refs.keys().chain(stored.iter()).collect();
    let bar = progress(all.len() as u64, "verifying blobs", json);
    let mut problems = Vec::new();
    let mut bytes = 0;
    for hash in &all {
        match site.blobs.verify(hash) {
            Ok(n) => bytes += n,
            Err(e) => problems.push(BlobProblem {
                hash: (*hash).clone(),
                problem: e.to_string(),
                used_by: refs.get(*hash).cloned().unwrap_or_default(),
            }),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((all.len(), bytes, problems))
}

async fn backup_verify(site: &mut Site, json: bool) -> Result<Outcome> {
    let (n, bytes, problems) = check_blobs(site, json).await?;
    let findings = !problems.is_empty();
    if json {
        print_json(&VerifyReport { blobs_checked: n, bytes_checked: bytes, problems })?;
    } else {
        for p in &problems {
            let users =
                if p.used_by.is_empty() { String::new() } else { format!(" (used by {})", p.used_by.join(", ")) };
            println!("DAMAGED {}{users}", p.problem);
        }
        println!(
            "checked {n} blobs ({bytes} bytes): {}",
            if findings { format!("{} damaged or missing", problems.len()) } else { "all intact".into() }
        );
    }
    Ok(Outcome::from_findings(findings))
}

pub async fn review(site: &mut Site, cmd: ReviewCmd) -> Result<Outcome> {
    match cmd {
        ReviewCmd::Due(Json { json }) => review_due(site, json).await,
        ReviewCmd::Record { asset, zone, outcome, notes, answers } => {
            review_record(site, ReviewArgs { asset, zone, outcome, notes, answers }).await
        }
    }
}

#[derive(Serialize)]
struct ReviewDue {
    asset: AssetName,
    criticality: Criticality,
    zone: Option<String>,
    last_review_at: Option<DateTime<Utc>>,
    due_at: DateTime<Utc>,
    interval_days: i64,
    status: ReviewStatus,
}

async fn review_due(site: &mut Site, json: bool) -> Result<Outcome> {
    let view = crate::view::load(site).await?;
    let mut out = Vec::new();
    for asset in view.reported_assets() {
        let r = view.review_state(asset, site.now, &site.policy);
        out.push(ReviewDue {
            asset: asset.name.clone(),
            criticality: asset.criticality,
            zone: asset.zone.clone(),
            last_review_at: r.last,
            due_at: r.due_at,
            interval_days: r.interval.num_days(),
            status: r.status,
        });
    }
    let findings = out.iter().any(|r| r.status.is_overdue());
    let listed: Vec<&ReviewDue> = out.iter().filter(|r| r.status != ReviewStatus::Ok).collect();
    if json {
        print_json(&listed)?;
    } else {
        let rows: Vec<Vec<String>> = listed
            .iter()
            .map(|r| {
                vec![
                    r.asset.to_string(),
                    r.criticality.to_string(),
                    r.zone.clone().unwrap_or_else(|| "-".into()),
                    r.last_review_at.map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_else(|| "never".into()),
                    r.due_at.format("%Y-%m-%d").to_string(),
                    r.status.as_str().to_uppercase(),
                ]
            })
            .collect();
        print_table(&["ASSET", "CRITICALITY", "ZONE", "LAST REVIEW", "DUE", "STATUS"], &rows);
        println!("\n{} of {} in-scope assets due or overdue", listed.len(), out.len());
    }
    Ok(Outcome::from_findings(findings))
}

async fn review_record(site: &mut Site, args: ReviewArgs) -> Result<Outcome> {
    let (review, findings) = record_review(site, args).await?;
    let subject = match &review.zone {
        Some(zone) => format!("zone:{zone}"),
        None => review.assets.first().map(|a| a.to_string()).unwrap_or_default(),
    };
    println!(
        "recorded review #{} of {} ({} asset(s)); drift at review time: {} finding(s)",
        review.id,
        subject,
        review.assets.len(),
        findings
    );
    Ok(Outcome::Clean)
}

/// Parses `--answer TEMPLATE/RULE=yes|no|n/a` (or `RULE=…`): each must name a `manual` rule of a template
/// active here.
async fn manual_answers(site: &Site, given: &[String]) -> Result<Vec<ManualAnswer>> {
    if given.is_empty() {
        return Ok(Vec::new());
    }
    let active = super::templates::active(site).await?;
    let manual = |t: &datum_shared::template::Template, rule: &str| {
        t.rules.iter().any(|r| r.id == rule && matches!(r.check, datum_shared::template::Check::Manual { .. }))
    };
    let mut out: Vec<ManualAnswer> = Vec::new();
    for g in given {
        let (target, answer) =
            g.split_once('=').ok_or_else(|| user(format!("--answer {g:?}: TEMPLATE/RULE=yes|no|n/a")))?;
        let answer: Answer = answer.parse().map_err(|e: datum_shared::model::ParseEnumError| user(e.to_string()))?;
        let (template, rule) = match target.split_once('/') {
            Some((t, r)) => (t.trim().to_string(), r.trim().to_string()),
            None => {
                let rule = target.trim();
                let owners: Vec<&str> =
                    active.iter().filter(|a| manual(&a.template, rule)).map(|a| a.template.id.as_str()).collect();
                match owners.as_slice() {
                    [one] => (one.to_string(), rule.to_string()),
                    [] => return Err(user(format!("no template active here has a manual rule {rule}"))),
                    many => {
                        return Err(user(format!("{rule} is a rule of {}: write TEMPLATE/{rule}", many.join(" and "))))
                    }
                }
            }
        };
        if !active.iter().any(|a| a.template.id == template && manual(&a.template, &rule)) {
            return Err(user(format!(
                "{template}/{rule} is not a manual rule of a template active here (see `datum-edge template show`)"
            )));
        }
        out.retain(|a| !(a.template == template && a.rule == rule));
        out.push(ManualAnswer { template, rule, answer });
    }
    Ok(out)
}

/// What a review record is made of: one asset or a whole zone, the outcome and notes.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ReviewArgs {
    #[serde(default)]
    pub asset: Option<String>,
    #[serde(default)]
    pub zone: Option<String>,
    pub outcome: String,
    pub notes: String,
    /// Answers to manual checklist items: `TEMPLATE/RULE=yes|no|n/a` (or `RULE=…`).
    #[serde(default)]
    pub answers: Vec<String>,
}

/// Records a periodic review as the site's actor, with the drift found at review time; returns it and the
/// number of drift findings in it.
pub async fn record_review(site: &mut Site, args: ReviewArgs) -> Result<(Review, usize)> {
    let ReviewArgs { asset, zone, outcome, notes, answers } = args;
    let asset = asset.filter(|a| !a.trim().is_empty());
    let zone = zone.filter(|z| !z.trim().is_empty());
    let outcome: ReviewOutcome =
        outcome.parse().map_err(|e: datum_shared::model::ParseEnumError| user(e.to_string()))?;
    let notes = required_text("notes", notes, 8192)?;
    let view = crate::view::load(site).await?;
    let (assets, subject): (Vec<&Asset>, String) = match (&asset, &zone) {
        (Some(name), _) => {
            let a = find_asset(site, name).await?;
            if !a.is_active() {
                return Err(user(format!("asset {} is retired; it needs no review", a.name)));
            }
            let a = view.assets.get(&a.name).ok_or_else(|| user(format!("asset {name} does not exist")))?;
            (vec![a], a.name.to_string())
        }
        (None, Some(zone)) => {
            let list: Vec<&Asset> =
                view.assets.values().filter(|a| a.is_active() && a.zone.as_deref() == Some(zone)).collect();
            if list.is_empty() {
                return Err(user(format!("zone {zone:?} has no active assets")));
            }
            (list, format!("zone:{zone}"))
        }
        (None, None) => return Err(user("name an asset or a zone (--zone)")),
    };
    let names: Vec<AssetName> = assets.iter().map(|a| a.name.clone()).collect();
    let drift: Vec<DriftEntry> =
        view.drift(site.now, &site.policy, zone.as_deref()).into_iter().filter(|e| names.contains(&e.asset)).collect();
    let answers = manual_answers(site, &answers).await?;
    let id = view.reviews.iter().map(|r| r.id).max().unwrap_or(0) + 1;
    let review = Review {
        id,
        assets: names.clone(),
        zone: zone.clone(),
        outcome,
        notes,
        reviewed_at: site.now,
        reviewed_by: site.actor.clone(),
        drift,
        answers,
    };
    let doc = site.doc_id(&format!("records/{}", year_period(site.now)));
    let mut w = Write::new("review.record", subject.clone(), None).concerning(&names);
    w.put(&doc, Review::COLLECTION, &format!("{id:06}"), &review)?;
    let findings = review.drift.iter().filter(|d| d.status.is_finding()).count();
    site.apply(
        w,
        format!(
            "review #{id} of {} asset(s): {}, {findings} drift finding(s) at review time",
            names.len(),
            if outcome == ReviewOutcome::Ok { "ok" } else { "findings" }
        ),
    )
    .await?;
    Ok((review, findings))
}
