//! What the binary's tests share: free loopback ports, a connection that waits for the node,
//! the node's administrator token, a receive request, a metrics scrape, the test
//! environment's PostgreSQL and broker, and the deployment files as JSON.
// Each test file uses only some of these.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener as StdListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use motcua_proto::v1 as pb;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

/// The applicant of [`receive_request`] (tests check it never leaks).
pub const APPLICANT_NAME: &str = "Trần Thị B";
pub const APPLICANT_ID: &str = "001077012345";

/// Where the nodes' clocks are placed: Tuesday 10 March 2026, 09:00 Vietnam time (an office
/// morning, inside the built-in holiday tables), so no test depends on the day it runs.
const NODE_CLOCK_BASE: &str = "2026-03-10T02:00:00Z";

/// The Vietnam year of [`node_clock_start`]: the period every fresh event of a test falls in.
pub const NODE_YEAR: &str = "2026";

/// The instant a node started now should read: [`NODE_CLOCK_BASE`] plus the real time since
/// this test process first asked, so a node restarted within a test never sees its clock go
/// back.
pub fn node_clock_start() -> chrono::DateTime<chrono::Utc> {
    static FIRST: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let first = *FIRST.get_or_init(Instant::now);
    let base = chrono::DateTime::parse_from_rfc3339(NODE_CLOCK_BASE)
        .expect("a time")
        .with_timezone(&chrono::Utc);
    base + chrono::Duration::from_std(first.elapsed()).expect("a duration")
}

/// `motcua serve` in the embedded mode: SQLite in `dir`, gRPC on loopback `port`, warnings
/// only and the output dropped, and no PostgreSQL or broker even where the test environment
/// offers them. Callers add their own flags and spawn it.
pub fn embedded_serve(dir: &Path, port: u16) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_motcua"));
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir)
        .env(
            "MOTCUA_SIMULATED_CLOCK_START",
            node_clock_start().to_rfc3339(),
        )
        .env("MOTCUA_LOG", "warn")
        .env_remove("DATABASE_URL")
        .env_remove("KAFKA_BROKERS")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// A process of the binary, killed if the test ends (or panics) while it runs.
pub struct Node(pub Child);

impl Node {
    /// kill -9, as a crash would.
    pub fn kill(mut self) {
        self.0.kill().expect("kill -9");
        self.0.wait().expect("reaped");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port()
}

/// A channel to the node on `port`, waiting up to 30 s for it to come up.
pub async fn connect(port: u16) -> Channel {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(channel) = Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("a URI")
            .connect()
            .await
        {
            return channel;
        }
        assert!(Instant::now() < deadline, "the node did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `Bearer <the administrator token the node created in its data directory>`.
pub fn admin_bearer(dir: &Path) -> MetadataValue<Ascii> {
    let token = std::fs::read_to_string(dir.join("auth/admin.token")).expect("the admin token");
    format!("Bearer {}", token.trim()).parse().expect("ascii")
}

/// `body` with `bearer` in its `authorization` metadata.
pub fn with_bearer<T>(bearer: &MetadataValue<Ascii>, body: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(body);
    request
        .metadata_mut()
        .insert("authorization", bearer.clone());
    request
}

/// Resolves `dossier_id` (approved), under `request_id`.
pub fn resolve_request(request_id: String, dossier_id: &str) -> pb::ResolveRequest {
    pb::ResolveRequest {
        meta: Some(pb::CommandMeta {
            request_id,
            ..Default::default()
        }),
        dossier_id: dossier_id.to_owned(),
        ..Default::default()
    }
}

/// A counter reception at unit 000.00.01.H22 under `procedure`.
pub fn receive_request(request_id: String, procedure: &str) -> pb::ReceiveRequest {
    pb::ReceiveRequest {
        meta: Some(pb::CommandMeta {
            request_id,
            ..Default::default()
        }),
        dossier: Some(pb::NewDossier {
            procedure_code: procedure.into(),
            receiving_unit: "000.00.01.H22".into(),
            applicant: Some(pb::Applicant {
                r#type: pb::ApplicantType::Person as i32,
                name: APPLICANT_NAME.into(),
                identity_number: APPLICANT_ID.into(),
                phone: String::new(),
            }),
            ..Default::default()
        }),
        channel: pb::Channel::Counter as i32,
    }
}

/// One scrape of the metrics endpoint on `port` (plain HTTP/1.1, as Prometheus does).
pub fn scrape(port: u16) -> String {
    try_scrape(port).unwrap_or_else(|| panic!("no metrics answered on port {port}"))
}

/// [`scrape`], or `None` while the endpoint is not up (or answers anything but 200).
pub fn try_scrape(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.starts_with("HTTP/1.1 200").then_some(response)
}

/// The sum of the samples `name{labels…}` whose labels include every one of `labels` (0 when
/// there are none: see [`has_sample`]).
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(text, name, labels).sum()
}

/// Whether the scrape has a sample `name{labels…}` with every one of `labels`.
pub fn has_sample(text: &str, name: &str, labels: &[(&str, &str)]) -> bool {
    samples(text, name, labels).next().is_some()
}

fn samples<'a>(
    text: &'a str,
    name: &'a str,
    labels: &'a [(&'a str, &'a str)],
) -> impl Iterator<Item = f64> + 'a {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(move |l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(move |l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
}

/// The value of `var` (set by `scripts/test-env.sh`), or `None` with a message: the test
/// skips, unless `require` is `1`, which makes a missing value a failure.
pub fn required(var: &str, require: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.trim().is_empty() => Some(value),
        _ => {
            assert!(
                std::env::var(require).as_deref() != Ok("1"),
                "{require}=1 but {var} is not set: run through scripts/test-env.sh"
            );
            eprintln!("skipping: {var} is not set");
            None
        }
    }
}

/// A fresh database named `prefix_<random>` on the server of `url`; its URL.
pub async fn fresh_database(url: &str, prefix: &str) -> String {
    use sqlx::{ConnectOptions, Executor};
    let admin = sqlx::postgres::PgConnectOptions::from_str(url).expect("a PostgreSQL URL");
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let mut conn = admin.connect().await.expect("connects");
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("a fresh database");
    admin.database(&name).to_url_lossy().to_string()
}

/// The deployment directory, `deploy/`.
pub fn deploy_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// The YAML documents of `path` as JSON, with Compose's `<<: *anchor` merge keys applied as
/// Docker applies them.
pub fn yaml_documents(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut docs = Vec::new();
    for document in serde_norway::Deserializer::from_str(&text) {
        let mut yaml: serde_norway::Value = serde::Deserialize::deserialize(document)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
        yaml.apply_merge()
            .unwrap_or_else(|e| panic!("{}: merge keys: {e}", path.display()));
        let value: serde_json::Value =
            serde_json::to_value(yaml).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if !value.is_null() {
            docs.push(value);
        }
    }
    docs
}
