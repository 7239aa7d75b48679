//! Validation at the edge: every field of every request is checked here, and turned into a
//! domain command. All problems of a request are reported at once, each naming its field, so a
//! counter developer can fix a request in one go.

use chrono::Duration;
use motcua_domain::catalog::{Procedure, ProcedureCatalogue};
use motcua_domain::due_date::ProcessingTime;
use motcua_domain::ids::{AgencyId, DossierCode, ProcedureCode};
use motcua_domain::lifecycle::{Command, NewDossier, processing_time_from_proto};
use motcua_domain::time::{Instant, from_timestamp, to_vietnam};
use motcua_proto::v1 as pb;
use motcua_store::PersonalData;

use crate::error::{FieldViolation, IntakeError};

/// How far in the future a client-stated time may be, for clock skew between a counter
/// terminal and the server.
pub const STATED_AT_SKEW: Duration = Duration::seconds(60);
/// How far back a client-stated time may go: a counter offline for longer is a data-entry
/// problem to be looked at, not replayed silently.
pub const STATED_AT_MAX_AGE: Duration = Duration::days(31);

pub const MAX_REQUEST_ID: usize = 128;
pub const MAX_REASON: usize = 2000;
pub const MAX_NAME: usize = 200;
pub const MAX_URL: usize = 2000;
pub const MAX_COMPONENTS: u32 = 1000;
/// 10,000 working days: far beyond any real step, small enough to keep arithmetic cheap.
pub const MAX_STEP_HUNDREDTHS: u32 = 1_000_000;

/// What validation needs besides the request: the server's time and the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct ValidationContext<'a> {
    pub now: Instant,
    pub catalogue: &'a ProcedureCatalogue,
}

/// The fields every command carries, validated.
#[derive(Debug, Clone)]
pub struct Meta {
    pub request_id: String,
    pub expected_version: Option<u64>,
    pub stated_at: Option<Instant>,
    /// The trace context recorded on the events (set by the service from the call, not
    /// validated from the body; see `motcua_telemetry`).
    pub traceparent: String,
}

/// Which dossier a command is for.
#[derive(Debug, Clone)]
pub enum Target {
    /// An existing dossier.
    Existing(DossierCode),
    /// A new dossier, with the caller's code or one to allocate for the receiving unit today.
    New {
        code: Option<DossierCode>,
        receiving_unit: AgencyId,
    },
}

/// A request that passed validation.
#[derive(Debug, Clone)]
pub struct ValidCommand {
    pub meta: Meta,
    pub target: Target,
    pub command: Command,
    pub personal_data: Option<PersonalData>,
}

/// Collects violations while reading fields.
struct Fields<'a> {
    ctx: ValidationContext<'a>,
    violations: Vec<FieldViolation>,
}

impl<'a> Fields<'a> {
    fn new(ctx: ValidationContext<'a>) -> Self {
        Self {
            ctx,
            violations: Vec::new(),
        }
    }

    fn violation(&mut self, field: &str, description: impl Into<String>) {
        self.violations
            .push(FieldViolation::new(field, description));
    }

    fn meta(&mut self, meta: Option<&pb::CommandMeta>) -> Option<Meta> {
        let Some(meta) = meta else {
            self.violation("meta", "required: every command carries meta.request_id");
            return None;
        };
        let request_id = meta.request_id.trim();
        let mut ok = true;
        if request_id.is_empty() {
            self.violation("meta.request_id", "required");
            ok = false;
        } else if request_id.len() > MAX_REQUEST_ID
            || !request_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
        {
            self.violation(
                "meta.request_id",
                format!("must be 1-{MAX_REQUEST_ID} characters of A-Z a-z 0-9 . _ : -"),
            );
            ok = false;
        }
        let stated_at = self.optional_time("meta.stated_at", meta.stated_at.as_ref());
        if let Some(stated) = stated_at {
            if stated > self.ctx.now + STATED_AT_SKEW {
                self.violation(
                    "meta.stated_at",
                    format!(
                        "is in the future ({} UTC+7; the server's time is {})",
                        to_vietnam(stated).format("%Y-%m-%d %H:%M:%S"),
                        to_vietnam(self.ctx.now).format("%Y-%m-%d %H:%M:%S")
                    ),
                );
                ok = false;
            } else if stated < self.ctx.now - STATED_AT_MAX_AGE {
                self.violation(
                    "meta.stated_at",
                    format!("is more than {} days ago", STATED_AT_MAX_AGE.num_days()),
                );
                ok = false;
            }
        }
        ok.then(|| Meta {
            request_id: request_id.to_owned(),
            expected_version: meta.expected_version,
            stated_at,
            traceparent: String::new(),
        })
    }

