//! What the hub says about one site, from its copy of the site's records: the counts of `datum-hub status`,
//! of the dashboard's landing page and of `GET /api/v1/sites`, each built together with the list it counts
//! ([`Findings`]), so a count and the list behind its link never disagree. The rules are the edge's own
//! (`datum_shared::view`), applied at the hub's clock with the policy of the templates the site runs.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use chrono::{DateTime, Duration, Utc};
use datum_shared::change::ChangeState;
use datum_shared::drift::DriftStatus;
use datum_shared::ids::{AssetName, ChangeId};
use datum_shared::model::DriftEntry;
use datum_shared::policy::Policy;
use datum_shared::sync::witness;
use datum_shared::view::View;
use serde::Serialize;

use crate::store::{parse_time, HealthRow, SiteRow, Store};

/// A site whose edge has not been in contact for this long is shown as stale (a plant box syncs every few
/// seconds while it serves, or from a timer at least daily).
pub const STALE_AFTER: Duration = Duration::hours(24);

/// The site's state in one word, the worst of its findings (shown as text and colour).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    /// Nothing to act on.
    Ok,
    /// Not enrolled yet: nothing known.
    Pending,
    /// Something is due: behind on sync, stale, overdue backups or reviews, violations recorded.
    Attention,
    /// Unauthorized drift, or a history that went back.
    Critical,
}

impl Health {
    /// Its place from best to worst, as the daily record keeps it.
    pub fn rank(self) -> i64 {
        match self {
            Health::Ok => 0,
            Health::Pending => 1,
            Health::Attention => 2,
            Health::Critical => 3,
        }
    }

    pub fn from_rank(rank: i64) -> Health {
        match rank {
            0 => Health::Ok,
            1 => Health::Pending,
            2 => Health::Attention,
            _ => Health::Critical,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Pending => "pending",
            Health::Attention => "attention",
            Health::Critical => "critical",
        }
    }
}

/// One site's counts, as `status --json` and the API print them.
#[derive(Debug, Clone, Serialize)]
pub struct SiteStatus {
    pub site: String,
    pub display: Option<String>,
    pub health: Health,
    /// Why the health is what it is, worst first ("3 unauthorized drift", "last contact 2 days ago").
    pub reasons: Vec<String>,
    pub enrolled: bool,
    pub revoked: bool,
    pub last_contact: Option<String>,
    pub last_synced: Option<String>,
    pub last_result: Option<String>,
    /// No contact for longer than [`STALE_AFTER`] (an enrolled site only).
    pub stale: bool,
    pub in_sync: bool,
    pub assets: usize,
    pub open_changes: usize,
    /// Open changes by state (`submitted`, `approved`, …).
    pub changes_by_state: BTreeMap<String, usize>,
    /// Slots whose configuration differs from the approved baseline with no change authorizing it.
    pub unauthorized_drift: usize,
    /// Assets whose backup (capture) or passing restore test is older than their criticality allows.
    pub overdue_backups: usize,
    /// Assets whose periodic review is overdue.
    pub overdue_reviews: usize,
    pub files_stored: i64,
    pub files_missing: i64,
    pub violations: usize,
    /// The newest recorded violation that says the site's audit trail went back or differs from what the hub
    /// witnessed (`datum_shared::sync::witness`); `null` when there is none.
    pub history_rolled_back: Option<String>,
    /// Why the hub cannot read the site's records (a record it cannot decode); `null` when it can. The site is
    /// then shown as critical with nothing counted, and every other site as usual.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
    /// Assets of which no configuration was ever captured (among `overdue_backups`).
    pub backups_never: usize,
    /// Assets whose newest restore test failed.
    pub restores_failing: usize,
    /// The number of the newest entry of the plant's signed audit trail the hub witnessed.
    pub audit_witnessed: Option<u64>,
    /// When the first of the site's node certificates in use expires.
    pub cert_expires: Option<String>,
    /// Days until then (negative: expired), at the time of the overview.
    pub cert_days_left: Option<i64>,
}

/// The lists behind a site's counts, with the records they come from.
#[derive(Clone)]
pub struct Findings {
    pub view: Arc<View>,
    pub unauthorized_drift: Vec<DriftEntry>,
    pub overdue_backups: Vec<AssetName>,
    /// Never captured (each also in `overdue_backups`).
    pub backups_never: Vec<AssetName>,
    /// The newest restore test failed.
    pub restores_failing: Vec<AssetName>,
    pub overdue_reviews: Vec<AssetName>,
    pub open_changes: Vec<ChangeId>,
}

/// A site's status with its findings (none before it enrolled).
#[derive(Clone)]
pub struct Overview {
    pub row: SiteRow,
    pub status: SiteStatus,
    pub findings: Option<Findings>,
    /// The site's state per day over the last [`HISTORY_DAYS`] days (today's included), oldest first.
    pub history: Vec<HealthRow>,
}

/// A node certificate this close to its expiry needs attention (renewal happens with a sync well before).
pub const CERT_WARNING_DAYS: i64 = 30;

