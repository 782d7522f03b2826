//! The hub's database: the only module with SQL. One schema, two engines — SQLite (embedded default) and
//! PostgreSQL — through sqlx's `Any` driver; every statement is written in the common dialect (`$n`
//! parameters, `ON CONFLICT`), and the test suite runs against both.
//!
//! Multi-row changes (an enrollment, a stored document piece with its receipts) happen in one transaction.

use std::path::Path;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Row};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Invalid(String),
    #[error("the hub database {path} is damaged: {why}; restore it from a backup (nothing was changed)")]
    Damaged { path: String, why: String },
}

type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SiteRow {
    /// The identifier (in certificates and the edge's site record).
    pub name: String,
    /// The name people use, when it differs from the identifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    pub site_id: Option<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
    pub last_contact: Option<String>,
    pub last_synced: Option<String>,
    pub last_result: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeRow {
    pub fingerprint: String,
    pub node: String,
    pub site: String,
    pub issued_at: String,
    pub not_after: String,
    pub replaced_by: Option<String>,
}

/// Why a token was not accepted. Data, not an error: the caller turns it into a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    Valid { site: String },
    Unknown,
    Used,
    Expired,
}

/// A stored piece of a document (automerge `save_after` bytes), its new heads, and who sent which change.
#[derive(Debug, Clone, Copy)]
pub struct DocPiece<'a> {
    pub doc_id: &'a str,
    pub site_id: Option<&'a str>,
    pub bytes: &'a [u8],
    pub heads: &'a [String],
    pub receipts: &'a [String],
    pub node: &'a str,
    pub now: DateTime<Utc>,
}

/// The newest audit entry a site presented in a confirmed session (see `datum_shared::sync::witness`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditHeadRow {
    pub seq: u64,
    pub hash: String,
    pub signature: String,
    pub node: String,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobState {
    pub hash: String,
    pub received: u64,
}

pub struct Store {
    pool: AnyPool,
}

impl Store {
    /// Opens (and migrates) the database: a `postgres://` URL, or the SQLite file `path`.
    pub async fn open(url: Option<&str>, sqlite_path: &Path, create: bool) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let (url, postgres) = match url {
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => (u.to_string(), true),
            Some(u) => return Err(StoreError::Invalid(format!("unsupported database URL {u:?} (use postgres://…)"))),
            None => {
                if !create && !sqlite_path.exists() {
                    return Err(StoreError::Invalid(format!("no hub database at {}", sqlite_path.display())));
                }
                if sqlite_path.exists() {
                    check_sqlite_file(sqlite_path)?;
                }
                let mode = if create { "rwc" } else { "rw" };
                (format!("sqlite://{}?mode={mode}", sqlite_path.display()), false)
            }
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if postgres { 8 } else { 1 })
            // A local file answers at once or not at all: fail within seconds, not after the 30 s default.
            .acquire_timeout(std::time::Duration::from_secs(if postgres { 30 } else { 2 }))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if !postgres {
                        for pragma in
                            ["PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL", "PRAGMA foreign_keys = ON"]
                        {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                        sqlx::query("PRAGMA busy_timeout = 10000").execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| damage_or(e.into(), postgres, sqlite_path))?;
        let migrated = if postgres {
            sqlx::migrate!("migrations/postgres").run(&pool).await
        } else {
            sqlx::migrate!("migrations/sqlite").run(&pool).await
        };
        migrated.map_err(|e| damage_or(e.into(), postgres, sqlite_path))?;
        Ok(Store { pool })
    }

