//! Machine-checked architecture rules (docs/ARCHITECTURE.md, "Invariants").

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("shared/ has a parent").to_path_buf()
}

/// `cargo tree` of one workspace crate's normal dependencies, one crate per line.
fn dependency_tree(package: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // `-p` resolves features for the package alone, so what a binary enables does not leak in.
    let args = ["tree", "-p", package, "-e", "normal", "--prefix", "none", "--offline"];
    let output = Command::new(cargo).args(args).current_dir(workspace_root()).output().expect("run cargo tree");
    assert!(output.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&output.stderr));
    let tree = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(tree.contains("automerge"), "unexpected cargo tree output: {tree}");
    tree
}

/// The pure core must not pull in anything that does I/O: no async runtime, no database, no network. It has
/// no features: what both binaries do with the operating system lives in `datum-host` (`shared/host`).
#[test]
fn shared_has_no_io_dependencies_and_no_features() {
    let tree = dependency_tree("datum-shared");
    for forbidden in ["tokio ", "sqlx", "quinn", "rustls", "axum", "hyper", "mio ", "datum-host"] {
        assert!(
            !tree.lines().any(|l| l.starts_with(forbidden.trim_end()) && l.contains(' ')),
            "datum-shared depends on {forbidden}:\n{tree}"
        );
    }
    let manifest = std::fs::read_to_string(workspace_root().join("shared/Cargo.toml")).expect("read manifest");
    assert!(!manifest.contains("[features]") && !manifest.contains("optional"), "datum-shared has a feature");
}

/// The transport uses ring only: aws-lc-rs needs cmake and a C toolchain we do not want in the build.
#[test]
fn host_uses_ring_not_aws_lc() {
    let tree = dependency_tree("datum-host");
    assert!(tree.lines().any(|l| l.starts_with("quinn ")), "datum-host without quinn:\n{tree}");
    assert!(tree.lines().any(|l| l.starts_with("ring ")), "datum-host without ring:\n{tree}");
    for forbidden in ["aws-lc", "cmake", "openssl"] {
        assert!(!tree.lines().any(|l| l.starts_with(forbidden)), "datum-host depends on {forbidden}:\n{tree}");
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every source file says what it is for in its first line.
#[test]
fn every_source_file_starts_with_a_module_doc() {
    let root = workspace_root();
    let mut files = Vec::new();
    for dir in ["shared/src", "shared/tests", "shared/host", "edge/src", "hub/src", "tests", "fuzz/fuzz_targets"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 20, "found only {} files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap_or_default().starts_with("//!"))
        .map(|f| f.strip_prefix(&root).unwrap_or(f).display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a leading //! doc: {missing:?}");
}
