//! Running motcua's components: all of them in one process (`serve`), or one each (`intake`,
//! `relay`), against the embedded store or PostgreSQL, with or without Kafka.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use motcua_feed::ReaderDb;
use motcua_intake::service::IntakeService;
use motcua_intake::{CommandHandler, IntakeConfig};
use motcua_projector::ReadModel;
use motcua_projector::publish::{ProjectionPublisher, PublisherOptions};
use motcua_projector::replay::ReplayOptions;
use motcua_projector::service::ReportApi;
use motcua_proto::v1::dossier_service_server::DossierServiceServer;
use motcua_proto::v1::report_service_server::ReportServiceServer;
use motcua_relay::RelayConfig;
use motcua_relay::topics::TopicsConfig;
use motcua_store::postgres::PostgresStore;
use motcua_store::sqlite::SqliteStore;
use motcua_store::{Checkpoints, EventStore};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;

use crate::config::{IntakeArgs, KafkaArgs, RulesArgs, StoreArgs, redact_url};
use crate::deadlines::{self, DeadlineArgs};
use crate::portal::{self, PortalArgs, PortalCommand};
use crate::projection::{self, EventSource, FeedChoice, ProjectorArgs};

/// `motcua serve`: every component in one process.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub rules: RulesArgs,
    #[command(flatten)]
    pub intake: IntakeArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub projector: ProjectorArgs,
    #[command(flatten)]
    pub deadlines: DeadlineArgs,
    #[command(flatten)]
    pub portal: PortalArgs,
}

/// `motcua portal-sync`: the national-portal adapter alone (the store is needed for the
/// applicant's name and for resyncs; events come from Kafka when configured).
#[derive(Debug, Clone, Args)]
pub struct PortalSyncArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub portal: PortalArgs,
}

/// `motcua portal …`: the operators' commands on the sync state.
#[derive(Debug, Args)]
pub struct PortalOpsArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub portal: PortalArgs,
    #[command(subcommand)]
    pub command: PortalCommand,
}

/// `motcua deadlines`: the deadline watcher alone. It appends through the intake's write path,
/// so it needs the event store (and reads the events from Kafka when configured).
#[derive(Debug, Clone, Args)]
pub struct DeadlinesOnlyArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub rules: RulesArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub deadlines: DeadlineArgs,
}

/// `motcua intake`: the gRPC intake alone, to run several behind a load balancer.
#[derive(Debug, Clone, Args)]
pub struct IntakeOnlyArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub rules: RulesArgs,
    #[command(flatten)]
    pub intake: IntakeArgs,
}

/// `motcua relay` and `motcua topics`: the outbox relay alone, or the topic provisioning.
#[derive(Debug, Clone, Args)]
pub struct RelayOnlyArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// `motcua projector run`: the rates projector and the ReportService alone.
#[derive(Debug, Clone, Args)]
pub struct ProjectorOnlyArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub rules: RulesArgs,
    #[command(flatten)]
    pub intake: IntakeArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub projector: ProjectorArgs,
}

/// `motcua projector rebuild`.
#[derive(Debug, Clone, Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub rules: RulesArgs,
    #[command(flatten)]
    pub projector: ProjectorArgs,
    /// Seconds between progress lines.
    #[arg(long, default_value_t = 5)]
    pub progress_secs: u64,
    /// Events replayed in memory between two writes of the read model (each write commits
    /// the position: an interrupted rebuild resumes from the last one). Memory grows with the
    /// dossiers touched in between, about 1.5 KB each (see --max-dossiers). Fewer, larger
    /// writes cost more memory and more to redo after an interruption; with the defaults a
    /// province-year (10 M events) rebuilds into PostgreSQL in about 70 s (BENCHMARKS.md).
    #[arg(long, env = "MOTCUA_REBUILD_FLUSH_EVENTS", default_value_t = 4_000_000)]
    pub flush_events: u64,
    /// Write early when this many dossiers are held in memory (about 1.5 KB each: 1.5 GB at
    /// the default).
    #[arg(long, env = "MOTCUA_REBUILD_MAX_DOSSIERS", default_value_t = 1_000_000)]
    pub max_dossiers: usize,
    /// After the switch, drop the tables of older retired generations (the one just retired
    /// is always kept, to compare with or switch back to by hand).
    #[arg(long)]
    pub drop_retired: bool,
}

