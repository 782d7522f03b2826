//! The audit chain: every state change of a site, who made it, when and why, hash-linked.
//!
//! Entry *n* stores the hash of entry *n-1*; an entry's hash covers all of its fields. The edge signs each
//! hash with the site's Ed25519 key (the signing is the edge's; the rules live here), so editing, removing or
//! reordering entries in the database is detected by `verify_chain`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A document change produced by an audited operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocChange {
    pub doc: String,
    /// Hex automerge change hash.
    pub change: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub actor: String,
    /// Operation name, e.g. `asset.add`.
    pub op: String,
    /// What it was done to: an asset name, a change id, a zone.
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Every asset the operation concerns (an import, a change request, a zone review touch several).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assets: Vec<String>,
    /// Short human summary ("added 3, updated 1", "v4 of running-config").
    pub summary: String,
    pub changes: Vec<DocChange>,
    pub prev: String,
    /// Only in the first entry of a chain restarted by `restore-from-hub` (op `site.restore`): the heads of
    /// every document as received from the hub. Those changes and everything they depend on were made and
    /// audited under the previous chain, which was lost with the old disk; this entry adopts them. Empty, and
    /// then not serialized (so not hashed), in every other entry: older entries keep their hashes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adopted: Vec<DocChange>,
    /// The time was set by the drill clock (`DATUM_NOW`), not read from the system clock. False, and then not
    /// serialized (so not hashed), in every ordinary entry: older entries keep their hashes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drill: bool,
    /// How the actor proved who they are; `None` (then not serialized, so not hashed: older entries keep their
    /// hashes) for an entry written under a typed name, in a site with no users: unauthenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<crate::identity::AuthMethod>,
}

impl AuditEntry {
    /// Hex SHA-256 over the entry's canonical JSON (field order is the struct's, fixed).
    pub fn hash(&self) -> String {
        let bytes = serde_json::to_vec(self).expect("audit entries always serialize");
        hex::encode(Sha256::digest(bytes))
    }
}

/// An entry as stored: the entry, its hash, and the site's signature over the hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedEntry {
    #[serde(flatten)]
    pub entry: AuditEntry,
    pub hash: String,
    pub signature: String,
}

/// Checks links, hashes, numbering and signatures. Returns one message per problem found.
pub fn verify_chain(entries: &[SignedEntry], verify_signature: impl Fn(&str, &str) -> bool) -> Vec<String> {
    let mut problems = Vec::new();
    let mut prev = GENESIS.to_string();
    let mut prev_at: Option<DateTime<Utc>> = None;
    let mut expected_seq = 1;
    for signed in entries {
        let e = &signed.entry;
        if prev_at.is_some_and(|p| e.at < p) {
            problems.push(format!(
                "audit entry {}: dated {} (before the entry before it: time went backwards)",
                e.seq,
                e.at.to_rfc3339()
            ));
        }
        prev_at = Some(e.at);
        if e.seq != expected_seq {
            problems.push(format!(
                "audit entry {}: expected sequence number {expected_seq} (an entry was removed or inserted)",
                e.seq
            ));
        }
        if e.prev != prev {
            problems.push(format!("audit entry {}: does not link to the entry before it (chain broken)", e.seq));
        }
        let hash = e.hash();
        if hash != signed.hash {
            problems.push(format!("audit entry {}: content does not match its hash (entry was edited)", e.seq));
        }
        if !e.adopted.is_empty() && e.seq != 1 {
            problems.push(format!(
                "audit entry {}: adopts earlier history, which only the first entry of a restored chain may",
                e.seq
            ));
        }
        if !verify_signature(&signed.hash, &signed.signature) {
            problems.push(format!("audit entry {}: signature does not verify with the site key", e.seq));
        }
        prev = signed.hash.clone();
        expected_seq = e.seq + 1;
    }
    problems
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn chain(n: u64) -> Vec<SignedEntry> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let entry = AuditEntry {
                    seq,
                    at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, seq as u32).single().expect("valid"),
                    actor: "alice".into(),
                    op: "asset.add".into(),
                    subject: format!("plc{seq}"),
                    reason: None,
                    assets: vec![],
                    summary: String::new(),
                    changes: vec![],
                    prev: prev.clone(),
                    adopted: vec![],
                    drill: false,
                    auth: None,
                };
                let hash = entry.hash();
                prev = hash.clone();
                SignedEntry { signature: format!("sig:{hash}"), hash, entry }
            })
            .collect()
    }

    fn verify(entries: &[SignedEntry]) -> Vec<String> {
        verify_chain(entries, |hash, sig| sig == format!("sig:{hash}"))
    }

    #[test]
    fn intact_chain_verifies() {
        assert!(verify(&chain(5)).is_empty());
    }

    #[test]
    fn tampering_is_named() {
        let mut edited = chain(3);
        edited[1].entry.actor = "mallory".into();
        assert_eq!(verify(&edited), vec!["audit entry 2: content does not match its hash (entry was edited)"]);

        let mut removed = chain(3);
        removed.remove(1);
        let problems = verify(&removed);
        assert!(problems.iter().any(|p| p.contains("expected sequence number 2")), "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("chain broken")), "{problems:?}");

        let mut resigned = chain(2);
        resigned[0].entry.actor = "mallory".into();
        resigned[0].hash = resigned[0].entry.hash();
        let problems = verify(&resigned);
        assert!(problems.iter().any(|p| p.contains("signature does not verify")), "{problems:?}");
    }

    fn resign(entries: &mut [SignedEntry]) {
        let mut prev = GENESIS.to_string();
        for e in entries.iter_mut() {
            e.entry.prev = prev.clone();
            e.hash = e.entry.hash();
            e.signature = format!("sig:{}", e.hash);
            prev = e.hash.clone();
        }
    }

    #[test]
    fn time_going_backwards_is_named() {
        let mut entries = chain(3);
        entries[2].entry.at = entries[0].entry.at - chrono::Duration::hours(1);
        resign(&mut entries);
        let problems = verify(&entries);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("audit entry 3: dated 2025-12-31T23:00:01"), "{problems:?}");
        // Equal times (two entries in the same microsecond) are fine.
        let mut same = chain(2);
        same[1].entry.at = same[0].entry.at;
        resign(&mut same);
        assert!(verify(&same).is_empty());
    }

    #[test]
    fn a_drill_entry_is_marked_and_hashed_as_such() {
        let mut entries = chain(1);
        let plain = entries[0].entry.hash();
        entries[0].entry.drill = true;
        assert_ne!(entries[0].entry.hash(), plain, "the drill mark is covered by the hash");
        let json = serde_json::to_string(&entries[0].entry).expect("serializes");
        assert!(json.contains("\"drill\":true"), "{json}");
    }

    #[test]
    fn only_the_first_entry_may_adopt_history() {
        let adopt = |entries: &mut Vec<SignedEntry>, i: usize| {
            entries[i].entry.adopted = vec![DocChange { doc: "site/ab/inventory".into(), change: "00".repeat(32) }];
            resign(entries);
        };
        let mut restored = chain(2);
        adopt(&mut restored, 0);
        assert!(verify(&restored).is_empty());
        let mut late = chain(2);
        adopt(&mut late, 1);
        assert_eq!(
            verify(&late),
            vec!["audit entry 2: adopts earlier history, which only the first entry of a restored chain may"]
        );
    }

    #[test]
    fn an_entry_without_adopted_history_hashes_as_before() {
        let entry = &chain(1)[0].entry;
        let json = serde_json::to_string(entry).expect("serializes");
        assert!(!json.contains("adopted") && !json.contains("drill"), "{json}");
    }
}
