//! Serving the intake over gRPC: the service, health checking and reflection on one listener,
//! until the shutdown signal fires; in-flight calls are drained before `serve` returns.

use std::future::Future;
use std::time::Duration;

use motcua_proto::v1::dossier_service_server::DossierServiceServer;
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::handler::CommandHandler;
use crate::service::IntakeService;

/// Limits applied to every call.
#[derive(Debug, Clone)]
pub struct IntakeConfig {
    /// Largest request accepted; commands are small, so anything bigger is hostile or a bug.
    pub max_request_bytes: usize,
    /// How long one call may take before it is cancelled.
    pub call_timeout: Duration,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: 256 * 1024,
            call_timeout: Duration::from_secs(30),
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
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<DossierServiceServer<IntakeService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(motcua_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| {
            tracing::error!(error = %e, "reflection service could not be built");
            e
        })
        .ok();
    let dossiers = DossierServiceServer::new(IntakeService::new(handler))
        .max_decoding_message_size(config.max_request_bytes);
    let router = Server::builder()
        .timeout(config.call_timeout)
        .add_service(health_service)
        .add_service(dossiers)
        .add_optional_service(reflection);
    let address = listener.local_addr().ok();
    tracing::info!(?address, "intake serving gRPC");
    let shutdown = async move {
        shutdown.await;
        health_reporter
            .set_not_serving::<DossierServiceServer<IntakeService>>()
            .await;
        tracing::info!("intake shutting down, draining in-flight calls");
    };
    // No Nagle: a gRPC answer is one small frame, and waiting for the peer's delayed ACK
    // would add ~40 ms to every call.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    router
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
