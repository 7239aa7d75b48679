//! The embedded mode's feed: follows the event store's table through
//! [`EventStore::events_after`].
//!
//! The store's positions are global, dense and commit-ordered, so one lane reading "events
//! after my position" in order sees every committed event exactly once, with nothing to
//! rebalance. When it is caught up it polls every `poll_interval`, or sooner when a
//! [`FeedWaker`] it shares with the writer says something was appended.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use motcua_store::{EventStore, StoredEvent};
use tokio::sync::watch;

use crate::FeedError;
use crate::event::{FeedRecord, Poison, RecordItem, SourcePosition, decode};
use crate::feed::{Feed, FeedLane, FeedStart, LaneChange, StatusSender};

/// The partition number of the SQL feed's one lane.
const SQL_PARTITION: i32 = 0;

/// How often the lane asks the store for its head while it is behind, for the lag metric.
const HEAD_REFRESH: Duration = Duration::from_secs(1);

/// Wakes SQL feeds early: the writer calls [`FeedWaker::wake`] after a commit, so a caught-up
/// reader does not wait out its poll interval. Cheap to clone; one waker can serve every reader
/// of a node.
#[derive(Debug, Clone)]
pub struct FeedWaker(Arc<watch::Sender<u64>>);

impl Default for FeedWaker {
    fn default() -> Self {
        Self::new()
    }
}

impl FeedWaker {
    pub fn new() -> Self {
        Self(Arc::new(watch::Sender::new(0)))
    }

    /// Tells every feed sharing this waker that there may be new events. Never blocks; a wake
    /// with nobody waiting is remembered until the next wait.
    pub fn wake(&self) {
        self.0.send_modify(|count| *count = count.wrapping_add(1));
    }
}

/// Follows the event store's SQL table: the embedded mode's feed.
#[derive(Debug)]
pub struct SqlTableFeed {
    store: Arc<dyn EventStore>,
    poll_interval: Duration,
    waker: Option<FeedWaker>,
    /// Set by `start`; taken by the first `next_change`.
    lane: Option<SqlLane>,
}

impl SqlTableFeed {
    /// A feed on `store`, polling every 50 ms when caught up.
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            store,
            poll_interval: Duration::from_millis(50),
            waker: None,
            lane: None,
        }
    }

    /// How long a caught-up lane waits before asking the store again (when no waker wakes it
    /// earlier). Short intervals cost one cheap indexed query each.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Wakes the lane as soon as `waker` is woken.
    pub fn with_waker(mut self, waker: &FeedWaker) -> Self {
        self.waker = Some(waker.clone());
        self
    }
}

#[async_trait]
impl Feed for SqlTableFeed {
    type Lane = SqlLane;

    fn source(&self) -> String {
        "sql".to_owned()
    }

    async fn start(&mut self, start: FeedStart) -> Result<(), FeedError> {
        self.lane = Some(SqlLane {
            store: self.store.clone(),
            after: 0,
            poll_interval: self.poll_interval,
            wakes: self.waker.as_ref().map(|waker| waker.0.subscribe()),
            status: start.status,
            head_checked: None,
            ahead: None,
        });
        Ok(())
    }

    async fn next_change(&mut self) -> Result<LaneChange<SqlLane>, FeedError> {
        match self.lane.take() {
            Some(lane) => Ok(LaneChange::Assigned(vec![lane])),
            // The one lane is never revoked.
            None => std::future::pending().await,
        }
    }

    async fn close(self) -> Result<(), FeedError> {
        Ok(())
    }
}

/// The SQL feed's single lane.
#[derive(Debug)]
pub struct SqlLane {
    store: Arc<dyn EventStore>,
    /// The global position of the last record returned (or sought to).
    after: u64,
    poll_interval: Duration,
    wakes: Option<watch::Receiver<u64>>,
    status: StatusSender,
    /// When the head was last read from the store.
    head_checked: Option<Instant>,
    /// The next batch, being read while the reader applies the last one: started only after a
    /// full batch (the lane is behind, as in a rebuild or a catch-up), so reading the store,
    /// decoding and applying overlap instead of taking turns.
    ahead: Option<ReadAhead>,
}

