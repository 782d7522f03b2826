//! Secret masking: passwords, hashes, keys, SNMP communities, pre-shared keys, `ENC` blobs and private keys
//! are replaced by `<secret:FP>` in everything Datum shows or hashes.
//!
//! Masking is built in layers, each of which applies to every format and every output path, so that a secret
//! is caught by what it *is* or where it *stands*, not by a list of the cases seen so far:
//!
//! 1. **Value shapes** (`RULES`): password hashes of every crypt family, Huawei `%^%#…%^%#` ciphers, LDAP
//!    `{SSHA}` values, passwords in URL userinfo (`scheme://user:PASSWORD@host`), connection-string passwords,
//!    in-line PEM private keys, JWTs and well-known API token prefixes, wherever they stand.
//! 2. **Key → value** (`keyword_spans`, `is_secret_word`): a value attached to a name that says secret
//!    (`password`, `pass`, `pwd`, `pin`, `secret`, `key`, `psk`, `community`, `token`, `otp`, `seed`, … as the
//!    whole name, its ending, or its last camelCase/snake/kebab word before qualifiers such as `Value`, `Hash`,
//!    `Pem`, `Encrypted`) in `k v`, `k=v`, `k: v`, `"k": v`, `k := v` syntaxes; the XML and JSON normalisers
//!    apply the same names to elements, attributes, `Name`/`key` attributes that name a value (`.NET <add
//!    key="DbPassword" value=…>`, L5X tags, SimaticML members, PLCopen variables) and JSON keys.
//! 3. **Positional grammars** (`grammar_spans`): commands whose secret has no keyword before it
//!    (`snmp-server host … COMMUNITY`, net-snmp `com2sec`/`trap2sink`/`createUser`, Junos `trap-group`, Aruba
//!    `mgmt-user`, Comware/Huawei `usm-user`, strongSwan `: EAP "…"`).
//! 4. **Context** (`BlockSecrets`, `raw_xml`): values that only their block gives away — FortiOS and RouterOS
//!    SNMP community names, YAML values on the lines below a secret key (`|`/`>` blocks, `- item` lists), and in
//!    raw XML the text and value attributes inside a secret element even when they stand on lines of their own.
//!
//! `FP` is a keyed fingerprint (HMAC-SHA256 with a per-site key, 8 hex digits): two captures with the same
//! secret show the same fingerprint, a changed secret shows a different one, and the value itself is never
//! printed. Values that are re-encrypted with a fresh salt on every export (FortiGate `ENC`) cannot be compared
//! and become `<secret:salted>`, so they are never reported as changed.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use regex::Regex;
use sha2::Sha256;

/// The key of the keyed fingerprints: the plant's ([`FingerprintKey::of_site`]), the hub's per site
/// ([`FingerprintKey::of_hub_for_site`]), or a fresh one (`datum-edge diff` of two files).
#[derive(Clone)]
pub struct FingerprintKey(pub [u8; 32]);

impl std::fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FingerprintKey(..)")
    }
}

impl FingerprintKey {
    /// The plant's key: derived from its site key (the Ed25519 secret), stable for the site and unknown
    /// outside it.
    pub fn of_site(site_key: &[u8; 32]) -> FingerprintKey {
        FingerprintKey::derive(&[b"datum secret fingerprints v1", site_key])
    }

    /// The hub's key for one site's configurations (the hub does not hold the plant's key): derived from the
    /// hub's own key and the site id, so one secret used at two sites shows two unrelated fingerprints.
    pub fn of_hub_for_site(hub_key: &[u8; 32], site_id: &str) -> FingerprintKey {
        FingerprintKey::derive(&[b"datum hub secret fingerprints v1", hub_key, site_id.as_bytes()])
    }

    fn derive(parts: &[&[u8]]) -> FingerprintKey {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for part in parts {
            h.update(part);
        }
        FingerprintKey(h.finalize().into())
    }

    pub fn fingerprint(&self, value: &str) -> String {
        Fingerprinter::new(self).fingerprint(value)
    }

    pub fn mask(&self, value: &str, salted: bool) -> String {
        Fingerprinter::new(self).mask(value, salted)
    }
}

/// A fingerprint key made ready for many values: HMAC's keyed inner and outer states are computed once and copied
/// for each value, instead of hashing the key again for every secret (half the hashing of a normalisation).
/// The fingerprints of the values seen are kept: a configuration repeats its secrets (one SNMP community, one
/// key on every interface), and a lookup costs a fraction of the two SHA-256 compressions of a fingerprint.
pub(crate) struct Fingerprinter {
    keyed: Hmac<Sha256>,
    /// Value → its fingerprint (8 hex digits). Not shared between threads: each normalisation has its own.
    seen: RefCell<HashMap<Box<str>, [u8; 8]>>,
}

impl Fingerprinter {
    pub(crate) fn new(key: &FingerprintKey) -> Fingerprinter {
        Fingerprinter {
            keyed: <Hmac<Sha256> as Mac>::new_from_slice(&key.0).expect("HMAC takes keys of any length"),
            seen: RefCell::new(HashMap::new()),
        }
    }

    fn fingerprint(&self, value: &str) -> String {
        let digits = self.fingerprint_digits(value);
        std::str::from_utf8(&digits).expect("hex digits are ASCII").to_string()
    }

    /// The fingerprint's 8 hex digits, from the values seen or computed (and kept).
    fn fingerprint_digits(&self, value: &str) -> [u8; 8] {
        if let Some(digits) = self.seen.borrow().get(value) {
            return *digits;
        }
        let mut mac = self.keyed.clone();
        mac.update(value.as_bytes());
        let out = mac.finalize().into_bytes();
        let mut digits = [0u8; 8];
        hex::encode_to_slice(&out[..4], &mut digits).expect("4 bytes are 8 hex digits");
        self.seen.borrow_mut().insert(value.into(), digits);
        digits
    }

    fn mask(&self, value: &str, salted: bool) -> String {
        let mut out = String::new();
        self.push_mask(&mut out, value, salted);
        out
    }

    /// Appends the mask of a value: `<secret:FP>`, or `SALTED`.
    fn push_mask(&self, out: &mut String, value: &str, salted: bool) {
        if salted {
            out.push_str(SALTED);
        } else {
            let digits = self.fingerprint_digits(value);
            out.push_str("<secret:");
            out.push_str(std::str::from_utf8(&digits).expect("hex digits are ASCII"));
            out.push('>');
        }
    }
}

/// What a salted (re-encrypted on every export) secret becomes.
pub const SALTED: &str = "<secret:salted>";

/// One masking rule: a pattern whose group 1 is the secret; `salted` when group 2 (if present) marks a
/// re-salted value.
struct Rule {
    /// What the rule masks (documentation; shown by tests).
    #[allow(dead_code)]
    what: &'static str,
    pattern: &'static str,
    /// Every match holds one of these words (compared ignoring ASCII case): a line that holds none is not
    /// searched with the rule (`rules_that_may_match`).
    needs: &'static [&'static str],
    /// The whole match is re-salted on every export (FortiOS `ENC`).
    salted: bool,
}

/// Value-shape rules (layer 1): secrets recognisable by their form, whatever name stands before them.
/// Everything introduced by a keyword is handled by `keyword_spans`.
const RULES: &[Rule] = &[
    Rule {
        what: "crypt(3) hashes: MD5, bcrypt, SHA-256/512, yescrypt, scrypt ($7$), Cisco type 8/9 and Junos $9$, \
               H3C/Comware $c$ and $h$, Huawei $1a$…$1d$, Apache $apr1$, passlib $pbkdf2…$",
        pattern: r#"(\$(?:1|2[abxy]?|5|6|7|8|9|14|y|gy|sha1|md5|apr1|c|h|1a|1b|1c|1d|pbkdf2(?:-sha1|-sha256|-sha512)?|scrypt|bcrypt(?:-sha256)?)\$[^\s:"',;<]+)"#,
        needs: &["$"],
        salted: false,
    },
    Rule {
        what: "Argon2 PHC strings (their parameters hold commas)",
        pattern: r#"(\$argon2(?:id|i|d)\$[^\s"'<]+)"#,
        needs: &["$argon2"],
        salted: false,
    },
    Rule {
        what: "Django and Werkzeug PBKDF2 hashes (pbkdf2_sha256$…, pbkdf2:sha256:…)",
        pattern: r#"(?i)\b(pbkdf2[_:-]sha(?:1|256|512)[$:][^\s"'<,;]+)"#,
        needs: &["pbkdf2"],
        salted: false,
    },
    Rule {
        what: "LDAP/Dovecot scheme-prefixed hashes ({SSHA}…)",
        pattern: r#"(?i)(\{(?:SSHA|SHA|SSHA256|SSHA512|SHA256|SHA512|SMD5|MD5|CRYPT|BLF-CRYPT|SHA256-CRYPT|SHA512-CRYPT|PBKDF2|ARGON2I|ARGON2ID)\}[^\s"'<]+)"#,
        needs: &["{"],
        salted: false,
    },
    Rule { what: "Huawei cipher text %^%#…%^%#", pattern: r"(%\^%#.+?%\^%#)", needs: &["%^%#"], salted: false },
    Rule { what: "Huawei cipher text %$%$…%$%$", pattern: r"(%\$%\$.+?%\$%\$)", needs: &["%$%$"], salted: false },
    Rule { what: "Huawei cipher text %@%@…%@%@", pattern: r"(%@%@.+?%@%@)", needs: &["%@%@"], salted: false },
    Rule {
        what: "password in URL userinfo (scheme://user:PASSWORD@host)",
        pattern: r#"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@"'<>]*:([^@/\s"'<>]+)@"#,
        needs: &["://"],
        salted: false,
    },
    Rule {
        what: "connection-string passwords (Password=…; Pwd=…; AccountKey=…)",
        pattern: r#"(?i)(?:^|[;\s"'])(?:password|pwd|passwd|accountkey|sharedaccesskey)\s*=\s*([^;"'<\s][^;"'<]*)"#,
        needs: &["="],
        salted: false,
    },
    Rule {
        what: "PEM private keys inside one value (JSON strings, escaped newlines)",
        pattern: r"(?s)-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(.+?)(?:-----END|\z)",
        needs: &["-----BEGIN"],
        salted: false,
    },
    Rule {
        what: "JSON Web Tokens",
        pattern: r"\b(eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*)",
        needs: &["eyJ"],
        salted: false,
    },
    Rule {
        what: "API tokens with well-known prefixes (GitHub, GitLab, Slack, Stripe)",
        pattern: r"\b((?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}|sk_live_[A-Za-z0-9]{10,})",
        needs: &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "xox", "sk_live_"],
        salted: false,
    },
];

