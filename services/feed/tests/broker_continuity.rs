//! Readers that never skip, whatever the broker does.
//!
//! - `the_broker_answers_a_fetch_inside_a_batch`: a conformance probe of the test broker. It
//!   produces 100 records in one record batch and fetches from offset 50 with a plain
//!   consumer. Apache Kafka answers with the batch holding 50 (the client drops 0–49); Tansu
//!   0.6 answers with the *next* batch, so a naive reader resumes at 100 and silently skips
//!   50–99. The probe prints which it is (`scripts/test.sh` shows the line) and fails only if
//!   the broker loses the records outright.
//! - `the_broker_reassigns_a_killed_members_partitions`: a conformance probe of consumer
//!   groups (ignored in the ordinary run; `scripts/test.sh` runs it): a member killed with
//!   SIGKILL, a replacement 1.5 s later; Apache Kafka assigns it everything once the dead
//!   member's session expires. Prints what the broker did.
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

/// The consumer group's session: the readers' own (`KafkaFeedConfig::new`).
const SESSION: Duration = Duration::from_secs(10);
/// The environment variables that make [`a_member_of_the_probe_group`] join the group.
const PROBE_GROUP: &str = "MOTCUA_PROBE_GROUP";
const PROBE_TOPIC: &str = "MOTCUA_PROBE_TOPIC";

