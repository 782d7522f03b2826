//! The content-addressed blob store: configuration files, identified by SHA-256, zstd-compressed,
//! deduplicated, verified on every read.
//!
//! One file per blob under `blobs/<aa>/<sha256>`. Successive versions of one artifact are stored as a zstd
//! delta against an earlier content (zstd's "patch-from": that content is the reference prefix), so a year of
//! daily captures costs a year of differences, not of copies. The caller offers candidate bases (the slot's
//! last versions, or similar slots' latest for a new slot); the store keeps the smallest result. A base may
//! thus belong to another asset of the site: blobs are never deleted, and a damaged base makes every delta
//! above it unreadable (reported as damage, as within one slot). A file is written to `blobs/tmp`,
//! fsynced, renamed into place and the directory fsynced: a crash leaves either no blob or a whole one.
//!
//! Blob file layouts (a header, then one zstd frame). Both are read; which one a blob has is told by its first
//! bytes.
//! - Compact (written for every file compressed in memory, i.e. up to `DELTA_MAX_BYTES`): `"DBL2"` | format u8
//!   (1 = full, 2 = delta) | raw size as unsigned LEB128 (at most 10 bytes) | for a delta only: depth u8 and the
//!   base's SHA-256 (32 bytes) | zstd frame without its 4-byte magic number and without the content size field
//!   (the header holds the size; zstd's "magicless" frame format). A full copy of a 100 KB file has an 8-byte
//!   header, a delta 41.
//! - First (`"DATUMBL1"`, written for streamed files, whose size is known only at the end; the 64-byte header
//!   is written last, in place): `"DATUMBL1"` | format u8 | 7 zero bytes | raw size u64 LE | delta depth u32 LE
//!   | 4 zero bytes | base SHA-256 (32 bytes, zero for full) | zstd frame.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use datum_host::fs::{create_dir_durable, sync_dir, tempfile_in};
use sha2::{Digest, Sha256};

const MAGIC_FIRST: &[u8; 8] = b"DATUMBL1";
const FIRST_HEADER_LEN: usize = 64;
const MAGIC_COMPACT: &[u8; 4] = b"DBL2";
/// The longest header of either layout: what is read to decode one.
const MAX_HEADER_LEN: usize = 64;
/// The magic number every zstd frame starts with; left out of compact blobs and put back when reading.
const ZSTD_MAGIC: [u8; 4] = 0xFD2F_B528u32.to_le_bytes();
const FORMAT_FULL: u8 = 1;
const FORMAT_DELTA: u8 = 2;

/// Files up to this size are compressed in memory and may be stored as deltas; larger ones are streamed.
pub const DELTA_MAX_BYTES: u64 = 32 * 1024 * 1024;
/// Longest chain of deltas before a full copy is stored again (bounds read cost).
pub const MAX_DELTA_DEPTH: u32 = 32;
/// Largest file accepted at all.
pub const MAX_BLOB_BYTES: u64 = 1024 * 1024 * 1024;
const STREAM_CHUNK: usize = 1024 * 1024;
/// Most delta bases tried for one blob: each costs a read of the base and a compression.
pub const MAX_BASE_CANDIDATES: usize = 4;
/// Only files up to this size try several delta bases.
const MULTI_BASE_MAX_BYTES: usize = 1024 * 1024;
/// Up to this size, candidate bases are compared at the final level (milliseconds); above it, at level 3.
const TRIAL_AT_FULL_LEVEL_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob {hash} is missing from the store")]
    Missing { hash: String },
    #[error("blob {hash} is damaged: {detail}")]
    Damaged { hash: String, detail: String },
    #[error("{path}: file is {size} bytes; the limit is {MAX_BLOB_BYTES}")]
    TooLarge { path: String, size: u64 },
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> BlobError {
    let context = context.into();
    move |source| BlobError::Io { context, source }
}

/// What a `put` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub hash: String,
    pub size: u64,
    /// Bytes the blob file occupies (0 when it already existed).
    pub stored_bytes: u64,
    pub delta_base: Option<String>,
    /// False when identical content was already stored.
    pub new: bool,
}

struct Header {
    format: u8,
    raw_size: u64,
    depth: u32,
    base: [u8; 32],
    /// The compact layout: the zstd frame after the header lacks its magic number.
    compact: bool,
}

impl Header {
    fn full(raw_size: u64) -> Header {
        Header { format: FORMAT_FULL, raw_size, depth: 0, base: [0; 32], compact: true }
    }

