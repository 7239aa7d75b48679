//! The SQL the SQLite store runs, one function per statement group. Every function takes a
//! connection, so the writer can run them inside its group transaction and readers on a pool.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use crate::{
    DossierRow, ListFilter, PageKey, PersonalData, RecordedRequest, StoreError, StoredEvent,
};

const EVENT_COLUMNS: &str =
    "position, dossier_id, seq, event_id, event_type, recorded_at, request_id, payload";

pub(super) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(value: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(value)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {value} out of range")))
}

pub(super) fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} out of range")))
}

pub(super) fn to_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} is negative")))
}

fn event_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        position: to_u64(row.try_get("position")?, "position")?,
        dossier_id: row.try_get("dossier_id")?,
        seq: to_u64(row.try_get("seq")?, "seq")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        recorded_at: from_micros(row.try_get("recorded_at")?)?,
        request_id: row.try_get("request_id")?,
        payload: row.try_get("payload")?,
    })
}

pub(super) async fn dossier_events(
    conn: &mut SqliteConnection,
    dossier_id: &str,
    from_seq: u64,
    to_seq: u64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE dossier_id = ?1 AND seq BETWEEN ?2 AND ?3 \
         ORDER BY seq"
    );
    let rows = sqlx::query(&sql)
        .bind(dossier_id)
        .bind(to_i64(from_seq, "seq")?)
        .bind(i64::try_from(to_seq).unwrap_or(i64::MAX))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(event_from_row).collect()
}

pub(super) async fn many_dossier_events(
    conn: &mut SqliteConnection,
    dossier_ids: &[&str],
) -> Result<Vec<StoredEvent>, StoreError> {
    if dossier_ids.is_empty() {
        return Ok(Vec::new());
    }
    // Anonymous `?` placeholders: sqlx looks a numbered one up by name, which SQLite does by
    // walking the statement's names, quadratic in their number.
    let mut query: QueryBuilder<'_, Sqlite> = QueryBuilder::new(format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE dossier_id IN ("
    ));
    let mut list = query.separated(", ");
    for id in dossier_ids {
        list.push_bind(*id);
    }
    query.push(") ORDER BY dossier_id, seq");
    let rows = query.build().fetch_all(&mut *conn).await?;
    rows.iter().map(event_from_row).collect()
}

pub(super) async fn recorded_request(
    conn: &mut SqliteConnection,
    request_id: &str,
) -> Result<Option<RecordedRequest>, StoreError> {
    let row = sqlx::query(
        "SELECT fingerprint, dossier_id, first_seq, last_seq FROM requests WHERE request_id = ?1",
    )
    .bind(request_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let dossier_id: String = row.try_get("dossier_id")?;
    let first = to_u64(row.try_get("first_seq")?, "seq")?;
    let last = to_u64(row.try_get("last_seq")?, "seq")?;
    let events = dossier_events(conn, &dossier_id, first, last).await?;
    Ok(Some(RecordedRequest {
        fingerprint: row.try_get("fingerprint")?,
        events,
    }))
}

pub(super) async fn events_after(
    conn: &mut SqliteConnection,
    position: u64,
    limit: u32,
) -> Result<Vec<StoredEvent>, StoreError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE position > ?1 ORDER BY position LIMIT ?2"
    );
    let rows = sqlx::query(&sql)
        .bind(to_i64(position, "position")?)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(event_from_row).collect()
}

pub(super) async fn head_position(conn: &mut SqliteConnection) -> Result<u64, StoreError> {
    let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
        .fetch_one(&mut *conn)
        .await?;
    to_u64(head, "position")
}

pub(super) async fn personal_data(
    conn: &mut SqliteConnection,
    dossier_id: &str,
) -> Result<Option<PersonalData>, StoreError> {
    let row = sqlx::query(
        "SELECT applicant_name, identity_number, phone FROM personal_data WHERE dossier_id = ?1",
    )
    .bind(dossier_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| {
        Ok(PersonalData {
            applicant_name: row.try_get("applicant_name")?,
            identity_number: row.try_get("identity_number")?,
            phone: row.try_get("phone")?,
        })
    })
    .transpose()
}

pub(super) async fn list_dossiers(
    conn: &mut SqliteConnection,
    filter: &ListFilter,
) -> Result<Vec<DossierRow>, StoreError> {
    let mut query: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
        "SELECT dossier_id, version, status, channel, procedure_code, receiving_unit, \
         competent_authority, due_at, open_due_at, updated_at FROM dossiers WHERE 1 = 1",
    );
    if let Some(unit) = &filter.receiving_unit {
        query.push(" AND receiving_unit = ").push_bind(unit.clone());
    }
    if let Some(unit) = &filter.competent_authority {
        query
            .push(" AND competent_authority = ")
            .push_bind(unit.clone());
    }
    if !filter.statuses.is_empty() {
        query.push(" AND status IN (");
        let mut separated = query.separated(", ");
        for status in &filter.statuses {
            separated.push_bind(*status);
        }
        separated.push_unseparated(")");
    }
    if let Some(at) = filter.overdue_at {
        query
            .push(" AND open_due_at IS NOT NULL AND open_due_at < ")
            .push_bind(micros(at));
    }
    match &filter.after {
        Some(PageKey::Dossier(id)) => {
            query.push(" AND dossier_id > ").push_bind(id.clone());
        }
        Some(PageKey::Due(due, id)) => {
            query
                .push(" AND (open_due_at, dossier_id) > (")
                .push_bind(micros(*due))
                .push(", ")
                .push_bind(id.clone())
                .push(")");
        }
        None => {}
    }
    if filter.overdue_at.is_some() {
        query.push(" ORDER BY open_due_at, dossier_id");
    } else {
        query.push(" ORDER BY dossier_id");
    }
    query.push(" LIMIT ").push_bind(i64::from(filter.limit));
    let rows = query.build().fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|row| {
            let due_at: Option<i64> = row.try_get("due_at")?;
            let open_due_at: Option<i64> = row.try_get("open_due_at")?;
            let status: i64 = row.try_get("status")?;
            let channel: i64 = row.try_get("channel")?;
            Ok(DossierRow {
                dossier_id: row.try_get("dossier_id")?,
                version: to_u64(row.try_get("version")?, "version")?,
                status: i32::try_from(status).map_err(|_| StoreError::Corrupt("status".into()))?,
                channel: i32::try_from(channel)
                    .map_err(|_| StoreError::Corrupt("channel".into()))?,
                procedure_code: row.try_get("procedure_code")?,
                receiving_unit: row.try_get("receiving_unit")?,
                competent_authority: row.try_get("competent_authority")?,
                due_at: due_at.map(from_micros).transpose()?,
                open: open_due_at.is_some(),
                updated_at: from_micros(row.try_get("updated_at")?)?,
            })
        })
        .collect()
}

pub(super) async fn next_number(
    conn: &mut SqliteConnection,
    agency: &str,
    day: NaiveDate,
) -> Result<u32, StoreError> {
    let number: i64 = sqlx::query_scalar(include_str!("queries/next_number.sql"))
        .bind(agency)
        .bind(day.format("%Y-%m-%d").to_string())
        .fetch_one(&mut *conn)
        .await?;
    u32::try_from(number).map_err(|_| StoreError::SequenceExhausted {
        agency: agency.to_owned(),
        day,
    })
}
