//! XML exports (L5X, PLCopen, TwinCAT, SimaticML, pfSense/OPNsense, firewalld, HMI and other XML): one line per
//! element with its attributes sorted, one line per line of text, each carrying its element path.
//!
//! Element paths name things the way an engineer does: an element with a `Name`/`name`/`Number`/`Id`
//! attribute is `Rung[3]`, `Program[MainProgram]`; pfSense/OPNsense list items are named by their `<name>` child
//! (`gateway_item[WAN_GW]`) and firewall rules by their `<tracker>` (`rule[tracker=1700000000]`); repeated
//! unnamed siblings are numbered (`rule#2`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::secrets::{self, FingerprintKey};
use super::{push_collapsed_ws, Format, NormLine};

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

/// pfSense/OPNsense name a list item by a child element instead of an attribute: `<name>` (gateways, aliases,
/// users, groups…) and `<tracker>` (firewall rules, a number that stays with the rule when it is edited or
/// moved). Only keys that stay with the item are used (`<descr>` is free text that engineers edit).
const KEY_CHILDREN: &[&str] = &["tracker", "name"];

/// How far ahead the key child of an element is looked for. List items are small and name themselves in their
/// first lines; a larger element (a whole section) gives up early, so the lookahead costs at most this many
/// bytes per element of a pfSense/OPNsense document and no memory beyond the reader's copy.
const KEY_LOOKAHEAD_BYTES: u64 = 64 * 1024;

/// pfSense/OPNsense lists whose order carries no meaning, as (list element, item element): gateways and aliases
/// are referred to by name (the default gateway is a flag, not the first item). Their keyed items are sorted by
/// key, so reordering them is no change. Firewall rules are *not* here: their order is behaviour.
const ORDERLESS_LISTS: &[(&str, &str)] = &[("gateways", "gateway_item"), ("aliases", "alias")];

