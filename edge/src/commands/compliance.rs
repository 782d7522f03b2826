//! `datum-edge compliance`: this plant checked against standards. Without `--template`, every template the
//! hub assigned and this node verified (`super::templates`); with `--template ID`, one of them; with
//! `--template FILE`, a standard tried on this plant's records before anyone publishes it (the file validated,
//! its own `pass`/`fail` examples run). Every rule is decided for every asset in scope it applies to, from the
//! newest capture of each configuration slot (normalised as for drift: secrets masked). Reads only: the
//! results of assigned templates are recorded by [`super::templates::refresh`] (after each sync pass and each
//! capture or inventory change).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::Result;
use chrono::{DateTime, Utc};
use datum_host::exit::{user, Outcome};
use datum_shared::change::VersionRef;
use datum_shared::model::ConfigVersion;
use datum_shared::normalize::{normalize, FingerprintKey, Normalized, MAX_NORMALIZE_BYTES};
use datum_shared::rollout::{Counts, Failing, Summary, MAX_LISTED_FAILURES};
use datum_shared::template::{
    answered, evaluate_compiled, parse_settings, Check, Enforcement, Outcome as RuleOutcome, Rule, Template,
    MAX_TEMPLATE_BYTES,
};
use datum_shared::view::View;
use datum_shared::waiver::{covering, Waiver};
use datum_shared::{AssetName, SlotName};
use serde::Serialize;

use crate::output::print_table;
use crate::site::Site;

/// One rule's result for one asset (and configuration slot, for configuration rules).
#[derive(Serialize)]
pub struct Row<'a> {
    asset: &'a str,
    slot: Option<&'a str>,
    /// The version evaluated.
    version: Option<u32>,
    rule: &'a str,
    title: &'a str,
    #[serde(flatten)]
    outcome: RuleOutcome,
}

#[derive(Serialize)]
struct Report<'a> {
    template: String,
    version: String,
    rows: Vec<Row<'a>>,
}

/// Reads and checks a template file to try out.
fn read_file(site: &Site, file: &Path) -> Result<Template> {
    let meta = std::fs::metadata(file).map_err(|e| user(format!("{}: {e}", file.display())))?;
    if !meta.is_file() || meta.len() > MAX_TEMPLATE_BYTES as u64 {
        return Err(user(format!("{}: not a template file of at most {MAX_TEMPLATE_BYTES} bytes", file.display())));
    }
    let text = std::fs::read_to_string(file).map_err(|e| user(format!("{}: {e}", file.display())))?;
    let template = Template::parse(&text).map_err(|e| user(format!("{}: {e}", file.display())))?;
    let wrong = template.check_snippets(&site.fingerprint_key());
    if !wrong.is_empty() {
        return Err(user(format!(
            "{}: rule examples do not give their stated results:\n  {}",
            file.display(),
            wrong.join("\n  ")
        )));
    }
    Ok(template)
}

/// How `compliance` prints: every result, or per template the summary the hub is sent; text or JSON.
#[derive(Debug, Clone, Copy)]
pub struct Show {
    pub json: bool,
    pub summary: bool,
}

