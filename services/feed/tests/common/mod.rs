//! Fixtures for the feed scenario: the sample reader, test events, and one backend per feed
//! (SQL table on SQLite, SQL table on PostgreSQL, Kafka), each giving the scenario fresh
//! storage of its own.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use motcua_feed::kafka::dlq_headers;
use motcua_feed::{
    Feed, FeedEvent, KafkaFeed, KafkaFeedConfig, Migration, Reader, ReaderDb, ReaderError,
    ReaderTx, SqlTableFeed,
};
use motcua_proto::v1::dossier_event::Payload;
use motcua_proto::v1::{DossierEvent, Forwarded, Received, Resolved, SupplementRequested};
use motcua_store::postgres::PostgresStore;
use motcua_store::sqlite::SqliteStore;
use motcua_store::{AppendRequest, DossierRow, EventStore, NewEvent};
use prost::Message as _;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use sqlx::Row;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Executor, PgConnection};

/// Logs to stderr when `TEST_LOG` is set (e.g. `TEST_LOG=motcua_feed=debug`); silent otherwise.
pub fn init_logs() {
    if let Ok(filter) = std::env::var("TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

// --- the sample reader ------------------------------------------------------------------------

/// The sample reader's tables: counts per dossier and per event type, and how many times each
/// `(dossier_id, seq)` was applied (which must be 1 for all).
const COUNTING_MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "counting reader",
    sqlite: "CREATE TABLE test_counts_by_dossier (dossier_id TEXT PRIMARY KEY, n INTEGER NOT NULL);
             CREATE TABLE test_counts_by_type (event_type TEXT PRIMARY KEY, n INTEGER NOT NULL);
             CREATE TABLE test_applied (dossier_id TEXT NOT NULL, seq INTEGER NOT NULL,
                 times INTEGER NOT NULL, PRIMARY KEY (dossier_id, seq));",
    postgres:
        "CREATE TABLE test_counts_by_dossier (dossier_id TEXT PRIMARY KEY, n BIGINT NOT NULL);
               CREATE TABLE test_counts_by_type (event_type TEXT PRIMARY KEY, n BIGINT NOT NULL);
               CREATE TABLE test_applied (dossier_id TEXT NOT NULL, seq BIGINT NOT NULL,
                   times BIGINT NOT NULL, PRIMARY KEY (dossier_id, seq));",
}];

/// Counts events per dossier and per type into its own tables. Can be told to fail a batch
/// (after doing its writes, like a crash just before the commit) and to be slow.
#[derive(Debug, Clone)]
pub struct CountingReader {
    pub name: String,
    /// Fail the batch with this number (1-based, counted over all lanes); 0: never.
    fail_on_batch: u64,
    batches: Arc<AtomicU64>,
    /// Time spent in each batch, with the transaction open.
    delay: Duration,
    /// Keeps each dossier's last seq itself, as the rates projector does (to run with the
    /// runner's dedupe off): drops repeats and answers [`Reader::applied_seqs`].
    own_seqs: bool,
}

impl CountingReader {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            fail_on_batch: 0,
            batches: Arc::new(AtomicU64::new(0)),
            delay: Duration::ZERO,
            own_seqs: false,
        }
    }

    /// See [`CountingReader::own_seqs`].
    pub fn keeping_its_own_seqs(mut self) -> Self {
        self.own_seqs = true;
        self
    }

    pub fn failing_on_batch(mut self, batch: u64) -> Self {
        self.fail_on_batch = batch;
        self
    }

    pub fn slow(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub async fn migrate(db: &ReaderDb) {
        db.migrate("test-counting-reader", COUNTING_MIGRATIONS)
            .await
            .expect("create the counting reader's tables");
    }
}

#[async_trait]
impl Reader for CountingReader {
    fn name(&self) -> &str {
        &self.name
    }

    async fn applied_seqs(
        &self,
        tx: &mut ReaderTx,
        dossier_ids: &[&str],
    ) -> Result<Option<std::collections::HashMap<String, u64>>, ReaderError> {
        if !self.own_seqs {
            return Ok(None);
        }
        let mut seqs = std::collections::HashMap::new();
        for id in dossier_ids {
            let last: Option<i64> =
                sqlx::query_scalar("SELECT MAX(seq) FROM test_applied WHERE dossier_id = $1")
                    .bind(*id)
                    .fetch_one(&mut **tx)
                    .await?;
            if let Some(last) = last {
                seqs.insert((*id).to_owned(), u64::try_from(last).unwrap_or(0));
            }
        }
        Ok(Some(seqs))
    }

