//! `datum-hub serve`: accepts edges over QUIC and TLS/TCP, enrolls new ones, and drives one sync session per
//! connection. The rules live in `datum_shared::sync`; this module moves frames, stores what the session
//! says to store, and decides who the peer is from its certificate (never from what it says).

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use automerge::{Automerge, ChangeHash};
use chrono::{DateTime, Utc};
use datum_host::net::pki;
use datum_host::net::tls;
use datum_host::net::transport::{Closer, FrameReceiver, FrameSender, Incoming, Listener, TransportError};
use datum_shared::document;
use datum_shared::ids::SiteName;
use datum_shared::sync::wire::{AuditHead, BlobWant, Frame, Msg};
use datum_shared::sync::{witness, AuditTrail, Event, LocalDoc, Principal, Session, SessionConfig};
use datum_shared::DocId;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tracing::{error, info, warn, Instrument};

use crate::commands::{token_hash, Context};
use crate::identity::{self, Identity, NODE_CERT_DAYS};
use crate::store::{AuditHeadRow, DocPiece, NodeRow, Store, TokenCheck};
use datum_host::exit::Outcome;

/// A connection that says nothing for this long is closed (QUIC keep-alives keep idle links below it).
const IDLE: Duration = Duration::from_secs(120);
/// How often revocations are checked for live connections.
const REVOCATION_POLL: Duration = Duration::from_millis(500);

struct Hub {
    store: Store,
    identity: Identity,
    store_id: String,
    clock: Clock,
    /// Live connections per site, to cut them on revocation.
    live: Mutex<HashMap<String, Vec<(u64, Closer)>>>,
    /// Sites with a session running (and its connection): one at a time per site, so their documents have one
    /// writer here too.
    busy: Mutex<HashMap<String, u64>>,
}

/// Wall-clock time, shifted by `DATUM_NOW` when set (tests of expiry).
#[derive(Clone, Copy)]
struct Clock {
    offset: chrono::Duration,
}

impl Clock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
}

pub async fn serve(ctx: &Context, listen: SocketAddr, udp: bool) -> Result<Outcome> {
    let identity = identity::load(&ctx.data)?;
    let store = ctx.store().await?;
    let store_id = store.meta("store_id").await?.context("hub database has no store id; was init interrupted?")?;
    let server_config = tls::server_config(&identity.tls_chain_pem, &identity.tls_key_pem, &identity.root_pem)?;
    let listener = match Listener::bind(listen, server_config, udp, true).await {
        Ok(listener) => listener,
        // A taken port or an address not on this machine is the operator's to fix: say which, once.
        Err(TransportError::Bind { addr, source })
            if matches!(source.kind(), std::io::ErrorKind::AddrInUse | std::io::ErrorKind::AddrNotAvailable) =>
        {
            return Err(datum_host::exit::user(format!("cannot listen on {addr}: {source}")));
        }
        Err(e) => return Err(anyhow::Error::from(e).context("listen")),
    };
    let clock = Clock { offset: ctx.now - Utc::now() };
    let clock = if clock.offset.num_seconds().abs() < 5 { Clock { offset: chrono::Duration::zero() } } else { clock };
    println!(
        "datum-hub {} listening on {} ({})",
        identity.name,
        listener.local_addr(),
        if udp { "QUIC and TLS/TCP" } else { "TLS/TCP only" }
    );
    let hub = Arc::new(Hub {
        store,
        identity,
        store_id,
        clock,
        live: Mutex::new(HashMap::new()),
        busy: Mutex::new(HashMap::new()),
    });
    tokio::spawn(watch_revocations(hub.clone()));
    let mut next_id = 0u64;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            incoming = listener.accept() => {
                let Some(incoming) = incoming else { break };
                next_id += 1;
                let hub = hub.clone();
                let span = tracing::info_span!("conn", id = next_id, peer = %incoming.remote_addr());
                tokio::spawn(handle(hub, incoming, next_id).instrument(span));
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
    }
    info!("shutting down");
    listener.close();
    Ok(Outcome::Clean)
}

