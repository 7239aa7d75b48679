//! The distributed mode's feed: a Kafka consumer group on `motcua.dossier-events.v1`.
//!
//! # Where a partition starts
//!
//! The reader's position lives in SQL, not in the broker. When the group assigns a partition,
//! the rebalance callback gives librdkafka the start offset itself (`assign` with offsets, the
//! documented way to "fetch offsets from an alternate location"), taken from
//! [`KnownPositions`]: loaded from SQL at start and updated after every commit of this process,
//! so never ahead of SQL (stored positions only grow). It may be *behind* — another process
//! advanced the partition since — so the lane, which reads the current position from SQL
//! before its first batch, checks the first record it gets: if it is not the record the reader
//! resumes at, the lane seeks there (the fetch is running by then, so the seek cannot be
//! overtaken by the assignment's own start) and librdkafka's version barrier discards whatever
//! was fetched before. The broker's committed offsets are written after each SQL commit, for
//! Kafka's lag tools only; they are never read back, so dropping a read model with its
//! positions and restarting rebuilds it from the beginning.
//!
//! # Partitions as independent lanes
//!
//! Each partition gets a queue of its own (`split_partition_queue`), created in the rebalance
//! callback *before* the partition is assigned, so that no record of it ever reaches the
//! consumer's main queue; each lane (one per assigned partition) is applied on a task of its
//! own, so a slow partition does not hold up the others. The main queue carries only
//! rebalances, errors and statistics, and is polled by [`Feed::next_change`]. A partition's
//! queue is created once and kept for the consumer's life: dropping a queue handle disables
//! the wake-up callback of the underlying queue, which a later handle would share.
//!
//! # Lag
//!
//! librdkafka's statistics (every `statistics_interval`) carry each partition's high
//! watermark; [`crate::PartitionStatus::lag`] is that minus the position committed in SQL.
//!
//! # Rebalance protocol
//!
//! `cooperative-sticky` by default: a rebalance revokes only the partitions that move, so the
//! others keep applying. `range`/`roundrobin` (eager) work as well; every rebalance then stops
//! and restarts every lane.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::stream_consumer::StreamPartitionQueue;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::mpsc;

use crate::FeedError;
use crate::event::{FeedRecord, Poison, RecordItem, SourcePosition, decode};
use crate::feed::{Feed, FeedLane, FeedStart, KnownPositions, LaneChange, StatusSender};

/// The topic every committed event is published to (DESIGN.md).
pub const EVENTS_TOPIC: &str = "motcua.dossier-events.v1";
/// Where records that are not valid events go, with the reason.
pub const DEAD_LETTER_TOPIC: &str = "motcua.dossier-events.dlq.v1";

/// Headers of a dead-letter record, besides the original record's own headers.
pub mod dlq_headers {
    /// Why the record was refused.
    pub const REASON: &str = "motcua-dlq-reason";
    pub const SOURCE_TOPIC: &str = "motcua-dlq-source-topic";
    pub const SOURCE_PARTITION: &str = "motcua-dlq-source-partition";
    pub const SOURCE_OFFSET: &str = "motcua-dlq-source-offset";
    /// The reader (and its consumer group) that refused it: each reader of the topic refuses a
    /// poison record once.
    pub const READER: &str = "motcua-dlq-reader";
}