/// Words that introduce a secret value wherever they appear as a whole word (`enable secret 5 …`,
/// `md5 key …`, `snmp-server user … auth sha … priv aes …`, `wpa-psk ascii 0 …`).
const KEYWORDS: &[&str] = &[
    "password",
    "passwd",
    "pass",
    "pwd",
    "secret",
    "passphrase",
    "key",
    "key-string",
    "psk",
    "community",
    "token",
    "bearer",
    "credential",
    "credentials",
    "md5",
    "auth",
    "priv",
    "ascii-text",
    "hexadecimal",
    "authentication-key",
    "pre-shared-key",
    "preshared-key",
    "encrypted-password",
    "plain-text-password-value",
    "simple-password",
    "wpa-psk",
    "set-key",
    "cpassword",
    "localizedkey",
    "2c",
    "v2c",
    "x-api-key",
    "apikey",
    "api-key",
    "api_key",
    "tls",
    "prv",
    "bindpw",
];

/// Endings of setting names whose value is secret (`users.1.password`, `sae_password`, `ipsecpsk`,
/// `rocommunity`, `PasswordHash`, `SourceKey`, `ValidCommunities`).
const SUFFIXES: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "secrets",
    "key",
    "psk",
    "community",
    "communities",
    "token",
    "bindpw",
    "hash",
    "credential",
    "credentials",
    "pwd",
];

/// Setting names that end like a secret but hold none (their values are worth seeing): SSH host and public keys,
/// BGP community handling.
const NOT_SECRET: &[&str] = &["hostkey", "pubkey", "send-community", "bgp-community", "ext-community"];

/// Names whose value is secret although no word of them says so (pfSense/OPNsense: a base64 SSH key file, a
/// package's stored XML settings).
const SECRET_NAMES: &[&str] = &["sshkeyfile", "xmldata"];

/// Words of a name (camelCase, snake_case, kebab-case, dotted) that make the name a secret when they are its
/// last word, or the last before `QUALIFIERS` (`adminPasswordEncrypted`, `privateKeyPem`, `secretValue`).
const SECRET_TOKENS: &[&str] = &[
    "password",
    "passwords",
    "passwd",
    "pass",
    "passphrase",
    "passcode",
    "passwort",
    "kennwort",
    "pwd",
    "pw",
    "pin",
    "secret",
    "secrets",
    "key",
    "keys",
    "psk",
    "community",
    "communities",
    "token",
    "tokens",
    "credential",
    "credentials",
    "otp",
    "totp",
    "seed",
    "apikey",
    "privkey",
    "prv",
    "bindpw",
    "cpassword",
];

/// Words after a secret word that still name the secret itself (`PasswordHash`, `keyPem`, `secretValue`).
const QUALIFIERS: &[&str] = &[
    "value",
    "values",
    "hash",
    "hashed",
    "enc",
    "encoded",
    "pem",
    "der",
    "b64",
    "base64",
    "hex",
    "data",
    "plain",
    "plaintext",
    "text",
    "clear",
    "cleartext",
    "str",
    "string",
    "raw",
    "blob",
    "cipher",
    "ciphertext",
    "material",
    "bytes",
];

/// Words before `key`/`keys` that make it a public or structural key, not a secret (`hostKey`, `public_key`,
/// `primaryKey`, `hotKey`).
const PUBLIC_KEY_OWNERS: &[&str] =
    &["host", "pub", "public", "authorized", "known", "primary", "foreign", "sort", "hot", "shortcut"];

/// Is this word (a setting, element, attribute or JSON key name) one whose value is secret?
pub fn is_secret_word(word: &str) -> bool {
    // Case-insensitive without allocating: this runs for every XML attribute and element name.
    let ends_with = |suffix: &str| {
        word.len() > suffix.len()
            && word.as_bytes()[word.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
    };
    if NOT_SECRET.iter().any(|n| word.eq_ignore_ascii_case(n)) || names_a_public_key(word) {
        return false;
    }
    KEYWORDS.iter().any(|k| word.eq_ignore_ascii_case(k))
        || SUFFIXES.iter().any(|s| ends_with(s))
        || SECRET_NAMES.iter().any(|n| word.eq_ignore_ascii_case(n))
        || words_say_secret(word)
}

/// `publicKey`, `host_key`, `primaryKey`: a key that is no secret (checked before the ending `key` says secret).
fn names_a_public_key(name: &str) -> bool {
    let mut words = NameWords::new(name);
    words.next().is_some_and(|w| w.eq_ignore_ascii_case("key") || w.eq_ignore_ascii_case("keys"))
        && words.next().is_some_and(|owner| PUBLIC_KEY_OWNERS.iter().any(|o| owner.eq_ignore_ascii_case(o)))
}

/// The word-by-word test of a name: its last word (before at most two qualifiers) is a secret word, `…PinCode`,
/// or anything `…Encrypted`.
fn words_say_secret(name: &str) -> bool {
    let is = |word: &str, list: &[&str]| list.iter().any(|w| word.eq_ignore_ascii_case(w));
    let mut words = NameWords::new(name);
    let Some(mut word) = words.next() else { return false };
    let mut qualifiers = 0;
    loop {
        if is(word, SECRET_TOKENS) {
            if word.eq_ignore_ascii_case("key") || word.eq_ignore_ascii_case("keys") {
                return !words.next().is_some_and(|owner| is(owner, PUBLIC_KEY_OWNERS));
            }
            return true;
        }
        if qualifiers == 0 && word.eq_ignore_ascii_case("code") {
            return words.next().is_some_and(|w| w.eq_ignore_ascii_case("pin"));
        }
        if qualifiers == 0 && word.eq_ignore_ascii_case("encrypted") {
            return words.next().is_some();
        }
        if qualifiers < 2 && is(word, QUALIFIERS) {
            qualifiers += 1;
            match words.next() {
                Some(next) => word = next,
                None => return false,
            }
            continue;
        }
        return false;
    }
}

/// The words of a name from its end: split at non-alphanumerics and camelCase humps (`sPasswordHash` →
/// `Hash`, `Password`, `s`; `XMLData` → `Data`, `XML`). Allocation-free.
struct NameWords<'a> {
    name: &'a str,
    end: usize,
}

impl<'a> NameWords<'a> {
    fn new(name: &'a str) -> NameWords<'a> {
        NameWords { name, end: name.len() }
    }
}

impl<'a> Iterator for NameWords<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let b = self.name.as_bytes();
        let mut end = self.end;
        while end > 0 && !b[end - 1].is_ascii_alphanumeric() {
            end -= 1;
        }
        if end == 0 {
            self.end = 0;
            return None;
        }
        // A hump starts before an upper-case letter that follows a lower-case one or a digit, and before the last
        // capital of an acronym followed by a lower-case letter.
        let hump = |i: usize| {
            let (p, c) = (b[i - 1], b[i]);
            c.is_ascii_uppercase()
                && (p.is_ascii_lowercase()
                    || p.is_ascii_digit()
                    || (p.is_ascii_uppercase() && b.get(i + 1).is_some_and(u8::is_ascii_lowercase)))
        };
        let mut start = end - 1;
        while start > 0 && b[start - 1].is_ascii_alphanumeric() && !hump(start) {
            start -= 1;
        }
        self.end = start;
        Some(&self.name[start..end])
    }
}

