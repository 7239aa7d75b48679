//! The distributed system of `deploy/compose.yaml`, run without Docker (no container engine
//! runs on the project's machines): every motcua service of the compose file as a process of
//! its own, with the file's command and the environment the image and the file give it, on
//! the test environment's PostgreSQL and broker in place of those containers, and the portal
//! simulator in place of its. Container paths, host names and ports are rewritten to a
//! temporary directory and loopback; a variable the test does not know how to rewrite fails
//! it, so the file cannot drift away from what is tested here.
//!
//! Traffic then crosses every service: dossiers received and resolved through `intake`, stored
//! in PostgreSQL, carried to Kafka by `relay`, projected by `projector run`, followed by
//! `deadlines`, and synced to the portal by `portal-sync`; each one's metrics show its part,
//! and each stops cleanly on SIGTERM. What this leaves unverified is the image itself
//! (`deploy/Dockerfile`), which only a machine with Docker can build.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use motcua_portal_sim::{SimConfig, Simulator};
use motcua_proto::v1::dossier_service_client::DossierServiceClient;
use serde_json::Value;
use sqlx::Row;

mod common;

use common::{
    admin_bearer, connect, deploy_dir, free_port, fresh_database, has_sample, receive_request,
    required, resolve_request, sample, try_scrape, with_bearer, yaml_documents,
};

const BIN: &str = env!("CARGO_BIN_EXE_motcua");
const DOSSIERS: usize = 30;
/// A unit of this test's own: dossier codes are numbered per unit and day in each store, and
/// the test broker's topics are shared with the other tests (whose stores number their own
/// dossiers of unit 000.00.01.H22 from 1 too).
const UNIT: &str = "000.00.09.H22";
/// The container's state directory (the image's `MOTCUA_DATA_DIR`).
const CONTAINER_HOME: &str = "/var/lib/motcua";

/// The long-running motcua services, in the order they start (as `depends_on` allows).
const SERVICES: [&str; 5] = ["intake", "relay", "projector", "deadlines", "portal-sync"];

/// A service's process, killed if the test ends without stopping it.
struct Service {
    name: String,
    child: Child,
    metrics: u16,
    log: PathBuf,
}

