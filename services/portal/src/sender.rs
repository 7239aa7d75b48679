//! The sender: brings the portal's copy of every pending dossier up to date.
//!
//! # Order and independence
//!
//! A pending dossier (one whose latest change the portal has not acknowledged) is synced by
//! sending its *latest* state, then its progress records not yet acknowledged, in seq order.
//! A dossier is in at most one request at a time (a batch holds distinct dossiers, and the next
//! batch starts after the previous one's results are written), so an older state is never sent
//! after a newer one, and several changes made while the portal was away are sent as one. Each
//! dossier has its own retry time: one that fails waits alone; the others keep flowing.
//!
//! # Failures
//!
//! - The portal unreachable or failing (connection, timeout, 5xx, `500`, an unreadable reply):
//!   the dossier is retried with exponential backoff and jitter, up to `max_attempts`, then
//!   dead-lettered. Many such failures in a row open the circuit breaker: nothing is sent for
//!   a cool-down (doubling up to a maximum), then one dossier probes; attempts are not counted
//!   against dossiers while the breaker is open, so an outage does not dead-letter anything.
//! - The portal refusing the dossier (`-3`, `-4`): resending will not help; it is dead-lettered
//!   at once with the portal's reply, and the others keep flowing.
//!
//! Dead letters stay in `portal_dead_letters` with the reason; `motcua portal resync` sends them
//! again (after a fix), and `motcua portal status` lists them.
//!
//! One sender runs per sync database (run one `motcua portal-sync`, or one `motcua serve`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant as Monotonic};

use futures::StreamExt;
use motcua_domain::lifecycle::snapshot;
use motcua_feed::ReaderDb;
use motcua_store::EventStore;
use rand::Rng;
use serde_json::{Value, json};
use sqlx::Row;
use tokio_util::sync::CancellationToken;

use crate::client::{Outcome, PortalClient};
use crate::wire::{Extras, Reply, dossier_payload};

/// How the sender runs.
#[derive(Debug, Clone)]
pub struct SenderOptions {
    /// Dossiers synced at once.
    pub concurrency: usize,
    /// Dossiers read per batch.
    pub batch: usize,
    /// Attempts (failures of the portal) before a dossier is dead-lettered.
    pub max_attempts: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Failures in a row that open the circuit breaker.
    pub breaker_threshold: u32,
    pub breaker_cooldown: Duration,
    pub breaker_cooldown_max: Duration,
    /// How long a change may take to reach the portal and still count as synced on time (the
    /// dossier-sync figure of docs/domain.md §5).
    pub sync_deadline: Duration,
    /// Pause when nothing is pending.
    pub idle_poll: Duration,
}

impl Default for SenderOptions {
    fn default() -> Self {
        Self {
            concurrency: 64,
            batch: 1_000,
            max_attempts: 12,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(600),
            breaker_threshold: 20,
            breaker_cooldown: Duration::from_secs(2),
            breaker_cooldown_max: Duration::from_secs(60),
            sync_deadline: Duration::from_secs(3_600),
            idle_poll: Duration::from_millis(100),
        }
    }
}

/// What the sender has done since it started, for metrics and progress lines.
#[derive(Debug, Default)]
pub struct SenderStats {
    pub synced: AtomicU64,
    pub progress_records: AtomicU64,
    pub failures: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub breaker_opened: AtomicU64,
}

/// The adapter's counters, each registered at 0, so that every series exists from the start
/// (an alert on a rise of `motcua_portal_dead_lettered_total` needs the series before the
/// first dead letter). [`Sender::run`] calls it; docs/operations.md lists them.
pub const COUNTERS: &[&str] = &[
    "motcua_portal_synced_total",
    "motcua_portal_failures_total",
    "motcua_portal_dead_lettered_total",
    "motcua_portal_breaker_opened_total",
    // Counted by the adapter's periodic reconciliation (the binary's).
    "motcua_portal_reconcile_drifted_total",
];

/// Registers every counter of [`COUNTERS`] at 0 (an increment by 0 of a counter already
/// counting changes nothing).
pub fn register_counters() {
    for name in COUNTERS {
        metrics::counter!(*name).increment(0);
    }
}

