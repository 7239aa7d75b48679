//! The deadline watcher (issue 5) against the real intake on TCP and the embedded store, with
//! the manual clock: `late` exactly once per due date, stamped with the due instant, across
//! weekends, holidays, lunch breaks and after-hours acceptance; the pause and restart rules;
//! an extension; two watchers at once; a crash between recording and settling; and a catch-up
//! after a week of downtime. The watcher's own database is SQLite, and PostgreSQL too where the
//! scenario says so (`DATABASE_URL`, provided by `scripts/test-env.sh`).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use motcua_deadlines::schema::{self, READER_NAME};
use motcua_deadlines::{DeadlineReader, TickReport, Watcher, WatcherOptions};
use motcua_domain::calendar::{HolidayTable, WorkingCalendar, WorkingTimeProfile};
use motcua_domain::catalog::ProcedureCatalogue;
use motcua_domain::time::Instant;
use motcua_feed::{ReaderDb, ReaderRunner, SqlTableFeed};
use motcua_intake::CommandHandler;
use motcua_intake::clock::Clock;
use motcua_proto::v1 as pb;
use motcua_store::EventStore;
use motcua_tests::*;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Executor};
use tokio_util::sync::CancellationToken;

/// One working day, the default warning lead.
const LEAD: i64 = 8 * 3600;

/// The app, and a watcher on it with its own database.
struct Rig {
    app: TestApp,
    db: ReaderDb,
    watcher: Watcher,
    calendar: Arc<WorkingCalendar>,
    _dir: tempfile::TempDir,
}

fn calendar() -> Arc<WorkingCalendar> {
    Arc::new(WorkingCalendar::new(
        WorkingTimeProfile::standard(),
        HolidayTable::builtin(),
    ))
}

/// A fresh PostgreSQL database, or `None` without `DATABASE_URL`.
async fn postgres_url(name: &str) -> Option<String> {
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            assert!(
                std::env::var("MOTCUA_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "MOTCUA_REQUIRE_POSTGRES=1 but no DATABASE_URL"
            );
            eprintln!("skipping the PostgreSQL run: DATABASE_URL is not set");
            return None;
        }
    };
    let admin = PgConnectOptions::from_str(&url).expect("a PostgreSQL URL");
    let mut conn = admin.connect().await.expect("connects");
    let database = format!("{name}_{}", uuid::Uuid::new_v4().simple());
    conn.execute(format!("CREATE DATABASE {database}").as_str())
        .await
        .expect("a fresh database");
    Some(admin.database(&database).to_url_lossy().to_string())
}

