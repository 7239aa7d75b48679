//! Read views: a dossier's state as the API shows it.

use motcua_domain::calendar::WorkingCalendar;
use motcua_domain::lifecycle::DossierState;
use motcua_domain::outcome::{Outcome, OutcomeReason};
use motcua_domain::time::{Instant, to_timestamp};
use motcua_proto::v1 as pb;
use motcua_store::DossierRow;

pub(crate) fn outcome_to_proto(outcome: Outcome) -> pb::Outcome {
    match outcome {
        Outcome::NotAccepted => pb::Outcome::NotAccepted,
        Outcome::Early => pb::Outcome::Early,
        Outcome::OnTime => pb::Outcome::OnTime,
        Outcome::Late => pb::Outcome::Late,
        Outcome::InProgress { overdue: false } => pb::Outcome::InProgress,
        Outcome::InProgress { overdue: true } => pb::Outcome::InProgressOverdue,
    }
}

pub(crate) fn reason_to_proto(reason: OutcomeReason) -> pb::OutcomeReason {
    use OutcomeReason as R;
    match reason {
        R::NotAccepted => pb::OutcomeReason::NotAccepted,
        R::EndedBeforeDueDay => pb::OutcomeReason::EndedBeforeDueDay,
        R::EndedOnDueDay => pb::OutcomeReason::EndedOnDueDay,
        R::EndedAfterDue => pb::OutcomeReason::EndedAfterDue,
        R::WaitingForSupplement => pb::OutcomeReason::WaitingForSupplement,
        R::SupplementRequestedAfterDue => pb::OutcomeReason::SupplementRequestedAfterDue,
        R::SupplementRequestedMoreThanOnce => pb::OutcomeReason::SupplementRequestedMoreThanOnce,
        R::WithinTime => pb::OutcomeReason::WithinTime,
        R::PastDue => pb::OutcomeReason::PastDue,
        R::NoTimeLimit => pb::OutcomeReason::NoTimeLimit,
    }
}

/// The outcome an open dossier shows: never a final one. A dossier waiting for a supplement
/// asked in time is judged as ended at the request (EARLY or ON_TIME in a report made now),
/// but it has not ended: it is in progress, overdue when a report made now counts it late.
pub(crate) fn open_outcome(judged: Outcome) -> Outcome {
    match judged {
        Outcome::NotAccepted => Outcome::NotAccepted,
        Outcome::Late | Outcome::InProgress { overdue: true } => {
            Outcome::InProgress { overdue: true }
        }
        Outcome::Early | Outcome::OnTime | Outcome::InProgress { overdue: false } => {
            Outcome::InProgress { overdue: false }
        }
    }
}

/// The full view of a dossier, its outcome judged at `now`.
pub(crate) fn dossier(
    state: &DossierState,
    history: Vec<pb::DossierEvent>,
    calendar: &WorkingCalendar,
    now: Instant,
) -> pb::Dossier {
    let judgement = state.judgement(calendar, now);
    let outcome_final = state.ended_at.is_some();
    let outcome = if outcome_final {
        judgement.outcome
    } else {
        open_outcome(judgement.outcome)
    };
    pb::Dossier {
        dossier_id: state.dossier_id.clone(),
        status: state.status as i32,
        channel: state.channel as i32,
        procedure: Some(state.procedure.clone()),
        units: Some(state.units.clone()),
        applicant_type: state.applicant_type as i32,
        submitted_at: state.submitted_at.map(to_timestamp),
        accepted_at: state.accepted_at.map(to_timestamp),
        due_at: state.due_at.map(to_timestamp),
        appointment_at: state.appointment_at.map(to_timestamp),
        ended_at: state.ended_at.map(to_timestamp),
        outcome: outcome_to_proto(outcome) as i32,
        outcome_final,
        provisional_outcome: outcome_to_proto(judgement.outcome) as i32,
        outcome_reason: reason_to_proto(judgement.reason) as i32,
        due_provisional: state.due_provisional,
        supplement_requests: u32::try_from(state.supplements.len()).unwrap_or(u32::MAX),
        version: state.version,
        rules: Some(state.rules.clone()),
        history,
        current_department: state.current_department.clone().unwrap_or_default(),
        step_due_at: state.step_due_at.map(to_timestamp),
        updated_at: Some(to_timestamp(state.updated_at)),
    }
}

pub(crate) fn summary(row: &DossierRow) -> pb::DossierSummary {
    pb::DossierSummary {
        dossier_id: row.dossier_id.clone(),
        status: row.status,
        procedure_code: row.procedure_code.clone(),
        units: Some(pb::DossierUnits {
            receiving_unit: row.receiving_unit.clone(),
            competent_authority: row.competent_authority.clone(),
        }),
        due_at: row.due_at.map(to_timestamp),
        version: row.version,
        updated_at: Some(to_timestamp(row.updated_at)),
        channel: row.channel,
    }
}
