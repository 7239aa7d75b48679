-- Durable named positions: how far a worker (the Kafka relay, for one) has got in the global
-- event order. Written by the worker after its work up to `position` is done; read at start,
-- so a restart resumes there.
CREATE TABLE checkpoints (
    name       TEXT    PRIMARY KEY,
    position   INTEGER NOT NULL CHECK (position >= 0),
    -- Microseconds since the Unix epoch, UTC: when it was last saved, for operators.
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