/// The store a process works on, behind both traits.
struct Stores {
    events: Arc<dyn EventStore>,
    checkpoints: Arc<dyn Checkpoints>,
}

/// Opens the configured store, waiting for PostgreSQL with backoff (it may start after us).
async fn open_store(args: &StoreArgs) -> anyhow::Result<Stores> {
    match &args.database_url {
        Some(url) => {
            let shown = redact_url(url);
            let store = retry_until(
                args.startup_timeout(),
                &format!("PostgreSQL at {shown}"),
                || PostgresStore::connect(url),
            )
            .await
            .context("--database-url / DATABASE_URL")?;
            tracing::info!(database = %shown, "event store: PostgreSQL");
            let store = Arc::new(store);
            Ok(Stores {
                events: store.clone(),
                checkpoints: store,
            })
        }
        None => {
            std::fs::create_dir_all(&args.data_dir).with_context(|| {
                format!(
                    "--data-dir / MOTCUA_DATA_DIR {}: cannot create it",
                    args.data_dir.display()
                )
            })?;
            let path = args.data_dir.join("events.sqlite");
            let store = SqliteStore::open(&path)
                .await
                .with_context(|| format!("cannot open the event store {}", path.display()))?;
            tracing::info!(path = %path.display(), "event store: embedded SQLite");
            let store = Arc::new(store);
            Ok(Stores {
                events: store.clone(),
                checkpoints: store,
            })
        }
    }
}

/// Retries `attempt` with exponential backoff until it succeeds or `timeout` has passed.
async fn retry_until<T, E, F, Fut>(timeout: Duration, what: &str, mut attempt: F) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    let mut delay = Duration::from_millis(200);
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) if started.elapsed() + delay < timeout => {
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "waiting for {what}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(error) => return Err(error),
        }
    }
}

/// A shutdown signal every component can wait on.
#[derive(Clone)]
struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut receiver = self.0.clone();
        async move {
            let _ = receiver.wait_for(|stop| *stop).await;
        }
    }
}

/// How long, after SIGTERM, components get to drain in-flight calls and commit their readers.
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(25);
static SHUTDOWN_GRACE: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();

/// Sets the shutdown grace period (`--shutdown-grace-secs`), once, before a command runs.
pub fn set_shutdown_grace(grace: Duration) {
    let _ = SHUTDOWN_GRACE.set(grace);
}