    /// A reader of the zstd frame that follows this header in `file` (positioned after the header).
    fn frame_reader(&self, file: File) -> io::Chain<&'static [u8], BufReader<File>> {
        let magic: &'static [u8] = if self.compact { &ZSTD_MAGIC } else { &[] };
        magic.chain(BufReader::new(file))
    }

    /// The compact layout (see the module documentation).
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_HEADER_LEN);
        out.extend_from_slice(MAGIC_COMPACT);
        out.push(self.format);
        let mut size = self.raw_size;
        loop {
            let low = (size & 0x7f) as u8;
            size >>= 7;
            if size == 0 {
                out.push(low);
                break;
            }
            out.push(low | 0x80);
        }
        if self.format == FORMAT_DELTA {
            out.push(u8::try_from(self.depth).unwrap_or(u8::MAX));
            out.extend_from_slice(&self.base);
        }
        out
    }

    /// The first layout, fixed at 64 bytes: for streamed blobs, whose header is written once the size is known.
    fn encode_first(&self) -> [u8; FIRST_HEADER_LEN] {
        let mut out = [0u8; FIRST_HEADER_LEN];
        out[..8].copy_from_slice(MAGIC_FIRST);
        out[8] = self.format;
        out[16..24].copy_from_slice(&self.raw_size.to_le_bytes());
        out[24..28].copy_from_slice(&self.depth.to_le_bytes());
        out[32..64].copy_from_slice(&self.base);
        out
    }

    /// Decodes a header of either layout from the start of a blob file (`bytes`: its first `MAX_HEADER_LEN`
    /// bytes, or the whole file when shorter). Returns the header and its length, or None for anything else.
    fn decode(bytes: &[u8]) -> Option<(Header, usize)> {
        if bytes.len() >= FIRST_HEADER_LEN && &bytes[..8] == MAGIC_FIRST {
            let format = bytes[8];
            if !matches!(format, FORMAT_FULL | FORMAT_DELTA) {
                return None;
            }
            let raw_size = u64::from_le_bytes(bytes[16..24].try_into().ok()?);
            let depth = u32::from_le_bytes(bytes[24..28].try_into().ok()?);
            let base: [u8; 32] = bytes[32..64].try_into().ok()?;
            return Some((Header { format, raw_size, depth, base, compact: false }, FIRST_HEADER_LEN));
        }
        let rest = bytes.strip_prefix(MAGIC_COMPACT)?;
        let (&format, rest) = rest.split_first()?;
        if !matches!(format, FORMAT_FULL | FORMAT_DELTA) {
            return None;
        }
        let mut raw_size = 0u64;
        let mut used = 0;
        loop {
            let &byte = rest.get(used)?;
            // Ten 7-bit groups hold a u64; a longer or overflowing number is damage.
            if used == 10 || (used == 9 && byte > 1) {
                return None;
            }
            raw_size |= u64::from(byte & 0x7f) << (7 * used);
            used += 1;
            if byte & 0x80 == 0 {
                break;
            }
        }
        let mut len = MAGIC_COMPACT.len() + 1 + used;
        if format == FORMAT_FULL {
            return Some((Header::full(raw_size), len));
        }
        let depth = u32::from(*bytes.get(len)?);
        let base: [u8; 32] = bytes.get(len + 1..len + 33)?.try_into().ok()?;
        len += 33;
        Some((Header { format, raw_size, depth, base, compact: true }, len))
    }
}

#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

