//! The gRPC `ReportService`: validates a query, asks the read model, and maps every failure to
//! a status in one place ([`ReportError`] → [`Status`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use motcua_auth::Authenticator;
use motcua_auth::policy::{self, ReportScope};
use motcua_domain::ids::{AgencyId, ProcedureCode};
use motcua_domain::time::{Instant, to_timestamp};
use motcua_proto::v1 as pb;
use motcua_proto::v1::report_service_server::ReportService;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::period::Period;
use crate::read_model::{QueryError, ReadModel, Report, ReportQuery};
use crate::report::{Figures, Rate, ScopeKind};
use crate::scores::Score;

/// Largest page of the overdue and anomaly lists.
const MAX_PAGE: i32 = 1_000;
const DEFAULT_PAGE: i32 = 100;

/// Why a report call failed.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("invalid request: {}", .0.iter().map(|(f, d)| format!("{f}: {d}")).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<(String, String)>),
    #[error(transparent)]
    Query(#[from] QueryError),
}

impl From<ReportError> for Status {
    fn from(error: ReportError) -> Self {
        let message = error.to_string();
        match error {
            ReportError::Invalid(violations) => {
                let mut details = ErrorDetails::new();
                for (field, description) in violations {
                    details.add_bad_request_violation(field, description);
                }
                Status::with_error_details(Code::InvalidArgument, message, details)
            }
            ReportError::Query(QueryError::NotBuilt) => Status::failed_precondition(message),
            ReportError::Query(QueryError::Database(_)) => {
                tracing::warn!(error = %message, "report query failed");
                Status::unavailable(message)
            }
        }
    }
}

/// The service, on a read model.
#[derive(Debug, Clone)]
pub struct ReportApi {
    model: ReadModel,
    sync: Option<std::sync::Arc<dyn SyncFigures>>,
    auth: Authenticator,
    clock: Clock,
}

/// The time reports are judged at: the system clock, or the node's simulated one in a demo.
#[derive(Clone)]
pub struct Clock(std::sync::Arc<dyn Fn() -> Instant + Send + Sync>);

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// Where the dossier-sync score's input comes from: the national-portal adapter's sync state,
/// which lives in another database (and crate); the binary plugs it in.
#[async_trait::async_trait]
pub trait SyncFigures: Send + Sync + std::fmt::Debug + 'static {
    /// `(synced on time, received)` for dossiers of the scope received in `[from, to)`, judged
    /// at `now`; `None` for a scope it does not keep.
    async fn synced_on_time(
        &self,
        scope: ScopeKind,
        scope_id: &str,
        from: Instant,
        to: Instant,
        now: Instant,
    ) -> Result<Option<(i64, i64)>, String>;
}

impl ReportApi {
    /// The service with callers identified by their own metadata
    /// ([`Authenticator::trusted_metadata`]): tests and local development. The binary always
    /// passes a verifying authenticator ([`ReportApi::with_auth`]).
    pub fn new(model: ReadModel) -> Self {
        Self {
            model,
            sync: None,
            auth: Authenticator::trusted_metadata(),
            clock: Clock(std::sync::Arc::new(chrono::Utc::now)),
        }
    }

    /// Judges reports at `now()` instead of the system clock (the node's simulated clock in a
    /// demo, so reports agree with the intake about what is late).
    pub fn with_clock(mut self, now: impl Fn() -> Instant + Send + Sync + 'static) -> Self {
        self.clock = Clock(std::sync::Arc::new(now));
        self
    }

    fn now(&self) -> Instant {
        (self.clock.0)()
    }

    /// With `auth` establishing every caller.
    pub fn with_auth(mut self, auth: Authenticator) -> Self {
        self.auth = auth;
        self
    }

    /// Authenticates the caller of `rpc` and checks it may read reports of `scope`.
    async fn permit<T>(
        &self,
        rpc: &str,
        request: &Request<T>,
        scope: Option<&pb::ReportScope>,
    ) -> Result<(), Status> {
        let principal = self.auth.authenticate(rpc, request).await?;
        let checked = match scope {
            None => policy::may_read_anomalies(&principal),
            Some(scope) => {
                let id = scope.id.trim();
                let scope = match pb::ScopeKind::try_from(scope.kind) {
                    Ok(pb::ScopeKind::ReceivingUnit | pb::ScopeKind::CompetentAuthority) => {
                        ReportScope::Unit(id)
                    }
                    Ok(pb::ScopeKind::Procedure) => ReportScope::Procedure(id),
                    // Province, or a malformed scope that validation then names.
                    _ => ReportScope::Province,
                };
                policy::may_report(&principal, scope)
            }
        };
        checked.map_err(|denied| self.auth.denied(rpc, &principal, &denied.0))
    }

