//! Multi-row upserts that are cheap on both databases.
//!
//! SQLite takes a multi-row `VALUES` list with a parameter per cell (it prepares such a
//! statement in microseconds). PostgreSQL plans a statement with thousands of parameters slowly,
//! and a statement per chunk size defeats the prepared-statement cache; there the rows go as one
//! JSON text parameter, unpacked by `json_to_recordset`, so every batch runs the same prepared
//! statement. (sqlx's `Any` driver, which readers use for both databases, cannot bind arrays, so
//! `UNNEST` is not available.) Rows are written in the order given: callers sort them, so that
//! concurrent transactions lock rows in one order and never deadlock.
//!
//! Rows known to be new can also go by `COPY` ([`copy_statements`]), on a native PostgreSQL
//! connection only: a bulk replay's flush, which writes hundreds of thousands of new dossier
//! rows, does that (with `psql`, 400,000 dossier rows took 1.9 s by `COPY` against 6.6 s
//! through `json_to_recordset`).

use std::borrow::Cow;
use std::io::Write as _;
use std::sync::Arc;

use motcua_feed::{Backend, Placeholders, ReaderTx};
use sqlx::PgConnection;

/// SQLite's limit is 32,766 parameters per statement.
const SQLITE_PARAMETERS: usize = 30_000;
/// Rows per PostgreSQL statement: a few hundred kilobytes of JSON.
pub const JSON_ROWS: usize = 5_000;
/// Rows per `COPY`: a few megabytes of dossier rows.
const COPY_ROWS: usize = 5_000;

/// A column's type, as both databases name it in the read model's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Int,
}

/// A column of an upsert.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    /// An absent value means 0 (counters): zeros are left out of the JSON.
    pub zero_default: bool,
}

impl Column {
    pub const fn text(name: &'static str) -> Self {
        Self {
            name,
            kind: Kind::Text,
            zero_default: false,
        }
    }

    pub const fn int(name: &'static str) -> Self {
        Self {
            name,
            kind: Kind::Int,
            zero_default: false,
        }
    }

    pub const fn counter(name: &'static str) -> Self {
        Self {
            name,
            kind: Kind::Int,
            zero_default: true,
        }
    }
}

/// One value.
#[derive(Debug, Clone)]
pub enum Cell<'a> {
    Text(Cow<'a, str>),
    Int(i64),
    Null,
}

impl<'a> From<&'a str> for Cell<'a> {
    fn from(value: &'a str) -> Self {
        Self::Text(Cow::Borrowed(value))
    }
}

impl From<String> for Cell<'_> {
    fn from(value: String) -> Self {
        Self::Text(Cow::Owned(value))
    }
}

impl From<i64> for Cell<'_> {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl<'a, T: Into<Cell<'a>>> From<Option<T>> for Cell<'a> {
    fn from(value: Option<T>) -> Self {
        value.map_or(Self::Null, Into::into)
    }
}

/// One statement of a write with its values, owned: built apart from the connection that runs
/// it, so that a bulk replay's flush can build the next statements on a thread of its own
/// while the database runs the ones before (see `RatesProjector::write_overlapped`).
#[derive(Debug)]
pub struct Statement {
    sql: Arc<str>,
    values: Values,
}

#[derive(Debug)]
enum Values {
    /// PostgreSQL: the rows as one JSON text parameter.
    Json(String),
    /// SQLite: a parameter per cell, in order.
    Cells(Vec<Value>),
    /// PostgreSQL's `COPY … FROM STDIN`: the rows in its text format.
    Copy(Vec<u8>),
}

