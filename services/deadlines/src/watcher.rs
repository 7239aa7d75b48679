//! The timer loop: records `due_soon` and `late` for the dossiers whose timer has passed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use motcua_domain::deadline::{Timer, TimerKind, request_id};
use motcua_domain::ids::DossierCode;
use motcua_domain::lifecycle::{Command, DomainError};
use motcua_domain::time::Instant;
use motcua_feed::{Backend, Placeholders, ReaderDb};
use motcua_intake::CommandHandler;
use motcua_intake::error::IntakeError;
use motcua_intake::validate::{Meta, Target, ValidCommand};
use motcua_proto::v1::Actor;
use sha2::{Digest, Sha256};
use sqlx::Row;
use tokio_util::sync::CancellationToken;

/// The principal recorded on the events the watcher appends.
pub const PRINCIPAL: &str = "system:deadline-watcher";

/// Timers cleared per statement: two parameters each, far below either database's limit.
const SETTLE_CHUNK: usize = 500;

/// How the watcher runs.
#[derive(Debug, Clone)]
pub struct WatcherOptions {
    /// How often it looks for timers that passed. A `late` is stamped with the due instant
    /// whatever the delay; the tick only bounds how soon it is recorded.
    pub tick: Duration,
    /// Timers read per query (oldest first); a catch-up goes page after page.
    pub page: usize,
    /// Commands in flight at once: what bounds the load on the store during a catch-up.
    pub concurrency: usize,
}

impl Default for WatcherOptions {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(1),
            page: 2_000,
            concurrency: 256,
        }
    }
}

/// What the watcher has done since it started, for metrics.
#[derive(Debug, Default)]
pub struct WatcherStats {
    pub late_recorded: AtomicU64,
    pub due_soon_recorded: AtomicU64,
    /// Commands the store had already recorded (another watcher, or this one before a crash).
    pub already_recorded: AtomicU64,
    /// Timers the dossier no longer needed (its due date moved or it ended since the watcher's
    /// copy was updated); the feed brings the change.
    pub stale: AtomicU64,
    /// Commands that failed (the store was unavailable): retried at the next tick.
    pub failed: AtomicU64,
    pub ticks: AtomicU64,
}

/// What one tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickReport {
    pub late_recorded: u64,
    pub due_soon_recorded: u64,
    pub already_recorded: u64,
    pub stale: u64,
    pub failed: u64,
}

impl TickReport {
    pub fn handled(&self) -> u64 {
        self.late_recorded + self.due_soon_recorded + self.already_recorded + self.stale
    }
}

/// Why a tick stopped early.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("the watcher's database failed: {0}")]
    Database(#[from] sqlx::Error),
}

/// A timer read from the table, with the row version it was computed at.
#[derive(Debug, Clone)]
struct Due {
    dossier_id: String,
    version: i64,
    timer: Timer,
}

/// How handling one timer ended.
#[derive(Debug)]
enum Handled {
    Recorded(TimerKind),
    AlreadyRecorded,
    Stale,
    Failed,
}

/// The timer loop (module docs in `lib.rs`).
#[derive(Debug, Clone)]
pub struct Watcher {
    db: ReaderDb,
    handler: CommandHandler,
    options: WatcherOptions,
    stats: Arc<WatcherStats>,
}

impl Watcher {
    /// A watcher on the reader's database `db`, appending through `handler` (whose clock is
    /// the one that decides what is due).
    pub fn new(db: ReaderDb, handler: CommandHandler, options: WatcherOptions) -> Self {
        Self {
            db,
            handler,
            options,
            stats: Arc::default(),
        }
    }

    pub fn stats(&self) -> Arc<WatcherStats> {
        Arc::clone(&self.stats)
    }

