//! The site's policy: how often a plant must capture, restore-test and review an asset (by criticality), how
//! many approvals a change needs (by risk), and the emergency window.
//!
//! [`Policy::default`] is the one place the built-in values live. A policy template from the hub (a template
//! with a `[policy]` table, `crate::template`) replaces them at the sites it is active at: [`Policy::from`]
//! applies every active template's [`PolicyTable`]; a value no template sets keeps its default, and where
//! several active templates set the same value, the strictest wins (the shortest interval, the most
//! approvals, the shortest emergency window, the longest notice).

use chrono::Duration;
use serde::{Deserialize, Serialize};

use crate::model::{Criticality, Risk};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Maximum age of the newest capture (a backup, and the input of drift detection).
    pub capture_days: [i64; 4],
    /// Maximum age of the newest passing restore test.
    pub restore_test_days: [i64; 4],
    /// Maximum time between periodic reviews.
    pub review_days: [i64; 4],
    /// How long an emergency change may stay implemented without its retrospective approvals.
    pub emergency_approval_hours: i64,
    /// A review is reported as due this many days before it becomes overdue.
    pub review_notice_days: i64,
    /// Distinct approvers a change needs, by risk (low, medium, high).
    pub approvals: [usize; 3],
    /// The templates whose `[policy]` set these values (empty: the built-in defaults).
    pub from_templates: Vec<String>,
    /// Change-request fields active `[change]` tables require (`test_plan`, `window`), with the template that
    /// requires each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub change_required: Vec<(String, String)>,
    /// Checklist items active `[change]` tables add to every new change request.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub change_checklist: Vec<String>,
    /// Which changes need a central approval from the hub (`crate::central`), from active `[change]` tables
    /// (the strictest of them); none by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub central: Option<CentralRule>,
}

impl Default for Policy {
    fn default() -> Self {
        // Index order: low, medium, high, critical.
        Policy {
            capture_days: [180, 90, 30, 7],
            restore_test_days: [730, 365, 365, 180],
            review_days: [365, 180, 90, 30],
            emergency_approval_hours: 72,
            review_notice_days: 14,
            approvals: [1, 1, 2],
            from_templates: Vec::new(),
            change_required: Vec::new(),
            change_checklist: Vec::new(),
            central: None,
        }
    }
}

/// A template's rule of what needs a central approval (`[change] central_approval = { … }`): a change whose
/// risk is at least `risk`, or that touches an asset of at least `criticality`; and waivers, all of them
/// (`waivers = true`) or those of the templates named (`waivers = ["ios-hardening"]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentralRule {
    pub risk: Option<Risk>,
    pub criticality: Option<Criticality>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waivers: Option<CentralWaivers>,
}

/// Which waivers need a central approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CentralWaivers {
    /// `true`: every waiver; `false`: none.
    All(bool),
    /// The waivers of these templates (by id).
    Of(Vec<String>),
}

impl CentralRule {
    /// The stricter of two rules: the lower threshold of each, and the waivers of both.
    pub fn stricter(self, other: CentralRule) -> CentralRule {
        fn low<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
            match (a, b) {
                (Some(x), Some(y)) => Some(std::cmp::min(x, y)),
                (x, y) => x.or(y),
            }
        }
        let waivers = match (self.waivers, other.waivers) {
            (Some(CentralWaivers::All(true)), _) | (_, Some(CentralWaivers::All(true))) => {
                Some(CentralWaivers::All(true))
            }
            (Some(CentralWaivers::Of(mut a)), Some(CentralWaivers::Of(b))) => {
                a.extend(b);
                a.sort();
                a.dedup();
                Some(CentralWaivers::Of(a))
            }
            (Some(CentralWaivers::Of(a)), _) | (_, Some(CentralWaivers::Of(a))) => Some(CentralWaivers::Of(a)),
            (a, b) => a.or(b),
        };
        CentralRule { risk: low(self.risk, other.risk), criticality: low(self.criticality, other.criticality), waivers }
    }

    pub fn is_empty(&self) -> bool {
        self.risk.is_none() && self.criticality.is_none() && !self.has_waivers()
    }

    /// Whether any waiver needs a central approval.
    pub fn has_waivers(&self) -> bool {
        match &self.waivers {
            Some(CentralWaivers::All(all)) => *all,
            Some(CentralWaivers::Of(list)) => !list.is_empty(),
            None => false,
        }
    }

    /// Whether a waiver of `template` needs a central approval.
    pub fn covers_waiver(&self, template: &str) -> bool {
        match &self.waivers {
            Some(CentralWaivers::All(all)) => *all,
            Some(CentralWaivers::Of(list)) => list.iter().any(|t| t == template),
            None => false,
        }
    }

    /// In words, for pages and errors ("risk high or above, or an asset of criticality critical").
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(r) = self.risk {
            parts.push(format!("risk {r} or above"));
        }
        if let Some(c) = self.criticality {
            parts.push(format!("an asset of criticality {c} or above"));
        }
        parts.join(", or ")
    }

    /// Which waivers, in words ("every waiver", "waivers of ios-hardening").
    pub fn describe_waivers(&self) -> String {
        match &self.waivers {
            Some(CentralWaivers::All(true)) => "every waiver".into(),
            Some(CentralWaivers::Of(list)) if !list.is_empty() => format!("waivers of {}", list.join(", ")),
            _ => "no waiver".into(),
        }
    }
}

