//! The event store scenario: written once against the `EventStore` trait, run against every
//! implementation by the thin wrappers at the end (`sqlite::*`, `postgres::*`).
//!
//! The PostgreSQL wrappers need `DATABASE_URL` (a server whose user may create databases; each
//! test gets a database of its own). Without it they are skipped, or fail when
//! `MOTCUA_REQUIRE_POSTGRES=1`. `scripts/test-env.sh -- cargo test -p motcua-store` provides
//! both.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Duration, Utc};
use common::{append, applicant, at, day, row};
use futures::future::join_all;
use motcua_store::{
    AppendOutcome, DossierRow, EventStore, ListFilter, PageKey, StoreError, StoredEvent,
};

/// Every event in the store, in position order.
async fn all_events(store: &dyn EventStore) -> Vec<StoredEvent> {
    store
        .events_after(0, u32::MAX)
        .await
        .expect("read every event")
}

fn assert_strictly_increasing(events: &[StoredEvent]) {
    for pair in events.windows(2) {
        assert!(
            pair[0].position < pair[1].position,
            "positions must strictly increase: {} then {}",
            pair[0].position,
            pair[1].position
        );
    }
}

fn appended(outcome: AppendOutcome) -> Vec<StoredEvent> {
    match outcome {
        AppendOutcome::Appended(events) => events,
        AppendOutcome::Replayed(events) => panic!("expected an append, got a replay of {events:?}"),
    }
}

