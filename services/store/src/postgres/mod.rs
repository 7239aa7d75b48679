//! The PostgreSQL event store: the distributed deployment's.
//!
//! All appends of a store go through one writer task (`writer`) that takes every append
//! waiting in its queue (up to `MAX_GROUP`) and runs them in one transaction on a pooled
//! connection, in PostgreSQL's default isolation (read committed), then commits them together:
//! one commit (one WAL flush) for many commands, and nobody is answered before it (group
//! commit, as the SQLite store does). The group (`group`):
//!
//! 1. Locks the rows of its dossiers (`SELECT … FOR UPDATE`, in dossier order) and reads their
//!    versions, and reads its recorded request ids, with one query each.
//! 2. Decides in memory, in queue order, what each append gets, so an append sees the ones
//!    before it in the group: a recorded request id is [`AppendOutcome::Replayed`] with the
//!    original events when the fingerprint matches and [`StoreError::RequestIdReused`]
//!    otherwise; a stale expected version is [`StoreError::VersionConflict`]; else it is
//!    written.
//! 3. Writes the accepted appends with one `UNNEST` statement per table: dossier rows (an
//!    update from the version read for existing ones, a plain insert for new ones), request
//!    ids, personal data, claimed numbers; then takes the position lock and inserts the events.
//!
//! Several processes may share the database. The row locks keep another process from moving a
//! dossier the group read. A dossier or a request id another process writes meanwhile makes the
//! group's insert wait for it and then fail with a unique violation (the unique `(dossier_id,
//! seq)` on the events is the backstop); the group is then rolled back and run again one append
//! per transaction, each retried once after a unique violation, and the retry finds the
//! winner in its checks: a replay, or a version conflict.
//!
//! # Global positions
//!
//! Readers follow [`EventStore::events_after`], which must never let a reader pass a position
//! that has not committed yet. A sequence or identity column does not guarantee that in
//! PostgreSQL: two transactions can take 7 and 8 and commit 8 first, and a reader that read 8
//! would never see 7. So the store takes a transaction-level advisory lock
//! (`pg_advisory_xact_lock`, the *position lock*) just before inserting the events, and assigns
//! positions as (highest committed position + 1, + 2, …) under it. PostgreSQL makes a committed
//! transaction visible before it releases its locks, so the next holder sees the previous
//! holder's events, and positions commit strictly in order: dense (no gaps), and an event is
//! visible only together with every lower position. Were the lock ever bypassed, two appends
//! would collide on the position's primary key (an error), never silently reorder.
//!
//! The cost: the lock is held from the event insert through the commit, including its WAL
//! flush, so groups commit one after another for the whole database. One writer task per
//! process never competes with itself for the lock; the group amortises the flush over every
//! append in it. If it ever is not enough, the alternative is a sequence plus an
//! `events_after` that returns only positions below the oldest in-flight transaction
//! (`pg_snapshot_xmin` with `xid8` columns), which lets commits overlap.
//!
//! Advisory locks are per database: stores in different schemas of one database share the
//! lock (still correct, only serialised together).
//!
//! # Durability
//!
//! An append is answered after its group's `COMMIT` returns. With PostgreSQL's default
//! `synchronous_commit = on` that means the commit record is flushed to disk (and, if
//! synchronous replication is configured, to the standby), so an acknowledged append survives
//! a crash. [`PostgresStore::connect`] logs a warning if the server has it `off`.
//!
//! # Failures
//!
//! Lost connections, pool timeouts, a server that is shutting down or starting up (SQLSTATE
//! 57P01-57P03), connection exceptions (class 08) and exhausted resources (class 53) are
//! reported as [`StoreError::Unavailable`], so callers answer "unavailable, try again" and a
//! retry with the same request id is replayed if the first attempt did commit after all. A
//! failed `COMMIT` is always [`StoreError::Unavailable`] for every append of its group: its
//! acknowledgement may have been lost after the commit happened.

mod checkpoint;
mod group;
mod reachability;
mod sql;
mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::sync::{mpsc, oneshot};

use crate::{
    AppendOutcome, AppendRequest, DossierRow, EventStore, ListFilter, PersonalData,
    RecordedRequest, StoreError, StoredEvent,
};
use reachability::Reachability;
use writer::{WriteOp, Writer};

/// Connections in the pool.
const MAX_CONNECTIONS: u32 = 16;
/// How long an operation waits for a pooled connection before reporting the store unavailable
/// (while the server is known to be down, [`reachability::KNOWN_DOWN_WAIT`] instead).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// How many queued appends one group transaction takes at most.
const MAX_GROUP: usize = 512;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The PostgreSQL event store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    writes: mpsc::Sender<WriteOp>,
    reachability: Arc<Reachability>,
}

