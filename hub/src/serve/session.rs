//! One sync session per connection: who the peer is (from its certificate), one session per site at a time,
//! and the driver that stores what the session says to store before anything further is sent.

use super::*;

/// Who a certificate belongs to, by the hub's own records.
async fn authorize(hub: &Hub, leaf: &[u8]) -> std::result::Result<(NodeRow, SiteId), String> {
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

/// What the transport established about a connection before the session starts.
pub(super) struct Link {
    pub(super) via: datum_host::net::transport::Via,
    /// The negotiated `datum-sync` version.
    pub(super) protocol: u32,
}

pub(super) async fn sync(
    hub: &Arc<Hub>,
    tx: FrameSender,
    mut rx: FrameReceiver,
    closer: Closer,
    leaf: &[u8],
    conn_id: u64,
    link: Link,
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
    let span = tracing::info_span!("sync", site, node = %node.node, via = ?link.via, protocol = link.protocol);
    let result = run_session(hub, &node, &site_id, link.protocol, &out, &mut rx).instrument(span).await;
    hub.live.lock().expect("live map lock").entry(site.clone()).or_default().retain(|(id, _)| *id != conn_id);
    {
        let mut busy = hub.busy.lock().expect("busy lock");
        if busy.get(&site) == Some(&conn_id) {
            busy.remove(&site);
            hub.released.notify_waiters();
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
    let deadline = tokio::time::Instant::now() + TAKE_OVER_WAIT;
    loop {
        // Registered before the check, so that a release between the check and the wait is not missed.
        let released = hub.released.notified();
        tokio::pin!(released);
        released.as_mut().enable();
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
        if tokio::time::timeout_at(deadline, released).await.is_err() {
            return false;
        }
    }
}

/// Received pieces are handed to the piece store in batches of this size; everything handed over is stored
/// before a file is checked and before the hub sends anything (an acknowledgement means "stored").
const PIECE_BATCH: usize = 8 << 20;

/// Stores received file pieces on a task of its own, one transaction per batch, so that the connection is read
/// while the previous batch is written. At most one batch waits while another is written: with the one being
/// gathered, a session holds at most three batches of pieces in memory.
struct PieceStore {
    jobs: mpsc::Sender<StoreJob>,
}

enum StoreJob {
    Batch(Vec<BlobPiece>),
    /// Answered once every batch handed over before it is stored (or with the first failure).
    Barrier(tokio::sync::oneshot::Sender<Result<(), String>>),
}

impl PieceStore {
    fn start(store: Store) -> PieceStore {
        let (jobs, mut queue) = mpsc::channel::<StoreJob>(1);
        tokio::spawn(
            async move {
                // After a failure nothing more is stored (the next piece would not continue what is stored);
                // every later barrier reports it.
                let mut failed: Option<String> = None;
                while let Some(job) = queue.recv().await {
                    match job {
                        StoreJob::Batch(pieces) if failed.is_none() => {
                            if let Err(e) = store.append_blobs(pieces).await {
                                failed = Some(e.to_string());
                            }
                        }
                        StoreJob::Batch(_) => {}
                        StoreJob::Barrier(reply) => {
                            let _ = reply.send(failed.clone().map_or(Ok(()), Err));
                        }
                    }
                }
            }
            .in_current_span(),
        );
        PieceStore { jobs }
    }

    async fn hand_over(&self, pieces: Vec<BlobPiece>) -> Result<()> {
        self.jobs.send(StoreJob::Batch(pieces)).await.map_err(|_| anyhow!("the piece store stopped"))
    }

    /// Waits until everything handed over is stored.
    async fn stored(&self) -> Result<()> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs.send(StoreJob::Barrier(reply)).await.map_err(|_| anyhow!("the piece store stopped"))?;
        answer.await.map_err(|_| anyhow!("the piece store stopped"))?.map_err(|e| anyhow!("{e}"))
    }
}

/// The hub's side of one session: what it does for each event (`datum_shared::sync::driver`).
struct HubHost<'a> {
    hub: &'a Hub,
    node: &'a NodeRow,
    site_id: &'a SiteId,
    out: &'a Outbox,
    /// Received file pieces not handed to the piece store yet, and their bytes.
    pending: Vec<BlobPiece>,
    pending_bytes: usize,
    pieces: PieceStore,
    /// Files received from their first byte in this session, hashed as their pieces arrive (so a complete
    /// file is not read back to be checked): hasher and bytes hashed.
    hashing: HashMap<String, (Sha256, u64)>,
    synced: bool,
    outcome: Option<String>,
    changed_docs: BTreeSet<DocId>,
    /// The projection of documents changed earlier in the session, made while the files arrive.
    projecting: Option<tokio::task::JoinHandle<Result<()>>>,
    /// The audit head the edge presented, kept as the site's once the session is confirmed.
    presented: Option<AuditHead>,
}

impl driver::Host for HubHost<'_> {
    type Error = anyhow::Error;

    async fn on_event(&mut self, session: &mut Session, event: Event) -> Result<()> {
        self.act(session, event).await
    }

    /// An acknowledgement means "stored".
    async fn before_transmit(&mut self) -> Result<()> {
        self.flush_pieces().await
    }

    async fn transmit(&mut self, frame: Vec<u8>) -> Result<()> {
        // The writer task stops only when the connection failed, which the receiving side reports.
        let _ = self.out.send(frame);
        Ok(())
    }
}

