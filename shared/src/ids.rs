//! Identifiers that users type and documents store: asset names, slots, change ids, document ids.
//!
//! Each is validated once at the boundary so the rest of the code can put them in keys and paths without
//! escaping: none of them can contain `/`, whitespace or control characters.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} {value:?} is longer than {max} characters")]
    TooLong { what: &'static str, value: String, max: usize },
    #[error(
        "{what} {value:?} may only contain letters, digits, '.', '_' and '-' (and must start with a letter or digit)"
    )]
    BadCharacter { what: &'static str, value: String },
    #[error("change id {value:?} is not of the form CR-0001")]
    BadChangeId { value: String },
    #[error("document id {value:?} is not valid")]
    BadDocId { value: String },
    #[error("{what} {value:?} is not {len} lower-case hexadecimal digits")]
    BadHex { what: &'static str, value: String, len: usize },
}

fn check_name(what: &'static str, value: &str, max: usize) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { what });
    }
    if value.chars().count() > max {
        return Err(IdError::TooLong { what, value: value.to_string(), max });
    }
    let first_ok = value.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !first_ok || !rest_ok {
        return Err(IdError::BadCharacter { what, value: value.to_string() });
    }
    Ok(())
}

/// A validated string identifier: `new` checks it once with `$check`, serde goes through `new` too.
macro_rules! string_type {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn new(value: &str) -> Result<Self, IdError> {
                let check: fn(&str) -> Result<(), IdError> = $check;
                check(value)?;
                Ok(Self(value.to_string()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }
        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::new(&s)
            }
        }
        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// A name people type: letters, digits, `.`, `_`, `-`, at most `$max` characters.
macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:literal) => {
        string_type!($(#[$doc])* $name, |value| check_name($what, value, $max));
    };
}

/// Exactly `$len` lower-case hexadecimal digits.
macro_rules! hex_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $len:literal) => {
        string_type!($(#[$doc])* $name, |value| check_hex($what, value, $len));
    };
}

fn check_hex(what: &'static str, value: &str, len: usize) -> Result<(), IdError> {
    if value.len() != len || !value.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(IdError::BadHex { what, value: value.chars().take(80).collect(), len });
    }
    Ok(())
}

name_type!(
    /// The name of an asset, unique within a site (`PLC-01`, `fw-north`).
    AssetName, "asset name", 64
);
name_type!(
    /// One artifact of an asset (`running-config`, `plc-program`, `firewall-rules`).
    SlotName, "slot name", 48
);
name_type!(
    /// A site's name, chosen at `init` (`plant-north`).
    SiteName, "site name", 48
);

name_type!(
    /// An edge node's name, unique within its site (`north-1`); in its certificate beside the site's name.
    NodeName, "node name", 48
);

hex_type!(
    /// A site's id: made at `init`, the owner part of its documents' ids, bound at the hub by the first
    /// enrollment.
    SiteId, "site id", 16
);
hex_type!(
    /// A stored file's name: the SHA-256 of its content.
    BlobHash, "file hash", 64
);

/// A name people use (`Plant North 2`, `Werk Süd`, `ACME OT`) and the identifier that goes into keys and
/// certificates (`plant-north-2`, `werk-sud`, `acme-ot`). The identifier is given, or derived from the name:
/// letters without their accents, lower case, every other run of characters one `-`. A name that is already
/// a valid identifier is its own identifier and has no separate display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedId {
    pub id: SiteName,
    /// The name as typed, when it differs from the identifier.
    pub display: Option<String>,
}

