//! The rates projector: a feed [`Reader`] that keeps the per-dossier and per-day read models.
//!
//! A batch is applied in four steps, all in the runner's transaction (so the batch, its
//! position and its anomalies commit together or not at all):
//!
//! 1. load the stored states of the batch's dossiers, in one query per 500 dossiers;
//! 2. apply each event in memory, in order, to its dossier's state, moving the dossier's `L`
//!    ("late from", see `contribution.rs`) and writing the overdue deltas as it goes;
//! 3. add, for every dossier the batch changed, its new contribution minus its old one;
//! 4. write the changed dossier rows, the day and histogram deltas, the anomalies and the
//!    projection outbox with multi-row statements.
//!
//! The cost of a batch depends on its events and their dossiers, never on how many dossiers
//! the read model already holds (every lookup is by primary key).
//!
//! # Bad input
//!
//! The projector deduplicates by the dossier's version itself (so the runner's dedupe is off):
//! an event at or below the stored version was applied already and changes nothing. Anything
//! else that cannot be applied as it is becomes a row in the anomalies table, which the
//! `ReportService` lists:
//! - `unknown_dossier`: an event for a dossier that was never created (not applied);
//! - `impossible_transition`: an event the lifecycle does not allow in the dossier's status
//!   (not applied, but the version moves past it so the next event is not a gap);
//! - `gap`: an event after a missing one. Under the feed runner this does not happen: the
//!   runner reads the dossiers' versions ([`Reader::applied_seqs`]), heals a gap from the
//!   event store before the batch reaches the projector, or stops. It is kept for a caller
//!   that applies events itself;
//! - `unreadable`: an event without a recording time or payload (not applied).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{TimeZone, Utc};
use motcua_domain::calendar::WorkingCalendar;
use motcua_domain::lifecycle::{DossierState, event_allowed_in};
use motcua_domain::time::{Instant, from_timestamp};
use motcua_feed::{
    Backend, FeedEvent, Placeholders, Reader, ReaderError, ReaderTx, SourcePosition,
};
use sqlx::{AnyConnection, Row};
use tokio::sync::watch;

use crate::bulk::{JSON_ROWS, Target};
use crate::contribution::{Contribution, Deltas, Scopes, end_kind, late_from};
use crate::plan::Planner;
use crate::schema::Tables;
use motcua_domain::lifecycle::snapshot;

/// Planned statements waiting for the database in [`RatesProjector::write_overlapped`]: some
/// seconds of its work (a statement is up to [`JSON_ROWS`] rows, a few megabytes), so it never
/// waits while the planner sums the deltas.
const OVERLAP_STATEMENTS: usize = 32;
/// Dossiers per lookup query.
const LOOKUP_CHUNK: usize = 500;

/// What the projector has done since it started, for metrics and progress lines.
#[derive(Debug, Default)]
pub struct ProjectorStats {
    /// Events applied to a dossier.
    pub applied: AtomicU64,
    /// Events at or below their dossier's version: already applied, ignored.
    pub duplicates: AtomicU64,
    /// Events recorded as anomalies.
    pub anomalies: AtomicU64,
}

/// The rates projector for one generation of the read model.
#[derive(Debug)]
pub struct RatesProjector {
    /// The tables, calendar and outbox switch: what planning a write needs.
    planner: Planner,
    reader_name: String,
    stats: Arc<ProjectorStats>,
    /// The recording time of the last event committed: what "fresh" is measured by.
    committed: watch::Sender<Option<Instant>>,
}

impl RatesProjector {
    pub fn new(tables: Tables, calendar: Arc<WorkingCalendar>) -> Self {
        Self {
            reader_name: tables.reader_name(),
            planner: Planner {
                tables,
                calendar,
                outbox: true,
            },
            stats: Arc::default(),
            committed: watch::Sender::new(None),
        }
    }

    /// Without the projection outbox (for a rebuild).
    pub fn without_outbox(mut self) -> Self {
        self.planner.outbox = false;
        self
    }

    /// The tables of the generation it writes.
    pub fn tables(&self) -> &Tables {
        &self.planner.tables
    }

    /// The working calendar outcomes are judged with.
    pub fn calendar(&self) -> &WorkingCalendar {
        &self.planner.calendar
    }

    pub fn stats(&self) -> Arc<ProjectorStats> {
        Arc::clone(&self.stats)
    }

    /// The recording time of the newest event whose batch committed.
    pub fn committed(&self) -> watch::Receiver<Option<Instant>> {
        self.committed.subscribe()
    }
}

