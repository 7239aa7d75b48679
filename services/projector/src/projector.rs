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
//! - `gap`: an event after a missing one (applied; the missing events never counted);
//! - `unreadable`: an event without a recording time or payload (not applied).

use std::collections::{BTreeSet, HashMap};
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

use crate::bulk::{self, Cell, Column, JSON_ROWS};
use crate::contribution::{COUNTERS, Contribution, Deltas, Scopes, end_kind, judge, late_from};
use crate::schema::Tables;
use motcua_domain::lifecycle::snapshot;

/// Rows per multi-row statement: below SQLite's 32,766 parameters with 24 per row.
const ROWS_PER_STATEMENT: usize = 1_000;
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
    tables: Tables,
    reader_name: String,
    calendar: Arc<WorkingCalendar>,
    /// Whether to fill the projection outbox (the Kafka publisher drains it). Off in a
    /// rebuild: the figures it recomputes were already published.
    outbox: bool,
    stats: Arc<ProjectorStats>,
    /// The recording time of the last event committed: what "fresh" is measured by.
    committed: watch::Sender<Option<Instant>>,
}

impl RatesProjector {
    pub fn new(tables: Tables, calendar: Arc<WorkingCalendar>) -> Self {
        Self {
            reader_name: tables.reader_name(),
            tables,
            calendar,
            outbox: true,
            stats: Arc::default(),
            committed: watch::Sender::new(None),
        }
    }

    /// Without the projection outbox (for a rebuild).
    pub fn without_outbox(mut self) -> Self {
        self.outbox = false;
        self
    }

