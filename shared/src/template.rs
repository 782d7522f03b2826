//! Shared templates: a standard written once (a TOML file), checked against each plant's records offline.
//!
//! This module is the format and the rule engine, pure: [`Template::parse`] reads and validates a template file
//! (every problem named with its rule), [`Template::check_snippets`] runs each rule's own `pass`/`fail` examples
//! (a template whose examples do not give the stated results is not publishable), and [`evaluate`] decides one
//! rule for one asset and its newest configuration's normalised lines. Rules see the normalised lines (the same
//! as drift and diffs: comments and noise gone, secrets masked), each with its block context.
//!
//! Rule kinds: `require`/`forbid` (a regex over lines, optionally only `within` blocks whose context matches),
//! `key` with `equals | one_of | at_least | at_most | matches` (key/value formats — sshd_config, sysctl, INF,
//! UCI, `key = value` — and XML/JSON exports with `path`, a regex over the element path, and `key = "@Attr"`
//! for an element's attribute), inventory `field`
//! with `required | one_of | at_least_version`, and `manual` checklist items answered at a review.
//! Parameters (`{name}` in a pattern) are set per site at assignment and substituted regex-escaped.
//!
//! Publishing, signing and the rollout to plants are `crate::rollout`; waivers, enforcement, policy and
//! change-request templates are not built yet.

use std::collections::BTreeMap;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::ids::AssetName;
use crate::model::{Answer, Asset, AssetKind, Criticality, Review};
use crate::normalize::{Format, NormLine, ALL_FORMATS};
use crate::policy::{CentralRule, PolicyTable};

/// Largest template file accepted.
pub const MAX_TEMPLATE_BYTES: usize = 256 * 1024;
/// Most rules in one template.
pub const MAX_RULES: usize = 500;
/// Largest compiled pattern (bytes of the regex program), so that a template cannot exhaust memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// What publishing a rule's failure does at the plant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Enforcement {
    /// Shown in compliance results and evidence only.
    Report,
    /// Also listed when a change is verified.
    Warn,
    /// A change whose captures bring a new non-compliance cannot be verified without a waiver.
    Gate,
}

/// A semantic version `MAJOR.MINOR.PATCH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version(pub u32, pub u32, pub u32);

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl std::str::FromStr for Version {
    type Err = String;
    fn from_str(s: &str) -> Result<Version, String> {
        let parts: Vec<&str> = s.trim().split('.').collect();
        let n = |p: &str| p.parse::<u32>().ok().filter(|_| !p.is_empty() && (p == "0" || !p.starts_with('0')));
        match parts.as_slice() {
            [a, b, c] => match (n(a), n(b), n(c)) {
                (Some(a), Some(b), Some(c)) => Ok(Version(a, b, c)),
                _ => Err(format!("version {s:?} is not MAJOR.MINOR.PATCH")),
            },
            _ => Err(format!("version {s:?} is not MAJOR.MINOR.PATCH")),
        }
    }
}

/// A comparison of a value (a key's, or an inventory field's).
#[derive(Debug, Clone)]
pub enum Cmp {
    Equals(String),
    OneOf(Vec<String>),
    /// The value read as a number (for `4,1` registry values: the last comma-separated part).
    AtLeast(f64),
    AtMost(f64),
    Matches(String),
}

/// What a rule checks.
#[derive(Debug, Clone)]
pub enum Check {
    /// Some line matches `pattern` (within the blocks whose context matches `within`, when given).
    Require { pattern: String, within: Option<String> },
    /// No line matches `pattern` (within …).
    Forbid { pattern: String, within: Option<String> },
    /// Every line setting `key` (case-insensitive; within the blocks or element paths matching `within`) has a
    /// value that passes `cmp`, and at least one does.
    Key { key: String, within: Option<String>, cmp: Cmp },
    /// An asset's inventory field: present (`required`), one of, or a firmware-style version at least.
    Field { field: String, required: bool, one_of: Option<Vec<String>>, at_least_version: Option<String> },
    /// A question answered by a person at a review.
    Manual { question: String },
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub title: String,
    pub check: Check,
    /// Configuration snippets this rule must find compliant, and ones it must find non-compliant.
    pub pass: Vec<String>,
    pub fail: Vec<String>,
}

