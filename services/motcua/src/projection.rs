//! Running the rates projector: live (embedded in `motcua serve`, or alone in `motcua projector
//! run`), and the rebuild (`motcua projector rebuild`) that replays the whole history into a
//! fresh generation of the read model and switches reports over to it.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use motcua_domain::calendar::WorkingCalendar;
use motcua_feed::{
    KafkaFeed, KafkaFeedConfig, ReaderDb, ReaderRunner, RunnerOptions, SqlTableFeed,
};
use motcua_projector::replay::{ReplayOptions, replay};
use motcua_projector::{RatesProjector, Tables, generations};
use motcua_store::EventStore;
use tokio_util::sync::CancellationToken;

use crate::config::redact_url;

/// The rates projector and its read models.
#[derive(Debug, Clone, Args)]
pub struct ProjectorArgs {
    /// Database of the read models (`sqlite://path` or `postgres://…`). Default: the event
    /// store's PostgreSQL (DATABASE_URL) when set, else `rates.sqlite` in the data directory.
    #[arg(long, env = "MOTCUA_READ_MODEL_URL", hide_env_values = true)]
    pub read_model_url: Option<String>,

    /// Where the live projector reads events from: `auto` (Kafka when KAFKA_BROKERS is set,
    /// else the event store's table), `store`, or `kafka`.
    #[arg(long, env = "MOTCUA_PROJECTOR_FEED", default_value = "auto")]
    pub projector_feed: FeedChoice,

    /// Events applied per read-model transaction at most. Larger batches replay faster;
    /// smaller ones commit (and so show) sooner under load.
    #[arg(long, env = "MOTCUA_PROJECTOR_BATCH", default_value_t = 2_000)]
    pub projector_batch: usize,

    /// How often the live projector checks whether a rebuild switched generations, in
    /// milliseconds.
    #[arg(long, env = "MOTCUA_GENERATION_CHECK_MS", default_value_t = 2_000)]
    pub generation_check_ms: u64,
}

/// The live projector's source of events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FeedChoice {
    Auto,
    Store,
    Kafka,
}

impl ProjectorArgs {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.projector_batch == 0 {
            anyhow::bail!("--projector-batch / MOTCUA_PROJECTOR_BATCH must be at least 1");
        }
        if self.generation_check_ms == 0 {
            anyhow::bail!("--generation-check-ms / MOTCUA_GENERATION_CHECK_MS must be at least 1");
        }
        Ok(())
    }

    /// The read models' database URL: the flag, else beside the events.
    pub fn read_model_url(&self, database_url: Option<&str>, data_dir: &Path) -> String {
        match (&self.read_model_url, database_url) {
            (Some(url), _) => url.clone(),
            (None, Some(url)) => url.to_owned(),
            (None, None) => format!("sqlite://{}", data_dir.join("rates.sqlite").display()),
        }
    }

    /// Opens the read models' database, creating it if needed.
    pub async fn open_read_models(
        &self,
        database_url: Option<&str>,
        data_dir: &Path,
    ) -> anyhow::Result<ReaderDb> {
        let url = self.read_model_url(database_url, data_dir);
        let db = ReaderDb::connect(&url)
            .await
            .with_context(|| format!("read models at {}", redact_url(&url)))?;
        generations::ensure_active(&db)
            .await
            .context("preparing the rates read model")?;
        tracing::info!(read_models = %redact_url(&url), "rates read models");
        Ok(db)
    }
}

/// Where a projector reads events.
#[derive(Clone)]
// Built once per reader at start and moved, never copied in a loop: the size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum EventSource {
    /// The event store's table (embedded mode, and every rebuild).
    Store(Arc<dyn EventStore>),
    /// The events topic (distributed mode).
    Kafka(KafkaFeedConfig),
}

impl std::fmt::Debug for EventSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

impl EventSource {
    fn describe(&self) -> &'static str {
        match self {
            Self::Store(_) => "the event store",
            Self::Kafka(_) => "Kafka",
        }
    }
}

