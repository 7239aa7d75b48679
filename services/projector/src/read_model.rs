//! Queries on the read model: the sums behind a report, the overdue list, anomalies.
//!
//! Every query reads the active generation's tables and touches only the rows of one scope
//! (and the days of the period, or before it): its cost grows with the number of days of
//! history, never with the number of dossiers. The live "past due now" count and the overdue
//! list read only dossiers already past due, through partial indexes on `late_from`.

use chrono::{TimeZone, Utc};
use motcua_domain::time::Instant;
use motcua_feed::ReaderDb;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::contribution::{COUNTERS, Counters};
use crate::generations;
use crate::period::{Period, date_of, day_of, start_of};
use crate::report::{Figures, ReportInputs, ScopeKind, median_positions};
use crate::schema::Tables;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("the read model is not built yet: no projector has run on this database")]
    NotBuilt,
    #[error("read model database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// What a report is asked for.
#[derive(Debug, Clone)]
pub struct ReportQuery {
    pub scope: ScopeKind,
    /// The unit's agency id or the procedure code; empty for the province.
    pub scope_id: String,
    /// 1 counter, 2 online, 3 postal; `None` for every channel.
    pub channel: Option<i64>,
    pub period: Period,
}

/// A report: the figures and what they were judged at.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub scope: ScopeKind,
    pub scope_id: String,
    pub channel: Option<i64>,
    pub period: String,
    pub first_day: String,
    pub last_day: String,
    /// Unfinished dossiers were judged at this instant: the period's end when it is over,
    /// else now (RFC 3339, UTC).
    pub judged_at: String,
    /// Whether the period is over.
    pub closed: bool,
    /// The read-model generation that answered.
    pub generation: i64,
    pub figures: Figures,
}

/// One dossier past due.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OverdueDossier {
    pub dossier_id: String,
    pub receiving_unit: String,
    pub competent_authority: String,
    pub procedure_code: String,
    pub channel: i64,
    pub status: i64,
    pub accepted_at: Option<Instant>,
    pub due_at: Option<Instant>,
    /// Since when it counts as late.
    pub late_from: Instant,
}

/// One recorded anomaly.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AnomalyRow {
    pub dossier_id: String,
    pub seq: i64,
    pub kind: String,
    pub event_type: String,
    pub detail: String,
    pub source: String,
}

fn instant(micros: i64) -> Instant {
    Utc.timestamp_micros(micros)
        .single()
        .unwrap_or(Instant::MIN_UTC)
}

/// The read model's query side.
#[derive(Debug, Clone)]
pub struct ReadModel {
    db: ReaderDb,
}

impl ReadModel {
    pub fn new(db: ReaderDb) -> Self {
        Self { db }
    }

    pub fn db(&self) -> &ReaderDb {
        &self.db
    }

    /// The active generation's tables.
    pub async fn tables(&self) -> Result<Tables, QueryError> {
        match generations::active(&self.db).await {
            Ok(Some(generation)) => Ok(Tables::of(generation)),
            Ok(None) => Err(QueryError::NotBuilt),
            // No generations table yet: nothing was ever projected here.
            Err(sqlx::Error::Database(_)) => Err(QueryError::NotBuilt),
            Err(error) => Err(error.into()),
        }
    }

    /// The report for `query`, judged at `now` if the period is not over.
    pub async fn report(&self, query: &ReportQuery, now: Instant) -> Result<Report, QueryError> {
        let tables = self.tables().await?;
        self.report_in(&tables, query, now).await
    }

    /// [`ReadModel::report`] on a given generation (the rebuild compares two).
    pub async fn report_in(
        &self,
        tables: &Tables,
        query: &ReportQuery,
        now: Instant,
    ) -> Result<Report, QueryError> {
        let period = query.period;
        let closed = period.end() <= now;
        let judged_at = if closed { period.end() } else { now };
        let first = period.first_day();
        let last = if closed {
            period.last_day()
        } else {
            day_of(now).min(period.last_day())
        };
        let before = self
            .sum_days(tables, query, None, i64::MIN, first - 1)
            .await?;
        let mut within_by_channel = [Counters::default(); 3];
        let mut within = Counters::default();
        for channel in 1..=3 {
            if query.channel.is_some_and(|c| c != channel) {
                continue;
            }
            let sums = self
                .sum_days(tables, query, Some(channel), first, last)
                .await?;
            within_by_channel[channel as usize - 1] = sums;
            within += sums;
        }
        let live_past_due = if closed {
            None
        } else {
            Some(self.count_past_due(tables, query, now).await?)
        };
        let processing_hours = self.processing_hours(tables, query, first, last).await?;
        let median_seconds = self
            .median_seconds(tables, query, first, last, &processing_hours)
            .await?;
        let figures = Figures::compute(&ReportInputs {
            before,
            within,
            within_by_channel,
            live_past_due,
            processing_hours,
            median_seconds,
        });
        Ok(Report {
            scope: query.scope,
            scope_id: query.scope_id.clone(),
            channel: query.channel,
            period: period.to_string(),
            first_day: period.first.to_string(),
            last_day: period.last.to_string(),
            judged_at: judged_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            closed,
            generation: tables.generation,
            figures,
        })
    }

