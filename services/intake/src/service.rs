//! The tonic `DossierService`: each RPC validates, executes and answers. Nothing is logged
//! from a request body, since it may carry personal data.

use std::time::Instant as StdInstant;

use motcua_domain::lifecycle::DossierState;
use motcua_proto::v1::{self as pb, dossier_service_server::DossierService};
use motcua_store::{ListFilter, PageKey};
use prost::Message;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use motcua_auth::policy::{self, Step};
use motcua_auth::{Authenticator, Principal};
use motcua_domain::lifecycle::Command;

use crate::error::{FieldViolation, IntakeError};
use crate::handler::{CommandHandler, Executed};
use crate::validate::{self, ValidCommand, ValidationContext};
use crate::view;

/// The gRPC service over a [`CommandHandler`].
#[derive(Debug, Clone)]
pub struct IntakeService {
    handler: CommandHandler,
    auth: Authenticator,
}

/// Which side of the one-stop process records a command (see `motcua_auth::policy`).
fn step_of(command: &Command) -> Step {
    match command {
        Command::AcceptOnline
        | Command::Refuse { .. }
        | Command::ReceiveSupplement { .. }
        | Command::RecordPayment { .. }
        | Command::ReturnResult { .. }
        | Command::Withdraw { .. }
        | Command::SubmitOnline(_)
        | Command::Receive(..) => Step::Counter,
        Command::Forward { .. }
        | Command::RequestFees { .. }
        | Command::Resolve { .. }
        | Command::StopProcessing { .. }
        | Command::MarkLate { .. }
        | Command::MarkDueSoon { .. } => Step::Processing,
        Command::RequestSupplement { .. }
        | Command::RecordDigitization { .. }
        | Command::ExtendDueDate { .. }
        | Command::ChangeProcedure { .. } => Step::Either,
    }
}

impl IntakeService {
    /// The service with callers identified by their own metadata
    /// ([`Authenticator::trusted_metadata`]): for tests and local development. The binary
    /// always passes a verifying authenticator ([`IntakeService::with_auth`]).
    pub fn new(handler: CommandHandler) -> Self {
        Self {
            handler,
            auth: Authenticator::trusted_metadata(),
        }
    }

    /// The service with `auth` establishing every caller.
    pub fn with_auth(handler: CommandHandler, auth: Authenticator) -> Self {
        Self { handler, auth }
    }

    /// Maps an error, logging and counting a policy denial.
    fn status(&self, rpc: &str, principal: &Principal, error: IntakeError) -> Status {
        match error {
            IntakeError::PermissionDenied(message) => self.auth.denied(rpc, principal, &message),
            other => other.into(),
        }
    }

