//! Restoring publish order at the edge (DESIGN §6).
//!
//! Each router stamps its deliveries to an edge with a sequence number per
//! (router, edge). Deliveries can arrive out of order because resolver workers in a
//! queue group finish out of order, so the edge releases them in sequence order. A gap
//! that outlives the reorder window (a worker died with the delivery) is counted,
//! logged and skipped: nothing waits forever. Sequence 0 means "not sequenced" and is
//! released at once.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use fanout_proto::v1::Delivery;

/// Reorder state of one router's stream of deliveries.
#[derive(Debug, Default)]
struct Stream {
    /// Next sequence number to release; `None` until the first delivery arrives.
    next: Option<u64>,
    /// Deliveries that arrived ahead of `next`.
    pending: BTreeMap<u64, Delivery>,
    /// When the current gap was first seen.
    gap_since: Option<Instant>,
}

/// What happened to deliveries besides being released in order.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReorderStats {
    /// Sequence numbers given up on after the reorder window.
    pub skipped: u64,
    /// Deliveries that arrived after their sequence number was skipped (dropped).
    pub late: u64,
}

/// Per-router reorder buffers of one edge.
#[derive(Debug)]
pub struct Reorder {
    window: Duration,
    max_pending: usize,
    streams: HashMap<String, Stream>,
    stats: ReorderStats,
}

impl Reorder {
    /// Buffers that wait at most `window` for a missing delivery and hold at most
    /// `max_pending` deliveries per router before skipping the gap.
    pub fn new(window: Duration, max_pending: usize) -> Self {
        Self {
            window,
            max_pending: max_pending.max(1),
            streams: HashMap::new(),
            stats: ReorderStats::default(),
        }
    }

    /// Counters since creation.
    pub fn stats(&self) -> ReorderStats {
        self.stats
    }

    /// Takes one delivery; appends to `out` every delivery that may now be released,
    /// in order.
    pub fn push(&mut self, delivery: Delivery, now: Instant, out: &mut Vec<Delivery>) {
        if delivery.seq == 0 {
            out.push(delivery);
            return;
        }
        let stream = self.streams.entry(delivery.router.clone()).or_default();
        // Routers number each edge's deliveries from 1, so a new stream starts there; an
        // edge that restarted under the same id skips the gap after the window.
        let next = *stream.next.get_or_insert(1);
        if delivery.seq < next {
            self.stats.late += 1;
            return;
        }
        stream.pending.insert(delivery.seq, delivery);
        release(stream, out);
        if stream.pending.is_empty() {
            stream.gap_since = None;
        } else {
            stream.gap_since.get_or_insert(now);
            if stream.pending.len() > self.max_pending {
                self.stats.skipped += skip_gap(stream, out);
            }
        }
    }

    /// Skips gaps older than the window; appends what that releases to `out`.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<Delivery>) {
        for stream in self.streams.values_mut() {
            if let Some(since) = stream.gap_since
                && now.duration_since(since) >= self.window
            {
                self.stats.skipped += skip_gap(stream, out);
                stream.gap_since = (!stream.pending.is_empty()).then_some(now);
            }
        }
    }

    /// Whether some router's stream is waiting for a missing delivery.
    pub fn has_gap(&self) -> bool {
        self.streams.values().any(|s| s.gap_since.is_some())
    }
}

/// Releases consecutive deliveries from `next` on.
fn release(stream: &mut Stream, out: &mut Vec<Delivery>) {
    while let Some(next) = stream.next {
        match stream.pending.remove(&next) {
            Some(d) => {
                out.push(d);
                stream.next = Some(next + 1);
            }
            None => break,
        }
    }
}

/// Gives up on the missing sequence numbers before the first pending delivery;
/// returns how many were skipped.
fn skip_gap(stream: &mut Stream, out: &mut Vec<Delivery>) -> u64 {
    let (Some(next), Some(first)) = (stream.next, stream.pending.keys().next().copied()) else {
        return 0;
    };
    let skipped = first.saturating_sub(next);
    tracing::warn!(
        from = next,
        to = first - 1,
        "delivery gap skipped after the reorder window"
    );
    stream.next = Some(first);
    release(stream, out);
    skipped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(router: &str, seq: u64) -> Delivery {
        Delivery {
            router: router.into(),
            seq,
            offset: seq,
            ..Default::default()
        }
    }

    fn seqs(out: &[Delivery]) -> Vec<u64> {
        out.iter().map(|d| d.seq).collect()
    }

    #[test]
    fn in_order_passes_through_and_out_of_order_is_restored() {
        let mut r = Reorder::new(Duration::from_secs(1), 100);
        let now = Instant::now();
        let mut out = Vec::new();
        r.push(d("a", 1), now, &mut out);
        r.push(d("a", 3), now, &mut out);
        r.push(d("a", 4), now, &mut out);
        assert_eq!(seqs(&out), vec![1]);
        assert!(r.has_gap());
        r.push(d("a", 2), now, &mut out);
        assert_eq!(seqs(&out), vec![1, 2, 3, 4]);
        assert!(!r.has_gap());
    }

    #[test]
    fn routers_are_independent_and_unsequenced_passes() {
        let mut r = Reorder::new(Duration::from_secs(1), 100);
        let now = Instant::now();
        let mut out = Vec::new();
        r.push(d("a", 2), now, &mut out);
        r.push(d("b", 1), now, &mut out);
        r.push(d("x", 0), now, &mut out);
        r.push(d("a", 1), now, &mut out);
        assert_eq!(seqs(&out), vec![1, 0, 1, 2]);
    }

    #[test]
    fn gaps_are_skipped_after_the_window_and_late_arrivals_dropped() {
        let mut r = Reorder::new(Duration::from_millis(100), 100);
        let start = Instant::now();
        let mut out = Vec::new();
        r.push(d("a", 1), start, &mut out);
        r.push(d("a", 3), start, &mut out);
        r.expire(start + Duration::from_millis(50), &mut out);
        assert_eq!(seqs(&out), vec![1]);
        r.expire(start + Duration::from_millis(150), &mut out);
        assert_eq!(seqs(&out), vec![1, 3]);
        assert_eq!(r.stats().skipped, 1);
        r.push(d("a", 2), start, &mut out);
        assert_eq!(r.stats().late, 1);
        assert_eq!(seqs(&out), vec![1, 3]);
    }

    #[test]
    fn too_many_pending_skips_without_waiting() {
        let mut r = Reorder::new(Duration::from_secs(60), 2);
        let now = Instant::now();
        let mut out = Vec::new();
        r.push(d("a", 1), now, &mut out);
        for s in 3..=5u64 {
            r.push(d("a", s), now, &mut out);
        }
        assert_eq!(seqs(&out), vec![1, 3, 4, 5]);
        assert_eq!(r.stats().skipped, 1);
    }
}
