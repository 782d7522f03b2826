-- The hub's database (SQLite). Documents are the truth (doc_chunks, one row per stored piece); records are a
-- projection for cross-site queries; receipts say which node sent which change when.
CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
CREATE TABLE sites (
    name TEXT PRIMARY KEY NOT NULL,
    site_id TEXT UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    last_contact TEXT,
    last_synced TEXT,
    last_result TEXT
);
CREATE TABLE tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    site TEXT NOT NULL REFERENCES sites (name),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT
);
CREATE TABLE nodes (
    fingerprint TEXT PRIMARY KEY NOT NULL,
    node TEXT NOT NULL,
    site TEXT NOT NULL REFERENCES sites (name),
    issued_at TEXT NOT NULL,
    not_after TEXT NOT NULL,
    replaced_by TEXT
);
CREATE TABLE docs (
    doc_id TEXT PRIMARY KEY NOT NULL,
    site_id TEXT,
    heads TEXT NOT NULL,
    n_chunks BIGINT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE doc_chunks (
    doc_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    bytes BLOB NOT NULL,
    PRIMARY KEY (doc_id, seq)
);
CREATE TABLE sync_states (
    peer TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    state BLOB NOT NULL,
    PRIMARY KEY (peer, doc_id)
);
CREATE TABLE blobs (
    hash TEXT PRIMARY KEY NOT NULL,
    site_id TEXT NOT NULL,
    size BIGINT NOT NULL,
    received BIGINT NOT NULL,
    complete BIGINT NOT NULL
);
CREATE TABLE blob_chunks (
    hash TEXT NOT NULL,
    pos BIGINT NOT NULL,
    bytes BLOB NOT NULL,
    PRIMARY KEY (hash, pos)
);
CREATE TABLE receipts (
    doc_id TEXT NOT NULL,
    change_hash TEXT NOT NULL,
    node TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (doc_id, change_hash)
);
CREATE TABLE violations (
    at TEXT NOT NULL,
    site TEXT NOT NULL,
    node TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE records (
    site_id TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    collection TEXT NOT NULL,
    rkey TEXT NOT NULL,
    json TEXT NOT NULL,
    PRIMARY KEY (site_id, collection, rkey)
);
CREATE INDEX records_by_doc ON records (doc_id);
CREATE INDEX blobs_by_site ON blobs (site_id, complete);
