//! Templates at the plant: what the hub assigned to this site (`hub/to/<site-id>/templates`) and published
//! (`hub/templates`), decided here against the publishing key pinned at enrollment (`datum_shared::rollout::
//! decide`), and what this site records back in `site/<id>/compliance` — each template's state, and the summary
//! of its latest evaluation — for the hub to read after the next sync.
//!
//! `datum-edge template list|show` read; [`refresh`] writes, after each sync pass and each capture or inventory
//! change, only what changed (an unchanged result is not written again).

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use datum_host::cli::Json;
use datum_host::exit::{user, Outcome};
use datum_shared::document;
use datum_shared::policy::Policy;
use datum_shared::rollout::{self, Acceptance, Assignment, Decision, Published, State, Summary, TemplateState};
use datum_shared::template::Template;
use serde::Serialize;
use tracing::{info, warn};

use crate::cli::TemplateCmd;
use crate::output::{print_json, print_table};
use crate::site::{load_doc_from, Site, Write};

/// One assignment as received, and what this node makes of it.
pub struct Received {
    pub assignment: Assignment,
    pub published: Option<Published>,
    pub decision: Decision,
    /// The earlier version that goes on running while the assigned one has not arrived or was refused
    /// (`rollout::keep_running`).
    pub kept: Option<Active>,
}

/// A template verified and running here, with this site's parameter values.
pub struct Active {
    pub template: Template,
    pub published: Published,
    pub params: BTreeMap<String, String>,
}

/// Every assignment the hub made to this site, decided.
pub async fn received(site: &Site) -> Result<Vec<Received>> {
    received_where(site, None).await
}

/// [`received`], only for the assignments whose assigned or running record passes `relevant` (when given):
/// the others are not verified at all.
async fn received_where(site: &Site, relevant: Option<fn(&Published) -> bool>) -> Result<Vec<Received>> {
    let site_id = site.info.site_id.as_str();
    let assigned = load_doc_from(&site.store, &rollout::assignments_doc(site_id)).await?;
    let records = document::collection_json(&assigned, Assignment::COLLECTION)?;
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let published = load_doc_from(&site.store, &rollout::published_doc()).await?;
    let link = super::federation::HubLink::load(&site.dir)?;
    let pinned = link.and_then(|l| l.publishing_key);
    let key = match pinned.as_deref().map(rollout::parse_key) {
        Some(Ok(k)) => Some(k),
        Some(Err(e)) => {
            warn!("{e}; no template can be verified");
            None
        }
        None => None,
    };
    let fingerprint = site.fingerprint_key();
    let mut out = Vec::new();
    for (key_name, json) in records {
        let assignment: Assignment = match serde_json::from_value(json) {
            Ok(a) => a,
            Err(e) => {
                out.push(Received {
                    assignment: unreadable(&key_name),
                    published: None,
                    decision: Decision::Rejected(format!("the assignment cannot be read: {e}")),
                    kept: None,
                });
                continue;
            }
        };
        let wanted = Published::key(&assignment.template, &assignment.version);
        let record = document::get_record::<_, Published>(&published, Published::COLLECTION, &wanted);
        // What ran here before, from this site's own record of it.
        let recorded: Option<TemplateState> = site.get(TemplateState::COLLECTION, &assignment.template).await?;
        let running = recorded
            .and_then(|r| r.running)
            .map(|v| Published::key(&assignment.template, &v))
            .and_then(|k| document::get_record::<_, Published>(&published, Published::COLLECTION, &k).ok().flatten());
        if let Some(relevant) = relevant {
            if !(matches!(&record, Ok(Some(p)) if relevant(p)) || running.as_ref().is_some_and(relevant)) {
                continue;
            }
        }
        let (p, decision) = match record {
            Ok(p) => {
                let d = rollout::decide(site_id, &assignment, p.as_ref(), key.as_ref(), &fingerprint);
                let accepted: Option<Acceptance> = site.get(Acceptance::COLLECTION, &wanted).await?;
                (p, rollout::await_acceptance(d, accepted.as_ref()))
            }
            Err(e) => (None, Decision::Rejected(format!("the published record cannot be read: {e}"))),
        };
        let kept = rollout::keep_running(&assignment, &decision, running.as_ref(), key.as_ref(), &fingerprint)
            .zip(running)
            .map(|((template, params), published)| Active { template, published, params });
        out.push(Received { assignment, published: p, decision, kept });
    }
    Ok(out)
}

