//! `datum-edge waiver …`: time-limited exceptions to one rule of an active template for one asset. The rules
//! (another person decides, bounded expiry, decisions final) are `datum_shared::waiver::apply`; this file
//! gathers inputs, checks the template, rule and asset exist here, and writes the event to `site/<id>/waivers`.
//! An approved waiver turns that rule's non-compliance into `waived` until it expires
//! (`super::compliance::waive`); after each write the recorded results are refreshed for the hub.

use anyhow::Result;
use datum_host::cli::Json;
use datum_host::exit::{user, Outcome};
use datum_shared::central::{self, CentralState};
use datum_shared::waiver::{self, fold, parse_waiver_id, waiver_id, Waiver, WaiverAction, WaiverEvent};
use serde::Serialize;

use super::{find_asset, required_text, text_arg};
use crate::cli::{Approve, WaiverCmd, WithReason};
use crate::output::{print_json, print_table};
use crate::site::{Site, Write};

/// Every waiver of this site, folded from its events (an event the rules refuse is skipped with a warning).
pub async fn load(site: &Site) -> Result<Vec<Waiver>> {
    let events: Vec<WaiverEvent> = site.list(WaiverEvent::COLLECTION).await?;
    let (waivers, ignored) = fold(events);
    for why in ignored {
        tracing::warn!("waiver event ignored: {why}");
    }
    Ok(waivers)
}

/// Where each waiver stands with the hub (`datum_shared::central::waiver_state`), in the order given: a waiver
/// of a template the site's policy marks as central needs the hub's signed approval of its request.
pub async fn central_states(site: &Site, waivers: &[Waiver]) -> Result<Vec<CentralState>> {
    let rule = site.policy.central.as_ref();
    let needed = |w: &Waiver| rule.is_some_and(|r| r.covers_waiver(&w.template));
    if !waivers.iter().any(needed) {
        return Ok(vec![CentralState::NotNeeded; waivers.len()]);
    }
    let hub = super::changes::HubDecisions::load(site).await?;
    let site_id = site.info.site_id.as_str();
    Ok(waivers.iter().map(|w| central::waiver_state(w, needed(w), hub.get(&w.id), site_id, hub.key.as_ref())).collect())
}

/// The waivers that may cover a rule: every waiver but those waiting for (or refused) a central approval the
/// site's policy asks for. Whether each covers a finding now is still [`Waiver::covers`].
pub async fn in_force(site: &Site) -> Result<Vec<Waiver>> {
    let waivers = load(site).await?;
    let states = central_states(site, &waivers).await?;
    Ok(waivers.into_iter().zip(states).filter(|(_, s)| s.allows_implementation()).map(|(w, _)| w).collect())
}

pub async fn run(site: &mut Site, cmd: WaiverCmd) -> Result<Outcome> {
    match cmd {
        WaiverCmd::Request { template, rule, asset, reason, expires, json } => {
            let w = request(site, &template, &rule, &asset, reason, &expires).await?;
            if json {
                print_json(&w)?;
            } else {
                println!(
                    "requested {}: {} {} on {} until {}; another person approves it: `datum-edge waiver approve {}`",
                    w.id,
                    w.template,
                    w.rule,
                    w.asset,
                    w.expires.to_rfc3339(),
                    w.id
                );
            }
            Ok(Outcome::Clean)
        }
        WaiverCmd::Approve(Approve { id, comment }) => {
            let comment = text_arg("comment", comment, 2048)?;
            decide(site, &id, WaiverAction::Approve { comment }).await
        }
        WaiverCmd::Reject(WithReason { id, reason }) => {
            let reason = required_text("reason", reason, 2048)?;
            decide(site, &id, WaiverAction::Reject { reason }).await
        }
        WaiverCmd::Revoke(WithReason { id, reason }) => {
            let reason = required_text("reason", reason, 2048)?;
            decide(site, &id, WaiverAction::Revoke { reason }).await
        }
        WaiverCmd::List(Json { json }) => list(site, json).await,
    }
}

