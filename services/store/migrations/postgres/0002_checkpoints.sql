-- Durable named positions: how far a worker (the Kafka relay, for one) has got in the global
-- event order. Written by the worker after its work up to `position` is done; read at start,
-- so a restart resumes there. Which worker may write is decided by a session-level advisory
-- lock (src/postgres/checkpoint.rs), not by this table.
CREATE TABLE checkpoints (
    name       TEXT        PRIMARY KEY,
    position   BIGINT      NOT NULL CHECK (position >= 0),
    -- When it was last saved, for operators.
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