/// One dossier's part of a batch.
#[derive(Debug)]
pub(crate) struct Entry {
    /// What the dossier contributed as stored before the batch (`None`: it was new).
    pub(crate) before: Option<Contribution>,
    /// After the batch's events so far.
    pub(crate) now: Option<DossierState>,
    /// Its `L`, as stored, then as moved by the events.
    pub(crate) late_from: Option<Instant>,
    /// The procedure it was received under: the one it counts under.
    pub(crate) procedure: String,
    pub(crate) changed: bool,
}

#[derive(Debug)]
pub(crate) struct Anomaly {
    pub(crate) dossier_id: String,
    pub(crate) seq: u64,
    pub(crate) kind: &'static str,
    pub(crate) event_type: &'static str,
    pub(crate) detail: String,
    pub(crate) source: String,
}

/// Events applied in memory and not written yet: the dossiers they touched (as stored before,
/// and as they are now), the anomalies, and counts. A feed batch is one `Work` from load to
/// write; a bulk replay ([`crate::replay`]) keeps one across many reads and writes it now and
/// then, so a dossier's row is written once per flush instead of once per batch.
#[derive(Debug, Default)]
pub struct Work {
    pub(crate) entries: HashMap<String, Entry>,
    /// The overdue deltas written as events move `L` (the contribution changes are added at
    /// the write, from `before` and `now`).
    pub(crate) overdue: Deltas,
    pub(crate) anomalies: Vec<Anomaly>,
    pub(crate) applied: u64,
    pub(crate) duplicates: u64,
}

impl Work {
    /// Dossiers held in memory.
    pub fn dossiers(&self) -> usize {
        self.entries.len()
    }

    /// Of the dossiers held, how many a write would insert (new to the table) and how many
    /// it would update.
    pub fn changed(&self) -> (usize, usize) {
        let changed = self
            .entries
            .values()
            .filter(|e| e.changed && e.now.is_some());
        changed.fold((0, 0), |(new, stored), entry| match entry.before {
            None => (new + 1, stored),
            Some(_) => (new, stored + 1),
        })
    }

    /// Events applied since the last flush.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// After the flush committed: what was written is now what is stored; the dossiers that
    /// ended are dropped from memory (an event after the end, rare, loads it again), so an
    /// open province's working set, not its history, is what a replay holds.
    pub(crate) fn settled(&mut self, calendar: &WorkingCalendar) {
        self.entries.retain(|_, entry| {
            let Some(now) = &entry.now else {
                return false;
            };
            if now.ended_at.is_some() {
                return false;
            }
            if entry.changed {
                entry.before = Some(Contribution::of(calendar, now));
                entry.changed = false;
            }
            true
        });
        self.overdue = Deltas::default();
        self.anomalies.clear();
        self.applied = 0;
        self.duplicates = 0;
    }
}

#[async_trait::async_trait]
impl Reader for RatesProjector {
    fn name(&self) -> &str {
        &self.reader_name
    }

    async fn apply(&self, tx: &mut ReaderTx, events: &[FeedEvent]) -> Result<(), ReaderError> {
        let mut work = Work::default();
        self.load(tx, &mut work, events).await?;
        self.apply_events(&mut work, events);
        self.write(tx, &work).await
    }

    /// The dossiers' versions: the runner finds seq gaps in them and heals them from the event
    /// store before [`RatesProjector::apply`] sees the batch, so an event is never applied over
    /// missing ones.
    async fn applied_seqs(
        &self,
        tx: &mut ReaderTx,
        dossier_ids: &[&str],
    ) -> Result<Option<HashMap<String, u64>>, ReaderError> {
        let conn: &mut AnyConnection = tx;
        let postgres = Backend::of(conn) == Backend::Postgres;
        let chunk_size = if postgres { JSON_ROWS } else { LOOKUP_CHUNK };
        let mut versions = HashMap::with_capacity(dossier_ids.len());
        for chunk in dossier_ids.chunks(chunk_size) {
            let dossiers = &self.planner.tables.dossiers;
            let sql = if postgres {
                format!(
                    "SELECT dossier_id, version FROM {dossiers} WHERE dossier_id IN \
                     (SELECT json_array_elements_text(CAST($1 AS TEXT)::json))"
                )
            } else {
                let mut sql =
                    format!("SELECT dossier_id, version FROM {dossiers} WHERE dossier_id IN (");
                Placeholders::new(Backend::Sqlite).push_list(&mut sql, chunk.len());
                sql.push(')');
                sql
            };
            let mut query = sqlx::query(&sql);
            if postgres {
                query = query.bind(serde_json::to_string(chunk).unwrap_or_default());
            } else {
                for id in chunk {
                    query = query.bind(*id);
                }
            }
            for row in query.fetch_all(&mut *conn).await? {
                let id: String = row.try_get(0)?;
                let version: i64 = row.try_get(1)?;
                versions.insert(id, u64::try_from(version).unwrap_or(0));
            }
        }
        Ok(Some(versions))
    }

