//! What one dossier adds to the per-day aggregates, as a pure function of its state.
//!
//! # How the aggregates stay exact
//!
//! Each dossier *contributes* counts to day buckets of four scopes (the province, its
//! receiving unit, its competent authority, its procedure) and its channel: +1 `entered` on the
//! day it entered, +1 `resolved_late` on the day it ended late, and so on
//! ([`Contribution::of`]). The aggregates are the sum of every dossier's contribution. When an
//! event changes a dossier, the projector adds its new contribution and subtracts its old
//! one; so replaying a dossier's events, in any number of batches, leaves exactly its final
//! contribution, and a rebuild from scratch gives the same sums.
//!
//! "In progress at the period end, of which already past due" is not a function of the
//! final state: it asks what was true at an earlier moment. For it every open dossier keeps
//! `L`, the instant after which it counts late if nothing more happens
//! ([`motcua_domain::outcome::overdue_from`]), and the projector writes the *changes* of
//! "late at `t`" as +1/-1 `overdue` deltas on the days they happen ([`Deltas::add_overdue_change`]). The
//! sum of the deltas on days before a period's end is then the number of dossiers that were in
//! progress and past due at that end.
//!
//! Day buckets are Vietnam calendar days; a period ends at a Vietnam midnight, so "before the
//! end" is exactly "on a day before the end's day".

use std::collections::HashMap;
use std::ops::{AddAssign, SubAssign};

use motcua_domain::calendar::WorkingCalendar;
use motcua_domain::lifecycle::{DossierState, DossierStatus};
use motcua_domain::outcome::{Outcome, overdue_from, processing_working_seconds};
use motcua_domain::time::Instant;

use crate::period::{DayNumber, day_of};

/// The aggregated counters, in the order of their columns. A name is a column of the day table
/// and a key of the JSON projections; never rename one.
pub const COUNTERS: [&str; 21] = [
    "entered",
    "accepted_open",
    "resolved_early",
    "resolved_on_time",
    "resolved_late",
    "withdrawn",
    "refused",
    "stopped",
    "judged_on_time",
    "judged_late",
    "overdue",
    "digitized_at_reception",
    "reused",
    "result_digitized",
    "electronic_result",
    "fully_digitized",
    "fee_bearing",
    "paid_online",
    "processed",
    "processing_seconds",
    "due_provisional",
];

/// How many of [`COUNTERS`] the first version of the day table had; the others were added by
/// later migrations ([`crate::schema::Tables::migrations`]).
pub const FIRST_COUNTERS: usize = 20;

/// Index of each counter in [`Counters`].
pub mod c {
    pub const ENTERED: usize = 0;
    /// +1 at acceptance, -1 at the end of an accepted dossier: accepted and open at a moment.
    pub const ACCEPTED_OPEN: usize = 1;
    pub const RESOLVED_EARLY: usize = 2;
    pub const RESOLVED_ON_TIME: usize = 3;
    pub const RESOLVED_LATE: usize = 4;
    pub const WITHDRAWN: usize = 5;
    pub const REFUSED: usize = 6;
    pub const STOPPED: usize = 7;
    /// Ended (any terminal status) after acceptance, judged early or on time at its end.
    pub const JUDGED_ON_TIME: usize = 8;
    /// Ended after acceptance, judged late at its end.
    pub const JUDGED_LATE: usize = 9;
    /// Deltas of "in progress and past due" (module docs).
    pub const OVERDUE: usize = 10;
    pub const DIGITIZED_AT_RECEPTION: usize = 11;
    pub const REUSED: usize = 12;
    pub const RESULT_DIGITIZED: usize = 13;
    pub const ELECTRONIC_RESULT: usize = 14;
    pub const FULLY_DIGITIZED: usize = 15;
    pub const FEE_BEARING: usize = 16;
    pub const PAID_ONLINE: usize = 17;
    /// Resolved dossiers with a processing time.
    pub const PROCESSED: usize = 18;
    /// Their working seconds, summed (the average's numerator).
    pub const PROCESSING_SECONDS: usize = 19;
    /// Ended after acceptance and judged against a due date that ran into a year without a
    /// holiday table (computed with weekends only, not a checked date).
    pub const DUE_PROVISIONAL: usize = 20;
}

