//! Executes a validated command: answer a retry from the record, allocate a dossier code when
//! needed, fold the dossier's events, let the domain decide, and append with optimistic
//! concurrency. This is the one write path: the gRPC service uses it, and so will the deadline
//! watcher.

use std::sync::Arc;

use motcua_domain::calendar::WorkingCalendar;
use motcua_domain::catalog::ProcedureCatalogue;
use motcua_domain::ids::DossierCode;
use motcua_domain::lifecycle::{DecisionContext, DossierState, decide, event_type_name};
use motcua_domain::time::{Instant, to_timestamp, to_vietnam};
use motcua_proto::v1::{Actor, DossierEvent, RuleVersions};
use motcua_store::{AppendOutcome, AppendRequest, DossierRow, EventStore, NewEvent, StoredEvent};
use prost::Message;

use crate::clock::Clock;
use crate::error::IntakeError;
use crate::validate::{Target, ValidCommand};

/// How often a command without an explicit expected version is decided again after another
/// command on the same dossier got in first. Each retry re-reads the state, so a command that
/// has become illegal fails with FAILED_PRECONDITION rather than being forced through.
const CONFLICT_RETRIES: usize = 8;

/// The result of a command.
#[derive(Debug, Clone)]
pub struct Executed {
    pub dossier_id: String,
    pub version: u64,
    pub events: Vec<DossierEvent>,
    /// True when the request id had been recorded before: nothing new was appended.
    pub replayed: bool,
}

/// The write path.
#[derive(Debug, Clone)]
pub struct CommandHandler {
    store: Arc<dyn EventStore>,
    calendar: Arc<WorkingCalendar>,
    catalogue: Arc<ProcedureCatalogue>,
    clock: Arc<dyn Clock>,
}

impl CommandHandler {
    pub fn new(
        store: Arc<dyn EventStore>,
        calendar: Arc<WorkingCalendar>,
        catalogue: Arc<ProcedureCatalogue>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            calendar,
            catalogue,
            clock,
        }
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    pub fn calendar(&self) -> &WorkingCalendar {
        &self.calendar
    }

    pub fn catalogue(&self) -> &ProcedureCatalogue {
        &self.catalogue
    }

    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// The versions of every rule that goes into a due date, recorded on each event.
    pub fn rule_versions(&self) -> RuleVersions {
        let versions = self.calendar.versions();
        RuleVersions {
            working_time_profile: versions.profile_id,
            holiday_table: versions.holiday_table_version,
            procedure_catalogue: self.catalogue.version().to_owned(),
        }
    }

    /// Executes `command` on behalf of `actor`. `fingerprint` identifies the request's content
    /// for idempotency.
    pub async fn execute(
        &self,
        command: ValidCommand,
        actor: Actor,
        fingerprint: Vec<u8>,
    ) -> Result<Executed, IntakeError> {
        if let Some(recorded) = self
            .store
            .recorded_request(&command.meta.request_id)
            .await?
        {
            if recorded.fingerprint != fingerprint {
                return Err(IntakeError::RequestIdReused(command.meta.request_id));
            }
            return replayed(&recorded.events);
        }
        let dossier_id = match &command.target {
            Target::Existing(code) => code.clone(),
            Target::New {
                code: Some(code), ..
            } => code.clone(),
            Target::New {
                code: None,
                receiving_unit,
            } => {
                let today = to_vietnam(self.clock.now()).date_naive();
                let number = self
                    .store
                    .next_dossier_number(receiving_unit.as_str(), today)
                    .await?;
                DossierCode::new(receiving_unit, today, number)
                    .map_err(|e| IntakeError::Internal(e.to_string()))?
            }
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .try_once(&command, &dossier_id, &actor, &fingerprint)
                .await
            {
                Err(IntakeError::VersionConflict { .. })
                    if command.meta.expected_version.is_none() && attempt < CONFLICT_RETRIES =>
                {
                    tracing::debug!(dossier = %dossier_id, attempt, "version conflict, deciding again");
                }
                other => return other,
            }
        }
    }