async fn watch_revocations(hub: Arc<Hub>) {
    loop {
        tokio::time::sleep(REVOCATION_POLL).await;
        let revoked = match hub.store.revoked_sites().await {
            Ok(r) => r,
            Err(e) => {
                warn!("cannot read revocations: {e}");
                continue;
            }
        };
        let live = hub.live.lock().expect("live map lock");
        for site in revoked {
            for (_, closer) in live.get(&site).into_iter().flatten() {
                info!(site, "revoked: closing its connection");
                closer.close(1, "site revoked");
            }
        }
    }
}

async fn handle(hub: Arc<Hub>, incoming: Incoming, conn_id: u64) {
    let via = incoming.via();
    let conn = match incoming.handshake().await {
        Ok(c) => c,
        Err(e) => {
            info!("handshake failed: {e}");
            return;
        }
    };
    let chain = conn.peer_chain.clone();
    let (tx, rx, closer) = conn.split();
    let result = match chain.and_then(|c| c.into_iter().next()) {
        None => enroll(&hub, tx, rx).await,
        Some(leaf) => sync(&hub, tx, rx, closer.clone(), &leaf, conn_id, via).await,
    };
    if let Err(e) = result {
        info!("connection ended: {e:#}");
    }
    closer.close(0, "done");
}

/// Sends frames in order from a channel, so the session loop never blocks on a slow peer while it must read.
fn writer(mut tx: FrameSender) -> (mpsc::UnboundedSender<Vec<u8>>, tokio::task::JoinHandle<()>) {
    let (out, mut queue) = mpsc::unbounded_channel::<Vec<u8>>();
    let task = tokio::spawn(async move {
        while let Some(frame) = queue.recv().await {
            if let Err(e) = tx.send(&frame).await {
                info!("send failed: {e}");
                return;
            }
        }
        tx.finish().await;
    });
    (out, task)
}

async fn enroll(hub: &Hub, tx: FrameSender, mut rx: FrameReceiver) -> Result<()> {
    let (out, writer_task) = writer(tx);
    let reply = |msg: Msg| Frame { seq: 1, msg }.encode();
    let first = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .map_err(|_| anyhow!("enrollment timed out"))??;
    let Some(first) = first else { return Ok(()) };
    let answer = match Frame::decode(&first) {
        Ok(Frame { seq: 1, msg: Msg::Enroll { token, site_name, site_id, node, csr } }) => {
            match enroll_checked(hub, &token, &site_name, &site_id, &node, &csr).await {
                Ok(msg) => msg,
                Err(reason) => {
                    info!(site = site_name, "enrollment refused: {reason}");
                    Msg::Reject { reason }
                }
            }
        }
        Ok(Frame { seq: 1, msg: Msg::EnrollForRestore { token, site_name, node, csr } }) => {
            match enroll_for_restore(hub, &token, site_name.as_deref(), &node, &csr).await {
                Ok(msg) => msg,
                Err(reason) => {
                    info!(site = site_name, node, "enrollment for a restore refused: {reason}");
                    Msg::Reject { reason }
                }
            }
        }
        // Without a certificate, enrollment is the only thing a peer may do.
        Ok(_) => Msg::Reject { reason: "a node certificate is required (enroll first)".into() },
        Err(e) => Msg::Reject { reason: format!("bad frame: {e}") },
    };
    let _ = out.send(reply(answer));
    drop(out);
    let _ = writer_task.await;
    linger(&mut rx).await;
    Ok(())
}

/// After our last frame, wait (bounded) for the peer to close: closing first could discard what is still
/// in flight to it.
async fn linger(rx: &mut FrameReceiver) {
    let _ = tokio::time::timeout(Duration::from_secs(10), async { while let Ok(Some(_)) = rx.recv().await {} }).await;
}

