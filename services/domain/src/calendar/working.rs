//! Arithmetic on working time: is an instant inside office hours, where does an amount of
//! working time end, how much working time lies between two instants.
//!
//! The arithmetic works on (local date, seconds after local midnight) pairs and moves at most one
//! day at a time, and skips whole weeks at once where the holiday table says nothing, so adding a
//! thousand working days costs a few hundred steps, not millions. Office schedules and due dates
//! are kept to the second: a sub-second start is rounded *up* before working time is added to
//! it (a due date is never earlier than the exact one), and counted from its whole second when
//! working time between two instants is measured.

use std::fmt;

use chrono::{Datelike, NaiveDate, NaiveTime, TimeDelta, TimeZone, Timelike, Utc};
use serde::{Deserialize, Serialize};

use super::holidays::HolidayTable;
use super::profile::{SECONDS_PER_DAY, WorkingTimeProfile};
use crate::time::{Instant, VIETNAM_OFFSET_SECONDS, to_vietnam};

/// The versions of the inputs a due date was computed with. Stored on every dossier so that its
/// due date can be recomputed years later against the same profile and holiday table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CalendarVersions {
    /// [`WorkingTimeProfile::id`].
    pub profile_id: String,
    /// [`HolidayTable::version`].
    pub holiday_table_version: String,
}

impl fmt::Display for CalendarVersions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{}", self.profile_id, self.holiday_table_version)
    }
}

/// A working-time profile together with a holiday table: the office calendar.
///
/// A day is a working day when the holiday table lists it as a worked day, or when the profile
/// works on its weekday and the table does not list it as a day off. Years the table does not
/// cover follow the weekly pattern alone (no holidays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkingCalendar {
    profile: WorkingTimeProfile,
    holidays: HolidayTable,
}

impl WorkingCalendar {
    /// Combines a profile and a holiday table.
    pub fn new(profile: WorkingTimeProfile, holidays: HolidayTable) -> Self {
        Self { profile, holidays }
    }

    /// The standard office hours with the shipped holiday tables.
    pub fn standard() -> Self {
        Self::new(WorkingTimeProfile::standard(), HolidayTable::builtin())
    }

    /// The working-time profile.
    pub fn profile(&self) -> &WorkingTimeProfile {
        &self.profile
    }

    /// The holiday table.
    pub fn holidays(&self) -> &HolidayTable {
        &self.holidays
    }

    /// Profile id and holiday-table version, to store on every dossier.
    pub fn versions(&self) -> CalendarVersions {
        CalendarVersions {
            profile_id: self.profile.id().to_owned(),
            holiday_table_version: self.holidays.version().to_owned(),
        }
    }

    /// Whether the holiday table covers every Vietnam year from `from`'s to `to`'s: a due date
    /// computed across an uncovered year knows only weekends there, so it is provisional.
    pub fn covers(&self, from: Instant, to: Instant) -> bool {
        let (first, last) = (to_vietnam(from).year(), to_vietnam(to).year());
        (first..=last).all(|year| self.holidays.covers(year))
    }

    /// The last Vietnam date of the run of covered years that contains `date`'s year, `None`
    /// when that year itself is not covered: how far ahead due dates are checked against real
    /// holidays.
    pub fn covered_until(&self, date: NaiveDate) -> Option<NaiveDate> {
        let mut year = date.year();
        if !self.holidays.covers(year) {
            return None;
        }
        while self.holidays.covers(year + 1) {
            year += 1;
        }
        NaiveDate::from_ymd_opt(year, 12, 31)
    }

