//! The relay against the real broker and real PostgreSQL of `scripts/test-env.sh`: every event
//! reaches the topic, each dossier's in seq order; an abrupt stop repeats, never skips; one
//! relay publishes at a time and another takes over; a lost lease or database stops and
//! resumes publishing. Each test has a database and a topic of its own.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{
    TestDatabase, create_topic, environment, init_logs, load, read_topic, relay_config, verify,
    wait_for_checkpoint,
};
use motcua_relay::{Relay, RelayRole, RelayStatus};
use motcua_store::sqlite::SqliteStore;
use motcua_store::{Checkpoints, EventStore, StoredEvent};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// How long a test waits for the relay to catch up.
const CATCH_UP: Duration = Duration::from_secs(180);

/// A relay running in a task, stoppable gracefully or abruptly.
struct Running {
    status: watch::Receiver<RelayStatus>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), motcua_relay::RelayError>>,
}

fn spawn_relay(
    store: Arc<dyn EventStore>,
    checkpoints: Arc<dyn Checkpoints>,
    config: motcua_relay::RelayConfig,
) -> Running {
    let relay = Relay::new(store, checkpoints, config);
    let status = relay.status();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(relay.run(async {
        let _ = stopped.await;
    }));
    Running {
        status,
        stop: Some(stop),
        task,
    }
}

impl Running {
    /// Asks the relay to stop and waits for it.
    async fn stop(mut self) -> RelayStatus {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task
            .await
            .expect("the relay task")
            .expect("the relay stops cleanly");
        let status = self.status.borrow().clone();
        assert_eq!(status.role, RelayRole::Stopped);
        status
    }

    /// Stops the relay abruptly: the task is dropped wherever it is, nothing more is saved.
    async fn crash(self) -> RelayStatus {
        self.task.abort();
        let _ = self.task.await;
        self.status.borrow().clone()
    }
}

async fn all_events(store: &dyn EventStore) -> Vec<StoredEvent> {
    store.events_after(0, u32::MAX).await.expect("read events")
}

/// 10,000 events appended while the relay runs: all of them on the topic once, each dossier's
/// in seq order in one partition, and the checkpoint at the head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_every_event_in_order() {
    init_logs();
    let Some((brokers, url)) = environment() else {
        return;
    };
    let database = TestDatabase::create(&url).await;
    let store = database.store().await;
    let topic = common::unique_topic("relay-all");
    create_topic(&brokers, &topic, 12).await;
    let config = relay_config(&brokers, &topic);
    let name = config.name.clone();
    let mut relay = spawn_relay(store.clone(), store.clone(), config);

    // 500 dossiers, 4 rounds of 5 events each: every dossier's 20 events spread over the load.
    load(store.clone(), 500, 4, 5, 4).await;
    let head = store.head_position().await.expect("head");
    assert_eq!(head, 10_000);
    wait_for_checkpoint(&mut relay.status, head, CATCH_UP).await;
    let status = relay.stop().await;
    assert_eq!((status.head, status.lag), (head, 0));
    assert!(status.published >= head);
    assert_eq!(status.delivery_failures, 0);
    assert_eq!(store.load(&name).await.expect("checkpoint"), head);

    let stored = all_events(&*store).await;
    let received = read_topic(&brokers, &topic, stored.len()).await;
    let verdict = verify(&received, &stored);
    assert_eq!(verdict.records, 10_000, "every event exactly once");
    assert_eq!(verdict.duplicates, 0);
    database.drop().await;
}

/// The relay is stopped abruptly mid-load (its task dropped: no drain, no last save) and
/// started again on a fresh connection: nothing is missing, and what is repeated is only
/// repeated (dossier, seq).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_after_an_abrupt_stop() {
    init_logs();
    let Some((brokers, url)) = environment() else {
        return;
    };
    let database = TestDatabase::create(&url).await;
    let store = database.store().await;
    let topic = common::unique_topic("relay-crash");
    create_topic(&brokers, &topic, 12).await;
    let config = relay_config(&brokers, &topic);

    let loader = tokio::spawn(load(store.clone(), 500, 4, 5, 4));
    let mut first = spawn_relay(store.clone(), store.clone(), config.clone());
    first
        .status
        .wait_for(|s| s.published >= 2_000)
        .await
        .expect("the first relay publishes");
    let crashed = first.crash().await;
    eprintln!("stopped abruptly at {crashed:?}");
    assert!(!loader.is_finished(), "the load should still be running");

    // A new process would start with a new connection pool.
    let restarted = database.store().await;
    let mut second = spawn_relay(restarted.clone(), restarted.clone(), config);
    loader.await.expect("the load");
    let head = store.head_position().await.expect("head");
    assert_eq!(head, 10_000);
    wait_for_checkpoint(&mut second.status, head, CATCH_UP).await;
    second.stop().await;

    let stored = all_events(&*store).await;
    let received = read_topic(&brokers, &topic, stored.len()).await;
    let verdict = verify(&received, &stored);
    eprintln!(
        "{} records for {} events: {} republished after the stop",
        verdict.records,
        stored.len(),
        verdict.duplicates
    );
    assert_eq!(verdict.records, stored.len() + verdict.duplicates);
    database.drop().await;
}

