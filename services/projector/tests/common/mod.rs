//! The projector's test fixtures: a fresh event store and reader database per backend, the
//! generated histories loaded into the store, a projector run until it caught up, and the
//! oracle that computes a report's figures by folding every dossier's events from scratch.

#![allow(dead_code)]

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use motcua_domain::calendar::WorkingCalendar;
use motcua_domain::lifecycle::DossierState;
use motcua_domain::outcome::{Outcome, processing_working_seconds};
use motcua_domain::time::{Instant, from_timestamp};
use motcua_feed::{ReaderDb, ReaderRunner, RunnerOptions, SqlTableFeed};
use motcua_projector::contribution::{EndKind, end_kind};
use motcua_projector::generate::History;
use motcua_projector::{RatesProjector, ReportQuery, ScopeKind};
use motcua_store::postgres::PostgresStore;
use motcua_store::sqlite::SqliteStore;
use motcua_store::{AppendRequest, DossierRow, EventStore, NewEvent};
use prost::Message;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Executor};
use tokio_util::sync::CancellationToken;

/// A fresh store and reader database.
pub struct Env {
    pub store: Arc<dyn EventStore>,
    pub reader_url: String,
    pub backend: &'static str,
}

/// Runs `scenario` on SQLite, then on PostgreSQL when `DATABASE_URL` is set (required when
/// `MOTCUA_REQUIRE_POSTGRES=1`).
pub async fn on_every_backend<F, Fut>(scenario: F)
where
    F: Fn(Env) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(&dir.path().join("events.sqlite3"))
        .await
        .expect("the SQLite store opens");
    let reader_url = format!("sqlite://{}", dir.path().join("rates.sqlite3").display());
    scenario(Env {
        store: Arc::new(store),
        reader_url,
        backend: "sqlite",
    })
    .await;

    let url = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            assert!(
                std::env::var("MOTCUA_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "MOTCUA_REQUIRE_POSTGRES=1 but DATABASE_URL is not set"
            );
            eprintln!("skipping PostgreSQL: DATABASE_URL is not set");
            return;
        }
    };
    let admin_options = PgConnectOptions::from_str(&url).expect("DATABASE_URL is PostgreSQL");
    let mut admin = admin_options
        .connect()
        .await
        .expect("connect to DATABASE_URL");
    let name = format!("motcua_projector_{}", uuid_like());
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("create a test database");
    let options = admin_options.database(&name);
    let reader_url = options.to_url_lossy().to_string();
    let store = PostgresStore::connect(&reader_url)
        .await
        .expect("the PostgreSQL store connects");
    let store = Arc::new(store);
    scenario(Env {
        store: store.clone(),
        reader_url,
        backend: "postgres",
    })
    .await;
    store.close().await;
    let _ = admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await;
}

fn uuid_like() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..16)
        .map(|_| char::from(b'a' + rng.random_range(0..26)))
        .collect()
}

/// Appends every history to the store, dossiers concurrently, each in seq order.
pub async fn load(store: &Arc<dyn EventStore>, histories: &[History]) {
    load_where(store, histories, |_| true).await
}

