//! Early, on time, late: the national portal's judgement of a dossier (docs/domain.md §4).
//!
//! [`classify`] takes the facts the event history establishes ([`OutcomeFacts`]) and the moment
//! of evaluation (usually a reporting period's end) and returns an [`Outcome`]. The rules, in the
//! order they are applied:
//!
//! 1. Not accepted at `evaluate_at` (no acceptance, or acceptance after it) → `NotAccepted`:
//!    the clock starts at acceptance, not at online submission.
//! 2. Only what was known at `evaluate_at` counts: an end of processing after `evaluate_at` is
//!    ignored (the dossier was unfinished at the period end), and so are supplement requests
//!    and receipts after the end (or after `evaluate_at`).
//! 3. **Effective end.** A dossier waiting for a supplement counts as ended at the request time,
//!    whether or not it later reached a terminal status (everything after the request is the
//!    applicant's time, which §4 subtracts). Otherwise the effective end is the end of processing,
//!    if any.
//! 4. Asked to supplement more than once → `Late` once it has an effective end; an unfinished
//!    one is `InProgress { overdue: true }`, i.e. already counted late at the period end.
//! 5. With a due date: end at or before the due date → `OnTime`, and `Early` when the end's
//!    Vietnam date is before the due date's; after it → `Late`. The due date is the *scoring*
//!    one: moved by received supplements (pause rule), never by an apology/extension.
//! 6. Without a due date but with a legal maximum: the working time from acceptance to the end,
//!    minus the working time of supplement waits (request → receipt), must be within the legal
//!    maximum. For working hours/days this is compared in working seconds. Calendar days and
//!    months are not a fixed amount of working time, so for them a *virtual due date* is used:
//!    [`compute_due`] from acceptance (with the dossier's [`DueDateRules`]), moved later by the
//!    working time of the waits (the pause rule), then rule 5. Early means the end's Vietnam date
//!    is before the date on which the allowance runs out.
//! 7. Neither a due date nor a legal maximum → `OnTime` (nothing to be late against).
//! 8. No effective end → `InProgress { overdue }`, overdue when `evaluate_at` is past the
//!    (virtual) due date: §4 counts it late in the period.

use serde::{Deserialize, Serialize};

use crate::calendar::WorkingCalendar;
use crate::due_date::{DueDateRules, ProcessingTime, compute_due};
use crate::time::{Instant, to_vietnam};

/// One supplement request and, once it came, the receipt of the complete supplement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupplementEpisode {
    /// When the applicant was asked to supplement (status 5).
    pub requested_at: Instant,
    /// When the complete supplement was received; `None` while the applicant has not answered.
    pub received_at: Option<Instant>,
}

/// What the event history says about a dossier, as far as the judgement needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeFacts {
    /// Acceptance (status 2); `None` while an online submission is not accepted yet.
    pub accepted_at: Option<Instant>,
    /// The scoring due date: already moved by [`due_after_supplement`](crate::due_date::due_after_supplement)
    /// for received supplements, NOT moved by an apology/extension. `None` when the procedure
    /// has no due date.
    pub due_at: Option<Instant>,
    /// The procedure's legal maximum processing time, used only when `due_at` is `None`.
    pub legal_max: Option<ProcessingTime>,
    /// Supplement episodes in request order.
    pub supplements: Vec<SupplementEpisode>,
    /// Time of the first terminal status (processed, returned, stopped, refused, withdrawn);
    /// the caller applies "processed wins over returned".
    pub ended_at: Option<Instant>,
}

/// The judgement of one dossier at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Not accepted at the evaluation time; the clock has not started.
    NotAccepted,
    /// Ended before the due date's working day.
    Early,
    /// Ended on the due date's working day, at or before the due instant.
    OnTime,
    /// Ended after the due date, or asked to supplement more than once.
    Late,
    /// Not ended at the evaluation time; `overdue` when already past its due date (then §4
    /// counts it late in the period).
    InProgress {
        /// Already past the due date (or asked to supplement more than once).
        overdue: bool,
    },
}

impl Outcome {
    /// Early or on time: the two are counted together in scores (docs/domain.md §4).
    pub fn is_on_time(self) -> bool {
        matches!(self, Self::Early | Self::OnTime)
    }

