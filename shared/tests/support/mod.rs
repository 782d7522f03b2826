//! An in-memory driver for `datum_shared::sync::Session`: nodes with a "disk" (document chunks, sync states,
//! files) that survives restarts, and connections whose frames the tests deliver, drop, duplicate or reorder.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use automerge::{Automerge, ChangeHash};
use datum_shared::document;
use datum_shared::ids::SiteId;
use datum_shared::sync::wire::{BlobWant, BLOB_CHUNK};
use datum_shared::sync::{driver, Event, LocalDoc, Principal, Session, SessionConfig};
use datum_shared::DocId;
use serde_json::json;
use sha2::{Digest, Sha256};

/// A deterministic generator (xorshift64*), so that a seed replays a run exactly.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// What a node keeps on disk.
#[derive(Default, Clone)]
pub struct Disk {
    pub chunks: BTreeMap<DocId, Vec<Vec<u8>>>,
    /// (peer node, document) → saved sync state.
    pub states: BTreeMap<(String, DocId), Vec<u8>>,
    pub blobs: BTreeMap<String, Vec<u8>>,
    pub partial: BTreeMap<String, Vec<u8>>,
    /// Hub: files referenced by a site's documents and not yet stored.
    pub wanted: BTreeSet<String>,
    /// Hub: (node, document, change) for every change received.
    pub received: Vec<(String, DocId, ChangeHash)>,
    pub violations: Vec<String>,
}

impl Disk {
    pub fn load(&self, id: &DocId) -> Option<Automerge> {
        let chunks = self.chunks.get(id)?;
        Some(Automerge::load(&chunks.concat()).expect("stored chunks load"))
    }
    pub fn heads(&self, id: &DocId) -> Vec<ChangeHash> {
        self.load(id).map(|d| d.get_heads()).unwrap_or_default()
    }
    pub fn doc_ids(&self) -> Vec<DocId> {
        self.chunks.keys().cloned().collect()
    }
}

pub struct Node {
    pub name: String,
    pub principal: Principal,
    pub disk: Disk,
    pub writes: u64,
    /// An edge being rebuilt from the hub (`SessionConfig::restoring`).
    pub restoring: bool,
}

impl Node {
    pub fn hub() -> Node {
        Node { name: "hub".into(), principal: Principal::Hub, disk: Disk::default(), writes: 0, restoring: false }
    }
    pub fn edge(site_id: &str) -> Node {
        Node {
            name: format!("edge-{site_id}"),
            principal: Principal::Site { site_id: SiteId::new(site_id).expect("valid site id") },
            disk: Disk::default(),
            writes: 0,
            restoring: false,
        }
    }

    /// A local write: one record in `doc` (collection `assets`, or a configuration version for `configs`
    /// documents, with its file). Returns the document after the write.
    pub fn write(&mut self, doc: &DocId, rng: &mut Rng) -> Automerge {
        self.writes += 1;
        let mut am = self.disk.load(doc).unwrap_or_default();
        let before = am.get_heads();
        let mut tx = am.transaction();
        let n = self.writes;
        if doc.kind() == "configs" {
            let bytes: Vec<u8> = (0..(5 + rng.below(40))).map(|_| rng.below(256) as u8).collect();
            let hash = hex::encode(Sha256::digest(&bytes));
            self.disk.blobs.insert(hash.clone(), bytes);
            let record = json!({"asset": format!("plc-{n}"), "raw_hash": hash, "version": n});
            document::put_record(&mut tx, "versions", &format!("v{n}"), &record).expect("write record");
        } else {
            let record = json!({"name": format!("{}-{n}", self.name), "n": n, "note": rng.below(1000)});
            let key = format!("k{}", rng.below(6));
            document::put_record(&mut tx, "assets", &key, &record).expect("write record");
        }
        tx.commit();
        let incremental = am.save_after(&before);
        self.disk.chunks.entry(doc.clone()).or_default().push(incremental);
        am
    }

    pub fn session(&self, peer: &Node) -> Session {
        let docs = self
            .disk
            .doc_ids()
            .into_iter()
            .map(|id| LocalDoc {
                heads: self.disk.heads(&id),
                saved_state: self.disk.states.get(&(peer.name.clone(), id.clone())).cloned(),
                id,
            })
            .collect();
        let cfg = SessionConfig {
            me: self.principal.clone(),
            peer: peer.principal.clone(),
            node: self.name.clone(),
            store: format!("{}-store", self.name),
            restoring: self.restoring,
            protocol: datum_shared::sync::wire::PROTOCOL_VERSION,
        };
        Session::new(cfg, docs)
    }
}

