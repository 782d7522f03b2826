//! Authentication, written once for edge and hub: Argon2id passwords, TOTP with replay protection and
//! recovery codes, API tokens, the lockout back-off, server-side web sessions.
//!
//! The rules (roles, what each may do, the TOTP arithmetic, the back-off curve) are pure and live in
//! `datum_shared::identity`; this module keeps the secrets in their own SQLite database (`auth.db` in the data
//! directory, mode 0600): never synced, never in a dump, never in a log. User records themselves come from the
//! caller (the site's documents at the edge).

use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use chrono::{DateTime, Utc};
use datum_shared::identity::{lockout_after, totp, AuthMethod, User};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

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

fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> AuthError {
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
fn verify_nothing(password: &str) {
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

fn recovery_hash(code: &str) -> String {
    let plain: String = code.chars().filter(|c| c.is_ascii_hexdigit()).map(|c| c.to_ascii_lowercase()).collect();
    sha256_hex(plain.as_bytes())
}

/// An API token as given to its holder once: `datum_<id>_<secret>`. Only the secret's SHA-256 is kept.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: String,
    pub token: String,
    secret_hash: String,
}

pub fn new_token() -> NewToken {
    let id = random_hex(8);
    let secret = random_hex(32);
    NewToken { token: format!("datum_{id}_{secret}"), secret_hash: sha256_hex(secret.as_bytes()), id }
}

/// Splits a presented token into id and secret; `None` when it cannot be one of ours.
fn parse_token(token: &str) -> Option<(&str, &str)> {
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
    fn as_str(self) -> &'static str {
        match self {
            Stage::Password => "password",
            Stage::Enroll => "enroll",
            Stage::Active => "active",
        }
    }
    fn parse(s: &str) -> Option<Stage> {
        [Stage::Password, Stage::Enroll, Stage::Active].into_iter().find(|st| st.as_str() == s)
    }
}

