//! The SQL the PostgreSQL store runs, one function per statement group. Every function takes a
//! connection, so the append can run them inside its transaction and reads on a pooled
//! connection. Errors come back through `?` as [`StoreError`]; the caller refines the
//! connection-level ones into [`StoreError::Unavailable`] (see `super::refine`).

use chrono::NaiveDate;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use crate::{
    AppendRequest, DossierRow, ListFilter, PageKey, PersonalData, RecordedRequest, StoreError,
    StoredEvent,
};

const EVENT_COLUMNS: &str =
    "position, dossier_id, seq, event_id, event_type, recorded_at, request_id, payload";

/// The key of the position lock: `pg_advisory_xact_lock` on it serialises the assignment of
/// global positions (and so their commit order) among appends. ASCII "motcua" and 1.
const POSITION_LOCK: i64 = 0x6d6f_7463_7561_0001;

pub(super) fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} out of range")))
}

pub(super) fn to_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} is negative")))
}

fn event_from_row(row: &PgRow) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        position: to_u64(row.try_get("position")?, "position")?,
        dossier_id: row.try_get("dossier_id")?,
        seq: to_u64(row.try_get("seq")?, "seq")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        recorded_at: row.try_get("recorded_at")?,
        request_id: row.try_get("request_id")?,
        payload: row.try_get("payload")?,
    })
}

pub(super) async fn dossier_events(
    conn: &mut PgConnection,
    dossier_id: &str,
    from_seq: u64,
    to_seq: u64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE dossier_id = $1 AND seq BETWEEN $2 AND $3 \
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

pub(super) async fn recorded_request(
    conn: &mut PgConnection,
    request_id: &str,
) -> Result<Option<RecordedRequest>, StoreError> {
    let row = sqlx::query(
        "SELECT fingerprint, dossier_id, first_seq, last_seq FROM requests WHERE request_id = $1",
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
    conn: &mut PgConnection,
    position: u64,
    limit: u32,
) -> Result<Vec<StoredEvent>, StoreError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2"
    );
    let rows = sqlx::query(&sql)
        .bind(to_i64(position, "position")?)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(event_from_row).collect()
}

pub(super) async fn head_position(conn: &mut PgConnection) -> Result<u64, StoreError> {
    let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
        .fetch_one(&mut *conn)
        .await?;
    to_u64(head, "position")
}

pub(super) async fn personal_data(
    conn: &mut PgConnection,
    dossier_id: &str,
) -> Result<Option<PersonalData>, StoreError> {
    let row = sqlx::query(
        "SELECT applicant_name, identity_number, phone FROM personal_data WHERE dossier_id = $1",
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
    conn: &mut PgConnection,
    filter: &ListFilter,
) -> Result<Vec<DossierRow>, StoreError> {
    let mut query: QueryBuilder<'_, Postgres> = QueryBuilder::new(
        "SELECT dossier_id, version, status, channel, procedure_code, receiving_unit, \
         competent_authority, due_at, open_due_at, updated_at FROM dossiers WHERE TRUE",
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
        query
            .push(" AND status = ANY(")
            .push_bind(filter.statuses.clone())
            .push(")");
    }
    if let Some(at) = filter.overdue_at {
        query
            .push(" AND open_due_at IS NOT NULL AND open_due_at < ")
            .push_bind(at);
    }
    match &filter.after {
        Some(PageKey::Dossier(id)) => {
            query.push(" AND dossier_id > ").push_bind(id.clone());
        }
        Some(PageKey::Due(due, id)) => {
            query
                .push(" AND (open_due_at, dossier_id) > (")
                .push_bind(*due)
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
            let open_due_at: Option<chrono::DateTime<chrono::Utc>> = row.try_get("open_due_at")?;
            Ok(DossierRow {
                dossier_id: row.try_get("dossier_id")?,
                version: to_u64(row.try_get("version")?, "version")?,
                status: row.try_get("status")?,
                channel: row.try_get("channel")?,
                procedure_code: row.try_get("procedure_code")?,
                receiving_unit: row.try_get("receiving_unit")?,
                competent_authority: row.try_get("competent_authority")?,
                due_at: row.try_get("due_at")?,
                open: open_due_at.is_some(),
                updated_at: row.try_get("updated_at")?,
            })
        })
        .collect()
}

