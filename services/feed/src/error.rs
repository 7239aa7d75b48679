//! Errors of the feed and of readers, and which of them are worth retrying.

use motcua_store::StoreError;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::db::Backend;

/// Why a reader's `apply` failed. The runner rolls the batch's transaction back in every case;
/// what it does next depends on the variant.
#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    /// A database error. Retried (same batch, after a back-off) when it means "not now"
    /// (connection lost, deadlock, serialization failure, SQLite busy); otherwise the runner
    /// stops with it, because retrying a deterministic failure would only spin.
    #[error("reader database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Something the reader depends on is away (an HTTP endpoint, say): the same batch is
    /// retried after a back-off.
    #[error("reader cannot apply now: {0}")]
    Transient(String),
    /// A bug or broken invariant: the runner stops and returns it, so an operator sees it
    /// instead of a reader that silently skips work.
    #[error("reader failed: {0}")]
    Unexpected(#[from] anyhow::Error),
}

/// Why the feed or the reader runner stopped.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The reader's own database (positions, dedupe and read-model tables).
    #[error("reader database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The event store the SQL feed follows.
    #[error("event store error: {0}")]
    Store(#[from] StoreError),
    /// The Kafka client.
    #[error("kafka error: {0}")]
    Kafka(#[from] KafkaError),
    /// The reader refused a batch for good.
    #[error(transparent)]
    Reader(ReaderError),
    /// A Kafka message arrived on the consumer's main queue although every assigned partition
    /// has a queue of its own: the feed can no longer prove it sees every record in order, so
    /// it stops (a restart resumes from the positions in SQL).
    #[error("kafka message for {topic}[{partition}]@{offset} bypassed its partition queue")]
    StrayMessage {
        topic: String,
        partition: i32,
        offset: i64,
    },
    /// The broker kept answering a fetch with records after the one asked for, also after the
    /// lane fetched again from further back: the records in between cannot be read from this
    /// broker, and moving the position past them would lose them. The reader stops; its
    /// position stays before the missing records.
    #[error(
        "the broker skips records of {topic}[{partition}]: asked for offset {expected}, got \
         {got} (after {attempts} fetches from further back); stopping before the missing records"
    )]
    BrokerSkipped {
        topic: String,
        partition: i32,
        expected: i64,
        got: i64,
        attempts: u32,
    },
    /// A dossier's events arrived with seqs missing, and the missing events could not be read
    /// from the event store (none configured, or the store does not have them either). The
    /// reader stops rather than apply the later event over the hole.
    #[error(
        "events {first_missing} to {last_missing} of dossier {dossier_id} never arrived and \
         cannot be read from the event store: {reason}"
    )]
    SeqGap {
        dossier_id: String,
        first_missing: u64,
        last_missing: u64,
        reason: String,
    },
    /// Bad configuration, found at start.
    #[error("invalid feed configuration: {0}")]
    Config(String),
    /// The feed's client is gone or was never started (a bug in how it is driven).
    #[error("the feed is closed: {0}")]
    Closed(String),
}

impl FeedError {
    /// Whether the operation that failed may succeed if tried again later: the dependency was
    /// away, not the request wrong.
    pub fn is_transient(&self, backend: Backend) -> bool {
        match self {
            Self::Database(error) => is_transient_sqlx(error, backend),
            Self::Store(StoreError::Unavailable(_)) => true,
            Self::Store(_) => false,
            Self::Kafka(error) => is_transient_kafka(error),
            Self::Reader(ReaderError::Transient(_)) => true,
            Self::Reader(ReaderError::Database(error)) => is_transient_sqlx(error, backend),
            Self::Reader(ReaderError::Unexpected(_)) => false,
            Self::StrayMessage { .. }
            | Self::BrokerSkipped { .. }
            | Self::SeqGap { .. }
            | Self::Config(_)
            | Self::Closed(_) => false,
        }
    }
}

impl From<ReaderError> for FeedError {
    fn from(error: ReaderError) -> Self {
        Self::Reader(error)
    }
}

/// Whether a database error means "try again": the server or the connection was away, or the
/// transaction lost a race (deadlock, serialization failure, SQLite's lock).
pub(crate) fn is_transient_sqlx(error: &sqlx::Error, backend: Backend) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let Some(code) = db.code() else {
                return false;
            };
            match backend {
                // 40001 serialization failure, 40P01 deadlock; 08 connection exception;
                // 53 insufficient resources; 57P0x shutdown / cannot connect now; 57014 query
                // cancelled; 58 system error (I/O); 25P03 idle-in-transaction timeout.
                Backend::Postgres => {
                    code == "40001"
                        || code == "40P01"
                        || code.starts_with("08")
                        || code.starts_with("53")
                        || code.starts_with("57P")
                        || code == "57014"
                        || code.starts_with("58")
                        || code == "25P03"
                }
                // Extended result codes: the primary code is the low byte. 5 SQLITE_BUSY (and
                // BUSY_SNAPSHOT, BUSY_TIMEOUT, ...), 6 SQLITE_LOCKED, 10 SQLITE_IOERR,
                // 13 SQLITE_FULL.
                Backend::Sqlite => code
                    .parse::<i64>()
                    .is_ok_and(|code| matches!(code & 0xff, 5 | 6 | 10 | 13)),
            }
        }
        _ => false,
    }
}

/// Whether a Kafka error is worth retrying: anything but a fatal client error or bad
/// configuration (librdkafka reconnects and retries by itself underneath).
pub(crate) fn is_transient_kafka(error: &KafkaError) -> bool {
    match error {
        KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_) => false,
        other => !matches!(
            other.rdkafka_error_code(),
            Some(RDKafkaErrorCode::Fatal | RDKafkaErrorCode::InvalidArgument)
        ),
    }
}
