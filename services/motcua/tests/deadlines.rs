//! The deadline watcher as operators run it, inside `motcua serve`, killed with SIGKILL in the
//! middle of a catch-up and started again: every overdue dossier ends with exactly one `late`
//! event, stamped with its due date.
//!
//! Days are made to pass with the node's test-only clock (`MOTCUA_SIMULATED_CLOCK_START`,
//! placed at a fixed office morning): dossiers are received then, and the node comes back
//! thirty days later, when every one of them is overdue.

use std::path::Path;
use std::time::{Duration, Instant};

use motcua_proto::v1 as pb;
use motcua_proto::v1::dossier_service_client::DossierServiceClient;
use sqlx::{ConnectOptions, Row};
use tonic::transport::Channel;

mod common;

use common::{Node, admin_bearer, connect, embedded_serve, free_port, receive_request};

/// 4 working hours.
const PROCEDURE: &str = "2.000635";
const DOSSIERS: usize = 1_500;
const THIRTY_DAYS: i64 = 30 * 24 * 3600;

impl Node {
    fn start(dir: &Path, port: u16, offset_secs: i64) -> Self {
        let child = embedded_serve(dir, port)
            // One command at a time, so the catch-up lasts long enough to be interrupted.
            .args(["--deadline-concurrency", "1", "--deadline-tick-ms", "200"])
            .env(
                "MOTCUA_SIMULATED_CLOCK_START",
                (common::node_clock_start() + chrono::Duration::seconds(offset_secs)).to_rfc3339(),
            )
            .spawn()
            .expect("motcua serve starts");
        Self(child)
    }
}

async fn client(port: u16) -> DossierServiceClient<Channel> {
    DossierServiceClient::new(connect(port).await)
}

/// `(late events, dossiers with more than one late, lates not stamped with the due date)`, read
/// from the node's store file (SQLite lets a reader in beside the running node).
async fn lates(dir: &Path) -> (i64, i64, i64) {
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.join("events.sqlite"))
        .read_only(true)
        .connect()
        .await
        .expect("the store file opens");
    let row = sqlx::query(
        "SELECT COUNT(*), \
         (SELECT COUNT(*) FROM (SELECT dossier_id FROM events WHERE event_type = 'late' \
          GROUP BY dossier_id HAVING COUNT(*) > 1)) \
         FROM events WHERE event_type = 'late'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("counts");
    let mut wrong = 0;
    let payloads = sqlx::query("SELECT payload FROM events WHERE event_type = 'late'")
        .fetch_all(&mut conn)
        .await
        .expect("payloads");
    for payload in payloads {
        let bytes: Vec<u8> = payload.get(0);
        let event =
            <pb::DossierEvent as prost::Message>::decode(bytes.as_slice()).expect("an event");
        if let Some(pb::dossier_event::Payload::Late(late)) = event.payload
            && (late.due_at != late.became_late_at || late.due_at.is_none())
        {
            wrong += 1;
        }
    }
    (row.get(0), row.get(1), wrong)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_killed_mid_catch_up_records_every_late_exactly_once() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let port = free_port();
    let node = Node::start(dir.path(), port, 0);
    let client = client(port).await;
    let bearer = admin_bearer(dir.path());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..DOSSIERS {
        let mut client = client.clone();
        let bearer = bearer.clone();
        tasks.spawn(async move {
            let mut request =
                tonic::Request::new(receive_request(format!("deadline-kill-{i}"), PROCEDURE));
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
            client.receive(request).await.expect("received");
        });
        if tasks.len() >= 32 {
            tasks.join_next().await;
        }
    }
    while tasks.join_next().await.is_some() {}
    node.kill();

    // Thirty days later every dossier is overdue; kill the node in the middle of its catch-up.
    let node = Node::start(dir.path(), port, THIRTY_DAYS);
    let deadline = Instant::now() + Duration::from_secs(120);
    let at_kill = loop {
        let (count, _, _) = lates(dir.path()).await;
        if count > 0 {
            break count;
        }
        assert!(Instant::now() < deadline, "no late was ever recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    node.kill();
    let (count, _, _) = lates(dir.path()).await;
    assert!(
        (count as usize) < DOSSIERS,
        "the catch-up finished before the kill ({at_kill} then {count}): nothing was interrupted"
    );

    let _node = Node::start(dir.path(), port, THIRTY_DAYS);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (count, doubled, wrong) = lates(dir.path()).await;
        assert_eq!(doubled, 0, "dossiers with two `late` events");
        assert_eq!(wrong, 0, "`late` events not stamped with the due date");
        if count as usize == DOSSIERS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {count} of {DOSSIERS} dossiers got their late"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // And nothing more comes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(lates(dir.path()).await, (DOSSIERS as i64, 0, 0));
}
