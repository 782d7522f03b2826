//! Shared templates rolled out from the hub: the signed records the hub writes, what a plant decides from
//! them, and the records a plant writes back (which version it runs, and its compliance).
//!
//! The hub writes two kinds of document (only the hub may, `sync::may_write`):
//!
//! | document                        | collection    | key            | record        | read by        |
//! |---------------------------------|---------------|----------------|---------------|----------------|
//! | `hub/templates`                 | `published`   | `<id>@<ver>`   | [`Published`] | every site     |
//! | `hub/to/<site-id>/templates`    | `assignments` | `<id>`         | [`Assignment`]| that site only |
//!
//! Both carry an Ed25519 signature by the hub's publishing key, which the plant pinned at enrollment: a
//! template altered anywhere after signing (in the hub's database, a backup, a relay) is refused by the plant
//! and the refusal recorded. A plant writes `site/<id>/compliance`: [`TemplateState`] per template
//! (`template_states`) and a [`Summary`] of its latest evaluation (`compliance`), which reach the hub with the
//! next sync. [`decide`] is the whole rule of acceptance, pure.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::DocId;
use crate::normalize::FingerprintKey;
use crate::template::{Enforcement, Template};

/// `hub/templates`: every published template version.
pub const PUBLISHED_DOC: &str = "templates";
/// Name of a site's assignment document, `hub/to/<site-id>/templates`.
pub const ASSIGNMENTS_DOC: &str = "templates";
/// The site's own document of template states and results, `site/<id>/compliance`.
pub const COMPLIANCE_DOC: &str = "compliance";
/// Most failing (asset, rule) pairs a summary lists; the rest are counted.
pub const MAX_LISTED_FAILURES: usize = 1000;

/// The id of the hub's document of published templates.
pub fn published_doc() -> DocId {
    DocId::parse(&format!("hub/{PUBLISHED_DOC}")).expect("a valid constant id")
}

/// The id of the hub's assignments for one site.
pub fn assignments_doc(site_id: &str) -> DocId {
    DocId::hub_for(site_id, ASSIGNMENTS_DOC)
}

/// SHA-256 of a template's text, lower-case hex.
pub fn body_hash(body: &str) -> String {
    hex::encode(Sha256::digest(body.as_bytes()))
}

/// A published, immutable template version (`hub/templates`, collection `published`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Published {
    pub id: String,
    pub version: String,
    pub title: String,
    pub enforcement: Enforcement,
    /// The template file as written (TOML); what the plant parses and evaluates.
    pub body: String,
    /// SHA-256 of `body`.
    pub sha256: String,
    pub published_at: DateTime<Utc>,
    pub published_by: String,
    /// Ed25519 over [`Published::message`], hex.
    pub signature: String,
}

impl Published {
    pub const COLLECTION: &'static str = "published";

    pub fn key(id: &str, version: &str) -> String {
        format!("{id}@{version}")
    }

    /// What the signature covers: the id, version, text hash and date (the text through its hash).
    pub fn message(&self) -> Vec<u8> {
        format!(
            "datum-template/1\n{}\n{}\n{}\n{}\n",
            self.id,
            self.version,
            self.sha256,
            self.published_at.to_rfc3339()
        )
        .into_bytes()
    }

    /// A published record of `template` (already validated) with its text, signed.
    pub fn sign(template: &Template, body: &str, at: DateTime<Utc>, by: &str, key: &SigningKey) -> Published {
        let mut p = Published {
            id: template.id.clone(),
            version: template.version.to_string(),
            title: template.title.clone(),
            enforcement: template.enforcement,
            body: body.to_string(),
            sha256: body_hash(body),
            published_at: at,
            published_by: by.to_string(),
            signature: String::new(),
        };
        p.signature = hex::encode(key.sign(&p.message()).to_bytes());
        p
    }
}

/// A template assigned to one site (`hub/to/<site-id>/templates`, collection `assignments`, key: template id).
/// Unassigning keeps the record with `active = false`, so the plant sees the withdrawal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub template: String,
    /// The published version the site is to run.
    pub version: String,
    /// Parameter values set for this site (over the template's defaults).
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    pub active: bool,
    pub assigned_at: DateTime<Utc>,
    pub assigned_by: String,
    /// Ed25519 over [`Assignment::message`] for this site, hex.
    pub signature: String,
}

