-- Which migrations each owner (the feed itself, each reader) has applied to this database.
CREATE TABLE IF NOT EXISTS feed_migrations (
    owner       TEXT   NOT NULL,
    version     BIGINT NOT NULL,
    description TEXT   NOT NULL,
    -- Microseconds since the Unix epoch.
    applied_at  BIGINT NOT NULL,
    PRIMARY KEY (owner, version)
);