pub async fn compliance(
    site: &mut Site,
    template: Option<&Path>,
    set: &[String],
    only: Option<&str>,
    show: Show,
) -> Result<Outcome> {
    let view = crate::view::load(site).await?;
    if let Some(name) = only {
        if !view.assets.keys().any(|a| a.as_str() == name) {
            return Err(user(format!("asset {name} does not exist (see `datum-edge asset list`)")));
        }
    }
    let waivers = super::waivers::in_force(site).await?;
    let mut captures = Captures::new(site);
    // A file to try out, or assigned templates.
    if let Some(file) = template.filter(|f| f.is_file()) {
        let template = read_file(site, file)?;
        let params = template.values(&parse_settings(set).map_err(user)?).map_err(user)?;
        let mut rows = evaluate(site, &view, &mut captures, &template, &params, only)?;
        waive(&mut rows, &template.id, &waivers, site.now);
        let failing = any_failing(&rows);
        let report = Report { template: template.id.clone(), version: template.version.to_string(), rows };
        let mut out = Printer::new(show, false, "tried on this site's records; nothing recorded");
        out.report(site, &template, &report)?;
        out.finish()?;
        return Ok(Outcome::from_findings(failing));
    }
    if !set.is_empty() {
        return Err(user(
            "--set is for a template file tried out; an assigned template's parameters are set at the hub",
        ));
    }
    let wanted = template.map(|t| t.to_string_lossy().to_string());
    let active = super::templates::active(site).await?;
    if let Some(id) = &wanted {
        if !active.iter().any(|a| a.template.id == *id) {
            return Err(user(format!(
                "{id} is neither a template file nor a template active at this site (see `datum-edge template list`)"
            )));
        }
    }
    if active.is_empty() && !show.json {
        println!(
            "no template is active at this site (the hub assigns them; see `datum-edge template list`), or try \
             one out with --template FILE"
        );
        return Ok(Outcome::Clean);
    }
    // Each template's results printed as soon as they are decided, then dropped: memory holds one template's.
    let mut out = Printer::new(show, true, "assigned by the hub");
    let mut failing = false;
    for a in active.iter().filter(|a| wanted.as_ref().is_none_or(|w| *w == a.template.id)) {
        let mut rows = evaluate(site, &view, &mut captures, &a.template, &a.params, only)?;
        waive(&mut rows, &a.template.id, &waivers, site.now);
        failing |= any_failing(&rows);
        let report = Report { template: a.template.id.clone(), version: a.template.version.to_string(), rows };
        out.report(site, &a.template, &report)?;
    }
    out.finish()?;
    Ok(Outcome::from_findings(failing))
}

/// Prints reports one by one: every row, or each one's summary; JSON is a list when `list`, else one object.
struct Printer {
    show: Show,
    list: bool,
    note: &'static str,
    out: std::io::BufWriter<std::io::Stdout>,
    written: usize,
}

impl Printer {
    fn new(show: Show, list: bool, note: &'static str) -> Printer {
        Printer { show, list, note, out: std::io::BufWriter::with_capacity(1 << 16, std::io::stdout()), written: 0 }
    }

    fn report(&mut self, site: &Site, template: &Template, report: &Report<'_>) -> Result<()> {
        use std::io::Write as _;
        if self.show.json {
            self.out.write_all(match (self.list, self.written) {
                (true, 0) => b"[\n",
                (true, _) => b",\n",
                (false, _) => b"",
            })?;
            if self.show.summary {
                serde_json::to_writer_pretty(&mut self.out, &summary(template, &report.rows, site.now))?;
            } else {
                serde_json::to_writer_pretty(&mut self.out, report)?;
            }
        } else if self.show.summary {
            let s = summary(template, &report.rows, site.now);
            writeln!(self.out, "{} {}", s.template, s.line())?;
            for f in &s.failing {
                let at = f.config.as_deref().map(|c| format!(" [{c}]")).unwrap_or_default();
                writeln!(self.out, "  {} {}{at}: {} {}", f.asset, f.rule, f.result, f.detail)?;
            }
            if s.unlisted > 0 {
                writeln!(self.out, "  … and {} more", s.unlisted)?;
            }
        } else {
            self.out.flush()?;
            print_rows(&report.template, &report.version, &report.rows, self.note);
            if self.list {
                println!();
            }
        }
        self.written += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        use std::io::Write as _;
        if self.show.json && self.list {
            self.out.write_all(if self.written == 0 { b"[]\n" } else { b"\n]\n" })?;
        } else if self.show.json {
            self.out.write_all(b"\n")?;
        }
        self.out.flush()?;
        Ok(())
    }
}

