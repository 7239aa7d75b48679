//! Steps 3 and 4 of a batch without the database: what a [`Work`] changes (every changed
//! dossier's contribution, its new row, the day and histogram deltas) as the statements that
//! write it.
//!
//! Pure, so that it can run apart from the connection: a bulk replay's flush plans on a thread
//! of its own while the database runs the statements already planned (on PostgreSQL the two
//! are about a third and two thirds of a flush; one after the other they took their sum).

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Utc;
use motcua_domain::calendar::WorkingCalendar;
use motcua_domain::lifecycle::{DossierState, snapshot};
use motcua_feed::Backend;

use crate::bulk::{self, Cell, Column, Statement};
use crate::contribution::{COUNTERS, Contribution, Deltas, Scopes, judge};
use crate::projector::{Anomaly, Entry, Work, end_kind_name, micros, outcome_name};
use crate::schema::Tables;

/// The dossier table's columns, in the order [`Planner::prepare`] builds a row.
const DOSSIER_COLUMNS: [Column; 18] = [
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

/// What planning a write needs of the projector: cheap to clone (for a thread of its own).
#[derive(Debug, Clone)]
pub(crate) struct Planner {
    pub(crate) tables: Tables,
    pub(crate) calendar: Arc<WorkingCalendar>,
    /// Whether to fill the projection outbox (the Kafka publisher drains it). Off in a
    /// rebuild: the figures it recomputes were already published.
    pub(crate) outbox: bool,
}

impl Planner {
    /// Every statement of `work`'s write, in the order they must run, each handed to `emit`
    /// as soon as it is built: the dossier rows first, then the deltas, whose sums need every
    /// contribution (so the database starts on the rows while they are summed). With `copy`
    /// (PostgreSQL, on a native connection) the rows of dossiers new to the table go by `COPY`.
    pub(crate) fn plan(
        &self,
        backend: Backend,
        copy: bool,
        work: &Work,
        emit: &mut dyn FnMut(Statement),
    ) {
        let mut changed: Vec<(&Entry, &DossierState)> = work
            .entries
            .values()
            .filter(|e| e.changed)
            .filter_map(|e| e.now.as_ref().map(|state| (e, state)))
            .collect();
        changed.sort_by(|a, b| a.1.dossier_id.cmp(&b.1.dossier_id));
        let (contributions, rows): (Vec<Contribution>, Vec<Vec<Cell>>) =
            self.prepare_all(&changed).into_iter().unzip();
        if copy {
            let mut new = Vec::new();
            let mut stored = Vec::new();
            for ((entry, _), row) in changed.iter().zip(rows) {
                if entry.before.is_none() {
                    new.push(row);
                } else {
                    stored.push(row);
                }
            }
            bulk::copy_statements(&self.tables.dossiers, &DOSSIER_COLUMNS, &new, emit);
            drop(new);
            self.dossier_statements(backend, &stored, emit);
        } else {
            self.dossier_statements(backend, &rows, emit);
        }

        let mut deltas = work.overdue.clone();
        for ((entry, state), contribution) in changed.iter().zip(&contributions) {
            let scopes = Scopes::of(state, &entry.procedure);
            deltas.add_change(&scopes, entry.before.as_ref(), Some(contribution));
        }
        deltas.prune();
        self.day_statements(backend, &deltas, emit);
        self.hour_statements(backend, &deltas, emit);
        self.anomaly_statements(backend, &work.anomalies, emit);
        if self.outbox {
            let mut dirty_days: BTreeSet<(String, i64)> = BTreeSet::new();
            for key in deltas.days.keys() {
                dirty_days.insert((format!("{}|{}", key.scope_kind, key.scope_id), key.day));
            }
            self.outbox_statements(backend, &changed, &dirty_days, emit);
        }
    }

    /// Step 3 for every changed dossier: its contribution and its row, computed once each
    /// (the judgement of its end is the costly part). Split over two threads when there are
    /// many, as in a bulk replay's flush.
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
    fn dossier_statements(
        &self,
        backend: Backend,
        rows: &[Vec<Cell<'_>>],
        emit: &mut dyn FnMut(Statement),
    ) {
        let updates: Vec<String> = DOSSIER_COLUMNS[1..]
            .iter()
            .map(|c| format!("{0} = excluded.{0}", c.name))
            .collect();
        let tail = format!(
            " ON CONFLICT (dossier_id) DO UPDATE SET {}",
            updates.join(", ")
        );
        bulk::upsert_statements(
            backend,
            &self.tables.dossiers,
            &DOSSIER_COLUMNS,
            rows,
            &tail,
            emit,
        );
    }

    /// Step 4: the day deltas, added to what is there.
    fn day_statements(&self, backend: Backend, deltas: &Deltas, emit: &mut dyn FnMut(Statement)) {
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
        bulk::upsert_statements(backend, table, &columns, &rows, &tail, emit);
    }

    /// Step 4: the processing-time histogram deltas.
    fn hour_statements(&self, backend: Backend, deltas: &Deltas, emit: &mut dyn FnMut(Statement)) {
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
        bulk::upsert_statements(backend, table, &columns, &rows, &tail, emit);
    }

    /// Step 4: the anomalies; a replayed one is already there and stays as it was.
    fn anomaly_statements(
        &self,
        backend: Backend,
        anomalies: &[Anomaly],
        emit: &mut dyn FnMut(Statement),
    ) {
        const COLUMNS: [Column; 7] = [
            Column::text("dossier_id"),
            Column::int("seq"),
            Column::text("kind"),
            Column::text("event_type"),
            Column::text("detail"),
            Column::text("source"),
            Column::int("recorded_at"),
        ];
        let now = micros(Utc::now());
        let rows: Vec<Vec<Cell>> = anomalies
            .iter()
            .map(|a| {
                tracing::warn!(
                    dossier_id = %a.dossier_id,
                    seq = a.seq,
                    kind = a.kind,
                    event_type = a.event_type,
                    detail = %a.detail,
                    "event recorded as a projector anomaly"
                );
                vec![
                    Cell::from(a.dossier_id.as_str()),
                    Cell::Int(a.seq as i64),
                    Cell::from(a.kind),
                    Cell::from(a.event_type),
                    Cell::from(a.detail.as_str()),
                    Cell::from(a.source.as_str()),
                    Cell::Int(now),
                ]
            })
            .collect();
        let tail = " ON CONFLICT (dossier_id, seq, kind) DO NOTHING";
        bulk::upsert_statements(backend, &self.tables.anomalies, &COLUMNS, &rows, tail, emit);
    }

    /// Step 4: the keys the Kafka publisher must republish (dossiers and scope-days).
    fn outbox_statements(
        &self,
        backend: Backend,
        changed: &[(&Entry, &DossierState)],
        days: &BTreeSet<(String, i64)>,
        emit: &mut dyn FnMut(Statement),
    ) {
        const COLUMNS: [Column; 3] = [
            Column::text("key_kind"),
            Column::text("key"),
            Column::int("changed_at"),
        ];
        let now = micros(Utc::now());
        let mut keys: Vec<(&str, String)> = changed
            .iter()
            .map(|(_, state)| ("dossier", state.dossier_id.clone()))
            .collect();
        keys.extend(
            days.iter()
                .map(|(scope, day)| ("rates", format!("{scope}|{day}"))),
        );
        keys.sort();
        let rows: Vec<Vec<Cell>> = keys
            .iter()
            .map(|(kind, key)| vec![Cell::from(*kind), Cell::from(key.as_str()), Cell::Int(now)])
            .collect();
        // `changed_at` strictly increases on every change of a key, even within one clock
        // tick: the publisher deletes a row only if its `changed_at` is the one it published,
        // so a change made during a pass must never look like the row it read.
        let outbox = &self.tables.outbox;
        let tail = format!(
            " ON CONFLICT (key_kind, key) DO UPDATE SET changed_at = CASE \
             WHEN excluded.changed_at > {outbox}.changed_at THEN excluded.changed_at \
             ELSE {outbox}.changed_at + 1 END"
        );
        bulk::upsert_statements(backend, outbox, &COLUMNS, &rows, &tail, emit);
    }
}
