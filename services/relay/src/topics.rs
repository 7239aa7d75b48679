//! motcua's Kafka topics, and their provisioning through the admin API at start.
//!
//! [`provision`] creates the topics that are missing and leaves existing ones as they are
//! (their partitions and configuration are the operator's from then on), so it can run at
//! every start of every service. A broker that refuses a topic's configuration (some
//! Kafka-protocol brokers support fewer settings than Apache Kafka) gets the topic created
//! without it, with a warning naming what was dropped: a topic with default retention is
//! better than no topic. Tansu 0.6.0, the test broker, stores whatever configuration it is
//! given without checking it.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::context::KafkaContext;

/// Every committed dossier event (protobuf `DossierEvent`), keyed by dossier id, kept forever.
pub const DOSSIER_EVENTS: &str = "motcua.dossier-events.v1";
/// Each dossier's current status (JSON, no personal data), keyed by dossier id, compacted.
pub const DOSSIER_STATUS: &str = "motcua.dossier-status.v1";
/// Rates snapshots (JSON), keyed by unit / procedure / period, compacted.
pub const RATES: &str = "motcua.rates.v1";
/// What the national-portal adapter could not deliver, and why.
pub const PORTAL_SYNC_DLQ: &str = "motcua.portal-sync.dlq.v1";
/// Records of the dossier-events topic that a reader could not decode, with the reason.
pub const DOSSIER_EVENTS_DLQ: &str = "motcua.dossier-events.dlq.v1";

/// One topic to provision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication: i32,
    /// Topic-level configuration (`retention.ms`, `cleanup.policy`, …).
    pub config: Vec<(String, String)>,
}

impl TopicSpec {
    /// A topic with no configuration of its own.
    pub fn new(name: impl Into<String>, partitions: i32, replication: i32) -> Self {
        Self {
            name: name.into(),
            partitions,
            replication,
            config: Vec::new(),
        }
    }

    /// Adds a configuration entry.
    pub fn set(mut self, key: &str, value: impl Into<String>) -> Self {
        self.config.push((key.to_owned(), value.into()));
        self
    }
}

/// Partitions, replication and retention of motcua's topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicsConfig {
    /// Partitions of every topic. The keyed topics share one count so that a dossier's events
    /// and its status land on the same partition number. Fixed once a topic exists: adding
    /// partitions later moves keys to other partitions, which breaks per-dossier order.
    pub partitions: i32,
    /// Replicas of each partition (1 for a single broker; 3 in production).
    pub replication: i32,
    /// How long the dead-letter topics keep what failed.
    pub dlq_retention: Duration,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        Self {
            partitions: 12,
            replication: 1,
            dlq_retention: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

impl TopicsConfig {
    /// The topics of DESIGN.md, plus the readers' dead-letter topic.
    pub fn specs(&self) -> Vec<TopicSpec> {
        let topic = |name: &str| TopicSpec::new(name, self.partitions, self.replication);
        let dlq_retention_ms = self.dlq_retention.as_millis().to_string();
        vec![
            // -1: never deleted, so any reader can be rebuilt by replaying from the start.
            topic(DOSSIER_EVENTS).set("retention.ms", "-1"),
            topic(DOSSIER_STATUS).set("cleanup.policy", "compact"),
            topic(RATES).set("cleanup.policy", "compact"),
            topic(PORTAL_SYNC_DLQ).set("retention.ms", dlq_retention_ms.clone()),
            topic(DOSSIER_EVENTS_DLQ).set("retention.ms", dlq_retention_ms),
        ]
    }
}

/// What provisioning did with a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicOutcome {
    /// Created as specified.
    Created,
    /// It existed already and was left as it is.
    Existed,
    /// Created without its configuration, which the broker refused.
    CreatedWithoutConfig { refused: String },
}

