//! The national-portal adapter (issue 6) against the portal simulator over real HTTP, on the
//! real intake and embedded store: every dossier's final state and its progress records in
//! order on the portal; an outage under steady load, then recovery; session expiry mid-stream;
//! malformed replies, errors and dropped connections; a rejected dossier dead-lettered while
//! the rest flow; a change the reader applies while the sender acknowledges the previous one;
//! resync and reconcile. The adapter's database is SQLite, and PostgreSQL too in
//! the outage scenario (`DATABASE_URL`).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use motcua_domain::lifecycle::event_type_name;
use motcua_feed::{
    Backend, FeedEvent, Reader, ReaderDb, ReaderRunner, SourcePosition, SqlTableFeed,
};
use motcua_portal::ops::{self, Selection};
use motcua_portal::schema::{self, READER_NAME};
use motcua_portal::{ClientConfig, PortalClient, Secret, Sender, SenderOptions, SyncReader};
use motcua_portal_sim::{Faults, SimConfig, Simulator};
use motcua_store::EventStore;
use motcua_tests::*;
use serde_json::Value;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Executor};
use tokio_util::sync::CancellationToken;

struct Rig {
    app: TestApp,
    sim: Simulator,
    db: ReaderDb,
    client: Arc<PortalClient>,
    _sim_stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

fn options() -> SenderOptions {
    SenderOptions {
        concurrency: 16,
        batch: 100,
        backoff_initial: StdDuration::from_millis(20),
        backoff_max: StdDuration::from_millis(200),
        breaker_threshold: 10,
        breaker_cooldown: StdDuration::from_millis(50),
        breaker_cooldown_max: StdDuration::from_millis(300),
        idle_poll: StdDuration::from_millis(20),
        ..SenderOptions::default()
    }
}

async fn postgres_url() -> Option<String> {
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
    let name = format!("motcua_portal_{}", uuid::Uuid::new_v4().simple());
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("a database");
    Some(admin.database(&name).to_url_lossy().to_string())
}

impl Rig {
    async fn new(reader_url: Option<String>) -> Self {
        // The server's clock at the real time: the sync deadline compares the recording of a
        // change with its acknowledgement, which happens now.
        let app = spawn_app_at(chrono::Utc::now()).await;
        let mut config = SimConfig::new("motcua", "mat-khau-thu");
        config.timeout_hold = StdDuration::from_millis(300);
        config.seed = Some(766);
        let sim = Simulator::new(config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let addr = listener.local_addr().expect("an address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(motcua_portal_sim::serve(
            listener,
            sim.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        let dir = tempfile::tempdir().expect("a directory");
        let url = reader_url
            .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("portal.sqlite3").display()));
        let db = ReaderDb::connect(&url).await.expect("the sync database");
        schema::prepare(&db).await.expect("its tables");
        let client = Arc::new(
            PortalClient::new(ClientConfig {
                base_url: format!("http://{addr}"),
                username: "motcua".into(),
                password: Secret::new("mat-khau-thu"),
                timeout: StdDuration::from_millis(250),
                renew_margin: StdDuration::from_secs(1),
            })
            .expect("a client"),
        );
        Self {
            app,
            sim,
            db,
            client,
            _sim_stop: stop,
            _dir: dir,
        }
    }

    fn store(&self) -> Arc<dyn EventStore> {
        self.app.store.clone() as Arc<dyn EventStore>
    }

    fn sender(&self) -> Sender {
        Sender::new(
            self.db.clone(),
            self.store(),
            Arc::clone(&self.client),
            options(),
        )
    }

