//! W3C trace context (`traceparent`) carried from the publish call to the edge.
//!
//! The gRPC publish API takes the caller's `traceparent` metadata (or starts a new
//! trace), keeps it in the event's headers, and every hop forwards a child of it:
//! resolve tasks and deliveries carry it as a NATS header, so one event can be followed
//! through router, worker and edge by its trace id in the logs. Exporting spans to an
//! OpenTelemetry collector is separate work.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// Header and metadata key.
pub const TRACEPARENT: &str = "traceparent";

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
}