/// One open element.
struct Frame {
    /// The element path down to this element. Every line the element emits shares it as its context (one
    /// allocation per element, not one per line).
    path: Arc<str>,
    /// How many children of each name were seen, to number unnamed repeated siblings.
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
    // Room for a line per 32 bytes up front: regrowing a large vector copies it (and touches fresh pages).
    let mut out = Vec::with_capacity(text.len() / 32);
    let mut n_secrets = 0;
    let mut scratch = String::new();
    loop {
        let event = reader.read_event().ok()?;
        match event {
            // Inside a skipped subtree only depth matters; `<a/>` has no End event, so it does not count.
            Event::Start(_) if skip_depth > 0 => skip_depth += 1,
            Event::Empty(_) if skip_depth > 0 => {}
            Event::Start(e) => {
                // Element paths grow with depth: unbounded nesting would cost quadratic time and memory.
                if stack.len() >= MAX_DEPTH {
                    return None;
                }
                let ahead = matches!(format, Format::PfSense | Format::OpnSense).then_some(&reader);
                if let Some(frame) = open(format, &e, ahead, &mut stack, key, &mut out, &mut n_secrets) {
                    stack.push(frame);
                } else {
                    skip_depth = 1;
                }
            }
            Event::Empty(e) => {
                open(format, &e, None, &mut stack, key, &mut out, &mut n_secrets);
            }
            Event::End(_) => {
                if skip_depth > 0 {
                    skip_depth -= 1;
                } else {
                    stack.pop()?;
                }
            }
            Event::Text(t) if skip_depth == 0 => {
                let value = t.unescape().unwrap_or_else(|_| String::from_utf8_lossy(&t));
                text_lines(&value, stack.last(), code_like, key, &mut scratch, &mut out, &mut n_secrets);
            }
            Event::CData(c) if skip_depth == 0 => {
                let value = String::from_utf8_lossy(&c);
                text_lines(&value, stack.last(), code_like, key, &mut scratch, &mut out, &mut n_secrets);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return None;
    }
    if matches!(format, Format::PfSense | Format::OpnSense) {
        out = sort_orderless_items(out);
    }
    Some((out, n_secrets))
}

/// Emits the element line; returns the frame, or `None` when the element is volatile (skip its subtree).
/// `ahead` is the reader just after the element's start tag when its key may be a child element (pfSense).
fn open(
    format: Format,
    e: &BytesStart<'_>,
    ahead: Option<&Reader<&[u8]>>,
    stack: &mut [Frame],
    key: &FingerprintKey,
    out: &mut Vec<NormLine>,
    n_secrets: &mut usize,
) -> Option<Frame> {
    let local_name = e.local_name();
    let name = String::from_utf8_lossy(local_name.as_ref());
    if VOLATILE_ELEMENTS.iter().any(|(f, n)| *f == format && *n == name) {
        return None;
    }
    let mut attrs: Vec<(Cow<'_, str>, Cow<'_, str>)> = Vec::new();
    for attr in e.attributes().flatten() {
        let k = String::from_utf8_lossy(attr.key.0);
        if k.starts_with("xmlns") || VOLATILE_ATTRIBUTES.iter().any(|(f, n)| *f == format && *n == k) {
            continue;
        }
        let v = match attr.unescape_value() {
            Ok(v) => v,
            Err(_) => Cow::Owned(String::from_utf8_lossy(&attr.value).into_owned()),
        };
        attrs.push((k, v));
    }
    // An element named by a secret word (`<Member Name="Password">`, `<add key="DbPassword" value=…>`,
    // `<variable name="AdminPwd">`) holds a secret in its value attributes and its text.
    let parent_secret = stack.last().is_some_and(|p| p.secret);
    let named_secret =
        attrs.iter().any(|(k, v)| secrets::NAMING_ATTRIBUTES.contains(&k.as_ref()) && secrets::is_secret_word(v));
    let has_value = attrs.iter().any(|(k, _)| secrets::VALUE_ATTRIBUTES.contains(&k.as_ref()));
    for (k, v) in attrs.iter_mut() {
        if v.is_empty() {
            continue;
        }
        let is_value = secrets::VALUE_ATTRIBUTES.contains(&k.as_ref());
        // `key="…"` next to a `value` names the setting (.NET appSettings); elsewhere a key attribute is secret.
        let naming_key = has_value && (k == "key" || k == "Key");
        if (secrets::is_secret_name(k) && !naming_key) || (is_value && (named_secret || parent_secret)) {
            *n_secrets += 1;
            *v = Cow::Owned(key.mask(v, false));
        } else if let (Cow::Owned(masked), n) = secrets::mask_shapes(v, key) {
            *n_secrets += n;
            *v = Cow::Owned(masked);
        }
    }
    let attribute_id = NAME_ATTRIBUTES.iter().find_map(|n| attrs.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_ref()));
    let child_id = if attribute_id.is_none() { ahead.and_then(child_key) } else { None };
    let parent = stack.last_mut();
    let mut path = String::with_capacity(parent.as_ref().map_or(0, |p| p.path.len()) + name.len() + 16);
    if let Some(parent) = &parent {
        path.push_str(&parent.path);
        path.push('/');
    }
    let segment_start = path.len();
    path.push_str(&name);
    match (attribute_id, child_id, parent) {
        (Some(id), _, _) => {
            path.push('[');
            path.push_str(id);
            path.push(']');
        }
        // A key read from a child is not guaranteed unique (exports hold two `WAN_GW` gateways, test
        // configurations reuse a tracker): a repeated one is numbered, so every item keeps a path of its own.
        (None, Some(id), parent) => {
            path.push('[');
            path.push_str(&id);
            path.push(']');
            if let Some(parent) = parent {
                let count = parent.children.entry(path[segment_start..].to_string()).or_insert(0);
                *count += 1;
                if *count > 1 {
                    let _ = write!(path, "#{count}");
                }
            }
        }
        (None, None, Some(parent)) => {
            let count = match parent.children.get_mut(name.as_ref()) {
                Some(count) => count,
                None => parent.children.entry(name.clone().into_owned()).or_insert(0),
            };
            *count += 1;
            if *count > 1 {
                let _ = write!(path, "#{count}");
            }
        }
        (None, None, None) => {}
    }
    attrs.sort();
    let secret = secrets::is_secret_name(&name) || parent_secret || named_secret;
    let mut text = String::with_capacity(path.len() + attrs.iter().map(|(k, v)| k.len() + v.len() + 5).sum::<usize>());
    text.push_str(&path);
    for (k, v) in &attrs {
        let _ = write!(text, " @{k}={v:?}");
    }
    let path: Arc<str> = Arc::from(path);
    out.push(NormLine { text, context: path.clone() });
    Some(Frame { path, children: HashMap::new(), secret })
}

/// The key of a pfSense/OPNsense list item, read ahead from its first-level `<tracker>` or `<name>` child:
/// `tracker=1700000000` or the name itself. `None` when the element has no such child with text, or when it
/// is not found within `KEY_LOOKAHEAD_BYTES`.
fn child_key(reader: &Reader<&[u8]>) -> Option<String> {
    let mut ahead = reader.clone();
    let start = ahead.buffer_position();
    let mut depth = 0usize;
    let mut in_key: Option<&'static str> = None;
    loop {
        if ahead.buffer_position().saturating_sub(start) > KEY_LOOKAHEAD_BYTES {
            return None;
        }
        match ahead.read_event().ok()? {
            Event::Start(e) => {
                depth += 1;
                in_key = if depth == 1 {
                    KEY_CHILDREN.iter().copied().find(|k| e.local_name().as_ref() == k.as_bytes())
                } else {
                    None
                };
            }
            Event::End(_) => {
                if depth == 0 {
                    return None;
                }
                depth -= 1;
                in_key = None;
            }
            Event::Text(t) if depth == 1 => {
                let Some(child) = in_key else { continue };
                let value = t.unescape().unwrap_or_else(|_| String::from_utf8_lossy(&t));
                let value = value.trim();
                if value.is_empty() {
                    continue;
                }
                return Some(if child == "name" { value.to_string() } else { format!("{child}={value}") });
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

/// Sorts the items of each `ORDERLESS_LISTS` list by key, each item with all its lines. Only a run of items that
/// are all keyed (`gateway_item[WAN_GW]`) is sorted; a list holding a numbered item (`gateway_item#2`, no
/// name) keeps its order, as the numbers are positions. One pass, the lines are moved, not copied.
fn sort_orderless_items(lines: Vec<NormLine>) -> Vec<NormLine> {
    let mut out = Vec::with_capacity(lines.len());
    let mut lines = lines.into_iter().peekable();
    while let Some(first) = lines.next() {
        let Some(parent_len) = orderless_item(&first.context) else {
            out.push(first);
            continue;
        };
        let parent: Arc<str> = Arc::from(&first.context[..parent_len]);
        let mut blocks: Vec<Vec<NormLine>> = Vec::new();
        let mut item = first;
        loop {
            let item_path = item.context.clone();
            let mut block = vec![item];
            while let Some(line) = lines.next_if(|l| is_inside(&l.context, &item_path)) {
                block.push(line);
            }
            blocks.push(block);
            match lines.next_if(|l| {
                orderless_item(&l.context).is_some_and(|len| l.context[..len] == *parent && l.context.len() > len)
            }) {
                Some(next) => item = next,
                None => break,
            }
        }
        // `gateway_item[WAN_GW]#2` is keyed (a repeated key), `gateway_item#2` is not.
        if blocks.iter().all(|b| b[0].context[parent_len..].contains('[')) {
            blocks.sort_by(|a, b| a[0].context.cmp(&b[0].context));
        }
        out.extend(blocks.into_iter().flatten());
    }
    out
}

/// When `context` is an item of an orderless list (`…/gateways/gateway_item[WAN_GW]`), the length of the list's
/// path (`…/gateways`).
fn orderless_item(context: &str) -> Option<usize> {
    let item_start = last_segment_start(context);
    let parent_len = item_start.checked_sub(1)?;
    let parent_segment = &context[last_segment_start(&context[..parent_len])..parent_len];
    let item_segment = &context[item_start..];
    ORDERLESS_LISTS
        .iter()
        .any(|(list, item)| {
            parent_segment == *list
                && item_segment.strip_prefix(item).is_some_and(|rest| rest.starts_with('[') || rest.starts_with('#'))
        })
        .then_some(parent_len)
}

/// Where the last segment of an element path starts (after the last `/` outside a `[key]`).
fn last_segment_start(path: &str) -> usize {
    let mut depth = 0usize;
    let mut start = 0;
    for (idx, c) in path.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            '/' if depth == 0 => start = idx + 1,
            _ => {}
        }
    }
    start
}

/// Is `context` the element `path` itself or inside it?
fn is_inside(context: &str, path: &str) -> bool {
    context.strip_prefix(path).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn text_lines(
    value: &str,
    frame: Option<&Frame>,
    code_like: bool,
    key: &FingerprintKey,
    scratch: &mut String,
    out: &mut Vec<NormLine>,
    n_secrets: &mut usize,
) {
    if value.trim().is_empty() {
        return;
    }
    let context: Arc<str> = frame.map(|f| f.path.clone()).unwrap_or_else(|| Arc::from(""));
    let line_of = |masked: &str| -> String {
        let mut text = String::with_capacity(context.len() + 2 + masked.len());
        text.push_str(&context);
        text.push_str(": ");
        text.push_str(masked);
        text
    };
    if frame.is_some_and(|f| f.secret) {
        *n_secrets += 1;
        // The fingerprint covers what the text says, as the lines of any other element would: layout (and in
        // PLC code, comments) do not change it, so a re-indented export keeps its secret's fingerprint.
        let value: Cow<'_, str> = if code_like { strip_st_comments(value) } else { Cow::Borrowed(value) };
        let mut canonical = String::with_capacity(value.len());
        for line in value.lines() {
            layout_line(scratch, line, code_like);
            if scratch.is_empty() {
                continue;
            }
            if !canonical.is_empty() {
                canonical.push('\n');
            }
            canonical.push_str(scratch);
        }
        if canonical.is_empty() {
            return;
        }
        out.push(NormLine { text: line_of(&key.mask(&canonical, false)), context });
        return;
    }
    // In PLC code (Structured Text and friends) comments and layout carry no behaviour.
    let value: Cow<'_, str> = if code_like { strip_st_comments(value) } else { Cow::Borrowed(value) };
    // Most text holds no secret at all: one scan of the whole text instead of one per line.
    let may_hold_secret = secrets::may_hold_secret(&value);
    if may_hold_secret && value.contains("-----BEGIN") {
        let lines: Vec<String> = value.lines().map(|l| l.trim_end_matches('\r').to_string()).collect();
        for line in secrets::mask_private_key_blocks(lines, key) {
            push_text_line(&line, code_like, true, key, scratch, &context, out, n_secrets);
        }
    } else {
        for line in value.lines() {
            push_text_line(line, code_like, may_hold_secret, key, scratch, &context, out, n_secrets);
        }
    }
}

/// One line of element text with its layout normalised into `scratch`: white space collapsed in PLC code,
/// trimmed elsewhere.
fn layout_line(scratch: &mut String, line: &str, code_like: bool) {
    scratch.clear();
    if code_like {
        push_collapsed_ws(scratch, line);
    } else {
        scratch.push_str(line.trim());
    }
}

/// One line of element text: layout normalised, secrets masked, prefixed by the element path.
#[allow(clippy::too_many_arguments)]
fn push_text_line(
    line: &str,
    code_like: bool,
    may_hold_secret: bool,
    key: &FingerprintKey,
    scratch: &mut String,
    context: &Arc<str>,
    out: &mut Vec<NormLine>,
    n_secrets: &mut usize,
) {
    layout_line(scratch, line, code_like);
    if scratch.is_empty() {
        return;
    }
    let masked = if may_hold_secret {
        let (masked, n) = secrets::mask_line(scratch, key);
        *n_secrets += n;
        masked
    } else {
        Cow::Borrowed(scratch.as_str())
    };
    let mut text = String::with_capacity(context.len() + 2 + masked.len());
    text.push_str(context);
    text.push_str(": ");
    text.push_str(&masked);
    out.push(NormLine { text, context: context.clone() });
}

/// Removes IEC 61131-3 comments (`(* … *)`, `/* … */`, `// …`) outside string literals, keeping the line
/// breaks inside them.
pub fn strip_st_comments(code: &str) -> Cow<'_, str> {
    if !code.contains("(*") && !code.contains("/*") && !code.contains("//") {
        return Cow::Borrowed(code);
    }
    // Byte by byte: every delimiter is ASCII, so comments start and end on character boundaries.
    let bytes = code.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut idx = 0;
    let mut in_string: Option<u8> = None;
    while idx < bytes.len() {
        let c = bytes[idx];
        idx += 1;
        if let Some(quote) = in_string {
            out.push(c);
            if c == b'$' {
                // `$'` escapes a quote inside an ST string.
                if let Some(&escaped) = bytes.get(idx) {
                    out.push(escaped);
                    idx += 1;
                }
            } else if c == quote {
                in_string = None;
            }
            continue;
        }
        match (c, bytes.get(idx).copied()) {
            (b'\'', _) | (b'"', _) => {
                in_string = Some(c);
                out.push(c);
            }
            (b'(', Some(b'*')) | (b'/', Some(b'*')) => {
                let close = if c == b'(' { b')' } else { b'/' };
                idx += 1;
                let mut prev = b' ';
                while idx < bytes.len() {
                    let d = bytes[idx];
                    idx += 1;
                    if prev == b'*' && d == close {
                        break;
                    }
                    if d == b'\n' {
                        out.push(b'\n');
                    }
                    prev = d;
                }
            }
            (b'/', Some(b'/')) => {
                while idx < bytes.len() {
                    let d = bytes[idx];
                    idx += 1;
                    if d == b'\n' {
                        out.push(b'\n');
                        break;
                    }
                }
            }
            _ => out.push(c),
        }
    }
    Cow::Owned(String::from_utf8(out).expect("only whole characters between ASCII delimiters are removed"))
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
        assert_eq!(strip_st_comments("x := 'ü$'ö'; (* ä\n *) y // ß\nz"), "x := 'ü$'ö'; \n y \nz");
        assert_eq!(strip_st_comments("no comments here"), "no comments here");
    }
}
