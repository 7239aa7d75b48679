//! Durable named positions, and a lease that lets exactly one worker of a kind be active.
//!
//! A worker that follows the global event order outside the store's own transactions (the
//! Kafka relay is the one today) needs two things from the store:
//!
//! - a **checkpoint**: the position up to which its work is done, saved after the work and
//!   loaded at start, so a restart resumes there and at most repeats what was in flight;
//! - a **lease**: a claim that only one process holds at a time, given up when that process
//!   dies, so two copies of the worker (for availability) never work at once.
//!
//! Readers that keep their own SQL tables do not need this: they record their position in the
//! same transaction as their writes.
//!
//! How each backend provides the lease:
//!
//! - PostgreSQL ([`crate::postgres::PostgresStore`]): a session-level advisory lock
//!   (`pg_try_advisory_lock`) taken on a dedicated connection outside the pool. The server
//!   releases it when that session ends: the process exits or is killed (its socket closes), or
//!   the connection is lost. [`Lease::is_held`] asks the server, on that connection, whether
//!   the lock is still held; a worker calls it before each unit of work and stops when it
//!   answers `false`.
//! - SQLite ([`crate::sqlite::SqliteStore`]): an exclusive lock (`flock`) on a lease file beside
//!   the database file. The embedded mode is one machine, so this is enough: the operating
//!   system releases the lock when the process dies, and it excludes other processes and other
//!   holders in the same process alike. It is not meant for a database file on a network file
//!   system, and the lease file must not be deleted while a worker runs.

use async_trait::async_trait;

use crate::StoreError;

/// Durable named positions and the leases that guard who writes them. Object safe, like
/// [`crate::EventStore`], so the binary can choose a backend at start.
#[async_trait]
pub trait Checkpoints: Send + Sync + std::fmt::Debug + 'static {
    /// The position saved under `name`, or 0 (nothing done yet) when none was ever saved.
    async fn load(&self, name: &str) -> Result<u64, StoreError>;

    /// Durably records `position` under `name`, replacing what was there (also a higher
    /// value: a worker that rewinds on purpose may do so). When this returns `Ok`, a later
    /// [`Checkpoints::load`], also after a crash, sees it.
    async fn save(&self, name: &str, position: u64) -> Result<(), StoreError>;

    /// Tries to take the lease called `name` without waiting: `Ok(None)` when another holder
    /// has it. The lease is held until it is released, dropped, or lost (see [`Lease`]).
    async fn try_lease(&self, name: &str) -> Result<Option<Box<dyn Lease>>, StoreError>;
}

/// A held lease. Dropping it releases it (for PostgreSQL, by closing its connection).
#[async_trait]
pub trait Lease: Send + std::fmt::Debug {
    /// The lease's name.
    fn name(&self) -> &str;

    /// Whether this holder still has the lease. `false` once it may have been lost (for
    /// PostgreSQL: the lock's connection is gone, the server does not answer in time, or the
    /// lock is not held by this session any more); after a `false` the holder must stop the
    /// work the lease guards, drop the lease and take it again before resuming.
    async fn is_held(&mut self) -> bool;

    /// Gives the lease up, so that another holder can take it at once.
    async fn release(self: Box<Self>);
}