/// Turns each non-compliant result that an approved, unexpired waiver covers into `waived`.
pub fn waive(rows: &mut [Row<'_>], template: &str, waivers: &[Waiver], now: DateTime<Utc>) {
    for row in rows {
        let RuleOutcome::NonCompliant { findings } = &mut row.outcome else { continue };
        if let Some(w) = covering(waivers, template, row.rule, row.asset, now) {
            row.outcome =
                RuleOutcome::Waived { waiver: w.id.clone(), expires: w.expires, findings: std::mem::take(findings) };
        }
    }
}

fn any_failing(rows: &[Row<'_>]) -> bool {
    rows.iter().any(|r| matches!(r.outcome, RuleOutcome::NonCompliant { .. } | RuleOutcome::Error { .. }))
}

/// Every rule of `template` (with `params`) for every asset in scope it applies to (or only `only`).
pub fn evaluate<'a>(
    site: &Site,
    view: &'a View,
    captures: &mut Captures,
    template: &'a Template,
    params: &BTreeMap<String, String>,
    only: Option<&str>,
) -> Result<Vec<Row<'a>>> {
    let mut rows = Vec::new();
    let rules = template.rules.iter().map(|r| r.compile(params)).collect::<Result<Vec<_>, _>>().map_err(user)?;
    let (field_rules, config_rules): (Vec<_>, Vec<_>) =
        rules.iter().partition(|c| matches!(c.rule.check, Check::Field { .. } | Check::Manual { .. }));
    // Sized once: growing a vector of a million results costs more than deciding them.
    let in_scope = if only.is_some() { 1 } else { view.assets.len() };
    rows.reserve(in_scope * field_rules.len() + view.versions.len() * config_rules.len());
    for asset in view.reported_assets().filter(|a| only.is_none_or(|n| a.name.as_str() == n)) {
        if !template.applies_to(asset, None) {
            continue;
        }
        // The asset's captures the template applies to (by format), or that cannot be read. A template that
        // names formats applies only to assets with a capture of one of them.
        let latest = captures.latest_of(view, &asset.name);
        for v in &latest {
            captures.prepare(site, v);
        }
        let slots: Vec<(&ConfigVersion, &Result<Normalized, String>)> = latest
            .iter()
            .filter_map(|v| Some((*v, captures.get(v)?)))
            .filter(|(_, n)| match n {
                Ok(n) => template.applies_to(asset, Some(n.format)),
                Err(_) => true,
            })
            .collect();
        if !template.applies.format.is_empty() && slots.is_empty() {
            continue;
        }
        let push = |rows: &mut Vec<Row<'a>>, slot: Option<(&'a str, u32)>, rule: &'a Rule, outcome| {
            rows.push(Row {
                asset: asset.name.as_str(),
                slot: slot.map(|s| s.0),
                version: slot.map(|s| s.1),
                rule: &rule.id,
                title: &rule.title,
                outcome,
            })
        };
        // Inventory rules and checklist items (answered at a review while it is current): once per asset.
        for c in &field_rules {
            let outcome = match c.rule.check {
                Check::Manual { .. } => {
                    let valid_for = site.policy.review_interval(asset.criticality);
                    answered(&view.reviews, &template.id, &c.rule.id, &asset.name, site.now, valid_for)
                        .unwrap_or_else(|| evaluate_compiled(c, asset, None))
                }
                _ => evaluate_compiled(c, asset, None),
            };
            push(&mut rows, None, c.rule, outcome);
        }
        if config_rules.is_empty() {
            continue;
        }
        for (v, normalized) in &slots {
            let at = Some((v.slot.as_str(), v.version));
            for c in &config_rules {
                let outcome = match normalized {
                    Ok(n) => evaluate_compiled(c, asset, Some(&n.lines)),
                    Err(why) => RuleOutcome::Error { why: why.clone() },
                };
                push(&mut rows, at, c.rule, outcome);
            }
        }
        if slots.is_empty() {
            for c in &config_rules {
                push(&mut rows, None, c.rule, evaluate_compiled(c, asset, None));
            }
        }
    }
    Ok(rows)
}

/// Whether one asset meets one active template ("meets the standard", beside drift's "matches its
/// baseline").
#[derive(Debug, Serialize)]
pub struct Standing {
    pub template: String,
    pub version: String,
    pub meets: bool,
    /// Rules non-compliant or undecided for this asset.
    pub failing: Vec<String>,
    /// Rules non-compliant but excused by a waiver, with the waiver's id.
    pub waived: Vec<String>,
    pub compliant: usize,
}

impl Standing {
    pub fn line(&self) -> String {
        let mut s = if self.meets {
            format!("{} {}: meets it ({} compliant)", self.template, self.version, self.compliant)
        } else {
            format!("{} {}: does NOT meet it: {}", self.template, self.version, self.failing.join(", "))
        };
        if !self.waived.is_empty() {
            s.push_str(&format!("; waived: {}", self.waived.join(", ")));
        }
        s
    }
}

