//! Request ids: a retry is answered from the record and appends nothing; the same id with
//! other content is refused; stale expected versions are ABORTED.

use futures::future::join_all;
use motcua_proto::v1 as pb;
use motcua_proto::v1::DossierStatus as S;
use motcua_tests::*;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_command_twice_is_replayed_and_appends_nothing() {
    let app = spawn_app().await;
    let id = app.receive(P_ONE_DAY).await.dossier_id;
    let request = pb::ResolveRequest {
        meta: meta("resolve-once"),
        dossier_id: id.clone(),
        electronic_result: true,
        note: "Xong".into(),
    };
    let first = app
        .client()
        .resolve(request.clone())
        .await
        .expect("first")
        .into_inner();
    assert!(!first.replayed);
    let after_first = app.events().await;
    let second = app
        .client()
        .resolve(request.clone())
        .await
        .expect("retry")
        .into_inner();
    assert!(second.replayed);
    assert_eq!(second.dossier_id, first.dossier_id);
    assert_eq!(second.version, first.version);
    assert_eq!(
        second.events, first.events,
        "the original events, unchanged"
    );
    app.assert_unchanged(&after_first, "a replayed resolve")
        .await;

    // Still replayed after the dossier moved on: not judged against the new status.
    app.ok(Cmd::ReturnResult, &id).await;
    let after_return = app.events().await;
    let third = app
        .client()
        .resolve(request)
        .await
        .expect("retry after the dossier moved on")
        .into_inner();
    assert!(third.replayed);
    assert_eq!(third.events, first.events);
    assert_eq!(
        third.version, 2,
        "the version the original command produced"
    );
    app.assert_unchanged(&after_return, "a late replay").await;
    assert_eq!(app.get(&id).await.status(), S::ResultReturned);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_with_a_server_allocated_code_retried_is_the_same_dossier() {
    let app = spawn_app().await;
    let request = receive_request(P_ONE_DAY, pb::Channel::Counter);
    let first = app
        .client()
        .receive(request.clone())
        .await
        .expect("first")
        .into_inner();
    let after_first = app.events().await;
    // Retried later the same day, and the next day: the same dossier, no second one.
    for at in [vn(2024, 3, 4, 16, 0), vn(2024, 3, 5, 9, 0)] {
        app.set_time(at);
        let retry = app
            .client()
            .receive(request.clone())
            .await
            .expect("retry")
            .into_inner();
        assert!(retry.replayed);
        assert_eq!(retry.dossier_id, first.dossier_id);
        assert_eq!(retry.events, first.events);
    }
    app.assert_unchanged(&after_first, "retried creates").await;
    let listed = app
        .client()
        .list_dossiers(pb::ListDossiersRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.dossiers.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_of_one_create_make_one_dossier() {
    let app = spawn_app().await;
    let request = receive_request(P_ONE_DAY, pb::Channel::Counter);
    let responses = join_all((0..10).map(|_| {
        let mut client = app.client();
        let request = request.clone();
        async move {
            client
                .receive(request)
                .await
                .map(tonic::Response::into_inner)
        }
    }))
    .await;
    let responses: Vec<pb::CommandResponse> = responses
        .into_iter()
        .map(|r| r.expect("every retry succeeds"))
        .collect();
    let first = &responses[0];
    assert!(
        responses
            .iter()
            .all(|r| r.dossier_id == first.dossier_id && r.events == first.events),
        "{responses:#?}"
    );
    assert_eq!(responses.iter().filter(|r| !r.replayed).count(), 1);
    let events = app.events().await;
    assert_eq!(events.len(), 1, "one dossier, one event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_request_id_with_other_content_is_refused() {
    let app = spawn_app().await;
    let id = app.receive(P_ONE_DAY).await.dossier_id;
    let other = app.receive(P_ONE_DAY).await.dossier_id;
    app.client()
        .withdraw(pb::WithdrawRequest {
            meta: meta("req-1"),
            dossier_id: id.clone(),
            reason: "Rút".into(),
        })
        .await
        .expect("withdraw");
    let before = app.events().await;

    let reused = |dossier_id: &str, reason: &str| pb::WithdrawRequest {
        meta: meta("req-1"),
        dossier_id: dossier_id.into(),
        reason: reason.into(),
    };
    expect_invalid(
        app.client().withdraw(reused(&id, "Lý do khác")).await,
        &["meta.request_id"],
        "other reason",
    );
    expect_invalid(
        app.client().withdraw(reused(&other, "Rút")).await,
        &["meta.request_id"],
        "other dossier",
    );
    expect_invalid(
        app.client_as("officer-b")
            .withdraw(reused(&id, "Rút"))
            .await,
        &["meta.request_id"],
        "other officer",
    );
    expect_invalid(
        app.client()
            .receive(pb::ReceiveRequest {
                meta: meta("req-1"),
                dossier: Some(new_dossier(P_ONE_DAY)),
                channel: pb::Channel::Counter as i32,
            })
            .await,
        &["meta.request_id"],
        "a create",
    );
    let mut with_version = reused(&id, "Rút");
    with_version.meta.as_mut().expect("meta").expected_version = Some(1);
    expect_invalid(
        app.client().withdraw(with_version).await,
        &["meta.request_id"],
        "an added expected_version",
    );
    app.assert_unchanged(&before, "request id reuse").await;
    assert_eq!(app.get(&other).await.status(), S::Accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_request_id_for_another_command_is_refused() {
    let app = spawn_app().await;
    let id = app.receive(P_ONE_DAY).await.dossier_id;
    app.client()
        .withdraw(pb::WithdrawRequest {
            meta: meta("req-shape"),
            dossier_id: id.clone(),
            reason: "Có lý do".into(),
        })
        .await
        .expect("withdraw");
    let before = app.events().await;
    // A StopProcessingRequest encodes to exactly the same bytes as that WithdrawRequest.
    let result = app
        .client()
        .stop_processing(pb::StopProcessingRequest {
            meta: meta("req-shape"),
            dossier_id: id.clone(),
            reason: "Có lý do".into(),
        })
        .await;
    expect_invalid(result, &["meta.request_id"], "stop with the withdraw's id");
    app.assert_unchanged(&before, "request id reused for another rpc")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_command_leaves_its_request_id_free() {
    let app = spawn_app().await;
    let id = app.reach(S::SubmittedOnline).await;
    let request = pb::ResolveRequest {
        meta: meta("resolve-too-early"),
        dossier_id: id.clone(),
        electronic_result: false,
        note: String::new(),
    };
    expect_code(
        app.client().resolve(request.clone()).await,
        Code::FailedPrecondition,
        "resolve before acceptance",
    );
    app.ok(Cmd::AcceptOnline, &id).await;
    let response = app
        .client()
        .resolve(request)
        .await
        .expect("the same request id, now legal")
        .into_inner();
    assert!(!response.replayed);
    assert_eq!(response.version, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_expected_version_is_aborted_with_the_current_version() {
    let app = spawn_app().await;
    let id = app.receive(P_ONE_DAY).await.dossier_id;
    app.ok(Cmd::DigitizeComponent, &id).await;
    app.ok(Cmd::DigitizeComponent, &id).await;
    let before = app.events().await;
    for stale in [0, 1, 2, 4, 99] {
        let e = expect_code(
            Cmd::Resolve
                .send(
                    &app.client(),
                    &id,
                    meta_at_version(&rid("stale"), stale),
                    app.now(),
                )
                .await,
            Code::Aborted,
            &format!("expected_version {stale}"),
        );
        assert!(
            e.message().contains("version 3"),
            "the message carries the current version: {}",
            e.message()
        );
        assert!(e.message().contains(&id), "{}", e.message());
    }
    app.assert_unchanged(&before, "stale versions").await;
    let response = Cmd::Resolve
        .send(
            &app.client(),
            &id,
            meta_at_version(&rid("fresh"), 3),
            app.now(),
        )
        .await
        .expect("the current version is accepted");
    assert_eq!(response.version, 4);

    // On a create, the expected version of a dossier that does not exist yet is 0.
    let mut create = receive_request(P_ONE_DAY, pb::Channel::Counter);
    create.meta.as_mut().expect("meta").expected_version = Some(0);
    app.client()
        .receive(create)
        .await
        .expect("expected_version 0 on a create");
    let mut create = receive_request(P_ONE_DAY, pb::Channel::Counter);
    create.meta.as_mut().expect("meta").expected_version = Some(1);
    expect_code(
        app.client().receive(create).await,
        Code::Aborted,
        "expected_version 1 on a create",
    );
}
