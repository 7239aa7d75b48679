//! Set-oriented appends: a whole group of appends checked with two queries and written with two
//! `UNNEST` statements (every row but the events, then the events), inside the writer's group transaction.
//!
//! The checks are the same as for a single append (request id, version, sequence numbers), made
//! in memory in queue order, so an append sees the effects of the ones before it in the same
//! group. The dossier rows the group reads are locked (`FOR UPDATE`), so another process cannot
//! move them before the group commits; a dossier or request id another process creates
//! meanwhile makes a write fail with a unique violation, and the writer runs the group again op
//! by op (see `writer`).
//!
//! The writes that can wait on another process's row locks come first; the position lock is
//! taken last, just before the events insert, as a single append always did: it is held only
//! for the insert and the commit, and no lock is waited for while holding it.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, Row};

use super::sql::{dossier_events, lock_positions, to_i64, to_u64};
use crate::group_plan::{self, Answer, Plan, Recorded};
use crate::{AppendOutcome, AppendRequest, StoreError};

/// Checks and writes `appends` in the open transaction. `Err` means a statement failed and the
/// transaction must be rolled back; refusals are `Ok` entries.
pub(super) async fn append_group(
    conn: &mut PgConnection,
    appends: &[&AppendRequest],
) -> Result<Vec<Result<AppendOutcome, StoreError>>, StoreError> {
    let initial = current_versions(conn, appends).await?;
    let plans = plan(conn, appends, initial.clone()).await?;
    let written: Vec<&AppendRequest> = appends
        .iter()
        .zip(&plans)
        .filter(|(_, plan)| matches!(plan, Plan::Write))
        .map(|(request, _)| *request)
        .collect();
    let positions = if written.is_empty() {
        HashMap::new()
    } else {
        write_rows(conn, &written, &initial).await?;
        lock_positions(conn).await?;
        insert_events(conn, &written).await?
    };

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

/// The checks of every append (see `group_plan`), from the requests recorded in the table.
async fn plan(
    conn: &mut PgConnection,
    appends: &[&AppendRequest],
    versions: HashMap<String, u64>,
) -> Result<Vec<Plan>, StoreError> {
    let recorded = recorded_requests(conn, appends).await?;
    Ok(group_plan::plan(appends, versions, recorded))
}

/// The committed versions of the group's existing dossiers, locked until the commit (in
/// dossier order, so two processes' groups lock them in the same order).
async fn current_versions(
    conn: &mut PgConnection,
    appends: &[&AppendRequest],
) -> Result<HashMap<String, u64>, StoreError> {
    let ids: Vec<&str> = appends.iter().map(|r| r.dossier_id.as_str()).collect();
    let rows = sqlx::query(
        "SELECT dossier_id, version FROM dossiers WHERE dossier_id = ANY($1) \
         ORDER BY dossier_id FOR UPDATE",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut versions = HashMap::with_capacity(rows.len());
    for row in rows {
        versions.insert(
            row.try_get("dossier_id")?,
            to_u64(row.try_get("version")?, "version")?,
        );
    }
    Ok(versions)
}

async fn recorded_requests(
    conn: &mut PgConnection,
    appends: &[&AppendRequest],
) -> Result<HashMap<String, Recorded>, StoreError> {
    let ids: Vec<&str> = appends.iter().map(|r| r.request_id.as_str()).collect();
    let rows = sqlx::query(
        "SELECT request_id, fingerprint, dossier_id, first_seq, last_seq FROM requests \
         WHERE request_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut recorded = HashMap::with_capacity(rows.len());
    for row in rows {
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
    Ok(recorded)
}

/// Dossier rows as parallel arrays, one element per dossier.
#[derive(Default)]
struct DossierColumns<'a> {
    dossier_id: Vec<&'a str>,
    version: Vec<i64>,
    status: Vec<i32>,
    channel: Vec<i32>,
    procedure_code: Vec<&'a str>,
    receiving_unit: Vec<&'a str>,
    competent_authority: Vec<&'a str>,
    due_at: Vec<Option<DateTime<Utc>>>,
    open_due_at: Vec<Option<DateTime<Utc>>>,
    updated_at: Vec<DateTime<Utc>>,
    expected: Vec<i64>,
}

impl<'a> DossierColumns<'a> {
    fn push(&mut self, request: &'a AppendRequest, expected: u64) -> Result<(), StoreError> {
        let row = &request.row;
        let version = request.expected_version + request.events.len() as u64;
        self.dossier_id.push(&request.dossier_id);
        self.version.push(to_i64(version, "version")?);
        self.status.push(row.status);
        self.channel.push(row.channel);
        self.procedure_code.push(&row.procedure_code);
        self.receiving_unit.push(&row.receiving_unit);
        self.competent_authority.push(&row.competent_authority);
        self.due_at.push(row.due_at);
        self.open_due_at
            .push(if row.open { row.due_at } else { None });
        self.updated_at.push(row.updated_at);
        self.expected.push(to_i64(expected, "version")?);
        Ok(())
    }
}

/// Every row of the written appends except their events, in one statement: dossiers (one row
/// per dossier, the group's last append to it wins, moving the row from the version the group
/// read; 0: a new dossier), request ids, personal data (the last per dossier), claimed numbers.
async fn write_rows(
    conn: &mut PgConnection,
    written: &[&AppendRequest],
    initial: &HashMap<String, u64>,
) -> Result<(), StoreError> {
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(written.len());
    for (index, request) in written.iter().enumerate() {
        last.insert(request.dossier_id.as_str(), index);
    }
    let mut existing = DossierColumns::default();
    let mut created = DossierColumns::default();
    for (index, request) in written.iter().enumerate() {
        if last.get(request.dossier_id.as_str()) != Some(&index) {
            continue;
        }
        match initial.get(request.dossier_id.as_str()) {
            Some(&version) => existing.push(request, version)?,
            None => created.push(request, 0)?,
        }
    }

    let mut request_id = Vec::with_capacity(written.len());
    let mut fingerprint = Vec::with_capacity(written.len());
    let mut request_dossier = Vec::with_capacity(written.len());
    let mut first_seq = Vec::with_capacity(written.len());
    let mut last_seq = Vec::with_capacity(written.len());
    let mut recorded_at = Vec::with_capacity(written.len());
    for request in written {
        let (Some(first), Some(last)) = (request.events.first(), request.events.last()) else {
            return Err(StoreError::Corrupt(format!(
                "append to {} carries no events",
                request.dossier_id
            )));
        };
        request_id.push(request.request_id.as_str());
        fingerprint.push(request.fingerprint.as_slice());
        request_dossier.push(request.dossier_id.as_str());
        first_seq.push(to_i64(first.seq, "seq")?);
        last_seq.push(to_i64(last.seq, "seq")?);
        recorded_at.push(last.recorded_at);
    }

    let mut last_personal: HashMap<&str, usize> = HashMap::new();
    let mut personal: Vec<(&str, &crate::PersonalData)> = Vec::new();
    for request in written {
        if let Some(data) = &request.personal_data {
            let row = (request.dossier_id.as_str(), data);
            match last_personal.get(request.dossier_id.as_str()) {
                Some(&index) => personal[index] = row,
                None => {
                    last_personal.insert(request.dossier_id.as_str(), personal.len());
                    personal.push(row);
                }
            }
        }
    }
    let personal_dossier: Vec<&str> = personal.iter().map(|(id, _)| *id).collect();
    let name: Vec<&str> = personal
        .iter()
        .map(|(_, p)| p.applicant_name.as_str())
        .collect();
    let identity: Vec<&str> = personal
        .iter()
        .map(|(_, p)| p.identity_number.as_str())
        .collect();
    let phone: Vec<&str> = personal.iter().map(|(_, p)| p.phone.as_str()).collect();

    let claims: Vec<&crate::ClaimedNumber> = written
        .iter()
        .filter_map(|r| r.claimed_number.as_ref())
        .collect();
    let agency: Vec<&str> = claims.iter().map(|c| c.agency.as_str()).collect();
    let day: Vec<NaiveDate> = claims.iter().map(|c| c.day).collect();
    let number: Vec<i64> = claims.iter().map(|c| i64::from(c.number)).collect();

    let moved: i64 = sqlx::query_scalar(include_str!("queries/group_write_rows.sql"))
        .bind(&existing.dossier_id)
        .bind(&existing.version)
        .bind(&existing.status)
        .bind(&existing.channel)
        .bind(&existing.procedure_code)
        .bind(&existing.receiving_unit)
        .bind(&existing.competent_authority)
        .bind(&existing.due_at)
        .bind(&existing.open_due_at)
        .bind(&existing.updated_at)
        .bind(&existing.expected)
        .bind(&created.dossier_id)
        .bind(&created.version)
        .bind(&created.status)
        .bind(&created.channel)
        .bind(&created.procedure_code)
        .bind(&created.receiving_unit)
        .bind(&created.competent_authority)
        .bind(&created.due_at)
        .bind(&created.open_due_at)
        .bind(&created.updated_at)
        .bind(&request_id)
        .bind(&fingerprint)
        .bind(&request_dossier)
        .bind(&first_seq)
        .bind(&last_seq)
        .bind(&recorded_at)
        .bind(&personal_dossier)
        .bind(&name)
        .bind(&identity)
        .bind(&phone)
        .bind(&agency)
        .bind(&day)
        .bind(&number)
        .fetch_one(&mut *conn)
        .await?;
    if usize::try_from(moved).ok() != Some(existing.dossier_id.len()) {
        return Err(StoreError::Corrupt(format!(
            "moved {moved} of {} locked dossiers",
            existing.dossier_id.len()
        )));
    }
    Ok(())
}

/// Inserts every event of the written appends after the head; needs the position lock.
/// Returns each event's global position.
async fn insert_events(
    conn: &mut PgConnection,
    written: &[&AppendRequest],
) -> Result<HashMap<String, u64>, StoreError> {
    let count: usize = written.iter().map(|r| r.events.len()).sum();
    let mut event_id = Vec::with_capacity(count);
    let mut dossier_id = Vec::with_capacity(count);
    let mut seq = Vec::with_capacity(count);
    let mut event_type = Vec::with_capacity(count);
    let mut recorded_at = Vec::with_capacity(count);
    let mut request_id = Vec::with_capacity(count);
    let mut payload = Vec::with_capacity(count);
    for request in written {
        for event in &request.events {
            event_id.push(event.event_id.as_str());
            dossier_id.push(request.dossier_id.as_str());
            seq.push(to_i64(event.seq, "seq")?);
            event_type.push(event.event_type.as_str());
            recorded_at.push(event.recorded_at);
            request_id.push(request.request_id.as_str());
            payload.push(event.payload.as_slice());
        }
    }
    let rows: Vec<(String, i64)> = sqlx::query_as(include_str!("queries/group_insert_events.sql"))
        .bind(&event_id)
        .bind(&dossier_id)
        .bind(&seq)
        .bind(&event_type)
        .bind(&recorded_at)
        .bind(&request_id)
        .bind(&payload)
        .fetch_all(&mut *conn)
        .await?;
    if rows.len() != count {
        return Err(StoreError::Corrupt(format!(
            "a group inserted {} of {count} events",
            rows.len()
        )));
    }
    rows.into_iter()
        .map(|(id, position)| Ok((id, to_u64(position, "position")?)))
        .collect()
}
