//! Configuration files and evidence received from the sites, stored once, and which sites hold each
//! (`blob_sites`).
//!
//! The bytes live in files beside the database (`blobs/partial/<sha256>` while a file arrives, then
//! `blobs/<aa>/<sha256>`); the database says how much of each is durably received and whether it is complete.
//! Pieces are written and fsynced before the database records them, so after a crash a partial file may hold
//! more than the database says (cut back at the next append), never less. Hubs before 2026-12-03 kept the bytes in
//! the database (`blob_chunks`, 1 MiB rows); those rows are still read, and a partial transfer of that time
//! starts over. (In the database every byte went through SQLite's WAL and again through the checkpoint: the
//! bound of a first sync, docs/PERFORMANCE.md.)

use std::collections::HashMap;
use std::path::PathBuf;

use datum_host::fs::{create_dir_durable, sync_dir};
use datum_shared::sync::wire::BLOB_CHUNK;
use sha2::{Digest, Sha256};

use super::*;

impl Store {
    /// Registers referenced files of a site (unknown ones become wanted) and returns every incomplete file of
    /// the site with the bytes already received.
    pub async fn want_blobs(&self, site_id: &SiteId, referenced: &[String]) -> Result<Vec<BlobState>> {
        let mut tx = self.begin_write().await?;
        for hash in referenced {
            sqlx::query(
                "INSERT INTO blobs (hash, site_id, size, received, complete) VALUES ($1, $2, 0, 0, 0)
                 ON CONFLICT (hash) DO NOTHING",
            )
            .bind(hash)
            .bind(site_id.as_str())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO blob_sites (hash, site_id) VALUES ($1, $2) ON CONFLICT (hash, site_id) DO NOTHING",
            )
            .bind(hash)
            .bind(site_id.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let rows = sqlx::query(
            "SELECT b.hash, b.received FROM blobs b JOIN blob_sites s ON s.hash = b.hash
             WHERE s.site_id = $1 AND b.complete = 0 ORDER BY b.hash",
        )
        .bind(site_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        let mut states = Vec::with_capacity(rows.len());
        let _one_at_a_time = self.appending.lock().await;
        for r in &rows {
            let hash: String = r.try_get(0)?;
            let received = r.try_get::<i64, _>(1)? as u64;
            if !datum_shared::sync::wire::is_blob_hash(&hash) {
                return Err(StoreError::Invalid(format!("the blobs table holds {hash:?}, which is not a SHA-256")));
            }
            if received == 0 {
                states.push(BlobState { hash, received });
                continue;
            }
            // What the database counts must be in the partial file; otherwise the file starts over (a transfer
            // of an older hub kept it in `blob_chunks`). A file moved into place by a completion that a crash
            // cut before its record is recognised by its hash.
            if len_of(&self.partial_path(&hash))?.is_some_and(|on_disk| on_disk >= received) {
                states.push(BlobState { hash, received });
                continue;
            }
            if len_of(&self.complete_path(&hash))?.is_some()
                && self.file_digest(&self.complete_path(&hash)).await?.1 == hex_digest(&hash)
            {
                sqlx::query("UPDATE blobs SET complete = 1, received = size WHERE hash = $1 AND complete = 0")
                    .bind(&hash)
                    .execute(&self.pool)
                    .await?;
                continue;
            }
            self.reset_locked(&hash).await?;
            states.push(BlobState { hash, received: 0 });
        }
        Ok(states)
    }

    fn partial_path(&self, hash: &str) -> PathBuf {
        self.blob_dir.join("partial").join(hash)
    }

    fn complete_path(&self, hash: &str) -> PathBuf {
        self.blob_dir.join(&hash[..2]).join(hash)
    }

    /// Appends pieces: written to their files and fsynced, then recorded in one transaction. Each goes at its
    /// `pos`, which must equal the bytes of its file received so far.
    pub async fn append_blobs(&self, pieces: Vec<BlobPiece>) -> Result<()> {
        let _one_at_a_time = self.appending.lock().await;
        // Where each file stands in the database, checked before anything is written.
        let mut expected: HashMap<String, u64> = HashMap::new();
        for p in &pieces {
            if !datum_shared::sync::wire::is_blob_hash(&p.hash) {
                return Err(StoreError::Invalid(format!("{:?} is not a file's SHA-256", p.hash)));
            }
            let next = match expected.get(&p.hash) {
                Some(next) => *next,
                None => {
                    let row = sqlx::query("SELECT received FROM blobs WHERE hash = $1 AND complete = 0")
                        .bind(&p.hash)
                        .fetch_optional(&self.pool)
                        .await?;
                    match row {
                        Some(r) => r.try_get::<i64, _>(0)? as u64,
                        None => {
                            return Err(StoreError::Invalid(format!("file {}: not wanted or already complete", p.hash)))
                        }
                    }
                }
            };
            if next != p.pos {
                return Err(StoreError::Invalid(format!(
                    "file {}: piece at {} does not continue what is stored ({next} bytes)",
                    p.hash, p.pos
                )));
            }
            expected.insert(p.hash.clone(), p.pos + p.bytes.len() as u64);
        }
        let dir = self.blob_dir.join("partial");
        let paths: Vec<PathBuf> = pieces.iter().map(|p| self.partial_path(&p.hash)).collect();
        let pieces = blocking("store file pieces".into(), move || {
            create_dir_durable(&dir, 2)?;
            let mut files: HashMap<&PathBuf, PartialFile> = HashMap::new();
            let mut aligned = AlignedBuffer::default();
            for (p, path) in pieces.iter().zip(&paths) {
                let file = match files.entry(path) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        // A file is made by its first piece only; a later piece continues one that holds at
                        // least what the database counts.
                        let file =
                            std::fs::OpenOptions::new().create(p.pos == 0).truncate(false).write(true).open(path)?;
                        if file.metadata()?.len() < p.pos {
                            return Err(std::io::Error::other(format!(
                                "{} holds less than the {} bytes recorded",
                                path.display(),
                                p.pos
                            )));
                        }
                        // Bytes past what the database counts are from a batch a crash cut before its commit.
                        file.set_len(p.pos)?;
                        e.insert(PartialFile { direct: open_direct(path), buffered: file })
                    }
                };
                file.write_at(p.pos, &p.bytes, &mut aligned)?;
            }
            for file in files.values() {
                file.buffered.sync_data()?;
            }
            sync_dir(&dir)?;
            Ok(pieces)
        })
        .await?;
        let mut tx = self.begin_write().await?;
        for p in &pieces {
            append_in(&mut tx, &p.hash, p.pos, p.total, p.bytes.len() as u64).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The size of a completely stored file that belongs to a site (its documents refer to it; identical files
    /// of two sites are stored once). `None` otherwise.
    pub async fn site_blob_size(&self, site_id: &SiteId, hash: &str) -> Result<Option<u64>> {
        if !datum_shared::sync::wire::is_blob_hash(hash) {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT b.size FROM blobs b JOIN blob_sites s ON s.hash = b.hash
             WHERE b.hash = $1 AND s.site_id = $2 AND b.complete = 1",
        )
        .bind(hash)
        .bind(site_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok(r.try_get::<i64, _>(0)? as u64)).transpose()
    }

    /// Up to `BLOB_CHUNK` bytes of a stored file from `pos` (`None` past its end). The file is read a piece at
    /// a time, so that a file of a gigabyte is never held whole.
    pub async fn blob_piece(&self, hash: &str, pos: u64) -> Result<Option<Vec<u8>>> {
        if !datum_shared::sync::wire::is_blob_hash(hash) {
            return Ok(None);
        }
        // Only complete files are read this way (they were checked against their name when they were kept).
        // `None`: no file (an older hub may hold it in its database); `Some(None)`: past the file's end.
        let path = self.complete_path(hash);
        let read = blocking(format!("read {}", path.display()), move || {
            use std::io::{Read, Seek, SeekFrom};
            let mut file = match std::fs::File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            if pos >= file.metadata()?.len() {
                return Ok(Some(None));
            }
            file.seek(SeekFrom::Start(pos))?;
            let mut piece = Vec::with_capacity(BLOB_CHUNK);
            file.take(BLOB_CHUNK as u64).read_to_end(&mut piece)?;
            Ok(Some(Some(piece)))
        })
        .await?;
        if let Some(answer) = read {
            return Ok(answer);
        }
        // A file an older hub kept in its database.
        let row = sqlx::query("SELECT bytes FROM blob_chunks WHERE hash = $1 AND pos = $2")
            .bind(hash)
            .bind(pos as i64)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok(r.try_get(0)?)).transpose()
    }

    /// SHA-256 and length of what is received of a file not yet complete (its partial file), read in pieces.
    pub async fn blob_digest(&self, hash: &str) -> Result<(u64, [u8; 32])> {
        if !datum_shared::sync::wire::is_blob_hash(hash) {
            return Err(StoreError::Invalid(format!("{hash:?} is not a file's SHA-256")));
        }
        self.file_digest(&self.partial_path(hash)).await
    }

    /// Length and SHA-256 of a file (0 and the empty digest when it does not exist).
    async fn file_digest(&self, path: &std::path::Path) -> Result<(u64, [u8; 32])> {
        let path = path.to_path_buf();
        blocking(format!("read {}", path.display()), move || {
            use std::io::Read;
            let mut hasher = Sha256::new();
            let mut len = 0u64;
            let mut file = match std::fs::File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, hasher.finalize().into())),
                Err(e) => return Err(e),
            };
            let mut buf = vec![0u8; BLOB_CHUNK];
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                len += n as u64;
            }
            Ok((len, hasher.finalize().into()))
        })
        .await
    }

    /// A file received whole and verified (its partial file hashed to its name): moved into place, then
    /// recorded complete. A copy already in place (another site's, or a completion a crash cut before its
    /// record) is kept and the partial file dropped.
    pub async fn complete_blob(&self, hash: &str) -> Result<()> {
        if !datum_shared::sync::wire::is_blob_hash(hash) {
            return Err(StoreError::Invalid(format!("{hash:?} is not a file's SHA-256")));
        }
        let _one_at_a_time = self.appending.lock().await;
        let (partial, complete) = (self.partial_path(hash), self.complete_path(hash));
        let legacy = sqlx::query("SELECT COUNT(*) FROM blob_chunks WHERE hash = $1")
            .bind(hash)
            .fetch_one(&self.pool)
            .await?
            .try_get::<i64, _>(0)?
            > 0;
        blocking(format!("store {}", partial.display()), move || {
            let dir = complete.parent().expect("blob paths have a parent");
            create_dir_durable(dir, 2)?;
            if complete.exists() {
                match std::fs::remove_file(&partial) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => return Ok(()),
                }
            }
            match std::fs::rename(&partial, &complete) {
                Ok(()) => {
                    sync_dir(dir)?;
                    sync_dir(partial.parent().expect("blob paths have a parent"))
                }
                // A file an older hub received into its database has no file.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && legacy => Ok(()),
                Err(e) => Err(e),
            }
        })
        .await?;
        sqlx::query("UPDATE blobs SET complete = 1 WHERE hash = $1 AND received = size")
            .bind(hash)
            .execute(&self.pool)
            .await?;
        let complete = sqlx::query("SELECT complete FROM blobs WHERE hash = $1")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get::<i64, _>(0))
            .transpose()?;
        if complete != Some(1) {
            return Err(StoreError::Invalid(format!("file {hash} is not completely received")));
        }
        Ok(())
    }

    /// A damaged transfer starts over.
    pub async fn reset_blob(&self, hash: &str) -> Result<()> {
        let _one_at_a_time = self.appending.lock().await;
        self.reset_locked(hash).await
    }

    /// `reset_blob` under the append lock. A file recorded complete meanwhile is left alone.
    async fn reset_locked(&self, hash: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("UPDATE blobs SET received = 0 WHERE hash = $1 AND complete = 0")
            .bind(hash)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(());
        }
        sqlx::query("DELETE FROM blob_chunks WHERE hash = $1").bind(hash).execute(&mut *tx).await?;
        tx.commit().await?;
        for path in [self.partial_path(hash), self.complete_path(hash)] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(StoreError::Io { context: format!("remove {}", path.display()), source }),
            }
        }
        Ok(())
    }

    /// Every file a site references, with whether the hub holds it whole, in hash order.
    pub async fn site_blobs(&self, site_id: &SiteId) -> Result<Vec<(String, bool)>> {
        let rows = sqlx::query(
            "SELECT b.hash, b.complete FROM blobs b JOIN blob_sites s ON s.hash = b.hash
             WHERE s.site_id = $1 ORDER BY b.hash",
        )
        .bind(site_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get::<i64, _>(1)? != 0))).collect()
    }

    /// A complete stored file's bytes, read piece by piece; `None` when the hub does not hold it whole or it is
    /// longer than `limit` (nothing larger is read into memory).
    pub async fn read_blob(&self, hash: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let mut bytes = Vec::new();
        while let Some(piece) = self.blob_piece(hash, bytes.len() as u64).await? {
            if piece.is_empty() {
                break;
            }
            bytes.extend_from_slice(&piece);
            if bytes.len() as u64 > limit {
                return Ok(None);
            }
        }
        // No piece at all: no bytes held, unless the file is the empty one.
        Ok((!bytes.is_empty() || hash == EMPTY_SHA256).then_some(bytes))
    }

    /// Re-hashes a complete stored file piece by piece: `Some(true)` when its bytes still hash to its name,
    /// `None` when the hub holds no bytes for it.
    pub async fn check_blob(&self, hash: &str) -> Result<Option<bool>> {
        let mut hasher = Sha256::new();
        let mut pos = 0u64;
        let mut any = false;
        while let Some(piece) = self.blob_piece(hash, pos).await? {
            if piece.is_empty() {
                break;
            }
            any = true;
            hasher.update(&piece);
            pos += piece.len() as u64;
        }
        Ok((any || hash == EMPTY_SHA256).then(|| hex::encode(hasher.finalize()) == hash))
    }

    /// (files complete, files incomplete, bytes complete) of a site.
    pub async fn blob_counts(&self, site_id: &SiteId) -> Result<(i64, i64, i64)> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(b.complete), 0) AS BIGINT), CAST(COALESCE(SUM(1 - b.complete), 0) AS BIGINT),
                    CAST(COALESCE(SUM(b.size * b.complete), 0) AS BIGINT)
             FROM blobs b JOIN blob_sites s ON s.hash = b.hash WHERE s.site_id = $1",
        )
        .bind(site_id.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
    }
}

