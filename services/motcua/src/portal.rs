//! The national-portal adapter in the binary: inside `motcua serve` when a portal URL is
//! configured, alone as `motcua portal-sync`, and the operators' `motcua portal status |
//! resync | reconcile`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use motcua_feed::{KafkaFeed, ReaderDb, ReaderRunner, SqlTableFeed};
use motcua_portal::ops::{self, Selection};
use motcua_portal::{
    ClientConfig, PortalClient, Secret, Sender, SenderOptions, SyncReader, schema,
};
use motcua_store::EventStore;
use tokio_util::sync::CancellationToken;

use crate::config::redact_url;
use crate::projection::EventSource;

/// Where the portal is and how to sync with it.
#[derive(Debug, Clone, Args)]
pub struct PortalArgs {
    /// The national portal's base URL (HTTPS; `http://` only for the simulator on loopback).
    /// When set, `motcua serve` runs the adapter too.
    #[arg(long, env = "MOTCUA_PORTAL_URL")]
    pub portal_url: Option<String>,

    /// The portal account's username.
    #[arg(long, env = "MOTCUA_PORTAL_USERNAME", default_value = "")]
    pub portal_username: String,

    /// A file holding the portal account's password (one line; mode 0600 recommended).
    #[arg(long, env = "MOTCUA_PORTAL_PASSWORD_FILE")]
    pub portal_password_file: Option<PathBuf>,

    /// The password itself, when no file is given (prefer the file: environments leak).
    #[arg(
        long,
        env = "MOTCUA_PORTAL_PASSWORD",
        hide_env_values = true,
        hide = true
    )]
    pub portal_password: Option<String>,

    /// Database of the adapter's sync state (`sqlite://…` or `postgres://…`). Default: the
    /// event store's PostgreSQL when set, else `portal.sqlite` in the data directory.
    #[arg(long, env = "MOTCUA_PORTAL_DB_URL", hide_env_values = true)]
    pub portal_db_url: Option<String>,

    /// Dossiers synced at once.
    #[arg(long, env = "MOTCUA_PORTAL_CONCURRENCY", default_value_t = 64)]
    pub portal_concurrency: usize,

    /// Failed attempts before a dossier goes to the dead letters.
    #[arg(long, env = "MOTCUA_PORTAL_MAX_ATTEMPTS", default_value_t = 12)]
    pub portal_max_attempts: u32,

    /// Per-request timeout, in seconds.
    #[arg(long, env = "MOTCUA_PORTAL_TIMEOUT_SECS", default_value_t = 10)]
    pub portal_timeout_secs: u64,

    /// How soon a change must reach the portal to count as synced on time, in seconds (the
    /// dossier-sync figure).
    #[arg(
        long,
        env = "MOTCUA_PORTAL_SYNC_DEADLINE_SECS",
        default_value_t = 3_600
    )]
    pub portal_sync_deadline_secs: u64,

    /// How often the adapter reconciles a page of dossiers with the portal's copy and
    /// resends what drifted (as `motcua portal reconcile --repair`, a page at a time), in
    /// seconds; 0: never (reconcile by hand). Each page asks the portal once per dossier.
    #[arg(
        long,
        env = "MOTCUA_PORTAL_RECONCILE_INTERVAL_SECS",
        default_value_t = 0
    )]
    pub portal_reconcile_interval_secs: u64,

    /// Dossiers one periodic reconciliation checks (the next run goes on after the last one,
    /// and starts again from the first at the end).
    #[arg(long, env = "MOTCUA_PORTAL_RECONCILE_BATCH", default_value_t = 200)]
    pub portal_reconcile_batch: usize,
}

/// The adapter's periodic reconciliation: a page of `batch` dossiers every `every`.
#[derive(Debug, Clone, Copy)]
pub struct ReconcileEvery {
    pub every: Duration,
    pub batch: usize,
}

