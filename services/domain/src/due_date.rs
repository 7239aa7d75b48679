//! Processing times and due dates (docs/domain.md §3).
//!
//! A procedure declares its maximum processing time in working hours, working days, calendar
//! days or months ([`ProcessingTime`]). The due date is fixed at acceptance by [`compute_due`],
//! a pure function of the acceptance time, the processing time, the [`WorkingCalendar`] and the
//! [`DueDateRules`]; a supplement request moves it ([`due_after_supplement`]). The calendar's
//! versions and [`DueDateRules::version_tag`] are stored with the dossier so that the same
//! computation can be replayed.
//!
//! # The clock starts at the next working instant
//!
//! For every unit, counting starts at [`WorkingCalendar::next_working_start`] of the acceptance
//! time: a dossier accepted after 17:00 counts from 07:00 on the next working day, one accepted
//! during lunch from 13:30 (docs/domain.md §3). For working units this falls out of working-time
//! arithmetic; applying it to calendar units too keeps one rule for everything, so a dossier
//! accepted on Friday evening is not one calendar day "older" than one accepted on Monday morning.
//!
//! # Working hours and working days
//!
//! The amount is converted to working seconds (a working day is the profile's day length: 8
//! hours, 28,800 s, in the standard profile, so 2.5 working days is 72,000 s) and added with
//! [`WorkingCalendar::add_working_seconds`]. The due date is therefore always inside working
//! time, and lands on a segment end (e.g. 17:00) rather than the next morning when the amount
//! uses the day up exactly.
//!
//! # Calendar days and months
//!
//! Calendar periods follow how the Civil Code 2015 counts periods (arts. 147–148, as recalled:
//! the first day is not counted; a period in months ends on the corresponding day of the last
//! month, or that month's last day if it has no such day; a period whose last day is a day off
//! ends at the end of the next working day). Precisely, with `start` the next working instant
//! after acceptance and `D` its Vietnam date:
//!
//! 1. **Last day.** Calendar days: `D + n` days, where `n` is the amount rounded *up* to whole
//!    days (a period counted in days has no half days; rounding up never shortens the legal
//!    time). Months: `D + m` calendar months with end-of-month clamping (31 January + 1 month =
//!    28/29 February), then, for a fractional amount, the fraction × 30 days rounded up (Civil
//!    Code art. 145: a month counted piecewise is 30 days, half a month 15 days).
//! 2. **Skip holidays** ([`CalendarDayRule::skip_holidays`], calendar days only): each holiday in
//!    `(D, last]` — a weekday the holiday table closes, not a weekend day — pushes the last day
//!    one day later, repeatedly, so the period contains exactly `n` non-holiday days. Months are
//!    never stretched: a month is a calendar month, and stretching it by the holidays inside
//!    would let an acceptance on 30 January get a later due date than one on 31 January.
//! 3. **Roll forward** ([`CalendarDayRule::roll_forward_to_working_day`]): a last day that is
//!    not a working day becomes the next working day.
//! 4. **Due instant.** The end of office hours on the last day (17:00 in the standard profile).
//!    The Civil Code ends a day at 24:00; the office hands results back only during office
//!    hours, so its end of day is 17:00.
//!
//! This gives the office the whole last day (a due date rolled from a Saturday is Monday 17:00,
//! not Monday 07:00, which would leave no working time on the day it was rolled to), and it is
//! monotone: a later acceptance never gets an earlier due date.
//!
//! # Supplements
//!
//! See [`due_after_supplement`].

use std::fmt;
use std::str::FromStr;

use chrono::{Days, Months};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::calendar::{WorkingCalendar, WorkingTimeProfile};
use crate::time::{Instant, to_vietnam};

/// The unit a procedure's maximum processing time is declared in (national procedure catalogue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    /// Working hours: office time only.
    WorkingHours,
    /// Working days: one day is the profile's working-day length (8 hours).
    WorkingDays,
    /// Calendar days: every day counts (see the module docs for holidays and rolling).
    CalendarDays,
    /// Calendar months.
    Months,
}

