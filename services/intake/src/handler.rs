//! Executes a validated command: answer a retry from the record, allocate a dossier code when
//! needed, fold the dossier's events, let the domain decide, and append with optimistic
//! concurrency. This is the one write path: the gRPC service uses it, and so will the deadline
//! watcher.

use std::sync::Arc;

use motcua_domain::calendar::WorkingCalendar;
use motcua_domain::catalog::ProcedureCatalogue;
use motcua_domain::ids::DossierCode;
use motcua_domain::lifecycle::{
    DecisionContext, DomainError, DossierState, DossierStatus, decide, event_type_name,
};
use motcua_domain::time::{Instant, to_timestamp, to_vietnam};
use motcua_proto::v1::{Actor, DossierEvent, RuleVersions};
use motcua_store::{
    AppendOutcome, AppendRequest, ClaimedNumber, DossierRow, EventStore, MANY_DOSSIERS, NewEvent,
    StoredEvent,
};
use prost::Message;

use crate::clock::Clock;
use crate::error::IntakeError;
use crate::state_cache::StateCache;
use crate::validate::{Target, ValidCommand};

/// How long a command without an explicit expected version keeps being decided again after
/// other commands on the same dossier got in first. Each retry re-reads the state, so a command
/// that has become illegal fails with FAILED_PRECONDITION rather than being forced through.
const CONFLICT_RETRY_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

