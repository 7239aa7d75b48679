//! The dossier lifecycle: which command is legal in which status, what events it produces, and
//! how events fold into a dossier's current state.
//!
//! The events are the contract types of `motcua.v1` themselves: the domain folds exactly what
//! the store records and Kafka carries, so there is one vocabulary and no mapping layer that
//! could drift from it. The domain still does no I/O.

mod commands;
mod convert;
mod decide;
pub mod snapshot;
mod state;

pub use commands::{Command, NewDossier, event_allowed_in};
pub use convert::{procedure_ref, processing_time_from_proto, processing_time_to_proto};
pub use decide::{DecisionContext, DomainError, decide};
pub use state::{DossierState, FoldError, event_type_name};

pub use motcua_proto::v1::{
    ApplicantType, Channel, DigitizationTarget, DossierStatus, PaymentMethod,
    dossier_event::Payload,
};

/// Human-readable status with its portal code, for error messages: "WITHDRAWN (7)".
pub fn describe_status(status: DossierStatus) -> String {
    let name = status.as_str_name().trim_start_matches("DOSSIER_STATUS_");
    format!("{name} ({})", status as i32)
}

/// Statuses from which nothing but reading is possible.
pub fn is_terminal(status: DossierStatus) -> bool {
    matches!(
        status,
        DossierStatus::Refused
            | DossierStatus::Withdrawn
            | DossierStatus::Stopped
            | DossierStatus::ResultReturned
    )
}
