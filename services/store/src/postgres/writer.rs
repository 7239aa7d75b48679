//! The PostgreSQL writer task: group commit of every queued append.
//!
//! One task per store takes everything waiting in its queue (up to a cap) and runs it in one
//! transaction on a pooled connection (see `group`): one commit, one WAL flush and one hold of
//! the position lock for the whole group. Nobody is answered before the commit returns.
//!
//! If a statement fails half-way (a request id or a dossier another process wrote meanwhile, a
//! deadlock with another process, a bug), the group is rolled back and each append is run again
//! in a transaction of its own, retried once after a unique violation (the race it lost is then
//! found by its checks: a replay or a version conflict). One bad append never takes its
//! neighbours with it. If the server is unreachable, or the `COMMIT` fails (it may have
//! happened: its acknowledgement can be lost), every append of the group is answered
//! [`StoreError::Unavailable`], and a retry with the same request id is replayed if it did
//! commit.

use sqlx::Connection;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, Postgres};
use tokio::sync::{mpsc, oneshot};

use std::sync::Arc;

use super::reachability::Reachability;
use super::{group, is_unique_violation, refine};
use crate::{AppendOutcome, AppendRequest, StoreError};

/// An append waiting for the writer.
pub(super) struct WriteOp {
    pub(super) request: Box<AppendRequest>,
    pub(super) reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
}

/// Why a group transaction did not commit.
enum GroupFailure {
    /// A statement failed; the transaction was rolled back.
    Batch(StoreError),
    /// The transaction could not begin, or its commit failed: the answer is "unavailable".
    Transaction(String),
}

pub(super) struct Writer {
    pool: PgPool,
    queue: mpsc::Receiver<WriteOp>,
    max_group: usize,
    reachability: Arc<Reachability>,
}

impl Writer {
    pub(super) fn new(
        pool: PgPool,
        queue: mpsc::Receiver<WriteOp>,
        max_group: usize,
        reachability: Arc<Reachability>,
    ) -> Self {
        Self {
            pool,
            queue,
            max_group,
            reachability,
        }
    }

    /// Runs until every handle to the store is dropped.
    ///
    /// The connection is acquired before the queue is drained: while the server is down the
    /// acquire waits (the pool's whole timeout at first, half a second once the server is known
    /// down: see `reachability`), and everything queued meanwhile is answered when it gives
    /// up, never held for a second wait. A group that committed passes its
    /// connection on to the next group if appends are already waiting (no acquire, no ping);
    /// when the queue runs empty the connection goes back to the pool, so an idle store holds
    /// none and [`PgPool::close`] is not kept waiting.
    pub(super) async fn run(mut self) {
        let mut group = Vec::with_capacity(self.max_group);
        let mut kept: Option<PoolConnection<Postgres>> = None;
        let mut next: Option<WriteOp> = None;
        loop {
            let first = match next.take() {
                Some(op) => op,
                None => {
                    kept = None;
                    match self.queue.recv().await {
                        Some(op) => op,
                        None => break,
                    }
                }
            };
            group.push(first);
            let conn = match kept.take() {
                Some(conn) if !self.pool.is_closed() => Ok(conn),
                _ => {
                    self.reachability
                        .acquire(&self.pool, super::MAX_CONNECTIONS)
                        .await
                }
            };
            while group.len() < self.max_group {
                match self.queue.try_recv() {
                    Ok(op) => group.push(op),
                    Err(_) => break,
                }
            }
            let ops = std::mem::take(&mut group);
            match conn {
                Ok(mut conn) => {
                    if commit_group(&mut conn, ops).await {
                        kept = Some(conn);
                    }
                }
                Err(error) => {
                    let error = refine(error);
                    tracing::warn!(%error, appends = ops.len(), "postgres writer");
                    let message = error.to_string();
                    for op in ops {
                        let _ = op.reply.send(Err(StoreError::Unavailable(message.clone())));
                    }
                }
            }
            next = self.queue.try_recv().ok();
        }
    }
}

/// Commits a group and answers every op in it, only after the commit (or its failure).
/// `true` if the group committed, so the connection may be kept.
async fn commit_group(conn: &mut PoolConnection<Postgres>, ops: Vec<WriteOp>) -> bool {
    let requests: Vec<&AppendRequest> = ops.iter().map(|op| op.request.as_ref()).collect();
    let result = try_group(conn, &requests).await;
    drop(requests);
    match result {
        Ok(outcomes) => {
            for (op, outcome) in ops.into_iter().zip(outcomes) {
                let _ = op.reply.send(outcome.map_err(refine));
            }
            return true;
        }
        Err(GroupFailure::Transaction(message)) => {
            tracing::warn!(%message, appends = ops.len(), "postgres writer");
            for op in ops {
                let _ = op.reply.send(Err(StoreError::Unavailable(message.clone())));
            }
        }
        Err(GroupFailure::Batch(error)) => match refine(error) {
            StoreError::Unavailable(message) => {
                tracing::warn!(%message, appends = ops.len(), "postgres writer");
                for op in ops {
                    let _ = op.reply.send(Err(StoreError::Unavailable(message.clone())));
                }
            }
            error if ops.len() == 1 && !is_unique_violation(&error) => {
                if let Some(op) = ops.into_iter().next() {
                    let _ = op.reply.send(Err(error));
                }
            }
            // Rolled back: run each op in its own transaction, so only the one at fault
            // fails and a lost race is found by the checks.
            error => {
                tracing::debug!(
                    %error,
                    appends = ops.len(),
                    "postgres writer: a group write failed; running it op by op"
                );
                for op in ops {
                    let outcome = append_one(conn, &op.request).await;
                    let _ = op.reply.send(outcome);
                }
            }
        },
    }
    false
}

/// One append in a transaction of its own, retried once if it lost a race to another
/// process (a unique violation): the retry finds the winner in its checks.
async fn append_one(
    conn: &mut PoolConnection<Postgres>,
    request: &AppendRequest,
) -> Result<AppendOutcome, StoreError> {
    let mut retried = false;
    loop {
        match try_group(conn, &[request]).await {
            Ok(mut outcomes) => {
                return match outcomes.pop() {
                    Some(outcome) => outcome.map_err(refine),
                    None => Err(StoreError::Corrupt("an append got no outcome".into())),
                };
            }
            Err(GroupFailure::Transaction(message)) => {
                return Err(StoreError::Unavailable(message));
            }
            Err(GroupFailure::Batch(error)) if !retried && is_unique_violation(&error) => {
                tracing::debug!(
                    request_id = %request.request_id,
                    dossier_id = %request.dossier_id,
                    %error,
                    "append lost a race; retrying once"
                );
                retried = true;
            }
            Err(GroupFailure::Batch(error)) => return Err(refine(error)),
        }
    }
}

async fn try_group(
    conn: &mut PoolConnection<Postgres>,
    appends: &[&AppendRequest],
) -> Result<Vec<Result<AppendOutcome, StoreError>>, GroupFailure> {
    let mut tx = conn
        .begin()
        .await
        .map_err(|e| GroupFailure::Transaction(format!("cannot begin a transaction: {e}")))?;
    let outcomes = match group::append_group(&mut tx, appends).await {
        Ok(outcomes) => outcomes,
        Err(error) => {
            let _ = tx.rollback().await;
            return Err(GroupFailure::Batch(error));
        }
    };
    tx.commit().await.map_err(|e| {
        GroupFailure::Transaction(format!(
            "commit failed; the appends may or may not have been recorded: {e}"
        ))
    })?;
    Ok(outcomes)
}
