//! What both command lines print: JSON for scripts (`--json`), text for people.

use std::io::Write as _;

use serde::Serialize;

/// Pretty JSON on standard output, streamed through one buffer: a large answer (a million compliance results)
/// is never held as one string.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, value)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// `value` as JSON when `json`, else the text `text` makes of it.
pub fn print_json_or<T: Serialize + ?Sized>(
    value: &T,
    json: bool,
    text: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    if json {
        return print_json(value);
    }
    let mut out = std::io::stdout().lock();
    out.write_all(text(value).as_bytes())?;
    out.flush()?;
    Ok(())
}

/// A list: `items` as JSON when `json`, else a table of `header` and one `row` per item (control characters
/// in cells escaped).
pub fn print_list<T: Serialize>(
    items: &[T],
    json: bool,
    header: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) -> anyhow::Result<()> {
    print_json_or(items, json, |items| datum_shared::text::table(header, &items.iter().map(row).collect::<Vec<_>>()))
}
