//! Two peers, one edge and the hub, driven in memory: the protocol converges, resumes, and refuses every
//! write a peer is not entitled to — tested from the attacker's side.

mod support;

use automerge::sync::SyncDoc;
use automerge::Automerge;
use datum_shared::ids::SiteId;
use datum_shared::sync::wire::{AuditHead, BlobWant, Frame, Msg, BLOB_CHUNK};
use datum_shared::sync::{witness, AuditTrail, Event, Principal, Session, SessionConfig};
use datum_shared::DocId;
use support::*;

const CHUNK: usize = BLOB_CHUNK;

fn converge(edge: &mut Node, hub: &mut Node, chunk: usize) -> (Outcome, Outcome) {
    let mut link = Link::open(edge, hub, chunk);
    link.run(edge, hub, chunk);
    link.close(edge, hub)
}

fn assert_same(edge: &Node, hub: &Node, docs: &[DocId]) {
    for d in docs {
        assert_eq!(edge.disk.heads(d), hub.disk.heads(d), "{d} differs");
    }
}

#[test]
fn first_sync_then_incremental_then_nothing() {
    let mut rng = Rng::new(1);
    let mut edge = Node::edge("aaaaaaaaaaaaaaaa");
    let mut hub = Node::hub();
    let docs = site_docs("aaaaaaaaaaaaaaaa");
    for d in &docs {
        for _ in 0..5 {
            edge.write(d, &mut rng);
        }
    }
    hub.write(&hub_doc(), &mut rng);

    let (e, h) = converge(&mut edge, &mut hub, CHUNK);
    assert_eq!((e.synced, h.synced), (1, 1), "{e:?} {h:?}");
    assert!(e.failed.is_empty() && h.failed.is_empty(), "{e:?} {h:?}");
    assert_same(&edge, &hub, &docs);
    assert_same(&edge, &hub, &[hub_doc()]);
    assert_eq!(hub.disk.blobs, edge.disk.blobs, "every configuration file reached the hub");
    let received = hub.disk.received.len();
    assert_eq!(received, 15, "every edge change is attributed once");

    // One more change: only that document is in the manifest, only that change travels.
    edge.write(&docs[0], &mut rng);
    let (e, _) = converge(&mut edge, &mut hub, CHUNK);
    assert_eq!(e.synced, 1);
    assert_eq!(hub.disk.received.len(), received + 1);
    assert_same(&edge, &hub, &docs);

    // Nothing changed: an empty manifest on both sides, still a confirmed sync.
    let mut link = Link::open(&mut edge, &mut hub, CHUNK);
    let first: Vec<Frame> = link.a_to_b.iter().map(|f| Frame::decode(f).expect("own frame")).collect();
    assert!(matches!(&first[1].msg, Msg::Manifest { docs } if docs.is_empty()), "{first:?}");
    link.run(&mut edge, &mut hub, CHUNK);
    let (e, _) = link.close(&mut edge, &mut hub);
    assert_eq!(e.synced, 1);
}

/// An edge whose configurations document references one file, a hub that has nothing yet, and that file.
fn edge_with_one_file(seed: u64) -> (Node, Node, String, Vec<u8>) {
    let mut rng = Rng::new(seed);
    let mut edge = Node::edge("aaaaaaaaaaaaaaaa");
    let configs = site_docs("aaaaaaaaaaaaaaaa")[2].clone();
    edge.write(&configs, &mut rng);
    let (hash, bytes) = edge.disk.blobs.iter().next().map(|(h, b)| (h.clone(), b.clone())).expect("one file");
    (edge, Node::hub(), hash, bytes)
}

