//! The feed abstraction: what the reader runner needs from a source of events, so that a
//! reader's logic and the runner's position bookkeeping are written once for both sources.
//!
//! A feed is a set of *lanes*: independently ordered sequences of records, each with its own
//! position. The SQL feed has one lane (partition 0, the store's global order); the Kafka feed
//! has one per assigned partition, and lanes come and go as the consumer group rebalances. The
//! runner applies each lane on a task of its own, so a slow partition does not hold up others.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::watch;

use crate::FeedError;
use crate::event::{FeedRecord, Poison};

/// A source of events for readers: [`crate::SqlTableFeed`] or [`crate::KafkaFeed`].
#[async_trait]
pub trait Feed: Send + 'static {
    /// The lanes this feed hands out.
    type Lane: FeedLane;

    /// Names what this feed follows in the `feed_positions` table (`sql`, `kafka:<topic>`):
    /// positions of different sources are never mixed up.
    fn source(&self) -> String;

    /// Starts following for a reader. Called once, before [`Feed::next_change`].
    async fn start(&mut self, start: FeedStart) -> Result<(), FeedError>;

    /// Waits for lanes to be assigned or revoked. Cancel-safe: the runner calls it in a
    /// `select!` beside its shutdown signal.
    async fn next_change(&mut self) -> Result<LaneChange<Self::Lane>, FeedError>;

    /// Stops following (the Kafka feed leaves its consumer group). Called after every lane
    /// handed out was dropped.
    async fn close(self) -> Result<(), FeedError>;
}

/// One independently ordered sequence of records with its own position.
#[async_trait]
pub trait FeedLane: Send + Sync + 'static {
    /// The lane's partition (0 for the SQL feed).
    fn partition(&self) -> i32;

    /// Makes the next batch start right after `resume` (a position from `feed_positions`;
    /// `None`: from the very beginning). Called when the lane starts, and again whenever the
    /// runner finds the stored position moved under it.
    async fn seek(&mut self, resume: Option<i64>) -> Result<(), FeedError>;

    /// The next records after the last one returned (or the last seek), at most `max`, waiting
    /// until there is at least one. Cancel-safe: records are taken from the source only in the
    /// poll that returns them.
    async fn next_batch(&mut self, max: usize) -> Result<Vec<FeedRecord>, FeedError>;

    /// Makes a poison record durable outside the reader's database before the reader moves
    /// past it (the Kafka feed's dead-letter topic). Returns only once that is done.
    async fn dead_letter(&self, reader: &str, poison: &Poison) -> Result<(), FeedError>;

    /// The reader committed everything up to `resume` in SQL. Only a hint for the outside (the
    /// Kafka feed commits the offset to the broker, so the group's lag is visible to Kafka's
    /// tools); the position in SQL stays what counts.
    fn committed(&mut self, resume: i64);
}

/// Lanes handed to or taken from the runner.
#[derive(Debug)]
pub enum LaneChange<L> {
    Assigned(Vec<L>),
    Revoked(Vec<i32>),
}

/// What a feed learns when it starts.
#[derive(Debug, Clone)]
pub struct FeedStart {
    /// The reader's name: its rows in the feed's tables, and its consumer group.
    pub reader: String,
    /// The positions the runner knows, kept current as lanes commit.
    pub known: KnownPositions,
    /// Where the feed reports heads and assignment, for metrics.
    pub status: StatusSender,
}

/// The resume positions of one reader's partitions, as last read from or written to SQL. The
/// Kafka feed uses them to start an assigned partition where the reader stands, because its
/// rebalance callback cannot wait for SQL. Never ahead of SQL: it is loaded from SQL and then
/// updated only after commits, and stored positions only grow.
#[derive(Debug, Clone, Default)]
pub struct KnownPositions(Arc<Mutex<HashMap<i32, i64>>>);

impl KnownPositions {
    pub fn new(positions: HashMap<i32, i64>) -> Self {
        Self(Arc::new(Mutex::new(positions)))
    }

    pub fn get(&self, partition: i32) -> Option<i64> {
        self.lock().get(&partition).copied()
    }

    pub fn set(&self, partition: i32, resume: i64) {
        self.lock().insert(partition, resume);
    }

    pub fn forget(&self, partition: i32) {
        self.lock().remove(&partition);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, i64>> {
        // A panic while holding this lock cannot leave the map half-written (single inserts
        // and removes), so a poisoned lock is still a consistent map.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A reader's progress per partition, for metrics: the binary exports these numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedStatus {
    pub partitions: BTreeMap<i32, PartitionStatus>,
}

impl FeedStatus {
    /// The total lag over the partitions assigned here.
    pub fn total_lag(&self) -> u64 {
        self.partitions
            .values()
            .filter(|partition| partition.assigned)
            .filter_map(PartitionStatus::lag)
            .sum()
    }
}

/// One partition's progress. Counters count since the process started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionStatus {
    /// Whether this process follows the partition now.
    pub assigned: bool,
    /// The resume position committed in SQL (see `feed_positions`).
    pub position: Option<i64>,
    /// Where the source ends: the store's head position, or the partition's high watermark
    /// (the offset the next record will get).
    pub head: Option<i64>,
    /// Events applied (after deduplication).
    pub applied: u64,
    /// Events dropped as repeated `(dossier_id, seq)`.
    pub duplicates: u64,
    /// Poison records moved past.
    pub dead_lettered: u64,
    /// Events that skipped seqs of their dossier.
    pub gaps: u64,
    /// Transactions committed.
    pub batches: u64,
}

impl PartitionStatus {
    /// How far behind the source this partition is: records not yet applied. Unknown until
    /// the head is known.
    pub fn lag(&self) -> Option<u64> {
        let head = self.head?;
        Some(u64::try_from(head - self.position.unwrap_or(0)).unwrap_or(0))
    }
}

/// The sending side of a runner's status. Every change also sets the partition's
/// `motcua_feed_lag` gauge: records in the source not yet applied by this reader, against
/// the store's head or the partition's high watermark (what Kafka's own lag tools show for a
/// group, but measured from the position committed in SQL, the one that counts).
#[derive(Debug, Clone)]
pub struct StatusSender {
    status: Arc<watch::Sender<FeedStatus>>,
    reader: Arc<str>,
}

impl StatusSender {
    pub(crate) fn new(reader: &str) -> Self {
        Self {
            status: Arc::new(watch::Sender::new(FeedStatus::default())),
            reader: Arc::from(reader),
        }
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<FeedStatus> {
        self.status.subscribe()
    }

    /// Marks every partition as no longer followed here (the runner stopped).
    pub(crate) fn release_all(&self) {
        self.status.send_modify(|status| {
            for (&partition, progress) in &mut status.partitions {
                progress.assigned = false;
                self.export(partition, progress);
            }
        });
    }

    /// Changes one partition's status.
    pub fn update(&self, partition: i32, change: impl FnOnce(&mut PartitionStatus)) {
        self.status.send_modify(|status| {
            let progress = status.partitions.entry(partition).or_default();
            change(progress);
            self.export(partition, progress);
        });
    }

    /// The lag gauge of a partition followed here; 0 once it is not (another process, or
    /// nobody, follows it: that one's gauge counts).
    fn export(&self, partition: i32, progress: &PartitionStatus) {
        let lag = if progress.assigned {
            progress.lag()
        } else {
            Some(0)
        };
        if let Some(lag) = lag {
            metrics::gauge!(
                "motcua_feed_lag",
                "reader" => self.reader.to_string(),
                "lane" => partition.to_string()
            )
            .set(lag as f64);
        }
    }
}
