//! Central approvals: changes a plant may implement only after the hub's security officer approved exactly
//! their content.
//!
//! Which changes need one is the site's policy: a change-request template's `[change]` table names a risk
//! and/or an asset criticality (`central_approval = { risk = "high", criticality = "critical" }`); a change
//! at or above either needs the hub's decision ([`needs`]). The hub writes each decision into a document only
//! it may write, addressed to the site (`hub/to/<site-id>/approvals`, collection `central_decisions`, keyed by
//! change id; a new decision replaces the last), signed with its publishing key over the site, the change and
//! the SHA-256 of the change's content ([`content_hash`]). The plant verifies the signature with the key it
//! pinned at enrollment and refuses to implement until it holds an approval for the content the change has now
//! ([`state`]): an edit after the approval makes it stale. An emergency change may be implemented first and
//! waits for a retrospective decision, flagged.
//!
//! Waivers the policy marks as central (`central_approval = { waivers = true }` or `waivers = ["template-id"]`)
//! go the same way ([`waiver_state`]): the hub signs a decision over the waiver's request
//! ([`waiver_content_hash`]), under another first line than a change's so one can never pass for the other,
//! and the waiver covers its rule at the plant only with both the plant's approval and the hub's.

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::change::{ChangeDraft, ChangeRequest};
use crate::ids::DocId;
use crate::model::Criticality;
pub use crate::policy::{CentralRule, CentralWaivers};
use crate::waiver::Waiver;
use crate::ChangeId;

/// Name of a site's document of central decisions, `hub/to/<site-id>/approvals`.
pub const DECISIONS_DOC: &str = "approvals";

/// The id of the hub's document of central decisions for one site.
pub fn decisions_doc(site_id: &str) -> DocId {
    DocId::hub_for(site_id, DECISIONS_DOC)
}

/// Whether a change needs a central approval under `rule`, given the criticality of each of its assets.
pub fn needs(rule: Option<&CentralRule>, draft: &ChangeDraft, criticalities: &[Criticality]) -> bool {
    let Some(rule) = rule else { return false };
    rule.risk.is_some_and(|r| draft.risk >= r)
        || rule.criticality.is_some_and(|c| criticalities.iter().any(|a| *a >= c))
}

/// SHA-256 (hex) of what a change asks for: every field of its request. An approval covers this and nothing
/// else.
pub fn content_hash(draft: &ChangeDraft) -> String {
    let mut h = Sha256::new();
    h.update(b"datum-change-content/1\n");
    h.update(serde_json::to_vec(draft).unwrap_or_default());
    hex::encode(h.finalize())
}

/// What a central decision is about: a change request, or a waiver (keyed by its id in
/// `central_decisions`, `CR-0007` or `W-0001`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Subject {
    Change { change: ChangeId },
    Waiver { waiver: String },
}

impl Subject {
    /// The decision's key in `central_decisions`.
    pub fn key(&self) -> String {
        match self {
            Subject::Change { change } => change.to_string(),
            Subject::Waiver { waiver } => waiver.clone(),
        }
    }

    /// The first line of the signed message: a decision on a change never verifies as one on a waiver.
    fn domain(&self) -> &'static str {
        match self {
            Subject::Change { .. } => "datum-central-decision/1",
            Subject::Waiver { .. } => "datum-central-waiver/1",
        }
    }
}

/// The hub's decision on one change or waiver of one site (`central_decisions`, key: [`Subject::key`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CentralDecision {
    #[serde(flatten)]
    pub subject: Subject,
    /// [`content_hash`] of the change (or [`waiver_content_hash`] of the waiver) as the officer saw it.
    pub content: String,
    pub approved: bool,
    pub reason: String,
    /// The hub account that decided.
    pub by: String,
    pub at: DateTime<Utc>,
    /// Ed25519 over [`CentralDecision::message`] for this site, hex.
    pub signature: String,
}

impl CentralDecision {
    pub const COLLECTION: &'static str = "central_decisions";

