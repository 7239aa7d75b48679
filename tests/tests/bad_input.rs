//! Bad input gets the right code, a BadRequest naming the offending field(s) for
//! INVALID_ARGUMENT, and changes nothing in the event stream.

use chrono::Duration;
use motcua_domain::time::Instant;
use motcua_proto::v1 as pb;
use motcua_proto::v1::DossierStatus as S;
use motcua_tests::*;
use tonic::Code;
use tonic::metadata::MetadataValue;

type ReceiveCase = (
    &'static str,
    fn(&mut pb::ReceiveRequest, Instant),
    &'static [&'static str],
);
type SubmitCase = (
    &'static str,
    fn(&mut pb::SubmitOnlineRequest),
    &'static [&'static str],
);

fn receive_cases() -> Vec<ReceiveCase> {
    vec![
        ("no meta", |r, _| r.meta = None, &["meta"]),
        (
            "empty request id",
            |r, _| r.meta = meta(""),
            &["meta.request_id"],
        ),
        (
            "blank request id",
            |r, _| r.meta = meta("   "),
            &["meta.request_id"],
        ),
        (
            "request id with a space",
            |r, _| r.meta = meta("abc def"),
            &["meta.request_id"],
        ),
        (
            "request id with a slash",
            |r, _| r.meta = meta("abc/def"),
            &["meta.request_id"],
        ),
        (
            "request id of 129 characters",
            |r, _| r.meta = meta(&"r".repeat(129)),
            &["meta.request_id"],
        ),
        (
            "stated_at five minutes in the future",
            |r, now| {
                r.meta.as_mut().expect("meta").stated_at = Some(ts(now + Duration::minutes(5)))
            },
            &["meta.stated_at"],
        ),
        (
            "stated_at 40 days ago",
            |r, now| r.meta.as_mut().expect("meta").stated_at = Some(ts(now - Duration::days(40))),
            &["meta.stated_at"],
        ),
        (
            "stated_at with negative nanos",
            |r, _| {
                r.meta.as_mut().expect("meta").stated_at = Some(prost_types::Timestamp {
                    seconds: 1_700_000_000,
                    nanos: -1,
                })
            },
            &["meta.stated_at"],
        ),
        ("no dossier", |r, _| r.dossier = None, &["dossier"]),
        (
            "malformed dossier code",
            |r, _| dossier(r).dossier_code = "HS-0001".into(),
            &["dossier.dossier_code"],
        ),
        (
            "dossier code with a bad date",
            |r, _| dossier(r).dossier_code = format!("{UNIT}-241332-0001"),
            &["dossier.dossier_code"],
        ),
        (
            "dossier code numbered 0000",
            |r, _| dossier(r).dossier_code = format!("{UNIT}-240304-0000"),
            &["dossier.dossier_code"],
        ),
        (
            "dossier code of another agency than the receiving unit",
            |r, _| dossier(r).dossier_code = format!("{OTHER_UNIT}-240304-0001"),
            &["dossier.dossier_code"],
        ),
        (
            "dossier code dated tomorrow",
            |r, _| dossier(r).dossier_code = format!("{UNIT}-240305-0001"),
            &["dossier.dossier_code"],
        ),
        (
            "empty procedure code",
            |r, _| dossier(r).procedure_code = String::new(),
            &["dossier.procedure_code"],
        ),
        (
            "malformed procedure code",
            |r, _| dossier(r).procedure_code = "1.1".into(),
            &["dossier.procedure_code"],
        ),
        (
            "procedure code not in the catalogue",
            |r, _| dossier(r).procedure_code = "9.999999".into(),
            &["dossier.procedure_code"],
        ),
        (
            "empty receiving unit",
            |r, _| dossier(r).receiving_unit = String::new(),
            &["dossier.receiving_unit"],
        ),
        (
            "lower-case receiving unit",
            |r, _| dossier(r).receiving_unit = "000.00.01.h22".into(),
            &["dossier.receiving_unit"],
        ),
        (
            "receiving unit with an empty segment",
            |r, _| dossier(r).receiving_unit = "000..01.H22".into(),
            &["dossier.receiving_unit"],
        ),
        (
            "malformed competent authority",
            |r, _| dossier(r).competent_authority = "Sở Tư pháp".into(),
            &["dossier.competent_authority"],
        ),
        ("unknown channel 99", |r, _| r.channel = 99, &["channel"]),
        (
            "CHANNEL_UNSPECIFIED",
            |r, _| r.channel = pb::Channel::Unspecified as i32,
            &["channel"],
        ),
        (
            "CHANNEL_ONLINE in Receive",
            |r, _| r.channel = pb::Channel::Online as i32,
            &["channel"],
        ),
        (
            "no applicant",
            |r, _| dossier(r).applicant = None,
            &["dossier.applicant"],
        ),
        (
            "APPLICANT_TYPE_UNSPECIFIED",
            |r, _| applicant(r).r#type = 0,
            &["dossier.applicant.type"],
        ),
        (
            "unknown applicant type 99",
            |r, _| applicant(r).r#type = 99,
            &["dossier.applicant.type"],
        ),
        (
            "empty applicant name",
            |r, _| applicant(r).name = " ".into(),
            &["dossier.applicant.name"],
        ),
        (
            "applicant name of 201 characters",
            |r, _| applicant(r).name = "ễ".repeat(201),
            &["dossier.applicant.name"],
        ),
        (
            "applicant name with a control character",
            |r, _| applicant(r).name = "Nguyễn\u{1b}[31m Văn An".into(),
            &["dossier.applicant.name"],
        ),
        (
            "identity number of 11 digits",
            |r, _| applicant(r).identity_number = "00109901234".into(),
            &["dossier.applicant.identity_number"],
        ),
        (
            "identity number of 13 digits",
            |r, _| applicant(r).identity_number = "0010990123456".into(),
            &["dossier.applicant.identity_number"],
        ),
        (
            "identity number with a letter",
            |r, _| applicant(r).identity_number = "00109901234A".into(),
            &["dossier.applicant.identity_number"],
        ),
        (
            "business code with a space",
            |r, _| {
                let a = applicant(r);
                a.r#type = pb::ApplicantType::Business as i32;
                a.identity_number = "0101 234567".into();
            },
            &["dossier.applicant.identity_number"],
        ),
        (
            "phone with letters",
            |r, _| applicant(r).phone = "09123abc".into(),
            &["dossier.applicant.phone"],
        ),
        (
            "1001 components",
            |r, _| dossier(r).component_count = 1001,
            &["dossier.component_count"],
        ),
        (
            "everything wrong at once",
            |r, _| {
                r.meta = meta("");
                r.channel = 99;
                let d = dossier(r);
                d.procedure_code = "x".into();
                d.receiving_unit = "x y".into();
                d.applicant.as_mut().expect("applicant").identity_number = "1".into();
            },
            &[
                "meta.request_id",
                "channel",
                "dossier.procedure_code",
                "dossier.receiving_unit",
                "dossier.applicant.identity_number",
            ],
        ),
    ]
}

