//! What every hub command gets: the data directory, the database to use and the clock; and how the database
//! is opened (`--database`, else the URL remembered by `init`, else the SQLite file).

use std::path::PathBuf;

use anyhow::Result;
use chrono::{DateTime, Utc};
use datum_host::exit::user;

use crate::store::{Store, StoreError};

pub struct Context {
    pub data: PathBuf,
    pub database: Option<String>,
    pub now: DateTime<Utc>,
}

pub const DB_FILE: &str = "hub.db";
pub const DATABASE_URL_FILE: &str = "identity/database-url";

impl Context {
    /// Opens the hub's database: `--database`, else the URL remembered by `init`, else the SQLite file.
    pub async fn store(&self) -> Result<Store> {
        let remembered = std::fs::read_to_string(self.data.join(DATABASE_URL_FILE)).ok().map(|s| s.trim().to_string());
        let url = self.database.clone().or(remembered);
        if url.is_none() && !self.data.join(DB_FILE).exists() {
            return Err(user(format!(
                "{} is not a hub data directory; run `datum-hub init` first",
                self.data.display()
            )));
        }
        let shown = match &url {
            Some(_) => "(PostgreSQL)".to_string(),
            None => self.data.join(DB_FILE).display().to_string(),
        };
        let store = match Store::open(url.as_deref(), &self.data.join(DB_FILE), false).await {
            Ok(store) => store,
            Err(e @ StoreError::Damaged { .. }) => return Err(e.into()),
            Err(e) => {
                return Err(anyhow::Error::from(e).context("open the hub database"));
            }
        };
        store.check_holds_hub(&shown).await?;
        Ok(store)
    }
}
