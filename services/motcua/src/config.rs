//! Node configuration: flags and environment variables, validated at start with errors that
//! name the setting at fault.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use motcua_domain::calendar::{HolidayTable, WorkingCalendar, WorkingTimeProfile};
use motcua_domain::catalog::ProcedureCatalogue;

/// Settings of a node (`motcua serve`).
#[derive(Debug, Clone, Args)]
pub struct NodeConfig {
    /// Address the gRPC API listens on. Loopback by default: expose it deliberately.
    #[arg(long, env = "MOTCUA_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// Directory for the embedded store (SQLite files). Created if missing.
    #[arg(long, env = "MOTCUA_DATA_DIR", default_value = ".motcua")]
    pub data_dir: PathBuf,

    /// Directory of holiday tables (one TOML file per year) replacing the built-in 2024-2027
    /// tables. See services/domain/data/holidays/README.md for the format.
    #[arg(long, env = "MOTCUA_HOLIDAY_DIR")]
    pub holiday_dir: Option<PathBuf>,

    /// Procedure catalogue (TOML) replacing the built-in sample catalogue.
    #[arg(long, env = "MOTCUA_PROCEDURE_CATALOGUE")]
    pub procedure_catalogue: Option<PathBuf>,

    /// Largest accepted request, in bytes.
    #[arg(long, env = "MOTCUA_MAX_REQUEST_BYTES", default_value_t = 256 * 1024)]
    pub max_request_bytes: usize,

    /// Per-call deadline, in seconds.
    #[arg(long, env = "MOTCUA_CALL_TIMEOUT_SECS", default_value_t = 30)]
    pub call_timeout_secs: u64,
}

impl NodeConfig {
    /// The working calendar: the standard office hours with the configured holiday tables.
    pub fn calendar(&self) -> anyhow::Result<WorkingCalendar> {
        let holidays = match &self.holiday_dir {
            None => HolidayTable::builtin(),
            Some(dir) => load_holidays(dir)
                .with_context(|| format!("--holiday-dir / MOTCUA_HOLIDAY_DIR {}", dir.display()))?,
        };
        Ok(WorkingCalendar::new(
            WorkingTimeProfile::standard(),
            holidays,
        ))
    }

    pub fn catalogue(&self) -> anyhow::Result<ProcedureCatalogue> {
        match &self.procedure_catalogue {
            None => Ok(ProcedureCatalogue::sample()),
            Some(path) => {
                let context = || {
                    format!(
                        "--procedure-catalogue / MOTCUA_PROCEDURE_CATALOGUE {}",
                        path.display()
                    )
                };
                let text = std::fs::read_to_string(path).with_context(context)?;
                ProcedureCatalogue::from_toml(&text).with_context(context)
            }
        }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.max_request_bytes < 1024 {
            bail!("--max-request-bytes / MOTCUA_MAX_REQUEST_BYTES must be at least 1024");
        }
        if self.call_timeout_secs == 0 {
            bail!("--call-timeout-secs / MOTCUA_CALL_TIMEOUT_SECS must be at least 1");
        }
        Ok(())
    }
}

fn load_holidays(dir: &Path) -> anyhow::Result<HolidayTable> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).context("cannot read the directory")? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.push((name, text));
        }
    }
    if files.is_empty() {
        bail!("holds no .toml holiday tables");
    }
    files.sort();
    let borrowed: Vec<(&str, &str)> = files
        .iter()
        .map(|(name, text)| (name.as_str(), text.as_str()))
        .collect();
    Ok(HolidayTable::from_toml(&borrowed)?)
}
