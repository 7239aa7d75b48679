//! The feed scenario: written once against the `Feed` trait and a sample reader, run against
//! every feed by the thin wrappers at the end: the SQL table feed on SQLite and on PostgreSQL,
//! and the Kafka feed with its reader's tables on PostgreSQL and on SQLite.
//!
//! The PostgreSQL and Kafka wrappers need `DATABASE_URL` and `KAFKA_BROKERS`; without them they
//! are skipped, or fail when `MOTCUA_REQUIRE_POSTGRES=1` / `MOTCUA_REQUIRE_KAFKA=1`.
//! `scripts/test-env.sh -- cargo test -p motcua-feed` provides both. Logs: `TEST_LOG=debug`.

mod common;

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use common::{
    CountingReader, Counts, DLQ_REASON, DLQ_SOURCE_OFFSET, DLQ_SOURCE_PARTITION, DLQ_SOURCE_TOPIC,
    KafkaBackend, PostgresBackend, SqliteBackend, TestBackend, TestDatabase, TestEvent, counts,
    events, expected_counts, init_logs, kafka_brokers,
};
use futures::FutureExt;
use motcua_feed::{
    Feed, FeedError, FeedEvent, FeedStatus, FeedWaker, ReaderDb, ReaderError, ReaderRunner,
    RunnerOptions, SourcePosition, SqlTableFeed, dead_letters, filter_new, load_position,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const READER: &str = "counting";
/// Long enough for a consumer group to form and rebalance on a loaded two-core machine.
const PATIENCE: Duration = Duration::from_secs(90);

fn runner<B: TestBackend>(
    backend: &B,
    reader: CountingReader,
) -> ReaderRunner<B::Feed, CountingReader> {
    ReaderRunner::new(backend.feed(), reader, backend.db().clone()).options(RunnerOptions {
        // Small batches: many transactions, so crashes and rebalances land between and inside
        // them.
        max_batch: 5,
        dedupe: true,
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(500),
    })
}

/// Polls the reader's tables until `done` holds; panics after [`PATIENCE`].
async fn wait_for_counts(db: &ReaderDb, what: &str, done: impl Fn(&Counts) -> bool) -> Counts {
    let started = Instant::now();
    loop {
        let now = counts(db).await;
        if done(&now) {
            return now;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "timed out waiting for {what}; the reader's counts are {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for_status(
    status: &mut watch::Receiver<FeedStatus>,
    what: &str,
    done: impl Fn(&FeedStatus) -> bool,
) -> FeedStatus {
    let outcome = tokio::time::timeout(PATIENCE, status.wait_for(|status| done(status)))
        .await
        .map(|result| result.map(|status| status.clone()));
    match outcome {
        Ok(Ok(status)) => status,
        _ => panic!(
            "timed out waiting for {what}; status {:?}",
            *status.borrow()
        ),
    }
}

fn sum(statuses: &[&FeedStatus], field: impl Fn(&motcua_feed::PartitionStatus) -> u64) -> u64 {
    statuses
        .iter()
        .flat_map(|status| status.partitions.values())
        .map(field)
        .sum()
}

/// The scenario. Every event is applied exactly once, through an injected failure, a crash
/// mid-stream, relay duplicates, poison records, and two runners of the reader at once (for
/// Kafka: two members of the group, then one leaves).
async fn scenario<B: TestBackend>(backend: &B) {
    let db = backend.db();
    CountingReader::migrate(db).await;
    let mut published: Vec<TestEvent> = Vec::new();

    // 1. Events with poison in the middle; the reader fails its third batch after doing its
    //    writes: the runner stops with the error, and that batch's writes are rolled back.
    let first = events(0..10, 1..=4);
    backend.publish(&first[..20]).await;
    let poisons = backend.publish_poison().await;
    backend.publish(&first[20..]).await;
    published.extend(first);
    let outcome = tokio::time::timeout(
        PATIENCE,
        runner(backend, CountingReader::new(READER).failing_on_batch(3))
            .run(CancellationToken::new()),
    )
    .await
    .expect("the runner stops at the injected failure");
    match outcome {
        Err(FeedError::Reader(ReaderError::Unexpected(error)))
            if error.to_string().contains("injected") => {}
        other => panic!(
            "{}: expected the injected failure, got {other:?}",
            backend.name()
        ),
    }
    let after_failure = counts(db).await;
    assert!(after_failure.repeated.is_empty(), "{after_failure:?}");
    assert!(
        after_failure.total() > 0 && after_failure.total() < 40,
        "two batches committed before the failed one: {after_failure:?}"
    );

    // 2. Restart, then crash mid-stream: the runner's task is dropped, its open transaction
    //    rolled back, nothing committed after.
    let second = events(10..30, 1..=5);
    backend.publish(&second).await;
    published.extend(second);
    let crashing = tokio::spawn(
        runner(
            backend,
            CountingReader::new(READER).slow(Duration::from_millis(15)),
        )
        .run(CancellationToken::new()),
    );
    let before_crash = after_failure.total();
    wait_for_counts(db, "progress before the crash", |now| {
        now.total() >= before_crash + 30
    })
    .await;
    crashing.abort();
    let _ = crashing.await;
    let after_crash = counts(db).await;
    assert!(after_crash.repeated.is_empty(), "{after_crash:?}");

    // 3. The relay republishes what it had in flight: the same (dossier_id, seq) again.
    let republished: Vec<TestEvent> = [&published[..15], &published[60..75]].concat();
    let duplicated = backend.republish(&republished).await;

    // 4. Two runners of the reader at once; the first stops while events keep coming.
    let shutdown_a = CancellationToken::new();
    let shutdown_b = CancellationToken::new();
    let runner_a = runner(
        backend,
        CountingReader::new(READER).slow(Duration::from_millis(10)),
    );
    let mut status_a = runner_a.status();
    let task_a = tokio::spawn(runner_a.run(shutdown_a.clone()));
    let third = [events(0..10, 5..=6), events(30..40, 1..=3)].concat();
    backend.publish(&third[..25]).await;
    wait_for_status(
        &mut status_a,
        "the first runner to apply something",
        |status| {
            status
                .partitions
                .values()
                .any(|partition| partition.batches > 0)
        },
    )
    .await;
    let runner_b = runner(
        backend,
        CountingReader::new(READER).slow(Duration::from_millis(10)),
    );
    let mut status_b = runner_b.status();
    let task_b = tokio::spawn(runner_b.run(shutdown_b.clone()));
    wait_for_status(
        &mut status_b,
        "the second runner to take a partition",
        |status| {
            status
                .partitions
                .values()
                .any(|partition| partition.assigned)
        },
    )
    .await;
    backend.publish(&third[25..35]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    shutdown_a.cancel();
    tokio::time::timeout(PATIENCE, task_a)
        .await
        .expect("the first runner stops")
        .expect("the first runner's task")
        .expect("the first runner stops cleanly");
    backend.publish(&third[35..]).await;
    published.extend(third);

    // 5. Everything exactly once.
    let expected = expected_counts(&published);
    wait_for_counts(db, "every event", |now| now.total() >= expected.total()).await;
    // Time for a late double application to show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status_b_now = wait_for_status(&mut status_b, "no lag", |status| {
        status.total_lag() == 0
            && status
                .partitions
                .values()
                .filter(|partition| partition.assigned)
                .all(|partition| partition.head.is_some())
    })
    .await;
    shutdown_b.cancel();
    tokio::time::timeout(PATIENCE, task_b)
        .await
        .expect("the second runner stops")
        .expect("the second runner's task")
        .expect("the second runner stops cleanly");

    let last = counts(db).await;
    assert!(
        last.repeated.is_empty(),
        "{}: applied twice: {:?}",
        backend.name(),
        last.repeated
    );
    assert_eq!(last.by_dossier, expected.by_dossier, "{}", backend.name());
    assert_eq!(last.by_type, expected.by_type, "{}", backend.name());

    let status_a_now = status_a.borrow().clone();
    let statuses = [&status_a_now, &status_b_now];
    if duplicated {
        assert_eq!(
            sum(&statuses, |partition| partition.duplicates),
            republished.len() as u64,
            "{}: every republished event was dropped once, by one of the runners",
            backend.name()
        );
    }
    assert!(
        status_b_now
            .partitions
            .values()
            .any(|partition| partition.assigned && partition.applied > 0),
        "{}: the second runner applied events: {status_b_now:?}",
        backend.name()
    );

    // The broker hears of the positions after the commits (for Kafka's lag tools); they are
    // the ones in SQL.
    if let Some(committed) = backend.broker_committed().await {
        let source = backend.feed().source();
        let mut stored = std::collections::BTreeMap::new();
        for &partition in status_b_now.partitions.keys() {
            if let Some(position) = load_position(db, READER, &source, partition)
                .await
                .expect("read a position")
            {
                stored.insert(partition, position);
            }
        }
        assert_eq!(
            committed,
            stored,
            "{}: broker commits = SQL positions",
            backend.name()
        );
    }

    // The poison records: dead-lettered once each, with a reason, and the reader went on.
    let dead = dead_letters(db, READER)
        .await
        .expect("read the dead letters");
    assert_eq!(dead.len(), poisons, "{}: {dead:?}", backend.name());
    for letter in &dead {
        assert!(!letter.reason.is_empty(), "{letter:?}");
        assert!(
            letter
                .key
                .as_deref()
                .is_none_or(|key| key.starts_with(b"POISON-")),
            "{letter:?}"
        );
    }
    if let Some(dlq) = backend.external_dead_letters(poisons).await {
        assert!(
            dlq.len() >= poisons,
            "{}: the DLQ topic has {dlq:?}",
            backend.name()
        );
        let mut dlq_offsets: Vec<(i32, i64)> = dlq
            .iter()
            .map(|record| {
                assert!(!record.headers[DLQ_REASON].is_empty(), "{record:?}");
                assert!(record.headers[DLQ_SOURCE_TOPIC].starts_with("motcua.test.feed-"));
                (
                    record.headers[DLQ_SOURCE_PARTITION]
                        .parse()
                        .expect("a partition"),
                    record.headers[DLQ_SOURCE_OFFSET]
                        .parse()
                        .expect("an offset"),
                )
            })
            .collect();
        dlq_offsets.sort_unstable();
        dlq_offsets.dedup();
        let mut sql_offsets: Vec<(i32, i64)> = dead
            .iter()
            .map(|letter| (letter.partition, letter.position))
            .collect();
        sql_offsets.sort_unstable();
        assert_eq!(
            dlq_offsets, sql_offsets,
            "the DLQ topic and the table name the same records"
        );
        assert!(
            dlq.iter()
                .any(|record| record.headers[DLQ_REASON].contains("not a motcua.v1")),
            "{dlq:?}"
        );
        assert!(dlq.iter().any(|record| record.key.is_none()), "{dlq:?}");
    }
}

/// Two runners of one reader following the same SQL lane at once, with deduplication off:
/// only the position's compare-and-set keeps them from applying a batch twice.
async fn fencing_scenario<B: TestBackend>(backend: &B) {
    let db = backend.db();
    CountingReader::migrate(db).await;
    let published = events(0..40, 1..=5);
    backend.publish(&published).await;
    let options = RunnerOptions {
        max_batch: 5,
        dedupe: false,
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(500),
    };
    let shutdown = CancellationToken::new();
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let runner = ReaderRunner::new(
                backend.feed(),
                CountingReader::new(READER).slow(Duration::from_millis(5)),
                db.clone(),
            )
            .options(options.clone());
            tokio::spawn(runner.run(shutdown.clone()))
        })
        .collect();
    let expected = expected_counts(&published);
    wait_for_counts(db, "every event", |now| now.total() >= expected.total()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    shutdown.cancel();
    for task in tasks {
        task.await
            .expect("a runner's task")
            .expect("a runner stops cleanly");
    }
    let last = counts(db).await;
    assert!(
        last.repeated.is_empty(),
        "{}: applied twice: {:?}",
        backend.name(),
        last.repeated
    );
    assert_eq!(last.by_dossier, expected.by_dossier, "{}", backend.name());
}

/// `filter_new` drops what was applied before, also within one batch, and what it keeps
/// becomes "applied" only if the transaction commits.
async fn dedupe_scenario(db: &ReaderDb) {
    let event = |dossier: &str, seq: u64| {
        let test = TestEvent::new(dossier, seq);
        FeedEvent {
            dossier_id: test.dossier_id.clone(),
            seq,
            event_type: test.event_type(),
            event: test.proto(),
            source: SourcePosition::Sql { position: seq },
        }
    };
    let batch = vec![
        event("A", 1),
        event("A", 2),
        event("B", 1),
        event("A", 2),
        event("A", 1),
    ];
    let mut tx = db.begin().await.expect("begin");
    let kept = filter_new(&mut tx, "dedupe", &batch).await.expect("filter");
    assert_eq!(kept.events, batch[..3].to_vec());
    assert_eq!(kept.duplicates, 2);
    assert_eq!(kept.gaps, 0);
    tx.rollback().await.expect("roll back");

    // Rolled back: nothing was recorded, the same batch is new again.
    let mut tx = db.begin().await.expect("begin");
    let kept = filter_new(&mut tx, "dedupe", &batch).await.expect("filter");
    assert_eq!(kept.events.len(), 3);
    tx.commit().await.expect("commit");

    let again = vec![
        event("A", 2),
        event("B", 1),
        event("B", 2),
        event("A", 4),
        event("C", 1),
    ];
    let mut tx = db.begin().await.expect("begin");
    let kept = filter_new(&mut tx, "dedupe", &again).await.expect("filter");
    assert_eq!(kept.events, again[2..].to_vec());
    assert_eq!(kept.duplicates, 2);
    assert_eq!(kept.gaps, 1, "A jumped from 2 to 4");
    tx.commit().await.expect("commit");

    // Another reader has seqs of its own.
    let mut tx = db.begin().await.expect("begin");
    let kept = filter_new(&mut tx, "another", &batch)
        .await
        .expect("filter");
    assert_eq!(kept.events.len(), 3);
    tx.rollback().await.expect("roll back");
}

/// Runs `body`, then `cleanup`, then re-raises a panic of `body`.
async fn with_cleanup<F, C>(body: F, cleanup: C)
where
    F: Future<Output = ()>,
    C: Future<Output = ()>,
{
    let outcome = AssertUnwindSafe(body).catch_unwind().await;
    cleanup.await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

mod sqlite {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sql_table_feed() {
        init_logs();
        let backend = SqliteBackend::new().await;
        scenario(&backend).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_runners_are_fenced() {
        init_logs();
        fencing_scenario(&SqliteBackend::new().await).await;
    }

    #[tokio::test]
    async fn dedupe() {
        init_logs();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = ReaderDb::connect(&format!("sqlite://{}", dir.path().join("r.db").display()))
            .await
            .expect("open the reader database");
        dedupe_scenario(&db).await;
    }

    /// Opening twice applies the feed's migrations once; the reader's SQLite database is in
    /// WAL mode.
    #[tokio::test]
    async fn migrations_are_idempotent() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("r.db").display());
        ReaderDb::connect(&url).await.expect("first open");
        let db = ReaderDb::connect(&url).await.expect("second open");
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM feed_migrations")
            .fetch_one(db.pool())
            .await
            .expect("count migrations");
        assert_eq!(applied, 1);
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(db.pool())
            .await
            .expect("read the journal mode");
        assert_eq!(mode, "wal");
    }

    /// A caught-up SQL feed with a long poll interval picks up a new event at once when its
    /// waker is woken.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waker_wakes_the_feed_early() {
        init_logs();
        let backend = SqliteBackend::new().await;
        CountingReader::migrate(backend.db()).await;
        let waker = FeedWaker::new();
        let feed = SqlTableFeed::new(backend.store())
            .poll_interval(Duration::from_secs(3600))
            .with_waker(&waker);
        let runner = ReaderRunner::new(feed, CountingReader::new(READER), backend.db().clone());
        let mut status = runner.status();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(runner.run(shutdown.clone()));
        wait_for_status(&mut status, "the feed to find the store empty", |status| {
            status.partitions.get(&0).is_some_and(|p| p.head == Some(0))
        })
        .await;
        backend.publish(&events(0..1, 1..=1)).await;
        waker.wake();
        tokio::time::timeout(
            Duration::from_secs(5),
            wait_for_counts(backend.db(), "the woken feed", |now| now.total() == 1),
        )
        .await
        .expect("applied long before the poll interval");
        shutdown.cancel();
        task.await
            .expect("the runner's task")
            .expect("the runner stops cleanly");
    }
}

mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sql_table_feed() {
        init_logs();
        let Some(backend) = PostgresBackend::new().await else {
            return;
        };
        let cleanup_backend = &backend;
        with_cleanup(scenario(cleanup_backend), async {}).await;
        backend.drop_now().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_runners_are_fenced() {
        init_logs();
        let Some(backend) = PostgresBackend::new().await else {
            return;
        };
        with_cleanup(fencing_scenario(&backend), async {}).await;
        backend.drop_now().await;
    }

    #[tokio::test]
    async fn dedupe() {
        init_logs();
        let Some(database) = TestDatabase::create().await else {
            return;
        };
        let db = ReaderDb::connect(&database.url).await.expect("connect");
        with_cleanup(dedupe_scenario(&db), async {
            db.close().await;
        })
        .await;
        database.drop_now().await;
    }
}

mod kafka {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn feed_with_postgres_reader() {
        init_logs();
        let Some(brokers) = kafka_brokers() else {
            return;
        };
        let Some(database) = TestDatabase::create().await else {
            return;
        };
        let db = ReaderDb::connect(&database.url).await.expect("connect");
        let backend = KafkaBackend::new(brokers, db.clone()).await;
        with_cleanup(scenario(&backend), async {
            db.close().await;
        })
        .await;
        database.drop_now().await;
    }

    /// The same with an eager assignor (`range`): every rebalance revokes every partition.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn feed_with_eager_rebalancing() {
        init_logs();
        let Some(brokers) = kafka_brokers() else {
            return;
        };
        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = ReaderDb::connect(&format!("sqlite://{}", dir.path().join("r.db").display()))
            .await
            .expect("open the reader database");
        let mut backend = KafkaBackend::new(brokers, db).await;
        backend.strategy = "range".to_owned();
        scenario(&backend).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn feed_with_sqlite_reader() {
        init_logs();
        let Some(brokers) = kafka_brokers() else {
            return;
        };
        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = ReaderDb::connect(&format!("sqlite://{}", dir.path().join("r.db").display()))
            .await
            .expect("open the reader database");
        let backend = KafkaBackend::new(brokers, db).await;
        scenario(&backend).await;
    }
}
