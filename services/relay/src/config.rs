//! The relay's configuration and the producer settings it implies.

use std::time::Duration;

use rdkafka::ClientConfig;

use crate::topics::DOSSIER_EVENTS;

/// How the relay runs. [`RelayConfig::new`] gives the defaults; every field is public so the
/// binary can set it from flags.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Kafka bootstrap servers, `host:port[,host:port…]`.
    pub brokers: String,
    /// The topic events are published to.
    pub topic: String,
    /// The name of the relay's checkpoint and lease: relays with the same name share one
    /// checkpoint and only one of them is active. Defaults to `relay:<topic>`.
    pub name: String,
    /// Events read from the store per query.
    pub batch_size: u32,
    /// At most this many events sent but not yet acknowledged: how far reading may run ahead
    /// of the broker's acknowledgements (and how much a producer restart republishes at most).
    pub max_in_flight: usize,
    /// How long to wait before asking the store again once caught up with its head: the
    /// publishing latency when idle.
    pub poll_interval: Duration,
    /// How often a standby relay tries to take the lease.
    pub standby_interval: Duration,
    /// Deliveries making no progress for this long count as failed: the producer is dropped
    /// and a new one republishes after a backoff. The producer itself never times a message
    /// out (see the crate docs).
    pub delivery_timeout: Duration,
    /// The first delay after a failure; doubles up to [`RelayConfig::backoff_max`].
    pub backoff_initial: Duration,
    /// The longest delay between retries.
    pub backoff_max: Duration,
    /// Producer properties that override the relay's (for instance `linger.ms`,
    /// `compression.type`, or security settings). Overriding the properties the ordering
    /// guarantee rests on (`enable.idempotence`, `acks`,
    /// `max.in.flight.requests.per.connection` > 5, `message.timeout.ms`,
    /// `enable.gapless.guarantee`, `partitioner=random`) is refused by
    /// [`RelayConfig::producer_config`].
    pub producer_overrides: Vec<(String, String)>,
}

impl RelayConfig {
    /// The defaults for publishing to `motcua.dossier-events.v1` on `brokers`.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topic: DOSSIER_EVENTS.to_owned(),
            name: format!("relay:{DOSSIER_EVENTS}"),
            batch_size: 5_000,
            max_in_flight: 50_000,
            poll_interval: Duration::from_millis(10),
            standby_interval: Duration::from_secs(1),
            delivery_timeout: Duration::from_secs(30),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            producer_overrides: Vec::new(),
        }
    }

    /// Publishes to `topic` instead, with the checkpoint and lease named after it.
    pub fn with_topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = topic.into();
        self.name = format!("relay:{}", self.topic);
        self
    }

    /// The producer's librdkafka configuration: the relay's settings, then the overrides.
    ///
    /// - `enable.idempotence=true`, `acks=all`, `max.in.flight.requests.per.connection=5`:
    ///   nothing acknowledged is lost, and retries neither duplicate nor reorder.
    /// - `message.timeout.ms=0` (never) and `enable.gapless.guarantee=true`: librdkafka never
    ///   skips a record and goes on with the next (see the crate docs).
    /// - `partitioner=murmur2_random`: the Java client's key hash, so every producer of the
    ///   topic sends a dossier to the same partition.
    /// - `linger.ms`, `batch.num.messages`, `batch.size`, `compression.type`: throughput; see
    ///   `services/relay/BENCHMARKS.md` for how they
    ///   were chosen.
    /// - `queue.buffering.max.messages`: room for [`RelayConfig::max_in_flight`] records.
    pub fn producer_config(&self) -> Result<ClientConfig, String> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", format!("motcua-relay/{}", self.name))
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("max.in.flight.requests.per.connection", "5")
            .set("message.timeout.ms", "0")
            .set("enable.gapless.guarantee", "true")
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "5")
            // librdkafka's reconnect backoff grows to 10 s by default: after a broker outage
            // the relay would sit idle for seconds. 1 s caps it (broker_outage tests).
            .set("reconnect.backoff.max.ms", "1000")
            .set("batch.num.messages", "10000")
            .set("batch.size", "1000000")
            .set("compression.type", "lz4")
            .set(
                "queue.buffering.max.messages",
                (self.max_in_flight.max(1) * 2).to_string(),
            );
        for (key, value) in &self.producer_overrides {
            let refused = match key.as_str() {
                "enable.idempotence" | "enable.gapless.guarantee" => value != "true",
                "acks" | "request.required.acks" => !matches!(value.as_str(), "all" | "-1"),
                "max.in.flight.requests.per.connection" | "max.in.flight" => {
                    !value.parse::<u32>().is_ok_and(|n| (1..=5).contains(&n))
                }
                "message.timeout.ms" | "delivery.timeout.ms" => value != "0",
                // Every partitioner but `random` sends a key to one partition.
                "partitioner" => value == "random",
                _ => false,
            };
            if refused {
                return Err(format!(
                    "producer property {key}={value} would break the relay's ordering guarantee"
                ));
            }
            config.set(key, value);
        }
        Ok(config)
    }
}
