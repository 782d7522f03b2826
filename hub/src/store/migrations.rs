//! The hub's migrations, written once in the dialect both engines share, with SQLite's type names; the
//! PostgreSQL ones are derived from them (`BLOB` becomes `BYTEA`), so the two schemas cannot drift apart.
//!
//! A released migration never changes: its checksum is recorded by the databases that applied it, and a
//! test holds every migration to the checksums it was released with (on both engines).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, Migrator};

/// The migrations as written (SQLite).
pub(super) static SQLITE: Migrator = sqlx::migrate!("./migrations");

/// The same migrations in PostgreSQL's words.
pub(super) async fn postgres() -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Derived(SQLITE.iter().map(to_postgres).collect())).await
}

fn to_postgres(m: &Migration) -> Migration {
    Migration::new(m.version, m.description.clone(), m.migration_type, Cow::Owned(postgres_sql(&m.sql)), m.no_tx)
}

/// `BLOB` (a whole word) becomes `BYTEA`; the opening comment names the engine. Where the engines must differ
/// (the search index), a line ending in `-- SQLite only` is left out and a line starting `--PG ` is taken
/// without that mark.
fn postgres_sql(sql: &str) -> String {
    let sql = sql.replacen("(SQLite)", "(PostgreSQL)", 1);
    let sql = if sql.contains(SQLITE_ONLY) || sql.contains(POSTGRES_ONLY) {
        let mut kept = String::with_capacity(sql.len());
        for line in sql.split_inclusive('\n') {
            if line.trim_end().ends_with(SQLITE_ONLY) {
                continue;
            }
            kept.push_str(line.strip_prefix(POSTGRES_ONLY).unwrap_or(line));
        }
        kept
    } else {
        sql
    };
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql.as_str();
    while let Some(at) = rest.find("BLOB") {
        let before = rest[..at].chars().next_back();
        let after = rest[at + 4..].chars().next();
        let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        out.push_str(&rest[..at]);
        out.push_str(if word(before) || word(after) { "BLOB" } else { "BYTEA" });
        rest = &rest[at + 4..];
    }
    out.push_str(rest);
    out
}

/// The mark ending a line only SQLite runs.
const SQLITE_ONLY: &str = "-- SQLite only";
/// The mark opening a line only PostgreSQL runs (a comment to SQLite).
const POSTGRES_ONLY: &str = "--PG ";

/// Migrations made in memory, for `Migrator::new`.
#[derive(Debug)]
struct Derived(Vec<Migration>);

impl MigrationSource<'static> for Derived {
    fn resolve(self) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 'static>> {
        Box::pin(async move { Ok(self.0) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (version, SHA-384 on SQLite, SHA-384 on PostgreSQL) of every released migration. A new migration adds
    /// a line; an existing line never changes (databases in the field would refuse to start).
    const RELEASED: &[(i64, &str, &str)] = &[
        (
            1,
            "0e4190d0182303383a1bd7784e58698febd9d65510a7c84affeae2a48e7be3055922a0bc87a6385f6a40d14e6fc3b0e2",
            "f0583d4b7a0f15b4b0a6ada2eb026b45e9dbfb8421ac6f7fdb6e480ea20bf2bfae5d59deb14e9d27098544fca6c36af5",
        ),
        (
            2,
            "00ed802a2b1844fe7ea00a97c7c264245028dfef05f0e84634b2e9570205144efc6fa1e71243002ded6e76eed634b790",
            "00ed802a2b1844fe7ea00a97c7c264245028dfef05f0e84634b2e9570205144efc6fa1e71243002ded6e76eed634b790",
        ),
        (
            3,
            "3df804990dffb32704a9db8cdc9adf267db1664f4b191b9986d8d9efca9449c0071adb5a03aaaa25006794b274a5d1f2",
            "3df804990dffb32704a9db8cdc9adf267db1664f4b191b9986d8d9efca9449c0071adb5a03aaaa25006794b274a5d1f2",
        ),
        (
            4,
            "58ee6a3631acb5ef2e4a0ebe45b200a12935a4328f9b6c7b5d1d9ddc4df2db6141acf89337e77de2ff156a662156f578",
            "58ee6a3631acb5ef2e4a0ebe45b200a12935a4328f9b6c7b5d1d9ddc4df2db6141acf89337e77de2ff156a662156f578",
        ),
        (
            5,
            "5d3ba09d9205d68ecc0dc532b64171a8b885c76217806e317374a76fbc0db4e25638bac22b7ff5f8f31d08d1f3c07cb7",
            "5d3ba09d9205d68ecc0dc532b64171a8b885c76217806e317374a76fbc0db4e25638bac22b7ff5f8f31d08d1f3c07cb7",
        ),
        (
            6,
            "c16d7dbc5e97413227353e6e68a1deba12520a1ebec82e9bf62656daf6c8013276a2e13700f1d93c4d2e6ddfdd0f156f",
            "c16d7dbc5e97413227353e6e68a1deba12520a1ebec82e9bf62656daf6c8013276a2e13700f1d93c4d2e6ddfdd0f156f",
        ),
        (
            7,
            "037ad6ca4babbcc1b7a6e7ed086096252de472e1d2dc0bd5d49ccf9f95e9f23b5e25bdb6f6ef02d9f162346240db8ba5",
            "037ad6ca4babbcc1b7a6e7ed086096252de472e1d2dc0bd5d49ccf9f95e9f23b5e25bdb6f6ef02d9f162346240db8ba5",
        ),
        (
            8,
            "815e020cebf0c0214823ef9637ce6ffa170605c537f9a68dd23d056a88f9939a6b0cb985d8d65d40d724e83ebdf0f6cb",
            "f412d1dada6c0ee1e45cf92e661115ca49ac340402fef000210bcf92821817d4bf56a689ba34e40ebec1d22b68201740",
        ),
    ];

    #[tokio::test]
    async fn released_migrations_never_change_on_either_engine() {
        let postgres = postgres().await.expect("derive");
        let sqlite: Vec<&Migration> = SQLITE.iter().collect();
        let postgres: Vec<&Migration> = postgres.iter().collect();
        assert_eq!(sqlite.len(), RELEASED.len(), "a migration was added: record its checksums in RELEASED");
        for ((s, p), (version, s_sum, p_sum)) in sqlite.iter().zip(&postgres).zip(RELEASED) {
            assert_eq!((s.version, p.version), (*version, *version));
            assert_eq!(hex::encode(&s.checksum), *s_sum, "SQLite migration {version} changed");
            assert_eq!(hex::encode(&p.checksum), *p_sum, "PostgreSQL migration {version} changed");
        }
    }

    #[test]
    fn only_whole_words_are_translated() {
        assert_eq!(
            postgres_sql("-- db (SQLite)\nbytes BLOB NOT NULL, BLOBS, MY_BLOB"),
            "-- db (PostgreSQL)\nbytes BYTEA NOT NULL, BLOBS, MY_BLOB"
        );
    }

    #[test]
    fn lines_marked_for_one_engine_are_that_engines_alone() {
        let sql = "CREATE TABLE t (\n    id INTEGER PRIMARY KEY, -- SQLite only\n--PG id BIGINT PRIMARY KEY,\n    x BLOB\n);\n";
        assert_eq!(postgres_sql(sql), "CREATE TABLE t (\nid BIGINT PRIMARY KEY,\n    x BYTEA\n);\n");
        assert_eq!(postgres_sql("-- not -- SQLite only here\nSELECT 1;"), "-- not -- SQLite only here\nSELECT 1;");
    }
}
