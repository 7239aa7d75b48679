//! The deadline watcher in the binary: inside `motcua serve`, or alone as `motcua deadlines`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use motcua_deadlines::{DeadlineReader, Watcher, WatcherOptions, schema};
use motcua_domain::calendar::WorkingCalendar;
use motcua_feed::{KafkaFeed, ReaderDb, ReaderRunner, SqlTableFeed};
use motcua_intake::CommandHandler;
use tokio_util::sync::CancellationToken;

use crate::config::redact_url;
use crate::projection::EventSource;

/// The deadline watcher's settings.
#[derive(Debug, Clone, Args)]
pub struct DeadlineArgs {
    /// Database of the watcher's table of open dossiers (`sqlite://path` or `postgres://…`).
    /// Default: the event store's PostgreSQL (DATABASE_URL) when set, else `deadlines.sqlite`
    /// in the data directory.
    #[arg(long, env = "MOTCUA_DEADLINE_DB_URL", hide_env_values = true)]
    pub deadline_db_url: Option<String>,

    /// How long before a due date the `due_soon` warning is recorded, in working hours (8: one
    /// working day, the time the apology with a new date needs). 0 disables the warnings.
    #[arg(long, env = "MOTCUA_DUE_SOON_WORKING_HOURS", default_value_t = 8.0)]
    pub due_soon_working_hours: f64,

    /// How often the watcher looks for due dates that passed, in milliseconds. A `late` is
    /// stamped with the due instant whatever the delay.
    #[arg(long, env = "MOTCUA_DEADLINE_TICK_MS", default_value_t = 1_000)]
    pub deadline_tick_ms: u64,

    /// Commands the watcher sends at once (what bounds its load on the store in a catch-up;
    /// the store commits them in groups, so more in flight means fewer, larger commits).
    #[arg(long, env = "MOTCUA_DEADLINE_CONCURRENCY", default_value_t = 256)]
    pub deadline_concurrency: usize,

    /// Do not run the deadline watcher in `motcua serve` (run `motcua deadlines` elsewhere).
    #[arg(long, env = "MOTCUA_NO_DEADLINE_WATCHER")]
    pub no_deadline_watcher: bool,
}

impl DeadlineArgs {
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(0.0..=2_400.0).contains(&self.due_soon_working_hours)
            || !self.due_soon_working_hours.is_finite()
        {
            anyhow::bail!(
                "--due-soon-working-hours / MOTCUA_DUE_SOON_WORKING_HOURS must be between 0 and \
                 2400, not {}",
                self.due_soon_working_hours
            );
        }
        if self.deadline_tick_ms == 0 {
            anyhow::bail!("--deadline-tick-ms / MOTCUA_DEADLINE_TICK_MS must be at least 1");
        }
        if self.deadline_concurrency == 0 {
            anyhow::bail!(
                "--deadline-concurrency / MOTCUA_DEADLINE_CONCURRENCY must be at least 1"
            );
        }
        Ok(())
    }

    fn lead_seconds(&self) -> i64 {
        (self.due_soon_working_hours * 3600.0).round() as i64
    }

    /// Opens the watcher's database, creating its table if needed.
    pub async fn open_db(
        &self,
        database_url: Option<&str>,
        data_dir: &Path,
    ) -> anyhow::Result<ReaderDb> {
        let url = match (&self.deadline_db_url, database_url) {
            (Some(url), _) => url.clone(),
            (None, Some(url)) => url.to_owned(),
            (None, None) => format!("sqlite://{}", data_dir.join("deadlines.sqlite").display()),
        };
        let db = ReaderDb::connect(&url)
            .await
            .with_context(|| format!("the deadline watcher's database at {}", redact_url(&url)))?;
        schema::prepare(&db)
            .await
            .context("preparing the deadline watcher's table")?;
        tracing::info!(database = %redact_url(&url), "deadline watcher database");
        Ok(db)
    }
}

/// Runs the watcher's reader (on `source`) and its timer loop (appending through `handler`)
/// until `shutdown`.
pub async fn run(
    db: ReaderDb,
    source: EventSource,
    calendar: Arc<WorkingCalendar>,
    handler: CommandHandler,
    args: DeadlineArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let overdue_db = db.clone();
    let clock = handler.clock();
    crate::telemetry::spawn_gauge("motcua_overdue_dossiers", shutdown.clone(), move || {
        let db = overdue_db.clone();
        let now = clock.now();
        async move { crate::telemetry::overdue_dossiers(&db, now).await }
    });
    // The store the watcher appends to is also where a seq gap in the feed is healed from.
    let store = Arc::clone(handler.store());
    let reader = DeadlineReader::new(calendar, args.lead_seconds());
    let watcher = Watcher::new(
        db.clone(),
        handler,
        WatcherOptions {
            tick: Duration::from_millis(args.deadline_tick_ms),
            concurrency: args.deadline_concurrency,
            ..WatcherOptions::default()
        },
    );
    let timers = tokio::spawn(watcher.run(shutdown.clone()));
    let followed = match source {
        EventSource::Store(feed_store) => {
            let feed = SqlTableFeed::new(feed_store).poll_interval(Duration::from_millis(100));
            ReaderRunner::new(feed, reader, db)
                .heal_gaps_from(store)
                .run(shutdown.clone())
                .await
        }
        EventSource::Kafka(config) => {
            ReaderRunner::new(KafkaFeed::new(config), reader, db)
                .heal_gaps_from(store)
                .run(shutdown.clone())
                .await
        }
    };
    // The reader stops only on shutdown or a fatal error; either way the timers stop too.
    shutdown.cancel();
    timers
        .await
        .context("the deadline watcher's timer loop panicked")?;
    followed.context("the deadline watcher's reader failed")
}
