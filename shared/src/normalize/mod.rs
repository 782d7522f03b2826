//! Format-aware normalisation: turn a configuration export into the lines that matter, each with the place an
//! engineer would look for it, so that noise (export timestamps, counters, re-salted secrets, reordering where
//! order means nothing) does not count as change, and secrets are never shown.
//!
//! `normalize(name, bytes, key)` → `Normalized { format, lines: [NormLine { text, context }] }`. The
//! normalised hash (`Normalized::hash`) is what drift compares. Pure: bytes in, value out.
//!
//! What counts as noise is declared per format in `NOISE` (whole lines dropped), `TRANSFORMS` (parts of lines
//! rewritten), `xml::VOLATILE_ATTRIBUTES`/`VOLATILE_ELEMENTS`, and the reordering rules in `unordered()`.
//! Everything else is significant, in particular the order of firewall rules, ACL entries, routing policy and
//! rungs.

mod detect;
mod json;
mod raw_xml;
pub mod secrets;
mod xml;

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use regex::Regex;
use sha2::{Digest, Sha256};

pub use detect::{detect, Format};
pub use secrets::FingerprintKey;

use crate::text::{self, Encoding};

/// Version of the normalisation rules. Stored with every configuration version: hashes made by different
/// versions are not compared with each other (drift falls back to the raw hash). 3: masking in layers (value
/// shapes, secret names by their words, positional grammars, YAML and XML context). 4: pfSense/OPNsense list
/// items are named by their `<name>`/`<tracker>` child (`gateway_item[WAN_GW]`), not numbered. 5: the text of an
/// XML element that holds a secret is fingerprinted after the layout (and PLC-code comment) normalisation its
/// lines get elsewhere, so re-indenting an export no longer changes the fingerprint.
pub const NORMALIZER_VERSION: u32 = 5;

/// Inputs larger than this are refused (callers fall back to raw comparison): memory stays bounded.
pub const MAX_NORMALIZE_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    #[error("file is {size} bytes; format-aware normalisation is limited to {MAX_NORMALIZE_BYTES} bytes")]
    TooLarge { size: usize },
}

/// One significant line and where it belongs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormLine {
    pub text: String,
    /// The hierarchical context (`interface GigabitEthernet0/1`, `config firewall policy > edit 3`) or element
    /// path (`Controller[PLC]/Programs/Program[Main]/…/Rung[3]`). Shared by the lines of one block or element.
    pub context: Arc<str>,
}

#[derive(Debug, Clone)]
pub struct Normalized {
    pub format: Format,
    pub encoding: Encoding,
    pub lines: Vec<NormLine>,
    /// Number of secrets masked.
    pub secrets: usize,
}

impl Normalized {
    /// SHA-256 over the normalised lines (context excluded: moving nothing changes nothing).
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.format.as_str().as_bytes());
        h.update(b"\n");
        for line in &self.lines {
            h.update(line.text.as_bytes());
            h.update(b"\n");
        }
        hex::encode(h.finalize())
    }
}

/// Normalises one file. `name` is a hint for format detection only.
pub fn normalize(name: Option<&str>, bytes: &[u8], key: &FingerprintKey) -> Result<Normalized, NormalizeError> {
    if bytes.len() > MAX_NORMALIZE_BYTES {
        return Err(NormalizeError::TooLarge { size: bytes.len() });
    }
    let (encoding, decoded) = text::decode(bytes);
    let Some(text) = decoded else {
        return Ok(Normalized {
            format: Format::Binary,
            encoding,
            lines: vec![NormLine {
                text: format!("binary sha256 {}", hex::encode(Sha256::digest(bytes))),
                context: "file".into(),
            }],
            secrets: 0,
        });
    };
    let format = detect(name, &text);
    let (lines, secrets) = match format {
        f if f.is_xml() => match xml::normalize(f, &text, key) {
            Some(out) => out,
            // Malformed XML is still compared, as text.
            None => normalize_lines(Format::Text, &text, key),
        },
        Format::Json => json::normalize(&text, key).unwrap_or_else(|| normalize_lines(Format::Text, &text, key)),
        f => normalize_lines(f, &text, key),
    };
    Ok(Normalized { format, encoding, lines, secrets })
}

/// The format `normalize` reports for these bytes, without normalising them: two identical files normalise
/// alike, so comparing them needs nothing more.
pub fn format_of(name: Option<&str>, bytes: &[u8]) -> Format {
    match text::decode(bytes).1 {
        Some(text) => detect(name, &text),
        None => Format::Binary,
    }
}

/// Runs one format's normaliser on text, whatever the content looks like (fuzzing and tests of each parser).
pub fn normalize_as(format: Format, text: &str, key: &FingerprintKey) -> Vec<NormLine> {
    match format {
        f if f.is_xml() => xml::normalize(f, text, key).map(|(lines, _)| lines).unwrap_or_default(),
        Format::Json => json::normalize(text, key).map(|(lines, _)| lines).unwrap_or_default(),
        Format::Binary => Vec::new(),
        f => normalize_lines(f, text, key).0,
    }
}

