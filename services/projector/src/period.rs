//! Reporting periods in Vietnam time: a day, a month, a quarter, a year, or a range of days.
//!
//! Read models bucket everything by the Vietnam calendar day an instant falls on, written as
//! the integer `yyyymmdd` (so SQL can compare and range over it, and an operator can read it).
//! A period is then a closed range of such days, and its end is the midnight (UTC+7) after its
//! last day.

use std::fmt;

use chrono::{Datelike, Days, NaiveDate, TimeZone};
use motcua_domain::time::{Instant, to_vietnam, vietnam};

/// A Vietnam calendar day as `yyyymmdd`.
pub type DayNumber = i64;

/// The Vietnam calendar day of an instant.
pub fn day_of(t: Instant) -> DayNumber {
    day_number(to_vietnam(t).date_naive())
}

/// `yyyymmdd` of a date.
pub fn day_number(date: NaiveDate) -> DayNumber {
    i64::from(date.year()) * 10_000 + i64::from(date.month()) * 100 + i64::from(date.day())
}

/// The date of a `yyyymmdd`.
pub fn date_of(day: DayNumber) -> Option<NaiveDate> {
    let year = i32::try_from(day / 10_000).ok()?;
    let month = u32::try_from(day / 100 % 100).ok()?;
    let dom = u32::try_from(day % 100).ok()?;
    NaiveDate::from_ymd_opt(year, month, dom)
}

/// Midnight at the start of `date`, Vietnam time.
pub fn start_of(date: NaiveDate) -> Instant {
    vietnam()
        .from_local_datetime(&date.and_time(chrono::NaiveTime::MIN))
        .single()
        .map(|t| t.with_timezone(&chrono::Utc))
        // UTC+7 has no gaps or folds: every local midnight exists exactly once.
        .unwrap_or(Instant::MIN_UTC)
}

/// What kind of period was asked for, kept for labels and keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodKind {
    Day,
    Month,
    Quarter,
    Year,
    Range,
}

/// A closed range of Vietnam calendar days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Period {
    pub kind: PeriodKind,
    pub first: NaiveDate,
    pub last: NaiveDate,
}

/// Why a period could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a period: {reason}")]
pub struct PeriodError {
    pub input: String,
    pub reason: String,
}

/// The longest range accepted: beyond ten years a report is a mistake, and a bound keeps
/// every query's cost bounded.
const MAX_RANGE_DAYS: i64 = 3_700;

