//! Configuration: flags and environment variables, grouped by what they configure, validated at
//! start with errors that name the setting at fault. Every flag's documentation here is the
//! reference (`motcua <command> --help` prints it).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use motcua_domain::calendar::{HolidayTable, WorkingCalendar, WorkingTimeProfile};
use motcua_domain::catalog::ProcedureCatalogue;

/// Where the events are stored.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Directory of the embedded store (SQLite), used when no database URL is given. Created
    /// if missing.
    #[arg(long, env = "MOTCUA_DATA_DIR", default_value = ".motcua")]
    pub data_dir: PathBuf,

    /// PostgreSQL URL (`postgres://user:password@host:port/db`). When set, events are stored
    /// there instead of the embedded store; the distributed mode.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// How long to keep trying to reach the database at start before giving up, in seconds.
    #[arg(long, env = "MOTCUA_STARTUP_TIMEOUT_SECS", default_value_t = 60)]
    pub startup_timeout_secs: u64,
}

/// The rules' data: holidays and procedures.
#[derive(Debug, Clone, Args)]
pub struct RulesArgs {
    /// Directory of holiday tables (one TOML file per year, e.g. 2028.toml) laid over the
    /// built-in 2024-2027 tables: a year given here replaces that year's built-in table, the
    /// other years stay. See services/domain/data/holidays/README.md for the format.
    #[arg(long, env = "MOTCUA_HOLIDAY_DIR")]
    pub holiday_dir: Option<PathBuf>,

    /// Procedure catalogue (TOML) replacing the built-in sample catalogue.
    #[arg(long, env = "MOTCUA_PROCEDURE_CATALOGUE")]
    pub procedure_catalogue: Option<PathBuf>,

    /// FOR TESTS AND DEMOS ONLY: run the server's clock this many seconds ahead of the system
    /// clock (acceptance times, due dates, lateness all follow it), to see days pass in
    /// minutes. Never set in production: every event would carry a false recording time.
    #[arg(
        long,
        env = "MOTCUA_SIMULATED_CLOCK_OFFSET_SECS",
        hide = true,
        default_value_t = 0
    )]
    pub simulated_clock_offset_secs: i64,

    /// FOR DEMOS AND TESTS ONLY: run the server's clock this many times faster than real time
    /// (1440: a day per minute), so `motcua loadgen --simulate-days` can show weeks of a
    /// province's work in minutes. The fast clock starts at the next office morning (07:00 of
    /// the next working day, or now during office hours) unless --simulated-clock-start says
    /// otherwise. Never set in production: every event would carry a false recording time.
    #[arg(
        long,
        env = "MOTCUA_SIMULATED_CLOCK_RATE",
        default_value_t = 1.0,
        value_parser = clock_rate
    )]
    pub simulated_clock_rate: f64,

    /// FOR TESTS AND DEMOS ONLY: the server's clock reads this instant (RFC 3339) when the
    /// node starts, and runs from there (at --simulated-clock-rate), so a test or a demo sees
    /// the same weekday and hour whatever the day it runs on. Overrides the offset.
    #[arg(long, env = "MOTCUA_SIMULATED_CLOCK_START", hide = true)]
    pub simulated_clock_start: Option<chrono::DateTime<chrono::Utc>>,
}

impl RulesArgs {
    /// The server's clock: the system clock, shifted only when a test asks.
    pub fn clock(&self) -> std::sync::Arc<dyn motcua_intake::Clock> {
        if let Some(start) = self.simulated_clock_start {
            tracing::warn!(
                %start,
                rate = self.simulated_clock_rate,
                "the server clock is SIMULATED (--simulated-clock-start): for demos and tests \
                 only"
            );
            return std::sync::Arc::new(motcua_intake::clock::ScaledClock::starting_at(
                start,
                self.simulated_clock_rate,
            ));
        }
        if self.simulated_clock_rate != 1.0 {
            tracing::warn!(
                rate = self.simulated_clock_rate,
                offset_secs = self.simulated_clock_offset_secs,
                "the server clock is SIMULATED and FAST (--simulated-clock-rate): for demos \
                 and tests only"
            );
            // A demo's fast clock starts at the next office morning, so one begun on a
            // Saturday night shows a working day at once.
            let from =
                chrono::Utc::now() + chrono::Duration::seconds(self.simulated_clock_offset_secs);
            let start = match self.calendar() {
                Ok(calendar) => calendar.next_working_start(from),
                Err(_) => from,
            };
            tracing::info!(start = %start, "the simulated clock starts at the next office morning");
            return std::sync::Arc::new(motcua_intake::clock::ScaledClock::starting_at(
                start,
                self.simulated_clock_rate,
            ));
        }
        if self.simulated_clock_offset_secs == 0 {
            return std::sync::Arc::new(motcua_intake::SystemClock);
        }
        tracing::warn!(
            offset_secs = self.simulated_clock_offset_secs,
            "the server clock is SIMULATED (MOTCUA_SIMULATED_CLOCK_OFFSET_SECS): for tests and \
             demos only"
        );
        std::sync::Arc::new(motcua_intake::clock::OffsetClock::new(
            chrono::Duration::seconds(self.simulated_clock_offset_secs),
        ))
    }
}

