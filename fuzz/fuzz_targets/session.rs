//! Fuzz target: a sync `Session` in each role (hub, edge, edge being restored; with and without the audit
//! witness) talks to an honest peer session while the input interleaves the peer's real frames, mutated copies
//! of them and arbitrary bytes. Neither session may panic, a session that fails or finds a violation must be
//! closed (and stay silent after), and what a session sends must stay in proportion to what it was fed.
//! The nodes and the event driver are the simulator's (`shared/tests/support`).
//! Run: `cargo +nightly fuzz run session`, or as `.ci/run` does on stable (see there).
#![no_main]

#[path = "../../shared/tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use datum_shared::ids::SiteId;
use datum_shared::sync::wire::AuditHead;
use datum_shared::sync::{AuditTrail, Frame, LocalDoc, Principal, Session, SessionConfig};
use libfuzzer_sys::fuzz_target;
use support::{drive, hub_doc, site_docs, Disk, Node, Outcome, Rng};

const SITE: &str = "a1a1a1a1a1a1a1a1";

/// What one side of the connection is doing: its node (disk), its session and what the driver saw.
struct Side {
    node: Node,
    session: Session,
    outcome: Outcome,
    /// Frames this side sent that the other side has not received yet.
    outbox: VecDeque<Vec<u8>>,
    /// Bytes this side sent, all told.
    sent_bytes: usize,
}

impl Side {
    fn new((node, docs): (Node, Vec<LocalDoc>), peer: Principal, trail: AuditTrail) -> Side {
        let cfg = SessionConfig {
            me: node.principal.clone(),
            peer,
            node: node.name.clone(),
            store: format!("{}-store", node.name),
            restoring: node.restoring,
            protocol: datum_shared::sync::wire::PROTOCOL_VERSION,
        };
        let session = Session::with_audit(cfg, docs, trail);
        let mut side = Side { node, session, outcome: Outcome::default(), outbox: VecDeque::new(), sent_bytes: 0 };
        side.pump("peer", 4);
        side
    }

    /// Acts on the session's events as a driver would and queues what it transmits.
    fn pump(&mut self, peer_name: &str, chunk: usize) {
        let out = drive(&mut self.node, peer_name, &mut self.session, chunk, &mut self.outcome);
        self.sent_bytes += out.iter().map(Vec::len).sum::<usize>();
        self.outbox.extend(out);
    }

    /// Feeds one frame and checks the fail-safe contract.
    fn receive(&mut self, frame: &[u8], chunk: usize) {
        let was_closed = self.session.is_closed();
        self.session.handle(frame);
        if was_closed {
            assert!(self.session.poll_event().is_none(), "a closed session reported an event");
            assert!(self.session.poll_transmit().is_none(), "a closed session sent a frame");
            return;
        }
        self.pump("peer", chunk);
        if !self.outcome.failed.is_empty() || !self.outcome.violations.is_empty() {
            assert!(self.session.is_closed(), "a session that failed is still open: {:?}", self.outcome);
        }
    }
}

/// An edge of site `SITE` and the hub with a few documents (and files) on their disks, made from `seed`, with
/// their documents' summaries; for a restore the hub holds the site's documents and the edge starts empty.
/// Made once per seed: automerge is slow under coverage instrumentation and a session needs little input.
fn prepared(seed: u8, restore: bool) -> ((Node, Vec<LocalDoc>), (Node, Vec<LocalDoc>)) {
    type Disks = ((Disk, Vec<LocalDoc>), (Disk, Vec<LocalDoc>));
    static CACHE: Mutex<BTreeMap<(u8, bool), Disks>> = Mutex::new(BTreeMap::new());
    let mut cache = CACHE.lock().expect("a panic ends the fuzz run, so the lock is never poisoned");
    let ((edge_disk, edge_docs), (hub_disk, hub_docs)) = cache
        .entry((seed, restore))
        .or_insert_with(|| {
            let mut rng = Rng::new(u64::from(seed));
            let mut edge = Node::edge(SITE);
            let mut hub = Node::hub();
            for _ in 0..rng.below(4) {
                let docs = site_docs(SITE);
                let doc = &docs[rng.below(docs.len() as u64) as usize];
                edge.write(doc, &mut rng);
            }
            if rng.chance(50) {
                hub.write(&hub_doc(), &mut rng);
            }
            if restore {
                hub.disk.chunks.extend(std::mem::take(&mut edge.disk.chunks));
                hub.disk.blobs.extend(std::mem::take(&mut edge.disk.blobs));
            }
            let summaries = |disk: &Disk| -> Vec<LocalDoc> {
                let ids = disk.doc_ids().into_iter();
                ids.map(|id| LocalDoc { heads: disk.heads(&id), saved_state: None, id }).collect()
            };
            ((edge.disk.clone(), summaries(&edge.disk)), (hub.disk.clone(), summaries(&hub.disk)))
        })
        .clone();
    let mut edge = Node::edge(SITE);
    edge.disk = edge_disk;
    edge.restoring = restore;
    let mut hub = Node::hub();
    hub.disk = hub_disk;
    ((edge, edge_docs), (hub, hub_docs))
}

