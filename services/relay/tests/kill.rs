//! `kill -9` of a relay process in the middle of a 100,000-event load, twice: after each
//! restart it resumes from its durable checkpoint, and in the end every event is on the topic,
//! each dossier's in seq order, with no gap.
//!
//! The relay process is this test binary itself, run again with only `relay_child_process`
//! selected and its settings in an environment variable: a real process with its own
//! connections, killed with a real SIGKILL, without building anything else.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestDatabase, create_topic, environment, init_logs, load, read_topic, verify};
use motcua_relay::Relay;
use motcua_store::postgres::PostgresStore;
use motcua_store::{Checkpoints, EventStore};
use tokio::io::AsyncReadExt;

/// Tells the child test what to relay: `<brokers> <topic> <database url>`.
const CHILD_ENV: &str = "MOTCUA_RELAY_TEST_CHILD";

/// The relay process of `relay_survives_kill_9`. Ignored in a normal run; when spawned, it
/// relays until killed, or until its parent goes away (its stdin closes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of relay_survives_kill_9; it runs only when spawned by it"]
async fn relay_child_process() {
    init_logs();
    let Ok(settings) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = settings.splitn(3, ' ');
    let (Some(brokers), Some(topic), Some(url)) = (parts.next(), parts.next(), parts.next()) else {
        panic!("{CHILD_ENV} is not `<brokers> <topic> <database url>`");
    };
    let store = Arc::new(PostgresStore::connect(url).await.expect("connect"));
    let parent_gone = async {
        let mut sink = Vec::new();
        let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    };
    Relay::new(store.clone(), store, common::relay_config(brokers, topic))
        .run(parent_gone)
        .await
        .expect("the relay runs");
}

/// A relay process; killed with SIGKILL when dropped, so a failing test leaves none behind.
struct RelayProcess(Child);

impl RelayProcess {
    fn spawn(settings: &str) -> Self {
        let exe = std::env::current_exe().expect("the test binary");
        let child = Command::new(exe)
            .args([
                "--exact",
                "relay_child_process",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, settings)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn the relay process");
        Self(child)
    }

    /// SIGKILL: no shutdown, no drain, no last checkpoint.
    fn kill_9(mut self) {
        self.0.kill().expect("kill -9 the relay process");
        let status = self.0.wait().expect("reap the relay process");
        eprintln!("relay process killed: {status}");
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until the durable checkpoint reaches `position`.
async fn wait_for_checkpoint(store: &PostgresStore, name: &str, position: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let checkpoint = store.load(name).await.expect("load the checkpoint");
        if checkpoint >= position {
            return checkpoint;
        }
        assert!(
            Instant::now() < deadline,
            "the relay process is stuck at checkpoint {checkpoint}, short of {position}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_survives_kill_9() {
    init_logs();
    let Some((brokers, url)) = environment() else {
        return;
    };
    let database = TestDatabase::create(&url).await;
    let store = database.store().await;
    let topic = common::unique_topic("relay-kill");
    create_topic(&brokers, &topic, 12).await;
    let name = common::relay_config(&brokers, &topic).name;
    let database_url = format!(
        "{}/{}",
        url.rsplit_once('/').expect("a database URL").0,
        database.name()
    );
    let settings = format!("{brokers} {topic} {database_url}");

    // 2,000 dossiers, 10 rounds of 5 events: 100,000 events, each dossier's 50 spread over
    // the whole load.
    let started = Instant::now();
    let loader = tokio::spawn(load(store.clone(), 2_000, 10, 5, 8));
    let relay = RelayProcess::spawn(&settings);
    let at = wait_for_checkpoint(&store, &name, 20_000).await;
    relay.kill_9();
    eprintln!("killed at checkpoint ≥ {at} after {:?}", started.elapsed());

    let relay = RelayProcess::spawn(&settings);
    let at = wait_for_checkpoint(&store, &name, 60_000).await;
    relay.kill_9();
    eprintln!("killed at checkpoint ≥ {at} after {:?}", started.elapsed());
    assert!(
        !loader.is_finished(),
        "the load should still be running when the relay is killed"
    );

    let relay = RelayProcess::spawn(&settings);
    loader.await.expect("the load");
    let head = store.head_position().await.expect("head");
    assert_eq!(head, 100_000);
    wait_for_checkpoint(&store, &name, head).await;
    eprintln!("all published after {:?}", started.elapsed());
    drop(relay);

    let stored = store.events_after(0, u32::MAX).await.expect("read events");
    let received = read_topic(&brokers, &topic, stored.len()).await;
    let verdict = verify(&received, &stored);
    eprintln!(
        "{} records for {} events: {} republished after the kills",
        verdict.records,
        stored.len(),
        verdict.duplicates
    );
    assert_eq!(verdict.records, stored.len() + verdict.duplicates);
    database.drop().await;
}