#[test]
fn a_cut_file_transfer_resumes_where_it_stopped() {
    let (mut edge, mut hub, hash, bytes) = edge_with_one_file(2);
    assert!(bytes.len() > 6);

    // Deliver until the hub has part of the file, then cut.
    let chunk = 3;
    let mut link = Link::open(&mut edge, &mut hub, chunk);
    for _ in 0..10_000 {
        if hub.disk.partial.get(&hash).is_some_and(|p| p.len() >= 3) {
            break;
        }
        link.deliver(&mut edge, &mut hub, true, chunk);
        link.deliver(&mut edge, &mut hub, false, chunk);
    }
    let got = hub.disk.partial.get(&hash).map(|p| p.len()).expect("a partial file");
    assert!(got < bytes.len());
    link.close(&mut edge, &mut hub);

    let mut link = Link::open(&mut edge, &mut hub, chunk);
    link.run(&mut edge, &mut hub, chunk);
    let resumed_from = link.b_sent.iter().find_map(|f| match Frame::decode(f) {
        Ok(Frame { msg: Msg::BlobWant { wants }, .. }) => wants.iter().find(|w| w.hash == hash).map(|w| w.from),
        _ => None,
    });
    let (e, _) = link.close(&mut edge, &mut hub);
    assert_eq!(resumed_from, Some(got as u64), "the hub asks from where it stopped");
    assert_eq!(e.synced, 1);
    assert_eq!(hub.disk.blobs.get(&hash), Some(&bytes));
}

/// Pieces are not re-hashed one by one on arrival (TLS protects them in transit): what keeps a wrong file out is
/// the whole file's hash, checked before the receiver keeps it. A sender whose copy no longer matches its name
/// sends pieces with correct checksums; the hub still keeps nothing of it and the sync fails.
#[test]
fn a_file_whose_content_does_not_match_its_name_is_refused_whole() {
    let (mut edge, mut hub, hash, _) = edge_with_one_file(3);
    edge.disk.blobs.get_mut(&hash).expect("file")[0] ^= 0x20;

    let (e, h) = converge(&mut edge, &mut hub, 5);
    assert_eq!((e.synced, h.synced), (0, 0), "{e:?} {h:?}");
    assert!(h.failed.iter().any(|f| f.contains(&format!("file {hash} failed verification"))), "{h:?}");
    assert!(!hub.disk.blobs.contains_key(&hash), "the hub keeps no file that does not match its name");
}

/// The version the transport negotiated decides both the `Hello` a peer must send and whether pieces carry
/// their checksum: under 1 they do (hubs of the first builds check them), from 2 on the sender skips that
/// pass over every byte.
#[test]
fn the_negotiated_version_decides_the_hello_and_the_piece_checksum() {
    use sha2::{Digest, Sha256};
    let site = "aaaaaaaaaaaaaaaa";
    let session = |protocol: u32| {
        let cfg = SessionConfig {
            me: Principal::Site { site_id: SiteId::new(site).expect("valid site id") },
            peer: Principal::Hub,
            node: "edge".into(),
            store: site.into(),
            restoring: false,
            protocol,
        };
        Session::new(cfg, Vec::new())
    };
    let data = b"interface Gi0/1\n description pump 3\n".to_vec();
    for (protocol, expected) in [(1, <[u8; 32]>::from(Sha256::digest(&data))), (2, [0; 32])] {
        let mut edge = session(protocol);
        let mut sent = Vec::new();
        while let Some(frame) = edge.poll_transmit() {
            sent.push(Frame::decode(&frame).expect("frame").msg);
        }
        assert!(matches!(sent.first(), Some(Msg::Hello { protocol: p, .. }) if *p == protocol), "{sent:?}");
        let piece = edge.blob_chunk_frame(&"ab".repeat(32), 0, data.len() as u64, data.clone());
        match Frame::decode(&piece).expect("frame").msg {
            Msg::BlobChunk { sha256, data: got, .. } => assert_eq!((sha256, got), (expected, data.clone())),
            other => panic!("{other:?}"),
        }
    }
    // A peer whose Hello names another version than the connection negotiated is refused.
    let mut hub = Node::hub();
    let mut forger = Forger { seq: 0 };
    let older =
        forger.frame(Msg::Hello { protocol: 1, node: "edge".into(), site_id: Some(site.into()), store: "x".into() });
    let outcome = attack(&mut hub, site, vec![older]);
    assert!(
        outcome.failed.iter().any(|f| f.contains("peer speaks protocol 1, the connection negotiated 2")),
        "{outcome:?}"
    );
}

/// A hand-made peer: sends the frames we script, so it can break rules an honest session never breaks.
struct Forger {
    seq: u64,
}

