//! A throwaway PostgreSQL cluster owned by one test, for tests that stop, crash and restart the
//! database under the intake (a shared `DATABASE_URL` server cannot be restarted by a test).
//!
//! - [`PrivatePostgres::launch`] finds Debian's binaries (`/usr/lib/postgresql/*/bin`, the
//!   newest; else `initdb` and `pg_ctl` on `PATH`), runs `initdb` into a temporary directory,
//!   and starts the server on a free loopback port with password authentication. When the
//!   test runs as root, the directory is given to the `postgres` user and every server command
//!   runs through `runuser -u postgres --` (the server refuses to run as root).
//! - [`PrivatePostgres::stop`] with [`StopMode::Fast`] (a clean shutdown: sessions are
//!   terminated, in-flight transactions rolled back) or [`StopMode::Immediate`] (the processes
//!   quit at once, the next start runs crash recovery: a crash as far as clients can tell);
//!   [`PrivatePostgres::start`] brings it back on the same port and data; both wait until
//!   `pg_isready` agrees ([`READY_TIMEOUT`]).
//! - Dropping it stops the server (immediately) and removes the directory.
//!
//! When PostgreSQL is not installed, [`PrivatePostgres::launch`] returns `None` and the test
//! skips with a message, unless `MOTCUA_REQUIRE_POSTGRES=1` (CI, `scripts/test-env.sh`): then it
//! fails and says what is missing.
//!
//! [`PgApp`] is the intake served over real TCP on a [`PostgresStore`] connected to such a
//! cluster, the PostgreSQL counterpart of [`crate::spawn_app`].

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use motcua_domain::calendar::{HolidayTable, WorkingCalendar, WorkingTimeProfile};
use motcua_domain::catalog::ProcedureCatalogue;
use motcua_intake::clock::{Clock, ManualClock};
use motcua_intake::{CommandHandler, IntakeConfig};
use motcua_proto::v1::dossier_service_client::DossierServiceClient;
use motcua_store::EventStore;
use motcua_store::postgres::PostgresStore;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::{Client, OFFICER, Officer};

/// How long a start (or a stop) may take before the test fails.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The superuser `initdb` creates; the tests connect as it.
const SUPERUSER: &str = "motcua";
/// The user the server runs as when the tests run as root.
const SERVER_USER: &str = "postgres";

/// How to stop the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// `pg_ctl stop -m fast`: terminates every session (SQLSTATE 57P01 to clients), rolls back
    /// what is in flight, checkpoints and exits.
    Fast,
    /// `pg_ctl stop -m immediate`: every process quits at once, connections just drop; the
    /// next start replays the WAL (crash recovery). What a crash looks like to clients.
    Immediate,
}

