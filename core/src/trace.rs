//! W3C trace context (`traceparent`) carried from the publish call to the edge.
//!
//! The gRPC publish API takes the caller's `traceparent` metadata (or starts a new
//! trace), keeps it in the event's headers, and every hop forwards a child of it:
//! resolve tasks and deliveries carry it as a NATS header, so one event can be followed
//! through router, worker and edge by its trace id.
//!
//! Each hop also opens one span per event (never per subscriber), with target
//! [`SPAN_TARGET`]: `publish` (router gRPC handler), `dispatch` (partition owner),
//! `resolve` (worker, or the router for events without Python resolvers) and `deliver`
//! (edge). When spans are exported ([`crate::otel`]), [`set_parent`] links a span to the
//! incoming `traceparent` and [`outgoing`] hands the span's own ids to the next hop, so
//! the collector sees one trace per event. Without export the spans are disabled and
//! [`outgoing`] falls back to a fresh child id, as before.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Header and metadata key.
pub const TRACEPARENT: &str = "traceparent";

/// Target of the per-event spans; only the span exporter's filter enables it, so the
/// spans are free when nothing is exported.
pub const SPAN_TARGET: &str = "fanout::event";

/// Makes `span` a child of the remote span named by `traceparent`, when spans are
/// exported (a no-op otherwise, or for a missing or malformed value). Call it before
/// the span is first entered.
pub fn set_parent(span: &tracing::Span, traceparent: Option<&str>) {
    if !crate::otel::enabled() {
        return;
    }
    let Some(remote) = traceparent.and_then(span_context) else {
        return;
    };
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
}

/// The `traceparent` to send to the next hop from inside `span`: the span's own ids
/// when spans are exported, else a new child of `parent` (or a new trace).
pub fn outgoing(span: &tracing::Span, parent: Option<&str>) -> String {
    if crate::otel::enabled()
        && let Some(own) = of_span(span)
    {
        return own;
    }
    child_of(parent)
}

/// The publish hop: makes `span` a child of the publisher's context (its own valid
/// header, else the call's `incoming` metadata) and stores the `traceparent` the event
/// carries on in `headers`. Without span export this is [`ensure`].
pub fn publish(
    span: &tracing::Span,
    headers: &mut HashMap<String, String>,
    incoming: Option<&str>,
) {
    if crate::otel::enabled() {
        let parent = headers
            .get(TRACEPARENT)
            .filter(|v| is_valid(v))
            .cloned()
            .or_else(|| incoming.filter(|v| is_valid(v)).map(str::to_owned));
        set_parent(span, parent.as_deref());
        if let Some(own) = of_span(span) {
            headers.insert(TRACEPARENT.to_owned(), own);
            return;
        }
    }
    ensure(headers, incoming);
}

/// `span`'s exported context as a `traceparent`, if it has one.
fn of_span(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

/// The remote span context of a valid `traceparent`.
fn span_context(value: &str) -> Option<SpanContext> {
    if !is_valid(value) {
        return None;
    }
    let trace_id = TraceId::from_hex(&value[3..35]).ok()?;
    let span_id = SpanId::from_hex(&value[36..52]).ok()?;
    let flags = u8::from_str_radix(&value[53..55], 16).ok()?;
    Some(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    ))
}

/// Whether `value` is a well-formed version-00 `traceparent` with non-zero ids.
pub fn is_valid(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && parts[1].bytes().any(|b| b != b'0')
        && hex(parts[2], 16)
        && parts[2].bytes().any(|b| b != b'0')
        && hex(parts[3], 2)
}

/// The trace id of a valid `traceparent`.
pub fn trace_id(value: &str) -> Option<&str> {
    is_valid(value).then(|| &value[3..35])
}

/// A child of `parent` (same trace, new span id), or a new trace when `parent` is
/// missing or malformed.
pub fn child_of(parent: Option<&str>) -> String {
    match parent.filter(|p| is_valid(p)) {
        Some(p) => format!(
            "00-{}-{:016x}-{}",
            &p[3..35],
            nonzero(random_u64()),
            &p[53..55]
        ),
        None => format!(
            "00-{:016x}{:016x}-{:016x}-01",
            nonzero(random_u64()),
            random_u64(),
            nonzero(random_u64())
        ),
    }
}

/// Makes sure `headers` holds a `traceparent`: the publisher's own header if valid,
/// else a child of `incoming` (the call's metadata), else a new trace.
pub fn ensure(headers: &mut HashMap<String, String>, incoming: Option<&str>) {
    let valid_own = headers.get(TRACEPARENT).is_some_and(|v| is_valid(v));
    if !valid_own {
        headers.insert(TRACEPARENT.to_owned(), child_of(incoming));
    }
}

fn nonzero(v: u64) -> u64 {
    v.max(1)
}

/// Trace ids need to be unique, not secret: a per-process random hasher over a counter.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_keep_the_trace_and_new_traces_are_valid() {
        let root = child_of(None);
        assert!(is_valid(&root), "{root}");
        let child = child_of(Some(&root));
        assert!(is_valid(&child));
        assert_eq!(trace_id(&child), trace_id(&root));
        assert_ne!(child, root);
        assert!(!is_valid(
            "00-00000000000000000000000000000000-0000000000000001-01"
        ));
        assert!(!is_valid("garbage"));
        assert_ne!(trace_id(&child_of(Some("garbage"))), trace_id(&root));
    }

    #[test]
    fn ensure_keeps_a_valid_header_and_replaces_a_bad_one() {
        let mut h = HashMap::new();
        ensure(&mut h, None);
        let first = h[TRACEPARENT].clone();
        ensure(&mut h, None);
        assert_eq!(h[TRACEPARENT], first);
        h.insert(TRACEPARENT.into(), "bad".into());
        let parent = child_of(None);
        ensure(&mut h, Some(&parent));
        assert_eq!(trace_id(&h[TRACEPARENT]), trace_id(&parent));
    }

    #[test]
    fn a_traceparent_becomes_a_remote_span_context() {
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let sc = span_context(value).expect("valid");
        assert!(sc.is_remote() && sc.is_sampled());
        assert_eq!(
            format!("{:032x}-{:016x}", sc.trace_id(), sc.span_id()),
            "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"
        );
        assert!(span_context("garbage").is_none());
    }

    #[test]
    fn without_export_spans_fall_back_to_child_ids() {
        let parent = child_of(None);
        let out = outgoing(&tracing::Span::none(), Some(&parent));
        assert_eq!(trace_id(&out), trace_id(&parent));
        let mut h = HashMap::new();
        publish(&tracing::Span::none(), &mut h, Some(&parent));
        assert_eq!(trace_id(&h[TRACEPARENT]), trace_id(&parent));
    }
}