    /// The tables of the generation it writes.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// The working calendar outcomes are judged with.
    pub fn calendar(&self) -> &WorkingCalendar {
        &self.calendar
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
struct Entry {
    /// What the dossier contributed as stored before the batch (`None`: it was new).
    before: Option<Contribution>,
    /// After the batch's events so far.
    now: Option<DossierState>,
    /// Its `L`, as stored, then as moved by the events.
    late_from: Option<Instant>,
    /// The procedure it was received under: the one it counts under.
    procedure: String,
    changed: bool,
}

#[derive(Debug)]
struct Anomaly {
    dossier_id: String,
    seq: u64,
    kind: &'static str,
    event_type: &'static str,
    detail: String,
    source: String,
}

/// Events applied in memory and not written yet: the dossiers they touched (as stored before,
/// and as they are now), the anomalies, and counts. A feed batch is one `Work` from load to
/// write; a bulk replay ([`crate::replay`]) keeps one across many reads and writes it now and
/// then, so a dossier's row is written once per flush instead of once per batch.
#[derive(Debug, Default)]
pub struct Work {
    entries: HashMap<String, Entry>,
    /// The overdue deltas written as events move `L` (the contribution changes are added at
    /// the write, from `before` and `now`).
    overdue: Deltas,
    anomalies: Vec<Anomaly>,
    applied: u64,
    duplicates: u64,
}

impl Work {
    /// Dossiers held in memory.
    pub fn dossiers(&self) -> usize {
        self.entries.len()
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
        let mut deltas = work.overdue.clone();
        let mut changed: Vec<(&Entry, &DossierState)> = work
            .entries
            .values()
            .filter(|e| e.changed)
            .filter_map(|e| e.now.as_ref().map(|state| (e, state)))
            .collect();
        changed.sort_by(|a, b| a.1.dossier_id.cmp(&b.1.dossier_id));
        let prepared = self.prepare_all(&changed);
        let mut rows = Vec::with_capacity(prepared.len());
        for ((entry, state), (contribution, row)) in changed.iter().zip(prepared) {
            let scopes = Scopes::of(state, &entry.procedure);
            deltas.add_change(&scopes, entry.before.as_ref(), Some(&contribution));
            rows.push(row);
        }
        deltas.prune();
        self.write_dossiers(tx, &rows).await?;
        self.write_days(tx, &deltas).await?;
        self.write_hours(tx, &deltas).await?;
        self.write_anomalies(tx, &work.anomalies).await?;
        if self.outbox {
            let mut dirty_days: BTreeSet<(String, i64)> = BTreeSet::new();
            for key in deltas.days.keys() {
                dirty_days.insert((format!("{}|{}", key.scope_kind, key.scope_id), key.day));
            }
            self.write_outbox(tx, &work.entries, &dirty_days).await?;
        }
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
        Ok(())
    }
}

/// What happened to one event.
enum Step {
    Applied,
    Duplicate,
    Anomaly(Anomaly),
    AppliedWith(Anomaly),
}

fn micros(t: Instant) -> i64 {
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
        let entries = &mut work.entries;
        let mut ids: Vec<&str> = Vec::new();
        for event in events {
            if !entries.contains_key(event.dossier_id.as_str()) {
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
                ids.push(event.dossier_id.as_str());
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
                    self.tables.dossiers
                )
            } else {
                let mut sql = format!(
                    "SELECT {columns} FROM {} WHERE dossier_id IN (",
                    self.tables.dossiers
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
                    entry.before = Some(Contribution::of(&self.calendar, &state));
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
        let new = late_from(&self.calendar, state, at);
        let old = if existed { *stored } else { None };
        deltas.add_overdue_change(at, scopes, old, new);
        *stored = new;
    }

    /// Step 3 for every changed dossier: its contribution and its row, computed once each
    /// (the judgement of its end is the costly part). Split over two threads when there are
    /// many, as in a bulk replay's flush, where the database waits for them anyway.
    fn prepare_all<'a>(
        &self,
        changed: &[(&'a Entry, &'a DossierState)],
    ) -> Vec<(Contribution, Vec<Cell<'a>>)> {
        const PARALLEL_FROM: usize = 20_000;
        let prepare =
            |part: &[(&'a Entry, &'a DossierState)]| -> Vec<(Contribution, Vec<Cell<'a>>)> {
                part.iter()
                    .map(|(entry, state)| self.prepare(entry, state))
                    .collect()
            };
        if changed.len() < PARALLEL_FROM {
            return prepare(changed);
        }
        let (first, second) = changed.split_at(changed.len() / 2);
        std::thread::scope(|scope| {
            let other = scope.spawn(|| prepare(second));
            let mut out = prepare(first);
            // A panic in the other half is a bug in pure code: pass it on.
            out.extend(
                other
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            );
            out
        })
    }

    fn prepare<'a>(
        &self,
        entry: &'a Entry,
        state: &'a DossierState,
    ) -> (Contribution, Vec<Cell<'a>>) {
        let judged = judge(&self.calendar, state);
        let contribution = Contribution::judged(state, judged);
        let ended = state.ended_at;
        let row = vec![
            Cell::from(state.dossier_id.as_str()),
            Cell::Int(state.version as i64),
            Cell::Int(i64::from(state.status as i32)),
            Cell::Int(i64::from(state.channel as i32)),
            Cell::from(state.units.receiving_unit.as_str()),
            Cell::from(state.units.competent_authority.as_str()),
            Cell::from(entry.procedure.as_str()),
            Cell::Int(micros(state.created_at)),
            Cell::from(state.accepted_at.map(micros)),
            Cell::from(state.due_at.map(micros)),
            Cell::from(ended.map(micros)),
            Cell::from(ended.map(|_| end_kind_name(state))),
            Cell::from(judged.map(|j| outcome_name(j.outcome))),
            Cell::Int(state.supplements.len() as i64),
            Cell::from(entry.late_from.map(micros)),
            Cell::from(judged.and_then(|j| j.processing_seconds)),
            Cell::from(snapshot::encode(state)),
            Cell::Int(micros(state.updated_at)),
        ];
        (contribution, row)
    }

    /// Step 4: the changed dossier rows, in dossier order.
    async fn write_dossiers(
        &self,
        tx: &mut ReaderTx,
        rows: &[Vec<Cell<'_>>],
    ) -> Result<(), ReaderError> {
        const COLUMNS: [Column; 18] = [
            Column::text("dossier_id"),
            Column::int("version"),
            Column::int("status"),
            Column::int("channel"),
            Column::text("receiving_unit"),
            Column::text("competent_authority"),
            Column::text("procedure_code"),
            Column::int("entered_at"),
            Column::int("accepted_at"),
            Column::int("due_at"),
            Column::int("ended_at"),
            Column::text("end_kind"),
            Column::text("outcome"),
            Column::int("supplement_count"),
            Column::int("late_from"),
            Column::int("processing_seconds"),
            Column::text("state"),
            Column::int("updated_at"),
        ];
        let updates: Vec<String> = COLUMNS[1..]
            .iter()
            .map(|c| format!("{0} = excluded.{0}", c.name))
            .collect();
        let tail = format!(
            " ON CONFLICT (dossier_id) DO UPDATE SET {}",
            updates.join(", ")
        );
        bulk::upsert(tx, &self.tables.dossiers, &COLUMNS, rows, &tail).await?;
        Ok(())
    }

    /// Step 4: the day deltas, added to what is there.
    async fn write_days(&self, tx: &mut ReaderTx, deltas: &Deltas) -> Result<(), ReaderError> {
        let table = &self.tables.days;
        let mut columns = vec![
            Column::text("scope_kind"),
            Column::text("scope_id"),
            Column::int("day"),
            Column::int("channel"),
        ];
        columns.extend(COUNTERS.map(Column::counter));
        let updates: Vec<String> = COUNTERS
            .iter()
            .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
            .collect();
        let tail = format!(
            " ON CONFLICT (scope_kind, scope_id, day, channel) DO UPDATE SET {}",
            updates.join(", ")
        );
        let rows: Vec<Vec<Cell>> = deltas
            .sorted_days()
            .into_iter()
            .map(|(key, counters)| {
                let mut row = vec![
                    Cell::from(key.scope_kind),
                    Cell::from(key.scope_id.as_str()),
                    Cell::Int(key.day),
                    Cell::Int(key.channel),
                ];
                row.extend(counters.0.map(Cell::Int));
                row
            })
            .collect();
        bulk::upsert(tx, table, &columns, &rows, &tail).await?;
        Ok(())
    }

    /// Step 4: the processing-time histogram deltas.
    async fn write_hours(&self, tx: &mut ReaderTx, deltas: &Deltas) -> Result<(), ReaderError> {
        let table = &self.tables.hours;
        let columns = [
            Column::text("scope_kind"),
            Column::text("scope_id"),
            Column::int("day"),
            Column::int("channel"),
            Column::int("hours"),
            Column::int("dossiers"),
        ];
        let tail = format!(
            " ON CONFLICT (scope_kind, scope_id, day, channel, hours) \
             DO UPDATE SET dossiers = {table}.dossiers + excluded.dossiers"
        );
        let rows: Vec<Vec<Cell>> = deltas
            .sorted_hours()
            .into_iter()
            .map(|((key, hours), count)| {
                vec![
                    Cell::from(key.scope_kind),
                    Cell::from(key.scope_id.as_str()),
                    Cell::Int(key.day),
                    Cell::Int(key.channel),
                    Cell::Int(*hours),
                    Cell::Int(*count),
                ]
            })
            .collect();
        bulk::upsert(tx, table, &columns, &rows, &tail).await?;
        Ok(())
    }

    /// Step 4: the anomalies; a replayed one is already there and stays as it was.
    async fn write_anomalies(
        &self,
        tx: &mut ReaderTx,
        anomalies: &[Anomaly],
    ) -> Result<(), ReaderError> {
        let columns = [
            "dossier_id",
            "seq",
            "kind",
            "event_type",
            "detail",
            "source",
            "recorded_at",
        ];
        let tail = " ON CONFLICT (dossier_id, seq, kind) DO NOTHING";
        let now = micros(Utc::now());
        for chunk in anomalies.chunks(ROWS_PER_STATEMENT) {
            let sql = bulk::values_sql(
                Backend::of(tx),
                &self.tables.anomalies,
                &columns,
                chunk.len(),
                tail,
            );
            let mut query = sqlx::query(&sql);
            for a in chunk {
                tracing::warn!(
                    dossier_id = %a.dossier_id,
                    seq = a.seq,
                    kind = a.kind,
                    event_type = a.event_type,
                    detail = %a.detail,
                    "event recorded as a projector anomaly"
                );
                query = query
                    .bind(a.dossier_id.clone())
                    .bind(a.seq as i64)
                    .bind(a.kind)
                    .bind(a.event_type)
                    .bind(a.detail.clone())
                    .bind(a.source.clone())
                    .bind(now);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Step 4: the keys the Kafka publisher must republish (dossiers and scope-days).
    async fn write_outbox(
        &self,
        tx: &mut ReaderTx,
        entries: &HashMap<String, Entry>,
        days: &BTreeSet<(String, i64)>,
    ) -> Result<(), ReaderError> {
        let now = micros(Utc::now());
        let mut keys: Vec<(&str, String)> = entries
            .iter()
            .filter(|(_, e)| e.changed && e.now.is_some())
            .map(|(id, _)| ("dossier", (*id).to_owned()))
            .collect();
        keys.extend(
            days.iter()
                .map(|(scope, day)| ("rates", format!("{scope}|{day}"))),
        );
        keys.sort();
        // `changed_at` strictly increases on every change of a key, even within one clock
        // tick: the publisher deletes a row only if its `changed_at` is the one it published,
        // so a change made during a pass must never look like the row it read.
        let outbox = &self.tables.outbox;
        let tail = format!(
            " ON CONFLICT (key_kind, key) DO UPDATE SET changed_at = CASE \
             WHEN excluded.changed_at > {outbox}.changed_at THEN excluded.changed_at \
             ELSE {outbox}.changed_at + 1 END"
        );
        for chunk in keys.chunks(ROWS_PER_STATEMENT) {
            let sql = bulk::values_sql(
                Backend::of(tx),
                &self.tables.outbox,
                &["key_kind", "key", "changed_at"],
                chunk.len(),
                &tail,
            );
            let mut query = sqlx::query(&sql);
            for (kind, key) in chunk {
                query = query.bind(*kind).bind(key.clone()).bind(now);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
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
