//! `datum-hub status`: per site, sync state and the same findings as the edge's reports, at the hub's clock.

use anyhow::Result;
use datum_host::exit::Outcome;

use super::overview::overview;
use crate::context::Context;

pub(super) async fn status(ctx: &Context, json: bool) -> Result<Outcome> {
    let store = ctx.store().await?;
    let mut out = Vec::new();
    for site in store.sites().await? {
        out.push(overview(&store, &site, ctx.now).await?.status);
    }
    store.close().await;
    let findings = out.iter().any(|s| {
        s.violations > 0
            || s.history_rolled_back.is_some()
            || s.unreadable.is_some()
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
