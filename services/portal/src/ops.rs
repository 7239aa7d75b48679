//! What operators ask of the adapter: what has not synced and why, the dossier-sync figure,
//! re-sending, and reconciling the portal's copy with ours.

use std::sync::Arc;

use motcua_domain::lifecycle::{DossierState, snapshot};
use motcua_feed::ReaderDb;
use motcua_store::EventStore;
use prost::Message;
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::Row;

use crate::client::{Outcome, PortalClient};
use crate::wire::{Reply, progress_record};

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("the sync database failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the event store failed: {0}")]
    Store(#[from] motcua_store::StoreError),
    #[error("the dossier's history cannot be read: {0}")]
    History(String),
    #[error("the portal could not be asked: {0}")]
    Portal(String),
}

/// Dossiers whose latest change has not reached the portal (dead letters included).
pub async fn backlog(db: &ReaderDb) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM portal_sync WHERE pending_since IS NOT NULL")
        .fetch_one(db.pool())
        .await
}

/// Dossiers whose portal copy is older than ours (`synced_version < version`), dead letters
/// included: the `motcua_portal_dossiers_behind` gauge. Unlike [`backlog`] it does not trust
/// `pending_since`: a dossier behind but not pending (which issue 21 found, and which nothing
/// would retry) shows here and not there. Counted on the partial index `portal_sync_behind`.
pub async fn behind(db: &ReaderDb) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM portal_sync WHERE synced_version < version")
        .fetch_one(db.pool())
        .await
}

/// One dossier not in sync.
#[derive(Debug, Clone, Serialize)]
pub struct Unsynced {
    pub dossier_id: String,
    pub receiving_unit: String,
    pub version: i64,
    pub synced_version: i64,
    /// When its oldest unacknowledged change was recorded (µs since the epoch).
    pub pending_since: i64,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub dead: bool,
    pub last_error: Option<String>,
}

/// The state of the sync.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub dossiers: i64,
    pub pending: i64,
    pub dead: i64,
    pub oldest_pending_since: Option<i64>,
    /// Oldest first, at most the requested number.
    pub unsynced: Vec<Unsynced>,
}

/// What has not synced and why: dead letters first, then the oldest pending.
pub async fn status(
    db: &ReaderDb,
    limit: usize,
    unit: Option<&str>,
) -> Result<Status, sqlx::Error> {
    let totals = sqlx::query(
        "SELECT COUNT(*), \
         COALESCE(SUM(CASE WHEN pending_since IS NOT NULL THEN 1 ELSE 0 END), 0), \
         COALESCE(SUM(CASE WHEN dead = 1 THEN 1 ELSE 0 END), 0), MIN(pending_since) \
         FROM portal_sync WHERE ($1 = '' OR receiving_unit = $1)",
    )
    .bind(unit.unwrap_or(""))
    .fetch_one(db.pool())
    .await?;
    let rows = sqlx::query(
        "SELECT dossier_id, receiving_unit, version, synced_version, pending_since, attempts, \
         next_attempt_at, dead, last_error FROM portal_sync \
         WHERE pending_since IS NOT NULL AND ($1 = '' OR receiving_unit = $1) \
         ORDER BY dead DESC, pending_since LIMIT $2",
    )
    .bind(unit.unwrap_or(""))
    .bind(limit as i64)
    .fetch_all(db.pool())
    .await?;
    let mut unsynced = Vec::with_capacity(rows.len());
    for row in rows {
        unsynced.push(Unsynced {
            dossier_id: row.try_get(0)?,
            receiving_unit: row.try_get(1)?,
            version: row.try_get(2)?,
            synced_version: row.try_get(3)?,
            pending_since: row.try_get(4)?,
            attempts: row.try_get(5)?,
            next_attempt_at: row.try_get(6)?,
            dead: row.try_get::<i64, _>(7)? != 0,
            last_error: row.try_get(8)?,
        });
    }
    Ok(Status {
        dossiers: totals.try_get(0)?,
        pending: totals.try_get(1)?,
        dead: totals.try_get(2)?,
        oldest_pending_since: totals.try_get(3)?,
        unsynced,
    })
}

