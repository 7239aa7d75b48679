//! Operations (issue 8), on the binary: the configuration reference matches the flags, bad
//! settings stop the start with a message naming them, the Prometheus counters move with the
//! traffic, and SIGTERM under load drains and loses no acknowledged event.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use motcua_proto::v1 as pb;
use motcua_proto::v1::dossier_service_client::DossierServiceClient;

mod common;

use common::{
    APPLICANT_ID, APPLICANT_NAME, Node, admin_bearer, connect, embedded_serve, free_port,
    has_sample, receive_request, sample, scrape,
};

const BIN: &str = env!("CARGO_BIN_EXE_motcua");

fn motcua(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env("MOTCUA_DATA_DIR", dir)
        .env_remove("DATABASE_URL")
        .env_remove("KAFKA_BROKERS")
        .output()
        .expect("motcua runs")
}

impl Node {
    fn start(dir: &Path, port: u16, metrics: Option<u16>) -> Self {
        let mut command = embedded_serve(dir, port);
        command.args(["--shutdown-grace-secs", "20"]);
        if let Some(metrics) = metrics {
            command.args(["--metrics-listen", &format!("127.0.0.1:{metrics}")]);
        }
        Self(command.spawn().expect("motcua serve starts"))
    }
}

#[test]
fn the_configuration_reference_is_the_binarys() {
    let output = Command::new(BIN)
        .arg("config-reference")
        .env_clear()
        .output()
        .expect("motcua runs");
    assert!(output.status.success());
    let generated = String::from_utf8(output.stdout).expect("UTF-8");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    let written = std::fs::read_to_string(&path).expect("docs/configuration.md");
    assert!(
        generated == written,
        "docs/configuration.md is stale: run `cargo run -- config-reference > docs/configuration.md`"
    );
}