/// Which assets a template applies to: every given list must match (an omitted one matches anything).
#[derive(Debug, Clone, Default)]
pub struct Applies {
    pub kind: Vec<AssetKind>,
    /// Format names as `datum-edge diff --json` reports them.
    pub format: Vec<Format>,
    pub criticality: Vec<Criticality>,
}

#[derive(Debug, Clone)]
pub struct Template {
    pub id: String,
    pub version: Version,
    pub title: String,
    pub enforcement: Enforcement,
    pub references: Vec<String>,
    /// A new version runs at a plant only once a site approver accepted it there (`datum-edge template
    /// accept`), instead of as soon as it verifies.
    pub local_acceptance: bool,
    pub applies: Applies,
    /// Parameters and their defaults.
    pub parameters: BTreeMap<String, Option<String>>,
    pub rules: Vec<Rule>,
    /// A policy template's `[policy]` table: intervals, approvals and the emergency window that replace the
    /// built-in defaults where the template is active (`crate::policy::Policy::from`).
    pub policy: Option<PolicyTable>,
    /// A change-request template's `[change]` table: fields every change request must fill and a checklist
    /// confirmed at implementation.
    pub change: Option<ChangeTable>,
}

/// A change-request template's `[change]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeTable {
    /// Fields a change request must fill besides the ones always required: `test_plan`, `window`.
    #[serde(default)]
    pub required: Vec<String>,
    /// Items the implementer confirms done when recording the implementation.
    #[serde(default)]
    pub checklist: Vec<String>,
    /// Which changes need a central approval from the hub (`crate::central`).
    #[serde(default)]
    pub central_approval: Option<CentralRule>,
}

/// Fields a `[change]` table may require.
pub const CHANGE_FIELDS: [&str; 2] = ["test_plan", "window"];
/// Most checklist items in one template.
const MAX_CHECKLIST: usize = 50;

impl ChangeTable {
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for f in &self.required {
            if !CHANGE_FIELDS.contains(&f.as_str()) {
                out.push(format!("change.required {f:?}: one of {}", CHANGE_FIELDS.join(", ")));
            }
        }
        if self.checklist.len() > MAX_CHECKLIST {
            out.push(format!("change.checklist: at most {MAX_CHECKLIST} items"));
        }
        for item in &self.checklist {
            if item.trim().is_empty() || item.chars().count() > 300 || item.chars().any(char::is_control) {
                out.push(format!("change.checklist item {item:?}: one line of at most 300 characters"));
            }
        }
        if self.central_approval.as_ref().is_some_and(|c| c.is_empty()) {
            out.push("change.central_approval names neither a risk, a criticality nor waivers".into());
        }
        if self.required.is_empty() && self.checklist.is_empty() && self.central_approval.is_none() {
            out.push("[change] requires nothing, has no checklist and asks for no central approval".into());
        }
        out
    }
}

/// Why a template file was refused: every problem found, each naming where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the template is not valid:\n  {}", .0.join("\n  "))]
pub struct Invalid(pub Vec<String>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    template: RawHead,
    #[serde(default)]
    applies: RawApplies,
    #[serde(default)]
    parameters: BTreeMap<String, RawParam>,
    #[serde(default, rename = "rule")]
    rules: Vec<RawRule>,
    #[serde(default)]
    policy: Option<PolicyTable>,
    #[serde(default)]
    change: Option<ChangeTable>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHead {
    id: String,
    version: String,
    title: String,
    #[serde(default = "default_enforcement")]
    enforcement: String,
    #[serde(default)]
    references: Vec<String>,
    #[serde(default = "default_acceptance")]
    acceptance: String,
}

fn default_acceptance() -> String {
    "automatic".into()
}

fn default_enforcement() -> String {
    "report".into()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawApplies {
    #[serde(default)]
    kind: Vec<String>,
    #[serde(default)]
    format: Vec<String>,
    #[serde(default)]
    criticality: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParam {
    #[serde(default)]
    default: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    #[serde(default)]
    title: Option<String>,
    require: Option<String>,
    forbid: Option<String>,
    within: Option<String>,
    path: Option<String>,
    key: Option<String>,
    equals: Option<String>,
    one_of: Option<Vec<String>>,
    at_least: Option<f64>,
    at_most: Option<f64>,
    matches: Option<String>,
    field: Option<String>,
    required: Option<bool>,
    at_least_version: Option<String>,
    manual: Option<String>,
    #[serde(default)]
    pass: Vec<String>,
    #[serde(default)]
    fail: Vec<String>,
}

/// Inventory fields a `field` rule may name.
const FIELDS: [&str; 8] = ["owner", "zone", "vendor", "model", "serial", "firmware", "location", "ip"];

fn field_of<'a>(asset: &'a Asset, field: &str) -> Option<&'a str> {
    let v = match field {
        "owner" => &asset.owner,
        "zone" => &asset.zone,
        "vendor" => &asset.vendor,
        "model" => &asset.model,
        "serial" => &asset.serial,
        "firmware" => &asset.firmware,
        "location" => &asset.location,
        "ip" => &asset.ip,
        _ => return None,
    };
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn plain_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
}

/// `{name}` placeholders of a pattern that are identifiers (regex quantifiers like `{2,3}` are not).
fn placeholders(pattern: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                if name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    out.push(name);
                }
                rest = &after[close + 1..];
            }
            None => break,
        }
    }
    out
}

