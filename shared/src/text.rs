//! Turning configuration bytes into text for people and for the normalisers.
//!
//! Plants have UTF-8, UTF-16 (Windows security templates) and Windows-1252 (STEP 7 sources) files. Decoding
//! is only for display and diffing: the raw bytes are always what is stored and restored.

use std::borrow::Cow;

/// Free text that goes into documents and reports: bounded, no control characters except tab.
pub fn check_text(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.chars().count() > max {
        return Err(format!("{field} is longer than {max} characters"));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!("{field} contains a control character"));
    }
    Ok(())
}

/// How a file's bytes were turned into text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Utf16Le,
    Utf16Be,
    Windows1252,
    /// Not text: NUL bytes or too many control characters.
    Binary,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Utf16Le => "utf-16le",
            Encoding::Utf16Be => "utf-16be",
            Encoding::Windows1252 => "windows-1252",
            Encoding::Binary => "binary",
        }
    }
}

/// Decodes bytes to text, recognising BOMs; `None` for binary content. UTF-8 is borrowed, not copied.
pub fn decode(bytes: &[u8]) -> (Encoding, Option<Cow<'_, str>>) {
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return (Encoding::Utf8, Some(String::from_utf8_lossy(rest)));
    }
    if bytes.starts_with(&[0xFF, 0xFE]) {
        let (text, _, _) = encoding_rs::UTF_16LE.decode(bytes);
        return (Encoding::Utf16Le, Some(text));
    }
    if bytes.starts_with(&[0xFE, 0xFF]) {
        let (text, _, _) = encoding_rs::UTF_16BE.decode(bytes);
        return (Encoding::Utf16Be, Some(text));
    }
    let sample = &bytes[..bytes.len().min(64 * 1024)];
    let controls = sample.iter().filter(|&&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0C)).count();
    if sample.contains(&0) || controls * 100 > sample.len().max(1) {
        return (Encoding::Binary, None);
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => (Encoding::Utf8, Some(Cow::Borrowed(text))),
        Err(_) => {
            let (text, _, _) = encoding_rs::WINDOWS_1252.decode(bytes);
            (Encoding::Windows1252, Some(text))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_encodings_plants_have() {
        assert_eq!(decode(b"hostname sw1\n"), (Encoding::Utf8, Some("hostname sw1\n".into())));
        assert_eq!(decode(b"\xEF\xBB\xBFa"), (Encoding::Utf8, Some("a".into())));
        assert_eq!(decode(b"\xFF\xFEa\x00b\x00"), (Encoding::Utf16Le, Some("ab".into())));
        assert_eq!(decode(b"Stra\xDFe"), (Encoding::Windows1252, Some("Straße".into())));
        assert_eq!(decode(b"PK\x03\x04\x00\x00").0, Encoding::Binary);
    }
}

/// Text for a terminal: control characters (a newline in a file name, an escape sequence in a configuration
/// line) are shown as `\n`, `\r`, `\u{1b}`… so no value can forge an output line or drive the terminal. Tabs
/// stay. Borrowed when there is nothing to escape, which is almost always.
pub fn shown(value: &str) -> Cow<'_, str> {
    if !value.chars().any(|c| c.is_control() && c != '\t') {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\t' => out.push('\t'),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Rows as left-aligned columns under a header, one line each, every cell `shown` (escaped). Widths count
/// characters; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let cells: Vec<Vec<Cow<'_, str>>> = rows.iter().map(|row| row.iter().map(|c| shown(c)).collect()).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &cells {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |row: &mut dyn Iterator<Item = &str>| {
        let row: Vec<&str> = row.collect();
        let mut text = String::new();
        for (i, cell) in row.iter().enumerate() {
            text.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(cell.chars().count()) + 2;
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in &cells {
        line(&mut row.iter().map(|c| c.as_ref()));
    }
    out
}

#[cfg(test)]
mod table_tests {
    use super::*;

    #[test]
    fn control_characters_cannot_forge_lines() {
        assert_eq!(shown("plain\ttab"), "plain\ttab");
        assert_eq!(shown("evil\nFW-01  in-baseline"), "evil\\nFW-01  in-baseline");
        assert_eq!(shown("\u{1b}[2Jclear"), "\\u{1b}[2Jclear");
        assert_eq!(shown("cr\rover"), "cr\\rover");
    }

    #[test]
    fn columns_align_on_characters() {
        let rows = vec![vec!["Werk Süd".to_string(), "x".into()], vec!["a\nb".into(), "yy".into()]];
        assert_eq!(table(&["SITE", "V"], &rows), "SITE      V\nWerk Süd  x\na\\nb      yy\n");
    }
}
