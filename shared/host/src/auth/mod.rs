//! Authentication, written once for edge and hub: Argon2id passwords, TOTP with replay protection and
//! recovery codes, API tokens, the lockout back-off, server-side web sessions.
//!
//! The rules (roles, what each may do, the TOTP arithmetic, the back-off curve) are pure and live in
//! `datum_shared::identity`; this module keeps the secrets in their own SQLite database (`auth.db` in the data
//! directory, mode 0600): never synced, never in a dump, never in a log. User records themselves come from the
//! caller (the site's documents at the edge).

mod store;

use std::time::Duration;

use chrono::{DateTime, Utc};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use datum_shared::identity::{totp, AuthMethod};
use rand::RngCore;
use sha2::{Digest, Sha256};

pub use store::AuthStore;

/// The file name of the secrets database inside a data directory.
pub const AUTH_DB: &str = "auth.db";
/// Longest password accepted (bytes): Argon2 takes any length, but a bound keeps a request cheap.
pub const MAX_PASSWORD: usize = 1024;
/// Shortest password accepted (characters).
pub const MIN_PASSWORD: usize = 12;
/// Recovery codes made at TOTP enrollment.
pub const RECOVERY_CODES: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("secrets database: {context}: {detail}")]
    Db { context: &'static str, detail: String },
    #[error("{0}")]
    Invalid(String),
}

pub(crate) fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> AuthError {
    move |e| AuthError::Db { context, detail: e.to_string() }
}

/// Argon2id with OWASP's second recommended setting (19 MiB, 2 passes, 1 lane).
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Checks a new password's length bounds; the reason when refused.
pub fn check_new_password(password: &str) -> Result<(), AuthError> {
    if password.len() > MAX_PASSWORD {
        return Err(AuthError::Invalid(format!("the password is longer than {MAX_PASSWORD} bytes")));
    }
    if password.chars().count() < MIN_PASSWORD {
        return Err(AuthError::Invalid(format!("the password must have at least {MIN_PASSWORD} characters")));
    }
    Ok(())
}

/// The Argon2id PHC string of a password, with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Invalid(e.to_string()))?;
    Ok(argon2().hash_password(password.as_bytes(), &salt).map_err(|e| AuthError::Invalid(e.to_string()))?.to_string())
}

/// Whether a password matches a stored PHC string. A malformed stored string never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    if password.len() > MAX_PASSWORD {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(parsed) => argon2().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Spends what a real verification spends, so an unknown account answers as slowly as a wrong password.
pub(crate) fn verify_nothing(password: &str) {
    let _ = verify_password(password, DUMMY_HASH);
}

/// A real Argon2id hash (of a random string nobody kept), with the same parameters as every stored one.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$7Ii3Nqi+ggNzvSUmxDOK9FFA9hljsg0NrB3dgnKf2Ao";

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

pub fn new_totp_secret() -> Vec<u8> {
    let mut secret = vec![0u8; totp::SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

/// Recovery codes as people type them: `xxxx-xxxx-xxxx-xxxx-xxxx` (80 bits, lower-case hex).
pub fn new_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let hex = random_hex(10);
            hex.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("-")
        })
        .collect()
}

pub(crate) fn recovery_hash(code: &str) -> String {
    let plain: String = code.chars().filter(|c| c.is_ascii_hexdigit()).map(|c| c.to_ascii_lowercase()).collect();
    sha256_hex(plain.as_bytes())
}

/// An API token as given to its holder once: `datum_<id>_<secret>`. Only the secret's SHA-256 is kept.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: String,
    pub token: String,
    pub(crate) secret_hash: String,
}

pub fn new_token() -> NewToken {
    let id = random_hex(8);
    let secret = random_hex(32);
    NewToken { token: format!("datum_{id}_{secret}"), secret_hash: sha256_hex(secret.as_bytes()), id }
}

/// Splits a presented token into id and secret; `None` when it cannot be one of ours.
pub(crate) fn parse_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.trim().strip_prefix("datum_")?;
    let (id, secret) = rest.split_once('_')?;
    let ok = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (ok(id, 16) && ok(secret, 64)).then_some((id, secret))
}