impl PortalArgs {
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.portal_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                anyhow::bail!(
                    "--portal-url / MOTCUA_PORTAL_URL must be an http(s) URL, not {url:?}"
                );
            }
            if self.portal_username.is_empty() {
                anyhow::bail!("--portal-url needs --portal-username / MOTCUA_PORTAL_USERNAME");
            }
            if self.portal_password_file.is_none() && self.portal_password.is_none() {
                anyhow::bail!(
                    "--portal-url needs --portal-password-file / MOTCUA_PORTAL_PASSWORD_FILE"
                );
            }
        }
        if self.portal_concurrency == 0
            || self.portal_max_attempts == 0
            || self.portal_timeout_secs == 0
        {
            anyhow::bail!(
                "--portal-concurrency, --portal-max-attempts and --portal-timeout-secs must be at least 1"
            );
        }
        if self.portal_reconcile_batch == 0 {
            anyhow::bail!(
                "--portal-reconcile-batch / MOTCUA_PORTAL_RECONCILE_BATCH must be at least 1"
            );
        }
        Ok(())
    }

    /// The periodic reconciliation, unless it is off.
    pub fn reconcile_every(&self) -> Option<ReconcileEvery> {
        (self.portal_reconcile_interval_secs > 0).then(|| ReconcileEvery {
            every: Duration::from_secs(self.portal_reconcile_interval_secs),
            batch: self.portal_reconcile_batch,
        })
    }

    fn password(&self) -> anyhow::Result<Secret> {
        match (&self.portal_password_file, &self.portal_password) {
            (Some(path), _) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("--portal-password-file {}: cannot read it", path.display())
                })?;
                Ok(Secret::new(text.trim_end_matches(['\n', '\r'])))
            }
            (None, Some(password)) => Ok(Secret::new(password.clone())),
            (None, None) => anyhow::bail!("no portal password: set --portal-password-file"),
        }
    }

    /// The client, when a portal is configured.
    pub fn client(&self) -> anyhow::Result<Option<Arc<PortalClient>>> {
        let Some(url) = &self.portal_url else {
            return Ok(None);
        };
        let client = PortalClient::new(ClientConfig {
            base_url: url.clone(),
            username: self.portal_username.clone(),
            password: self.password()?,
            timeout: Duration::from_secs(self.portal_timeout_secs),
            renew_margin: Duration::from_secs(30),
        })
        .context("the national-portal HTTP client")?;
        Ok(Some(Arc::new(client)))
    }

    pub fn sender_options(&self) -> SenderOptions {
        SenderOptions {
            concurrency: self.portal_concurrency,
            max_attempts: self.portal_max_attempts,
            sync_deadline: Duration::from_secs(self.portal_sync_deadline_secs),
            ..SenderOptions::default()
        }
    }

    /// Opens the sync database, creating its tables if needed.
    pub async fn open_db(
        &self,
        database_url: Option<&str>,
        data_dir: &Path,
    ) -> anyhow::Result<ReaderDb> {
        let url = match (&self.portal_db_url, database_url) {
            (Some(url), _) => url.clone(),
            (None, Some(url)) => url.to_owned(),
            (None, None) => format!("sqlite://{}", data_dir.join("portal.sqlite").display()),
        };
        let db = ReaderDb::connect(&url)
            .await
            .with_context(|| format!("the portal sync database at {}", redact_url(&url)))?;
        schema::prepare(&db)
            .await
            .context("preparing the portal sync tables")?;
        Ok(db)
    }
}

/// Runs the adapter's reader (on `source`), its sender and, with `reconcile`, its periodic
/// reconciliation, until `shutdown`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    db: ReaderDb,
    source: EventSource,
    store: Arc<dyn EventStore>,
    client: Arc<PortalClient>,
    options: SenderOptions,
    reconcile: Option<ReconcileEvery>,
    clock: Arc<dyn motcua_domain::clock::Clock>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if let Some(every) = reconcile {
        tokio::spawn(reconcile_periodically(
            db.clone(),
            Arc::clone(&store),
            Arc::clone(&client),
            every,
            shutdown.clone(),
        ));
    }
    let backlog_db = db.clone();
    crate::telemetry::spawn_gauge(
        "motcua_portal_backlog_dossiers",
        shutdown.clone(),
        move || {
            let db = backlog_db.clone();
            async move { ops::backlog(&db).await }
        },
    );
    let behind_db = db.clone();
    crate::telemetry::spawn_gauge(
        "motcua_portal_dossiers_behind",
        shutdown.clone(),
        move || {
            let db = behind_db.clone();
            async move { ops::behind(&db).await }
        },
    );
    let sender = Sender::new(db.clone(), Arc::clone(&store), client, options).with_clock(clock);
    let sending = tokio::spawn(sender.run(shutdown.clone()));
    let followed = match source {
        EventSource::Store(feed_store) => {
            let feed = SqlTableFeed::new(feed_store).poll_interval(Duration::from_millis(100));
            ReaderRunner::new(feed, SyncReader, db)
                .heal_gaps_from(store)
                .run(shutdown.clone())
                .await
        }
        EventSource::Kafka(config) => {
            ReaderRunner::new(KafkaFeed::new(config), SyncReader, db)
                .heal_gaps_from(store)
                .run(shutdown.clone())
                .await
        }
    };
    shutdown.cancel();
    sending.await.context("the portal sender panicked")?;
    followed.context("the portal adapter's reader failed")
}