impl Period {
    /// Reads `2026-03-15` (day), `2026-03` (month), `2026-Q1` (quarter), `2026` (year) or
    /// `2026-01-01..2026-06-30` (a range of days, both included).
    pub fn parse(input: &str) -> Result<Self, PeriodError> {
        let error = |reason: &str| PeriodError {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        let text = input.trim();
        if let Some((from, to)) = text.split_once("..") {
            let first = parse_date(from)
                .ok_or_else(|| error("the range's start is not a yyyy-mm-dd date"))?;
            let last =
                parse_date(to).ok_or_else(|| error("the range's end is not a yyyy-mm-dd date"))?;
            if last < first {
                return Err(error("the range ends before it starts"));
            }
            if (last - first).num_days() >= MAX_RANGE_DAYS {
                return Err(error("a range may cover at most ten years"));
            }
            return Ok(Self {
                kind: PeriodKind::Range,
                first,
                last,
            });
        }
        if let Some(date) = parse_date(text) {
            return Ok(Self {
                kind: PeriodKind::Day,
                first: date,
                last: date,
            });
        }
        let parts: Vec<&str> = text.split('-').collect();
        let year = |s: &str| -> Option<i32> {
            (s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
                .filter(|y| (2000..=2100).contains(y))
        };
        let invalid = || {
            error(
                "expected yyyy-mm-dd, yyyy-mm, yyyy-Qn, yyyy or yyyy-mm-dd..yyyy-mm-dd (years 2000-2100)",
            )
        };
        match parts.as_slice() {
            [y] => {
                let y = year(y).ok_or_else(invalid)?;
                Self::months(PeriodKind::Year, y, 1, 12).ok_or_else(invalid)
            }
            [y, q] if q.len() == 2 && (q.starts_with('Q') || q.starts_with('q')) => {
                let y = year(y).ok_or_else(invalid)?;
                let q: u32 = q[1..]
                    .parse()
                    .ok()
                    .filter(|q| (1..=4).contains(q))
                    .ok_or_else(|| error("a quarter is Q1 to Q4"))?;
                Self::months(PeriodKind::Quarter, y, q * 3 - 2, q * 3).ok_or_else(invalid)
            }
            [y, m] if m.len() == 2 => {
                let y = year(y).ok_or_else(invalid)?;
                let m: u32 = m
                    .parse()
                    .ok()
                    .filter(|m| (1..=12).contains(m))
                    .ok_or_else(|| error("a month is 01 to 12"))?;
                Self::months(PeriodKind::Month, y, m, m).ok_or_else(invalid)
            }
            _ => Err(invalid()),
        }
    }

    fn months(kind: PeriodKind, year: i32, first_month: u32, last_month: u32) -> Option<Self> {
        let first = NaiveDate::from_ymd_opt(year, first_month, 1)?;
        let after = if last_month == 12 {
            NaiveDate::from_ymd_opt(year + 1, 1, 1)?
        } else {
            NaiveDate::from_ymd_opt(year, last_month + 1, 1)?
        };
        Some(Self {
            kind,
            first,
            last: after.pred_opt()?,
        })
    }

    /// The day, month, quarter and year that contain `date`: the periods whose figures an
    /// event on that day changes (what the Kafka projection republishes).
    pub fn containing(date: NaiveDate) -> [Self; 4] {
        let (y, m) = (date.year(), date.month());
        let q = (m - 1) / 3 + 1;
        let or_day = |p: Option<Self>| {
            p.unwrap_or(Self {
                kind: PeriodKind::Day,
                first: date,
                last: date,
            })
        };
        [
            Self {
                kind: PeriodKind::Day,
                first: date,
                last: date,
            },
            or_day(Self::months(PeriodKind::Month, y, m, m)),
            or_day(Self::months(PeriodKind::Quarter, y, q * 3 - 2, q * 3)),
            or_day(Self::months(PeriodKind::Year, y, 1, 12)),
        ]
    }

    pub fn first_day(&self) -> DayNumber {
        day_number(self.first)
    }

    pub fn last_day(&self) -> DayNumber {
        day_number(self.last)
    }

    /// The period's start: midnight (UTC+7) at the start of its first day.
    pub fn start(&self) -> Instant {
        start_of(self.first)
    }

    /// The period's end: midnight (UTC+7) after its last day (exclusive).
    pub fn end(&self) -> Instant {
        self.last
            .checked_add_days(Days::new(1))
            .map_or(Instant::MAX_UTC, start_of)
    }
}

fn parse_date(text: &str) -> Option<NaiveDate> {
    let text = text.trim();
    (text.len() == 10)
        .then(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
        .flatten()
        .filter(|d| (2000..=2100).contains(&d.year()))
}

impl fmt::Display for Period {
    /// The label a reader knows the period by, and the one `parse` reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            PeriodKind::Day => write!(f, "{}", self.first.format("%Y-%m-%d")),
            PeriodKind::Month => write!(f, "{}", self.first.format("%Y-%m")),
            PeriodKind::Quarter => write!(
                f,
                "{}-Q{}",
                self.first.year(),
                (self.first.month() - 1) / 3 + 1
            ),
            PeriodKind::Year => write!(f, "{}", self.first.year()),
            PeriodKind::Range => write!(
                f,
                "{}..{}",
                self.first.format("%Y-%m-%d"),
                self.last.format("%Y-%m-%d")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn every_kind_parses_and_prints_back() {
        for (text, first, last) in [
            ("2026-03-15", 20260315, 20260315),
            ("2026-02", 20260201, 20260228),
            ("2024-02", 20240201, 20240229),
            ("2026-Q4", 20261001, 20261231),
            ("2026", 20260101, 20261231),
            ("2026-01-01..2026-06-30", 20260101, 20260630),
        ] {
            let period = Period::parse(text).expect(text);
            assert_eq!(
                (period.first_day(), period.last_day()),
                (first, last),
                "{text}"
            );
            assert_eq!(period.to_string(), text);
        }
    }

    #[test]
    fn bad_periods_say_why() {
        for (text, reason) in [
            ("2026-13", "01 to 12"),
            ("2026-Q5", "Q1 to Q4"),
            ("26-03", "expected"),
            ("", "expected"),
            ("2026-03-32", "expected"),
            ("2026-06-30..2026-01-01", "ends before"),
            ("2000-01-01..2020-01-01", "ten years"),
            ("1999", "expected"),
        ] {
            let error = Period::parse(text).expect_err(text);
            assert!(error.to_string().contains(reason), "{text}: {error}");
        }
    }

    #[test]
    fn periods_start_and_end_at_vietnam_midnight() {
        let period = Period::parse("2026-03").expect("month");
        assert_eq!(
            period.start(),
            Utc.with_ymd_and_hms(2026, 2, 28, 17, 0, 0)
                .single()
                .expect("t")
        );
        assert_eq!(
            period.end(),
            Utc.with_ymd_and_hms(2026, 3, 31, 17, 0, 0)
                .single()
                .expect("t")
        );
        // 23:30 UTC on 31 March is 06:30 on 1 April in Vietnam.
        assert_eq!(
            day_of(
                Utc.with_ymd_and_hms(2026, 3, 31, 23, 30, 0)
                    .single()
                    .expect("t")
            ),
            20260401
        );
        assert_eq!(date_of(20260401), NaiveDate::from_ymd_opt(2026, 4, 1));
    }
}