    async fn apply(&self, tx: &mut ReaderTx, events: &[FeedEvent]) -> Result<(), ReaderError> {
        for event in events {
            if self.own_seqs {
                let last: Option<i64> =
                    sqlx::query_scalar("SELECT MAX(seq) FROM test_applied WHERE dossier_id = $1")
                        .bind(&event.dossier_id)
                        .fetch_one(&mut **tx)
                        .await?;
                if last.is_some_and(|last| event.seq <= u64::try_from(last).unwrap_or(0)) {
                    continue;
                }
            }
            sqlx::query(
                "INSERT INTO test_counts_by_dossier (dossier_id, n) VALUES ($1, 1) \
                 ON CONFLICT (dossier_id) DO UPDATE SET n = test_counts_by_dossier.n + 1",
            )
            .bind(&event.dossier_id)
            .execute(&mut **tx)
            .await?;
            sqlx::query(
                "INSERT INTO test_counts_by_type (event_type, n) VALUES ($1, 1) \
                 ON CONFLICT (event_type) DO UPDATE SET n = test_counts_by_type.n + 1",
            )
            .bind(event.event_type)
            .execute(&mut **tx)
            .await?;
            sqlx::query(
                "INSERT INTO test_applied (dossier_id, seq, times) VALUES ($1, $2, 1) \
                 ON CONFLICT (dossier_id, seq) DO UPDATE SET times = test_applied.times + 1",
            )
            .bind(&event.dossier_id)
            .bind(i64::try_from(event.seq).expect("a small seq"))
            .execute(&mut **tx)
            .await?;
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let batch = self.batches.fetch_add(1, Ordering::SeqCst) + 1;
        if batch == self.fail_on_batch {
            return Err(ReaderError::Unexpected(anyhow::anyhow!(
                "injected failure after applying batch {batch}"
            )));
        }
        Ok(())
    }
}

/// What the counting reader's tables say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub by_dossier: BTreeMap<String, i64>,
    pub by_type: BTreeMap<String, i64>,
    /// `(dossier_id, seq)` applied more than once, with how often.
    pub repeated: Vec<(String, i64, i64)>,
}

impl Counts {
    pub fn total(&self) -> i64 {
        self.by_dossier.values().sum()
    }
}

pub async fn counts(db: &ReaderDb) -> Counts {
    let pool = db.pool();
    let by_dossier = sqlx::query("SELECT dossier_id, n FROM test_counts_by_dossier")
        .fetch_all(pool)
        .await
        .expect("read counts by dossier")
        .iter()
        .map(|row| (row.get::<String, _>(0), row.get::<i64, _>(1)))
        .collect();
    let by_type = sqlx::query("SELECT event_type, n FROM test_counts_by_type")
        .fetch_all(pool)
        .await
        .expect("read counts by type")
        .iter()
        .map(|row| (row.get::<String, _>(0), row.get::<i64, _>(1)))
        .collect();
    let repeated = sqlx::query("SELECT dossier_id, seq, times FROM test_applied WHERE times <> 1")
        .fetch_all(pool)
        .await
        .expect("read applied events")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    Counts {
        by_dossier,
        by_type,
        repeated,
    }
}

// --- test events ------------------------------------------------------------------------------

/// One event the scenario publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestEvent {
    pub dossier_id: String,
    pub seq: u64,
}

impl TestEvent {
    pub fn new(dossier_id: &str, seq: u64) -> Self {
        Self {
            dossier_id: dossier_id.to_owned(),
            seq,
        }
    }

    /// The type follows from the seq, so expected counts per type are easy to compute.
    pub fn event_type(&self) -> &'static str {
        match self.seq {
            1 => "received",
            2 => "forwarded",
            3 => "supplement_requested",
            _ => "resolved",
        }
    }

    pub fn proto(&self) -> DossierEvent {
        let payload = match self.seq {
            1 => Payload::Received(Received::default()),
            2 => Payload::Forwarded(Forwarded::default()),
            3 => Payload::SupplementRequested(SupplementRequested::default()),
            _ => Payload::Resolved(Resolved::default()),
        };
        DossierEvent {
            event_id: uuid::Uuid::now_v7().to_string(),
            dossier_id: self.dossier_id.clone(),
            seq: self.seq,
            recorded_at: Some(prost_types::Timestamp {
                seconds: 1_740_988_800 + i64::try_from(self.seq).expect("small"),
                nanos: 0,
            }),
            request_id: format!("req-{}-{}", self.dossier_id, self.seq),
            payload: Some(payload),
            ..DossierEvent::default()
        }
    }
}