impl TimeUnit {
    /// The machine-readable name used in configuration (`working_days`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WorkingHours => "working_hours",
            Self::WorkingDays => "working_days",
            Self::CalendarDays => "calendar_days",
            Self::Months => "months",
        }
    }

    /// Whether the unit measures office working time (hours, working days) rather than the
    /// calendar.
    pub fn is_working_time(self) -> bool {
        matches!(self, Self::WorkingHours | Self::WorkingDays)
    }

    fn label(self, singular: bool) -> &'static str {
        match (self, singular) {
            (Self::WorkingHours, true) => "working hour",
            (Self::WorkingHours, false) => "working hours",
            (Self::WorkingDays, true) => "working day",
            (Self::WorkingDays, false) => "working days",
            (Self::CalendarDays, true) => "calendar day",
            (Self::CalendarDays, false) => "calendar days",
            (Self::Months, true) => "month",
            (Self::Months, false) => "months",
        }
    }

    fn from_key(key: &str) -> Option<Self> {
        Some(match key {
            "working_hours" | "working_hour" => Self::WorkingHours,
            "working_days" | "working_day" => Self::WorkingDays,
            "calendar_days" | "calendar_day" => Self::CalendarDays,
            "months" | "month" => Self::Months,
            _ => return None,
        })
    }
}

impl fmt::Display for TimeUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A maximum processing time: an amount in hundredths of a unit.
///
/// Hundredths because step allocations use half days (0.5, 2.5 working days) and quarter days
/// occur; an integer keeps the value exact, comparable and hashable, unlike a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProcessingTime {
    /// The unit.
    pub unit: TimeUnit,
    /// The amount in hundredths of the unit: 250 = 2.5.
    pub amount_hundredths: u32,
}

impl ProcessingTime {
    /// A processing time of `amount_hundredths` / 100 `unit`s.
    pub const fn new(unit: TimeUnit, amount_hundredths: u32) -> Self {
        Self {
            unit,
            amount_hundredths,
        }
    }

    /// Working hours, in hundredths (400 = 4 working hours).
    pub const fn working_hours_hundredths(amount_hundredths: u32) -> Self {
        Self::new(TimeUnit::WorkingHours, amount_hundredths)
    }

    /// Working days, in hundredths (250 = 2.5 working days).
    pub const fn working_days_hundredths(amount_hundredths: u32) -> Self {
        Self::new(TimeUnit::WorkingDays, amount_hundredths)
    }

    /// Calendar days, in hundredths (1500 = 15 calendar days).
    pub const fn calendar_days_hundredths(amount_hundredths: u32) -> Self {
        Self::new(TimeUnit::CalendarDays, amount_hundredths)
    }

    /// Months, in hundredths (100 = 1 month).
    pub const fn months_hundredths(amount_hundredths: u32) -> Self {
        Self::new(TimeUnit::Months, amount_hundredths)
    }

    /// The amount as working seconds under `profile`, for the working units; `None` for
    /// calendar days and months, which are not a fixed amount of working time.
    ///
    /// A working day is the profile's day length, so 0.5 working day is half of it; a result
    /// that is not a whole second (only possible with unusual profiles) is rounded to the
    /// nearest second.
    pub fn working_seconds(&self, profile: &WorkingTimeProfile) -> Option<i64> {
        let hundredths = i64::from(self.amount_hundredths);
        match self.unit {
            TimeUnit::WorkingHours => Some(hundredths * 36),
            TimeUnit::WorkingDays => {
                Some((hundredths * profile.working_seconds_per_day() + 50) / 100)
            }
            TimeUnit::CalendarDays | TimeUnit::Months => None,
        }
    }
}

impl fmt::Display for ProcessingTime {
    /// `2.5 working days`, `1 month`, `0.25 working hours`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.amount_hundredths / 100;
        let frac = self.amount_hundredths % 100;
        if frac == 0 {
            write!(f, "{whole}")?;
        } else if frac.is_multiple_of(10) {
            write!(f, "{whole}.{}", frac / 10)?;
        } else {
            write!(f, "{whole}.{frac:02}")?;
        }
        write!(f, " {}", self.unit.label(self.amount_hundredths == 100))
    }
}

