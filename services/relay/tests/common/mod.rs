//! Fixtures for the relay tests: the broker and PostgreSQL from `scripts/test-env.sh`, a
//! database and a topic of its own per test, a loader that appends through the store, and a
//! reader that checks what reached the topic.
//!
//! Without `KAFKA_BROKERS` / `DATABASE_URL` the tests skip with a message, unless
//! `MOTCUA_REQUIRE_KAFKA=1` / `MOTCUA_REQUIRE_POSTGRES=1` say they must run: then they fail.

#![allow(dead_code)] // Each test binary uses its own part of these fixtures.

pub mod private_broker;

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use motcua_relay::topics::{self, TopicSpec};
use motcua_relay::{RelayConfig, RelayStatus};
use motcua_store::postgres::PostgresStore;
use motcua_store::{AppendRequest, DossierRow, EventStore, NewEvent, StoredEvent};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Executor, PgConnection};
use tokio::sync::watch;

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A required dependency from the environment, or `None` (skip) when it is not set and not
/// required.
fn dependency(variable: &str, required_by: &str, what: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(value) if !value.trim().is_empty() => Some(value),
        _ => {
            let required = std::env::var(required_by).is_ok_and(|v| v == "1");
            assert!(
                !required,
                "{required_by}=1 but {variable} is not set: run the tests through \
                 `scripts/test-env.sh -- cargo test`, or set {variable} to {what}"
            );
            eprintln!(
                "skipping a relay test: {variable} is not set (run through scripts/test-env.sh, \
                 or set {required_by}=1 to make this an error)"
            );
            None
        }
    }
}

/// The broker, or `None` when the test is skipped.
pub fn brokers() -> Option<String> {
    dependency("KAFKA_BROKERS", "MOTCUA_REQUIRE_KAFKA", "a Kafka broker")
}

/// The broker and the database server, or `None` when the test is skipped.
pub fn environment() -> Option<(String, String)> {
    let brokers = brokers();
    let database = dependency(
        "DATABASE_URL",
        "MOTCUA_REQUIRE_POSTGRES",
        "a PostgreSQL server whose user may create databases",
    );
    Some((brokers?, database?))
}

/// A database of its own for one test.
#[derive(Debug)]
pub struct TestDatabase {
    admin: PgConnection,
    name: String,
    pub options: PgConnectOptions,
}

impl TestDatabase {
    pub async fn create(url: &str) -> Self {
        let admin_options = PgConnectOptions::from_str(url).expect("DATABASE_URL is a URL");
        let mut admin = admin_options
            .connect()
            .await
            .expect("connect to DATABASE_URL");
        let name = format!("motcua_relay_{}", uuid::Uuid::new_v4().simple());
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create a test database");
        let options = admin_options.database(&name);
        Self {
            admin,
            name,
            options,
        }
    }

    /// A store on this database (its own pool).
    pub async fn store(&self) -> Arc<PostgresStore> {
        Arc::new(
            PostgresStore::connect_with(self.options.clone())
                .await
                .expect("connect the store"),
        )
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Terminates the sessions of this database whose application name matches `pattern`
    /// (SQL LIKE), as a server restart would; returns how many.
    pub async fn terminate(&mut self, pattern: &str) -> i64 {
        sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = $1 AND application_name LIKE $2 AND pid <> pg_backend_pid()",
        )
        .bind(&self.name)
        .bind(pattern)
        .fetch_one(&mut self.admin)
        .await
        .expect("terminate sessions")
    }

    pub async fn drop(mut self) {
        self.admin
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
            .await
            .expect("drop the test database");
    }
}

/// A topic name no other test uses.
pub fn unique_topic(prefix: &str) -> String {
    format!("test.{prefix}.{}", uuid::Uuid::new_v4().simple())
}

/// Creates a test topic shaped like the dossier-events topic.
pub async fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    topics::provision(
        brokers,
        &[TopicSpec::new(topic, partitions, 1).set("retention.ms", "-1")],
    )
    .await
    .expect("create the test topic");
}