/// Appends the events of every history recorded at an instant `keep` accepts and not yet in
/// the store: called with "before a cut-off" and then with "from the cut-off", a period is
/// built, read, and then more events arrive for the same dossiers.
pub async fn load_where(
    store: &Arc<dyn EventStore>,
    histories: &[History],
    keep: impl Fn(Instant) -> bool + Copy,
) {
    futures::stream::iter(histories)
        .for_each_concurrent(32, |history| {
            let store = Arc::clone(store);
            async move {
                let mut state: Option<DossierState> = None;
                for event in &history.events {
                    match state.as_mut() {
                        Some(s) => s.apply(event).expect("folds"),
                        None => state = DossierState::fold([event]).expect("folds"),
                    }
                    let s = state.as_ref().expect("created");
                    let recorded = event
                        .recorded_at
                        .as_ref()
                        .and_then(from_timestamp)
                        .expect("time");
                    if !keep(recorded) {
                        continue;
                    }
                    store
                        .append(AppendRequest {
                            dossier_id: history.dossier_id.clone(),
                            expected_version: event.seq - 1,
                            request_id: event.request_id.clone(),
                            fingerprint: event.request_id.as_bytes().to_vec(),
                            events: vec![NewEvent {
                                event_id: event.event_id.clone(),
                                seq: event.seq,
                                event_type: motcua_domain::lifecycle::event_type_name(
                                    event.payload.as_ref().expect("payload"),
                                )
                                .to_owned(),
                                recorded_at: recorded,
                                payload: event.encode_to_vec(),
                            }],
                            row: DossierRow {
                                dossier_id: history.dossier_id.clone(),
                                version: s.version,
                                status: s.status as i32,
                                channel: s.channel as i32,
                                procedure_code: s.procedure.code.clone(),
                                receiving_unit: s.units.receiving_unit.clone(),
                                competent_authority: s.units.competent_authority.clone(),
                                due_at: s.due_at,
                                open: s.is_open(),
                                updated_at: recorded,
                            },
                            personal_data: None,
                            claimed_number: None,
                        })
                        .await
                        .expect("append");
                }
            }
        })
        .await;
}

/// Runs a projector for `tables` on the store's SQL feed until every event in the store is
/// applied, then stops it.
pub async fn project(store: &Arc<dyn EventStore>, db: &ReaderDb, projector: RatesProjector) {
    let head = store.head_position().await.expect("head");
    let name = projector_name(&projector);
    let shutdown = CancellationToken::new();
    let runner = ReaderRunner::new(
        SqlTableFeed::new(Arc::clone(store)).poll_interval(Duration::from_millis(20)),
        projector,
        db.clone(),
    )
    .options(RunnerOptions {
        max_batch: 700,
        dedupe: false,
        ..RunnerOptions::default()
    });
    let task = tokio::spawn(runner.run(shutdown.clone()));
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let position = motcua_feed::load_position(db, &name, "sql", 0)
            .await
            .expect("position");
        if position.is_some_and(|p| p >= head as i64) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the projector did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    task.await
        .expect("joins")
        .expect("the runner stops cleanly");
}

fn projector_name(projector: &RatesProjector) -> String {
    use motcua_feed::Reader;
    projector.name().to_owned()
}

/// What the oracle computes: the figures a report must show.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Expected {
    pub carried_over: i64,
    pub received: i64,
    pub received_by_channel: [i64; 3],
    pub resolved_early: i64,
    pub resolved_on_time: i64,
    pub resolved_late: i64,
    pub withdrawn: i64,
    pub refused: i64,
    pub stopped: i64,
    pub in_progress: i64,
    pub in_progress_past_due: i64,
    pub digitized_at_reception: i64,
    pub result_digitized: i64,
    pub paid_online: i64,
    pub fee_bearing: i64,
    pub processing_seconds: i64,
    pub processed: i64,
    pub median_twice_seconds: Option<i64>,
}

