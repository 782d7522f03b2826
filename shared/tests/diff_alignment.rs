//! A diff reports what changed and no more, on the shapes of real exports: a large configuration assembled
//! from the kit's Cisco ASA exports (many lines repeated in every block, `!` separators, object-groups and
//! access lists), with one line in a hundred edited, is that many changed lines — not thousands of lines
//! taken out in one place and put back in another. The histogram diff of imara-diff 0.1 failed this
//! (15,622 removed lines and 8,325 `moved` changes for 1,000 edited lines); the diff is Myers' since.

use std::path::{Path, PathBuf};

use datum_shared::diff::{diff, ChangeKind};
use datum_shared::normalize::{normalize, FingerprintKey};

fn kit(relative: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
    assert!(dir.is_dir(), "the kit is missing: expected fixtures at {}", dir.display());
    dir.join(relative)
}

/// The kit's ASA exports, repeated with their object and access-list lines numbered per round (as in a
/// firewall that grew), to about `lines` lines.
fn assembled(lines: usize) -> Vec<String> {
    let files = [
        "cisco-ios/oxidized_asa_5512_9.12-4-67_single-context.cfg",
        "cisco-ios/raw_asa_5512_more-system-running-config.txt",
    ];
    let texts: Vec<String> = files
        .iter()
        .map(|f| String::from_utf8_lossy(&std::fs::read(kit(f)).expect("read the kit")).into_owned())
        .collect();
    let mut out = Vec::new();
    for round in 0.. {
        for text in &texts {
            for line in text.lines() {
                if out.len() == lines {
                    return out;
                }
                let numbered = line.starts_with("object") || line.starts_with("access-list");
                out.push(if numbered { format!("{line} r{round}") } else { line.to_string() });
            }
        }
    }
    unreachable!()
}

#[test]
fn one_edited_line_in_a_hundred_is_that_many_changes_on_a_real_firewall_shape() {
    let old = assembled(30_000);
    let mut new = old.clone();
    let mut edited = 0;
    for line in new.iter_mut().step_by(100) {
        line.push_str(" edited");
        edited += 1;
    }
    let key = FingerprintKey([7; 32]);
    let a = normalize(Some("asa.cfg"), old.join("\n").as_bytes(), &key).expect("normalize");
    let b = normalize(Some("asa.cfg"), new.join("\n").as_bytes(), &key).expect("normalize");
    let report = diff(&a, &b, false);
    let removed: usize = report.changes.iter().map(|c| c.removed.len()).sum();
    let added: usize = report.changes.iter().map(|c| c.added.len()).sum();
    let moved = report.changes.iter().filter(|c| c.kind == ChangeKind::Moved).count();
    assert_eq!(moved, 0, "nothing moved");
    assert!(removed <= edited && added <= edited, "{edited} lines edited: {removed} removed, {added} added");
    assert!(added * 10 >= edited * 7, "most edits are seen as such ({added} of {edited}; the rest are noise)");
}
