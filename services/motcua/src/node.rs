//! The all-in-one node: every component in one process on the embedded store.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use motcua_intake::{CommandHandler, IntakeConfig, SystemClock};
use motcua_store::sqlite::SqliteStore;
use tokio::net::TcpListener;

use crate::config::NodeConfig;

/// Runs the node until SIGINT or SIGTERM.
pub async fn run(config: NodeConfig) -> anyhow::Result<()> {
    config.validate()?;
    let calendar = config.calendar()?;
    let catalogue = config.catalogue()?;
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "--data-dir / MOTCUA_DATA_DIR {}: cannot create it",
            config.data_dir.display()
        )
    })?;
    let store_path = config.data_dir.join("events.sqlite");
    let store = SqliteStore::open(&store_path)
        .await
        .with_context(|| format!("cannot open the event store {}", store_path.display()))?;
    let versions = calendar.versions();
    tracing::info!(
        store = %store_path.display(),
        holiday_table = %versions.holiday_table_version,
        working_time = %versions.profile_id,
        catalogue = %catalogue.version(),
        procedures = catalogue.len(),
        "embedded node starting"
    );
    let handler = CommandHandler::new(
        Arc::new(store),
        Arc::new(calendar),
        Arc::new(catalogue),
        Arc::new(SystemClock),
    );
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("--listen / MOTCUA_LISTEN {}: cannot bind", config.listen))?;
    eprintln!(
        "motcua is serving gRPC on {} (data in {}). Stop with Ctrl-C.",
        config.listen,
        config.data_dir.display()
    );
    let intake = IntakeConfig {
        max_request_bytes: config.max_request_bytes,
        call_timeout: Duration::from_secs(config.call_timeout_secs),
    };
    motcua_intake::serve(listener, handler, intake, shutdown_signal()).await?;
    tracing::info!("node stopped");
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