/// Every format: the names a template's `applies.format` accepts, and the inputs of tests and fuzzing.
pub const ALL_FORMATS: [Format; 30] = [
    Format::CiscoIos,
    Format::CiscoNxos,
    Format::CiscoIosXr,
    Format::CiscoAsa,
    Format::JunosCurly,
    Format::JunosSet,
    Format::FortiOs,
    Format::PfSense,
    Format::OpnSense,
    Format::MikroTik,
    Format::IptablesSave,
    Format::Nftables,
    Format::Firewalld,
    Format::NetworkCli,
    Format::OpenWrtUci,
    Format::RockwellL5x,
    Format::SimaticMl,
    Format::Step7Source,
    Format::PlcOpen,
    Format::TwinCat,
    Format::Xml,
    Format::Sysctl,
    Format::SshdConfig,
    Format::AuditRules,
    Format::KeyValue,
    Format::WindowsInf,
    Format::Csv,
    Format::Json,
    Format::Text,
    Format::Binary,
];

/// Normalises the two sides of a comparison at once, on two threads (a comparison is interactive; the two
/// halves are independent).
pub fn normalize_pair(
    name: Option<&str>,
    old: &[u8],
    new: &[u8],
    key: &FingerprintKey,
) -> (Result<Normalized, NormalizeError>, Result<Normalized, NormalizeError>) {
    std::thread::scope(|scope| {
        let old_side = scope.spawn(|| normalize(name, old, key));
        let new_side = normalize(name, new, key);
        let old_side = old_side.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (old_side, new_side)
    })
}

/// Secret masking only, line by line, for showing raw text (`diff --raw`, displays).
pub fn mask_raw(text: &str, key: &FingerprintKey) -> Vec<String> {
    let lines: Vec<String> = text.lines().map(|l| l.trim_end_matches('\r').to_string()).collect();
    secrets::mask_raw_lines(lines, key)
}

/// Noise rules: lines of these formats matching one of the patterns are dropped. Each rule is `(pattern, what)`;
/// `what` is shown in docs/normalisation.md.
struct Noise {
    formats: &'static [Format],
    rules: &'static [(&'static str, &'static str)],
}

const CISCO: &[Format] =
    &[Format::CiscoIos, Format::CiscoNxos, Format::CiscoIosXr, Format::CiscoAsa, Format::NetworkCli];
const ANY_TEXT: &[Format] =
    &[Format::CiscoIos, Format::CiscoNxos, Format::CiscoIosXr, Format::CiscoAsa, Format::NetworkCli, Format::Text];

const NOISE: &[Noise] = &[
    Noise {
        formats: CISCO,
        rules: &[
            // `! Last configuration change at …` (IOS, NX-OS) and `!! Last configuration change …` (IOS-XR).
            (r"^!!?\s*Last configuration change", "last change timestamp"),
            (r"^!\s*NVRAM config last updated at", "NVRAM save timestamp"),
            (r"^!\s*No configuration change since last restart", "restart note"),
            (r"^!Time:", "NX-OS time header"),
            (r"^!Running configuration last done at", "NX-OS last done"),
            (r"^Building configuration", "show run banner"),
            (r"^Current configuration\s*:", "config size"),
            (r"^\s*ntp clock-period\s", "NTP clock drift compensation"),
            (r"^: Written by .* at ", "ASA write time"),
            (r"^: Saved", "ASA saved marker"),
            (r"^Cryptochecksum:", "ASA checksum"),
            (r"^!\s*$", "separator lines"),
        ],
    },
    Noise {
        formats: ANY_TEXT,
        rules: &[
            (
                r"^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s+\d+ \d\d:\d\d:\d\d(?:\.\d+)? \S+$",
                "time stamp printed by `show running-config`",
            ),
            (r"\buptime is\b", "uptime"),
        ],
    },
    Noise {
        formats: &[Format::JunosCurly, Format::JunosSet],
        rules: &[(r"^##\s*Last (?:commit|changed):", "commit time and user")],
    },
    Noise {
        formats: &[Format::FortiOs],
        rules: &[(r"^#(?:config-version|conf_file_ver|buildno|global_vdom|private-encryption-key)=", "export header")],
    },
    Noise {
        formats: &[Format::MikroTik],
        rules: &[
            (r"^#.*\bby RouterOS\b", "export time and RouterOS version"),
            (r"^#\s*software id\s*=", "software id"),
        ],
    },
    Noise {
        formats: &[Format::IptablesSave],
        rules: &[(r"^#\s*(?:Generated by|Completed on)", "iptables-save time stamps")],
    },
];

/// A rewrite of part of a line (counters, volatile numbers).
struct Transform {
    formats: &'static [Format],
    pattern: &'static str,
    replacement: &'static str,
    #[allow(dead_code)]
    what: &'static str,
}