/// A byte of a setting's name as `keyword_spans` cuts them (`snmp-server`, `pre-shared-key`, `a.b_c`).
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// A secret value inside a line: its byte range, and whether it is re-salted on every export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub salted: bool,
}

/// Finds the value after every secret keyword of a line: to the closing quote for a quoted value, to the closing
/// tag inside XML, otherwise to the end of the line (keeping a trailing `;`, `{` or `## SECRET-DATA`). Masking too
/// much is the safe side: a word of context lost is better than a password shown.
fn keyword_spans(line: &str, spans: &mut Vec<Span>) {
    let mut pos = 0;
    let bytes = line.as_bytes();
    // Where the trigger words stand in the line, from one pass: a word holds one when one lies inside it. Every
    // secret word holds a trigger word (`every_secret_word_holds_a_trigger`), and so does every mask (`<secret:`,
    // `<private key:`): the words of the line are visited from the trigger words that stand in them, and the
    // words that hold none (most of them) are passed over without being read.
    let mut triggers = trigger_occurrences(line);
    triggers.sort_unstable();
    for &(found, _) in &triggers {
        if found < pos || !is_word_byte(bytes[found]) {
            continue; // behind the words and values already judged, or not inside a word
        }
        // The word around the trigger word, as a scan of the line from `pos` would cut it.
        let mut start = found;
        while start > pos && is_word_byte(bytes[start - 1]) {
            start -= 1;
        }
        let end = bytes[found..].iter().position(|b| !is_word_byte(*b)).map_or(line.len(), |i| found + i);
        pos = end;
        if start > 0 && bytes[start - 1] == b'<' && is_mask(&line[start - 1..]) {
            // A mask (normalised text fed again) is not a keyword: go on after it.
            pos = line[start..].find('>').map(|i| start + i + 1).unwrap_or(line.len());
            continue;
        }
        let word = line[start..end].trim_matches(['.', '-']);
        let word_start = start + (end - start - line[start..end].trim_start_matches(['.', '-']).len());
        let word_end = word_start + word.len();
        let holds = triggers.iter().any(|&(s, e)| s >= word_start && e <= word_end);
        if !holds || !is_secret_word(word) {
            continue;
        }
        let in_tag = start > 0 && bytes[start - 1] == b'<';
        if start > 1 && bytes[start - 2] == b'<' && bytes[start - 1] == b'/' {
            continue; // a closing tag holds no value
        }
        if is_quoted_value(line, start, end) {
            continue; // `Name="Password" …`: the word is a value here, not the name of one
        }
        // Skip the separators between the keyword and its value.
        let mut value_start = end;
        // A quoted key (`"password": "…"`, `'pass' = …`): its closing quote is not the value's opening one.
        if value_start < line.len() && matches!(bytes[value_start], b'"' | b'\'') {
            let after = line[value_start + 1..].trim_start();
            if after.starts_with(':') || after.starts_with('=') {
                value_start += 1;
            }
        }
        while value_start < line.len() && matches!(bytes[value_start], b' ' | b'\t' | b'=' | b':' | b'>') {
            value_start += 1;
        }
        let rest = &line[value_start..];
        if is_mask(rest) {
            // Already masked (normalised text fed again): go on after the mask, not inside it.
            pos = rest.find('>').map(|i| value_start + i + 1).unwrap_or(line.len());
            continue;
        }
        if rest.is_empty() || rest.starts_with("</") || is_yaml_block_indicator(rest) {
            continue;
        }
        if names_no_value(word, &line[..start], rest) {
            continue;
        }
        let value_end = if in_tag {
            rest.find("</").map(|i| value_start + i).unwrap_or(line.len())
        } else if let Some(q) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') {
            closing_quote(rest, q).map(|i| value_start + i + 1).unwrap_or(line.len())
        } else {
            let mut e = line.len();
            for marker in [" ## SECRET-DATA", "</"] {
                if let Some(i) = rest.find(marker) {
                    e = e.min(value_start + i);
                }
            }
            while e > value_start && matches!(bytes[e - 1], b';' | b'{' | b' ' | b'\t') {
                e -= 1;
            }
            e
        };
        if value_end <= value_start {
            continue;
        }
        let value = &line[value_start..value_end];
        let salted = value.starts_with("ENC ") || value.starts_with("enc ");
        spans.push(Span { start: value_start, end: value_end, salted });
        pos = value_end;
    }
}

/// Words after a password keyword that make it a policy setting, not a value (NX-OS `passphrase lifetime 99999
/// warntime 14`, `userpassphrase min-length 8`, IOS `security passwords min-length 8`).
const POLICY_WORDS: &[&str] =
    &["lifetime", "warntime", "gracetime", "min-length", "max-length", "length", "strength-check", "expiry"];

/// Is the secret word at `before.len()` one that, here, names no secret value? A password policy setting, a BGP
/// community in a route-map (`match community NAME`, `set community 65000:100`) or a Junos policy community
/// (`community NAME members …`).
fn names_no_value(word: &str, before: &str, rest: &str) -> bool {
    let mut value_words = rest.split_whitespace();
    let first = value_words.next().unwrap_or("");
    if POLICY_WORDS.iter().any(|p| first.eq_ignore_ascii_case(p)) {
        return true;
    }
    if word.eq_ignore_ascii_case("community") {
        let previous = before.split_whitespace().next_back().unwrap_or("");
        if matches!(previous, "match" | "set") && before.split_whitespace().count() == 1 {
            return true;
        }
        if value_words.next() == Some("members") {
            return true;
        }
    }
    false
}

/// Is the word at `start..end` a quoted value (`Name="Password" Type=…`) rather than a quoted name
/// (`"password": …`, `'pass' = …`)?
fn is_quoted_value(line: &str, start: usize, end: usize) -> bool {
    let bytes = line.as_bytes();
    let (Some(&open), Some(&close)) = (start.checked_sub(1).and_then(|i| bytes.get(i)), bytes.get(end)) else {
        return false;
    };
    if !matches!(open, b'"' | b'\'') || open != close {
        return false;
    }
    let after = line[end + 1..].trim_start();
    line[..start - 1].trim_end().ends_with('=') && !after.starts_with(':') && !after.starts_with('=')
}

/// A YAML block scalar indicator (`|`, `>-`, `|2`): the value follows on the lines below (see `BlockSecrets`).
fn is_yaml_block_indicator(rest: &str) -> bool {
    let mut chars = rest.trim_end().chars();
    matches!(chars.next(), Some('|' | '>')) && chars.all(|c| matches!(c, '-' | '+' | '0'..='9'))
}

/// Does the text start with a mask (`<secret:…>`, `<private key:…>`)?
pub(super) fn is_mask(text: &str) -> bool {
    text.starts_with("<secret:") || text.starts_with("<private key:")
}

/// Index of the quote closing a value that starts with quote `q`, honouring backslash escapes.
fn closing_quote(value: &str, q: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in value.char_indices().skip(1) {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == q {
            return Some(i);
        }
    }
    None
}

/// Rule `idx` alone (for its capture group), compiled the first time a line matches it: a run that meets only
/// a few of the rules does not pay for compiling them all.
fn compiled(idx: usize) -> &'static Regex {
    static RULES_RE: [OnceLock<Regex>; RULES.len()] = [const { OnceLock::new() }; RULES.len()];
    RULES_RE[idx]
        .get_or_init(|| Regex::new(&super::ascii_classes(RULES[idx].pattern)).expect("secret rules are valid regexes"))
}

/// Words at least one of which every rule needs: a cheap first test that lets most lines (PLC code, plain
/// settings) skip the regular expressions. Kept in step with `RULES` by `every_rule_has_a_trigger`.
const TRIGGERS: &[&str] = &[
    "secret",
    "pass",
    "key",
    "psk",
    "pwd",
    "communit",
    "token",
    "md5",
    "hash",
    "prv",
    "bindpw",
    "bearer",
    "credential",
    "auth",
    "priv",
    "tls",
    "2c",
    "ascii-text",
    "hexadecimal",
    "$1$",
    "$2",
    "$5$",
    "$6$",
    "$9$",
    "$y$",
    "$sha1$",
    "$md5$",
    // Layer 1: value shapes.
    "$7$",
    "$8$",
    "$14$",
    "$c$",
    "$h$",
    "$1a$",
    "$1b$",
    "$1c$",
    "$1d$",
    "$gy$",
    "$apr1$",
    "$argon2",
    "$scrypt$",
    "$bcrypt",
    "pbkdf2",
    "{ssha",
    "{sha",
    "{smd5",
    "{md5",
    "{crypt",
    "{blf-crypt",
    "{argon2",
    "%^%#",
    "%$%$",
    "%@%@",
    "://",
    "eyj",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xox",
    "sk_live_",
    // Layer 2: secret words of names.
    "pin",
    "pw",
    "otp",
    "seed",
    "kennwort",
    "encrypted",
    "sshkeyfile",
    "xmldata",
    // Layer 3: positional grammars.
    "snmp-server",
    "com2sec",
    "sink",
    "createuser",
    "trap-group",
    "mgmt-user",
    "usm-user",
    ": eap",
    ": xauth",
    ": ntlm",
    ": rsa",
    ": ecdsa",
    ": p12",
    ": pkcs",
];

