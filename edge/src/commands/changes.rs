//! `change …`: change requests through request, approval, implementation, verification and closure.
//!
//! The rules live in `datum_shared::change`; this file gathers inputs, asks the reducer whether the step is
//! legal, and writes the event (and, on verify, the new baselines) in one operation.

use anyhow::Result;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use datum_shared::central::{self, CentralDecision, CentralState};
use datum_shared::change::{
    apply, check_verification, ChangeAction, ChangeDraft, ChangeEvent, ChangeRequest, ChangeState, VersionRef,
};
use datum_shared::document::year_period;
use datum_shared::model::{Asset, Baseline, ConfigCheck, ConfigVersion, Risk};
use datum_shared::{ChangeId, DocId};
use serde::Serialize;

use super::configs::{baseline_puts, load_change};
use super::{find_asset, required_text, text_arg};
use crate::cli::{Approve, ChangeCmd, WithReason};
use crate::output::{print_json, print_table};
use crate::site::{Site, Write};
use crate::view::version_ref;
use datum_host::exit::{user, Outcome};

pub async fn run(site: &mut Site, cmd: ChangeCmd) -> Result<Outcome> {
    match cmd {
        ChangeCmd::New { title, reason, assets, risk, impact, rollback, test_plan, window, emergency, json } => {
            new(site, NewArgs { title, reason, assets, risk, impact, rollback, test_plan, window, emergency }, json)
                .await
        }
        ChangeCmd::Submit { id } => step(site, &id, ChangeAction::Submit).await,
        ChangeCmd::Approve(Approve { id, comment }) => {
            let comment = text_arg("comment", comment, 2048)?;
            step(site, &id, ChangeAction::Approve { comment }).await
        }
        ChangeCmd::Reject(WithReason { id, reason }) => {
            let reason = required_text("reason", reason, 2048)?;
            step(site, &id, ChangeAction::Reject { reason }).await
        }
        ChangeCmd::Implement { id, note, checklist_done } => {
            implement(site, &id, text_arg("note", note, 2048)?, checklist_done).await
        }
        ChangeCmd::Verify { id } => verify(site, &id).await,
        ChangeCmd::Close { id } => step(site, &id, ChangeAction::Close).await,
        ChangeCmd::Cancel { id, reason } => {
            let reason = required_text("reason", reason, 2048)?;
            step(site, &id, ChangeAction::Cancel { reason }).await
        }
        ChangeCmd::Amend { id, title, reason, assets, risk, impact, rollback, test_plan, window } => {
            let given = Amendment { title, reason, assets, risk, impact, rollback, test_plan, window };
            amend(site, &id, given).await
        }
        ChangeCmd::Show { id, json } => show(site, &id, json).await,
        ChangeCmd::List { state, json } => list(site, state, json).await,
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct NewArgs {
    pub title: String,
    pub reason: String,
    pub assets: Vec<String>,
    pub risk: String,
    pub impact: String,
    pub rollback: String,
    #[serde(default)]
    pub test_plan: Option<String>,
    #[serde(default)]
    pub window: Option<String>,
    #[serde(default)]
    pub emergency: bool,
}

pub(crate) fn parse_time(value: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(value, format) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    Err(user(format!("{value:?} is not a time (RFC 3339, YYYY-MM-DD or YYYY-MM-DDTHH:MM, UTC)")))
}

fn parse_window(value: &str) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    let (from, to) = value.split_once("..").ok_or_else(|| user(format!("window {value:?} is not FROM..TO")))?;
    let (from, to) = (parse_time(from.trim())?, parse_time(to.trim())?);
    if to <= from {
        return Err(user(format!("window {value:?} ends before it starts")));
    }
    Ok((from, to))
}

async fn new(site: &mut Site, args: NewArgs, json: bool) -> Result<Outcome> {
    let cr = create(site, args).await?;
    let id = cr.id;
    if json {
        print_json(&cr)?;
    } else {
        println!(
            "created {id} ({} risk{}): {}; next: `datum-edge change submit {id}`{}",
            cr.draft.risk,
            if cr.draft.emergency { ", EMERGENCY" } else { "" },
            cr.draft.title,
            if cr.draft.emergency {
                format!(" or implement now and get approvals within {} h", site.policy.emergency_approval_hours)
            } else {
                String::new()
            }
        );
        for item in &cr.draft.checklist {
            println!("  checklist, to confirm at `change implement --checklist-done`: {item}");
        }
    }
    Ok(Outcome::Clean)
}

/// Creates a change request (state `draft`).
pub async fn create(site: &mut Site, args: NewArgs) -> Result<ChangeRequest> {
    let draft = draft_of(site, args).await?;
    let id = ChangeId(site.store.max_key_number(ChangeEvent::COLLECTION).await? + 1);
    let event = ChangeEvent {
        change: id,
        seq: 1,
        at: site.now,
        actor: site.actor.clone(),
        action: ChangeAction::Create(draft),
    };
    let cr = apply(None, &event).map_err(|e| user(e.to_string()))?;
    let doc = site.doc_id(&format!("changes/{}", year_period(site.now)));
    write_event(site, &doc, &event, Some(cr.draft.reason.clone()), &cr, Vec::new()).await?;
    Ok(cr)
}

/// What `change amend` was given (only these fields change).
pub struct Amendment {
    pub title: Option<String>,
    pub reason: Option<String>,
    pub assets: Vec<String>,
    pub risk: Option<String>,
    pub impact: Option<String>,
    pub rollback: Option<String>,
    pub test_plan: Option<String>,
    pub window: Option<String>,
}

async fn amend(site: &mut Site, id: &str, given: Amendment) -> Result<Outcome> {
    let change = ChangeId::parse(id).map_err(|e| user(e.to_string()))?;
    let cr = load_change(site, change).await?;
    let d = &cr.draft;
    let window = match (d.window_from, d.window_to) {
        (Some(f), Some(t)) => Some(format!("{}..{}", f.to_rfc3339(), t.to_rfc3339())),
        _ => None,
    };
    let args = NewArgs {
        title: given.title.unwrap_or_else(|| d.title.clone()),
        reason: given.reason.unwrap_or_else(|| d.reason.clone()),
        assets: if given.assets.is_empty() { d.assets.iter().map(|a| a.to_string()).collect() } else { given.assets },
        risk: given.risk.unwrap_or_else(|| d.risk.to_string()),
        impact: given.impact.unwrap_or_else(|| d.impact.clone()),
        rollback: given.rollback.unwrap_or_else(|| d.rollback.clone()),
        test_plan: given.test_plan.or_else(|| d.test_plan.clone()),
        window: given.window.or(window),
        emergency: d.emergency,
    };
    let draft = draft_of(site, args).await?;
    if draft == cr.draft {
        return Err(user(format!("{change}: nothing to amend (give the fields that change)")));
    }
    let after = next_event(site, id, ChangeAction::Amend(draft), |_| Vec::new()).await?;
    println!(
        "{}: amended; its approvals are withdrawn and it is a draft again: `datum-edge change submit {}`",
        after.id, after.id
    );
    Ok(Outcome::Clean)
}

/// A change request's content from what was given, checked against the site's policy.
async fn draft_of(site: &mut Site, args: NewArgs) -> Result<ChangeDraft> {
    let mut assets = Vec::new();
    for name in &args.assets {
        let asset = find_asset(site, name).await?;
        if !asset.is_active() {
            return Err(user(format!("asset {} is retired", asset.name)));
        }
        if !assets.contains(&asset.name) {
            assets.push(asset.name);
        }
    }
    let risk: Risk = args.risk.parse().map_err(|e: datum_shared::model::ParseEnumError| user(e.to_string()))?;
    let window = args.window.as_deref().map(parse_window).transpose()?;
    // What the site's change-request templates ask of every request.
    for (field, template) in &site.policy.change_required {
        let (missing, what) = match field.as_str() {
            "test_plan" => (args.test_plan.as_deref().is_none_or(|t| t.trim().is_empty()), "a test plan (--test-plan)"),
            "window" => (window.is_none(), "a window (--window FROM..TO)"),
            _ => (false, ""),
        };
        if missing {
            return Err(user(format!("the change-request template {template} requires {what}")));
        }
    }
    let draft = ChangeDraft {
        title: required_text("title", args.title, 200)?,
        reason: required_text("reason", args.reason, 4096)?,
        assets,
        risk,
        impact: required_text("impact", args.impact, 4096)?,
        rollback: required_text("rollback", args.rollback, 4096)?,
        test_plan: text_arg("test plan", args.test_plan, 4096)?,
        window_from: window.map(|w| w.0),
        window_to: window.map(|w| w.1),
        emergency: args.emergency,
        // Recorded only when a policy template asks for another number than the built-in one.
        policy_approvals: Some(site.policy.approvals_for(risk))
            .filter(|n| *n != datum_shared::change::required_approvals(risk)),
        checklist: site.policy.change_checklist.clone(),
    };
    Ok(draft)
}

async fn doc_of(site: &Site, id: ChangeId) -> Result<DocId> {
    let doc = site
        .store
        .record_doc(ChangeEvent::COLLECTION, &format!("{id}/{:04}", 1))
        .await?
        .ok_or_else(|| user(format!("{id} does not exist (see `datum-edge change list`)")))?;
    Ok(DocId::parse(&doc)?)
}

async fn write_event(
    site: &mut Site,
    doc: &DocId,
    event: &ChangeEvent,
    reason: Option<String>,
    after: &ChangeRequest,
    baselines: Vec<Baseline>,
) -> Result<()> {
    let mut w = Write::new(&format!("change.{}", event.action.verb()), event.change.to_string(), reason)
        .concerning(&after.draft.assets);
    w.put(doc, ChangeEvent::COLLECTION, &format!("{}/{:04}", event.change, event.seq), event)?;
    for b in &baselines {
        baseline_puts(site, &mut w, b)?;
    }
    site.apply(w, format!("{} is {}", event.change, after.state)).await?;
    Ok(())
}

/// Builds the next event of a change, checks it with the reducer, writes it.
pub async fn next_event(
    site: &mut Site,
    id: &str,
    action: ChangeAction,
    baselines: impl FnOnce(&ChangeRequest) -> Vec<Baseline>,
) -> Result<ChangeRequest> {
    let id = ChangeId::parse(id).map_err(|e| user(e.to_string()))?;
    let current = load_change(site, id).await?;
    let reason = match &action {
        ChangeAction::Reject { reason } | ChangeAction::Cancel { reason } => Some(reason.clone()),
        ChangeAction::Approve { comment } => comment.clone(),
        _ => None,
    };
    let event = ChangeEvent { change: id, seq: current.n_events + 1, at: site.now, actor: site.actor.clone(), action };
    let after = apply(Some(&current), &event).map_err(|e| user(e.to_string()))?;
    let doc = doc_of(site, id).await?;
    let baselines = baselines(&after);
    write_event(site, &doc, &event, reason, &after, baselines).await?;
    Ok(after)
}

async fn step(site: &mut Site, id: &str, action: ChangeAction) -> Result<Outcome> {
    let verb = action.verb();
    let after = next_event(site, id, action, |_| Vec::new()).await?;
    let mut line = format!("{}: {verb} recorded; state is now {}", after.id, after.state);
    if verb == "approve" && !after.approvals_complete() {
        line.push_str(&format!(" ({} of {} approvals)", after.approvals.len(), after.required_approvals));
    }
    println!("{line}");
    for flag in after.flags(site.now, &site.policy) {
        println!("  ! {flag}");
    }
    Ok(Outcome::Clean)
}

async fn implement(site: &mut Site, id: &str, note: Option<String>, checklist_done: bool) -> Result<Outcome> {
    let (after, captures) = implement_change(site, id, note, checklist_done).await?;
    println!(
        "{}: implemented; linked captures: {}",
        after.id,
        if captures.is_empty() {
            "none".into()
        } else {
            captures.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ")
        }
    );
    let missing: Vec<String> =
        after.draft.assets.iter().filter(|a| !captures.iter().any(|c| &c.asset == *a)).map(|a| a.to_string()).collect();
    if !missing.is_empty() {
        println!(
            "  ! no capture linked for {}: capture with --change {} before `change verify`",
            missing.join(", "),
            after.id
        );
    }
    for flag in after.flags(site.now, &site.policy) {
        println!("  ! {flag}");
    }
    Ok(Outcome::Clean)
}

/// Records the implementation of a change, linking the captures made under it.
pub async fn implement_change(
    site: &mut Site,
    id: &str,
    note: Option<String>,
    checklist_done: bool,
) -> Result<(ChangeRequest, Vec<VersionRef>)> {
    let change = ChangeId::parse(id).map_err(|e| user(e.to_string()))?;
    let current = load_change(site, change).await?;
    let mut captures: Vec<VersionRef> = Vec::new();
    for asset in &current.draft.assets {
        let versions: Vec<ConfigVersion> = site.list_for(ConfigVersion::COLLECTION, asset.as_str()).await?;
        captures.extend(versions.iter().filter(|v| v.change == Some(change)).map(version_ref));
        let checks: Vec<ConfigCheck> = site.list_for(ConfigCheck::COLLECTION, asset.as_str()).await?;
        for check in checks.iter().filter(|c| c.change == Some(change)) {
            if let Some(v) = versions.iter().find(|v| v.slot == check.slot && v.version == check.version) {
                captures.push(version_ref(v));
            }
        }
    }
    captures.sort();
    captures.dedup();
    // A change the site's policy sends to the hub waits for the hub's signed approval of its present content;
    // an emergency change goes first and waits for it afterwards (flagged).
    let central = central_state(site, &current).await?;
    if !current.draft.emergency {
        if let Some(why) = central::refusal(&current, &central, site.policy.central.as_ref()) {
            return Err(user(why));
        }
    }
    let action = ChangeAction::Implement { note, captures: captures.clone(), checklist_done };
    let after = next_event(site, id, action, |_| Vec::new()).await?;
    Ok((after, captures))
}

async fn verify(site: &mut Site, id: &str) -> Result<Outcome> {
    let (after, warnings) = verify_change(site, id).await?;
    println!(
        "{}: verified; new baselines: {}",
        after.id,
        after.verified_versions.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
    );
    for w in &warnings {
        println!("  ! new non-compliance (template enforced as warn): {w}");
    }
    Ok(Outcome::Clean)
}

/// Verifies an implemented change: the captures match, templates enforced as `gate` find no new
/// non-compliance in them (or a waiver covers it), and they become the new baselines. Returns what templates
/// enforced as `warn` found (recorded with the verification).
pub async fn verify_change(site: &mut Site, id: &str) -> Result<(ChangeRequest, Vec<String>)> {
    let change = ChangeId::parse(id).map_err(|e| user(e.to_string()))?;
    let current = load_change(site, change).await?;
    let view = crate::view::load(site).await?;
    let outcome = check_verification(&current, |a, s| view.latest_ref(a, s));
    let ready = current.state == ChangeState::Implemented && current.approvals_complete();
    if ready && !outcome.problems.is_empty() {
        return Err(user(format!("{change}: verification failed:\n  {}", outcome.problems.join("\n  "))));
    }
    let enforced = if ready {
        super::compliance::enforce(site, &view, &outcome.matched).await?
    } else {
        super::compliance::Enforced::default()
    };
    if !enforced.gate.is_empty() {
        return Err(user(format!(
            "{change}: verification refused: a template enforced as gate finds new non-compliance in the \
             captures:\n  {}\nfix the configuration and capture again under {change}, or have a waiver \
             approved (`datum-edge waiver request`)",
            enforced.gate.join("\n  ")
        )));
    }
    let (now, actor) = (site.now, site.actor.clone());
    let matched = outcome.matched.clone();
    let warnings = enforced.warn;
    let action = ChangeAction::Verify { checked: matched.clone(), warnings: warnings.clone() };
    let after = next_event(site, id, action, |cr| {
        matched
            .iter()
            .map(|m| Baseline {
                asset: m.asset.clone(),
                slot: m.slot.clone(),
                version: m.version,
                approved_at: now,
                approved_by: actor.clone(),
                reason: format!("verified implementation of {}: {}", cr.id, cr.draft.title),
                change: Some(cr.id),
            })
            .collect()
    })
    .await?;
    Ok((after, warnings))
}

#[derive(Serialize)]
struct ShowChange<'a> {
    #[serde(flatten)]
    change: &'a ChangeRequest,
    flags: Vec<String>,
    events: Vec<ChangeEvent>,
    /// Where the change stands with the hub.
    central: &'a CentralState,
}

