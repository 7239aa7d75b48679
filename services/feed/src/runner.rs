//! The reader runner: applies a feed's batches to a reader, each batch and its position in one
//! SQL transaction.
//!
//! # Why a crash replays and never skips
//!
//! A batch commits its work, its new position, its dedupe seqs and its dead letters together,
//! or none of them. A crash before the commit leaves the old position, so the batch is read
//! again; after it, the new one, so the batch is not. The broker hears about the position only
//! after the commit, and is never asked where to resume.
//!
//! # Why two consumers of one partition never both count a record
//!
//! After a rebalance the old owner of a partition may still be finishing a batch while the
//! new owner starts at the position it read from SQL. Every transaction therefore begins by
//! moving the position with a compare-and-set from the value its lane started from (an
//! `UPDATE … WHERE position = expected`, or an insert for the first). That statement takes the
//! row's lock, so the second writer waits for the first to commit, then finds the position
//! moved and rolls back; its lane reloads the position and seeks there. So a batch commits only
//! if nobody committed anything for that partition since the lane read its position.
//!
//! # Why a republished event counts once
//!
//! The relay may publish an event again after a crash (same `(dossier_id, seq)`, a new
//! offset). [`crate::filter_new`] drops events whose seq is not above the last one the reader
//! applied for their dossier, in the same transaction.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::db::{Backend, ReaderDb, ReaderTx};
use crate::event::{FeedEvent, FeedRecord, Poison, RecordItem};
use crate::event::{SourcePosition, decode};
use crate::feed::{
    Feed, FeedLane, FeedStart, FeedStatus, KnownPositions, LaneChange, StatusSender,
};
use crate::positions::{self, Filtered, Missing};
use crate::{FeedError, ReaderError};
use motcua_store::EventStore;

/// A reader: turns batches of events into writes to its own tables.
#[async_trait::async_trait]
pub trait Reader: Send + Sync + 'static {
    /// The reader's stable name: the key of its rows in the feed's tables, and (by default)
    /// its Kafka consumer group. A new name starts from the beginning.
    fn name(&self) -> &str;

    /// Applies events, in order, in `tx`. The runner records the position in the same
    /// transaction and commits; an error rolls everything back (see [`ReaderError`] for what
    /// happens next). The events are new for this reader: repeated `(dossier_id, seq)` were
    /// dropped (unless [`RunnerOptions::dedupe`] is off). Each dossier's events arrive in seq
    /// order; events of different dossiers may be applied concurrently by different lanes
    /// (Kafka partitions), so rows shared between dossiers (totals, say) are updated by
    /// concurrent transactions: PostgreSQL makes them wait on each other's row locks, and a
    /// deadlock between two of them is retried like any transient error.
    async fn apply(&self, tx: &mut ReaderTx, events: &[FeedEvent]) -> Result<(), ReaderError>;

    /// Called after the transaction of a batch committed, with the events `apply` got. For
    /// state outside the database (an in-memory cache, a notification) that must never run
    /// ahead of what is durable; it is not called for a batch that rolled back, and after a
    /// crash it is not called again for batches that committed before.
    fn after_commit(&self, events: &[FeedEvent]) {
        let _ = events;
    }

    /// For a reader that keeps each dossier's applied seq itself and so runs with the
    /// runner's dedupe off (the rates projector, whose dossier rows carry their version): the
    /// last seq applied for each of `dossier_ids`, read in `tx` (absent: none applied). With
    /// it, the runner finds seq gaps in a batch as it does with its own table, and heals them
    /// from the event store or stops ([`ReaderRunner::heal_gaps_from`]); the reader still
    /// drops repeats itself. `None` (the default): the reader does not say, and only the
    /// runner's dedupe table can find gaps.
    async fn applied_seqs(
        &self,
        tx: &mut ReaderTx,
        dossier_ids: &[&str],
    ) -> Result<Option<HashMap<String, u64>>, ReaderError> {
        let _ = (tx, dossier_ids);
        Ok(None)
    }
}