const TRANSFORMS: &[Transform] = &[
    Transform {
        formats: &[Format::IptablesSave],
        pattern: r"\[\d+:\d+\]",
        replacement: "[0:0]",
        what: "packet and byte counters",
    },
    Transform {
        formats: &[Format::Nftables],
        pattern: r"counter packets \d+ bytes \d+",
        replacement: "counter",
        what: "rule counters",
    },
];

/// Makes `\b`, `\w`, `\d`, `\s` (and their negations) ASCII-only. Unicode word boundaries keep the regex
/// crate off its fast DFA; configuration keywords are ASCII anyway.
pub(crate) fn ascii_classes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('b') if !in_class => out.push_str("(?-u:\\b)"),
                Some('w') => out.push_str(if in_class { "0-9A-Za-z_" } else { "[0-9A-Za-z_]" }),
                Some('d') => out.push_str(if in_class { "0-9" } else { "[0-9]" }),
                Some('s') => out.push_str(if in_class { "\\t\\n\\x0B\\x0C\\r " } else { "[\\t\\n\\x0B\\x0C\\r ]" }),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                // A `]` right after `[` or `[^` is a literal, not the end of the class.
                let rest = chars.as_str();
                if let Some(stripped) = rest.strip_prefix('^') {
                    out.push('^');
                    chars.next();
                    if stripped.starts_with(']') {
                        out.push(']');
                        chars.next();
                    }
                } else if rest.starts_with(']') {
                    out.push(']');
                    chars.next();
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// The noise rules of one format, compiled the first time the format is normalised. A line is tested the cheap
/// way first: the rules anchored at the start of the line are only run on a line whose first byte can start one
/// of them, and the others only when the whole text matches them somewhere. (One `RegexSet` over all the rules
/// instead cost a search to the end of every line and an allocation per line: the most expensive step of
/// normalising a Cisco configuration.)
#[derive(Clone)]
struct FormatNoise {
    /// `first_bytes[b]`: an anchored rule can match a line that starts with byte `b`.
    first_bytes: [bool; 256],
    /// `after_blanks[b]`: a rule that starts with `^\s*` can match a line whose first byte other than white space
    /// is `b` (`  ntp clock-period …`; indented lines need not run the rules because of it).
    after_blanks: [bool; 256],
    /// What a line must start with for an anchored rule to match it, per rule: the literal text after `^` (or
    /// after `^\s*`, then tested after the line's leading white space: `true`), or the alternatives of a group
    /// of words. `None` when a rule starts in another way (every line that passes `first_bytes` is tested).
    /// Most lines that pass the first byte (`!`, `n`…) fail here, and need not run the regular expression.
    prefixes: Option<Vec<(bool, Vec<String>)>>,
    /// Rules that match one literal line (`^!\s*$`, the separator of Cisco configurations: a third of the lines
    /// of an IOS export): such a line is noise without running the regular expression.
    whole_lines: Vec<&'static str>,
    anchored: Option<Regex>,
    floating: Option<Regex>,
    /// The floating rules hold no anchor: a line can only match them where the whole text does.
    floating_only_in_text: bool,
}

impl FormatNoise {
    fn new(format: Format) -> FormatNoise {
        let patterns: Vec<&str> = NOISE
            .iter()
            .filter(|n| n.formats.contains(&format))
            .flat_map(|n| n.rules.iter().map(|(pattern, _)| *pattern))
            .collect();
        let any_of = |chosen: &[&str]| {
            let alternatives: Vec<String> = chosen.iter().map(|p| format!("(?:{})", ascii_classes(p))).collect();
            (!alternatives.is_empty()).then(|| Regex::new(&alternatives.join("|")).expect("noise rules are valid"))
        };
        let (anchored, floating): (Vec<&str>, Vec<&str>) = patterns.iter().partition(|p| p.starts_with('^'));
        let (mut first_bytes, mut after_blanks) = ([false; 256], [false; 256]);
        for pattern in &anchored {
            let after = pattern.strip_prefix(r"^\s*").and_then(|rest| first_bytes_of(&format!("^{rest}")));
            match (after, first_bytes_of(pattern)) {
                (Some(bytes), _) if !bytes.iter().any(|b| is_blank(*b)) => {
                    bytes.iter().for_each(|b| after_blanks[usize::from(*b)] = true)
                }
                (_, Some(bytes)) => bytes.iter().for_each(|b| first_bytes[usize::from(*b)] = true),
                (_, None) => first_bytes = [true; 256],
            }
        }
        FormatNoise {
            first_bytes,
            after_blanks,
            prefixes: anchored.iter().map(|p| literal_prefixes(p)).collect(),
            whole_lines: anchored.iter().filter_map(|p| literal_line(p)).collect(),
            anchored: any_of(&anchored),
            floating_only_in_text: floating
                .iter()
                .all(|p| !p.contains(['^', '$']) && !p.contains("\\A") && !p.contains("\\z")),
            floating: any_of(&floating),
        }
    }

    /// Can a line of `text` be noise at all? When not, `is_noise` need not run the floating rules.
    fn floating_in(&self, text: &str) -> bool {
        self.floating.as_ref().is_some_and(|re| !self.floating_only_in_text || re.is_match(text))
    }

    /// `floating_in_text`: what `floating_in` said of the text the line is from.
    fn is_noise(&self, line: &str, floating_in_text: bool) -> bool {
        // `\s` is ASCII white space in the rules (`ascii_classes`).
        let end_trimmed = line.trim_end_matches(['\t', '\n', '\x0B', '\x0C', '\r', ' ']);
        if self.whole_lines.contains(&end_trimmed) {
            return true;
        }
        let bytes = line.as_bytes();
        let may_start = bytes.first().is_some_and(|b| self.first_bytes[usize::from(*b)])
            || bytes.iter().find(|b| !is_blank(**b)).is_some_and(|b| self.after_blanks[usize::from(*b)]);
        let anchored =
            may_start && self.may_match_prefix(line) && self.anchored.as_ref().is_some_and(|re| re.is_match(line));
        anchored || (floating_in_text && self.floating.as_ref().is_some_and(|re| re.is_match(line)))
    }
}

impl FormatNoise {
    /// Does the line start as one of the anchored rules needs (`prefixes`)?
    fn may_match_prefix(&self, line: &str) -> bool {
        let Some(rules) = &self.prefixes else { return true };
        let after_blanks = line.trim_start_matches(|c: char| c.is_ascii() && is_blank(c as u8));
        rules.iter().any(|(skip_blanks, prefixes)| {
            let start = if *skip_blanks { after_blanks } else { line };
            prefixes.iter().any(|prefix| start.starts_with(prefix.as_str()))
        })
    }
}

/// The line an anchored pattern of the form `^LITERAL\s*$` matches (white space at the end aside), when LITERAL
/// holds no character that means more than itself.
fn literal_line(pattern: &'static str) -> Option<&'static str> {
    let literal = pattern.strip_prefix('^')?.strip_suffix(r"\s*$")?;
    let plain = |c: char| c.is_ascii_alphanumeric() || "!#:;,-_ =/@%'\"<>".contains(c);
    (!literal.is_empty() && literal.chars().all(plain)).then_some(literal)
}

/// What a match of an anchored pattern must start with (`FormatNoise::prefixes`): whether it starts with `^\s*`
/// (the rest then follows the line's leading white space, which `\s*` takes whole when the rest starts with
/// another byte), and the literal characters after the anchor up to the first character that is not literal
/// or is optional, or the words of a leading group `(?:Mon|Tue)`. `None` for any other start; an empty prefix
/// (every line) when nothing literal follows. Reading less of the syntax only ever tests more lines.
fn literal_prefixes(pattern: &str) -> Option<(bool, Vec<String>)> {
    let rest = pattern.strip_prefix('^')?;
    if pattern.replace("(?:", "").contains("(?") || top_level_alternation(pattern) {
        return None;
    }
    let (skip_blanks, rest) = match rest.strip_prefix("\\s*") {
        Some(after) => (true, after),
        None => (false, rest),
    };
    let optional = |next: Option<char>| matches!(next, Some('?' | '*' | '{'));
    if let Some(group) = rest.strip_prefix("(?:") {
        let end = group.find(')')?;
        let alternatives = &group[..end];
        if !alternatives.chars().all(|c| c.is_ascii_alphanumeric() || c == '|')
            || optional(group[end + 1..].chars().next())
        {
            return None;
        }
        return Some((skip_blanks, alternatives.split('|').map(str::to_string).collect()));
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut prefix = String::new();
    for (idx, c) in chars.iter().enumerate() {
        let literal = c.is_ascii_alphanumeric() || matches!(c, '!' | '#' | ':' | '%' | ' ' | '-' | '_' | '=' | ',');
        if !literal || optional(chars.get(idx + 1).copied()) {
            break;
        }
        prefix.push(*c);
        if chars.get(idx + 1) == Some(&'+') {
            break;
        }
    }
    if skip_blanks && prefix.starts_with(' ') {
        return None; // `\s*` need not take every blank before it
    }
    Some((skip_blanks, vec![prefix]))
}

/// The bytes a match of an anchored pattern can start with, read from the start of the pattern: a literal
/// character, `\s`, or a group of literal alternatives `(?:Mon|Tue)`; an item made optional by `*` or `?` adds the
/// item after it. `None` (any byte: every line is tested) for a pattern that starts any other way: reading less of
/// the syntax only ever tests more lines, never fewer.
fn first_bytes_of(pattern: &str) -> Option<Vec<u8>> {
    let mut rest = pattern.strip_prefix('^')?;
    if pattern.replace("(?:", "").contains("(?") || top_level_alternation(pattern) {
        return None; // flags (`(?i)`) or an alternative that is not anchored
    }
    let mut out = Vec::new();
    loop {
        let after = if let Some(after) = rest.strip_prefix("\\s") {
            out.extend_from_slice(b"\t\n\x0B\x0C\r ");
            after
        } else if let Some(group) = rest.strip_prefix("(?:") {
            let end = group.find(')')?;
            let alternatives = &group[..end];
            if !alternatives.chars().all(|c| c.is_ascii_alphanumeric() || c == '|') {
                return None;
            }
            for alternative in alternatives.split('|') {
                out.push(*alternative.as_bytes().first()?);
            }
            &group[end + 1..]
        } else {
            let first = rest.chars().next()?;
            if !(first.is_ascii_alphanumeric() || matches!(first, '!' | '#' | ':' | '%' | ' ' | '-' | '_' | '=')) {
                return None;
            }
            out.push(first as u8);
            &rest[1..]
        };
        match after.chars().next() {
            // Optional: the match may start with what follows.
            Some('*' | '?') => rest = &after[1..],
            Some('{') => return None,
            _ => return Some(out),
        }
    }
}

/// White space as the rules' `\s` means it (ASCII: `ascii_classes`).
fn is_blank(byte: u8) -> bool {
    matches!(byte, b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | b' ')
}

/// Does the pattern have a `|` outside every group (`^a|b`: `b` is not anchored)?
fn top_level_alternation(pattern: &str) -> bool {
    let (mut depth, mut escaped, mut in_class) = (0usize, false, false);
    for c in pattern.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            _ if in_class => {}
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            '|' if depth == 0 => return true,
            _ => {}
        }
    }
    false
}

fn format_noise(format: Format) -> &'static FormatNoise {
    static BY_FORMAT: [OnceLock<FormatNoise>; ALL_FORMATS.len()] = [const { OnceLock::new() }; ALL_FORMATS.len()];
    let idx = ALL_FORMATS.iter().position(|f| *f == format).expect("every format is in ALL_FORMATS");
    BY_FORMAT[idx].get_or_init(|| FormatNoise::new(format))
}

