//! Federation from the edge's side: `enroll` with a hub, `sync` (one pass or continuously), and the driver
//! that runs a `datum_shared::sync::Session` over QUIC or TLS/TCP.
//!
//! The edge always dials out (plants do not accept inbound connections), tries QUIC first and falls back to
//! TCP by itself; where QUIC failed it remembers that for an hour (`tmp/quic-failed.json`), dials TCP first
//! and probes QUIC beside the pass. Being offline is normal: a pass that cannot reach the hub changes nothing
//! locally. A pass reads the site without its lock and takes the lock only for the moments it writes, so the
//! plant's commands keep working during a long upload or a dead WAN.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use chrono::{DateTime, Utc};
use datum_host::net::pki;
use datum_host::net::tls::{self, HubTrust};
use datum_host::net::transport::{self, ConnectError, ConnectOpts, FrameSender, Mode, Via};
use datum_shared::ids::SiteId;
use datum_shared::sync::wire::{AuditHead, BlobWant, Frame, Msg, BLOB_CHUNK};
use datum_shared::sync::{driver, enrollment, witness, AuditTrail, Event, LocalDoc, Principal, Session, SessionConfig};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn, Instrument as _};

use super::Context;
use crate::blobs::{BlobError, BlobStore};
use crate::site::{load_doc_from, Access, DirLock, Site, PASS_LOCK_WAIT};
use crate::store::{Batch, Store};
use datum_host::exit::{user, Outcome};
use datum_host::fs::write_private;

/// Everything the edge needs to reach and trust its hub, written at enrollment as one file (replaced
/// atomically on certificate renewal). Private: it holds the node's key.
const HUB_FILE: &str = "identity/hub.json";
/// The peer name under which sync states are kept.
const HUB_PEER: &str = "hub";
/// Renew the node certificate when less than this is left (certificates last 90 days).
const RENEW_BEFORE_DAYS: i64 = 30;
/// When the hub last refused a web certificate (it has no web domain): asked again a day later.
const WEB_CERT_REFUSED: &str = "identity/web-hub.refused";
/// Where files received from the hub (restore) are assembled before they enter the blob store.
const INCOMING_DIR: &str = "tmp/incoming";
/// A hub expected to answer that says nothing for this long has hung (a dead hub or path is noticed by the
/// transport within its own 10 s idle time-out, whatever this says).
const SILENCE: Duration = Duration::from_secs(10);
/// After files were sent the hub reads each back and checks its hash before it confirms: this much more
/// silence per GiB sent in the pass is allowed for that.
const SILENCE_PER_GIB_SENT: Duration = Duration::from_secs(30);
/// Where QUIC failures are remembered (a cache: losing it costs one QUIC time-out).
const QUIC_MEMORY_FILE: &str = "tmp/quic-failed.json";
/// How long a QUIC failure makes Auto dial TCP first.
const QUIC_MEMORY: chrono::Duration = chrono::Duration::hours(1);
/// While QUIC is remembered as failed, probe it beside a pass at most this often.
const QUIC_PROBE_EVERY: chrono::Duration = chrono::Duration::minutes(5);

#[derive(Serialize, Deserialize)]
pub struct HubLink {
    pub address: String,
    pub hub_name: String,
    pub node: String,
    pub fingerprint: String,
    pub root_pem: String,
    pub chain_pem: String,
    pub key_pem: String,
    /// The hub's Ed25519 publishing key (hex), pinned at enrollment: what the hub publishes (templates) must
    /// carry its signature. Absent for a node enrolled with a hub that sent none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publishing_key: Option<String>,
}

impl std::fmt::Debug for HubLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubLink").field("address", &self.address).field("node", &self.node).finish_non_exhaustive()
    }
}

impl HubLink {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(HUB_FILE)
    }
    pub fn load(dir: &Path) -> Result<Option<HubLink>> {
        match std::fs::read(Self::path(dir)) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).context("read identity/hub.json")?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).context("read identity/hub.json"),
        }
    }
    pub fn save(&self, dir: &Path) -> Result<()> {
        write_private(&Self::path(dir), &serde_json::to_vec_pretty(self)?)
    }
}

fn connect_error(e: ConnectError, address: &str) -> anyhow::Error {
    match e {
        ConnectError::Unreachable(why) => anyhow!(Offline(format!("hub {address} unreachable: {why}"))),
        ConnectError::NotAuthorized(why) => user(format!(
            "the hub refused this node's certificate ({why}); the site may be revoked or this node replaced"
        )),
        ConnectError::HubNotTrusted(why) => user(format!(
            "the server at {address} is not the hub this node trusts ({why}); check the address and fingerprint"
        )),
        ConnectError::Other(why) => anyhow!("connect to {address}: {why}"),
    }
}

/// The hub could not be reached: not an error of this node, and nothing was changed.
#[derive(Debug)]
pub struct Offline(pub String);

impl std::fmt::Display for Offline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Offline {}

