//! The feed's tables: where each reader resumes, which seq it applied last per dossier, and
//! the records it moved past as dead letters. Everything here runs in the reader's own
//! database, most of it inside the batch's transaction.

use std::collections::HashMap;

use sqlx::Row;

use crate::db::{ReaderDb, ReaderTx, now_micros};
use crate::event::{FeedEvent, Poison, SourcePosition};
use crate::placeholders::Placeholders;

/// How many dossiers one dedupe statement names at most: far below SQLite's and PostgreSQL's
/// limits on parameters.
const DEDUPE_CHUNK: usize = 400;

/// Every partition's resume position of `reader` on `source`.
pub(crate) async fn load_positions(
    db: &ReaderDb,
    reader: &str,
    source: &str,
) -> Result<HashMap<i32, i64>, sqlx::Error> {
    let rows = sqlx::query(include_str!("queries/load_positions.sql"))
        .bind(reader)
        .bind(source)
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|row| {
            let partition: i64 = row.try_get(0)?;
            let position: i64 = row.try_get(1)?;
            let partition =
                i32::try_from(partition).map_err(|error| sqlx::Error::ColumnDecode {
                    index: "partition_id".into(),
                    source: Box::new(error),
                })?;
            Ok((partition, position))
        })
        .collect()
}

/// One partition's resume position, `None` before the reader applied anything from it.
pub async fn load_position(
    db: &ReaderDb,
    reader: &str,
    source: &str,
    partition: i32,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(include_str!("queries/load_position.sql"))
        .bind(reader)
        .bind(source)
        .bind(i64::from(partition))
        .fetch_optional(db.pool())
        .await
}

/// The body of [`advance_position`] and [`advance_position_postgres`]: the same statements on
/// either kind of connection (sqlx has no common trait for a result's `rows_affected`).
macro_rules! advance {
    ($conn:expr, $reader:expr, $source:expr, $partition:expr, $expected:expr, $new:expr) => {{
        let done = match $expected {
            Some(expected) => sqlx::query(include_str!("queries/advance_position.sql"))
                .bind($reader)
                .bind($source)
                .bind(i64::from($partition))
                .bind($new)
                .bind(now_micros())
                .bind(expected)
                .execute($conn)
                .await?
                .rows_affected(),
            None => sqlx::query(include_str!("queries/insert_position.sql"))
                .bind($reader)
                .bind($source)
                .bind(i64::from($partition))
                .bind($new)
                .bind(now_micros())
                .execute($conn)
                .await?
                .rows_affected(),
        };
        Ok(done == 1)
    }};
}

/// Moves a partition's position from `expected` to `new`, in the batch's transaction. Returns
/// `false` when the stored position is not `expected`: another consumer (the partition's new
/// owner after a rebalance, or a zombie) moved it, and this batch must not commit.
pub async fn advance_position(
    tx: &mut ReaderTx,
    reader: &str,
    source: &str,
    partition: i32,
    expected: Option<i64>,
    new: i64,
) -> Result<bool, sqlx::Error> {
    advance!(&mut **tx, reader, source, partition, expected, new)
}

/// [`advance_position`] in a native PostgreSQL transaction (see [`ReaderDb::postgres`]), for
/// a write that needs what only the native driver does, such as `COPY`.
pub async fn advance_position_postgres(
    conn: &mut sqlx::PgConnection,
    reader: &str,
    source: &str,
    partition: i32,
    expected: Option<i64>,
    new: i64,
) -> Result<bool, sqlx::Error> {
    advance!(&mut *conn, reader, source, partition, expected, new)
}

/// The new events of a batch, and what was dropped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filtered {
    /// The events whose seq is above the last one applied for their dossier, in batch order.
    pub events: Vec<FeedEvent>,
    /// Events dropped because their `(dossier_id, seq)` was applied before.
    pub duplicates: u64,
    /// Events that skipped seqs of their dossier (logged): the relay lost something, or the
    /// topic's partitioning changed under a dossier. The runner never applies them as they
    /// are: it heals the gap from the event store or stops (see [`Filtered::missing`]).
    pub gaps: u64,
    /// The seqs missing before each gap, in batch order.
    pub missing: Vec<Missing>,
}

/// Seqs of a dossier that never arrived before a later one did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub dossier_id: String,
    /// The last seq the reader has (0: none).
    pub after: u64,
    /// The seq that arrived: `after + 1 .. before` are missing.
    pub before: u64,
}

/// The batch's dossiers, each once, in order of first appearance.
pub(crate) fn distinct_dossiers(events: &[FeedEvent]) -> Vec<&str> {
    let mut seen = std::collections::HashSet::new();
    events
        .iter()
        .map(|event| event.dossier_id.as_str())
        .filter(|id| seen.insert(*id))
        .collect()
}

