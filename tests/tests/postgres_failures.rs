//! Restarting PostgreSQL under load (issue 3: "Restart PostgreSQL mid-load: intake returns
//! `Unavailable` while it is down (never a false success), and recovers by itself").
//!
//! Each test owns a throwaway cluster ([`PrivatePostgres`]) and serves the intake over real TCP
//! on a `PostgresStore` connected to it ([`PgApp`]). Sixteen counter desks, each on its own
//! connection, run dossier lifecycles (receive, forward, digitise the result, resolve, return
//! the result) with unique request ids; a desk whose call fails leaves that dossier and starts
//! a new one, as a desk waiting for the system would. Mid-load the database is stopped (`-m
//! fast`, or `-m immediate`: a crash), the load keeps running while it is down, the database is
//! started again, and the load runs on until the intake has recovered and a few seconds more.
//! Then:
//!
//! - every failed call failed with UNAVAILABLE (no other code, no client-side timeout), and
//!   only while the database was stopping, down or coming back;
//! - no call sent after the server had exited was answered OK before it was started again (it
//!   cannot have committed): no false success by timing;
//! - the intake recovers by itself (same process, same pool) within [`RECOVERY_BOUND`] of the
//!   start, and every call sent after that succeeds; the time is measured and printed;
//! - every call that failed is retried with the same request id and content: it succeeds,
//!   either replayed (the first attempt had committed after all) or appended now;
//! - the store then holds exactly the acknowledged commands: every OK answer's events are there
//!   under its request id (same dossier, seq and event id: no false success), every request id
//!   in the store was acknowledged, each request id's events are one run in one dossier (no
//!   duplicate), each dossier's events are seq 1..n, and global positions are 1..N.
//!
//! With a 3 s outage, the calls made while the database is down wait in the store's pool
//! (which keeps trying to connect) and succeed once it is back; only the calls in flight when
//! it went away are answered UNAVAILABLE. A third test keeps the database down longer than the
//! pool waits for a connection, and checks that calls made while it is down are answered
//! UNAVAILABLE within that wait, and that calls made once the store knows it is down (after
//! the first wait ran out) are answered UNAVAILABLE within a second or so, so that a client
//! with a short deadline is not left with DEADLINE_EXCEEDED.
//!
//! Two more tests put a proxy between the store and PostgreSQL that loses the answer to one
//! `COMMIT` (the commit happens, the connection drops before its acknowledgement arrives): the
//! window a crash can hit, made deterministic. The command must be recorded once and its retry
//! replayed.
//!
//! The restart tests run one at a time (each runs sixteen clients and a server, and measures
//! times); together about 55 s in a debug build.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::join_all;
use motcua_proto::v1 as pb;
use motcua_store::{EventStore, StoredEvent};
use motcua_tests::private_postgres::{PgApp, PrivatePostgres, StopMode};
use motcua_tests::{Client, Cmd, P_ONE_DAY, meta, new_dossier, rid};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tonic::{Code, Status};