impl Forger {
    fn frame(&mut self, msg: Msg) -> Vec<u8> {
        self.seq += 1;
        Frame { seq: self.seq, msg }.encode()
    }
    fn hello(&mut self, site_id: Option<&str>) -> Vec<u8> {
        self.frame(Msg::Hello {
            protocol: datum_shared::sync::wire::PROTOCOL_VERSION,
            node: "forger".into(),
            site_id: site_id.map(str::to_string),
            store: "x".into(),
        })
    }
}

fn hub_session(peer_site: &str, hub: &Node) -> Session {
    let cfg = SessionConfig {
        me: Principal::Hub,
        peer: Principal::Site { site_id: SiteId::new(peer_site).expect("valid site id") },
        node: "hub".into(),
        store: "hub-store".into(),
        restoring: false,
        protocol: datum_shared::sync::wire::PROTOCOL_VERSION,
    };
    let docs = hub
        .disk
        .doc_ids()
        .into_iter()
        .map(|id| datum_shared::sync::LocalDoc { heads: hub.disk.heads(&id), saved_state: None, id })
        .collect();
    Session::new(cfg, docs)
}

/// Feeds forged frames to a hub session; returns the violations and failures it reported.
fn attack(hub: &mut Node, peer_site: &str, frames: Vec<Vec<u8>>) -> Outcome {
    let mut session = hub_session(peer_site, hub);
    let mut outcome = Outcome::default();
    let mut sent = drive(hub, "forger", &mut session, CHUNK, &mut outcome);
    for f in frames {
        session.handle(&f);
        sent.extend(drive(hub, "forger", &mut session, CHUNK, &mut outcome));
    }
    assert!(
        outcome.violations.is_empty() && outcome.failed.is_empty()
            || sent.iter().any(|f| matches!(Frame::decode(f), Ok(Frame { msg: Msg::Reject { .. }, .. }))),
        "a refusal is announced to the peer"
    );
    assert!(session.is_closed() || (outcome.violations.is_empty() && outcome.failed.is_empty()));
    outcome
}

/// An automerge sync message carrying real changes to `doc_id`.
fn changes_for(doc_id: &DocId) -> Vec<u8> {
    let mut rng = Rng::new(9);
    let mut liar = Node::edge("aaaaaaaaaaaaaaaa");
    let doc = liar.write(doc_id, &mut rng);
    let mut state = automerge::sync::State::new();
    // Pretend the peer already told us it has nothing, so the next message carries changes.
    let empty = Automerge::new();
    let mut their = automerge::sync::State::new();
    let hello = empty.generate_sync_message(&mut their).expect("first message");
    let mut doc2 = doc.clone();
    doc2.receive_sync_message(&mut state, hello).expect("receive");
    let msg = doc2.generate_sync_message(&mut state).expect("a message with changes");
    assert!(!msg.changes.is_empty());
    msg.encode()
}

#[test]
fn hub_rejects_an_edge_writing_a_hub_document() {
    let mut hub = Node::hub();
    let mut rng = Rng::new(3);
    hub.write(&hub_doc(), &mut rng);
    let mut f = Forger { seq: 0 };
    let heads = vec![[7u8; 32]];
    let frames = vec![
        f.hello(Some("aaaaaaaaaaaaaaaa")),
        f.frame(Msg::Manifest { docs: vec![datum_shared::sync::wire::DocHeads { doc: hub_doc(), heads }] }),
        f.frame(Msg::Sync { doc: hub_doc(), data: changes_for(&hub_doc()) }),
    ];
    let before = hub.disk.heads(&hub_doc());
    let outcome = attack(&mut hub, "aaaaaaaaaaaaaaaa", frames);
    assert_eq!(outcome.violations.len(), 1, "{outcome:?}");
    assert!(outcome.violations[0].contains("hub/templates"), "{outcome:?}");
    assert_eq!(hub.disk.heads(&hub_doc()), before, "nothing was applied");
    assert_eq!(hub.disk.violations.len(), 1, "the violation is recorded");
}