/// Where a write's statements run: a reader's transaction (either database, through `Any`),
/// or a transaction on [`motcua_feed::ReaderDb::postgres`], the only one that can `COPY`.
#[derive(Debug)]
pub enum Target<'a> {
    Any(&'a mut ReaderTx),
    Postgres(&'a mut PgConnection),
}

impl Target<'_> {
    pub fn backend(&self) -> Backend {
        match self {
            Self::Any(tx) => Backend::of(tx),
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// Whether statements may `COPY`.
    pub fn copies(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }
}

/// A cell's value as bound, with the type its null is bound as.
#[derive(Debug)]
enum Value {
    Text(String),
    Int(i64),
    NullText,
    NullInt,
}

impl Statement {
    /// Runs the statement in `tx`.
    pub async fn execute(&self, tx: &mut ReaderTx) -> Result<(), sqlx::Error> {
        self.execute_on(&mut Target::Any(tx)).await
    }

    /// Runs the statement on `target`. A `COPY` planned for a connection that cannot run it
    /// is an error, not a silent fallback.
    pub async fn execute_on(&self, target: &mut Target<'_>) -> Result<(), sqlx::Error> {
        let tx = match target {
            Target::Any(tx) => &mut **tx,
            Target::Postgres(conn) => return self.execute_postgres(conn).await,
        };
        let mut query = sqlx::query(&self.sql);
        match &self.values {
            Values::Json(json) => query = query.bind(json.as_str()),
            Values::Copy(_) => {
                return Err(sqlx::Error::Protocol(format!(
                    "{} needs a native PostgreSQL connection",
                    self.sql
                )));
            }
            Values::Cells(values) => {
                for value in values {
                    query = match value {
                        Value::Text(text) => query.bind(text.as_str()),
                        Value::Int(value) => query.bind(*value),
                        Value::NullText => query.bind(None::<String>),
                        Value::NullInt => query.bind(None::<i64>),
                    };
                }
            }
        }
        query.execute(&mut **tx).await?;
        Ok(())
    }

    async fn execute_postgres(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        match &self.values {
            Values::Json(json) => {
                sqlx::query(&self.sql)
                    .bind(json.as_str())
                    .execute(&mut *conn)
                    .await?;
            }
            Values::Copy(data) => {
                let mut copy = conn.copy_in_raw(&self.sql).await?;
                // On an error the copy is dropped, which tells the server to fail it: the
                // transaction is then aborted, and the caller's error rolls it back.
                copy.send(data.as_slice()).await?;
                copy.finish().await?;
            }
            Values::Cells(_) => {
                return Err(sqlx::Error::Protocol(format!(
                    "{} was planned for SQLite",
                    self.sql
                )));
            }
        }
        Ok(())
    }
}

/// The statements of `INSERT INTO table (columns) … <tail>` of `rows`, in their order, each
/// handed to `emit` as soon as it is built.
pub fn upsert_statements(
    backend: Backend,
    table: &str,
    columns: &[Column],
    rows: &[Vec<Cell<'_>>],
    tail: &str,
    emit: &mut dyn FnMut(Statement),
) {
    if rows.is_empty() {
        return;
    }
    if backend == Backend::Postgres {
        let sql: Arc<str> = recordset_sql(table, columns, tail).into();
        for chunk in rows.chunks(JSON_ROWS) {
            emit(Statement {
                sql: Arc::clone(&sql),
                values: Values::Json(json_rows(columns, chunk)),
            });
        }
    } else {
        let names: Vec<&str> = columns.iter().map(|c| c.name).collect();
        let per_statement = (SQLITE_PARAMETERS / columns.len().max(1)).max(1);
        for chunk in rows.chunks(per_statement) {
            let mut values = Vec::with_capacity(chunk.len() * columns.len());
            for row in chunk {
                for (cell, column) in row.iter().zip(columns) {
                    values.push(match (cell, column.kind) {
                        (Cell::Text(text), _) => Value::Text(text.to_string()),
                        (Cell::Int(value), _) => Value::Int(*value),
                        (Cell::Null, Kind::Text) => Value::NullText,
                        (Cell::Null, Kind::Int) => Value::NullInt,
                    });
                }
            }
            emit(Statement {
                sql: values_sql(Backend::Sqlite, table, &names, chunk.len(), tail).into(),
                values: Values::Cells(values),
            });
        }
    }
}

/// The statements of `COPY table (columns) FROM STDIN` of `rows`, for rows known not to be in
/// the table (one that is fails the transaction with a unique violation: nothing is counted
/// twice). PostgreSQL only, and only on [`Target::Postgres`].
pub fn copy_statements(
    table: &str,
    columns: &[Column],
    rows: &[Vec<Cell<'_>>],
    emit: &mut dyn FnMut(Statement),
) {
    if rows.is_empty() {
        return;
    }
    let names: Vec<&str> = columns.iter().map(|c| c.name).collect();
    let sql: Arc<str> = format!("COPY {table} ({}) FROM STDIN", names.join(", ")).into();
    for chunk in rows.chunks(COPY_ROWS) {
        emit(Statement {
            sql: Arc::clone(&sql),
            values: Values::Copy(copy_rows(columns, chunk)),
        });
    }
}

/// The rows in `COPY`'s text format: tab-separated, `\N` for null, and backslash, tab,
/// newline and carriage return escaped in text.
fn copy_rows(columns: &[Column], rows: &[Vec<Cell<'_>>]) -> Vec<u8> {
    let mut data: Vec<u8> = Vec::with_capacity(rows.len() * 1_024);
    for row in rows {
        for (i, (cell, column)) in row.iter().zip(columns).enumerate() {
            if i > 0 {
                data.push(b'\t');
            }
            match cell {
                // Writing into a vector cannot fail.
                Cell::Int(value) => {
                    let _ = write!(data, "{value}");
                }
                Cell::Null if column.zero_default => data.push(b'0'),
                Cell::Null => data.extend_from_slice(b"\\N"),
                Cell::Text(text) => {
                    for &byte in text.as_bytes() {
                        match byte {
                            b'\\' => data.extend_from_slice(b"\\\\"),
                            b'\t' => data.extend_from_slice(b"\\t"),
                            b'\n' => data.extend_from_slice(b"\\n"),
                            b'\r' => data.extend_from_slice(b"\\r"),
                            _ => data.push(byte),
                        }
                    }
                }
            }
        }
        data.push(b'\n');
    }
    data
}

/// `INSERT INTO table (columns) VALUES (…), (…) <tail>` for `rows` rows, with the
/// placeholders `backend` binds fastest (see [`Placeholders`]).
fn values_sql(backend: Backend, table: &str, columns: &[&str], rows: usize, tail: &str) -> String {
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
    Placeholders::new(backend).push_rows(&mut sql, rows, columns.len());
    sql.push_str(tail);
    sql
}

/// The PostgreSQL statement: the rows from the JSON array in `$1`.
fn recordset_sql(table: &str, columns: &[Column], tail: &str) -> String {
    let names: Vec<&str> = columns.iter().map(|c| c.name).collect();
    let selected: Vec<String> = columns
        .iter()
        .map(|c| {
            if c.zero_default {
                format!("COALESCE(r.{0}, 0)", c.name)
            } else {
                format!("r.{}", c.name)
            }
        })
        .collect();
    let types: Vec<String> = columns
        .iter()
        .map(|c| {
            let kind = match c.kind {
                Kind::Text => "text",
                Kind::Int => "bigint",
            };
            format!("{} {kind}", c.name)
        })
        .collect();
    format!(
        "INSERT INTO {table} ({}) SELECT {} FROM json_to_recordset(CAST($1 AS TEXT)::json) \
         AS r({}){tail}",
        names.join(", "),
        selected.join(", "),
        types.join(", ")
    )
}

/// The rows as a JSON array of objects, without nulls and without zero counters. Written into
/// one buffer: no string of its own per cell (a flush writes millions of cells).
fn json_rows(columns: &[Column], rows: &[Vec<Cell<'_>>]) -> String {
    let mut json: Vec<u8> = Vec::with_capacity(rows.len() * 256 + 2);
    json.push(b'[');
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        json.push(b'{');
        let mut first = true;
        for (cell, column) in row.iter().zip(columns) {
            if matches!(cell, Cell::Null) || matches!(cell, Cell::Int(0) if column.zero_default) {
                continue;
            }
            if !first {
                json.push(b',');
            }
            first = false;
            json.push(b'"');
            json.extend_from_slice(column.name.as_bytes());
            json.extend_from_slice(b"\":");
            // Writing into a vector cannot fail.
            let _ = match cell {
                Cell::Int(value) => write!(json, "{value}"),
                Cell::Text(text) => serde_json::to_writer(&mut json, text.as_ref())
                    .map_err(|_| std::io::Error::other("unreachable")),
                Cell::Null => Ok(()),
            };
        }
        json.push(b'}');
    }
    json.push(b']');
    // Column names and serde_json's output are UTF-8.
    String::from_utf8(json).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_copy_rows_escape_text_and_write_nulls_and_zero_counters() {
        let columns = [
            Column::text("id"),
            Column::int("version"),
            Column::counter("entered"),
            Column::int("due_at"),
        ];
        let rows = vec![
            vec![Cell::from("a\"b"), Cell::Int(0), Cell::Int(0), Cell::Null],
            vec![Cell::from("c"), Cell::Int(2), Cell::Int(-1), Cell::Int(5)],
        ];
        assert_eq!(
            json_rows(&columns, &rows),
            r#"[{"id":"a\"b","version":0},{"id":"c","version":2,"entered":-1,"due_at":5}]"#
        );
        assert_eq!(
            String::from_utf8(copy_rows(&columns, &rows)).expect("COPY rows are UTF-8"),
            "a\"b\t0\t0\t\\N\nc\t2\t-1\t5\n"
        );
        let tricky = vec![vec![
            Cell::from("t\tn\nr\rb\\"),
            Cell::Null,
            Cell::Null,
            Cell::Int(1),
        ]];
        assert_eq!(
            String::from_utf8(copy_rows(&columns, &tricky)).expect("COPY rows are UTF-8"),
            "t\\tn\\nr\\rb\\\\\t\\N\t0\t1\n"
        );
        let sql = recordset_sql("t", &columns, " ON CONFLICT DO NOTHING");
        assert!(sql.contains("COALESCE(r.entered, 0)"), "{sql}");
        assert!(sql.contains("AS r(id text, version bigint, entered bigint, due_at bigint)"));
    }
}