/// Signs a node's CSR for `NODE_CERT_DAYS` (backdated an hour for clock skew) and describes the result as
/// the `nodes` row the hub records.
fn issue_node_cert(
    hub: &Hub,
    csr: &[u8],
    site: &str,
    node: &str,
    now: DateTime<Utc>,
) -> Result<(pki::IssuedCert, NodeRow), pki::PkiError> {
    let not_before = now - chrono::Duration::hours(1);
    let issued =
        hub.identity.issuer.sign_node_csr(csr, site, node, not_before, now + chrono::Duration::days(NODE_CERT_DAYS))?;
    let row = NodeRow {
        fingerprint: issued.fingerprint.clone(),
        node: node.to_string(),
        site: site.to_string(),
        issued_at: now.to_rfc3339(),
        not_after: issued.not_after.to_rfc3339(),
        replaced_by: None,
    };
    Ok((issued, row))
}

/// The site a one-time token is for, if it is still good; otherwise the reason the edge is told.
async fn token_site(hub: &Hub, hash: &str, now: DateTime<Utc>) -> std::result::Result<String, String> {
    let checked = hub.store.check_token(hash, now).await.map_err(|e| {
        warn!("enrollment: {e}");
        "internal error at the hub".to_string()
    })?;
    match checked {
        TokenCheck::Valid { site } => Ok(site),
        TokenCheck::Unknown => Err("unknown enrollment token".into()),
        TokenCheck::Used => Err("this enrollment token was already used".into()),
        TokenCheck::Expired => Err("this enrollment token has expired; ask for a new one".into()),
    }
}

async fn enroll_checked(
    hub: &Hub,
    token: &str,
    site_name: &str,
    site_id: &str,
    node: &str,
    csr: &[u8],
) -> std::result::Result<Msg, String> {
    let now = hub.clock.now();
    let hash = token_hash(token);
    let internal = |e: crate::store::StoreError| {
        warn!("enrollment: {e}");
        "internal error at the hub".to_string()
    };
    let site = token_site(hub, &hash, now).await?;
    if site != site_name {
        return Err(format!("this token is for site {site}, but this edge is site {site_name}"));
    }
    if site_id.len() != 16 || !site_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("malformed site id".into());
    }
    SiteName::new(node).map_err(|e| format!("node name: {e}"))?;
    let (issued, row) =
        issue_node_cert(hub, csr, &site, node, now).map_err(|e| format!("certificate request refused: {e}"))?;
    hub.store.enroll(&hash, &site, site_id, &row, now, false).await.map_err(internal)??;
    info!(site, node, "enrolled");
    Ok(Msg::Enrolled {
        chain_pem: issued.chain_pem,
        root_pem: hub.identity.root_pem.clone(),
        hub_name: hub.identity.name.clone(),
    })
}

/// Enrollment of a node that replaces a dead one (`datum-edge restore-from-hub`): the token's site must be
/// bound to a site id already (there is something to restore), and the answer tells the node which site it
/// is. The site's previous nodes are marked replaced in the same transaction, so the hub refuses them from
/// then on.
async fn enroll_for_restore(
    hub: &Hub,
    token: &str,
    site_name: Option<&str>,
    node: &str,
    csr: &[u8],
) -> std::result::Result<Msg, String> {
    let now = hub.clock.now();
    let hash = token_hash(token);
    let internal = |e: crate::store::StoreError| {
        warn!("enrollment for a restore: {e}");
        "internal error at the hub".to_string()
    };
    let site = token_site(hub, &hash, now).await?;
    if let Some(expected) = site_name {
        if expected != site {
            return Err(format!("this token is for site {site}, not {expected}: a restore cannot change the site"));
        }
    }
    let row = hub.store.site(&site).await.map_err(internal)?.ok_or("unknown site")?;
    if row.revoked_at.is_some() {
        return Err(format!("site {site} is revoked"));
    }
    let Some(site_id) = row.site_id else {
        return Err(format!(
            "site {site} has never been enrolled, so the hub holds nothing to restore; set up a new edge with \
             `datum-edge init` and `datum-edge enroll`"
        ));
    };
    SiteName::new(node).map_err(|e| format!("node name: {e}"))?;
    let (issued, node_row) =
        issue_node_cert(hub, csr, &site, node, now).map_err(|e| format!("certificate request refused: {e}"))?;
    hub.store.enroll(&hash, &site, &site_id, &node_row, now, true).await.map_err(internal)??;
    info!(site, node, "enrolled to restore the site; its previous nodes are replaced");
    Ok(Msg::EnrolledForRestore {
        chain_pem: issued.chain_pem,
        root_pem: hub.identity.root_pem.clone(),
        hub_name: hub.identity.name.clone(),
        site_name: site,
        site_id,
    })
}