/// What a driver saw of a session, for assertions.
#[derive(Default, Debug)]
pub struct Outcome {
    pub synced: u32,
    pub failed: Vec<String>,
    pub violations: Vec<String>,
}

/// A simulated node's side of a session: the same `Host` shape as the hub's and the edge's drivers, over an
/// in-memory disk, its frames collected for the link to deliver.
struct SimHost<'a> {
    node: &'a mut Node,
    peer_name: &'a str,
    chunk: usize,
    outcome: &'a mut Outcome,
    frames: Vec<Vec<u8>>,
}

impl driver::Host for SimHost<'_> {
    type Error = std::convert::Infallible;

    async fn on_event(&mut self, session: &mut Session, event: Event) -> Result<(), Self::Error> {
        match event {
            Event::Load(ids) => {
                for id in ids {
                    let doc = self.node.disk.load(&id);
                    session.provide(&id, doc);
                }
            }
            Event::Applied { doc, changes, incremental, .. } => {
                self.node.disk.chunks.entry(doc.clone()).or_default().push(incremental);
                for c in changes {
                    self.node.disk.received.push((self.peer_name.to_string(), doc.clone(), c));
                }
            }
            Event::CheckBlobs(hashes) => {
                for h in hashes {
                    if !self.node.disk.blobs.contains_key(&h) {
                        self.node.disk.wanted.insert(h);
                    }
                }
                let wants = self
                    .node
                    .disk
                    .wanted
                    .iter()
                    .map(|h| BlobWant {
                        hash: h.clone(),
                        from: self.node.disk.partial.get(h).map(|p| p.len() as u64).unwrap_or(0),
                    })
                    .collect();
                session.want_blobs(wants);
            }
            Event::SendBlobs(wants) => {
                for want in wants {
                    let Some(bytes) = self.node.disk.blobs.get(&want.hash).cloned() else {
                        session.blob_unavailable(&want.hash, "no copy here");
                        continue;
                    };
                    let total = bytes.len() as u64;
                    let mut offset = want.from.min(total) as usize;
                    loop {
                        let end = (offset + self.chunk.min(BLOB_CHUNK)).min(bytes.len());
                        self.frames.push(session.blob_chunk_frame(
                            &want.hash,
                            offset as u64,
                            total,
                            bytes[offset..end].to_vec(),
                        ));
                        offset = end;
                        if offset >= bytes.len() {
                            break;
                        }
                    }
                }
                session.blobs_sent();
            }
            Event::BlobChunk { hash, offset, data, .. } => {
                let partial = self.node.disk.partial.entry(hash).or_default();
                assert_eq!(partial.len() as u64, offset, "the session checks piece order");
                partial.extend_from_slice(&data);
            }
            Event::BlobComplete { hash, .. } => {
                let bytes = self.node.disk.partial.remove(&hash).unwrap_or_default();
                if hex::encode(Sha256::digest(&bytes)) == hash {
                    self.node.disk.blobs.insert(hash.clone(), bytes);
                    self.node.disk.wanted.remove(&hash);
                    session.blob_stored(&hash, Ok(()));
                } else {
                    session.blob_stored(&hash, Err("checksum mismatch".into()));
                }
            }
            Event::BlobUnavailable { .. } => {}
            Event::RenewRequested(_) => session.renewed("-----BEGIN CERTIFICATE-----".into()),
            // The simulated nodes keep no audit trail (`AuditTrail::Off`); `sync_pair.rs` tests the witness.
            Event::AuditPresented(_) => {}
            Event::Witnessed(_) => session.witness_checked(Ok(())),
            Event::Renewed(_) | Event::WebCertAnswered(_) => {}
            Event::WebCertRequested(_) => session.web_cert_answer(Err("no web domain here".into())),
            Event::Synced { .. } => self.outcome.synced += 1,
            Event::Violation(v) => {
                self.node.disk.violations.push(v.clone());
                self.outcome.violations.push(v);
            }
            Event::Failed(f) => self.outcome.failed.push(f),
            Event::Rejected(r) => self.outcome.failed.push(format!("the peer refused: {r}")),
        }
        Ok(())
    }

    async fn transmit(&mut self, frame: Vec<u8>) -> Result<(), Self::Error> {
        self.frames.push(frame);
        Ok(())
    }
}

