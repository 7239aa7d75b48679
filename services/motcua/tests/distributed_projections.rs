//! The distributed node as operators run it: `motcua serve` on PostgreSQL and Kafka (started by
//! `scripts/test-env.sh`), dossiers received with the `motcua` client, and what monitoring
//! teams read: each dossier's status on `motcua.dossier-status.v1` and the province's figures
//! on `motcua.rates.v1`, with no personal data on either topic.
//!
//! Skips with a message without `DATABASE_URL` and `KAFKA_BROKERS`, unless
//! `MOTCUA_REQUIRE_POSTGRES=1` / `MOTCUA_REQUIRE_KAFKA=1` make that a failure.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

mod common;

use common::{free_port, fresh_database, required};

const BIN: &str = env!("CARGO_BIN_EXE_motcua");
const APPLICANT_NAME: &str = "Trần Thị Bình";
const APPLICANT_ID: &str = "001199012345";

struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads `topic` from the start until `done` says the latest values per key are complete.
async fn read_until(
    brokers: &str,
    topic: &str,
    done: impl Fn(&BTreeMap<String, Value>) -> bool,
) -> (BTreeMap<String, Value>, Vec<String>) {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set(
            "group.id",
            format!("test-{}", uuid::Uuid::new_v4().simple()),
        )
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "50")
        .create()
        .expect("a consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions = metadata.topics()[0].partitions().len() as i32;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("a partition");
    }
    consumer.assign(&assignment).expect("assigned");
    let mut latest = BTreeMap::new();
    let mut raw = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !done(&latest) {
        assert!(
            Instant::now() < deadline,
            "{topic} never had what was expected; latest values: {latest:?}"
        );
        let Ok(Ok(message)) = tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await
        else {
            continue;
        };
        let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
        let payload = String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
        let value: Value = serde_json::from_str(&payload).expect("JSON values");
        raw.push(payload);
        latest.insert(key, value);
    }
    (latest, raw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_distributed_node_publishes_statuses_and_rates_without_personal_data() {
    let Some(url) = required("DATABASE_URL", "MOTCUA_REQUIRE_POSTGRES") else {
        return;
    };
    let Some(brokers) = required("KAFKA_BROKERS", "MOTCUA_REQUIRE_KAFKA") else {
        return;
    };
    let database_url = fresh_database(&url, "motcua_dist").await;

    let port = free_port();
    let server = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let _node = Node(
        Command::new(BIN)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(dir.path())
            .env("DATABASE_URL", &database_url)
            .env("KAFKA_BROKERS", &brokers)
            .env(
                "MOTCUA_SIMULATED_CLOCK_START",
                common::node_clock_start().to_rfc3339(),
            )
            .env("MOTCUA_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("motcua serve starts"),
    );
    let mut codes = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while codes.len() < 3 {
        let output = Command::new(BIN)
            .args(["dossier", "--server", &server, "--json", "receive"])
            // The node's administrator token, created in its data directory.
            .env("MOTCUA_DATA_DIR", dir.path())
            .args(["--procedure", "2.000908", "--unit", "000.00.01.H22"])
            .args([
                "--applicant-name",
                APPLICANT_NAME,
                "--applicant-id",
                APPLICANT_ID,
            ])
            .env_remove("DATABASE_URL")
            .env_remove("KAFKA_BROKERS")
            .output()
            .expect("motcua dossier runs");
        if output.status.success() {
            let value: Value = serde_json::from_slice(&output.stdout).expect("JSON");
            let code = value["dossier_id"]
                .as_str()
                .or_else(|| value["dossier"]["dossier_id"].as_str())
                .unwrap_or_else(|| panic!("a dossier id in {value}"))
                .to_owned();
            codes.push(code);
        } else {
            // The node may still be starting (topics, migrations).
            assert!(
                Instant::now() < deadline,
                "receive failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    let (statuses, raw_statuses) = read_until(&brokers, "motcua.dossier-status.v1", |latest| {
        codes.iter().all(|code| latest.contains_key(code))
    })
    .await;
    for code in &codes {
        let value = &statuses[code];
        assert_eq!(value["schema"], "motcua.dossier-status.v1");
        assert_eq!(value["status"]["code"], 2, "{value}");
        assert_eq!(value["receiving_unit"], "000.00.01.H22");
    }

    let year = common::NODE_YEAR;
    // Its own unit's figures: the province's also count whatever else the shared test broker
    // carries (another test's dossiers, under other units, read from the topic's start).
    let key = format!("receiving_unit/000.00.01.H22/{year}");
    let (rates, raw_rates) = read_until(&brokers, "motcua.rates.v1", |latest| {
        latest
            .get(&key)
            .is_some_and(|v| v["figures"]["received"] == 3)
    })
    .await;
    let value = &rates[&key];
    assert_eq!(value["figures"]["in_progress"], 3, "{value}");
    assert_eq!(value["closed"], false);

    for payload in raw_statuses.iter().chain(&raw_rates) {
        assert!(
            !payload.contains(APPLICANT_ID) && !payload.contains(APPLICANT_NAME),
            "personal data on a monitoring topic: {payload}"
        );
    }
}
