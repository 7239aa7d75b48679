//! Fixtures for the store scenario, and one runner per backend: each gives a scenario a fresh,
//! empty store of its own and cleans up after it.

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use motcua_store::postgres::PostgresStore;
use motcua_store::sqlite::SqliteStore;
use motcua_store::{AppendRequest, DossierRow, EventStore, NewEvent, PersonalData};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Executor, PgConnection};

/// Runs a scenario against a fresh SQLite store in a temporary directory.
pub async fn run_sqlite<F, Fut>(scenario: F)
where
    F: FnOnce(Arc<dyn EventStore>) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("a temporary directory for the SQLite store");
    let store = SqliteStore::open(&dir.path().join("events.sqlite3"))
        .await
        .expect("the SQLite store opens");
    scenario(Arc::new(store)).await;
}

/// The PostgreSQL server to test against, from `DATABASE_URL`. Without it the PostgreSQL
/// tests are skipped, unless `MOTCUA_REQUIRE_POSTGRES=1` says they must run (CI, and
/// `scripts/test-env.sh`): then they fail.
fn postgres_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            let required = std::env::var("MOTCUA_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "MOTCUA_REQUIRE_POSTGRES=1 but DATABASE_URL is not set: run the tests through \
                 `scripts/test-env.sh -- cargo test`, or set DATABASE_URL to a PostgreSQL server \
                 whose user may create databases"
            );
            eprintln!(
                "skipping a PostgreSQL store test: DATABASE_URL is not set (run through \
                 scripts/test-env.sh, or set MOTCUA_REQUIRE_POSTGRES=1 to make this an error)"
            );
            None
        }
    }
}

/// A database of its own for one test, on the `DATABASE_URL` server.
#[derive(Debug)]
pub struct TestDatabase {
    admin: PgConnection,
    name: String,
    /// How to connect to it.
    pub options: PgConnectOptions,
}

impl TestDatabase {
    /// Creates a fresh database, or `None` when PostgreSQL tests are skipped.
    pub async fn create() -> Option<Self> {
        let url = postgres_url()?;
        let admin_options =
            PgConnectOptions::from_str(&url).expect("DATABASE_URL is a PostgreSQL URL");
        let mut admin = admin_options
            .connect()
            .await
            .expect("connect to the DATABASE_URL server");
        let name = format!("motcua_test_{}", uuid::Uuid::new_v4().simple());
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create a test database (the DATABASE_URL user needs CREATEDB)");
        let options = admin_options.database(&name);
        Some(Self {
            admin,
            name,
            options,
        })
    }

    /// Drops the database, disconnecting whoever is still connected.
    pub async fn drop(mut self) {
        self.admin
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
            .await
            .expect("drop the test database");
    }
}

/// Runs a scenario against a fresh PostgreSQL store in a database of its own (created on the
/// `DATABASE_URL` server, dropped afterwards, also when the scenario fails).
pub async fn run_postgres<F, Fut>(scenario: F)
where
    F: FnOnce(Arc<dyn EventStore>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let store = PostgresStore::connect_with(database.options.clone())
        .await
        .expect("the PostgreSQL store connects and migrates");
    let store = Arc::new(store);
    let outcome = tokio::spawn(scenario(store.clone())).await;
    store.close().await;
    drop(store);
    database.drop().await;
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("the scenario task did not finish: {error}"),
        }
    }
}

/// A fixed instant plus some seconds, whole microseconds (what both backends keep).
pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 3, 8, 0, 0)
        .single()
        .expect("a valid fixed instant")
        + Duration::seconds(seconds)
}

pub fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 3, d).expect("a valid day in March 2025")
}

/// A dossier summary: received (status 1) at the first unit, not yet open.
pub fn row(dossier_id: &str) -> DossierRow {
    DossierRow {
        dossier_id: dossier_id.to_owned(),
        version: 0,
        status: 1,
        channel: 1,
        procedure_code: "1.001234".to_owned(),
        receiving_unit: "UBND-XA-01".to_owned(),
        competent_authority: "SO-TP".to_owned(),
        due_at: None,
        open: false,
        updated_at: at(0),
    }
}

/// `count` events continuing a dossier from `expected_version`, with distinct ids and payloads
/// tied to the request id, so events of different requests differ.
pub fn events(
    dossier_id: &str,
    request_id: &str,
    expected_version: u64,
    count: u64,
) -> Vec<NewEvent> {
    (1..=count)
        .map(|offset| {
            let seq = expected_version + offset;
            NewEvent {
                event_id: format!("{dossier_id}/{seq}/{request_id}"),
                seq,
                event_type: if seq == 1 { "received" } else { "progressed" }.to_owned(),
                recorded_at: at(i64::try_from(seq).expect("a small seq") * 60),
                payload: format!("payload {dossier_id} {seq} {request_id}").into_bytes(),
            }
        })
        .collect()
}

/// An append of `count` events with the default summary and a fingerprint derived from the
/// request id.
pub fn append(
    dossier_id: &str,
    request_id: &str,
    expected_version: u64,
    count: u64,
) -> AppendRequest {
    let mut summary = row(dossier_id);
    summary.version = expected_version + count;
    AppendRequest {
        dossier_id: dossier_id.to_owned(),
        expected_version,
        request_id: request_id.to_owned(),
        fingerprint: format!("fingerprint of {request_id}").into_bytes(),
        events: events(dossier_id, request_id, expected_version, count),
        row: summary,
        personal_data: None,
        claimed_number: None,
    }
}

pub fn applicant() -> PersonalData {
    PersonalData {
        applicant_name: "Nguyễn Thị Minh Khai".to_owned(),
        identity_number: "079190001234".to_owned(),
        phone: "0903123456".to_owned(),
    }
}
