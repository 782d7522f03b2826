//! Secret context in raw XML lines (layer 4 of masking, for `--raw` output): the text and value attributes inside
//! a secret element are masked even where they stand on lines of their own, which a line-by-line scan cannot see.
//!
//! An element is secret when its name says so (`<Password>`, `<prv>`), when the attribute naming it does
//! (`<Member Name="Password">`, `<add key="DbPassword" value=…>`, `<variable name="AdminPwd">`), or when it
//! lies inside a secret element. The same rules as the XML normaliser (`xml.rs`), on a tokenizer that carries its
//! state from line to line and never fails: raw text may be malformed.

use super::secrets::{is_mask, is_secret_name, is_secret_word, Span, NAMING_ATTRIBUTES, VALUE_ATTRIBUTES};

/// Follows XML markup through the lines of a raw text; fed every line in order.
#[derive(Debug, Default)]
pub struct RawXml {
    /// Open elements, innermost last: is each secret?
    stack: Vec<bool>,
    mode: Mode,
    tag: Tag,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Mode {
    #[default]
    Text,
    Comment,
    CData,
    /// `<?…?>`, `<!DOCTYPE …>`.
    Markup,
    /// Inside a start or end tag, between attributes.
    Tag,
    /// Inside a quoted attribute value.
    Value(u8),
}

/// The tag being read.
#[derive(Debug, Default)]
struct Tag {
    closing: bool,
    /// The element's own name says secret.
    secret_name: bool,
    /// An attribute naming the element (`Name`, `key`) says secret.
    named_secret: bool,
    /// The attribute whose value is being read is a value attribute / a naming attribute.
    in_value_attribute: bool,
    in_naming_attribute: bool,
    /// Value attributes of this line seen before the naming attribute decided.
    pending: Vec<Span>,
}

impl RawXml {
    fn in_secret(&self) -> bool {
        self.stack.last().copied().unwrap_or(false)
    }

    fn tag_secret(&self) -> bool {
        self.in_secret() || self.tag.secret_name || self.tag.named_secret
    }