/// Why a processing time could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseProcessingTimeError {
    /// Nothing to parse.
    #[error("empty processing time")]
    Empty,
    /// An amount without a unit, e.g. `2.5`.
    #[error("processing time `{input}` has no unit (expected e.g. `2.5 working_days`)")]
    MissingUnit {
        /// The input.
        input: String,
    },
    /// The amount is not a non-negative decimal number.
    #[error("`{amount}` is not a valid amount (expected e.g. `2`, `2.5` or `0.25`)")]
    InvalidAmount {
        /// The amount as written.
        amount: String,
    },
    /// More than two decimals: the amount is kept in hundredths.
    #[error("`{amount}` has more than two decimals")]
    TooManyDecimals {
        /// The amount as written.
        amount: String,
    },
    /// The amount does not fit (more than 42,949,672.95 units).
    #[error("`{amount}` is too large")]
    AmountTooLarge {
        /// The amount as written.
        amount: String,
    },
    /// The unit is not one of working_hours, working_days, calendar_days, months.
    #[error(
        "unknown unit `{unit}` (expected working_hours, working_days, calendar_days or months)"
    )]
    UnknownUnit {
        /// The unit as written.
        unit: String,
    },
}

impl FromStr for ProcessingTime {
    type Err = ParseProcessingTimeError;

    /// Parses `2.5 working_days`, `15 calendar_days`, `4 working_hours`, `1 months`; the unit may
    /// also be singular or written with spaces (`1 working day`), so [`Display`](fmt::Display)
    /// output parses back.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(ParseProcessingTimeError::Empty);
        }
        let Some((amount, unit)) = s.split_once(char::is_whitespace) else {
            return Err(ParseProcessingTimeError::MissingUnit {
                input: s.to_owned(),
            });
        };
        let key = unit
            .split_whitespace()
            .collect::<Vec<_>>()
            .join("_")
            .to_lowercase();
        let unit =
            TimeUnit::from_key(&key).ok_or_else(|| ParseProcessingTimeError::UnknownUnit {
                unit: unit.trim().to_owned(),
            })?;
        Ok(Self::new(unit, parse_hundredths(amount)?))
    }
}

/// `2.5` → 250. Accepts digits with an optional `.` and one or two decimals; no sign, no
/// exponent, so garbage never becomes a plausible-looking processing time.
fn parse_hundredths(amount: &str) -> Result<u32, ParseProcessingTimeError> {
    let invalid = || ParseProcessingTimeError::InvalidAmount {
        amount: amount.to_owned(),
    };
    let (whole, frac) = match amount.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (amount, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || frac.is_some_and(|f| !all_digits(f)) {
        return Err(invalid());
    }
    let frac_hundredths = match frac {
        None => 0,
        Some(f) if f.len() > 2 => {
            return Err(ParseProcessingTimeError::TooManyDecimals {
                amount: amount.to_owned(),
            });
        }
        Some(f) => {
            let value: u32 = f.parse().map_err(|_| invalid())?;
            if f.len() == 1 { value * 10 } else { value }
        }
    };
    let too_large = || ParseProcessingTimeError::AmountTooLarge {
        amount: amount.to_owned(),
    };
    let whole: u32 = whole.parse().map_err(|_| too_large())?;
    whole
        .checked_mul(100)
        .and_then(|w| w.checked_add(frac_hundredths))
        .ok_or_else(too_large)
}

/// How calendar-day (and month) periods treat days off *(configurable, docs/domain.md §3)*.
///
/// The default follows the Civil Code: holidays inside the period count
/// (`skip_holidays: false`), and a period ending on a day off ends on the next working day
/// (`roll_forward_to_working_day: true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CalendarDayRule {
    /// Holidays (weekdays the holiday table closes) inside a calendar-day period do not count:
    /// each one extends the period by a day. Applies to calendar days, not months.
    pub skip_holidays: bool,
    /// A last day that is not a working day moves to the next working day.
    pub roll_forward_to_working_day: bool,
}

