//! The reader's own database: SQLite in the embedded mode, PostgreSQL in the distributed one.
//!
//! Readers write their SQL once, through sqlx's `Any` driver: `$1`-style parameters work on
//! both backends, and so do `INSERT … ON CONFLICT … DO UPDATE` and `excluded`. What differs
//! (table definitions, mostly) goes into [`Migration`]s with one text per backend.

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Any, AnyPool, Executor, Transaction};

use crate::FeedError;

/// A transaction on the reader's database: what [`crate::Reader::apply`] writes its work in,
/// together with the position the runner records.
pub type ReaderTx = Transaction<'static, Any>;

/// Which database a [`ReaderDb`] is on, for the few places where SQL differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend `conn` (or a transaction on it) runs on.
    pub fn of(conn: &sqlx::AnyConnection) -> Self {
        if conn.backend_name() == "PostgreSQL" {
            Self::Postgres
        } else {
            Self::Sqlite
        }
    }
}

/// One schema change, with its text for each backend. Applied once per database, in version
/// order, each in its own transaction.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Orders the migrations of one owner; never reused.
    pub version: i64,
    /// For the operator reading `feed_migrations`.
    pub description: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

/// The feed's own tables: positions, per-dossier seqs and dead letters.
const FEED_MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "positions, dossier seqs and dead letters",
    sqlite: include_str!("../migrations/sqlite/0001_feed.sql"),
    postgres: include_str!("../migrations/postgres/0001_feed.sql"),
}];

/// The owner name of the feed's own migrations in `feed_migrations`.
const FEED_OWNER: &str = "motcua-feed";

/// How long a SQLite connection waits for another writer before giving up with `SQLITE_BUSY`.
/// Long, because lanes of one Kafka reader take turns at SQLite's single write lock.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 30_000;

/// How the pool is sized.
#[derive(Debug, Clone)]
pub struct ReaderDbOptions {
    /// Connections in the pool: at least one per concurrently applied partition, plus one.
    pub max_connections: u32,
    /// How long a transaction waits for a pooled connection before it is retried.
    pub acquire_timeout: Duration,
}

impl Default for ReaderDbOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

/// A pool on the reader's database, with the feed's tables migrated.
#[derive(Debug, Clone)]
pub struct ReaderDb {
    pool: AnyPool,
    backend: Backend,
    /// On PostgreSQL, a native pool on the same database, connected at its first use: `Any`
    /// has no `COPY`, which writes new rows at a third of the cost of an `INSERT` (a bulk
    /// replay's flush uses it).
    postgres: Option<PgPool>,
}

impl ReaderDb {
    /// Connects to `sqlite://path` (created if missing) or `postgres://…`, and creates or
    /// upgrades the feed's tables.
    pub async fn connect(url: &str) -> Result<Self, FeedError> {
        Self::connect_with(url, ReaderDbOptions::default()).await
    }