/// How far back the trend goes.
pub const HISTORY_DAYS: i64 = 90;

/// A site's records as the edge's reports see them (`datum_shared::view`), from the hub's copy.
pub async fn site_view(store: &Store, site_id: &datum_shared::ids::SiteId) -> Result<View> {
    let mut rows = BTreeMap::new();
    for collection in datum_shared::view::COLLECTIONS {
        let list: Vec<(String, String)> =
            store.records(collection, Some(site_id)).await?.into_iter().map(|(_, k, j)| (k, j)).collect();
        rows.insert(collection, list);
    }
    Ok(View::from_rows(|c| rows.get(c).cloned().unwrap_or_default())?)
}

/// The findings of a site's records at `now` under `policy` (pure: the dashboard's tests call it directly).
pub fn findings(view: Arc<View>, now: DateTime<Utc>, policy: &Policy) -> Findings {
    let unauthorized_drift =
        view.drift(now, policy, None).into_iter().filter(|e| e.status == DriftStatus::DriftUnauthorized).collect();
    let mut overdue_backups = Vec::new();
    let mut overdue_reviews = Vec::new();
    let (mut backups_never, mut restores_failing) = (Vec::new(), Vec::new());
    let mut newest_test: BTreeMap<&AssetName, &datum_shared::model::RestoreTest> = BTreeMap::new();
    for t in &view.restore_tests {
        let e = newest_test.entry(&t.asset).or_insert(t);
        if (t.tested_at, t.id) > (e.tested_at, e.id) {
            *e = t;
        }
    }
    for asset in view.reported_assets() {
        let b = view.backup_state(asset, now, policy);
        if b.backup_overdue || b.test_overdue {
            overdue_backups.push(asset.name.clone());
        }
        if b.last_backup.is_none() {
            backups_never.push(asset.name.clone());
        }
        if newest_test.get(&asset.name).is_some_and(|t| t.result == datum_shared::model::TestResult::Fail) {
            restores_failing.push(asset.name.clone());
        }
        if view.review_state(asset, now, policy).status.is_overdue() {
            overdue_reviews.push(asset.name.clone());
        }
    }
    let open_changes = view.changes.values().filter(|c| c.state.is_open()).map(|c| c.id).collect();
    Findings {
        view,
        unauthorized_drift,
        overdue_backups,
        backups_never,
        restores_failing,
        overdue_reviews,
        open_changes,
    }
}

/// Everything the hub knows about one site at `now`.
pub async fn overview(store: &Store, site: &SiteRow, now: DateTime<Utc>) -> Result<Overview> {
    let violations = store.violations(&site.name).await?;
    let history_rolled_back = violations
        .iter()
        .rev()
        .find(|(_, _, reason)| reason.starts_with(witness::ROLLED_BACK) || reason.starts_with(witness::DIVERGED))
        .map(|(at, node, reason)| format!("{at} node {node}: {reason}"));
    let stale = site.site_id.is_some()
        && site.last_contact.as_deref().and_then(|t| parse_time(t).ok()).is_none_or(|t| now - t > STALE_AFTER);
    let mut status = SiteStatus {
        site: site.name.clone(),
        display: site.display.clone(),
        health: Health::Ok,
        reasons: Vec::new(),
        enrolled: site.site_id.is_some(),
        revoked: site.revoked_at.is_some(),
        last_contact: site.last_contact.clone(),
        last_synced: site.last_synced.clone(),
        last_result: site.last_result.clone(),
        stale,
        in_sync: false,
        assets: 0,
        open_changes: 0,
        changes_by_state: BTreeMap::new(),
        unauthorized_drift: 0,
        overdue_backups: 0,
        overdue_reviews: 0,
        files_stored: 0,
        files_missing: 0,
        violations: violations.len(),
        history_rolled_back,
        unreadable: None,
        backups_never: 0,
        restores_failing: 0,
        audit_witnessed: store.audit_head(&site.name).await?.map(|h| h.seq),
        cert_expires: store
            .nodes_of(&site.name)
            .await?
            .into_iter()
            .filter(|n| n.replaced_by.is_none())
            .map(|n| n.not_after)
            .min(),
        cert_days_left: None,
    };
    status.cert_days_left =
        status.cert_expires.as_deref().and_then(|t| parse_time(t).ok()).map(|t| (t - now).num_days());
    let mut found = None;
    let view = match &site.site_id {
        Some(site_id) => match site_view(store, site_id).await {
            Ok(view) => Some(view),
            Err(e) => {
                tracing::error!(site = %site.name, "the site's records do not read: {e:#}");
                status.unreadable = Some(format!("{e:#}"));
                None
            }
        },
        None => None,
    };
    if let (Some(site_id), Some(view)) = (&site.site_id, view) {
        let policy = super::templates::site_policy(store, site_id).await?;
        let f = findings(Arc::new(view), now, &policy);
        status.assets = f.view.reported_assets().count();
        status.open_changes = f.open_changes.len();
        for id in &f.open_changes {
            if let Some(c) = f.view.changes.get(id) {
                *status.changes_by_state.entry(c.state.as_str().to_string()).or_default() += 1;
            }
        }
        status.unauthorized_drift = f.unauthorized_drift.len();
        status.overdue_backups = f.overdue_backups.len();
        status.overdue_reviews = f.overdue_reviews.len();
        status.backups_never = f.backups_never.len();
        status.restores_failing = f.restores_failing.len();
        let (stored, missing, _) = store.blob_counts(site_id).await?;
        status.files_stored = stored;
        status.files_missing = missing;
        status.in_sync = site.last_result.as_deref() == Some("synced") && missing == 0;
        found = Some(f);
    }
    let (health, reasons) = judge(&status);
    status.health = health;
    status.reasons = reasons;
    // The day's state, for the trends (a day keeps its worst).
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let day = HealthRow {
        day: now.format("%Y-%m-%d").to_string(),
        health: health.rank(),
        unauthorized_drift: count(status.unauthorized_drift),
        overdue_backups: count(status.overdue_backups),
        overdue_reviews: count(status.overdue_reviews),
        open_changes: count(status.open_changes),
    };
    store.record_health(&site.name, &day).await?;
    let since = (now - Duration::days(HISTORY_DAYS - 1)).format("%Y-%m-%d").to_string();
    let history = store.health_since(&site.name, &since).await?;
    Ok(Overview { row: site.clone(), status, findings: found, history })
}

