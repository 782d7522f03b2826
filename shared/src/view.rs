//! A read-only assembly of one site's records for reports and rule checks: drift, backup and restore-test
//! age, review due dates. Pure: the edge feeds it its projection, the hub its copy of the site's records, and
//! both get the same answers.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde::de::DeserializeOwned;

use crate::change::{fold, ChangeEvent, ChangeRequest, IgnoredEvent, VersionRef};
use crate::drift::{classify_asset, DriftEntry, SlotInput};
use crate::model::{Asset, Baseline, ConfigCheck, ConfigVersion, RestoreTest, Review, TestResult};
use crate::policy::Policy;
use crate::{AssetName, ChangeId, SlotName};

/// The collections `View::from_rows` reads.
pub const COLLECTIONS: [&str; 7] = [
    Asset::COLLECTION,
    ConfigVersion::COLLECTION,
    ConfigCheck::COLLECTION,
    Baseline::COLLECTION,
    ChangeEvent::COLLECTION,
    RestoreTest::COLLECTION,
    Review::COLLECTION,
];

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("decode {collection}/{key}: {error}")]
    Decode { collection: String, key: String, error: String },
}

/// Backup and restore-test age of one asset.
#[derive(Debug, Clone)]
pub struct BackupState {
    pub last_backup: Option<DateTime<Utc>>,
    pub backup_interval: Duration,
    pub backup_overdue: bool,
    pub last_test: Option<DateTime<Utc>>,
    pub test_interval: Duration,
    pub test_overdue: bool,
}

/// Review due date of one asset.
#[derive(Debug, Clone)]
pub struct ReviewState {
    pub last: Option<DateTime<Utc>>,
    pub interval: Duration,
    pub due_at: DateTime<Utc>,
    pub status: ReviewStatus,
}

/// Whether an asset's periodic review is due: `ok`, `due` within the notice period, or `overdue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReviewStatus {
    Ok,
    Due,
    Overdue,
}

impl ReviewStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewStatus::Ok => "ok",
            ReviewStatus::Due => "due",
            ReviewStatus::Overdue => "overdue",
        }
    }
    /// Past the due date: `review due` exits 1, the hub counts it.
    pub fn is_overdue(self) -> bool {
        self == ReviewStatus::Overdue
    }
}

pub type SlotKey = (AssetName, SlotName);

#[derive(Default)]
pub struct View {
    pub assets: BTreeMap<AssetName, Asset>,
    /// Versions per slot, oldest first.
    pub versions: BTreeMap<SlotKey, Vec<ConfigVersion>>,
    /// Newest "unchanged" check per slot.
    pub last_check: HashMap<SlotKey, DateTime<Utc>>,
    /// Changes that unchanged checks of a version were linked to (`config capture --change` of identical
    /// bytes): they link the version to the change as a new capture would.
    pub check_changes: HashMap<(SlotKey, u32), ChangeId>,
    pub baselines: BTreeMap<SlotKey, Baseline>,
    pub changes: BTreeMap<ChangeId, ChangeRequest>,
    pub ignored_events: BTreeMap<ChangeId, Vec<IgnoredEvent>>,
    pub restore_tests: Vec<RestoreTest>,
    pub reviews: Vec<Review>,
}

impl View {
    /// Assembles a view from a projection: `rows(collection)` gives the (key, JSON) rows of one collection
    /// (`COLLECTIONS` lists the ones read).
    pub fn from_rows(rows: impl Fn(&str) -> Vec<(String, String)>) -> Result<View, ViewError> {
        let mut view = View::default();
        for asset in decode::<Asset>(Asset::COLLECTION, rows(Asset::COLLECTION))? {
            view.assets.insert(asset.name.clone(), asset);
        }
        for v in decode::<ConfigVersion>(ConfigVersion::COLLECTION, rows(ConfigVersion::COLLECTION))? {
            view.versions.entry((v.asset.clone(), v.slot.clone())).or_default().push(v);
        }
        for list in view.versions.values_mut() {
            list.sort_by_key(|v| v.version);
        }
        for c in decode::<ConfigCheck>(ConfigCheck::COLLECTION, rows(ConfigCheck::COLLECTION))? {
            let key = (c.asset.clone(), c.slot.clone());
            if let Some(change) = c.change {
                view.check_changes.insert((key.clone(), c.version), change);
            }
            let slot = view.last_check.entry(key).or_insert(c.checked_at);
            *slot = (*slot).max(c.checked_at);
        }
        for b in decode::<Baseline>(Baseline::COLLECTION, rows(Baseline::COLLECTION))? {
            view.baselines.insert((b.asset.clone(), b.slot.clone()), b);
        }
        view.add_change_events(decode(ChangeEvent::COLLECTION, rows(ChangeEvent::COLLECTION))?);
        view.restore_tests = decode(RestoreTest::COLLECTION, rows(RestoreTest::COLLECTION))?;
        view.reviews = decode(Review::COLLECTION, rows(Review::COLLECTION))?;
        Ok(view)
    }

    /// Folds change events (any order) into change requests.
    pub fn add_change_events(&mut self, list: Vec<ChangeEvent>) {
        let mut events: BTreeMap<ChangeId, Vec<ChangeEvent>> = BTreeMap::new();
        for e in list {
            events.entry(e.change).or_default().push(e);
        }
        for (id, mut list) in events {
            list.sort_by_key(|e| e.seq);
            let (state, ignored) = fold(&list);
            if let Some(state) = state {
                self.changes.insert(id, state);
            }
            if !ignored.is_empty() {
                self.ignored_events.insert(id, ignored);
            }
        }
    }

    /// Active, in-scope assets: the ones reports cover.
    pub fn reported_assets(&self) -> impl Iterator<Item = &Asset> {
        self.assets.values().filter(|a| a.is_active() && a.in_scope)
    }

