//! The records a site keeps: assets, configuration versions, baselines, restore tests and reviews.
//!
//! These are domain types. How they are laid out in automerge documents is `document`'s business; how they
//! are stored in SQLite is the edge's. Change requests have their own module (`change`) because they are an
//! event log folded by a reducer, not a record edited in place.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{AssetName, ChangeId, SiteId, SlotName};
// Where edge and hub find it; it lives in `text` so that `ids` can use it without importing `model`.
pub use crate::text::check_text;

/// What an asset is. The list follows the asset classes IEC 62443-2-1 inventories ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AssetKind {
    Plc,
    Dcs,
    ScadaServer,
    Hmi,
    Historian,
    EngineeringWorkstation,
    Switch,
    Router,
    Firewall,
    Rtu,
    SafetyController,
    Server,
    Other,
}

impl AssetKind {
    pub const ALL: [AssetKind; 13] = [
        AssetKind::Plc,
        AssetKind::Dcs,
        AssetKind::ScadaServer,
        AssetKind::Hmi,
        AssetKind::Historian,
        AssetKind::EngineeringWorkstation,
        AssetKind::Switch,
        AssetKind::Router,
        AssetKind::Firewall,
        AssetKind::Rtu,
        AssetKind::SafetyController,
        AssetKind::Server,
        AssetKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AssetKind::Plc => "plc",
            AssetKind::Dcs => "dcs",
            AssetKind::ScadaServer => "scada-server",
            AssetKind::Hmi => "hmi",
            AssetKind::Historian => "historian",
            AssetKind::EngineeringWorkstation => "engineering-workstation",
            AssetKind::Switch => "switch",
            AssetKind::Router => "router",
            AssetKind::Firewall => "firewall",
            AssetKind::Rtu => "rtu",
            AssetKind::SafetyController => "safety-controller",
            AssetKind::Server => "server",
            AssetKind::Other => "other",
        }
    }

    /// The slot a capture goes to when the user names none.
    pub fn default_slot(self) -> SlotName {
        let name = match self {
            AssetKind::Plc | AssetKind::Dcs | AssetKind::Rtu | AssetKind::SafetyController => "plc-program",
            AssetKind::Switch | AssetKind::Router => "running-config",
            AssetKind::Firewall => "firewall-rules",
            AssetKind::Hmi | AssetKind::ScadaServer => "project",
            AssetKind::Historian | AssetKind::EngineeringWorkstation | AssetKind::Server | AssetKind::Other => "config",
        };
        SlotName::new(name).expect("default slot names are valid")
    }
}

impl fmt::Display for AssetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is not one of: {allowed}")]
pub struct ParseEnumError {
    pub what: &'static str,
    pub value: String,
    pub allowed: String,
}

impl FromStr for AssetKind {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, ParseEnumError> {
        let wanted = s.trim().to_ascii_lowercase().replace(['_', ' '], "-");
        AssetKind::ALL.into_iter().find(|k| k.as_str() == wanted).ok_or_else(|| ParseEnumError {
            what: "asset kind",
            value: s.to_string(),
            allowed: AssetKind::ALL.map(|k| k.as_str()).join(", "),
        })
    }
}

/// How much harm a compromise or misconfiguration of the asset can do. Drives every interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Criticality {
    Low,
    Medium,
    High,
    Critical,
}

impl Criticality {
    pub const ALL: [Criticality; 4] = [Criticality::Low, Criticality::Medium, Criticality::High, Criticality::Critical];
    pub fn as_str(self) -> &'static str {
        match self {
            Criticality::Low => "low",
            Criticality::Medium => "medium",
            Criticality::High => "high",
            Criticality::Critical => "critical",
        }
    }
}

impl fmt::Display for Criticality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Criticality {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, ParseEnumError> {
        let wanted = s.trim().to_ascii_lowercase();
        Criticality::ALL.into_iter().find(|c| c.as_str() == wanted).ok_or_else(|| ParseEnumError {
            what: "criticality",
            value: s.to_string(),
            allowed: "low, medium, high, critical".to_string(),
        })
    }
}