/// Does the text hold a trigger word? Steps the trigger automaton byte by byte: most texts asked are words and
/// short lines, where the set-up of a search call cost more than the search.
fn holds_trigger(text: &str) -> bool {
    dfa_finds(trigger_dfa(), text.as_bytes())
}

/// Every place a trigger word stands in the text, overlapping ones included, as byte ranges.
fn trigger_occurrences(text: &str) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    for_each_word(trigger_dfa(), text.as_bytes(), |word, end| found.push((end - TRIGGERS[word].len(), end)));
    found
}

/// Calls `found(word index, end)` for every word of `dfa` (unanchored, standard match semantics, no prefilter)
/// that ends in `bytes`, overlapping ones included: a state holds every word that ends where it is reached.
fn for_each_word(dfa: &aho_corasick::dfa::DFA, bytes: &[u8], mut found: impl FnMut(usize, usize)) {
    use aho_corasick::automaton::Automaton;
    let mut sid = dfa.start_state(aho_corasick::Anchored::No).expect("an unanchored DFA starts anywhere");
    for (at, byte) in bytes.iter().enumerate() {
        sid = dfa.next_state(aho_corasick::Anchored::No, sid, *byte);
        if dfa.is_special(sid) && dfa.is_match(sid) {
            for nth in 0..dfa.match_len(sid) {
                found(dfa.match_pattern(sid, nth).as_usize(), at + 1);
            }
        }
    }
}

/// Does `dfa` (unanchored, without prefilter) find a word in `bytes`? Stops at the first.
fn dfa_finds(dfa: &aho_corasick::dfa::DFA, bytes: &[u8]) -> bool {
    use aho_corasick::automaton::Automaton;
    let mut sid = dfa.start_state(aho_corasick::Anchored::No).expect("an unanchored DFA starts anywhere");
    bytes.iter().any(|byte| {
        sid = dfa.next_state(aho_corasick::Anchored::No, sid, *byte);
        dfa.is_special(sid) && dfa.is_match(sid)
    })
}

/// Can this text hold a secret at all? `false` means `mask_line` would leave every line of it untouched, so a
/// block of text can be tested once instead of line by line.
pub fn may_hold_secret(text: &str) -> bool {
    trigger_regex().is_match(text)
}

/// The trigger words as one case-insensitive regular expression, for long texts: its lazy DFA scans faster than
/// the Aho-Corasick automaton, which wins on short lines.
fn trigger_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        let alternatives: Vec<String> = TRIGGERS.iter().map(|t| regex::escape(t)).collect();
        Regex::new(&format!("(?i-u){}", alternatives.join("|"))).expect("trigger words are valid")
    })
}

/// The trigger words as one Aho-Corasick DFA, stepped byte by byte by `TriggeredLines` (no search call per
/// line: the start-up cost of a regex search per triggered line was a third of the scan).
fn trigger_dfa() -> &'static aho_corasick::dfa::DFA {
    static DFA: OnceLock<aho_corasick::dfa::DFA> = OnceLock::new();
    DFA.get_or_init(|| {
        aho_corasick::dfa::DFA::builder()
            .ascii_case_insensitive(true)
            .prefilter(false)
            .build(TRIGGERS)
            .expect("trigger words are valid")
    })
}

/// Which lines of a text can hold a secret (`may_hold_secret`), from one scan of the whole text for the trigger
/// words instead of one search per line: on a configuration of short lines the per-line start-up cost of the
/// search was most of it. Asked line by line, in order. The trigger words hold no line break, so a word found
/// lies inside one line, and as no trigger word starts or ends with white space, inside its trimmed text.
///
/// The scan records where the first trigger word of each line that holds one *ends*, and goes on from the next
/// line: one automaton step per byte up to there, and a vectorised jump over the rest of the line.
pub(crate) struct TriggeredLines<'t> {
    text: &'t str,
    /// The end of the first trigger word of each line that holds one, in order.
    ends: Vec<usize>,
    /// The first of `ends` not yet behind the lines asked.
    next: usize,
}

impl<'t> TriggeredLines<'t> {
    pub(crate) fn new(text: &'t str) -> TriggeredLines<'t> {
        use aho_corasick::automaton::Automaton;
        let bytes = text.as_bytes();
        // The text is cut at line breaks into `LANES` stretches scanned side by side, one byte of each per step: a
        // DFA step waits for the one before it, and independent stretches keep the core busy meanwhile.
        let mut cuts = [0; LANES + 1];
        for lane in 1..LANES {
            let from = (bytes.len() * lane / LANES).max(cuts[lane - 1]);
            cuts[lane] = memchr::memchr(b'\n', &bytes[from..]).map_or(bytes.len(), |i| from + i + 1);
        }
        cuts[LANES] = bytes.len();
        let dfa = trigger_dfa();
        let start = dfa.start_state(aho_corasick::Anchored::No).expect("an unanchored DFA starts anywhere");
        let mut lanes: [Lane; LANES] =
            std::array::from_fn(|lane| Lane { sid: start, at: cuts[lane], end: cuts[lane + 1], ends: Vec::new() });
        let mut ends = Vec::new();
        while lanes.iter().all(|lane| lane.at < lane.end) {
            for lane in &mut lanes {
                lane.step(dfa, start, bytes);
            }
        }
        for lane in &mut lanes {
            while lane.at < lane.end {
                lane.step(dfa, start, bytes);
            }
            ends.append(&mut lane.ends);
        }
        TriggeredLines { text, ends, next: 0 }
    }

    /// Can `line`, a slice of the text after the lines asked before, hold a secret? A line that is not a slice of
    /// the text is never ruled out.
    pub(crate) fn holds(&mut self, line: &str) -> bool {
        let base = self.text.as_ptr() as usize;
        let at = line.as_ptr() as usize;
        if at < base || at + line.len() > base + self.text.len() {
            return true;
        }
        let (start, end) = (at - base, at - base + line.len());
        // Words that end at or before the line's start lie in earlier lines.
        while self.ends.get(self.next).is_some_and(|word_end| *word_end <= start) {
            self.next += 1;
        }
        self.ends.get(self.next).is_some_and(|word_end| *word_end > start && *word_end <= end)
    }
}

/// How many stretches of a text `TriggeredLines` scans side by side.
const LANES: usize = 4;

/// One stretch of the text under the trigger scan: its automaton state, where it is, and the ends of the words
/// found in it.
struct Lane {
    sid: aho_corasick::automaton::StateID,
    at: usize,
    end: usize,
    ends: Vec<usize>,
}

impl Lane {
    /// One byte further (the lane is not at its end). `start`: the automaton's start state.
    #[inline(always)]
    fn step(&mut self, dfa: &aho_corasick::dfa::DFA, start: aho_corasick::automaton::StateID, bytes: &[u8]) {
        use aho_corasick::automaton::Automaton;
        self.sid = dfa.next_state(aho_corasick::Anchored::No, self.sid, bytes[self.at]);
        self.at += 1;
        if dfa.is_special(self.sid) && dfa.is_match(self.sid) {
            self.ends.push(self.at);
            // The rest of this line need not be scanned: on to the next one, from the start state.
            self.at = memchr::memchr(b'\n', &bytes[self.at..self.end]).map_or(self.end, |i| self.at + i + 1);
            self.sid = start;
        }
    }
}

/// Every secret value in one line, sorted and without overlaps (overlapping finds are merged: the safe side).
pub fn secret_spans(line: &str) -> Vec<Span> {
    if !holds_trigger(line) {
        return Vec::new();
    }
    secret_spans_of_triggered(line)
}

/// `secret_spans` of a line already known to hold a trigger word (`TriggeredLines` said so): the per-line
/// trigger test is not made again.
pub(crate) fn secret_spans_of_triggered(line: &str) -> Vec<Span> {
    let mut spans = Vec::new();
    keyword_spans(line, &mut spans);
    grammar_spans(line, &mut spans);
    shape_spans_into(line, &mut spans);
    merge_spans(spans)
}

/// Only the value shapes (layer 1) in a text: for values whose name was already judged, such as XML attribute
/// values (`connectionString="…;Password=…"`, `url="ftp://u:PASS@h"`).
pub fn shape_spans(text: &str) -> Vec<Span> {
    let mut spans = Vec::new();
    if holds_trigger(text) {
        shape_spans_into(text, &mut spans);
    }
    merge_spans(spans)
}

/// Masks the value shapes (layer 1) in a text; returns it and the number of secrets masked.
pub fn mask_shapes<'a>(text: &'a str, key: &FingerprintKey) -> (Cow<'a, str>, usize) {
    let spans = shape_spans(text);
    if spans.is_empty() {
        return (Cow::Borrowed(text), 0);
    }
    (Cow::Owned(apply_spans(text, &spans, key)), spans.len())
}