/// Stands in for an assignment record that cannot be read, so that its refusal is recorded under its key.
fn unreadable(key: &str) -> Assignment {
    Assignment {
        template: key.to_string(),
        version: "?".into(),
        parameters: BTreeMap::new(),
        active: true,
        assigned_at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
        assigned_by: String::new(),
        signature: String::new(),
    }
}

/// The templates verified and running here.
pub async fn active(site: &Site) -> Result<Vec<Active>> {
    Ok(received(site).await?.into_iter().filter_map(into_active).collect())
}

fn into_active(r: Received) -> Option<Active> {
    match r.decision {
        Decision::Verified { template, published, params } => {
            Some(Active { template: *template, published: *published, params })
        }
        _ => r.kept,
    }
}

/// The site's policy: the built-in defaults with the `[policy]` table of every template active here
/// (`Policy::from`).
pub async fn policy(site: &Site) -> Result<Policy> {
    // Only a template whose text names `policy` or `change` can carry those tables: the others are not verified
    // here (every command and web request puts the policy in place; verifying twenty rule templates costs tens
    // of milliseconds).
    let may_set_policy: fn(&Published) -> bool = |p| p.body.contains("policy") || p.body.contains("change");
    let active: Vec<Active> =
        received_where(site, Some(may_set_policy)).await?.into_iter().filter_map(into_active).collect();
    Ok(datum_shared::template::policy_of(active.iter().map(|a| &a.template)))
}

/// Puts the site's policy in place for this command or request; when the templates cannot be read, the
/// built-in defaults stay, and that is said.
pub async fn use_policy(site: &mut Site) {
    match policy(site).await {
        Ok(p) => site.policy = p,
        Err(e) => warn!("the policy templates cannot be read; the built-in policy applies: {e:#}"),
    }
}

/// What [`refresh`] wrote.
#[derive(Debug, Default)]
pub struct Refreshed {
    pub states: usize,
    pub summaries: usize,
}

/// Records what changed: each assignment's state here, and the summary of each active template's evaluation.
/// Needs the data directory's lock (a writing command, or a sync pass's follow-up).
pub async fn refresh(site: &mut Site) -> Result<Refreshed> {
    // A sync pass's follow-up opens the site without a command's set-up: the policy decides which waivers
    // need the hub's approval, so it is put in place here too.
    use_policy(site).await;
    let mut done = Refreshed::default();
    let received = received(site).await?;
    let doc = site.doc_id(rollout::COMPLIANCE_DOC);
    let mut write = Write::new("template.state", "templates", None);
    let mut said = Vec::new();
    for r in &received {
        let kept = r.kept.as_ref().map(|k| k.published.version.as_str());
        let state = TemplateState::of(&r.assignment, &r.decision, kept, site.now);
        let old: Option<TemplateState> = site.get(TemplateState::COLLECTION, &state.template).await?;
        if old.is_some_and(|o| o.same_as(&state)) {
            continue;
        }
        match &state.reason {
            Some(why) => warn!(template = state.template, version = state.version, "template refused: {why}"),
            None => info!(template = state.template, version = state.version, "template {}", state.state.as_str()),
        }
        said.push(format!("{}@{} {}", state.template, state.version, state.state.as_str()));
        write.put(&doc, TemplateState::COLLECTION, &state.template.clone(), &state)?;
    }
    if !said.is_empty() {
        done.states = said.len();
        site.apply(write, format!("templates: {}", said.join(", "))).await?;
    }
    let active: Vec<Active> = received.into_iter().filter_map(into_active).collect();
    if active.is_empty() {
        return Ok(done);
    }
    let view = crate::view::load(site).await?;
    let waivers = super::waivers::in_force(site).await?;
    let mut write = Write::new("compliance.record", "compliance", None);
    let mut said = Vec::new();
    let mut captures = super::compliance::Captures::new(site);
    for a in &active {
        let mut rows = super::compliance::evaluate(site, &view, &mut captures, &a.template, &a.params, None)?;
        super::compliance::waive(&mut rows, &a.template.id, &waivers, site.now);
        let summary = super::compliance::summary(&a.template, &rows, site.now);
        let old: Option<Summary> = site.get(Summary::COLLECTION, &a.template.id).await?;
        if old.is_some_and(|o| o.same_as(&summary)) {
            continue;
        }
        said.push(format!("{}@{}", summary.template, summary.line()));
        write.put(&doc, Summary::COLLECTION, &a.template.id, &summary)?;
    }
    if !said.is_empty() {
        done.summaries = said.len();
        site.apply(write, format!("compliance: {}", said.join(", "))).await?;
    }
    Ok(done)
}

