//! The leak corpus (`tests/leaks/corpus.txt`): constructed snippets holding known secrets, read by the masking
//! tests of `datum-shared` (`shared/tests/leaks.rs`) and by the end-to-end test (`tests/e2e/leaks.rs`), which
//! include this file by path. The format is described at the top of `corpus.txt`.

use std::path::Path;

/// One snippet of the corpus.
#[derive(Debug, Clone)]
pub struct Case {
    pub id: String,
    pub vendor: String,
    /// The file name the snippet is captured under.
    pub file_name: String,
    /// Secret strings that must never be shown (empty for a `keep` case).
    pub secrets: Vec<String>,
    /// Words that must stay visible (only `keep` cases).
    pub visible: Vec<String>,
    /// The value is re-encrypted on every export: its change cannot be detected.
    pub salted: bool,
    pub text: String,
}

impl Case {
    pub fn is_keep(&self) -> bool {
        !self.visible.is_empty()
    }

    /// The snippet with every secret changed (its last four letters or digits rotated), and those changed secrets.
    pub fn changed(&self) -> (String, Vec<String>) {
        let mut text = self.text.clone();
        let mut changed = Vec::new();
        for secret in &self.secrets {
            let other = rotate_tail(secret);
            text = text.replace(secret.as_str(), &other);
            changed.push(other);
        }
        (text, changed)
    }
}

/// The string with its last four ASCII letters or digits rotated (a→b, z→a, 9→0): the same shape, another value.
pub fn rotate_tail(secret: &str) -> String {
    let mut chars: Vec<char> = secret.chars().collect();
    let mut left = 4;
    for c in chars.iter_mut().rev() {
        if left == 0 {
            break;
        }
        let rotated = match *c {
            'z' => 'a',
            'Z' => 'A',
            '9' => '0',
            c if c.is_ascii_alphanumeric() => (c as u8 + 1) as char,
            _ => continue,
        };
        *c = rotated;
        left -= 1;
    }
    chars.into_iter().collect()
}

/// Reads the corpus at `path`. Panics (fails the test) when it is missing or malformed.
pub fn load(path: &Path) -> Vec<Case> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("the leak corpus is missing at {}: {e}", path.display()));
    parse(&text)
}

/// Parses the corpus text.
pub fn parse(text: &str) -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(header) = line.strip_prefix("=== ") else {
            assert!(
                cases.is_empty() && (line.starts_with('#') || line.trim().is_empty()),
                "corpus: unexpected line outside a case: {line:?}"
            );
            continue;
        };
        let (keep, header) = match header.strip_prefix("keep ") {
            Some(rest) => (true, rest),
            None => (false, header),
        };
        let fields: Vec<&str> = header.split('|').map(str::trim).collect();
        assert!(fields.len() >= 3, "corpus: a header needs `ID | VENDOR | FILE`: {line:?}");
        let mut case = Case {
            id: fields[0].to_string(),
            vendor: fields[1].to_string(),
            file_name: fields[2].to_string(),
            secrets: Vec::new(),
            visible: Vec::new(),
            salted: fields.get(3) == Some(&"salted"),
            text: String::new(),
        };
        for field in lines.by_ref() {
            if field == "---" {
                break;
            }
            if let Some(secret) = field.strip_prefix("secret: ") {
                assert!(secret.len() >= 6, "corpus {}: secret {secret:?} is too short to be distinctive", case.id);
                case.secrets.push(secret.to_string());
            } else if let Some(word) = field.strip_prefix("visible: ") {
                case.visible.push(word.to_string());
            } else {
                panic!("corpus {}: expected `secret:`, `visible:` or `---`, got {field:?}", case.id);
            }
        }
        let mut body: Vec<&str> = Vec::new();
        while let Some(next) = lines.peek() {
            if next.starts_with("=== ") {
                break;
            }
            body.push(next);
            lines.next();
        }
        while body.last().is_some_and(|l| l.trim().is_empty()) {
            body.pop();
        }
        case.text = body.join("\n") + "\n";
        assert_eq!(keep, case.is_keep(), "corpus {}: a `keep` case lists `visible:` words, others `secret:`", case.id);
        assert!(keep || !case.secrets.is_empty(), "corpus {}: no secret", case.id);
        for secret in &case.secrets {
            assert!(case.text.contains(secret.as_str()), "corpus {}: the snippet does not hold {secret:?}", case.id);
        }
        assert!(!cases.iter().any(|c| c.id == case.id), "corpus: duplicate id {}", case.id);
        cases.push(case);
    }
    cases
}