pub async fn enroll(
    site: &Site,
    hub: &str,
    token: &str,
    fingerprint: &str,
    node: Option<String>,
    mode: Mode,
) -> Result<Outcome> {
    if let Some(link) = HubLink::load(&site.dir)? {
        return Err(user(format!(
            "this site is already enrolled with hub {} at {} as node {}",
            link.hub_name, link.address, link.node
        )));
    }
    let fingerprint = pki::parse_fingerprint(fingerprint).map_err(|e| user(format!("--fingerprint: {e}")))?;
    let node = node.unwrap_or_else(|| format!("{}-{}", site.info.name, hex::encode(rand::random::<[u8; 2]>())));
    datum_shared::ids::SiteName::new(&node).map_err(|e| user(format!("--node: {e}")))?;
    let (key_pem, csr) = pki::new_node_key()?;
    let request = Msg::Enroll {
        token: token.trim().to_string(),
        site_name: site.info.name.clone(),
        site_id: site.info.site_id.to_string(),
        node: node.clone(),
        csr,
    };
    let (answer, publishing_key) = enroll_exchange(hub, &fingerprint, mode, request).await?;
    let (chain_pem, root_pem, hub_name) = match answer {
        Msg::Enrolled { chain_pem, root_pem, hub_name } => (chain_pem, root_pem, hub_name),
        other => return Err(anyhow!("unexpected answer from the hub: {other:?}")),
    };
    let identity = check_issued(&root_pem, &chain_pem, &fingerprint)?;
    enrollment::check_answer(Some(&site.info.name), &node, &identity.site, &identity.node, site.info.site_id.as_str())
        .map_err(|e| anyhow!(e))?;
    HubLink {
        address: hub.to_string(),
        hub_name: hub_name.clone(),
        node: node.clone(),
        fingerprint,
        root_pem,
        chain_pem,
        key_pem,
        publishing_key,
    }
    .save(&site.dir)?;
    println!("enrolled site {} with hub {hub_name} at {hub} as node {node}", site.info.name);
    println!("certificate valid until {}; it is renewed automatically while syncing", identity.not_after.to_rfc3339());
    Ok(Outcome::Clean)
}

/// Sends an enrollment request over a connection without a client certificate (the hub pinned by
/// `fingerprint`) and returns the hub's answer with its publishing key (hex; `None` from a hub that sends
/// none); a refusal is a user error with the hub's reason.
pub async fn enroll_exchange(hub: &str, fingerprint: &str, mode: Mode, request: Msg) -> Result<(Msg, Option<String>)> {
    let config = tls::client_config(HubTrust::Pinned(fingerprint.to_string()), None)?;
    let opts = ConnectOpts { mode, ..ConnectOpts::default() };
    let conn = transport::connect(hub, config, &opts).await.map_err(|e| connect_error(e, hub))?;
    let (mut tx, mut rx, closer) = conn.split();
    tx.send(&Frame { seq: 1, msg: request }.encode()).await?;
    let reply = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .map_err(|_| anyhow!("the hub did not answer the enrollment within 30 s"))??
        .ok_or_else(|| anyhow!("the hub closed the connection without answering"))?;
    let answer = match Frame::decode(&reply).map_err(|e| anyhow!("hub answer: {e}"))?.msg {
        Msg::Reject { reason } => {
            closer.close(0, "refused");
            return Err(user(format!("the hub refused the enrollment: {reason}")));
        }
        answer => answer,
    };
    // The publishing key follows the answer (an older hub sends none and waits for us to hang up).
    let key = match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
        Ok(Ok(Some(frame))) => match Frame::decode(&frame).map(|f| f.msg) {
            Ok(Msg::PublishingKey { key }) if key.len() == 32 => Some(hex::encode(key)),
            Ok(Msg::PublishingKey { .. }) => return Err(anyhow!("the hub sent a publishing key that is not 32 bytes")),
            _ => None,
        },
        _ => None,
    };
    closer.close(0, "enrolled");
    Ok((answer, key))
}

/// Checks an issued chain against the pinned hub root; returns who the certificate names.
pub fn check_issued(root_pem: &str, chain_pem: &str, fingerprint: &str) -> Result<pki::NodeIdentity> {
    let root_der = pki::certs_from_pem(root_pem)?.into_iter().next().context("hub sent no root certificate")?;
    if pki::fingerprint(&root_der) != fingerprint {
        return Err(anyhow!("the hub's root certificate does not match the fingerprint given"));
    }
    let leaf = pki::certs_from_pem(chain_pem)?.into_iter().next().context("hub sent no certificate")?;
    Ok(pki::node_identity(&leaf)?)
}

/// What one pass achieved.
#[derive(Debug, Serialize)]
pub struct PassReport {
    pub via: String,
    pub docs: u32,
    pub files: u32,
    pub received_changes: usize,
    pub renewed: bool,
    /// The hub issued this node a web certificate in this pass.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub web_cert: bool,
    /// Restore: files received from the hub.
    #[serde(skip_serializing_if = "is_zero")]
    pub files_received: u32,
    /// Restore: files the hub could not provide (hash: reason).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files_unavailable: Vec<String>,
    /// Files the hub asked for that this node could not send (hash: reason), e.g. a damaged stored copy.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files_not_sent: Vec<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What a pass reads and writes: a site's data directory, or one being rebuilt by `restore-from-hub` that is
/// not a complete site yet (no site key, no projection).
pub struct PassTarget<'a> {
    pub dir: &'a Path,
    pub store: &'a Store,
    pub blobs: &'a BlobStore,
    pub site_id: &'a SiteId,
    /// Rebuilding from the hub (`SessionConfig::restoring`): take the hub's copies of our documents and files.
    pub restoring: bool,
    /// The caller does not hold the data-directory lock: take it around each write (a sync pass). `false`
    /// when the caller holds it throughout (a restore building a new directory).
    pub lock_writes: bool,
}

