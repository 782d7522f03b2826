//! XML exports (L5X, PLCopen, TwinCAT, SimaticML, pfSense/OPNsense, firewalld, HMI and other XML): one line per
//! element with its attributes sorted, one line per line of text, each carrying its element path.
//!
//! Element paths name things the way an engineer does: an element with a `Name`/`name`/`Number`/`Id`
//! attribute is `Rung[3]`, `Program[MainProgram]`; repeated unnamed siblings are numbered (`rule#2`).

use std::collections::HashMap;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::secrets::{self, FingerprintKey};
use super::{collapse_ws, Format, NormLine};

/// Attributes that change on every export without a change of content.
pub const VOLATILE_ATTRIBUTES: &[(Format, &str)] = &[
    (Format::RockwellL5x, "ExportDate"),
    (Format::RockwellL5x, "LastModifiedDate"),
    (Format::RockwellL5x, "ProjectCreationDate"),
    (Format::RockwellL5x, "TargetLastEdited"),
    (Format::RockwellL5x, "EditedDate"),
    (Format::PlcOpen, "creationDateTime"),
    (Format::PlcOpen, "modificationDateTime"),
    (Format::TwinCat, "ProductVersion"),
];

/// Elements whose whole subtree is bookkeeping.
pub const VOLATILE_ELEMENTS: &[(Format, &str)] =
    &[(Format::TwinCat, "LineIds"), (Format::PfSense, "revision"), (Format::OpnSense, "revision")];

/// Deeper documents are compared as text (real exports nest a few dozen levels).
const MAX_DEPTH: usize = 256;

const NAME_ATTRIBUTES: &[&str] = &["Name", "name", "Number", "ID", "Id", "id", "Key", "key"];

struct Frame {
    label: String,
    children: HashMap<String, usize>,
    secret: bool,
}