    /// Ticks every [`WatcherOptions::tick`] until `shutdown`. Failures are logged and retried
    /// at the next tick: a watcher never stops because the store or its database is away.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut interval = tokio::time::interval(self.options.tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tracing::info!(
            tick_ms = self.options.tick.as_millis() as u64,
            concurrency = self.options.concurrency,
            "deadline watcher started"
        );
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = interval.tick() => {}
            }
            match self.tick_until(&shutdown).await {
                Ok(report) if report.handled() + report.failed > 0 => tracing::info!(
                    late = report.late_recorded,
                    due_soon = report.due_soon_recorded,
                    already_recorded = report.already_recorded,
                    stale = report.stale,
                    failed = report.failed,
                    "deadline watcher tick"
                ),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "deadline watcher tick failed; retrying"),
            }
        }
        tracing::info!("deadline watcher stopped");
    }

    /// One tick: handles every timer that passed by now, page after page.
    pub async fn tick(&self) -> Result<TickReport, WatchError> {
        self.tick_until(&CancellationToken::new()).await
    }

    async fn tick_until(&self, shutdown: &CancellationToken) -> Result<TickReport, WatchError> {
        self.stats.ticks.fetch_add(1, Ordering::Relaxed);
        let now = self.handler.now();
        let mut report = TickReport::default();
        let started = std::time::Instant::now();
        let mut last_progress = started;
        loop {
            let due = self.due(now).await?;
            if due.is_empty() {
                break;
            }
            let full = due.len() >= self.options.page;
            // One read for the page's dossiers instead of one per command (a round trip each).
            let ids: Vec<&str> = due.iter().map(|d| d.dossier_id.as_str()).collect();
            if let Err(error) = self.handler.preload(&ids).await {
                tracing::warn!(%error, "deadline watcher: preloading states failed; reading each");
            }
            let results: Vec<(Due, Handled)> = futures::stream::iter(due)
                .map(|due| async move {
                    let handled = self.handle(&due, now).await;
                    (due, handled)
                })
                .buffer_unordered(self.options.concurrency.max(1))
                .collect()
                .await;
            let mut settled = Vec::with_capacity(results.len());
            for (due, handled) in results {
                match handled {
                    Handled::Recorded(TimerKind::Late) => report.late_recorded += 1,
                    Handled::Recorded(TimerKind::DueSoon) => report.due_soon_recorded += 1,
                    Handled::AlreadyRecorded => report.already_recorded += 1,
                    Handled::Stale => report.stale += 1,
                    Handled::Failed => {
                        report.failed += 1;
                        continue;
                    }
                }
                settled.push(due);
            }
            self.settle(&settled).await?;
            if report.failed > 0 || !full || shutdown.is_cancelled() {
                // Failures are retried at the next tick, not in a loop within this one.
                break;
            }
            if last_progress.elapsed() >= Duration::from_secs(5) {
                last_progress = std::time::Instant::now();
                let done = report.handled();
                tracing::info!(
                    handled = done,
                    per_second = (done as f64 / started.elapsed().as_secs_f64()) as u64,
                    "deadline watcher catching up"
                );
            }
        }
        let stats = &self.stats;
        stats
            .late_recorded
            .fetch_add(report.late_recorded, Ordering::Relaxed);
        stats
            .due_soon_recorded
            .fetch_add(report.due_soon_recorded, Ordering::Relaxed);
        stats
            .already_recorded
            .fetch_add(report.already_recorded, Ordering::Relaxed);
        stats.stale.fetch_add(report.stale, Ordering::Relaxed);
        stats.failed.fetch_add(report.failed, Ordering::Relaxed);
        for (outcome, count) in [
            ("late", report.late_recorded),
            ("due_soon", report.due_soon_recorded),
            ("already_recorded", report.already_recorded),
            ("stale", report.stale),
            ("failed", report.failed),
        ] {
            metrics::counter!("motcua_deadline_timers_total", "outcome" => outcome)
                .increment(count);
        }
        Ok(report)
    }

    /// The timers that passed by `now`, oldest first, one page. "Passed" is strict: a dossier
    /// ended at its due instant is on time (docs/domain.md §4), so `late` is only after it.
    async fn due(&self, now: Instant) -> Result<Vec<Due>, WatchError> {
        let rows = sqlx::query(
            "SELECT dossier_id, version, fire_at, fire_kind, due_at FROM deadline_dossiers \
             WHERE fire_at IS NOT NULL AND fire_at < $1 ORDER BY fire_at LIMIT $2",
        )
        .bind(now.timestamp_micros())
        .bind(self.options.page.max(1) as i64)
        .fetch_all(self.db.pool())
        .await?;
        let mut due = Vec::with_capacity(rows.len());
        for row in rows {
            let dossier_id: String = row.try_get(0)?;
            let version: i64 = row.try_get(1)?;
            let fire_at: i64 = row.try_get(2)?;
            let kind: Option<String> = row.try_get(3)?;
            let due_at: Option<i64> = row.try_get(4)?;
            let (Some(kind), Some(fire_at), Some(due_at)) = (
                kind.as_deref().and_then(TimerKind::parse),
                instant(fire_at),
                due_at.and_then(instant),
            ) else {
                tracing::warn!(%dossier_id, "deadline watcher: unreadable timer row; skipped");
                continue;
            };
            due.push(Due {
                dossier_id,
                version,
                timer: Timer {
                    fire_at,
                    kind,
                    due_at,
                },
            });
        }
        Ok(due)
    }

    /// Records what `due` calls for through the write path.
    async fn handle(&self, due: &Due, now: Instant) -> Handled {
        let action = due.timer.action_at(now);
        let due_at = due.timer.due_at;
        let Ok(code) = DossierCode::parse(&due.dossier_id) else {
            tracing::warn!(dossier_id = %due.dossier_id, "deadline watcher: not a dossier code");
            return Handled::Stale;
        };
        let request_id = request_id(&due.dossier_id, action, due_at);
        let fingerprint = Sha256::digest(request_id.as_bytes()).to_vec();
        let command = ValidCommand {
            meta: Meta {
                request_id,
                expected_version: None,
                stated_at: None,
                // A timer is a trace of its own (the dossier's reader continued the trace of
                // the command that set it; the watcher's firing starts a new one).
                traceparent: motcua_telemetry::TraceParent::new_root().to_string(),
            },
            target: Target::Existing(code),
            command: match action {
                TimerKind::Late => Command::MarkLate { due_at },
                TimerKind::DueSoon => Command::MarkDueSoon { due_at },
            },
            personal_data: None,
        };
        let actor = Actor {
            officer_id: PRINCIPAL.to_owned(),
            unit_id: String::new(),
            kind: PRINCIPAL.to_owned(),
        };
        match self.handler.execute(command, actor, fingerprint).await {
            Ok(executed) if executed.replayed => Handled::AlreadyRecorded,
            Ok(_) => Handled::Recorded(action),
            // The watcher's copy is behind: the dossier ended, its due date moved, or another
            // watcher recorded it under its own request (impossible with derived ids, but the
            // rules say so just the same). The feed brings the newer state and timer.
            Err(IntakeError::Domain(
                DomainError::Precondition { .. }
                | DomainError::IllegalTransition { .. }
                | DomainError::NotFound(_),
            )) => Handled::Stale,
            Err(error) => {
                tracing::warn!(
                    dossier_id = %due.dossier_id,
                    kind = action.as_str(),
                    %error,
                    "deadline watcher: command failed; retried at the next tick"
                );
                Handled::Failed
            }
        }
    }

    /// Clears the timers that were handled, unless the reader moved the row meanwhile (then
    /// its new timer stands).
    async fn settle(&self, handled: &[Due]) -> Result<(), WatchError> {
        if handled.is_empty() {
            return Ok(());
        }
        let backend = self.db.backend();
        let mut tx = self.db.begin().await?;
        // One statement per chunk, not per timer: on SQLite every statement is a round trip
        // to the connection's thread.
        for chunk in handled.chunks(SETTLE_CHUNK) {
            let mut rows = String::new();
            Placeholders::new(backend).push_rows(&mut rows, chunk.len(), 2);
            let sql = match backend {
                // SQLite has one writer at a time: nothing to lock.
                Backend::Sqlite => format!(
                    "UPDATE deadline_dossiers SET fire_at = NULL \
                     WHERE (dossier_id, version) IN (VALUES {rows})"
                ),
                // The reader may hold some of these rows in its own transaction, locked in
                // another order: waiting for them could deadlock. A row it holds is skipped:
                // the reader is changing it, and a timer left standing only fires again,
                // into the store's idempotency (its request id is derived).
                Backend::Postgres => format!(
                    "UPDATE deadline_dossiers AS d SET fire_at = NULL FROM \
                     (SELECT dossier_id FROM deadline_dossiers \
                      WHERE (dossier_id, version) IN (VALUES {rows}) \
                      FOR UPDATE SKIP LOCKED) AS held \
                     WHERE d.dossier_id = held.dossier_id"
                ),
            };
            let mut query = sqlx::query(&sql);
            for due in chunk {
                query = query.bind(due.dossier_id.as_str()).bind(due.version);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn instant(micros: i64) -> Option<Instant> {
    chrono::DateTime::from_timestamp_micros(micros)
}