#[test]
fn hub_rejects_another_sites_documents() {
    let mut hub = Node::hub();
    let other = DocId::site("bbbbbbbbbbbbbbbb", "inventory");
    // Offered in the manifest.
    let mut f = Forger { seq: 0 };
    let frames = vec![
        f.hello(Some("aaaaaaaaaaaaaaaa")),
        f.frame(Msg::Manifest { docs: vec![datum_shared::sync::wire::DocHeads { doc: other.clone(), heads: vec![] }] }),
    ];
    let outcome = attack(&mut hub, "aaaaaaaaaaaaaaaa", frames);
    assert!(outcome.violations.iter().any(|v| v.contains("site/bbbbbbbbbbbbbbbb/inventory")), "{outcome:?}");
    // Sent without being offered.
    let mut f = Forger { seq: 0 };
    let frames = vec![
        f.hello(Some("aaaaaaaaaaaaaaaa")),
        f.frame(Msg::Manifest { docs: vec![] }),
        f.frame(Msg::Sync { doc: other.clone(), data: changes_for(&other) }),
    ];
    let outcome = attack(&mut hub, "aaaaaaaaaaaaaaaa", frames);
    assert!(outcome.violations.iter().any(|v| v.contains("site/bbbbbbbbbbbbbbbb/inventory")), "{outcome:?}");
    assert!(hub.disk.load(&other).is_none());
}

#[test]
fn hub_rejects_an_edge_claiming_another_site() {
    let mut hub = Node::hub();
    let mut f = Forger { seq: 0 };
    let outcome = attack(&mut hub, "aaaaaaaaaaaaaaaa", vec![f.hello(Some("bbbbbbbbbbbbbbbb"))]);
    assert!(outcome.violations.iter().any(|v| v.contains("claims to be site bbbbbbbbbbbbbbbb")), "{outcome:?}");
    // An id that is no site id at all is the same violation, named as such (never a panic).
    let mut f = Forger { seq: 0 };
    let outcome = attack(&mut hub, "aaaaaaaaaaaaaaaa", vec![f.hello(Some("../../etc"))]);
    assert!(outcome.violations.iter().any(|v| v.contains("by an invalid id")), "{outcome:?}");
    let mut f = Forger { seq: 0 };
    let outcome = attack(&mut hub, "aaaaaaaaaaaaaaaa", vec![f.hello(None)]);
    assert!(outcome.violations.iter().any(|v| v.contains("claims to be hub")), "{outcome:?}");
}

#[test]
fn hub_refuses_unasked_or_corrupt_file_pieces_and_bad_frames() {
    let mut hub = Node::hub();
    let mut f = Forger { seq: 0 };
    let frames = vec![
        f.hello(Some("aaaaaaaaaaaaaaaa")),
        f.frame(Msg::Manifest { docs: vec![] }),
        f.frame(Msg::BlobChunk { hash: "ab".repeat(32), offset: 0, total: 1, sha256: [0; 32], data: vec![1] }),
    ];
    let outcome = attack(&mut hub, "aaaaaaaaaaaaaaaa", frames);
    assert!(!outcome.failed.is_empty() || !outcome.violations.is_empty(), "{outcome:?}");
    assert!(hub.disk.blobs.is_empty() && hub.disk.partial.is_empty());

    // Out of sequence, duplicated, garbage.
    for frames in [
        vec![Forger { seq: 1 }.hello(Some("aaaaaaaaaaaaaaaa"))],
        {
            let mut f = Forger { seq: 0 };
            let h = f.hello(Some("aaaaaaaaaaaaaaaa"));
            vec![h.clone(), h]
        },
        vec![vec![0xff; 40]],
    ] {
        let outcome = attack(&mut hub, "aaaaaaaaaaaaaaaa", frames);
        assert_eq!(outcome.failed.len(), 1, "{outcome:?}");
    }
}

#[test]
fn edge_accepts_no_change_to_its_own_documents_from_the_hub() {
    let mut edge = Node::edge("aaaaaaaaaaaaaaaa");
    let mut rng = Rng::new(4);
    let inv = DocId::site("aaaaaaaaaaaaaaaa", "inventory");
    edge.write(&inv, &mut rng);
    let before = edge.disk.heads(&inv);
    let mut session = {
        let hub = Node::hub();
        edge.session(&hub)
    };
    let mut outcome = Outcome::default();
    drive(&mut edge, "hub", &mut session, CHUNK, &mut outcome);
    let mut f = Forger { seq: 0 };
    for frame in [
        f.hello(None),
        f.frame(Msg::Manifest { docs: vec![] }),
        f.frame(Msg::Sync { doc: inv.clone(), data: changes_for(&inv) }),
    ] {
        session.handle(&frame);
        drive(&mut edge, "hub", &mut session, CHUNK, &mut outcome);
    }
    assert!(outcome.violations.iter().any(|v| v.contains("site/aaaaaaaaaaaaaaaa/inventory")), "{outcome:?}");
    assert_eq!(edge.disk.heads(&inv), before);
}