fn transform_rules() -> &'static [(Vec<Format>, Regex, &'static str)] {
    static RULES: OnceLock<Vec<(Vec<Format>, Regex, &'static str)>> = OnceLock::new();
    RULES.get_or_init(|| {
        TRANSFORMS
            .iter()
            .map(|t| (t.formats.to_vec(), Regex::new(t.pattern).expect("transforms are valid"), t.replacement))
            .collect()
    })
}

/// Formats whose comment lines carry no configuration.
fn comment_prefix(format: Format) -> Option<&'static [&'static str]> {
    match format {
        Format::Sysctl
        | Format::KeyValue
        | Format::SshdConfig
        | Format::AuditRules
        | Format::OpenWrtUci
        | Format::IptablesSave
        | Format::Nftables
        | Format::MikroTik => Some(&["#"]),
        Format::WindowsInf => Some(&[";"]),
        Format::Step7Source => Some(&["//"]),
        _ => None,
    }
}

/// Collapses runs of whitespace to one space and trims.
fn collapse_ws(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_collapsed_ws(&mut out, s);
    out
}

/// Appends `s` with runs of whitespace collapsed to one space and the ends trimmed.
fn push_collapsed_ws(out: &mut String, s: &str) {
    let mut first = true;
    if s.is_ascii() {
        // The common case, run by run: below 0x80 `split_whitespace` splits on exactly these bytes.
        let is_space = |b: u8| matches!(b, b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | b' ');
        let bytes = s.as_bytes();
        let mut idx = 0;
        while idx < bytes.len() {
            while idx < bytes.len() && is_space(bytes[idx]) {
                idx += 1;
            }
            let start = idx;
            while idx < bytes.len() && !is_space(bytes[idx]) {
                idx += 1;
            }
            if start < idx {
                if !first {
                    out.push(' ');
                }
                first = false;
                out.push_str(&s[start..idx]);
            }
        }
        return;
    }
    for word in s.split_whitespace() {
        if !first {
            out.push(' ');
        }
        first = false;
        out.push_str(word);
    }
}

