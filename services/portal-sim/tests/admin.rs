//! The admin API, the in-process accessors it mirrors, and the binary.

mod common;

use std::process::Stdio;

use common::{PASSWORD, USER, dossier, record, start};
use motcua_portal_sim::{Faults, FaultsUpdate};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

#[tokio::test]
async fn admin_dossiers_shows_what_was_synced() {
    let s = start().await;
    let token = s.login().await;
    s.sync(&token, false, &dossier("H22-A1")).await;
    s.sync(&token, false, &dossier("H22-A2")).await;
    s.push(&token, &[record("H22-A1", 2), record("H22-A1", 1)])
        .await;
    let view = s.get("/admin/dossiers").await.json();
    assert_eq!(view["dossiers"]["H22-A1"], dossier("H22-A1"));
    assert_eq!(view["dossiers"]["H22-A2"], dossier("H22-A2"));
    assert_eq!(
        view["progress"]["H22-A1"],
        json!([record("H22-A1", 1), record("H22-A1", 2)])
    );
    assert_eq!(view, s.sim.snapshot());
    assert_eq!(s.sim.dossiers().len(), 2);
    s.shutdown().await;
}

#[tokio::test]
async fn admin_stats_counts_per_service_and_outcome() {
    let s = start().await;
    let token = s.login().await;
    s.post("/login", &json!({"username": USER, "password": "x"}))
        .await;
    s.sync(&token, false, &dossier("H22-B1")).await;
    s.sync(&token, false, &dossier("H22-B1")).await;
    s.push(&token, &[record("H22-B1", 1)]).await;
    s.push(&token, &[record("H22-B1", 1)]).await;
    s.lookup(&token, "H22-B1").await;
    s.lookup("het-han", "H22-B1").await;
    let stats = s.get("/admin/stats").await.json();
    assert_eq!(
        stats,
        json!({
            "requests": {
                "CapNhatTienDoHoSoMC": {"0": 2},
                "DongBoHoSoMC": {"-1": 1, "0": 1},
                "LayThongTinHoSo": {"-2": 1, "0": 1},
                "login": {"0": 1, "401": 1}
            },
            "create_conflicts": 1,
            "duplicate_progress": 1,
            "progress_accepted": 1
        })
    );
    assert_eq!(serde_json::to_value(s.sim.stats()).expect("JSON"), stats);
    assert_eq!(s.sim.stats().total("DongBoHoSoMC"), 2);
    s.shutdown().await;
}

#[tokio::test]
async fn admin_faults_merges_validates_and_clears() {
    let s = start().await;
    let view = s.get("/admin/faults").await.json();
    assert_eq!(view["error_rate"], 0.0);
    assert_eq!(view["reject"], json!([]));

    s.faults(json!({"error_rate": 0.2, "latency_ms": 5, "reject": ["H22-X"]}))
        .await;
    let view = s.faults(json!({"drop_rate": 0.05})).await;
    assert_eq!(view["error_rate"], 0.2, "kept");
    assert_eq!(view["drop_rate"], 0.05);
    assert_eq!(view["latency_ms"], 5);
    assert_eq!(view["reject"], json!(["H22-X"]));
    assert_eq!(s.sim.faults().drop_rate, 0.05);

    for bad in [
        json!({"error_rate": 1.5}),
        json!({"timeout_rate": -0.1}),
        json!({"outage_secs": -3}),
        json!({"eror_rate": 0.1}),
        json!({"latency_ms": "slow"}),
    ] {
        let reply = s.post("/admin/faults", &bad).await;
        assert_eq!(reply.status, 400, "{bad}");
        let error: Value = serde_json::from_slice(&reply.body).expect("JSON");
        assert!(error["error"].is_string(), "{error}");
    }
    assert_eq!(s.sim.faults().error_rate, 0.2, "nothing applied");
    let bad_json = common::send(s.addr, "POST", "/admin/faults", None, b"{")
        .await
        .expect("a reply");
    assert_eq!(bad_json.status, 400);

    let view = s
        .faults(json!({"clear": true, "malformed_rate": 0.1}))
        .await;
    assert_eq!(view["error_rate"], 0.0);
    assert_eq!(view["malformed_rate"], 0.1);

    // In process, the same settings.
    s.sim.set_faults(Faults::none());
    assert_eq!(s.get("/admin/faults").await.json()["malformed_rate"], 0.0);
    s.sim
        .update_faults(&FaultsUpdate {
            timeout_rate: Some(0.3),
            ..FaultsUpdate::default()
        })
        .expect("in range");
    assert_eq!(s.get("/admin/faults").await.json()["timeout_rate"], 0.3);
    s.shutdown().await;
}