    /// The common path of every command RPC.
    async fn command<R: Message>(
        &self,
        rpc: &'static str,
        request: Request<R>,
        validate: impl FnOnce(&R, ValidationContext<'_>) -> Result<ValidCommand, IntakeError>,
    ) -> Result<Response<pb::CommandResponse>, Status> {
        let started = StdInstant::now();
        // The call's span continues the caller's trace; its context goes on the events.
        let incoming = motcua_telemetry::from_metadata(request.metadata());
        let span = tracing::info_span!("command", rpc, trace_id = tracing::field::Empty);
        let trace = motcua_telemetry::context_of(&span, incoming.as_ref());
        span.record("trace_id", trace.trace_id_hex());
        async move {
            let principal = self.auth.authenticate(rpc, &request).await?;
            let result = self
                .run_command(rpc, &principal, request, validate, trace.to_string())
                .await;
            self.answer(rpc, &principal, result, started)
        }
        .instrument(span)
        .await
    }

    /// Logs the outcome of a command and maps it to the answer.
    fn answer(
        &self,
        rpc: &'static str,
        principal: &Principal,
        result: Result<Executed, IntakeError>,
        started: StdInstant,
    ) -> Result<Response<pb::CommandResponse>, Status> {
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        match &result {
            Ok(done) => tracing::debug!(
                rpc,
                dossier = %done.dossier_id,
                version = done.version,
                replayed = done.replayed,
                elapsed_ms,
                "command recorded"
            ),
            Err(error) => tracing::info!(rpc, error = %error, elapsed_ms, "command refused"),
        }
        let done = result.map_err(|error| self.status(rpc, principal, error))?;
        Ok(Response::new(pb::CommandResponse {
            dossier_id: done.dossier_id,
            version: done.version,
            events: done.events,
            replayed: done.replayed,
        }))
    }

    async fn run_command<R: Message>(
        &self,
        rpc: &'static str,
        principal: &Principal,
        request: Request<R>,
        validate: impl FnOnce(&R, ValidationContext<'_>) -> Result<ValidCommand, IntakeError>,
        traceparent: String,
    ) -> Result<Executed, IntakeError> {
        // The actor recorded is the authenticated principal, never a value the client sends.
        let actor = principal.actor();
        let body = request.into_inner();
        let ctx = ValidationContext {
            now: self.handler.now(),
            catalogue: self.handler.catalogue(),
        };
        let mut command = validate(&body, ctx)?;
        command.meta.traceparent = traceparent;
        // Same request id, same content: the same command. The content includes the RPC
        // (several commands encode to the same bytes) and the caller, so one officer's request
        // id cannot replay another's command.
        let mut digest = Sha256::new();
        digest.update(rpc.as_bytes());
        digest.update([0]);
        digest.update(body.encode_to_vec());
        digest.update(actor.officer_id.as_bytes());
        let fingerprint = digest.finalize().to_vec();
        let step = step_of(&command.command);
        let receiving_unit = match &command.target {
            validate::Target::New { receiving_unit, .. } => {
                Some(receiving_unit.as_str().to_owned())
            }
            validate::Target::Existing(_) => None,
        };
        let permit = move |state: Option<&DossierState>| -> Result<(), String> {
            match (state, &receiving_unit) {
                (Some(state), _) => policy::may_step(
                    principal,
                    step,
                    &state.units.receiving_unit,
                    &state.units.competent_authority,
                ),
                (None, Some(unit)) => policy::may_create(principal, unit),
                // No such dossier: the rules answer NOT_FOUND.
                (None, None) => Ok(()),
            }
            .map_err(|denied| denied.0)
        };
        self.handler
            .execute_checked(command, actor, fingerprint, &permit)
            .await
    }
}

/// The page token of a list: opaque to clients, a position in the list's order to us.
fn page_token(key: &PageKey) -> String {
    match key {
        PageKey::Dossier(id) => format!("d|{id}"),
        PageKey::Due(due, id) => format!("o|{}|{id}", due.timestamp_micros()),
    }
}

fn parse_page_token(token: &str) -> Result<Option<PageKey>, IntakeError> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || {
        IntakeError::Invalid(vec![FieldViolation::new(
            "page_token",
            "is not a token this server issued",
        )])
    };
    let mut parts = token.splitn(3, '|');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("d"), Some(id), None) => Ok(Some(PageKey::Dossier(id.to_owned()))),
        (Some("o"), Some(micros), Some(id)) => {
            let micros: i64 = micros.parse().map_err(|_| invalid())?;
            let due = chrono::DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?;
            Ok(Some(PageKey::Due(due, id.to_owned())))
        }
        _ => Err(invalid()),
    }
}

#[tonic::async_trait]
impl DossierService for IntakeService {
    async fn submit_online(
        &self,
        r: Request<pb::SubmitOnlineRequest>,
    ) -> Result<Response<pb::CommandResponse>, Status> {
        self.command("SubmitOnline", r, validate::submit_online)
            .await
    }

    async fn receive(
        &self,
        r: Request<pb::ReceiveRequest>,
    ) -> Result<Response<pb::CommandResponse>, Status> {
        self.command("Receive", r, validate::receive).await
    }

    async fn accept_online(
        &self,
        r: Request<pb::AcceptOnlineRequest>,
    ) -> Result<Response<pb::CommandResponse>, Status> {
        self.command("AcceptOnline", r, validate::accept_online)
            .await
    }

    async fn refuse(
        &self,
        r: Request<pb::RefuseRequest>,
    ) -> Result<Response<pb::CommandResponse>, Status> {
        self.command("Refuse", r, validate::refuse).await
    }

    async fn forward(
        &self,
        r: Request<pb::ForwardRequest>,
    ) -> Result<Response<pb::CommandResponse>, Status> {
        self.command("Forward", r, validate::forward).await
    }

    async fn request_supplement(
        &self,
        r: Request<pb::RequestSupplementRequest>,
    ) -> Result<Response<pb::CommandResponse>, Status> {
        self.command("RequestSupplement", r, validate::request_supplement)
            .await
    }

    async fn receive_supplement(
        &self,
        r: Request<pb::ReceiveSupplementRequest>,
    ) -> Result<Response<pb::CommandResponse>, Status> {
        self.command("ReceiveSupplement", r, validate::receive_supplement)
            .await
    }

    async fn request_fees(
        &self,
        r: Request<pb::RequestFeesRequest>,
    ) -> Result<Response<pb::CommandResponse>, Status> {
        self.command("RequestFees", r, validate::request_fees).await
    }

    async fn record_payment(
        &self,
        r: Request<pb::RecordPaymentRequest>,
    ) -> Result<Response<pb::CommandResponse>, Status> {
        self.command("RecordPayment", r, validate::record_payment)
            .await
    }