    /// Fails unless the database holds a hub (`init` wrote its identity): an emptied or replaced database must
    /// not be served as a hub with no sites.
    pub async fn check_holds_hub(&self, shown: &str) -> Result<()> {
        let damaged = |why: String| StoreError::Damaged { path: shown.to_string(), why };
        match self.meta("store_id").await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(damaged("it holds no hub identity (emptied or replaced?)".into())),
            Err(e) => Err(damaged(e.to_string())),
        }
    }

    pub async fn close(self) {
        self.pool.close().await;
    }

    pub async fn meta(&self, key: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM meta WHERE key = $1").bind(key).fetch_optional(&self.pool).await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    pub async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = $2")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- sites, tokens, nodes ----

    /// Adds a site with its first token. Returns false if the name is taken.
    pub async fn add_site(
        &self,
        name: &str,
        display: Option<&str>,
        token_hash: &str,
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO sites (name, created_at, display) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(now.to_rfc3339())
        .bind(display)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        insert_token(&mut tx, name, token_hash, now, expires).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn add_token(
        &self,
        site: &str,
        token_hash: &str,
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_token(&mut tx, site, token_hash, now, expires).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn site(&self, name: &str) -> Result<Option<SiteRow>> {
        let row = sqlx::query(&format!("{SITE_COLUMNS} WHERE name = $1")).bind(name).fetch_optional(&self.pool).await?;
        row.map(|r| site_row(&r)).transpose()
    }

    pub async fn sites(&self) -> Result<Vec<SiteRow>> {
        let rows = sqlx::query(&format!("{SITE_COLUMNS} ORDER BY name")).fetch_all(&self.pool).await?;
        rows.iter().map(site_row).collect()
    }

    pub async fn revoke_site(&self, name: &str, now: DateTime<Utc>) -> Result<bool> {
        let n = sqlx::query("UPDATE sites SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL")
            .bind(name)
            .bind(now.to_rfc3339())
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    pub async fn revoked_sites(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT name FROM sites WHERE revoked_at IS NOT NULL").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    pub async fn check_token(&self, token_hash: &str, now: DateTime<Utc>) -> Result<TokenCheck> {
        let row = sqlx::query("SELECT site, expires_at, used_at FROM tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(TokenCheck::Unknown) };
        let used: Option<String> = row.try_get(2)?;
        if used.is_some() {
            return Ok(TokenCheck::Used);
        }
        let expires: String = row.try_get(1)?;
        if parse_time(&expires)? <= now {
            return Ok(TokenCheck::Expired);
        }
        Ok(TokenCheck::Valid { site: row.try_get(0)? })
    }

    /// Enrollment in one transaction: the token is consumed (only if still unused), the site bound to the
    /// edge's site id (only if unbound or equal), the node recorded. Returns a refusal reason instead.
    /// `restore`: the node rebuilds the site from the hub and starts a new audit chain, so the audit head
    /// witnessed for the site is forgotten in the same transaction.
    pub async fn enroll(
        &self,
        token_hash: &str,
        site: &str,
        site_id: &str,
        node: &NodeRow,
        now: DateTime<Utc>,
        restore: bool,
    ) -> Result<std::result::Result<(), String>> {
        let mut tx = self.pool.begin().await?;
        let used =
            sqlx::query("UPDATE tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND site = $3")
                .bind(token_hash)
                .bind(now.to_rfc3339())
                .bind(site)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if used != 1 {
            return Ok(Err("the enrollment token was used meanwhile".into()));
        }
        let bound = sqlx::query(
            "UPDATE sites SET site_id = $2 WHERE name = $1 AND revoked_at IS NULL AND (site_id IS NULL OR site_id = $2)",
        )
        .bind(site)
        .bind(site_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if bound != 1 {
            return Ok(Err(format!(
                "site {site} is revoked or already belongs to another site id; a replacement edge must be rebuilt \
                 with `datum-edge restore-from-hub`"
            )));
        }
        // A new node starts without cursors, even under a name used before (they would claim it holds
        // documents it has never seen).
        sqlx::query("DELETE FROM sync_states WHERE peer = $1")
            .bind(peer_key(&node.site, &node.node))
            .execute(&mut *tx)
            .await?;
        if restore {
            sqlx::query("DELETE FROM audit_heads WHERE site = $1").bind(site).execute(&mut *tx).await?;
        }
        sqlx::query("UPDATE nodes SET replaced_by = $2 WHERE site = $1 AND replaced_by IS NULL")
            .bind(site)
            .bind(&node.fingerprint)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO nodes (fingerprint, node, site, issued_at, not_after) VALUES ($1, $2, $3, $4, $5)")
            .bind(&node.fingerprint)
            .bind(&node.node)
            .bind(site)
            .bind(&node.issued_at)
            .bind(&node.not_after)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// A renewed certificate of a known node.
    pub async fn add_renewed_cert(&self, old_fingerprint: &str, node: &NodeRow) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO nodes (fingerprint, node, site, issued_at, not_after) VALUES ($1, $2, $3, $4, $5)")
            .bind(&node.fingerprint)
            .bind(&node.node)
            .bind(&node.site)
            .bind(&node.issued_at)
            .bind(&node.not_after)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE nodes SET replaced_by = $2 WHERE fingerprint = $1")
            .bind(old_fingerprint)
            .bind(&node.fingerprint)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn node_by_cert(&self, fingerprint: &str) -> Result<Option<NodeRow>> {
        let row = sqlx::query(
            "SELECT fingerprint, node, site, issued_at, not_after, replaced_by FROM nodes WHERE fingerprint = $1",
        )
        .bind(fingerprint)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| node_row(&r)).transpose()
    }

    pub async fn nodes_of(&self, site: &str) -> Result<Vec<NodeRow>> {
        let rows = sqlx::query(
            "SELECT fingerprint, node, site, issued_at, not_after, replaced_by FROM nodes WHERE site = $1 ORDER BY issued_at",
        )
        .bind(site)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(node_row).collect()
    }

    pub async fn touch_site(&self, site: &str, now: DateTime<Utc>, result: &str, synced: bool) -> Result<()> {
        let sql = if synced {
            "UPDATE sites SET last_contact = $2, last_result = $3, last_synced = $2 WHERE name = $1"
        } else {
            "UPDATE sites SET last_contact = $2, last_result = $3 WHERE name = $1"
        };
        sqlx::query(sql).bind(site).bind(now.to_rfc3339()).bind(result).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn record_violation(&self, site: &str, node: &str, reason: &str, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("INSERT INTO violations (at, site, node, reason) VALUES ($1, $2, $3, $4)")
            .bind(now.to_rfc3339())
            .bind(site)
            .bind(node)
            .bind(reason)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn violations(&self, site: &str) -> Result<Vec<(String, String, String)>> {
        let rows = sqlx::query("SELECT at, node, reason FROM violations WHERE site = $1 ORDER BY at")
            .bind(site)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).collect()
    }

    // ---- audit witness ----

    /// The newest audit entry the site presented in a confirmed session, if any.
    pub async fn audit_head(&self, site: &str) -> Result<Option<AuditHeadRow>> {
        let row = sqlx::query("SELECT seq, hash, signature, node, at FROM audit_heads WHERE site = $1")
            .bind(site)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            let seq: i64 = r.try_get(0)?;
            Ok(AuditHeadRow {
                seq: u64::try_from(seq).map_err(|_| StoreError::Invalid(format!("audit head number {seq}")))?,
                hash: r.try_get(1)?,
                signature: r.try_get(2)?,
                node: r.try_get(3)?,
                at: r.try_get(4)?,
            })
        })
        .transpose()
    }

    /// Keeps `head` as the site's witnessed audit head unless a newer one is held already (two sessions never
    /// run at once for a site, but the rule is kept by the statement, not by that).
    pub async fn witness_audit_head(&self, site: &str, head: &AuditHeadRow) -> Result<()> {
        let seq =
            i64::try_from(head.seq).map_err(|_| StoreError::Invalid(format!("audit head number {}", head.seq)))?;
        sqlx::query(
            "INSERT INTO audit_heads (site, seq, hash, signature, node, at) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (site) DO UPDATE SET seq = $2, hash = $3, signature = $4, node = $5, at = $6
             WHERE audit_heads.seq < $2",
        )
        .bind(site)
        .bind(seq)
        .bind(&head.hash)
        .bind(&head.signature)
        .bind(&head.node)
        .bind(&head.at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ---- documents ----

    /// (document, heads as hex) of every document of a site, plus the hub's own documents.
    pub async fn doc_heads(&self, site_id: &str) -> Result<Vec<(String, Vec<String>)>> {
        let rows = sqlx::query("SELECT doc_id, heads FROM docs WHERE site_id = $1 OR site_id IS NULL ORDER BY doc_id")
            .bind(site_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let heads: String = r.try_get(1)?;
                Ok((r.try_get(0)?, heads.split(',').filter(|h| !h.is_empty()).map(str::to_string).collect()))
            })
            .collect()
    }

    pub async fn doc_chunks(&self, doc_id: &str) -> Result<Vec<Vec<u8>>> {
        let rows = sqlx::query("SELECT bytes FROM doc_chunks WHERE doc_id = $1 ORDER BY seq")
            .bind(doc_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Appends a piece of a document with the receipts of its changes, in one transaction.
    pub async fn append_doc(&self, piece: &DocPiece<'_>) -> Result<()> {
        let DocPiece { doc_id, site_id, bytes, heads, receipts, node, now } = *piece;
        let mut tx = self.pool.begin().await?;
        let row =
            sqlx::query("SELECT n_chunks FROM docs WHERE doc_id = $1").bind(doc_id).fetch_optional(&mut *tx).await?;
        let seq: i64 = match row {
            Some(r) => r.try_get::<i64, _>(0)? + 1,
            None => 1,
        };
        sqlx::query("INSERT INTO doc_chunks (doc_id, seq, bytes) VALUES ($1, $2, $3)")
            .bind(doc_id)
            .bind(seq)
            .bind(bytes.to_vec())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO docs (doc_id, site_id, heads, n_chunks, updated_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (doc_id) DO UPDATE SET heads = $3, n_chunks = $4, updated_at = $5",
        )
        .bind(doc_id)
        .bind(site_id.map(str::to_string))
        .bind(heads.join(","))
        .bind(seq)
        .bind(now.to_rfc3339())
        .execute(&mut *tx)
        .await?;
        for change in receipts {
            sqlx::query(
                "INSERT INTO receipts (doc_id, change_hash, node, at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(doc_id)
            .bind(change)
            .bind(node)
            .bind(now.to_rfc3339())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn receipts(&self, doc_id: &str) -> Result<Vec<(String, String, String)>> {
        let rows = sqlx::query("SELECT change_hash, node, at FROM receipts WHERE doc_id = $1 ORDER BY at, change_hash")
            .bind(doc_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).collect()
    }

    pub async fn sync_states(&self, peer: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let rows = sqlx::query("SELECT doc_id, state FROM sync_states WHERE peer = $1")
            .bind(peer)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    pub async fn save_sync_states(&self, peer: &str, states: &[(String, Vec<u8>)]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (doc, state) in states {
            sqlx::query(
                "INSERT INTO sync_states (peer, doc_id, state) VALUES ($1, $2, $3)
                 ON CONFLICT (peer, doc_id) DO UPDATE SET state = $3",
            )
            .bind(peer)
            .bind(doc)
            .bind(state.clone())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Replaces the projection rows of one document.
    pub async fn project(&self, site_id: &str, doc_id: &str, rows: &[(String, String, String)]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM records WHERE doc_id = $1").bind(doc_id).execute(&mut *tx).await?;
        for (collection, key, json) in rows {
            sqlx::query(
                "INSERT INTO records (site_id, doc_id, collection, rkey, json) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (site_id, collection, rkey) DO UPDATE SET doc_id = $2, json = $5",
            )
            .bind(site_id)
            .bind(doc_id)
            .bind(collection)
            .bind(key)
            .bind(json)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// (site id, key, json) of one collection, of one site or all.
    pub async fn records(&self, collection: &str, site_id: Option<&str>) -> Result<Vec<(String, String, String)>> {
        let rows = match site_id {
            Some(s) => sqlx::query(
                "SELECT site_id, rkey, json FROM records WHERE collection = $1 AND site_id = $2 ORDER BY site_id, rkey",
            )
            .bind(collection)
            .bind(s)
            .fetch_all(&self.pool)
            .await?,
            None => {
                sqlx::query("SELECT site_id, rkey, json FROM records WHERE collection = $1 ORDER BY site_id, rkey")
                    .bind(collection)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).collect()
    }

    // ---- configuration files ----

    /// Registers referenced files of a site (unknown ones become wanted) and returns every incomplete file of
    /// the site with the bytes already received.
    pub async fn want_blobs(&self, site_id: &str, referenced: &[String]) -> Result<Vec<BlobState>> {
        let mut tx = self.pool.begin().await?;
        for hash in referenced {
            sqlx::query(
                "INSERT INTO blobs (hash, site_id, size, received, complete) VALUES ($1, $2, 0, 0, 0)
                 ON CONFLICT (hash) DO NOTHING",
            )
            .bind(hash)
            .bind(site_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO blob_sites (hash, site_id) VALUES ($1, $2) ON CONFLICT (hash, site_id) DO NOTHING",
            )
            .bind(hash)
            .bind(site_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let rows = sqlx::query(
            "SELECT b.hash, b.received FROM blobs b JOIN blob_sites s ON s.hash = b.hash
             WHERE s.site_id = $1 AND b.complete = 0 ORDER BY b.hash",
        )
        .bind(site_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(BlobState { hash: r.try_get(0)?, received: r.try_get::<i64, _>(1)? as u64 })).collect()
    }

    /// Appends a piece at `pos` (which must equal the bytes received so far).
    pub async fn append_blob(&self, hash: &str, pos: u64, total: u64, bytes: &[u8]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let n =
            sqlx::query("UPDATE blobs SET received = $2, size = $3 WHERE hash = $1 AND received = $4 AND complete = 0")
                .bind(hash)
                .bind((pos + bytes.len() as u64) as i64)
                .bind(total as i64)
                .bind(pos as i64)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if n != 1 {
            return Err(StoreError::Invalid(format!("file {hash}: piece at {pos} does not continue what is stored")));
        }
        sqlx::query("INSERT INTO blob_chunks (hash, pos, bytes) VALUES ($1, $2, $3)")
            .bind(hash)
            .bind(pos as i64)
            .bind(bytes.to_vec())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The size of a completely stored file that belongs to a site (its documents refer to it; identical files
    /// of two sites are stored once). `None` otherwise.
    pub async fn site_blob_size(&self, site_id: &str, hash: &str) -> Result<Option<u64>> {
        if !datum_shared::sync::wire::is_blob_hash(hash) {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT b.size FROM blobs b JOIN blob_sites s ON s.hash = b.hash
             WHERE b.hash = $1 AND s.site_id = $2 AND b.complete = 1",
        )
        .bind(hash)
        .bind(site_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok(r.try_get::<i64, _>(0)? as u64)).transpose()
    }

    /// The pieces of a file, in order.
    pub async fn blob_pieces(&self, hash: &str) -> Result<Vec<Vec<u8>>> {
        let rows = sqlx::query("SELECT bytes FROM blob_chunks WHERE hash = $1 ORDER BY pos")
            .bind(hash)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    pub async fn complete_blob(&self, hash: &str) -> Result<()> {
        sqlx::query("UPDATE blobs SET complete = 1 WHERE hash = $1").bind(hash).execute(&self.pool).await?;
        Ok(())
    }

    /// A damaged transfer starts over.
    pub async fn reset_blob(&self, hash: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM blob_chunks WHERE hash = $1").bind(hash).execute(&mut *tx).await?;
        sqlx::query("UPDATE blobs SET received = 0 WHERE hash = $1").bind(hash).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// (files complete, files incomplete, bytes complete) of a site.
    pub async fn blob_counts(&self, site_id: &str) -> Result<(i64, i64, i64)> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(b.complete), 0) AS BIGINT), CAST(COALESCE(SUM(1 - b.complete), 0) AS BIGINT),
                    CAST(COALESCE(SUM(b.size * b.complete), 0) AS BIGINT)
             FROM blobs b JOIN blob_sites s ON s.hash = b.hash WHERE s.site_id = $1",
        )
        .bind(site_id)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
    }
}

/// The key of a node's sync cursors: node names are unique only within their site.
pub fn peer_key(site: &str, node: &str) -> String {
    format!("{site}/{node}")
}

const SITE_COLUMNS: &str =
    "SELECT name, site_id, created_at, revoked_at, last_contact, last_synced, last_result, display FROM sites";

fn node_row(r: &sqlx::any::AnyRow) -> Result<NodeRow> {
    Ok(NodeRow {
        fingerprint: r.try_get(0)?,
        node: r.try_get(1)?,
        site: r.try_get(2)?,
        issued_at: r.try_get(3)?,
        not_after: r.try_get(4)?,
        replaced_by: r.try_get(5)?,
    })
}

fn site_row(r: &sqlx::any::AnyRow) -> Result<SiteRow> {
    Ok(SiteRow {
        name: r.try_get(0)?,
        display: r.try_get(7)?,
        site_id: r.try_get(1)?,
        created_at: r.try_get(2)?,
        revoked_at: r.try_get(3)?,
        last_contact: r.try_get(4)?,
        last_synced: r.try_get(5)?,
        last_result: r.try_get(6)?,
    })
}

async fn insert_token(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    site: &str,
    token_hash: &str,
    now: DateTime<Utc>,
    expires: DateTime<Utc>,
) -> Result<()> {
    sqlx::query("INSERT INTO tokens (token_hash, site, created_at, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(token_hash)
        .bind(site)
        .bind(now.to_rfc3339())
        .bind(expires.to_rfc3339())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Invalid(format!("bad time {s:?} in the database: {e}")))
}

/// SQLite's words for a damaged file become `Damaged`; anything else stays as it is.
fn damage_or(e: StoreError, postgres: bool, path: &Path) -> StoreError {
    let text = e.to_string();
    if !postgres && (text.contains("malformed") || text.contains("not a database") || text.contains("corrupt")) {
        return StoreError::Damaged { path: path.display().to_string(), why: text };
    }
    e
}

/// Checks the SQLite file's header and length before opening it (see `datum_shared::dbfile`).
fn check_sqlite_file(path: &Path) -> Result<()> {
    use std::io::Read;
    let damaged = |why: String| StoreError::Damaged { path: path.display().to_string(), why };
    let mut file = std::fs::File::open(path).map_err(|e| damaged(e.to_string()))?;
    let len = file.metadata().map_err(|e| damaged(e.to_string()))?.len();
    let mut head = Vec::with_capacity(datum_shared::dbfile::HEADER_LEN);
    file.by_ref()
        .take(datum_shared::dbfile::HEADER_LEN as u64)
        .read_to_end(&mut head)
        .map_err(|e| damaged(e.to_string()))?;
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal_in_use = std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0);
    datum_shared::dbfile::check(&head, len, wal_in_use).map_err(damaged)
}
