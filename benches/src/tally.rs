//! Delivery counts and latency of one client process, mergeable across processes.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency recorded (µs); slower deliveries are clamped to it.
const MAX_LATENCY_US: u64 = 600_000_000;
/// How many error messages a tally keeps as examples.
const ERROR_EXAMPLES: usize = 5;

/// What the subscribers of one process saw.
#[derive(Debug, Clone)]
pub struct Tally {
    pub expected: u64,
    pub received: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    /// Connections that failed to connect or subscribe, or were closed by the server.
    pub failed_connections: u64,
    pub errors: Vec<String>,
    /// Wall-clock time (µs since the epoch) of the last delivery.
    pub last_delivery_us: u64,
    pub latency: Histogram<u64>,
}

/// The serialized form: the histogram as raw (value, count) pairs, merged by re-recording.
#[derive(Debug, Serialize, Deserialize)]
pub struct TallyWire {
    pub expected: u64,
    pub received: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub failed_connections: u64,
    pub errors: Vec<String>,
    pub last_delivery_us: u64,
    pub latency_counts: Vec<(u64, u64)>,
}

impl Tally {
    pub fn new() -> Self {
        Self {
            expected: 0,
            received: 0,
            duplicates: 0,
            out_of_order: 0,
            failed_connections: 0,
            errors: Vec::new(),
            last_delivery_us: 0,
            latency: new_histogram(),
        }
    }

    pub fn record_latency(&mut self, us: u64) {
        let _ = self.latency.record(us.clamp(1, MAX_LATENCY_US));
    }

    pub fn note_error(&mut self, error: String) {
        if self.errors.len() < ERROR_EXAMPLES {
            self.errors.push(error);
        }
    }

    pub fn merge(&mut self, other: &Tally) {
        self.expected += other.expected;
        self.received += other.received;
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
        self.failed_connections += other.failed_connections;
        for e in &other.errors {
            self.note_error(e.clone());
        }
        self.last_delivery_us = self.last_delivery_us.max(other.last_delivery_us);
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }

    /// Messages expected but never received (duplicates do not count as received).
    pub fn lost(&self) -> u64 {
        self.expected
            .saturating_sub(self.received.saturating_sub(self.duplicates))
    }

    pub fn to_wire(&self) -> TallyWire {
        TallyWire {
            expected: self.expected,
            received: self.received,
            duplicates: self.duplicates,
            out_of_order: self.out_of_order,
            failed_connections: self.failed_connections,
            errors: self.errors.clone(),
            last_delivery_us: self.last_delivery_us,
            latency_counts: self
                .latency
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
        }
    }

    pub fn from_wire(wire: TallyWire) -> Self {
        let mut latency = new_histogram();
        for (value, count) in wire.latency_counts {
            let _ = latency.record_n(value.clamp(1, MAX_LATENCY_US), count);
        }
        Self {
            expected: wire.expected,
            received: wire.received,
            duplicates: wire.duplicates,
            out_of_order: wire.out_of_order,
            failed_connections: wire.failed_connections,
            errors: wire.errors,
            last_delivery_us: wire.last_delivery_us,
            latency,
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    // 3 significant digits over 1 µs ..= 10 min.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant bounds are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trip_keeps_percentiles() {
        let mut t = Tally::new();
        for us in 1..=10_000u64 {
            t.record_latency(us * 7);
        }
        t.expected = 10;
        t.received = 12;
        t.duplicates = 2;
        let wire = serde_json::to_string(&t.to_wire()).expect("serializes");
        let back = Tally::from_wire(serde_json::from_str(&wire).expect("parses"));
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(
                t.latency.value_at_quantile(q),
                back.latency.value_at_quantile(q)
            );
        }
        assert_eq!(back.lost(), 0);
        let mut merged = Tally::new();
        merged.merge(&back);
        merged.merge(&back);
        assert_eq!(merged.latency.len(), 20_000);
    }
}
