//! `audit log` and `audit verify`: the trail of who changed what, when and why, and the proof it is intact.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Result;
use chrono::{DateTime, NaiveDate, Utc};
use datum_shared::audit::{verify_chain, SignedEntry};
use datum_shared::document::CommitInfo;
use serde::Serialize;

use super::reports::check_blobs;
use crate::cli::AuditCmd;
use crate::output::{print_json, print_table};
use crate::site::{load_doc_from, read_audit_head, Site};
use crate::store::RecordRow;
use datum_host::cli::Json;
use datum_host::exit::{user, Outcome};

pub async fn run(site: &mut Site, cmd: AuditCmd) -> Result<Outcome> {
    match cmd {
        AuditCmd::Log { since, asset, json } => log(site, since, asset, json).await,
        AuditCmd::Verify(Json { json }) => verify(site, json).await,
    }
}

fn parse_since(value: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
        .map_err(|_| user(format!("--since {value:?} is not RFC 3339 or YYYY-MM-DD")))
}

async fn log(site: &mut Site, since: Option<String>, asset: Option<String>, json: bool) -> Result<Outcome> {
    let since = since.as_deref().map(parse_since).transpose()?;
    if let Some(name) = &asset {
        // A name that matches nothing would list nothing, which reads as "no history": say so instead.
        super::find_asset(site, name).await?;
    }
    // Filters apply to the signed entries themselves: what is hidden from a filter is what the hash covers.
    let entries: Vec<SignedEntry> = site
        .store
        .audit()
        .await?
        .into_iter()
        .filter(|s| since.is_none_or(|t| s.entry.at >= t))
        .filter(|s| asset.as_deref().is_none_or(|a| s.entry.subject == a || s.entry.assets.iter().any(|x| x == a)))
        .collect();
    if json {
        let plain: Vec<&SignedEntry> = entries.iter().collect();
        print_json(&plain)?;
        return Ok(Outcome::Clean);
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|s| {
            let e = &s.entry;
            vec![
                e.seq.to_string(),
                e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                // How the person authenticated, once the site has users; a bare name is a typed one.
                match e.auth {
                    Some(how) => format!("{} ({})", e.actor, how.as_str()),
                    None => e.actor.clone(),
                },
                e.op.clone(),
                e.subject.clone(),
                format!(
                    "{}{}{}",
                    e.summary,
                    e.reason.as_ref().map(|r| format!(" (why: {r})")).unwrap_or_default(),
                    if e.drill { " [drill clock]" } else { "" }
                ),
            ]
        })
        .collect();
    print_table(&["#", "WHEN (UTC)", "WHO", "WHAT", "SUBJECT", "DETAIL"], &rows);
    Ok(Outcome::Clean)
}

#[derive(Serialize)]
pub struct VerifyReport {
    intact: bool,
    documents: usize,
    changes: usize,
    audit_entries: usize,
    records: usize,
    pub blobs: usize,
    pub problems: Vec<String>,
    /// The problems of stored files (also in `problems`).
    #[serde(skip)]
    pub blob_problems: Vec<String>,
    /// Every other problem: database, documents, audit chain, projection (also in `problems`).
    #[serde(skip)]
    pub other_problems: Vec<String>,
}

