//! Feed benchmarks (an example, not a timed test):
//!
//! - `kafka`: end-to-end latency from handing an event to the producer (configured like the
//!   relay's: idempotent, `acks=all`, `linger.ms` 5) to the reader having committed it, at a
//!   steady rate (default 1,000 events/s for 30 s) on a 3-partition topic, through the Kafka
//!   feed, with a reader doing one upsert per event; the
//!   reader's database is PostgreSQL when `DATABASE_URL` is set (a fresh database per run),
//!   SQLite otherwise.
//! - `sql`: throughput of the SQL table feed on the embedded SQLite store: how fast a reader
//!   catches up on a backlog (default 100,000 events), with a no-op reader (the feed's own
//!   cost: read, decode, dedupe, position) and with a counting reader (one upsert per event).
//!
//! ```text
//! scripts/test-env.sh -- cargo run --release -p motcua-feed --example feed_bench -- \
//!     [kafka|sql|all] [--runs 3] [--seconds 30] [--rate 1000] [--events 100000] \
//!     [--fetch-wait-ms 10] [--linger-ms 5] [--noop]
//! ```
//!
//! Each benchmark runs `--runs` times and prints every run and the median.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use hdrhistogram::Histogram;
use motcua_feed::{
    FeedEvent, FeedStatus, KafkaFeed, KafkaFeedConfig, Reader, ReaderDb, ReaderError, ReaderRunner,
    ReaderTx, RunnerOptions, SqlTableFeed,
};
use motcua_proto::v1::dossier_event::Payload;
use motcua_proto::v1::{DossierEvent, Received, Resolved};
use motcua_store::sqlite::SqliteStore;
use motcua_store::{AppendRequest, DossierRow, EventStore, NewEvent};
use prost::Message as _;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Executor};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The allocator of the `motcua` binary, so that the benchmark measures what runs.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Clone)]
struct Args {
    which: String,
    runs: usize,
    seconds: u64,
    rate: u64,
    events: u64,
    fetch_wait_ms: u64,
    /// Kafka run with a reader that writes nothing (the feed's own latency).
    noop: bool,
    /// The producer's `linger.ms` (the relay's is 5).
    linger_ms: u64,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        which: "all".to_owned(),
        runs: 3,
        seconds: 30,
        rate: 1000,
        events: 100_000,
        fetch_wait_ms: 10,
        noop: false,
        linger_ms: 5,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(arg) = iter.next() {
        let mut value = || iter.next().context("a flag without its value");
        match arg.as_str() {
            "kafka" | "sql" | "all" => args.which = arg,
            "--runs" => args.runs = value()?.parse()?,
            "--seconds" => args.seconds = value()?.parse()?,
            "--rate" => args.rate = value()?.parse()?,
            "--events" => args.events = value()?.parse()?,
            "--fetch-wait-ms" => args.fetch_wait_ms = value()?.parse()?,
            "--noop" => args.noop = true,
            "--linger-ms" => args.linger_ms = value()?.parse()?,
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    Ok(args)
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX)
        })
}

fn event(dossier_id: String, seq: u64, stamped_nanos: i64, warmup: bool) -> DossierEvent {
    DossierEvent {
        event_id: uuid::Uuid::now_v7().to_string(),
        dossier_id,
        seq,
        recorded_at: Some(prost_types::Timestamp {
            seconds: stamped_nanos / 1_000_000_000,
            nanos: i32::try_from(stamped_nanos % 1_000_000_000).unwrap_or(0),
        }),
        request_id: if warmup { "warmup" } else { "measured" }.to_owned(),
        payload: Some(if seq == 1 {
            Payload::Received(Received::default())
        } else {
            Payload::Resolved(Resolved::default())
        }),
        ..DossierEvent::default()
    }
}

/// The benchmark's reader: one upsert per event (a typical projector), and, after the commit,
/// the latency of each measured event from its stamp to now.
#[derive(Debug, Clone)]
struct BenchReader {
    name: String,
    /// Whether `apply` writes anything (false: the feed's own cost only).
    writes: bool,
    latencies: Arc<Mutex<Histogram<u64>>>,
    /// The same, measured when `apply` gets the events (before the commit).
    delivered: Arc<Mutex<Histogram<u64>>>,
    /// (stamp in ns, latency in µs) of every measured event, to see latency over time.
    samples: Arc<Mutex<Vec<(i64, u64)>>>,
    applied: Arc<AtomicU64>,
}

impl BenchReader {
    fn new(name: &str, writes: bool) -> Self {
        Self {
            name: name.to_owned(),
            writes,
            latencies: Arc::new(Mutex::new(histogram())),
            delivered: Arc::new(Mutex::new(histogram())),
            samples: Arc::new(Mutex::new(Vec::new())),
            applied: Arc::new(AtomicU64::new(0)),
        }
    }

