//! Prometheus metrics over HTTP (`--metrics-listen`): the exporter every service installs, and
//! the gauges that come from a periodic query rather than from an event in the code (the
//! portal-sync backlog, the overdue dossiers). Everything else is recorded where it happens,
//! through the `metrics` facade, by the libraries; docs/operations.md lists the metrics.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use motcua_feed::ReaderDb;
use tokio_util::sync::CancellationToken;

/// Starts the scrape endpoint on `listen` (every path answers with the metrics).
pub fn install(listen: SocketAddr) -> anyhow::Result<()> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(listen)
        // Seconds: from 1 ms (a command on a warm SQLite) to 30 s (the call deadline); the
        // freshness histograms use the same buckets.
        .set_buckets(&[
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ])
        .context("the metric buckets")?
        .install()
        .with_context(|| format!("--metrics-listen / MOTCUA_METRICS_LISTEN {listen}"))?;
    metrics::gauge!("motcua_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    tracing::info!(%listen, "serving Prometheus metrics");
    Ok(())
}

/// How often the queried gauges are refreshed.
const GAUGE_INTERVAL: Duration = Duration::from_secs(15);

/// Keeps `gauge` set to what `query` returns, every [`GAUGE_INTERVAL`], until `shutdown`.
/// A failed query leaves the last value and logs at debug (the component's own loop reports
/// a database that is away).
pub fn spawn_gauge<F, Fut>(name: &'static str, shutdown: CancellationToken, query: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<i64, sqlx::Error>> + Send,
{
    tokio::spawn(async move {
        loop {
            match query().await {
                Ok(value) => metrics::gauge!(name).set(value as f64),
                Err(error) => tracing::debug!(gauge = name, %error, "gauge query failed"),
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(GAUGE_INTERVAL) => {}
            }
        }
    });
}

/// Open dossiers past their due date, from the deadline watcher's table (which holds only open
/// dossiers, so this counts a province's work in progress, not its history).
/// `now` is the node's clock, so the gauge agrees with the reports and the status topic.
pub async fn overdue_dossiers(
    db: &ReaderDb,
    now: motcua_domain::time::Instant,
) -> Result<i64, sqlx::Error> {
    let now = now.timestamp_micros();
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM deadline_dossiers WHERE due_at IS NOT NULL AND due_at < $1",
    )
    .bind(now)
    .fetch_one(db.pool())
    .await
}

/// Installs the `tracing` subscriber: logs on stderr (text or JSON, level from `MOTCUA_LOG`),
/// and, when `otlp_endpoint` is set, an OpenTelemetry layer exporting spans over OTLP/gRPC
/// as the service `motcua-<command>`. Returns the tracer provider to flush at exit.
pub fn init_tracing(
    json: bool,
    otlp_endpoint: Option<&str>,
    command: &str,
) -> anyhow::Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>> {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let filter = tracing_subscriber::EnvFilter::try_from_env("MOTCUA_LOG").unwrap_or_else(|_| {
        // librdkafka's own chatter stays at warnings unless asked for.
        tracing_subscriber::EnvFilter::new("info,rdkafka=warn")
    });
    let (text, structured) = if json {
        (
            None,
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            ),
        )
    } else {
        (
            Some(tracing_subscriber::fmt::layer().with_writer(std::io::stderr)),
            None,
        )
    };
    let (provider, otel) = match otlp_endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()
                .with_context(|| {
                    format!("--otlp-endpoint / OTEL_EXPORTER_OTLP_ENDPOINT {endpoint}")
                })?;
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name(format!("motcua-{command}"))
                        .build(),
                )
                .build();
            let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("motcua"));
            (Some(provider), Some(layer))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(structured)
        .with(otel)
        .init();
    if let Some(endpoint) = otlp_endpoint {
        tracing::info!(endpoint, "exporting traces over OTLP");
    }
    Ok(provider)
}
