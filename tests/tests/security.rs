//! Issue 7 over real gRPC: who may call, and what they may do.
//!
//! - every role × every RPC of DossierService and ReportService, allowed and denied, and a
//!   denied call changes nothing;
//! - expired, forged, wrong-audience, wrong-issuer, wrong-key and malformed tokens;
//! - a token for unit A used on unit B's dossier;
//! - the actor recorded is the token's principal, whatever metadata the client adds;
//! - TLS with and without a client certificate, listed and unlisted terminals;
//! - a flood from one principal is throttled while another principal is served;
//! - a 1 GiB message is refused without the server reading it into memory.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::StreamBody;
use hyper::body::Frame;
use motcua_auth::certs::{CertPrincipals, fingerprint};
use motcua_auth::jwt::{Claims, TokenRules, Verifier};
use motcua_auth::local::{AUDIENCE, LOCAL_ISSUER, LocalAuthority};
use motcua_auth::{Authenticator, Mode, Role};
use motcua_feed::ReaderDb;
use motcua_intake::clock::ManualClock;
use motcua_intake::{CommandHandler, IntakeConfig};
use motcua_projector::ReadModel;
use motcua_projector::service::ReportApi;
use motcua_proto::v1 as pb;
use motcua_proto::v1::dossier_service_client::DossierServiceClient;
use motcua_proto::v1::report_service_client::ReportServiceClient;
use motcua_store::sqlite::SqliteStore;
use motcua_tests::*;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tonic::Code;
use tonic::service::RoutesBuilder;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity, ServerTlsConfig};

/// The receiving unit of every dossier here (`new_dossier` files them there).
const A: &str = UNIT;
/// Another unit.
const B: &str = "000.00.02.H22";

/// The principals of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Admin,
    UnitAdminA,
    CounterA,
    ProcessingA,
    Monitor,
    System,
    CounterB,
}

impl Who {
    const ALL: [Who; 7] = [
        Who::Admin,
        Who::UnitAdminA,
        Who::CounterA,
        Who::ProcessingA,
        Who::Monitor,
        Who::System,
        Who::CounterB,
    ];

    fn principal(self) -> (&'static str, Role, Vec<String>) {
        let a = || vec![A.to_owned()];
        match self {
            Who::Admin => ("admin-1", Role::Admin, vec![]),
            Who::UnitAdminA => ("unit-admin-a", Role::UnitAdmin, a()),
            Who::CounterA => ("counter-a", Role::CounterOfficer, a()),
            Who::ProcessingA => ("processing-a", Role::ProcessingOfficer, a()),
            Who::Monitor => ("monitor-1", Role::Monitor, vec![]),
            Who::System => ("svc-watcher", Role::System, vec![]),
            Who::CounterB => ("counter-b", Role::CounterOfficer, vec![B.to_owned()]),
        }
    }
}

/// Which side records a command: written out here, from the policy table in the docs, so the
/// test checks the service against the documented rule rather than against itself.
#[derive(Debug, Clone, Copy)]
enum Side {
    Counter,
    Processing,
    Either,
}

fn side(cmd: Cmd) -> Side {
    match cmd {
        Cmd::AcceptOnline
        | Cmd::Refuse
        | Cmd::ReceiveSupplement
        | Cmd::RecordPayment
        | Cmd::ReturnResult
        | Cmd::Withdraw => Side::Counter,
        Cmd::Forward | Cmd::RequestFees | Cmd::Resolve | Cmd::StopProcessing => Side::Processing,
        Cmd::RequestSupplement
        | Cmd::DigitizeComponent
        | Cmd::DigitizeResult
        | Cmd::ExtendDueDate
        | Cmd::ChangeProcedure => Side::Either,
    }
}

/// Whether `who` may record `cmd` on a dossier received by and decided at unit A.
fn may_step(who: Who, cmd: Cmd) -> bool {
    matches!(
        (who, side(cmd)),
        (Who::Admin | Who::UnitAdminA, _)
            | (Who::CounterA, Side::Counter | Side::Either)
            | (Who::ProcessingA, Side::Processing | Side::Either)
    )
}

/// Whether `who` may receive or take in a new dossier at unit A.
fn may_create(who: Who) -> bool {
    matches!(who, Who::Admin | Who::UnitAdminA | Who::CounterA)
}