/// Events of `dossiers` for seqs `seqs`, interleaved as a busy centre would produce them
/// (every dossier's first event, then every second, ...).
pub fn events(
    dossiers: std::ops::Range<u32>,
    seqs: std::ops::RangeInclusive<u64>,
) -> Vec<TestEvent> {
    let mut events = Vec::new();
    for seq in seqs {
        for dossier in dossiers.clone() {
            events.push(TestEvent::new(&dossier_id(dossier), seq));
        }
    }
    events
}

pub fn dossier_id(n: u32) -> String {
    format!("HS-{n:04}")
}

/// What the counting reader must end with after applying `events` once each.
pub fn expected_counts(events: &[TestEvent]) -> Counts {
    let mut counts = Counts::default();
    for event in events {
        *counts
            .by_dossier
            .entry(event.dossier_id.clone())
            .or_default() += 1;
        *counts
            .by_type
            .entry(event.event_type().to_owned())
            .or_default() += 1;
    }
    counts
}

/// A dead letter as seen on the DLQ topic.
#[derive(Debug, Clone)]
pub struct DlqRecord {
    pub key: Option<Vec<u8>>,
    pub headers: BTreeMap<String, String>,
}

// --- backends ---------------------------------------------------------------------------------

/// One feed implementation with fresh storage: what the scenario runs against.
#[async_trait]
pub trait TestBackend: Send + Sync {
    type Feed: Feed;

    fn name(&self) -> &'static str;

    /// A new feed, as a (re)started process would build it.
    fn feed(&self) -> Self::Feed;

    /// The reader's database.
    fn db(&self) -> &ReaderDb;

    /// Publishes events in order, as the relay does.
    async fn publish(&self, events: &[TestEvent]);

    /// Publishes events again (the relay after a crash). `false` where duplicates cannot
    /// happen (the SQL table has one row per `(dossier_id, seq)`).
    async fn republish(&self, events: &[TestEvent]) -> bool;

    /// Publishes records that are not valid events, under dossier ids starting with
    /// `POISON-`; returns how many.
    async fn publish_poison(&self) -> usize;

    /// The dead letters outside the reader's database, if the feed has such a place.
    async fn external_dead_letters(&self, at_least: usize) -> Option<Vec<DlqRecord>>;

    /// The offsets the reader's consumer group committed to the broker, per partition, where
    /// the feed has such a thing.
    async fn broker_committed(&self) -> Option<BTreeMap<i32, i64>> {
        None
    }
}

/// Appends `events` to a store one command each, continuing each dossier's history.
async fn append_events(store: &dyn EventStore, events: &[TestEvent]) {
    for event in events {
        let proto = event.proto();
        append_raw(
            store,
            &event.dossier_id,
            event.seq,
            event.event_type(),
            proto.encode_to_vec(),
        )
        .await;
    }
}

async fn append_raw(
    store: &dyn EventStore,
    dossier_id: &str,
    seq: u64,
    event_type: &str,
    payload: Vec<u8>,
) {
    let now = chrono::Utc::now();
    let request_id = format!("req-{dossier_id}-{seq}");
    store
        .append(AppendRequest {
            dossier_id: dossier_id.to_owned(),
            expected_version: seq - 1,
            request_id: request_id.clone(),
            fingerprint: request_id.clone().into_bytes(),
            events: vec![NewEvent {
                event_id: uuid::Uuid::now_v7().to_string(),
                seq,
                event_type: event_type.to_owned(),
                recorded_at: now,
                payload,
            }],
            row: DossierRow {
                dossier_id: dossier_id.to_owned(),
                version: seq,
                status: 2,
                channel: 1,
                procedure_code: "1.001234".to_owned(),
                receiving_unit: "UBND-XA-01".to_owned(),
                competent_authority: "SO-TP".to_owned(),
                due_at: None,
                open: true,
                updated_at: now,
            },
            personal_data: None,
            claimed_number: None,
        })
        .await
        .expect("append a test event");
}

