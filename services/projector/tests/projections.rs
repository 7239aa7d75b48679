//! The Kafka projections against a real broker (`KAFKA_BROKERS`, started by
//! `scripts/test-env.sh`): generated histories applied by the projector fill the outbox; the
//! publisher drains it onto two topics of this run; a consumer reading them from the start
//! must find every dossier's status and the province's monthly figures, the outbox empty, and
//! no personal data. And with the broker unreachable, a pass keeps every outbox row.
//!
//! Without `KAFKA_BROKERS` the broker test skips with a message, unless `MOTCUA_REQUIRE_KAFKA=1`
//! makes that a failure. The unreachable-broker test needs no broker and always runs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use motcua_domain::lifecycle::DossierState;
use motcua_feed::{FeedEvent, Reader, ReaderDb, SourcePosition};
use motcua_projector::generate::{GenerateOptions, Generator, History};
use motcua_projector::period::day_of;
use motcua_projector::{
    Period, ProjectionPublisher, PublisherOptions, RatesProjector, ReadModel, ReportQuery,
    ScopeKind, Tables, generations,
};
use motcua_relay::topics::{self, TopicSpec};
use rand::Rng;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// The node's clock in these tests: Sunday 6 December 2026 02:00 Vietnam time (a Saturday
/// night), fixed, so the periods that have ended and the dossiers that are overdue are the
/// same whatever the day the tests run.
fn now() -> chrono::DateTime<Utc> {
    chrono::DateTime::parse_from_rfc3339("2026-12-05T19:00:00Z")
        .expect("a time")
        .with_timezone(&Utc)
}

/// `a == b`, floats within a rounding error (JSON parsing without float round trips may be
/// off in the last digit).
fn assert_same(a: &Value, b: &Value, path: &str) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<_> = x.keys().chain(y.keys()).collect();
            for key in keys {
                assert_same(&x[key], &y[key], &format!("{path}.{key}"));
            }
        }
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().expect("a number"), y.as_f64().expect("a number"));
            assert!(
                (x - y).abs() <= 1e-12 * x.abs().max(1.0),
                "{path}: {x} != {y}"
            );
        }
        _ => assert_eq!(a, b, "{path}"),
    }
}

fn node_clock() -> Arc<dyn motcua_domain::clock::Clock> {
    Arc::new(motcua_domain::clock::ManualClock::new(now()))
}

