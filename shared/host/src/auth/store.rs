//! The secrets database (`auth.db`): the only SQL of authentication.

use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use datum_shared::identity::{lockout_after, totp, AuthMethod, User};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use super::{
    auth_method, check_new_password, db, hash_password, new_recovery_codes, new_token, parse_token, random_hex,
    recovery_hash, sha256_hex, verify_nothing, verify_password, AuthError, LoginRefused, NewToken, SessionLimits,
    SessionRow, Stage, TokenInfo, AUTH_DB,
};

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