/// Poison through the store: payloads that are not events, and one whose dossier id is not
/// the row's (the store keeps payloads opaque, so it accepts them).
async fn append_poison(store: &dyn EventStore) -> usize {
    append_raw(
        store,
        "POISON-1",
        1,
        "received",
        b"\xffnot a protobuf\xff".to_vec(),
    )
    .await;
    let mut other = TestEvent::new("HS-OTHER", 1).proto();
    other.dossier_id = "HS-OTHER".to_owned();
    append_raw(store, "POISON-2", 1, "received", other.encode_to_vec()).await;
    2
}

/// The SQL table feed over the embedded SQLite store; the reader's database is another
/// SQLite file.
pub struct SqliteBackend {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    db: ReaderDb,
}

impl SqliteBackend {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = SqliteStore::open(&dir.path().join("events.sqlite3"))
            .await
            .expect("open the SQLite store");
        let db = ReaderDb::connect(&format!(
            "sqlite://{}",
            dir.path().join("reader.sqlite3").display()
        ))
        .await
        .expect("open the reader's SQLite database");
        Self {
            _dir: dir,
            store: Arc::new(store),
            db,
        }
    }

    pub fn store(&self) -> Arc<dyn EventStore> {
        self.store.clone()
    }
}

#[async_trait]
impl TestBackend for SqliteBackend {
    type Feed = SqlTableFeed;

    fn name(&self) -> &'static str {
        "sql-table/sqlite"
    }

    fn feed(&self) -> SqlTableFeed {
        SqlTableFeed::new(self.store.clone()).poll_interval(Duration::from_millis(20))
    }

    fn db(&self) -> &ReaderDb {
        &self.db
    }

    async fn publish(&self, events: &[TestEvent]) {
        append_events(self.store.as_ref(), events).await;
    }

    async fn republish(&self, _events: &[TestEvent]) -> bool {
        false
    }

    async fn publish_poison(&self) -> usize {
        append_poison(self.store.as_ref()).await
    }

    async fn external_dead_letters(&self, _at_least: usize) -> Option<Vec<DlqRecord>> {
        None
    }
}

/// The PostgreSQL server to test against, from `DATABASE_URL`; `None` (skip) without it,
/// unless `MOTCUA_REQUIRE_POSTGRES=1` says the tests must run.
pub fn postgres_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                !std::env::var("MOTCUA_REQUIRE_POSTGRES").is_ok_and(|v| v == "1"),
                "MOTCUA_REQUIRE_POSTGRES=1 but DATABASE_URL is not set: run the tests through \
                 `scripts/test-env.sh -- cargo test -p motcua-feed`"
            );
            eprintln!(
                "skipping a PostgreSQL feed test: DATABASE_URL is not set (run through \
                 scripts/test-env.sh, or set MOTCUA_REQUIRE_POSTGRES=1 to make this an error)"
            );
            None
        }
    }
}

/// The Kafka-protocol broker to test against, from `KAFKA_BROKERS`; `None` (skip) without it,
/// unless `MOTCUA_REQUIRE_KAFKA=1` says the tests must run.
pub fn kafka_brokers() -> Option<String> {
    match std::env::var("KAFKA_BROKERS") {
        Ok(brokers) if !brokers.trim().is_empty() => Some(brokers),
        _ => {
            assert!(
                !std::env::var("MOTCUA_REQUIRE_KAFKA").is_ok_and(|v| v == "1"),
                "MOTCUA_REQUIRE_KAFKA=1 but KAFKA_BROKERS is not set: run the tests through \
                 `scripts/test-env.sh -- cargo test -p motcua-feed`"
            );
            eprintln!(
                "skipping a Kafka feed test: KAFKA_BROKERS is not set (run through \
                 scripts/test-env.sh, or set MOTCUA_REQUIRE_KAFKA=1 to make this an error)"
            );
            None
        }
    }
}

/// A database of its own for one test on the `DATABASE_URL` server, dropped by `drop_now`.
pub struct TestDatabase {
    admin: PgConnection,
    name: String,
    /// A URL to it.
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> Option<Self> {
        let url = postgres_url()?;
        let mut admin = PgConnectOptions::from_str(&url)
            .expect("DATABASE_URL is a PostgreSQL URL")
            .connect()
            .await
            .expect("connect to the DATABASE_URL server");
        let name = format!("motcua_feed_test_{}", uuid::Uuid::new_v4().simple());
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create a test database (the DATABASE_URL user needs CREATEDB)");
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (url.as_str(), String::new()),
        };
        let (server, _) = base
            .rsplit_once('/')
            .expect("DATABASE_URL names a database");
        Some(Self {
            admin,
            url: format!("{server}/{name}{query}"),
            name,
        })
    }

    pub async fn drop_now(mut self) {
        self.admin
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
            .await
            .expect("drop the test database");
    }
}

