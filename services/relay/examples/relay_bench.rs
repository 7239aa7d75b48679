//! Relay throughput, PostgreSQL → broker: events per second from a filled event table to
//! acknowledged on the topic, with the checkpoint saved.
//!
//! ```text
//! scripts/test-env.sh -- cargo run --release -p motcua-relay --example relay_bench -- \
//!     [--events 200000] [--runs 3] [--batch-size 5000] [--max-in-flight 50000] \
//!     [--partitions 12] [--set linger.ms=5 --set compression.type=none …]
//! ```
//!
//! It needs `DATABASE_URL` (a user that may create databases) and `KAFKA_BROKERS`, which
//! `scripts/test-env.sh` provides. Steps:
//!
//! 1. A fresh database, migrated by the store, filled with N events straight through SQL
//!    (`INSERT … SELECT FROM UNNEST(…)`, 10,000 rows per statement): the store has no bulk
//!    append, and appending 200,000 events through it measures the append path, not the relay.
//!    Only the `events` table is written, which is all the relay reads. Each event is a real
//!    encoded `DossierEvent` (a `Received` for seq 1, `Forwarded` after; ~300 bytes), for N/20
//!    dossiers of 20 events each, interleaved as a live load would be.
//! 2. The read bound: `events_after` over the whole table in batches, without publishing.
//! 3. The produce bound: the same records produced from memory with the relay's producer
//!    settings and awaited, without the store.
//! 4. `--runs` times: a fresh topic and checkpoint name, a relay started, timed until its
//!    durable checkpoint reaches N. The median is printed last.

use std::collections::VecDeque;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use motcua_proto::v1::{
    Actor, DossierEvent, DossierUnits, Forwarded, ProcedureRef, ProcessingTime, Received,
    RuleVersions, dossier_event::Payload,
};
use motcua_relay::topics::{self, TopicSpec};
use motcua_relay::{Relay, RelayConfig, record};
use motcua_store::postgres::PostgresStore;
use motcua_store::{EventStore, StoredEvent};
use prost::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Executor};

/// The allocator of the `motcua` binary, so that the benchmark measures what runs.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug)]
struct Args {
    events: u64,
    runs: usize,
    batch_size: u32,
    max_in_flight: usize,
    partitions: i32,
    overrides: Vec<(String, String)>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        events: 200_000,
        runs: 3,
        batch_size: RelayConfig::new("").batch_size,
        max_in_flight: RelayConfig::new("").max_in_flight,
        partitions: 12,
        overrides: Vec::new(),
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let value = given
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--events" => args.events = value.parse()?,
            "--runs" => args.runs = value.parse()?,
            "--batch-size" => args.batch_size = value.parse()?,
            "--max-in-flight" => args.max_in_flight = value.parse()?,
            "--partitions" => args.partitions = value.parse()?,
            "--set" => {
                let (key, value) = value.split_once('=').context("--set takes key=value")?;
                args.overrides.push((key.to_owned(), value.to_owned()));
            }
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

fn timestamp(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: 1_740_988_800 + seconds,
        nanos: 0,
    }
}

/// A realistic encoded event: what the intake would store for this dossier and seq.
fn encoded_event(event_id: &str, dossier_id: &str, seq: u64, request_id: &str) -> Vec<u8> {
    let at = i64::try_from(seq).unwrap_or(0) * 3_600;
    let payload = if seq == 1 {
        Payload::Received(Received {
            channel: 1,
            procedure: Some(ProcedureRef {
                code: "1.000948.H38".to_owned(),
                name: "Đăng ký khai sinh có yếu tố nước ngoài".to_owned(),
                sector: "HOTICH".to_owned(),
                processing_time: Some(ProcessingTime {
                    unit: 1,
                    amount_hundredths: 1_500,
                }),
                supplement_rule: 1,
                fee_bearing: true,
                ..ProcedureRef::default()
            }),
            units: Some(DossierUnits {
                receiving_unit: "000.00.01.H38".to_owned(),
                competent_authority: "000.00.12.H38".to_owned(),
            }),
            applicant_type: 1,
            component_count: 4,
            accepted_at: Some(timestamp(at)),
            due_at: Some(timestamp(at + 15 * 86_400)),
            due_provisional: false,
        })
    } else {
        Payload::Forwarded(Forwarded {
            department: "Phòng Tư pháp".to_owned(),
            note: "Thẩm định hồ sơ, trình ký".to_owned(),
            step_time: Some(ProcessingTime {
                unit: 1,
                amount_hundredths: 300,
            }),
            step_started_at: Some(timestamp(at)),
            step_due_at: Some(timestamp(at + 3 * 86_400)),
        })
    };
    DossierEvent {
        traceparent: String::new(),
        event_id: event_id.to_owned(),
        dossier_id: dossier_id.to_owned(),
        seq,
        recorded_at: Some(timestamp(at)),
        stated_at: None,
        actor: Some(Actor {
            officer_id: "can-bo-0042".to_owned(),
            unit_id: "000.00.01.H38".to_owned(),
            kind: "officer".to_owned(),
        }),
        request_id: request_id.to_owned(),
        rules: Some(RuleVersions {
            working_time_profile: "vn-office-hours-v1".to_owned(),
            holiday_table: "vn-2025-r2".to_owned(),
            procedure_catalogue: "h38-2025-03".to_owned(),
        }),
        payload: Some(payload),
    }
    .encode_to_vec()
}