impl PassTarget<'_> {
    /// The lock for one write, if this pass must take it; waits for a running command to finish.
    async fn write_lock(&self) -> Result<Option<DirLock>> {
        if !self.lock_writes {
            return Ok(None);
        }
        match DirLock::acquire_within(self.dir, PASS_LOCK_WAIT).await {
            Ok(lock) => Ok(Some(lock)),
            Err(e) => Err(anyhow!(Offline(format!("{e:#}; the pass is retried later")))),
        }
    }
}

/// One sync pass: connect, exchange everything, wait for the hub's confirmation that it stored it.
pub async fn sync_pass(site: &Site, mode: Mode, disable_gso: bool, now: DateTime<Utc>) -> Result<PassReport> {
    let target = PassTarget {
        dir: &site.dir,
        store: &site.store,
        blobs: &site.blobs,
        site_id: &site.info.site_id,
        restoring: false,
        lock_writes: !site.holds_lock(),
    };
    run_pass(&target, mode, disable_gso, now).await
}

/// The pass itself, for a site or a directory being restored.
pub async fn run_pass(site: &PassTarget<'_>, mode: Mode, disable_gso: bool, now: DateTime<Utc>) -> Result<PassReport> {
    let mut link = HubLink::load(site.dir)?
        .ok_or_else(|| user("this site is not enrolled with a hub; run `datum-edge enroll` first"))?;
    let config = tls::client_config(HubTrust::Root(link.root_pem.clone()), Some((&link.chain_pem, &link.key_pem)))?;
    let remembered = if mode == Mode::Auto { QuicMemory::load(site.dir, &link.address, now) } else { None };
    let opts = ConnectOpts { mode, disable_gso, prefer_tcp: remembered.is_some(), ..ConnectOpts::default() };
    // QUIC remembered as failed: see beside this pass (at most every few minutes) whether it works again.
    let probe = match &remembered {
        Some(memory) if now - memory.probed_at >= QUIC_PROBE_EVERY => {
            let config = tls::client_config(HubTrust::Root(link.root_pem.clone()), None)?;
            let (address, probe_opts) = (link.address.clone(), ConnectOpts { mode: Mode::QuicOnly, ..opts.clone() });
            Some(tokio::spawn(async move {
                let conn = transport::connect(&address, config, &probe_opts).await?;
                conn.closer().close(0, "quic probe");
                Ok::<(), ConnectError>(())
            }))
        }
        _ => None,
    };
    let conn = transport::connect(&link.address, config, &opts).await.map_err(|e| connect_error(e, &link.address))?;
    let via = match conn.via {
        Via::Quic => "quic",
        Via::Tcp => "tcp",
    };
    let quic_memory = match (conn.via, &conn.quic_failed, remembered) {
        (Via::Quic, _, _) => QuicVerdict::Works,
        (Via::Tcp, Some(why), None) => QuicVerdict::Failed(QuicMemory::new(&link.address, now, why)),
        (Via::Tcp, _, Some(memory)) => QuicVerdict::Remembered(memory),
        (Via::Tcp, None, None) => QuicVerdict::Unknown,
    };
    let protocol = conn.protocol;
    let (tx, mut rx, closer) = conn.split();

    let states: std::collections::HashMap<String, Vec<u8>> =
        site.store.sync_states(HUB_PEER).await?.into_iter().collect();
    let mut local = Vec::new();
    for id in site.store.doc_ids().await? {
        let heads = load_doc_from(site.store, &id).await?.get_heads();
        local.push(LocalDoc { saved_state: states.get(id.as_str()).cloned(), id, heads });
    }
    let cfg = SessionConfig {
        me: Principal::Site { site_id: site.site_id.clone() },
        peer: Principal::Hub,
        node: link.node.clone(),
        store: site.site_id.to_string(),
        restoring: site.restoring,
        protocol,
    };
    // The newest audit entry, for the hub to witness (a directory being restored has none yet).
    let trail = match site.store.last_audit_signed().await? {
        Some((seq, hash, signature)) => AuditTrail::Ours(AuditHead { seq, hash, signature }),
        None => AuditTrail::Off,
    };
    let our_newest = match &trail {
        AuditTrail::Ours(head) => head.seq,
        _ => 0,
    };
    let mut session = Session::with_audit(cfg, local, trail);
    let mut host = EdgeHost {
        site,
        tx,
        link: &mut link,
        now,
        our_newest,
        report: PassReport {
            via: via.into(),
            docs: 0,
            files: 0,
            received_changes: 0,
            renewed: false,
            web_cert: false,
            files_received: 0,
            files_unavailable: Vec::new(),
            files_not_sent: Vec::new(),
        },
        incoming_dir: site.dir.join(INCOMING_DIR),
        renewal: None,
        web_key: None,
        synced: false,
        bytes_sent: 0,
        diverged: None,
    };
    let result: Result<()> = async {
        loop {
            driver::pump(&mut session, &mut host).await?;
            if session.is_closed() || (host.synced && host.renewal.is_none() && host.web_key.is_none()) {
                return Ok(());
            }
            let silence = SILENCE + SILENCE_PER_GIB_SENT.mul_f64(host.bytes_sent as f64 / f64::from(1u32 << 30));
            match tokio::time::timeout(silence, rx.recv()).await {
                Err(_) => return Err(anyhow!(Offline(format!("the hub said nothing for {silence:.0?}")))),
                Ok(Ok(Some(frame))) => session.handle(&frame),
                Ok(Ok(None)) => return Err(anyhow!(Offline("the hub closed the connection".into()))),
                Ok(Err(e)) => return Err(anyhow!(Offline(format!("connection lost: {e}")))),
            }
        }
    }
    .await;
    let EdgeHost { mut tx, report, synced, diverged, .. } = host;
    tx.finish().await;
    if diverged.is_some() {
        // Our refusal must reach the hub (it records it): wait, bounded, for the hub to end its side.
        let _ = tokio::time::timeout(SILENCE, async { while let Ok(Some(_)) = rx.recv().await {} }).await;
    }
    closer.close(0, "done");
    let quic_memory = match (quic_memory, probe) {
        (QuicVerdict::Remembered(memory), Some(probe)) => match probe.await {
            Ok(Ok(())) => QuicVerdict::Works,
            _ => QuicVerdict::Failed(QuicMemory { probed_at: now, ..memory }),
        },
        (verdict, _) => verdict,
    };
    let states: Vec<(String, Vec<u8>)> = session.sync_states().into_iter().map(|(d, s)| (d.to_string(), s)).collect();
    {
        let _lock = site.write_lock().await?;
        site.store.save_sync_states(HUB_PEER, &states).await?;
        quic_memory.save(site.dir);
        if result.is_ok() && synced {
            site.store.set_meta("last_sync", &Utc::now().to_rfc3339()).await?;
        }
    }
    // Our own trail differs from what the hub saw (the hub was told): a person must act (exit 2).
    if let Some(reason) = diverged {
        return Err(user(format!(
            "not in sync: {reason}; investigate, and rebuild the node with `datum-edge restore-from-hub` if the \
             history here cannot be trusted"
        )));
    }
    // A connection that breaks mid-pass is the network's doing: offline, not an error of this node.
    result.map_err(|e| match e.downcast_ref::<transport::TransportError>() {
        Some(t) => anyhow!(Offline(format!("connection lost: {t}"))),
        None => e,
    })?;
    if !synced {
        return Err(anyhow!("the session ended before the hub confirmed"));
    }
    Ok(report)
}

