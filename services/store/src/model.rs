//! The values that cross the store's boundary.

use std::fmt;

use chrono::{DateTime, Utc};

/// An event to append. `seq` must continue the dossier's sequence from `expected_version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub event_id: String,
    pub seq: u64,
    /// Stable event type name ("received", "resolved", ...), for readers that filter.
    pub event_type: String,
    /// Server recording time.
    pub recorded_at: DateTime<Utc>,
    /// The encoded `motcua.v1.DossierEvent`.
    pub payload: Vec<u8>,
}

/// An event as stored, with its global position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Global position: a total order of all committed events, starting at 1.
    pub position: u64,
    pub dossier_id: String,
    pub seq: u64,
    pub event_id: String,
    pub event_type: String,
    pub recorded_at: DateTime<Utc>,
    pub request_id: String,
    pub payload: Vec<u8>,
}

/// The searchable summary of a dossier, kept beside its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DossierRow {
    pub dossier_id: String,
    pub version: u64,
    /// National portal status code 1-10.
    pub status: i32,
    /// Channel code 1-3.
    pub channel: i32,
    pub procedure_code: String,
    pub receiving_unit: String,
    pub competent_authority: String,
    /// The scoring due date, if any.
    pub due_at: Option<DateTime<Utc>>,
    /// Whether the dossier is accepted and not ended, so it can become overdue.
    pub open: bool,
    pub updated_at: DateTime<Utc>,
}

/// Personal data of a dossier's applicant. Its `Debug` shows nothing, so it cannot reach a log
/// by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct PersonalData {
    pub applicant_name: String,
    pub identity_number: String,
    pub phone: String,
}

impl fmt::Debug for PersonalData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PersonalData(<redacted>)")
    }
}

/// One command's append.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub dossier_id: String,
    /// The version the command was decided against (0: the dossier must not exist).
    pub expected_version: u64,
    pub request_id: String,
    /// A digest of the command's content: the same request id with another fingerprint is a
    /// different command and is refused.
    pub fingerprint: Vec<u8>,
    pub events: Vec<NewEvent>,
    /// The dossier's summary after these events.
    pub row: DossierRow,
    /// Set by creation commands.
    pub personal_data: Option<PersonalData>,
    /// Set by a creation whose dossier code the caller chose: the agency's daily sequence is
    /// raised to at least this number in the same transaction, so the server never allocates
    /// the same code later.
    pub claimed_number: Option<ClaimedNumber>,
}

/// A daily dossier number taken by a caller-chosen code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedNumber {
    pub agency: String,
    pub day: chrono::NaiveDate,
    pub number: u32,
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The events were appended.
    Appended(Vec<StoredEvent>),
    /// The request id had been recorded with the same content: these are the original events,
    /// and nothing new was appended.
    Replayed(Vec<StoredEvent>),
}

impl AppendOutcome {
    pub fn events(&self) -> &[StoredEvent] {
        match self {
            Self::Appended(events) | Self::Replayed(events) => events,
        }
    }
}

/// What a request id recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub fingerprint: Vec<u8>,
    pub events: Vec<StoredEvent>,
}

/// Where a page of a dossier list starts (exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageKey {
    /// After this dossier id (lists ordered by id).
    Dossier(String),
    /// After this (due date, dossier id) (overdue lists, oldest due first).
    Due(DateTime<Utc>, String),
}

/// A dossier list query.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub receiving_unit: Option<String>,
    pub competent_authority: Option<String>,
    /// Status codes; empty means all.
    pub statuses: Vec<i32>,
    /// Only open dossiers whose due date is before this instant, oldest due first.
    pub overdue_at: Option<DateTime<Utc>>,
    pub after: Option<PageKey>,
    pub limit: u32,
}
