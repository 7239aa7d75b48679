//! The read model's tables. Each *generation* of the read model has its own set, named
//! `rates_g{N}_…`, so `motcua projector rebuild` can fill a fresh generation while the current
//! one keeps answering, and then switch over (see `generations.rs`).

use motcua_feed::Migration;

use crate::contribution::{COUNTERS, FIRST_COUNTERS};

/// The table names of one generation.
#[derive(Debug, Clone)]
pub struct Tables {
    pub generation: i64,
    /// One row per dossier: its state and the columns reports filter on.
    pub dossiers: String,
    /// Counters per scope, Vietnam day and channel.
    pub days: String,
    /// Resolved dossiers per scope, day, channel and whole working hours of processing.
    pub hours: String,
    /// Events that could not be applied as they are, with why.
    pub anomalies: String,
    /// Keys whose Kafka projection must be (re)published: written with the figures, deleted
    /// once published, so a crash between the two republishes instead of forgetting.
    pub outbox: String,
}

impl Tables {
    pub fn of(generation: i64) -> Self {
        let name = |what: &str| format!("rates_g{generation}_{what}");
        Self {
            generation,
            dossiers: name("dossiers"),
            days: name("days"),
            hours: name("hours"),
            anomalies: name("anomalies"),
            outbox: name("outbox"),
        }
    }

    /// The feed reader's name for this generation: its positions and consumer group.
    pub fn reader_name(&self) -> String {
        format!("rates-g{}", self.generation)
    }

    /// The migrations creating this generation's tables. Their texts depend on the generation,
    /// and the feed's migrator takes `'static` texts: they are leaked, once per generation a
    /// process opens (a handful of kilobytes in its lifetime).
    pub fn migrations(&self) -> Vec<Migration> {
        let leak = |text: String| -> &'static str { Box::leak(text.into_boxed_str()) };
        vec![
            Migration {
                version: 1,
                description: "rates read model",
                sqlite: leak(self.ddl("INTEGER", "INTEGER")),
                postgres: leak(self.ddl("BIGINT", "BIGINT")),
            },
            Migration {
                version: 2,
                description: "projection outbox in publication order",
                sqlite: leak(self.outbox_index()),
                postgres: leak(self.outbox_index()),
            },
            Migration {
                version: 3,
                description: "dossiers judged against a provisional due date",
                sqlite: leak(self.added_counters("INTEGER")),
                postgres: leak(self.added_counters("BIGINT")),
            },
            Migration {
                version: 4,
                description: "exact medians of processing time",
                sqlite: leak(self.median_index_statements()),
                postgres: leak(self.median_index_statements()),
            },
        ]
    }

    /// The dossier table's indexes on `late_from`, by name, with the statement creating each
    /// (idempotent): what the overdue lists and counts read. A bulk replay into an empty
    /// generation drops them and creates them again at the end, once, instead of updating
    /// four indexes for every row it writes.
    pub fn late_indexes(&self) -> Vec<(String, String)> {
        let dossiers = &self.dossiers;
        [
            ("province", ""),
            ("receiving", "receiving_unit, "),
            ("authority", "competent_authority, "),
            ("procedure", "procedure_code, "),
        ]
        .into_iter()
        .map(|(name, columns)| {
            let name = format!("{dossiers}_late_{name}");
            let create = format!(
                "CREATE INDEX IF NOT EXISTS {name} ON {dossiers} ({columns}late_from) \
                 WHERE late_from IS NOT NULL"
            );
            (name, create)
        })
        .collect()
    }

    /// The dossier table's indexes on processing time, one per scope kind, with the statement
    /// creating each (idempotent). A report's median is found in two steps: the hour
    /// histogram says which whole working hour holds the middle dossier(s), and these indexes
    /// give the exact seconds of the few resolved dossiers of that hour
    /// ([`crate::read_model::ReadModel`]), without reading the period's other dossiers.
    pub fn median_indexes(&self) -> Vec<(String, String)> {
        let dossiers = &self.dossiers;
        [
            ("province", ""),
            ("receiving", "receiving_unit, "),
            ("authority", "competent_authority, "),
            ("procedure", "procedure_code, "),
        ]
        .into_iter()
        .map(|(name, columns)| {
            let name = format!("{dossiers}_processing_{name}");
            let create = format!(
                "CREATE INDEX IF NOT EXISTS {name} ON {dossiers} ({columns}processing_seconds, \
                 ended_at) WHERE end_kind = 'resolved'"
            );
            (name, create)
        })
        .collect()
    }