/// "QUIC to this hub failed at `failed_at`": Auto dials TCP first for [`QUIC_MEMORY`] and probes QUIC beside a
/// pass every [`QUIC_PROBE_EVERY`], so a plant behind a UDP-blocking firewall does not pay the QUIC time-out
/// on every pass.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct QuicMemory {
    hub: String,
    failed_at: DateTime<Utc>,
    probed_at: DateTime<Utc>,
    why: String,
}

/// What a pass learnt about QUIC.
enum QuicVerdict {
    Works,
    Failed(QuicMemory),
    Remembered(QuicMemory),
    /// TCP was asked for explicitly, or QUIC was never tried.
    Unknown,
}

impl QuicMemory {
    fn new(hub: &str, now: DateTime<Utc>, why: &str) -> QuicMemory {
        QuicMemory { hub: hub.to_string(), failed_at: now, probed_at: now, why: why.to_string() }
    }

    /// The memory for `hub` if it is recent; anything unreadable is forgotten.
    fn load(dir: &Path, hub: &str, now: DateTime<Utc>) -> Option<QuicMemory> {
        let bytes = std::fs::read(dir.join(QUIC_MEMORY_FILE)).ok()?;
        let memory: QuicMemory = serde_json::from_slice(&bytes).ok()?;
        let recent = now >= memory.failed_at && now - memory.failed_at < QUIC_MEMORY;
        (memory.hub == hub && recent).then_some(memory)
    }
}

impl QuicVerdict {
    /// Records the verdict (under the caller's write lock). Best effort: the file is only a cache.
    fn save(&self, dir: &Path) {
        let path = dir.join(QUIC_MEMORY_FILE);
        match self {
            QuicVerdict::Works => {
                if std::fs::remove_file(&path).is_ok() {
                    info!("quic works again; using it first");
                }
            }
            QuicVerdict::Failed(memory) => {
                let written = (|| -> Result<()> {
                    std::fs::create_dir_all(dir.join("tmp"))?;
                    datum_host::fs::write_atomically(&path, &serde_json::to_vec_pretty(memory)?)
                })();
                if let Err(e) = written {
                    tracing::warn!("cannot remember that quic failed: {e:#}");
                }
            }
            QuicVerdict::Remembered(_) | QuicVerdict::Unknown => {}
        }
    }
}

