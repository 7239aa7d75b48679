//! Replay benchmark of the rates projector on PostgreSQL (issue 4: at least 100,000 events/s,
//! a province-year in under 2 minutes, cost per event independent of the dossiers already
//! projected).
//!
//! For each run: a fresh database; the event table filled directly (10,000 rows per
//! statement) with generated, legal histories in recording order; then a projector replays
//! the whole table from position 0 into a fresh read model, exactly as
//! `motcua projector rebuild` does, and the elapsed time until its committed position reaches
//! the last event is measured. Throughput is also reported per tenth of the replay, to show
//! whether applying an event slows down as the read model grows.
//!
//! ```sh
//! KAFKA_BROKERS=skip scripts/test-env.sh -- \
//!   cargo run --release -p motcua-projector --example replay_bench -- --dossiers 100000 --runs 3
//! ```

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use motcua_domain::time::from_timestamp;
use motcua_feed::{ReaderDb, ReaderRunner, RunnerOptions, SqlTableFeed};
use motcua_projector::generate::{GenerateOptions, Generator, in_time_order};
use motcua_projector::replay::{ReplayOptions, replay};
use motcua_projector::{Period, RatesProjector, ReadModel, ReportQuery, ScopeKind, generations};
use motcua_store::EventStore;
use motcua_store::postgres::PostgresStore;
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Executor};
use tokio_util::sync::CancellationToken;

/// The allocator of the `motcua` binary, so that the benchmark measures what runs.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

struct Args {
    dossiers: usize,
    runs: usize,
    batch: usize,
    /// Report queries timed after each replay, on the replayed year.
    queries: usize,
    /// `bulk` (the rebuild's replay) or `feed` (the live projector's batches).
    bulk: bool,
    /// The days the dossiers are spread over: with `--dossiers`, the density (a merged
    /// province receives about 5,500 dossiers a day).
    days: u32,
    /// The rebuild's `--flush-events` and its limit of dossiers held (defaults: the rebuild's).
    flush_events: u64,
    max_dossiers: usize,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        dossiers: 50_000,
        runs: 3,
        batch: 5_000,
        queries: 1_000,
        days: 365,
        bulk: true,
        flush_events: ReplayOptions::default().flush_events,
        max_dossiers: ReplayOptions::default().max_dossiers,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--dossiers" => args.dossiers = value.parse()?,
            "--runs" => args.runs = value.parse()?,
            "--batch" => args.batch = value.parse()?,
            "--queries" => args.queries = value.parse()?,
            "--days" => args.days = value.parse()?,
            "--mode" => args.bulk = value == "bulk",
            "--flush-events" => args.flush_events = value.parse()?,
            "--max-dossiers" => args.max_dossiers = value.parse()?,
            other => bail!(
                "unknown flag {other} (--dossiers N --runs N --batch N --queries N --days N \
                 --mode bulk|feed --flush-events N --max-dossiers N)"
            ),
        }
    }
    Ok(args)
}

