//! The SQLite event store: the embedded default.
//!
//! SQLite has one writer at a time, and a durable commit costs an fsync. So all writes go
//! through one writer task that takes every append waiting in its queue, runs them in one
//! transaction, and commits them together: one fsync for many commands (group commit). An
//! append checks before it writes, so a refused one leaves the others untouched. Nobody is
//! answered before the commit, so an acknowledged append is on disk (WAL with `synchronous = FULL`). Reads use
//! a separate pool, which WAL lets run beside the writer.

mod checkpoint;
mod group;
mod sql;
mod writer;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use sqlx::sqlite::SqliteSynchronous;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use tokio::sync::{mpsc, oneshot};

use crate::{
    AppendOutcome, AppendRequest, DossierRow, EventStore, ListFilter, PersonalData,
    RecordedRequest, StoreError, StoredEvent,
};
use writer::{WriteOp, Writer};

/// How many queued writes one transaction takes at most.
const MAX_GROUP: usize = 512;

/// The embedded event store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    readers: SqlitePool,
    writes: mpsc::Sender<WriteOp>,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl SqliteStore {
    /// Opens (creating if needed) the store in a file, and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let url = format!("sqlite://{}", path.display());
        Self::open_url(&url).await
    }

    /// Opens the store from an `sqlite://` URL.
    pub async fn open_url(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: the WAL is synced at every commit, so an acknowledged append survives a
            // power cut, not only a process crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            // 64 MiB of page cache (negative: KiB): the hot index pages of a busy node stay
            // in memory instead of being read back from the OS on every lookup.
            .pragma("cache_size", "-65536")
            .foreign_keys(true);
        let mut writer_conn = sqlx::ConnectOptions::connect(&options).await?;
        MIGRATOR
            .run_direct(&mut writer_conn)
            .await
            .map_err(|e| StoreError::Database(e.into()))?;
        let readers = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(options.read_only(true))
            .await?;
        let (writes, queue) = mpsc::channel(4 * MAX_GROUP);
        tokio::spawn(Writer::new(writer_conn, queue, MAX_GROUP).run());
        Ok(Self { readers, writes })
    }

    async fn write<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> WriteOp,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(make(reply))
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite writer stopped mid-write".into()))?
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        self.write(|reply| WriteOp::Append(Box::new(request), reply))
            .await
    }

    async fn dossier_events(&self, dossier_id: &str) -> Result<Vec<StoredEvent>, StoreError> {
        let mut conn = self.readers.acquire().await?;
        sql::dossier_events(&mut conn, dossier_id, 1, u64::MAX).await
    }

    async fn many_dossier_events(
        &self,
        dossier_ids: &[&str],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut conn = self.readers.acquire().await?;
        sql::many_dossier_events(&mut conn, dossier_ids).await
    }

    async fn recorded_request(
        &self,
        request_id: &str,
    ) -> Result<Option<RecordedRequest>, StoreError> {
        let mut conn = self.readers.acquire().await?;
        sql::recorded_request(&mut conn, request_id).await
    }

    async fn events_after(
        &self,
        position: u64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut conn = self.readers.acquire().await?;
        sql::events_after(&mut conn, position, limit).await
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        let mut conn = self.readers.acquire().await?;
        sql::head_position(&mut conn).await
    }

    async fn list_dossiers(&self, filter: &ListFilter) -> Result<Vec<DossierRow>, StoreError> {
        let mut conn = self.readers.acquire().await?;
        sql::list_dossiers(&mut conn, filter).await
    }

    async fn next_dossier_number(&self, agency: &str, day: NaiveDate) -> Result<u32, StoreError> {
        let agency = agency.to_owned();
        self.write(|reply| WriteOp::NextNumber { agency, day, reply })
            .await
    }

    async fn personal_data(&self, dossier_id: &str) -> Result<Option<PersonalData>, StoreError> {
        let mut conn = self.readers.acquire().await?;
        sql::personal_data(&mut conn, dossier_id).await
    }
}