/// The relay's configuration for a test topic: quick retries, so the tests are quick.
pub fn relay_config(brokers: &str, topic: &str) -> RelayConfig {
    let mut config = RelayConfig::new(brokers).with_topic(topic);
    config.standby_interval = Duration::from_millis(200);
    config.backoff_initial = Duration::from_millis(50);
    config.backoff_max = Duration::from_secs(1);
    config
}

pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 3, 8, 0, 0)
        .single()
        .expect("a valid instant")
        + chrono::Duration::seconds(seconds)
}

/// A dossier code of the test loads.
pub fn dossier_id(index: usize) -> String {
    format!("000.00.01.H38-250303-{index:05}")
}

/// The payload of an event: a few hundred bytes that name it, like an encoded event.
pub fn payload(dossier: &str, seq: u64) -> Vec<u8> {
    let mut payload = format!("{dossier}#{seq}|").into_bytes();
    payload.resize(300, u8::try_from(seq % 251).unwrap_or(0));
    payload
}

/// An append of `count` events continuing `dossier` from `version`.
pub fn append(dossier: &str, version: u64, count: u64) -> AppendRequest {
    let events = (version + 1..=version + count)
        .map(|seq| NewEvent {
            event_id: format!("{dossier}/{seq}"),
            seq,
            event_type: if seq == 1 { "received" } else { "forwarded" }.to_owned(),
            recorded_at: at(i64::try_from(seq).unwrap_or(0)),
            payload: payload(dossier, seq),
        })
        .collect();
    AppendRequest {
        dossier_id: dossier.to_owned(),
        expected_version: version,
        request_id: format!("{dossier}/request/{version}"),
        fingerprint: format!("{dossier}/{version}/{count}").into_bytes(),
        events,
        row: DossierRow {
            dossier_id: dossier.to_owned(),
            version: version + count,
            status: 2,
            channel: 1,
            procedure_code: "1.000948.H38".to_owned(),
            receiving_unit: "UBND-XA-01".to_owned(),
            competent_authority: "SO-TP".to_owned(),
            due_at: None,
            open: true,
            updated_at: at(0),
        },
        personal_data: None,
        claimed_number: None,
    }
}