    fn optional_time(
        &mut self,
        field: &str,
        ts: Option<&prost_types::Timestamp>,
    ) -> Option<Instant> {
        let ts = ts?;
        let time = from_timestamp(ts);
        if time.is_none() {
            self.violation(field, "is not a valid timestamp");
        }
        time
    }

    fn required_time(
        &mut self,
        field: &str,
        ts: Option<&prost_types::Timestamp>,
    ) -> Option<Instant> {
        if ts.is_none() {
            self.violation(field, "required");
            return None;
        }
        self.optional_time(field, ts)
    }

    fn dossier_id(&mut self, field: &str, value: &str) -> Option<DossierCode> {
        if value.trim().is_empty() {
            self.violation(field, "required");
            return None;
        }
        DossierCode::parse(value.trim())
            .map_err(|e| self.violation(field, e.to_string()))
            .ok()
    }

    fn agency(&mut self, field: &str, value: &str) -> Option<AgencyId> {
        AgencyId::parse(value.trim())
            .map_err(|e| self.violation(field, e.to_string()))
            .ok()
    }

    fn procedure(&mut self, field: &str, value: &str) -> Option<Procedure> {
        let code = ProcedureCode::parse(value.trim())
            .map_err(|e| self.violation(field, e.to_string()))
            .ok()?;
        let found = self.ctx.catalogue.get(&code).cloned();
        if found.is_none() {
            self.violation(
                field,
                format!(
                    "procedure {code} is not in the procedure catalogue (version {})",
                    self.ctx.catalogue.version()
                ),
            );
        }
        found
    }

    /// A free-text field: trimmed, at most `max` characters, no control characters other than
    /// line breaks.
    fn text(&mut self, field: &str, value: &str, required: bool, max: usize) -> String {
        let value = value.trim();
        if required && value.is_empty() {
            self.violation(field, "required");
        }
        let length = value.chars().count();
        if length > max {
            self.violation(
                field,
                format!("is {length} characters long; at most {max} are allowed"),
            );
        }
        if value
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            self.violation(field, "contains control characters");
        }
        value.to_owned()
    }

    /// An enum field: unknown values and UNSPECIFIED are rejected; `allowed` narrows further.
    fn enumeration<E>(&mut self, field: &str, value: i32, allowed: &[E]) -> Option<E>
    where
        E: TryFrom<i32> + Copy + PartialEq + EnumName,
    {
        match E::try_from(value) {
            Ok(e) if e.is_unspecified() => {
                self.violation(field, "required");
                None
            }
            Ok(e) if allowed.is_empty() || allowed.contains(&e) => Some(e),
            Ok(e) => {
                let names: Vec<&str> = allowed.iter().map(|a| a.name()).collect();
                self.violation(
                    field,
                    format!(
                        "{} is not allowed here; use one of {}",
                        e.name(),
                        names.join(", ")
                    ),
                );
                None
            }
            Err(_) => {
                self.violation(field, format!("unknown value {value}"));
                None
            }
        }
    }

    fn processing_time(
        &mut self,
        field: &str,
        time: Option<&pb::ProcessingTime>,
    ) -> Option<ProcessingTime> {
        let time = time?;
        let parsed = processing_time_from_proto(time);
        match parsed {
            None => self.violation(&format!("{field}.unit"), "required: a known time unit"),
            Some(t) if t.amount_hundredths == 0 || t.amount_hundredths > MAX_STEP_HUNDREDTHS => {
                self.violation(
                    &format!("{field}.amount_hundredths"),
                    format!("must be between 1 and {MAX_STEP_HUNDREDTHS}"),
                );
            }
            Some(_) => {}
        }
        parsed
    }

    fn positive_amount(&mut self, field: &str, value: u64) {
        if value == 0 {
            self.violation(field, "must be greater than 0 (Vietnamese đồng)");
        }
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, IntakeError> {
        match value {
            Some(value) if self.violations.is_empty() => Ok(value),
            _ => Err(IntakeError::Invalid(self.violations)),
        }
    }
}

