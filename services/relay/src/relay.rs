//! The relay loop: standby until it holds the lease, then publish from the checkpoint.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use motcua_store::{Checkpoints, EventStore, Lease, StoreError, StoredEvent};
use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::watch;

use crate::backoff::Backoff;
use crate::config::RelayConfig;
use crate::context::KafkaContext;
use crate::record;
use crate::status::{RelayRole, RelayStatus};

/// Why the relay stopped other than on request. Everything else (the broker or the database
/// being away, failed deliveries, a lost lease) is retried and never ends the relay.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The configuration cannot work.
    #[error("invalid relay configuration: {0}")]
    Config(String),
    /// librdkafka refused to create the producer: a bad producer property.
    #[error("cannot create the Kafka producer: {0}")]
    Producer(#[source] KafkaError),
}

/// How often the relay asks the store for its head while catching up (when it is caught up it
/// knows the head from its own reads).
const HEAD_INTERVAL: Duration = Duration::from_secs(1);
/// How often the relay saves its checkpoint while publishing: a crash republishes at most
/// this much, and the store sees at most a few writes per second.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);
/// How often progress is logged while there is progress.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);
/// How long a requested shutdown waits for the broker to acknowledge what was sent, so the
/// checkpoint can be saved and the next relay republishes less.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

type KafkaProducer = FutureProducer<KafkaContext>;

/// The outbox relay. See the crate documentation for what it guarantees and why.
#[derive(Debug)]
pub struct Relay {
    store: Arc<dyn EventStore>,
    checkpoints: Arc<dyn Checkpoints>,
    config: RelayConfig,
    status: watch::Sender<RelayStatus>,
}

