//! `dump` and `restore-dump`: the plant's own backup of its whole site as one verifiable file.
//!
//! A dump is a tar archive under `datum-dump/`: every document as one automerge snapshot, the audit chain
//! (`audit.jsonl`), every blob file as stored, the site key, and last a `manifest.json` with the SHA-256 and
//! size of every member. `restore-dump` unpacks into a staging directory beside the target, checks every
//! member against the manifest, rebuilds the database, verifies the whole history like `audit verify`, and only
//! then renames the staging directory into place: a failed restore leaves no target behind.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Component, Path};

use anyhow::{anyhow, bail, Context as _, Result};
use automerge::Automerge;
use datum_shared::audit::SignedEntry;
use datum_shared::model::SiteInfo;
use datum_shared::DocId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Context;
use crate::blobs::{is_hash, BlobStore};
use crate::output::{out_target, print_json, progress, OutTarget};
use crate::site::{write_audit_head, DirLock, Site};
use crate::store::Store;
use datum_host::exit::{user, Outcome};
use datum_host::fs::{sync_dir, tempfile_in, write_private};

const FORMAT: &str = "datum-dump/1";
const ROOT: &str = "datum-dump";
/// Refuse archives with absurd member counts before reading them.
const MAX_MEMBERS: usize = 2_000_000;

#[derive(Debug, Serialize, Deserialize)]
struct Member {
    path: String,
    sha256: String,
    size: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: String,
    site: SiteInfo,
    created_at: chrono::DateTime<chrono::Utc>,
    created_by: String,
    audit_entries: u64,
    audit_head: Option<String>,
    members: Vec<Member>,
}

#[derive(Serialize)]
struct DumpReport {
    file: String,
    documents: usize,
    blobs: usize,
    audit_entries: u64,
    bytes: u64,
    sha256: String,
}

/// Doc ids contain `/`; inside the archive they are flattened with `~`.
fn doc_member(id: &DocId) -> String {
    format!("docs/{}.automerge", id.as_str().replace('/', "~"))
}

struct ArchiveWriter<W: Write> {
    tar: tar::Builder<W>,
    members: Vec<Member>,
}

impl<W: Write> ArchiveWriter<W> {
    fn add(&mut self, path: &str, bytes: &[u8]) -> Result<()> {
        self.add_reader(path, bytes.len() as u64, bytes, hex::encode(Sha256::digest(bytes)))
    }

    fn add_reader(&mut self, path: &str, size: u64, reader: impl Read, sha256: String) -> Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(0o600);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        self.tar
            .append_data(&mut header, format!("{ROOT}/{path}"), reader)
            .with_context(|| format!("write {path} to the dump"))?;
        self.members.push(Member { path: path.into(), sha256, size });
        Ok(())
    }
}

