//! The projector's scenario, run on SQLite and on PostgreSQL: generated histories with every
//! kind of event go through the real store and the SQL feed into the read model; every report
//! must equal what folding each dossier's events from scratch gives, the period identity must
//! hold, a rebuild must give the same tables, and replays and bad events must change nothing.

mod common;

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use common::{Env, load, on_every_backend, oracle, project, shown};
use motcua_domain::calendar::WorkingCalendar;
use motcua_feed::{FeedEvent, Reader, ReaderDb, SourcePosition};
use motcua_projector::generate::{GenerateOptions, Generator, History};
use motcua_projector::replay::{ReplayOptions, replay};
use motcua_projector::{
    Period, RatesProjector, ReadModel, ReportQuery, ScopeKind, Tables, generations,
};
use tokio_util::sync::CancellationToken;

fn histories() -> (WorkingCalendar, Vec<History>) {
    let mut generator = Generator::new(GenerateOptions {
        seed: 20260101,
        dossiers: 400,
        ..GenerateOptions::default()
    });
    let histories = generator.histories();
    (generator.calendar().clone(), histories)
}

/// Every combination the reports are checked on.
fn queries(histories: &[History]) -> Vec<ReportQuery> {
    let mut scopes = vec![(ScopeKind::Province, String::new())];
    let first = |h: &History| {
        motcua_domain::lifecycle::DossierState::fold([&h.events[0]])
            .expect("folds")
            .expect("created")
    };
    for h in histories.iter().take(40) {
        let s = first(h);
        scopes.push((ScopeKind::ReceivingUnit, s.units.receiving_unit.clone()));
        scopes.push((
            ScopeKind::CompetentAuthority,
            s.units.competent_authority.clone(),
        ));
        scopes.push((ScopeKind::Procedure, s.procedure.code.clone()));
    }
    scopes.sort_by(|a, b| (a.0.key(), &a.1).cmp(&(b.0.key(), &b.1)));
    scopes.dedup();
    let periods = [
        "2026-01",
        "2026-02",
        "2026-03",
        "2026-04",
        "2026-Q1",
        "2026-Q2",
        "2026-01-15",
        "2026-02-02",
        "2026-01-10..2026-02-20",
        "2025",
        "2026",
    ];
    let mut queries = Vec::new();
    for (scope, id) in &scopes {
        for period in periods {
            for channel in [None, Some(1), Some(2), Some(3)] {
                if channel.is_some() && *scope != ScopeKind::Province && period != "2026-Q1" {
                    continue;
                }
                queries.push(ReportQuery {
                    scope: *scope,
                    scope_id: id.clone(),
                    channel,
                    period: Period::parse(period).expect("a period"),
                });
            }
        }
    }
    queries
}

