//! Change requests: an append-only event log per change, folded by one deterministic reducer.
//!
//! Every state transition is an event (`ChangeEvent`) stored in the site's change-log document. The
//! current state of a change is never stored; it is always `fold`ed from the events, so every replica
//! (the edge, later the hub) computes the same answer. `apply` is the single place the rules live:
//!
//! - the requester never approves or rejects their own change;
//! - high-risk changes need two distinct approvers, others one;
//! - a rejected change is final: no approval after a rejection;
//! - a normal change is implemented only after approval; an emergency change may be implemented first and is
//!   flagged until its approvals arrive (`Policy::emergency_approval_hours`, 72 h by default);
//! - verification needs the approvals complete and makes the verified versions the new baselines.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{AssetName, ChangeId, SlotName};
use crate::model::{BlobHash, Risk};
use crate::policy::Policy;

/// A reference to one stored configuration version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VersionRef {
    pub asset: AssetName,
    pub slot: SlotName,
    pub version: u32,
    pub raw_hash: BlobHash,
}

impl fmt::Display for VersionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} v{}", self.asset, self.slot, self.version)
    }
}

/// What happened to a change request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum ChangeAction {
    Create(ChangeDraft),
    Submit,
    Approve {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    Reject {
        reason: String,
    },
    Implement {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        captures: Vec<VersionRef>,
        /// The implementer confirmed every item of the change's checklist done.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        checklist_done: bool,
    },
    Verify {
        checked: Vec<VersionRef>,
        /// What templates enforced as `warn` found newly non-compliant in the verified captures.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
    },
    Close,
    Cancel {
        reason: String,
    },
    /// New content for a change not yet implemented: every approval given so far is withdrawn (it approved the
    /// old content) and the change goes back to draft, to be submitted again.
    Amend(ChangeDraft),
}

impl ChangeAction {
    pub fn verb(&self) -> &'static str {
        match self {
            ChangeAction::Create(_) => "create",
            ChangeAction::Submit => "submit",
            ChangeAction::Approve { .. } => "approve",
            ChangeAction::Reject { .. } => "reject",
            ChangeAction::Implement { .. } => "implement",
            ChangeAction::Verify { .. } => "verify",
            ChangeAction::Close => "close",
            ChangeAction::Cancel { .. } => "cancel",
            ChangeAction::Amend(_) => "amend",
        }
    }
}

/// The content of a new change request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeDraft {
    pub title: String,
    pub reason: String,
    pub assets: Vec<AssetName>,
    pub risk: Risk,
    pub impact: String,
    pub rollback: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_plan: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_from: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_to: Option<DateTime<Utc>>,
    pub emergency: bool,
    /// Distinct approvers needed, as the site's policy said when the change was created (a policy template
    /// may ask for more than the built-in [`required_approvals`]); absent in changes created before policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_approvals: Option<usize>,
    /// Items the implementer confirms done at implementation (from the site's change-request templates when
    /// the change was created).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checklist: Vec<String>,
}

/// One event of a change's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEvent {
    pub change: ChangeId,
    /// 1, 2, 3… within the change.
    pub seq: u32,
    pub at: DateTime<Utc>,
    pub actor: String,
    #[serde(flatten)]
    pub action: ChangeAction,
}

impl ChangeEvent {
    /// The collection of change events (in the `changes/<YYYY>` documents).
    pub const COLLECTION: &'static str = "change_events";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeState {
    Draft,
    Submitted,
    Approved,
    Implemented,
    Verified,
    Closed,
    Rejected,
    Cancelled,
}

impl ChangeState {
    pub const ALL: [ChangeState; 8] = [
        ChangeState::Draft,
        ChangeState::Submitted,
        ChangeState::Approved,
        ChangeState::Implemented,
        ChangeState::Verified,
        ChangeState::Closed,
        ChangeState::Rejected,
        ChangeState::Cancelled,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeState::Draft => "draft",
            ChangeState::Submitted => "submitted",
            ChangeState::Approved => "approved",
            ChangeState::Implemented => "implemented",
            ChangeState::Verified => "verified",
            ChangeState::Closed => "closed",
            ChangeState::Rejected => "rejected",
            ChangeState::Cancelled => "cancelled",
        }
    }
    pub fn is_open(self) -> bool {
        !matches!(self, ChangeState::Closed | ChangeState::Rejected | ChangeState::Cancelled)
    }
}

