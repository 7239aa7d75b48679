//! A closed period's figures never move: a report of a closed period equals the report
//! computed from the events recorded up to the period's end. The scenario builds January and
//! February 2026, reads them after February has ended, records the rest of the same dossiers'
//! histories (digitisations, payments, resolutions, returns after the end), reads them again,
//! and after a `projector rebuild` once more: every figure equal, on SQLite and PostgreSQL.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use common::{load_where, on_every_backend, oracle, project, shown};
use motcua_domain::time::{Instant, from_timestamp};
use motcua_feed::ReaderDb;
use motcua_projector::generate::{GenerateOptions, Generator, History};
use motcua_projector::replay::{ReplayOptions, replay};
use motcua_projector::{Figures, Tables};
use motcua_projector::{Period, RatesProjector, ReadModel, ReportQuery, ScopeKind, generations};
use tokio_util::sync::CancellationToken;

fn recorded(event: &motcua_proto::v1::DossierEvent) -> Instant {
    event
        .recorded_at
        .as_ref()
        .and_then(from_timestamp)
        .expect("time")
}

/// The closed periods read before and after the later events, for the province and for
/// every receiving unit, and by channel.
fn queries(histories: &[History]) -> Vec<ReportQuery> {
    let mut scopes = BTreeSet::from([(ScopeKind::Province.key(), String::new())]);
    for h in histories {
        let s = motcua_domain::lifecycle::DossierState::fold([&h.events[0]])
            .expect("folds")
            .expect("created");
        scopes.insert((
            ScopeKind::ReceivingUnit.key(),
            s.units.receiving_unit.clone(),
        ));
        scopes.insert((ScopeKind::Procedure.key(), s.procedure.code.clone()));
    }
    let mut queries = Vec::new();
    for (key, id) in scopes {
        let scope = [
            ScopeKind::Province,
            ScopeKind::ReceivingUnit,
            ScopeKind::Procedure,
        ]
        .into_iter()
        .find(|s| s.key() == key)
        .expect("a scope");
        for period in ["2026-01", "2026-02", "2026-02-16", "2026-01-10..2026-02-20"] {
            for channel in [None, Some(1), Some(2)] {
                queries.push(ReportQuery {
                    scope,
                    scope_id: id.clone(),
                    channel,
                    period: Period::parse(period).expect("a period"),
                });
            }
        }
    }
    queries
}

async fn read_all(
    model: &ReadModel,
    tables: &Tables,
    queries: &[ReportQuery],
    now: Instant,
) -> Vec<Figures> {
    let mut all = Vec::new();
    for query in queries {
        let report = model.report_in(tables, query, now).await.expect("a report");
        assert!(report.closed, "{} is over at {now}", query.period);
        all.push(report.figures);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_periods_figures_never_move() {
    let mut generator = Generator::new(GenerateOptions {
        seed: 20240401,
        dossiers: 600,
        first_day: chrono::NaiveDate::from_ymd_opt(2026, 1, 5).expect("date"),
        days: 70,
        ..GenerateOptions::default()
    });
    let histories = generator.histories();
    let calendar = Arc::new(generator.calendar().clone());
    // 1 March 2026 00:00 Vietnam time: February's end.
    let cut = motcua_domain::time::vietnam()
        .with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
        .single()
        .expect("a time")
        .with_timezone(&Utc);

    // The later events must touch the dossiers of the closed periods, with every kind of
    // step that used to move a closed figure.
    let mut later = BTreeSet::new();
    let mut touched = 0;
    for h in &histories {
        if recorded(&h.events[0]) < cut && h.events.iter().any(|e| recorded(e) >= cut) {
            touched += 1;
            for e in h.events.iter().filter(|e| recorded(e) >= cut) {
                later.insert(motcua_domain::lifecycle::event_type_name(
                    e.payload.as_ref().expect("payload"),
                ));
            }
        }
    }
    assert!(touched >= 50, "only {touched} dossiers go on after the cut");
    for kind in [
        "digitized",
        "payment_recorded",
        "resolved",
        "result_returned",
    ] {
        assert!(later.contains(kind), "no {kind} after the cut: {later:?}");
    }

    let queries = queries(&histories);
    on_every_backend(|env| {
        let calendar = Arc::clone(&calendar);
        let (histories, queries) = (&histories, &queries);
        async move {
            let db = ReaderDb::connect(&env.reader_url).await.expect("reader db");
            let tables = generations::ensure_active(&db).await.expect("generation 1");
            let model = ReadModel::new(db.clone());

            // Read on 1 March, from the events recorded by the end of February.
            load_where(&env.store, histories, |t| t < cut).await;
            project(
                &env.store,
                &db,
                RatesProjector::new(tables.clone(), Arc::clone(&calendar)),
            )
            .await;
            let first = read_all(&model, &tables, queries, cut + Duration::hours(9)).await;
            // Those figures are the definition's: a fold of the events before each end.
            for (query, figures) in queries.iter().zip(&first).step_by(7) {
                let report = model
                    .report_in(&tables, query, cut + Duration::hours(9))
                    .await
                    .expect("a report");
                assert_eq!(&report.figures, figures);
                assert_eq!(
                    shown(&report),
                    oracle(
                        &calendar,
                        histories,
                        query,
                        query.period.start(),
                        query.period.end()
                    ),
                    "{}: {:?} {} {}",
                    env.backend,
                    query.scope,
                    query.scope_id,
                    query.period
                );
            }

            // Months later, after every later event of the same dossiers.
            load_where(&env.store, histories, |t| t >= cut).await;
            project(
                &env.store,
                &db,
                RatesProjector::new(tables.clone(), Arc::clone(&calendar)),
            )
            .await;
            let later = Utc.with_ymd_and_hms(2026, 9, 15, 3, 0, 0).unwrap();
            let again = read_all(&model, &tables, queries, later).await;
            for ((query, before), after) in queries.iter().zip(&first).zip(&again) {
                assert_eq!(
                    before, after,
                    "{}: {:?} {} channel {:?} {} moved after its end",
                    env.backend, query.scope, query.scope_id, query.channel, query.period
                );
            }

            // A rebuild from the store gives the same closed figures.
            let rebuilt = generations::begin_rebuild(&db).await.expect("generation 2");
            let replayer =
                RatesProjector::new(rebuilt.clone(), Arc::clone(&calendar)).without_outbox();
            replay(
                &replayer,
                &db,
                Arc::clone(&env.store),
                &ReplayOptions::default(),
                |_| {},
                &CancellationToken::new(),
            )
            .await
            .expect("the rebuild");
            generations::activate(&db, rebuilt.generation)
                .await
                .expect("switch");
            let rebuilt_figures = read_all(&model, &rebuilt, queries, later).await;
            for ((query, before), after) in queries.iter().zip(&first).zip(&rebuilt_figures) {
                assert_eq!(
                    before, after,
                    "{}: {:?} {} {} differs after a rebuild",
                    env.backend, query.scope, query.scope_id, query.period
                );
            }
            db.close().await;
        }
    })
    .await;
}