    /// The adapter's reader applies every event in the store.
    async fn sync_reader(&self) {
        let head = self.app.store.head_position().await.expect("head") as i64;
        let stop = CancellationToken::new();
        let runner = ReaderRunner::new(
            SqlTableFeed::new(self.store()).poll_interval(StdDuration::from_millis(10)),
            SyncReader,
            self.db.clone(),
        );
        let task = tokio::spawn(runner.run(stop.clone()));
        let deadline = std::time::Instant::now() + StdDuration::from_secs(30);
        while motcua_feed::load_position(&self.db, READER_NAME, "sql", 0)
            .await
            .expect("position")
            .unwrap_or(0)
            < head
        {
            assert!(std::time::Instant::now() < deadline, "the reader lags");
            tokio::time::sleep(StdDuration::from_millis(10)).await;
        }
        stop.cancel();
        task.await.expect("joins").expect("stops cleanly");
    }

    /// Runs the sender until nothing is pending but dead letters, or panics after `limit`.
    async fn drain(&self, limit: StdDuration) {
        let stop = CancellationToken::new();
        let task = tokio::spawn(self.sender().run(stop.clone()));
        let deadline = std::time::Instant::now() + limit;
        loop {
            let status = ops::status(&self.db, 5, None).await.expect("status");
            if status.pending == status.dead {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still pending: {:?}",
                status.unsynced
            );
            tokio::time::sleep(StdDuration::from_millis(20)).await;
        }
        stop.cancel();
        task.await.expect("the sender stops");
    }

    /// Checks that the portal has exactly our latest state of `id` and all its progress records,
    /// in order, once each.
    async fn assert_on_portal(&self, id: &str) {
        let events = self.app.dossier_events(id).await;
        let ours = self.app.get(id).await;
        let theirs = self
            .sim
            .dossier(id)
            .unwrap_or_else(|| panic!("{id} is not on the portal"));
        assert_eq!(theirs["MaHoSo"], id);
        assert_eq!(theirs["PhienBan"], events.len() as u64, "{id}: version");
        assert_eq!(theirs["TrangThaiHoSo"], ours.status as i64, "{id}: status");
        assert_eq!(theirs["ChuHoSo"], "Nguyễn Văn An");
        assert_eq!(theirs["KenhThucHien"], 1);
        let accepted = theirs["NgayTiepNhan"].as_str().expect("NgayTiepNhan");
        assert_eq!(accepted.len(), 14, "yyyyMMddHHmmss: {accepted}");
        let progress = self.sim.progress(id);
        let seqs: Vec<u64> = progress
            .iter()
            .map(|p| p["SoThuTu"].as_u64().expect("SoThuTu"))
            .collect();
        assert_eq!(
            seqs,
            (1..=events.len() as u64).collect::<Vec<_>>(),
            "{id}: progress"
        );
        // Personal data beyond the applicant's name never leaves: no identity number, no phone.
        let text = format!("{theirs} {progress:?}");
        assert!(
            !text.contains("001099012345") && !text.contains("0912345678"),
            "{text}"
        );
    }