/// Runs `components` until SIGINT/SIGTERM, or until one of them stops on its own (an error),
/// then asks the others to stop and waits for them, at most the shutdown grace period (then
/// they are aborted and the process exits with an error: an orchestrator's SIGKILL would come
/// next anyway, and every write path is crash-safe).
async fn run_components(
    build: impl FnOnce(Shutdown, &mut JoinSet<anyhow::Result<&'static str>>),
) -> anyhow::Result<()> {
    let (stop, receiver) = watch::channel(false);
    let mut components = JoinSet::new();
    build(Shutdown(receiver), &mut components);
    let mut first_error = None;
    tokio::select! {
        () = shutdown_signal() => tracing::info!("shutdown requested"),
        Some(done) = components.join_next() => {
            match done {
                Ok(Ok(name)) => tracing::warn!(component = name, "component stopped"),
                Ok(Err(error)) => first_error = Some(error),
                Err(panic) => first_error = Some(anyhow::anyhow!("a component panicked: {panic}")),
            }
        }
    }
    let _ = stop.send(true);
    let grace = *SHUTDOWN_GRACE.get().unwrap_or(&DEFAULT_SHUTDOWN_GRACE);
    let deadline = tokio::time::Instant::now() + grace;
    loop {
        let done = match tokio::time::timeout_at(deadline, components.join_next()).await {
            Ok(Some(done)) => done,
            Ok(None) => break,
            Err(_) => {
                tracing::error!(
                    grace_secs = grace.as_secs(),
                    left = components.len(),
                    "components still running after the shutdown grace period: stopping them                      (--shutdown-grace-secs / MOTCUA_SHUTDOWN_GRACE_SECS)"
                );
                components.abort_all();
                first_error.get_or_insert(anyhow::anyhow!(
                    "the shutdown grace period of {} s passed before every component stopped",
                    grace.as_secs()
                ));
                break;
            }
        };
        match done {
            Ok(Ok(name)) => tracing::info!(component = name, "stopped"),
            Ok(Err(error)) => {
                tracing::error!(error = %format!("{error:#}"), "component failed while stopping");
                first_error.get_or_insert(error);
            }
            Err(panic) => {
                first_error.get_or_insert(anyhow::anyhow!("a component panicked: {panic}"));
            }
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// The gRPC services a process serves on its one listener.
struct Services {
    handler: Option<CommandHandler>,
    reports: Option<ReadModel>,
    /// The dossier-sync score's input, when the portal adapter runs here.
    sync: Option<Arc<dyn motcua_projector::service::SyncFigures>>,
    /// The server's clock, for reports without an intake beside them (`projector run`).
    clock: Option<Arc<dyn motcua_intake::Clock>>,
}

/// Who may call the gRPC API and over what (`crate::auth`), settled before serving so a bad
/// key or certificate fails the start with the setting named.
struct Access {
    auth: motcua_auth::Authenticator,
    tls: Option<tonic::transport::ServerTlsConfig>,
}

async fn grpc_access(intake: &IntakeArgs, store: &StoreArgs) -> anyhow::Result<Access> {
    Ok(Access {
        auth: intake.auth.authenticator(&store.data_dir).await?,
        tls: intake.auth.tls()?,
    })
}

fn spawn_grpc(
    components: &mut JoinSet<anyhow::Result<&'static str>>,
    listener: TcpListener,
    services: Services,
    access: Access,
    args: &IntakeArgs,
    shutdown: &Shutdown,
) {
    let config = IntakeConfig {
        max_request_bytes: args.max_request_bytes,
        call_timeout: Duration::from_secs(args.call_timeout_secs),
        auth: access.auth.clone(),
        tls: access.tls,
        reflection: args.auth.reflection(),
    };
    let mut routes = RoutesBuilder::default();
    let mut serving = Vec::new();
    // The intake's clock when it is here, so a demo's simulated time is the reports' too.
    let clock = services
        .handler
        .as_ref()
        .map(CommandHandler::clock)
        .or(services.clock)
        .unwrap_or_else(|| Arc::new(motcua_intake::SystemClock));
    if let Some(handler) = services.handler {
        routes.add_service(
            DossierServiceServer::new(IntakeService::with_auth(handler, access.auth.clone()))
                .max_decoding_message_size(config.max_request_bytes),
        );
        serving.push(<DossierServiceServer<IntakeService> as NamedService>::NAME);
    }
    if let Some(model) = services.reports {
        let api = ReportApi::new(model)
            .with_auth(access.auth)
            .with_clock(move || clock.now());
        let api = match services.sync {
            Some(sync) => api.with_sync(sync),
            None => api,
        };
        routes.add_service(
            api.into_server()
                .max_decoding_message_size(config.max_request_bytes),
        );
        serving.push(<ReportServiceServer<ReportApi> as NamedService>::NAME);
    }
    let stop = shutdown.wait();
    components.spawn(async move {
        motcua_intake::serve_routes(listener, routes.routes(), &serving, config, stop)
            .await
            .context("the gRPC server failed")?;
        Ok("grpc")
    });
}

/// The live projector's source: Kafka or the store's table, as configured.
fn projector_source(
    args: &ProjectorArgs,
    kafka: &KafkaArgs,
    stores: Option<&Stores>,
) -> anyhow::Result<EventSource> {
    let kafka_source = |brokers: &String| EventSource::Kafka(kafka.feed_config(brokers));
    match (args.projector_feed, &kafka.kafka_brokers, stores) {
        (FeedChoice::Kafka, Some(brokers), _) | (FeedChoice::Auto, Some(brokers), _) => {
            Ok(kafka_source(brokers))
        }
        (FeedChoice::Kafka, None, _) => {
            anyhow::bail!("--projector-feed kafka needs --kafka-brokers / KAFKA_BROKERS")
        }
        (_, _, Some(stores)) => Ok(EventSource::Store(stores.events.clone())),
        (_, _, None) => anyhow::bail!("the projector has no event source"),
    }
}

/// The node's time: the working calendar due dates are computed on and the clock every
/// reader judges "now" by (one clock for every figure).
struct NodeTime {
    calendar: Arc<motcua_domain::calendar::WorkingCalendar>,
    clock: Arc<dyn motcua_intake::Clock>,
}

/// What the rates projector runs on: its read models, the feed it follows, and the event store
/// a dossier's seq gap is healed from (if there is one here).
struct ProjectorParts {
    db: ReaderDb,
    source: EventSource,
    healer: Option<Arc<dyn EventStore>>,
}

fn spawn_projector(
    components: &mut JoinSet<anyhow::Result<&'static str>>,
    ProjectorParts { db, source, healer }: ProjectorParts,
    NodeTime { calendar, clock }: NodeTime,
    args: &ProjectorArgs,
    kafka: &KafkaArgs,
    shutdown: &Shutdown,
) {
    let token = CancellationToken::new();
    let stop = shutdown.wait();
    let cancel = token.clone();
    tokio::spawn(async move {
        stop.await;
        cancel.cancel();
    });
    let args = args.clone();
    // With Kafka, the projections for monitoring teams are published from the outbox.
    let publisher = kafka.kafka_brokers.as_ref().map(|brokers| {
        ProjectionPublisher::new(
            ReadModel::new(db.clone()),
            PublisherOptions::new(brokers.clone()),
        )
        .map(|publisher| publisher.with_clock(clock))
    });
    let outbox = publisher.is_some();
    if let Some(publisher) = publisher {
        let token = token.clone();
        components.spawn(async move {
            publisher
                .context("the projection publisher")?
                .run(token)
                .await
                .context("the projection publisher failed")?;
            Ok("projection publisher")
        });
    }
    components.spawn(async move {
        projection::run_live(db, source, healer, calendar, args, outbox, token).await?;
        Ok("projector")
    });
}

fn spawn_relay(
    components: &mut JoinSet<anyhow::Result<&'static str>>,
    stores: &Stores,
    brokers: &str,
    kafka: &KafkaArgs,
    shutdown: &Shutdown,
) {
    let mut config = RelayConfig::new(brokers);
    config.batch_size = kafka.relay_batch;
    let events = stores.events.clone();
    let checkpoints = stores.checkpoints.clone();
    let stop = shutdown.wait();
    components.spawn(async move {
        motcua_relay::run_relay(events, checkpoints, config, stop)
            .await
            .context("the relay failed")?;
        Ok("relay")
    });
}

/// What the national-portal adapter runs on: its sync database, the feed it follows, and the
/// portal.
struct PortalParts {
    db: ReaderDb,
    source: EventSource,
    client: Arc<motcua_portal::PortalClient>,
}

/// The national-portal adapter's reader and sender, stopped with the other components.
fn spawn_portal(
    components: &mut JoinSet<anyhow::Result<&'static str>>,
    PortalParts { db, source, client }: PortalParts,
    stores: &Stores,
    args: &PortalArgs,
    clock: Arc<dyn motcua_intake::Clock>,
    shutdown: &Shutdown,
) {
    let token = CancellationToken::new();
    let stop = shutdown.wait();
    let cancel = token.clone();
    tokio::spawn(async move {
        stop.await;
        cancel.cancel();
    });
    let store = stores.events.clone();
    let options = args.sender_options();
    let reconcile = args.reconcile_every();
    components.spawn(async move {
        portal::run(db, source, store, client, options, reconcile, clock, token).await?;
        Ok("national-portal adapter")
    });
}

fn spawn_deadlines(
    components: &mut JoinSet<anyhow::Result<&'static str>>,
    db: ReaderDb,
    source: EventSource,
    calendar: Arc<motcua_domain::calendar::WorkingCalendar>,
    handler: CommandHandler,
    args: &DeadlineArgs,
    shutdown: &Shutdown,
) {
    let token = CancellationToken::new();
    let stop = shutdown.wait();
    let cancel = token.clone();
    tokio::spawn(async move {
        stop.await;
        cancel.cancel();
    });
    let args = args.clone();
    components.spawn(async move {
        deadlines::run(db, source, calendar, handler, args, token).await?;
        Ok("deadline watcher")
    });
}

/// The holiday tables' reach, watched for as long as the node runs (crate::holidays).
fn spawn_holiday_watch(
    calendar: Arc<motcua_domain::calendar::WorkingCalendar>,
    clock: Arc<dyn motcua_intake::Clock>,
    shutdown: &Shutdown,
) {
    let token = CancellationToken::new();
    let stop = shutdown.wait();
    let cancel = token.clone();
    tokio::spawn(async move {
        stop.await;
        cancel.cancel();
    });
    crate::holidays::spawn_watch(calendar, clock, token);
}

/// The deadline watcher's source: the same rule as the projector's `auto`.
fn deadline_source(kafka: &KafkaArgs, stores: &Stores) -> EventSource {
    match &kafka.kafka_brokers {
        Some(brokers) => EventSource::Kafka(kafka.feed_config(brokers)),
        None => EventSource::Store(stores.events.clone()),
    }
}

/// Creates the topics, waiting for the broker with backoff.
async fn provision_topics(
    brokers: &str,
    kafka: &KafkaArgs,
    timeout: Duration,
) -> anyhow::Result<()> {
    let config = TopicsConfig {
        partitions: kafka.topic_partitions,
        replication: kafka.topic_replication,
        ..TopicsConfig::default()
    };
    let outcomes = retry_until(timeout, &format!("Kafka at {brokers}"), || {
        motcua_relay::topics::provision_all(brokers, &config)
    })
    .await
    .context("--kafka-brokers / KAFKA_BROKERS: cannot create the topics")?;
    for (topic, outcome) in outcomes {
        tracing::info!(%topic, outcome = ?outcome, "topic");
    }
    Ok(())
}

async fn command_handler(stores: &Stores, rules: &RulesArgs) -> anyhow::Result<CommandHandler> {
    let calendar = rules.calendar()?;
    let clock = rules.clock();
    crate::holidays::check_at_start(&calendar, clock.now())?;
    let catalogue = rules.catalogue()?;
    let versions = calendar.versions();
    tracing::info!(
        holiday_table = %versions.holiday_table_version,
        working_time = %versions.profile_id,
        catalogue = %catalogue.version(),
        procedures = catalogue.len(),
        "rules loaded"
    );
    Ok(CommandHandler::new(
        stores.events.clone(),
        Arc::new(calendar),
        Arc::new(catalogue),
        clock,
    ))
}

async fn bind(args: &IntakeArgs) -> anyhow::Result<TcpListener> {
    TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("--listen / MOTCUA_LISTEN {}: cannot bind", args.listen))
}

/// `motcua serve`: the intake, the rates projector and the ReportService, and with Kafka
/// configured the relay, in one process.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    args.intake.validate()?;
    args.kafka.validate()?;
    args.projector.validate()?;
    args.deadlines.validate()?;
    args.portal.validate()?;
    let stores = open_store(&args.store).await?;
    let handler = command_handler(&stores, &args.rules).await?;
    if let Some(brokers) = &args.kafka.kafka_brokers {
        provision_topics(brokers, &args.kafka, args.store.startup_timeout()).await?;
    }
    let portal_client = args.portal.client()?;
    let portal_db = match &portal_client {
        Some(_) => Some(
            args.portal
                .open_db(args.store.database_url.as_deref(), &args.store.data_dir)
                .await?,
        ),
        None => None,
    };
    let read_models = args
        .projector
        .open_read_models(args.store.database_url.as_deref(), &args.store.data_dir)
        .await?;
    let source = projector_source(&args.projector, &args.kafka, Some(&stores))?;
    let calendar = Arc::new(args.rules.calendar()?);
    let deadline_db = if args.deadlines.no_deadline_watcher {
        None
    } else {
        Some(
            args.deadlines
                .open_db(args.store.database_url.as_deref(), &args.store.data_dir)
                .await?,
        )
    };
    let access = grpc_access(&args.intake, &args.store).await?;
    let listener = bind(&args.intake).await?;
    eprintln!(
        "motcua is serving gRPC (dossiers and reports) on {} ({}{}). Stop with Ctrl-C.",
        args.intake.listen,
        match &args.store.database_url {
            Some(url) => format!("events in {}", redact_url(url)),
            None => format!("data in {}", args.store.data_dir.display()),
        },
        match &args.kafka.kafka_brokers {
            Some(brokers) => format!(", relaying to Kafka at {brokers}"),
            None => String::new(),
        }
    );
    let sync_figures = portal_db.as_ref().map(|db| {
        Arc::new(portal::PortalSyncFigures {
            db: db.clone(),
            deadline: Duration::from_secs(args.portal.portal_sync_deadline_secs),
        }) as Arc<dyn motcua_projector::service::SyncFigures>
    });
    let node_clock = handler.clock();
    run_components(|shutdown, components| {
        spawn_holiday_watch(Arc::clone(&calendar), Arc::clone(&node_clock), &shutdown);
        if let (Some(db), Some(client)) = (portal_db, portal_client) {
            spawn_portal(
                components,
                PortalParts {
                    db,
                    source: deadline_source(&args.kafka, &stores),
                    client,
                },
                &stores,
                &args.portal,
                Arc::clone(&node_clock),
                &shutdown,
            );
        }
        if let Some(db) = deadline_db {
            spawn_deadlines(
                components,
                db,
                deadline_source(&args.kafka, &stores),
                Arc::clone(&calendar),
                handler.clone(),
                &args.deadlines,
                &shutdown,
            );
        }
        let services = Services {
            handler: Some(handler),
            reports: Some(ReadModel::new(read_models.clone())),
            sync: sync_figures,
            clock: None,
        };
        spawn_grpc(
            components,
            listener,
            services,
            access,
            &args.intake,
            &shutdown,
        );
        if let Some(brokers) = &args.kafka.kafka_brokers {
            spawn_relay(components, &stores, brokers, &args.kafka, &shutdown);
        }
        spawn_projector(
            components,
            ProjectorParts {
                db: read_models,
                source,
                healer: Some(stores.events.clone()),
            },
            NodeTime {
                calendar,
                clock: node_clock,
            },
            &args.projector,
            &args.kafka,
            &shutdown,
        );
    })
    .await
}

/// `motcua projector run`: the rates projector and the ReportService.
pub async fn projector(args: ProjectorOnlyArgs) -> anyhow::Result<()> {
    args.intake.validate()?;
    args.kafka.validate()?;
    args.projector.validate()?;
    // The store's feed needs the store. A Kafka-fed projector needs only its read models, and
    // the store where there is one (PostgreSQL configured, or the embedded store in the data
    // directory) to heal a dossier's seq gap from; without it a gap stops the projector.
    let stores = match projector_source(&args.projector, &args.kafka, None) {
        Ok(_)
            if args.store.database_url.is_none()
                && !args.store.data_dir.join("events.sqlite").exists() =>
        {
            tracing::warn!(
                "no event store (DATABASE_URL, or events.sqlite in the data directory): a \
                 dossier's seq gap in the Kafka feed cannot be healed and will stop the projector"
            );
            None
        }
        _ => Some(open_store(&args.store).await?),
    };
    let source = projector_source(&args.projector, &args.kafka, stores.as_ref())?;
    if let Some(brokers) = &args.kafka.kafka_brokers {
        // The projections' topics must exist, compacted, before the first record.
        provision_topics(brokers, &args.kafka, args.store.startup_timeout()).await?;
    }
    let read_models = args
        .projector
        .open_read_models(args.store.database_url.as_deref(), &args.store.data_dir)
        .await?;
    let calendar = Arc::new(args.rules.calendar()?);
    let node_clock = args.rules.clock();
    crate::holidays::check_at_start(&calendar, node_clock.now())?;
    let access = grpc_access(&args.intake, &args.store).await?;
    let listener = bind(&args.intake).await?;
    eprintln!(
        "motcua projector is serving the ReportService on {}. Stop with Ctrl-C.",
        args.intake.listen
    );
    run_components(|shutdown, components| {
        spawn_holiday_watch(Arc::clone(&calendar), Arc::clone(&node_clock), &shutdown);
        let services = Services {
            handler: None,
            reports: Some(ReadModel::new(read_models.clone())),
            sync: None,
            clock: Some(Arc::clone(&node_clock)),
        };
        spawn_grpc(
            components,
            listener,
            services,
            access,
            &args.intake,
            &shutdown,
        );
        spawn_projector(
            components,
            ProjectorParts {
                db: read_models,
                source,
                healer: stores.as_ref().map(|stores| stores.events.clone()),
            },
            NodeTime {
                calendar,
                clock: node_clock,
            },
            &args.projector,
            &args.kafka,
            &shutdown,
        );
    })
    .await
}

/// `motcua projector rebuild`: replays the whole history into a fresh generation of the read
/// model and switches reports over to it.
pub async fn rebuild(args: RebuildArgs) -> anyhow::Result<()> {
    args.projector.validate()?;
    let stores = open_store(&args.store).await?;
    let read_models = args
        .projector
        .open_read_models(args.store.database_url.as_deref(), &args.store.data_dir)
        .await?;
    let calendar = Arc::new(args.rules.calendar()?);
    let stop = CancellationToken::new();
    let cancel = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        cancel.cancel();
    });
    let summary = projection::rebuild(
        &read_models,
        stores.events.clone(),
        calendar,
        ReplayOptions {
            flush_events: args.flush_events.max(1),
            max_dossiers: args.max_dossiers.max(1),
            ..ReplayOptions::default()
        },
        Duration::from_secs(args.progress_secs.max(1)),
        args.drop_retired,
        stop,
    )
    .await?;
    let seconds = summary.elapsed.as_secs_f64();
    eprintln!(
        "generation {} is active: {} events replayed in {:.1} s ({:.0} events/s){}{}",
        summary.generation,
        summary.events,
        seconds,
        summary.events as f64 / seconds.max(0.001),
        match summary.previous {
            Some(previous) => format!("; generation {previous} retired, its tables kept"),
            None => String::new(),
        },
        if summary.dropped.is_empty() {
            String::new()
        } else {
            format!("; dropped generations {:?}", summary.dropped)
        }
    );
    Ok(())
}