/// The input, read front to back; an exhausted input reads as zeros.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }
    fn bytes(&mut self) -> &[u8] {
        let len = usize::from(u16::from_le_bytes([self.byte(), self.byte()])).min(self.0.len());
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        taken
    }
}

// The input: a scenario byte (role: hub, edge, restoring edge; audit witness: off, nothing held, a head held),
// a byte choosing the disks' contents, one for the file piece size, then operations of one byte each with their
// arguments (see the match). The honest frames make the fuzzer's start easy: `fuzz/seeds/session` holds whole
// exchanges that end in `Synced`, in several roles.
fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let scenario = input.byte();
    let world_seed = input.byte();
    let chunk = 1 + usize::from(input.byte() % 16);
    let role = scenario % 3;
    let (edge, hub) = prepared(world_seed, role == 2);
    let mut rng = Rng::new(1000 + u64::from(world_seed));
    let head =
        |seq: u64| AuditHead { seq, hash: format!("{seq:x}").repeat(64)[..64].to_string(), signature: "00".repeat(64) };
    let (edge_trail, hub_trail) = match (scenario / 3) % 3 {
        0 => (AuditTrail::Off, AuditTrail::Off),
        1 => (AuditTrail::Ours(head(5)), AuditTrail::Witnessed(None)),
        _ => (AuditTrail::Ours(head(5)), AuditTrail::Witnessed(Some(head(3)))),
    };
    let edge_side = Side::new(edge, Principal::Hub, edge_trail);
    let hub_side = Side::new(hub, Principal::Site { site_id: SiteId::new(SITE).expect("valid site id") }, hub_trail);
    // The hub is under test in role 0, the edge otherwise.
    let (mut tested, mut honest) = if role == 0 { (hub_side, edge_side) } else { (edge_side, hub_side) };

    let mut delivered: u64 = 0;
    let mut local_writes = 0;
    for _ in 0..256 {
        if input.0.is_empty() {
            break;
        }
        match input.byte() % 6 {
            // The peer's next real frame, renumbered to follow what the tested session received so far.
            0 | 1 => {
                let Some(bytes) = honest.outbox.pop_front() else { continue };
                let frame = Frame::decode(&bytes).expect("an honest session sends frames that decode");
                let mut bytes = Frame { seq: delivered + 1, msg: frame.msg }.encode();
                // Mutated: one byte of the message (the sequence number stays right).
                if input.byte() % 2 == 1 {
                    let at = usize::from(u16::from_le_bytes([input.byte(), input.byte()])) % bytes.len();
                    bytes[at] ^= input.byte().max(1);
                }
                delivered += 1;
                tested.receive(&bytes, chunk);
            }
            // Arbitrary message bytes behind the right sequence number.
            2 => {
                delivered += 1;
                let mut bytes = varint(delivered);
                bytes.extend_from_slice(input.bytes());
                tested.receive(&bytes, chunk);
            }
            // An arbitrary frame.
            3 => {
                delivered += 1;
                let bytes = input.bytes().to_vec();
                tested.receive(&bytes, chunk);
            }
            // Everything the tested session sent reaches the honest peer.
            4 => {
                while let Some(bytes) = tested.outbox.pop_front() {
                    honest.receive(&bytes, chunk);
                }
            }
            // A local write on the tested node, on a live connection (a few per run: a write loads the whole
            // document, which costs more under instrumentation than anything else here).
            _ if local_writes < 4 => {
                local_writes += 1;
                let doc = if tested.node.principal == Principal::Hub {
                    hub_doc()
                } else {
                    site_docs(SITE)[usize::from(input.byte()) % 3].clone()
                };
                let am = tested.node.write(&doc, &mut rng);
                tested.session.local_changed(&doc, am);
                tested.pump("peer", chunk);
            }
            _ => {}
        }
        // What a session sends stays in proportion to what it was fed (files are sent in `chunk`-byte pieces).
        let bound = 64 * 1024 + 512 * data.len();
        assert!(
            tested.sent_bytes <= bound,
            "the tested session sent {} bytes for {} of input",
            tested.sent_bytes,
            data.len()
        );
        assert!(
            honest.sent_bytes <= bound,
            "the honest session sent {} bytes for {} of input",
            honest.sent_bytes,
            data.len()
        );
    }
});

/// A sequence number as postcard writes it (the first field of every frame): 7 bits a byte, low first.
fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out
}