/// Runs [`refresh`] after a command changed what templates look at; a failure is reported, never fatal (the
/// command's own work is stored).
pub async fn refresh_after(site: &mut Site) {
    if let Err(e) = refresh(site).await {
        warn!("template results not recorded: {e:#}");
        eprintln!("warning: template results not recorded: {e:#}");
    }
}

#[derive(Serialize)]
struct TemplateView {
    template: String,
    version: String,
    title: Option<String>,
    /// `assigned` (waiting for the version), `verified` (waiting for local acceptance), `active`, `rejected`,
    /// `unassigned`.
    state: &'static str,
    /// The version evaluated here: the assigned one once active, else the earlier one still running.
    running: Option<String>,
    reason: Option<String>,
    enforcement: Option<String>,
    sha256: Option<String>,
    published_at: Option<String>,
    published_by: Option<String>,
    assigned_at: String,
    assigned_by: String,
    parameters: BTreeMap<String, String>,
    rules: Vec<RuleView>,
    /// The latest results recorded here.
    compliance: Option<Summary>,
}

#[derive(Serialize)]
struct RuleView {
    id: String,
    title: String,
}

async fn views(site: &Site) -> Result<Vec<TemplateView>> {
    let mut out = Vec::new();
    for r in received(site).await? {
        let running = match (&r.decision, &r.kept) {
            (Decision::Verified { .. }, _) => Some(r.assignment.version.clone()),
            (_, Some(k)) => Some(k.published.version.clone()),
            _ => None,
        };
        let (state, reason, template, params) = match r.decision {
            Decision::Waiting => (State::Assigned, None, None, r.assignment.parameters.clone()),
            Decision::Unassigned => (State::Unassigned, None, None, r.assignment.parameters.clone()),
            Decision::Rejected(why) => (State::Rejected, Some(why), None, r.assignment.parameters.clone()),
            Decision::Verified { template, params, .. } => (State::Active, None, Some(template), params),
            Decision::Pending { template, params, .. } => (
                State::Verified,
                Some(format!("waits for a site approver: `datum-edge template accept {}`", r.assignment.template)),
                Some(template),
                params,
            ),
        };
        let compliance: Option<Summary> = site.get(Summary::COLLECTION, &r.assignment.template).await?;
        out.push(TemplateView {
            template: r.assignment.template.clone(),
            version: r.assignment.version.clone(),
            title: r.published.as_ref().map(|p| p.title.clone()),
            state: state.as_str(),
            running,
            reason,
            enforcement: r.published.as_ref().map(|p| format!("{:?}", p.enforcement).to_lowercase()),
            sha256: r.published.as_ref().map(|p| p.sha256.clone()),
            published_at: r.published.as_ref().map(|p| p.published_at.to_rfc3339()),
            published_by: r.published.as_ref().map(|p| p.published_by.clone()),
            assigned_at: r.assignment.assigned_at.to_rfc3339(),
            assigned_by: r.assignment.assigned_by.clone(),
            parameters: params,
            rules: template
                .map(|t| {
                    t.rules.iter().map(|rule| RuleView { id: rule.id.clone(), title: rule.title.clone() }).collect()
                })
                .unwrap_or_default(),
            compliance,
        });
    }
    Ok(out)
}

fn result_text(c: &Option<Summary>) -> String {
    match c {
        None => "-".into(),
        Some(c) => c.line(),
    }
}