/// How `asset` stands against every template active here that applies to it.
pub async fn standing(site: &Site, view: &View, asset: &str) -> Result<Vec<Standing>> {
    let waivers = super::waivers::in_force(site).await?;
    let mut captures = Captures::new(site);
    let mut out = Vec::new();
    for a in super::templates::active(site).await? {
        let mut rows = evaluate(site, view, &mut captures, &a.template, &a.params, Some(asset))?;
        if rows.is_empty() {
            continue;
        }
        waive(&mut rows, &a.template.id, &waivers, site.now);
        let pick = |f: fn(&RuleOutcome) -> bool| -> Vec<String> {
            let mut ids: Vec<String> = rows.iter().filter(|r| f(&r.outcome)).map(|r| r.rule.to_string()).collect();
            ids.dedup();
            ids
        };
        let failing = pick(|o| matches!(o, RuleOutcome::NonCompliant { .. } | RuleOutcome::Error { .. }));
        let waived: Vec<String> = rows
            .iter()
            .filter_map(|r| match &r.outcome {
                RuleOutcome::Waived { waiver, .. } => Some(format!("{} ({waiver})", r.rule)),
                _ => None,
            })
            .collect();
        out.push(Standing {
            template: a.template.id.clone(),
            version: a.template.version.to_string(),
            meets: failing.is_empty(),
            failing,
            waived,
            compliant: rows.iter().filter(|r| r.outcome == RuleOutcome::Compliant).count(),
        });
    }
    Ok(out)
}

/// The captures one command evaluates, each read and normalised once whatever the number of templates, and
/// the newest version of each slot by asset.
pub struct Captures {
    key: FingerprintKey,
    by_asset: Option<HashMap<AssetName, Vec<(SlotName, u32)>>>,
    normalized: HashMap<(String, Option<String>), Result<Normalized, String>>,
}

impl Captures {
    pub fn new(site: &Site) -> Captures {
        Captures { key: site.fingerprint_key(), by_asset: None, normalized: HashMap::new() }
    }

    /// The newest version of each configuration slot of `asset`.
    fn latest_of<'v>(&mut self, view: &'v View, asset: &AssetName) -> Vec<&'v ConfigVersion> {
        let by_asset = self.by_asset.get_or_insert_with(|| {
            let mut m: HashMap<AssetName, Vec<(SlotName, u32)>> = HashMap::new();
            for ((a, s), list) in &view.versions {
                if let Some(v) = list.last() {
                    m.entry(a.clone()).or_default().push((s.clone(), v.version));
                }
            }
            m
        });
        by_asset
            .get(asset)
            .map(|slots| slots.iter().filter_map(|(s, n)| view.version(asset, s, *n)).collect())
            .unwrap_or_default()
    }

    /// Reads and normalises the version, once.
    fn prepare(&mut self, site: &Site, v: &ConfigVersion) {
        let key = (v.raw_hash.as_str().to_string(), v.file_name.clone());
        let fingerprint = &self.key;
        self.normalized.entry(key).or_insert_with(|| normalized(site, v, fingerprint));
    }

    /// The version's normalised lines, once [`Captures::prepare`]d.
    fn get(&self, v: &ConfigVersion) -> Option<&Result<Normalized, String>> {
        self.normalized.get(&(v.raw_hash.as_str().to_string(), v.file_name.clone()))
    }
}

/// A stored version's normalised lines (as for drift: secrets masked), or why they cannot be had.
fn normalized(site: &Site, v: &ConfigVersion, key: &FingerprintKey) -> Result<Normalized, String> {
    if v.size > MAX_NORMALIZE_BYTES as u64 {
        return Err(format!("v{} is {} bytes, over the limit of comparisons", v.version, v.size));
    }
    match site.blobs.read(v.raw_hash.as_str()) {
        Ok(bytes) => normalize(v.file_name.as_deref(), &bytes, key).map_err(|e| e.to_string()),
        Err(e) => Err(format!("the stored copy of v{} cannot be read: {e}", v.version)),
    }
}