/// `key = value` with canonical spacing.
fn canonical_kv(line: &str) -> String {
    match line.split_once('=') {
        Some((k, v)) => format!("{} = {}", k.trim(), v.trim()),
        None => collapse_ws(line),
    }
}

/// Normalises line-oriented formats.
fn normalize_lines(format: Format, text: &str, key: &FingerprintKey) -> (Vec<NormLine>, usize) {
    // Lines are borrowed from the text as they are read; only RouterOS wrapping and private key blocks need lines
    // of their own, made first.
    let body = text.trim_start_matches('\u{feff}');
    let mut owned: Option<Vec<String>> = None;
    if format == Format::MikroTik {
        owned = Some(join_continuations(trimmed_lines(body).map(str::to_string).collect()));
    }
    if text.contains("-----BEGIN") {
        let lines = owned.take().unwrap_or_else(|| trimmed_lines(body).map(str::to_string).collect());
        owned = Some(secrets::mask_private_key_blocks(lines, key));
    }
    let n_lines = match &owned {
        Some(lines) => lines.len(),
        None => memchr::memchr_iter(b'\n', body.as_bytes()).count() + 1,
    };
    let raw: Box<dyn Iterator<Item = &str>> = match &owned {
        Some(lines) => Box::new(lines.iter().map(String::as_str)),
        None => Box::new(trimmed_lines(body)),
    };
    // Clones of the compiled rules: a regex keeps its search caches for the thread that used it first, and any
    // other thread (the other side of a comparison) took them from a locked pool line by line.
    let noise = format_noise(format).clone();
    let floating_noise = noise.floating_in(text);
    let transforms: Vec<(Regex, &str)> =
        transform_rules().iter().filter(|(f, _, _)| f.contains(&format)).map(|(_, r, s)| (r.clone(), *s)).collect();
    let comments = comment_prefix(format);
    // Which lines hold a trigger word of the secret rules, from one scan of the whole text (lines that are
    // still borrowed from it); the others are tested alone.
    let mut triggered = owned.is_none().then(|| secrets::TriggeredLines::new(text));
    let fingerprinter = secrets::Fingerprinter::new(key);
    let mut secrets_n = 0;
    let mut out: Vec<NormLine> = Vec::with_capacity(n_lines);
    let mut ctx = Context::new(format);
    let mut block_secrets = secrets::BlockSecrets::default();
    // XML compared as text (malformed, or too deep) keeps the secrets of its element context.
    let mut xml_secrets = raw_xml::looks_like_xml(text).then(raw_xml::RawXml::default);
    for (idx, line) in raw.enumerate() {
        let trimmed = line.trim();
        // The XML context follows every line, also those not shown.
        let mut xml_spans = Vec::new();
        if let Some(xml) = xml_secrets.as_mut() {
            xml.scan(line, &mut xml_spans);
        }
        if trimmed.is_empty() {
            continue;
        }
        if comments.is_some_and(|c| c.iter().any(|p| trimmed.starts_with(p))) {
            continue;
        }
        if noise.is_noise(line, floating_noise) {
            continue;
        }
        // With the whole-text scan a line it names holds a trigger word; without it, `secret_spans` tests.
        let (may_hold_secret, mut spans) = match triggered.as_mut().map(|t| t.holds(line)) {
            Some(true) => (true, secrets::secret_spans_of_triggered(line)),
            Some(false) => (false, Vec::new()),
            None => (true, secrets::secret_spans(line)),
        };
        block_secrets.scan_line(line, may_hold_secret, &mut spans);
        spans.append(&mut xml_spans);
        let (masked, n) = match spans.is_empty() {
            true => (Cow::Borrowed(line), 0),
            false => {
                let spans = secrets::merge_spans(spans);
                (Cow::Owned(secrets::apply_spans_with(line, &spans, &fingerprinter)), spans.len())
            }
        };
        secrets_n += n;
        let mut value = masked.into_owned();
        for (re, replacement) in &transforms {
            value = re.replace_all(&value, *replacement).into_owned();
        }
        let text = match format {
            Format::Sysctl | Format::KeyValue | Format::WindowsInf => canonical_kv(&value),
            Format::SshdConfig => {
                let v = collapse_ws(&value);
                match v.split_once(' ') {
                    Some((k, rest)) => format!("{} {rest}", k.to_ascii_lowercase()),
                    None => v.to_ascii_lowercase(),
                }
            }
            Format::AuditRules | Format::Step7Source | Format::OpenWrtUci | Format::Nftables => collapse_ws(&value),
            Format::JunosCurly | Format::FortiOs | Format::MikroTik => value.trim().to_string(),
            _ => value,
        };
        // Contexts follow the canonical text: re-spacing and keyword case, which are noise, move no location.
        let context = ctx.update(&text, idx + 1);
        out.push(NormLine { text, context });
    }
    unordered(format, &mut out);
    (out, secrets_n)
}