impl StopMode {
    fn as_arg(self) -> &'static str {
        match self {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// Whether PostgreSQL tests must run (`MOTCUA_REQUIRE_POSTGRES=1`) rather than skip.
pub fn postgres_required() -> bool {
    std::env::var("MOTCUA_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// The directory holding `initdb`, `pg_ctl`, `postgres` and `pg_isready`: the newest
/// `/usr/lib/postgresql/<version>/bin`, else the directory of `initdb` on `PATH`.
pub fn find_binaries() -> Option<PathBuf> {
    let complete = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres", "pg_isready"]
            .iter()
            .all(|tool| dir.join(tool).is_file())
    };
    let mut versions: Vec<(Vec<u64>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let key = name
                .split('.')
                .map(str::parse::<u64>)
                .collect::<Result<Vec<_>, _>>()
                .ok()?;
            let bin = entry.path().join("bin");
            complete(&bin).then_some((key, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|path| std::env::split_paths(&path).find(|dir| complete(dir)))
}

/// Whether this process runs as root (then the server must run as another user).
fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// Whether `user` exists on this system.
fn user_exists(user: &str) -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .arg(user)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// A TCP port on 127.0.0.1 that nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free TCP port on 127.0.0.1")
}

/// Both streams of a finished command, for failure messages.
fn describe(output: &Output) -> String {
    format!(
        "{}; stdout: {}; stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout).trim(),
        String::from_utf8_lossy(&output.stderr).trim()
    )
}

/// One PostgreSQL cluster in a temporary directory, owned by one test.
#[derive(Debug)]
pub struct PrivatePostgres {
    bin: PathBuf,
    /// `runuser -u <user> --` before every server command (when the test runs as root).
    run_as: Option<&'static str>,
    /// Holds the data directory, the socket and the logs; removed on drop.
    dir: TempDir,
    port: u16,
    password: String,
    running: bool,
}

impl PrivatePostgres {
    /// Creates and starts a cluster. `None` when PostgreSQL is not installed and not
    /// required: the caller returns, and the test passes as skipped (with a message on
    /// stderr). Panics when it is required but missing, or when it is installed but does not
    /// start.
    pub async fn launch(test: &str) -> Option<Self> {
        let missing = |what: String| {
            assert!(
                !postgres_required(),
                "{test}: MOTCUA_REQUIRE_POSTGRES=1, but {what}. Install Debian's postgresql \
                 package (scripts/test-env.sh does so when run as root), or unset \
                 MOTCUA_REQUIRE_POSTGRES to skip this test"
            );
            eprintln!(
                "skipping {test}: {what} (set MOTCUA_REQUIRE_POSTGRES=1 to make this an error)"
            );
        };
        let Some(bin) = find_binaries() else {
            missing(
                "PostgreSQL's binaries (initdb, pg_ctl, postgres, pg_isready) are neither in \
                 /usr/lib/postgresql/*/bin nor on PATH"
                    .into(),
            );
            return None;
        };
        let run_as = if running_as_root() {
            if !user_exists(SERVER_USER) {
                missing(format!(
                    "the test runs as root and there is no '{SERVER_USER}' user to run the \
                     server as"
                ));
                return None;
            }
            Some(SERVER_USER)
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("motcua-pg-")
            .tempdir()
            .expect("a temporary directory for the cluster");
        let path = dir.path().to_string_lossy().into_owned();
        // The path goes through pg_ctl's shell (`-o`): keep it to characters that need no
        // quoting.
        assert!(
            path.chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c)),
            "the temporary directory {path} needs quoting; set TMPDIR to a plain path"
        );
        let mut pg = Self {
            bin,
            run_as,
            dir,
            port: free_port(),
            password: uuid::Uuid::new_v4().simple().to_string(),
            running: false,
        };
        pg.init().await;
        pg.start().await;
        Some(pg)
    }

    /// `postgres://` URL of the `postgres` database, as the superuser.
    pub fn url(&self) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/postgres",
            self.password, self.port
        )
    }

    /// The same URL through another address (a proxy in front of the server).
    pub fn url_via(&self, addr: SocketAddr) -> String {
        format!("postgres://{SUPERUSER}:{}@{addr}/postgres", self.password)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Where the cluster's files are.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn server_log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The last `lines` lines of the server's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.server_log()).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        let mut tail = String::new();
        for line in &all[all.len().saturating_sub(lines)..] {
            let _ = writeln!(tail, "    {line}");
        }
        tail
    }

    /// A server command, as the server's user when running as root, from `/` (which that user
    /// can enter, unlike the test's working directory perhaps).
    fn command(&self, tool: &str) -> std::process::Command {
        let program = self.bin.join(tool);
        let mut command = match self.run_as {
            Some(user) => {
                let mut command = std::process::Command::new("runuser");
                command.arg("-u").arg(user).arg("--").arg(program);
                command
            }
            None => std::process::Command::new(program),
        };
        command.current_dir("/").stdin(Stdio::null());
        command
    }

    /// Runs a server command to completion and panics, with its output, if it fails.
    async fn run(&self, command: std::process::Command, what: &str) {
        let output = tokio::process::Command::from(command)
            .output()
            .await
            .unwrap_or_else(|e| panic!("{what}: could not run it: {e}"));
        assert!(
            output.status.success(),
            "{what} failed: {}\nserver log:\n{}",
            describe(&output),
            self.log_tail(30)
        );
    }