impl Rig {
    /// A rig whose watcher database is SQLite, or the PostgreSQL database at `reader_url`.
    async fn new(app: TestApp, reader_url: Option<String>) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = reader_url.unwrap_or_else(|| {
            format!(
                "sqlite://{}",
                dir.path().join("deadlines.sqlite3").display()
            )
        });
        let db = ReaderDb::connect(&url)
            .await
            .expect("the watcher's database");
        schema::prepare(&db).await.expect("its table");
        let calendar = calendar();
        let watcher = Self::watcher_on(&app, &db, &calendar);
        Self {
            app,
            db,
            watcher,
            calendar,
            _dir: dir,
        }
    }

    /// Another watcher process on `db`: its own write path, the same store and clock.
    fn watcher_on(app: &TestApp, db: &ReaderDb, calendar: &Arc<WorkingCalendar>) -> Watcher {
        let handler = CommandHandler::new(
            app.store.clone() as Arc<dyn EventStore>,
            Arc::clone(calendar),
            Arc::new(ProcedureCatalogue::sample()),
            app.clock.clone() as Arc<dyn Clock>,
        );
        Watcher::new(
            db.clone(),
            handler,
            WatcherOptions {
                page: 50,
                concurrency: 8,
                ..WatcherOptions::default()
            },
        )
    }

    /// Lets the watcher's reader apply every event in the store.
    async fn sync_db(&self, db: &ReaderDb) {
        let head = self.app.store.head_position().await.expect("head") as i64;
        let stop = CancellationToken::new();
        let runner = ReaderRunner::new(
            SqlTableFeed::new(self.app.store.clone() as Arc<dyn EventStore>)
                .poll_interval(StdDuration::from_millis(10)),
            DeadlineReader::new(Arc::clone(&self.calendar), LEAD),
            db.clone(),
        );
        let task = tokio::spawn(runner.run(stop.clone()));
        let deadline = std::time::Instant::now() + StdDuration::from_secs(30);
        while motcua_feed::load_position(db, READER_NAME, "sql", 0)
            .await
            .expect("position")
            .unwrap_or(0)
            < head
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the reader did not catch up"
            );
            tokio::time::sleep(StdDuration::from_millis(10)).await;
        }
        stop.cancel();
        task.await
            .expect("joins")
            .expect("the reader stops cleanly");
    }

    /// Catches the reader up, then one tick at the clock's time.
    async fn tick(&self) -> TickReport {
        self.sync_db(&self.db).await;
        let report = self.watcher.tick().await.expect("a tick");
        // What it appended reaches its table too.
        self.sync_db(&self.db).await;
        report
    }

    /// The `late` events of a dossier, with their recording times.
    async fn lates(&self, id: &str) -> Vec<(pb::Late, Instant)> {
        self.app
            .dossier_events(id)
            .await
            .into_iter()
            .filter_map(|e| match e.payload {
                Some(pb::dossier_event::Payload::Late(late)) => {
                    Some((late, time_of(&e.recorded_at)))
                }
                _ => None,
            })
            .collect()
    }

    async fn due_soons(&self, id: &str) -> usize {
        self.app
            .dossier_events(id)
            .await
            .into_iter()
            .filter(|e| matches!(e.payload, Some(pb::dossier_event::Payload::DueSoon(_))))
            .count()
    }

    /// Receives a dossier of `procedure` at `at`; returns its id and due date.
    async fn receive_at(&self, at: Instant, procedure: &str) -> (String, Instant) {
        self.app.set_time(at);
        let response = self.app.receive(procedure).await;
        let received = expect_payload!(only_event(&response), Received);
        let due = time_of(&received.due_at);
        (response.dossier_id, due)
    }

    /// Checks that nothing is late at `due` itself and the `late` comes one second after,
    /// stamped with `due`, recorded by the watcher at the server's time, once.
    async fn assert_late_just_after(&self, id: &str, due: Instant) {
        self.app.set_time(due);
        self.tick().await;
        assert!(
            self.lates(id).await.is_empty(),
            "late at its due instant {due}"
        );
        let noticed = due + Duration::seconds(1);
        self.app.set_time(noticed);
        let report = self.tick().await;
        assert_eq!(report.late_recorded, 1, "{report:?}");
        let lates = self.lates(id).await;
        assert_eq!(lates.len(), 1);
        let (late, recorded_at) = &lates[0];
        assert_eq!(time_of(&late.due_at), due);
        assert_eq!(
            time_of(&late.became_late_at),
            due,
            "stamped with the due instant"
        );
        assert_eq!(*recorded_at, noticed, "recorded at the server's time");
        let events = self.app.dossier_events(id).await;
        let actor = events
            .last()
            .and_then(|e| e.actor.clone())
            .expect("an actor");
        assert_eq!(actor.kind, "system:deadline-watcher");
        // Later ticks add nothing.
        self.app.set_time(noticed + Duration::days(3));
        assert_eq!(self.tick().await, TickReport::default());
        assert_eq!(self.lates(id).await.len(), 1);
    }
}

