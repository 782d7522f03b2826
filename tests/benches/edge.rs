//! `cargo bench -p datum-tests --bench edge`: the edge's speed targets, each next to its comparison baseline
//! measured in the same run (git, this machine's SHA-256 and zstd, automerge's own write speed).
//!
//! Prints a Markdown table; docs/PERFORMANCE.md records a run. Needs `git` on PATH and the kit at
//! ../shared/fixtures. Set `DATUM_BENCH_QUICK=1` for a fast smoke run with smaller sizes, and
//! `DATUM_BENCH_ONLY=capture,versions` (parts: `capture`, `versions`, `inventory`) to run some parts.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use datum_tests::{bin, fixture, Plant};

struct Measured {
    wall: Duration,
    max_rss_kib: i64,
    code: i32,
}

/// Runs a command and measures its wall time and peak resident memory (from wait4).
fn measure(cmd: &mut Command) -> Measured {
    let start = Instant::now();
    let (code, max_rss_kib) = datum_tests::run_measured(cmd);
    Measured { wall: start.elapsed(), max_rss_kib, code }
}

/// Whether this part of the bench runs (`DATUM_BENCH_ONLY` unset, or a comma-separated list naming it).
fn selected(part: &str) -> bool {
    std::env::var("DATUM_BENCH_ONLY").map_or(true, |only| only.is_empty() || only.split(',').any(|p| p == part))
}

fn quick() -> bool {
    std::env::var("DATUM_BENCH_QUICK").is_ok_and(|v| !v.is_empty())
}

fn text_like(mib: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(mib * 1024 * 1024 + 200);
    let mut x = seed | 1;
    while out.len() < mib * 1024 * 1024 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let _ = writeln!(
            out,
            "<Rung Number=\"{}\" Type=\"N\"><Text>XIC(Tag_{}) OTE(Out_{}) MOV({} N7:{})</Text></Rung>",
            x % 100_000,
            x % 5000,
            (x >> 12) % 5000,
            x % 977,
            (x >> 20) % 256
        );
    }
    out.truncate(mib * 1024 * 1024);
    out
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.invalid")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.invalid")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("git on PATH");
    assert!(status.success(), "git {args:?} failed");
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                total += dir_bytes(&p);
            } else if let Ok(m) = p.metadata() {
                total += m.len();
            }
        }
    }
    total
}

fn main() {
    // Only run when asked for benchmarks (cargo test --benches passes no --bench flag).
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let edge = bin("datum-edge");
    println!("binary: {}\n", edge.display());
    println!("| measurement | result | comparison (same run) |");
    println!("|---|---|---|");
    if selected("capture") {
        raw_speeds_and_capture();
    }
    if selected("versions") {
        version_storage();
    }
    if selected("inventory") {
        inventory_scale();
    }
}

fn raw_speeds_and_capture() {
    let mib = if quick() { 8 } else { 50 };
    let data = text_like(mib, 42);
    let n = data.len() as u64;
    let t = Instant::now();
    let digest = <sha2::Sha256 as sha2::Digest>::digest(&data);
    let sha = t.elapsed();
    std::hint::black_box(digest);
    let t = Instant::now();
    let compressed = zstd::bulk::compress(&data, 3).expect("zstd");
    let zstd_time = t.elapsed();
    println!("| SHA-256 of {mib} MiB (in process) | {:.0} MB/s | raw hardware figure |", mbps(n, sha));
    println!(
        "| zstd -3 of {mib} MiB (in process) | {:.0} MB/s, ratio {:.1} | raw hardware figure |",
        mbps(n, zstd_time),
        n as f64 / compressed.len() as f64
    );

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut rss = 0;
    for round in 0..3 {
        let plant = Plant::new("bench");
        plant.ok(&["asset", "add", "PLC-1", "--kind", "plc"]);
        let file = plant.write("export.L5X", &data);
        let m = measure(&mut plant.command(&["config", "capture", "PLC-1", file.to_str().expect("utf-8")]));
        assert_eq!(m.code, 0);
        ours.push(m.wall);
        rss = rss.max(m.max_rss_kib);
        let repo = plant.path(&format!("git{round}"));
        std::fs::create_dir_all(&repo).expect("mkdir");
        git(&repo, &["init", "-q"]);
        std::fs::write(repo.join("export.L5X"), &data).expect("write");
        let t = Instant::now();
        git(&repo, &["add", "export.L5X"]);
        git(&repo, &["commit", "-q", "-m", "capture"]);
        theirs.push(t.elapsed());
    }
    let rounds =
        |v: &[Duration]| v.iter().map(|d| format!("{:.0}", d.as_secs_f64() * 1e3)).collect::<Vec<_>>().join(", ");
    let (ours_rounds, theirs_rounds) = (rounds(&ours), rounds(&theirs));
    let (ours, theirs) = (median(ours), median(theirs));
    println!(
        "| `config capture` of a {mib} MiB export (median of 3: {ours_rounds} ms) | {:.0} ms = {:.0} MB/s, peak RSS {} MiB | `git add` + `git commit` (rounds: {theirs_rounds} ms): {:.0} ms = {:.0} MB/s ({:.1}x slower) |",
        ours.as_secs_f64() * 1e3,
        mbps(n, ours),
        rss / 1024,
        theirs.as_secs_f64() * 1e3,
        mbps(n, theirs),
        theirs.as_secs_f64() / ours.as_secs_f64()
    );
}