/// The broker, or `None` when the test is skipped.
fn brokers() -> Option<String> {
    match std::env::var("KAFKA_BROKERS") {
        Ok(value) if !value.trim().is_empty() => Some(value),
        _ => {
            assert!(
                std::env::var("MOTCUA_REQUIRE_KAFKA").as_deref() != Ok("1"),
                "MOTCUA_REQUIRE_KAFKA=1 but KAFKA_BROKERS is not set: run through \
                 `scripts/test-env.sh -- cargo test -p motcua-projector --test projections`"
            );
            eprintln!(
                "skipping the Kafka projection test: KAFKA_BROKERS is not set (run through \
                 scripts/test-env.sh, or set MOTCUA_REQUIRE_KAFKA=1 to make this an error)"
            );
            None
        }
    }
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn suffix() -> String {
    let mut rng = rand::rng();
    (0..12)
        .map(|_| char::from(b'a' + rng.random_range(0..26)))
        .collect()
}

fn histories(dossiers: usize) -> (motcua_domain::calendar::WorkingCalendar, Vec<History>) {
    let mut generator = Generator::new(GenerateOptions {
        seed: 20261122,
        dossiers,
        ..GenerateOptions::default()
    });
    let histories = generator.histories();
    (generator.calendar().clone(), histories)
}

/// A reader database in `dir` with the active generation, and every history applied by the
/// projector (with its outbox) in batches, as the runner would.
async fn projected(dir: &tempfile::TempDir, dossiers: usize) -> (ReaderDb, Tables, Vec<History>) {
    let url = format!("sqlite://{}", dir.path().join("rates.sqlite3").display());
    let db = ReaderDb::connect(&url).await.expect("reader db");
    let tables = generations::ensure_active(&db).await.expect("generation 1");
    let (calendar, histories) = histories(dossiers);
    let projector = RatesProjector::new(tables.clone(), Arc::new(calendar));
    apply_all(&db, &projector, &histories).await;
    (db, tables, histories)
}

/// Applies every event of `histories` with `projector`, 500 events per transaction.
async fn apply_all(db: &ReaderDb, projector: &RatesProjector, histories: &[History]) {
    let events: Vec<FeedEvent> = histories
        .iter()
        .flat_map(|h| &h.events)
        .enumerate()
        .map(|(i, event)| FeedEvent {
            dossier_id: event.dossier_id.clone(),
            seq: event.seq,
            event_type: motcua_domain::lifecycle::event_type_name(
                event.payload.as_ref().expect("payload"),
            ),
            event: event.clone(),
            source: SourcePosition::Sql {
                position: i as u64 + 1,
            },
        })
        .collect();
    for chunk in events.chunks(500) {
        let mut tx = db.begin().await.expect("tx");
        projector.apply(&mut tx, chunk).await.expect("applies");
        tx.commit().await.expect("commit");
    }
}

async fn outbox_rows(db: &ReaderDb, tables: &Tables) -> Vec<(String, String, i64)> {
    let sql = format!(
        "SELECT key_kind, key, changed_at FROM {} ORDER BY key_kind, key",
        tables.outbox
    );
    sqlx::query_as(&sql)
        .fetch_all(db.pool())
        .await
        .expect("outbox rows")
}

/// One record read back.
#[derive(Debug)]
struct Received {
    key: String,
    value: Value,
    headers: BTreeMap<String, String>,
}

fn partition_count(brokers: &str, topic: &str) -> i32 {
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

/// Reads `topic` from the beginning until it has `expected` distinct keys and then nothing
/// more for a moment.
async fn read_topic(brokers: &str, topic: &str, expected: usize) -> Vec<Received> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("test-projections-{}", suffix()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("a consumer");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partition_count(brokers, topic) {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("add a partition");
    }
    consumer.assign(&assignment).expect("assign");
    let mut received = Vec::new();
    let mut keys = std::collections::HashSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let quiet = if keys.len() >= expected {
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
                let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
                let value: Value = serde_json::from_slice(message.payload().unwrap_or_default())
                    .expect("the value is JSON");
                keys.insert(key.clone());
                received.push(Received {
                    key,
                    value,
                    headers,
                });
            }
            Ok(Err(error)) => panic!("reading {topic} failed: {error}"),
            Err(_) if keys.len() >= expected => break,
            Err(_) => panic!(
                "{topic} has {} distinct keys of {expected} and nothing more comes",
                keys.len()
            ),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "reading {topic} took too long"
        );
    }
    received
}

/// The latest value per key (what compaction keeps).
fn latest(records: &[Received]) -> BTreeMap<String, &Value> {
    records.iter().map(|r| (r.key.clone(), &r.value)).collect()
}

