//! One sync connection between an edge and the hub, as a state machine: frames in, frames and events out.
//!
//! Calling contract (drivers must keep it; the simulator and both binaries do):
//! 1. Create the session with the local documents' summaries (id, heads, the saved per-peer sync state).
//!    It queues `Hello` and a `Manifest` at once.
//! 2. Feed every received frame to `handle`. After each call, first drain `poll_event` and act on every event
//!    (in particular, store `Applied` changes durably), then drain `poll_transmit` and send the frames in
//!    order. Acting on events before transmitting is what makes an acknowledgement mean "stored".
//! 3. On `Event::Load`, hand over each listed document with `provide` (or `None` if it does not exist yet).
//! 4. At the end (any end), persist `sync_states()`: they are the per-peer cursors for the next connection.
//!
//! The session fails safe: a frame out of sequence, a message out of place or a rule broken ends it with
//! `Event::Failed` or `Event::Violation` (a `Reject` frame is queued for the peer), and later frames are
//! ignored. It never panics on peer input.
//!
//! Phases: both sides send `Hello` + `Manifest`; the union of both manifests is the set of documents this
//! session synchronises (automerge sync, one `sync::State` per document, read-only for documents the peer
//! may not write). When the edge sees every document converged it says `DocsSynced`; the hub checks the
//! same from its side, asks for the configuration files it lacks (`BlobWant`), receives them, and confirms
//! with `Synced`. New local changes (`local_changed`) restart the cycle on a live connection.
//!
//! Restore (`SessionConfig::restoring`, `datum-edge restore-from-hub`): an edge whose disk died is rebuilt
//! from the hub's copy. Only then does the edge accept the hub's changes to its own site's documents, and
//! before saying `DocsSynced` it fetches its site's configuration files from the hub: the same file transfer
//! in the other direction (the edge asks with `BlobWant`, the hub streams the pieces and says `BlobsSent`).
//! The sides are *receiver* and *sender* of files, not hub and edge; a hub may always be asked for files (the
//! driver sends only the asking site's own), an edge receives files only while restoring.
//!
//! Audit witness (`Session::with_audit`): an edge presents its newest audit entry (`AuditHead`, between
//! `Hello` and `Manifest`); the hub refuses it if it is older than the one it holds from the site
//! (`witness::check_presented`, a violation) and otherwise answers with the head it held (`AuditWitness`).
//! The edge checks its own trail holds that entry (`Event::Witnessed`, answered with `witness_checked`)
//! before it sends any document data or says `DocsSynced`; the hub keeps the new head once the session is
//! `Synced`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use automerge::sync::{self, SyncDoc};
use automerge::{Automerge, ChangeHash};
use sha2::{Digest, Sha256};

use super::wire::{is_blob_hash, AuditHead, BlobWant, DocHeads, Frame, Head, Msg, BLOB_CHUNK, UNCHECKED_PIECES};
use super::{may_read, may_write, Principal};
use crate::ids::{Owner, SiteId};
use crate::model::{ConfigVersion, RestoreTest};
use crate::DocId;

/// Who we are and who the transport says the peer is.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub me: Principal,
    /// Established from the peer's certificate by the driver.
    pub peer: Principal,
    /// Our node name (for the peer's logs and attribution).
    pub node: String,
    /// Identifies our store, so a peer can tell a rebuilt node from the one it synced with before.
    pub store: String,
    /// Edge only: this node is being rebuilt from the hub's copy. The hub may then write our own site's
    /// documents here, and the site's files are fetched from the hub. Ignored unless `me` is a site and
    /// `peer` the hub: a hub session never lets an edge write more than its own documents.
    pub restoring: bool,
    /// The protocol version the transport negotiated (ALPN); the peer's `Hello` must name the same one.
    /// In-memory pairs use [`super::wire::PROTOCOL_VERSION`].
    pub protocol: u32,
}

/// What a session knows of the edge's audit trail (`Session::with_audit`).
#[derive(Debug, Clone, Default)]
pub enum AuditTrail {
    /// Not taking part: the edge presents no head; a hub accepts a presented one as if it held none.
    #[default]
    Off,
    /// Edge: our newest audit entry, presented to the hub.
    Ours(AuditHead),
    /// Hub: the newest entry held from the peer's site (`None`: none yet).
    Witnessed(Option<AuditHead>),
}