/// The pattern with every parameter substituted (regex-escaped) and compiled.
pub fn compile(pattern: &str, params: &BTreeMap<String, String>) -> Result<Regex, String> {
    let mut text = pattern.to_string();
    for name in placeholders(pattern) {
        let value = params.get(name).ok_or_else(|| format!("parameter {name} has no value at this site"))?;
        text = text.replace(&format!("{{{name}}}"), &regex::escape(value));
    }
    regex::RegexBuilder::new(&text)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("pattern {pattern:?}: {e}"))
}

impl Template {
    /// Reads and validates a template file; every problem is reported at once.
    pub fn parse(text: &str) -> Result<Template, Invalid> {
        if text.len() > MAX_TEMPLATE_BYTES {
            return Err(Invalid(vec![format!("the file is larger than {MAX_TEMPLATE_BYTES} bytes")]));
        }
        let raw: RawFile = toml::from_str(text).map_err(|e| Invalid(vec![e.to_string().trim().to_string()]))?;
        let mut problems = Vec::new();
        let h = &raw.template;
        if !plain_id(&h.id) {
            problems.push(format!("template id {:?}: letters, digits, '-', '_', '.' (at most 64)", h.id));
        }
        let version = h.version.parse::<Version>().unwrap_or_else(|e| {
            problems.push(e);
            Version(0, 0, 0)
        });
        if h.title.trim().is_empty() {
            problems.push("the template has no title".into());
        }
        let enforcement = match h.enforcement.as_str() {
            "report" => Enforcement::Report,
            "warn" => Enforcement::Warn,
            "gate" => Enforcement::Gate,
            other => {
                problems.push(format!("enforcement {other:?}: report, warn or gate"));
                Enforcement::Report
            }
        };
        let local_acceptance = match h.acceptance.as_str() {
            "automatic" => false,
            "local" => true,
            other => {
                problems.push(format!("acceptance {other:?}: automatic or local"));
                false
            }
        };
        let mut applies = Applies::default();
        for k in &raw.applies.kind {
            match k.parse::<AssetKind>() {
                Ok(kind) => applies.kind.push(kind),
                Err(e) => problems.push(format!("applies.kind: {e}")),
            }
        }
        for c in &raw.applies.criticality {
            match c.parse::<Criticality>() {
                Ok(c) => applies.criticality.push(c),
                Err(e) => problems.push(format!("applies.criticality: {e}")),
            }
        }
        for f in &raw.applies.format {
            match ALL_FORMATS.into_iter().find(|x| x.as_str() == f.trim()) {
                Some(format) => applies.format.push(format),
                None => problems
                    .push(format!("applies.format {f:?}: one of {}", ALL_FORMATS.map(|x| x.as_str()).join(", "))),
            }
        }
        let parameters: BTreeMap<String, Option<String>> =
            raw.parameters.into_iter().map(|(name, p)| (name, p.default)).collect();
        for name in parameters.keys() {
            if placeholders(&format!("{{{name}}}")).is_empty() {
                problems.push(format!("parameter {name:?}: a name of letters, digits and '_'"));
            }
        }
        if raw.rules.is_empty() && raw.policy.is_none() && raw.change.is_none() {
            problems.push("the template has no [[rule]], no [policy] and no [change]".into());
        }
        if let Some(c) = &raw.change {
            problems.extend(c.problems());
        }
        if let Some(p) = &raw.policy {
            problems.extend(p.problems());
        }
        if raw.rules.len() > MAX_RULES {
            problems.push(format!("{} rules: at most {MAX_RULES}", raw.rules.len()));
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut rules = Vec::new();
        for r in raw.rules {
            let at = format!("rule {:?}", r.id);
            if !plain_id(&r.id) {
                problems.push(format!("{at}: an id of letters, digits, '-', '_', '.'"));
            }
            if !seen.insert(r.id.clone()) {
                problems.push(format!("{at}: the id is used twice"));
            }
            match rule(r, &parameters) {
                Ok(rule) => rules.push(rule),
                Err(mut p) => problems.extend(p.drain(..).map(|p| format!("{at}: {p}"))),
            }
        }
        if !problems.is_empty() {
            return Err(Invalid(problems));
        }
        Ok(Template {
            id: h.id.clone(),
            version,
            title: h.title.trim().to_string(),
            enforcement,
            references: h.references.clone(),
            local_acceptance,
            applies,
            parameters,
            rules,
            policy: raw.policy,
            change: raw.change,
        })
    }

    /// Whether the template applies to `asset` (and, for configuration rules, to a configuration of `format`).
    pub fn applies_to(&self, asset: &Asset, format: Option<Format>) -> bool {
        let a = &self.applies;
        (a.kind.is_empty() || a.kind.contains(&asset.kind))
            && (a.criticality.is_empty() || a.criticality.contains(&asset.criticality))
            && (a.format.is_empty() || format.is_none_or(|f| a.format.contains(&f)))
    }

    /// The parameters' values at a site: its settings over the defaults; a parameter with neither is missing.
    pub fn values(&self, set: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        for (name, default) in &self.parameters {
            match set.get(name).or(default.as_ref()) {
                Some(v) => {
                    out.insert(name.clone(), v.clone());
                }
                None => return Err(format!("parameter {name} has no default and is not set for this site")),
            }
        }
        if let Some(unknown) = set.keys().find(|k| !self.parameters.contains_key(*k)) {
            return Err(format!("{unknown} is not a parameter of {}", self.id));
        }
        Ok(out)
    }

    /// Runs every rule's `pass` and `fail` snippets (normalised as the template's first format, or as plain
    /// text) with the parameters' defaults; each snippet that does not give its stated result is a problem.
    pub fn check_snippets(&self, key: &crate::normalize::FingerprintKey) -> Vec<String> {
        let format = self.applies.format.first().copied().unwrap_or(Format::Text);
        let params: BTreeMap<String, String> =
            self.parameters.iter().filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v))).collect();
        let mut problems = Vec::new();
        for rule in &self.rules {
            for (snippets, want) in [(&rule.pass, true), (&rule.fail, false)] {
                for (n, snippet) in snippets.iter().enumerate() {
                    let lines = crate::normalize::normalize_as(format, snippet, key);
                    let got = match evaluate_lines(rule, &lines, &params) {
                        Outcome::Compliant => Some(true),
                        Outcome::NonCompliant { .. } => Some(false),
                        _ => None,
                    };
                    if got != Some(want) {
                        problems.push(format!(
                            "rule {}: its {} example #{} is {}",
                            rule.id,
                            if want { "pass" } else { "fail" },
                            n + 1,
                            match got {
                                Some(true) => "compliant".to_string(),
                                Some(false) => "non-compliant".to_string(),
                                None => "not decided by this rule".to_string(),
                            }
                        ));
                    }
                }
            }
        }
        problems
    }
}

