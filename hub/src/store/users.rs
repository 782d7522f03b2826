//! The hub's people (their roles and site scope) and the hub's own record of what they did.

use datum_shared::identity::{Role, User};

use super::*;

/// One entry of the hub's own record (`hub_events`): user changes, downloads from the hub's copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EventRow {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub site: Option<String>,
    pub detail: String,
}

const USER_COLUMNS: &str = "SELECT name, display, roles, sites, disabled, created_at, created_by FROM users";

fn user_row(r: &sqlx::any::AnyRow) -> Result<User> {
    let roles: String = r.try_get(2)?;
    let sites: Option<String> = r.try_get(3)?;
    let created_at: String = r.try_get(5)?;
    Ok(User {
        name: r.try_get(0)?,
        display: r.try_get(1)?,
        roles: Role::parse_list(&roles, &Role::HUB).map_err(StoreError::Invalid)?,
        os_user: None,
        disabled: r.try_get::<i64, _>(4)? != 0,
        created_at: DateTime::parse_from_rfc3339(&created_at)
            .map_err(|e| StoreError::Invalid(format!("user created_at {created_at:?}: {e}")))?
            .with_timezone(&Utc),
        created_by: r.try_get(6)?,
        // Site names are identifiers (letters, digits, `.`, `_`, `-`): a comma never occurs in one.
        sites: sites.map(|s| s.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()),
    })
}

impl Store {
    /// Adds a person; false when the name is taken.
    pub async fn add_user(&self, user: &User) -> Result<bool> {
        let added = sqlx::query(
            "INSERT INTO users (name, display, roles, sites, disabled, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&user.name)
        .bind(user.display.as_deref())
        .bind(user.roles_text())
        .bind(user.sites.as_ref().map(|s| s.join(",")))
        .bind(i64::from(user.disabled))
        .bind(user.created_at.to_rfc3339())
        .bind(&user.created_by)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(added == 1)
    }

    pub async fn user(&self, name: &str) -> Result<Option<User>> {
        let row = sqlx::query(&format!("{USER_COLUMNS} WHERE name = $1")).bind(name).fetch_optional(&self.pool).await?;
        row.map(|r| user_row(&r)).transpose()
    }

    pub async fn users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query(&format!("{USER_COLUMNS} ORDER BY name")).fetch_all(&self.pool).await?;
        rows.iter().map(user_row).collect()
    }

    /// Disables a person; false when there is no such person or it was disabled already.
    pub async fn disable_user(&self, name: &str) -> Result<bool> {
        let n = sqlx::query("UPDATE users SET disabled = 1 WHERE name = $1 AND disabled = 0")
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Appends to the hub's own record.
    pub async fn record_event(
        &self,
        at: DateTime<Utc>,
        actor: &str,
        action: &str,
        site: Option<&str>,
        detail: &str,
    ) -> Result<()> {
        // The next number is taken in the insert itself; two writers racing on PostgreSQL make one of them
        // fail on the key and try again (at most three tries).
        let mut attempt = 0;
        loop {
            attempt += 1;
            let done = sqlx::query(
                "INSERT INTO hub_events (seq, at, actor, action, site, detail) \
                 SELECT COALESCE(MAX(seq), 0) + 1, $1, $2, $3, $4, $5 FROM hub_events",
            )
            .bind(at.to_rfc3339())
            .bind(actor)
            .bind(action)
            .bind(site)
            .bind(detail)
            .execute(&self.pool)
            .await;
            match done {
                Ok(_) => return Ok(()),
                Err(e) if attempt < 3 && e.as_database_error().is_some_and(|d| d.is_unique_violation()) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The newest `limit` entries of the hub's record, newest first; only those of `site` when given.
    pub async fn events(&self, site: Option<&str>, limit: i64) -> Result<Vec<EventRow>> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, action, site, detail FROM hub_events \
             WHERE ($1 IS NULL OR site = $1) ORDER BY seq DESC LIMIT $2",
        )
        .bind(site)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EventRow {
                    seq: r.try_get(0)?,
                    at: r.try_get(1)?,
                    actor: r.try_get(2)?,
                    action: r.try_get(3)?,
                    site: r.try_get(4)?,
                    detail: r.try_get(5)?,
                })
            })
            .collect()
    }
}
