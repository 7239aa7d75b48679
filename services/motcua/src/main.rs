//! `motcua`: the one-stop dossier event backbone. Parses flags and hands over to the library.

use clap::{Parser, Subcommand};
use motcua::cli::dossier::DossierArgs;
use motcua::cli::report::ReportArgs;
use motcua::loadgen::LoadgenArgs;
use motcua::node::{
    DeadlinesOnlyArgs, IntakeOnlyArgs, PortalOpsArgs, PortalSyncArgs, ProjectorOnlyArgs,
    RebuildArgs, RelayOnlyArgs, ServeArgs,
};
use tracing_subscriber::EnvFilter;

/// motcua records what happens to every administrative dossier at one-stop offices, as events,
/// and turns them into the numbers provinces are judged by.
///
/// With no command it runs `serve`: every component in one process, on the embedded store in
/// ./.motcua, or on PostgreSQL and Kafka when DATABASE_URL / KAFKA_BROKERS are set.
#[derive(Debug, Parser)]
#[command(name = "motcua", version, about)]
struct Cli {
    /// Log format: "text" (readable) or "json" (structured). Level: MOTCUA_LOG (e.g. debug).
    #[arg(long, env = "MOTCUA_LOG_FORMAT", default_value = "text", global = true)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every component in one process (the default).
    Serve(Box<ServeArgs>),
    /// Run only the gRPC intake (scale it out behind a load balancer).
    Intake(Box<IntakeOnlyArgs>),
    /// Run only the outbox relay: committed events to Kafka, in order per dossier.
    Relay(Box<RelayOnlyArgs>),
    /// Run only the deadline watcher: `due_soon` and `late` when due dates near and pass.
    Deadlines(Box<DeadlinesOnlyArgs>),
    /// Run only the national-portal adapter: every dossier's status to the portal, in order.
    PortalSync(Box<PortalSyncArgs>),
    /// The national-portal sync: status (what has not synced, and why), resync, reconcile.
    Portal(Box<PortalOpsArgs>),
    /// Create the Kafka topics (idempotent) and exit.
    Topics(Box<RelayOnlyArgs>),
    /// The rates projector: follow the events into the read models, or rebuild them.
    #[command(subcommand)]
    Projector(ProjectorCommand),
    /// Record and show dossiers through a node's gRPC API.
    Dossier(Box<DossierArgs>),
    /// Print the figures, scores, overdue dossiers or anomalies (table, CSV or JSON).
    Report(Box<ReportArgs>),
    /// Drive a node with concurrent clients and report throughput and latency per RPC.
    Loadgen(Box<LoadgenArgs>),
    /// Bearer tokens signed by an embedded node's own key.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a token for an officer, a unit administrator, a monitor or a service.
    Issue(Box<motcua::auth::TokenIssueArgs>),
}

#[derive(Debug, Subcommand)]
enum ProjectorCommand {
    /// Run the rates projector and serve the ReportService (no intake).
    Run(Box<ProjectorOnlyArgs>),
    /// Replay the whole history into fresh read models, then switch reports over to them. An
    /// interrupted rebuild resumes where it stopped when run again.
    Rebuild(Box<RebuildArgs>),
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("MOTCUA_LOG").unwrap_or_else(|_| {
        // librdkafka's own chatter stays at warnings unless asked for.
        EnvFilter::new("info,rdkafka=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Dossier(args)) => std::process::exit(motcua::cli::dossier::run(*args).await),
        Some(Command::Report(args)) => std::process::exit(motcua::cli::report::run(*args).await),
        Some(Command::Loadgen(args)) => motcua::loadgen::run(*args).await,
        Some(Command::Token(TokenCommand::Issue(args))) => motcua::auth::issue_token(&args),
        command => {
            init_logging(cli.log_format);
            match command {
                None => motcua::node::serve(cli.serve).await,
                Some(Command::Serve(args)) => motcua::node::serve(*args).await,
                Some(Command::Intake(args)) => motcua::node::intake(*args).await,
                Some(Command::Relay(args)) => motcua::node::relay(*args).await,
                Some(Command::Topics(args)) => motcua::node::topics(*args).await,
                Some(Command::Deadlines(args)) => motcua::node::deadlines(*args).await,
                Some(Command::PortalSync(args)) => motcua::node::portal_sync(*args).await,
                Some(Command::Portal(args)) => motcua::node::portal_ops(*args).await,
                Some(Command::Projector(ProjectorCommand::Run(args))) => {
                    motcua::node::projector(*args).await
                }
                Some(Command::Projector(ProjectorCommand::Rebuild(args))) => {
                    motcua::node::rebuild(*args).await
                }
                Some(
                    Command::Dossier(_)
                    | Command::Report(_)
                    | Command::Loadgen(_)
                    | Command::Token(_),
                ) => Ok(()),
            }
        }
    }
}