/// Checks a received file against its name and size and puts it into the blob store.
fn store_received(blobs: &BlobStore, part: &Path, hash: &str, total: u64) -> Result<()> {
    use sha2::Digest;
    let mut file = std::fs::File::open(part).context("open the received file")?;
    let mut hasher = sha2::Sha256::new();
    let len = std::io::copy(&mut file, &mut hasher)?;
    if len != total || hex::encode(hasher.finalize()) != hash {
        bail!("content does not match its hash");
    }
    let stored = blobs.put_file(part, &[])?;
    if stored.hash != hash {
        bail!("content changed while it was stored");
    }
    Ok(())
}

fn renewal_due(link: &HubLink, now: DateTime<Utc>) -> Result<Option<(String, Vec<u8>)>> {
    let leaf = pki::certs_from_pem(&link.chain_pem)?.into_iter().next().context("node certificate missing")?;
    let (_, not_after) = pki::validity(&leaf)?;
    if not_after - now > chrono::Duration::days(RENEW_BEFORE_DAYS) {
        return Ok(None);
    }
    Ok(Some(pki::new_node_key()?))
}

/// A web certificate is asked of the hub when there is none from it or it has less than `RENEW_BEFORE_DAYS`
/// left; after the hub said no, again a day later.
fn web_cert_due(dir: &Path, now: DateTime<Utc>) -> Result<Option<(String, Vec<u8>)>> {
    if let Ok(text) = std::fs::read_to_string(dir.join(WEB_CERT_REFUSED)) {
        if let Ok(at) = DateTime::parse_from_rfc3339(text.trim()) {
            if now - at.with_timezone(&Utc) < chrono::Duration::days(1) {
                return Ok(None);
            }
        }
    }
    if let Ok(pem) = std::fs::read_to_string(dir.join(crate::web::HUB_WEB_CERT)) {
        if let Some(leaf) = pki::certs_from_pem(&pem).ok().and_then(|c| c.into_iter().next()) {
            if let Ok((_, not_after)) = pki::validity(&leaf) {
                if not_after - now > chrono::Duration::days(RENEW_BEFORE_DAYS) {
                    return Ok(None);
                }
            }
        }
    }
    Ok(Some(pki::new_node_key()?))
}

/// The edge's side of one pass: what it does for each event (`datum_shared::sync::driver`).
struct EdgeHost<'a, 'b> {
    site: &'a PassTarget<'b>,
    tx: FrameSender,
    link: &'a mut HubLink,
    now: DateTime<Utc>,
    /// The newest audit entry this node presented.
    our_newest: u64,
    report: PassReport,
    incoming_dir: PathBuf,
    /// The new key while a renewal is asked for.
    renewal: Option<String>,
    /// The new web key while a web certificate is asked for.
    web_key: Option<String>,
    synced: bool,
    bytes_sent: u64,
    /// Our own trail differs from what the hub witnessed.
    diverged: Option<String>,
}

impl driver::Host for EdgeHost<'_, '_> {
    type Error = anyhow::Error;

