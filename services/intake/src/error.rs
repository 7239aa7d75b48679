//! Every way a call can fail, and the one place each becomes a gRPC status.

use motcua_domain::lifecycle::{DomainError, FoldError};
use motcua_store::StoreError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// A field at fault: its path in the request (`dossier.procedure_code`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// One or more fields are missing or malformed.
    #[error("invalid request: {}", describe(.0))]
    Invalid(Vec<FieldViolation>),
    /// The rules refused the command.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The client's expected version is stale.
    #[error("dossier {dossier_id} is at version {actual}, not {expected}: read it again and retry")]
    VersionConflict {
        dossier_id: String,
        expected: u64,
        actual: u64,
    },
    /// The request id was used for a different command.
    #[error("request id {0} was already used for a different command; use a new request id")]
    RequestIdReused(String),
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but may not do this (role or agency).
    #[error("{0}")]
    PermissionDenied(String),
    /// The store cannot be reached. The command may or may not have been recorded (a commit
    /// whose acknowledgement was lost), so the answer never claims either: a retry with the
    /// same request id is safe and tells which.
    #[error(
        "the event store is unavailable; the command may not have been recorded: retry with the same request_id: {0}"
    )]
    Unavailable(String),
    /// Something that should not happen: corrupt data, a bug.
    #[error("internal error: {0}")]
    Internal(String),
}

fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<StoreError> for IntakeError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::VersionConflict {
                dossier_id,
                expected,
                actual,
            } => Self::VersionConflict {
                dossier_id,
                expected,
                actual,
            },
            StoreError::RequestIdReused { request_id } => Self::RequestIdReused(request_id),
            StoreError::Unavailable(message) => Self::Unavailable(message),
            other @ (StoreError::SequenceExhausted { .. }
            | StoreError::Corrupt(_)
            | StoreError::Database(_)) => Self::Internal(other.to_string()),
        }
    }
}

impl From<FoldError> for IntakeError {
    fn from(error: FoldError) -> Self {
        Self::Internal(error.to_string())
    }
}

impl From<IntakeError> for Status {
    fn from(error: IntakeError) -> Self {
        let message = error.to_string();
        match error {
            IntakeError::Invalid(violations) => bad_request(message, &violations),
            IntakeError::Domain(domain) => match domain {
                DomainError::IllegalTransition { .. } | DomainError::Precondition { .. } => {
                    Status::failed_precondition(message)
                }
                DomainError::NotFound(_) => Status::not_found(message),
                DomainError::AlreadyExists(_) => Status::already_exists(message),
                DomainError::InvalidField {
                    field,
                    message: text,
                } => bad_request(message, &[FieldViolation::new(field, text)]),
            },
            IntakeError::VersionConflict { .. } => Status::aborted(message),
            IntakeError::RequestIdReused(_) => bad_request(
                message,
                &[FieldViolation::new(
                    "meta.request_id",
                    "already used for a different command",
                )],
            ),
            IntakeError::Unauthenticated(_) => Status::unauthenticated(message),
            IntakeError::PermissionDenied(_) => Status::permission_denied(message),
            IntakeError::Unavailable(_) => Status::unavailable(message),
            IntakeError::Internal(_) => {
                tracing::error!(error = %message, "internal error");
                Status::internal(message)
            }
        }
    }
}

fn bad_request(message: String, violations: &[FieldViolation]) -> Status {
    let mut details = ErrorDetails::new();
    for violation in violations {
        details.add_bad_request_violation(violation.field.clone(), violation.description.clone());
    }
    Status::with_error_details(Code::InvalidArgument, message, details)
}
