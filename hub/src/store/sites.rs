//! Sites, their enrollment tokens (stored as hashes), nodes (certificate fingerprints) and recorded violations.

use super::*;

impl Store {
    /// Adds a site with its first token. Returns false if the name is taken.
    pub async fn add_site(
        &self,
        name: &str,
        display: Option<&str>,
        token_hash: &str,
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
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
        let mut tx = self.begin_write().await?;
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

    pub async fn check_token(&self, token_hash: &str, now: DateTime<Utc>) -> Result<TokenState> {
        let row = sqlx::query("SELECT site, expires_at, used_at FROM tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(TokenState::Unknown) };
        let used: Option<String> = row.try_get(2)?;
        if used.is_some() {
            return Ok(TokenState::Used);
        }
        let expires: String = row.try_get(1)?;
        if parse_time(&expires)? <= now {
            return Ok(TokenState::Expired);
        }
        Ok(TokenState::Valid { site: row.try_get(0)? })
    }

    /// Enrollment in one transaction: the token is consumed (only if still unused), the site bound to the
    /// edge's site id (only if unbound or equal), the node recorded. Returns a refusal reason instead.
    /// `restore`: the node rebuilds the site from the hub and starts a new audit chain, so the audit head
    /// witnessed for the site is forgotten in the same transaction.
    pub async fn enroll(
        &self,
        token_hash: &str,
        site: &str,
        site_id: &SiteId,
        node: &NodeRow,
        now: DateTime<Utc>,
        restore: bool,
    ) -> Result<std::result::Result<(), String>> {
        let mut tx = self.begin_write().await?;
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
        .bind(site_id.as_str())
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
            .bind(peer_key(&node.site, node.node.as_str()))
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
            .bind(node.node.as_str())
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
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO nodes (fingerprint, node, site, issued_at, not_after) VALUES ($1, $2, $3, $4, $5)")
            .bind(&node.fingerprint)
            .bind(node.node.as_str())
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
}