/// Who a certificate belongs to, by the hub's own records.
async fn authorize(hub: &Hub, leaf: &[u8]) -> std::result::Result<(NodeRow, String), String> {
    let fingerprint = pki::fingerprint(leaf);
    let node = match hub.store.node_by_cert(&fingerprint).await {
        Ok(Some(n)) => n,
        Ok(None) => return Err("unknown certificate".into()),
        Err(e) => return Err(format!("internal error: {e}")),
    };
    if let Some(next) = &node.replaced_by {
        // A renewed certificate of the same node stays valid until it expires; a replaced node does not.
        match hub.store.node_by_cert(next).await {
            Ok(Some(n)) if n.node == node.node => {}
            _ => return Err(format!("node {} of site {} was replaced by a newer enrollment", node.node, node.site)),
        }
    }
    let site = match hub.store.site(&node.site).await {
        Ok(Some(s)) => s,
        _ => return Err("unknown site".into()),
    };
    if site.revoked_at.is_some() {
        return Err(format!("site {} is revoked", site.name));
    }
    let site_id = site.site_id.ok_or("site not enrolled")?;
    Ok((node, site_id))
}

async fn sync(
    hub: &Arc<Hub>,
    tx: FrameSender,
    mut rx: FrameReceiver,
    closer: Closer,
    leaf: &[u8],
    conn_id: u64,
    via: datum_host::net::transport::Via,
) -> Result<()> {
    let (out, writer_task) = writer(tx);
    let (node, site_id) = match authorize(hub, leaf).await {
        Ok(x) => x,
        Err(reason) => {
            info!("refused: {reason}");
            let _ = out.send(Frame { seq: 1, msg: Msg::Reject { reason } }.encode());
            drop(out);
            let _ = writer_task.await;
            linger(&mut rx).await;
            return Ok(());
        }
    };
    let site = node.site.clone();
    if !take_over(hub, &site, conn_id).await {
        let reason = "another connection of this site is syncing; try again shortly".to_string();
        let _ = out.send(Frame { seq: 1, msg: Msg::Reject { reason } }.encode());
        drop(out);
        let _ = writer_task.await;
        linger(&mut rx).await;
        return Ok(());
    }
    hub.live.lock().expect("live map lock").entry(site.clone()).or_default().push((conn_id, closer));
    let span = tracing::info_span!("sync", site, node = node.node, ?via);
    let result = run_session(hub, &node, &site_id, &out, &mut rx).instrument(span).await;
    hub.live.lock().expect("live map lock").entry(site.clone()).or_default().retain(|(id, _)| *id != conn_id);
    {
        let mut busy = hub.busy.lock().expect("busy lock");
        if busy.get(&site) == Some(&conn_id) {
            busy.remove(&site);
        }
    }
    drop(out);
    let _ = writer_task.await;
    result
}