/// Arguments, environment, and what the error must say.
type BadSetting = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[test]
fn a_bad_setting_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().expect("a directory");
    let cases: &[BadSetting] = &[
        (
            &["serve", "--topic-partitions", "0"],
            &[],
            "--topic-partitions / MOTCUA_TOPIC_PARTITIONS must be at least 1",
        ),
        (
            &["serve"],
            &[("MOTCUA_LISTEN", "not-an-address")],
            "--listen",
        ),
        (
            &["serve", "--auth-public-key", "/nonexistent/key.pem"],
            &[],
            "--auth-public-key / MOTCUA_AUTH_PUBLIC_KEY",
        ),
        (
            &["serve"],
            &[("MOTCUA_SHUTDOWN_GRACE_SECS", "0")],
            "--shutdown-grace-secs",
        ),
        (
            &["serve", "--max-request-bytes", "10"],
            &[],
            "--max-request-bytes / MOTCUA_MAX_REQUEST_BYTES must be at least 1024",
        ),
        (
            &["serve", "--kafka-brokers", "no-port"],
            &[],
            "--kafka-brokers / KAFKA_BROKERS 'no-port' must be host:port",
        ),
        (
            &["serve", "--metrics-listen", "127.0.0.1:99999"],
            &[],
            "--metrics-listen",
        ),
        (&["serve", "--auth-mode", "anonymous"], &[], "--auth-mode"),
        // A year without a holiday table (2028, after the built-in tables) by the node's clock.
        (
            &["serve", "--simulated-clock-start", "2028-06-01T02:00:00Z"],
            &[],
            "there is no holiday table for 2028",
        ),
        // 31 December 2027 17:30 UTC is already 1 January 2028 in Vietnam.
        (
            &["serve", "--simulated-clock-start", "2027-12-31T17:30:00Z"],
            &[],
            "add a file 2028.toml to a directory given with --holiday-dir",
        ),
    ];
    for (args, env, says) in cases {
        let mut command = Command::new(BIN);
        command
            .args(*args)
            .args(["--listen", &format!("127.0.0.1:{}", free_port())])
            .arg("--data-dir")
            .arg(dir.path())
            .env_remove("DATABASE_URL")
            .env_remove("KAFKA_BROKERS")
            .env(
                "MOTCUA_SIMULATED_CLOCK_START",
                common::node_clock_start().to_rfc3339(),
            );
        // An environment variable is only a fair test without the flag that overrides it.
        if env.iter().any(|(k, _)| *k == "MOTCUA_LISTEN") {
            command = Command::new(BIN);
            command
                .args(*args)
                .arg("--data-dir")
                .arg(dir.path())
                .env_remove("DATABASE_URL")
                .env_remove("KAFKA_BROKERS")
                .env(
                    "MOTCUA_SIMULATED_CLOCK_START",
                    common::node_clock_start().to_rfc3339(),
                );
        }
        for (key, value) in *env {
            command.env(key, value);
        }
        let output = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("motcua starts")
            .wait_with_output()
            .expect("it exits");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "{args:?} {env:?} should not start: {stderr}"
        );
        assert!(
            stderr.contains(says),
            "{args:?} {env:?}: the error names the setting ({says}): {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_move_with_the_traffic() {
    let dir = tempfile::tempdir().expect("a directory");
    let (port, metrics) = (free_port(), free_port());
    let _node = Node::start(dir.path(), port, Some(metrics));
    let channel = connect(port).await;
    let bearer = admin_bearer(dir.path());
    let mut client = DossierServiceClient::new(channel);
    const N: usize = 25;
    for i in 0..N {
        let mut request = tonic::Request::new(receive_request(format!("ops-{i}"), "2.000908"));
        request
            .metadata_mut()
            .insert("authorization", bearer.clone());
        client.receive(request).await.expect("received");
    }
    // Refused: no token, and a monitor trying to write.
    let _ = client
        .receive(receive_request("ops-1000".into(), "2.000908"))
        .await;
    let monitor = motcua(
        &[
            "token",
            "issue",
            "--subject",
            "giam-sat",
            "--role",
            "monitor",
        ],
        dir.path(),
    );
    assert!(monitor.status.success());
    let token = String::from_utf8(monitor.stdout).expect("UTF-8");
    let mut request = tonic::Request::new(receive_request("ops-1001".into(), "2.000908"));
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", token.trim()).parse().expect("ascii"),
    );
    let denied = client
        .receive(request)
        .await
        .expect_err("a monitor cannot write");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);

    // The projector and the watcher follow: wait until they applied every event.
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = scrape(metrics);
        let applied = sample(&text, "motcua_projector_events_applied_total", &[]);
        let watcher = sample(
            &text,
            "motcua_feed_events_applied_total",
            &[("reader", "deadline-watcher")],
        );
        // Every reader's lag (the store's head minus its committed position) back to 0.
        let caught_up = ["rates-g1", "deadline-watcher"].iter().all(|reader| {
            let labels = [("reader", *reader), ("lane", "0")];
            has_sample(&text, "motcua_feed_lag", &labels)
                && sample(&text, "motcua_feed_lag", &labels) == 0.0
        });
        if applied >= N as f64 && watcher >= N as f64 && caught_up {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the readers never caught up:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let ok = [("rpc", "Receive"), ("code", "Ok")];
    assert_eq!(sample(&text, "motcua_grpc_requests_total", &ok), N as f64);
    assert_eq!(
        sample(&text, "motcua_grpc_request_duration_seconds_count", &ok),
        N as f64
    );
    assert_eq!(
        sample(
            &text,
            "motcua_events_appended_total",
            &[("event_type", "received")]
        ),
        N as f64
    );
    assert_eq!(
        sample(
            &text,
            "motcua_grpc_requests_total",
            &[("rpc", "Receive"), ("code", "Unauthenticated")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "motcua_auth_refusals_total",
            &[("kind", "denied"), ("rpc", "Receive")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "motcua_auth_refusals_total",
            &[("kind", "unauthenticated")]
        ),
        1.0
    );
    assert!(
        sample(
            &text,
            "motcua_feed_freshness_seconds_count",
            &[("reader", "rates-g1")]
        ) > 0.0
    );
    assert!(text.contains("motcua_overdue_dossiers"), "{text}");
    assert!(text.contains("motcua_build_info"), "{text}");
    // No personal data in the metrics.
    for secret in [APPLICANT_NAME, APPLICANT_ID] {
        assert!(!text.contains(secret), "the metrics carry {secret}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drains_and_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().expect("a directory");
    let port = free_port();
    let mut node = Node::start(dir.path(), port, None);
    let channel = connect(port).await;
    let bearer = admin_bearer(dir.path());

    // Clients keep receiving dossiers; each remembers what the server acknowledged.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let mut client = DossierServiceClient::new(channel.clone());
        let bearer = bearer.clone();
        let stop = stop.clone();
        clients.spawn(async move {
            let mut acknowledged = Vec::new();
            let mut refused = 0u32;
            for i in 0.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let mut request = tonic::Request::new(receive_request(
                    format!("ops-{}", worker * 1_000_000 + i),
                    "2.000908",
                ));
                request
                    .metadata_mut()
                    .insert("authorization", bearer.clone());
                match client.receive(request).await {
                    Ok(response) => acknowledged.push(response.into_inner().dossier_id),
                    // Once the server drains, new calls are refused: never a false success.
                    Err(_) => {
                        refused += 1;
                        if refused > 20 {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            acknowledged
        });
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let signalled = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &node.0.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let exit = loop {
        if let Some(status) = node.0.try_wait().expect("waits") {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(25),
            "the node did not stop within its grace period"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "a clean exit on SIGTERM: {exit:?}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    while let Some(done) = clients.join_next().await {
        acknowledged.extend(done.expect("a client"));
    }
    assert!(
        acknowledged.len() > 20,
        "{} acknowledged",
        acknowledged.len()
    );

    // Every acknowledged dossier is there after a restart.
    let port = free_port();
    let _node = Node::start(dir.path(), port, None);
    let mut client = DossierServiceClient::new(connect(port).await);
    for id in &acknowledged {
        let mut request = tonic::Request::new(pb::GetDossierRequest {
            dossier_id: id.clone(),
        });
        request
            .metadata_mut()
            .insert("authorization", bearer.clone());
        let dossier = client
            .get_dossier(request)
            .await
            .unwrap_or_else(|status| panic!("acknowledged {id} is lost: {status:?}"))
            .into_inner();
        assert_eq!(dossier.version, 1, "{id}");
    }
}

/// Whether the node at `port` answers gRPC reflection.
async fn reflection_answers(port: u16) -> Result<(), tonic::Code> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    let mut client = ServerReflectionClient::new(connect(port).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .map_err(|s| s.code())?
        .into_inner();
    answers.message().await.map_err(|s| s.code())?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_health_answers_without_credentials_unless_reflection_is_asked_for() {
    let dir = tempfile::tempdir().expect("a directory");
    let port = free_port();
    let node = Node::start(dir.path(), port, None);
    let mut health = tonic_health::pb::health_client::HealthClient::new(connect(port).await);
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health needs no token");
    assert_eq!(
        reflection_answers(port).await,
        Err(tonic::Code::Unimplemented),
        "reflection is off by default"
    );
    drop(node);
    let port = free_port();
    let _node = Node(
        embedded_serve(dir.path(), port)
            .arg("--grpc-reflection")
            .spawn()
            .expect("motcua serve starts"),
    );
    assert_eq!(
        reflection_answers(port).await,
        Ok(()),
        "--grpc-reflection serves it"
    );
}

/// `--holiday-dir` lays a year over the built-in tables: with a table for 2028 the node starts
/// in 2028 (without one it refuses, see `a_bad_setting_stops_the_start_naming_it`), its due
/// dates skip that table's days off and are not provisional, and the metric says how far the
/// tables reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holiday_dir_adds_a_year_to_the_built_in_tables() {
    let dir = tempfile::tempdir().expect("a directory");
    let holidays = dir.path().join("holidays");
    std::fs::create_dir(&holidays).expect("a directory");
    std::fs::write(
        holidays.join("2028.toml"),
        "year = 2028\nprovisional = true\nsource = \"test table\"\n\n\
         [[days_off]]\ndate = 2028-05-01\nreason = \"International Workers' Day\"\n",
    )
    .expect("the table");
    let (port, metrics) = (free_port(), free_port());
    // Friday 28 April 2028, 09:00 Vietnam time.
    let _node = Node(
        embedded_serve(dir.path(), port)
            .args(["--simulated-clock-start", "2028-04-28T02:00:00Z"])
            .arg("--holiday-dir")
            .arg(&holidays)
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
            .spawn()
            .expect("motcua serve starts"),
    );
    let mut client = DossierServiceClient::new(connect(port).await);
    let mut request = tonic::Request::new(receive_request("holiday-1".into(), "1.001193"));
    request
        .metadata_mut()
        .insert("authorization", admin_bearer(dir.path()));
    let response = client
        .receive(request)
        .await
        .expect("received")
        .into_inner();
    let Some(pb::dossier_event::Payload::Received(received)) = &response.events[0].payload else {
        panic!("{response:?}")
    };
    // One working day from Friday 09:00 (and the moments the node took to answer): the
    // weekend and Monday 1 May off, so Tuesday 2 May at 09:00.
    let due = received.due_at.as_ref().expect("a due date");
    let tuesday = chrono::DateTime::parse_from_rfc3339("2028-05-02T02:00:00Z")
        .expect("a time")
        .timestamp();
    assert!(
        (tuesday..tuesday + 60).contains(&due.seconds),
        "due {} s after Tuesday 09:00",
        due.seconds - tuesday
    );
    assert!(!received.due_provisional, "2028 has a table now");
    // The last covered day is 31 December 2028: its end is 1 January 2029 00:00 (UTC+7).
    let end = chrono::DateTime::parse_from_rfc3339("2029-01-01T00:00:00+07:00")
        .expect("a time")
        .timestamp() as f64;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = scrape(metrics);
        if sample(&text, "motcua_holiday_table_last_covered_day", &[]) == end {
            break;
        }
        assert!(Instant::now() < deadline, "no coverage metric: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The portal adapter's series exist from its start (issue 21): every counter at 0 (an alert
/// on a rise of the dead letters needs the series before the first one), and the gauges of
/// the backlog and of the dossiers whose portal copy is behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_metrics_exist_at_zero_from_the_start() {
    let sim = motcua_portal_sim::Simulator::new(motcua_portal_sim::SimConfig::new("motcua", "mk"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let portal = format!("http://{}", listener.local_addr().expect("an address"));
    tokio::spawn(motcua_portal_sim::serve(
        listener,
        sim,
        std::future::pending(),
    ));
    let dir = tempfile::tempdir().expect("a directory");
    let password = dir.path().join("portal-password");
    std::fs::write(&password, "mk\n").expect("the password file");
    let (port, metrics) = (free_port(), free_port());
    let _node = Node(
        embedded_serve(dir.path(), port)
            .args(["--portal-url", &portal, "--portal-username", "motcua"])
            .arg("--portal-password-file")
            .arg(&password)
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
            .spawn()
            .expect("motcua serve starts"),
    );
    let names = [
        "motcua_portal_synced_total",
        "motcua_portal_failures_total",
        "motcua_portal_dead_lettered_total",
        "motcua_portal_breaker_opened_total",
        "motcua_portal_reconcile_drifted_total",
        "motcua_portal_backlog_dossiers",
        "motcua_portal_dossiers_behind",
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = common::try_scrape(metrics).unwrap_or_default();
        if names.iter().all(|name| has_sample(&text, name, &[])) {
            for name in names {
                assert_eq!(sample(&text, name, &[]), 0.0, "{name}");
            }
            break;
        }
        assert!(Instant::now() < deadline, "missing portal series: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