impl PostgresStore {
    /// Connects to a `postgres://` URL and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(refine_sqlx)?;
        Self::connect_with(options).await
    }

    /// Connects with explicit options (for instance another database or a `search_path`) and
    /// applies pending migrations.
    pub async fn connect_with(options: PgConnectOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(refine_sqlx)?;
        MIGRATOR.run(&pool).await.map_err(|error| match error {
            sqlx::migrate::MigrateError::Execute(error) => refine_sqlx(error),
            other => StoreError::Database(other.into()),
        })?;
        let synchronous_commit: String = sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(&pool)
            .await
            .map_err(refine_sqlx)?;
        if synchronous_commit == "off" {
            tracing::warn!(
                %synchronous_commit,
                "PostgreSQL acknowledges commits before they are durable: an acknowledged \
                 append can be lost in a crash; set synchronous_commit = on"
            );
        }
        let (writes, queue) = mpsc::channel(4 * MAX_GROUP);
        let reachability = Arc::new(Reachability::default());
        tokio::spawn(Writer::new(pool.clone(), queue, MAX_GROUP, Arc::clone(&reachability)).run());
        Ok(Self {
            pool,
            writes,
            reachability,
        })
    }

    /// Closes the pool's connections; later calls fail as unavailable.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, StoreError> {
        self.reachability.acquire(&self.pool, MAX_CONNECTIONS).await
    }
}

/// Whether an error is a unique violation: a concurrent append won a race this one lost.
fn is_unique_violation(error: &StoreError) -> bool {
    matches!(error, StoreError::Database(sqlx::Error::Database(db)) if db.is_unique_violation())
}

/// SQLSTATEs that mean the server cannot serve now, not that the request is wrong.
fn is_unavailable_code(code: &str) -> bool {
    // 08: connection exception; 53: insufficient resources (too many connections, disk full);
    // 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now (starting up or
    // shutting down), 57P04 database dropped, 57P05 idle session timeout; 57014 query
    // cancelled (statement timeout); 58: system error (I/O); 25P03 idle in transaction
    // timeout.
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57P")
        || code == "57014"
        || code.starts_with("58")
        || code == "25P03"
}

fn refine_sqlx(error: sqlx::Error) -> StoreError {
    refine(error.into())
}

/// Turns database errors that mean "the server is not there" into
/// [`StoreError::Unavailable`]; the generic conversion already does so for I/O errors and pool
/// timeouts.
fn refine(error: StoreError) -> StoreError {
    match error {
        StoreError::Database(sqlx::Error::Database(db))
            if db.code().is_some_and(|code| is_unavailable_code(&code)) =>
        {
            StoreError::Unavailable(db.to_string())
        }
        StoreError::Database(error @ sqlx::Error::Protocol(_)) => {
            StoreError::Unavailable(error.to_string())
        }
        other => other,
    }
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        let op = WriteOp {
            request: Box::new(request),
            reply,
        };
        self.writes
            .send(op)
            .await
            .map_err(|_| StoreError::Unavailable("the postgres writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the postgres writer has stopped".into()))?
    }

    async fn dossier_events(&self, dossier_id: &str) -> Result<Vec<StoredEvent>, StoreError> {
        let mut conn = self.conn().await?;
        sql::dossier_events(&mut conn, dossier_id, 1, u64::MAX)
            .await
            .map_err(refine)
    }

    async fn many_dossier_events(
        &self,
        dossier_ids: &[&str],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut conn = self.conn().await?;
        sql::many_dossier_events(&mut conn, dossier_ids)
            .await
            .map_err(refine)
    }

    async fn recorded_request(
        &self,
        request_id: &str,
    ) -> Result<Option<RecordedRequest>, StoreError> {
        // Two statements, two snapshots: fine, because a request row commits together with its
        // events, so once the row is visible the events are too.
        let mut conn = self.conn().await?;
        sql::recorded_request(&mut conn, request_id)
            .await
            .map_err(refine)
    }

    async fn events_after(
        &self,
        position: u64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut conn = self.conn().await?;
        sql::events_after(&mut conn, position, limit)
            .await
            .map_err(refine)
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        sql::head_position(&mut conn).await.map_err(refine)
    }

    async fn list_dossiers(&self, filter: &ListFilter) -> Result<Vec<DossierRow>, StoreError> {
        let mut conn = self.conn().await?;
        sql::list_dossiers(&mut conn, filter).await.map_err(refine)
    }

    async fn next_dossier_number(&self, agency: &str, day: NaiveDate) -> Result<u32, StoreError> {
        let mut conn = self.conn().await?;
        sql::next_number(&mut conn, agency, day)
            .await
            .map_err(refine)
    }

    async fn personal_data(&self, dossier_id: &str) -> Result<Option<PersonalData>, StoreError> {
        let mut conn = self.conn().await?;
        sql::personal_data(&mut conn, dossier_id)
            .await
            .map_err(refine)
    }
}