/// Days by criticality, as a policy template writes them (`{ low = 180, critical = 7 }`; omitted: default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByCriticality {
    pub low: Option<i64>,
    pub medium: Option<i64>,
    pub high: Option<i64>,
    pub critical: Option<i64>,
}

impl ByCriticality {
    fn get(&self, i: usize) -> Option<i64> {
        [self.low, self.medium, self.high, self.critical][i]
    }
}

/// Approvals by risk (`{ high = 3 }`; omitted: default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByRisk {
    pub low: Option<usize>,
    pub medium: Option<usize>,
    pub high: Option<usize>,
}

/// A template's `[policy]` table: every value optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyTable {
    pub capture_days: Option<ByCriticality>,
    pub restore_test_days: Option<ByCriticality>,
    pub review_days: Option<ByCriticality>,
    pub emergency_approval_hours: Option<i64>,
    pub review_notice_days: Option<i64>,
    pub approvals: Option<ByRisk>,
}

impl PolicyTable {
    /// Every value out of its sensible range, named.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let names = ["low", "medium", "high", "critical"];
        for (name, table) in [
            ("capture_days", &self.capture_days),
            ("restore_test_days", &self.restore_test_days),
            ("review_days", &self.review_days),
        ] {
            for (i, level) in names.iter().enumerate() {
                if let Some(d) = table.as_ref().and_then(|t| t.get(i)).filter(|d| !(1..=3650).contains(d)) {
                    out.push(format!("policy.{name}.{level} = {d}: between 1 and 3650 days"));
                }
            }
        }
        if let Some(h) = self.emergency_approval_hours.filter(|h| !(1..=720).contains(h)) {
            out.push(format!("policy.emergency_approval_hours = {h}: between 1 and 720"));
        }
        if let Some(d) = self.review_notice_days.filter(|d| !(0..=365).contains(d)) {
            out.push(format!("policy.review_notice_days = {d}: between 0 and 365"));
        }
        if let Some(a) = &self.approvals {
            for (level, n) in [("low", a.low), ("medium", a.medium), ("high", a.high)] {
                if let Some(n) = n.filter(|n| !(1..=5).contains(n)) {
                    out.push(format!("policy.approvals.{level} = {n}: between 1 and 5"));
                }
            }
        }
        out
    }
}

/// The strictest of the values given, or the default.
fn strictest<T: Copy + Ord>(default: T, values: impl Iterator<Item = T>, shorter: bool) -> T {
    let best = if shorter { values.min() } else { values.max() };
    best.unwrap_or(default)
}

fn idx(c: Criticality) -> usize {
    match c {
        Criticality::Low => 0,
        Criticality::Medium => 1,
        Criticality::High => 2,
        Criticality::Critical => 3,
    }
}

impl Policy {
    /// The built-in defaults with every active template's `[policy]` table applied (`(template id, table)`).
    pub fn from(tables: &[(&str, &PolicyTable)]) -> Policy {
        let d = Policy::default();
        let days = |pick: fn(&PolicyTable) -> &Option<ByCriticality>, default: [i64; 4]| {
            std::array::from_fn(|i| {
                strictest(default[i], tables.iter().filter_map(|(_, t)| pick(t).as_ref()?.get(i)), true)
            })
        };
        let approvals = |pick: fn(&ByRisk) -> Option<usize>, default: usize| {
            strictest(default, tables.iter().filter_map(|(_, t)| t.approvals.as_ref().and_then(pick)), false)
        };
        Policy {
            capture_days: days(|t| &t.capture_days, d.capture_days),
            restore_test_days: days(|t| &t.restore_test_days, d.restore_test_days),
            review_days: days(|t| &t.review_days, d.review_days),
            emergency_approval_hours: strictest(
                d.emergency_approval_hours,
                tables.iter().filter_map(|(_, t)| t.emergency_approval_hours),
                true,
            ),
            review_notice_days: strictest(
                d.review_notice_days,
                tables.iter().filter_map(|(_, t)| t.review_notice_days),
                false,
            ),
            approvals: [
                approvals(|a| a.low, d.approvals[0]),
                approvals(|a| a.medium, d.approvals[1]),
                approvals(|a| a.high, d.approvals[2]),
            ],
            from_templates: tables.iter().map(|(id, _)| id.to_string()).collect(),
            change_required: Vec::new(),
            change_checklist: Vec::new(),
            central: None,
        }
    }

