//! Benchmark of the national-portal adapter (issue 6): dossier syncs per second to the portal
//! simulator over real HTTP on loopback, and how long a backlog takes to drain after an
//! outage, with the progress shown.
//!
//! One process as `motcua serve` runs it embedded: a SQLite event store with `--dossiers`
//! received dossiers (each with its applicant's personal data), the adapter's reader and
//! sender on a SQLite sync database, and the simulator in the same process on its own port.
//! The reader first takes every dossier in (the backlog an outage leaves), then the sender is
//! timed until nothing is pending.
//!
//! ```sh
//! cargo run --release -p motcua-portal --example sync_bench -- --dossiers 200000
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant as Clock};

use anyhow::{Context, Result, bail};
use chrono::TimeZone;
use motcua_domain::calendar::WorkingCalendar;
use motcua_domain::catalog::{ChannelKind, ProcedureCatalogue};
use motcua_domain::ids::ProcedureCode;
use motcua_domain::lifecycle::{DossierState, event_type_name, procedure_ref};
use motcua_domain::time::{to_timestamp, vietnam};
use motcua_feed::{ReaderDb, ReaderRunner, SqlTableFeed};
use motcua_portal::schema::{self, READER_NAME};
use motcua_portal::{ClientConfig, PortalClient, Secret, Sender, SenderOptions, SyncReader, ops};
use motcua_portal_sim::{SimConfig, Simulator};
use motcua_proto::v1 as pb;
use motcua_store::sqlite::SqliteStore;
use motcua_store::{AppendRequest, DossierRow, EventStore, NewEvent, PersonalData};
use prost::Message;
use tokio_util::sync::CancellationToken;

/// The allocator of the `motcua` binary, so that the benchmark measures what runs.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn received(
    catalogue: &ProcedureCatalogue,
    calendar: &WorkingCalendar,
    n: usize,
) -> Result<AppendRequest> {
    let procedure = catalogue
        .get(&ProcedureCode::parse("2.000908")?)
        .context("in the sample catalogue")?;
    let time = procedure.time_for(ChannelKind::Counter);
    let accepted = vietnam()
        .with_ymd_and_hms(2026, 3, 2, 8, 0, 0)
        .single()
        .context("a time")?
        .with_timezone(&chrono::Utc)
        + chrono::Duration::milliseconds(n as i64);
    let seconds = time
        .as_ref()
        .and_then(|t| t.working_seconds(calendar.profile()))
        .context("working time")?;
    let due = calendar.add_working_seconds(calendar.next_working_start(accepted), seconds);
    let dossier_id = format!("000.00.01.H22-260302-{:06}", n + 1);
    let event = pb::DossierEvent {
        event_id: format!("bench-{n}"),
        dossier_id: dossier_id.clone(),
        seq: 1,
        recorded_at: Some(to_timestamp(accepted)),
        actor: Some(pb::Actor {
            officer_id: "officer-9".into(),
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
        dossier_id: dossier_id.clone(),
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
        row: DossierRow {
            dossier_id,
            version: 1,
            status: 2,
            channel: 1,
            procedure_code: "2.000908".into(),
            receiving_unit: "000.00.01.H22".into(),
            competent_authority: "000.00.01.H22".into(),
            due_at: state.due_at,
            open: true,
            updated_at: accepted,
        },
        personal_data: Some(PersonalData {
            applicant_name: "Nguyễn Văn An".into(),
            identity_number: "001099012345".into(),
            phone: String::new(),
        }),
        claimed_number: None,
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut dossiers = 50_000usize;
    let mut concurrency = SenderOptions::default().concurrency;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--dossiers" => dossiers = it.next().context("a number")?.parse()?,
            "--concurrency" => concurrency = it.next().context("a number")?.parse()?,
            other => bail!("unknown flag {other} (--dossiers N --concurrency N)"),
        }
    }
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn EventStore> =
        Arc::new(SqliteStore::open(&dir.path().join("events.sqlite")).await?);
    let calendar = WorkingCalendar::standard();
    let catalogue = ProcedureCatalogue::sample();
    let mut pending = tokio::task::JoinSet::new();
    for n in 0..dossiers {
        let request = received(&catalogue, &calendar, n)?;
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

    let sim = Simulator::new(SimConfig::new("motcua", "bench"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(motcua_portal_sim::serve(
        listener,
        sim.clone(),
        std::future::pending(),
    ));

    let db = ReaderDb::connect(&format!(
        "sqlite://{}",
        dir.path().join("portal.sqlite").display()
    ))
    .await?;
    schema::prepare(&db).await?;
    let head = store.head_position().await? as i64;
    let stop = CancellationToken::new();
    let reader = tokio::spawn(
        ReaderRunner::new(
            SqlTableFeed::new(Arc::clone(&store)),
            SyncReader,
            db.clone(),
        )
        .run(stop.clone()),
    );
    while motcua_feed::load_position(&db, READER_NAME, "sql", 0)
        .await?
        .unwrap_or(0)
        < head
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let backlog = ops::backlog(&db).await?;
    eprintln!("backlog: {backlog} dossiers pending (as after an outage); syncing…");

    let client = Arc::new(PortalClient::new(ClientConfig {
        base_url: format!("http://{addr}"),
        username: "motcua".into(),
        password: Secret::new("bench"),
        timeout: Duration::from_secs(10),
        renew_margin: Duration::from_secs(30),
    })?);
    let sender = Sender::new(
        db.clone(),
        Arc::clone(&store),
        client,
        SenderOptions {
            concurrency,
            ..SenderOptions::default()
        },
    );
    let started = Clock::now();
    let sending = tokio::spawn(sender.run(stop.clone()));
    let mut last = Clock::now();
    loop {
        let left = ops::backlog(&db).await?;
        if left == 0 {
            break;
        }
        if last.elapsed() >= Duration::from_secs(5) {
            last = Clock::now();
            let done = backlog - left;
            eprintln!(
                "  {done} of {backlog} synced, {:.0}/s, {left} left",
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    stop.cancel();
    sending.await?;
    reader.await??;
    println!(
        "{backlog} dossiers synced (create + progress record each) in {seconds:.1} s: {:.0} dossier syncs/s at concurrency {concurrency}; portal holds {}",
        backlog as f64 / seconds,
        sim.dossier_count()
    );
    Ok(())
}