/// A token as listed (never its secret).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub user: String,
    pub created_at: String,
    pub created_by: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
}

/// Why a sign-in failed. The messages shown to the person do not tell an unknown account from a wrong
/// password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginRefused {
    /// Wrong name or password (or a disabled account, or one without a password).
    Invalid,
    /// Too many failures: try again after this long.
    Locked(Duration),
    /// The second factor was wrong, malformed or replayed.
    SecondFactor(String),
}

impl LoginRefused {
    pub fn message(&self) -> String {
        match self {
            LoginRefused::Invalid => "wrong name or password".into(),
            LoginRefused::Locked(wait) => {
                format!("too many failed sign-ins: try again in {} s", wait.as_secs().max(1))
            }
            LoginRefused::SecondFactor(why) => why.clone(),
        }
    }
}

/// A web session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub user: String,
    pub stage: Stage,
    pub auth: AuthMethod,
    pub csrf: String,
    pub created_at: i64,
    pub last_seen: i64,
    pub pending_secret: Option<Vec<u8>>,
}

/// How far a sign-in has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The password was right; the second factor is still to be given.
    Password,
    /// The password was right; the account must set up its second factor first.
    Enroll,
    /// Signed in.
    Active,
}

impl Stage {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Stage::Password => "password",
            Stage::Enroll => "enroll",
            Stage::Active => "active",
        }
    }
    pub(crate) fn parse(s: &str) -> Option<Stage> {
        [Stage::Password, Stage::Enroll, Stage::Active].into_iter().find(|st| st.as_str() == s)
    }
}

pub(crate) fn auth_method(s: &str) -> Option<AuthMethod> {
    [AuthMethod::Password, AuthMethod::PasswordTotp, AuthMethod::Token, AuthMethod::OsAccount]
        .into_iter()
        .find(|m| m.as_str() == s)
}

/// Session time-outs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    pub idle: Duration,
    pub absolute: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits { idle: Duration::from_secs(15 * 60), absolute: Duration::from_secs(8 * 3600) }
    }
}

impl NewToken {
    /// Shows a token just made, the one time it is shown: as JSON (`id`, `user`, `token`, `expires_at`), or the
    /// secret alone on standard output with what it is on standard error (`use_as`: how to present it).
    pub fn announce(
        &self,
        user: &str,
        expires_at: Option<DateTime<Utc>>,
        json: bool,
        use_as: &str,
    ) -> anyhow::Result<()> {
        if json {
            let value = serde_json::json!({
                "id": self.id, "user": user, "token": self.token,
                "expires_at": expires_at.map(|e| e.to_rfc3339()),
            });
            println!("{}", serde_json::to_string_pretty(&value)?);
        } else {
            println!("{}", self.token);
            eprintln!(
                "token {} for {user}{}: shown once, keep it like a password ({use_as})",
                self.id,
                expires_at.map(|e| format!(", expires {}", e.to_rfc3339())).unwrap_or_default()
            );
        }
        Ok(())
    }
}

/// The tokens as a table for people (never their secrets): `token list` at the edge and at the hub.
pub fn tokens_table(tokens: &[TokenInfo]) -> String {
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                t.user.clone(),
                t.created_at.clone(),
                t.expires_at.clone().unwrap_or_else(|| "never".into()),
                t.revoked_at.clone().map(|r| format!("revoked {r}")).unwrap_or_else(|| "active".into()),
                t.last_used_at.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    datum_shared::text::table(&["ID", "USER", "CREATED", "EXPIRES", "STATE", "LAST USED"], &rows)
}

