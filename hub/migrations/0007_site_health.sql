-- Each site's state per day, as the hub last computed it that day (`commands::overview`): what the dashboard's
-- 30- and 90-day trends are drawn from. One row per site and day; a later computation of the same day replaces
-- it unless it was worse (the day keeps its worst state).
CREATE TABLE site_health (
    site TEXT NOT NULL,
    day TEXT NOT NULL,
    health BIGINT NOT NULL,
    unauthorized_drift BIGINT NOT NULL,
    overdue_backups BIGINT NOT NULL,
    overdue_reviews BIGINT NOT NULL,
    open_changes BIGINT NOT NULL,
    PRIMARY KEY (site, day)
);
