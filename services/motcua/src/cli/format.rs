//! How the client shows things: readable text by default (times in Vietnam time), JSON on
//! request for scripts.

use std::fmt::Write;

use motcua_domain::lifecycle::{describe_status, event_type_name};
use motcua_domain::time::{from_timestamp, to_vietnam};
use motcua_proto::v1 as pb;
use serde_json::{Value, json};
use tonic_types::StatusExt;

/// A timestamp as Vietnam local time, "2026-11-23 08:30 (UTC+7)".
fn vn(ts: Option<&prost_types::Timestamp>) -> String {
    ts.and_then(from_timestamp)
        .map(|t| to_vietnam(t).format("%Y-%m-%d %H:%M (UTC+7)").to_string())
        .unwrap_or_else(|| "-".into())
}

fn vn_iso(ts: Option<&prost_types::Timestamp>) -> Value {
    ts.and_then(from_timestamp)
        .map(|t| Value::String(to_vietnam(t).to_rfc3339()))
        .unwrap_or(Value::Null)
}

fn status_name(code: i32) -> String {
    pb::DossierStatus::try_from(code)
        .map(describe_status)
        .unwrap_or_else(|_| format!("unknown ({code})"))
}

fn event_name(event: &pb::DossierEvent) -> &'static str {
    event.payload.as_ref().map_or("unknown", event_type_name)
}

fn outcome_name(code: i32) -> &'static str {
    match pb::Outcome::try_from(code) {
        Ok(pb::Outcome::NotAccepted) => "not accepted yet",
        Ok(pb::Outcome::Early) => "early",
        Ok(pb::Outcome::OnTime) => "on time",
        Ok(pb::Outcome::Late) => "LATE",
        Ok(pb::Outcome::InProgress) => "in progress, within its due date",
        Ok(pb::Outcome::InProgressOverdue) => "in progress, OVERDUE",
        _ => "unknown",
    }
}

/// Why the outcome is what it is, in English and in Vietnamese (the words an officer uses).
fn reason_text(code: i32) -> &'static str {
    use pb::OutcomeReason as R;
    match R::try_from(code) {
        Ok(R::NotAccepted) => "not accepted yet: the clock has not started (chưa tiếp nhận)",
        Ok(R::EndedBeforeDueDay) => "ended before the due date's working day (trước hạn)",
        Ok(R::EndedOnDueDay) => "ended on the due date's day, in time (đúng hạn)",
        Ok(R::EndedAfterDue) => "ended after the due date (quá hạn)",
        Ok(R::WaitingForSupplement) => {
            "waiting for the applicant's supplement, asked in time: judged at the request \
             (chờ bổ sung)"
        }
        Ok(R::SupplementRequestedAfterDue) => {
            "a supplement was asked after the due date had passed: late \
             (yêu cầu bổ sung sau khi quá hạn)"
        }
        Ok(R::SupplementRequestedMoreThanOnce) => {
            "asked to supplement more than once: late from the second request \
             (yêu cầu bổ sung quá một lần)"
        }
        Ok(R::WithinTime) => "not ended, within its due date (trong hạn)",
        Ok(R::PastDue) => "not ended and past its due date (quá hạn)",
        Ok(R::NoTimeLimit) => {
            "the procedure has no due date and no legal maximum (không quy định thời hạn)"
        }
        _ => "",
    }
}

/// The outcome line: final once ended; for an open dossier the outcome so far, marked as
/// provisional, with the rule that decided it.
fn outcome_line(d: &pb::Dossier) -> String {
    let reason = reason_text(d.outcome_reason);
    let because = if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    };
    if d.outcome_final {
        format!("{} (final){because}", outcome_name(d.outcome))
    } else {
        format!(
            "{}; so far {} (provisional until it ends){because}",
            outcome_name(d.outcome),
            outcome_name(d.provisional_outcome)
        )
    }
}

