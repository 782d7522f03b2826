//! Crash safety and exclusive ownership: kill -9 in the middle of a capture, then reopen without repair.

use std::io::Write as _;
use std::time::{Duration, Instant};

use datum_tests::Plant;

/// A large, text-like file (compresses like a real export, big enough to take a while).
fn big_file(plant: &Plant, name: &str, mib: usize, seed: u64) -> std::path::PathBuf {
    let path = plant.path(name);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    let mut x = seed | 1;
    let mut written = 0;
    while written < mib * 1024 * 1024 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let line = format!(
            "set firewall rule {} action accept source 10.{}.{}.0/24 # {:x}\n",
            x % 100_000,
            x % 250,
            (x >> 8) % 250,
            x
        );
        out.write_all(line.as_bytes()).expect("write");
        written += line.len();
    }
    out.flush().expect("flush");
    path
}

fn wait_until(deadline: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

#[test]
fn kill_9_during_capture_leaves_a_consistent_site_and_the_lock_names_its_holder() {
    let plant = Plant::new("plant-east");
    plant.ok(&["asset", "add", "SCADA-1", "--kind", "scada-server"]);
    let big = big_file(&plant, "project.bak", 96, 7);
    let big_arg = big.to_str().expect("utf-8");

    // While another process holds the directory, a reader goes ahead and a writer gives up after at most a
    // couple of seconds, naming the holder. The lock is held by this test, so the timing is its own.
    {
        use std::io::Write as _;
        let mut lock = std::fs::OpenOptions::new().write(true).open(plant.data.join("LOCK")).expect("LOCK");
        lock.lock().expect("take the lock");
        lock.set_len(0).expect("truncate");
        lock.write_all(b"pid 4242 running `datum-edge config capture` since now").expect("write holder");
        plant.ok(&["asset", "list"]);
        let started = Instant::now();
        let second = plant.run(&["asset", "add", "HMI-1", "--kind", "hmi"]);
        assert!(started.elapsed() < Duration::from_secs(10), "the writer waited {:?}", started.elapsed());
        assert_eq!(second.code, 2, "{}", second.stderr);
        assert!(second.stderr.contains("is in use by another process (pid 4242"), "{}", second.stderr);
    }

    // kill -9 during a capture.
    let tmp_dir = plant.data.join("blobs/tmp");
    let mut child = plant.command(&["config", "capture", "SCADA-1", big_arg]).spawn().expect("spawn");
    let started = wait_until(Duration::from_secs(30), || {
        std::fs::read_dir(&tmp_dir).map(|mut d| d.next().is_some()).unwrap_or(false)
    });
    assert!(started, "the capture never started writing");
    plant.ok(&["asset", "list"]);
    child.kill().expect("kill -9");
    child.wait().expect("reap");

    // Reopen: nothing half-written, nothing to repair, and the capture can be redone.
    assert_eq!(plant.ok(&["config", "log", "SCADA-1", "--json"]).json(), serde_json::json!([]));
    assert_eq!(plant.ok(&["audit", "verify", "--json"]).json()["intact"], true);
    let report = plant.ok(&["config", "capture", "SCADA-1", big_arg, "--json"]).json();
    assert_eq!(report["version"], 1);
    assert_eq!(plant.ok(&["backup", "verify", "--json"]).json()["problems"], serde_json::json!([]));
}

#[test]
fn kill_9_at_many_points_of_small_captures_never_corrupts() {
    let plant = Plant::new("plant-west");
    plant.ok(&["asset", "add", "PLC-7", "--kind", "plc"]);
    // Different kill points: from before the database is opened to after the commit.
    for (i, delay_ms) in [0u64, 2, 5, 10, 20, 40, 80].into_iter().enumerate() {
        let file = big_file(&plant, &format!("v{i}.txt"), 4, i as u64 + 11);
        let mut child =
            plant.command(&["config", "capture", "PLC-7", file.to_str().expect("utf-8")]).spawn().expect("spawn");
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        child.wait().expect("reap");
        let verify = plant.run(&["audit", "verify", "--json"]);
        assert_eq!(verify.code, 0, "kill after {delay_ms} ms: {}{}", verify.stdout, verify.stderr);
        let versions = plant.ok(&["config", "log", "PLC-7", "--json"]).json();
        let n = versions.as_array().map(Vec::len).unwrap_or(0);
        assert!(n <= i + 1, "more versions than captures");
    }
    // The site is fully usable afterwards.
    let file = big_file(&plant, "final.txt", 1, 99);
    plant.ok(&["config", "capture", "PLC-7", file.to_str().expect("utf-8")]);
    assert_eq!(plant.ok(&["audit", "verify", "--json"]).json()["intact"], true);
}

#[test]
fn a_260_mib_export_is_captured_and_restored_in_bounded_memory() {
    let plant = Plant::new("plant-big");
    plant.ok(&["asset", "add", "HIST-1", "--kind", "historian"]);
    let big = big_file(&plant, "archive.bak", 260, 3);
    let (code, rss_kib) =
        datum_tests::run_measured(&mut plant.command(&["config", "capture", "HIST-1", big.to_str().expect("utf-8")]));
    assert_eq!(code, 0);
    assert!(rss_kib > 0 && rss_kib < 200 * 1024, "capture of 260 MiB used {} MiB", rss_kib / 1024);
    let out = plant.path("restored.bak");
    let (code, rss_kib) = datum_tests::run_measured(&mut plant.command(&[
        "config",
        "export",
        "HIST-1",
        "--version",
        "1",
        "--out",
        out.to_str().expect("utf-8"),
    ]));
    assert_eq!(code, 0);
    assert!(rss_kib > 0 && rss_kib < 200 * 1024, "export of 260 MiB used {} MiB", rss_kib / 1024);
    assert_eq!(datum_tests::sha256_file(&out), datum_tests::sha256_file(&big));
}

/// One large write is compacted at once: an import of thousands of assets is a single change of megabytes,
/// which is slow to load as it is and small as a snapshot.
#[test]
fn a_large_import_is_compacted_at_once() {
    let plant = Plant::new("plant-import");
    let mut csv = String::from("name,kind,criticality,zone\n");
    for i in 0..3_000 {
        csv.push_str(&format!("dev-{i},plc,medium,zone-{}\n", i % 9));
    }
    let path = plant.write("assets.csv", csv.as_bytes());
    plant.ok(&["asset", "import", path.to_str().expect("utf-8")]);
    let inventory = "FROM doc_chunks WHERE doc_id LIKE '%/inventory'";
    assert_eq!(datum_tests::query_count(&plant.data, &format!("SELECT COUNT(*) {inventory}")), 1);
    assert_eq!(datum_tests::query_count(&plant.data, &format!("SELECT COUNT(*) {inventory} AND kind = 'snapshot'")), 1);
    // A small write after it stays incremental.
    plant.ok(&["asset", "edit", "dev-7", "--firmware", "2.1"]);
    assert_eq!(datum_tests::query_count(&plant.data, &format!("SELECT COUNT(*) {inventory}")), 2);
    assert_eq!(plant.ok(&["asset", "show", "dev-2999", "--json"]).json()["zone"], "zone-2");
    assert_eq!(plant.ok(&["asset", "show", "dev-7", "--json"]).json()["firmware"], "2.1");
    assert_eq!(plant.ok(&["audit", "verify", "--json"]).json()["intact"], true);
}

#[test]
fn many_commits_are_compacted_and_the_key_stays_private() {
    use std::os::unix::fs::PermissionsExt;
    let plant = Plant::new("plant-compact");
    plant.ok(&["asset", "add", "PLC-1", "--kind", "plc"]);
    for i in 0..80 {
        plant.ok(&["asset", "edit", "PLC-1", "--firmware", &format!("1.{i}")]);
    }
    let chunks =
        datum_tests::query_count(&plant.data, "SELECT COUNT(*) FROM doc_chunks WHERE doc_id LIKE '%/inventory'");
    assert!(chunks <= 65, "{chunks} chunks: the inventory document was not compacted");
    let snapshots = datum_tests::query_count(&plant.data, "SELECT COUNT(*) FROM doc_chunks WHERE kind = 'snapshot'");
    assert!(snapshots >= 1);
    assert_eq!(plant.ok(&["asset", "show", "PLC-1", "--json"]).json()["firmware"], "1.79");
    assert_eq!(plant.ok(&["audit", "verify", "--json"]).json()["intact"], true);
    let mode = std::fs::metadata(plant.data.join("identity/site.key")).expect("key").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the site key must be readable by its owner only");
}