/// Acts on every queued event of `session` as a real driver would (`driver::pump`); returns the frames to
/// transmit.
pub fn drive(
    node: &mut Node,
    peer_name: &str,
    session: &mut Session,
    chunk: usize,
    outcome: &mut Outcome,
) -> Vec<Vec<u8>> {
    let mut host = SimHost { node, peer_name, chunk, outcome, frames: Vec::new() };
    let Ok(()) = at_once(driver::pump(session, &mut host));
    host.frames
}

/// Runs a future that never waits (an in-memory host answers at once) to its end.
fn at_once<F: std::future::Future>(future: F) -> F::Output {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(future).poll(&mut cx) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => panic!("an in-memory host never waits"),
    }
}

/// Saves a session's sync states to the node's disk (done at every end of a session).
pub fn save_states(node: &mut Node, peer_name: &str, session: &Session) {
    for (doc, state) in session.sync_states() {
        node.disk.states.insert((peer_name.to_string(), doc), state);
    }
}

/// One live connection between an edge (a) and the hub (b), frames in flight both ways.
pub struct Link {
    pub a: Session,
    pub b: Session,
    pub a_to_b: VecDeque<Vec<u8>>,
    pub b_to_a: VecDeque<Vec<u8>>,
    pub a_out: Outcome,
    pub b_out: Outcome,
    /// Every frame b (the hub) sent.
    pub b_sent: Vec<Vec<u8>>,
    /// A fault was injected on this link (only then may a session fail).
    pub faulted: bool,
}

impl Link {
    pub fn open(a: &mut Node, b: &mut Node, chunk: usize) -> Link {
        let mut sa = a.session(b);
        let mut sb = b.session(a);
        let mut a_out = Outcome::default();
        let mut b_out = Outcome::default();
        let a_to_b = drive(a, &b.name, &mut sa, chunk, &mut a_out).into();
        let b_to_a: VecDeque<Vec<u8>> = drive(b, &a.name, &mut sb, chunk, &mut b_out).into();
        let b_sent = Vec::from_iter(b_to_a.iter().cloned());
        Link { a: sa, b: sb, a_to_b, b_to_a, a_out, b_out, b_sent, faulted: false }
    }

    /// Delivers one frame (a→b if `forward`), if any is in flight. Returns whether one was.
    pub fn deliver(&mut self, a: &mut Node, b: &mut Node, forward: bool, chunk: usize) -> bool {
        if forward {
            let Some(f) = self.a_to_b.pop_front() else { return false };
            self.b.handle(&f);
            let out = drive(b, &a.name, &mut self.b, chunk, &mut self.b_out);
            self.b_sent.extend(out.iter().cloned());
            self.b_to_a.extend(out);
        } else {
            let Some(f) = self.b_to_a.pop_front() else { return false };
            self.a.handle(&f);
            let out = drive(a, &b.name, &mut self.a, chunk, &mut self.a_out);
            self.a_to_b.extend(out);
        }
        true
    }

    /// Runs until nothing is in flight; fails on a livelock.
    pub fn run(&mut self, a: &mut Node, b: &mut Node, chunk: usize) {
        for _ in 0..100_000 {
            let moved = self.deliver(a, b, true, chunk) | self.deliver(a, b, false, chunk);
            if !moved {
                return;
            }
        }
        panic!("no quiescence after 100,000 deliveries: livelock");
    }

    pub fn close(self, a: &mut Node, b: &mut Node) -> (Outcome, Outcome) {
        save_states(a, &b.name, &self.a);
        save_states(b, &a.name, &self.b);
        (self.a_out, self.b_out)
    }
}

pub fn site_docs(site_id: &str) -> Vec<DocId> {
    vec![
        DocId::site(site_id, "inventory"),
        DocId::site(site_id, "baselines"),
        DocId::parse(&format!("site/{site_id}/configs/2026-11")).expect("valid id"),
    ]
}

pub fn hub_doc() -> DocId {
    DocId::parse("hub/templates").expect("valid id")
}
