//! `motcua`: the one-stop dossier event backbone. Parses flags and hands over to the library.

use clap::{Parser, Subcommand};
use motcua::cli::dossier::DossierArgs;
use motcua::config::NodeConfig;
use motcua::loadgen::LoadgenArgs;
use tracing_subscriber::EnvFilter;

/// motcua records what happens to every administrative dossier at one-stop offices, as events,
/// and turns them into the numbers provinces are judged by.
#[derive(Debug, Parser)]
#[command(name = "motcua", version, about)]
struct Cli {
    /// Log format: "text" (readable) or "json" (structured).
    #[arg(long, env = "MOTCUA_LOG_FORMAT", default_value = "text", global = true)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    node: NodeConfig,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the all-in-one node (the default): every component against the embedded store.
    Serve(Box<NodeConfig>),
    /// Record and show dossiers through a node's gRPC API.
    Dossier(Box<DossierArgs>),
    /// Drive a node with concurrent clients and report throughput and latency per RPC.
    Loadgen(Box<LoadgenArgs>),
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("MOTCUA_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
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
        None => {
            init_logging(cli.log_format);
            motcua::node::run(cli.node).await
        }
        Some(Command::Serve(node)) => {
            init_logging(cli.log_format);
            motcua::node::run(*node).await
        }
        Some(Command::Dossier(args)) => {
            let code = motcua::cli::dossier::run(*args).await;
            std::process::exit(code);
        }
        Some(Command::Loadgen(args)) => motcua::loadgen::run(*args).await,
    }
}