/// The SHA-256 of no bytes: a file that is held even though no piece of it can be read.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// File work on a blocking thread, its errors named by `context`.
async fn blocking<T: Send + 'static>(
    context: String,
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(done) => done.map_err(|source| StoreError::Io { context, source }),
        Err(e) => Err(StoreError::Invalid(format!("{context}: {e}"))),
    }
}

/// A partial file open twice: through the page cache, and with `O_DIRECT` where the file system allows it.
/// Whole aligned pieces (all but a file's last) go straight to the device: through the page cache every byte was
/// copied by the kernel and written back at the fsync, the largest cost of a first sync at the hub
/// (docs/PERFORMANCE.md). The fsync of the buffered handle makes both durable (it syncs the file).
struct PartialFile {
    direct: Option<std::fs::File>,
    buffered: std::fs::File,
}

/// `O_DIRECT` wants the memory, the offset and the length aligned to the device's block size.
const DIRECT_ALIGN: usize = 4096;

impl PartialFile {
    fn write_at(&self, pos: u64, bytes: &[u8], aligned: &mut AlignedBuffer) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let whole_blocks =
            pos.is_multiple_of(DIRECT_ALIGN as u64) && bytes.len().is_multiple_of(DIRECT_ALIGN) && !bytes.is_empty();
        if let (Some(direct), true) = (&self.direct, whole_blocks) {
            match direct.write_all_at(aligned.holding(bytes), pos) {
                Ok(()) => return Ok(()),
                // A file system that takes the open but not the write: the page cache it is.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                Err(e) => return Err(e),
            }
        }
        self.buffered.write_all_at(bytes, pos)
    }
}