/// One statement's worth of event rows, column by column, for `UNNEST`.
#[derive(Debug, Default)]
struct Rows {
    positions: Vec<i64>,
    event_ids: Vec<String>,
    dossier_ids: Vec<String>,
    seqs: Vec<i64>,
    event_types: Vec<String>,
    request_ids: Vec<String>,
    payloads: Vec<Vec<u8>>,
}

/// Fills the event table with `n` events, 10,000 per statement.
async fn fill(options: &PgConnectOptions, n: u64) -> Result<usize> {
    const CHUNK: u64 = 10_000;
    let dossiers = (n / 20).max(1);
    let mut conn = options.connect().await?;
    let mut bytes = 0;
    let mut start = 1;
    while start <= n {
        let end = (start + CHUNK - 1).min(n);
        let mut rows = Rows::default();
        for position in start..=end {
            let dossier = format!("000.00.01.H38-250303-{:05}", (position - 1) % dossiers);
            let seq = (position - 1) / dossiers + 1;
            let event_id = uuid::Uuid::now_v7().to_string();
            let request_id = format!("bench-{dossier}-{seq}");
            let payload = encoded_event(&event_id, &dossier, seq, &request_id);
            bytes += payload.len();
            rows.positions.push(i64::try_from(position)?);
            rows.event_ids.push(event_id);
            rows.dossier_ids.push(dossier);
            rows.seqs.push(i64::try_from(seq)?);
            rows.event_types
                .push(if seq == 1 { "received" } else { "forwarded" }.to_owned());
            rows.request_ids.push(request_id);
            rows.payloads.push(payload);
        }
        sqlx::query(
            "INSERT INTO events (position, event_id, dossier_id, seq, event_type, recorded_at, \
             request_id, payload) \
             SELECT p, e, d, s, t, now(), r, b \
             FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], \
                         $6::text[], $7::bytea[]) AS u(p, e, d, s, t, r, b)",
        )
        .bind(rows.positions)
        .bind(rows.event_ids)
        .bind(rows.dossier_ids)
        .bind(rows.seqs)
        .bind(rows.event_types)
        .bind(rows.request_ids)
        .bind(rows.payloads)
        .execute(&mut conn)
        .await?;
        start = end + 1;
    }
    conn.execute("ANALYZE events").await?;
    Ok(bytes)
}

/// CPU time this process has used so far (user + system), from `/proc/self/stat` (Linux):
/// how much of the machine the relay itself takes per event.
fn cpu_time() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // Fields after the command name (which is in parentheses): utime is the 12th,
            // stime the 13th of them.
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    // USER_HZ is 100 on every Linux this runs on.
    Duration::from_millis(ticks * 10)
}

fn rate(events: u64, elapsed: Duration) -> f64 {
    events as f64 / elapsed.as_secs_f64()
}

/// Reads every event in batches, as the relay does, without publishing.
async fn read_all(store: &PostgresStore, batch: u32) -> Result<(Vec<StoredEvent>, Duration)> {
    let started = Instant::now();
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let events = store.events_after(after, batch).await?;
        let Some(last) = events.last() else { break };
        after = last.position;
        all.extend(events);
    }
    Ok((all, started.elapsed()))
}

