//! One call of a trivial Python resolver through `PythonRuntime::resolve_batch`: the hop
//! to the dedicated Python thread, JSON ⇄ Python conversion, the call, and the way back.
//! A batch of 100 calls (100 shapes of one event) shows the per-call cost once the hop
//! is shared.

use std::path::PathBuf;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput};
use fanout_core::security::SecurityContext;
use fanout_resolver_worker::{EventInput, PythonConfig, PythonRuntime, ResolveCall};
use serde_json::{Map, json};

pub fn bench(c: &mut Criterion) {
    let resolvers =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/hot_path/trivial_resolvers.py");
    let runtime =
        PythonRuntime::start(PythonConfig::new(resolvers)).expect("the trivial resolver imports");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let event = Arc::new(EventInput {
        channel: "orders.42".into(),
        payload: json!({"id": "42", "status": "paid", "cents": 1999, "items": [], "note": "1:2"}),
        ..Default::default()
    });
    let mut args = Map::new();
    args.insert("id".into(), json!("42"));
    let call = ResolveCall {
        field: "orderUpdated".into(),
        args,
        security: SecurityContext::default(),
    };
    let mut group = c.benchmark_group("python_resolver");
    for calls in [1usize, 100] {
        let batch = vec![call.clone(); calls];
        group.throughput(Throughput::Elements(calls as u64));
        group.bench_with_input(
            BenchmarkId::new("calls_per_batch", calls),
            &batch,
            |b, batch| b.iter(|| rt.block_on(runtime.resolve_batch(event.clone(), batch.clone()))),
        );
    }
    group.finish();
}