/// Two relays started at once: one publishes, the other waits; when the first dies, the
/// second takes over from the checkpoint and publishes the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_relay_publishes_and_another_takes_over() {
    init_logs();
    let Some((brokers, url)) = environment() else {
        return;
    };
    let database = TestDatabase::create(&url).await;
    let topic = common::unique_topic("relay-pair");
    create_topic(&brokers, &topic, 12).await;
    let config = relay_config(&brokers, &topic);
    // Two processes: two stores, two pools.
    let (store_a, store_b) = (database.store().await, database.store().await);
    let a = spawn_relay(store_a.clone(), store_a.clone(), config.clone());
    let b = spawn_relay(store_b.clone(), store_b.clone(), config);

    let roles = |a: &Running, b: &Running| (a.status.borrow().role, b.status.borrow().role);
    let mut waited = 0;
    while roles(&a, &b) != (RelayRole::Active, RelayRole::Standby)
        && roles(&a, &b) != (RelayRole::Standby, RelayRole::Active)
    {
        waited += 1;
        assert!(waited < 200, "no single active relay: {:?}", roles(&a, &b));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (mut active, mut standby) = if a.status.borrow().role == RelayRole::Active {
        (a, b)
    } else {
        (b, a)
    };

    load(store_a.clone(), 200, 2, 5, 4).await;
    let head = store_a.head_position().await.expect("head");
    wait_for_checkpoint(&mut active.status, head, CATCH_UP).await;
    let waiting = standby.status.borrow().clone();
    assert_eq!(waiting.role, RelayRole::Standby);
    assert_eq!(waiting.published, 0, "the standby published: {waiting:?}");
    assert_eq!(waiting.leases_taken, 0);

    // The active relay dies; the standby takes the lease and publishes what comes next.
    let first = active.crash().await;
    assert!(first.published >= head);
    load(store_b.clone(), 200, 4, 5, 4).await;
    let head = store_b.head_position().await.expect("head");
    assert_eq!(head, 4_000);
    let took_over = wait_for_checkpoint(&mut standby.status, head, CATCH_UP).await;
    assert_eq!(took_over.role, RelayRole::Active);
    assert_eq!(took_over.leases_taken, 1);
    assert!(took_over.published >= 2_000);
    standby.stop().await;

    let stored = all_events(&*store_b).await;
    let received = read_topic(&brokers, &topic, stored.len()).await;
    let verdict = verify(&received, &stored);
    assert_eq!(verdict.records, stored.len() + verdict.duplicates);
    database.drop().await;
}

