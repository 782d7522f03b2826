//! Helpers for end-to-end tests and benchmarks: build and run the real `datum-edge` binary against a
//! temporary data directory, and find the field fixtures in `../shared/fixtures`.

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
        cmd.args(["build", "--quiet", "-p", "datum-edge", "--bin", "datum-edge"]).current_dir(workspace_root());
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "building datum-edge failed");
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
        let Output { status, stdout, stderr } = self.command(args).output().expect("run datum-edge");
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    pub fn run_as(&self, actor: &str, args: &[&str]) -> Run {
        let mut cmd = self.command(args);
        cmd.env("DATUM_ACTOR", actor);
        let Output { status, stdout, stderr } = cmd.output().expect("run datum-edge");
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
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

pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).expect("read")))
}

/// Runs SQL against a site's database directly, as an attacker with file access would.
pub fn tamper_sql(data: &Path, sql: &str) -> u64 {
    let url = format!("sqlite://{}", data.join("datum.db").display());
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

/// Runs a command to completion and returns its exit code and peak resident memory in KiB (wait4).
pub fn run_measured(cmd: &mut Command) -> (i32, i64) {
    let child = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    #[allow(unsafe_code)]
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    #[allow(unsafe_code)]
    // SAFETY: pid is our own child, not yet reaped; status and usage are valid out-pointers.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4 failed");
    std::mem::forget(child);
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
    (code, usage.ru_maxrss)
}