/// How the runner batches and retries.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// Records per transaction at most. Larger batches amortise the commit; smaller ones hold
    /// locks for less time.
    pub max_batch: usize,
    /// Drop repeated `(dossier_id, seq)` before `apply`. Off only for readers that want to
    /// see duplicates (an auditor, say).
    pub dedupe: bool,
    /// The first wait before retrying after a transient failure; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            max_batch: 500,
            dedupe: true,
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Runs a reader on a feed until shutdown. Build it, take [`ReaderRunner::status`] for the
/// metrics, then [`ReaderRunner::run`].
#[derive(Debug)]
pub struct ReaderRunner<F, R> {
    feed: F,
    reader: Arc<R>,
    db: ReaderDb,
    options: RunnerOptions,
    status: StatusSender,
    /// Where events missing before a seq gap are read from; `None`: a gap stops the reader.
    healer: Option<Arc<dyn EventStore>>,
}

/// Runs `reader` on `feed` with default options until `shutdown` is cancelled or a fatal error.
pub async fn run_reader<F: Feed, R: Reader>(
    feed: F,
    reader: R,
    db: ReaderDb,
    shutdown: CancellationToken,
) -> Result<(), FeedError> {
    ReaderRunner::new(feed, reader, db).run(shutdown).await
}

impl<F: Feed, R: Reader> ReaderRunner<F, R> {
    pub fn new(feed: F, reader: R, db: ReaderDb) -> Self {
        let status = StatusSender::new(reader.name());
        Self {
            feed,
            reader: Arc::new(reader),
            db,
            options: RunnerOptions::default(),
            status,
            healer: None,
        }
    }

    /// Heals seq gaps from `store`, the source of truth: when a dossier's event arrives after
    /// seqs the reader never got (a relay fault, a topic repartitioned under a dossier), the
    /// missing events are read from the store and applied first, in the same transaction.
    /// Without a store to heal from, a gap stops the reader ([`FeedError::SeqGap`]): an event
    /// is never applied over missing ones. The gaps are found in the runner's table of last
    /// seqs ([`RunnerOptions::dedupe`]), or, with the dedupe off, in the reader's own
    /// ([`Reader::applied_seqs`]).
    pub fn heal_gaps_from(mut self, store: Arc<dyn EventStore>) -> Self {
        self.healer = Some(store);
        self
    }

    pub fn options(mut self, options: RunnerOptions) -> Self {
        self.options = options;
        self
    }

    /// The reader's progress per partition, updated as it goes: what the binary exports as
    /// metrics (lag, applied, duplicates, dead letters).
    pub fn status(&self) -> watch::Receiver<FeedStatus> {
        self.status.subscribe()
    }

    /// Follows the feed until `shutdown` is cancelled (then returns `Ok` once every lane has
    /// finished its current transaction and the feed is closed), or until a fatal error. Lanes
    /// run on tasks of their own; dropping this future aborts them, like a crash would.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), FeedError> {
        let Self {
            mut feed,
            reader,
            db,
            options,
            status,
            healer,
        } = self;
        let source = feed.source();
        let known = loop {
            match positions::load_positions(&db, reader.name(), &source).await {
                Ok(known) => break KnownPositions::new(known),
                Err(error) => {
                    let error = FeedError::from(error);
                    if !error.is_transient(db.backend()) {
                        return Err(error);
                    }
                    tracing::warn!(%error, "cannot read the reader's positions; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return Ok(()),
                        () = tokio::time::sleep(options.max_backoff) => {}
                    }
                }
            }
        };
        feed.start(FeedStart {
            reader: reader.name().to_owned(),
            known: known.clone(),
            status: status.clone(),
        })
        .await?;
        tracing::info!(reader = reader.name(), source, "reader started");

