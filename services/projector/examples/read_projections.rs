//! Reads a projection topic from the beginning and prints each record's key and JSON value,
//! one per line: the least a monitoring team needs to see what motcua publishes.
//!
//! ```text
//! cargo run -p motcua-projector --example read_projections -- \
//!     --brokers 127.0.0.1:9092 --topic motcua.rates.v1
//! ```
//!
//! It uses a consumer group of its own each run and commits nothing, so it always starts from
//! the earliest record and never disturbs another reader. Stop it with Ctrl-C. On a compacted
//! topic the last record printed for a key is its current value.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};

/// The command line: `--brokers <list>` and `--topic <name>`.
#[derive(Debug)]
struct Args {
    brokers: String,
    topic: String,
}

fn parse_args() -> Result<Args, String> {
    let mut brokers = std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let mut topic = "motcua.rates.v1".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--brokers" => brokers = value("--brokers")?,
            "--topic" => topic = value("--topic")?,
            "--help" | "-h" => {
                return Err(
                    "usage: read_projections [--brokers host:port,...] [--topic name]".into(),
                );
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(Args { brokers, topic })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let group = format!(
        "read-projections-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default()
    );
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", group)
        // A fresh group has no committed offset: start from the earliest record.
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[args.topic.as_str()])?;
    eprintln!(
        "reading {} from {} (Ctrl-C to stop)",
        args.topic, args.brokers
    );
    loop {
        let message = tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            message = consumer.recv() => message,
        };
        match message {
            Ok(message) => {
                let key = String::from_utf8_lossy(message.key().unwrap_or_default());
                let schema = message
                    .headers()
                    .and_then(|h| h.iter().find(|h| h.key == "schema"))
                    .and_then(|h| h.value)
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                let value = message
                    .payload()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_else(|| "null (tombstone)".into());
                println!(
                    "{}[{}]@{} {schema} {key} {value}",
                    message.topic(),
                    message.partition(),
                    message.offset()
                );
            }
            Err(error) => {
                eprintln!("error: {error}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    Ok(())
}
