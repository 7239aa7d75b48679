//! Topic provisioning against the real broker: creates what is missing, with its
//! configuration, and a second run changes nothing and succeeds.

mod common;

use std::time::Duration;

use motcua_relay::topics::{TopicOutcome, TopicsConfig, provision, provision_all};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;

#[tokio::test]
async fn provisioning_twice_is_fine() {
    common::init_logs();
    let Some(brokers) = common::brokers() else {
        return;
    };
    // The design's topics under names of this test's own, so the run starts from nothing.
    let prefix = common::unique_topic("topics");
    let config = TopicsConfig {
        partitions: 3,
        ..TopicsConfig::default()
    };
    let specs: Vec<_> = config
        .specs()
        .into_iter()
        .map(|mut spec| {
            spec.name = format!("{prefix}.{}", spec.name);
            spec
        })
        .collect();

    let first = provision(&brokers, &specs)
        .await
        .expect("first provisioning");
    assert_eq!(first.len(), 5);
    for (name, outcome) in &first {
        assert_eq!(*outcome, TopicOutcome::Created, "{name}");
    }
    let second = provision(&brokers, &specs)
        .await
        .expect("second provisioning");
    for (name, outcome) in &second {
        assert_eq!(*outcome, TopicOutcome::Existed, "{name}");
    }

    for spec in &specs {
        assert_eq!(
            common::partition_count(&brokers, &spec.name),
            3,
            "{}",
            spec.name
        );
    }
    // The configuration went with the topics.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("an admin client");
    let resources: Vec<_> = specs
        .iter()
        .map(|spec| ResourceSpecifier::Topic(&spec.name))
        .collect();
    let described = admin
        .describe_configs(
            &resources,
            &AdminOptions::new().request_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("describe the topics");
    for (spec, resource) in specs.iter().zip(described) {
        let resource = resource.expect("a topic's configuration");
        for (key, value) in &spec.config {
            assert_eq!(
                resource.get(key).and_then(|entry| entry.value.as_deref()),
                Some(value.as_str()),
                "{} {key}",
                spec.name
            );
        }
    }
}

/// The real topic names: whatever exists already (other tests, an earlier run) is left alone.
#[tokio::test]
async fn provisioning_the_design_topics_is_idempotent() {
    common::init_logs();
    let Some(brokers) = common::brokers() else {
        return;
    };
    let config = TopicsConfig::default();
    let first = provision_all(&brokers, &config).await.expect("provision");
    assert!(
        first
            .iter()
            .all(|(_, o)| matches!(o, TopicOutcome::Created | TopicOutcome::Existed))
    );
    let second = provision_all(&brokers, &config).await.expect("again");
    assert!(second.iter().all(|(_, o)| *o == TopicOutcome::Existed));
}
