//! The event feed: how readers (projectors, the deadline watcher, the portal adapter) follow
//! the dossier events.
//!
//! A reader implements [`Reader`] once: it applies a batch of [`FeedEvent`]s to its own tables
//! in a transaction it is handed. [`ReaderRunner`] (or [`run_reader`]) feeds it from either
//! source, behind the [`Feed`] trait:
//!
//! - [`SqlTableFeed`]: follows the event store's table through `EventStore::events_after`: the
//!   embedded mode, on SQLite or PostgreSQL.
//! - [`KafkaFeed`]: a consumer group on `motcua.dossier-events.v1`: the distributed mode. Each
//!   assigned partition is applied on its own task, so a slow partition does not hold up
//!   others.
//!
//! The contract ("readers own their state", DESIGN.md): each batch's work and the reader's new
//! position commit in one SQL transaction, in the reader's database ([`ReaderDb`], SQLite or
//! PostgreSQL through sqlx's `Any` driver). A crash replays, never skips; a rebalance cannot make
//! two consumers both apply a record (the position moves by compare-and-set); a republished
//! `(dossier_id, seq)` is dropped before the reader sees it ([`filter_new`]); a record that is
//! not a valid event is dead-lettered with the reason and the reader moves past it. See
//! `runner.rs` for why each holds, and `kafka.rs` for where a partition starts.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use motcua_feed::{
//!     FeedError, FeedEvent, KafkaFeed, KafkaFeedConfig, Migration, Reader, ReaderDb,
//!     ReaderError, ReaderTx, SqlTableFeed, run_reader,
//! };
//! use tokio_util::sync::CancellationToken;
//!
//! /// Which dossiers were received: one row each.
//! struct Received;
//!
//! #[async_trait::async_trait]
//! impl Reader for Received {
//!     fn name(&self) -> &str {
//!         "received"
//!     }
//!
//!     async fn apply(&self, tx: &mut ReaderTx, events: &[FeedEvent]) -> Result<(), ReaderError> {
//!         for event in events.iter().filter(|event| event.event_type == "received") {
//!             sqlx::query("INSERT INTO received (dossier_id) VALUES ($1)")
//!                 .bind(&event.dossier_id)
//!                 .execute(&mut **tx)
//!                 .await?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! async fn embedded(store: Arc<dyn motcua_store::EventStore>) -> Result<(), FeedError> {
//!     let db = ReaderDb::connect("sqlite://received.db").await?;
//!     let table = "CREATE TABLE received (dossier_id TEXT PRIMARY KEY)";
//!     db.migrate("received", &[Migration { version: 1, description: "received",
//!         sqlite: table, postgres: table }]).await?;
//!     run_reader(SqlTableFeed::new(store), Received, db, CancellationToken::new()).await
//! }
//!
//! async fn distributed(database_url: &str, brokers: &str) -> Result<(), FeedError> {
//!     let db = ReaderDb::connect(database_url).await?;
//!     let feed = KafkaFeed::new(KafkaFeedConfig::new(brokers));
//!     run_reader(feed, Received, db, CancellationToken::new()).await
//! }
//! ```

mod db;
mod error;
mod event;
mod feed;
pub mod kafka;
mod placeholders;
mod positions;
mod runner;
mod sql_feed;

pub use db::{Backend, Migration, ReaderDb, ReaderDbOptions, ReaderTx};
pub use error::{FeedError, ReaderError};
pub use event::{FeedEvent, FeedRecord, Poison, RecordItem, SourcePosition, decode};
pub use feed::{
    Feed, FeedLane, FeedStart, FeedStatus, KnownPositions, LaneChange, PartitionStatus,
    StatusSender,
};
pub use kafka::{KafkaFeed, KafkaFeedConfig, KafkaLane};
pub use placeholders::Placeholders;
pub use positions::{
    DeadLetter, Filtered, Missing, advance_position, advance_position_postgres, dead_letters,
    filter_new, load_position,
};
pub use runner::{Reader, ReaderRunner, RunnerOptions, run_reader};
pub use sql_feed::{FeedWaker, SqlLane, SqlTableFeed};
