//! The auditor's evidence, keyed by IEC 62443 requirement: a status for each (`met`, `partly`, `not met`,
//! `not applicable`) with the reasons computed from the site's records, and the files of the pack that back it.
//!
//! Pure: the caller gathers the records (the projection, the audit trail and its verification, the blob check,
//! people and their second factors) and writes the pack; this module decides. The same inputs give the same
//! evidence, which is what the snapshot tests rely on.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::audit::SignedEntry;
use crate::change::{ChangeRequest, ChangeState};
use crate::identity::{Role, User};
use crate::model::{Asset, DriftStatus, Risk, TestResult};
use crate::policy::Policy;
use crate::view::View;

/// How far a requirement is met by the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Status {
    #[serde(rename = "not met")]
    NotMet,
    #[serde(rename = "partly")]
    Partly,
    #[serde(rename = "met")]
    Met,
    #[serde(rename = "not applicable")]
    NotApplicable,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Met => "met",
            Status::Partly => "partly",
            Status::NotMet => "not met",
            Status::NotApplicable => "not applicable",
        }
    }
}

/// One requirement's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Requirement {
    /// As the standard writes it: `SR 7.8`, `SR 7.3 RE1`, `SP.06`.
    pub id: &'static str,
    /// `IEC 62443-3-3` or `IEC 62443-2-4`.
    pub standard: &'static str,
    pub title: &'static str,
    pub status: Status,
    /// Why, computed from the records, most important first.
    pub reasons: Vec<String>,
    /// Files of the pack that back it.
    pub files: Vec<&'static str>,
}

/// What the caller gathered for one site and period.
pub struct Inputs<'a> {
    pub site: &'a str,
    pub now: DateTime<Utc>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub view: &'a View,
    pub policy: &'a Policy,
    pub users: &'a [User],
    /// Accounts with a second factor set up; `None` where that is not known (the hub's copy: second factors
    /// stay at the plant).
    pub with_totp: Option<&'a BTreeSet<String>>,
    /// The audit trail as the maker of the pack holds it.
    pub trail: Trail<'a>,
    /// Stored files re-hashed and the problems found.
    pub blobs_checked: usize,
    pub blob_problems: &'a [String],
    /// The newest audit entry the hub witnessed, and when this node last synced, when enrolled.
    pub hub: Option<HubAnchor>,
}

/// What the maker of a pack holds of the site's audit trail.
#[derive(Debug, Clone, Copy)]
pub enum Trail<'a> {
    /// The site itself: every entry (the period is taken from them here) and the problems `audit verify`
    /// found (chain, signatures, documents, records; empty when intact).
    Kept { entries: &'a [SignedEntry], problems: &'a [String] },
    /// The hub: the newest entry the site presented in a confirmed session, not the entries, which stay at
    /// the plant (`None`: no head witnessed yet).
    Witnessed(Option<Witness>),
}

/// The head of a site's trail as the hub witnessed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Witness {
    pub seq: u64,
    pub at: DateTime<Utc>,
    /// The entry's signature verifies with the site's audit key (from the site's identity record).
    pub signature_ok: bool,
}