/// The enums' generated names, for messages.
pub trait EnumName {
    fn name(&self) -> &'static str;
    fn is_unspecified(&self) -> bool;
}

macro_rules! enum_name {
    ($($t:ty),*) => {$(
        impl EnumName for $t {
            fn name(&self) -> &'static str {
                self.as_str_name()
            }
            fn is_unspecified(&self) -> bool {
                (*self as i32) == 0
            }
        }
    )*};
}
enum_name!(
    pb::Channel,
    pb::ApplicantType,
    pb::DigitizationTarget,
    pb::PaymentMethod,
    pb::DossierStatus
);

fn applicant(
    fields: &mut Fields<'_>,
    applicant: Option<&pb::Applicant>,
) -> Option<(pb::ApplicantType, PersonalData)> {
    let Some(applicant) = applicant else {
        fields.violation("dossier.applicant", "required");
        return None;
    };
    let kind =
        fields.enumeration::<pb::ApplicantType>("dossier.applicant.type", applicant.r#type, &[]);
    let name = fields.text("dossier.applicant.name", &applicant.name, true, MAX_NAME);
    let number = applicant.identity_number.trim();
    let person_number_ok = number.len() == 12 && number.bytes().all(|b| b.is_ascii_digit());
    let organisation_code_ok = !number.is_empty()
        && number.len() <= 32
        && number
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    match kind {
        Some(pb::ApplicantType::Person) if !person_number_ok => fields.violation(
            "dossier.applicant.identity_number",
            "a person's citizen identity number is 12 digits",
        ),
        Some(pb::ApplicantType::Person) | None => {}
        Some(_) if !organisation_code_ok => fields.violation(
            "dossier.applicant.identity_number",
            "an organisation's code is 1-32 letters, digits, dots or dashes",
        ),
        Some(_) => {}
    }
    let phone = applicant.phone.trim();
    if !phone.is_empty() {
        let digits = phone.strip_prefix('+').unwrap_or(phone);
        if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            fields.violation(
                "dossier.applicant.phone",
                "8-15 digits, optionally after a '+'",
            );
        }
    }
    kind.map(|kind| {
        (
            kind,
            PersonalData {
                applicant_name: name,
                identity_number: number.to_owned(),
                phone: phone.to_owned(),
            },
        )
    })
}

