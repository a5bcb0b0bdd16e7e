//! A micro check that a batch of trivial calls stays cheap. It prints the per-call
//! cost; it does not assert tight timings (benches/ guard performance).

mod common;

use std::time::{Duration, Instant};

use fanout_resolver_worker::ResolveOutcome;
use serde_json::json;

#[tokio::test]
async fn ten_thousand_trivial_calls_in_one_batch() {
    let source = "import fanout\n\n@fanout.resolver('trivial')\ndef trivial(event, args, ctx):\n    return event\n\n@fanout.resolver('skip')\ndef skip(event, args, ctx):\n    return None\n";
    let (_dir, rt) = common::runtime("throughput", source, Duration::from_secs(1));
    let event = common::event(json!({"id": 42, "status": "paid", "cents": 1250}));
    for field in ["skip", "trivial"] {
        let calls: Vec<_> = (0..10_000)
            .map(|_| common::call(field, json!({"id": "42"})))
            .collect();
        // Warm up once, then measure.
        common::resolve(&rt, event.clone(), calls.clone()).await;
        let started = Instant::now();
        let outcomes = common::resolve(&rt, event.clone(), calls).await;
        let elapsed = started.elapsed();
        assert_eq!(outcomes.len(), 10_000);
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, ResolveOutcome::Value(_) | ResolveOutcome::Skip))
        );
        println!(
            "{field}: 10,000 calls in {elapsed:?} = {:.2} µs per call",
            elapsed.as_secs_f64() * 1e6 / 10_000.0
        );
        assert!(
            elapsed < Duration::from_secs(5),
            "10,000 calls took {elapsed:?}"
        );
    }
}