        let context = Arc::new(LaneContext {
            reader,
            db,
            source,
            options,
            status,
            known,
            healer,
        });
        let (exits_tx, mut exits) = mpsc::unbounded_channel();
        let mut lanes: HashMap<i32, LaneHandle> = HashMap::new();
        let outcome = loop {
            tokio::select! {
                () = shutdown.cancelled() => break Ok(()),
                exit = exits.recv() => {
                    // The runner holds a sender, so `recv` never yields `None`.
                    let Some((partition, generation, result)) = exit else { continue };
                    if lanes.get(&partition).is_some_and(|lane| lane.generation == generation) {
                        lanes.remove(&partition);
                    }
                    if let Err(error) = result {
                        break Err(error);
                    }
                }
                change = feed.next_change() => match change {
                    Ok(LaneChange::Assigned(new_lanes)) => {
                        for lane in new_lanes {
                            let partition = lane.partition();
                            // A lane revoked a moment ago may still be finishing its batch:
                            // one lane per partition at a time.
                            if let Some(old) = lanes.remove(&partition) {
                                old.stop().await;
                            }
                            lanes.insert(
                                partition,
                                LaneHandle::spawn(lane, context.clone(), exits_tx.clone()),
                            );
                        }
                    }
                    Ok(LaneChange::Revoked(partitions)) => {
                        for partition in partitions {
                            if let Some(lane) = lanes.get(&partition) {
                                lane.cancel.cancel();
                            }
                        }
                    }
                    Err(error) => break Err(error),
                },
            }
        };
        for (_, lane) in lanes.drain() {
            lane.stop().await;
        }
        context.status.release_all();
        let closed = feed.close().await;
        match &outcome {
            Ok(()) => tracing::info!(reader = context.reader.name(), "reader stopped"),
            Err(error) => tracing::error!(reader = context.reader.name(), %error, "reader stopped"),
        }
        outcome.and(closed)
    }
}

/// What every lane of a runner shares.
struct LaneContext<R> {
    reader: Arc<R>,
    db: ReaderDb,
    source: String,
    options: RunnerOptions,
    status: StatusSender,
    known: KnownPositions,
    healer: Option<Arc<dyn EventStore>>,
}

/// A running lane: its task, and how to stop it.
struct LaneHandle {
    cancel: CancellationToken,
    task: JoinHandle<()>,
    /// Tells this lane's exit from an earlier lane's of the same partition.
    generation: u64,
}

impl LaneHandle {
    fn spawn<L: FeedLane, R: Reader>(
        lane: L,
        context: Arc<LaneContext<R>>,
        exits: mpsc::UnboundedSender<(i32, u64, Result<(), FeedError>)>,
    ) -> Self {
        static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let generation = GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cancel = CancellationToken::new();
        let partition = lane.partition();
        let task = tokio::spawn({
            let cancel = cancel.clone();
            async move {
                let result = run_lane(lane, &context, &cancel).await;
                if let Err(error) = &result {
                    tracing::error!(partition, %error, "lane failed");
                }
                let _ = exits.send((partition, generation, result));
            }
        });
        Self {
            cancel,
            task,
            generation,
        }
    }

    /// Cancels the lane and waits until it has finished (its current transaction commits or
    /// rolls back first).
    async fn stop(mut self) {
        self.cancel.cancel();
        let _ = (&mut self.task).await;
    }
}