fn auth_method(s: &str) -> Option<AuthMethod> {
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

/// The secrets database.
#[derive(Clone)]
pub struct AuthStore {
    pool: SqlitePool,
}

impl AuthStore {
    /// Opens (creating it and running migrations when needed) the secrets database in `dir`.
    pub async fn open(dir: &Path) -> Result<AuthStore, AuthError> {
        let path = dir.join(AUTH_DB);
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(db("parse database path"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new().max_connections(2).connect_with(options).await.map_err(db("open"))?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| AuthError::Db { context: "migrate", detail: e.to_string() })?;
        Ok(AuthStore { pool })
    }

    pub async fn close(self) {
        self.pool.close().await;
    }

    pub async fn set_password(&self, user: &str, password: &str, now: DateTime<Utc>) -> Result<(), AuthError> {
        check_new_password(password)?;
        let phc = hash_password(password)?;
        sqlx::query(
            "INSERT INTO credentials (user, password_hash, updated_at) VALUES (?, ?, ?) \
             ON CONFLICT (user) DO UPDATE SET password_hash = excluded.password_hash, updated_at = excluded.updated_at",
        )
        .bind(user)
        .bind(phc)
        .bind(now.to_rfc3339())
        .execute(&self.pool)
        .await
        .map_err(db("store password"))?;
        // A new password ends every session of the account.
        self.end_sessions_of(user).await
    }

    pub async fn has_password(&self, user: &str) -> Result<bool, AuthError> {
        Ok(self.password_hash(user).await?.is_some())
    }

    async fn password_hash(&self, user: &str) -> Result<Option<String>, AuthError> {
        let row: Option<Option<String>> = sqlx::query_scalar("SELECT password_hash FROM credentials WHERE user = ?")
            .bind(user)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read password"))?;
        Ok(row.flatten())
    }

    pub async fn has_totp(&self, user: &str) -> Result<bool, AuthError> {
        let row: Option<Option<Vec<u8>>> = sqlx::query_scalar("SELECT totp_secret FROM credentials WHERE user = ?")
            .bind(user)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read second factor"))?;
        Ok(row.flatten().is_some())
    }

    /// Stores a confirmed TOTP secret and fresh recovery codes (returned once, stored hashed).
    pub async fn enroll_totp(
        &self,
        user: &str,
        secret: &[u8],
        first_step: u64,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, AuthError> {
        let codes = new_recovery_codes();
        let mut tx = self.pool.begin().await.map_err(db("begin"))?;
        sqlx::query(
            "INSERT INTO credentials (user, totp_secret, totp_last_step, updated_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (user) DO UPDATE SET totp_secret = excluded.totp_secret, \
             totp_last_step = excluded.totp_last_step, updated_at = excluded.updated_at",
        )
        .bind(user)
        .bind(secret)
        .bind(i64::try_from(first_step).unwrap_or(i64::MAX))
        .bind(now.to_rfc3339())
        .execute(&mut *tx)
        .await
        .map_err(db("store second factor"))?;
        sqlx::query("DELETE FROM recovery_codes WHERE user = ?")
            .bind(user)
            .execute(&mut *tx)
            .await
            .map_err(db("replace recovery codes"))?;
        for code in &codes {
            sqlx::query("INSERT INTO recovery_codes (user, code_hash) VALUES (?, ?)")
                .bind(user)
                .bind(recovery_hash(code))
                .execute(&mut *tx)
                .await
                .map_err(db("store recovery codes"))?;
        }
        tx.commit().await.map_err(db("commit"))?;
        Ok(codes)
    }

    /// Removes the second factor and recovery codes (`user mfa reset`) and ends the account's sessions.
    pub async fn reset_mfa(&self, user: &str) -> Result<(), AuthError> {
        sqlx::query("UPDATE credentials SET totp_secret = NULL, totp_last_step = NULL WHERE user = ?")
            .bind(user)
            .execute(&self.pool)
            .await
            .map_err(db("reset second factor"))?;
        sqlx::query("DELETE FROM recovery_codes WHERE user = ?")
            .bind(user)
            .execute(&self.pool)
            .await
            .map_err(db("reset recovery codes"))?;
        self.end_sessions_of(user).await
    }

    /// Checks a TOTP code (or, when it looks like one, a recovery code, which is then spent). A code's time
    /// step is recorded atomically, so the same code cannot be used twice, even by two requests at once.
    pub async fn check_second_factor(&self, user: &str, code: &str, now: DateTime<Utc>) -> Result<(), LoginRefused> {
        let code = code.trim();
        let fail = |why: &str| LoginRefused::SecondFactor(why.to_string());
        if code.len() > 6 {
            let spent = sqlx::query(
                "UPDATE recovery_codes SET used_at = ? WHERE user = ? AND code_hash = ? AND used_at IS NULL",
            )
            .bind(now.to_rfc3339())
            .bind(user)
            .bind(recovery_hash(code))
            .execute(&self.pool)
            .await
            .map_err(|_| fail("the second factor could not be checked"))?;
            return if spent.rows_affected() == 1 { Ok(()) } else { Err(fail("the recovery code is wrong or used")) };
        }
        let row = sqlx::query("SELECT totp_secret, totp_last_step FROM credentials WHERE user = ?")
            .bind(user)
            .fetch_optional(&self.pool)
            .await
            .map_err(|_| fail("the second factor could not be checked"))?;
        let Some(row) = row else { return Err(fail("no second factor is set up")) };
        let secret: Option<Vec<u8>> = row.get(0);
        let last: Option<i64> = row.get(1);
        let Some(secret) = secret else { return Err(fail("no second factor is set up")) };
        let last = last.and_then(|l| u64::try_from(l).ok());
        let step = totp::verify(&secret, code, now.timestamp(), last).map_err(|e| fail(&e.to_string()))?;
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        let moved = sqlx::query(
            "UPDATE credentials SET totp_last_step = ? WHERE user = ? AND (totp_last_step IS NULL OR totp_last_step < ?)",
        )
        .bind(step)
        .bind(user)
        .bind(step)
        .execute(&self.pool)
        .await
        .map_err(|_| fail("the second factor could not be checked"))?;
        if moved.rows_affected() == 1 {
            Ok(())
        } else {
            Err(fail(&totp::TotpError::Replayed.to_string()))
        }
    }

    /// The time still to wait before this scope may try again, if any.
    async fn locked_for(&self, scope: &str, now: DateTime<Utc>) -> Result<Option<Duration>, AuthError> {
        let row = sqlx::query("SELECT failures, last_at FROM login_failures WHERE scope = ?")
            .bind(scope)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read failures"))?;
        let Some(row) = row else { return Ok(None) };
        let failures: i64 = row.get(0);
        let last_at: i64 = row.get(1);
        let wait = lockout_after(u32::try_from(failures).unwrap_or(u32::MAX));
        let until = last_at.saturating_add(i64::try_from(wait.as_secs()).unwrap_or(i64::MAX));
        let now = now.timestamp();
        Ok((now < until).then(|| Duration::from_secs(u64::try_from(until - now).unwrap_or(0))))
    }

    async fn record_failure(&self, scope: &str, now: DateTime<Utc>) -> Result<(), AuthError> {
        sqlx::query(
            "INSERT INTO login_failures (scope, failures, last_at) VALUES (?, 1, ?) \
             ON CONFLICT (scope) DO UPDATE SET failures = failures + 1, last_at = excluded.last_at",
        )
        .bind(scope)
        .bind(now.timestamp())
        .execute(&self.pool)
        .await
        .map_err(db("record failure"))?;
        Ok(())
    }

    async fn clear_failures(&self, scope: &str) -> Result<(), AuthError> {
        sqlx::query("DELETE FROM login_failures WHERE scope = ?")
            .bind(scope)
            .execute(&self.pool)
            .await
            .map_err(db("clear failures"))?;
        Ok(())
    }

    /// The password step of a sign-in, with the lockout per account and per source address. `user` is the
    /// account's record when one by that name exists.
    pub async fn check_password(
        &self,
        name: &str,
        user: Option<&User>,
        password: &str,
        source: IpAddr,
        now: DateTime<Utc>,
    ) -> Result<Result<(), LoginRefused>, AuthError> {
        let scopes = [format!("user:{name}"), format!("addr:{source}")];
        for scope in &scopes {
            if let Some(wait) = self.locked_for(scope, now).await? {
                return Ok(Err(LoginRefused::Locked(wait)));
            }
        }
        let stored = match user {
            Some(u) if !u.disabled => self.password_hash(&u.name).await?,
            _ => None,
        };
        let ok = match &stored {
            Some(phc) => verify_password(password, phc),
            None => {
                verify_nothing(password);
                false
            }
        };
        if !ok {
            for scope in &scopes {
                self.record_failure(scope, now).await?;
            }
            return Ok(Err(LoginRefused::Invalid));
        }
        for scope in &scopes {
            self.clear_failures(scope).await?;
        }
        Ok(Ok(()))
    }

    /// Records a failed second factor against the account and the address (the same back-off as passwords).
    pub async fn second_factor_failed(&self, name: &str, source: IpAddr, now: DateTime<Utc>) -> Result<(), AuthError> {
        self.record_failure(&format!("user:{name}"), now).await?;
        self.record_failure(&format!("addr:{source}"), now).await
    }

    /// Whether the account or address is locked out now.
    pub async fn lockout(&self, name: &str, source: IpAddr, now: DateTime<Utc>) -> Result<Option<Duration>, AuthError> {
        for scope in [format!("user:{name}"), format!("addr:{source}")] {
            if let Some(wait) = self.locked_for(&scope, now).await? {
                return Ok(Some(wait));
            }
        }
        Ok(None)
    }

    // --- API tokens ---

    pub async fn create_token(
        &self,
        user: &str,
        created_by: &str,
        now: DateTime<Utc>,
        expires: Option<DateTime<Utc>>,
    ) -> Result<NewToken, AuthError> {
        let token = new_token();
        sqlx::query(
            "INSERT INTO api_tokens (id, user, secret_hash, created_at, created_by, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&token.id)
        .bind(user)
        .bind(&token.secret_hash)
        .bind(now.to_rfc3339())
        .bind(created_by)
        .bind(expires.map(|e| e.to_rfc3339()))
        .execute(&self.pool)
        .await
        .map_err(db("store token"))?;
        Ok(token)
    }

    pub async fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenInfo>, AuthError> {
        let rows = sqlx::query(
            "SELECT id, user, created_at, created_by, expires_at, revoked_at, last_used_at FROM api_tokens \
             WHERE (?1 IS NULL OR user = ?1) ORDER BY created_at, id",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await
        .map_err(db("list tokens"))?;
        Ok(rows
            .iter()
            .map(|r| TokenInfo {
                id: r.get(0),
                user: r.get(1),
                created_at: r.get(2),
                created_by: r.get(3),
                expires_at: r.get(4),
                revoked_at: r.get(5),
                last_used_at: r.get(6),
            })
            .collect())
    }

    /// Revokes a token; false when no unrevoked token has that id.
    pub async fn revoke_token(&self, id: &str, now: DateTime<Utc>) -> Result<bool, AuthError> {
        let done = sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(now.to_rfc3339())
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db("revoke token"))?;
        Ok(done.rows_affected() == 1)
    }

    /// The user a presented token acts as: `None` for an unknown, revoked or expired token.
    pub async fn token_user(&self, token: &str, now: DateTime<Utc>) -> Result<Option<String>, AuthError> {
        let Some((id, secret)) = parse_token(token) else { return Ok(None) };
        let row = sqlx::query("SELECT user, secret_hash, expires_at, revoked_at FROM api_tokens WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read token"))?;
        let Some(row) = row else { return Ok(None) };
        let hash: String = row.get(1);
        let expires: Option<String> = row.get(2);
        let revoked: Option<String> = row.get(3);
        if revoked.is_some() || hash != sha256_hex(secret.as_bytes()) {
            return Ok(None);
        }
        if let Some(expires) = expires {
            match DateTime::parse_from_rfc3339(&expires) {
                Ok(at) if at.with_timezone(&Utc) > now => {}
                _ => return Ok(None),
            }
        }
        // Best effort: a read-only moment must not refuse a good token.
        let _ = sqlx::query("UPDATE api_tokens SET last_used_at = ? WHERE id = ?")
            .bind(now.to_rfc3339())
            .bind(id)
            .execute(&self.pool)
            .await;
        Ok(Some(row.get(0)))
    }

    // --- web sessions ---

    /// Starts a session (a new id every time: no fixation) and returns the cookie value.
    pub async fn start_session(
        &self,
        user: &str,
        stage: Stage,
        auth: AuthMethod,
        now: DateTime<Utc>,
    ) -> Result<String, AuthError> {
        let id = random_hex(32);
        sqlx::query(
            "INSERT INTO web_sessions (id_hash, user, stage, auth, csrf, created_at, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(sha256_hex(id.as_bytes()))
        .bind(user)
        .bind(stage.as_str())
        .bind(auth.as_str())
        .bind(random_hex(32))
        .bind(now.timestamp())
        .bind(now.timestamp())
        .execute(&self.pool)
        .await
        .map_err(db("start session"))?;
        Ok(id)
    }

    /// The live session behind a cookie value, its idle clock moved on; `None` (and the row gone) when it is
    /// unknown or timed out.
    pub async fn session(
        &self,
        id: &str,
        now: DateTime<Utc>,
        limits: SessionLimits,
    ) -> Result<Option<SessionRow>, AuthError> {
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let hash = sha256_hex(id.as_bytes());
        let row = sqlx::query(
            "SELECT user, stage, auth, csrf, created_at, last_seen, pending_secret FROM web_sessions WHERE id_hash = ?",
        )
        .bind(&hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("read session"))?;
        let Some(row) = row else { return Ok(None) };
        let stage: String = row.get(1);
        let auth: String = row.get(2);
        let (Some(stage), Some(auth)) = (Stage::parse(&stage), auth_method(&auth)) else {
            return Ok(None);
        };
        let session = SessionRow {
            user: row.get(0),
            stage,
            auth,
            csrf: row.get(3),
            created_at: row.get(4),
            last_seen: row.get(5),
            pending_secret: row.get(6),
        };
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        // A session still signing in gets five minutes, however long the limits.
        let idle = if stage == Stage::Active { secs(limits.idle) } else { secs(limits.idle).min(300) };
        let t = now.timestamp();
        if t - session.last_seen > idle || t - session.created_at > secs(limits.absolute) {
            self.end_session_hash(&hash).await?;
            return Ok(None);
        }
        sqlx::query("UPDATE web_sessions SET last_seen = ? WHERE id_hash = ?")
            .bind(t)
            .bind(&hash)
            .execute(&self.pool)
            .await
            .map_err(db("touch session"))?;
        Ok(Some(session))
    }

    pub async fn set_pending_secret(&self, id: &str, secret: &[u8]) -> Result<(), AuthError> {
        sqlx::query("UPDATE web_sessions SET pending_secret = ? WHERE id_hash = ?")
            .bind(secret)
            .bind(sha256_hex(id.as_bytes()))
            .execute(&self.pool)
            .await
            .map_err(db("store pending secret"))?;
        Ok(())
    }

    pub async fn end_session(&self, id: &str) -> Result<(), AuthError> {
        self.end_session_hash(&sha256_hex(id.as_bytes())).await
    }

    async fn end_session_hash(&self, hash: &str) -> Result<(), AuthError> {
        sqlx::query("DELETE FROM web_sessions WHERE id_hash = ?")
            .bind(hash)
            .execute(&self.pool)
            .await
            .map_err(db("end session"))?;
        Ok(())
    }

    /// Log out everywhere.
    pub async fn end_sessions_of(&self, user: &str) -> Result<(), AuthError> {
        sqlx::query("DELETE FROM web_sessions WHERE user = ?")
            .bind(user)
            .execute(&self.pool)
            .await
            .map_err(db("end sessions"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
