//! What one dossier adds to the per-day aggregates, as a pure function of its state.
//!
//! # How the aggregates stay exact
//!
//! Each dossier *contributes* counts to day buckets of four scopes (the province, its
//! receiving unit, its competent authority, its procedure) and its channel: +1 `entered` on the
//! day it entered, +1 `resolved_late` on the day it ended late, and so on
//! ([`contribution`]). The aggregates are the sum of every dossier's contribution. When an
//! event changes a dossier, the projector adds its new contribution and subtracts its old
//! one; so replaying a dossier's events, in any number of batches, leaves exactly its final
//! contribution, and a rebuild from scratch gives the same sums.
//!
//! "In progress at the period end, of which already past due" is not a function of the
//! final state: it asks what was true at an earlier moment. For it every open dossier keeps
//! `L`, the instant after which it counts late if nothing more happens
//! ([`motcua_domain::outcome::overdue_from`]), and the projector writes the *changes* of
//! "late at `t`" as +1/-1 `overdue` deltas on the days they happen ([`overdue_deltas`]). The
//! sum of the deltas on days before a period's end is then the number of dossiers that were in
//! progress and past due at that end.
//!
//! Day buckets are Vietnam calendar days; a period ends at a Vietnam midnight, so "before the
//! end" is exactly "on a day before the end's day".

use std::collections::BTreeMap;
use std::ops::{AddAssign, SubAssign};

use motcua_domain::calendar::WorkingCalendar;
use motcua_domain::lifecycle::{DossierState, DossierStatus};
use motcua_domain::outcome::{Outcome, overdue_from, processing_working_seconds};
use motcua_domain::time::Instant;

use crate::period::{DayNumber, day_of};

/// The aggregated counters, in the order of their columns. A name is a column of the day table
/// and a key of the JSON projections; never rename one.
pub const COUNTERS: [&str; 20] = [
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
];

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

/// Deltas for the day table and the processing-time histogram, kept sorted so every
/// transaction locks rows in the same order (two lanes on PostgreSQL then never deadlock).
#[derive(Debug, Default)]
pub struct Deltas {
    pub days: BTreeMap<BucketKey, Counters>,
    pub hours: BTreeMap<HistogramKey, i64>,
}

impl Deltas {
    fn add(&mut self, scopes: &Scopes, day: DayNumber, counter: usize, value: i64) {
        for key in scopes.keys(day) {
            self.days.entry(key).or_default().0[counter] += value;
        }
    }

    /// Adds `sign` times the contribution of `state`, received under `procedure`.
    pub fn add_contribution(
        &mut self,
        calendar: &WorkingCalendar,
        state: &DossierState,
        procedure: &str,
        sign: i64,
    ) {
        let scopes = Scopes::of(state, procedure);
        let entered = day_of(state.created_at);
        self.add(&scopes, entered, c::ENTERED, sign);
        if state.digitized_components > 0 {
            self.add(&scopes, entered, c::DIGITIZED_AT_RECEPTION, sign);
        }
        if state.reused_components > 0 {
            self.add(&scopes, entered, c::REUSED, sign);
        }
        let fee_bearing = state.procedure.fee_bearing || state.fees_requested_vnd > 0;
        if fee_bearing {
            self.add(&scopes, entered, c::FEE_BEARING, sign);
            if state.paid_online {
                self.add(&scopes, entered, c::PAID_ONLINE, sign);
            }
        }
        if let Some(accepted) = state.accepted_at {
            self.add(&scopes, day_of(accepted), c::ACCEPTED_OPEN, sign);
        }
        let Some(ended) = state.ended_at else {
            return;
        };
        let end_day = day_of(ended);
        if state.accepted_at.is_some() {
            self.add(&scopes, end_day, c::ACCEPTED_OPEN, -sign);
        }
        let outcome = state.outcome(calendar, ended);
        match outcome {
            Outcome::Early | Outcome::OnTime => self.add(&scopes, end_day, c::JUDGED_ON_TIME, sign),
            Outcome::Late => self.add(&scopes, end_day, c::JUDGED_LATE, sign),
            Outcome::NotAccepted | Outcome::InProgress { .. } => {}
        }
        match end_kind(state) {
            EndKind::Withdrawn => self.add(&scopes, end_day, c::WITHDRAWN, sign),
            EndKind::Refused => self.add(&scopes, end_day, c::REFUSED, sign),
            EndKind::Stopped => self.add(&scopes, end_day, c::STOPPED, sign),
            EndKind::Resolved => {
                let counter = match outcome {
                    Outcome::Early => c::RESOLVED_EARLY,
                    Outcome::Late => c::RESOLVED_LATE,
                    _ => c::RESOLVED_ON_TIME,
                };
                self.add(&scopes, end_day, counter, sign);
                if state.result_digitized {
                    self.add(&scopes, end_day, c::RESULT_DIGITIZED, sign);
                    if state.digitized_components >= state.component_count.max(1) {
                        self.add(&scopes, end_day, c::FULLY_DIGITIZED, sign);
                    }
                }
                if state.electronic_result {
                    self.add(&scopes, end_day, c::ELECTRONIC_RESULT, sign);
                }
                if let Some(seconds) = processing_working_seconds(calendar, &state.outcome_facts())
                {
                    self.add(&scopes, end_day, c::PROCESSED, sign);
                    self.add(&scopes, end_day, c::PROCESSING_SECONDS, sign * seconds);
                    for key in scopes.keys(end_day) {
                        *self.hours.entry((key, seconds / 3600)).or_default() += sign;
                    }
                }
            }
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
        if let Some(from) = old {
            self.add(scopes, day_of(from), c::OVERDUE, -1);
        }
        if let Some(from) = new {
            self.add(scopes, day_of(from), c::OVERDUE, 1);
        }
    }

    /// Drops buckets whose deltas cancelled out: nothing to write.
    pub fn prune(&mut self) {
        self.days.retain(|_, counters| !counters.is_zero());
        self.hours.retain(|_, count| *count != 0);
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