/// A token's lifetime on the command line or in a form: `30d`, `12h`, `90m`, or `never` (`None`).
pub fn parse_lifetime(value: &str, now: DateTime<Utc>) -> anyhow::Result<Option<DateTime<Utc>>> {
    let v = value.trim();
    if v == "never" {
        return Ok(None);
    }
    let bad = || crate::exit::user(format!("{value:?} is not a lifetime like 30d, 12h or never"));
    let (digits, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let d = match unit {
        "d" => chrono::Duration::try_days(n),
        "h" => chrono::Duration::try_hours(n),
        "m" => chrono::Duration::try_minutes(n),
        _ => None,
    };
    match d {
        Some(d) if n > 0 && n <= 3650 * 24 * 60 => Ok(Some(now + d)),
        _ => Err(bad()),
    }
}

/// A password from one line of standard input (`--password-stdin`), refused when empty.
pub fn read_password_line() -> anyhow::Result<String> {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| anyhow::anyhow!("read the password from standard input: {e}"))?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        return Err(crate::exit::user("no password on standard input"));
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_table_says_each_state_and_never_a_secret() {
        let made = new_token();
        let info = |id: &str, expires: Option<&str>, revoked: Option<&str>| TokenInfo {
            id: id.into(),
            user: "ana".into(),
            created_at: "2026-12-04T10:00:00+00:00".into(),
            created_by: "olga".into(),
            expires_at: expires.map(str::to_string),
            revoked_at: revoked.map(str::to_string),
            last_used_at: None,
        };
        let table = tokens_table(&[info(&made.id, None, None), info("t2", Some("2027-01-01"), Some("2026-12-05"))]);
        assert!(!table.contains(&made.token) && !table.contains(&made.secret_hash), "{table}");
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("ID") && lines[0].contains("LAST USED"), "{table}");
        assert!(lines[1].contains(&made.id) && lines[1].contains("never") && lines[1].contains("active"), "{table}");
        assert!(lines[2].contains("2027-01-01") && lines[2].contains("revoked 2026-12-05"), "{table}");
    }

    #[test]
    fn lifetimes_are_read_or_refused() {
        let now = DateTime::parse_from_rfc3339("2026-12-04T10:00:00Z").expect("time").with_timezone(&Utc);
        assert_eq!(parse_lifetime("never", now).expect("never"), None);
        assert_eq!(parse_lifetime("30d", now).expect("30d"), Some(now + chrono::Duration::days(30)));
        assert_eq!(parse_lifetime(" 12h ", now).expect("12h"), Some(now + chrono::Duration::hours(12)));
        for bad in ["soon", "0d", "-1d", "5w", "d", "99999999999d"] {
            let e = parse_lifetime(bad, now).expect_err(bad);
            assert!(e.to_string().contains("not a lifetime"), "{bad}: {e}");
        }
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let phc = hash_password("correct horse battery").expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password("correct horse battery", &phc));
        assert!(!verify_password("correct horse batterY", &phc));
        assert!(!verify_password("correct horse battery", "not a phc string"));
        // Two hashes of one password differ (fresh salt).
        assert_ne!(phc, hash_password("correct horse battery").expect("hash"));
        assert!(check_new_password("short").is_err());
        assert!(check_new_password(&"x".repeat(MAX_PASSWORD + 1)).is_err());
    }

    #[test]
    fn the_dummy_hash_costs_a_real_verification() {
        let parsed = PasswordHash::new(DUMMY_HASH).expect("the dummy is a well-formed PHC string");
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert!(!verify_password("anything", &hash_password("anything else").expect("hash")));
        let made = hash_password("x").expect("hash");
        assert_eq!(made.split('$').nth(3), DUMMY_HASH.split('$').nth(3), "same parameters as real hashes");
    }

    #[test]
    fn tokens_parse_only_in_their_own_shape() {
        let t = new_token();
        let (id, secret) = parse_token(&t.token).expect("own token");
        assert_eq!(id, t.id);
        assert_eq!(sha256_hex(secret.as_bytes()), t.secret_hash);
        assert!(parse_token("datum_zz_11").is_none());
        assert!(parse_token(&t.token.replace("datum_", "other_")).is_none());
        assert!(parse_token("").is_none());
    }

    #[test]
    fn recovery_codes_are_typed_loosely() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let c = &codes[0];
        assert_eq!(c.len(), 24, "{c}");
        assert_eq!(recovery_hash(c), recovery_hash(&c.to_uppercase().replace('-', " ")));
    }
}
