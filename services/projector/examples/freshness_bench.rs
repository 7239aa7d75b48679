//! Freshness of the rates read model (issue 4: at 1,000 events per second, a figure reflects
//! an event within 1 s at p99).
//!
//! A fresh PostgreSQL database holds the event store and the read model, as in the distributed
//! mode. Generated, legal dossier histories are appended through the store's own append path at
//! a steady rate (each dossier's events in order); the rates projector follows them either
//! through Kafka (the relay publishes, the projector's consumer group reads: `--feed kafka`,
//! the distributed mode) or the event table (`--feed sql`, the embedded mode's feed, with the
//! 25 ms poll `motcua serve` uses). Freshness of an event = the instant the projector's
//! transaction containing it committed − the instant its append was acknowledged, both on this
//! process's monotonic clock: from then on every report query sees it. The first seconds
//! (consumer group join, first connections) are measured apart from the steady state.
//!
//! ```sh
//! scripts/test-env.sh -- cargo run --release -p motcua-projector --example freshness_bench -- \
//!     --feed kafka --rate 1000 --seconds 30
//! ```

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::Utc;
use hdrhistogram::Histogram;
use motcua_domain::time::from_timestamp;
use motcua_feed::{
    FeedEvent, KafkaFeed, KafkaFeedConfig, Reader, ReaderDb, ReaderError, ReaderRunner, ReaderTx,
    RunnerOptions, SqlTableFeed,
};
use motcua_projector::generate::{GenerateOptions, Generator, in_time_order};
use motcua_projector::{RatesProjector, generations};
use motcua_relay::topics::{self, TopicSpec};
use motcua_relay::{Relay, RelayConfig};
use motcua_store::postgres::PostgresStore;
use motcua_store::{AppendRequest, DossierRow, EventStore, NewEvent};
use prost::Message;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Executor};
use tokio_util::sync::CancellationToken;

/// The allocator of the `motcua` binary, so that the benchmark measures what runs.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

struct Args {
    kafka: bool,
    rate: u64,
    seconds: u64,
    warmup_seconds: u64,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        kafka: true,
        rate: 1_000,
        seconds: 30,
        warmup_seconds: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--feed" => {
                args.kafka = match value.as_str() {
                    "kafka" => true,
                    "sql" => false,
                    other => bail!("--feed {other}: kafka or sql"),
                }
            }
            "--rate" => args.rate = value.parse()?,
            "--seconds" => args.seconds = value.parse()?,
            "--warmup" => args.warmup_seconds = value.parse()?,
            other => bail!("unknown flag {other} (--feed kafka|sql --rate N --seconds N)"),
        }
    }
    Ok(args)
}

/// When each `(dossier, seq)` was acknowledged by the store, and when the projector's
/// transaction holding it committed.
#[derive(Default)]
struct Clock {
    acked: HashMap<(String, u64), Instant>,
    committed: HashMap<(String, u64), Instant>,
}

/// The rates projector, with the commit instant of every event noted after its commit.
struct Timed {
    inner: RatesProjector,
    clock: Arc<Mutex<Clock>>,
}

#[async_trait::async_trait]
impl Reader for Timed {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn apply(&self, tx: &mut ReaderTx, events: &[FeedEvent]) -> Result<(), ReaderError> {
        self.inner.apply(tx, events).await
    }

    fn after_commit(&self, events: &[FeedEvent]) {
        let now = Instant::now();
        self.inner.after_commit(events);
        let mut clock = self.clock.lock().expect("not poisoned");
        for event in events {
            clock
                .committed
                .entry((event.dossier_id.clone(), event.seq))
                .or_insert(now);
        }
    }
}