    async fn record_digitization(
        &self,
        r: Request<pb::RecordDigitizationRequest>,
    ) -> Result<Response<pb::CommandResponse>, Status> {
        self.command("RecordDigitization", r, validate::record_digitization)
            .await
    }

    async fn resolve(
        &self,
        r: Request<pb::ResolveRequest>,
    ) -> Result<Response<pb::CommandResponse>, Status> {
        self.command("Resolve", r, validate::resolve).await
    }

    async fn return_result(
        &self,
        r: Request<pb::ReturnResultRequest>,
    ) -> Result<Response<pb::CommandResponse>, Status> {
        self.command("ReturnResult", r, validate::return_result)
            .await
    }

    async fn withdraw(
        &self,
        r: Request<pb::WithdrawRequest>,
    ) -> Result<Response<pb::CommandResponse>, Status> {
        self.command("Withdraw", r, validate::withdraw).await
    }

    async fn stop_processing(
        &self,
        r: Request<pb::StopProcessingRequest>,
    ) -> Result<Response<pb::CommandResponse>, Status> {
        self.command("StopProcessing", r, validate::stop_processing)
            .await
    }

    async fn extend_due_date(
        &self,
        r: Request<pb::ExtendDueDateRequest>,
    ) -> Result<Response<pb::CommandResponse>, Status> {
        self.command("ExtendDueDate", r, validate::extend_due_date)
            .await
    }

    async fn change_procedure(
        &self,
        r: Request<pb::ChangeProcedureRequest>,
    ) -> Result<Response<pb::CommandResponse>, Status> {
        self.command("ChangeProcedure", r, validate::change_procedure)
            .await
    }

    async fn get_dossier(
        &self,
        r: Request<pb::GetDossierRequest>,
    ) -> Result<Response<pb::Dossier>, Status> {
        let principal = self.auth.authenticate("GetDossier", &r).await?;
        let id = validate::dossier_id_only(&r.get_ref().dossier_id)?;
        let history = self.handler.history(id.as_str()).await?;
        let state = DossierState::fold(&history)
            .map_err(IntakeError::from)?
            .ok_or_else(|| {
                IntakeError::Domain(motcua_domain::lifecycle::DomainError::NotFound(
                    id.to_string(),
                ))
            })?;
        policy::may_read_dossier(
            &principal,
            &state.units.receiving_unit,
            &state.units.competent_authority,
        )
        .map_err(|denied| self.auth.denied("GetDossier", &principal, &denied.0))?;
        Ok(Response::new(view::dossier(
            &state,
            history,
            self.handler.calendar(),
            self.handler.now(),
        )))
    }

    async fn list_dossiers(
        &self,
        r: Request<pb::ListDossiersRequest>,
    ) -> Result<Response<pb::ListDossiersResponse>, Status> {
        let principal = self.auth.authenticate("ListDossiers", &r).await?;
        let req = r.into_inner();
        let (statuses, page_size) = validate::list_request(&req)?;
        let non_empty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        policy::may_list(
            &principal,
            non_empty(&req.receiving_unit).as_deref(),
            non_empty(&req.competent_authority).as_deref(),
        )
        .map_err(|denied| self.auth.denied("ListDossiers", &principal, &denied.0))?;
        let filter = ListFilter {
            receiving_unit: non_empty(&req.receiving_unit),
            competent_authority: non_empty(&req.competent_authority),
            statuses,
            overdue_at: req.overdue_only.then(|| self.handler.now()),
            after: parse_page_token(&req.page_token)?,
            // One more than asked, to know whether another page follows.
            limit: page_size + 1,
        };
        let mut rows = self
            .handler
            .store()
            .list_dossiers(&filter)
            .await
            .map_err(IntakeError::from)?;
        let more = rows.len() > page_size as usize;
        rows.truncate(page_size as usize);
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => page_token(&match (req.overdue_only, last.due_at) {
                (true, Some(due)) => PageKey::Due(due, last.dossier_id.clone()),
                _ => PageKey::Dossier(last.dossier_id.clone()),
            }),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListDossiersResponse {
            dossiers: rows.iter().map(view::summary).collect(),
            next_page_token,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip() {
        let due = chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("valid");
        for key in [
            PageKey::Dossier("H22-240315-0042".into()),
            PageKey::Due(due, "H22-240315-0042".into()),
        ] {
            assert_eq!(
                parse_page_token(&page_token(&key)).expect("parses"),
                Some(key)
            );
        }
        assert!(parse_page_token("x|y").is_err());
        assert!(parse_page_token("o|notanumber|id").is_err());
    }
}
