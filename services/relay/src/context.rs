//! The librdkafka client context shared by the relay's producer and admin client: its log
//! lines and errors go to `tracing` (rdkafka's default goes to the `log` crate, which the
//! binary does not collect), and fatal errors are flagged for the relay loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// Routes librdkafka's logs and errors to `tracing`.
#[derive(Debug, Clone, Default)]
pub(crate) struct KafkaContext {
    /// Set when librdkafka reports a fatal error: the client is unusable from then on.
    fatal: Arc<AtomicBool>,
}

impl KafkaContext {
    /// Whether the client hit a fatal error.
    pub(crate) fn is_fatal(&self) -> bool {
        self.fatal.load(Ordering::Relaxed)
    }
}

impl ClientContext for KafkaContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        // The relay sets `enable.gapless.guarantee` on purpose (see the crate docs); that
        // librdkafka calls it experimental is worth knowing once, not a warning at every start.
        if facility == "CONFWARN" && message.contains("enable.gapless.guarantee") {
            tracing::debug!(target: "librdkafka", facility, message);
            return;
        }
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", facility, message),
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, message),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility, message)
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, message),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
            self.fatal.store(true, Ordering::Relaxed);
            tracing::error!(target: "librdkafka", %error, reason, "fatal Kafka client error");
        } else {
            // Transient: brokers down, connections refused. librdkafka retries by itself; the
            // relay notices through stalled deliveries.
            tracing::warn!(target: "librdkafka", %error, reason, "Kafka client error");
        }
    }
}
