//! `motcua_grpc_requests_total` and `motcua_grpc_request_duration_seconds`, by service, RPC and
//! status code, for every call a server answers: one tower layer in front of all its services,
//! so no RPC can be forgotten.
//!
//! The code is the answer's `grpc-status` header, which tonic sends in the headers for every
//! refusal ("trailers-only"); a success carries it in the trailers, so a response without the
//! header counts as `Ok`. The duration runs until the response headers, which for a unary
//! call is the whole work.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tower::{Layer, Service};

/// The layer (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner }
    }
}

/// The service wrapper the layer makes.
#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> Service<http::Request<B>> for GrpcMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    R: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (service, rpc) = names(request.uri().path());
        let started = Instant::now();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let result = answer.await;
            let code = match &result {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or(tonic::Code::Ok, tonic::Code::from),
                Err(_) => tonic::Code::Unavailable,
            };
            // An unknown method is answered UNIMPLEMENTED: one label for all of them.
            let (service, rpc) = if code == tonic::Code::Unimplemented {
                ("other".to_owned(), "other".to_owned())
            } else {
                (service, rpc)
            };
            let code = format!("{code:?}");
            let elapsed = started.elapsed().as_secs_f64();
            metrics::counter!("motcua_grpc_requests_total",
                "service" => service.clone(), "rpc" => rpc.clone(), "code" => code.clone())
            .increment(1);
            metrics::histogram!("motcua_grpc_request_duration_seconds",
                "service" => service, "rpc" => rpc, "code" => code)
            .record(elapsed);
            result
        })
    }
}

/// `("motcua.v1.DossierService", "Receive")` from `/motcua.v1.DossierService/Receive`; paths
/// that are not motcua's or gRPC's own methods are lumped together, so a scanner cannot blow up
/// the label set.
fn names(path: &str) -> (String, String) {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    match (parts.next(), parts.next()) {
        (Some(service), Some(rpc))
            if (service.starts_with("motcua.") || service.starts_with("grpc."))
                && service.len() <= 64
                && rpc.len() <= 64
                && rpc.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            (service.to_owned(), rpc.to_owned())
        }
        _ => ("other".into(), "other".into()),
    }
}
