//! Helpers for end-to-end tests and benchmarks: build and run the real `datum-edge` and `datum-hub` binaries
//! against temporary data directories (and a fresh PostgreSQL database where asked), and find the field
//! fixtures in `../shared/fixtures`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The workspace root (this crate lives in `<root>/tests`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// A fixture from the kit. Panics (fails the test) when the kit is missing: tests must not skip.
pub fn fixture(rel: &str) -> PathBuf {
    let path = workspace_root().join("../shared/fixtures").join(rel);
    assert!(path.is_file(), "fixture {} is missing: the kit must be at ../shared/fixtures", path.display());
    path
}

/// Builds the binary once per test process (in the profile the tests run in) and returns its path.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let exe = std::env::current_exe().expect("current exe");
        // target/<profile>/deps/<test-binary> -> target/<profile>
        let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps").to_path_buf();
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "datum-edge", "-p", "datum-hub"]).current_dir(workspace_root());
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "building datum-edge and datum-hub failed");
        profile_dir
    });
    dir.join(name)
}

/// One plant: a temporary directory with a data directory inside.
pub struct Plant {
    pub tmp: tempfile::TempDir,
    pub data: PathBuf,
    pub actor: String,
    pub now: Option<String>,
}

/// What a command did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(Output { status, stdout, stderr }: Output) -> Run {
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

impl Plant {
    /// A new, initialised site.
    pub fn new(site: &str) -> Plant {
        let plant = Plant::empty();
        plant.ok(&["init", "--site", site]);
        plant
    }

    /// A temporary directory with no site yet.
    pub fn empty() -> Plant {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        Plant { tmp, data, actor: "alice".into(), now: None }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("datum-edge"));
        cmd.args(args)
            .env("DATUM_DATA", &self.data)
            .env("DATUM_ACTOR", &self.actor)
            .env_remove("DATUM_NOW")
            .env_remove("DATUM_LOG");
        if let Some(now) = &self.now {
            cmd.env("DATUM_NOW", now);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("run datum-edge"))
    }

    pub fn run_as(&self, actor: &str, args: &[&str]) -> Run {
        let mut cmd = self.command(args);
        cmd.env("DATUM_ACTOR", actor);
        Run::from(cmd.output().expect("run datum-edge"))
    }

    /// Runs and asserts exit code 0.
    pub fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(run.code, 0, "datum-edge {args:?} failed: {}{}", run.stdout, run.stderr);
        run
    }

    /// Runs and asserts the exit code.
    pub fn expect_code(&self, code: i32, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(run.code, code, "datum-edge {args:?}: expected exit {code}: {}{}", run.stdout, run.stderr);
        run
    }

    /// Opens a change request with placeholder texts on `asset` (draft); returns its id as printed by JSON.
    pub fn new_change(&self, asset: &str, risk: &str) -> String {
        let args = [
            "change",
            "new",
            "--title",
            "t",
            "--reason",
            "r",
            "--asset",
            asset,
            "--risk",
            risk,
            "--impact",
            "i",
            "--rollback",
            "r",
            "--json",
        ];
        self.ok(&args).json()["id"].as_str().expect("change id").to_string()
    }

    pub fn write(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, content).expect("write test file");
        path
    }
}

/// A generated inventory of `n` assets (`asset import` CSV) for the benches: six kinds, six vendors, forty
/// zones, every criticality, thirty owners.
pub fn bench_inventory_csv(n: usize) -> String {
    let mut csv = String::from("name,kind,vendor,model,firmware,zone,ip,criticality,owner\n");
    let kinds = ["plc", "switch", "firewall", "hmi", "router", "rtu"];
    let vendors = ["Siemens", "Rockwell", "Cisco", "Fortinet", "Schneider", "ABB"];
    for i in 0..n {
        csv.push_str(&format!(
            "A-{i:05},{},{},M{},{}.{},cell-{},10.{}.{}.{},{},owner{}\n",
            kinds[i % kinds.len()],
            vendors[(i / 7) % vendors.len()],
            i % 97,
            i % 5,
            i % 13,
            i % 40,
            (i / 65536) % 256,
            (i / 256) % 256,
            i % 256,
            ["low", "medium", "high", "critical"][i % 4],
            i % 30
        ));
    }
    csv
}

