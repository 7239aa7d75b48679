//! Deciding a command: checks it against the dossier's current state and produces the event
//! payloads to append. Pure: the time and the calendar are inputs.

use motcua_proto::v1::{self as pb, Channel, dossier_event::Payload};

use super::commands::{Command, NewDossier};
use super::convert::{procedure_ref, processing_time_to_proto, supplement_rule_to_proto};
use super::describe_status;
use super::state::DossierState;
use crate::calendar::WorkingCalendar;
use crate::catalog::ChannelKind;
use crate::due_date::{
    DueDateRules, SupplementRule, compute_due, due_after_supplement, is_after_due,
};
use crate::time::{Instant, to_timestamp};

/// What a decision may depend on besides the dossier: the server's clock and calendar.
#[derive(Debug, Clone, Copy)]
pub struct DecisionContext<'a> {
    /// The server's clock when the command arrived; the only time lateness trusts.
    pub now: Instant,
    pub calendar: &'a WorkingCalendar,
}

/// Why a command was refused by the rules. Each maps to one gRPC status at the edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The command is not legal in the dossier's current status.
    #[error(
        "cannot {command} dossier {dossier_id}: it is {status}; {command} is allowed only when it is {allowed}"
    )]
    IllegalTransition {
        command: &'static str,
        dossier_id: String,
        status: String,
        allowed: String,
    },
    /// The command needs a dossier that does not exist.
    #[error("dossier {0} does not exist")]
    NotFound(String),
    /// A creation command for a dossier code already in use.
    #[error("dossier {0} already exists")]
    AlreadyExists(String),
    /// The dossier's state does not allow the command, beyond its status.
    #[error("cannot {command} dossier {dossier_id}: {reason}")]
    Precondition {
        command: &'static str,
        dossier_id: String,
        reason: String,
    },
    /// A field's value is wrong for this dossier (for example an appointment before the due
    /// date).
    #[error("{field}: {message}")]
    InvalidField {
        field: &'static str,
        message: String,
    },
}

