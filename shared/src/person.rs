//! Names of people (the acting person of every audit entry) and how two names are compared.
//!
//! Separation of duties rests on telling people apart, so a name must not be able to look like another
//! person's: names are stored in Unicode normal form NFKC (full-width and compatibility letters folded), and a
//! name with invisible characters (zero-width spaces, joiners, bidi controls) or letters of mixed scripts
//! (`аlice` with a Cyrillic `а`) is refused. Two names are the same person when their NFKC forms agree
//! without case and blanks.

use unicode_normalization::UnicodeNormalization;

/// Longest name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// Checks and normalises a person's name: the NFKC form, or why the name is refused.
pub fn normalize_name(raw: &str) -> Result<String, String> {
    let name: String = raw.nfkc().collect();
    if name.trim().is_empty() {
        return Err("the acting name must not be empty".into());
    }
    if name.trim() != name {
        return Err(format!("the acting name {:?} has leading or trailing blanks", name));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("the acting name is longer than {MAX_NAME_CHARS} characters"));
    }
    if let Some(c) = name.chars().find(|c| is_invisible(*c) || c.is_control()) {
        return Err(format!(
            "the acting name {:?} holds an invisible or control character (U+{:04X}); type it plainly",
            name.escape_debug().to_string(),
            u32::from(c)
        ));
    }
    let mut scripts = name.chars().filter(|c| c.is_alphabetic()).map(script_of);
    if let Some(first) = scripts.next() {
        if let Some(other) = scripts.find(|s| *s != first) {
            return Err(format!(
                "the acting name {name:?} mixes letters of different scripts ({} and {}), which can make one \
                 person's name look like another's",
                first.as_str(),
                other.as_str()
            ));
        }
    }
    Ok(name)
}

/// The form two names are compared in: NFKC, lower case, without blanks.
pub fn comparison_key(name: &str) -> String {
    name.nfkc().filter(|c| !c.is_whitespace()).flat_map(char::to_lowercase).collect()
}

/// Characters that show nothing: format characters (zero-width space and joiners, bidi controls, soft
/// hyphen, byte order mark) and the variation selectors.
fn is_invisible(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F | 0x200B..=0x200F
            | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFF8
            | 0xE0000..=0xE0FFF
    )
}

/// The writing system a letter belongs to, as far as telling look-alikes apart needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    Latin,
    Greek,
    Cyrillic,
    Armenian,
    Hebrew,
    Arabic,
    /// Han, Hiragana, Katakana and Hangul: Japanese names mix the first three by nature.
    EastAsian,
    Other,
}

impl Script {
    fn as_str(self) -> &'static str {
        match self {
            Script::Latin => "Latin",
            Script::Greek => "Greek",
            Script::Cyrillic => "Cyrillic",
            Script::Armenian => "Armenian",
            Script::Hebrew => "Hebrew",
            Script::Arabic => "Arabic",
            Script::EastAsian => "East Asian",
            Script::Other => "other",
        }
    }
}

fn script_of(c: char) -> Script {
    match u32::from(c) {
        0x0041..=0x024F | 0x1E00..=0x1EFF | 0x2C60..=0x2C7F | 0xA720..=0xA7FF | 0xAB30..=0xAB6F => Script::Latin,
        0x0370..=0x03FF | 0x1F00..=0x1FFF => Script::Greek,
        0x0400..=0x052F | 0x1C80..=0x1C8F | 0x2DE0..=0x2DFF | 0xA640..=0xA69F => Script::Cyrillic,
        0x0530..=0x058F => Script::Armenian,
        0x0590..=0x05FF => Script::Hebrew,
        0x0600..=0x06FF | 0x0750..=0x077F | 0x08A0..=0x08FF => Script::Arabic,
        0x1100..=0x11FF
        | 0x3040..=0x30FF
        | 0x3130..=0x318F
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xAC00..=0xD7AF
        | 0xF900..=0xFAFF
        | 0x20000..=0x2FFFF => Script::EastAsian,
        _ => Script::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_in_any_language_pass() {
        for name in ["alice", "José García", "Иван", "山田太郎", "やまだ", "Zoë O'Neil", "bob.smith-2"] {
            assert_eq!(normalize_name(name).as_deref(), Ok(name), "{name}");
        }
        // Full-width letters fold to the plain ones.
        assert_eq!(normalize_name("ａｌｉｃｅ").as_deref(), Ok("alice"));
    }

    #[test]
    fn look_alikes_are_refused() {
        let refused = |name: &str, why: &str| {
            let err = normalize_name(name).expect_err(name);
            assert!(err.contains(why), "{name:?}: {err}");
        };
        refused("\u{430}lice", "mixes letters of different scripts (Cyrillic and Latin)");
        refused("ali\u{200b}ce", "invisible");
        refused("ali\u{202e}ce", "invisible");
        refused("ali\u{ad}ce", "invisible");
        refused("al\u{7}ice", "control");
        refused(" alice", "blanks");
        refused("", "empty");
    }

    #[test]
    fn names_compare_by_their_normal_form() {
        assert_eq!(comparison_key("Alice "), comparison_key("alice"));
        assert_eq!(comparison_key("ａｌｉｃｅ"), comparison_key("ALICE"));
        assert_ne!(comparison_key("\u{430}lice"), comparison_key("alice"));
    }
}
