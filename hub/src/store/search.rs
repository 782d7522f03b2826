//! The global search's index (`search_rows`, migration 0008): one row per thing to be found, with the words it
//! is found by. SQLite matches them with FTS5 (`search_fts`, kept by triggers), PostgreSQL with full-text
//! search (`tsv`, a GIN index). Both see the same words: [`words_of`] lower-cases a text and keeps runs of
//! letters and digits, and a query's words are each a prefix that must occur.

use super::*;

/// One thing to be found: its kind (`asset`, `change`, `file`), what a hit shows (JSON, written and read by
/// the caller) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRow {
    pub kind: &'static str,
    pub hit: String,
    pub body: String,
}

/// The words of `text` as the index holds them: lower case, runs of letters and digits, one space between.
/// `SN-4711-N` is `sn 4711 n`; a query for `4711` or `sn-47` finds it.
pub fn words_of(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out
}

impl Store {
    /// Up to which sync (`last_synced` of the site) the site's rows are indexed.
    pub async fn search_synced(&self, site: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT synced FROM search_sites WHERE site = $1")
            .bind(site)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Replaces a site's rows, in one transaction, and records the sync they are of.
    pub async fn replace_search_rows(&self, site: &str, synced: &str, rows: &[SearchRow]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM search_rows WHERE site = $1").bind(site).execute(&mut *tx).await?;
        for batch in rows.chunks(ROWS_PER_INSERT) {
            let sql = multi_row_insert("INSERT INTO search_rows (site, kind, hit, body)", 1, 3, batch.len(), "");
            let mut query = sqlx::query(&sql).bind(site);
            for row in batch {
                query = query.bind(row.kind).bind(row.hit.as_str()).bind(row.body.as_str());
            }
            query.execute(&mut *tx).await?;
        }
        sqlx::query(
            "INSERT INTO search_sites (site, synced) VALUES ($1, $2) ON CONFLICT (site) DO UPDATE SET synced = $2",
        )
        .bind(site)
        .bind(synced)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The hits (as stored) of `kind` whose words hold every word of `query` as a prefix, in the sites named,
    /// at most `limit`. A query without letters or digits finds nothing.
    pub async fn search(&self, query: &str, kind: &str, sites: &[&str], limit: i64) -> Result<Vec<String>> {
        let words = words_of(query);
        if words.is_empty() || sites.is_empty() {
            return Ok(Vec::new());
        }
        // Only letters and digits remain: nothing in the words can be read as the engines' query syntax.
        let (matching, pattern) = if self.postgres {
            let terms: Vec<String> = words.split(' ').map(|w| format!("{w}:*")).collect();
            ("SELECT hit FROM search_rows WHERE tsv @@ to_tsquery('simple', $1)", terms.join(" & "))
        } else {
            let terms: Vec<String> = words.split(' ').map(|w| format!("\"{w}\"*")).collect();
            (
                "SELECT r.hit FROM search_fts JOIN search_rows r ON r.id = search_fts.rowid WHERE search_fts MATCH $1",
                terms.join(" "),
            )
        };
        let column = if self.postgres { "" } else { "r." };
        let mut sql = format!("{matching} AND {column}kind = $2 AND {column}site IN (");
        for i in 0..sites.len() {
            sql.push_str(&format!("{}${}", if i == 0 { "" } else { ", " }, i + 4));
        }
        sql.push_str(&format!(") ORDER BY {column}id LIMIT $3"));
        let mut q = sqlx::query(&sql).bind(pattern).bind(kind).bind(limit);
        for site in sites {
            q = q.bind(*site);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_runs_of_letters_and_digits_in_lower_case() {
        assert_eq!(words_of("SN-4711-N"), "sn 4711 n");
        assert_eq!(words_of("  Müller/Zone_3 10.0.0.5 "), "müller zone 3 10 0 0 5");
        assert_eq!(words_of("\"*) OR (:* & !"), "or");
        assert_eq!(words_of("-- ;"), "");
    }
}
