-- The newest audit entry each site presented in a confirmed session: the hub is the witness that the trail
-- never goes back (a data directory restored from an old copy). Reset when a node is enrolled to restore the
-- site (its new chain starts at 1).
CREATE TABLE audit_heads (
    site TEXT PRIMARY KEY NOT NULL REFERENCES sites (name),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    signature TEXT NOT NULL,
    node TEXT NOT NULL,
    at TEXT NOT NULL
);