    /// What the signature covers: the site too, so a decision cannot be replayed to another one.
    pub fn message(&self, site_id: &str) -> Vec<u8> {
        format!(
            "{}\n{site_id}\n{}\n{}\n{}\n{}\n{}\n{}\n",
            self.subject.domain(),
            self.subject.key(),
            self.content,
            self.approved,
            self.by,
            self.at.to_rfc3339(),
            self.reason.replace('\n', " ")
        )
        .into_bytes()
    }

    pub fn signed(mut self, site_id: &str, key: &SigningKey) -> CentralDecision {
        self.signature = hex::encode(key.sign(&self.message(site_id)).to_bytes());
        self
    }

    pub fn verify(&self, site_id: &str, key: &VerifyingKey) -> bool {
        let Ok(bytes) = hex::decode(&self.signature) else { return false };
        let Ok(sig) = Signature::from_slice(&bytes) else { return false };
        key.verify(&self.message(site_id), &sig).is_ok()
    }
}

/// SHA-256 (hex) of what a waiver asks for: its request (id, template, rule, asset, reason, expiry, requester),
/// not its later state, so the plant's own approval does not make a central one stale.
pub fn waiver_content_hash(w: &Waiver) -> String {
    #[derive(Serialize)]
    struct Asked<'a> {
        id: &'a str,
        template: &'a str,
        version: &'a str,
        rule: &'a str,
        asset: &'a str,
        reason: &'a str,
        expires: DateTime<Utc>,
        requester: &'a str,
        requested_at: DateTime<Utc>,
    }
    let asked = Asked {
        id: &w.id,
        template: &w.template,
        version: &w.version,
        rule: &w.rule,
        asset: w.asset.as_str(),
        reason: &w.reason,
        expires: w.expires,
        requester: &w.requester,
        requested_at: w.requested_at,
    };
    let mut h = Sha256::new();
    h.update(b"datum-waiver-content/1\n");
    h.update(serde_json::to_vec(&asked).unwrap_or_default());
    hex::encode(h.finalize())
}

/// Where a change stands with the hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum CentralState {
    /// The site's policy asks for no central approval of this change.
    NotNeeded,
    /// Needed and not decided yet.
    Pending,
    /// Approved for the content the change has now.
    Approved {
        by: String,
        at: DateTime<Utc>,
    },
    /// Approved, but for other content: the change was edited since.
    Stale {
        by: String,
        at: DateTime<Utc>,
    },
    Rejected {
        by: String,
        reason: String,
    },
    /// A decision whose signature does not hold (altered after the hub signed it, or for another site).
    Invalid,
}

impl CentralState {
    pub fn as_str(&self) -> &'static str {
        match self {
            CentralState::NotNeeded => "not-needed",
            CentralState::Pending => "pending",
            CentralState::Approved { .. } => "approved",
            CentralState::Stale { .. } => "stale",
            CentralState::Rejected { .. } => "rejected",
            CentralState::Invalid => "invalid",
        }
    }

    /// Whether a plant may implement the change (or rely on the waiver) as far as the hub is concerned.
    pub fn allows_implementation(&self) -> bool {
        matches!(self, CentralState::NotNeeded | CentralState::Approved { .. })
    }
}

/// The central state of `change` at `site_id`, given whether its policy needs one, the hub's decision (if
/// any) and the hub's key (`None`: the plant pinned none, so nothing can be verified).
pub fn state(
    change: &ChangeRequest,
    needed: bool,
    decision: Option<&CentralDecision>,
    site_id: &str,
    key: Option<&VerifyingKey>,
) -> CentralState {
    let subject = Subject::Change { change: change.id };
    judge(&subject, &content_hash(&change.draft), needed, decision, site_id, key)
}

/// The central state of a waiver, as [`state`] for a change: a waiver the policy sends to the hub covers its
/// rule only once the hub approved exactly its request.
pub fn waiver_state(
    waiver: &Waiver,
    needed: bool,
    decision: Option<&CentralDecision>,
    site_id: &str,
    key: Option<&VerifyingKey>,
) -> CentralState {
    let subject = Subject::Waiver { waiver: waiver.id.clone() };
    judge(&subject, &waiver_content_hash(waiver), needed, decision, site_id, key)
}

