//! The rates projector as users meet it: the `motcua` binary serving dossiers and reports on one
//! port, `motcua report` printing them, a node killed with SIGKILL under load, and
//! `motcua projector rebuild` switching to read models rebuilt from scratch that must equal
//! the incrementally maintained ones.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use motcua_proto::v1 as pb;
use motcua_proto::v1::report_service_client::ReportServiceClient;
use serde_json::Value;
use tonic::Code;
use tonic::Status;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_types::StatusExt;

mod common;

use common::{NODE_YEAR, embedded_serve, free_port};

const BIN: &str = env!("CARGO_BIN_EXE_motcua");

/// A `motcua serve` process on the embedded store in `dir`.
struct Node {
    child: Child,
    server: String,
    dir: std::path::PathBuf,
}

/// Adds the bearer token to every call.
#[derive(Clone)]
struct Bearer(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

impl Node {
    fn start(dir: &Path, port: u16) -> Self {
        let child = embedded_serve(dir, port)
            .spawn()
            .expect("motcua serve starts");
        let server = format!("http://127.0.0.1:{port}");
        DATA_DIRS
            .lock()
            .expect("the registry")
            .push((server.clone(), dir.to_owned()));
        Self {
            child,
            server,
            dir: dir.to_owned(),
        }
    }

    /// A report client sending the node's administrator token.
    async fn client(&self) -> ReportServiceClient<InterceptedService<Channel, Bearer>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(channel) = Channel::from_shared(self.server.clone())
                .expect("a URI")
                .connect()
                .await
                && let Ok(token) = std::fs::read_to_string(self.dir.join("auth/admin.token"))
            {
                let bearer = format!("Bearer {}", token.trim()).parse().expect("ascii");
                return ReportServiceClient::with_interceptor(channel, Bearer(bearer));
            }
            assert!(Instant::now() < deadline, "the node did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no shutdown, no flush, like a power cut of the process.
    fn kill(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reaped");
    }

    /// SIGTERM, and the process exits cleanly. Waits without blocking the runtime: the
    /// test's own connections must stay able to answer the server's GOAWAY.
    async fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waits") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "motcua serve did not stop on SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(status.success(), "motcua serve exits cleanly on SIGTERM");
    }
}

impl Drop for Node {
    /// A failed test leaves no server behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The data directory of the node serving each address (its administrator token is there).
static DATA_DIRS: std::sync::Mutex<Vec<(String, std::path::PathBuf)>> =
    std::sync::Mutex::new(Vec::new());

/// Runs the CLI; a `--server` started by [`Node::start`] is called with that node's
/// administrator token, as a user in the node's directory would.
fn motcua(args: &[&str]) -> Output {
    let server = args
        .iter()
        .position(|a| *a == "--server")
        .and_then(|i| args.get(i + 1));
    let data_dir = server.and_then(|server| {
        DATA_DIRS
            .lock()
            .expect("the registry")
            .iter()
            .find(|(s, _)| s == server)
            .map(|(_, dir)| dir.clone())
    });
    let mut command = Command::new(BIN);
    if let Some(dir) = data_dir {
        command.env("MOTCUA_DATA_DIR", dir);
    }
    command
        .args(args)
        .env("MOTCUA_LOG", "warn")
        .env_remove("DATABASE_URL")
        .env_remove("KAFKA_BROKERS")
        .output()
        .expect("motcua runs")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "motcua failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("UTF-8")
}

/// The Vietnam year of the nodes' placed clocks, the period every fresh event falls in.
fn this_year() -> String {
    NODE_YEAR.to_owned()
}

fn report_json(server: &str, extra: &[&str]) -> Value {
    let year = this_year();
    let mut args = vec![
        "report", "--server", server, "--format", "json", "rates", "--period", &year,
    ];
    args.extend_from_slice(extra);
    serde_json::from_str(&stdout(&motcua(&args))).expect("JSON")
}

/// The figures alone: what must not depend on which generation or when it was asked.
fn figures(mut report: Value) -> Value {
    let object = report.as_object_mut().expect("an object");
    object.remove("generation");
    object.remove("judged_at");
    report
}

/// Waits until the province's year report shows `received` dossiers.
async fn wait_for_received(server: &str, received: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let report = report_json(server, &[]);
        if report["received"].as_i64() == Some(received) {
            return report;
        }
        assert!(
            Instant::now() < deadline,
            "the report never showed {received} received: {report}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn receive(server: &str, unit: &str, channel: &str) {
    stdout(&motcua(&[
        "dossier",
        "--server",
        server,
        "receive",
        "--procedure",
        "2.000908",
        "--unit",
        unit,
        "--channel",
        channel,
        "--applicant-name",
        "Nguyễn Văn A",
        "--applicant-id",
        "001099012345",
    ]));
}

#[tokio::test]
async fn reports_are_served_beside_the_intake_and_printed_as_table_csv_and_json() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let node = Node::start(dir.path(), free_port());
    let mut client = node.client().await;
    let server = node.server.clone();

    receive(&server, "000.00.01.H22", "counter");
    receive(&server, "000.00.01.H22", "postal");
    receive(&server, "000.00.02.H22", "counter");
    let report = wait_for_received(&server, 3).await;
    assert_eq!(report["received_counter"], 2);
    assert_eq!(report["received_postal"], 1);
    assert_eq!(report["in_progress"], 3);
    assert_eq!(report["identity_holds"], true);
    assert_eq!(report["online_rate"]["denominator"], 3);

    let unit = report_json(&server, &["--unit", "000.00.01.H22"]);
    assert_eq!(unit["received"], 2);
    let postal = report_json(&server, &["--channel", "postal"]);
    assert_eq!(postal["received"], 1);

    let year = this_year();
    let table = stdout(&motcua(&[
        "report", "--server", &server, "rates", "--period", &year,
    ]));
    assert!(table.contains("Received"), "{table}");
    assert!(table.contains("online 0, counter 2, postal 1"), "{table}");
    assert!(
        table.contains("Identity") && table.contains("holds"),
        "{table}"
    );

    let csv = stdout(&motcua(&[
        "report", "--server", &server, "--format", "csv", "rates", "--period", &year,
    ]));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "a header and one row: {csv}");
    let header: Vec<&str> = lines[0].split(',').collect();
    let row: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(header.len(), row.len());
    let received = header
        .iter()
        .position(|h| *h == "received")
        .expect("a received column");
    assert_eq!(row[received], "3");

    let scores = stdout(&motcua(&[
        "report", "--server", &server, "--format", "csv", "scores", "--period", &year,
    ]));
    assert!(
        scores.starts_with("score,numerator,denominator,rate"),
        "{scores}"
    );
    assert!(scores.contains("dossier_sync"), "{scores}");

    let overdue = stdout(&motcua(&[
        "report", "--server", &server, "--format", "json", "overdue",
    ]));
    assert_eq!(
        overdue.trim(),
        "[]",
        "nothing received today is overdue yet"
    );

    // Bad input: InvalidArgument naming the field, from the API and from the command line.
    let province = || pb::ReportScope {
        kind: pb::ScopeKind::Province as i32,
        id: String::new(),
    };
    let cases: Vec<(pb::GetReportRequest, &str)> = vec![
        (
            pb::GetReportRequest {
                scope: Some(province()),
                channel: 0,
                period: "2026-13".into(),
            },
            "period",
        ),
        (
            pb::GetReportRequest {
                scope: Some(province()),
                channel: 0,
                period: "2026-06-30..2026-01-01".into(),
            },
            "period",
        ),
        (
            pb::GetReportRequest {
                scope: Some(pb::ReportScope {
                    kind: pb::ScopeKind::ReceivingUnit as i32,
                    id: "not a unit".into(),
                }),
                channel: 0,
                period: "2026".into(),
            },
            "scope.id",
        ),
        (
            pb::GetReportRequest {
                scope: Some(pb::ReportScope {
                    kind: 0,
                    id: String::new(),
                }),
                channel: 0,
                period: "2026".into(),
            },
            "scope.kind",
        ),
        (
            pb::GetReportRequest {
                scope: Some(province()),
                channel: 9,
                period: "2026".into(),
            },
            "channel",
        ),
        (
            pb::GetReportRequest {
                scope: None,
                channel: 0,
                period: "2026".into(),
            },
            "scope",
        ),
    ];
    for (request, field) in cases {
        let status = client
            .get_report(request.clone())
            .await
            .expect_err("a bad request is refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{request:?}");
        let violations = status
            .get_details_bad_request()
            .expect("field violations")
            .field_violations;
        assert!(
            violations.iter().any(|v| v.field == field),
            "{request:?} should name {field}: {violations:?}"
        );
    }
    let status = client
        .list_overdue(pb::ListOverdueRequest {
            scope: Some(province()),
            channel: 0,
            page_size: 5_000,
            page_token: String::new(),
        })
        .await
        .expect_err("too large a page");
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = client
        .list_overdue(pb::ListOverdueRequest {
            scope: Some(province()),
            channel: 0,
            page_size: 10,
            page_token: "not a token".into(),
        })
        .await
        .expect_err("a forged page token");
    assert_eq!(status.code(), Code::InvalidArgument);

    let refused = motcua(&[
        "report", "--server", &server, "rates", "--period", "2026-Q5",
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("InvalidArgument") && stderr.contains("period"),
        "{stderr}"
    );
    // Nothing changed.
    assert_eq!(figures(report_json(&server, &[])), figures(report));
    node.stop().await;
}

#[tokio::test]
async fn a_node_killed_under_load_counts_every_event_once_and_a_rebuild_agrees() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let port = free_port();
    let server = format!("http://127.0.0.1:{port}");
    let mut node = Node::start(dir.path(), port);
    node.client().await;

    // Counter software keeps calling while the node is killed three times mid-flight.
    let mut load = Command::new(BIN)
        .args([
            "loadgen",
            "--server",
            &server,
            "--concurrency",
            "8",
            "--connections",
            "2",
            "--duration",
            "6",
            "--warmup",
            "0",
        ])
        .env("MOTCUA_DATA_DIR", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("loadgen starts");
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        node.kill();
        node = Node::start(dir.path(), port);
        node.client().await;
    }
    let _ = load.wait();

    // Let the projector catch up: the report stops changing.
    let mut last = report_json(&server, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let now = report_json(&server, &[]);
        if figures(now.clone()) == figures(last.clone()) {
            break;
        }
        last = now;
        assert!(Instant::now() < deadline, "the report never settled");
    }
    let incremental = figures(last);
    let received = incremental["received"].as_i64().expect("received");
    assert!(received > 50, "the load recorded dossiers: {incremental}");
    assert!(
        incremental["resolved"].as_i64().expect("resolved") > 0,
        "{incremental}"
    );
    assert_eq!(incremental["identity_holds"], true, "{incremental}");

    // Rebuilt from every stored event, beside the running node: the same figures.
    let rebuild = motcua(&[
        "projector",
        "rebuild",
        "--data-dir",
        dir.path().to_str().expect("a UTF-8 path"),
        "--progress-secs",
        "1",
    ]);
    let log = String::from_utf8_lossy(&rebuild.stderr);
    assert!(rebuild.status.success(), "{log}");
    assert!(log.contains("generation 2 is active"), "{log}");
    let rebuilt = report_json(&server, &[]);
    assert_eq!(rebuilt["generation"], 2, "reports switched over: {rebuilt}");
    assert_eq!(figures(rebuilt), incremental);

    // The live projector follows the new generation: a new dossier shows there.
    receive(&server, "000.00.01.H22", "counter");
    let after = wait_for_received(&server, received + 1).await;
    assert_eq!(after["generation"], 2);
    node.stop().await;
}

/// A read model built under older definitions of the figures (an older model version) is
/// never mixed with the current ones: the node rebuilds it from the event store at start, and
/// the report, answered from the new generation, has the same figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_model_of_older_definitions_is_rebuilt_at_start() {
    use sqlx::ConnectOptions;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let node = Node::start(dir.path(), free_port());
    let server = node.server.clone();
    let _ = node.client().await;
    receive(&server, "000.00.01.H22", "counter");
    receive(&server, "000.00.02.H22", "postal");
    let before = wait_for_received(&server, 2).await;
    assert_eq!(before["generation"], 1);
    node.stop().await;

    // As a read model left by a version before the finality rules would be.
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.path().join("rates.sqlite"))
        .connect()
        .await
        .expect("the read model opens");
    sqlx::query("UPDATE rates_generations SET model_version = 1 WHERE state = 'active'")
        .execute(&mut conn)
        .await
        .expect("an older model version");
    drop(conn);

    let node = Node::start(dir.path(), free_port());
    let server = node.server.clone();
    let _ = node.client().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let after = loop {
        let output = motcua(&[
            "report", "--server", &server, "--format", "json", "rates", "--period", NODE_YEAR,
        ]);
        if output.status.success() {
            let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
            if report["generation"] == 2 {
                break report;
            }
        }
        assert!(Instant::now() < deadline, "the read model was not rebuilt");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(figures(after), figures(before));
    node.stop().await;
}
