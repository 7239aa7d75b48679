//! Readers that never skip, whatever the broker does.
//!
//! - `the_broker_answers_a_fetch_inside_a_batch`: a conformance probe of the test broker. It
//!   produces 100 records in one record batch and fetches from offset 50 with a plain
//!   consumer. Apache Kafka answers with the batch holding 50 (the client drops 0–49); Tansu
//!   0.6 answers with the *next* batch, so a naive reader resumes at 100 and silently skips
//!   50–99. The probe prints which it is (`scripts/test.sh` shows the line) and fails only if
//!   the broker loses the records outright.
//! - `a_reader_resuming_inside_a_batch_applies_every_record_*`: the Kafka feed resumes at
//!   offset 50 of such a batch (as after a restart in the middle of a catch-up) and must apply
//!   50–99 and the later batch, each once, on either broker behaviour.
//!
//! Needs `KAFKA_BROKERS` (and `DATABASE_URL` for the PostgreSQL variant); skipped without them
//! unless `MOTCUA_REQUIRE_KAFKA=1` / `MOTCUA_REQUIRE_POSTGRES=1`.

mod common;

use std::time::{Duration, Instant};

use common::{
    CountingReader, TestDatabase, TestEvent, counts, create_topics, init_logs, kafka_brokers,
    relay_headers,
};
use motcua_feed::{KafkaFeed, KafkaFeedConfig, ReaderDb, ReaderRunner, RunnerOptions};
use prost::Message as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

const BATCH: i64 = 100;
const RESUME_AT: i64 = 50;
const LATER: i64 = 10;
const PATIENCE: Duration = Duration::from_secs(90);

/// A producer that puts everything sent at once into one record batch: idempotent like the
/// relay's, lingering so the records gather.
fn batching_producer(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "200")
        .set("batch.num.messages", "10000")
        .create()
        .expect("create a producer")
}

fn event(n: i64) -> TestEvent {
    // One event per dossier: no dossier's seqs can hide a skip.
    TestEvent::new(&format!("HS-CONT-{n:04}"), 1)
}

/// Produces events `from..to` to partition 0 of `topic`, all in flight at once (one batch).
async fn produce_batch(producer: &FutureProducer, topic: &str, from: i64, to: i64) {
    let events: Vec<TestEvent> = (from..to).map(event).collect();
    let payloads: Vec<Vec<u8>> = events.iter().map(|e| e.proto().encode_to_vec()).collect();
    let sends = events.iter().zip(&payloads).map(|(event, payload)| {
        let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
            .partition(0)
            .key(event.dossier_id.as_bytes())
            .payload(payload.as_slice())
            .headers(relay_headers(event));
        producer.send(record, Duration::from_secs(30))
    });
    for (n, sent) in futures::future::join_all(sends)
        .await
        .into_iter()
        .enumerate()
    {
        let (partition, offset) = sent
            .map(|delivery| (delivery.partition, delivery.offset))
            .map_err(|(error, _)| error)
            .expect("produce a record");
        assert_eq!(
            (partition, offset),
            (0, from + n as i64),
            "records land in order"
        );
    }
}

/// A topic of one partition holding records 0–99 in one batch.
async fn topic_with_one_batch(brokers: &str) -> String {
    let topic = format!("motcua.test.continuity-{}", uuid::Uuid::new_v4().simple());
    create_topics(brokers, &[(&topic, 1)]).await;
    produce_batch(&batching_producer(brokers), &topic, 0, BATCH).await;
    topic
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_answers_a_fetch_inside_a_batch() {
    init_logs();
    let Some(brokers) = kafka_brokers() else {
        return;
    };
    let topic = topic_with_one_batch(&brokers).await;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", format!("motcua.test.probe-{topic}"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("a consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Offset(RESUME_AT))
        .expect("an offset");
    consumer.assign(&tpl).expect("assign");
    let started = Instant::now();
    let mut produced_more = false;
    let first = loop {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the broker answered no fetch from offset {RESUME_AT} of a {BATCH}-record batch \
             in 30 s, and nothing follows the batch: records {RESUME_AT}-{} cannot be read",
            BATCH - 1
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => break message.offset(),
            Some(Err(error)) => panic!("fetch failed: {error}"),
            // A broker that answers with the next batch has none yet: produce one.
            None if !produced_more && started.elapsed() > Duration::from_secs(5) => {
                produce_batch(&batching_producer(&brokers), &topic, BATCH, BATCH + LATER).await;
                produced_more = true;
            }
            None => {}
        }
    };
    match first {
        offset if offset == RESUME_AT => println!(
            "broker conformance: a fetch inside a record batch returns the batch holding the \
             offset, as Apache Kafka does"
        ),
        offset => println!(
            "broker conformance: DEVIATES FROM KAFKA: a fetch from offset {RESUME_AT} inside a \
             {BATCH}-record batch returned offset {offset} first (Kafka returns the batch \
             holding {RESUME_AT}); the readers detect this and fetch again from further back"
        ),
    }
}