/// `motcua portal-sync`: only the national-portal adapter.
pub async fn portal_sync(args: PortalSyncArgs) -> anyhow::Result<()> {
    args.kafka.validate()?;
    args.portal.validate()?;
    let client = args
        .portal
        .client()?
        .context("the adapter needs --portal-url / MOTCUA_PORTAL_URL")?;
    let stores = open_store(&args.store).await?;
    if let Some(brokers) = &args.kafka.kafka_brokers {
        provision_topics(brokers, &args.kafka, args.store.startup_timeout()).await?;
    }
    let db = args
        .portal
        .open_db(args.store.database_url.as_deref(), &args.store.data_dir)
        .await?;
    let source = deadline_source(&args.kafka, &stores);
    eprintln!("motcua national-portal adapter is running. Stop with Ctrl-C.");
    run_components(|shutdown, components| {
        spawn_portal(
            components,
            PortalParts { db, source, client },
            &stores,
            &args.portal,
            // The adapter alone has no simulated clock: the system's, as every node's in
            // production.
            Arc::new(motcua_intake::SystemClock),
            &shutdown,
        );
    })
    .await
}

/// `motcua portal status | resync | reconcile`.
pub async fn portal_ops(args: PortalOpsArgs) -> anyhow::Result<()> {
    args.portal.validate()?;
    let stores = open_store(&args.store).await?;
    let db = args
        .portal
        .open_db(args.store.database_url.as_deref(), &args.store.data_dir)
        .await?;
    portal::command(args.command, &args.portal, db, stores.events.clone()).await
}