/// A consumer of `group` on `topic`, set up as the readers' are.
fn group_member(brokers: &str, group: &str, topic: &str) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", SESSION.as_millis().to_string())
        .set("heartbeat.interval.ms", "1000")
        .create()
        .expect("a consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}

fn assigned(consumer: &BaseConsumer) -> usize {
    consumer.assignment().map(|a| a.count()).unwrap_or(0)
}

/// Not a test of its own: the group member that the consumer-group probe starts as a process
/// and kills with SIGKILL (a crash, which a consumer in the probe's own process cannot be).
#[test]
#[ignore = "a process of the consumer-group probe"]
fn a_member_of_the_probe_group() {
    let (Ok(group), Ok(topic), Some(brokers)) = (
        std::env::var(PROBE_GROUP),
        std::env::var(PROBE_TOPIC),
        kafka_brokers(),
    ) else {
        return;
    };
    let consumer = group_member(&brokers, &group, &topic);
    let started = Instant::now();
    let mut told = false;
    while started.elapsed() < Duration::from_secs(300) {
        let _ = consumer.poll(Duration::from_millis(100));
        if !told && assigned(&consumer) > 0 {
            println!("PROBE-MEMBER-ASSIGNED");
            told = true;
        }
    }
}

/// The second conformance probe, of consumer groups: a member holding every partition is
/// killed with SIGKILL and a replacement joins 1.5 s later, as after a crash and a restart.
/// Apache Kafka gives the replacement the partitions once the dead member's session
/// (10 s) expires. Prints how long it took, or that it deviates; ignored in the ordinary run
/// (it waits up to a minute): `scripts/test.sh` runs it with the other probe. The readers
/// themselves do not rely on it: their assignment watchdog rejoins a group that leaves
/// partitions unowned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a probe of the broker, run by scripts/test.sh"]
async fn the_broker_reassigns_a_killed_members_partitions() {
    init_logs();
    let Some(brokers) = kafka_brokers() else {
        return;
    };
    let topic = format!("motcua.test.group-probe-{}", uuid::Uuid::new_v4().simple());
    create_topics(&brokers, &[(&topic, 4)]).await;
    let group = format!("motcua.test.group-probe-{topic}");
    if !a_member_killed_while_holding_partitions(&group, &topic) {
        println!(
            "broker conformance: DEVIATES FROM KAFKA: a lone member of a new consumer group \
             got no partition in 60 s"
        );
        return;
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let replacement = group_member(&brokers, &group, &topic);
    let started = Instant::now();
    let limit = 3 * SESSION;
    let wait = limit + Duration::from_secs(15);
    while started.elapsed() < wait && assigned(&replacement) < 4 {
        let _ = replacement.poll(Duration::from_millis(100));
    }
    let took = started.elapsed();
    match assigned(&replacement) {
        4 if took <= limit => println!(
            "broker conformance: a member killed with -9 had its partitions reassigned to a \
             replacement in {:.1} s (session {} s), as Apache Kafka does",
            took.as_secs_f64(),
            SESSION.as_secs()
        ),
        n => println!(
            "broker conformance: DEVIATES FROM KAFKA: {} s after a member was killed with -9 \
             (session {} s), its replacement holds {n} of 4 partitions; the readers' \
             assignment watchdog rejoins such a group (motcua_feed_rejoins_total)",
            took.as_secs(),
            SESSION.as_secs()
        ),
    }
}

/// Starts [`a_member_of_the_probe_group`] as a process of its own in `group`, waits until it
/// holds partitions, and kills it with SIGKILL: a reader crashed while holding them. `false`
/// if it never got any (the broker does not assign a lone member).
fn a_member_killed_while_holding_partitions(group: &str, topic: &str) -> bool {
    let mut member = std::process::Command::new(std::env::current_exe().expect("this binary"))
        .args([
            "a_member_of_the_probe_group",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(PROBE_GROUP, group)
        .env(PROBE_TOPIC, topic)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the member starts");
    let stdout = member.stdout.take().expect("its output");
    let (ready_tx, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("PROBE-MEMBER-ASSIGNED") {
                let _ = ready_tx.send(());
            }
        }
    });
    let joined = ready.recv_timeout(Duration::from_secs(60)).is_ok();
    member.kill().expect("kill -9");
    member.wait().expect("reaped");
    joined
}

/// A reader joins its group 1.5 s after a member holding every partition was killed with
/// SIGKILL, with records waiting. On Apache Kafka the group gives it the partitions once the
/// dead member's session expires; the test broker can leave them unassigned for minutes (see
/// the probe above), and then the reader's assignment watchdog must notice and rejoin. Either
/// way the reader must read every record, within a bound of a few session timeouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_left_without_partitions_after_a_crash_rejoins_and_reads_everything() {
    init_logs();
    let Some(brokers) = kafka_brokers() else {
        return;
    };
    let topic = format!("motcua.test.rejoin-{}", uuid::Uuid::new_v4().simple());
    create_topics(&brokers, &[(&topic, 4)]).await;
    let producer = common::relay_like_producer(&brokers);
    let events: Vec<TestEvent> = (0..40)
        .map(|n| TestEvent::new(&format!("HS-REJOIN-{n:02}"), 1))
        .collect();
    for event in &events {
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
    let group = format!("motcua.test.rejoin-{topic}");
    assert!(
        a_member_killed_while_holding_partitions(&group, &topic),
        "a lone member of a new group got no partition in 60 s"
    );
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    use common::TestBackend as _;
    let backend = common::SqliteBackend::new().await;
    let db = backend.db().clone();
    CountingReader::migrate(&db).await;
    let mut config = KafkaFeedConfig::new(&brokers);
    config.topic = topic.clone();
    config.dead_letter_topic = format!("{topic}.dlq");
    config.group_id = Some(group);
    config.fetch_wait_max = Duration::from_millis(50);
    config.stall_after = Duration::from_secs(15);
    let runner = ReaderRunner::new(
        KafkaFeed::new(config),
        CountingReader::new("rejoin"),
        db.clone(),
    );
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(runner.run(shutdown.clone()));
    let started = Instant::now();
    // Session (10 s) and two watchdog checks before the stall counts, the stall (15 s), the
    // rejoin's rebalance: about 45 s on a misbehaving broker.
    let bound = Duration::from_secs(120);
    loop {
        let applied = counts(&db).await.total();
        if applied >= 40 {
            break;
        }
        assert!(!running.is_finished(), "the reader stopped");
        assert!(
            started.elapsed() < bound,
            "the reader read {applied} of 40 records in {bound:?}: its partitions stayed \
             unassigned and it did not rejoin"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "a reader left without partitions read everything after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    shutdown.cancel();
    running
        .await
        .expect("the runner does not panic")
        .expect("the reader stops cleanly");
    let applied = counts(&db).await;
    assert_eq!(applied.total(), 40);
    assert!(applied.repeated.is_empty(), "{:?}", applied.repeated);
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
/// heals the gap from the store or, without one, stops before applying over it. With
/// `reader_dedupes`, the runner's dedupe is off and the reader keeps its own seqs (as the
/// rates projector does), so the gap is found through [`motcua_feed::Reader::applied_seqs`].
async fn gap_on_the_topic(
    heal: bool,
    reader_dedupes: bool,
) -> (Result<(), motcua_feed::FeedError>, common::Counts) {
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
    let mut reader = CountingReader::new("gaps");
    let mut options = RunnerOptions::default();
    if reader_dedupes {
        reader = reader.keeping_its_own_seqs();
        options.dedupe = false;
    }
    let mut runner = ReaderRunner::new(KafkaFeed::new(config), reader, db.clone()).options(options);
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
    for reader_dedupes in [false, true] {
        let (outcome, applied) = gap_on_the_topic(true, reader_dedupes).await;
        outcome.expect("the reader heals the gap and stops cleanly");
        assert_eq!(
            applied.total(),
            4,
            "seqs 1 to 4, the third from the store (reader dedupes: {reader_dedupes})"
        );
        assert!(applied.repeated.is_empty(), "{:?}", applied.repeated);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seq_gap_without_a_store_to_heal_from_stops_the_reader() {
    init_logs();
    if kafka_brokers().is_none() {
        return;
    }
    for reader_dedupes in [false, true] {
        a_gap_stops(reader_dedupes).await;
    }
}

async fn a_gap_stops(reader_dedupes: bool) {
    let (outcome, applied) = gap_on_the_topic(false, reader_dedupes).await;
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
