//! A dossier's current state, folded from its events.

use motcua_proto::v1::{
    self as pb, ApplicantType, Channel, DigitizationTarget, DossierEvent, DossierStatus,
    PaymentMethod, dossier_event::Payload,
};

use super::convert::{processing_time_from_proto, supplement_rule_from_proto};
use crate::calendar::WorkingCalendar;
use crate::due_date::{CalendarDayRule, DueDateRules, ProcessingTime};
use crate::outcome::{Outcome, OutcomeFacts, SupplementEpisode, classify_with_rules};
use crate::time::{Instant, from_timestamp};

/// Everything the rules need to know about a dossier, derived from its events alone.
#[derive(Debug, Clone, PartialEq)]
pub struct DossierState {
    pub dossier_id: String,
    /// Number of events folded: the version for optimistic concurrency.
    pub version: u64,
    pub status: DossierStatus,
    /// Where a dossier goes back to after a supplement or a payment.
    pub resume_status: DossierStatus,
    pub channel: Channel,
    pub procedure: pb::ProcedureRef,
    pub units: pb::DossierUnits,
    pub applicant_type: ApplicantType,
    pub component_count: u32,
    pub submitted_at: Option<Instant>,
    pub accepted_at: Option<Instant>,
    /// The due date the dossier is scored against (moved by supplements and procedure changes,
    /// never by an apology).
    pub due_at: Option<Instant>,
    /// The latest appointment date told to the applicant after an apology.
    pub appointment_at: Option<Instant>,
    /// End of processing: the first terminal status (DOMAIN.md section 4).
    pub ended_at: Option<Instant>,
    pub supplements: Vec<SupplementEpisode>,
    /// The due date a `late` event was recorded for, so it is recorded once per due date.
    pub late_for_due: Option<Instant>,
    /// The due date a `due_soon` event was recorded for.
    pub due_soon_for_due: Option<Instant>,
    pub current_department: Option<String>,
    pub step_due_at: Option<Instant>,
    pub fees_requested_vnd: u64,
    pub paid_vnd: u64,
    pub paid_online: bool,
    pub digitized_components: u32,
    pub reused_components: u32,
    pub result_digitized: bool,
    pub electronic_result: bool,
    /// Rule versions the due date was computed under.
    pub rules: pb::RuleVersions,
    pub created_at: Instant,
    pub updated_at: Instant,
}

/// A history that cannot be folded: it does not start with a creation event, skips a sequence
/// number, or carries an event with no payload. It means the store is corrupt or the event was
/// written by an incompatible version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FoldError {
    #[error("dossier {dossier_id}: event {seq} has no payload or an unknown payload")]
    NoPayload { dossier_id: String, seq: u64 },
    #[error("dossier {dossier_id}: expected event {expected}, found {found}")]
    Gap {
        dossier_id: String,
        expected: u64,
        found: u64,
    },
    #[error("dossier {dossier_id}: history starts with '{event_type}', not a creation event")]
    NoCreation {
        dossier_id: String,
        event_type: &'static str,
    },
    #[error("dossier {dossier_id}: event {seq} has no recording time")]
    NoTime { dossier_id: String, seq: u64 },
}

/// The stable name of an event type, used in the store, Kafka headers and metrics.
pub fn event_type_name(payload: &Payload) -> &'static str {
    match payload {
        Payload::Online(_) => "online",
        Payload::Received(_) => "received",
        Payload::OnlineAccepted(_) => "online_accepted",
        Payload::Refused(_) => "refused",
        Payload::Forwarded(_) => "forwarded",
        Payload::SupplementRequested(_) => "supplement_requested",
        Payload::SupplementReceived(_) => "supplement_received",
        Payload::FeesRequested(_) => "fees_requested",
        Payload::PaymentRecorded(_) => "payment_recorded",
        Payload::Digitized(_) => "digitized",
        Payload::Resolved(_) => "resolved",
        Payload::ResultReturned(_) => "result_returned",
        Payload::Withdrawn(_) => "withdrawn",
        Payload::Stopped(_) => "stopped",
        Payload::DueDateExtended(_) => "due_date_extended",
        Payload::ProcedureChanged(_) => "procedure_changed",
        Payload::Late(_) => "late",
        Payload::DueSoon(_) => "due_soon",
    }
}

fn ts(t: &Option<prost_types::Timestamp>) -> Option<Instant> {
    t.as_ref().and_then(from_timestamp)
}

