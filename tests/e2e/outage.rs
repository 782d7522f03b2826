//! The WAN never blocks the plant: a hub that dies mid-upload ends the pass within seconds while the plant's
//! commands keep working; a path without UDP is remembered instead of paying the QUIC wait on every pass;
//! the continuous sync says one plain line per pass.

use std::io::Write as _;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use datum_tests::{wait_for, Backend, Hub, Plant, Run};

/// A plant with one PLC, enrolled with `hub` (which must be running).
fn enrolled_plant(hub: &Hub, site: &str) -> Plant {
    let plant = Plant::new(site);
    plant.ok(&["asset", "add", "plc-0", "--kind", "plc", "--criticality", "high", "--zone", "cell-1"]);
    let token = hub.add_site(site);
    let run = plant.enroll(hub, &token);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    plant
}

/// `mib` MiB of bytes no compressor can shrink, so the upload takes as long as its size says.
fn incompressible_file(plant: &Plant, name: &str, mib: usize) -> std::path::PathBuf {
    let path = plant.path(name);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for word in block.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
        out.write_all(&block).expect("write");
    }
    out.flush().expect("flush");
    path
}

fn hub_count(hub: &Hub, sql: &str) -> i64 {
    let url = format!("sqlite://{}?mode=ro", hub.data.join("hub.db").display());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        use sqlx::Connection;
        let Ok(mut conn) = sqlx::SqliteConnection::connect(&url).await else { return 0 };
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap_or(0);
        let _ = conn.close().await;
        n
    })
}

/// Runs a command and says how long it took.
fn timed(plant: &Plant, args: &[&str]) -> (Run, Duration) {
    let started = Instant::now();
    let run = plant.run(args);
    (run, started.elapsed())
}

fn still_running(child: &mut Child) -> bool {
    matches!(child.try_wait(), Ok(None))
}

