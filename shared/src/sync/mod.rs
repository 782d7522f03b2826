//! The sync protocol between an edge and the hub, as a deterministic state machine with no I/O.
//!
//! `wire` is the frame format, `session` runs one connection, `witness` holds the rules by which the hub
//! witnesses each site's audit trail, `enrollment` decides who may join, and the rules below decide who may
//! write what. Drivers (the `datum-edge` and `datum-hub` binaries, and the simulator in `tests/sync_sim.rs`)
//! all have one shape (`driver`): they move frames between a transport and a `Session`, load and store
//! documents when asked, and read no rule of their own.

pub mod driver;
pub mod enrollment;
pub mod session;
pub mod wire;
pub mod witness;

pub use session::{AuditTrail, Event, LocalDoc, Session, SessionConfig};
pub use wire::{Frame, Msg};

use crate::ids::{Owner, SiteId};
use crate::DocId;

/// Who is at the other end of a connection, as established from its certificate (never from what it says).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    Hub,
    /// The edge node(s) of one site, by site id.
    Site {
        site_id: SiteId,
    },
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Principal::Hub => f.write_str("hub"),
            Principal::Site { site_id } => write!(f, "site {site_id}"),
        }
    }
}

/// May `who` author changes to `doc`? Exactly one principal may: the owner named in the id.
pub fn may_write(who: &Principal, doc: &DocId) -> bool {
    match (who, doc.owner()) {
        (Principal::Hub, Owner::Hub) => true,
        (Principal::Site { site_id }, Owner::Site(owner)) => *site_id == *owner,
        _ => false,
    }
}

/// May `who` hold a copy of `doc`? The hub holds everything; a site holds its own documents and the hub's
/// (published templates; the assignments and central approvals addressed to it), never another site's.
pub fn may_read(who: &Principal, doc: &DocId) -> bool {
    match who {
        Principal::Hub => true,
        Principal::Site { site_id } => match doc.owner() {
            Owner::Hub => doc.audience().is_none_or(|to| to == site_id.as_str()),
            Owner::Site(owner) => *site_id == *owner,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_writer_per_document() {
        let site = |id: &str| Principal::Site { site_id: SiteId::new(&id.repeat(16)).expect("valid id") };
        let (a, b) = (site("a"), site("b"));
        let a_inv = DocId::site(&"a".repeat(16), "inventory");
        let tpl = DocId::parse("hub/templates").expect("valid id");
        assert!(may_write(&a, &a_inv) && may_read(&a, &a_inv));
        assert!(!may_write(&b, &a_inv) && !may_read(&b, &a_inv));
        assert!(!may_write(&Principal::Hub, &a_inv) && may_read(&Principal::Hub, &a_inv));
        assert!(may_write(&Principal::Hub, &tpl));
        assert!(!may_write(&a, &tpl) && may_read(&a, &tpl));
        // A hub document addressed to site a: a reads it, b never sees it, neither writes it.
        let to_a = DocId::hub_for(&"a".repeat(16), "templates");
        assert!(may_write(&Principal::Hub, &to_a) && may_read(&Principal::Hub, &to_a));
        assert!(may_read(&a, &to_a) && !may_write(&a, &to_a));
        assert!(!may_read(&b, &to_a) && !may_write(&b, &to_a));
    }
}