    /// Late, or unfinished and already overdue: what a period's late count includes.
    pub fn is_late(self) -> bool {
        matches!(self, Self::Late | Self::InProgress { overdue: true })
    }

    /// Whether the dossier had an (effective) end of processing.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Early | Self::OnTime | Self::Late)
    }
}

/// Judges `facts` at `evaluate_at` with the default [`DueDateRules`] (used only to turn a
/// calendar-day or month legal maximum into a virtual due date). See the module docs.
pub fn classify(calendar: &WorkingCalendar, facts: &OutcomeFacts, evaluate_at: Instant) -> Outcome {
    classify_with_rules(calendar, &DueDateRules::default(), facts, evaluate_at)
}

/// Which rule of the module docs decided a judgement, so it can be explained ("late: asked to
/// supplement twice") instead of only stated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeReason {
    /// Rule 1: not accepted at the evaluation time.
    NotAccepted,
    /// Ended (or judged ended) before the due date's working day.
    EndedBeforeDueDay,
    /// Ended on the due date's working day, at or before the due instant.
    EndedOnDueDay,
    /// Ended after the due date (or the legal maximum).
    EndedAfterDue,
    /// Rule 3: waiting for a supplement asked in time, judged ended at the request.
    WaitingForSupplement,
    /// Rule 3 with a request made after the due date had passed: late.
    SupplementRequestedAfterDue,
    /// Rule 4: asked to supplement more than once.
    SupplementRequestedMoreThanOnce,
    /// Rule 8: unfinished, still within its time.
    WithinTime,
    /// Rule 8: unfinished and past its due date.
    PastDue,
    /// Rule 7: neither a due date nor a legal maximum.
    NoTimeLimit,
}

/// An outcome with the rule that decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judgement {
    pub outcome: Outcome,
    pub reason: OutcomeReason,
}

/// [`classify`] with explicit rules for the virtual due date of a dossier without a due date
/// (rule 6 in the module docs); use the rules the dossier was accepted under.
pub fn classify_with_rules(
    calendar: &WorkingCalendar,
    rules: &DueDateRules,
    facts: &OutcomeFacts,
    evaluate_at: Instant,
) -> Outcome {
    judge_with_rules(calendar, rules, facts, evaluate_at).outcome
}

/// [`classify_with_rules`] with the reason for its answer.
pub fn judge_with_rules(
    calendar: &WorkingCalendar,
    rules: &DueDateRules,
    facts: &OutcomeFacts,
    evaluate_at: Instant,
) -> Judgement {
    use OutcomeReason as R;
    let judged = |outcome, reason| Judgement { outcome, reason };
    let Some(accepted) = facts.accepted_at.filter(|&a| a <= evaluate_at) else {
        return judged(Outcome::NotAccepted, R::NotAccepted);
    };
    let ended = facts.ended_at.filter(|&e| e <= evaluate_at);
    // Nothing after this moment was known when the dossier ended / was evaluated.
    let horizon = ended.unwrap_or(evaluate_at);
    let episodes: Vec<(Instant, Option<Instant>)> = facts
        .supplements
        .iter()
        .filter(|s| s.requested_at <= horizon)
        .map(|s| (s.requested_at, s.received_at.filter(|&r| r <= horizon)))
        .collect();
    let open_request = episodes
        .iter()
        .filter(|(_, received)| received.is_none())
        .map(|(requested, _)| *requested)
        .min();
    let effective_end = open_request.or(ended);
    let asked_more_than_once = episodes.len() > 1;
    // The moment being judged: the effective end, or the evaluation time if unfinished.
    let judged_at = effective_end.unwrap_or(evaluate_at);

    let limit = limit_for(calendar, rules, facts, accepted, judged_at, &episodes);

    let waiting = open_request.is_some();
    match effective_end {
        None if asked_more_than_once => judged(
            Outcome::InProgress { overdue: true },
            R::SupplementRequestedMoreThanOnce,
        ),
        None if limit.is_some_and(|l| l.exceeded_at(calendar, evaluate_at)) => {
            judged(Outcome::InProgress { overdue: true }, R::PastDue)
        }
        None => judged(Outcome::InProgress { overdue: false }, R::WithinTime),
        Some(_) if asked_more_than_once => {
            judged(Outcome::Late, R::SupplementRequestedMoreThanOnce)
        }
        Some(end) => match limit {
            None => judged(Outcome::OnTime, R::NoTimeLimit),
            Some(l) if l.exceeded_at(calendar, end) => judged(
                Outcome::Late,
                if waiting {
                    R::SupplementRequestedAfterDue
                } else {
                    R::EndedAfterDue
                },
            ),
            Some(l) if to_vietnam(end).date_naive() < to_vietnam(l.due()).date_naive() => judged(
                Outcome::Early,
                if waiting {
                    R::WaitingForSupplement
                } else {
                    R::EndedBeforeDueDay
                },
            ),
            Some(_) => judged(
                Outcome::OnTime,
                if waiting {
                    R::WaitingForSupplement
                } else {
                    R::EndedOnDueDay
                },
            ),
        },
    }
}

