//! Property tests for the §4 classification: a later end never makes a dossier less late.

use std::sync::LazyLock;

use chrono::{TimeDelta, TimeZone, Utc};
use motcua_domain::calendar::WorkingCalendar;
use motcua_domain::due_date::DueDateRules;
use motcua_domain::due_date::{ProcessingTime, TimeUnit};
use motcua_domain::outcome::{
    Outcome, OutcomeFacts, SupplementEpisode, classify, classify_with_rules, overdue_from,
};
use motcua_domain::time::Instant;
use proptest::prelude::*;

static CALENDAR: LazyLock<WorkingCalendar> = LazyLock::new(WorkingCalendar::standard);

/// 2024-01-01 00:00 UTC.
const BASE: i64 = 1_704_067_200;
/// Offsets up to about 120 days, in minutes.
const SPAN_MINUTES: i64 = 120 * 24 * 60;

fn at(minutes: i64) -> Instant {
    Utc.timestamp_opt(BASE + minutes * 60, 0)
        .single()
        .expect("in range")
}

fn episode() -> impl Strategy<Value = SupplementEpisode> {
    (0..SPAN_MINUTES, proptest::option::of(0i64..20_000)).prop_map(|(req, wait)| {
        SupplementEpisode {
            requested_at: at(req),
            received_at: wait.map(|w| at(req + w)),
        }
    })
}

fn legal_max() -> impl Strategy<Value = Option<ProcessingTime>> {
    proptest::option::of(
        (
            prop_oneof![
                Just(TimeUnit::WorkingHours),
                Just(TimeUnit::WorkingDays),
                Just(TimeUnit::CalendarDays),
                Just(TimeUnit::Months),
            ],
            0u32..3_000,
        )
            .prop_map(|(u, h)| ProcessingTime::new(u, h)),
    )
}

fn facts() -> impl Strategy<Value = OutcomeFacts> {
    (
        0..SPAN_MINUTES / 4,
        proptest::option::of(0..SPAN_MINUTES),
        legal_max(),
        proptest::collection::vec(episode(), 0..3),
    )
        .prop_map(|(accepted, due, legal_max, mut supplements)| {
            supplements.sort_by_key(|s| s.requested_at);
            OutcomeFacts {
                accepted_at: Some(at(accepted)),
                due_at: due.map(|d| at(accepted + d)),
                legal_max,
                supplements,
                ended_at: None,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn a_later_end_never_turns_late_into_on_time(
        base in facts(),
        e1 in 0..SPAN_MINUTES,
        later in 0..SPAN_MINUTES,
        evaluate in 0..2 * SPAN_MINUTES,
    ) {
        let evaluate_at = at(evaluate);
        let first = OutcomeFacts { ended_at: Some(at(e1)), ..base.clone() };
        let second = OutcomeFacts { ended_at: Some(at(e1) + TimeDelta::minutes(later)), ..base };
        let o1 = classify(&CALENDAR, &first, evaluate_at);
        let o2 = classify(&CALENDAR, &second, evaluate_at);
        if o1.is_late() {
            prop_assert!(o2.is_late(), "{o1:?} then {o2:?}");
        }
        if o1 == Outcome::Late {
            prop_assert!(!o2.is_on_time(), "{o1:?} then {o2:?}");
        }
    }

    #[test]
    fn a_later_evaluation_never_turns_overdue_into_on_time(
        base in facts(),
        end in proptest::option::of(0..SPAN_MINUTES),
        e1 in 0..SPAN_MINUTES,
        later in 0..SPAN_MINUTES,
    ) {
        let f = OutcomeFacts { ended_at: end.map(at), ..base };
        let o1 = classify(&CALENDAR, &f, at(e1));
        let o2 = classify(&CALENDAR, &f, at(e1 + later));
        if o1.is_late() {
            prop_assert!(o2.is_late(), "{o1:?} then {o2:?}");
        }
    }

    #[test]
    fn finished_dossiers_are_judged_once(
        base in facts(),
        end in 0..SPAN_MINUTES,
        extra in 0..SPAN_MINUTES,
    ) {
        // Once the end is inside the evaluation window, moving the window later changes nothing.
        let f = OutcomeFacts { ended_at: Some(at(end)), ..base };
        let evaluate = at(end).max(f.accepted_at.expect("accepted"));
        let o1 = classify(&CALENDAR, &f, evaluate);
        let o2 = classify(&CALENDAR, &f, evaluate + TimeDelta::minutes(extra));
        prop_assert_eq!(o1, o2);
        prop_assert!(o1.is_finished());
    }

    #[test]
    fn overdue_from_is_exactly_when_the_judgement_turns_late(
        base in facts(),
        now in 0..SPAN_MINUTES,
        probes in proptest::collection::vec(0i64..40 * 24 * 3600, 1..24),
    ) {
        // Only what is known at `now`: the dossier is accepted, and requests and receipts after
        // it have not happened yet.
        let now = at(now).max(base.accepted_at.expect("accepted"));
        let supplements = base
            .supplements
            .iter()
            .filter(|s| s.requested_at <= now)
            .map(|s| SupplementEpisode {
                requested_at: s.requested_at,
                received_at: s.received_at.filter(|&r| r <= now),
            })
            .collect();
        let f = OutcomeFacts { supplements, ..base };
        let rules = DueDateRules::default();
        let from = overdue_from(&CALENDAR, &rules, &f, now);
        for probe in probes {
            let t = now + TimeDelta::seconds(probe + 1);
            let late = classify_with_rules(&CALENDAR, &rules, &f, t).is_late();
            prop_assert_eq!(late, from.is_some_and(|l| t > l), "at {} with L = {:?}", t, from);
            // Exactly at the edge: late one second after L, not at L.
            if let Some(l) = from.filter(|&l| l > now) {
                prop_assert!(!classify_with_rules(&CALENDAR, &rules, &f, l).is_late());
                prop_assert!(classify_with_rules(&CALENDAR, &rules, &f, l + TimeDelta::seconds(1)).is_late());
            }
        }
    }
}