/// Whether `who` may read unit A's dossiers (applicants' data included).
fn may_read_unit_a(who: Who) -> bool {
    !matches!(who, Who::Monitor | Who::CounterB)
}

/// A node verifying tokens of its own authority, serving the intake and the reports.
struct Secured {
    app: TestApp,
    authority: LocalAuthority,
    reports: Channel,
    auth: Authenticator,
    _keys: TempDir,
}

impl Secured {
    fn token(&self, who: Who) -> String {
        let (subject, role, units) = who.principal();
        self.authority
            .issue(subject, role, &units, chrono::Duration::hours(1))
            .expect("a token")
    }

    fn dossiers(&self, who: Who) -> Client {
        self.app.client_with(Officer::bearer(&self.token(who)))
    }

    fn reports(
        &self,
        who: Who,
    ) -> ReportServiceClient<tonic::service::interceptor::InterceptedService<Channel, Officer>>
    {
        ReportServiceClient::with_interceptor(
            self.reports.clone(),
            Officer::bearer(&self.token(who)),
        )
    }
}

fn verifying(authority: &LocalAuthority, rules: TokenRules) -> Authenticator {
    let verifier = Verifier::from_pem_file(&authority.public_key_path(), rules).expect("the key");
    Authenticator::new(Mode::Verified {
        verifier,
        certificates: None,
    })
}