/// Runs `projector` on `source` until `stop` is cancelled or a fatal error. A dossier's seq
/// gap is healed from `healer` (the store itself when it is the source); with neither, a gap
/// stops the projector ([`motcua_feed::FeedError::SeqGap`]) rather than count over it.
async fn run_on(
    source: &EventSource,
    projector: RatesProjector,
    db: &ReaderDb,
    batch: usize,
    healer: Option<Arc<dyn EventStore>>,
    stop: CancellationToken,
) -> Result<(), motcua_feed::FeedError> {
    let options = RunnerOptions {
        max_batch: batch,
        // The projector drops what it already applied by the dossier's version itself.
        dedupe: false,
        ..RunnerOptions::default()
    };
    match source {
        EventSource::Store(store) => {
            let feed =
                SqlTableFeed::new(Arc::clone(store)).poll_interval(Duration::from_millis(25));
            ReaderRunner::new(feed, projector, db.clone())
                .options(options)
                .heal_gaps_from(healer.unwrap_or_else(|| Arc::clone(store)))
                .run(stop)
                .await
        }
        EventSource::Kafka(config) => {
            let runner = ReaderRunner::new(KafkaFeed::new(config.clone()), projector, db.clone())
                .options(options);
            match healer {
                Some(store) => runner.heal_gaps_from(store).run(stop).await,
                None => runner.run(stop).await,
            }
        }
    }
}

/// The live projector: follows `source` into the active generation of the read model, and
/// moves to a new generation as soon as a rebuild activates it (the rebuilt generation's own
/// position says where to continue), until `shutdown` is cancelled. With `outbox`, it also
/// records the keys whose Kafka projections must be republished (only when a publisher
/// drains them, or the outbox would grow for ever). `healer`: the event store seq gaps in a
/// Kafka feed are healed from (see [`run_on`]).
pub async fn run_live(
    db: ReaderDb,
    source: EventSource,
    healer: Option<Arc<dyn EventStore>>,
    calendar: Arc<WorkingCalendar>,
    args: ProjectorArgs,
    outbox: bool,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    bring_up_to_date(&db, &source, &calendar, &shutdown).await?;
    if shutdown.is_cancelled() {
        // Stopped while rebuilding: the rebuild resumes from its last write at the next
        // start; nothing else to do.
        return Ok(());
    }
    loop {
        let tables = generations::ensure_active(&db)
            .await
            .context("the rates read model")?;
        let generation = tables.generation;
        tracing::info!(
            generation,
            source = source.describe(),
            "rates projector following"
        );
        let projector = RatesProjector::new(tables, Arc::clone(&calendar));
        let projector = if outbox {
            projector
        } else {
            projector.without_outbox()
        };
        let stop = shutdown.child_token();
        let mut runner = tokio::spawn({
            let source = source.clone();
            let db = db.clone();
            let stop = stop.clone();
            let batch = args.projector_batch;
            let healer = healer.clone();
            async move { run_on(&source, projector, &db, batch, healer, stop).await }
        });
        let mut check = tokio::time::interval(Duration::from_millis(args.generation_check_ms));
        let switched = loop {
            tokio::select! {
                done = &mut runner => {
                    return match done {
                        Ok(Ok(())) if shutdown.is_cancelled() => Ok(()),
                        Ok(Ok(())) => Err(anyhow::anyhow!("the rates projector stopped")),
                        Ok(Err(error)) => Err(error).context("the rates projector failed"),
                        Err(panic) => Err(anyhow::anyhow!("the rates projector panicked: {panic}")),
                    };
                }
                _ = check.tick() => {
                    match generations::active(&db).await {
                        Ok(Some(active)) if active != generation => break active,
                        Ok(_) => {}
                        Err(error) => tracing::warn!(%error, "cannot read the active generation"),
                    }
                }
            }
        };
        tracing::info!(
            from = generation,
            to = switched,
            "a rebuild switched generations"
        );
        stop.cancel();
        runner
            .await
            .context("the rates projector panicked")?
            .context("the rates projector failed while switching generations")?;
    }
}

