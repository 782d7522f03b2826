//! Machine-checked architecture rules (docs/ARCHITECTURE.md, "Invariants").

use std::collections::{BTreeMap, BTreeSet};
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

/// A path relative to the workspace root, with `/` separators, for messages and rules.
fn relative(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// Whether a file belongs to a storage module: `store.rs`, `store_*.rs`, or anything under a `store/`
/// directory (`hub/src/store/sites.rs`).
fn is_store_module(relative_path: &str) -> bool {
    let components: Vec<&str> = relative_path.split('/').collect();
    let file_name = components.last().copied().unwrap_or("");
    file_name.starts_with("store") || components[..components.len().saturating_sub(1)].contains(&"store")
}

/// The files of `dirs` that contain SQL: sqlx's query functions or a string literal that starts with a
/// statement keyword.
fn files_with_sql(root: &Path, dirs: &[&str]) -> Vec<String> {
    // Spelled so that this file does not match its own patterns.
    let sql = regex::Regex::new(concat!(
        r"sqlx\s*::\s*query|\bquery_(scalar|as)\b",
        r#"|"\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP)\s"#
    ))
    .expect("valid pattern");
    let mut files = Vec::new();
    for dir in dirs {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 20, "found only {} files", files.len());
    files
        .iter()
        .filter(|f| sql.is_match(&std::fs::read_to_string(f).unwrap_or_default()))
        .map(|f| relative(root, f))
        .collect()
}

/// Only the store modules contain SQL: everything else sees a domain error and domain types.
#[test]
fn sql_stays_in_the_store_modules() {
    let root = workspace_root();
    let with_sql = files_with_sql(&root, &["edge/src", "hub/src", "shared"]);
    assert!(with_sql.iter().any(|f| f == "edge/src/store.rs"), "the SQL detector found no SQL: {with_sql:?}");
    let outside: Vec<&String> = with_sql.iter().filter(|f| !is_store_module(f)).collect();
    assert!(outside.is_empty(), "SQL outside a store module: {outside:?}");
}

#[test]
fn store_modules_are_recognised_by_path() {
    for store in ["edge/src/store.rs", "hub/src/store.rs", "hub/src/store/sites.rs", "hub/src/store_pg.rs"] {
        assert!(is_store_module(store), "{store}");
    }
    for other in ["hub/src/serve.rs", "edge/src/commands/restore.rs", "hub/src/restore/mod.rs"] {
        assert!(!is_store_module(other), "{other}");
    }
}

/// The binaries run on tokio: a blocking sleep stalls every task of the runtime (keep-alives included), and
/// a global mutable flag hides what a function depends on. Pass values and wait asynchronously instead.
#[test]
fn no_blocking_sleep_or_global_mutable_state() {
    let root = workspace_root();
    let forbidden = regex::Regex::new(concat!(
        r"thread\s*::\s*sleep\b",
        r"|\bstatic\s+mut\s",
        r"|\bstatic\s+[A-Z_0-9]+\s*:\s*[A-Za-z_:]*(Atomic[A-Za-z0-9]+|Mutex|RwLock|RefCell|Cell)\b"
    ))
    .expect("valid pattern");
    let mut files = Vec::new();
    for dir in ["edge/src", "hub/src", "shared/src", "shared/host/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    let offending: Vec<String> = files
        .iter()
        .filter(|f| forbidden.is_match(&std::fs::read_to_string(f).unwrap_or_default()))
        .map(|f| relative(&root, f))
        .collect();
    assert!(offending.is_empty(), "blocking sleep or global mutable state in: {offending:?}");
}

/// Clippy reads the nearest `clippy.toml` only: the pure core's (no clock reads) and datum-host's (which
/// must not inherit the core's) each repeat every workspace setting, so no crate loses one.
#[test]
fn crate_clippy_configs_keep_the_workspace_settings() {
    let root = workspace_root();
    let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let settings = |text: &str| -> Vec<String> {
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect()
    };
    let workspace = settings(&read("clippy.toml"));
    assert!(!workspace.is_empty(), "the workspace clippy.toml is empty");
    for path in ["shared/clippy.toml", "shared/host/clippy.toml"] {
        let config = settings(&read(path));
        let missing: Vec<&String> = workspace.iter().filter(|s| !config.contains(s)).collect();
        assert!(missing.is_empty(), "{path} lacks the workspace settings {missing:?}");
    }
    let core = read("shared/clippy.toml");
    for clock in ["chrono::Utc::now", "chrono::Local::now", "std::time::SystemTime::now", "std::time::Instant::now"] {
        assert!(core.contains(&format!("\"{clock}\"")), "shared/clippy.toml does not forbid {clock}");
    }
}

/// The top-level modules of `shared/src` each non-test source file of `module` refers to (`crate::x`, also
/// inside `use crate::{..}` groups and through the crate root's re-exports), other than itself.
fn module_references(src: &Path, module: &str, reexports: &BTreeMap<String, String>) -> BTreeSet<String> {
    let path_ref = regex::Regex::new(r"\bcrate::(\w+)").expect("valid pattern");
    let group_ref = regex::Regex::new(r"\bcrate::\{([^}]*)\}").expect("valid pattern");
    let mut files = Vec::new();
    let file = src.join(format!("{module}.rs"));
    if file.is_file() {
        files.push(file);
    }
    if src.join(module).is_dir() {
        rust_files(&src.join(module), &mut files);
    }
    let mut references = BTreeSet::new();
    for file in files {
        if file.file_stem().is_some_and(|s| s == "tests") {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read source");
        let code: String = without_test_modules(&text)
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut names: Vec<String> = path_ref.captures_iter(&code).map(|c| c[1].to_string()).collect();
        for group in group_ref.captures_iter(&code) {
            names.extend(group[1].split(',').filter_map(|item| item.trim().split("::").next()).map(String::from));
        }
        for name in names {
            let target = reexports.get(&name).cloned().unwrap_or(name);
            if target != module {
                references.insert(target);
            }
        }
    }
    references
}

/// `text` without its `#[cfg(test)] mod name { .. }` blocks: what tests use to build fixtures is not a
/// dependency of the module. Braces are counted naively; a brace in a string of a test module could end it
/// early, which can only add references (a false circle), never hide one.
fn without_test_modules(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let item = after.trim_start();
        if !item.starts_with("mod ") {
            out.push_str("#[cfg(test)]");
            rest = after;
            continue;
        }
        let Some(open) = item.find(['{', ';']) else { return out };
        if item.as_bytes()[open] == b';' {
            rest = &item[open + 1..];
            continue;
        }
        let mut depth = 0usize;
        let mut end = item.len();
        for (idx, c) in item[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + idx + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

#[test]
fn test_modules_are_left_out_of_module_references() {
    let text =
        "use crate::a::X;\n#[cfg(test)]\nmod tests {\n    fn f() { crate::b::g(); }\n}\nfn h() { crate::c::i(); }\n";
    let kept = without_test_modules(text);
    assert!(kept.contains("crate::a") && kept.contains("crate::c") && !kept.contains("crate::b"), "{kept}");
}

/// A circle among the modules of `graph`, as the path that closes it, if any.
fn find_circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        graph: &BTreeMap<String, BTreeSet<String>>,
        module: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|m| m == module) {
            let mut circle = path[start..].to_vec();
            circle.push(module.to_string());
            return Some(circle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_string());
        for next in graph.get(module).into_iter().flatten() {
            if let Some(circle) = visit(graph, next, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(module.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|module| visit(graph, module, &mut Vec::new(), &mut done))
}

/// The pure core is layered: `ids` below `model` below `policy` below `change` below `drift` below `view`,
/// and so on. A module that imports one that imports it back is two modules that can only be understood
/// together; this fails on any circle among the top-level modules of `shared/src`.
#[test]
fn shared_modules_import_each_other_without_circles() {
    let src = workspace_root().join("shared/src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("read lib.rs");
    let modules: Vec<String> = regex::Regex::new(r"(?m)^pub mod (\w+);")
        .expect("valid pattern")
        .captures_iter(&lib)
        .map(|c| c[1].to_string())
        .collect();
    assert!(modules.iter().any(|m| m == "model") && modules.iter().any(|m| m == "drift"), "modules: {modules:?}");
    // `pub use ids::{AssetName, ..};` at the crate root: `crate::AssetName` is a reference to `ids`.
    let mut reexports = BTreeMap::new();
    for c in regex::Regex::new(r"(?m)^pub use (\w+)::\{([^}]*)\};").expect("valid pattern").captures_iter(&lib) {
        for name in c[2].split(',').map(str::trim).filter(|n| !n.is_empty()) {
            reexports.insert(name.to_string(), c[1].to_string());
        }
    }
    let graph: BTreeMap<String, BTreeSet<String>> = modules
        .iter()
        .map(|m| {
            (m.clone(), module_references(&src, m, &reexports).into_iter().filter(|r| modules.contains(r)).collect())
        })
        .collect();
    assert!(graph["view"].contains("drift") && graph["drift"].contains("model"), "references not found: {graph:?}");
    assert_eq!(find_circle(&graph), None, "modules of shared/src import each other in a circle; graph: {graph:?}");
}

#[test]
fn a_circle_of_three_modules_is_found() {
    let graph = |edges: &[(&str, &str)]| {
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in edges {
            graph.entry(from.to_string()).or_default().insert(to.to_string());
            graph.entry(to.to_string()).or_default();
        }
        graph
    };
    let circle =
        find_circle(&graph(&[("change", "model"), ("drift", "change"), ("model", "drift"), ("view", "drift")]));
    assert_eq!(circle, Some(vec!["change".into(), "model".into(), "drift".into(), "change".into()]));
    assert_eq!(find_circle(&graph(&[("drift", "model"), ("view", "drift"), ("view", "model")])), None);
}