/// Field names that would mean personal data. `name` and `identity` are allowed only where
/// they are not about a person: a score's name and the period identity of docs/domain.md §5.
fn personal_fields(value: &Value, path: &str, found: &mut Vec<String>) {
    const DENIED: [&str; 14] = [
        "phone",
        "email",
        "address",
        "birth",
        "applicant",
        "citizen",
        "person",
        "full_name",
        "owner",
        "id_number",
        "identity_number",
        "cccd",
        "cmnd",
        "chu_ho_so",
    ];
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                let here = format!("{path}.{key}");
                let lower = key.to_lowercase();
                let allowed_name = here.starts_with("$.scores[]") && lower == "name";
                let allowed_identity = here == "$.figures.identity";
                if DENIED.iter().any(|d| lower.contains(d))
                    || (lower.contains("name") && !allowed_name)
                    || (lower.contains("identity") && !allowed_identity)
                {
                    found.push(here.clone());
                }
                personal_fields(item, &here, found);
            }
        }
        Value::Array(items) => {
            for item in items {
                personal_fields(item, &format!("{path}[]"), found);
            }
        }
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projections_reach_the_topics_and_empty_the_outbox() {
    init_logs();
    let Some(brokers) = brokers() else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (db, tables, histories) = projected(&dir, 120).await;
    let before = outbox_rows(&db, &tables).await;
    assert!(
        before.iter().filter(|r| r.0 == "dossier").count() == histories.len(),
        "one outbox row per dossier"
    );
    assert!(before.iter().any(|r| r.0 == "rates"));

    let run = suffix();
    let rates_topic = format!("test.rates.{run}");
    let status_topic = format!("test.dossier-status.{run}");
    topics::provision(
        &brokers,
        &[
            TopicSpec::new(&rates_topic, 3, 1).set("cleanup.policy", "compact"),
            TopicSpec::new(&status_topic, 3, 1).set("cleanup.policy", "compact"),
        ],
    )
    .await
    .expect("create the test topics");

    let mut options = PublisherOptions::new(brokers.clone());
    options.rates_topic = rates_topic.clone();
    options.status_topic = status_topic.clone();
    options.interval = Duration::from_millis(100);
    // Small passes, so the test goes through several and their coalescing.
    options.max_rows = 150;
    let model = ReadModel::new(db.clone());
    let publisher = ProjectionPublisher::new(model.clone(), options)
        .expect("a publisher")
        .with_clock(node_clock());
    let stats = publisher.stats();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(publisher.run(shutdown.clone()));
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !outbox_rows(&db, &tables).await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the outbox was not drained; last error: {:?}",
            stats.last_error()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    task.await
        .expect("joins")
        .expect("the publisher stops cleanly");
    assert!(stats.last_error().is_none(), "{:?}", stats.last_error());
    let passes = stats.passes.load(std::sync::atomic::Ordering::Relaxed);
    assert!(passes >= 2, "only {passes} passes");

    // Dossier statuses: one key per dossier, with its final status.
    let statuses = read_topic(&brokers, &status_topic, histories.len()).await;
    let by_key = latest(&statuses);
    assert_eq!(by_key.len(), histories.len());
    for history in &histories {
        let state = DossierState::fold(&history.events)
            .expect("folds")
            .expect("exists");
        let value = by_key
            .get(&history.dossier_id)
            .unwrap_or_else(|| panic!("no status for {}", history.dossier_id));
        assert_eq!(value["schema"], "motcua.dossier-status.v1");
        assert_eq!(value["dossier_id"], history.dossier_id.as_str());
        assert_eq!(value["status"]["code"], state.status as i32 as i64);
        assert_eq!(value["version"], state.version);
        let time = |field: &str| {
            value[field]
                .as_str()
                .map(|t| chrono::DateTime::parse_from_rfc3339(t).expect("an RFC 3339 time"))
        };
        let published = time("published_at").expect("published_at");
        assert_eq!(
            value["overdue_now"],
            time("late_from").is_some_and(|late| late < published)
        );
    }
    for record in &statuses {
        assert_eq!(record.headers["schema"], "motcua.dossier-status.v1");
        assert_eq!(record.headers["content-type"], "application/json");
    }

    // Rates: the province's month of the first dossier, equal to the report.
    let first = DossierState::fold([&histories[0].events[0]])
        .expect("folds")
        .expect("created");
    let day = day_of(first.created_at);
    let month = Period::parse(&format!("{}-{:02}", day / 10_000, day / 100 % 100)).expect("month");
    let report = model
        .report_in(
            &tables,
            &ReportQuery {
                scope: ScopeKind::Province,
                scope_id: String::new(),
                channel: None,
                period: month,
            },
            now(),
        )
        .await
        .expect("a report");
    let key = format!("province/-/{month}");
    // The scope-days of the outbox, each under its four periods.
    let mut expected_keys = std::collections::BTreeSet::new();
    for (kind, key, _) in before.iter().filter(|r| r.0 == "rates") {
        assert_eq!(kind, "rates");
        let mut parts = key.split('|');
        let (scope, id, day) = (
            parts.next().expect("scope"),
            parts.next().expect("id"),
            parts.next().expect("day"),
        );
        let day: i64 = day.parse().expect("a day");
        let date = motcua_projector::period::date_of(day).expect("a date");
        for period in Period::containing(date) {
            if period.start() <= now() {
                let id = if id.is_empty() { "-" } else { id };
                expected_keys.insert(format!("{scope}/{id}/{period}"));
            }
        }
    }
    let rates = read_topic(&brokers, &rates_topic, expected_keys.len()).await;
    let rates_by_key = latest(&rates);
    let value = rates_by_key
        .get(&key)
        .unwrap_or_else(|| panic!("no record {key}"));
    assert_eq!(value["schema"], "motcua.rates.v1");
    assert_eq!(value["key"], key.as_str());
    assert_eq!(value["period"]["kind"], "month");
    assert_eq!(value["closed"], true);
    // Every figure of the closed month, as the report gives it.
    assert_same(
        &value["figures"],
        &serde_json::to_value(&report.figures).expect("figures serialise"),
        "figures",
    );
    assert!(report.figures.received > 0);
    assert_eq!(
        value["scores"].as_array().map(Vec::len),
        Some(8),
        "every score"
    );
    // Coalesced: each key at most once per pass, so never more records than passes per key.
    let mut per_key: BTreeMap<&str, u64> = BTreeMap::new();
    for record in &rates {
        *per_key.entry(record.key.as_str()).or_default() += 1;
        assert_eq!(record.headers["schema"], "motcua.rates.v1");
    }
    assert!(
        per_key.values().all(|&n| n <= passes),
        "a key published more often than there were passes"
    );
    let published: std::collections::BTreeSet<String> = rates_by_key.keys().cloned().collect();
    assert!(
        expected_keys.is_subset(&published),
        "missing rates keys: {:?}",
        expected_keys
            .difference(&published)
            .take(5)
            .collect::<Vec<_>>()
    );

    // No personal data anywhere.
    let mut found = Vec::new();
    for record in statuses.iter().chain(&rates) {
        personal_fields(&record.value, "$", &mut found);
    }
    found.sort();
    found.dedup();
    assert!(found.is_empty(), "fields that look personal: {found:?}");

    // Time alone: with the watermark moved back to 30 March (as after a long stop), a pass
    // republishes the dossiers that became overdue since, and the periods that ended since,
    // closed, although the outbox is empty.
    let since = chrono::DateTime::parse_from_rfc3339("2026-03-30T00:00:00Z")
        .expect("a time")
        .with_timezone(&Utc);
    sqlx::query("UPDATE rates_publisher SET late_watermark = $1")
        .bind(since.timestamp_micros())
        .execute(db.pool())
        .await
        .expect("move the watermark");
    // And one dossier that became overdue an hour ago with no event since (the generated
    // histories are months old, so one is made so: a test-only edit of its row).
    let crossed = histories[0].dossier_id.clone();
    sqlx::query(&format!(
        "UPDATE {} SET late_from = $1, ended_at = NULL WHERE dossier_id = $2",
        tables.dossiers
    ))
    .bind((now() - chrono::Duration::hours(1)).timestamp_micros())
    .bind(crossed.as_str())
    .execute(db.pool())
    .await
    .expect("make a dossier overdue");
    let sql = format!(
        "SELECT dossier_id FROM {} WHERE late_from > $1 AND late_from <= $2 AND ended_at IS NULL",
        tables.dossiers
    );
    let overdue: Vec<String> = sqlx::query_scalar(&sql)
        .bind(since.timestamp_micros())
        .bind(now().timestamp_micros())
        .fetch_all(db.pool())
        .await
        .expect("overdue dossiers");
    let mut options = PublisherOptions::new(brokers.clone());
    options.rates_topic = rates_topic.clone();
    options.status_topic = status_topic.clone();
    options.max_catch_up_days = 400;
    let mut publisher = ProjectionPublisher::new(model.clone(), options)
        .expect("a publisher")
        .with_clock(node_clock());
    let pass = publisher.publish_pass().await.expect("a pass");
    eprintln!("catch-up pass: {pass:?}");
    assert_eq!(pass.outbox_rows, 0);
    assert_eq!(pass.crossings, overdue.len());
    assert_eq!(pass.statuses, overdue.len());
    assert!(overdue.contains(&crossed));
    assert!(pass.ended_periods >= 230, "{pass:?}");
    let statuses_again = read_topic(&brokers, &status_topic, histories.len()).await;
    let value = latest(&statuses_again)[&crossed];
    assert_eq!(value["overdue_now"], true, "{value}");
    let today = now().with_timezone(&motcua_domain::time::vietnam());
    let today_key = format!("province/-/{}", today.format("%Y-%m-%d"));
    assert!(pass.rates > 0, "{pass:?}");
    let again = read_topic(&brokers, &rates_topic, expected_keys.len()).await;
    let march = again
        .iter()
        .filter(|r| r.key == "province/-/2026-03")
        .count();
    let before_march = rates
        .iter()
        .filter(|r| r.key == "province/-/2026-03")
        .count();
    assert_eq!(
        march,
        before_march + 1,
        "March ended after the watermark: republished once"
    );
    // Republished months later, a closed month's figures on the topic have not moved.
    let march_records: Vec<&Value> = again
        .iter()
        .filter(|r| r.key == "province/-/2026-03")
        .map(|r| &r.value)
        .collect();
    let (first_march, last_march) = (march_records[0], march_records[march_records.len() - 1]);
    assert_eq!(last_march["closed"], true);
    assert_eq!(first_march["figures"], last_march["figures"]);
    assert_eq!(first_march["judged_at"], last_march["judged_at"]);
    let today_value = latest(&again)[&today_key];
    assert_eq!(today_value["closed"], false);
    assert!(
        today_value["figures"]["in_progress_past_due"]
            .as_i64()
            .is_some_and(|n| n >= 1),
        "{today_value}"
    );
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_keeps_every_outbox_row() {
    init_logs();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (db, tables, _) = projected(&dir, 20).await;
    let before = outbox_rows(&db, &tables).await;
    assert!(!before.is_empty());

    let mut options = PublisherOptions::new("127.0.0.1:1");
    options.delivery_timeout = Duration::from_secs(2);
    let mut publisher =
        ProjectionPublisher::new(ReadModel::new(db.clone()), options).expect("a publisher");
    let stats = publisher.stats();
    let error = publisher
        .publish_pass()
        .await
        .expect_err("nothing can be delivered");
    assert!(
        error.to_string().contains("not delivered"),
        "unexpected error: {error}"
    );
    assert_eq!(outbox_rows(&db, &tables).await, before, "rows were dropped");
    assert_eq!(
        stats
            .failed_passes
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert!(stats.last_error().is_some());
    db.close().await;
}

/// After a rebuild switched generations (a rebuild fills no outbox), the first pass queues
/// every key of the new generation, and consumers get every dossier again from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generation_switch_republishes_everything_once() {
    init_logs();
    let Some(brokers) = brokers() else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (db, tables, histories) = projected(&dir, 40).await;
    let run = suffix();
    let rates_topic = format!("test.rates.{run}");
    let status_topic = format!("test.dossier-status.{run}");
    topics::provision(
        &brokers,
        &[
            TopicSpec::new(&rates_topic, 1, 1).set("cleanup.policy", "compact"),
            TopicSpec::new(&status_topic, 1, 1).set("cleanup.policy", "compact"),
        ],
    )
    .await
    .expect("create the test topics");
    let mut options = PublisherOptions::new(brokers.clone());
    options.rates_topic = rates_topic.clone();
    options.status_topic = status_topic.clone();
    let model = ReadModel::new(db.clone());
    let mut publisher = ProjectionPublisher::new(model.clone(), options)
        .expect("a publisher")
        .with_clock(node_clock());
    loop {
        let pass = publisher.publish_pass().await.expect("a pass");
        if !pass.more {
            break;
        }
    }
    assert!(outbox_rows(&db, &tables).await.is_empty());
    // A second pass on the same generation seeds nothing.
    let pass = publisher.publish_pass().await.expect("a pass");
    assert_eq!(pass.seeded, 0, "{pass:?}");

    // The rebuild: a fresh generation filled without its outbox, then activated.
    let rebuilt = generations::begin_rebuild(&db).await.expect("generation 2");
    assert_eq!(rebuilt.generation, 2);
    let (calendar, _) = self::histories(1);
    let projector = RatesProjector::new(rebuilt.clone(), Arc::new(calendar)).without_outbox();
    apply_all(&db, &projector, &histories).await;
    assert!(outbox_rows(&db, &rebuilt).await.is_empty());
    generations::activate(&db, 2).await.expect("switch");

    let mut seeded = 0;
    loop {
        let pass = publisher.publish_pass().await.expect("a pass");
        seeded += pass.seeded;
        if !pass.more {
            break;
        }
    }
    let days: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM (SELECT DISTINCT scope_kind, scope_id, day FROM {}) AS d",
        rebuilt.days
    ))
    .fetch_one(db.pool())
    .await
    .expect("scope-days");
    assert_eq!(seeded, histories.len() as u64 + days as u64);
    assert!(outbox_rows(&db, &rebuilt).await.is_empty(), "drained");
    let statuses = read_topic(&brokers, &status_topic, histories.len()).await;
    let by_key = latest(&statuses);
    assert_eq!(by_key.len(), histories.len());
    for value in by_key.values() {
        assert_eq!(value["generation"], 2, "{value}");
    }
    assert_eq!(
        statuses.len(),
        2 * histories.len(),
        "each dossier once per generation"
    );
    db.close().await;
}