impl Assignment {
    pub const COLLECTION: &'static str = "assignments";

    /// What the signature covers: the site, so an assignment cannot be replayed to another one.
    pub fn message(&self, site_id: &str) -> Vec<u8> {
        let params = serde_json::to_string(&self.parameters).unwrap_or_default();
        format!(
            "datum-assignment/1\n{site_id}\n{}\n{}\n{}\n{}\n{params}\n",
            self.template,
            self.version,
            self.active,
            self.assigned_at.to_rfc3339()
        )
        .into_bytes()
    }

    pub fn signed(mut self, site_id: &str, key: &SigningKey) -> Assignment {
        self.signature = hex::encode(key.sign(&self.message(site_id)).to_bytes());
        self
    }
}

fn signature_ok(key: &VerifyingKey, message: &[u8], signature: &str) -> bool {
    let Ok(bytes) = hex::decode(signature) else { return false };
    let Ok(sig) = Signature::from_slice(&bytes) else { return false };
    key.verify(message, &sig).is_ok()
}

/// The hub's publishing key as pinned by a plant (hex of 32 bytes).
pub fn parse_key(hex_key: &str) -> Result<VerifyingKey, String> {
    let bytes: [u8; 32] = hex::decode(hex_key.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| "the hub publishing key is not 32 bytes of hex".to_string())?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| format!("the hub publishing key is not valid: {e}"))
}

/// What a plant makes of one assignment.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Assigned, but the version has not arrived yet.
    Waiting,
    /// Withdrawn by the hub.
    Unassigned,
    /// Refused, with the reason (recorded at the plant and reported to the hub).
    Rejected(String),
    /// Signed by the pinned key, unaltered, valid, its examples giving their stated results: it can run, with
    /// these parameter values.
    Verified { template: Box<Template>, published: Box<Published>, params: BTreeMap<String, String> },
    /// Verified, but the template asks for local acceptance and no site approver has accepted this version
    /// here yet ([`await_acceptance`]): the earlier version goes on running.
    Pending { template: Box<Template>, published: Box<Published>, params: BTreeMap<String, String> },
}

/// A site approver's acceptance of one published version (`site/<id>/compliance`, collection
/// `template_acceptances`, key `<id>@<version>`), for templates with `acceptance = "local"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acceptance {
    pub template: String,
    pub version: String,
    /// SHA-256 of the text accepted: an acceptance holds for exactly that text.
    pub sha256: String,
    pub accepted_by: String,
    pub accepted_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl Acceptance {
    pub const COLLECTION: &'static str = "template_acceptances";
}

/// A verified template that asks for local acceptance runs only once accepted here, for exactly its text;
/// every other decision is unchanged.
pub fn await_acceptance(decision: Decision, accepted: Option<&Acceptance>) -> Decision {
    match decision {
        Decision::Verified { template, published, params } if template.local_acceptance => {
            let ok = accepted.is_some_and(|a| {
                a.template == published.id && a.version == published.version && a.sha256 == published.sha256
            });
            if ok {
                Decision::Verified { template, published, params }
            } else {
                Decision::Pending { template, published, params }
            }
        }
        other => other,
    }
}

/// Decides an assignment from the hub: the whole rule of acceptance. `key` is the publishing key pinned at
/// enrollment (`None`: the plant enrolled before keys were pinned; nothing can be verified).
pub fn decide(
    site_id: &str,
    assignment: &Assignment,
    published: Option<&Published>,
    key: Option<&VerifyingKey>,
    fingerprint: &FingerprintKey,
) -> Decision {
    let Some(key) = key else {
        return Decision::Rejected(
            "no hub publishing key is pinned here (enrolled before templates existed): re-enroll the node to \
             accept templates"
                .into(),
        );
    };
    if !signature_ok(key, &assignment.message(site_id), &assignment.signature) {
        return Decision::Rejected(
            "the assignment's signature does not verify with the hub key pinned at enrollment".into(),
        );
    }
    if !assignment.active {
        return Decision::Unassigned;
    }
    let Some(p) = published else { return Decision::Waiting };
    if p.id != assignment.template || p.version != assignment.version {
        return Decision::Rejected(format!(
            "the published record {}@{} is not the assigned {}@{}",
            p.id, p.version, assignment.template, assignment.version
        ));
    }
    let template = match verify_published(p, key, fingerprint) {
        Ok(t) => t,
        Err(why) => return Decision::Rejected(why),
    };
    match template.values(&assignment.parameters) {
        Ok(params) => Decision::Verified { template: Box::new(template), published: Box::new(p.clone()), params },
        Err(e) => Decision::Rejected(e),
    }
}

