//! How a stored event becomes a Kafka record's headers.

use rdkafka::message::{Header, OwnedHeaders};
use sha2::{Digest, Sha256};

use motcua_store::StoredEvent;
use motcua_telemetry::TraceParent;

/// Header with the stored event type.
pub const EVENT_TYPE_HEADER: &str = "motcua-event-type";
/// Header with the version of the value's schema.
pub const SCHEMA_VERSION_HEADER: &str = "motcua-schema-version";
/// Header with the event's global position.
pub const POSITION_HEADER: &str = "motcua-position";
/// Header with the event's seq in its dossier.
pub const SEQ_HEADER: &str = "motcua-seq";
/// The W3C trace-context header.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// The schema version of `motcua.v1.DossierEvent` values.
pub const SCHEMA_VERSION: &str = "1";

/// The record headers of an event.
pub fn headers(event: &StoredEvent) -> OwnedHeaders {
    let position = event.position.to_string();
    let seq = event.seq.to_string();
    let traceparent = traceparent(event);
    OwnedHeaders::new_with_capacity(5)
        .insert(Header {
            key: EVENT_TYPE_HEADER,
            value: Some(event.event_type.as_str()),
        })
        .insert(Header {
            key: SCHEMA_VERSION_HEADER,
            value: Some(SCHEMA_VERSION),
        })
        .insert(Header {
            key: POSITION_HEADER,
            value: Some(position.as_str()),
        })
        .insert(Header {
            key: SEQ_HEADER,
            value: Some(seq.as_str()),
        })
        .insert(Header {
            key: TRACEPARENT_HEADER,
            value: Some(traceparent.as_str()),
        })
}

/// The event's W3C `traceparent`: the one the intake recorded on it (the trace of the call
/// that caused it, see `motcua_telemetry`), or, for events recorded before that existed, one
/// derived from the event itself.
///
/// The derived one is deterministic, so a republished event carries the same header: the trace id is the first
/// 16 bytes of SHA-256 of the request id (so every event of one command shares a trace), the
/// parent id the first 8 bytes of SHA-256 of the event id. Flags `01` (sampled). All-zero ids
/// are invalid in W3C trace context; a hash that starts with 16 (or 8) zero bytes is not
/// going to happen, but is mapped to a non-zero id anyway.
pub fn traceparent(event: &StoredEvent) -> String {
    if let Ok(recorded) = <TraceField as prost::Message>::decode(event.payload.as_slice())
        && TraceParent::parse(&recorded.traceparent).is_some()
    {
        return recorded.traceparent;
    }
    let trace = Sha256::digest(event.request_id.as_bytes());
    let parent = Sha256::digest(event.event_id.as_bytes());
    let mut derived = TraceParent {
        trace_id: [0; 16],
        span_id: [0; 8],
        sampled: true,
    };
    derived.trace_id.copy_from_slice(&trace[..16]);
    derived.span_id.copy_from_slice(&parent[..8]);
    make_valid(&mut derived.trace_id);
    make_valid(&mut derived.span_id);
    derived.to_string()
}

/// An all-zero id is invalid in W3C trace context: its last byte becomes 1.
fn make_valid(id: &mut [u8]) {
    if id.iter().all(|b| *b == 0)
        && let Some(last) = id.last_mut()
    {
        *last = 1;
    }
}

/// `DossierEvent.traceparent` (field 9) alone: the relay reads it from every event on its
/// hot path, and decoding only this field skips the payload's strings and sub-messages.
#[derive(Clone, PartialEq, prost::Message)]
struct TraceField {
    #[prost(string, tag = "9")]
    traceparent: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> StoredEvent {
        StoredEvent {
            position: 42,
            dossier_id: "000.00.01.H38-250303-0001".to_owned(),
            seq: 3,
            event_id: "0195b1c2-0000-7000-8000-000000000001".to_owned(),
            event_type: "resolved".to_owned(),
            recorded_at: chrono::DateTime::UNIX_EPOCH,
            request_id: "req-1".to_owned(),
            payload: vec![1, 2, 3],
        }
    }

    #[test]
    fn traceparent_is_w3c_shaped_and_deterministic() {
        let header = traceparent(&event());
        assert_eq!(header.len(), 55);
        let parts: Vec<&str> = header.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0], "00");
        assert_eq!(parts[1].len(), 32);
        assert_eq!(parts[2].len(), 16);
        assert_eq!(parts[3], "01");
        assert!(parts[1..3].iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        }));
        assert_eq!(header, traceparent(&event()));

        // Same command, another event: same trace, another parent.
        let mut other = event();
        other.event_id.push('2');
        let other = traceparent(&other);
        assert_eq!(other[..35], header[..35]);
        assert_ne!(other[36..52], header[36..52]);
    }

    #[test]
    fn zero_ids_are_made_valid() {
        let mut id = [0u8, 0];
        make_valid(&mut id);
        assert_eq!(id, [0, 1]);
    }

    #[test]
    fn the_trace_recorded_on_the_event_is_the_header() {
        let recorded = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut stored = event();
        stored.payload = prost::Message::encode_to_vec(&motcua_proto::v1::DossierEvent {
            traceparent: recorded.into(),
            ..Default::default()
        });
        assert_eq!(traceparent(&stored), recorded);
    }

    #[test]
    fn headers_carry_the_event() {
        use rdkafka::message::Headers;
        let headers = headers(&event());
        let found: Vec<(String, String)> = headers
            .iter()
            .map(|h| {
                (
                    h.key.to_owned(),
                    String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                )
            })
            .collect();
        assert_eq!(
            found[..4],
            [
                (EVENT_TYPE_HEADER.to_owned(), "resolved".to_owned()),
                (SCHEMA_VERSION_HEADER.to_owned(), "1".to_owned()),
                (POSITION_HEADER.to_owned(), "42".to_owned()),
                (SEQ_HEADER.to_owned(), "3".to_owned()),
            ]
        );
        assert_eq!(found[4].0, TRACEPARENT_HEADER);
    }
}
