//! Trace context across motcua (W3C Trace Context, `traceparent`).
//!
//! A gRPC call may bring a `traceparent`. The intake's span for the call takes it as its
//! parent, and the span's own context is written on every event the command causes
//! (`DossierEvent.traceparent`). The relay puts it in the Kafka record's `traceparent` header.
//! Every reader's span for a batch takes the first event's context as its parent and logs the
//! others. When OTLP export is configured (an OpenTelemetry layer on the `tracing`
//! subscriber), those spans are exported and join the caller's trace. When it is not, the
//! same ids are still generated and carried, so logs correlate across services.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The metadata / header name.
pub const TRACEPARENT: &str = "traceparent";

/// A parsed, valid `traceparent`: version 00, non-zero ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
}

impl TraceParent {
    /// Parses `00-<32 hex>-<16 hex>-<2 hex>`; anything else (including all-zero ids) is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || version != "00" || trace.len() != 32 || span.len() != 16 {
            return None;
        }
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        hex_into(trace, &mut trace_id)?;
        hex_into(span, &mut span_id)?;
        let mut flag = [0u8; 1];
        if flags.len() != 2 {
            return None;
        }
        hex_into(flags, &mut flag)?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            sampled: flag[0] & 1 == 1,
        })
    }

    /// A new trace (a call that brought none).
    pub fn new_root() -> Self {
        Self {
            trace_id: *uuid::Uuid::new_v4().as_bytes(),
            span_id: new_span_id(),
            sampled: true,
        }
    }

    /// A child of this context: same trace, a new span id.
    pub fn child(&self) -> Self {
        Self {
            span_id: new_span_id(),
            ..*self
        }
    }

    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }
}

impl std::fmt::Display for TraceParent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.span_id),
            u8::from(self.sampled)
        )
    }
}

fn new_span_id() -> [u8; 8] {
    let bytes = uuid::Uuid::new_v4();
    let mut id = [0u8; 8];
    id.copy_from_slice(&bytes.as_bytes()[..8]);
    if id == [0; 8] {
        id[7] = 1;
    }
    id
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

fn hex_into(text: &str, out: &mut [u8]) -> Option<()> {
    let bytes = text.as_bytes();
    for (i, slot) in out.iter_mut().enumerate() {
        let high = (bytes.get(2 * i)?).to_ascii_lowercase();
        let low = (bytes.get(2 * i + 1)?).to_ascii_lowercase();
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        *slot = (digit(high)? << 4) | digit(low)?;
    }
    Some(())
}

fn otel_context(parent: &TraceParent) -> opentelemetry::Context {
    let context = SpanContext::new(
        TraceId::from_bytes(parent.trace_id),
        SpanId::from_bytes(parent.span_id),
        if parent.sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        },
        true,
        TraceState::default(),
    );
    opentelemetry::Context::new().with_remote_span_context(context)
}

/// Makes `span` a child of `parent` (for the OTLP export; a no-op without it).
pub fn set_parent(span: &tracing::Span, parent: &TraceParent) {
    let _ = span.set_parent(otel_context(parent));
}

/// The trace context to record for work done in `span`, whose parent is `incoming` (if any).
/// With OTLP export on, it is the span's own exported context; without, a child of `incoming`
/// (or a new root), so the ids are carried all the same.
pub fn context_of(span: &tracing::Span, incoming: Option<&TraceParent>) -> TraceParent {
    if let Some(parent) = incoming {
        set_parent(span, parent);
    }
    let context = span.context();
    let own = context.span().span_context().clone();
    if own.is_valid() {
        return TraceParent {
            trace_id: own.trace_id().to_bytes(),
            span_id: own.span_id().to_bytes(),
            sampled: own.is_sampled(),
        };
    }
    incoming.map_or_else(TraceParent::new_root, TraceParent::child)
}

/// The `traceparent` a gRPC call brought, if valid.
pub fn from_metadata(metadata: &tonic::metadata::MetadataMap) -> Option<TraceParent> {
    metadata
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceParent::parse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_w3c_allows_and_nothing_else() {
        let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = TraceParent::parse(text).expect("valid");
        assert_eq!(parsed.to_string(), text);
        assert!(parsed.sampled);
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",
        ] {
            assert!(TraceParent::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_child_keeps_the_trace_and_changes_the_span() {
        let root = TraceParent::new_root();
        let child = root.child();
        assert_eq!(root.trace_id, child.trace_id);
        assert_ne!(root.span_id, child.span_id);
        assert_eq!(TraceParent::parse(&child.to_string()), Some(child));
    }

    #[test]
    fn without_an_exporter_the_context_is_a_child_of_the_callers() {
        let incoming = TraceParent::new_root();
        let span = tracing::info_span!("test");
        let context = context_of(&span, Some(&incoming));
        assert_eq!(context.trace_id, incoming.trace_id);
        assert_ne!(context.span_id, incoming.span_id);
    }
}