/// Records the request id. Fails with a unique violation if it is recorded already (also by a
/// concurrent transaction, which this waits for).
pub(super) async fn insert_request(
    conn: &mut PgConnection,
    request: &AppendRequest,
    first_seq: u64,
    last_seq: u64,
    recorded_at: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    sqlx::query(include_str!("queries/insert_request.sql"))
        .bind(&request.request_id)
        .bind(&request.fingerprint)
        .bind(&request.dossier_id)
        .bind(to_i64(first_seq, "seq")?)
        .bind(to_i64(last_seq, "seq")?)
        .bind(recorded_at)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Moves the dossier's row from `expected_version` to `version` with the new summary. `false`
/// if the dossier is not at `expected_version` (nothing changed).
pub(super) async fn advance_dossier(
    conn: &mut PgConnection,
    request: &AppendRequest,
    version: u64,
) -> Result<bool, StoreError> {
    let row = &request.row;
    let open_due_at = if row.open { row.due_at } else { None };
    let sql = if request.expected_version == 0 {
        include_str!("queries/create_dossier.sql")
    } else {
        include_str!("queries/update_dossier.sql")
    };
    let mut query = sqlx::query_scalar::<_, i64>(sql)
        .bind(&request.dossier_id)
        .bind(to_i64(version, "version")?)
        .bind(row.status)
        .bind(row.channel)
        .bind(&row.procedure_code)
        .bind(&row.receiving_unit)
        .bind(&row.competent_authority)
        .bind(row.due_at)
        .bind(open_due_at)
        .bind(row.updated_at);
    if request.expected_version != 0 {
        query = query.bind(to_i64(request.expected_version, "version")?);
    }
    Ok(query.fetch_optional(&mut *conn).await?.is_some())
}

/// The dossier's committed version (0 if it does not exist).
pub(super) async fn dossier_version(
    conn: &mut PgConnection,
    dossier_id: &str,
) -> Result<u64, StoreError> {
    let version: Option<i64> =
        sqlx::query_scalar("SELECT version FROM dossiers WHERE dossier_id = $1")
            .bind(dossier_id)
            .fetch_optional(&mut *conn)
            .await?;
    to_u64(version.unwrap_or(0), "version")
}

pub(super) async fn upsert_personal_data(
    conn: &mut PgConnection,
    dossier_id: &str,
    personal: &PersonalData,
) -> Result<(), StoreError> {
    sqlx::query(include_str!("queries/upsert_personal_data.sql"))
        .bind(dossier_id)
        .bind(&personal.applicant_name)
        .bind(&personal.identity_number)
        .bind(&personal.phone)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn claim_number(
    conn: &mut PgConnection,
    claim: &crate::ClaimedNumber,
) -> Result<(), StoreError> {
    sqlx::query(include_str!("queries/claim_number.sql"))
        .bind(&claim.agency)
        .bind(claim.day)
        .bind(i64::from(claim.number))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Takes the position lock until the end of the transaction.
pub(super) async fn lock_positions(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(POSITION_LOCK)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Inserts the request's events after the current head; needs the position lock. Returns them
/// as stored, in seq order.
pub(super) async fn insert_events(
    conn: &mut PgConnection,
    request: &AppendRequest,
) -> Result<Vec<StoredEvent>, StoreError> {
    let events = &request.events;
    let seqs = events
        .iter()
        .map(|e| to_i64(e.seq, "seq"))
        .collect::<Result<Vec<_>, _>>()?;
    let rows: Vec<(i64, i64)> = sqlx::query_as(include_str!("queries/insert_events.sql"))
        .bind(&request.dossier_id)
        .bind(&request.request_id)
        .bind(
            events
                .iter()
                .map(|e| e.event_id.clone())
                .collect::<Vec<_>>(),
        )
        .bind(&seqs)
        .bind(
            events
                .iter()
                .map(|e| e.event_type.clone())
                .collect::<Vec<_>>(),
        )
        .bind(events.iter().map(|e| e.recorded_at).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.payload.clone()).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await?;
    if rows.len() != events.len() {
        return Err(StoreError::Corrupt(format!(
            "append to {} inserted {} of {} events",
            request.dossier_id,
            rows.len(),
            events.len()
        )));
    }
    events
        .iter()
        .map(|event| {
            let seq = to_i64(event.seq, "seq")?;
            let (position, _) = rows.iter().find(|(_, s)| *s == seq).ok_or_else(|| {
                StoreError::Corrupt(format!("event {} got no position", event.event_id))
            })?;
            Ok(StoredEvent {
                position: to_u64(*position, "position")?,
                dossier_id: request.dossier_id.clone(),
                seq: event.seq,
                event_id: event.event_id.clone(),
                event_type: event.event_type.clone(),
                recorded_at: event.recorded_at,
                request_id: request.request_id.clone(),
                payload: event.payload.clone(),
            })
        })
        .collect()
}

pub(super) async fn next_number(
    conn: &mut PgConnection,
    agency: &str,
    day: NaiveDate,
) -> Result<u32, StoreError> {
    let number: i64 = sqlx::query_scalar(include_str!("queries/next_number.sql"))
        .bind(agency)
        .bind(day)
        .fetch_one(&mut *conn)
        .await?;
    u32::try_from(number).map_err(|_| StoreError::SequenceExhausted {
        agency: agency.to_owned(),
        day,
    })
}
