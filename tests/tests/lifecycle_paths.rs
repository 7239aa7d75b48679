//! Every command RPC succeeds on a legal path, over real TCP: the events' payloads, the
//! statuses, the `Dossier` view (GetDossier) and ListDossiers.
//!
//! Due dates in this file are computed by hand from docs/domain.md §3: office hours 07:00-11:30 and
//! 13:30-17:00 Vietnam time, Monday to Friday, a working day is 8 hours, and a due date that
//! uses a day up exactly lands on the segment end (17:00 / 11:30), not the next morning.

use std::collections::BTreeSet;

use chrono::Duration;
use motcua_proto::v1 as pb;
use motcua_proto::v1::DossierStatus as S;
use motcua_store::EventStore;
use motcua_tests::*;

fn officer_actor(event: &pb::DossierEvent) -> &pb::Actor {
    event.actor.as_ref().expect("every event names its actor")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_at_the_counter_and_by_post_fixes_the_due_date() {
    let app = spawn_app().await;
    // Monday 4 March 2024 08:00; 1 working day = 8 h: 08:00-11:30 (3.5 h) + 13:30-17:00
    // (3.5 h) = 7 h on Monday, the last hour on Tuesday 07:00-08:00.
    let expected_due = vn(2024, 3, 5, 8, 0);
    let request = receive_request(P_ONE_DAY, pb::Channel::Counter);
    let request_id = request.meta.clone().expect("meta").request_id;
    let counter = app
        .client()
        .receive(request)
        .await
        .expect("counter receive")
        .into_inner();
    assert_eq!(counter.dossier_id, format!("{UNIT}-240304-0001"));
    assert_eq!(counter.version, 1);
    assert!(!counter.replayed);
    let event = only_event(&counter);
    assert_eq!(event.seq, 1);
    assert_eq!(event.dossier_id, counter.dossier_id);
    assert_eq!(event.request_id, request_id);
    assert_eq!(time_of(&event.recorded_at), default_start());
    assert!(event.stated_at.is_none());
    assert!(
        uuid::Uuid::parse_str(&event.event_id).is_ok(),
        "{}",
        event.event_id
    );
    let actor = officer_actor(event);
    assert_eq!(actor.officer_id, OFFICER);
    assert_eq!(actor.kind, "officer");
    let rules = event.rules.as_ref().expect("rule versions");
    assert_eq!(rules.working_time_profile, "vn-office-hours-v1");
    assert!(!rules.holiday_table.is_empty());
    assert_eq!(rules.procedure_catalogue, "sample-2026.1");
    let received = expect_payload!(event, Received);
    assert_eq!(received.channel(), pb::Channel::Counter);
    let procedure = received.procedure.as_ref().expect("procedure ref");
    assert_eq!(procedure.code, P_ONE_DAY);
    assert_eq!(procedure.name, "Đăng ký khai sinh");
    assert_eq!(procedure.sector, "HOTICH");
    assert_eq!(procedure.supplement_rule(), pb::SupplementRule::Pause);
    assert_eq!(
        procedure.processing_time,
        Some(pb::ProcessingTime {
            unit: pb::TimeUnit::WorkingDays as i32,
            amount_hundredths: 100
        })
    );
    let units = received.units.as_ref().expect("units");
    assert_eq!(units.receiving_unit, UNIT);
    assert_eq!(
        units.competent_authority, UNIT,
        "the competent authority defaults to the receiving unit"
    );
    assert_eq!(received.applicant_type(), pb::ApplicantType::Person);
    assert_eq!(received.component_count, 3);
    assert_eq!(time_of(&received.accepted_at), default_start());
    assert_eq!(time_of(&received.due_at), expected_due);

    // By post, with an explicit competent authority.
    let mut postal_request = receive_request(P_ONE_DAY, pb::Channel::Postal);
    postal_request
        .dossier
        .as_mut()
        .expect("dossier")
        .competent_authority = OTHER_UNIT.into();
    let postal = app
        .client()
        .receive(postal_request)
        .await
        .expect("postal receive")
        .into_inner();
    assert_eq!(postal.dossier_id, format!("{UNIT}-240304-0002"));
    let received = expect_payload!(only_event(&postal), Received);
    assert_eq!(received.channel(), pb::Channel::Postal);
    assert_eq!(
        received.units.as_ref().expect("units").competent_authority,
        OTHER_UNIT
    );

    let dossier = app.get(&counter.dossier_id).await;
    assert_eq!(dossier.status(), S::Accepted);
    assert_eq!(dossier.channel(), pb::Channel::Counter);
    assert_eq!(dossier.applicant_type(), pb::ApplicantType::Person);
    assert_eq!(time_of(&dossier.accepted_at), default_start());
    assert_eq!(time_of(&dossier.submitted_at), default_start());
    assert_eq!(time_of(&dossier.due_at), expected_due);
    assert!(dossier.ended_at.is_none());
    assert!(dossier.appointment_at.is_none());
    assert_eq!(dossier.outcome(), pb::Outcome::InProgress);
    assert_eq!(dossier.version, 1);
    assert_eq!(dossier.history, counter.events);
    assert_eq!(dossier.rules.as_ref(), event_rules(&counter));
    assert_eq!(
        app.get(&postal.dossier_id).await.channel(),
        pb::Channel::Postal
    );

    // Personal data never reaches the event stream.
    for stored in app.events().await {
        for secret in ["Nguyễn Văn An", "001099012345", "0912345678"] {
            assert!(
                !contains(&stored.payload, secret.as_bytes()),
                "event {} carries personal data '{secret}'",
                stored.event_id
            );
        }
    }
    let personal = app
        .store
        .personal_data(&counter.dossier_id)
        .await
        .expect("store reads")
        .expect("personal data kept beside the events");
    assert_eq!(personal.identity_number, "001099012345");
}

fn event_rules(response: &pb::CommandResponse) -> Option<&pb::RuleVersions> {
    response.events[0].rules.as_ref()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_online_then_accept_starts_the_clock_at_acceptance() {
    let app = spawn_app().await;
    let submitted = app.submit_online(P_RESTART).await;
    let id = submitted.dossier_id.clone();
    let online = expect_payload!(only_event(&submitted), Online);
    let procedure = online.procedure.as_ref().expect("procedure");
    assert_eq!(
        procedure.processing_time,
        Some(pb::ProcessingTime {
            unit: pb::TimeUnit::WorkingDays as i32,
            amount_hundredths: 250
        }),
        "the online time (2.5 working days) applies to an online dossier"
    );
    assert_eq!(procedure.supplement_rule(), pb::SupplementRule::Restart);
    assert!(procedure.fee_bearing);
    let dossier = app.get(&id).await;
    assert_eq!(dossier.status(), S::SubmittedOnline);
    assert_eq!(dossier.channel(), pb::Channel::Online);
    assert_eq!(dossier.outcome(), pb::Outcome::NotAccepted);
    assert!(dossier.accepted_at.is_none());
    assert!(dossier.due_at.is_none());
    assert_eq!(time_of(&dossier.submitted_at), default_start());

    // Accepted two hours later, Monday 10:00: 2.5 working days = 20 h. Monday 10:00-11:30
    // (1.5 h) + 13:30-17:00 (3.5 h) = 5 h; Tuesday 8 h (13 h); Wednesday 07:00-11:30 (17.5 h),
    // then 2.5 h from 13:30: Wednesday 6 March 16:00.
    app.set_time(vn(2024, 3, 4, 10, 0));
    let accepted = app.ok(Cmd::AcceptOnline, &id).await;
    assert_eq!(accepted.version, 2);
    let event = only_event(&accepted);
    assert_eq!(event.seq, 2);
    let payload = expect_payload!(event, OnlineAccepted);
    assert_eq!(time_of(&payload.submitted_at), default_start());
    assert_eq!(time_of(&payload.accepted_at), vn(2024, 3, 4, 10, 0));
    assert_eq!(time_of(&payload.due_at), vn(2024, 3, 6, 16, 0));
    let dossier = app.get(&id).await;
    assert_eq!(dossier.status(), S::Accepted);
    assert_eq!(dossier.channel(), pb::Channel::Online);
    assert_eq!(time_of(&dossier.submitted_at), default_start());
    assert_eq!(time_of(&dossier.accepted_at), vn(2024, 3, 4, 10, 0));
    assert_eq!(time_of(&dossier.due_at), vn(2024, 3, 6, 16, 0));
    assert_eq!(dossier.outcome(), pb::Outcome::InProgress);
    assert_eq!(dossier.history.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_an_online_submission_and_a_dossier_whose_supplement_never_came() {
    let app = spawn_app().await;
    let online = app.reach(S::SubmittedOnline).await;
    app.advance(Duration::hours(1));
    let refused = app.ok(Cmd::Refuse, &online).await;
    let payload = expect_payload!(only_event(&refused), Refused);
    assert_eq!(payload.reason, "Hồ sơ không thuộc thẩm quyền giải quyết");
    let dossier = app.get(&online).await;
    assert_eq!(dossier.status(), S::Refused);
    assert_eq!(time_of(&dossier.ended_at), vn(2024, 3, 4, 9, 0));
    assert_eq!(dossier.outcome(), pb::Outcome::NotAccepted);

    let waiting = app.reach(S::SupplementRequested).await;
    app.advance(Duration::days(2));
    app.ok(Cmd::Refuse, &waiting).await;
    let dossier = app.get(&waiting).await;
    assert_eq!(dossier.status(), S::Refused);
    assert_eq!(time_of(&dossier.ended_at), vn(2024, 3, 6, 9, 0));
    assert_eq!(dossier.supplement_requests, 1);
    // §4: waiting for a supplement counts as ended at the request time (Monday 09:00), well
    // before the due date's day (Tuesday).
    assert_eq!(dossier.outcome(), pb::Outcome::Early);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_computes_the_step_deadline() {
    let app = spawn_app().await;
    let id = app.receive(P_TEN_DAYS).await.dossier_id;
    app.set_time(vn(2024, 3, 4, 15, 0));
    let response = app
        .client()
        .forward(pb::ForwardRequest {
            meta: meta(&rid("fwd")),
            dossier_id: id.clone(),
            department: "Phòng Lý lịch tư pháp".into(),
            note: "Tra cứu".into(),
            step_time: Some(pb::ProcessingTime {
                unit: pb::TimeUnit::WorkingDays as i32,
                amount_hundredths: 250,
            }),
        })
        .await
        .expect("forward")
        .into_inner();
    // 2.5 working days = 20 h from Monday 15:00: Monday 2 h, Tuesday 8 h (10 h), Wednesday
    // 8 h (18 h), Thursday 07:00 + 2 h = Thursday 7 March 09:00.
    let forwarded = expect_payload!(only_event(&response), Forwarded);
    assert_eq!(forwarded.department, "Phòng Lý lịch tư pháp");
    assert_eq!(forwarded.note, "Tra cứu");
    assert_eq!(
        forwarded.step_time,
        Some(pb::ProcessingTime {
            unit: pb::TimeUnit::WorkingDays as i32,
            amount_hundredths: 250
        })
    );
    assert_eq!(time_of(&forwarded.step_started_at), vn(2024, 3, 4, 15, 0));
    assert_eq!(time_of(&forwarded.step_due_at), vn(2024, 3, 7, 9, 0));
    let dossier = app.get(&id).await;
    assert_eq!(dossier.status(), S::Processing);
    assert_eq!(dossier.current_department, "Phòng Lý lịch tư pháp");
    assert_eq!(time_of(&dossier.step_due_at), vn(2024, 3, 7, 9, 0));

    // A step in working hours, handed on from Processing: 3 h from Tuesday 10:00 = 10:00-11:30
    // (1.5 h) then 13:30-15:00.
    app.set_time(vn(2024, 3, 5, 10, 0));
    let response = app
        .client()
        .forward(pb::ForwardRequest {
            meta: meta(&rid("fwd")),
            dossier_id: id.clone(),
            department: "Lãnh đạo Sở".into(),
            note: String::new(),
            step_time: Some(pb::ProcessingTime {
                unit: pb::TimeUnit::WorkingHours as i32,
                amount_hundredths: 300,
            }),
        })
        .await
        .expect("forward from processing")
        .into_inner();
    let forwarded = expect_payload!(only_event(&response), Forwarded);
    assert_eq!(time_of(&forwarded.step_due_at), vn(2024, 3, 5, 15, 0));

    // Without a step time: no step deadline.
    let response = app
        .client()
        .forward(pb::ForwardRequest {
            meta: meta(&rid("fwd")),
            dossier_id: id.clone(),
            department: "Văn thư".into(),
            note: String::new(),
            step_time: None,
        })
        .await
        .expect("forward without a step time")
        .into_inner();
    let forwarded = expect_payload!(only_event(&response), Forwarded);
    assert!(forwarded.step_time.is_none());
    assert!(forwarded.step_due_at.is_none());
    let dossier = app.get(&id).await;
    assert_eq!(dossier.current_department, "Văn thư");
    assert!(dossier.step_due_at.is_none());
    assert_eq!(dossier.version, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supplement_under_the_pause_rule_moves_the_due_date_by_the_paused_working_time() {
    let app = spawn_app().await;
    // 10 working days from Monday 4 March 08:00 = Monday 18 March 08:00 (two whole weeks).
    let id = app.receive(P_TEN_DAYS).await.dossier_id;
    let due = vn(2024, 3, 18, 8, 0);
    assert_eq!(time_of(&app.get(&id).await.due_at), due);
    app.ok(Cmd::Forward, &id).await;

    app.set_time(vn(2024, 3, 5, 10, 0));
    let requested = app.ok(Cmd::RequestSupplement, &id).await;
    let payload = expect_payload!(only_event(&requested), SupplementRequested);
    assert_eq!(payload.reason, "Thiếu bản sao giấy chứng sinh");
    assert_eq!(payload.request_number, 1);
    assert_eq!(time_of(&payload.due_before), due);
    let dossier = app.get(&id).await;
    assert_eq!(dossier.status(), S::SupplementRequested);
    assert_eq!(dossier.supplement_requests, 1);

    // Received Thursday 7 March 14:00. Paused working time: Tuesday 10:00-11:30 + 13:30-17:00
    // = 5 h, Wednesday 8 h (13 h), Thursday 07:00-11:30 (17.5 h) + 13:30-14:00 = 18 h.
    // 18 March 08:00 + 18 h: Monday 18 7 h, Tuesday 19 8 h (15 h), Wednesday 20 07:00 + 3 h.
    app.set_time(vn(2024, 3, 7, 14, 0));
    let received = app.ok(Cmd::ReceiveSupplement, &id).await;
    let payload = expect_payload!(only_event(&received), SupplementReceived);
    assert_eq!(payload.request_number, 1);
    assert_eq!(time_of(&payload.requested_at), vn(2024, 3, 5, 10, 0));
    assert_eq!(time_of(&payload.due_before), due);
    assert_eq!(time_of(&payload.due_after), vn(2024, 3, 20, 10, 0));
    assert_eq!(payload.rule(), pb::SupplementRule::Pause);
    let dossier = app.get(&id).await;
    assert_eq!(
        dossier.status(),
        S::Processing,
        "back to the status before the request"
    );
    assert_eq!(time_of(&dossier.due_at), vn(2024, 3, 20, 10, 0));
    assert_eq!(dossier.outcome(), pb::Outcome::InProgress);

    // From Accepted, it goes back to Accepted.
    let accepted = app.receive(P_ONE_DAY).await.dossier_id;
    app.ok(Cmd::RequestSupplement, &accepted).await;
    app.ok(Cmd::ReceiveSupplement, &accepted).await;
    assert_eq!(app.get(&accepted).await.status(), S::Accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supplement_under_the_restart_rule_gives_a_fresh_due_date() {
    let app = spawn_app().await;
    // 1.001612 is a restart-rule procedure: 3 working days at the counter. From Monday 08:00:
    // Monday 7 h, Tuesday 8 h, Wednesday 8 h (23 h), Thursday 07:00-08:00.
    let id = app.receive(P_RESTART).await.dossier_id;
    assert_eq!(time_of(&app.get(&id).await.due_at), vn(2024, 3, 7, 8, 0));
    app.set_time(vn(2024, 3, 4, 9, 0));
    app.ok(Cmd::RequestSupplement, &id).await;
    // Received Wednesday 6 March 15:00; a fresh 24 h: Wednesday 2 h, Thursday 8 h (10 h),
    // Friday 8 h (18 h), Monday 11 March 07:00-11:30 (22.5 h) + 13:30-15:00.
    app.set_time(vn(2024, 3, 6, 15, 0));
    let received = app.ok(Cmd::ReceiveSupplement, &id).await;
    let payload = expect_payload!(only_event(&received), SupplementReceived);
    assert_eq!(payload.rule(), pb::SupplementRule::Restart);
    assert_eq!(time_of(&payload.due_before), vn(2024, 3, 7, 8, 0));
    assert_eq!(time_of(&payload.due_after), vn(2024, 3, 11, 15, 0));
    let dossier = app.get(&id).await;
    assert_eq!(dossier.status(), S::Accepted);
    assert_eq!(time_of(&dossier.due_at), vn(2024, 3, 11, 15, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fees_then_payment_return_the_dossier_to_where_it_was() {
    let app = spawn_app().await;
    for from in [S::Accepted, S::Processing] {
        let id = app.reach(from).await;
        let requested = app
            .client()
            .request_fees(pb::RequestFeesRequest {
                meta: meta(&rid("fees")),
                dossier_id: id.clone(),
                amount_vnd: 15_000,
                description: "Phí cấp bản sao".into(),
            })
            .await
            .expect("request fees")
            .into_inner();
        let fees = expect_payload!(only_event(&requested), FeesRequested);
        assert_eq!(fees.amount_vnd, 15_000);
        assert_eq!(fees.description, "Phí cấp bản sao");
        assert_eq!(app.get(&id).await.status(), S::FeesRequested);
        let paid = app
            .client()
            .record_payment(pb::RecordPaymentRequest {
                meta: meta(&rid("pay")),
                dossier_id: id.clone(),
                amount_vnd: 15_000,
                method: pb::PaymentMethod::ProvincialGateway as i32,
                reference: "VNPT-PAY-778899".into(),
            })
            .await
            .expect("record payment")
            .into_inner();
        let payment = expect_payload!(only_event(&paid), PaymentRecorded);
        assert_eq!(payment.amount_vnd, 15_000);
        assert_eq!(payment.method(), pb::PaymentMethod::ProvincialGateway);
        assert_eq!(payment.reference, "VNPT-PAY-778899");
        assert_eq!(app.get(&id).await.status(), from, "back to {from:?}");
    }
    // Paid up front, and when the result is collected: the status does not move.
    for at in [S::Accepted, S::Resolved] {
        let id = app.reach(at).await;
        app.ok(Cmd::RecordPayment, &id).await;
        assert_eq!(app.get(&id).await.status(), at);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digitisation_of_components_and_of_the_result() {
    let app = spawn_app().await;
    let id = app.receive(P_ONE_DAY).await.dossier_id;
    let component = app
        .client()
        .record_digitization(pb::RecordDigitizationRequest {
            meta: meta(&rid("dig")),
            dossier_id: id.clone(),
            target: pb::DigitizationTarget::Component as i32,
            document_name: "Giấy chứng sinh".into(),
            reused: true,
            file_url: "https://kho.example.vn/f/42".into(),
        })
        .await
        .expect("component digitised")
        .into_inner();
    let digitized = expect_payload!(only_event(&component), Digitized);
    assert_eq!(digitized.target(), pb::DigitizationTarget::Component);
    assert_eq!(digitized.document_name, "Giấy chứng sinh");
    assert!(digitized.reused);
    assert_eq!(digitized.file_url, "https://kho.example.vn/f/42");
    assert_eq!(app.get(&id).await.status(), S::Accepted);

    app.ok(Cmd::Forward, &id).await;
    let result = app.ok(Cmd::DigitizeResult, &id).await;
    let digitized = expect_payload!(only_event(&result), Digitized);
    assert_eq!(digitized.target(), pb::DigitizationTarget::Result);
    assert!(!digitized.reused);
    assert_eq!(app.get(&id).await.status(), S::Processing);

    app.ok(Cmd::Resolve, &id).await;
    app.ok(Cmd::DigitizeResult, &id).await;
    let dossier = app.get(&id).await;
    assert_eq!(dossier.status(), S::Resolved);
    assert_eq!(dossier.version, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_then_return_result_keeps_the_end_at_the_resolution() {
    let app = spawn_app().await;
    let id = app.receive(P_ONE_DAY).await.dossier_id;
    app.ok(Cmd::Forward, &id).await;
    app.set_time(vn(2024, 3, 4, 15, 0));
    let resolved = app
        .client()
        .resolve(pb::ResolveRequest {
            meta: meta(&rid("resolve")),
            dossier_id: id.clone(),
            electronic_result: true,
            note: "Đã ký số".into(),
        })
        .await
        .expect("resolve")
        .into_inner();
    let payload = expect_payload!(only_event(&resolved), Resolved);
    assert!(payload.electronic_result);
    assert_eq!(payload.note, "Đã ký số");
    let dossier = app.get(&id).await;
    assert_eq!(dossier.status(), S::Resolved);
    assert_eq!(time_of(&dossier.ended_at), vn(2024, 3, 4, 15, 0));
    assert!(dossier.current_department.is_empty());
    assert!(dossier.step_due_at.is_none());
    // Ended Monday, due Tuesday 08:00: early.
    assert_eq!(dossier.outcome(), pb::Outcome::Early);

    // Returned on Wednesday, after the due date: processing still ended at the resolution.
    app.set_time(vn(2024, 3, 6, 9, 0));
    let returned = app
        .client()
        .return_result(pb::ReturnResultRequest {
            meta: meta(&rid("return")),
            dossier_id: id.clone(),
            note: "Công dân đã nhận".into(),
        })
        .await
        .expect("return result")
        .into_inner();
    let payload = expect_payload!(only_event(&returned), ResultReturned);
    assert_eq!(payload.note, "Công dân đã nhận");
    let dossier = app.get(&id).await;
    assert_eq!(dossier.status(), S::ResultReturned);
    assert_eq!(time_of(&dossier.ended_at), vn(2024, 3, 4, 15, 0));
    assert_eq!(dossier.outcome(), pb::Outcome::Early);
    assert_eq!(time_of(&dossier.updated_at), vn(2024, 3, 6, 9, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdraw_and_stop_end_processing() {
    let app = spawn_app().await;
    let withdrawn = app.receive(P_ONE_DAY).await.dossier_id;
    let stopped = app.receive(P_ONE_DAY).await.dossier_id;
    app.set_time(vn(2024, 3, 4, 10, 0));
    let response = app
        .client()
        .withdraw(pb::WithdrawRequest {
            meta: meta(&rid("withdraw")),
            dossier_id: withdrawn.clone(),
            reason: "Không còn nhu cầu".into(),
        })
        .await
        .expect("withdraw")
        .into_inner();
    assert_eq!(
        expect_payload!(only_event(&response), Withdrawn).reason,
        "Không còn nhu cầu"
    );
    let response = app
        .client()
        .stop_processing(pb::StopProcessingRequest {
            meta: meta(&rid("stop")),
            dossier_id: stopped.clone(),
            reason: "Đang có tranh chấp".into(),
        })
        .await
        .expect("stop")
        .into_inner();
    assert_eq!(
        expect_payload!(only_event(&response), Stopped).reason,
        "Đang có tranh chấp"
    );
    for (id, status) in [(&withdrawn, S::Withdrawn), (&stopped, S::Stopped)] {
        let dossier = app.get(id).await;
        assert_eq!(dossier.status(), status);
        assert_eq!(time_of(&dossier.ended_at), vn(2024, 3, 4, 10, 0));
        assert_eq!(dossier.outcome(), pb::Outcome::Early);
    }
    // Withdrawn while online and unaccepted.
    let online = app.reach(S::SubmittedOnline).await;
    app.ok(Cmd::Withdraw, &online).await;
    assert_eq!(app.get(&online).await.status(), S::Withdrawn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_due_date_records_the_appointment_but_keeps_the_scoring_due_date() {
    let app = spawn_app().await;
    let id = app.receive(P_TEN_DAYS).await.dossier_id;
    let due = vn(2024, 3, 18, 8, 0);
    let extend = |new: chrono::DateTime<chrono::Utc>| pb::ExtendDueDateRequest {
        meta: meta(&rid("extend")),
        dossier_id: id.clone(),
        new_appointment_at: Some(ts(new)),
        reason: "Cần xác minh thêm".into(),
    };

    // Tuesday 5 March: days ahead of the due date.
    app.set_time(vn(2024, 3, 5, 9, 0));
    let response = app
        .client()
        .extend_due_date(extend(vn(2024, 3, 25, 17, 0)))
        .await
        .expect("extend")
        .into_inner();
    let payload = expect_payload!(only_event(&response), DueDateExtended);
    assert_eq!(time_of(&payload.due_before), due);
    assert_eq!(time_of(&payload.new_appointment_at), vn(2024, 3, 25, 17, 0));
    assert_eq!(payload.reason, "Cần xác minh thêm");
    assert!(payload.issued_in_time);
    let dossier = app.get(&id).await;
    assert_eq!(time_of(&dossier.due_at), due, "the scoring due date stays");
    assert_eq!(time_of(&dossier.appointment_at), vn(2024, 3, 25, 17, 0));

    // Friday 15 March 08:00: exactly one working day is left (Friday 7 h + Monday 07:00-08:00),
    // which is still "at least one working day before".
    app.set_time(vn(2024, 3, 15, 8, 0));
    let response = app
        .client()
        .extend_due_date(extend(vn(2024, 3, 26, 17, 0)))
        .await
        .expect("extend on the last allowed moment")
        .into_inner();
    assert!(expect_payload!(only_event(&response), DueDateExtended).issued_in_time);

    // Friday 15 March 10:00: 6 working hours left, less than one working day: recorded, but
    // flagged.
    app.set_time(vn(2024, 3, 15, 10, 0));
    let response = app
        .client()
        .extend_due_date(extend(vn(2024, 3, 27, 17, 0)))
        .await
        .expect("late extension is still recorded")
        .into_inner();
    let payload = expect_payload!(only_event(&response), DueDateExtended);
    assert!(!payload.issued_in_time);
    assert_eq!(time_of(&payload.due_before), due);
    let dossier = app.get(&id).await;
    assert_eq!(time_of(&dossier.due_at), due);
    assert_eq!(time_of(&dossier.appointment_at), vn(2024, 3, 27, 17, 0));

    // Resolved after the due date but before the appointment: late for scoring.
    app.set_time(vn(2024, 3, 19, 9, 0));
    app.ok(Cmd::Resolve, &id).await;
    assert_eq!(app.get(&id).await.outcome(), pb::Outcome::Late);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_procedure_recomputes_the_due_date_from_acceptance() {
    let app = spawn_app().await;
    let id = app.receive(P_ONE_DAY).await.dossier_id;
    app.set_time(vn(2024, 3, 4, 14, 0));
    let response = app
        .client()
        .change_procedure(pb::ChangeProcedureRequest {
            meta: meta(&rid("change")),
            dossier_id: id.clone(),
            procedure_code: P_TEN_DAYS.into(),
            reason: "Nhầm thủ tục".into(),
        })
        .await
        .expect("change procedure")
        .into_inner();
    let payload = expect_payload!(only_event(&response), ProcedureChanged);
    assert_eq!(payload.previous.as_ref().expect("previous").code, P_ONE_DAY);
    let procedure = payload.procedure.as_ref().expect("procedure");
    assert_eq!(procedure.code, P_TEN_DAYS);
    assert!(procedure.fee_bearing);
    assert_eq!(time_of(&payload.due_before), vn(2024, 3, 5, 8, 0));
    // 10 working days from the acceptance (Monday 08:00), not from the change (14:00).
    assert_eq!(time_of(&payload.due_after), vn(2024, 3, 18, 8, 0));
    assert_eq!(payload.reason, "Nhầm thủ tục");
    let dossier = app.get(&id).await;
    assert_eq!(dossier.status(), S::Accepted);
    assert_eq!(
        dossier.procedure.as_ref().expect("procedure").code,
        P_TEN_DAYS
    );
    assert_eq!(time_of(&dossier.due_at), vn(2024, 3, 18, 8, 0));
    let listed = app
        .client()
        .list_dossiers(pb::ListDossiersRequest::default())
        .await
        .expect("list")
        .into_inner();
    let row = listed
        .dossiers
        .iter()
        .find(|d| d.dossier_id == id)
        .expect("listed");
    assert_eq!(row.procedure_code, P_TEN_DAYS);
    assert_eq!(time_of(&row.due_at), vn(2024, 3, 18, 8, 0));

    // Before acceptance: no due date yet; acceptance then uses the new procedure's online time
    // (1.002804: 3 working days online), from Monday 08:00 to Thursday 08:00.
    let online = app.submit_online(P_ONE_DAY).await.dossier_id;
    let response = app
        .client()
        .change_procedure(pb::ChangeProcedureRequest {
            meta: meta(&rid("change")),
            dossier_id: online.clone(),
            procedure_code: P_DRIVING.into(),
            reason: "Nhầm thủ tục".into(),
        })
        .await
        .expect("change before acceptance")
        .into_inner();
    let payload = expect_payload!(only_event(&response), ProcedureChanged);
    assert!(payload.due_after.is_none());
    app.set_time(vn(2024, 3, 4, 8, 0));
    let accepted = app.ok(Cmd::AcceptOnline, &online).await;
    let payload = expect_payload!(only_event(&accepted), OnlineAccepted);
    assert_eq!(time_of(&payload.due_at), vn(2024, 3, 7, 8, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actor_is_the_caller_and_stated_at_is_kept_beside_the_server_time() {
    let app = spawn_app().await;
    let mut request = receive_request(P_ONE_DAY, pb::Channel::Counter);
    let stated = vn(2024, 3, 1, 16, 0);
    request.meta.as_mut().expect("meta").stated_at = Some(ts(stated));
    let response = app
        .client_as("officer-b")
        .receive(request)
        .await
        .expect("receive with a stated time")
        .into_inner();
    let event = only_event(&response);
    assert_eq!(officer_actor(event).officer_id, "officer-b");
    assert_eq!(time_of(&event.stated_at), stated);
    assert_eq!(time_of(&event.recorded_at), default_start());
    // The due date runs from the server's acceptance, never from the stated time.
    let received = expect_payload!(event, Received);
    assert_eq!(time_of(&received.accepted_at), default_start());
    assert_eq!(time_of(&received.due_at), vn(2024, 3, 5, 8, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_dossier_history_is_the_stored_stream() {
    let app = spawn_app().await;
    let id = app.receive(P_TEN_DAYS).await.dossier_id;
    let other = app.receive(P_ONE_DAY).await.dossier_id;
    for cmd in [
        Cmd::DigitizeComponent,
        Cmd::Forward,
        Cmd::RequestFees,
        Cmd::RecordPayment,
        Cmd::RequestSupplement,
        Cmd::ReceiveSupplement,
        Cmd::ExtendDueDate,
        Cmd::DigitizeResult,
        Cmd::Resolve,
        Cmd::ReturnResult,
    ] {
        app.advance(Duration::minutes(10));
        app.ok(cmd, &id).await;
        app.ok(Cmd::DigitizeComponent, &other).await;
    }
    let dossier = app.get(&id).await;
    let stored = app.dossier_events(&id).await;
    assert_eq!(dossier.history, stored);
    assert_eq!(dossier.version, 11);
    let seqs: Vec<u64> = dossier.history.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=11).collect::<Vec<_>>());
    assert_eq!(
        time_of(&dossier.updated_at),
        time_of(&stored.last().expect("events").recorded_at)
    );
    // Global positions are strictly increasing and every event is there once.
    let all = app.events().await;
    assert_eq!(all.len(), 22);
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    let ids: BTreeSet<&str> = all.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids.len(), all.len());
    assert!(
        all.iter()
            .zip(app.decoded_events().await.iter())
            .all(|(s, d)| s.dossier_id == d.dossier_id
                && s.seq == d.seq
                && s.event_id == d.event_id
                && s.request_id == d.request_id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_dossiers_filters_and_pages() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for status in ALL_STATUSES {
        ids.push((app.reach(status).await, status));
    }
    // Two dossiers at another unit, one with our unit as competent authority.
    let mut elsewhere = receive_request(P_ONE_DAY, pb::Channel::Counter);
    elsewhere.dossier.as_mut().expect("dossier").receiving_unit = OTHER_UNIT.into();
    let other_a = app
        .client()
        .receive(elsewhere)
        .await
        .expect("receive elsewhere")
        .into_inner()
        .dossier_id;
    let mut elsewhere = receive_request(P_ONE_DAY, pb::Channel::Counter);
    let dossier = elsewhere.dossier.as_mut().expect("dossier");
    dossier.receiving_unit = OTHER_UNIT.into();
    dossier.competent_authority = UNIT.into();
    let other_b = app
        .client()
        .receive(elsewhere)
        .await
        .expect("receive elsewhere")
        .into_inner()
        .dossier_id;
    assert!(other_a.starts_with(OTHER_UNIT) && other_b.starts_with(OTHER_UNIT));

    // Everything at our unit, three to a page, ordered by id.
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = app
            .client()
            .list_dossiers(pb::ListDossiersRequest {
                receiving_unit: UNIT.into(),
                page_size: 3,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("list page")
            .into_inner();
        pages += 1;
        assert!(page.dossiers.len() <= 3);
        seen.extend(page.dossiers.iter().cloned());
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 4, "10 dossiers, 3 per page");
    let seen_ids: Vec<&str> = seen.iter().map(|d| d.dossier_id.as_str()).collect();
    let mut expected: Vec<&str> = ids.iter().map(|(id, _)| id.as_str()).collect();
    expected.sort_unstable();
    assert_eq!(seen_ids, expected);
    for summary in &seen {
        let (_, status) = ids
            .iter()
            .find(|(id, _)| *id == summary.dossier_id)
            .expect("one of ours");
        assert_eq!(summary.status(), *status, "{}", summary.dossier_id);
        assert_eq!(summary.procedure_code, P_ONE_DAY);
        let units = summary.units.as_ref().expect("units");
        assert_eq!(units.receiving_unit, UNIT);
        let full = app.get(&summary.dossier_id).await;
        assert_eq!(summary.version, full.version);
        assert_eq!(summary.due_at, full.due_at);
        assert_eq!(summary.channel, full.channel);
        assert_eq!(summary.updated_at, full.updated_at);
    }

    // Status filter.
    let listed = app
        .client()
        .list_dossiers(pb::ListDossiersRequest {
            statuses: vec![S::Resolved as i32, S::ResultReturned as i32],
            ..Default::default()
        })
        .await
        .expect("list by status")
        .into_inner();
    let statuses: Vec<S> = listed.dossiers.iter().map(|d| d.status()).collect();
    assert_eq!(statuses.len(), 2);
    assert!(statuses.contains(&S::Resolved) && statuses.contains(&S::ResultReturned));

    // Competent authority filter: our 10, plus the one received elsewhere for us.
    let listed = app
        .client()
        .list_dossiers(pb::ListDossiersRequest {
            competent_authority: UNIT.into(),
            ..Default::default()
        })
        .await
        .expect("list by authority")
        .into_inner();
    assert_eq!(listed.dossiers.len(), 11);
    assert!(listed.dossiers.iter().any(|d| d.dossier_id == other_b));
    assert!(listed.next_page_token.is_empty());

    // All of them, default page size.
    let listed = app
        .client()
        .list_dossiers(pb::ListDossiersRequest::default())
        .await
        .expect("list all")
        .into_inner();
    assert_eq!(listed.dossiers.len(), 12);
}