/// Where a change stands with the hub (`datum_shared::central`): whether the site's policy asks for a central
/// approval of it, and the hub's decision as received with the last sync, verified with the key pinned at
/// enrollment.
pub async fn central_state(site: &Site, change: &ChangeRequest) -> Result<CentralState> {
    let mut criticalities = Vec::new();
    for name in &change.draft.assets {
        if let Some(asset) = site.get::<Asset>(Asset::COLLECTION, name.as_str()).await? {
            criticalities.push(asset.criticality);
        }
    }
    if !central::needs(site.policy.central.as_ref(), &change.draft, &criticalities) {
        return Ok(CentralState::NotNeeded);
    }
    let hub = HubDecisions::load(site).await?;
    Ok(central::state(change, true, hub.get(&change.id.to_string()), site.info.site_id.as_str(), hub.key.as_ref()))
}

/// The hub's central decisions for this site as received with the last sync, and the hub's key pinned at
/// enrollment to verify them with.
pub struct HubDecisions {
    decisions: std::collections::BTreeMap<String, CentralDecision>,
    pub key: Option<ed25519_dalek::VerifyingKey>,
}

impl HubDecisions {
    pub async fn load(site: &Site) -> Result<HubDecisions> {
        let doc = crate::site::load_doc_from(&site.store, &central::decisions_doc(site.info.site_id.as_str())).await?;
        // A decision that does not read is as good as none: the plant waits for a valid one.
        let decisions = datum_shared::document::collection_json(&doc, CentralDecision::COLLECTION)?
            .into_iter()
            .filter_map(|(k, json)| serde_json::from_value(json).ok().map(|d| (k, d)))
            .collect();
        let pinned = super::federation::HubLink::load(&site.dir)?.and_then(|l| l.publishing_key);
        let key = pinned.and_then(|k| datum_shared::rollout::parse_key(&k).ok());
        Ok(HubDecisions { decisions, key })
    }

