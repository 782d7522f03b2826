//! The edge's SQLite database: document chunks, the records projection and the audit chain.
//!
//! This is the only module with SQL. Callers see `StoreError`, never `sqlx::Error`. The database runs in
//! WAL mode with `synchronous = FULL`; every operation's document chunks, projection rows and audit entry are
//! written in one transaction, so after a crash either all of an operation is there or none of it.

use std::path::Path;
use std::str::FromStr;

use datum_shared::audit::SignedEntry;
use datum_shared::DocId;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {context}: {detail}")]
    Db { context: &'static str, detail: String },
    #[error("database holds invalid data: {0}")]
    Corrupt(String),
}

fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| StoreError::Db { context, detail: e.to_string() }
}

/// Rows per multi-row INSERT: one statement costs ~90 µs in sqlx, so batching is what makes imports fast.
const BATCH_ROWS: usize = 300;

/// One projected record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRow {
    pub collection: String,
    pub key: String,
    pub doc_id: String,
    pub subject: String,
    pub json: String,
}

/// Everything one operation writes, applied in one transaction.
#[derive(Default)]
pub struct Batch {
    /// (document, incremental change bytes)
    pub chunks: Vec<(DocId, Vec<u8>)>,
    pub records: Vec<RecordRow>,
    pub audit: Option<SignedEntry>,
}

/// How a document is stored: its chunks, the highest sequence number, the bytes of its incremental chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkStats {
    pub chunks: i64,
    pub upto: i64,
    pub incremental_bytes: i64,
}

pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (and with `create`, creates) the database and runs embedded migrations.
    pub async fn open(path: &Path, create: bool) -> Result<Store, StoreError> {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(db("parse database path"))?
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.map_err(db("open"))?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Db { context: "migrate", detail: e.to_string() })?;
        Ok(Store { pool })
    }

    /// Opens the database for reading only, beside a writer if there is one (WAL readers see the last
    /// committed state and never wait for it). Writes through it fail. `None` when the schema needs a
    /// migration, which only a writer may run.
    pub async fn open_read_only(path: &Path) -> Result<Option<Store>, StoreError> {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(db("parse database path"))?
            .read_only(true)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.map_err(db("open"))?;
        let has_table: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'")
                .fetch_one(&pool)
                .await
                .map_err(db("read schema version"))?;
        let applied: Vec<i64> = if has_table == 0 {
            Vec::new()
        } else {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = 1")
                .fetch_all(&pool)
                .await
                .map_err(db("read schema version"))?
        };
        let pending = sqlx::migrate!("./migrations").iter().any(|m| !applied.contains(&m.version));
        if pending {
            pool.close().await;
            return Ok(None);
        }
        // One read transaction for the life of the reader: every query sees the same committed state, even
        // while a writer commits (a report never mixes two states).
        sqlx::query("BEGIN").execute(&pool).await.map_err(db("begin a read snapshot"))?;
        Ok(Some(Store { pool }))
    }

    pub async fn close(self) {
        self.pool.close().await;
    }

    pub async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read meta"))
    }

    pub async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await
        .map_err(db("write meta"))?;
        Ok(())
    }

    pub async fn doc_ids(&self) -> Result<Vec<DocId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar("SELECT DISTINCT doc_id FROM doc_chunks ORDER BY doc_id")
            .fetch_all(&self.pool)
            .await
            .map_err(db("list documents"))?;
        ids.into_iter().map(|id| DocId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string()))).collect()
    }

    /// A document's stored chunks in order (a snapshot, then incremental changes).
    pub async fn chunks(&self, doc: &DocId) -> Result<Vec<Vec<u8>>, StoreError> {
        sqlx::query_scalar("SELECT bytes FROM doc_chunks WHERE doc_id = ? ORDER BY seq")
            .bind(doc.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(db("read document"))
    }

    /// Number of chunks, the highest sequence number and the bytes of incremental chunks of a document.
    pub async fn chunk_stats(&self, doc: &DocId) -> Result<ChunkStats, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*), COALESCE(MAX(seq), 0), \
             COALESCE(SUM(CASE WHEN kind = 'snapshot' THEN 0 ELSE length(bytes) END), 0) \
             FROM doc_chunks WHERE doc_id = ?",
        )
        .bind(doc.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(db("count document chunks"))?;
        Ok(ChunkStats { chunks: col(&row, 0)?, upto: col(&row, 1)?, incremental_bytes: col(&row, 2)? })
    }

    /// Writes one operation atomically.
    pub async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db("begin"))?;
        for (doc, bytes) in &batch.chunks {
            sqlx::query(
                "INSERT INTO doc_chunks (doc_id, seq, kind, bytes) \
                 VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM doc_chunks WHERE doc_id = ?), 'incremental', ?)",
            )
            .bind(doc.as_str())
            .bind(doc.as_str())
            .bind(bytes)
            .execute(&mut *tx)
            .await
            .map_err(db("append document chunk"))?;
        }
        upsert_records(&mut tx, &batch.records).await?;
        if let Some(signed) = &batch.audit {
            insert_audit(&mut tx, signed).await?;
        }
        tx.commit().await.map_err(db("commit"))?;
        Ok(())
    }

    /// Replaces a document's chunks up to `upto_seq` by one snapshot.
    pub async fn compact(&self, doc: &DocId, snapshot: &[u8], upto_seq: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db("begin"))?;
        sqlx::query("DELETE FROM doc_chunks WHERE doc_id = ? AND seq <= ?")
            .bind(doc.as_str())
            .bind(upto_seq)
            .execute(&mut *tx)
            .await
            .map_err(db("compact document"))?;
        sqlx::query("INSERT INTO doc_chunks (doc_id, seq, kind, bytes) VALUES (?, ?, 'snapshot', ?)")
            .bind(doc.as_str())
            .bind(upto_seq)
            .bind(snapshot)
            .execute(&mut *tx)
            .await
            .map_err(db("compact document"))?;
        tx.commit().await.map_err(db("commit"))?;
        Ok(())
    }

    /// Replaces every document and projection (used when restoring a dump into an empty database).
    pub async fn import_snapshot(
        &self,
        docs: &[(DocId, Vec<u8>)],
        records: &[RecordRow],
        audit: &[SignedEntry],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db("begin"))?;
        for (doc, bytes) in docs {
            sqlx::query("INSERT INTO doc_chunks (doc_id, seq, kind, bytes) VALUES (?, 1, 'snapshot', ?)")
                .bind(doc.as_str())
                .bind(bytes)
                .execute(&mut *tx)
                .await
                .map_err(db("import document"))?;
        }
        upsert_records(&mut tx, records).await?;
        for entry in audit {
            insert_audit(&mut tx, entry).await?;
        }
        tx.commit().await.map_err(db("commit"))?;
        Ok(())
    }

    /// Saved per-peer sync states (document id → encoded automerge `sync::State`).
    pub async fn sync_states(&self, peer: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let rows = sqlx::query("SELECT doc_id, state FROM sync_states WHERE peer = ?")
            .bind(peer)
            .fetch_all(&self.pool)
            .await
            .map_err(db("read sync states"))?;
        rows.iter().map(|r| Ok((col(r, 0)?, col(r, 1)?))).collect()
    }

    pub async fn save_sync_states(&self, peer: &str, states: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db("begin"))?;
        for (doc, state) in states {
            sqlx::query(
                "INSERT INTO sync_states (peer, doc_id, state) VALUES (?, ?, ?) \
                 ON CONFLICT (peer, doc_id) DO UPDATE SET state = excluded.state",
            )
            .bind(peer)
            .bind(doc)
            .bind(state)
            .execute(&mut *tx)
            .await
            .map_err(db("save sync state"))?;
        }
        tx.commit().await.map_err(db("commit"))?;
        Ok(())
    }

    pub async fn records(&self, collection: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT key, json FROM records WHERE collection = ? ORDER BY key")
            .bind(collection)
            .fetch_all(&self.pool)
            .await
            .map_err(db("read records"))?;
        rows.iter().map(|r| Ok((col(r, 0)?, col(r, 1)?))).collect()
    }

    pub async fn records_by_subject(
        &self,
        collection: &str,
        subject: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT key, json FROM records WHERE collection = ? AND subject = ? ORDER BY key")
            .bind(collection)
            .bind(subject)
            .fetch_all(&self.pool)
            .await
            .map_err(db("read records"))?;
        rows.iter().map(|r| Ok((col(r, 0)?, col(r, 1)?))).collect()
    }

    pub async fn record(&self, collection: &str, key: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT json FROM records WHERE collection = ? AND key = ?")
            .bind(collection)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read record"))
    }

    /// The doc a record lives in (to write to the same document again).
    pub async fn record_doc(&self, collection: &str, key: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT doc_id FROM records WHERE collection = ? AND key = ?")
            .bind(collection)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read record"))
    }

    /// All projection rows (for verification against the documents).
    pub async fn all_records(&self) -> Result<Vec<RecordRow>, StoreError> {
        let rows = sqlx::query("SELECT collection, key, doc_id, subject, json FROM records ORDER BY collection, key")
            .fetch_all(&self.pool)
            .await
            .map_err(db("read records"))?;
        rows.iter()
            .map(|r| {
                Ok(RecordRow {
                    collection: col(r, 0)?,
                    key: col(r, 1)?,
                    doc_id: col(r, 2)?,
                    subject: col(r, 3)?,
                    json: col(r, 4)?,
                })
            })
            .collect()
    }

    pub async fn max_key_number(&self, collection: &str) -> Result<u32, StoreError> {
        let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM records WHERE collection = ?")
            .bind(collection)
            .fetch_all(&self.pool)
            .await
            .map_err(db("read records"))?;
        Ok(keys
            .iter()
            .filter_map(|k| k.split('/').next().and_then(|n| n.trim_start_matches("CR-").parse::<u32>().ok()))
            .max()
            .unwrap_or(0))
    }

    pub async fn last_audit(&self) -> Result<Option<(u64, String)>, StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read audit"))?;
        row.map(|r| Ok((col::<i64>(&r, 0)? as u64, col(&r, 1)?))).transpose()
    }

    /// The newest audit entry's sequence number, hash and signature as recorded (what a sync presents to the
    /// hub, which witnesses that the trail never goes back).
    pub async fn last_audit_signed(&self) -> Result<Option<(u64, String, String)>, StoreError> {
        let row = sqlx::query("SELECT seq, hash, signature FROM audit ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read audit"))?;
        row.map(|r| Ok((col::<i64>(&r, 0)? as u64, col(&r, 1)?, col(&r, 2)?))).transpose()
    }

    /// The time of the newest audit entry, from the signed entry (time never goes backwards in the chain).
    pub async fn last_audit_time(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        let entry: Option<String> = sqlx::query_scalar("SELECT entry FROM audit ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read audit"))?;
        entry
            .map(|e| {
                serde_json::from_str::<datum_shared::audit::AuditEntry>(&e)
                    .map(|e| e.at)
                    .map_err(|e| StoreError::Corrupt(format!("the newest audit entry is not a valid entry: {e}")))
            })
            .transpose()
    }

    /// The newest audit entry's sequence number and hash as recorded, without decoding entries.
    pub async fn audit_hash_at(&self, seq: u64) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT hash FROM audit WHERE seq = ?")
            .bind(seq as i64)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read audit"))
    }

    /// Every audit entry in order, decoded from the signed JSON. Filters (time, asset) are applied by callers to
    /// the decoded entries, which the hash covers, never to the `at`/`subject` columns or `audit_assets`: those
    /// are indexes a person with file access could edit without breaking a hash (`audit_index_problems`).
    pub async fn audit(&self) -> Result<Vec<SignedEntry>, StoreError> {
        let rows = sqlx::query("SELECT seq, entry, hash, signature FROM audit ORDER BY seq")
            .fetch_all(&self.pool)
            .await
            .map_err(db("read audit"))?;
        rows.into_iter()
            .map(|r| {
                let seq: i64 = col(&r, 0)?;
                let entry: String = col(&r, 1)?;
                let entry = serde_json::from_str(&entry).map_err(|e| {
                    StoreError::Corrupt(format!("audit entry {seq} is not a valid entry (edited?): {e}"))
                })?;
                Ok(SignedEntry { entry, hash: col(&r, 2)?, signature: col(&r, 3)? })
            })
            .collect()
    }

    /// Where the audit table's index columns (`seq`, `at`, `subject`) and the `audit_assets` rows disagree with
    /// the signed entries they index: one message per disagreement.
    pub async fn audit_index_problems(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT seq, at, subject, entry FROM audit ORDER BY seq")
            .fetch_all(&self.pool)
            .await
            .map_err(db("read audit"))?;
        let assets = sqlx::query("SELECT seq, asset FROM audit_assets ORDER BY seq, asset")
            .fetch_all(&self.pool)
            .await
            .map_err(db("read audit"))?;
        let mut indexed: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
        for row in &assets {
            indexed.entry(col(row, 0)?).or_default().push(col(row, 1)?);
        }
        let mut problems = Vec::new();
        for row in &rows {
            let seq: i64 = col(row, 0)?;
            let at: String = col(row, 1)?;
            let subject: String = col(row, 2)?;
            let Ok(entry) = serde_json::from_str::<datum_shared::audit::AuditEntry>(&col::<String>(row, 3)?) else {
                continue; // an undecodable entry is reported by the chain check
            };
            if entry.seq as i64 != seq {
                problems.push(format!("audit entry {}: stored under sequence number {seq}", entry.seq));
            }
            if at != audit_time(&entry.at) {
                problems
                    .push(format!("audit entry {}: its time column ({at}) differs from the signed entry", entry.seq));
            }
            if subject != entry.subject {
                problems.push(format!("audit entry {}: its subject column differs from the signed entry", entry.seq));
            }
            let mut signed_assets = entry.assets.clone();
            signed_assets.sort();
            signed_assets.dedup();
            if indexed.remove(&seq).unwrap_or_default() != signed_assets {
                problems.push(format!("audit entry {}: its asset index differs from the signed entry", entry.seq));
            }
        }
        for seq in indexed.keys() {
            problems.push(format!("audit asset index names entry {seq}, which does not exist"));
        }
        Ok(problems)
    }

    /// Integrity check of SQLite itself.
    pub async fn integrity_check(&self) -> Result<Vec<String>, StoreError> {
        let rows: Vec<String> =
            sqlx::query_scalar("PRAGMA integrity_check").fetch_all(&self.pool).await.map_err(db("integrity check"))?;
        Ok(rows.into_iter().filter(|r| r != "ok").collect())
    }
}

