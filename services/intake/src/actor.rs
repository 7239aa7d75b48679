//! Who is calling. Until token authentication lands (issue 7), the caller is identified by the
//! `x-motcua-officer` and `x-motcua-unit` metadata; this module is the one place that reads
//! them, so replacing it with verified token claims changes nothing else. Whatever a request
//! body says, the actor recorded on an event is the one established here.

use motcua_domain::ids::AgencyId;
use motcua_proto::v1::Actor;
use tonic::metadata::MetadataMap;

use crate::error::IntakeError;

pub const OFFICER_HEADER: &str = "x-motcua-officer";
pub const UNIT_HEADER: &str = "x-motcua-unit";

/// The caller of a request.
pub fn from_metadata(metadata: &MetadataMap) -> Result<Actor, IntakeError> {
    let officer = metadata
        .get(OFFICER_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            IntakeError::Unauthenticated(format!(
                "the call carries no '{OFFICER_HEADER}' metadata naming the officer"
            ))
        })?;
    if officer.len() > 128 || officer.chars().any(char::is_control) {
        return Err(IntakeError::Unauthenticated(format!(
            "'{OFFICER_HEADER}' must be 1-128 printable characters"
        )));
    }
    let unit = match metadata.get(UNIT_HEADER).and_then(|v| v.to_str().ok()) {
        Some(unit) if !unit.trim().is_empty() => AgencyId::parse(unit.trim())
            .map_err(|e| IntakeError::Unauthenticated(format!("'{UNIT_HEADER}' {e}")))?
            .as_str()
            .to_owned(),
        _ => String::new(),
    };
    Ok(Actor {
        officer_id: officer.to_owned(),
        unit_id: unit,
        kind: "officer".into(),
    })
}
