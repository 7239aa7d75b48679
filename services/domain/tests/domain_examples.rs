//! docs/domain.md §3 examples through the public API, and extreme inputs that must not panic.

use chrono::{Datelike, NaiveDate, TimeZone, Utc, Weekday};
use motcua_domain::calendar::WorkingCalendar;
use motcua_domain::due_date::{DueDateRules, ProcessingTime, TimeUnit, compute_due};
use motcua_domain::time::{Instant, vietnam};

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

#[test]
fn the_2024_table_is_exactly_the_domain_example() {
    // docs/domain.md §3: "in 2024 offices closed 8–14 February for Tết, on 18 April, on 29 April to
    // 1 May with Saturday 4 May worked instead, and on 2–3 September" (plus 1 January).
    let cal = WorkingCalendar::standard();
    let closed_weekdays: Vec<NaiveDate> = date(2024, 1, 1)
        .iter_days()
        .take_while(|d| d.year() == 2024)
        .filter(|d| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun))
        .filter(|d| !cal.is_working_day(*d))
        .collect();
    let expected = vec![
        date(2024, 1, 1),
        date(2024, 2, 8),
        date(2024, 2, 9),
        date(2024, 2, 12),
        date(2024, 2, 13),
        date(2024, 2, 14),
        date(2024, 4, 18),
        date(2024, 4, 29),
        date(2024, 4, 30),
        date(2024, 5, 1),
        date(2024, 9, 2),
        date(2024, 9, 3),
    ];
    assert_eq!(closed_weekdays, expected);
    let worked_weekends: Vec<NaiveDate> = date(2024, 1, 1)
        .iter_days()
        .take_while(|d| d.year() == 2024)
        .filter(|d| matches!(d.weekday(), Weekday::Sat | Weekday::Sun))
        .filter(|d| cal.is_working_day(*d))
        .collect();
    assert_eq!(worked_weekends, vec![date(2024, 5, 4)]);
}

#[test]
fn every_shipped_year_has_new_year_and_national_day() {
    let cal = WorkingCalendar::standard();
    for year in 2024..=2027 {
        assert!(cal.holidays().is_day_off(date(year, 1, 1)), "{year}-01-01");
        assert!(cal.holidays().is_day_off(date(year, 9, 2)), "{year}-09-02");
        assert!(cal.holidays().is_day_off(date(year, 4, 30)), "{year}-04-30");
        // Five working weekdays of Tết (the Labour Code's five days, weekends compensated).
        let tet = cal
            .holidays()
            .days_off()
            .filter(|e| e.date.year() == year && e.reason.contains("Tết Nguyên đán"))
            .filter(|e| !matches!(e.date.weekday(), Weekday::Sat | Weekday::Sun))
            .count();
        let swapped = usize::from(year == 2025); // 27 Jan 2025 is a swapped day, not a Tết day.
        assert_eq!(tet + swapped, 5, "Tết {year}");
    }
}

#[test]
fn a_thousand_working_days() {
    let cal = WorkingCalendar::standard();
    let accepted = vn(2024, 3, 18, 9, 0);
    let due = compute_due(
        &cal,
        accepted,
        Some(ProcessingTime::working_days_hundredths(100_000)),
        &DueDateRules::default(),
    )
    .expect("has a due date");
    assert_eq!(cal.working_seconds_between(accepted, due), 1_000 * 28_800);
    assert!(cal.is_working_instant(due));
}

#[test]
fn extreme_inputs_saturate_instead_of_panicking() {
    let cal = WorkingCalendar::standard();
    let t = vn(2024, 3, 18, 9, 0);
    let far = cal.add_working_seconds(t, i64::MAX);
    assert!(far > vn(9999, 1, 1, 0, 0));
    for unit in [
        TimeUnit::WorkingHours,
        TimeUnit::WorkingDays,
        TimeUnit::CalendarDays,
        TimeUnit::Months,
    ] {
        for rules in [DueDateRules::default(), {
            let mut r = DueDateRules::default();
            r.calendar_days.skip_holidays = true;
            r
        }] {
            let due = compute_due(&cal, t, Some(ProcessingTime::new(unit, u32::MAX)), &rules)
                .expect("has a due date");
            assert!(due > t, "{unit}");
        }
    }
    assert_eq!(cal.add_working_seconds(t, -5), t);
    assert_eq!(cal.working_seconds_between(t, t), 0);
    assert!(cal.working_seconds_between(vn(1900, 1, 1, 0, 0), vn(3000, 1, 1, 0, 0)) > 0);
}
