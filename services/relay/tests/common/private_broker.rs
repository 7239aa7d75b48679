//! A Tansu broker of one test's own, which the test may freeze (`SIGSTOP`) and thaw
//! (`SIGCONT`), and a TCP proxy in front of a broker that the test may cut and restore: broker
//! outages that keep the broker's data (Tansu's storage is in memory, so a restarted broker
//! would come back empty).
//!
//! The broker is the Tansu 0.6.0 that `scripts/test-env.sh` builds into
//! `${MOTCUA_CACHE_DIR:-$HOME/.cache/motcua}/tansu-0.6.0/bin/tansu`. Without it the tests
//! skip with a message, unless `MOTCUA_REQUIRE_KAFKA=1`: then they fail.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

const TANSU_VERSION: &str = "0.6.0";
/// How long the broker may take to accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Where `scripts/test-env.sh` keeps the Tansu it builds.
pub fn tansu_path() -> PathBuf {
    let cache = std::env::var_os("MOTCUA_CACHE_DIR")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/motcua")
        });
    cache.join(format!("tansu-{TANSU_VERSION}/bin/tansu"))
}

/// The Tansu binary, or `None` (skip) when it is missing and `MOTCUA_REQUIRE_KAFKA` is not 1.
pub fn tansu_binary() -> Option<PathBuf> {
    let path = tansu_path();
    if path.is_file() {
        return Some(path);
    }
    let required = std::env::var("MOTCUA_REQUIRE_KAFKA").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "MOTCUA_REQUIRE_KAFKA=1 but there is no Tansu {TANSU_VERSION} at {}: the broker-outage \
         tests run a broker of their own; run `scripts/test-env.sh -- true` once (without \
         KAFKA_BROKERS) to build it",
        path.display()
    );
    eprintln!(
        "skipping a broker-outage test: no Tansu {TANSU_VERSION} at {} (scripts/test-env.sh \
         builds it; set MOTCUA_REQUIRE_KAFKA=1 to make this an error)",
        path.display()
    );
    None
}

/// A TCP port on 127.0.0.1 that nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// A Tansu process with in-memory storage, listening on a free loopback port; killed (by its
/// PID, `SIGKILL`, then reaped) when dropped, frozen or not.
#[derive(Debug)]
pub struct PrivateBroker {
    child: Child,
    listener: SocketAddr,
    advertised: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl PrivateBroker {
    /// Starts a broker that advertises its own listener.
    pub async fn start(binary: &Path) -> Self {
        Self::start_advertising(binary, None).await
    }

    /// Starts a broker that advertises `advertised` (a proxy in front of it) instead of its
    /// own listener, or its own listener if `None`. Clients reconnect to the advertised
    /// address they get in metadata, so a proxy must be the advertised address to stay in the
    /// path.
    pub async fn start_advertising(binary: &Path, advertised: Option<SocketAddr>) -> Self {
        let dir = tempfile::tempdir().expect("a directory for the broker");
        let log = dir.path().join("tansu.log");
        let listener = loopback(free_port());
        let advertised = advertised.unwrap_or(listener);
        let output = std::fs::File::create(&log).expect("the broker's log file");
        let child = Command::new(binary)
            .arg("broker")
            .arg("--listener-url")
            .arg(format!("tcp://{listener}"))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://{advertised}"))
            .arg("--storage-engine")
            .arg("memory://tansu/")
            .current_dir(dir.path())
            // The test's RUST_LOG is for the test, not for the broker.
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("the broker's log file"))
            .stderr(output)
            .spawn()
            .expect("start the Tansu broker");
        let mut broker = Self {
            child,
            listener,
            advertised,
            log,
            _dir: dir,
        };
        broker.wait_until_listening().await;
        broker
    }