    /// Counter sums over `from..=to` days of the query's scope, for one channel or (with
    /// `None`, and the query's channel filter) all.
    async fn sum_days(
        &self,
        tables: &Tables,
        query: &ReportQuery,
        channel: Option<i64>,
        from: i64,
        to: i64,
    ) -> Result<Counters, QueryError> {
        let sums: Vec<String> = COUNTERS
            .iter()
            .map(|c| format!("CAST(COALESCE(SUM({c}), 0) AS BIGINT)"))
            .collect();
        let channel = channel.or(query.channel);
        let mut sql = format!(
            "SELECT {} FROM {} WHERE scope_kind = $1 AND scope_id = $2 AND day >= $3 AND day <= $4",
            sums.join(", "),
            tables.days
        );
        if channel.is_some() {
            sql.push_str(" AND channel = $5");
        }
        let mut q = sqlx::query(&sql)
            .bind(query.scope.key())
            .bind(query.scope_id.as_str())
            .bind(from)
            .bind(to);
        if let Some(channel) = channel {
            q = q.bind(channel);
        }
        let row = q.fetch_one(self.db.pool()).await?;
        let mut counters = Counters::default();
        for (i, value) in counters.0.iter_mut().enumerate() {
            *value = row.try_get(i)?;
        }
        Ok(counters)
    }

    /// The processing-time histogram of the period's resolved dossiers.
    async fn processing_hours(
        &self,
        tables: &Tables,
        query: &ReportQuery,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, i64)>, QueryError> {
        let mut sql = format!(
            "SELECT hours, CAST(SUM(dossiers) AS BIGINT) FROM {} WHERE scope_kind = $1 \
             AND scope_id = $2 AND day >= $3 AND day <= $4",
            tables.hours
        );
        if query.channel.is_some() {
            sql.push_str(" AND channel = $5");
        }
        sql.push_str(" GROUP BY hours ORDER BY hours");
        let mut q = sqlx::query(&sql)
            .bind(query.scope.key())
            .bind(query.scope_id.as_str())
            .bind(from)
            .bind(to);
        if let Some(channel) = query.channel {
            q = q.bind(channel);
        }
        let rows = q.fetch_all(self.db.pool()).await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }

    /// The exact median processing time of the period's resolved dossiers, in working seconds:
    /// the histogram locates the middle rank(s) in their hour buckets, and the dossier table
    /// (through the `processing` indexes) gives those buckets' exact seconds.
    async fn median_seconds(
        &self,
        tables: &Tables,
        query: &ReportQuery,
        first: i64,
        last: i64,
        histogram: &[(i64, i64)],
    ) -> Result<Option<f64>, QueryError> {
        let Some(positions) = median_positions(histogram) else {
            return Ok(None);
        };
        // The days' instants: a dossier counts on the Vietnam day it ended.
        let from = date_of(first).map_or(Instant::MIN_UTC, start_of);
        let to = date_of(last)
            .and_then(|d| d.succ_opt())
            .map_or(Instant::MAX_UTC, start_of);
        let mut sql = format!(
            "SELECT processing_seconds FROM {} WHERE end_kind = 'resolved' \
             AND processing_seconds >= $1 AND processing_seconds < $2 \
             AND ended_at >= $3 AND ended_at < $4",
            tables.dossiers
        );
        let mut next = 5;
        if let Some(column) = query.scope.column() {
            sql.push_str(&format!(" AND {column} = ${next}"));
            next += 1;
        }
        if query.channel.is_some() {
            sql.push_str(&format!(" AND channel = ${next}"));
            next += 1;
        }
        sql.push_str(&format!(
            " ORDER BY processing_seconds LIMIT 1 OFFSET ${next}"
        ));
        let mut values = [0_i64; 2];
        for (value, (hours, offset)) in values.iter_mut().zip(positions) {
            let mut q = sqlx::query_scalar(&sql)
                .bind(hours * 3600)
                .bind((hours + 1) * 3600)
                .bind(from.timestamp_micros())
                .bind(to.timestamp_micros());
            if query.scope.column().is_some() {
                q = q.bind(query.scope_id.as_str());
            }
            if let Some(channel) = query.channel {
                q = q.bind(channel);
            }
            let found: Option<i64> = q.bind(offset).fetch_optional(self.db.pool()).await?;
            // The histogram and the dossier table are written in one transaction; a value
            // missing here would be a read model out of step with itself.
            *value = found.ok_or_else(|| {
                QueryError::Database(sqlx::Error::Protocol(format!(
                    "the processing-time histogram of {} holds a dossier of {hours} working \
                     hours that its dossier table does not: rebuild the read model",
                    tables.hours
                )))
            })?;
        }
        Ok(Some((values[0] as f64 + values[1] as f64) / 2.0))
    }

