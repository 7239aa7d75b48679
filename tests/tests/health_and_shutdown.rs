//! Operations: gRPC health checking, graceful shutdown with calls in flight, and call latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration as StdDuration, Instant as StdInstant};

use futures::future::join_all;
use motcua_proto::v1 as pb;
use motcua_tests::*;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_reports_serving() {
    let app = spawn_app().await;
    let channel = Channel::from_shared(format!("http://{}", app.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connects");
    let mut health = HealthClient::new(channel);
    for service in ["", "motcua.v1.DossierService"] {
        let response = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health check answers")
            .into_inner();
        assert_eq!(
            response.status(),
            ServingStatus::Serving,
            "service '{service}'"
        );
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await;
    expect_code(unknown, Code::NotFound, "an unknown service");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_keeps_every_acknowledged_command() {
    let mut app = spawn_app().await;
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let desks = join_all((0..4).map(|_| app.new_connection())).await;
    // 16 counters receive dossiers as fast as they can until the server goes away.
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let mut desk = desks[w % desks.len()].clone();
            let acknowledged = acknowledged.clone();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                let mut refused = None;
                for _ in 0..500 {
                    match desk
                        .receive(receive_request(P_ONE_DAY, pb::Channel::Counter))
                        .await
                    {
                        Ok(response) => {
                            acked.push(response.into_inner());
                            acknowledged.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(status) => {
                            refused = Some(status);
                            break;
                        }
                    }
                }
                (acked, refused)
            })
        })
        .collect();
    // Shut down while calls are in flight.
    let started = StdInstant::now();
    while acknowledged.load(Ordering::SeqCst) < 40 {
        assert!(
            started.elapsed() < StdDuration::from_secs(20),
            "the workers make no progress"
        );
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
    let acked_at_trigger = acknowledged.load(Ordering::SeqCst);
    app.trigger_shutdown();
    tokio::time::timeout(StdDuration::from_secs(20), app.wait_stopped())
        .await
        .expect("the server drains and stops");

    let mut acked = Vec::new();
    for worker in workers {
        let (responses, refused) = worker.await.expect("the worker does not panic");
        acked.extend(responses);
        if let Some(status) = refused {
            // The connection goes away (UNAVAILABLE, or the client's own mapping of the
            // HTTP/2 GOAWAY); never an answer from the rules about a valid receive.
            assert!(
                !matches!(
                    status.code(),
                    Code::InvalidArgument
                        | Code::FailedPrecondition
                        | Code::AlreadyExists
                        | Code::Aborted
                        | Code::NotFound
                ),
                "after shutdown, calls fail because the server is gone: {status:?}"
            );
        }
    }
    assert!(acked.len() >= 40);
    // Calls in flight when the signal came were drained and answered, not cut off.
    assert!(
        acked.len() > acked_at_trigger,
        "no call in flight at the shutdown signal was answered ({} before it)",
        acked_at_trigger
    );
    assert!(
        acked.len() < 16 * 500,
        "the workers were stopped by the shutdown"
    );
    // Every acknowledged command is in the store, with the events it was acknowledged with.
    let stored = app.decoded_events().await;
    for response in &acked {
        let event = only_event(response);
        assert!(
            stored.contains(event),
            "acknowledged {} is not in the store",
            response.dossier_id
        );
    }
    assert!(stored.len() >= acked.len());
    // The server is gone: a new call fails.
    let after = app
        .client()
        .get_dossier(pb::GetDossierRequest {
            dossier_id: acked[0].dossier_id.clone(),
        })
        .await;
    assert!(after.is_err(), "the server still answers after shutdown");
}

// Regression guard: serve() once accepted connections without TCP_NODELAY, and every unary
// call waited ~40 ms on Nagle and delayed ACKs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_calls_are_not_delayed_by_nagle() {
    let app = spawn_app().await;
    let id = app.receive(P_ONE_DAY).await.dossier_id;
    let mut timings = Vec::new();
    for _ in 0..21 {
        let started = StdInstant::now();
        app.get(&id).await;
        timings.push(started.elapsed());
    }
    timings.sort();
    let median = timings[timings.len() / 2];
    // With TCP_NODELAY a GetDossier on localhost takes ~2 ms in a debug build; without it,
    // ~44 ms. 20 ms leaves room for a loaded machine.
    assert!(
        median < StdDuration::from_millis(20),
        "median GetDossier latency on localhost is {median:?}"
    );
}