impl Default for CalendarDayRule {
    fn default() -> Self {
        Self {
            skip_holidays: false,
            roll_forward_to_working_day: true,
        }
    }
}

/// What a supplement request does to the clock *(configurable per procedure or rule version,
/// docs/domain.md §3)*.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SupplementRule {
    /// The clock stops while the applicant supplements and resumes on receipt. The default, as
    /// it matches the national portal's rule of subtracting supplement time (docs/domain.md §4).
    #[default]
    Pause,
    /// The clock restarts from zero on receipt of the complete supplement.
    Restart,
}

/// The configurable due-date rules a dossier is accepted under.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DueDateRules {
    /// Treatment of days off in calendar-day and month periods.
    pub calendar_days: CalendarDayRule,
    /// Treatment of supplement requests.
    pub supplement: SupplementRule,
}

impl DueDateRules {
    /// A short, stable description of the rules, stored with the dossier next to the calendar
    /// versions, e.g. `due-rules-v1;cal:skip=0,roll=1;supplement=pause`. The `v1` names the
    /// semantics documented in this module; change it if they change.
    pub fn version_tag(&self) -> String {
        format!(
            "due-rules-v1;cal:skip={},roll={};supplement={}",
            u8::from(self.calendar_days.skip_holidays),
            u8::from(self.calendar_days.roll_forward_to_working_day),
            match self.supplement {
                SupplementRule::Pause => "pause",
                SupplementRule::Restart => "restart",
            }
        )
    }
}

/// The due date of a dossier accepted at `accepted_at` with maximum processing time `time`.
///
/// `None` when the procedure has no due date (`time` is `None`). See the module documentation
/// for the exact rule per unit.
pub fn compute_due(
    calendar: &WorkingCalendar,
    accepted_at: Instant,
    time: Option<ProcessingTime>,
    rules: &DueDateRules,
) -> Option<Instant> {
    let time = time?;
    let start = calendar.next_working_start(accepted_at);
    let hundredths = time.amount_hundredths;
    let rule = rules.calendar_days;
    Some(match time.unit {
        TimeUnit::WorkingHours | TimeUnit::WorkingDays => {
            let seconds = time
                .working_seconds(calendar.profile())
                .expect("working units always convert to working seconds");
            calendar.add_working_seconds(start, seconds)
        }
        TimeUnit::CalendarDays => {
            let days = u64::from(hundredths.div_ceil(100));
            calendar_period_end(calendar, start, 0, days, rule.skip_holidays, rule)
        }
        TimeUnit::Months => {
            let months = hundredths / 100;
            let days = u64::from((hundredths % 100 * 30).div_ceil(100));
            calendar_period_end(calendar, start, months, days, false, rule)
        }
    })
}

/// Steps 1–4 of the calendar rule in the module docs. Saturates at the largest instant if the
/// period runs off chrono's calendar.
fn calendar_period_end(
    calendar: &WorkingCalendar,
    start: Instant,
    months: u32,
    days: u64,
    skip_holidays: bool,
    rule: CalendarDayRule,
) -> Instant {
    let first = to_vietnam(start).date_naive();
    let Some(mut last) = first
        .checked_add_months(Months::new(months))
        .and_then(|d| d.checked_add_days(Days::new(days)))
    else {
        return Instant::MAX_UTC;
    };
    if skip_holidays {
        // Holidays in (counted_to, last] each add a day; the added days may contain holidays
        // too, so repeat over the newly added stretch until none is found.
        let mut counted_to = first;
        loop {
            let (Some(from), Some(to)) = (counted_to.succ_opt(), last.succ_opt()) else {
                return Instant::MAX_UTC;
            };
            let extra = calendar.holidays_between(from, to);
            if extra == 0 {
                break;
            }
            counted_to = last;
            let Some(extended) = u64::try_from(extra)
                .ok()
                .and_then(|n| last.checked_add_days(Days::new(n)))
            else {
                return Instant::MAX_UTC;
            };
            last = extended;
        }
    }
    if rule.roll_forward_to_working_day {
        match calendar.working_day_on_or_after(last) {
            Some(day) => last = day,
            None => return Instant::MAX_UTC,
        }
    }
    calendar.end_of_working_day(last)
}

