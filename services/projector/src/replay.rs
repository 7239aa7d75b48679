//! The bulk replay behind `motcua projector rebuild`: the whole event history into a fresh
//! generation, much faster than following the feed batch by batch.
//!
//! Following the feed writes every dossier a batch touches, once per batch: a dossier with six
//! events spread over weeks is written about six times, and on PostgreSQL an updated row costs
//! about four times an inserted one (a new tuple and new entries in every index). The replay
//! instead applies events in memory with the projector's own functions ([`RatesProjector::load`],
//! [`RatesProjector::apply_events`]) across many reads, and writes
//! ([`RatesProjector::write`]) only every `flush_events` events, with the position, in one
//! transaction, so each dossier row is written about once per flush. The figures are the same
//! by construction: the same code applies the same events in the same order, only the
//! transaction boundaries move (the projector's sums do not depend on them); a test compares a
//! replayed generation with an incrementally maintained one row by row.
//!
//! Memory: the dossiers touched since the last flush, and between flushes the open ones (an
//! ended dossier is dropped and loaded again if an event still comes for it, such as the
//! result being returned), at most `max_dossiers` (about 1.5 KB each: 1.5 GB by default; at a
//! province's pace a flush of 4 million events holds about 800,000).
//!
//! A flush plans its statements on a thread of its own while the database runs the ones
//! planned before ([`RatesProjector::write_overlapped`]): one after the other, the planning
//! (contributions, deltas, JSON) and the database's work took turns and left a core idle. On
//! PostgreSQL a flush runs on the native driver ([`ReaderDb::postgres`]), so the rows of
//! dossiers new to the generation, most of a flush's, go by `COPY`, at a third of an
//! `INSERT`'s cost; the rest, and the position, in the same transaction.
//!
//! A dossier is looked up in the generation only when the replay meets it first at a later
//! event than its first (`seq` 1): read in position order after the generation's position, a
//! dossier whose first event comes now has no row yet (`RatesProjector::load_replayed`).
//!
//! Crash safety is the feed's: the position moves only in the flush's transaction, so an
//! interrupted replay resumes from its last flush.

use std::sync::Arc;
use std::time::{Duration, Instant};

use motcua_feed::{FeedEvent, ReaderDb, SourcePosition};
use motcua_store::{EventStore, StoredEvent};
use tokio_util::sync::CancellationToken;

use crate::bulk::Target;
use crate::projector::{RatesProjector, Work};

/// The feed's name of the SQL source, so the live projector resumes from a replay's position.
const SQL_SOURCE: &str = "sql";
const SQL_PARTITION: i32 = 0;

/// How a replay reads and writes.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Events per read of the store.
    pub read_batch: u32,
    /// Events applied between two writes.
    pub flush_events: u64,
    /// Write early when this many dossiers are held in memory.
    pub max_dossiers: usize,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self {
            read_batch: 20_000,
            flush_events: 4_000_000,
            max_dossiers: 1_000_000,
        }
    }
}