pub fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl BlobStore {
    pub fn open(root: PathBuf) -> Result<BlobStore, BlobError> {
        fs::create_dir_all(root.join("tmp")).map_err(io_err(format!("create {}", root.display())))?;
        Ok(BlobStore { root })
    }

    pub fn path(&self, hash: &str) -> PathBuf {
        self.root.join(&hash[..2]).join(hash)
    }

    pub fn contains(&self, hash: &str) -> bool {
        is_hash(hash) && self.path(hash).is_file()
    }

    /// Stores a file from disk. `bases` are candidate delta bases, best guess first (see `put_bytes`).
    pub fn put_file(&self, path: &Path, bases: &[&str]) -> Result<Stored, BlobError> {
        let shown = path.display().to_string();
        let size = fs::metadata(path).map_err(io_err(format!("read {shown}")))?.len();
        if size > MAX_BLOB_BYTES {
            return Err(BlobError::TooLarge { path: shown, size });
        }
        if size <= DELTA_MAX_BYTES {
            let bytes = fs::read(path).map_err(io_err(format!("read {shown}")))?;
            return self.put_bytes(&bytes, bases);
        }
        self.put_stream(File::open(path).map_err(io_err(format!("open {shown}")))?, &shown)
    }

    /// Stores bytes held in memory. `bases` are the blobs this content may be stored as a delta of, best guess
    /// first (the previous versions of the same slot, or for a new slot the latest versions of similar ones):
    /// the one giving the smallest delta is used, or none when a full copy is smaller. Unusable candidates
    /// (missing, damaged, at the end of a long chain) are skipped: they are no reason to refuse a backup.
    pub fn put_bytes(&self, bytes: &[u8], bases: &[&str]) -> Result<Stored, BlobError> {
        let hash = hex::encode(Sha256::digest(bytes));
        let size = bytes.len() as u64;
        // An existing blob is only trusted after it verifies: capturing the same bytes again repairs a
        // damaged copy instead of hiding it behind "unchanged".
        if self.contains(&hash) && self.verify(&hash).is_ok() {
            return Ok(Stored { hash, size, stored_bytes: 0, delta_base: None, new: false });
        }
        // Small files (most configurations) get zstd's strongest level: at most a few hundred milliseconds
        // for a 1 MiB file (level 22 keeps ~0.2 % more off the kit's version series than 19; its large windows
        // shrink to the file's size). Large ones get a fast level so a capture stays well ahead of `git add`.
        let level = if size <= 1024 * 1024 { 22 } else { 3 };
        let delta = if size <= DELTA_MAX_BYTES { self.best_delta(bytes, bases, level)? } else { None };
        // A delta that is small against the raw size is kept without trying a full compression; otherwise the
        // content changed a lot and a full copy may well be smaller (and shortens the chain).
        let full = match &delta {
            Some((frame, _, _)) if (frame.len() as u64) * 8 < size => None,
            _ => Some(compress_full(bytes, level).map_err(io_err("compress"))?),
        };
        let use_delta = match (&delta, &full) {
            (Some((frame, _, _)), Some(full)) => frame.len() < full.len(),
            (Some(_), None) => true,
            (None, _) => false,
        };
        let (frame, header, delta_base) = match (delta, full) {
            (Some((frame, depth, base_hash)), _) if use_delta => {
                let mut base_raw = [0u8; 32];
                hex::decode_to_slice(&base_hash, &mut base_raw)
                    .map_err(|e| BlobError::Damaged { hash: base_hash.clone(), detail: e.to_string() })?;
                let header = Header { format: FORMAT_DELTA, raw_size: size, depth, base: base_raw, compact: true };
                (frame, header, Some(base_hash))
            }
            (_, Some(full)) => (full, Header::full(size), None),
            (_, None) => unreachable!("a full frame is made whenever the delta is not used"),
        };
        let frame = frame.strip_prefix(&ZSTD_MAGIC[..]).ok_or_else(|| BlobError::Io {
            context: "compress".into(),
            source: io::Error::other("zstd made a frame without its magic number"),
        })?;
        let stored_bytes = self.write_atomically(&hash, |file| {
            file.write_all(&header.encode())?;
            file.write_all(frame)
        })?;
        Ok(Stored { hash, size, stored_bytes, delta_base, new: true })
    }

    /// The smallest delta of `bytes` against one of `bases`: (frame, depth, base hash). With several usable
    /// candidates each is tried at a level that is cheap for the size, and the winner compressed again at
    /// `level`; a delta is only ever made against content that was read back and verified.
    fn best_delta(
        &self,
        bytes: &[u8],
        bases: &[&str],
        level: i32,
    ) -> Result<Option<(Vec<u8>, u32, String)>, BlobError> {
        // Large files try only the first candidate: trials would cost seconds and hold several bases in memory.
        let max_candidates = if bytes.len() <= MULTI_BASE_MAX_BYTES { MAX_BASE_CANDIDATES } else { 1 };
        let mut usable: Vec<(&str, u32)> = Vec::new();
        for &base in bases {
            if usable.len() == max_candidates || !is_hash(base) || usable.iter().any(|(b, _)| *b == base) {
                continue;
            }
            let Ok(header) = self.header(base) else { continue };
            if header.depth < MAX_DELTA_DEPTH && header.raw_size <= DELTA_MAX_BYTES {
                usable.push((base, header.depth));
            }
        }
        let trial_level = if usable.len() == 1 || bytes.len() <= TRIAL_AT_FULL_LEVEL_BYTES { level } else { 3 };
        // (frame at trial level, base content, depth, hash) of the best candidate so far.
        let mut best: Option<(Vec<u8>, Vec<u8>, u32, &str)> = None;
        for (base, depth) in usable {
            let Ok(base_bytes) = self.read(base) else { continue };
            let frame = compress_with_prefix(bytes, &base_bytes, trial_level).map_err(io_err("compress delta"))?;
            if best.as_ref().is_none_or(|(f, _, _, _)| frame.len() < f.len()) {
                best = Some((frame, base_bytes, depth, base));
            }
        }
        let Some((frame, base_bytes, depth, base)) = best else { return Ok(None) };
        let frame = if trial_level == level {
            frame
        } else {
            compress_with_prefix(bytes, &base_bytes, level).map_err(io_err("compress delta"))?
        };
        Ok(Some((frame, depth + 1, base.to_string())))
    }

    fn put_stream(&self, mut input: File, shown: &str) -> Result<Stored, BlobError> {
        let tmp = tempfile_in(&self.root.join("tmp")).map_err(io_err("create temporary blob"))?;
        let (mut file, tmp_path) = tmp;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        file.write_all(&[0u8; FIRST_HEADER_LEN]).map_err(io_err("write blob"))?;
        let mut encoder = zstd::stream::write::Encoder::new(&mut file, 3).map_err(io_err("compress"))?;
        // zstd compresses on its own worker threads while this thread reads and hashes the next chunks: the
        // capture costs about the compression's wall time spread over the cores, not read + hash + compress.
        encoder.multithread(stream_workers()).map_err(io_err("compress"))?;
        let mut buf = vec![0u8; STREAM_CHUNK];
        loop {
            let n = input.read(&mut buf).map_err(io_err(format!("read {shown}")))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
            if size > MAX_BLOB_BYTES {
                let _ = fs::remove_file(&tmp_path);
                return Err(BlobError::TooLarge { path: shown.into(), size });
            }
            encoder.write_all(&buf[..n]).map_err(io_err("compress"))?;
        }
        encoder.finish().map_err(io_err("compress"))?;
        let hash = hex::encode(hasher.finalize());
        if self.contains(&hash) && self.verify(&hash).is_ok() {
            let _ = fs::remove_file(&tmp_path);
            return Ok(Stored { hash, size, stored_bytes: 0, delta_base: None, new: false });
        }
        file.seek(SeekFrom::Start(0)).map_err(io_err("write blob"))?;
        file.write_all(&Header::full(size).encode_first()).map_err(io_err("write blob"))?;
        file.sync_all().map_err(io_err("sync blob"))?;
        let stored_bytes = file.metadata().map_err(io_err("stat blob"))?.len();
        drop(file);
        self.install(&tmp_path, &hash)?;
        Ok(Stored { hash, size, stored_bytes, delta_base: None, new: true })
    }

    /// Writes a blob file through a temporary file, fsync and rename. Returns its size.
    fn write_atomically(&self, hash: &str, write: impl FnOnce(&mut File) -> io::Result<()>) -> Result<u64, BlobError> {
        let (mut file, tmp_path) = tempfile_in(&self.root.join("tmp")).map_err(io_err("create temporary blob"))?;
        let result = write(&mut file).and_then(|()| file.sync_all());
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp_path);
            return Err(BlobError::Io { context: "write blob".into(), source: e });
        }
        let len = file.metadata().map_err(io_err("stat blob"))?.len();
        drop(file);
        self.install(&tmp_path, hash)?;
        Ok(len)
    }

    fn install(&self, tmp_path: &Path, hash: &str) -> Result<(), BlobError> {
        let dest = self.path(hash);
        let dir = dest.parent().expect("blob paths have a parent");
        // `blobs/<aa>` is new for the first blob of its prefix: its entry in `blobs/` must be durable too.
        create_dir_durable(dir, 1).map_err(io_err(format!("create {}", dir.display())))?;
        fs::rename(tmp_path, &dest).map_err(io_err(format!("install blob {hash}")))?;
        sync_dir(dir).map_err(io_err("sync blob directory"))?;
        Ok(())
    }

    fn header(&self, hash: &str) -> Result<Header, BlobError> {
        let mut file = self.open_blob(hash)?;
        read_header(&mut file, hash)
    }

    fn open_blob(&self, hash: &str) -> Result<File, BlobError> {
        if !is_hash(hash) {
            return Err(BlobError::Missing { hash: hash.into() });
        }
        File::open(self.path(hash)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => BlobError::Missing { hash: hash.into() },
            _ => BlobError::Io { context: format!("open blob {hash}"), source: e },
        })
    }

    /// The size of a stored file, from its blob's header (not verified: `copy_to` checks it against the content).
    pub fn size(&self, hash: &str) -> Result<u64, BlobError> {
        Ok(self.header(hash)?.raw_size)
    }

    /// Reads a whole blob into memory, verifying its hash. Only for blobs up to `DELTA_MAX_BYTES`.
    pub fn read(&self, hash: &str) -> Result<Vec<u8>, BlobError> {
        let mut out = Vec::new();
        self.copy_to(hash, &mut out, DELTA_MAX_BYTES)?;
        Ok(out)
    }

    /// Streams a blob's content into `out`, verifying size and hash at the end. Fails without a hash match,
    /// so a caller writing a file must only keep it when this returns Ok.
    pub fn copy_to(&self, hash: &str, out: &mut dyn Write, max_in_memory: u64) -> Result<u64, BlobError> {
        let damaged = |detail: String| BlobError::Damaged { hash: hash.into(), detail };
        let mut file = self.open_blob(hash)?;
        let header = read_header(&mut file, hash)?;
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        let mut sink = HashingWriter { inner: out, hasher: &mut hasher, written: &mut written, limit: header.raw_size };
        match header.format {
            FORMAT_FULL => {
                let mut decoder = zstd::stream::read::Decoder::with_buffer(header.frame_reader(file))
                    .map_err(|e| damaged(e.to_string()))?;
                decoder.window_log_max(31).map_err(|e| damaged(e.to_string()))?;
                io::copy(&mut decoder, &mut sink).map_err(|e| damaged(e.to_string()))?;
            }
            _ => {
                if header.raw_size > max_in_memory.max(DELTA_MAX_BYTES) {
                    return Err(damaged("delta header out of range".into()));
                }
                let base = self.resolve_base(hash, &header)?;
                let mut decoder = zstd::stream::read::Decoder::with_ref_prefix(header.frame_reader(file), &base)
                    .map_err(|e| damaged(e.to_string()))?;
                decoder.window_log_max(31).map_err(|e| damaged(e.to_string()))?;
                io::copy(&mut decoder, &mut sink).map_err(|e| damaged(e.to_string()))?;
            }
        }
        if written != header.raw_size {
            return Err(damaged(format!("expected {} bytes, decoded {written}", header.raw_size)));
        }
        let actual = hex::encode(hasher.finalize());
        if actual != hash {
            return Err(damaged(format!("content hashes to {actual}")));
        }
        Ok(written)
    }

    /// The content a delta blob is based on, rebuilt without recursion: the chain of bases is walked first
    /// (bounded by `MAX_DELTA_DEPTH`, refusing a chain that comes back to a blob already on it), then decoded
    /// from its full copy upwards, each step checked against its hash. Headers are data from disk: a blob made
    /// a delta of itself, or two blobs of each other, is damage to report, never a reason to loop.
    fn resolve_base(&self, hash: &str, header: &Header) -> Result<Vec<u8>, BlobError> {
        let damaged = |detail: String| BlobError::Damaged { hash: hash.into(), detail };
        // (hash, header, open file positioned after the header) from the direct base down to a full copy.
        let mut chain: Vec<(String, Header, File)> = Vec::new();
        let mut next = hex::encode(header.base);
        loop {
            if next == hash || chain.iter().any(|(h, _, _)| *h == next) {
                return Err(damaged(format!("its chain of delta bases loops back to {next}")));
            }
            if chain.len() as u32 >= MAX_DELTA_DEPTH {
                return Err(damaged(format!("its chain of delta bases is longer than {MAX_DELTA_DEPTH}")));
            }
            let unreadable = |e: BlobError| damaged(format!("its delta base is unreadable: {e}"));
            let mut file = self.open_blob(&next).map_err(unreadable)?;
            let base_header = read_header(&mut file, &next).map_err(unreadable)?;
            if base_header.raw_size > DELTA_MAX_BYTES {
                return Err(unreadable(BlobError::Damaged {
                    hash: next.clone(),
                    detail: "too large to be a delta base".into(),
                }));
            }
            let full = base_header.format == FORMAT_FULL;
            let after = hex::encode(base_header.base);
            chain.push((next, base_header, file));
            if full {
                break;
            }
            next = after;
        }
        let mut content: Vec<u8> = Vec::new();
        while let Some((base_hash, base_header, file)) = chain.pop() {
            let unreadable = |detail: String| {
                damaged(format!(
                    "its delta base is unreadable: {}",
                    BlobError::Damaged { hash: base_hash.clone(), detail }
                ))
            };
            let mut decoded = Vec::with_capacity(base_header.raw_size as usize);
            let mut hasher = Sha256::new();
            let mut written = 0u64;
            let mut sink = HashingWriter {
                inner: &mut decoded,
                hasher: &mut hasher,
                written: &mut written,
                limit: base_header.raw_size,
            };
            // A full copy decodes against an empty prefix, which is the same as none.
            let prefix: &[u8] = if base_header.format == FORMAT_FULL { &[] } else { &content };
            let decoder = zstd::stream::read::Decoder::with_ref_prefix(base_header.frame_reader(file), prefix);
            let mut decoder = decoder.map_err(|e| unreadable(e.to_string()))?;
            decoder.window_log_max(31).map_err(|e| unreadable(e.to_string()))?;
            io::copy(&mut decoder, &mut sink).map_err(|e| unreadable(e.to_string()))?;
            drop(decoder);
            if written != base_header.raw_size || hex::encode(hasher.finalize()) != base_hash {
                return Err(unreadable("content does not match its hash".into()));
            }
            content = decoded;
        }
        Ok(content)
    }

    /// Writes a blob to `dest` exactly as captured: into a temporary file beside it, verified, fsynced, renamed.
    pub fn export(&self, hash: &str, dest: &Path) -> Result<u64, BlobError> {
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let (file, tmp_path) = tempfile_in(&dir).map_err(io_err(format!("create a file in {}", dir.display())))?;
        let mut writer = io::BufWriter::new(file);
        let result = self.copy_to(hash, &mut writer, DELTA_MAX_BYTES).and_then(|n| {
            let file =
                writer.into_inner().map_err(|e| BlobError::Io { context: "write".into(), source: e.into_error() })?;
            file.sync_all().map_err(io_err("sync"))?;
            Ok(n)
        });
        match result {
            Ok(n) => {
                if let Err(e) = fs::rename(&tmp_path, dest) {
                    let _ = fs::remove_file(&tmp_path);
                    return Err(BlobError::Io { context: format!("write {}", dest.display()), source: e });
                }
                Ok(n)
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp_path);
                Err(e)
            }
        }
    }

    /// Re-reads and re-hashes one blob.
    pub fn verify(&self, hash: &str) -> Result<u64, BlobError> {
        self.copy_to(hash, &mut io::sink(), u64::MAX)
    }

    /// Every blob file in the store.
    pub fn list(&self) -> Result<Vec<String>, BlobError> {
        let mut out = Vec::new();
        for dir in fs::read_dir(&self.root).map_err(io_err("list blobs"))? {
            let dir = dir.map_err(io_err("list blobs"))?;
            let name = dir.file_name().to_string_lossy().to_string();
            if name.len() != 2 || !dir.path().is_dir() {
                continue;
            }
            for file in fs::read_dir(dir.path()).map_err(io_err("list blobs"))? {
                let file = file.map_err(io_err("list blobs"))?;
                let name = file.file_name().to_string_lossy().to_string();
                if is_hash(&name) {
                    out.push(name);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes temporary files a crash may have left behind.
    pub fn clean_tmp(&self) {
        if let Ok(entries) = fs::read_dir(self.root.join("tmp")) {
            for entry in entries.flatten() {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// The raw blob file bytes (for dumps); verified first.
    pub fn raw_file(&self, hash: &str) -> Result<PathBuf, BlobError> {
        self.verify(hash)?;
        Ok(self.path(hash))
    }

    /// Installs a blob file copied from a dump. The caller verifies once all blobs are in (a delta needs its
    /// base).
    pub fn install_raw(&self, hash: &str, file_bytes: &[u8]) -> Result<(), BlobError> {
        if !is_hash(hash) {
            return Err(BlobError::Damaged { hash: hash.into(), detail: "not a SHA-256 name".into() });
        }
        self.write_atomically(hash, |f| f.write_all(file_bytes))?;
        Ok(())
    }
}

/// Reads and decodes a blob's header, leaving `file` positioned at the zstd frame after it.
fn read_header(file: &mut File, hash: &str) -> Result<Header, BlobError> {
    let damaged = |detail: String| BlobError::Damaged { hash: hash.into(), detail };
    let mut buf = [0u8; MAX_HEADER_LEN];
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(damaged(format!("header unreadable: {e}"))),
        }
    }
    let (header, len) = Header::decode(&buf[..filled]).ok_or_else(|| damaged("bad header".into()))?;
    file.seek(SeekFrom::Start(len as u64)).map_err(|e| damaged(format!("header unreadable: {e}")))?;
    Ok(header)
}

/// zstd worker threads for a streamed blob: one per core, at most four (each holds a job's buffers).
fn stream_workers() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4) as u32
}

/// A full copy for the compact layout: one frame without the content size field (the header holds it).
fn compress_full(bytes: &[u8], level: i32) -> io::Result<Vec<u8>> {
    let mut compressor = zstd::bulk::Compressor::new(level)?;
    compressor.include_contentsize(false)?;
    compressor.compress(bytes)
}

/// A delta for the compact layout: `bytes` compressed with `prefix` as zstd's reference prefix.
fn compress_with_prefix(bytes: &[u8], prefix: &[u8], level: i32) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() / 4 + 64);
    let mut encoder = zstd::stream::write::Encoder::with_ref_prefix(&mut out, level, prefix)?;
    encoder.include_contentsize(false)?;
    // The window must reach back over the whole reference, as `zstd --patch-from` arranges.
    let needed = (prefix.len() + bytes.len()).max(1 << 10);
    let window_log = (usize::BITS - needed.leading_zeros()).clamp(10, 27);
    encoder.window_log(window_log)?;
    encoder.long_distance_matching(prefix.len() > 8 * 1024 * 1024)?;
    encoder.set_pledged_src_size(Some(bytes.len() as u64))?;
    encoder.write_all(bytes)?;
    encoder.finish()?;
    Ok(out)
}

