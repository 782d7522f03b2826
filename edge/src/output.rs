//! Printing: JSON for scripts, aligned text for people, progress bars only on a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

pub use datum_host::output::{print_json, print_json_or, print_list};

/// Prints rows as left-aligned columns under a header; control characters in cells are escaped.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    print!("{}", datum_shared::text::table(header, rows));
}

/// A progress bar on stderr when it is a terminal and output is not JSON; hidden otherwise.
pub fn progress(len: u64, what: &str, json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// A spinner on stderr for one long step, on a terminal only.
pub fn spinner(what: &str, json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_message(what.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

pub fn opt(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "-".into())
}

pub fn age_days(now: chrono::DateTime<chrono::Utc>, then: Option<chrono::DateTime<chrono::Utc>>) -> String {
    match then {
        Some(t) => format!("{}d", (now - t).num_days()),
        None => "never".into(),
    }
}

/// Where `--out` writes: standard output for `-`, else a file that is new or a regular file (replaced whole, via
/// a temporary file and a rename). Anything else a path can name — a device such as `/dev/full` or
/// `/dev/null`, a pipe, a socket, a symbolic link, a directory — is refused: a rename would put a regular file
/// in its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutTarget {
    Stdout,
    File(std::path::PathBuf),
}

pub fn out_target(out: &std::path::Path) -> anyhow::Result<OutTarget> {
    use datum_host::exit::user;
    if out.as_os_str() == "-" {
        return Ok(OutTarget::Stdout);
    }
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    if !dir.is_dir() {
        return Err(user(format!("directory {} does not exist", dir.display())));
    }
    match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(OutTarget::File(out.to_path_buf())),
        Err(e) => Err(user(format!("{}: {e}", out.display()))),
        Ok(meta) if meta.is_file() => Ok(OutTarget::File(out.to_path_buf())),
        Ok(meta) if meta.is_dir() => {
            Err(user(format!("{} is a directory; give a file name with --out", out.display())))
        }
        Ok(_) => Err(user(format!(
            "{} is not a regular file (a device, pipe, socket or link): only a new or regular file is written; \
             use --out - for standard output",
            out.display()
        ))),
    }
}