/// Risk of a change request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Risk {
    Low,
    Medium,
    High,
}

impl FromStr for Risk {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, ParseEnumError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "low" => Ok(Risk::Low),
            "medium" => Ok(Risk::Medium),
            "high" => Ok(Risk::High),
            _ => Err(ParseEnumError { what: "risk", value: s.to_string(), allowed: "low, medium, high".to_string() }),
        }
    }
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
        })
    }
}

/// One entry of the asset inventory (IEC 62443-3-3 SR 7.8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asset {
    pub name: AssetName,
    pub kind: AssetKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    pub criticality: Criticality,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub in_scope: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Columns of an imported CSV that Datum has no field for (column names lower-cased, values verbatim).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_reason: Option<String>,
}

impl Asset {
    /// The projection collection (and document map) of assets.
    pub const COLLECTION: &'static str = "assets";

    /// A new asset in scope with nothing known but its name, kind and criticality, made by `by` at `at`.
    pub fn new(name: AssetName, kind: AssetKind, criticality: Criticality, by: &str, at: DateTime<Utc>) -> Asset {
        Asset {
            name,
            kind,
            vendor: None,
            model: None,
            serial: None,
            firmware: None,
            location: None,
            zone: None,
            ip: None,
            criticality,
            owner: None,
            in_scope: true,
            tags: Vec::new(),
            custom: BTreeMap::new(),
            created_at: at,
            created_by: by.to_string(),
            updated_at: at,
            updated_by: by.to_string(),
            retired_at: None,
            retired_reason: None,
        }
    }

    pub fn is_active(&self) -> bool {
        self.retired_at.is_none()
    }
}

/// The editable descriptive fields of an asset, each optional: used by `asset add`, `asset edit` and import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssetFields {
    pub kind: Option<AssetKind>,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub firmware: Option<String>,
    pub location: Option<String>,
    pub zone: Option<String>,
    pub ip: Option<String>,
    pub criticality: Option<Criticality>,
    pub owner: Option<String>,
    pub in_scope: Option<bool>,
    pub tags: Option<Vec<String>>,
    pub custom: Option<BTreeMap<String, String>>,
}

/// An IP field is free text in many inventories ("10.0.0.5", "10.0.0.5/24", "dhcp"); we accept an address or a
/// CIDR and refuse anything else so exports stay machine-usable.
pub fn validate_ip(value: &str) -> Result<(), String> {
    let (addr, prefix) = match value.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (value, None),
    };
    let parsed: std::net::IpAddr = addr.parse().map_err(|_| format!("ip {value:?} is not an IPv4/IPv6 address"))?;
    if let Some(prefix) = prefix {
        let max = if parsed.is_ipv4() { 32 } else { 128 };
        match prefix.parse::<u8>() {
            Ok(p) if p <= max => {}
            _ => return Err(format!("ip {value:?} has an invalid prefix length")),
        }
    }
    Ok(())
}

impl AssetFields {
    /// Checks the free-text fields: no control characters, bounded length, a parseable IP.
    pub fn validate(&self) -> Result<(), String> {
        let texts = [
            ("vendor", &self.vendor),
            ("model", &self.model),
            ("serial", &self.serial),
            ("firmware", &self.firmware),
            ("location", &self.location),
            ("zone", &self.zone),
            ("owner", &self.owner),
        ];
        for (field, value) in texts {
            if let Some(v) = value {
                check_text(field, v, 256)?;
            }
        }
        if let Some(ip) = &self.ip {
            if !ip.is_empty() {
                validate_ip(ip)?;
            }
        }
        for tag in self.tags.iter().flatten() {
            check_text("tag", tag, 64)?;
            if tag.is_empty() {
                return Err("tags must not be empty".into());
            }
        }
        for (k, v) in self.custom.iter().flatten() {
            check_text("custom field name", k, 64)?;
            check_text(k, v, 1024)?;
        }
        Ok(())
    }