/// The kit's real version series (`fixtures/versions/NAME.vN.EXT`): each series' files by name, oldest first.
pub fn kit_version_series() -> std::collections::BTreeMap<String, Vec<PathBuf>> {
    let dir = workspace_root().join("../shared/fixtures/versions");
    let mut series: std::collections::BTreeMap<String, Vec<PathBuf>> = Default::default();
    for entry in std::fs::read_dir(&dir).expect("kit versions") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("name").to_string_lossy().into_owned();
        // `NAME.vN.EXT`: the stem is what comes before the `.v` followed by the version number.
        let cut =
            name.match_indices(".v").map(|(i, _)| i).find(|&i| name[i + 2..].starts_with(|c: char| c.is_ascii_digit()));
        if let Some(i) = cut {
            series.entry(name[..i].to_string()).or_default().push(path);
        }
    }
    for files in series.values_mut() {
        files.sort();
    }
    series
}

/// Every file under `dir`, nested ones included, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display())) {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).expect("read")))
}

/// Runs SQL against a site's database directly, as an attacker with file access would.
pub fn tamper_sql(data: &Path, sql: &str) -> u64 {
    tamper_db(&data.join("datum.db"), sql)
}

/// Runs SQL against an SQLite database file directly (a site's or a hub's).
pub fn tamper_db(db: &Path, sql: &str) -> u64 {
    let url = format!("sqlite://{}", db.display());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("open database");
        let result = sqlx::query(sql).execute(&mut conn).await.expect("tamper query");
        conn.close().await.expect("close");
        result.rows_affected()
    })
}

/// Counts rows with a query against a site's database (for white-box checks such as compaction).
pub fn query_count(data: &Path, sql: &str) -> i64 {
    let url = format!("sqlite://{}", data.join("datum.db").display());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("open database");
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut conn).await.expect("count query");
        conn.close().await.expect("close");
        n
    })
}

/// Runs a command to completion and returns its exit code and peak resident memory in KiB: the kernel's
/// high-water mark of the program's own memory image (`VmHWM` in `/proc/PID/status`, sampled until it exits;
/// it only grows). Not `wait4`'s `ru_maxrss`, which survives `exec` and so may count the memory of this test
/// process when the child was forked from it while other tests held large buffers.
pub fn run_measured(cmd: &mut Command) -> (i32, i64) {
    let program = Path::new(cmd.get_program()).file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let mut child = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().expect("spawn");
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0i64;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_path) {
            // Before `exec` the child is still an image of this process: only the program's own image counts.
            let name = status.lines().find_map(|l| l.strip_prefix("Name:")).map(str::trim).unwrap_or_default();
            if !name.is_empty() && program.starts_with(name) {
                let hwm = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|n| n.parse::<i64>().ok());
                peak_kib = peak_kib.max(hwm.unwrap_or(0));
            }
        }
        match child.try_wait().expect("wait") {
            Some(status) => return (status.code().unwrap_or(-1), peak_kib),
            None => std::thread::sleep(std::time::Duration::from_millis(2)),
        }
    }
}

/// Which database a test hub runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server the suite uses (CI and this machine: 127.0.0.1:5432, trust auth, database `test`).
pub fn postgres_admin_url() -> String {
    std::env::var("DATUM_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh PostgreSQL database for one test hub; dropped when the hub is dropped.
fn create_pg_database() -> (String, String) {
    let name = format!("datum_test_{:016x}", rand_u64());
    let admin = postgres_admin_url();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is required for the hub tests: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create database");
        conn.close().await.expect("close");
    });
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).expect("url has a database");
    (name.clone(), format!("{base}/{name}"))
}