/// One bucket's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters(pub [i64; COUNTERS.len()]);

impl Counters {
    pub fn get(&self, index: usize) -> i64 {
        self.0[index]
    }

    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|&v| v == 0)
    }

    /// Dossiers that ended (any terminal status).
    pub fn ended(&self) -> i64 {
        self.resolved() + self.get(c::WITHDRAWN) + self.get(c::REFUSED) + self.get(c::STOPPED)
    }

    /// Dossiers resolved (status 9, then perhaps 10).
    pub fn resolved(&self) -> i64 {
        self.get(c::RESOLVED_EARLY) + self.get(c::RESOLVED_ON_TIME) + self.get(c::RESOLVED_LATE)
    }
}

impl AddAssign for Counters {
    fn add_assign(&mut self, other: Self) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }
}

impl SubAssign for Counters {
    fn sub_assign(&mut self, other: Self) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a -= b;
        }
    }
}

/// The kinds of scope every figure is kept for.
pub const SCOPE_KINDS: [&str; 4] = [
    "province",
    "receiving_unit",
    "competent_authority",
    "procedure",
];

/// A day bucket: scope kind, scope id (empty for the province), day, channel (1-3).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BucketKey {
    pub scope_kind: &'static str,
    pub scope_id: String,
    pub day: DayNumber,
    pub channel: i64,
}

/// A processing-time histogram bucket: a day bucket and whole working hours.
pub type HistogramKey = (BucketKey, i64);

/// One dossier's contribution (module docs), before it is spread over its four scopes: the
/// counts it adds to each (day, counter), and to each (day, whole working hours) of the
/// processing-time histogram. Small: about ten entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contribution {
    pub counts: Vec<(DayNumber, usize, i64)>,
    pub hours: Vec<(DayNumber, i64, i64)>,
}

impl Contribution {
    /// What `state`, received under its procedure, contributes.
    pub fn of(calendar: &WorkingCalendar, state: &DossierState) -> Self {
        Self::judged(state, judge(calendar, state))
    }

    /// [`Contribution::of`] with the judgement of the dossier's end already made.
    pub fn judged(state: &DossierState, judged: Option<Judged>) -> Self {
        let mut out = Self::default();
        let mut add = |day: DayNumber, counter: usize, value: i64| {
            out.counts.push((day, counter, value));
        };
        let entered = day_of(state.created_at);
        add(entered, c::ENTERED, 1);
        // Every count is made on the day of the event that makes it true, from facts that no
        // later event changes: a period's figures are then those computed from the events
        // recorded up to its end (docs/figures.md).
        if let Some(at) = state.digitized_at_reception_at {
            add(day_of(at), c::DIGITIZED_AT_RECEPTION, 1);
        }
        if let Some(at) = state.reused_at {
            add(day_of(at), c::REUSED, 1);
        }
        if let Some(at) = state.fee_bearing_since {
            add(day_of(at), c::FEE_BEARING, 1);
            if let Some(paid) = state.paid_online_at {
                add(day_of(paid), c::PAID_ONLINE, 1);
            }
        }
        if let Some(accepted) = state.accepted_at {
            add(day_of(accepted), c::ACCEPTED_OPEN, 1);
        }
        let (Some(ended), Some(judged)) = (state.ended_at, judged) else {
            return out;
        };
        let end_day = day_of(ended);
        if state.accepted_at.is_some() {
            add(end_day, c::ACCEPTED_OPEN, -1);
            if state.due_provisional {
                add(end_day, c::DUE_PROVISIONAL, 1);
            }
        }
        let outcome = judged.outcome;
        match outcome {
            Outcome::Early | Outcome::OnTime => add(end_day, c::JUDGED_ON_TIME, 1),
            Outcome::Late => add(end_day, c::JUDGED_LATE, 1),
            Outcome::NotAccepted | Outcome::InProgress { .. } => {}
        }
        match end_kind(state) {
            EndKind::Withdrawn => add(end_day, c::WITHDRAWN, 1),
            EndKind::Refused => add(end_day, c::REFUSED, 1),
            EndKind::Stopped => add(end_day, c::STOPPED, 1),
            EndKind::Resolved => {
                let counter = match outcome {
                    Outcome::Early => c::RESOLVED_EARLY,
                    Outcome::Late => c::RESOLVED_LATE,
                    _ => c::RESOLVED_ON_TIME,
                };
                add(end_day, counter, 1);
                // Digitised by the time it was resolved; a later digitisation is not the
                // resolution period's.
                if state.result_digitized_at.is_some_and(|at| at <= ended) {
                    add(end_day, c::RESULT_DIGITIZED, 1);
                }
                if state.fully_digitized_at.is_some_and(|at| at <= ended) {
                    add(end_day, c::FULLY_DIGITIZED, 1);
                }
                if state.electronic_result {
                    add(end_day, c::ELECTRONIC_RESULT, 1);
                }
                if let Some(seconds) = judged.processing_seconds {
                    add(end_day, c::PROCESSED, 1);
                    add(end_day, c::PROCESSING_SECONDS, seconds);
                    out.hours.push((end_day, seconds / 3600, 1));
                }
            }
        }
        out
    }
}