#[tokio::test]
async fn admin_reset_starts_over() {
    let s = start().await;
    let token = s.login().await;
    s.sync(&token, false, &dossier("H22-Z1")).await;
    s.push(&token, &[record("H22-Z1", 1)]).await;
    s.faults(json!({"error_rate": 0.5, "reject": ["H22-Z2"], "outage_secs": 60}))
        .await;
    let reply = s.post("/admin/reset", &json!({})).await.json();
    assert_eq!(reply, json!({"ok": true}));
    assert_eq!(s.sim.dossier_count(), 0);
    assert!(s.sim.progress("H22-Z1").is_empty());
    assert!(s.sim.faults().is_none());
    assert!(s.sim.outage_remaining().is_none());
    assert_eq!(s.sim.session_count(), 0);
    assert_eq!(s.sim.stats(), Default::default());
    assert_eq!(s.lookup(&token, "H22-Z1").await["error_code"], "-2");
    let token = s.login().await;
    assert_eq!(s.lookup(&token, "H22-Z1").await["error_code"], "-1");
    // In process, the same.
    s.sync(&token, false, &dossier("H22-Z1")).await;
    s.sim.reset();
    assert_eq!(
        s.get("/admin/dossiers").await.json(),
        json!({"dossiers": {}, "progress": {}})
    );
    s.shutdown().await;
}

#[tokio::test]
async fn the_binary_serves_and_stops_on_sigterm() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_motcua-portal-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--session-ttl-secs",
            "120",
            "--latency-ms",
            "1",
        ])
        .env("MOTCUA_PORTAL_SIM_USERNAME", USER)
        .env("MOTCUA_PORTAL_SIM_PASSWORD", PASSWORD)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    tokio::time::timeout(common::LIMIT, stdout.read_line(&mut line))
        .await
        .expect("it prints where it listens")
        .expect("a line");
    let addr = line
        .trim()
        .strip_prefix("motcua-portal-sim listening on http://")
        .unwrap_or_else(|| panic!("unexpected: {line}"))
        .parse()
        .expect("an address");

    let reply = common::post(
        addr,
        "/login",
        &json!({"username": USER, "password": PASSWORD}),
    )
    .await
    .json();
    assert_eq!(reply["error_code"], "0");
    assert_eq!(reply["expires_in"], 120);
    let faults = common::send(addr, "GET", "/admin/faults", None, b"")
        .await
        .expect("a reply")
        .json();
    assert_eq!(faults["latency_ms"], 1);

    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let status = tokio::time::timeout(common::LIMIT, child.wait())
        .await
        .expect("it stops")
        .expect("a status");
    assert!(status.success(), "{status}");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).await.expect("stdout");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .await
        .expect("stderr");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    for output in [&line, &rest, &stderr] {
        assert!(!output.contains(PASSWORD), "the password leaked: {output}");
    }
}

#[tokio::test]
async fn the_binary_refuses_bad_fault_flags() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_motcua-portal-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--password",
            "p",
            "--error-rate",
            "2",
        ])
        .output()
        .await
        .expect("the binary runs");
    assert!(!output.status.success());
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_motcua-portal-sim"))
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("MOTCUA_PORTAL_SIM_PASSWORD")
        .output()
        .await
        .expect("the binary runs");
    assert!(!output.status.success(), "a password is required");
}