/// What the driver knows about a local document without loading it.
#[derive(Debug, Clone)]
pub struct LocalDoc {
    pub id: DocId,
    pub heads: Vec<ChangeHash>,
    /// The encoded `sync::State` saved at the end of the last session with this peer.
    pub saved_state: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Load these documents and hand each over with `Session::provide` before feeding more frames.
    Load(Vec<DocId>),
    /// The peer's changes were applied to `doc`: store `incremental` (automerge `save_after`) durably
    /// before transmitting anything else. `changes` are the new change hashes, for attribution.
    Applied { doc: DocId, changes: Vec<ChangeHash>, incremental: Vec<u8>, heads: Vec<ChangeHash> },
    /// Receiver of files (the hub; an edge being restored): these files are referenced by the site's
    /// configuration documents in this session. Answer with `want_blobs` listing the ones not stored
    /// completely (including older ones still missing).
    CheckBlobs(Vec<String>),
    /// Sender of files (an edge; the hub asked by a restoring edge): send these files with
    /// `blob_chunk_frame` (or `blob_unavailable`), then call `blobs_sent`. The hub's driver sends only files
    /// of the peer's own site.
    SendBlobs(Vec<BlobWant>),
    /// Receiver: append this piece of a file (order, bounds and the piece's hash are already checked).
    BlobChunk { hash: String, offset: u64, total: u64, data: Vec<u8> },
    /// Receiver: the last piece of `hash` arrived; verify the whole file and answer with `blob_stored`.
    BlobComplete { hash: String, total: u64 },
    /// Receiver: the sender cannot provide this file.
    BlobUnavailable { hash: String, reason: String },
    /// Hub: the edge presented this audit head and it is not older than the one held. Keep it as the site's
    /// newest once the session is `Synced`.
    AuditPresented(AuditHead),
    /// Edge: the hub witnessed this head of our trail before; check that our trail holds the same entry and
    /// answer with `witness_checked`.
    Witnessed(AuditHead),
    /// Hub: the edge asks for a new certificate (CSR in DER); answer with `renewed`.
    RenewRequested(Vec<u8>),
    /// Edge: the hub sent a renewed certificate chain.
    Renewed(String),
    /// Hub: the edge asks for a web certificate (CSR in DER); answer with `web_cert_answer`.
    WebCertRequested(Vec<u8>),
    /// Edge: the hub's answer to `request_web_cert`: the chain in PEM, or its reason for issuing none.
    WebCertAnswered(Result<String, String>),
    /// Both sides hold everything this session exchanged (the hub stored it durably).
    Synced { docs: u32, blobs: u32 },
    /// The peer broke a rule (wrote a document it does not own, offered another site's document…). A
    /// `Reject` is queued; record the violation and close.
    Violation(String),
    /// The peer refused to continue (its reason): we are not authorized, or it found us breaking a rule.
    Rejected(String),
    /// The session ended for another reason (a protocol error, a bad frame).
    Failed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitHello,
    AwaitManifest,
    Loading,
    Running,
    Closed,
}

struct Slot {
    doc: Option<Automerge>,
    state: sync::State,
}

/// The receiver's bookkeeping of the files wanted in the current cycle.
#[derive(Default)]
struct Incoming {
    /// hash → next expected offset.
    expected: BTreeMap<String, u64>,
    /// Files whose last piece arrived and whose verdict (`blob_stored`) is due.
    awaiting_verdict: BTreeSet<String>,
    unavailable: BTreeSet<String>,
    sender_done: bool,
}

pub struct Session {
    cfg: SessionConfig,
    phase: Phase,
    local: BTreeMap<DocId, LocalDoc>,
    our_manifest: Vec<DocHeads>,
    peer_manifest: Option<Vec<DocHeads>>,
    slots: BTreeMap<DocId, Slot>,
    pending_loads: BTreeSet<DocId>,
    /// Sync messages for documents that joined a running session (a write on the other side), held until the
    /// driver has loaded our copy.
    late: BTreeMap<DocId, Vec<Vec<u8>>>,
    send_seq: u64,
    recv_seq: u64,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    /// Edge: `DocsSynced` was sent for the current state and not invalidated since.
    announced: bool,
    /// Receiver: the files wanted in the current cycle, once asked.
    incoming: Option<Incoming>,
    /// Edge being restored (`SessionConfig::restoring`, checked against the roles).
    restoring: bool,
    /// Restoring edge: the files were asked for (`CheckBlobs` emitted) in this session.
    pull_asked: bool,
    /// Restoring edge: every file asked for arrived (or was declared unavailable).
    pulled: bool,
    /// Hub: the edge announced convergence again during a transfer; check files again after it.
    recheck: bool,
    blobs_total: u32,
    trail: AuditTrail,
    /// Hub: an `AuditHead` arrived in this session. Edge: the hub's answer to ours is due or being checked.
    audit_exchanged: bool,
}

