//! The watcher's table: one row per open dossier, with its next timer.

use motcua_feed::Migration;

/// The owner of the migrations in `feed_migrations`.
pub const OWNER: &str = "motcua-deadlines";

/// The reader's name: its feed positions and its Kafka consumer group.
pub const READER_NAME: &str = "deadline-watcher";

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "open dossiers and their timers",
    sqlite: "CREATE TABLE deadline_dossiers (
    dossier_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    state TEXT NOT NULL,
    fire_at INTEGER,
    fire_kind TEXT,
    due_at INTEGER,
    updated_at INTEGER NOT NULL
);
CREATE INDEX deadline_dossiers_fire ON deadline_dossiers (fire_at) WHERE fire_at IS NOT NULL;",
    postgres: "CREATE TABLE deadline_dossiers (
    dossier_id TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    state TEXT NOT NULL,
    fire_at BIGINT,
    fire_kind TEXT,
    due_at BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX deadline_dossiers_fire ON deadline_dossiers (fire_at) WHERE fire_at IS NOT NULL;",
}];

/// Creates (or updates) the watcher's table in `db`.
pub async fn prepare(db: &motcua_feed::ReaderDb) -> Result<(), motcua_feed::FeedError> {
    db.migrate(OWNER, MIGRATIONS).await
}
