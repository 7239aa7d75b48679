//! Generations of the read model: which set of tables answers reports, and the switch-over
//! after a rebuild.
//!
//! `rates_generations` has one row per generation: `building` while a rebuild fills it,
//! `active` for the one reports read and the live projector follows (exactly one), `retired`
//! after a newer one took over (its tables are kept until `drop_retired`, so a switch can be
//! compared or undone by hand).

use motcua_feed::{FeedError, Migration, ReaderDb};
use sqlx::Row;

use crate::schema::Tables;

const OWNER: &str = "motcua-projector";

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "read-model generations",
        sqlite: "CREATE TABLE rates_generations (generation INTEGER PRIMARY KEY, state TEXT NOT NULL, \
                 created_at INTEGER NOT NULL, activated_at INTEGER);",
        postgres: "CREATE TABLE rates_generations (generation BIGINT PRIMARY KEY, state TEXT NOT NULL, \
                   created_at BIGINT NOT NULL, activated_at BIGINT);",
    },
    Migration {
        version: 2,
        description: "the meaning of a generation's figures",
        sqlite: "ALTER TABLE rates_generations ADD COLUMN model_version INTEGER NOT NULL DEFAULT 1;",
        postgres: "ALTER TABLE rates_generations ADD COLUMN model_version BIGINT NOT NULL DEFAULT 1;",
    },
];

/// The version of what the read model's figures mean: raised whenever a figure's definition
/// changes (version 2: every count on the day of the event that makes it true, so a closed
/// period never moves; distinct digitised documents; provisional due dates). A generation
/// built under an older version holds figures of the old definitions, and only a rebuild
/// from the events can bring it up to date.
pub const MODEL_VERSION: i64 = 2;

/// The meaning version of the active generation, `None` before the first projector ran.
pub async fn active_model_version(db: &ReaderDb) -> Result<Option<i64>, FeedError> {
    prepare(db).await?;
    Ok(
        sqlx::query_scalar("SELECT model_version FROM rates_generations WHERE state = 'active'")
            .fetch_optional(db.pool())
            .await?,
    )
}

/// Whether the active generation was built under an older [`MODEL_VERSION`].
pub async fn active_is_outdated(db: &ReaderDb) -> Result<bool, FeedError> {
    Ok(active_model_version(db)
        .await?
        .is_some_and(|version| version < MODEL_VERSION))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Creates the bookkeeping table if needed.
pub async fn prepare(db: &ReaderDb) -> Result<(), FeedError> {
    db.migrate(OWNER, MIGRATIONS).await
}

/// The active generation, `None` before the first projector ran.
pub async fn active(db: &ReaderDb) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT generation FROM rates_generations WHERE state = 'active'")
        .fetch_optional(db.pool())
        .await
}

/// The active generation's tables, creating generation 1 on a fresh database.
pub async fn ensure_active(db: &ReaderDb) -> Result<Tables, FeedError> {
    prepare(db).await?;
    if let Some(generation) = active(db).await? {
        let tables = Tables::of(generation);
        db.migrate(&tables.reader_name(), &tables.migrations())
            .await?;
        return Ok(tables);
    }
    let tables = Tables::of(1);
    db.migrate(&tables.reader_name(), &tables.migrations())
        .await?;
    // Two processes starting at once both try; the primary key lets one win, and the other
    // then finds it active.
    let inserted = sqlx::query(
        "INSERT INTO rates_generations (generation, state, created_at, activated_at, \
         model_version) VALUES (1, 'active', $1, $1, $2) ON CONFLICT (generation) DO NOTHING",
    )
    .bind(now())
    .bind(MODEL_VERSION)
    .execute(db.pool())
    .await?;
    if inserted.rows_affected() == 0 && active(db).await?.is_none() {
        return Err(FeedError::Config(
            "generation 1 of the rates read model exists but is not active: finish or undo \
             the rebuild that created it"
                .into(),
        ));
    }
    Ok(tables)
}

/// Starts a new generation for a rebuild: its tables, empty, in state `building`.
pub async fn begin_rebuild(db: &ReaderDb) -> Result<Tables, FeedError> {
    prepare(db).await?;
    let next: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(MAX(generation), 0) + 1 AS BIGINT) FROM rates_generations",
    )
    .fetch_one(db.pool())
    .await?;
    sqlx::query(
        "INSERT INTO rates_generations (generation, state, created_at, model_version) \
         VALUES ($1, 'building', $2, $3)",
    )
    .bind(next)
    .bind(now())
    .bind(MODEL_VERSION)
    .execute(db.pool())
    .await?;
    let tables = Tables::of(next);
    db.migrate(&tables.reader_name(), &tables.migrations())
        .await?;
    Ok(tables)
}

/// The generation an interrupted rebuild left in state `building`, if any: its tables and
/// position survive, so the next rebuild resumes it instead of starting over.
pub async fn building(db: &ReaderDb) -> Result<Option<Tables>, FeedError> {
    prepare(db).await?;
    // A rebuild begun under older definitions would finish with old figures: abandon it.
    sqlx::query(
        "UPDATE rates_generations SET state = 'retired' \
         WHERE state = 'building' AND model_version < $1",
    )
    .bind(MODEL_VERSION)
    .execute(db.pool())
    .await?;
    let generation: Option<i64> = sqlx::query_scalar(
        "SELECT generation FROM rates_generations WHERE state = 'building' \
         ORDER BY generation DESC LIMIT 1",
    )
    .fetch_optional(db.pool())
    .await?;
    match generation {
        None => Ok(None),
        Some(generation) => {
            let tables = Tables::of(generation);
            db.migrate(&tables.reader_name(), &tables.migrations())
                .await?;
            Ok(Some(tables))
        }
    }
}

/// Makes `generation` the active one and retires the previous, in one transaction.
pub async fn activate(db: &ReaderDb, generation: i64) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query("UPDATE rates_generations SET state = 'retired' WHERE state = 'active'")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE rates_generations SET state = 'active', activated_at = $2 WHERE generation = $1",
    )
    .bind(generation)
    .bind(now())
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Drops the tables of every retired generation except the most recent one.
pub async fn drop_retired(db: &ReaderDb) -> Result<Vec<i64>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT generation FROM rates_generations WHERE state = 'retired' ORDER BY generation DESC",
    )
    .fetch_all(db.pool())
    .await?;
    let mut dropped = Vec::new();
    for row in rows.iter().skip(1) {
        let generation: i64 = row.try_get(0)?;
        let tables = Tables::of(generation);
        let mut tx = db.begin().await?;
        for table in [
            &tables.dossiers,
            &tables.days,
            &tables.hours,
            &tables.anomalies,
            &tables.outbox,
        ] {
            sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM rates_generations WHERE generation = $1")
            .bind(generation)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM feed_migrations WHERE owner = $1")
            .bind(tables.reader_name())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        dropped.push(generation);
    }
    Ok(dropped)
}