/// `motcua deadlines`: only the deadline watcher.
pub async fn deadlines(args: DeadlinesOnlyArgs) -> anyhow::Result<()> {
    args.kafka.validate()?;
    args.deadlines.validate()?;
    let stores = open_store(&args.store).await?;
    let handler = command_handler(&stores, &args.rules).await?;
    if let Some(brokers) = &args.kafka.kafka_brokers {
        provision_topics(brokers, &args.kafka, args.store.startup_timeout()).await?;
    }
    let db = args
        .deadlines
        .open_db(args.store.database_url.as_deref(), &args.store.data_dir)
        .await?;
    let calendar = Arc::new(args.rules.calendar()?);
    let source = deadline_source(&args.kafka, &stores);
    eprintln!("motcua deadline watcher is running. Stop with Ctrl-C.");
    run_components(|shutdown, components| {
        spawn_holiday_watch(Arc::clone(&calendar), handler.clock(), &shutdown);
        spawn_deadlines(
            components,
            db,
            source,
            calendar,
            handler,
            &args.deadlines,
            &shutdown,
        );
    })
    .await
}

/// `motcua history generate`: a large history straight into the configured store.
pub async fn history_generate(args: crate::history::GenerateArgs) -> anyhow::Result<()> {
    let stores = open_store(&args.store).await?;
    crate::history::generate(args, stores.events).await
}

