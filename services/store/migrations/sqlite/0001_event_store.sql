-- The event store (SQLite). Times are microseconds since the Unix epoch, UTC.

-- Every event, in commit order. `position` is the global order readers follow; with a single
-- writer, a higher position is always committed after a lower one.
CREATE TABLE events (
    position    INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT    NOT NULL UNIQUE,
    dossier_id  TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    event_type  TEXT    NOT NULL,
    recorded_at INTEGER NOT NULL,
    request_id  TEXT    NOT NULL,
    payload     BLOB    NOT NULL,
    -- Optimistic concurrency: two commands decided on the same version cannot both append.
    UNIQUE (dossier_id, seq)
);

-- Each command's request id, so a retry is answered with the original result.
CREATE TABLE requests (
    request_id  TEXT    PRIMARY KEY,
    fingerprint BLOB    NOT NULL,
    dossier_id  TEXT    NOT NULL,
    first_seq   INTEGER NOT NULL,
    last_seq    INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL
) WITHOUT ROWID;

-- The current summary of each dossier, for version checks and list queries.
CREATE TABLE dossiers (
    dossier_id          TEXT    PRIMARY KEY,
    version             INTEGER NOT NULL,
    status              INTEGER NOT NULL,
    channel             INTEGER NOT NULL,
    procedure_code      TEXT    NOT NULL,
    receiving_unit      TEXT    NOT NULL,
    competent_authority TEXT    NOT NULL,
    due_at              INTEGER,
    -- The due date while the dossier is open (accepted, not ended), else NULL: what the
    -- overdue lists search, so they never touch finished dossiers.
    open_due_at         INTEGER,
    updated_at          INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX dossiers_by_receiving_unit ON dossiers (receiving_unit, dossier_id);
CREATE INDEX dossiers_by_authority ON dossiers (competent_authority, dossier_id);
CREATE INDEX dossiers_overdue ON dossiers (open_due_at, dossier_id) WHERE open_due_at IS NOT NULL;
CREATE INDEX dossiers_overdue_by_receiving_unit
    ON dossiers (receiving_unit, open_due_at, dossier_id) WHERE open_due_at IS NOT NULL;
CREATE INDEX dossiers_overdue_by_authority
    ON dossiers (competent_authority, open_due_at, dossier_id) WHERE open_due_at IS NOT NULL;

-- Daily dossier-code sequences per agency.
CREATE TABLE dossier_code_sequences (
    agency_id   TEXT    NOT NULL,
    day         TEXT    NOT NULL,
    last_number INTEGER NOT NULL,
    PRIMARY KEY (agency_id, day)
) WITHOUT ROWID;

-- Applicants' personal data, kept out of the events so that no reader of the event stream
-- sees it.
CREATE TABLE personal_data (
    dossier_id      TEXT PRIMARY KEY,
    applicant_name  TEXT NOT NULL,
    identity_number TEXT NOT NULL,
    phone           TEXT NOT NULL
) WITHOUT ROWID;
