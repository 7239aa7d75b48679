//! Benchmark of the deadline watcher (issue 5): memory with a million open dossiers tracked,
//! the cost of a tick when nothing is due (it must not grow with the open dossiers), and the
//! rate of `late` events appended during a catch-up.
//!
//! The embedded setup of `motcua serve`: a SQLite event store and a SQLite watcher database
//! in one process (or PostgreSQL for both with `--postgres`, using `DATABASE_URL`).
//! `--dossiers` counter dossiers are appended straight into the store (a 20-working-day
//! procedure, received on Monday 4 March 2024 from 08:00), of which `--overdue` have a 4-working-hour
//! procedure instead. The watcher's reader follows them all; then the clock moves to Monday 11
//! March, when exactly the short ones are overdue, and one tick records their `late` events.
//!
//! ```sh
//! cargo run --release -p motcua-deadlines --example deadline_bench -- \
//!     --dossiers 1000000 --overdue 100000
//! ```

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant as Clock};

use anyhow::{Context, Result, bail};
use chrono::TimeZone;
use motcua_deadlines::schema::{self, READER_NAME};
use motcua_deadlines::{DeadlineReader, Watcher, WatcherOptions};
use motcua_domain::calendar::WorkingCalendar;
use motcua_domain::catalog::{ChannelKind, ProcedureCatalogue};
use motcua_domain::ids::ProcedureCode;
use motcua_domain::lifecycle::{DossierState, event_type_name, procedure_ref};
use motcua_domain::time::{Instant, to_timestamp, vietnam};
use motcua_feed::{ReaderDb, ReaderRunner, SqlTableFeed};
use motcua_intake::CommandHandler;
use motcua_intake::clock::{Clock as _, ManualClock};
use motcua_intake::handler::summary_row;
use motcua_proto::v1 as pb;
use motcua_store::postgres::PostgresStore;
use motcua_store::sqlite::SqliteStore;
use motcua_store::{AppendRequest, EventStore, NewEvent};
use prost::Message;
use tokio_util::sync::CancellationToken;

/// The allocator of the `motcua` binary, so that the benchmark measures what runs.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

struct Args {
    dossiers: usize,
    overdue: usize,
    postgres: bool,
    concurrency: usize,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        dossiers: 200_000,
        overdue: 50_000,
        postgres: false,
        concurrency: WatcherOptions::default().concurrency,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--postgres" => args.postgres = true,
            "--dossiers" => args.dossiers = it.next().context("a number")?.parse()?,
            "--overdue" => args.overdue = it.next().context("a number")?.parse()?,
            "--concurrency" => args.concurrency = it.next().context("a number")?.parse()?,
            other => {
                bail!("unknown flag {other} (--dossiers N --overdue N --concurrency N --postgres)")
            }
        }
    }
    Ok(args)
}

fn vn(d: u32, h: u32, mi: u32) -> Instant {
    vietnam()
        .with_ymd_and_hms(2024, 3, d, h, mi, 0)
        .single()
        .expect("a valid time")
        .with_timezone(&chrono::Utc)
}