pub async fn dump(site: &mut Site, out: &Path, json: bool) -> Result<Outcome> {
    let (dir, out) = match out_target(out)? {
        OutTarget::File(path) => {
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
            (dir, Some(path))
        }
        // Written whole and checked in the data directory first, then copied to standard output.
        OutTarget::Stdout => {
            let dir = site.dir.join("tmp");
            fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
            (dir, None)
        }
    };
    let (file, tmp) = tempfile_in(&dir).with_context(|| format!("create a file in {}", dir.display()))?;
    let result = write_dump(site, file, json).await;
    let (n_docs, n_blobs, n_audit) = match result {
        Ok(counts) => counts,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let bytes = fs::metadata(&tmp)?.len();
    let sha256 = hash_file(&tmp)?;
    let shown = match &out {
        Some(out) => {
            if let Err(e) = fs::rename(&tmp, out) {
                let _ = fs::remove_file(&tmp);
                return Err(e).with_context(|| format!("write {}", out.display()));
            }
            sync_dir(&dir).ok();
            out.display().to_string()
        }
        None => {
            let copied = fs::File::open(&tmp).and_then(|mut f| io::copy(&mut f, &mut io::stdout().lock()));
            let _ = fs::remove_file(&tmp);
            copied.context("write the dump to standard output")?;
            "-".to_string()
        }
    };
    let report = DumpReport { file: shown, documents: n_docs, blobs: n_blobs, audit_entries: n_audit, bytes, sha256 };
    let summary = format!(
        "wrote {} ({} bytes, sha256 {}): {} documents, {} blobs, {} audit entries\n\
         the dump contains the site's signing key: store it as securely as the plant's configurations",
        datum_shared::text::shown(&report.file),
        report.bytes,
        report.sha256,
        report.documents,
        report.blobs,
        report.audit_entries
    );
    match (&out, json) {
        (Some(_), true) => print_json(&report)?,
        (Some(_), false) => println!("{summary}"),
        // Standard output holds the dump: the report goes to standard error.
        (None, true) => eprintln!("{}", serde_json::to_string_pretty(&report)?),
        (None, false) => eprintln!("{summary}"),
    }
    Ok(Outcome::Clean)
}

async fn write_dump(site: &mut Site, file: File, json: bool) -> Result<(usize, usize, u64)> {
    let mut archive = ArchiveWriter { tar: tar::Builder::new(BufWriter::new(file)), members: Vec::new() };
    let doc_ids = site.store.doc_ids().await?;
    for id in &doc_ids {
        let snapshot = site.load_doc(id).await?.save();
        archive.add(&doc_member(id), &snapshot)?;
    }
    let entries = site.store.audit().await?;
    let mut audit = Vec::new();
    for e in &entries {
        serde_json::to_writer(&mut audit, e)?;
        audit.push(b'\n');
    }
    archive.add("audit.jsonl", &audit)?;
    let key = fs::read(site.dir.join("identity/site.key")).context("read the site key")?;
    archive.add("identity/site.key", &key)?;
    let blobs = site.blobs.list()?;
    let bar = progress(blobs.len() as u64, "dumping blobs", json);
    for hash in &blobs {
        let path = site.blobs.raw_file(hash).map_err(|e| anyhow!("{e}; run `datum-edge backup verify`"))?;
        let size = fs::metadata(&path)?.len();
        let file_hash = hash_file(&path)?;
        archive.add_reader(&format!("blobs/{hash}"), size, BufReader::new(File::open(&path)?), file_hash)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let manifest = Manifest {
        format: FORMAT.into(),
        site: site.info.clone(),
        created_at: site.now,
        created_by: site.actor.clone(),
        audit_entries: entries.len() as u64,
        audit_head: entries.last().map(|e| e.hash.clone()),
        members: std::mem::take(&mut archive.members),
    };
    let manifest_bytes = serde_json::to_vec_pretty(&manifest)?;
    let mut header = tar::Header::new_gnu();
    header.set_size(manifest_bytes.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(0);
    archive.tar.append_data(&mut header, format!("{ROOT}/manifest.json"), manifest_bytes.as_slice())?;
    let writer = archive.tar.into_inner()?;
    let file = writer.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok((doc_ids.len(), blobs.len(), entries.len() as u64))
}

fn hash_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("read {}", path.display()))?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// A member path must be a plain relative path under the dump root.
fn member_path(path: &Path) -> Result<String> {
    let rel = path.strip_prefix(ROOT).map_err(|_| anyhow!("member {} is outside {ROOT}/", path.display()))?;
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) || rel.as_os_str().is_empty() {
        bail!("member {} has an unsafe path", path.display());
    }
    rel.to_str().map(String::from).ok_or_else(|| anyhow!("member path is not UTF-8"))
}

pub async fn restore(ctx: &Context, file: &Path, json: bool) -> Result<Outcome> {
    let target = &ctx.data;
    if target.exists() && fs::read_dir(target).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(user(format!(
            "{} already exists and is not empty; restore into a new directory",
            target.display()
        )));
    }
    let parent = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    fs::create_dir_all(&parent)?;
    let name = target.file_name().ok_or_else(|| user("--data must name a directory"))?.to_string_lossy().to_string();
    let staging = parent.join(format!(".{name}.restoring-{:08x}", rand::random::<u32>()));
    fs::create_dir_all(&staging)?;
    let result = restore_into(file, &staging, ctx, json).await;
    match result {
        Ok(summary) => {
            let site_dir = staging.join("site");
            if target.exists() {
                fs::remove_dir(target).with_context(|| format!("replace empty {}", target.display()))?;
            }
            fs::rename(&site_dir, target)
                .with_context(|| format!("move the restored site into {}", target.display()))?;
            sync_dir(&parent).ok();
            let _ = fs::remove_dir_all(&staging);
            if json {
                print_json(&summary)?;
            } else {
                println!(
                    "restored site {} into {}: {} documents, {} blobs, {} audit entries; history verified intact",
                    summary.site,
                    target.display(),
                    summary.documents,
                    summary.blobs,
                    summary.audit_entries
                );
            }
            Ok(Outcome::Clean)
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            Err(e.context(format!("restore {} (nothing was written to {})", file.display(), target.display())))
        }
    }
}

