//! The transactional-outbox relay: publishes every committed event of the event store to
//! Kafka, and provisions motcua's Kafka topics.
//!
//! The event store is the outbox: an event is committed there by the command that caused it,
//! and [`Relay`] follows the store's global position ([`EventStore::events_after`]) and
//! publishes each event to `motcua.dossier-events.v1` (see [`topics`]):
//!
//! | record part | content |
//! |---|---|
//! | key | the dossier id |
//! | value | the stored protobuf `motcua.v1.DossierEvent` bytes, unchanged |
//! | header `motcua-event-type` | the stored event type (`received`, `resolved`, …) |
//! | header `motcua-schema-version` | `1` |
//! | header `motcua-position` | the event's global position, decimal |
//! | header `motcua-seq` | the event's seq in its dossier, decimal |
//! | header `traceparent` | W3C trace context derived from the event (see [`record`]) |
//!
//! The loop: read a batch after the checkpoint, send it, and save the checkpoint only up to the
//! last position whose delivery, and the delivery of every lower position, the broker
//! acknowledged. Reading the next batch overlaps with waiting for the deliveries of the previous
//! ones (at most [`RelayConfig::max_in_flight`] events unacknowledged). On a delivery error, a
//! fatal producer error or deliveries that stall: nothing more is acknowledged, the producer is
//! dropped (which purges what it still had), and after a backoff a new producer republishes
//! from the acknowledged prefix. When the database is away, the relay backs off and resumes.
//!
//! # Why each dossier's events are in `seq` order in Kafka, always
//!
//! "In order" here means what readers see after dropping repeated `(dossier id, seq)`: the
//! first occurrence of each event, in a partition's offset order, follows the dossier's `seq`
//! with no gap. Duplicates (after a crash or a producer restart) are allowed and repeat an
//! earlier `(dossier id, seq)` with the same value. The argument:
//!
//! 1. **One partition per dossier.** The key is the dossier id and the partitioner is a hash of
//!    the key (`murmur2_random`, the Java client's choice, so other producers agree), so all of
//!    a dossier's events go to one partition, as long as the topic's partition count does not
//!    change (adding partitions moves keys: don't, or drain the relay first).
//! 2. **Sent in seq order.** Positions are dense and commit-ordered, and a dossier's event
//!    `seq + 1` is committed after `seq`, so position order is seq order for every dossier.
//!    The relay reads in position order and hands records to one producer in that order, from
//!    one task; librdkafka keeps the order of a partition's records.
//! 3. **A producer writes a gap-free prefix of what it was given.** The producer is idempotent
//!    (`enable.idempotence=true`, `acks=all`, `max.in.flight.requests.per.connection` ≤ 5), so
//!    the broker writes a producer's batches for a partition in sequence and rejects a batch
//!    that does not continue the last one: retries cannot reorder or skip. Two things could
//!    still make librdkafka skip a record and go on with later ones: a message timeout, which
//!    is why `message.timeout.ms` is 0 (never; the relay's own [`RelayConfig::delivery_timeout`]
//!    instead drops the *whole* producer, which purges every record after the stalled one as
//!    well), and other permanent per-batch errors, which `enable.gapless.guarantee=true` turns
//!    into a fatal error that stops the producer. So what one producer got written to a
//!    partition is a prefix, in order, of what it was given.
//! 4. **Every producer starts after a prefix that is already in Kafka.** The checkpoint only
//!    ever records a position whose delivery, and every lower one's, the broker acknowledged;
//!    a new producer (after an error, a restart or a crash) starts right after the
//!    acknowledged prefix (in memory, or the durable checkpoint after a restart).
//!
//! Together: take the first occurrence of `(D, k)` in D's partition, written by some producer
//! P. If P started after `(D, k - 1)`, then `(D, k - 1)` was in Kafka before P started (4);
//! otherwise P was given `(D, k - 1)` before `(D, k)` (2) and wrote it first (3). Either way a
//! `(D, k - 1)` precedes the first `(D, k)`: first occurrences come in seq order, without gaps.
//! This holds whatever happens to the processes, even with two relays publishing at once for a
//! while (for instance, the old leader finishing a batch just after losing its lease): each is
//! one more producer P in the argument. What a second relay would add is duplicates.
//!
//! # One active relay
//!
//! Several relay processes may run for availability; one is active. Each takes the lease
//! (see [`motcua_store::Checkpoints::try_lease`]) named after the checkpoint before publishing,
//! and a standby retries every [`RelayConfig::standby_interval`]. On PostgreSQL the lease is a
//! session-level advisory lock on a dedicated connection: when the active process dies, its
//! session ends and a standby takes over, starting from the durable checkpoint. The active
//! relay checks the lease before it publishes each batch and steps down (drops its producer,
//! back to standby) when it is not held any more, so a relay that lost its database connection
//! does not keep publishing for long.
//!
//! # Lag and counters
//!
//! [`Relay::status`] is a [`tokio::sync::watch`] of [`RelayStatus`]: role, head, checkpoint,
//! lag (head − checkpoint) and counters, for the binary to export as metrics. Progress is
//! logged with `tracing`.
//!
//! [`EventStore::events_after`]: motcua_store::EventStore::events_after

mod backoff;
mod config;
mod context;
pub mod record;
mod relay;
mod status;
pub mod topics;

pub use config::RelayConfig;
pub use relay::{Relay, RelayError, run_relay};
pub use status::{RelayRole, RelayStatus};
