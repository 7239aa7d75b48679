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
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{TimeZone, Utc};
use motcua_domain::calendar::WorkingCalendar;
use motcua_domain::lifecycle::{DossierState, event_allowed_in};
use motcua_domain::time::{Instant, from_timestamp};
use motcua_feed::{FeedEvent, Reader, ReaderError, ReaderTx, SourcePosition};
use sqlx::Row;
use tokio::sync::watch;

use crate::contribution::{COUNTERS, Deltas, Scopes, end_kind, late_from};
use crate::schema::Tables;
use crate::snapshot;

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
    /// As stored before the batch.
    before: Option<DossierState>,
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

#[async_trait::async_trait]
impl Reader for RatesProjector {
    fn name(&self) -> &str {
        &self.reader_name
    }

    async fn apply(&self, tx: &mut ReaderTx, events: &[FeedEvent]) -> Result<(), ReaderError> {
        let mut entries = self.load(tx, events).await?;
        let mut deltas = Deltas::default();
        let mut anomalies = Vec::new();
        let (mut applied, mut duplicates) = (0u64, 0u64);
        for event in events {
            let Some(entry) = entries.get_mut(event.dossier_id.as_str()) else {
                continue;
            };
            match self.apply_one(entry, event, &mut deltas) {
                Step::Applied => applied += 1,
                Step::Duplicate => duplicates += 1,
                Step::Anomaly(anomaly) => anomalies.push(anomaly),
                Step::AppliedWith(anomaly) => {
                    applied += 1;
                    anomalies.push(anomaly);
                }
            }
        }
        let mut dirty_days: BTreeSet<(String, i64)> = BTreeSet::new();
        for entry in entries.values().filter(|e| e.changed) {
            if let Some(before) = &entry.before {
                deltas.add_contribution(&self.calendar, before, &entry.procedure, -1);
            }
            if let Some(now) = &entry.now {
                deltas.add_contribution(&self.calendar, now, &entry.procedure, 1);
            }
        }
        deltas.prune();
        self.write_dossiers(tx, &entries).await?;
        self.write_days(tx, &deltas).await?;
        self.write_hours(tx, &deltas).await?;
        self.write_anomalies(tx, &anomalies).await?;
        if self.outbox {
            for key in deltas.days.keys() {
                dirty_days.insert((format!("{}|{}", key.scope_kind, key.scope_id), key.day));
            }
            self.write_outbox(tx, &entries, &dirty_days).await?;
        }
        self.stats.applied.fetch_add(applied, Ordering::Relaxed);
        self.stats
            .duplicates
            .fetch_add(duplicates, Ordering::Relaxed);
        self.stats
            .anomalies
            .fetch_add(anomalies.len() as u64, Ordering::Relaxed);
        Ok(())
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
    /// Step 1: the stored states of the batch's dossiers (an entry with `None` for new ones).
    async fn load<'e>(
        &self,
        tx: &mut ReaderTx,
        events: &'e [FeedEvent],
    ) -> Result<HashMap<&'e str, Entry>, ReaderError> {
        let mut entries: HashMap<&str, Entry> = HashMap::new();
        for event in events {
            entries.entry(event.dossier_id.as_str()).or_insert(Entry {
                before: None,
                now: None,
                late_from: None,
                procedure: String::new(),
                changed: false,
            });
        }
        let ids: Vec<&str> = entries.keys().copied().collect();
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            let mut sql = format!(
                "SELECT dossier_id, state, late_from, procedure_code FROM {} WHERE dossier_id IN (",
                self.tables.dossiers
            );
            for i in 0..chunk.len() {
                let _ = write!(sql, "{}${}", if i == 0 { "" } else { "," }, i + 1);
            }
            sql.push(')');
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&mut **tx).await? {
                let id: String = row.try_get(0)?;
                let state: String = row.try_get(1)?;
                let late: Option<i64> = row.try_get(2)?;
                let procedure: String = row.try_get(3)?;
                let state = snapshot::decode(&id, &state)
                    .map_err(|e| ReaderError::Unexpected(anyhow::Error::new(e)))?;
                if let Some(entry) = entries.get_mut(id.as_str()) {
                    entry.before = Some(state.clone());
                    entry.now = Some(state);
                    entry.late_from = late.map(instant);
                    entry.procedure = procedure;
                }
            }
        }
        Ok(entries)
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
                    self.move_late(&mut entry.late_from, None, &scopes, &created, at, deltas);
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
        let before = state.clone();
        state.version = event.seq - 1;
        if let Err(error) = state.apply(&event.event) {
            *state = before;
            return Step::Anomaly(anomaly("unreadable", error.to_string()));
        }
        entry.changed = true;
        let scopes = Scopes::of(state, &entry.procedure);
        let state = state.clone();
        self.move_late(&mut entry.late_from, Some(()), &scopes, &state, at, deltas);
        gap.map_or(Step::Applied, Step::AppliedWith)
    }

    /// Moves the dossier's `L` to its value after an event at `at`, with the overdue deltas;
    /// `existed` is `None` for the creation event (no `L` before it).
    fn move_late(
        &self,
        stored: &mut Option<Instant>,
        existed: Option<()>,
        scopes: &Scopes,
        state: &DossierState,
        at: Instant,
        deltas: &mut Deltas,
    ) {
        let new = late_from(&self.calendar, state, at);
        let old = existed.and(*stored);
        deltas.add_overdue_change(at, scopes, old, new);
        *stored = new;
    }

    /// Step 4: the changed dossier rows.
    async fn write_dossiers(
        &self,
        tx: &mut ReaderTx,
        entries: &HashMap<&str, Entry>,
    ) -> Result<(), ReaderError> {
        let mut rows: Vec<(&DossierState, Option<Instant>, &str)> = entries
            .values()
            .filter(|e| e.changed)
            .filter_map(|e| {
                e.now
                    .as_ref()
                    .map(|s| (s, e.late_from, e.procedure.as_str()))
            })
            .collect();
        rows.sort_by(|a, b| a.0.dossier_id.cmp(&b.0.dossier_id));
        const COLUMNS: [&str; 18] = [
            "dossier_id",
            "version",
            "status",
            "channel",
            "receiving_unit",
            "competent_authority",
            "procedure_code",
            "entered_at",
            "accepted_at",
            "due_at",
            "ended_at",
            "end_kind",
            "outcome",
            "supplement_count",
            "late_from",
            "processing_seconds",
            "state",
            "updated_at",
        ];
        let updates: Vec<String> = COLUMNS[1..]
            .iter()
            .map(|c| format!("{c} = excluded.{c}"))
            .collect();
        let tail = format!(
            " ON CONFLICT (dossier_id) DO UPDATE SET {}",
            updates.join(", ")
        );
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let sql = multi_row_insert(&self.tables.dossiers, &COLUMNS, chunk.len(), &tail);
            let mut query = sqlx::query(&sql);
            for (state, late, procedure) in chunk {
                let ended = state.ended_at;
                let outcome = ended.map(|end| outcome_name(state.outcome(&self.calendar, end)));
                let processing = motcua_domain::outcome::processing_working_seconds(
                    &self.calendar,
                    &state.outcome_facts(),
                );
                query = query
                    .bind(state.dossier_id.clone())
                    .bind(state.version as i64)
                    .bind(i64::from(state.status as i32))
                    .bind(i64::from(state.channel as i32))
                    .bind(state.units.receiving_unit.clone())
                    .bind(state.units.competent_authority.clone())
                    .bind((*procedure).to_owned())
                    .bind(micros(state.created_at))
                    .bind(state.accepted_at.map(micros))
                    .bind(state.due_at.map(micros))
                    .bind(ended.map(micros))
                    .bind(ended.map(|_| end_kind_name(state)))
                    .bind(outcome)
                    .bind(state.supplements.len() as i64)
                    .bind(late.map(micros))
                    .bind(processing.filter(|_| ended.is_some()))
                    .bind(snapshot::encode(state))
                    .bind(micros(state.updated_at));
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Step 4: the day deltas, added to what is there.
    async fn write_days(&self, tx: &mut ReaderTx, deltas: &Deltas) -> Result<(), ReaderError> {
        let table = &self.tables.days;
        let mut columns = vec!["scope_kind", "scope_id", "day", "channel"];
        columns.extend(COUNTERS);
        let updates: Vec<String> = COUNTERS
            .iter()
            .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
            .collect();
        let tail = format!(
            " ON CONFLICT (scope_kind, scope_id, day, channel) DO UPDATE SET {}",
            updates.join(", ")
        );
        let rows: Vec<_> = deltas.days.iter().collect();
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let sql = multi_row_insert(table, &columns, chunk.len(), &tail);
            let mut query = sqlx::query(&sql);
            for (key, counters) in chunk {
                query = query
                    .bind(key.scope_kind)
                    .bind(key.scope_id.clone())
                    .bind(key.day)
                    .bind(key.channel);
                for value in counters.0 {
                    query = query.bind(value);
                }
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Step 4: the processing-time histogram deltas.
    async fn write_hours(&self, tx: &mut ReaderTx, deltas: &Deltas) -> Result<(), ReaderError> {
        let table = &self.tables.hours;
        let columns = [
            "scope_kind",
            "scope_id",
            "day",
            "channel",
            "hours",
            "dossiers",
        ];
        let tail = format!(
            " ON CONFLICT (scope_kind, scope_id, day, channel, hours) \
             DO UPDATE SET dossiers = {table}.dossiers + excluded.dossiers"
        );
        let rows: Vec<_> = deltas.hours.iter().collect();
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let sql = multi_row_insert(table, &columns, chunk.len(), &tail);
            let mut query = sqlx::query(&sql);
            for ((key, hours), count) in chunk {
                query = query
                    .bind(key.scope_kind)
                    .bind(key.scope_id.clone())
                    .bind(key.day)
                    .bind(key.channel)
                    .bind(*hours)
                    .bind(**count);
            }
            query.execute(&mut **tx).await?;
        }
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
            let sql = multi_row_insert(&self.tables.anomalies, &columns, chunk.len(), tail);
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
        entries: &HashMap<&str, Entry>,
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
            let sql = multi_row_insert(
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

/// `INSERT INTO table (columns) VALUES ($1, …), (…) <tail>` for `rows` rows.
fn multi_row_insert(table: &str, columns: &[&str], rows: usize, tail: &str) -> String {
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
    let mut n = 0;
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns.len() {
            n += 1;
            let _ = write!(sql, "{}${n}", if column == 0 { "" } else { ", " });
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
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