fn rule(r: RawRule, parameters: &BTreeMap<String, Option<String>>) -> Result<Rule, Vec<String>> {
    let mut problems = Vec::new();
    let kinds = [r.require.is_some(), r.forbid.is_some(), r.key.is_some(), r.field.is_some(), r.manual.is_some()];
    if kinds.iter().filter(|k| **k).count() != 1 {
        return Err(vec!["exactly one of require, forbid, key, field, manual".into()]);
    }
    if r.within.is_some() && r.path.is_some() {
        problems.push("within and path are the same thing (path for XML/JSON): give one".into());
    }
    let within = r.within.or(r.path);
    let dummy: BTreeMap<String, String> = parameters.keys().map(|k| (k.clone(), "x".to_string())).collect();
    let mut pattern_ok = |p: &str| {
        for name in placeholders(p) {
            if !parameters.contains_key(name) {
                problems.push(format!("{{{name}}} is not a declared parameter"));
                return;
            }
        }
        if let Err(e) = compile(p, &dummy) {
            problems.push(e);
        }
    };
    for p in [&r.require, &r.forbid, &within, &r.matches].into_iter().flatten() {
        pattern_ok(p);
    }
    let comparisons =
        [r.equals.is_some(), r.one_of.is_some(), r.at_least.is_some(), r.at_most.is_some(), r.matches.is_some()];
    let n_cmp = comparisons.iter().filter(|c| **c).count();
    let field_only = r.required.is_some() || r.at_least_version.is_some();
    let check = if let Some(pattern) = r.require {
        Check::Require { pattern, within }
    } else if let Some(pattern) = r.forbid {
        Check::Forbid { pattern, within }
    } else if let Some(key) = r.key {
        if n_cmp != 1 {
            problems.push("a key rule needs exactly one of equals, one_of, at_least, at_most, matches".into());
        }
        let cmp = match (r.equals, r.one_of, r.at_least, r.at_most, r.matches) {
            (Some(v), ..) => Cmp::Equals(v),
            (_, Some(v), ..) => Cmp::OneOf(v),
            (_, _, Some(v), ..) => Cmp::AtLeast(v),
            (_, _, _, Some(v), _) => Cmp::AtMost(v),
            (.., Some(v)) => Cmp::Matches(v),
            _ => Cmp::Equals(String::new()),
        };
        Check::Key { key: key.trim().to_string(), within, cmp }
    } else if let Some(field) = r.field {
        if !FIELDS.contains(&field.as_str()) {
            problems.push(format!("field {field:?}: one of {}", FIELDS.join(", ")));
        }
        if within.is_some() || n_cmp > usize::from(r.one_of.is_some()) {
            problems.push("a field rule takes required, one_of or at_least_version only".into());
        }
        let required = r.required.unwrap_or(false);
        if !required && r.one_of.is_none() && r.at_least_version.is_none() {
            problems.push("a field rule needs required = true, one_of or at_least_version".into());
        }
        Check::Field { field, required, one_of: r.one_of, at_least_version: r.at_least_version }
    } else {
        Check::Manual { question: r.manual.unwrap_or_default() }
    };
    if !matches!(check, Check::Field { .. }) && field_only {
        problems.push("required and at_least_version belong to field rules".into());
    }
    if matches!(check, Check::Require { .. } | Check::Forbid { .. }) && n_cmp > 0 {
        problems.push("equals, one_of, at_least, at_most, matches belong to key rules".into());
    }
    if matches!(check, Check::Field { .. } | Check::Manual { .. }) && (!r.pass.is_empty() || !r.fail.is_empty()) {
        problems.push("pass/fail examples are configuration snippets: only for configuration rules".into());
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Rule { title: r.title.unwrap_or_else(|| r.id.clone()), id: r.id, check, pass: r.pass, fail: r.fail })
}