/// The limit `facts` are judged against, with the supplement waits up to `judged_at`.
fn limit_for(
    calendar: &WorkingCalendar,
    rules: &DueDateRules,
    facts: &OutcomeFacts,
    accepted: Instant,
    judged_at: Instant,
    episodes: &[(Instant, Option<Instant>)],
) -> Option<Limit> {
    match (facts.due_at, facts.legal_max) {
        (Some(due), _) => Some(Limit::Due(due)),
        (None, Some(legal)) => {
            let waited = waited_working_seconds(calendar, accepted, judged_at, episodes);
            match legal.working_seconds(calendar.profile()) {
                Some(max) => Some(Limit::WorkingTime {
                    accepted,
                    allowed: max + waited,
                    due: calendar
                        .add_working_seconds(calendar.next_working_start(accepted), max + waited),
                }),
                None => compute_due(calendar, accepted, Some(legal), rules)
                    .map(|base| Limit::Due(calendar.add_working_seconds(base, waited))),
            }
        }
        (None, None) => None,
    }
}

/// When an unfinished dossier starts to count as late if nothing more happens to it: the
/// instant `L` such that, judged at any `t > now`, [`classify_with_rules`] says late
/// ([`Outcome::is_late`]) exactly when `t > L`. `None` when it never will (ended, not accepted,
/// waiting for a supplement asked in time, or nothing to be late against).
///
/// The rates projector keeps `L` for every open dossier, so "in progress at the period end, of
/// which already past due" is a count of `L < period end`, not a judgement of every dossier.
/// Only valid for `t > now`, and only until the dossier's next event: `L` may be earlier than
/// `now` (the dossier is already late), and any event may move it.
pub fn overdue_from(
    calendar: &WorkingCalendar,
    rules: &DueDateRules,
    facts: &OutcomeFacts,
    now: Instant,
) -> Option<Instant> {
    if facts.ended_at.is_some_and(|end| end <= now) {
        return None;
    }
    let accepted = facts.accepted_at.filter(|&a| a <= now)?;
    let episodes: Vec<(Instant, Option<Instant>)> = facts
        .supplements
        .iter()
        .filter(|s| s.requested_at <= now)
        .map(|s| (s.requested_at, s.received_at.filter(|&r| r <= now)))
        .collect();
    if let Some(open) = episodes
        .iter()
        .filter(|(_, received)| received.is_none())
        .map(|(requested, _)| *requested)
        .min()
    {
        // Judged as ended at the request: the judgement no longer moves with time.
        let judged = classify_with_rules(calendar, rules, facts, now);
        return judged.is_late().then_some(open.min(now));
    }
    if episodes.len() > 1 {
        // Asked to supplement more than once: late from the second request on.
        let mut requests: Vec<Instant> = episodes.iter().map(|(r, _)| *r).collect();
        requests.sort();
        return Some(requests[1]);
    }
    match limit_for(calendar, rules, facts, accepted, now, &episodes)? {
        Limit::Due(due) => Some(due),
        Limit::WorkingTime {
            accepted,
            allowed,
            due,
        } => {
            // `due` is the earliest instant the allowance is used up; at a segment end (11:30,
            // 17:00) no more working time passes until the next segment starts, and only then
            // does the working time exceed the allowance.
            let just_after = due + chrono::Duration::seconds(1);
            if calendar.working_seconds_between(accepted, just_after) > allowed {
                Some(due)
            } else {
                Some(calendar.next_working_start(just_after))
            }
        }
    }
}