    /// `WHERE` conditions selecting the scope's dossiers that are past due at `$1`; the scope
    /// id is `$2` and the channel the next parameter.
    fn past_due_filter(query: &ReportQuery) -> String {
        let mut sql = String::from("late_from IS NOT NULL AND late_from < $1");
        let mut next = 2;
        if let Some(column) = query.scope.column() {
            sql.push_str(&format!(" AND {column} = ${next}"));
            next += 1;
        }
        if query.channel.is_some() {
            sql.push_str(&format!(" AND channel = ${next}"));
        }
        sql
    }

    async fn count_past_due(
        &self,
        tables: &Tables,
        query: &ReportQuery,
        now: Instant,
    ) -> Result<i64, QueryError> {
        let sql = format!(
            "SELECT COUNT(*) FROM {} WHERE {}",
            tables.dossiers,
            Self::past_due_filter(query)
        );
        let mut q = sqlx::query_scalar(&sql).bind(now.timestamp_micros());
        if query.scope.column().is_some() {
            q = q.bind(query.scope_id.as_str());
        }
        if let Some(channel) = query.channel {
            q = q.bind(channel);
        }
        Ok(q.fetch_one(self.db.pool()).await?)
    }

    /// Dossiers of the scope past due at `now`, the longest overdue first, after the cursor
    /// `(late_from, dossier_id)` of the previous page.
    pub async fn overdue(
        &self,
        query: &ReportQuery,
        now: Instant,
        after: Option<(i64, String)>,
        limit: usize,
    ) -> Result<Vec<OverdueDossier>, QueryError> {
        let tables = self.tables().await?;
        let mut filter = Self::past_due_filter(query);
        let mut next =
            2 + usize::from(query.scope.column().is_some()) + usize::from(query.channel.is_some());
        if after.is_some() {
            filter.push_str(&format!(
                " AND (late_from > ${next} OR (late_from = ${next} AND dossier_id > ${}))",
                next + 1
            ));
            next += 2;
        }
        let sql = format!(
            "SELECT dossier_id, receiving_unit, competent_authority, procedure_code, channel, \
             status, accepted_at, due_at, late_from FROM {} WHERE {filter} \
             ORDER BY late_from, dossier_id LIMIT ${next}",
            tables.dossiers
        );
        let mut q = sqlx::query(&sql).bind(now.timestamp_micros());
        if query.scope.column().is_some() {
            q = q.bind(query.scope_id.as_str());
        }
        if let Some(channel) = query.channel {
            q = q.bind(channel);
        }
        if let Some((late, id)) = after {
            q = q.bind(late).bind(id);
        }
        let rows = q.bind(limit as i64).fetch_all(self.db.pool()).await?;
        rows.iter().map(overdue_row).collect()
    }

    /// The recorded anomalies, oldest dossier first, after `(dossier_id, seq)`.
    pub async fn anomalies(
        &self,
        after: Option<(String, i64)>,
        limit: usize,
    ) -> Result<Vec<AnomalyRow>, QueryError> {
        let tables = self.tables().await?;
        let (id, seq) = after.unwrap_or_default();
        let sql = format!(
            "SELECT dossier_id, seq, kind, event_type, detail, source FROM {} \
             WHERE dossier_id > $1 OR (dossier_id = $1 AND seq > $2) \
             ORDER BY dossier_id, seq, kind LIMIT $3",
            tables.anomalies
        );
        let rows = sqlx::query(&sql)
            .bind(id)
            .bind(seq)
            .bind(limit as i64)
            .fetch_all(self.db.pool())
            .await?;
        rows.iter()
            .map(|row| {
                Ok(AnomalyRow {
                    dossier_id: row.try_get(0)?,
                    seq: row.try_get(1)?,
                    kind: row.try_get(2)?,
                    event_type: row.try_get(3)?,
                    detail: row.try_get(4)?,
                    source: row.try_get(5)?,
                })
            })
            .collect()
    }
}

fn overdue_row(row: &AnyRow) -> Result<OverdueDossier, QueryError> {
    let opt = |i: usize| -> Result<Option<Instant>, sqlx::Error> {
        Ok(row.try_get::<Option<i64>, _>(i)?.map(instant))
    };
    Ok(OverdueDossier {
        dossier_id: row.try_get(0)?,
        receiving_unit: row.try_get(1)?,
        competent_authority: row.try_get(2)?,
        procedure_code: row.try_get(3)?,
        channel: row.try_get(4)?,
        status: row.try_get(5)?,
        accepted_at: opt(6)?,
        due_at: opt(7)?,
        late_from: instant(row.try_get(8)?),
    })
}