    /// A dossier received and taken some way through its life.
    async fn dossier_with_history(&self, steps: usize) -> String {
        let id = self.app.receive(P_TEN_DAYS).await.dossier_id;
        let path = [
            Cmd::Forward,
            Cmd::RequestSupplement,
            Cmd::ReceiveSupplement,
            Cmd::DigitizeResult,
            Cmd::Resolve,
            Cmd::ReturnResult,
        ];
        for cmd in path.iter().take(steps) {
            self.app.ok(*cmd, &id).await;
        }
        id
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dossier_reaches_the_portal_whole_and_in_order() {
    let rig = Rig::new(None).await;
    let mut ids = Vec::new();
    for i in 0..24 {
        ids.push(rig.dossier_with_history(i % 7).await);
    }
    rig.sync_reader().await;
    rig.drain(StdDuration::from_secs(30)).await;
    for id in &ids {
        rig.assert_on_portal(id).await;
    }
    // Later changes are updates of what the portal has, and only the new records are sent.
    for id in ids.iter().take(5) {
        rig.app.ok(Cmd::StopProcessing, id).await;
    }
    rig.sync_reader().await;
    rig.drain(StdDuration::from_secs(30)).await;
    for id in &ids {
        rig.assert_on_portal(id).await;
    }
    let stats = rig.sim.stats();
    assert_eq!(
        stats.duplicate_progress, 0,
        "no record sent twice: {stats:?}"
    );
    let status = ops::status(&rig.db, 10, None).await.expect("status");
    assert_eq!((status.pending, status.dead), (0, 0));
    let now = chrono::Utc::now().timestamp_micros();
    let (on_time, received) =
        ops::timeliness(&rig.db, i64::MIN, i64::MAX, None, 3_600_000_000, now)
            .await
            .expect("figure");
    assert_eq!(received, 24);
    assert_eq!(on_time, 24);
}

/// The portal goes down while dossiers keep changing; the breaker opens, nothing is
/// dead-lettered, and after recovery the portal's copy equals ours.
async fn outage_under_load_then_recovery(reader_url: Option<String>) {
    let rig = Rig::new(reader_url).await;
    let stop = CancellationToken::new();
    let sender = rig.sender();
    let stats = sender.stats();
    let sending = tokio::spawn(sender.run(stop.clone()));
    let mut ids = Vec::new();
    for round in 0..6 {
        if round == 1 {
            rig.sim.start_outage(StdDuration::from_millis(1_500));
        }
        for i in 0..8 {
            ids.push(rig.dossier_with_history((round + i) % 6).await);
        }
        rig.sync_reader().await;
        tokio::time::sleep(StdDuration::from_millis(250)).await;
    }
    let deadline = std::time::Instant::now() + StdDuration::from_secs(60);
    while ops::backlog(&rig.db).await.expect("backlog") > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the backlog never drained"
        );
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    stop.cancel();
    sending.await.expect("the sender stops");
    for id in &ids {
        rig.assert_on_portal(id).await;
    }
    let status = ops::status(&rig.db, 5, None).await.expect("status");
    assert_eq!(
        status.dead, 0,
        "an outage dead-lettered: {:?}",
        status.unsynced
    );
    assert!(
        stats
            .breaker_opened
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0,
        "the breaker never opened"
    );
    assert!(
        rig.sim.stats().count("DongBoHoSoMC", "http_503")
            + rig.sim.stats().count("login", "http_503")
            > 0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_under_load_then_recovery_on_sqlite() {
    outage_under_load_then_recovery(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_under_load_then_recovery_on_postgres() {
    if let Some(url) = postgres_url().await {
        outage_under_load_then_recovery(Some(url)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expiring_mid_stream_are_renewed() {
    let rig = Rig::new(None).await;
    let mut ids = Vec::new();
    for round in 0..4 {
        for i in 0..5 {
            ids.push(rig.dossier_with_history((round + i) % 6).await);
        }
        rig.sync_reader().await;
        rig.drain(StdDuration::from_secs(30)).await;
        rig.sim.expire_sessions();
    }
    for id in &ids {
        rig.assert_on_portal(id).await;
    }
    let logins = rig.sim.stats().total("login");
    assert!(logins >= 4, "logged in {logins} times");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_malformed_replies_timeouts_and_drops_are_retried_until_everything_lands() {
    let rig = Rig::new(None).await;
    rig.sim.set_faults(Faults {
        error_rate: 0.1,
        server_error_rate: 0.1,
        malformed_rate: 0.1,
        drop_rate: 0.1,
        timeout_rate: 0.05,
        ..Faults::none()
    });
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(rig.dossier_with_history(i % 7).await);
    }
    rig.sync_reader().await;
    rig.drain(StdDuration::from_secs(90)).await;
    rig.sim.set_faults(Faults::none());
    let status = ops::status(&rig.db, 5, None).await.expect("status");
    assert_eq!(status.dead, 0, "{:?}", status.unsynced);
    for id in &ids {
        rig.assert_on_portal(id).await;
    }
    let stats = rig.sim.stats();
    assert!(
        stats.count("DongBoHoSoMC", "malformed") + stats.count("DongBoHoSoMC", "dropped") > 0,
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_dossier_is_dead_lettered_with_the_reason_and_the_rest_flow() {
    let rig = Rig::new(None).await;
    let refused = rig.dossier_with_history(2).await;
    let mut others = Vec::new();
    for i in 0..10 {
        others.push(rig.dossier_with_history(i % 5).await);
    }
    rig.sim.set_faults(Faults {
        reject: [refused.clone()].into_iter().collect(),
        ..Faults::none()
    });
    rig.sync_reader().await;
    rig.drain(StdDuration::from_secs(30)).await;
    for id in &others {
        rig.assert_on_portal(id).await;
    }
    let status = ops::status(&rig.db, 5, None).await.expect("status");
    assert_eq!(status.dead, 1);
    assert_eq!(
        ops::behind(&rig.db).await.expect("behind"),
        1,
        "a dead letter is behind"
    );
    let dead = &status.unsynced[0];
    assert_eq!(dead.dossier_id, refused);
    let reason = dead.last_error.as_deref().unwrap_or_default();
    assert!(
        reason.contains("-3") && reason.contains("từ chối"),
        "{reason}"
    );
    let letters: Vec<(String, String)> =
        sqlx::query_as("SELECT dossier_id, reason FROM portal_dead_letters")
            .fetch_all(rig.db.pool())
            .await
            .expect("dead letters");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].0, refused);

    // Fixed on the portal's side, the dead letters are sent again.
    rig.sim.set_faults(Faults::none());
    let count = ops::resync(&rig.db, &rig.store(), &Selection::DeadLetters)
        .await
        .expect("resync");
    assert_eq!(count, 1);
    rig.drain(StdDuration::from_secs(30)).await;
    rig.assert_on_portal(&refused).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_finds_what_the_portal_lost_and_repairs_it() {
    let rig = Rig::new(None).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(rig.dossier_with_history(i).await);
    }
    rig.sync_reader().await;
    rig.drain(StdDuration::from_secs(30)).await;
    let report = ops::reconcile(&rig.db, &rig.store(), &rig.client, None, false)
        .await
        .expect("reconcile");
    assert_eq!((report.checked, report.in_sync), (6, 6), "{report:?}");
    // The portal loses everything.
    rig.sim.reset();
    let report = ops::reconcile(&rig.db, &rig.store(), &rig.client, None, true)
        .await
        .expect("reconcile");
    assert_eq!(report.drifted.len(), 6, "{report:?}");
    rig.drain(StdDuration::from_secs(30)).await;
    for id in &ids {
        rig.assert_on_portal(id).await;
    }
    let value: Value = rig.sim.snapshot();
    assert_eq!(value["dossiers"].as_object().map(|o| o.len()), Some(6));
}

/// The sync row of `id`: `(version, synced_version, pending_since)`.
async fn sync_row(db: &ReaderDb, id: &str) -> (i64, i64, Option<i64>) {
    sqlx::query_as(
        "SELECT version, synced_version, pending_since FROM portal_sync WHERE dossier_id = $1",
    )
    .bind(id)
    .fetch_one(db.pool())
    .await
    .expect("the sync row")
}

/// Issue 21: the reader applies a dossier's newer version in a transaction that is still open
/// while the sender, which read and sent the previous version, writes its acknowledgement
/// (on PostgreSQL the sender's write waits for the reader's row lock). The dossier must stay
/// pending at the newer version, its new progress record must not be deleted unsent, and the
/// next pass must send it. With `drop_progress` the newer version comes with no progress record
/// at all: still pending (the sender used to mark it in sync, and nothing retried it).
async fn a_change_landing_while_the_sender_acknowledges(
    reader_url: Option<String>,
    drop_progress: bool,
) {
    let rig = Rig::new(reader_url).await;
    let postgres = rig.db.backend() == Backend::Postgres;
    let id = rig.dossier_with_history(2).await;
    rig.sync_reader().await;
    rig.drain(StdDuration::from_secs(30)).await;
    rig.assert_on_portal(&id).await;
    // Version 4 pending; version 5 in the store, not yet applied.
    rig.app.ok(Cmd::ReceiveSupplement, &id).await;
    rig.sync_reader().await;
    assert_eq!(sync_row(&rig.db, &id).await.0, 4);
    rig.app.ok(Cmd::DigitizeResult, &id).await;
    let newest = rig.app.dossier_events(&id).await.pop().expect("events");
    assert_eq!(newest.seq, 5);
    let recorded_at = newest
        .recorded_at
        .as_ref()
        .and_then(motcua_domain::time::from_timestamp)
        .expect("a recording time")
        .timestamp_micros();

    // The reader's batch with version 5, not committed yet.
    let mut reader_tx = rig.db.begin().await.expect("the reader's transaction");
    let event = FeedEvent {
        dossier_id: id.clone(),
        seq: 5,
        event_type: event_type_name(newest.payload.as_ref().expect("a payload")),
        event: newest.clone(),
        source: SourcePosition::Sql { position: 0 },
    };
    SyncReader
        .apply(&mut reader_tx, &[event])
        .await
        .expect("the reader applies version 5");
    if drop_progress {
        sqlx::query("DELETE FROM portal_progress WHERE dossier_id = $1 AND seq = 5")
            .bind(id.as_str())
            .execute(&mut *reader_tx)
            .await
            .expect("deletes");
    }

    // The sender reads version 4 (the committed one) and sends it with its progress record.
    let sender = rig.sender();
    let pass = tokio::spawn(async move { sender.pass(100).await });
    let deadline = std::time::Instant::now() + StdDuration::from_secs(30);
    while rig.sim.progress(&id).len() < 4 {
        assert!(std::time::Instant::now() < deadline, "version 4 never sent");
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    if postgres {
        // Its write waits for the reader's lock on the dossier's row.
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(rig.db.pool())
            .await
            .expect("pg_stat_activity");
            if waiting > 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the sender never waited for the reader"
            );
            tokio::time::sleep(StdDuration::from_millis(10)).await;
        }
    }
    // (On SQLite the reader's transaction holds the write lock: the sender's write waits.)
    reader_tx.commit().await.expect("the reader commits");
    let report = pass.await.expect("joins").expect("the pass");
    assert_eq!(report.succeeded, 1, "{report:?}");
    assert_eq!(rig.sim.dossier(&id).expect("on the portal")["PhienBan"], 4);

    let (version, synced, pending) = sync_row(&rig.db, &id).await;
    assert_eq!((version, synced), (5, 4));
    let pending = pending.expect("version 5 is not on the portal: the dossier must stay pending");
    if !drop_progress {
        assert_eq!(pending, recorded_at, "pending since version 5 was recorded");
    }
    let status = ops::status(&rig.db, 5, None).await.expect("status");
    assert_eq!((status.pending, status.dead), (1, 0));
    assert_eq!(ops::behind(&rig.db).await.expect("behind"), 1);

    // The next pass sends version 5.
    let report = rig.sender().pass(100).await.expect("the next pass");
    assert_eq!(report.succeeded, 1, "{report:?}");
    if drop_progress {
        let theirs = rig.sim.dossier(&id).expect("on the portal");
        assert_eq!(theirs["PhienBan"], 5);
        assert_eq!(
            theirs["TrangThaiHoSo"],
            rig.app.get(&id).await.status as i64
        );
    } else {
        // Every progress record once, in order: record 5 was kept and sent.
        rig.assert_on_portal(&id).await;
        assert_eq!(rig.sim.stats().duplicate_progress, 0);
    }
    assert_eq!(sync_row(&rig.db, &id).await, (5, 5, None));
    assert_eq!(ops::behind(&rig.db).await.expect("behind"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_landing_while_the_sender_acknowledges_stays_pending_on_sqlite() {
    a_change_landing_while_the_sender_acknowledges(None, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_landing_while_the_sender_acknowledges_stays_pending_on_postgres() {
    if let Some(url) = postgres_url().await {
        a_change_landing_while_the_sender_acknowledges(Some(url), false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_version_without_a_progress_record_stays_pending_on_sqlite() {
    a_change_landing_while_the_sender_acknowledges(None, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_version_without_a_progress_record_stays_pending_on_postgres() {
    if let Some(url) = postgres_url().await {
        a_change_landing_while_the_sender_acknowledges(Some(url), true).await;
    }
}

/// The portal holds an older copy of one dossier (as after a restore of its backup): an older
/// version and status, fewer progress records. Reconcile finds that one and only that one,
/// also a page at a time as the adapter's periodic reconciliation runs it, and its repair
/// brings the portal's copy back to ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_finds_a_stale_copy_on_the_portal_and_repairs_it() {
    let rig = Rig::new(None).await;
    let stale = rig.dossier_with_history(2).await;
    let others = [
        rig.dossier_with_history(1).await,
        rig.dossier_with_history(3).await,
    ];
    rig.sync_reader().await;
    rig.drain(StdDuration::from_secs(30)).await;
    let old_copy = rig.sim.dossier(&stale).expect("on the portal");
    let old_progress = rig.sim.progress(&stale);
    rig.app.ok(Cmd::ReceiveSupplement, &stale).await;
    rig.app.ok(Cmd::DigitizeResult, &stale).await;
    rig.sync_reader().await;
    rig.drain(StdDuration::from_secs(30)).await;
    rig.assert_on_portal(&stale).await;

    // The portal goes back: the others as they are, `stale` as it was at version 3.
    let copies: Vec<(Value, Vec<Value>)> = others
        .iter()
        .map(|id| {
            (
                rig.sim.dossier(id).expect("on the portal"),
                rig.sim.progress(id),
            )
        })
        .chain([(old_copy, old_progress)])
        .collect();
    rig.sim.reset();
    for (dossier, progress) in copies {
        for (service, body) in [
            (
                "DongBoHoSoMC",
                serde_json::json!({"isUpdating": false, "data": [dossier]}),
            ),
            ("CapNhatTienDoHoSoMC", serde_json::json!({"data": progress})),
        ] {
            match rig.client.call(service, body).await {
                motcua_portal::client::Outcome::Done(motcua_portal::wire::Reply::Ok(_)) => {}
                other => panic!("{service}: {other:?}"),
            }
        }
    }
    assert_eq!(
        rig.sim.dossier(&stale).expect("on the portal")["PhienBan"],
        3
    );

    let report = ops::reconcile(&rig.db, &rig.store(), &rig.client, None, false)
        .await
        .expect("reconcile");
    assert_eq!((report.checked, report.in_sync), (3, 2), "{report:?}");
    assert_eq!(report.drifted, std::slice::from_ref(&stale));

    // A page at a time, one dossier a page, with repair.
    let mut after = String::new();
    let mut drifted = Vec::new();
    let mut pages = 0;
    loop {
        let (page, next) = ops::reconcile_page(&rig.db, &rig.store(), &rig.client, &after, 1, true)
            .await
            .expect("a page");
        pages += 1;
        assert!(page.checked <= 1, "{page:?}");
        drifted.extend(page.drifted);
        match next {
            Some(last) => after = last,
            None => break,
        }
    }
    assert_eq!(drifted, std::slice::from_ref(&stale));
    assert_eq!(pages, 4, "three full pages, then the end");
    rig.drain(StdDuration::from_secs(30)).await;
    rig.assert_on_portal(&stale).await;
    for id in &others {
        rig.assert_on_portal(id).await;
    }
    let report = ops::reconcile(&rig.db, &rig.store(), &rig.client, None, false)
        .await
        .expect("reconcile");
    assert_eq!((report.checked, report.in_sync), (3, 3), "{report:?}");
}