/// The worst of a site's findings, and each finding in words (worst first).
pub fn judge(s: &SiteStatus) -> (Health, Vec<String>) {
    if !s.enrolled {
        return (Health::Pending, vec!["not enrolled yet".into()]);
    }
    let mut critical = Vec::new();
    let mut attention = Vec::new();
    if s.history_rolled_back.is_some() {
        critical.push("audit history rolled back or diverged".to_string());
    }
    if let Some(why) = &s.unreadable {
        critical.push(format!("the hub cannot read the site's records: {why}"));
    }
    if s.unauthorized_drift > 0 {
        critical.push(format!("{} unauthorized drift", s.unauthorized_drift));
    }
    if s.revoked {
        attention.push("revoked".to_string());
    }
    if s.restores_failing > 0 {
        critical.push(format!("{} restore tests failing", s.restores_failing));
    }
    match s.cert_days_left {
        Some(d) if d < 0 => critical.push("a node certificate has expired".to_string()),
        Some(d) if d < CERT_WARNING_DAYS => attention.push(format!("a node certificate expires within {d} days")),
        _ => {}
    }
    if s.stale {
        attention.push("no contact for over a day".to_string());
    } else if !s.in_sync {
        attention.push("not in sync".to_string());
    }
    if s.overdue_backups > 0 {
        attention.push(format!("{} backups or restore tests overdue", s.overdue_backups));
    }
    if s.overdue_reviews > 0 {
        attention.push(format!("{} reviews overdue", s.overdue_reviews));
    }
    if s.violations > 0 {
        attention.push(format!("{} protocol violations recorded", s.violations));
    }
    let health = if !critical.is_empty() {
        Health::Critical
    } else if !attention.is_empty() {
        Health::Attention
    } else {
        Health::Ok
    };
    critical.extend(attention);
    (health, critical)
}

/// Whether a change state counts as open (`ChangeState::is_open`), by its name in a link (`?state=approved`).
pub fn state_named(name: &str) -> Option<ChangeState> {
    ChangeState::ALL.into_iter().find(|s| s.as_str() == name)
}

/// One change of a site's documents (or of the hub's documents addressed to it), as its writer described it.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    pub info: datum_shared::document::CommitInfo,
    pub doc: String,
}

/// The newest `limit` changes of a site's documents and of the hub's documents addressed to it, newest first:
/// who did what, read from the hub's copy. A change without a readable description is left out.
pub async fn site_history(
    store: &Store,
    site_id: &datum_shared::ids::SiteId,
    limit: usize,
) -> Result<Vec<HistoryEntry>> {
    use datum_shared::ids::{DocId, Owner};
    let mut out = Vec::new();
    for (doc_id, _) in store.doc_heads(site_id).await? {
        let Ok(id) = DocId::parse(&doc_id) else { continue };
        let ours =
            matches!(id.owner(), Owner::Site(s) if s == site_id.as_str()) || id.audience() == Some(site_id.as_str());
        if !ours {
            continue;
        }
        let doc = super::templates::load_doc(store, &id).await?;
        for change in doc.get_changes(&[]) {
            let Some(info) = change.message().and_then(|m| serde_json::from_str(m).ok()) else { continue };
            let at = DateTime::from_timestamp_millis(change.timestamp()).unwrap_or_default();
            out.push(HistoryEntry { at, info, doc: doc_id.clone() });
        }
    }
    out.sort_by_key(|e| std::cmp::Reverse(e.at));
    out.truncate(limit);
    Ok(out)
}
