//! The adapter's tables: the sync state of every dossier, its progress records not yet
//! acknowledged, and the dead letters.

use motcua_feed::Migration;

pub const OWNER: &str = "motcua-portal";
/// The reader's name: its feed positions and its Kafka consumer group.
pub const READER_NAME: &str = "portal-sync";

const DDL: &str = "CREATE TABLE portal_sync (
    dossier_id TEXT PRIMARY KEY,
    receiving_unit TEXT NOT NULL,
    -- The latest version the reader applied, its folded state and the portal's extra facts.
    version BIGINT NOT NULL,
    state TEXT NOT NULL,
    extras TEXT NOT NULL,
    entered_at BIGINT NOT NULL,
    -- When the oldest change the portal has not acknowledged was recorded; NULL: in sync.
    pending_since BIGINT,
    synced_version BIGINT NOT NULL DEFAULT 0,
    synced_at BIGINT,
    -- The portal has the dossier (the next sync is an update).
    on_portal INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    dead INTEGER NOT NULL DEFAULT 0,
    -- Changes acknowledged later than the sync deadline (for the timeliness figure).
    late_syncs INTEGER NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL
);
CREATE INDEX portal_sync_due ON portal_sync (next_attempt_at) WHERE pending_since IS NOT NULL;
CREATE INDEX portal_sync_entered ON portal_sync (entered_at);
CREATE INDEX portal_sync_unit ON portal_sync (receiving_unit, entered_at);
CREATE TABLE portal_progress (
    dossier_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (dossier_id, seq)
);
CREATE TABLE portal_dead_letters (
    dossier_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    at BIGINT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (dossier_id, version)
);";

/// The dossiers whose portal copy is behind ours (`motcua_portal_dossiers_behind`, every
/// 15 s): a partial index holds only them, so counting them reads as many index entries as
/// there are such dossiers (none, when the sync is healthy), not the table.
const BEHIND_INDEX: &str =
    "CREATE INDEX portal_sync_behind ON portal_sync (dossier_id) WHERE synced_version < version";

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "portal sync state, progress outbox, dead letters",
        sqlite: DDL,
        postgres: DDL,
    },
    Migration {
        version: 2,
        description: "index of the dossiers whose portal copy is behind",
        sqlite: BEHIND_INDEX,
        postgres: BEHIND_INDEX,
    },
];

/// Creates (or updates) the adapter's tables in `db`.
pub async fn prepare(db: &motcua_feed::ReaderDb) -> Result<(), motcua_feed::FeedError> {
    db.migrate(OWNER, MIGRATIONS).await
}
