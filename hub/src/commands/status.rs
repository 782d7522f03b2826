//! `datum-hub status`: per site, sync state and the same findings as the edge's reports, at the hub's clock.

use anyhow::{Context as _, Result};
use datum_host::exit::Outcome;
use datum_shared::drift::DriftStatus;
use datum_shared::sync::witness;
use serde::Serialize;

use crate::context::Context;

#[derive(Serialize)]
struct SiteStatus {
    site: String,
    enrolled: bool,
    revoked: bool,
    last_contact: Option<String>,
    last_synced: Option<String>,
    last_result: Option<String>,
    in_sync: bool,
    assets: usize,
    open_changes: usize,
    /// Slots whose configuration differs from the approved baseline with no change authorizing it.
    unauthorized_drift: usize,
    /// Assets whose backup (capture) or passing restore test is older than their criticality allows.
    overdue_backups: usize,
    /// Assets whose periodic review is overdue.
    overdue_reviews: usize,
    files_stored: i64,
    files_missing: i64,
    violations: usize,
    /// The newest recorded violation that says the site's audit trail went back or differs from what the hub
    /// witnessed (`datum_shared::sync::witness`); `null` when there is none.
    history_rolled_back: Option<String>,
}

pub(super) async fn status(ctx: &Context, json: bool) -> Result<Outcome> {
    let store = ctx.store().await?;
    let mut out = Vec::new();
    for site in store.sites().await? {
        let violations = store.violations(&site.name).await?;
        let history_rolled_back = violations
            .iter()
            .rev()
            .find(|(_, _, reason)| reason.starts_with(witness::ROLLED_BACK) || reason.starts_with(witness::DIVERGED))
            .map(|(at, node, reason)| format!("{at} node {node}: {reason}"));
        let mut s = SiteStatus {
            site: site.name.clone(),
            enrolled: site.site_id.is_some(),
            revoked: site.revoked_at.is_some(),
            last_contact: site.last_contact.clone(),
            last_synced: site.last_synced.clone(),
            last_result: site.last_result.clone(),
            in_sync: false,
            assets: 0,
            open_changes: 0,
            unauthorized_drift: 0,
            overdue_backups: 0,
            overdue_reviews: 0,
            files_stored: 0,
            files_missing: 0,
            violations: violations.len(),
            history_rolled_back,
        };
        if let Some(site_id) = &site.site_id {
            // The same view and rules as the edge's reports, over the hub's copy of the site's records.
            let view = super::site_view(&store, site_id).await.with_context(|| format!("site {}", site.name))?;
            let policy = super::templates::site_policy(&store, site_id).await?;
            s.assets = view.reported_assets().count();
            s.open_changes = view.changes.values().filter(|c| c.state.is_open()).count();
            s.unauthorized_drift = view
                .drift(ctx.now, &policy, None)
                .iter()
                .filter(|e| e.status == DriftStatus::DriftUnauthorized)
                .count();
            for asset in view.reported_assets() {
                let b = view.backup_state(asset, ctx.now, &policy);
                s.overdue_backups += usize::from(b.backup_overdue || b.test_overdue);
                s.overdue_reviews += usize::from(view.review_state(asset, ctx.now, &policy).status.is_overdue());
            }
            let (stored, missing, _) = store.blob_counts(site_id).await?;
            s.files_stored = stored;
            s.files_missing = missing;
            s.in_sync = site.last_result.as_deref() == Some("synced") && missing == 0;
        }
        out.push(s);
    }
    store.close().await;
    let findings = out.iter().any(|s| {
        s.violations > 0
            || s.history_rolled_back.is_some()
            || (s.enrolled && !s.in_sync)
            || s.unauthorized_drift > 0
            || s.overdue_backups > 0
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let mut table: Vec<Vec<String>> = Vec::new();
        for s in &out {
            let sync = if s.revoked {
                "revoked"
            } else if !s.enrolled {
                "pending"
            } else if s.in_sync {
                "in sync"
            } else {
                "BEHIND"
            };
            table.push(vec![
                s.site.clone(),
                sync.to_string(),
                s.last_contact.clone().unwrap_or_else(|| "never".into()),
                s.assets.to_string(),
                s.open_changes.to_string(),
                s.unauthorized_drift.to_string(),
                s.overdue_backups.to_string(),
                s.overdue_reviews.to_string(),
                s.files_stored.to_string(),
                s.files_missing.to_string(),
                s.violations.to_string(),
                if s.history_rolled_back.is_some() { "ROLLED BACK" } else { "ok" }.to_string(),
            ]);
        }
        let header = [
            "SITE",
            "SYNC",
            "LAST CONTACT",
            "ASSETS",
            "OPEN",
            "DRIFT",
            "BACKUPS",
            "REVIEWS",
            "FILES",
            "MISSING",
            "VIOL",
            "HISTORY",
        ];
        print!("{}", datum_shared::text::table(&header, &table));
    }
    Ok(Outcome::from_findings(findings))
}