/// A new dossier's fields, shared by `SubmitOnline` and `Receive`.
fn new_dossier(
    fields: &mut Fields<'_>,
    dossier: Option<&pb::NewDossier>,
) -> Option<(Target, NewDossier, PersonalData)> {
    let Some(dossier) = dossier else {
        fields.violation("dossier", "required");
        return None;
    };
    let receiving_unit = fields.agency("dossier.receiving_unit", &dossier.receiving_unit);
    let competent_authority = if dossier.competent_authority.trim().is_empty() {
        receiving_unit.clone()
    } else {
        fields.agency("dossier.competent_authority", &dossier.competent_authority)
    };
    let procedure = fields.procedure("dossier.procedure_code", &dossier.procedure_code);
    let code = if dossier.dossier_code.trim().is_empty() {
        None
    } else {
        fields.dossier_id("dossier.dossier_code", &dossier.dossier_code)
    };
    if let (Some(code), Some(unit)) = (&code, &receiving_unit) {
        if code.agency() != unit {
            fields.violation(
                "dossier.dossier_code",
                format!("must start with the receiving unit's agency id {unit}"),
            );
        }
        if code.date() > to_vietnam(fields.ctx.now).date_naive() {
            fields.violation("dossier.dossier_code", "its date is in the future");
        }
    }
    if dossier.component_count > MAX_COMPONENTS {
        fields.violation(
            "dossier.component_count",
            format!("at most {MAX_COMPONENTS} components"),
        );
    }
    let applicant = applicant(fields, dossier.applicant.as_ref());
    let (receiving_unit, competent_authority, procedure, (applicant_type, personal)) = (
        receiving_unit?,
        competent_authority?,
        procedure?,
        applicant?,
    );
    Some((
        Target::New {
            code,
            receiving_unit: receiving_unit.clone(),
        },
        NewDossier {
            procedure,
            receiving_unit,
            competent_authority,
            applicant_type,
            component_count: dossier.component_count,
        },
        personal,
    ))
}

pub fn submit_online(
    req: &pb::SubmitOnlineRequest,
    ctx: ValidationContext<'_>,
) -> Result<ValidCommand, IntakeError> {
    let mut f = Fields::new(ctx);
    let meta = f.meta(req.meta.as_ref());
    let new = new_dossier(&mut f, req.dossier.as_ref());
    let value = match (meta, new) {
        (Some(meta), Some((target, new, personal))) => Some(ValidCommand {
            meta,
            target,
            command: Command::SubmitOnline(new),
            personal_data: Some(personal),
        }),
        _ => None,
    };
    f.finish(value)
}

pub fn receive(
    req: &pb::ReceiveRequest,
    ctx: ValidationContext<'_>,
) -> Result<ValidCommand, IntakeError> {
    let mut f = Fields::new(ctx);
    let meta = f.meta(req.meta.as_ref());
    let channel = f.enumeration(
        "channel",
        req.channel,
        &[pb::Channel::Counter, pb::Channel::Postal],
    );
    let new = new_dossier(&mut f, req.dossier.as_ref());
    let value = match (meta, new, channel) {
        (Some(meta), Some((target, new, personal)), Some(channel)) => Some(ValidCommand {
            meta,
            target,
            command: Command::Receive(new, channel),
            personal_data: Some(personal),
        }),
        _ => None,
    };
    f.finish(value)
}