/// The lines of a text without their trailing white space: `text.lines().map(str::trim_end)`, with the line
/// breaks found and the ends trimmed byte by byte (ASCII) rather than through the general `char` searchers,
/// which cost more than the rest of the line's work for short configuration lines.
fn trimmed_lines(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= bytes.len() {
            return None;
        }
        // The memchr crate's vectorised search: a byte loop cost ~5 % of a large diff, and `str::find` (the
        // standard library's word-at-a-time memchr behind a UTF-8 char searcher) another 7 %.
        let end = memchr::memchr(b'\n', &bytes[pos..]).map_or(bytes.len(), |i| pos + i);
        let line = &text[pos..end];
        pos = end + 1;
        Some(trim_line_end(line))
    })
}

/// `line.trim_end()`, quick for ASCII ends.
fn trim_line_end(line: &str) -> &str {
    let bytes = line.as_bytes();
    let mut end = bytes.len();
    while end > 0 && is_blank(bytes[end - 1]) {
        end -= 1;
    }
    if end > 0 && bytes[end - 1] >= 0x80 {
        // Non-ASCII white space (U+00A0, U+3000…) is white space to `trim_end`.
        return line[..end].trim_end();
    }
    &line[..end]
}

/// RouterOS `/export` wraps long lines with a trailing `\`; the wrap point carries no meaning.
fn join_continuations(lines: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    let mut pending: Option<String> = None;
    for line in lines {
        let (body, continues) = match line.strip_suffix('\\') {
            Some(b) => (b.to_string(), true),
            None => (line, false),
        };
        let joined = match pending.take() {
            Some(mut p) => {
                p.push_str(body.trim_start());
                p
            }
            None => body,
        };
        if continues {
            pending = Some(joined);
        } else {
            out.push(joined);
        }
    }
    out.extend(pending);
    out
}

