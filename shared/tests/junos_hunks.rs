//! Junos curly diffs show balanced braces: a change that opens a block it does not close (a block made
//! `inactive:`, a block added where the diff takes the closing `}` of the block above) is shown with the
//! unchanged lines down to its closing `}`, or up from its opening line. Inputs are the kit's Junos files.

use std::path::{Path, PathBuf};

use datum_shared::diff::{diff, render, Change, DiffReport};
use datum_shared::normalize::{normalize, FingerprintKey, Format, Normalized};

fn kit(relative: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
    assert!(dir.is_dir(), "the kit is missing: expected fixtures at {}", dir.display());
    dir.join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(kit(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn norm(text: &str) -> Normalized {
    let normalized = normalize(Some("r1.conf"), text.as_bytes(), &FingerprintKey([6; 32])).expect("normalize");
    assert_eq!(normalized.format, Format::JunosCurly);
    normalized
}

/// Opened minus closed braces (Junos lines in the kit hold no braces inside strings).
fn balance<'a>(lines: impl IntoIterator<Item = &'a String>) -> i64 {
    lines.into_iter().map(|l| l.matches('{').count() as i64 - l.matches('}').count() as i64).sum()
}

/// The shown side of a change (the new one, or the old one for a removal) with its context balances.
fn assert_balanced(change: &Change, report: &DiffReport) {
    let side = if balance(&change.added) != 0 || change.removed.is_empty() { &change.added } else { &change.removed };
    let shown = change.context_before.iter().chain(side).chain(&change.context_after).filter(|l| *l != "…");
    assert_eq!(balance(shown), 0, "unbalanced change at {}:\n{}", change.location, render(report));
}

#[test]
fn a_large_block_made_inactive_is_shown_to_its_closing_brace() {
    let old = read("juniper/oxidized_junos_srx300_22.4.conf");
    let new = old.replacen("\n    ge-0/0/0 {\n", "\n    inactive: ge-0/0/0 {\n", 1);
    assert_ne!(old, new);
    let report = diff(&norm(&old), &norm(&new), false);
    assert_eq!(report.changes.len(), 1, "{}", render(&report));
    let change = &report.changes[0];
    assert_eq!(change.added, ["inactive: ge-0/0/0 {"]);
    // Seven lines to the closing brace: shown whole.
    assert_eq!(
        change.context_after,
        ["unit 0 {", "family inet {", "dhcp {", "vendor-id Juniper-srx300;", "}", "}", "}", "}"],
        "{}",
        render(&report)
    );
    assert_balanced(change, &report);
    let text = render(&report);
    assert!(text.ends_with("  }\n  }\njunos: 1 change(s)\n"), "{text}");
}

#[test]
fn a_section_made_inactive_shows_its_closing_brace_and_leaves_out_the_rest() {
    let old = read("juniper/oxidized_junos_srx300_22.4.conf");
    let new = old.replacen("\ninterfaces {\n", "\ninactive: interfaces {\n", 1);
    let report = diff(&norm(&old), &norm(&new), false);
    // A top-level statement is located at itself: the old and the new header are two changes.
    assert_eq!(report.changes.len(), 2, "{}", render(&report));
    for change in &report.changes {
        assert_eq!(change.context_after, ["…", "}"], "{}", render(&report));
        assert_balanced(change, &report);
    }
}

#[test]
fn a_block_added_inside_a_section_balances() {
    let old = read("juniper/oxidized_junos_srx300_22.4.conf");
    let block = "    ge-0/0/9 {\n        unit 0 {\n            family inet {\n                address 10.0.9.1/24;\n            }\n        }\n    }\n";
    let at = old.find("    ge-0/0/1 {\n").expect("ge-0/0/1");
    let new = format!("{}{block}{}", &old[..at], &old[at..]);
    let report = diff(&norm(&old), &norm(&new), false);
    assert!(!report.changes.is_empty());
    for change in &report.changes {
        assert_balanced(change, &report);
    }
}

#[test]
fn a_block_like_its_neighbour_added_is_shown_with_its_braces() {
    // A copy of the block above, renamed: its closing braces could be taken for the old block's.
    let old = read("juniper/oxidized_junos_srx300_22.4.conf");
    let start = old.find("    ge-0/0/1 {\n").expect("ge-0/0/1");
    let end = old.find("    ge-0/0/2 {\n").expect("ge-0/0/2");
    let copy = old[start..end].replacen("ge-0/0/1", "ge-0/0/9", 1);
    let new = format!("{}{copy}{}", &old[..end], &old[end..]);
    let report = diff(&norm(&old), &norm(&new), false);
    assert!(!report.changes.is_empty());
    for change in &report.changes {
        assert_balanced(change, &report);
    }
}

#[test]
fn a_removed_block_balances() {
    let old = read("juniper/oxidized_junos_srx300_22.4.conf");
    let start = old.find("    ge-0/0/2 {\n").expect("ge-0/0/2");
    let end = old.find("    ge-0/0/3 {\n").expect("ge-0/0/3");
    let new = format!("{}{}", &old[..start], &old[end..]);
    let report = diff(&norm(&old), &norm(&new), false);
    assert!(!report.changes.is_empty());
    for change in &report.changes {
        assert_balanced(change, &report);
    }
}

#[test]
fn every_junos_step_of_the_kit_balances() {
    let dir = kit("versions");
    let mut n_steps = 0;
    for stem in ["scale_delong-sw02_juniper", "scale_br-mdf-01", "scale_cf-mdf-01"] {
        for from in 1..4 {
            let (a, b) = (dir.join(format!("{stem}.v{from}.conf")), dir.join(format!("{stem}.v{}.conf", from + 1)));
            if !b.is_file() {
                continue;
            }
            let text = |p: &Path| std::fs::read_to_string(p).expect("fixture");
            let (old, new) = (norm(&text(&a)), norm(&text(&b)));
            let report = diff(&old, &new, false);
            for change in &report.changes {
                assert_balanced(change, &report);
            }
            n_steps += 1;
        }
    }
    assert!(n_steps >= 5, "{n_steps} Junos steps");
}

#[test]
fn a_header_renamed_inside_a_block_is_shown_to_its_closing_brace() {
    let old = read("juniper/oxidized_junos_srx300_22.4.conf");
    let new = old.replacen(
        "            family inet {\n                dhcp {",
        "            family inet6 {\n                dhcp {",
        1,
    );
    assert_ne!(old, new);
    let report = diff(&norm(&old), &norm(&new), false);
    assert_eq!(report.changes.len(), 1, "{}", render(&report));
    let change = &report.changes[0];
    assert_eq!(
        (change.removed.as_slice(), change.added.as_slice()),
        (&["family inet {".to_string()][..], &["family inet6 {".to_string()][..])
    );
    assert_eq!(change.context_after, ["dhcp {", "vendor-id Juniper-srx300;", "}", "}"], "{}", render(&report));
    assert_balanced(change, &report);
}

#[test]
fn a_block_unwrapped_shows_each_brace_with_its_partner() {
    // `dhcp { vendor-id …; }` becomes the bare statement: the header and the closing brace are removed apart.
    let old = read("juniper/oxidized_junos_srx300_22.4.conf");
    let new = old.replacen(
        "                dhcp {\n                    vendor-id Juniper-srx300;\n                }\n",
        "                vendor-id Juniper-srx300;\n",
        1,
    );
    assert_ne!(old, new);
    let report = diff(&norm(&old), &norm(&new), false);
    let text = render(&report);
    assert!(report.changes.iter().any(|c| !c.context_before.is_empty()), "{text}");
    assert!(report.changes.iter().any(|c| !c.context_after.is_empty()), "{text}");
    for change in &report.changes {
        assert_balanced(change, &report);
    }
}