/// The dossier-sync figure of docs/domain.md §5 for dossiers received in `[from, to)` (µs):
/// `(synced on time, received)`. On time: every change acknowledged within the deadline, and
/// nothing pending longer than it at `now`.
pub async fn timeliness(
    db: &ReaderDb,
    from: i64,
    to: i64,
    unit: Option<&str>,
    deadline_micros: i64,
    now: i64,
) -> Result<(i64, i64), sqlx::Error> {
    let row = sqlx::query(
        "SELECT COALESCE(SUM(CASE WHEN late_syncs = 0 AND synced_version > 0 \
           AND (pending_since IS NULL OR $4 - pending_since <= $5) THEN 1 ELSE 0 END), 0), \
         COUNT(*) FROM portal_sync WHERE entered_at >= $1 AND entered_at < $2 \
         AND ($3 = '' OR receiving_unit = $3)",
    )
    .bind(from)
    .bind(to)
    .bind(unit.unwrap_or(""))
    .bind(now)
    .bind(deadline_micros)
    .fetch_one(db.pool())
    .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// Which dossiers to send again.
#[derive(Debug, Clone)]
pub enum Selection {
    Dossier(String),
    Unit(String),
    /// Received in `[from, to)`, µs since the epoch.
    Received {
        from: i64,
        to: i64,
    },
    DeadLetters,
}

/// Queues the selected dossiers to be sent again, whole: their state and every progress record
/// rebuilt from the store's history (the portal ignores records it has). Returns how many.
pub async fn resync(
    db: &ReaderDb,
    store: &Arc<dyn EventStore>,
    selection: &Selection,
) -> Result<usize, OpsError> {
    let (sql, text, from, to) = match selection {
        Selection::Dossier(id) => (
            "SELECT dossier_id FROM portal_sync WHERE dossier_id = $1",
            id.clone(),
            0,
            0,
        ),
        Selection::Unit(unit) => (
            "SELECT dossier_id FROM portal_sync WHERE receiving_unit = $1",
            unit.clone(),
            0,
            0,
        ),
        Selection::Received { from, to } => (
            "SELECT dossier_id FROM portal_sync WHERE $1 = '' AND entered_at >= $2 AND entered_at < $3",
            String::new(),
            *from,
            *to,
        ),
        Selection::DeadLetters => (
            "SELECT dossier_id FROM portal_sync WHERE dead = 1 AND $1 = ''",
            String::new(),
            0,
            0,
        ),
    };
    let mut query = sqlx::query_scalar::<_, String>(sql).bind(text);
    if matches!(selection, Selection::Received { .. }) {
        query = query.bind(from).bind(to);
    }
    let ids = query.fetch_all(db.pool()).await?;
    for id in &ids {
        resync_one(db, store, id).await?;
    }
    Ok(ids.len())
}

async fn resync_one(db: &ReaderDb, store: &Arc<dyn EventStore>, id: &str) -> Result<(), OpsError> {
    // The reader may apply a newer event between the read of the history and the write; the
    // write then changes nothing and the history is read again (it has that event by then).
    for _ in 0..5 {
        if resync_from_history(db, store, id).await? {
            return Ok(());
        }
    }
    Err(OpsError::History(format!(
        "{id}: the dossier kept changing while it was being resynced; try again"
    )))
}

/// One resync of `id` from its history; false if the sync state is newer than the history
/// read (nothing written).
async fn resync_from_history(
    db: &ReaderDb,
    store: &Arc<dyn EventStore>,
    id: &str,
) -> Result<bool, OpsError> {
    let stored = store.dossier_events(id).await?;
    let mut events = Vec::with_capacity(stored.len());
    for s in &stored {
        events.push(
            motcua_proto::v1::DossierEvent::decode(s.payload.as_slice())
                .map_err(|e| OpsError::History(e.to_string()))?,
        );
    }
    let mut state: Option<DossierState> = None;
    let mut records = Vec::with_capacity(events.len());
    for event in &events {
        match state.as_mut() {
            None => {
                state = DossierState::fold([event]).map_err(|e| OpsError::History(e.to_string()))?
            }
            Some(s) => s
                .apply(event)
                .map_err(|e| OpsError::History(e.to_string()))?,
        }
        let Some(after) = &state else { continue };
        let at = event
            .recorded_at
            .as_ref()
            .and_then(motcua_domain::time::from_timestamp)
            .map_or(0, |t| t.timestamp_micros());
        records.push((
            event.seq as i64,
            at,
            progress_record(event, after).to_string(),
        ));
    }
    let now = chrono::Utc::now().timestamp_micros();
    let mut tx = db.begin().await?;
    // The `portal_sync` row first, then its progress records: the order the reader and the
    // sender take their locks in, so none of the three deadlocks with another.
    if let Some(state) = &state {
        // The store's history is the authority: the state is refreshed from it too, unless
        // the reader has applied an event newer than the history read (never go back).
        let updated = sqlx::query(
            "UPDATE portal_sync SET state = $2, version = $3, dead = 0, attempts = 0, \
             next_attempt_at = 0, last_error = NULL, \
             pending_since = COALESCE(pending_since, $4), updated_at = $4 \
             WHERE dossier_id = $1 AND version <= $3",
        )
        .bind(id)
        .bind(snapshot::encode(state))
        .bind(state.version as i64)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            let exists: Option<i64> =
                sqlx::query_scalar("SELECT version FROM portal_sync WHERE dossier_id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            tx.rollback().await?;
            // Unknown to the adapter: nothing to resync; newer: read the history again.
            return Ok(exists.is_none());
        }
    }
    sqlx::query("DELETE FROM portal_progress WHERE dossier_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    for (seq, at, record) in &records {
        sqlx::query(
            "INSERT INTO portal_progress (dossier_id, seq, recorded_at, record) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(*seq)
        .bind(*at)
        .bind(record.as_str())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// What a reconciliation found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Reconciled {
    pub checked: usize,
    pub in_sync: usize,
    /// Missing on the portal, or older there than what we acknowledged, or a different status.
    pub drifted: Vec<String>,
    pub still_pending: usize,
}

/// Compares the portal's copy (`LayThongTinHoSo`) of the dossiers synced so far with ours,
/// and with `repair` queues the drifted ones for a full resync. Pending ones are skipped (the
/// sender is on them).
pub async fn reconcile(
    db: &ReaderDb,
    store: &Arc<dyn EventStore>,
    client: &PortalClient,
    unit: Option<&str>,
    repair: bool,
) -> Result<Reconciled, OpsError> {
    let rows = sqlx::query(
        "SELECT dossier_id, synced_version, state, pending_since FROM portal_sync \
         WHERE ($1 = '' OR receiving_unit = $1) ORDER BY dossier_id",
    )
    .bind(unit.unwrap_or(""))
    .fetch_all(db.pool())
    .await?;
    let mut report = Reconciled::default();
    for row in rows {
        reconcile_row(db, store, client, &row, repair, &mut report).await?;
    }
    Ok(report)
}

/// [`reconcile`] of at most `limit` dossiers, those after `after` in dossier-id order (all
/// units): what the adapter's periodic reconciliation runs, a page at a time, so that no run
/// asks the portal about every dossier at once. Returns the report and the last dossier
/// checked, where the next page starts (`None`: the end was reached; start again from "").
pub async fn reconcile_page(
    db: &ReaderDb,
    store: &Arc<dyn EventStore>,
    client: &PortalClient,
    after: &str,
    limit: usize,
    repair: bool,
) -> Result<(Reconciled, Option<String>), OpsError> {
    let limit = limit.max(1);
    let rows = sqlx::query(
        "SELECT dossier_id, synced_version, state, pending_since FROM portal_sync \
         WHERE dossier_id > $1 ORDER BY dossier_id LIMIT $2",
    )
    .bind(after)
    .bind(limit as i64)
    .fetch_all(db.pool())
    .await?;
    let full = rows.len() == limit;
    let mut report = Reconciled::default();
    let mut last = None;
    for row in rows {
        last = Some(reconcile_row(db, store, client, &row, repair, &mut report).await?);
    }
    Ok((report, if full { last } else { None }))
}

/// Checks one `portal_sync` row (`dossier_id, synced_version, state, pending_since`) against
/// the portal; returns its dossier id.
async fn reconcile_row(
    db: &ReaderDb,
    store: &Arc<dyn EventStore>,
    client: &PortalClient,
    row: &sqlx::any::AnyRow,
    repair: bool,
    report: &mut Reconciled,
) -> Result<String, OpsError> {
    let id: String = row.try_get(0)?;
    let synced: i64 = row.try_get(1)?;
    let state: String = row.try_get(2)?;
    let pending: Option<i64> = row.try_get(3)?;
    report.checked += 1;
    if pending.is_some() {
        report.still_pending += 1;
        return Ok(id);
    }
    let ours = snapshot::decode(&id, &state).map_err(|e| OpsError::History(e.to_string()))?;
    let drift = match client.call("LayThongTinHoSo", json!({"MaHoSo": id})).await {
        Outcome::Done(Reply::Ok(value)) => {
            let data = value.get("data").cloned().unwrap_or(Value::Null);
            let version = data.get("PhienBan").and_then(Value::as_i64).unwrap_or(0);
            let status = data
                .get("TrangThaiHoSo")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let progress = value
                .get("TienDo")
                .and_then(Value::as_array)
                .map_or(0, Vec::len) as i64;
            version < synced || status != ours.status as i64 || progress < synced
        }
        Outcome::Done(Reply::NotFound(_)) => true,
        Outcome::Done(other) => return Err(OpsError::Portal(format!("{other:?}"))),
        Outcome::Unavailable(reason) => return Err(OpsError::Portal(reason)),
    };
    if drift {
        if repair {
            sqlx::query("UPDATE portal_sync SET on_portal = 0 WHERE dossier_id = $1")
                .bind(id.as_str())
                .execute(db.pool())
                .await?;
            resync_one(db, store, &id).await?;
        }
        report.drifted.push(id.clone());
    } else {
        report.in_sync += 1;
    }
    Ok(id)
}
