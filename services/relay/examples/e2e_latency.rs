//! End-to-end latency of the distributed write path: from an append acknowledged by the
//! PostgreSQL store to the event readable by a Kafka consumer, at a steady append rate
//! (issue 3's target: at 1,000 appends per second, p99 within 100 ms).
//!
//! ```text
//! scripts/test-env.sh -- cargo run --release -p motcua-relay --example e2e_latency -- \
//!     [rate=1000] [seconds=30] [partitions=12]
//! ```
//!
//! A fresh database and topic; the store's own append path (one event per append, each on its
//! own dossier-seq), the relay as `motcua serve` runs it, and a consumer configured like the
//! Kafka feed (`fetch.wait.max.ms=10`). Latency = consumer receipt − append acknowledgement,
//! both read from this process's monotonic clock.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::Utc;
use hdrhistogram::Histogram;
use motcua_relay::topics::{self, TopicSpec};
use motcua_relay::{Relay, RelayConfig};
use motcua_store::postgres::PostgresStore;
use motcua_store::{AppendRequest, DossierRow, EventStore, NewEvent};
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Executor};

/// The allocator of the `motcua` binary, so that the benchmark measures what runs.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn append(dossier: &str, seq: u64) -> AppendRequest {
    let now = Utc::now();
    AppendRequest {
        dossier_id: dossier.to_owned(),
        expected_version: seq - 1,
        request_id: format!("{dossier}-{seq}"),
        fingerprint: vec![0; 32],
        events: vec![NewEvent {
            event_id: uuid::Uuid::now_v7().to_string(),
            seq,
            event_type: "digitized".into(),
            recorded_at: now,
            payload: vec![0x0a; 300],
        }],
        row: DossierRow {
            dossier_id: dossier.to_owned(),
            version: seq,
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
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let rate: u64 = args.next().map_or(Ok(1000), |a| a.parse())?;
    let seconds: u64 = args.next().map_or(Ok(30), |a| a.parse())?;
    let partitions: i32 = args.next().map_or(Ok(12), |a| a.parse())?;
    let url = std::env::var("DATABASE_URL").context("DATABASE_URL (run under test-env.sh)")?;
    let brokers = std::env::var("KAFKA_BROKERS").context("KAFKA_BROKERS")?;

    let admin_options = PgConnectOptions::from_str(&url)?;
    let mut admin = admin_options.connect().await?;
    let database = format!("motcua_latency_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute(format!("CREATE DATABASE {database}").as_str())
        .await?;
    let store =
        Arc::new(PostgresStore::connect_with(admin_options.clone().database(&database)).await?);
    let topic = format!("latency-{}", uuid::Uuid::new_v4().simple());
    topics::provision(&brokers, &[TopicSpec::new(&topic, partitions, 1)]).await?;

    let (stop_relay, relay_stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = Relay::new(
        store.clone(),
        store.clone(),
        RelayConfig::new(&brokers).with_topic(&topic),
    );
    let relay = tokio::spawn(relay.run(async move {
        let _ = relay_stopped.await;
    }));

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set(
            "group.id",
            format!("latency-{}", uuid::Uuid::new_v4().simple()),
        )
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    consumer.subscribe(&[&topic])?;

    // Append acknowledgement time by global position.
    let acked: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let total = rate * seconds;
    // The first seconds include the consumer joining its group and the producer's first
    // connection: measured separately from the steady state the target is about.
    let warmup = rate * 3;
    let appender = {
        let store = store.clone();
        let acked = acked.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut pending = tokio::task::JoinSet::new();
            for n in 0..total {
                tick.tick().await;
                let store = store.clone();
                let acked = acked.clone();
                // 100 dossiers written round-robin, one event each time.
                let dossier = format!("000.00.01.H22-261122-{:04}", n % 100 + 1);
                let measured = n >= warmup;
                let seq = n / 100 + 1;
                pending.spawn(async move {
                    // Appends to one dossier must be in order: wait for the previous one.
                    loop {
                        match store.append(append(&dossier, seq)).await {
                            Ok(outcome) => {
                                if !measured {
                                    return;
                                }
                                let now = Instant::now();
                                let mut acked = acked.lock().expect("not poisoned");
                                for event in outcome.events() {
                                    acked.insert(event.position, now);
                                }
                                return;
                            }
                            Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                        }
                    }
                });
            }
            while pending.join_next().await.is_some() {}
        })
    };

    let mut histogram = Histogram::<u64>::new(3)?;
    let mut received = 0;
    let deadline = Instant::now() + Duration::from_secs(seconds + 60);
    while received < total - warmup && Instant::now() < deadline {
        let Ok(Ok(message)) = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await
        else {
            continue;
        };
        let now = Instant::now();
        let position = message.headers().and_then(|headers| {
            headers
                .iter()
                .find(|h| h.key == "motcua-position")
                .and_then(|h| h.value)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.parse::<u64>().ok())
        });
        let Some(position) = position else { continue };
        // The acknowledgement may be recorded a hair after the relay saw the commit.
        let ack = acked.lock().expect("not poisoned").get(&position).copied();
        if let Some(ack) = ack {
            let micros = now.saturating_duration_since(ack).as_micros();
            histogram.record(u64::try_from(micros).unwrap_or(u64::MAX).max(1))?;
            received += 1;
        }
    }
    appender.await?;
    let _ = stop_relay.send(());
    relay.await??;
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{received} of {} events after a {}-event warm-up, at {rate}/s: append acknowledged -> \
         readable from Kafka: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        total - warmup,
        warmup,
        ms(0.5),
        ms(0.9),
        ms(0.99),
        histogram.max() as f64 / 1000.0
    );
    drop(store);
    admin
        .execute(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)").as_str())
        .await?;
    Ok(())
}