/// Everything `audit verify` checks, as a list of problems (empty when intact).
pub async fn verify_site(site: &Site, json: bool) -> Result<VerifyReport> {
    let mut problems = Vec::new();
    for p in site.store.integrity_check().await? {
        problems.push(format!("database integrity: {p}"));
    }
    // 1. Documents load (automerge checks every change hash) and are rebuilt into records.
    let mut doc_changes: HashMap<String, (String, String)> = HashMap::new();
    let mut rebuilt: BTreeMap<(String, String), RecordRow> = BTreeMap::new();
    let doc_ids = site.store.doc_ids().await.unwrap_or_else(|e| {
        problems.push(format!("document list unreadable: {e}"));
        Vec::new()
    });
    for id in &doc_ids {
        let doc = match load_doc_from(&site.store, id).await {
            Ok(doc) => doc,
            Err(e) => {
                problems.push(format!("{e:#}"));
                continue;
            }
        };
        for change in doc.get_changes(&[]) {
            let message = change.message().map(str::to_string).unwrap_or_default();
            doc_changes.insert(change.hash().to_string(), (id.to_string(), message));
        }
        match crate::site::projection_rows(id, &doc) {
            Ok(rows) => {
                for row in rows {
                    let (collection, key) = (row.collection.clone(), row.key.clone());
                    if rebuilt.insert((collection.clone(), key.clone()), row).is_some() {
                        problems.push(format!("record {collection}/{key} exists in more than one document"));
                    }
                }
            }
            Err(e) => problems.push(format!("document {id}: {e}")),
        }
    }
    // 2. The audit chain: links, hashes, signatures.
    let entries = site.store.audit().await.unwrap_or_else(|e| {
        problems.push(e.to_string());
        Vec::new()
    });
    match site.store.audit_index_problems().await {
        Ok(found) => problems.extend(found),
        Err(e) => problems.push(format!("audit index unreadable: {e}")),
    }
    let key = site.verifying_key()?;
    problems.extend(verify_chain(&entries, |hash, sig| site.signature_ok(&key, hash, sig)));
    // The head recorded outside the database catches entries cut off the end.
    match (read_audit_head(&site.dir), site.store.last_audit().await?) {
        (Err(e), _) => problems.push(format!("{e:#}")),
        (Ok(None), Some((last, _))) => {
            problems.push(format!("identity/audit-head is missing but the database holds {last} audit entries"))
        }
        (Ok(Some((seq, _))), last) if seq > last.as_ref().map(|l| l.0).unwrap_or(0) => problems.push(format!(
            "audit trail truncated: entry {seq} was written, the database ends at {}",
            last.map(|l| l.0).unwrap_or(0)
        )),
        (Ok(Some((seq, hash))), _) => {
            if site.store.audit_hash_at(seq).await?.as_deref() != Some(hash.as_str()) {
                problems.push(format!("audit entry {seq} differs from the one recorded in identity/audit-head"));
            }
        }
        (Ok(None), None) => {}
    }
    // 3. Every audited change is in its document, with the same who/what; every document change is audited,
    // or adopted with its history by the first entry of a chain restored from the hub.
    let mut audited = HashSet::new();
    if let Some(first) = entries.first() {
        for a in &first.entry.adopted {
            match adopted_history(site, a).await {
                Ok(history) => audited.extend(history),
                Err(problem) => problems.push(format!("audit entry {}: {problem}", first.entry.seq)),
            }
        }
    }
    for signed in &entries {
        let e = &signed.entry;
        for c in &e.changes {
            audited.insert(c.change.clone());
            match doc_changes.get(&c.change) {
                None => problems.push(format!(
                    "audit entry {}: change {} is missing from document {}",
                    e.seq,
                    short(&c.change),
                    c.doc
                )),
                Some((doc, message)) => {
                    let info: Option<CommitInfo> = serde_json::from_str(message).ok();
                    let same = doc == &c.doc
                        && info.as_ref().is_some_and(|i| i.op == e.op && i.actor == e.actor && i.subject == e.subject);
                    if !same {
                        problems.push(format!(
                            "audit entry {}: does not match change {} in document {doc}",
                            e.seq,
                            short(&c.change)
                        ));
                    }
                }
            }
        }
    }
    let mut unaudited: Vec<(&String, &String)> =
        doc_changes.iter().filter(|(h, _)| !audited.contains(*h)).map(|(h, (doc, _))| (doc, h)).collect();
    unaudited.sort();
    for (doc, hash) in unaudited {
        problems.push(format!("document {doc}: change {} has no audit entry", short(hash)));
    }
    // 4. The projection equals what the documents say.
    let stored = site.store.all_records().await.unwrap_or_else(|e| {
        problems.push(format!("projection unreadable: {e}"));
        Vec::new()
    });
    let n_records = stored.len();
    for row in stored {
        match rebuilt.remove(&(row.collection.clone(), row.key.clone())) {
            None => {
                problems.push(format!("record {}/{} is in the database but in no document", row.collection, row.key))
            }
            Some(doc_row) if doc_row != row => problems.push(format!(
                "record {}/{} in the database differs from document {}",
                row.collection, row.key, doc_row.doc_id
            )),
            Some(_) => {}
        }
    }
    for ((collection, key), row) in rebuilt {
        problems.push(format!("record {collection}/{key} of document {} is missing from the database", row.doc_id));
    }
    // 5. Every configuration file still hashes to its name.
    let (n_blobs, _, blob_problems) = match check_blobs(site, json).await {
        Ok(r) => r,
        Err(e) => {
            problems.push(format!("cannot list the configuration files to check: {e:#}"));
            (0, 0, Vec::new())
        }
    };
    let other_problems = problems.clone();
    let mut file_problems = Vec::new();
    for p in blob_problems {
        let users = if p.used_by.is_empty() { String::new() } else { format!(" (used by {})", p.used_by.join(", ")) };
        file_problems.push(format!("{}{users}", p.problem));
    }
    problems.extend(file_problems.iter().cloned());
    Ok(VerifyReport {
        intact: problems.is_empty(),
        documents: doc_ids.len(),
        changes: doc_changes.len(),
        audit_entries: entries.len(),
        records: n_records,
        blobs: n_blobs,
        problems,
        blob_problems: file_problems,
        other_problems,
    })
}

/// The change `adopted.change` of its document and every change it depends on.
async fn adopted_history(site: &Site, adopted: &datum_shared::audit::DocChange) -> Result<HashSet<String>, String> {
    let missing = || format!("adopted change {} is missing from document {}", short(&adopted.change), adopted.doc);
    let id = datum_shared::DocId::parse(&adopted.doc).map_err(|_| missing())?;
    let doc = load_doc_from(&site.store, &id).await.map_err(|e| format!("{e:#}"))?;
    let deps: HashMap<String, Vec<String>> = doc
        .get_changes(&[])
        .iter()
        .map(|c| (c.hash().to_string(), c.deps().iter().map(|d| d.to_string()).collect()))
        .collect();
    if !deps.contains_key(&adopted.change) {
        return Err(missing());
    }
    let mut history = HashSet::new();
    let mut todo = vec![adopted.change.clone()];
    while let Some(hash) = todo.pop() {
        if history.insert(hash.clone()) {
            todo.extend(deps.get(&hash).into_iter().flatten().cloned());
        }
    }
    Ok(history)
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

async fn verify(site: &mut Site, json: bool) -> Result<Outcome> {
    let report = verify_site(site, json).await?;
    let findings = !report.intact;
    if json {
        print_json(&report)?;
    } else {
        for p in &report.problems {
            println!("TAMPERED/DAMAGED: {p}");
        }
        println!(
            "{}: {} documents, {} changes, {} audit entries, {} records, {} blobs checked",
            if findings { "HISTORY IS NOT INTACT" } else { "history intact" },
            report.documents,
            report.changes,
            report.audit_entries,
            report.records,
            report.blobs
        );
    }
    Ok(Outcome::from_findings(findings))
}