    pub fn get(&self, key: &str) -> Option<&CentralDecision> {
        self.decisions.get(key)
    }
}

async fn show(site: &mut Site, id: &str, json: bool) -> Result<Outcome> {
    let id = ChangeId::parse(id).map_err(|e| user(e.to_string()))?;
    let cr = load_change(site, id).await?;
    let mut events: Vec<ChangeEvent> = site.list_for(ChangeEvent::COLLECTION, &id.to_string()).await?;
    events.sort_by_key(|e| e.seq);
    let flags = cr.flags(site.now, &site.policy);
    let central = central_state(site, &cr).await?;
    if json {
        print_json(&ShowChange { change: &cr, flags, events, central: &central })?;
        return Ok(Outcome::Clean);
    }
    let d = &cr.draft;
    println!("{} {}{}", cr.id, d.title, if d.emergency { "  [EMERGENCY]" } else { "" });
    println!("state      {}", cr.state);
    println!("requester  {} at {}", cr.requester, cr.created_at.to_rfc3339());
    println!("assets     {}", d.assets.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", "));
    println!("risk       {} ({} approval(s) needed, {} given)", d.risk, cr.required_approvals, cr.approvals.len());
    match &central {
        CentralState::NotNeeded => {}
        CentralState::Approved { by, at } => println!("central    approved by {by} at {} (hub)", at.to_rfc3339()),
        other => println!(
            "central    {}{}",
            other.as_str(),
            central::refusal(&cr, other, site.policy.central.as_ref()).map(|r| format!(": {r}")).unwrap_or_default()
        ),
    }
    println!("reason     {}", d.reason);
    println!("impact     {}", d.impact);
    println!("rollback   {}", d.rollback);
    if let Some(t) = &d.test_plan {
        println!("test plan  {t}");
    }
    if let (Some(f), Some(t)) = (d.window_from, d.window_to) {
        println!("window     {} .. {}", f.to_rfc3339(), t.to_rfc3339());
    }
    for item in &d.checklist {
        println!("checklist  [{}] {item}", if cr.implemented.is_some() { "x" } else { " " });
    }
    for flag in &flags {
        println!("  ! {flag}");
    }
    println!("history:");
    for e in &events {
        let detail = match &e.action {
            ChangeAction::Approve { comment: Some(c) } => format!(": {c}"),
            ChangeAction::Reject { reason } | ChangeAction::Cancel { reason } => {
                format!(": {reason}")
            }
            ChangeAction::Implement { note, captures, .. } => format!(
                ": {} capture(s){}",
                captures.len(),
                note.as_ref().map(|n| format!(", {n}")).unwrap_or_default()
            ),
            ChangeAction::Verify { checked, warnings } => {
                let mut s = format!(": {}", checked.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", "));
                for w in warnings {
                    s.push_str(&format!("\n    ! {w}"));
                }
                s
            }
            _ => String::new(),
        };
        println!("  {}  {:<10} {}{}", e.at.format("%Y-%m-%d %H:%M"), e.action.verb(), e.actor, detail);
    }
    Ok(Outcome::Clean)
}

