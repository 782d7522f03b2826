//! Each site's state per day (`site_health`), kept as the hub computes it, for the dashboard's trends.

use super::*;

/// A site's state on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthRow {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// 0 ok, 1 pending, 2 attention, 3 critical (`commands::overview::Health` in order).
    pub health: i64,
    pub unauthorized_drift: i64,
    pub overdue_backups: i64,
    pub overdue_reviews: i64,
    pub open_changes: i64,
}

impl Store {
    /// Records a site's state for its day; a day keeps the worst state recorded for it.
    pub async fn record_health(&self, site: &str, row: &HealthRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO site_health (site, day, health, unauthorized_drift, overdue_backups, overdue_reviews, open_changes)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (site, day) DO UPDATE SET health = $3, unauthorized_drift = $4, overdue_backups = $5,
                 overdue_reviews = $6, open_changes = $7
             WHERE site_health.health <= $3",
        )
        .bind(site)
        .bind(&row.day)
        .bind(row.health)
        .bind(row.unauthorized_drift)
        .bind(row.overdue_backups)
        .bind(row.overdue_reviews)
        .bind(row.open_changes)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A site's days from `since` (`YYYY-MM-DD`) on, oldest first.
    pub async fn health_since(&self, site: &str, since: &str) -> Result<Vec<HealthRow>> {
        let rows = sqlx::query(
            "SELECT day, health, unauthorized_drift, overdue_backups, overdue_reviews, open_changes FROM site_health
             WHERE site = $1 AND day >= $2 ORDER BY day",
        )
        .bind(site)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HealthRow {
                    day: r.try_get(0)?,
                    health: r.try_get(1)?,
                    unauthorized_drift: r.try_get(2)?,
                    overdue_backups: r.try_get(3)?,
                    overdue_reviews: r.try_get(4)?,
                    open_changes: r.try_get(5)?,
                })
            })
            .collect()
    }
}