/// How an ended dossier is judged: the two costly computations (working-time arithmetic over
/// the calendar) that the contribution and the dossier row both need, made once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judged {
    pub outcome: Outcome,
    /// Working seconds of processing minus supplement waits.
    pub processing_seconds: Option<i64>,
}

/// The judgement of `state`'s end; `None` while it is open.
pub fn judge(calendar: &WorkingCalendar, state: &DossierState) -> Option<Judged> {
    let ended = state.ended_at?;
    Some(Judged {
        outcome: state.outcome(calendar, ended),
        processing_seconds: processing_working_seconds(calendar, &state.outcome_facts()),
    })
}

/// `new - old`, entry by entry, without the entries that cancel out. Most events change one
/// or two counts of a dossier, so this is what keeps a batch's work small.
fn difference<K: Ord + Copy>(
    old: &[(DayNumber, K, i64)],
    new: &[(DayNumber, K, i64)],
) -> Vec<(DayNumber, K, i64)> {
    let mut all: Vec<(DayNumber, K, i64)> = old
        .iter()
        .map(|&(day, key, value)| (day, key, -value))
        .chain(new.iter().copied())
        .collect();
    all.sort_unstable_by_key(|&(day, key, _)| (day, key));
    let mut out: Vec<(DayNumber, K, i64)> = Vec::with_capacity(all.len());
    for (day, key, value) in all {
        match out.last_mut() {
            Some(last) if last.0 == day && last.1 == key => last.2 += value,
            _ => out.push((day, key, value)),
        }
    }
    out.retain(|&(_, _, value)| value != 0);
    out
}

/// Deltas for the day table and the processing-time histogram. Accumulated in hash maps (a
/// batch touches thousands of buckets; ordered maps spent most of a replay comparing keys) and
/// sorted when written ([`Deltas::sorted_days`]), so every transaction locks rows in the same
/// order (two lanes on PostgreSQL then never deadlock).
#[derive(Debug, Clone, Default)]
pub struct Deltas {
    pub days: HashMap<BucketKey, Counters>,
    pub hours: HashMap<HistogramKey, i64>,
}

impl Deltas {
    fn add(&mut self, scopes: &Scopes, day: DayNumber, counter: usize, value: i64) {
        for key in scopes.keys(day) {
            self.days.entry(key).or_default().0[counter] += value;
        }
    }

    /// Adds the change of one dossier's contribution, in the buckets of `scopes`: its new
    /// contribution minus its old one (`None`: it had none, or has none now).
    pub fn add_change(
        &mut self,
        scopes: &Scopes,
        old: Option<&Contribution>,
        new: Option<&Contribution>,
    ) {
        let empty = Contribution::default();
        let (old, new) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
        for (day, counter, value) in difference(&old.counts, &new.counts) {
            self.add(scopes, day, counter, value);
        }
        for (day, hours, value) in difference(&old.hours, &new.hours) {
            for key in scopes.keys(day) {
                *self.hours.entry((key, hours)).or_default() += value;
            }
        }
    }

