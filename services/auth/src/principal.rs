//! Principals: who a verified caller is, and the roles the policy knows.

use motcua_proto::v1::Actor;
use serde::{Deserialize, Serialize};

/// What a principal is allowed to do, by kind (see `policy.rs` for the table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The province's administrators: everything.
    Admin,
    /// A unit's administrator: everything within their units.
    UnitAdmin,
    /// One-stop counter officers: receive dossiers and record counter steps for dossiers
    /// received by their units.
    CounterOfficer,
    /// Officers of a competent authority: advance dossiers assigned to their units.
    ProcessingOfficer,
    /// Monitoring teams: aggregates only, no dossier, no personal data, no writes.
    Monitor,
    /// Services (the deadline watcher, the portal adapter) when they call over the network:
    /// reads only.
    System,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Admin,
        Role::UnitAdmin,
        Role::CounterOfficer,
        Role::ProcessingOfficer,
        Role::Monitor,
        Role::System,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::UnitAdmin => "unit_admin",
            Self::CounterOfficer => "counter_officer",
            Self::ProcessingOfficer => "processing_officer",
            Self::Monitor => "monitor",
            Self::System => "system",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`, or the terminal's subject: what events record as the officer.
    pub subject: String,
    pub role: Role,
    /// The agency ids the principal acts for (empty for province-wide roles).
    pub units: Vec<String>,
    /// How it was established: `token`, `certificate` or `trusted-metadata`.
    pub via: &'static str,
}

/// Whether `subject` can name a principal: 1-128 characters, none of them control characters
/// (it is recorded on events and written to logs).
pub fn is_valid_subject(subject: &str) -> bool {
    !subject.is_empty() && subject.len() <= 128 && !subject.chars().any(char::is_control)
}

impl Principal {
    /// Whether the principal acts for `unit`.
    pub fn acts_for(&self, unit: &str) -> bool {
        self.units.iter().any(|u| u == unit)
    }

    /// The actor recorded on the events it causes: always the authenticated one.
    pub fn actor(&self) -> Actor {
        Actor {
            officer_id: self.subject.clone(),
            unit_id: self.units.first().cloned().unwrap_or_default(),
            // The proto's principal kind: people are officers whatever their role (the role is
            // an authorization matter, not a fact about the dossier); services are "system".
            kind: match self.role {
                Role::System => "system",
                _ => "officer",
            }
            .to_owned(),
        }
    }
}