/// Working time from acceptance to the end of processing, minus the working time spent waiting
/// for supplements: the processing time docs/domain.md section 5 averages. `None` unless the dossier
/// was accepted and has ended.
pub fn processing_working_seconds(calendar: &WorkingCalendar, facts: &OutcomeFacts) -> Option<i64> {
    let accepted = facts.accepted_at?;
    let ended = facts.ended_at?;
    let episodes: Vec<(Instant, Option<Instant>)> = facts
        .supplements
        .iter()
        .filter(|s| s.requested_at <= ended)
        .map(|s| {
            (
                s.requested_at,
                s.received_at.filter(|&r| r <= ended).or(Some(ended)),
            )
        })
        .collect();
    let waited = waited_working_seconds(calendar, accepted, ended, &episodes);
    Some((calendar.working_seconds_between(accepted, ended) - waited).max(0))
}

/// What a dossier is judged against.
#[derive(Debug, Clone, Copy)]
enum Limit {
    /// A due instant: late when the end is after it.
    Due(Instant),
    /// A legal maximum in working time (no due date): late when the working time from
    /// acceptance exceeds `allowed` (the maximum plus the supplement waits). Compared in working
    /// seconds, not against `due`, so a dossier ending at 18:00 after using exactly its
    /// allowance is on time, as §4's "working time ... within the legal maximum" says.
    WorkingTime {
        accepted: Instant,
        allowed: i64,
        /// The earliest instant the allowance is used up; only for telling early from on time.
        due: Instant,
    },
}

impl Limit {
    fn exceeded_at(self, calendar: &WorkingCalendar, t: Instant) -> bool {
        match self {
            Self::Due(due) => t > due,
            Self::WorkingTime {
                accepted, allowed, ..
            } => calendar.working_seconds_between(accepted, t) > allowed,
        }
    }

    fn due(self) -> Instant {
        match self {
            Self::Due(due) | Self::WorkingTime { due, .. } => due,
        }
    }
}