    /// With the dossier-sync score computed from `sync`.
    pub fn with_sync(mut self, sync: std::sync::Arc<dyn SyncFigures>) -> Self {
        self.sync = Some(sync);
        self
    }

    pub fn into_server(self) -> pb::report_service_server::ReportServiceServer<Self> {
        pb::report_service_server::ReportServiceServer::new(self)
    }
}

/// Collects field violations, so one answer names every bad field.
#[derive(Default)]
struct Violations(Vec<(String, String)>);

impl Violations {
    fn add(&mut self, field: &str, description: impl Into<String>) {
        self.0.push((field.to_owned(), description.into()));
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, ReportError> {
        match value {
            Some(value) if self.0.is_empty() => Ok(value),
            _ => Err(ReportError::Invalid(self.0)),
        }
    }

    fn scope(&mut self, scope: Option<&pb::ReportScope>) -> Option<(ScopeKind, String)> {
        let Some(scope) = scope else {
            self.add("scope", "required: kind and id (id empty for the province)");
            return None;
        };
        let kind = match pb::ScopeKind::try_from(scope.kind) {
            Ok(pb::ScopeKind::Province) => ScopeKind::Province,
            Ok(pb::ScopeKind::ReceivingUnit) => ScopeKind::ReceivingUnit,
            Ok(pb::ScopeKind::CompetentAuthority) => ScopeKind::CompetentAuthority,
            Ok(pb::ScopeKind::Procedure) => ScopeKind::Procedure,
            Ok(pb::ScopeKind::Unspecified) | Err(_) => {
                self.add(
                    "scope.kind",
                    "must be PROVINCE, RECEIVING_UNIT, COMPETENT_AUTHORITY or PROCEDURE",
                );
                return None;
            }
        };
        let id = scope.id.trim();
        let valid = match kind {
            ScopeKind::Province => {
                if !id.is_empty() {
                    self.add("scope.id", "must be empty for the province");
                }
                id.is_empty()
            }
            ScopeKind::ReceivingUnit | ScopeKind::CompetentAuthority => match AgencyId::parse(id) {
                Ok(_) => true,
                Err(error) => {
                    self.add("scope.id", format!("not an agency id: {error}"));
                    false
                }
            },
            ScopeKind::Procedure => match ProcedureCode::parse(id) {
                Ok(_) => true,
                Err(error) => {
                    self.add(
                        "scope.id",
                        format!("not a national procedure code: {error}"),
                    );
                    false
                }
            },
        };
        valid.then(|| (kind, id.to_owned()))
    }

    fn channel(&mut self, channel: i32) -> Option<Option<i64>> {
        match pb::Channel::try_from(channel) {
            Ok(pb::Channel::Unspecified) => Some(None),
            Ok(c) => Some(Some(i64::from(c as i32))),
            Err(_) => {
                self.add(
                    "channel",
                    format!("{channel} is not a channel (1 counter, 2 online, 3 postal, 0 all)"),
                );
                None
            }
        }
    }

    fn period(&mut self, text: &str) -> Option<Period> {
        match Period::parse(text) {
            Ok(period) => Some(period),
            Err(error) => {
                self.add("period", error.to_string());
                None
            }
        }
    }

    fn page_size(&mut self, size: i32) -> Option<usize> {
        match size {
            0 => Some(DEFAULT_PAGE as usize),
            1..=MAX_PAGE => usize::try_from(size).ok(),
            _ => {
                self.add(
                    "page_size",
                    format!("must be between 1 and {MAX_PAGE} (0 for {DEFAULT_PAGE})"),
                );
                None
            }
        }
    }
}

fn report_query(request: &pb::GetReportRequest) -> Result<ReportQuery, ReportError> {
    let mut v = Violations::default();
    let scope = v.scope(request.scope.as_ref());
    let channel = v.channel(request.channel);
    let period = v.period(&request.period);
    let query = scope
        .zip(channel)
        .zip(period)
        .map(|(((scope, scope_id), channel), period)| ReportQuery {
            scope,
            scope_id,
            channel,
            period,
        });
    v.finish(query)
}

/// A page token: the cursor, base64 of `"<a>\n<b>"`.
fn encode_token(a: &str, b: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{a}\n{b}"))
}

fn decode_token(token: &str) -> Option<(String, String)> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (a, b) = text.split_once('\n')?;
    Some((a.to_owned(), b.to_owned()))
}

