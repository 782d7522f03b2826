//! `cargo bench -p datum-tests --bench diff`: normalisation and diff speed against `git diff --no-index
//! --histogram` on the same files, measured in the same run (docs/PERFORMANCE.md).
//!
//! The 100,000-line cases are assembled from the kit's real Cisco exports (`../shared/fixtures/cisco-ios`): an
//! ASA-shaped and an IOS-shaped pair. `DATUM_BENCH_ONLY=xml|cisco|kit` runs one part alone (for profiling);
//! `DATUM_BENCH_WRITE=DIR` also leaves the kit-assembled inputs in DIR (for `valgrind` or `perf` on the binary).

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use datum_shared::diff::diff;
use datum_shared::normalize::{normalize, normalize_pair, FingerprintKey};
use datum_tests::{bin, fixture};

// The allocator of `datum-edge`, so that the in-process figures are those of the command's code.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

    let only = std::env::var("DATUM_BENCH_ONLY").ok();
    let runs = |part: &str| only.as_deref().is_none_or(|o| o == part);
    if runs("cisco") {
        lines_benchmark(&key, dir.path());
    }
    if runs("kit") {
        let out = std::env::var_os("DATUM_BENCH_WRITE").map(std::path::PathBuf::from);
        kit_benchmark(&key, out.as_deref().unwrap_or(dir.path()));
    }
    if runs("xml") {
        xml_benchmark(&key);
    }
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

/// The kit's ASA exports, in the order they are concatenated.
const KIT_ASA: &[&str] =
    &["oxidized_asa_5512_9.12-4-67_single-context.cfg", "raw_asa_5512_more-system-running-config.txt"];

/// The kit's IOS and IOS-XE exports, then NX-OS and IOS-XR. The last two only from the second round on: within
/// the first 64 KiB (what detection reads) they would make the whole file detect as NX-OS or IOS-XR.
const KIT_IOS: &[&str] = &[
    "oxidized_ios_C9200L-24P-4G_17.09.04a.cfg",
    "oxidized_ios_C9800-L-F-K9_17.06.05.cfg",
    "oxidized_ios_asr920_16.8.1b.cfg",
    "pybatfish_exitgw.cfg",
    "pybatfish_london.cfg",
    "pybatfish_route-analysis_border1.cfg",
    "pybatfish_tokyo.cfg",
    "raw_ios_C9200L-24P-4G_show-running-config.txt",
];
const KIT_IOS_LATER: &[&str] = &["oxidized_nxos_N5548_7.3.13.cfg", "scrapli_iosxrv_6.5.3_running-config.txt"];

/// About `n_lines` lines of real exports: the files whole, in a fixed order, round after round; round `k` > 0
/// renumbers addresses and names (`vary`) so that the content is not trivially repeated.
fn kit_config(first: &[&str], later: &[&str], n_lines: usize) -> Vec<String> {
    let read = |name: &str| {
        let path = fixture(&format!("cisco-ios/{name}"));
        String::from_utf8(std::fs::read(&path).expect("read fixture")).expect("the kit's Cisco files are UTF-8")
    };
    let first: Vec<String> = first.iter().map(|n| read(n)).collect();
    let later: Vec<String> = later.iter().map(|n| read(n)).collect();
    let mut lines = Vec::with_capacity(n_lines + 1000);
    let mut round = 0;
    while lines.len() < n_lines {
        let files = first.iter().chain(if round == 0 { &later[..0] } else { &later[..] });
        for file in files {
            lines.extend(file.lines().map(|l| vary(l, round)));
        }
        round += 1;
    }
    lines
}

/// Round `k` of a line: IPv4 addresses moved (`10.42.1.2` → `10.42.(1+k).2`, masks kept), names of objects,
/// groups, lists, maps, users and the host suffixed with `-k`, interfaces made sub-interfaces `.k`, descriptions
/// numbered.
fn vary(line: &str, k: usize) -> String {
    if k == 0 {
        return line.to_string();
    }
    let original: Vec<&str> = line.split(' ').collect();
    let mut words: Vec<String> = original.iter().map(|w| w.to_string()).collect();
    let first = original.iter().position(|w| !w.is_empty()).unwrap_or(0);
    let word = |i: usize| original.get(i).copied().unwrap_or("");
    let name_at = match (word(first), word(first + 1)) {
        ("hostname" | "nameif" | "username" | "access-list" | "route-map" | "class-map" | "policy-map", _) => {
            Some(first + 1)
        }
        ("object" | "object-group", _) | ("crypto", "map") => Some(first + 2),
        ("ip" | "ipv6", "access-list") => Some(first + 3),
        _ => None,
    };
    if let Some(i) = name_at.filter(|&i| i < words.len() && !words[i].is_empty()) {
        words[i] = format!("{}-{k}", words[i]);
    }
    if word(first) == "interface" && first + 1 < words.len() {
        words[first + 1] = format!("{}.{k}", words[first + 1]);
    }
    if word(first) == "description" {
        words.push(format!("{k}"));
    }
    for word in &mut words {
        if let Some(moved) = moved_address(word, k) {
            *word = moved;
        }
    }
    words.join(" ")
}

