//! `motcua loadgen` (issue 9) against a real node: the province mix exercises every kind of
//! step with no errors, honours `--rate`, and `--simulate-days` leaves reports that look like
//! a province's (counter, postal and online dossiers, resolved on time and late, open ones).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::{Node, embedded_serve, free_port};

const BIN: &str = env!("CARGO_BIN_EXE_motcua");

/// Where the node's clock is placed: Saturday 7 March 2026, 23:00 Vietnam time, a night
/// before a day off, so the simulated days must find the office mornings themselves and
/// nothing depends on the day the test runs.
const NODE_CLOCK_START: &str = "2026-03-07T16:00:00Z";

impl Node {
    fn start(dir: &Path, port: u16, clock_rate: Option<&str>) -> Self {
        let mut command = embedded_serve(dir, port);
        command.args(["--simulated-clock-start", NODE_CLOCK_START]);
        if let Some(rate) = clock_rate {
            command.args(["--simulated-clock-rate", rate]);
        }
        let node = Self(command.spawn().expect("motcua serve starts"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
            || !dir.join("auth/admin.token").exists()
        {
            assert!(Instant::now() < deadline, "the node did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        node
    }
}

fn motcua(dir: &Path, args: &[&str]) -> Value {
    let output = Command::new(BIN)
        .args(args)
        .env("MOTCUA_DATA_DIR", dir)
        .env_remove("DATABASE_URL")
        .env_remove("KAFKA_BROKERS")
        .output()
        .expect("motcua runs");
    assert!(
        output.status.success(),
        "motcua {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON")
}

/// The province's figures for the current Vietnam month, once the projector has caught up
/// with `received` dossiers.
fn report(dir: &Path, server: &str, period: &str, received: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let report = motcua(
            dir,
            &[
                "report", "--server", server, "--format", "json", "rates", "--period", period,
            ],
        );
        if report["received"].as_u64() >= Some(received) {
            return report;
        }
        assert!(
            Instant::now() < deadline,
            "the report never caught up: {report}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_province_mix_takes_every_kind_of_step_without_errors_at_the_asked_rate() {
    let dir = tempfile::tempdir().expect("a directory");
    let port = free_port();
    let _node = Node::start(dir.path(), port, None);
    let server = format!("http://127.0.0.1:{port}");
    let summary = motcua(
        dir.path(),
        &[
            "loadgen",
            "--server",
            &server,
            "--duration",
            "6",
            "--warmup",
            "1",
            "--concurrency",
            "8",
            "--rate",
            "250",
            "--json",
        ],
    );
    assert_eq!(summary["mix"], "province");
    assert_eq!(summary["errors"], 0, "{summary}");
    // Only the cap is checked, with the bound that holds on any machine: in a window of d
    // seconds the limiter (no burst) grants at most 250 d + 1 commands, and at most
    // `concurrency` were in flight when it opened. A busy machine only lowers the rate.
    let rate = summary["throughput_per_s"].as_f64().expect("a rate");
    let measured = summary["seconds"].as_f64().expect("the measured seconds");
    assert!(
        rate > 0.0 && rate <= 250.0 + (8.0 + 1.0) / measured,
        "--rate 250 is honoured: {summary}"
    );
    for rpc in [
        "SubmitOnline",
        "AcceptOnline",
        "Receive",
        "RecordDigitization",
        "Forward",
        "RequestSupplement",
        "ReceiveSupplement",
        "RequestFees",
        "RecordPayment",
        "Resolve",
        "ReturnResult",
    ] {
        assert!(
            summary["per_rpc"][rpc]["count"].as_u64() > Some(0),
            "{rpc} in the mix: {summary}"
        );
        assert!(summary["per_rpc"][rpc]["p99_ms"].is_number());
    }
    assert!(
        summary["left_open_to_end_late"].as_u64() > Some(0),
        "a share is left to end late: {summary}"
    );
    // The node's clock: March 2026 (the run lasts seconds at the real rate).
    let month = "2026-03".to_owned();
    let received = summary["per_rpc"]["SubmitOnline"]["count"]
        .as_u64()
        .unwrap_or(0);
    let report = report(dir.path(), &server, &month, received);
    assert_eq!(report["identity_holds"], true, "{report}");
    for channel in ["received_counter", "received_online", "received_postal"] {
        assert!(report[channel].as_u64() > Some(0), "{channel}: {report}");
    }
}

#[test]
fn simulated_days_leave_a_provinces_reports() {
    let dir = tempfile::tempdir().expect("a directory");
    let port = free_port();
    // A day in 10 seconds.
    let _node = Node::start(dir.path(), port, Some("8640"));
    let server = format!("http://127.0.0.1:{port}");
    let summary = motcua(
        dir.path(),
        &[
            "loadgen",
            "--server",
            &server,
            "--simulate-days",
            "2",
            "--clock-rate",
            "8640",
            "--dossiers-per-day",
            "150",
            "--concurrency",
            "8",
            "--late-share",
            "0.2",
            "--json",
        ],
    );
    assert_eq!(summary["errors"], 0, "{summary}");
    assert_eq!(summary["simulated_days"], 2.0);
    let created = summary["per_rpc"]["SubmitOnline"]["count"]
        .as_u64()
        .unwrap_or(0)
        + summary["per_rpc"]["Receive"]["count"].as_u64().unwrap_or(0);
    assert!(created > 50, "about 150 a day arrive: {summary}");
    // The simulated days are Monday 9 and Tuesday 10 March 2026, from the office morning
    // after the node's Saturday night.
    assert_eq!(
        summary["simulated_from"], "2026-03-09T00:00:00+00:00",
        "{summary}"
    );
    let report = report(dir.path(), &server, "2026-03", 1);
    assert_eq!(report["identity_holds"], true, "{report}");
    assert!(report["received"].as_u64() > Some(50), "{report}");
    assert!(report["resolved"].as_u64() > Some(0), "{report}");
    assert!(
        report["in_progress"].as_u64() > Some(0),
        "work carries over: {report}"
    );
    assert!(
        report["received_online"].as_u64() > report["received_counter"].as_u64(),
        "mostly online: {report}"
    );
}

#[test]
fn a_generated_history_is_a_consistent_store_that_a_node_reports_on() {
    let dir = tempfile::tempdir().expect("a directory");
    let output = Command::new(BIN)
        .args(["history", "generate", "--dossiers", "400", "--days", "20"])
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("DATABASE_URL")
        .output()
        .expect("motcua runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("400 dossiers, "), "{stdout}");
    // The same seed again appends nothing.
    let again = Command::new(BIN)
        .args(["history", "generate", "--dossiers", "400", "--days", "20"])
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("DATABASE_URL")
        .output()
        .expect("motcua runs");
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("400 were there already"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    let port = free_port();
    let _node = Node::start(dir.path(), port, None);
    let server = format!("http://127.0.0.1:{port}");
    let report = report(dir.path(), &server, "2026-01", 400);
    assert_eq!(report["received"], 400, "{report}");
    assert_eq!(report["identity_holds"], true, "{report}");
    assert!(report["resolved"].as_u64() > Some(0), "{report}");
    // The node carries on with the store: a new dossier gets the next free code.
    let received = motcua(
        dir.path(),
        &[
            "dossier",
            "--server",
            &server,
            "--json",
            "receive",
            "--procedure",
            "2.000908",
            "--unit",
            "000.00.01.H22",
            "--applicant-name",
            "Lê Văn C",
            "--applicant-id",
            "001088012345",
        ],
    );
    assert!(
        received["dossier_id"].is_string() || received["dossier"].is_object(),
        "{received}"
    );
}
