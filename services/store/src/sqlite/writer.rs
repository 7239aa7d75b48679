//! The SQLite writer task: group commit of everything queued.

use chrono::NaiveDate;
use sqlx::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::sql;
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

/// A write done inside the open transaction, waiting for the commit before its answer.
enum Done {
    Append(Reply<AppendOutcome>, Result<AppendOutcome, StoreError>),
    NextNumber(Reply<u32>, Result<u32, StoreError>),
}

impl Done {
    fn is_ok(&self) -> bool {
        match self {
            Self::Append(_, result) => result.is_ok(),
            Self::NextNumber(_, result) => result.is_ok(),
        }
    }

    /// Replaces a success by `error`: used when the group's commit failed, so nothing that
    /// looked written was written.
    fn fail(self, error: &str) -> Self {
        let unavailable = || StoreError::Unavailable(error.to_owned());
        match self {
            Self::Append(reply, Ok(_)) => Self::Append(reply, Err(unavailable())),
            Self::NextNumber(reply, Ok(_)) => Self::NextNumber(reply, Err(unavailable())),
            failed => failed,
        }
    }

    fn answer(self) {
        // A caller that went away (timeout, cancelled call) does not need its answer; what it
        // asked for is committed all the same, and a retry with its request id is replayed.
        match self {
            Self::Append(reply, result) => {
                let _ = reply.send(result);
            }
            Self::NextNumber(reply, result) => {
                let _ = reply.send(result);
            }
        }
    }
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
            let done = self.commit_group(group.drain(..)).await;
            for answer in done {
                answer.answer();
            }
        }
        let _ = self.conn.close().await;
    }

    async fn commit_group(&mut self, ops: impl Iterator<Item = WriteOp>) -> Vec<Done> {
        let ops: Vec<WriteOp> = ops.collect();
        let mut done = Vec::with_capacity(ops.len());
        let mut tx = match self.conn.begin().await {
            Ok(tx) => tx,
            Err(error) => {
                let message = format!("cannot begin a transaction: {error}");
                tracing::error!(%message, "sqlite writer");
                return ops.into_iter().map(|op| fail_op(op, &message)).collect();
            }
        };
        let mut broken: Option<String> = None;
        for op in ops {
            if let Some(message) = &broken {
                done.push(fail_op(op, message));
                continue;
            }
            // Each write in its own savepoint: a rejected append undoes only itself.
            let mut savepoint = match tx.begin().await {
                Ok(sp) => sp,
                Err(error) => {
                    let message = format!("cannot open a savepoint: {error}");
                    done.push(fail_op(op, &message));
                    broken = Some(message);
                    continue;
                }
            };
            let result = match op {
                WriteOp::Append(request, reply) => {
                    Done::Append(reply, sql::append(&mut savepoint, &request).await)
                }
                WriteOp::NextNumber { agency, day, reply } => {
                    Done::NextNumber(reply, sql::next_number(&mut savepoint, &agency, day).await)
                }
            };
            let closed = if result.is_ok() {
                savepoint.commit().await
            } else {
                savepoint.rollback().await
            };
            if let Err(error) = closed {
                broken = Some(format!("cannot close a savepoint: {error}"));
            }
            done.push(result);
        }
        let committed = match broken {
            Some(message) => {
                let _ = tx.rollback().await;
                Err(message)
            }
            None => tx
                .commit()
                .await
                .map_err(|error| format!("commit failed, nothing was written: {error}")),
        };
        match committed {
            Ok(()) => done,
            Err(message) => {
                tracing::error!(%message, "sqlite writer");
                done.into_iter().map(|d| d.fail(&message)).collect()
            }
        }
    }
}

fn fail_op(op: WriteOp, message: &str) -> Done {
    let error = || StoreError::Unavailable(message.to_owned());
    match op {
        WriteOp::Append(_, reply) => Done::Append(reply, Err(error())),
        WriteOp::NextNumber { reply, .. } => Done::NextNumber(reply, Err(error())),
    }
}