/// Checks a published record on its own: unaltered, signed by `key`, a valid template whose text names the
/// record's id and version, and whose examples give their stated results.
pub fn verify_published(p: &Published, key: &VerifyingKey, fingerprint: &FingerprintKey) -> Result<Template, String> {
    if body_hash(&p.body) != p.sha256 {
        return Err("altered after signing: its text does not match the signed hash".into());
    }
    if !signature_ok(key, &p.message(), &p.signature) {
        return Err("its signature does not verify with the hub key pinned at enrollment".into());
    }
    let template = Template::parse(&p.body).map_err(|e| e.to_string())?;
    if template.id != p.id || template.version.to_string() != p.version {
        return Err(format!("its text says {}@{}, its record {}@{}", template.id, template.version, p.id, p.version));
    }
    let wrong = template.check_snippets(fingerprint);
    if !wrong.is_empty() {
        return Err(format!("rule examples do not give their stated results: {}", wrong.join("; ")));
    }
    Ok(template)
}

/// The version a plant keeps running while the assigned one has not arrived or was refused: a new version
/// supersedes the old one only once it is verified here. `running` is the version the plant last ran (its
/// recorded [`TemplateState::running`]); the earlier record must itself verify, and the site's parameters
/// (signed with the current assignment) fit it.
pub fn keep_running(
    assignment: &Assignment,
    decision: &Decision,
    running: Option<&Published>,
    key: Option<&VerifyingKey>,
    fingerprint: &FingerprintKey,
) -> Option<(Template, BTreeMap<String, String>)> {
    if !assignment.active || !matches!(decision, Decision::Waiting | Decision::Rejected(_) | Decision::Pending { .. }) {
        return None;
    }
    let (p, key) = (running?, key?);
    if p.id != assignment.template || p.version == assignment.version {
        return None;
    }
    // The assignment itself must be the hub's: a forged one keeps nothing running on its say-so.
    let site_ok = matches!(decision, Decision::Waiting | Decision::Pending { .. })
        || matches!(decision, Decision::Rejected(why) if !why.starts_with("the assignment's signature"));
    if !site_ok {
        return None;
    }
    let template = verify_published(p, key, fingerprint).ok()?;
    let params = template.values(&assignment.parameters).ok()?;
    Some((template, params))
}

/// Where a template stands at a plant (`site/<id>/compliance`, collection `template_states`, key: template id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Assigned by the hub; the version has not arrived.
    Assigned,
    /// Arrived and checked; waits for a site approver's acceptance (`template accept`).
    Verified,
    /// Checked and running.
    Active,
    /// Refused (see the reason).
    Rejected,
    /// Withdrawn by the hub.
    Unassigned,
}

impl State {
    pub fn as_str(&self) -> &'static str {
        match self {
            State::Assigned => "assigned",
            State::Verified => "verified",
            State::Active => "active",
            State::Rejected => "rejected",
            State::Unassigned => "unassigned",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateState {
    pub template: String,
    pub version: String,
    pub state: State,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// SHA-256 of the text that was checked (none until it arrived).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The version evaluated here: the assigned one once active, else the one that ran before it (see
    /// [`keep_running`]); none when nothing runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<String>,
    pub since: DateTime<Utc>,
}

impl TemplateState {
    pub const COLLECTION: &'static str = "template_states";

    /// The state an assignment decision leads to; `kept` is the earlier version still running, if any.
    pub fn of(assignment: &Assignment, decision: &Decision, kept: Option<&str>, since: DateTime<Utc>) -> TemplateState {
        let (state, reason, sha256) = match decision {
            Decision::Waiting => (State::Assigned, None, None),
            Decision::Unassigned => (State::Unassigned, None, None),
            Decision::Rejected(why) => (State::Rejected, Some(why.clone()), None),
            Decision::Verified { published, .. } => (State::Active, None, Some(published.sha256.clone())),
            Decision::Pending { published, .. } => (State::Verified, None, Some(published.sha256.clone())),
        };
        let running = match decision {
            Decision::Verified { .. } => Some(assignment.version.clone()),
            _ => kept.map(str::to_string),
        };
        TemplateState {
            template: assignment.template.clone(),
            version: assignment.version.clone(),
            state,
            reason,
            sha256,
            running,
            since,
        }
    }

    /// Whether `self` says the same as `other`, whatever their dates.
    pub fn same_as(&self, other: &TemplateState) -> bool {
        TemplateState { since: other.since, ..self.clone() } == *other
    }
}

/// A failing (asset, rule) pair of a summary.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Failing {
    pub asset: String,
    pub rule: String,
    /// The configuration slot and version evaluated (none for inventory rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// `non-compliant` or `error`.
    pub result: String,
    /// The first offending or missing line, or why it could not be decided.
    pub detail: String,
}

/// Counts of results by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub compliant: u64,
    pub non_compliant: u64,
    pub not_applicable: u64,
    pub error: u64,
    pub manual: u64,
    /// Non-compliant results excused by an approved, unexpired waiver.
    #[serde(default)]
    pub waived: u64,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.compliant += other.compliant;
        self.non_compliant += other.non_compliant;
        self.not_applicable += other.not_applicable;
        self.error += other.error;
        self.manual += other.manual;
        self.waived += other.waived;
    }
}

