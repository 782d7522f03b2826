//! A site's data directory, written by one process at a time and read by any: the lock, the identity, the
//! database, the blob store, and the one way state changes (`Site::apply`).
//!
//! `apply` is the write path every command uses: it puts records into automerge documents in one
//! transaction per document (the change message says who did what and why), reads the records back for the
//! projection, appends a signed audit entry, and writes chunks, projection rows and audit entry in one SQLite
//! transaction.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use automerge::transaction::CommitOptions;
use automerge::{ActorId, Automerge};
use chrono::{DateTime, Utc};
use datum_shared::audit::{AuditEntry, DocChange, SignedEntry, GENESIS};
use datum_shared::document::{self, CommitInfo};
use datum_shared::ids::SiteId;
use datum_shared::model::SiteInfo;
use datum_shared::policy::Policy;
use datum_shared::DocId;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value as Json;

use crate::blobs::BlobStore;
use crate::store::{Batch, RecordRow, Store};
use datum_host::exit::UserError;
use datum_host::fs::{sync_dir, write_atomically, write_private};

const DB_FILE: &str = "datum.db";
const LOCK_FILE: &str = "LOCK";
const KEY_FILE: &str = "identity/site.key";
/// The newest audit entry (`seq hash`), kept outside the database so that cutting entries off the end of the
/// audit table is detected.
pub const AUDIT_HEAD_FILE: &str = "identity/audit-head";
/// Incremental chunks per document before they are compacted into one snapshot.
const COMPACT_AFTER_CHUNKS: i64 = 64;
/// Bytes of incremental chunks per document before they are compacted, whatever their number: changes are
/// stored uncompressed and applied op by op when loaded, so one import of 10,000 assets (a 2 MB change) took
/// 155 ms to load where its snapshot (90 kB) takes 48 ms.
const COMPACT_AFTER_BYTES: i64 = 256 << 10;

/// One pending record write.
struct Put {
    doc: DocId,
    collection: String,
    key: String,
    json: Json,
}

/// An operation being assembled: record writes plus what the audit entry will say.
pub struct Write {
    op: String,
    subject: String,
    reason: Option<String>,
    assets: Vec<String>,
    puts: Vec<Put>,
    adopted: Vec<DocChange>,
}

impl Write {
    pub fn new(op: &str, subject: impl Into<String>, reason: Option<String>) -> Write {
        Write {
            op: op.into(),
            subject: subject.into(),
            reason,
            assets: Vec::new(),
            puts: Vec::new(),
            adopted: Vec::new(),
        }
    }

    /// Names the assets this operation concerns (for `audit log --asset`).
    pub fn concerning<I: IntoIterator<Item = S>, S: ToString>(mut self, assets: I) -> Write {
        self.assets = assets.into_iter().map(|a| a.to_string()).collect();
        self.assets.sort();
        self.assets.dedup();
        self
    }

    pub fn put<R: Serialize>(&mut self, doc: &DocId, collection: &str, key: &str, record: &R) -> Result<()> {
        let json = serde_json::to_value(record).context("encode record")?;
        self.puts.push(Put { doc: doc.clone(), collection: collection.into(), key: key.into(), json });
        Ok(())
    }
}

/// The result of `apply`: the audit entry, or `None` when nothing changed.
pub type Applied = Option<AuditEntry>;

pub struct Site {
    pub dir: PathBuf,
    pub store: Store,
    pub blobs: BlobStore,
    pub info: SiteInfo,
    pub actor: String,
    pub now: DateTime<Utc>,
    pub policy: Policy,
    /// The clock is the drill clock (`DATUM_NOW`): every audit entry written says so.
    pub drill: bool,
    /// How `actor` proved who they are; `None` in a site without users (entries are then unauthenticated).
    pub auth: Option<datum_shared::identity::AuthMethod>,
    signing_key: SigningKey,
    automerge_actor: ActorId,
    docs: HashMap<DocId, Automerge>,
    /// The exclusive data-directory lock, held for the life of a writing command; `None` for a reader and
    /// between a sync pass's writes.
    lock: Option<DirLock>,
}