/// Decides `command` against the dossier's state (`None`: no dossier `dossier_id` exists yet).
pub fn decide(
    dossier_id: &str,
    state: Option<&DossierState>,
    command: &Command,
    ctx: &DecisionContext<'_>,
) -> Result<Vec<Payload>, DomainError> {
    let Some(state) = state else {
        return match command {
            Command::SubmitOnline(new) => Ok(vec![submit_online(new)]),
            Command::Receive(new, channel) => Ok(vec![receive(new, *channel, ctx)]),
            _ => Err(DomainError::NotFound(dossier_id.to_owned())),
        };
    };
    if command.creates_dossier() {
        return Err(DomainError::AlreadyExists(state.dossier_id.clone()));
    }
    check_status(state, command)?;
    let precondition = |reason: String| DomainError::Precondition {
        command: command.name(),
        dossier_id: state.dossier_id.clone(),
        reason,
    };
    let now = ctx.now;
    let payload = match command {
        Command::SubmitOnline(_) | Command::Receive(..) => {
            return Err(DomainError::AlreadyExists(state.dossier_id.clone()));
        }
        Command::AcceptOnline => {
            let due = compute_due(
                ctx.calendar,
                now,
                state.processing_time(),
                &state.due_date_rules(),
            );
            Payload::OnlineAccepted(pb::OnlineAccepted {
                submitted_at: state.submitted_at.map(to_timestamp),
                accepted_at: Some(to_timestamp(now)),
                due_at: due.map(to_timestamp),
                due_provisional: is_provisional(ctx.calendar, now, due),
            })
        }
        Command::Refuse { reason } => Payload::Refused(pb::Refused {
            reason: reason.clone(),
        }),
        Command::Forward {
            department,
            note,
            step_time,
        } => {
            let step_due = compute_due(ctx.calendar, now, *step_time, &state.due_date_rules());
            Payload::Forwarded(pb::Forwarded {
                department: department.clone(),
                note: note.clone(),
                step_time: step_time.map(processing_time_to_proto),
                step_started_at: Some(to_timestamp(now)),
                step_due_at: step_due.map(to_timestamp),
            })
        }
        Command::RequestSupplement { reason } => {
            Payload::SupplementRequested(pb::SupplementRequested {
                reason: reason.clone(),
                request_number: u32::try_from(state.supplements.len() + 1).unwrap_or(u32::MAX),
                due_before: state.due_at.map(to_timestamp),
            })
        }
        Command::ReceiveSupplement { .. } => {
            let requested_at = state
                .supplements
                .last()
                .filter(|episode| episode.received_at.is_none())
                .map(|episode| episode.requested_at)
                .ok_or_else(|| precondition("no supplement request is open".into()))?;
            let rules: DueDateRules = state.due_date_rules();
            let due_after = due_after_supplement(
                ctx.calendar,
                &rules,
                state.processing_time(),
                state.due_at,
                requested_at,
                now,
            );
            Payload::SupplementReceived(pb::SupplementReceived {
                request_number: u32::try_from(state.supplements.len()).unwrap_or(u32::MAX),
                requested_at: Some(to_timestamp(requested_at)),
                due_before: state.due_at.map(to_timestamp),
                due_after: due_after.map(to_timestamp),
                rule: supplement_rule_to_proto(rules.supplement) as i32,
                due_provisional: if due_after == state.due_at {
                    state.due_provisional
                } else {
                    is_provisional(ctx.calendar, now, due_after)
                },
            })
        }
        Command::RequestFees {
            amount_vnd,
            description,
        } => Payload::FeesRequested(pb::FeesRequested {
            amount_vnd: *amount_vnd,
            description: description.clone(),
        }),
        Command::RecordPayment {
            amount_vnd,
            method,
            reference,
        } => Payload::PaymentRecorded(pb::PaymentRecorded {
            amount_vnd: *amount_vnd,
            method: *method as i32,
            reference: reference.clone(),
        }),
        Command::RecordDigitization {
            target,
            document_name,
            reused,
            file_url,
        } => Payload::Digitized(pb::Digitized {
            target: *target as i32,
            document_name: document_name.clone(),
            reused: *reused,
            file_url: file_url.clone(),
        }),
        Command::Resolve {
            electronic_result,
            note,
        } => Payload::Resolved(pb::Resolved {
            electronic_result: *electronic_result,
            note: note.clone(),
        }),
        Command::ReturnResult { note } => {
            Payload::ResultReturned(pb::ResultReturned { note: note.clone() })
        }
        Command::Withdraw { reason } => Payload::Withdrawn(pb::Withdrawn {
            reason: reason.clone(),
        }),
        Command::StopProcessing { reason } => Payload::Stopped(pb::Stopped {
            reason: reason.clone(),
        }),
        Command::ExtendDueDate {
            new_appointment_at,
            reason,
        } => {
            let due = state
                .due_at
                .ok_or_else(|| precondition("its procedure has no due date".into()))?;
            let current = state.appointment_at.unwrap_or(due).max(due);
            if *new_appointment_at <= current {
                return Err(DomainError::InvalidField {
                    field: "new_appointment_at",
                    message: format!(
                        "must be after the current appointment date {}",
                        crate::time::to_vietnam(current).format("%Y-%m-%d %H:%M (UTC+7)")
                    ),
                });
            }
            // docs/domain.md section 3: the apology comes at least one working day before the due
            // date. A late apology is still recorded (the applicant must be told), but flagged.
            let one_day = ctx.calendar.profile().working_seconds_per_day();
            let issued_in_time = ctx.calendar.working_seconds_between(now, due) >= one_day;
            Payload::DueDateExtended(pb::DueDateExtended {
                due_before: Some(to_timestamp(due)),
                new_appointment_at: Some(to_timestamp(*new_appointment_at)),
                reason: reason.clone(),
                issued_in_time,
            })
        }
        Command::ChangeProcedure { procedure, reason } => {
            let channel = channel_kind(state.channel);
            let time = procedure.time_for(channel);
            let new_ref = procedure_ref(procedure, time);
            let rules = DueDateRules {
                calendar_days: procedure.calendar_days,
                supplement: procedure.supplement_rule,
            };
            let due_after = changed_due(state, time, &rules, ctx.calendar, now);
            Payload::ProcedureChanged(pb::ProcedureChanged {
                previous: Some(state.procedure.clone()),
                procedure: Some(new_ref),
                due_before: state.due_at.map(to_timestamp),
                due_after: due_after.map(to_timestamp),
                reason: reason.clone(),
                due_provisional: if due_after == state.due_at {
                    state.due_provisional
                } else {
                    is_provisional(ctx.calendar, now, due_after)
                },
            })
        }
        Command::MarkLate { due_at } => {
            if state.due_at != Some(*due_at) {
                return Err(precondition(format!(
                    "its due date is no longer {due_at} (it changed since the watcher saw it)"
                )));
            }
            if state.late_for_due == Some(*due_at) {
                return Err(precondition(
                    "it is already marked late for this due date".into(),
                ));
            }
            if now < *due_at {
                return Err(precondition(format!("it is not due until {due_at}")));
            }
            Payload::Late(pb::Late {
                due_at: Some(to_timestamp(*due_at)),
                became_late_at: Some(to_timestamp(*due_at)),
            })
        }
        Command::MarkDueSoon { due_at } => {
            if state.due_at != Some(*due_at) || state.due_soon_for_due == Some(*due_at) {
                return Err(precondition(
                    "its due date changed or it was already warned".into(),
                ));
            }
            Payload::DueSoon(pb::DueSoon {
                due_at: Some(to_timestamp(*due_at)),
            })
        }
    };
    Ok(vec![payload])
}