    async fn try_once(
        &self,
        command: &ValidCommand,
        dossier_id: &DossierCode,
        actor: &Actor,
        fingerprint: &[u8],
    ) -> Result<Executed, IntakeError> {
        let history = self.history(dossier_id.as_str()).await?;
        let mut state = DossierState::fold(&history)?;
        let version = state.as_ref().map_or(0, |s| s.version);
        if let Some(expected) = command.meta.expected_version
            && expected != version
        {
            return Err(IntakeError::VersionConflict {
                dossier_id: dossier_id.to_string(),
                expected,
                actual: version,
            });
        }
        let now = self.clock.now();
        let ctx = DecisionContext {
            now,
            calendar: &self.calendar,
        };
        let payloads = decide(dossier_id.as_str(), state.as_ref(), &command.command, &ctx)?;
        let rules = self.rule_versions();
        let mut events = Vec::with_capacity(payloads.len());
        for (offset, payload) in payloads.into_iter().enumerate() {
            let event = DossierEvent {
                event_id: uuid::Uuid::now_v7().to_string(),
                dossier_id: dossier_id.to_string(),
                seq: version + 1 + offset as u64,
                recorded_at: Some(to_timestamp(now)),
                stated_at: command.meta.stated_at.map(to_timestamp),
                actor: Some(actor.clone()),
                request_id: command.meta.request_id.clone(),
                rules: Some(rules.clone()),
                payload: Some(payload),
            };
            match state.as_mut() {
                Some(s) => s.apply(&event)?,
                None => state = DossierState::fold([&event])?,
            }
            events.push(event);
        }
        let state = state.ok_or_else(|| IntakeError::Internal("no events decided".into()))?;
        let request = AppendRequest {
            dossier_id: dossier_id.to_string(),
            expected_version: version,
            request_id: command.meta.request_id.clone(),
            fingerprint: fingerprint.to_vec(),
            events: events
                .iter()
                .map(|event| NewEvent {
                    event_id: event.event_id.clone(),
                    seq: event.seq,
                    event_type: event
                        .payload
                        .as_ref()
                        .map_or("unknown", event_type_name)
                        .to_owned(),
                    recorded_at: now,
                    payload: event.encode_to_vec(),
                })
                .collect(),
            row: summary_row(&state),
            personal_data: command.personal_data.clone(),
        };
        match self.store.append(request).await? {
            AppendOutcome::Appended(_) => Ok(Executed {
                dossier_id: dossier_id.to_string(),
                version: state.version,
                events,
                replayed: false,
            }),
            // A concurrent retry of this same request got in first.
            AppendOutcome::Replayed(original) => replayed(&original),
        }
    }

    /// A dossier's decoded history, oldest first.
    pub async fn history(&self, dossier_id: &str) -> Result<Vec<DossierEvent>, IntakeError> {
        decode_all(&self.store.dossier_events(dossier_id).await?)
    }
}

/// Decodes stored events; one that does not decode means the store is corrupt.
pub fn decode_all(stored: &[StoredEvent]) -> Result<Vec<DossierEvent>, IntakeError> {
    stored
        .iter()
        .map(|s| {
            DossierEvent::decode(s.payload.as_slice()).map_err(|e| {
                IntakeError::Internal(format!(
                    "event {} of dossier {} does not decode: {e}",
                    s.seq, s.dossier_id
                ))
            })
        })
        .collect()
}

fn replayed(stored: &[StoredEvent]) -> Result<Executed, IntakeError> {
    let events = decode_all(stored)?;
    let last = events
        .last()
        .ok_or_else(|| IntakeError::Internal("a recorded request has no events".into()))?;
    Ok(Executed {
        dossier_id: last.dossier_id.clone(),
        version: last.seq,
        events,
        replayed: true,
    })
}

/// The searchable summary the store keeps beside the events.
pub fn summary_row(state: &DossierState) -> DossierRow {
    DossierRow {
        dossier_id: state.dossier_id.clone(),
        version: state.version,
        status: state.status as i32,
        channel: state.channel as i32,
        procedure_code: state.procedure.code.clone(),
        receiving_unit: state.units.receiving_unit.clone(),
        competent_authority: state.units.competent_authority.clone(),
        due_at: state.due_at,
        open: state.is_open() && state.due_at.is_some(),
        updated_at: state.updated_at,
    }
}
