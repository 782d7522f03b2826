-- The dashboard's global search (SQLite): one row per thing to be found (an asset, a change request, a version
-- of a file) with its words, rebuilt for a site when it has synced (`search_sites` says up to which sync).
-- SQLite searches the words with FTS5, PostgreSQL with full-text search on a GIN index. A line ending in
-- "-- SQLite only" is SQLite's alone; a line starting "--PG " is PostgreSQL's alone (store/migrations.rs).
CREATE TABLE search_rows (
    id INTEGER PRIMARY KEY, -- SQLite only
--PG id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site TEXT NOT NULL,
    kind TEXT NOT NULL,
    hit TEXT NOT NULL,
    body TEXT NOT NULL
--PG , tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED
);
CREATE INDEX search_rows_site ON search_rows (site, kind);
--PG CREATE INDEX search_rows_tsv ON search_rows USING GIN (tsv);
CREATE VIRTUAL TABLE search_fts USING fts5(body, content = 'search_rows', content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 0'); -- SQLite only
CREATE TRIGGER search_rows_ai AFTER INSERT ON search_rows BEGIN INSERT INTO search_fts (rowid, body) VALUES (new.id, new.body); END; -- SQLite only
CREATE TRIGGER search_rows_ad AFTER DELETE ON search_rows BEGIN INSERT INTO search_fts (search_fts, rowid, body) VALUES ('delete', old.id, old.body); END; -- SQLite only
CREATE TABLE search_sites (
    site TEXT PRIMARY KEY,
    synced TEXT NOT NULL
);
