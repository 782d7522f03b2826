//! Readable, located differences between two normalised configurations — the engine behind
//! `datum-edge diff`, `config diff` and drift details.

use std::fmt::Write as _;
use std::ops::Range;

use imara_diff::intern::{InternedInput, TokenSource};
use imara_diff::{diff as imara, Algorithm};
use serde::Serialize;

use crate::normalize::secrets::without_fingerprints;
use crate::normalize::{NormLine, Normalized};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
    /// Only the fingerprint of a masked secret differs: a password, key or community was changed.
    SecretChanged,
}

/// One located change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub kind: ChangeKind,
    /// Context or element path of the change.
    pub location: String,
    pub removed: Vec<String>,
    pub added: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffReport {
    pub format: String,
    pub raw_identical: bool,
    pub significant: bool,
    pub changes: Vec<Change>,
    pub secrets_changed: usize,
}

/// Lines as diff tokens, without copying them into one text first.
struct LineSlice<'a>(&'a [&'a str]);

impl<'a> TokenSource for LineSlice<'a> {
    type Token = &'a str;
    type Tokenizer = std::iter::Copied<std::slice::Iter<'a, &'a str>>;

    fn tokenize(&self) -> Self::Tokenizer {
        self.0.iter().copied()
    }

    fn estimate_tokens(&self) -> u32 {
        self.0.len() as u32
    }
}

/// Line hunks between two lists of lines (histogram algorithm).
pub fn hunks(old: &[&str], new: &[&str]) -> Vec<(Range<u32>, Range<u32>)> {
    let input = InternedInput::new(LineSlice(old), LineSlice(new));
    let mut out = Vec::new();
    imara(Algorithm::Histogram, &input, |before: Range<u32>, after: Range<u32>| out.push((before, after)));
    out
}

/// Compares two normalised versions of one artifact.
pub fn diff(old: &Normalized, new: &Normalized, raw_identical: bool) -> DiffReport {
    // The same comparison as the normalised hashes (format and line texts), without hashing.
    let significant = old.format != new.format
        || old.lines.len() != new.lines.len()
        || old.lines.iter().zip(&new.lines).any(|(a, b)| a.text != b.text);
    let old_lines: Vec<&str> = old.lines.iter().map(|l| l.text.as_str()).collect();
    let new_lines: Vec<&str> = new.lines.iter().map(|l| l.text.as_str()).collect();
    let mut changes = Vec::new();
    let mut secrets_changed = 0;
    if significant {
        for (before, after) in hunks(&old_lines, &new_lines) {
            let removed: Vec<&NormLine> = old.lines[before.start as usize..before.end as usize].iter().collect();
            let added: Vec<&NormLine> = new.lines[after.start as usize..after.end as usize].iter().collect();
            let location = added.first().or(removed.first()).map(|l| l.context.to_string()).unwrap_or_default();
            let kind = if removed.is_empty() {
                ChangeKind::Added
            } else if added.is_empty() {
                ChangeKind::Removed
            } else if removed.len() == added.len()
                && removed
                    .iter()
                    .zip(&added)
                    .all(|(a, b)| without_fingerprints(&a.text) == without_fingerprints(&b.text))
            {
                secrets_changed += removed.len();
                ChangeKind::SecretChanged
            } else {
                ChangeKind::Changed
            };
            changes.push(Change {
                kind,
                location,
                removed: removed.iter().map(|l| l.text.clone()).collect(),
                added: added.iter().map(|l| l.text.clone()).collect(),
            });
        }
    }
    DiffReport { format: new.format.as_str().to_string(), raw_identical, significant, changes, secrets_changed }
}

/// The report as text for a terminal: one block per change, headed by its location.
pub fn render(report: &DiffReport) -> String {
    let mut out = String::new();
    if !report.significant {
        let _ = writeln!(
            out,
            "{}: no significant difference{}",
            report.format,
            if report.raw_identical { " (identical bytes)" } else { " (only noise differs; see --raw)" }
        );
        return out;
    }
    for change in &report.changes {
        let kind = match change.kind {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Changed => "changed",
            ChangeKind::SecretChanged => "secret changed",
        };
        let _ = writeln!(out, "@@ {} ({kind})", change.location);
        if change.kind == ChangeKind::SecretChanged {
            continue;
        }
        // XML and JSON lines start with their element path; under a header naming it, the rest suffices.
        let shown = |l: &str| -> String {
            match l.strip_prefix(change.location.as_str()) {
                Some(rest) if !change.location.is_empty() && (rest.starts_with(": ") || rest.starts_with(" @")) => {
                    rest.trim_start_matches(": ").trim_start().to_string()
                }
                _ => l.to_string(),
            }
        };
        for l in &change.removed {
            let _ = writeln!(out, "- {}", shown(l));
        }
        for l in &change.added {
            let _ = writeln!(out, "+ {}", shown(l));
        }
    }
    let _ = writeln!(
        out,
        "{}: {} change(s){}",
        report.format,
        report.changes.len(),
        if report.secrets_changed > 0 {
            format!(", {} secret(s) changed", report.secrets_changed)
        } else {
            String::new()
        }
    );
    out
}

/// A unified diff of raw (secret-masked) lines, for `--raw`.
pub fn raw_unified(old_label: &str, new_label: &str, old: &[String], new: &[String]) -> String {
    let old_refs: Vec<&str> = old.iter().map(String::as_str).collect();
    let new_refs: Vec<&str> = new.iter().map(String::as_str).collect();
    let mut out = String::new();
    let all = hunks(&old_refs, &new_refs);
    if all.is_empty() {
        return out;
    }
    let _ = writeln!(out, "--- {old_label}\n+++ {new_label}");
    for (before, after) in all {
        let _ = writeln!(out, "@@ -{},{} +{},{} @@", before.start + 1, before.len(), after.start + 1, after.len());
        for l in &old_refs[before.start as usize..before.end as usize] {
            let _ = writeln!(out, "-{l}");
        }
        for l in &new_refs[after.start as usize..after.end as usize] {
            let _ = writeln!(out, "+{l}");
        }
    }
    out
}
