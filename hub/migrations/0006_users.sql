-- The hub's people (`datum-hub user …`): roles among viewer, security-officer, auditor, hub-admin (comma-separated),
-- and the sites (their identifiers, comma-separated) the roles apply to; NULL is every site. What proves who a
-- person is (password hash, TOTP secret, token hashes) is not here: it stays in `auth.db` beside the hub's data,
-- as at the edge. `hub_events` is the hub's own record of what its people did (user changes, downloads).
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    display TEXT,
    roles TEXT NOT NULL,
    sites TEXT,
    disabled BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);

CREATE TABLE hub_events (
    seq BIGINT PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    site TEXT,
    detail TEXT NOT NULL
);