fn append_request(event: &motcua_proto::v1::DossierEvent) -> Result<AppendRequest> {
    let now = Utc::now();
    let payload = event.payload.as_ref().context("a payload")?;
    Ok(AppendRequest {
        dossier_id: event.dossier_id.clone(),
        expected_version: event.seq - 1,
        request_id: event.event_id.clone(),
        fingerprint: vec![0; 32],
        events: vec![NewEvent {
            event_id: event.event_id.clone(),
            seq: event.seq,
            event_type: motcua_domain::lifecycle::event_type_name(payload).into(),
            recorded_at: event
                .recorded_at
                .as_ref()
                .and_then(from_timestamp)
                .context("a recording time")?,
            payload: event.encode_to_vec(),
        }],
        // The intake's list index; the projector does not read it.
        row: DossierRow {
            dossier_id: event.dossier_id.clone(),
            version: event.seq,
            status: 4,
            channel: 1,
            procedure_code: "2.000908".into(),
            receiving_unit: "000.00.01.H22".into(),
            competent_authority: "000.00.01.H22".into(),
            due_at: None,
            open: false,
            updated_at: now,
        },
        personal_data: None,
        claimed_number: None,
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let url = std::env::var("DATABASE_URL").context("DATABASE_URL (run under test-env.sh)")?;
    let admin = PgConnectOptions::from_str(&url)?;
    let mut conn = admin.connect().await?;
    let database = format!("motcua_freshness_{}", uuid::Uuid::new_v4().simple());
    conn.execute(format!("CREATE DATABASE {database}").as_str())
        .await?;
    let options = admin.clone().database(&database);
    let db_url = options.to_url_lossy().to_string();
    let store = Arc::new(PostgresStore::connect_with(options.clone()).await?);

    // Enough dossiers that appends spread like a province's: ~6 events each.
    let total = (args.rate * args.seconds) as usize;
    let mut generator = Generator::new(GenerateOptions {
        seed: 11,
        dossiers: total / 5 + 10,
        days: 365,
        receiving_units: 40,
        authorities: 25,
        ..GenerateOptions::default()
    });
    let histories = generator.histories();
    let events: Vec<AppendRequest> = in_time_order(&histories)
        .into_iter()
        .take(total)
        .map(append_request)
        .collect::<Result<_>>()?;
    let total = events.len();
    let warmup = (args.rate * args.warmup_seconds) as usize;

    let reader_db = ReaderDb::connect(&db_url).await?;
    let tables = generations::ensure_active(&reader_db).await?;
    let clock: Arc<Mutex<Clock>> = Arc::default();
    let projector = Timed {
        inner: RatesProjector::new(tables, Arc::new(generator.calendar().clone())),
        clock: clock.clone(),
    };
    let runner_options = RunnerOptions {
        max_batch: 2_000,
        dedupe: false,
        ..RunnerOptions::default()
    };
    let stop = CancellationToken::new();
    let (stop_relay, relay_stopped) = tokio::sync::oneshot::channel::<()>();
    let mut relay = None;
    let runner = if let Some(brokers) = std::env::var("KAFKA_BROKERS").ok().filter(|_| args.kafka) {
        let run = uuid::Uuid::new_v4().simple().to_string();
        let topic = format!("freshness-{run}");
        let dead = format!("freshness-dlq-{run}");
        topics::provision(
            &brokers,
            &[TopicSpec::new(&topic, 12, 1), TopicSpec::new(&dead, 1, 1)],
        )
        .await?;
        relay = Some(tokio::spawn(
            Relay::new(
                store.clone(),
                store.clone(),
                RelayConfig::new(&brokers).with_topic(&topic),
            )
            .run(async move {
                let _ = relay_stopped.await;
            }),
        ));
        let mut config = KafkaFeedConfig::new(brokers);
        config.topic = topic;
        config.dead_letter_topic = dead;
        let runner = ReaderRunner::new(KafkaFeed::new(config), projector, reader_db.clone())
            .options(runner_options);
        tokio::spawn(runner.run(stop.clone()))
    } else {
        if args.kafka {
            bail!("--feed kafka needs KAFKA_BROKERS");
        }
        let feed = SqlTableFeed::new(store.clone() as Arc<dyn EventStore>)
            .poll_interval(Duration::from_millis(25));
        let runner = ReaderRunner::new(feed, projector, reader_db.clone()).options(runner_options);
        tokio::spawn(runner.run(stop.clone()))
    };

    eprintln!(
        "appending {total} events at {}/s through the {} feed…",
        args.rate,
        if args.kafka { "Kafka" } else { "SQL table" }
    );
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / args.rate.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut pending = tokio::task::JoinSet::new();
    for request in events {
        tick.tick().await;
        let store = store.clone();
        let clock = clock.clone();
        pending.spawn(async move {
            // A dossier's previous event may still be in flight: retry until it is in.
            loop {
                match store.append(request.clone()).await {
                    Ok(_) => {
                        let now = Instant::now();
                        let key = (request.dossier_id.clone(), request.events[0].seq);
                        clock.lock().expect("not poisoned").acked.insert(key, now);
                        return;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                }
            }
        });
    }
    while pending.join_next().await.is_some() {}
    let appended = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    while clock.lock().expect("not poisoned").committed.len() < total {
        if Instant::now() > deadline || runner.is_finished() {
            bail!("the projector did not catch up");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    runner.await??;
    let _ = stop_relay.send(());
    if let Some(relay) = relay {
        relay.await??;
    }

    // Warm-up: the events acknowledged first, in acknowledgement order.
    let clock = std::mem::take(&mut *clock.lock().expect("not poisoned"));
    let mut acked: Vec<(&(String, u64), &Instant)> = clock.acked.iter().collect();
    acked.sort_by_key(|(_, at)| **at);
    let mut steady = Histogram::<u64>::new(3)?;
    let mut first = Histogram::<u64>::new(3)?;
    for (i, (key, ack)) in acked.iter().enumerate() {
        let committed = clock.committed[*key];
        let micros = committed.saturating_duration_since(**ack).as_micros();
        let histogram = if i < warmup { &mut first } else { &mut steady };
        histogram.record(u64::try_from(micros).unwrap_or(u64::MAX).max(1))?;
    }
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{} feed, {} events at {:.0}/s achieved; after a {warmup}-event warm-up: append \
         acknowledged -> in the read model: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} \
         ms (warm-up p99 {:.1} ms, max {:.1} ms)",
        if args.kafka { "kafka" } else { "sql" },
        total,
        total as f64 / appended.as_secs_f64(),
        ms(&steady, 0.5),
        ms(&steady, 0.9),
        ms(&steady, 0.99),
        steady.max() as f64 / 1000.0,
        ms(&first, 0.99),
        first.max() as f64 / 1000.0,
    );
    reader_db.close().await;
    drop(store);
    conn.execute(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)").as_str())
        .await?;
    Ok(())
}
