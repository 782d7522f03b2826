//! Printing: JSON for scripts, aligned text for people, progress bars only on a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

pub fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    println!("{text}");
    Ok(())
}

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