impl Drop for LaneHandle {
    /// A runner dropped without shutdown (a crash, an aborted task) takes its lanes with it.
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What one batch did.
struct Applied {
    filtered: Filtered,
    dead_lettered: u64,
}

/// Why one batch did not commit.
enum BatchError {
    /// The stored position is not where the lane started: someone else moved it.
    Fenced,
    /// Events arrived after seqs of their dossier that never did (rolled back).
    Gaps(Vec<Missing>),
    Failed(FeedError),
}

impl<E: Into<FeedError>> From<E> for BatchError {
    fn from(error: E) -> Self {
        Self::Failed(error.into())
    }
}

/// One lane's loop: read a batch, dead-letter its poison, apply and commit with the position;
/// retry what is transient; stop when cancelled.
async fn run_lane<L: FeedLane, R: Reader>(
    mut lane: L,
    context: &LaneContext<R>,
    cancel: &CancellationToken,
) -> Result<(), FeedError> {
    let partition = lane.partition();
    let reader = context.reader.name();
    let backend = context.db.backend();
    let mut backoff = Backoff::new(&context.options);

    let Some(mut resume) = retry(cancel, &mut backoff, backend, || async {
        Ok(positions::load_position(&context.db, reader, &context.source, partition).await?)
    })
    .await?
    else {
        return Ok(());
    };
    context.status.update(partition, |status| {
        status.assigned = true;
        status.position = resume;
    });
    lane.seek(resume).await?;

    loop {
        let batch = tokio::select! {
            biased;
            () = cancel.cancelled() => return Ok(()),
            batch = lane.next_batch(context.options.max_batch) => batch,
        };
        let batch = match batch {
            Ok(batch) => batch,
            Err(error) if error.is_transient(backend) => {
                tracing::warn!(partition, %error, "reading the feed failed; retrying");
                if !backoff.wait(cancel).await {
                    return Ok(());
                }
                continue;
            }
            Err(error) => return Err(error),
        };
        let Some(new_resume) = batch.last().map(|record| record.resume) else {
            continue;
        };
        let (mut events, poisons) = split(batch);
        let mut healed_gaps = 0u64;

        // The dead letters leave first: once the position passes a poison record, nothing
        // would bring it back.
        for poison in &poisons {
            tracing::warn!(
                reader,
                partition,
                source = ?poison.source,
                reason = %poison.reason,
                "dead-lettering a record that is not a valid event"
            );
            let sent = retry(cancel, &mut backoff, backend, || async {
                lane.dead_letter(reader, poison).await
            })
            .await?;
            if sent.is_none() {
                return Ok(());
            }
        }

        let applied = loop {
            match apply_batch(context, partition, resume, new_resume, &events, &poisons)
                .instrument(batch_span(context.reader.name(), partition, &events))
                .await
            {
                Ok(applied) => break Some(applied),
                Err(BatchError::Fenced) => break None,
                Err(BatchError::Gaps(missing)) => {
                    let Some(store) = &context.healer else {
                        metrics::counter!("motcua_feed_seq_gaps_total", "reader" => reader.to_owned(), "outcome" => "stopped").increment(missing.len() as u64);
                        return Err(seq_gap(&missing[0], "no event store to read them from"));
                    };
                    let healed = retry(cancel, &mut backoff, backend, || {
                        heal(store.as_ref(), &events, &missing)
                    })
                    .await;
                    let healed = match healed {
                        Ok(Some(healed)) => healed,
                        Ok(None) => return Ok(()),
                        Err(error) => {
                            metrics::counter!("motcua_feed_seq_gaps_total", "reader" => reader.to_owned(), "outcome" => "stopped").increment(missing.len() as u64);
                            return Err(error);
                        }
                    };
                    tracing::warn!(
                        reader,
                        partition,
                        gaps = missing.len(),
                        first_dossier = %missing[0].dossier_id,
                        "dossier seqs skipped in the feed; the missing events were read from \
                         the event store and are applied first"
                    );
                    metrics::counter!("motcua_feed_seq_gaps_total", "reader" => reader.to_owned(), "outcome" => "healed").increment(missing.len() as u64);
                    healed_gaps += missing.len() as u64;
                    events = healed;
                }
                Err(BatchError::Failed(error)) if error.is_transient(backend) => {
                    tracing::warn!(partition, %error, "applying a batch failed; retrying");
                    if !backoff.wait(cancel).await {
                        return Ok(());
                    }
                }
                Err(BatchError::Failed(error)) => return Err(error),
            }
        };
        backoff.reset();
        let Some(applied) = applied else {
            // Someone else moved this partition's position: start over from it.
            let Some(stored) = retry(cancel, &mut backoff, backend, || async {
                Ok(
                    positions::load_position(&context.db, reader, &context.source, partition)
                        .await?,
                )
            })
            .await?
            else {
                return Ok(());
            };
            tracing::info!(
                partition,
                expected = ?resume,
                found = ?stored,
                "the position moved under this lane; resuming from the stored one"
            );
            resume = stored;
            match resume {
                Some(position) => context.known.set(partition, position),
                None => context.known.forget(partition),
            }
            lane.seek(resume).await?;
            continue;
        };

        resume = Some(new_resume);
        context.known.set(partition, new_resume);
        lane.committed(new_resume);
        context.status.update(partition, |status| {
            status.position = Some(new_resume);
            status.applied += applied.filtered.events.len() as u64;
            status.duplicates += applied.filtered.duplicates;
            status.gaps += applied.filtered.gaps + healed_gaps;
            status.dead_lettered += applied.dead_lettered;
            status.batches += 1;
        });
    }
}

/// The error that stops a reader at a gap it cannot heal.
fn seq_gap(missing: &Missing, reason: impl Into<String>) -> FeedError {
    FeedError::SeqGap {
        dossier_id: missing.dossier_id.clone(),
        first_missing: missing.after + 1,
        last_missing: missing.before - 1,
        reason: reason.into(),
    }
}

/// `events` with the events each gap misses read from `store` and put right before the event
/// that arrived after them.
async fn heal(
    store: &dyn EventStore,
    events: &[FeedEvent],
    missing: &[Missing],
) -> Result<Vec<FeedEvent>, FeedError> {
    let mut found: HashMap<(&str, u64), Vec<FeedEvent>> = HashMap::new();
    for gap in missing {
        let wanted = gap.before - gap.after - 1;
        let mut events = Vec::new();
        for stored in store.dossier_events(&gap.dossier_id).await? {
            if stored.seq <= gap.after || stored.seq >= gap.before {
                continue;
            }
            let source = SourcePosition::Sql {
                position: stored.position,
            };
            let event = decode(
                Some(stored.dossier_id.as_bytes()),
                Some(&stored.payload),
                source,
            )
            .map_err(|reason| seq_gap(gap, format!("the store's copy is unreadable: {reason}")))?;
            events.push(event);
        }
        events.sort_by_key(|event| event.seq);
        if events.len() as u64 != wanted {
            return Err(seq_gap(
                gap,
                format!("the event store has {} of the {wanted}", events.len()),
            ));
        }
        found.insert((gap.dossier_id.as_str(), gap.before), events);
    }
    let mut healed = Vec::with_capacity(events.len() + found.len());
    for event in events {
        if let Some(before) = found.remove(&(event.dossier_id.as_str(), event.seq)) {
            healed.extend(before);
        }
        healed.push(event.clone());
    }
    Ok(healed)
}

fn split(batch: Vec<FeedRecord>) -> (Vec<FeedEvent>, Vec<Poison>) {
    let mut events = Vec::with_capacity(batch.len());
    let mut poisons = Vec::new();
    for record in batch {
        match record.item {
            RecordItem::Event(event) => events.push(event),
            RecordItem::Poison(poison) => poisons.push(poison),
        }
    }
    (events, poisons)
}

/// The span of one batch: it continues the trace of the batch's first event (the intake's
/// handling of the call that caused it), so an exported trace runs from the counter's call
/// through the relay into every reader. The other events' traces are in the log at debug.
fn batch_span(reader: &str, lane: i32, events: &[FeedEvent]) -> tracing::Span {
    let span = tracing::info_span!(
        "reader.batch",
        reader,
        lane,
        events = events.len(),
        trace_id = tracing::field::Empty
    );
    let mut traces = events
        .iter()
        .filter_map(|e| motcua_telemetry::TraceParent::parse(&e.event.traceparent));
    if let Some(first) = traces.next() {
        motcua_telemetry::set_parent(&span, &first);
        span.record("trace_id", first.trace_id_hex());
        if tracing::enabled!(tracing::Level::DEBUG) {
            let others: Vec<String> = traces.map(|t| t.trace_id_hex()).collect();
            tracing::debug!(parent: &span, reader, lane, traces = ?others, "batch continues traces");
        }
    }
    span
}

/// One transaction: position compare-and-set first (it takes the row lock), then dead letters,
/// dedupe, the reader's work; commit.
async fn apply_batch<R: Reader>(
    context: &LaneContext<R>,
    partition: i32,
    expected: Option<i64>,
    new_resume: i64,
    events: &[FeedEvent],
    poisons: &[Poison],
) -> Result<Applied, BatchError> {
    let reader = context.reader.name();
    let mut tx = context.db.begin().await?;
    if !positions::advance_position(
        &mut tx,
        reader,
        &context.source,
        partition,
        expected,
        new_resume,
    )
    .await?
    {
        tx.rollback().await?;
        return Err(BatchError::Fenced);
    }
    for poison in poisons {
        positions::record_dead_letter(&mut tx, reader, &context.source, poison).await?;
    }
    let filtered = if context.options.dedupe {
        let filtered = positions::filter_new(&mut tx, reader, events).await?;
        if !filtered.missing.is_empty() {
            tx.rollback().await?;
            return Err(BatchError::Gaps(filtered.missing));
        }
        filtered
    } else {
        let ids = positions::distinct_dossiers(events);
        let missing = match context.reader.applied_seqs(&mut tx, &ids).await? {
            Some(applied) => positions::missing_seqs(events, &applied),
            None => Vec::new(),
        };
        if !missing.is_empty() {
            tx.rollback().await?;
            return Err(BatchError::Gaps(missing));
        }
        Filtered {
            events: events.to_vec(),
            ..Filtered::default()
        }
    };
    if !filtered.events.is_empty() {
        context.reader.apply(&mut tx, &filtered.events).await?;
    }
    tx.commit().await?;
    record_batch(
        reader,
        partition,
        new_resume,
        &filtered.events,
        poisons.len(),
    );
    if !filtered.events.is_empty() {
        context.reader.after_commit(&filtered.events);
    }
    Ok(Applied {
        filtered,
        dead_lettered: poisons.len() as u64,
    })
}

/// The metrics of a committed batch, per reader and lane (partition): events applied and
/// dead-lettered, the committed position, and freshness (how long after it was recorded the
/// batch's newest event became visible to this reader).
fn record_batch(reader: &str, lane: i32, position: i64, events: &[FeedEvent], poisons: usize) {
    let labels = [("reader", reader.to_owned()), ("lane", lane.to_string())];
    metrics::gauge!("motcua_feed_position", &labels).set(position as f64);
    metrics::counter!("motcua_feed_events_applied_total", &labels).increment(events.len() as u64);
    if poisons > 0 {
        metrics::counter!("motcua_feed_dead_letters_total", &labels).increment(poisons as u64);
    }
    let newest = events
        .iter()
        .filter_map(|e| e.event.recorded_at.as_ref())
        .map(|t| t.seconds as f64 + f64::from(t.nanos) / 1e9)
        .fold(f64::NAN, f64::max);
    if newest.is_finite() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        metrics::histogram!("motcua_feed_freshness_seconds", "reader" => reader.to_owned())
            .record((now - newest).max(0.0));
    }
}

