//! Durability across a restart, and the daily dossier-code sequences.

use chrono::Duration;
use motcua_proto::v1 as pb;
use motcua_proto::v1::DossierStatus as S;
use motcua_tests::*;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_dossiers_survive_a_restart_and_the_sequence_continues() {
    let app = spawn_app().await;
    let first = app.receive(P_TEN_DAYS).await.dossier_id;
    let second = app.receive(P_ONE_DAY).await.dossier_id;
    app.ok(Cmd::Forward, &first).await;
    app.ok(Cmd::RequestSupplement, &first).await;
    let resolve = pb::ResolveRequest {
        meta: meta("resolve-before-restart"),
        dossier_id: second.clone(),
        electronic_result: true,
        note: String::new(),
    };
    let resolved = app
        .client()
        .resolve(resolve.clone())
        .await
        .expect("resolve")
        .into_inner();
    let events_before = app.events().await;
    let first_before = app.get(&first).await;
    let second_before = app.get(&second).await;
    let db_path = app.db_path.clone();

    let dir = app.stop().await;
    let app = spawn_app_in(dir, vn(2024, 3, 4, 14, 0)).await;
    assert_eq!(app.db_path, db_path);

    assert_eq!(
        app.events().await,
        events_before,
        "the same events, same positions"
    );
    assert_eq!(app.get(&first).await, first_before);
    assert_eq!(app.get(&second).await.history, second_before.history);
    assert_eq!(app.get(&first).await.status(), S::SupplementRequested);
    // The request record survived too: the retry is a replay.
    let retry = app
        .client()
        .resolve(resolve)
        .await
        .expect("retry after the restart")
        .into_inner();
    assert!(retry.replayed);
    assert_eq!(retry.events, resolved.events);
    // The dossiers carry on, and the day's sequence continues where it stopped.
    app.ok(Cmd::ReceiveSupplement, &first).await;
    assert_eq!(app.get(&first).await.version, 4);
    assert_eq!(
        app.receive(P_ONE_DAY).await.dossier_id,
        format!("{UNIT}-240304-0003")
    );
    let head = app.events().await;
    assert_eq!(head.len(), events_before.len() + 2);
    assert!(
        head.windows(2).all(|w| w[0].position < w[1].position),
        "positions keep growing after the restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_are_numbered_per_unit_per_vietnam_day() {
    // 23:30 on Monday 4 March in Vietnam is 16:30 UTC the same day.
    let app = spawn_app_at(vn(2024, 3, 4, 23, 30)).await;
    assert_eq!(
        app.receive(P_ONE_DAY).await.dossier_id,
        format!("{UNIT}-240304-0001")
    );
    let mut elsewhere = receive_request(P_ONE_DAY, pb::Channel::Counter);
    elsewhere.dossier.as_mut().expect("dossier").receiving_unit = OTHER_UNIT.into();
    let other = app
        .client()
        .receive(elsewhere)
        .await
        .expect("receive at another unit")
        .into_inner();
    assert_eq!(other.dossier_id, format!("{OTHER_UNIT}-240304-0001"));
    assert_eq!(
        app.submit_online(P_ONE_DAY).await.dossier_id,
        format!("{UNIT}-240304-0002"),
        "online submissions share the unit's sequence"
    );
    // 00:30 on Tuesday 5 March in Vietnam is still Monday 17:30 UTC: a new Vietnam day.
    app.advance(Duration::hours(1));
    assert_eq!(
        app.receive(P_ONE_DAY).await.dossier_id,
        format!("{UNIT}-240305-0001")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_allocated_code_never_collides_with_a_caller_chosen_one() {
    let app = spawn_app().await;
    let mut own = new_dossier(P_ONE_DAY);
    own.dossier_code = format!("{UNIT}-240304-0001");
    app.client()
        .receive(pb::ReceiveRequest {
            meta: meta(&rid("own")),
            dossier: Some(own),
            channel: pb::Channel::Counter as i32,
        })
        .await
        .expect("the caller's own code");
    let allocated = app
        .client()
        .receive(receive_request(P_ONE_DAY, pb::Channel::Counter))
        .await;
    let allocated = match allocated {
        Ok(response) => response.into_inner(),
        Err(status) => {
            assert_ne!(status.code(), Code::AlreadyExists, "{status:?}");
            panic!("receive without a code failed: {status:?}");
        }
    };
    assert_ne!(allocated.dossier_id, format!("{UNIT}-240304-0001"));
}
