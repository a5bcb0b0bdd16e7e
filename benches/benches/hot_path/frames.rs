//! Per subscriber: the shape index lookup, the queue item `Edge::deliver` makes per
//! connection (its subscriptions and the shared payload) and the WebSocket frames the
//! writer encodes from it into its write buffer (without the queue send and the socket
//! write).

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput};
use fanout_core::interest::InterestSink;
use fanout_core::security::SecurityContext;
use fanout_core::shape::{Shape, ShapeId};
use fanout_edge::next_target::NextTarget;
use fanout_edge::outbound::{Outbound, OutboundRx, Outgoing};
use fanout_edge::shape_index::{ShapeIndex, Subscriber};
use fanout_edge::ws_frame;

/// Interest goes nowhere: only the local index is measured.
struct NoInterest;

impl InterestSink for NoInterest {
    fn add(&self, _edge: &str, _shape: Arc<Shape>) {}
    fn remove(&self, _edge: &str, _channel: &str, _shape: ShapeId) {}
    fn drop_edge(&self, _edge: &str) {}
}

/// An index with `shapes` shapes on one channel and `per_shape` subscribers each, spread
/// over connections of `per_connection` subscriptions. The receivers are returned so
/// the queues stay open.
fn index(
    shapes: usize,
    per_shape: usize,
    per_connection: usize,
) -> (ShapeIndex, Vec<ShapeId>, Vec<OutboundRx>) {
    let schema = crate::example_schema();
    let index = ShapeIndex::default();
    let mut ids = Vec::with_capacity(shapes);
    let mut receivers = Vec::new();
    let mut id = 0;
    for s in 0..shapes {
        let query = format!(r#"subscription {{ chatMessage(room: "lobby") {{ s{s}: text }} }}"#);
        let (prepared, request) = crate::prepared(&schema, &query);
        let shape = Arc::new(Shape::new(prepared, request, &SecurityContext::default()));
        ids.push(shape.id);
        for _ in 0..per_shape.div_ceil(per_connection) {
            let (outbound, rx) = Outbound::new(1);
            receivers.push(rx);
            for _ in 0..per_connection {
                let subscriber = Subscriber {
                    outbound: outbound.clone(),
                    target: Arc::new(NextTarget::new(&id.to_string())),
                };
                index.insert(shape.clone(), subscriber, &NoInterest, "bench");
                id += 1;
            }
        }
    }
    (index, ids, receivers)
}

pub fn bench(c: &mut Criterion) {
    let payload = Bytes::from_static(br#"{"data":{"chatMessage":{"text":"12:1733300000000000"}}}"#);
    let mut buf = Vec::new();
    let mut group = c.benchmark_group("frames_per_subscriber");
    // Subscribers of one shape, and subscriptions per connection.
    for (subscribers, per_connection) in [(1usize, 1usize), (100, 1), (10_000, 1), (10_000, 100)] {
        let (index, ids, _receivers) = index(1, subscribers, per_connection);
        group.throughput(Throughput::Elements(subscribers as u64));
        group.bench_with_input(
            BenchmarkId::new(format!("{per_connection}_per_connection"), subscribers),
            &ids[0],
            |b, &id| {
                b.iter(|| {
                    buf.clear();
                    index.for_each_connection(id, |group| {
                        let item = Outgoing::Next {
                            targets: group.targets().clone(),
                            payload: payload.clone(),
                        };
                        if let Outgoing::Next { targets, payload } = black_box(item) {
                            for target in targets.as_slice() {
                                if target.is_active() {
                                    ws_frame::text(&mut buf, &target.frame_parts(&payload));
                                }
                            }
                        }
                    });
                    black_box(&buf);
                })
            },
        );
    }
    group.finish();

    let mut group = c.benchmark_group("shape_lookup");
    group.throughput(Throughput::Elements(1));
    for shapes in [1usize, 10_000] {
        let (index, ids, _receivers) = index(shapes, 1, 1);
        let mut next = 0;
        group.bench_function(BenchmarkId::new("shapes", shapes), |b| {
            b.iter(|| {
                next = (next + 1) % ids.len();
                index.for_each_connection(ids[next], |group| {
                    black_box(group);
                })
            })
        });
    }
    group.finish();
}