/// `motcua intake`: only the gRPC intake.
pub async fn intake(args: IntakeOnlyArgs) -> anyhow::Result<()> {
    args.intake.validate()?;
    let stores = open_store(&args.store).await?;
    let handler = command_handler(&stores, &args.rules).await?;
    let access = grpc_access(&args.intake, &args.store).await?;
    let listener = bind(&args.intake).await?;
    eprintln!("motcua intake is serving gRPC on {}.", args.intake.listen);
    run_components(|shutdown, components| {
        let services = Services {
            handler: Some(handler),
            reports: None,
            sync: None,
            clock: None,
        };
        spawn_grpc(
            components,
            listener,
            services,
            access,
            &args.intake,
            &shutdown,
        );
    })
    .await
}

/// `motcua relay`: only the outbox relay (Kafka required).
pub async fn relay(args: RelayOnlyArgs) -> anyhow::Result<()> {
    args.kafka.validate()?;
    let brokers = args
        .kafka
        .kafka_brokers
        .clone()
        .context("the relay needs --kafka-brokers / KAFKA_BROKERS")?;
    let stores = open_store(&args.store).await?;
    provision_topics(&brokers, &args.kafka, args.store.startup_timeout()).await?;
    run_components(|shutdown, components| {
        spawn_relay(components, &stores, &brokers, &args.kafka, &shutdown);
    })
    .await
}