/// A pending dossier as read for a batch.
#[derive(Debug)]
struct Pending {
    dossier_id: String,
    version: i64,
    state: String,
    extras: String,
    on_portal: bool,
    attempts: i64,
    pending_since: i64,
}

/// How syncing one dossier ended.
#[derive(Debug)]
enum Synced {
    /// The portal has `version` and every progress record up to `progress_seq`.
    Done { progress_seq: i64, records: u64 },
    /// The portal could not be reached or failed; `created` if the create went through.
    Unavailable { reason: String, created: bool },
    /// The portal refused the dossier.
    Rejected { reason: String },
}

/// The sender (module docs).
#[derive(Debug, Clone)]
pub struct Sender {
    db: ReaderDb,
    store: Arc<dyn EventStore>,
    client: Arc<PortalClient>,
    options: SenderOptions,
    stats: Arc<SenderStats>,
    /// The node's clock: a change's recording time (on that clock) is compared with its
    /// acknowledgement on the same clock, so the sync deadline means the same in a demo with a
    /// simulated clock as in production.
    clock: Arc<dyn motcua_domain::clock::Clock>,
}

impl Sender {
    /// A sender on the sync database `db`; the applicant's name (`ChuHoSo`) is read from
    /// `store`.
    pub fn new(
        db: ReaderDb,
        store: Arc<dyn EventStore>,
        client: Arc<PortalClient>,
        options: SenderOptions,
    ) -> Self {
        Self {
            db,
            store,
            client,
            options,
            stats: Arc::default(),
            clock: Arc::new(motcua_domain::clock::SystemClock),
        }
    }

