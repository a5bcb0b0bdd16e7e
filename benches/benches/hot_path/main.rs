//! Criterion micro-benchmarks of Fanout's hot path, one group per step an event takes:
//!
//! - [`projection`]: projecting a resolved payload onto a selection set (per shape).
//! - [`frames`]: finding a shape's local subscribers and building each `next` frame
//!   (per subscriber).
//! - [`proto`]: protobuf encode/decode of a `Delivery` (per event and edge).
//! - [`resolver`]: one call of a trivial Python resolver through the worker's runtime
//!   (per shape, when the field has a resolver).
//!
//! `cargo bench -p fanout-bench --bench hot_path`; each group sets `Throughput` so results
//! read as elements per second.

mod frames;
mod projection;
mod proto;
mod resolver;

use std::path::PathBuf;

use fanout_core::graphql::{Prepared, Schema, SubscribeRequest, prepare};

/// The bundled example's schema, which every load test uses too.
pub fn example_schema() -> Schema {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/orders/schema.graphql");
    let sdl = std::fs::read_to_string(&path).expect("the example schema is readable");
    Schema::parse(&sdl, "schema.graphql").expect("the example schema is valid")
}

/// Validates a subscription document against `schema`.
pub fn prepared(schema: &Schema, query: &str) -> (Prepared, SubscribeRequest) {
    let request = SubscribeRequest {
        query: query.to_string(),
        ..Default::default()
    };
    let prepared = prepare(schema, &request).expect("the benchmark documents are valid");
    (prepared, request)
}

criterion::criterion_group!(
    benches,
    projection::bench,
    frames::bench,
    proto::bench,
    resolver::bench
);
criterion::criterion_main!(benches);