    /// Backup (capture) and restore-test age of one asset against the intervals its criticality requires.
    pub fn backup_state(&self, asset: &Asset, now: DateTime<Utc>, policy: &Policy) -> BackupState {
        let last_backup = self.slots_of(&asset.name).iter().filter_map(|s| self.last_seen(&asset.name, s)).max();
        let last_test = self
            .restore_tests
            .iter()
            .filter(|t| t.asset == asset.name && t.result == TestResult::Pass)
            .map(|t| t.tested_at)
            .max();
        let backup_interval = policy.capture_interval(asset.criticality);
        let test_interval = policy.restore_test_interval(asset.criticality);
        BackupState {
            last_backup,
            backup_interval,
            backup_overdue: last_backup.is_none_or(|t| now - t > backup_interval),
            last_test,
            test_interval,
            test_overdue: last_test.is_none_or(|t| now - t > test_interval),
        }
    }

    /// When one asset's periodic review is due, and whether it is `ok`, `due` (within the notice period) or
    /// `overdue`.
    pub fn review_state(&self, asset: &Asset, now: DateTime<Utc>, policy: &Policy) -> ReviewState {
        let last = self.reviews.iter().filter(|r| r.assets.contains(&asset.name)).map(|r| r.reviewed_at).max();
        let interval = policy.review_interval(asset.criticality);
        let due_at = last.unwrap_or(asset.created_at) + interval;
        let status = if now > due_at {
            ReviewStatus::Overdue
        } else if due_at - now <= chrono::Duration::days(policy.review_notice_days) {
            ReviewStatus::Due
        } else {
            ReviewStatus::Ok
        };
        ReviewState { last, interval, due_at, status }
    }

    pub fn slots_of(&self, asset: &AssetName) -> Vec<&SlotName> {
        self.versions.keys().filter(|(a, _)| a == asset).map(|(_, s)| s).collect()
    }

    pub fn latest(&self, asset: &AssetName, slot: &SlotName) -> Option<&ConfigVersion> {
        self.versions.get(&(asset.clone(), slot.clone())).and_then(|l| l.last())
    }

    pub fn version(&self, asset: &AssetName, slot: &SlotName, n: u32) -> Option<&ConfigVersion> {
        self.versions.get(&(asset.clone(), slot.clone())).and_then(|l| l.iter().find(|v| v.version == n))
    }

    pub fn latest_ref(&self, asset: &AssetName, slot: &SlotName) -> Option<VersionRef> {
        self.latest(asset, slot).map(version_ref)
    }

    /// When a slot's content was last seen (captured or checked unchanged).
    pub fn last_seen(&self, asset: &AssetName, slot: &SlotName) -> Option<DateTime<Utc>> {
        let key = (asset.clone(), slot.clone());
        let captured = self.versions.get(&key).and_then(|l| l.iter().map(|v| v.captured_at).max());
        match (captured, self.last_check.get(&key).copied()) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// The drift report over active, in-scope assets.
    pub fn drift(&self, now: DateTime<Utc>, policy: &Policy, zone: Option<&str>) -> Vec<DriftEntry> {
        let mut out = Vec::new();
        for asset in self.assets.values() {
            if !asset.is_active() || !asset.in_scope {
                continue;
            }
            if zone.is_some() && asset.zone.as_deref() != zone {
                continue;
            }
            let slots: Vec<&SlotName> = self.slots_of(&asset.name);
            // The newest version of each slot, linked to a change by a later check if it was not at capture.
            let latest: Vec<Option<ConfigVersion>> = slots
                .iter()
                .map(|slot| {
                    let mut v = self.latest(&asset.name, slot)?.clone();
                    if v.change.is_none() {
                        v.change = self.check_changes.get(&((asset.name.clone(), (*slot).clone()), v.version)).copied();
                    }
                    Some(v)
                })
                .collect();
            let inputs: Vec<SlotInput<'_>> = slots
                .iter()
                .zip(&latest)
                .filter_map(|(slot, latest)| {
                    let latest = latest.as_ref()?;
                    let baseline = self
                        .baselines
                        .get(&(asset.name.clone(), (*slot).clone()))
                        .and_then(|b| self.version(&asset.name, slot, b.version));
                    Some(SlotInput {
                        slot,
                        latest,
                        last_seen_at: self.last_seen(&asset.name, slot).unwrap_or(latest.captured_at),
                        baseline,
                    })
                })
                .collect();
            let changes: Vec<&ChangeRequest> =
                self.changes.values().filter(|c| c.draft.assets.contains(&asset.name)).collect();
            out.extend(classify_asset(asset, &inputs, &changes, now, policy));
        }
        out
    }
}

pub fn version_ref(v: &ConfigVersion) -> VersionRef {
    VersionRef { asset: v.asset.clone(), slot: v.slot.clone(), version: v.version, raw_hash: v.raw_hash.clone() }
}

fn decode<R: DeserializeOwned>(collection: &str, rows: Vec<(String, String)>) -> Result<Vec<R>, ViewError> {
    rows.into_iter()
        .map(|(key, json)| {
            serde_json::from_str(&json).map_err(|e| ViewError::Decode {
                collection: collection.to_string(),
                key,
                error: e.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SiteInfo;

    /// Collection names are stored (documents, projection rows, dumps, the hub's copy): renaming a constant
    /// must not rename what is on disk.
    #[test]
    fn collection_names_are_the_stored_ones() {
        let stored = ["assets", "versions", "checks", "baselines", "change_events", "restore_tests", "reviews"];
        assert_eq!(COLLECTIONS, stored);
        assert_eq!((SiteInfo::COLLECTION, SiteInfo::KEY), ("site", "identity"));
    }
}