    /// Every secondary index of the dossier table: a bulk replay into an empty generation
    /// drops them and creates them again once at the end.
    pub fn bulk_indexes(&self) -> Vec<(String, String)> {
        let mut all = self.late_indexes();
        all.extend(self.median_indexes());
        all
    }

    fn median_index_statements(&self) -> String {
        self.median_indexes()
            .into_iter()
            .map(|(_, create)| format!("{create};\n"))
            .collect()
    }

    /// The publisher reads the outbox oldest first, a few thousand rows at a time: without
    /// this index every pass would sort the whole outbox (large after an outage).
    fn outbox_index(&self) -> String {
        format!(
            "CREATE INDEX {outbox}_changed ON {outbox} (changed_at)",
            outbox = self.outbox
        )
    }

    /// The counters added after the first version of the day table (migration 3 on).
    fn added_counters(&self, big: &str) -> String {
        COUNTERS[FIRST_COUNTERS..]
            .iter()
            .map(|name| {
                format!(
                    "ALTER TABLE {days} ADD COLUMN {name} {big} NOT NULL DEFAULT 0;\n",
                    days = self.days
                )
            })
            .collect()
    }

    fn ddl(&self, int: &str, big: &str) -> String {
        let counters: String = COUNTERS[..FIRST_COUNTERS]
            .iter()
            .map(|name| format!("    {name} {big} NOT NULL DEFAULT 0,\n"))
            .collect();
        let Tables {
            dossiers,
            days,
            hours,
            anomalies,
            outbox,
            ..
        } = self;
        let late_indexes: String = self
            .late_indexes()
            .into_iter()
            .map(|(_, create)| format!("{create};\n"))
            .collect();
        format!(
            "CREATE TABLE {dossiers} (
    dossier_id TEXT PRIMARY KEY,
    version {big} NOT NULL,
    status {int} NOT NULL,
    channel {int} NOT NULL,
    receiving_unit TEXT NOT NULL,
    competent_authority TEXT NOT NULL,
    procedure_code TEXT NOT NULL,
    entered_at {big} NOT NULL,
    accepted_at {big},
    due_at {big},
    ended_at {big},
    end_kind TEXT,
    outcome TEXT,
    supplement_count {int} NOT NULL,
    late_from {big},
    processing_seconds {big},
    state TEXT NOT NULL,
    updated_at {big} NOT NULL
);
{late_indexes}
CREATE TABLE {days} (
    scope_kind TEXT NOT NULL,
    scope_id TEXT NOT NULL,
    day {int} NOT NULL,
    channel {int} NOT NULL,
{counters}    PRIMARY KEY (scope_kind, scope_id, day, channel)
);
CREATE TABLE {hours} (
    scope_kind TEXT NOT NULL,
    scope_id TEXT NOT NULL,
    day {int} NOT NULL,
    channel {int} NOT NULL,
    hours {int} NOT NULL,
    dossiers {big} NOT NULL,
    PRIMARY KEY (scope_kind, scope_id, day, channel, hours)
);
CREATE TABLE {anomalies} (
    dossier_id TEXT NOT NULL,
    seq {big} NOT NULL,
    kind TEXT NOT NULL,
    event_type TEXT NOT NULL,
    detail TEXT NOT NULL,
    source TEXT NOT NULL,
    recorded_at {big} NOT NULL,
    PRIMARY KEY (dossier_id, seq, kind)
);
CREATE TABLE {outbox} (
    key_kind TEXT NOT NULL,
    key TEXT NOT NULL,
    changed_at {big} NOT NULL,
    PRIMARY KEY (key_kind, key)
);
"
        )
    }
}