/// How the Kafka feed connects and consumes. Defaults favour latency: a fetch may be answered
/// as soon as it has one byte (`fetch.min.bytes` 1), and waits at most `fetch_wait_max`.
#[derive(Debug, Clone)]
pub struct KafkaFeedConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// The events topic.
    pub topic: String,
    /// The dead-letter topic.
    pub dead_letter_topic: String,
    /// The consumer group; `None`: `motcua.reader.<reader name>`, so every reader is a group
    /// of its own and its instances share the partitions.
    pub group_id: Option<String>,
    /// `partition.assignment.strategy`.
    pub assignment_strategy: String,
    /// `fetch.wait.max.ms`: how long the broker may hold a fetch with nothing to return.
    /// Apache Kafka answers a waiting fetch as soon as data arrives, so there it only bounds
    /// idle polling and can be raised (500 ms is Kafka's default). Tansu 0.6 instead holds
    /// *every* fetch for the whole wait, data or not, so a record waits for the next fetch to
    /// start and then for its full wait: 1 to 2 × this value. Hence the low default (10 ms:
    /// about 100 fetches per second per idle consumer, which a broker serves easily).
    pub fetch_wait_max: Duration,
    /// `session.timeout.ms`: how long a crashed consumer keeps its partitions.
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms`.
    pub heartbeat_interval: Duration,
    /// `statistics.interval.ms`: how often the high watermarks behind the lag are refreshed.
    pub statistics_interval: Duration,
    /// `group.instance.id` (static membership, KIP-345): a restarted member with the same id
    /// gets its partitions back at once, without a rebalance, and a killed one keeps them for
    /// `session_timeout`. `None`: dynamic membership. Must be unique per process within the
    /// group (say, the pod's name).
    pub group_instance_id: Option<String>,
    /// How long partitions may sit unconsumed (records waiting, the group's committed offset
    /// not moving, and not assigned here) before the feed raises the alarm and rejoins the
    /// group; checked every `session_timeout` (at least 5 s). See [`KafkaFeed`]'s
    /// "Assignment that cannot hang".
    pub stall_after: Duration,
    /// Any other librdkafka consumer property, set last (so it can override the above).
    pub properties: Vec<(String, String)>,
}

impl KafkaFeedConfig {
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topic: EVENTS_TOPIC.to_owned(),
            dead_letter_topic: DEAD_LETTER_TOPIC.to_owned(),
            group_id: None,
            assignment_strategy: "cooperative-sticky".to_owned(),
            fetch_wait_max: Duration::from_millis(10),
            session_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(1),
            statistics_interval: Duration::from_secs(1),
            group_instance_id: None,
            stall_after: Duration::from_secs(30),
            properties: Vec::new(),
        }
    }

    fn group_id(&self, reader: &str) -> String {
        self.group_id
            .clone()
            .unwrap_or_else(|| format!("motcua.reader.{reader}"))
    }

    fn consumer_config(&self, group_id: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", group_id)
            .set("client.id", format!("motcua-feed.{group_id}"))
            // Positions are stored in SQL with the work; the broker only hears about them
            // afterwards, from the lanes.
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // Only used when an assigned start offset is out of range.
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("partition.assignment.strategy", &self.assignment_strategy)
            .set("fetch.wait.max.ms", millis(self.fetch_wait_max))
            .set("fetch.min.bytes", "1")
            // The default reconnect backoff grows to 10 s; a reader should resume within about
            // a second of the broker's return.
            .set("reconnect.backoff.max.ms", "1000")
            .set("session.timeout.ms", millis(self.session_timeout))
            .set("heartbeat.interval.ms", millis(self.heartbeat_interval))
            .set("statistics.interval.ms", millis(self.statistics_interval));
        if let Some(instance) = &self.group_instance_id {
            config.set("group.instance.id", instance);
        }
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }

    fn producer_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", "motcua-feed.dead-letters")
            // A dead letter must not be lost once the reader moved past its record.
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "0")
            .set("message.timeout.ms", "30000");
        config
    }
}

fn millis(duration: Duration) -> String {
    duration.as_millis().to_string()
}

/// The consumer type: a stream consumer with the feed's rebalance handling.
type KafkaConsumer = StreamConsumer<FeedContext>;
/// A partition's own queue.
type PartitionQueue = Arc<StreamPartitionQueue<FeedContext>>;

/// Follows a Kafka topic as a member of a consumer group: the distributed mode's feed.
pub struct KafkaFeed {
    config: KafkaFeedConfig,
    running: Option<Running>,
}

/// What exists once the feed started.
struct Running {
    consumer: Arc<KafkaConsumer>,
    changes: mpsc::UnboundedReceiver<Change>,
    dead_letters: Arc<DeadLetterProducer>,
    /// Watches for partitions nobody consumes.
    watchdog: AssignmentWatchdog,
}

impl fmt::Debug for KafkaFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaFeed")
            .field("config", &self.config)
            .field("running", &self.running.is_some())
            .finish()
    }
}

impl KafkaFeed {
    pub fn new(config: KafkaFeedConfig) -> Self {
        Self {
            config,
            running: None,
        }
    }
}

impl Drop for KafkaFeed {
    fn drop(&mut self) {
        if let Some(running) = &self.running {
            // The partition queues hold the consumer, and the consumer's context holds them:
            // break the cycle, so the consumer is closed (and leaves the group) once the lanes
            // are gone, also when the runner was dropped without `close`.
            running.consumer.context().forget_queues();
        }
    }
}

#[async_trait]
impl Feed for KafkaFeed {
    type Lane = KafkaLane;

    fn source(&self) -> String {
        format!("kafka:{}", self.config.topic)
    }

    async fn start(&mut self, start: FeedStart) -> Result<(), FeedError> {
        let group_id = self.config.group_id(&start.reader);
        let (changes_tx, changes) = mpsc::unbounded_channel();
        let context = FeedContext {
            topic: self.config.topic.clone(),
            known: start.known,
            status: start.status,
            consumer: OnceLock::new(),
            queues: Mutex::new(HashMap::new()),
            assigned: Mutex::new(BTreeSet::new()),
            group_id: group_id.clone(),
            changes: changes_tx,
        };
        let consumer: KafkaConsumer = self
            .config
            .consumer_config(&group_id)
            .create_with_context(context)?;
        let consumer = Arc::new(consumer);
        // Set before `subscribe`, so every rebalance callback finds it.
        let _ = consumer.context().consumer.set(Arc::downgrade(&consumer));
        consumer.subscribe(&[&self.config.topic])?;
        let producer: FutureProducer = self.config.producer_config().create()?;
        let dead_letters = Arc::new(DeadLetterProducer {
            producer,
            topic: self.config.dead_letter_topic.clone(),
            source_topic: self.config.topic.clone(),
            group_id: group_id.clone(),
        });
        tracing::info!(
            topic = %self.config.topic,
            group_id,
            strategy = %self.config.assignment_strategy,
            "joined the consumer group"
        );
        metrics::gauge!("motcua_feed_assigned_partitions", "group" => group_id.clone()).set(0.0);
        metrics::gauge!("motcua_feed_unowned_records", "group" => group_id.clone()).set(0.0);
        metrics::counter!("motcua_feed_rejoins_total", "group" => group_id.clone()).absolute(0);
        let watchdog = AssignmentWatchdog::new(&self.config, group_id);
        self.running = Some(Running {
            consumer,
            changes,
            dead_letters,
            watchdog,
        });
        Ok(())
    }

    async fn next_change(&mut self) -> Result<LaneChange<KafkaLane>, FeedError> {
        let Some(running) = &mut self.running else {
            return Err(FeedError::Closed("the Kafka feed was not started".into()));
        };
        loop {
            tokio::select! {
                change = running.changes.recv() => {
                    // The context holds the sender as long as the consumer lives.
                    let Some(change) = change else {
                        return Err(FeedError::Closed("the Kafka consumer is gone".into()));
                    };
                    return Ok(match change {
                        Change::Assigned(queues) => LaneChange::Assigned(
                            queues
                                .into_iter()
                                .map(|(partition, queue)| KafkaLane {
                                    topic: self.config.topic.clone(),
                                    partition,
                                    queue,
                                    consumer: running.consumer.clone(),
                                    dead_letters: running.dead_letters.clone(),
                                    next: None,
                                    start: StartCheck::Unverified,
                                    skipped_to: None,
                                    refetches: 0,
                                })
                                .collect(),
                        ),
                        Change::Revoked(partitions) => LaneChange::Revoked(partitions),
                    });
                }
                _ = running.watchdog.tick.tick() => {
                    // Cancel-safe: a check cut short only looks again at the next tick.
                    running.watchdog.check(&running.consumer, &self.config.topic).await?;
                }
                // Polling the main queue serves the rebalance callbacks and statistics; no
                // record may arrive here, since every partition has its own queue.
                message = running.consumer.recv() => match message {
                    Ok(message) => {
                        return Err(FeedError::StrayMessage {
                            topic: message.topic().to_owned(),
                            partition: message.partition(),
                            offset: message.offset(),
                        });
                    }
                    Err(error) if is_fatal(&error) => return Err(error.into()),
                    Err(error) => {
                        tracing::warn!(%error, "Kafka consumer error; librdkafka retries");
                    }
                },
            }
        }
    }

    async fn close(mut self) -> Result<(), FeedError> {
        if let Some(running) = self.running.take() {
            running.consumer.context().forget_queues();
            let Running {
                consumer,
                dead_letters,
                changes,
                watchdog: _,
            } = running;
            // Dropping the last handle closes the consumer: it leaves the group (revoking its
            // partitions) and blocks until done, so not on a runtime thread.
            tokio::task::spawn_blocking(move || {
                // Undelivered assignments hold partition queues, which hold the consumer.
                drop(changes);
                drop(dead_letters);
                drop(consumer);
            })
            .await
            .map_err(|error| FeedError::Closed(format!("closing the consumer failed: {error}")))?;
        }
        Ok(())
    }
}

/// Notices partitions that nobody consumes while records wait on them, and rejoins the group.
///
/// # Assignment that cannot hang
///
/// On Apache Kafka a killed member's partitions go to the others once its session times out
/// (or at once to its successor with static membership), and a restarted member rejoins. A
/// broker whose group coordination misbehaves (Tansu 0.6 after a member was killed) can
/// leave partitions assigned to nobody for minutes, with no error anywhere. Every check
/// (each `session_timeout`, at least 5 s) this member asks the broker, for each partition
/// *not* assigned here, for its high watermark and the group's committed offset. A partition
/// with records waiting whose committed offset did not move since the previous check is
/// unowned (or its owner is stuck). Its waiting records are exported as
/// `motcua_feed_unowned_records`; once that lasted `stall_after`, the member logs an error,
/// counts `motcua_feed_rejoins_total` and leaves and rejoins the group, which makes the
/// coordinator assign every partition afresh. A member that merely has no partitions (more
/// members than partitions) sees the others' offsets move and does nothing.
struct AssignmentWatchdog {
    tick: tokio::time::Interval,
    group_id: String,
    stall_after: Duration,
    /// The group's committed offset of each partition not assigned here, at the last check.
    previous: HashMap<i32, i64>,
    /// Since when some partition has been unowned with records waiting.
    stalled_since: Option<std::time::Instant>,
}

impl AssignmentWatchdog {
    fn new(config: &KafkaFeedConfig, group_id: String) -> Self {
        let period = config.session_timeout.max(Duration::from_secs(5));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            tick,
            group_id,
            stall_after: config.stall_after,
            previous: HashMap::new(),
            stalled_since: None,
        }
    }

    async fn check(&mut self, consumer: &Arc<KafkaConsumer>, topic: &str) -> Result<(), FeedError> {
        let assigned: BTreeSet<i32> = consumer.context().assigned().clone();
        let looked_up = {
            let consumer = consumer.clone();
            let topic = topic.to_owned();
            tokio::task::spawn_blocking(move || unconsumed(&consumer, &topic, &assigned))
                .await
                .map_err(|error| FeedError::Closed(format!("the watchdog panicked: {error}")))?
        };
        let waiting = match looked_up {
            Ok(waiting) => waiting,
            Err(error) => {
                // The broker is away: librdkafka reconnects, and the lanes say so.
                tracing::debug!(%error, "the assignment watchdog cannot ask the broker");
                return Ok(());
            }
        };
        let mut unowned = 0u64;
        let mut partitions = Vec::new();
        for &(partition, committed, records) in &waiting {
            if records > 0 && self.previous.get(&partition) == Some(&committed) {
                unowned += records;
                partitions.push(partition);
            }
        }
        self.previous = waiting
            .iter()
            .map(|&(partition, committed, _)| (partition, committed))
            .collect();
        metrics::gauge!("motcua_feed_unowned_records", "group" => self.group_id.clone())
            .set(unowned as f64);
        if partitions.is_empty() {
            self.stalled_since = None;
            return Ok(());
        }
        let since = *self
            .stalled_since
            .get_or_insert_with(std::time::Instant::now);
        tracing::warn!(
            group_id = %self.group_id,
            ?partitions,
            records = unowned,
            "partitions with records waiting are consumed by nobody"
        );
        if since.elapsed() < self.stall_after {
            return Ok(());
        }
        tracing::error!(
            group_id = %self.group_id,
            ?partitions,
            records = unowned,
            stalled_for = ?since.elapsed(),
            "the group left partitions unconsumed; leaving and rejoining it"
        );
        metrics::counter!("motcua_feed_rejoins_total", "group" => self.group_id.clone())
            .increment(1);
        consumer.unsubscribe();
        consumer.subscribe(&[topic])?;
        self.stalled_since = None;
        self.previous.clear();
        Ok(())
    }
}

/// For each partition of `topic` not in `assigned`: the group's committed offset (-1 if none)
/// and the records after it. Blocking: several round trips to the broker.
fn unconsumed(
    consumer: &KafkaConsumer,
    topic: &str,
    assigned: &BTreeSet<i32>,
) -> Result<Vec<(i32, i64, u64)>, KafkaError> {
    const TIMEOUT: Duration = Duration::from_secs(5);
    let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .filter(|partition| !assigned.contains(partition))
        .collect();
    if partitions.is_empty() {
        return Ok(Vec::new());
    }
    let mut tpl = TopicPartitionList::new();
    for &partition in &partitions {
        tpl.add_partition(topic, partition);
    }
    let committed = consumer.committed_offsets(tpl, TIMEOUT)?;
    let mut out = Vec::with_capacity(partitions.len());
    for partition in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, partition, TIMEOUT)?;
        let committed = committed
            .find_partition(topic, partition)
            .and_then(|element| element.offset().to_raw())
            .filter(|offset| *offset >= 0);
        let from = committed.unwrap_or(low);
        let records = u64::try_from(high - from).unwrap_or(0);
        out.push((partition, committed.unwrap_or(-1), records));
    }
    Ok(out)
}

fn is_fatal(error: &KafkaError) -> bool {
    matches!(error.rdkafka_error_code(), Some(RDKafkaErrorCode::Fatal))
}

/// What the rebalance callback tells the feed.
enum Change {
    Assigned(Vec<(i32, PartitionQueue)>),
    Revoked(Vec<i32>),
}

/// The consumer's context: rebalance handling, statistics and logs.
struct FeedContext {
    topic: String,
    known: KnownPositions,
    status: StatusSender,
    /// The consumer this context belongs to, to split partition queues from the callback.
    /// Weak: the consumer owns the context.
    consumer: OnceLock<Weak<KafkaConsumer>>,
    /// Every partition's queue, created at its first assignment and kept (see the module
    /// documentation).
    queues: Mutex<HashMap<i32, PartitionQueue>>,
    /// The partitions assigned here now (the watchdog asks).
    assigned: Mutex<BTreeSet<i32>>,
    /// The consumer group, for the metrics' labels.
    group_id: String,
    changes: mpsc::UnboundedSender<Change>,
}

impl FeedContext {
    fn queues(&self) -> std::sync::MutexGuard<'_, HashMap<i32, PartitionQueue>> {
        // Inserts and clears only: a poisoned map is still consistent.
        self.queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn forget_queues(&self) {
        self.queues().clear();
    }

    /// `motcua_feed_assigned_partitions`: how many partitions this member holds.
    fn export_assigned(&self) {
        let count = self.assigned().len();
        metrics::gauge!("motcua_feed_assigned_partitions", "group" => self.group_id.clone())
            .set(count as f64);
    }

    fn assigned(&self) -> std::sync::MutexGuard<'_, BTreeSet<i32>> {
        // Inserts and removes only: a poisoned set is still consistent.
        self.assigned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn on_assign(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let partitions: Vec<i32> = tpl
            .elements_for_topic(&self.topic)
            .iter()
            .map(|element| element.partition())
            .collect();
        for &partition in &partitions {
            let offset = self
                .known
                .get(partition)
                .map_or(Offset::Beginning, Offset::Offset);
            if let Err(error) = tpl.set_partition_offset(&self.topic, partition, offset) {
                tracing::error!(partition, %error, "cannot set a start offset");
            }
        }
        let mut assigned = Vec::with_capacity(partitions.len());
        match self.consumer.get().and_then(Weak::upgrade) {
            Some(stream_consumer) => {
                let mut queues = self.queues();
                for &partition in &partitions {
                    if let Some(queue) = queues.get(&partition) {
                        assigned.push((partition, queue.clone()));
                        continue;
                    }
                    match stream_consumer.split_partition_queue(&self.topic, partition) {
                        Some(queue) => {
                            let queue = Arc::new(queue);
                            queues.insert(partition, queue.clone());
                            assigned.push((partition, queue));
                        }
                        None => tracing::error!(partition, "cannot split the partition's queue"),
                    }
                }
            }
            None => tracing::warn!("partitions assigned while the consumer is closing"),
        }
        let result = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_assign(tpl),
            _ => consumer.assign(tpl),
        };
        if let Err(error) = result {
            tracing::error!(%error, ?partitions, "assigning partitions failed");
        }
        for &partition in &partitions {
            self.status
                .update(partition, |status| status.assigned = true);
        }
        self.assigned().extend(partitions.iter().copied());
        self.export_assigned();
        tracing::info!(?partitions, "partitions assigned");
        let _ = self.changes.send(Change::Assigned(assigned));
    }

    fn on_revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let partitions: Vec<i32> = tpl
            .elements_for_topic(&self.topic)
            .iter()
            .map(|element| element.partition())
            .collect();
        // First stop the lanes (they stop at their next await; one still committing is fenced
        // by the position compare-and-set if it is too late), then let librdkafka go on.
        let _ = self.changes.send(Change::Revoked(partitions.clone()));
        let result = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_unassign(tpl),
            _ => consumer.unassign(),
        };
        if let Err(error) = result {
            tracing::error!(%error, ?partitions, "unassigning partitions failed");
        }
        for &partition in &partitions {
            self.status
                .update(partition, |status| status.assigned = false);
        }
        {
            let mut assigned = self.assigned();
            for partition in &partitions {
                assigned.remove(partition);
            }
        }
        self.export_assigned();
        let lost = consumer.assignment_lost();
        tracing::info!(?partitions, lost, "partitions revoked");
    }
}

impl ClientContext for FeedContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(facility, "librdkafka: {message}"),
            RDKafkaLogLevel::Warning => tracing::warn!(facility, "librdkafka: {message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(facility, "librdkafka: {message}");
            }
            RDKafkaLogLevel::Debug => tracing::debug!(facility, "librdkafka: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "librdkafka error");
    }

    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        for (&partition, stats) in &topic.partitions {
            // -1 is librdkafka's internal "unassigned" partition; a negative watermark means
            // "not known yet".
            if partition >= 0 && stats.hi_offset >= 0 {
                self.status
                    .update(partition, |status| status.head = Some(stats.hi_offset));
            }
        }
    }
}

impl ConsumerContext for FeedContext {
    /// Replaces rdkafka's default to set the start offsets and split the queues before the
    /// assignment takes effect; otherwise the same (assign or incremental assign by protocol).
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.on_assign(consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.on_revoke(consumer, tpl),
            other => {
                // librdkafka: on any other error, drop the whole assignment to resync.
                tracing::error!(error = ?other, "rebalance failed; dropping the assignment");
                let partitions: Vec<i32> = self.queues().keys().copied().collect();
                self.assigned().clear();
                self.export_assigned();
                let _ = self.changes.send(Change::Revoked(partitions));
                if let Err(error) = consumer.unassign() {
                    tracing::error!(%error, "unassigning after a failed rebalance failed");
                }
            }
        }
    }
}

/// Whether a lane has confirmed where its partition's fetch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartCheck {
    /// After an assignment or a [`FeedLane::seek`]: the fetch may start at the assignment's
    /// offset, which may be behind the reader's; the next record shows.
    Unverified,
    /// The lane moved the fetch itself; records below the resume point may still trickle in
    /// (a stale fetch, or a fetch from further back) and are skipped.
    Sought,
    Verified,
}

/// How many times in a row a lane fetches again from further back when the broker answers
/// with a record after the one asked for, before it gives up ([`FeedError::BrokerSkipped`]).
/// The last attempt starts at the partition's beginning, which every broker serves whole.
const MAX_REFETCHES: u32 = 4;

/// Where the `attempt`-th fetch after a skip starts, for a lane that expects `next`: first
/// `next` itself (Kafka answers a fetch inside a record batch with that whole batch, and the
/// client drops the records before `next`), then further and further back, so a broker that
/// answers a fetch inside a batch with the *following* batch (Tansu 0.6) is asked for a point
/// in an earlier batch, whose following batch is the one holding `next`; the last attempt
/// starts at the beginning. The records before `next` are skipped by the lane.
fn refetch_from(next: i64, attempt: u32) -> Offset {
    match attempt {
        0 | 1 => Offset::Offset(next),
        2 => Offset::Offset((next - 1_000).max(0)),
        3 => Offset::Offset((next - 100_000).max(0)),
        _ => Offset::Beginning,
    }
}

/// One assigned partition.
///
/// # Continuity
///
/// Offsets on the events topic are contiguous: the relay's producer is idempotent and not
/// transactional (no control records), and the topic is never compacted. So the lane knows
/// exactly which offset the next record must have, and checks every record against it:
/// - below it: a record delivered again (a stale fetch, a fetch from further back): skipped;
/// - above it: the broker skipped records. The lane never returns that record (the runner
///   would commit a position past the missing ones); it fetches again, from further back each
///   time ([`refetch_from`]), and stops the reader with [`FeedError::BrokerSkipped`] if even
///   the partition's beginning does not bring the missing records. Each skip is counted in
///   `motcua_feed_broker_skips_total` and logged.
pub struct KafkaLane {
    topic: String,
    partition: i32,
    queue: PartitionQueue,
    consumer: Arc<KafkaConsumer>,
    dead_letters: Arc<DeadLetterProducer>,
    /// The offset of the next record to return; `None`: the partition's first (its low
    /// watermark, 0 on a topic that never lost records to retention).
    next: Option<i64>,
    start: StartCheck,
    /// A record arrived after a skip and must be fetched again before anything else is read:
    /// the offset it had.
    skipped_to: Option<i64>,
    /// Fetches from further back since the last record that arrived in order.
    refetches: u32,
}

impl fmt::Debug for KafkaLane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaLane")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("next", &self.next)
            .field("start", &self.start)
            .field("skipped_to", &self.skipped_to)
            .finish_non_exhaustive()
    }
}

impl KafkaLane {
    /// Moves the partition's fetch to `offset`. Asynchronous in librdkafka (timeout zero): the
    /// version barrier it sets drops everything fetched before, at once.
    fn seek_to(&mut self, offset: Offset) -> Result<(), FeedError> {
        tracing::debug!(partition = self.partition, ?offset, "seeking");
        self.consumer
            .seek(&self.topic, self.partition, offset, Duration::ZERO)?;
        self.start = StartCheck::Sought;
        Ok(())
    }

    /// Moves the partition's fetch to where the reader resumes.
    fn seek_to_next(&mut self) -> Result<(), FeedError> {
        self.seek_to(self.next.map_or(Offset::Beginning, Offset::Offset))
    }

    /// The partition's first offset still on the broker (its low watermark).
    async fn first_offset(&self) -> Result<i64, FeedError> {
        let consumer = self.consumer.clone();
        let topic = self.topic.clone();
        let partition = self.partition;
        let (low, _high) = tokio::task::spawn_blocking(move || {
            consumer.fetch_watermarks(&topic, partition, Duration::from_secs(10))
        })
        .await
        .map_err(|error| FeedError::Closed(format!("the watermark lookup panicked: {error}")))??;
        Ok(low)
    }

    /// After the broker answered with record `got` where `self.next` was expected: fetch again
    /// from further back, or give up.
    async fn refetch_after_skip(&mut self, got: i64) -> Result<(), FeedError> {
        let next = match self.next {
            Some(next) => next,
            None => {
                // Reading from the beginning: was `got` the beginning? Ask the broker; a
                // failed look-up is retried (the skip stays noted).
                let first = self.first_offset().await?;
                self.next = Some(first);
                if got == first {
                    self.seek_to_next()?;
                    return Ok(());
                }
                first
            }
        };
        self.refetches += 1;
        metrics::counter!(
            "motcua_feed_broker_skips_total",
            "group" => self.dead_letters.group_id.clone(),
            "lane" => self.partition.to_string()
        )
        .increment(1);
        if self.refetches > MAX_REFETCHES {
            tracing::error!(
                topic = %self.topic,
                partition = self.partition,
                expected = next,
                got,
                "the broker keeps skipping records; the reader stops before them"
            );
            return Err(FeedError::BrokerSkipped {
                topic: self.topic.clone(),
                partition: self.partition,
                expected: next,
                got,
                attempts: self.refetches - 1,
            });
        }
        let from = refetch_from(next, self.refetches);
        tracing::warn!(
            topic = %self.topic,
            partition = self.partition,
            expected = next,
            got,
            attempt = self.refetches,
            ?from,
            "the broker skipped records (a fetch answered with a later record than asked \
             for); fetching again from further back"
        );
        self.seek_to(from)
    }

    /// Checks a message against the offset the lane expects, and turns it into a record.
    fn accept(&mut self, message: &BorrowedMessage<'_>) -> Result<Accept, FeedError> {
        let offset = message.offset();
        match self.next {
            Some(next) if offset < next => {
                if self.start == StartCheck::Unverified {
                    // The assignment started the fetch behind the reader's position.
                    self.seek_to_next()?;
                    return Ok(Accept::Restarted);
                }
                return Ok(Accept::Skip);
            }
            Some(next) if offset > next => return Ok(Accept::Skipped { got: offset }),
            Some(_) => {}
            // From the beginning: offset 0 is the beginning of a topic that never lost records
            // to retention; anything else is checked against the broker.
            None if offset == 0 => {}
            None => return Ok(Accept::Skipped { got: offset }),
        }
        self.start = StartCheck::Verified;
        self.refetches = 0;
        self.next = Some(offset + 1);
        let source = SourcePosition::Kafka {
            partition: self.partition,
            offset,
        };
        let item = match decode(message.key(), message.payload(), source) {
            Ok(event) => RecordItem::Event(event),
            Err(reason) => RecordItem::Poison(Poison {
                reason,
                key: message.key().map(<[u8]>::to_vec),
                payload: message.payload().map(<[u8]>::to_vec),
                headers: message
                    .headers()
                    .map(|headers| {
                        headers
                            .iter()
                            .map(|header| (header.key.to_owned(), header.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default(),
                source,
            }),
        };
        Ok(Accept::Record(FeedRecord {
            resume: offset + 1,
            item,
        }))
    }
}

/// What to do with one fetched message.
// Short-lived, and nearly always a record: not worth an allocation per record.
#[allow(clippy::large_enum_variant)]
enum Accept {
    Record(FeedRecord),
    Skip,
    /// The lane sought elsewhere: the rest of what was fetched is stale.
    Restarted,
    /// The record is after the one expected: the broker skipped records.
    Skipped {
        got: i64,
    },
}

#[async_trait]
impl FeedLane for KafkaLane {
    fn partition(&self) -> i32 {
        self.partition
    }

    async fn seek(&mut self, resume: Option<i64>) -> Result<(), FeedError> {
        // Not a librdkafka seek yet: right after an assignment the fetch may not have started,
        // and its start would override the seek. The first record tells (see `accept`).
        self.next = resume;
        self.start = StartCheck::Unverified;
        self.skipped_to = None;
        self.refetches = 0;
        Ok(())
    }

    async fn next_batch(&mut self, max: usize) -> Result<Vec<FeedRecord>, FeedError> {
        let queue = self.queue.clone();
        let mut stream = queue.stream();
        loop {
            if let Some(got) = self.skipped_to {
                // Before anything else is read: fetch the skipped records again. Cancelling
                // here loses nothing (the skip stays noted until the seek is made).
                self.refetch_after_skip(got).await?;
                self.skipped_to = None;
            }
            // The only await that takes messages: everything after it runs in the poll that
            // returns, so a cancelled call loses no record (cancel-safe).
            let first = stream.next().await;
            let mut records = Vec::new();
            let mut message = first;
            loop {
                match message {
                    Some(Ok(message)) => match self.accept(&message)? {
                        Accept::Record(record) => records.push(record),
                        Accept::Skip => {}
                        Accept::Restarted => {
                            records.clear();
                            break;
                        }
                        Accept::Skipped { got } => {
                            // The records before it are in order and returned; the skipped
                            // ones are fetched again before the next batch.
                            self.skipped_to = Some(got);
                            break;
                        }
                    },
                    Some(Err(error)) => {
                        tracing::warn!(partition = self.partition, %error, "fetch error");
                    }
                    None => {
                        return Err(FeedError::Closed("a partition queue ended".into()));
                    }
                }
                if records.len() >= max {
                    break;
                }
                match stream.next().now_or_never() {
                    Some(next) => message = next,
                    None => break,
                }
            }
            if !records.is_empty() {
                return Ok(records);
            }
        }
    }

    async fn dead_letter(&self, reader: &str, poison: &Poison) -> Result<(), FeedError> {
        self.dead_letters.send(reader, poison).await
    }

    fn committed(&mut self, resume: i64) {
        let mut tpl = TopicPartitionList::new();
        if let Err(error) =
            tpl.add_partition_offset(&self.topic, self.partition, Offset::Offset(resume))
        {
            tracing::debug!(%error, "cannot build an offset commit");
            return;
        }
        // Asynchronous, and only for Kafka's lag tools: a failed commit (say, the partition
        // just moved) changes nothing for the reader.
        if let Err(error) = self.consumer.commit(&tpl, CommitMode::Async) {
            tracing::debug!(partition = self.partition, %error, "offset commit failed");
        }
    }
}

/// Publishes poison records to the dead-letter topic.
struct DeadLetterProducer {
    producer: FutureProducer,
    topic: String,
    source_topic: String,
    group_id: String,
}

impl DeadLetterProducer {
    /// Returns once the broker acknowledged the record (all in-sync replicas).
    async fn send(&self, reader: &str, poison: &Poison) -> Result<(), FeedError> {
        let (partition, offset) = match poison.source {
            SourcePosition::Kafka { partition, offset } => (partition, offset),
            SourcePosition::Sql { position } => (0, i64::try_from(position).unwrap_or(-1)),
        };
        let partition = partition.to_string();
        let offset = offset.to_string();
        let mut headers = OwnedHeaders::new();
        for (key, value) in &poison.headers {
            headers = headers.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        let reader_tag = format!("{reader} ({})", self.group_id);
        for (key, value) in [
            (dlq_headers::REASON, poison.reason.as_str()),
            (dlq_headers::SOURCE_TOPIC, self.source_topic.as_str()),
            (dlq_headers::SOURCE_PARTITION, partition.as_str()),
            (dlq_headers::SOURCE_OFFSET, offset.as_str()),
            (dlq_headers::READER, reader_tag.as_str()),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.topic).headers(headers);
        if let Some(key) = &poison.key {
            record = record.key(key.as_slice());
        }
        if let Some(payload) = &poison.payload {
            record = record.payload(payload.as_slice());
        }
        self.producer
            .send(record, Duration::from_secs(30))
            .await
            .map(|_| ())
            .map_err(|(error, _)| FeedError::Kafka(error))
    }
}
