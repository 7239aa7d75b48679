//! Hostile input, fuzzed (issue 7): property tests feeding arbitrary bytes to the protobuf
//! decoding of events and of every command request, and arbitrary field values to the command
//! validation. Nothing may panic; a refusal is a typed error that names fields, never the
//! applicant's personal data; and what decodes from garbage folds or is refused cleanly.
//!
//! A short run is part of the test suite (256 cases per property); for a longer one set
//! `MOTCUA_FUZZ_CASES`, e.g. `MOTCUA_FUZZ_CASES=100000 cargo test -p motcua-intake --test fuzz`.

use chrono::TimeZone;
use motcua_domain::catalog::ProcedureCatalogue;
use motcua_domain::lifecycle::DossierState;
use motcua_intake::error::IntakeError;
use motcua_intake::validate::{self, ValidCommand, ValidationContext};
use motcua_proto::v1 as pb;
use proptest::prelude::*;
use prost::Message;

fn cases() -> u32 {
    std::env::var("MOTCUA_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn catalogue() -> &'static ProcedureCatalogue {
    static CATALOGUE: std::sync::OnceLock<ProcedureCatalogue> = std::sync::OnceLock::new();
    CATALOGUE.get_or_init(ProcedureCatalogue::sample)
}

fn ctx() -> ValidationContext<'static> {
    ValidationContext {
        now: chrono::Utc
            .with_ymd_and_hms(2026, 12, 2, 3, 0, 0)
            .single()
            .expect("a time"),
        catalogue: catalogue(),
    }
}