/// Returns `None` when the XML is malformed (the caller then compares it as text).
pub fn normalize(format: Format, text: &str, key: &FingerprintKey) -> Option<(Vec<NormLine>, usize)> {
    let mut reader = Reader::from_str(text.trim_start_matches('\u{feff}'));
    reader.config_mut().trim_text(false);
    let code_like =
        matches!(format, Format::RockwellL5x | Format::PlcOpen | Format::TwinCat | Format::SimaticMl | Format::Xml);
    let mut stack: Vec<Frame> = Vec::new();
    let mut skip_depth: usize = 0;
    let mut out = Vec::new();
    let mut n_secrets = 0;
    loop {
        let event = reader.read_event().ok()?;
        match event {
            // Inside a skipped subtree only depth matters; `<a/>` has no End event, so it does not count.
            Event::Start(_) if skip_depth > 0 => skip_depth += 1,
            Event::Empty(_) if skip_depth > 0 => {}
            Event::Start(e) => {
                // Element paths are built per line: unbounded nesting would cost quadratic time and memory.
                if stack.len() >= MAX_DEPTH {
                    return None;
                }
                if let Some(frame) = open(format, &e, &mut stack, key, &mut out, &mut n_secrets) {
                    stack.push(frame);
                } else {
                    skip_depth = 1;
                }
            }
            Event::Empty(e) => {
                open(format, &e, &mut stack, key, &mut out, &mut n_secrets);
            }
            Event::End(_) => {
                if skip_depth > 0 {
                    skip_depth -= 1;
                } else {
                    stack.pop()?;
                }
            }
            Event::Text(t) if skip_depth == 0 => {
                let value =
                    t.unescape().map(|c| c.into_owned()).unwrap_or_else(|_| String::from_utf8_lossy(&t).into_owned());
                text_lines(&value, &stack, code_like, key, &mut out, &mut n_secrets);
            }
            Event::CData(c) if skip_depth == 0 => {
                let value = String::from_utf8_lossy(&c).into_owned();
                text_lines(&value, &stack, code_like, key, &mut out, &mut n_secrets);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return None;
    }
    Some((out, n_secrets))
}

fn path(stack: &[Frame]) -> String {
    stack.iter().map(|f| f.label.as_str()).collect::<Vec<_>>().join("/")
}

/// Emits the element line; returns the frame, or `None` when the element is volatile (skip its subtree).
fn open(
    format: Format,
    e: &BytesStart<'_>,
    stack: &mut [Frame],
    key: &FingerprintKey,
    out: &mut Vec<NormLine>,
    n_secrets: &mut usize,
) -> Option<Frame> {
    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
    if VOLATILE_ELEMENTS.iter().any(|(f, n)| *f == format && *n == name) {
        return None;
    }
    let mut attrs: Vec<(String, String)> = Vec::new();
    for attr in e.attributes().flatten() {
        let k = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
        if k.starts_with("xmlns") || VOLATILE_ATTRIBUTES.iter().any(|(f, n)| *f == format && *n == k) {
            continue;
        }
        let v = attr
            .unescape_value()
            .map(|c| c.into_owned())
            .unwrap_or_else(|_| String::from_utf8_lossy(&attr.value).into_owned());
        let v = if secrets::is_secret_name(&k) && !v.is_empty() {
            *n_secrets += 1;
            key.mask(&v, false)
        } else {
            v
        };
        attrs.push((k, v));
    }
    let id = NAME_ATTRIBUTES.iter().find_map(|n| attrs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()));
    let label = match (&id, stack.last_mut()) {
        (Some(id), _) => format!("{name}[{id}]"),
        (None, Some(parent)) => {
            let count = parent.children.entry(name.clone()).or_insert(0);
            *count += 1;
            if *count > 1 {
                format!("{name}#{count}")
            } else {
                name.clone()
            }
        }
        (None, None) => name.clone(),
    };
    attrs.sort();
    let secret = secrets::is_secret_name(&name) || stack.last().is_some_and(|p| p.secret);
    let mut full = path(stack);
    if !full.is_empty() {
        full.push('/');
    }
    full.push_str(&label);
    let mut text = full.clone();
    for (k, v) in &attrs {
        text.push_str(&format!(" @{k}={v:?}"));
    }
    out.push(NormLine { text, context: full });
    Some(Frame { label, children: HashMap::new(), secret })
}

fn text_lines(
    value: &str,
    stack: &[Frame],
    code_like: bool,
    key: &FingerprintKey,
    out: &mut Vec<NormLine>,
    n_secrets: &mut usize,
) {
    if value.trim().is_empty() {
        return;
    }
    let context = path(stack);
    if stack.last().is_some_and(|f| f.secret) {
        *n_secrets += 1;
        out.push(NormLine { text: format!("{context}: {}", key.mask(value.trim(), false)), context });
        return;
    }
    // In PLC code (Structured Text and friends) comments and layout carry no behaviour.
    let value = if code_like { strip_st_comments(value) } else { value.to_string() };
    let lines: Vec<String> = value.lines().map(|l| l.trim_end_matches('\r').to_string()).collect();
    for line in secrets::mask_private_key_blocks(lines, key) {
        let line = if code_like { collapse_ws(&line) } else { line.trim().to_string() };
        if line.is_empty() {
            continue;
        }
        let (masked, n) = secrets::mask_line(&line, key);
        *n_secrets += n;
        out.push(NormLine { text: format!("{context}: {masked}"), context: context.clone() });
    }
}

/// Removes IEC 61131-3 comments (`(* … *)`, `/* … */`, `// …`) outside string literals.
pub fn strip_st_comments(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut chars = code.chars().peekable();
    let mut in_string: Option<char> = None;
    while let Some(c) = chars.next() {
        if let Some(q) = in_string {
            out.push(c);
            if c == '$' {
                // `$'` escapes a quote inside an ST string.
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else if c == q {
                in_string = None;
            }
            continue;
        }
        match (c, chars.peek().copied()) {
            ('\'', _) | ('"', _) => {
                in_string = Some(c);
                out.push(c);
            }
            ('(', Some('*')) | ('/', Some('*')) => {
                let close = if c == '(' { ')' } else { '/' };
                chars.next();
                let mut prev = ' ';
                for d in chars.by_ref() {
                    if prev == '*' && d == close {
                        break;
                    }
                    if d == '\n' {
                        out.push('\n');
                    }
                    prev = d;
                }
            }
            ('/', Some('/')) => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::strip_st_comments;

    #[test]
    fn st_comments_go_strings_stay() {
        assert_eq!(
            strip_st_comments("a := 1; (* set a *)\nb := '(* not *)'; // tail\nc;"),
            "a := 1; \nb := '(* not *)'; \nc;"
        );
        assert_eq!(strip_st_comments("(* multi\nline *)x"), "\nx");
        assert_eq!(strip_st_comments("s := 'it$'s'; // c"), "s := 'it$'s'; ");
    }
}
