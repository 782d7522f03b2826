//! Readable, located differences between two normalised configurations — the engine behind
//! `datum-edge diff`, `config diff` and drift details.

use std::collections::{HashMap, VecDeque};
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
            let removed = &old.lines[before.start as usize..before.end as usize];
            let added = &new.lines[after.start as usize..after.end as usize];
            located_changes(removed, added, &mut changes, &mut secrets_changed);
        }
    }
    DiffReport { format: new.format.as_str().to_string(), raw_identical, significant, changes, secrets_changed }
}

/// Hunks larger than this (runs on one side times runs on the other) are not aligned block by block: one change
/// per hunk, located at its first line, keeps huge rewrites linear.
const MAX_ALIGNMENT_CELLS: usize = 250_000;

/// Turns one hunk into located changes. A hunk can span several blocks (the end of one interface and a new
/// top-level line after it): its lines are cut into runs that share a context, the runs of the two sides are
/// aligned (same context first, then the same kind of context: `hostname r1` → `hostname r2`), and a run that
/// only continues the run before it (a sub-block, a child element) stays with it.
fn located_changes(removed: &[NormLine], added: &[NormLine], changes: &mut Vec<Change>, secrets_changed: &mut usize) {
    let old_runs = runs(removed);
    let new_runs = runs(added);
    if old_runs.len().saturating_mul(new_runs.len()) > MAX_ALIGNMENT_CELLS {
        classify(removed, added, changes, secrets_changed);
        return;
    }
    // Weighted LCS over the runs: 2 for the same context, 1 for the same kind of context.
    let score = |i: usize, j: usize| -> u32 {
        let (a, b): (&str, &str) = (&removed[old_runs[i].start].context, &added[new_runs[j].start].context);
        if same_block(a, b) {
            2
        } else if context_kind(a) == context_kind(b) || is_below(a, b) || is_below(b, a) {
            1
        } else {
            0
        }
    };
    let (n, m) = (old_runs.len(), new_runs.len());
    let mut best = vec![0u32; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            let s = score(i, j);
            let pair = if s > 0 { s + best[at(i + 1, j + 1)] } else { 0 };
            best[at(i, j)] = pair.max(best[at(i + 1, j)]).max(best[at(i, j + 1)]);
        }
    }
    // Walk the alignment in order, grouping a run with the runs below it.
    let (mut i, mut j) = (0, 0);
    let mut group: Option<(Range<usize>, Range<usize>)> = None;
    while i < n || j < m {
        let step = if i < n && j < m && score(i, j) > 0 && best[at(i, j)] == score(i, j) + best[at(i + 1, j + 1)] {
            (Some(old_runs[i].clone()), Some(new_runs[j].clone()))
        } else if i < n && (j == m || best[at(i, j)] == best[at(i + 1, j)]) {
            (Some(old_runs[i].clone()), None)
        } else {
            (None, Some(new_runs[j].clone()))
        };
        i += usize::from(step.0.is_some());
        j += usize::from(step.1.is_some());
        let (old, new) = (step.0.unwrap_or(0..0), step.1.unwrap_or(0..0));
        group = match group {
            Some((g_old, g_new))
                if continues(removed, &g_old, &old)
                    && continues(added, &g_new, &new)
                    && (g_old.is_empty() == old.is_empty() && g_new.is_empty() == new.is_empty()) =>
            {
                Some((g_old.start..old.end.max(g_old.end), g_new.start..new.end.max(g_new.end)))
            }
            Some((g_old, g_new)) => {
                classify(&removed[g_old], &added[g_new], changes, secrets_changed);
                Some((old, new))
            }
            None => Some((old, new)),
        };
    }
    if let Some((g_old, g_new)) = group {
        classify(&removed[g_old], &added[g_new], changes, secrets_changed);
    }
}

/// Consecutive lines that share a context.
fn runs(lines: &[NormLine]) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for (idx, line) in lines.iter().enumerate() {
        match out.last_mut() {
            Some(run) if same_block(&lines[run.start].context, &line.context) => run.end = idx + 1,
            _ => out.push(idx..idx + 1),
        }
    }
    out
}