    /// Applies the set fields to an asset. Returns whether anything changed.
    pub fn apply_to(&self, asset: &mut Asset) -> bool {
        let before = asset.clone();
        if let Some(k) = self.kind {
            asset.kind = k;
        }
        if let Some(c) = self.criticality {
            asset.criticality = c;
        }
        if let Some(s) = self.in_scope {
            asset.in_scope = s;
        }
        let set = |slot: &mut Option<String>, value: &Option<String>| {
            if let Some(v) = value {
                *slot = if v.is_empty() { None } else { Some(v.clone()) };
            }
        };
        set(&mut asset.vendor, &self.vendor);
        set(&mut asset.model, &self.model);
        set(&mut asset.serial, &self.serial);
        set(&mut asset.firmware, &self.firmware);
        set(&mut asset.location, &self.location);
        set(&mut asset.zone, &self.zone);
        set(&mut asset.ip, &self.ip);
        set(&mut asset.owner, &self.owner);
        if let Some(tags) = &self.tags {
            let mut tags = tags.clone();
            tags.sort();
            tags.dedup();
            asset.tags = tags;
        }
        // Custom fields merge: a column present with a value sets it, present but empty removes it, absent
        // leaves it alone (an import of another spreadsheet must not wipe fields it does not know).
        for (k, v) in self.custom.iter().flatten() {
            if v.is_empty() {
                asset.custom.remove(k);
            } else {
                asset.custom.insert(k.clone(), v.clone());
            }
        }
        *asset != before
    }
}

/// A hex SHA-256 of raw bytes: the identity of a stored configuration file.
pub use crate::ids::BlobHash;

/// A stored version of one artifact (slot) of one asset: a backup (SR 7.3) and a configuration record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigVersion {
    pub asset: AssetName,
    pub slot: SlotName,
    /// 1, 2, 3… per (asset, slot).
    pub version: u32,
    pub raw_hash: BlobHash,
    /// Hash of the normalised content (noise removed, secrets fingerprinted); drift compares this one.
    pub normalized_hash: BlobHash,
    /// Version of the normalisation rules that made `normalized_hash`; 0 means none (the raw hash, e.g. a file
    /// too large to normalise). Hashes of different rule versions are never compared.
    #[serde(default)]
    pub normalizer: u32,
    /// The detected format (`cisco-ios`, `rockwell-l5x`…), when normalised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    pub captured_at: DateTime<Utc>,
    pub captured_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<ChangeId>,
}

impl ConfigVersion {
    /// The collection of configuration versions (in the `configs/<YYYY-MM>` documents).
    pub const COLLECTION: &'static str = "versions";

    /// Do two versions hold the same configuration? By normalised hash when both were normalised by the same
    /// rules, otherwise by raw bytes.
    pub fn same_content(&self, other: &ConfigVersion) -> bool {
        if self.normalizer == other.normalizer && self.normalizer != 0 {
            self.normalized_hash == other.normalized_hash
        } else {
            self.raw_hash == other.raw_hash
        }
    }
}

/// A capture whose bytes equalled the latest version: "checked, unchanged". It proves the backup is current.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigCheck {
    pub asset: AssetName,
    pub slot: SlotName,
    pub version: u32,
    pub checked_at: DateTime<Utc>,
    pub checked_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<ChangeId>,
}

impl ConfigCheck {
    /// The collection of "unchanged" checks (in the `configs/<YYYY-MM>` documents).
    pub const COLLECTION: &'static str = "checks";
}

/// The approved configuration of one slot of one asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    pub asset: AssetName,
    pub slot: SlotName,
    pub version: u32,
    pub approved_at: DateTime<Utc>,
    pub approved_by: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<ChangeId>,
}

impl Baseline {
    /// The collection of approved baselines (in the `baselines` document).
    pub const COLLECTION: &'static str = "baselines";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TestResult {
    Pass,
    Fail,
}

impl FromStr for TestResult {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, ParseEnumError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pass" => Ok(TestResult::Pass),
            "fail" => Ok(TestResult::Fail),
            _ => Err(ParseEnumError { what: "result", value: s.to_string(), allowed: "pass, fail".into() }),
        }
    }
}