/// The SQL table feed over the PostgreSQL store; the reader's tables are in the same database
/// (as a deployment sharing one database would have them).
pub struct PostgresBackend {
    pub database: TestDatabase,
    store: Arc<PostgresStore>,
    db: ReaderDb,
}

impl PostgresBackend {
    pub async fn new() -> Option<Self> {
        let database = TestDatabase::create().await?;
        let store = PostgresStore::connect(&database.url)
            .await
            .expect("the PostgreSQL store connects and migrates");
        let db = ReaderDb::connect(&database.url)
            .await
            .expect("the reader's database connects and migrates");
        Some(Self {
            database,
            store: Arc::new(store),
            db,
        })
    }

    pub async fn drop_now(self) {
        self.db.close().await;
        self.store.close().await;
        self.database.drop_now().await;
    }
}

#[async_trait]
impl TestBackend for PostgresBackend {
    type Feed = SqlTableFeed;

    fn name(&self) -> &'static str {
        "sql-table/postgres"
    }

    fn feed(&self) -> SqlTableFeed {
        SqlTableFeed::new(self.store.clone()).poll_interval(Duration::from_millis(20))
    }

    fn db(&self) -> &ReaderDb {
        &self.db
    }

    async fn publish(&self, events: &[TestEvent]) {
        append_events(self.store.as_ref(), events).await;
    }

    async fn republish(&self, _events: &[TestEvent]) -> bool {
        false
    }

    async fn publish_poison(&self) -> usize {
        append_poison(self.store.as_ref()).await
    }

    async fn external_dead_letters(&self, _at_least: usize) -> Option<Vec<DlqRecord>> {
        None
    }
}

/// The Kafka feed on a topic of its own (3 partitions), with a dead-letter topic of its own;
/// records are produced as the relay produces them. The reader's database is given.
pub struct KafkaBackend {
    pub brokers: String,
    pub topic: String,
    pub dlq_topic: String,
    pub group_id: String,
    producer: FutureProducer,
    db: ReaderDb,
    /// `partition.assignment.strategy` of every feed.
    pub strategy: String,
}

pub const TEST_PARTITIONS: i32 = 3;

impl KafkaBackend {
    pub async fn new(brokers: String, db: ReaderDb) -> Self {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let topic = format!("motcua.test.feed-{suffix}");
        let dlq_topic = format!("motcua.test.feed-dlq-{suffix}");
        create_topics(&brokers, &[(&topic, TEST_PARTITIONS), (&dlq_topic, 1)]).await;
        let producer = relay_like_producer(&brokers);
        Self {
            group_id: format!("motcua.test.reader-{suffix}"),
            brokers,
            topic,
            dlq_topic,
            producer,
            db,
            strategy: "cooperative-sticky".to_owned(),
        }
    }

    pub fn config(&self) -> KafkaFeedConfig {
        let mut config = KafkaFeedConfig::new(&self.brokers);
        config.topic = self.topic.clone();
        config.dead_letter_topic = self.dlq_topic.clone();
        config.group_id = Some(self.group_id.clone());
        config.assignment_strategy = self.strategy.clone();
        config.session_timeout = Duration::from_secs(6);
        config.fetch_wait_max = Duration::from_millis(50);
        config
    }

    async fn produce(&self, key: Option<&[u8]>, payload: &[u8], headers: OwnedHeaders) {
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic)
            .payload(payload)
            .headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        self.producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(error, _)| error)
            .expect("produce a test record");
    }
}

/// A producer like the relay's: idempotent, every in-sync replica acknowledges.
pub fn relay_like_producer(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "0")
        .create()
        .expect("create a producer")
}