async fn secured_with(auth: Authenticator, authority: LocalAuthority, keys: TempDir) -> Secured {
    let dir = tempfile::tempdir().expect("a directory");
    let reports_db = format!("sqlite://{}", dir.path().join("rates.sqlite").display());
    let config = IntakeConfig {
        auth: auth.clone(),
        ..IntakeConfig::default()
    };
    let app = spawn_app_configured(dir, default_start(), config).await;
    let admin = authority
        .issue("admin-1", Role::Admin, &[], chrono::Duration::hours(1))
        .expect("a token");
    let app = app.with_caller(Officer::bearer(&admin));

    // The ReportService on a read model of its own, behind the same authenticator.
    let db = ReaderDb::connect(&reports_db)
        .await
        .expect("the read models");
    motcua_projector::generations::ensure_active(&db)
        .await
        .expect("a generation");
    let mut routes = RoutesBuilder::default();
    routes.add_service(
        ReportApi::new(ReadModel::new(db))
            .with_auth(auth.clone())
            .into_server(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(motcua_intake::serve_routes(
        listener,
        routes.routes(),
        &[],
        IntakeConfig {
            auth: auth.clone(),
            ..IntakeConfig::default()
        },
        std::future::pending(),
    ));
    let reports = Channel::from_shared(format!("http://{addr}"))
        .expect("a URI")
        .connect()
        .await
        .expect("connects");
    Secured {
        app,
        authority,
        reports,
        auth,
        _keys: keys,
    }
}

async fn secured() -> Secured {
    let keys = tempfile::tempdir().expect("a directory");
    let authority = LocalAuthority::new(keys.path());
    authority.ensure().expect("the node's keys");
    let auth = verifying(&authority, LocalAuthority::rules());
    secured_with(auth, authority, keys).await
}

fn expect_allowed<T: std::fmt::Debug>(result: Result<T, tonic::Status>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(status) => panic!("{what}: expected success, got {status:?}"),
    }
}

fn expect_denied<T: std::fmt::Debug>(result: Result<T, tonic::Status>, what: &str) {
    match result {
        Err(status) if status.code() == Code::PermissionDenied => {
            // The message names the principal and the rule, never the applicant.
            assert!(!status.message().contains("Nguyễn"), "{what}: {status:?}");
            assert!(
                !status.message().contains("001099012345"),
                "{what}: {status:?}"
            );
        }
        other => panic!("{what}: expected PERMISSION_DENIED, got {other:?}"),
    }
}

fn report_request(scope: pb::ScopeKind, id: &str) -> pb::GetReportRequest {
    pb::GetReportRequest {
        scope: Some(pb::ReportScope {
            kind: scope as i32,
            id: id.into(),
        }),
        period: "2026".into(),
        channel: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_on_every_rpc_is_allowed_or_denied_as_the_policy_says() {
    let node = secured().await;
    let app = &node.app;

    // One dossier per command in a status the command is legal in, for the denied calls
    // (permission is checked before the rules), and a fresh one per allowed pair.
    let mut denied_on = Vec::new();
    for cmd in Cmd::ALL {
        denied_on.push((cmd, app.reach(cmd.allowed_in()[0]).await));
    }
    let mut allowed_on = Vec::new();
    for who in Who::ALL {
        for cmd in Cmd::ALL {
            if may_step(who, cmd) {
                allowed_on.push((who, cmd, app.reach(cmd.allowed_in()[0]).await));
            }
        }
    }
    let some_dossier = denied_on[0].1.clone();

    // Denied: every pair the table refuses, and nothing changes.
    let before = app.events().await;
    let mut denied = 0;
    for who in Who::ALL {
        let client = node.dossiers(who);
        for (cmd, id) in &denied_on {
            if !may_step(who, *cmd) {
                let result = cmd.send(&client, id, meta(&rid("denied")), app.now()).await;
                expect_denied(result, &format!("{who:?} {cmd:?}"));
                denied += 1;
            }
        }
        if !may_create(who) {
            let mut c = client.clone();
            expect_denied(
                c.receive(receive_request(P_ONE_DAY, pb::Channel::Counter))
                    .await,
                &format!("{who:?} Receive"),
            );
            expect_denied(
                c.submit_online(submit_request(P_ONE_DAY)).await,
                &format!("{who:?} SubmitOnline"),
            );
            denied += 2;
        }
        if !may_read_unit_a(who) {
            let mut c = client.clone();
            expect_denied(
                c.get_dossier(pb::GetDossierRequest {
                    dossier_id: some_dossier.clone(),
                })
                .await,
                &format!("{who:?} GetDossier"),
            );
            expect_denied(
                c.list_dossiers(pb::ListDossiersRequest {
                    receiving_unit: A.into(),
                    ..Default::default()
                })
                .await,
                &format!("{who:?} ListDossiers of unit A"),
            );
            denied += 2;
        }
        if !matches!(who, Who::Admin | Who::System) {
            // Unit-bound principals must name one of their units; monitors list nothing.
            let mut c = client.clone();
            expect_denied(
                c.list_dossiers(pb::ListDossiersRequest::default()).await,
                &format!("{who:?} ListDossiers of the province"),
            );
            denied += 1;
        }
        let mut reports = node.reports(who);
        let province_wide = matches!(who, Who::Admin | Who::Monitor | Who::System);
        if !province_wide {
            for (rpc, result) in [
                (
                    "GetReport",
                    reports
                        .get_report(report_request(pb::ScopeKind::Province, ""))
                        .await
                        .map(|_| ()),
                ),
                (
                    "GetScores",
                    reports
                        .get_scores(report_request(pb::ScopeKind::Province, ""))
                        .await
                        .map(|_| ()),
                ),
                (
                    "ListOverdue",
                    reports
                        .list_overdue(pb::ListOverdueRequest {
                            scope: report_request(pb::ScopeKind::Province, "").scope,
                            ..Default::default()
                        })
                        .await
                        .map(|_| ()),
                ),
                (
                    "ListAnomalies",
                    reports
                        .list_anomalies(pb::ListAnomaliesRequest::default())
                        .await
                        .map(|_| ()),
                ),
            ] {
                expect_denied(result, &format!("{who:?} {rpc} of the province"));
                denied += 1;
            }
        }
        if who == Who::CounterB {
            expect_denied(
                reports
                    .get_report(report_request(pb::ScopeKind::ReceivingUnit, A))
                    .await,
                "unit B's officer on unit A's report",
            );
            denied += 1;
        }
    }
    app.assert_unchanged(&before, "after every denied call")
        .await;
    assert!(denied > 60, "{denied} denied calls");
    let denials = node
        .auth
        .stats()
        .denied
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(denials, denied, "every denial is counted");

    // Allowed: every pair the table grants succeeds, recording the caller.
    for (who, cmd, id) in &allowed_on {
        let client = node.dossiers(*who);
        let response = expect_allowed(
            cmd.send(&client, id, meta(&rid("allowed")), app.now())
                .await,
            &format!("{who:?} {cmd:?}"),
        );
        let actor = response.events[0].actor.as_ref().expect("an actor");
        assert_eq!(actor.officer_id, who.principal().0, "{who:?} {cmd:?}");
    }
    for who in Who::ALL {
        let client = node.dossiers(who);
        if may_create(who) {
            let mut c = client.clone();
            expect_allowed(
                c.receive(receive_request(P_ONE_DAY, pb::Channel::Counter))
                    .await,
                &format!("{who:?} Receive"),
            );
            expect_allowed(
                c.submit_online(submit_request(P_ONE_DAY)).await,
                &format!("{who:?} SubmitOnline"),
            );
        }
        if may_read_unit_a(who) {
            let mut c = client.clone();
            let dossier = expect_allowed(
                c.get_dossier(pb::GetDossierRequest {
                    dossier_id: some_dossier.clone(),
                })
                .await,
                &format!("{who:?} GetDossier"),
            );
            assert_eq!(dossier.get_ref().dossier_id, some_dossier);
            let listed = expect_allowed(
                c.list_dossiers(pb::ListDossiersRequest {
                    receiving_unit: A.into(),
                    ..Default::default()
                })
                .await,
                &format!("{who:?} ListDossiers of unit A"),
            );
            assert!(!listed.get_ref().dossiers.is_empty());
        }
        let mut reports = node.reports(who);
        let scopes: Vec<(pb::ScopeKind, &str)> = match who {
            Who::Admin | Who::Monitor | Who::System => vec![
                (pb::ScopeKind::Province, ""),
                (pb::ScopeKind::ReceivingUnit, A),
                (pb::ScopeKind::Procedure, P_ONE_DAY),
            ],
            Who::UnitAdminA | Who::CounterA | Who::ProcessingA => vec![
                (pb::ScopeKind::ReceivingUnit, A),
                (pb::ScopeKind::CompetentAuthority, A),
            ],
            Who::CounterB => vec![(pb::ScopeKind::ReceivingUnit, B)],
        };
        for (kind, id) in scopes {
            let what = format!("{who:?} reports of {kind:?} {id}");
            expect_allowed(reports.get_report(report_request(kind, id)).await, &what);
            expect_allowed(reports.get_scores(report_request(kind, id)).await, &what);
            expect_allowed(
                reports
                    .list_overdue(pb::ListOverdueRequest {
                        scope: report_request(kind, id).scope,
                        ..Default::default()
                    })
                    .await,
                &what,
            );
        }
        if matches!(who, Who::Admin | Who::Monitor | Who::System) {
            expect_allowed(
                reports
                    .list_anomalies(pb::ListAnomaliesRequest::default())
                    .await,
                &format!("{who:?} ListAnomalies"),
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_a_token_cannot_touch_or_read_a_unit_b_dossier() {
    let node = secured().await;
    // A dossier received at unit B, by unit B's officer.
    let b_officer = node.app.client_with(Officer::bearer(
        &node
            .authority
            .issue(
                "counter-b",
                Role::CounterOfficer,
                &[B.to_owned()],
                chrono::Duration::hours(1),
            )
            .expect("a token"),
    ));
    let mut request = receive_request(P_ONE_DAY, pb::Channel::Counter);
    request.dossier.as_mut().expect("a dossier").receiving_unit = B.into();
    request
        .dossier
        .as_mut()
        .expect("a dossier")
        .competent_authority = B.into();
    let created = b_officer
        .clone()
        .receive(request)
        .await
        .expect("unit B receives its dossier")
        .into_inner();
    let id = created.dossier_id;

    let before = node.app.events().await;
    let a_officer = node.dossiers(Who::CounterA);
    for cmd in [Cmd::Withdraw, Cmd::DigitizeComponent, Cmd::ReturnResult] {
        expect_denied(
            cmd.send(&a_officer, &id, meta(&rid("cross")), node.app.now())
                .await,
            &format!("unit A's officer: {cmd:?} on unit B's dossier"),
        );
    }
    let a_processing = node.dossiers(Who::ProcessingA);
    expect_denied(
        Cmd::Resolve
            .send(&a_processing, &id, meta(&rid("cross")), node.app.now())
            .await,
        "unit A's processing officer resolving unit B's dossier",
    );
    expect_denied(
        a_officer
            .clone()
            .get_dossier(pb::GetDossierRequest {
                dossier_id: id.clone(),
            })
            .await,
        "unit A's officer reading unit B's dossier",
    );
    expect_denied(
        a_officer
            .clone()
            .list_dossiers(pb::ListDossiersRequest {
                receiving_unit: B.into(),
                ..Default::default()
            })
            .await,
        "unit A's officer listing unit B",
    );
    // Receiving a dossier "for" unit B with a unit A token is refused too.
    let mut request = receive_request(P_ONE_DAY, pb::Channel::Counter);
    request.dossier.as_mut().expect("a dossier").receiving_unit = B.into();
    expect_denied(
        a_officer.clone().receive(request).await,
        "unit A's officer receiving for unit B",
    );
    node.app
        .assert_unchanged(&before, "after unit A's attempts")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actor_recorded_is_the_tokens_principal_whatever_the_client_claims() {
    let node = secured().await;
    let token = node.token(Who::CounterA);
    let client = node.app.client_with(
        Officer::bearer(&token)
            .with("x-motcua-officer", "impostor")
            .with("x-motcua-unit", B)
            .with("x-motcua-role", "admin"),
    );
    let response = client
        .clone()
        .receive(receive_request(P_ONE_DAY, pb::Channel::Counter))
        .await
        .expect("received")
        .into_inner();
    let actor = response.events[0].actor.clone().expect("an actor");
    assert_eq!(actor.officer_id, "counter-a");
    assert_eq!(actor.unit_id, A);
    assert_eq!(actor.kind, "officer");
    // The claimed admin role gives nothing: a processing step stays refused.
    expect_denied(
        Cmd::Forward
            .send(
                &client,
                &response.dossier_id,
                meta(&rid("f")),
                node.app.now(),
            )
            .await,
        "a counter officer claiming admin in metadata",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_unauthenticated_and_change_nothing() {
    let node = secured().await;
    let now = chrono::Utc::now().timestamp();
    let claims = |iss: &str, aud: &str, exp: i64| Claims {
        sub: "counter-a".into(),
        role: "counter_officer".into(),
        units: vec![A.into()],
        iss: iss.into(),
        aud: aud.into(),
        exp,
        iat: now - 10,
    };
    let sign = |c: &Claims| node.authority.sign(c).expect("signed");
    let good = node.token(Who::CounterA);
    // The same payload with another signature: flip a character of the signature part.
    let forged = {
        let (rest, signature) = good.rsplit_once('.').expect("a JWT");
        let mut chars: Vec<char> = signature.chars().collect();
        chars[5] = if chars[5] == 'A' { 'B' } else { 'A' };
        format!("{rest}.{}", chars.into_iter().collect::<String>())
    };
    // A payload altered to claim the admin role, keeping the original signature.
    let escalated = {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let parts: Vec<&str> = good.split('.').collect();
        let payload = String::from_utf8(engine.decode(parts[1]).expect("base64")).expect("JSON");
        let payload = payload.replace("counter_officer", "admin");
        format!("{}.{}.{}", parts[0], engine.encode(payload), parts[2])
    };
    let other_keys = tempfile::tempdir().expect("a directory");
    let stranger = LocalAuthority::new(other_keys.path());
    stranger.ensure().expect("other keys");
    let wrong_key = stranger
        .issue(
            "counter-a",
            Role::CounterOfficer,
            &[A.to_owned()],
            chrono::Duration::hours(1),
        )
        .expect("a token");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            sign(&claims(LOCAL_ISSUER, AUDIENCE, now - 3600)),
            "expired",
        ),
        ("forged signature", forged, "signature"),
        ("escalated payload", escalated, "signature"),
        (
            "wrong audience",
            sign(&claims(LOCAL_ISSUER, "another-service", now + 3600)),
            "audience",
        ),
        (
            "wrong issuer",
            sign(&claims("someone-else", AUDIENCE, now + 3600)),
            "issuer",
        ),
        ("wrong key", wrong_key, "signature"),
        ("not a JWT", "not-a-token".into(), ""),
        ("empty", String::new(), ""),
    ];
    let before = node.app.events().await;
    for (what, token, says) in cases {
        let client = if token.is_empty() {
            node.app
                .client_with(Officer::named("nobody").with("authorization", "Bearer "))
        } else {
            node.app.client_with(Officer::bearer(&token))
        };
        let status = client
            .clone()
            .receive(receive_request(P_ONE_DAY, pb::Channel::Counter))
            .await
            .expect_err(what);
        assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
        assert!(
            status.message().to_lowercase().contains(says),
            "{what}: the message says why: {status:?}"
        );
        let status = ReportServiceClient::new(node.reports.clone())
            .get_report({
                let mut r = tonic::Request::new(report_request(pb::ScopeKind::Province, ""));
                *r.metadata_mut() = client_metadata(&token);
                r
            })
            .await
            .expect_err(what);
        assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
    }
    // Another scheme, and trusted metadata alone, are not credentials either.
    for officer in [
        Officer::named("admin-1").with("x-motcua-role", "admin"),
        Officer::named("x").with("authorization", "Basic YWRtaW46YWRtaW4="),
    ] {
        let status = node
            .app
            .client_with(officer)
            .receive(receive_request(P_ONE_DAY, pb::Channel::Counter))
            .await
            .expect_err("no token");
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    node.app
        .assert_unchanged(&before, "after the bad tokens")
        .await;
    // Health checks need no token.
    let mut health = tonic_health::pb::health_client::HealthClient::new(node.app.channel());
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health is anonymous");
}

fn client_metadata(token: &str) -> tonic::metadata::MetadataMap {
    let mut metadata = tonic::metadata::MetadataMap::new();
    metadata.insert(
        "authorization",
        format!("Bearer {token}")
            .parse()
            .unwrap_or_else(|_| "Bearer x".parse().expect("ascii")),
    );
    metadata
}

/// A command handler on a fresh store in `dir`.
async fn handler_in(dir: &std::path::Path) -> CommandHandler {
    let store = SqliteStore::open(&dir.join("events.sqlite"))
        .await
        .expect("a store");
    command_handler(Arc::new(store), Arc::new(ManualClock::new(default_start())))
}

/// A key pair and certificate.
struct Cert {
    pem: String,
    key: String,
    der: Vec<u8>,
}

impl Cert {
    fn identity(&self) -> Identity {
        Identity::from_pem(&self.pem, &self.key)
    }
}

fn signed_by(names: &[&str], issuer: &rcgen::Issuer<'_, rcgen::KeyPair>) -> Cert {
    let key = rcgen::KeyPair::generate().expect("a key");
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let cert = rcgen::CertificateParams::new(names)
        .expect("params")
        .signed_by(&key, issuer)
        .expect("signed");
    Cert {
        pem: cert.pem(),
        key: key.serialize_pem(),
        der: cert.der().to_vec(),
    }
}

fn certificate_authority(name: &str) -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().expect("a key"))
        .expect("a CA")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_tokens_and_listed_terminal_certificates_and_refuses_the_rest() {
    let ca = certificate_authority("motcua test CA");
    let server = signed_by(&["localhost"], &ca);
    let terminal = signed_by(&["quay-03.h22"], &ca);
    let unlisted = signed_by(&["quay-99.h22"], &ca);
    let rogue_ca = certificate_authority("not the province");
    let rogue = signed_by(&["quay-03.h22"], &rogue_ca);

    let keys = tempfile::tempdir().expect("a directory");
    let authority = LocalAuthority::new(keys.path());
    authority.ensure().expect("keys");
    let terminals = CertPrincipals::from_toml(&format!(
        "[[terminal]]\nsha256 = \"{}\"\nsubject = \"quay-03\"\nrole = \"counter_officer\"\n\
         units = [\"{A}\"]\n",
        fingerprint(&terminal.der)
    ))
    .expect("the list");
    let auth = Authenticator::new(Mode::Verified {
        verifier: Verifier::from_pem_file(&authority.public_key_path(), LocalAuthority::rules())
            .expect("the key"),
        certificates: Some(terminals),
    });
    let tls = ServerTlsConfig::new()
        .identity(server.identity())
        .client_ca_root(Certificate::from_pem(ca.pem()))
        .client_auth_optional(true);
    let dir = tempfile::tempdir().expect("a directory");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(motcua_intake::serve(
        listener,
        handler_in(dir.path()).await,
        IntakeConfig {
            auth,
            tls: Some(tls),
            ..IntakeConfig::default()
        },
        std::future::pending(),
    ));

    let connect = |identity: Option<Identity>| {
        let ca = ca.pem();
        async move {
            let mut tls = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(ca))
                .domain_name("localhost");
            if let Some(identity) = identity {
                tls = tls.identity(identity);
            }
            Channel::from_shared(format!("https://{addr}"))
                .expect("a URI")
                .tls_config(tls)
                .expect("TLS settings")
                .connect()
                .await
        }
    };
    let receive = |channel: Channel, officer: Option<Officer>| async move {
        let request = receive_request(P_ONE_DAY, pb::Channel::Counter);
        match officer {
            Some(officer) => {
                DossierServiceClient::with_interceptor(channel, officer)
                    .receive(request)
                    .await
            }
            None => DossierServiceClient::new(channel).receive(request).await,
        }
    };

    // A token over TLS, no client certificate: served.
    let token = authority
        .issue(
            "counter-a",
            Role::CounterOfficer,
            &[A.to_owned()],
            chrono::Duration::hours(1),
        )
        .expect("a token");
    let channel = connect(None)
        .await
        .expect("TLS without a client certificate");
    let done = receive(channel.clone(), Some(Officer::bearer(&token)))
        .await
        .expect("a token over TLS");
    assert_eq!(
        done.get_ref().events[0]
            .actor
            .as_ref()
            .expect("actor")
            .officer_id,
        "counter-a"
    );
    // Neither token nor certificate: unauthenticated.
    let status = receive(channel, None).await.expect_err("anonymous");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    // The listed terminal's certificate, no token: served as the terminal.
    let channel = connect(Some(terminal.identity()))
        .await
        .expect("the terminal connects");
    let done = receive(channel, None).await.expect("a listed terminal");
    let actor = done.get_ref().events[0].actor.clone().expect("actor");
    assert_eq!(actor.officer_id, "quay-03");
    assert_eq!(actor.unit_id, A);

    // Signed by the province's CA but not listed: unauthenticated, saying so.
    let channel = connect(Some(unlisted.identity()))
        .await
        .expect("the TLS handshake passes");
    let status = receive(channel, None).await.expect_err("unlisted");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("not on the list"), "{status:?}");

    // A certificate of another CA: the handshake (or the first call) fails.
    let refused = match connect(Some(rogue.identity())).await {
        Err(_) => true,
        Ok(channel) => receive(channel, None).await.is_err(),
    };
    assert!(refused, "a certificate from another CA is refused");

    // Plaintext to the TLS port gets nothing.
    let plaintext = match Channel::from_shared(format!("http://{addr}"))
        .expect("a URI")
        .connect()
        .await
    {
        Err(_) => true,
        Ok(channel) => receive(channel, Some(Officer::bearer(&token)))
            .await
            .is_err(),
    };
    assert!(plaintext, "plaintext is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_principal_is_throttled_while_another_is_served() {
    let keys = tempfile::tempdir().expect("a directory");
    let authority = LocalAuthority::new(keys.path());
    authority.ensure().expect("keys");
    const RATE: u32 = 20;
    let auth = verifying(&authority, LocalAuthority::rules()).with_rate_limit(RATE, RATE);
    let node = secured_with(auth, authority, keys).await;
    let flooder = node.dossiers(Who::CounterA);
    let calm = node.dossiers(Who::UnitAdminA);
    let list = || pb::ListDossiersRequest {
        receiving_unit: A.into(),
        ..Default::default()
    };

    let started = std::time::Instant::now();
    let flood = tokio::spawn({
        let flooder = flooder.clone();
        async move {
            let calls = (0..600).map(|_| {
                let mut c = flooder.clone();
                async move { c.list_dossiers(list()).await.map(|_| ()) }
            });
            let results: Vec<_> = futures::stream::iter(calls)
                .buffer_unordered(16)
                .collect()
                .await;
            results
        }
    });
    // The other principal, at a polite pace meanwhile: every call served.
    for i in 0..10 {
        calm.clone()
            .list_dossiers(list())
            .await
            .unwrap_or_else(|status| panic!("the calm principal's call {i}: {status:?}"));
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    let results = flood.await.expect("the flood ran");
    let elapsed = started.elapsed().as_secs_f64();
    let served = results.iter().filter(|r| r.is_ok()).count();
    let throttled: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        throttled
            .iter()
            .all(|s| s.code() == Code::ResourceExhausted),
        "{throttled:?}"
    );
    // At most the burst plus the rate over the flood's duration (and a little slack).
    let bound = (f64::from(RATE) * (1.0 + elapsed)).ceil() as usize + 2;
    assert!(
        served <= bound,
        "{served} served in {elapsed:.2} s, bound {bound}"
    );
    assert!(
        throttled.len() >= 600 - bound,
        "{} throttled",
        throttled.len()
    );
    assert!(
        throttled[0].message().contains("counter-a"),
        "{:?}",
        throttled[0]
    );
    let counted = node
        .auth
        .stats()
        .throttled
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(counted as usize, throttled.len());
}

/// Resident memory of this process (the server runs in it), in bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_gibibyte_message_is_refused_without_being_read() {
    use http_body_util::BodyExt as _;
    use std::sync::atomic::{AtomicU64, Ordering};

    let node = secured().await;
    let token = node.token(Who::Admin);
    let before = node.app.events().await;
    let rss_before = resident_bytes();

    // A raw HTTP/2 gRPC call whose message header announces 1 GiB, followed by zeros made
    // on demand (never held): the server must answer from the 5-byte header.
    const GIB: u64 = 1 << 30;
    let sent = Arc::new(AtomicU64::new(0));
    let chunk = Bytes::from(vec![0u8; 64 * 1024]);
    let mut header = vec![0u8];
    header.extend_from_slice(&(GIB as u32).to_be_bytes());
    let body = futures::stream::once(async move { Bytes::from(header) })
        .chain(futures::stream::unfold(
            (sent.clone(), chunk),
            |(sent, chunk)| async move {
                if sent.load(Ordering::Relaxed) >= GIB {
                    return None;
                }
                sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                Some((chunk.clone(), (sent, chunk)))
            },
        ))
        .map(|bytes| Ok::<_, std::convert::Infallible>(Frame::data(bytes)));
    let stream = tokio::net::TcpStream::connect(node.app.addr)
        .await
        .expect("connects");
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("an HTTP/2 connection");
    tokio::spawn(connection);
    let request = http::Request::builder()
        .method("POST")
        .uri(format!(
            "http://{}/motcua.v1.DossierService/Receive",
            node.app.addr
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {token}"))
        .body(StreamBody::new(Box::pin(body)))
        .expect("a request");
    let response = tokio::time::timeout(StdDuration::from_secs(30), sender.send_request(request))
        .await
        .expect("the server answers promptly")
        .expect("a response");
    let grpc_status = match response.headers().get("grpc-status") {
        Some(status) => status.to_str().expect("ASCII").to_owned(),
        None => {
            let collected =
                tokio::time::timeout(StdDuration::from_secs(30), response.into_body().collect())
                    .await
                    .expect("the answer ends")
                    .expect("a body");
            collected
                .trailers()
                .and_then(|t| t.get("grpc-status"))
                .expect("a grpc-status")
                .to_str()
                .expect("ASCII")
                .to_owned()
        }
    };
    // OUT_OF_RANGE (tonic's "message length too large") or RESOURCE_EXHAUSTED.
    assert!(
        grpc_status == (Code::OutOfRange as i32).to_string()
            || grpc_status == (Code::ResourceExhausted as i32).to_string(),
        "grpc-status {grpc_status}"
    );
    let streamed = sent.load(Ordering::Relaxed);
    assert!(
        streamed < 64 << 20,
        "the server stopped reading early; {streamed} bytes were taken"
    );
    let grown = resident_bytes().saturating_sub(rss_before);
    eprintln!("1 GiB announced: grpc-status {grpc_status}, {streamed} bytes taken, RSS +{grown}");
    assert!(grown < 128 << 20, "memory grew by {grown} bytes");
    node.app
        .assert_unchanged(&before, "after the oversized message")
        .await;
    // And the server still serves.
    node.app.receive(P_ONE_DAY).await;
}