/// A plant's latest evaluation of one active template (`site/<id>/compliance`, collection `compliance`, key:
/// template id): the counts over every asset × rule, and the failing pairs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub template: String,
    pub version: String,
    pub evaluated_at: DateTime<Utc>,
    /// Assets the template applies to.
    pub assets: u64,
    pub counts: Counts,
    /// Up to [`MAX_LISTED_FAILURES`] failing pairs, sorted.
    pub failing: Vec<Failing>,
    /// Failing pairs not listed.
    #[serde(default)]
    pub unlisted: u64,
    /// Waived pairs (result `waived`, detail naming the waiver and its expiry), shown apart from the failing
    /// ones; at most [`MAX_LISTED_FAILURES`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waived: Vec<Failing>,
}

impl Summary {
    pub const COLLECTION: &'static str = "compliance";

    /// Whether `self` says the same as `other`, whatever their dates (an unchanged result is not rewritten).
    pub fn same_as(&self, other: &Summary) -> bool {
        Summary { evaluated_at: other.evaluated_at, ..self.clone() } == *other
    }

    pub fn compliant(&self) -> bool {
        self.counts.non_compliant == 0 && self.counts.error == 0
    }

    /// One line for people: `1.0.0 NON-COMPLIANT: 4 compliant, 3 non-compliant, 0 errors` (and `, 1 waived`
    /// when a waiver excuses something).
    pub fn line(&self) -> String {
        let waived = match self.counts.waived {
            0 => String::new(),
            n => format!(", {n} waived"),
        };
        format!(
            "{} {}: {} compliant, {} non-compliant, {} errors{waived}",
            self.version,
            if self.compliant() { "compliant" } else { "NON-COMPLIANT" },
            self.counts.compliant,
            self.counts.non_compliant,
            self.counts.error
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
[template]
id = "ssh-basics"
version = "1.0.0"
title = "SSH basics"

[parameters]
banner = { default = "AUTHORIZED" }

[[rule]]
id = "SSH-01"
key = "PermitRootLogin"
equals = "no"
pass = ["PermitRootLogin no"]
fail = ["PermitRootLogin yes"]
"#;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z").expect("date").with_timezone(&Utc)
    }

    fn setup() -> (SigningKey, Published, Assignment, FingerprintKey) {
        let key = SigningKey::from_bytes(&[7; 32]);
        let template = Template::parse(TEMPLATE).expect("valid");
        let published = Published::sign(&template, TEMPLATE, at(), "ot-sec", &key);
        let assignment = Assignment {
            template: "ssh-basics".into(),
            version: "1.0.0".into(),
            parameters: BTreeMap::from([("banner".into(), "PLANT A".into())]),
            active: true,
            assigned_at: at(),
            assigned_by: "ot-sec".into(),
            signature: String::new(),
        }
        .signed("a1b2c3d4e5f60718", &key);
        (key, published, assignment, FingerprintKey([1; 32]))
    }

