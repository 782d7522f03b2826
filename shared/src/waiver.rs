//! Waivers: a plant's documented, time-limited exception to one rule of a template for one asset.
//!
//! Like a change request, a waiver is an append-only log of events (`waiver_events` in the site's
//! `waivers` document), folded by one reducer, [`apply`], where the rules live:
//!
//! - a waiver names one template, one rule of it and one asset, a reason and an expiry no more than
//!   [`MAX_WAIVER_DAYS`] ahead;
//! - another person approves or rejects it: the requester never decides their own waiver;
//! - a decided waiver is final; an approved one may be revoked (with a reason);
//! - an approved waiver covers its rule only until it expires ([`Waiver::covers`]): from then on the finding is
//!   a violation again, without anyone having to act.
//!
//! Expiry is an instant: `--expires 2027-01-10` means 2027-01-10T00:00Z, the first moment it no longer holds.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::AssetName;

/// The longest a waiver may run from its request.
pub const MAX_WAIVER_DAYS: i64 = 366;
/// The name of the site document holding waiver events (`site/<id>/waivers`).
pub const WAIVERS_DOC: &str = "waivers";

/// `W-0001`.
pub fn waiver_id(n: u32) -> String {
    format!("W-{n:04}")
}

/// Parses `W-12`, `w-0012` or `12` into the canonical `W-0012`.
pub fn parse_waiver_id(value: &str) -> Result<String, String> {
    let upper = value.trim().to_ascii_uppercase();
    let digits = upper.strip_prefix("W-").unwrap_or(&upper);
    match digits.parse::<u32>() {
        Ok(n) if n > 0 && digits.len() <= 9 && digits.chars().all(|c| c.is_ascii_digit()) => Ok(waiver_id(n)),
        _ => Err(format!("{value:?} is not a waiver id like W-0001")),
    }
}

/// What happened to a waiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum WaiverAction {
    Request {
        template: String,
        /// The template version active when it was requested (for the record; the waiver holds across
        /// versions while the rule keeps its id).
        version: String,
        rule: String,
        asset: AssetName,
        reason: String,
        expires: DateTime<Utc>,
    },
    Approve {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    Reject {
        reason: String,
    },
    Revoke {
        reason: String,
    },
}

impl WaiverAction {
    pub fn verb(&self) -> &'static str {
        match self {
            WaiverAction::Request { .. } => "request",
            WaiverAction::Approve { .. } => "approve",
            WaiverAction::Reject { .. } => "reject",
            WaiverAction::Revoke { .. } => "revoke",
        }
    }
}

/// One event of a waiver's log (key `W-0001/0001`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaiverEvent {
    pub waiver: String,
    /// 1, 2, 3… within the waiver.
    pub seq: u32,
    pub at: DateTime<Utc>,
    pub actor: String,
    #[serde(flatten)]
    pub action: WaiverAction,
}

impl WaiverEvent {
    pub const COLLECTION: &'static str = "waiver_events";

    pub fn key(&self) -> String {
        format!("{}/{:04}", self.waiver, self.seq)
    }
}

/// Where a waiver stands, as recorded (expiry is a matter of the clock: see [`Waiver::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WaiverState {
    Requested,
    Approved,
    Rejected,
    Revoked,
}

/// Where a waiver stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Waiting for another person's decision.
    Requested,
    /// Approved and not expired: it covers its rule.
    Active,
    /// Approved, but its time is up: the finding is a violation again.
    Expired,
    Rejected,
    Revoked,
}

impl WaiverState {
    pub fn as_str(self) -> &'static str {
        match self {
            WaiverState::Requested => "requested",
            WaiverState::Approved => "approved",
            WaiverState::Rejected => "rejected",
            WaiverState::Revoked => "revoked",
        }
    }
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Requested => "requested",
            Status::Active => "active",
            Status::Expired => "expired",
            Status::Rejected => "rejected",
            Status::Revoked => "revoked",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A waiver folded from its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waiver {
    pub id: String,
    pub template: String,
    pub version: String,
    pub rule: String,
    pub asset: AssetName,
    pub reason: String,
    pub expires: DateTime<Utc>,
    pub requester: String,
    pub requested_at: DateTime<Utc>,
    pub state: WaiverState,
    /// Who approved, rejected or revoked it, when, and what they said.
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub note: Option<String>,
    pub n_events: u32,
}