#[derive(Serialize)]
struct RestoreReport {
    site: String,
    documents: usize,
    blobs: usize,
    audit_entries: usize,
}

async fn restore_into(file: &Path, staging: &Path, ctx: &Context, json: bool) -> Result<RestoreReport> {
    let input = File::open(file).map_err(|e| user(format!("{}: {e}", file.display())))?;
    let raw = staging.join("raw");
    fs::create_dir_all(&raw)?;
    let mut archive = tar::Archive::new(BufReader::new(input));
    // Error texts of the archive reader can quote the file's bytes; they are not shown.
    let not_a_dump = || user(format!("{} is not a Datum dump (not a tar archive, or damaged)", file.display()));
    let mut seen: HashMap<String, Member> = HashMap::new();
    for entry in archive.entries().map_err(|_| not_a_dump())? {
        let mut entry = entry.map_err(|_| not_a_dump())?;
        if seen.len() >= MAX_MEMBERS {
            return Err(user("dump has too many members"));
        }
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(user("dump contains something other than regular files"));
        }
        let path = member_path(&entry.path().map_err(|_| not_a_dump())?)
            .map_err(|e| user(format!("{} is not a Datum dump: {e}", file.display())))?;
        let dest = raw.join(&path);
        fs::create_dir_all(dest.parent().expect("member paths have a parent"))?;
        let mut out = File::create(&dest)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = entry.read(&mut buf).map_err(|_| not_a_dump())?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])?;
            size += n as u64;
        }
        let member = Member { path: path.clone(), sha256: hex::encode(hasher.finalize()), size };
        if seen.insert(path.clone(), member).is_some() {
            return Err(user(format!("dump contains {path} twice: refusing an ambiguous archive")));
        }
    }
    let manifest_bytes = fs::read(raw.join("manifest.json"))
        .map_err(|_| user(format!("{} has no manifest: not a complete Datum dump", file.display())))?;
    let manifest: Manifest =
        serde_json::from_slice(&manifest_bytes).map_err(|e| user(format!("dump manifest is invalid: {e}")))?;
    if manifest.format != FORMAT {
        return Err(user(format!("dump format {:?} is not supported (expected {FORMAT})", manifest.format)));
    }
    for m in &manifest.members {
        match seen.get(&m.path) {
            None => return Err(user(format!("dump is incomplete: {} is missing", m.path))),
            Some(s) if s.sha256 != m.sha256 || s.size != m.size => {
                return Err(user(format!("dump is damaged: {} does not match the manifest", m.path)))
            }
            Some(_) => {}
        }
    }
    let listed: std::collections::HashSet<&str> = manifest.members.iter().map(|m| m.path.as_str()).collect();
    if let Some(extra) = seen.keys().find(|p| p.as_str() != "manifest.json" && !listed.contains(p.as_str())) {
        return Err(user(format!("dump contains {extra} which the manifest does not list")));
    }
    // A dump whose members agree with its manifest may still have been rewritten (manifest included): what
    // fails from here on because of its content is bad input (exit 2); only the machine's own I/O failing is
    // an internal error.
    rebuild(&raw, staging, &manifest, ctx, json).await.map_err(|e| {
        if e.downcast_ref::<datum_host::exit::UserError>().is_some()
            || e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some())
        {
            e
        } else {
            user(format!("{} does not hold an intact site: {e:#}", file.display()))
        }
    })
}

