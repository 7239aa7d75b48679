//! What the relay reports about itself, for metrics and health.

/// What a relay is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RelayRole {
    /// Not yet running.
    #[default]
    Starting,
    /// Waiting for the lease: another relay is active.
    Standby,
    /// Holding the lease and publishing.
    Active,
    /// Stopped on request.
    Stopped,
}

/// A snapshot of the relay's state. Positions are global event positions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayStatus {
    pub role: RelayRole,
    /// The store's head as last seen (0 until the relay has read the store).
    pub head: u64,
    /// The durable checkpoint as last saved or loaded: every event up to it is in Kafka.
    pub checkpoint: u64,
    /// `head − checkpoint`: committed events not yet known to be in Kafka. Meaningful on the
    /// active relay; a standby reports what it last saw.
    pub lag: u64,
    /// Events whose delivery the broker acknowledged, since this relay started (republished
    /// events count again).
    pub published: u64,
    /// Deliveries that failed or stalled, each followed by a producer restart.
    pub delivery_failures: u64,
    /// Producers created after the first, to republish after a failure.
    pub producer_restarts: u64,
    /// Failed store operations (reads, checkpoint loads and saves, lease attempts).
    pub store_errors: u64,
    /// Times this relay took the lease.
    pub leases_taken: u64,
    /// Times this relay found it no longer held the lease and stepped down.
    pub leases_lost: u64,
    /// The last error, for an operator's first look.
    pub last_error: Option<String>,
}

impl RelayStatus {
    pub(crate) fn set_head(&mut self, head: u64) {
        self.head = self.head.max(head);
        self.lag = self.head.saturating_sub(self.checkpoint);
        metrics::gauge!("motcua_relay_head_position").set(self.head as f64);
        metrics::gauge!("motcua_relay_checkpoint_position").set(self.checkpoint as f64);
        metrics::gauge!("motcua_relay_lag_events").set(self.lag as f64);
    }

    pub(crate) fn set_checkpoint(&mut self, checkpoint: u64) {
        self.checkpoint = checkpoint;
        self.set_head(checkpoint);
    }
}