async fn upsert_records(tx: &mut sqlx::Transaction<'_, Sqlite>, records: &[RecordRow]) -> Result<(), StoreError> {
    for batch in records.chunks(BATCH_ROWS) {
        let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO records (collection, key, doc_id, subject, json) ");
        q.push_values(batch, |mut b, r| {
            b.push_bind(&r.collection).push_bind(&r.key).push_bind(&r.doc_id).push_bind(&r.subject).push_bind(&r.json);
        });
        q.push(
            " ON CONFLICT (collection, key) DO UPDATE SET doc_id = excluded.doc_id, subject = excluded.subject, json = excluded.json",
        );
        q.build().execute(&mut **tx).await.map_err(db("write records"))?;
    }
    Ok(())
}

async fn insert_audit(tx: &mut sqlx::Transaction<'_, Sqlite>, signed: &SignedEntry) -> Result<(), StoreError> {
    let entry = serde_json::to_string(&signed.entry).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query("INSERT INTO audit (seq, at, subject, entry, hash, signature) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(signed.entry.seq as i64)
        .bind(audit_time(&signed.entry.at))
        .bind(&signed.entry.subject)
        .bind(entry)
        .bind(&signed.hash)
        .bind(&signed.signature)
        .execute(&mut **tx)
        .await
        .map_err(db("append audit entry"))?;
    // An import can concern thousands of assets: one multi-row statement per batch, not one per asset.
    for batch in signed.entry.assets.chunks(BATCH_ROWS) {
        let mut q = QueryBuilder::<Sqlite>::new("INSERT OR IGNORE INTO audit_assets (seq, asset) ");
        q.push_values(batch, |mut b, asset| {
            b.push_bind(signed.entry.seq as i64).push_bind(asset);
        });
        q.build().execute(&mut **tx).await.map_err(db("append audit entry"))?;
    }
    Ok(())
}

/// How an audit entry's time is written in its index column.
fn audit_time(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Reads a column; a value of the wrong type (SQLite does not enforce types) is a `Corrupt` error, not a panic.
fn col<'r, T>(row: &'r sqlx::sqlite::SqliteRow, index: usize) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    row.try_get(index).map_err(|e| StoreError::Corrupt(format!("column {index}: {e}")))
}
