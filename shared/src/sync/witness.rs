//! The hub as witness of a site's audit trail. An attacker with the plant's disk can put back an older copy
//! of the database and `identity/audit-head` together, which nothing local can tell; the hub remembers the
//! newest audit entry each site presented and refuses one older than that. The rules are here, pure; the
//! session carries the heads (`Msg::AuditHead`, `Msg::AuditWitness`) and the drivers read and store them.

use super::wire::AuditHead;

/// How a hub's refusal of a rolled-back trail starts (drivers and `datum-hub status` recognise it).
pub const ROLLED_BACK: &str = "history rolled back";
/// How an edge's refusal starts when its own trail differs from what the hub witnessed.
pub const DIVERGED: &str = "the local audit trail differs from what the hub witnessed";

/// Hub: may a node present `presented` when the hub already holds `held` from its site? The trail only
/// grows: an older entry, or the same entry number with another hash, is a rollback (or a rewrite).
/// A newer entry is accepted here; whether it descends from `held` only the edge can check
/// (`check_witnessed`), since the hub keeps heads, not trails.
pub fn check_presented(held: Option<&AuditHead>, presented: &AuditHead) -> Result<(), String> {
    let Some(held) = held else { return Ok(()) };
    if presented.seq < held.seq {
        return Err(format!(
            "{ROLLED_BACK}: the hub holds audit entry {} ({}…) from this site, the node presents {}",
            held.seq,
            short(&held.hash),
            presented.seq
        ));
    }
    if presented.seq == held.seq && presented.hash != held.hash {
        return Err(format!(
            "{ROLLED_BACK}: the hub holds audit entry {} ({}…) from this site, the node presents {} with another \
             hash ({}…)",
            held.seq,
            short(&held.hash),
            presented.seq,
            short(&presented.hash)
        ));
    }
    Ok(())
}

/// Edge: the hub witnessed `held`; `ours_at_held` is the hash of our own entry with that number (`None`: our
/// trail has no such entry), `our_newest` our newest entry number. Our trail must contain what the hub saw.
pub fn check_witnessed(held: &AuditHead, ours_at_held: Option<&str>, our_newest: u64) -> Result<(), String> {
    match ours_at_held {
        Some(ours) if ours == held.hash => Ok(()),
        Some(ours) => Err(format!(
            "{DIVERGED} at entry {} (the hub saw {}…, this node holds {}…): the data directory was replaced or \
             rewritten since the last sync",
            held.seq,
            short(&held.hash),
            short(ours)
        )),
        None => Err(format!(
            "{DIVERGED} at entry {} ({}…): this node's trail ends at entry {our_newest}; the data directory is \
             older than what the hub already received",
            held.seq,
            short(&held.hash)
        )),
    }
}

/// The first 12 characters of a hash, enough for a person to compare.
fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(seq: u64, hash: &str) -> AuditHead {
        AuditHead { seq, hash: hash.repeat(64 / hash.len()), signature: "ab".repeat(64) }
    }

    #[test]
    fn the_hub_refuses_an_older_or_rewritten_head() {
        let held = head(10, "aa");
        // Nothing held yet: anything goes (a new site, or just enrolled for a restore).
        assert_eq!(check_presented(None, &head(1, "bb")), Ok(()));
        // Same entry, or newer.
        assert_eq!(check_presented(Some(&held), &head(10, "aa")), Ok(()));
        assert_eq!(check_presented(Some(&held), &head(11, "cc")), Ok(()));
        // Older.
        let older = check_presented(Some(&held), &head(7, "aa")).expect_err("older is refused");
        assert_eq!(
            older,
            "history rolled back: the hub holds audit entry 10 (aaaaaaaaaaaa…) from this site, the node presents 7"
        );
        // Same number, another entry.
        let rewritten = check_presented(Some(&held), &head(10, "dd")).expect_err("rewritten is refused");
        assert!(
            rewritten.starts_with(ROLLED_BACK) && rewritten.contains("another hash (dddddddddddd…)"),
            "{rewritten}"
        );
    }

    #[test]
    fn the_edge_checks_its_trail_holds_what_the_hub_saw() {
        let held = head(5, "aa");
        assert_eq!(check_witnessed(&held, Some(&"aa".repeat(32)), 9), Ok(()));
        let other = check_witnessed(&held, Some(&"bb".repeat(32)), 9).expect_err("another entry");
        assert!(other.starts_with(DIVERGED) && other.contains("at entry 5"), "{other}");
        let missing = check_witnessed(&held, None, 3).expect_err("trail too short");
        assert!(missing.starts_with(DIVERGED) && missing.contains("ends at entry 3"), "{missing}");
    }
}