/// The policy of a site running `templates`: the built-in defaults with their `[policy]` tables applied
/// (`Policy::from`: the strictest wins) and their `[change]` tables' required fields and checklists. The one
/// rule for the plant and for the hub's view of it.
pub fn policy_of<'t>(templates: impl IntoIterator<Item = &'t Template>) -> crate::policy::Policy {
    let templates: Vec<&Template> = templates.into_iter().collect();
    let tables: Vec<(&str, &PolicyTable)> =
        templates.iter().filter_map(|t| t.policy.as_ref().map(|p| (t.id.as_str(), p))).collect();
    let mut policy = crate::policy::Policy::from(&tables);
    for t in &templates {
        if let Some(c) = &t.change {
            policy.require_for_changes(&format!("{} {}", t.id, t.version), &c.required, &c.checklist);
            if let Some(rule) = &c.central_approval {
                policy.require_central(rule.clone());
            }
        }
    }
    policy
}

/// Parses `NAME=VALUE` settings of parameters (`--set`, at the hub and at a plant).
pub fn parse_settings(set: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for s in set {
        let (name, value) = s.split_once('=').ok_or_else(|| format!("--set {s:?}: NAME=VALUE"))?;
        out.insert(name.trim().to_string(), value.to_string());
    }
    Ok(out)
}

