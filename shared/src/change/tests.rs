//! Tests of the change-request reducer: every legal path and every illegal transition.

use chrono::{DateTime, Duration, TimeZone, Utc};
use expect_test::{expect, Expect};

use super::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0).single().expect("valid date")
}

fn asset(name: &str) -> AssetName {
    AssetName::new(name).expect("valid")
}

fn draft(risk: Risk, emergency: bool) -> ChangeDraft {
    ChangeDraft {
        title: "Open TCP/502 from HMI to PLC".into(),
        reason: "new HMI screen".into(),
        assets: vec![asset("fw1"), asset("plc1")],
        risk,
        impact: "HMI can write to PLC".into(),
        rollback: "restore previous ruleset".into(),
        test_plan: None,
        window_from: None,
        window_to: None,
        emergency,
        policy_approvals: None,
        checklist: Vec::new(),
    }
}

fn vref(asset_name: &str, version: u32, hash: &str) -> VersionRef {
    VersionRef {
        asset: asset(asset_name),
        slot: SlotName::new("config").expect("valid"),
        version,
        raw_hash: crate::ids::BlobHash::new(&format!("{hash:0>64}")).expect("a hex label"),
    }
}

/// Runs `script` (one `actor action` per line) against a change of the given risk and returns a transcript:
/// the state after each accepted step, or the error of a refused one.
fn run(risk: Risk, emergency: bool, script: &str) -> String {
    let mut state: Option<ChangeRequest> = None;
    let mut out = String::new();
    let mut seq = 0;
    for (i, line) in script.lines().map(str::trim).filter(|l| !l.is_empty()).enumerate() {
        let (actor, verb) = line.split_once(' ').expect("actor verb");
        let action = match verb {
            "create" => ChangeAction::Create(draft(risk, emergency)),
            "submit" => ChangeAction::Submit,
            "approve" => ChangeAction::Approve { comment: None },
            "reject" => ChangeAction::Reject { reason: "too risky".into() },
            "implement" => {
                ChangeAction::Implement { note: None, captures: vec![vref("fw1", 2, "bb")], checklist_done: false }
            }
            "verify" => ChangeAction::Verify { checked: vec![vref("fw1", 2, "bb")], warnings: Vec::new() },
            "close" => ChangeAction::Close,
            "cancel" => ChangeAction::Cancel { reason: "not needed".into() },
            // New content: a higher risk and another rollback.
            "amend" => ChangeAction::Amend(ChangeDraft {
                risk: Risk::High,
                rollback: "load the saved ruleset".into(),
                ..draft(risk, emergency)
            }),
            "amend-blank" => ChangeAction::Amend(ChangeDraft { reason: " ".into(), ..draft(risk, emergency) }),
            "amend-emergency" => ChangeAction::Amend(draft(risk, !emergency)),
            other => panic!("unknown verb {other}"),
        };
        let event = ChangeEvent {
            change: ChangeId(1),
            seq: seq + 1,
            at: t0() + Duration::hours(i as i64),
            actor: actor.into(),
            action,
        };
        match apply(state.as_ref(), &event) {
            Ok(next) => {
                seq += 1;
                out.push_str(&format!(
                    "{line}: {} ({}/{} approvals)\n",
                    next.state,
                    next.approvals.len(),
                    next.required_approvals
                ));
                state = Some(next);
            }
            Err(e) => out.push_str(&format!("{line}: refused: {e}\n")),
        }
    }
    out
}

fn check(risk: Risk, emergency: bool, script: &str, expect: Expect) {
    expect.assert_eq(&run(risk, emergency, script));
}