    fn after_commit(&self, events: &[FeedEvent]) {
        let newest = events
            .iter()
            .filter_map(|e| e.event.recorded_at.as_ref().and_then(from_timestamp))
            .max();
        if let Some(newest) = newest {
            self.committed.send_if_modified(|current| match current {
                Some(c) if *c >= newest => false,
                _ => {
                    *current = Some(newest);
                    true
                }
            });
        }
    }
}

impl RatesProjector {
    /// Step 2: applies `events`, in order, to the dossiers of `work` (loaded by
    /// [`RatesProjector::load`]).
    pub fn apply_events(&self, work: &mut Work, events: &[FeedEvent]) {
        let Work {
            entries,
            overdue,
            anomalies,
            applied,
            duplicates,
        } = work;
        for event in events {
            let Some(entry) = entries.get_mut(event.dossier_id.as_str()) else {
                continue;
            };
            match self.apply_one(entry, event, overdue) {
                Step::Applied => *applied += 1,
                Step::Duplicate => *duplicates += 1,
                Step::Anomaly(anomaly) => anomalies.push(anomaly),
                Step::AppliedWith(anomaly) => {
                    *applied += 1;
                    anomalies.push(anomaly);
                }
            }
        }
    }

    /// Records an event that could not even be decoded (a bulk replay reads the store's table
    /// itself; the feed runner dead-letters such records instead).
    pub fn note_unreadable(
        &self,
        work: &mut Work,
        dossier_id: &str,
        seq: u64,
        position: u64,
        reason: String,
    ) {
        work.anomalies.push(Anomaly {
            dossier_id: dossier_id.to_owned(),
            seq,
            kind: "unreadable",
            event_type: "unknown",
            detail: reason,
            source: source_label(SourcePosition::Sql { position }),
        });
    }

    /// Steps 3 and 4: the contribution changes and every write, in `tx`.
    pub async fn write(&self, tx: &mut ReaderTx, work: &Work) -> Result<(), ReaderError> {
        let mut statements = Vec::new();
        self.planner
            .plan(Backend::of(tx), false, work, &mut |statement| {
                statements.push(statement)
            });
        for statement in &statements {
            statement.execute(tx).await?;
        }
        self.count_written(work);
        Ok(())
    }

    /// [`RatesProjector::write`] for a large `work` (a bulk replay's flush): the statements
    /// are planned on a blocking thread and run as they come, so the database writes the
    /// dossier rows while the deltas are summed and the next rows are serialised. At most
    /// `OVERLAP_STATEMENTS` (32) planned statements wait. On a native PostgreSQL connection
    /// ([`Target::Postgres`]) the rows of dossiers new to the table go by `COPY`. Hands `work`
    /// back for the next flush.
    pub async fn write_overlapped(
        &self,
        target: &mut Target<'_>,
        work: Work,
    ) -> Result<Work, ReaderError> {
        let work = Arc::new(work);
        let (send, mut planned) = tokio::sync::mpsc::channel(OVERLAP_STATEMENTS);
        let planning = {
            let planner = self.planner.clone();
            let backend = target.backend();
            let copy = target.copies();
            let work = Arc::clone(&work);
            tokio::task::spawn_blocking(move || {
                // A send fails only when the writer below stopped on an error: nothing more
                // to plan for.
                let mut stopped = false;
                planner.plan(backend, copy, &work, &mut |statement| {
                    stopped = stopped || send.blocking_send(statement).is_err();
                });
            })
        };
        while let Some(statement) = planned.recv().await {
            statement.execute_on(target).await?;
        }
        planning.await.map_err(|e| {
            ReaderError::Unexpected(anyhow::anyhow!("planning a write failed: {e}"))
        })?;
        let work = Arc::try_unwrap(work).map_err(|_| {
            ReaderError::Unexpected(anyhow::anyhow!("the planner kept the batch it wrote"))
        })?;
        self.count_written(&work);
        Ok(work)
    }

    fn count_written(&self, work: &Work) {
        self.stats
            .applied
            .fetch_add(work.applied, Ordering::Relaxed);
        self.stats
            .duplicates
            .fetch_add(work.duplicates, Ordering::Relaxed);
        self.stats
            .anomalies
            .fetch_add(work.anomalies.len() as u64, Ordering::Relaxed);
        metrics::counter!("motcua_projector_events_applied_total").increment(work.applied);
        metrics::counter!("motcua_projector_anomalies_total")
            .increment(work.anomalies.len() as u64);
    }
}

