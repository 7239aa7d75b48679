//! Whether the server was last found unreachable: a store that knows PostgreSQL is down
//! answers UNAVAILABLE within [`KNOWN_DOWN_WAIT`], not after the pool's whole
//! [`super::ACQUIRE_TIMEOUT`].
//!
//! The pool's long wait is right for the other reason a connection can be slow to come: all
//! of them busy under load, where waiting a few seconds is better than failing a call. The two
//! are told apart by what the pool holds when its wait runs out: every connection open and
//! busy is load; room for more, yet none could be opened, is a server that is not there. The
//! first call after an outage begins still waits the long wait (nothing is known yet); every
//! call after it waits at most half a second, and the first connection that succeeds ends the
//! outage.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, Postgres};

use crate::StoreError;

/// How long an operation waits for a connection while the server is known to be down: enough
/// for a connection to a server that has just come back, short enough for a client's deadline.
pub(super) const KNOWN_DOWN_WAIT: Duration = Duration::from_millis(500);

#[derive(Debug, Default)]
pub(super) struct Reachability {
    down: AtomicBool,
}

impl Reachability {
    /// A pooled connection: the pool's own wait while the server is thought up, at most
    /// [`KNOWN_DOWN_WAIT`] while it is known down.
    pub(super) async fn acquire(
        &self,
        pool: &PgPool,
        max_connections: u32,
    ) -> Result<PoolConnection<Postgres>, StoreError> {
        let result = if self.down.load(Ordering::Relaxed) {
            match tokio::time::timeout(KNOWN_DOWN_WAIT, pool.acquire()).await {
                Ok(result) => result.map_err(super::refine_sqlx),
                Err(_) => Err(StoreError::Unavailable(format!(
                    "PostgreSQL is unreachable: no connection could be opened (answering \
                     within {KNOWN_DOWN_WAIT:?} until one can)"
                ))),
            }
        } else {
            pool.acquire().await.map_err(super::refine_sqlx)
        };
        match &result {
            Ok(_) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    tracing::info!("PostgreSQL is reachable again");
                }
            }
            Err(StoreError::Unavailable(reason)) if pool.size() < max_connections => {
                if !self.down.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        %reason,
                        "PostgreSQL is unreachable: calls are answered UNAVAILABLE within \
                         half a second until a connection succeeds"
                    );
                }
            }
            Err(_) => {}
        }
        result
    }
}