/// Marks the site busy for this connection. The newest connection wins: an edge that was killed or lost its
/// network leaves a half-open connection behind, and its next attempt must not wait for that one to time out;
/// an older attempt still waiting gives up.
async fn take_over(hub: &Hub, site: &str, conn_id: u64) -> bool {
    for _ in 0..100 {
        {
            let mut busy = hub.busy.lock().expect("busy lock");
            match busy.get(site) {
                None => {
                    busy.insert(site.to_string(), conn_id);
                    return true;
                }
                Some(owner) if *owner > conn_id => return false,
                Some(_) => {}
            }
        }
        for (id, closer) in hub.live.lock().expect("live map lock").get(site).into_iter().flatten() {
            if *id < conn_id {
                closer.close(2, "superseded by a newer connection of this site");
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

struct Run {
    synced: bool,
    outcome: Option<String>,
    changed_docs: BTreeSet<DocId>,
    /// The audit head the edge presented, kept as the site's once the session is confirmed.
    presented: Option<AuditHead>,
}

async fn run_session(
    hub: &Hub,
    node: &NodeRow,
    site_id: &str,
    out: &mpsc::UnboundedSender<Vec<u8>>,
    rx: &mut FrameReceiver,
) -> Result<()> {
    let store = &hub.store;
    // Cursors are per node of a site: node names are unique only within their site.
    let peer = crate::store::peer_key(&node.site, &node.node);
    let states: HashMap<String, Vec<u8>> = store.sync_states(&peer).await?.into_iter().collect();
    let mut local = Vec::new();
    for (doc, heads) in store.doc_heads(site_id).await? {
        let id = DocId::parse(&doc).map_err(|e| anyhow!("stored document id: {e}"))?;
        let heads = heads.iter().map(|h| h.parse::<ChangeHash>()).collect::<Result<Vec<_>, _>>()?;
        local.push(LocalDoc { saved_state: states.get(&doc).cloned(), id, heads });
    }
    let cfg = SessionConfig {
        me: Principal::Hub,
        peer: Principal::Site { site_id: site_id.to_string() },
        node: hub.identity.name.clone(),
        store: hub.store_id.clone(),
        restoring: false,
    };
    let held =
        store.audit_head(&node.site).await?.map(|h| AuditHead { seq: h.seq, hash: h.hash, signature: h.signature });
    let mut session = Session::with_audit(cfg, local, AuditTrail::Witnessed(held));
    let mut run = Run { synced: false, outcome: None, changed_docs: BTreeSet::new(), presented: None };
    let result = async {
        loop {
            drive(hub, node, site_id, &mut session, &mut run, out).await?;
            while let Some(frame) = session.poll_transmit() {
                let _ = out.send(frame);
            }
            if session.is_closed() {
                linger(rx).await;
                return Ok(());
            }
            let frame = match tokio::time::timeout(IDLE, rx.recv()).await {
                Err(_) => return Err(anyhow!("idle for {IDLE:?}")),
                Ok(Ok(Some(f))) => f,
                Ok(Ok(None)) | Ok(Err(TransportError::ClosedByPeer { .. })) => return Ok(()),
                Ok(Err(e)) => return Err(anyhow!("{e}")),
            };
            session.handle(&frame);
        }
    }
    .await;
    // Whatever the end, keep the cursors and the projection true.
    let states: Vec<(String, Vec<u8>)> = session.sync_states().into_iter().map(|(d, s)| (d.to_string(), s)).collect();
    store.save_sync_states(&peer, &states).await?;
    project(hub, site_id, &run.changed_docs).await?;
    let now = hub.clock.now();
    let summary = match (&run.outcome, &result) {
        (Some(reason), _) => reason.clone(),
        // Once the hub confirmed, how the peer hangs up does not matter.
        (None, _) if run.synced => "synced".to_string(),
        (None, Err(e)) => format!("interrupted: {e}"),
        (None, Ok(())) => "interrupted before the end".to_string(),
    };
    store.touch_site(&node.site, now, &summary, run.synced && run.outcome.is_none()).await?;
    result
}

async fn drive(
    hub: &Hub,
    node: &NodeRow,
    site_id: &str,
    session: &mut Session,
    run: &mut Run,
    out: &mpsc::UnboundedSender<Vec<u8>>,
) -> Result<()> {
    let store = &hub.store;
    while let Some(event) = session.poll_event() {
        match event {
            Event::Load(ids) => {
                for id in ids {
                    let chunks = store.doc_chunks(id.as_str()).await?;
                    let doc = if chunks.is_empty() {
                        None
                    } else {
                        Some(
                            Automerge::load(&chunks.concat())
                                .map_err(|e| anyhow!("stored document {id} is damaged: {e}"))?,
                        )
                    };
                    session.provide(&id, doc);
                }
            }
            Event::Applied { doc, changes, incremental, heads } => {
                let owner_site = match doc.owner() {
                    datum_shared::ids::Owner::Site(s) => Some(s),
                    datum_shared::ids::Owner::Hub => None,
                };
                let heads: Vec<String> = heads.iter().map(|h| h.to_string()).collect();
                let receipts: Vec<String> = changes.iter().map(|h| h.to_string()).collect();
                store
                    .append_doc(&DocPiece {
                        doc_id: doc.as_str(),
                        site_id: owner_site.as_deref(),
                        bytes: &incremental,
                        heads: &heads,
                        receipts: &receipts,
                        node: &node.node,
                        now: hub.clock.now(),
                    })
                    .await?;
                run.changed_docs.insert(doc);
            }
            Event::CheckBlobs(hashes) => {
                let wants = store.want_blobs(site_id, &hashes).await?;
                session.want_blobs(wants.into_iter().map(|b| BlobWant { hash: b.hash, from: b.received }).collect());
            }
            Event::BlobChunk { hash, offset, total, data } => {
                if let Err(e) = store.append_blob(&hash, offset, total, &data).await {
                    session.reject(&format!("cannot store file {hash}: {e}"));
                    return Err(e.into());
                }
            }
            Event::BlobComplete { hash, total } => {
                let pieces = store.blob_pieces(&hash).await?;
                let mut hasher = Sha256::new();
                let mut len = 0u64;
                for p in &pieces {
                    hasher.update(p);
                    len += p.len() as u64;
                }
                if len == total && hex::encode(hasher.finalize()) == hash {
                    store.complete_blob(&hash).await?;
                    session.blob_stored(&hash, Ok(()));
                } else {
                    store.reset_blob(&hash).await?;
                    session.blob_stored(&hash, Err("content does not match its hash".into()));
                }
            }
            Event::BlobUnavailable { hash, reason } => warn!(hash, "the edge cannot send a file: {reason}"),
            Event::RenewRequested(csr) => match issue_node_cert(hub, &csr, &node.site, &node.node, hub.clock.now()) {
                Ok((issued, row)) => {
                    store.add_renewed_cert(&node.fingerprint, &row).await?;
                    info!("certificate renewed until {}", row.not_after);
                    session.renewed(issued.chain_pem);
                }
                Err(e) => session.reject(&format!("renewal refused: {e}")),
            },
            Event::SendBlobs(wants) => {
                // A node being restored fetches its site's files. Frames queued before go first.
                while let Some(frame) = session.poll_transmit() {
                    let _ = out.send(frame);
                }
                let mut sent = 0;
                for want in wants {
                    if store.site_blob_size(site_id, &want.hash).await?.is_none() {
                        session
                            .blob_unavailable(&want.hash, "the hub holds no complete copy of this file for this site");
                    } else if send_blob(store, session, out, &want).await? {
                        sent += 1;
                    }
                    // A refusal is queued in the session; it goes before the next file's pieces (frames are
                    // numbered in the order the session made them).
                    while let Some(frame) = session.poll_transmit() {
                        let _ = out.send(frame);
                    }
                }
                session.blobs_sent();
                info!(files = sent, "sent the site's files to a node being restored");
            }
            Event::Renewed(_) | Event::Witnessed(_) => {}
            Event::AuditPresented(head) => run.presented = Some(head),
            Event::Synced { docs, blobs } => {
                run.synced = true;
                if let Some(head) = run.presented.take() {
                    let row = AuditHeadRow {
                        seq: head.seq,
                        hash: head.hash,
                        signature: head.signature,
                        node: node.node.clone(),
                        at: hub.clock.now().to_rfc3339(),
                    };
                    store.witness_audit_head(&node.site, &row).await?;
                }
                project(hub, site_id, &run.changed_docs).await?;
                run.changed_docs.clear();
                store.touch_site(&node.site, hub.clock.now(), "synced", true).await?;
                info!(docs, blobs, "synced");
            }
            Event::Violation(reason) => {
                warn!("VIOLATION: {reason}");
                store.record_violation(&node.site, &node.node, &reason, hub.clock.now()).await?;
                run.outcome = Some(format!("violation: {reason}"));
            }
            // The edge found its own trail differs from what we witnessed: as much a finding as a rollback.
            Event::Rejected(reason) if reason.starts_with(witness::DIVERGED) => {
                warn!("VIOLATION (reported by the node): {reason}");
                store.record_violation(&node.site, &node.node, &reason, hub.clock.now()).await?;
                run.outcome = Some(format!("violation: {reason}"));
            }
            Event::Failed(reason) | Event::Rejected(reason) => {
                info!("session failed: {reason}");
                run.outcome = Some(format!("failed: {reason}"));
            }
        }
    }
    Ok(())
}

/// Streams one stored file from `want.from`, piece by piece as it was stored (each piece fits a frame);
/// `false` (and the peer told) when the stored copy is damaged.
async fn send_blob(
    store: &Store,
    session: &mut Session,
    out: &mpsc::UnboundedSender<Vec<u8>>,
    want: &BlobWant,
) -> Result<bool> {
    let pieces = store.blob_pieces(&want.hash).await?;
    let total: u64 = pieces.iter().map(|p| p.len() as u64).sum();
    let mut hasher = Sha256::new();
    pieces.iter().for_each(|p| hasher.update(p));
    if hex::encode(hasher.finalize()) != want.hash {
        error!(file = %want.hash, "the stored copy of a file is damaged (its content does not match its hash)");
        session.blob_unavailable(&want.hash, "the hub's copy of this file is damaged");
        return Ok(false);
    }
    let from = want.from.min(total);
    let mut offset = 0u64;
    for piece in pieces {
        let end = offset + piece.len() as u64;
        if end > from {
            let skip = (from.saturating_sub(offset)) as usize;
            let _ = out.send(session.blob_chunk_frame(&want.hash, offset + skip as u64, total, piece[skip..].to_vec()));
        }
        offset = end;
    }
    if total == 0 || from == total {
        // An empty file, or nothing left: one empty last piece tells the receiver it is complete.
        let _ = out.send(session.blob_chunk_frame(&want.hash, from, total, Vec::new()));
    }
    Ok(true)
}

/// Rebuilds the projection rows of the site documents that changed.
async fn project(hub: &Hub, site_id: &str, docs: &BTreeSet<DocId>) -> Result<()> {
    for id in docs {
        if !matches!(id.owner(), datum_shared::ids::Owner::Site(_)) {
            continue;
        }
        let chunks = hub.store.doc_chunks(id.as_str()).await?;
        let doc = Automerge::load(&chunks.concat()).map_err(|e| anyhow!("stored document {id} is damaged: {e}"))?;
        let rows: Vec<(String, String, String)> = document::all_records(&doc)?
            .into_iter()
            .map(|(collection, key, json)| (collection, key, json.to_string()))
            .collect();
        hub.store.project(site_id, id.as_str(), &rows).await?;
    }
    Ok(())
}