impl Session {
    pub fn new(cfg: SessionConfig, local_docs: Vec<LocalDoc>) -> Session {
        Session::with_audit(cfg, local_docs, AuditTrail::Off)
    }

    /// A session that also presents (edge) or witnesses (hub) the edge's audit trail.
    pub fn with_audit(cfg: SessionConfig, local_docs: Vec<LocalDoc>, trail: AuditTrail) -> Session {
        let restoring = cfg.restoring && cfg.peer == Principal::Hub && matches!(cfg.me, Principal::Site { .. });
        let mut local = BTreeMap::new();
        let mut our_manifest = Vec::new();
        for d in local_docs {
            // Offer only what the peer may hold, and only what changed since the last sync with it.
            if !may_read(&cfg.peer, &d.id) || !may_read(&cfg.me, &d.id) {
                continue;
            }
            let cursor = d.saved_state.as_deref().and_then(|b| sync::State::decode(b).ok()).map(|s| s.shared_heads);
            // A node being restored lists everything it has: its cursors may be older than its copy.
            if restoring || cursor.as_deref() != Some(&d.heads[..]) {
                our_manifest.push(DocHeads { doc: d.id.clone(), heads: d.heads.iter().map(|h| h.0).collect() });
            }
            local.insert(d.id.clone(), d);
        }
        let mut session = Session {
            cfg,
            phase: Phase::AwaitHello,
            local,
            our_manifest: our_manifest.clone(),
            peer_manifest: None,
            slots: BTreeMap::new(),
            pending_loads: BTreeSet::new(),
            late: BTreeMap::new(),
            send_seq: 0,
            recv_seq: 0,
            out: VecDeque::new(),
            events: VecDeque::new(),
            announced: false,
            incoming: None,
            restoring,
            pull_asked: false,
            pulled: false,
            recheck: false,
            blobs_total: 0,
            trail,
            audit_exchanged: false,
        };
        let site_id = match &session.cfg.me {
            Principal::Site { site_id } => Some(site_id.to_string()),
            Principal::Hub => None,
        };
        session.send(Msg::Hello {
            protocol: session.cfg.protocol,
            node: session.cfg.node.clone(),
            site_id,
            store: session.cfg.store.clone(),
        });
        if let (AuditTrail::Ours(head), Principal::Site { .. }) = (&session.trail, &session.cfg.me) {
            let head = head.clone();
            session.audit_exchanged = true;
            session.send(Msg::AuditHead(head));
        }
        session.send(Msg::Manifest { docs: our_manifest });
        session
    }

    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    pub fn peer(&self) -> &Principal {
        &self.cfg.peer
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// The per-peer sync state of every document this session touched, to persist for the next connection.
    pub fn sync_states(&self) -> Vec<(DocId, Vec<u8>)> {
        self.slots.iter().filter(|(_, s)| s.doc.is_some()).map(|(id, s)| (id.clone(), s.state.encode())).collect()
    }

    /// Documents of this session and their current heads (for status reports and tests).
    pub fn session_docs(&self) -> Vec<DocId> {
        self.slots.keys().cloned().collect()
    }

    /// Feeds one received frame.
    pub fn handle(&mut self, bytes: &[u8]) {
        if self.phase == Phase::Closed {
            return;
        }
        let frame = match Frame::decode(bytes) {
            Ok(f) => f,
            Err(e) => return self.fail(format!("bad frame from the peer: {e}")),
        };
        if frame.seq != self.recv_seq + 1 {
            return self.fail(format!("frame {} arrived where {} was expected", frame.seq, self.recv_seq + 1));
        }
        self.recv_seq = frame.seq;
        self.on_msg(frame.msg);
    }

    /// Hands over a document asked for by `Event::Load` (`None`: we have no copy yet).
    pub fn provide(&mut self, id: &DocId, doc: Option<Automerge>) {
        if !self.pending_loads.remove(id) {
            return;
        }
        let read_only = !self.peer_may_write(id);
        let saved = self.local.get(id).and_then(|d| d.saved_state.as_deref()).and_then(|b| sync::State::decode(b).ok());
        let mut state = saved.unwrap_or_default();
        state.read_only = read_only;
        self.slots.insert(id.clone(), Slot { doc: Some(doc.unwrap_or_default()), state });
        if self.phase == Phase::Running {
            for data in self.late.remove(id).unwrap_or_default() {
                self.on_sync(id.clone(), data);
            }
            return;
        }
        if self.pending_loads.is_empty() && self.phase == Phase::Loading {
            self.phase = Phase::Running;
            let ids: Vec<DocId> = self.slots.keys().cloned().collect();
            for id in ids {
                self.generate(&id);
            }
            self.check_converged();
        }
    }

    /// A local write changed `id` (continuous sync): replace our copy and tell the peer.
    pub fn local_changed(&mut self, id: &DocId, doc: Automerge) {
        if self.phase != Phase::Running || !may_read(&self.cfg.peer, id) || !may_write(&self.cfg.me, id) {
            return;
        }
        let read_only = !self.peer_may_write(id);
        let slot = self
            .slots
            .entry(id.clone())
            .or_insert_with(|| Slot { doc: None, state: sync::State { read_only, ..Default::default() } });
        slot.doc = Some(doc);
        self.announced = false;
        self.generate(id);
    }

    /// Receiver: the answer to `Event::CheckBlobs`.
    pub fn want_blobs(&mut self, wants: Vec<BlobWant>) {
        if self.phase != Phase::Running {
            return;
        }
        let mut incoming = Incoming::default();
        for w in &wants {
            incoming.expected.insert(w.hash.clone(), w.from);
        }
        self.incoming = Some(incoming);
        self.send(Msg::BlobWant { wants });
    }

    /// Receiver: the verdict on a file announced by `Event::BlobComplete`.
    pub fn blob_stored(&mut self, hash: &str, result: Result<(), String>) {
        let Some(incoming) = self.incoming.as_mut() else { return };
        if !incoming.awaiting_verdict.remove(hash) {
            return;
        }
        match result {
            Ok(()) => {
                self.blobs_total += 1;
                self.maybe_confirm();
            }
            // A hub is sent files by the node that made them: a bad one is a failed transfer, sent again.
            Err(e) if self.cfg.me == Principal::Hub => self.fail(format!("file {hash} failed verification: {e}")),
            // A node being restored takes what the hub holds: a damaged copy there is not recovered (the driver
            // reports it), and retrying would fetch the same damage.
            Err(_) => self.maybe_confirm(),
        }
    }

    /// Sender: one piece of a wanted file as a frame to send (the driver streams large files without the
    /// session holding them). Frames queued before (`poll_transmit`) must be sent first.
    pub fn blob_chunk_frame(&mut self, hash: &str, offset: u64, total: u64, data: Vec<u8>) -> Vec<u8> {
        let mut frame = Vec::new();
        self.blob_chunk_frame_into(hash, offset, total, data, &mut frame);
        frame
    }

    /// `blob_chunk_frame` into `frame` (cleared first), handing the piece's buffer back: a driver streaming a
    /// large file reuses both instead of taking fresh memory for every piece.
    pub fn blob_chunk_frame_into(
        &mut self,
        hash: &str,
        offset: u64,
        total: u64,
        data: Vec<u8>,
        frame: &mut Vec<u8>,
    ) -> Vec<u8> {
        // Protocol 1 receivers of the first builds check each piece; later ones rely on TLS and the file's hash.
        let sha256: Head = if self.cfg.protocol < UNCHECKED_PIECES { Sha256::digest(&data).into() } else { [0; 32] };
        self.send_seq += 1;
        let built =
            Frame { seq: self.send_seq, msg: Msg::BlobChunk { hash: hash.to_string(), offset, total, sha256, data } };
        built.encode_into(frame);
        match built.msg {
            Msg::BlobChunk { data, .. } => data,
            _ => Vec::new(),
        }
    }

    /// Sender: a wanted file cannot be sent.
    pub fn blob_unavailable(&mut self, hash: &str, reason: &str) {
        self.send(Msg::BlobUnavailable { hash: hash.to_string(), reason: reason.to_string() });
    }

    /// Sender: all files of the last `Event::SendBlobs` were sent.
    pub fn blobs_sent(&mut self) {
        self.send(Msg::BlobsSent);
    }

    /// Edge: the verdict on `Event::Witnessed`. A trail that differs from what the hub saw ends the session
    /// (the hub is told why) before `DocsSynced`, so the hub does not take the new head.
    pub fn witness_checked(&mut self, result: Result<(), String>) {
        if !self.audit_exchanged || self.phase == Phase::Closed {
            return;
        }
        match result {
            Ok(()) => self.witness_confirmed(),
            Err(reason) => self.reject(&reason),
        }
    }

    /// Edge: our trail holds what the hub witnessed; the documents may flow now.
    fn witness_confirmed(&mut self) {
        self.audit_exchanged = false;
        if self.phase == Phase::Running {
            let ids: Vec<DocId> = self.slots.keys().cloned().collect();
            for id in ids {
                self.generate(&id);
            }
        }
        self.check_converged();
    }

    /// Edge: ask the hub for a new certificate.
    pub fn request_renewal(&mut self, csr: Vec<u8>) {
        self.send(Msg::Renew { csr });
    }

    /// Hub: the answer to `Event::RenewRequested`.
    pub fn renewed(&mut self, chain_pem: String) {
        self.send(Msg::Renewed { chain_pem });
    }

    /// Edge: ask the hub for a certificate for this node's web workspace.
    pub fn request_web_cert(&mut self, csr: Vec<u8>) {
        self.send(Msg::WebCertRequest { csr });
    }

    /// Hub: the answer to `Event::WebCertRequested`.
    pub fn web_cert_answer(&mut self, answer: Result<String, String>) {
        let (chain_pem, refused) = match answer {
            Ok(chain) => (Some(chain), None),
            Err(reason) => (None, Some(reason)),
        };
        self.send(Msg::WebCertAnswer { chain_pem, refused });
    }

    /// Ends the session from our side with a reason the peer will see.
    pub fn reject(&mut self, reason: &str) {
        if self.phase != Phase::Closed {
            self.send(Msg::Reject { reason: reason.to_string() });
            self.phase = Phase::Closed;
        }
    }

    fn on_msg(&mut self, msg: Msg) {
        match (self.phase, msg) {
            (_, Msg::Reject { reason }) => {
                self.phase = Phase::Closed;
                self.events.push_back(Event::Rejected(reason));
            }
            (Phase::AwaitHello, Msg::Hello { protocol, site_id, .. }) => {
                if protocol != self.cfg.protocol {
                    return self.fail(format!(
                        "peer speaks protocol {protocol}, the connection negotiated {}",
                        self.cfg.protocol
                    ));
                }
                let claimed = match site_id.map(|s| SiteId::new(&s)) {
                    Some(Ok(site_id)) => Principal::Site { site_id },
                    Some(Err(e)) => return self.violation(format!("peer claims to be a site by an invalid id: {e}")),
                    None => Principal::Hub,
                };
                if claimed != self.cfg.peer {
                    return self
                        .violation(format!("peer claims to be {claimed} but its certificate says {}", self.cfg.peer));
                }
                self.phase = Phase::AwaitManifest;
            }
            (Phase::AwaitManifest, Msg::AuditHead(head)) if self.cfg.me == Principal::Hub && !self.audit_exchanged => {
                self.on_audit_head(head)
            }
            (Phase::AwaitManifest | Phase::Loading | Phase::Running, Msg::AuditWitness { held })
                if self.cfg.me != Principal::Hub
                    && self.audit_exchanged
                    && matches!(self.trail, AuditTrail::Ours(_)) =>
            {
                match held {
                    Some(head) => self.events.push_back(Event::Witnessed(head)),
                    None => self.witness_confirmed(),
                }
            }
            (Phase::AwaitManifest, Msg::Manifest { docs }) => self.on_manifest(docs),
            (Phase::Running, Msg::Sync { doc, data }) => self.on_sync(doc, data),
            (Phase::Running, Msg::DocsSynced) if self.cfg.me == Principal::Hub => self.on_docs_synced(),
            // Anyone may be asked for files; the hub's driver sends only the asking site's own.
            (Phase::Running, Msg::BlobWant { wants }) => {
                if let Some(bad) = wants.iter().find(|w| !is_blob_hash(&w.hash)) {
                    return self.violation(format!("wanted a file by a malformed name {:?}", bad.hash));
                }
                // One frame must not make the driver send a file many times over.
                let mut seen = BTreeSet::new();
                if let Some(twice) = wants.iter().find(|w| !seen.insert(w.hash.as_str())) {
                    return self.violation(format!("wanted file {} twice in one request", twice.hash));
                }
                self.events.push_back(Event::SendBlobs(wants));
            }
            // The piece checksum is not checked again here: TLS already protects each piece in transit, and the
            // receiver hashes the whole file before it keeps it (a second SHA-256 of every byte cost the hub a
            // sixth of its CPU in the first-sync bench). Senders still fill it, as protocol 1 asks.
            (Phase::Running, Msg::BlobChunk { hash, offset, total, data, .. }) if self.receives_files() => {
                self.on_blob_chunk(hash, offset, total, data)
            }
            (Phase::Running, Msg::BlobUnavailable { hash, reason }) if self.receives_files() => {
                let Some(incoming) = self.incoming.as_mut() else {
                    return self.fail("file report outside a transfer".into());
                };
                if incoming.expected.remove(&hash).is_some() {
                    incoming.unavailable.insert(hash.clone());
                    self.events.push_back(Event::BlobUnavailable { hash, reason });
                }
            }
            (Phase::Running, Msg::BlobsSent) if self.receives_files() => {
                let Some(incoming) = self.incoming.as_mut() else {
                    return self.fail("`BlobsSent` outside a transfer".into());
                };
                incoming.sender_done = true;
                self.maybe_confirm();
            }
            (Phase::Running, Msg::Synced { docs, blobs }) if self.cfg.me != Principal::Hub => {
                self.events.push_back(Event::Synced { docs, blobs });
            }
            (Phase::Running, Msg::Renew { csr }) if self.cfg.me == Principal::Hub => {
                self.events.push_back(Event::RenewRequested(csr));
            }
            (Phase::Running, Msg::Renewed { chain_pem }) if self.cfg.me != Principal::Hub => {
                self.events.push_back(Event::Renewed(chain_pem));
            }
            (Phase::Running, Msg::WebCertRequest { csr }) if self.cfg.me == Principal::Hub => {
                self.events.push_back(Event::WebCertRequested(csr));
            }
            (Phase::Running, Msg::WebCertAnswer { chain_pem, refused }) if self.cfg.me != Principal::Hub => {
                let answer = match (chain_pem, refused) {
                    (Some(chain), None) => Ok(chain),
                    (None, Some(reason)) => Err(reason),
                    _ => return self.fail("a web certificate answer must hold a chain or a reason".into()),
                };
                self.events.push_back(Event::WebCertAnswered(answer));
            }
            (phase, msg) => {
                let name = format!("{msg:?}");
                let name = name.split([' ', '(', '{']).next().unwrap_or("?").to_string();
                self.fail(format!("unexpected {name} message in phase {phase:?}"));
            }
        }
    }

    /// Hub: an edge presents its audit head. Older than what we hold from its site: refused and recorded.
    fn on_audit_head(&mut self, head: AuditHead) {
        self.audit_exchanged = true;
        let held = match &self.trail {
            AuditTrail::Witnessed(held) => held.clone(),
            AuditTrail::Off | AuditTrail::Ours(_) => None,
        };
        if let Err(reason) = super::witness::check_presented(held.as_ref(), &head) {
            return self.violation(reason);
        }
        self.send(Msg::AuditWitness { held });
        self.events.push_back(Event::AuditPresented(head));
    }

    fn on_manifest(&mut self, docs: Vec<DocHeads>) {
        for d in &docs {
            if !may_read(&self.cfg.peer, &d.doc) {
                return self.violation(format!("peer offered {}, which it may not hold", d.doc));
            }
            if !may_read(&self.cfg.me, &d.doc) {
                return self.violation(format!("peer offered {}, which we may not hold", d.doc));
            }
        }
        // Every document listed by either side, even where the heads already agree: both sides must arrive at
        // the same set, and only the side that listed a document knows it did (its cursor may be staler than
        // the other side's, e.g. after a crash before the cursor was saved). A converged document costs one
        // round trip.
        let mut union: BTreeSet<DocId> = self.our_manifest.iter().map(|d| d.doc.clone()).collect();
        union.extend(docs.iter().map(|d| d.doc.clone()));
        self.peer_manifest = Some(docs);
        self.pending_loads = union.clone();
        if union.is_empty() {
            self.phase = Phase::Running;
            self.check_converged();
        } else {
            self.phase = Phase::Loading;
            self.events.push_back(Event::Load(union.into_iter().collect()));
        }
    }

    fn on_sync(&mut self, id: DocId, data: Vec<u8>) {
        let peer_may_write = self.peer_may_write(&id);
        let Some(slot) = self.slots.get_mut(&id) else {
            if !may_read(&self.cfg.peer, &id) {
                return self.violation(format!("peer sent {id}, which it may not hold"));
            }
            if !may_read(&self.cfg.me, &id) {
                return self.violation(format!("peer sent {id}, which we may not hold"));
            }
            // A document that joined the session on the other side (written there meanwhile): load ours first.
            let pending = self.late.entry(id.clone()).or_default();
            if pending.len() >= 64 {
                return self.fail(format!("too many messages for {id} before it could be loaded"));
            }
            pending.push(data);
            if self.pending_loads.insert(id.clone()) {
                self.events.push_back(Event::Load(vec![id]));
            }
            return;
        };
        let message = match sync::Message::decode(&data) {
            Ok(m) => m,
            Err(e) => return self.fail(format!("bad sync message for {id}: {e}")),
        };
        if !peer_may_write && !message.changes.is_empty() {
            return self.violation(format!("peer sent changes to {id}, which only {:?} may write", id.owner()));
        }
        let doc = slot.doc.as_mut().expect("slots in a running session hold their document");
        let before = doc.get_heads();
        if let Err(e) = doc.receive_sync_message(&mut slot.state, message) {
            return self.fail(format!("could not apply the sync message for {id}: {e}"));
        }
        let after = doc.get_heads();
        if after != before {
            let changes = doc.get_changes(&before).iter().map(|c| c.hash()).collect();
            let incremental = doc.save_after(&before);
            self.events.push_back(Event::Applied { doc: id.clone(), changes, incremental, heads: after });
            self.announced = false;
        }
        self.generate(&id);
        self.check_converged();
    }

    fn on_docs_synced(&mut self) {
        if !self.converged() {
            // More changes are on their way to the edge; it will say so again.
            return;
        }
        if self.incoming.is_some() {
            self.recheck = true;
            return;
        }
        self.recheck = false;
        match self.referenced_files() {
            Ok(referenced) => self.events.push_back(Event::CheckBlobs(referenced)),
            Err(e) => self.fail(e),
        }
    }

    /// The files referenced by the site configuration documents of this session.
    /// Every stored file a site's documents refer to: configuration versions (`raw_hash`) and the evidence of
    /// restore tests (`evidence_hash`). A file missing here would neither reach the hub nor come back in a
    /// restore.
    fn referenced_files(&self) -> Result<Vec<String>, String> {
        const REFERENCES: [(&str, &str, &str); 2] =
            [("configs", ConfigVersion::COLLECTION, "raw_hash"), ("records", RestoreTest::COLLECTION, "evidence_hash")];
        let mut referenced = BTreeSet::new();
        for (id, slot) in &self.slots {
            if !matches!(id.owner(), Owner::Site(_)) {
                continue;
            }
            let Some(doc) = slot.doc.as_ref() else { continue };
            for (kind, collection, field) in REFERENCES {
                if id.kind() != kind {
                    continue;
                }
                let records = crate::document::collection_json(doc, collection)
                    .map_err(|e| format!("cannot read {collection} of {id}: {e}"))?;
                for (_, json) in records {
                    if let Some(hash) = json.get(field).and_then(|h| h.as_str()) {
                        if is_blob_hash(hash) {
                            referenced.insert(hash.to_string());
                        }
                    }
                }
            }
        }
        Ok(referenced.into_iter().collect())
    }

    fn on_blob_chunk(&mut self, hash: String, offset: u64, total: u64, data: Vec<u8>) {
        let Some(incoming) = self.incoming.as_mut() else {
            return self.fail("file piece outside a transfer".into());
        };
        let Some(expected) = incoming.expected.get(&hash).copied() else {
            return self.violation(format!("peer sent file {hash}, which was not asked for"));
        };
        let len = data.len() as u64;
        if offset != expected || data.len() > BLOB_CHUNK || offset.checked_add(len).is_none_or(|end| end > total) {
            return self
                .fail(format!("file {hash}: piece at {offset} (+{len} of {total}) where {expected} was expected"));
        }
        let end = offset + len;
        if end == total {
            incoming.expected.remove(&hash);
        } else if len == 0 {
            return self.fail(format!("file {hash}: empty piece before the end"));
        } else {
            incoming.expected.insert(hash.clone(), end);
        }
        if end == total {
            incoming.awaiting_verdict.insert(hash.clone());
        }
        self.events.push_back(Event::BlobChunk { hash: hash.clone(), offset, total, data });
        if end == total {
            self.events.push_back(Event::BlobComplete { hash, total });
        }
    }

    /// Receiver: once the sender has sent everything and every wanted file is stored, the hub confirms
    /// with `Synced`; an edge being restored goes on to announce `DocsSynced`.
    fn maybe_confirm(&mut self) {
        let Some(incoming) = self.incoming.as_ref() else { return };
        if !incoming.sender_done {
            return;
        }
        if let Some(hash) = incoming.expected.keys().next() {
            let hash = hash.clone();
            return self.fail(format!("the peer finished sending but file {hash} is incomplete"));
        }
        if !incoming.awaiting_verdict.is_empty() {
            return;
        }
        if self.cfg.me != Principal::Hub {
            self.incoming = None;
            self.pulled = true;
            return self.check_converged();
        }
        let docs = self.slots.len() as u32;
        let blobs = self.blobs_total;
        self.events.push_back(Event::Synced { docs, blobs });
        self.send(Msg::Synced { docs, blobs });
        self.incoming = None;
        if self.recheck {
            self.on_docs_synced();
        }
    }

    fn generate(&mut self, id: &DocId) {
        // Edge: nothing of ours goes to the hub before our trail was found to hold what the hub witnessed (a
        // forked trail's documents must not reach the hub).
        if self.cfg.me != Principal::Hub && self.audit_exchanged {
            return;
        }
        let Some(slot) = self.slots.get_mut(id) else { return };
        let Some(doc) = slot.doc.as_ref() else { return };
        if let Some(message) = doc.generate_sync_message(&mut slot.state) {
            let data = message.encode();
            self.send(Msg::Sync { doc: id.clone(), data });
        }
    }

    /// Every document of the session: the peer has told us its heads and they equal ours.
    fn converged(&self) -> bool {
        self.pending_loads.is_empty()
            && self.slots.values().all(|slot| match (&slot.doc, &slot.state.their_heads) {
                (Some(doc), Some(theirs)) => *theirs == doc.get_heads(),
                _ => false,
            })
    }

    fn check_converged(&mut self) {
        // Edge: not before the hub's witness of our audit trail was checked.
        if self.cfg.me == Principal::Hub || self.announced || self.phase != Phase::Running || self.audit_exchanged {
            return;
        }
        if !self.converged() {
            return;
        }
        if self.restoring && !self.pulled {
            // Fetch the site's files first; `maybe_confirm` comes back here when they are in.
            if !self.pull_asked {
                self.pull_asked = true;
                match self.referenced_files() {
                    Ok(referenced) => self.events.push_back(Event::CheckBlobs(referenced)),
                    Err(e) => self.fail(e),
                }
            }
            return;
        }
        self.announced = true;
        self.send(Msg::DocsSynced);
    }

    /// May the peer author changes to `id` in this session? Its own documents; and, only while we are being
    /// restored from the hub, the hub our own site's documents.
    fn peer_may_write(&self, id: &DocId) -> bool {
        may_write(&self.cfg.peer, id) || (self.restoring && may_write(&self.cfg.me, id))
    }

    /// Do we take files from the peer? The hub always; an edge only while it is being restored.
    fn receives_files(&self) -> bool {
        self.cfg.me == Principal::Hub || self.restoring
    }

    fn frame(&mut self, msg: Msg) -> Vec<u8> {
        self.send_seq += 1;
        Frame { seq: self.send_seq, msg }.encode()
    }

    fn send(&mut self, msg: Msg) {
        let bytes = self.frame(msg);
        self.out.push_back(bytes);
    }

    fn fail(&mut self, reason: String) {
        self.reject(&reason);
        self.events.push_back(Event::Failed(reason));
    }

    fn violation(&mut self, reason: String) {
        self.reject(&reason);
        self.events.push_back(Event::Violation(reason));
    }
}