impl DossierState {
    /// Folds a dossier's history, oldest first. `Ok(None)` for an empty history.
    pub fn fold<'a>(
        events: impl IntoIterator<Item = &'a DossierEvent>,
    ) -> Result<Option<Self>, FoldError> {
        let mut state: Option<Self> = None;
        for event in events {
            match state.as_mut() {
                None => state = Some(Self::create(event)?),
                Some(s) => s.apply(event)?,
            }
        }
        Ok(state)
    }

    fn create(event: &DossierEvent) -> Result<Self, FoldError> {
        let dossier_id = event.dossier_id.clone();
        if event.seq != 1 {
            return Err(FoldError::Gap {
                dossier_id,
                expected: 1,
                found: event.seq,
            });
        }
        let at = ts(&event.recorded_at).ok_or_else(|| FoldError::NoTime {
            dossier_id: dossier_id.clone(),
            seq: event.seq,
        })?;
        let payload = event.payload.as_ref().ok_or_else(|| FoldError::NoPayload {
            dossier_id: dossier_id.clone(),
            seq: event.seq,
        })?;
        let mut state = Self {
            dossier_id: dossier_id.clone(),
            version: 1,
            status: DossierStatus::Unspecified,
            resume_status: DossierStatus::Unspecified,
            channel: Channel::Unspecified,
            procedure: pb::ProcedureRef::default(),
            units: pb::DossierUnits::default(),
            applicant_type: ApplicantType::Unspecified,
            component_count: 0,
            submitted_at: None,
            accepted_at: None,
            due_at: None,
            appointment_at: None,
            ended_at: None,
            supplements: Vec::new(),
            late_for_due: None,
            due_soon_for_due: None,
            current_department: None,
            step_due_at: None,
            fees_requested_vnd: 0,
            paid_vnd: 0,
            paid_online: false,
            digitized_components: 0,
            reused_components: 0,
            result_digitized: false,
            electronic_result: false,
            rules: event.rules.clone().unwrap_or_default(),
            created_at: at,
            updated_at: at,
        };
        match payload {
            Payload::Online(online) => {
                state.status = DossierStatus::SubmittedOnline;
                state.channel = Channel::Online;
                state.procedure = online.procedure.clone().unwrap_or_default();
                state.units = online.units.clone().unwrap_or_default();
                state.applicant_type = online.applicant_type();
                state.component_count = online.component_count;
                state.submitted_at = Some(at);
            }
            Payload::Received(received) => {
                state.status = DossierStatus::Accepted;
                state.channel = received.channel();
                state.procedure = received.procedure.clone().unwrap_or_default();
                state.units = received.units.clone().unwrap_or_default();
                state.applicant_type = received.applicant_type();
                state.component_count = received.component_count;
                state.submitted_at = Some(at);
                state.accepted_at = Some(ts(&received.accepted_at).unwrap_or(at));
                state.due_at = ts(&received.due_at);
            }
            other => {
                return Err(FoldError::NoCreation {
                    dossier_id,
                    event_type: event_type_name(other),
                });
            }
        }
        Ok(state)
    }

    /// Applies one event that follows the current version.
    pub fn apply(&mut self, event: &DossierEvent) -> Result<(), FoldError> {
        let expected = self.version + 1;
        if event.seq != expected {
            return Err(FoldError::Gap {
                dossier_id: self.dossier_id.clone(),
                expected,
                found: event.seq,
            });
        }
        let at = ts(&event.recorded_at).ok_or_else(|| FoldError::NoTime {
            dossier_id: self.dossier_id.clone(),
            seq: event.seq,
        })?;
        let payload = event.payload.as_ref().ok_or_else(|| FoldError::NoPayload {
            dossier_id: self.dossier_id.clone(),
            seq: event.seq,
        })?;
        match payload {
            Payload::Online(_) | Payload::Received(_) => {
                return Err(FoldError::NoCreation {
                    dossier_id: self.dossier_id.clone(),
                    event_type: event_type_name(payload),
                });
            }
            Payload::OnlineAccepted(accepted) => {
                self.status = DossierStatus::Accepted;
                self.accepted_at = Some(ts(&accepted.accepted_at).unwrap_or(at));
                self.due_at = ts(&accepted.due_at);
                if let Some(rules) = &event.rules {
                    self.rules = rules.clone();
                }
            }
            Payload::Refused(_) => self.end(DossierStatus::Refused, at),
            Payload::Forwarded(forwarded) => {
                self.status = DossierStatus::Processing;
                self.current_department = Some(forwarded.department.clone());
                self.step_due_at = ts(&forwarded.step_due_at);
            }
            Payload::SupplementRequested(_) => {
                self.resume_status = self.status;
                self.status = DossierStatus::SupplementRequested;
                self.supplements.push(SupplementEpisode {
                    requested_at: at,
                    received_at: None,
                });
            }
            Payload::SupplementReceived(received) => {
                self.status = self.resume_or_processing();
                if let Some(open) = self.supplements.last_mut() {
                    open.received_at = Some(at);
                }
                self.due_at = ts(&received.due_after);
            }
            Payload::FeesRequested(fees) => {
                self.resume_status = self.status;
                self.status = DossierStatus::FeesRequested;
                self.fees_requested_vnd = self.fees_requested_vnd.saturating_add(fees.amount_vnd);
            }
            Payload::PaymentRecorded(payment) => {
                if self.status == DossierStatus::FeesRequested {
                    self.status = self.resume_or_processing();
                }
                self.paid_vnd = self.paid_vnd.saturating_add(payment.amount_vnd);
                if matches!(
                    payment.method(),
                    PaymentMethod::NationalPortal | PaymentMethod::ProvincialGateway
                ) {
                    self.paid_online = true;
                }
            }
            Payload::Digitized(digitized) => match digitized.target() {
                DigitizationTarget::Result => self.result_digitized = true,
                _ => {
                    self.digitized_components += 1;
                    if digitized.reused {
                        self.reused_components += 1;
                    }
                }
            },
            Payload::Resolved(resolved) => {
                self.electronic_result = resolved.electronic_result;
                self.end(DossierStatus::Resolved, at);
            }
            Payload::ResultReturned(_) => self.end(DossierStatus::ResultReturned, at),
            Payload::Withdrawn(_) => self.end(DossierStatus::Withdrawn, at),
            Payload::Stopped(_) => self.end(DossierStatus::Stopped, at),
            Payload::DueDateExtended(extended) => {
                self.appointment_at = ts(&extended.new_appointment_at);
            }
            Payload::ProcedureChanged(changed) => {
                self.procedure = changed.procedure.clone().unwrap_or_default();
                self.due_at = ts(&changed.due_after);
            }
            Payload::Late(late) => self.late_for_due = ts(&late.due_at),
            Payload::DueSoon(soon) => self.due_soon_for_due = ts(&soon.due_at),
        }
        self.version = expected;
        self.updated_at = at;
        Ok(())
    }

    fn resume_or_processing(&self) -> DossierStatus {
        match self.resume_status {
            DossierStatus::Accepted | DossierStatus::Processing => self.resume_status,
            _ => DossierStatus::Processing,
        }
    }

    /// Records a terminal (or result) status; the first one fixes the end of processing, so
    /// "processed" (9) wins over "result returned" (10).
    fn end(&mut self, status: DossierStatus, at: Instant) {
        self.status = status;
        if self.ended_at.is_none() {
            self.ended_at = Some(at);
        }
        self.current_department = None;
        self.step_due_at = None;
    }

    /// The processing time recorded for this dossier's channel.
    pub fn processing_time(&self) -> Option<ProcessingTime> {
        self.procedure
            .processing_time
            .as_ref()
            .and_then(processing_time_from_proto)
    }

    /// The due-date rules recorded on the dossier's procedure.
    pub fn due_date_rules(&self) -> DueDateRules {
        DueDateRules {
            calendar_days: CalendarDayRule {
                skip_holidays: self.procedure.calendar_days_skip_holidays,
                roll_forward_to_working_day: self.procedure.calendar_days_roll_forward,
            },
            supplement: supplement_rule_from_proto(self.procedure.supplement_rule),
        }
    }

    /// Whether the dossier is accepted and not yet ended: it can still become late.
    pub fn is_open(&self) -> bool {
        self.accepted_at.is_some() && self.ended_at.is_none()
    }

    /// The facts DOMAIN.md section 4 judges a dossier on.
    pub fn outcome_facts(&self) -> OutcomeFacts {
        OutcomeFacts {
            accepted_at: self.accepted_at,
            due_at: self.due_at,
            legal_max: self
                .procedure
                .legal_max
                .as_ref()
                .and_then(processing_time_from_proto),
            supplements: self.supplements.clone(),
            ended_at: self.ended_at,
        }
    }

    /// The outcome judged at `at` (now, or a period end).
    pub fn outcome(&self, calendar: &WorkingCalendar, at: Instant) -> Outcome {
        classify_with_rules(calendar, &self.due_date_rules(), &self.outcome_facts(), at)
    }
}
