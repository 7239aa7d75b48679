//! End-to-end test harness: the intake served over real TCP on a random port, on a SQLite
//! event store in a temporary directory, with a manual clock the test moves.
//!
//! - [`spawn_app`] / [`spawn_app_at`] / [`spawn_app_in`] start an app; [`TestApp::stop`]
//!   shuts it down gracefully and hands back its directory, so a test can reopen the same file.
//! - [`TestApp::client`] carries the `x-motcua-officer` metadata on every call;
//!   [`TestApp::anonymous_client`] carries none.
//! - [`TestApp::events`] reads the raw event stream back from the store, to prove that a
//!   rejected command changed nothing.
//! - [`Cmd`] is every command on an existing dossier, with the legality table the lifecycle
//!   must follow ([`Cmd::allowed_in`]) and a way to send it; [`TestApp::reach`] drives a fresh
//!   dossier to any status.

pub mod private_postgres;

use std::fmt::Debug;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use motcua_domain::calendar::{HolidayTable, WorkingCalendar, WorkingTimeProfile};
use motcua_domain::catalog::ProcedureCatalogue;
use motcua_domain::time::{Instant, from_timestamp, to_timestamp, vietnam};
use motcua_intake::clock::{Clock, ManualClock};
use motcua_intake::{CommandHandler, IntakeConfig};
use motcua_proto::v1 as pb;
use motcua_proto::v1::DossierStatus as S;
use motcua_proto::v1::dossier_service_client::DossierServiceClient;
use motcua_store::sqlite::SqliteStore;
use motcua_store::{EventStore, StoredEvent};
use prost::Message;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

pub use motcua_proto::v1::DossierStatus;

/// The receiving one-stop unit every test dossier is filed at.
pub const UNIT: &str = "000.00.01.H22";
/// Another agency.
pub const OTHER_UNIT: &str = "H44.100";
/// The officer the default client calls as.
pub const OFFICER: &str = "officer-007";

/// 1 working day, pause rule (Đăng ký khai sinh).
pub const P_ONE_DAY: &str = "1.001193";
/// 1 working day, pause rule, a different procedure (Đăng ký kết hôn).
pub const P_ONE_DAY_OTHER: &str = "1.000894";
/// 10 working days, fee-bearing.
pub const P_TEN_DAYS: &str = "2.000908";
/// 4 working hours.
pub const P_FOUR_HOURS: &str = "2.000635";
/// 3 working days at the counter, 2.5 online, restart rule.
pub const P_RESTART: &str = "1.001612";
/// 5 working days at the counter, 3 online.
pub const P_DRIVING: &str = "1.002804";
/// No due date; legal maximum 5 working days.
pub const P_NO_DUE: &str = "2.001157";
/// 20 working days.
pub const P_TWENTY_DAYS: &str = "1.004227.000.00.00.H22";

/// Every status, in portal-code order.
pub const ALL_STATUSES: [DossierStatus; 10] = [
    S::SubmittedOnline,
    S::Accepted,
    S::Refused,
    S::Processing,
    S::SupplementRequested,
    S::FeesRequested,
    S::Withdrawn,
    S::Stopped,
    S::Resolved,
    S::ResultReturned,
];