/// An empty edge of site `site_id` being rebuilt from the hub.
fn rebuilt_edge(site_id: &str) -> Node {
    let mut node = Node::edge(site_id);
    node.name = format!("edge-{site_id}-rebuilt");
    node.restoring = true;
    node
}

#[test]
fn a_restoring_edge_gets_every_document_and_file_of_its_site_back() {
    let mut rng = Rng::new(5);
    let mut edge = Node::edge("aaaaaaaaaaaaaaaa");
    let mut other = Node::edge("bbbbbbbbbbbbbbbb");
    let mut hub = Node::hub();
    let docs = site_docs("aaaaaaaaaaaaaaaa");
    for d in &docs {
        for _ in 0..4 {
            edge.write(d, &mut rng);
        }
    }
    other.write(&site_docs("bbbbbbbbbbbbbbbb")[2], &mut rng);
    hub.write(&hub_doc(), &mut rng);
    converge(&mut edge, &mut hub, CHUNK);
    converge(&mut other, &mut hub, CHUNK);
    let received = hub.disk.received.len();

    // The disk died: a new node of the same site, with nothing, in small pieces.
    let mut rebuilt = rebuilt_edge("aaaaaaaaaaaaaaaa");
    let (e, h) = converge(&mut rebuilt, &mut hub, 7);
    assert_eq!((e.synced, h.synced), (1, 1), "{e:?} {h:?}");
    assert!(e.failed.is_empty() && e.violations.is_empty() && h.failed.is_empty() && h.violations.is_empty());
    assert_same(&rebuilt, &hub, &docs);
    assert_same(&rebuilt, &hub, &[hub_doc()]);
    assert_eq!(rebuilt.disk.blobs, edge.disk.blobs, "every file of the site is back, and only those");
    assert!(
        rebuilt.disk.doc_ids().iter().all(|d| !d.as_str().contains("bbbbbbbbbbbbbbbb")),
        "no other site's documents"
    );
    assert_eq!(hub.disk.received.len(), received, "the hub received nothing new");

    // Afterwards it is an ordinary edge: nothing to do, then its new writes flow as usual.
    rebuilt.restoring = false;
    let (e, _) = converge(&mut rebuilt, &mut hub, CHUNK);
    assert_eq!(e.synced, 1, "{e:?}");
    rebuilt.write(&docs[2], &mut rng);
    let (e, _) = converge(&mut rebuilt, &mut hub, CHUNK);
    assert_eq!(e.synced, 1, "{e:?}");
    assert_eq!(hub.disk.received.len(), received + 1);
    assert_same(&rebuilt, &hub, &docs);
    assert_eq!(hub.disk.blobs.len(), edge.disk.blobs.len() + other.disk.blobs.len() + 1);
}

#[test]
fn a_cut_restore_resumes_where_it_stopped() {
    let mut rng = Rng::new(6);
    let mut edge = Node::edge("aaaaaaaaaaaaaaaa");
    let mut hub = Node::hub();
    let docs = site_docs("aaaaaaaaaaaaaaaa");
    for _ in 0..3 {
        edge.write(&docs[2], &mut rng);
        edge.write(&docs[0], &mut rng);
    }
    converge(&mut edge, &mut hub, CHUNK);

    let chunk = 3;
    let mut rebuilt = rebuilt_edge("aaaaaaaaaaaaaaaa");
    let mut link = Link::open(&mut rebuilt, &mut hub, chunk);
    for _ in 0..10_000 {
        if rebuilt.disk.partial.values().any(|p| p.len() >= 3) {
            break;
        }
        link.deliver(&mut rebuilt, &mut hub, true, chunk);
        link.deliver(&mut rebuilt, &mut hub, false, chunk);
    }
    assert!(rebuilt.disk.partial.values().any(|p| !p.is_empty()), "cut in the middle of a file");
    let (e, _) = link.close(&mut rebuilt, &mut hub);
    assert_eq!(e.synced, 0);

    let (e, h) = converge(&mut rebuilt, &mut hub, chunk);
    assert_eq!((e.synced, h.synced), (1, 1), "{e:?} {h:?}");
    assert_same(&rebuilt, &hub, &docs);
    assert_eq!(rebuilt.disk.blobs, edge.disk.blobs);
    assert!(rebuilt.disk.partial.is_empty());
}