/// One rule's result for one asset.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Outcome {
    Compliant,
    /// With the offending lines (`forbid`, failing keys) or what is missing (`require`), and where.
    NonCompliant {
        findings: Vec<Finding>,
    },
    NotApplicable {
        why: String,
    },
    /// The rule could not be decided (a parameter without a value, a configuration that cannot be read).
    Error {
        why: String,
    },
    /// A checklist item answered at a review.
    Manual {
        question: String,
    },
    /// Non-compliant, but excused by an approved waiver until it expires (`crate::waiver`).
    Waived {
        waiver: String,
        expires: chrono::DateTime<chrono::Utc>,
        findings: Vec<Finding>,
    },
}

impl Outcome {
    /// Compliant when nothing was found, else non-compliant with the findings.
    fn of(findings: Vec<Finding>) -> Outcome {
        if findings.is_empty() {
            Outcome::Compliant
        } else {
            Outcome::NonCompliant { findings }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The block or element path (empty for top-level lines).
    pub location: String,
    /// The offending line, when one is to blame.
    pub line: Option<String>,
    pub what: String,
}

/// A rule with its patterns compiled for one site's parameter values: compile once, evaluate for every asset.
#[derive(Debug, Clone)]
pub struct CompiledRule<'t> {
    pub rule: &'t Rule,
    /// `within`/`path`.
    scope: Option<Regex>,
    /// `require`/`forbid`, or a key rule's `matches`.
    pattern: Option<Regex>,
}

impl Rule {
    /// Compiles the rule's patterns with the site's parameter values (an error names a missing value).
    pub fn compile(&self, params: &BTreeMap<String, String>) -> Result<CompiledRule<'_>, String> {
        let (within, pattern) = match &self.check {
            Check::Require { pattern, within } | Check::Forbid { pattern, within } => (within, Some(pattern)),
            Check::Key { within, cmp: Cmp::Matches(p), .. } => (within, Some(p)),
            Check::Key { within, .. } => (within, None),
            Check::Field { .. } | Check::Manual { .. } => (&None, None),
        };
        Ok(CompiledRule {
            rule: self,
            scope: within.as_deref().map(|w| compile(w, params)).transpose()?,
            pattern: pattern.map(|p| compile(p, params)).transpose()?,
        })
    }
}

/// What the reviews say about a `manual` rule for one asset: the newest review of the asset that answered it,
/// while that review is younger than `valid_for` (the asset's review interval: an answer is due again at the
/// next periodic review). `None`: not answered, or the answer has lapsed.
pub fn answered(
    reviews: &[Review],
    template: &str,
    rule: &str,
    asset: &AssetName,
    now: chrono::DateTime<chrono::Utc>,
    valid_for: chrono::Duration,
) -> Option<Outcome> {
    let (review, answer) = reviews
        .iter()
        .filter(|r| r.assets.contains(asset) && now - r.reviewed_at < valid_for && r.reviewed_at <= now)
        .filter_map(|r| r.answers.iter().find(|a| a.template == template && a.rule == rule).map(|a| (r, a)))
        .max_by_key(|(r, _)| (r.reviewed_at, r.id))?;
    let by = format!("review #{} by {} on {}", review.id, review.reviewed_by, review.reviewed_at.format("%Y-%m-%d"));
    Some(match answer.answer {
        Answer::Yes => Outcome::Compliant,
        Answer::No => Outcome::NonCompliant {
            findings: vec![Finding { location: String::new(), line: None, what: format!("answered no at {by}") }],
        },
        Answer::NotApplicable => Outcome::NotApplicable { why: format!("answered not applicable at {by}") },
    })
}

/// Decides `rule` for `asset` and its newest configuration's normalised lines (`None`: none captured).
pub fn evaluate(rule: &Rule, asset: &Asset, config: Option<&[NormLine]>, params: &BTreeMap<String, String>) -> Outcome {
    match rule.compile(params) {
        Ok(c) => evaluate_compiled(&c, asset, config),
        Err(why) => Outcome::Error { why },
    }
}

