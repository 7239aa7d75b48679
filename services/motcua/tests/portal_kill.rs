//! The national-portal adapter as operators run it, inside `motcua serve` on the embedded
//! store, pointed at the portal simulator over real HTTP: killed with SIGKILL in the middle of
//! syncing and started again, it leaves the portal with every dossier's final state and each
//! progress record once; `motcua portal status` then shows nothing pending.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use motcua_portal_sim::{Faults, SimConfig, Simulator};
use motcua_proto::v1::dossier_service_client::DossierServiceClient;
use tonic::transport::Channel;

mod common;

use common::{
    Node, admin_bearer, connect, embedded_serve, free_port, receive_request, resolve_request,
    with_bearer,
};

const BIN: &str = env!("CARGO_BIN_EXE_motcua");
const DOSSIERS: usize = 300;

impl Node {
    fn start(dir: &Path, port: u16, portal: &str, password_file: &Path) -> Self {
        let child = embedded_serve(dir, port)
            .args(["--portal-url", portal, "--portal-username", "motcua"])
            .arg("--portal-password-file")
            .arg(password_file)
            .args(["--portal-concurrency", "4"])
            .spawn()
            .expect("motcua serve starts");
        Self(child)
    }
}

async fn client(port: u16) -> DossierServiceClient<Channel> {
    DossierServiceClient::new(connect(port).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adapter_killed_mid_sync_leaves_the_portal_exactly_right() {
    let sim = Simulator::new(SimConfig::new("motcua", "bi-mat"));
    // Slow enough that the kill lands in the middle.
    sim.set_faults(Faults {
        latency_ms: 15,
        ..Faults::none()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let portal = format!("http://{}", listener.local_addr().expect("an address"));
    tokio::spawn(motcua_portal_sim::serve(
        listener,
        sim.clone(),
        std::future::pending(),
    ));
    let dir = tempfile::tempdir().expect("a directory");
    let password = dir.path().join("portal-password");
    std::fs::write(&password, "bi-mat\n").expect("the password file");

    let port = free_port();
    let node = Node::start(dir.path(), port, &portal, &password);
    let mut grpc = client(port).await;
    let bearer = admin_bearer(dir.path());
    let mut ids = Vec::new();
    for i in 0..DOSSIERS {
        let response = grpc
            .receive(with_bearer(
                &bearer,
                receive_request(format!("portal-kill-{i}"), "2.000908"),
            ))
            .await
            .expect("received")
            .into_inner();
        if i % 2 == 0 {
            grpc.resolve(with_bearer(
                &bearer,
                resolve_request(format!("portal-kill-resolve-{i}"), &response.dossier_id),
            ))
            .await
            .expect("resolved");
        }
        ids.push((response.dossier_id, if i % 2 == 0 { 2u64 } else { 1 }));
    }
    // Kill once some, not all, have reached the portal.
    let deadline = Instant::now() + Duration::from_secs(60);
    while sim.dossier_count() < 20 {
        assert!(Instant::now() < deadline, "nothing reached the portal");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    node.kill();
    let at_kill = sim.dossier_count();
    assert!(at_kill < DOSSIERS, "the sync finished before the kill");

    sim.set_faults(Faults::none());
    let _node = Node::start(dir.path(), port, &portal, &password);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = ids.iter().all(|(id, version)| {
            sim.dossier(id)
                .is_some_and(|d| d["PhienBan"].as_u64() == Some(*version))
                && sim.progress(id).len() as u64 == *version
        });
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the portal has {} of {DOSSIERS} dossiers",
            sim.dossier_count()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (id, version) in &ids {
        let seqs: Vec<u64> = sim
            .progress(id)
            .iter()
            .filter_map(|p| p["SoThuTu"].as_u64())
            .collect();
        assert_eq!(seqs, (1..=*version).collect::<Vec<_>>(), "{id}");
        let dossier = sim.dossier(id).expect("on the portal");
        assert_eq!(dossier["TrangThaiHoSo"], if *version == 2 { 9 } else { 2 });
    }
    assert_eq!(sim.dossier_count(), DOSSIERS);

    // The operators' view agrees: nothing pending (the node is still running).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let output = Command::new(BIN)
            .args(["portal", "--data-dir"])
            .arg(dir.path())
            .args(["status", "--json"])
            .env("MOTCUA_LOG", "error")
            .env_remove("DATABASE_URL")
            .output()
            .expect("motcua portal status runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let value: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
        if value["status"]["pending"] == 0 {
            assert_eq!(value["status"]["dossiers"], DOSSIERS as u64, "{value}");
            assert_eq!(value["received"], DOSSIERS as u64);
            break;
        }
        assert!(Instant::now() < deadline, "still pending: {value}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // And the Decision 766 dossier-sync score is computed from it.
    let year = common::NODE_YEAR;
    let output = Command::new(BIN)
        .args(["report", "--server", &format!("http://127.0.0.1:{port}")])
        .env("MOTCUA_DATA_DIR", dir.path())
        .args(["--format", "csv", "scores", "--period", year])
        .env_remove("DATABASE_URL")
        .output()
        .expect("motcua report runs");
    let csv = String::from_utf8_lossy(&output.stdout);
    let row = csv
        .lines()
        .find(|l| l.starts_with("dossier_sync,"))
        .unwrap_or_else(|| panic!("no dossier_sync score: {csv}"));
    assert!(
        row.starts_with(&format!("dossier_sync,{DOSSIERS},{DOSSIERS},")),
        "{row}"
    );
}
