//! The event store: the write side of motcua.
//!
//! Every command appends its events in one transaction, conditional on the dossier's version
//! (optimistic concurrency on a unique `(dossier_id, seq)`) and on its request id (a retried
//! command never appends twice). Readers follow the global position. The store keeps events as
//! opaque encoded bytes with a few index columns, so it does not depend on the contract's
//! schema; the dossier table beside the events serves list queries and is written in the same
//! transaction.
//!
//! Implementations: [`sqlite::SqliteStore`] (the embedded default) and
//! [`postgres::PostgresStore`] (the distributed deployment's). Every implementation
//! passes the same scenario in `tests/scenario.rs`.

mod checkpoint;
mod group_plan;
mod model;
pub mod postgres;
pub mod sqlite;

pub use checkpoint::{Checkpoints, Lease};
pub use model::{
    AppendOutcome, AppendRequest, ClaimedNumber, DossierRow, ListFilter, NewEvent, PageKey,
    PersonalData, RecordedRequest, StoredEvent,
};

use async_trait::async_trait;
use chrono::NaiveDate;

/// Why a store operation failed. Callers branch on the first three; the rest are reported.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The dossier moved on since the caller read it.
    #[error("dossier {dossier_id} is at version {actual}, not {expected}")]
    VersionConflict {
        dossier_id: String,
        expected: u64,
        actual: u64,
    },
    /// The request id was used before for a different command.
    #[error("request id {request_id} was already used for a different command")]
    RequestIdReused { request_id: String },
    /// The daily sequence of an agency is exhausted.
    #[error("no dossier numbers left for agency {agency} on {day}")]
    SequenceExhausted { agency: String, day: NaiveDate },
    /// The database cannot be reached or is shutting down. What was asked may or may not have
    /// been written (a commit whose acknowledgement was lost); an append retried with the same
    /// request id says which.
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    /// Stored data that cannot be read back as written.
    #[error("event store data is corrupt: {0}")]
    Corrupt(String),
    #[error("event store error: {0}")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Self::Unavailable(error.to_string()),
            other => Self::Database(other),
        }
    }
}

/// The most dossiers [`EventStore::many_dossier_events`] takes at once: one parameter each,
/// well below SQLite's and PostgreSQL's limits.
pub const MANY_DOSSIERS: usize = 1_000;

/// The event store's operations. Object safe, so the binary can choose a backend at start.
#[async_trait]
pub trait EventStore: Send + Sync + std::fmt::Debug + 'static {
    /// Appends events to one dossier, atomically and durably: when this returns `Ok`, the
    /// events are on disk. Fails with [`StoreError::VersionConflict`] if the dossier is not at
    /// `expected_version`, and returns [`AppendOutcome::Replayed`] with the original events if
    /// the request id was recorded before with the same fingerprint.
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError>;

    /// A dossier's events, oldest first (empty if it does not exist).
    async fn dossier_events(&self, dossier_id: &str) -> Result<Vec<StoredEvent>, StoreError>;

    /// The events of several dossiers, each dossier's oldest first and its events together,
    /// the dossiers in no particular order (absent ones have none). One query instead of one
    /// per dossier, for callers that act on many dossiers at once (the deadline watcher's
    /// catch-up). At most [`MANY_DOSSIERS`] ids per call.
    async fn many_dossier_events(
        &self,
        dossier_ids: &[&str],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut events = Vec::new();
        for id in dossier_ids {
            events.extend(self.dossier_events(id).await?);
        }
        Ok(events)
    }

    /// What a request id recorded, if anything: lets a retry be answered before any work.
    async fn recorded_request(
        &self,
        request_id: &str,
    ) -> Result<Option<RecordedRequest>, StoreError>;

    /// Events with a global position greater than `position`, in position order, at most
    /// `limit`. Positions only grow, and an event is visible here only once committed, with
    /// every event of a lower position: what readers follow.
    async fn events_after(&self, position: u64, limit: u32)
    -> Result<Vec<StoredEvent>, StoreError>;

    /// The highest committed position (0 when empty).
    async fn head_position(&self) -> Result<u64, StoreError>;

    /// Dossiers matching a filter, a page at a time.
    async fn list_dossiers(&self, filter: &ListFilter) -> Result<Vec<DossierRow>, StoreError>;

    /// The next number of an agency's daily dossier sequence. Never returns the same number
    /// twice for one agency and day, also under concurrency.
    async fn next_dossier_number(&self, agency: &str, day: NaiveDate) -> Result<u32, StoreError>;

    /// A dossier's personal data, for the components allowed to see it.
    async fn personal_data(&self, dossier_id: &str) -> Result<Option<PersonalData>, StoreError>;
}