fn dossier(r: &mut pb::ReceiveRequest) -> &mut pb::NewDossier {
    r.dossier.as_mut().expect("dossier")
}

fn applicant(r: &mut pb::ReceiveRequest) -> &mut pb::Applicant {
    dossier(r).applicant.as_mut().expect("applicant")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_names_every_bad_field_and_records_nothing() {
    let app = spawn_app().await;
    app.receive(P_ONE_DAY).await;
    let before = app.events().await;
    for (what, mutate, fields) in receive_cases() {
        let mut request = receive_request(P_ONE_DAY, pb::Channel::Counter);
        mutate(&mut request, app.now());
        let result = app.client().receive(request).await;
        expect_invalid(result, fields, what);
        app.assert_unchanged(&before, what).await;
    }
    // The sequence was not consumed by rejected requests either.
    assert_eq!(
        app.receive(P_ONE_DAY).await.dossier_id,
        format!("{UNIT}-240304-0002")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_online_names_every_bad_field_and_records_nothing() {
    let app = spawn_app().await;
    let before = app.events().await;
    let cases: Vec<SubmitCase> = vec![
        ("no meta", |r| r.meta = None, &["meta"]),
        ("no dossier", |r| r.dossier = None, &["dossier"]),
        (
            "unknown procedure",
            |r| r.dossier.as_mut().expect("d").procedure_code = "1.999999".into(),
            &["dossier.procedure_code"],
        ),
        (
            "applicant type 42",
            |r| {
                r.dossier
                    .as_mut()
                    .expect("d")
                    .applicant
                    .as_mut()
                    .expect("a")
                    .r#type = 42
            },
            &["dossier.applicant.type"],
        ),
    ];
    for (what, mutate, fields) in cases {
        let mut request = submit_request(P_ONE_DAY);
        mutate(&mut request);
        expect_invalid(app.client().submit_online(request).await, fields, what);
        app.assert_unchanged(&before, what).await;
    }
}

/// Sends `request` through `rpc` on a fresh client and expects INVALID_ARGUMENT naming
/// `fields`, with the event stream unchanged.
macro_rules! rejects {
    ($app:expr, $before:expr, $rpc:ident, $request:expr, $fields:expr, $what:expr) => {{
        let result = $app.client().$rpc($request).await;
        expect_invalid(result, $fields, $what);
        $app.assert_unchanged($before, $what).await;
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_on_a_dossier_name_every_bad_field_and_record_nothing() {
    let app = spawn_app().await;
    let online = app.reach(S::SubmittedOnline).await;
    let accepted = app.reach(S::Accepted).await;
    let processing = app.reach(S::Processing).await;
    let fees = app.reach(S::FeesRequested).await;
    let before = app.events().await;
    let now = app.now();
    let long = "x".repeat(2001);

    for id in [
        "",
        "   ",
        "not-a-code",
        "000.00.01.H22-240304",
        "000.00.01.H22-240230-0001",
    ] {
        rejects!(
            app,
            &before,
            accept_online,
            pb::AcceptOnlineRequest {
                meta: meta(&rid("bad")),
                dossier_id: id.into(),
            },
            &["dossier_id"],
            &format!("dossier id '{id}'")
        );
    }
    rejects!(
        app,
        &before,
        accept_online,
        pb::AcceptOnlineRequest {
            meta: None,
            dossier_id: online.clone(),
        },
        &["meta"],
        "accept without meta"
    );
    for (reason, what) in [
        (String::new(), "empty reason"),
        ("  \n ".to_owned(), "blank reason"),
        (long.clone(), "reason of 2001 characters"),
        ("Thiếu\u{7} giấy tờ".to_owned(), "reason with BEL"),
        ("Thiếu\u{0} giấy tờ".to_owned(), "reason with NUL"),
        ("Thiếu\u{7f} giấy tờ".to_owned(), "reason with DEL"),
    ] {
        rejects!(
            app,
            &before,
            refuse,
            pb::RefuseRequest {
                meta: meta(&rid("bad")),
                dossier_id: online.clone(),
                reason,
            },
            &["reason"],
            what
        );
    }
    for (step, field, what) in [
        (
            pb::ProcessingTime {
                unit: 0,
                amount_hundredths: 100,
            },
            "step_time.unit",
            "TIME_UNIT_UNSPECIFIED",
        ),
        (
            pb::ProcessingTime {
                unit: 99,
                amount_hundredths: 100,
            },
            "step_time.unit",
            "unknown time unit",
        ),
        (
            pb::ProcessingTime {
                unit: pb::TimeUnit::WorkingDays as i32,
                amount_hundredths: 0,
            },
            "step_time.amount_hundredths",
            "zero step time",
        ),
        (
            pb::ProcessingTime {
                unit: pb::TimeUnit::WorkingDays as i32,
                amount_hundredths: 1_000_001,
            },
            "step_time.amount_hundredths",
            "huge step time",
        ),
    ] {
        rejects!(
            app,
            &before,
            forward,
            pb::ForwardRequest {
                meta: meta(&rid("bad")),
                dossier_id: accepted.clone(),
                department: "Phòng A".into(),
                note: String::new(),
                step_time: Some(step),
            },
            &[field],
            what
        );
    }
    rejects!(
        app,
        &before,
        forward,
        pb::ForwardRequest {
            meta: meta(&rid("bad")),
            dossier_id: accepted.clone(),
            department: String::new(),
            note: long.clone(),
            step_time: None,
        },
        &["department", "note"],
        "forward without department, note too long"
    );
    rejects!(
        app,
        &before,
        request_supplement,
        pb::RequestSupplementRequest {
            meta: meta(&rid("bad")),
            dossier_id: accepted.clone(),
            reason: String::new(),
        },
        &["reason"],
        "supplement without reason"
    );
    rejects!(
        app,
        &before,
        receive_supplement,
        pb::ReceiveSupplementRequest {
            meta: meta(&rid("bad")),
            dossier_id: accepted.clone(),
            note: long.clone(),
        },
        &["note"],
        "supplement note too long"
    );
    rejects!(
        app,
        &before,
        request_fees,
        pb::RequestFeesRequest {
            meta: meta(&rid("bad")),
            dossier_id: accepted.clone(),
            amount_vnd: 0,
            description: "Lệ phí".into(),
        },
        &["amount_vnd"],
        "fees of 0 VND"
    );
    for (method, amount, fields, what) in [
        (0, 10_000, &["method"][..], "PAYMENT_METHOD_UNSPECIFIED"),
        (99, 10_000, &["method"][..], "unknown payment method"),
        (1, 0, &["amount_vnd"][..], "payment of 0 VND"),
    ] {
        rejects!(
            app,
            &before,
            record_payment,
            pb::RecordPaymentRequest {
                meta: meta(&rid("bad")),
                dossier_id: fees.clone(),
                amount_vnd: amount,
                method,
                reference: String::new(),
            },
            fields,
            what
        );
    }
    for (target, name, url, fields, what) in [
        (
            0,
            "Tờ khai",
            "",
            &["target"][..],
            "DIGITIZATION_TARGET_UNSPECIFIED",
        ),
        (7, "Tờ khai", "", &["target"][..], "unknown target"),
        (1, "", "", &["document_name"][..], "no document name"),
        (
            1,
            "Tờ khai",
            long.as_str(),
            &["file_url"][..],
            "file url too long",
        ),
    ] {
        rejects!(
            app,
            &before,
            record_digitization,
            pb::RecordDigitizationRequest {
                meta: meta(&rid("bad")),
                dossier_id: processing.clone(),
                target,
                document_name: name.into(),
                reused: false,
                file_url: url.into(),
            },
            fields,
            what
        );
    }
    rejects!(
        app,
        &before,
        resolve,
        pb::ResolveRequest {
            meta: meta(&rid("bad")),
            dossier_id: processing.clone(),
            electronic_result: false,
            note: "\u{1}".into(),
        },
        &["note"],
        "resolve note with a control character"
    );
    rejects!(
        app,
        &before,
        return_result,
        pb::ReturnResultRequest {
            meta: meta(&rid("bad")),
            dossier_id: processing.clone(),
            note: long.clone(),
        },
        &["note"],
        "return note too long"
    );
    rejects!(
        app,
        &before,
        withdraw,
        pb::WithdrawRequest {
            meta: meta(&rid("bad")),
            dossier_id: processing.clone(),
            reason: String::new(),
        },
        &["reason"],
        "withdraw without reason"
    );
    rejects!(
        app,
        &before,
        stop_processing,
        pb::StopProcessingRequest {
            meta: meta(&rid("bad")),
            dossier_id: processing.clone(),
            reason: long.clone(),
        },
        &["reason"],
        "stop reason too long"
    );
    for (at, what) in [
        (None, "no new appointment"),
        // Before the due date (Tuesday 08:00): the rules reject it against the dossier.
        (
            Some(ts(vn(2024, 3, 4, 17, 0))),
            "appointment before the due date",
        ),
        (
            Some(ts(now + Duration::days(4 * 366))),
            "appointment four years away",
        ),
    ] {
        rejects!(
            app,
            &before,
            extend_due_date,
            pb::ExtendDueDateRequest {
                meta: meta(&rid("bad")),
                dossier_id: processing.clone(),
                new_appointment_at: at,
                reason: "Xin lỗi".into(),
            },
            &["new_appointment_at"],
            what
        );
    }
    for (code, what) in [
        ("", "no procedure"),
        ("3.1", "malformed"),
        ("1.999998", "unknown"),
    ] {
        rejects!(
            app,
            &before,
            change_procedure,
            pb::ChangeProcedureRequest {
                meta: meta(&rid("bad")),
                dossier_id: processing.clone(),
                procedure_code: code.into(),
                reason: "Đổi".into(),
            },
            &["procedure_code"],
            what
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_limits_count_characters_and_allow_line_breaks() {
    let app = spawn_app().await;
    let id = app.reach(S::SubmittedOnline).await;
    // 2000 Vietnamese characters are 6000 bytes: the limit is on characters.
    let reason = format!("{}\n\t", "ế".repeat(1998));
    let response = app
        .client()
        .refuse(pb::RefuseRequest {
            meta: meta(&rid("ok")),
            dossier_id: id,
            reason,
        })
        .await
        .expect("a 2000-character reason with a line break and a tab is accepted")
        .into_inner();
    let refused = expect_payload!(only_event(&response), Refused);
    assert_eq!(refused.reason.chars().count(), 1998, "trimmed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stated_at_may_be_slightly_ahead_for_clock_skew() {
    let app = spawn_app().await;
    let mut request = receive_request(P_ONE_DAY, pb::Channel::Counter);
    request.meta.as_mut().expect("meta").stated_at = Some(ts(app.now() + Duration::seconds(30)));
    app.client()
        .receive(request)
        .await
        .expect("30 s of skew is tolerated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_dossiers_are_not_found_and_codes_in_use_already_exist() {
    let app = spawn_app().await;
    let existing = app.receive(P_ONE_DAY).await.dossier_id;
    let before = app.events().await;
    let unknown = format!("{UNIT}-240304-0999");
    for cmd in Cmd::ALL {
        let result = app.run(cmd, &unknown).await;
        let e = expect_code(
            result,
            Code::NotFound,
            &format!("{cmd:?} on an unknown dossier"),
        );
        assert!(e.message().contains(&unknown), "{}", e.message());
    }
    let e = expect_code(
        app.client()
            .get_dossier(pb::GetDossierRequest {
                dossier_id: unknown.clone(),
            })
            .await,
        Code::NotFound,
        "GetDossier of an unknown dossier",
    );
    assert!(e.message().contains(&unknown));
    expect_invalid(
        app.client()
            .get_dossier(pb::GetDossierRequest {
                dossier_id: "nonsense".into(),
            })
            .await,
        &["dossier_id"],
        "GetDossier of a malformed id",
    );
    expect_invalid(
        app.client()
            .get_dossier(pb::GetDossierRequest::default())
            .await,
        &["dossier_id"],
        "GetDossier without an id",
    );

    let mut dossier = new_dossier(P_ONE_DAY);
    dossier.dossier_code = existing.clone();
    let e = expect_code(
        app.client()
            .receive(pb::ReceiveRequest {
                meta: meta(&rid("dup")),
                dossier: Some(dossier),
                channel: pb::Channel::Postal as i32,
            })
            .await,
        Code::AlreadyExists,
        "receive with a code in use",
    );
    assert!(e.message().contains(&existing));
    app.assert_unchanged(&before, "unknown and duplicate dossiers")
        .await;

    // A caller-chosen code that is free is used as given.
    let mut dossier = new_dossier(P_ONE_DAY);
    dossier.dossier_code = format!("{UNIT}-240301-0042");
    let created = app
        .client()
        .receive(pb::ReceiveRequest {
            meta: meta(&rid("own-code")),
            dossier: Some(dossier),
            channel: pb::Channel::Counter as i32,
        })
        .await
        .expect("a free caller code from an earlier day")
        .into_inner();
    assert_eq!(created.dossier_id, format!("{UNIT}-240301-0042"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_queries_name_bad_fields() {
    let app = spawn_app().await;
    app.receive(P_ONE_DAY).await;
    let cases: Vec<(&str, pb::ListDossiersRequest, &[&str])> = vec![
        (
            "page_size 501",
            pb::ListDossiersRequest {
                page_size: 501,
                ..Default::default()
            },
            &["page_size"],
        ),
        (
            "garbage page token",
            pb::ListDossiersRequest {
                page_token: "garbage".into(),
                ..Default::default()
            },
            &["page_token"],
        ),
        (
            "overdue token with a bad time",
            pb::ListDossiersRequest {
                page_token: "o|yesterday|x".into(),
                overdue_only: true,
                ..Default::default()
            },
            &["page_token"],
        ),
        (
            "DOSSIER_STATUS_UNSPECIFIED",
            pb::ListDossiersRequest {
                statuses: vec![S::Accepted as i32, 0],
                ..Default::default()
            },
            &["statuses[1]"],
        ),
        (
            "unknown status 11",
            pb::ListDossiersRequest {
                statuses: vec![11],
                ..Default::default()
            },
            &["statuses[0]"],
        ),
        (
            "malformed receiving unit",
            pb::ListDossiersRequest {
                receiving_unit: "h22".into(),
                ..Default::default()
            },
            &["receiving_unit"],
        ),
        (
            "malformed competent authority",
            pb::ListDossiersRequest {
                competent_authority: "A B".into(),
                ..Default::default()
            },
            &["competent_authority"],
        ),
    ];
    for (what, request, fields) in cases {
        expect_invalid(app.client().list_dossiers(request).await, fields, what);
    }
    let page = app
        .client()
        .list_dossiers(pb::ListDossiersRequest {
            page_size: 500,
            ..Default::default()
        })
        .await
        .expect("page_size 500 is allowed")
        .into_inner();
    assert_eq!(page.dossiers.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_an_officer_are_unauthenticated() {
    let app = spawn_app().await;
    let id = app.receive(P_ONE_DAY).await.dossier_id;
    let before = app.events().await;
    let mut anonymous = app.anonymous_client();
    expect_code(
        anonymous
            .receive(receive_request(P_ONE_DAY, pb::Channel::Counter))
            .await,
        Code::Unauthenticated,
        "receive without an officer",
    );
    expect_code(
        anonymous
            .resolve(pb::ResolveRequest {
                meta: meta(&rid("anon")),
                dossier_id: id.clone(),
                electronic_result: false,
                note: String::new(),
            })
            .await,
        Code::Unauthenticated,
        "resolve without an officer",
    );
    expect_code(
        anonymous
            .get_dossier(pb::GetDossierRequest {
                dossier_id: id.clone(),
            })
            .await,
        Code::Unauthenticated,
        "get without an officer",
    );
    expect_code(
        anonymous
            .list_dossiers(pb::ListDossiersRequest::default())
            .await,
        Code::Unauthenticated,
        "list without an officer",
    );
    // Blank officer, overlong officer, malformed unit header.
    for (officer, unit, what) in [
        ("   ", None, "blank officer"),
        ("o", Some("not a unit"), "malformed x-motcua-unit"),
    ] {
        let mut request = tonic::Request::new(receive_request(P_ONE_DAY, pb::Channel::Counter));
        request.metadata_mut().insert(
            "x-motcua-officer",
            MetadataValue::try_from(officer).expect("ascii"),
        );
        if let Some(unit) = unit {
            request.metadata_mut().insert(
                "x-motcua-unit",
                MetadataValue::try_from(unit).expect("ascii"),
            );
        }
        expect_code(
            app.anonymous_client().receive(request).await,
            Code::Unauthenticated,
            what,
        );
    }
    let mut request = tonic::Request::new(receive_request(P_ONE_DAY, pb::Channel::Counter));
    request.metadata_mut().insert(
        "x-motcua-officer",
        MetadataValue::try_from("o".repeat(129)).expect("ascii"),
    );
    expect_code(
        app.anonymous_client().receive(request).await,
        Code::Unauthenticated,
        "officer of 129 characters",
    );
    app.assert_unchanged(&before, "unauthenticated calls").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_is_refused_before_it_is_read() {
    let app = spawn_app().await;
    let id = app.receive(P_ONE_DAY).await.dossier_id;
    let before = app.events().await;
    // 300 KiB, over the 256 KiB limit of IntakeConfig::default().
    let result = app
        .client()
        .resolve(pb::ResolveRequest {
            meta: meta(&rid("big")),
            dossier_id: id,
            electronic_result: false,
            note: "x".repeat(300 * 1024),
        })
        .await;
    let status = result.expect_err("an oversized request is refused");
    assert!(
        matches!(status.code(), Code::ResourceExhausted | Code::OutOfRange),
        "{status:?}"
    );
    app.assert_unchanged(&before, "oversized request").await;
}
