//! Configuration files and evidence in 1 MiB pieces, stored once, and which sites hold each (`blob_sites`).

use sha2::{Digest, Sha256};

use super::*;

impl Store {
    /// Registers referenced files of a site (unknown ones become wanted) and returns every incomplete file of
    /// the site with the bytes already received.
    pub async fn want_blobs(&self, site_id: &SiteId, referenced: &[String]) -> Result<Vec<BlobState>> {
        let mut tx = self.pool.begin().await?;
        for hash in referenced {
            sqlx::query(
                "INSERT INTO blobs (hash, site_id, size, received, complete) VALUES ($1, $2, 0, 0, 0)
                 ON CONFLICT (hash) DO NOTHING",
            )
            .bind(hash)
            .bind(site_id.as_str())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO blob_sites (hash, site_id) VALUES ($1, $2) ON CONFLICT (hash, site_id) DO NOTHING",
            )
            .bind(hash)
            .bind(site_id.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let rows = sqlx::query(
            "SELECT b.hash, b.received FROM blobs b JOIN blob_sites s ON s.hash = b.hash
             WHERE s.site_id = $1 AND b.complete = 0 ORDER BY b.hash",
        )
        .bind(site_id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(BlobState { hash: r.try_get(0)?, received: r.try_get::<i64, _>(1)? as u64 })).collect()
    }

    /// Appends pieces in one transaction (one fsync for many pieces): each at its `pos`, which must equal the
    /// bytes of its file received so far.
    pub async fn append_blobs(&self, pieces: Vec<BlobPiece>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for p in pieces {
            append_in(&mut tx, &p.hash, p.pos, p.total, p.bytes).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The size of a completely stored file that belongs to a site (its documents refer to it; identical files
    /// of two sites are stored once). `None` otherwise.
    pub async fn site_blob_size(&self, site_id: &SiteId, hash: &str) -> Result<Option<u64>> {
        if !datum_shared::sync::wire::is_blob_hash(hash) {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT b.size FROM blobs b JOIN blob_sites s ON s.hash = b.hash
             WHERE b.hash = $1 AND s.site_id = $2 AND b.complete = 1",
        )
        .bind(hash)
        .bind(site_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok(r.try_get::<i64, _>(0)? as u64)).transpose()
    }

    /// The stored piece of a file that starts at `pos` (pieces follow each other: the next starts where this one
    /// ends). One at a time, so that a file of a gigabyte is never held whole.
    pub async fn blob_piece(&self, hash: &str, pos: u64) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT bytes FROM blob_chunks WHERE hash = $1 AND pos = $2")
            .bind(hash)
            .bind(pos as i64)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok(r.try_get(0)?)).transpose()
    }

    /// SHA-256 and length of what is stored of a file, read piece by piece.
    pub async fn blob_digest(&self, hash: &str) -> Result<(u64, [u8; 32])> {
        let mut hasher = Sha256::new();
        let mut len = 0u64;
        while let Some(piece) = self.blob_piece(hash, len).await? {
            if piece.is_empty() {
                break;
            }
            hasher.update(&piece);
            len += piece.len() as u64;
        }
        Ok((len, hasher.finalize().into()))
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
    pub async fn blob_counts(&self, site_id: &SiteId) -> Result<(i64, i64, i64)> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(b.complete), 0) AS BIGINT), CAST(COALESCE(SUM(1 - b.complete), 0) AS BIGINT),
                    CAST(COALESCE(SUM(b.size * b.complete), 0) AS BIGINT)
             FROM blobs b JOIN blob_sites s ON s.hash = b.hash WHERE s.site_id = $1",
        )
        .bind(site_id.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
    }
}

/// One piece appended inside a transaction.
async fn append_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    hash: &str,
    pos: u64,
    total: u64,
    bytes: Vec<u8>,
) -> Result<()> {
    let n = sqlx::query("UPDATE blobs SET received = $2, size = $3 WHERE hash = $1 AND received = $4 AND complete = 0")
        .bind(hash)
        .bind((pos + bytes.len() as u64) as i64)
        .bind(total as i64)
        .bind(pos as i64)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if n != 1 {
        return Err(StoreError::Invalid(format!("file {hash}: piece at {pos} does not continue what is stored")));
    }
    sqlx::query("INSERT INTO blob_chunks (hash, pos, bytes) VALUES ($1, $2, $3)")
        .bind(hash)
        .bind(pos as i64)
        .bind(bytes)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