    async fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if TcpStream::connect(self.listener).await.is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the broker exited during startup ({status}); its log:\n{}",
                    self.log_tail(30)
                );
            }
            assert!(
                Instant::now() < deadline,
                "the broker did not listen on {} within {STARTUP_TIMEOUT:?}; its log:\n{}",
                self.listener,
                self.log_tail(30)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The bootstrap address for clients: the advertised one.
    pub fn bootstrap(&self) -> String {
        self.advertised.to_string()
    }

    /// Where the broker itself listens.
    pub fn listener(&self) -> SocketAddr {
        self.listener
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `SIGSTOP`: the broker stops dead. Its sockets stay open, so connections hang rather than
    /// fail, as in a network partition or a broker stuck in a long pause.
    pub fn freeze(&self) {
        self.signal("STOP");
        self.wait_for_state(true);
    }

    /// `SIGCONT`: the broker goes on where it stopped.
    pub fn thaw(&self) {
        self.signal("CONT");
        self.wait_for_state(false);
    }

    fn signal(&self, signal: &str) {
        // `kill(1)` rather than `libc::kill`: the workspace forbids unsafe code.
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    /// Waits until /proc shows the process stopped (`T`) or not, where there is a /proc.
    fn wait_for_state(&self, stopped: bool) {
        let stat = format!("/proc/{}/stat", self.pid());
        for _ in 0..200 {
            let Ok(text) = std::fs::read_to_string(&stat) else {
                return;
            };
            // `pid (comm) state …`: the state follows the last ')'.
            let state = text
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .unwrap_or("?");
            if (state == "T") == stopped {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!(
            "the broker (pid {}) did not become {}",
            self.pid(),
            if stopped { "stopped" } else { "running" }
        );
    }

    /// Whether the broker process is still running (or stopped), not exited.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last `lines` lines of the broker's output.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        // SIGKILL ends a stopped process too.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP proxy on a loopback port, forwarding every connection to `upstream`, that can be cut
/// (its listener closed, so new connections are refused, and every open connection dropped,
/// as when the broker goes down) and restored on the same port.
#[derive(Debug)]
pub struct Proxy {
    address: SocketAddr,
    upstream: Option<SocketAddr>,
    connections: Arc<Mutex<JoinSet<()>>>,
    accepted: Arc<AtomicU64>,
    /// The listener between [`Proxy::bind`] and [`Proxy::forward_to`].
    bound: Option<TcpListener>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on a free port; connections wait until [`Proxy::forward_to`] says where to.
    /// (The broker must be told the proxy's address, to advertise it, before it starts.)
    pub async fn bind() -> Self {
        let listener = listen(loopback(0)).await;
        Self {
            address: listener.local_addr().expect("the proxy's address"),
            upstream: None,
            connections: Arc::default(),
            accepted: Arc::default(),
            bound: Some(listener),
            acceptor: None,
        }
    }

    /// Starts forwarding to `upstream`.
    pub async fn forward_to(&mut self, upstream: SocketAddr) {
        self.upstream = Some(upstream);
        self.restore().await;
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Closes the listener (new connections are refused) and drops every open connection.
    /// Returns how many connections were dropped.
    pub async fn cut(&mut self) -> usize {
        if let Some(acceptor) = self.acceptor.take() {
            acceptor.abort();
            let _ = acceptor.await;
        }
        let mut open = std::mem::take(
            &mut *self
                .connections
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let count = open.len();
        open.abort_all();
        while open.join_next().await.is_some() {}
        count
    }

    /// Listens again on the same port.
    pub async fn restore(&mut self) {
        let upstream = self.upstream.expect("forward_to first");
        assert!(self.acceptor.is_none(), "the proxy is already up");
        let listener = match self.bound.take() {
            Some(listener) => listener,
            None => listen(self.address).await,
        };
        let connections = self.connections.clone();
        let accepted = self.accepted.clone();
        self.acceptor = Some(tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                accepted.fetch_add(1, Ordering::Relaxed);
                connections
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .spawn(forward(client, upstream));
            }
        }));
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(acceptor) = self.acceptor.take() {
            acceptor.abort();
        }
        // Dropping the JoinSet aborts the connections.
    }
}

/// Binds `address` again, retrying for a moment if the port is not free yet.
async fn listen(address: SocketAddr) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let bound = TcpSocket::new_v4().and_then(|socket| {
            socket.set_reuseaddr(true)?;
            socket.bind(address)?;
            socket.listen(1024)
        });
        match bound {
            Ok(listener) => return listener,
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "cannot listen on {address} again: {error}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn forward(mut client: TcpStream, upstream: SocketAddr) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