/// Builds the site from a dump's checked members in `staging/site` and verifies its whole history.
async fn rebuild(raw: &Path, staging: &Path, manifest: &Manifest, ctx: &Context, json: bool) -> Result<RestoreReport> {
    // Rebuild the site.
    let site_dir = staging.join("site");
    fs::create_dir_all(site_dir.join("identity"))?;
    let _lock = DirLock::acquire(&site_dir)?;
    write_private(&site_dir.join("identity/site.key"), &fs::read(raw.join("identity/site.key"))?)?;
    let blobs = BlobStore::open(site_dir.join("blobs"))?;
    let blob_members: Vec<&Member> = manifest.members.iter().filter(|m| m.path.starts_with("blobs/")).collect();
    let bar = progress(2 * blob_members.len() as u64, "restoring blobs", json);
    for m in &blob_members {
        let hash = &m.path["blobs/".len()..];
        if !is_hash(hash) {
            return Err(user(format!("dump member {} is not a blob name", m.path)));
        }
        blobs.install_raw(hash, &fs::read(raw.join(&m.path))?).map_err(|e| user(format!("dump blob: {e}")))?;
        bar.inc(1);
    }
    for m in &blob_members {
        blobs.verify(&m.path["blobs/".len()..]).map_err(|e| user(format!("dump blob: {e}")))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut docs = Vec::new();
    let mut records = Vec::new();
    for m in manifest.members.iter().filter(|m| m.path.starts_with("docs/")) {
        let stem = m.path["docs/".len()..]
            .strip_suffix(".automerge")
            .ok_or_else(|| user(format!("unexpected member {}", m.path)))?;
        let id = DocId::parse(&stem.replace('~', "/")).map_err(|e| user(format!("dump member {}: {e}", m.path)))?;
        let bytes = fs::read(raw.join(&m.path))?;
        let doc = Automerge::load(&bytes).map_err(|e| user(format!("document {id} in the dump is damaged: {e}")))?;
        records.extend(crate::site::projection_rows(&id, &doc)?);
        docs.push((id, bytes));
    }
    let mut audit: Vec<SignedEntry> = Vec::new();
    for (i, line) in fs::read_to_string(raw.join("audit.jsonl"))?.lines().enumerate() {
        audit.push(serde_json::from_str(line).map_err(|e| user(format!("dump audit line {}: {e}", i + 1)))?);
    }
    let store = Store::open(&site_dir.join("datum.db"), true).await?;
    store.import_snapshot(&docs, &records, &audit).await?;
    store.set_meta("site_id", manifest.site.site_id.as_str()).await?;
    store.close().await;
    if let Some(last) = audit.last() {
        write_audit_head(&site_dir, last.entry.seq, &last.hash)?;
    }
    drop(_lock);

    // Open it like any site and prove it is whole before it goes live.
    let site = Site::open(&site_dir, &ctx.actor, ctx.now).await?;
    let report = super::audit::verify_site(&site, true).await?;
    let summary = RestoreReport {
        site: site.info.name.clone(),
        documents: docs.len(),
        blobs: blob_members.len(),
        audit_entries: audit.len(),
    };
    site.close().await;
    if !report.problems.is_empty() {
        return Err(user(format!("the restored history does not verify:\n  {}", report.problems.join("\n  "))));
    }
    fs::remove_dir_all(raw).ok();
    Ok(summary)
}
