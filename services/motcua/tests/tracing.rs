//! Trace context end to end (issue 8): a call's `traceparent` is continued by the intake's
//! span, recorded on the event, and continued by the readers' spans; all of them are exported
//! over OTLP/gRPC to a collector (here a real OTLP `TraceService` on loopback).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use motcua_proto::v1::dossier_service_client::DossierServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

mod common;

use common::{admin_bearer, connect, embedded_serve, free_port, receive_request};

/// `(service name, span name, trace id hex, parent span id hex)`.
type ExportedSpan = (String, String, String, String);

/// Every span received.
#[derive(Default, Clone)]
struct Collector(Arc<Mutex<Vec<ExportedSpan>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let mut spans = self.0.lock().expect("the spans");
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref())
                .map(|v| format!("{v:?}"))
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    spans.push((
                        service.clone(),
                        span.name,
                        hex(&span.trace_id),
                        hex(&span.parent_span_id),
                    ));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calls_trace_runs_through_the_event_into_the_readers_and_is_exported() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let otlp = format!("http://{}", listener.local_addr().expect("an address"));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let dir = tempfile::tempdir().expect("a directory");
    let port = free_port();
    let mut node = embedded_serve(dir.path(), port)
        .args(["--otlp-endpoint", &otlp])
        .env("MOTCUA_LOG", "info")
        .spawn()
        .expect("motcua serve starts");
    let channel = connect(port).await;

    // The counter's software sends its own trace context.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let mut request = tonic::Request::new(receive_request("traced-1".into(), "2.000908"));
    let metadata = request.metadata_mut();
    metadata.insert("authorization", admin_bearer(dir.path()));
    metadata.insert(
        "traceparent",
        format!("00-{trace_id}-{caller_span}-01")
            .parse()
            .expect("ascii"),
    );
    let response = DossierServiceClient::new(channel)
        .receive(request)
        .await
        .expect("received")
        .into_inner();

    // The event carries the intake span's context: the caller's trace, a new span.
    let recorded = &response.events[0].traceparent;
    assert!(
        recorded.starts_with(&format!("00-{trace_id}-")),
        "{recorded}"
    );
    let intake_span = recorded.split('-').nth(2).expect("a span id").to_owned();
    assert_ne!(intake_span, caller_span);

    // Exported: the intake's span (child of the caller's) and the readers' batches (children
    // of the intake's span).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let spans = collector.0.lock().expect("the spans").clone();
        let command = spans.iter().any(|(_, name, trace, parent)| {
            name == "command" && trace == trace_id && parent == caller_span
        });
        let readers: Vec<_> = spans
            .iter()
            .filter(|(_, name, trace, parent)| {
                name == "reader.batch" && trace == trace_id && *parent == intake_span
            })
            .collect();
        if command && readers.len() >= 2 {
            assert!(
                spans
                    .iter()
                    .all(|(service, ..)| service.contains("motcua-serve")),
                "{spans:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not exported: command {command}, readers {readers:?}, all {spans:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = node.kill();
    let _ = node.wait();
}