impl Service {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then a clean exit within the compose file's grace period.
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(exit) = self.child.try_wait().expect("waits") {
                assert!(
                    exit.success(),
                    "{} exits cleanly on SIGTERM: {exit:?}\n{}",
                    self.name,
                    self.log()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop on SIGTERM\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Where the test runs what the compose file describes.
struct Rewrite {
    database_url: String,
    brokers: String,
    portal_url: String,
    root: PathBuf,
}

impl Rewrite {
    /// The shared `auth` volume, mounted at `/var/lib/motcua/auth` in every container.
    fn auth_volume(&self) -> PathBuf {
        self.root.join("auth-volume")
    }

    /// `service`'s own `/var/lib/motcua`.
    fn home(&self, service: &str) -> PathBuf {
        self.root.join(service)
    }

    /// A container path, as seen from `service`.
    fn path(&self, service: &str, value: &str) -> String {
        let auth = format!("{CONTAINER_HOME}/auth");
        if let Some(rest) = value.strip_prefix(&auth) {
            format!("{}{rest}", self.auth_volume().display())
        } else if let Some(rest) = value.strip_prefix(CONTAINER_HOME) {
            format!("{}{rest}", self.home(service).display())
        } else if value == "/run/secrets/portal-password" {
            deploy_dir()
                .join("portal-password.dev")
                .display()
                .to_string()
        } else {
            panic!("{service}: no local place for the container path {value}");
        }
    }

    /// One variable of `service`'s environment, for a process on this machine.
    fn variable(&self, service: &str, name: &str, value: &str, ports: &mut Ports) -> String {
        match name {
            "DATABASE_URL" => self.database_url.clone(),
            "KAFKA_BROKERS" => self.brokers.clone(),
            "MOTCUA_PORTAL_URL" => self.portal_url.clone(),
            "MOTCUA_LISTEN" => {
                ports.grpc = free_port();
                format!("127.0.0.1:{}", ports.grpc)
            }
            "MOTCUA_METRICS_LISTEN" => {
                ports.metrics = free_port();
                format!("127.0.0.1:{}", ports.metrics)
            }
            _ if value.starts_with('/') => self.path(service, value),
            _ => {
                assert!(
                    !value.contains("://") && !value.contains(':'),
                    "{service}: {name}={value} names a place the test cannot map"
                );
                value.to_owned()
            }
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Ports {
    grpc: u16,
    metrics: u16,
}

/// The image's `ENV` lines (the defaults every container starts with).
fn image_environment() -> BTreeMap<String, String> {
    let dockerfile =
        std::fs::read_to_string(deploy_dir().join("Dockerfile")).expect("deploy/Dockerfile");
    let mut env = BTreeMap::new();
    let mut in_env = false;
    for line in dockerfile.lines() {
        let line = line.trim();
        let body = if let Some(rest) = line.strip_prefix("ENV ") {
            rest
        } else if in_env {
            line
        } else {
            continue;
        };
        in_env = body.ends_with('\\');
        for pair in body.trim_end_matches('\\').split_whitespace() {
            let (name, value) = pair.split_once('=').expect("ENV NAME=value");
            env.insert(name.to_owned(), value.to_owned());
        }
    }
    assert!(
        env.contains_key("MOTCUA_LISTEN"),
        "the image's ENV: {env:?}"
    );
    env
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `service` of the compose file (its command, the image's environment under the file's)
/// as a process here.
fn start(compose: &Value, service: &str, rewrite: &Rewrite) -> (Service, Ports) {
    let spec = &compose["services"][service];
    let mut env = image_environment();
    if let Some(vars) = spec["environment"].as_object() {
        for (name, value) in vars {
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            env.insert(name.clone(), value);
        }
    }
    let home = rewrite.home(service);
    std::fs::create_dir_all(&home).expect("the service's directory");
    let mut ports = Ports::default();
    let log = rewrite.root.join(format!("{service}.log"));
    let mut command = Command::new(BIN);
    let args: Vec<String> = strings(&spec["command"])
        .into_iter()
        .map(|arg| {
            if arg.starts_with('/') {
                rewrite.path(service, &arg)
            } else {
                arg
            }
        })
        .collect();
    command
        .args(args)
        .current_dir(&home)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MOTCUA_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::from(
            std::fs::File::create(&log).expect("a log file"),
        ))
        .stderr(Stdio::from(
            std::fs::OpenOptions::new()
                .append(true)
                .open(&log)
                .expect("the log file"),
        ));
    for (name, value) in &env {
        command.env(name, rewrite.variable(service, name, value, &mut ports));
    }
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("{service} starts: {e}"));
    (
        Service {
            name: service.to_owned(),
            child,
            metrics: ports.metrics,
            log,
        },
        ports,
    )
}

/// Runs a one-shot service of the compose file (`auth-init`, `topics`) to completion.
fn run_once(compose: &Value, service: &str, rewrite: &Rewrite) {
    let (mut once, _) = start(compose, service, rewrite);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(exit) = once.child.try_wait().expect("waits") {
            assert!(exit.success(), "{service}: {exit:?}\n{}", once.log());
            return;
        }
        assert!(Instant::now() < deadline, "{service} hangs\n{}", once.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `done` holds for the scrape of `service`'s metrics.
async fn wait_for_metrics(service: &Service, what: &str, done: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(text) = try_scrape(service.metrics)
            && done(&text)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {what} never showed in its metrics\n{}",
            service.name,
            service.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Each dossier's version in the store, and in the projector's read model.
async fn versions(pool: &sqlx::PgPool, sql: &str, ids: &[String]) -> BTreeMap<String, i64> {
    sqlx::query(sql)
        .bind(ids)
        .fetch_all(pool)
        .await
        .unwrap_or_default()
        .iter()
        .map(|row| (row.get::<String, _>(0), row.get::<i64, _>(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_services_run_as_separate_processes_and_carry_the_traffic() {
    let Some(url) = required("DATABASE_URL", "MOTCUA_REQUIRE_POSTGRES") else {
        return;
    };
    let Some(brokers) = required("KAFKA_BROKERS", "MOTCUA_REQUIRE_KAFKA") else {
        return;
    };
    let compose = &yaml_documents(&deploy_dir().join("compose.yaml"))[0];

    // The portal simulator, with the compose file's account.
    let sim_env = &compose["services"]["portal-sim"]["environment"];
    let password = std::fs::read_to_string(deploy_dir().join("portal-password.dev"))
        .expect("the portal password");
    assert_eq!(
        sim_env["MOTCUA_PORTAL_SIM_PASSWORD"].as_str(),
        Some(password.trim()),
        "the simulator's password is the secret portal-sync reads"
    );
    let sim = Simulator::new(SimConfig::new(
        sim_env["MOTCUA_PORTAL_SIM_USERNAME"]
            .as_str()
            .expect("a user name"),
        password.trim(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let portal_url = format!("http://{}", listener.local_addr().expect("an address"));
    tokio::spawn(motcua_portal_sim::serve(
        listener,
        sim.clone(),
        std::future::pending(),
    ));

    let dir = tempfile::tempdir().expect("a temporary directory");
    let rewrite = Rewrite {
        database_url: fresh_database(&url, "motcua_compose").await,
        brokers,
        portal_url,
        root: dir.path().to_owned(),
    };
    // auth-init writes into the shared auth volume: its home is the volume's parent.
    std::fs::create_dir_all(rewrite.auth_volume()).expect("the auth volume");
    let auth_init_home = rewrite.home("auth-init");
    std::fs::create_dir_all(&auth_init_home).expect("auth-init's home");
    std::os::unix::fs::symlink(rewrite.auth_volume(), auth_init_home.join("auth"))
        .expect("the volume mounted in auth-init");
    run_once(compose, "auth-init", &rewrite);
    run_once(compose, "topics", &rewrite);

    let mut running = Vec::new();
    let mut intake_port = 0;
    for name in SERVICES {
        let (service, ports) = start(compose, name, &rewrite);
        if name == "intake" {
            intake_port = ports.grpc;
        }
        running.push(service);
    }
    let service = |name: &str| {
        running
            .iter()
            .find(|s| s.name == name)
            .expect("a running service")
    };

    // Traffic through the intake, as a counter terminal with the administrator's token.
    let bearer = admin_bearer(auth_init_home.as_path());
    let mut grpc = DossierServiceClient::new(connect(intake_port).await);
    let mut ids = Vec::new();
    for i in 0..DOSSIERS {
        let mut reception = receive_request(format!("compose-{i}"), "2.000908");
        if let Some(dossier) = reception.dossier.as_mut() {
            dossier.receiving_unit = UNIT.into();
        }
        let response = grpc
            .receive(with_bearer(&bearer, reception))
            .await
            .unwrap_or_else(|e| panic!("received: {e}\n{}", service("intake").log()))
            .into_inner();
        if i % 2 == 0 {
            grpc.resolve(with_bearer(
                &bearer,
                resolve_request(format!("compose-resolve-{i}"), &response.dossier_id),
            ))
            .await
            .expect("resolved");
        }
        ids.push(response.dossier_id);
    }
    let events = (DOSSIERS + DOSSIERS / 2) as f64;

    wait_for_metrics(service("intake"), "the receptions", |text| {
        sample(
            text,
            "motcua_grpc_requests_total",
            &[("rpc", "Receive"), ("code", "Ok")],
        ) == DOSSIERS as f64
    })
    .await;
    wait_for_metrics(service("relay"), "the events published", |text| {
        sample(text, "motcua_relay_published_total", &[]) >= events
    })
    .await;
    wait_for_metrics(service("deadlines"), "the events followed", |text| {
        sample(
            text,
            "motcua_feed_events_applied_total",
            &[("reader", "deadline-watcher")],
        ) >= events
    })
    .await;

    // The projector's read model and the portal reach every dossier's latest version.
    let pool = sqlx::PgPool::connect(&rewrite.database_url)
        .await
        .expect("the database");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let stored = versions(
            &pool,
            "SELECT dossier_id, MAX(seq) FROM events WHERE dossier_id = ANY($1) GROUP BY dossier_id",
            &ids,
        )
        .await;
        let projected = versions(
            &pool,
            "SELECT dossier_id, version FROM rates_g1_dossiers WHERE dossier_id = ANY($1)",
            &ids,
        )
        .await;
        let on_portal: BTreeMap<String, i64> = ids
            .iter()
            .filter_map(|id| {
                let version = sim.dossier(id)?["PhienBan"].as_i64()?;
                Some((id.clone(), version))
            })
            .collect();
        if stored.len() == DOSSIERS && projected == stored && on_portal == stored {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "store {stored:?}\nprojected {projected:?}\nportal {on_portal:?}\n{}\n{}",
            service("projector").log(),
            service("portal-sync").log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for_metrics(service("portal-sync"), "the syncs", |text| {
        sample(text, "motcua_portal_synced_total", &[]) >= DOSSIERS as f64
    })
    .await;
    wait_for_metrics(service("projector"), "its lag", |text| {
        has_sample(text, "motcua_feed_lag", &[("reader", "rates-g1")])
    })
    .await;

    // Every service stops cleanly on SIGTERM, the intake first, as an orchestrator drains.
    for service in running {
        service.stop();
    }
    assert_home_is_private(&rewrite.auth_volume());
}

/// The administrator token auth-init wrote is readable by its owner only.
fn assert_home_is_private(auth: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(auth.join("admin.token"))
        .expect("the administrator token")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "admin.token is private: {mode:o}");
}