/// Fills the event table with every event of the generated histories, in recording order.
async fn fill(options: &PgConnectOptions, dossiers: usize, days: u32) -> Result<u64> {
    let mut generator = Generator::new(GenerateOptions {
        seed: 2026,
        dossiers,
        days,
        receiving_units: 40,
        authorities: 25,
        ..GenerateOptions::default()
    });
    let histories = generator.histories();
    let events = in_time_order(&histories);
    let mut conn = options.connect().await?;
    let mut position: i64 = 0;
    for chunk in events.chunks(10_000) {
        let mut positions = Vec::with_capacity(chunk.len());
        let mut event_ids = Vec::with_capacity(chunk.len());
        let mut dossier_ids = Vec::with_capacity(chunk.len());
        let mut seqs = Vec::with_capacity(chunk.len());
        let mut types = Vec::with_capacity(chunk.len());
        let mut times = Vec::with_capacity(chunk.len());
        let mut request_ids = Vec::with_capacity(chunk.len());
        let mut payloads = Vec::with_capacity(chunk.len());
        for event in chunk {
            position += 1;
            positions.push(position);
            event_ids.push(event.event_id.clone());
            dossier_ids.push(event.dossier_id.clone());
            seqs.push(i64::try_from(event.seq)?);
            types.push(
                motcua_domain::lifecycle::event_type_name(
                    event.payload.as_ref().context("a payload")?,
                )
                .to_owned(),
            );
            times.push(
                event
                    .recorded_at
                    .as_ref()
                    .and_then(from_timestamp)
                    .context("a recording time")?,
            );
            request_ids.push(event.request_id.clone());
            payloads.push(event.encode_to_vec());
        }
        sqlx::query(
            "INSERT INTO events (position, event_id, dossier_id, seq, event_type, recorded_at, \
             request_id, payload) \
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[], \
                                  $5::text[], $6::timestamptz[], $7::text[], $8::bytea[])",
        )
        .bind(positions)
        .bind(event_ids)
        .bind(dossier_ids)
        .bind(seqs)
        .bind(types)
        .bind(times)
        .bind(request_ids)
        .bind(payloads)
        .execute(&mut conn)
        .await?;
    }
    conn.execute("ANALYZE events").await?;
    Ok(u64::try_from(position)?)
}