/// What happened to one event.
enum Step {
    Applied,
    Duplicate,
    Anomaly(Anomaly),
    AppliedWith(Anomaly),
}

pub(crate) fn micros(t: Instant) -> i64 {
    t.timestamp_micros()
}

fn instant(micros: i64) -> Instant {
    Utc.timestamp_micros(micros)
        .single()
        .unwrap_or(Instant::MIN_UTC)
}

fn source_label(source: SourcePosition) -> String {
    match source {
        SourcePosition::Sql { position } => format!("sql:{position}"),
        SourcePosition::Kafka { partition, offset } => format!("kafka:{partition}@{offset}"),
    }
}

impl RatesProjector {
    /// Step 1: adds to `work` the stored states of the dossiers of `events` it does not hold
    /// yet (an entry with `None` for new ones).
    pub async fn load(
        &self,
        conn: &mut AnyConnection,
        work: &mut Work,
        events: &[FeedEvent],
    ) -> Result<(), ReaderError> {
        self.load_from(conn, work, events, false).await
    }

    /// [`RatesProjector::load`] for a replay of the store in position order after the
    /// generation's position: a dossier whose first event here is its first of all (`seq` 1)
    /// cannot have a row yet (the store holds one `seq` 1 per dossier, and the generation holds
    /// only what came before its position), so it is not looked up. Most of a replay's new
    /// dossiers are such: without this, each cost an index probe of an ever larger table, and
    /// a province-year's replay spent half its time finding nothing.
    pub(crate) async fn load_replayed(
        &self,
        conn: &mut AnyConnection,
        work: &mut Work,
        events: &[FeedEvent],
    ) -> Result<(), ReaderError> {
        self.load_from(conn, work, events, true).await
    }

    async fn load_from(
        &self,
        conn: &mut AnyConnection,
        work: &mut Work,
        events: &[FeedEvent],
        in_store_order: bool,
    ) -> Result<(), ReaderError> {
        let entries = &mut work.entries;
        let mut ids: Vec<&str> = Vec::new();
        for event in events {
            if !entries.contains_key(event.dossier_id.as_str()) {
                let first_of_all = in_store_order && event.seq == 1;
                entries.insert(
                    event.dossier_id.clone(),
                    Entry {
                        before: None,
                        now: None,
                        late_from: None,
                        procedure: String::new(),
                        changed: false,
                    },
                );
                if !first_of_all {
                    ids.push(event.dossier_id.as_str());
                }
            }
        }
        let postgres = Backend::of(conn) == Backend::Postgres;
        let chunk_size = if postgres { JSON_ROWS } else { LOOKUP_CHUNK };
        for chunk in ids.chunks(chunk_size) {
            let columns = "dossier_id, state, late_from, procedure_code";
            let sql = if postgres {
                // One fixed statement with the ids as one JSON array: prepared once, instead
                // of a statement per chunk size with a parameter per id.
                format!(
                    "SELECT {columns} FROM {} WHERE dossier_id IN \
                     (SELECT json_array_elements_text(CAST($1 AS TEXT)::json))",
                    self.planner.tables.dossiers
                )
            } else {
                let mut sql = format!(
                    "SELECT {columns} FROM {} WHERE dossier_id IN (",
                    self.planner.tables.dossiers
                );
                Placeholders::new(Backend::Sqlite).push_list(&mut sql, chunk.len());
                sql.push(')');
                sql
            };
            let mut query = sqlx::query(&sql);
            if postgres {
                query = query.bind(serde_json::to_string(chunk).unwrap_or_default());
            } else {
                for id in chunk {
                    query = query.bind(*id);
                }
            }
            for row in query.fetch_all(&mut *conn).await? {
                let id: String = row.try_get(0)?;
                let state: String = row.try_get(1)?;
                let late: Option<i64> = row.try_get(2)?;
                let procedure: String = row.try_get(3)?;
                let state = snapshot::decode(&id, &state)
                    .map_err(|e| ReaderError::Unexpected(anyhow::Error::new(e)))?;
                if let Some(entry) = entries.get_mut(id.as_str()) {
                    entry.before = Some(Contribution::of(&self.planner.calendar, &state));
                    entry.now = Some(state);
                    entry.late_from = late.map(instant);
                    entry.procedure = procedure;
                }
            }
        }
        Ok(())
    }

