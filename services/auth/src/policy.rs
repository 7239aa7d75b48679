//! The authorization policy: role and agency. One table, so it can be read and tested whole.
//!
//! | role | create | counter steps | processing steps | read / list dossiers | reports |
//! |---|---|---|---|---|---|
//! | admin | any unit | any | any | any | any scope |
//! | unit_admin | its units | its units' dossiers | its units' dossiers | its units | its units |
//! | counter_officer | its units | received by its units | - | its units | its units |
//! | processing_officer | - | - | assigned to its units | its units | its units |
//! | monitor | - | - | - | - | any scope (aggregates, no personal data) |
//! | system | - | - | - | any | any scope |
//!
//! "Its units' dossiers" means the dossier's receiving unit or competent authority is one of
//! the principal's units; counter steps look at the receiving unit, processing steps at the
//! competent authority.

use crate::principal::{Principal, Role};

/// Why a call was refused; the message names no personal data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

/// Which steps a command is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Recorded at the one-stop counter (reception, supplements received, payment, result
    /// returned, withdrawal, refusal, online acceptance).
    Counter,
    /// Recorded by the competent authority's departments (forward, fees, resolve, stop).
    Processing,
    /// Either side (supplement requests, digitisation, due-date extensions, procedure
    /// changes: the counter corrects a procedure chosen at reception, the department
    /// reclassifies one it processes).
    Either,
}

/// The scope of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportScope<'a> {
    Province,
    Unit(&'a str),
    Procedure(&'a str),
}

fn deny(p: &Principal, what: &str) -> Denied {
    Denied(format!(
        "{} '{}' may not {what}",
        p.role.as_str(),
        p.subject
    ))
}

/// Creating a dossier received by `receiving_unit`.
pub fn may_create(p: &Principal, receiving_unit: &str) -> Result<(), Denied> {
    match p.role {
        Role::Admin => Ok(()),
        Role::UnitAdmin | Role::CounterOfficer if p.acts_for(receiving_unit) => Ok(()),
        _ => Err(deny(
            p,
            &format!("receive dossiers for unit {receiving_unit}"),
        )),
    }
}

/// A `step` on a dossier received by `receiving` and decided by `competent`.
pub fn may_step(p: &Principal, step: Step, receiving: &str, competent: &str) -> Result<(), Denied> {
    let counter = p.acts_for(receiving);
    let processing = p.acts_for(competent);
    let allowed = match (p.role, step) {
        (Role::Admin, _) => true,
        (Role::UnitAdmin, _) => counter || processing,
        (Role::CounterOfficer, Step::Counter | Step::Either) => counter,
        (Role::ProcessingOfficer, Step::Processing | Step::Either) => processing,
        _ => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(deny(
            p,
            &format!("record this step on a dossier of units {receiving} / {competent}"),
        ))
    }
}

/// Reading a dossier (it carries the applicant's personal data).
pub fn may_read_dossier(p: &Principal, receiving: &str, competent: &str) -> Result<(), Denied> {
    match p.role {
        Role::Admin | Role::System => Ok(()),
        Role::UnitAdmin | Role::CounterOfficer | Role::ProcessingOfficer
            if p.acts_for(receiving) || p.acts_for(competent) =>
        {
            Ok(())
        }
        _ => Err(deny(p, "read this dossier")),
    }
}

/// Listing dossiers filtered by `receiving` and/or `competent`: a unit-bound principal must
/// name one of its units.
pub fn may_list(
    p: &Principal,
    receiving: Option<&str>,
    competent: Option<&str>,
) -> Result<(), Denied> {
    match p.role {
        Role::Admin | Role::System => Ok(()),
        Role::UnitAdmin | Role::CounterOfficer | Role::ProcessingOfficer
            if receiving.is_some_and(|u| p.acts_for(u))
                || competent.is_some_and(|u| p.acts_for(u)) =>
        {
            Ok(())
        }
        Role::UnitAdmin | Role::CounterOfficer | Role::ProcessingOfficer => Err(Denied(format!(
            "{} '{}' may list only its own units' dossiers: filter by receiving_unit or \
             competent_authority in {:?}",
            p.role.as_str(),
            p.subject,
            p.units
        ))),
        Role::Monitor => Err(deny(p, "list dossiers (monitors see aggregates only)")),
    }
}

/// A report (rates, scores, overdue list) for `scope`.
pub fn may_report(p: &Principal, scope: ReportScope<'_>) -> Result<(), Denied> {
    match (p.role, scope) {
        (Role::Admin | Role::Monitor | Role::System, _) => Ok(()),
        (
            Role::UnitAdmin | Role::CounterOfficer | Role::ProcessingOfficer,
            ReportScope::Unit(unit),
        ) if p.acts_for(unit) => Ok(()),
        _ => Err(deny(p, "read reports beyond its own units")),
    }
}

/// The anomalies list (events that could not be applied): administrators and monitors.
pub fn may_read_anomalies(p: &Principal) -> Result<(), Denied> {
    match p.role {
        Role::Admin | Role::Monitor | Role::System => Ok(()),
        _ => Err(deny(p, "read the projector's anomalies")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(role: Role, units: &[&str]) -> Principal {
        Principal {
            subject: "x".into(),
            role,
            units: units.iter().map(|u| (*u).to_owned()).collect(),
            via: "token",
        }
    }

    #[test]
    fn the_table_holds() {
        let a = "000.00.01.H22";
        let b = "H44.100";
        let counter = p(Role::CounterOfficer, &[a]);
        assert!(may_create(&counter, a).is_ok());
        assert!(may_create(&counter, b).is_err());
        assert!(may_step(&counter, Step::Counter, a, b).is_ok());
        assert!(may_step(&counter, Step::Processing, a, a).is_err());
        assert!(may_step(&counter, Step::Counter, b, a).is_err());
        let processing = p(Role::ProcessingOfficer, &[b]);
        assert!(may_create(&processing, b).is_err());
        assert!(may_step(&processing, Step::Processing, a, b).is_ok());
        assert!(may_step(&processing, Step::Either, a, b).is_ok());
        assert!(may_step(&processing, Step::Counter, a, b).is_err());
        let monitor = p(Role::Monitor, &[]);
        assert!(may_read_dossier(&monitor, a, a).is_err());
        assert!(may_list(&monitor, Some(a), None).is_err());
        assert!(may_report(&monitor, ReportScope::Province).is_ok());
        assert!(may_report(&counter, ReportScope::Province).is_err());
        assert!(may_report(&counter, ReportScope::Unit(a)).is_ok());
        assert!(may_report(&counter, ReportScope::Unit(b)).is_err());
        assert!(may_list(&counter, None, None).is_err());
        assert!(may_list(&counter, Some(a), None).is_ok());
        let admin = p(Role::Admin, &[]);
        assert!(may_step(&admin, Step::Processing, a, b).is_ok());
        let system = p(Role::System, &[]);
        assert!(may_create(&system, a).is_err());
        assert!(may_step(&system, Step::Counter, a, a).is_err());
    }
}
