//! The adapter's feed reader: every dossier's state as the portal must see it, and its
//! progress records, queued for the sender in the batch's transaction.

use std::collections::HashMap;

use motcua_domain::lifecycle::{DossierState, event_allowed_in, snapshot};
use motcua_domain::time::from_timestamp;
use motcua_feed::{FeedEvent, Placeholders, Reader, ReaderError, ReaderTx};
use sqlx::Row;

use crate::schema::READER_NAME;
use crate::wire::{Extras, progress_record};

const CHUNK: usize = 300;

/// Keeps `portal_sync` and `portal_progress` from the feed.
#[derive(Debug, Default)]
pub struct SyncReader;

fn unexpected(error: impl std::fmt::Display) -> ReaderError {
    ReaderError::Unexpected(anyhow::anyhow!("{error}"))
}

struct Held {
    state: DossierState,
    extras: Extras,
    /// Already in the table.
    stored: bool,
    touched: bool,
    /// Recording time of the first event of this batch for the dossier.
    first_change: Option<i64>,
}

#[async_trait::async_trait]
impl Reader for SyncReader {
    fn name(&self) -> &str {
        READER_NAME
    }

    async fn apply(&self, tx: &mut ReaderTx, events: &[FeedEvent]) -> Result<(), ReaderError> {
        let mut held: HashMap<String, Held> = HashMap::new();
        let mut ids: Vec<&str> = events.iter().map(|e| e.dossier_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        for chunk in ids.chunks(CHUNK) {
            let mut sql = String::from(
                "SELECT dossier_id, state, extras FROM portal_sync WHERE dossier_id IN (",
            );
            Placeholders::of(tx).push_list(&mut sql, chunk.len());
            sql.push(')');
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&mut **tx).await? {
                let id: String = row.try_get(0)?;
                let state: String = row.try_get(1)?;
                let extras: String = row.try_get(2)?;
                let state = snapshot::decode(&id, &state).map_err(unexpected)?;
                let extras: Extras = serde_json::from_str(&extras).map_err(unexpected)?;
                held.insert(
                    id,
                    Held {
                        state,
                        extras,
                        stored: true,
                        touched: false,
                        first_change: None,
                    },
                );
            }
        }

        let mut progress: Vec<(String, u64, i64, String)> = Vec::new();
        for event in events {
            let Some(payload) = event.event.payload.as_ref() else {
                continue;
            };
            let at = event
                .event
                .recorded_at
                .as_ref()
                .and_then(from_timestamp)
                .map_or(0, |t| t.timestamp_micros());
            let entry = match held.get_mut(&event.dossier_id) {
                Some(entry) => {
                    if event.seq <= entry.state.version {
                        continue;
                    }
                    let version = entry.state.version;
                    entry.state.version = event.seq - 1;
                    if let Err(error) = entry.state.apply(&event.event) {
                        entry.state.version = version;
                        tracing::warn!(dossier_id = %event.dossier_id, seq = event.seq, %error,
                            "portal adapter: event not applied");
                        continue;
                    }
                    entry
                }
                None if event_allowed_in(payload).is_none() => {
                    let Ok(Some(mut state)) = DossierState::fold([&event.event]) else {
                        tracing::warn!(dossier_id = %event.dossier_id, "portal adapter: unreadable creation event");
                        continue;
                    };
                    state.version = event.seq;
                    held.entry(event.dossier_id.clone()).or_insert(Held {
                        state,
                        extras: Extras::default(),
                        stored: false,
                        touched: false,
                        first_change: None,
                    })
                }
                None => {
                    tracing::warn!(dossier_id = %event.dossier_id, seq = event.seq,
                        "portal adapter: event for a dossier it never saw created");
                    continue;
                }
            };
            entry.extras.apply(&event.event);
            entry.touched = true;
            entry.first_change.get_or_insert(at);
            progress.push((
                event.dossier_id.clone(),
                event.seq,
                at,
                progress_record(&event.event, &entry.state).to_string(),
            ));
        }

        let now = chrono::Utc::now().timestamp_micros();
        let mut touched: Vec<(&String, &Held)> = held.iter().filter(|(_, h)| h.touched).collect();
        touched.sort_by(|a, b| a.0.cmp(b.0));
        for (id, h) in touched {
            let state = snapshot::encode(&h.state);
            let extras = serde_json::to_string(&h.extras).map_err(unexpected)?;
            if h.stored {
                // A change makes the dossier pending (from its first change not yet
                // acknowledged) and due now, unless it is already waiting for a retry.
                sqlx::query(
                    "UPDATE portal_sync SET version = $2, state = $3, extras = $4, \
                     pending_since = COALESCE(pending_since, $5), updated_at = $6 \
                     WHERE dossier_id = $1",
                )
                .bind(id.as_str())
                .bind(h.state.version as i64)
                .bind(state)
                .bind(extras)
                .bind(h.first_change.unwrap_or(now))
                .bind(now)
                .execute(&mut **tx)
                .await?;
            } else {
                sqlx::query(
                    "INSERT INTO portal_sync (dossier_id, receiving_unit, version, state, extras, \
                     entered_at, pending_since, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (dossier_id) DO NOTHING",
                )
                .bind(id.as_str())
                .bind(h.state.units.receiving_unit.as_str())
                .bind(h.state.version as i64)
                .bind(state)
                .bind(extras)
                .bind(h.state.created_at.timestamp_micros())
                .bind(h.first_change.unwrap_or(now))
                .bind(now)
                .execute(&mut **tx)
                .await?;
            }
        }
        for chunk in progress.chunks(CHUNK) {
            let mut sql = String::from(
                "INSERT INTO portal_progress (dossier_id, seq, recorded_at, record) VALUES ",
            );
            Placeholders::of(tx).push_rows(&mut sql, chunk.len(), 4);
            sql.push_str(" ON CONFLICT (dossier_id, seq) DO NOTHING");
            let mut query = sqlx::query(&sql);
            for (id, seq, at, record) in chunk {
                query = query
                    .bind(id.as_str())
                    .bind(*seq as i64)
                    .bind(*at)
                    .bind(record.as_str());
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }
}