    /// Whether the office works on `date` (Vietnam local date).
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        if self.holidays.is_worked_day(date) {
            return true;
        }
        self.profile.works_on(date.weekday()) && !self.holidays.is_day_off(date)
    }

    /// Whether `date` is a *holiday* in the sense of "skip holidays" rules: a day the weekly
    /// pattern would work but the holiday table closes. Weekends are not holidays here, even when
    /// the table lists them inside a Tết break, so a rule that skips holidays never skips a
    /// weekend day twice.
    pub fn is_holiday(&self, date: NaiveDate) -> bool {
        self.profile.works_on(date.weekday()) && !self.is_working_day(date)
    }

    /// Number of holidays (see [`is_holiday`](Self::is_holiday)) in `[from, to)`.
    pub fn holidays_between(&self, from: NaiveDate, to: NaiveDate) -> i64 {
        self.holidays
            .days_off_in(from, to)
            .filter(|d| self.profile.works_on(d.weekday()))
            .count() as i64
    }

    /// Whether `t` is inside office hours. Segment ends count as inside: 17:00:00 is still
    /// working time, 17:00:01 is not.
    pub fn is_working_instant(&self, t: Instant) -> bool {
        let (date, sod) = local(t);
        self.is_working_day(date)
            && self
                .profile
                .raw_segments()
                .iter()
                .any(|s| s.start <= sod && sod <= s.end)
    }

    /// `t` itself if it is inside working time, else the start of the next working segment
    /// (after 17:00 → 07:00 of the next working day; during lunch → 13:30).
    pub fn next_working_start(&self, t: Instant) -> Instant {
        let (date, sod) = local(t);
        if self.is_working_day(date) {
            for segment in self.profile.raw_segments() {
                if sod <= segment.end {
                    return if sod >= segment.start {
                        t
                    } else {
                        at(date, segment.start)
                    };
                }
            }
        }
        match self.next_working_day(date) {
            Some(next) => at(next, self.profile.day_start()),
            None => Instant::MAX_UTC,
        }
    }

    /// The first working day strictly after `date` (`None` only at the end of chrono's range).
    pub fn next_working_day(&self, date: NaiveDate) -> Option<NaiveDate> {
        let mut d = date.succ_opt()?;
        while !self.is_working_day(d) {
            d = d.succ_opt()?;
        }
        Some(d)
    }

    /// `date` if it is a working day, else the next working day.
    pub fn working_day_on_or_after(&self, date: NaiveDate) -> Option<NaiveDate> {
        if self.is_working_day(date) {
            Some(date)
        } else {
            self.next_working_day(date)
        }
    }

    /// The end of office hours (end of the last segment, 17:00 in the standard profile) on
    /// `date`, whether or not `date` is a working day.
    pub fn end_of_working_day(&self, date: NaiveDate) -> Instant {
        at(date, self.profile.day_end())
    }

    /// The earliest instant at which `seconds` of working time have elapsed after `t`.
    ///
    /// "Earliest" matters at segment ends: 4.5 working hours from 07:00 is 11:30 the same day,
    /// not 13:30. This is what makes the operation additive:
    /// `add(add(t, a), b) == add(t, a + b)`. Zero (or a negative amount, treated as zero)
    /// returns `t` unchanged. Saturates at the largest representable instant.
    ///
    /// The working-time arithmetic counts whole seconds, so a `t` with a fraction of a second
    /// is first rounded *up* to the next whole second: a due date may come a fraction of a
    /// second late, never early (acceptance at 07:59:59.935 plus 8 hours is 08:00:00 the next
    /// working day, not 07:59:59, which would make a resolution inside that second late).
    pub fn add_working_seconds(&self, t: Instant, seconds: i64) -> Instant {
        if seconds <= 0 {
            return t;
        }
        let t = ceil_to_second(t);
        let (mut date, sod) = local(t);
        let mut remaining = seconds;
        if self.is_working_day(date)
            && let Some(end) = self.consume_in_day(sod, &mut remaining)
        {
            return at(date, end);
        }
        let day = self.profile.working_seconds_per_day();
        let week = day * self.profile.working_days_per_week();
        loop {
            date = match date.succ_opt() {
                Some(d) => d,
                None => return Instant::MAX_UTC,
            };
            // Skip whole weeks in which the holiday table says nothing: each has exactly `week`
            // seconds of working time. Keep at least one second for the per-day walk so the
            // result lands on the earliest instant (a segment end, never the next morning).
            if remaining > week {
                let free_weeks = match self.holidays.next_exception(date) {
                    Some(next) => (next - date).num_days() / 7,
                    None => i64::MAX,
                };
                let weeks = free_weeks.min((remaining - 1) / week);
                if weeks > 0 {
                    date = match u64::try_from(weeks * 7)
                        .ok()
                        .and_then(|n| date.checked_add_days(chrono::Days::new(n)))
                    {
                        Some(d) => d,
                        None => return Instant::MAX_UTC,
                    };
                    remaining -= weeks * week;
                }
            }
            if !self.is_working_day(date) {
                continue;
            }
            if remaining > day {
                remaining -= day;
                continue;
            }
            if let Some(end) = self.consume_in_day(0, &mut remaining) {
                return at(date, end);
            }
        }
    }

    /// The latest instant `x <= t` with at least `seconds` of working time in `(x, t]`: "one
    /// working day before the due date" is `working_time_before(due, 8 h)`. A due date on
    /// Monday 09:00 and 8 working hours give Friday 09:00 (6 hours on Friday, 2 on Monday);
    /// over a holiday the instant moves back past it. Zero returns `t`.
    ///
    /// A search over [`WorkingCalendar::working_seconds_between`], which only grows as `x`
    /// moves back: about 40 evaluations, each a few table look-ups.
    pub fn working_time_before(&self, t: Instant, seconds: i64) -> Instant {
        if seconds <= 0 {
            return t;
        }
        let per_day = self.profile.working_seconds_per_day().max(1);
        // Far enough back: twice the calendar days the working days need, plus a month for
        // the longest run of holidays (Tết).
        let mut span_days = (seconds / per_day + 1) * 2 + 31;
        while self.working_seconds_between(t - chrono::Duration::days(span_days), t) < seconds {
            span_days *= 2;
            if span_days > 3_650_000 {
                return Instant::MIN_UTC;
            }
        }
        // Whole seconds back from `t`: the smallest `back` with enough working time in
        // `(t - back, t]`. Invariant: `far` back is enough, `near` back is not.
        let (mut near, mut far) = (0i64, span_days * 86_400);
        while far - near > 1 {
            let middle = near + (far - near) / 2;
            if self.working_seconds_between(t - chrono::Duration::seconds(middle), t) >= seconds {
                far = middle;
            } else {
                near = middle;
            }
        }
        t - chrono::Duration::seconds(far)
    }

    /// Working seconds in `(from, to]` — 0 when `to <= from`.
    pub fn working_seconds_between(&self, from: Instant, to: Instant) -> i64 {
        if to <= from {
            return 0;
        }
        let (d1, s1) = local(from);
        let (d2, s2) = local(to);
        if d1 == d2 {
            return self.working_seconds_in_day(d1, s1, s2);
        }
        let first = self.working_seconds_in_day(d1, s1, SECONDS_PER_DAY);
        let last = self.working_seconds_in_day(d2, 0, s2);
        let middle = match d1.succ_opt() {
            Some(next) => self.working_days_between(next, d2),
            None => 0,
        };
        first + middle * self.profile.working_seconds_per_day() + last
    }

    /// Number of working days in `[from, to)` (0 when `to <= from`), counted arithmetically:
    /// whole weeks times working weekdays, corrected by the table entries in range.
    pub fn working_days_between(&self, from: NaiveDate, to: NaiveDate) -> i64 {
        if to <= from {
            return 0;
        }
        let days = (to - from).num_days();
        let mut count = (days / 7) * self.profile.working_days_per_week();
        // The leftover days (fewer than 7) start at the same weekday as `from`.
        let mut weekday = from.weekday();
        for _ in 0..days % 7 {
            if self.profile.works_on(weekday) {
                count += 1;
            }
            weekday = weekday.succ();
        }
        count -= self.holidays_between(from, to);
        count += self
            .holidays
            .worked_days_in(from, to)
            .filter(|d| !self.profile.works_on(d.weekday()))
            .count() as i64;
        count
    }

    /// Working seconds on `date` between local seconds `from` and `to`.
    fn working_seconds_in_day(&self, date: NaiveDate, from: u32, to: u32) -> i64 {
        if !self.is_working_day(date) {
            return 0;
        }
        self.profile
            .raw_segments()
            .iter()
            .map(|s| i64::from(s.end.min(to).saturating_sub(s.start.max(from))))
            .sum()
    }

    /// Walks the segments of a working day from local second `from`, taking working time out of
    /// `remaining`. Returns the local second where `remaining` reaches zero, or `None` (with
    /// `remaining` reduced by what the day had left) if the day ends first.
    fn consume_in_day(&self, from: u32, remaining: &mut i64) -> Option<u32> {
        for segment in self.profile.raw_segments() {
            let start = segment.start.max(from);
            if start >= segment.end {
                continue;
            }
            let available = i64::from(segment.end - start);
            if *remaining <= available {
                // Fits: `remaining` is at most the segment length, so it fits in u32.
                let offset = u32::try_from(*remaining).expect("bounded by the segment length");
                return Some(start + offset);
            }
            *remaining -= available;
        }
        None
    }
}