pub async fn create_topics(brokers: &str, topics: &[(&str, i32)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("create an admin client");
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = admin
        .create_topics(&new_topics, &AdminOptions::new())
        .await
        .expect("create the test topics");
    for result in results {
        result
            .map_err(|(topic, error)| format!("{topic}: {error}"))
            .expect("topic created");
    }
}

/// The headers the relay puts on an event record.
pub fn relay_headers(event: &TestEvent) -> OwnedHeaders {
    let seq = event.seq.to_string();
    OwnedHeaders::new()
        .insert(Header {
            key: "motcua-event-type",
            value: Some(event.event_type()),
        })
        .insert(Header {
            key: "motcua-schema-version",
            value: Some("1"),
        })
        .insert(Header {
            key: "motcua-seq",
            value: Some(seq.as_str()),
        })
}

#[async_trait]
impl TestBackend for KafkaBackend {
    type Feed = KafkaFeed;

    fn name(&self) -> &'static str {
        "kafka"
    }

    fn feed(&self) -> KafkaFeed {
        KafkaFeed::new(self.config())
    }

    fn db(&self) -> &ReaderDb {
        &self.db
    }

    async fn publish(&self, events: &[TestEvent]) {
        // Sent one after another: each dossier's records in seq order, like the relay.
        for event in events {
            self.produce(
                Some(event.dossier_id.as_bytes()),
                &event.proto().encode_to_vec(),
                relay_headers(event),
            )
            .await;
        }
    }

    async fn republish(&self, events: &[TestEvent]) -> bool {
        self.publish(events).await;
        true
    }

    async fn publish_poison(&self) -> usize {
        // Not a protobuf.
        self.produce(
            Some(b"POISON-1"),
            b"\xffnot a protobuf\xff",
            OwnedHeaders::new(),
        )
        .await;
        // A valid event under another dossier's key.
        let other = TestEvent::new("HS-OTHER", 1);
        self.produce(
            Some(b"POISON-2"),
            &other.proto().encode_to_vec(),
            relay_headers(&other),
        )
        .await;
        // No key at all.
        self.produce(
            None,
            &TestEvent::new("POISON-3", 1).proto().encode_to_vec(),
            OwnedHeaders::new(),
        )
        .await;
        3
    }

    async fn external_dead_letters(&self, at_least: usize) -> Option<Vec<DlqRecord>> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", format!("{}-dlq-check", self.group_id))
            .set("enable.auto.commit", "false")
            .create()
            .expect("create a DLQ consumer");
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&self.dlq_topic, 0, Offset::Beginning)
            .expect("a DLQ assignment");
        consumer
            .assign(&assignment)
            .expect("assign the DLQ partition");
        // Everything on the topic now: a poison record may have been dead-lettered more than
        // once (by a runner that failed before committing), so a count is not enough.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut records = Vec::new();
        let mut end = 0;
        while std::time::Instant::now() < deadline {
            let (_, high) = consumer
                .fetch_watermarks(&self.dlq_topic, 0, Duration::from_secs(5))
                .expect("the DLQ's watermarks");
            end = high;
            if records.len() >= at_least && i64::try_from(records.len()).expect("small") >= end {
                break;
            }
            let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = message.expect("read the DLQ");
            let headers = message
                .headers()
                .map(|headers| {
                    headers
                        .iter()
                        .map(|header| {
                            (
                                header.key.to_owned(),
                                String::from_utf8_lossy(header.value.unwrap_or_default())
                                    .into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            records.push(DlqRecord {
                key: message.key().map(<[u8]>::to_vec),
                headers,
            });
        }
        assert_eq!(
            i64::try_from(records.len()).expect("small"),
            end,
            "read the whole DLQ topic in time"
        );
        Some(records)
    }

    async fn broker_committed(&self) -> Option<BTreeMap<i32, i64>> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group_id)
            .create()
            .expect("create a consumer of the reader's group");
        let mut partitions = TopicPartitionList::new();
        for partition in 0..TEST_PARTITIONS {
            partitions.add_partition(&self.topic, partition);
        }
        let committed = consumer
            .committed_offsets(partitions, Duration::from_secs(10))
            .expect("the group's committed offsets");
        Some(
            committed
                .elements()
                .iter()
                .filter_map(|element| match element.offset() {
                    Offset::Offset(offset) => Some((element.partition(), offset)),
                    _ => None,
                })
                .collect(),
        )
    }
}

/// The DLQ header names, for the scenario's checks.
pub const DLQ_REASON: &str = dlq_headers::REASON;
pub const DLQ_SOURCE_TOPIC: &str = dlq_headers::SOURCE_TOPIC;
pub const DLQ_SOURCE_PARTITION: &str = dlq_headers::SOURCE_PARTITION;
pub const DLQ_SOURCE_OFFSET: &str = dlq_headers::SOURCE_OFFSET;