/// Sorts where order has no meaning: sysctl and key=value files entirely, Windows templates and OpenWrt UCI
/// options within their section. The sort is stable, so repeated keys (last one wins, UCI `list`s) keep their
/// relative order.
fn unordered(format: Format, lines: &mut [NormLine]) {
    let key_of = |l: &NormLine| -> String {
        match format {
            Format::OpenWrtUci => {
                let mut parts = l.text.split_whitespace();
                let kind = parts.next().unwrap_or("");
                if kind == "config" {
                    String::new()
                } else {
                    parts.next().unwrap_or("").to_string()
                }
            }
            _ => l.text.split('=').next().unwrap_or("").trim().to_string(),
        }
    };
    match format {
        Format::Sysctl | Format::KeyValue => lines.sort_by_key(key_of),
        Format::WindowsInf | Format::OpenWrtUci => {
            // Sort within runs that share a context (a section), keeping the section header first.
            let mut start = 0;
            while start < lines.len() {
                let mut end = start + 1;
                while end < lines.len() && lines[end].context == lines[start].context {
                    end += 1;
                }
                let body_start =
                    if format == Format::OpenWrtUci || lines[start].text.starts_with('[') { start + 1 } else { start };
                if body_start < end {
                    lines[body_start..end].sort_by_key(key_of);
                }
                start = end;
            }
        }
        _ => {}
    }
}

/// Tracks the hierarchical context of line-oriented formats.
struct Context {
    format: Format,
    stack: Vec<(usize, String)>,
    /// Names taken off the stack, kept for their buffers: most lines of an indented configuration enter the
    /// stack (a line may open a block) and leave it at the next line, which would cost an allocation each.
    spare: Vec<String>,
    /// For each level of the stack, the stack down to it joined with ` > ` once asked for: the lines of a block
    /// share one context.
    joined: Vec<Option<Arc<str>>>,
}

/// Where a line belongs: a context shared with other lines of its block, or one of its own.
enum Location {
    Shared(Arc<str>),
    Own(String),
}

impl Context {
    fn new(format: Format) -> Context {
        Context { format, stack: Vec::new(), spare: Vec::new(), joined: Vec::new() }
    }

    /// Feeds one (masked) line; returns its context.
    fn update(&mut self, line: &str, line_no: usize) -> Arc<str> {
        match self.locate(line, line_no) {
            Location::Shared(shared) => shared,
            Location::Own(own) => Arc::from(own),
        }
    }

    /// The current block: the stack joined with ` > `, computed once per block.
    fn block(&mut self) -> Arc<str> {
        if let Some(Some(joined)) = self.joined.last() {
            return joined.clone();
        }
        let joined: Arc<str> = Arc::from(self.stack.iter().map(|(_, s)| &**s).collect::<Vec<_>>().join(" > "));
        if let Some(last) = self.joined.last_mut() {
            *last = Some(joined.clone());
        }
        joined
    }

    fn push(&mut self, (level, name): (usize, impl AsRef<str>)) {
        let mut entry = self.spare.pop().unwrap_or_default();
        entry.clear();
        entry.push_str(name.as_ref());
        self.stack.push((level, entry));
        self.joined.push(None);
    }

    fn pop(&mut self) {
        if let Some((_, name)) = self.stack.pop() {
            self.spare.push(name);
        }
        self.joined.pop();
    }

    fn truncate(&mut self, depth: usize) {
        while self.stack.len() > depth {
            self.pop();
        }
    }

    fn set(&mut self, entry: (usize, impl AsRef<str>)) {
        self.truncate(0);
        self.push(entry);
    }