/// The process's resident memory, from /proc.
fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// One `received` event as the intake would have written it, due dates computed the same way.
fn received(
    catalogue: &ProcedureCatalogue,
    calendar: &WorkingCalendar,
    n: usize,
    short: bool,
) -> Result<AppendRequest> {
    let code = if short {
        "2.000635"
    } else {
        "1.004227.000.00.00.H22"
    };
    let procedure = catalogue
        .get(&ProcedureCode::parse(code)?)
        .context("the procedure is in the sample catalogue")?;
    let time = procedure.time_for(ChannelKind::Counter);
    let accepted = vn(4, 8, 0) + chrono::Duration::milliseconds(n as i64);
    let start = calendar.next_working_start(accepted);
    let seconds = time
        .as_ref()
        .and_then(|t| t.working_seconds(calendar.profile()))
        .context("a working-time procedure")?;
    let due = calendar.add_working_seconds(start, seconds);
    let dossier_id = format!("000.00.01.H22-240304-{:06}", n + 1);
    let event = pb::DossierEvent {
        event_id: format!("bench-{n}"),
        dossier_id: dossier_id.clone(),
        seq: 1,
        recorded_at: Some(to_timestamp(accepted)),
        actor: Some(pb::Actor {
            officer_id: "bench".into(),
            unit_id: "000.00.01.H22".into(),
            kind: "officer".into(),
        }),
        request_id: format!("bench-{n}"),
        payload: Some(pb::dossier_event::Payload::Received(pb::Received {
            channel: pb::Channel::Counter as i32,
            procedure: Some(procedure_ref(procedure, time)),
            units: Some(pb::DossierUnits {
                receiving_unit: "000.00.01.H22".into(),
                competent_authority: "000.00.01.H22".into(),
            }),
            applicant_type: pb::ApplicantType::Person as i32,
            component_count: 2,
            accepted_at: Some(to_timestamp(accepted)),
            due_at: Some(to_timestamp(due)),
            due_provisional: false,
        })),
        ..Default::default()
    };
    let state = DossierState::fold([&event])?.context("a state")?;
    Ok(AppendRequest {
        dossier_id,
        expected_version: 0,
        request_id: event.request_id.clone(),
        fingerprint: vec![0; 32],
        events: vec![NewEvent {
            event_id: event.event_id.clone(),
            seq: 1,
            event_type: event_type_name(event.payload.as_ref().context("payload")?).into(),
            recorded_at: accepted,
            payload: event.encode_to_vec(),
        }],
        row: summary_row(&state),
        personal_data: None,
        claimed_number: None,
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let dir = tempfile::tempdir()?;
    let (store, reader_url): (Arc<dyn EventStore>, String) = if args.postgres {
        let url = std::env::var("DATABASE_URL").context("--postgres needs DATABASE_URL")?;
        use sqlx::{ConnectOptions, Executor};
        let admin = sqlx::postgres::PgConnectOptions::from_str(&url)?;
        let name = format!("deadline_bench_{}", std::process::id());
        let mut conn = admin.connect().await?;
        conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await?;
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await?;
        let url = admin.database(&name).to_url_lossy().to_string();
        (Arc::new(PostgresStore::connect(&url).await?), url)
    } else {
        let store = SqliteStore::open(&dir.path().join("events.sqlite")).await?;
        let url = format!("sqlite://{}", dir.path().join("deadlines.sqlite").display());
        (Arc::new(store), url)
    };
    let calendar = Arc::new(WorkingCalendar::standard());
    let catalogue = Arc::new(ProcedureCatalogue::sample());

    let started = Clock::now();
    let mut pending = tokio::task::JoinSet::new();
    // Every `stride`-th dossier is a short one.
    let stride = (args.dossiers / args.overdue.max(1)).max(1);
    for n in 0..args.dossiers {
        let short = n % stride == 0 && n / stride < args.overdue;
        let request = received(&catalogue, &calendar, n, short)?;
        let store = Arc::clone(&store);
        pending.spawn(async move { store.append(request).await });
        if pending.len() >= 256
            && let Some(done) = pending.join_next().await
        {
            done??;
        }
    }
    while let Some(done) = pending.join_next().await {
        done??;
    }
    eprintln!(
        "{} dossiers appended in {:.1} s",
        args.dossiers,
        started.elapsed().as_secs_f64()
    );

    let db = ReaderDb::connect(&reader_url).await?;
    schema::prepare(&db).await?;
    let head = store.head_position().await? as i64;
    let before = rss_mb();
    let started = Clock::now();
    let stop = CancellationToken::new();
    let runner = ReaderRunner::new(
        SqlTableFeed::new(Arc::clone(&store)).poll_interval(Duration::from_millis(50)),
        DeadlineReader::new(Arc::clone(&calendar), 8 * 3600),
        db.clone(),
    );
    let follow = tokio::spawn(runner.run(stop.clone()));
    let mut peak = before;
    while motcua_feed::load_position(&db, READER_NAME, "sql", 0)
        .await?
        .unwrap_or(0)
        < head
    {
        peak = peak.max(rss_mb());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deadline_dossiers")
        .fetch_one(db.pool())
        .await?;
    let timers: Vec<(Option<String>, i64, Option<i64>)> = sqlx::query_as(
        "SELECT fire_kind, COUNT(*), MIN(fire_at) FROM deadline_dossiers GROUP BY fire_kind",
    )
    .fetch_all(db.pool())
    .await?;
    eprintln!("timers by kind (kind, dossiers, earliest): {timers:?}");
    println!(
        "reader: {held} open dossiers tracked in {:.1} s; process RSS {:.0} MB before, peak {:.0} MB while following, {:.0} MB after",
        started.elapsed().as_secs_f64(),
        before,
        peak,
        rss_mb()
    );

    let clock = Arc::new(ManualClock::new(vn(4, 9, 0)));
    let handler = CommandHandler::new(
        Arc::clone(&store),
        Arc::clone(&calendar),
        catalogue,
        clock.clone(),
    );
    let watcher = Watcher::new(
        db.clone(),
        handler,
        WatcherOptions {
            concurrency: args.concurrency,
            ..WatcherOptions::default()
        },
    );
    // Nothing due yet (the warnings of the short ones are due at acceptance: recorded here).
    let warm = watcher.tick().await?;

    // Let the warnings come back through the feed, then time ticks with nothing due.
    let head = store.head_position().await? as i64;
    while motcua_feed::load_position(&db, READER_NAME, "sql", 0)
        .await?
        .unwrap_or(0)
        < head
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut idle = Vec::new();
    for _ in 0..20 {
        let at = Clock::now();
        let report = watcher.tick().await?;
        idle.push(at.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(report.handled(), 0);
    }
    idle.sort_by(f64::total_cmp);
    println!(
        "tick with {held} open and none due: median {:.2} ms, max {:.2} ms ({} warnings recorded first)",
        idle[idle.len() / 2],
        idle[idle.len() - 1],
        warm.due_soon_recorded
    );

    // A week later: exactly the short ones are overdue.
    clock.set(vn(11, 9, 0));
    let at = Clock::now();
    let report = watcher.tick().await?;
    let seconds = at.elapsed().as_secs_f64();
    println!(
        "catch-up: {} late events appended in {seconds:.1} s: {:.0} per second ({} failed); clock {}",
        report.late_recorded,
        report.late_recorded as f64 / seconds,
        report.failed,
        clock.now()
    );
    stop.cancel();
    follow.await??;
    Ok(())
}
