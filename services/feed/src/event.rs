//! What a feed delivers: decoded events, and the records that could not be decoded.

use motcua_proto::v1::DossierEvent;
use prost::Message;

/// Where a record came from. Kept on every event and dead letter, so an operator can trace a
/// number in a read model back to the record that produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourcePosition {
    /// The event store's global position (the SQL feed).
    Sql { position: u64 },
    /// A Kafka partition and offset (the Kafka feed).
    Kafka { partition: i32, offset: i64 },
}

/// One event, decoded and checked: its key (dossier id) and its payload agree.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEvent {
    /// The dossier the event belongs to (the Kafka key, the store's `dossier_id` column).
    pub dossier_id: String,
    /// The event's place in its dossier's history, from 1: what duplicates are recognised by.
    pub seq: u64,
    /// The event type's stable name ("received", "resolved", ...), taken from the payload so
    /// that both feeds name it the same way whatever the headers or columns say.
    pub event_type: &'static str,
    /// The decoded event.
    pub event: DossierEvent,
    /// Where it was read.
    pub source: SourcePosition,
}

/// A record that is not a valid `DossierEvent`. It goes to the dead letters (the DLQ topic for
/// the Kafka feed, and the `feed_dead_letters` table for both), and the reader moves past it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poison {
    /// Why it was refused, for the operator.
    pub reason: String,
    /// The record's key, as received.
    pub key: Option<Vec<u8>>,
    /// The record's value, as received.
    pub payload: Option<Vec<u8>>,
    /// The record's headers, passed on to the dead-letter record.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Where it was read.
    pub source: SourcePosition,
}

/// What one record of a feed is.
// Nearly every record is an event: boxing it to shrink the rare poison variant would cost an
// allocation per event for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum RecordItem {
    Event(FeedEvent),
    Poison(Poison),
}

/// One record of a feed, with the position the reader stores once it has applied it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedRecord {
    /// The position to store after this record: where the reader resumes. For the SQL feed
    /// the record's global position (the reader asks for events after it); for Kafka the
    /// record's offset + 1 (Kafka's "next offset" convention, which the broker commit uses too).
    pub resume: i64,
    pub item: RecordItem,
}

/// Decodes a record: the payload must be a `DossierEvent` whose dossier id is the key, with a
/// seq from 1. Anything else is poison, with the reason.
pub fn decode(
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
    source: SourcePosition,
) -> Result<FeedEvent, String> {
    let key = key.ok_or_else(|| "the record has no key (the dossier id)".to_owned())?;
    let key = std::str::from_utf8(key)
        .map_err(|error| format!("the record's key is not UTF-8: {error}"))?;
    let payload = payload.ok_or_else(|| "the record has no value".to_owned())?;
    let event = DossierEvent::decode(payload)
        .map_err(|error| format!("the value is not a motcua.v1.DossierEvent: {error}"))?;
    if event.dossier_id != key {
        return Err(format!(
            "the key {key:?} is not the event's dossier id {:?}",
            event.dossier_id
        ));
    }
    if event.seq == 0 {
        return Err(format!(
            "event of dossier {key:?} has seq 0; seqs start at 1"
        ));
    }
    let event_type = event
        .payload
        .as_ref()
        .map_or("unknown", motcua_domain::lifecycle::event_type_name);
    Ok(FeedEvent {
        dossier_id: event.dossier_id.clone(),
        seq: event.seq,
        event_type,
        event,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use motcua_proto::v1::{Resolved, dossier_event::Payload};

    fn event(dossier_id: &str, seq: u64) -> Vec<u8> {
        DossierEvent {
            event_id: format!("{dossier_id}/{seq}"),
            dossier_id: dossier_id.to_owned(),
            seq,
            payload: Some(Payload::Resolved(Resolved::default())),
            ..DossierEvent::default()
        }
        .encode_to_vec()
    }

    const AT: SourcePosition = SourcePosition::Kafka {
        partition: 0,
        offset: 7,
    };

    #[test]
    fn a_matching_record_decodes() {
        let decoded =
            decode(Some(b"D1"), Some(&event("D1", 3)), AT).expect("a valid record decodes");
        assert_eq!(decoded.dossier_id, "D1");
        assert_eq!(decoded.seq, 3);
        assert_eq!(decoded.event_type, "resolved");
    }

    #[test]
    fn bad_records_are_poison_with_a_reason() {
        type Case<'a> = (Option<&'a [u8]>, Option<Vec<u8>>, &'a str);
        let cases: [Case<'_>; 5] = [
            (None, Some(event("D1", 1)), "no key"),
            (Some(b"D1"), None, "no value"),
            (
                Some(b"D1"),
                Some(b"\xff\xff\xff".to_vec()),
                "not a motcua.v1",
            ),
            (
                Some(b"D2"),
                Some(event("D1", 1)),
                "is not the event's dossier id",
            ),
            (Some(b"D1"), Some(event("D1", 0)), "seq 0"),
        ];
        for (key, payload, reason) in cases {
            let error = decode(key, payload.as_deref(), AT).expect_err("poison");
            assert!(
                error.contains(reason),
                "{error:?} should mention {reason:?}"
            );
        }
    }
}