/// Produces the events from memory with the relay's producer settings, awaiting every
/// delivery, at most `max_in_flight` outstanding.
async fn produce_all(
    config: &RelayConfig,
    events: &[StoredEvent],
    max_in_flight: usize,
) -> Result<Duration> {
    let producer: FutureProducer = config
        .producer_config()
        .map_err(anyhow::Error::msg)?
        .create()?;
    let started = Instant::now();
    let mut pending = VecDeque::new();
    for event in events {
        let record = FutureRecord::to(&config.topic)
            .key(event.dossier_id.as_str())
            .payload(event.payload.as_slice())
            .headers(record::headers(event));
        let delivery = producer
            .send_result(record)
            .map_err(|(error, _)| error)
            .context("enqueue")?;
        pending.push_back(delivery);
        if pending.len() >= max_in_flight
            && let Some(front) = pending.pop_front()
        {
            front.await?.map_err(|(error, _)| error)?;
        }
    }
    for delivery in pending {
        delivery.await?.map_err(|(error, _)| error)?;
    }
    Ok(started.elapsed())
}

async fn create_topic(brokers: &str, topic: &str, partitions: i32) -> Result<()> {
    topics::provision(
        brokers,
        &[TopicSpec::new(topic, partitions, 1).set("retention.ms", "-1")],
    )
    .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = parse_args()?;
    let url = std::env::var("DATABASE_URL").context("DATABASE_URL (run under test-env.sh)")?;
    let brokers = std::env::var("KAFKA_BROKERS").context("KAFKA_BROKERS")?;
    println!("relay bench: {args:?}");

    let admin_options = PgConnectOptions::from_str(&url)?;
    let mut admin = admin_options.connect().await?;
    let database = format!("motcua_bench_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute(format!("CREATE DATABASE {database}").as_str())
        .await?;
    let options = admin_options.clone().database(&database);
    let store = Arc::new(PostgresStore::connect_with(options.clone()).await?);

    let started = Instant::now();
    let bytes = fill(&options, args.events).await?;
    let filled = started.elapsed();
    println!(
        "filled {} events ({} bytes of payload, {:.0} B/event) in {filled:.2?}",
        args.events,
        bytes,
        bytes as f64 / args.events as f64
    );

    let (events, read) = read_all(&store, args.batch_size).await?;
    println!(
        "read bound (events_after, batch {}): {:.0} events/s ({read:.2?})",
        args.batch_size,
        rate(args.events, read)
    );

    let mut config = RelayConfig::new(&brokers);
    config.batch_size = args.batch_size;
    config.max_in_flight = args.max_in_flight;
    config.producer_overrides = args.overrides.clone();

    let topic = format!("bench.produce.{}", uuid::Uuid::new_v4().simple());
    create_topic(&brokers, &topic, args.partitions).await?;
    let produce_config = config.clone().with_topic(&topic);
    let cpu = cpu_time();
    let produced = produce_all(&produce_config, &events, args.max_in_flight).await?;
    let cpu = cpu_time() - cpu;
    println!(
        "produce bound (from memory, acknowledged): {:.0} events/s ({produced:.2?}, \
         {:.1} µs CPU/event in this process)",
        rate(args.events, produced),
        cpu.as_secs_f64() * 1e6 / args.events as f64
    );
    drop(events);

    let mut rates = Vec::new();
    for run in 1..=args.runs {
        let topic = format!("bench.relay.{}", uuid::Uuid::new_v4().simple());
        create_topic(&brokers, &topic, args.partitions).await?;
        let run_config = config.clone().with_topic(&topic);
        let relay = Relay::new(store.clone(), store.clone(), run_config);
        let mut status = relay.status();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let cpu = cpu_time();
        let started = Instant::now();
        let task = tokio::spawn(relay.run(async {
            let _ = stopped.await;
        }));
        let target = args.events;
        tokio::time::timeout(
            Duration::from_secs(600),
            status.wait_for(|s| s.checkpoint >= target),
        )
        .await
        .context("the relay did not finish in 10 minutes")??;
        let elapsed = started.elapsed();
        let cpu = cpu_time() - cpu;
        let _ = stop.send(());
        task.await??;
        let final_status = status.borrow().clone();
        let events_per_second = rate(args.events, elapsed);
        println!(
            "run {run}: {} events relayed in {elapsed:.2?}: {events_per_second:.0} events/s \
             ({:.1} µs CPU/event in the relay; failures {}, restarts {})",
            args.events,
            cpu.as_secs_f64() * 1e6 / args.events as f64,
            final_status.delivery_failures,
            final_status.producer_restarts
        );
        rates.push(events_per_second);
    }
    rates.sort_by(f64::total_cmp);
    if let Some(median) = rates.get(rates.len() / 2) {
        println!(
            "median of {} runs: {median:.0} events/s (runs: {})",
            rates.len(),
            rates
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    store.close().await;
    admin
        .execute(format!("DROP DATABASE {database} WITH (FORCE)").as_str())
        .await?;
    Ok(())
}