    async fn on_event(&mut self, session: &mut Session, event: Event) -> Result<()> {
        let site = self.site;
        match event {
            Event::Load(ids) => {
                for id in ids {
                    let doc = load_doc_from(site.store, &id).await?;
                    session.provide(&id, Some(doc));
                }
            }
            Event::Applied { doc, changes, incremental, .. } => {
                // Hub documents; our own only while restoring (otherwise the session refuses them).
                self.report.received_changes += changes.len();
                let _lock = site.write_lock().await?;
                site.store.commit(Batch { chunks: vec![(doc, incremental)], ..Batch::default() }).await?;
            }
            Event::SendBlobs(wants) => {
                // What the session queued before is sent.
                for want in wants {
                    match send_blob(site, session, &mut self.tx, &want).await? {
                        Ok(sent) => {
                            self.report.files += 1;
                            self.bytes_sent += sent;
                        }
                        Err(reason) => self.report.files_not_sent.push(format!("{}: {reason}", want.hash)),
                    }
                }
                session.blobs_sent();
            }
            Event::Synced { docs, .. } => {
                self.report.docs = docs;
                self.synced = true;
                // The hub now holds the trail up to the entry this node presented (evidence for SR 3.9).
                if self.our_newest > 0 && !site.restoring {
                    let anchor = super::evidence::Anchor { seq: self.our_newest, at: self.now };
                    let _lock = site.write_lock().await?;
                    write_private(&site.dir.join(super::evidence::HUB_ANCHOR), &serde_json::to_vec(&anchor)?)?;
                }
                if self.renewal.is_none() {
                    if let Some((key_pem, csr)) = renewal_due(self.link, self.now)? {
                        self.renewal = Some(key_pem);
                        session.request_renewal(csr);
                    }
                }
                if self.web_key.is_none() && !site.restoring {
                    if let Some((key_pem, csr)) = web_cert_due(site.dir, self.now)? {
                        self.web_key = Some(key_pem);
                        session.request_web_cert(csr);
                    }
                }
            }
            Event::WebCertAnswered(answer) => {
                if let Some(key_pem) = self.web_key.take() {
                    let _lock = site.write_lock().await?;
                    match answer {
                        Ok(chain_pem) => {
                            // Checked before it is kept: the chain parses and its leaf holds our key.
                            datum_host::net::tls::certified_key(&chain_pem, &key_pem)
                                .context("the hub's web certificate")?;
                            // Key first, then the certificate the service watches.
                            write_private(&site.dir.join(crate::web::HUB_WEB_KEY), key_pem.as_bytes())?;
                            write_private(&site.dir.join(crate::web::HUB_WEB_CERT), chain_pem.as_bytes())?;
                            let _ = std::fs::remove_file(site.dir.join(WEB_CERT_REFUSED));
                            self.report.web_cert = true;
                            // The pass's line says so (one line per pass in the service's log).
                            debug!("web certificate issued by the hub");
                        }
                        Err(reason) => {
                            write_private(&site.dir.join(WEB_CERT_REFUSED), self.now.to_rfc3339().as_bytes())?;
                            // Asked again a day later; the hub's log says why too.
                            debug!("no web certificate from the hub: {reason}");
                        }
                    }
                }
            }
            Event::Renewed(chain_pem) => {
                if let Some(key_pem) = self.renewal.take() {
                    self.link.chain_pem = chain_pem;
                    self.link.key_pem = key_pem;
                    let _lock = site.write_lock().await?;
                    self.link.save(site.dir)?;
                    self.report.renewed = true;
                    info!("node certificate renewed");
                }
            }
            Event::Violation(reason) => return Err(anyhow!("the hub broke the protocol: {reason}")),
            Event::Failed(reason) => return Err(anyhow!("sync failed: {reason}")),
            // The hub witnessed a newer audit trail from this site than the one here: the data directory
            // was put back from an older copy. A person must act (exit 2).
            Event::Rejected(reason) if reason.starts_with(witness::ROLLED_BACK) => {
                return Err(user(format!(
                    "the hub refused to sync: {reason}. This data directory is older than what the site \
                             already sent to the hub (put back from an old copy?): investigate, and rebuild the \
                             node with `datum-edge restore-from-hub` if the newer history is lost"
                )))
            }
            // The hub decided (revoked site, replaced node…): a person must act, retrying will not help.
            Event::Rejected(reason) => return Err(user(format!("the hub refused to sync: {reason}"))),
            // Receiving files: only while restoring (otherwise the session refuses them).
            Event::CheckBlobs(hashes) => {
                std::fs::create_dir_all(&self.incoming_dir)?;
                let mut wants = Vec::new();
                for hash in hashes {
                    if site.blobs.contains(&hash) && site.blobs.verify(&hash).is_ok() {
                        continue;
                    }
                    // A file cut in an earlier attempt goes on where it stopped; the whole is checked.
                    let from = std::fs::metadata(self.incoming_dir.join(&hash)).map(|m| m.len()).unwrap_or(0);
                    wants.push(BlobWant { hash, from });
                }
                session.want_blobs(wants);
            }
            Event::BlobChunk { hash, offset, data, .. } => {
                use std::io::{Seek, SeekFrom, Write};
                let mut part = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(self.incoming_dir.join(&hash))?;
                part.set_len(offset)?;
                part.seek(SeekFrom::Start(offset))?;
                part.write_all(&data)?;
            }
            Event::BlobComplete { hash, total } => {
                let part = self.incoming_dir.join(&hash);
                // Hashing and compressing a large file takes seconds: on a blocking thread, so that the
                // connection's keep-alives go on meanwhile (the runtime has one thread).
                let (blobs, received, wanted) = (site.blobs.clone(), part.clone(), hash.clone());
                let stored = tokio::task::spawn_blocking(move || store_received(&blobs, &received, &wanted, total))
                    .await
                    .context("store a received file")?;
                match stored {
                    Ok(()) => {
                        self.report.files_received += 1;
                        session.blob_stored(&hash, Ok(()));
                    }
                    Err(e) => {
                        self.report.files_unavailable.push(format!("{hash}: {e:#}"));
                        session.blob_stored(&hash, Err(format!("{e:#}")));
                    }
                }
                let _ = std::fs::remove_file(&part);
            }
            Event::BlobUnavailable { hash, reason } => {
                self.report.files_unavailable.push(format!("{hash}: {reason}"));
            }
            Event::Witnessed(held) => {
                let ours = site.store.audit_hash_at(held.seq).await?;
                let verdict = witness::check_witnessed(&held, ours.as_deref(), self.our_newest);
                if let Err(reason) = &verdict {
                    self.diverged = Some(reason.clone());
                }
                session.witness_checked(verdict);
            }
            Event::RenewRequested(_) | Event::AuditPresented(_) | Event::WebCertRequested(_) => {}
        }
        Ok(())
    }

    async fn transmit(&mut self, frame: Vec<u8>) -> Result<()> {
        Ok(self.tx.send(&frame).await?)
    }
}

