-- Federation: the per-peer sync cursor (automerge sync state) of every document, so a reconnect exchanges
-- only what changed since the last sync with the hub.
CREATE TABLE sync_states (
    peer TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    state BLOB NOT NULL,
    PRIMARY KEY (peer, doc_id)
);