/// Runs a relay until `shutdown` completes: the one-call form of [`Relay::run`] for a binary
/// that does not export the relay's status.
pub async fn run_relay(
    store: Arc<dyn EventStore>,
    checkpoints: Arc<dyn Checkpoints>,
    config: RelayConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RelayError> {
    Relay::new(store, checkpoints, config).run(shutdown).await
}

impl Relay {
    /// A relay that publishes the events of `store` and keeps its checkpoint and lease in
    /// `checkpoints` (normally the same store).
    pub fn new(
        store: Arc<dyn EventStore>,
        checkpoints: Arc<dyn Checkpoints>,
        config: RelayConfig,
    ) -> Self {
        Self {
            store,
            checkpoints,
            config,
            status: watch::Sender::new(RelayStatus::default()),
        }
    }

    /// The relay's state, updated as it works: what the binary exports as metrics.
    pub fn status(&self) -> watch::Receiver<RelayStatus> {
        self.status.subscribe()
    }

    /// Runs until `shutdown` completes: standby while another relay holds the lease, publishing
    /// while this one does. Returns an error only for a configuration that cannot work.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), RelayError> {
        let producer_config = self.validate().await?;
        let mut shutdown = Shutdown::new(shutdown);
        let mut backoff = Backoff::new(self.config.backoff_initial, self.config.backoff_max);
        tracing::info!(
            name = %self.config.name,
            topic = %self.config.topic,
            brokers = %self.config.brokers,
            "relay starting"
        );
        loop {
            self.status.send_modify(|s| s.role = RelayRole::Standby);
            metrics::gauge!("motcua_relay_active").set(0.0);
            let lease = loop {
                let attempt = shutdown.or(self.checkpoints.try_lease(&self.config.name));
                let delay = match attempt.await {
                    None => return self.stopped(),
                    Some(Ok(Some(lease))) => break lease,
                    Some(Ok(None)) => {
                        tracing::debug!(name = %self.config.name, "another relay is active");
                        self.config.standby_interval
                    }
                    Some(Err(error)) => {
                        self.store_error("take the lease", &error);
                        backoff.next_delay()
                    }
                };
                if shutdown.sleep(delay).await.is_none() {
                    return self.stopped();
                }
            };
            backoff.reset();
            self.status.send_modify(|s| {
                s.role = RelayRole::Active;
                metrics::gauge!("motcua_relay_active").set(1.0);
                s.leases_taken += 1;
            });
            tracing::info!(name = %self.config.name, "active: this relay holds the lease");
            let mut active = Active::new(&self, lease, &producer_config);
            let outcome = active.run(&mut shutdown).await;
            active.close().await;
            match outcome {
                Ok(Stop::Shutdown) => return self.stopped(),
                Ok(Stop::LeaseLost) => {
                    self.status.send_modify(|s| s.leases_lost += 1);
                    tracing::warn!(
                        name = %self.config.name,
                        "lost the lease; stopped publishing, back to standby"
                    );
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Checks the configuration once at start, so that a standby with a bad configuration
    /// fails now rather than when it becomes active.
    async fn validate(&self) -> Result<ClientConfig, RelayError> {
        if self.config.batch_size == 0 || self.config.max_in_flight == 0 {
            return Err(RelayError::Config(
                "batch_size and max_in_flight must be at least 1".into(),
            ));
        }
        let config = self.config.producer_config().map_err(RelayError::Config)?;
        let (producer, _) = create_producer(&config)?;
        dispose(producer).await;
        Ok(config)
    }

    /// Records a requested stop; what [`Relay::run`] then returns.
    fn stopped(&self) -> Result<(), RelayError> {
        self.status.send_modify(|s| s.role = RelayRole::Stopped);
        metrics::gauge!("motcua_relay_active").set(0.0);
        tracing::info!(name = %self.config.name, "relay stopped");
        Ok(())
    }

    fn store_error(&self, what: &str, error: &StoreError) {
        tracing::warn!(name = %self.config.name, %error, "could not {what}; retrying");
        self.status.send_modify(|s| {
            s.store_errors += 1;
            s.last_error = Some(format!("{what}: {error}"));
        });
    }
}

/// Why the active phase ended without an error.
enum Stop {
    Shutdown,
    LeaseLost,
}

/// Why the current producer is given up.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("delivery failed: {0}")]
    Delivery(KafkaError),
    #[error("could not hand a record to the producer: {0}")]
    Enqueue(KafkaError),
    #[error("the producer hit a fatal error")]
    Fatal,
    #[error("the producer went away before reporting a delivery")]
    Canceled,
    #[error("no delivery acknowledged for {0:?}")]
    Stalled(Duration),
}

/// An event handed to the producer and not yet acknowledged.
struct Pending {
    position: u64,
    delivery: DeliveryFuture,
}

/// The active phase: holds the lease, the producer and the positions.
struct Active<'a> {
    relay: &'a Relay,
    lease: Option<Box<dyn Lease>>,
    producer_config: &'a ClientConfig,
    producer: Option<(KafkaProducer, KafkaContext)>,
    /// Sent and not yet acknowledged, in position order.
    pending: VecDeque<Pending>,
    /// Every event up to here is acknowledged by the broker.
    acked: u64,
    /// The durable checkpoint.
    saved: u64,
    /// The last position handed to the producer: the next read starts after it.
    sent: u64,
    /// When the front of `pending` last moved (or `pending` last became non-empty).
    last_progress: Instant,
    last_save: Instant,
    last_head: Instant,
    last_log: Instant,
    /// `published` at the last progress log, for the rate.
    logged_published: u64,
    /// Delays after failed store operations; reset by a successful read.
    store_backoff: Backoff,
    /// Delays before republishing after a producer failure; reset by an acknowledgement, so
    /// a broker that keeps failing is retried less and less often.
    producer_backoff: Backoff,
}

impl<'a> Active<'a> {
    fn new(relay: &'a Relay, lease: Box<dyn Lease>, producer_config: &'a ClientConfig) -> Self {
        let now = Instant::now();
        Self {
            relay,
            lease: Some(lease),
            producer_config,
            producer: None,
            pending: VecDeque::new(),
            acked: 0,
            saved: 0,
            sent: 0,
            last_progress: now,
            last_save: now,
            last_head: now,
            last_log: now,
            logged_published: relay.status.borrow().published,
            store_backoff: Backoff::new(relay.config.backoff_initial, relay.config.backoff_max),
            producer_backoff: Backoff::new(relay.config.backoff_initial, relay.config.backoff_max),
        }
    }

    fn config(&self) -> &RelayConfig {
        &self.relay.config
    }

    async fn run(&mut self, shutdown: &mut Shutdown<'_>) -> Result<Stop, RelayError> {
        let Some(checkpoint) = self.load_checkpoint(shutdown).await else {
            return Ok(Stop::Shutdown);
        };
        tracing::info!(name = %self.config().name, checkpoint, "publishing from the checkpoint");
        self.acked = checkpoint;
        self.saved = checkpoint;
        self.sent = checkpoint;
        self.relay
            .status
            .send_modify(|s| s.set_checkpoint(checkpoint));
        loop {
            if self.producer.is_none() {
                let (producer, context) = create_producer(self.producer_config)?;
                self.producer = Some((producer, context));
            }
            match shutdown.or(self.step()).await {
                None => {
                    self.drain().await;
                    return Ok(Stop::Shutdown);
                }
                Some(Ok(Step::Continue)) => {}
                Some(Ok(Step::LeaseLost)) => return Ok(Stop::LeaseLost),
                Some(Ok(Step::Wait(delay))) => {
                    if shutdown.sleep(delay).await.is_none() {
                        self.drain().await;
                        return Ok(Stop::Shutdown);
                    }
                }
                Some(Err(failure)) => {
                    self.give_up_producer(&failure).await;
                    let delay = self.producer_backoff.next_delay();
                    tracing::info!(?delay, acked = self.acked, "republishing after a backoff");
                    if shutdown.sleep(delay).await.is_none() {
                        return Ok(Stop::Shutdown);
                    }
                    self.relay.status.send_modify(|s| s.producer_restarts += 1);
                }
            }
        }
    }

    /// Loads the checkpoint, retrying while the store is away. `None` on shutdown.
    async fn load_checkpoint(&mut self, shutdown: &mut Shutdown<'_>) -> Option<u64> {
        loop {
            let load = self.relay.checkpoints.load(&self.relay.config.name);
            match shutdown.or(load).await? {
                Ok(checkpoint) => return Some(checkpoint),
                Err(error) => self.relay.store_error("load the checkpoint", &error),
            }
            let delay = self.store_backoff.next_delay();
            shutdown.sleep(delay).await?;
        }
    }

    /// One round: collect acknowledgements, save the checkpoint, read and send a batch (or
    /// wait for room or for new events).
    async fn step(&mut self) -> Result<Step, Failure> {
        self.collect(false).await?;
        self.save_checkpoint(false).await;
        self.log_progress();

        if self.pending.len() >= self.config().max_in_flight {
            // Full: wait for the broker before reading on.
            self.collect(true).await?;
            return Ok(Step::Continue);
        }
        let events = match self
            .relay
            .store
            .events_after(self.sent, self.config().batch_size)
            .await
        {
            Ok(events) => events,
            Err(error) => {
                self.relay.store_error("read events", &error);
                return Ok(Step::Wait(self.store_backoff.next_delay()));
            }
        };
        self.store_backoff.reset();
        let Some(last) = events.last().map(|e| e.position) else {
            // Caught up: the head is what was sent.
            let sent = self.sent;
            self.relay.status.send_modify(|s| s.set_head(sent));
            if self.pending.is_empty() {
                self.save_checkpoint(true).await;
            }
            return Ok(Step::Wait(self.config().poll_interval));
        };
        if events.len() < self.config().batch_size as usize {
            self.relay.status.send_modify(|s| s.set_head(last));
        } else if self.last_head.elapsed() >= HEAD_INTERVAL {
            self.last_head = Instant::now();
            if let Ok(head) = self.relay.store.head_position().await {
                self.relay.status.send_modify(|s| s.set_head(head));
            }
        }
        // Before publishing anything, make sure this relay is still the one that may.
        if let Some(lease) = self.lease.as_mut()
            && !lease.is_held().await
        {
            return Ok(Step::LeaseLost);
        }
        self.send(events).await?;
        self.sent = last;
        Ok(Step::Continue)
    }

    /// Hands a batch to the producer, in position order.
    async fn send(&mut self, events: Vec<StoredEvent>) -> Result<(), Failure> {
        for event in &events {
            let headers = record::headers(event);
            let mut next = FutureRecord::to(&self.relay.config.topic)
                .key(event.dossier_id.as_str())
                .payload(event.payload.as_slice())
                .headers(headers);
            loop {
                let Some((producer, _)) = self.producer.as_ref() else {
                    return Err(Failure::Canceled);
                };
                match producer.send_result(next) {
                    Ok(delivery) => {
                        if self.pending.is_empty() {
                            self.last_progress = Instant::now();
                        }
                        self.pending.push_back(Pending {
                            position: event.position,
                            delivery,
                        });
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // librdkafka's queue is full: wait for an acknowledgement (or, with
                        // nothing of ours in it, a moment), then retry.
                        next = back;
                        if self.pending.is_empty() {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        } else {
                            self.collect(true).await?;
                        }
                    }
                    Err((error, _)) => return Err(Failure::Enqueue(error)),
                }
            }
        }
        Ok(())
    }

    /// Takes the acknowledged front of `pending`: what is ready, or (with `wait`) at least one,
    /// waiting up to the delivery timeout since the last progress.
    async fn collect(&mut self, mut wait: bool) -> Result<(), Failure> {
        let timeout = self.relay.config.delivery_timeout;
        let mut delivered = 0;
        let outcome = loop {
            let Some(front) = self.pending.front_mut() else {
                break Ok(());
            };
            let result = if wait {
                let left = timeout.saturating_sub(self.last_progress.elapsed());
                match tokio::time::timeout(left, &mut front.delivery).await {
                    Ok(result) => result,
                    Err(_) => break Err(Failure::Stalled(timeout)),
                }
            } else {
                match (&mut front.delivery).now_or_never() {
                    Some(result) => result,
                    None => {
                        break if self.last_progress.elapsed() >= timeout {
                            Err(Failure::Stalled(timeout))
                        } else if self.producer.as_ref().is_some_and(|(_, c)| c.is_fatal()) {
                            Err(Failure::Fatal)
                        } else {
                            Ok(())
                        };
                    }
                }
            };
            match result {
                Ok(Ok(_)) => {
                    self.acked = front.position;
                    self.pending.pop_front();
                    self.last_progress = Instant::now();
                    delivered += 1;
                    wait = false;
                }
                Ok(Err((error, _))) => break Err(Failure::Delivery(error)),
                Err(_canceled) => break Err(Failure::Canceled),
            }
        };
        if delivered > 0 {
            self.producer_backoff.reset();
            self.relay.status.send_modify(|s| s.published += delivered);
            metrics::counter!("motcua_relay_published_total").increment(delivered);
        }
        outcome
    }

    /// Saves the checkpoint if it moved, at most every [`CHECKPOINT_INTERVAL`] unless `now`.
    /// A failure is reported and retried at the next save: until then a crash republishes
    /// more, nothing worse.
    async fn save_checkpoint(&mut self, now: bool) {
        if self.acked <= self.saved || (!now && self.last_save.elapsed() < CHECKPOINT_INTERVAL) {
            return;
        }
        let acked = self.acked;
        match self
            .relay
            .checkpoints
            .save(&self.relay.config.name, acked)
            .await
        {
            Ok(()) => {
                self.saved = acked;
                self.last_save = Instant::now();
                self.relay.status.send_modify(|s| s.set_checkpoint(acked));
            }
            Err(error) => self.relay.store_error("save the checkpoint", &error),
        }
    }

    fn log_progress(&mut self) {
        if self.last_log.elapsed() < PROGRESS_INTERVAL {
            return;
        }
        let status = self.relay.status.borrow().clone();
        let published = status.published - self.logged_published;
        if published > 0 {
            let rate = published as f64 / self.last_log.elapsed().as_secs_f64();
            tracing::info!(
                name = %self.relay.config.name,
                checkpoint = status.checkpoint,
                head = status.head,
                lag = status.lag,
                published,
                rate = format!("{rate:.0}/s"),
                "relay progress"
            );
        }
        self.logged_published = status.published;
        self.last_log = Instant::now();
    }

    /// Drops the producer after a failure: what it still holds is purged, nothing after the
    /// acknowledged prefix counts as sent, and the next producer starts after that prefix.
    async fn give_up_producer(&mut self, failure: &Failure) {
        tracing::warn!(
            name = %self.relay.config.name,
            error = %failure,
            acked = self.acked,
            unacknowledged = self.pending.len(),
            "giving up the producer"
        );
        self.relay.status.send_modify(|s| {
            s.delivery_failures += 1;
            metrics::counter!("motcua_relay_delivery_failures_total").increment(1);
            s.last_error = Some(failure.to_string());
        });
        self.pending.clear();
        if let Some((producer, _)) = self.producer.take() {
            dispose(producer).await;
        }
        self.sent = self.acked;
        self.save_checkpoint(true).await;
    }

    /// On shutdown: give the broker a moment to acknowledge what was sent, and save.
    async fn drain(&mut self) {
        let waited = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while !self.pending.is_empty() {
                if self.collect(true).await.is_err() {
                    break;
                }
            }
        })
        .await;
        if waited.is_err() {
            tracing::warn!(
                unacknowledged = self.pending.len(),
                "shutting down with unacknowledged deliveries; the next relay republishes them"
            );
        }
        self.save_checkpoint(true).await;
    }

    /// Ends the active phase: drops the producer and releases the lease.
    async fn close(&mut self) {
        self.pending.clear();
        if let Some((producer, _)) = self.producer.take() {
            dispose(producer).await;
        }
        if let Some(lease) = self.lease.take() {
            lease.release().await;
        }
        let saved = self.saved;
        self.relay.status.send_modify(|s| {
            s.role = RelayRole::Standby;
            metrics::gauge!("motcua_relay_active").set(0.0);
            s.checkpoint = saved;
        });
    }
}