/// The figures of `query`, judged at `judged_at` (the period end, or now), by folding each
/// dossier's events recorded before that moment: no aggregates, no deltas.
pub fn oracle(
    calendar: &WorkingCalendar,
    histories: &[History],
    query: &ReportQuery,
    start: Instant,
    judged_at: Instant,
) -> Expected {
    let mut x = Expected::default();
    let mut seconds = Vec::new();
    for history in histories {
        let first = &history.events[0];
        let created = DossierState::fold([first])
            .expect("folds")
            .expect("created");
        let in_scope = match query.scope {
            ScopeKind::Province => true,
            ScopeKind::ReceivingUnit => created.units.receiving_unit == query.scope_id,
            ScopeKind::CompetentAuthority => created.units.competent_authority == query.scope_id,
            // A dossier counts under the procedure it was received under.
            ScopeKind::Procedure => created.procedure.code == query.scope_id,
        } && query
            .channel
            .is_none_or(|c| c == created.channel as i32 as i64);
        if !in_scope {
            continue;
        }
        let before = |t: Instant| {
            let known: Vec<_> = history
                .events
                .iter()
                .filter(|e| {
                    e.recorded_at
                        .as_ref()
                        .and_then(from_timestamp)
                        .expect("time")
                        < t
                })
                .collect();
            DossierState::fold(known).expect("folds")
        };
        let (Some(at_end), at_start) = (before(judged_at), before(start)) else {
            continue;
        };
        let ended_before_start = at_start.as_ref().is_some_and(|s| s.ended_at.is_some());
        if at_start.is_some() && !ended_before_start {
            x.carried_over += 1;
        }
        if at_start.is_none() {
            x.received += 1;
            x.received_by_channel[at_end.channel as usize - 1] += 1;
        }
        // Everything else counts in the period of the event that made it true, known from the
        // events before the period's end alone: a closed period never moves.
        let within = |t: Option<Instant>| t.is_some_and(|t| start <= t && t < judged_at);
        if within(at_end.digitized_at_reception_at) {
            x.digitized_at_reception += 1;
        }
        let fee_bearing_from = at_end.fee_bearing_since;
        if within(fee_bearing_from) {
            x.fee_bearing += 1;
        }
        if fee_bearing_from.is_some() && within(at_end.paid_online_at) {
            x.paid_online += 1;
        }
        match at_end.ended_at {
            Some(ended) if !ended_before_start => match end_kind(&at_end) {
                EndKind::Withdrawn => x.withdrawn += 1,
                EndKind::Refused => x.refused += 1,
                EndKind::Stopped => x.stopped += 1,
                EndKind::Resolved => {
                    match at_end.outcome(calendar, ended) {
                        Outcome::Early => x.resolved_early += 1,
                        Outcome::Late => x.resolved_late += 1,
                        _ => x.resolved_on_time += 1,
                    }
                    if at_end.result_digitized_at.is_some_and(|t| t <= ended) {
                        x.result_digitized += 1;
                    }
                    if let Some(s) = processing_working_seconds(calendar, &at_end.outcome_facts()) {
                        x.processed += 1;
                        x.processing_seconds += s;
                        seconds.push(s);
                    }
                }
            },
            Some(_) => {}
            None => {
                x.in_progress += 1;
                if at_end.outcome(calendar, judged_at).is_late() {
                    x.in_progress_past_due += 1;
                }
            }
        }
    }
    seconds.sort();
    // Twice the usual median, in working seconds: an integer for either parity.
    x.median_twice_seconds =
        motcua_projector::report::median_of_sorted(&seconds).map(|m| (m * 2.0).round() as i64);
    x
}

/// What a report shows, in the oracle's terms.
pub fn shown(report: &motcua_projector::Report) -> Expected {
    let f = &report.figures;
    Expected {
        carried_over: f.carried_over,
        received: f.received,
        received_by_channel: [f.received_counter, f.received_online, f.received_postal],
        resolved_early: f.resolved_early,
        resolved_on_time: f.resolved_on_time,
        resolved_late: f.resolved_late,
        withdrawn: f.withdrawn,
        refused: f.refused,
        stopped: f.stopped,
        in_progress: f.in_progress,
        in_progress_past_due: f.in_progress_past_due,
        digitized_at_reception: f.digitization_at_reception.numerator,
        result_digitized: f.digitization_of_results.numerator,
        paid_online: f.online_payment.numerator,
        fee_bearing: f.online_payment.denominator,
        processing_seconds: f.processing_working_seconds,
        processed: f.processed,
        median_twice_seconds: f
            .median_processing_days
            .map(|d| (d * 8.0 * 3600.0 * 2.0).round() as i64),
    }
}
