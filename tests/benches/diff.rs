//! `cargo bench -p datum-tests --bench diff`: normalisation and diff speed against `git diff --no-index
//! --histogram` on the same files, measured in the same run (docs/PERFORMANCE.md).

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use datum_shared::diff::diff;
use datum_shared::normalize::{normalize, normalize_pair, FingerprintKey};
use datum_tests::bin;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<F: FnMut()>(runs: usize, mut f: F) -> Duration {
    let mut all = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        f();
        all.push(t.elapsed());
    }
    median(all)
}

/// A Cisco-like config of `n` lines; `changed` perturbs 1 % of them.
fn cisco(n: usize, changed: bool) -> String {
    let mut out = String::with_capacity(n * 40);
    let mut line = 0;
    let mut i = 0;
    while line < n {
        let _ = writeln!(out, "interface GigabitEthernet{}/{}", i / 48, i % 48);
        let desc = if changed && i % 20 == 7 { format!("uplink {i} moved") } else { format!("uplink {i}") };
        let _ = writeln!(out, " description {desc}");
        let _ = writeln!(out, " ip address 10.{}.{}.1 255.255.255.0", (i / 250) % 250, i % 250);
        let _ = writeln!(out, " no shutdown");
        let _ = writeln!(out, "!");
        line += 5;
        i += 1;
    }
    out
}

/// A PLCopen-like XML export of about `bytes` bytes; `changed` edits 1 % of the code lines.
fn plcopen(bytes: usize, changed: bool) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<project xmlns=\"http://www.plcopen.org/xml/tc6_0200\">\n  <fileHeader companyName=\"x\" creationDateTime=\"2024-01-01T00:00:00\" />\n  <types><pous>\n");
    let mut i = 0;
    while out.len() < bytes {
        let _ = writeln!(out, "    <pou name=\"FB_{i}\" pouType=\"functionBlock\"><interface><localVars><variable name=\"x{i}\"><type><INT /></type></variable></localVars></interface><body><ST><xhtml xmlns=\"http://www.w3.org/1999/xhtml\">");
        for j in 0..10 {
            let edit = if changed && (i * 10 + j) % 100 == 3 { " + 1" } else { "" };
            let _ = writeln!(out, "IF x{i} &gt; {j} THEN y{j} := x{i} * {j}{edit}; END_IF; (* step {j} *)");
        }
        let _ = writeln!(out, "</xhtml></ST></body></pou>");
        i += 1;
    }
    out.push_str("  </pous></types>\n</project>\n");
    out
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let key = FingerprintKey([3; 32]);
    let dir = tempfile::tempdir().expect("tempdir");
    println!("| measurement | result | comparison (same run) |");
    println!("|---|---|---|");

    // `DATUM_BENCH_ONLY=xml` runs the XML part alone (for profiling).
    if std::env::var("DATUM_BENCH_ONLY").as_deref() != Ok("xml") {
        lines_benchmark(&key, dir.path());
    }
    xml_benchmark(&key);
}

fn lines_benchmark(key: &FingerprintKey, dir: &std::path::Path) {
    // 1. Two 100,000-line configs with 1 % of lines changed.
    let (a, b) = (cisco(100_000, false), cisco(100_000, true));
    let (pa, pb) = (dir.join("a.cfg"), dir.join("b.cfg"));
    std::fs::write(&pa, &a).expect("write");
    std::fs::write(&pb, &b).expect("write");
    let in_process = time(5, || {
        let (na, nb) = normalize_pair(Some("a.cfg"), a.as_bytes(), b.as_bytes(), key);
        std::hint::black_box(diff(&na.expect("normalize"), &nb.expect("normalize"), false));
    });
    let edge = bin("datum-edge");
    let ours = time(5, || {
        let out = Command::new(&edge).args(["diff", "--json"]).arg(&pa).arg(&pb).output().expect("datum-edge diff");
        assert_eq!(out.status.code(), Some(1));
    });
    let git = time(5, || {
        let out = Command::new("git")
            .args(["diff", "--no-index", "--histogram", "--no-color"])
            .arg(&pa)
            .arg(&pb)
            .output()
            .expect("git on PATH");
        assert_eq!(out.status.code(), Some(1));
    });
    println!(
        "| normalise + diff two 100,000-line configs, 1 % changed | in process {:.0} ms; `datum-edge diff --json` {:.0} ms | `git diff --no-index --histogram`: {:.0} ms |",
        in_process.as_secs_f64() * 1e3,
        ours.as_secs_f64() * 1e3,
        git.as_secs_f64() * 1e3
    );
}

/// Every run's time, sorted.
fn times<F: FnMut()>(runs: usize, mut f: F) -> Vec<Duration> {
    let mut all: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    all.sort();
    all
}

fn xml_benchmark(key: &FingerprintKey) {
    // 2. A 1 MiB XML export: normalise both sides and diff them, as `datum-edge diff` does (the results are
    // dropped inside the measurement too).
    let (xa, xb) = (plcopen(1 << 20, false), plcopen(1 << 20, true));
    let all = times(21, || {
        let (na, nb) = normalize_pair(Some("a.xml"), xa.as_bytes(), xb.as_bytes(), key);
        std::hint::black_box(diff(&na.expect("normalize"), &nb.expect("normalize"), false));
    });
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (min, xml, max) = (all[0], all[all.len() / 2], all[all.len() - 1]);
    let one = time(9, || {
        std::hint::black_box(normalize(Some("a.xml"), xa.as_bytes(), key).expect("normalize"));
    });
    let (na, nb) = (
        normalize(Some("a.xml"), xa.as_bytes(), key).expect("n"),
        normalize(Some("b.xml"), xb.as_bytes(), key).expect("n"),
    );
    let diff_only = time(9, || {
        std::hint::black_box(diff(&na, &nb, false));
    });
    println!(
        "| normalise + diff two 1 MiB PLCopen XML exports ({} KiB, {} lines each), both sides normalised in parallel | median {:.1} ms, min {:.1}, max {:.1} over {} runs (one normalisation {:.1} ms, the diff {:.1} ms; medians) | target ≤ 50 ms |",
        xa.len() / 1024,
        na.lines.len(),
        ms(xml),
        ms(min),
        ms(max),
        all.len(),
        ms(one),
        ms(diff_only)
    );
}