/// Evidence that a stored version was restored onto real or test equipment (SR 7.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreTest {
    pub id: u32,
    pub asset: AssetName,
    pub slot: SlotName,
    pub version: u32,
    pub result: TestResult,
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_hash: Option<BlobHash>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    pub tested_at: DateTime<Utc>,
    pub tested_by: String,
}

impl RestoreTest {
    /// The collection of restore tests (in the `records/<YYYY>` documents).
    pub const COLLECTION: &'static str = "restore_tests";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReviewOutcome {
    Ok,
    Findings,
}

impl FromStr for ReviewOutcome {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, ParseEnumError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ok" => Ok(ReviewOutcome::Ok),
            "findings" => Ok(ReviewOutcome::Findings),
            _ => Err(ParseEnumError { what: "outcome", value: s.to_string(), allowed: "ok, findings".into() }),
        }
    }
}

/// A periodic review of one or more assets, with the drift state seen at that moment as evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub id: u32,
    pub assets: Vec<AssetName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    pub outcome: ReviewOutcome,
    pub notes: String,
    pub reviewed_at: DateTime<Utc>,
    pub reviewed_by: String,
    /// The drift report for the reviewed assets at review time.
    pub drift: Vec<DriftEntry>,
    /// Answers to templates' `manual` checklist items given at this review, for every asset reviewed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answers: Vec<ManualAnswer>,
}

/// A reviewer's answer to one `manual` rule of a template (`review record --answer TEMPLATE/RULE=yes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManualAnswer {
    pub template: String,
    pub rule: String,
    pub answer: Answer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Answer {
    Yes,
    No,
    NotApplicable,
}

impl FromStr for Answer {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, ParseEnumError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "yes" | "y" => Ok(Answer::Yes),
            "no" | "n" => Ok(Answer::No),
            "n/a" | "na" | "not-applicable" => Ok(Answer::NotApplicable),
            _ => Err(ParseEnumError { what: "answer", value: s.to_string(), allowed: "yes, no, n/a".into() }),
        }
    }
}

impl Review {
    /// The collection of periodic reviews (in the `records/<YYYY>` documents).
    pub const COLLECTION: &'static str = "reviews";
}

/// How one slot of one asset stands against its baseline (the drift report, `drift::classify_asset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftStatus {
    InBaseline,
    NoBaseline,
    DriftAuthorized,
    Stale,
    DriftUnauthorized,
}

impl DriftStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftStatus::InBaseline => "in-baseline",
            DriftStatus::NoBaseline => "no-baseline",
            DriftStatus::DriftAuthorized => "drift-authorized",
            DriftStatus::Stale => "stale",
            DriftStatus::DriftUnauthorized => "drift-unauthorized",
        }
    }
    /// Statuses that make `drift` exit 1.
    pub fn is_finding(self) -> bool {
        matches!(self, DriftStatus::Stale | DriftStatus::DriftUnauthorized)
    }
}

/// One line of the drift report, kept in a review as the evidence of what it saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftEntry {
    pub asset: AssetName,
    /// `None` for an asset that has never been captured.
    pub slot: Option<SlotName>,
    pub criticality: Criticality,
    pub status: DriftStatus,
    #[serde(default)]
    pub baseline_version: Option<u32>,
    #[serde(default)]
    pub latest_version: Option<u32>,
    #[serde(default)]
    pub last_capture_at: Option<DateTime<Utc>>,
    /// The change that authorizes the drift, or that would have if the capture had been linked to it.
    #[serde(default)]
    pub change: Option<ChangeId>,
    pub detail: String,
}

/// The site's identity record, written once at `init`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteInfo {
    pub site_id: SiteId,
    /// The identifier (`plant-north-2`): in keys, certificates and the hub's records.
    pub name: String,
    /// The name people use (`Plant North 2`), when it differs from the identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    /// Hex Ed25519 public key that signs this site's audit chain.
    pub audit_key: String,
}

impl SiteInfo {
    /// The collection of the site identity (in the `site` document), and the one key in it.
    pub const COLLECTION: &'static str = "site";
    pub const KEY: &'static str = "identity";
}