    /// Adds `sign` times the contribution of `state` (tests and tools; the projector adds
    /// differences with [`Deltas::add_change`]).
    pub fn add_contribution(
        &mut self,
        calendar: &WorkingCalendar,
        state: &DossierState,
        procedure: &str,
        sign: i64,
    ) {
        let scopes = Scopes::of(state, procedure);
        let contribution = Contribution::of(calendar, state);
        if sign >= 0 {
            self.add_change(&scopes, None, Some(&contribution));
        } else {
            self.add_change(&scopes, Some(&contribution), None);
        }
    }

    /// Adds the change of "in progress and past due" from `now` on, when the dossier's `L`
    /// moves from `old` to `new`. See the module docs: the dossier counts for `t > L`; a delta
    /// at instant `x` is bucketed on `x`'s day, and nothing before `now` changes.
    pub fn add_overdue_change(
        &mut self,
        now: Instant,
        scopes: &Scopes,
        old: Option<Instant>,
        new: Option<Instant>,
    ) {
        let old = old.map(|l| l.max(now));
        let new = new.map(|l| l.max(now));
        if old == new {
            return;
        }
        match (old.map(day_of), new.map(day_of)) {
            // Moved within a day: the day's net delta does not change.
            (Some(a), Some(b)) if a == b => {}
            (old_day, new_day) => {
                if let Some(day) = old_day {
                    self.add(scopes, day, c::OVERDUE, -1);
                }
                if let Some(day) = new_day {
                    self.add(scopes, day, c::OVERDUE, 1);
                }
            }
        }
    }

    /// Drops buckets whose deltas cancelled out: nothing to write.
    pub fn prune(&mut self) {
        self.days.retain(|_, counters| !counters.is_zero());
        self.hours.retain(|_, count| *count != 0);
    }

    /// The day deltas in key order.
    pub fn sorted_days(&self) -> Vec<(&BucketKey, &Counters)> {
        let mut rows: Vec<_> = self.days.iter().collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
        rows
    }

    /// The histogram deltas in key order.
    pub fn sorted_hours(&self) -> Vec<(&HistogramKey, &i64)> {
        let mut rows: Vec<_> = self.hours.iter().collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
        rows
    }
}

/// `L` of an open dossier at `now` (see [`overdue_from`]); `None` when it cannot become late.
pub fn late_from(
    calendar: &WorkingCalendar,
    state: &DossierState,
    now: Instant,
) -> Option<Instant> {
    if state.ended_at.is_some() {
        return None;
    }
    overdue_from(
        calendar,
        &state.due_date_rules(),
        &state.outcome_facts(),
        now,
    )
}

/// How a dossier's processing ended (its first terminal status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndKind {
    Resolved,
    Withdrawn,
    Refused,
    Stopped,
}

/// The kind of a dossier's end. Only `result returned` may follow a terminal status, and only
/// after `resolved`, so the current status names the first terminal one.
pub fn end_kind(state: &DossierState) -> EndKind {
    match state.status {
        DossierStatus::Withdrawn => EndKind::Withdrawn,
        DossierStatus::Refused => EndKind::Refused,
        DossierStatus::Stopped => EndKind::Stopped,
        _ => EndKind::Resolved,
    }
}

/// The four scopes and the channel a dossier counts in. None of them moves during a dossier's
/// life: units and channel never change, and a dossier counts under the procedure it was
/// *received* under (a later procedure change moves its due date, not its counts), so every
/// count and every overdue delta of a dossier is in the same buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes {
    pub receiving_unit: String,
    pub competent_authority: String,
    pub procedure: String,
    pub channel: i64,
}

impl Scopes {
    pub fn of(state: &DossierState, procedure: &str) -> Self {
        Self {
            receiving_unit: state.units.receiving_unit.clone(),
            competent_authority: state.units.competent_authority.clone(),
            procedure: procedure.to_owned(),
            channel: i64::from(state.channel as i32),
        }
    }

    fn keys(&self, day: DayNumber) -> [BucketKey; 4] {
        let key = |scope_kind: &'static str, scope_id: &str| BucketKey {
            scope_kind,
            scope_id: scope_id.to_owned(),
            day,
            channel: self.channel,
        };
        [
            key(SCOPE_KINDS[0], ""),
            key(SCOPE_KINDS[1], &self.receiving_unit),
            key(SCOPE_KINDS[2], &self.competent_authority),
            key(SCOPE_KINDS[3], &self.procedure),
        ]
    }
}