/// How many recently written dossiers' states the handler keeps (a few KiB each).
pub const DEFAULT_CACHED_DOSSIERS: usize = 50_000;

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
    cache: Arc<StateCache>,
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
            cache: Arc::new(StateCache::new(DEFAULT_CACHED_DOSSIERS)),
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

    /// The server's clock (shared, so reports judge at the same time as the intake).
    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.clock)
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
    /// for idempotency. For in-process principals (the deadline watcher): no policy check.
    pub async fn execute(
        &self,
        command: ValidCommand,
        actor: Actor,
        fingerprint: Vec<u8>,
    ) -> Result<Executed, IntakeError> {
        self.execute_checked(command, actor, fingerprint, &|_: Option<&DossierState>| {
            Ok(())
        })
        .await
    }

    /// [`CommandHandler::execute`] with `permit` asked, on the dossier's current state (`None`
    /// for a new one) just before the rules decide: who may act depends on the dossier's units,
    /// which only the state knows. A refusal changes nothing.
    pub async fn execute_checked(
        &self,
        command: ValidCommand,
        actor: Actor,
        fingerprint: Vec<u8>,
        permit: &(dyn Fn(Option<&DossierState>) -> Result<(), String> + Send + Sync),
    ) -> Result<Executed, IntakeError> {
        // A retry is normally recognised by the append itself (the store checks the request
        // id in the same transaction), so the hot path reads nothing extra. Only a creation
        // that allocates a code looks first, so that a retry does not burn a number.
        if matches!(command.target, Target::New { code: None, .. })
            && let Some(done) = self
                .recorded(&command.meta.request_id, &fingerprint)
                .await?
        {
            return Ok(done);
        }
        let allocates = matches!(command.target, Target::New { code: None, .. });
        let mut dossier_id = self.dossier_id(&command.target).await?;
        let mut assume_new = allocates;
        let started = std::time::Instant::now();
        loop {
            let outcome = self
                .try_once(
                    &command,
                    &dossier_id,
                    &actor,
                    &fingerprint,
                    assume_new,
                    permit,
                )
                .await;
            if outcome.is_err() {
                // Whatever went wrong, the next attempt reads the dossier afresh.
                self.cache.forget(dossier_id.as_str());
                assume_new = false;
            }
            match outcome {
                // Another command on the dossier got in first: decide again on the new state.
                // Bounded by time, not by count, so a busy dossier is served as long as the
                // call is alive; a command that has become illegal then fails the rules.
                Err(IntakeError::VersionConflict { .. })
                    if command.meta.expected_version.is_none()
                        && started.elapsed() < CONFLICT_RETRY_BUDGET =>
                {
                    tracing::debug!(dossier = %dossier_id, "version conflict, deciding again");
                    tokio::task::yield_now().await;
                }
                // The allocated code was taken meanwhile by a caller-chosen one: next number.
                Err(IntakeError::Domain(DomainError::AlreadyExists(_)))
                    if allocates && started.elapsed() < CONFLICT_RETRY_BUDGET =>
                {
                    dossier_id = self.dossier_id(&command.target).await?;
                    assume_new = true;
                }
                // A retry of a command that already took effect may be refused by the rules
                // (a resolved dossier cannot be resolved again): answer it from the record.
                Err(refused @ (IntakeError::Domain(_) | IntakeError::VersionConflict { .. })) => {
                    return match self
                        .recorded(&command.meta.request_id, &fingerprint)
                        .await?
                    {
                        Some(done) => Ok(done),
                        None => Err(refused),
                    };
                }
                other => return other,
            }
        }
    }

    /// The dossier a command is for; allocates the receiving unit's next code for today when
    /// a new dossier comes without one.
    async fn dossier_id(&self, target: &Target) -> Result<DossierCode, IntakeError> {
        match target {
            Target::Existing(code)
            | Target::New {
                code: Some(code), ..
            } => Ok(code.clone()),
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
                    .map_err(|e| IntakeError::Internal(e.to_string()))
            }
        }
    }

    /// The original result of a request id recorded before; refuses a reused id.
    async fn recorded(
        &self,
        request_id: &str,
        fingerprint: &[u8],
    ) -> Result<Option<Executed>, IntakeError> {
        match self.store.recorded_request(request_id).await? {
            None => Ok(None),
            Some(recorded) if recorded.fingerprint != fingerprint => {
                Err(IntakeError::RequestIdReused(request_id.to_owned()))
            }
            Some(recorded) => replayed(&recorded.events).map(Some),
        }
    }

    async fn try_once(
        &self,
        command: &ValidCommand,
        dossier_id: &DossierCode,
        actor: &Actor,
        fingerprint: &[u8],
        assume_new: bool,
        permit: &(dyn Fn(Option<&DossierState>) -> Result<(), String> + Send + Sync),
    ) -> Result<Executed, IntakeError> {
        let cached = self
            .cache
            .get(dossier_id.as_str())
            .filter(|s| command.meta.expected_version.is_none_or(|e| e == s.version));
        let mut state = match cached {
            Some(state) => Some(state),
            // A code just allocated has no events: nothing to read.
            None if assume_new => None,
            None => DossierState::fold(&self.history(dossier_id.as_str()).await?)?,
        };
        permit(state.as_ref()).map_err(IntakeError::PermissionDenied)?;
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
                traceparent: command.meta.traceparent.clone(),
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
            events: events.iter().map(|event| new_event(event, now)).collect(),
            row: summary_row(&state),
            personal_data: command.personal_data.clone(),
            claimed_number: match &command.target {
                Target::New {
                    code: Some(code), ..
                } => Some(ClaimedNumber {
                    agency: code.agency().to_string(),
                    day: code.date(),
                    number: code.number(),
                }),
                _ => None,
            },
        };
        match self.store.append(request).await? {
            AppendOutcome::Appended(_) => {
                for event in &events {
                    let kind = event.payload.as_ref().map_or("unknown", event_type_name);
                    metrics::counter!("motcua_events_appended_total", "event_type" => kind)
                        .increment(1);
                }
                let version = state.version;
                self.cache.put(state);
                Ok(Executed {
                    dossier_id: dossier_id.to_string(),
                    version,
                    events,
                    replayed: false,
                })
            }
            // A concurrent retry of this same request got in first.
            AppendOutcome::Replayed(original) => {
                self.cache.forget(dossier_id.as_str());
                replayed(&original)
            }
        }
    }

    /// Reads the states of many dossiers with one query per [`MANY_DOSSIERS`] and keeps them
    /// in the state cache, so that the commands which follow on them read nothing: for a
    /// caller about to act on many dossiers at once (the deadline watcher's catch-up), where
    /// one read per command would be a round trip each. The cache is never trusted for
    /// correctness (every append is conditional on the version decided against), so a dossier
    /// that changes meanwhile costs one version conflict and a fresh read. Returns how many
    /// states it read; a dossier whose history does not fold is left to the command, which
    /// reports it.
    pub async fn preload(&self, dossier_ids: &[&str]) -> Result<usize, IntakeError> {
        if !self.cache.enabled() {
            return Ok(0);
        }
        let missing: Vec<&str> = dossier_ids
            .iter()
            .copied()
            .filter(|id| !self.cache.holds(id))
            .collect();
        let mut loaded = 0;
        for chunk in missing.chunks(MANY_DOSSIERS) {
            let stored = self.store.many_dossier_events(chunk).await?;
            for history in stored.chunk_by(|a, b| a.dossier_id == b.dossier_id) {
                let Ok(events) = decode_all(history) else {
                    continue;
                };
                if let Ok(Some(state)) = DossierState::fold(&events) {
                    self.cache.offer(state);
                    loaded += 1;
                }
            }
        }
        Ok(loaded)
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

/// `event` as the store takes it, recorded at `recorded_at`.
pub fn new_event(event: &DossierEvent, recorded_at: Instant) -> NewEvent {
    NewEvent {
        event_id: event.event_id.clone(),
        seq: event.seq,
        event_type: event
            .payload
            .as_ref()
            .map_or("unknown", event_type_name)
            .to_owned(),
        recorded_at,
        payload: event.encode_to_vec(),
    }
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
        // A dossier waiting for the applicant's supplement is judged at the request time
        // (docs/domain.md section 4), so it cannot become overdue while it waits.
        open: state.is_open()
            && state.status != DossierStatus::SupplementRequested
            && state.due_at.is_some(),
        updated_at: state.updated_at,
    }
}
