//! `motcua`: the one-stop dossier event backbone. Parses flags and hands over to the library.

use clap::{Parser, Subcommand};
use motcua::cli::dossier::DossierArgs;
use motcua::cli::report::ReportArgs;
use motcua::loadgen::LoadgenArgs;
use motcua::node::{
    DeadlinesOnlyArgs, IntakeOnlyArgs, PortalOpsArgs, PortalSyncArgs, ProjectorOnlyArgs,
    RebuildArgs, RelayOnlyArgs, ServeArgs,
};

/// jemalloc for the whole process, SQLite's and librdkafka's allocations included: glibc's
/// allocator took a fifth of the deadline watcher's catch-up and slowed the projector's rebuild
/// by a fifth (BENCHMARKS.md, "Allocator and overlapped flush").
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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

    /// Export traces over OTLP/gRPC to this collector (e.g. http://127.0.0.1:4317); none when
    /// unset. Each event carries its trace context either way.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", global = true)]
    otlp_endpoint: Option<String>,

    /// Serve Prometheus metrics over HTTP on this address (e.g. 127.0.0.1:9464); none when
    /// unset. For the services; the client commands ignore it.
    #[arg(long, env = "MOTCUA_METRICS_LISTEN", global = true)]
    metrics_listen: Option<std::net::SocketAddr>,

    /// After SIGTERM/SIGINT, how long in-flight calls may drain and readers commit before the
    /// process gives up on them and exits, in seconds (keep it below the orchestrator's own
    /// grace period, e.g. Kubernetes' terminationGracePeriodSeconds).
    #[arg(
        long,
        env = "MOTCUA_SHUTDOWN_GRACE_SECS",
        default_value_t = 25,
        global = true,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    shutdown_grace_secs: u64,

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
    /// Histories for benchmarks: `generate` writes a large realistic one straight into a store.
    #[command(subcommand)]
    History(HistoryCommand),
    /// Bearer tokens signed by an embedded node's own key.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print the configuration reference (docs/configuration.md) from the flags themselves.
    #[command(hide = true)]
    ConfigReference,
}

#[derive(Debug, Subcommand)]
enum HistoryCommand {
    /// Write N dossiers' histories (about 5 events each) into the store, through its write
    /// path, with a progress line (e.g. --dossiers 2000000 for a province-year, 10 M events).
    Generate(Box<motcua::history::GenerateArgs>),
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a token for an officer, a unit administrator, a monitor or a service.
    Issue(Box<motcua::auth::TokenIssueArgs>),
    /// Create the signing key and the administrator token now, if missing (a deployment's
    /// init step; a node creates them itself on first start).
    Init(Box<motcua::auth::TokenInitArgs>),
}

#[derive(Debug, Subcommand)]
enum ProjectorCommand {
    /// Run the rates projector and serve the ReportService (no intake).
    Run(Box<ProjectorOnlyArgs>),
    /// Replay the whole history into fresh read models, then switch reports over to them. An
    /// interrupted rebuild resumes where it stopped when run again.
    Rebuild(Box<RebuildArgs>),
}