async fn check_reports(
    env: &Env,
    model: &ReadModel,
    tables: &Tables,
    calendar: &WorkingCalendar,
    histories: &[History],
) {
    // A fixed "now", after every generated event and inside 2026, so the year is an open
    // period judged at now and every other period is closed, whatever the date of the run.
    let now = Utc.with_ymd_and_hms(2026, 9, 15, 3, 0, 0).unwrap();
    let mut checked = 0;
    for query in queries(histories) {
        let report = model
            .report_in(tables, &query, now)
            .await
            .expect("a report");
        let judged_at = if report.closed {
            query.period.end()
        } else {
            now
        };
        let expected = oracle(calendar, histories, &query, query.period.start(), judged_at);
        assert_eq!(
            shown(&report),
            expected,
            "{}: {:?} {} channel {:?} {}",
            env.backend,
            query.scope,
            query.scope_id,
            query.channel,
            query.period
        );
        assert!(
            report.figures.identity.holds,
            "{}: identity {:?}",
            env.backend, report.figures.identity
        );
        checked += 1;
    }
    assert!(checked > 100, "only {checked} reports checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_equal_a_fold_of_every_dossier_and_rebuild_equals_incremental() {
    let (calendar, histories) = histories();
    // The generated data must exercise every kind of event and outcome.
    let mut kinds = std::collections::BTreeSet::new();
    for event in histories.iter().flat_map(|h| &h.events) {
        kinds.insert(motcua_domain::lifecycle::event_type_name(
            event.payload.as_ref().expect("payload"),
        ));
    }
    assert_eq!(kinds.len(), 18, "event kinds generated: {kinds:?}");
    let calendar = Arc::new(calendar);
    on_every_backend(|env| {
        let calendar = Arc::clone(&calendar);
        let histories = &histories;
        async move {
            load(&env.store, histories).await;
            let db = ReaderDb::connect(&env.reader_url).await.expect("reader db");
            let tables = generations::ensure_active(&db).await.expect("generation 1");
            project(
                &env.store,
                &db,
                RatesProjector::new(tables.clone(), Arc::clone(&calendar)),
            )
            .await;
            let model = ReadModel::new(db.clone());
            check_reports(&env, &model, &tables, &calendar, histories).await;

            // Replaying every event (as a feed may after a crash) changes nothing.
            let before = dump(&db, &tables).await;
            let projector = RatesProjector::new(tables.clone(), Arc::clone(&calendar));
            let events: Vec<FeedEvent> = histories
                .iter()
                .flat_map(|h| &h.events)
                .enumerate()
                .map(|(i, e)| feed_event(e.clone(), i as u64))
                .collect();
            for chunk in events.chunks(900) {
                let mut tx = db.begin().await.expect("tx");
                projector
                    .apply(&mut tx, chunk)
                    .await
                    .expect("replay applies");
                tx.commit().await.expect("commit");
            }
            assert_eq!(
                dump(&db, &tables).await,
                before,
                "{}: a replay changed the read model",
                env.backend
            );

            // A rebuild into a fresh generation (the bulk replay of `motcua projector
            // rebuild`, with small reads and flushes so that it flushes many times, drops ended
            // dossiers and loads some of them again), cut off abruptly once it has flushed a
            // few times (its future dropped wherever it was, as a killed process leaves it: an
            // open transaction rolled back) and run again to resume, gives exactly the same
            // tables, then takes over.
            let rebuilt = generations::begin_rebuild(&db).await.expect("generation 2");
            assert_eq!(rebuilt.generation, 2);
            let replayer =
                RatesProjector::new(rebuilt.clone(), Arc::clone(&calendar)).without_outbox();
            let options = ReplayOptions {
                read_batch: 300,
                flush_events: 1_000,
                max_dossiers: 150,
            };
            let head = env.store.head_position().await.expect("head");
            let (cut, mut cut_off) = tokio::sync::watch::channel(false);
            let never = CancellationToken::new();
            let mut flushes = std::collections::BTreeSet::new();
            tokio::select! {
                result = replay(
                    &replayer,
                    &db,
                    Arc::clone(&env.store),
                    &options,
                    |progress| {
                        flushes.insert(progress.committed);
                        if flushes.len() >= 3 && progress.applied > progress.committed {
                            cut.send_replace(true);
                        }
                    },
                    &never,
                ) => panic!("{}: the replay ended before it was cut off: {result:?}", env.backend),
                _ = cut_off.wait_for(|cut| *cut) => {}
            }
            let resumed_from = flushes.last().copied().expect("flushed");
            assert!(
                resumed_from > 0 && resumed_from < head,
                "{resumed_from} of {head}"
            );
            let mut flushes = std::collections::BTreeSet::new();
            let position = replay(
                &replayer,
                &db,
                Arc::clone(&env.store),
                &options,
                |progress| {
                    flushes.insert(progress.committed);
                },
                &CancellationToken::new(),
            )
            .await
            .expect("the replay");
            assert_eq!(position, head);
            assert!(
                flushes.len() >= 2 && flushes.first() >= Some(&resumed_from),
                "{}: resumed from {resumed_from}, flushes at {flushes:?}",
                env.backend
            );
            assert_eq!(
                dump(&db, &rebuilt).await,
                before,
                "{}: rebuilt != incremental",
                env.backend
            );
            generations::activate(&db, 2).await.expect("switch");
            assert_eq!(model.tables().await.expect("active").generation, 2);
            check_reports(&env, &model, &rebuilt, &calendar, histories).await;
            db.close().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_events_are_anomalies_and_change_no_figure() {
    let (calendar, histories) = histories();
    let calendar = Arc::new(calendar);
    on_every_backend(|env| {
        let calendar = Arc::clone(&calendar);
        let histories = &histories[..60];
        async move {
            load(&env.store, histories).await;
            let db = ReaderDb::connect(&env.reader_url).await.expect("reader db");
            let tables = generations::ensure_active(&db).await.expect("generation 1");
            project(
                &env.store,
                &db,
                RatesProjector::new(tables.clone(), Arc::clone(&calendar)),
            )
            .await;
            let days_before = dump_days(&db, &tables).await;

            // A dossier that ended, then an event no state allows after its end.
            let ended = histories
                .iter()
                .find(|h| {
                    let s = motcua_domain::lifecycle::DossierState::fold(&h.events)
                        .expect("folds")
                        .expect("exists");
                    s.status == motcua_domain::lifecycle::DossierStatus::Withdrawn
                })
                .expect("a withdrawn dossier");
            let last = ended.events.last().expect("events").clone();
            let mut impossible = last.clone();
            impossible.seq = last.seq + 1;
            impossible.payload = Some(motcua_proto::v1::dossier_event::Payload::Resolved(
                Default::default(),
            ));
            // An event of a dossier that does not exist.
            let mut unknown = impossible.clone();
            unknown.dossier_id = "000.00.99.H22-260101-0001".into();
            unknown.seq = 4;
            let projector = RatesProjector::new(tables.clone(), Arc::clone(&calendar));
            let mut tx = db.begin().await.expect("tx");
            projector
                .apply(
                    &mut tx,
                    &[
                        feed_event(impossible.clone(), 1),
                        feed_event(unknown.clone(), 2),
                        feed_event(last.clone(), 3),
                    ],
                )
                .await
                .expect("applies");
            tx.commit().await.expect("commit");
            assert_eq!(
                dump_days(&db, &tables).await,
                days_before,
                "{}: a bad event changed a figure",
                env.backend
            );
            let model = ReadModel::new(db.clone());
            let anomalies = model.anomalies(None, 100).await.expect("anomalies");
            let kinds: Vec<(&str, &str)> = anomalies
                .iter()
                .map(|a| (a.dossier_id.as_str(), a.kind.as_str()))
                .collect();
            assert_eq!(
                kinds,
                vec![
                    (ended.dossier_id.as_str(), "impossible_transition"),
                    ("000.00.99.H22-260101-0001", "unknown_dossier"),
                ]
                .into_iter()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>(),
                "{}",
                env.backend
            );
            // Applying the same bad events again records nothing twice.
            let mut tx = db.begin().await.expect("tx");
            projector
                .apply(
                    &mut tx,
                    &[feed_event(impossible, 1), feed_event(unknown, 2)],
                )
                .await
                .expect("applies");
            tx.commit().await.expect("commit");
            assert_eq!(
                model.anomalies(None, 100).await.expect("anomalies").len(),
                2
            );
            db.close().await;
        }
    })
    .await;
}

fn feed_event(event: motcua_proto::v1::DossierEvent, position: u64) -> FeedEvent {
    FeedEvent {
        dossier_id: event.dossier_id.clone(),
        seq: event.seq,
        event_type: motcua_domain::lifecycle::event_type_name(
            event.payload.as_ref().expect("payload"),
        ),
        event,
        source: SourcePosition::Sql { position },
    }
}

/// Every row of the day and histogram tables, and every dossier's version, state columns and
/// `L`, sorted: what "the same read model" means.
async fn dump(db: &ReaderDb, tables: &Tables) -> Vec<String> {
    let mut rows = dump_days(db, tables).await;
    let sql = format!(
        "SELECT dossier_id || '|' || CAST(version AS TEXT) || '|' || CAST(status AS TEXT) || '|' || \
         COALESCE(CAST(late_from AS TEXT), '-') || '|' || COALESCE(outcome, '-') || '|' || state FROM {}",
        tables.dossiers
    );
    let mut dossiers: Vec<String> = sqlx::query_scalar(&sql)
        .fetch_all(db.pool())
        .await
        .expect("dossiers");
    dossiers.sort();
    rows.extend(dossiers);
    let sql = format!(
        "SELECT scope_kind || '|' || scope_id || '|' || CAST(day AS TEXT) || '|' || CAST(channel AS TEXT) || '|' || \
         CAST(hours AS TEXT) || '=' || CAST(dossiers AS TEXT) FROM {} WHERE dossiers <> 0",
        tables.hours
    );
    let mut hours: Vec<String> = sqlx::query_scalar(&sql)
        .fetch_all(db.pool())
        .await
        .expect("hours");
    hours.sort();
    rows.extend(hours);
    rows
}

async fn dump_days(db: &ReaderDb, tables: &Tables) -> Vec<String> {
    let counters: Vec<String> = motcua_projector::contribution::COUNTERS
        .iter()
        .map(|c| format!("CAST({c} AS TEXT)"))
        .collect();
    let sql = format!(
        "SELECT scope_kind || '|' || scope_id || '|' || CAST(day AS TEXT) || '|' || CAST(channel AS TEXT) || '=' || {} FROM {}",
        counters.join(" || ',' || "),
        tables.days
    );
    let mut rows: Vec<String> = sqlx::query_scalar(&sql)
        .fetch_all(db.pool())
        .await
        .expect("days");
    // Rows whose counters all cancelled out carry no information.
    rows.retain(|r| {
        !r.split('=')
            .nth(1)
            .is_some_and(|v| v.split(',').all(|n| n == "0"))
    });
    rows.sort();
    rows
}