/// The Kafka feed resumes at offset 50 of the 100-record batch; then a later batch arrives.
async fn resume_inside_a_batch(brokers: String, db: ReaderDb) {
    let topic = topic_with_one_batch(&brokers).await;
    let reader = CountingReader::new("continuity");
    CountingReader::migrate(&db).await;
    let source = format!("kafka:{topic}");
    // The reader applied 0–49 before it stopped: its position says so.
    let mut tx = db.begin().await.expect("begin");
    assert!(
        motcua_feed::advance_position(&mut tx, "continuity", &source, 0, None, RESUME_AT)
            .await
            .expect("store a position")
    );
    tx.commit().await.expect("commit");

    let mut config = KafkaFeedConfig::new(&brokers);
    config.topic = topic.clone();
    config.dead_letter_topic = format!("{topic}.dlq");
    config.group_id = Some(format!("motcua.test.continuity-{topic}"));
    config.session_timeout = Duration::from_secs(6);
    config.fetch_wait_max = Duration::from_millis(50);
    let runner =
        ReaderRunner::new(KafkaFeed::new(config), reader, db.clone()).options(RunnerOptions {
            max_batch: 7,
            ..RunnerOptions::default()
        });
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(runner.run(shutdown.clone()));
    produce_batch(&batching_producer(&brokers), &topic, BATCH, BATCH + LATER).await;

    let expected = BATCH - RESUME_AT + LATER;
    let started = Instant::now();
    let applied = loop {
        let now = counts(&db).await;
        assert!(now.repeated.is_empty(), "applied twice: {:?}", now.repeated);
        if now.total() >= expected {
            break now;
        }
        assert!(
            !running.is_finished(),
            "the reader stopped after applying {} of {expected}",
            now.total()
        );
        assert!(
            started.elapsed() < PATIENCE,
            "the reader applied {} of the {expected} records after its position; applied: {:?}",
            now.total(),
            now.by_dossier.keys().collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let wanted: Vec<String> = (RESUME_AT..BATCH + LATER)
        .map(|n| event(n).dossier_id)
        .collect();
    let got: Vec<String> = applied.by_dossier.keys().cloned().collect();
    assert_eq!(got, wanted, "exactly the records from the position on");
    shutdown.cancel();
    running
        .await
        .expect("the runner does not panic")
        .expect("the runner stops cleanly");
    let position = motcua_feed::load_position(&db, "continuity", &source, 0)
        .await
        .expect("read the position");
    assert_eq!(position, Some(BATCH + LATER));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_resuming_inside_a_batch_applies_every_record_on_sqlite() {
    init_logs();
    let Some(brokers) = kafka_brokers() else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = ReaderDb::connect(&format!("sqlite://{}", dir.path().join("r.db").display()))
        .await
        .expect("open the reader database");
    resume_inside_a_batch(brokers, db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_resuming_inside_a_batch_applies_every_record_on_postgres() {
    init_logs();
    let Some(brokers) = kafka_brokers() else {
        return;
    };
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let db = ReaderDb::connect(&database.url).await.expect("connect");
    resume_inside_a_batch(brokers, db.clone()).await;
    db.close().await;
    database.drop_now().await;
}

/// A dossier's events on the topic skip a seq that the event store has: the reader either
/// heals the gap from the store or, without one, stops before applying over it.
async fn gap_on_the_topic(heal: bool) -> (Result<(), motcua_feed::FeedError>, common::Counts) {
    use common::TestBackend as _;
    let brokers = kafka_brokers().expect("checked by the caller");
    let store_side = common::SqliteBackend::new().await;
    let all: Vec<TestEvent> = (1..=4).map(|seq| TestEvent::new("HS-GAP-1", seq)).collect();
    // The store has seqs 1 to 4 ...
    store_side.publish(&all).await;
    // ... the topic only 1, 2 and 4.
    let topic = format!("motcua.test.gap-{}", uuid::Uuid::new_v4().simple());
    create_topics(&brokers, &[(&topic, 1)]).await;
    let producer = common::relay_like_producer(&brokers);
    for event in [&all[0], &all[1], &all[3]] {
        let payload = event.proto().encode_to_vec();
        let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic)
            .key(event.dossier_id.as_bytes())
            .payload(payload.as_slice())
            .headers(relay_headers(event));
        producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(error, _)| error)
            .expect("produce");
    }
    let db = store_side.db().clone();
    CountingReader::migrate(&db).await;
    let mut config = KafkaFeedConfig::new(&brokers);
    config.topic = topic.clone();
    config.dead_letter_topic = format!("{topic}.dlq");
    config.group_id = Some(format!("motcua.test.gap-{topic}"));
    config.fetch_wait_max = Duration::from_millis(50);
    let mut runner = ReaderRunner::new(
        KafkaFeed::new(config),
        CountingReader::new("gaps"),
        db.clone(),
    );
    if heal {
        runner = runner.heal_gaps_from(store_side.store());
    }
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(runner.run(shutdown.clone()));
    let started = Instant::now();
    loop {
        let now = counts(&db).await;
        if running.is_finished() || now.total() >= 4 || started.elapsed() > PATIENCE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    let outcome = running.await.expect("the runner does not panic");
    (outcome, counts(&db).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seq_gap_on_the_topic_is_healed_from_the_store() {
    init_logs();
    if kafka_brokers().is_none() {
        return;
    }
    let (outcome, applied) = gap_on_the_topic(true).await;
    outcome.expect("the reader heals the gap and stops cleanly");
    assert_eq!(applied.total(), 4, "seqs 1 to 4, the third from the store");
    assert!(applied.repeated.is_empty(), "{:?}", applied.repeated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seq_gap_without_a_store_to_heal_from_stops_the_reader() {
    init_logs();
    if kafka_brokers().is_none() {
        return;
    }
    let (outcome, applied) = gap_on_the_topic(false).await;
    let error = outcome.expect_err("the reader stops at the gap");
    assert!(
        matches!(
            &error,
            motcua_feed::FeedError::SeqGap { dossier_id, first_missing: 3, last_missing: 3, .. }
                if dossier_id == "HS-GAP-1"
        ),
        "{error}"
    );
    assert!(
        applied.total() <= 2,
        "nothing applied over the gap: {applied:?}"
    );
}
