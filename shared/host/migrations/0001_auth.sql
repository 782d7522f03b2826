-- What proves who someone is: local to the node that keeps it, never synced, never in a dump. Users and role
-- grants themselves are records of the site's documents.
CREATE TABLE credentials (
    user TEXT PRIMARY KEY,
    -- Argon2id, PHC string format.
    password_hash TEXT,
    totp_secret BLOB,
    -- The last TOTP time step used: a code is good once.
    totp_last_step INTEGER,
    updated_at TEXT NOT NULL
);

CREATE TABLE recovery_codes (
    user TEXT NOT NULL,
    -- SHA-256 of the code (a code is 80 random bits).
    code_hash TEXT NOT NULL,
    used_at TEXT,
    PRIMARY KEY (user, code_hash)
);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    -- SHA-256 of the token's secret part (256 random bits).
    secret_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT,
    last_used_at TEXT
);
CREATE INDEX api_tokens_user ON api_tokens (user);

-- Consecutive failed sign-ins per scope (`user:NAME`, `addr:IP`).
CREATE TABLE login_failures (
    scope TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    last_at INTEGER NOT NULL
);

-- Server-side web sessions; the cookie holds the id, the table only its SHA-256.
CREATE TABLE web_sessions (
    id_hash TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    -- `password` (second factor still to give), `enroll` (second factor to set up), `active`.
    stage TEXT NOT NULL,
    auth TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    -- A TOTP secret being enrolled, until its first code is given.
    pending_secret BLOB
);
CREATE INDEX web_sessions_user ON web_sessions (user);