impl NamedId {
    /// `what` names the thing in errors ("site", "hub"); `id` is the identifier given with `--id`, if any.
    pub fn new(what: &str, name: &str, id: Option<&str>) -> Result<NamedId, String> {
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("the {what} name must not be empty"));
        }
        crate::text::check_text(&format!("{what} name"), name, 64)?;
        let id = match id {
            Some(id) => SiteName::new(id).map_err(|e| format!("--id: {e}"))?,
            None => match SiteName::new(name) {
                Ok(id) => id,
                Err(_) => derive_identifier(name).and_then(|d| SiteName::new(&d).ok()).ok_or_else(|| {
                    format!(
                        "cannot derive an identifier from the {what} name {name:?}; give one with --id \
                         (letters, digits, '.', '_' and '-')"
                    )
                })?,
            },
        };
        let display = (name != id.as_str()).then(|| name.to_string());
        Ok(NamedId { id, display })
    }
}

/// `Werk Süd` → `werk-sud`: accents dropped (NFKD without combining marks), ASCII letters and digits kept in
/// lower case, every other run of characters one `-`. `None` when nothing is left (a name in a script without
/// Latin letters needs an identifier given).
pub fn derive_identifier(name: &str) -> Option<String> {
    use unicode_normalization::char::is_combining_mark;
    use unicode_normalization::UnicodeNormalization;
    let mut out = String::new();
    let mut gap = false;
    for c in name.nfkd().filter(|c| !is_combining_mark(*c)) {
        if c.is_ascii_alphanumeric() {
            if gap && !out.is_empty() {
                out.push('-');
            }
            gap = false;
            out.push(c.to_ascii_lowercase());
        } else {
            gap = true;
        }
        if out.len() >= 48 {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_string();
    (!out.is_empty()).then_some(out)
}

/// A change request id: `CR-` and a zero-padded sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChangeId(pub u32);

impl ChangeId {
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let bad = || IdError::BadChangeId { value: value.to_string() };
        let upper = value.to_ascii_uppercase();
        let digits = upper.strip_prefix("CR-").unwrap_or(&upper);
        if digits.is_empty() || digits.len() > 9 || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        let n: u32 = digits.parse().map_err(|_| bad())?;
        if n == 0 {
            return Err(bad());
        }
        Ok(ChangeId(n))
    }
}
impl FromStr for ChangeId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::parse(s)
    }
}
impl TryFrom<String> for ChangeId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}
impl From<ChangeId> for String {
    fn from(c: ChangeId) -> String {
        c.to_string()
    }
}
impl fmt::Display for ChangeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CR-{:04}", self.0)
    }
}

/// Who may write a document. Every document has exactly one writer principal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Owner {
    /// Written only by the edge node of this site (by its site id).
    Site(String),
    /// Written only by the hub (templates, central approvals); read-only at every edge.
    Hub,
}

/// A document id: `site/<site-id>/<name>[/<period>]`, `hub/<name>[/<period>]` (read by every site) or
/// `hub/to/<site-id>/<name>` (written by the hub for one site: its template assignments, central approvals).
///
/// Owner and audience are part of the id so that authorization can be decided from the id alone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DocId(String);