fn check_status(state: &DossierState, command: &Command) -> Result<(), DomainError> {
    let allowed = command.allowed_in();
    if allowed.contains(&state.status) {
        return Ok(());
    }
    Err(DomainError::IllegalTransition {
        command: command.name(),
        dossier_id: state.dossier_id.clone(),
        status: describe_status(state.status),
        allowed: allowed
            .iter()
            .map(|s| describe_status(*s))
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// The due date under a new procedure case. The clock still started at acceptance, and what
/// happened since still counts: under the pause rule the working time spent waiting for each
/// received supplement is added again; under the restart rule the time runs from the last
/// receipt. An open supplement is added when it is received, as for any dossier.
fn changed_due(
    state: &DossierState,
    time: Option<crate::due_date::ProcessingTime>,
    rules: &DueDateRules,
    calendar: &WorkingCalendar,
    now: Instant,
) -> Option<Instant> {
    // A change made after the due date had passed moves nothing: the dossier is late
    // (docs/domain.md §4, lateness is never erased).
    if is_after_due(state.due_at, now) {
        return state.due_at;
    }
    let accepted = state.accepted_at?;
    let received: Vec<(Instant, Instant)> = state
        .supplements
        .iter()
        .filter_map(|s| s.received_at.map(|received| (s.requested_at, received)))
        .collect();
    match rules.supplement {
        SupplementRule::Restart => {
            let start = received.last().map_or(accepted, |&(_, received)| received);
            compute_due(calendar, start, time, rules)
        }
        SupplementRule::Pause => {
            let paused: i64 = received
                .iter()
                .map(|&(requested, received)| calendar.working_seconds_between(requested, received))
                .sum();
            compute_due(calendar, accepted, time, rules)
                .map(|due| calendar.add_working_seconds(due, paused))
        }
    }
}

fn channel_kind(channel: Channel) -> ChannelKind {
    match channel {
        Channel::Online => ChannelKind::Online,
        Channel::Postal => ChannelKind::Postal,
        Channel::Counter | Channel::Unspecified => ChannelKind::Counter,
    }
}

fn units(new: &NewDossier) -> pb::DossierUnits {
    pb::DossierUnits {
        receiving_unit: new.receiving_unit.as_str().to_owned(),
        competent_authority: new.competent_authority.as_str().to_owned(),
    }
}

fn submit_online(new: &NewDossier) -> Payload {
    let time = new.procedure.time_for(ChannelKind::Online);
    Payload::Online(pb::OnlineSubmitted {
        procedure: Some(procedure_ref(&new.procedure, time)),
        units: Some(units(new)),
        applicant_type: new.applicant_type as i32,
        component_count: new.component_count,
    })
}

fn receive(new: &NewDossier, channel: Channel, ctx: &DecisionContext<'_>) -> Payload {
    let time = new.procedure.time_for(channel_kind(channel));
    let rules = DueDateRules {
        calendar_days: new.procedure.calendar_days,
        supplement: new.procedure.supplement_rule,
    };
    let due = compute_due(ctx.calendar, ctx.now, time, &rules);
    Payload::Received(pb::Received {
        channel: channel as i32,
        procedure: Some(procedure_ref(&new.procedure, time)),
        units: Some(units(new)),
        applicant_type: new.applicant_type as i32,
        component_count: new.component_count,
        accepted_at: Some(to_timestamp(ctx.now)),
        due_at: due.map(to_timestamp),
        due_provisional: is_provisional(ctx.calendar, ctx.now, due),
    })
}

/// Whether a due date computed at `from` runs into a year the holiday table does not cover:
/// then only weekends were skipped there, and the date is marked provisional on the event.
fn is_provisional(calendar: &WorkingCalendar, from: Instant, due: Option<Instant>) -> bool {
    due.is_some_and(|due| !calendar.covers(from, due))
}