fn shape_spans_into(line: &str, spans: &mut Vec<Span>) {
    let rules = rules_that_may_match(line);
    if rules == 0 {
        return;
    }
    for (idx, rule) in RULES.iter().enumerate() {
        if rules & (1 << idx) == 0 {
            continue;
        }
        for caps in compiled(idx).captures_iter(line) {
            let Some(group) = caps.get(1) else { continue };
            if is_mask(group.as_str()) || group.is_empty() {
                continue;
            }
            spans.push(Span { start: group.start(), end: group.end(), salted: rule.salted });
        }
    }
}

/// Which rules of `RULES` can match in this line (bit `idx` for rule `idx`): those whose words (`Rule::needs`) the
/// line holds, from one pass of an automaton over all their words. Most lines a trigger word let through (`aaa
/// authentication …`, `username … privilege 15`) hold none, and a rule is only compiled when a line first holds
/// one of its words (most files need few of the rules).
fn rules_that_may_match(line: &str) -> u32 {
    static WORDS: OnceLock<(aho_corasick::dfa::DFA, Vec<u32>)> = OnceLock::new();
    const _: () = assert!(RULES.len() <= 32, "rules_that_may_match answers in a u32");
    let (dfa, rule_of) = WORDS.get_or_init(|| {
        let (words, rule_of): (Vec<&str>, Vec<u32>) = RULES
            .iter()
            .enumerate()
            .flat_map(|(idx, rule)| rule.needs.iter().map(move |word| (*word, 1u32 << idx)))
            .unzip();
        let dfa = aho_corasick::dfa::DFA::builder()
            .ascii_case_insensitive(true)
            .prefilter(false)
            .build(words)
            .expect("the words of the rules are valid");
        (dfa, rule_of)
    });
    let mut rules = 0;
    for_each_word(dfa, line.as_bytes(), |word, _| rules |= rule_of[word]);
    rules
}

/// Can a value shape (`RULES`) match in this line? Kept in step with `RULES` by
/// `every_shape_passes_the_shape_test`.
#[cfg(test)]
fn may_hold_shape(line: &str) -> bool {
    rules_that_may_match(line) != 0
}

/// Words of a line with their byte ranges; a double-quoted word with spaces is one word.
fn line_words(line: &str) -> Vec<(usize, usize)> {
    let bytes = line.as_bytes();
    let mut words = Vec::new();
    let mut idx = 0;
    while idx < bytes.len() {
        if bytes[idx].is_ascii_whitespace() {
            idx += 1;
            continue;
        }
        let start = idx;
        if bytes[idx] == b'"' {
            idx = closing_quote(&line[idx..], '"').map(|i| idx + i + 1).unwrap_or(bytes.len());
        } else {
            while idx < bytes.len() && !bytes[idx].is_ascii_whitespace() {
                idx += 1;
            }
        }
        words.push((start, idx));
    }
    words
}

/// Positional grammars (layer 3): secrets that stand at a place in a command with no secret word before them.
fn grammar_spans(line: &str, spans: &mut Vec<Span>) {
    static COMMANDS: OnceLock<aho_corasick::dfa::DFA> = OnceLock::new();
    let commands = COMMANDS.get_or_init(|| {
        aho_corasick::dfa::DFA::builder()
            .ascii_case_insensitive(true)
            .prefilter(false)
            .build(["snmp-server", "com2sec", "sink", "createuser", "trap-group", "mgmt-user", "usm-user", ": "])
            .expect("command words are valid")
    });
    if !dfa_finds(commands, line.as_bytes()) {
        return;
    }
    let words = line_words(line);
    let text = |i: usize| words.get(i).map(|&(s, e)| &line[s..e]).unwrap_or("");
    let eq = |i: usize, w: &str| text(i).eq_ignore_ascii_case(w);
    let mut push = |i: usize, to_end: bool| {
        if let Some(&(start, end)) = words.get(i) {
            let end = if to_end { words.last().map_or(end, |w| w.1) } else { end };
            let value = &line[start..end];
            let value_end = start + value.trim_end_matches([';', '{']).trim_end().len();
            if value_end > start && !is_mask(value) {
                spans.push(Span { start, end: value_end, salted: false });
            }
        }
    };
    for i in 0..words.len() {
        // `snmp-server host [IFACE] HOST [vrf V] [traps|informs] [version 1|2c] [encrypted|clear] COMMUNITY …`
        if eq(i, "snmp-server") && eq(i + 1, "host") {
            let mut j = i + 2;
            if eq(j, "domain") || looks_like_address(text(j + 1)) && !looks_like_address(text(j)) {
                j += 1; // an ASA interface name or `domain` before the host
            }
            j += 1; // the host
            loop {
                let w = text(j).to_ascii_lowercase();
                match w.as_str() {
                    "vrf" | "use-vrf" | "udp-port" | "source-interface" => j += 2,
                    "traps" | "trap" | "informs" | "inform" | "poll" | "encrypted" | "clear" | "0" | "7" | "8" => {
                        j += 1
                    }
                    "version" => {
                        if text(j + 1).starts_with('3') {
                            break; // SNMPv3 names a user, not a community
                        }
                        j += 2;
                    }
                    "community" | "" => break, // `community X` is masked by its keyword
                    _ => {
                        push(j, false);
                        break;
                    }
                }
            }
        }
        if i == 0 {
            // net-snmp `com2sec [-Cn CTX] NAME SOURCE COMMUNITY`
            if eq(0, "com2sec") || eq(0, "com2sec6") {
                let mut j = 1;
                while text(j).starts_with('-') {
                    j += 2;
                }
                push(j + 2, false);
            }
            // net-snmp `trapsink|trap2sink|informsink HOST [COMMUNITY [PORT]]`
            if eq(0, "trapsink") || eq(0, "trap2sink") || eq(0, "informsink") {
                push(2, false);
            }
            // net-snmp `createUser [-e ENGINEID] USER (MD5|SHA…) AUTHPASS [DES|AES…] [PRIVPASS]`
            if eq(0, "createUser") {
                if let Some(p) = (1..words.len()).find(|&j| {
                    let w = text(j).to_ascii_uppercase();
                    w == "MD5" || w.starts_with("SHA")
                }) {
                    push(p + 1, true);
                }
            }
        }
        // Junos `trap-group NAME`: the name is the community the traps carry.
        if eq(i, "trap-group") {
            push(i + 1, false);
        }
        // Aruba `mgmt-user NAME [ROLE] PASSWORD`
        if eq(i, "mgmt-user") && i == 0 && !eq(1, "ssh-pubkey") {
            push(2, true);
        }
        // Comware/Huawei `snmp-agent usm-user v3 NAME GROUP [cipher|simple] authentication-mode ALG KEY privacy-mode …`
        if eq(i, "usm-user") {
            if let Some(p) = (i + 1..words.len()).find(|&j| eq(j, "authentication-mode") || eq(j, "auth")) {
                push(p + 1, true);
            }
        }
        // strongSwan ipsec.secrets `[IDS] : EAP|XAUTH|NTLM|PSK "secret"`, `: RSA|ECDSA|P12 FILE "passphrase"`
        if text(i) == ":" {
            let kind = text(i + 1).to_ascii_uppercase();
            match kind.as_str() {
                "PSK" | "EAP" | "XAUTH" | "NTLM" => push(i + 2, true),
                "RSA" | "ECDSA" | "P12" | "PKCS8" | "PKCS12" | "PIN" | "BLISS" => push(i + 3, true),
                _ => {}
            }
        }
    }
}

/// An IPv4 or IPv6 address (a host, not an interface name).
fn looks_like_address(word: &str) -> bool {
    !word.is_empty()
        && word.chars().all(|c| c.is_ascii_hexdigit() || c == '.' || c == ':')
        && (word.contains('.') || word.contains(':'))
}

/// Sorts spans and merges overlapping ones.
pub fn merge_spans(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by_key(|s| (s.start, s.end));
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for span in spans {
        match merged.last_mut() {
            Some(last) if span.start < last.end => {
                last.end = last.end.max(span.end);
                last.salted &= span.salted;
            }
            _ => merged.push(span),
        }
    }
    merged
}

/// The line with each span replaced by its mask.
pub fn apply_spans(line: &str, spans: &[Span], key: &FingerprintKey) -> String {
    apply_spans_with(line, spans, &Fingerprinter::new(key))
}

/// `apply_spans` with a key made ready once for many lines.
pub(crate) fn apply_spans_with(line: &str, spans: &[Span], fingerprinter: &Fingerprinter) -> String {
    let mut out = String::with_capacity(line.len() + 8 * spans.len());
    let mut last = 0;
    for span in spans {
        out.push_str(&line[last..span.start]);
        fingerprinter.push_mask(&mut out, line[span.start..span.end].trim_matches(['"', '\'']), span.salted);
        last = span.end;
    }
    out.push_str(&line[last..]);
    out
}