/// The scope a request names, for the permission check (a missing scope checks as the
/// province's, the widest; validation then refuses it).
fn scope_of(scope: Option<&pb::ReportScope>) -> pb::ReportScope {
    scope.cloned().unwrap_or(pb::ReportScope {
        kind: pb::ScopeKind::Province as i32,
        id: String::new(),
    })
}

#[tonic::async_trait]
impl ReportService for ReportApi {
    async fn get_report(
        &self,
        request: Request<pb::GetReportRequest>,
    ) -> Result<Response<pb::Report>, Status> {
        self.permit(
            "GetReport",
            &request,
            Some(&scope_of(request.get_ref().scope.as_ref())),
        )
        .await?;
        let query = report_query(request.get_ref())?;
        let report = self
            .model
            .report(&query, self.now())
            .await
            .map_err(ReportError::from)?;
        Ok(Response::new(report_to_proto(&report, &query)))
    }

    async fn get_scores(
        &self,
        request: Request<pb::GetReportRequest>,
    ) -> Result<Response<pb::ScoresReport>, Status> {
        self.permit(
            "GetScores",
            &request,
            Some(&scope_of(request.get_ref().scope.as_ref())),
        )
        .await?;
        let query = report_query(request.get_ref())?;
        let report = self
            .model
            .report(&query, self.now())
            .await
            .map_err(ReportError::from)?;
        let sync = match &self.sync {
            Some(sync) => sync
                .synced_on_time(
                    query.scope,
                    &query.scope_id,
                    query.period.start(),
                    query.period.end(),
                    self.now(),
                )
                .await
                .map_err(|error| Status::unavailable(format!("the portal sync state: {error}")))?,
            None => None,
        };
        Ok(Response::new(pb::ScoresReport {
            scores: crate::scores::scores_with_sync(&report.figures, sync)
                .iter()
                .map(score_to_proto)
                .collect(),
            report: Some(report_to_proto(&report, &query)),
        }))
    }

    async fn list_overdue(
        &self,
        request: Request<pb::ListOverdueRequest>,
    ) -> Result<Response<pb::ListOverdueResponse>, Status> {
        self.permit(
            "ListOverdue",
            &request,
            Some(&scope_of(request.get_ref().scope.as_ref())),
        )
        .await?;
        let request = request.into_inner();
        let mut v = Violations::default();
        let scope = v.scope(request.scope.as_ref());
        let channel = v.channel(request.channel);
        let size = v.page_size(request.page_size);
        let after = if request.page_token.is_empty() {
            Some(None)
        } else {
            match decode_token(&request.page_token)
                .and_then(|(late, id)| Some((late.parse::<i64>().ok()?, id)))
            {
                Some(cursor) => Some(Some(cursor)),
                None => {
                    v.add(
                        "page_token",
                        "not a token from a previous ListOverdue response",
                    );
                    None
                }
            }
        };
        let ((scope, scope_id), channel, size, after) = v.finish(
            scope
                .zip(channel)
                .zip(size)
                .zip(after)
                .map(|(((s, c), n), a)| (s, c, n, a)),
        )?;
        let query = ReportQuery {
            scope,
            scope_id,
            channel,
            // Unused by the overdue list: it is judged now.
            period: Period::parse("2026")
                .map_err(|e| ReportError::Invalid(vec![("period".into(), e.to_string())]))?,
        };
        let rows = self
            .model
            .overdue(&query, self.now(), after, size + 1)
            .await
            .map_err(ReportError::from)?;
        let more = rows.len() > size;
        let page: Vec<_> = rows.into_iter().take(size).collect();
        let next_page_token = match page.last() {
            Some(last) if more => encode_token(
                &last.late_from.timestamp_micros().to_string(),
                &last.dossier_id,
            ),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListOverdueResponse {
            dossiers: page
                .iter()
                .map(|d| pb::OverdueDossier {
                    dossier_id: d.dossier_id.clone(),
                    receiving_unit: d.receiving_unit.clone(),
                    competent_authority: d.competent_authority.clone(),
                    procedure_code: d.procedure_code.clone(),
                    channel: d.channel as i32,
                    status: d.status as i32,
                    accepted_at: d.accepted_at.map(to_timestamp),
                    due_at: d.due_at.map(to_timestamp),
                    late_from: Some(to_timestamp(d.late_from)),
                })
                .collect(),
            next_page_token,
        }))
    }

    async fn list_anomalies(
        &self,
        request: Request<pb::ListAnomaliesRequest>,
    ) -> Result<Response<pb::ListAnomaliesResponse>, Status> {
        self.permit("ListAnomalies", &request, None).await?;
        let request = request.into_inner();
        let mut v = Violations::default();
        let size = v.page_size(request.page_size);
        let after = if request.page_token.is_empty() {
            Some(None)
        } else {
            match decode_token(&request.page_token)
                .and_then(|(id, seq)| Some((id, seq.parse::<i64>().ok()?)))
            {
                Some(cursor) => Some(Some(cursor)),
                None => {
                    v.add(
                        "page_token",
                        "not a token from a previous ListAnomalies response",
                    );
                    None
                }
            }
        };
        let (size, after) = v.finish(size.zip(after))?;
        let rows = self
            .model
            .anomalies(after, size + 1)
            .await
            .map_err(ReportError::from)?;
        let more = rows.len() > size;
        let page: Vec<_> = rows.into_iter().take(size).collect();
        let next_page_token = match page.last() {
            Some(last) if more => encode_token(&last.dossier_id, &last.seq.to_string()),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListAnomaliesResponse {
            anomalies: page
                .into_iter()
                .map(|a| pb::Anomaly {
                    dossier_id: a.dossier_id,
                    seq: a.seq.max(0) as u64,
                    kind: a.kind,
                    event_type: a.event_type,
                    detail: a.detail,
                    source: a.source,
                })
                .collect(),
            next_page_token,
        }))
    }
}