/// The gaps of a batch against the last seqs already applied (`applied`; a dossier absent
/// has none): an event whose seq is more than one above its dossier's last, counting the
/// batch's own earlier events. Repeats are not gaps (the reader drops them).
pub(crate) fn missing_seqs(events: &[FeedEvent], applied: &HashMap<String, u64>) -> Vec<Missing> {
    let mut last: HashMap<&str, u64> = HashMap::new();
    let mut missing = Vec::new();
    for event in events {
        let id = event.dossier_id.as_str();
        let previous = *last
            .entry(id)
            .or_insert_with(|| applied.get(id).copied().unwrap_or(0));
        if event.seq <= previous {
            continue;
        }
        if event.seq != previous + 1 {
            tracing::warn!(
                dossier_id = id,
                previous,
                seq = event.seq,
                source = ?event.source,
                "dossier seqs skip: events are missing before this one"
            );
            missing.push(Missing {
                dossier_id: id.to_owned(),
                after: previous,
                before: event.seq,
            });
        }
        last.insert(id, event.seq);
    }
    missing
}

/// Drops the events whose seq is not above the last seq `reader` applied for their dossier
/// (also within the batch), and records the new last seqs, in the batch's transaction. This is
/// what makes a republished `(dossier_id, seq)` count once.
pub async fn filter_new(
    tx: &mut ReaderTx,
    reader: &str,
    events: &[FeedEvent],
) -> Result<Filtered, sqlx::Error> {
    let mut ids: Vec<&str> = Vec::new();
    let mut last: HashMap<&str, u64> = HashMap::new();
    for event in events {
        if !last.contains_key(event.dossier_id.as_str()) {
            last.insert(&event.dossier_id, 0);
            ids.push(&event.dossier_id);
        }
    }
    for chunk in ids.chunks(DEDUPE_CHUNK) {
        let mut p = Placeholders::of(tx);
        let mut sql = format!(
            "SELECT dossier_id, last_seq FROM feed_dossier_seqs \
             WHERE reader = {} AND dossier_id IN (",
            p.param()
        );
        p.push_list(&mut sql, chunk.len());
        sql.push(')');
        let mut query = sqlx::query(&sql).bind(reader);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut **tx).await? {
            let id: String = row.try_get(0)?;
            let seq: i64 = row.try_get(1)?;
            if let Some(slot) = last.get_mut(id.as_str()) {
                *slot = u64::try_from(seq).unwrap_or(0);
            }
        }
    }

    let mut filtered = Filtered::default();
    let mut updated: HashMap<&str, u64> = HashMap::new();
    for event in events {
        let id = event.dossier_id.as_str();
        let previous = last.get(id).copied().unwrap_or(0);
        if event.seq <= previous {
            filtered.duplicates += 1;
            continue;
        }
        if event.seq != previous + 1 {
            filtered.gaps += 1;
            filtered.missing.push(Missing {
                dossier_id: id.to_owned(),
                after: previous,
                before: event.seq,
            });
            tracing::warn!(
                reader,
                dossier_id = id,
                previous,
                seq = event.seq,
                source = ?event.source,
                "dossier seqs skip: events are missing before this one"
            );
        }
        last.insert(id, event.seq);
        updated.insert(id, event.seq);
        filtered.events.push(event.clone());
    }

    let updated: Vec<(&str, u64)> = updated.into_iter().collect();
    for chunk in updated.chunks(DEDUPE_CHUNK) {
        let mut sql =
            String::from("INSERT INTO feed_dossier_seqs (reader, dossier_id, last_seq) VALUES ");
        Placeholders::of(tx).push_rows(&mut sql, chunk.len(), 3);
        sql.push_str(
            " ON CONFLICT (reader, dossier_id) DO UPDATE SET last_seq = excluded.last_seq",
        );
        let mut query = sqlx::query(&sql);
        for (id, seq) in chunk {
            query = query
                .bind(reader)
                .bind(*id)
                .bind(i64::try_from(*seq).unwrap_or(i64::MAX));
        }
        query.execute(&mut **tx).await?;
    }
    Ok(filtered)
}

/// Records a poison record in `feed_dead_letters`, in the batch's transaction.
pub(crate) async fn record_dead_letter(
    tx: &mut ReaderTx,
    reader: &str,
    source: &str,
    poison: &Poison,
) -> Result<(), sqlx::Error> {
    let (partition, position) = match poison.source {
        SourcePosition::Sql { position } => (0, i64::try_from(position).unwrap_or(i64::MAX)),
        SourcePosition::Kafka { partition, offset } => (partition, offset),
    };
    sqlx::query(include_str!("queries/insert_dead_letter.sql"))
        .bind(reader)
        .bind(source)
        .bind(i64::from(partition))
        .bind(position)
        .bind(&poison.reason)
        .bind(poison.key.clone())
        .bind(poison.payload.clone())
        .bind(now_micros())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A row of `feed_dead_letters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub source: String,
    pub partition: i32,
    /// The store's global position or the Kafka offset of the record.
    pub position: i64,
    pub reason: String,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
}

/// A reader's dead letters, oldest first: for operators and tests.
pub async fn dead_letters(db: &ReaderDb, reader: &str) -> Result<Vec<DeadLetter>, sqlx::Error> {
    let rows = sqlx::query(include_str!("queries/dead_letters.sql"))
        .bind(reader)
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|row| {
            let partition: i64 = row.try_get(1)?;
            Ok(DeadLetter {
                source: row.try_get(0)?,
                partition: i32::try_from(partition).unwrap_or(-1),
                position: row.try_get(2)?,
                reason: row.try_get(3)?,
                key: row.try_get(4)?,
                payload: row.try_get(5)?,
            })
        })
        .collect()
}
