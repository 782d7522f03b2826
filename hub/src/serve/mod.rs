//! `datum-hub serve`: accepts edges over QUIC and TLS/TCP, enrolls new ones, and drives one sync session per
//! connection. The rules live in `datum_shared::sync`; this module moves frames, stores what the session
//! says to store, and decides who the peer is from its certificate (never from what it says).

mod enroll;
mod session;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use automerge::{Automerge, ChangeHash};
use chrono::{DateTime, Utc};
use datum_host::net::pki;
use datum_host::net::tls;
use datum_host::net::transport::{Closer, FrameReceiver, FrameSender, Incoming, Listener, TransportError};
use datum_shared::document;
use datum_shared::ids::SiteId;
use datum_shared::sync::wire::{AuditHead, BlobWant, Frame, Msg, BLOB_CHUNK};
use datum_shared::sync::{driver, witness, AuditTrail, Event, LocalDoc, Principal, Session, SessionConfig};
use datum_shared::DocId;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, Notify};
use tracing::{error, info, warn, Instrument};

use crate::context::Context;
use crate::identity::token_hash;
use crate::identity::{self, Identity, NODE_CERT_DAYS};
use crate::store::{AuditHeadRow, BlobPiece, DocPiece, NodeRow, Store};
use datum_host::exit::Outcome;

/// A connection that says nothing for this long is closed (QUIC keep-alives keep idle links below it).
const IDLE: Duration = Duration::from_secs(120);
/// How long a new connection of a site waits for the site's running session to end.
const TAKE_OVER_WAIT: Duration = Duration::from_secs(10);
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
    /// Told whenever a site's session ends (its entry leaves `busy`).
    released: tokio::sync::Notify,
    /// The domain under which edges get web certificates (`<site>.<domain>`); none issued without it.
    web_domain: Option<String>,
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

/// What `datum-hub serve` was told on its command line (it wins over the configuration file).
pub struct Options {
    pub listen: Option<SocketAddr>,
    pub no_udp: bool,
    pub web_domain: Option<String>,
    pub web: Option<SocketAddr>,
    pub config: Option<std::path::PathBuf>,
}

pub async fn serve(ctx: &Context, options: Options) -> Result<Outcome> {
    let config = crate::config::load(options.config.as_deref())?;
    let listen = options.listen.or(config.listen).unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 7800)));
    let udp = !options.no_udp && config.udp;
    let web_domain = options.web_domain.or_else(|| config.web_domain.clone());
    if let Some(domain) = &web_domain {
        pki::web_names("check", domain).map_err(|e| datum_host::exit::user(format!("--web-domain: {e}")))?;
    }
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
    let web = match options.web.or(config.web) {
        Some(addr) => {
            let offset = clock.offset;
            let web_clock: datum_host::web::Clock = Arc::new(move || Utc::now() + offset);
            Some(crate::web::start(ctx, &store, &identity, &config, addr, web_clock).await?)
        }
        None => None,
    };
    let hub = Arc::new(Hub {
        store,
        identity,
        store_id,
        clock,
        live: Mutex::new(HashMap::new()),
        busy: Mutex::new(HashMap::new()),
        released: tokio::sync::Notify::new(),
        web_domain,
    });
    tokio::spawn(watch_revocations(hub.clone()));
    datum_host::process::notify_ready();
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
    if let Some(web) = web {
        web.stop().await;
    }
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
    let link = session::Link { via, protocol: conn.protocol };
    let (tx, rx, closer) = conn.split();
    let result = match chain.and_then(|c| c.into_iter().next()) {
        None => enroll::enroll(&hub, tx, rx).await,
        Some(leaf) => session::sync(&hub, tx, rx, closer.clone(), &leaf, conn_id, link).await,
    };
    if let Err(e) = result {
        info!("connection ended: {e:#}");
    }
    closer.close(0, "done");
}

/// Frames on their way to the peer, sent in order by a task of their own (`writer`), so the session loop never
/// blocks on a slow peer while it must read. What is queued is counted: a loop that makes many large frames (a
/// file sent to a node being restored) waits for `room` instead of queueing the whole file in memory.
#[derive(Clone)]
pub(crate) struct Outbox {
    queue: mpsc::UnboundedSender<Vec<u8>>,
    queued: Arc<AtomicUsize>,
    drained: Arc<Notify>,
}

impl Outbox {
    /// Queues a frame; false once the connection's writer has stopped (the frame is dropped).
    pub(crate) fn send(&self, frame: Vec<u8>) -> bool {
        let len = frame.len();
        self.queued.fetch_add(len, Ordering::SeqCst);
        if self.queue.send(frame).is_err() {
            self.queued.fetch_sub(len, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Waits until at most `limit` bytes are queued (or the writer has stopped).
    pub(crate) async fn room(&self, limit: usize) {
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.queued.load(Ordering::SeqCst) <= limit || self.queue.is_closed() {
                return;
            }
            drained.await;
        }
    }
}

fn writer(mut tx: FrameSender) -> (Outbox, tokio::task::JoinHandle<()>) {
    let (queue, mut frames) = mpsc::unbounded_channel::<Vec<u8>>();
    let (queued, drained) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
    let out = Outbox { queue, queued: queued.clone(), drained: drained.clone() };
    let task = tokio::spawn(async move {
        while let Some(frame) = frames.recv().await {
            let sent = tx.send(&frame).await;
            queued.fetch_sub(frame.len(), Ordering::SeqCst);
            drained.notify_waiters();
            if let Err(e) = sent {
                info!("send failed: {e}");
                // Whoever waits for room must not wait for a writer that is gone.
                frames.close();
                drained.notify_waiters();
                return;
            }
        }
        tx.finish().await;
    });
    (out, task)
}

/// After our last frame, wait (bounded) for the peer to close: closing first could discard what is still
/// in flight to it.
async fn linger(rx: &mut FrameReceiver) {
    let _ = tokio::time::timeout(Duration::from_secs(10), async { while let Ok(Some(_)) = rx.recv().await {} }).await;
}
