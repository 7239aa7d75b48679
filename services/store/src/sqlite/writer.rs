//! The SQLite writer task: group commit of everything queued.
//!
//! Appends check everything before they write, so a refused append leaves the transaction
//! untouched and needs no savepoint. If an append fails half-way (an I/O error, a bug), the
//! group's transaction is rolled back, that append is answered with its error, and the others
//! are run again in a fresh transaction: one bad write never takes its neighbours with it.

use chrono::NaiveDate;
use sqlx::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::sql::{self, AppendFailure};
use crate::{AppendOutcome, AppendRequest, StoreError};

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A write waiting for the writer.
pub(super) enum WriteOp {
    Append(Box<AppendRequest>, Reply<AppendOutcome>),
    NextNumber {
        agency: String,
        day: NaiveDate,
        reply: Reply<u32>,
    },
}

/// What a write produced inside the open transaction.
enum Outcome {
    Append(Result<AppendOutcome, StoreError>),
    NextNumber(Result<u32, StoreError>),
}

/// Why a group transaction did not commit.
enum GroupFailure {
    /// Op `index` failed half-way; the others may be run again.
    Broken { index: usize, error: StoreError },
    /// The transaction itself failed (begin or commit): every op fails.
    Transaction(String),
}

pub(super) struct Writer {
    conn: SqliteConnection,
    queue: mpsc::Receiver<WriteOp>,
    max_group: usize,
}

impl Writer {
    pub(super) fn new(
        conn: SqliteConnection,
        queue: mpsc::Receiver<WriteOp>,
        max_group: usize,
    ) -> Self {
        Self {
            conn,
            queue,
            max_group,
        }
    }

    /// Runs until every handle to the store is dropped.
    pub(super) async fn run(mut self) {
        let mut group = Vec::with_capacity(self.max_group);
        while let Some(first) = self.queue.recv().await {
            group.push(first);
            while group.len() < self.max_group {
                match self.queue.try_recv() {
                    Ok(op) => group.push(op),
                    Err(_) => break,
                }
            }
            self.commit_group(std::mem::take(&mut group)).await;
        }
        let _ = self.conn.close().await;
    }

    /// Commits a group and answers every op in it, only after the commit (or its failure).
    async fn commit_group(&mut self, mut ops: Vec<WriteOp>) {
        while !ops.is_empty() {
            match self.try_group(&ops).await {
                Ok(outcomes) => {
                    for (op, outcome) in ops.into_iter().zip(outcomes) {
                        answer(op, outcome);
                    }
                    return;
                }
                Err(GroupFailure::Broken { index, error }) => {
                    tracing::error!(%error, "sqlite writer: a write failed half-way; retrying the rest of its group");
                    let op = ops.remove(index);
                    fail(op, error);
                }
                Err(GroupFailure::Transaction(message)) => {
                    tracing::error!(%message, "sqlite writer");
                    for op in ops {
                        fail(op, StoreError::Unavailable(message.clone()));
                    }
                    return;
                }
            }
        }
    }

    async fn try_group(&mut self, ops: &[WriteOp]) -> Result<Vec<Outcome>, GroupFailure> {
        let mut tx =
            self.conn.begin().await.map_err(|e| {
                GroupFailure::Transaction(format!("cannot begin a transaction: {e}"))
            })?;
        let mut outcomes = Vec::with_capacity(ops.len());
        for (index, op) in ops.iter().enumerate() {
            let outcome = match op {
                WriteOp::Append(request, _) => match sql::append(&mut tx, request).await {
                    Ok(appended) => Outcome::Append(Ok(appended)),
                    Err(AppendFailure::Rejected(error)) => Outcome::Append(Err(error)),
                    Err(AppendFailure::Broken(error)) => {
                        let _ = tx.rollback().await;
                        return Err(GroupFailure::Broken { index, error });
                    }
                },
                // One statement: it either happened or it did not.
                WriteOp::NextNumber { agency, day, .. } => {
                    Outcome::NextNumber(sql::next_number(&mut tx, agency, *day).await)
                }
            };
            outcomes.push(outcome);
        }
        tx.commit().await.map_err(|e| {
            GroupFailure::Transaction(format!("commit failed, nothing was written: {e}"))
        })?;
        Ok(outcomes)
    }
}

// A caller that went away (timeout, cancelled call) does not need its answer; what it asked
// for is committed all the same, and a retry with its request id is replayed.
fn answer(op: WriteOp, outcome: Outcome) {
    match (op, outcome) {
        (WriteOp::Append(_, reply), Outcome::Append(result)) => {
            let _ = reply.send(result);
        }
        (WriteOp::NextNumber { reply, .. }, Outcome::NextNumber(result)) => {
            let _ = reply.send(result);
        }
        (op, _) => fail(
            op,
            StoreError::Corrupt("sqlite writer mixed up an answer".into()),
        ),
    }
}

fn fail(op: WriteOp, error: StoreError) {
    match op {
        WriteOp::Append(_, reply) => {
            let _ = reply.send(Err(error));
        }
        WriteOp::NextNumber { reply, .. } => {
            let _ = reply.send(Err(error));
        }
    }
}