/// A gRPC error as the person at the terminal should read it, with each field at fault.
pub fn status_error(status: tonic::Status) -> anyhow::Error {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    if let Some(bad) = status.get_details_bad_request() {
        for violation in bad.field_violations {
            let _ = write!(text, "\n  - {}: {}", violation.field, violation.description);
        }
    }
    anyhow::anyhow!(text)
}

pub fn command_text(response: &pb::CommandResponse) -> String {
    let mut out = String::new();
    let verb = if response.replayed {
        "already recorded (replayed, nothing new appended)"
    } else {
        "recorded"
    };
    let _ = writeln!(
        out,
        "{} {verb}: dossier {} is now at version {}",
        if response.replayed { "=" } else { "✔" },
        response.dossier_id,
        response.version
    );
    for event in &response.events {
        let _ = writeln!(
            out,
            "  #{:<3} {:<22} {}",
            event.seq,
            event_name(event),
            vn(event.recorded_at.as_ref())
        );
        if let Some((label, due)) = due_of(event) {
            let _ = writeln!(out, "       {label} {due}");
        }
    }
    out
}

/// The due date an event fixes or moves (or a step's deadline), for display.
fn due_of(event: &pb::DossierEvent) -> Option<(&'static str, String)> {
    use pb::dossier_event::Payload;
    let (label, ts) = match event.payload.as_ref()? {
        Payload::Received(r) => ("due", r.due_at.as_ref()),
        Payload::OnlineAccepted(a) => ("due", a.due_at.as_ref()),
        Payload::SupplementReceived(s) => ("due now", s.due_after.as_ref()),
        Payload::ProcedureChanged(c) => ("due now", c.due_after.as_ref()),
        Payload::DueDateExtended(e) => ("new appointment", e.new_appointment_at.as_ref()),
        Payload::Forwarded(f) => ("step due", f.step_due_at.as_ref()),
        _ => ("", None),
    };
    Some((label, vn(Some(ts?))))
}

pub fn command_json(response: &pb::CommandResponse) -> String {
    json!({
        "dossier_id": response.dossier_id,
        "version": response.version,
        "replayed": response.replayed,
        "events": response.events.iter().map(event_json).collect::<Vec<_>>(),
    })
    .to_string()
}

fn event_json(event: &pb::DossierEvent) -> Value {
    json!({
        "seq": event.seq,
        "event_id": event.event_id,
        "type": event_name(event),
        "recorded_at": vn_iso(event.recorded_at.as_ref()),
        "stated_at": vn_iso(event.stated_at.as_ref()),
        "officer": event.actor.as_ref().map(|a| a.officer_id.clone()),
        "request_id": event.request_id,
    })
}

pub fn dossier_text(d: &pb::Dossier) -> String {
    let mut out = String::new();
    let procedure = d.procedure.clone().unwrap_or_default();
    let units = d.units.clone().unwrap_or_default();
    let channel = pb::Channel::try_from(d.channel)
        .map(|c| {
            c.as_str_name()
                .trim_start_matches("CHANNEL_")
                .to_lowercase()
        })
        .unwrap_or_default();
    let _ = writeln!(out, "Dossier     {}", d.dossier_id);
    let _ = writeln!(out, "Status      {}", status_name(d.status));
    let _ = writeln!(out, "Outcome     {}", outcome_line(d));
    let _ = writeln!(out, "Procedure   {} {}", procedure.code, procedure.name);
    let _ = writeln!(out, "Channel     {channel}");
    let _ = writeln!(
        out,
        "Received by {}   competent authority {}",
        units.receiving_unit, units.competent_authority
    );
    let _ = writeln!(out, "Submitted   {}", vn(d.submitted_at.as_ref()));
    let _ = writeln!(out, "Accepted    {}", vn(d.accepted_at.as_ref()));
    let _ = writeln!(
        out,
        "Due         {}{}",
        vn(d.due_at.as_ref()),
        if d.due_provisional {
            "  PROVISIONAL: runs into a year without a holiday table (weekends only)"
        } else {
            ""
        }
    );
    if d.appointment_at.is_some() {
        let _ = writeln!(
            out,
            "Appointment {} (after apology; scoring still uses the due date)",
            vn(d.appointment_at.as_ref())
        );
    }
    if !d.current_department.is_empty() {
        let _ = writeln!(
            out,
            "Step        {} until {}",
            d.current_department,
            vn(d.step_due_at.as_ref())
        );
    }
    let _ = writeln!(out, "Ended       {}", vn(d.ended_at.as_ref()));
    let _ = writeln!(out, "Supplements {}", d.supplement_requests);
    let _ = writeln!(out, "Version     {}", d.version);
    let _ = writeln!(out, "History");
    for event in &d.history {
        let officer = event
            .actor
            .as_ref()
            .map(|a| a.officer_id.as_str())
            .unwrap_or("-");
        let _ = writeln!(
            out,
            "  #{:<3} {:<22} {}  by {officer}",
            event.seq,
            event_name(event),
            vn(event.recorded_at.as_ref())
        );
    }
    out
}