/// The mask of one value; quotes around it are not part of the secret.
fn mask_value(value: &str, salted: bool, key: &FingerprintKey) -> String {
    key.mask(value.trim_matches(['"', '\'']), salted)
}

/// Masks every secret in one line. Returns the masked line and how many secrets it held.
pub fn mask_line<'a>(line: &'a str, key: &FingerprintKey) -> (Cow<'a, str>, usize) {
    let spans = secret_spans(line);
    if spans.is_empty() {
        return (Cow::Borrowed(line), 0);
    }
    (Cow::Owned(apply_spans(line, &spans, key)), spans.len())
}

/// Secrets that only the enclosing block gives away: the name of a FortiOS `config system snmp community`
/// entry (`set name "public"`) and of a RouterOS `/snmp community` entry (`add name=public`,
/// `set [ find default=yes ] name=xyz`) is the community itself. Fed every (logical) line in order.
#[derive(Debug, Default)]
pub struct BlockSecrets {
    /// FortiOS `config` blocks open around the current line, innermost last.
    forti_blocks: Vec<String>,
    /// The RouterOS menu of the current line (`/snmp community`).
    routeros_menu: String,
    /// The indentation of a YAML key that says secret and whose value follows on the lines below it.
    yaml_secret_indent: Option<usize>,
}

const FORTI_SNMP_COMMUNITY: &str = "system snmp community";
const ROUTEROS_SNMP_COMMUNITY: &str = "/snmp community";

impl BlockSecrets {
    /// Follows the blocks through one line and adds the spans of the values that are secret there.
    pub fn scan(&mut self, line: &str, spans: &mut Vec<Span>) {
        self.scan_line(line, true, spans);
    }

    /// `scan`, told whether the line holds a trigger word (`may_hold_secret`: false only when it certainly holds
    /// none). Most lines of a configuration hold none, open no block and stand in no block of interest: they are
    /// passed over without the YAML key test, which needs a secret word and so a trigger word
    /// (`every_secret_word_holds_a_trigger`), and without the block tests, which need the line to start with
    /// `config `, `end` or `/`.
    pub(crate) fn scan_line(&mut self, line: &str, may_hold_secret: bool, spans: &mut Vec<Span>) {
        if !may_hold_secret && self.yaml_secret_indent.is_none() && !self.in_community_block() {
            // The first byte other than ASCII white space; a non-ASCII one may be white space to `trim`.
            let first = line.bytes().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r'));
            if first.is_none_or(|b| b < 0x80 && !matches!(b, b'c' | b'e' | b'/')) {
                return;
            }
        }
        let trimmed = line.trim();
        if self.yaml_value_below(line, spans) {
            return;
        }
        if let Some(block) = trimmed.strip_prefix("config ") {
            self.forti_blocks.push(block.split_whitespace().collect::<Vec<_>>().join(" "));
            return;
        }
        if trimmed == "end" {
            self.forti_blocks.pop();
            return;
        }
        if self.forti_blocks.iter().any(|b| b == FORTI_SNMP_COMMUNITY) {
            if let Some(rest) = trimmed.strip_prefix("set name") {
                let value = rest.trim_start();
                if rest.len() > value.len() && !value.is_empty() && !is_mask(value) {
                    let start = line.len() - line.trim_start().len() + "set name".len() + (rest.len() - value.len());
                    spans.push(Span { start, end: start + value.len(), salted: false });
                }
            }
        }
        if trimmed.starts_with('/') {
            let words: Vec<&str> = trimmed
                .split_whitespace()
                .take_while(|w| !w.contains('=') && !w.starts_with('[') && !is_routeros_command(w))
                .collect();
            self.routeros_menu = words.join(" ");
        }
        if self.routeros_menu == ROUTEROS_SNMP_COMMUNITY {
            routeros_parameter_spans(line, "name", spans);
        }
    }
}

impl BlockSecrets {
    /// Is the current line inside a block whose entries' names are communities (FortiOS or RouterOS SNMP)?
    fn in_community_block(&self) -> bool {
        self.routeros_menu == ROUTEROS_SNMP_COMMUNITY || self.forti_blocks.iter().any(|b| b == FORTI_SNMP_COMMUNITY)
    }

    /// YAML values that follow a secret key on the lines below it: a plain value on the next line, a `|`/`>`
    /// block scalar, or a `- item` list. Returns true when the line is such a value (and masked whole).
    fn yaml_value_below(&mut self, line: &str, spans: &mut Vec<Span>) -> bool {
        let trimmed = line.trim();
        let indent = line.len() - line.trim_start().len();
        if let Some(key_indent) = self.yaml_secret_indent {
            if trimmed.is_empty() {
                return true;
            }
            if indent > key_indent || (indent == key_indent && (trimmed.starts_with("- ") || trimmed == "-")) {
                // A list item keeps its `- `; the item is the secret.
                let item = trimmed.strip_prefix('-').map(str::trim_start).unwrap_or(trimmed);
                let start = indent + (trimmed.len() - item.len());
                if !item.is_empty() && !is_mask(item) {
                    spans.push(Span { start, end: indent + trimmed.len(), salted: false });
                }
                return true;
            }
            self.yaml_secret_indent = None;
        }
        if let Some(key_offset) = yaml_secret_key_alone(trimmed) {
            self.yaml_secret_indent = Some(indent + key_offset);
        }
        false
    }
}

/// `password:`, `- api_token: |`, `"secrets": >-`: a YAML key that says secret with its value on the lines
/// below. Returns the key's offset in the trimmed line (after a `- ` list marker).
fn yaml_secret_key_alone(trimmed: &str) -> Option<usize> {
    let (offset, item) = match trimmed.strip_prefix("- ") {
        Some(rest) => (trimmed.len() - rest.trim_start().len(), rest.trim_start()),
        None => (0, trimmed),
    };
    let (key, value) = item.split_once(':')?;
    // The key first: most lines with a colon (`: Saved`, IPv6 addresses, `key : value` tables) fail on it.
    let key = key.trim_end().trim_matches(['"', '\'']);
    if key.is_empty() || key.contains(char::is_whitespace) {
        return None;
    }
    let value = value.split(" #").next().unwrap_or("").trim();
    if !(value.is_empty() || is_yaml_block_indicator(value)) || !is_secret_word(key) {
        return None;
    }
    Some(offset)
}

fn is_routeros_command(word: &str) -> bool {
    matches!(word, "add" | "set" | "remove" | "print" | "enable" | "disable" | "edit" | "find" | "comment" | "export")
}

/// Values of every `name=value` parameter (also inside `[ find name=… ]`), quoted or not.
fn routeros_parameter_spans(line: &str, parameter: &str, spans: &mut Vec<Span>) {
    let bytes = line.as_bytes();
    let needle = format!("{parameter}=");
    let mut from = 0;
    while let Some(found) = line[from..].find(&needle).map(|i| from + i) {
        let value_start = found + needle.len();
        from = value_start;
        // A whole parameter name only (`name=`, not `user-name=`).
        if found > 0 && !matches!(bytes[found - 1], b' ' | b'\t' | b'[') {
            continue;
        }
        let rest = &line[value_start..];
        let value_end = if rest.starts_with('"') {
            closing_quote(rest, '"').map(|i| value_start + i + 1).unwrap_or(line.len())
        } else {
            rest.find([' ', '\t', ']']).map(|i| value_start + i).unwrap_or(line.len())
        };
        if value_end > value_start && !is_mask(rest) {
            spans.push(Span { start: value_start, end: value_end, salted: false });
            from = value_end;
        }
    }
}

/// Masks raw text line by line for display (`diff --raw`): private key blocks, every secret, the secrets that
/// depend on the block, and values that RouterOS wrapped onto the next line with a trailing `\` (the wrapped
/// lines are masked as one logical line and shown as they were wrapped).
pub fn mask_raw_lines(lines: Vec<String>, key: &FingerprintKey) -> Vec<String> {
    let lines = mask_private_key_blocks(lines, key);
    let mut out = Vec::with_capacity(lines.len());
    if lines.iter().find(|l| !l.trim().is_empty()).is_some_and(|l| super::raw_xml::looks_like_xml(l)) {
        // XML: each line with the secrets of its element context (layer 4) besides its own.
        let mut xml = super::raw_xml::RawXml::default();
        for line in lines {
            let mut spans = secret_spans(&line);
            xml.scan(&line, &mut spans);
            out.push(if spans.is_empty() { line } else { apply_spans(&line, &merge_spans(spans), key) });
        }
        return out;
    }
    let mut blocks = BlockSecrets::default();
    let mut group: Vec<String> = Vec::new();
    for line in lines {
        let continues = line.ends_with('\\');
        group.push(line);
        if !continues {
            mask_wrapped(std::mem::take(&mut group), &mut blocks, key, &mut out);
        }
    }
    if !group.is_empty() {
        mask_wrapped(group, &mut blocks, key, &mut out);
    }
    out
}