fn drop_pg_database(name: &str) {
    let admin = postgres_admin_url();
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
    runtime.block_on(async {
        use sqlx::Connection;
        if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await;
            let _ = conn.close().await;
        }
    });
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.write_u32(std::process::id());
    h.finish()
}

/// A hub: a temporary data directory, its database, and (when started) a `datum-hub serve` process.
pub struct Hub {
    pub tmp: tempfile::TempDir,
    pub data: PathBuf,
    pub backend: Backend,
    pub database_url: Option<String>,
    pg_name: Option<String>,
    pub server: Option<std::process::Child>,
    /// `127.0.0.1:PORT` once started (the same port is reused on restart).
    pub addr: Option<String>,
    pub fingerprint: String,
    pub now: Option<String>,
    /// More arguments for `serve` (e.g. `--web-domain`).
    pub serve_args: Vec<String>,
    /// `https://127.0.0.1:PORT` of the dashboard, once started with `--web` in `serve_args`.
    pub web: Option<String>,
}

impl Hub {
    pub fn new(backend: Backend) -> Hub {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("hub");
        let (pg_name, database_url) = match backend {
            Backend::Sqlite => (None, None),
            Backend::Postgres => {
                let (name, url) = create_pg_database();
                (Some(name), Some(url))
            }
        };
        let mut hub = Hub {
            tmp,
            data,
            backend,
            database_url,
            pg_name,
            server: None,
            addr: None,
            fingerprint: String::new(),
            now: None,
            serve_args: Vec::new(),
            web: None,
        };
        let out = hub.ok(&["init", "--name", "test-hub"]);
        hub.fingerprint = out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("hub fingerprint: "))
            .expect("init prints the fingerprint")
            .replace(':', "");
        hub
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("datum-hub"));
        cmd.arg("--data").arg(&self.data).args(args).env_remove("DATUM_NOW").env_remove("DATUM_HUB_DATABASE");
        if let Some(url) = &self.database_url {
            // Only `init` needs it: the hub remembers it.
            if args.first() == Some(&"init") {
                cmd.env("DATUM_HUB_DATABASE", url);
            }
        }
        if let Some(now) = &self.now {
            cmd.env("DATUM_NOW", now);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("run datum-hub"))
    }

    pub fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(run.code, 0, "datum-hub {args:?} failed: {}{}", run.stdout, run.stderr);
        run
    }

    /// Runs with `stdin` as standard input (a password).
    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        use std::io::Write as _;
        let mut child = self
            .command(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run datum-hub");
        child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
        Run::from(child.wait_with_output().expect("wait"))
    }

    /// Adds a site; returns its one-time token.
    pub fn add_site(&self, name: &str) -> String {
        self.ok(&["site", "add", name, "--json"]).json()["token"].as_str().expect("token").to_string()
    }

    /// Starts `serve` on loopback (UDP and TCP unless `udp` is false) and waits until it listens.
    pub fn start(&mut self, udp: bool) {
        assert!(self.server.is_none(), "hub already running");
        let started = std::time::Instant::now();
        loop {
            let listen = self.addr.clone().unwrap_or_else(|| "127.0.0.1:0".into());
            let mut cmd = self.command(&["serve", "--listen", &listen]);
            cmd.args(&self.serve_args);
            if !udp {
                cmd.arg("--no-udp");
            }
            let mut child = cmd
                .env("DATUM_LOG", "info")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::from(
                    std::fs::File::create(self.tmp.path().join("serve.log")).expect("log file"),
                ))
                .spawn()
                .expect("spawn datum-hub serve");
            let stdout = child.stdout.take().expect("stdout piped");
            let mut line = String::new();
            use std::io::BufRead;
            let mut reader = std::io::BufReader::new(stdout);
            reader.read_line(&mut line).expect("read the listening line");
            let addr = line.split(" listening on ").nth(1).and_then(|rest| rest.split_whitespace().next());
            if let Some(addr) = addr {
                self.addr = Some(addr.to_string());
                if self.serve_args.iter().any(|a| a == "--web") {
                    let mut web = String::new();
                    reader.read_line(&mut web).expect("read the dashboard line");
                    let url = web.strip_prefix("dashboard on ").map(|u| u.trim().to_string());
                    assert!(url.is_some(), "no dashboard line: {web:?} {}", self.log());
                    self.web = url;
                }
                self.server = Some(child);
                return;
            }
            let _ = child.wait();
            // A restart on the same port: the port was first picked by the system, so while the hub was down
            // another test's client socket may have been given it. Wait for it to be free again.
            let taken = self.addr.is_some() && self.log().contains("already in use");
            if !taken || started.elapsed() > std::time::Duration::from_secs(60) {
                panic!("hub did not start: {line:?} {}", self.log());
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    }

    pub fn addr(&self) -> &str {
        self.addr.as_deref().expect("hub started")
    }

    /// kill -9.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What `serve` logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.tmp.path().join("serve.log")).unwrap_or_default()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.kill();
        if let Some(name) = &self.pg_name {
            drop_pg_database(name);
        }
    }
}

