//! Commands: what counter software asks for, already validated at the edge.

use motcua_proto::v1::{
    ApplicantType, Channel, DigitizationTarget, DossierStatus, PaymentMethod,
    dossier_event::Payload,
};

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
        let kind = match self {
            Self::SubmitOnline(_) | Self::Receive(..) => Kind::Create,
            Self::AcceptOnline => Kind::AcceptOnline,
            Self::Refuse { .. } => Kind::Refuse,
            Self::Forward { .. } => Kind::Forward,
            Self::RequestSupplement { .. } => Kind::RequestSupplement,
            Self::RequestFees { .. } => Kind::RequestFees,
            Self::ReceiveSupplement { .. } => Kind::ReceiveSupplement,
            Self::RecordPayment { .. } => Kind::RecordPayment,
            Self::RecordDigitization { target, .. } => Kind::Digitize(*target),
            Self::Resolve { .. } => Kind::Resolve,
            Self::ReturnResult { .. } => Kind::ReturnResult,
            Self::Withdraw { .. } => Kind::Withdraw,
            Self::StopProcessing { .. } => Kind::Stop,
            Self::ExtendDueDate { .. } => Kind::ExtendDueDate,
            Self::ChangeProcedure { .. } => Kind::ChangeProcedure,
            Self::MarkLate { .. } => Kind::MarkLate,
            Self::MarkDueSoon { .. } => Kind::MarkDueSoon,
        };
        kind.allowed_in()
    }
}

/// The statuses in which an event of this kind can follow: [`Command::allowed_in`] of the
/// command that produces it. `None` for the creation events (`online`, `received`), which need
/// no dossier. Readers of the feed use it to tell an impossible history (an event the intake
/// could never have written after the previous ones) from a normal one.
pub fn event_allowed_in(payload: &Payload) -> Option<&'static [DossierStatus]> {
    let kind = match payload {
        Payload::Online(_) | Payload::Received(_) => return None,
        Payload::OnlineAccepted(_) => Kind::AcceptOnline,
        Payload::Refused(_) => Kind::Refuse,
        Payload::Forwarded(_) => Kind::Forward,
        Payload::SupplementRequested(_) => Kind::RequestSupplement,
        Payload::SupplementReceived(_) => Kind::ReceiveSupplement,
        Payload::FeesRequested(_) => Kind::RequestFees,
        Payload::PaymentRecorded(_) => Kind::RecordPayment,
        Payload::Digitized(digitized) => Kind::Digitize(digitized.target()),
        Payload::Resolved(_) => Kind::Resolve,
        Payload::ResultReturned(_) => Kind::ReturnResult,
        Payload::Withdrawn(_) => Kind::Withdraw,
        Payload::Stopped(_) => Kind::Stop,
        Payload::DueDateExtended(_) => Kind::ExtendDueDate,
        Payload::ProcedureChanged(_) => Kind::ChangeProcedure,
        Payload::Late(_) => Kind::MarkLate,
        Payload::DueSoon(_) => Kind::MarkDueSoon,
    };
    Some(kind.allowed_in())
}

/// A command and the event it produces share one kind, so the lifecycle table is written once
/// for both.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Create,
    AcceptOnline,
    Refuse,
    Forward,
    RequestSupplement,
    RequestFees,
    ReceiveSupplement,
    RecordPayment,
    Digitize(DigitizationTarget),
    Resolve,
    ReturnResult,
    Withdraw,
    Stop,
    ExtendDueDate,
    ChangeProcedure,
    MarkLate,
    MarkDueSoon,
}

impl Kind {
    /// The lifecycle state machine in one table.
    fn allowed_in(self) -> &'static [DossierStatus] {
        match self {
            Self::Create => &[],
            Self::AcceptOnline => &[S::SubmittedOnline],
            // Refused at reception, or closed because the supplement never came.
            Self::Refuse => &[S::SubmittedOnline, S::SupplementRequested],
            Self::Forward | Self::RequestSupplement | Self::RequestFees => {
                &[S::Accepted, S::Processing]
            }
            Self::ReceiveSupplement => &[S::SupplementRequested],
            // Fees may be paid when asked, and also up front or when the result is collected.
            Self::RecordPayment => &[S::Accepted, S::Processing, S::FeesRequested, S::Resolved],
            Self::Digitize(DigitizationTarget::Result) => &[S::Processing, S::Resolved],
            Self::Digitize(_) => &[
                S::SubmittedOnline,
                S::Accepted,
                S::Processing,
                S::SupplementRequested,
                S::FeesRequested,
            ],
            Self::Resolve => &[S::Accepted, S::Processing],
            Self::ReturnResult => &[S::Resolved],
            Self::Withdraw => &[
                S::SubmittedOnline,
                S::Accepted,
                S::Processing,
                S::SupplementRequested,
                S::FeesRequested,
            ],
            Self::Stop | Self::ExtendDueDate => OPEN,
            Self::ChangeProcedure => &[
                S::SubmittedOnline,
                S::Accepted,
                S::Processing,
                S::SupplementRequested,
                S::FeesRequested,
            ],
            // No `late` while the applicant supplements: the clock is not running for us.
            Self::MarkLate | Self::MarkDueSoon => &[S::Accepted, S::Processing, S::FeesRequested],
        }
    }
}
