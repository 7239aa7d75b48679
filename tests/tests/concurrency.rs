//! Concurrency: conflicting commands on one dossier (exactly one wins), non-conflicting ones
//! (all win, seq numbers without gaps), and concurrent code allocation.

use std::collections::BTreeSet;

use futures::future::join_all;
use motcua_proto::v1 as pb;
use motcua_proto::v1::DossierStatus as S;
use motcua_tests::*;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_commands_on_one_dossier_let_exactly_one_win() {
    let app = spawn_app().await;
    // Two counters, two connections.
    let desk_a = app.new_connection().await;
    let desk_b = app.new_connection().await;
    let ids: Vec<String> = join_all((0..20).map(|_| app.receive(P_ONE_DAY)))
        .await
        .into_iter()
        .map(|r| r.dossier_id)
        .collect();
    let now = app.now();
    let rounds = join_all(ids.iter().map(|id| {
        let (a, b) = (desk_a.clone(), desk_b.clone());
        async move {
            let (resolved, withdrawn) = tokio::join!(
                Cmd::Resolve.send(&a, id, meta(&rid("resolve")), now),
                Cmd::Withdraw.send(&b, id, meta(&rid("withdraw")), now),
            );
            (id, resolved, withdrawn)
        }
    }))
    .await;
    let mut wins = (0, 0);
    for (id, resolved, withdrawn) in rounds {
        let (winner, loser, status) = match (&resolved, &withdrawn) {
            (Ok(w), Err(l)) => {
                wins.0 += 1;
                (w, l, S::Resolved)
            }
            (Err(l), Ok(w)) => {
                wins.1 += 1;
                (w, l, S::Withdrawn)
            }
            other => panic!("{id}: exactly one of resolve / withdraw must win: {other:?}"),
        };
        assert!(
            matches!(loser.code(), Code::FailedPrecondition | Code::Aborted),
            "{id}: the loser gets FAILED_PRECONDITION or ABORTED: {loser:?}"
        );
        assert_eq!(winner.version, 2);
        let dossier = app.get(id).await;
        assert_eq!(dossier.status(), status, "{id}");
        assert_eq!(dossier.version, 2, "{id}: one event appended, not two");
    }
    assert_eq!(wins.0 + wins.1, 20);
    assert_eq!(app.events().await.len(), 40);
}

/// `n` digitisations at once on one dossier, each from its own task.
async fn concurrent_digitisations(n: usize) {
    let app = spawn_app().await;
    let id = app.receive(P_ONE_DAY).await.dossier_id;
    let desks = join_all((0..4).map(|_| app.new_connection())).await;
    let now = app.now();
    let results = join_all((0..n).map(|i| {
        let desk = desks[i % desks.len()].clone();
        let id = id.clone();
        tokio::spawn(async move {
            Cmd::DigitizeComponent
                .send(&desk, &id, meta(&format!("dig-{i}")), now)
                .await
        })
    }))
    .await;
    let mut failures = Vec::new();
    let mut versions = BTreeSet::new();
    for (i, result) in results.into_iter().enumerate() {
        match result.expect("the task does not panic") {
            Ok(response) => {
                versions.insert(response.version);
            }
            Err(status) => {
                failures.push(format!("dig-{i}: {:?} {}", status.code(), status.message()))
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} non-conflicting digitisations failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let expected: BTreeSet<u64> = (2..=n as u64 + 1).collect();
    assert_eq!(versions, expected, "each got its own version");
    let events = app.dossier_events(&id).await;
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=n as u64 + 1).collect::<Vec<_>>(),
        "contiguous seq numbers"
    );
    let dossier = app.get(&id).await;
    assert_eq!(dossier.version, n as u64 + 1);
    assert_eq!(dossier.status(), S::Accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_few_concurrent_non_conflicting_commands_on_one_dossier_all_succeed() {
    // Deterministic: each of the 8 can lose at most 7 times (once per other commit), and the
    // handler decides a command up to 8 times.
    concurrent_digitisations(8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_non_conflicting_commands_on_one_dossier_all_succeed() {
    concurrent_digitisations(40).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_code_allocation_gives_distinct_consecutive_codes() {
    const TASKS: usize = 50;
    const PER_TASK: usize = 40;
    let app = spawn_app().await;
    let desks = join_all((0..5).map(|_| app.new_connection())).await;
    let tasks = (0..TASKS).map(|t| {
        let mut desk = desks[t % desks.len()].clone();
        tokio::spawn(async move {
            let mut codes = Vec::with_capacity(PER_TASK);
            for _ in 0..PER_TASK {
                let response = desk
                    .receive(receive_request(P_ONE_DAY, pb::Channel::Counter))
                    .await
                    .expect("receive without a code")
                    .into_inner();
                codes.push(response.dossier_id);
            }
            codes
        })
    });
    let mut codes = Vec::new();
    for task in join_all(tasks).await {
        codes.extend(task.expect("the task does not panic"));
    }
    assert_eq!(codes.len(), TASKS * PER_TASK);
    let distinct: BTreeSet<&String> = codes.iter().collect();
    assert_eq!(distinct.len(), codes.len(), "every code is distinct");
    let expected: BTreeSet<String> = (1..=TASKS * PER_TASK)
        .map(|n| format!("{UNIT}-240304-{n:04}"))
        .collect();
    let got: BTreeSet<String> = codes.into_iter().collect();
    assert_eq!(got, expected, "numbered 0001..2000 for the day");
    assert_eq!(app.events().await.len(), TASKS * PER_TASK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_of_one_caller_chosen_code_make_one_dossier() {
    let app = spawn_app().await;
    let code = format!("{UNIT}-240304-0777");
    let results = join_all((0..10).map(|i| {
        let mut client = app.client();
        let mut dossier = new_dossier(P_ONE_DAY);
        dossier.dossier_code = code.clone();
        async move {
            client
                .receive(pb::ReceiveRequest {
                    meta: meta(&format!("same-code-{i}")),
                    dossier: Some(dossier),
                    channel: pb::Channel::Counter as i32,
                })
                .await
        }
    }))
    .await;
    let (won, lost): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    assert_eq!(won.len(), 1, "exactly one create wins");
    for loss in lost {
        let status = loss.expect_err("lost");
        assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    }
    assert_eq!(app.events().await.len(), 1);
}