    async fn migrate(db: &ReaderDb) -> anyhow::Result<()> {
        db.migrate(
            "bench-reader",
            &[motcua_feed::Migration {
                version: 1,
                description: "bench counts",
                sqlite: "CREATE TABLE bench_counts \
                         (dossier_id TEXT PRIMARY KEY, n INTEGER NOT NULL)",
                postgres: "CREATE TABLE bench_counts \
                           (dossier_id TEXT PRIMARY KEY, n BIGINT NOT NULL)",
            }],
        )
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Reader for BenchReader {
    fn name(&self) -> &str {
        &self.name
    }

    async fn apply(&self, tx: &mut ReaderTx, events: &[FeedEvent]) -> Result<(), ReaderError> {
        record_latencies(&self.delivered, events);
        if self.writes {
            for event in events {
                sqlx::query(
                    "INSERT INTO bench_counts (dossier_id, n) VALUES ($1, 1) \
                     ON CONFLICT (dossier_id) DO UPDATE SET n = bench_counts.n + 1",
                )
                .bind(&event.dossier_id)
                .execute(&mut **tx)
                .await?;
            }
        }
        Ok(())
    }

    fn after_commit(&self, events: &[FeedEvent]) {
        record_latencies(&self.latencies, events);
        let now = now_nanos();
        let mut samples = self
            .samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for event in events {
            if let (Some(stamp), "measured") =
                (&event.event.recorded_at, event.event.request_id.as_str())
            {
                let stamped = stamp.seconds * 1_000_000_000 + i64::from(stamp.nanos);
                samples.push((stamped, u64::try_from((now - stamped) / 1000).unwrap_or(0)));
            }
        }
        self.applied
            .fetch_add(events.len() as u64, Ordering::Relaxed);
    }
}

/// Microseconds from 1 µs to a minute.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Records the latency of each measured event, from its stamp to now.
fn record_latencies(histogram: &Mutex<Histogram<u64>>, events: &[FeedEvent]) {
    let now = now_nanos();
    let mut histogram = histogram
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for event in events {
        if event.event.request_id != "measured" {
            continue;
        }
        if let Some(stamp) = &event.event.recorded_at {
            let stamped = stamp.seconds * 1_000_000_000 + i64::from(stamp.nanos);
            let micros = u64::try_from((now - stamped) / 1000).unwrap_or(0).max(1);
            let _ = histogram.record(micros);
        }
    }
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

type Acked = (
    Result<
        rdkafka::producer::future_producer::OwnedDeliveryResult,
        futures::channel::oneshot::Canceled,
    >,
    Instant,
    bool,
);

/// Checks a delivery and records how long the broker took to acknowledge it.
fn acked((result, sent, measured): Acked, acks: &mut Histogram<u64>) -> anyhow::Result<()> {
    result?.map_err(|(error, _)| anyhow::anyhow!("delivery: {error}"))?;
    if measured {
        let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
        let _ = acks.record(micros.max(1));
    }
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

async fn wait_status(
    status: &mut watch::Receiver<FeedStatus>,
    timeout: Duration,
    done: impl Fn(&FeedStatus) -> bool,
) -> anyhow::Result<()> {
    tokio::time::timeout(timeout, status.wait_for(|status| done(status)))
        .await
        .context("timed out")?
        .context("the runner is gone")?;
    Ok(())
}

// --- Kafka end-to-end latency ---------------------------------------------------------------

struct KafkaRun {
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    produced: u64,
}

async fn reader_db(label: &str) -> anyhow::Result<(ReaderDb, Option<tempfile::TempDir>)> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            let mut admin = PgConnectOptions::from_str(&url)?.connect().await?;
            let name = format!("motcua_feed_bench_{}", uuid::Uuid::new_v4().simple());
            admin
                .execute(format!("CREATE DATABASE {name}").as_str())
                .await?;
            let (base, query) = match url.split_once('?') {
                Some((base, query)) => (base, format!("?{query}")),
                None => (url.as_str(), String::new()),
            };
            let (server, _) = base
                .rsplit_once('/')
                .context("DATABASE_URL names a database")?;
            eprintln!("{label}: reader database on PostgreSQL ({name})");
            Ok((
                ReaderDb::connect(&format!("{server}/{name}{query}")).await?,
                None,
            ))
        }
        _ => {
            let dir = tempfile::tempdir()?;
            eprintln!("{label}: reader database on SQLite (DATABASE_URL not set)");
            let db = ReaderDb::connect(&format!("sqlite://{}", dir.path().join("r.db").display()))
                .await?;
            Ok((db, Some(dir)))
        }
    }
}

async fn kafka_run(args: &Args, brokers: &str) -> anyhow::Result<KafkaRun> {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let topic = format!("motcua.bench.feed-{suffix}");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    for result in admin
        .create_topics(
            &[NewTopic::new(&topic, 3, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await?
    {
        result.map_err(|(topic, error)| anyhow::anyhow!("creating {topic}: {error}"))?;
    }
    let (db, _dir) = reader_db("kafka").await?;
    BenchReader::migrate(&db).await?;

    let mut config = KafkaFeedConfig::new(brokers);
    config.topic = topic.clone();
    config.dead_letter_topic = format!("{topic}.dlq");
    config.group_id = Some(format!("motcua.bench.reader-{suffix}"));
    config.fetch_wait_max = Duration::from_millis(args.fetch_wait_ms);
    let reader = BenchReader::new("bench", !args.noop);
    let latencies = reader.latencies.clone();
    let delivered = reader.delivered.clone();
    let samples = reader.samples.clone();
    let applied = reader.applied.clone();
    let runner = ReaderRunner::new(KafkaFeed::new(config), reader, db.clone());
    let mut status = runner.status();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(runner.run(shutdown.clone()));
    wait_status(&mut status, Duration::from_secs(60), |status| {
        status.partitions.values().filter(|p| p.assigned).count() == 3
    })
    .await
    .context("the reader joining its group")?;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", args.linger_ms.to_string())
        .set("batch.num.messages", "10000")
        .create()?;
    let dossiers = 1000_u64;
    let warmup = args.rate; // one second
    let total = warmup + args.rate * args.seconds;
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let mut deliveries = FuturesUnordered::new();
    let mut acks = histogram();
    let started = Instant::now();
    for n in 0..total {
        // Paced against the start, so a late tick is made up at once (a steady rate).
        let due = started + interval.mul_f64(n as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let dossier_id = format!("HS-{:05}", n % dossiers);
        let seq = n / dossiers + 1;
        let payload = event(dossier_id.clone(), seq, now_nanos(), n < warmup).encode_to_vec();
        let seq_text = seq.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "motcua-event-type",
                value: Some(if seq == 1 { "received" } else { "resolved" }),
            })
            .insert(Header {
                key: "motcua-seq",
                value: Some(seq_text.as_str()),
            });
        let record = FutureRecord::to(&topic)
            .key(dossier_id.as_str())
            .payload(payload.as_slice())
            .headers(headers);
        let delivery = producer
            .send_result(record)
            .map_err(|(error, _)| anyhow::anyhow!("enqueueing: {error}"))?;
        let sent = Instant::now();
        let measured = n >= warmup;
        deliveries.push(async move { (delivery.await, sent, measured) });
        // Reap acknowledged deliveries without waiting.
        while let Some(Some(done)) = futures::FutureExt::now_or_never(deliveries.next()) {
            acked(done, &mut acks)?;
        }
    }
    let produce_secs = started.elapsed().as_secs_f64();
    while let Some(done) = deliveries.next().await {
        acked(done, &mut acks)?;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while applied.load(Ordering::Relaxed) < total {
        anyhow::ensure!(Instant::now() < deadline, "the reader did not catch up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    task.await??;
    db.close().await;
    let latencies = latencies
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let delivered = delivered
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    eprintln!(
        "kafka: produced {total} events in {produce_secs:.1} s ({:.0}/s), {} measured; \
         producer ack p50 {:.1} ms p99 {:.1} ms; in the reader's apply (before commit) p50 \
         {:.1} ms p99 {:.1} ms",
        total as f64 / produce_secs,
        latencies.len(),
        ms(acks.value_at_quantile(0.5)),
        ms(acks.value_at_quantile(0.99)),
        ms(delivered.value_at_quantile(0.5)),
        ms(delivered.value_at_quantile(0.99)),
    );
    // p99 per 5 s of producing, to tell a steady tail from a trend or a stall.
    let mut samples = samples
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    samples.sort_unstable();
    if let Some(&(first, _)) = samples.first() {
        let mut windows = Vec::new();
        for chunk in
            samples.chunk_by(|a, b| (a.0 - first) / 5_000_000_000 == (b.0 - first) / 5_000_000_000)
        {
            let mut window = histogram();
            for &(_, micros) in chunk {
                let _ = window.record(micros.max(1));
            }
            windows.push(format!("{:.0}", ms(window.value_at_quantile(0.99))));
        }
        eprintln!("kafka: p99 per 5 s window (ms): {}", windows.join(" "));
    }
    Ok(KafkaRun {
        p50_ms: ms(latencies.value_at_quantile(0.50)),
        p99_ms: ms(latencies.value_at_quantile(0.99)),
        max_ms: ms(latencies.max()),
        produced: total,
    })
}

// --- SQL feed throughput ---------------------------------------------------------------------

async fn fill_store(store: Arc<dyn EventStore>, events: u64) -> anyhow::Result<()> {
    let per_dossier = 10_u64;
    let dossiers = events.div_ceil(per_dossier);
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    // Many concurrent appenders: the SQLite store commits them in groups.
    for _ in 0..256 {
        let store = store.clone();
        let next = next.clone();
        writers.push(tokio::spawn(async move {
            loop {
                let dossier = next.fetch_add(1, Ordering::Relaxed);
                if dossier >= dossiers {
                    return Ok::<_, anyhow::Error>(());
                }
                let dossier_id = format!("HS-{dossier:07}");
                let now = chrono::Utc::now();
                let events = (1..=per_dossier)
                    .map(|seq| NewEvent {
                        event_id: uuid::Uuid::now_v7().to_string(),
                        seq,
                        event_type: if seq == 1 { "received" } else { "resolved" }.to_owned(),
                        recorded_at: now,
                        payload: event(dossier_id.clone(), seq, now_nanos(), false).encode_to_vec(),
                    })
                    .collect();
                store
                    .append(AppendRequest {
                        dossier_id: dossier_id.clone(),
                        expected_version: 0,
                        request_id: format!("fill-{dossier_id}"),
                        fingerprint: dossier_id.clone().into_bytes(),
                        events,
                        row: DossierRow {
                            dossier_id: dossier_id.clone(),
                            version: per_dossier,
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
                    .await?;
            }
        }));
    }
    for writer in writers {
        writer.await??;
    }
    eprintln!(
        "sql: stored {} events in {:.1} s",
        dossiers * per_dossier,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Events per second a reader catches up at, from an empty position to the store's head.
async fn sql_run(
    store: Arc<dyn EventStore>,
    dir: &std::path::Path,
    writes: bool,
) -> anyhow::Result<f64> {
    let head = store.head_position().await?;
    let path = dir.join(format!("reader-{}.db", uuid::Uuid::new_v4().simple()));
    let db = ReaderDb::connect(&format!("sqlite://{}", path.display())).await?;
    BenchReader::migrate(&db).await?;
    let runner = ReaderRunner::new(
        SqlTableFeed::new(store),
        BenchReader::new("bench", writes),
        db.clone(),
    )
    .options(RunnerOptions::default());
    let mut status = runner.status();
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let task = tokio::spawn(runner.run(shutdown.clone()));
    let head = i64::try_from(head)?;
    wait_status(&mut status, Duration::from_secs(600), |status| {
        status
            .partitions
            .get(&0)
            .is_some_and(|p| p.position == Some(head))
    })
    .await?;
    let elapsed = started.elapsed().as_secs_f64();
    shutdown.cancel();
    task.await??;
    db.close().await;
    Ok(head as f64 / elapsed)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    if args.which == "kafka" || args.which == "all" {
        let brokers = std::env::var("KAFKA_BROKERS")
            .context("KAFKA_BROKERS is not set: run through scripts/test-env.sh")?;
        let mut p50 = Vec::new();
        let mut p99 = Vec::new();
        for run in 1..=args.runs {
            let result = kafka_run(&args, &brokers).await?;
            println!(
                "kafka run {run}: {} events at {}/s, produce→applied p50 {:.1} ms, p99 {:.1} ms, \
                 max {:.1} ms (fetch.wait.max.ms {})",
                result.produced,
                args.rate,
                result.p50_ms,
                result.p99_ms,
                result.max_ms,
                args.fetch_wait_ms
            );
            p50.push(result.p50_ms);
            p99.push(result.p99_ms);
        }
        println!(
            "kafka median of {} runs: p50 {:.1} ms, p99 {:.1} ms",
            args.runs,
            median(p50),
            median(p99)
        );
    }
    if args.which == "sql" || args.which == "all" {
        let dir = tempfile::tempdir()?;
        let store: Arc<dyn EventStore> =
            Arc::new(SqliteStore::open(&dir.path().join("events.sqlite3")).await?);
        fill_store(store.clone(), args.events).await?;
        for (label, writes) in [("no-op reader", false), ("counting reader", true)] {
            let mut rates = Vec::new();
            for run in 1..=args.runs {
                let rate = sql_run(store.clone(), dir.path(), writes).await?;
                println!("sql {label} run {run}: {rate:.0} events/s");
                rates.push(rate);
            }
            println!(
                "sql {label} median of {} runs: {:.0} events/s",
                args.runs,
                median(rates)
            );
        }
    }
    Ok(())
}
