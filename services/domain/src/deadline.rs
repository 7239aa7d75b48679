//! When the deadline watcher must act on a dossier: the pure part of issue 5.
//!
//! A dossier with a due date gets two timers, one after the other: a *due soon* warning
//! `lead` working seconds before the due date (so the one-stop unit can issue the apology with
//! a new date, docs/domain.md §3, at least one working day ahead), then *late* just after the due
//! date (docs/domain.md §4: on time means ended at or before it). [`next_timer`] says which is next
//! from the dossier's folded state alone; the watcher recomputes it after every event, so
//! every rule that moves the due date moves the timer:
//!
//! - **supplements:** while the applicant supplements (status 5) no timer runs, whatever the
//!   supplement rule: under the pause rule the clock is stopped, under the restart rule it
//!   starts again from zero at the receipt. The receipt's event carries the new due date
//!   (later by the paused working time, or counted afresh), and the timers follow it;
//! - **procedure changed:** the new due date replaces the old one;
//! - **apology / extension:** the new appointment date is told to the applicant, but the
//!   dossier is still scored against its due date ([`DossierState::due_at`] does not move), so
//!   `late` is still recorded at the due date;
//! - **ended** (resolved, withdrawn, refused, stopped): no timer;
//! - `late` and `due_soon` are recorded once per due date ([`DossierState::late_for_due`],
//!   [`DossierState::due_soon_for_due`]); a new due date gets its own.
//!
//! A dossier without a due date (a procedure without a legal time) gets no timer: its
//! lateness is judged by working time against the legal maximum (§4), which the rates
//! projector counts, and there is no due instant for a `late` event to name.

use crate::calendar::WorkingCalendar;
use crate::lifecycle::{Command, DossierState};
use crate::time::Instant;

/// What a timer does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// Record `due_soon` for the due date.
    DueSoon,
    /// Record `late` for the due date.
    Late,
}

impl TimerKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DueSoon => "due_soon",
            Self::Late => "late",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "due_soon" => Some(Self::DueSoon),
            "late" => Some(Self::Late),
            _ => None,
        }
    }
}

/// The next thing to do for a dossier: at `fire_at` (or as soon as possible after it), record
/// `kind` for the due date `due_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timer {
    pub fire_at: Instant,
    pub kind: TimerKind,
    pub due_at: Instant,
}

impl Timer {
    /// What to record when the timer is handled at `now`: a warning that comes after the due
    /// date (the watcher was down) is skipped for the `late` it would precede.
    pub fn action_at(&self, now: Instant) -> TimerKind {
        match self.kind {
            TimerKind::DueSoon if now > self.due_at => TimerKind::Late,
            kind => kind,
        }
    }
}

/// The next timer of a dossier, or `None` when it needs none (module docs). `lead` is the
/// due-soon warning's lead in working seconds (0: no warnings).
pub fn next_timer(
    calendar: &WorkingCalendar,
    state: &DossierState,
    lead_working_seconds: i64,
) -> Option<Timer> {
    let due = state.due_at?;
    if state.ended_at.is_some()
        || !(Command::MarkLate { due_at: due })
            .allowed_in()
            .contains(&state.status)
        || state.late_for_due == Some(due)
    {
        return None;
    }
    if lead_working_seconds > 0 && state.due_soon_for_due != Some(due) {
        return Some(Timer {
            fire_at: calendar.working_time_before(due, lead_working_seconds),
            kind: TimerKind::DueSoon,
            due_at: due,
        });
    }
    Some(Timer {
        fire_at: due,
        kind: TimerKind::Late,
        due_at: due,
    })
}

/// The request id of the command a timer issues: one per dossier, kind and due date, the same
/// in every watcher process, so the store's idempotency makes two watchers (or one restarted
/// mid-way) record it once.
pub fn request_id(dossier_id: &str, kind: TimerKind, due_at: Instant) -> String {
    format!(
        "deadline-watcher:{}:{dossier_id}:{}",
        kind.as_str(),
        due_at.timestamp_micros()
    )
}
