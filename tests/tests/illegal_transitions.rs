//! The lifecycle table, end to end: every command in every status it is not allowed in gets
//! FAILED_PRECONDITION naming the current status and changes nothing; every command in every
//! status it is allowed in succeeds. Generated from [`Cmd::allowed_in`], not written case by
//! case.

use futures::StreamExt;
use futures::future::join_all;
use motcua_proto::v1 as pb;
use motcua_tests::*;
use tonic::Code;

/// One dossier in each status, in [`ALL_STATUSES`] order.
async fn one_dossier_per_status(app: &TestApp) -> Vec<(DossierStatus, String)> {
    join_all(
        ALL_STATUSES
            .iter()
            .map(|status| async move { (*status, app.reach(*status).await) }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_illegal_transition_is_refused_naming_the_status_and_changes_nothing() {
    let app = spawn_app().await;
    let dossiers = one_dossier_per_status(&app).await;
    let before = app.events().await;
    let versions: Vec<u64> = join_all(dossiers.iter().map(|(_, id)| app.get(id)))
        .await
        .iter()
        .map(|d| d.version)
        .collect();

    let cases: Vec<(Cmd, DossierStatus, &str)> = Cmd::ALL
        .iter()
        .flat_map(|cmd| {
            dossiers
                .iter()
                .filter(|(status, _)| !cmd.allowed_in().contains(status))
                .map(move |(status, id)| (*cmd, *status, id.as_str()))
        })
        .collect();
    // 15 commands x 10 statuses = 150 pairs, 42 of them legal.
    assert_eq!(cases.len(), 108, "the table has 108 illegal pairs");

    let now = app.now();
    let client = app.client();
    let results: Vec<_> = futures::stream::iter(cases)
        .map(|(cmd, status, id)| {
            let client = client.clone();
            async move {
                let result = cmd.send(&client, id, meta(&rid(cmd.name())), now).await;
                (cmd, status, id, result)
            }
        })
        .buffer_unordered(24)
        .collect()
        .await;

    let mut failures = Vec::new();
    for (cmd, status, id, result) in results {
        match result {
            Err(e) if e.code() == Code::FailedPrecondition => {
                let label = status_label(status);
                if !e.message().contains(&format!("it is {label}")) || !e.message().contains(id) {
                    failures.push(format!(
                        "{cmd:?} in {label}: message does not name the status and the dossier: {}",
                        e.message()
                    ));
                }
            }
            other => failures.push(format!(
                "{cmd:?} in {status:?}: expected FAILED_PRECONDITION, got {other:?}"
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} illegal transitions misbehaved:\n{}",
        failures.len(),
        failures.join("\n")
    );
    app.assert_unchanged(&before, "after 108 illegal commands")
        .await;
    for ((status, id), version) in dossiers.iter().zip(versions) {
        let dossier = app.get(id).await;
        assert_eq!(dossier.status(), *status);
        assert_eq!(dossier.version, version);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_legal_transition_is_accepted() {
    let app = spawn_app().await;
    let cases: Vec<(Cmd, DossierStatus)> = Cmd::ALL
        .iter()
        .flat_map(|cmd| cmd.allowed_in().iter().map(move |status| (*cmd, *status)))
        .collect();
    assert_eq!(cases.len(), 42);
    let app = &app;
    let failures: Vec<String> = futures::stream::iter(cases)
        .map(|(cmd, status)| async move {
            let id = app.reach(status).await;
            let before = app.get(&id).await.version;
            match app.run(cmd, &id).await {
                Ok(response) if response.version == before + 1 && response.events.len() == 1 => {
                    None
                }
                other => Some(format!("{cmd:?} in {status:?}: {other:?}")),
            }
        })
        .buffer_unordered(8)
        .filter_map(|failure| async move { failure })
        .collect()
        .await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_a_dossier_whose_code_exists_is_already_exists_in_every_status() {
    let app = spawn_app().await;
    let dossiers = one_dossier_per_status(&app).await;
    let before = app.events().await;
    for (status, id) in &dossiers {
        let mut dossier = new_dossier(P_ONE_DAY);
        dossier.dossier_code = id.clone();
        let receive = app
            .client()
            .receive(pb::ReceiveRequest {
                meta: meta(&rid("dup")),
                dossier: Some(dossier.clone()),
                channel: pb::Channel::Counter as i32,
            })
            .await;
        let e = expect_code(receive, Code::AlreadyExists, &format!("receive {status:?}"));
        assert!(e.message().contains(id.as_str()), "{}", e.message());
        let submit = app
            .client()
            .submit_online(pb::SubmitOnlineRequest {
                meta: meta(&rid("dup")),
                dossier: Some(dossier),
            })
            .await;
        expect_code(submit, Code::AlreadyExists, &format!("submit {status:?}"));
    }
    app.assert_unchanged(&before, "after creating existing codes")
        .await;
}