async fn run_session(
    hub: &Hub,
    node: &NodeRow,
    site_id: &SiteId,
    protocol: u32,
    out: &Outbox,
    rx: &mut FrameReceiver,
) -> Result<()> {
    let store = &hub.store;
    // Cursors are per node of a site: node names are unique only within their site.
    let peer = crate::store::peer_key(&node.site, node.node.as_str());
    let states: HashMap<String, Vec<u8>> = store.sync_states(&peer).await?.into_iter().collect();
    let mut local = Vec::new();
    for (doc, heads) in store.doc_heads(site_id).await? {
        let id = DocId::parse(&doc).map_err(|e| anyhow!("stored document id: {e}"))?;
        let heads = heads.iter().map(|h| h.parse::<ChangeHash>()).collect::<Result<Vec<_>, _>>()?;
        local.push(LocalDoc { saved_state: states.get(&doc).cloned(), id, heads });
    }
    let cfg = SessionConfig {
        me: Principal::Hub,
        peer: Principal::Site { site_id: site_id.clone() },
        node: hub.identity.name.clone(),
        store: hub.store_id.clone(),
        restoring: false,
        protocol,
    };
    let held =
        store.audit_head(&node.site).await?.map(|h| AuditHead { seq: h.seq, hash: h.hash, signature: h.signature });
    let mut session = Session::with_audit(cfg, local, AuditTrail::Witnessed(held));
    let mut host = HubHost {
        hub,
        node,
        site_id,
        out,
        pending: Vec::new(),
        pending_bytes: 0,
        pieces: PieceStore::start(store.clone()),
        hashing: HashMap::new(),
        synced: false,
        outcome: None,
        changed_docs: BTreeSet::new(),
        projecting: None,
        presented: None,
    };
    let result = async {
        loop {
            driver::pump(&mut session, &mut host).await?;
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
    // What was received is kept (a cut transfer resumes from it), whatever the end.
    let flushed = host.flush_pieces().await;
    let result = result.and(flushed);
    // Whatever the end, keep the cursors and the projection true.
    let states: Vec<(String, Vec<u8>)> = session.sync_states().into_iter().map(|(d, s)| (d.to_string(), s)).collect();
    store.save_sync_states(&peer, &states).await?;
    host.projected().await?;
    let now = hub.clock.now();
    let summary = match (&host.outcome, &result) {
        (Some(reason), _) => reason.clone(),
        // Once the hub confirmed, how the peer hangs up does not matter.
        (None, _) if host.synced => "synced".to_string(),
        (None, Err(e)) => format!("interrupted: {e}"),
        (None, Ok(())) => "interrupted before the end".to_string(),
    };
    store.touch_site(&node.site, now, &summary, host.synced && host.outcome.is_none()).await?;
    result
}

impl HubHost<'_> {
    /// Starts projecting the documents changed so far on a task of its own, once the projection started before
    /// it is done (so the rows follow the documents' order of states).
    fn project_in_background(&mut self) {
        if self.changed_docs.is_empty() {
            return;
        }
        let docs = std::mem::take(&mut self.changed_docs);
        let before = self.projecting.take();
        let (store, site_id) = (self.hub.store.clone(), self.site_id.clone());
        self.projecting = Some(tokio::spawn(async move {
            if let Some(before) = before {
                before.await.context("project documents")??;
            }
            project(&store, &site_id, &docs).await
        }));
    }

    /// Waits for the projections started so far, then projects what changed since.
    async fn projected(&mut self) -> Result<()> {
        if let Some(projecting) = self.projecting.take() {
            projecting.await.context("project documents")??;
        }
        project(&self.hub.store, self.site_id, &self.changed_docs).await?;
        self.changed_docs.clear();
        Ok(())
    }

    async fn act(&mut self, session: &mut Session, event: Event) -> Result<()> {
        let (hub, node, site_id, out) = (self.hub, self.node, self.site_id, self.out);
        let store = &hub.store;
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
                        node: node.node.as_str(),
                        now: hub.clock.now(),
                    })
                    .await?;
                self.changed_docs.insert(doc);
            }
            Event::CheckBlobs(hashes) => {
                // The documents came first; their projection is made while the files arrive, not after.
                self.project_in_background();
                let wants = store.want_blobs(site_id, &hashes).await?;
                session.want_blobs(wants.into_iter().map(|b| BlobWant { hash: b.hash, from: b.received }).collect());
            }
            Event::BlobChunk { hash, offset, total, data } => {
                // Hash each piece once, as it arrives, for a file received from its start.
                if offset == 0 {
                    self.hashing.insert(hash.clone(), (Sha256::new(), 0));
                }
                if let Some((hasher, hashed)) = self.hashing.get_mut(&hash) {
                    if *hashed == offset {
                        hasher.update(&data);
                        *hashed += data.len() as u64;
                    } else {
                        self.hashing.remove(&hash);
                    }
                }
                self.pending_bytes += data.len();
                self.pending.push(BlobPiece { hash, pos: offset, total, bytes: data });
                if self.pending_bytes >= PIECE_BATCH {
                    if let Err(e) = self.hand_over_pending().await {
                        session.reject(&format!("cannot store a file: {e}"));
                        return Err(e);
                    }
                }
            }
            Event::BlobComplete { hash, total } => {
                if let Err(e) = self.flush_pieces().await {
                    session.reject(&format!("cannot store file {hash}: {e}"));
                    return Err(e);
                }
                let (len, digest): (u64, [u8; 32]) = match self.hashing.remove(&hash) {
                    Some((hasher, hashed)) if hashed == total => (hashed, hasher.finalize().into()),
                    // Resumed from an earlier session: read what is stored, piece by piece.
                    _ => store.blob_digest(&hash).await?,
                };
                if len == total && hex::encode(digest) == hash {
                    store.complete_blob(&hash).await?;
                    session.blob_stored(&hash, Ok(()));
                } else {
                    store.reset_blob(&hash).await?;
                    session.blob_stored(&hash, Err("content does not match its hash".into()));
                }
            }
            Event::BlobUnavailable { hash, reason } => warn!(hash, "the edge cannot send a file: {reason}"),
            Event::RenewRequested(csr) => {
                match super::enroll::issue_node_cert(hub, &csr, &node.site, &node.node, hub.clock.now()) {
                    Ok((issued, row)) => {
                        store.add_renewed_cert(&node.fingerprint, &row).await?;
                        info!("certificate renewed until {}", row.not_after);
                        session.renewed(issued.chain_pem);
                    }
                    Err(e) => session.reject(&format!("renewal refused: {e}")),
                }
            }
            Event::SendBlobs(wants) => {
                // A node being restored fetches its site's files (what the session queued before is sent).
                let mut sent = 0;
                for want in wants {
                    match store.site_blob_size(site_id, &want.hash).await? {
                        None => session
                            .blob_unavailable(&want.hash, "the hub holds no complete copy of this file for this site"),
                        Some(total) => {
                            if send_blob(store, session, out, &want, total).await? {
                                sent += 1;
                            }
                        }
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
            Event::WebCertRequested(csr) => {
                let answer = match &hub.web_domain {
                    None => Err("this hub issues no web certificates (its operator has set no --web-domain)".into()),
                    Some(domain) => super::enroll::issue_web_cert(hub, &csr, &node.site, domain, hub.clock.now())
                        .map_err(|e| format!("web certificate refused: {e}")),
                };
                match &answer {
                    Ok(_) => info!(site = node.site, "web certificate issued"),
                    Err(reason) => info!(site = node.site, "{reason}"),
                }
                session.web_cert_answer(answer);
            }
            Event::Renewed(_) | Event::Witnessed(_) | Event::WebCertAnswered(_) => {}
            Event::AuditPresented(head) => self.presented = Some(head),
            Event::Synced { docs, blobs } => {
                self.synced = true;
                if let Some(head) = self.presented.take() {
                    let row = AuditHeadRow {
                        seq: head.seq,
                        hash: head.hash,
                        signature: head.signature,
                        node: node.node.to_string(),
                        at: hub.clock.now().to_rfc3339(),
                    };
                    store.witness_audit_head(&node.site, &row).await?;
                }
                self.projected().await?;
                store.touch_site(&node.site, hub.clock.now(), "synced", true).await?;
                info!(docs, blobs, "synced");
            }
            Event::Violation(reason) => {
                error!("VIOLATION: {reason}");
                store.record_violation(&node.site, node.node.as_str(), &reason, hub.clock.now()).await?;
                self.outcome = Some(format!("violation: {reason}"));
            }
            // The edge found its own trail differs from what we witnessed: as much a finding as a rollback.
            Event::Rejected(reason) if reason.starts_with(witness::DIVERGED) => {
                error!("VIOLATION (reported by the node): {reason}");
                store.record_violation(&node.site, node.node.as_str(), &reason, hub.clock.now()).await?;
                self.outcome = Some(format!("violation: {reason}"));
            }
            Event::Failed(reason) | Event::Rejected(reason) => {
                info!("session failed: {reason}");
                self.outcome = Some(format!("failed: {reason}"));
            }
        }
        Ok(())
    }

    /// Stores every received piece: hands over those not handed over yet and waits until all are stored.
    async fn flush_pieces(&mut self) -> Result<()> {
        self.hand_over_pending().await?;
        self.pieces.stored().await
    }

    /// Hands the pieces gathered so far to the piece store (which stores them while the connection is read on).
    async fn hand_over_pending(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.pending_bytes = 0;
        self.pieces.hand_over(std::mem::take(&mut self.pending)).await
    }
}