/// The due date after a supplement was requested at `requested_at` and the complete supplement
/// received at `received_at`.
///
/// - [`SupplementRule::Pause`]: `due_before` moves later by the *working time* between request
///   and receipt (`add_working_seconds(due_before, working_seconds_between(requested, received))`),
///   whatever the procedure's unit. Working time for every unit because §4 judges a dossier by
///   "working time minus supplement time": measuring the pause the same way means a dossier
///   with a due date and one judged against its legal maximum come out the same, and a weekend
///   spent waiting neither helps nor hurts the office. Because working-time addition is
///   additive, several pauses in a row compose exactly. `None` stays `None`.
/// - [`SupplementRule::Restart`]: the due date is computed afresh from the receipt, as if the
///   dossier had been accepted then: `compute_due(received_at, time)`.
///
/// Whatever the rule, a supplement *requested after the due date had passed* moves nothing:
/// `due_before` is returned. Lateness, once incurred, is never erased (docs/domain.md §4): only a
/// step taken before the due date can move it, or asking for a paper after the deadline would
/// turn a late dossier into an early one.
pub fn due_after_supplement(
    calendar: &WorkingCalendar,
    rules: &DueDateRules,
    time: Option<ProcessingTime>,
    due_before: Option<Instant>,
    requested_at: Instant,
    received_at: Instant,
) -> Option<Instant> {
    if is_after_due(due_before, requested_at) {
        return due_before;
    }
    match rules.supplement {
        SupplementRule::Pause => due_before.map(|due| {
            let paused = calendar.working_seconds_between(requested_at, received_at);
            calendar.add_working_seconds(due, paused)
        }),
        SupplementRule::Restart => compute_due(calendar, received_at, time, rules),
    }
}