/// A Vietnam local time (UTC+7) as an instant.
pub fn vn(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> Instant {
    vietnam()
        .with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("a valid test time")
        .with_timezone(&Utc)
}

/// Where every app's clock starts unless told otherwise: Monday 4 March 2024, 08:00 Vietnam
/// time, an ordinary working week with no holiday near it.
pub fn default_start() -> Instant {
    vn(2024, 3, 4, 8, 0)
}

pub fn ts(t: Instant) -> prost_types::Timestamp {
    to_timestamp(t)
}

/// A timestamp field that must be present.
pub fn time_of(t: &Option<prost_types::Timestamp>) -> Instant {
    from_timestamp(t.as_ref().expect("the timestamp is present")).expect("a valid timestamp")
}

/// A fresh request id.
pub fn rid(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

pub fn meta(request_id: &str) -> Option<pb::CommandMeta> {
    Some(pb::CommandMeta {
        request_id: request_id.to_owned(),
        expected_version: None,
        stated_at: None,
    })
}

pub fn meta_at_version(request_id: &str, version: u64) -> Option<pb::CommandMeta> {
    Some(pb::CommandMeta {
        request_id: request_id.to_owned(),
        expected_version: Some(version),
        stated_at: None,
    })
}

pub fn person() -> pb::Applicant {
    pb::Applicant {
        r#type: pb::ApplicantType::Person as i32,
        name: "Nguyễn Văn An".into(),
        identity_number: "001099012345".into(),
        phone: "0912345678".into(),
    }
}

/// A new dossier at [`UNIT`] for `procedure`, code left to the server.
pub fn new_dossier(procedure: &str) -> pb::NewDossier {
    pb::NewDossier {
        dossier_code: String::new(),
        procedure_code: procedure.into(),
        receiving_unit: UNIT.into(),
        competent_authority: String::new(),
        applicant: Some(person()),
        component_count: 3,
    }
}

pub fn receive_request(procedure: &str, channel: pb::Channel) -> pb::ReceiveRequest {
    pb::ReceiveRequest {
        meta: meta(&rid("receive")),
        dossier: Some(new_dossier(procedure)),
        channel: channel as i32,
    }
}

pub fn submit_request(procedure: &str) -> pb::SubmitOnlineRequest {
    pb::SubmitOnlineRequest {
        meta: meta(&rid("submit")),
        dossier: Some(new_dossier(procedure)),
    }
}

/// Adds who is calling to every call: `x-motcua-officer` (the trusted-metadata mode), or any
/// other metadata such as `authorization: Bearer …`.
#[derive(Debug, Clone)]
pub struct Officer(Vec<(&'static str, AsciiMetadataValue)>);

impl Officer {
    pub fn named(officer: &'static str) -> Self {
        Self(vec![(
            "x-motcua-officer",
            MetadataValue::from_static(officer),
        )])
    }

    /// A caller presenting `token`.
    pub fn bearer(token: &str) -> Self {
        Self(vec![(
            "authorization",
            format!("Bearer {token}").parse().expect("an ASCII token"),
        )])
    }

    /// Also sends `name: value`.
    pub fn with(mut self, name: &'static str, value: &str) -> Self {
        self.0.push((name, value.parse().expect("ASCII metadata")));
        self
    }
}

impl Interceptor for Officer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        for (name, value) in &self.0 {
            request.metadata_mut().insert(*name, value.clone());
        }
        Ok(request)
    }
}

/// A client that calls as an officer.
pub type Client = DossierServiceClient<InterceptedService<Channel, Officer>>;

/// One running intake.
#[derive(Debug)]
pub struct TestApp {
    /// Calls as [`OFFICER`].
    pub client: Client,
    pub clock: Arc<ManualClock>,
    /// The same store the server writes to, for reading the raw stream back.
    pub store: Arc<SqliteStore>,
    pub addr: SocketAddr,
    pub db_path: PathBuf,
    channel: Channel,
    dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

/// An app on a fresh store, its clock at [`default_start`].
pub async fn spawn_app() -> TestApp {
    spawn_app_at(default_start()).await
}

/// An app on a fresh store, its clock at `now`.
pub async fn spawn_app_at(now: Instant) -> TestApp {
    let dir = tempfile::tempdir().expect("a temporary directory for the store");
    spawn_app_in(dir, now).await
}

/// The intake's write path on `store`, with the standard calendar, the sample catalogue and
/// `clock`: what every test server runs.
pub fn command_handler(store: Arc<SqliteStore>, clock: Arc<ManualClock>) -> CommandHandler {
    CommandHandler::new(
        store as Arc<dyn EventStore>,
        Arc::new(WorkingCalendar::new(
            WorkingTimeProfile::standard(),
            HolidayTable::builtin(),
        )),
        Arc::new(ProcedureCatalogue::sample()),
        clock as Arc<dyn Clock>,
    )
}

/// An app on the store file in `dir` (created if missing), its clock at `now`.
pub async fn spawn_app_in(dir: TempDir, now: Instant) -> TestApp {
    spawn_app_configured(dir, now, IntakeConfig::default()).await
}

/// An app with `config` (an authenticator, limits), on the store in `dir`, its clock at `now`.
pub async fn spawn_app_configured(dir: TempDir, now: Instant, config: IntakeConfig) -> TestApp {
    let db_path = dir.path().join("events.sqlite3");
    let store = Arc::new(
        SqliteStore::open(&db_path)
            .await
            .expect("the SQLite store opens"),
    );
    let clock = Arc::new(ManualClock::new(now));
    let handler = command_handler(store.clone(), clock.clone());
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port on localhost");
    let addr = listener.local_addr().expect("the listener's address");
    let (shutdown, signal) = oneshot::channel::<()>();
    let server = tokio::spawn(motcua_intake::serve(
        listener,
        handler,
        config,
        async move {
            let _ = signal.await;
        },
    ));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("a valid URI")
        .connect()
        .await
        .expect("the client connects");
    let client = DossierServiceClient::with_interceptor(channel.clone(), Officer::named(OFFICER));
    TestApp {
        client,
        clock,
        store,
        addr,
        db_path,
        channel,
        dir,
        shutdown: Some(shutdown),
        server: Some(server),
    }
}

impl TestApp {
    /// A client calling as [`OFFICER`] (cheap: shares the connection).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// A client calling as another officer.
    pub fn client_as(&self, officer: &'static str) -> Client {
        DossierServiceClient::with_interceptor(self.channel.clone(), Officer::named(officer))
    }

    /// The app with its default client (the one [`TestApp::client`], `run`, `reach` and `get`
    /// use) calling as `officer` instead of [`OFFICER`]'s metadata: an administrator's token
    /// on a server that verifies tokens.
    pub fn with_caller(mut self, officer: Officer) -> Self {
        self.client = DossierServiceClient::with_interceptor(self.channel.clone(), officer);
        self
    }

    /// A client calling with `officer`'s metadata (a token, say).
    pub fn client_with(&self, officer: Officer) -> Client {
        DossierServiceClient::with_interceptor(self.channel.clone(), officer)
    }

    /// The connection, for clients of other services on the same server.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// A client that sends no `x-motcua-officer`.
    pub fn anonymous_client(&self) -> DossierServiceClient<Channel> {
        DossierServiceClient::new(self.channel.clone())
    }

    /// A second, independent connection to the server.
    pub async fn new_connection(&self) -> Client {
        let channel = Channel::from_shared(format!("http://{}", self.addr))
            .expect("a valid URI")
            .connect()
            .await
            .expect("the client connects");
        DossierServiceClient::with_interceptor(channel, Officer::named(OFFICER))
    }

    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    pub fn set_time(&self, at: Instant) {
        self.clock.set(at);
    }

    pub fn advance(&self, by: Duration) {
        self.clock.set(self.clock.now() + by);
    }

    /// Triggers the shutdown signal without waiting.
    pub fn trigger_shutdown(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    /// Shuts the server down gracefully, waits for it, drops every handle on the store, and
    /// returns the directory holding the store file.
    pub async fn stop(mut self) -> TempDir {
        self.trigger_shutdown();
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("the server task does not panic")
                .expect("the server stops cleanly");
        }
        let TestApp {
            client,
            store,
            channel,
            dir,
            ..
        } = self;
        drop(client);
        drop(channel);
        drop(store);
        dir
    }

    /// Waits for the server task after [`trigger_shutdown`](Self::trigger_shutdown).
    pub async fn wait_stopped(&mut self) {
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("the server task does not panic")
                .expect("the server stops cleanly");
        }
    }

    /// Every stored event, in global position order, read straight from the store.
    pub async fn events(&self) -> Vec<StoredEvent> {
        self.store
            .events_after(0, u32::MAX)
            .await
            .expect("the store reads")
    }

    /// Every stored event, decoded.
    pub async fn decoded_events(&self) -> Vec<pb::DossierEvent> {
        self.events().await.iter().map(decode).collect()
    }

    /// One dossier's stored events, decoded, oldest first.
    pub async fn dossier_events(&self, dossier_id: &str) -> Vec<pb::DossierEvent> {
        self.store
            .dossier_events(dossier_id)
            .await
            .expect("the store reads")
            .iter()
            .map(decode)
            .collect()
    }

    /// Asserts the stream is exactly `before`.
    pub async fn assert_unchanged(&self, before: &[StoredEvent], what: &str) {
        let after = self.events().await;
        assert_eq!(
            after.len(),
            before.len(),
            "{what}: the event stream grew from {} to {} events",
            before.len(),
            after.len()
        );
        assert!(after == before, "{what}: the event stream changed");
    }

    pub async fn get(&self, dossier_id: &str) -> pb::Dossier {
        self.client()
            .get_dossier(pb::GetDossierRequest {
                dossier_id: dossier_id.into(),
            })
            .await
            .expect("GetDossier succeeds")
            .into_inner()
    }

    /// Receives a counter dossier for `procedure` with a server-allocated code.
    pub async fn receive(&self, procedure: &str) -> pb::CommandResponse {
        self.client()
            .receive(receive_request(procedure, pb::Channel::Counter))
            .await
            .expect("Receive succeeds")
            .into_inner()
    }

    /// Submits an online dossier for `procedure` with a server-allocated code.
    pub async fn submit_online(&self, procedure: &str) -> pb::CommandResponse {
        self.client()
            .submit_online(submit_request(procedure))
            .await
            .expect("SubmitOnline succeeds")
            .into_inner()
    }

    /// Sends `cmd` with a fresh request id.
    pub async fn run(&self, cmd: Cmd, dossier_id: &str) -> Result<pb::CommandResponse, Status> {
        cmd.send(
            &self.client(),
            dossier_id,
            meta(&rid(cmd.name())),
            self.now(),
        )
        .await
    }

    /// Sends `cmd` and expects success.
    pub async fn ok(&self, cmd: Cmd, dossier_id: &str) -> pb::CommandResponse {
        match self.run(cmd, dossier_id).await {
            Ok(response) => response,
            Err(status) => panic!("{cmd:?} on {dossier_id} failed: {status:?}"),
        }
    }

    /// A fresh dossier (procedure [`P_ONE_DAY`]) driven to `status`; returns its id.
    pub async fn reach(&self, status: DossierStatus) -> String {
        let online = matches!(status, S::SubmittedOnline | S::Refused);
        let created = if online {
            self.submit_online(P_ONE_DAY).await
        } else {
            self.receive(P_ONE_DAY).await
        };
        let id = created.dossier_id;
        let path: &[Cmd] = match status {
            S::SubmittedOnline | S::Accepted | S::Unspecified => &[],
            S::Refused => &[Cmd::Refuse],
            S::Processing => &[Cmd::Forward],
            S::SupplementRequested => &[Cmd::RequestSupplement],
            S::FeesRequested => &[Cmd::RequestFees],
            S::Withdrawn => &[Cmd::Withdraw],
            S::Stopped => &[Cmd::StopProcessing],
            S::Resolved => &[Cmd::Resolve],
            S::ResultReturned => &[Cmd::Resolve, Cmd::ReturnResult],
        };
        for cmd in path {
            self.ok(*cmd, &id).await;
        }
        let dossier = self.get(&id).await;
        assert_eq!(dossier.status(), status, "reach({status:?}) for {id}");
        id
    }
}

pub fn decode(stored: &StoredEvent) -> pb::DossierEvent {
    pb::DossierEvent::decode(stored.payload.as_slice()).expect("a stored event decodes")
}

/// The payload of an event.
pub fn payload(event: &pb::DossierEvent) -> &pb::dossier_event::Payload {
    event.payload.as_ref().expect("the event has a payload")
}

/// The single event of a one-event command response.
pub fn only_event(response: &pb::CommandResponse) -> &pb::DossierEvent {
    assert_eq!(response.events.len(), 1, "one event: {response:?}");
    &response.events[0]
}

/// The status's name as error messages show it: "WITHDRAWN (7)".
pub fn status_label(status: DossierStatus) -> String {
    format!(
        "{} ({})",
        status.as_str_name().trim_start_matches("DOSSIER_STATUS_"),
        status as i32
    )
}

/// Expects a failure with `code`, and returns the status.
pub fn expect_code<T: Debug>(result: Result<T, Status>, code: Code, what: &str) -> Status {
    match result {
        Ok(value) => panic!("{what}: expected {code:?}, got success {value:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "{what}: {status:?}");
            status
        }
    }
}

/// The fields a status's BadRequest details name.
pub fn bad_fields(status: &Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|bad| bad.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// Expects INVALID_ARGUMENT whose BadRequest details name every field of `fields`.
pub fn expect_invalid<T: Debug>(result: Result<T, Status>, fields: &[&str], what: &str) -> Status {
    let status = expect_code(result, Code::InvalidArgument, what);
    let named = bad_fields(&status);
    for field in fields {
        assert!(
            named.iter().any(|n| n == field),
            "{what}: the violations name {named:?}, not '{field}' ({})",
            status.message()
        );
    }
    status
}

/// Every command on an existing dossier (digitisation split by target, since the two have
/// different legality).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cmd {
    AcceptOnline,
    Refuse,
    Forward,
    RequestSupplement,
    ReceiveSupplement,
    RequestFees,
    RecordPayment,
    DigitizeComponent,
    DigitizeResult,
    Resolve,
    ReturnResult,
    Withdraw,
    StopProcessing,
    ExtendDueDate,
    ChangeProcedure,
}

impl Cmd {
    pub const ALL: [Cmd; 15] = [
        Cmd::AcceptOnline,
        Cmd::Refuse,
        Cmd::Forward,
        Cmd::RequestSupplement,
        Cmd::ReceiveSupplement,
        Cmd::RequestFees,
        Cmd::RecordPayment,
        Cmd::DigitizeComponent,
        Cmd::DigitizeResult,
        Cmd::Resolve,
        Cmd::ReturnResult,
        Cmd::Withdraw,
        Cmd::StopProcessing,
        Cmd::ExtendDueDate,
        Cmd::ChangeProcedure,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cmd::AcceptOnline => "accept-online",
            Cmd::Refuse => "refuse",
            Cmd::Forward => "forward",
            Cmd::RequestSupplement => "request-supplement",
            Cmd::ReceiveSupplement => "receive-supplement",
            Cmd::RequestFees => "request-fees",
            Cmd::RecordPayment => "record-payment",
            Cmd::DigitizeComponent => "digitize-component",
            Cmd::DigitizeResult => "digitize-result",
            Cmd::Resolve => "resolve",
            Cmd::ReturnResult => "return-result",
            Cmd::Withdraw => "withdraw",
            Cmd::StopProcessing => "stop",
            Cmd::ExtendDueDate => "extend",
            Cmd::ChangeProcedure => "change-procedure",
        }
    }

    /// The lifecycle table (docs/domain.md §2, the RPC comments of dossier_service.proto): the
    /// statuses in which the command is legal. Written out here independently of the domain
    /// crate's table, so the service is checked against the specification, not against itself.
    pub fn allowed_in(self) -> &'static [DossierStatus] {
        const OPEN: &[DossierStatus] = &[
            S::Accepted,
            S::Processing,
            S::SupplementRequested,
            S::FeesRequested,
        ];
        const NOT_ENDED: &[DossierStatus] = &[
            S::SubmittedOnline,
            S::Accepted,
            S::Processing,
            S::SupplementRequested,
            S::FeesRequested,
        ];
        match self {
            Cmd::AcceptOnline => &[S::SubmittedOnline],
            // Refused at reception, or closed because the supplement never came.
            Cmd::Refuse => &[S::SubmittedOnline, S::SupplementRequested],
            Cmd::Forward | Cmd::RequestSupplement | Cmd::RequestFees | Cmd::Resolve => {
                &[S::Accepted, S::Processing]
            }
            Cmd::ReceiveSupplement => &[S::SupplementRequested],
            // When asked, up front, or when the result is collected.
            Cmd::RecordPayment => &[S::Accepted, S::Processing, S::FeesRequested, S::Resolved],
            Cmd::DigitizeComponent | Cmd::Withdraw | Cmd::ChangeProcedure => NOT_ENDED,
            Cmd::DigitizeResult => &[S::Processing, S::Resolved],
            Cmd::ReturnResult => &[S::Resolved],
            Cmd::StopProcessing | Cmd::ExtendDueDate => OPEN,
        }
    }

    /// Sends the command with ordinary, valid content.
    pub async fn send(
        self,
        client: &Client,
        dossier_id: &str,
        meta: Option<pb::CommandMeta>,
        now: Instant,
    ) -> Result<pb::CommandResponse, Status> {
        let mut c = client.clone();
        let id = dossier_id.to_owned();
        let response = match self {
            Cmd::AcceptOnline => {
                c.accept_online(pb::AcceptOnlineRequest {
                    meta,
                    dossier_id: id,
                })
                .await
            }
            Cmd::Refuse => {
                c.refuse(pb::RefuseRequest {
                    meta,
                    dossier_id: id,
                    reason: "Hồ sơ không thuộc thẩm quyền giải quyết".into(),
                })
                .await
            }
            Cmd::Forward => {
                c.forward(pb::ForwardRequest {
                    meta,
                    dossier_id: id,
                    department: "Phòng Tư pháp".into(),
                    note: "Thẩm định hồ sơ".into(),
                    step_time: Some(pb::ProcessingTime {
                        unit: pb::TimeUnit::WorkingDays as i32,
                        amount_hundredths: 50,
                    }),
                })
                .await
            }
            Cmd::RequestSupplement => {
                c.request_supplement(pb::RequestSupplementRequest {
                    meta,
                    dossier_id: id,
                    reason: "Thiếu bản sao giấy chứng sinh".into(),
                })
                .await
            }
            Cmd::ReceiveSupplement => {
                c.receive_supplement(pb::ReceiveSupplementRequest {
                    meta,
                    dossier_id: id,
                    note: "Đã nhận đủ".into(),
                })
                .await
            }
            Cmd::RequestFees => {
                c.request_fees(pb::RequestFeesRequest {
                    meta,
                    dossier_id: id,
                    amount_vnd: 200_000,
                    description: "Lệ phí".into(),
                })
                .await
            }
            Cmd::RecordPayment => {
                c.record_payment(pb::RecordPaymentRequest {
                    meta,
                    dossier_id: id,
                    amount_vnd: 200_000,
                    method: pb::PaymentMethod::NationalPortal as i32,
                    reference: "DVCQG-0001".into(),
                })
                .await
            }
            Cmd::DigitizeComponent | Cmd::DigitizeResult => {
                let target = if self == Cmd::DigitizeComponent {
                    pb::DigitizationTarget::Component
                } else {
                    pb::DigitizationTarget::Result
                };
                c.record_digitization(pb::RecordDigitizationRequest {
                    meta,
                    dossier_id: id,
                    target: target as i32,
                    document_name: "Tờ khai đăng ký khai sinh".into(),
                    reused: false,
                    file_url: "https://kho.example.vn/f/1".into(),
                })
                .await
            }
            Cmd::Resolve => {
                c.resolve(pb::ResolveRequest {
                    meta,
                    dossier_id: id,
                    electronic_result: true,
                    note: "Đã ký".into(),
                })
                .await
            }
            Cmd::ReturnResult => {
                c.return_result(pb::ReturnResultRequest {
                    meta,
                    dossier_id: id,
                    note: "Đã trả".into(),
                })
                .await
            }
            Cmd::Withdraw => {
                c.withdraw(pb::WithdrawRequest {
                    meta,
                    dossier_id: id,
                    reason: "Công dân xin rút hồ sơ".into(),
                })
                .await
            }
            Cmd::StopProcessing => {
                c.stop_processing(pb::StopProcessingRequest {
                    meta,
                    dossier_id: id,
                    reason: "Có tranh chấp".into(),
                })
                .await
            }
            Cmd::ExtendDueDate => {
                c.extend_due_date(pb::ExtendDueDateRequest {
                    meta,
                    dossier_id: id,
                    new_appointment_at: Some(ts(now + Duration::days(30))),
                    reason: "Xin lỗi, cần thêm thời gian xác minh".into(),
                })
                .await
            }
            Cmd::ChangeProcedure => {
                c.change_procedure(pb::ChangeProcedureRequest {
                    meta,
                    dossier_id: id,
                    procedure_code: P_ONE_DAY_OTHER.into(),
                    reason: "Sai thủ tục".into(),
                })
                .await
            }
        };
        response.map(tonic::Response::into_inner)
    }
}

/// The payload of `event` as the given `dossier_event::Payload` variant, or a panic naming
/// what it was instead.
#[macro_export]
macro_rules! expect_payload {
    ($event:expr, $variant:ident) => {
        match $crate::payload($event) {
            ::motcua_proto::v1::dossier_event::Payload::$variant(inner) => inner,
            other => panic!("expected a {} payload, got {other:?}", stringify!($variant)),
        }
    };
}