/// Working seconds spent waiting for received supplements between acceptance and `until`.
/// Overlapping episodes (which only inconsistent data produces) are merged, so no wait is
/// subtracted twice; open episodes need nothing here, since the effective end is their request.
fn waited_working_seconds(
    calendar: &WorkingCalendar,
    accepted: Instant,
    until: Instant,
    episodes: &[(Instant, Option<Instant>)],
) -> i64 {
    let mut waits: Vec<(Instant, Instant)> = episodes
        .iter()
        .filter_map(|&(requested, received)| {
            let (from, to) = (requested.max(accepted), received?.min(until));
            (from < to).then_some((from, to))
        })
        .collect();
    waits.sort();
    let mut total = 0;
    let mut covered_to: Option<Instant> = None;
    for (from, to) in waits {
        let from = covered_to.map_or(from, |c| from.max(c));
        if from < to {
            total += calendar.working_seconds_between(from, to);
        }
        covered_to = Some(covered_to.map_or(to, |c| c.max(to)));
    }
    total
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::time::vietnam;

    fn vn(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> Instant {
        vietnam()
            .with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("valid test time")
            .with_timezone(&Utc)
    }

    fn cal() -> WorkingCalendar {
        WorkingCalendar::standard()
    }

    /// Accepted Monday 18 March 2024 09:00, due Thursday 21 March 09:00.
    fn facts() -> OutcomeFacts {
        OutcomeFacts {
            accepted_at: Some(vn(2024, 3, 18, 9, 0)),
            due_at: Some(vn(2024, 3, 21, 9, 0)),
            legal_max: None,
            supplements: vec![],
            ended_at: None,
        }
    }

    fn period_end() -> Instant {
        vn(2024, 3, 31, 23, 59)
    }

    fn ended(at: Instant) -> OutcomeFacts {
        OutcomeFacts {
            ended_at: Some(at),
            ..facts()
        }
    }

    #[test]
    fn not_accepted() {
        let f = OutcomeFacts {
            accepted_at: None,
            ..facts()
        };
        assert_eq!(classify(&cal(), &f, period_end()), Outcome::NotAccepted);
        // Accepted after the evaluation time: not accepted at that time.
        assert_eq!(
            classify(&cal(), &facts(), vn(2024, 3, 18, 8, 0)),
            Outcome::NotAccepted
        );
    }

    #[test]
    fn early_on_time_late() {
        let c = cal();
        assert_eq!(
            classify(&c, &ended(vn(2024, 3, 20, 16, 0)), period_end()),
            Outcome::Early
        );
        assert_eq!(
            classify(&c, &ended(vn(2024, 3, 21, 8, 0)), period_end()),
            Outcome::OnTime
        );
        // At exactly the due date: on time.
        assert_eq!(
            classify(&c, &ended(vn(2024, 3, 21, 9, 0)), period_end()),
            Outcome::OnTime
        );
        assert_eq!(
            classify(&c, &ended(vn(2024, 3, 21, 9, 1)), period_end()),
            Outcome::Late
        );
        assert!(Outcome::Early.is_on_time() && Outcome::OnTime.is_on_time());
        assert!(!Outcome::Late.is_on_time());
    }

    #[test]
    fn unfinished_at_period_end() {
        let c = cal();
        // Before the due date: in progress, not overdue.
        assert_eq!(
            classify(&c, &facts(), vn(2024, 3, 20, 17, 0)),
            Outcome::InProgress { overdue: false }
        );
        // Past the due date at the period end: overdue, counted late.
        let o = classify(&c, &facts(), period_end());
        assert_eq!(o, Outcome::InProgress { overdue: true });
        assert!(o.is_late());
        // Ended after the period end: judged as unfinished at the period end.
        let f = ended(vn(2024, 4, 2, 9, 0));
        assert_eq!(
            classify(&c, &f, period_end()),
            Outcome::InProgress { overdue: true }
        );
        assert_eq!(
            classify(&c, &f, vn(2024, 3, 20, 9, 0)),
            Outcome::InProgress { overdue: false }
        );
    }

    #[test]
    fn waiting_for_supplement_counts_as_ended_at_request() {
        let c = cal();
        let f = OutcomeFacts {
            supplements: vec![SupplementEpisode {
                requested_at: vn(2024, 3, 20, 10, 0),
                received_at: None,
            }],
            ..facts()
        };
        // Still waiting at the period end: ended at the request (Wednesday) → early.
        assert_eq!(classify(&c, &f, period_end()), Outcome::Early);
        // Received after the period end: still waiting at the period end.
        let mut later = f.clone();
        later.supplements[0].received_at = Some(vn(2024, 4, 3, 9, 0));
        assert_eq!(classify(&c, &later, period_end()), Outcome::Early);
        // Refused later because the supplement never came: judged at the request time.
        let refused = OutcomeFacts {
            ended_at: Some(vn(2024, 3, 29, 9, 0)),
            ..f
        };
        assert_eq!(classify(&c, &refused, period_end()), Outcome::Early);
    }

    #[test]
    fn received_supplement_is_judged_against_moved_due() {
        // The caller moved the due date by the 1 working day waited (pause rule).
        let c = cal();
        let f = OutcomeFacts {
            due_at: Some(vn(2024, 3, 22, 9, 0)),
            supplements: vec![SupplementEpisode {
                requested_at: vn(2024, 3, 19, 9, 0),
                received_at: Some(vn(2024, 3, 20, 9, 0)),
            }],
            ended_at: Some(vn(2024, 3, 22, 8, 0)),
            ..facts()
        };
        assert_eq!(classify(&c, &f, period_end()), Outcome::OnTime);
    }

    #[test]
    fn more_than_one_supplement_is_late() {
        let c = cal();
        let two = vec![
            SupplementEpisode {
                requested_at: vn(2024, 3, 18, 10, 0),
                received_at: Some(vn(2024, 3, 18, 11, 0)),
            },
            SupplementEpisode {
                requested_at: vn(2024, 3, 18, 14, 0),
                received_at: Some(vn(2024, 3, 18, 15, 0)),
            },
        ];
        let f = OutcomeFacts {
            supplements: two.clone(),
            ended_at: Some(vn(2024, 3, 19, 9, 0)),
            ..facts()
        };
        // Ended well before the due date, but asked twice: late.
        assert_eq!(classify(&c, &f, period_end()), Outcome::Late);
        // Unfinished: already counted late.
        let unfinished = OutcomeFacts {
            supplements: two.clone(),
            ..facts()
        };
        assert_eq!(
            classify(&c, &unfinished, vn(2024, 3, 19, 9, 0)),
            Outcome::InProgress { overdue: true }
        );
        // Waiting for the second supplement: ended at that request, late.
        let mut waiting = unfinished.clone();
        waiting.supplements[1].received_at = None;
        assert_eq!(classify(&c, &waiting, period_end()), Outcome::Late);
        // Before the second request, only one counts.
        assert_eq!(
            classify(&c, &unfinished, vn(2024, 3, 18, 12, 0)),
            Outcome::InProgress { overdue: false }
        );
    }

    #[test]
    fn no_due_date_uses_legal_max_minus_supplement_time() {
        let c = cal();
        // Legal max 1 working day; accepted Monday 09:00.
        let base = OutcomeFacts {
            due_at: None,
            legal_max: Some(ProcessingTime::working_days_hundredths(100)),
            ..facts()
        };
        let end = |at| OutcomeFacts {
            ended_at: Some(at),
            ..base.clone()
        };
        // Tuesday 09:00 is exactly 8 working hours.
        assert_eq!(
            classify(&c, &end(vn(2024, 3, 19, 9, 0)), period_end()),
            Outcome::OnTime
        );
        assert_eq!(
            classify(&c, &end(vn(2024, 3, 19, 10, 0)), period_end()),
            Outcome::Late
        );
        // Legal max 4.5 working hours from Monday 07:00: used up at 11:30. Ending during lunch
        // (12:00) uses no more working time, so it is still on time.
        let morning = OutcomeFacts {
            accepted_at: Some(vn(2024, 3, 18, 7, 0)),
            legal_max: Some(ProcessingTime::working_hours_hundredths(450)),
            ended_at: Some(vn(2024, 3, 18, 12, 0)),
            ..base.clone()
        };
        assert_eq!(classify(&c, &morning, period_end()), Outcome::OnTime);
        let afternoon = OutcomeFacts {
            ended_at: Some(vn(2024, 3, 18, 13, 31)),
            ..morning
        };
        assert_eq!(classify(&c, &afternoon, period_end()), Outcome::Late);
        // With a 2-hour supplement wait subtracted, Tuesday 10:00 is within 8 working hours.
        let with_wait = OutcomeFacts {
            supplements: vec![SupplementEpisode {
                requested_at: vn(2024, 3, 18, 14, 0),
                received_at: Some(vn(2024, 3, 18, 16, 0)),
            }],
            ..end(vn(2024, 3, 19, 10, 0))
        };
        assert_eq!(classify(&c, &with_wait, period_end()), Outcome::OnTime);
        // Unfinished, past the legal maximum at the period end: overdue.
        assert_eq!(
            classify(&c, &base, period_end()),
            Outcome::InProgress { overdue: true }
        );
        // Calendar-day legal maximum: virtual due date 3 calendar days later, 17:00.
        let cal_days = OutcomeFacts {
            legal_max: Some(ProcessingTime::calendar_days_hundredths(300)),
            ended_at: Some(vn(2024, 3, 21, 16, 0)),
            ..base.clone()
        };
        assert_eq!(classify(&c, &cal_days, period_end()), Outcome::OnTime);
        let cal_days_late = OutcomeFacts {
            ended_at: Some(vn(2024, 3, 21, 17, 30)),
            ..cal_days
        };
        assert_eq!(classify(&c, &cal_days_late, period_end()), Outcome::Late);
    }

    #[test]
    fn no_due_and_no_legal_max_is_on_time() {
        let c = cal();
        let f = OutcomeFacts {
            due_at: None,
            legal_max: None,
            ended_at: Some(vn(2025, 1, 1, 9, 0)),
            ..facts()
        };
        assert_eq!(classify(&c, &f, vn(2025, 6, 1, 0, 0)), Outcome::OnTime);
        let unfinished = OutcomeFacts {
            ended_at: None,
            ..f
        };
        assert_eq!(
            classify(&c, &unfinished, vn(2025, 6, 1, 0, 0)),
            Outcome::InProgress { overdue: false }
        );
    }
}