pub async fn run(site: &mut Site, cmd: TemplateCmd) -> Result<Outcome> {
    match cmd {
        TemplateCmd::Accept { id, comment } => accept(site, &id, comment).await,
        TemplateCmd::List(Json { json }) => {
            let views = views(site).await?;
            let refused = views.iter().any(|v| v.state == State::Rejected.as_str());
            if json {
                print_json(&views)?;
            } else if views.is_empty() {
                println!("the hub has assigned no template to this site");
            } else {
                let rows: Vec<Vec<String>> = views
                    .iter()
                    .map(|v| {
                        let mut state = match &v.reason {
                            Some(why) => format!("{} ({why})", v.state),
                            None => v.state.to_string(),
                        };
                        if let Some(r) = v.running.as_ref().filter(|r| **r != v.version) {
                            state.push_str(&format!("; {r} runs meanwhile"));
                        }
                        vec![v.template.clone(), v.version.clone(), state, result_text(&v.compliance)]
                    })
                    .collect();
                print_table(&["TEMPLATE", "VERSION", "STATE", "LATEST RESULT"], &rows);
            }
            Ok(Outcome::from_findings(refused))
        }
        TemplateCmd::Show { id, json } => {
            let view = views(site).await?.into_iter().find(|v| v.template == id).ok_or_else(|| {
                user(format!("the hub has not assigned {id} to this site (see `datum-edge template list`)"))
            })?;
            let refused = view.state == State::Rejected.as_str();
            if json {
                print_json(&view)?;
                return Ok(Outcome::from_findings(refused));
            }
            println!("{} {} — {}", view.template, view.version, view.title.as_deref().unwrap_or("(not received yet)"));
            println!("state: {}{}", view.state, view.reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default());
            if let Some(r) = view.running.as_ref().filter(|r| **r != view.version) {
                println!("running meanwhile: {r} (until {} verifies)", view.version);
            }
            if let (Some(at), Some(by), Some(sha)) = (&view.published_at, &view.published_by, &view.sha256) {
                println!("published {at} by {by}, sha256 {sha}");
            }
            println!("assigned {} by {}", view.assigned_at, view.assigned_by);
            if let Some(e) = &view.enforcement {
                println!("enforcement: {e}");
            }
            for (name, value) in &view.parameters {
                println!("parameter {name} = {value}");
            }
            for r in &view.rules {
                println!("rule {}: {}", r.id, r.title);
            }
            println!("latest result: {}", result_text(&view.compliance));
            if let Some(c) = &view.compliance {
                for f in &c.failing {
                    let at = f.config.as_deref().map(|c| format!(" [{c}]")).unwrap_or_default();
                    println!("  {} {}{at}: {} {}", f.asset, f.rule, f.result, f.detail);
                }
            }
            Ok(Outcome::from_findings(refused))
        }
    }
}

/// Opens the data directory to write and records what changed after a sync pass; skipped (and said) when a
/// command holds the directory (that command's own refresh, or the next pass, records it). `true` when
/// something was recorded.
pub async fn refresh_after_pass(ctx: &super::Context) -> bool {
    let mut site = match Site::open_as(&ctx.data, &ctx.actor, chrono::Utc::now(), crate::site::Access::Write).await {
        Ok(site) => site,
        Err(e) => {
            info!("template results not recorded after this pass: {e:#}");
            return false;
        }
    };
    site.drill = ctx.drill;
    if ctx.drill {
        site.now = ctx.now;
    }
    let wrote = match refresh(&mut site).await.context("record template states and results") {
        Ok(r) if r.states + r.summaries > 0 => {
            info!(states = r.states, results = r.summaries, "template states and results recorded");
            true
        }
        Ok(_) => false,
        Err(e) => {
            warn!("{e:#}");
            false
        }
    };
    site.close().await;
    wrote
}

/// `template accept ID`: a site approver lets the version the hub assigned run here (templates with
/// `acceptance = "local"`). The acceptance names the text's hash, so it holds for exactly what was checked.
async fn accept(site: &mut Site, id: &str, comment: Option<String>) -> Result<Outcome> {
    let comment = super::text_arg("comment", comment, 2048)?;
    let r =
        received(site).await?.into_iter().find(|r| r.assignment.template == id).ok_or_else(|| {
            user(format!("the hub has not assigned {id} to this site (see `datum-edge template list`)"))
        })?;
    let published = match r.decision {
        Decision::Pending { published, .. } => published,
        Decision::Verified { template, .. } if !template.local_acceptance => {
            return Err(user(format!("{id} {} runs without local acceptance: nothing to accept", template.version)))
        }
        Decision::Verified { template, .. } => {
            return Err(user(format!("{id} {} is already accepted here", template.version)))
        }
        Decision::Waiting => {
            return Err(user(format!("{id} {} has not arrived yet: sync first", r.assignment.version)))
        }
        Decision::Rejected(why) => {
            return Err(user(format!("{id} {} was refused here and cannot be accepted: {why}", r.assignment.version)))
        }
        Decision::Unassigned => return Err(user(format!("the hub withdrew {id} from this site"))),
    };
    let acceptance = Acceptance {
        template: published.id.clone(),
        version: published.version.clone(),
        sha256: published.sha256.clone(),
        accepted_by: site.actor.clone(),
        accepted_at: site.now,
        comment: comment.clone(),
    };
    let key = Published::key(&published.id, &published.version);
    let doc = site.doc_id(rollout::COMPLIANCE_DOC);
    let mut write = Write::new("template.accept", key.clone(), comment);
    write.put(&doc, Acceptance::COLLECTION, &key, &acceptance)?;
    site.apply(write, format!("{key} accepted (sha256 {})", &published.sha256)).await?;
    refresh(site).await?;
    println!("{key} accepted by {}: it runs here from now on", site.actor);
    Ok(Outcome::Clean)
}