/// Runs `operation` until it succeeds, retrying transient failures with back-off. `Ok(None)`
/// when cancelled meanwhile.
async fn retry<T, Fut>(
    cancel: &CancellationToken,
    backoff: &mut Backoff,
    backend: Backend,
    mut operation: impl FnMut() -> Fut,
) -> Result<Option<T>, FeedError>
where
    Fut: Future<Output = Result<T, FeedError>>,
{
    loop {
        let outcome = tokio::select! {
            biased;
            () = cancel.cancelled() => return Ok(None),
            outcome = operation() => outcome,
        };
        match outcome {
            Ok(value) => {
                backoff.reset();
                return Ok(Some(value));
            }
            Err(error) if error.is_transient(backend) => {
                tracing::warn!(%error, "transient failure; retrying");
                if !backoff.wait(cancel).await {
                    return Ok(None);
                }
            }
            Err(error) => return Err(error),
        }
    }
}

/// Exponential back-off between retries.
struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(options: &RunnerOptions) -> Self {
        Self {
            min: options.min_backoff,
            max: options.max_backoff,
            next: options.min_backoff,
        }
    }

    fn reset(&mut self) {
        self.next = self.min;
    }

    /// Sleeps for the next interval; `false` if cancelled meanwhile.
    async fn wait(&mut self, cancel: &CancellationToken) -> bool {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        tokio::select! {
            () = cancel.cancelled() => false,
            () = tokio::time::sleep(wait) => true,
        }
    }
}