/// What kind of block a context is, without its names and numbers: `interface` for `interface Gi0/1`,
/// `Programs/Program/Routines` for `Programs/Program[Main]/Routines`.
fn context_kind(context: &str) -> String {
    let first_word = context.split_whitespace().next().unwrap_or("");
    let mut kind = String::with_capacity(first_word.len());
    let mut depth = 0usize;
    let mut chars = first_word.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            '#' if depth == 0 && chars.peek().is_some_and(char::is_ascii_digit) => {
                while chars.next_if(char::is_ascii_digit).is_some() {}
            }
            _ if depth == 0 => kind.push(c),
            _ => {}
        }
    }
    kind
}

/// Does run `next` belong under the run that starts `group` (a sub-block or child element of it)?
fn continues(lines: &[NormLine], group: &Range<usize>, next: &Range<usize>) -> bool {
    if next.is_empty() || group.is_empty() {
        return next.is_empty() && group.is_empty();
    }
    is_below(&lines[next.start].context, &lines[group.start].context)
}

/// Is `child` the context `parent` or one inside it (a sub-block, a child element or key)?
fn is_below(child: &str, parent: &str) -> bool {
    child.strip_prefix(parent).is_some_and(|rest| {
        rest.is_empty()
            || rest.starts_with('/')
            || rest.starts_with(" > ")
            || rest.starts_with('.')
            || rest.starts_with('[')
    })
}

/// Do two lines belong to the same block? Line-number contexts (`line 12`, formats without blocks) name no block,
/// so neighbouring lines there are one stretch, as in a plain diff.
fn same_block(a: &str, b: &str) -> bool {
    let line_number =
        |c: &str| c.strip_prefix("line ").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    a == b || (line_number(a) && line_number(b))
}

/// One change per stretch of lines: pairs of lines that differ only in a secret's fingerprint are `secret changed`
/// (the rest of a mixed stretch is still `changed`, `added` or `removed`).
fn classify(removed: &[NormLine], added: &[NormLine], changes: &mut Vec<Change>, secrets_changed: &mut usize) {
    let pairs = secret_pairs(removed, added);
    let (mut r, mut a, mut k) = (0, 0, 0);
    while k < pairs.len() {
        let (first_r, first_a) = pairs[k];
        push_change(&removed[r..first_r], &added[a..first_a], None, changes);
        // Neighbouring secret changes are one change.
        let mut end = k + 1;
        while end < pairs.len() && pairs[end] == (pairs[end - 1].0 + 1, pairs[end - 1].1 + 1) {
            end += 1;
        }
        let (r_end, a_end) = (pairs[end - 1].0 + 1, pairs[end - 1].1 + 1);
        push_change(&removed[first_r..r_end], &added[first_a..a_end], Some(ChangeKind::SecretChanged), changes);
        *secrets_changed += end - k;
        (r, a, k) = (r_end, a_end, end);
    }
    push_change(&removed[r..], &added[a..], None, changes);
}

/// Lines (removed index, added index), in order, that are equal but for the fingerprints of masked secrets.
fn secret_pairs(removed: &[NormLine], added: &[NormLine]) -> Vec<(usize, usize)> {
    let masked = |l: &NormLine| l.text.contains("<secret:") || l.text.contains("<private key:");
    let mut by_shape: HashMap<String, VecDeque<usize>> = HashMap::new();
    for (idx, line) in removed.iter().enumerate().filter(|(_, l)| masked(l)) {
        by_shape.entry(without_fingerprints(&line.text)).or_default().push_back(idx);
    }
    if by_shape.is_empty() {
        return Vec::new();
    }
    let mut pairs = Vec::new();
    let mut next_removed = 0;
    for (idx, line) in added.iter().enumerate().filter(|(_, l)| masked(l)) {
        let Some(candidates) = by_shape.get_mut(&without_fingerprints(&line.text)) else { continue };
        while candidates.front().is_some_and(|&r| r < next_removed) {
            candidates.pop_front();
        }
        if let Some(&r) = candidates.front() {
            if removed[r].text != line.text {
                candidates.pop_front();
                pairs.push((r, idx));
                next_removed = r + 1;
            }
        }
    }
    pairs
}