    /// Step 2 for one event.
    fn apply_one(&self, entry: &mut Entry, event: &FeedEvent, deltas: &mut Deltas) -> Step {
        let anomaly = |kind: &'static str, detail: String| Anomaly {
            dossier_id: event.dossier_id.clone(),
            seq: event.seq,
            kind,
            event_type: event.event_type,
            detail,
            source: source_label(event.source),
        };
        let Some(at) = event.event.recorded_at.as_ref().and_then(from_timestamp) else {
            return Step::Anomaly(anomaly(
                "unreadable",
                "the event has no recording time".into(),
            ));
        };
        let Some(payload) = event.event.payload.as_ref() else {
            return Step::Anomaly(anomaly("unreadable", "the event has no payload".into()));
        };
        let Some(state) = entry.now.as_mut() else {
            // A creation event starts the dossier; anything else has nothing to apply to.
            if event_allowed_in(payload).is_some() {
                return Step::Anomaly(anomaly(
                    "unknown_dossier",
                    format!(
                        "'{}' for a dossier that was never created",
                        event.event_type
                    ),
                ));
            }
            return match DossierState::fold([&event.event]) {
                Ok(Some(mut created)) => {
                    let gap = (event.seq != 1).then(|| {
                        anomaly(
                            "gap",
                            format!("the dossier's first event has seq {}", event.seq),
                        )
                    });
                    created.version = event.seq;
                    entry.procedure = created.procedure.code.clone();
                    let scopes = Scopes::of(&created, &entry.procedure);
                    self.move_late(&mut entry.late_from, false, &scopes, &created, at, deltas);
                    entry.now = Some(created);
                    entry.changed = true;
                    gap.map_or(Step::Applied, Step::AppliedWith)
                }
                Ok(None) => Step::Duplicate,
                Err(error) => Step::Anomaly(anomaly("unreadable", error.to_string())),
            };
        };
        if event.seq <= state.version {
            return Step::Duplicate;
        }
        let Some(allowed) = event_allowed_in(payload) else {
            state.version = event.seq;
            entry.changed = true;
            return Step::Anomaly(anomaly(
                "impossible_transition",
                format!("'{}' for a dossier that already exists", event.event_type),
            ));
        };
        if !allowed.contains(&state.status) {
            state.version = event.seq;
            entry.changed = true;
            return Step::Anomaly(anomaly(
                "impossible_transition",
                format!(
                    "'{}' is not allowed in status {}",
                    event.event_type, state.status as i32
                ),
            ));
        }
        let gap = (event.seq != state.version + 1).then(|| {
            anomaly(
                "gap",
                format!(
                    "events {} to {} never arrived; applied after them",
                    state.version + 1,
                    event.seq - 1
                ),
            )
        });
        // `apply` checks everything before it changes anything, so on an error only the
        // version set here needs restoring.
        let version = state.version;
        state.version = event.seq - 1;
        if let Err(error) = state.apply(&event.event) {
            state.version = version;
            return Step::Anomaly(anomaly("unreadable", error.to_string()));
        }
        entry.changed = true;
        let scopes = Scopes::of(state, &entry.procedure);
        self.move_late(&mut entry.late_from, true, &scopes, state, at, deltas);
        gap.map_or(Step::Applied, Step::AppliedWith)
    }

    /// Moves the dossier's `L` to its value after an event at `at`, with the overdue deltas;
    /// `existed` is false for the creation event (no `L` before it).
    fn move_late(
        &self,
        stored: &mut Option<Instant>,
        existed: bool,
        scopes: &Scopes,
        state: &DossierState,
        at: Instant,
        deltas: &mut Deltas,
    ) {
        let new = late_from(&self.planner.calendar, state, at);
        let old = if existed { *stored } else { None };
        deltas.add_overdue_change(at, scopes, old, new);
        *stored = new;
    }
}

/// The stored name of an outcome.
pub fn outcome_name(outcome: motcua_domain::outcome::Outcome) -> &'static str {
    use motcua_domain::outcome::Outcome;
    match outcome {
        Outcome::NotAccepted => "not_accepted",
        Outcome::Early => "early",
        Outcome::OnTime => "on_time",
        Outcome::Late => "late",
        Outcome::InProgress { overdue: false } => "in_progress",
        Outcome::InProgress { overdue: true } => "overdue",
    }
}

/// The stored name of how a dossier ended.
pub fn end_kind_name(state: &DossierState) -> &'static str {
    use crate::contribution::EndKind;
    match end_kind(state) {
        EndKind::Resolved => "resolved",
        EndKind::Withdrawn => "withdrawn",
        EndKind::Refused => "refused",
        EndKind::Stopped => "stopped",
    }
}
