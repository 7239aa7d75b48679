//! The checks of a group of appends, shared by every store that commits appends in groups:
//! request ids, versions and sequence numbers, decided in memory in queue order so that an
//! append sees the effects of the ones before it in the same group. The backends only fetch
//! what is recorded and write what is decided.

use std::collections::HashMap;

use crate::{AppendOutcome, AppendRequest, StoreError, StoredEvent};

/// What the checks decided for one append.
pub(crate) enum Plan {
    Refuse(StoreError),
    /// A request id recorded by an earlier transaction: its events are read back.
    ReplayStored {
        dossier_id: String,
        first: u64,
        last: u64,
    },
    /// A request id first seen earlier in this same group (at that append's index).
    ReplayInGroup(usize),
    Write,
}

/// A recorded request, from the table or from earlier in the group.
pub(crate) enum Recorded {
    Stored {
        fingerprint: Vec<u8>,
        dossier_id: String,
        first: u64,
        last: u64,
    },
    InGroup {
        fingerprint: Vec<u8>,
        index: usize,
    },
}

/// Decides every append of a group, in queue order, from the committed `versions` of its
/// dossiers and the `recorded` request ids.
pub(crate) fn plan(
    appends: &[&AppendRequest],
    mut versions: HashMap<String, u64>,
    mut recorded: HashMap<String, Recorded>,
) -> Vec<Plan> {
    let mut plans = Vec::with_capacity(appends.len());
    for (index, request) in appends.iter().enumerate() {
        let plan = match recorded.get(request.request_id.as_str()) {
            Some(Recorded::Stored { fingerprint, .. } | Recorded::InGroup { fingerprint, .. })
                if *fingerprint != request.fingerprint =>
            {
                Plan::Refuse(StoreError::RequestIdReused {
                    request_id: request.request_id.clone(),
                })
            }
            Some(Recorded::Stored {
                dossier_id,
                first,
                last,
                ..
            }) => Plan::ReplayStored {
                dossier_id: dossier_id.clone(),
                first: *first,
                last: *last,
            },
            Some(Recorded::InGroup { index, .. }) => Plan::ReplayInGroup(*index),
            None => {
                let actual = versions
                    .get(request.dossier_id.as_str())
                    .copied()
                    .unwrap_or(0);
                match check_sequence(request, actual) {
                    Err(error) => Plan::Refuse(error),
                    Ok(last) => {
                        versions.insert(request.dossier_id.clone(), last);
                        recorded.insert(
                            request.request_id.clone(),
                            Recorded::InGroup {
                                fingerprint: request.fingerprint.clone(),
                                index,
                            },
                        );
                        Plan::Write
                    }
                }
            }
        };
        plans.push(plan);
    }
    plans
}

/// The version check and the sequence numbers; returns the version after the append.
fn check_sequence(request: &AppendRequest, actual: u64) -> Result<u64, StoreError> {
    if actual != request.expected_version {
        return Err(StoreError::VersionConflict {
            dossier_id: request.dossier_id.clone(),
            expected: request.expected_version,
            actual,
        });
    }
    if request.events.is_empty() {
        return Err(StoreError::Corrupt(format!(
            "append to {} carries no events",
            request.dossier_id
        )));
    }
    for (offset, event) in request.events.iter().enumerate() {
        let expected_seq = actual + 1 + offset as u64;
        if event.seq != expected_seq {
            return Err(StoreError::Corrupt(format!(
                "append to {} carries seq {} where {expected_seq} was expected",
                request.dossier_id, event.seq
            )));
        }
    }
    Ok(actual + request.events.len() as u64)
}

/// What to answer an append once the group's events are written at `positions` (event id ->
/// global position).
pub(crate) enum Answer {
    Ready(Result<AppendOutcome, StoreError>),
    /// A replay of a request recorded by an earlier transaction: the caller reads its events.
    ReadBack {
        dossier_id: String,
        first: u64,
        last: u64,
    },
}

/// The answer to every append of a group, in queue order.
pub(crate) fn answers(
    appends: &[&AppendRequest],
    plans: Vec<Plan>,
    positions: &HashMap<String, u64>,
) -> Result<Vec<Answer>, StoreError> {
    let stored_events = |request: &AppendRequest| -> Result<Vec<StoredEvent>, StoreError> {
        request
            .events
            .iter()
            .map(|event| {
                let position = positions.get(event.event_id.as_str()).ok_or_else(|| {
                    StoreError::Corrupt(format!("event {} got no position", event.event_id))
                })?;
                Ok(StoredEvent {
                    position: *position,
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
    };
    appends
        .iter()
        .zip(plans)
        .map(|(request, plan)| {
            Ok(match plan {
                Plan::Refuse(error) => Answer::Ready(Err(error)),
                Plan::Write => Answer::Ready(Ok(AppendOutcome::Appended(stored_events(request)?))),
                Plan::ReplayInGroup(index) => {
                    Answer::Ready(Ok(AppendOutcome::Replayed(stored_events(appends[index])?)))
                }
                Plan::ReplayStored {
                    dossier_id,
                    first,
                    last,
                } => Answer::ReadBack {
                    dossier_id,
                    first,
                    last,
                },
            })
        })
        .collect()
}
