//! Secret masking: passwords, hashes, keys, SNMP communities, pre-shared keys, `ENC` blobs and private keys
//! are replaced by `<secret:FP>` in everything Datum shows or hashes.
//!
//! `FP` is a keyed fingerprint (HMAC-SHA256 with a per-site key, 8 hex digits): two captures with the same
//! secret show the same fingerprint, a changed secret shows a different one, and the value itself is never
//! printed. Values that are re-encrypted with a fresh salt on every export (FortiGate `ENC`) cannot be compared
//! and become `<secret:salted>`, so they are never reported as changed.

use std::borrow::Cow;
use std::sync::OnceLock;

use aho_corasick::AhoCorasick;
use hmac::{Hmac, Mac};
use regex::{Regex, RegexSet};
use sha2::Sha256;

/// The key of the keyed fingerprints. The edge derives it from the site key; `datum-edge diff` uses a fresh one.
#[derive(Clone)]
pub struct FingerprintKey(pub [u8; 32]);

impl std::fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FingerprintKey(..)")
    }
}

impl FingerprintKey {
    pub fn fingerprint(&self, value: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(value.as_bytes());
        let out = mac.finalize().into_bytes();
        hex::encode(&out[..4])
    }

    pub fn mask(&self, value: &str, salted: bool) -> String {
        if salted {
            SALTED.to_string()
        } else {
            format!("<secret:{}>", self.fingerprint(value))
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
    /// The whole match is re-salted on every export (FortiOS `ENC`).
    salted: bool,
}

/// The rules, applied to every line of every text format. Order matters: earlier rules mask first.
const RULES: &[Rule] = &[
    Rule { what: "FortiOS encrypted value", pattern: r#"(?i)\bset\s+[\w-]+\s+(ENC\s+(?:"[^"]*"|\S+))"#, salted: true },
    Rule {
        what: "FortiOS secret",
        pattern: r#"(?i)\bset\s+(?:password|passwd|psksecret|secret|passphrase|sso-password|radius-secret|ldap-password|auth-pwd|wifi-passphrase|key|private-key|pre-shared-key|psk|passwd\d)\s+("[^"]*"|\S+)"#,
        salted: false,
    },
    Rule {
        what: "Cisco type-N password or secret",
        pattern: r#"(?i)\b(?:secret|password|passwd)\s+(?:\d+\s+)?([^\s"]+|"[^"]*")"#,
        salted: false,
    },
    Rule { what: "SNMP community", pattern: r#"(?i)\bsnmp-server\s+community\s+(\S+)"#, salted: false },
    Rule { what: "Junos SNMP community", pattern: r#"(?i)^\s*community\s+("[^"]*"|[^\s{;]+)"#, salted: false },
    Rule {
        what: "keys and pre-shared keys",
        pattern: r#"(?i)\b(?:key-string|key|pre-shared-key(?:\s+ascii-text|\s+hexadecimal)?|authentication-key|simple-password|hello-authentication-key|md5|message-digest-key\s+\d+\s+md5|ikev\d\s+pre-shared-key|psk)\s+(?:\d\s+)?("[^"]*"|[^\s";{]+)"#,
        salted: false,
    },
    Rule {
        what: "Junos encrypted password",
        pattern: r#"(?i)\bencrypted-password\s+("[^"]*"|[^\s;]+)"#,
        salted: false,
    },
    Rule {
        what: "key=value line whose value is a secret (to the end of the line)",
        pattern: r#"(?i)^\s*[\w.-]*(?:password|passwd|passphrase|secret|psk|token|api[_-]?key|private[_-]?key|pre-shared-key|community|wpa[\w-]*-key)\s*[=:]\s*("[^"]*"|.*\S)\s*$"#,
        salted: false,
    },
    Rule {
        what: "key=value secret",
        pattern: r#"(?i)(?:^|[\s.;,{"])[\w.-]*(?:password|passwd|passphrase|secret|psk|token|api[_-]?key|private[_-]?key|pre-shared-key|community|wpa[\w-]*-key)"?\s*[=:]\s*("[^"]*"|[^\s,;}]+)"#,
        salted: false,
    },
    Rule {
        what: "XML element holding a secret (pfSense/OPNsense hashes, keys, PSKs)",
        pattern: r#"(?i)<(?:[\w.-]*(?:password|passwd|passphrase|hash|secret|psk|prv|private-?key|pre-shared-key|shared_key|token|community|authkey|bindpw))>([^<]+)<"#,
        salted: false,
    },
    Rule { what: "crypt(3) password hash", pattern: r#"(\$(?:1|2[aby]?|5|6|y|sha1|md5)\$[^\s:"',;]+)"#, salted: false },
];

fn compiled() -> &'static [(Regex, bool)] {
    static RULES_RE: OnceLock<Vec<(Regex, bool)>> = OnceLock::new();
    RULES_RE.get_or_init(|| {
        RULES
            .iter()
            .map(|r| (Regex::new(&super::ascii_classes(r.pattern)).expect("secret rules are valid regexes"), r.salted))
            .collect()
    })
}

/// All rules in one automaton: most lines hold no secret, and one scan tells.
fn rule_set() -> &'static RegexSet {
    static SET: OnceLock<RegexSet> = OnceLock::new();
    SET.get_or_init(|| {
        RegexSet::new(RULES.iter().map(|r| super::ascii_classes(r.pattern))).expect("secret rules are valid regexes")
    })
}

/// Words at least one of which every rule needs: a cheap first test that lets most lines (PLC code, plain
/// settings) skip the regular expressions. Kept in step with `RULES` by `every_rule_has_a_trigger`.
const TRIGGERS: &[&str] = &[
    "secret",
    "pass",
    "key",
    "psk",
    "pwd",
    "community",
    "token",
    "md5",
    "hash",
    "prv",
    "bindpw",
    "enc",
    "$1$",
    "$2",
    "$5$",
    "$6$",
    "$y$",
    "$sha1$",
    "$md5$",
];

fn triggers() -> &'static AhoCorasick {
    static AC: OnceLock<AhoCorasick> = OnceLock::new();
    AC.get_or_init(|| {
        AhoCorasick::builder().ascii_case_insensitive(true).build(TRIGGERS).expect("trigger words are valid")
    })
}

/// Masks every secret in one line. Returns the masked line and how many secrets it held.
pub fn mask_line<'a>(line: &'a str, key: &FingerprintKey) -> (Cow<'a, str>, usize) {
    if !triggers().is_match(line) {
        return (Cow::Borrowed(line), 0);
    }
    let hits = rule_set().matches(line);
    if !hits.matched_any() {
        return (Cow::Borrowed(line), 0);
    }
    let mut current = line.to_string();
    let mut n = 0;
    for (idx, (re, salted)) in compiled().iter().enumerate() {
        if !hits.matched(idx) || !re.is_match(&current) {
            continue;
        }
        let mut out = String::with_capacity(current.len());
        let mut last = 0;
        for caps in re.captures_iter(&current) {
            let Some(group) = caps.get(1) else { continue };
            let value = group.as_str();
            if value.starts_with("<secret:") || value.is_empty() {
                continue;
            }
            out.push_str(&current[last..group.start()]);
            out.push_str(&key.mask(value.trim_matches('"'), *salted));
            last = group.end();
            n += 1;
        }
        out.push_str(&current[last..]);
        current = out;
    }
    (Cow::Owned(current), n)
}

/// Is this element or key name one whose value is secret (XML, JSON)?
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    const EXACT: &[&str] = &[
        "prv",
        "tls",
        "psk",
        "key",
        "secret",
        "community",
        "shared_key",
        "sharedkey",
        "authkey",
        "auth_key",
        "privatekey",
        "private_key",
        "pre-shared-key",
        "ipsec_psk",
        "ldap_bindpw",
        "bindpw",
        "radius_secret",
        "passwd",
        "pass",
    ];
    EXACT.contains(&n.as_str())
        || n.contains("password")
        || n.contains("passphrase")
        || n.ends_with("-hash")
        || n.ends_with("_hash")
        || n.ends_with("secret")
        || n.contains("apikey")
        || n.contains("api_key")
        || n.contains("token")
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
            if line[idx..].contains("PRIVATE KEY") {
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
        check("enable secret 5 $1$mERr$hx5rVt7rPNoS4wqbXKX7m0", "enable secret 5 <secret>");
        check(" password 7 0822455D0A16", " password 7 <secret>");
        check("username admin privilege 15 secret 9 $9$abc$def", "username admin privilege 15 secret 9 <secret>");
        check("snmp-server community s3cr3t RO", "snmp-server community <secret> RO");
        check("crypto isakmp key MyKey address 0.0.0.0", "crypto isakmp key <secret> address 0.0.0.0");
        check(" key-string 7 1234ABCD", " key-string 7 <secret>");
        check(
            "        set password ENC SH2nlSm9QL9tapcHPXIqAXvX7vBJuuqu7wxzWEAJSGTE1ZVy3sOdY=",
            "        set password <secret:salted>",
        );
        check("        set psksecret mypsk", "        set psksecret <secret>");
        check(
            "    encrypted-password \"$6$abc$xyz\"; ## SECRET-DATA",
            "    encrypted-password <secret>; ## SECRET-DATA",
        );
        check(
            "/ip ipsec peer add secret=hunter2 address=1.2.3.4",
            "/ip ipsec peer add secret=<secret> address=1.2.3.4",
        );
        check("users.1.password=$1$abc$def", "users.1.password=<secret>");
        check("wpa_passphrase=correct horse", "wpa_passphrase=<secret>");
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
            assert!(triggers().is_match(example), "{example:?} would skip the rules");
            assert!(mask_line(example, &key()).1 > 0, "{example:?} was not masked");
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
