//! Parameter placeholders for statements whose size is known only at run time (`IN (…)` lists,
//! multi-row `VALUES`), written the way each backend binds fastest.
//!
//! Why not `$1, $2, …` on both: sqlx binds a SQLite statement's parameters one at a time and
//! asks SQLite for each one's name, and SQLite finds a numbered name (`$7`) by walking the
//! statement's list of names, so binding P numbered parameters costs P²/2 steps. For a
//! multi-row upsert of thousands of values that walk was the largest single cost of a reader's
//! write (a fifth of a deadline-watcher run, measured with `perf`). SQLite keeps no name for an
//! anonymous `?`, so those bind in constant time each. PostgreSQL takes only `$N`.
//!
//! A statement must use one style throughout: sqlx numbers anonymous parameters by counting
//! them alone, so a `$1` before a `?` would be bound twice. Hence every placeholder of a
//! statement, fixed ones included, comes from one [`Placeholders`].

use std::fmt::Write as _;

use crate::{Backend, ReaderTx};

/// Writes the placeholders of one statement, in the order the values are bound.
#[derive(Debug, Clone)]
pub struct Placeholders {
    numbered: bool,
    written: usize,
}

impl Placeholders {
    /// For a statement on `backend`.
    pub fn new(backend: Backend) -> Self {
        Self {
            numbered: backend == Backend::Postgres,
            written: 0,
        }
    }

    /// For a statement run in `tx`.
    pub fn of(tx: &mut ReaderTx) -> Self {
        Self::new(Backend::of(tx))
    }

    /// Appends the next parameter's placeholder to `sql`.
    pub fn push(&mut self, sql: &mut String) {
        self.written += 1;
        if self.numbered {
            let _ = write!(sql, "${}", self.written);
        } else {
            sql.push('?');
        }
    }

    /// The next parameter's placeholder, for `format!`.
    pub fn param(&mut self) -> String {
        let mut text = String::with_capacity(4);
        self.push(&mut text);
        text
    }

    /// Appends `count` placeholders separated by commas: the inside of an `IN (…)`.
    pub fn push_list(&mut self, sql: &mut String, count: usize) {
        for i in 0..count {
            if i > 0 {
                sql.push_str(", ");
            }
            self.push(sql);
        }
    }

    /// Appends `rows` parenthesised rows of `columns` placeholders: the list after `VALUES`.
    pub fn push_rows(&mut self, sql: &mut String, rows: usize, columns: usize) {
        for row in 0..rows {
            sql.push_str(if row == 0 { "(" } else { ", (" });
            self.push_list(sql, columns);
            sql.push(')');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_numbers_every_placeholder_in_order() {
        let mut p = Placeholders::new(Backend::Postgres);
        let mut sql = format!("SELECT 1 WHERE reader = {} AND id IN (", p.param());
        p.push_list(&mut sql, 3);
        sql.push_str(") VALUES ");
        p.push_rows(&mut sql, 2, 2);
        assert_eq!(
            sql,
            "SELECT 1 WHERE reader = $1 AND id IN ($2, $3, $4) VALUES ($5, $6), ($7, $8)"
        );
    }

    #[test]
    fn sqlite_gets_anonymous_placeholders() {
        let mut p = Placeholders::new(Backend::Sqlite);
        let mut sql = format!("x = {} AND id IN (", p.param());
        p.push_list(&mut sql, 2);
        sql.push_str(") ");
        p.push_rows(&mut sql, 2, 3);
        assert_eq!(sql, "x = ? AND id IN (?, ?) (?, ?, ?), (?, ?, ?)");
    }
}