fn open_direct(path: &std::path::Path) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(path).ok()
}

/// A buffer whose slice starts on a `DIRECT_ALIGN` boundary (a larger vector, used from its first aligned byte).
#[derive(Default)]
struct AlignedBuffer(Vec<u8>);

impl AlignedBuffer {
    fn holding(&mut self, bytes: &[u8]) -> &[u8] {
        if self.0.len() < bytes.len() + DIRECT_ALIGN {
            self.0 = vec![0; bytes.len() + DIRECT_ALIGN];
        }
        let start = self.0.as_ptr().align_offset(DIRECT_ALIGN);
        let slot = &mut self.0[start..start + bytes.len()];
        slot.copy_from_slice(bytes);
        slot
    }
}

/// The length of a file, `None` when it does not exist (any other error is one).
fn len_of(path: &std::path::Path) -> Result<Option<u64>> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(Some(meta.len())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StoreError::Io { context: format!("stat {}", path.display()), source }),
    }
}

/// The SHA-256 a file's name states.
fn hex_digest(hash: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    let _ = hex::decode_to_slice(hash, &mut out);
    out
}

/// One piece recorded inside a transaction (its bytes are in the file already).
async fn append_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    hash: &str,
    pos: u64,
    total: u64,
    len: u64,
) -> Result<()> {
    let n = sqlx::query("UPDATE blobs SET received = $2, size = $3 WHERE hash = $1 AND received = $4 AND complete = 0")
        .bind(hash)
        .bind((pos + len) as i64)
        .bind(total as i64)
        .bind(pos as i64)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if n != 1 {
        return Err(StoreError::Invalid(format!("file {hash}: piece at {pos} does not continue what is stored")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(hash: &str, pos: u64, total: u64, bytes: &[u8]) -> BlobPiece {
        BlobPiece { hash: hash.to_string(), pos, total, bytes: bytes.to_vec() }
    }

    /// A crash between writing a batch to a file and recording it leaves the partial file longer than the
    /// database says: the next piece cuts it back, and the file completes whole. A piece that does not continue
    /// what is recorded changes nothing.
    #[tokio::test]
    async fn a_partial_file_longer_than_recorded_is_cut_back_and_the_file_completes() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(None, &dir.path().join("hub.db"), true).await.expect("open");
        let content: Vec<u8> = (0..3000u32).flat_map(|i| i.to_le_bytes()).collect();
        let hash = hex::encode(Sha256::digest(&content));
        let total = content.len() as u64;
        let site = SiteId::new("0123456789abcdef").expect("site id");
        let wants = store.want_blobs(&site, std::slice::from_ref(&hash)).await.expect("want");
        assert_eq!(wants.iter().map(|w| w.received).collect::<Vec<_>>(), [0]);

        store.append_blobs(vec![piece(&hash, 0, total, &content[..5000])]).await.expect("append");
        let partial = dir.path().join("blobs/partial").join(&hash);
        assert_eq!(std::fs::metadata(&partial).expect("partial").len(), 5000);
        // What a crash after the write and before the commit leaves behind.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&partial)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &[0x5a; 777]))
            .expect("lengthen");
        let wants = store.want_blobs(&site, std::slice::from_ref(&hash)).await.expect("want");
        assert_eq!(wants.iter().map(|w| w.received).collect::<Vec<_>>(), [5000], "resumes from the record");

        let gap = store.append_blobs(vec![piece(&hash, 6000, total, &content[6000..])]).await;
        assert!(matches!(gap, Err(StoreError::Invalid(_))), "{gap:?}");
        assert_eq!(std::fs::metadata(&partial).expect("partial").len(), 5777, "a refused piece writes nothing");

        store.append_blobs(vec![piece(&hash, 5000, total, &content[5000..])]).await.expect("append");
        assert_eq!(store.blob_digest(&hash).await.expect("digest"), (total, Sha256::digest(&content).into()));
        store.complete_blob(&hash).await.expect("complete");
        assert!(!partial.exists());
        assert_eq!(store.site_blob_size(&site, &hash).await.expect("size"), Some(total));
        assert_eq!(store.blob_piece(&hash, 4096).await.expect("piece"), Some(content[4096..].to_vec()));
        assert_eq!(store.blob_piece(&hash, total).await.expect("piece"), None);
    }

    /// Whole aligned pieces go through `O_DIRECT`, a last short piece through the page cache; the file reads
    /// back whole either way.
    #[tokio::test]
    async fn aligned_pieces_and_a_short_tail_make_the_whole_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(None, &dir.path().join("hub.db"), true).await.expect("open");
        let content: Vec<u8> = (0..(3 * DIRECT_ALIGN + 123) as u32).map(|i| (i * 7 % 251) as u8).collect();
        let hash = hex::encode(Sha256::digest(&content));
        let total = content.len() as u64;
        let site = SiteId::new("0123456789abcdef").expect("site id");
        store.want_blobs(&site, std::slice::from_ref(&hash)).await.expect("want");
        let a = 2 * DIRECT_ALIGN;
        store.append_blobs(vec![piece(&hash, 0, total, &content[..a])]).await.expect("append");
        store
            .append_blobs(vec![
                piece(&hash, a as u64, total, &content[a..a + DIRECT_ALIGN]),
                piece(&hash, (a + DIRECT_ALIGN) as u64, total, &content[a + DIRECT_ALIGN..]),
            ])
            .await
            .expect("append");
        assert_eq!(store.blob_digest(&hash).await.expect("digest"), (total, Sha256::digest(&content).into()));
        store.complete_blob(&hash).await.expect("complete");
        assert_eq!(std::fs::read(dir.path().join("blobs").join(&hash[..2]).join(&hash)).expect("file"), content);
    }

    /// A completion a crash cut between moving the file into place and recording it: the next want finds the
    /// file by its hash and records it complete, instead of deleting it and asking again. A reset (another
    /// site's failed copy of the same file) never removes a file recorded complete.
    #[tokio::test]
    async fn a_file_moved_into_place_but_not_recorded_is_recognised_and_kept() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(None, &dir.path().join("hub.db"), true).await.expect("open");
        let content = b"hostname edge-7\ninterface ge-0/0/1\n".repeat(100);
        let hash = hex::encode(Sha256::digest(&content));
        let total = content.len() as u64;
        let site = SiteId::new("0123456789abcdef").expect("site id");
        store.want_blobs(&site, std::slice::from_ref(&hash)).await.expect("want");
        store.append_blobs(vec![piece(&hash, 0, total, &content)]).await.expect("append");
        // The rename of `complete_blob`, without its record.
        let complete = dir.path().join("blobs").join(&hash[..2]).join(&hash);
        std::fs::create_dir_all(complete.parent().expect("dir")).expect("mkdir");
        std::fs::rename(dir.path().join("blobs/partial").join(&hash), &complete).expect("rename");

        let wants = store.want_blobs(&site, std::slice::from_ref(&hash)).await.expect("want");
        assert!(wants.is_empty(), "{wants:?}");
        assert_eq!(store.site_blob_size(&site, &hash).await.expect("size"), Some(total));
        store.reset_blob(&hash).await.expect("reset");
        assert_eq!(std::fs::read(&complete).expect("kept"), content);
        assert_eq!(store.site_blob_size(&site, &hash).await.expect("size"), Some(total));
    }
}