async fn run_once(admin: &PgConnectOptions, args: &Args, run: usize) -> Result<f64> {
    let name = format!("motcua_replay_bench_{run}_{}", std::process::id());
    let mut conn = admin.connect().await?;
    conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await?;
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await?;
    let options = admin.clone().database(&name);
    let url = options.to_url_lossy().to_string();
    let store: Arc<dyn EventStore> = Arc::new(PostgresStore::connect(&url).await?);
    let filled = Instant::now();
    let total = fill(&options, args.dossiers, args.days).await?;
    eprintln!(
        "run {run}: {total} events of {} dossiers loaded in {:.1} s",
        args.dossiers,
        filled.elapsed().as_secs_f64()
    );
    let db = ReaderDb::connect(&url).await?;
    let tables = generations::ensure_active(&db).await?;
    let reader = tables.reader_name();
    let calendar = Arc::new(motcua_domain::calendar::WorkingCalendar::new(
        motcua_domain::calendar::WorkingTimeProfile::standard(),
        motcua_domain::calendar::HolidayTable::builtin(),
    ));
    let projector = RatesProjector::new(tables, calendar).without_outbox();
    let started = Instant::now();
    let mut tenths = Vec::new();
    if args.bulk {
        let mut next_tenth = total / 10;
        let mut last = (Instant::now(), 0u64);
        replay(
            &projector,
            &db,
            Arc::clone(&store),
            &ReplayOptions {
                flush_events: args.flush_events,
                max_dossiers: args.max_dossiers,
                ..ReplayOptions::default()
            },
            |progress| {
                while next_tenth > 0 && progress.applied >= next_tenth && tenths.len() < 10 {
                    let now = Instant::now();
                    tenths.push(
                        (progress.applied - last.1) as f64 / (now - last.0).as_secs_f64().max(1e-6),
                    );
                    last = (now, progress.applied);
                    next_tenth += total / 10;
                }
            },
            &CancellationToken::new(),
        )
        .await?;
    } else {
        let stop = CancellationToken::new();
        let runner = ReaderRunner::new(
            SqlTableFeed::new(Arc::clone(&store)).poll_interval(Duration::from_millis(5)),
            projector,
            db.clone(),
        )
        .options(RunnerOptions {
            max_batch: args.batch,
            dedupe: false,
            ..RunnerOptions::default()
        });
        let task = tokio::spawn(runner.run(stop.clone()));
        let mut next_tenth = total / 10;
        let mut last = (Instant::now(), 0u64);
        loop {
            let at = motcua_feed::load_position(&db, &reader, "sql", 0)
                .await?
                .map_or(0, |p| p.max(0) as u64);
            while next_tenth > 0 && at >= next_tenth && tenths.len() < 10 {
                let now = Instant::now();
                tenths.push((at - last.1) as f64 / (now - last.0).as_secs_f64().max(1e-6));
                last = (now, at);
                next_tenth += total / 10;
            }
            if at >= total {
                break;
            }
            if task.is_finished() {
                bail!("the projector stopped early");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.cancel();
        task.await??;
    }
    let elapsed = started.elapsed();
    let rate = total as f64 / elapsed.as_secs_f64();
    println!(
        "run {run}: replayed {total} events in {:.2} s: {rate:.0} events/s; per tenth: {}",
        elapsed.as_secs_f64(),
        tenths
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let (rows, state_bytes, table_bytes): (i64, f64, i64) = sqlx::query_as(&format!(
        "SELECT COUNT(*), COALESCE(AVG(LENGTH(state)), 0)::float8, \
         pg_total_relation_size('{0}') FROM {0}",
        generations::ensure_active(&db).await?.dossiers
    ))
    .fetch_one(db.pool())
    .await?;
    println!(
        "run {run}: {rows} dossier rows, {state_bytes:.0} bytes of state each on average, \
         dossier table {:.0} MB with its indexes",
        table_bytes as f64 / 1e6
    );
    if args.queries > 0 {
        let (p50, p99, max) = time_reports(&db, args.queries).await?;
        println!(
            "run {run}: {} report queries (random scope and period of the year): p50 {p50:.1} \
             ms, p99 {p99:.1} ms, max {max:.1} ms",
            args.queries
        );
    }
    db.close().await;
    drop(store);
    conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await?;
    Ok(rate)
}

/// Times `count` reports, each for a random scope (province, unit, authority or procedure,
/// among those with figures) and a random day, month, quarter or year of 2026, one after the
/// other as a dashboard would ask; returns p50, p99 and max in milliseconds.
async fn time_reports(db: &ReaderDb, count: usize) -> Result<(f64, f64, f64)> {
    let model = ReadModel::new(db.clone());
    let tables = model.tables().await?;
    let scopes: Vec<(String, String)> = sqlx::query_as(&format!(
        "SELECT DISTINCT scope_kind, scope_id FROM {}",
        tables.days
    ))
    .fetch_all(db.pool())
    .await?;
    let mut rng = StdRng::seed_from_u64(766);
    let mut histogram = hdrhistogram::Histogram::<u64>::new(3)?;
    let now = chrono::Utc::now();
    for _ in 0..count {
        let (kind, id) = &scopes[rng.random_range(0..scopes.len())];
        let period = match rng.random_range(0..4) {
            0 => format!(
                "2026-{:02}-{:02}",
                rng.random_range(1..=12),
                rng.random_range(1..=28)
            ),
            1 => format!("2026-{:02}", rng.random_range(1..=12)),
            2 => format!("2026-Q{}", rng.random_range(1..=4)),
            _ => "2026".to_owned(),
        };
        let query = ReportQuery {
            scope: ScopeKind::parse(kind).context("a scope kind")?,
            scope_id: id.clone(),
            channel: None,
            period: Period::parse(&period)?,
        };
        let started = Instant::now();
        let report = model.report(&query, now).await?;
        histogram.record(u64::try_from(started.elapsed().as_micros())?.max(1))?;
        std::hint::black_box(report);
    }
    let ms = |v: u64| v as f64 / 1000.0;
    Ok((
        ms(histogram.value_at_quantile(0.5)),
        ms(histogram.value_at_quantile(0.99)),
        ms(histogram.max()),
    ))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    // RUST_LOG=motcua_projector=info shows each flush of the replay.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let url = std::env::var("DATABASE_URL").context("DATABASE_URL (PostgreSQL) is required")?;
    let admin = PgConnectOptions::from_str(&url)?;
    let mut rates = Vec::new();
    for run in 1..=args.runs {
        rates.push(run_once(&admin, &args, run).await?);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "median of {}: {:.0} events/s (batch {})",
        rates.len(),
        rates[rates.len() / 2],
        args.batch
    );
    Ok(())
}