    /// Hands the directory to the server's user and runs `initdb` with a password for the
    /// superuser.
    async fn init(&self) {
        let dir = self.dir.path();
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, format!("{}\n", self.password)).expect("write the password file");
        if let Some(user) = self.run_as {
            let output = tokio::process::Command::new("chown")
                .arg("-R")
                .arg(format!("{user}:"))
                .arg(dir)
                .output()
                .await
                .expect("run chown");
            assert!(
                output.status.success(),
                "chown {user}: {}: {}",
                dir.display(),
                describe(&output)
            );
        }
        let mut initdb = self.command("initdb");
        initdb
            .arg("-D")
            .arg(self.data_dir())
            .arg("-U")
            .arg(SUPERUSER)
            .arg(format!("--pwfile={}", pwfile.display()))
            // Password authentication on every connection: other local users could reach a
            // loopback port too.
            .arg("--auth=scram-sha-256")
            .arg("--no-locale")
            .arg("-E")
            .arg("UTF8")
            // Only initdb's own flush of a throwaway directory; the server runs with fsync on.
            .arg("--no-sync");
        self.run(initdb, "initdb").await;
        let _ = std::fs::remove_file(&pwfile);
    }

    /// Starts the server (on the same port and data as before) and waits until it accepts
    /// connections.
    pub async fn start(&mut self) {
        assert!(!self.running, "start: the server is running already");
        let dir = self.dir.path().display().to_string();
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.server_log())
            .arg("-w")
            .arg("-t")
            .arg(READY_TIMEOUT.as_secs().to_string())
            .arg("-o")
            .arg(format!(
                "-c listen_addresses=127.0.0.1 -c port={} -k {dir} -c fsync=on \
                 -c synchronous_commit=on",
                self.port
            ))
            .arg("start")
            // The server is started in the background and keeps no handle of ours open: its
            // output goes to the log.
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        self.run(pg_ctl, "pg_ctl start").await;
        self.running = true;
        self.wait_ready().await;
    }

    /// Stops the server and waits until it has exited.
    pub async fn stop(&mut self, mode: StopMode) {
        assert!(self.running, "stop: the server is not running");
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(self.data_dir())
            .arg("-m")
            .arg(mode.as_arg())
            .arg("-w")
            .arg("-t")
            .arg(READY_TIMEOUT.as_secs().to_string())
            .arg("stop");
        self.run(pg_ctl, &format!("pg_ctl stop -m {}", mode.as_arg()))
            .await;
        self.running = false;
    }

    /// Stops the server with `mode` and starts it again.
    pub async fn restart(&mut self, mode: StopMode) {
        self.stop(mode).await;
        self.start().await;
    }

    /// Waits until `pg_isready` says the server accepts connections, at most
    /// [`READY_TIMEOUT`].
    pub async fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            let status = tokio::process::Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-t", "1", "-p"])
                .arg(self.port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await
                .expect("run pg_isready");
            if status.success() {
                return;
            }
            assert!(
                started.elapsed() < READY_TIMEOUT,
                "PostgreSQL did not accept connections on 127.0.0.1:{} within {READY_TIMEOUT:?}; \
                 server log:\n{}",
                self.port,
                self.log_tail(30)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.running {
            // Immediate: nothing in it is worth a checkpoint. The directory goes next.
            let _ = self
                .command("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "immediate", "-w", "-t", "30", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            self.running = false;
        }
    }
}

/// The intake over real TCP on a [`PostgresStore`], with a manual clock at
/// [`crate::default_start`].
#[derive(Debug)]
pub struct PgApp {
    /// Calls as [`OFFICER`].
    pub client: Client,
    /// The same store the server writes to, for reading the raw stream back.
    pub store: Arc<PostgresStore>,
    pub clock: Arc<ManualClock>,
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl PgApp {
    /// Connects a store to `url` (migrating it) and serves the intake on it.
    pub async fn spawn(url: &str) -> Self {
        let store = Arc::new(
            PostgresStore::connect(url)
                .await
                .expect("the PostgreSQL store connects and migrates"),
        );
        let clock = Arc::new(ManualClock::new(crate::default_start()));
        let handler = CommandHandler::new(
            store.clone() as Arc<dyn EventStore>,
            Arc::new(WorkingCalendar::new(
                WorkingTimeProfile::standard(),
                HolidayTable::builtin(),
            )),
            Arc::new(ProcedureCatalogue::sample()),
            clock.clone() as Arc<dyn Clock>,
        );
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port on localhost");
        let addr = listener.local_addr().expect("the listener's address");
        let (shutdown, signal) = oneshot::channel::<()>();
        let server = tokio::spawn(motcua_intake::serve(
            listener,
            handler,
            IntakeConfig::default(),
            async move {
                let _ = signal.await;
            },
        ));
        Self {
            client: Self::connect_to(addr).await,
            store,
            clock,
            addr,
            shutdown: Some(shutdown),
            server: Some(server),
        }
    }

    async fn connect_to(addr: SocketAddr) -> Client {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("a valid URI")
            .connect()
            .await
            .expect("the client connects");
        DossierServiceClient::with_interceptor(channel, Officer::named(OFFICER))
    }

    /// A client on a connection of its own, calling as [`OFFICER`].
    pub async fn new_connection(&self) -> Client {
        Self::connect_to(self.addr).await
    }

    /// The intake's clock.
    pub fn now(&self) -> motcua_domain::time::Instant {
        self.clock.now()
    }

    /// Shuts the server down gracefully and waits for it; closes the store's pool.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("the server task does not panic")
                .expect("the server stops cleanly");
        }
        self.store.close().await;
    }
}