pub fn dossier_json(d: &pb::Dossier) -> String {
    let procedure = d.procedure.clone().unwrap_or_default();
    let units = d.units.clone().unwrap_or_default();
    json!({
        "dossier_id": d.dossier_id,
        "status": d.status,
        "status_name": status_name(d.status),
        "outcome": outcome_name(d.outcome),
        "outcome_final": d.outcome_final,
        "provisional_outcome": outcome_name(d.provisional_outcome),
        "outcome_reason": pb::OutcomeReason::try_from(d.outcome_reason)
            .map(|r| r.as_str_name().trim_start_matches("OUTCOME_REASON_").to_lowercase())
            .unwrap_or_default(),
        "outcome_reason_text": reason_text(d.outcome_reason),
        "due_provisional": d.due_provisional,
        "procedure_code": procedure.code,
        "procedure_name": procedure.name,
        "channel": d.channel,
        "receiving_unit": units.receiving_unit,
        "competent_authority": units.competent_authority,
        "submitted_at": vn_iso(d.submitted_at.as_ref()),
        "accepted_at": vn_iso(d.accepted_at.as_ref()),
        "due_at": vn_iso(d.due_at.as_ref()),
        "appointment_at": vn_iso(d.appointment_at.as_ref()),
        "ended_at": vn_iso(d.ended_at.as_ref()),
        "supplement_requests": d.supplement_requests,
        "version": d.version,
        "history": d.history.iter().map(event_json).collect::<Vec<_>>(),
    })
    .to_string()
}

pub fn list_text(page: &pb::ListDossiersResponse) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<34} {:<26} {:<24} DUE",
        "DOSSIER", "STATUS", "PROCEDURE"
    );
    for d in &page.dossiers {
        let _ = writeln!(
            out,
            "{:<34} {:<26} {:<24} {}",
            d.dossier_id,
            status_name(d.status),
            d.procedure_code,
            vn(d.due_at.as_ref())
        );
    }
    let _ = writeln!(out, "({} dossiers)", page.dossiers.len());
    if !page.next_page_token.is_empty() {
        let _ = writeln!(out, "more: --page-token '{}'", page.next_page_token);
    }
    out
}

pub fn list_json(page: &pb::ListDossiersResponse) -> String {
    json!({
        "dossiers": page.dossiers.iter().map(|d| {
            let units = d.units.clone().unwrap_or_default();
            json!({
                "dossier_id": d.dossier_id,
                "status": d.status,
                "procedure_code": d.procedure_code,
                "receiving_unit": units.receiving_unit,
                "competent_authority": units.competent_authority,
                "due_at": vn_iso(d.due_at.as_ref()),
                "version": d.version,
            })
        }).collect::<Vec<_>>(),
        "next_page_token": page.next_page_token,
    })
    .to_string()
}