/// What the templates with `warn` or `gate` enforcement say about the captures a change is verified with:
/// each rule non-compliant on a verified capture that was not already non-compliant on the slot's baseline
/// before the change (a new non-compliance), unless a waiver covers it. `gate` findings refuse the
/// verification; `warn` findings are shown and recorded with it.
#[derive(Debug, Default)]
pub struct Enforced {
    pub warn: Vec<String>,
    pub gate: Vec<String>,
}

pub async fn enforce(site: &Site, view: &View, captures: &[VersionRef]) -> Result<Enforced> {
    let mut out = Enforced::default();
    let active = super::templates::active(site).await?;
    if active.iter().all(|a| a.template.enforcement == Enforcement::Report) {
        return Ok(out);
    }
    let waivers = super::waivers::in_force(site).await?;
    let key = site.fingerprint_key();
    for a in active.iter().filter(|a| a.template.enforcement != Enforcement::Report) {
        let rules =
            a.template.rules.iter().map(|r| r.compile(&a.params)).collect::<Result<Vec<_>, _>>().map_err(user)?;
        for cap in captures {
            let Some(asset) = view.assets.get(&cap.asset) else { continue };
            let Some(new) = view.version(&cap.asset, &cap.slot, cap.version) else { continue };
            if !a.template.applies_to(asset, None) {
                continue;
            }
            let new_lines = match normalized(site, new, &key) {
                Ok(n) if a.template.applies_to(asset, Some(n.format)) => n.lines,
                Ok(_) => continue,
                Err(why) => {
                    let finding = format!("{} on {cap}: cannot be checked: {why}", a.template.id);
                    match a.template.enforcement {
                        Enforcement::Gate => out.gate.push(finding),
                        _ => out.warn.push(finding),
                    }
                    continue;
                }
            };
            // The slot's baseline before the change (the verified capture may be that very version: then
            // nothing it finds is new).
            let baseline = view
                .baselines
                .get(&(cap.asset.clone(), cap.slot.clone()))
                .and_then(|b| view.version(&cap.asset, &cap.slot, b.version))
                .and_then(|v| normalized(site, v, &key).ok());
            for c in rules.iter().filter(|c| !matches!(c.rule.check, Check::Field { .. } | Check::Manual { .. })) {
                let RuleOutcome::NonCompliant { findings } = evaluate_compiled(c, asset, Some(&new_lines)) else {
                    continue;
                };
                let before = baseline.as_ref().map(|b| evaluate_compiled(c, asset, Some(&b.lines)));
                if matches!(before, Some(RuleOutcome::NonCompliant { .. })) {
                    continue;
                }
                if covering(&waivers, &a.template.id, &c.rule.id, cap.asset.as_str(), site.now).is_some() {
                    continue;
                }
                let detail =
                    findings.first().map(|f| f.line.clone().unwrap_or_else(|| f.what.clone())).unwrap_or_default();
                let finding = format!("{} {} {} on {cap}: {detail}", a.template.id, a.template.version, c.rule.id);
                match a.template.enforcement {
                    Enforcement::Gate => out.gate.push(finding),
                    _ => out.warn.push(finding),
                }
            }
        }
    }
    Ok(out)
}

