//! Commands: what counter software asks for, already validated at the edge.

use motcua_proto::v1::{ApplicantType, Channel, DigitizationTarget, DossierStatus, PaymentMethod};

use super::DossierStatus as S;
use crate::catalog::Procedure;
use crate::due_date::ProcessingTime;
use crate::ids::AgencyId;
use crate::time::Instant;

/// What every new dossier carries.
#[derive(Debug, Clone)]
pub struct NewDossier {
    pub procedure: Procedure,
    pub receiving_unit: AgencyId,
    pub competent_authority: AgencyId,
    pub applicant_type: ApplicantType,
    pub component_count: u32,
}

/// A lifecycle command.
#[derive(Debug, Clone)]
pub enum Command {
    SubmitOnline(NewDossier),
    /// Accepted at the counter or by post (channel is `Counter` or `Postal`).
    Receive(NewDossier, Channel),
    AcceptOnline,
    Refuse {
        reason: String,
    },
    Forward {
        department: String,
        note: String,
        step_time: Option<ProcessingTime>,
    },
    RequestSupplement {
        reason: String,
    },
    ReceiveSupplement {
        note: String,
    },
    RequestFees {
        amount_vnd: u64,
        description: String,
    },
    RecordPayment {
        amount_vnd: u64,
        method: PaymentMethod,
        reference: String,
    },
    RecordDigitization {
        target: DigitizationTarget,
        document_name: String,
        reused: bool,
        file_url: String,
    },
    Resolve {
        electronic_result: bool,
        note: String,
    },
    ReturnResult {
        note: String,
    },
    Withdraw {
        reason: String,
    },
    StopProcessing {
        reason: String,
    },
    ExtendDueDate {
        new_appointment_at: Instant,
        reason: String,
    },
    ChangeProcedure {
        procedure: Procedure,
        reason: String,
    },
    /// Issued by the deadline watcher: the dossier passed `due_at` unresolved.
    MarkLate {
        due_at: Instant,
    },
    /// Issued by the deadline watcher: `due_at` is near.
    MarkDueSoon {
        due_at: Instant,
    },
}

/// Statuses in which a dossier is open and being worked on.
const OPEN: &[DossierStatus] = &[
    S::Accepted,
    S::Processing,
    S::SupplementRequested,
    S::FeesRequested,
];

impl Command {
    /// The command's name as counter developers see it in error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::SubmitOnline(_) => "submit online",
            Self::Receive(..) => "receive",
            Self::AcceptOnline => "accept online submission",
            Self::Refuse { .. } => "refuse",
            Self::Forward { .. } => "forward",
            Self::RequestSupplement { .. } => "request supplement",
            Self::ReceiveSupplement { .. } => "receive supplement",
            Self::RequestFees { .. } => "request fees",
            Self::RecordPayment { .. } => "record payment",
            Self::RecordDigitization { .. } => "record digitisation",
            Self::Resolve { .. } => "resolve",
            Self::ReturnResult { .. } => "return result",
            Self::Withdraw { .. } => "withdraw",
            Self::StopProcessing { .. } => "stop processing",
            Self::ExtendDueDate { .. } => "extend due date",
            Self::ChangeProcedure { .. } => "change procedure",
            Self::MarkLate { .. } => "mark late",
            Self::MarkDueSoon { .. } => "mark due soon",
        }
    }

    /// Whether the command creates a dossier (and so needs none to exist).
    pub fn creates_dossier(&self) -> bool {
        matches!(self, Self::SubmitOnline(_) | Self::Receive(..))
    }

    /// The statuses in which the command is legal: the lifecycle state machine in one table.
    pub fn allowed_in(&self) -> &'static [DossierStatus] {
        match self {
            Self::SubmitOnline(_) | Self::Receive(..) => &[],
            Self::AcceptOnline => &[S::SubmittedOnline],
            // Refused at reception, or closed because the supplement never came.
            Self::Refuse { .. } => &[S::SubmittedOnline, S::SupplementRequested],
            Self::Forward { .. } | Self::RequestSupplement { .. } | Self::RequestFees { .. } => {
                &[S::Accepted, S::Processing]
            }
            Self::ReceiveSupplement { .. } => &[S::SupplementRequested],
            // Fees may be paid when asked, and also up front or when the result is collected.
            Self::RecordPayment { .. } => {
                &[S::Accepted, S::Processing, S::FeesRequested, S::Resolved]
            }
            Self::RecordDigitization { target, .. } => match target {
                DigitizationTarget::Result => &[S::Processing, S::Resolved],
                _ => &[
                    S::SubmittedOnline,
                    S::Accepted,
                    S::Processing,
                    S::SupplementRequested,
                    S::FeesRequested,
                ],
            },
            Self::Resolve { .. } => &[S::Accepted, S::Processing],
            Self::ReturnResult { .. } => &[S::Resolved],
            Self::Withdraw { .. } => &[
                S::SubmittedOnline,
                S::Accepted,
                S::Processing,
                S::SupplementRequested,
                S::FeesRequested,
            ],
            Self::StopProcessing { .. } | Self::ExtendDueDate { .. } => OPEN,
            Self::ChangeProcedure { .. } => &[
                S::SubmittedOnline,
                S::Accepted,
                S::Processing,
                S::SupplementRequested,
                S::FeesRequested,
            ],
            // No `late` while the applicant supplements: the clock is not running for us.
            Self::MarkLate { .. } | Self::MarkDueSoon { .. } => {
                &[S::Accepted, S::Processing, S::FeesRequested]
            }
        }
    }
}
