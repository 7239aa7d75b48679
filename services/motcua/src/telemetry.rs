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
pub async fn overdue_dossiers(db: &ReaderDb) -> Result<i64, sqlx::Error> {
    let now = chrono::Utc::now().timestamp_micros();
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM deadline_dossiers WHERE due_at IS NOT NULL AND due_at < $1",
    )
    .bind(now)
    .fetch_one(db.pool())
    .await
}