fn print_rows(template: &str, version: &str, rows: &[Row<'_>], note: &str) {
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let (result, detail) = match &r.outcome {
                RuleOutcome::Compliant => ("compliant", String::new()),
                RuleOutcome::NonCompliant { findings } => (
                    "NON-COMPLIANT",
                    findings
                        .iter()
                        .take(3)
                        .map(|f| {
                            let text = f.line.as_ref().unwrap_or(&f.what);
                            if f.location.is_empty() {
                                text.clone()
                            } else {
                                format!("[{}] {text}", f.location)
                            }
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                RuleOutcome::NotApplicable { why } => ("not-applicable", why.clone()),
                RuleOutcome::Error { why } => ("ERROR", why.clone()),
                RuleOutcome::Manual { question } => ("manual", question.clone()),
                RuleOutcome::Waived { waiver, expires, .. } => {
                    ("waived", format!("{waiver} until {}", expires.format("%Y-%m-%d %H:%M UTC")))
                }
            };
            let slot = match (r.slot, r.version) {
                (Some(s), Some(v)) => format!("{s} v{v}"),
                _ => "-".into(),
            };
            vec![r.asset.to_string(), slot, r.rule.to_string(), result.to_string(), detail]
        })
        .collect();
    print_table(&["ASSET", "CONFIG", "RULE", "RESULT", "DETAIL"], &table);
    let n = |f: fn(&RuleOutcome) -> bool| rows.iter().filter(|r| f(&r.outcome)).count();
    println!(
        "\n{} {}: {} compliant, {} NON-COMPLIANT, {} not applicable, {} errors, {} manual, {} waived ({note})",
        template,
        version,
        n(|o| matches!(o, RuleOutcome::Compliant)),
        n(|o| matches!(o, RuleOutcome::NonCompliant { .. })),
        n(|o| matches!(o, RuleOutcome::NotApplicable { .. })),
        n(|o| matches!(o, RuleOutcome::Error { .. })),
        n(|o| matches!(o, RuleOutcome::Manual { .. })),
        n(|o| matches!(o, RuleOutcome::Waived { .. })),
    );
}

/// The summary of one evaluation recorded for the hub: counts, and the failing pairs (at most
/// [`MAX_LISTED_FAILURES`], sorted).
pub fn summary(template: &Template, rows: &[Row<'_>], at: DateTime<Utc>) -> Summary {
    let mut counts = Counts::default();
    let (mut failing, mut waived): (Vec<&Row<'_>>, Vec<&Row<'_>>) = (Vec::new(), Vec::new());
    let mut assets: Vec<&str> = Vec::new();
    for r in rows {
        // Rows come asset by asset: a new asset is a change from the previous row's.
        if assets.last() != Some(&r.asset) {
            assets.push(r.asset);
        }
        match &r.outcome {
            RuleOutcome::Compliant => counts.compliant += 1,
            RuleOutcome::NotApplicable { .. } => counts.not_applicable += 1,
            RuleOutcome::Manual { .. } => counts.manual += 1,
            RuleOutcome::NonCompliant { .. } => {
                counts.non_compliant += 1;
                failing.push(r);
            }
            RuleOutcome::Error { .. } => {
                counts.error += 1;
                failing.push(r);
            }
            RuleOutcome::Waived { .. } => {
                counts.waived += 1;
                waived.push(r);
            }
        }
    }
    assets.sort_unstable();
    assets.dedup();
    // Only the listed pairs are built: the first by (asset, rule, slot, version), then in `Failing`'s order.
    let listed = |mut chosen: Vec<&Row<'_>>| -> Vec<Failing> {
        if chosen.len() > MAX_LISTED_FAILURES {
            chosen.select_nth_unstable_by(MAX_LISTED_FAILURES, |a, b| {
                (a.asset, a.rule, a.slot, a.version).cmp(&(b.asset, b.rule, b.slot, b.version))
            });
            chosen.truncate(MAX_LISTED_FAILURES);
        }
        let mut out: Vec<Failing> = chosen.into_iter().map(failing_of).collect();
        out.sort();
        out
    };
    let unlisted = failing.len().saturating_sub(MAX_LISTED_FAILURES) as u64;
    Summary {
        template: template.id.clone(),
        version: template.version.to_string(),
        evaluated_at: at,
        assets: assets.len() as u64,
        counts,
        failing: listed(failing),
        unlisted,
        waived: listed(waived),
    }
}

/// A failing (or waived) row as the summary lists it: its first finding, or why it was not decided.
fn failing_of(r: &Row<'_>) -> Failing {
    let (result, detail) = match &r.outcome {
        RuleOutcome::NonCompliant { findings } => {
            let detail = findings.first().map(|f| {
                let text = f.line.as_ref().unwrap_or(&f.what);
                if f.location.is_empty() {
                    text.clone()
                } else {
                    format!("[{}] {text}", f.location)
                }
            });
            ("non-compliant", detail.unwrap_or_default())
        }
        RuleOutcome::Error { why } => ("error", why.clone()),
        RuleOutcome::Waived { waiver, expires, .. } => ("waived", format!("{waiver} until {}", expires.to_rfc3339())),
        _ => ("", String::new()),
    };
    Failing {
        asset: r.asset.to_string(),
        rule: r.rule.to_string(),
        config: r.slot.zip(r.version).map(|(s, v)| format!("{s} v{v}")),
        result: result.to_string(),
        detail,
    }
}
