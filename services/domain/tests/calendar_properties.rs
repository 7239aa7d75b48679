//! Property tests for working-time arithmetic and due dates (docs/domain.md §3).
//!
//! Instants are drawn from late 2023 to mid 2028, so they cover the shipped holiday tables
//! (2024–2027), the weeks around Tết, and a year beyond the tables (weekends only).

use std::sync::LazyLock;

use chrono::{NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use motcua_domain::calendar::{HolidayTable, WorkingCalendar, WorkingTimeProfile};
use motcua_domain::due_date::{
    CalendarDayRule, DueDateRules, ProcessingTime, SupplementRule, TimeUnit, compute_due,
};
use motcua_domain::time::Instant;
use proptest::prelude::*;

/// The standard calendar, and an unusual one (Monday–Saturday, touching segments, odd hours) to
/// make sure nothing depends on the standard profile's shape.
static CALENDARS: LazyLock<Vec<WorkingCalendar>> = LazyLock::new(|| {
    let hm = |h, m| NaiveTime::from_hms_opt(h, m, 0).expect("valid time");
    let odd = WorkingTimeProfile::new(
        "test-odd-hours",
        &[
            (hm(6, 45), hm(9, 10)),
            (hm(9, 10), hm(11, 0)),
            (hm(14, 5), hm(18, 20)),
        ],
        &[
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
        ],
    )
    .expect("valid profile");
    vec![
        WorkingCalendar::standard(),
        WorkingCalendar::new(odd, HolidayTable::builtin()),
        WorkingCalendar::new(WorkingTimeProfile::standard(), HolidayTable::empty()),
    ]
});

/// 2023-12-20 00:00 UTC.
const FROM: i64 = 1_703_030_400;
/// 2028-06-30 00:00 UTC.
const TO: i64 = 1_845_849_600;

fn instant() -> impl Strategy<Value = Instant> {
    (FROM..TO).prop_map(|s| Utc.timestamp_opt(s, 0).single().expect("in range"))
}

/// Instants on a 15-minute grid, so segment boundaries (07:00, 11:30, 17:00) are hit often.
fn grid_instant() -> impl Strategy<Value = Instant> {
    (FROM / 900..TO / 900).prop_map(|q| Utc.timestamp_opt(q * 900, 0).single().expect("in range"))
}

fn any_instant() -> impl Strategy<Value = Instant> {
    prop_oneof![instant(), grid_instant()]
}

fn calendar() -> impl Strategy<Value = &'static WorkingCalendar> {
    (0..CALENDARS.len()).prop_map(|i| &CALENDARS[i])
}

fn unit() -> impl Strategy<Value = TimeUnit> {
    prop_oneof![
        Just(TimeUnit::WorkingHours),
        Just(TimeUnit::WorkingDays),
        Just(TimeUnit::CalendarDays),
        Just(TimeUnit::Months),
    ]
}

fn processing_time() -> impl Strategy<Value = ProcessingTime> {
    (unit(), 0u32..6_000).prop_map(|(unit, h)| ProcessingTime::new(unit, h))
}

fn rules() -> impl Strategy<Value = DueDateRules> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(skip, roll, restart)| DueDateRules {
        calendar_days: CalendarDayRule {
            skip_holidays: skip,
            roll_forward_to_working_day: roll,
        },
        supplement: if restart {
            SupplementRule::Restart
        } else {
            SupplementRule::Pause
        },
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn working_unit_due_dates_fall_inside_working_time(
        cal in calendar(),
        accepted in any_instant(),
        working_days in any::<bool>(),
        hundredths in 0u32..40_000,
        rules in rules(),
    ) {
        let unit = if working_days { TimeUnit::WorkingDays } else { TimeUnit::WorkingHours };
        let due = compute_due(cal, accepted, Some(ProcessingTime::new(unit, hundredths)), &rules)
            .expect("has a due date");
        prop_assert!(cal.is_working_instant(due), "due {due} not in working time");
        prop_assert!(due >= accepted);
    }

    #[test]
    fn adding_n_days_twice_equals_adding_2n_days(
        cal in calendar(),
        t in any_instant(),
        n in 0i64..600,
    ) {
        let day = cal.profile().working_seconds_per_day();
        let twice = cal.add_working_seconds(cal.add_working_seconds(t, n * day), n * day);
        prop_assert_eq!(twice, cal.add_working_seconds(t, 2 * n * day));
    }

    #[test]
    fn working_time_addition_is_additive(
        cal in calendar(),
        t in any_instant(),
        a in 0i64..3_000_000,
        b in 0i64..3_000_000,
    ) {
        prop_assert_eq!(
            cal.add_working_seconds(cal.add_working_seconds(t, a), b),
            cal.add_working_seconds(t, a + b)
        );
    }

    #[test]
    fn later_acceptance_never_gives_an_earlier_due_date(
        cal in calendar(),
        t1 in any_instant(),
        delta in prop_oneof![0i64..3_600, 0i64..864_000, 0i64..40_000_000],
        time in processing_time(),
        rules in rules(),
    ) {
        let t2 = t1 + chrono::TimeDelta::seconds(delta);
        let d1 = compute_due(cal, t1, Some(time), &rules).expect("has a due date");
        let d2 = compute_due(cal, t2, Some(time), &rules).expect("has a due date");
        prop_assert!(d1 <= d2, "{time}: accepted {t1} → {d1}, later {t2} → {d2}");
    }

    #[test]
    fn between_inverts_add_from_working_time(
        cal in calendar(),
        t in any_instant(),
        s in prop_oneof![0i64..30_000, 0i64..30_000_000],
    ) {
        let start = cal.next_working_start(t);
        prop_assert!(cal.is_working_instant(start));
        prop_assert_eq!(cal.working_seconds_between(start, cal.add_working_seconds(start, s)), s);
        // From any instant, too.
        prop_assert_eq!(cal.working_seconds_between(t, cal.add_working_seconds(t, s)), s);
    }

    #[test]
    fn add_returns_the_earliest_instant(
        cal in calendar(),
        t in any_instant(),
        s in 1i64..2_000_000,
    ) {
        let due = cal.add_working_seconds(t, s);
        prop_assert!(cal.is_working_instant(due));
        let just_before = due - chrono::TimeDelta::seconds(1);
        prop_assert!(cal.working_seconds_between(t, just_before) < s);
    }

    #[test]
    fn working_days_between_matches_a_day_by_day_count(
        cal in calendar(),
        start in 0i64..1_650,
        len in 0i64..120,
    ) {
        let base = NaiveDate::from_ymd_opt(2023, 12, 20).expect("valid date");
        let from = base + chrono::Days::new(u64::try_from(start).expect("non-negative"));
        let to = from + chrono::Days::new(u64::try_from(len).expect("non-negative"));
        let counted = from
            .iter_days()
            .take_while(|d| *d < to)
            .filter(|d| cal.is_working_day(*d))
            .count() as i64;
        prop_assert_eq!(cal.working_days_between(from, to), counted);
    }

    #[test]
    fn processing_time_display_parses_back(time in processing_time()) {
        prop_assert_eq!(time.to_string().parse::<ProcessingTime>(), Ok(time));
    }
}
