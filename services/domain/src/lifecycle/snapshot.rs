//! A dossier's folded state as readers store it (the rates projector's read model, the deadline
//! watcher's), so the next event is applied to it without reading the dossier's history again
//! (a reader may not have it: in the distributed mode it reads only Kafka).
//!
//! JSON, so an operator can read it in SQL; the few contract messages inside it (procedure,
//! rule versions) are kept as base64 protobuf, which round-trips every field exactly.

use super::DossierState;
use crate::outcome::SupplementEpisode;
use crate::time::Instant;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use motcua_proto::v1 as pb;
use prost::Message;
use serde::{Deserialize, Serialize};

/// The stored form of [`DossierState`]; see the module docs.
#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    dossier_id: String,
    version: u64,
    status: i32,
    resume_status: i32,
    channel: i32,
    /// `ProcedureRef`, protobuf, base64.
    procedure: String,
    receiving_unit: String,
    competent_authority: String,
    applicant_type: i32,
    component_count: u32,
    submitted_at: Option<Instant>,
    accepted_at: Option<Instant>,
    due_at: Option<Instant>,
    appointment_at: Option<Instant>,
    ended_at: Option<Instant>,
    supplements: Vec<SupplementEpisode>,
    late_for_due: Option<Instant>,
    due_soon_for_due: Option<Instant>,
    current_department: Option<String>,
    step_due_at: Option<Instant>,
    fees_requested_vnd: u64,
    #[serde(default)]
    fees_requested_at: Option<Instant>,
    #[serde(default)]
    fee_bearing_since: Option<Instant>,
    paid_vnd: u64,
    paid_online: bool,
    #[serde(default)]
    paid_online_at: Option<Instant>,
    #[serde(default)]
    processing_started_at: Option<Instant>,
    /// Distinct digitised component documents. Snapshots written before documents were told
    /// apart hold only `digitized_components` (a count of records); they read back with no
    /// names, which is why a read model built by an older version is rebuilt, not followed.
    #[serde(default)]
    digitized_documents: Vec<String>,
    #[serde(default)]
    reused_documents: Vec<String>,
    #[serde(default)]
    digitized_at_reception_at: Option<Instant>,
    #[serde(default)]
    reused_at: Option<Instant>,
    result_digitized: bool,
    #[serde(default)]
    result_digitized_at: Option<Instant>,
    #[serde(default)]
    fully_digitized_at: Option<Instant>,
    electronic_result: bool,
    #[serde(default)]
    due_provisional: bool,
    /// `RuleVersions`, protobuf, base64.
    rules: String,
    created_at: Instant,
    updated_at: Instant,
}

/// A stored state that cannot be read back: written by an incompatible version, or edited.
#[derive(Debug, thiserror::Error)]
#[error("the stored state of dossier {dossier_id} cannot be read: {reason}")]
pub struct SnapshotError {
    pub dossier_id: String,
    pub reason: String,
}

/// The JSON stored for `state`.
pub fn encode(state: &DossierState) -> String {
    let snapshot = Snapshot {
        dossier_id: state.dossier_id.clone(),
        version: state.version,
        status: state.status as i32,
        resume_status: state.resume_status as i32,
        channel: state.channel as i32,
        procedure: STANDARD.encode(state.procedure.encode_to_vec()),
        receiving_unit: state.units.receiving_unit.clone(),
        competent_authority: state.units.competent_authority.clone(),
        applicant_type: state.applicant_type as i32,
        component_count: state.component_count,
        submitted_at: state.submitted_at,
        accepted_at: state.accepted_at,
        due_at: state.due_at,
        appointment_at: state.appointment_at,
        ended_at: state.ended_at,
        supplements: state.supplements.clone(),
        late_for_due: state.late_for_due,
        due_soon_for_due: state.due_soon_for_due,
        current_department: state.current_department.clone(),
        step_due_at: state.step_due_at,
        fees_requested_vnd: state.fees_requested_vnd,
        fees_requested_at: state.fees_requested_at,
        fee_bearing_since: state.fee_bearing_since,
        paid_vnd: state.paid_vnd,
        paid_online: state.paid_online,
        paid_online_at: state.paid_online_at,
        processing_started_at: state.processing_started_at,
        digitized_documents: state.digitized_documents.clone(),
        reused_documents: state.reused_documents.clone(),
        digitized_at_reception_at: state.digitized_at_reception_at,
        reused_at: state.reused_at,
        result_digitized: state.result_digitized,
        result_digitized_at: state.result_digitized_at,
        fully_digitized_at: state.fully_digitized_at,
        electronic_result: state.electronic_result,
        due_provisional: state.due_provisional,
        rules: STANDARD.encode(state.rules.encode_to_vec()),
        created_at: state.created_at,
        updated_at: state.updated_at,
    };
    // Serialising plain data (strings, numbers, timestamps) to a String cannot fail.
    serde_json::to_string(&snapshot).unwrap_or_default()
}

/// Reads back what [`encode`] wrote.
pub fn decode(dossier_id: &str, json: &str) -> Result<DossierState, SnapshotError> {
    let error = |reason: String| SnapshotError {
        dossier_id: dossier_id.to_owned(),
        reason,
    };
    let s: Snapshot = serde_json::from_str(json).map_err(|e| error(e.to_string()))?;
    let bytes = |text: &str| STANDARD.decode(text).map_err(|e| error(e.to_string()));
    let procedure = pb::ProcedureRef::decode(bytes(&s.procedure)?.as_slice())
        .map_err(|e| error(format!("procedure: {e}")))?;
    let rules = pb::RuleVersions::decode(bytes(&s.rules)?.as_slice())
        .map_err(|e| error(format!("rules: {e}")))?;
    let status = |code: i32| {
        pb::DossierStatus::try_from(code).map_err(|_| error(format!("unknown status {code}")))
    };
    Ok(DossierState {
        dossier_id: s.dossier_id,
        version: s.version,
        status: status(s.status)?,
        resume_status: status(s.resume_status)?,
        channel: pb::Channel::try_from(s.channel).unwrap_or(pb::Channel::Unspecified),
        procedure,
        units: pb::DossierUnits {
            receiving_unit: s.receiving_unit,
            competent_authority: s.competent_authority,
        },
        applicant_type: pb::ApplicantType::try_from(s.applicant_type)
            .unwrap_or(pb::ApplicantType::Unspecified),
        component_count: s.component_count,
        submitted_at: s.submitted_at,
        accepted_at: s.accepted_at,
        due_at: s.due_at,
        appointment_at: s.appointment_at,
        ended_at: s.ended_at,
        supplements: s.supplements,
        late_for_due: s.late_for_due,
        due_soon_for_due: s.due_soon_for_due,
        current_department: s.current_department,
        step_due_at: s.step_due_at,
        fees_requested_vnd: s.fees_requested_vnd,
        fees_requested_at: s.fees_requested_at,
        fee_bearing_since: s.fee_bearing_since,
        paid_vnd: s.paid_vnd,
        paid_online: s.paid_online,
        paid_online_at: s.paid_online_at,
        processing_started_at: s.processing_started_at,
        digitized_documents: s.digitized_documents,
        reused_documents: s.reused_documents,
        digitized_at_reception_at: s.digitized_at_reception_at,
        reused_at: s.reused_at,
        result_digitized: s.result_digitized,
        result_digitized_at: s.result_digitized_at,
        fully_digitized_at: s.fully_digitized_at,
        electronic_result: s.electronic_result,
        due_provisional: s.due_provisional,
        rules,
        created_at: s.created_at,
        updated_at: s.updated_at,
    })
}
