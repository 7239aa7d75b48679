//! Conversions between the domain's value types and their contract (protobuf) form.

use motcua_proto::v1 as pb;

use crate::catalog::Procedure;
use crate::due_date::{ProcessingTime, SupplementRule, TimeUnit};

pub fn processing_time_to_proto(time: ProcessingTime) -> pb::ProcessingTime {
    let unit = match time.unit {
        TimeUnit::WorkingHours => pb::TimeUnit::WorkingHours,
        TimeUnit::WorkingDays => pb::TimeUnit::WorkingDays,
        TimeUnit::CalendarDays => pb::TimeUnit::CalendarDays,
        TimeUnit::Months => pb::TimeUnit::Months,
    };
    pb::ProcessingTime {
        unit: unit as i32,
        amount_hundredths: time.amount_hundredths,
    }
}

/// `None` for an unspecified or unknown unit.
pub fn processing_time_from_proto(time: &pb::ProcessingTime) -> Option<ProcessingTime> {
    let unit = match pb::TimeUnit::try_from(time.unit).ok()? {
        pb::TimeUnit::WorkingHours => TimeUnit::WorkingHours,
        pb::TimeUnit::WorkingDays => TimeUnit::WorkingDays,
        pb::TimeUnit::CalendarDays => TimeUnit::CalendarDays,
        pb::TimeUnit::Months => TimeUnit::Months,
        pb::TimeUnit::Unspecified => return None,
    };
    Some(ProcessingTime {
        unit,
        amount_hundredths: time.amount_hundredths,
    })
}

pub(crate) fn supplement_rule_to_proto(rule: SupplementRule) -> pb::SupplementRule {
    match rule {
        SupplementRule::Pause => pb::SupplementRule::Pause,
        SupplementRule::Restart => pb::SupplementRule::Restart,
    }
}

pub(crate) fn supplement_rule_from_proto(rule: i32) -> SupplementRule {
    match pb::SupplementRule::try_from(rule) {
        Ok(pb::SupplementRule::Restart) => SupplementRule::Restart,
        _ => SupplementRule::Pause,
    }
}

/// The procedure as recorded on a dossier's events, with the time that applies to its channel.
pub fn procedure_ref(procedure: &Procedure, time: Option<ProcessingTime>) -> pb::ProcedureRef {
    pb::ProcedureRef {
        code: procedure.code.as_str().to_owned(),
        name: procedure.name.clone(),
        sector: procedure.sector.clone(),
        processing_time: time.map(processing_time_to_proto),
        supplement_rule: supplement_rule_to_proto(procedure.supplement_rule) as i32,
        fee_bearing: procedure.fee_bearing,
        calendar_days_skip_holidays: procedure.calendar_days.skip_holidays,
        calendar_days_roll_forward: procedure.calendar_days.roll_forward_to_working_day,
        legal_max: procedure.legal_max.map(processing_time_to_proto),
    }
}
