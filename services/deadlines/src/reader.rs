//! The watcher's feed reader: every open dossier's state and next timer.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use motcua_domain::calendar::WorkingCalendar;
use motcua_domain::deadline::next_timer;
use motcua_domain::lifecycle::{DossierState, event_allowed_in, snapshot};
use motcua_feed::{FeedEvent, Placeholders, Reader, ReaderError, ReaderTx};
use sqlx::Row;

use crate::schema::READER_NAME;

/// Dossiers per statement (7 parameters each: far below SQLite's limit).
const CHUNK: usize = 500;

/// What the reader has done, for metrics.
#[derive(Debug, Default)]
pub struct ReaderStats {
    /// Events applied to a dossier's state.
    pub applied: AtomicU64,
    /// Events for dossiers the watcher does not hold: ended ones (their row is gone) or never
    /// created ones. Nothing to watch either way.
    pub ignored: AtomicU64,
}

/// Keeps `deadline_dossiers` (see `schema.rs`) from the feed.
#[derive(Debug)]
pub struct DeadlineReader {
    calendar: Arc<WorkingCalendar>,
    /// The due-soon warning's lead, in working seconds (0: no warnings).
    lead_working_seconds: i64,
    stats: Arc<ReaderStats>,
}

impl DeadlineReader {
    pub fn new(calendar: Arc<WorkingCalendar>, lead_working_seconds: i64) -> Self {
        Self {
            calendar,
            lead_working_seconds,
            stats: Arc::default(),
        }
    }

    pub fn stats(&self) -> Arc<ReaderStats> {
        Arc::clone(&self.stats)
    }
}

fn unexpected(error: impl std::error::Error + Send + Sync + 'static) -> ReaderError {
    ReaderError::Unexpected(anyhow::Error::new(error))
}

#[async_trait::async_trait]
impl Reader for DeadlineReader {
    fn name(&self) -> &str {
        READER_NAME
    }

    async fn apply(&self, tx: &mut ReaderTx, events: &[FeedEvent]) -> Result<(), ReaderError> {
        // The stored states of the batch's dossiers; `None`: not held.
        let mut states: HashMap<&str, Option<DossierState>> = HashMap::new();
        for event in events {
            states.entry(event.dossier_id.as_str()).or_insert(None);
        }
        let ids: Vec<&str> = states.keys().copied().collect();
        for chunk in ids.chunks(CHUNK) {
            let mut sql = String::from(
                "SELECT dossier_id, state FROM deadline_dossiers WHERE dossier_id IN (",
            );
            Placeholders::of(tx).push_list(&mut sql, chunk.len());
            sql.push(')');
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&mut **tx).await? {
                let id: String = row.try_get(0)?;
                let json: String = row.try_get(1)?;
                let state = snapshot::decode(&id, &json).map_err(unexpected)?;
                if let Some(slot) = states.get_mut(id.as_str()) {
                    *slot = Some(state);
                }
            }
        }

        let mut touched: Vec<&str> = Vec::new();
        let (mut applied, mut ignored) = (0u64, 0u64);
        for event in events {
            let Some(slot) = states.get_mut(event.dossier_id.as_str()) else {
                continue;
            };
            let Some(payload) = event.event.payload.as_ref() else {
                ignored += 1;
                continue;
            };
            match slot {
                Some(state) => {
                    if event.seq <= state.version {
                        continue;
                    }
                    // Tolerate a gap (the feed logged it): apply after it, as the projector does.
                    let version = state.version;
                    state.version = event.seq - 1;
                    if let Err(error) = state.apply(&event.event) {
                        state.version = version;
                        tracing::warn!(
                            dossier_id = %event.dossier_id,
                            seq = event.seq,
                            %error,
                            "deadline watcher: event not applied"
                        );
                        ignored += 1;
                        continue;
                    }
                }
                None if event_allowed_in(payload).is_none() => {
                    match DossierState::fold([&event.event]) {
                        Ok(Some(mut created)) => {
                            created.version = event.seq;
                            *slot = Some(created);
                        }
                        Ok(None) => continue,
                        Err(error) => {
                            tracing::warn!(
                                dossier_id = %event.dossier_id,
                                %error,
                                "deadline watcher: creation event not applied"
                            );
                            ignored += 1;
                            continue;
                        }
                    }
                }
                None => {
                    ignored += 1;
                    continue;
                }
            }
            applied += 1;
            touched.push(event.dossier_id.as_str());
        }
        touched.sort_unstable();
        touched.dedup();

        let mut ended: Vec<&str> = Vec::new();
        let mut open: Vec<&DossierState> = Vec::new();
        for id in &touched {
            if let Some(Some(state)) = states.get(id) {
                if state.ended_at.is_some() {
                    ended.push(id);
                } else {
                    open.push(state);
                }
            }
        }
        for chunk in ended.chunks(CHUNK) {
            let mut sql = String::from("DELETE FROM deadline_dossiers WHERE dossier_id IN (");
            Placeholders::of(tx).push_list(&mut sql, chunk.len());
            sql.push(')');
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(&mut **tx).await?;
        }
        let now = chrono::Utc::now().timestamp_micros();
        for chunk in open.chunks(CHUNK) {
            let mut sql = String::from(
                "INSERT INTO deadline_dossiers \
                 (dossier_id, version, state, fire_at, fire_kind, due_at, updated_at) VALUES ",
            );
            Placeholders::of(tx).push_rows(&mut sql, chunk.len(), 7);
            sql.push_str(
                " ON CONFLICT (dossier_id) DO UPDATE SET version = excluded.version, \
                 state = excluded.state, fire_at = excluded.fire_at, \
                 fire_kind = excluded.fire_kind, due_at = excluded.due_at, \
                 updated_at = excluded.updated_at",
            );
            let mut query = sqlx::query(&sql);
            for state in chunk {
                let timer = next_timer(&self.calendar, state, self.lead_working_seconds);
                query = query
                    .bind(state.dossier_id.clone())
                    .bind(state.version as i64)
                    .bind(snapshot::encode(state))
                    .bind(timer.map(|t| t.fire_at.timestamp_micros()))
                    .bind(timer.map(|t| t.kind.as_str()))
                    .bind(timer.map(|t| t.due_at.timestamp_micros()))
                    .bind(now);
            }
            query.execute(&mut **tx).await?;
        }
        self.stats.applied.fetch_add(applied, Ordering::Relaxed);
        self.stats.ignored.fetch_add(ignored, Ordering::Relaxed);
        Ok(())
    }
}