/// Feeds forged hub frames to an edge session; returns what the edge reported.
fn attack_edge(edge: &mut Node, frames: Vec<Vec<u8>>) -> Outcome {
    let mut session = {
        let hub = Node::hub();
        edge.session(&hub)
    };
    let mut outcome = Outcome::default();
    drive(edge, "hub", &mut session, CHUNK, &mut outcome);
    for frame in frames {
        session.handle(&frame);
        drive(edge, "hub", &mut session, CHUNK, &mut outcome);
    }
    outcome
}

#[test]
fn a_hub_may_not_push_files_to_an_edge_that_is_not_restoring() {
    let mut edge = Node::edge("aaaaaaaaaaaaaaaa");
    let bytes = b"hostname evil".to_vec();
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    let sha256 = <sha2::Sha256 as sha2::Digest>::digest(&bytes).into();
    let mut f = Forger { seq: 0 };
    let frames = vec![
        f.hello(None),
        f.frame(Msg::Manifest { docs: vec![] }),
        f.frame(Msg::BlobChunk { hash, offset: 0, total: bytes.len() as u64, sha256, data: bytes }),
        f.frame(Msg::BlobsSent),
    ];
    let outcome = attack_edge(&mut edge, frames);
    assert!(outcome.failed.iter().any(|f| f.contains("unexpected BlobChunk")), "{outcome:?}");
    assert!(edge.disk.blobs.is_empty() && edge.disk.partial.is_empty());
}

/// One request may not make a peer stream the same file many times (an amplification a fuzzing review found).
#[test]
fn a_file_wanted_twice_in_one_request_is_a_violation() {
    let mut edge = Node::edge("aaaaaaaaaaaaaaaa");
    let hash = "ab".repeat(32);
    let mut f = Forger { seq: 0 };
    let want = || BlobWant { hash: hash.clone(), from: 0 };
    let frames =
        vec![f.hello(None), f.frame(Msg::Manifest { docs: vec![] }), f.frame(Msg::BlobWant { wants: vec![want(); 3] })];
    let outcome = attack_edge(&mut edge, frames);
    assert!(outcome.violations.iter().any(|v| v.contains("twice in one request")), "{outcome:?}");
}

#[test]
fn a_restoring_edge_takes_nothing_of_another_site_and_no_file_it_did_not_ask_for() {
    let other = DocId::site("bbbbbbbbbbbbbbbb", "inventory");
    // Offered in the manifest.
    let mut edge = rebuilt_edge("aaaaaaaaaaaaaaaa");
    let mut f = Forger { seq: 0 };
    let frames = vec![
        f.hello(None),
        f.frame(Msg::Manifest { docs: vec![datum_shared::sync::wire::DocHeads { doc: other.clone(), heads: vec![] }] }),
    ];
    let outcome = attack_edge(&mut edge, frames);
    assert!(outcome.violations.iter().any(|v| v.contains("site/bbbbbbbbbbbbbbbb/inventory")), "{outcome:?}");
    // Sent without being offered.
    let mut f = Forger { seq: 0 };
    let frames = vec![
        f.hello(None),
        f.frame(Msg::Manifest { docs: vec![] }),
        f.frame(Msg::Sync { doc: other.clone(), data: changes_for(&other) }),
    ];
    let outcome = attack_edge(&mut edge, frames);
    assert!(outcome.violations.iter().any(|v| v.contains("site/bbbbbbbbbbbbbbbb/inventory")), "{outcome:?}");
    assert!(edge.disk.load(&other).is_none());
    // A file it did not ask for (it asked for none: it has no configuration documents).
    let mut f = Forger { seq: 0 };
    let frames = vec![
        f.hello(None),
        f.frame(Msg::Manifest { docs: vec![] }),
        f.frame(Msg::BlobChunk { hash: "ab".repeat(32), offset: 0, total: 1, sha256: [0; 32], data: vec![1] }),
    ];
    let outcome = attack_edge(&mut edge, frames);
    assert!(outcome.violations.iter().any(|v| v.contains("not asked for")), "{outcome:?}");
    assert!(edge.disk.blobs.is_empty() && edge.disk.partial.is_empty());
}