/// Streams one stored file to the hub from `want.from`, in pieces, without holding it in memory or on disk:
/// a blocking thread decompresses (and hashes) the stored copy while the pieces it made go out. The last piece
/// is held back until the whole content matched its hash, so a damaged stored copy never reaches the hub
/// complete. Returns the bytes sent, or why the file could not be sent (the hub is told).
async fn send_blob(
    site: &PassTarget<'_>,
    session: &mut Session,
    tx: &mut FrameSender,
    want: &BlobWant,
) -> Result<std::result::Result<u64, String>> {
    let total = match site.blobs.size(&want.hash) {
        Ok(total) => total,
        Err(BlobError::Missing { .. }) => {
            let reason = "not in this node's store".to_string();
            session.blob_unavailable(&want.hash, &reason);
            return Ok(Err(reason));
        }
        Err(e) => {
            let reason = format!("stored copy is damaged: {e}");
            session.blob_unavailable(&want.hash, &reason);
            return Ok(Err(reason));
        }
    };
    let from = want.from.min(total);
    // A few pieces in flight between the threads: memory stays bounded, and neither side waits on the other.
    let (pieces_tx, mut pieces) = tokio::sync::mpsc::channel::<Result<(u64, Vec<u8>), String>>(4);
    // Piece buffers come back once their frame is made, and the frame buffer is reused: a large file is streamed
    // through a few buffers, not a fresh MiB of memory per piece.
    let (spare_tx, spare) = std::sync::mpsc::channel::<Vec<u8>>();
    let (blobs, hash) = (site.blobs.clone(), want.hash.clone());
    let producer = tokio::task::spawn_blocking(move || {
        let piece = Vec::with_capacity(BLOB_CHUNK);
        let mut cutter = PieceCutter { from, at: 0, next: from, piece, out: pieces_tx, spare };
        let copied = blobs.copy_to(&hash, &mut cutter, 0);
        let last = match copied {
            Ok(_) => Ok((cutter.next, std::mem::take(&mut cutter.piece))),
            Err(e) => Err(e.to_string()),
        };
        // The receiver is gone only when sending failed, which the sending side reports.
        let _ = cutter.out.blocking_send(last);
    });
    let mut sent = 0u64;
    let mut frame = Vec::new();
    while let Some(piece) = pieces.recv().await {
        match piece {
            Ok((offset, data)) => {
                sent += data.len() as u64;
                let mut data = session.blob_chunk_frame_into(&want.hash, offset, total, data, &mut frame);
                tx.send(&frame).await?;
                data.clear();
                // The producer may have finished; then the buffer is simply dropped.
                let _ = spare_tx.send(data);
            }
            Err(e) => {
                // Pieces sent before stay incomplete at the hub, which asks again from where they end.
                let reason = format!("stored copy is damaged: {e}");
                session.blob_unavailable(&want.hash, &reason);
                return Ok(Err(reason));
            }
        }
    }
    producer.await.context("decompress a file to send")?;
    Ok(Ok(sent))
}

/// Cuts decompressed content into pieces of `BLOB_CHUNK` bytes from offset `from` and hands them on; a full
/// piece goes only once more content follows, so the last one stays for the caller to send after the check.
struct PieceCutter {
    from: u64,
    /// Bytes of content seen.
    at: u64,
    /// Offset of the piece being filled.
    next: u64,
    piece: Vec<u8>,
    out: tokio::sync::mpsc::Sender<Result<(u64, Vec<u8>), String>>,
    /// Buffers of pieces already sent, to fill again.
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
}

