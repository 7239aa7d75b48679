//! The SQLite writer task: group commit of everything queued.
//!
//! The group's appends are checked together and written with one multi-row statement per table
//! (see `group`); a refused append is simply left out of the writes. If a write fails half-way
//! (an I/O error, a bug), the group's transaction is rolled back and each op is run again in a
//! transaction of its own: one bad write never takes its neighbours with it.

use chrono::NaiveDate;
use sqlx::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::{group, sql};
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
    /// A write failed half-way; the group was rolled back and may be run again op by op.
    Batch(StoreError),
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
    async fn commit_group(&mut self, ops: Vec<WriteOp>) {
        match self.try_group(&ops).await {
            Ok(outcomes) => {
                for (op, outcome) in ops.into_iter().zip(outcomes) {
                    answer(op, outcome);
                }
            }
            Err(GroupFailure::Transaction(message)) => {
                tracing::error!(%message, "sqlite writer");
                for op in ops {
                    fail(op, StoreError::Unavailable(message.clone()));
                }
            }
            // A write failed half-way and the group was rolled back: run each op in its own
            // transaction, so only the one at fault fails.
            Err(GroupFailure::Batch(error)) => {
                tracing::error!(%error, "sqlite writer: a group write failed; retrying one by one");
                for op in ops {
                    let outcome = self.try_group(std::slice::from_ref(&op)).await;
                    match outcome {
                        Ok(mut outcomes) => match outcomes.pop() {
                            Some(outcome) => answer(op, outcome),
                            None => fail(op, StoreError::Corrupt("no outcome".into())),
                        },
                        Err(GroupFailure::Batch(error)) => fail(op, error),
                        Err(GroupFailure::Transaction(message)) => {
                            fail(op, StoreError::Unavailable(message));
                        }
                    }
                }
            }
        }
    }

    async fn try_group(&mut self, ops: &[WriteOp]) -> Result<Vec<Outcome>, GroupFailure> {
        let mut tx =
            self.conn.begin().await.map_err(|e| {
                GroupFailure::Transaction(format!("cannot begin a transaction: {e}"))
            })?;
        let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(ops.len());
        let mut appends = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                // One statement: it either happened or it did not.
                WriteOp::NextNumber { agency, day, .. } => outcomes.push(Some(
                    Outcome::NextNumber(sql::next_number(&mut tx, agency, *day).await),
                )),
                WriteOp::Append(request, _) => {
                    appends.push(request.as_ref());
                    outcomes.push(None);
                }
            }
        }
        let appended = match group::append_group(&mut tx, &appends).await {
            Ok(appended) => appended,
            Err(error) => {
                let _ = tx.rollback().await;
                return Err(GroupFailure::Batch(error));
            }
        };
        let mut appended = appended.into_iter();
        let outcomes = outcomes
            .into_iter()
            .map(|outcome| {
                outcome.unwrap_or_else(|| {
                    Outcome::Append(appended.next().unwrap_or_else(|| {
                        Err(StoreError::Corrupt("an append got no outcome".into()))
                    }))
                })
            })
            .collect();
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
