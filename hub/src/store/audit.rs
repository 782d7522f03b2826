//! The newest audit entry each site presented in a confirmed session: the hub as witness of the site's trail.

use super::*;

impl Store {
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
}