/// Why provisioning failed.
#[derive(Debug, thiserror::Error)]
pub enum TopicsError {
    /// The admin client could not be created or the broker did not answer.
    #[error("Kafka admin request failed: {0}")]
    Admin(#[from] KafkaError),
    /// The broker refused to create a topic.
    #[error("the broker refused to create topic {topic}: {code}")]
    Refused {
        topic: String,
        code: RDKafkaErrorCode,
    },
}

/// How long the broker may take to answer the admin requests.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Creates the topics of `config` that do not exist yet on `brokers`. Idempotent.
pub async fn provision_all(
    brokers: &str,
    config: &TopicsConfig,
) -> Result<Vec<(String, TopicOutcome)>, TopicsError> {
    provision(brokers, &config.specs()).await
}

/// Creates the topics in `specs` that do not exist yet on `brokers`, and says what happened
/// to each. An existing topic (`TopicAlreadyExists`) is a success.
pub async fn provision(
    brokers: &str,
    specs: &[TopicSpec],
) -> Result<Vec<(String, TopicOutcome)>, TopicsError> {
    let admin: AdminClient<KafkaContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("client.id", "motcua-topics")
        .create_with_context(KafkaContext::default())?;
    let options = AdminOptions::new()
        .request_timeout(Some(ADMIN_TIMEOUT))
        .operation_timeout(Some(ADMIN_TIMEOUT));

    let results = create(&admin, specs, &options, true).await?;
    let mut outcomes = Vec::with_capacity(specs.len());
    for (spec, result) in specs.iter().zip(results) {
        let outcome = match result {
            Ok(()) => TopicOutcome::Created,
            Err(RDKafkaErrorCode::TopicAlreadyExists) => TopicOutcome::Existed,
            Err(code) if refuses_config(code) && !spec.config.is_empty() => {
                let refused = describe_config(spec);
                tracing::warn!(
                    topic = %spec.name,
                    %code,
                    %refused,
                    "the broker refused the topic's configuration; creating it without"
                );
                match create(&admin, std::slice::from_ref(spec), &options, false)
                    .await?
                    .pop()
                {
                    Some(Ok(())) => TopicOutcome::CreatedWithoutConfig { refused },
                    Some(Err(RDKafkaErrorCode::TopicAlreadyExists)) => TopicOutcome::Existed,
                    Some(Err(code)) => return Err(refused_error(spec, code)),
                    None => return Err(refused_error(spec, RDKafkaErrorCode::Unknown)),
                }
            }
            Err(code) => return Err(refused_error(spec, code)),
        };
        match &outcome {
            TopicOutcome::Created => tracing::info!(
                topic = %spec.name,
                partitions = spec.partitions,
                replication = spec.replication,
                config = %describe_config(spec),
                "created topic"
            ),
            TopicOutcome::Existed => {
                tracing::info!(topic = %spec.name, "topic exists; left as it is");
            }
            TopicOutcome::CreatedWithoutConfig { .. } => {
                tracing::info!(topic = %spec.name, "created topic without its configuration");
            }
        }
        outcomes.push((spec.name.clone(), outcome));
    }
    Ok(outcomes)
}

/// One CreateTopics request; a result per spec, in order.
async fn create(
    admin: &AdminClient<KafkaContext>,
    specs: &[TopicSpec],
    options: &AdminOptions,
    with_config: bool,
) -> Result<Vec<Result<(), RDKafkaErrorCode>>, TopicsError> {
    let topics: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|spec| {
            let mut topic = NewTopic::new(
                &spec.name,
                spec.partitions,
                TopicReplication::Fixed(spec.replication),
            );
            if with_config {
                for (key, value) in &spec.config {
                    topic = topic.set(key, value);
                }
            }
            topic
        })
        .collect();
    let results = admin.create_topics(&topics, options).await?;
    // Results come back per topic name; match them up rather than trusting the order.
    Ok(specs
        .iter()
        .map(|spec| {
            results
                .iter()
                .find_map(|result| match result {
                    Ok(name) if *name == spec.name => Some(Ok(())),
                    Err((name, code)) if *name == spec.name => Some(Err(*code)),
                    _ => None,
                })
                .unwrap_or(Err(RDKafkaErrorCode::Unknown))
        })
        .collect())
}

/// Error codes with which a broker says it does not accept a topic's configuration.
fn refuses_config(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::InvalidConfig
            | RDKafkaErrorCode::PolicyViolation
            | RDKafkaErrorCode::InvalidRequest
            | RDKafkaErrorCode::UnsupportedVersion
    )
}

fn describe_config(spec: &TopicSpec) -> String {
    spec.config
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn refused_error(spec: &TopicSpec, code: RDKafkaErrorCode) -> TopicsError {
    TopicsError::Refused {
        topic: spec.name.clone(),
        code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_design_topics_with_their_retention() {
        let specs = TopicsConfig::default().specs();
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                DOSSIER_EVENTS,
                DOSSIER_STATUS,
                RATES,
                PORTAL_SYNC_DLQ,
                DOSSIER_EVENTS_DLQ
            ]
        );
        assert!(
            specs
                .iter()
                .all(|s| s.partitions == 12 && s.replication == 1)
        );
        let config = |name: &str| {
            specs
                .iter()
                .find(|s| s.name == name)
                .map(describe_config)
                .unwrap_or_default()
        };
        assert_eq!(config(DOSSIER_EVENTS), "retention.ms=-1");
        assert_eq!(config(DOSSIER_STATUS), "cleanup.policy=compact");
        assert_eq!(config(RATES), "cleanup.policy=compact");
        assert_eq!(config(PORTAL_SYNC_DLQ), "retention.ms=7776000000");
        assert_eq!(config(DOSSIER_EVENTS_DLQ), "retention.ms=7776000000");
    }
}
