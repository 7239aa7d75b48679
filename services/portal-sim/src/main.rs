//! `motcua-portal-sim`: the national portal simulator as a server, for demos and manual tests.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use motcua_portal_sim::{FaultsUpdate, SimConfig, Simulator, serve};
use tracing_subscriber::EnvFilter;

/// Simulates the National Public Service Portal's sync services (docs/portal-contract.md) on
/// plain HTTP, with fault injection and an admin API under /admin.
#[derive(Parser)]
#[command(name = "motcua-portal-sim", version)]
struct Args {
    /// Address to listen on (port 0 picks a free one; the address is printed).
    #[arg(
        long,
        env = "MOTCUA_PORTAL_SIM_LISTEN",
        default_value = "127.0.0.1:8089"
    )]
    listen: SocketAddr,
    /// The portal account's user name.
    #[arg(long, env = "MOTCUA_PORTAL_SIM_USERNAME", default_value = "motcua")]
    username: String,
    /// The portal account's password.
    #[arg(long, env = "MOTCUA_PORTAL_SIM_PASSWORD", hide_env_values = true)]
    password: String,
    /// How long a session token lives, in seconds.
    #[arg(
        long,
        env = "MOTCUA_PORTAL_SIM_SESSION_TTL_SECS",
        default_value_t = 3600
    )]
    session_ttl_secs: u64,
    /// How long --timeout-rate holds a request before closing the connection, in seconds.
    #[arg(
        long,
        env = "MOTCUA_PORTAL_SIM_TIMEOUT_HOLD_SECS",
        default_value_t = 30.0
    )]
    timeout_hold_secs: f64,
    /// Seed for the fault rolls and session tokens (a reproducible run).
    #[arg(long, env = "MOTCUA_PORTAL_SIM_SEED")]
    seed: Option<u64>,
    /// Share of requests answered error_code "500".
    #[arg(long, value_parser = rate)]
    error_rate: Option<f64>,
    /// Delay of every portal request, in milliseconds.
    #[arg(long)]
    latency_ms: Option<u64>,
    /// Share of requests held unanswered (then the connection is closed).
    #[arg(long, value_parser = rate)]
    timeout_rate: Option<f64>,
    /// Share of requests answered HTTP 503.
    #[arg(long, value_parser = rate)]
    server_error_rate: Option<f64>,
    /// Share of requests whose connection is closed without a reply.
    #[arg(long, value_parser = rate)]
    drop_rate: Option<f64>,
    /// Share of requests answered with a body that is not JSON.
    #[arg(long, value_parser = rate)]
    malformed_rate: Option<f64>,
    /// Answer every portal request HTTP 503 for this many seconds from the start.
    #[arg(long)]
    outage_secs: Option<f64>,
    /// Dossiers (MaHoSo) whose syncs are rejected with "-3" (repeat, or separate with commas).
    #[arg(long, value_delimiter = ',')]
    reject: Vec<String>,
}

fn rate(s: &str) -> Result<f64, String> {
    let value: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{value} is not between 0 and 1"))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = Args::parse();
    let timeout_hold = Duration::try_from_secs_f64(args.timeout_hold_secs)
        .context("--timeout-hold-secs must be a number of seconds, at least 0")?;
    let mut config = SimConfig::new(args.username, args.password);
    config.session_ttl = Duration::from_secs(args.session_ttl_secs);
    config.timeout_hold = timeout_hold;
    config.seed = args.seed;
    let sim = Simulator::new(config);
    let faults = FaultsUpdate {
        error_rate: args.error_rate,
        latency_ms: args.latency_ms,
        timeout_rate: args.timeout_rate,
        server_error_rate: args.server_error_rate,
        drop_rate: args.drop_rate,
        malformed_rate: args.malformed_rate,
        outage_secs: args.outage_secs,
        reject: (!args.reject.is_empty()).then_some(args.reject),
        ..FaultsUpdate::default()
    };
    sim.update_faults(&faults).context("fault flags")?;

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr().context("the listening address")?;
    tracing::info!(
        %addr,
        username = %sim.config().username,
        session_ttl_secs = args.session_ttl_secs,
        faults = ?sim.faults(),
        "portal simulator listening"
    );
    println!("motcua-portal-sim listening on http://{addr}");
    serve(listener, sim, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot wait for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot wait for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
    }
}
