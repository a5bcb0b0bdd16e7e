//! Draining an edge before it stops, so that its clients move to other edges without
//! a reconnect storm.
//!
//! [`Edge::drain`] marks the edge as draining (new upgrades are refused with 503, see
//! [`crate::server`]), then closes every open connection with 1012 (Service Restart)
//! in a shuffled order, one after the other, spread evenly over
//! [`EdgeConfig::drain_window`](crate::EdgeConfig::drain_window): with `n` connections
//! the `i`-th (from 0) closes at `window * (i + 1) / n` after the start, so the last one
//! closes when the window ends. Each close frees the connection's subscriptions as any
//! close does. A connection upgraded while the drain starts closes itself at once
//! ([`close_for_drain`] in [`crate::connection`]).
//!
//! Readiness is not this module's business: the role marks itself not ready before
//! it calls [`Edge::drain`].

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fanout_core::telemetry;
use tokio_util::sync::CancellationToken;

use crate::close::CloseReason;
use crate::edge::Edge;
use crate::outbound::Outbound;

impl Edge {
    /// Whether a drain has started, or was requested through `requested` (see
    /// [`Edge::follow_drain_request`]).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
            || self
                .drain_requested
                .get()
                .is_some_and(CancellationToken::is_cancelled)
    }

    /// Treats the edge as draining from the moment `requested` is cancelled (the
    /// admin `/drain` answers 202 at once; the drain task runs a moment later, and an
    /// upgrade in between must already be refused). Only the first call counts.
    pub fn follow_drain_request(&self, requested: CancellationToken) {
        let _ = self.drain_requested.set(requested);
    }

    /// Drains the edge: refuses new upgrades, then closes every open connection with
    /// 1012 spread over the drain window. Returns once the last connection was told to
    /// close (at once when there are none). A second call returns at once.
    pub async fn drain(self: Arc<Self>) {
        if self.draining.swap(true, Ordering::SeqCst) {
            return;
        }
        metrics::gauge!(telemetry::EDGE_DRAINING).set(1.0);
        let mut open: Vec<(u64, Outbound)> = self
            .open
            .iter()
            .map(|entry| (*entry.key(), entry.value().clone()))
            .collect();
        shuffle(&mut open);
        let window = self.config.drain_window;
        tracing::info!(
            connections = open.len(),
            window_ms = window.as_millis() as u64,
            "draining: closing connections with 1012"
        );
        let start = tokio::time::Instant::now();
        let n = open.len();
        for (i, (_, outbound)) in open.into_iter().enumerate() {
            tokio::time::sleep_until(start + close_offset(window, i, n)).await;
            close_for_drain(&outbound);
        }
        tracing::info!("drain done: every connection was asked to close");
    }
}

/// Closes one connection with 1012, counting it if this was its first close.
pub(crate) fn close_for_drain(outbound: &Outbound) {
    if outbound.close(CloseReason::ServiceRestart) {
        metrics::counter!(telemetry::EDGE_DRAIN_CLOSES).increment(1);
    }
}

/// When the `i`-th of `n` connections closes, after the drain started.
pub fn close_offset(window: Duration, i: usize, n: usize) -> Duration {
    if n == 0 {
        return Duration::ZERO;
    }
    let nanos = window.as_nanos() * (i as u128 + 1) / n as u128;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Puts the connections in a random order (sorted by a randomly keyed hash of their
/// keys), so which clients reconnect first differs from drain to drain.
fn shuffle(open: &mut [(u64, Outbound)]) {
    let order = RandomState::new();
    open.sort_by_cached_key(|(key, _)| order.hash_one(key));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_are_spread_evenly_and_end_with_the_window() {
        let window = Duration::from_secs(10);
        let offsets: Vec<Duration> = (0..4).map(|i| close_offset(window, i, 4)).collect();
        assert_eq!(
            offsets,
            [2500, 5000, 7500, 10_000].map(Duration::from_millis)
        );
        assert_eq!(close_offset(window, 0, 1), window);
        assert_eq!(close_offset(Duration::ZERO, 3, 5), Duration::ZERO);
        assert_eq!(close_offset(window, 0, 0), Duration::ZERO);
    }

    #[test]
    fn shuffle_keeps_every_connection() {
        let mut open: Vec<(u64, Outbound)> = (0..50).map(|k| (k, Outbound::new(1).0)).collect();
        shuffle(&mut open);
        let mut keys: Vec<u64> = open.iter().map(|(k, _)| *k).collect();
        assert_ne!(
            keys,
            (0..50).collect::<Vec<_>>(),
            "50 keys kept their order"
        );
        keys.sort_unstable();
        assert_eq!(keys, (0..50).collect::<Vec<_>>());
    }
}