/// How a process opens a data directory. One process writes it at a time (the `LOCK` file); readers never
/// wait for that process, and a sync pass holds the lock only for the moments it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reading commands: no lock, a read-only database connection (a WAL reader sees the last committed
    /// state). They never wait for a sync pass or another command.
    Read,
    /// Writing commands: the lock for the life of the process, waiting at most [`COMMAND_LOCK_WAIT`] for a
    /// sync pass to let go.
    Write,
    /// A sync pass: the lock while opening (migrations, temp files), then only around each write
    /// ([`DirLock::acquire_within`] with [`PASS_LOCK_WAIT`]).
    Sync,
}

/// How long a writing command waits for the data directory held by someone else. Sync passes hold it only
/// for moments, so a command practically never waits; another command holding it is reported after this.
pub const COMMAND_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// How long a sync pass waits for a command to finish before writing what it received (a large capture or
/// import can take a while; the hub keeps the connection open meanwhile).
pub const PASS_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

impl Site {
    /// Creates a new data directory and the site identity.
    pub async fn init(
        dir: &Path,
        name: &datum_shared::ids::NamedId,
        actor: &str,
        now: DateTime<Utc>,
        drill: bool,
    ) -> Result<Site> {
        if dir.join(DB_FILE).exists() {
            return Err(UserError::new(format!(
                "{} already holds a site; choose another --data directory",
                dir.display()
            ))
            .into());
        }
        if dir.exists() && (!dir.is_dir() || fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(true)) {
            return Err(UserError::new(format!("{} exists and is not an empty directory", dir.display())).into());
        }
        // Build the site in a staging directory and rename it into place: a crash during init leaves no
        // half-made site behind.
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
        fs::create_dir_all(&parent).with_context(|| format!("create {}", parent.display()))?;
        let leaf = dir
            .file_name()
            .ok_or_else(|| UserError::new("--data must name a directory"))?
            .to_string_lossy()
            .to_string();
        let staging = parent.join(format!(".{leaf}.init-{:08x}", rand::random::<u32>()));
        let result = Site::init_in(&staging, name, actor, now, drill).await;
        match result {
            Ok(()) => {
                if dir.exists() {
                    fs::remove_dir(dir).with_context(|| format!("replace empty {}", dir.display()))?;
                }
                fs::rename(&staging, dir).with_context(|| format!("create {}", dir.display()))?;
                sync_dir(&parent).ok();
                let mut site = Site::open(dir, actor, now).await?;
                site.drill = drill;
                Ok(site)
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&staging);
                Err(e)
            }
        }
    }

    async fn init_in(
        dir: &Path,
        site_name: &datum_shared::ids::NamedId,
        actor: &str,
        now: DateTime<Utc>,
        drill: bool,
    ) -> Result<()> {
        fs::create_dir_all(dir.join("identity")).with_context(|| format!("create {}", dir.display()))?;
        let lock = DirLock::acquire(dir)?;
        let signing_key = SigningKey::generate(&mut rand::rngs::OsRng);
        write_private(&dir.join(KEY_FILE), hex::encode(signing_key.to_bytes()).as_bytes())?;
        let site_id = SiteId::new(&hex::encode(rand::random::<[u8; 8]>()))?;
        let info = SiteInfo {
            site_id: site_id.clone(),
            name: site_name.id.to_string(),
            display_name: site_name.display.clone(),
            created_at: now,
            created_by: actor.to_string(),
            audit_key: hex::encode(signing_key.verifying_key().to_bytes()),
        };
        let store = Store::open(&dir.join(DB_FILE), true).await?;
        store.set_meta("site_id", site_id.as_str()).await?;
        let mut site = Site::assemble(dir, store, info.clone(), signing_key, actor, now, Some(lock))?;
        site.drill = drill;
        let mut w = Write::new("site.init", &info.name, None);
        w.put(&site.doc_id("site"), SiteInfo::COLLECTION, SiteInfo::KEY, &info)?;
        site.apply(w, format!("site {} created", info.name)).await?;
        site.close().await;
        Ok(())
    }

    /// Finishes a site rebuilt by `restore-from-hub` in `dir` (documents, projection and files are in place;
    /// `lock` is the caller's lock on `dir`): the previous site key died with the old disk, so a new one is
    /// made, the site identity record names it, and a new audit chain starts with one `site.restore` entry
    /// that adopts the documents' history as received (`adopted`: every document's heads). Returns that entry.
    pub async fn finish_restore(
        dir: &Path,
        lock: DirLock,
        actor: &str,
        now: DateTime<Utc>,
        adopted: Vec<DocChange>,
        reason: String,
        summary: impl FnOnce(&SiteInfo) -> String,
    ) -> Result<AuditEntry> {
        let store = Store::open(&dir.join(DB_FILE), false).await?;
        let json = store
            .record(SiteInfo::COLLECTION, SiteInfo::KEY)
            .await?
            .ok_or_else(|| anyhow!("site identity record missing"))?;
        let mut info: SiteInfo = serde_json::from_str(&json).context("decode site identity")?;
        if store.meta("site_id").await?.as_deref() != Some(info.site_id.as_str()) {
            bail!("the site identity received from the hub does not match the site being restored");
        }
        let summary = summary(&info);
        let signing_key = SigningKey::generate(&mut rand::rngs::OsRng);
        write_private(&dir.join(KEY_FILE), hex::encode(signing_key.to_bytes()).as_bytes())?;
        info.audit_key = hex::encode(signing_key.verifying_key().to_bytes());
        let mut site = Site::assemble(dir, store, info.clone(), signing_key, actor, now, Some(lock))?;
        let mut write = Write::new("site.restore", &info.name, Some(reason));
        write.adopted = adopted;
        write.put(&site.doc_id("site"), SiteInfo::COLLECTION, SiteInfo::KEY, &info)?;
        let entry = site.apply(write, summary).await?;
        site.close().await;
        entry.ok_or_else(|| anyhow!("the restore changed nothing in the site identity"))
    }

    /// Opens an existing data directory to write it (the lock for the life of the process).
    pub async fn open(dir: &Path, actor: &str, now: DateTime<Utc>) -> Result<Site> {
        Site::open_as(dir, actor, now, Access::Write).await
    }

    /// Opens an existing data directory for reading, writing, or a sync pass (see [`Access`]).
    pub async fn open_as(dir: &Path, actor: &str, now: DateTime<Utc>, access: Access) -> Result<Site> {
        if !dir.join(DB_FILE).is_file() {
            return Err(UserError::new(format!(
                "{} is not a Datum data directory (run `datum-edge init --site NAME` first, or pass --data)",
                dir.display()
            ))
            .into());
        }
        let lock = match access {
            Access::Read => None,
            Access::Write => Some(DirLock::acquire_within(dir, COMMAND_LOCK_WAIT).await?),
            Access::Sync => Some(DirLock::acquire_within(dir, PASS_LOCK_WAIT).await?),
        };
        let key_hex = fs::read_to_string(dir.join(KEY_FILE)).context("read the site key (identity/site.key)")?;
        let mut key = [0u8; 32];
        hex::decode_to_slice(key_hex.trim(), &mut key).map_err(|_| anyhow!("identity/site.key is damaged"))?;
        let signing_key = SigningKey::from_bytes(&key);
        let store = match access {
            Access::Read => match Store::open_read_only(&dir.join(DB_FILE)).await? {
                Some(store) => store,
                // The first run after an upgrade: the schema needs a migration, which only a writer runs.
                None => return Box::pin(Site::open_as(dir, actor, now, Access::Write)).await,
            },
            Access::Write | Access::Sync => Store::open(&dir.join(DB_FILE), false).await?,
        };
        let site_id =
            store.meta("site_id").await?.ok_or_else(|| anyhow!("database has no site id; was init interrupted?"))?;
        let json = store
            .record(SiteInfo::COLLECTION, SiteInfo::KEY)
            .await?
            .ok_or_else(|| anyhow!("site identity record missing"))?;
        let info: SiteInfo = serde_json::from_str(&json).context("decode site identity")?;
        if info.site_id.as_str() != site_id {
            bail!("site identity does not match the database");
        }
        if hex::encode(signing_key.verifying_key().to_bytes()) != info.audit_key {
            bail!("identity/site.key is not this site's key (its public half differs from the one recorded at init)");
        }
        let mut site = Site::assemble(dir, store, info, signing_key, actor, now, lock)?;
        if access == Access::Sync {
            // Opened (and migrated, and temp files cleaned) under the lock; from now on only writes take it.
            site.lock = None;
        }
        Ok(site)
    }

    /// Whether this process holds the data directory's lock (a writing command).
    pub fn holds_lock(&self) -> bool {
        self.lock.is_some()
    }

    fn assemble(
        dir: &Path,
        store: Store,
        info: SiteInfo,
        signing_key: SigningKey,
        actor: &str,
        now: DateTime<Utc>,
        lock: Option<DirLock>,
    ) -> Result<Site> {
        let blobs = BlobStore::open(dir.join("blobs"))?;
        if lock.is_some() {
            // Only the lock holder may remove what an interrupted writer left; a reader must not touch a
            // running writer's temporary files.
            blobs.clean_tmp();
        }
        Ok(Site {
            dir: dir.to_path_buf(),
            store,
            blobs,
            info,
            actor: actor.to_string(),
            now,
            policy: Policy::default(),
            drill: false,
            auth: None,
            signing_key,
            // A fresh automerge actor per process: two processes sharing one actor id corrupt history.
            automerge_actor: ActorId::from(rand::random::<[u8; 16]>().as_slice()),
            docs: HashMap::new(),
            lock,
        })
    }

    pub fn doc_id(&self, name: &str) -> DocId {
        DocId::site(self.info.site_id.as_str(), name)
    }

    /// The key of secret fingerprints, derived from the site key: stable for the site, unknown outside it.
    pub fn fingerprint_key(&self) -> datum_shared::normalize::FingerprintKey {
        datum_shared::normalize::FingerprintKey::of_site(&self.signing_key.to_bytes())
    }

    pub fn verifying_key(&self) -> Result<VerifyingKey> {
        let mut key = [0u8; 32];
        hex::decode_to_slice(&self.info.audit_key, &mut key).context("site audit key")?;
        VerifyingKey::from_bytes(&key).context("site audit key")
    }

    /// Loads a document from its chunks (automerge verifies every change hash while loading).
    pub async fn load_doc(&mut self, id: &DocId) -> Result<&mut Automerge> {
        if !self.docs.contains_key(id) {
            let doc = load_doc_from(&self.store, id).await?;
            let doc = doc.with_actor(self.automerge_actor.clone());
            self.docs.insert(id.clone(), doc);
        }
        Ok(self.docs.get_mut(id).expect("inserted above"))
    }

    /// Applies an operation atomically. Returns `None` if no record actually changed.
    pub async fn apply(&mut self, write: Write, summary: String) -> Result<Applied> {
        // Time never goes backwards in the audit trail: an approval must not be dated before what it approves.
        if let Some(last) = self.store.last_audit_time().await? {
            if self.now < last {
                return Err(UserError::new(format!(
                    "the clock says {}, but the newest audit entry is dated {}: time never goes backwards in the \
                     audit trail (check the system clock{})",
                    self.now.to_rfc3339(),
                    last.to_rfc3339(),
                    if self.drill { "; DATUM_NOW is set" } else { "" }
                ))
                .into());
            }
        }
        let info = CommitInfo {
            op: write.op.clone(),
            actor: self.actor.clone(),
            subject: write.subject.clone(),
            reason: write.reason.clone(),
        };
        let message = serde_json::to_string(&info).context("encode commit message")?;
        let mut by_doc: BTreeMap<DocId, Vec<&Put>> = BTreeMap::new();
        for put in &write.puts {
            by_doc.entry(put.doc.clone()).or_default().push(put);
        }
        let mut batch = Batch::default();
        let mut changes = Vec::new();
        let time = self.now.timestamp_millis();
        for (doc_id, puts) in by_doc {
            let doc = self.load_doc(&doc_id).await?;
            let heads_before = doc.get_heads();
            let mut tx = doc.transaction();
            for put in &puts {
                document::put_record(&mut tx, &put.collection, &put.key, &put.json)
                    .with_context(|| format!("write {}/{} in {doc_id}", put.collection, put.key))?;
            }
            let (hash, _) = tx.commit_with(CommitOptions::default().with_message(message.clone()).with_time(time));
            let Some(hash) = hash else { continue };
            batch.chunks.push((doc_id.clone(), doc.save_after(&heads_before)));
            changes.push(DocChange { doc: doc_id.to_string(), change: hash.to_string() });
            for put in &puts {
                let json = document::get_record_json(&*doc, &put.collection, &put.key)?
                    .ok_or_else(|| anyhow!("record {}/{} vanished after writing", put.collection, put.key))?;
                batch.records.push(RecordRow {
                    collection: put.collection.clone(),
                    key: put.key.clone(),
                    doc_id: doc_id.to_string(),
                    subject: document::record_subject(&put.key, &json),
                    json: json.to_string(),
                });
            }
        }
        if changes.is_empty() {
            return Ok(None);
        }
        let (last_seq, prev) = self.store.last_audit().await?.unwrap_or((0, GENESIS.to_string()));
        let entry = AuditEntry {
            seq: last_seq + 1,
            at: self.now,
            actor: self.actor.clone(),
            op: write.op,
            subject: write.subject,
            reason: write.reason,
            assets: write.assets,
            summary,
            changes,
            prev,
            adopted: write.adopted,
            drill: self.drill,
            auth: self.auth,
        };
        let hash = entry.hash();
        let signature = hex::encode(self.signing_key.sign(hash.as_bytes()).to_bytes());
        batch.audit = Some(SignedEntry { entry: entry.clone(), hash: hash.clone(), signature });
        let touched: Vec<DocId> = batch.chunks.iter().map(|(d, _)| d.clone()).collect();
        if let Err(e) = self.store.commit(batch).await {
            // The in-memory documents now hold changes that were not stored: forget them.
            self.docs.clear();
            return Err(e.into());
        }
        write_audit_head(&self.dir, entry.seq, &hash)?;
        for doc_id in touched {
            self.maybe_compact(&doc_id).await?;
        }
        Ok(Some(entry))
    }

    async fn maybe_compact(&mut self, doc_id: &DocId) -> Result<()> {
        let stats = self.store.chunk_stats(doc_id).await?;
        if stats.chunks <= COMPACT_AFTER_CHUNKS && stats.incremental_bytes < COMPACT_AFTER_BYTES {
            return Ok(());
        }
        let snapshot = self.load_doc(doc_id).await?.save();
        self.store.compact(doc_id, &snapshot, stats.upto).await?;
        Ok(())
    }

    /// The site key, for sealing an evidence pack (`datum_host::evidence::seal`).
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing_key
    }

    /// Checks an audit signature with the site key.
    pub fn signature_ok(&self, key: &VerifyingKey, hash: &str, signature: &str) -> bool {
        let mut bytes = [0u8; 64];
        if hex::decode_to_slice(signature, &mut bytes).is_err() {
            return false;
        }
        key.verify(hash.as_bytes(), &Signature::from_bytes(&bytes)).is_ok()
    }

    /// Typed records of one collection from the projection.
    pub async fn list<R: DeserializeOwned>(&self, collection: &str) -> Result<Vec<R>> {
        decode_rows(collection, self.store.records(collection).await?)
    }

    pub async fn list_for<R: DeserializeOwned>(&self, collection: &str, subject: &str) -> Result<Vec<R>> {
        decode_rows(collection, self.store.records_by_subject(collection, subject).await?)
    }

    pub async fn get<R: DeserializeOwned>(&self, collection: &str, key: &str) -> Result<Option<R>> {
        match self.store.record(collection, key).await? {
            None => Ok(None),
            Some(json) => Ok(Some(
                serde_json::from_str(&json)
                    .with_context(|| format!("decode {collection}/{key} from the projection"))?,
            )),
        }
    }

    pub async fn close(self) {
        self.store.close().await;
    }
}