fn judge(
    subject: &Subject,
    content: &str,
    needed: bool,
    decision: Option<&CentralDecision>,
    site_id: &str,
    key: Option<&VerifyingKey>,
) -> CentralState {
    if !needed {
        return CentralState::NotNeeded;
    }
    let Some(d) = decision.filter(|d| d.subject == *subject) else { return CentralState::Pending };
    if !key.is_some_and(|k| d.verify(site_id, k)) {
        return CentralState::Invalid;
    }
    if !d.approved {
        return CentralState::Rejected { by: d.by.clone(), reason: d.reason.clone() };
    }
    if d.content != content {
        return CentralState::Stale { by: d.by.clone(), at: d.at };
    }
    CentralState::Approved { by: d.by.clone(), at: d.at }
}

/// Why a plant may not implement a change, in words for the engineer; `None` when it may.
pub fn refusal(change: &ChangeRequest, state: &CentralState, rule: Option<&CentralRule>) -> Option<String> {
    let why = rule.map(|r| r.describe()).unwrap_or_default();
    let id = change.id;
    match state {
        CentralState::NotNeeded | CentralState::Approved { .. } => None,
        CentralState::Pending => Some(format!(
            "{id} needs a central approval from the hub before it is implemented (the site's policy: {why}); it is \
             in the hub's inbox, and the decision arrives with the next sync"
        )),
        CentralState::Stale { by, .. } => Some(format!(
            "{id} was approved centrally by {by} for other content: it changed since, and needs a new central approval"
        )),
        CentralState::Rejected { by, reason } => Some(format!("{id} was rejected centrally by {by}: {reason}")),
        CentralState::Invalid => Some(format!(
            "{id}: the central decision received does not verify with the hub's key (altered, or for another site); \
             it is ignored"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::{ChangeState, Stamp};
    use crate::model::Risk;
    use crate::AssetName;

    fn draft(risk: Risk) -> ChangeDraft {
        ChangeDraft {
            title: "swap the firmware".into(),
            reason: "vendor advisory".into(),
            assets: vec![AssetName::new("plc-1").expect("name")],
            risk,
            impact: "line stops".into(),
            rollback: "old firmware".into(),
            test_plan: None,
            window_from: None,
            window_to: None,
            emergency: false,
            policy_approvals: None,
            checklist: Vec::new(),
        }
    }

    fn change(risk: Risk) -> ChangeRequest {
        ChangeRequest {
            id: ChangeId(7),
            draft: draft(risk),
            requester: "eng".into(),
            created_at: DateTime::UNIX_EPOCH,
            state: ChangeState::Approved,
            approvals: vec![Stamp { by: "appr".into(), at: DateTime::UNIX_EPOCH, text: None }],
            required_approvals: 1,
            submitted: None,
            rejected: None,
            implemented: None,
            captures: Vec::new(),
            verified: None,
            verified_versions: Vec::new(),
            closed: None,
            cancelled: None,
            n_events: 3,
        }
    }

    fn decision(c: &ChangeRequest, approved: bool, key: &SigningKey, site: &str) -> CentralDecision {
        CentralDecision {
            subject: Subject::Change { change: c.id },
            content: content_hash(&c.draft),
            approved,
            reason: "reviewed".into(),
            by: "officer".into(),
            at: DateTime::UNIX_EPOCH,
            signature: String::new(),
        }
        .signed(site, key)
    }

    #[test]
    fn the_rule_names_risk_and_criticality_thresholds_and_the_stricter_wins() {
        let rule = CentralRule { risk: Some(Risk::High), criticality: Some(Criticality::Critical), waivers: None };
        assert!(needs(Some(&rule), &draft(Risk::High), &[Criticality::Low]));
        assert!(!needs(Some(&rule), &draft(Risk::Medium), &[Criticality::High]));
        assert!(needs(Some(&rule), &draft(Risk::Low), &[Criticality::Low, Criticality::Critical]));
        assert!(!needs(None, &draft(Risk::High), &[Criticality::Critical]));
        let other = CentralRule { risk: Some(Risk::Medium), criticality: None, waivers: None };
        assert_eq!(
            rule.clone().stricter(other),
            CentralRule { risk: Some(Risk::Medium), criticality: Some(Criticality::Critical), waivers: None }
        );
        assert_eq!(rule.describe(), "risk high or above, or an asset of criticality critical or above");
    }

    #[test]
    fn only_a_signed_approval_of_the_present_content_for_this_site_allows_implementation() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let public = key.verifying_key();
        let c = change(Risk::High);
        let ok = decision(&c, true, &key, "site-a");
        assert_eq!(state(&c, false, None, "site-a", Some(&public)), CentralState::NotNeeded);
        assert_eq!(state(&c, true, None, "site-a", Some(&public)), CentralState::Pending);
        assert!(state(&c, true, Some(&ok), "site-a", Some(&public)).allows_implementation());
        // Replayed to another site, altered, signed by another key, or no key pinned: invalid.
        assert_eq!(state(&c, true, Some(&ok), "site-b", Some(&public)), CentralState::Invalid);
        let mut altered = ok.clone();
        altered.by = "someone-else".into();
        assert_eq!(state(&c, true, Some(&altered), "site-a", Some(&public)), CentralState::Invalid);
        let forged = decision(&c, true, &SigningKey::from_bytes(&[8; 32]), "site-a");
        assert_eq!(state(&c, true, Some(&forged), "site-a", Some(&public)), CentralState::Invalid);
        assert_eq!(state(&c, true, Some(&ok), "site-a", None), CentralState::Invalid);
        // The change edited after the approval: stale.
        let mut edited = c.clone();
        edited.draft.rollback = "something else".into();
        let stale = state(&edited, true, Some(&ok), "site-a", Some(&public));
        assert_eq!(stale.as_str(), "stale");
        assert!(refusal(&edited, &stale, None).is_some_and(|r| r.contains("new central approval")));
        // Rejected: refused with the reason.
        let no = decision(&c, false, &key, "site-a");
        let rejected = state(&c, true, Some(&no), "site-a", Some(&public));
        assert!(!rejected.allows_implementation());
        assert!(refusal(&c, &rejected, None).is_some_and(|r| r.contains("reviewed")));
        // A decision about another change does not count.
        let mut other = ok.clone();
        other.subject = Subject::Change { change: ChangeId(8) };
        assert_eq!(state(&c, true, Some(&other), "site-a", Some(&public)), CentralState::Pending);
    }

    fn waiver() -> Waiver {
        use crate::waiver::{apply, WaiverAction, WaiverEvent};
        let at = DateTime::UNIX_EPOCH + chrono::Duration::days(20_000);
        let request = WaiverEvent {
            waiver: "W-0003".into(),
            seq: 1,
            at,
            actor: "alice".into(),
            action: WaiverAction::Request {
                template: "ios-hardening".into(),
                version: "1.0.0".into(),
                rule: "IOS-02".into(),
                asset: AssetName::new("RTR-2").expect("name"),
                reason: "HTTP server needed until the historian moves".into(),
                expires: at + chrono::Duration::days(60),
            },
        };
        apply(None, &request).expect("request")
    }

    #[test]
    fn a_waiver_needs_the_hubs_signed_approval_of_its_request_and_a_changes_decision_never_counts_for_it() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let public = key.verifying_key();
        let w = waiver();
        let approve = |w: &Waiver, approved: bool| {
            CentralDecision {
                subject: Subject::Waiver { waiver: w.id.clone() },
                content: waiver_content_hash(w),
                approved,
                reason: "compensating control: the port is closed at the firewall".into(),
                by: "officer".into(),
                at: DateTime::UNIX_EPOCH,
                signature: String::new(),
            }
            .signed("site-a", &key)
        };
        let ok = approve(&w, true);
        assert_eq!(waiver_state(&w, false, None, "site-a", Some(&public)), CentralState::NotNeeded);
        assert_eq!(waiver_state(&w, true, None, "site-a", Some(&public)), CentralState::Pending);
        assert!(waiver_state(&w, true, Some(&ok), "site-a", Some(&public)).allows_implementation());
        assert_eq!(waiver_state(&w, true, Some(&ok), "site-b", Some(&public)), CentralState::Invalid);
        // The plant's own approval afterwards changes its state, not its request: the approval holds.
        let mut decided = w.clone();
        decided.state = crate::waiver::WaiverState::Approved;
        decided.decided_by = Some("bob".into());
        assert!(waiver_state(&decided, true, Some(&ok), "site-a", Some(&public)).allows_implementation());
        // Another expiry is another request: stale.
        let mut longer = w.clone();
        longer.expires += chrono::Duration::days(30);
        assert_eq!(waiver_state(&longer, true, Some(&ok), "site-a", Some(&public)).as_str(), "stale");
        // A rejection is kept with its reason.
        let no = approve(&w, false);
        assert_eq!(waiver_state(&w, true, Some(&no), "site-a", Some(&public)).as_str(), "rejected");
        // A change's approval re-labelled as the waiver's, with the same signature, does not verify.
        let c = change(Risk::High);
        let for_change = decision(&c, true, &key, "site-a");
        let mut relabelled = for_change.clone();
        relabelled.subject = Subject::Waiver { waiver: w.id.clone() };
        relabelled.content = waiver_content_hash(&w);
        assert_eq!(waiver_state(&w, true, Some(&relabelled), "site-a", Some(&public)), CentralState::Invalid);
        // Stored and read back: each subject keeps its key and shape.
        let json = serde_json::to_value(&ok).expect("json");
        assert_eq!(json["waiver"], "W-0003");
        assert!(json.get("change").is_none());
        let back: CentralDecision = serde_json::from_value(json).expect("read back");
        assert_eq!(back, ok);
        let json = serde_json::to_value(&for_change).expect("json");
        assert_eq!(json["change"], "CR-0007", "{json}");
        assert_eq!(serde_json::from_value::<CentralDecision>(json).expect("read back"), for_change);
    }

    #[test]
    fn the_policy_names_all_waivers_or_those_of_some_templates_and_the_union_wins() {
        let of = |t: &[&str]| CentralRule {
            waivers: Some(CentralWaivers::Of(t.iter().map(|s| s.to_string()).collect())),
            ..CentralRule::default()
        };
        let all = CentralRule { waivers: Some(CentralWaivers::All(true)), ..CentralRule::default() };
        assert!(all.covers_waiver("anything"));
        assert!(of(&["ios-hardening"]).covers_waiver("ios-hardening"));
        assert!(!of(&["ios-hardening"]).covers_waiver("linux-ssh"));
        assert!(!CentralRule::default().covers_waiver("ios-hardening"));
        let both = of(&["linux-ssh"]).stricter(of(&["ios-hardening", "linux-ssh"]));
        assert_eq!(both, of(&["ios-hardening", "linux-ssh"]));
        assert!(of(&["a"]).stricter(all.clone()).covers_waiver("z"));
        let none = CentralRule { waivers: Some(CentralWaivers::All(false)), ..CentralRule::default() };
        assert!(none.is_empty());
        assert!(!of(&[]).stricter(none).covers_waiver("a"));
        assert_eq!(of(&["ios-hardening"]).describe_waivers(), "waivers of ios-hardening");
        let parsed: CentralRule = toml::from_str("waivers = true\nrisk = \"high\"").expect("toml");
        assert!(parsed.covers_waiver("x"));
        let parsed: CentralRule = toml::from_str("waivers = [\"ios-hardening\"]").expect("toml");
        assert!(parsed.covers_waiver("ios-hardening") && !parsed.covers_waiver("x"));
        assert!(toml::from_str::<CentralRule>("waivers = \"yes\"").is_err());
    }
}