/// Concurrent counter desks, each on its own connection.
const DESKS: usize = 16;
/// How long the store's pool waits for a connection before the store reports itself
/// unavailable (`ACQUIRE_TIMEOUT` in services/store/src/postgres/mod.rs): a call made while
/// the database is down waits this long, then is answered UNAVAILABLE.
const POOL_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Once the store knows the database is down (a connection attempt failed with room in the
/// pool), a call is answered within half a second (`KNOWN_DOWN_WAIT` in
/// services/store/src/postgres/reachability.rs), plus slack for a loaded test machine.
const KNOWN_DOWN_BOUND: Duration = Duration::from_secs(3);
/// The intake must serve commands again within this long after the database was started.
const RECOVERY_BOUND: Duration = Duration::from_secs(15);
/// A desk gives up on a call after this long; that shows as DEADLINE_EXCEEDED, which fails the
/// test: the intake must answer, and UNAVAILABLE is the answer while the database is away.
const CALL_TIMEOUT: Duration = Duration::from_secs(25);
/// A desk's pause after a failed call before it starts a new dossier.
const DESK_BACKOFF: Duration = Duration::from_millis(20);
/// What a desk does to a dossier after receiving it.
const LIFECYCLE: [Cmd; 4] = [
    Cmd::Forward,
    Cmd::DigitizeResult,
    Cmd::Resolve,
    Cmd::ReturnResult,
];

/// One restart test at a time: each measures times under a load of its own. (The proxy tests
/// are short and light, and do not wait.)
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One restart under load.
#[derive(Debug, Clone, Copy)]
struct Scenario {
    mode: StopMode,
    /// Load before the database goes away.
    warm_up: Duration,
    /// How long the database stays down.
    down_for: Duration,
    /// Load after the intake has recovered.
    after_recovery: Duration,
    /// Whether to send probe calls shortly after the server has exited.
    probe_while_down: bool,
}

impl Scenario {
    /// A 3 s outage between 2 s of load before and 3 s after the recovery.
    fn short(mode: StopMode) -> Self {
        Self {
            mode,
            warm_up: Duration::from_secs(2),
            down_for: Duration::from_secs(3),
            after_recovery: Duration::from_secs(3),
            probe_while_down: false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fast_shutdown_mid_load_is_unavailable_never_a_false_success_and_recovers_by_itself() {
    let _serial = SERIAL.lock().await;
    restart_under_load(
        "a_fast_shutdown_mid_load_is_unavailable_never_a_false_success_and_recovers_by_itself",
        Scenario::short(StopMode::Fast),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_mid_load_is_unavailable_never_a_false_success_and_recovers_by_itself() {
    let _serial = SERIAL.lock().await;
    restart_under_load(
        "a_crash_mid_load_is_unavailable_never_a_false_success_and_recovers_by_itself",
        Scenario::short(StopMode::Immediate),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_made_while_the_database_is_down_are_answered_unavailable_at_once_when_known_down() {
    let _serial = SERIAL.lock().await;
    let scenario = Scenario {
        mode: StopMode::Immediate,
        warm_up: Duration::from_secs(1),
        // The probes go out 0.3 s after the server has exited and wait the pool's 10 s; the
        // second round, sent when they are answered, half a second at most: all are answered well
        // before the start.
        down_for: POOL_ACQUIRE_TIMEOUT + Duration::from_secs(5),
        after_recovery: Duration::from_secs(1),
        probe_while_down: true,
    };
    let Some(outcome) = restart_under_load(
        "calls_made_while_the_database_is_down_are_answered_unavailable_at_once_when_known_down",
        scenario,
    )
    .await
    else {
        return;
    };
    let t = outcome.timeline;
    let mut failures = Vec::new();
    assert_eq!(
        outcome.probes.len(),
        2,
        "a Receive and a Forward were probed"
    );
    for probe in &outcome.probes {
        let what = format!(
            "{} (sent {}, answered {} after {:?}, {:?})",
            probe.call.label(),
            t.at(probe.sent),
            t.at(probe.answered),
            probe.latency(),
            probe.code()
        );
        if probe.code() != Code::Unavailable {
            failures.push(format!("a call made while the database was down: {what}"));
        }
        if probe.answered >= t.start_begin {
            failures.push(format!(
                "a call made while the database was down was not answered before it came \
                 back: {what}"
            ));
        }
        // The pool's wait, plus scheduling slack: not a hang until the client gives up.
        if probe.latency() > POOL_ACQUIRE_TIMEOUT + Duration::from_secs(2) {
            failures.push(format!("answered too late: {what}"));
        }
        println!("  probe while down: {what}");
    }
    assert_eq!(
        outcome.known_down_probes.len(),
        2,
        "a Receive and a Forward were probed again"
    );
    for probe in &outcome.known_down_probes {
        let what = format!(
            "{} (sent {}, answered {} after {:?}, {:?})",
            probe.call.label(),
            t.at(probe.sent),
            t.at(probe.answered),
            probe.latency(),
            probe.code()
        );
        if probe.code() != Code::Unavailable {
            failures.push(format!(
                "a call made once the database was known down: {what}"
            ));
        }
        // A second's wait for a connection, plus scheduling slack: a client with a 2 s
        // deadline hears UNAVAILABLE, not DEADLINE_EXCEEDED.
        if probe.latency() > KNOWN_DOWN_BOUND {
            failures.push(format!(
                "a call made once the database was known down was answered after more than \
                 {KNOWN_DOWN_BOUND:?}: {what}"
            ));
        }
        println!("  probe once known down: {what}");
    }
    // Desks' calls that reached the intake after the database had gone: the same answer.
    let waited: Vec<Duration> = outcome
        .attempts
        .iter()
        .filter(|a| {
            a.sent >= t.stop_begin && a.answered < t.start_begin && a.code() == Code::Unavailable
        })
        .map(Attempt::latency)
        .collect();
    println!(
        "  {} calls sent after the stop began were answered UNAVAILABLE before the start, \
         after {:?}..{:?}",
        waited.len(),
        waited.iter().min(),
        waited.iter().max()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_commit_acknowledgement_is_unavailable_and_its_retry_is_replayed_once() {
    let test = "a_lost_commit_acknowledgement_is_unavailable_and_its_retry_is_replayed_once";
    let Some(pg) = PrivatePostgres::launch(test).await else {
        return;
    };
    let cutter = AckCutter::start(pg.port()).await;
    let app = PgApp::spawn(&pg.url_via(cutter.addr)).await;
    let client = app.client.clone();
    let now = app.now();

    // A command on an existing dossier.
    let received = Call::receive()
        .send(&client, now)
        .await
        .expect("the first Receive");
    let forward = Call::Command {
        cmd: Cmd::Forward,
        dossier_id: received.dossier_id.clone(),
        request_id: rid("forward"),
    };
    cutter.arm();
    let lost = forward.send(&client, now).await;
    assert_eq!(cutter.cuts(), 1, "the proxy dropped one COMMIT's answer");
    let status = lost.expect_err("the answer to the COMMIT never arrived");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let stored = app
        .store
        .dossier_events(&received.dossier_id)
        .await
        .expect("the store reads");
    assert_eq!(
        stored
            .iter()
            .map(|e| (e.seq, e.request_id.as_str()))
            .collect::<Vec<_>>(),
        [
            (1, received.events[0].request_id.as_str()),
            (2, forward.request_id())
        ],
        "the Forward committed although its answer was UNAVAILABLE"
    );
    let retry = forward
        .send(&client, now)
        .await
        .expect("the retry with the same request id succeeds");
    assert!(retry.replayed, "the retry is answered from the record");
    assert_eq!(retry.version, 2);
    assert_eq!(retry.events[0].event_id, stored[1].event_id);
    let after = app
        .store
        .dossier_events(&received.dossier_id)
        .await
        .expect("the store reads");
    assert_eq!(after, stored, "nothing appended twice");

    // A creation with a server-allocated code: the retry finds the same dossier, not a new one.
    let receive = Call::receive();
    let head = app.store.head_position().await.expect("the store reads");
    cutter.arm();
    let lost = receive.send(&client, now).await;
    assert_eq!(cutter.cuts(), 2);
    assert_eq!(
        lost.expect_err("the answer to the COMMIT never arrived")
            .code(),
        Code::Unavailable
    );
    let committed = app
        .store
        .events_after(head, 10)
        .await
        .expect("the store reads");
    assert_eq!(committed.len(), 1, "the Receive committed: {committed:?}");
    assert_eq!(committed[0].request_id, receive.request_id());
    let retry = receive
        .send(&client, now)
        .await
        .expect("the retry with the same request id succeeds");
    assert!(retry.replayed, "the retry is answered from the record");
    assert_eq!(
        retry.dossier_id, committed[0].dossier_id,
        "the same dossier"
    );
    assert_eq!(retry.events[0].event_id, committed[0].event_id);
    assert_eq!(
        app.store.head_position().await.expect("the store reads"),
        head + 1,
        "no second dossier"
    );

    app.stop().await;
    drop(pg);
}

/// The API's contract (proto/motcua/v1/dossier_service.proto, README, the status message)
/// says an UNAVAILABLE command recorded nothing. When the database commits and the connection
/// drops before the acknowledgement arrives (a crash, a failover, a network cut at that
/// moment), the command *was* recorded: the answer must then either be the success it is, or
/// not claim that nothing was recorded. Otherwise a client that believes it, and re-enters the
/// dossier with a new request id, records it twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unavailable_answer_does_not_claim_nothing_was_recorded_when_the_commit_went_through() {
    let test =
        "an_unavailable_answer_does_not_claim_nothing_was_recorded_when_the_commit_went_through";
    let Some(pg) = PrivatePostgres::launch(test).await else {
        return;
    };
    let cutter = AckCutter::start(pg.port()).await;
    let app = PgApp::spawn(&pg.url_via(cutter.addr)).await;
    let now = app.now();
    let received = Call::receive()
        .send(&app.client, now)
        .await
        .expect("the first Receive");
    let forward = Call::Command {
        cmd: Cmd::Forward,
        dossier_id: received.dossier_id.clone(),
        request_id: rid("forward"),
    };
    cutter.arm();
    let answer = forward.send(&app.client, now).await;
    assert_eq!(cutter.cuts(), 1, "the proxy dropped one COMMIT's answer");
    let recorded = app
        .store
        .dossier_events(&received.dossier_id)
        .await
        .expect("the store reads")
        .iter()
        .any(|e| e.request_id == forward.request_id());
    assert!(recorded, "the Forward committed");
    match answer {
        Ok(response) => assert_eq!(response.version, 2, "{response:?}"),
        Err(status) => assert!(
            !status.message().contains("nothing was recorded"),
            "the command was recorded, but the answer says: {:?}: {}",
            status.code(),
            status.message()
        ),
    }
    app.stop().await;
    drop(pg);
}

/// A TCP proxy in front of PostgreSQL that can lose one commit acknowledgement: once armed, it
/// passes the next `COMMIT` on to the server, waits for the server's answer (so the commit has
/// happened), and then closes that connection instead of passing the answer back.
struct AckCutter {
    addr: SocketAddr,
    armed: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
    accept: JoinHandle<()>,
}

/// The `COMMIT` of a transaction as sqlx sends it: a simple-query message ('Q', its length 11
/// including itself, the text with its NUL).
const COMMIT_MESSAGE: &[u8] = b"Q\0\0\0\x0bCOMMIT\0";

impl AckCutter {
    async fn start(server_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port for the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let armed = Arc::new(AtomicBool::new(false));
        let cuts = Arc::new(AtomicUsize::new(0));
        let accept = {
            let (armed, cuts) = (armed.clone(), cuts.clone());
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    // No server: the client's connection just closes.
                    if let Ok(server) = TcpStream::connect(("127.0.0.1", server_port)).await {
                        tokio::spawn(relay(client, server, armed.clone(), cuts.clone()));
                    }
                }
            })
        };
        Self {
            addr,
            armed,
            cuts,
            accept,
        }
    }

    /// Loses the answer to the next `COMMIT` on any connection.
    fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// How many answers were lost so far.
    fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }
}

impl Drop for AckCutter {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies bytes both ways until either side closes, or until the answer to an armed `COMMIT`
/// arrives: then both connections are dropped, the answer with them.
async fn relay(
    client: TcpStream,
    server: TcpStream,
    armed: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let cutting = Arc::new(AtomicBool::new(false));
    let upstream = {
        let cutting = cutting.clone();
        async move {
            let mut buf = vec![0_u8; 64 * 1024];
            loop {
                let n = match client_read.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let chunk = &buf[..n];
                if chunk
                    .windows(COMMIT_MESSAGE.len())
                    .any(|w| w == COMMIT_MESSAGE)
                    && armed.swap(false, Ordering::SeqCst)
                {
                    // Before the COMMIT leaves: whatever the server says next is its answer.
                    cutting.store(true, Ordering::SeqCst);
                }
                if server_write.write_all(chunk).await.is_err() {
                    return;
                }
            }
        }
    };
    let downstream = async move {
        let mut buf = vec![0_u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if cutting.load(Ordering::SeqCst) {
                cuts.fetch_add(1, Ordering::SeqCst);
                return;
            }
            if client_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // Whichever side ends first ends the connection: dropping the halves closes both sockets.
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
    }
}

/// A call as sent, kept so that it can be sent again identically (same request id, same
/// content).
#[derive(Debug, Clone)]
enum Call {
    /// A counter reception; the server allocates the dossier code.
    Receive(Box<pb::ReceiveRequest>),
    Command {
        cmd: Cmd,
        dossier_id: String,
        request_id: String,
    },
}

impl Call {
    fn receive() -> Self {
        Call::Receive(Box::new(pb::ReceiveRequest {
            meta: meta(&rid("receive")),
            dossier: Some(new_dossier(P_ONE_DAY)),
            channel: pb::Channel::Counter as i32,
        }))
    }

    fn request_id(&self) -> &str {
        match self {
            Call::Receive(request) => request.meta.as_ref().map_or("", |m| &m.request_id),
            Call::Command { request_id, .. } => request_id,
        }
    }

    fn label(&self) -> String {
        match self {
            Call::Receive(_) => format!("Receive [{}]", self.request_id()),
            Call::Command {
                cmd,
                dossier_id,
                request_id,
            } => format!("{cmd:?} on {dossier_id} [{request_id}]"),
        }
    }

    /// Sends the call; a call the intake does not answer within [`CALL_TIMEOUT`] comes back as
    /// DEADLINE_EXCEEDED.
    async fn send(
        &self,
        client: &Client,
        now: motcua_domain::time::Instant,
    ) -> Result<pb::CommandResponse, Status> {
        let call = async {
            match self {
                Call::Receive(request) => client
                    .clone()
                    .receive(pb::ReceiveRequest::clone(request))
                    .await
                    .map(tonic::Response::into_inner),
                Call::Command {
                    cmd,
                    dossier_id,
                    request_id,
                } => cmd.send(client, dossier_id, meta(request_id), now).await,
            }
        };
        tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .unwrap_or_else(|_| {
                Err(Status::deadline_exceeded(format!(
                    "the test's client gave up after {CALL_TIMEOUT:?}"
                )))
            })
    }
}

/// One call and its answer.
#[derive(Debug, Clone)]
struct Attempt {
    call: Call,
    sent: Instant,
    answered: Instant,
    result: Result<pb::CommandResponse, Status>,
}

impl Attempt {
    fn latency(&self) -> Duration {
        self.answered - self.sent
    }

    fn code(&self) -> Code {
        self.result.as_ref().map_or_else(Status::code, |_| Code::Ok)
    }
}

type Log = Arc<Mutex<Vec<Attempt>>>;

fn lock(log: &Log) -> std::sync::MutexGuard<'_, Vec<Attempt>> {
    log.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The desks at work.
struct Load {
    stop: Arc<AtomicBool>,
    log: Log,
    desks: Vec<JoinHandle<()>>,
}

impl Load {
    async fn start(app: &PgApp) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let log: Log = Arc::default();
        let clients = join_all((0..DESKS).map(|_| app.new_connection())).await;
        let now = app.now();
        let desks = clients
            .into_iter()
            .map(|client| tokio::spawn(desk(client, now, stop.clone(), log.clone())))
            .collect();
        Self { stop, log, desks }
    }

    /// When the intake first answered OK to a call sent at or after `sent_after`, if it did
    /// at or after `answered_after`.
    fn first_ok(&self, sent_after: Instant, answered_after: Instant) -> Option<Instant> {
        lock(&self.log)
            .iter()
            .filter(|a| a.result.is_ok() && a.sent >= sent_after && a.answered >= answered_after)
            .map(|a| a.answered)
            .min()
    }

    async fn finish(self) -> Vec<Attempt> {
        self.stop.store(true, Ordering::Relaxed);
        for desk in self.desks {
            desk.await.expect("a desk does not panic");
        }
        std::mem::take(&mut *lock(&self.log))
    }
}

/// A counter desk: receives dossiers and takes each through [`LIFECYCLE`]; when a call fails,
/// it leaves that dossier (the test retries the failed call later) and starts a new one.
async fn desk(client: Client, now: motcua_domain::time::Instant, stop: Arc<AtomicBool>, log: Log) {
    'dossiers: while !stop.load(Ordering::Relaxed) {
        let Some(received) = attempt(&client, Call::receive(), now, &log).await else {
            tokio::time::sleep(DESK_BACKOFF).await;
            continue;
        };
        for cmd in LIFECYCLE {
            if stop.load(Ordering::Relaxed) {
                break 'dossiers;
            }
            let call = Call::Command {
                cmd,
                dossier_id: received.dossier_id.clone(),
                request_id: rid(cmd.name()),
            };
            if attempt(&client, call, now, &log).await.is_none() {
                tokio::time::sleep(DESK_BACKOFF).await;
                continue 'dossiers;
            }
        }
    }
}

async fn attempt(
    client: &Client,
    call: Call,
    now: motcua_domain::time::Instant,
    log: &Log,
) -> Option<pb::CommandResponse> {
    let sent = Instant::now();
    let result = call.send(client, now).await;
    let answered = Instant::now();
    let ok = result.as_ref().ok().cloned();
    lock(log).push(Attempt {
        call,
        sent,
        answered,
        result,
    });
    ok
}

/// When things happened.
#[derive(Debug, Clone, Copy)]
struct Timeline {
    began: Instant,
    stop_begin: Instant,
    /// `pg_ctl stop` returned: the server has exited.
    stop_done: Instant,
    start_begin: Instant,
    /// `pg_isready` answered.
    ready: Instant,
    /// The first OK to a call sent after the server had exited.
    recovered: Option<Instant>,
    ended: Instant,
}

impl Timeline {
    fn at(&self, t: Instant) -> String {
        format!(
            "{:.3}s",
            t.saturating_duration_since(self.began).as_secs_f64()
        )
    }
}

/// What a run saw, for the test's own extra checks.
struct Outcome {
    timeline: Timeline,
    /// Every call the desks made, and the probes.
    attempts: Vec<Attempt>,
    /// The probe calls made while the database was down (if the scenario asked for them).
    probes: Vec<Attempt>,
    /// The same calls again once the first were answered: the store knows it is down.
    known_down_probes: Vec<Attempt>,
}

/// Runs the load, takes the database away, brings it back, and checks everything the module
/// documentation lists. `None` when PostgreSQL is not available and the test skips.
async fn restart_under_load(test: &str, scenario: Scenario) -> Option<Outcome> {
    let mut pg = PrivatePostgres::launch(test).await?;
    let app = PgApp::spawn(&pg.url()).await;
    let now = app.now();

    let began = Instant::now();
    let load = Load::start(&app).await;
    // A dossier of the probes' own, which no desk touches.
    let probe_client = app.new_connection().await;
    let probe_dossier = attempt(&probe_client, Call::receive(), now, &load.log)
        .await
        .expect("the probes' dossier is received")
        .dossier_id;
    tokio::time::sleep(scenario.warm_up).await;
    let stop_begin = Instant::now();
    pg.stop(scenario.mode).await;
    let stop_done = Instant::now();
    let probes = scenario.probe_while_down.then(|| {
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let log = Log::default();
            let forward = Call::Command {
                cmd: Cmd::Forward,
                dossier_id: probe_dossier,
                request_id: rid("probe-forward"),
            };
            tokio::join!(
                attempt(&probe_client, Call::receive(), now, &log),
                attempt(&probe_client, forward.clone(), now, &log),
            );
            let first = std::mem::take(&mut *lock(&log));
            // The store now knows the database is down: the same calls again (new request
            // ids) must be answered at once.
            let forward = match forward {
                Call::Command {
                    cmd, dossier_id, ..
                } => Call::Command {
                    cmd,
                    dossier_id,
                    request_id: rid("probe-forward-known-down"),
                },
                other => other,
            };
            tokio::join!(
                attempt(&probe_client, Call::receive(), now, &log),
                attempt(&probe_client, forward, now, &log),
            );
            (first, std::mem::take(&mut *lock(&log)))
        })
    });
    tokio::time::sleep(scenario.down_for).await;
    let start_begin = Instant::now();
    pg.start().await;
    let ready = Instant::now();
    let recovered = loop {
        if let Some(at) = load.first_ok(stop_done, start_begin) {
            break Some(at);
        }
        if start_begin.elapsed() > RECOVERY_BOUND {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(scenario.after_recovery).await;
    let mut attempts = load.finish().await;
    let (probes, known_down_probes) = match probes {
        Some(task) => task.await.expect("the probes do not panic"),
        None => (Vec::new(), Vec::new()),
    };
    let timeline = Timeline {
        began,
        stop_begin,
        stop_done,
        start_begin,
        ready,
        recovered,
        ended: Instant::now(),
    };
    attempts.extend(probes.iter().cloned());
    attempts.extend(known_down_probes.iter().cloned());

    let mut failures = check_timeline(&timeline, &attempts);

    // Every failed call again, same request id, same content.
    let failed: Vec<&Attempt> = attempts.iter().filter(|a| a.result.is_err()).collect();
    let retried = join_all(failed.iter().map(|a| a.call.send(&app.client, now))).await;
    let mut acks: HashMap<String, pb::CommandResponse> = attempts
        .iter()
        .filter_map(|a| {
            let response = a.result.as_ref().ok()?;
            Some((a.call.request_id().to_owned(), response.clone()))
        })
        .collect();
    let (mut replayed, mut fresh) = (0, 0);
    for (original, retry) in failed.iter().zip(retried) {
        match retry {
            Ok(response) => {
                if response.replayed {
                    replayed += 1;
                } else {
                    fresh += 1;
                }
                acks.insert(original.call.request_id().to_owned(), response);
            }
            Err(status) => failures.push(format!(
                "the retry of {} (first answered {:?}) failed after recovery: {status:?}",
                original.call.label(),
                original.code()
            )),
        }
    }

    let events = app
        .store
        .events_after(0, u32::MAX)
        .await
        .expect("the store reads after recovery");
    failures.extend(check_store(&events, &acks));

    report(
        test,
        scenario.mode,
        &timeline,
        &attempts,
        (replayed, fresh),
        events.len(),
    );
    app.stop().await;
    drop(pg);
    assert!(
        failures.is_empty(),
        "{test}: {} problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    Some(Outcome {
        timeline,
        attempts,
        probes,
        known_down_probes,
    })
}

/// What the answers must look like, given when the database was away.
fn check_timeline(t: &Timeline, attempts: &[Attempt]) -> Vec<String> {
    let mut failures = Vec::new();
    let mut complain = |what: String| {
        // Enough to see the pattern without drowning in it.
        if failures.len() < 40 {
            failures.push(what);
        }
    };
    let describe = |a: &Attempt| {
        format!(
            "{}: sent at {}, answered at {} with {}",
            a.call.label(),
            t.at(a.sent),
            t.at(a.answered),
            match &a.result {
                Ok(r) => format!("OK (version {}, replayed {})", r.version, r.replayed),
                Err(s) => format!("{:?}: {}", s.code(), s.message()),
            }
        )
    };
    for a in attempts {
        match &a.result {
            Ok(_) => {
                // The server had exited before the call was sent and was not started again
                // before the answer: nothing can have been committed.
                if a.sent >= t.stop_done && a.answered < t.start_begin {
                    complain(format!(
                        "false success while the database was down: {}",
                        describe(a)
                    ));
                }
            }
            Err(status) if status.code() == Code::Unavailable => {
                if a.answered < t.stop_begin {
                    complain(format!(
                        "UNAVAILABLE while the database was up: {}",
                        describe(a)
                    ));
                }
                if t.recovered.is_some_and(|r| a.sent >= r) {
                    complain(format!(
                        "UNAVAILABLE after the intake had recovered: {}",
                        describe(a)
                    ));
                }
            }
            Err(_) => complain(format!("a failure other than UNAVAILABLE: {}", describe(a))),
        }
    }
    let ok_before = attempts
        .iter()
        .filter(|a| a.result.is_ok() && a.answered < t.stop_begin)
        .count();
    if ok_before == 0 {
        complain("no call succeeded before the database was stopped".into());
    }
    let unavailable = attempts
        .iter()
        .filter(|a| a.code() == Code::Unavailable)
        .count();
    if unavailable == 0 {
        complain(
            "no call was answered UNAVAILABLE: the outage was not exercised (were no calls in \
             flight?)"
                .into(),
        );
    }
    match t.recovered {
        None => complain(format!(
            "the intake did not recover by itself: no command succeeded within \
             {RECOVERY_BOUND:?} after the database was started again"
        )),
        Some(recovered) => {
            if recovered - t.start_begin > RECOVERY_BOUND {
                complain(format!(
                    "recovery took {:?}, more than {RECOVERY_BOUND:?}",
                    recovered - t.start_begin
                ));
            }
            let ok_after = attempts
                .iter()
                .filter(|a| a.result.is_ok() && a.sent >= recovered)
                .count();
            if ok_after == 0 {
                complain("no call sent after the recovery succeeded".into());
            }
        }
    }
    failures
}

/// The store holds exactly the acknowledged commands, each once, in dense sequences.
fn check_store(events: &[StoredEvent], acks: &HashMap<String, pb::CommandResponse>) -> Vec<String> {
    let mut failures = Vec::new();
    let mut complain = |what: String| {
        if failures.len() < 40 {
            failures.push(what);
        }
    };
    for (index, event) in events.iter().enumerate() {
        if event.position != index as u64 + 1 {
            complain(format!(
                "global positions have a gap or are out of order: event {index} is at position \
                 {}",
                event.position
            ));
            break;
        }
    }
    let mut by_dossier: BTreeMap<&str, Vec<&StoredEvent>> = BTreeMap::new();
    let mut by_request: BTreeMap<&str, Vec<&StoredEvent>> = BTreeMap::new();
    for event in events {
        by_dossier.entry(&event.dossier_id).or_default().push(event);
        by_request.entry(&event.request_id).or_default().push(event);
    }
    for (dossier, list) in &mut by_dossier {
        list.sort_by_key(|e| e.seq);
        let seqs: Vec<u64> = list.iter().map(|e| e.seq).collect();
        let expected: Vec<u64> = (1..=list.len() as u64).collect();
        if seqs != expected {
            complain(format!(
                "{dossier}: its events have seqs {seqs:?}, not 1..n"
            ));
        }
    }
    for (request_id, stored) in &by_request {
        let Some(ack) = acks.get(*request_id) else {
            complain(format!(
                "request {request_id} is in the store ({} on {}) but was never answered OK",
                stored.len(),
                stored[0].dossier_id
            ));
            continue;
        };
        let stored_ids: Vec<(&str, u64, &str)> = stored
            .iter()
            .map(|e| (e.dossier_id.as_str(), e.seq, e.event_id.as_str()))
            .collect();
        let acked_ids: Vec<(&str, u64, &str)> = ack
            .events
            .iter()
            .map(|e| (e.dossier_id.as_str(), e.seq, e.event_id.as_str()))
            .collect();
        if stored_ids != acked_ids {
            complain(format!(
                "request {request_id}: the store holds {stored_ids:?}, the answer said \
                 {acked_ids:?} (a duplicate, or a different append)"
            ));
        }
    }
    for (request_id, ack) in acks {
        if !by_request.contains_key(request_id.as_str()) {
            complain(format!(
                "false success: request {request_id} was answered OK (dossier {}, version {}, \
                 replayed {}) but nothing of it is in the store",
                ack.dossier_id, ack.version, ack.replayed
            ));
        }
        if ack.events.last().is_none_or(|last| last.seq != ack.version) {
            complain(format!(
                "request {request_id}: the answer's version {} is not its last event's seq",
                ack.version
            ));
        }
    }
    failures
}

fn report(
    test: &str,
    mode: StopMode,
    t: &Timeline,
    attempts: &[Attempt],
    (replayed, fresh): (usize, usize),
    stored: usize,
) {
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    for a in attempts {
        *codes.entry(format!("{:?}", a.code())).or_default() += 1;
    }
    let unavailable: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.code() == Code::Unavailable)
        .collect();
    let fastest = unavailable.iter().map(|a| a.latency()).min();
    let slowest = unavailable.iter().map(|a| a.latency()).max();
    let recovery = t.recovered.map(|r| {
        format!(
            "{:?} after the start began ({:?} after pg_isready)",
            r - t.start_begin,
            r.saturating_duration_since(t.ready)
        )
    });
    println!(
        "{test}\n  \
         stop -m {mode:?}: began {}, server gone {} ({:?}); start began {}, ready {} ({:?}); \
         recovered {}; load stopped {}\n  \
         recovery: {}\n  \
         {} calls: {codes:?}; UNAVAILABLE answered after {fastest:?}..{slowest:?}\n  \
         retries of the failed calls with the same request id: {replayed} replayed (had \
         committed), {fresh} appended now\n  \
         {stored} events in the store",
        t.at(t.stop_begin),
        t.at(t.stop_done),
        t.stop_done - t.stop_begin,
        t.at(t.start_begin),
        t.at(t.ready),
        t.ready - t.start_begin,
        t.recovered.map_or_else(|| "never".into(), |r| t.at(r)),
        t.at(t.ended),
        recovery.unwrap_or_else(|| "none".into()),
        attempts.len(),
    );
}
