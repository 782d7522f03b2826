//! Document pieces, per-peer sync cursors, receipts (which node sent which change) and the records projection.

use super::*;

impl Store {
    /// (document, heads as hex) of every document of a site, plus the hub's own documents.
    pub async fn doc_heads(&self, site_id: &SiteId) -> Result<Vec<(String, Vec<String>)>> {
        let rows = sqlx::query("SELECT doc_id, heads FROM docs WHERE site_id = $1 OR site_id IS NULL ORDER BY doc_id")
            .bind(site_id.as_str())
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
        let mut tx = self.begin_write().await?;
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
        let mut tx = self.begin_write().await?;
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

    /// Replaces the projection rows of one document: `(collection, key, json)`, each (collection, key) once, as
    /// a document's records are (PostgreSQL refuses a statement that would update one row twice).
    pub async fn project(&self, site_id: &SiteId, doc_id: &str, rows: &[(String, String, String)]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM records WHERE doc_id = $1").bind(doc_id).execute(&mut *tx).await?;
        // A few hundred rows per statement: a first sync projects tens of thousands, and one statement per row
        // spent more time in round trips to the database than the whole file transfer's end.
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let sql = multi_row_insert(
                "INSERT INTO records (site_id, doc_id, collection, rkey, json)",
                2,
                3,
                chunk.len(),
                "ON CONFLICT (site_id, collection, rkey) DO UPDATE SET doc_id = excluded.doc_id, json = excluded.json",
            );
            let mut query = sqlx::query(&sql).bind(site_id.as_str()).bind(doc_id);
            for (collection, key, json) in chunk {
                query = query.bind(collection).bind(key).bind(json);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The json of one record of a site.
    pub async fn record(&self, collection: &str, site_id: &SiteId, key: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT json FROM records WHERE collection = $1 AND site_id = $2 AND rkey = $3")
            .bind(collection)
            .bind(site_id.as_str())
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// (site id, key, json) of one collection, of one site or all.
    pub async fn records(&self, collection: &str, site_id: Option<&SiteId>) -> Result<Vec<(String, String, String)>> {
        let rows = match site_id {
            Some(s) => sqlx::query(
                "SELECT site_id, rkey, json FROM records WHERE collection = $1 AND site_id = $2 ORDER BY site_id, rkey",
            )
            .bind(collection)
            .bind(s.as_str())
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
}