#[test]
fn the_restoring_flag_gives_an_edge_nothing_more_at_the_hub() {
    let mut hub = Node::hub();
    let mut rng = Rng::new(7);
    hub.write(&hub_doc(), &mut rng);
    let cfg = SessionConfig {
        me: Principal::Hub,
        peer: Principal::Site { site_id: SiteId::new("aaaaaaaaaaaaaaaa").expect("valid site id") },
        node: "hub".into(),
        store: "hub-store".into(),
        restoring: true,
        protocol: datum_shared::sync::wire::PROTOCOL_VERSION,
    };
    let docs = hub
        .disk
        .doc_ids()
        .into_iter()
        .map(|id| datum_shared::sync::LocalDoc { heads: hub.disk.heads(&id), saved_state: None, id })
        .collect();
    let mut session = Session::new(cfg, docs);
    let mut outcome = Outcome::default();
    drive(&mut hub, "forger", &mut session, CHUNK, &mut outcome);
    let mut f = Forger { seq: 0 };
    let heads = vec![[7u8; 32]];
    for frame in [
        f.hello(Some("aaaaaaaaaaaaaaaa")),
        f.frame(Msg::Manifest { docs: vec![datum_shared::sync::wire::DocHeads { doc: hub_doc(), heads }] }),
        f.frame(Msg::Sync { doc: hub_doc(), data: changes_for(&hub_doc()) }),
    ] {
        session.handle(&frame);
        drive(&mut hub, "forger", &mut session, CHUNK, &mut outcome);
    }
    assert!(outcome.violations.iter().any(|v| v.contains("hub/templates")), "{outcome:?}");
}

/// Two sessions with audit trails and no documents, pumped until quiet. The edge answers `Witnessed` with
/// `verdict`; returns (edge events, hub events).
fn witness_exchange(
    held: Option<AuditHead>,
    ours: AuditHead,
    verdict: impl Fn(&AuditHead) -> Result<(), String>,
) -> (Vec<Event>, Vec<Event>) {
    let cfg = |me: Principal, peer: Principal| SessionConfig {
        me,
        peer,
        node: "n".into(),
        store: "s".into(),
        restoring: false,
        protocol: datum_shared::sync::wire::PROTOCOL_VERSION,
    };
    let site = Principal::Site { site_id: SiteId::new("aaaaaaaaaaaaaaaa").expect("valid site id") };
    let mut edge = Session::with_audit(cfg(site.clone(), Principal::Hub), vec![], AuditTrail::Ours(ours));
    let mut hub = Session::with_audit(cfg(Principal::Hub, site), vec![], AuditTrail::Witnessed(held));
    let (mut edge_events, mut hub_events) = (Vec::new(), Vec::new());
    for _ in 0..100 {
        let mut moved = false;
        while let Some(frame) = edge.poll_transmit() {
            moved = true;
            hub.handle(&frame);
            while let Some(event) = hub.poll_event() {
                if matches!(event, Event::CheckBlobs(_)) {
                    hub.want_blobs(vec![]);
                }
                hub_events.push(event);
            }
        }
        while let Some(frame) = hub.poll_transmit() {
            moved = true;
            edge.handle(&frame);
            while let Some(event) = edge.poll_event() {
                match &event {
                    Event::Witnessed(head) => edge.witness_checked(verdict(head)),
                    Event::SendBlobs(_) => edge.blobs_sent(),
                    _ => {}
                }
                edge_events.push(event);
            }
        }
        if !moved {
            return (edge_events, hub_events);
        }
    }
    panic!("the witness exchange did not settle: {edge_events:?} {hub_events:?}");
}

