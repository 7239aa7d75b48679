-- The feed's tables in a reader's database (PostgreSQL). Every row belongs to one reader, so
-- several readers can share a database.

-- Where each reader resumes, per source and partition. Written in the same transaction as the
-- reader's work, so the two can never disagree. `position` means, by source:
--   'sql'          the last applied global position of the event store (partition_id 0);
--   'kafka:<topic>' the next offset to read in that partition (Kafka's commit convention).
-- Updated only by compare-and-set from the value the writer started from, so a consumer that
-- lost its partition in a rebalance cannot overwrite the new owner's progress.
CREATE TABLE feed_positions (
    reader       TEXT   NOT NULL,
    source       TEXT   NOT NULL,
    partition_id BIGINT NOT NULL,
    position     BIGINT NOT NULL,
    -- Microseconds since the Unix epoch; for operators.
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (reader, source, partition_id)
);

-- The highest seq each reader applied per dossier: a record whose seq is not above it is a
-- duplicate (the relay republishes what was in flight when it crashed) and is dropped. Kept
-- independently of the source, so switching a reader from the SQL feed to Kafka replays
-- nothing twice.
CREATE TABLE feed_dossier_seqs (
    reader     TEXT   NOT NULL,
    dossier_id TEXT   NOT NULL,
    last_seq   BIGINT NOT NULL,
    PRIMARY KEY (reader, dossier_id)
);

-- Records a reader moved past because they were not valid events, with the reason; the Kafka
-- feed also publishes them to the dead-letter topic.
CREATE TABLE feed_dead_letters (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reader       TEXT   NOT NULL,
    source       TEXT   NOT NULL,
    partition_id BIGINT NOT NULL,
    -- The store's global position, or the Kafka offset.
    position     BIGINT NOT NULL,
    reason       TEXT   NOT NULL,
    record_key   BYTEA,
    payload      BYTEA,
    recorded_at  BIGINT NOT NULL
);
CREATE INDEX feed_dead_letters_by_reader ON feed_dead_letters (reader, id);