/// Where a replay is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayProgress {
    /// The position written with the last flush.
    pub committed: u64,
    /// The position of the last event applied in memory.
    pub applied: u64,
    /// The store's head when last read.
    pub head: u64,
}

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("reading the event store failed: {0}")]
    Store(#[from] motcua_store::StoreError),
    #[error("the read model database failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("applying events failed: {0}")]
    Reader(#[from] motcua_feed::ReaderError),
    #[error("the replay's position moved under it (another rebuild of the same generation?)")]
    Fenced,
}

/// Replays every event of `store` after the projector's stored position into its generation,
/// until the store's head, and returns the last position written. `progress` is called after
/// every read. Cancelling `stop` ends the replay at the next read, after a flush of what it
/// applied (nothing is lost either way: the position says where to resume).
pub async fn replay(
    projector: &RatesProjector,
    db: &ReaderDb,
    store: Arc<dyn EventStore>,
    options: &ReplayOptions,
    mut progress: impl FnMut(ReplayProgress),
    stop: &CancellationToken,
) -> Result<u64, ReplayError> {
    let reader = projector_name(projector);
    let stored = motcua_feed::load_position(db, &reader, SQL_SOURCE, SQL_PARTITION).await?;
    let mut committed = stored.map_or(0, |p| u64::try_from(p).unwrap_or(0));
    let mut expected = stored;
    let mut applied = committed;
    let mut work = Work::default();
    let mut head = store.head_position().await?;
    if stored.is_none() {
        // An empty generation: its secondary indexes are built once at the end (below).
        for (name, _) in projector.tables().bulk_indexes() {
            sqlx::query(&format!("DROP INDEX IF EXISTS {name}"))
                .execute(db.pool())
                .await?;
        }
    }
    let limit = options.read_batch.max(1);
    // The next read runs while the current one is applied.
    let mut next = Some(spawn_read(&store, applied, limit));
    let mut last_flush = Instant::now();
    loop {
        let stored_events = match next.take() {
            Some(task) => match task.await {
                Ok(read) => read?,
                Err(_) => store.events_after(applied, limit).await?,
            },
            None => store.events_after(applied, limit).await?,
        };
        let full = stored_events.len() == limit as usize;
        if let Some(last) = stored_events.last()
            && full
            && !stop.is_cancelled()
        {
            next = Some(spawn_read(&store, last.position, limit));
        }
        let mut events = Vec::with_capacity(stored_events.len());
        for stored in stored_events {
            applied = stored.position;
            match decoded(stored) {
                Ok(event) => events.push(event),
                Err((dossier_id, seq, position, reason)) => {
                    projector.note_unreadable(&mut work, &dossier_id, seq, position, reason);
                }
            }
        }
        if !events.is_empty() {
            let mut conn = db.pool().acquire().await?;
            projector
                .load_replayed(&mut conn, &mut work, &events)
                .await?;
            drop(conn);
            projector.apply_events(&mut work, &events);
        }
        head = head.max(applied);
        let done = !full || stop.is_cancelled();
        if applied > committed
            && (done
                || work.applied() >= options.flush_events
                || work.dossiers() >= options.max_dossiers
                || last_flush.elapsed() > Duration::from_secs(120))
        {
            let new = i64::try_from(applied).unwrap_or(i64::MAX);
            let (events, held, (inserted, updated)) =
                (work.applied(), work.dossiers(), work.changed());
            let started = Instant::now();
            let taken = std::mem::take(&mut work);
            work = match db.postgres() {
                Some(postgres) => {
                    let mut tx = postgres.begin().await?;
                    let target = &mut Target::Postgres(&mut tx);
                    let work = flush(projector, target, taken, &reader, expected, new).await?;
                    tx.commit().await?;
                    work
                }
                None => {
                    let mut tx = db.begin().await?;
                    let target = &mut Target::Any(&mut tx);
                    let work = flush(projector, target, taken, &reader, expected, new).await?;
                    tx.commit().await?;
                    work
                }
            };
            expected = Some(new);
            committed = applied;
            work.settled(projector.calendar());
            tracing::info!(
                position = committed,
                events,
                held,
                inserted,
                updated,
                kept = work.dossiers(),
                write_ms = started.elapsed().as_millis(),
                since_last_ms = last_flush.elapsed().as_millis(),
                "replay flushed"
            );
            last_flush = Instant::now();
        }
        progress(ReplayProgress {
            committed,
            applied,
            head,
        });
        if done {
            if stop.is_cancelled() {
                return Ok(committed);
            }
            // Events may have arrived meanwhile: continue until a read finds none.
            let newest = store.head_position().await?;
            if newest <= committed {
                // Idempotent: a no-op unless this replay (or an interrupted one) dropped them.
                let finishing = Instant::now();
                for (_, create) in projector.tables().bulk_indexes() {
                    sqlx::query(&create).execute(db.pool()).await?;
                }
                if db.backend() == motcua_feed::Backend::Postgres {
                    // Statistics for the planner before reports switch over, rather than
                    // whenever autovacuum gets to tables that grew from nothing.
                    let tables = projector.tables();
                    for table in [&tables.dossiers, &tables.days, &tables.hours] {
                        sqlx::query(&format!("ANALYZE {table}"))
                            .execute(db.pool())
                            .await?;
                    }
                }
                tracing::info!(
                    position = committed,
                    finish_ms = finishing.elapsed().as_millis(),
                    "replay finished: overdue indexes built, statistics gathered"
                );
                return Ok(committed);
            }
            head = newest;
        }
    }
}

/// Writes `work` and moves the position from `expected` to `new` on `target`, whose
/// transaction the caller commits; [`ReplayError::Fenced`] (the transaction then rolls back)
/// when the position was not `expected`.
async fn flush(
    projector: &RatesProjector,
    target: &mut Target<'_>,
    work: Work,
    reader: &str,
    expected: Option<i64>,
    new: i64,
) -> Result<Work, ReplayError> {
    let work = projector.write_overlapped(target, work).await?;
    let moved = match target {
        Target::Any(tx) => {
            motcua_feed::advance_position(tx, reader, SQL_SOURCE, SQL_PARTITION, expected, new)
                .await?
        }
        Target::Postgres(conn) => {
            motcua_feed::advance_position_postgres(
                conn,
                reader,
                SQL_SOURCE,
                SQL_PARTITION,
                expected,
                new,
            )
            .await?
        }
    };
    if moved {
        Ok(work)
    } else {
        Err(ReplayError::Fenced)
    }
}

fn projector_name(projector: &RatesProjector) -> String {
    motcua_feed::Reader::name(projector).to_owned()
}

fn spawn_read(
    store: &Arc<dyn EventStore>,
    after: u64,
    limit: u32,
) -> tokio::task::JoinHandle<Result<Vec<StoredEvent>, motcua_store::StoreError>> {
    let store = Arc::clone(store);
    tokio::spawn(async move { store.events_after(after, limit).await })
}

/// A stored event as the projector takes it, or why it cannot be read.
fn decoded(stored: StoredEvent) -> Result<FeedEvent, (String, u64, u64, String)> {
    let source = SourcePosition::Sql {
        position: stored.position,
    };
    match motcua_feed::decode(
        Some(stored.dossier_id.as_bytes()),
        Some(&stored.payload),
        source,
    ) {
        Ok(event) if event.seq == stored.seq => Ok(event),
        Ok(event) => Err((
            stored.dossier_id,
            stored.seq,
            stored.position,
            format!(
                "the payload's seq {} is not the stored seq {}",
                event.seq, stored.seq
            ),
        )),
        Err(reason) => Err((stored.dossier_id, stored.seq, stored.position, reason)),
    }
}