/// Whether a step taken at `at` comes after the due date `due` had passed: then it may not
/// move the due date (see [`due_after_supplement`]). At the due instant itself the dossier is
/// still on time, so a step then still counts as taken in time.
pub fn is_after_due(due: Option<Instant>, at: Instant) -> bool {
    due.is_some_and(|due| at > due)
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

    fn due(accepted: Instant, time: &str) -> Instant {
        due_with(accepted, time, DueDateRules::default())
    }

    fn due_with(accepted: Instant, time: &str, rules: DueDateRules) -> Instant {
        let time: ProcessingTime = time.parse().expect("valid processing time");
        compute_due(&cal(), accepted, Some(time), &rules).expect("has a due date")
    }

    fn rules(skip: bool, roll: bool) -> DueDateRules {
        DueDateRules {
            calendar_days: CalendarDayRule {
                skip_holidays: skip,
                roll_forward_to_working_day: roll,
            },
            supplement: SupplementRule::Pause,
        }
    }

    #[test]
    fn parse_and_display() {
        let t: ProcessingTime = "2.5 working_days".parse().expect("valid");
        assert_eq!(t, ProcessingTime::working_days_hundredths(250));
        assert_eq!(t.to_string(), "2.5 working days");
        assert_eq!(
            "15 calendar_days".parse::<ProcessingTime>(),
            Ok(ProcessingTime::calendar_days_hundredths(1500))
        );
        assert_eq!(
            "4 working_hours".parse::<ProcessingTime>(),
            Ok(ProcessingTime::working_hours_hundredths(400))
        );
        assert_eq!(
            "1 months".parse::<ProcessingTime>(),
            Ok(ProcessingTime::months_hundredths(100))
        );
        assert_eq!(
            ProcessingTime::months_hundredths(100).to_string(),
            "1 month"
        );
        assert_eq!(
            ProcessingTime::working_hours_hundredths(25).to_string(),
            "0.25 working hours"
        );
        // Display output parses back.
        for h in [0, 1, 50, 100, 250, 1234] {
            for unit in [
                TimeUnit::WorkingHours,
                TimeUnit::WorkingDays,
                TimeUnit::CalendarDays,
                TimeUnit::Months,
            ] {
                let t = ProcessingTime::new(unit, h);
                assert_eq!(t.to_string().parse::<ProcessingTime>(), Ok(t));
            }
        }
    }

    #[test]
    fn parse_rejects_garbage() {
        use ParseProcessingTimeError as E;
        let err = |s: &str| s.parse::<ProcessingTime>().expect_err("must fail");
        assert_eq!(err(""), E::Empty);
        assert!(matches!(err("2.5"), E::MissingUnit { .. }));
        assert!(matches!(err("two working_days"), E::InvalidAmount { .. }));
        assert!(matches!(err("-1 working_days"), E::InvalidAmount { .. }));
        assert!(matches!(err("1. working_days"), E::InvalidAmount { .. }));
        assert!(matches!(err(".5 working_days"), E::InvalidAmount { .. }));
        assert!(matches!(err("1e3 working_days"), E::InvalidAmount { .. }));
        assert!(matches!(
            err("2.555 working_days"),
            E::TooManyDecimals { .. }
        ));
        assert!(matches!(
            err("99999999999 months"),
            E::AmountTooLarge { .. }
        ));
        assert!(matches!(err("3 weeks"), E::UnknownUnit { .. }));
    }

    #[test]
    fn working_seconds_follow_the_profile() {
        let p = WorkingTimeProfile::standard();
        assert_eq!(
            ProcessingTime::working_days_hundredths(250).working_seconds(&p),
            Some(72_000)
        );
        assert_eq!(
            ProcessingTime::working_hours_hundredths(150).working_seconds(&p),
            Some(5_400)
        );
        assert_eq!(
            ProcessingTime::calendar_days_hundredths(100).working_seconds(&p),
            None
        );
    }

    #[test]
    fn no_due_date_when_no_processing_time() {
        assert_eq!(
            compute_due(
                &cal(),
                vn(2024, 3, 18, 9, 0),
                None,
                &DueDateRules::default()
            ),
            None
        );
    }

    #[test]
    fn working_days_from_morning() {
        // Monday 18 March 2024 09:00 + 1 working day = Tuesday 09:00.
        assert_eq!(
            due(vn(2024, 3, 18, 9, 0), "1 working_days"),
            vn(2024, 3, 19, 9, 0)
        );
        // Monday 07:00 + 1 working day = Monday 17:00 (earliest instant, not Tuesday 07:00).
        assert_eq!(
            due(vn(2024, 3, 18, 7, 0), "1 working_days"),
            vn(2024, 3, 18, 17, 0)
        );
    }

    #[test]
    fn accepted_after_17_counts_from_next_working_morning() {
        // Friday 15 March 2024 17:30 + 4 working hours: Monday 07:00 + 4h = 11:00.
        assert_eq!(
            due(vn(2024, 3, 15, 17, 30), "4 working_hours"),
            vn(2024, 3, 18, 11, 0)
        );
    }

    #[test]
    fn accepted_during_lunch_counts_from_1330() {
        assert_eq!(
            due(vn(2024, 3, 18, 12, 0), "2 working_hours"),
            vn(2024, 3, 18, 15, 30)
        );
    }

    #[test]
    fn half_days() {
        // Monday 07:00 + 0.5 working day = 4 hours: 11:00.
        assert_eq!(
            due(vn(2024, 3, 18, 7, 0), "0.5 working_days"),
            vn(2024, 3, 18, 11, 0)
        );
        // Monday 09:00 + 2.5 working days = Wednesday 09:00 + 4h: 2.5h to 11:30, then 1.5h
        // after lunch → 15:00.
        assert_eq!(
            due(vn(2024, 3, 18, 9, 0), "2.5 working_days"),
            vn(2024, 3, 20, 15, 0)
        );
    }

    #[test]
    fn hours_cross_lunch_and_weekend() {
        // Friday 15:00 + 3 working hours: 2h Friday, 1h Monday → Monday 08:00.
        assert_eq!(
            due(vn(2024, 3, 15, 15, 0), "3 working_hours"),
            vn(2024, 3, 18, 8, 0)
        );
        // 10:30 + 2 hours: 1h before lunch, 1h after → 14:30.
        assert_eq!(
            due(vn(2024, 3, 18, 10, 30), "2 working_hours"),
            vn(2024, 3, 18, 14, 30)
        );
    }

    #[test]
    fn weekend_is_skipped() {
        // Friday 10:00 + 1 working day = Monday 10:00.
        assert_eq!(
            due(vn(2024, 3, 15, 10, 0), "1 working_days"),
            vn(2024, 3, 18, 10, 0)
        );
    }

    #[test]
    fn tet_2024_is_skipped() {
        // Wednesday 7 Feb 2024 10:00 + 3 working days: Tết closes 8–14 Feb, so Thursday 15,
        // Friday 16, Monday 19 Feb → Monday 19 Feb 10:00.
        assert_eq!(
            due(vn(2024, 2, 7, 10, 0), "3 working_days"),
            vn(2024, 2, 19, 10, 0)
        );
    }

    #[test]
    fn worked_saturday_4_may_2024_counts() {
        // Friday 26 April 2024 10:00 + 3 working days: 29 Apr–1 May off, then Thursday 2 May,
        // Friday 3 May, Saturday 4 May (worked) → Saturday 4 May 10:00.
        assert_eq!(
            due(vn(2024, 4, 26, 10, 0), "3 working_days"),
            vn(2024, 5, 4, 10, 0)
        );
    }

    #[test]
    fn calendar_days_end_at_close_of_the_last_day() {
        // Monday 18 March 2024 09:00 + 3 calendar days → Thursday 21 March 17:00.
        assert_eq!(
            due(vn(2024, 3, 18, 9, 0), "3 calendar_days"),
            vn(2024, 3, 21, 17, 0)
        );
        // Fractions round up to whole days.
        assert_eq!(
            due(vn(2024, 3, 18, 9, 0), "2.5 calendar_days"),
            vn(2024, 3, 21, 17, 0)
        );
    }

    #[test]
    fn calendar_days_roll_forward_or_not() {
        // Wednesday 13 March 2024 + 3 days = Saturday 16 March.
        let accepted = vn(2024, 3, 13, 9, 0);
        assert_eq!(
            due_with(accepted, "3 calendar_days", rules(false, true)),
            vn(2024, 3, 18, 17, 0)
        );
        assert_eq!(
            due_with(accepted, "3 calendar_days", rules(false, false)),
            vn(2024, 3, 16, 17, 0)
        );
    }

    #[test]
    fn calendar_days_skip_holidays_or_not() {
        // Monday 5 Feb 2024 + 5 calendar days = Saturday 10 Feb (inside Tết).
        let accepted = vn(2024, 2, 5, 9, 0);
        // No skip, no roll: Saturday 10 Feb 17:00.
        assert_eq!(
            due_with(accepted, "5 calendar_days", rules(false, false)),
            vn(2024, 2, 10, 17, 0)
        );
        // No skip, roll: next working day is Thursday 15 Feb.
        assert_eq!(
            due_with(accepted, "5 calendar_days", rules(false, true)),
            vn(2024, 2, 15, 17, 0)
        );
        // Skip: holidays Thu 8, Fri 9 in (5 Feb, 10 Feb] add 2 days → Mon 12; Mon 12 is a
        // holiday → 13; Tue 13 → 14; Wed 14 → Thursday 15 Feb, a working day.
        assert_eq!(
            due_with(accepted, "5 calendar_days", rules(true, false)),
            vn(2024, 2, 15, 17, 0)
        );
        // Weekends are not holidays: a span with only a weekend is not extended.
        assert_eq!(
            due_with(vn(2024, 3, 13, 9, 0), "3 calendar_days", rules(true, false)),
            vn(2024, 3, 16, 17, 0)
        );
    }

    #[test]
    fn months_clamp_to_month_end() {
        // Wednesday 31 January 2024 + 1 month → Thursday 29 February 2024 (leap year).
        assert_eq!(
            due(vn(2024, 1, 31, 9, 0), "1 months"),
            vn(2024, 2, 29, 17, 0)
        );
        // Monday 31 March 2025 + 1 month → 30 April (clamped), a holiday; without rolling
        // that is the due day, with rolling the next working day is Monday 5 May (1 May is a
        // holiday, 2 May swapped, then the weekend).
        assert_eq!(
            due_with(vn(2025, 3, 31, 9, 0), "1 months", rules(false, false)),
            vn(2025, 4, 30, 17, 0)
        );
        assert_eq!(
            due(vn(2025, 3, 31, 9, 0), "1 months"),
            vn(2025, 5, 5, 17, 0)
        );
        // Friday 31 January 2025 is a Tết day: counting starts Monday 3 February → 3 March.
        assert_eq!(
            due(vn(2025, 1, 31, 9, 0), "1 months"),
            vn(2025, 3, 3, 17, 0)
        );
        // Friday 15 March 2024 + 1 month = Monday 15 April.
        assert_eq!(
            due(vn(2024, 3, 15, 9, 0), "1 months"),
            vn(2024, 4, 15, 17, 0)
        );
        // Half a month is 15 days.
        assert_eq!(
            due(vn(2024, 3, 1, 9, 0), "0.5 months"),
            vn(2024, 3, 18, 17, 0)
        );
        // Tuesday 16 April 2024 + 2 months = Sunday 16 June → rolled to Monday 17 June.
        assert_eq!(
            due(vn(2024, 4, 16, 9, 0), "2 months"),
            vn(2024, 6, 17, 17, 0)
        );
    }

    #[test]
    fn calendar_clock_also_starts_at_next_working_start() {
        // Friday 17:30 + 1 calendar day: counting starts Monday, so Tuesday 17:00.
        assert_eq!(
            due(vn(2024, 3, 15, 17, 30), "1 calendar_days"),
            vn(2024, 3, 19, 17, 0)
        );
    }

    #[test]
    fn pause_moves_due_by_working_time_waited() {
        let c = cal();
        let time = Some(ProcessingTime::working_days_hundredths(300));
        let r = DueDateRules::default();
        let accepted = vn(2024, 3, 18, 9, 0);
        let due_before = compute_due(&c, accepted, time, &r);
        assert_eq!(due_before, Some(vn(2024, 3, 21, 9, 0)));
        // Requested Tuesday 16:00, received Wednesday 08:00: 2 working hours waited.
        let after = due_after_supplement(
            &c,
            &r,
            time,
            due_before,
            vn(2024, 3, 19, 16, 0),
            vn(2024, 3, 20, 8, 0),
        );
        assert_eq!(after, Some(vn(2024, 3, 21, 11, 0)));
        // No due date stays without one.
        assert_eq!(
            due_after_supplement(
                &c,
                &r,
                None,
                None,
                vn(2024, 3, 19, 16, 0),
                vn(2024, 3, 20, 8, 0)
            ),
            None
        );
    }

    #[test]
    fn restart_recomputes_from_receipt() {
        let c = cal();
        let time = Some(ProcessingTime::working_days_hundredths(300));
        let r = DueDateRules {
            supplement: SupplementRule::Restart,
            ..DueDateRules::default()
        };
        let due_before = compute_due(&c, vn(2024, 3, 18, 9, 0), time, &r);
        let after = due_after_supplement(
            &c,
            &r,
            time,
            due_before,
            vn(2024, 3, 19, 16, 0),
            vn(2024, 3, 20, 8, 0),
        );
        // Wednesday 08:00 + 3 working days = Monday 25 March 08:00.
        assert_eq!(after, Some(vn(2024, 3, 25, 8, 0)));
    }

    #[test]
    fn rules_version_tag_is_stable() {
        assert_eq!(
            DueDateRules::default().version_tag(),
            "due-rules-v1;cal:skip=0,roll=1;supplement=pause"
        );
    }
}