/// Places `t` on the Vietnam local calendar: (local date, seconds after local midnight).
/// `t` rounded up to a whole second (unchanged when it is one).
fn ceil_to_second(t: Instant) -> Instant {
    match t.timestamp_subsec_nanos() {
        0 => t,
        // A leap second's nanoseconds reach past 1e9; it rounds to the next second all the same.
        nanos => t + TimeDelta::nanoseconds(i64::from(1_000_000_000u32.saturating_sub(nanos))),
    }
}

fn local(t: Instant) -> (NaiveDate, u32) {
    let l = to_vietnam(t).naive_local();
    (l.date(), l.time().num_seconds_from_midnight())
}

/// The instant at local second `sod` of the Vietnam local `date`.
fn at(date: NaiveDate, sod: u32) -> Instant {
    let utc = date
        .and_time(NaiveTime::MIN)
        .checked_add_signed(TimeDelta::seconds(i64::from(sod)))
        .and_then(|l| l.checked_sub_signed(TimeDelta::seconds(i64::from(VIETNAM_OFFSET_SECONDS))));
    match utc {
        Some(utc) => Utc.from_utc_datetime(&utc),
        // Only at the very ends of chrono's calendar, which real dossiers never reach.
        None if date.year() < 0 => Instant::MIN_UTC,
        None => Instant::MAX_UTC,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::vietnam;

    /// A Vietnam local time as an instant.
    fn vn(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> Instant {
        vietnam()
            .with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("valid test time")
            .with_timezone(&Utc)
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
    }

    fn cal() -> WorkingCalendar {
        WorkingCalendar::standard()
    }

    const HOUR: i64 = 3600;
    const DAY: i64 = 8 * HOUR;

    #[test]
    fn a_fraction_of_a_second_rounds_the_due_date_up_never_down() {
        let c = cal();
        // Monday 4 March 2024, 07:59:59.935: 8 working hours later is Tuesday 08:00:00, not
        // 07:59:59 (a resolution at 07:59:59.5 on Tuesday is on time).
        let accepted = vn(2024, 3, 4, 7, 59) + TimeDelta::milliseconds(59_935);
        let due = c.add_working_seconds(accepted, DAY);
        assert_eq!(due, vn(2024, 3, 5, 8, 0));
        assert!(due >= accepted + TimeDelta::days(1));
        // Whole seconds are kept exactly, and additivity still holds.
        assert_eq!(
            c.add_working_seconds(vn(2024, 3, 4, 8, 0), DAY),
            vn(2024, 3, 5, 8, 0)
        );
        assert_eq!(
            c.add_working_seconds(c.add_working_seconds(accepted, HOUR), 7 * HOUR),
            due
        );
        // Nothing to add: the instant itself, fraction included.
        assert_eq!(c.add_working_seconds(accepted, 0), accepted);
    }

    #[test]
    fn working_time_before_steps_back_over_weekends_lunch_and_holidays() {
        let c = cal();
        // Monday 09:00, one working day back: Friday 09:00.
        assert_eq!(
            c.working_time_before(vn(2024, 3, 18, 9, 0), DAY),
            vn(2024, 3, 15, 9, 0)
        );
        // Afternoon 14:00, one working hour back: across the lunch break, 11:00.
        assert_eq!(
            c.working_time_before(vn(2024, 3, 14, 14, 0), HOUR),
            vn(2024, 3, 14, 11, 0)
        );
        // Due Thursday 15 February 2024 at 08:00, the first day after Tết (8-14 February):
        // one working day back is Wednesday 7 February 08:00.
        assert_eq!(
            c.working_time_before(vn(2024, 2, 15, 8, 0), DAY),
            vn(2024, 2, 7, 8, 0)
        );
        assert_eq!(
            c.working_time_before(vn(2024, 3, 14, 14, 0), 0),
            vn(2024, 3, 14, 14, 0)
        );
        // It inverts the working time it spans.
        for (due, seconds) in [
            (vn(2024, 3, 18, 9, 0), 3 * DAY + 2 * HOUR),
            (vn(2024, 5, 6, 10, 15), DAY),
            (vn(2024, 9, 4, 16, 59), 5 * DAY),
        ] {
            let before = c.working_time_before(due, seconds);
            assert_eq!(c.working_seconds_between(before, due), seconds, "{due}");
            assert!(
                c.working_seconds_between(before + chrono::Duration::seconds(1), due) < seconds
            );
        }
    }

    #[test]
    fn working_days_follow_weekdays_and_table() {
        let c = cal();
        assert!(c.is_working_day(date(2024, 3, 15))); // Friday
        assert!(!c.is_working_day(date(2024, 3, 16))); // Saturday
        assert!(!c.is_working_day(date(2024, 2, 8))); // Tết
        assert!(c.is_working_day(date(2024, 5, 4))); // worked Saturday
        assert!(!c.is_working_day(date(2024, 4, 29))); // swapped Monday
        assert!(c.is_holiday(date(2024, 2, 12)));
        assert!(!c.is_holiday(date(2024, 2, 10))); // Tết Saturday is a weekend, not a holiday
        // Beyond the table only weekends are days off.
        assert!(c.is_working_day(date(2030, 1, 1)));
    }

    #[test]
    fn segment_ends_are_inclusive() {
        let c = cal();
        assert!(c.is_working_instant(vn(2024, 3, 15, 17, 0)));
        assert!(c.is_working_instant(vn(2024, 3, 15, 11, 30)));
        assert!(c.is_working_instant(vn(2024, 3, 15, 7, 0)));
        assert!(!c.is_working_instant(vn(2024, 3, 15, 12, 0)));
        assert!(!c.is_working_instant(vn(2024, 3, 15, 6, 59)));
        assert!(!c.is_working_instant(vn(2024, 3, 16, 9, 0)));
    }

    #[test]
    fn next_working_start_cases() {
        let c = cal();
        let inside = vn(2024, 3, 15, 9, 0);
        assert_eq!(c.next_working_start(inside), inside);
        assert_eq!(
            c.next_working_start(vn(2024, 3, 15, 12, 0)),
            vn(2024, 3, 15, 13, 30)
        );
        assert_eq!(
            c.next_working_start(vn(2024, 3, 15, 6, 0)),
            vn(2024, 3, 15, 7, 0)
        );
        // Friday evening → Monday morning.
        assert_eq!(
            c.next_working_start(vn(2024, 3, 15, 18, 0)),
            vn(2024, 3, 18, 7, 0)
        );
        // Friday 26 April 2024 evening: 29 April–1 May are off → Thursday 2 May.
        assert_eq!(
            c.next_working_start(vn(2024, 4, 26, 17, 30)),
            vn(2024, 5, 2, 7, 0)
        );
        // Friday 3 May evening → worked Saturday 4 May.
        assert_eq!(
            c.next_working_start(vn(2024, 5, 3, 17, 30)),
            vn(2024, 5, 4, 7, 0)
        );
    }

    #[test]
    fn add_lands_on_segment_end_not_next_segment() {
        let c = cal();
        let mon = vn(2024, 3, 18, 7, 0);
        assert_eq!(
            c.add_working_seconds(mon, 4 * HOUR + 1800),
            vn(2024, 3, 18, 11, 30)
        );
        assert_eq!(c.add_working_seconds(mon, DAY), vn(2024, 3, 18, 17, 0));
        assert_eq!(
            c.add_working_seconds(mon, DAY + 1),
            vn(2024, 3, 19, 7, 0) + TimeDelta::seconds(1)
        );
        assert_eq!(c.add_working_seconds(mon, 0), mon);
    }

    #[test]
    fn add_over_tet_2024() {
        let c = cal();
        // Wednesday 7 Feb 2024 16:00 + 2 working hours: 1 hour left on Wednesday, then Tết
        // (8–14 Feb), so the second hour is Thursday 15 Feb 07:00–08:00.
        assert_eq!(
            c.add_working_seconds(vn(2024, 2, 7, 16, 0), 2 * HOUR),
            vn(2024, 2, 15, 8, 0)
        );
    }

    #[test]
    fn add_thousand_days_is_fast_and_additive() {
        let c = cal();
        let t = vn(2024, 1, 2, 9, 15);
        let far = c.add_working_seconds(t, 1000 * DAY);
        assert_eq!(c.working_seconds_between(t, far), 1000 * DAY);
        let half = c.add_working_seconds(t, 500 * DAY);
        assert_eq!(c.add_working_seconds(half, 500 * DAY), far);
        // Far beyond the table: weeks are skipped, result is still exact.
        let very_far = c.add_working_seconds(t, 200_000 * DAY);
        assert_eq!(c.working_seconds_between(t, very_far), 200_000 * DAY);
    }

    #[test]
    fn between_counts_working_time_only() {
        let c = cal();
        assert_eq!(
            c.working_seconds_between(vn(2024, 3, 15, 16, 0), vn(2024, 3, 18, 8, 0)),
            2 * HOUR
        );
        assert_eq!(
            c.working_seconds_between(vn(2024, 3, 18, 11, 0), vn(2024, 3, 18, 14, 0)),
            HOUR
        );
        assert_eq!(
            c.working_seconds_between(vn(2024, 3, 18, 14, 0), vn(2024, 3, 18, 11, 0)),
            0
        );
        // The week of 29 April 2024: Mon–Wed off, Thu–Fri worked, Saturday 4 May worked.
        assert_eq!(
            c.working_days_between(date(2024, 4, 29), date(2024, 5, 6)),
            3
        );
    }

    #[test]
    fn versions_name_profile_and_table() {
        let v = cal().versions();
        assert_eq!(v.profile_id, "vn-office-hours-v1");
        assert!(v.holiday_table_version.starts_with("vn-holidays:"));
    }
}