impl Trail<'_> {
    fn problems(&self) -> &[String] {
        match self {
            Trail::Kept { problems, .. } => problems,
            Trail::Witnessed(_) => &[],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HubAnchor {
    pub hub: String,
    pub last_sync: Option<DateTime<Utc>>,
    pub witnessed_seq: Option<u64>,
}

/// The whole verdict with the summary the first page shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub site: String,
    pub generated_at: DateTime<Utc>,
    pub period: Period,
    pub scope: Scope,
    pub freshness: Freshness,
    pub requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scope {
    pub assets_in_scope: usize,
    pub assets_out_of_scope: usize,
    pub assets_retired: usize,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Freshness {
    pub oldest_last_capture: Option<DateTime<Utc>>,
    pub never_captured: usize,
    pub hub: Option<HubAnchor>,
}

/// Decides every requirement.
pub fn assess(i: &Inputs<'_>) -> Evidence {
    let in_scope: Vec<&Asset> = i.view.reported_assets().collect();
    let period_entries: Vec<&SignedEntry> = match i.trail {
        Trail::Kept { entries, .. } => entries.iter().filter(|s| s.entry.at >= i.from && s.entry.at <= i.to).collect(),
        Trail::Witnessed(_) => Vec::new(),
    };
    let changes: Vec<&ChangeRequest> = i.view.changes.values().filter(|c| touches_period(c, i.from, i.to)).collect();
    let drift = i.view.drift(i.now, i.policy, None);

    let mut requirements = vec![
        inventory(i, &in_scope),
        backup(i, &in_scope),
        backup_verification(i),
        recovery(i, &in_scope),
        configuration(i, &drift),
        auditable_events(i, &period_entries),
        audit_capacity(i),
        audit_protection(i),
        identification(i, &period_entries),
        authorization(i, &changes),
        integrity(i),
        change_management(i, &changes),
        backup_restore_process(i, &in_scope),
    ];
    // Not met first, then partly: what the auditor must look at.
    requirements.sort_by_key(|r| r.status);

    let never_captured = in_scope
        .iter()
        .filter(|a| i.view.slots_of(&a.name).iter().all(|s| i.view.latest(&a.name, s).is_none()))
        .count();
    let oldest_last_capture = in_scope
        .iter()
        .filter_map(|a| i.view.slots_of(&a.name).iter().filter_map(|s| i.view.last_seen(&a.name, s)).max())
        .min();
    let all = i.view.assets.values();
    Evidence {
        site: i.site.to_string(),
        generated_at: i.now,
        period: Period { from: i.from, to: i.to },
        scope: Scope {
            assets_in_scope: in_scope.len(),
            assets_out_of_scope: all.clone().filter(|a| a.is_active() && !a.in_scope).count(),
            assets_retired: all.filter(|a| !a.is_active()).count(),
            why: "every active asset marked in scope of the site's inventory (the asset's in-scope flag); \
                  retired assets and those marked out of scope are listed in inventory.csv but not assessed"
                .into(),
        },
        freshness: Freshness { oldest_last_capture, never_captured, hub: i.hub.clone() },
        requirements,
    }
}

fn touches_period(c: &ChangeRequest, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
    let stamps = [&c.submitted, &c.rejected, &c.implemented, &c.verified, &c.closed, &c.cancelled];
    let within = |t: DateTime<Utc>| t >= from && t <= to;
    within(c.created_at)
        || c.approvals.iter().any(|s| within(s.at))
        || stamps.iter().any(|s| s.as_ref().is_some_and(|s| within(s.at)))
}

fn req(
    id: &'static str,
    standard: &'static str,
    title: &'static str,
    status: Status,
    reasons: Vec<String>,
    files: Vec<&'static str>,
) -> Requirement {
    Requirement { id, standard, title, status, reasons, files }
}

const IEC_3_3: &str = "IEC 62443-3-3";
const IEC_2_4: &str = "IEC 62443-2-4";

fn names(assets: &[&Asset]) -> String {
    let mut list: Vec<&str> = assets.iter().map(|a| a.name.as_str()).take(20).collect();
    if assets.len() > 20 {
        list.push("…");
    }
    list.join(", ")
}

fn inventory(i: &Inputs<'_>, in_scope: &[&Asset]) -> Requirement {
    let files = vec!["inventory.csv"];
    if in_scope.is_empty() {
        return req(
            "SR 7.8",
            IEC_3_3,
            "Control system component inventory",
            Status::NotMet,
            vec!["the inventory holds no asset in scope".into()],
            files,
        );
    }
    let no_owner: Vec<&Asset> = in_scope.iter().copied().filter(|a| a.owner.is_none()).collect();
    let no_zone: Vec<&Asset> = in_scope.iter().copied().filter(|a| a.zone.is_none()).collect();
    let within = |t: DateTime<Utc>| t >= i.from && t <= i.to;
    let added = i.view.assets.values().filter(|a| within(a.created_at)).count();
    let retired = i.view.assets.values().filter(|a| a.retired_at.is_some_and(within)).count();
    let changed = i.view.assets.values().filter(|a| within(a.updated_at) && !within(a.created_at)).count();
    let mut reasons = Vec::new();
    if !no_owner.is_empty() {
        reasons.push(format!("{} asset(s) without an owner: {}", no_owner.len(), names(&no_owner)));
    }
    if !no_zone.is_empty() {
        reasons.push(format!("{} asset(s) without a zone: {}", no_zone.len(), names(&no_zone)));
    }
    reasons.push(format!(
        "{} asset(s) in scope with kind and criticality; in the period {added} added, {changed} changed, {retired} retired",
        in_scope.len()
    ));
    let status = if no_owner.is_empty() && no_zone.is_empty() { Status::Met } else { Status::Partly };
    req("SR 7.8", IEC_3_3, "Control system component inventory", status, reasons, files)
}

fn backup(i: &Inputs<'_>, in_scope: &[&Asset]) -> Requirement {
    let files = vec!["backups.csv"];
    let states: Vec<(&Asset, crate::view::BackupState)> =
        in_scope.iter().map(|a| (*a, i.view.backup_state(a, i.now, i.policy))).collect();
    let never: Vec<&Asset> = states.iter().filter(|(_, b)| b.last_backup.is_none()).map(|(a, _)| *a).collect();
    let overdue: Vec<&Asset> =
        states.iter().filter(|(_, b)| b.last_backup.is_some() && b.backup_overdue).map(|(a, _)| *a).collect();
    let current = states.len() - never.len() - overdue.len();
    let mut reasons = Vec::new();
    if !never.is_empty() {
        reasons.push(format!("{} asset(s) have no backup: {}", never.len(), names(&never)));
    }
    if !overdue.is_empty() {
        reasons.push(format!(
            "{} asset(s) have a backup older than their criticality's interval: {}",
            overdue.len(),
            names(&overdue)
        ));
    }
    reasons.push(format!("{current} of {} asset(s) in scope have a current backup", states.len()));
    let status = if states.is_empty() || current == 0 {
        Status::NotMet
    } else if never.is_empty() && overdue.is_empty() {
        Status::Met
    } else {
        Status::Partly
    };
    req("SR 7.3", IEC_3_3, "Control system backup", status, reasons, files)
}

fn backup_verification(i: &Inputs<'_>) -> Requirement {
    let files = vec!["integrity.json"];
    let (status, mut reasons) = if i.blob_problems.is_empty() {
        (Status::Met, vec![format!("all {} stored file(s) re-hashed when this pack was made: intact", i.blobs_checked)])
    } else {
        (
            Status::NotMet,
            vec![format!("{} of {} stored file(s) damaged or missing", i.blob_problems.len(), i.blobs_checked)],
        )
    };
    reasons.extend(i.blob_problems.iter().take(20).cloned());
    req("SR 7.3 RE1", IEC_3_3, "Backup verification", status, reasons, files)
}

fn recovery(i: &Inputs<'_>, in_scope: &[&Asset]) -> Requirement {
    let files = vec!["restore-tests.csv", "backups.csv"];
    let tested: BTreeSet<&str> =
        i.view.restore_tests.iter().filter(|t| t.result == TestResult::Pass).map(|t| t.asset.as_str()).collect();
    let overdue: Vec<&Asset> =
        in_scope.iter().copied().filter(|a| i.view.backup_state(a, i.now, i.policy).test_overdue).collect();
    let in_period = i.view.restore_tests.iter().filter(|t| t.tested_at >= i.from && t.tested_at <= i.to).count();
    let failed = i
        .view
        .restore_tests
        .iter()
        .filter(|t| t.result == TestResult::Fail && t.tested_at >= i.from && t.tested_at <= i.to)
        .count();
    let mut reasons = Vec::new();
    if !overdue.is_empty() {
        reasons.push(format!(
            "{} asset(s) without a passed restore test within their interval: {}",
            overdue.len(),
            names(&overdue)
        ));
    }
    if failed > 0 {
        reasons.push(format!("{failed} restore test(s) in the period failed"));
    }
    reasons.push(format!(
        "{in_period} restore test(s) recorded in the period; {} asset(s) ever passed one",
        in_scope.iter().filter(|a| tested.contains(a.name.as_str())).count()
    ));
    let status = if in_scope.is_empty() || tested.is_empty() {
        Status::NotMet
    } else if overdue.is_empty() {
        Status::Met
    } else {
        Status::Partly
    };
    req("SR 7.4", IEC_3_3, "Control system recovery and reconstitution", status, reasons, files)
}

fn configuration(i: &Inputs<'_>, drift: &[crate::model::DriftEntry]) -> Requirement {
    let files = vec!["drift.csv", "reviews.csv"];
    let count = |s: DriftStatus| drift.iter().filter(|d| d.status == s).count();
    let (unauthorized, no_baseline, authorized, in_baseline, stale) = (
        count(DriftStatus::DriftUnauthorized),
        count(DriftStatus::NoBaseline),
        count(DriftStatus::DriftAuthorized),
        count(DriftStatus::InBaseline),
        count(DriftStatus::Stale),
    );
    let mut reasons = Vec::new();
    for d in drift.iter().filter(|d| d.status == DriftStatus::DriftUnauthorized).take(20) {
        reasons.push(format!(
            "unauthorized drift: {}/{} v{} differs from its baseline v{}",
            d.asset,
            d.slot.as_ref().map(|s| s.as_str()).unwrap_or("-"),
            d.latest_version.unwrap_or(0),
            d.baseline_version.unwrap_or(0)
        ));
    }
    if no_baseline > 0 {
        reasons.push(format!("{no_baseline} configuration(s) have no approved baseline"));
    }
    reasons.push(format!(
        "{in_baseline} configuration(s) as approved, {authorized} changed under an approved change request, \
         {unauthorized} changed without one, {stale} not captured recently; shared templates: not in use (no compliance to report)"
    ));
    // During the period: the captures made (under a change request or not), and what the reviews of the
    // period found at the time.
    let within = |t: DateTime<Utc>| t >= i.from && t <= i.to;
    let captured: Vec<&crate::model::ConfigVersion> =
        i.view.versions.values().flatten().filter(|v| within(v.captured_at)).collect();
    let mut under: BTreeSet<String> = BTreeSet::new();
    for v in &captured {
        if let Some(c) = &v.change {
            under.insert(c.to_string());
        }
    }
    let linked = captured.iter().filter(|v| v.change.is_some()).count();
    let found: usize = i
        .view
        .reviews
        .iter()
        .filter(|r| within(r.reviewed_at))
        .map(|r| r.drift.iter().filter(|d| d.status == DriftStatus::DriftUnauthorized).count())
        .sum();
    reasons.push(format!(
        "during the period: {} capture(s), {linked} of them under a change request{}; the period's reviews found \
         {found} unauthorized drift(s) at the time",
        captured.len(),
        if under.is_empty() {
            String::new()
        } else {
            let list: Vec<&str> = under.iter().map(String::as_str).take(20).collect();
            format!(" ({}{})", list.join(", "), if under.len() > 20 { ", …" } else { "" })
        }
    ));
    let status = if in_baseline + authorized == 0 {
        Status::NotMet
    } else if unauthorized == 0 && no_baseline == 0 {
        Status::Met
    } else {
        Status::Partly
    };
    req("SR 7.6", IEC_3_3, "Network and security configuration settings", status, reasons, files)
}

/// The reason a requirement over the trail's entries cannot be shown from the hub's copy.
fn kept_at_plant(witness: Option<Witness>) -> String {
    match witness {
        Some(w) => format!(
            "the audit entries stay at the plant: the hub's copy holds the newest one the site presented, #{} at \
             {} (signature {}); the plant's own pack (`datum-edge report`) lists the entries",
            w.seq,
            w.at.format("%Y-%m-%d %H:%M UTC"),
            if w.signature_ok { "valid" } else { "INVALID" }
        ),
        None => "the audit entries stay at the plant and the hub has not witnessed any yet; the plant's own pack \
                 (`datum-edge report`) lists them"
            .into(),
    }
}

fn auditable_events(i: &Inputs<'_>, period: &[&SignedEntry]) -> Requirement {
    let files = vec!["audit.csv"];
    if let Trail::Witnessed(w) = i.trail {
        return req("SR 2.8", IEC_3_3, "Auditable events", Status::Partly, vec![kept_at_plant(w)], vec![]);
    }
    let mut by_category: BTreeMap<&str, usize> = BTreeMap::new();
    for s in period {
        *by_category.entry(s.entry.op.split('.').next().unwrap_or("other")).or_default() += 1;
    }
    let counts: Vec<String> = by_category.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let mut reasons = vec![format!(
        "{} audit entr(ies) in the period, each with time, person, action, subject and the document changes it \
         made: {}",
        period.len(),
        if counts.is_empty() { "none".to_string() } else { counts.join(", ") }
    )];
    let drills = period.iter().filter(|s| s.entry.drill).count();
    if drills > 0 {
        reasons.push(format!("{drills} entr(ies) written under the drill clock (marked as such)"));
    }
    let status = if !i.trail.problems().is_empty() {
        reasons.insert(0, "the audit trail did not verify (see SR 3.9)".into());
        Status::Partly
    } else {
        Status::Met
    };
    req("SR 2.8", IEC_3_3, "Auditable events", status, reasons, files)
}

fn audit_capacity(i: &Inputs<'_>) -> Requirement {
    let entries = match i.trail {
        Trail::Kept { entries, .. } => entries,
        Trail::Witnessed(w) => {
            return req("SR 2.9", IEC_3_3, "Audit storage capacity", Status::Partly, vec![kept_at_plant(w)], vec![])
        }
    };
    let oldest = entries.first().map(|s| s.entry.at.format("%Y-%m-%d").to_string()).unwrap_or_else(|| "-".into());
    req(
        "SR 2.9",
        IEC_3_3,
        "Audit storage capacity",
        Status::Met,
        vec![format!(
            "the trail is kept whole, never rotated or truncated: {} entr(ies) since {oldest}, in the site's \
             database (SQLite, WAL, synchronous writes) and, when enrolled, at the hub",
            entries.len()
        )],
        vec!["audit.csv"],
    )
}

fn audit_protection(i: &Inputs<'_>) -> Requirement {
    const TITLE: &str = "Protection of audit information";
    let files = vec!["integrity.json", "audit.csv"];
    let mut reasons = Vec::new();
    let entries = match i.trail {
        Trail::Kept { entries, .. } => entries,
        Trail::Witnessed(None) => {
            reasons.push("no head of the site's trail has been witnessed at the hub yet".into());
            return req("SR 3.9", IEC_3_3, TITLE, Status::Partly, reasons, vec![]);
        }
        Trail::Witnessed(Some(w)) if !w.signature_ok => {
            reasons.push(format!(
                "the head of the trail the hub holds (#{}) does not verify with the site's audit key",
                w.seq
            ));
            return req("SR 3.9", IEC_3_3, TITLE, Status::NotMet, reasons, vec![]);
        }
        Trail::Witnessed(Some(w)) => {
            reasons.push(format!(
                "entry #{} of the site's hash-chained, signed trail is anchored at the hub (witnessed {}, signature \
                 valid with the site's audit key): a plant whose trail goes back or differs is refused and recorded \
                 as a violation",
                w.seq,
                w.at.format("%Y-%m-%d %H:%M UTC")
            ));
            return req("SR 3.9", IEC_3_3, TITLE, Status::Met, reasons, vec![]);
        }
    };
    let problems = i.trail.problems();
    if !problems.is_empty() {
        reasons.push(format!("the audit trail failed verification: {} problem(s)", problems.len()));
        reasons.extend(problems.iter().take(20).cloned());
        return req("SR 3.9", IEC_3_3, TITLE, Status::NotMet, reasons, files);
    }
    reasons.push(format!(
        "every entry hash-chained to the one before and signed with the site key (Ed25519); {} entr(ies) \
         verified when this pack was made",
        entries.len()
    ));
    let status = match &i.hub {
        Some(HubAnchor { hub, witnessed_seq: Some(seq), .. }) => {
            reasons
                .push(format!("entry #{seq} of the trail is anchored at the hub {hub}: a rollback would be refused"));
            Status::Met
        }
        Some(HubAnchor { hub, .. }) => {
            reasons.push(format!("enrolled with the hub {hub}, but no head of the trail was witnessed there yet"));
            Status::Partly
        }
        None => {
            reasons.push("not enrolled with a hub: no copy of the trail's head is kept off site".into());
            Status::Partly
        }
    };
    req("SR 3.9", IEC_3_3, TITLE, status, reasons, files)
}

fn identification(i: &Inputs<'_>, period: &[&SignedEntry]) -> Requirement {
    let files = vec!["users.csv", "audit.csv"];
    if i.users.is_empty() {
        return req(
            "SR 1.1",
            IEC_3_3,
            "Human user identification and authentication",
            Status::NotMet,
            vec!["the site has no user accounts: every entry names a typed, unauthenticated name".into()],
            files,
        );
    }
    let unauthenticated = period.iter().filter(|s| s.entry.auth.is_none()).count();
    let missing_mfa: Vec<&User> = match i.with_totp {
        Some(with_totp) => i
            .users
            .iter()
            .filter(|u| {
                !u.disabled && (u.has(Role::Approver) || u.has(Role::SiteAdmin)) && !with_totp.contains(&u.name)
            })
            .collect(),
        None => Vec::new(),
    };
    let mut reasons = Vec::new();
    let mut unknown = false;
    if let Trail::Witnessed(w) = i.trail {
        reasons.push(format!("whether every entry was authenticated is not known here: {}", kept_at_plant(w)));
        unknown = true;
    }
    if i.with_totp.is_none() {
        reasons.push("second factors are set up at the plant and are not part of the hub's copy".into());
        unknown = true;
    }
    if unauthenticated > 0 {
        reasons
            .push(format!("{unauthenticated} entr(ies) in the period were written without an authenticated account"));
    }
    if !missing_mfa.is_empty() {
        let list: Vec<&str> = missing_mfa.iter().map(|u| u.name.as_str()).collect();
        reasons.push(format!("approvers or site-admins without a second factor yet: {}", list.join(", ")));
    }
    let enabled = i.users.iter().filter(|u| !u.disabled).count();
    reasons.push(format!(
        "{enabled} enabled account(s); passwords hashed with Argon2id, TOTP for approvers and site-admins, \
         every entry names the account and how it authenticated"
    ));
    let status = if unauthenticated == 0 && missing_mfa.is_empty() && !unknown { Status::Met } else { Status::Partly };
    req("SR 1.1", IEC_3_3, "Human user identification and authentication", status, reasons, files)
}

fn authorization(i: &Inputs<'_>, changes: &[&ChangeRequest]) -> Requirement {
    let files = vec!["users.csv", "changes.csv"];
    let mut broken = Vec::new();
    for c in changes {
        if c.approvals.iter().any(|a| a.by == c.requester) {
            broken.push(format!("{}: approved by its requester {}", c.id, c.requester));
        }
        let distinct: BTreeSet<&str> = c.approvals.iter().map(|a| a.by.as_str()).collect();
        if distinct.len() < c.approvals.len() {
            broken.push(format!("{}: the same person approved twice", c.id));
        }
        let decided = matches!(
            c.state,
            ChangeState::Approved | ChangeState::Implemented | ChangeState::Verified | ChangeState::Closed
        );
        if decided && !c.draft.emergency && c.draft.risk == Risk::High && distinct.len() < 2 {
            broken.push(format!("{}: high risk with {} approver(s)", c.id, distinct.len()));
        }
    }
    let mut reasons = broken.clone();
    let approved = changes.iter().filter(|c| !c.approvals.is_empty()).count();
    reasons.push(format!(
        "roles per account (viewer, engineer, approver, auditor, site-admin) enforced on the command line, the \
         pages and the API; {approved} change request(s) in the period approved, none by its requester{}",
        if broken.is_empty() { "" } else { " (except as listed)" }
    ));
    let status = if i.users.is_empty() {
        reasons.insert(0, "no user accounts: separation of duties rests on typed names".into());
        Status::NotMet
    } else if broken.is_empty() {
        Status::Met
    } else {
        Status::NotMet
    };
    req("SR 2.1", IEC_3_3, "Authorization enforcement", status, reasons, files)
}

fn integrity(i: &Inputs<'_>) -> Requirement {
    let mut problems: Vec<String> = i.blob_problems.to_vec();
    problems.extend(i.trail.problems().iter().filter(|p| !p.contains("audit")).cloned());
    let status = if problems.is_empty() { Status::Met } else { Status::NotMet };
    let mut reasons = vec![format!(
        "{} stored file(s) re-hashed (SHA-256) and the documents' change hashes checked when this pack was made: {}",
        i.blobs_checked,
        if problems.is_empty() { "intact".to_string() } else { format!("{} problem(s)", problems.len()) }
    )];
    reasons.extend(problems.into_iter().take(20));
    req("SR 3.4", IEC_3_3, "Software and information integrity", status, reasons, vec!["integrity.json"])
}

fn change_management(i: &Inputs<'_>, changes: &[&ChangeRequest]) -> Requirement {
    let files = vec!["changes.csv", "reviews.csv"];
    let emergency: Vec<&&ChangeRequest> = changes.iter().filter(|c| c.draft.emergency).collect();
    let unapproved_emergency: Vec<String> = emergency
        .iter()
        .filter(|c| c.implemented.is_some() && c.approvals.len() < c.required_approvals)
        .map(|c| c.id.to_string())
        .collect();
    let reviews = i.view.reviews.iter().filter(|r| r.reviewed_at >= i.from && r.reviewed_at <= i.to).count();
    let mut reasons = Vec::new();
    if !unapproved_emergency.is_empty() {
        reasons.push(format!(
            "emergency change(s) implemented and not yet approved after the fact: {}",
            unapproved_emergency.join(", ")
        ));
    }
    if reviews == 0 {
        reasons.push("no periodic review recorded in the period".into());
    }
    let mut states: BTreeMap<&str, usize> = BTreeMap::new();
    for c in changes {
        *states.entry(c.state.as_str()).or_default() += 1;
    }
    let states: Vec<String> = states.iter().map(|(s, n)| format!("{s} {n}")).collect();
    reasons.push(format!(
        "{} change request(s) in the period (request, risk, approvals, implementation, verification, rollback \
         plan each recorded){}; {} emergency; {reviews} review(s)",
        changes.len(),
        if states.is_empty() { String::new() } else { format!(": {}", states.join(", ")) },
        emergency.len()
    ));
    let status = if unapproved_emergency.is_empty() && reviews > 0 { Status::Met } else { Status::Partly };
    req("SP.06", IEC_2_4, "Configuration management", status, reasons, files)
}

fn backup_restore_process(i: &Inputs<'_>, in_scope: &[&Asset]) -> Requirement {
    let b = backup(i, in_scope);
    let r = recovery(i, in_scope);
    let status = b.status.min(r.status);
    let reasons = vec![
        format!("backups (SR 7.3): {}", b.status.as_str()),
        format!("restore tests (SR 7.4): {}", r.status.as_str()),
    ];
    req("SP.12", IEC_2_4, "Backup and restore", status, reasons, vec!["backups.csv", "restore-tests.csv"])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
    }

    fn status_of(trail: Trail<'_>, id: &str) -> (Status, String) {
        let (view, policy) = (View::default(), Policy::default());
        let e = assess(&Inputs {
            site: "north",
            now: at("2026-12-01T00:00:00Z"),
            from: at("2026-01-01T00:00:00Z"),
            to: at("2026-12-01T00:00:00Z"),
            view: &view,
            policy: &policy,
            users: &[],
            with_totp: None,
            trail,
            blobs_checked: 0,
            blob_problems: &[],
            hub: None,
        });
        let r = e.requirements.into_iter().find(|r| r.id == id).expect("requirement");
        (r.status, r.reasons.join("\n"))
    }

    #[test]
    fn the_hubs_copy_proves_the_trail_only_by_its_witnessed_head() {
        let w = |signature_ok| Some(Witness { seq: 42, at: at("2026-11-30T10:00:00Z"), signature_ok });
        assert_eq!(status_of(Trail::Witnessed(w(true)), "SR 3.9").0, Status::Met);
        let (status, why) = status_of(Trail::Witnessed(w(false)), "SR 3.9");
        assert_eq!(status, Status::NotMet, "{why}");
        assert!(why.contains("#42"), "{why}");
        assert_eq!(status_of(Trail::Witnessed(None), "SR 3.9").0, Status::Partly);
        for id in ["SR 2.8", "SR 2.9"] {
            let (status, why) = status_of(Trail::Witnessed(w(true)), id);
            assert_eq!(status, Status::Partly, "{id}: {why}");
            assert!(why.contains("stay at the plant") && why.contains("#42"), "{id}: {why}");
        }
        // The site's own trail, empty and intact, meets them.
        let kept = Trail::Kept { entries: &[], problems: &[] };
        assert_eq!(status_of(kept, "SR 2.8").0, Status::Met);
        let broken = ["audit entry 3: signature does not verify".to_string()];
        assert_eq!(status_of(Trail::Kept { entries: &[], problems: &broken }, "SR 3.9").0, Status::NotMet);
    }
}