impl Waiver {
    pub fn status(&self, now: DateTime<Utc>) -> Status {
        match self.state {
            WaiverState::Requested => Status::Requested,
            WaiverState::Approved if now >= self.expires => Status::Expired,
            WaiverState::Approved => Status::Active,
            WaiverState::Rejected => Status::Rejected,
            WaiverState::Revoked => Status::Revoked,
        }
    }

    /// Whether this waiver excuses `rule` of `template` on `asset` at `now`: approved, not revoked, not expired.
    pub fn covers(&self, template: &str, rule: &str, asset: &str, now: DateTime<Utc>) -> bool {
        self.status(now) == Status::Active
            && self.template == template
            && self.rule == rule
            && self.asset.as_str() == asset
    }
}

/// Why an event is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaiverError {
    #[error("{0}: the first event of a waiver is its request")]
    NotRequested(String),
    #[error("{0} is already requested")]
    Duplicate(String),
    #[error("{waiver}: {actor} requested this waiver and cannot {verb} it; another person decides")]
    SamePerson { waiver: String, actor: String, verb: &'static str },
    #[error("{waiver} is {state}: it cannot be {verb}d")]
    Wrong { waiver: String, state: &'static str, verb: &'static str },
    #[error("{waiver}: {why}")]
    Invalid { waiver: String, why: String },
}

/// The waiver after `event`: the one place the rules live.
pub fn apply(current: Option<&Waiver>, event: &WaiverEvent) -> Result<Waiver, WaiverError> {
    let id = event.waiver.clone();
    let invalid = |why: String| WaiverError::Invalid { waiver: id.clone(), why };
    let Some(w) = current else {
        let WaiverAction::Request { template, version, rule, asset, reason, expires } = &event.action else {
            return Err(WaiverError::NotRequested(id));
        };
        if reason.trim().is_empty() {
            return Err(invalid("a waiver needs a reason".into()));
        }
        if *expires <= event.at {
            return Err(invalid(format!("it would expire ({}) before it is requested", expires.to_rfc3339())));
        }
        if *expires > event.at + Duration::days(MAX_WAIVER_DAYS) {
            return Err(invalid(format!("a waiver runs at most {MAX_WAIVER_DAYS} days; ask again when it expires")));
        }
        return Ok(Waiver {
            id,
            template: template.clone(),
            version: version.clone(),
            rule: rule.clone(),
            asset: asset.clone(),
            reason: reason.clone(),
            expires: *expires,
            requester: event.actor.clone(),
            requested_at: event.at,
            state: WaiverState::Requested,
            decided_by: None,
            decided_at: None,
            note: None,
            n_events: 1,
        });
    };
    let verb = event.action.verb();
    let wrong = || WaiverError::Wrong { waiver: id.clone(), state: w.state.as_str(), verb };
    let (state, note) = match &event.action {
        WaiverAction::Request { .. } => return Err(WaiverError::Duplicate(id)),
        WaiverAction::Approve { comment } => {
            if w.state != WaiverState::Requested {
                return Err(wrong());
            }
            if event.at >= w.expires {
                return Err(invalid("it expired before it was approved; request it again".into()));
            }
            (WaiverState::Approved, comment.clone())
        }
        WaiverAction::Reject { reason } => {
            if w.state != WaiverState::Requested {
                return Err(wrong());
            }
            (WaiverState::Rejected, Some(reason.clone()))
        }
        WaiverAction::Revoke { reason } => {
            if w.state != WaiverState::Approved {
                return Err(wrong());
            }
            (WaiverState::Revoked, Some(reason.clone()))
        }
    };
    if matches!(event.action, WaiverAction::Approve { .. } | WaiverAction::Reject { .. })
        && crate::change::same_person(&event.actor, &w.requester)
    {
        return Err(WaiverError::SamePerson { waiver: id, actor: event.actor.clone(), verb });
    }
    Ok(Waiver {
        state,
        decided_by: Some(event.actor.clone()),
        decided_at: Some(event.at),
        note,
        n_events: w.n_events + 1,
        ..w.clone()
    })
}

