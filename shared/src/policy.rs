//! Intervals that say how often a plant must capture, restore-test and review an asset, by criticality.
//!
//! This is the one place these defaults live. A later hub template replaces them per company; until then
//! every report reads them from here.

use chrono::Duration;
use serde::Serialize;

use crate::model::Criticality;

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
        }
    }
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
    fn more_critical_means_shorter_intervals() {
        let p = Policy::default();
        for pair in Criticality::ALL.windows(2) {
            assert!(p.capture_interval(pair[0]) >= p.capture_interval(pair[1]));
            assert!(p.restore_test_interval(pair[0]) >= p.restore_test_interval(pair[1]));
            assert!(p.review_interval(pair[0]) >= p.review_interval(pair[1]));
        }
    }
}