fn push_change(removed: &[NormLine], added: &[NormLine], kind: Option<ChangeKind>, changes: &mut Vec<Change>) {
    let kind = match (kind, removed.is_empty(), added.is_empty()) {
        (_, true, true) => return,
        (Some(kind), _, _) => kind,
        (None, true, false) => ChangeKind::Added,
        (None, false, true) => ChangeKind::Removed,
        (None, false, false) => ChangeKind::Changed,
    };
    let location = added.first().or(removed.first()).map(|l| l.context.to_string()).unwrap_or_default();
    changes.push(Change {
        kind,
        location,
        removed: removed.iter().map(|l| l.text.clone()).collect(),
        added: added.iter().map(|l| l.text.clone()).collect(),
    });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::{normalize, FingerprintKey};

    /// The changes between two texts as `(kind, location, removed, added)`.
    fn check(old: &str, new: &str, expect: &[(ChangeKind, &str, usize, usize)]) -> DiffReport {
        let key = FingerprintKey([3; 32]);
        // A header and separators make the snippets read as IOS.
        let ios = |body: &str| format!("version 15.2\nhostname r1\n!\ninterface Loopback0\n!\n{body}!\nend\n");
        let old = normalize(Some("r1.cfg"), ios(old).as_bytes(), &key).expect("normalize");
        let new = normalize(Some("r1.cfg"), ios(new).as_bytes(), &key).expect("normalize");
        assert_eq!(new.format, crate::normalize::Format::CiscoIos);
        let report = diff(&old, &new, false);
        let got: Vec<(ChangeKind, &str, usize, usize)> =
            report.changes.iter().map(|c| (c.kind, c.location.as_str(), c.removed.len(), c.added.len())).collect();
        assert_eq!(got, expect, "\n{}", render(&report));
        report
    }

    #[test]
    fn a_top_level_line_is_located_at_itself_not_at_the_block_before_it() {
        check(
            "interface Gi0/1\n description a\n!\nip route 10.0.0.0 255.0.0.0 192.0.2.1\n",
            "interface Gi0/1\n description a\n shutdown\n!\nip route 10.0.0.0 255.0.0.0 192.0.2.2\n",
            &[
                (ChangeKind::Added, "interface Gi0/1", 0, 1),
                (ChangeKind::Changed, "ip route 10.0.0.0 255.0.0.0 192.0.2.2", 1, 1),
            ],
        );
        // A new block after a line added to the previous one: two changes, each at its own block.
        check(
            "route-map rm permit 100\n match ip address 1\n",
            "route-map rm permit 100\n match ip address 1\n set local-preference 350\nroute-map rm permit 200\n match ip address 2\n",
            &[(ChangeKind::Added, "route-map rm permit 100", 0, 1), (ChangeKind::Added, "route-map rm permit 200", 0, 2)],
        );
        // A changed top-level line is still one change.
        check(
            "ip domain-name a.example\n",
            "ip domain-name b.example\n",
            &[(ChangeKind::Changed, "ip domain-name b.example", 1, 1)],
        );
    }

    #[test]
    fn a_secret_change_is_reported_as_such_next_to_other_changes() {
        let report = check(
            "interface Gi0/1\n description old\n ip ospf authentication-key 7 OldKey1\n mtu 1500\n",
            "interface Gi0/1\n description new\n ip ospf authentication-key 7 NewKey2\n mtu 9000\n",
            &[
                (ChangeKind::Changed, "interface Gi0/1", 1, 1),
                (ChangeKind::SecretChanged, "interface Gi0/1", 1, 1),
                (ChangeKind::Changed, "interface Gi0/1", 1, 1),
            ],
        );
        assert_eq!(report.secrets_changed, 1);
        let shown = render(&report);
        assert!(shown.contains("@@ interface Gi0/1 (secret changed)"), "{shown}");
        assert!(!shown.contains("OldKey1") && !shown.contains("NewKey2"), "{shown}");
        // Only secrets in a hunk: one change, as before.
        let report = check(
            "interface Gi0/1\n ip ospf authentication-key 7 One1\n ip ospf message-digest-key 1 md5 Two2\n",
            "interface Gi0/1\n ip ospf authentication-key 7 Three3\n ip ospf message-digest-key 1 md5 Four4\n",
            &[(ChangeKind::SecretChanged, "interface Gi0/1", 2, 2)],
        );
        assert_eq!(report.secrets_changed, 2);
    }
}