impl std::io::Write for PieceCutter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let skip = self.from.saturating_sub(self.at).min(buf.len() as u64) as usize;
        self.at += buf.len() as u64;
        let mut rest = &buf[skip..];
        while !rest.is_empty() {
            if self.piece.len() == BLOB_CHUNK {
                let next = self.spare.try_recv().unwrap_or_else(|_| Vec::with_capacity(BLOB_CHUNK));
                let piece = std::mem::replace(&mut self.piece, next);
                let offset = self.next;
                self.next += piece.len() as u64;
                self.out
                    .blocking_send(Ok((offset, piece)))
                    .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "sending stopped"))?;
            }
            let take = (BLOB_CHUNK - self.piece.len()).min(rest.len());
            self.piece.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `datum-edge sync`: one pass (`--once`) or a loop that syncs whenever local documents change (and every few
/// minutes for the hub's), with backoff and jitter while the hub is unreachable.
pub async fn sync(
    ctx: &Context,
    once: bool,
    json: bool,
    mode: Mode,
    interval: Duration,
    disable_gso: bool,
) -> Result<Outcome> {
    if once {
        let site = Site::open_as(&ctx.data, &ctx.actor, ctx.now, Access::Sync).await?;
        let mut result = sync_pass(&site, mode, disable_gso, ctx.now).await;
        site.close().await;
        if result.is_ok() && super::templates::refresh_after_pass(ctx).await {
            // Template states or results were recorded: they reach the hub in this same run.
            let site = Site::open_as(&ctx.data, &ctx.actor, ctx.now, Access::Sync).await?;
            let second = sync_pass(&site, mode, disable_gso, ctx.now).await;
            site.close().await;
            result = match (result, second) {
                (Ok(mut first), Ok(second)) => {
                    first.files += second.files;
                    first.received_changes += second.received_changes;
                    first.files_not_sent.extend(second.files_not_sent);
                    Ok(first)
                }
                (_, Err(e)) | (Err(e), _) => Err(e),
            };
        }
        return match result {
            Ok(report) => {
                if json {
                    crate::output::print_json(&report)?;
                } else {
                    println!(
                        "in sync with the hub via {}: {} documents, {} files sent, {} changes received{}{}",
                        report.via,
                        report.docs,
                        report.files,
                        report.received_changes,
                        if report.renewed { ", certificate renewed" } else { "" },
                        if report.web_cert { ", web certificate issued" } else { "" }
                    );
                }
                if report.files_not_sent.is_empty() {
                    return Ok(Outcome::Clean);
                }
                // Damage here, not the network's doing: a finding a person must look at.
                eprintln!(
                    "not in sync: {} file(s) the hub asked for could not be sent: {}; check the store with \
                     `datum-edge backup verify`",
                    report.files_not_sent.len(),
                    report.files_not_sent.join("; ")
                );
                Ok(Outcome::Findings)
            }
            Err(e) if e.downcast_ref::<Offline>().is_some() => {
                eprintln!("not in sync: {e:#} (working offline; nothing was lost)");
                Ok(Outcome::Findings)
            }
            Err(e) => Err(e),
        };
    }
    // Fail fast on what waiting will not fix: not a site, not enrolled.
    let site = Site::open_as(&ctx.data, &ctx.actor, ctx.now, Access::Read).await?;
    let link = HubLink::load(&site.dir)?;
    let site_name = site.info.name.to_string();
    site.close().await;
    let Some(link) = link else {
        return Err(user("this site is not enrolled with a hub; run `datum-edge enroll` first"));
    };
    // Every line of the continuous mode names the site and its hub (the error and log policy).
    let span = tracing::info_span!("sync", site = %site_name, hub = %link.address);
    async move {
        let mut failures = 0u32;
        let mut last_heads: Option<Vec<(String, i64, i64)>> = None;
        let mut last_pass = std::time::Instant::now() - Duration::from_secs(3600);
        loop {
            let site = match Site::open_as(&ctx.data, &ctx.actor, Utc::now(), Access::Sync).await {
                Ok(s) => s,
                Err(e) if e.downcast_ref::<datum_host::exit::UserError>().is_some() => {
                    // A command held the directory for longer than a pass waits: try again shortly.
                    info!("not in sync ({e:#}); retrying in {}", seconds(interval));
                    tokio::time::sleep(interval).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let heads = current_heads(&site).await?;
            let due = last_heads.as_ref() != Some(&heads) || last_pass.elapsed() >= Duration::from_secs(300);
            let mut delay = interval;
            let mut refresh = false;
            if due {
                match sync_pass(&site, mode, disable_gso, Utc::now()).await {
                    Ok(report) => {
                        failures = 0;
                        // The heads read before the pass: a command that wrote during the pass changed them
                        // after, so the next check sees its work and passes again (reading them now would
                        // count that work as sent).
                        last_heads = Some(heads.clone());
                        last_pass = std::time::Instant::now();
                        refresh = true;
                        info!(
                            "in sync with the hub via {}: {} documents, {} files sent, {} changes received{}",
                            report.via,
                            report.docs,
                            report.files,
                            report.received_changes,
                            if report.web_cert { ", web certificate issued" } else { "" }
                        );
                        if !report.files_not_sent.is_empty() {
                            warn!(
                                "{} file(s) the hub asked for could not be sent: {}; check the store with \
                                 `datum-edge backup verify`",
                                report.files_not_sent.len(),
                                report.files_not_sent.join("; ")
                            );
                        }
                    }
                    Err(e) if e.downcast_ref::<datum_host::exit::UserError>().is_some() => {
                        site.close().await;
                        return Err(e);
                    }
                    Err(e) => {
                        failures += 1;
                        delay = backoff(failures);
                        info!("not in sync ({e:#}); retrying in {}", seconds(delay));
                    }
                }
            }
            site.close().await;
            if refresh {
                // Assignments or templates may have arrived: decide and record them, and the results of what
                // is active (only what changed; sent with the next pass).
                super::templates::refresh_after_pass(ctx).await;
            }
            tokio::time::sleep(delay).await;
        }
    }
    .instrument(span)
    .await
}

/// A delay as people read it in a log line: `4.2 s`.
fn seconds(delay: Duration) -> String {
    format!("{:.1} s", delay.as_secs_f64())
}

/// A cheap fingerprint of the local documents (chunk counts and sequence numbers): it changes with every
/// local write, so the loop can tell when there is something to push.
async fn current_heads(site: &Site) -> Result<Vec<(String, i64, i64)>> {
    let mut out = Vec::new();
    for id in site.store.doc_ids().await? {
        let stats = site.store.chunk_stats(&id).await?;
        out.push((id.to_string(), stats.chunks, stats.upto));
    }
    Ok(out)
}

/// 1 s, 2 s, 4 s … up to 5 min, each ±25 % so that many plants coming back after a WAN outage do not all
/// knock at once.
fn backoff(failures: u32) -> Duration {
    let base = Duration::from_secs(1u64 << failures.min(9)).min(Duration::from_secs(300));
    let jitter = 0.75 + rand::random::<f64>() * 0.5;
    base.mul_f64(jitter)
}

/// Whether this data directory is enrolled with a hub.
pub fn enrolled(dir: &Path) -> bool {
    matches!(HubLink::load(dir), Ok(Some(_)))
}