/// Masks one logical line made of physical lines joined by trailing `\` (RouterOS wrapping: the next line's
/// indentation is not part of the value).
fn mask_wrapped(mut pieces: Vec<String>, blocks: &mut BlockSecrets, key: &FingerprintKey, out: &mut Vec<String>) {
    if pieces.len() == 1 {
        let line = pieces.pop().expect("one piece");
        let mut spans = secret_spans(&line);
        blocks.scan(&line, &mut spans);
        out.push(if spans.is_empty() { line } else { apply_spans(&line, &merge_spans(spans), key) });
        return;
    }
    // Where each piece's body lies in the joined line: (indentation kept, body start, body end).
    let mut joined = String::new();
    let mut layout: Vec<(usize, usize, usize)> = Vec::with_capacity(pieces.len());
    for (idx, piece) in pieces.iter().enumerate() {
        let indent = if idx == 0 { 0 } else { piece.len() - piece.trim_start().len() };
        let body = &piece[indent..];
        let body = body.strip_suffix('\\').unwrap_or(body);
        let start = joined.len();
        joined.push_str(body);
        layout.push((indent, start, joined.len()));
    }
    let mut spans = secret_spans(&joined);
    blocks.scan(&joined, &mut spans);
    let spans = merge_spans(spans);
    if spans.is_empty() {
        out.extend(pieces);
        return;
    }
    for (piece, (indent, start, end)) in pieces.iter().zip(layout) {
        let mut shown = piece[..indent].to_string();
        let mut pos = start;
        for span in spans.iter().filter(|s| s.start < end && s.end > start) {
            if span.start > pos {
                shown.push_str(&joined[pos..span.start]);
            }
            // A value wrapped over several lines shows its mask on each of them.
            shown.push_str(&mask_value(&joined[span.start..span.end], span.salted, key));
            pos = span.end.min(end);
        }
        if pos < end {
            shown.push_str(&joined[pos..end]);
        }
        if piece.ends_with('\\') {
            shown.push('\\');
        }
        out.push(shown);
    }
}

/// Attributes that name an element (`Name="Password"`, `key="DbPassword"`): when the name says secret, the
/// element's value attributes and text are secret.
pub const NAMING_ATTRIBUTES: &[&str] = &["Name", "name", "key", "Key", "ID", "Id", "id", "member"];

/// Attributes that hold an element's value (.NET `value`, SimaticML `StartValue`, PLCopen `simpleValue value`,
/// L5X `Value`).
pub const VALUE_ATTRIBUTES: &[&str] = &[
    "value",
    "Value",
    "StartValue",
    "startValue",
    "InitialValue",
    "initialValue",
    "DefaultValue",
    "defaultValue",
    "Default",
    "default",
];

/// Is this element or key name one whose value is secret (XML, JSON)?
pub fn is_secret_name(name: &str) -> bool {
    is_secret_word(name)
}

/// Masks `-----BEGIN … PRIVATE KEY-----` blocks in a list of lines: the block becomes one line.
pub fn mask_private_key_blocks(lines: Vec<String>, key: &FingerprintKey) -> Vec<String> {
    let mut out = Vec::with_capacity(lines.len());
    let mut block: Option<(String, String)> = None;
    for line in lines {
        if let Some((prefix, body)) = block.as_mut() {
            if line.contains("-----END") {
                let tail = line.split("-----END").next().unwrap_or("");
                body.push_str(tail);
                out.push(format!("{prefix}<private key:{}>", key.fingerprint(body)));
                block = None;
            } else {
                body.push_str(line.trim());
            }
            continue;
        }
        if let Some(idx) = line.find("-----BEGIN") {
            if line[idx..].to_ascii_uppercase().contains("KEY") {
                let prefix = line[..idx].to_string();
                let after = line[idx..].split("-----").nth(2).unwrap_or("").to_string();
                if line[idx..].contains("-----END") {
                    out.push(format!("{prefix}<private key:{}>", key.fingerprint(&line[idx..])));
                } else {
                    block = Some((prefix, after));
                }
                continue;
            }
        }
        out.push(line);
    }
    if let Some((prefix, body)) = block {
        // An unterminated key block is still a secret.
        out.push(format!("{prefix}<private key:{}>", key.fingerprint(&body)));
    }
    out
}

