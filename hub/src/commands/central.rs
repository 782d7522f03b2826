//! Central approvals at the hub (`datum_shared::central`): the inbox of changes and waivers a site's policy
//! sends here, and the security officer's decision, written signed into the site's `hub/to/<site-id>/approvals` document, which
//! reaches the plant with its next sync. The person and their second factor are checked by the caller (the
//! dashboard); the rules of the decision itself are here: the change (or waiver) must need one and be open,
//! and the officer may be neither its requester nor one of its deciders at the plant.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use datum_host::exit::user;
use datum_shared::central::{self, CentralDecision, CentralState, Subject};
use datum_shared::change::{same_person, ChangeRequest, ChangeState};
use datum_shared::document::{self, CommitInfo};
use datum_shared::ids::SiteId;
use datum_shared::model::DriftEntry;
use datum_shared::policy::Policy;
use datum_shared::waiver::{self, Waiver, WaiverEvent};
use datum_shared::ChangeId;
use serde::Serialize;

use super::overview::Overview;
use super::templates::{load_doc, site_policy, write_doc};
use crate::store::Store;

/// A change or a waiver waiting for the hub, with what the officer needs to decide.
#[derive(Debug, Clone, Serialize)]
pub struct InboxItem {
    pub site: String,
    /// The change's or the waiver's id (`CR-0001`, `W-0001`): what the decision routes name.
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<ChangeRequest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiver: Option<Waiver>,
    /// The content hash of the change (or of the waiver's request) as it is now: what an approval will cover.
    pub content: String,
    pub state: CentralState,
    /// Why the site's policy sends it here.
    pub rule: String,
    /// Unauthorized drift on the change's (or waiver's) assets, now.
    pub drift: Vec<DriftEntry>,
    /// What the plant last reported failing of the templates it runs, on the change's (or waiver's) assets:
    /// what the change may fix or make worse, or what the waiver excuses.
    pub compliance: Vec<ComplianceImpact>,
}

/// One failing (template, rule) pair on one asset, as the plant last reported it.
#[derive(Debug, Clone, Serialize)]
pub struct ComplianceImpact {
    pub template: String,
    pub asset: String,
    pub rule: String,
    /// `non-compliant` or `error`.
    pub result: String,
}

/// The hub's decisions for one site, by change id.
pub async fn decisions(store: &Store, site_id: &str) -> Result<BTreeMap<String, CentralDecision>> {
    let doc = load_doc(store, &central::decisions_doc(site_id)).await?;
    let mut out = BTreeMap::new();
    for (key, json) in document::collection_json(&doc, CentralDecision::COLLECTION)? {
        let d: CentralDecision = serde_json::from_value(json).with_context(|| format!("central decision {key}"))?;
        out.insert(key, d);
    }
    Ok(out)
}

/// Whether `change` needs a central approval under the site's policy.
fn needed(policy: &Policy, o: &Overview, change: &ChangeRequest) -> bool {
    let Some(f) = &o.findings else { return false };
    let crit: Vec<_> = change.draft.assets.iter().filter_map(|a| f.view.assets.get(a)).map(|a| a.criticality).collect();
    central::needs(policy.central.as_ref(), &change.draft, &crit)
}

/// Whether `w` needs a central approval under the site's policy.
fn waiver_needed(policy: &Policy, w: &Waiver) -> bool {
    policy.central.as_ref().is_some_and(|r| r.covers_waiver(&w.template))
}

/// A change the hub may decide on: open and not yet implemented (an emergency change also afterwards).
fn decidable(c: &ChangeRequest) -> bool {
    matches!(c.state, ChangeState::Submitted | ChangeState::Approved)
        || (c.draft.emergency
            && matches!(c.state, ChangeState::Draft | ChangeState::Implemented | ChangeState::Verified))
}

/// A waiver the hub may decide on: requested, or approved at the plant and not expired.
fn waiver_decidable(w: &Waiver, now: DateTime<Utc>) -> bool {
    matches!(w.status(now), waiver::Status::Requested | waiver::Status::Active)
}

