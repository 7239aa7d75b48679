//! Serving the intake over gRPC: the service, health checking and reflection on one listener,
//! until the shutdown signal fires; in-flight calls are drained before `serve` returns.

use std::future::Future;
use std::time::Duration;

use motcua_auth::Authenticator;
use motcua_proto::v1::dossier_service_server::DossierServiceServer;
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::service::{Routes, RoutesBuilder};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Server, ServerTlsConfig};
use tonic_health::ServingStatus;

use crate::handler::CommandHandler;
use crate::service::IntakeService;

/// Limits applied to every call.
#[derive(Debug, Clone)]
pub struct IntakeConfig {
    /// Largest request accepted; commands are small, so anything bigger is hostile or a bug.
    pub max_request_bytes: usize,
    /// How long one call may take before it is cancelled.
    pub call_timeout: Duration,
    /// Who callers are ([`Authenticator::trusted_metadata`] by default, for tests; the binary
    /// passes a verifying one).
    pub auth: Authenticator,
    /// TLS (rustls), with optional client certificates; plaintext when `None`.
    pub tls: Option<ServerTlsConfig>,
    /// Whether gRPC reflection is served. It answers without credentials (it only describes
    /// the public contracts), so the binary turns it on only when asked or in the
    /// trusted-metadata mode.
    pub reflection: bool,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: 256 * 1024,
            call_timeout: Duration::from_secs(30),
            auth: Authenticator::trusted_metadata(),
            tls: None,
            reflection: true,
        }
    }
}

/// Serves the intake on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    handler: CommandHandler,
    config: IntakeConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let dossiers =
        DossierServiceServer::new(IntakeService::with_auth(handler, config.auth.clone()))
            .max_decoding_message_size(config.max_request_bytes);
    let mut routes = RoutesBuilder::default();
    routes.add_service(dossiers);
    serve_routes(
        listener,
        routes.routes(),
        &[<DossierServiceServer<IntakeService> as NamedService>::NAME],
        config,
        shutdown,
    )
    .await
}

/// Serves `routes` (any set of gRPC services: the intake, the reports, or both in one process)
/// with health checking (each of `serving` reported SERVING, and NOT_SERVING once shutdown
/// begins) and reflection on `listener`, until `shutdown` completes; in-flight calls are
/// drained before it returns.
pub async fn serve_routes(
    listener: TcpListener,
    routes: Routes,
    serving: &[&'static str],
    config: IntakeConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    for name in serving {
        health_reporter
            .set_service_status(*name, ServingStatus::Serving)
            .await;
    }
    let reflection = if !config.reflection {
        None
    } else {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(motcua_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| {
                tracing::error!(error = %e, "reflection service could not be built");
                e
            })
            .ok()
    };
    let mut builder = Server::builder();
    if let Some(tls) = config.tls {
        builder = builder.tls_config(tls)?;
    }
    let router = builder
        .timeout(config.call_timeout)
        .layer(crate::grpc_metrics::GrpcMetricsLayer)
        .add_routes(routes)
        .add_service(health_service)
        .add_optional_service(reflection);
    let address = listener.local_addr().ok();
    tracing::info!(?address, services = ?serving, "serving gRPC");
    let shutdown = async move {
        shutdown.await;
        for name in serving {
            health_reporter
                .set_service_status(*name, ServingStatus::NotServing)
                .await;
        }
        tracing::info!("gRPC server shutting down, draining in-flight calls");
    };
    // No Nagle: a gRPC answer is one small frame, and waiting for the peer's delayed ACK
    // would add ~40 ms to every call.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    router
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