/// `a.b.c.d` with its third octet moved by `k` (and the second by `k / 256`); masks and wildcards stay.
fn moved_address(word: &str, k: usize) -> Option<String> {
    let (address, rest) = match word.split_once('/') {
        Some((a, r)) => (a, format!("/{r}")),
        None => (word, String::new()),
    };
    let octets: Vec<usize> = address.split('.').map(|o| o.parse().ok()).collect::<Option<_>>()?;
    if octets.len() != 4 || octets.iter().any(|&o| o > 255) || matches!(octets[0], 0 | 255) {
        return None;
    }
    let (b, c) = ((octets[1] + k / 256) % 256, (octets[2] + k) % 256);
    Some(format!("{}.{b}.{c}.{}{rest}", octets[0], octets[3]))
}

/// The new side: 1 % of the lines changed, spread evenly (the first configuration line at or after every
/// hundredth line gets a trailing word; comments and blank lines are passed over).
fn changed_lines(lines: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(lines.len());
    let mut due = false;
    for (idx, line) in lines.iter().enumerate() {
        due |= idx % 100 == 50;
        let trimmed = line.trim();
        if due && !trimmed.is_empty() && !trimmed.starts_with('!') && !trimmed.starts_with(':') {
            out.push(format!("{line} 7"));
            due = false;
        } else {
            out.push(line.clone());
        }
    }
    out
}

/// Runs both commands `runs` times, alternating, so that load from elsewhere weighs on both alike; the medians.
fn alternate(runs: usize, mut ours: impl FnMut(), mut theirs: impl FnMut()) -> (Duration, Duration) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = Instant::now();
        ours();
        a.push(t.elapsed());
        let t = Instant::now();
        theirs();
        b.push(t.elapsed());
    }
    (median(a), median(b))
}

fn kit_benchmark(key: &FingerprintKey, dir: &std::path::Path) {
    let edge = bin("datum-edge");
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for (shape, first, later) in [("ASA", KIT_ASA, &[][..]), ("IOS", KIT_IOS, KIT_IOS_LATER)] {
        let a_lines = kit_config(first, later, 100_000);
        let b_lines = changed_lines(&a_lines);
        let (a, b) = (a_lines.join("\n") + "\n", b_lines.join("\n") + "\n");
        let lower = shape.to_ascii_lowercase();
        let (pa, pb, pc) = (
            dir.join(format!("{lower}-a.cfg")),
            dir.join(format!("{lower}-b.cfg")),
            dir.join(format!("{lower}-a-copy.cfg")),
        );
        for (path, text) in [(&pa, &a), (&pb, &b), (&pc, &a)] {
            std::fs::write(path, text).expect("write");
        }
        let normalized = normalize(Some("a.cfg"), a.as_bytes(), key).expect("normalize");
        // Each result is freed after its measurement, as `datum-edge diff` frees them after its answer.
        let one = median(
            (0..7)
                .map(|_| {
                    let t = Instant::now();
                    let result = normalize(Some("a.cfg"), a.as_bytes(), key).expect("normalize");
                    let elapsed = t.elapsed();
                    drop(result);
                    elapsed
                })
                .collect(),
        );
        let mb_per_s = a.len() as f64 / one.as_secs_f64() / 1e6;
        let diff_only = {
            let nb = normalize(Some("b.cfg"), b.as_bytes(), key).expect("normalize");
            time(5, || {
                std::hint::black_box(diff(&normalized, &nb, false));
            })
        };
        let edge_diff = |old: &std::path::Path, new: &std::path::Path, code: i32| {
            let out = Command::new(&edge).args(["diff", "--json"]).arg(old).arg(new).output().expect("datum-edge diff");
            assert_eq!(out.status.code(), Some(code), "{}", String::from_utf8_lossy(&out.stderr));
        };
        let git_diff = |old: &std::path::Path, new: &std::path::Path, code: i32| {
            let out = Command::new("git")
                .args(["diff", "--no-index", "--histogram", "--no-color"])
                .arg(old)
                .arg(new)
                .output()
                .expect("git on PATH");
            assert_eq!(out.status.code(), Some(code));
        };
        let (ours, git) = alternate(7, || edge_diff(&pa, &pb, 1), || git_diff(&pa, &pb, 1));
        let (ours_same, git_same) = alternate(7, || edge_diff(&pa, &pc, 0), || git_diff(&pa, &pc, 0));
        println!(
            "| kit {shape} pair: {} lines, {:.1} MB each ({}), 1 % of lines changed: `datum-edge diff --json A B` | {:.0} ms ({:.2}× git) | `git diff --no-index --histogram A B`: {:.0} ms |",
            a_lines.len(),
            a.len() as f64 / 1e6,
            normalized.format.as_str(),
            ms(ours),
            ours.as_secs_f64() / git.as_secs_f64(),
            ms(git)
        );
        println!(
            "| kit {shape}: A against an identical copy of A | {:.0} ms ({:.2}× git) | git: {:.0} ms |",
            ms(ours_same),
            ours_same.as_secs_f64() / git_same.as_secs_f64(),
            ms(git_same)
        );
        println!(
            "| kit {shape}: one normalisation in process, one thread ({} lines kept) | {:.1} ms, **{:.0} MB/s** | target ≥ 100 MB/s; the diff of the normalised pair {:.1} ms |",
            normalized.lines.len(),
            ms(one),
            mb_per_s,
            ms(diff_only)
        );
    }
}
