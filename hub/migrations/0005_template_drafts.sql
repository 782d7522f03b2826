-- Shared templates added at the hub and not published yet (`datum-hub template add`). A published version lives
-- in the signed document `hub/templates`, never here; a draft of a version already published is refused.
CREATE TABLE template_drafts (
    id TEXT NOT NULL,
    version TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (id, version)
);
