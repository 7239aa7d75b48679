//! The bulk writers round-trip every value: text with the characters each format escapes,
//! nulls and counters, through the upsert on both databases and through `COPY` on PostgreSQL.

mod common;

use common::on_every_backend;
use motcua_feed::ReaderDb;
use motcua_projector::bulk::{self, Cell, Column, Statement, Target};
use sqlx::Row;

const COLUMNS: [Column; 4] = [
    Column::text("id"),
    Column::text("note"),
    Column::int("at"),
    Column::counter("count"),
];

/// Text that each format must escape or could misread.
const NOTES: [&str; 10] = [
    "tab\there",
    "new\nline",
    "carriage\rreturn",
    "back\\slash",
    "\\N",
    "\\.",
    "",
    "quotes ' \" and a comma,",
    "Hà Nội – Đà Nẵng",
    "{\"json\":\"in text\\n\"}",
];

fn rows(prefix: &str) -> Vec<Vec<Cell<'static>>> {
    NOTES
        .iter()
        .enumerate()
        .map(|(i, note)| {
            vec![
                Cell::from(format!("{prefix}{i:02}")),
                Cell::from(*note),
                if i % 3 == 0 {
                    Cell::Null
                } else {
                    Cell::Int(-(i as i64) * 1_000_000_007)
                },
                if i % 2 == 0 {
                    Cell::Int(0)
                } else {
                    Cell::Int(i as i64)
                },
            ]
        })
        .collect()
}

fn expected(prefix: &str) -> Vec<(String, String, Option<i64>, i64)> {
    NOTES
        .iter()
        .enumerate()
        .map(|(i, note)| {
            (
                format!("{prefix}{i:02}"),
                (*note).to_owned(),
                (i % 3 != 0).then(|| -(i as i64) * 1_000_000_007),
                if i % 2 == 0 { 0 } else { i as i64 },
            )
        })
        .collect()
}

async fn stored(db: &ReaderDb, prefix: &str) -> Vec<(String, String, Option<i64>, i64)> {
    sqlx::query("SELECT id, note, at, count FROM bulk_values WHERE id LIKE $1 ORDER BY id")
        .bind(format!("{prefix}%"))
        .fetch_all(db.pool())
        .await
        .expect("select")
        .iter()
        .map(|row| {
            (
                row.get::<String, _>(0),
                row.get::<String, _>(1),
                row.get::<Option<i64>, _>(2),
                row.get::<i64, _>(3),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upserts_and_copies_keep_every_value() {
    on_every_backend(|env| async move {
        let db = ReaderDb::connect(&env.reader_url).await.expect("reader db");
        sqlx::query(
            "CREATE TABLE bulk_values (id TEXT PRIMARY KEY, note TEXT NOT NULL, at BIGINT, \
             count BIGINT NOT NULL)",
        )
        .execute(db.pool())
        .await
        .expect("create");

        let mut statements: Vec<Statement> = Vec::new();
        bulk::upsert_statements(
            db.backend(),
            "bulk_values",
            &COLUMNS,
            &rows("u"),
            " ON CONFLICT (id) DO UPDATE SET note = excluded.note",
            &mut |s| statements.push(s),
        );
        let mut tx = db.begin().await.expect("tx");
        for statement in &statements {
            statement.execute(&mut tx).await.expect("upsert");
        }
        tx.commit().await.expect("commit");
        assert_eq!(stored(&db, "u").await, expected("u"), "{}", env.backend);

        let Some(postgres) = db.postgres() else {
            return;
        };
        let mut copies: Vec<Statement> = Vec::new();
        bulk::copy_statements("bulk_values", &COLUMNS, &rows("c"), &mut |s| copies.push(s));
        // Through `Any` a copy is refused, not run some other way.
        let mut tx = db.begin().await.expect("tx");
        assert!(copies[0].execute(&mut tx).await.is_err());
        drop(tx);

        let mut tx = postgres.begin().await.expect("native tx");
        for statement in &copies {
            statement
                .execute_on(&mut Target::Postgres(&mut tx))
                .await
                .expect("copy");
        }
        tx.commit().await.expect("commit");
        assert_eq!(stored(&db, "c").await, expected("c"));

        // A row that is already there fails the copy and its transaction: nothing is
        // written twice, and nothing of the transaction stays.
        let mut tx = postgres.begin().await.expect("native tx");
        sqlx::query("DELETE FROM bulk_values WHERE id LIKE 'u%'")
            .execute(&mut *tx)
            .await
            .expect("delete");
        let again = copies[0].execute_on(&mut Target::Postgres(&mut tx)).await;
        assert!(again.is_err(), "a duplicate row was copied");
        drop(tx);
        assert_eq!(stored(&db, "u").await, expected("u"));
        assert_eq!(stored(&db, "c").await, expected("c"));
        db.close().await;
    })
    .await;
}