/// The configuration reference: every command, and every flag with its environment variable,
/// default and meaning, as Markdown. docs/configuration.md is this output (a test keeps it so).
fn config_reference() -> String {
    use clap::CommandFactory;
    let mut out = String::from(
        "# Configuration reference\n\n\
         Every flag of every `motcua` command, with its environment variable and default.\n\
         Generated from the flags themselves by `motcua config-reference` (a test fails when\n\
         this file and the binary disagree). Settings are validated at start; a bad value stops\n\
         the command with an error that names the flag and its variable.\n",
    );
    let mut root = Cli::command();
    root.build();
    let globals: Vec<clap::Arg> = root
        .get_arguments()
        .filter(|a| a.is_global_set())
        .cloned()
        .collect();
    let inherited: Vec<clap::Id> = globals.iter().map(|a| a.get_id().clone()).collect();
    // (name, command, the global flags it inherits and that are listed higher up)
    let mut stack: Vec<(String, clap::Command, Vec<clap::Id>)> = root
        .get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name() != "help")
        .map(|c| {
            (
                format!("motcua {}", c.get_name()),
                c.clone(),
                inherited.clone(),
            )
        })
        .collect();
    stack.reverse();
    out.push_str("\n## Every command\n\n");
    table(&mut out, globals.iter());
    while let Some((name, command, inherited)) = stack.pop() {
        let mut passed_on = inherited.clone();
        passed_on.extend(
            command
                .get_arguments()
                .filter(|a| a.is_global_set())
                .map(|a| a.get_id().clone()),
        );
        let subcommands: Vec<_> = command
            .get_subcommands()
            .filter(|c| !c.is_hide_set() && c.get_name() != "help")
            .map(|c| {
                (
                    format!("{name} {}", c.get_name()),
                    c.clone(),
                    passed_on.clone(),
                )
            })
            .collect();
        let about = command
            .get_about()
            .map(|a| a.to_string())
            .unwrap_or_default();
        out.push_str(&format!("\n## `{name}`\n\n{about}\n\n"));
        let own: Vec<&clap::Arg> = command
            .get_arguments()
            .filter(|a| !a.is_hide_set() && a.get_long().is_some())
            .filter(|a| !inherited.contains(a.get_id()))
            .filter(|a| !matches!(a.get_long(), Some("help" | "version")))
            .collect();
        if own.is_empty() {
            out.push_str("No flags of its own.\n");
        } else {
            table(&mut out, own.into_iter());
        }
        for sub in subcommands.into_iter().rev() {
            stack.push(sub);
        }
    }
    out
}

fn table<'a>(out: &mut String, args: impl Iterator<Item = &'a clap::Arg>) {
    out.push_str("| flag | environment | default | meaning |\n|---|---|---|---|\n");
    for arg in args {
        if arg.is_hide_set() || matches!(arg.get_long(), Some("help" | "version") | None) {
            continue;
        }
        let env = arg
            .get_env()
            .map(|e| format!("`{}`", e.to_string_lossy()))
            .unwrap_or_default();
        let default: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let default = if default.is_empty() {
            String::new()
        } else {
            format!("`{}`", default.join(","))
        };
        let help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string().replace('\n', " ").replace('|', "\\|"))
            .unwrap_or_default();
        out.push_str(&format!(
            "| `--{}` | {env} | {default} | {help} |\n",
            arg.get_long().unwrap_or_default()
        ));
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
        Some(Command::Token(TokenCommand::Init(args))) => motcua::auth::init_authority(&args),
        Some(Command::ConfigReference) => {
            print!("{}", config_reference());
            Ok(())
        }
        command => {
            let name = match &command {
                None | Some(Command::Serve(_)) => "serve",
                Some(Command::Intake(_)) => "intake",
                Some(Command::Relay(_)) => "relay",
                Some(Command::Topics(_)) => "topics",
                Some(Command::Deadlines(_)) => "deadlines",
                Some(Command::PortalSync(_)) => "portal-sync",
                Some(Command::Portal(_)) => "portal",
                Some(Command::Projector(_)) => "projector",
                Some(_) => "motcua",
            };
            let provider = motcua::telemetry::init_tracing(
                matches!(cli.log_format, LogFormat::Json),
                cli.otlp_endpoint.as_deref(),
                name,
            )?;
            motcua::node::set_shutdown_grace(std::time::Duration::from_secs(
                cli.shutdown_grace_secs,
            ));
            if let Some(listen) = cli.metrics_listen {
                motcua::telemetry::install(listen)?;
            }
            // The services stop cleanly on SIGTERM also while they are starting.
            if matches!(
                command,
                None | Some(
                    Command::Serve(_)
                        | Command::Intake(_)
                        | Command::Relay(_)
                        | Command::Deadlines(_)
                        | Command::PortalSync(_)
                        | Command::Projector(_)
                )
            ) {
                motcua::node::listen_for_shutdown();
            }
            let outcome = match command {
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
                Some(Command::History(HistoryCommand::Generate(args))) => {
                    motcua::node::history_generate(*args).await
                }
                Some(
                    Command::Dossier(_)
                    | Command::Report(_)
                    | Command::Loadgen(_)
                    | Command::Token(_)
                    | Command::ConfigReference,
                ) => Ok(()),
            };
            if let Some(provider) = provider {
                // Spans still in the batch are sent before the process ends.
                let _ = provider.shutdown();
            }
            outcome
        }
    }
}