async fn rig() -> Rig {
    Rig::new(spawn_app().await, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn friday_afternoon_acceptance_is_warned_then_late_after_monday_16_30() {
    let rig = rig().await;
    // Friday 8 March 2024 16:30, 1 working day: due Monday 11 March 16:30.
    let (id, due) = rig.receive_at(vn(2024, 3, 8, 16, 30), P_ONE_DAY).await;
    assert_eq!(due, vn(2024, 3, 11, 16, 30));
    // One working day before Monday 16:30 is Friday 16:30 itself: warned at once.
    rig.app.set_time(vn(2024, 3, 8, 16, 31));
    let report = rig.tick().await;
    assert_eq!(report.due_soon_recorded, 1, "{report:?}");
    assert_eq!(rig.due_soons(&id).await, 1);
    // The weekend passes: nothing.
    rig.app.set_time(vn(2024, 3, 10, 12, 0));
    assert_eq!(rig.tick().await, TickReport::default());
    rig.assert_late_just_after(&id, due).await;
    assert_eq!(rig.due_soons(&id).await, 1, "one warning per due date");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_hours_lunch_and_tet_acceptances_are_late_after_their_due_dates() {
    let rig = rig().await;
    // Friday 17:30: counts from Monday 07:00; one working day: Monday 17:00.
    let (after_hours, due) = rig.receive_at(vn(2024, 3, 8, 17, 30), P_ONE_DAY).await;
    assert_eq!(due, vn(2024, 3, 11, 17, 0));
    rig.assert_late_just_after(&after_hours, due).await;

    // Tuesday 12:00 (lunch): counts from 13:30; 4 working hours: Wednesday 07:30.
    let (lunch, due) = rig.receive_at(vn(2024, 3, 19, 12, 0), P_FOUR_HOURS).await;
    assert_eq!(due, vn(2024, 3, 20, 7, 30));
    rig.assert_late_just_after(&lunch, due).await;

    // Friday 9 February 2024, during Tết (closed 8-14 February): 4 working hours from
    // Thursday 15 February 07:00: 11:00. Not late during the holiday.
    let (tet, due) = rig.receive_at(vn(2024, 2, 9, 10, 0), P_FOUR_HOURS).await;
    assert_eq!(due, vn(2024, 2, 15, 11, 0));
    rig.app.set_time(vn(2024, 2, 14, 16, 0));
    rig.tick().await;
    assert!(rig.lates(&tet).await.is_empty());
    rig.assert_late_just_after(&tet, due).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_late_while_the_clock_is_paused_and_then_after_the_moved_due_date() {
    let rig = rig().await;
    // Monday 4 March 2024 09:00, 1 working day (pause rule): due Tuesday 09:00.
    let (id, due) = rig.receive_at(vn(2024, 3, 4, 9, 0), P_ONE_DAY).await;
    assert_eq!(due, vn(2024, 3, 5, 9, 0));
    rig.app.set_time(vn(2024, 3, 4, 10, 0));
    rig.app.ok(Cmd::RequestSupplement, &id).await;
    // Days pass while the applicant supplements: no late.
    rig.app.set_time(vn(2024, 3, 7, 9, 0));
    rig.tick().await;
    assert!(
        rig.lates(&id).await.is_empty(),
        "late while waiting for a supplement"
    );
    let received = rig.app.ok(Cmd::ReceiveSupplement, &id).await;
    let receipt = expect_payload!(only_event(&received), SupplementReceived);
    let moved = time_of(&receipt.due_after);
    assert!(moved > due, "the pause moves the due date");
    // Not late at the old due date's time of day, nor at the new due instant; just after it.
    rig.assert_late_just_after(&id, moved).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_restart_rule_the_new_due_date_replaces_the_old_one() {
    let rig = rig().await;
    // 3 working days at the counter, restart rule.
    let (id, due) = rig.receive_at(vn(2024, 3, 4, 9, 0), P_RESTART).await;
    rig.app.set_time(vn(2024, 3, 5, 9, 0));
    rig.app.ok(Cmd::RequestSupplement, &id).await;
    rig.app.set_time(vn(2024, 3, 7, 9, 0));
    let received = rig.app.ok(Cmd::ReceiveSupplement, &id).await;
    let receipt = expect_payload!(only_event(&received), SupplementReceived);
    let restarted = time_of(&receipt.due_after);
    assert!(restarted > due);
    // The old due date passes: nothing.
    rig.app.set_time(due + Duration::hours(1));
    rig.tick().await;
    assert!(
        rig.lates(&id).await.is_empty(),
        "late against the replaced due date"
    );
    rig.assert_late_just_after(&id, restarted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extension_is_recorded_but_late_is_still_judged_at_the_scoring_due_date() {
    let rig = rig().await;
    let (id, due) = rig.receive_at(vn(2024, 3, 4, 9, 0), P_TEN_DAYS).await;
    rig.app.set_time(vn(2024, 3, 6, 9, 0));
    // The apology with a new appointment 30 days later.
    rig.app.ok(Cmd::ExtendDueDate, &id).await;
    rig.assert_late_just_after(&id, due).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_and_supplementing_dossiers_are_never_late() {
    let rig = rig().await;
    let (resolved, due) = rig.receive_at(vn(2024, 3, 4, 9, 0), P_ONE_DAY).await;
    let (withdrawn, _) = rig.receive_at(vn(2024, 3, 4, 9, 5), P_ONE_DAY).await;
    rig.app.set_time(vn(2024, 3, 4, 15, 0));
    rig.app.ok(Cmd::Resolve, &resolved).await;
    rig.app.ok(Cmd::Withdraw, &withdrawn).await;
    rig.app.set_time(due + Duration::days(10));
    rig.tick().await;
    assert!(rig.lates(&resolved).await.is_empty());
    assert!(rig.lates(&withdrawn).await.is_empty());
    // Ended dossiers leave the watcher's table: it holds open dossiers only.
    let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deadline_dossiers")
        .fetch_one(rig.db.pool())
        .await
        .expect("count");
    assert_eq!(held, 0);
}

/// The watcher's write path keeps the states it wrote, and reads a page's states in one query
/// before acting on them; neither is trusted. A dossier resolved through the intake after the
/// watcher last wrote it, before its table heard of the resolution, gets no `late`: the append
/// meets a newer version, and the fresh read says the dossier ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_the_watcher_holds_from_before_a_resolution_is_not_trusted() {
    let rig = rig().await;
    let (id, due) = rig.receive_at(vn(2024, 3, 4, 9, 0), P_ONE_DAY).await;
    rig.app.set_time(vn(2024, 3, 4, 9, 1));
    let warned = rig.tick().await;
    assert_eq!(warned.due_soon_recorded, 1, "{warned:?}");
    rig.app.set_time(due - Duration::minutes(1));
    rig.app.ok(Cmd::Resolve, &id).await;
    rig.app.set_time(due + Duration::minutes(5));
    // No reader sync first: the watcher's table still has the dossier open and due.
    let report = rig.watcher.tick().await.expect("a tick");
    assert_eq!(report.late_recorded, 0, "{report:?}");
    assert_eq!(report.stale, 1, "{report:?}");
    assert!(rig.lates(&id).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_watchers_at_once_record_one_late_per_due_date() {
    let rig = rig().await;
    let mut dossiers = Vec::new();
    for minute in 0..20 {
        dossiers.push(rig.receive_at(vn(2024, 3, 4, 9, minute), P_ONE_DAY).await);
    }
    // A second watcher process: its own database and its own write path.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let other_db = ReaderDb::connect(&format!(
        "sqlite://{}",
        dir.path().join("other.sqlite3").display()
    ))
    .await
    .expect("db");
    schema::prepare(&other_db).await.expect("table");
    let other = Rig::watcher_on(&rig.app, &other_db, &rig.calendar);
    rig.app.set_time(vn(2024, 3, 6, 9, 0));
    rig.sync_db(&rig.db).await;
    rig.sync_db(&other_db).await;
    let (a, b) = tokio::join!(rig.watcher.tick(), other.tick());
    let (a, b) = (a.expect("tick"), b.expect("tick"));
    // Both found every timer past (the warning's, turned into `late` after the due date);
    // the store recorded each `late` once.
    assert_eq!(a.handled(), 20, "{a:?}");
    assert_eq!(b.handled(), 20, "{b:?}");
    assert_eq!(a.late_recorded + b.late_recorded, 20, "{a:?} {b:?}");
    for (id, due) in &dossiers {
        let lates = rig.lates(id).await;
        assert_eq!(lates.len(), 1, "{id}: {} late events", lates.len());
        assert_eq!(time_of(&lates[0].0.became_late_at), *due);
        assert!(rig.due_soons(id).await <= 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_recording_and_settling_records_nothing_twice() {
    let rig = rig().await;
    let (id, due) = rig.receive_at(vn(2024, 3, 4, 9, 0), P_ONE_DAY).await;
    rig.app.set_time(vn(2024, 3, 4, 9, 1));
    rig.tick().await; // the warning
    rig.app.set_time(due + Duration::minutes(5));
    rig.sync_db(&rig.db).await;
    let before: Vec<(String, Option<i64>)> =
        sqlx::query_as("SELECT dossier_id, fire_at FROM deadline_dossiers")
            .fetch_all(rig.db.pool())
            .await
            .expect("rows");
    assert_eq!(rig.watcher.tick().await.expect("tick").late_recorded, 1);
    // The crash: the timer row as it was before the watcher settled it, and the feed not yet
    // past the `late` (the reader's table is the one before the tick).
    for (dossier, fire_at) in &before {
        sqlx::query("UPDATE deadline_dossiers SET fire_at = $1 WHERE dossier_id = $2")
            .bind(*fire_at)
            .bind(dossier.as_str())
            .execute(rig.db.pool())
            .await
            .expect("restore");
    }
    let again = rig.watcher.tick().await.expect("tick after the restart");
    assert_eq!(again.late_recorded, 0, "{again:?}");
    assert_eq!(again.already_recorded + again.stale, 1, "{again:?}");
    assert_eq!(rig.lates(&id).await.len(), 1);
}

/// Hundreds of dossiers fall due while the watcher is down for a week: one tick records every
/// `late`, each stamped with its own due instant, none twice, and no warning after a due date.
async fn catch_up_after_a_week_of_downtime(reader_url: Option<String>) {
    let rig = Rig::new(spawn_app().await, reader_url).await;
    let mut dossiers = Vec::new();
    for i in 0..240u32 {
        let at = vn(2024, 3, 4, 7 + i / 60 % 4, i % 60);
        let procedure = [P_ONE_DAY, P_FOUR_HOURS, P_TEN_DAYS][i as usize % 3];
        dossiers.push(rig.receive_at(at, procedure).await);
    }
    // Ten working days from Monday 4 March at the latest 10:59: Monday 18 March; a week
    // after that the watcher comes back.
    rig.app.set_time(vn(2024, 3, 25, 9, 0));
    let report = rig.tick().await;
    assert_eq!(report.late_recorded, 240, "{report:?}");
    assert_eq!(
        report.due_soon_recorded, 0,
        "no warning after the due date: {report:?}"
    );
    assert_eq!(report.failed, 0);
    for (id, due) in &dossiers {
        let lates = rig.lates(id).await;
        assert_eq!(lates.len(), 1, "{id}");
        assert_eq!(time_of(&lates[0].0.became_late_at), *due, "{id}");
    }
    assert_eq!(rig.tick().await, TickReport::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_after_a_week_of_downtime_on_sqlite() {
    catch_up_after_a_week_of_downtime(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_after_a_week_of_downtime_on_postgres() {
    if let Some(url) = postgres_url("motcua_deadlines").await {
        catch_up_after_a_week_of_downtime(Some(url)).await;
    }
}
