//! Time, with the manual clock: due dates at awkward moments (docs/domain.md §3) and outcomes
//! (§4), including the overdue list.
//!
//! Every expected due date is computed by hand in the comment above it. The standard profile:
//! offices work 07:00-11:30 and 13:30-17:00, Monday to Friday, Vietnam time; a working day is
//! 8 h; the clock starts at the next working instant after acceptance; a due date is the
//! earliest instant the time is used up (so a whole day ends at 17:00, not the next 07:00).

use chrono::Duration;
use motcua_domain::time::Instant;
use motcua_proto::v1 as pb;
use motcua_proto::v1::DossierStatus as S;
use motcua_tests::*;

/// Receives `procedure` at `at` on a fresh app and returns the due date it got.
async fn due_when_accepted_at(at: Instant, procedure: &str) -> Instant {
    let app = spawn_app_at(at).await;
    let response = app.receive(procedure).await;
    let received = expect_payload!(only_event(&response), Received);
    assert_eq!(time_of(&received.accepted_at), at);
    let due = time_of(&received.due_at);
    assert_eq!(time_of(&app.get(&response.dossier_id).await.due_at), due);
    due
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_friday_afternoon_is_due_monday() {
    // Friday 8 March 2024 16:30, 1 working day (8 h): Friday 16:30-17:00 (0.5 h), then Monday
    // 11 March 07:00-11:30 (5 h) and 13:30-16:30 (8 h): Monday 16:30.
    assert_eq!(
        due_when_accepted_at(vn(2024, 3, 8, 16, 30), P_ONE_DAY).await,
        vn(2024, 3, 11, 16, 30)
    );
    // Friday 17:30, after office hours: counts from Monday 07:00; the whole day is used up at
    // 17:00 the same Monday.
    assert_eq!(
        due_when_accepted_at(vn(2024, 3, 8, 17, 30), P_ONE_DAY).await,
        vn(2024, 3, 11, 17, 0)
    );
    // Saturday 9 March: also from Monday 07:00.
    assert_eq!(
        due_when_accepted_at(vn(2024, 3, 9, 10, 0), P_FOUR_HOURS).await,
        vn(2024, 3, 11, 11, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_during_lunch_counts_from_13_30() {
    // Tuesday 5 March 12:00 counts from 13:30. 1 working day: 13:30-17:00 (3.5 h), Wednesday
    // 07:00-11:30 (8 h): Wednesday 6 March 11:30.
    assert_eq!(
        due_when_accepted_at(vn(2024, 3, 5, 12, 0), P_ONE_DAY).await,
        vn(2024, 3, 6, 11, 30)
    );
    // 4 working hours: 13:30-17:00 (3.5 h), then Wednesday 07:00-07:30.
    assert_eq!(
        due_when_accepted_at(vn(2024, 3, 5, 12, 0), P_FOUR_HOURS).await,
        vn(2024, 3, 6, 7, 30)
    );
    // At 11:30 sharp the morning segment has just ended: 0 h left in it; 13:30 + 4 h = 17:30
    // does not exist, so 13:30-17:00 (3.5 h) and Wednesday 07:00-07:30.
    assert_eq!(
        due_when_accepted_at(vn(2024, 3, 5, 11, 30), P_FOUR_HOURS).await,
        vn(2024, 3, 6, 7, 30)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_during_tet_2024_counts_from_15_february() {
    // Offices closed 8-14 February 2024 (Thursday to Wednesday, with the weekend inside).
    // Accepted Friday 9 February 10:00: the clock starts Thursday 15 February 07:00.
    // 4 working hours: 15 February 11:00. 1 working day: 07:00-11:30 + 13:30-17:00 = 17:00.
    assert_eq!(
        due_when_accepted_at(vn(2024, 2, 9, 10, 0), P_FOUR_HOURS).await,
        vn(2024, 2, 15, 11, 0)
    );
    assert_eq!(
        due_when_accepted_at(vn(2024, 2, 9, 10, 0), P_ONE_DAY).await,
        vn(2024, 2, 15, 17, 0)
    );
    // Accepted after hours on the last day before Tết (Wednesday 7 February 17:30): same start.
    assert_eq!(
        due_when_accepted_at(vn(2024, 2, 7, 17, 30), P_FOUR_HOURS).await,
        vn(2024, 2, 15, 11, 0)
    );
    // Straddling Tết: Wednesday 7 February 15:00, 1 working day: 2 h before Tết, then
    // 15 February 07:00-11:30 (6.5 h) and 13:30-15:00.
    assert_eq!(
        due_when_accepted_at(vn(2024, 2, 7, 15, 0), P_ONE_DAY).await,
        vn(2024, 2, 15, 15, 0)
    );
    // 5 working days (1.002804 at the counter) from Tết: Thursday 15, Friday 16, Monday 19,
    // Tuesday 20, Wednesday 21 February, ending 17:00.
    assert_eq!(
        due_when_accepted_at(vn(2024, 2, 12, 9, 0), P_DRIVING).await,
        vn(2024, 2, 21, 17, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worked_saturday_4_may_2024_and_the_days_off_around_it() {
    // Friday 3 May 16:00, 1 working day: Friday 1 h, then Saturday 4 May is worked (swapped
    // for Monday 29 April): 07:00-11:30 (5.5 h), 13:30-16:00 (8 h).
    assert_eq!(
        due_when_accepted_at(vn(2024, 5, 3, 16, 0), P_ONE_DAY).await,
        vn(2024, 5, 4, 16, 0)
    );
    // Accepted on the worked Saturday itself, 10:00: Saturday 1.5 h + 3.5 h = 5 h, Sunday off,
    // Monday 6 May 07:00-10:00.
    assert_eq!(
        due_when_accepted_at(vn(2024, 5, 4, 10, 0), P_ONE_DAY).await,
        vn(2024, 5, 6, 10, 0)
    );
    // Friday 26 April 16:00: Friday 1 h; 27-28 weekend; 29 April (swapped), 30 April and
    // 1 May off; Thursday 2 May 07:00-11:30 (5.5 h) and 13:30-16:00 (8 h).
    assert_eq!(
        due_when_accepted_at(vn(2024, 4, 26, 16, 0), P_ONE_DAY).await,
        vn(2024, 5, 2, 16, 0)
    );
    // Hùng Kings' day, Thursday 18 April: Wednesday 17 April 16:00 + 1 day = Wednesday 1 h,
    // Friday 19 April 07:00-11:30 (5.5 h), 13:30-16:00.
    assert_eq!(
        due_when_accepted_at(vn(2024, 4, 17, 16, 0), P_ONE_DAY).await,
        vn(2024, 4, 19, 16, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calendar_day_and_month_procedures() {
    // 15 calendar days (1.009994) from Monday 4 March: the last day is 19 March (Tuesday), due
    // at the end of its office hours.
    assert_eq!(
        due_when_accepted_at(vn(2024, 3, 4, 8, 0), "1.009994").await,
        vn(2024, 3, 19, 17, 0)
    );
    // From Friday 8 March the last day is Saturday 23 March: rolled to Monday 25 March.
    assert_eq!(
        due_when_accepted_at(vn(2024, 3, 8, 8, 0), "1.009994").await,
        vn(2024, 3, 25, 17, 0)
    );
    // 2 months (1.000105) from Monday 4 March: 4 May, a Saturday, but a worked one in 2024, so
    // it does not roll.
    assert_eq!(
        due_when_accepted_at(vn(2024, 3, 4, 8, 0), "1.000105").await,
        vn(2024, 5, 4, 17, 0)
    );
}

/// A 1-working-day dossier accepted Monday 4 March 08:00 (due Tuesday 08:00), resolved at
/// `resolved_at`; its outcome seen a week later.
async fn outcome_when_resolved_at(app: &TestApp, resolved_at: Instant) -> pb::Outcome {
    app.set_time(default_start());
    let id = app.receive(P_ONE_DAY).await.dossier_id;
    app.set_time(resolved_at);
    app.ok(Cmd::Resolve, &id).await;
    app.set_time(vn(2024, 3, 11, 9, 0));
    let dossier = app.get(&id).await;
    assert_eq!(time_of(&dossier.ended_at), resolved_at);
    dossier.outcome()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_on_time_and_late() {
    let app = spawn_app().await;
    use pb::Outcome::{Early, Late, OnTime};
    for (resolved_at, expected) in [
        // Before the due date's day.
        (vn(2024, 3, 4, 15, 0), Early),
        (vn(2024, 3, 4, 23, 59), Early),
        // On the due day, at or before the due instant.
        (vn(2024, 3, 5, 6, 0), OnTime),
        (vn(2024, 3, 5, 7, 30), OnTime),
        (vn(2024, 3, 5, 8, 0), OnTime),
        // After it.
        (vn(2024, 3, 5, 8, 1), Late),
        (vn(2024, 3, 6, 9, 0), Late),
    ] {
        assert_eq!(
            outcome_when_resolved_at(&app, resolved_at).await,
            expected,
            "resolved at {resolved_at}"
        );
    }
    // Other terminal statuses end processing too: withdrawn after the due date is late.
    app.set_time(default_start());
    let id = app.receive(P_ONE_DAY).await.dossier_id;
    app.set_time(vn(2024, 3, 5, 9, 0));
    app.ok(Cmd::Withdraw, &id).await;
    assert_eq!(app.get(&id).await.outcome(), Late);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_dossier_becomes_overdue_after_its_due_date() {
    let app = spawn_app().await;
    let id = app.receive(P_ONE_DAY).await.dossier_id;
    for (now, expected) in [
        (vn(2024, 3, 4, 17, 0), pb::Outcome::InProgress),
        (vn(2024, 3, 5, 8, 0), pb::Outcome::InProgress),
        (vn(2024, 3, 5, 8, 1), pb::Outcome::InProgressOverdue),
    ] {
        app.set_time(now);
        assert_eq!(app.get(&id).await.outcome(), expected, "at {now}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asked_to_supplement_twice_is_late() {
    let app = spawn_app().await;
    // 10 working days, due Monday 18 March 08:00; both supplements answered within minutes.
    let id = app.receive(P_TEN_DAYS).await.dossier_id;
    for _ in 0..2 {
        app.advance(Duration::minutes(10));
        app.ok(Cmd::RequestSupplement, &id).await;
        app.advance(Duration::minutes(10));
        app.ok(Cmd::ReceiveSupplement, &id).await;
    }
    let dossier = app.get(&id).await;
    assert_eq!(dossier.supplement_requests, 2);
    assert_eq!(dossier.status(), S::Accepted);
    assert_eq!(
        dossier.outcome(),
        pb::Outcome::InProgressOverdue,
        "already counted late while unfinished"
    );
    app.advance(Duration::hours(1));
    app.ok(Cmd::Resolve, &id).await;
    let dossier = app.get(&id).await;
    assert!(time_of(&dossier.ended_at) < time_of(&dossier.due_at));
    assert_eq!(dossier.outcome(), pb::Outcome::Late);

    // One supplement only, resolved as quickly: early.
    app.set_time(default_start());
    let once = app.receive(P_TEN_DAYS).await.dossier_id;
    app.ok(Cmd::RequestSupplement, &once).await;
    app.ok(Cmd::ReceiveSupplement, &once).await;
    app.ok(Cmd::Resolve, &once).await;
    assert_eq!(app.get(&once).await.outcome(), pb::Outcome::Early);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pause_rule_keeps_a_dossier_on_time_across_the_wait() {
    let app = spawn_app().await;
    // Due Tuesday 5 March 08:00. Asked Monday 09:00, answered Wednesday 6 March 09:00: paused
    // 16 working hours (Monday 09:00-11:30 + 13:30-17:00 = 6 h, Tuesday 8 h, Wednesday
    // 07:00-09:00 2 h). Tuesday 08:00 + 16 h: Tuesday 08:00-11:30 + 13:30-17:00 = 7 h,
    // Wednesday 8 h (15 h), Thursday 07:00-08:00.
    let id = app.receive(P_ONE_DAY).await.dossier_id;
    app.set_time(vn(2024, 3, 4, 9, 0));
    app.ok(Cmd::RequestSupplement, &id).await;
    app.set_time(vn(2024, 3, 6, 9, 0));
    app.ok(Cmd::ReceiveSupplement, &id).await;
    let dossier = app.get(&id).await;
    assert_eq!(time_of(&dossier.due_at), vn(2024, 3, 7, 8, 0));
    assert_eq!(dossier.outcome(), pb::Outcome::InProgress);
    // Without the pause it would be two days late; with it, resolved on the due day in time.
    app.set_time(vn(2024, 3, 7, 7, 30));
    app.ok(Cmd::Resolve, &id).await;
    assert_eq!(app.get(&id).await.outcome(), pb::Outcome::OnTime);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_procedure_without_a_due_date_is_judged_against_its_legal_maximum() {
    let app = spawn_app().await;
    // 2.001157: no due date, legal maximum 5 working days.
    let quick = app.receive(P_NO_DUE).await.dossier_id;
    let slow = app.receive(P_NO_DUE).await.dossier_id;
    assert!(app.get(&quick).await.due_at.is_none());
    app.set_time(vn(2024, 3, 7, 10, 0));
    app.ok(Cmd::Resolve, &quick).await;
    assert_eq!(app.get(&quick).await.outcome(), pb::Outcome::Early);
    // Monday 4 March 08:00 + 5 working days = Monday 11 March 08:00; still open at 09:00.
    app.set_time(vn(2024, 3, 11, 9, 0));
    assert_eq!(
        app.get(&slow).await.outcome(),
        pb::Outcome::InProgressOverdue
    );
    app.ok(Cmd::Resolve, &slow).await;
    assert_eq!(app.get(&slow).await.outcome(), pb::Outcome::Late);
}

async fn overdue_page(
    app: &TestApp,
    unit: &str,
    size: u32,
    token: &str,
) -> pb::ListDossiersResponse {
    app.client()
        .list_dossiers(pb::ListDossiersRequest {
            receiving_unit: unit.into(),
            overdue_only: true,
            page_size: size,
            page_token: token.into(),
            ..Default::default()
        })
        .await
        .expect("overdue list")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overdue_list_is_oldest_due_first_and_pages() {
    let app = spawn_app().await;
    // All accepted Monday 4 March 08:00.
    let four_hours = app.receive(P_FOUR_HOURS).await.dossier_id; // Monday 14:00
    let day_a = app.receive(P_ONE_DAY).await.dossier_id; // Tuesday 5 March 08:00
    let day_b = app.receive(P_ONE_DAY).await.dossier_id; // the same instant
    let restart = app.receive(P_RESTART).await.dossier_id; // Thursday 7 March 08:00
    let driving = app.receive(P_DRIVING).await.dossier_id; // Monday 11 March 08:00
    let ten = app.receive(P_TEN_DAYS).await.dossier_id; // Monday 18 March 08:00
    let no_due = app.receive(P_NO_DUE).await.dossier_id; // none
    let finished = app.receive(P_FOUR_HOURS).await.dossier_id;
    app.ok(Cmd::Resolve, &finished).await;
    // A dossier accepted later, due earlier than `driving`: Wednesday 6 March 08:00 + 1 day.
    app.set_time(vn(2024, 3, 6, 8, 0));
    let day_c = app.receive(P_ONE_DAY).await.dossier_id; // Thursday 7 March 08:00
    let online = app.submit_online(P_ONE_DAY).await.dossier_id; // not accepted: no due date

    app.set_time(vn(2024, 3, 15, 12, 0));
    // Oldest due first; equal due dates by dossier id.
    let mut expected = vec![four_hours.clone(), day_a.clone(), day_b.clone()];
    let mut thursday = vec![restart.clone(), day_c.clone()];
    thursday.sort();
    expected.extend(thursday);
    expected.push(driving.clone());

    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = overdue_page(&app, "", 2, &token).await;
        pages += 1;
        assert!(page.dossiers.len() <= 2);
        seen.extend(page.dossiers);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        assert!(pages < 10, "pagination does not end");
    }
    let ids: Vec<&str> = seen.iter().map(|d| d.dossier_id.as_str()).collect();
    assert_eq!(ids, expected, "overdue, oldest due first");
    assert_eq!(pages, 3);
    let dues: Vec<Instant> = seen.iter().map(|d| time_of(&d.due_at)).collect();
    assert!(dues.windows(2).all(|w| w[0] <= w[1]));
    for summary in &seen {
        assert_eq!(
            app.get(&summary.dossier_id).await.outcome(),
            pb::Outcome::InProgressOverdue,
            "{}",
            summary.dossier_id
        );
    }
    for id in [&ten, &online] {
        let outcome = app.get(id).await.outcome();
        assert!(
            matches!(outcome, pb::Outcome::InProgress | pb::Outcome::NotAccepted),
            "{id}: {outcome:?}"
        );
    }
    // Resolved Monday 08:00, due Monday 14:00: on the due date's day, so on time, not early.
    assert_eq!(app.get(&finished).await.outcome(), pb::Outcome::OnTime);
    assert_eq!(
        app.get(&no_due).await.outcome(),
        pb::Outcome::InProgressOverdue,
        "past its legal maximum, but it has no due date to list by"
    );

    // One page of everything, and the unit filter.
    let all = overdue_page(&app, UNIT, 50, "").await;
    assert_eq!(all.dossiers.len(), 6);
    assert!(all.next_page_token.is_empty());
    assert!(
        overdue_page(&app, OTHER_UNIT, 50, "")
            .await
            .dossiers
            .is_empty()
    );

    // Resolving one takes it off the list.
    app.ok(Cmd::Resolve, &day_a).await;
    let ids: Vec<String> = overdue_page(&app, "", 50, "")
        .await
        .dossiers
        .into_iter()
        .map(|d| d.dossier_id)
        .collect();
    assert!(!ids.contains(&day_a));
    assert_eq!(ids.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dossier_waiting_for_a_supplement_is_not_on_the_overdue_list() {
    let app = spawn_app().await;
    // Due Tuesday 5 March 08:00; the supplement was asked for on Monday 09:00, before it.
    let id = app.receive(P_ONE_DAY).await.dossier_id;
    app.set_time(vn(2024, 3, 4, 9, 0));
    app.ok(Cmd::RequestSupplement, &id).await;
    app.set_time(vn(2024, 3, 8, 10, 0));
    let dossier = app.get(&id).await;
    assert_eq!(dossier.status(), S::SupplementRequested);
    assert_ne!(dossier.outcome(), pb::Outcome::InProgressOverdue);
    let listed = overdue_page(&app, "", 50, "").await;
    assert!(
        listed.dossiers.iter().all(|d| d.dossier_id != id),
        "listed as overdue while GetDossier says {:?}: {listed:?}",
        dossier.outcome()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_procedure_after_a_paused_supplement_keeps_the_pause() {
    let app = spawn_app().await;
    // As in the_pause_rule_keeps_a_dossier_on_time_across_the_wait: due Tuesday 08:00, paused
    // 16 working hours, due Thursday 7 March 08:00 after the supplement.
    let id = app.receive(P_ONE_DAY).await.dossier_id;
    app.set_time(vn(2024, 3, 4, 9, 0));
    app.ok(Cmd::RequestSupplement, &id).await;
    app.set_time(vn(2024, 3, 6, 9, 0));
    app.ok(Cmd::ReceiveSupplement, &id).await;
    assert_eq!(time_of(&app.get(&id).await.due_at), vn(2024, 3, 7, 8, 0));
    // Wednesday 10:00: the case is really 1.000894, also 1 working day. Its due date from
    // acceptance is Tuesday 08:00; the 16 h the applicant took still do not count against the
    // office, so it stays Thursday 08:00.
    app.set_time(vn(2024, 3, 6, 10, 0));
    let response = app
        .client()
        .change_procedure(pb::ChangeProcedureRequest {
            meta: meta(&rid("change")),
            dossier_id: id.clone(),
            procedure_code: P_ONE_DAY_OTHER.into(),
            reason: "Đổi thủ tục".into(),
        })
        .await
        .expect("change procedure")
        .into_inner();
    let changed = expect_payload!(only_event(&response), ProcedureChanged);
    assert_eq!(time_of(&changed.due_before), vn(2024, 3, 7, 8, 0));
    assert_eq!(
        time_of(&changed.due_after),
        vn(2024, 3, 7, 8, 0),
        "the supplement pause is kept"
    );
    assert_eq!(app.get(&id).await.outcome(), pb::Outcome::InProgress);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_dossier_shows_only_a_provisional_outcome_with_its_reason() {
    let app = spawn_app().await;
    // Waiting for a supplement asked in time: a period ending now would count it early, but
    // the dossier is open, so GetDossier says "in progress" and shows EARLY as provisional.
    let id = app.receive(P_TEN_DAYS).await.dossier_id;
    app.advance(Duration::minutes(10));
    app.ok(Cmd::RequestSupplement, &id).await;
    let dossier = app.get(&id).await;
    assert_eq!(dossier.outcome(), pb::Outcome::InProgress);
    assert!(!dossier.outcome_final);
    assert_eq!(dossier.provisional_outcome(), pb::Outcome::Early);
    assert_eq!(
        dossier.outcome_reason(),
        pb::OutcomeReason::WaitingForSupplement
    );
    // Asked a second time: overdue before its due date, and the reason says why.
    app.advance(Duration::minutes(10));
    app.ok(Cmd::ReceiveSupplement, &id).await;
    app.advance(Duration::minutes(10));
    app.ok(Cmd::RequestSupplement, &id).await;
    app.advance(Duration::minutes(10));
    app.ok(Cmd::ReceiveSupplement, &id).await;
    let dossier = app.get(&id).await;
    assert_eq!(dossier.outcome(), pb::Outcome::InProgressOverdue);
    assert_eq!(
        dossier.outcome_reason(),
        pb::OutcomeReason::SupplementRequestedMoreThanOnce
    );
    app.ok(Cmd::Resolve, &id).await;
    let dossier = app.get(&id).await;
    assert!(dossier.outcome_final);
    assert_eq!(dossier.outcome(), pb::Outcome::Late);
    assert_eq!(dossier.provisional_outcome(), pb::Outcome::Late);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supplement_asked_after_the_due_date_keeps_the_dossier_late() {
    // Restart rule, 3 working days: accepted Monday 4 March 2024 09:00, due Thursday 7 09:00;
    // asked Tuesday 12, received Thursday 14 10:00, resolved Friday 15 16:00: late.
    let app = spawn_app_at(vn(2024, 3, 4, 9, 0)).await;
    let id = app.receive(P_RESTART).await.dossier_id;
    app.set_time(vn(2024, 3, 12, 9, 0));
    app.ok(Cmd::RequestSupplement, &id).await;
    assert_eq!(
        app.get(&id).await.outcome_reason(),
        pb::OutcomeReason::SupplementRequestedAfterDue
    );
    app.set_time(vn(2024, 3, 14, 10, 0));
    app.ok(Cmd::ReceiveSupplement, &id).await;
    assert_eq!(time_of(&app.get(&id).await.due_at), vn(2024, 3, 7, 9, 0));
    app.set_time(vn(2024, 3, 15, 16, 0));
    app.ok(Cmd::Resolve, &id).await;
    assert_eq!(app.get(&id).await.outcome(), pb::Outcome::Late);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_date_past_the_holiday_tables_is_provisional() {
    // Friday 31 December 2027 15:00 (the last built-in year), 1 working day: due in 2028.
    let app = spawn_app_at(vn(2027, 12, 31, 15, 0)).await;
    let response = app.receive(P_ONE_DAY).await;
    let received = expect_payload!(only_event(&response), Received);
    assert!(received.due_provisional);
    assert!(app.get(&response.dossier_id).await.due_provisional);
    app.set_time(vn(2027, 6, 1, 9, 0));
    let checked = app.receive(P_ONE_DAY).await.dossier_id;
    assert!(!app.get(&checked).await.due_provisional);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sub_second_acceptance_rounds_the_due_date_up() {
    // Accepted Monday 4 March 2024 07:59:59.935, 1 working day: due Tuesday 08:00:00, so a
    // resolution at 07:59:59.500 on Tuesday is on time, not late.
    let at = vn(2024, 3, 4, 7, 59) + Duration::milliseconds(59_935);
    let app = spawn_app_at(at).await;
    let id = app.receive(P_ONE_DAY).await.dossier_id;
    assert_eq!(time_of(&app.get(&id).await.due_at), vn(2024, 3, 5, 8, 0));
    app.set_time(vn(2024, 3, 5, 7, 59) + Duration::milliseconds(59_500));
    app.ok(Cmd::Resolve, &id).await;
    assert_eq!(app.get(&id).await.outcome(), pb::Outcome::OnTime);
}