/// What [`Active::step`] asks the loop to do next.
enum Step {
    Continue,
    Wait(Duration),
    LeaseLost,
}

fn create_producer(config: &ClientConfig) -> Result<(KafkaProducer, KafkaContext), RelayError> {
    let context = KafkaContext::default();
    let producer = config
        .create_with_context(context.clone())
        .map_err(RelayError::Producer)?;
    Ok((producer, context))
}

/// Drops a producer off the async threads: its `Drop` purges what it holds and then blocks
/// for up to half a second to collect the purge's reports.
async fn dispose(producer: KafkaProducer) {
    let _ = tokio::task::spawn_blocking(move || drop(producer)).await;
}

/// The shutdown signal, pollable many times.
struct Shutdown<'a> {
    signal: Pin<Box<dyn Future<Output = ()> + Send + 'a>>,
    fired: bool,
}

impl<'a> Shutdown<'a> {
    fn new(signal: impl Future<Output = ()> + Send + 'a) -> Self {
        Self {
            signal: Box::pin(signal),
            fired: false,
        }
    }

    /// Runs `work` unless shutdown comes first: `None` then, and `work` is dropped.
    async fn or<T>(&mut self, work: impl Future<Output = T>) -> Option<T> {
        if self.fired {
            return None;
        }
        tokio::select! {
            biased;
            () = &mut self.signal => {
                self.fired = true;
                None
            }
            output = work => Some(output),
        }
    }

    /// Sleeps for `delay` unless shutdown comes first (`None`).
    async fn sleep(&mut self, delay: Duration) -> Option<()> {
        self.or(tokio::time::sleep(delay)).await
    }
}
