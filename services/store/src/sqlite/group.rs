//! Set-oriented appends: a whole group of appends checked with two queries and written with one
//! multi-row statement per table, inside the writer's group transaction.
//!
//! SQLite runs each statement on its connection's worker thread, and every statement is a
//! round trip to it; a group of 300 appends written one statement at a time costs some 1,500
//! round trips, written this way about ten. The checks are the same as for a single append
//! (request id, version, sequence numbers), made in memory in queue order, so an append sees the
//! effects of the ones before it in the same group.

use std::collections::HashMap;

use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::sql::{dossier_events, micros, to_i64, to_u64};
use crate::group_plan::{self, Answer, Plan, Recorded};
use crate::{AppendOutcome, AppendRequest, StoreError};

/// Rows per multi-row statement: well below SQLite's 32,766 bound variables at 10 per row.
const ROWS_PER_STATEMENT: usize = 500;

/// Checks and writes `appends` in the open transaction. `Err` means a write failed and the
/// transaction must be rolled back; refusals are `Ok` entries.
pub(super) async fn append_group(
    conn: &mut SqliteConnection,
    appends: &[&AppendRequest],
) -> Result<Vec<Result<AppendOutcome, StoreError>>, StoreError> {
    let plans = plan(conn, appends).await?;
    let written: Vec<&AppendRequest> = appends
        .iter()
        .zip(&plans)
        .filter(|(_, plan)| matches!(plan, Plan::Write))
        .map(|(request, _)| *request)
        .collect();
    let positions = insert_events(conn, &written).await?;
    upsert_dossiers(conn, &written).await?;
    insert_requests(conn, &written).await?;
    insert_side_rows(conn, &written).await?;

    let mut outcomes = Vec::with_capacity(appends.len());
    for answer in group_plan::answers(appends, plans, &positions)? {
        outcomes.push(match answer {
            Answer::Ready(outcome) => outcome,
            Answer::ReadBack {
                dossier_id,
                first,
                last,
            } => Ok(AppendOutcome::Replayed(
                dossier_events(conn, &dossier_id, first, last).await?,
            )),
        });
    }
    Ok(outcomes)
}

/// The checks of every append (see `group_plan`), from the versions and requests in the tables.
async fn plan(
    conn: &mut SqliteConnection,
    appends: &[&AppendRequest],
) -> Result<Vec<Plan>, StoreError> {
    let versions = current_versions(conn, appends).await?;
    let recorded = recorded_requests(conn, appends).await?;
    Ok(group_plan::plan(appends, versions, recorded))
}

async fn current_versions(
    conn: &mut SqliteConnection,
    appends: &[&AppendRequest],
) -> Result<HashMap<String, u64>, StoreError> {
    let mut versions = HashMap::with_capacity(appends.len());
    for chunk in appends.chunks(ROWS_PER_STATEMENT) {
        let mut query: QueryBuilder<'_, Sqlite> =
            QueryBuilder::new("SELECT dossier_id, version FROM dossiers WHERE dossier_id IN (");
        let mut list = query.separated(", ");
        for request in chunk {
            list.push_bind(request.dossier_id.as_str());
        }
        list.push_unseparated(")");
        for row in query.build().fetch_all(&mut *conn).await? {
            versions.insert(
                row.try_get("dossier_id")?,
                to_u64(row.try_get("version")?, "version")?,
            );
        }
    }
    Ok(versions)
}

async fn recorded_requests(
    conn: &mut SqliteConnection,
    appends: &[&AppendRequest],
) -> Result<HashMap<String, Recorded>, StoreError> {
    let mut recorded = HashMap::new();
    for chunk in appends.chunks(ROWS_PER_STATEMENT) {
        let mut query: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
            "SELECT request_id, fingerprint, dossier_id, first_seq, last_seq FROM requests \
             WHERE request_id IN (",
        );
        let mut list = query.separated(", ");
        for request in chunk {
            list.push_bind(request.request_id.as_str());
        }
        list.push_unseparated(")");
        for row in query.build().fetch_all(&mut *conn).await? {
            recorded.insert(
                row.try_get("request_id")?,
                Recorded::Stored {
                    fingerprint: row.try_get("fingerprint")?,
                    dossier_id: row.try_get("dossier_id")?,
                    first: to_u64(row.try_get("first_seq")?, "seq")?,
                    last: to_u64(row.try_get("last_seq")?, "seq")?,
                },
            );
        }
    }
    Ok(recorded)
}