/// Folds every waiver from its events (in any order); an event the rules refuse is skipped and named (a
/// replica may hold an event written under other rules, or altered).
pub fn fold(mut events: Vec<WaiverEvent>) -> (Vec<Waiver>, Vec<String>) {
    events.sort_by(|a, b| (&a.waiver, a.seq).cmp(&(&b.waiver, b.seq)));
    let mut out: Vec<Waiver> = Vec::new();
    let mut ignored = Vec::new();
    for e in &events {
        let current = out.last().filter(|w| w.id == e.waiver);
        if current.is_some_and(|w| w.n_events + 1 != e.seq) || (current.is_none() && e.seq != 1) {
            ignored.push(format!("{}: event {} is out of sequence", e.waiver, e.seq));
            continue;
        }
        match apply(current, e) {
            Ok(w) if current.is_some() => *out.last_mut().expect("current exists") = w,
            Ok(w) => out.push(w),
            Err(err) => ignored.push(err.to_string()),
        }
    }
    (out, ignored)
}

/// The waiver covering `rule` of `template` on `asset` at `now`, if any.
pub fn covering<'w>(
    waivers: &'w [Waiver],
    template: &str,
    rule: &str,
    asset: &str,
    now: DateTime<Utc>,
) -> Option<&'w Waiver> {
    waivers.iter().find(|w| w.covers(template, rule, asset, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
    }

    fn request(actor: &str, expires: &str) -> WaiverEvent {
        WaiverEvent {
            waiver: "W-0001".into(),
            seq: 1,
            at: at("2027-01-01T10:00:00Z"),
            actor: actor.into(),
            action: WaiverAction::Request {
                template: "ios-hardening".into(),
                version: "1.0.0".into(),
                rule: "IOS-02".into(),
                asset: AssetName::new("RTR-2").expect("name"),
                reason: "HTTP server needed until the historian moves (CR-0007)".into(),
                expires: at(expires),
            },
        }
    }

    fn next(w: &Waiver, actor: &str, when: &str, action: WaiverAction) -> Result<Waiver, WaiverError> {
        let e = WaiverEvent { waiver: w.id.clone(), seq: w.n_events + 1, at: at(when), actor: actor.into(), action };
        apply(Some(w), &e)
    }

    #[test]
    fn the_requester_never_decides_their_own_waiver() {
        let w = apply(None, &request("alice", "2027-03-01T00:00:00Z")).expect("request");
        for action in [WaiverAction::Approve { comment: None }, WaiverAction::Reject { reason: "no".into() }] {
            let err = next(&w, "alice", "2027-01-02T00:00:00Z", action.clone()).expect_err("same person");
            assert!(matches!(err, WaiverError::SamePerson { .. }), "{err}");
            // Nor under another spelling of the same name.
            let err = next(&w, "ALICE", "2027-01-02T00:00:00Z", action).expect_err("same person");
            assert!(matches!(err, WaiverError::SamePerson { .. }), "{err}");
        }
        let approved =
            next(&w, "bob", "2027-01-02T00:00:00Z", WaiverAction::Approve { comment: None }).expect("approve");
        assert_eq!(approved.state, WaiverState::Approved);
        assert_eq!(approved.decided_by.as_deref(), Some("bob"));
    }

    #[test]
    fn an_approved_waiver_covers_only_its_rule_and_asset_until_it_expires() {
        let w = apply(None, &request("alice", "2027-03-01T00:00:00Z")).expect("request");
        let before = at("2027-01-05T00:00:00Z");
        assert!(!w.covers("ios-hardening", "IOS-02", "RTR-2", before), "not before approval");
        let w = next(&w, "bob", "2027-01-02T00:00:00Z", WaiverAction::Approve { comment: None }).expect("approve");
        assert!(w.covers("ios-hardening", "IOS-02", "RTR-2", before));
        assert!(!w.covers("ios-hardening", "IOS-01", "RTR-2", before), "another rule");
        assert!(!w.covers("ios-hardening", "IOS-02", "RTR-1", before), "another asset");
        assert!(!w.covers("linux-ssh", "IOS-02", "RTR-2", before), "another template");
        let last = at("2027-02-28T23:59:59Z");
        assert!(w.covers("ios-hardening", "IOS-02", "RTR-2", last));
        let expired = at("2027-03-01T00:00:00Z");
        assert!(!w.covers("ios-hardening", "IOS-02", "RTR-2", expired), "expired at its instant");
        assert_eq!(w.status(expired), Status::Expired);
    }

    #[test]
    fn decisions_are_final_and_only_approved_waivers_are_revoked() {
        let w = apply(None, &request("alice", "2027-03-01T00:00:00Z")).expect("request");
        let err = next(&w, "bob", "2027-01-02T00:00:00Z", WaiverAction::Revoke { reason: "x".into() })
            .expect_err("revoke before approval");
        assert!(matches!(err, WaiverError::Wrong { .. }), "{err}");
        let rejected =
            next(&w, "bob", "2027-01-02T00:00:00Z", WaiverAction::Reject { reason: "fix it".into() }).expect("reject");
        let err = next(&rejected, "carol", "2027-01-03T00:00:00Z", WaiverAction::Approve { comment: None })
            .expect_err("approve after reject");
        assert!(matches!(err, WaiverError::Wrong { .. }), "{err}");
        let approved =
            next(&w, "bob", "2027-01-02T00:00:00Z", WaiverAction::Approve { comment: None }).expect("approve");
        let revoked = next(&approved, "alice", "2027-01-03T00:00:00Z", WaiverAction::Revoke { reason: "fixed".into() })
            .expect("the requester may revoke");
        assert!(!revoked.covers("ios-hardening", "IOS-02", "RTR-2", at("2027-01-04T00:00:00Z")));
        assert_eq!(revoked.status(at("2027-01-04T00:00:00Z")), Status::Revoked);
    }

    #[test]
    fn expiry_is_bounded_and_checked_at_approval() {
        for expires in ["2027-01-01T10:00:00Z", "2026-12-31T00:00:00Z", "2028-01-03T00:00:00Z"] {
            let err = apply(None, &request("alice", expires)).expect_err(expires);
            assert!(matches!(err, WaiverError::Invalid { .. }), "{err}");
        }
        let w = apply(None, &request("alice", "2027-01-10T00:00:00Z")).expect("request");
        let err = next(&w, "bob", "2027-01-10T00:00:00Z", WaiverAction::Approve { comment: None })
            .expect_err("approved too late");
        assert!(err.to_string().contains("expired before it was approved"), "{err}");
        let empty = WaiverEvent {
            action: match request("alice", "2027-02-01T00:00:00Z").action {
                WaiverAction::Request { template, version, rule, asset, expires, .. } => {
                    WaiverAction::Request { template, version, rule, asset, reason: "  ".into(), expires }
                }
                other => other,
            },
            ..request("alice", "2027-02-01T00:00:00Z")
        };
        assert!(apply(None, &empty).is_err(), "a reason is required");
    }

    #[test]
    fn fold_skips_refused_and_out_of_sequence_events_and_names_them() {
        let r = request("alice", "2027-03-01T00:00:00Z");
        let self_approval =
            WaiverEvent { seq: 2, actor: "alice".into(), action: WaiverAction::Approve { comment: None }, ..r.clone() };
        let gap =
            WaiverEvent { seq: 5, actor: "bob".into(), action: WaiverAction::Approve { comment: None }, ..r.clone() };
        let (waivers, ignored) = fold(vec![gap, self_approval, r]);
        assert_eq!(waivers.len(), 1);
        assert_eq!(waivers[0].state, WaiverState::Requested, "neither the self-approval nor the gap counts");
        assert_eq!(ignored.len(), 2, "{ignored:?}");
        assert!(ignored.iter().any(|i| i.contains("alice requested this waiver")), "{ignored:?}");
    }

    #[test]
    fn waiver_ids_parse_to_one_spelling() {
        assert_eq!(parse_waiver_id("w-12").as_deref(), Ok("W-0012"));
        assert_eq!(parse_waiver_id("3").as_deref(), Ok("W-0003"));
        for bad in ["", "W-", "W-0", "CR-0001", "W-1x", "W--1"] {
            assert!(parse_waiver_id(bad).is_err(), "{bad}");
        }
    }
}
