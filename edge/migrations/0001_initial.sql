-- The edge's database. Documents are the truth (doc_chunks); records are a projection rebuilt from them;
-- audit is the signed, hash-linked log of operations.
CREATE TABLE meta (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE doc_chunks (
    doc_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('snapshot', 'incremental')),
    bytes BLOB NOT NULL,
    PRIMARY KEY (doc_id, seq)
);

CREATE TABLE records (
    collection TEXT NOT NULL,
    key TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    json TEXT NOT NULL,
    PRIMARY KEY (collection, key)
);
CREATE INDEX records_by_subject ON records (collection, subject);
CREATE INDEX records_by_doc ON records (doc_id);

CREATE TABLE audit (
    seq INTEGER PRIMARY KEY NOT NULL,
    at TEXT NOT NULL,
    subject TEXT NOT NULL,
    entry TEXT NOT NULL,
    hash TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE INDEX audit_by_subject ON audit (subject);
CREATE INDEX audit_by_at ON audit (at);