impl fmt::Display for ChangeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ChangeState {
    type Err = crate::model::ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        ChangeState::ALL.into_iter().find(|c| c.as_str() == wanted).ok_or_else(|| crate::model::ParseEnumError {
            what: "state",
            value: s.to_string(),
            allowed: ChangeState::ALL.map(|c| c.as_str()).join(", "),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub by: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// The folded state of one change request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRequest {
    pub id: ChangeId,
    #[serde(flatten)]
    pub draft: ChangeDraft,
    pub requester: String,
    pub created_at: DateTime<Utc>,
    pub state: ChangeState,
    pub approvals: Vec<Stamp>,
    pub required_approvals: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted: Option<Stamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<Stamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub implemented: Option<Stamp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub captures: Vec<VersionRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<Stamp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verified_versions: Vec<VersionRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<Stamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled: Option<Stamp>,
    /// Number of events folded into this state.
    pub n_events: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("{change} already exists")]
    AlreadyExists { change: ChangeId },
    #[error("{change} does not exist")]
    Unknown { change: ChangeId },
    #[error("{change}: {actor} requested this change and cannot {verb} it; another person must")]
    OwnDecision { change: ChangeId, actor: String, verb: &'static str },
    #[error("{change}: {actor} has already approved it; a second approval must come from someone else")]
    DuplicateApproval { change: ChangeId, actor: String },
    #[error("{change} was rejected by {by}; a rejected change cannot be approved or implemented, raise a new one")]
    WasRejected { change: ChangeId, by: String },
    #[error("{change}: confirm its checklist done to record the implementation (--checklist-done):\n  - {}", .items.join("\n  - "))]
    Checklist { change: ChangeId, items: Vec<String> },
    #[error("{change} is {state}; cannot {verb} it{hint}")]
    BadState { change: ChangeId, state: ChangeState, verb: &'static str, hint: &'static str },
    #[error("{change}: approvals incomplete ({have} of {need}); cannot {verb} before approval")]
    NotApproved { change: ChangeId, have: usize, need: usize, verb: &'static str },
    #[error("{change}: {field} must not be empty")]
    MissingField { change: ChangeId, field: &'static str },
    #[error("{change}: event {seq} is out of order (expected {expected})")]
    OutOfOrder { change: ChangeId, seq: u32, expected: u32 },
}

/// Names of people are compared in their Unicode normal form without case and blanks: `Alice`, `alice ` and
/// the full-width `ａｌｉｃｅ` are one person for separation of duties (`person::comparison_key`).
pub fn same_person(a: &str, b: &str) -> bool {
    crate::person::comparison_key(a) == crate::person::comparison_key(b)
}

/// How many distinct approvers a change of this risk needs.
pub fn required_approvals(risk: Risk) -> usize {
    match risk {
        Risk::High => 2,
        Risk::Low | Risk::Medium => 1,
    }
}

impl ChangeRequest {
    pub fn approvals_complete(&self) -> bool {
        self.approvals.len() >= self.required_approvals
    }

    /// An emergency change that was implemented without its approvals.
    pub fn awaiting_retrospective_approval(&self) -> bool {
        self.draft.emergency && self.implemented.is_some() && !self.approvals_complete() && self.state.is_open()
    }

    /// When the retrospective approval of an emergency change is due.
    pub fn retrospective_approval_due(&self, policy: &Policy) -> Option<DateTime<Utc>> {
        if !self.awaiting_retrospective_approval() {
            return None;
        }
        self.implemented.as_ref().map(|s| s.at + policy.emergency_approval_window())
    }

    /// Has the change's window (if it has one) ended before the change was verified?
    pub fn window_ended(&self, now: DateTime<Utc>) -> bool {
        self.draft.window_to.is_some_and(|end| now > end) && self.verified.is_none()
    }

    /// For an emergency change: when its approvals became complete, if that was after the approval window.
    pub fn approved_late(&self, policy: &Policy) -> Option<DateTime<Utc>> {
        let implemented = self.implemented.as_ref()?;
        if !self.draft.emergency || !self.approvals_complete() {
            return None;
        }
        let completed = self.approvals.get(self.required_approvals.saturating_sub(1))?.at;
        (completed > implemented.at + policy.emergency_approval_window()).then_some(completed)
    }

    /// Flags a person should see next to the change.
    pub fn flags(&self, now: DateTime<Utc>, policy: &Policy) -> Vec<String> {
        let mut flags = Vec::new();
        if let Some(at) = self.approved_late(policy) {
            flags.push(format!(
                "emergency change approved late: approvals completed {}, more than {} h after implementation",
                at.to_rfc3339(),
                policy.emergency_approval_hours
            ));
        }
        if self.window_ended(now) && self.state.is_open() {
            if let Some(end) = self.draft.window_to {
                flags.push(format!("change window ended {} before verification", end.to_rfc3339()));
            }
        }
        if let Some(due) = self.retrospective_approval_due(policy) {
            if now > due {
                flags.push(format!("emergency change not approved retrospectively; was due {}", due.to_rfc3339()));
            } else {
                flags.push(format!("emergency change awaiting retrospective approval until {}", due.to_rfc3339()));
            }
        }
        flags
    }

    /// Does this change authorize a configuration of `asset` at time `now`?
    ///
    /// An approved or implemented change authorizes its assets' new configurations until it is verified (at
    /// which point the configurations become the baseline). An emergency change authorizes them until its
    /// retrospective approval is overdue.
    pub fn authorizes(&self, asset: &AssetName, now: DateTime<Utc>, policy: &Policy) -> bool {
        if !self.draft.assets.contains(asset) {
            return false;
        }
        match self.state {
            ChangeState::Approved | ChangeState::Implemented if self.window_ended(now) => false,
            ChangeState::Approved | ChangeState::Implemented | ChangeState::Verified | ChangeState::Closed => {
                match self.retrospective_approval_due(policy) {
                    Some(due) => now <= due,
                    None => true,
                }
            }
            ChangeState::Draft | ChangeState::Submitted => {
                // Only an emergency change that is already implemented; otherwise nothing is authorized yet.
                self.draft.emergency
                    && self.implemented.is_some()
                    && self.retrospective_approval_due(policy).is_some_and(|due| now <= due)
            }
            ChangeState::Rejected | ChangeState::Cancelled => false,
        }
    }

    /// May captures be linked to this change (`config capture --change`)?
    pub fn accepts_captures(&self) -> Result<(), ChangeError> {
        let ok = match self.state {
            ChangeState::Approved => true,
            ChangeState::Draft | ChangeState::Submitted => self.draft.emergency,
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(ChangeError::BadState {
                change: self.id,
                state: self.state,
                verb: "link captures to",
                hint: " (captures link only to approved changes, or to emergency changes, before `change implement`)",
            })
        }
    }
}

/// The fields every change request must fill.
fn check_draft(id: ChangeId, draft: &ChangeDraft) -> Result<(), ChangeError> {
    for (field, value) in
        [("title", &draft.title), ("reason", &draft.reason), ("impact", &draft.impact), ("rollback", &draft.rollback)]
    {
        if value.trim().is_empty() {
            return Err(ChangeError::MissingField { change: id, field });
        }
    }
    if draft.assets.is_empty() {
        return Err(ChangeError::MissingField { change: id, field: "assets" });
    }
    Ok(())
}

/// Distinct approvers a change needs: as the policy said when it was created, else by its risk.
fn approvals_needed(draft: &ChangeDraft) -> usize {
    draft.policy_approvals.filter(|n| (1..=5).contains(n)).unwrap_or_else(|| required_approvals(draft.risk))
}

/// Applies one event to the state of its change. `None` means the change does not exist yet.
pub fn apply(current: Option<&ChangeRequest>, event: &ChangeEvent) -> Result<ChangeRequest, ChangeError> {
    let id = event.change;
    let stamp = |text: Option<String>| Stamp { by: event.actor.clone(), at: event.at, text };
    let Some(cr) = current else {
        let ChangeAction::Create(draft) = &event.action else {
            return Err(ChangeError::Unknown { change: id });
        };
        if event.seq != 1 {
            return Err(ChangeError::OutOfOrder { change: id, seq: event.seq, expected: 1 });
        }
        check_draft(id, draft)?;
        return Ok(ChangeRequest {
            id,
            draft: draft.clone(),
            requester: event.actor.clone(),
            created_at: event.at,
            state: ChangeState::Draft,
            approvals: Vec::new(),
            required_approvals: approvals_needed(draft),
            submitted: None,
            rejected: None,
            implemented: None,
            captures: Vec::new(),
            verified: None,
            verified_versions: Vec::new(),
            closed: None,
            cancelled: None,
            n_events: 1,
        });
    };
    let expected = cr.n_events + 1;
    if event.seq != expected {
        return Err(ChangeError::OutOfOrder { change: id, seq: event.seq, expected });
    }
    let bad =
        |verb: &'static str, hint: &'static str| ChangeError::BadState { change: id, state: cr.state, verb, hint };
    let mut next = cr.clone();
    next.n_events = expected;
    let emergency = cr.draft.emergency;
    match &event.action {
        ChangeAction::Create(_) => return Err(ChangeError::AlreadyExists { change: id }),
        ChangeAction::Submit => {
            if cr.state != ChangeState::Draft {
                return Err(bad("submit", ""));
            }
            next.state = ChangeState::Submitted;
            next.submitted = Some(stamp(None));
        }
        ChangeAction::Approve { comment } => {
            if let Some(r) = &cr.rejected {
                return Err(ChangeError::WasRejected { change: id, by: r.by.clone() });
            }
            if same_person(&event.actor, &cr.requester) {
                return Err(ChangeError::OwnDecision { change: id, actor: event.actor.clone(), verb: "approve" });
            }
            if cr.approvals.iter().any(|a| same_person(&a.by, &event.actor)) {
                return Err(ChangeError::DuplicateApproval { change: id, actor: event.actor.clone() });
            }
            let allowed = match cr.state {
                ChangeState::Submitted => true,
                ChangeState::Draft | ChangeState::Implemented => emergency && !cr.approvals_complete(),
                _ => false,
            };
            if !allowed {
                let hint = if cr.state == ChangeState::Draft { " (submit it first)" } else { "" };
                return Err(bad("approve", hint));
            }
            next.approvals.push(stamp(comment.clone()));
            if next.approvals_complete() && matches!(cr.state, ChangeState::Submitted | ChangeState::Draft) {
                next.state = ChangeState::Approved;
            }
        }
        ChangeAction::Reject { reason } => {
            if same_person(&event.actor, &cr.requester) {
                return Err(ChangeError::OwnDecision { change: id, actor: event.actor.clone(), verb: "reject" });
            }
            let allowed = match cr.state {
                ChangeState::Submitted => true,
                ChangeState::Draft | ChangeState::Implemented => emergency && !cr.approvals_complete(),
                _ => false,
            };
            if !allowed {
                return Err(bad("reject", ""));
            }
            if reason.trim().is_empty() {
                return Err(ChangeError::MissingField { change: id, field: "reason" });
            }
            next.state = ChangeState::Rejected;
            next.rejected = Some(stamp(Some(reason.clone())));
        }
        ChangeAction::Implement { note, captures, checklist_done } => {
            if let Some(r) = &cr.rejected {
                return Err(ChangeError::WasRejected { change: id, by: r.by.clone() });
            }
            if !cr.draft.checklist.is_empty() && !checklist_done {
                return Err(ChangeError::Checklist { change: id, items: cr.draft.checklist.clone() });
            }
            match cr.state {
                ChangeState::Approved => {}
                ChangeState::Draft | ChangeState::Submitted if emergency => {}
                ChangeState::Draft | ChangeState::Submitted => {
                    return Err(ChangeError::NotApproved {
                        change: id,
                        have: cr.approvals.len(),
                        need: cr.required_approvals,
                        verb: "implement",
                    })
                }
                _ => return Err(bad("implement", "")),
            }
            next.state = ChangeState::Implemented;
            next.implemented = Some(stamp(note.clone()));
            next.captures = captures.clone();
        }
        ChangeAction::Verify { checked, .. } => {
            if cr.state != ChangeState::Implemented {
                return Err(bad("verify", " (only an implemented change can be verified)"));
            }
            if !cr.approvals_complete() {
                return Err(ChangeError::NotApproved {
                    change: id,
                    have: cr.approvals.len(),
                    need: cr.required_approvals,
                    verb: "verify",
                });
            }
            next.state = ChangeState::Verified;
            next.verified = Some(stamp(None));
            next.verified_versions = checked.clone();
        }
        ChangeAction::Close => {
            if cr.state != ChangeState::Verified {
                return Err(bad("close", " (verify it first)"));
            }
            next.state = ChangeState::Closed;
            next.closed = Some(stamp(None));
        }
        ChangeAction::Cancel { reason } => {
            if !matches!(cr.state, ChangeState::Draft | ChangeState::Submitted | ChangeState::Approved) {
                let hint = if cr.state == ChangeState::Implemented {
                    " (it is already implemented: roll it back under a new change)"
                } else {
                    ""
                };
                return Err(bad("cancel", hint));
            }
            if reason.trim().is_empty() {
                return Err(ChangeError::MissingField { change: id, field: "reason" });
            }
            next.state = ChangeState::Cancelled;
            next.cancelled = Some(stamp(Some(reason.clone())));
        }
        ChangeAction::Amend(draft) => {
            if !matches!(cr.state, ChangeState::Draft | ChangeState::Submitted | ChangeState::Approved) {
                return Err(bad("amend", " (only a change not yet implemented; roll back under a new change)"));
            }
            if draft.emergency != cr.draft.emergency {
                return Err(bad("amend", " (whether it is an emergency change cannot change)"));
            }
            check_draft(id, draft)?;
            next.required_approvals = approvals_needed(draft);
            next.draft = draft.clone();
            next.approvals.clear();
            next.submitted = None;
            next.state = ChangeState::Draft;
        }
    }
    Ok(next)
}

/// An event that could not be applied while folding (possible only with merged histories from several
/// writers). It is kept and shown, never silently dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IgnoredEvent {
    pub seq: u32,
    pub error: String,
}

/// Folds a change's events (in `seq` order) into its state.
pub fn fold(events: &[ChangeEvent]) -> (Option<ChangeRequest>, Vec<IgnoredEvent>) {
    let mut sorted: Vec<&ChangeEvent> = events.iter().collect();
    sorted.sort_by_key(|e| (e.seq, e.at));
    let mut state: Option<ChangeRequest> = None;
    let mut ignored = Vec::new();
    for event in sorted {
        match apply(state.as_ref(), event) {
            Ok(next) => state = Some(next),
            Err(e) => ignored.push(IgnoredEvent { seq: event.seq, error: e.to_string() }),
        }
    }
    (state, ignored)
}

/// The result of checking an implemented change against the newest captures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyOutcome {
    /// The versions that will become baselines.
    pub matched: Vec<VersionRef>,
    /// Human-readable reasons the verification fails; empty on success.
    pub problems: Vec<String>,
}

/// Checks that every affected asset now matches what was implemented.
///
/// `latest` gives, for a linked (asset, slot), the newest stored version. Every asset of the change must have
/// at least one capture linked to it, and the newest capture of each linked slot must have the same content as
/// the implemented version (someone may have changed it again since).
pub fn check_verification(
    cr: &ChangeRequest,
    latest: impl Fn(&AssetName, &SlotName) -> Option<VersionRef>,
) -> VerifyOutcome {
    let mut matched = Vec::new();
    let mut problems = Vec::new();
    for asset in &cr.draft.assets {
        // The newest capture per slot made under this change is what was implemented.
        let mut implemented: Vec<&VersionRef> = cr.captures.iter().filter(|c| &c.asset == asset).collect();
        implemented.sort();
        implemented.reverse();
        implemented.dedup_by(|a, b| a.slot == b.slot);
        if implemented.is_empty() {
            problems.push(format!(
                "{asset}: no capture is linked to {} (capture the new configuration with `config capture {asset} FILE --change {}` before implementing)",
                cr.id, cr.id
            ));
            continue;
        }
        for done in implemented {
            match latest(&done.asset, &done.slot) {
                Some(now) if now.raw_hash == done.raw_hash => matched.push(now),
                Some(now) => problems.push(format!(
                    "{}/{}: the newest capture (v{}) differs from the implemented v{}",
                    done.asset, done.slot, now.version, done.version
                )),
                None => problems.push(format!("{}/{}: no capture found", done.asset, done.slot)),
            }
        }
    }
    VerifyOutcome { matched, problems }
}

#[cfg(test)]
mod tests;