/// Makes sure the active generation's figures mean what this build computes
/// ([`generations::MODEL_VERSION`]). Following the events into a generation built under older
/// definitions would mix two meanings in one figure. Fed by the event store, the projector
/// rebuilds it first (reports keep the old generation until the new one is ready); fed by
/// Kafka it has no history to replay, and says what to run.
async fn bring_up_to_date(
    db: &ReaderDb,
    source: &EventSource,
    calendar: &Arc<WorkingCalendar>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    generations::ensure_active(db)
        .await
        .context("the rates read model")?;
    let Some(version) = generations::active_model_version(db).await? else {
        return Ok(());
    };
    if version >= generations::MODEL_VERSION {
        return Ok(());
    }
    let current = generations::MODEL_VERSION;
    match source {
        EventSource::Kafka(_) => anyhow::bail!(
            "the rates read model was built under version {version} of the figures' \
             definitions and this projector computes version {current}: run `motcua projector \
             rebuild` (it replays the event store into a new generation), then start the \
             projector again"
        ),
        EventSource::Store(store) => {
            tracing::warn!(
                version,
                current,
                "the rates read model holds figures of older definitions: rebuilding it from \
                 the event store; reports answer from the old generation until it is done"
            );
            let summary = rebuild(
                db,
                Arc::clone(store),
                Arc::clone(calendar),
                ReplayOptions::default(),
                Duration::from_secs(10),
                false,
                shutdown.clone(),
            )
            .await;
            if shutdown.is_cancelled() {
                tracing::info!("stopped during the rebuild; it resumes at the next start");
                return Ok(());
            }
            let summary =
                summary.context("rebuilding the rates read model under the current definitions")?;
            tracing::info!(
                generation = summary.generation,
                events = summary.events,
                elapsed_ms = summary.elapsed.as_millis() as u64,
                "rates read model rebuilt under the current definitions"
            );
            Ok(())
        }
    }
}

/// What `motcua projector rebuild` reports when done.
#[derive(Debug)]
pub struct RebuildSummary {
    pub generation: i64,
    pub previous: Option<i64>,
    pub events: u64,
    pub elapsed: Duration,
    pub dropped: Vec<i64>,
}

/// Replays every event of `store` into a fresh generation (or resumes an interrupted rebuild),
/// then activates it, reading and writing as `options` say. Prints a progress line to stderr
/// every `progress_every`.
pub async fn rebuild(
    db: &ReaderDb,
    store: Arc<dyn EventStore>,
    calendar: Arc<WorkingCalendar>,
    options: ReplayOptions,
    progress_every: Duration,
    drop_retired: bool,
    shutdown: CancellationToken,
) -> anyhow::Result<RebuildSummary> {
    let previous = generations::active(db).await?;
    let tables = match generations::building(db).await? {
        Some(tables) => {
            eprintln!(
                "resuming the interrupted rebuild of generation {}",
                tables.generation
            );
            tables
        }
        None => generations::begin_rebuild(db).await?,
    };
    let generation = tables.generation;
    let started_at = position(db, &tables).await?;
    let head = store.head_position().await.context("the event store")?;
    eprintln!(
        "rebuilding the rates read model into generation {generation}: {} events to replay",
        head.saturating_sub(started_at)
    );
    let projector = RatesProjector::new(tables.clone(), calendar).without_outbox();
    let clock = Instant::now();
    let mut last_print = Instant::now();
    let replayed = replay(
        &projector,
        db,
        Arc::clone(&store),
        &options,
        |progress| {
            if last_print.elapsed() >= progress_every {
                last_print = Instant::now();
                print_progress(
                    generation,
                    progress.applied.saturating_sub(started_at),
                    progress.head.saturating_sub(started_at),
                    clock.elapsed(),
                );
            }
        },
        &shutdown,
    )
    .await
    .context("the rebuild failed; run it again to resume from its last flush")?;
    if shutdown.is_cancelled() {
        anyhow::bail!(
            "the rebuild was interrupted at position {replayed}; run it again to resume \
             generation {generation}"
        );
    }
    let events = position(db, &tables).await?.saturating_sub(started_at);
    generations::activate(db, generation).await?;
    let dropped = if drop_retired {
        generations::drop_retired(db).await?
    } else {
        Vec::new()
    };
    Ok(RebuildSummary {
        generation,
        previous,
        events,
        elapsed: clock.elapsed(),
        dropped,
    })
}

async fn position(db: &ReaderDb, tables: &Tables) -> anyhow::Result<u64> {
    let at = motcua_feed::load_position(db, &tables.reader_name(), "sql", 0)
        .await
        .context("the rebuild's position")?;
    Ok(at.map_or(0, |p| p.max(0) as u64))
}

fn print_progress(generation: i64, done: u64, total: u64, elapsed: Duration) {
    let rate = done as f64 / elapsed.as_secs_f64().max(0.001);
    let percent = if total == 0 {
        100.0
    } else {
        done as f64 * 100.0 / total as f64
    };
    let eta = if rate > 0.0 {
        format!("{:.0} s", total.saturating_sub(done) as f64 / rate)
    } else {
        "unknown".to_owned()
    };
    eprintln!(
        "generation {generation}: {done} / {total} events ({percent:.1}%), {rate:.0} events/s, \
         about {eta} left"
    );
}