/// `evaluate` with the patterns compiled beforehand.
pub fn evaluate_compiled(c: &CompiledRule<'_>, asset: &Asset, config: Option<&[NormLine]>) -> Outcome {
    match (&c.rule.check, config) {
        (Check::Field { field, required, one_of, at_least_version }, _) => {
            evaluate_field(asset, field, *required, one_of.as_deref(), at_least_version.as_deref())
        }
        (Check::Manual { question }, _) => Outcome::Manual { question: question.clone() },
        (_, None) => Outcome::NotApplicable { why: "no configuration captured".into() },
        (_, Some(lines)) => lines_outcome(c, lines),
    }
}

fn evaluate_field(
    asset: &Asset,
    field: &str,
    required: bool,
    one_of: Option<&[String]>,
    at_least: Option<&str>,
) -> Outcome {
    let value = field_of(asset, field);
    let missing = || Outcome::NonCompliant {
        findings: vec![Finding { location: field.into(), line: None, what: format!("{field} is not recorded") }],
    };
    let Some(value) = value else {
        return if required || one_of.is_some() || at_least.is_some() { missing() } else { Outcome::Compliant };
    };
    if let Some(list) = one_of {
        if !list.iter().any(|v| v.eq_ignore_ascii_case(value)) {
            return Outcome::NonCompliant {
                findings: vec![Finding {
                    location: field.into(),
                    line: Some(value.into()),
                    what: format!("{field} {value:?} is not one of {}", list.join(", ")),
                }],
            };
        }
    }
    if let Some(min) = at_least {
        match version_cmp(value, min) {
            Some(std::cmp::Ordering::Less) => {
                return Outcome::NonCompliant {
                    findings: vec![Finding {
                        location: field.into(),
                        line: Some(value.into()),
                        what: format!("{field} {value} is older than {min}"),
                    }],
                }
            }
            Some(_) => {}
            None => return Outcome::Error { why: format!("{field} {value:?} cannot be compared with {min:?}") },
        }
    }
    Outcome::Compliant
}

/// Compares dotted versions numerically, part by part (`35.011` > `35.9`? no: 11 > 9, so yes); missing
/// parts count as 0. `None` when a part is not a number.
fn version_cmp(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    let parts = |s: &str| -> Option<Vec<u64>> {
        s.trim().trim_start_matches(['v', 'V']).split(['.', '-', '_']).map(|p| p.parse::<u64>().ok()).collect()
    };
    let (mut x, mut y) = (parts(a)?, parts(b)?);
    let n = x.len().max(y.len());
    x.resize(n, 0);
    y.resize(n, 0);
    Some(x.cmp(&y))
}

/// `key = value`, `key value` or `key: value` (the normalised form of key/value formats and XML attributes).
fn key_value(line: &str) -> Option<(&str, &str)> {
    let line = line.trim();
    let cut = line.find(['=', ' ', '\t', ':'])?;
    let key = line[..cut].trim();
    let value = line[cut..].trim_start_matches([' ', '\t']).trim_start_matches(['=', ':']).trim();
    (!key.is_empty()).then_some((key, value.trim_matches('"')))
}

/// The value of an XML attribute on a normalised element line (`PATH @Name="v" @Other="w"`); `key` is `@Name`.
/// The normaliser escapes `\` and `"` inside values with a backslash; the value is returned unescaped.
fn attribute(line: &str, key: &str) -> Option<String> {
    let needle = format!(" {key}=\"");
    let start = line.find(&needle)? + needle.len();
    let mut value = String::new();
    let mut escaped = false;
    for c in line[start..].chars() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(value),
            c => {
                value.push(c);
                escaped = false;
            }
        }
    }
    None
}

fn number(value: &str) -> Option<f64> {
    let value = value.trim();
    value.parse::<f64>().ok().or_else(|| value.rsplit(',').next()?.trim().trim_matches('"').parse().ok())
}

/// A configuration rule over lines, compiling its patterns first (examples, tests).
fn evaluate_lines(rule: &Rule, lines: &[NormLine], params: &BTreeMap<String, String>) -> Outcome {
    match rule.compile(params) {
        Ok(c) => lines_outcome(&c, lines),
        Err(why) => Outcome::Error { why },
    }
}

