//! `datum-edge diff OLD NEW` and the comparison engine shared with `config diff`: normalise both sides, report
//! located significant changes, never print a secret.

use std::path::Path;

use anyhow::Result;
use datum_shared::diff::{self, DiffReport};
use datum_shared::normalize::{mask_raw, FingerprintKey, MAX_NORMALIZE_BYTES};
use datum_shared::text;
use serde::Serialize;

use crate::output::print_json;
use datum_host::exit::{user, Outcome};

/// The comparison of two versions of one artifact.
#[derive(Serialize)]
pub struct Comparison {
    #[serde(flatten)]
    pub report: DiffReport,
    /// A unified diff of the raw lines (secrets masked), with `--raw`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_diff: Option<String>,
}

/// Compares two byte strings. `name` is the file name hint for format detection.
pub fn compare(
    name: Option<&str>,
    old_label: &str,
    old: &[u8],
    new_label: &str,
    new: &[u8],
    key: &FingerprintKey,
    raw: bool,
) -> Result<Comparison> {
    for (label, bytes) in [(old_label, old), (new_label, new)] {
        if bytes.len() > MAX_NORMALIZE_BYTES {
            return Err(user(format!(
                "{label} is {} bytes; comparisons are limited to {MAX_NORMALIZE_BYTES} bytes (export and compare with other tools)",
                bytes.len()
            )));
        }
    }
    let report = diff::compare_bytes(name, old, new, key).map_err(|e| user(e.to_string()))?;
    let raw_diff = if raw {
        match (text::decode(old).1, text::decode(new).1) {
            (Some(a), Some(b)) => Some(diff::raw_unified(old_label, new_label, &mask_raw(&a, key), &mask_raw(&b, key))),
            _ => Some(if old == new { String::new() } else { "binary content differs\n".to_string() }),
        }
    } else {
        None
    };
    Ok(Comparison { report, raw_diff })
}

/// Prints a comparison for people or as JSON.
pub fn print(comparison: &Comparison, json: bool) -> Result<()> {
    if json {
        return print_json(comparison);
    }
    match &comparison.raw_diff {
        Some(raw) => {
            print!("{raw}");
            let r = &comparison.report;
            println!(
                "{}: {}",
                r.format,
                if r.significant { "significant difference" } else { "no significant difference (only noise)" }
            );
        }
        None => print!("{}", diff::render(&comparison.report)),
    }
    Ok(())
}

/// `datum-edge diff OLD NEW [--raw] [--json]`: exit 0 when not significantly different, 1 when different.
pub fn run(old: &Path, new: &Path, raw: bool, json: bool) -> Result<Outcome> {
    let read = |p: &Path| -> Result<Vec<u8>> {
        let meta = std::fs::metadata(p).map_err(|e| user(format!("{}: {e}", p.display())))?;
        if !meta.is_file() {
            return Err(user(format!("{} is not a regular file", p.display())));
        }
        if meta.len() > MAX_NORMALIZE_BYTES as u64 {
            return Err(user(format!(
                "{} is {} bytes; comparisons are limited to {MAX_NORMALIZE_BYTES} bytes",
                p.display(),
                meta.len()
            )));
        }
        std::fs::read(p).map_err(|e| user(format!("{}: {e}", p.display())))
    };
    let (old_bytes, new_bytes) = (read(old)?, read(new)?);
    // A fresh key per run: fingerprints only need to agree between the two sides of this comparison.
    let key = FingerprintKey(rand::random());
    let name = new.file_name().map(|n| n.to_string_lossy().to_string());
    let comparison = compare(
        name.as_deref(),
        &old.display().to_string(),
        &old_bytes,
        &new.display().to_string(),
        &new_bytes,
        &key,
        raw,
    )?;
    print(&comparison, json)?;
    Ok(Outcome::from_findings(comparison.report.significant))
}