/// Streams one stored file from `want.from`, piece by piece as it was stored (each piece fits a frame);
/// `false` (and the peer told) when the stored copy is damaged.
async fn send_blob(store: &Store, session: &mut Session, out: &Outbox, want: &BlobWant, total: u64) -> Result<bool> {
    let hash = &want.hash;
    let from = want.from.min(total);
    let unavailable = |session: &mut Session| {
        error!(file = %hash, "the stored copy of a file is damaged (its content does not match its hash)");
        session.blob_unavailable(hash, "the hub's copy of this file is damaged");
        Ok(false)
    };
    // Read, hashed and sent piece by piece, at most a few pieces queued for the peer: the file is never held
    // whole. The piece that completes it goes only once the whole matched its hash, so a damaged copy never
    // reaches the node complete.
    let mut hasher = Sha256::new();
    let mut pos = 0u64;
    while pos < total {
        let Some(piece) = store.blob_piece(hash, pos).await? else { return unavailable(session) };
        let end = pos + piece.len() as u64;
        if piece.is_empty() || end > total {
            return unavailable(session);
        }
        hasher.update(&piece);
        if end == total && hex::encode(hasher.clone().finalize()) != *hash {
            return unavailable(session);
        }
        if end > from {
            let skip = from.saturating_sub(pos) as usize;
            let data = if skip == 0 { piece } else { piece[skip..].to_vec() };
            // A peer that stops reading is given up on like one that stops sending.
            if tokio::time::timeout(IDLE, out.room(QUEUED_FILE_BYTES)).await.is_err() {
                return Err(anyhow!("the node read nothing for {IDLE:?}"));
            }
            if !out.send(session.blob_chunk_frame(hash, pos + skip as u64, total, data)) {
                return Err(anyhow!("the connection closed while file {hash} was sent"));
            }
        }
        pos = end;
    }
    if total == 0 || from == total {
        if hex::encode(hasher.finalize()) != *hash {
            return unavailable(session);
        }
        // An empty file, or nothing left: one empty last piece tells the receiver it is complete.
        out.send(session.blob_chunk_frame(hash, from, total, Vec::new()));
    }
    Ok(true)
}

/// Bytes of a file's pieces queued for a node being restored before reading more of it from the database.
const QUEUED_FILE_BYTES: usize = 4 * BLOB_CHUNK;

/// Rebuilds the projection rows of the site documents that changed.
async fn project(store: &Store, site_id: &SiteId, docs: &BTreeSet<DocId>) -> Result<()> {
    for id in docs {
        if !matches!(id.owner(), datum_shared::ids::Owner::Site(_)) {
            continue;
        }
        let chunks = store.doc_chunks(id.as_str()).await?;
        // Loading a document of thousands of records takes a tenth of a second: not on the runtime's threads.
        let doc_id = id.clone();
        let rows = tokio::task::spawn_blocking(move || -> Result<Vec<(String, String, String)>> {
            let doc =
                Automerge::load(&chunks.concat()).map_err(|e| anyhow!("stored document {doc_id} is damaged: {e}"))?;
            Ok(document::all_records(&doc)?
                .into_iter()
                .map(|(collection, key, json)| (collection, key, json.to_string()))
                .collect())
        })
        .await
        .context("project a document")??;
        store.project(site_id, id.as_str(), &rows).await?;
    }
    Ok(())
}