/// Appends `dossiers × rounds × per_append` events: round by round, each dossier gets
/// `per_append` more events, so each dossier's events are spread over the whole load and
/// interleaved with the others'. `writers` tasks append at once, each its share of dossiers.
pub async fn load(
    store: Arc<dyn EventStore>,
    dossiers: usize,
    rounds: u64,
    per_append: u64,
    writers: usize,
) {
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                for round in 0..rounds {
                    for index in (writer..dossiers).step_by(writers) {
                        let request = append(&dossier_id(index), round * per_append, per_append);
                        let mut attempts = 0;
                        // Retried (same request id: never twice) while the database is away.
                        while let Err(error) = store.append(request.clone()).await {
                            attempts += 1;
                            assert!(attempts < 100, "append keeps failing: {error}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a loader task");
    }
}

/// Waits until the relay's durable checkpoint reaches `position`.
pub async fn wait_for_checkpoint(
    status: &mut watch::Receiver<RelayStatus>,
    position: u64,
    timeout: Duration,
) -> RelayStatus {
    let reached = tokio::time::timeout(timeout, status.wait_for(|s| s.checkpoint >= position))
        .await
        .map(|r| r.map(|s| s.clone()));
    match reached {
        Ok(Ok(status)) => status,
        _ => panic!(
            "the relay did not reach checkpoint {position} within {timeout:?}: {:?}",
            *status.borrow()
        ),
    }
}

/// A record read back from the topic.
#[derive(Debug, Clone)]
pub struct Received {
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub value: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

impl Received {
    pub fn seq(&self) -> u64 {
        self.headers
            .get("motcua-seq")
            .and_then(|s| s.parse().ok())
            .expect("a motcua-seq header")
    }
}

/// Reads the whole topic from the beginning, with a consumer of its own, until it has seen
/// `expected` distinct (dossier, seq) and the topic yields nothing more for a moment. In each
/// partition's offset order.
pub async fn read_topic(brokers: &str, topic: &str, expected: usize) -> Vec<Received> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("test-reader-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("a consumer");
    let partitions = partition_count(brokers, topic);
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("add a partition");
    }
    consumer.assign(&assignment).expect("assign the partitions");

    let mut received = Vec::new();
    let mut distinct = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        // Once everything is there, wait a little longer for stray duplicates.
        let quiet = if distinct.len() >= expected {
            Duration::from_secs(2)
        } else {
            Duration::from_secs(30)
        };
        match tokio::time::timeout(quiet, consumer.recv()).await {
            Ok(Ok(message)) => {
                let headers = message
                    .headers()
                    .map(|headers| {
                        headers
                            .iter()
                            .map(|h| {
                                (
                                    h.key.to_owned(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let record = Received {
                    partition: message.partition(),
                    offset: message.offset(),
                    key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
                    value: message.payload().unwrap_or_default().to_vec(),
                    headers,
                };
                distinct.insert((record.key.clone(), record.seq()));
                received.push(record);
            }
            Ok(Err(error)) => panic!("reading the topic failed: {error}"),
            Err(_) if distinct.len() >= expected => break,
            Err(_) => panic!(
                "the topic has {} distinct events of {expected} and nothing more comes",
                distinct.len()
            ),
        }
        assert!(Instant::now() < deadline, "reading the topic took too long");
    }
    received
}

pub fn partition_count(brokers: &str, topic: &str) -> i32 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("a metadata client");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("topic metadata");
    let partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().len())
        .expect("the topic exists");
    i32::try_from(partitions).expect("a partition count")
}

/// What the topic holds compared with the store.
#[derive(Debug, Default)]
pub struct Verdict {
    pub records: usize,
    pub duplicates: usize,
}

/// Checks the topic against every event in the store: each event is on the topic with its key,
/// value and headers; each dossier's events are in one partition, and in seq order without
/// gaps once repeated (dossier, seq) are dropped; a repeat carries the same value.
pub fn verify(received: &[Received], stored: &[StoredEvent]) -> Verdict {
    let by_key: HashMap<(&str, u64), &StoredEvent> = stored
        .iter()
        .map(|e| ((e.dossier_id.as_str(), e.seq), e))
        .collect();
    let mut partition_of: HashMap<&str, i32> = HashMap::new();
    let mut next_seq: HashMap<&str, u64> = HashMap::new();
    let mut last_offset: HashMap<i32, i64> = HashMap::new();
    let mut verdict = Verdict::default();
    for record in received {
        // The reader returns each partition in offset order; check that it did.
        if let Some(previous) = last_offset.insert(record.partition, record.offset) {
            assert!(record.offset > previous, "offsets go backwards");
        }
        let seq = record.seq();
        let event = by_key
            .get(&(record.key.as_str(), seq))
            .unwrap_or_else(|| panic!("{} #{seq} on the topic is not in the store", record.key));
        assert_eq!(record.value, event.payload, "{} #{seq}: value", record.key);
        assert_eq!(
            record.headers.get("motcua-event-type").map(String::as_str),
            Some(event.event_type.as_str())
        );
        assert_eq!(
            record
                .headers
                .get("motcua-schema-version")
                .map(String::as_str),
            Some("1")
        );
        assert_eq!(
            record.headers.get("motcua-position"),
            Some(&event.position.to_string())
        );
        assert!(
            record
                .headers
                .get("traceparent")
                .is_some_and(|t| t.len() == 55 && t.starts_with("00-")),
            "a traceparent header"
        );
        let key = event.dossier_id.as_str();
        let partition = *partition_of.entry(key).or_insert(record.partition);
        assert_eq!(
            partition, record.partition,
            "{key}: events in two partitions"
        );
        let next = next_seq.entry(key).or_insert(1);
        if seq == *next {
            *next += 1;
        } else if seq < *next {
            verdict.duplicates += 1;
        } else {
            panic!(
                "{key}: #{seq} at offset {} of partition {} before #{next}: out of order or a gap",
                record.offset, record.partition
            );
        }
        verdict.records += 1;
    }
    for event in stored {
        let next = next_seq
            .get(event.dossier_id.as_str())
            .copied()
            .unwrap_or(1);
        assert!(
            event.seq < next,
            "{} #{} (position {}) never reached the topic",
            event.dossier_id,
            event.seq,
            event.position
        );
    }
    verdict
}