/// The database drops the lease's session mid-load (as a restart or an administrator would):
/// the relay notices before its next batch, stops publishing, takes the lease again and goes
/// on. Then every session of the database is dropped, the store's pool included: the relay
/// backs off and resumes. Nothing is lost or reordered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_lease_and_database_are_survived() {
    init_logs();
    let Some((brokers, url)) = environment() else {
        return;
    };
    let mut database = TestDatabase::create(&url).await;
    let store = database.store().await;
    let topic = common::unique_topic("relay-lease");
    create_topic(&brokers, &topic, 12).await;
    let mut config = relay_config(&brokers, &topic);
    // Small batches, so the lease is checked often during the load.
    config.batch_size = 200;
    let mut relay = spawn_relay(store.clone(), store.clone(), config);
    let loader = tokio::spawn(load(store.clone(), 400, 5, 5, 4));

    relay
        .status
        .wait_for(|s| s.published >= 1_000)
        .await
        .expect("publishing");
    assert_eq!(database.terminate("motcua lease%").await, 1);
    let stepped_down = tokio::time::timeout(
        Duration::from_secs(30),
        relay
            .status
            .wait_for(|s| s.leases_lost >= 1 && s.leases_taken >= 2),
    )
    .await
    .expect("the relay notices the lost lease and takes it again")
    .expect("status")
    .clone();
    eprintln!("after the lost lease: {stepped_down:?}");

    let published = relay.status.borrow().published;
    relay
        .status
        .wait_for(|s| s.published >= published + 1_000)
        .await
        .expect("publishing again");
    let terminated = database.terminate("%").await;
    assert!(terminated >= 2, "the pool and the lease: {terminated}");

    loader.await.expect("the load");
    // One more event, so there is a batch to publish after the sessions were dropped even if
    // the load was through by then: the relay checks its lease before it.
    store
        .append(common::append("HS-LAST", 0, 1))
        .await
        .expect("append");
    let head = store.head_position().await.expect("head");
    assert_eq!(head, 10_001);
    let status = wait_for_checkpoint(&mut relay.status, head, CATCH_UP).await;
    eprintln!("after the database came back: {status:?}");
    assert!(status.leases_lost >= 2, "{status:?}");
    relay.stop().await;

    let stored = all_events(&*store).await;
    let received = read_topic(&brokers, &topic, stored.len()).await;
    let verdict = verify(&received, &stored);
    assert_eq!(verdict.records, stored.len() + verdict.duplicates);
    database.drop().await;
}

/// Publishing to a topic that does not exist fails; the relay backs off, restarts its
/// producer and republishes, and once the topic exists everything arrives in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_deliveries_are_retried_from_the_checkpoint() {
    init_logs();
    let Some((brokers, url)) = environment() else {
        return;
    };
    let database = TestDatabase::create(&url).await;
    let store = database.store().await;
    let topic = common::unique_topic("relay-missing");
    let mut config = relay_config(&brokers, &topic);
    config.delivery_timeout = Duration::from_secs(3);
    load(store.clone(), 100, 2, 5, 2).await;
    let mut relay = spawn_relay(store.clone(), store.clone(), config);

    let failing = tokio::time::timeout(
        Duration::from_secs(60),
        relay.status.wait_for(|s| s.delivery_failures >= 1),
    )
    .await
    .expect("deliveries to a missing topic fail")
    .expect("status")
    .clone();
    eprintln!("while the topic is missing: {failing:?}");
    assert_eq!(failing.checkpoint, 0, "nothing acknowledged, nothing saved");

    create_topic(&brokers, &topic, 12).await;
    let head = store.head_position().await.expect("head");
    let status = wait_for_checkpoint(&mut relay.status, head, CATCH_UP).await;
    assert!(status.producer_restarts >= 1, "{status:?}");
    relay.stop().await;

    let stored = all_events(&*store).await;
    let received = read_topic(&brokers, &topic, stored.len()).await;
    let verdict = verify(&received, &stored);
    assert_eq!(verdict.records, stored.len() + verdict.duplicates);
    database.drop().await;
}

/// The embedded store works with the relay too: its checkpoint and its file lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_from_sqlite() {
    init_logs();
    let Some(brokers) = common::brokers() else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("events.sqlite3"))
            .await
            .expect("open the SQLite store"),
    );
    let topic = common::unique_topic("relay-sqlite");
    create_topic(&brokers, &topic, 4).await;
    let config = relay_config(&brokers, &topic);
    let mut relay = spawn_relay(store.clone(), store.clone(), config.clone());
    relay
        .status
        .wait_for(|s| s.role == RelayRole::Active)
        .await
        .expect("active");
    // A second relay on the same file waits.
    let standby = spawn_relay(store.clone(), store.clone(), config.clone());
    load(store.clone(), 100, 2, 5, 2).await;
    let head = store.head_position().await.expect("head");
    wait_for_checkpoint(&mut relay.status, head, CATCH_UP).await;
    assert_eq!(standby.status.borrow().published, 0);
    assert_eq!(standby.status.borrow().role, RelayRole::Standby);
    relay.stop().await;
    standby.stop().await;
    assert_eq!(store.load(&config.name).await.expect("checkpoint"), head);

    let stored = all_events(&*store).await;
    let received = read_topic(&brokers, &topic, stored.len()).await;
    let verdict = verify(&received, &stored);
    assert_eq!((verdict.records, verdict.duplicates), (stored.len(), 0));
}

/// A store that can be made unreachable: every call fails as unavailable while `away` is set,
/// as when the database is down or unreachable.
#[derive(Debug)]
struct Unreliable {
    inner: Arc<motcua_store::postgres::PostgresStore>,
    away: std::sync::atomic::AtomicBool,
}