/// Inserts every event of the written appends; returns each event's global position.
async fn insert_events(
    conn: &mut SqliteConnection,
    written: &[&AppendRequest],
) -> Result<HashMap<String, u64>, StoreError> {
    let rows: Vec<(&AppendRequest, &crate::NewEvent)> = written
        .iter()
        .flat_map(|request| request.events.iter().map(move |event| (*request, event)))
        .collect();
    let mut positions = HashMap::with_capacity(rows.len());
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut query: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
            "INSERT INTO events (event_id, dossier_id, seq, event_type, recorded_at, request_id, \
             payload) ",
        );
        let mut conversion: Result<(), StoreError> = Ok(());
        query.push_values(chunk, |mut row, (request, event)| {
            let seq = to_i64(event.seq, "seq").unwrap_or_else(|e| {
                conversion = Err(e);
                0
            });
            row.push_bind(event.event_id.as_str())
                .push_bind(request.dossier_id.as_str())
                .push_bind(seq)
                .push_bind(event.event_type.as_str())
                .push_bind(micros(event.recorded_at))
                .push_bind(request.request_id.as_str())
                .push_bind(event.payload.as_slice());
        });
        conversion?;
        query.push(" RETURNING event_id, position");
        for row in query.build().fetch_all(&mut *conn).await? {
            positions.insert(
                row.try_get("event_id")?,
                to_u64(row.try_get("position")?, "position")?,
            );
        }
    }
    Ok(positions)
}

async fn upsert_dossiers(
    conn: &mut SqliteConnection,
    written: &[&AppendRequest],
) -> Result<(), StoreError> {
    for chunk in written.chunks(ROWS_PER_STATEMENT) {
        let mut query: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
            "INSERT INTO dossiers (dossier_id, version, status, channel, procedure_code, \
             receiving_unit, competent_authority, due_at, open_due_at, updated_at) ",
        );
        query.push_values(chunk, |mut row, request| {
            let summary = &request.row;
            let due_at = summary.due_at.map(micros);
            let version = request.expected_version + request.events.len() as u64;
            row.push_bind(request.dossier_id.as_str())
                .push_bind(i64::try_from(version).unwrap_or(i64::MAX))
                .push_bind(summary.status)
                .push_bind(summary.channel)
                .push_bind(summary.procedure_code.as_str())
                .push_bind(summary.receiving_unit.as_str())
                .push_bind(summary.competent_authority.as_str())
                .push_bind(due_at)
                .push_bind(if summary.open { due_at } else { None })
                .push_bind(micros(summary.updated_at));
        });
        // Rows for the same dossier are applied in order, so the last append's summary wins.
        query.push(
            " ON CONFLICT (dossier_id) DO UPDATE SET version = excluded.version, \
             status = excluded.status, channel = excluded.channel, \
             procedure_code = excluded.procedure_code, receiving_unit = excluded.receiving_unit, \
             competent_authority = excluded.competent_authority, due_at = excluded.due_at, \
             open_due_at = excluded.open_due_at, updated_at = excluded.updated_at",
        );
        query.build().execute(&mut *conn).await?;
    }
    Ok(())
}

async fn insert_requests(
    conn: &mut SqliteConnection,
    written: &[&AppendRequest],
) -> Result<(), StoreError> {
    for chunk in written.chunks(ROWS_PER_STATEMENT) {
        let mut query: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
            "INSERT INTO requests (request_id, fingerprint, dossier_id, first_seq, last_seq, \
             recorded_at) ",
        );
        query.push_values(chunk, |mut row, request| {
            let first = request.expected_version + 1;
            let last = request.expected_version + request.events.len() as u64;
            let recorded_at = request
                .events
                .last()
                .map_or(0, |event| micros(event.recorded_at));
            row.push_bind(request.request_id.as_str())
                .push_bind(request.fingerprint.as_slice())
                .push_bind(request.dossier_id.as_str())
                .push_bind(i64::try_from(first).unwrap_or(i64::MAX))
                .push_bind(i64::try_from(last).unwrap_or(i64::MAX))
                .push_bind(recorded_at);
        });
        query.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Personal data and claimed dossier numbers of the creations among the written appends.
async fn insert_side_rows(
    conn: &mut SqliteConnection,
    written: &[&AppendRequest],
) -> Result<(), StoreError> {
    let personal: Vec<(&str, &crate::PersonalData)> = written
        .iter()
        .filter_map(|r| r.personal_data.as_ref().map(|p| (r.dossier_id.as_str(), p)))
        .collect();
    for chunk in personal.chunks(ROWS_PER_STATEMENT) {
        let mut query: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
            "INSERT INTO personal_data (dossier_id, applicant_name, identity_number, phone) ",
        );
        query.push_values(chunk, |mut row, (dossier_id, data)| {
            row.push_bind(*dossier_id)
                .push_bind(data.applicant_name.as_str())
                .push_bind(data.identity_number.as_str())
                .push_bind(data.phone.as_str());
        });
        query.push(
            " ON CONFLICT (dossier_id) DO UPDATE SET applicant_name = excluded.applicant_name, \
             identity_number = excluded.identity_number, phone = excluded.phone",
        );
        query.build().execute(&mut *conn).await?;
    }
    for claim in written.iter().filter_map(|r| r.claimed_number.as_ref()) {
        sqlx::query(include_str!("queries/claim_number.sql"))
            .bind(&claim.agency)
            .bind(claim.day.format("%Y-%m-%d").to_string())
            .bind(i64::from(claim.number))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