#[test]
fn a_hub_killed_mid_upload_ends_the_pass_promptly_and_never_blocks_the_plant() {
    let mut hub = Hub::new(Backend::Sqlite);
    hub.start(true);
    let plant = enrolled_plant(&hub, "north");
    let big = incompressible_file(&plant, "historian.bak", 200);
    plant.ok(&["config", "capture", "plc-0", big.to_str().expect("utf-8"), "--slot", "backup"]);
    std::fs::remove_file(&big).expect("remove the source file");
    let small = plant.write("plc.cfg", b"hostname plc-0\nip 10.0.0.5\n");

    let stderr = std::fs::File::create(plant.path("sync.err")).expect("sync log");
    let mut sync = plant.command(&["sync", "--once"]).stdout(Stdio::null()).stderr(stderr).spawn().expect("spawn");
    wait_for("the hub to receive pieces of the large file", Duration::from_secs(120), || {
        hub_count(&hub, "SELECT COALESCE(SUM(received), 0) FROM blobs") > 0
    });

    // While the pass uploads, the plant works: reading at once, writing within a second or two.
    let (list, list_took) = timed(&plant, &["asset", "list", "--json"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    let (add, add_took) = timed(&plant, &["asset", "add", "hmi-1", "--kind", "hmi", "--criticality", "low"]);
    assert_eq!(add.code, 0, "{}", add.stderr);
    let (capture, capture_took) =
        timed(&plant, &["config", "capture", "plc-0", small.to_str().expect("utf-8"), "--slot", "running"]);
    assert_eq!(capture.code, 0, "{}", capture.stderr);
    eprintln!("during the upload: asset list {list_took:?}, asset add {add_took:?}, config capture {capture_took:?}");
    assert!(still_running(&mut sync), "the upload ended before the plant's commands were tried; use a larger file");
    for took in [list_took, add_took, capture_took] {
        assert!(took < Duration::from_secs(3), "a command waited {took:?} for the sync pass");
    }

    // The hub dies mid-upload: the pass notices within the transport's idle time-out and says offline.
    hub.kill();
    let killed = Instant::now();
    let (list, list_took) = timed(&plant, &["asset", "list"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(still_running(&mut sync), "the pass ended at once; the test did not see the dead-hub window");
    let (add, add_took) = timed(&plant, &["asset", "add", "hmi-2", "--kind", "hmi", "--criticality", "low"]);
    assert_eq!(add.code, 0, "{}", add.stderr);
    eprintln!("after the kill: asset list {list_took:?}, asset add {add_took:?}");
    assert!(list_took < Duration::from_secs(3) && add_took < Duration::from_secs(3));
    let mut code = None;
    wait_for("the pass to give up on the dead hub", Duration::from_secs(60), || {
        code = sync.try_wait().expect("wait").map(|s| s.code());
        code.is_some()
    });
    let ended = killed.elapsed();
    let log = std::fs::read_to_string(plant.path("sync.err")).unwrap_or_default();
    eprintln!("the pass ended {ended:?} after the hub was killed: {}", log.trim());
    assert_eq!(code, Some(Some(1)), "an interrupted pass is reported as not in sync: {log}");
    assert!(log.contains("not in sync"), "{log}");
    assert!(ended < Duration::from_secs(15), "the pass took {ended:?} to notice the dead hub");

    // Nothing was lost: the hub comes back and the next pass completes.
    hub.start(true);
    let run = plant.sync("auto");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(plant.ok(&["asset", "list", "--json"]).json().as_array().map(Vec::len), Some(3));
    plant.ok(&["audit", "verify"]);
}

#[test]
fn where_udp_is_blocked_quic_is_remembered_and_probed_in_the_background() {
    let mut hub = Hub::new(Backend::Sqlite);
    hub.start(false);
    let mut plant = enrolled_plant(&hub, "west");
    let memory = plant.data.join("tmp/quic-failed.json");

    // The first pass pays the QUIC wait and remembers it; the second dials TCP at once.
    let started = Instant::now();
    let first = plant.sync("auto");
    let first_took = started.elapsed();
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    assert_eq!(first.json()["via"], "tcp");
    assert!(memory.is_file(), "the QUIC failure was not remembered");
    plant.ok(&["asset", "add", "hmi-1", "--kind", "hmi", "--criticality", "low"]);
    let started = Instant::now();
    let second = plant.sync("auto");
    let second_took = started.elapsed();
    assert_eq!(second.code, 0, "{}{}", second.stdout, second.stderr);
    assert_eq!(second.json()["via"], "tcp");
    eprintln!("udp blocked: first pass {first_took:?}, second pass {second_took:?}");
    assert!(second_took + Duration::from_secs(2) < first_took, "the second pass paid the QUIC wait again");

    // UDP comes back. Within the probe interval nothing changes; once a probe is due it runs beside the
    // pass, finds QUIC working, and the pass after that uses QUIC again.
    hub.kill();
    hub.start(true);
    let third = plant.sync("auto");
    assert_eq!(third.json()["via"], "tcp", "{}", third.stderr);
    assert!(memory.is_file());
    plant.now = Some((chrono::Utc::now() + chrono::Duration::minutes(10)).to_rfc3339());
    let fourth = plant.sync("auto");
    assert_eq!(fourth.code, 0, "{}{}", fourth.stdout, fourth.stderr);
    assert_eq!(fourth.json()["via"], "tcp");
    assert!(!memory.exists(), "the probe did not notice that QUIC works again");
    plant.now = None;
    let fifth = plant.sync("auto");
    assert_eq!(fifth.code, 0, "{}{}", fifth.stdout, fifth.stderr);
    assert_eq!(fifth.json()["via"], "quic");
}

#[test]
fn continuous_sync_logs_one_plain_line_per_pass() {
    let mut hub = Hub::new(Backend::Sqlite);
    hub.start(true);
    let plant = enrolled_plant(&hub, "south");
    let log_path = plant.path("daemon.err");
    let stderr = std::fs::File::create(&log_path).expect("daemon log");
    // Default log level (`Plant::command` clears DATUM_LOG), stderr to a file: not a terminal.
    let mut daemon = plant
        .command(&["sync", "--interval", "1"])
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn sync daemon");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let count = |needle: &str| log().lines().filter(|l| l.contains(needle)).count();
    wait_for("the first pass to be logged", Duration::from_secs(60), || count("in sync with the hub via") == 1);
    plant.ok(&["asset", "add", "hmi-1", "--kind", "hmi", "--criticality", "low"]);
    wait_for("the second pass to be logged", Duration::from_secs(60), || count("in sync with the hub via") == 2);
    hub.kill();
    plant.ok(&["asset", "add", "hmi-2", "--kind", "hmi", "--criticality", "low"]);
    wait_for("a failed pass to be logged", Duration::from_secs(60), || count("not in sync") >= 1);
    let _ = daemon.kill();
    let _ = daemon.wait();

    let text = log();
    eprintln!("{text}");
    assert!(!text.contains('\x1b'), "colour codes in a log that is not a terminal: {text:?}");
    for line in text.lines() {
        assert!(
            line.contains(" INFO ") && (line.contains("in sync with the hub via") || line.contains("not in sync (")),
            "a line that is not a pass outcome: {line:?}"
        );
    }
    assert_eq!(count("in sync with the hub via"), 2, "{text}");
}