/// Requests a waiver: the template must be active here and hold the rule, the asset must exist.
pub async fn request(
    site: &mut Site,
    template: &str,
    rule: &str,
    asset: &str,
    reason: String,
    expires: &str,
) -> Result<Waiver> {
    let reason = required_text("reason", reason, 4096)?;
    let expires = super::changes::parse_time(expires)?;
    let asset = find_asset(site, asset).await?;
    if !asset.is_active() {
        return Err(user(format!("asset {} is retired", asset.name)));
    }
    let active = super::templates::active(site).await?;
    let a = active.iter().find(|a| a.template.id == template).ok_or_else(|| {
        user(format!("{template} is not a template active at this site (see `datum-edge template list`)"))
    })?;
    if !a.template.rules.iter().any(|r| r.id == rule) {
        return Err(user(format!(
            "{template} {} has no rule {rule} (its rules: {})",
            a.template.version,
            a.template.rules.iter().map(|r| r.id.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    let n = load(site).await?.iter().filter_map(|w| w.id.trim_start_matches("W-").parse::<u32>().ok()).max();
    let event = WaiverEvent {
        waiver: waiver_id(n.unwrap_or(0) + 1),
        seq: 1,
        at: site.now,
        actor: site.actor.clone(),
        action: WaiverAction::Request {
            template: template.to_string(),
            version: a.template.version.to_string(),
            rule: rule.to_string(),
            asset: asset.name.clone(),
            reason: reason.clone(),
            expires,
        },
    };
    let after = waiver::apply(None, &event).map_err(|e| user(e.to_string()))?;
    write(site, &event, &after, Some(reason)).await?;
    Ok(after)
}

async fn decide(site: &mut Site, id: &str, action: WaiverAction) -> Result<Outcome> {
    let id = parse_waiver_id(id).map_err(user)?;
    let current = load(site)
        .await?
        .into_iter()
        .find(|w| w.id == id)
        .ok_or_else(|| user(format!("{id} does not exist (see `datum-edge waiver list`)")))?;
    let reason = match &action {
        WaiverAction::Approve { comment } => comment.clone(),
        WaiverAction::Reject { reason } | WaiverAction::Revoke { reason } => Some(reason.clone()),
        WaiverAction::Request { .. } => None,
    };
    let verb = action.verb();
    let event = WaiverEvent { waiver: id, seq: current.n_events + 1, at: site.now, actor: site.actor.clone(), action };
    let after = waiver::apply(Some(&current), &event).map_err(|e| user(e.to_string()))?;
    write(site, &event, &after, reason).await?;
    println!(
        "{}: {verb} recorded; it is now {} ({} {} on {}, until {})",
        after.id,
        after.status(site.now),
        after.template,
        after.rule,
        after.asset,
        after.expires.to_rfc3339()
    );
    let central = central_states(site, std::slice::from_ref(&after)).await?.remove(0);
    if after.status(site.now) == waiver::Status::Active && !central.allows_implementation() {
        let rule = site.policy.central.as_ref().map(|r| r.describe_waivers()).unwrap_or_default();
        println!(
            "  it covers nothing until the hub approves it centrally (central state: {}; the site's policy: {rule})",
            central.as_str()
        );
    }
    Ok(Outcome::Clean)
}

async fn write(site: &mut Site, event: &WaiverEvent, after: &Waiver, reason: Option<String>) -> Result<()> {
    let doc = site.doc_id(waiver::WAIVERS_DOC);
    let mut w = Write::new(&format!("waiver.{}", event.action.verb()), event.waiver.clone(), reason)
        .concerning([after.asset.as_str()]);
    w.put(&doc, WaiverEvent::COLLECTION, &event.key(), event)?;
    let summary =
        format!("{} ({} {} on {}) is {}", after.id, after.template, after.rule, after.asset, after.status(site.now));
    site.apply(w, summary).await?;
    // What the hub sees changes with the waiver.
    super::templates::refresh_after(site).await;
    Ok(())
}

#[derive(Serialize)]
struct ListEntry<'a> {
    #[serde(flatten)]
    waiver: &'a Waiver,
    status: waiver::Status,
    /// Where it stands with the hub: a waiver the policy sends there covers nothing before its approval.
    central: &'a CentralState,
}

async fn list(site: &Site, json: bool) -> Result<Outcome> {
    let waivers = load(site).await?;
    let states = central_states(site, &waivers).await?;
    if json {
        let entries: Vec<ListEntry<'_>> = waivers
            .iter()
            .zip(&states)
            .map(|(w, central)| ListEntry { waiver: w, status: w.status(site.now), central })
            .collect();
        print_json(&entries)?;
        return Ok(Outcome::Clean);
    }
    if waivers.is_empty() {
        println!("no waiver at this site");
        return Ok(Outcome::Clean);
    }
    let rows: Vec<Vec<String>> = waivers
        .iter()
        .zip(&states)
        .map(|(w, central)| {
            vec![
                w.id.clone(),
                w.status(site.now).to_string(),
                central.as_str().to_string(),
                w.template.clone(),
                w.rule.clone(),
                w.asset.to_string(),
                w.expires.format("%Y-%m-%d %H:%M").to_string(),
                w.requester.clone(),
                w.decided_by.clone().unwrap_or_default(),
                w.reason.clone(),
            ]
        })
        .collect();
    print_table(
        &["ID", "STATUS", "CENTRAL", "TEMPLATE", "RULE", "ASSET", "EXPIRES (UTC)", "REQUESTER", "DECIDED BY", "REASON"],
        &rows,
    );
    Ok(Outcome::Clean)
}