/// A site's waivers as the hub holds them, folded by the plant's rules (an event they refuse is left out).
pub async fn waivers(store: &Store, site_id: &SiteId) -> Result<Vec<Waiver>> {
    let mut events = Vec::new();
    for (_, key, json) in store.records(WaiverEvent::COLLECTION, Some(site_id)).await? {
        match serde_json::from_str::<WaiverEvent>(&json) {
            Ok(e) => events.push(e),
            Err(e) => tracing::warn!(site = %site_id, "waiver event {key} does not read: {e}"),
        }
    }
    Ok(waiver::fold(events).0)
}

fn waits(state: &CentralState) -> bool {
    matches!(state, CentralState::Pending | CentralState::Stale { .. } | CentralState::Invalid)
}

/// Every change and waiver of `sites` that waits for a central decision (none yet, or one for other content).
pub async fn inbox(
    store: &Store,
    sites: &[std::sync::Arc<Overview>],
    hub_key: &ed25519_dalek::VerifyingKey,
    now: DateTime<Utc>,
) -> Result<Vec<InboxItem>> {
    let mut out = Vec::new();
    // What every plant last reported of its templates (read once; each item keeps its site's).
    let reported = super::templates::compliance_rows(store, None, None).await?;
    for o in sites {
        let (Some(f), Some(site_id)) = (&o.findings, &o.row.site_id) else { continue };
        let policy = site_policy(store, site_id).await?;
        let Some(rule) = &policy.central else { continue };
        let decided = decisions(store, site_id.as_str()).await?;
        let drift_on = |assets: &[&datum_shared::AssetName]| -> Vec<DriftEntry> {
            f.unauthorized_drift.iter().filter(|d| assets.contains(&&d.asset)).cloned().collect()
        };
        let failing_on = |assets: &[&datum_shared::AssetName]| -> Vec<ComplianceImpact> {
            reported
                .iter()
                .filter(|r| r.site == o.row.name)
                .flat_map(|r| r.failing.iter().map(move |f| (r, f)))
                .filter(|(_, f)| assets.iter().any(|a| a.as_str() == f.asset))
                .map(|(r, f)| ComplianceImpact {
                    template: r.template.clone(),
                    asset: f.asset.clone(),
                    rule: f.rule.clone(),
                    result: f.result.clone(),
                })
                .collect()
        };
        for c in f.view.changes.values().filter(|c| decidable(c) && needed(&policy, o, c)) {
            let key = c.id.to_string();
            let state = central::state(c, true, decided.get(&key), site_id.as_str(), Some(hub_key));
            if !waits(&state) {
                continue;
            }
            out.push(InboxItem {
                site: o.row.name.clone(),
                id: key,
                content: central::content_hash(&c.draft),
                state,
                rule: rule.describe(),
                drift: drift_on(&c.draft.assets.iter().collect::<Vec<_>>()),
                compliance: failing_on(&c.draft.assets.iter().collect::<Vec<_>>()),
                change: Some(c.clone()),
                waiver: None,
            });
        }
        if !rule.has_waivers() {
            continue;
        }
        for w in waivers(store, site_id).await?.into_iter().filter(|w| waiver_decidable(w, now)) {
            if !waiver_needed(&policy, &w) {
                continue;
            }
            let state = central::waiver_state(&w, true, decided.get(&w.id), site_id.as_str(), Some(hub_key));
            if !waits(&state) {
                continue;
            }
            out.push(InboxItem {
                site: o.row.name.clone(),
                id: w.id.clone(),
                content: central::waiver_content_hash(&w),
                state,
                rule: rule.describe_waivers(),
                drift: drift_on(&[&w.asset]),
                compliance: failing_on(&[&w.asset]),
                change: None,
                waiver: Some(w),
            });
        }
    }
    Ok(out)
}

/// What the officer decided.
pub struct Decision<'a> {
    /// The change's or waiver's id (`CR-0001`, `W-0001`).
    pub subject: &'a str,
    pub approve: bool,
    pub reason: &'a str,
    /// The content the officer saw (`content` of the inbox item); refused when the change moved on since.
    pub content: Option<&'a str>,
    pub by: &'a str,
    pub now: DateTime<Utc>,
}