fn version_storage() {
    let dir = fixture("versions/SOURCES.md").parent().expect("dir").to_path_buf();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("versions")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n != "SOURCES.md"))
        .collect();
    files.sort();
    // NAME.vN.ext -> (NAME, N)
    let mut series: Vec<(String, u32, PathBuf)> = files
        .iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            let idx = name.rfind(".v")?;
            let rest = &name[idx + 2..];
            let n: u32 = rest.split('.').next()?.parse().ok()?;
            Some((name[..idx].to_string(), n, p.clone()))
        })
        .collect();
    series.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    let raw: u64 = series.iter().map(|(_, _, p)| p.metadata().map(|m| m.len()).unwrap_or(0)).sum();

    let plant = Plant::new("bench");
    let mut names: Vec<&String> = series.iter().map(|s| &s.0).collect();
    names.sort();
    names.dedup();
    let asset_of = |name: &str| -> String {
        let mut a: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
        a.truncate(60);
        a.trim_start_matches('-').to_string()
    };
    for name in &names {
        plant.ok(&["asset", "add", &asset_of(name), "--kind", "other"]);
    }
    let t = Instant::now();
    for (name, _, path) in &series {
        plant.ok(&["config", "capture", &asset_of(name), path.to_str().expect("utf-8")]);
    }
    let capture_time = t.elapsed();
    let blob_bytes = dir_bytes(&plant.data.join("blobs"));
    let data_bytes = dir_bytes(&plant.data);
    let file_bytes = |name: &str| plant.data.join(name).metadata().map(|m| m.len()).unwrap_or(0);
    let (db_bytes, wal_bytes) = (file_bytes("datum.db"), file_bytes("datum.db-wal"));

    // The same files as one tar archive (series together, in name order) compressed by zstd -19 in process: what
    // a compressor that sees every file at once reaches, cross-file matches included.
    let mut archive = tar::Builder::new(Vec::new());
    for path in &files {
        let name = path.file_name().and_then(|n| n.to_str()).expect("utf-8 name");
        archive.append_path_with_name(path, name).expect("tar");
    }
    let archive = archive.into_inner().expect("tar");
    let tar_zstd = zstd::bulk::compress(&archive, 19).expect("zstd").len() as u64;

    let repo = plant.path("git");
    std::fs::create_dir_all(&repo).expect("mkdir");
    git(&repo, &["init", "-q"]);
    for (i, (name, _, path)) in series.iter().enumerate() {
        std::fs::copy(path, repo.join(name)).expect("copy");
        git(&repo, &["add", name]);
        git(&repo, &["commit", "-q", "-m", &format!("capture {i}")]);
    }
    git(&repo, &["gc", "--aggressive", "--quiet"]);
    let pack = dir_bytes(&repo.join(".git/objects"));
    println!(
        "| `fixtures/versions` ({} files, {} series, {} KiB raw) captured in order | blob store {} KiB = {} bytes ({} KiB whole data dir: database {} KiB, WAL {} KiB); {} captures in {:.1} s | git, committed in order + `git gc --aggressive`: objects {} KiB; `tar` of the files + zstd -19: {} KiB = {} bytes |",
        series.len(),
        names.len(),
        raw / 1024,
        blob_bytes / 1024,
        blob_bytes,
        data_bytes / 1024,
        db_bytes / 1024,
        wal_bytes / 1024,
        series.len(),
        capture_time.as_secs_f64(),
        pack / 1024,
        tar_zstd / 1024,
        tar_zstd
    );
}