/// A command on an existing dossier: meta and dossier id, then the command's own fields.
fn on_dossier(
    ctx: ValidationContext<'_>,
    meta: Option<&pb::CommandMeta>,
    dossier_id: &str,
    build: impl FnOnce(&mut Fields<'_>) -> Option<Command>,
) -> Result<ValidCommand, IntakeError> {
    let mut f = Fields::new(ctx);
    let meta = f.meta(meta);
    let id = f.dossier_id("dossier_id", dossier_id);
    let command = build(&mut f);
    let value = match (meta, id, command) {
        (Some(meta), Some(id), Some(command)) => Some(ValidCommand {
            meta,
            target: Target::Existing(id),
            command,
            personal_data: None,
        }),
        _ => None,
    };
    f.finish(value)
}

pub fn accept_online(
    req: &pb::AcceptOnlineRequest,
    ctx: ValidationContext<'_>,
) -> Result<ValidCommand, IntakeError> {
    on_dossier(ctx, req.meta.as_ref(), &req.dossier_id, |_| {
        Some(Command::AcceptOnline)
    })
}

pub fn refuse(
    req: &pb::RefuseRequest,
    ctx: ValidationContext<'_>,
) -> Result<ValidCommand, IntakeError> {
    on_dossier(ctx, req.meta.as_ref(), &req.dossier_id, |f| {
        let reason = f.text("reason", &req.reason, true, MAX_REASON);
        Some(Command::Refuse { reason })
    })
}

pub fn forward(
    req: &pb::ForwardRequest,
    ctx: ValidationContext<'_>,
) -> Result<ValidCommand, IntakeError> {
    on_dossier(ctx, req.meta.as_ref(), &req.dossier_id, |f| {
        let department = f.text("department", &req.department, true, MAX_NAME);
        let note = f.text("note", &req.note, false, MAX_REASON);
        let step_time = f.processing_time("step_time", req.step_time.as_ref());
        Some(Command::Forward {
            department,
            note,
            step_time,
        })
    })
}

pub fn request_supplement(
    req: &pb::RequestSupplementRequest,
    ctx: ValidationContext<'_>,
) -> Result<ValidCommand, IntakeError> {
    on_dossier(ctx, req.meta.as_ref(), &req.dossier_id, |f| {
        let reason = f.text("reason", &req.reason, true, MAX_REASON);
        Some(Command::RequestSupplement { reason })
    })
}

pub fn receive_supplement(
    req: &pb::ReceiveSupplementRequest,
    ctx: ValidationContext<'_>,
) -> Result<ValidCommand, IntakeError> {
    on_dossier(ctx, req.meta.as_ref(), &req.dossier_id, |f| {
        let note = f.text("note", &req.note, false, MAX_REASON);
        Some(Command::ReceiveSupplement { note })
    })
}

pub fn request_fees(
    req: &pb::RequestFeesRequest,
    ctx: ValidationContext<'_>,
) -> Result<ValidCommand, IntakeError> {
    on_dossier(ctx, req.meta.as_ref(), &req.dossier_id, |f| {
        f.positive_amount("amount_vnd", req.amount_vnd);
        let description = f.text("description", &req.description, false, MAX_REASON);
        Some(Command::RequestFees {
            amount_vnd: req.amount_vnd,
            description,
        })
    })
}

pub fn record_payment(
    req: &pb::RecordPaymentRequest,
    ctx: ValidationContext<'_>,
) -> Result<ValidCommand, IntakeError> {
    on_dossier(ctx, req.meta.as_ref(), &req.dossier_id, |f| {
        f.positive_amount("amount_vnd", req.amount_vnd);
        let method = f.enumeration::<pb::PaymentMethod>("method", req.method, &[]);
        let reference = f.text("reference", &req.reference, false, MAX_NAME);
        Some(Command::RecordPayment {
            amount_vnd: req.amount_vnd,
            method: method?,
            reference,
        })
    })
}

pub fn record_digitization(
    req: &pb::RecordDigitizationRequest,
    ctx: ValidationContext<'_>,
) -> Result<ValidCommand, IntakeError> {
    on_dossier(ctx, req.meta.as_ref(), &req.dossier_id, |f| {
        let target = f.enumeration::<pb::DigitizationTarget>("target", req.target, &[]);
        let document_name = f.text("document_name", &req.document_name, true, MAX_NAME);
        let file_url = f.text("file_url", &req.file_url, false, MAX_URL);
        Some(Command::RecordDigitization {
            target: target?,
            document_name,
            reused: req.reused,
            file_url,
        })
    })
}

pub fn resolve(
    req: &pb::ResolveRequest,
    ctx: ValidationContext<'_>,
) -> Result<ValidCommand, IntakeError> {
    on_dossier(ctx, req.meta.as_ref(), &req.dossier_id, |f| {
        let note = f.text("note", &req.note, false, MAX_REASON);
        Some(Command::Resolve {
            electronic_result: req.electronic_result,
            note,
        })
    })
}

pub fn return_result(
    req: &pb::ReturnResultRequest,
    ctx: ValidationContext<'_>,
) -> Result<ValidCommand, IntakeError> {
    on_dossier(ctx, req.meta.as_ref(), &req.dossier_id, |f| {
        let note = f.text("note", &req.note, false, MAX_REASON);
        Some(Command::ReturnResult { note })
    })
}

pub fn withdraw(
    req: &pb::WithdrawRequest,
    ctx: ValidationContext<'_>,
) -> Result<ValidCommand, IntakeError> {
    on_dossier(ctx, req.meta.as_ref(), &req.dossier_id, |f| {
        let reason = f.text("reason", &req.reason, true, MAX_REASON);
        Some(Command::Withdraw { reason })
    })
}

pub fn stop_processing(
    req: &pb::StopProcessingRequest,
    ctx: ValidationContext<'_>,
) -> Result<ValidCommand, IntakeError> {
    on_dossier(ctx, req.meta.as_ref(), &req.dossier_id, |f| {
        let reason = f.text("reason", &req.reason, true, MAX_REASON);
        Some(Command::StopProcessing { reason })
    })
}

pub fn extend_due_date(
    req: &pb::ExtendDueDateRequest,
    ctx: ValidationContext<'_>,
) -> Result<ValidCommand, IntakeError> {
    on_dossier(ctx, req.meta.as_ref(), &req.dossier_id, |f| {
        let reason = f.text("reason", &req.reason, true, MAX_REASON);
        let at = f.required_time("new_appointment_at", req.new_appointment_at.as_ref());
        if let Some(at) = at
            && at > f.ctx.now + Duration::days(3 * 366)
        {
            f.violation("new_appointment_at", "is more than three years away");
        }
        Some(Command::ExtendDueDate {
            new_appointment_at: at?,
            reason,
        })
    })
}

pub fn change_procedure(
    req: &pb::ChangeProcedureRequest,
    ctx: ValidationContext<'_>,
) -> Result<ValidCommand, IntakeError> {
    on_dossier(ctx, req.meta.as_ref(), &req.dossier_id, |f| {
        let reason = f.text("reason", &req.reason, true, MAX_REASON);
        let procedure = f.procedure("procedure_code", &req.procedure_code);
        Some(Command::ChangeProcedure {
            procedure: procedure?,
            reason,
        })
    })
}

/// Validates a query's dossier id.
pub fn dossier_id_only(value: &str) -> Result<DossierCode, IntakeError> {
    DossierCode::parse(value.trim()).map_err(|e| {
        IntakeError::Invalid(vec![FieldViolation::new(
            "dossier_id",
            if value.trim().is_empty() {
                "required".to_owned()
            } else {
                e.to_string()
            },
        )])
    })
}

/// Checks a list query; returns the statuses and page size.
pub fn list_request(req: &pb::ListDossiersRequest) -> Result<(Vec<i32>, u32), IntakeError> {
    let mut violations = Vec::new();
    for (field, value) in [
        ("receiving_unit", &req.receiving_unit),
        ("competent_authority", &req.competent_authority),
    ] {
        if !value.trim().is_empty()
            && let Err(e) = AgencyId::parse(value.trim())
        {
            violations.push(FieldViolation::new(field, e.to_string()));
        }
    }
    let mut statuses = Vec::new();
    for (i, status) in req.statuses.iter().enumerate() {
        match pb::DossierStatus::try_from(*status) {
            Ok(pb::DossierStatus::Unspecified) | Err(_) => violations.push(FieldViolation::new(
                format!("statuses[{i}]"),
                format!("unknown status {status}; use the portal codes 1-10"),
            )),
            Ok(s) => statuses.push(s as i32),
        }
    }
    let page_size = match req.page_size {
        0 => 50,
        n @ 1..=500 => n,
        n => {
            violations.push(FieldViolation::new(
                "page_size",
                format!("{n} is more than 500"),
            ));
            0
        }
    };
    if violations.is_empty() {
        Ok((statuses, page_size))
    } else {
        Err(IntakeError::Invalid(violations))
    }
}