/// Appending to a new dossier, reading it back by dossier, by position and by request id.
async fn append_and_read_back(store: &dyn EventStore) {
    assert_eq!(store.head_position().await.expect("head"), 0);
    assert!(all_events(store).await.is_empty());
    assert!(store.dossier_events("HS-1").await.expect("read").is_empty());
    assert!(store.recorded_request("r-1").await.expect("read").is_none());

    let request = append("HS-1", "r-1", 0, 2);
    let first = appended(store.append(request.clone()).await.expect("append HS-1"));
    assert_eq!(first.len(), 2);
    for (stored, sent) in first.iter().zip(&request.events) {
        assert!(stored.position > 0);
        assert_eq!(stored.dossier_id, "HS-1");
        assert_eq!(stored.seq, sent.seq);
        assert_eq!(stored.event_id, sent.event_id);
        assert_eq!(stored.event_type, sent.event_type);
        assert_eq!(stored.recorded_at, sent.recorded_at);
        assert_eq!(stored.request_id, "r-1");
        assert_eq!(stored.payload, sent.payload);
    }
    assert_strictly_increasing(&first);
    assert_eq!(store.dossier_events("HS-1").await.expect("read"), first);
    assert_eq!(all_events(store).await, first);
    let recorded = store
        .recorded_request("r-1")
        .await
        .expect("read")
        .expect("r-1 is recorded");
    assert_eq!(recorded.fingerprint, request.fingerprint);
    assert_eq!(recorded.events, first);

    let second = appended(
        store
            .append(append("HS-2", "r-2", 0, 1))
            .await
            .expect("append HS-2"),
    );
    let third = appended(
        store
            .append(append("HS-1", "r-3", 2, 3))
            .await
            .expect("append HS-1 again"),
    );
    assert_eq!(
        third.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    let expected: Vec<StoredEvent> = first.iter().chain(&second).chain(&third).cloned().collect();
    let everything = all_events(store).await;
    assert_eq!(
        everything, expected,
        "events_after(0) is every event in commit order"
    );
    assert_strictly_increasing(&everything);

    let hs1: Vec<StoredEvent> = first.iter().chain(&third).cloned().collect();
    assert_eq!(store.dossier_events("HS-1").await.expect("read"), hs1);
    assert_eq!(store.dossier_events("HS-2").await.expect("read"), second);

    // Following by position, a page at a time, yields the same events.
    let mut followed = Vec::new();
    let mut cursor = 0;
    loop {
        let page = store.events_after(cursor, 2).await.expect("read a page");
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        cursor = last.position;
        followed.extend(page);
    }
    assert_eq!(followed, everything);
    let after_first = store
        .events_after(first[0].position, 100)
        .await
        .expect("read");
    assert_eq!(after_first, everything[1..]);

    let head = store.head_position().await.expect("head");
    assert_eq!(head, everything.last().expect("events").position);
    assert!(store.events_after(head, 10).await.expect("read").is_empty());
}

/// Many dossiers' histories in one read: each dossier's events together and in seq order,
/// exactly what reading them one by one gives; unknown ids give nothing.
async fn many_dossier_events(store: &dyn EventStore) {
    assert!(
        store
            .many_dossier_events(&[])
            .await
            .expect("read none")
            .is_empty()
    );
    // Interleaved appends, so commit order and dossier order differ.
    for (dossier, request, version, count) in [
        ("HS-B", "r-1", 0, 2),
        ("HS-A", "r-2", 0, 1),
        ("HS-B", "r-3", 2, 1),
        ("HS-C", "r-4", 0, 3),
        ("HS-A", "r-5", 1, 2),
    ] {
        store
            .append(append(dossier, request, version, count))
            .await
            .expect("append");
    }
    let read = store
        .many_dossier_events(&["HS-C", "HS-404", "HS-A", "HS-B"])
        .await
        .expect("read many");
    let mut by_dossier: Vec<Vec<StoredEvent>> = read
        .chunk_by(|a, b| a.dossier_id == b.dossier_id)
        .map(<[StoredEvent]>::to_vec)
        .collect();
    assert_eq!(by_dossier.len(), 3, "one run per known dossier: {read:?}");
    by_dossier.sort_by(|a, b| a[0].dossier_id.cmp(&b[0].dossier_id));
    for (history, id) in by_dossier.iter().zip(["HS-A", "HS-B", "HS-C"]) {
        assert_eq!(history, &store.dossier_events(id).await.expect("read one"));
    }
    assert_eq!(
        by_dossier.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![3, 3, 3]
    );
}

/// A stale expected version is refused with the actual version, and appends nothing.
async fn stale_version_conflicts(store: &dyn EventStore) {
    appended(
        store
            .append(append("HS-1", "r-1", 0, 2))
            .await
            .expect("append"),
    );
    let before = all_events(store).await;
    let head = store.head_position().await.expect("head");

    for (expected, request_id) in [(0, "r-stale-0"), (1, "r-stale-1"), (7, "r-ahead-7")] {
        let error = store
            .append(append("HS-1", request_id, expected, 1))
            .await
            .expect_err("a stale version is refused");
        match error {
            StoreError::VersionConflict {
                dossier_id,
                expected: reported,
                actual,
            } => {
                assert_eq!(dossier_id, "HS-1");
                assert_eq!(reported, expected);
                assert_eq!(actual, 2);
            }
            other => panic!("expected a version conflict, got {other:?}"),
        }
        assert!(
            store
                .recorded_request(request_id)
                .await
                .expect("read")
                .is_none(),
            "a refused command records no request id"
        );
    }
    // A dossier that does not exist is at version 0.
    match store.append(append("HS-404", "r-missing", 3, 1)).await {
        Err(StoreError::VersionConflict { actual: 0, .. }) => {}
        other => panic!("expected a version conflict at 0, got {other:?}"),
    }

    assert_eq!(all_events(store).await, before, "nothing was appended");
    assert_eq!(store.head_position().await.expect("head"), head);
    assert!(
        store
            .dossier_events("HS-404")
            .await
            .expect("read")
            .is_empty()
    );
    let rows = store
        .list_dossiers(&ListFilter {
            limit: 10,
            ..ListFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].version, 2);
}

/// The same request id with the same fingerprint is answered with the original events.
async fn same_request_is_replayed(store: &dyn EventStore) {
    let request = append("HS-1", "r-1", 0, 2);
    let original = appended(store.append(request.clone()).await.expect("append"));
    let head = store.head_position().await.expect("head");

    match store.append(request.clone()).await.expect("replay") {
        AppendOutcome::Replayed(events) => assert_eq!(events, original),
        other => panic!("expected a replay, got {other:?}"),
    }
    // Still the original answer once the dossier moved on, although the retry's expected
    // version is now stale.
    appended(
        store
            .append(append("HS-1", "r-2", 2, 1))
            .await
            .expect("append"),
    );
    match store.append(request).await.expect("replay") {
        AppendOutcome::Replayed(events) => assert_eq!(events, original),
        other => panic!("expected a replay, got {other:?}"),
    }
    let events = store.dossier_events("HS-1").await.expect("read");
    assert_eq!(events.len(), 3, "replays appended nothing");
    assert_eq!(store.head_position().await.expect("head"), head + 1);
    assert_eq!(all_events(store).await.len(), 3);
}

/// The same request id with another fingerprint is a different command: refused.
async fn reused_request_id_is_refused(store: &dyn EventStore) {
    let original = appended(
        store
            .append(append("HS-1", "r-1", 0, 1))
            .await
            .expect("append"),
    );
    let before = all_events(store).await;

    let mut other = append("HS-1", "r-1", 1, 1);
    other.fingerprint = b"another command".to_vec();
    let mut elsewhere = append("HS-2", "r-1", 0, 1);
    elsewhere.fingerprint = b"yet another command".to_vec();
    for request in [other, elsewhere] {
        match store.append(request).await {
            Err(StoreError::RequestIdReused { request_id }) => assert_eq!(request_id, "r-1"),
            other => panic!("expected a reused request id, got {other:?}"),
        }
    }
    assert_eq!(all_events(store).await, before, "nothing was appended");
    assert!(store.dossier_events("HS-2").await.expect("read").is_empty());
    let recorded = store
        .recorded_request("r-1")
        .await
        .expect("read")
        .expect("recorded");
    assert_eq!(recorded.fingerprint, b"fingerprint of r-1".to_vec());
    assert_eq!(recorded.events, original);
}

/// Concurrent appends decided on the same version: exactly one wins, on a new dossier and on
/// an existing one, round after round.
async fn concurrent_appends_one_wins(store: &dyn EventStore) {
    const CONTENDERS: usize = 6;
    for round in 0..5u64 {
        let dossier = format!("HS-race-{round}");
        let mut version = 0;
        for step in 0..3u64 {
            let requests: Vec<_> = (0..CONTENDERS)
                .map(|c| append(&dossier, &format!("r-{round}-{step}-{c}"), version, 2))
                .collect();
            let results = join_all(requests.iter().map(|r| store.append(r.clone()))).await;
            let mut winners = Vec::new();
            for (request, result) in requests.iter().zip(results) {
                match result {
                    Ok(AppendOutcome::Appended(events)) => winners.push((request, events)),
                    Err(StoreError::VersionConflict {
                        expected, actual, ..
                    }) => {
                        assert_eq!(expected, version);
                        assert_eq!(
                            actual,
                            version + 2,
                            "the conflict names the winner's version"
                        );
                    }
                    other => panic!("expected an append or a version conflict, got {other:?}"),
                }
            }
            assert_eq!(winners.len(), 1, "exactly one concurrent append wins");
            let (winner, events) = winners.pop().expect("one winner");
            version += 2;
            let stored = store.dossier_events(&dossier).await.expect("read");
            assert_eq!(stored.len() as u64, version);
            assert_eq!(&stored[stored.len() - 2..], &events[..]);
            assert!(
                stored[stored.len() - 2..]
                    .iter()
                    .all(|e| e.request_id == winner.request_id)
            );
        }
    }
    let everything = all_events(store).await;
    assert_eq!(everything.len(), 5 * 3 * 2);
    assert_strictly_increasing(&everything);
}

/// The same command sent several times at once (a client retrying before the first answer):
/// one append, and every other copy is answered as a replay of it.
async fn concurrent_duplicates_are_replayed(store: &dyn EventStore) {
    for round in 0..5u64 {
        let request = append(&format!("HS-dup-{round}"), &format!("r-dup-{round}"), 0, 2);
        let results = join_all((0..6).map(|_| store.append(request.clone()))).await;
        let mut original = None;
        let mut replays = Vec::new();
        for result in results {
            match result.expect("a duplicate is not an error") {
                AppendOutcome::Appended(events) => {
                    assert!(original.is_none(), "only one copy appends");
                    original = Some(events);
                }
                AppendOutcome::Replayed(events) => replays.push(events),
            }
        }
        let original = original.expect("one copy appends");
        assert_eq!(replays.len(), 5);
        assert!(replays.iter().all(|events| *events == original));
    }
    assert_eq!(all_events(store).await.len(), 10);
}

/// A reader following `events_after` while writers append concurrently sees every event, in
/// order, without skipping one that committed late with a lower position.
async fn follower_sees_every_event(store: &dyn EventStore) {
    const WRITERS: usize = 8;
    const APPENDS: u64 = 15;
    let done = AtomicBool::new(false);
    let writers = async {
        join_all((0..WRITERS).map(|w| async move {
            let dossier = format!("HS-follow-{w}");
            for i in 0..APPENDS {
                store
                    .append(append(&dossier, &format!("r-{w}-{i}"), i, 1))
                    .await
                    .expect("append");
            }
        }))
        .await;
        done.store(true, Ordering::SeqCst);
    };
    let follower = async {
        let mut seen = Vec::new();
        let mut cursor = 0;
        loop {
            let finished = done.load(Ordering::SeqCst);
            let page = store.events_after(cursor, 7).await.expect("follow");
            match page.last() {
                Some(last) => {
                    assert!(last.position > cursor);
                    cursor = last.position;
                    seen.extend(page);
                }
                None if finished => break,
                None => tokio::time::sleep(std::time::Duration::from_millis(1)).await,
            }
        }
        seen
    };
    let ((), seen) = tokio::join!(writers, follower);
    let everything = all_events(store).await;
    assert_eq!(everything.len(), WRITERS * APPENDS as usize);
    assert_eq!(
        seen, everything,
        "the follower saw every event, in position order"
    );
    assert_strictly_increasing(&seen);
}

/// Dossier numbers: distinct under concurrency, one sequence per agency and day.
async fn dossier_numbers(store: &dyn EventStore) {
    let numbers = join_all((0..200).map(|_| store.next_dossier_number("000.00.01.H29", day(3))))
        .await
        .into_iter()
        .map(|n| n.expect("a number"))
        .collect::<Vec<_>>();
    let distinct: BTreeSet<u32> = numbers.iter().copied().collect();
    assert_eq!(distinct.len(), 200, "no number was handed out twice");
    assert_eq!(distinct, (1..=200).collect::<BTreeSet<u32>>());

    let next = |agency: &'static str, d: u32| store.next_dossier_number(agency, day(d));
    assert_eq!(
        next("000.00.01.H29", 4).await.expect("number"),
        1,
        "a new day"
    );
    assert_eq!(
        next("000.00.02.H29", 3).await.expect("number"),
        1,
        "another agency"
    );
    assert_eq!(next("000.00.02.H29", 3).await.expect("number"), 2);
    assert_eq!(next("000.00.01.H29", 3).await.expect("number"), 201);
    assert_eq!(next("000.00.01.H29", 4).await.expect("number"), 2);
}

/// The summaries the list scenario stores, before the updates.
fn list_fixture() -> Vec<DossierRow> {
    (0..23)
        .map(|i: i64| {
            let mut r = row(&format!("HS-{i:03}"));
            r.receiving_unit = format!("UBND-XA-{:02}", i % 3);
            r.competent_authority = if i % 2 == 0 { "SO-TP" } else { "SO-XD" }.to_owned();
            r.status = i32::try_from(i % 5 + 1).expect("small");
            r.channel = i32::try_from(i % 3 + 1).expect("small");
            // Due dates with ties (i / 3), some missing; every third dossier is closed.
            r.due_at = (i % 7 != 6).then(|| at(3600 * (i / 3)));
            r.open = r.due_at.is_some() && i % 3 != 2;
            r.updated_at = at(i);
            r
        })
        .collect()
}

/// What a filter should return from `rows`, computed here independently of the store.
fn expected_list(rows: &[DossierRow], filter: &ListFilter) -> Vec<DossierRow> {
    let mut matching: Vec<DossierRow> = rows
        .iter()
        .filter(|r| {
            filter
                .receiving_unit
                .as_ref()
                .is_none_or(|u| *u == r.receiving_unit)
                && filter
                    .competent_authority
                    .as_ref()
                    .is_none_or(|u| *u == r.competent_authority)
                && (filter.statuses.is_empty() || filter.statuses.contains(&r.status))
                && filter
                    .overdue_at
                    .is_none_or(|t| r.open && r.due_at.is_some_and(|due| due < t))
        })
        .cloned()
        .collect();
    if filter.overdue_at.is_some() {
        matching.sort_by(|a, b| (a.due_at, &a.dossier_id).cmp(&(b.due_at, &b.dossier_id)));
    } else {
        matching.sort_by(|a, b| a.dossier_id.cmp(&b.dossier_id));
    }
    matching
}

/// Lists every page of a filter with keyset pagination.
async fn all_pages(store: &dyn EventStore, filter: &ListFilter) -> Vec<DossierRow> {
    let mut filter = filter.clone();
    let mut rows: Vec<DossierRow> = Vec::new();
    for _ in 0..100 {
        let page = store.list_dossiers(&filter).await.expect("list a page");
        assert!(
            page.len() <= filter.limit as usize,
            "a page respects the limit"
        );
        let Some(last) = page.last() else {
            return rows;
        };
        filter.after = Some(match filter.overdue_at {
            Some(_) => PageKey::Due(
                last.due_at.expect("an overdue dossier has a due date"),
                last.dossier_id.clone(),
            ),
            None => PageKey::Dossier(last.dossier_id.clone()),
        });
        rows.extend(page);
    }
    panic!("pagination does not end");
}

/// List queries: unit and status filters, overdue lists, keyset pagination.
async fn list_dossiers(store: &dyn EventStore) {
    let mut rows = list_fixture();
    for r in &rows {
        let mut request = append(&r.dossier_id, &format!("create {}", r.dossier_id), 0, 1);
        request.row = r.clone();
        request.row.version = 1;
        store.append(request).await.expect("create a dossier");
    }
    for r in &mut rows {
        r.version = 1;
    }
    // A later append replaces the summary: HS-000 is resolved (closed), HS-007 moves unit.
    for (index, change) in [(0usize, "resolve"), (7, "transfer")] {
        let r = &mut rows[index];
        match change {
            "resolve" => {
                r.status = 10;
                r.open = false;
            }
            _ => r.receiving_unit = "UBND-XA-09".to_owned(),
        }
        r.version = 3;
        r.updated_at = at(10_000);
        let mut request = append(&r.dossier_id, &format!("{change} {}", r.dossier_id), 1, 2);
        request.row = r.clone();
        store.append(request).await.expect("update a dossier");
    }

    let overdue_at = at(3600 * 5 + 1);
    let base = ListFilter {
        limit: 4,
        ..ListFilter::default()
    };
    let filters = [
        base.clone(),
        ListFilter {
            receiving_unit: Some("UBND-XA-01".to_owned()),
            ..base.clone()
        },
        ListFilter {
            receiving_unit: Some("UBND-XA-09".to_owned()),
            ..base.clone()
        },
        ListFilter {
            competent_authority: Some("SO-XD".to_owned()),
            ..base.clone()
        },
        ListFilter {
            statuses: vec![2, 3],
            ..base.clone()
        },
        ListFilter {
            statuses: vec![10],
            ..base.clone()
        },
        ListFilter {
            receiving_unit: Some("UBND-XA-00".to_owned()),
            competent_authority: Some("SO-TP".to_owned()),
            statuses: vec![1, 3, 5],
            ..base.clone()
        },
        ListFilter {
            overdue_at: Some(overdue_at),
            ..base.clone()
        },
        ListFilter {
            overdue_at: Some(overdue_at),
            receiving_unit: Some("UBND-XA-02".to_owned()),
            ..base.clone()
        },
        ListFilter {
            overdue_at: Some(overdue_at),
            competent_authority: Some("SO-TP".to_owned()),
            statuses: vec![1, 2, 3],
            ..base.clone()
        },
        ListFilter {
            overdue_at: Some(at(0)),
            ..base.clone()
        },
        ListFilter {
            receiving_unit: Some("nowhere".to_owned()),
            ..base.clone()
        },
    ];
    for filter in &filters {
        let expected = expected_list(&rows, filter);
        let listed = all_pages(store, filter).await;
        let ids: BTreeSet<&str> = listed.iter().map(|r| r.dossier_id.as_str()).collect();
        assert_eq!(
            ids.len(),
            listed.len(),
            "no duplicates across pages: {filter:?}"
        );
        assert_eq!(listed, expected, "{filter:?}");
        // One page with room for everything is the same list.
        let whole = store
            .list_dossiers(&ListFilter {
                limit: 1000,
                ..filter.clone()
            })
            .await
            .expect("list");
        assert_eq!(whole, expected, "{filter:?}");
    }

    // The overdue list is non-trivial: it has several pages, ties on the due date, and leaves
    // out closed dossiers and those due later.
    let overdue = expected_list(&rows, &filters[7]);
    assert!(overdue.len() > 8, "{} overdue", overdue.len());
    assert!(overdue.windows(2).any(|w| w[0].due_at == w[1].due_at));
    assert!(overdue.iter().all(|r| r.open));
    assert!(!overdue.iter().any(|r| r.dossier_id == "HS-000"));
    assert!(
        rows.iter()
            .any(|r| r.open && r.due_at.is_some_and(|d| d >= overdue_at))
    );
    // A page key in the middle of a tie.
    let tie = overdue
        .windows(2)
        .find(|w| w[0].due_at == w[1].due_at)
        .expect("a tie");
    let after_tie = store
        .list_dossiers(&ListFilter {
            after: Some(PageKey::Due(
                tie[0].due_at.expect("due"),
                tie[0].dossier_id.clone(),
            )),
            limit: 1,
            ..filters[7].clone()
        })
        .await
        .expect("list");
    assert_eq!(after_tie, vec![tie[1].clone()]);
}

/// Personal data is kept beside the events and never shows in Debug output.
async fn personal_data(store: &dyn EventStore) {
    let person = applicant();
    let mut request = append("HS-1", "r-1", 0, 1);
    request.personal_data = Some(person.clone());
    let debug = format!("{request:?} {person:?}");
    for secret in [
        &person.applicant_name,
        &person.identity_number,
        &person.phone,
    ] {
        assert!(
            !debug.contains(secret.as_str()),
            "Debug leaks personal data: {debug}"
        );
    }
    store
        .append(request)
        .await
        .expect("append with personal data");
    let read = store
        .personal_data("HS-1")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(read, person);
    let debug = format!("{read:?}");
    assert!(!debug.contains(&person.applicant_name) && !debug.contains(&person.phone));

    // Appends without personal data leave it as it is; none for other dossiers.
    store
        .append(append("HS-1", "r-2", 1, 1))
        .await
        .expect("append");
    assert_eq!(
        store.personal_data("HS-1").await.expect("read"),
        Some(person)
    );
    store
        .append(append("HS-2", "r-3", 0, 1))
        .await
        .expect("append");
    assert_eq!(store.personal_data("HS-2").await.expect("read"), None);
    assert_eq!(store.personal_data("HS-404").await.expect("read"), None);
    // And it is not in the events.
    for event in all_events(store).await {
        let payload = String::from_utf8_lossy(&event.payload);
        assert!(!payload.contains("Nguyễn") && !payload.contains("079190001234"));
    }
}

/// The head is the highest committed position, and timestamps keep their instant.
async fn head_position_and_times(store: &dyn EventStore) {
    assert_eq!(store.head_position().await.expect("head"), 0);
    let mut request = append("HS-1", "r-1", 0, 1);
    let odd: DateTime<Utc> = at(0) + Duration::microseconds(123_456);
    request.events[0].recorded_at = odd;
    request.row.updated_at = odd;
    request.row.due_at = Some(odd + Duration::days(15));
    request.row.open = true;
    let events = appended(store.append(request).await.expect("append"));
    assert_eq!(
        store.head_position().await.expect("head"),
        events[0].position
    );
    let read = store.dossier_events("HS-1").await.expect("read");
    assert_eq!(read[0].recorded_at, odd);
    let rows = store
        .list_dossiers(&ListFilter {
            limit: 10,
            ..ListFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(rows[0].updated_at, odd);
    assert_eq!(rows[0].due_at, Some(odd + Duration::days(15)));
    assert!(rows[0].open);

    let more = appended(
        store
            .append(append("HS-2", "r-2", 0, 3))
            .await
            .expect("append"),
    );
    let head = store.head_position().await.expect("head");
    assert_eq!(head, more.last().expect("events").position);
    assert_eq!(
        head,
        all_events(store).await.last().expect("events").position
    );
    // A refused append does not move the head.
    assert!(store.append(append("HS-2", "r-3", 0, 1)).await.is_err());
    assert_eq!(store.head_position().await.expect("head"), head);
}

/// One `#[tokio::test]` per scenario step and backend, each on a fresh store.
macro_rules! scenario_tests {
    ($backend:ident, $run:path; $($name:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $run(|store| async move { super::$name(&*store).await }).await;
                }
            )*
        }
    };
}

scenario_tests!(sqlite, crate::common::run_sqlite;
    append_and_read_back,
    many_dossier_events,
    stale_version_conflicts,
    same_request_is_replayed,
    reused_request_id_is_refused,
    concurrent_appends_one_wins,
    concurrent_duplicates_are_replayed,
    follower_sees_every_event,
    dossier_numbers,
    list_dossiers,
    personal_data,
    head_position_and_times,
);

scenario_tests!(postgres, crate::common::run_postgres;
    append_and_read_back,
    many_dossier_events,
    stale_version_conflicts,
    same_request_is_replayed,
    reused_request_id_is_refused,
    concurrent_appends_one_wins,
    concurrent_duplicates_are_replayed,
    follower_sees_every_event,
    dossier_numbers,
    list_dossiers,
    personal_data,
    head_position_and_times,
);

/// PostgreSQL only: losing the server is reported as unavailable, never as success or as a
/// generic database error, and a retry after it appends exactly once.
mod postgres_failures {
    use std::time::Duration;

    use motcua_store::postgres::PostgresStore;
    use motcua_store::{AppendOutcome, EventStore, StoreError};
    use sqlx::{ConnectOptions, Connection, Executor};

    use crate::common::{TestDatabase, append};

    #[tokio::test]
    async fn unreachable_server_is_unavailable() {
        // Port 1 on loopback: nothing listens there.
        match PostgresStore::connect("postgres://motcua:secret@127.0.0.1:1/motcua").await {
            Err(StoreError::Unavailable(_)) => {}
            other => panic!("expected unavailable, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn terminated_connection_is_unavailable() {
        let Some(database) = TestDatabase::create().await else {
            return;
        };
        let store = PostgresStore::connect_with(database.options.clone())
            .await
            .expect("connect");
        store
            .append(append("HS-1", "r-1", 0, 1))
            .await
            .expect("append");

        // Hold the dossier's row lock from outside, so the next append waits inside its
        // transaction; then terminate the store's connections (SQLSTATE 57P01, what a server
        // shutdown does to them).
        let mut locker = database.options.connect().await.expect("connect");
        let mut tx = locker.begin().await.expect("begin");
        tx.execute("SELECT 1 FROM dossiers WHERE dossier_id = 'HS-1' FOR UPDATE")
            .await
            .expect("lock the dossier");
        let blocked = {
            let store = store.clone();
            tokio::spawn(async move { store.append(append("HS-1", "r-2", 1, 1)).await })
        };
        let mut admin = database.options.connect().await.expect("connect");
        let mut waited = 0;
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock'",
            )
            .fetch_one(&mut admin)
            .await
            .expect("watch the append wait");
            if waiting > 0 {
                break;
            }
            waited += 1;
            assert!(waited < 500, "the append never waited for the row lock");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
             AND application_name <> 'locker' AND wait_event_type = 'Lock'",
        )
        .execute(&mut admin)
        .await
        .expect("terminate the store's waiting connection");
        match blocked.await.expect("the append task") {
            Err(StoreError::Unavailable(message)) => eprintln!("as expected: {message}"),
            other => panic!("expected unavailable, got {other:?}"),
        }
        tx.rollback().await.expect("release the lock");

        // The retry appends, once.
        match store.append(append("HS-1", "r-2", 1, 1)).await {
            Ok(AppendOutcome::Appended(events)) => assert_eq!(events[0].seq, 2),
            other => panic!("expected the retry to append, got {other:?}"),
        }
        assert_eq!(store.dossier_events("HS-1").await.expect("read").len(), 2);
        store.close().await;
        drop((locker, admin));
        database.drop().await;
    }
}