/// Reconciles a page of dossiers every `every.every`, with repair, going on where the last page
/// ended: a copy the portal lost or holds stale (its backup restored, say) is sent again
/// without an operator, and no run asks the portal about every dossier at once. A failure
/// (the portal away) is logged; the same page is tried at the next interval.
async fn reconcile_periodically(
    db: ReaderDb,
    store: Arc<dyn EventStore>,
    client: Arc<PortalClient>,
    every: ReconcileEvery,
    shutdown: CancellationToken,
) {
    let mut after = String::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(every.every) => {}
        }
        match ops::reconcile_page(&db, &store, &client, &after, every.batch, true).await {
            Ok((report, next)) => {
                if !report.drifted.is_empty() {
                    metrics::counter!("motcua_portal_reconcile_drifted_total")
                        .increment(report.drifted.len() as u64);
                    tracing::warn!(
                        drifted = report.drifted.len(),
                        checked = report.checked,
                        first = %report.drifted[0],
                        "national-portal reconcile: the portal's copy drifted; sending again"
                    );
                }
                after = next.unwrap_or_default();
            }
            Err(error) => {
                tracing::warn!(%error, "national-portal reconcile failed; trying again later");
            }
        }
    }
}

/// `motcua portal …`.
#[derive(Debug, Subcommand)]
pub enum PortalCommand {
    /// What has not reached the portal, and why (dead letters first, then the oldest).
    Status {
        /// Only this receiving unit's dossiers.
        #[arg(long)]
        unit: Option<String>,
        /// Dossiers listed at most.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Send dossiers again, whole (state and every progress record, rebuilt from the store).
    Resync {
        #[arg(long)]
        dossier: Option<String>,
        #[arg(long)]
        unit: Option<String>,
        /// Received from this Vietnam date (YYYY-MM-DD) …
        #[arg(long)]
        from: Option<chrono::NaiveDate>,
        /// … to this one, included.
        #[arg(long)]
        to: Option<chrono::NaiveDate>,
        /// Every dead-lettered dossier.
        #[arg(long)]
        dead_letters: bool,
    },
    /// Compare the portal's copy (its look-up service) with ours; `--repair` resends what
    /// drifted.
    Reconcile {
        #[arg(long)]
        unit: Option<String>,
        #[arg(long)]
        repair: bool,
    },
}

fn vietnam_midnight_micros(date: chrono::NaiveDate) -> i64 {
    let local = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    (local - chrono::Duration::hours(7))
        .and_utc()
        .timestamp_micros()
}

fn vn(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| {
            motcua_domain::time::to_vietnam(t)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|| "-".into())
}

/// Runs an operator's command against the sync database (and the store and portal where needed).
pub async fn command(
    command: PortalCommand,
    args: &PortalArgs,
    db: ReaderDb,
    store: Arc<dyn EventStore>,
) -> anyhow::Result<()> {
    match command {
        PortalCommand::Status { unit, limit, json } => {
            let status = ops::status(&db, limit, unit.as_deref()).await?;
            let now = chrono::Utc::now().timestamp_micros();
            let deadline = i64::try_from(args.portal_sync_deadline_secs).unwrap_or(0) * 1_000_000;
            let (on_time, received) =
                ops::timeliness(&db, i64::MIN, i64::MAX, unit.as_deref(), deadline, now).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"status": status, "synced_on_time": on_time, "received": received})
                );
                return Ok(());
            }
            println!(
                "{} dossiers known, {} pending ({} dead letters); oldest pending since {}",
                status.dossiers,
                status.pending,
                status.dead,
                status.oldest_pending_since.map_or_else(|| "-".into(), vn)
            );
            println!(
                "synced on time (within {} s): {on_time} of {received}",
                args.portal_sync_deadline_secs
            );
            if !status.unsynced.is_empty() {
                println!();
                println!(
                    "{:<30} {:>9} {:>8} {:<17} {:<17} why",
                    "dossier", "version", "synced", "pending since", "next attempt"
                );
                for u in &status.unsynced {
                    println!(
                        "{:<30} {:>9} {:>8} {:<17} {:<17} {}{}",
                        u.dossier_id,
                        u.version,
                        u.synced_version,
                        vn(u.pending_since),
                        if u.dead {
                            "dead letter".to_owned()
                        } else {
                            vn(u.next_attempt_at.max(now))
                        },
                        if u.attempts > 0 {
                            format!("{} attempts: ", u.attempts)
                        } else {
                            String::new()
                        },
                        u.last_error.as_deref().unwrap_or("waiting to be sent")
                    );
                }
            }
            Ok(())
        }
        PortalCommand::Resync {
            dossier,
            unit,
            from,
            to,
            dead_letters,
        } => {
            let selection = match (dossier, unit, from, dead_letters) {
                (Some(id), None, None, false) => Selection::Dossier(id),
                (None, Some(unit), None, false) => Selection::Unit(unit),
                (None, None, Some(from), false) => Selection::Received {
                    from: vietnam_midnight_micros(from),
                    to: vietnam_midnight_micros(to.unwrap_or(from) + chrono::Duration::days(1)),
                },
                (None, None, None, true) => Selection::DeadLetters,
                _ => anyhow::bail!(
                    "give exactly one of --dossier, --unit, --from [--to], --dead-letters"
                ),
            };
            let count = ops::resync(&db, &store, &selection).await?;
            println!("{count} dossiers queued to be sent again; a running adapter sends them now");
            Ok(())
        }
        PortalCommand::Reconcile { unit, repair } => {
            let client = args
                .client()?
                .context("reconcile asks the portal: set --portal-url")?;
            let report = ops::reconcile(&db, &store, &client, unit.as_deref(), repair).await?;
            println!(
                "{} checked: {} in sync, {} drifted{}, {} still pending (skipped)",
                report.checked,
                report.in_sync,
                report.drifted.len(),
                if repair { " (queued again)" } else { "" },
                report.still_pending
            );
            for id in report.drifted.iter().take(50) {
                println!("  drifted: {id}");
            }
            Ok(())
        }
    }
}

/// The dossier-sync score's input for the ReportService, from the adapter's sync state.
#[derive(Debug)]
pub struct PortalSyncFigures {
    pub db: ReaderDb,
    pub deadline: Duration,
}

#[async_trait::async_trait]
impl motcua_projector::service::SyncFigures for PortalSyncFigures {
    async fn synced_on_time(
        &self,
        scope: motcua_projector::ScopeKind,
        scope_id: &str,
        from: motcua_domain::time::Instant,
        to: motcua_domain::time::Instant,
        now: motcua_domain::time::Instant,
    ) -> Result<Option<(i64, i64)>, String> {
        use motcua_projector::ScopeKind;
        let unit = match scope {
            ScopeKind::Province => None,
            ScopeKind::ReceivingUnit => Some(scope_id),
            ScopeKind::CompetentAuthority | ScopeKind::Procedure => return Ok(None),
        };
        let deadline = i64::try_from(self.deadline.as_micros()).unwrap_or(i64::MAX);
        ops::timeliness(
            &self.db,
            from.timestamp_micros(),
            to.timestamp_micros(),
            unit,
            deadline,
            now.timestamp_micros(),
        )
        .await
        .map(Some)
        .map_err(|error| error.to_string())
    }
}