impl DocId {
    pub fn site(site_id: &str, name: &str) -> DocId {
        DocId(format!("site/{site_id}/{name}"))
    }
    /// A hub document addressed to one site.
    pub fn hub_for(site_id: &str, name: &str) -> DocId {
        DocId(format!("hub/to/{site_id}/{name}"))
    }
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let bad = || IdError::BadDocId { value: value.to_string() };
        if value.len() > 200 {
            return Err(bad());
        }
        let parts: Vec<&str> = value.split('/').collect();
        let part_ok =
            |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        let ok = match parts.first() {
            Some(&"site") => (3..=4).contains(&parts.len()),
            Some(&"hub") if parts.get(1) == Some(&"to") => parts.len() == 4,
            Some(&"hub") => (2..=3).contains(&parts.len()),
            _ => false,
        };
        if !ok || !parts.iter().all(|p| part_ok(p)) {
            return Err(bad());
        }
        Ok(DocId(value.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn owner(&self) -> Owner {
        let mut parts = self.0.split('/');
        match (parts.next(), parts.next()) {
            (Some("site"), Some(site_id)) => Owner::Site(site_id.to_string()),
            _ => Owner::Hub,
        }
    }
    /// The one site a hub document is addressed to (`hub/to/<site-id>/…`); `None` for every other document.
    pub fn audience(&self) -> Option<&str> {
        let mut parts = self.0.split('/');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("hub"), Some("to"), Some(site_id)) => Some(site_id),
            _ => None,
        }
    }
    /// The document's kind without owner, audience and period: `inventory`, `configs`, `changes`…
    pub fn kind(&self) -> &str {
        let parts: Vec<&str> = self.0.split('/').collect();
        match (parts.first(), parts.get(1)) {
            (Some(&"site"), _) => parts.get(2).copied().unwrap_or(""),
            (_, Some(&"to")) => parts.get(3).copied().unwrap_or(""),
            _ => parts.get(1).copied().unwrap_or(""),
        }
    }
}
impl TryFrom<String> for DocId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}
impl From<DocId> for String {
    fn from(d: DocId) -> String {
        d.0
    }
}
impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_derive_identifiers() {
        let named = |name: &str, id: Option<&str>| NamedId::new("site", name, id);
        assert_eq!(
            named("plant-north", None),
            Ok(NamedId { id: SiteName::new("plant-north").expect("id"), display: None })
        );
        let north = named("Plant North 2", None).expect("derived");
        assert_eq!((north.id.as_str(), north.display.as_deref()), ("plant-north-2", Some("Plant North 2")));
        assert_eq!(named("Werk Süd", None).expect("derived").id.as_str(), "werk-sud");
        assert_eq!(named("ACME OT", None).expect("derived").id.as_str(), "acme-ot");
        assert_eq!(named("Ölraffinerie  Nord/Süd", None).expect("derived").id.as_str(), "olraffinerie-nord-sud");
        assert!(named("工場", None).expect_err("no latin letters").contains("--id"));
        assert_eq!(named("工場", Some("kojo")).expect("given").id.as_str(), "kojo");
        assert!(named("Plant\nNorth", None).is_err());
        assert!(named("x", Some("bad id")).expect_err("bad id").contains("--id"));
    }

    #[test]
    fn names_are_validated() {
        assert!(AssetName::new("PLC-01").is_ok());
        assert!(AssetName::new("fw.north_2").is_ok());
        for bad in ["", "-x", "a/b", "a b", "ä", ".hidden"] {
            assert!(AssetName::new(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            AssetName::new(&"x".repeat(65)).unwrap_err().to_string(),
            format!("asset name {:?} is longer than 64 characters", "x".repeat(65))
        );
    }

    #[test]
    fn change_ids_parse_and_print() {
        assert_eq!(ChangeId::parse("CR-0007").unwrap(), ChangeId(7));
        assert_eq!(ChangeId::parse("cr-12").unwrap().to_string(), "CR-0012");
        assert_eq!(ChangeId::parse("3").unwrap(), ChangeId(3));
        for bad in ["CR-", "CR-0", "CR-x1", "XX-1", ""] {
            assert!(ChangeId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn doc_ids_carry_their_owner() {
        let id = DocId::parse("site/0a1b/configs/2026-11").unwrap();
        assert_eq!(id.owner(), Owner::Site("0a1b".into()));
        assert_eq!(id.kind(), "configs");
        let hub = DocId::parse("hub/templates").unwrap();
        assert_eq!(hub.owner(), Owner::Hub);
        assert_eq!(hub.kind(), "templates");
        let to = DocId::parse("hub/to/0a1b/templates").unwrap();
        assert_eq!((to.owner(), to.audience(), to.kind()), (Owner::Hub, Some("0a1b"), "templates"));
        assert_eq!((hub.audience(), DocId::hub_for("0a1b", "templates")), (None, to));
        for bad in ["site/x", "other/x/y", "site/a/b/c/d", "site//inventory", "hub/a b", "hub/to/x", "hub/to/x/y/z"] {
            assert!(DocId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