    /// [`ReaderDb::connect`] with explicit pool settings.
    pub async fn connect_with(url: &str, options: ReaderDbOptions) -> Result<Self, FeedError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if url.starts_with("sqlite:") {
            // `Any` takes only a URL; `mode=rwc` is its way to say "create if missing".
            let url = if url.contains("mode=") {
                url.to_owned()
            } else if url.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(FeedError::Config(format!(
                "the reader database URL must start with sqlite: or postgres:, not {:?}",
                url.split(':').next().unwrap_or_default()
            )));
        };
        let connect_options = AnyConnectOptions::from_str(&url)?;
        let mut pool = AnyPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout);
        if backend == Backend::Sqlite {
            pool = pool.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL: readers of the read model do not block its writer. NORMAL
                    // synchronous: a power cut may lose the last commits, but position and
                    // work are lost together, and replaying them changes nothing.
                    conn.execute(
                        format!(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS};"
                        )
                        .as_str(),
                    )
                    .await?;
                    Ok(())
                })
            });
        }
        let pool = pool.connect_with(connect_options).await?;
        let postgres = match backend {
            Backend::Postgres => Some(
                PgPoolOptions::new()
                    .max_connections(1)
                    .idle_timeout(Duration::from_secs(60))
                    .acquire_timeout(options.acquire_timeout)
                    .connect_lazy_with(PgConnectOptions::from_str(&url)?),
            ),
            Backend::Sqlite => None,
        };
        let db = Self {
            pool,
            backend,
            postgres,
        };
        db.migrate(FEED_OWNER, FEED_MIGRATIONS).await?;
        Ok(db)
    }

    /// The pool, for queries outside a batch (a read model's queries, say).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// On PostgreSQL, a native pool on the same database (one connection, opened at its first
    /// use), for the writes `Any` cannot do, such as `COPY`; `None` on SQLite. A transaction
    /// on it is a transaction of the same database: a reader that writes its work there
    /// records its position there too ([`crate::advance_position_postgres`]).
    pub fn postgres(&self) -> Option<&PgPool> {
        self.postgres.as_ref()
    }

    /// Begins a write transaction. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`): a transaction that only upgraded at its first write could find another
    /// writer ahead of it and fail with `SQLITE_BUSY` without waiting.
    pub async fn begin(&self) -> Result<ReaderTx, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// Applies `owner`'s migrations that this database has not seen, in version order, all in
    /// one transaction. Readers use it for their own tables; the feed uses it for its own. Safe
    /// to run from several processes at once: PostgreSQL serialises them on an advisory lock,
    /// SQLite on its write lock. Kept apart from sqlx's `_sqlx_migrations` table, which the
    /// event store owns when the reader shares its database: two sqlx migrators on one table
    /// refuse each other's versions.
    ///
    /// The future is boxed and `Send` by construction: as a plain `async fn` its type trips
    /// the compiler's higher-ranked lifetime check ("`Executor` is not general enough") as
    /// soon as a caller is spawned on another task.
    pub fn migrate<'a>(
        &'a self,
        owner: &'a str,
        migrations: &'a [Migration],
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), FeedError>> + Send + 'a>> {
        Box::pin(self.migrate_inner(owner, migrations))
    }

    async fn migrate_inner(&self, owner: &str, migrations: &[Migration]) -> Result<(), FeedError> {
        // Owned copies: a borrowed `&Migration` held across an await is what trips the check.
        let mut sorted: Vec<(i64, &'static str, &'static str)> = migrations
            .iter()
            .map(|m| {
                let text = match self.backend {
                    Backend::Sqlite => m.sqlite,
                    Backend::Postgres => m.postgres,
                };
                (m.version, m.description, text)
            })
            .collect();
        sorted.sort_by_key(|(version, _, _)| *version);
        // One transaction: the lock covers creating the bookkeeping table too (two
        // PostgreSQL sessions creating the same table at once would otherwise collide).
        let mut tx = self.begin().await?;
        if self.backend == Backend::Postgres {
            // Transaction-scoped: released by the commit. The key is arbitrary but fixed.
            sqlx::query("SELECT COUNT(*) FROM (SELECT pg_advisory_xact_lock(7311286)) AS l")
                .execute(&mut *tx)
                .await?;
        }
        // `Executor::execute` with a `&str` (a simple query, several statements allowed) rather
        // than `raw_sql`, whose future is not provably `Send` for every lifetime.
        (&mut *tx)
            .execute(include_str!("queries/create_migrations.sql"))
            .await?;
        for (version, description, text) in sorted {
            let applied: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM feed_migrations WHERE owner = $1 AND version = $2",
            )
            .bind(owner)
            .bind(version)
            .fetch_one(&mut *tx)
            .await?;
            if applied > 0 {
                continue;
            }
            (&mut *tx).execute(text).await?;
            sqlx::query(
                "INSERT INTO feed_migrations (owner, version, description, applied_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(owner)
            .bind(version)
            .bind(description)
            .bind(now_micros())
            .execute(&mut *tx)
            .await?;
            tracing::info!(owner, version, description, "applied a migration");
        }
        tx.commit().await?;
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
        if let Some(postgres) = &self.postgres {
            postgres.close().await;
        }
    }
}

/// Wall-clock microseconds since the Unix epoch, for `updated_at`-style columns (operators'
/// information only; nothing orders by them).
pub(crate) fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX)
        })
}
