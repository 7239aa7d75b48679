//! How far the holiday tables reach, seen from the node's clock. A due date computed in a
//! year without a table ignores that year's holidays (a dossier due on a day off), so the node
//! refuses to start in such a year, warns months ahead when next year's table is missing, and
//! publishes the last covered day as a metric an alert can watch.

use std::sync::Arc;
use std::time::Duration;

use chrono::{Datelike, NaiveDate};
use motcua_domain::calendar::WorkingCalendar;
use motcua_domain::clock::Clock;
use motcua_domain::time::{Instant, to_vietnam};
use tokio_util::sync::CancellationToken;

/// From this month on (October), a missing table for next year is warned about.
const WARN_FROM_MONTH: u32 = 10;

/// What the tables say about the node's current Vietnam date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coverage {
    /// The current year and, if it is October or later, the next one are covered.
    Covered { last_day: NaiveDate },
    /// The current year is covered but the next one, which begins within three months, is not.
    NextYearMissing { year: i32, last_day: NaiveDate },
    /// The current year has no table.
    CurrentYearMissing { year: i32 },
}

/// The coverage at `now` (Vietnam date of the node's clock).
pub fn coverage(calendar: &WorkingCalendar, now: Instant) -> Coverage {
    let today = to_vietnam(now).date_naive();
    let year = today.year();
    let Some(last_year) = calendar.holidays().covered_through(year) else {
        return Coverage::CurrentYearMissing { year };
    };
    let last_day = NaiveDate::from_ymd_opt(last_year, 12, 31).unwrap_or(today);
    if last_year == year && today.month() >= WARN_FROM_MONTH {
        Coverage::NextYearMissing {
            year: year + 1,
            last_day,
        }
    } else {
        Coverage::Covered { last_day }
    }
}

fn how_to_add(year: i32) -> String {
    format!(
        "add a file {year}.toml to a directory given with --holiday-dir / MOTCUA_HOLIDAY_DIR \
         (it is laid over the built-in tables; the format is in \
         services/domain/data/holidays/README.md)"
    )
}

/// Refuses to run a node whose current year has no holiday table, and warns when next
/// year's is missing from October on.
pub fn check_at_start(calendar: &WorkingCalendar, now: Instant) -> anyhow::Result<()> {
    match coverage(calendar, now) {
        Coverage::CurrentYearMissing { year } => anyhow::bail!(
            "there is no holiday table for {year}, the current year by the server's clock \
             ({} Vietnam time): due dates would ignore its holidays and days off. To start, {}",
            to_vietnam(now).format("%Y-%m-%d %H:%M"),
            how_to_add(year)
        ),
        Coverage::NextYearMissing { year, last_day } => {
            warn_missing(year, last_day);
            Ok(())
        }
        Coverage::Covered { .. } => Ok(()),
    }
}

fn warn_missing(year: i32, last_day: NaiveDate) {
    tracing::warn!(
        missing_year = year,
        %last_day,
        "no holiday table for {year}: due dates that run into it are marked provisional; {}",
        how_to_add(year)
    );
}

/// Keeps `motcua_holiday_table_last_covered_day` (the end of the last covered Vietnam day,
/// Unix seconds) set and repeats the warning once a day while next year's table is missing.
pub fn spawn_watch(
    calendar: Arc<WorkingCalendar>,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut warned_on: Option<NaiveDate> = None;
        loop {
            let now = clock.now();
            let today = to_vietnam(now).date_naive();
            let last_day = match coverage(&calendar, now) {
                Coverage::Covered { last_day } => Some(last_day),
                Coverage::NextYearMissing { year, last_day } => {
                    if warned_on != Some(today) {
                        if warned_on.is_some() {
                            warn_missing(year, last_day);
                        }
                        warned_on = Some(today);
                    }
                    Some(last_day)
                }
                Coverage::CurrentYearMissing { year } => {
                    if warned_on != Some(today) {
                        tracing::error!(
                            year,
                            "the current year has no holiday table: every new due date is \
                             provisional; {}",
                            how_to_add(year)
                        );
                        warned_on = Some(today);
                    }
                    None
                }
            };
            let end_of_last_day = last_day
                .and_then(|d| d.succ_opt())
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .and_then(|t| {
                    use chrono::TimeZone;
                    motcua_domain::time::vietnam()
                        .from_local_datetime(&t)
                        .single()
                })
                .map_or(0.0, |t| t.timestamp() as f64);
            metrics::gauge!("motcua_holiday_table_last_covered_day").set(end_of_last_day);
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(Duration::from_secs(600)) => {}
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn vn(y: i32, m: u32, d: u32) -> Instant {
        motcua_domain::time::vietnam()
            .with_ymd_and_hms(y, m, d, 9, 0, 0)
            .single()
            .expect("a time")
            .with_timezone(&Utc)
    }

    #[test]
    fn the_tables_reach_is_judged_by_the_vietnam_date() {
        let calendar = WorkingCalendar::standard();
        let end = NaiveDate::from_ymd_opt(2027, 12, 31).expect("a date");
        assert_eq!(
            coverage(&calendar, vn(2026, 12, 6)),
            Coverage::Covered { last_day: end }
        );
        assert_eq!(
            coverage(&calendar, vn(2027, 9, 30)),
            Coverage::Covered { last_day: end }
        );
        assert_eq!(
            coverage(&calendar, vn(2027, 10, 1)),
            Coverage::NextYearMissing {
                year: 2028,
                last_day: end
            }
        );
        assert_eq!(
            coverage(&calendar, vn(2028, 1, 1)),
            Coverage::CurrentYearMissing { year: 2028 }
        );
        // 31 December 2027 17:30 UTC is already 1 January 2028 in Vietnam.
        let new_year_in_vietnam = Utc.with_ymd_and_hms(2027, 12, 31, 17, 30, 0).unwrap();
        let error = check_at_start(&calendar, new_year_in_vietnam)
            .expect_err("no table for 2028")
            .to_string();
        assert!(
            error.contains("2028") && error.contains("--holiday-dir"),
            "{error}"
        );
        assert!(check_at_start(&calendar, vn(2022, 4, 29)).is_err());
        assert!(
            check_at_start(&calendar, vn(2027, 11, 2)).is_ok(),
            "a warning only"
        );
    }
}