fn rate(r: &Rate) -> Option<pb::Rate> {
    Some(pb::Rate {
        numerator: r.numerator,
        denominator: r.denominator,
        value: r.value,
    })
}

fn scope_to_proto(kind: ScopeKind, id: &str) -> pb::ReportScope {
    let kind = match kind {
        ScopeKind::Province => pb::ScopeKind::Province,
        ScopeKind::ReceivingUnit => pb::ScopeKind::ReceivingUnit,
        ScopeKind::CompetentAuthority => pb::ScopeKind::CompetentAuthority,
        ScopeKind::Procedure => pb::ScopeKind::Procedure,
    };
    pb::ReportScope {
        kind: kind as i32,
        id: id.to_owned(),
    }
}

fn report_to_proto(report: &Report, query: &ReportQuery) -> pb::Report {
    let f: &Figures = &report.figures;
    pb::Report {
        scope: Some(scope_to_proto(report.scope, &report.scope_id)),
        channel: query
            .channel
            .and_then(|c| i32::try_from(c).ok())
            .unwrap_or(0),
        period: report.period.clone(),
        first_day: report.first_day.clone(),
        last_day: report.last_day.clone(),
        judged_at: chrono::DateTime::parse_from_rfc3339(&report.judged_at)
            .ok()
            .map(|t| to_timestamp(t.with_timezone(&chrono::Utc))),
        closed: report.closed,
        generation: report.generation,
        figures: Some(pb::Figures {
            carried_over: f.carried_over,
            received: f.received,
            received_online: f.received_online,
            received_counter: f.received_counter,
            received_postal: f.received_postal,
            online_rate: rate(&f.online_rate),
            resolved: f.resolved,
            resolved_early: f.resolved_early,
            resolved_on_time: f.resolved_on_time,
            resolved_late: f.resolved_late,
            on_time_rate: rate(&f.on_time_rate),
            late_rate: rate(&f.late_rate),
            withdrawn: f.withdrawn,
            refused: f.refused,
            stopped: f.stopped,
            in_progress: f.in_progress,
            in_progress_past_due: f.in_progress_past_due,
            digitization_at_reception: rate(&f.digitization_at_reception),
            digitization_of_results: rate(&f.digitization_of_results),
            reuse: rate(&f.reuse),
            online_payment: rate(&f.online_payment),
            processed: f.processed,
            processing_working_seconds: f.processing_working_seconds,
            average_processing_days: f.average_processing_days,
            median_processing_days: f.median_processing_days,
            identity_left: f.identity.carried_over_plus_received,
            identity_right: f.identity.ended_plus_in_progress,
            identity_holds: f.identity.holds,
            ended_with_provisional_due: f.ended_with_provisional_due,
        }),
    }
}

fn score_to_proto(s: &Score) -> pb::Score {
    pb::Score {
        name: s.name.to_owned(),
        rate: rate(&s.rate),
        full_at: s.full_at,
        share_of_points: s.share_of_points,
        max_points: s.max_points,
        points: s.points,
        note: s.note.to_owned(),
    }
}
