//! Template drafts (`datum-hub template add`): validated files waiting to be published.

use super::*;

/// A stored draft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DraftRow {
    pub id: String,
    pub version: String,
    pub title: String,
    pub body: String,
    pub sha256: String,
    pub added_at: String,
}

impl Store {
    /// Stores a draft, replacing an earlier draft of the same version.
    pub async fn put_draft(&self, d: &DraftRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO template_drafts (id, version, title, body, sha256, added_at) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (id, version) DO UPDATE SET title = $3, body = $4, sha256 = $5, added_at = $6",
        )
        .bind(&d.id)
        .bind(&d.version)
        .bind(&d.title)
        .bind(&d.body)
        .bind(&d.sha256)
        .bind(&d.added_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every draft, by id and version.
    pub async fn drafts(&self) -> Result<Vec<DraftRow>> {
        let rows =
            sqlx::query("SELECT id, version, title, body, sha256, added_at FROM template_drafts ORDER BY id, version")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(DraftRow {
                    id: r.try_get(0)?,
                    version: r.try_get(1)?,
                    title: r.try_get(2)?,
                    body: r.try_get(3)?,
                    sha256: r.try_get(4)?,
                    added_at: r.try_get(5)?,
                })
            })
            .collect()
    }

    pub async fn delete_draft(&self, id: &str, version: &str) -> Result<()> {
        sqlx::query("DELETE FROM template_drafts WHERE id = $1 AND version = $2")
            .bind(id)
            .bind(version)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
