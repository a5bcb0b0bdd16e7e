//! Delivery counts and latency of one client process, mergeable across processes.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency recorded (µs); slower deliveries are clamped to it.
const MAX_LATENCY_US: u64 = 600_000_000;
/// How many error messages a tally keeps as examples.
const ERROR_EXAMPLES: usize = 5;

/// What the subscribers of one process saw. Serialized (child processes report it
/// as JSON) with the histogram as raw (value, count) pairs, merged by re-recording.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    #[serde(rename = "latency_counts", with = "latency_counts")]
    pub latency: Histogram<u64>,
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
}

/// A histogram as the (value, count) pairs it recorded.
mod latency_counts {
    use hdrhistogram::Histogram;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(h: &Histogram<u64>, s: S) -> Result<S::Ok, S::Error> {
        let pairs: Vec<(u64, u64)> = h
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect();
        pairs.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Histogram<u64>, D::Error> {
        let mut latency = super::new_histogram();
        for (value, count) in Vec::<(u64, u64)>::deserialize(d)? {
            let _ = latency.record_n(value.clamp(1, super::MAX_LATENCY_US), count);
        }
        Ok(latency)
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
        let wire = serde_json::to_string(&t).expect("serializes");
        let back: Tally = serde_json::from_str(&wire).expect("parses");
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