fn inventory_scale() {
    let n_assets = if quick() { 2_000 } else { 10_000 };
    // automerge's own write speed: the same number of puts in one transaction, in process.
    let fields = 14;
    let t = Instant::now();
    let mut doc = automerge::Automerge::new();
    {
        use automerge::transaction::Transactable;
        let mut tx = doc.transaction();
        let assets = tx.put_object(automerge::ROOT, "assets", automerge::ObjType::Map).expect("put");
        for i in 0..n_assets {
            let a = tx.put_object(&assets, format!("A-{i:05}"), automerge::ObjType::Map).expect("put");
            for f in 0..fields {
                tx.put(&a, format!("f{f}"), format!("value {i} {f}")).expect("put");
            }
        }
        tx.commit();
    }
    let am = t.elapsed();
    let puts = n_assets * (fields + 1);
    println!(
        "| automerge {} puts in one transaction (in process) | {:.2} s = {:.0} puts/s | automerge's own limit |",
        puts,
        am.as_secs_f64(),
        puts as f64 / am.as_secs_f64()
    );

    let plant = Plant::new("bench");
    let mut csv = String::from("name,kind,vendor,model,serial,firmware,location,zone,ip,criticality,owner,in_scope\n");
    let kinds = ["plc", "hmi", "switch", "firewall", "rtu", "server"];
    let crits = ["low", "medium", "high", "critical"];
    for i in 0..n_assets {
        csv.push_str(&format!(
            "A-{i:05},{},Vendor{},Model{},SN{i:08},1.{}.{},Hall {},zone-{},10.{}.{}.{},{},owner{},yes\n",
            kinds[i % kinds.len()],
            i % 7,
            i % 13,
            i % 10,
            i % 4,
            i % 5,
            i % 20,
            (i / 65536) % 256,
            (i / 256) % 256,
            i % 256,
            crits[i % 4],
            i % 9
        ));
    }
    let file = plant.write("inventory.csv", csv.as_bytes());
    let import = measure(&mut plant.command(&["asset", "import", file.to_str().expect("utf-8"), "--json"]));
    assert_eq!(import.code, 0, "import failed");
    println!(
        "| `asset import` of {n_assets} rows | {:.2} s, peak RSS {} MiB | target ≤ 5 s, ≤ 200 MiB |",
        import.wall.as_secs_f64(),
        import.max_rss_kib / 1024
    );
    // Give a few hundred assets captures and baselines so drift has versions to compare.
    let n_captured = if quick() { 50 } else { 300 };
    let cfg = plant.write("cfg.txt", b"hostname x\n");
    let cfg2 = plant.write("cfg2.txt", b"hostname y\n");
    for i in 0..n_captured {
        let name = format!("A-{i:05}");
        plant.ok(&["config", "capture", &name, cfg.to_str().expect("utf-8"), "--slot", "running-config"]);
        plant.ok(&["baseline", "approve", &name, "--reason", "bench"]);
        if i % 3 == 0 {
            plant.ok(&["config", "capture", &name, cfg2.to_str().expect("utf-8"), "--slot", "running-config"]);
        }
    }
    for args in [vec!["asset", "list", "--json"], vec!["drift", "--json"]] {
        let mut walls = Vec::new();
        let mut rss = 0;
        for _ in 0..5 {
            let m = measure(&mut plant.command(&args));
            assert!(m.code == 0 || m.code == 1, "{args:?} failed");
            walls.push(m.wall);
            rss = rss.max(m.max_rss_kib);
        }
        println!(
            "| `{}` over {n_assets} assets ({n_captured} with versions; median of 5, whole process) | {:.0} ms, peak RSS {} MiB | target ≤ 300 ms, ≤ 200 MiB |",
            args.join(" "),
            median(walls).as_secs_f64() * 1e3,
            rss / 1024
        );
    }
    let verify = measure(&mut plant.command(&["audit", "verify", "--json"]));
    println!(
        "| `audit verify` of that site | {:.2} s, peak RSS {} MiB | (no target) |",
        verify.wall.as_secs_f64(),
        verify.max_rss_kib / 1024
    );
}