#[test]
fn normal_change_happy_path() {
    check(
        Risk::Medium,
        false,
        "alice create\nalice submit\nbob approve\nalice implement\nalice verify\nalice close",
        expect![[r#"
            alice create: draft (0/1 approvals)
            alice submit: submitted (0/1 approvals)
            bob approve: approved (1/1 approvals)
            alice implement: implemented (1/1 approvals)
            alice verify: verified (1/1 approvals)
            alice close: closed (1/1 approvals)
        "#]],
    );
}

#[test]
fn an_amended_change_loses_its_approvals_and_is_submitted_again() {
    check(
        Risk::Medium,
        false,
        "alice create\nalice submit\nbob approve\nalice amend-blank\nalice amend-emergency\nalice amend\nalice implement\nalice submit\nbob approve\ncarol approve\nalice implement\nalice amend",
        expect![[r#"
            alice create: draft (0/1 approvals)
            alice submit: submitted (0/1 approvals)
            bob approve: approved (1/1 approvals)
            alice amend-blank: refused: CR-0001: reason must not be empty
            alice amend-emergency: refused: CR-0001 is approved; cannot amend it (whether it is an emergency change cannot change)
            alice amend: draft (0/2 approvals)
            alice implement: refused: CR-0001: approvals incomplete (0 of 2); cannot implement before approval
            alice submit: submitted (0/2 approvals)
            bob approve: submitted (1/2 approvals)
            carol approve: approved (2/2 approvals)
            alice implement: implemented (2/2 approvals)
            alice amend: refused: CR-0001 is implemented; cannot amend it (only a change not yet implemented; roll back under a new change)
        "#]],
    );
}

#[test]
fn requester_cannot_approve_or_reject_own_change() {
    check(
        Risk::Low,
        false,
        "alice create\nalice submit\nalice approve\nalice reject\nbob approve",
        expect![[r#"
            alice create: draft (0/1 approvals)
            alice submit: submitted (0/1 approvals)
            alice approve: refused: CR-0001: alice requested this change and cannot approve it; another person must
            alice reject: refused: CR-0001: alice requested this change and cannot reject it; another person must
            bob approve: approved (1/1 approvals)
        "#]],
    );
}

#[test]
fn the_same_person_spelled_differently_is_still_the_same_person() {
    check(
        Risk::High,
        false,
        "alice create\nalice submit\nAlice approve\nbob approve\nBOB approve",
        expect![[r#"
            alice create: draft (0/2 approvals)
            alice submit: submitted (0/2 approvals)
            Alice approve: refused: CR-0001: Alice requested this change and cannot approve it; another person must
            bob approve: submitted (1/2 approvals)
            BOB approve: refused: CR-0001: BOB has already approved it; a second approval must come from someone else
        "#]],
    );
}

#[test]
fn high_risk_needs_two_distinct_approvers() {
    check(
        Risk::High,
        false,
        "alice create\nalice submit\nbob approve\nbob approve\nalice implement\ncarol approve\nalice implement",
        expect![[r#"
            alice create: draft (0/2 approvals)
            alice submit: submitted (0/2 approvals)
            bob approve: submitted (1/2 approvals)
            bob approve: refused: CR-0001: bob has already approved it; a second approval must come from someone else
            alice implement: refused: CR-0001: approvals incomplete (1 of 2); cannot implement before approval
            carol approve: approved (2/2 approvals)
            alice implement: implemented (2/2 approvals)
        "#]],
    );
}

#[test]
fn no_approval_after_rejection() {
    check(
        Risk::High,
        false,
        "alice create\nalice submit\nbob approve\ncarol reject\ndave approve\nalice implement\nalice cancel",
        expect![[r#"
            alice create: draft (0/2 approvals)
            alice submit: submitted (0/2 approvals)
            bob approve: submitted (1/2 approvals)
            carol reject: rejected (1/2 approvals)
            dave approve: refused: CR-0001 was rejected by carol; a rejected change cannot be approved or implemented, raise a new one
            alice implement: refused: CR-0001 was rejected by carol; a rejected change cannot be approved or implemented, raise a new one
            alice cancel: refused: CR-0001 is rejected; cannot cancel it
        "#]],
    );
}

#[test]
fn illegal_transitions_from_every_state() {
    check(
        Risk::Low,
        false,
        "alice create\nbob approve\nalice implement\nalice verify\nalice close\nalice create\nalice submit\nalice submit\nalice verify\nbob approve\nbob approve\nalice submit\nalice verify\nalice close\nalice implement\nalice cancel\nalice implement\nalice approve\nbob reject\nalice verify\nalice verify\nalice cancel\nalice close\nalice close\nalice cancel\ncarol approve",
        expect![[r#"
            alice create: draft (0/1 approvals)
            bob approve: refused: CR-0001 is draft; cannot approve it (submit it first)
            alice implement: refused: CR-0001: approvals incomplete (0 of 1); cannot implement before approval
            alice verify: refused: CR-0001 is draft; cannot verify it (only an implemented change can be verified)
            alice close: refused: CR-0001 is draft; cannot close it (verify it first)
            alice create: refused: CR-0001 already exists
            alice submit: submitted (0/1 approvals)
            alice submit: refused: CR-0001 is submitted; cannot submit it
            alice verify: refused: CR-0001 is submitted; cannot verify it (only an implemented change can be verified)
            bob approve: approved (1/1 approvals)
            bob approve: refused: CR-0001: bob has already approved it; a second approval must come from someone else
            alice submit: refused: CR-0001 is approved; cannot submit it
            alice verify: refused: CR-0001 is approved; cannot verify it (only an implemented change can be verified)
            alice close: refused: CR-0001 is approved; cannot close it (verify it first)
            alice implement: implemented (1/1 approvals)
            alice cancel: refused: CR-0001 is implemented; cannot cancel it (it is already implemented: roll it back under a new change)
            alice implement: refused: CR-0001 is implemented; cannot implement it
            alice approve: refused: CR-0001: alice requested this change and cannot approve it; another person must
            bob reject: refused: CR-0001 is implemented; cannot reject it
            alice verify: verified (1/1 approvals)
            alice verify: refused: CR-0001 is verified; cannot verify it (only an implemented change can be verified)
            alice cancel: refused: CR-0001 is verified; cannot cancel it
            alice close: closed (1/1 approvals)
            alice close: refused: CR-0001 is closed; cannot close it (verify it first)
            alice cancel: refused: CR-0001 is closed; cannot cancel it
            carol approve: refused: CR-0001 is closed; cannot approve it
        "#]],
    );
}

#[test]
fn cancel_before_implementation() {
    check(
        Risk::Low,
        false,
        "alice create\nalice submit\nbob approve\nbob cancel\nalice implement\nalice submit",
        expect![[r#"
            alice create: draft (0/1 approvals)
            alice submit: submitted (0/1 approvals)
            bob approve: approved (1/1 approvals)
            bob cancel: cancelled (1/1 approvals)
            alice implement: refused: CR-0001 is cancelled; cannot implement it
            alice submit: refused: CR-0001 is cancelled; cannot submit it
        "#]],
    );
}

#[test]
fn emergency_change_is_implemented_first_and_approved_after() {
    check(
        Risk::High,
        true,
        "alice create\nalice implement\nalice verify\nbob approve\nalice verify\ncarol approve\nalice verify\nalice close",
        expect![[r#"
            alice create: draft (0/2 approvals)
            alice implement: implemented (0/2 approvals)
            alice verify: refused: CR-0001: approvals incomplete (0 of 2); cannot verify before approval
            bob approve: implemented (1/2 approvals)
            alice verify: refused: CR-0001: approvals incomplete (1 of 2); cannot verify before approval
            carol approve: implemented (2/2 approvals)
            alice verify: verified (2/2 approvals)
            alice close: closed (2/2 approvals)
        "#]],
    );
}

#[test]
fn emergency_change_can_be_rejected_retrospectively() {
    check(
        Risk::Low,
        true,
        "alice create\nalice implement\nbob reject\ncarol approve",
        expect![[r#"
            alice create: draft (0/1 approvals)
            alice implement: implemented (0/1 approvals)
            bob reject: rejected (0/1 approvals)
            carol approve: refused: CR-0001 was rejected by bob; a rejected change cannot be approved or implemented, raise a new one
        "#]],
    );
}

fn folded(risk: Risk, emergency: bool, verbs: &[(&str, &str)]) -> ChangeRequest {
    let mut events = Vec::new();
    for (i, (actor, verb)) in verbs.iter().enumerate() {
        let action = match *verb {
            "create" => ChangeAction::Create(draft(risk, emergency)),
            "submit" => ChangeAction::Submit,
            "approve" => ChangeAction::Approve { comment: None },
            "implement" => {
                ChangeAction::Implement { note: None, captures: vec![vref("fw1", 2, "bb")], checklist_done: false }
            }
            other => panic!("{other}"),
        };
        events.push(ChangeEvent { change: ChangeId(1), seq: i as u32 + 1, at: t0(), actor: actor.to_string(), action });
    }
    let (state, ignored) = fold(&events);
    assert!(ignored.is_empty(), "{ignored:?}");
    state.expect("created")
}

#[test]
fn emergency_authorization_expires_after_the_approval_window() {
    let policy = Policy::default();
    let cr = folded(Risk::Low, true, &[("alice", "create"), ("alice", "implement")]);
    assert!(cr.authorizes(&asset("fw1"), t0() + Duration::hours(71), &policy));
    assert!(!cr.authorizes(&asset("fw1"), t0() + Duration::hours(73), &policy));
    assert!(!cr.authorizes(&asset("other"), t0(), &policy));
    assert_eq!(cr.flags(t0() + Duration::hours(73), &policy).len(), 1);
    assert!(cr.flags(t0() + Duration::hours(73), &policy)[0].starts_with("emergency change not approved"));
}

#[test]
fn unapproved_normal_change_authorizes_nothing() {
    let policy = Policy::default();
    let submitted = folded(Risk::Low, false, &[("alice", "create"), ("alice", "submit")]);
    assert!(!submitted.authorizes(&asset("fw1"), t0(), &policy));
    assert!(submitted.accepts_captures().is_err());
    let approved = folded(Risk::Low, false, &[("alice", "create"), ("alice", "submit"), ("bob", "approve")]);
    assert!(approved.authorizes(&asset("fw1"), t0(), &policy));
    assert!(approved.accepts_captures().is_ok());
    let implemented = folded(
        Risk::Low,
        false,
        &[("alice", "create"), ("alice", "submit"), ("bob", "approve"), ("alice", "implement")],
    );
    assert!(implemented.accepts_captures().is_err(), "captures after implementation would never be verified");
}

#[test]
fn authorization_ends_with_the_change_window() {
    let policy = Policy::default();
    let mut cr = folded(Risk::Low, false, &[("alice", "create"), ("alice", "submit"), ("bob", "approve")]);
    cr.draft.window_to = Some(t0() + Duration::hours(2));
    assert!(cr.authorizes(&asset("fw1"), t0() + Duration::hours(1), &policy));
    assert!(!cr.authorizes(&asset("fw1"), t0() + Duration::hours(3), &policy));
    assert!(cr.flags(t0() + Duration::hours(3), &policy)[0].starts_with("change window ended"));
}

#[test]
fn late_emergency_approval_stays_visible() {
    let policy = Policy::default();
    let mut events = Vec::new();
    let mk = |seq: u32, hours: i64, actor: &str, action: ChangeAction| ChangeEvent {
        change: ChangeId(1),
        seq,
        at: t0() + Duration::hours(hours),
        actor: actor.into(),
        action,
    };
    events.push(mk(1, 0, "alice", ChangeAction::Create(draft(Risk::Low, true))));
    events.push(mk(2, 1, "alice", ChangeAction::Implement { note: None, captures: vec![], checklist_done: false }));
    events.push(mk(3, 100, "bob", ChangeAction::Approve { comment: None }));
    let (state, _) = fold(&events);
    let state = state.expect("created");
    assert!(state.authorizes(&asset("fw1"), t0() + Duration::hours(101), &policy));
    assert!(state.flags(t0() + Duration::hours(101), &policy)[0].starts_with("emergency change approved late"));
}

#[test]
fn fold_keeps_refused_events_visible() {
    let mk = |seq, actor: &str, action| ChangeEvent { change: ChangeId(1), seq, at: t0(), actor: actor.into(), action };
    let events = vec![
        mk(3, "bob", ChangeAction::Approve { comment: None }),
        mk(1, "alice", ChangeAction::Create(draft(Risk::Low, false))),
        mk(2, "alice", ChangeAction::Approve { comment: None }),
    ];
    let (state, ignored) = fold(&events);
    let state = state.expect("created");
    assert_eq!(state.state, ChangeState::Draft);
    assert_eq!(ignored.len(), 2, "{ignored:?}");
    assert!(ignored[0].error.contains("cannot approve"), "{}", ignored[0].error);
}

#[test]
fn verification_needs_every_asset_and_unchanged_captures() {
    let cr = folded(
        Risk::Low,
        false,
        &[("alice", "create"), ("alice", "submit"), ("bob", "approve"), ("alice", "implement")],
    );
    let outcome = check_verification(&cr, |a, _| (a.as_str() == "fw1").then(|| vref("fw1", 2, "bb")));
    assert_eq!(outcome.matched, vec![vref("fw1", 2, "bb")]);
    assert_eq!(outcome.problems.len(), 1, "{:?}", outcome.problems);
    assert!(outcome.problems[0].starts_with("plc1: no capture is linked"));
    let changed_again = check_verification(&cr, |_, _| Some(vref("fw1", 3, "cc")));
    assert!(changed_again
        .problems
        .iter()
        .any(|p| p.contains("the newest capture (v3) differs from the implemented v2")));
}

#[test]
fn a_change_template_checklist_must_be_confirmed_and_a_policy_sets_the_approvals() {
    let mut d = draft(Risk::Low, false);
    d.checklist = vec!["Backup of the running configuration taken".into()];
    d.policy_approvals = Some(2);
    let ev = |seq: u32, actor: &str, action: ChangeAction| ChangeEvent {
        change: ChangeId(1),
        seq,
        at: t0() + Duration::hours(seq.into()),
        actor: actor.into(),
        action,
    };
    let mut cr = apply(None, &ev(1, "alice", ChangeAction::Create(d))).expect("create");
    assert_eq!(cr.required_approvals, 2, "the policy's number, recorded with the draft");
    for (seq, actor, action) in [
        (2, "alice", ChangeAction::Submit),
        (3, "bob", ChangeAction::Approve { comment: None }),
        (4, "carol", ChangeAction::Approve { comment: None }),
    ] {
        cr = apply(Some(&cr), &ev(seq, actor, action)).expect("step");
    }
    assert_eq!(cr.state, ChangeState::Approved);
    let implement = |done| ChangeAction::Implement { note: None, captures: vec![], checklist_done: done };
    let err = apply(Some(&cr), &ev(5, "alice", implement(false))).expect_err("checklist not confirmed");
    assert!(err.to_string().contains("Backup of the running configuration taken"), "{err}");
    let done = apply(Some(&cr), &ev(5, "alice", implement(true))).expect("confirmed");
    assert_eq!(done.state, ChangeState::Implemented);
    // A nonsensical recorded number falls back to the built-in rule.
    let mut odd = draft(Risk::High, false);
    odd.policy_approvals = Some(0);
    assert_eq!(apply(None, &ev(1, "alice", ChangeAction::Create(odd))).expect("create").required_approvals, 2);
}
