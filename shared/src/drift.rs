//! Drift classification: does what a plant actually runs match what was approved?
//!
//! The periodic review's engine. For every in-scope asset and every slot it has captured, the newest
//! capture is compared with the approved baseline (by normalised hash) and classified. The function is pure:
//! the caller passes the records and `now`.

use chrono::{DateTime, Utc};

use crate::change::ChangeRequest;
use crate::ids::SlotName;
use crate::model::{Asset, ConfigVersion};
use crate::policy::Policy;

// The report's types are records (a review keeps the drift it saw), so they live in `model`; they are
// re-exported here, where callers look for them.
pub use crate::model::{DriftEntry, DriftStatus};

/// What drift needs to know about one slot of one asset.
#[derive(Debug, Clone)]
pub struct SlotInput<'a> {
    pub slot: &'a SlotName,
    pub latest: &'a ConfigVersion,
    /// Newest moment the slot's content was seen: the latest capture or a later "unchanged" check.
    pub last_seen_at: DateTime<Utc>,
    pub baseline: Option<&'a ConfigVersion>,
}

/// Classifies one asset. `changes` are the change requests that name this asset (any state).
pub fn classify_asset(
    asset: &Asset,
    slots: &[SlotInput<'_>],
    changes: &[&ChangeRequest],
    now: DateTime<Utc>,
    policy: &Policy,
) -> Vec<DriftEntry> {
    let interval = policy.capture_interval(asset.criticality);
    if slots.is_empty() {
        return vec![DriftEntry {
            asset: asset.name.clone(),
            slot: None,
            criticality: asset.criticality,
            status: DriftStatus::Stale,
            baseline_version: None,
            latest_version: None,
            last_capture_at: None,
            change: None,
            detail: format!(
                "never captured ({} assets need a capture every {} days)",
                asset.criticality,
                interval.num_days()
            ),
        }];
    }
    let mut out = Vec::with_capacity(slots.len());
    for input in slots {
        let latest = input.latest;
        let mut entry = DriftEntry {
            asset: asset.name.clone(),
            slot: Some(input.slot.clone()),
            criticality: asset.criticality,
            status: DriftStatus::InBaseline,
            baseline_version: input.baseline.map(|b| b.version),
            latest_version: Some(latest.version),
            last_capture_at: Some(input.last_seen_at),
            change: None,
            detail: String::new(),
        };
        let stale = now - input.last_seen_at > interval;
        let stale_detail = || {
            format!(
                "last capture {} days ago; {} assets need one every {} days",
                (now - input.last_seen_at).num_days(),
                asset.criticality,
                interval.num_days()
            )
        };
        match input.baseline {
            None => {
                entry.status = DriftStatus::NoBaseline;
                entry.detail = format!("v{} captured, no baseline approved", latest.version);
            }
            Some(base) if base.same_content(latest) => {
                entry.status = DriftStatus::InBaseline;
                entry.detail = if base.version == latest.version {
                    format!("matches baseline v{}", base.version)
                } else if base.raw_hash != latest.raw_hash {
                    format!(
                        "v{} differs from baseline v{} only in noise (timestamps, counters, order)",
                        latest.version, base.version
                    )
                } else {
                    format!("v{} has the same content as baseline v{}", latest.version, base.version)
                };
            }
            Some(base) => {
                let linked = latest.change.and_then(|id| changes.iter().find(|c| c.id == id));
                match linked {
                    Some(cr) if cr.authorizes(&asset.name, now, policy) => {
                        entry.status = DriftStatus::DriftAuthorized;
                        entry.change = Some(cr.id);
                        entry.detail = format!(
                            "v{} differs from baseline v{}; authorized by {} ({})",
                            latest.version, base.version, cr.id, cr.state
                        );
                        if cr.awaiting_retrospective_approval() {
                            entry.detail.push_str(", emergency change awaiting retrospective approval");
                        }
                    }
                    Some(cr) => {
                        entry.status = DriftStatus::DriftUnauthorized;
                        entry.change = Some(cr.id);
                        entry.detail = if cr.awaiting_retrospective_approval() {
                            format!(
                                "v{} differs from baseline v{}; emergency change {} was not approved in time",
                                latest.version, base.version, cr.id
                            )
                        } else {
                            format!(
                                "v{} differs from baseline v{}; {} is {} and does not authorize it",
                                latest.version, base.version, cr.id, cr.state
                            )
                        };
                    }
                    None => {
                        entry.status = DriftStatus::DriftUnauthorized;
                        entry.detail = format!(
                            "v{} differs from baseline v{} and no change covers it",
                            latest.version, base.version
                        );
                        // The hint names only a command that will be accepted: a capture links only to a change
                        // that still takes captures (`ChangeRequest::accepts_captures`).
                        let covering: Vec<&ChangeRequest> =
                            changes.iter().copied().filter(|c| c.authorizes(&asset.name, now, policy)).collect();
                        if let Some(open) = covering.iter().find(|c| c.accepts_captures().is_ok()) {
                            entry.change = Some(open.id);
                            entry.detail = format!(
                                "v{} differs from baseline v{}; {} covers this asset but the capture is not linked to it (capture again with --change {})",
                                latest.version, base.version, open.id, open.id
                            );
                        } else if let Some(done) = covering.first() {
                            entry.change = Some(done.id);
                            entry.detail = format!(
                                "v{} differs from baseline v{}; {} covers this asset but is {} and takes no more captures: open a new change request, or approve v{} as the baseline if it is right",
                                latest.version, base.version, done.id, done.state, latest.version
                            );
                        }
                    }
                }
            }
        }
        // Unauthorized drift outranks staleness: it is the more urgent finding. Otherwise a stale capture
        // means we do not know what runs, which outranks every other status.
        if stale && entry.status != DriftStatus::DriftUnauthorized {
            entry.detail = format!("{}; {}", stale_detail(), entry.detail);
            entry.status = DriftStatus::Stale;
        }
        out.push(entry);
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::change::{apply, ChangeAction, ChangeDraft, ChangeEvent};
    use crate::ids::{AssetName, ChangeId};
    use crate::model::{AssetKind, Criticality, Risk};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).single().expect("valid")
    }

    fn asset(crit: Criticality) -> Asset {
        let mut asset =
            Asset::new(AssetName::new("plc1").expect("valid"), AssetKind::Plc, crit, "a", now() - Duration::days(400));
        asset.updated_at = now();
        asset
    }

    fn version(v: u32, hash: &str, change: Option<u32>) -> ConfigVersion {
        ConfigVersion {
            asset: AssetName::new("plc1").expect("valid"),
            slot: SlotName::new("plc-program").expect("valid"),
            version: v,
            raw_hash: crate::ids::BlobHash::new(&format!("{hash:0>64}")).expect("a hex label"),
            normalized_hash: crate::ids::BlobHash::new(&format!("{hash:0>64}")).expect("a hex label"),
            normalizer: 1,
            format: None,
            size: 1,
            file_name: None,
            captured_at: now() - Duration::days(1),
            captured_by: "a".into(),
            note: None,
            change: change.map(ChangeId),
        }
    }

    fn change(emergency: bool, steps: &[(&str, ChangeAction)], at: DateTime<Utc>) -> ChangeRequest {
        let draft = ChangeDraft {
            title: "t".into(),
            reason: "r".into(),
            assets: vec![AssetName::new("plc1").expect("valid")],
            risk: Risk::Low,
            impact: "i".into(),
            rollback: "r".into(),
            test_plan: None,
            window_from: None,
            window_to: None,
            emergency,
            policy_approvals: None,
            checklist: Vec::new(),
        };
        let mut state = None;
        let mut all = vec![("alice", ChangeAction::Create(draft))];
        all.extend(steps.iter().cloned());
        for (i, (actor, action)) in all.into_iter().enumerate() {
            let event = ChangeEvent { change: ChangeId(1), seq: i as u32 + 1, at, actor: actor.into(), action };
            state = Some(apply(state.as_ref(), &event).expect("legal"));
        }
        state.expect("created")
    }

    fn classify(
        crit: Criticality,
        latest: &ConfigVersion,
        base: Option<&ConfigVersion>,
        seen_days_ago: i64,
        changes: &[&ChangeRequest],
    ) -> DriftEntry {
        let slot = latest.slot.clone();
        let input =
            SlotInput { slot: &slot, latest, last_seen_at: now() - Duration::days(seen_days_ago), baseline: base };
        let mut out = classify_asset(&asset(crit), &[input], changes, now(), &Policy::default());
        assert_eq!(out.len(), 1);
        out.remove(0)
    }

    fn check(entry: DriftEntry, status: DriftStatus, detail: &str) {
        assert_eq!(entry.status, status, "{}", entry.detail);
        assert_eq!(entry.detail, detail);
    }

    #[test]
    fn statuses() {
        let v1 = version(1, "aa", None);
        let v2 = version(2, "bb", None);
        let v3_same = version(3, "aa", None);
        check(classify(Criticality::High, &v1, Some(&v1), 1, &[]), DriftStatus::InBaseline, "matches baseline v1");
        check(
            classify(Criticality::High, &v3_same, Some(&v1), 1, &[]),
            DriftStatus::InBaseline,
            "v3 has the same content as baseline v1",
        );
        check(
            classify(Criticality::High, &v1, None, 1, &[]),
            DriftStatus::NoBaseline,
            "v1 captured, no baseline approved",
        );
        check(
            classify(Criticality::High, &v2, Some(&v1), 1, &[]),
            DriftStatus::DriftUnauthorized,
            "v2 differs from baseline v1 and no change covers it",
        );
        check(
            classify(Criticality::Critical, &v1, Some(&v1), 8, &[]),
            DriftStatus::Stale,
            "last capture 8 days ago; critical assets need one every 7 days; matches baseline v1",
        );
        // Unauthorized outranks stale.
        assert_eq!(classify(Criticality::Critical, &v2, Some(&v1), 8, &[]).status, DriftStatus::DriftUnauthorized);
    }

    #[test]
    fn never_captured_is_stale() {
        let out = classify_asset(&asset(Criticality::Low), &[], &[], now(), &Policy::default());
        assert_eq!(out[0].status, DriftStatus::Stale);
        assert_eq!(out[0].detail, "never captured (low assets need a capture every 180 days)");
    }

    #[test]
    fn drift_linked_to_changes() {
        let v1 = version(1, "aa", None);
        let linked = version(2, "bb", Some(1));
        let approved =
            change(false, &[("alice", ChangeAction::Submit), ("bob", ChangeAction::Approve { comment: None })], now());
        check(
            classify(Criticality::High, &linked, Some(&v1), 1, &[&approved]),
            DriftStatus::DriftAuthorized,
            "v2 differs from baseline v1; authorized by CR-0001 (approved)",
        );
        let submitted = change(false, &[("alice", ChangeAction::Submit)], now());
        check(
            classify(Criticality::High, &linked, Some(&v1), 1, &[&submitted]),
            DriftStatus::DriftUnauthorized,
            "v2 differs from baseline v1; CR-0001 is submitted and does not authorize it",
        );
        let unlinked = version(2, "bb", None);
        check(
            classify(Criticality::High, &unlinked, Some(&v1), 1, &[&approved]),
            DriftStatus::DriftUnauthorized,
            "v2 differs from baseline v1; CR-0001 covers this asset but the capture is not linked to it (capture again with --change CR-0001)",
        );
        let implement = ChangeAction::Implement { note: None, captures: vec![], checklist_done: false };
        // A change that no longer takes captures is named, but `--change` is not suggested: it would be refused.
        let implemented = change(
            false,
            &[
                ("alice", ChangeAction::Submit),
                ("bob", ChangeAction::Approve { comment: None }),
                ("alice", implement.clone()),
            ],
            now(),
        );
        assert!(implemented.accepts_captures().is_err());
        check(
            classify(Criticality::High, &unlinked, Some(&v1), 1, &[&implemented]),
            DriftStatus::DriftUnauthorized,
            "v2 differs from baseline v1; CR-0001 covers this asset but is implemented and takes no more captures: open a new change request, or approve v2 as the baseline if it is right",
        );
        let fresh_emergency = change(true, &[("alice", implement.clone())], now() - Duration::hours(10));
        check(
            classify(Criticality::High, &linked, Some(&v1), 1, &[&fresh_emergency]),
            DriftStatus::DriftAuthorized,
            "v2 differs from baseline v1; authorized by CR-0001 (implemented), emergency change awaiting retrospective approval",
        );
        let late_emergency = change(true, &[("alice", implement)], now() - Duration::hours(80));
        check(
            classify(Criticality::High, &linked, Some(&v1), 1, &[&late_emergency]),
            DriftStatus::DriftUnauthorized,
            "v2 differs from baseline v1; emergency change CR-0001 was not approved in time",
        );
    }
}