/// `motcua topics`: creates the topics and exits.
pub async fn topics(args: RelayOnlyArgs) -> anyhow::Result<()> {
    args.kafka.validate()?;
    let brokers = args
        .kafka
        .kafka_brokers
        .clone()
        .context("creating topics needs --kafka-brokers / KAFKA_BROKERS")?;
    provision_topics(&brokers, &args.kafka, args.store.startup_timeout()).await
}

/// SIGINT or SIGTERM, once [`listen_for_shutdown`] has run.
static SHUTDOWN: std::sync::OnceLock<CancellationToken> = std::sync::OnceLock::new();
/// Whether the command has got as far as waiting for [`shutdown_signal`]: before that, a
/// signal ends the process at once.
static WAITING_FOR_SHUTDOWN: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Listens for SIGINT and SIGTERM from now on, for a service's whole life. Called first thing,
/// so that a signal that comes while the service is still starting (waiting for PostgreSQL or
/// the broker, migrating, creating topics) is not left to the default action, death by the
/// signal: the process exits with status 0 and says so. Start-up writes nothing that a stop
/// could leave half done (migrations are transactions). Once the service runs, a signal starts
/// the graceful shutdown ([`shutdown_signal`]).
pub fn listen_for_shutdown() {
    let token = SHUTDOWN.get_or_init(CancellationToken::new).clone();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        // Registered here, synchronously: from this line on neither signal kills the process.
        let (Ok(mut interrupt), Ok(mut terminate)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            tracing::warn!("cannot listen for SIGINT/SIGTERM; they stop the process at once");
            return;
        };
        tokio::spawn(async move {
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
            if !WAITING_FOR_SHUTDOWN.load(std::sync::atomic::Ordering::SeqCst) {
                tracing::info!("shutdown requested while starting: exiting");
                eprintln!("motcua: stopped while starting");
                std::process::exit(0);
            }
            token.cancel();
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        if !WAITING_FOR_SHUTDOWN.load(std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(0);
        }
        token.cancel();
    });
}

/// Completes on SIGINT or SIGTERM: the signal [`listen_for_shutdown`] caught (from now on a
/// signal starts a graceful shutdown instead of ending the process), or, without it, the next
/// one.
pub async fn shutdown_signal() {
    WAITING_FOR_SHUTDOWN.store(true, std::sync::atomic::Ordering::SeqCst);
    if let Some(token) = SHUTDOWN.get() {
        token.cancelled().await;
        return;
    }
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
