//! Checkpoints and leases (`motcua_store::Checkpoints`): one scenario per step, written once
//! against the trait and run against every backend by the wrappers at the end. Each step gets
//! two handles on one fresh database, as two processes would have: what one saves the other
//! loads, and a lease one holds the other cannot take.
//!
//! The PostgreSQL wrappers need `DATABASE_URL` (see `tests/common/mod.rs`).

#[allow(dead_code)] // The fixtures for the event scenario; these steps use the database part.
mod common;

use std::future::Future;
use std::sync::Arc;

use motcua_store::postgres::PostgresStore;
use motcua_store::sqlite::SqliteStore;
use motcua_store::{Checkpoints, EventStore};

/// Two handles on one store.
type Pair = (Arc<dyn Checkpoints>, Arc<dyn Checkpoints>);

/// A checkpoint is 0 until saved, then what was saved last, for every handle; names are
/// independent.
async fn saved_positions_are_loaded(stores: Pair) {
    let (one, other) = stores;
    assert_eq!(one.load("relay:a").await.expect("load"), 0);
    one.save("relay:a", 42).await.expect("save");
    assert_eq!(one.load("relay:a").await.expect("load"), 42);
    assert_eq!(other.load("relay:a").await.expect("load"), 42);
    assert_eq!(other.load("relay:b").await.expect("load"), 0);

    other.save("relay:a", 1_000_000).await.expect("save");
    other.save("relay:b", 7).await.expect("save");
    assert_eq!(one.load("relay:a").await.expect("load"), 1_000_000);
    assert_eq!(one.load("relay:b").await.expect("load"), 7);
    // Saving lower is allowed (a deliberate rewind).
    one.save("relay:a", 5).await.expect("save");
    assert_eq!(other.load("relay:a").await.expect("load"), 5);
    // The largest position the store can hold.
    let max = u64::try_from(i64::MAX).expect("fits");
    one.save("relay:max", max).await.expect("save");
    assert_eq!(other.load("relay:max").await.expect("load"), max);
    assert!(one.save("relay:max", max + 1).await.is_err());
}

/// A lease has one holder at a time, whichever handle asks; other names are independent.
async fn a_lease_has_one_holder(stores: Pair) {
    let (one, other) = stores;
    let mut held = one
        .try_lease("relay:a")
        .await
        .expect("try")
        .expect("a free lease is taken");
    assert_eq!(held.name(), "relay:a");
    assert!(held.is_held().await);
    assert!(other.try_lease("relay:a").await.expect("try").is_none());
    assert!(
        one.try_lease("relay:a").await.expect("try").is_none(),
        "not twice from the same handle either"
    );
    let mut b = other
        .try_lease("relay:b")
        .await
        .expect("try")
        .expect("another name is free");
    assert!(b.is_held().await);
    assert!(held.is_held().await);
    b.release().await;
    held.release().await;
}

/// A released lease, or a dropped one (a holder that went away), can be taken by another.
async fn a_lease_is_free_again_when_released_or_dropped(stores: Pair) {
    let (one, other) = stores;
    let held = one.try_lease("relay:a").await.expect("try").expect("taken");
    held.release().await;
    let mut taken = other
        .try_lease("relay:a")
        .await
        .expect("try")
        .expect("taken after a release");
    assert!(taken.is_held().await);
    assert!(one.try_lease("relay:a").await.expect("try").is_none());
    drop(taken);
    // Dropping closes the lock's connection or file; the server may take a moment to end the
    // session, so ask a few times.
    let mut again = None;
    for _ in 0..100 {
        again = one.try_lease("relay:a").await.expect("try");
        if again.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let again = again.expect("taken after the holder dropped it");
    again.release().await;
}

macro_rules! checkpoint_tests {
    ($backend:ident, $run:path; $($name:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $run(super::$name).await;
                }
            )*
        }
    };
}

/// Two SQLite stores on one fresh file.
async fn run_sqlite<Fut: Future<Output = ()>>(step: impl FnOnce(Pair) -> Fut) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("events.sqlite3");
    let one = SqliteStore::open(&path).await.expect("open");
    let other = SqliteStore::open(&path).await.expect("open again");
    step((Arc::new(one), Arc::new(other))).await;
}

/// Two PostgreSQL stores (two pools) on one fresh database.
async fn run_postgres<Fut: Future<Output = ()>>(step: impl FnOnce(Pair) -> Fut) {
    let Some(database) = common::TestDatabase::create().await else {
        return;
    };
    let one = Arc::new(
        PostgresStore::connect_with(database.options.clone())
            .await
            .expect("connect"),
    );
    let other = Arc::new(
        PostgresStore::connect_with(database.options.clone())
            .await
            .expect("connect again"),
    );
    step((one.clone(), other.clone())).await;
    one.close().await;
    other.close().await;
    database.drop().await;
}

checkpoint_tests!(sqlite, crate::run_sqlite;
    saved_positions_are_loaded,
    a_lease_has_one_holder,
    a_lease_is_free_again_when_released_or_dropped,
);

checkpoint_tests!(postgres, crate::run_postgres;
    saved_positions_are_loaded,
    a_lease_has_one_holder,
    a_lease_is_free_again_when_released_or_dropped,
);

/// PostgreSQL only: when the server ends the lease's session (a restart, a terminated
/// backend), the holder learns it has lost the lease, and another can take it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lease_lost_with_its_session() {
    use sqlx::ConnectOptions;

    let Some(database) = common::TestDatabase::create().await else {
        return;
    };
    let one = PostgresStore::connect_with(database.options.clone())
        .await
        .expect("connect");
    let other = PostgresStore::connect_with(database.options.clone())
        .await
        .expect("connect again");
    let mut held = one.try_lease("relay:a").await.expect("try").expect("taken");
    assert!(held.is_held().await);

    let mut admin = database.options.connect().await.expect("connect");
    let terminated: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'motcua lease relay:a'",
    )
    .fetch_one(&mut admin)
    .await
    .expect("terminate the lease's session");
    assert_eq!(terminated, 1);

    assert!(!held.is_held().await, "the holder learns the lease is gone");
    let mut taken = None;
    for _ in 0..100 {
        taken = other.try_lease("relay:a").await.expect("try");
        if taken.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut taken = taken.expect("another takes the lost lease");
    assert!(taken.is_held().await);
    assert!(!held.is_held().await);
    // Releasing a lost lease is harmless, and does not release the new holder's.
    held.release().await;
    assert!(taken.is_held().await);
    taken.release().await;

    // Checkpoints still work on the pool, which the termination did not touch.
    one.save("relay:a", 3).await.expect("save");
    assert_eq!(other.load("relay:a").await.expect("load"), 3);
    assert_eq!(one.head_position().await.expect("head"), 0);
    drop(admin);
    one.close().await;
    other.close().await;
    database.drop().await;
}