struct HashingWriter<'a> {
    inner: &'a mut dyn Write,
    hasher: &'a mut Sha256,
    written: &'a mut u64,
    limit: u64,
}

impl Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Stop a damaged stream from producing more than it claims: memory and disk stay bounded.
        if *self.written + buf.len() as u64 > self.limit {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "decodes to more bytes than recorded"));
        }
        self.inner.write_all(buf)?;
        self.hasher.update(buf);
        *self.written += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, BlobStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path().join("blobs")).expect("open");
        (dir, store)
    }

    /// A rule list of ~70 KB and the same list with one rule more: a small delta of the first.
    fn two_rule_lists() -> (String, String) {
        let v1: String = (0..2_000).map(|i| format!("rule {i} accept from 10.0.{}.0/24\n", i % 256)).collect();
        let v2 = format!("{v1}rule 2000 drop\n");
        (v1, v2)
    }

    #[test]
    fn identical_content_is_stored_once() {
        let (_dir, store) = store();
        let a = store.put_bytes(b"hostname sw1\n", &[]).expect("put");
        let b = store.put_bytes(b"hostname sw1\n", &[]).expect("put");
        assert!(a.new && !b.new);
        assert_eq!(store.list().expect("list"), vec![a.hash.clone()]);
        assert_eq!(store.read(&a.hash).expect("read"), b"hostname sw1\n");
    }

    #[test]
    fn similar_versions_are_stored_as_small_deltas() {
        let (_dir, store) = store();
        let v1: String =
            (0..20_000).map(|i| format!("interface Gi0/{i}\n description port {}\n", i * 7919 % 10007)).collect();
        let v2 = v1.replace("port 42\n", "port 42 changed\n");
        let first = store.put_bytes(v1.as_bytes(), &[]).expect("put");
        let second = store.put_bytes(v2.as_bytes(), &[&first.hash]).expect("put");
        assert_eq!(second.delta_base.as_deref(), Some(first.hash.as_str()));
        assert!(second.stored_bytes < 200, "delta is {} bytes", second.stored_bytes);
        assert_eq!(store.read(&second.hash).expect("read"), v2.as_bytes());
    }

    #[test]
    fn the_smallest_delta_among_the_candidate_bases_is_kept() {
        let (_dir, store) = store();
        let unrelated: String = (0..3_000).map(|i| format!("set system user u{i} class {}\n", i * 31 % 97)).collect();
        let v1: String = (0..3_000).map(|i| format!("interface ge-0/0/{i}\n unit {}\n", i * 7919 % 10007)).collect();
        let v2 = v1.replace("ge-0/0/1500\n", "ge-0/0/1500 changed\n");
        assert_ne!(v1, v2);
        let unrelated = store.put_bytes(unrelated.as_bytes(), &[]).expect("put");
        let first = store.put_bytes(v1.as_bytes(), &[]).expect("put");
        // The better base comes second and a missing one first: order is a guess, the size decides.
        let missing = "0".repeat(64);
        let second =
            store.put_bytes(v2.as_bytes(), &[&missing, &unrelated.hash, &first.hash]).expect("put with candidates");
        assert_eq!(second.delta_base.as_deref(), Some(first.hash.as_str()));
        assert!(second.stored_bytes < 200, "delta is {} bytes", second.stored_bytes);
        assert_eq!(store.read(&second.hash).expect("read"), v2.as_bytes());
    }

    #[test]
    fn a_damaged_candidate_base_is_skipped() {
        let (_dir, store) = store();
        let (v1, v2) = two_rule_lists();
        let first = store.put_bytes(v1.as_bytes(), &[]).expect("put");
        let path = store.path(&first.hash);
        let mut bytes = fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, &bytes).expect("write");
        let second = store.put_bytes(v2.as_bytes(), &[&first.hash]).expect("a damaged base refuses no backup");
        assert_eq!(second.delta_base, None);
        assert_eq!(store.read(&second.hash).expect("read"), v2.as_bytes());
    }

    #[test]
    fn a_delta_whose_base_is_damaged_reads_as_damaged() {
        let (_dir, store) = store();
        let (v1, v2) = two_rule_lists();
        let first = store.put_bytes(v1.as_bytes(), &[]).expect("put");
        let second = store.put_bytes(v2.as_bytes(), &[&first.hash]).expect("put");
        assert_eq!(second.delta_base.as_deref(), Some(first.hash.as_str()));
        let path = store.path(&first.hash);
        let mut bytes = fs::read(&path).expect("read");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x55;
        fs::write(&path, &bytes).expect("write");
        let err = store.read(&second.hash).unwrap_err();
        assert!(matches!(&err, BlobError::Damaged { hash, .. } if *hash == second.hash), "{err}");
    }

    /// Blob files in the first layout (`DATUMBL1`, formats 1 and 2), byte for byte: a full copy and a delta
    /// against it. Whatever the store writes later, these must read.
    #[test]
    fn blobs_of_the_first_format_still_read() {
        let (_dir, store) = store();
        let base_text = b"hostname sw1\ninterface Gi0/1\n description uplink\n!\n";
        let new_text = b"hostname sw1\ninterface Gi0/1\n description uplink to core\n!\n";
        let base_hash = "bd87d1c22368df00fcea296d2f5b10af5f6366282ee09472c051d3f7ec90a0fa";
        let new_hash = "87fc83cb2ea228e45cbabfbedc6ccb13379d87171472a62497996eb23f6038cb";
        let full_file = concat!(
            // "DATUMBL1", format 1 (full), raw size 51, depth 0, no base
            "444154554d424c31010000000000000033000000000000000000000000000000",
            "0000000000000000000000000000000000000000000000000000000000000000",
            // the zstd frame (level 19)
            "28b52ffd2033990100686f73746e616d65207377310a696e74657266616365204769302f310a20646573637269",
            "7074696f6e2075706c696e6b0a210a"
        );
        let delta_file = concat!(
            // "DATUMBL1", format 2 (delta), raw size 59, depth 1, base = the full copy above
            "444154554d424c3102000000000000003b000000000000000100000000000000",
            "bd87d1c22368df00fcea296d2f5b10af5f6366282ee09472c051d3f7ec90a0fa",
            // the zstd frame, compressed with the base as its reference prefix (`zstd --patch-from`)
            "28b52ffd203b9d0000606820746f20636f72650a210a0100d8480901"
        );
        store.install_raw(base_hash, &hex::decode(full_file).expect("hex")).expect("install");
        store.install_raw(new_hash, &hex::decode(delta_file).expect("hex")).expect("install");
        assert_eq!(store.read(base_hash).expect("full copy reads"), base_text);
        assert_eq!(store.read(new_hash).expect("delta reads"), new_text);
        assert_eq!(store.verify(new_hash).expect("verify"), new_text.len() as u64);
    }

    /// The compact layout, byte for byte: a full copy has an 8-byte header here, a delta the 33 bytes of its
    /// depth and base more; both read back, and a streamed blob still gets the first layout.
    #[test]
    fn compact_headers_are_short_and_pinned() {
        let (_dir, store) = store();
        let (v1, v2) = two_rule_lists();
        let first = store.put_bytes(v1.as_bytes(), &[]).expect("put");
        let second = store.put_bytes(v2.as_bytes(), &[&first.hash]).expect("put");
        let full = fs::read(store.path(&first.hash)).expect("read");
        let size = v1.len() as u64;
        let mut expected = b"DBL2\x01".to_vec();
        expected.extend([(size & 0x7f) as u8 | 0x80, ((size >> 7) & 0x7f) as u8 | 0x80, (size >> 14) as u8]);
        assert!(size >> 21 == 0 && size >> 14 != 0, "the test's file needs a 3-byte size");
        assert_eq!(&full[..8], &expected[..], "header of a full copy");
        // The zstd frame follows at once, without its magic number and without a content size (frame header
        // descriptor bits 7-6 and the single-segment bit 5 clear); with the magic put back it is a plain frame.
        assert_eq!(full[8] & 0b1110_0000, 0, "frame header descriptor {:#x}", full[8]);
        let plain = [&ZSTD_MAGIC[..], &full[8..]].concat();
        assert_eq!(zstd::decode_all(&plain[..]).expect("a zstd frame"), v1.as_bytes());
        let delta = fs::read(store.path(&second.hash)).expect("read");
        assert_eq!(&delta[..5], b"DBL2\x02");
        assert_eq!(delta[8], 1, "depth");
        assert_eq!(hex::encode(&delta[9..41]), first.hash, "base");
        assert_eq!(delta[41] & 0b1110_0000, 0, "frame header descriptor {:#x}", delta[41]);
        assert_eq!(store.read(&second.hash).expect("read"), v2.as_bytes());
        assert_eq!(store.size(&second.hash).expect("size"), v2.len() as u64);

        let big = tempfile::NamedTempFile::new().expect("tmp");
        fs::write(big.path(), vec![b'z'; DELTA_MAX_BYTES as usize + 1]).expect("write");
        let streamed = store.put_file(big.path(), &[]).expect("put");
        assert_eq!(&fs::read(store.path(&streamed.hash)).expect("read")[..8], MAGIC_FIRST);
        assert_eq!(store.verify(&streamed.hash).expect("verify"), DELTA_MAX_BYTES + 1);
    }

    #[test]
    fn malformed_headers_are_damage_not_panics() {
        let full = Header::full(300).encode();
        assert_eq!(Header::decode(&full).map(|(h, len)| (h.raw_size, len)), Some((300, 7)));
        let mut eleven_groups = b"DBL2\x01".to_vec();
        eleven_groups.extend([0xff; 10]);
        eleven_groups.push(0);
        let mut overflow = b"DBL2\x01".to_vec();
        overflow.extend([0xff; 9]);
        overflow.push(0x02);
        let cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"DBL2".to_vec(),
            b"DBL2\x03\x01".to_vec(),
            b"DBL2\x01\x80".to_vec(),
            eleven_groups,
            overflow,
            b"DBL2\x02\x05\x01".to_vec(),
            [&b"DBL2\x02\x05\x01"[..], &[7u8; 31]].concat(),
            b"DATUMBL1\x01".to_vec(),
        ];
        for case in cases {
            assert!(Header::decode(&case).is_none(), "{case:?} decoded");
        }
        let (_dir, store) = store();
        let stored = store.put_bytes(b"abc", &[]).expect("put");
        fs::write(store.path(&stored.hash), b"DBL2\x01").expect("truncate");
        assert!(matches!(store.read(&stored.hash), Err(BlobError::Damaged { .. })));
    }

    #[test]
    fn damage_is_detected_on_read() {
        let (_dir, store) = store();
        let stored = store.put_bytes(&vec![b'x'; 10_000], &[]).expect("put");
        let path = store.path(&stored.hash);
        let mut bytes = fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, &bytes).expect("write");
        let err = store.verify(&stored.hash).unwrap_err();
        assert!(matches!(err, BlobError::Damaged { .. }), "{err}");
        fs::remove_file(&path).expect("rm");
        assert!(matches!(store.verify(&stored.hash).unwrap_err(), BlobError::Missing { .. }));
    }

    #[test]
    fn export_writes_nothing_when_verification_fails() {
        let (dir, store) = store();
        let stored = store.put_bytes(b"abc", &[]).expect("put");
        let path = store.path(&stored.hash);
        let mut bytes = fs::read(&path).expect("read");
        assert_eq!(&bytes[..6], b"DBL2\x01\x03", "compact header of a full copy of 3 bytes");
        bytes[5] = 9; // raw size field: claims 9 bytes
        fs::write(&path, &bytes).expect("write");
        let dest = dir.path().join("out.cfg");
        assert!(store.export(&stored.hash, &dest).is_err());
        assert!(!dest.exists());
    }
}
