-- Which sites hold each stored file. A file is stored once (`blobs`), but identical files of two sites belong
-- to both: each site counts it, fetches it back in a restore and is asked for it until it is complete.
CREATE TABLE blob_sites (
    hash TEXT NOT NULL,
    site_id TEXT NOT NULL,
    PRIMARY KEY (hash, site_id)
);
INSERT INTO blob_sites (hash, site_id) SELECT hash, site_id FROM blobs;