#[derive(Serialize)]
struct ListEntry<'a> {
    #[serde(flatten)]
    change: &'a ChangeRequest,
    flags: Vec<String>,
}

async fn list(site: &mut Site, state: Option<String>, json: bool) -> Result<Outcome> {
    let state: Option<ChangeState> =
        state.map(|s| s.parse()).transpose().map_err(|e: datum_shared::model::ParseEnumError| user(e.to_string()))?;
    let view = crate::view::load_changes(site).await?;
    let changes: Vec<&ChangeRequest> = view.changes.values().filter(|c| state.is_none_or(|s| c.state == s)).collect();
    if json {
        let entries: Vec<ListEntry<'_>> =
            changes.iter().map(|c| ListEntry { change: c, flags: c.flags(site.now, &site.policy) }).collect();
        print_json(&entries)?;
        return Ok(Outcome::Clean);
    }
    let rows: Vec<Vec<String>> = changes
        .iter()
        .map(|c| {
            vec![
                c.id.to_string(),
                c.state.to_string(),
                c.draft.risk.to_string(),
                if c.draft.emergency { "yes".into() } else { "".into() },
                c.requester.clone(),
                format!("{}/{}", c.approvals.len(), c.required_approvals),
                c.draft.title.clone(),
            ]
        })
        .collect();
    print_table(&["ID", "STATE", "RISK", "EMERG", "REQUESTER", "APPROVALS", "TITLE"], &rows);
    Ok(Outcome::Clean)
}