impl Plant {
    /// Enrolls this plant's site with `hub` using a fresh token.
    pub fn enroll(&self, hub: &Hub, token: &str) -> Run {
        self.run(&["enroll", "--hub", hub.addr(), "--token", token, "--fingerprint", &hub.fingerprint])
    }

    /// `sync --once --json`.
    pub fn sync(&self, transport: &str) -> Run {
        self.run(&["sync", "--once", "--json", "--transport", transport])
    }
}

/// Waits for `condition` with a deadline (no fixed sleeps).
pub fn wait_for(what: &str, deadline: std::time::Duration, mut condition: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !condition() {
        assert!(start.elapsed() < deadline, "timed out after {deadline:?} waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The code an authenticator shows for `secret` (base32) one step ahead: accepted (one step of clock skew)
/// and always newer than the code used a moment ago.
pub fn code_ahead(secret_b32: &str) -> String {
    let secret = base32_decode(secret_b32);
    let now = chrono::Utc::now().timestamp();
    format!(
        "{:06}",
        datum_shared::identity::totp::code_at_step(&secret, datum_shared::identity::totp::step_of(now) + 1)
    )
}

/// The code an authenticator shows for `secret` (base32) now.
pub fn code_now(secret_b32: &str) -> String {
    let secret = base32_decode(secret_b32);
    format!(
        "{:06}",
        datum_shared::identity::totp::code_at_step(
            &secret,
            datum_shared::identity::totp::step_of(chrono::Utc::now().timestamp())
        )
    )
}

/// RFC 4648 base32 (upper case, no padding), as the enrollment page shows a TOTP secret.
pub fn base32_decode(text: &str) -> Vec<u8> {
    let mut bits = 0u64;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {text}"),
        };
        bits = (bits << 5) | u64::from(v);
        n += 5;
        if n >= 8 {
            out.push((bits >> (n - 8)) as u8);
            n -= 8;
        }
    }
    out
}

/// A plain-HTTP GET with a bearer token, one connection per request (the benches): (status, bytes received).
pub fn http_get(address: &str, path: &str, token: &str) -> (u16, usize) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read");
    let head = String::from_utf8_lossy(&response[..response.len().min(20)]).into_owned();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, response.len())
}

/// A process's resident memory (`VmRSS`, or `VmHWM` for its peak) in KiB.
pub fn proc_kib(pid: u32, field: &str) -> i64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field).and_then(|v| v.strip_prefix(':')))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

/// A process's resident memory in KiB.
pub fn rss_kib(pid: u32) -> i64 {
    proc_kib(pid, "VmRSS")
}

/// The `p` quantile (0 to 1) of sorted durations.
pub fn percentile(sorted: &[std::time::Duration], p: f64) -> std::time::Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
