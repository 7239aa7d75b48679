-- The event store (PostgreSQL). Times are timestamptz (microsecond precision, UTC).
--
-- Identifiers that list queries order by are COLLATE "C": byte order, as in SQLite, so a page
-- key means the same thing on both backends and does not depend on the server's locale.

-- Every event. `position` is the global order readers follow. It is assigned by the append
-- itself as (highest position + 1) while holding the position lock (a transaction-level
-- advisory lock, see src/postgres/mod.rs), so positions are dense and a higher position always
-- commits after a lower one. Not a sequence: a sequence value can commit out of order.
CREATE TABLE events (
    position    BIGINT           PRIMARY KEY CHECK (position > 0),
    event_id    TEXT             NOT NULL UNIQUE,
    dossier_id  TEXT COLLATE "C" NOT NULL,
    seq         BIGINT           NOT NULL CHECK (seq > 0),
    event_type  TEXT             NOT NULL,
    recorded_at TIMESTAMPTZ      NOT NULL,
    request_id  TEXT             NOT NULL,
    payload     BYTEA            NOT NULL,
    -- Optimistic concurrency: two commands decided on the same version cannot both append.
    CONSTRAINT events_dossier_seq UNIQUE (dossier_id, seq)
);

-- Each command's request id, so a retry is answered with the original result.
CREATE TABLE requests (
    request_id  TEXT             PRIMARY KEY,
    fingerprint BYTEA            NOT NULL,
    dossier_id  TEXT COLLATE "C" NOT NULL,
    first_seq   BIGINT           NOT NULL,
    last_seq    BIGINT           NOT NULL,
    recorded_at TIMESTAMPTZ      NOT NULL
);

-- The current summary of each dossier, for version checks and list queries.
CREATE TABLE dossiers (
    dossier_id          TEXT COLLATE "C" PRIMARY KEY,
    version             BIGINT           NOT NULL,
    status              INTEGER          NOT NULL,
    channel             INTEGER          NOT NULL,
    procedure_code      TEXT             NOT NULL,
    receiving_unit      TEXT             NOT NULL,
    competent_authority TEXT             NOT NULL,
    due_at              TIMESTAMPTZ,
    -- The due date while the dossier is open (accepted, not ended), else NULL: what the
    -- overdue lists search, so they never touch finished dossiers.
    open_due_at         TIMESTAMPTZ,
    updated_at          TIMESTAMPTZ      NOT NULL
);

CREATE INDEX dossiers_by_receiving_unit ON dossiers (receiving_unit, dossier_id);
CREATE INDEX dossiers_by_authority ON dossiers (competent_authority, dossier_id);
CREATE INDEX dossiers_overdue ON dossiers (open_due_at, dossier_id) WHERE open_due_at IS NOT NULL;
CREATE INDEX dossiers_overdue_by_receiving_unit
    ON dossiers (receiving_unit, open_due_at, dossier_id) WHERE open_due_at IS NOT NULL;
CREATE INDEX dossiers_overdue_by_authority
    ON dossiers (competent_authority, open_due_at, dossier_id) WHERE open_due_at IS NOT NULL;

-- Daily dossier-code sequences per agency.
CREATE TABLE dossier_code_sequences (
    agency_id   TEXT   NOT NULL,
    day         DATE   NOT NULL,
    last_number BIGINT NOT NULL,
    PRIMARY KEY (agency_id, day)
);

-- Applicants' personal data, kept out of the events so that no reader of the event stream
-- sees it.
CREATE TABLE personal_data (
    dossier_id      TEXT COLLATE "C" PRIMARY KEY,
    applicant_name  TEXT NOT NULL,
    identity_number TEXT NOT NULL,
    phone           TEXT NOT NULL
);