/// Replaces fingerprints by a placeholder, to tell "only a secret changed" from other changes.
pub fn without_fingerprints(line: &str) -> String {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"<(secret|private key):[0-9a-f]{8}>").expect("valid"));
    re.replace_all(line, "<$1>").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The derivations are pinned: the plant's fingerprints must not change under a site that already has
    /// records; the hub's differ per site, and from the plant's.
    #[test]
    fn fingerprint_keys_are_derived_once_and_per_site_at_the_hub() {
        use sha2::Digest;
        let key = [7u8; 32];
        let mut h = sha2::Sha256::new();
        h.update(b"datum secret fingerprints v1");
        h.update(key);
        let plant: [u8; 32] = h.finalize().into();
        assert_eq!(FingerprintKey::of_site(&key).0, plant);
        let north = FingerprintKey::of_hub_for_site(&key, "0123456789abcdef");
        let south = FingerprintKey::of_hub_for_site(&key, "fedcba9876543210");
        assert_ne!(north.fingerprint("s3cret"), south.fingerprint("s3cret"));
        assert_ne!(north.fingerprint("s3cret"), FingerprintKey::of_site(&key).fingerprint("s3cret"));
        assert_eq!(
            north.fingerprint("s3cret"),
            FingerprintKey::of_hub_for_site(&key, "0123456789abcdef").fingerprint("s3cret")
        );
    }
    use proptest::prelude::*;

    /// Every line of `text` (as `normalize_lines` reads them: trimmed at the end), asked of `TriggeredLines` in
    /// order, gets the answer of the per-line test.
    fn scan_agrees_line_by_line(text: &str) -> usize {
        let mut triggered = TriggeredLines::new(text);
        let mut found = 0;
        for line in text.split('\n') {
            let line = line.trim_end();
            let expected = holds_trigger(line);
            assert_eq!(triggered.holds(line), expected, "{line:?}");
            found += usize::from(expected);
        }
        found
    }

    #[test]
    fn the_whole_text_scan_finds_the_lines_each_line_test_finds() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
        let (mut files, mut found) = (0, 0);
        for sub in ["cisco-ios", "cisco-asa", "juniper", "fortigate", "linux-hardening", "versions"] {
            let Ok(entries) = std::fs::read_dir(dir.join(sub)) else { continue };
            for path in entries.flatten().map(|e| e.path()) {
                let Ok(text) = std::fs::read_to_string(&path) else { continue };
                found += scan_agrees_line_by_line(&text);
                files += 1;
            }
        }
        assert!(files > 20 && found > 100, "{files} files, {found} lines with trigger words");
        // Stretches cut anywhere: short texts, words across the cut points, no final line break.
        for text in ["", "\n", "pass", "x\npass", "a\nb\nc\nsecret", "key\nkey\nkey\nkey\nkey", "\n\n\n\nauth\n"] {
            scan_agrees_line_by_line(text);
        }
    }

    proptest! {
        #[test]
        fn a_stretch_holds_a_trigger_word_when_an_occurrence_lies_inside_it(
            words in prop::collection::vec(prop::sample::select(vec!["pAss", "key", "a", "-", ".", "$1$", "2", "c", "priv", " "]), 0..10),
        ) {
            let text = words.concat();
            let found = trigger_occurrences(&text);
            for a in 0..text.len() {
                for b in a + 1..=text.len() {
                    let inside = found.iter().any(|&(s, e)| s >= a && e <= b);
                    prop_assert_eq!(inside, holds_trigger(&text[a..b]), "{:?}", &text[a..b]);
                }
            }
        }

        #[test]
        fn the_whole_text_scan_agrees_on_any_text(
            lines in prop::collection::vec(
                prop::collection::vec(prop::sample::select(vec!["pass", "KEY", "a", " ", "$1$", "x", "Au", "th", ":", " eap", "\r"]), 0..8),
                0..40,
            ),
        ) {
            let text: String = lines.iter().map(|words| words.concat()).collect::<Vec<_>>().join("\n");
            scan_agrees_line_by_line(&text);
        }
    }

    fn key() -> FingerprintKey {
        FingerprintKey([7; 32])
    }

    fn check(line: &str, expect: &str) {
        let (masked, _) = mask_line(line, &key());
        let shown = without_fingerprints(&masked);
        assert_eq!(shown, expect, "masking {line:?}");
    }

    #[test]
    fn vendor_secrets_are_masked() {
        check("enable secret 5 $1$mERr$hx5rVt7rPNoS4wqbXKX7m0", "enable secret <secret>");
        check(" password 7 0822455D0A16", " password <secret>");
        check("username admin privilege 15 secret 9 $9$abc$def", "username admin privilege 15 secret <secret>");
        check("snmp-server community s3cr3t RO", "snmp-server community <secret>");
        check("crypto isakmp key MyKey address 0.0.0.0", "crypto isakmp key <secret>");
        check(" key-string 7 1234ABCD", " key-string <secret>");
        check(
            "        set password ENC SH2nlSm9QL9tapcHPXIqAXvX7vBJuuqu7wxzWEAJSGTE1ZVy3sOdY=",
            "        set password <secret:salted>",
        );
        check("        set psksecret mypsk", "        set psksecret <secret>");
        check(
            "    encrypted-password \"$6$abc$xyz\"; ## SECRET-DATA",
            "    encrypted-password <secret>; ## SECRET-DATA",
        );
        check("/ip ipsec peer add secret=hunter2 address=1.2.3.4", "/ip ipsec peer add secret=<secret>");
        check("add name=x password=\"a b\" group=full", "add name=x password=<secret> group=full");
        check("users.1.password=$1$abc$def", "users.1.password=<secret>");
        check("wpa_passphrase=correct horse", "wpa_passphrase=<secret>");
        check(
            "<password>x y</password><bcrypt-hash>$2b$10$q</bcrypt-hash>",
            "<password><secret></password><bcrypt-hash><secret></bcrypt-hash>",
        );
        check("<user Password=\"p w\" name=\"n\"/>", "<user Password=<secret> name=\"n\"/>");
    }

    /// Cases a probe found leaking through the first, per-word rules.
    #[test]
    fn values_after_type_words_spaces_and_quotes_never_leak() {
        let cases = [
            ("standby 1 authentication md5 key-string HsrpOld99", "HsrpOld99"),
            ("ntp authentication-key 1 md5 NtpOld12 7", "NtpOld12"),
            ("security wpa psk set-key ascii 0 WpaOldPsk12345", "WpaOldPsk12345"),
            ("wpa-psk ascii 0 ApPskOld1", "ApPskOld1"),
            (" message-digest-key 1 md5 encrypted XrOspfOld1", "XrOspfOld1"),
            (" password encrypted XrBgpOld2", "XrBgpOld2"),
            ("authentication-key 1 type md5 value \"$9$OLDntpKEY\";", "OLDntp"),
            ("md5 1 key \"$9$OLDospfKEY\";", "OLDospf"),
            ("set security ike policy p manual authentication key ascii-text \"ManualOld9\"", "ManualOld9"),
            ("ppp.1.password = \"Kv Ppp Old 6\"", "Ppp Old"),
            ("fbMqtt.sPassword := 'TcPw2Old3';", "TcPw2Old3"),
            ("username bob privilege 15 password 0 my Old pass word", "Old pass"),
            ("snmp-server community \"Comm Old Spaced\" RO", "Old Spaced"),
            ("enable secret 0 En\"Old\"Q", "Old"),
            ("option key 'Uci Wpa Old 1'", "Wpa Old"),
            ("set passwd \"Fg \\\"Old\\\" pw x\"", "Old"),
            ("snmp-server host 10.1.1.1 version 2c TrapCommOld", "TrapCommOld"),
            ("snmp-server user v3user grp v3 auth sha AuthPassOld1 priv aes 128 PrivPassOld1", "PassOld1"),
            ("set snmp community JnCommOld1 authorization read-only", "JnCommOld1"),
            ("plain-text-password-value \"PlainOld1\";", "PlainOld1"),
            ("add name=peer1 tcp-md5-key=MtBgpOld11", "MtBgpOld11"),
            ("<ipsecpsk>PskOld</ipsecpsk><rocommunity>RoOld</rocommunity>", "Old"),
            ("option sae_password 'SaeOld'", "SaeOld"),
            ("MACHINE\\Software\\Winlogon\\DefaultPassword=1,\"WinPwOld1\"", "WinPwOld1"),
            ("<Controller SourceKey=\"L5SkOld2\">", "L5SkOld2"),
            ("<AdministratorPassword><Value>UnPwOld1</Value></AdministratorPassword>", "UnPwOld1"),
        ];
        for (line, secret) in cases {
            let (masked, n) = mask_line(line, &key());
            assert!(n > 0, "{line:?}: nothing masked");
            assert!(!masked.contains(secret), "{line:?} leaks {secret:?}: {masked}");
        }
    }

    #[test]
    fn every_rule_has_a_trigger() {
        // Each rule's own example must pass the trigger prefilter, or the rule would never run.
        let examples = [
            "set password ENC abc",
            "set psksecret abc",
            "enable secret 5 abc",
            "snmp-server community abc RO",
            "  community abc;",
            "key-string 7 abc",
            "encrypted-password \"abc\";",
            "wpa_passphrase=abc",
            "x token=abc",
            "<bcrypt-hash>abc</bcrypt-hash>",
            "<prv>abc</prv>",
            "$6$salt$hash",
            "$2b$10$abc",
            "set auth-pwd abc",
            "ntp authentication-key 1 md5 abc",
        ];
        for example in examples {
            assert!(holds_trigger(example), "{example:?} would skip the rules");
            assert!(mask_line(example, &key()).1 > 0, "{example:?} was not masked");
        }
    }

    #[test]
    fn every_shape_passes_the_shape_test() {
        // One example per rule of `RULES`, in order: each must pass `may_hold_shape` and be masked by its rule.
        let examples = [
            "x $6$salt$hash",
            "x $argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
            "x pbkdf2_sha256$260000$salt$hash",
            "x {SSHA}abcdef",
            "x %^%#abc%^%#",
            "x %$%$abc%$%$",
            "x %@%@abc%@%@",
            "x https://user:pw@host",
            "x Password=abc",
            "x -----BEGIN PRIVATE KEY-----abc-----END",
            "x eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.abc",
            "x ghp_abcdefghijklmnopqrstuvwxyz",
        ];
        assert_eq!(examples.len(), RULES.len());
        for (idx, example) in examples.iter().enumerate() {
            let re = compiled(idx);
            assert!(re.is_match(example), "{example:?} is not an example of {re}");
            assert!(rules_that_may_match(example) & (1 << idx) != 0, "{example:?} lacks the words its rule needs");
            assert!(may_hold_shape(example), "{example:?} would skip the value shapes");
        }
        for token in ["gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "xoxb-", "sk_live_"] {
            assert!(may_hold_shape(&format!("x {token}abcdefghijklmnopqrstuvwxyz")), "{token}");
        }
    }

    #[test]
    fn every_mask_word_holds_a_trigger() {
        // `keyword_spans` visits only the words that hold a trigger word, and must meet a mask (normalised text
        // fed again) to pass over it: the first word of every mask holds one.
        for mask in ["<secret:1a2b3c4d>", SALTED, "<private key:1a2b3c4d>"] {
            assert!(is_mask(mask), "{mask}");
            let word: String = mask[1..].chars().take_while(|c| is_word_byte(*c as u8)).collect();
            assert!(holds_trigger(&word), "{mask:?}: its word {word:?} holds no trigger word");
        }
        let line = "username admin secret <secret:1a2b3c4d> privilege 15";
        let mut spans = Vec::new();
        keyword_spans(line, &mut spans);
        assert!(spans.is_empty(), "{spans:?}");
    }

    #[test]
    fn every_secret_word_holds_a_trigger() {
        // `keyword_spans` tests a word's trigger words before the lists: no word of the lists may lack one.
        let listed = KEYWORDS.iter().chain(SUFFIXES).chain(SECRET_NAMES).chain(SECRET_TOKENS);
        let composed = ["fooEncrypted", "PinCode", "adminPasswordHash", "privateKeyPem", "x_psk_value", "V2C", "TLS"];
        for word in listed.copied().chain(composed) {
            if is_secret_word(word) {
                assert!(holds_trigger(word), "{word:?} is a secret word without a trigger word");
            }
        }
        for word in ["fooEncrypted", "PinCode", "adminPasswordHash", "V2C"] {
            assert!(is_secret_word(word), "{word}");
        }
    }

    #[test]
    fn ordinary_lines_are_untouched() {
        for line in [
            "PasswordAuthentication no",
            "interface GigabitEthernet0/1",
            "net.ipv4.ip_forward = 0",
            "set system host-name fw1",
        ] {
            check(line, line);
        }
    }

    #[test]
    fn fingerprints_follow_the_value() {
        let (a, _) = mask_line("snmp-server community one RO", &key());
        let (b, _) = mask_line("snmp-server community one RO", &key());
        let (c, _) = mask_line("snmp-server community two RO", &key());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(!a.contains("one") && !c.contains("two"));
    }

    #[test]
    fn private_key_blocks_become_one_line() {
        let lines = vec![
            "set private-key \"-----BEGIN ENCRYPTED PRIVATE KEY-----".to_string(),
            "MIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQI".to_string(),
            "-----END ENCRYPTED PRIVATE KEY-----\"".to_string(),
            "next".to_string(),
        ];
        let out = mask_private_key_blocks(lines, &key());
        assert_eq!(out.len(), 2);
        assert!(out[0].starts_with("set private-key \"<private key:"), "{}", out[0]);
        assert!(!out[0].contains("MIIF"));
    }
}