    /// Judges time by `clock` (the node's) instead of the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn motcua_domain::clock::Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn now_micros(&self) -> i64 {
        self.clock.now().timestamp_micros()
    }

    pub fn stats(&self) -> Arc<SenderStats> {
        Arc::clone(&self.stats)
    }

    /// Sends until `shutdown`; never stops on the portal's or the database's failures.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut consecutive_failures: u32 = 0;
        let mut cooldown = self.options.breaker_cooldown;
        let mut last_progress = Monotonic::now();
        register_counters();
        tracing::info!(
            concurrency = self.options.concurrency,
            "national-portal sender started"
        );
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            // Half-open after a cool-down: one dossier probes, and its failure is the portal's,
            // not the dossier's (no attempt counted: an outage dead-letters nothing).
            let limit = if consecutive_failures >= self.options.breaker_threshold {
                1
            } else {
                self.options.batch
            };
            let probing = consecutive_failures >= self.options.breaker_threshold;
            let outcome = self.pass_counting(limit, !probing).await;
            let wait = match outcome {
                Ok(report) => {
                    if report.succeeded > 0 {
                        consecutive_failures = 0;
                        cooldown = self.options.breaker_cooldown;
                    }
                    consecutive_failures =
                        consecutive_failures.saturating_add(report.unavailable_streak);
                    if report.unavailable_streak > 0
                        && report.succeeded == 0
                        && consecutive_failures >= self.options.breaker_threshold
                    {
                        self.stats.breaker_opened.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("motcua_portal_breaker_opened_total").increment(1);
                        tracing::warn!(
                            failures = consecutive_failures,
                            cooldown_ms = cooldown.as_millis() as u64,
                            last_error = %report.last_error.unwrap_or_default(),
                            "national portal unavailable: circuit breaker open"
                        );
                        let wait = cooldown;
                        cooldown = (cooldown * 2).min(self.options.breaker_cooldown_max);
                        wait
                    } else if report.read == 0 {
                        self.options.idle_poll
                    } else {
                        Duration::ZERO
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "national-portal sender: database error; retrying");
                    Duration::from_secs(1)
                }
            };
            if last_progress.elapsed() >= Duration::from_secs(10) {
                last_progress = Monotonic::now();
                if let Ok(backlog) = crate::ops::backlog(&self.db).await
                    && backlog > 0
                {
                    tracing::info!(
                        backlog,
                        synced = self.stats.synced.load(Ordering::Relaxed),
                        "national-portal sync: dossiers pending"
                    );
                }
            }
            if !wait.is_zero() {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
        tracing::info!("national-portal sender stopped");
    }

    /// One batch: reads up to `limit` due dossiers, syncs them, writes the results.
    pub async fn pass(&self, limit: usize) -> Result<PassReport, sqlx::Error> {
        self.pass_counting(limit, true).await
    }

    async fn pass_counting(
        &self,
        limit: usize,
        count_attempts: bool,
    ) -> Result<PassReport, sqlx::Error> {
        let now = self.now_micros();
        let rows = sqlx::query(
            "SELECT dossier_id, version, state, extras, on_portal, attempts, pending_since \
             FROM portal_sync WHERE pending_since IS NOT NULL AND dead = 0 \
             AND next_attempt_at <= $1 ORDER BY next_attempt_at, pending_since LIMIT $2",
        )
        .bind(now)
        .bind(limit.max(1) as i64)
        .fetch_all(self.db.pool())
        .await?;
        let mut pending = Vec::with_capacity(rows.len());
        for row in rows {
            pending.push(Pending {
                dossier_id: row.try_get(0)?,
                version: row.try_get(1)?,
                state: row.try_get(2)?,
                extras: row.try_get(3)?,
                on_portal: row.try_get::<i64, _>(4)? != 0,
                attempts: row.try_get(5)?,
                pending_since: row.try_get(6)?,
            });
        }
        let mut report = PassReport {
            read: pending.len(),
            ..PassReport::default()
        };
        let mut results: Vec<(Pending, Synced)> = futures::stream::iter(pending)
            .map(|p| async move {
                let synced = self.sync(&p).await;
                (p, synced)
            })
            .buffer_unordered(self.options.concurrency.max(1))
            .collect()
            .await;
        // The reader locks `portal_sync` rows in dossier order, then inserts their progress
        // records. Writing the results in the same order, each dossier's `portal_sync` row
        // first, the two can wait for each other but never deadlock (in completion order they
        // did, on PostgreSQL).
        results.sort_by(|a, b| a.0.dossier_id.cmp(&b.0.dossier_id));
        let mut tx = self.db.begin().await?;
        let acked_at = self.now_micros();
        let deadline = i64::try_from(self.options.sync_deadline.as_micros()).unwrap_or(i64::MAX);
        for (p, synced) in results {
            match synced {
                Synced::Done {
                    progress_seq,
                    records,
                } => {
                    report.succeeded += 1;
                    report.unavailable_streak = 0;
                    self.stats.synced.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("motcua_portal_synced_total").increment(1);
                    self.stats
                        .progress_records
                        .fetch_add(records, Ordering::Relaxed);
                    self.acknowledge(&mut tx, &p, progress_seq, acked_at, deadline)
                        .await?;
                }
                Synced::Unavailable { reason, created } => {
                    report.unavailable_streak += 1;
                    report.last_error = Some(reason.clone());
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("motcua_portal_failures_total").increment(1);
                    let attempts = p.attempts + i64::from(count_attempts);
                    if attempts >= i64::from(self.options.max_attempts) {
                        self.dead_letter(
                            &mut tx,
                            &p,
                            &format!("the portal failed {attempts} times; last: {reason}"),
                        )
                        .await?;
                        continue;
                    }
                    let delay = self.backoff(attempts.max(1));
                    sqlx::query(
                        "UPDATE portal_sync SET attempts = $2, last_error = $3, \
                         next_attempt_at = $4, on_portal = CASE WHEN $5 = 1 THEN 1 ELSE on_portal END, \
                         updated_at = $6 WHERE dossier_id = $1",
                    )
                    .bind(p.dossier_id.as_str())
                    .bind(attempts)
                    .bind(reason)
                    .bind(acked_at + i64::try_from(delay.as_micros()).unwrap_or(i64::MAX / 2))
                    .bind(i64::from(created))
                    .bind(acked_at)
                    .execute(&mut *tx)
                    .await?;
                }
                Synced::Rejected { reason } => {
                    report.rejected += 1;
                    self.dead_letter(&mut tx, &p, &reason).await?;
                }
            }
        }
        tx.commit().await?;
        Ok(report)
    }

    /// Records that the portal has `p.version` and its progress records up to `progress_seq`,
    /// in three statements, so that a dossier the reader changed meanwhile stays pending:
    ///
    /// 1. The acknowledgement, which also takes the `portal_sync` row's lock. On PostgreSQL
    ///    (READ COMMITTED) it may wait for a reader's transaction that changed the row; it then
    ///    sees the reader's newer `version`, but a subquery in the same statement would still
    ///    read the progress records as of the statement's start: without the reader's new
    ///    ones, and without the ones this transaction deleted, so `MIN(recorded_at)` was NULL
    ///    and the dossier was marked in sync at an older version (issue 21). On SQLite the
    ///    transaction holds the database's write lock from its start.
    /// 2. The sent progress records are deleted: `seq <= progress_seq`, and `progress_seq` is at
    ///    most the `version` read for this batch. The reader inserts a dossier's records in the
    ///    transaction that raises its version, so every record above that version (one the
    ///    reader added after the sender read) was not sent, and stays.
    /// 3. `pending_since`, in a statement of its own, which on PostgreSQL sees everything
    ///    committed before it; the row is locked since (1), so no reader changes it meanwhile.
    ///    A row whose version is above the acknowledged one stays pending: from its oldest
    ///    record left, or, if it has none (resync rebuilt them, say), from the
    ///    acknowledgement, never NULL.
    async fn acknowledge(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        p: &Pending,
        progress_seq: i64,
        acked_at: i64,
        deadline: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE portal_sync SET synced_version = $2, synced_at = $3, on_portal = 1, \
             attempts = 0, last_error = NULL, next_attempt_at = 0, \
             late_syncs = late_syncs + CASE WHEN $3 - $4 > $5 THEN 1 ELSE 0 END, \
             updated_at = $3 WHERE dossier_id = $1",
        )
        .bind(p.dossier_id.as_str())
        .bind(p.version)
        .bind(acked_at)
        .bind(p.pending_since)
        .bind(deadline)
        .execute(&mut **tx)
        .await?;
        sqlx::query("DELETE FROM portal_progress WHERE dossier_id = $1 AND seq <= $2")
            .bind(p.dossier_id.as_str())
            .bind(progress_seq.min(p.version))
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "UPDATE portal_sync SET pending_since = CASE WHEN version <= synced_version THEN NULL \
             ELSE COALESCE((SELECT MIN(recorded_at) FROM portal_progress \
               WHERE portal_progress.dossier_id = $1 AND portal_progress.seq > $2), $3) END \
             WHERE dossier_id = $1",
        )
        .bind(p.dossier_id.as_str())
        .bind(p.version)
        .bind(acked_at)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    fn backoff(&self, attempts: i64) -> Duration {
        let exponent = u32::try_from(attempts.clamp(1, 30) - 1).unwrap_or(0);
        let base = self
            .options
            .backoff_initial
            .saturating_mul(2u32.saturating_pow(exponent))
            .min(self.options.backoff_max);
        // Full jitter between half and all of it: retries of many dossiers spread out.
        let factor = rand::rng().random_range(0.5..=1.0);
        base.mul_f64(factor)
    }

    async fn dead_letter(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        p: &Pending,
        reason: &str,
    ) -> Result<(), sqlx::Error> {
        self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("motcua_portal_dead_lettered_total").increment(1);
        tracing::warn!(dossier_id = %p.dossier_id, version = p.version, %reason,
            "national-portal sync: dossier dead-lettered");
        let now = self.now_micros();
        sqlx::query(
            "INSERT INTO portal_dead_letters (dossier_id, version, at, reason) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (dossier_id, version) DO UPDATE SET at = excluded.at, reason = excluded.reason",
        )
        .bind(p.dossier_id.as_str())
        .bind(p.version)
        .bind(now)
        .bind(reason)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "UPDATE portal_sync SET dead = 1, last_error = $2, attempts = attempts + 1, \
             updated_at = $3 WHERE dossier_id = $1",
        )
        .bind(p.dossier_id.as_str())
        .bind(reason)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Syncs one dossier: its state, then its progress records.
    async fn sync(&self, p: &Pending) -> Synced {
        let unavailable = |reason: String, created: bool| Synced::Unavailable { reason, created };
        let state = match snapshot::decode(&p.dossier_id, &p.state) {
            Ok(state) => state,
            Err(error) => {
                return Synced::Rejected {
                    reason: error.to_string(),
                };
            }
        };
        let extras: Extras = serde_json::from_str(&p.extras).unwrap_or_default();
        let name = match self.store.personal_data(&p.dossier_id).await {
            Ok(data) => data.map(|d| d.applicant_name).unwrap_or_default(),
            Err(error) => return unavailable(format!("reading the applicant: {error}"), false),
        };
        let dossier = dossier_payload(&state, &extras, &name);
        let mut created = p.on_portal;
        let mut updating = p.on_portal;
        // Create, and on "already exists" update; an update of a dossier the portal lost is a
        // create again. At most three calls.
        let mut synced = false;
        for _ in 0..3 {
            let body = json!({"isUpdating": updating, "data": [dossier]});
            match self.client.call("DongBoHoSoMC", body).await {
                Outcome::Done(Reply::Ok(_)) => {
                    synced = true;
                    created = true;
                    break;
                }
                Outcome::Done(Reply::AlreadyExists(_)) if !updating => updating = true,
                Outcome::Done(Reply::NotFound(_)) if updating => updating = false,
                Outcome::Done(Reply::Rejected { code, message }) => {
                    return Synced::Rejected {
                        reason: format!("the portal refused the dossier ({code}): {message}"),
                    };
                }
                Outcome::Done(other) => {
                    return unavailable(format!("DongBoHoSoMC: {}", describe(&other)), created);
                }
                Outcome::Unavailable(reason) => return unavailable(reason, created),
            }
        }
        if !synced {
            return unavailable(
                "DongBoHoSoMC: create and update both refused".into(),
                created,
            );
        }
        // The progress records not acknowledged yet, in seq order.
        let rows = match sqlx::query(
            "SELECT seq, record FROM portal_progress WHERE dossier_id = $1 AND seq <= $2 ORDER BY seq",
        )
        .bind(p.dossier_id.as_str())
        .bind(p.version)
        .fetch_all(self.db.pool())
        .await
        {
            Ok(rows) => rows,
            Err(error) => return unavailable(format!("reading progress records: {error}"), created),
        };
        let mut records = Vec::with_capacity(rows.len());
        let mut last_seq = 0i64;
        for row in &rows {
            let (Ok(seq), Ok(record)) = (row.try_get::<i64, _>(0), row.try_get::<String, _>(1))
            else {
                continue;
            };
            last_seq = last_seq.max(seq);
            if let Ok(value) = serde_json::from_str::<Value>(&record) {
                records.push(value);
            }
        }
        if !records.is_empty() {
            let count = records.len() as u64;
            match self
                .client
                .call("CapNhatTienDoHoSoMC", json!({"data": records}))
                .await
            {
                Outcome::Done(Reply::Ok(_)) => {
                    return Synced::Done {
                        progress_seq: last_seq,
                        records: count,
                    };
                }
                Outcome::Done(Reply::Rejected { code, message }) => {
                    return Synced::Rejected {
                        reason: format!("the portal refused progress records ({code}): {message}"),
                    };
                }
                Outcome::Done(other) => {
                    return unavailable(
                        format!("CapNhatTienDoHoSoMC: {}", describe(&other)),
                        created,
                    );
                }
                Outcome::Unavailable(reason) => return unavailable(reason, created),
            }
        }
        Synced::Done {
            progress_seq: p.version,
            records: 0,
        }
    }
}

fn describe(reply: &Reply) -> String {
    match reply {
        Reply::Ok(_) => "ok".into(),
        Reply::AlreadyExists(m) | Reply::NotFound(m) | Reply::SessionExpired(m) => m.clone(),
        Reply::Rejected { code, message } | Reply::Failed { code, message } => {
            format!("{code}: {message}")
        }
    }
}

/// What one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    pub read: usize,
    pub succeeded: u32,
    pub rejected: u32,
    /// Portal failures after the last success of the batch.
    pub unavailable_streak: u32,
    pub last_error: Option<String>,
}
