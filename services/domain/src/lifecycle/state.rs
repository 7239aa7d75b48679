//! A dossier's current state, folded from its events.

use motcua_proto::v1::{
    self as pb, ApplicantType, Channel, DigitizationTarget, DossierEvent, DossierStatus,
    PaymentMethod, dossier_event::Payload,
};

use super::convert::{processing_time_from_proto, supplement_rule_from_proto};
use crate::calendar::WorkingCalendar;
use crate::due_date::{CalendarDayRule, DueDateRules, ProcessingTime, is_after_due};
use crate::outcome::{
    Judgement, Outcome, OutcomeFacts, SupplementEpisode, classify_with_rules, judge_with_rules,
};
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
    /// End of processing: the first terminal status (docs/domain.md section 4).
    pub ended_at: Option<Instant>,
    pub supplements: Vec<SupplementEpisode>,
    /// The due date a `late` event was recorded for, so it is recorded once per due date.
    pub late_for_due: Option<Instant>,
    /// The due date a `due_soon` event was recorded for.
    pub due_soon_for_due: Option<Instant>,
    pub current_department: Option<String>,
    pub step_due_at: Option<Instant>,
    pub fees_requested_vnd: u64,
    /// The first fees request.
    pub fees_requested_at: Option<Instant>,
    /// Since when the dossier bears fees: its entry under a fee-bearing procedure, else the
    /// first fees request or change to a fee-bearing procedure. Online payment's denominator
    /// counts it in that period, never again.
    pub fee_bearing_since: Option<Instant>,
    pub paid_vnd: u64,
    pub paid_online: bool,
    /// The first payment made online (national portal or provincial gateway): online payment
    /// counts in the period the payment was made.
    pub paid_online_at: Option<Instant>,
    /// When processing started: the first hand-off to a department (status 4). Digitisation
    /// before it is digitisation *at reception*.
    pub processing_started_at: Option<Instant>,
    /// The distinct component documents digitised, by name, in the order first digitised:
    /// digitisation counts documents, not digitisation records.
    pub digitized_documents: Vec<String>,
    /// The distinct component documents whose file was reused from data already digitised.
    pub reused_documents: Vec<String>,
    /// The first component digitised during reception (before processing started).
    pub digitized_at_reception_at: Option<Instant>,
    /// The first component digitised by reusing data already digitised.
    pub reused_at: Option<Instant>,
    pub result_digitized: bool,
    /// The first digitisation of the result.
    pub result_digitized_at: Option<Instant>,
    /// When the result and every declared component had been digitised.
    pub fully_digitized_at: Option<Instant>,
    pub electronic_result: bool,
    /// The due date runs into a year the node had no holiday table for: it was computed with
    /// weekends only and must not be taken for a checked date.
    pub due_provisional: bool,
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

/// How two digitisation records are recognised as the same document: by name, ignoring
/// surrounding spaces and letter case ("Tờ khai" twice is one document).
fn document_key(name: &str) -> String {
    name.trim().to_lowercase()
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
            fees_requested_at: None,
            fee_bearing_since: None,
            paid_vnd: 0,
            paid_online: false,
            paid_online_at: None,
            processing_started_at: None,
            digitized_documents: Vec::new(),
            reused_documents: Vec::new(),
            digitized_at_reception_at: None,
            reused_at: None,
            result_digitized: false,
            result_digitized_at: None,
            fully_digitized_at: None,
            electronic_result: false,
            due_provisional: false,
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
                state.due_provisional = received.due_provisional;
            }
            other => {
                return Err(FoldError::NoCreation {
                    dossier_id,
                    event_type: event_type_name(other),
                });
            }
        }
        if state.procedure.fee_bearing {
            state.fee_bearing_since = Some(at);
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
                self.due_provisional = accepted.due_provisional;
                if let Some(rules) = &event.rules {
                    self.rules = rules.clone();
                }
            }
            Payload::Refused(_) => self.end(DossierStatus::Refused, at),
            Payload::Forwarded(forwarded) => {
                self.status = DossierStatus::Processing;
                self.processing_started_at.get_or_insert(at);
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
                let mut requested_at = None;
                if let Some(open) = self.supplements.last_mut() {
                    open.received_at = Some(at);
                    requested_at = Some(open.requested_at);
                }
                // Lateness is never erased: a supplement asked after the due date moves
                // nothing, also in histories decided before that rule was enforced.
                if !requested_at.is_some_and(|requested| is_after_due(self.due_at, requested)) {
                    self.due_at = ts(&received.due_after);
                    self.due_provisional = received.due_provisional;
                }
            }
            Payload::FeesRequested(fees) => {
                self.resume_status = self.status;
                self.status = DossierStatus::FeesRequested;
                self.fees_requested_vnd = self.fees_requested_vnd.saturating_add(fees.amount_vnd);
                self.fees_requested_at.get_or_insert(at);
                if fees.amount_vnd > 0 {
                    self.fee_bearing_since.get_or_insert(at);
                }
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
                    self.paid_online_at.get_or_insert(at);
                }
            }
            Payload::Digitized(digitized) => {
                match digitized.target() {
                    DigitizationTarget::Result => {
                        self.result_digitized = true;
                        self.result_digitized_at.get_or_insert(at);
                    }
                    _ => {
                        let name = document_key(&digitized.document_name);
                        if !self.digitized_documents.contains(&name) {
                            self.digitized_documents.push(name.clone());
                        }
                        if self.processing_started_at.is_none() && self.ended_at.is_none() {
                            self.digitized_at_reception_at.get_or_insert(at);
                        }
                        if digitized.reused {
                            self.reused_at.get_or_insert(at);
                            if !self.reused_documents.contains(&name) {
                                self.reused_documents.push(name);
                            }
                        }
                    }
                }
                if self.fully_digitized() {
                    self.fully_digitized_at.get_or_insert(at);
                }
            }
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
                if self.procedure.fee_bearing {
                    self.fee_bearing_since.get_or_insert(at);
                }
                if !is_after_due(self.due_at, at) {
                    self.due_at = ts(&changed.due_after);
                    self.due_provisional = changed.due_provisional;
                }
            }
            Payload::Late(late) => self.late_for_due = ts(&late.due_at),
            Payload::DueSoon(soon) => self.due_soon_for_due = ts(&soon.due_at),
        }
        self.version = expected;
        self.updated_at = at;
        Ok(())
    }

    /// Distinct component documents digitised.
    pub fn digitized_components(&self) -> u32 {
        u32::try_from(self.digitized_documents.len()).unwrap_or(u32::MAX)
    }

    /// Distinct component documents whose file was reused.
    pub fn reused_components(&self) -> u32 {
        u32::try_from(self.reused_documents.len()).unwrap_or(u32::MAX)
    }

    /// Every declared component digitised (at least one when none was declared) and the
    /// result too: the dossier is fully digitised (Decision 766's digitisation input).
    pub fn fully_digitized(&self) -> bool {
        self.result_digitized && self.digitized_components() >= self.component_count.max(1)
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

    /// The facts docs/domain.md section 4 judges a dossier on.
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

    /// [`DossierState::outcome`] with the rule that decided it. For an open dossier this is
    /// provisional: how a period ending at `at` would count it, which its next event may change.
    pub fn judgement(&self, calendar: &WorkingCalendar, at: Instant) -> Judgement {
        judge_with_rules(calendar, &self.due_date_rules(), &self.outcome_facts(), at)
    }
}
