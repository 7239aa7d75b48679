//! Checkpoints and leases on PostgreSQL (see [`crate::Checkpoints`]).
//!
//! Checkpoints are rows of the `checkpoints` table, written on a pooled connection.
//!
//! A lease is a session-level advisory lock, `pg_try_advisory_lock(LEASE_CLASS, key)`, taken on
//! a dedicated connection opened for it (not a pooled one: a pooled connection goes back to the
//! pool and would carry the lock to whoever borrows it next). The server holds the lock as long
//! as that session lives, and releases it when the session ends: the holder closes the
//! connection, its process exits or is killed (the kernel closes the socket), or the server
//! drops the connection. The two-`int4` form of the key keeps leases apart from the store's
//! own `bigint` position lock, which lives in the other key space.
//!
//! A holder whose host vanishes without closing its socket (power loss, network partition)
//! keeps the lock until the server notices the dead connection; the lease connection asks the
//! server for TCP keepalives every few seconds so that this takes under a minute instead of
//! the operating system's default of hours.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::{ConnectOptions, Connection, PgConnection};

use super::{PostgresStore, refine_sqlx, sql::to_i64, sql::to_u64};
use crate::{Checkpoints, Lease, StoreError};

/// The first half of every lease's advisory-lock key: ASCII "motc". The second half is a hash
/// of the lease name.
const LEASE_CLASS: i32 = 0x6d6f_7463;

/// How long [`Lease::is_held`] waits for the server before answering `false`: a holder that
/// cannot reach the server must assume it may have lost the lock.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Server-side TCP keepalive for the lease connection (seconds): idle time, probe interval and
/// probe count, so a vanished holder's lock is freed in about 10 + 3 × 5 = 25 s.
const KEEPALIVE: [&str; 3] = [
    "SET tcp_keepalives_idle = 10",
    "SET tcp_keepalives_interval = 5",
    "SET tcp_keepalives_count = 3",
];

/// The second half of a lease's key: FNV-1a of its name, computed here rather than with the
/// server's undocumented `hashtext`, so the key is stable across PostgreSQL versions.
fn lease_key(name: &str) -> i32 {
    let hash = name.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    i32::from_ne_bytes(hash.to_ne_bytes())
}

#[async_trait]
impl Checkpoints for PostgresStore {
    async fn load(&self, name: &str) -> Result<u64, StoreError> {
        let position: Option<i64> =
            sqlx::query_scalar("SELECT position FROM checkpoints WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(refine_sqlx)?;
        to_u64(position.unwrap_or(0), "checkpoint")
    }

    async fn save(&self, name: &str, position: u64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO checkpoints (name, position, updated_at) VALUES ($1, $2, now()) \
             ON CONFLICT (name) DO UPDATE SET position = excluded.position, \
             updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(to_i64(position, "checkpoint")?)
        .execute(&self.pool)
        .await
        .map_err(refine_sqlx)?;
        Ok(())
    }

    async fn try_lease(&self, name: &str) -> Result<Option<Box<dyn Lease>>, StoreError> {
        let options = (*self.pool.connect_options())
            .clone()
            .application_name(&format!("motcua lease {name}"));
        let mut conn = options.connect().await.map_err(refine_sqlx)?;
        for setting in KEEPALIVE {
            sqlx::query(setting)
                .execute(&mut conn)
                .await
                .map_err(refine_sqlx)?;
        }
        let key = lease_key(name);
        let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
            .bind(LEASE_CLASS)
            .bind(key)
            .fetch_one(&mut conn)
            .await
            .map_err(refine_sqlx)?;
        if !taken {
            // Nothing to release; a failure to say goodbye changes nothing.
            let _ = conn.close().await;
            return Ok(None);
        }
        tracing::info!(lease = name, "took the lease");
        Ok(Some(Box::new(PostgresLease {
            name: name.to_owned(),
            key,
            conn,
        })))
    }
}

/// A lease held as an advisory lock by the session of `conn`.
#[derive(Debug)]
struct PostgresLease {
    name: String,
    /// The second half of the lock's key (see [`lease_key`]).
    key: i32,
    /// The session that holds the lock: the lock lives exactly as long as it.
    conn: PgConnection,
}

#[async_trait]
impl Lease for PostgresLease {
    fn name(&self) -> &str {
        &self.name
    }

    async fn is_held(&mut self) -> bool {
        // Asks for this session's own lock rather than only whether the connection answers:
        // that also catches a lock released by hand (`pg_advisory_unlock_all`). The int4 → oid
        // casts mirror how pg_locks shows a two-key advisory lock (objsubid 2).
        let check = sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
             AND pid = pg_backend_pid() AND granted AND objsubid = 2 \
             AND classid = $1::int4::oid AND objid = $2::int4::oid)",
        )
        .bind(LEASE_CLASS)
        .bind(self.key)
        .fetch_one(&mut self.conn);
        match tokio::time::timeout(CHECK_TIMEOUT, check).await {
            Ok(Ok(true)) => true,
            Ok(Ok(false)) => {
                tracing::warn!(lease = %self.name, "the lease's lock is no longer held");
                false
            }
            Ok(Err(error)) => {
                tracing::warn!(lease = %self.name, %error, "lost the lease's connection");
                false
            }
            Err(_) => {
                tracing::warn!(
                    lease = %self.name,
                    timeout = ?CHECK_TIMEOUT,
                    "the server did not confirm the lease in time; assuming it is lost"
                );
                false
            }
        }
    }

    async fn release(self: Box<Self>) {
        // Closing the session releases its locks; an explicit unlock first makes that
        // immediate even if the close is slow. Errors mean the session is gone already, and
        // the lock with it.
        let mut conn = self.conn;
        let _ = sqlx::query("SELECT pg_advisory_unlock($1, $2)")
            .bind(LEASE_CLASS)
            .bind(self.key)
            .execute(&mut conn)
            .await;
        let _ = conn.close().await;
        tracing::info!(lease = %self.name, "released the lease");
    }
}

#[cfg(test)]
mod tests {
    use super::lease_key;

    #[test]
    fn lease_keys_are_stable_and_distinct() {
        // FNV-1a 32 of the empty string is its offset basis.
        assert_eq!(lease_key(""), 0x811c_9dc5_u32 as i32);
        assert_ne!(
            lease_key("relay:motcua.dossier-events.v1"),
            lease_key("relay:other")
        );
        assert_eq!(lease_key("a"), lease_key("a"));
    }
}