    fn reason(d: Decision) -> String {
        match d {
            Decision::Rejected(why) => why,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_signed_unaltered_template_is_verified_with_the_sites_parameters() {
        let (key, published, assignment, fp) = setup();
        let vk = key.verifying_key();
        match decide("a1b2c3d4e5f60718", &assignment, Some(&published), Some(&vk), &fp) {
            Decision::Verified { template, params, .. } => {
                assert_eq!(template.id, "ssh-basics");
                assert_eq!(params.get("banner").map(String::as_str), Some("PLANT A"));
            }
            other => panic!("expected verified, got {other:?}"),
        }
        assert!(matches!(decide("a1b2c3d4e5f60718", &assignment, None, Some(&vk), &fp), Decision::Waiting));
    }

    #[test]
    fn every_alteration_after_signing_is_refused_by_name() {
        let (key, published, assignment, fp) = setup();
        let vk = key.verifying_key();
        let site = "a1b2c3d4e5f60718";
        // The text changed (the hash no longer matches).
        let altered =
            Published { body: published.body.replace("equals = \"no\"", "equals = \"yes\""), ..published.clone() };
        assert!(reason(decide(site, &assignment, Some(&altered), Some(&vk), &fp)).contains("altered after signing"));
        // Text and hash changed together: the signature no longer covers them.
        let rehashed = Published { sha256: body_hash(&altered.body), ..altered };
        assert!(reason(decide(site, &assignment, Some(&rehashed), Some(&vk), &fp)).contains("signature"));
        // Signed by another key.
        let other = SigningKey::from_bytes(&[9; 32]);
        let template = Template::parse(TEMPLATE).expect("valid");
        let forged = Published::sign(&template, TEMPLATE, at(), "ot-sec", &other);
        assert!(reason(decide(site, &assignment, Some(&forged), Some(&vk), &fp)).contains("signature"));
        // An assignment for another site, or with its parameters changed.
        assert!(reason(decide("ffffffffffffffff", &assignment, Some(&published), Some(&vk), &fp))
            .contains("assignment's signature"));
        let mut changed = assignment.clone();
        changed.parameters.insert("banner".into(), "X".into());
        assert!(reason(decide(site, &changed, Some(&published), Some(&vk), &fp)).contains("assignment's signature"));
        // No key pinned: nothing can be verified.
        assert!(reason(decide(site, &assignment, Some(&published), None, &fp)).contains("re-enroll"));
        // Another version's record under this assignment.
        let v2 = Published { version: "2.0.0".into(), ..published.clone() };
        assert!(reason(decide(site, &assignment, Some(&v2), Some(&vk), &fp)).contains("is not the assigned"));
    }

    #[test]
    fn a_withdrawn_assignment_is_unassigned_and_an_unknown_parameter_refused() {
        let (key, published, assignment, fp) = setup();
        let vk = key.verifying_key();
        let site = "a1b2c3d4e5f60718";
        let withdrawn = Assignment { active: false, ..assignment.clone() }.signed(site, &key);
        assert!(matches!(decide(site, &withdrawn, Some(&published), Some(&vk), &fp), Decision::Unassigned));
        let mut odd = assignment.clone();
        odd.parameters.insert("nope".into(), "1".into());
        let odd = odd.signed(site, &key);
        assert!(reason(decide(site, &odd, Some(&published), Some(&vk), &fp)).contains("not a parameter"));
    }

    #[test]
    fn a_template_asking_for_local_acceptance_runs_only_once_its_exact_text_is_accepted() {
        let (key, _, assignment, fp) = setup();
        let vk = key.verifying_key();
        let site = "a1b2c3d4e5f60718";
        let text = TEMPLATE.replace("title = \"SSH basics\"", "title = \"SSH basics\"\nacceptance = \"local\"");
        let template = Template::parse(&text).expect("valid");
        assert!(template.local_acceptance);
        let published = Published::sign(&template, &text, at(), "ot-sec", &key);
        let decided = || decide(site, &assignment, Some(&published), Some(&vk), &fp);
        assert!(matches!(await_acceptance(decided(), None), Decision::Pending { .. }));
        let pending = await_acceptance(decided(), None);
        assert_eq!(TemplateState::of(&assignment, &pending, Some("0.9.0"), at()).state, State::Verified);
        assert_eq!(TemplateState::of(&assignment, &pending, Some("0.9.0"), at()).running.as_deref(), Some("0.9.0"));
        let accepted = Acceptance {
            template: "ssh-basics".into(),
            version: "1.0.0".into(),
            sha256: published.sha256.clone(),
            accepted_by: "carol".into(),
            accepted_at: at(),
            comment: None,
        };
        assert!(matches!(await_acceptance(decided(), Some(&accepted)), Decision::Verified { .. }));
        // An acceptance of other text (an earlier upload of the same version) does not count.
        let other = Acceptance { sha256: body_hash("something else"), ..accepted.clone() };
        assert!(matches!(await_acceptance(decided(), Some(&other)), Decision::Pending { .. }));
        // A template without local acceptance runs as soon as it verifies.
        let plain = Published::sign(&Template::parse(TEMPLATE).expect("valid"), TEMPLATE, at(), "ot-sec", &key);
        let d = decide(site, &assignment, Some(&plain), Some(&vk), &fp);
        assert!(matches!(await_acceptance(d, None), Decision::Verified { .. }));
        // While pending, the earlier version keeps running.
        let v0_text = TEMPLATE.replace("1.0.0", "0.9.0");
        let v0 = Published::sign(&Template::parse(&v0_text).expect("valid"), &v0_text, at(), "ot-sec", &key);
        assert!(keep_running(&assignment, &pending, Some(&v0), Some(&vk), &fp).is_some());
    }

    #[test]
    fn states_and_summaries_compare_without_their_dates() {
        let (_, _, assignment, _) = setup();
        let a = TemplateState::of(&assignment, &Decision::Waiting, None, at());
        let b = TemplateState::of(&assignment, &Decision::Waiting, None, at() + chrono::Duration::hours(1));
        assert!(a.same_as(&b) && a != b);
        let c = TemplateState::of(&assignment, &Decision::Rejected("x".into()), None, at());
        assert!(!a.same_as(&c));
    }

    #[test]
    fn the_running_version_goes_on_until_the_new_one_verifies() {
        let (key, v1, assignment, fp) = setup();
        let vk = key.verifying_key();
        let site = "a1b2c3d4e5f60718";
        let v2_text = TEMPLATE.replace("1.0.0", "1.1.0");
        let v2 = Published::sign(&Template::parse(&v2_text).expect("valid"), &v2_text, at(), "ot-sec", &key);
        let to_v2 = Assignment { version: "1.1.0".into(), ..assignment.clone() }.signed(site, &key);
        // v2 refused (altered): v1 keeps running, and the state says so.
        let altered = Published { body: v2.body.replace("equals = \"no\"", "equals = \"yes\""), ..v2.clone() };
        let refused = decide(site, &to_v2, Some(&altered), Some(&vk), &fp);
        let (kept, params) = keep_running(&to_v2, &refused, Some(&v1), Some(&vk), &fp).expect("v1 kept");
        assert_eq!(
            (kept.version.to_string(), params.get("banner").map(String::as_str)),
            ("1.0.0".into(), Some("PLANT A"))
        );
        let state = TemplateState::of(&to_v2, &refused, Some("1.0.0"), at());
        assert_eq!((state.state, state.running.as_deref()), (State::Rejected, Some("1.0.0")));
        // Not arrived yet: the same.
        assert!(keep_running(&to_v2, &Decision::Waiting, Some(&v1), Some(&vk), &fp).is_some());
        // v2 verified: it runs, nothing is kept.
        let verified = decide(site, &to_v2, Some(&v2), Some(&vk), &fp);
        assert!(keep_running(&to_v2, &verified, Some(&v1), Some(&vk), &fp).is_none());
        assert_eq!(TemplateState::of(&to_v2, &verified, None, at()).running.as_deref(), Some("1.1.0"));
        // Withdrawn, forged, or the old record itself altered: nothing runs.
        let withdrawn = Assignment { active: false, ..to_v2.clone() }.signed(site, &key);
        assert!(keep_running(&withdrawn, &Decision::Unassigned, Some(&v1), Some(&vk), &fp).is_none());
        let forged = Assignment { version: "1.1.0".into(), ..assignment.clone() };
        let d = decide(site, &forged, Some(&v2), Some(&vk), &fp);
        assert!(keep_running(&forged, &d, Some(&v1), Some(&vk), &fp).is_none());
        let v1_altered = Published { body: v1.body.replace("SSH basics", "SSH"), ..v1.clone() };
        assert!(keep_running(&to_v2, &refused, Some(&v1_altered), Some(&vk), &fp).is_none());
    }
}