/// Checks a decision against the rules and returns it, unsigned: the caller confirms the person's second
/// factor after this (a refused decision does not use up a code) and then [`record`]s it. A refusal is a user
/// error (the dashboard answers 409 with it).
pub async fn check(store: &Store, o: &Overview, d: Decision<'_>) -> Result<CentralDecision> {
    let (Some(f), Some(site_id)) = (&o.findings, &o.row.site_id) else {
        return Err(user(format!("site {} has not enrolled yet", o.row.name)));
    };
    if d.reason.trim().is_empty() {
        return Err(user("give a reason for the decision"));
    }
    let policy = site_policy(store, site_id).await?;
    let (subject, content) = if d.subject.trim().to_ascii_uppercase().starts_with("W-") {
        let id = waiver::parse_waiver_id(d.subject).map_err(user)?;
        let all = waivers(store, site_id).await?;
        let w = all
            .iter()
            .find(|w| w.id == id)
            .ok_or_else(|| user(format!("waiver {id} does not exist at {}", o.row.name)))?;
        if !waiver_needed(&policy, w) {
            return Err(user(format!("{id} at {} needs no central approval under the site's policy", o.row.name)));
        }
        if !waiver_decidable(w, d.now) {
            return Err(user(format!("{id} at {} is {}: nothing to decide", o.row.name, w.status(d.now))));
        }
        if same_person(d.by, &w.requester) {
            return Err(user(format!("{} requested {id}: the requester never decides on their own waiver", d.by)));
        }
        if w.decided_by.as_deref().is_some_and(|p| same_person(p, d.by)) {
            return Err(user(format!(
                "{} approved {id} at the plant: the central approval must come from another person",
                d.by
            )));
        }
        (Subject::Waiver { waiver: id }, central::waiver_content_hash(w))
    } else {
        let id = ChangeId::parse(d.subject).map_err(|e| user(e.to_string()))?;
        let c = f.view.changes.get(&id).ok_or_else(|| user(format!("change {id} does not exist at {}", o.row.name)))?;
        if !needed(&policy, o, c) {
            return Err(user(format!("{id} at {} needs no central approval under the site's policy", o.row.name)));
        }
        if !decidable(c) {
            return Err(user(format!("{id} at {} is {}: nothing to decide", o.row.name, c.state)));
        }
        if same_person(d.by, &c.requester) {
            return Err(user(format!("{} requested {id}: the requester never decides on their own change", d.by)));
        }
        if c.approvals.iter().any(|a| same_person(&a.by, d.by)) {
            return Err(user(format!(
                "{} approved {id} at the plant: the central approval must come from another person",
                d.by
            )));
        }
        (Subject::Change { change: id }, central::content_hash(&c.draft))
    };
    if d.content.is_some_and(|seen| seen != content) {
        return Err(user(format!("{} changed at the plant since you opened it: look at it again", subject.key())));
    }
    Ok(CentralDecision {
        subject,
        content,
        approved: d.approve,
        reason: d.reason.trim().to_string(),
        by: d.by.to_string(),
        at: d.now,
        signature: String::new(),
    })
}

/// Signs a checked decision, writes it for the plant and records it in the hub's own record.
pub async fn record(
    store: &Store,
    signing: &ed25519_dalek::SigningKey,
    hub_name: &str,
    o: &Overview,
    decision: CentralDecision,
) -> Result<CentralDecision> {
    let site_id = o.row.site_id.as_ref().ok_or_else(|| user(format!("site {} has not enrolled yet", o.row.name)))?;
    let id = decision.subject.key();
    let decision = decision.signed(site_id.as_str(), signing);
    let verb = if decision.approved { "approve" } else { "reject" };
    let info = CommitInfo {
        op: format!("central.{verb}"),
        actor: decision.by.clone(),
        subject: id.clone(),
        reason: Some(decision.reason.clone()),
    };
    let puts = vec![(CentralDecision::COLLECTION, id.clone(), serde_json::to_value(&decision)?)];
    write_doc(store, hub_name, &central::decisions_doc(site_id.as_str()), &info, &puts, decision.at).await?;
    store
        .record_event(
            decision.at,
            &decision.by,
            &format!("central-{verb}"),
            Some(&o.row.name),
            &format!("{id} content sha256 {}: {}", decision.content, decision.reason),
        )
        .await?;
    Ok(decision)
}
