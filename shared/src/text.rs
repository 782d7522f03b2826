//! Turning configuration bytes into text for people, and line diffs between two versions.
//!
//! Plants have UTF-8, UTF-16 (Windows security templates) and Windows-1252 (STEP 7 sources) files. Decoding
//! is only for display and diffing: the raw bytes are always what is stored and restored.

use std::fmt::Write as _;

use imara_diff::intern::InternedInput;
use imara_diff::{diff, Algorithm, UnifiedDiffBuilder};

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

/// Decodes bytes to text, recognising BOMs; `None` for binary content.
pub fn decode(bytes: &[u8]) -> (Encoding, Option<String>) {
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return (Encoding::Utf8, Some(String::from_utf8_lossy(rest).into_owned()));
    }
    if bytes.starts_with(&[0xFF, 0xFE]) {
        let (text, _, _) = encoding_rs::UTF_16LE.decode(bytes);
        return (Encoding::Utf16Le, Some(text.into_owned()));
    }
    if bytes.starts_with(&[0xFE, 0xFF]) {
        let (text, _, _) = encoding_rs::UTF_16BE.decode(bytes);
        return (Encoding::Utf16Be, Some(text.into_owned()));
    }
    let sample = &bytes[..bytes.len().min(64 * 1024)];
    let controls = sample.iter().filter(|&&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0C)).count();
    if sample.contains(&0) || controls * 100 > sample.len().max(1) {
        return (Encoding::Binary, None);
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => (Encoding::Utf8, Some(text.to_string())),
        Err(_) => {
            let (text, _, _) = encoding_rs::WINDOWS_1252.decode(bytes);
            (Encoding::Windows1252, Some(text.into_owned()))
        }
    }
}

/// Counts of a line diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiffStat {
    pub added: u32,
    pub removed: u32,
}

/// A unified line diff (histogram algorithm) with `---`/`+++` headers; empty when the texts are equal.
pub fn unified_diff(old_label: &str, new_label: &str, old: &str, new: &str) -> (String, DiffStat) {
    let input = InternedInput::new(old, new);
    let body = diff(Algorithm::Histogram, &input, UnifiedDiffBuilder::new(&input));
    let mut stat = DiffStat::default();
    for line in body.lines() {
        if line.starts_with('+') {
            stat.added += 1;
        } else if line.starts_with('-') {
            stat.removed += 1;
        }
    }
    if body.is_empty() {
        return (String::new(), stat);
    }
    let mut out = String::new();
    let _ = writeln!(out, "--- {old_label}");
    let _ = writeln!(out, "+++ {new_label}");
    out.push_str(&body);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    (out, stat)
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

    #[test]
    fn diff_of_equal_texts_is_empty() {
        assert_eq!(unified_diff("a", "b", "x\ny\n", "x\ny\n").0, "");
    }

    #[test]
    fn diff_shows_changed_lines() {
        let (text, stat) = unified_diff("v1", "v2", "a\nb\nc\n", "a\nB\nc\n");
        assert_eq!(stat, DiffStat { added: 1, removed: 1 });
        assert_eq!(text, "--- v1\n+++ v2\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n");
    }
}