/// The gRPC intake.
#[derive(Debug, Clone, Args)]
pub struct IntakeArgs {
    /// Address the gRPC API listens on. Loopback by default: expose it deliberately.
    #[arg(long, env = "MOTCUA_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// Largest accepted request, in bytes.
    #[arg(long, env = "MOTCUA_MAX_REQUEST_BYTES", default_value_t = 256 * 1024)]
    pub max_request_bytes: usize,

    /// Per-call deadline, in seconds.
    #[arg(long, env = "MOTCUA_CALL_TIMEOUT_SECS", default_value_t = 30)]
    pub call_timeout_secs: u64,

    #[command(flatten)]
    pub auth: crate::auth::AuthArgs,
}

/// The Kafka backbone.
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (`host:port[,host:port…]`). When set, committed events are
    /// relayed to Kafka and the topics are created at start.
    #[arg(long, env = "KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,

    /// `group.instance.id` of every reader's Kafka consumer (static membership): a restarted
    /// reader gets its partitions back at once, without a rebalance, and a killed one keeps
    /// them for the session timeout. Unique per process (the pod's name, say); each reader is a
    /// group of its own, so one id serves all of a process's readers. Unset: dynamic
    /// membership.
    #[arg(long, env = "MOTCUA_KAFKA_GROUP_INSTANCE_ID")]
    pub kafka_group_instance_id: Option<String>,

    /// Partitions of each topic created at start (fixed once a topic exists).
    #[arg(long, env = "MOTCUA_TOPIC_PARTITIONS", default_value_t = 12)]
    pub topic_partitions: i32,

    /// Replicas of each partition of a topic created at start (3 in production).
    #[arg(long, env = "MOTCUA_TOPIC_REPLICATION", default_value_t = 1)]
    pub topic_replication: i32,

    /// Events the relay reads from the store per query.
    #[arg(long, env = "MOTCUA_RELAY_BATCH", default_value_t = 5_000)]
    pub relay_batch: u32,
}

impl StoreArgs {
    pub fn startup_timeout(&self) -> Duration {
        Duration::from_secs(self.startup_timeout_secs)
    }
}

impl RulesArgs {
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
}

impl IntakeArgs {
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

impl KafkaArgs {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.topic_partitions < 1 {
            bail!("--topic-partitions / MOTCUA_TOPIC_PARTITIONS must be at least 1");
        }
        if self.topic_replication < 1 {
            bail!("--topic-replication / MOTCUA_TOPIC_REPLICATION must be at least 1");
        }
        if self.relay_batch == 0 {
            bail!("--relay-batch / MOTCUA_RELAY_BATCH must be at least 1");
        }
        if let Some(brokers) = &self.kafka_brokers
            && brokers
                .split(',')
                .any(|b| b.trim().is_empty() || !b.contains(':'))
        {
            bail!("--kafka-brokers / KAFKA_BROKERS '{brokers}' must be host:port[,host:port…]");
        }
        Ok(())
    }
}

/// A clock rate: a finite number from 1 to 100,000.
fn clock_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .parse()
        .map_err(|_| format!("'{text}' is not a number"))?;
    if rate.is_finite() && (1.0..=100_000.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!("{rate} must be between 1 and 100000"))
    }
}

/// A database URL without its password, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
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
    Ok(HolidayTable::builtin_with(&borrowed)?)
}

impl KafkaArgs {
    /// The readers' feed configuration on `brokers`, with this process's membership.
    pub fn feed_config(&self, brokers: &str) -> motcua_feed::KafkaFeedConfig {
        let mut config = motcua_feed::KafkaFeedConfig::new(brokers);
        config.group_instance_id = self.kafka_group_instance_id.clone();
        config
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(
            redact_url("postgres://motcua:s3cret@127.0.0.1:5432/motcua"),
            "postgres://motcua:***@127.0.0.1:5432/motcua"
        );
        assert_eq!(
            redact_url("postgres://localhost/db"),
            "postgres://localhost/db"
        );
    }
}