impl Unreliable {
    fn check(&self) -> Result<(), motcua_store::StoreError> {
        if self.away.load(std::sync::atomic::Ordering::SeqCst) {
            Err(motcua_store::StoreError::Unavailable(
                "the database is away (test)".into(),
            ))
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl Checkpoints for Unreliable {
    async fn load(&self, name: &str) -> Result<u64, motcua_store::StoreError> {
        self.check()?;
        self.inner.load(name).await
    }

    async fn save(&self, name: &str, position: u64) -> Result<(), motcua_store::StoreError> {
        self.check()?;
        self.inner.save(name, position).await
    }

    async fn try_lease(
        &self,
        name: &str,
    ) -> Result<Option<Box<dyn motcua_store::Lease>>, motcua_store::StoreError> {
        self.check()?;
        self.inner.try_lease(name).await
    }
}

#[async_trait::async_trait]
impl EventStore for Unreliable {
    async fn append(
        &self,
        request: motcua_store::AppendRequest,
    ) -> Result<motcua_store::AppendOutcome, motcua_store::StoreError> {
        self.inner.append(request).await
    }

    async fn dossier_events(
        &self,
        dossier_id: &str,
    ) -> Result<Vec<StoredEvent>, motcua_store::StoreError> {
        self.check()?;
        self.inner.dossier_events(dossier_id).await
    }

    async fn recorded_request(
        &self,
        request_id: &str,
    ) -> Result<Option<motcua_store::RecordedRequest>, motcua_store::StoreError> {
        self.check()?;
        self.inner.recorded_request(request_id).await
    }

    async fn events_after(
        &self,
        position: u64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, motcua_store::StoreError> {
        self.check()?;
        self.inner.events_after(position, limit).await
    }

    async fn head_position(&self) -> Result<u64, motcua_store::StoreError> {
        self.check()?;
        self.inner.head_position().await
    }

    async fn list_dossiers(
        &self,
        filter: &motcua_store::ListFilter,
    ) -> Result<Vec<motcua_store::DossierRow>, motcua_store::StoreError> {
        self.check()?;
        self.inner.list_dossiers(filter).await
    }

    async fn next_dossier_number(
        &self,
        agency: &str,
        day: chrono::NaiveDate,
    ) -> Result<u32, motcua_store::StoreError> {
        self.check()?;
        self.inner.next_dossier_number(agency, day).await
    }

    async fn personal_data(
        &self,
        dossier_id: &str,
    ) -> Result<Option<motcua_store::PersonalData>, motcua_store::StoreError> {
        self.check()?;
        self.inner.personal_data(dossier_id).await
    }
}

/// The database away mid-load (every read, save and lease attempt failing): the relay backs
/// off without publishing anything it has not read, and resumes when the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_away_is_waited_out() {
    use std::sync::atomic::Ordering;

    init_logs();
    let Some((brokers, url)) = environment() else {
        return;
    };
    let database = TestDatabase::create(&url).await;
    let store = Arc::new(Unreliable {
        inner: database.store().await,
        away: false.into(),
    });
    let topic = common::unique_topic("relay-db-away");
    create_topic(&brokers, &topic, 12).await;
    let mut relay = spawn_relay(store.clone(), store.clone(), relay_config(&brokers, &topic));
    let loader = tokio::spawn(load(store.inner.clone(), 400, 5, 5, 4));
    relay
        .status
        .wait_for(|s| s.published >= 1_000)
        .await
        .expect("publishing");

    store.away.store(true, Ordering::SeqCst);
    relay
        .status
        .wait_for(|s| s.store_errors >= 3)
        .await
        .expect("the relay sees the database away");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = relay.status.borrow().clone();
    // Still the active relay, waiting; the broker is not blamed.
    assert_eq!(during.role, RelayRole::Active, "{during:?}");
    assert_eq!(during.delivery_failures, 0, "{during:?}");
    store.away.store(false, Ordering::SeqCst);

    loader.await.expect("the load");
    let head = store.head_position().await.expect("head");
    let status = wait_for_checkpoint(&mut relay.status, head, CATCH_UP).await;
    eprintln!("after the database came back: {status:?}");
    assert_eq!(status.role, RelayRole::Active);
    relay.stop().await;

    let stored = all_events(&*store).await;
    let received = read_topic(&brokers, &topic, stored.len()).await;
    let verdict = verify(&received, &stored);
    assert_eq!(verdict.records, stored.len() + verdict.duplicates);
    database.drop().await;
}