    fn locate(&mut self, line: &str, line_no: usize) -> Location {
        let trimmed = line.trim();
        let indent = line.len() - line.trim_start().len();
        match self.format {
            Format::CiscoIos
            | Format::CiscoNxos
            | Format::CiscoIosXr
            | Format::CiscoAsa
            | Format::NetworkCli
            | Format::SshdConfig => {
                while self.stack.last().is_some_and(|(i, _)| *i >= indent) {
                    self.pop();
                }
                if self.format == Format::SshdConfig {
                    // `Match` blocks scope the lines after them.
                    if trimmed.to_ascii_lowercase().starts_with("match ") {
                        self.set((0, trimmed));
                        return Location::Own(trimmed.to_string());
                    }
                    return match self.stack.is_empty() {
                        true => Location::Own("global".into()),
                        false => Location::Shared(self.block()),
                    };
                }
                // A top-level line is its own context; an indented one belongs to the lines above it.
                if self.stack.is_empty() {
                    // One allocation: the line is its own context, its entry on the stack, and the block of the
                    // lines below it (a stack of one joins to itself).
                    let own: Arc<str> = Arc::from(trimmed);
                    self.push((indent, trimmed));
                    if let Some(joined) = self.joined.last_mut() {
                        *joined = Some(own.clone());
                    }
                    return Location::Shared(own);
                }
                let located = Location::Shared(self.block());
                self.push((indent, trimmed));
                located
            }
            Format::JunosCurly | Format::Nftables => {
                let located = if self.stack.is_empty() {
                    Location::Own(trimmed.trim_end_matches(['{', ';']).trim().to_string())
                } else {
                    Location::Shared(self.block())
                };
                if trimmed.ends_with('{') {
                    self.push((0, trimmed.trim_end_matches('{').trim()));
                } else if trimmed.starts_with('}') {
                    self.pop();
                }
                located
            }
            Format::JunosSet => {
                let words: Vec<&str> = trimmed.split_whitespace().collect();
                let keep = words.len().saturating_sub(1).clamp(1, 6);
                Location::Own(words[..keep.min(words.len())].join(" "))
            }
            Format::FortiOs => {
                let located = if self.stack.is_empty() {
                    Location::Own(trimmed.to_string())
                } else {
                    Location::Shared(self.block())
                };
                if trimmed.starts_with("config ") {
                    self.push((0, trimmed));
                    return Location::Own(trimmed.to_string());
                } else if trimmed.starts_with("edit ") {
                    self.push((1, trimmed));
                    return Location::Shared(self.block());
                } else if trimmed == "next" {
                    if self.stack.last().is_some_and(|(k, _)| *k == 1) {
                        self.pop();
                    }
                } else if trimmed == "end" {
                    if self.stack.last().is_some_and(|(k, _)| *k == 1) {
                        self.pop();
                    }
                    self.pop();
                }
                located
            }
            Format::MikroTik => {
                if trimmed.starts_with('/') {
                    let path: Vec<&str> = trimmed
                        .split_whitespace()
                        .take_while(|w| !w.contains('=') && *w != "add" && *w != "set")
                        .collect();
                    self.set((0, path.join(" ")));
                }
                Location::Shared(self.block())
            }
            Format::OpenWrtUci => {
                if trimmed.starts_with("config ") {
                    self.set((0, trimmed));
                }
                Location::Shared(self.block())
            }
            Format::WindowsInf => {
                if trimmed.starts_with('[') {
                    self.set((0, trimmed));
                }
                Location::Shared(self.block())
            }
            Format::IptablesSave => {
                if trimmed.starts_with('*') {
                    self.set((0, trimmed));
                    return Location::Shared(self.block());
                }
                let table = self.stack.first().map(|(_, s)| &**s).unwrap_or_default();
                let chain = trimmed
                    .strip_prefix("-A ")
                    .or_else(|| trimmed.strip_prefix(':'))
                    .and_then(|r| r.split_whitespace().next());
                match chain {
                    Some(c) => Location::Own(format!("{table} {c}")),
                    None => Location::Own(table.to_string()),
                }
            }
            Format::Step7Source => {
                let upper = trimmed.to_ascii_uppercase();
                if ["ORGANIZATION_BLOCK", "FUNCTION_BLOCK", "FUNCTION ", "DATA_BLOCK", "TYPE "]
                    .iter()
                    .any(|p| upper.starts_with(p))
                {
                    self.set((0, collapse_ws(trimmed)));
                } else if upper.starts_with("NETWORK") {
                    self.truncate(1);
                    self.push((1, "NETWORK"));
                } else if upper.starts_with("TITLE") && self.stack.last().is_some_and(|(k, _)| *k == 1) {
                    self.pop();
                    self.push((2, format!("NETWORK {}", collapse_ws(trimmed))));
                }
                if self.stack.is_empty() {
                    Location::Own(format!("line {line_no}"))
                } else {
                    Location::Shared(self.block())
                }
            }
            // Sorted formats: the key is the location (line numbers would point into the unsorted file).
            Format::Sysctl | Format::KeyValue => {
                Location::Own(trimmed.split(['=', ':']).next().unwrap_or(trimmed).trim().to_string())
            }
            _ => Location::Own(format!("line {line_no}")),
        }
    }
}

#[cfg(test)]
mod tests;