type Validator<R> = fn(&R, ValidationContext<'_>) -> Result<ValidCommand, IntakeError>;

/// Decodes `bytes` as `R` and, if that works, validates it; the error (if any) must map to a
/// status the client can act on.
fn decode_and_validate<R: Message + Default>(bytes: &[u8], validator: Validator<R>) {
    if let Ok(request) = R::decode(bytes)
        && let Err(error) = validator(&request, ctx())
    {
        let status = tonic::Status::from(error);
        assert!(
            matches!(
                status.code(),
                tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition
            ),
            "{status:?}"
        );
    }
}

/// Every command's validation on the same bytes.
fn every_validator(bytes: &[u8]) {
    decode_and_validate(bytes, validate::receive);
    decode_and_validate(bytes, validate::submit_online);
    decode_and_validate(bytes, validate::accept_online);
    decode_and_validate(bytes, validate::refuse);
    decode_and_validate(bytes, validate::forward);
    decode_and_validate(bytes, validate::request_supplement);
    decode_and_validate(bytes, validate::receive_supplement);
    decode_and_validate(bytes, validate::request_fees);
    decode_and_validate(bytes, validate::record_payment);
    decode_and_validate(bytes, validate::record_digitization);
    decode_and_validate(bytes, validate::resolve);
    decode_and_validate(bytes, validate::return_result);
    decode_and_validate(bytes, validate::withdraw);
    decode_and_validate(bytes, validate::stop_processing);
    decode_and_validate(bytes, validate::extend_due_date);
    decode_and_validate(bytes, validate::change_procedure);
    if let Ok(request) = pb::ListDossiersRequest::decode(bytes) {
        let _ = validate::list_request(&request);
    }
    if let Ok(request) = pb::GetDossierRequest::decode(bytes) {
        let _ = validate::dossier_id_only(&request.dossier_id);
    }
}

/// A valid event history (received, forwarded, resolved), encoded, to mutate.
fn real_history() -> Vec<Vec<u8>> {
    let at = |s: i64| prost_types::Timestamp {
        seconds: 1_796_000_000 + s,
        nanos: 0,
    };
    let base = |seq: u64, payload: pb::dossier_event::Payload| pb::DossierEvent {
        event_id: format!("0190a0b0-0000-7000-8000-00000000000{seq}"),
        dossier_id: "000.00.01.H22-261202-0001".into(),
        seq,
        recorded_at: Some(at(seq as i64 * 60)),
        request_id: format!("r-{seq}"),
        actor: Some(pb::Actor {
            officer_id: "officer-1".into(),
            unit_id: "000.00.01.H22".into(),
            kind: "officer".into(),
        }),
        payload: Some(payload),
        ..Default::default()
    };
    [
        base(
            1,
            pb::dossier_event::Payload::Received(pb::Received {
                channel: pb::Channel::Counter as i32,
                procedure: Some(pb::ProcedureRef {
                    code: "1.001193".into(),
                    ..Default::default()
                }),
                units: Some(pb::DossierUnits {
                    receiving_unit: "000.00.01.H22".into(),
                    competent_authority: "000.00.01.H22".into(),
                }),
                accepted_at: Some(at(60)),
                due_at: Some(at(86_400)),
                ..Default::default()
            }),
        ),
        base(
            2,
            pb::dossier_event::Payload::Forwarded(pb::Forwarded::default()),
        ),
        base(
            3,
            pb::dossier_event::Payload::Resolved(pb::Resolved::default()),
        ),
    ]
    .iter()
    .map(Message::encode_to_vec)
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Garbage never panics the event decoder, and whatever decodes folds or is refused.
    #[test]
    fn arbitrary_bytes_decode_and_fold_without_panics(
        history in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..400), 1..6)
    ) {
        let events: Vec<pb::DossierEvent> = history
            .iter()
            .filter_map(|bytes| pb::DossierEvent::decode(bytes.as_slice()).ok())
            .collect();
        let _ = DossierState::fold(&events);
    }

    /// A real history with bytes flipped, cut or inserted: decoding and folding stay total.
    #[test]
    fn mutated_real_events_decode_and_fold_without_panics(
        mutations in proptest::collection::vec((0usize..3, any::<usize>(), any::<u8>(), 0u8..3), 1..12)
    ) {
        let mut history = real_history();
        for (event, at, byte, how) in mutations {
            let bytes = &mut history[event];
            if bytes.is_empty() {
                continue;
            }
            let at = at % bytes.len();
            match how {
                0 => bytes[at] ^= byte,
                1 => bytes.truncate(at),
                _ => bytes.insert(at, byte),
            }
        }
        let events: Vec<pb::DossierEvent> = history
            .iter()
            .filter_map(|bytes| pb::DossierEvent::decode(bytes.as_slice()).ok())
            .collect();
        if let Ok(Some(state)) = DossierState::fold(&events) {
            // A state that folds is one a reader can use: its version is its history's.
            prop_assert_eq!(state.version as usize, events.len());
        }
    }

    /// Garbage as every command request: validation never panics and refuses with a status.
    #[test]
    fn arbitrary_bytes_as_every_request_validate_without_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..600)
    ) {
        every_validator(&bytes);
    }

    /// Arbitrary field values on a new dossier: refusals never echo personal data.
    #[test]
    fn refusals_never_echo_the_applicants_personal_data(
        name in "\\PC{0,260}",
        identity in "[0-9A-Za-z \\-]{0,30}",
        phone in "[0-9+ ]{0,30}",
        procedure in "[0-9.]{0,12}",
        unit in "[0-9A-Z.]{0,16}",
        request_id in "[ -~]{0,140}",
        components in any::<u32>(),
        channel in -2i32..6,
        stated in proptest::option::of((any::<i64>(), any::<i32>())),
    ) {
        let request = pb::ReceiveRequest {
            meta: Some(pb::CommandMeta {
                request_id,
                expected_version: None,
                stated_at: stated.map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos }),
            }),
            dossier: Some(pb::NewDossier {
                dossier_code: String::new(),
                procedure_code: procedure,
                receiving_unit: unit,
                competent_authority: String::new(),
                applicant: Some(pb::Applicant {
                    r#type: pb::ApplicantType::Person as i32,
                    name: name.clone(),
                    identity_number: identity.clone(),
                    phone: phone.clone(),
                }),
                component_count: components,
            }),
            channel,
        };
        if let Err(error) = validate::receive(&request, ctx()) {
            let shown = format!("{error} {error:?}");
            let status = tonic::Status::from(error);
            let shown = format!("{shown} {}", status.message());
            for secret in [&name, &identity, &phone] {
                let secret = secret.trim();
                if secret.chars().count() >= 5 {
                    prop_assert!(
                        !shown.contains(secret),
                        "a refusal echoes personal data {:?}: {}", secret, shown
                    );
                }
            }
        }
    }
}

/// The history the mutations start from is a valid one (else they would prove little).
#[test]
fn the_unmutated_history_folds() {
    let events: Vec<pb::DossierEvent> = real_history()
        .iter()
        .map(|bytes| pb::DossierEvent::decode(bytes.as_slice()).expect("decodes"))
        .collect();
    let state = DossierState::fold(&events)
        .expect("folds")
        .expect("a dossier");
    assert_eq!(state.version, 3);
}
