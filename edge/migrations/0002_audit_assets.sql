-- Which assets an audit entry concerns, so `audit log --asset A` also finds imports, change-request steps
-- and zone reviews that touched A.
CREATE TABLE audit_assets (
    seq INTEGER NOT NULL,
    asset TEXT NOT NULL,
    PRIMARY KEY (seq, asset)
);
CREATE INDEX audit_assets_by_asset ON audit_assets (asset);