fn lines_outcome(c: &CompiledRule<'_>, lines: &[NormLine]) -> Outcome {
    let in_scope: Vec<&NormLine> =
        lines.iter().filter(|l| c.scope.as_ref().is_none_or(|re| re.is_match(&l.context))).collect();
    let no_pattern = || Outcome::Error { why: "the rule's pattern was not compiled".into() };
    match &c.rule.check {
        Check::Require { within, .. } => {
            let Some(re) = &c.pattern else { return no_pattern() };
            if within.is_none() {
                return if in_scope.iter().any(|l| re.is_match(&l.text)) {
                    Outcome::Compliant
                } else {
                    Outcome::NonCompliant {
                        findings: vec![Finding {
                            location: String::new(),
                            line: None,
                            what: format!("no line matches `{}`", re.as_str()),
                        }],
                    }
                };
            }
            // Within blocks: every block the scope selects must hold a matching line.
            let mut blocks: Vec<(&str, bool)> = Vec::new();
            for l in &in_scope {
                let hit = re.is_match(&l.text);
                match blocks.iter_mut().find(|(c, _)| *c == &*l.context) {
                    Some((_, found)) => *found |= hit,
                    None => blocks.push((&l.context, hit)),
                }
            }
            if blocks.is_empty() {
                return Outcome::NotApplicable {
                    why: format!("no block matches `{}`", within.as_deref().unwrap_or_default()),
                };
            }
            let findings: Vec<Finding> = blocks
                .iter()
                .filter(|(_, found)| !found)
                .map(|(context, _)| Finding {
                    location: context.to_string(),
                    line: None,
                    what: format!("no line matches `{}` in this block", re.as_str()),
                })
                .collect();
            Outcome::of(findings)
        }
        Check::Forbid { .. } => {
            let Some(re) = &c.pattern else { return no_pattern() };
            let findings: Vec<Finding> = in_scope
                .iter()
                .filter(|l| re.is_match(&l.text))
                .map(|l| Finding {
                    location: l.context.to_string(),
                    line: Some(l.text.clone()),
                    what: format!("forbidden: matches `{}`", re.as_str()),
                })
                .collect();
            Outcome::of(findings)
        }
        Check::Key { key, cmp, .. } => {
            let matches = &c.pattern;
            let set: Vec<(&NormLine, String)> = in_scope
                .iter()
                .filter_map(|l| {
                    if key.starts_with('@') {
                        attribute(&l.text, key).map(|v| (*l, v))
                    } else {
                        key_value(&l.text)
                            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
                            .map(|(_, v)| (*l, v.to_string()))
                    }
                })
                .collect();
            if set.is_empty() {
                return Outcome::NonCompliant {
                    findings: vec![Finding { location: String::new(), line: None, what: format!("{key} is not set") }],
                };
            }
            let mut findings = Vec::new();
            for (line, value) in set {
                let value = value.as_str();
                let ok = match cmp {
                    Cmp::Equals(want) => value.eq_ignore_ascii_case(want),
                    Cmp::OneOf(list) => list.iter().any(|w| value.eq_ignore_ascii_case(w)),
                    Cmp::AtLeast(min) => number(value).is_some_and(|v| v >= *min),
                    Cmp::AtMost(max) => number(value).is_some_and(|v| v <= *max),
                    Cmp::Matches(_) => matches.as_ref().is_some_and(|re| re.is_match(value)),
                };
                if !ok {
                    let want = match cmp {
                        Cmp::Equals(w) => format!("must be {w}"),
                        Cmp::OneOf(l) => format!("must be one of {}", l.join(", ")),
                        Cmp::AtLeast(m) => format!("must be at least {m}"),
                        Cmp::AtMost(m) => format!("must be at most {m}"),
                        Cmp::Matches(p) => format!("must match `{p}`"),
                    };
                    findings.push(Finding {
                        location: line.context.to_string(),
                        line: Some(line.text.clone()),
                        what: format!("{key} is {value:?}: {want}"),
                    });
                }
            }
            Outcome::of(findings)
        }
        Check::Field { .. } | Check::Manual { .. } => Outcome::Error { why: "not a configuration rule".into() },
    }
}

#[cfg(test)]
mod tests;