    /// Adds the spans of one line that are secret by their element.
    pub fn scan(&mut self, line: &str, spans: &mut Vec<Span>) {
        let bytes = line.as_bytes();
        let mut idx = 0;
        // A value continued from the line before starts at the line's start.
        let mut value_start = 0;
        while idx <= bytes.len() {
            match self.mode {
                Mode::Text => {
                    let lt = line[idx..].find('<').map(|i| idx + i).unwrap_or(bytes.len());
                    if self.in_secret() {
                        push_trimmed(line, idx, lt, spans);
                    }
                    if lt >= bytes.len() {
                        return;
                    }
                    let rest = &line[lt..];
                    if rest.starts_with("<!--") {
                        self.mode = Mode::Comment;
                        idx = lt + 4;
                    } else if rest.starts_with("<![CDATA[") {
                        self.mode = Mode::CData;
                        idx = lt + 9;
                    } else if rest.starts_with("<?") || rest.starts_with("<!") {
                        self.mode = Mode::Markup;
                        idx = lt + 2;
                    } else {
                        let closing = rest.starts_with("</");
                        let name_start = lt + 1 + usize::from(closing);
                        let name_end = line[name_start..]
                            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
                            .map(|i| name_start + i)
                            .unwrap_or(bytes.len());
                        let name = &line[name_start..name_end];
                        let local = name.rsplit(':').next().unwrap_or(name);
                        self.tag = Tag { closing, secret_name: is_secret_name(local), ..Tag::default() };
                        self.mode = Mode::Tag;
                        idx = name_end;
                    }
                }
                Mode::Comment | Mode::CData | Mode::Markup => {
                    let end_marker = match self.mode {
                        Mode::Comment => "-->",
                        Mode::CData => "]]>",
                        _ => ">",
                    };
                    let end = line[idx..].find(end_marker).map(|i| idx + i);
                    if self.mode == Mode::CData && self.in_secret() {
                        push_trimmed(line, idx, end.unwrap_or(bytes.len()), spans);
                    }
                    match end {
                        Some(end) => {
                            self.mode = Mode::Text;
                            idx = end + end_marker.len();
                        }
                        None => return,
                    }
                }
                Mode::Tag => {
                    while idx < bytes.len() && bytes[idx].is_ascii_whitespace() {
                        idx += 1;
                    }
                    if idx >= bytes.len() {
                        // Attributes go on on the next line; undecided values of this one are dropped.
                        self.tag.pending.clear();
                        return;
                    }
                    if bytes[idx] == b'>' || line[idx..].starts_with("/>") {
                        let self_closing = bytes[idx] == b'/';
                        self.end_tag(self_closing, spans);
                        self.mode = Mode::Text;
                        idx += if self_closing { 2 } else { 1 };
                        continue;
                    }
                    // At least one whole character: a stray `/` or a non-ASCII blank is stepped over.
                    let first_len = line[idx..].chars().next().map_or(1, char::len_utf8);
                    let name_end = line[idx + first_len..]
                        .find(|c: char| c.is_whitespace() || c == '=' || c == '>' || c == '/')
                        .map(|i| idx + first_len + i)
                        .unwrap_or(bytes.len());
                    let attribute = &line[idx..name_end];
                    let local = attribute.rsplit(':').next().unwrap_or(attribute);
                    self.tag.in_value_attribute = VALUE_ATTRIBUTES.contains(&local);
                    self.tag.in_naming_attribute = NAMING_ATTRIBUTES.contains(&local);
                    idx = name_end;
                    while idx < bytes.len() && (bytes[idx].is_ascii_whitespace() || bytes[idx] == b'=') {
                        idx += 1;
                    }
                    if idx < bytes.len() && matches!(bytes[idx], b'"' | b'\'') {
                        self.mode = Mode::Value(bytes[idx]);
                        idx += 1;
                        value_start = idx;
                    }
                }
                Mode::Value(quote) => {
                    let end = line[idx..].find(quote as char).map(|i| idx + i);
                    let value_end = end.unwrap_or(bytes.len());
                    let value = &line[value_start..value_end];
                    if self.tag.in_naming_attribute && is_secret_word(value) {
                        self.tag.named_secret = true;
                        spans.append(&mut self.tag.pending);
                    }
                    if self.tag.in_value_attribute && value_end > value_start && !is_mask(value) {
                        let span = Span { start: value_start, end: value_end, salted: false };
                        if self.tag_secret() {
                            spans.push(span);
                        } else {
                            self.tag.pending.push(span);
                        }
                    }
                    match end {
                        Some(end) => {
                            self.mode = Mode::Tag;
                            idx = end + 1;
                        }
                        None => return,
                    }
                }
            }
        }
    }

    fn end_tag(&mut self, self_closing: bool, spans: &mut Vec<Span>) {
        let tag = std::mem::take(&mut self.tag);
        if tag.closing {
            self.stack.pop();
            return;
        }
        let secret = self.in_secret() || tag.secret_name || tag.named_secret;
        if tag.named_secret || self.in_secret() {
            spans.extend(tag.pending);
        }
        if !self_closing {
            self.stack.push(secret);
        }
    }
}

/// Masks the text between `start` and `end` without its surrounding blanks.
fn push_trimmed(line: &str, start: usize, end: usize, spans: &mut Vec<Span>) {
    let segment = &line[start..end];
    let body = segment.trim();
    if body.is_empty() || is_mask(body) {
        return;
    }
    let body_start = start + (segment.len() - segment.trim_start().len());
    spans.push(Span { start: body_start, end: body_start + body.len(), salted: false });
}

/// Does this text look like XML (its first non-blank character opens a tag)?
pub fn looks_like_xml(text: &str) -> bool {
    text.trim_start_matches('\u{feff}').trim_start().starts_with('<')
}