fn decode_rows<R: DeserializeOwned>(collection: &str, rows: Vec<(String, String)>) -> Result<Vec<R>> {
    rows.into_iter()
        .map(|(key, json)| {
            serde_json::from_str(&json).with_context(|| format!("decode {collection}/{key} from the projection"))
        })
        .collect()
}

/// The projection rows of one document: every record, with its subject (rebuilding the projection after a
/// dump restore, a hub restore, or to check it in `audit verify`).
pub fn projection_rows(id: &DocId, doc: &Automerge) -> Result<Vec<RecordRow>, document::DocError> {
    Ok(document::all_records(doc)?
        .into_iter()
        .map(|(collection, key, json)| RecordRow {
            subject: document::record_subject(&key, &json),
            json: json.to_string(),
            collection,
            key,
            doc_id: id.to_string(),
        })
        .collect())
}

/// Loads a document from the store's chunks; an absent document is a new, empty one.
pub async fn load_doc_from(store: &Store, id: &DocId) -> Result<Automerge> {
    let chunks = store.chunks(id).await?;
    if chunks.is_empty() {
        return Ok(Automerge::new());
    }
    let bytes = chunks.concat();
    Automerge::load(&bytes).map_err(|e| anyhow!("document {id} is damaged: {e}"))
}

/// Records the newest audit entry outside the database (see `AUDIT_HEAD_FILE`).
pub fn write_audit_head(dir: &Path, seq: u64, hash: &str) -> Result<()> {
    write_atomically(&dir.join(AUDIT_HEAD_FILE), format!("{seq} {hash}\n").as_bytes())
}