    /// Adds a change-request template's rule of central approval (the stricter of the rules wins).
    pub fn require_central(&mut self, rule: CentralRule) {
        if !rule.is_empty() {
            self.central = Some(match self.central.take() {
                Some(c) => c.stricter(rule),
                None => rule,
            });
        }
    }

    /// Adds a change-request template's demands: its required fields, and its checklist items (each once).
    pub fn require_for_changes(&mut self, template: &str, required: &[String], checklist: &[String]) {
        for field in required {
            if !self.change_required.iter().any(|(f, _)| f == field) {
                self.change_required.push((field.clone(), template.to_string()));
            }
        }
        for item in checklist {
            if !self.change_checklist.contains(item) {
                self.change_checklist.push(item.clone());
            }
        }
    }

    /// Distinct approvers a change of `risk` needs.
    pub fn approvals_for(&self, risk: Risk) -> usize {
        self.approvals[match risk {
            Risk::Low => 0,
            Risk::Medium => 1,
            Risk::High => 2,
        }]
    }

    pub fn capture_interval(&self, c: Criticality) -> Duration {
        Duration::days(self.capture_days[idx(c)])
    }
    pub fn restore_test_interval(&self, c: Criticality) -> Duration {
        Duration::days(self.restore_test_days[idx(c)])
    }
    pub fn review_interval(&self, c: Criticality) -> Duration {
        Duration::days(self.review_days[idx(c)])
    }
    pub fn emergency_approval_window(&self) -> Duration {
        Duration::hours(self.emergency_approval_hours)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_defaults_match_the_documented_table() {
        let p = Policy::default();
        let days = |c| p.review_interval(c).num_days();
        assert_eq!(
            [days(Criticality::Critical), days(Criticality::High), days(Criticality::Medium), days(Criticality::Low)],
            [30, 90, 180, 365]
        );
    }

    #[test]
    fn a_policy_template_replaces_defaults_and_the_strictest_template_wins() {
        let a: PolicyTable = toml::from_str(
            "capture_days = { critical = 14, high = 10 }\napprovals = { high = 3 }\nemergency_approval_hours = 24",
        )
        .expect("table");
        let b: PolicyTable =
            toml::from_str("capture_days = { high = 20 }\nreview_notice_days = 30\nemergency_approval_hours = 48")
                .expect("table");
        let p = Policy::from(&[("corp-policy", &a), ("site-policy", &b)]);
        let d = Policy::default();
        // Replaced, even where looser than the default (critical capture 14 > 7).
        assert_eq!(p.capture_days, [d.capture_days[0], d.capture_days[1], 10, 14]);
        assert_eq!(p.approvals_for(Risk::High), 3);
        assert_eq!(p.approvals_for(Risk::Low), 1);
        assert_eq!(p.emergency_approval_hours, 24, "the shorter window");
        assert_eq!(p.review_notice_days, 30, "the longer notice");
        assert_eq!(p.review_days, d.review_days, "untouched values keep their defaults");
        assert_eq!(p.from_templates, ["corp-policy", "site-policy"]);
        assert_eq!(Policy::from(&[]), d);
    }

    #[test]
    fn out_of_range_policy_values_are_named() {
        let t: PolicyTable =
            toml::from_str("capture_days = { low = 0 }\napprovals = { high = 9 }\nemergency_approval_hours = 100000")
                .expect("table");
        let problems = t.problems();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("policy.capture_days.low = 0"), "{problems:?}");
        assert!(toml::from_str::<PolicyTable>("capture_dayz = { low = 1 }").is_err(), "unknown keys refused");
    }

    #[test]
    fn more_critical_means_shorter_intervals() {
        let p = Policy::default();
        for pair in Criticality::ALL.windows(2) {
            assert!(p.capture_interval(pair[0]) >= p.capture_interval(pair[1]));
            assert!(p.restore_test_interval(pair[0]) >= p.restore_test_interval(pair[1]));
            assert!(p.review_interval(pair[0]) >= p.review_interval(pair[1]));
        }
    }
}