fn audit_head(seq: u64, hash: &str) -> AuditHead {
    AuditHead { seq, hash: hash.repeat(32), signature: "00".repeat(64) }
}

#[test]
fn the_hub_refuses_a_rolled_back_trail_and_the_edge_a_forked_one() {
    let synced = |events: &[Event]| events.iter().any(|e| matches!(e, Event::Synced { .. }));
    // A newer head that descends from the held one: synced, and the hub is told to keep it.
    let (e, h) = witness_exchange(Some(audit_head(5, "aa")), audit_head(7, "cc"), |_| Ok(()));
    assert!(synced(&e) && synced(&h), "{e:?} {h:?}");
    assert!(h.contains(&Event::AuditPresented(audit_head(7, "cc"))), "{h:?}");
    assert!(e.contains(&Event::Witnessed(audit_head(5, "aa"))), "{e:?}");
    // Nothing held yet: no check on the edge's side, synced.
    let (e, h) = witness_exchange(None, audit_head(1, "aa"), |_| panic!("nothing to check"));
    assert!(synced(&e) && synced(&h), "{e:?} {h:?}");
    // Older than held: the hub refuses and records it; the edge is told why.
    let (e, h) = witness_exchange(Some(audit_head(5, "aa")), audit_head(3, "bb"), |_| Ok(()));
    assert!(!synced(&e) && !synced(&h));
    assert!(
        matches!(&h[..], [Event::Violation(r)] if r.starts_with(witness::ROLLED_BACK) && r.contains("entry 5")),
        "{h:?}"
    );
    assert!(matches!(&e[..], [Event::Rejected(r)] if r.starts_with(witness::ROLLED_BACK)), "{e:?}");
    // Newer, but the edge's trail does not hold what the hub saw: the edge refuses, the hub keeps nothing.
    let (e, h) = witness_exchange(Some(audit_head(5, "aa")), audit_head(9, "dd"), |held| {
        witness::check_witnessed(held, Some(&"ee".repeat(32)), 9)
    });
    assert!(!synced(&e) && !synced(&h), "{e:?} {h:?}");
    assert!(h.iter().any(|ev| matches!(ev, Event::Rejected(r) if r.starts_with(witness::DIVERGED))), "{h:?}");
}

#[test]
fn web_certificates_are_asked_by_edges_only_and_answered_by_the_hub_only() {
    // A hub's answer without a chain or a reason, or with both, ends the session.
    for (chain_pem, refused) in [(None, None), (Some("x".to_string()), Some("y".to_string()))] {
        let mut edge = Node::edge("aaaaaaaaaaaaaaaa");
        let mut f = Forger { seq: 0 };
        let frames = vec![
            f.hello(None),
            f.frame(Msg::Manifest { docs: vec![] }),
            f.frame(Msg::WebCertAnswer { chain_pem, refused }),
        ];
        let outcome = attack_edge(&mut edge, frames);
        assert!(outcome.failed.iter().any(|f| f.contains("chain or a reason")), "{outcome:?}");
    }
    // An edge may not answer web certificate requests (it issues nothing).
    let mut hub = Node::hub();
    let mut f = Forger { seq: 0 };
    let frames = vec![
        f.hello(Some("aaaaaaaaaaaaaaaa")),
        f.frame(Msg::Manifest { docs: vec![] }),
        f.frame(Msg::WebCertAnswer { chain_pem: Some("forged".into()), refused: None }),
    ];
    let outcome = attack(&mut hub, "aaaaaaaaaaaaaaaa", frames);
    assert!(outcome.failed.iter().any(|f| f.contains("unexpected WebCertAnswer")), "{outcome:?}");
    // A hub may not ask an edge for one.
    let mut edge = Node::edge("aaaaaaaaaaaaaaaa");
    let mut f = Forger { seq: 0 };
    let frames =
        vec![f.hello(None), f.frame(Msg::Manifest { docs: vec![] }), f.frame(Msg::WebCertRequest { csr: vec![1, 2] })];
    let outcome = attack_edge(&mut edge, frames);
    assert!(outcome.failed.iter().any(|f| f.contains("unexpected WebCertRequest")), "{outcome:?}");
}
