//! A read-only view of a site assembled from the projection tables: what reports and rule checks need.

use std::collections::{BTreeMap, HashMap};

use anyhow::Result;
use chrono::{DateTime, Utc};
use datum_shared::change::{fold, ChangeEvent, ChangeRequest, IgnoredEvent, VersionRef};
use datum_shared::drift::{classify_asset, DriftEntry, SlotInput};
use datum_shared::model::{Asset, Baseline, ConfigCheck, ConfigVersion, RestoreTest, Review};
use datum_shared::{AssetName, ChangeId, SlotName};

use crate::site::Site;

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
    pub check_changes: HashMap<(SlotKey, u32), datum_shared::ChangeId>,
    pub baselines: BTreeMap<SlotKey, Baseline>,
    pub changes: BTreeMap<ChangeId, ChangeRequest>,
    pub ignored_events: BTreeMap<ChangeId, Vec<IgnoredEvent>>,
    pub restore_tests: Vec<RestoreTest>,
    pub reviews: Vec<Review>,
}

impl View {
    /// Loads everything reports need.
    pub async fn load(site: &Site) -> Result<View> {
        let mut view = View::default();
        for asset in site.list::<Asset>("assets").await? {
            view.assets.insert(asset.name.clone(), asset);
        }
        for v in site.list::<ConfigVersion>("versions").await? {
            view.versions.entry((v.asset.clone(), v.slot.clone())).or_default().push(v);
        }
        for list in view.versions.values_mut() {
            list.sort_by_key(|v| v.version);
        }
        for c in site.list::<ConfigCheck>("checks").await? {
            let key = (c.asset.clone(), c.slot.clone());
            if let Some(change) = c.change {
                view.check_changes.insert((key.clone(), c.version), change);
            }
            let slot = view.last_check.entry(key).or_insert(c.checked_at);
            *slot = (*slot).max(c.checked_at);
        }
        for b in site.list::<Baseline>("baselines").await? {
            view.baselines.insert((b.asset.clone(), b.slot.clone()), b);
        }
        view.load_changes(site).await?;
        view.restore_tests = site.list("restore_tests").await?;
        view.reviews = site.list("reviews").await?;
        Ok(view)
    }

    pub async fn load_changes(&mut self, site: &Site) -> Result<()> {
        let mut events: BTreeMap<ChangeId, Vec<ChangeEvent>> = BTreeMap::new();
        for e in site.list::<ChangeEvent>("change_events").await? {
            events.entry(e.change).or_default().push(e);
        }
        for (id, list) in events {
            let (state, ignored) = fold(&list);
            if let Some(state) = state {
                self.changes.insert(id, state);
            }
            if !ignored.is_empty() {
                self.ignored_events.insert(id, ignored);
            }
        }
        Ok(())
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
    pub fn drift(&self, site: &Site, zone: Option<&str>) -> Vec<DriftEntry> {
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
            out.extend(classify_asset(asset, &inputs, &changes, site.now, &site.policy));
        }
        out
    }
}

pub fn version_ref(v: &ConfigVersion) -> VersionRef {
    VersionRef { asset: v.asset.clone(), slot: v.slot.clone(), version: v.version, raw_hash: v.raw_hash.clone() }
}
