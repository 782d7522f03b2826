//! The hub's database: the only module with SQL. One schema, two engines — SQLite (embedded default) and
//! PostgreSQL — through sqlx's `Any` driver; every statement is written in the common dialect (`$n`
//! parameters, `ON CONFLICT`), and the test suite runs against both.
//!
//! Multi-row changes (an enrollment, a stored document piece with its receipts) happen in one transaction.
//! This file opens the database and holds the row types; the statements are grouped by what they keep:
//! `sites` (sites, tokens, nodes, violations), `audit` (the audit heads witnessed), `docs` (document pieces,
//! cursors, receipts, the records projection), `blobs` (configuration files and which sites hold them),
//! `templates` (template drafts), `users` (the hub's people and its own record of what they did), `health`
//! (each site's state per day, for the dashboard's trends), `search` (the global search's index: FTS5 on
//! SQLite, full-text search on PostgreSQL).

use std::path::Path;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use datum_shared::ids::{IdError, NodeName, SiteId};
use datum_shared::sync::enrollment::TokenState;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Row};

mod audit;
mod blobs;
mod docs;
mod health;
mod migrations;
mod search;
mod sites;
mod templates;
mod users;

pub use health::HealthRow;
pub use search::{words_of, SearchRow};
pub use templates::DraftRow;

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
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
}

type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteRow {
    /// The identifier (in certificates and the edge's site record).
    pub name: String,
    /// The name people use, when it differs from the identifier.
    pub display: Option<String>,
    pub site_id: Option<SiteId>,
    pub created_at: String,
    pub revoked_at: Option<String>,
    pub last_contact: Option<String>,
    pub last_synced: Option<String>,
    pub last_result: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    pub fingerprint: String,
    pub node: NodeName,
    pub site: String,
    pub issued_at: String,
    pub not_after: String,
    pub replaced_by: Option<String>,
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

/// A piece of a file received from an edge, to be appended (`Store::append_blobs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobPiece {
    pub hash: String,
    pub pos: u64,
    pub total: u64,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobState {
    pub hash: String,
    pub received: u64,
}

/// A handle on the database (cheap to clone: the pool is shared).
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// Received files: `blobs/<aa>/<sha256>` complete, `blobs/partial/<sha256>` while arriving (beside the
    /// database, whichever engine holds it; `blobs.rs`).
    blob_dir: std::path::PathBuf,
    /// One file append at a time: two sites may send the same new file at once.
    appending: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// PostgreSQL, not SQLite: the one place the statements differ is the search (`search.rs`).
    postgres: bool,
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
            match migrations::postgres().await {
                Ok(migrator) => migrator.run(&pool).await,
                Err(e) => Err(e),
            }
        } else {
            migrations::SQLITE.run(&pool).await
        };
        migrated.map_err(|e| damage_or(e.into(), postgres, sqlite_path))?;
        let blob_dir = sqlite_path.parent().unwrap_or(Path::new(".")).join("blobs");
        Ok(Store { pool, blob_dir, appending: Default::default(), postgres })
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

    /// A transaction that writes. On SQLite it takes the write lock at its start (`BEGIN IMMEDIATE`): the serve
    /// loop and a command run beside it are two processes on one file, and a transaction that began with a read
    /// could not write once the other had committed meanwhile (`database is locked` at once, the busy timeout
    /// not consulted), where one that holds the lock from the start makes the other wait.
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.postgres {
            true => self.pool.begin().await?,
            false => self.pool.begin_with("BEGIN IMMEDIATE").await?,
        })
    }

    pub async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = $2")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Rows per multi-row `INSERT` (`multi_row_insert`): one statement for a few hundred rows instead of a round
/// trip per row, far below SQLite's (32,766) and PostgreSQL's (65,535) limits on parameters.
const ROWS_PER_INSERT: usize = 200;

/// `{insert} VALUES (…), (…) {tail}` for `rows` rows: the first `shared` parameters (`$1`…) are the same in every
/// row, and each row has `own` parameters of its own after them.
fn multi_row_insert(insert: &str, shared: usize, own: usize, rows: usize, tail: &str) -> String {
    let mut sql = format!("{insert} VALUES ");
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        let params = (1..=shared).chain((0..own).map(|i| shared + row * own + i + 1));
        sql.push_str(&params.map(|n| format!("${n}")).collect::<Vec<_>>().join(", "));
        sql.push(')');
    }
    if !tail.is_empty() {
        sql.push(' ');
        sql.push_str(tail);
    }
    sql
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
        node: typed("node name", r.try_get(1)?)?,
        site: r.try_get(2)?,
        issued_at: r.try_get(3)?,
        not_after: r.try_get(4)?,
        replaced_by: r.try_get(5)?,
    })
}

/// A value the hub validated before storing it, read back: one that does not parse is damage to report.
fn typed<T: FromStr<Err = IdError>>(what: &str, value: String) -> Result<T> {
    value.parse().map_err(|e: IdError| StoreError::Invalid(format!("the hub database holds a bad {what}: {e}")))
}

fn site_row(r: &sqlx::any::AnyRow) -> Result<SiteRow> {
    Ok(SiteRow {
        name: r.try_get(0)?,
        display: r.try_get(7)?,
        site_id: r.try_get::<Option<String>, _>(1)?.map(|id| typed("site id", id)).transpose()?,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_row_insert_numbers_shared_and_own_parameters() {
        assert_eq!(
            multi_row_insert("INSERT INTO t (a, b, c)", 1, 2, 2, "ON CONFLICT DO NOTHING"),
            "INSERT INTO t (a, b, c) VALUES ($1, $2, $3), ($1, $4, $5) ON CONFLICT DO NOTHING"
        );
        assert_eq!(multi_row_insert("INSERT INTO t (a, b)", 0, 2, 1, ""), "INSERT INTO t (a, b) VALUES ($1, $2)");
    }

    /// A command beside the serve loop: a writing transaction that began with a read still writes when another
    /// process commits in between; it waited for the lock instead.
    #[tokio::test]
    async fn a_write_transaction_holds_the_lock_from_its_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hub.db");
        let first = Store::open(None, &path, true).await.expect("open");
        let second = Store::open(None, &path, false).await.expect("open again");
        let mut tx = first.begin_write().await.expect("begin");
        sqlx::query("SELECT COUNT(*) FROM meta").fetch_one(&mut *tx).await.expect("read");
        let other = tokio::spawn(async move { second.set_meta("other", "2").await });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!other.is_finished(), "the other writer went ahead of an open write transaction");
        sqlx::query("INSERT INTO meta (key, value) VALUES ('first', '1')").execute(&mut *tx).await.expect("write");
        tx.commit().await.expect("commit");
        other.await.expect("join").expect("the other writer waited, then wrote");
        assert_eq!(first.meta("other").await.expect("meta").as_deref(), Some("2"));
        assert_eq!(first.meta("first").await.expect("meta").as_deref(), Some("1"));
    }
}