/// Reads the recorded audit head, if any.
pub fn read_audit_head(dir: &Path) -> Result<Option<(u64, String)>> {
    let path = dir.join(AUDIT_HEAD_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context("read identity/audit-head"),
    };
    let mut parts = text.split_whitespace();
    let seq = parts.next().and_then(|s| s.parse::<u64>().ok());
    let hash = parts.next().map(str::to_string);
    match (seq, hash) {
        (Some(seq), Some(hash)) => Ok(Some((seq, hash))),
        _ => bail!("identity/audit-head is damaged"),
    }
}

/// An exclusive lock on a data directory (an OS file lock on `LOCK`): whoever holds it is the one process
/// writing the directory. Released when dropped (or when the process dies).
pub struct DirLock {
    _file: File,
}

/// How often a waiting process looks at the lock again.
const LOCK_POLL: std::time::Duration = std::time::Duration::from_millis(20);

impl DirLock {
    /// Takes the lock now or fails, naming the holder (a directory being created or restored).
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        let (path, file) = open_lock_file(dir)?;
        if !try_lock(&file)? {
            return Err(lock_busy(dir, fs::read_to_string(&path).unwrap_or_default().trim()));
        }
        DirLock::record_holder(file)
    }

    /// Takes the lock, waiting up to `wait` for its holder to let go (without blocking the async runtime);
    /// then fails, naming the holder.
    pub async fn acquire_within(dir: &Path, wait: std::time::Duration) -> Result<DirLock> {
        let (path, file) = open_lock_file(dir)?;
        let deadline = tokio::time::Instant::now() + wait;
        while !try_lock(&file)? {
            if tokio::time::Instant::now() >= deadline {
                return Err(lock_busy(dir, fs::read_to_string(&path).unwrap_or_default().trim()));
            }
            tokio::time::sleep(LOCK_POLL).await;
        }
        DirLock::record_holder(file)
    }

    /// Writes who holds the lock into the file, for the message a refused process shows.
    fn record_holder(mut file: File) -> Result<DirLock> {
        let args: Vec<String> = std::env::args().take(3).collect();
        let holder = format!(
            "pid {} running `{}` since {}",
            std::process::id(),
            args.join(" "),
            Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
        );
        file.set_len(0)?;
        io::Write::write_all(&mut file, holder.as_bytes())?;
        Ok(DirLock { _file: file })
    }
}

fn open_lock_file(dir: &Path) -> Result<(PathBuf, File)> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    Ok((path, file))
}

/// `true` if the lock was taken, `false` if someone else holds it.
fn try_lock(file: &File) -> Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(fs::TryLockError::WouldBlock) => Ok(false),
        Err(fs::TryLockError::Error(e)) => Err(e).context("lock the data directory"),
    }
}

fn lock_busy(dir: &Path, holder: &str) -> anyhow::Error {
    UserError::new(format!(
        "data directory {} is in use by another process ({}); wait for it to finish",
        dir.display(),
        if holder.is_empty() { "holder unknown" } else { holder }
    ))
    .into()
}