/// A batch being read in the background: the records after `after`, at most `limit`.
#[derive(Debug)]
struct ReadAhead {
    after: u64,
    limit: u32,
    task: tokio::task::JoinHandle<Result<Vec<FeedRecord>, FeedError>>,
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads and decodes the records after `after`.
async fn read(
    store: &Arc<dyn EventStore>,
    after: u64,
    limit: u32,
) -> Result<Vec<FeedRecord>, FeedError> {
    let events = store.events_after(after, limit).await?;
    Ok(events.into_iter().map(record).collect())
}

impl SqlLane {
    async fn wait_for_more(&mut self) {
        let sleep = tokio::time::sleep(self.poll_interval);
        match &mut self.wakes {
            Some(wakes) => {
                tokio::select! {
                    () = sleep => {}
                    // An error means every waker is gone: only the interval is left.
                    _ = wakes.changed() => {}
                }
            }
            None => sleep.await,
        }
    }

    /// Reports the store's head. Caught up, the head is where the lane is; behind, it is read
    /// from the store, at most once per [`HEAD_REFRESH`].
    async fn report_head(&mut self, caught_up_at: Option<u64>) -> Result<(), FeedError> {
        let head = match caught_up_at {
            Some(position) => position,
            None if self
                .head_checked
                .is_none_or(|checked| checked.elapsed() >= HEAD_REFRESH) =>
            {
                self.head_checked = Some(Instant::now());
                self.store.head_position().await?
            }
            None => return Ok(()),
        };
        let head = i64::try_from(head).unwrap_or(i64::MAX);
        self.status
            .update(SQL_PARTITION, |status| status.head = Some(head));
        Ok(())
    }
}

#[async_trait]
impl FeedLane for SqlLane {
    fn partition(&self) -> i32 {
        SQL_PARTITION
    }

    async fn seek(&mut self, resume: Option<i64>) -> Result<(), FeedError> {
        self.after = resume.map_or(0, |resume| u64::try_from(resume).unwrap_or(0));
        self.ahead = None;
        Ok(())
    }

    async fn next_batch(&mut self, max: usize) -> Result<Vec<FeedRecord>, FeedError> {
        let limit = u32::try_from(max.max(1)).unwrap_or(u32::MAX);
        loop {
            // Before the wait is marked seen, so a wake during the query is not lost.
            if let Some(wakes) = &mut self.wakes {
                wakes.borrow_and_update();
            }
            let records = match self.ahead.take() {
                Some(mut ahead) if ahead.after == self.after && ahead.limit == limit => {
                    match (&mut ahead.task).await {
                        Ok(read) => read?,
                        // Aborted or panicked: read it here instead.
                        Err(_) => read(&self.store, self.after, limit).await?,
                    }
                }
                _ => read(&self.store, self.after, limit).await?,
            };
            let Some(last) = records.last().and_then(|r| u64::try_from(r.resume).ok()) else {
                self.report_head(Some(self.after)).await?;
                self.wait_for_more().await;
                continue;
            };
            let caught_up = records.len() < max;
            self.report_head(caught_up.then_some(last)).await?;
            if !caught_up {
                let store = Arc::clone(&self.store);
                self.ahead = Some(ReadAhead {
                    after: last,
                    limit,
                    task: tokio::spawn(async move { read(&store, last, limit).await }),
                });
            }
            // Moved only now, with no await left before returning: cancel-safe.
            self.after = last;
            return Ok(records);
        }
    }

    async fn dead_letter(&self, _reader: &str, _poison: &Poison) -> Result<(), FeedError> {
        // Nothing outside the reader's database: `feed_dead_letters`, written in the batch's
        // transaction, is the SQL feed's dead-letter store.
        Ok(())
    }

    fn committed(&mut self, _resume: i64) {}
}

/// A stored event as a feed record: decoded and checked like a Kafka record, so a corrupt
/// payload is a dead letter here too instead of a reader stuck on it forever.
fn record(stored: StoredEvent) -> FeedRecord {
    let source = SourcePosition::Sql {
        position: stored.position,
    };
    let resume = i64::try_from(stored.position).unwrap_or(i64::MAX);
    let item = match decode(
        Some(stored.dossier_id.as_bytes()),
        Some(&stored.payload),
        source,
    ) {
        Ok(event) if event.seq == stored.seq => RecordItem::Event(event),
        Ok(event) => RecordItem::Poison(Poison {
            reason: format!(
                "the payload's seq {} is not the stored seq {}",
                event.seq, stored.seq
            ),
            key: Some(stored.dossier_id.into_bytes()),
            payload: Some(stored.payload),
            headers: Vec::new(),
            source,
        }),
        Err(reason) => RecordItem::Poison(Poison {
            reason,
            key: Some(stored.dossier_id.into_bytes()),
            payload: Some(stored.payload),
            headers: Vec::new(),
            source,
        }),
    };
    FeedRecord { resume, item }
}
