//! Checkpoints and leases on SQLite (see [`crate::Checkpoints`]).
//!
//! Checkpoints are rows of the `checkpoints` table. The store's writer task serves appends
//! only, so a save opens a short-lived connection of its own (SQLite's locking and the busy
//! timeout order it with the writer's group commits). A relay saves once per batch, so the
//! cost of opening it (well under a millisecond) does not matter.
//!
//! A lease is an exclusive `flock` on a lease file beside the database file,
//! `<database>.lease.<name>`. The lock belongs to the open file, so it is released when the
//! lease is dropped or the process dies, and it excludes other processes as well as other
//! holders in the same process (each opens the file anew). This is a single-machine lease,
//! which is what the embedded mode is; once taken it cannot be lost, so
//! [`Lease::is_held`] always answers `true`.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::PathBuf;

use async_trait::async_trait;
use chrono::Utc;
use sqlx::{ConnectOptions, Connection};

use super::SqliteStore;
use crate::{Checkpoints, Lease, StoreError};

impl SqliteStore {
    /// Where the lease called `name` is locked: beside the database file, with the name's
    /// characters outside `[A-Za-z0-9._-]` replaced by `_`.
    fn lease_path(&self, name: &str) -> PathBuf {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut path = self
            .readers
            .connect_options()
            .get_filename()
            .as_os_str()
            .to_owned();
        path.push(format!(".lease.{safe}"));
        PathBuf::from(path)
    }
}

fn to_i64(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value)
        .map_err(|_| StoreError::Corrupt(format!("checkpoint {value} out of range")))
}

#[async_trait]
impl Checkpoints for SqliteStore {
    async fn load(&self, name: &str) -> Result<u64, StoreError> {
        let position: Option<i64> =
            sqlx::query_scalar("SELECT position FROM checkpoints WHERE name = ?1")
                .bind(name)
                .fetch_optional(&self.readers)
                .await?;
        let position = position.unwrap_or(0);
        u64::try_from(position)
            .map_err(|_| StoreError::Corrupt(format!("checkpoint {position} is negative")))
    }

    async fn save(&self, name: &str, position: u64) -> Result<(), StoreError> {
        // The readers' options are the store's, read-only: the same file, WAL, FULL sync.
        let options = (*self.readers.connect_options()).clone().read_only(false);
        let mut conn = options.connect().await?;
        sqlx::query(
            "INSERT INTO checkpoints (name, position, updated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET position = excluded.position, \
             updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(to_i64(position)?)
        .bind(Utc::now().timestamp_micros())
        .execute(&mut conn)
        .await?;
        conn.close().await?;
        Ok(())
    }

    async fn try_lease(&self, name: &str) -> Result<Option<Box<dyn Lease>>, StoreError> {
        let path = self.lease_path(name);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|error| {
                StoreError::Unavailable(format!(
                    "cannot open the lease file {}: {error}",
                    path.display()
                ))
            })?;
        match file.try_lock() {
            Ok(()) => {
                tracing::info!(lease = name, path = %path.display(), "took the lease");
                Ok(Some(Box::new(SqliteLease {
                    name: name.to_owned(),
                    file,
                })))
            }
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(error)) => Err(StoreError::Unavailable(format!(
                "cannot lock the lease file {}: {error}",
                path.display()
            ))),
        }
    }
}

/// A lease held as an exclusive lock on its open lease file.
#[derive(Debug)]
struct SqliteLease {
    name: String,
    /// Holds the lock while it is open; closing it (on drop) releases the lock.
    file: File,
}

#[async_trait]
impl Lease for SqliteLease {
    fn name(&self) -> &str {
        &self.name
    }

    async fn is_held(&mut self) -> bool {
        true
    }

    async fn release(self: Box<Self>) {
        // Closing the file would release it as well; unlocking first says so explicitly.
        let _ = self.file.unlock();
        tracing::info!(lease = %self.name, "released the lease");
    }
}
